# The pager of a VM whose RAM arrives late (vmm/pager.c) over a fake backend
# and a fake source.
UNIT_TESTS += pager
pager_SRCS := tests/unit/test_pager.c vmm/pager.c kernel/lib.c kernel/format.c
