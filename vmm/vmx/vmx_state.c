/*
 * VT-x side of the neutral vCPU state (vmm/vcpu_state.h): conversion to and
 * from the VMCS, the guest state the VMCS does not hold (CR2, DR0-3, DR6, the
 * SYSCALL MSRs), guest control-register writes, and event injection. Host
 * context with the vCPU's VMCS current.
 * SDM Vol. 3C 25.4 "Guest-State Area", 27.3.1 "Checks on the Guest State Area".
 */
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/x86.h"
#include "vmm/vmx/vmcs.h"
#include "vmm/vmx/vmx.h"

#define X86_RFLAGS_IF BIT(9)
#define X86_RFLAGS_FIXED BIT(1)
/* The RFLAGS bits that exist; VM entry refuses the others set. */
#define X86_RFLAGS_VALID 0x3f7fd5ULL
#define X86_DR7_FIXED 0x400ULL
/* Neutral segment attributes (vcpu_state.h): P is bit 7. */
#define SEG_ATTR_P BIT(7)

/* Whose CR2, DR0-3, DR6 and SYSCALL MSRs the CPU holds now (NULL: nobody's). */
static struct vcpu *vmx_cpu_owner;

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

/* VMX stays hidden: a guest setting CR4.VMXE gets #GP, as on a CPU without it. */
int vmx_write_cr4(struct vcpu *v, u64 val)
{
	if ((val & X86_CR4_VMXE) || (val & ~vmx_caps.cr4_fixed1) ||
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

#define VMX_GET_SEG(SEG, s) \
	do { \
		(s)->selector = vmcs_read16(GUEST_##SEG##_SELECTOR); \
		(s)->base = vmcs_readl(GUEST_##SEG##_BASE); \
		(s)->limit = vmcs_read32(GUEST_##SEG##_LIMIT); \
		(s)->attr = vmx_ar_to_attr(vmcs_read32(GUEST_##SEG##_AR_BYTES)); \
	} while (0)

#define VMX_SET_SEG(SEG, s, kind) \
	do { \
		u16 sel_ = (s)->selector; \
		if ((kind) == VMX_SEG_TR || (kind) == VMX_SEG_LDTR) \
			sel_ &= ~4; /* TI must be 0 */ \
		vmcs_write16(GUEST_##SEG##_SELECTOR, sel_); \
		vmcs_writel(GUEST_##SEG##_BASE, (s)->base); \
		vmcs_write32(GUEST_##SEG##_LIMIT, (s)->limit); \
		vmcs_write32(GUEST_##SEG##_AR_BYTES, vmx_attr_to_ar((s), (kind))); \
	} while (0)

/* ---- the whole state ----------------------------------------------------------- */

void vmx_get_state(struct vcpu *v, struct vcpu_state *s)
{
	struct vmx_vcpu *x = v->arch;
	u32 info;

	if (vmx_cpu_owner == v)
		vmx_save_cpu_regs(&x->g);
	memcpy(s->regs, v->regs, sizeof(s->regs));
	s->rip = vmcs_readl(GUEST_RIP);
	s->rflags = vmcs_readl(GUEST_RFLAGS);
	s->cr0 = vmx_read_cr0();
	s->cr2 = x->g.cr2;
	s->cr3 = vmcs_readl(GUEST_CR3);
	s->cr4 = vmx_read_cr4();
	s->cr8 = x->cr8;
	s->efer = vmcs_read64(GUEST_IA32_EFER);
	s->pat = vmcs_read64(GUEST_IA32_PAT);
	VMX_GET_SEG(ES, &s->es);
	VMX_GET_SEG(CS, &s->cs);
	VMX_GET_SEG(SS, &s->ss);
	VMX_GET_SEG(DS, &s->ds);
	VMX_GET_SEG(FS, &s->fs);
	VMX_GET_SEG(GS, &s->gs);
	VMX_GET_SEG(LDTR, &s->ldtr);
	VMX_GET_SEG(TR, &s->tr);
	s->gdtr.base = vmcs_readl(GUEST_GDTR_BASE);
	s->gdtr.limit = vmcs_read32(GUEST_GDTR_LIMIT);
	s->idtr.base = vmcs_readl(GUEST_IDTR_BASE);
	s->idtr.limit = vmcs_read32(GUEST_IDTR_LIMIT);
	s->sysenter_cs = vmcs_read32(GUEST_SYSENTER_CS);
	s->sysenter_esp = vmcs_readl(GUEST_SYSENTER_ESP);
	s->sysenter_eip = vmcs_readl(GUEST_SYSENTER_EIP);
	s->star = x->g.star;
	s->lstar = x->g.lstar;
	s->cstar = x->g.cstar;
	s->sfmask = x->g.sfmask;
	s->kernel_gs_base = x->g.kernel_gs_base;
	s->dr0 = x->g.dr[0];
	s->dr1 = x->g.dr[1];
	s->dr2 = x->g.dr[2];
	s->dr3 = x->g.dr[3];
	s->dr6 = x->g.dr6;
	s->dr7 = vmcs_readl(GUEST_DR7);
	s->tsc = rdtsc() + vmcs_read64(TSC_OFFSET);
	s->interruptibility =
		vmcs_read32(GUEST_INTERRUPTIBILITY_INFO) &
		(GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS | GUEST_INTR_STATE_NMI);
	/* An event not yet delivered: queued for the next entry (IDT-vectoring
	 * information is moved there after every exit, vmx_exit.c). */
	memset(&s->pending, 0, sizeof(s->pending));
	info = vmcs_read32(VM_ENTRY_INTR_INFO_FIELD);
	if (info & INTR_INFO_VALID_MASK) {
		s->pending.valid = 1;
		s->pending.type = (info & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT;
		s->pending.vector = info & INTR_INFO_VECTOR_MASK;
		s->pending.has_error = !!(info & INTR_INFO_DELIVER_CODE_MASK);
		if (s->pending.has_error)
			s->pending.error_code = vmcs_read32(VM_ENTRY_EXCEPTION_ERROR_CODE);
	}
}

void vmx_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	struct vmx_vcpu *x = v->arch;
	u64 rflags = (s->rflags & X86_RFLAGS_VALID) | X86_RFLAGS_FIXED;
	u32 intr, info, old_info;

	x->cr8 = s->cr8 & 0xf;
	x->g.cr2 = s->cr2;
	x->g.dr[0] = s->dr0;
	x->g.dr[1] = s->dr1;
	x->g.dr[2] = s->dr2;
	x->g.dr[3] = s->dr3;
	x->g.dr6 = s->dr6;
	x->g.star = s->star;
	x->g.lstar = s->lstar;
	x->g.cstar = s->cstar;
	x->g.sfmask = s->sfmask;
	x->g.kernel_gs_base = s->kernel_gs_base;
	vmx_release_cpu_regs(v); /* the next entry loads them from x->g */

	vmcs_writel(GUEST_RIP, s->rip);
	vmcs_writel(GUEST_RFLAGS, rflags);
	vmcs_write64(GUEST_IA32_EFER, s->efer);
	vmx_set_entry_ia32e(s->efer & EFER_LMA);
	vmx_apply_cr0(s->cr0);
	vmcs_writel(GUEST_CR3, s->cr3);
	vmx_apply_cr4(s->cr4 & ~X86_CR4_VMXE);
	vmcs_write64(GUEST_IA32_PAT, s->pat);
	VMX_SET_SEG(ES, &s->es, VMX_SEG_DATA);
	VMX_SET_SEG(CS, &s->cs, VMX_SEG_CODE);
	VMX_SET_SEG(SS, &s->ss, VMX_SEG_DATA);
	VMX_SET_SEG(DS, &s->ds, VMX_SEG_DATA);
	VMX_SET_SEG(FS, &s->fs, VMX_SEG_DATA);
	VMX_SET_SEG(GS, &s->gs, VMX_SEG_DATA);
	VMX_SET_SEG(LDTR, &s->ldtr, VMX_SEG_LDTR);
	VMX_SET_SEG(TR, &s->tr, VMX_SEG_TR);
	vmcs_writel(GUEST_GDTR_BASE, s->gdtr.base);
	vmcs_write32(GUEST_GDTR_LIMIT, s->gdtr.limit & 0xffff);
	vmcs_writel(GUEST_IDTR_BASE, s->idtr.base);
	vmcs_write32(GUEST_IDTR_LIMIT, s->idtr.limit & 0xffff);
	vmcs_write32(GUEST_SYSENTER_CS, s->sysenter_cs);
	vmcs_writel(GUEST_SYSENTER_ESP, s->sysenter_esp);
	vmcs_writel(GUEST_SYSENTER_EIP, s->sysenter_eip);
	vmcs_writel(GUEST_DR7, (s->dr7 & 0xffffffffULL) | X86_DR7_FIXED);
	vmcs_write64(TSC_OFFSET, s->tsc - rdtsc());
	/* STI blocking needs IF set, and never comes with MOV SS blocking. */
	intr = s->interruptibility &
	       (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS | GUEST_INTR_STATE_NMI);
	if (!(rflags & X86_RFLAGS_IF) || (intr & GUEST_INTR_STATE_MOV_SS))
		intr &= ~GUEST_INTR_STATE_STI;
	vmcs_write32(GUEST_INTERRUPTIBILITY_INFO, intr);
	/* HLT always exits: the generic code keeps v->halted, the CPU stays active. */
	vmcs_write32(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_ACTIVE);

	old_info = vmcs_read32(VM_ENTRY_INTR_INFO_FIELD);
	if (s->pending.valid) {
		u32 type = s->pending.type & 7;

		info = INTR_INFO_VALID_MASK | (type << INTR_INFO_INTR_TYPE_SHIFT) |
		       s->pending.vector;
		/* Keep the exact instruction length when this very event is
		 * already queued (the usual get/set round trip). */
		vmx_inject_event(type, s->pending.vector, s->pending.has_error,
				 s->pending.error_code,
				 (old_info & ~INTR_INFO_DELIVER_CODE_MASK) == info ?
					 vmcs_read32(VM_ENTRY_INSTRUCTION_LEN) :
					 vmx_soft_event_len(type, s->pending.vector));
	} else {
		vmcs_write32(VM_ENTRY_INTR_INFO_FIELD, 0);
	}
	/* The PDPTEs are read from guest memory just before the next entry:
	 * a restore may load the memory after the state. */
	x->reload_pdptrs = true;
}
