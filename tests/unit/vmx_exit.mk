# The VT-x exit decoder (vmm/vmx/vmx_exit.c): VMCS exit fields to struct vm_exit.
UNIT_TESTS += vmx_exit
vmx_exit_SRCS := tests/unit/test_vmx_exit.c vmm/vmx/vmx_exit.c
