/*
 * The local APIC of each vCPU (vmm/intr.h): xAPIC registers on the MMIO page
 * IA32_APIC_BASE names, x2APIC MSRs 0x800-0x8FF, interrupt acceptance and
 * priorities, IPIs, and the timer computed from the guest TSC when looked at.
 * SDM Vol. 3A chapter 11 "Advanced Programmable Interrupt Controller (APIC)".
 * Host context, on a vCPU's exit path, the scheduler or a snapshot.
 */
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

/* IA32_APIC_BASE, SDM Vol. 3A 11.4.4 "Local APIC Status and Location". */
#define APICBASE_BSP BIT(8)
#define APICBASE_EXTD BIT(10) /* x2APIC mode */
#define APICBASE_EN BIT(11)
#define APICBASE_ADDR 0x000FFFFFFFFFF000ULL /* MAXPHYADDR 52 at most */
#define APICBASE_VALID (APICBASE_BSP | APICBASE_EXTD | APICBASE_EN | APICBASE_ADDR)

/* xAPIC register offsets, SDM Vol. 3A 11.4.1 table "Local APIC Register
 * Address Map"; the x2APIC MSR is 0x800 + offset / 16. */
#define APIC_ID 0x20
#define APIC_LVR 0x30
#define APIC_TASKPRI 0x80
#define APIC_ARBPRI 0x90
#define APIC_PROCPRI 0xA0
#define APIC_EOI 0xB0
#define APIC_RRR 0xC0
#define APIC_LDR 0xD0
#define APIC_DFR 0xE0
#define APIC_SPIV 0xF0
#define APIC_ISR 0x100
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVTT 0x320 /* the six LVT entries follow at 0x10 steps */
#define APIC_LVTERR 0x370
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
#define APIC_TDCR 0x3E0
#define APIC_SELF_IPI 0x3F0 /* x2APIC only */
#define APIC_PAGE 0x1000

#define MSR_IA32_TSC_DEADLINE 0x6E0
#define MSR_X2APIC_FIRST 0x800
#define MSR_X2APIC_LAST 0x8FF

/* Version 0x14 (an integrated APIC) with six LVT entries: timer, thermal,
 * performance counters, LINT0, LINT1, error. No CMCI, no directed EOI. */
#define APIC_VERSION 0x14
#define LVT_COUNT 6
#define LVT_TIMER 0
#define LVT_THERMAL 1
#define LVT_PERF 2
#define LVT_LINT0 3
#define LVT_LINT1 4
#define LVT_ERROR 5

#define LVT_MASKED BIT(16)
#define LVT_LEVEL BIT(15)
#define LVT_REMOTE_IRR BIT(14)
#define LVT_POLARITY BIT(13)
#define LVT_TIMER_MODE (3u << 17)
#define TIMER_ONESHOT 0u
#define TIMER_PERIODIC 1u
#define TIMER_TSC_DEADLINE 2u
#define SVR_ENABLE BIT(8)

/* ESR bits, SDM Vol. 3A 11.5.3 "Error Handling". */
#define ESR_SEND_ILLEGAL BIT(5)
#define ESR_RECV_ILLEGAL BIT(6)
#define ESR_ILLEGAL_REG BIT(7)

/* ICR fields, SDM Vol. 3A 11.6.1 "Interrupt Command Register (ICR)". */
#define ICR_VALID_LO 0x000CCFFFu /* vector, mode, dest mode, level, trigger, shorthand */

/* The timer's clock: SDM Vol. 3A 11.5.4 "APIC Timer" counts the bus clock
 * (or the crystal) divided by TDCR. Amber's is a fixed 1 GHz, one tick a
 * nanosecond, whatever the host's TSC: CPUID 0x15/0x16/0x40000010 report it. */
#define VLAPIC_BUS_HZ 1000000000ULL
/* A periodic timer cannot make the scheduler exit more often than this:
 * interrupts coalesce in IRR as on hardware, the counts stay exact. */
#define TIMER_MIN_PERIOD_NS 10000

struct vlapic {
	u64 apic_base;
	u32 id; /* xAPIC: bits 31:24 of the ID register; x2APIC: the vCPU index */
	u32 irr[8], isr[8], tmr[8];
	u32 tpr, svr, ldr, dfr;
	u32 esr, esr_pending; /* ESR reads `esr`; errors collect in esr_pending */
	u32 icr_lo, icr_hi;
	u32 lvt[LVT_COUNT];
	u32 tmict, tdcr;
	u64 timer_base;	  /* guest TSC when the count (or its divisor) started */
	u64 timer_done;	  /* timer ticks counted before timer_base */
	u64 timer_fired;  /* expiries already handled in this count */
	u64 tsc_deadline; /* IA32_TSC_DEADLINE, 0: disarmed */
	u8 nmi;		  /* an NMI waits */
	u8 init;	  /* INIT received: waits for a STARTUP IPI (SMP) */
	u8 sipi;	  /* a STARTUP IPI arrived with sipi_vector */
	u8 sipi_vector;
	u64 last_fire; /* guest TSC of the last expiry (not saved) */
};

struct vlapics {
	struct vlapic l[VM_MAX_VCPUS];
};

static struct vlapics *vlapics(struct vm *vm) { return vm->dev[VDEV_LAPIC]; }
static struct vlapic *lapic_of(struct vcpu *v) { return &vlapics(v->vm)->l[v->id]; }

u64 vlapic_bus_hz(struct vm *vm) { return VLAPIC_BUS_HZ; }

static bool hw_enabled(const struct vlapic *l) { return l->apic_base & APICBASE_EN; }
static bool x2apic(const struct vlapic *l) { return l->apic_base & APICBASE_EXTD; }
static bool sw_enabled(const struct vlapic *l) { return l->svr & SVR_ENABLE; }

/* ---- vectors and priorities (pure) ------------------------------------- */

static bool vec_test(const u32 *r, u8 v) { return r[v / 32] & BIT(v % 32); }
static void vec_set(u32 *r, u8 v) { r[v / 32] |= (u32)BIT(v % 32); }
static void vec_clear(u32 *r, u8 v) { r[v / 32] &= ~(u32)BIT(v % 32); }

/* The highest vector set in a 256-bit register, or -1. */
static int vec_highest(const u32 *r)
{
	for (int i = 7; i >= 0; i--)
		if (r[i])
			return i * 32 + 31 - __builtin_clz(r[i]);
	return -1;
}

/* PPR, SDM Vol. 3A 11.8.3.1 "Task and Processor Priorities": the TPR when
 * its class is at least the highest in-service class, else that class. */
static u32 ppr_of(const struct vlapic *l)
{
	int isrv = vec_highest(l->isr);
	u32 isr_class = isrv < 0 ? 0 : (u32)isrv & 0xF0;

	return (l->tpr & 0xF0) >= isr_class ? l->tpr & 0xFF : isr_class;
}

/* APR, SDM Vol. 3A 11.6.2.4 "Lowest Priority Delivery Mode" (arbitration
 * priority): the TPR, or the highest class requested or in service. */
static u32 apr_of(const struct vlapic *l)
{
	int isrv = vec_highest(l->isr), irrv = vec_highest(l->irr);
	u32 top = MAX(isrv < 0 ? 0u : (u32)isrv, irrv < 0 ? 0u : (u32)irrv) & 0xF0;

	return (l->tpr & 0xF0) >= top ? l->tpr & 0xFF : top;
}

/* ---- destinations (pure) ----------------------------------------------- */

static u32 x2apic_ldr(u32 id) { return (id >> 4) << 16 | BIT(id & 0xF); }

/*
 * Does l take a message sent to `dest` without a shorthand? SDM Vol. 3A
 * 11.6.2.1 "Physical Destination Mode", 11.6.2.2 "Logical Destination Mode"
 * (flat and cluster models of the DFR), 11.12.10 "x2APIC Logical
 * Destination Mode". An IOAPIC (from_ioapic) addresses 8 bits only, so its
 * 0xFF is a broadcast to x2APIC LAPICs too.
 */
static bool dest_match(const struct vlapic *l, u32 idx, bool logical, u32 dest, bool from_ioapic)
{
	if (x2apic(l)) {
		u32 ldr = x2apic_ldr(idx);

		if (dest == 0xFFFFFFFF || (from_ioapic && dest == 0xFF))
			return true;
		if (!logical)
			return dest == idx;
		return (dest >> 16) == (ldr >> 16) && (dest & ldr & 0xFFFF);
	}
	dest &= 0xFF;
	if (dest == 0xFF)
		return true;
	if (!logical)
		return dest == l->id;
	if ((l->dfr >> 28) == 0xF) /* flat: one bit per APIC */
		return (dest & (l->ldr >> 24)) != 0;
	/* cluster: bits 7:4 name the cluster, 3:0 the members */
	return (dest >> 4) == (l->ldr >> 28) && (dest & (l->ldr >> 24) & 0xF);
}

/* ---- the timer (pure but for the clock) ------------------------------- */

/* TDCR bits 0, 1 and 3: divide by 2, 4, 8, 16, 32, 64, 128 or 1
 * (SDM Vol. 3A 11.5.4 figure "Divide Configuration Register"). */
static u32 timer_divisor(u32 tdcr)
{
	u32 code = (tdcr & 3) | ((tdcr >> 1) & 4);

	return code == 7 ? 1 : 2u << code;
}

static u32 timer_mode(const struct vlapic *l) { return (l->lvt[LVT_TIMER] >> 17) & 3; }

/* Timer ticks counted by guest TSC `tsc` in the current count. */
static u64 timer_ticks(const struct vlapic *l, u64 tsc_hz, u64 tsc)
{
	u64 bus = tsc > l->timer_base ? vdev_scale(tsc - l->timer_base, VLAPIC_BUS_HZ, tsc_hz) : 0;

	return l->timer_done + bus / timer_divisor(l->tdcr);
}

/* The first guest TSC at which timer_ticks() reaches `ticks` (>= done). */
static u64 timer_tsc_of(const struct vlapic *l, u64 tsc_hz, u64 ticks)
{
	u64 bus = (ticks - l->timer_done) * timer_divisor(l->tdcr);
	u64 dt = vdev_scale(bus, tsc_hz, VLAPIC_BUS_HZ);

	while (vdev_scale(dt, VLAPIC_BUS_HZ, tsc_hz) < bus)
		dt++;
	return l->timer_base + dt;
}

/* The current-count register: one-shot counts down to 0 and stays there,
 * periodic reloads; TSC-deadline mode reads 0. */
static u32 timer_current(const struct vlapic *l, u64 tsc_hz, u64 tsc)
{
	u64 t;

	if (!l->tmict || timer_mode(l) == TIMER_TSC_DEADLINE)
		return 0;
	t = timer_ticks(l, tsc_hz, tsc);
	if (timer_mode(l) == TIMER_PERIODIC)
		return (u32)(l->tmict - t % l->tmict);
	return t >= l->tmict ? 0 : (u32)(l->tmict - t);
}

/* Expiries of the current count by `tsc`. */
static u64 timer_expiries(const struct vlapic *l, u64 tsc_hz, u64 tsc)
{
	u64 t;

	if (timer_mode(l) == TIMER_TSC_DEADLINE)
		return l->tsc_deadline && tsc >= l->tsc_deadline;
	if (!l->tmict)
		return 0;
	t = timer_ticks(l, tsc_hz, tsc);
	if (timer_mode(l) == TIMER_PERIODIC)
		return t / l->tmict;
	return t >= l->tmict;
}

/* The guest TSC of the next expiry, ~0ULL when none is armed. */
static u64 timer_next(const struct vlapic *l, u64 tsc_hz)
{
	u64 at;

	if (timer_mode(l) == TIMER_TSC_DEADLINE)
		return l->tsc_deadline ? l->tsc_deadline : ~0ULL;
	if (!l->tmict || (timer_mode(l) == TIMER_ONESHOT && l->timer_fired))
		return ~0ULL;
	at = timer_tsc_of(l, tsc_hz, (l->timer_fired + 1) * l->tmict);
	if (timer_mode(l) == TIMER_PERIODIC)
		at = MAX(at, l->last_fire + vdev_scale(TIMER_MIN_PERIOD_NS, tsc_hz, 1000000000ULL));
	return at;
}

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

static void accept_fixed(struct vm *vm, u32 idx, u8 vector, bool level);

/* An error of ESR `bit`; the LVT error entry interrupts once per new error
 * (a second illegal vector from the error entry itself ends there). */
static void raise_error(struct vm *vm, u32 idx, u32 bit)
{
	struct vlapic *l = &vlapics(vm)->l[idx];
	u32 lvt = l->lvt[LVT_ERROR];

	if (l->esr_pending & bit)
		return;
	l->esr_pending |= bit;
	if (!(lvt & LVT_MASKED))
		accept_fixed(vm, idx, (u8)lvt, false);
}

/* A fixed interrupt reaches LAPIC idx: IRR (and TMR for level) while the
 * APIC is software-enabled; vectors 0-15 are illegal. */
static void accept_fixed(struct vm *vm, u32 idx, u8 vector, bool level)
{
	struct vlapic *l = &vlapics(vm)->l[idx];

	if (!hw_enabled(l) || !sw_enabled(l))
		return;
	if (vector < 16) {
		raise_error(vm, idx, ESR_RECV_ILLEGAL);
		return;
	}
	vec_set(l->irr, vector);
	if (level)
		vec_set(l->tmr, vector);
	else
		vec_clear(l->tmr, vector);
	kick(vm, idx);
}

/* The registers an INIT (and a global disable) resets: all but the ID and
 * IA32_APIC_BASE, SDM Vol. 3A 11.4.7.3 "Local APIC State After an INIT
 * Reset ("Wait-for-SIPI" State)". */
static void lapic_init_regs(struct vlapic *l)
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
	if (x2apic(l))
		l->ldr = 0; /* recomputed from the id on read */
}

static void deliver_one(struct vm *vm, u32 idx, const struct apic_msg *m)
{
	struct vlapic *l = &vlapics(vm)->l[idx];

	switch (m->mode) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		accept_fixed(vm, idx, m->vector, m->level);
		break;
	case APIC_DM_NMI:
		if (hw_enabled(l)) {
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
			hit[i] = dest_match(l, i, m->logical, m->dest, !src);
			break;
		}
		if (!hw_enabled(l) && m->mode != APIC_DM_INIT && m->mode != APIC_DM_STARTUP)
			hit[i] = false;
		/* Lowest priority: the lowest arbitration priority takes it (ties:
		 * the lowest index, a fixed arbitration ID order). */
		if (hit[i] && m->mode == APIC_DM_LOWEST &&
		    (best == ~0u || apr_of(l) < apr_of(&s->l[best])))
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

	if (!hw_enabled(l) || !sw_enabled(l))
		return -1;
	irrv = vec_highest(l->irr);
	if (irrv < 0 || ((u32)irrv & 0xF0) <= (ppr_of(l) & 0xF0))
		return -1;
	return irrv;
}

void vlapic_accept(struct vcpu *v, u8 vector)
{
	struct vlapic *l = lapic_of(v);

	vec_clear(l->irr, vector);
	vec_set(l->isr, vector);
}

bool vlapic_accepts_pic(struct vcpu *v)
{
	const struct vlapic *l = lapic_of(v);
	u32 lint0 = l->lvt[LVT_LINT0];

	if (!hw_enabled(l))
		return true;
	return !(lint0 & LVT_MASKED) && ((lint0 >> 8) & 7) == APIC_DM_EXTINT;
}

bool vlapic_nmi_pending(struct vcpu *v) { return lapic_of(v)->nmi; }

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
static void timer_sync(struct vm *vm, u32 idx, u64 tsc)
{
	struct vlapic *l = &vlapics(vm)->l[idx];
	u64 n = timer_expiries(l, vdev_tsc_hz(vm), tsc);
	u32 lvt = l->lvt[LVT_TIMER];

	if (n <= l->timer_fired || (timer_mode(l) == TIMER_TSC_DEADLINE && !n))
		return;
	if (timer_mode(l) == TIMER_TSC_DEADLINE) {
		l->tsc_deadline = 0; /* SDM: the MSR reads 0 after it fired */
		l->timer_fired = 0;
	} else {
		l->timer_fired = n;
	}
	l->last_fire = tsc;
	if (!(lvt & LVT_MASKED))
		accept_fixed(vm, idx, (u8)lvt, false);
}

static void lapic_sync(struct vm *vm, void *st, u64 tsc)
{
	for (u32 i = 0; i < (u32)vm->nvcpus && i < VM_MAX_VCPUS; i++)
		timer_sync(vm, i, tsc);
}

static u64 lapic_deadline(struct vm *vm, void *st)
{
	struct vlapics *s = st;
	u64 first = ~0ULL;

	for (u32 i = 0; i < (u32)vm->nvcpus && i < VM_MAX_VCPUS; i++) {
		const struct vlapic *l = &s->l[i];

		if (!(l->lvt[LVT_TIMER] & LVT_MASKED) && hw_enabled(l))
			first = MIN(first, timer_next(l, vdev_tsc_hz(vm)));
	}
	return first;
}

/* Restarts the count at `tsc` with `ticks` already counted (a new initial
 * count, or a new divisor that changes the rate from now on). */
static void timer_rebase(struct vlapic *l, u64 tsc, u64 ticks)
{
	l->timer_base = tsc;
	l->timer_done = ticks;
}

/* ---- registers ----------------------------------------------------------- */

static void eoi(struct vcpu *v)
{
	struct vlapic *l = lapic_of(v);
	int vec = vec_highest(l->isr);

	if (vec < 0)
		return;
	vec_clear(l->isr, (u8)vec);
	/* SDM Vol. 3A 11.8.5 "Signaling Interrupt Servicing Completion": a
	 * level-triggered vector's EOI goes on to the IOAPIC. */
	if (vec_test(l->tmr, (u8)vec)) {
		vec_clear(l->tmr, (u8)vec);
		vioapic_eoi(v->vm, (u8)vec);
	}
	if (vlapic_pending(v) >= 0)
		vcpu_kick(v);
}

/* Sends the ICR's message (SDM Vol. 3A 11.6.1): the shorthand, the
 * destination (8 bits in ICR[63:56] for xAPIC, 32 in ICR[63:32] for x2APIC). */
static void send_icr(struct vcpu *v)
{
	struct vlapic *l = lapic_of(v);
	struct apic_msg m = {
		.vector = (u8)l->icr_lo,
		.mode = (l->icr_lo >> 8) & 7,
		.logical = l->icr_lo & BIT(11),
		.assert = l->icr_lo & BIT(14),
		.level = l->icr_lo & BIT(15),
		.shorthand = (l->icr_lo >> 18) & 3,
		.dest = x2apic(l) ? l->icr_hi : l->icr_hi >> 24,
	};

	if ((m.mode == APIC_DM_FIXED || m.mode == APIC_DM_LOWEST) && m.vector < 16) {
		raise_error(v->vm, (u32)v->id, ESR_SEND_ILLEGAL);
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

static void write_lvt(struct vcpu *v, struct vlapic *l, int i, u32 val)
{
	static const u32 valid[LVT_COUNT] = {
		[LVT_TIMER] = 0x70FF, /* vector, mask, mode (bit 18 TSC-deadline) */
		[LVT_THERMAL] = 0x107FF, [LVT_PERF] = 0x107FF,
		[LVT_LINT0] = 0x1A7FF, /* vector, mode, polarity, trigger, mask */
		[LVT_LINT1] = 0x1A7FF,	 [LVT_ERROR] = 0x100FF,
	};
	u32 old = l->lvt[i], keep = old & LVT_REMOTE_IRR;

	if (i == LVT_TIMER)
		val &= 0x700FF;
	else
		val &= valid[i];
	if (!sw_enabled(l))
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
			timer_rebase(l, now, 0);
		}
	}
	if (i == LVT_TIMER && !(val & LVT_MASKED))
		timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
}

/* A register read by xAPIC offset (16-byte aligned). Returns 0, or -ENOENT
 * for a reserved offset and -EPERM for a write-only one. */
static int reg_read(struct vcpu *v, u32 off, u64 *val)
{
	struct vlapic *l = lapic_of(v);
	u64 r = 0;

	/* An expiry shows in IRR even to a guest that polls with IF=0. */
	timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
	switch (off) {
	case APIC_ID:
		r = x2apic(l) ? (u32)v->id : l->id << 24;
		break;
	case APIC_LVR:
		r = APIC_VERSION | (LVT_COUNT - 1) << 16;
		break;
	case APIC_TASKPRI:
		r = l->tpr;
		break;
	case APIC_ARBPRI:
		if (x2apic(l))
			return -ENOENT;
		r = apr_of(l);
		break;
	case APIC_PROCPRI:
		r = ppr_of(l);
		break;
	case APIC_EOI:
	case APIC_SELF_IPI:
		return x2apic(l) ? -EPERM : off == APIC_EOI ? 0 : -ENOENT;
	case APIC_RRR:
		if (x2apic(l))
			return -ENOENT;
		break; /* remote read is not supported: reads 0 */
	case APIC_LDR:
		r = x2apic(l) ? x2apic_ldr((u32)v->id) : l->ldr;
		break;
	case APIC_DFR:
		if (x2apic(l))
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
		if (x2apic(l))
			r |= (u64)l->icr_hi << 32;
		break;
	case APIC_ICR2:
		if (x2apic(l))
			return -ENOENT;
		r = l->icr_hi;
		break;
	case APIC_TMICT:
		r = l->tmict;
		break;
	case APIC_TMCCT:
		r = timer_current(l, vdev_tsc_hz(v->vm), vcpu_guest_tsc(v));
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
	if (!sw_enabled(l))
		for (int i = 0; i < LVT_COUNT; i++)
			l->lvt[i] |= LVT_MASKED;
}

/* A register write by xAPIC offset. Returns 0, -ENOENT for a reserved offset,
 * -EPERM for a read-only one, -EINVAL for reserved bits (x2APIC #GP). */
static int reg_write(struct vcpu *v, u32 off, u64 val64)
{
	struct vlapic *l = lapic_of(v);
	bool x2 = x2apic(l);
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
		eoi(v);
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
		send_icr(v);
		break;
	case APIC_ICR2:
		if (x2)
			return -ENOENT;
		l->icr_hi = val & 0xFF000000;
		break;
	case APIC_TMICT:
		if (timer_mode(l) == TIMER_TSC_DEADLINE)
			break; /* 11.5.4.1: ignored in TSC-deadline mode */
		now = vcpu_guest_tsc(v);
		l->tmict = val;
		l->timer_fired = 0;
		timer_rebase(l, now, 0);
		break;
	case APIC_TDCR:
		if (x2 && (val & ~0xBu))
			return -EINVAL;
		now = vcpu_guest_tsc(v);
		timer_sync(v->vm, (u32)v->id, now);
		timer_rebase(l, now, timer_ticks(l, vdev_tsc_hz(v->vm), now));
		l->tdcr = val & 0xB;
		break;
	case APIC_SELF_IPI:
		if (!x2)
			return -ENOENT;
		if (val & ~0xFFu)
			return -EINVAL;
		if (val < 16)
			raise_error(v->vm, (u32)v->id, ESR_SEND_ILLEGAL);
		else
			accept_fixed(v->vm, (u32)v->id, (u8)val, false);
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
		if (x2 && (val & ~0x1F7FFu))
			return -EINVAL;
		write_lvt(v, l, (int)(off - APIC_LVTT) / 16, val);
		break;
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
	return hw_enabled(l) && !x2apic(l) && (l->apic_base & APICBASE_ADDR) == region_base;
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
		raise_error(v->vm, (u32)v->id, ESR_ILLEGAL_REG);
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
		raise_error(v->vm, (u32)v->id, ESR_ILLEGAL_REG);
	return 0; /* read-only registers ignore writes */
}

static const struct mmio_ops lapic_mmio_ops = { .read = mmio_read, .write = mmio_write };

/* Puts the MMIO pages on the bus where the vCPUs' IA32_APIC_BASE say: one
 * region per distinct base (the region's dev is its base), the bus itself
 * the record of what is mapped. A base on RAM or on another device is not
 * reachable (RAM wins in EPT/NPT; the other device keeps its page): the
 * guest's own doing, it sees what is there. */
static void lapic_remap(struct vm *vm)
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
		l->ldr = x2apic_ldr((u32)v->id);
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
		timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
		*val = timer_mode(l) == TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
		return 0;
	}
	if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		return -ENOENT;
	if (!hw_enabled(l) || !x2apic(l))
		return -EINVAL;
	return reg_read(v, (msr - MSR_X2APIC_FIRST) * 16, val) ? -EINVAL : 0;
}

int vlapic_wrmsr(struct vcpu *v, u32 msr, u64 val)
{
	struct vlapic *l = lapic_of(v);

	if (msr == MSR_IA32_APICBASE)
		return write_apic_base(v, val);
	if (msr == MSR_IA32_TSC_DEADLINE) {
		if (timer_mode(l) != TIMER_TSC_DEADLINE)
			return 0; /* 11.5.4.1: ignored in the other modes */
		l->tsc_deadline = val;
		l->timer_fired = 0;
		timer_sync(v->vm, (u32)v->id, vcpu_guest_tsc(v));
		return 0;
	}
	if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		return -ENOENT;
	if (!hw_enabled(l) || !x2apic(l))
		return -EINVAL;
	return reg_write(v, (msr - MSR_X2APIC_FIRST) * 16, val) ? -EINVAL : 0;
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
