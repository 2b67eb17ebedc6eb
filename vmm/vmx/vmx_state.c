/*
 * VT-x side of the neutral vCPU state (vmm/vcpu_state.h): conversion to and
 * from the VMCS, the guest state the VMCS does not hold (CR2, DR0-3, DR6, the
 * SYSCALL MSRs), guest control-register writes, and event injection. Host
 * context with the vCPU's VMCS current.
 * SDM Vol. 3C 25.4 "Guest-State Area", 27.3.1 "Checks on the Guest State Area".
 */
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/smp.h"
#include "kernel/x86.h"
#include "vmm/vmx/vmcs.h"
#include "vmm/vmx/vmx.h"
#include "vmm/vtsc.h"

#define X86_RFLAGS_FIXED BIT(1)
/* The RFLAGS bits that exist; VM entry refuses the others set. */
#define X86_RFLAGS_VALID 0x3f7fd5ULL
#define X86_DR7_FIXED 0x400ULL
/* Neutral segment attributes (vcpu_state.h): P is bit 7. */
#define SEG_ATTR_P BIT(7)

/* Whose CR2, DR0-3, DR6 and SYSCALL MSRs each CPU holds now (NULL: nobody's),
 * by CPU number. */
static struct vcpu *vmx_cpu_owners[SMP_MAX_CPUS];
#define vmx_cpu_owner (vmx_cpu_owners[smp_this_index()])

/* The host's TSC as the guest's runs from it: through the vCPU's multiplier
 * when it scales, before the offset is added (SDM Vol. 3C 25.6.5
 * "Time-Stamp Counter Offset and Multiplier"). */
static u64 vmx_host_tsc(const struct vcpu *v)
{
	u64 mult = ((const struct vmx_vcpu *)v->arch)->tsc_mult;

	return mult ? vtsc_scale(rdtsc(), mult, 48) : rdtsc();
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
DEFINE_DR(6)
#undef DEFINE_DR

/* MOV to DR0-3 faults on a non-canonical address; a restored image must not
 * be able to crash the host that way. */
static u64 canonical(u64 a) { return (u64)((s64)(a << 16) >> 16) == a ? a : 0; }

static void vmx_save_cpu_regs(struct vmx_guest_regs *g)
{
	g->cr2 = read_cr2();
	g->dr[0] = read_dr0();
	g->dr[1] = read_dr1();
	g->dr[2] = read_dr2();
	g->dr[3] = read_dr3();
	g->dr6 = read_dr6();
	rdmsr_safe(MSR_STAR, &g->star);
	rdmsr_safe(MSR_LSTAR, &g->lstar);
	rdmsr_safe(MSR_CSTAR, &g->cstar);
	rdmsr_safe(MSR_SYSCALL_MASK, &g->sfmask);
	rdmsr_safe(MSR_KERNEL_GS_BASE, &g->kernel_gs_base);
}

/* The #GP-safe writes drop what the CPU refuses (non-canonical LSTAR...). */
static void vmx_load_cpu_regs(const struct vmx_guest_regs *g)
{
	write_cr2(g->cr2);
	write_dr0(canonical(g->dr[0]));
	write_dr1(canonical(g->dr[1]));
	write_dr2(canonical(g->dr[2]));
	write_dr3(canonical(g->dr[3]));
	write_dr6(g->dr6 & 0xffffffffULL);
	wrmsr_safe(MSR_STAR, g->star);
	wrmsr_safe(MSR_LSTAR, g->lstar);
	wrmsr_safe(MSR_CSTAR, g->cstar);
	wrmsr_safe(MSR_SYSCALL_MASK, g->sfmask);
	wrmsr_safe(MSR_KERNEL_GS_BASE, g->kernel_gs_base);
}

/* Before entering v: the CPU gets v's CR2, debug registers and SYSCALL MSRs,
 * after saving those of the vCPU that ran before (if another one). */
void vmx_own_cpu_regs(struct vcpu *v)
{
	struct vmx_vcpu *x = v->arch;

	if (vmx_cpu_owner == v)
		return;
	if (vmx_cpu_owner)
		vmx_save_cpu_regs(&((struct vmx_vcpu *)vmx_cpu_owner->arch)->g);
	vmx_load_cpu_regs(&x->g);
	vmx_cpu_owner = v;
}

/* v's copy in vmx_vcpu is authoritative again (set_state, destroy). */
void vmx_release_cpu_regs(struct vcpu *v)
{
	if (vmx_cpu_owner == v)
		vmx_cpu_owner = NULL;
}

/* vcpu_ops.vcpu_put, first half: the registers this CPU holds for v back
 * into its copy (vmx.c then gives up the VMCS). */
void vmx_put_cpu_regs(struct vcpu *v)
{
	if (vmx_cpu_owner == v) {
		vmx_save_cpu_regs(&((struct vmx_vcpu *)v->arch)->g);
		vmx_cpu_owner = NULL;
	}
}

/* ---- control registers as the guest sees them ----------------------------- */

u64 vmx_read_cr0(void)
{
	return (vmcs_readl(GUEST_CR0) & ~vmx_caps.cr0_mask) |
	       (vmcs_readl(CR0_READ_SHADOW) & vmx_caps.cr0_mask);
}

u64 vmx_read_cr4(void)
{
	return (vmcs_readl(GUEST_CR4) & ~vmx_caps.cr4_mask) |
	       (vmcs_readl(CR4_READ_SHADOW) & vmx_caps.cr4_mask);
}

/* The guest reads `val` through the shadow; the CPU runs it with the VMX fixed
 * bits applied (NE on; VMXE on in CR4). PE and PG stay the guest's own; CD
 * and NW the host's (VM entry does not load them). */
static void vmx_apply_cr0(u64 val)
{
	u64 fixed0 = vmx_caps.cr0_fixed0 & ~(X86_CR0_PE | X86_CR0_PG);

	vmcs_writel(CR0_READ_SHADOW, val);
	vmcs_writel(GUEST_CR0, ((val | fixed0) & vmx_caps.cr0_fixed1) & ~(X86_CR0_CD | X86_CR0_NW));
}

static void vmx_apply_cr4(u64 val)
{
	vmcs_writel(CR4_READ_SHADOW, val);
	vmcs_writel(GUEST_CR4, (val | vmx_caps.cr4_fixed0) & vmx_caps.cr4_fixed1);
}

/*
 * With EPT and PAE paging outside IA-32e mode, VM entry takes the four PDPTEs
 * from the VMCS, not from memory; after Amber changes CR0, CR3 or CR4 for the
 * guest it loads them as MOV to CR would. SDM Vol. 3C 29.3.1 "EPT Overview"
 * and 27.3.2.4 "Loading Page-Directory-Pointer-Table Entries".
 */
void vmx_load_pdptrs(struct vcpu *v)
{
	u64 pdpte[4] = { 0, 0, 0, 0 };
	const void *p;

	if (!(vmcs_readl(GUEST_CR0) & X86_CR0_PG) || !(vmcs_readl(GUEST_CR4) & X86_CR4_PAE) ||
	    (vmcs_read64(GUEST_IA32_EFER) & EFER_LMA))
		return;
	p = gpa_to_hva(v->vm, vmcs_readl(GUEST_CR3) & 0xffffffe0ULL, sizeof(pdpte));
	if (p)
		memcpy(pdpte, p, sizeof(pdpte));
	vmcs_write64(GUEST_PDPTR0, pdpte[0]);
	vmcs_write64(GUEST_PDPTR1, pdpte[1]);
	vmcs_write64(GUEST_PDPTR2, pdpte[2]);
	vmcs_write64(GUEST_PDPTR3, pdpte[3]);
}

/* EFER.LMA follows CR0.PG and EFER.LME, and VM_ENTRY_IA32E_MODE follows LMA
 * (SDM Vol. 3C 27.3.1.1 "Checks on Guest Control Registers, Debug Registers,
 * and MSRs"). */
static void vmx_update_lma(void)
{
	u64 efer = vmcs_read64(GUEST_IA32_EFER);
	bool lma = (vmcs_readl(GUEST_CR0) & X86_CR0_PG) && (efer & EFER_LME);

	vmcs_write64(GUEST_IA32_EFER, lma ? efer | EFER_LMA : efer & ~EFER_LMA);
	vmx_set_entry_ia32e(lma);
}

/* MOV to CR0, the checks of SDM Vol. 3A 2.5 "Control Registers" and the
 * MOV CR reference page. */
int vmx_write_cr0(struct vcpu *v, u64 val)
{
	u64 efer = vmcs_read64(GUEST_IA32_EFER);

	if ((val >> 32) || ((val & X86_CR0_PG) && !(val & X86_CR0_PE)) ||
	    ((val & X86_CR0_NW) && !(val & X86_CR0_CD)) ||
	    ((val & X86_CR0_PG) && (efer & EFER_LME) && !(vmx_read_cr4() & X86_CR4_PAE)))
		return -EINVAL;
	vmx_apply_cr0(val | X86_CR0_ET);
	vmx_update_lma();
	vmx_load_pdptrs(v);
	return 0;
}

int vmx_write_cr3(struct vcpu *v, u64 val)
{
	vmcs_writel(GUEST_CR3, val);
	vmx_load_pdptrs(v);
	return 0;
}

/* VMX and 5-level paging stay hidden: a guest setting CR4.VMXE or CR4.LA57
 * gets #GP, as on a CPU without them. */
int vmx_write_cr4(struct vcpu *v, u64 val)
{
	if ((val & (X86_CR4_VMXE | X86_CR4_LA57)) || (val & ~vmx_caps.cr4_fixed1) ||
	    ((vmcs_read64(GUEST_IA32_EFER) & EFER_LMA) && !(val & X86_CR4_PAE)))
		return -EINVAL;
	vmx_apply_cr4(val);
	vmx_load_pdptrs(v);
	return 0;
}

/* ---- events ---------------------------------------------------------------- */

/* Exceptions that push an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP. */
static bool vmx_vector_has_error(u8 vector)
{
	return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21;
}

/*
 * Queues an event for the next VM entry, SDM Vol. 3C 27.6 "Event Injection".
 * VM entry insists that an error code is delivered exactly for the vectors
 * that have one, and never in real-address mode, so that is decided here.
 */
void vmx_inject_event(u32 type, u8 vector, bool has_error, u32 error_code, u32 insn_len)
{
	u32 info = INTR_INFO_VALID_MASK | (type << INTR_INFO_INTR_TYPE_SHIFT) | vector;

	if (type == INTR_TYPE_HARD_EXCEPTION && vmx_vector_has_error(vector) &&
	    (vmcs_readl(GUEST_CR0) & X86_CR0_PE)) {
		info |= INTR_INFO_DELIVER_CODE_MASK;
		vmcs_write32(VM_ENTRY_EXCEPTION_ERROR_CODE, has_error ? error_code : 0);
	}
	if (type == INTR_TYPE_SOFT_INTR || type == INTR_TYPE_PRIV_SW_EXCEPTION ||
	    type == INTR_TYPE_SOFT_EXCEPTION)
		vmcs_write32(VM_ENTRY_INSTRUCTION_LEN, insn_len);
	vmcs_write32(VM_ENTRY_INTR_INFO_FIELD, info);
}

/* The length of the instruction behind a software event, when only the event
 * is known (a restored image): INT3, INTO and ICEBP are one byte, INT n two. */
static u32 vmx_soft_event_len(u32 type, u8 vector)
{
	if (type == INTR_TYPE_PRIV_SW_EXCEPTION)
		return 1;
	if (type == INTR_TYPE_SOFT_EXCEPTION && (vector == 3 || vector == 4))
		return 1;
	return 2;
}

/* ---- segments ---------------------------------------------------------------- */

/* VMCS access rights (SDM Vol. 3C 25.4.1 "Guest Register State") keep AVL, L,
 * D/B and G in bits 15:12, the neutral form in bits 11:8; "unusable" is P = 0. */
static u16 vmx_ar_to_attr(u32 ar)
{
	if (ar & VMX_AR_UNUSABLE)
		return 0;
	return (ar & 0xff) | ((ar >> 4) & 0xf00);
}

enum vmx_seg_kind {
	VMX_SEG_DATA,
	VMX_SEG_CODE,
	VMX_SEG_LDTR,
	VMX_SEG_TR
};

/* Access rights for VM entry from a neutral segment, bent to what VMX checks
 * (SDM Vol. 3C 27.3.1.2 "Checks on Guest Segment Registers") where AMD-V is
 * more lenient: code and data segments are marked accessed, G agrees with the
 * limit, and TR is always a usable busy TSS. */
static u32 vmx_attr_to_ar(const struct vcpu_segment *seg, enum vmx_seg_kind kind)
{
	u32 ar = (seg->attr & 0xff) | ((u32)(seg->attr & 0xf00) << 4);
	u32 type = ar & VMX_AR_TYPE_MASK;

	if (kind == VMX_SEG_TR) {
		if (!(seg->attr & SEG_ATTR_P))
			ar = VMX_AR_P | VMX_AR_TYPE_BUSY_32_TSS;
		else if (type == 1 || type == 9)
			ar |= 2; /* available TSS -> busy TSS of the same size */
		ar &= ~VMX_AR_S;
	} else if (!(seg->attr & SEG_ATTR_P)) {
		return VMX_AR_UNUSABLE;
	} else if (kind == VMX_SEG_LDTR) {
		if ((ar & VMX_AR_S) || type != 2)
			return VMX_AR_UNUSABLE;
	} else if (ar & VMX_AR_S) {
		ar |= VMX_AR_TYPE_ACCESSED;
	}
	if ((seg->limit & 0xfff) != 0xfff)
		ar &= ~BIT(15);
	else if (seg->limit >> 20)
		ar |= BIT(15);
	return ar;
}

/* Selectors of TR and LDTR must have TI = 0 for VM entry. */
static u16 vmx_selector(u16 sel, enum vmx_seg_kind kind)
{
	return kind == VMX_SEG_TR || kind == VMX_SEG_LDTR ? sel & ~4 : sel;
}

/* One field of the VMCS, read or written with the accessor of width w
 * (16, 32, 64 or l for natural width). */
#define VMX_XFER(out, in, w, FIELD, field) \
	VCPU_XFER_WITH(out, in, field, vmcs_read##w(FIELD), vmcs_write##w(FIELD, (in)->field))

#define VMX_XFER_SEG(SEG, seg, kind) \
	do { \
		struct vcpu_segment *o_ = out ? &out->seg : NULL; \
		const struct vcpu_segment *i_ = in ? &in->seg : NULL; \
		VCPU_XFER_WITH(o_, i_, selector, vmcs_read16(GUEST_##SEG##_SELECTOR), \
			       vmcs_write16(GUEST_##SEG##_SELECTOR, \
					    vmx_selector(i_->selector, kind))); \
		VMX_XFER(o_, i_, l, GUEST_##SEG##_BASE, base); \
		VMX_XFER(o_, i_, 32, GUEST_##SEG##_LIMIT, limit); \
		VCPU_XFER_WITH(o_, i_, attr, vmx_ar_to_attr(vmcs_read32(GUEST_##SEG##_AR_BYTES)), \
			       vmcs_write32(GUEST_##SEG##_AR_BYTES, vmx_attr_to_ar(i_, kind))); \
	} while (0)

/* ---- the whole state ----------------------------------------------------------- */

static void vmx_set_efer(u64 efer)
{
	vmcs_write64(GUEST_IA32_EFER, efer);
	vmx_set_entry_ia32e(efer & EFER_LMA);
}

/* STI blocking needs IF set, and never comes with MOV SS blocking. */
static u32 vmx_intr_state(const struct vcpu_state *s)
{
	u32 intr = s->interruptibility &
		   (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS | GUEST_INTR_STATE_NMI);

	if (!(s->rflags & X86_RFLAGS_IF) || (intr & GUEST_INTR_STATE_MOV_SS))
		intr &= ~GUEST_INTR_STATE_STI;
	return intr;
}

/* An event not yet delivered: queued for the next entry (IDT-vectoring
 * information is moved there after every exit, vmx_exit.c). */
static struct vcpu_event vmx_event_get(void)
{
	u32 info = vmcs_read32(VM_ENTRY_INTR_INFO_FIELD);
	struct vcpu_event ev = { 0 };

	if (!(info & INTR_INFO_VALID_MASK))
		return ev;
	ev.valid = 1;
	ev.type = (info & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT;
	ev.vector = info & INTR_INFO_VECTOR_MASK;
	ev.has_error = !!(info & INTR_INFO_DELIVER_CODE_MASK);
	if (ev.has_error)
		ev.error_code = vmcs_read32(VM_ENTRY_EXCEPTION_ERROR_CODE);
	return ev;
}

static void vmx_event_set(const struct vcpu_event *ev)
{
	u32 old_info = vmcs_read32(VM_ENTRY_INTR_INFO_FIELD);
	u32 type = ev->type & 7;
	u32 info = INTR_INFO_VALID_MASK | (type << INTR_INFO_INTR_TYPE_SHIFT) | ev->vector;

	if (!ev->valid) {
		vmcs_write32(VM_ENTRY_INTR_INFO_FIELD, 0);
		return;
	}
	/* Keep the exact instruction length when this very event is already
	 * queued (the usual get/set round trip). */
	vmx_inject_event(type, ev->vector, ev->has_error, ev->error_code,
			 (old_info & ~INTR_INFO_DELIVER_CODE_MASK) == info ?
				 vmcs_read32(VM_ENTRY_INSTRUCTION_LEN) :
				 vmx_soft_event_len(type, ev->vector));
}

/*
 * The one list of the fields that move between the VMCS (and the guest
 * registers Amber keeps for the vCPU) and the neutral record, for both
 * directions: get_state (out set) and set_state (in set) cannot drift apart.
 * Where VMX holds a field differently (CR0/CR4 behind their shadows, access
 * rights, RFLAGS and DR7 bits VM entry refuses) the transform sits next to
 * the field, one per direction. CR0 comes before the pending event, whose
 * error code depends on CR0.PE.
 */
static void vmx_xfer_state(struct vcpu *v, struct vcpu_state *out, const struct vcpu_state *in)
{
	struct vmx_vcpu *x = v->arch;

	VMX_XFER(out, in, l, GUEST_RIP, rip);
	VCPU_XFER_WITH(out, in, rflags, vmcs_readl(GUEST_RFLAGS),
		       vmcs_writel(GUEST_RFLAGS,
				   (in->rflags & X86_RFLAGS_VALID) | X86_RFLAGS_FIXED));
	VCPU_XFER_WITH(out, in, cr0, vmx_read_cr0(), vmx_apply_cr0(in->cr0));
	VCPU_XFER(out, in, x->g.cr2, cr2);
	VMX_XFER(out, in, l, GUEST_CR3, cr3);
	VCPU_XFER_WITH(out, in, cr4, vmx_read_cr4(), vmx_apply_cr4(in->cr4 & ~X86_CR4_VMXE));
	VCPU_XFER_WITH(out, in, cr8, x->cr8, x->cr8 = in->cr8 & 0xf);
	VCPU_XFER_WITH(out, in, efer, vmcs_read64(GUEST_IA32_EFER), vmx_set_efer(in->efer));
	VMX_XFER(out, in, 64, GUEST_IA32_PAT, pat);
	VMX_XFER_SEG(ES, es, VMX_SEG_DATA);
	VMX_XFER_SEG(CS, cs, VMX_SEG_CODE);
	VMX_XFER_SEG(SS, ss, VMX_SEG_DATA);
	VMX_XFER_SEG(DS, ds, VMX_SEG_DATA);
	VMX_XFER_SEG(FS, fs, VMX_SEG_DATA);
	VMX_XFER_SEG(GS, gs, VMX_SEG_DATA);
	VMX_XFER_SEG(LDTR, ldtr, VMX_SEG_LDTR);
	VMX_XFER_SEG(TR, tr, VMX_SEG_TR);
	VMX_XFER(out, in, l, GUEST_GDTR_BASE, gdtr.base);
	VCPU_XFER_WITH(out, in, gdtr.limit, vmcs_read32(GUEST_GDTR_LIMIT),
		       vmcs_write32(GUEST_GDTR_LIMIT, in->gdtr.limit & 0xffff));
	VMX_XFER(out, in, l, GUEST_IDTR_BASE, idtr.base);
	VCPU_XFER_WITH(out, in, idtr.limit, vmcs_read32(GUEST_IDTR_LIMIT),
		       vmcs_write32(GUEST_IDTR_LIMIT, in->idtr.limit & 0xffff));
	VMX_XFER(out, in, 32, GUEST_SYSENTER_CS, sysenter_cs);
	VMX_XFER(out, in, l, GUEST_SYSENTER_ESP, sysenter_esp);
	VMX_XFER(out, in, l, GUEST_SYSENTER_EIP, sysenter_eip);
	VCPU_XFER(out, in, x->g.star, star);
	VCPU_XFER(out, in, x->g.lstar, lstar);
	VCPU_XFER(out, in, x->g.cstar, cstar);
	VCPU_XFER(out, in, x->g.sfmask, sfmask);
	VCPU_XFER(out, in, x->g.kernel_gs_base, kernel_gs_base);
	VCPU_XFER(out, in, x->g.dr[0], dr0);
	VCPU_XFER(out, in, x->g.dr[1], dr1);
	VCPU_XFER(out, in, x->g.dr[2], dr2);
	VCPU_XFER(out, in, x->g.dr[3], dr3);
	VCPU_XFER(out, in, x->g.dr6, dr6);
	VCPU_XFER_WITH(out, in, dr7, vmcs_readl(GUEST_DR7),
		       vmcs_writel(GUEST_DR7, (in->dr7 & 0xffffffffULL) | X86_DR7_FIXED));
	/* The guest's TSC is the host's (scaled) plus the offset. */
	VCPU_XFER_WITH(out, in, tsc, vmx_host_tsc(v) + vmcs_read64(TSC_OFFSET),
		       vmcs_write64(TSC_OFFSET, in->tsc - vmx_host_tsc(v)));
	VCPU_XFER_WITH(out, in, interruptibility,
		       vmcs_read32(GUEST_INTERRUPTIBILITY_INFO) &
			       (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS |
				GUEST_INTR_STATE_NMI),
		       vmcs_write32(GUEST_INTERRUPTIBILITY_INFO, vmx_intr_state(in)));
	VCPU_XFER_WITH(out, in, pending, vmx_event_get(), vmx_event_set(&in->pending));
	/* Derived, not stored: HLT always exits, so the generic code keeps
	 * v->halted and the CPU stays active. */
	if (in)
		vmcs_write32(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_ACTIVE);
}

void vmx_get_state(struct vcpu *v, struct vcpu_state *s)
{
	struct vmx_vcpu *x = v->arch;

	if (vmx_cpu_owner == v)
		vmx_save_cpu_regs(&x->g);
	vmx_xfer_state(v, s, NULL);
}

void vmx_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	struct vmx_vcpu *x = v->arch;

	vmx_xfer_state(v, NULL, s);
	vmx_release_cpu_regs(v); /* the next entry loads them from the copy */
	/* The PDPTEs are read from guest memory just before the next entry:
	 * a restore may load the memory after the state. */
	x->reload_pdptrs = true;
}

/* ---- one field at a time --------------------------------------------------- */

/* The SYSCALL MSRs live in the CPU while v owns it: bring the copy up to date
 * before reading it, and before changing one of them (the next entry then
 * loads all of them from the copy). */
static u64 *vmx_guest_msr(struct vcpu *v, enum vcpu_field f)
{
	struct vmx_vcpu *x = v->arch;

	if (vmx_cpu_owner == v)
		vmx_save_cpu_regs(&x->g);
	switch (f) {
	case VCPU_FIELD_STAR:
		return &x->g.star;
	case VCPU_FIELD_LSTAR:
		return &x->g.lstar;
	case VCPU_FIELD_CSTAR:
		return &x->g.cstar;
	case VCPU_FIELD_SFMASK:
		return &x->g.sfmask;
	default:
		return &x->g.kernel_gs_base;
	}
}

int vmx_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	switch (f) {
	case VCPU_FIELD_CR0:
		*val = vmx_read_cr0();
		break;
	case VCPU_FIELD_CR4:
		*val = vmx_read_cr4();
		break;
	case VCPU_FIELD_EFER:
		*val = vmcs_read64(GUEST_IA32_EFER);
		break;
	case VCPU_FIELD_PAT:
		*val = vmcs_read64(GUEST_IA32_PAT);
		break;
	case VCPU_FIELD_SYSENTER_CS:
		*val = vmcs_read32(GUEST_SYSENTER_CS);
		break;
	case VCPU_FIELD_SYSENTER_ESP:
		*val = vmcs_readl(GUEST_SYSENTER_ESP);
		break;
	case VCPU_FIELD_SYSENTER_EIP:
		*val = vmcs_readl(GUEST_SYSENTER_EIP);
		break;
	case VCPU_FIELD_STAR:
	case VCPU_FIELD_LSTAR:
	case VCPU_FIELD_CSTAR:
	case VCPU_FIELD_SFMASK:
	case VCPU_FIELD_KERNEL_GS_BASE:
		*val = *vmx_guest_msr(v, f);
		break;
	case VCPU_FIELD_FS_BASE:
		*val = vmcs_readl(GUEST_FS_BASE);
		break;
	case VCPU_FIELD_GS_BASE:
		*val = vmcs_readl(GUEST_GS_BASE);
		break;
	case VCPU_FIELD_TSC:
		*val = vmx_host_tsc(v) + vmcs_read64(TSC_OFFSET);
		break;
	case VCPU_FIELD_CR8:
		*val = ((struct vmx_vcpu *)v->arch)->cr8;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

int vmx_set_field(struct vcpu *v, enum vcpu_field f, u64 val)
{
	switch (f) {
	case VCPU_FIELD_EFER:
		vmx_set_efer(val);
		break;
	case VCPU_FIELD_PAT:
		vmcs_write64(GUEST_IA32_PAT, val);
		break;
	case VCPU_FIELD_SYSENTER_CS:
		vmcs_write32(GUEST_SYSENTER_CS, val);
		break;
	case VCPU_FIELD_SYSENTER_ESP:
		vmcs_writel(GUEST_SYSENTER_ESP, val);
		break;
	case VCPU_FIELD_SYSENTER_EIP:
		vmcs_writel(GUEST_SYSENTER_EIP, val);
		break;
	case VCPU_FIELD_STAR:
	case VCPU_FIELD_LSTAR:
	case VCPU_FIELD_CSTAR:
	case VCPU_FIELD_SFMASK:
	case VCPU_FIELD_KERNEL_GS_BASE:
		*vmx_guest_msr(v, f) = val;
		vmx_release_cpu_regs(v);
		break;
	case VCPU_FIELD_FS_BASE:
		vmcs_writel(GUEST_FS_BASE, val);
		break;
	case VCPU_FIELD_GS_BASE:
		vmcs_writel(GUEST_GS_BASE, val);
		break;
	case VCPU_FIELD_TSC:
		vmcs_write64(TSC_OFFSET, val - vmx_host_tsc(v));
		break;
	case VCPU_FIELD_CR8:
		((struct vmx_vcpu *)v->arch)->cr8 = val & 0xf;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* "Use TSC scaling" with the multiplier for guest_hz/host_hz, or off for
 * equal rates; the offset is rewritten so the guest's TSC reads on from
 * where it was. SDM Vol. 3C 25.6.2 "Processor-Based VM-Execution Controls",
 * 25.6.5 "Time-Stamp Counter Offset and Multiplier". */
int vmx_set_tsc_ratio(struct vcpu *v, u64 guest_hz, u64 host_hz)
{
	struct vmx_vcpu *x = v->arch;
	u64 mult = 0, tsc;
	u32 proc2;
	int err = vmx_load_vmcs(x);

	if (err)
		return err;
	if (guest_hz != host_hz) {
		if (!vmx_caps.tsc_scaling)
			return -EOPNOTSUPP;
		err = vtsc_multiplier(guest_hz, host_hz, 48, 16, &mult);
		if (err)
			return err;
	}
	tsc = vmx_host_tsc(v) + vmcs_read64(TSC_OFFSET);
	proc2 = vmcs_read32(SECONDARY_VM_EXEC_CONTROL) & ~SECONDARY_EXEC_TSC_SCALING;
	if (mult) {
		vmcs_write64(TSC_MULTIPLIER, mult);
		proc2 |= SECONDARY_EXEC_TSC_SCALING;
	}
	vmcs_write32(SECONDARY_VM_EXEC_CONTROL, proc2);
	x->tsc_mult = mult;
	vmcs_write64(TSC_OFFSET, tsc - vmx_host_tsc(v));
	return 0;
}
