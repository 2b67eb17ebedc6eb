# The AMD-V exit decoder (vmm/svm/svm_exit.c): VMCB exit fields to struct vm_exit.
UNIT_TESTS += svm_exit
svm_exit_SRCS := tests/unit/test_svm_exit.c vmm/svm/svm_exit.c vmm/svm/npt.c
