/*
 * The local APIC of each vCPU (vmm/intr.h), the device: interrupt
 * acceptance and priorities, IPIs, EOI, the timer computed from the guest
 * TSC when looked at, power-on state and the record. Its registers, on the
 * xAPIC page and as x2APIC MSRs, are in vmm/lapic_regs.c.
 * SDM Vol. 3A chapter 11 "Advanced Programmable Interrupt Controller (APIC)".
 * Host context, on a vCPU's exit path, the scheduler or a snapshot.
 */
#include "vmm/lapic.h"
#include "vmm/platform.h"
#include "vmm/vmm_internal.h"

u64 vlapic_bus_hz(struct vm *vm) { return VLAPIC_BUS_HZ; }

/* ---- acceptance ---------------------------------------------------------- */

static struct vcpu *vcpu_at(struct vm *vm, u32 idx)
{
	return idx < (u32)vm->nvcpus ? vm->vcpus[idx] : NULL;
}

static void kick(struct vm *vm, u32 idx)
{
	struct vcpu *v = vcpu_at(vm, idx);

	if (v)
		vcpu_kick(v);
}

/* An error of ESR `bit`; the LVT error entry interrupts once per new error
 * (a second illegal vector from the error entry itself ends there). */
void lapic_raise_error(struct vm *vm, u32 idx, u32 bit)
{
	struct vlapic *l = &vlapics(vm)->l[idx];
	u32 lvt = l->lvt[LVT_ERROR];

	if (l->esr_pending & bit)
		return;
	l->esr_pending |= bit;
	if (!(lvt & LVT_MASKED))
		lapic_accept_fixed(vm, idx, (u8)lvt, false);
}

/* A fixed interrupt reaches LAPIC idx: IRR (and TMR for level) while the
 * APIC is software-enabled; vectors 0-15 are illegal. */
void lapic_accept_fixed(struct vm *vm, u32 idx, u8 vector, bool level)
{
	struct vlapic *l = &vlapics(vm)->l[idx];

	if (!lapic_hw_enabled(l) || !lapic_sw_enabled(l))
		return;
	if (vector < 16) {
		lapic_raise_error(vm, idx, ESR_RECV_ILLEGAL);
		return;
	}
	lapic_vec_set(l->irr, vector);
	if (level)
		lapic_vec_set(l->tmr, vector);
	else
		lapic_vec_clear(l->tmr, vector);
	kick(vm, idx);
}

/* The registers an INIT (and a global disable) resets: all but the ID and
 * IA32_APIC_BASE, SDM Vol. 3A 11.4.7.3 "Local APIC State After an INIT
 * Reset ("Wait-for-SIPI" State)". */
void lapic_init_regs(struct vlapic *l)
{
	memset(l->irr, 0, sizeof(l->irr));
	memset(l->isr, 0, sizeof(l->isr));
	memset(l->tmr, 0, sizeof(l->tmr));
	l->tpr = l->ldr = l->esr = l->esr_pending = l->icr_lo = l->icr_hi = 0;
	l->dfr = 0xFFFFFFFF;
	l->svr = 0xFF;
	for (int i = 0; i < LVT_COUNT; i++)
		l->lvt[i] = LVT_MASKED;
	l->tmict = l->tdcr = 0;
	l->timer_base = l->timer_done = l->timer_fired = l->tsc_deadline = 0;
	l->nmi = 0;
	if (lapic_x2apic(l))
		l->ldr = 0; /* recomputed from the id on read */
}

static void deliver_one(struct vm *vm, u32 idx, const struct apic_msg *m)
{
	struct vlapic *l = &vlapics(vm)->l[idx];

	switch (m->mode) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		lapic_accept_fixed(vm, idx, m->vector, m->level);
		break;
	case APIC_DM_NMI:
		if (lapic_hw_enabled(l)) {
			l->nmi = 1;
			kick(vm, idx);
		}
		break;
	case APIC_DM_INIT:
		if (m->level && !m->assert)
			break; /* INIT level de-assert: no effect since the Pentium 4 */
		lapic_init_regs(l);
		l->init = 1;
		l->sipi = 0;
		kick(vm, idx);
		break;
	case APIC_DM_STARTUP:
		if (l->init && !l->sipi) {
			l->sipi = 1;
			l->sipi_vector = m->vector;
			kick(vm, idx);
		}
		break;
	default: /* SMI (no SMM here), ExtINT (the 8259A reaches LINT0 itself) */
		break;
	}
}

void vlapic_send(struct vm *vm, struct vcpu *src, const struct apic_msg *m)
{
	struct vlapics *s = vlapics(vm);
	u32 self = src ? (u32)src->id : ~0u, n = (u32)vm->nvcpus, best = ~0u;
	bool hit[VM_MAX_VCPUS] = { false };

	for (u32 i = 0; i < n && i < VM_MAX_VCPUS; i++) {
		const struct vlapic *l = &s->l[i];

		switch (m->shorthand) {
		case APIC_DEST_SELF:
			hit[i] = i == self;
			break;
		case APIC_DEST_ALL:
			hit[i] = true;
			break;
		case APIC_DEST_ALL_BUT_SELF:
			hit[i] = i != self;
			break;
		default:
			hit[i] = lapic_dest_match(l, i, m->logical, m->dest, !src);
			break;
		}
		if (!lapic_hw_enabled(l) && m->mode != APIC_DM_INIT && m->mode != APIC_DM_STARTUP)
			hit[i] = false;
		/* Lowest priority: the lowest arbitration priority takes it (ties:
		 * the lowest index, a fixed arbitration ID order). */
		if (hit[i] && m->mode == APIC_DM_LOWEST &&
		    (best == ~0u || lapic_apr_of(l) < lapic_apr_of(&s->l[best])))
			best = i;
	}
	for (u32 i = 0; i < n && i < VM_MAX_VCPUS; i++)
		if (hit[i] && (m->mode != APIC_DM_LOWEST || i == best))
			deliver_one(vm, i, m);
}

int vlapic_pending(struct vcpu *v)
{
	struct vlapic *l = lapic_of(v);
	int irrv;

	if (!lapic_hw_enabled(l) || !lapic_sw_enabled(l))
		return -1;
	irrv = lapic_vec_highest(l->irr);
	if (irrv < 0 || ((u32)irrv & 0xF0) <= (lapic_ppr_of(l) & 0xF0))
		return -1;
	return irrv;
}

bool vlapic_irr_empty(struct vcpu *v)
{
	const u32 *irr = lapic_of(v)->irr;

	return !(irr[0] | irr[1] | irr[2] | irr[3] | irr[4] | irr[5] | irr[6] | irr[7]);
}

void vlapic_accept(struct vcpu *v, u8 vector)
{
	struct vlapic *l = lapic_of(v);

	lapic_vec_clear(l->irr, vector);
	lapic_vec_set(l->isr, vector);
}

bool vlapic_accepts_pic(struct vcpu *v)
{
	const struct vlapic *l = lapic_of(v);
	u32 lint0 = l->lvt[LVT_LINT0];

	if (!lapic_hw_enabled(l))
		return true;
	return !(lint0 & LVT_MASKED) && ((lint0 >> 8) & 7) == APIC_DM_EXTINT;
}

bool vlapic_nmi_pending(struct vcpu *v) { return lapic_of(v)->nmi; }

int vlapic_startup(struct vcpu *v, u8 *vector)
{
	const struct vlapic *l = lapic_of(v);

	if (!l->init)
		return VLAPIC_RUN;
	if (!l->sipi)
		return VLAPIC_WAIT_SIPI;
	*vector = l->sipi_vector;
	return VLAPIC_SIPI;
}

void vlapic_started(struct vcpu *v)
{
	struct vlapic *l = lapic_of(v);

	l->init = l->sipi = 0;
}

void vlapic_take_nmi(struct vcpu *v) { lapic_of(v)->nmi = 0; }

u8 vlapic_get_cr8(struct vcpu *v) { return (u8)((lapic_of(v)->tpr >> 4) & 0xF); }

void vlapic_set_cr8(struct vcpu *v, u8 cr8)
{
	lapic_of(v)->tpr = (u32)(cr8 & 0xF) << 4;
	if (vlapic_pending(v) >= 0)
		vcpu_kick(v);
}

/* ---- the timer's expiries ------------------------------------------------ */

/* Brings the timer of LAPIC idx up to guest TSC `tsc`: new expiries set the
 * LVT timer vector in IRR once (more coalesce, as on hardware). */
void lapic_timer_sync(struct vm *vm, u32 idx, u64 tsc)
{
	struct vlapic *l = &vlapics(vm)->l[idx];
	u64 n = lapic_timer_expiries(l, vdev_tsc_hz(vm), tsc);
	u32 lvt = l->lvt[LVT_TIMER];

	if (n <= l->timer_fired || (lapic_timer_mode(l) == TIMER_TSC_DEADLINE && !n))
		return;
	if (lapic_timer_mode(l) == TIMER_TSC_DEADLINE) {
		l->tsc_deadline = 0; /* SDM: the MSR reads 0 after it fired */
		l->timer_fired = 0;
	} else {
		l->timer_fired = n;
	}
	l->last_fire = tsc;
	if (!(lvt & LVT_MASKED))
		lapic_accept_fixed(vm, idx, (u8)lvt, false);
}

static void lapic_sync(struct vm *vm, void *st, u64 tsc)
{
	for (u32 i = 0; i < (u32)vm->nvcpus && i < VM_MAX_VCPUS; i++)
		lapic_timer_sync(vm, i, tsc);
}

static u64 lapic_deadline(struct vm *vm, void *st)
{
	struct vlapics *s = st;
	u64 first = ~0ULL;

	for (u32 i = 0; i < (u32)vm->nvcpus && i < VM_MAX_VCPUS; i++) {
		const struct vlapic *l = &s->l[i];

		if (!(l->lvt[LVT_TIMER] & LVT_MASKED) && lapic_hw_enabled(l))
			first = MIN(first, lapic_timer_next(l, vdev_tsc_hz(vm)));
	}
	return first;
}

/* Restarts the count at `tsc` with `ticks` already counted (a new initial
 * count, or a new divisor that changes the rate from now on). */
void lapic_timer_rebase(struct vlapic *l, u64 tsc, u64 ticks)
{
	l->timer_base = tsc;
	l->timer_done = ticks;
}

/* ---- registers ----------------------------------------------------------- */

void lapic_eoi(struct vcpu *v)
{
	struct vlapic *l = lapic_of(v);
	int vec = lapic_vec_highest(l->isr);

	if (vec < 0)
		return;
	lapic_vec_clear(l->isr, (u8)vec);
	/* SDM Vol. 3A 11.8.5 "Signaling Interrupt Servicing Completion": a
	 * level-triggered vector's EOI goes on to the IOAPIC. */
	if (lapic_vec_test(l->tmr, (u8)vec)) {
		lapic_vec_clear(l->tmr, (u8)vec);
		vioapic_eoi(v->vm, (u8)vec);
	}
	if (vlapic_pending(v) >= 0)
		vcpu_kick(v);
}

/* Sends the ICR's message (SDM Vol. 3A 11.6.1): the shorthand, the
 * destination (8 bits in ICR[63:56] for xAPIC, 32 in ICR[63:32] for x2APIC). */
void lapic_send_icr(struct vcpu *v)
{
	struct vlapic *l = lapic_of(v);
	struct apic_msg m = {
		.vector = (u8)l->icr_lo,
		.mode = (l->icr_lo >> 8) & 7,
		.logical = l->icr_lo & BIT(11),
		.assert = l->icr_lo & BIT(14),
		.level = l->icr_lo & BIT(15),
		.shorthand = (l->icr_lo >> 18) & 3,
		.dest = lapic_x2apic(l) ? l->icr_hi : l->icr_hi >> 24,
	};

	if ((m.mode == APIC_DM_FIXED || m.mode == APIC_DM_LOWEST) && m.vector < 16) {
		lapic_raise_error(v->vm, (u32)v->id, ESR_SEND_ILLEGAL);
		return;
	}
	/* Only fixed interrupts may be sent to self (SDM table "Valid
	 * Combinations for the ... Interrupt Command Register"). */
	if (m.shorthand == APIC_DEST_SELF && m.mode != APIC_DM_FIXED)
		return;
	if (m.mode == APIC_DM_FIXED || m.mode == APIC_DM_NMI || m.mode == APIC_DM_STARTUP)
		m.level = false; /* edge, whatever the trigger bit says */
	vlapic_send(v->vm, v, &m);
}

/* ---- power-on, records -------------------------------------------------- */

/* Power-on as a BIOS leaves the PC in "virtual wire" mode (MP spec 1.4
 * 3.6.2.2 "Virtual Wire Mode"): every APIC enabled at PLAT_LAPIC_BASE but
 * software-disabled (SVR 0xFF), LVTs masked, except that vCPU 0's LINT0
 * takes the 8259A (ExtINT) and its LINT1 the NMI. */
static void lapic_reset(struct vm *vm, void *st)
{
	struct vlapics *s = st;

	for (u32 i = 0; i < VM_MAX_VCPUS; i++) {
		struct vlapic *l = &s->l[i];

		l->apic_base = PLAT_LAPIC_BASE | APICBASE_EN | (i == 0 ? APICBASE_BSP : 0);
		l->id = i;
		lapic_init_regs(l);
		/* The application processors wait for a STARTUP IPI, as the MP
		 * spec 1.4 B.4 "Application Processor Startup" finds them after
		 * the BIOS; the BSP runs. */
		l->init = i != 0;
		l->sipi = l->sipi_vector = 0;
	}
	s->l[0].lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
	s->l[0].lvt[LVT_LINT1] = APIC_DM_NMI << 8;
	lapic_remap(vm);
}

#define LAPIC_REC_SIZE 256 /* bytes per vCPU in the record */

/* One LAPIC at offset o of the record; decoding checks it. */
static int lapic_rec(const struct rec *r, u32 o, struct vlapic *l, u32 idx, const char **why)
{
	REC(r, o + 0x00, l->apic_base);
	REC(r, o + 0x08, l->id);
	for (int i = 0; i < 8; i++) {
		REC(r, o + 0x10 + 4 * i, l->irr[i]);
		REC(r, o + 0x30 + 4 * i, l->isr[i]);
		REC(r, o + 0x50 + 4 * i, l->tmr[i]);
	}
	REC(r, o + 0x70, l->tpr);
	REC(r, o + 0x74, l->svr);
	REC(r, o + 0x78, l->ldr);
	REC(r, o + 0x7C, l->dfr);
	REC(r, o + 0x80, l->esr);
	REC(r, o + 0x84, l->esr_pending);
	REC(r, o + 0x88, l->icr_lo);
	REC(r, o + 0x8C, l->icr_hi);
	for (int i = 0; i < LVT_COUNT; i++)
		REC(r, o + 0x90 + 4 * (u32)i, l->lvt[i]);
	REC(r, o + 0xA8, l->tmict);
	REC(r, o + 0xAC, l->tdcr);
	REC(r, o + 0xB0, l->timer_base);
	REC(r, o + 0xB8, l->timer_done);
	REC(r, o + 0xC0, l->timer_fired);
	REC(r, o + 0xC8, l->tsc_deadline);
	REC(r, o + 0xD0, l->nmi);
	REC(r, o + 0xD1, l->init);
	REC(r, o + 0xD2, l->sipi);
	REC(r, o + 0xD3, l->sipi_vector);
	if (r->enc)
		return 0;
	l->last_fire = 0;
	if ((l->apic_base & ~APICBASE_VALID) ||
	    (l->apic_base & (APICBASE_EN | APICBASE_EXTD)) == APICBASE_EXTD ||
	    !!(l->apic_base & APICBASE_BSP) != (idx == 0)) {
		*why = "IA32_APIC_BASE value no LAPIC can hold";
		return -EINVAL;
	}
	if (l->id > 0xFF || l->tpr > 0xFF || l->svr > 0x1FF || (l->ldr & 0x00FFFFFF) ||
	    (l->dfr & 0x0FFFFFFF) != 0x0FFFFFFF || (l->icr_lo & ~ICR_VALID_LO) ||
	    (l->tdcr & ~0xBu) || ((l->lvt[LVT_TIMER] >> 17) & 3) == 3 ||
	    (l->esr | l->esr_pending) & ~0xE0u || l->nmi > 1 || l->init > 1 || l->sipi > 1) {
		*why = "LAPIC register values no LAPIC can hold";
		return -EINVAL;
	}
	for (int i = 0; i < LVT_COUNT; i++)
		if (l->lvt[i] & ~0x7F7FFu) {
			*why = "LAPIC LVT entry with reserved bits set";
			return -EINVAL;
		}
	return 0;
}

/* The record: LAPIC_REC_SIZE bytes for each of the VM_MAX_VCPUS LAPICs. */
static int lapic_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vlapics *s = st;

	for (u32 i = 0; i < VM_MAX_VCPUS; i++) {
		int err = lapic_rec(r, i * LAPIC_REC_SIZE, &s->l[i], i, why);

		if (err)
			return err;
	}
	if (!r->enc)
		lapic_remap(vm);
	return 0;
}

const struct vdev vdev_lapic = {
	.id = VDEV_LAPIC,
	.version = 1,
	.record_size = VM_MAX_VCPUS * LAPIC_REC_SIZE,
	.state_size = sizeof(struct vlapics),
	.reset = lapic_reset,
	.sync = lapic_sync,
	.deadline = lapic_deadline,
	.state = lapic_state,
};
