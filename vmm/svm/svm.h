/*
 * Private to the AMD-V backend (the .c files of vmm/svm/): per-VM and per-vCPU
 * data, what bring-up found, and the helpers the backend's files share. Host
 * context with EFER.SVME set, boot CPU, interrupts off, GIF set except inside
 * svm_vmrun().
 */
#ifndef AMBER_SVM_H
#define AMBER_SVM_H

#include "kernel/types.h"
#include "vmm/svm/npt.h"
#include "vmm/svm/vmcb.h"
#include "vmm/vmm.h"

/* What hw_enable() found and set up, used for every VMCB. */
struct svm_caps {
	u32 nasid;	  /* ASIDs the CPU offers, CPUID 8000_000A EBX */
	bool nrips;	  /* the VMCB's nRIP field is filled on exit */
	bool tsc_rate;	  /* the TSC ratio MSR, CPUID 8000_000A EDX bit 4 */
	u64 iopm_pa;	  /* I/O permission map, shared by every VMCB */
	u64 msrpm_pa;	  /* MSR permission map, shared by every VMCB */
	bool virq_inject; /* external interrupts through V_IRQ (svm_post_virq) */
};
extern struct svm_caps svm_caps;

struct svm_vm {
	struct npt npt;
	u32 asid;      /* one per VM, shared by its vCPUs (a switch flushes) */
	bool tracking; /* dirty tracking: RAM write-protected until written */
};

/* Guest state that the VMCB does not hold. It lives in the CPU while this
 * vCPU "owns" it (svm_cpu_owner), else here: the host never uses it, so it
 * is switched only when another vCPU runs. */
struct svm_guest_regs {
	u64 dr[4];
};

struct svm_vcpu {
	struct vmcb *vmcb; /* the VMCB, 4 KiB */
	u64 vmcb_pa;
	bool flush;   /* flush this ASID's TLB entries on the next VMRUN */
	int host_cpu; /* the CPU it last ran on (its TLB entries), -1: none */
	struct svm_guest_regs g;
	u32 windows; /* VCPU_WINDOW_* requested (set_windows) */
	/* An external interrupt posted through V_IRQ (svm_post_virq) that the
	 * guest has not taken yet: V_IRQ holds it, not the interrupt window. */
	bool virq;
	u64 tsc_ratio; /* TSC ratio, 8.32 fixed point; 0: no scaling */
	/* NMI blocking, which the VMCB does not hold: set when an NMI is
	 * injected, cleared once the guest's IRET has completed. The IRET
	 * intercept comes before the IRET runs, so its RIP is kept and the
	 * first exit at another RIP ends the blocking. */
	bool nmi_blocked;
	bool iret_seen;
	u64 iret_rip;
};

/*
 * On QEMU's TCG external interrupts go in through the virtual interrupt,
 * not EVENTINJ: V_IRQ with the vector, the TPR ignored (Amber's LAPIC has
 * decided) and no VINTR intercept, so the guest takes it at the first
 * instruction boundary RFLAGS.IF allows, and V_IRQ is clear once it has
 * (APM Vol. 2 15.21.4 "Injecting Virtual (INTR) Interrupts"). Amber posts
 * one only when the guest can take it at once (vmm/intr.c), and QEMU takes
 * it before the guest's first instruction, so the effect is EVENTINJ's.
 * Why: QEMU 7.2's VMRUN delivers an EVENTINJ interrupt but leaves it as
 * its CPU's pending exception, and delivers it a second time, whatever
 * RFLAGS.IF says, when its vCPU thread is kicked before the guest's next
 * exception or exit: a Linux guest deadlocked in its own interrupt handler
 * (docs/testing.md, "Emulator quirks"). Elsewhere EVENTINJ stays: Bochs
 * runs one guest instruction before it takes a V_IRQ, so an interrupt that
 * ends a HLT would come after the instruction that follows it.
 */
static inline void svm_post_virq(struct svm_vcpu *s, u8 vector)
{
	struct vmcb_control_area *c = &s->vmcb->control;

	c->int_ctl = (c->int_ctl & ~(V_INTR_PRIO_MASK | V_INTR_VECTOR_MASK)) | V_IRQ_MASK |
		     V_IGN_TPR_MASK | (u64)(vector >> 4) << V_INTR_PRIO_SHIFT |
		     (u64)vector << V_INTR_VECTOR_SHIFT;
	c->intercept_misc1 &= ~INTERCEPT_VINTR; /* not a window: to be taken */
	s->windows &= ~VCPU_WINDOW_INTR;
	s->virq = true;
}

/* Takes a posted interrupt back, or forgets one the guest has taken. */
static inline void svm_drop_virq(struct svm_vcpu *s)
{
	if (!s->virq)
		return;
	s->vmcb->control.int_ctl &=
		~(V_IRQ_MASK | V_IGN_TPR_MASK | V_INTR_PRIO_MASK | V_INTR_VECTOR_MASK);
	s->virq = false;
}

/* The entry stub (svm_entry.asm): loads v->regs (RAX and RSP excepted: they are
 * in the VMCB), runs VMLOAD/VMRUN/VMSAVE on vmcb_pa, stores the guest's
 * registers back into v->regs and reloads the host's hidden state from
 * host_save_pa. The host timer interrupt is taken inside it, right after the
 * #VMEXIT, when one is pending. */
void svm_vmrun(struct vcpu *v, u64 vmcb_pa, u64 host_save_pa);

/* svm_state.c */
void svm_get_state(struct vcpu *v, struct vcpu_state *s);
void svm_set_state(struct vcpu *v, const struct vcpu_state *s);
int svm_get_field(struct vcpu *v, enum vcpu_field f, u64 *val);
int svm_set_field(struct vcpu *v, enum vcpu_field f, u64 val);
int svm_set_tsc_ratio(struct vcpu *v, u64 guest_hz, u64 host_hz);
void svm_own_cpu_regs(struct vcpu *v);
void svm_release_cpu_regs(struct vcpu *v);
void svm_vcpu_put(struct vcpu *v);
void svm_inject_event(struct vmcb *vmcb, u64 type, u8 vector, bool has_error, u32 error_code);

/* svm_dirty.c: the vcpu_ops dirty_* calls (vmm/vmm.h). */
int svm_dirty_start(struct vm *vm);
int svm_dirty_harvest(struct vm *vm, u64 *bits);
void svm_dirty_stop(struct vm *vm);

/* svm_pager.c: the vcpu_ops ram_* calls (vmm/vmm.h). */
int svm_ram_unmap(struct vm *vm);
int svm_ram_map(struct vm *vm, u64 gpa, u64 size);

/* svm_exit.c. SVM_EXIT_ERR is the EXITCODE when VMRUN refused the VMCB (no
 * guest instruction ran). */
int svm_decode_exit(struct vcpu *v, struct vm_exit *exit);
const char *svm_exit_reason_name(u32 reason);

#endif
