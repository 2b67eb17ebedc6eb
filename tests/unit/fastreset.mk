# Fast reset (vmm/fastreset.c) over the generic dirty log and fake devices,
# vCPUs and page allocator.
UNIT_TESTS += fastreset
fastreset_SRCS := tests/unit/test_fastreset.c vmm/fastreset.c vmm/dirtylog.c kernel/lib.c
