/*
 * RAM that arrives after the VM starts, on AMD-V (vmm/pager.c decides what
 * and when): every RAM leaf of the NPT removed at once, then pages mapped as
 * they are filled. The backend only maps; the nested page fault of a missing
 * page reaches generic code as VMEXIT_MEM like any other. Host context with
 * EFER.SVME set, boot CPU, interrupts off; the VM's vCPUs out of guest mode.
 */
#include "vmm/svm/svm.h"

/* Every vCPU of vm flushes its ASID's translations on its next VMRUN. */
static void svm_pager_flush(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i] && vm->vcpus[i]->arch)
			((struct svm_vcpu *)vm->vcpus[i]->arch)->flush = true;
}

int svm_ram_unmap(struct vm *vm)
{
	struct svm_vm *sv = vm->arch;

	npt_unmap_all(&sv->npt);
	svm_pager_flush(vm);
	return 0;
}

/* APM Vol. 2 5.5.3 "TLB Management": a page that was not present needs no
 * flush; 512 leaves merged into one do. */
int svm_ram_map(struct vm *vm, u64 gpa, u64 size)
{
	struct svm_vm *sv = vm->arch;
	bool merged = false;
	int err;

	if (gpa >= vm->mem_size || size > vm->mem_size - gpa)
		return -EINVAL;
	err = npt_fill(&sv->npt, gpa, vm->chunks[gpa / VM_CHUNK_SIZE] + gpa % VM_CHUNK_SIZE, size,
		       &merged);
	if (merged)
		svm_pager_flush(vm);
	return err;
}
