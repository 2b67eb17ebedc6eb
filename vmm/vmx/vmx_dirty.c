/*
 * Dirty tracking on VT-x: the EPT's accessed and dirty flags (the CPU sets a
 * leaf's dirty flag on the first write through it) over RAM split into 4 KiB
 * leaves while tracking runs. The flags are switched on in the EPTP only
 * then, so an untracked guest pays nothing. Host context in VMX root
 * operation, boot CPU, interrupts off; the VM's vCPUs are out of guest mode.
 * SDM Vol. 3C 29.3.5 "Accessed and Dirty Flags for EPT".
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "vmm/vmx/vmcs.h"
#include "vmm/vmx/vmx.h"

/* Loads the EPTP (with or without the flags) into every vCPU's VMCS and drops
 * the translations cached from the old tables. Returns 0 or -EIO. */
static int vmx_dirty_set_eptp(struct vm *vm, bool ad)
{
	struct vmx_vm *xv = vm->arch;
	int err = 0;

	xv->ept.ad = ad;
	xv->eptp = ept_eptp(&xv->ept);
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		if (!v || !v->arch)
			continue;
		if (vmx_load_vmcs(v->arch) < 0) {
			err = -EIO;
			continue;
		}
		vmcs_write64(EPT_POINTER, xv->eptp);
	}
	vmx_flush_ept(xv->eptp);
	return err;
}

int vmx_dirty_start(struct vm *vm)
{
	struct vmx_vm *xv = vm->arch;
	int err;

	if (!(vmx_caps.ept_vpid_cap & VMX_EPT_AD_BIT)) {
		pr_err("vmx: dirty tracking needs EPT accessed/dirty flags, which this CPU lacks\n");
		return -EOPNOTSUPP;
	}
	err = ept_track_start(&xv->ept, vm->mem_size);
	if (!err)
		err = vmx_dirty_set_eptp(vm, true);
	if (err) {
		ept_track_stop(&xv->ept, vm->mem_size);
		vmx_dirty_set_eptp(vm, false);
	}
	return err;
}

int vmx_dirty_harvest(struct vm *vm, u64 *bits)
{
	struct vmx_vm *xv = vm->arch;

	ept_harvest(&xv->ept, vm->mem_size, bits);
	/* A translation cached with the flag set would not set it again. */
	vmx_flush_ept(xv->eptp);
	return 0;
}

void vmx_dirty_stop(struct vm *vm)
{
	struct vmx_vm *xv = vm->arch;

	ept_track_stop(&xv->ept, vm->mem_size);
	vmx_dirty_set_eptp(vm, false);
}
