/*
 * The local APIC's private parts, shared by vmm/dev_lapic.c (the device:
 * delivery, the timer, the record) and vmm/lapic_regs.c (the register file
 * on the xAPIC page and the x2APIC MSRs): register layout, per-vCPU state,
 * and the pure arithmetic (priorities, destinations, the timer's count)
 * that host unit tests check. SDM Vol. 3A chapter 11 "Advanced
 * Programmable Interrupt Controller (APIC)". Host context.
 */
#ifndef AMBER_LAPIC_H
#define AMBER_LAPIC_H

#include "kernel/lib.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"

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
#define VLAPIC_BUS_HZ PLAT_APIC_BUS_HZ
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

static inline struct vlapics *vlapics(struct vm *vm) { return vm->dev[VDEV_LAPIC]; }
static inline struct vlapic *lapic_of(struct vcpu *v) { return &vlapics(v->vm)->l[v->id]; }

static inline bool lapic_hw_enabled(const struct vlapic *l) { return l->apic_base & APICBASE_EN; }
static inline bool lapic_x2apic(const struct vlapic *l) { return l->apic_base & APICBASE_EXTD; }
static inline bool lapic_sw_enabled(const struct vlapic *l) { return l->svr & SVR_ENABLE; }

/* ---- vectors and priorities (pure) ------------------------------------- */

static inline bool lapic_vec_test(const u32 *r, u8 v) { return r[v / 32] & BIT(v % 32); }
static inline void lapic_vec_set(u32 *r, u8 v) { r[v / 32] |= (u32)BIT(v % 32); }
static inline void lapic_vec_clear(u32 *r, u8 v) { r[v / 32] &= ~(u32)BIT(v % 32); }

/* The highest vector set in a 256-bit register, or -1. */
static inline int lapic_vec_highest(const u32 *r)
{
	for (int i = 7; i >= 0; i--)
		if (r[i])
			return i * 32 + 31 - __builtin_clz(r[i]);
	return -1;
}

/* PPR, SDM Vol. 3A 11.8.3.1 "Task and Processor Priorities": the TPR when
 * its class is at least the highest in-service class, else that class. */
static inline u32 lapic_ppr_of(const struct vlapic *l)
{
	int isrv = lapic_vec_highest(l->isr);
	u32 isr_class = isrv < 0 ? 0 : (u32)isrv & 0xF0;

	return (l->tpr & 0xF0) >= isr_class ? l->tpr & 0xFF : isr_class;
}

/* APR, SDM Vol. 3A 11.6.2.4 "Lowest Priority Delivery Mode" (arbitration
 * priority): the TPR, or the highest class requested or in service. */
static inline u32 lapic_apr_of(const struct vlapic *l)
{
	int isrv = lapic_vec_highest(l->isr), irrv = lapic_vec_highest(l->irr);
	u32 top = MAX(isrv < 0 ? 0u : (u32)isrv, irrv < 0 ? 0u : (u32)irrv) & 0xF0;

	return (l->tpr & 0xF0) >= top ? l->tpr & 0xFF : top;
}

/* ---- destinations (pure) ----------------------------------------------- */

static inline u32 lapic_x2apic_ldr(u32 id) { return (id >> 4) << 16 | BIT(id & 0xF); }

/*
 * Does l take a message sent to `dest` without a shorthand? SDM Vol. 3A
 * 11.6.2.1 "Physical Destination Mode", 11.6.2.2 "Logical Destination Mode"
 * (flat and cluster models of the DFR), 11.12.10 "x2APIC Logical
 * Destination Mode". An IOAPIC (from_ioapic) addresses 8 bits only, so its
 * 0xFF is a broadcast to x2APIC LAPICs too.
 */
static inline bool lapic_dest_match(const struct vlapic *l, u32 idx, bool logical, u32 dest,
				    bool from_ioapic)
{
	if (lapic_x2apic(l)) {
		u32 ldr = lapic_x2apic_ldr(idx);

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
static inline u32 lapic_timer_divisor(u32 tdcr)
{
	u32 code = (tdcr & 3) | ((tdcr >> 1) & 4);

	return code == 7 ? 1 : 2u << code;
}

static inline u32 lapic_timer_mode(const struct vlapic *l) { return (l->lvt[LVT_TIMER] >> 17) & 3; }

/* Timer ticks counted by guest TSC `tsc` in the current count. */
static inline u64 lapic_timer_ticks(const struct vlapic *l, u64 tsc_hz, u64 tsc)
{
	u64 bus = tsc > l->timer_base ? vdev_scale(tsc - l->timer_base, VLAPIC_BUS_HZ, tsc_hz) : 0;

	return l->timer_done + bus / lapic_timer_divisor(l->tdcr);
}

/* The first guest TSC at which lapic_timer_ticks() reaches `ticks` (>= done). */
static inline u64 lapic_timer_tsc_of(const struct vlapic *l, u64 tsc_hz, u64 ticks)
{
	u64 bus = (ticks - l->timer_done) * lapic_timer_divisor(l->tdcr);
	u64 dt = vdev_scale(bus, tsc_hz, VLAPIC_BUS_HZ);

	while (vdev_scale(dt, VLAPIC_BUS_HZ, tsc_hz) < bus)
		dt++;
	return l->timer_base + dt;
}

/* The current-count register: one-shot counts down to 0 and stays there,
 * periodic reloads; TSC-deadline mode reads 0. */
static inline u32 lapic_timer_current(const struct vlapic *l, u64 tsc_hz, u64 tsc)
{
	u64 t;

	if (!l->tmict || lapic_timer_mode(l) == TIMER_TSC_DEADLINE)
		return 0;
	t = lapic_timer_ticks(l, tsc_hz, tsc);
	if (lapic_timer_mode(l) == TIMER_PERIODIC)
		return (u32)(l->tmict - t % l->tmict);
	return t >= l->tmict ? 0 : (u32)(l->tmict - t);
}

/* Expiries of the current count by `tsc`. */
static inline u64 lapic_timer_expiries(const struct vlapic *l, u64 tsc_hz, u64 tsc)
{
	u64 t;

	if (lapic_timer_mode(l) == TIMER_TSC_DEADLINE)
		return l->tsc_deadline && tsc >= l->tsc_deadline;
	if (!l->tmict)
		return 0;
	t = lapic_timer_ticks(l, tsc_hz, tsc);
	if (lapic_timer_mode(l) == TIMER_PERIODIC)
		return t / l->tmict;
	return t >= l->tmict;
}

/* The guest TSC of the next expiry, ~0ULL when none is armed. */
static inline u64 lapic_timer_next(const struct vlapic *l, u64 tsc_hz)
{
	u64 at;

	if (lapic_timer_mode(l) == TIMER_TSC_DEADLINE)
		return l->tsc_deadline ? l->tsc_deadline : ~0ULL;
	if (!l->tmict || (lapic_timer_mode(l) == TIMER_ONESHOT && l->timer_fired))
		return ~0ULL;
	at = lapic_timer_tsc_of(l, tsc_hz, (l->timer_fired + 1) * l->tmict);
	if (lapic_timer_mode(l) == TIMER_PERIODIC)
		at = MAX(at, l->last_fire + vdev_scale(TIMER_MIN_PERIOD_NS, tsc_hz, 1000000000ULL));
	return at;
}

/* ---- shared between dev_lapic.c and lapic_regs.c ------------------------ */

/* A fixed interrupt for LAPIC idx: IRR (and TMR for level) while it is
 * software-enabled; vectors 0-15 are an error. */
void lapic_accept_fixed(struct vm *vm, u32 idx, u8 vector, bool level);
/* Records ESR `bit` for LAPIC idx, interrupting through LVT error once. */
void lapic_raise_error(struct vm *vm, u32 idx, u32 bit);
/* The registers an INIT or a global disable resets. */
void lapic_init_regs(struct vlapic *l);
/* Brings LAPIC idx's timer up to guest TSC `tsc` (expiries into IRR). */
void lapic_timer_sync(struct vm *vm, u32 idx, u64 tsc);
/* Restarts the count at `tsc` with `ticks` already counted. */
void lapic_timer_rebase(struct vlapic *l, u64 tsc, u64 ticks);
/* EOI: the highest in-service vector done (broadcast to the IOAPIC if
 * level); sends the ICR's message. */
void lapic_eoi(struct vcpu *v);
void lapic_send_icr(struct vcpu *v);
/* lapic_regs.c: the MMIO pages where the vCPUs' IA32_APIC_BASE put them. */
void lapic_remap(struct vm *vm);

#endif
