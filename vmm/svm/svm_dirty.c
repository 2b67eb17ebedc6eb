/*
 * Dirty tracking on AMD-V: write protection in the NPT over RAM split into
 * 4 KiB leaves while tracking runs; the first write to a clean page is a
 * nested page fault that svm_exit_npf() turns into a writable (dirty) leaf.
 * The NPT has no dirty flag of its own that the CPU sets for the host; the
 * fault also notes the page's 2 MiB block in the dirty log, so a harvest
 * visits the blocks written, not all of RAM. Host
 * context with EFER.SVME set, boot CPU, interrupts off; the VM's vCPUs are out
 * of guest mode. APM Vol. 2 15.25 "Nested Paging".
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "vmm/svm/svm.h"

/* Every vCPU of vm flushes its ASID's translations on its next VMRUN: they
 * may hold writable translations of pages protected now. */
static void svm_dirty_flush(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i] && vm->vcpus[i]->arch)
			((struct svm_vcpu *)vm->vcpus[i]->arch)->flush = true;
}

int svm_dirty_start(struct vm *vm)
{
	struct svm_vm *sv = vm->arch;
	int err;

	err = npt_track_start(&sv->npt, vm->mem_size);
	if (err)
		npt_track_stop(&sv->npt, vm->mem_size);
	else
		sv->tracking = true;
	svm_dirty_flush(vm);
	return err;
}

int svm_dirty_harvest(struct vm *vm, u64 *bits)
{
	struct svm_vm *sv = vm->arch;

	/* Every write to a clean page faulted, and the fault noted its block
	 * (svm_exit_npf): only those blocks can hold writable leaves. */
	npt_harvest(&sv->npt, vm->mem_size, vm->dirty.blocks, bits);
	svm_dirty_flush(vm);
	return 0;
}

void svm_dirty_stop(struct vm *vm)
{
	struct svm_vm *sv = vm->arch;

	npt_track_stop(&sv->npt, vm->mem_size);
	sv->tracking = false;
	svm_dirty_flush(vm);
}
