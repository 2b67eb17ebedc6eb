/*
 * The local APIC's registers (vmm/lapic.h): the xAPIC page at the address
 * IA32_APIC_BASE names, the x2APIC MSRs 0x800-0x8FF with their #GP rules,
 * IA32_APIC_BASE and IA32_TSC_DEADLINE. SDM Vol. 3A 11.4 "Local APIC",
 * 11.12 "Extended XAPIC (x2APIC)". Host context, on a vCPU's exit path.
 */
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "vmm/lapic.h"
#include "vmm/vmm_internal.h"

/* An LVT entry: the bits each entry has (SDM Vol. 3A 11.5.1 "Local Vector
 * Table"); delivery status and Remote IRR are read-only. In x2APIC mode a
 * reserved bit or the reserved timer mode 3 is #GP (-EINVAL); an xAPIC
 * drops them (mode 3 keeps the old mode, so no register holds it). */
static int write_lvt(struct vcpu *v, struct vlapic *l, int i, u32 val, bool x2)
{
	static const u32 valid[LVT_COUNT] = {
		[LVT_TIMER] = 0x700FF, /* vector, mask, mode (bit 18 TSC-deadline) */
		[LVT_THERMAL] = 0x107FF, [LVT_PERF] = 0x107FF,
		[LVT_LINT0] = 0x1A7FF, /* vector, mode, polarity, trigger, mask */
		[LVT_LINT1] = 0x1A7FF,	 [LVT_ERROR] = 0x100FF,
	};
	u32 old = l->lvt[i], keep = old & LVT_REMOTE_IRR;

	/* Expiries up to now count under the old entry (a masked timer's are
	 * lost, not delivered by the unmasking). */
	if (i == LVT_TIMER)
		lapic_timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));

	if (x2 && (val & ~(valid[i] | BIT(12) | LVT_REMOTE_IRR)))
		return -EINVAL;
	if (i == LVT_TIMER && (val & LVT_TIMER_MODE) == LVT_TIMER_MODE) {
		if (x2)
			return -EINVAL;
		val = (val & ~LVT_TIMER_MODE) | (old & LVT_TIMER_MODE);
	}
	val &= valid[i];
	if (!lapic_sw_enabled(l))
		val |= LVT_MASKED; /* 11.4.7.2: masks cannot be cleared */
	l->lvt[i] = val | keep;
	if (i == LVT_TIMER && ((old ^ val) & LVT_TIMER_MODE)) {
		u64 now = vcpu_guest_tsc(v);

		if ((val >> 17 & 3) == TIMER_TSC_DEADLINE ||
		    (old >> 17 & 3) == TIMER_TSC_DEADLINE) {
			/* Entering or leaving TSC-deadline mode disarms the timer
			 * (11.5.4.1 "TSC-Deadline Mode"). */
			l->tmict = 0;
			l->tsc_deadline = 0;
			l->timer_fired = 0;
			lapic_timer_rebase(l, now, 0);
		}
	}
	if (i == LVT_TIMER && !(val & LVT_MASKED))
		lapic_timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
	return 0;
}

/* A register read by xAPIC offset (16-byte aligned). Returns 0, or -ENOENT
 * for a reserved offset and -EPERM for a write-only one. */
static int reg_read(struct vcpu *v, u32 off, u64 *val)
{
	struct vlapic *l = lapic_of(v);
	u64 r = 0;

	/* An expiry shows in IRR even to a guest that polls with IF=0. */
	lapic_timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
	switch (off) {
	case APIC_ID:
		r = lapic_x2apic(l) ? (u32)v->id : l->id << 24;
		break;
	case APIC_LVR:
		r = APIC_VERSION | (LVT_COUNT - 1) << 16;
		break;
	case APIC_TASKPRI:
		r = l->tpr;
		break;
	case APIC_ARBPRI:
		if (lapic_x2apic(l))
			return -ENOENT;
		r = lapic_apr_of(l);
		break;
	case APIC_PROCPRI:
		r = lapic_ppr_of(l);
		break;
	case APIC_EOI:
	case APIC_SELF_IPI:
		return lapic_x2apic(l) ? -EPERM : off == APIC_EOI ? 0 : -ENOENT;
	case APIC_RRR:
		if (lapic_x2apic(l))
			return -ENOENT;
		break; /* remote read is not supported: reads 0 */
	case APIC_LDR:
		r = lapic_x2apic(l) ? lapic_x2apic_ldr((u32)v->id) : l->ldr;
		break;
	case APIC_DFR:
		if (lapic_x2apic(l))
			return -ENOENT;
		r = l->dfr;
		break;
	case APIC_SPIV:
		r = l->svr;
		break;
	case APIC_ESR:
		r = l->esr;
		break;
	case APIC_ICR:
		r = l->icr_lo; /* delivery status (bit 12): always idle */
		if (lapic_x2apic(l))
			r |= (u64)l->icr_hi << 32;
		break;
	case APIC_ICR2:
		if (lapic_x2apic(l))
			return -ENOENT;
		r = l->icr_hi;
		break;
	case APIC_TMICT:
		r = l->tmict;
		break;
	case APIC_TMCCT:
		r = lapic_timer_current(l, vdev_tsc_hz(v->vm), vcpu_guest_tsc(v));
		break;
	case APIC_TDCR:
		r = l->tdcr;
		break;
	default:
		if (off >= APIC_ISR && off < APIC_ISR + 0x80)
			r = l->isr[(off - APIC_ISR) / 16];
		else if (off >= APIC_TMR && off < APIC_TMR + 0x80)
			r = l->tmr[(off - APIC_TMR) / 16];
		else if (off >= APIC_IRR && off < APIC_IRR + 0x80)
			r = l->irr[(off - APIC_IRR) / 16];
		else if (off >= APIC_LVTT && off <= APIC_LVTERR)
			r = l->lvt[(off - APIC_LVTT) / 16];
		else
			return -ENOENT;
		break;
	}
	*val = r;
	return 0;
}

static void write_svr(struct vlapic *l, u32 val)
{
	l->svr = val & 0x1FF; /* bit 9 (focus) and 12 (EOI suppression) not offered */
	if (!lapic_sw_enabled(l))
		for (int i = 0; i < LVT_COUNT; i++)
			l->lvt[i] |= LVT_MASKED;
}

/* A register write by xAPIC offset. Returns 0, -ENOENT for a reserved offset,
 * -EPERM for a read-only one, -EINVAL for reserved bits (x2APIC #GP). */
static int reg_write(struct vcpu *v, u32 off, u64 val64)
{
	struct vlapic *l = lapic_of(v);
	bool x2 = lapic_x2apic(l);
	u32 val = (u32)val64;
	u64 now;

	if (x2 && off != APIC_ICR && (val64 >> 32))
		return -EINVAL;
	switch (off) {
	case APIC_ID:
		if (x2)
			return -EPERM;
		l->id = val >> 24;
		break;
	case APIC_TASKPRI:
		if (x2 && val > 0xFF)
			return -EINVAL;
		l->tpr = val & 0xFF;
		if (vlapic_pending(v) >= 0)
			vcpu_kick(v);
		break;
	case APIC_EOI:
		if (x2 && val)
			return -EINVAL;
		lapic_eoi(v);
		break;
	case APIC_LDR:
		if (x2)
			return -EPERM;
		l->ldr = val & 0xFF000000;
		break;
	case APIC_DFR:
		if (x2)
			return -ENOENT;
		l->dfr = val | 0x0FFFFFFF;
		break;
	case APIC_SPIV:
		if (x2 && (val & ~0x1FFu))
			return -EINVAL;
		write_svr(l, val);
		break;
	case APIC_ESR:
		if (x2 && val)
			return -EINVAL;
		/* 11.5.3: a write makes the errors since the last write readable */
		l->esr = l->esr_pending;
		l->esr_pending = 0;
		break;
	case APIC_ICR:
		if (x2 && (val & ~ICR_VALID_LO))
			return -EINVAL;
		l->icr_lo = val & ICR_VALID_LO;
		if (x2)
			l->icr_hi = (u32)(val64 >> 32);
		lapic_send_icr(v);
		break;
	case APIC_ICR2:
		if (x2)
			return -ENOENT;
		l->icr_hi = val & 0xFF000000;
		break;
	case APIC_TMICT:
		if (lapic_timer_mode(l) == TIMER_TSC_DEADLINE)
			break; /* 11.5.4.1: ignored in TSC-deadline mode */
		now = vcpu_guest_tsc(v);
		l->tmict = val;
		l->timer_fired = 0;
		lapic_timer_rebase(l, now, 0);
		break;
	case APIC_TDCR:
		if (x2 && (val & ~0xBu))
			return -EINVAL;
		now = vcpu_guest_tsc(v);
		lapic_timer_sync(v->vm, (u32)v->id, now);
		lapic_timer_rebase(l, now, lapic_timer_ticks(l, vdev_tsc_hz(v->vm), now));
		l->tdcr = val & 0xB;
		break;
	case APIC_SELF_IPI:
		if (!x2)
			return -ENOENT;
		if (val & ~0xFFu)
			return -EINVAL;
		if (val < 16)
			lapic_raise_error(v->vm, (u32)v->id, ESR_SEND_ILLEGAL);
		else
			lapic_accept_fixed(v->vm, (u32)v->id, (u8)val, false);
		break;
	case APIC_LVR:
	case APIC_PROCPRI:
	case APIC_TMCCT:
		return -EPERM;
	case APIC_ARBPRI:
	case APIC_RRR:
		return x2 ? -ENOENT : -EPERM;
	default:
		if (off >= APIC_ISR && off < APIC_IRR + 0x80)
			return -EPERM;
		if (off < APIC_LVTT || off > APIC_LVTERR)
			return -ENOENT;
		return write_lvt(v, l, (int)(off - APIC_LVTT) / 16, val, x2);
	}
	return 0;
}

/* ---- the xAPIC page -------------------------------------------------------- */

/*
 * SDM Vol. 3A 11.4.1 "The Local APIC Block Diagram": registers are 32 bits
 * at 16-byte alignment and "must be accessed using 128-bit aligned 32-bit
 * loads or stores"; narrower accesses are model specific. Amber reads 1, 2
 * or 4 bytes inside a register's first dword (as compilers emit for a byte
 * of the ID), takes 32-bit writes only, and stops the guest on anything else
 * (the SDM gives it no meaning). A reserved register reads 0, ignores writes
 * and sets ESR "Illegal Register Address", as an xAPIC does.
 */
static int bad_access(struct vcpu *v, u64 off, u8 size, bool write)
{
	printk("[vm%d] LAPIC: %u-byte %s at offset 0x%lx: xAPIC registers take\n", v->vm->id, size,
	       write ? "write" : "read", off);
	printk("[vm%d]   32-bit accesses at 16-byte alignment (SDM Vol. 3A 11.4.1)\n", v->vm->id);
	return -EINVAL;
}

/* This vCPU's xAPIC page is the region's: else the access is to a page the
 * vCPU does not decode (another vCPU's relocated APIC, or x2APIC mode, where
 * the page is gone, 11.12.1.2): reads all ones, writes dropped. */
static bool page_is_mine(const struct vlapic *l, u64 region_base)
{
	return lapic_hw_enabled(l) && !lapic_x2apic(l) &&
	       (l->apic_base & APICBASE_ADDR) == region_base;
}

static int mmio_read(void *dev, void *ctx, u64 off, u8 size, u64 *val)
{
	struct vcpu *v = ctx;
	struct vlapic *l = lapic_of(v);
	u64 r;

	if (!page_is_mine(l, (u64)(uintptr_t)dev)) {
		*val = ~0ULL;
		return 0;
	}
	if ((off & 15) + size > 4)
		return bad_access(v, off, size, false);
	if (reg_read(v, (u32)(off & ~15ULL), &r)) {
		lapic_raise_error(v->vm, (u32)v->id, ESR_ILLEGAL_REG);
		r = 0;
	}
	*val = (u32)r >> (8 * (off & 3));
	if (size < 4)
		*val &= (1ULL << (8 * size)) - 1;
	return 0;
}

static int mmio_write(void *dev, void *ctx, u64 off, u8 size, u64 val)
{
	struct vcpu *v = ctx;
	struct vlapic *l = lapic_of(v);
	int err;

	if (!page_is_mine(l, (u64)(uintptr_t)dev))
		return 0;
	if (size != 4 || (off & 15))
		return bad_access(v, off, size, true);
	err = reg_write(v, (u32)off, (u32)val);
	if (err == -ENOENT)
		lapic_raise_error(v->vm, (u32)v->id, ESR_ILLEGAL_REG);
	return 0; /* read-only registers ignore writes */
}

static const struct mmio_ops lapic_mmio_ops = { .read = mmio_read, .write = mmio_write };

/* Puts the MMIO pages on the bus where the vCPUs' IA32_APIC_BASE say: one
 * region per distinct base (the region's dev is its base), the bus itself
 * the record of what is mapped. A base on RAM or on another device is not
 * reachable (RAM wins in EPT/NPT; the other device keeps its page): the
 * guest's own doing, it sees what is there. */
void lapic_remap(struct vm *vm)
{
	struct vlapics *s = vlapics(vm);
	u64 want[VM_MAX_VCPUS];
	unsigned n = 0;

	for (int i = 0; i < MAX(vm->nvcpus, 1) && i < VM_MAX_VCPUS; i++) {
		const struct vlapic *l = &s->l[i];
		u64 base = l->apic_base & APICBASE_ADDR;
		bool dup = false;

		for (unsigned k = 0; k < n; k++)
			dup |= want[k] == base;
		if (!dup) /* decoded in every mode: page_is_mine() sorts it out */
			want[n++] = base;
	}
	for (unsigned i = 0; i < vm->mmio.n;) {
		const struct mmio_region *r = &vm->mmio.regions[i];
		bool keep = false;

		for (unsigned k = 0; k < n; k++)
			keep |= r->base == want[k];
		if (r->ops == &lapic_mmio_ops && !keep)
			mmio_unregister(&vm->mmio, r->base); /* moves the last one here */
		else
			i++;
	}
	for (unsigned k = 0; k < n; k++) {
		const struct mmio_region *r = mmio_find(&vm->mmio, want[k]);

		if (!r)
			mmio_register(&vm->mmio, "lapic", want[k], APIC_PAGE, &lapic_mmio_ops,
				      (void *)(uintptr_t)want[k]);
	}
}

/* ---- MSRs -------------------------------------------------------------- */

/*
 * IA32_APIC_BASE, SDM Vol. 3A 11.12.5 "x2APIC State Transitions": EN and
 * EXTD move disabled -> xAPIC -> x2APIC -> disabled; x2APIC -> xAPIC and
 * disabled -> x2APIC, EXTD without EN and reserved bits are #GP. BSP is
 * read-only. A global disable resets the registers (11.4.3).
 */
static int write_apic_base(struct vcpu *v, u64 val)
{
	struct vlapic *l = lapic_of(v);
	u64 old = l->apic_base, mode = val & (APICBASE_EN | APICBASE_EXTD);
	u64 was = old & (APICBASE_EN | APICBASE_EXTD);

	if ((val & ~APICBASE_VALID) || ((val ^ old) & APICBASE_BSP) || mode == APICBASE_EXTD)
		return -EINVAL;
	if ((was == (APICBASE_EN | APICBASE_EXTD) && mode == APICBASE_EN) ||
	    (!was && mode == (APICBASE_EN | APICBASE_EXTD)))
		return -EINVAL;
	l->apic_base = val;
	if (!(mode & APICBASE_EN) && (was & APICBASE_EN))
		lapic_init_regs(l);
	if (mode != was && mode == (APICBASE_EN | APICBASE_EXTD))
		l->ldr = lapic_x2apic_ldr((u32)v->id);
	lapic_remap(v->vm);
	return 0;
}

int vlapic_rdmsr(struct vcpu *v, u32 msr, u64 *val)
{
	struct vlapic *l = lapic_of(v);

	if (msr == MSR_IA32_APICBASE) {
		*val = l->apic_base;
		return 0;
	}
	if (msr == MSR_IA32_TSC_DEADLINE) {
		lapic_timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
		*val = lapic_timer_mode(l) == TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
		return 0;
	}
	if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		return -ENOENT;
	if (!lapic_hw_enabled(l) || !lapic_x2apic(l))
		return -EINVAL;
	return reg_read(v, (msr - MSR_X2APIC_FIRST) * 16, val) ? -EINVAL : 0;
}

int vlapic_wrmsr(struct vcpu *v, u32 msr, u64 val)
{
	struct vlapic *l = lapic_of(v);

	if (msr == MSR_IA32_APICBASE)
		return write_apic_base(v, val);
	if (msr == MSR_IA32_TSC_DEADLINE) {
		if (lapic_timer_mode(l) != TIMER_TSC_DEADLINE)
			return 0; /* 11.5.4.1: ignored in the other modes */
		l->tsc_deadline = val;
		l->timer_fired = 0;
		lapic_timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
		return 0;
	}
	if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		return -ENOENT;
	if (!lapic_hw_enabled(l) || !lapic_x2apic(l))
		return -EINVAL;
	return reg_write(v, (msr - MSR_X2APIC_FIRST) * 16, val) ? -EINVAL : 0;
}
