/*
 * Decodes an AMD-V #VMEXIT into the neutral struct vm_exit. Nothing is emulated
 * here. The next RIP comes from NRIPS where the CPU has it (APM Vol. 2 15.7.1
 * "State Saved on Exit"); without it (QEMU TCG) from EXITINFO2 for I/O, and from
 * the fixed lengths of the other intercepted instructions, which Amber only
 * emulates in their plain encodings (no prefixes).
 * Host context, right after svm_vmrun().
 */
#include "kernel/cpu.h"
#include "vmm/svm/svm.h"

/* Instruction lengths without prefixes (APM Vol. 3 "General-Purpose and System
 * Instruction Reference"): CPUID 0F A2, HLT F4, RDMSR/WRMSR 0F 32/0F 30, INVD
 * 0F 08, XSETBV 0F 01 D1, VMRUN/VMMCALL/... 0F 01 Dx. */
#define LEN_CPUID 2
#define LEN_HLT 1
#define LEN_MSR 2
#define LEN_INVD 2
#define LEN_XSETBV 3
#define LEN_SVM_INSN 3

#define UD_VECTOR 6

static const struct {
	u32 code;
	const char *name;
} exit_names[] = {
	{ SVM_EXIT_INTR, "INTR" },
	{ SVM_EXIT_NMI, "NMI" },
	{ SVM_EXIT_SMI, "SMI" },
	{ SVM_EXIT_INIT, "INIT" },
	{ SVM_EXIT_VINTR, "VINTR" },
	{ SVM_EXIT_RDTSC, "RDTSC" },
	{ SVM_EXIT_CPUID, "CPUID" },
	{ SVM_EXIT_RSM, "RSM" },
	{ SVM_EXIT_IRET, "IRET" },
	{ SVM_EXIT_INVD, "INVD" },
	{ SVM_EXIT_PAUSE, "PAUSE" },
	{ SVM_EXIT_HLT, "HLT" },
	{ SVM_EXIT_INVLPG, "INVLPG" },
	{ SVM_EXIT_INVLPGA, "INVLPGA" },
	{ SVM_EXIT_IOIO, "IOIO" },
	{ SVM_EXIT_MSR, "MSR" },
	{ SVM_EXIT_TASK_SWITCH, "TASK_SWITCH" },
	{ SVM_EXIT_FERR_FREEZE, "FERR_FREEZE" },
	{ SVM_EXIT_SHUTDOWN, "SHUTDOWN" },
	{ SVM_EXIT_VMRUN, "VMRUN" },
	{ SVM_EXIT_VMMCALL, "VMMCALL" },
	{ SVM_EXIT_VMLOAD, "VMLOAD" },
	{ SVM_EXIT_VMSAVE, "VMSAVE" },
	{ SVM_EXIT_STGI, "STGI" },
	{ SVM_EXIT_CLGI, "CLGI" },
	{ SVM_EXIT_SKINIT, "SKINIT" },
	{ SVM_EXIT_RDTSCP, "RDTSCP" },
	{ SVM_EXIT_ICEBP, "ICEBP" },
	{ SVM_EXIT_WBINVD, "WBINVD" },
	{ SVM_EXIT_MONITOR, "MONITOR" },
	{ SVM_EXIT_MWAIT, "MWAIT" },
	{ SVM_EXIT_MWAIT_COND, "MWAIT_COND" },
	{ SVM_EXIT_XSETBV, "XSETBV" },
	{ SVM_EXIT_NPF, "NPF" },
	{ (u32)SVM_EXIT_ERR, "INVALID" },
};

const char *svm_exit_name(u32 code)
{
	static const char *const exc[32] = {
		"EXCP_DE", "EXCP_DB", "EXCP_NMI", "EXCP_BP", "EXCP_OF", "EXCP_BR", "EXCP_UD",
		"EXCP_NM", "EXCP_DF", "EXCP_9",	  "EXCP_TS", "EXCP_NP", "EXCP_SS", "EXCP_GP",
		"EXCP_PF", "EXCP_15", "EXCP_MF",  "EXCP_AC", "EXCP_MC", "EXCP_XF", "EXCP_20",
		"EXCP_21", "EXCP_22", "EXCP_23",  "EXCP_24", "EXCP_25", "EXCP_26", "EXCP_27",
		"EXCP_28", "EXCP_29", "EXCP_30",  "EXCP_31",
	};

	if (code >= SVM_EXIT_EXCP_BASE && code < SVM_EXIT_EXCP_BASE + 32)
		return exc[code - SVM_EXIT_EXCP_BASE];
	for (unsigned i = 0; i < sizeof(exit_names) / sizeof(exit_names[0]); i++)
		if (exit_names[i].code == code)
			return exit_names[i].name;
	return code < 0x20 ? "CR_ACCESS" : code < 0x40 ? "DR_ACCESS" : "UNKNOWN";
}

/* Exceptions that push an error code (SDM Vol. 3A 6.13 "Error Code"). */
static bool has_error_code(u8 vec)
{
	return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 ||
	       vec == 30;
}

/* An event whose delivery the exit interrupted goes in again on the next VMRUN
 * (15.7.2 "Intercepts During IDT Interrupt Delivery"). Software interrupts and
 * INT3/INTO are not replayed: their instruction has not completed, RIP still
 * points at it, and it runs again. */
static void requeue_event(struct vmcb_control_area *c)
{
	u64 info = c->exit_int_info;
	u64 type = info & SVM_EVTINJ_TYPE_MASK;
	u8 vec = info & SVM_EVTINJ_VEC_MASK;

	if (!(info & SVM_EVTINJ_VALID))
		return;
	if (type == SVM_EVTINJ_TYPE_SOFT ||
	    (type == SVM_EVTINJ_TYPE_EXEPT && (vec == 3 || vec == 4)))
		return;
	c->event_inj = info;
}

static u8 insn_len(const struct vmcb *vmcb, u8 fixed)
{
	if (cpu.svm_nrips && vmcb->control.next_rip > vmcb->save.rip &&
	    vmcb->control.next_rip - vmcb->save.rip <= 15)
		return (u8)(vmcb->control.next_rip - vmcb->save.rip);
	return fixed;
}

void svm_decode_exit(struct vcpu *v, struct vm_exit *e)
{
	struct svm_vcpu *s = v->arch;
	struct vmcb *vmcb = s->vmcb;
	struct vmcb_control_area *c = &vmcb->control;
	u64 code = c->exit_code, info1 = c->exit_info_1, info2 = c->exit_info_2;

	e->raw_reason = (u32)code;
	e->qualification = info1;
	e->info2 = info2;
	e->rip = vmcb->save.rip;
	e->insn_len = 0;
	requeue_event(c);

	if (code >= SVM_EXIT_EXCP_BASE && code < SVM_EXIT_EXCP_BASE + 32) {
		u8 vec = code - SVM_EXIT_EXCP_BASE;

		e->kind = VMEXIT_EXCEPTION;
		e->exc.vector = vec;
		e->exc.has_error = has_error_code(vec);
		e->exc.error_code = (u32)info1;
		return;
	}
	switch (code) {
	case SVM_EXIT_INTR:
	case SVM_EXIT_NMI:
	case SVM_EXIT_SMI:
		e->kind = VMEXIT_HOST_INTERRUPT;
		break;
	case SVM_EXIT_CPUID:
		e->kind = VMEXIT_CPUID;
		e->insn_len = insn_len(vmcb, LEN_CPUID);
		break;
	case SVM_EXIT_HLT:
		e->kind = VMEXIT_HLT;
		e->insn_len = insn_len(vmcb, LEN_HLT);
		break;
	case SVM_EXIT_IOIO:
		/* 15.10.2 "IN and OUT Behavior": EXITINFO2 is the next RIP. */
		e->kind = VMEXIT_IO;
		e->io.port = info1 >> SVM_IOIO_PORT_SHIFT;
		e->io.size = (info1 & BIT(4)) ? 1 : (info1 & BIT(5)) ? 2 : 4;
		e->io.in = info1 & SVM_IOIO_TYPE_MASK;
		e->io.string = info1 & SVM_IOIO_STR_MASK;
		e->io.rep = info1 & SVM_IOIO_REP_MASK;
		e->insn_len = (u8)(info2 - vmcb->save.rip);
		break;
	case SVM_EXIT_MSR:
		e->kind = info1 ? VMEXIT_MSR_WRITE : VMEXIT_MSR_READ;
		e->msr.index = (u32)v->regs[REG_RCX];
		e->insn_len = insn_len(vmcb, LEN_MSR);
		break;
	case SVM_EXIT_NPF:
		/* 15.25.6: EXITINFO1 is a #PF error code, EXITINFO2 the GPA. */
		e->kind = VMEXIT_MEM;
		e->mem.gpa = info2;
		e->mem.write = info1 & NPF_WRITE;
		e->mem.fetch = info1 & NPF_FETCH;
		break;
	case SVM_EXIT_SHUTDOWN:
		e->kind = VMEXIT_TRIPLE_FAULT;
		break;
	case SVM_EXIT_VMRUN:
	case SVM_EXIT_VMMCALL:
	case SVM_EXIT_VMLOAD:
	case SVM_EXIT_VMSAVE:
	case SVM_EXIT_STGI:
	case SVM_EXIT_CLGI:
	case SVM_EXIT_SKINIT:
	case SVM_EXIT_INVLPGA:
		e->kind = VMEXIT_VIRT_INSN;
		e->insn_len = insn_len(vmcb, LEN_SVM_INSN);
		break;
	case SVM_EXIT_MONITOR:
	case SVM_EXIT_MWAIT:
	case SVM_EXIT_MWAIT_COND:
		/* CPUID says there is no MONITOR/MWAIT: the guest gets #UD. */
		e->kind = VMEXIT_EXCEPTION;
		e->exc.vector = UD_VECTOR;
		break;
	case SVM_EXIT_XSETBV:
		e->kind = VMEXIT_XSETBV;
		e->insn_len = insn_len(vmcb, LEN_XSETBV);
		break;
	case SVM_EXIT_INVD:
		/* INVD would drop the host's dirty cache lines too: do nothing (a
		 * WBINVD-like no-op is what the guest may observe anyway). */
		vmcb->save.rip += insn_len(vmcb, LEN_INVD);
		e->kind = VMEXIT_NONE;
		break;
	case SVM_EXIT_ERR:
		e->kind = VMEXIT_ENTRY_FAILED;
		break;
	default:
		e->kind = VMEXIT_UNHANDLED;
		break;
	}
}
