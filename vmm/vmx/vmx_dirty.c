/*
 * Dirty tracking on VT-x: the EPT's accessed and dirty flags (the CPU sets a
 * leaf's dirty flag on the first write through it) over RAM split into 4 KiB
 * leaves while tracking runs. The flags are switched on in the EPTP only
 * then, so an untracked guest pays nothing. Where the CPU has page-
 * modification logging, it also writes the address of each page whose flag
 * it sets into a log per vCPU; the log's pages note their 2 MiB blocks in the
 * dirty log, and a harvest visits only those (without PML: all of RAM). Host
 * context in VMX root operation, boot CPU, interrupts off; the VM's vCPUs are
 * out of guest mode. SDM Vol. 3C 29.3.5 "Accessed and Dirty Flags for EPT",
 * 29.3.6 "Page-Modification Logging".
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
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

/* The log holds 512 guest-physical addresses; the CPU fills it from entry
 * 511 down, the PML index naming the next entry it writes (SDM Vol. 3C
 * 29.3.6). */
#define PML_ENTRIES 512

/* Notes the pages v's log holds (its VMCS loaded) and empties the log. */
static void vmx_pml_drain(struct vcpu *v)
{
	struct vmx_vcpu *x = v->arch;
	const u64 *log = phys_to_virt(x->pml_pa);
	u16 next = vmcs_read16(GUEST_PML_INDEX);

	/* Past entry 0 the index wraps to 0xFFFF: all 512 entries hold one. */
	for (u32 i = next >= PML_ENTRIES ? 0 : next + 1u; i < PML_ENTRIES; i++)
		dirty_log_note(&v->vm->dirty, log[i]);
	vmcs_write16(GUEST_PML_INDEX, PML_ENTRIES - 1);
}

void vmx_dirty_pml_full(struct vcpu *v)
{
	if (((struct vmx_vcpu *)v->arch)->pml_pa)
		vmx_pml_drain(v);
}

/* Logging off in every vCPU that has a log, and the logs freed. */
static void vmx_pml_stop(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];
		struct vmx_vcpu *x = v ? v->arch : NULL;

		if (!x || !x->pml_pa)
			continue;
		if (vmx_load_vmcs(x) == 0)
			vmcs_write32(SECONDARY_VM_EXEC_CONTROL,
				     vmcs_read32(SECONDARY_VM_EXEC_CONTROL) &
					     ~SECONDARY_EXEC_ENABLE_PML);
		pmm_free_page(x->pml_pa);
		x->pml_pa = 0;
	}
	((struct vmx_vm *)vm->arch)->pml = false;
}

/* A log for every vCPU and logging on. 0, -ENOMEM or -EIO (nothing left
 * on: the caller stops). */
static int vmx_pml_start(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];
		struct vmx_vcpu *x = v ? v->arch : NULL;

		if (!x)
			continue;
		x->pml_pa = pmm_alloc_page();
		if (!x->pml_pa)
			return -ENOMEM;
		if (vmx_load_vmcs(x) < 0)
			return -EIO;
		vmcs_write64(PML_ADDRESS, x->pml_pa);
		vmcs_write16(GUEST_PML_INDEX, PML_ENTRIES - 1);
		vmcs_write32(SECONDARY_VM_EXEC_CONTROL,
			     vmcs_read32(SECONDARY_VM_EXEC_CONTROL) | SECONDARY_EXEC_ENABLE_PML);
	}
	((struct vmx_vm *)vm->arch)->pml = true;
	return 0;
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
	/* Every dirty flag is clear now: from here each one the CPU sets is
	 * logged. */
	if (!err && vmx_caps.pml)
		err = vmx_pml_start(vm);
	if (err) {
		vmx_pml_stop(vm);
		ept_track_stop(&xv->ept, vm->mem_size);
		vmx_dirty_set_eptp(vm, false);
	}
	return err;
}

int vmx_dirty_harvest(struct vm *vm, u64 *bits)
{
	struct vmx_vm *xv = vm->arch;

	if (xv->pml) {
		for (int i = 0; i < vm->nvcpus; i++) {
			struct vcpu *v = vm->vcpus[i];

			if (v && v->arch && vmx_load_vmcs(v->arch) == 0)
				vmx_pml_drain(v);
		}
	}
	/* With PML every flag set since the last harvest was logged and its
	 * block noted; without it any leaf may hold one. */
	ept_harvest(&xv->ept, vm->mem_size, xv->pml ? vm->dirty.blocks : NULL, bits);
	/* A translation cached with the flag set would not set it again. */
	vmx_flush_ept(xv->eptp);
	return 0;
}

void vmx_dirty_stop(struct vm *vm)
{
	struct vmx_vm *xv = vm->arch;

	vmx_pml_stop(vm);
	ept_track_stop(&xv->ept, vm->mem_size);
	vmx_dirty_set_eptp(vm, false);
}
