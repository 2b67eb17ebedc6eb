/*
 * AMD-V side of the neutral vCPU state (vmm/vcpu_state.h): transfer to and
 * from the VMCB in one function for both directions, the guest state the VMCB
 * does not hold (DR0-3), and event injection. Host context, the vCPU out of
 * guest mode.
 * APM Vol. 2 15.5.1 "Basic Operation", 15.20 "Event Injection", Appendix B
 * "Layout of VMCB".
 */
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/smp.h"
#include "kernel/x86.h"
#include "vmm/svm/svm.h"
#include "vmm/vtsc.h"

#define X86_CR0_PE BIT(0)
#define X86_RFLAGS_FIXED BIT(1)
#define X86_RFLAGS_VM BIT(17)

/* Whose DR0-3 each CPU holds now (NULL: nobody's), by CPU number. */
static struct vcpu *svm_cpu_owners[SMP_MAX_CPUS];
#define svm_cpu_owner (svm_cpu_owners[smp_this_index()])

/* The host's TSC as the guest's runs from it: through the vCPU's ratio when
 * it scales, before the offset is added (APM Vol. 2 15.30.5 "TSC Ratio
 * MSR"). */
static u64 svm_host_tsc(const struct vcpu *v)
{
	u64 ratio = ((const struct svm_vcpu *)v->arch)->tsc_ratio;

	return ratio ? vtsc_scale(rdtsc(), ratio, 32) : rdtsc();
}

#define DEFINE_DR(n) \
	static inline u64 read_dr##n(void) \
	{ \
		u64 v; \
		__asm__ volatile("mov %%dr" #n ", %0" : "=r"(v)); \
		return v; \
	} \
	static inline void write_dr##n(u64 v) { __asm__ volatile("mov %0, %%dr" #n ::"r"(v)); }
DEFINE_DR(0)
DEFINE_DR(1)
DEFINE_DR(2)
DEFINE_DR(3)
#undef DEFINE_DR

/* MOV to DR0-3 faults on a non-canonical address; a restored image must not
 * be able to crash the host that way. */
static u64 canonical(u64 a) { return (u64)((s64)(a << 16) >> 16) == a ? a : 0; }

static void svm_save_cpu_regs(struct svm_guest_regs *g)
{
	g->dr[0] = read_dr0();
	g->dr[1] = read_dr1();
	g->dr[2] = read_dr2();
	g->dr[3] = read_dr3();
}

static void svm_load_cpu_regs(const struct svm_guest_regs *g)
{
	write_dr0(canonical(g->dr[0]));
	write_dr1(canonical(g->dr[1]));
	write_dr2(canonical(g->dr[2]));
	write_dr3(canonical(g->dr[3]));
}

/* Before entering v: the CPU gets v's debug registers, after saving those of
 * the vCPU that ran before (if another one). */
void svm_own_cpu_regs(struct vcpu *v)
{
	struct svm_vcpu *s = v->arch;

	if (svm_cpu_owner == v)
		return;
	if (svm_cpu_owner)
		svm_save_cpu_regs(&((struct svm_vcpu *)svm_cpu_owner->arch)->g);
	svm_load_cpu_regs(&s->g);
	svm_cpu_owner = v;
}

/* v's copy in svm_vcpu is authoritative again (set_state, destroy). */
void svm_release_cpu_regs(struct vcpu *v)
{
	if (svm_cpu_owner == v)
		svm_cpu_owner = NULL;
}

/* vcpu_ops.vcpu_put: the registers this CPU holds for v back into its copy. */
void svm_vcpu_put(struct vcpu *v)
{
	if (svm_cpu_owner == v) {
		svm_save_cpu_regs(&((struct svm_vcpu *)v->arch)->g);
		svm_cpu_owner = NULL;
	}
}

/* ---- events ---------------------------------------------------------------- */

/* Queues an event for the next VMRUN, APM Vol. 2 15.20 "Event Injection". Real
 * mode pushes no error code, and VMRUN refuses an EVENTINJ that has one. */
void svm_inject_event(struct vmcb *vmcb, u64 type, u8 vector, bool has_error, u32 error_code)
{
	if (!(vmcb->save.cr0 & X86_CR0_PE))
		has_error = false;
	vmcb->control.event_inj = SVM_EVTINJ_VALID | type | vector |
				  (has_error ? SVM_EVTINJ_VALID_ERR | (u64)error_code << 32 : 0);
}

/* struct vcpu_event uses the VMX encoding of event types, EVENTINJ its own. */
static u8 svm_event_type_to_vmx(u64 inj)
{
	u32 type = (inj & SVM_EVTINJ_TYPE_MASK) >> SVM_EVTINJ_TYPE_SHIFT;
	u8 vec = inj & SVM_EVTINJ_VEC_MASK;

	if (type == 3 && (vec == 3 || vec == 4))
		return 6; /* INT3/INTO: software exception */
	return (u8)type;
}

static u64 svm_event_type_from_vmx(u8 type)
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

/* The event queued for the next VMRUN (EVENTINJ, or an external interrupt
 * posted through V_IRQ), as the neutral record has it. */
static struct vcpu_event svm_event_get(const struct svm_vcpu *s)
{
	const struct vmcb_control_area *c = &s->vmcb->control;
	struct vcpu_event ev = { 0 };

	if (c->event_inj & SVM_EVTINJ_VALID)
		ev = (struct vcpu_event){ .valid = 1,
					  .type = svm_event_type_to_vmx(c->event_inj),
					  .vector = c->event_inj & SVM_EVTINJ_VEC_MASK,
					  .has_error = !!(c->event_inj & SVM_EVTINJ_VALID_ERR),
					  .error_code = (u32)(c->event_inj >> 32) };
	else if (s->virq)
		ev = (struct vcpu_event){ .valid = 1,
					  .type = VCPU_EVENT_EXTINT,
					  .vector = (u8)(c->int_ctl >> V_INTR_VECTOR_SHIFT) };
	return ev;
}

static void svm_event_set(struct svm_vcpu *s, const struct vcpu_event *ev)
{
	struct vmcb_control_area *c = &s->vmcb->control;

	c->event_inj = 0;
	svm_drop_virq(s);
	if (ev->valid && ev->type == VCPU_EVENT_EXTINT && svm_caps.virq_inject)
		svm_post_virq(s, ev->vector);
	else if (ev->valid)
		c->event_inj =
			SVM_EVTINJ_VALID | (ev->vector & SVM_EVTINJ_VEC_MASK) |
			svm_event_type_from_vmx(ev->type) |
			(ev->has_error ? SVM_EVTINJ_VALID_ERR | (u64)ev->error_code << 32 : 0);
}

static void svm_set_intr_state(struct svm_vcpu *s, u32 intr)
{
	struct vmcb_control_area *c = &s->vmcb->control;

	c->int_state = (intr & (VCPU_INTR_STI | VCPU_INTR_MOV_SS)) ? SVM_INTERRUPT_SHADOW_MASK : 0;
	s->nmi_blocked = intr & VCPU_INTR_NMI;
	s->iret_seen = false;
	if (s->nmi_blocked)
		c->intercept_misc1 |= INTERCEPT_IRET;
	else
		c->intercept_misc1 &= ~INTERCEPT_IRET;
}

/* ---- the whole state ----------------------------------------------------------- */

static void svm_xfer_seg(struct vmcb_seg *vs, struct vcpu_segment *out,
			 const struct vcpu_segment *in)
{
	VCPU_XFER(out, in, vs->selector, selector);
	VCPU_XFER_WITH(out, in, attr, vs->attrib, vs->attrib = in->attr & 0xFFF);
	VCPU_XFER(out, in, vs->limit, limit);
	VCPU_XFER(out, in, vs->base, base);
}
#define SVM_XFER_SEG(seg) svm_xfer_seg(&sa->seg, out ? &out->seg : NULL, in ? &in->seg : NULL)

/*
 * The one list of the fields that move between the VMCB (and the debug
 * registers Amber keeps for the vCPU) and the neutral record, for both
 * directions: get_state (out set) and set_state (in set) cannot drift apart.
 * Segment attributes need no conversion: the neutral format is the VMCB's.
 */
static void svm_xfer_state(struct vcpu *v, struct vcpu_state *out, const struct vcpu_state *in)
{
	struct svm_vcpu *s = v->arch;
	struct vmcb_save_area *sa = &s->vmcb->save;
	struct vmcb_control_area *c = &s->vmcb->control;

	VCPU_XFER(out, in, sa->rip, rip);
	VCPU_XFER_WITH(out, in, rflags, sa->rflags, sa->rflags = in->rflags | X86_RFLAGS_FIXED);
	VCPU_XFER(out, in, sa->cr0, cr0);
	VCPU_XFER(out, in, sa->cr2, cr2);
	VCPU_XFER(out, in, sa->cr3, cr3);
	VCPU_XFER(out, in, sa->cr4, cr4);
	VCPU_XFER_WITH(out, in, cr8, c->int_ctl & V_TPR_MASK,
		       c->int_ctl = (c->int_ctl & ~(u64)V_TPR_MASK) | (in->cr8 & V_TPR_MASK));
	/* EFER.SVME is Amber's, not the guest's; VMRUN requires it (15.5.1). */
	VCPU_XFER_WITH(out, in, efer, sa->efer & ~EFER_SVME, sa->efer = in->efer | EFER_SVME);
	VCPU_XFER(out, in, sa->g_pat, pat);
	SVM_XFER_SEG(es);
	SVM_XFER_SEG(cs);
	SVM_XFER_SEG(ss);
	SVM_XFER_SEG(ds);
	SVM_XFER_SEG(fs);
	SVM_XFER_SEG(gs);
	SVM_XFER_SEG(ldtr);
	SVM_XFER_SEG(tr);
	VCPU_XFER(out, in, sa->gdtr.base, gdtr.base);
	VCPU_XFER(out, in, sa->gdtr.limit, gdtr.limit);
	VCPU_XFER(out, in, sa->idtr.base, idtr.base);
	VCPU_XFER(out, in, sa->idtr.limit, idtr.limit);
	VCPU_XFER(out, in, sa->sysenter_cs, sysenter_cs);
	VCPU_XFER(out, in, sa->sysenter_esp, sysenter_esp);
	VCPU_XFER(out, in, sa->sysenter_eip, sysenter_eip);
	VCPU_XFER(out, in, sa->star, star);
	VCPU_XFER(out, in, sa->lstar, lstar);
	VCPU_XFER(out, in, sa->cstar, cstar);
	VCPU_XFER(out, in, sa->sfmask, sfmask);
	VCPU_XFER(out, in, sa->kernel_gs_base, kernel_gs_base);
	VCPU_XFER(out, in, s->g.dr[0], dr0);
	VCPU_XFER(out, in, s->g.dr[1], dr1);
	VCPU_XFER(out, in, s->g.dr[2], dr2);
	VCPU_XFER(out, in, s->g.dr[3], dr3);
	VCPU_XFER(out, in, sa->dr6, dr6);
	VCPU_XFER(out, in, sa->dr7, dr7);
	/* The guest's TSC is the host's (scaled) plus the offset. */
	VCPU_XFER_WITH(out, in, tsc, svm_host_tsc(v) + c->tsc_offset,
		       c->tsc_offset = in->tsc - svm_host_tsc(v));
	/* AMD-V has one interrupt shadow for STI and MOV SS; NMI blocking is
	 * Amber's (svm.h), with the IRET intercept on while it lasts. */
	VCPU_XFER_WITH(out, in, interruptibility,
		       ((c->int_state & SVM_INTERRUPT_SHADOW_MASK) ? VCPU_INTR_STI : 0) |
			       (s->nmi_blocked ? VCPU_INTR_NMI : 0),
		       svm_set_intr_state(s, in->interruptibility));
	VCPU_XFER_WITH(out, in, pending, svm_event_get(s), svm_event_set(s, &in->pending));
	/* Derived, not stored: CPL is SS.DPL in protected mode, 0 in real mode,
	 * 3 in virtual-8086 mode; the descriptor tables' padding is zero. */
	if (in)
		sa->cpl = !(in->cr0 & X86_CR0_PE)      ? 0 :
			  (in->rflags & X86_RFLAGS_VM) ? 3 :
							 (in->ss.attr >> 5) & 3;
	else
		out->gdtr.reserved = out->idtr.reserved = 0;
}

void svm_get_state(struct vcpu *v, struct vcpu_state *s)
{
	struct svm_vcpu *x = v->arch;

	if (svm_cpu_owner == v)
		svm_save_cpu_regs(&x->g);
	svm_xfer_state(v, s, NULL);
}

void svm_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	svm_xfer_state(v, NULL, s);
	svm_release_cpu_regs(v); /* the next entry loads them from the copy */
}

/* ---- one field at a time --------------------------------------------------- */

int svm_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	struct vmcb *vmcb = ((struct svm_vcpu *)v->arch)->vmcb;
	struct vmcb_save_area *sa = &vmcb->save;

	switch (f) {
	case VCPU_FIELD_CR0:
		*val = sa->cr0;
		break;
	case VCPU_FIELD_CR4:
		*val = sa->cr4;
		break;
	case VCPU_FIELD_EFER:
		*val = sa->efer & ~EFER_SVME;
		break;
	case VCPU_FIELD_PAT:
		*val = sa->g_pat;
		break;
	case VCPU_FIELD_SYSENTER_CS:
		*val = sa->sysenter_cs;
		break;
	case VCPU_FIELD_SYSENTER_ESP:
		*val = sa->sysenter_esp;
		break;
	case VCPU_FIELD_SYSENTER_EIP:
		*val = sa->sysenter_eip;
		break;
	case VCPU_FIELD_STAR:
		*val = sa->star;
		break;
	case VCPU_FIELD_LSTAR:
		*val = sa->lstar;
		break;
	case VCPU_FIELD_CSTAR:
		*val = sa->cstar;
		break;
	case VCPU_FIELD_SFMASK:
		*val = sa->sfmask;
		break;
	case VCPU_FIELD_FS_BASE:
		*val = sa->fs.base;
		break;
	case VCPU_FIELD_GS_BASE:
		*val = sa->gs.base;
		break;
	case VCPU_FIELD_KERNEL_GS_BASE:
		*val = sa->kernel_gs_base;
		break;
	case VCPU_FIELD_TSC:
		*val = svm_host_tsc(v) + vmcb->control.tsc_offset;
		break;
	case VCPU_FIELD_CR8:
		*val = vmcb->control.int_ctl & V_TPR_MASK;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

int svm_set_field(struct vcpu *v, enum vcpu_field f, u64 val)
{
	struct vmcb *vmcb = ((struct svm_vcpu *)v->arch)->vmcb;
	struct vmcb_save_area *sa = &vmcb->save;

	switch (f) {
	case VCPU_FIELD_EFER:
		sa->efer = val | EFER_SVME;
		break;
	case VCPU_FIELD_PAT:
		sa->g_pat = val;
		break;
	case VCPU_FIELD_SYSENTER_CS:
		sa->sysenter_cs = val;
		break;
	case VCPU_FIELD_SYSENTER_ESP:
		sa->sysenter_esp = val;
		break;
	case VCPU_FIELD_SYSENTER_EIP:
		sa->sysenter_eip = val;
		break;
	case VCPU_FIELD_STAR:
		sa->star = val;
		break;
	case VCPU_FIELD_LSTAR:
		sa->lstar = val;
		break;
	case VCPU_FIELD_CSTAR:
		sa->cstar = val;
		break;
	case VCPU_FIELD_SFMASK:
		sa->sfmask = val;
		break;
	case VCPU_FIELD_FS_BASE:
		sa->fs.base = val;
		break;
	case VCPU_FIELD_GS_BASE:
		sa->gs.base = val;
		break;
	case VCPU_FIELD_KERNEL_GS_BASE:
		sa->kernel_gs_base = val;
		break;
	case VCPU_FIELD_TSC:
		vmcb->control.tsc_offset = val - svm_host_tsc(v);
		break;
	case VCPU_FIELD_CR8:
		/* V_TPR: the guest's MOV CR8 reads and writes it without an
		 * exit (V_INTR_MASKING, APM Vol. 2 15.21.2 "Virtualizing APIC.TPR"). */
		vmcb->control.int_ctl = (vmcb->control.int_ctl & ~(u64)V_TPR_MASK) |
					(val & V_TPR_MASK);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* The TSC ratio for guest_hz/host_hz, or none for equal rates; the offset is
 * rewritten so the guest's TSC reads on from where it was. The MSR itself is
 * the CPU's: svm_vcpu_run loads it before a VMRUN that needs another ratio
 * than the one it holds. APM Vol. 2 15.30.5 "TSC Ratio MSR". */
int svm_set_tsc_ratio(struct vcpu *v, u64 guest_hz, u64 host_hz)
{
	struct svm_vcpu *s = v->arch;
	u64 ratio = 0, tsc;
	int err;

	if (guest_hz != host_hz) {
		if (!svm_caps.tsc_rate)
			return -EOPNOTSUPP;
		err = vtsc_multiplier(guest_hz, host_hz, 32, 8, &ratio);
		if (err)
			return err;
	}
	tsc = svm_host_tsc(v) + s->vmcb->control.tsc_offset;
	s->tsc_ratio = ratio;
	s->vmcb->control.tsc_offset = tsc - svm_host_tsc(v);
	return 0;
}
