# The nested page tables of the AMD-V backend (vmm/svm/npt.c).
UNIT_TESTS += npt
npt_SRCS := tests/unit/test_npt.c vmm/svm/npt.c
