/*
 * VT-x exit decoding: turns the VMCS exit information into the neutral struct
 * vm_exit that vmm/ emulates once for both vendors. The few exits that only
 * concern VMX itself (guest writes to the CR0/CR4 bits VMX pins, CR8, INVD)
 * are finished here and reported as VMEXIT_NONE; instructions the guest may
 * not use come back as the exception it gets (VMEXIT_EXCEPTION).
 * Host context right after a VM exit, the vCPU's VMCS current.
 * SDM Vol. 3C 28.2 "Recording VM-Exit Information and Updating VM-Entry
 * Control Fields", Vol. 3D Appendix C "VMX Basic Exit Reasons".
 */
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "vmm/vmx/vmcs.h"
#include "vmm/vmx/vmx.h"

typedef void (*vmx_exit_fn)(struct vcpu *v, struct vm_exit *exit);

static void vmx_skip_insn(struct vm_exit *exit)
{
	vmcs_writel(GUEST_RIP, exit->rip + exit->insn_len);
	exit->kind = VMEXIT_NONE;
}

/* The guest gets a fault for its instruction; the generic code injects it
 * (and stops a guest that faults in a storm). */
static void vmx_fault(struct vm_exit *exit, u8 vector, bool has_error)
{
	exit->kind = VMEXIT_EXCEPTION;
	exit->exc.vector = vector;
	exit->exc.has_error = has_error;
	exit->exc.error_code = 0;
}

static bool vmx_contributory(u8 vector) { return vector == 0 || (vector >= 10 && vector <= 13); }

/*
 * An intercepted fault that struck while the CPU delivered another exception
 * (IDT-vectoring information valid) combines with it as the CPU would have:
 * #DF for contributory-after-contributory and contributory-after-#PF,
 * shutdown after #DF. Otherwise the interrupted event is dropped (the fault
 * is delivered instead; a software interrupt is executed again after it).
 * SDM Vol. 3A 6.15 "Exception and Interrupt Reference", Interrupt 8, table
 * "Conditions for Generating a Double Fault".
 */
static void vmx_merge_faults(struct vm_exit *exit)
{
	u32 idt = vmcs_read32(IDT_VECTORING_INFO_FIELD);
	u8 first = idt & INTR_INFO_VECTOR_MASK;

	if (!(idt & INTR_INFO_VALID_MASK) ||
	    ((idt & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT) !=
		    INTR_TYPE_HARD_EXCEPTION ||
	    !vmx_contributory(exit->exc.vector))
		return;
	if (first == X86_TRAP_DF) {
		exit->kind = VMEXIT_TRIPLE_FAULT;
		exit->raw_reason = EXIT_REASON_TRIPLE_FAULT;
	} else if (vmx_contributory(first) || first == X86_TRAP_PF) {
		exit->exc.vector = X86_TRAP_DF;
		exit->exc.has_error = true;
		exit->exc.error_code = 0;
	}
}

static void vmx_exit_exception(struct vcpu *v, struct vm_exit *exit)
{
	u32 info = vmcs_read32(VM_EXIT_INTR_INFO);
	u32 type = (info & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT;

	/* An NMI that arrived in guest mode belongs to the host, which has no
	 * use for it: counted as the host's turn and dropped. */
	if (type == INTR_TYPE_NMI_INTR) {
		exit->kind = VMEXIT_HOST_INTERRUPT;
		return;
	}
	/* A fault in IRET unblocked NMIs before exiting: block them again if the
	 * guest is resumed (SDM Vol. 3C 28.2.3 "Information about NMI
	 * Unblocking Due to IRET"). */
	if ((info & INTR_INFO_UNBLOCK_NMI) &&
	    !(vmcs_read32(IDT_VECTORING_INFO_FIELD) & INTR_INFO_VALID_MASK))
		vmcs_write32(GUEST_INTERRUPTIBILITY_INFO,
			     vmcs_read32(GUEST_INTERRUPTIBILITY_INFO) | GUEST_INTR_STATE_NMI);
	exit->kind = VMEXIT_EXCEPTION;
	exit->exc.vector = info & INTR_INFO_VECTOR_MASK;
	exit->exc.has_error = !!(info & INTR_INFO_DELIVER_CODE_MASK);
	if (exit->exc.has_error)
		exit->exc.error_code = vmcs_read32(VM_EXIT_INTR_ERROR_CODE);
	vmx_merge_faults(exit);
}

static void vmx_exit_io(struct vcpu *v, struct vm_exit *exit)
{
	u64 q = exit->qualification;

	exit->kind = VMEXIT_IO;
	exit->io.port = q >> IO_QUAL_PORT_SHIFT;
	exit->io.size = (q & IO_QUAL_SIZE_MASK) + 1;
	exit->io.in = q & IO_QUAL_IN;
	exit->io.string = q & IO_QUAL_STRING;
	exit->io.rep = q & IO_QUAL_REP;
	if (exit->io.string)
		exit->info2 = vmcs_readl(GUEST_LINEAR_ADDRESS);
}

static void vmx_exit_msr(struct vcpu *v, struct vm_exit *exit)
{
	exit->kind = exit->raw_reason == EXIT_REASON_MSR_READ ? VMEXIT_MSR_READ : VMEXIT_MSR_WRITE;
	exit->msr.index = (u32)v->regs[REG_RCX];
}

static void vmx_exit_ept_violation(struct vcpu *v, struct vm_exit *exit)
{
	u64 q = exit->qualification;

	exit->kind = VMEXIT_MEM;
	exit->mem.gpa = vmcs_read64(GUEST_PHYSICAL_ADDRESS);
	exit->mem.write = q & EPT_VIOLATION_ACC_WRITE;
	exit->mem.fetch = q & EPT_VIOLATION_ACC_INSTR;
	if (q & EPT_VIOLATION_GVA_IS_VALID)
		exit->info2 = vmcs_readl(GUEST_LINEAR_ADDRESS);
	if ((q & EPT_VIOLATION_NMI_UNBLOCK) &&
	    !(vmcs_read32(IDT_VECTORING_INFO_FIELD) & INTR_INFO_VALID_MASK))
		vmcs_write32(GUEST_INTERRUPTIBILITY_INFO,
			     vmcs_read32(GUEST_INTERRUPTIBILITY_INFO) | GUEST_INTR_STATE_NMI);
}

/* Dirty tracking's page-modification log is full: nothing for generic code,
 * vmx_vcpu_run has vmx_dirty_pml_full() empty it and the write is retried.
 * An IRET that unblocked NMIs is undone as for an EPT violation (SDM Vol. 3C
 * 28.2.1 "Basic VM-Exit Information", page-modification log-full). */
static void vmx_exit_pml_full(struct vcpu *v, struct vm_exit *exit)
{
	exit->kind = VMEXIT_NONE;
	if ((exit->qualification & EPT_VIOLATION_NMI_UNBLOCK) &&
	    !(vmcs_read32(IDT_VECTORING_INFO_FIELD) & INTR_INFO_VALID_MASK))
		vmcs_write32(GUEST_INTERRUPTIBILITY_INFO,
			     vmcs_read32(GUEST_INTERRUPTIBILITY_INFO) | GUEST_INTR_STATE_NMI);
}

/* A broken EPT entry is Amber's bug, not the guest's: stop it with the address. */
static void vmx_exit_ept_misconfig(struct vcpu *v, struct vm_exit *exit)
{
	exit->kind = VMEXIT_UNHANDLED;
	exit->info2 = vmcs_read64(GUEST_PHYSICAL_ADDRESS);
}

/* The general register a CR access names; RSP lives in regs[] too. */
static u64 *vmx_cr_gpr(struct vcpu *v, u64 q)
{
	return &v->regs[(q >> CR_ACCESS_GPR_SHIFT) & CR_ACCESS_GPR_MASK];
}

/*
 * Guest accesses to control registers that exit: writes of CR0/CR4 bits that
 * VMX pins (CR0.NE, CR4.VMXE, unsupported bits) or that Amber keeps (CR0.CD
 * and NW), all CR8 accesses (the TPR
 * is kept here while the guest runs; vmm/intr.c keeps it equal to the LAPIC's
 * through VCPU_FIELD_CR8), and CR3 where the CPU
 * cannot turn CR3 exiting off. SDM Vol. 3C 26.1.3 "Instructions That Cause
 * VM Exits Conditionally".
 */
static void vmx_exit_cr(struct vcpu *v, struct vm_exit *exit)
{
	struct vmx_vcpu *x = v->arch;
	u64 q = exit->qualification;
	u32 cr = q & CR_ACCESS_CR_MASK;
	u64 *gpr = vmx_cr_gpr(v, q);
	u64 val, cr0;
	int err = 0;

	switch ((q >> CR_ACCESS_TYPE_SHIFT) & CR_ACCESS_TYPE_MASK) {
	case CR_ACCESS_TYPE_MOV_TO_CR:
		val = *gpr;
		/* Outside 64-bit mode the source is 32 bits wide. */
		if (!(vmcs_read32(GUEST_CS_AR_BYTES) & BIT(13)))
			val &= 0xffffffffULL;
		if (cr == 0)
			err = vmx_write_cr0(v, val);
		else if (cr == 3)
			err = vmx_write_cr3(v, val);
		else if (cr == 4)
			err = vmx_write_cr4(v, val);
		else if (cr == 8 && !(val & ~0xfULL))
			x->cr8 = val;
		else if (cr == 8)
			err = -EINVAL;
		else
			goto unhandled;
		break;
	case CR_ACCESS_TYPE_MOV_FROM_CR:
		if (cr == 3)
			*gpr = vmcs_readl(GUEST_CR3);
		else if (cr == 8)
			*gpr = x->cr8;
		else
			goto unhandled;
		break;
	case CR_ACCESS_TYPE_CLTS:
		err = vmx_write_cr0(v, vmx_read_cr0() & ~X86_CR0_TS);
		break;
	case CR_ACCESS_TYPE_LMSW:
		/* LMSW loads PE, MP, EM and TS but cannot clear PE. */
		cr0 = vmx_read_cr0();
		val = (q >> CR_ACCESS_LMSW_DATA_SHIFT) & 0xf;
		err = vmx_write_cr0(v, (cr0 & ~0xeULL) | val | (cr0 & X86_CR0_PE));
		break;
	}
	if (err) {
		vmx_fault(exit, X86_TRAP_GP, true);
		return;
	}
	vmx_skip_insn(exit);
	return;
unhandled:
	exit->kind = VMEXIT_UNHANDLED;
}

/* INVD would drop the host's dirty cache lines too: it does nothing. */
static void vmx_exit_invd(struct vcpu *v, struct vm_exit *exit) { vmx_skip_insn(exit); }

/* CPUID offers no MONITOR/MWAIT and no RDTSCP (vmm/emulate.c): #UD, as on
 * such a CPU. RDTSCP never exits here: with "enable RDTSCP" off the CPU
 * raises the #UD itself (vmx.c). */
static void vmx_exit_hidden(struct vcpu *v, struct vm_exit *exit)
{
	vmx_fault(exit, X86_TRAP_UD, false);
}

/* RDPMC would read the host's performance counters; there is no virtual PMU. */
static void vmx_exit_rdpmc(struct vcpu *v, struct vm_exit *exit)
{
	vmx_fault(exit, X86_TRAP_GP, true);
}

static const struct {
	enum vm_exit_kind kind; /* for exits needing no decoding */
	vmx_exit_fn decode;
} vmx_exits[VMX_EXIT_REASON_COUNT] = {
	[EXIT_REASON_EXCEPTION_NMI] = { .decode = vmx_exit_exception },
	[EXIT_REASON_EXTERNAL_INTERRUPT] = { .kind = VMEXIT_HOST_INTERRUPT },
	[EXIT_REASON_PREEMPTION_TIMER] = { .kind = VMEXIT_HOST_INTERRUPT },
	[EXIT_REASON_TRIPLE_FAULT] = { .kind = VMEXIT_TRIPLE_FAULT },
	[EXIT_REASON_INTERRUPT_WINDOW] = { .kind = VMEXIT_INTR_WINDOW },
	[EXIT_REASON_NMI_WINDOW] = { .kind = VMEXIT_NMI_WINDOW },
	[EXIT_REASON_CPUID] = { .kind = VMEXIT_CPUID },
	[EXIT_REASON_HLT] = { .kind = VMEXIT_HLT },
	[EXIT_REASON_IO_INSTRUCTION] = { .decode = vmx_exit_io },
	[EXIT_REASON_MSR_READ] = { .decode = vmx_exit_msr },
	[EXIT_REASON_MSR_WRITE] = { .decode = vmx_exit_msr },
	[EXIT_REASON_EPT_VIOLATION] = { .decode = vmx_exit_ept_violation },
	[EXIT_REASON_EPT_MISCONFIG] = { .decode = vmx_exit_ept_misconfig },
	[EXIT_REASON_PML_FULL] = { .decode = vmx_exit_pml_full },
	[EXIT_REASON_CR_ACCESS] = { .decode = vmx_exit_cr },
	[EXIT_REASON_INVD] = { .decode = vmx_exit_invd },
	[EXIT_REASON_MWAIT_INSTRUCTION] = { .decode = vmx_exit_hidden },
	[EXIT_REASON_MONITOR_INSTRUCTION] = { .decode = vmx_exit_hidden },
	[EXIT_REASON_RDPMC] = { .decode = vmx_exit_rdpmc },
	[EXIT_REASON_XSETBV] = { .kind = VMEXIT_XSETBV },
	[EXIT_REASON_VMCALL] = { .kind = VMEXIT_HYPERCALL },
	[EXIT_REASON_VMCLEAR] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMLAUNCH] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMPTRLD] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMPTRST] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMREAD] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMRESUME] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMWRITE] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMOFF] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMON] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_INVEPT] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_INVVPID] = { .kind = VMEXIT_VIRT_INSN },
	[EXIT_REASON_VMFUNC] = { .kind = VMEXIT_VIRT_INSN },
};

static const char *const vmx_exit_names[VMX_EXIT_REASON_COUNT] = {
	[EXIT_REASON_EXCEPTION_NMI] = "exception or NMI",
	[EXIT_REASON_EXTERNAL_INTERRUPT] = "external interrupt",
	[EXIT_REASON_TRIPLE_FAULT] = "triple fault",
	[EXIT_REASON_INIT_SIGNAL] = "INIT signal",
	[EXIT_REASON_SIPI_SIGNAL] = "SIPI",
	[EXIT_REASON_INTERRUPT_WINDOW] = "interrupt window",
	[EXIT_REASON_NMI_WINDOW] = "NMI window",
	[EXIT_REASON_TASK_SWITCH] = "task switch",
	[EXIT_REASON_CPUID] = "CPUID",
	[EXIT_REASON_GETSEC] = "GETSEC",
	[EXIT_REASON_HLT] = "HLT",
	[EXIT_REASON_INVD] = "INVD",
	[EXIT_REASON_INVLPG] = "INVLPG",
	[EXIT_REASON_RDPMC] = "RDPMC",
	[EXIT_REASON_RDTSC] = "RDTSC",
	[EXIT_REASON_RSM] = "RSM",
	[EXIT_REASON_VMCALL] = "VMCALL",
	[EXIT_REASON_VMCLEAR] = "VMCLEAR",
	[EXIT_REASON_VMLAUNCH] = "VMLAUNCH",
	[EXIT_REASON_VMPTRLD] = "VMPTRLD",
	[EXIT_REASON_VMPTRST] = "VMPTRST",
	[EXIT_REASON_VMREAD] = "VMREAD",
	[EXIT_REASON_VMRESUME] = "VMRESUME",
	[EXIT_REASON_VMWRITE] = "VMWRITE",
	[EXIT_REASON_VMOFF] = "VMXOFF",
	[EXIT_REASON_VMON] = "VMXON",
	[EXIT_REASON_CR_ACCESS] = "control-register access",
	[EXIT_REASON_DR_ACCESS] = "debug-register access",
	[EXIT_REASON_IO_INSTRUCTION] = "I/O instruction",
	[EXIT_REASON_MSR_READ] = "RDMSR",
	[EXIT_REASON_MSR_WRITE] = "WRMSR",
	[EXIT_REASON_INVALID_STATE] = "invalid guest state",
	[EXIT_REASON_MSR_LOAD_FAIL] = "MSR loading failed",
	[EXIT_REASON_MWAIT_INSTRUCTION] = "MWAIT",
	[EXIT_REASON_MONITOR_TRAP_FLAG] = "monitor trap flag",
	[EXIT_REASON_MONITOR_INSTRUCTION] = "MONITOR",
	[EXIT_REASON_PAUSE_INSTRUCTION] = "PAUSE",
	[EXIT_REASON_MCE_DURING_VMENTRY] = "machine check during VM entry",
	[EXIT_REASON_TPR_BELOW_THRESHOLD] = "TPR below threshold",
	[EXIT_REASON_APIC_ACCESS] = "APIC access",
	[EXIT_REASON_EOI_INDUCED] = "virtualized EOI",
	[EXIT_REASON_GDTR_IDTR] = "GDTR/IDTR access",
	[EXIT_REASON_LDTR_TR] = "LDTR/TR access",
	[EXIT_REASON_EPT_VIOLATION] = "EPT violation",
	[EXIT_REASON_EPT_MISCONFIG] = "EPT misconfiguration",
	[EXIT_REASON_INVEPT] = "INVEPT",
	[EXIT_REASON_RDTSCP] = "RDTSCP",
	[EXIT_REASON_PREEMPTION_TIMER] = "VMX-preemption timer",
	[EXIT_REASON_INVVPID] = "INVVPID",
	[EXIT_REASON_WBINVD] = "WBINVD",
	[EXIT_REASON_XSETBV] = "XSETBV",
	[EXIT_REASON_APIC_WRITE] = "APIC write",
	[EXIT_REASON_RDRAND] = "RDRAND",
	[EXIT_REASON_INVPCID] = "INVPCID",
	[EXIT_REASON_VMFUNC] = "VMFUNC",
	[EXIT_REASON_ENCLS] = "ENCLS",
	[EXIT_REASON_RDSEED] = "RDSEED",
	[EXIT_REASON_PML_FULL] = "page-modification log full",
	[EXIT_REASON_XSAVES] = "XSAVES",
	[EXIT_REASON_XRSTORS] = "XRSTORS",
	[EXIT_REASON_UMWAIT] = "UMWAIT",
	[EXIT_REASON_TPAUSE] = "TPAUSE",
	[EXIT_REASON_BUS_LOCK] = "bus lock",
	[EXIT_REASON_NOTIFY] = "notify window",
};

const char *vmx_exit_reason_name(u32 reason)
{
	if (reason == VMX_EXIT_VMFAIL)
		return "VMLAUNCH/VMRESUME failed (qualification: VM-instruction error)";
	if (reason < VMX_EXIT_REASON_COUNT && vmx_exit_names[reason])
		return vmx_exit_names[reason];
	return "unknown";
}

/* SDM Vol. 3C 31.4 "VM Instruction Error Numbers", the ones VM entry gives. */
const char *vmx_insn_error_name(u32 error)
{
	switch (error) {
	case VMXERR_VMLAUNCH_NONCLEAR_VMCS:
		return "VMLAUNCH with a non-clear VMCS";
	case VMXERR_VMRESUME_NONLAUNCHED_VMCS:
		return "VMRESUME with a non-launched VMCS";
	case VMXERR_ENTRY_INVALID_CONTROL_FIELD:
		return "invalid control field";
	case VMXERR_ENTRY_INVALID_HOST_STATE_FIELD:
		return "invalid host-state field";
	default:
		return "VM entry refused";
	}
}

/*
 * An event the CPU was delivering when the exit happened (IDT-vectoring
 * information) has not reached the guest: queue it again for the next entry,
 * so a resumed guest, or a saved image, still receives it. SDM Vol. 3C
 * 28.2.4 "Information for VM Exits During Event Delivery".
 */
static void vmx_requeue_event(void)
{
	u32 info = vmcs_read32(IDT_VECTORING_INFO_FIELD);
	u32 type = (info & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT;

	if (!(info & INTR_INFO_VALID_MASK))
		return;
	if (info & INTR_INFO_DELIVER_CODE_MASK)
		vmcs_write32(VM_ENTRY_EXCEPTION_ERROR_CODE, vmcs_read32(IDT_VECTORING_ERROR_CODE));
	if (type == INTR_TYPE_SOFT_INTR || type == INTR_TYPE_PRIV_SW_EXCEPTION ||
	    type == INTR_TYPE_SOFT_EXCEPTION)
		vmcs_write32(VM_ENTRY_INSTRUCTION_LEN, vmcs_read32(VM_EXIT_INSTRUCTION_LEN));
	vmcs_write32(VM_ENTRY_INTR_INFO_FIELD,
		     info & (INTR_INFO_VALID_MASK | INTR_INFO_INTR_TYPE_MASK |
			     INTR_INFO_DELIVER_CODE_MASK | INTR_INFO_VECTOR_MASK));
}

/* Decodes the exit that just happened into *exit. Returns 0, or -EIO when it
 * was a failed VM entry (exit reason bit 31): the guest state was refused. */
int vmx_decode_exit(struct vcpu *v, struct vm_exit *exit)
{
	u32 reason = vmcs_read32(VM_EXIT_REASON);
	u32 basic = reason & VMX_EXIT_REASON_BASIC_MASK;

	exit->raw_reason = basic;
	exit->qualification = vmcs_readl(EXIT_QUALIFICATION);
	exit->rip = vmcs_readl(GUEST_RIP);
	if (reason & VMX_EXIT_REASONS_FAILED_VMENTRY) {
		/* SDM Vol. 3C 27.8 "VM-Entry Failures During or After Loading
		 * Guest State"; Bochs' log names the check that failed. */
		exit->kind = VMEXIT_ENTRY_FAILED;
		pr_err("vmx: VM %d vCPU %d: VM entry failed: %s (exit reason %u, qualification "
		       "%lu) at RIP 0x%lx\n",
		       v->vm->id, v->id, vmx_exit_reason_name(basic), basic, exit->qualification,
		       exit->rip);
		return -EIO;
	}
	if (!vmx_caps.lma_saved)
		vmx_set_entry_ia32e(vmcs_read64(GUEST_IA32_EFER) & EFER_LMA);
	vmx_requeue_event();
	exit->insn_len = vmcs_read32(VM_EXIT_INSTRUCTION_LEN);
	if (basic >= VMX_EXIT_REASON_COUNT) {
		exit->kind = VMEXIT_UNHANDLED;
		return 0;
	}
	exit->kind = vmx_exits[basic].kind;
	if (vmx_exits[basic].decode)
		vmx_exits[basic].decode(v, exit);
	else if (exit->kind == VMEXIT_NONE)
		exit->kind = VMEXIT_UNHANDLED;
	return 0;
}
