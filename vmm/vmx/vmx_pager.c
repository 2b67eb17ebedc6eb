/*
 * RAM that arrives after the VM starts, on VT-x (vmm/pager.c decides what
 * and when): every RAM leaf of the EPT removed at once, then pages mapped as
 * they are filled. The backend only maps; the EPT violation of a missing page
 * reaches generic code as VMEXIT_MEM like any other. Host context in VMX
 * root operation, boot CPU, interrupts off; the VM's vCPUs out of guest mode.
 */
#include "vmm/vmx/vmx.h"

int vmx_ram_unmap(struct vm *vm)
{
	struct vmx_vm *xv = vm->arch;

	ept_unmap_all(&xv->ept);
	vmx_flush_ept(xv->eptp);
	return 0;
}

/* SDM Vol. 3C 29.4.3.1 "Operations that Invalidate Cached Mappings": a page
 * that was not present needs no INVEPT; 512 leaves merged into one do. */
int vmx_ram_map(struct vm *vm, u64 gpa, u64 size)
{
	struct vmx_vm *xv = vm->arch;
	bool merged = false;
	int err;

	if (gpa >= vm->mem_size || size > vm->mem_size - gpa)
		return -EINVAL;
	err = ept_fill(&xv->ept, gpa, vm->chunks[gpa / VM_CHUNK_SIZE] + gpa % VM_CHUNK_SIZE, size,
		       &merged);
	if (merged)
		vmx_flush_ept(xv->eptp);
	return err;
}
