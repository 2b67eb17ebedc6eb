# The generic dirty log of a VM (vmm/dirtylog.c) over a fake backend.
UNIT_TESTS += dirtylog
dirtylog_SRCS := tests/unit/test_dirtylog.c vmm/dirtylog.c kernel/lib.c
