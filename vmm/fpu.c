/*
 * Guest FPU/SSE/AVX state and the generic half of the vCPU state record. The
 * host never touches the FPU (it is built without SSE), so a vCPU's FPU state
 * simply stays in the registers across its exits; only when another vCPU runs,
 * or someone needs the state (pause, snapshot), is it saved with XSAVE (FXSAVE
 * without XSAVE) into v->fpu. XCR0 travels with it: AMD-V does not switch XCR0,
 * and Amber intercepts XSETBV on both backends to keep it checked.
 * Host context, boot CPU. SDM Vol. 1 13 "Managing State Using the XSAVE Feature Set".
 */
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "kernel/traps.h"
#include "kernel/x86.h"
#include "vmm/vmm_internal.h"

#define X86_CR0_MP BIT(1)
#define X86_CR0_EM BIT(2)
#define X86_CR0_TS BIT(3)
#define X86_CR0_NE BIT(5)
#define X86_CR4_OSFXSR BIT(9)
#define X86_CR4_OSXMMEXCPT BIT(10)
#define X86_CR4_OSXSAVE BIT(18)

/* XCR0 components a guest may enable: x87, SSE, AVX, the AVX-512 trio, PKRU.
 * MPX is deprecated, AMX needs more than the 4 KiB a snapshot stores. */
#define XFEATURE_GUEST_MASK 0x2E7ULL
#define XFEATURE_AVX512 0xE0ULL
/* XCR0 never goes below x87 + SSE while a guest runs: XSAVE then always covers
 * the SSE registers, which guests use without ever enabling XSAVE. A guest that
 * writes XCR0 = 1 reads back 3; nothing else differs. */
#define XCR0_MIN 3ULL

#define FXSAVE_MXCSR 24
#define FXSAVE_MXCSR_MASK 28
#define XSAVE_HDR 512 /* XSTATE_BV, XCOMP_BV, then 48 reserved bytes */

/* The vCPU whose FPU state each CPU's registers hold, by CPU number. */
static struct vcpu *fpu_owners[SMP_MAX_CPUS];
#define fpu_owner (fpu_owners[smp_this_index()])
static bool use_xsave;
static u64 xcr0_allowed = 3;
static u32 area_size = 512;
static u32 mxcsr_mask = 0xFFBF;

static inline u64 xgetbv0(void)
{
	u32 lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (u64)hi << 32 | lo;
}

static inline void xsetbv0(u64 v)
{
	__asm__ volatile("xsetbv" ::"a"((u32)v), "d"((u32)(v >> 32)), "c"(0) : "memory");
}

/* XRSTOR or FXRSTOR that survives a malformed area (#GP): returns 0 or -EIO,
 * through the same fixup table as rdmsr_safe (kernel/traps.c). */
static int fpu_restore_safe(const void *area, u64 mask)
{
	int err = 0;

	if (use_xsave)
		__asm__ volatile("1: xrstor64 (%1)\n" ASM_FIXUP_ERR("%0", "%4")
				 : "+r"(err)
				 : "r"(area), "a"((u32)mask), "d"((u32)(mask >> 32)), "i"(-EIO)
				 : "memory");
	else
		__asm__ volatile("1: fxrstor64 (%1)\n" ASM_FIXUP_ERR("%0", "%2")
				 : "+r"(err)
				 : "r"(area), "i"(-EIO)
				 : "memory");
	return err;
}

static void fpu_save(struct vcpu *v)
{
	if (use_xsave) {
		/* XCR0 in the register is the guest's while it owns the FPU:
		 * XSETBV is intercepted on both backends, but QEMU TCG's AMD-V
		 * ignores that intercept and lets the guest load XCR0 itself.
		 * Read it back (within what Amber offers) so that the save covers
		 * what the guest enabled and the next load restores it. */
		v->xcr0 = (xgetbv0() & xcr0_allowed) | XCR0_MIN;
		__asm__ volatile("xsave64 (%0)" ::"r"(v->fpu), "a"((u32)v->xcr0),
				 "d"((u32)(v->xcr0 >> 32))
				 : "memory");
	} else {
		__asm__ volatile("fxsave64 (%0)" ::"r"(v->fpu) : "memory");
	}
}

/* The initial FPU state (SDM Vol. 1 13.6 "Processor Tracking of XSAVE-Managed
 * State"): FCW 0x37F, MXCSR 0x1F80, every component in its init state. */
static void fpu_init_area(u8 *area)
{
	memset(area, 0, PAGE_SIZE);
	*(u16 *)area = 0x37F;
	*(u32 *)(area + FXSAVE_MXCSR) = 0x1F80;
}

static void fpu_load(struct vcpu *v)
{
	if (use_xsave)
		xsetbv0(v->xcr0);
	if (fpu_restore_safe(v->fpu, v->xcr0)) {
		/* Only a restored image can be malformed; vcpu_set_state cleans it,
		 * so this is a last line of defence. */
		printk("[vm%d] vCPU %d: the saved FPU state was refused; reset to its initial state\n",
		       v->vm->id, v->id);
		fpu_init_area(v->fpu);
		fpu_restore_safe(v->fpu, v->xcr0);
	}
}

void vcpu_fpu_setup_cpu(void)
{
	write_cr0((read_cr0() & ~(X86_CR0_EM | X86_CR0_TS)) | X86_CR0_MP | X86_CR0_NE);
	write_cr4(read_cr4() | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT);
	if (!use_xsave)
		return;
	write_cr4(read_cr4() | X86_CR4_OSXSAVE);
	xsetbv0(XCR0_MIN);
}

void vcpu_fpu_setup(void)
{
	u32 a, b, c, d;
	u8 *probe;

	write_cr0((read_cr0() & ~(X86_CR0_EM | X86_CR0_TS)) | X86_CR0_MP | X86_CR0_NE);
	write_cr4(read_cr4() | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT);
	probe = phys_to_virt(pmm_alloc_page());
	if (probe) {
		__asm__ volatile("fxsave64 (%0)" ::"r"(probe) : "memory");
		if (*(u32 *)(probe + FXSAVE_MXCSR_MASK))
			mxcsr_mask = *(u32 *)(probe + FXSAVE_MXCSR_MASK);
		pmm_free_page(virt_to_phys(probe));
	}
	if (!cpu.xsave || cpu.max_leaf < 0xd)
		return;
	write_cr4(read_cr4() | X86_CR4_OSXSAVE);
	use_xsave = true;
	xcr0_allowed = cpu.xcr0_supported & XFEATURE_GUEST_MASK;
	/* CPUID 0xD.0:EBX is the area size for the XCR0 now loaded. */
	for (;;) {
		xsetbv0(xcr0_allowed);
		cpuid_count(0xd, 0, &a, &b, &c, &d);
		if (b <= PAGE_SIZE || xcr0_allowed == 3)
			break;
		xcr0_allowed &= (xcr0_allowed & XFEATURE_AVX512) ? ~XFEATURE_AVX512 : 3;
	}
	area_size = b;
	xsetbv0(XCR0_MIN);
	pr_debug("vmm: guest XCR0 may hold 0x%lx, XSAVE area %u bytes", xcr0_allowed, area_size);
}

u64 vcpu_xcr0_allowed(void) { return xcr0_allowed; }

void vcpu_fpu_release(struct vcpu *v)
{
	if (v && fpu_owner == v) {
		fpu_save(v);
		fpu_owner = NULL;
	}
}

/* Makes v the FPU owner before it enters the guest. */
void vcpu_fpu_switch(struct vcpu *v)
{
	if (fpu_owner == v)
		return;
	if (fpu_owner)
		fpu_save(fpu_owner);
	fpu_load(v);
	fpu_owner = v;
}

/* The guest changed XCR0 (XSETBV, already checked): v owns the FPU. */
void vcpu_fpu_set_xcr0(struct vcpu *v, u64 xcr0)
{
	xcr0 |= XCR0_MIN;
	v->xcr0 = xcr0;
	if (use_xsave && fpu_owner == v)
		xsetbv0(xcr0);
}

/* A valid XCR0 for a guest (SDM Vol. 1 13.3 "Enabling the XSAVE Feature Set"):
 * x87 always, AVX only with SSE, the AVX-512 bits all or none and only with AVX. */
bool vcpu_xcr0_valid(u64 xcr0)
{
	if (!(xcr0 & 1) || (xcr0 & ~xcr0_allowed))
		return false;
	if ((xcr0 & 4) && !(xcr0 & 2))
		return false;
	if ((xcr0 & XFEATURE_AVX512) &&
	    ((xcr0 & XFEATURE_AVX512) != XFEATURE_AVX512 || !(xcr0 & 4)))
		return false;
	return true;
}

struct vcpu *vcpu_create(struct vm *vm, int id)
{
	struct vcpu *v = kzalloc(sizeof(*v));
	u64 pa = pmm_alloc_page();

	if (!v || !pa) {
		kfree(v);
		if (pa)
			pmm_free_page(pa);
		return NULL;
	}
	v->vm = vm;
	v->id = id;
	v->on_cpu = -1;
	v->fpu = phys_to_virt(pa);
	v->xcr0 = XCR0_MIN;
	fpu_init_area(v->fpu);
	return v;
}

void vcpu_free(struct vcpu *v)
{
	/* A vCPU is freed on the boot CPU; any other CPU gave it up after
	 * its last slice there (vcpu_put). */
	if (fpu_owner == v)
		fpu_owner = NULL;
	if (v->fpu)
		pmm_free_page(virt_to_phys(v->fpu));
	kfree(v);
}

int vcpu_get_state(struct vcpu *v, struct vcpu_state *s)
{
	int err;

	memset(s, 0, sizeof(*s));
	if (v->vm->fail_state) {
		v->vm->fail_state--; /* the `vm fail-state` test hook */
		return -EIO;
	}
	err = vcpu_ops->get_state(v, s);
	if (err)
		return err;
	memcpy(s->regs, v->regs, sizeof(s->regs));
	if (fpu_owner == v)
		fpu_save(v); /* the registers keep it too: v stays the owner */
	s->xcr0 = use_xsave ? v->xcr0 : XCR0_MIN;
	s->xsave_size = area_size;
	memcpy(s->xsave, v->fpu, area_size);
	s->halted = v->wait_sipi ? VCPU_WAIT_SIPI : v->halted ? VCPU_IN_HLT : VCPU_RUNS;
	return 0;
}

/* CR4 bits of optional features, with the CPUID bit that says the CPU has
 * them (SDM Vol. 3A 2.5 "Control Registers"; CPUID leaves 1 and 7). Bits 0-10
 * are there on every x86-64 CPU; any other bit is refused. */
static const struct {
	u8 cr4_bit, leaf, ecx, bit; /* ecx: the bit is in ECX, else in EBX */
	const char *name;
} cr4_features[] = {
	{ 11, 7, 1, 2, "CR4.UMIP (UMIP)" },	      { 16, 7, 0, 0, "CR4.FSGSBASE (FSGSBASE)" },
	{ 17, 1, 1, 17, "CR4.PCIDE (PCID)" },	      { 18, 1, 1, 26, "CR4.OSXSAVE (XSAVE)" },
	{ 20, 7, 0, 7, "CR4.SMEP (SMEP)" },	      { 21, 7, 0, 20, "CR4.SMAP (SMAP)" },
	{ 22, 7, 1, 3, "CR4.PKE (protection keys)" }, { 23, 7, 1, 7, "CR4.CET (CET)" },
};

int vcpu_state_fits(const struct vcpu_state *s, const char **what)
{
	u64 known = 0x7FF;

	for (size_t i = 0; i < ARRAY_SIZE(cr4_features); i++) {
		u32 a = 0, b = 0, c = 0, d = 0;

		if (cpu.max_leaf >= cr4_features[i].leaf)
			cpuid_count(cr4_features[i].leaf, 0, &a, &b, &c, &d);
		known |= BIT(cr4_features[i].cr4_bit);
		if ((s->cr4 & BIT(cr4_features[i].cr4_bit)) &&
		    !((cr4_features[i].ecx ? c : b) & BIT(cr4_features[i].bit))) {
			*what = cr4_features[i].name;
			return -EOPNOTSUPP;
		}
	}
	if (s->cr4 & ~known) {
		*what = "CR4 bits this Amber never gives a guest";
		return -EOPNOTSUPP;
	}
	/* x87 and SSE state FXRSTOR restores anywhere; the rest needs XCR0. */
	if ((s->xcr0 & ~XCR0_MIN) && !(use_xsave && vcpu_xcr0_valid(s->xcr0))) {
		*what = "XCR0 components (AVX, AVX-512, PKRU ...) this CPU lacks";
		return -EOPNOTSUPP;
	}
	return 0;
}

int vcpu_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	u64 *hdr = (u64 *)(v->fpu + XSAVE_HDR);
	int err;

	if (v->vm->fail_state) {
		v->vm->fail_state--; /* the `vm fail-state` test hook */
		return -EIO;
	}
	err = vcpu_ops->set_state(v, s);
	if (err)
		return err;
	memcpy(v->regs, s->regs, sizeof(v->regs));
	v->halted = s->halted == VCPU_IN_HLT;
	v->wait_sipi = s->halted == VCPU_WAIT_SIPI;
	/* A sleeping vCPU is looked at again before it runs (vmm/intr.c); the
	 * backend holds the record's CR8 now. */
	v->wake_at = 0;
	v->kicked = true;
	v->cr8 = (u8)(s->cr8 & 0xf);
	if (fpu_owner == v)
		fpu_owner = NULL; /* reload from v->fpu before the next entry */
	v->xcr0 = (use_xsave && vcpu_xcr0_valid(s->xcr0) ? s->xcr0 : 1) | XCR0_MIN;
	fpu_init_area(v->fpu);
	if (s->xsave_size < 512)
		return 0; /* no FPU state given: the initial one */
	memcpy(v->fpu, s->xsave, MIN(s->xsave_size, area_size));
	/* Clean what XRSTOR would fault on (SDM Vol. 1 13.8 "Operation of XRSTOR"):
	 * reserved MXCSR bits, a compacted header, unknown components. */
	*(u32 *)(v->fpu + FXSAVE_MXCSR) &= mxcsr_mask;
	if (use_xsave) {
		hdr[0] &= v->xcr0;
		memset(&hdr[1], 0, 56);
		if (s->xsave_size < area_size)
			hdr[0] &= 3; /* components beyond what was given: initial */
	}
	return 0;
}
