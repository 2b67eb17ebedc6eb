/*
 * Private to the AMD-V backend (the C files of vmm/svm/): per-VM and per-vCPU data and the
 * helpers its files share. Host context, boot CPU, interrupts off, GIF set
 * except inside svm_vmrun().
 */
#ifndef AMBER_SVM_H
#define AMBER_SVM_H

#include "kernel/types.h"
#include "vmm/svm/npt.h"
#include "vmm/svm/svm_vmcb.h"
#include "vmm/vmm.h"

struct svm_vm {
	struct npt npt;
	u32 asid; /* one per VM, shared by its vCPUs (they never run at once) */
};

struct svm_vcpu {
	struct vmcb *vmcb;
	u64 vmcb_pa;
	u64 dr[4];  /* DR0-3 are not in the VMCB: they stay in the CPU while this
		      * vCPU owns it (svm_dr_owner), else here */
	bool flush; /* flush this ASID's TLB entries on the next VMRUN */
};

/* The entry stub (svm_entry.asm): loads v->regs (RAX and RSP excepted: they are
 * in the VMCB), runs VMLOAD/VMRUN/VMSAVE on vmcb_pa, stores the guest's
 * registers back into v->regs and reloads the host's hidden state from
 * host_save_pa. The host timer interrupt is taken inside it, right after the
 * #VMEXIT, when one is pending. */
void svm_vmrun(struct vcpu *v, u64 vmcb_pa, u64 host_save_pa);

/* svm_exit.c */
void svm_decode_exit(struct vcpu *v, struct vm_exit *e);
const char *svm_exit_name(u32 code);

#endif
