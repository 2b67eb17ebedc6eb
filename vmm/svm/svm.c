/*
 * The AMD-V backend: SVM bring-up, one VMCB per vCPU with its intercepts, one
 * ASID and one nested page table per VM, entering the guest, and conversion of
 * the VMCB to and from the neutral struct vcpu_state. Exits are decoded in
 * svm_exit.c; everything they mean is emulated by generic code in vmm/.
 * Host context, boot CPU, interrupts off.
 * APM Vol. 2 15 "Secure Virtual Machine", Appendix B "Layout of VMCB".
 */
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/x86.h"
#include "vmm/svm/svm.h"

#define X86_CR0_PE BIT(0)
#define X86_RFLAGS_VM BIT(17)
#define SVM_DEFAULT_PAT 0x0007040600070406ULL

/* Exceptions intercepted so generic code can count them (#GP and #AC storms,
 * the latter also a known way to wedge a CPU in microcode) and reinject them. */
#define SVM_EXCEPTION_INTERCEPTS (BIT(13) | BIT(17))

static u64 host_save_pa; /* the host's VMSAVE state, reloaded after every exit */
static u64 iopm_pa, msrpm_pa;
static struct vcpu *dr_owner; /* whose DR0-3 are in the CPU */

static struct svm_vcpu *to_svm(struct vcpu *v) { return v->arch; }

/* One feature check that fails fast and says what is missing, then EFER.SVME,
 * the host save area (VM_HSAVE_PA) and the shared permission maps.
 * APM Vol. 2 15.4 "Enabling SVM", 15.30.4 "VM_HSAVE_PA MSR". */
static int svm_hw_enable(void)
{
	u64 efer, hsave;

	if (!cpu.svm || !cpu.svm_npt || cpu.svm_disabled) {
		pr_err("AMD-V: %s", !cpu.svm ? "the CPU has no SVM" :
				    cpu.svm_disabled ?
					       "SVM is disabled by the firmware (VM_CR.SVMDIS)" :
					       "the CPU has no nested paging (NPT)");
		return -ENODEV;
	}
	if (cpu.svm_nasid && cpu.svm_nasid <= VM_MAX) {
		pr_err("AMD-V: only %u ASIDs, Amber needs %d", cpu.svm_nasid, VM_MAX + 1);
		return -ENODEV;
	}
	if (rdmsr_safe(MSR_EFER, &efer) || wrmsr_safe(MSR_EFER, efer | EFER_SVME)) {
		pr_err("AMD-V: setting EFER.SVME faulted");
		return -ENODEV;
	}
	hsave = pmm_alloc_page();
	host_save_pa = pmm_alloc_page();
	iopm_pa = pmm_alloc_contig(SVM_IOPM_SIZE / PAGE_SIZE, 1);
	msrpm_pa = pmm_alloc_contig(SVM_MSRPM_SIZE / PAGE_SIZE, 1);
	if (!hsave || !host_save_pa || !iopm_pa || !msrpm_pa) {
		pr_err("AMD-V: out of memory for the host save area and permission maps");
		return -ENOMEM;
	}
	if (wrmsr_safe(MSR_VM_HSAVE_PA, hsave)) {
		pr_err("AMD-V: writing VM_HSAVE_PA faulted");
		return -ENODEV;
	}
	/* Every port and every MSR is intercepted: generic code decides. */
	memset(phys_to_virt(iopm_pa), 0xFF, SVM_IOPM_SIZE);
	memset(phys_to_virt(msrpm_pa), 0xFF, SVM_MSRPM_SIZE);
	__asm__ volatile("vmsave %%rax" ::"a"(host_save_pa) : "memory");
	pr_info("AMD-V: enabled (NPT, %u ASIDs, NRIPS %s, VM_CR %s)", cpu.svm_nasid,
		cpu.svm_nrips ? "yes" : "no: next RIP decoded by Amber",
		cpu.svm_vm_cr_faults ? "unreadable (#GP), taken as enabled" : "readable");
	return 0;
}

static int svm_vm_init(struct vm *vm)
{
	struct svm_vm *s = kzalloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	if (npt_build(&s->npt, vm->chunks, vm->mem_size)) {
		kfree(s);
		return -ENOMEM;
	}
	s->asid = vm->id; /* 1..VM_MAX; ASID 0 is the host's */
	vm->arch = s;
	return 0;
}

static void svm_vm_destroy(struct vm *vm)
{
	struct svm_vm *s = vm->arch;

	npt_free(&s->npt);
	kfree(s);
	vm->arch = NULL;
}

/* The intercepts of APM Vol. 2 15.9-15.14, nested paging, V_INTR_MASKING. The
 * guest state comes later, from vcpu_set_state(). */
static int svm_vcpu_init(struct vcpu *v)
{
	struct svm_vm *svm = v->vm->arch;
	struct svm_vcpu *s = kzalloc(sizeof(*s));
	struct vmcb_control_area *c;

	if (!s)
		return -ENOMEM;
	s->vmcb_pa = pmm_alloc_page();
	if (!s->vmcb_pa) {
		kfree(s);
		return -ENOMEM;
	}
	s->vmcb = phys_to_virt(s->vmcb_pa);
	s->flush = true;
	v->arch = s;
	c = &s->vmcb->control;
	c->intercept_exceptions = SVM_EXCEPTION_INTERCEPTS;
	c->intercept_misc1 = INTERCEPT_INTR | INTERCEPT_NMI | INTERCEPT_SMI | INTERCEPT_INIT |
			     INTERCEPT_CPUID | INTERCEPT_INVD | INTERCEPT_HLT | INTERCEPT_INVLPGA |
			     INTERCEPT_IOIO_PROT | INTERCEPT_MSR_PROT | INTERCEPT_SHUTDOWN;
	c->intercept_misc2 = INTERCEPT_VMRUN | INTERCEPT_VMMCALL | INTERCEPT_VMLOAD |
			     INTERCEPT_VMSAVE | INTERCEPT_STGI | INTERCEPT_CLGI | INTERCEPT_SKINIT |
			     INTERCEPT_MONITOR | INTERCEPT_MWAIT | INTERCEPT_MWAIT_COND |
			     INTERCEPT_XSETBV;
	c->iopm_base_pa = iopm_pa;
	c->msrpm_base_pa = msrpm_pa;
	c->asid = svm->asid;
	c->int_ctl = V_INTR_MASKING_MASK;
	c->nested_ctl = SVM_NESTED_CTL_NP_ENABLE;
	c->nested_cr3 = svm->npt.root_pa;
	s->vmcb->save.g_pat = SVM_DEFAULT_PAT;
	return 0;
}

static void svm_vcpu_destroy(struct vcpu *v)
{
	struct svm_vcpu *s = to_svm(v);

	if (dr_owner == v)
		dr_owner = NULL;
	pmm_free_page(s->vmcb_pa);
	kfree(s);
	v->arch = NULL;
}

static u64 read_dr(int n)
{
	u64 val = 0;

	switch (n) {
	case 0:
		__asm__ volatile("mov %%db0, %0" : "=r"(val));
		break;
	case 1:
		__asm__ volatile("mov %%db1, %0" : "=r"(val));
		break;
	case 2:
		__asm__ volatile("mov %%db2, %0" : "=r"(val));
		break;
	case 3:
		__asm__ volatile("mov %%db3, %0" : "=r"(val));
		break;
	}
	return val;
}

static void write_dr(int n, u64 val)
{
	switch (n) {
	case 0:
		__asm__ volatile("mov %0, %%db0" ::"r"(val));
		break;
	case 1:
		__asm__ volatile("mov %0, %%db1" ::"r"(val));
		break;
	case 2:
		__asm__ volatile("mov %0, %%db2" ::"r"(val));
		break;
	case 3:
		__asm__ volatile("mov %0, %%db3" ::"r"(val));
		break;
	}
}

/* DR0-3 are not part of the VMCB; they are switched only when another vCPU
 * runs (the host never uses them). */
static void dr_switch(struct vcpu *v)
{
	if (dr_owner == v)
		return;
	if (dr_owner)
		for (int i = 0; i < 4; i++)
			to_svm(dr_owner)->dr[i] = read_dr(i);
	for (int i = 0; i < 4; i++)
		write_dr(i, to_svm(v)->dr[i]);
	dr_owner = v;
}

static int svm_vcpu_run(struct vcpu *v, struct vm_exit *e)
{
	struct svm_vcpu *s = to_svm(v);
	struct vmcb *vmcb = s->vmcb;

	dr_switch(v);
	vmcb->save.rax = v->regs[REG_RAX];
	vmcb->save.rsp = v->regs[REG_RSP];
	/* Without flush-by-ASID the only TLB control is "flush everything"; it is
	 * needed once per vCPU, since a VM's ASID may have served an older VM. */
	vmcb->control.tlb_ctl = s->flush ? TLB_CONTROL_FLUSH_ALL_ASID : TLB_CONTROL_DO_NOTHING;
	s->flush = false;
	svm_vmrun(v, s->vmcb_pa, host_save_pa);
	v->regs[REG_RAX] = vmcb->save.rax;
	v->regs[REG_RSP] = vmcb->save.rsp;
	/* The injected event, if any, was delivered or is in EXITINTINFO now. */
	vmcb->control.event_inj = 0;
	svm_decode_exit(v, e);
	return e->kind == VMEXIT_ENTRY_FAILED ? -EINVAL : 0;
}

/* Event types: struct vcpu_event uses the VMX encoding, EVENTINJ its own
 * (APM Vol. 2 15.20 "Event Injection"). */
static u8 event_type_to_vmx(u64 inj)
{
	u32 type = (inj & SVM_EVTINJ_TYPE_MASK) >> SVM_EVTINJ_TYPE_SHIFT;
	u8 vec = inj & SVM_EVTINJ_VEC_MASK;

	if (type == 3 && (vec == 3 || vec == 4))
		return 6; /* INT3/INTO: software exception */
	return (u8)type;
}

static u64 event_type_from_vmx(u8 type)
{
	switch (type) {
	case 0:
		return SVM_EVTINJ_TYPE_INTR;
	case 2:
		return SVM_EVTINJ_TYPE_NMI;
	case 4:
		return SVM_EVTINJ_TYPE_SOFT;
	default:
		return SVM_EVTINJ_TYPE_EXEPT;
	}
}

/*
 * The state that moves unchanged between the VMCB (and the debug registers
 * Amber keeps for the vCPU) and the neutral record, in one function for both
 * directions so that get and set cannot drift apart. `out`: VMCB to record.
 * Segment attributes need no conversion: the neutral format is the VMCB's.
 */
static void svm_xfer_state(struct svm_vcpu *s, struct vcpu_state *st, bool out)
{
	struct vmcb_save_area *sa = &s->vmcb->save;
	struct {
		struct vmcb_seg *vmcb;
		struct vcpu_segment *st;
	} segs[] = {
		{ &sa->es, &st->es },	  { &sa->cs, &st->cs }, { &sa->ss, &st->ss },
		{ &sa->ds, &st->ds },	  { &sa->fs, &st->fs }, { &sa->gs, &st->gs },
		{ &sa->ldtr, &st->ldtr }, { &sa->tr, &st->tr },
	};

	XFER_FIELD(out, sa->rip, st->rip);
	XFER_FIELD(out, sa->cr0, st->cr0);
	XFER_FIELD(out, sa->cr2, st->cr2);
	XFER_FIELD(out, sa->cr3, st->cr3);
	XFER_FIELD(out, sa->cr4, st->cr4);
	XFER_FIELD(out, sa->g_pat, st->pat);
	for (size_t i = 0; i < ARRAY_SIZE(segs); i++) {
		struct vmcb_seg *v = segs[i].vmcb;
		struct vcpu_segment *n = segs[i].st;

		XFER_FIELD(out, v->selector, n->selector);
		XFER_FIELD(out, v->attrib, n->attr);
		XFER_FIELD(out, v->limit, n->limit);
		XFER_FIELD(out, v->base, n->base);
		if (!out)
			v->attrib &= 0xFFF;
	}
	XFER_FIELD(out, sa->gdtr.base, st->gdtr.base);
	XFER_FIELD(out, sa->gdtr.limit, st->gdtr.limit);
	XFER_FIELD(out, sa->idtr.base, st->idtr.base);
	XFER_FIELD(out, sa->idtr.limit, st->idtr.limit);
	XFER_FIELD(out, sa->sysenter_cs, st->sysenter_cs);
	XFER_FIELD(out, sa->sysenter_esp, st->sysenter_esp);
	XFER_FIELD(out, sa->sysenter_eip, st->sysenter_eip);
	XFER_FIELD(out, sa->star, st->star);
	XFER_FIELD(out, sa->lstar, st->lstar);
	XFER_FIELD(out, sa->cstar, st->cstar);
	XFER_FIELD(out, sa->sfmask, st->sfmask);
	XFER_FIELD(out, sa->kernel_gs_base, st->kernel_gs_base);
	XFER_FIELD(out, s->dr[0], st->dr0);
	XFER_FIELD(out, s->dr[1], st->dr1);
	XFER_FIELD(out, s->dr[2], st->dr2);
	XFER_FIELD(out, s->dr[3], st->dr3);
	XFER_FIELD(out, sa->dr6, st->dr6);
	XFER_FIELD(out, sa->dr7, st->dr7);
}

static void svm_get_state(struct vcpu *v, struct vcpu_state *st)
{
	struct svm_vcpu *s = to_svm(v);
	const struct vmcb_save_area *sa = &s->vmcb->save;
	const struct vmcb_control_area *c = &s->vmcb->control;

	if (dr_owner == v)
		for (int i = 0; i < 4; i++)
			s->dr[i] = read_dr(i);
	svm_xfer_state(s, st, true);
	st->rflags = sa->rflags;
	st->cr8 = c->int_ctl & V_TPR_MASK;
	st->efer = sa->efer & ~EFER_SVME; /* Amber's, not the guest's */
	st->gdtr.reserved = st->idtr.reserved = 0;
	st->tsc = rdtsc() + c->tsc_offset;
	st->interruptibility = (c->int_state & SVM_INTERRUPT_SHADOW_MASK) ? VCPU_INTR_STI : 0;
	memset(&st->pending, 0, sizeof(st->pending));
	if (c->event_inj & SVM_EVTINJ_VALID)
		st->pending =
			(struct vcpu_event){ .valid = 1,
					     .type = event_type_to_vmx(c->event_inj),
					     .vector = c->event_inj & SVM_EVTINJ_VEC_MASK,
					     .has_error = !!(c->event_inj & SVM_EVTINJ_VALID_ERR),
					     .error_code = (u32)(c->event_inj >> 32) };
}

static void svm_set_state(struct vcpu *v, const struct vcpu_state *st_in)
{
	struct svm_vcpu *s = to_svm(v);
	struct vmcb_save_area *sa = &s->vmcb->save;
	struct vmcb_control_area *c = &s->vmcb->control;
	struct vcpu_state *st = (struct vcpu_state *)st_in; /* only read: out is false */

	svm_xfer_state(s, st, false);
	sa->rflags = st->rflags | 0x2;
	c->int_ctl = (c->int_ctl & ~(u64)V_TPR_MASK) | (st->cr8 & V_TPR_MASK);
	sa->efer = st->efer | EFER_SVME; /* VMRUN requires it (15.5.1 "Basic Operation") */
	/* CPL is SS.DPL in protected mode, 0 in real mode, 3 in virtual-8086 mode. */
	if (!(st->cr0 & X86_CR0_PE))
		sa->cpl = 0;
	else if (st->rflags & X86_RFLAGS_VM)
		sa->cpl = 3;
	else
		sa->cpl = (st->ss.attr >> 5) & 3;
	if (dr_owner == v)
		dr_owner = NULL; /* reload them before the next entry */
	c->tsc_offset = st->tsc - rdtsc();
	c->int_state = (st->interruptibility & (VCPU_INTR_STI | VCPU_INTR_MOV_SS)) ?
			       SVM_INTERRUPT_SHADOW_MASK :
			       0;
	c->event_inj = 0;
	if (st->pending.valid)
		c->event_inj = SVM_EVTINJ_VALID | (st->pending.vector & SVM_EVTINJ_VEC_MASK) |
			       event_type_from_vmx(st->pending.type) |
			       (st->pending.has_error ?
					SVM_EVTINJ_VALID_ERR | (u64)st->pending.error_code << 32 :
					0);
}

static void svm_advance_rip(struct vcpu *v, const struct vm_exit *e)
{
	struct vmcb *vmcb = to_svm(v)->vmcb;

	vmcb->save.rip += e->insn_len;
	vmcb->control.int_state &= ~SVM_INTERRUPT_SHADOW_MASK; /* the instruction ran */
}

static void svm_inject_exception(struct vcpu *v, u8 vector, bool has_error, u32 error_code)
{
	struct vmcb *vmcb = to_svm(v)->vmcb;

	/* Real mode pushes no error code; VMRUN refuses an EVENTINJ that has one
	 * (APM Vol. 2 15.20 "Event Injection"). */
	if (!(vmcb->save.cr0 & X86_CR0_PE))
		has_error = false;
	vmcb->control.event_inj = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | vector |
				  (has_error ? SVM_EVTINJ_VALID_ERR | (u64)error_code << 32 : 0);
}

static u64 svm_read_rip(struct vcpu *v) { return to_svm(v)->vmcb->save.rip; }

const struct vcpu_ops svm_ops = {
	.name = "AMD-V",
	.hw_enable = svm_hw_enable,
	.vm_init = svm_vm_init,
	.vm_destroy = svm_vm_destroy,
	.vcpu_init = svm_vcpu_init,
	.vcpu_destroy = svm_vcpu_destroy,
	.vcpu_run = svm_vcpu_run,
	.get_state = svm_get_state,
	.set_state = svm_set_state,
	.advance_rip = svm_advance_rip,
	.inject_exception = svm_inject_exception,
	.read_rip = svm_read_rip,
	.exit_name = svm_exit_name,
};
