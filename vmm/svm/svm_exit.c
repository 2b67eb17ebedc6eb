/*
 * AMD-V exit decoding: turns the VMCB exit information into the neutral struct
 * vm_exit that vmm/ emulates once for both vendors. The exits that only
 * concern the backend (INVD, the IRET that ends NMI blocking) are finished
 * here and reported as VMEXIT_NONE;
 * instructions the guest may not use come back as the exception it gets
 * (VMEXIT_EXCEPTION). The next RIP comes from NRIPS where the CPU has it (APM
 * Vol. 2 15.7.1 "State Saved on Exit"); without it (QEMU TCG) from EXITINFO2
 * for I/O, and from the fixed lengths of the other intercepted instructions,
 * which Amber only emulates in their plain encodings (no prefixes).
 * Host context right after a #VMEXIT. Pure C on the VMCB: the host unit test
 * (tests/unit/test_svm_exit.c) runs it unchanged.
 * APM Vol. 2 15.7 "Intercept Operation", Appendix C "SVM Intercept Exit Codes".
 */
#include "kernel/lib.h"
#include "vmm/svm/svm.h"

/* Instruction lengths without prefixes (APM Vol. 3 "General-Purpose and System
 * Instruction Reference"): CPUID 0F A2, HLT F4, RDMSR/WRMSR 0F 32/0F 30, INVD
 * 0F 08, XSETBV 0F 01 D1, VMRUN/VMMCALL/... 0F 01 Dx, INVLPGA 0F 01 DF. */
#define LEN_CPUID 2
#define LEN_HLT 1
#define LEN_MSR 2
#define LEN_INVD 2
#define LEN_XSETBV 3
#define LEN_SVM_INSN 3

typedef void (*svm_exit_fn)(struct vcpu *v, struct vm_exit *exit);

static struct vmcb *svm_vmcb(struct vcpu *v) { return ((struct svm_vcpu *)v->arch)->vmcb; }

static void svm_skip_insn(struct vcpu *v, struct vm_exit *exit)
{
	svm_vmcb(v)->save.rip = exit->rip + exit->insn_len;
	exit->kind = VMEXIT_NONE;
}

/* The guest gets a fault for its instruction; the generic code injects it
 * (and stops a guest that faults in a storm). */
static void svm_fault(struct vm_exit *exit, u8 vector, bool has_error)
{
	exit->kind = VMEXIT_EXCEPTION;
	exit->exc.vector = vector;
	exit->exc.has_error = has_error;
	exit->exc.error_code = 0;
}

/* Exceptions that push an error code (SDM Vol. 3A 6.13 "Error Code"). */
static bool svm_has_error_code(u8 vec)
{
	return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 ||
	       vec == 30;
}

/* An intercepted exception, EXITINFO1 its error code (15.12 "Exception
 * Intercepts"). */
static void svm_exit_exception(struct vcpu *v, struct vm_exit *exit)
{
	u8 vec = exit->raw_reason - SVM_EXIT_EXCP_BASE;

	exit->kind = VMEXIT_EXCEPTION;
	exit->exc.vector = vec;
	exit->exc.has_error = svm_has_error_code(vec);
	exit->exc.error_code = (u32)exit->qualification;
}

/* 15.10.2 "IN and OUT Behavior": EXITINFO2 is the next RIP. */
static void svm_exit_io(struct vcpu *v, struct vm_exit *exit)
{
	u64 q = exit->qualification;

	exit->kind = VMEXIT_IO;
	exit->io.port = q >> SVM_IOIO_PORT_SHIFT;
	exit->io.size = (q & BIT(4)) ? 1 : (q & BIT(5)) ? 2 : 4;
	exit->io.in = q & SVM_IOIO_TYPE_MASK;
	exit->io.string = q & SVM_IOIO_STR_MASK;
	exit->io.rep = q & SVM_IOIO_REP_MASK;
	exit->insn_len = (u8)(exit->info2 - exit->rip);
}

/* 15.11 "MSR Intercepts": EXITINFO1 is 0 for RDMSR, 1 for WRMSR. */
static void svm_exit_msr(struct vcpu *v, struct vm_exit *exit)
{
	exit->kind = exit->qualification ? VMEXIT_MSR_WRITE : VMEXIT_MSR_READ;
	exit->msr.index = (u32)v->regs[REG_RCX];
}

/* 15.25.6 "Nested versus Guest Page Faults, Fault Ordering": EXITINFO1 is a
 * #PF error code, EXITINFO2 the guest-physical address. */
static void svm_exit_npf(struct vcpu *v, struct vm_exit *exit)
{
	struct svm_vm *sv = v->vm ? v->vm->arch : NULL;
	u64 q = exit->qualification;

	/* Dirty tracking (svm_dirty.c): a write to a write-protected RAM page
	 * marks it dirty by making it writable, and the guest retries; only
	 * what is no RAM goes on to the MMIO path. A fault on a page already
	 * writable came through a stale translation: flush it. */
	if (sv && sv->tracking && (q & NPF_PRESENT) && (q & NPF_WRITE)) {
		int err = npt_unprotect(&sv->npt, v->vm->mem_size, exit->info2);

		if (!err)
			dirty_log_note(&v->vm->dirty, exit->info2);
		if (err != -ENOENT) {
			if (err == -EEXIST)
				((struct svm_vcpu *)v->arch)->flush = true;
			exit->kind = VMEXIT_NONE;
			return;
		}
	}
	exit->kind = VMEXIT_MEM;
	exit->mem.gpa = exit->info2;
	exit->mem.write = exit->qualification & NPF_WRITE;
	exit->mem.fetch = exit->qualification & NPF_FETCH;
}

/* INVD would drop the host's dirty cache lines too: it does nothing. */
static void svm_exit_invd(struct vcpu *v, struct vm_exit *exit) { svm_skip_insn(v, exit); }

/* CPUID offers no MONITOR/MWAIT and no RDTSCP (vmm/emulate.c): #UD, as on
 * such a CPU. */
static void svm_exit_hidden(struct vcpu *v, struct vm_exit *exit)
{
	svm_fault(exit, X86_TRAP_UD, false);
}

/* IRET while an injected NMI's handler runs (intercepted only then): the
 * blocking ends once this IRET has completed, which the next exit at another
 * RIP shows (svm_decode_exit). The intercept has done its work. */
static void svm_exit_iret(struct vcpu *v, struct vm_exit *exit)
{
	struct svm_vcpu *s = v->arch;

	s->iret_seen = true;
	s->iret_rip = exit->rip;
	s->vmcb->control.intercept_misc1 &= ~INTERCEPT_IRET;
	exit->kind = VMEXIT_NONE;
}

static const struct {
	enum vm_exit_kind kind; /* for exits needing no decoding */
	u8 insn_len;		/* the plain encoding's length, when NRIPS is absent */
	svm_exit_fn decode;
} svm_exits[SVM_EXIT_NPF + 1] = {
	[SVM_EXIT_EXCP_BASE... SVM_EXIT_EXCP_BASE + 31] = { .decode = svm_exit_exception },
	[SVM_EXIT_INTR] = { .kind = VMEXIT_HOST_INTERRUPT },
	[SVM_EXIT_NMI] = { .kind = VMEXIT_HOST_INTERRUPT },
	[SVM_EXIT_SMI] = { .kind = VMEXIT_HOST_INTERRUPT },
	[SVM_EXIT_VINTR] = { .kind = VMEXIT_INTR_WINDOW },
	[SVM_EXIT_IRET] = { .decode = svm_exit_iret },
	[SVM_EXIT_SHUTDOWN] = { .kind = VMEXIT_TRIPLE_FAULT },
	[SVM_EXIT_CPUID] = { .kind = VMEXIT_CPUID, .insn_len = LEN_CPUID },
	[SVM_EXIT_HLT] = { .kind = VMEXIT_HLT, .insn_len = LEN_HLT },
	[SVM_EXIT_IOIO] = { .decode = svm_exit_io },
	[SVM_EXIT_MSR] = { .insn_len = LEN_MSR, .decode = svm_exit_msr },
	[SVM_EXIT_NPF] = { .decode = svm_exit_npf },
	[SVM_EXIT_INVD] = { .insn_len = LEN_INVD, .decode = svm_exit_invd },
	[SVM_EXIT_MONITOR] = { .decode = svm_exit_hidden },
	[SVM_EXIT_MWAIT] = { .decode = svm_exit_hidden },
	[SVM_EXIT_MWAIT_COND] = { .decode = svm_exit_hidden },
	[SVM_EXIT_RDTSCP] = { .decode = svm_exit_hidden },
	[SVM_EXIT_XSETBV] = { .kind = VMEXIT_XSETBV, .insn_len = LEN_XSETBV },
	[SVM_EXIT_VMRUN] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_VMMCALL] = { .kind = VMEXIT_HYPERCALL, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_VMLOAD] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_VMSAVE] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_STGI] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_CLGI] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_SKINIT] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
	[SVM_EXIT_INVLPGA] = { .kind = VMEXIT_VIRT_INSN, .insn_len = LEN_SVM_INSN },
};

static const char *const svm_exit_names[SVM_EXIT_NPF + 1] = {
	[SVM_EXIT_EXCP_BASE + 0] = "EXCP_DE",
	[SVM_EXIT_EXCP_BASE + 1] = "EXCP_DB",
	[SVM_EXIT_EXCP_BASE + 2] = "EXCP_NMI",
	[SVM_EXIT_EXCP_BASE + 3] = "EXCP_BP",
	[SVM_EXIT_EXCP_BASE + 4] = "EXCP_OF",
	[SVM_EXIT_EXCP_BASE + 5] = "EXCP_BR",
	[SVM_EXIT_EXCP_BASE + 6] = "EXCP_UD",
	[SVM_EXIT_EXCP_BASE + 7] = "EXCP_NM",
	[SVM_EXIT_EXCP_BASE + 8] = "EXCP_DF",
	[SVM_EXIT_EXCP_BASE + 9] = "EXCP_9",
	[SVM_EXIT_EXCP_BASE + 10] = "EXCP_TS",
	[SVM_EXIT_EXCP_BASE + 11] = "EXCP_NP",
	[SVM_EXIT_EXCP_BASE + 12] = "EXCP_SS",
	[SVM_EXIT_EXCP_BASE + 13] = "EXCP_GP",
	[SVM_EXIT_EXCP_BASE + 14] = "EXCP_PF",
	[SVM_EXIT_EXCP_BASE + 15] = "EXCP_15",
	[SVM_EXIT_EXCP_BASE + 16] = "EXCP_MF",
	[SVM_EXIT_EXCP_BASE + 17] = "EXCP_AC",
	[SVM_EXIT_EXCP_BASE + 18] = "EXCP_MC",
	[SVM_EXIT_EXCP_BASE + 19] = "EXCP_XF",
	[SVM_EXIT_EXCP_BASE + 20] = "EXCP_20",
	[SVM_EXIT_EXCP_BASE + 21] = "EXCP_21",
	[SVM_EXIT_EXCP_BASE + 22] = "EXCP_22",
	[SVM_EXIT_EXCP_BASE + 23] = "EXCP_23",
	[SVM_EXIT_EXCP_BASE + 24] = "EXCP_24",
	[SVM_EXIT_EXCP_BASE + 25] = "EXCP_25",
	[SVM_EXIT_EXCP_BASE + 26] = "EXCP_26",
	[SVM_EXIT_EXCP_BASE + 27] = "EXCP_27",
	[SVM_EXIT_EXCP_BASE + 28] = "EXCP_28",
	[SVM_EXIT_EXCP_BASE + 29] = "EXCP_29",
	[SVM_EXIT_EXCP_BASE + 30] = "EXCP_30",
	[SVM_EXIT_EXCP_BASE + 31] = "EXCP_31",
	[SVM_EXIT_INTR] = "INTR",
	[SVM_EXIT_NMI] = "NMI",
	[SVM_EXIT_SMI] = "SMI",
	[SVM_EXIT_INIT] = "INIT",
	[SVM_EXIT_VINTR] = "VINTR",
	[SVM_EXIT_RDTSC] = "RDTSC",
	[SVM_EXIT_CPUID] = "CPUID",
	[SVM_EXIT_RSM] = "RSM",
	[SVM_EXIT_IRET] = "IRET",
	[SVM_EXIT_INVD] = "INVD",
	[SVM_EXIT_PAUSE] = "PAUSE",
	[SVM_EXIT_HLT] = "HLT",
	[SVM_EXIT_INVLPG] = "INVLPG",
	[SVM_EXIT_INVLPGA] = "INVLPGA",
	[SVM_EXIT_IOIO] = "IOIO",
	[SVM_EXIT_MSR] = "MSR",
	[SVM_EXIT_TASK_SWITCH] = "TASK_SWITCH",
	[SVM_EXIT_FERR_FREEZE] = "FERR_FREEZE",
	[SVM_EXIT_SHUTDOWN] = "SHUTDOWN",
	[SVM_EXIT_VMRUN] = "VMRUN",
	[SVM_EXIT_VMMCALL] = "VMMCALL",
	[SVM_EXIT_VMLOAD] = "VMLOAD",
	[SVM_EXIT_VMSAVE] = "VMSAVE",
	[SVM_EXIT_STGI] = "STGI",
	[SVM_EXIT_CLGI] = "CLGI",
	[SVM_EXIT_SKINIT] = "SKINIT",
	[SVM_EXIT_RDTSCP] = "RDTSCP",
	[SVM_EXIT_ICEBP] = "ICEBP",
	[SVM_EXIT_WBINVD] = "WBINVD",
	[SVM_EXIT_MONITOR] = "MONITOR",
	[SVM_EXIT_MWAIT] = "MWAIT",
	[SVM_EXIT_MWAIT_COND] = "MWAIT_COND",
	[SVM_EXIT_XSETBV] = "XSETBV",
	[SVM_EXIT_NPF] = "NPF",
};

const char *svm_exit_reason_name(u32 reason)
{
	if (reason == (u32)SVM_EXIT_ERR)
		return "INVALID";
	if (reason < ARRAY_SIZE(svm_exit_names) && svm_exit_names[reason])
		return svm_exit_names[reason];
	/* 0x00-0x1F read or write CR0-15, 0x20-0x3F DR0-15. */
	return reason < 0x20 ? "CR_ACCESS" : reason < 0x40 ? "DR_ACCESS" : "UNKNOWN";
}

/*
 * An event whose delivery the exit interrupted goes in again on the next VMRUN
 * (15.7.2 "Intercepts During IDT Interrupt Delivery"), so a resumed guest, or
 * a saved image, still receives it. Software interrupts and INT3/INTO are not
 * replayed: their instruction has not completed, RIP still points at it, and
 * it runs again. Where external interrupts go through V_IRQ (QEMU's TCG,
 * svm_post_virq), one cut short is posted again; QEMU records one it was
 * delivering with the exception type, but no exception has a vector above
 * 31.
 */
static void svm_requeue_event(struct svm_vcpu *s)
{
	struct vmcb_control_area *c = &s->vmcb->control;
	u64 info = c->exit_int_info;
	u64 type = info & SVM_EVTINJ_TYPE_MASK;
	u8 vec = info & SVM_EVTINJ_VEC_MASK;

	if (!(info & SVM_EVTINJ_VALID))
		return;
	if (type == SVM_EVTINJ_TYPE_SOFT ||
	    (type == SVM_EVTINJ_TYPE_EXEPT && (vec == X86_TRAP_BP || vec == X86_TRAP_OF)))
		return;
	if (svm_caps.virq_inject &&
	    (type == SVM_EVTINJ_TYPE_INTR || (type == SVM_EVTINJ_TYPE_EXEPT && vec >= 32)))
		svm_post_virq(s, vec);
	else
		c->event_inj = info;
}

/* The length of the exiting instruction: from nRIP when the CPU fills it in
 * and it is plausible, else the plain encoding's. */
static u8 svm_insn_len(const struct vmcb *vmcb, u8 fixed)
{
	if (svm_caps.nrips && vmcb->control.next_rip > vmcb->save.rip &&
	    vmcb->control.next_rip - vmcb->save.rip <= 15)
		return (u8)(vmcb->control.next_rip - vmcb->save.rip);
	return fixed;
}

/* Decodes the exit that just happened into *exit. Returns 0, or -EIO when
 * VMRUN refused the VMCB (EXITCODE VMEXIT_INVALID): the guest state was
 * refused. */
int svm_decode_exit(struct vcpu *v, struct vm_exit *exit)
{
	struct svm_vcpu *s = v->arch;
	struct vmcb *vmcb = s->vmcb;
	struct vmcb_control_area *c = &vmcb->control;
	u64 code = c->exit_code;

	exit->raw_reason = (u32)code;
	exit->qualification = c->exit_info_1;
	exit->info2 = c->exit_info_2;
	exit->rip = vmcb->save.rip;
	exit->insn_len = 0;
	if (code == SVM_EXIT_ERR) {
		/* APM Vol. 2 15.5.1 "Basic Operation" lists what VMRUN checks. */
		exit->kind = VMEXIT_ENTRY_FAILED;
		return -EIO;
	}
	svm_requeue_event(s);
	if (s->iret_seen && exit->rip != s->iret_rip) {
		s->iret_seen = false;
		s->nmi_blocked = false;
	}
	if (code >= ARRAY_SIZE(svm_exits)) {
		exit->kind = VMEXIT_UNHANDLED;
		return 0;
	}
	exit->kind = svm_exits[code].kind;
	if (svm_exits[code].insn_len)
		exit->insn_len = svm_insn_len(vmcb, svm_exits[code].insn_len);
	if (svm_exits[code].decode)
		svm_exits[code].decode(v, exit);
	else if (exit->kind == VMEXIT_NONE)
		exit->kind = VMEXIT_UNHANDLED;
	return 0;
}
