# The guest TSC's rate (vmm/vtsc.c): VT-x and AMD-V multipliers, the scaled
# TSC on a stand-in backend, the choice for a restored VM and its message.
UNIT_TESTS += vtsc
vtsc_SRCS := tests/unit/test_vtsc.c vmm/vtsc.c
