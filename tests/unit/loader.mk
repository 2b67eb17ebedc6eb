# The Multiboot 1 guest loader (vmm/loader.c), malformed images included.
UNIT_TESTS += loader
loader_SRCS := tests/unit/test_loader.c vmm/loader.c vmm/memmap.c kernel/lib.c kernel/format.c
