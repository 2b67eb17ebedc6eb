# The EPT builder of the VT-x backend (vmm/vmx/ept.c).
UNIT_TESTS += ept
ept_SRCS := tests/unit/test_ept.c vmm/vmx/ept.c
