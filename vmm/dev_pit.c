/*
 * The 8254 programmable interval timer and port 0x61 (channel 2 gate and
 * output, speaker, refresh toggle). The counters are computed from the guest's
 * TSC when read, never stepped; channel 0's output drives ISA IRQ0, brought up
 * to date lazily (sync) whenever someone looks at the interrupt lines.
 * Intel 8254 datasheet, "Control Word Format", "Mode 0" .. "Mode 5",
 * "Read-Back Command"; IBM PC/AT Technical Reference (port 0x61).
 * Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PIT_HZ 1193182ULL
#define PORT_PIT0 0x40
#define PORT_PIT_CMD 0x43
#define PORT_B 0x61
#define PORT_B_GATE2 0x01
#define PORT_B_REFRESH 0x10
#define PORT_B_OUT2 0x20
#define REFRESH_HZ 66291 /* the DRAM refresh request toggles every 15.085 us */

struct vpit_channel {
	u8 mode;     /* 8254 mode 0-5 (6 and 7 alias 2 and 3) */
	u8 access;   /* 1 lobyte, 2 hibyte, 3 lobyte then hibyte */
	u8 write_hi; /* next write of an access-3 counter is the high byte */
	u8 read_hi;  /* next read of an access-3 counter is the high byte */
	u8 latched;  /* a latch command froze `latch` */
	u8 armed;    /* a count was written */
	u16 latch;
	u32 reload;    /* the count written (0 means 65536) */
	u64 start_tsc; /* guest TSC when counting started */
};

struct vpit {
	struct vpit_channel ch[3];
	u8 port61;     /* bit 0 gate of channel 2, bit 1 speaker data */
	u64 irq_edges; /* rising edges of OUT0 already passed to IRQ0 */
};

static u64 elapsed(struct vm *vm, const struct vpit_channel *c, u64 tsc)
{
	if (tsc < c->start_tsc)
		return 0;
	return vdev_scale(tsc - c->start_tsc, PIT_HZ, vdev_tsc_hz(vm));
}

static u64 reload_of(const struct vpit_channel *c) { return c->reload ? c->reload : 0x10000; }

/* The counter's value and output `t` clocks after the count was loaded ("Mode
 * 0" .. "Mode 5"). Before a count is written it reads 0, its output low in
 * mode 0 and high in the others, as the control word left it (and low at
 * power-on, mode 0). */
static u16 count_at(const struct vpit_channel *c, u64 t, bool *out)
{
	u64 reload = reload_of(c);

	*out = c->mode != 0;
	if (!c->armed)
		return 0;
	switch (c->mode) {
	case 2: /* rate generator: reload..1, OUT low for the one clock at 1 */
	case 6:
		*out = (t % reload) != reload - 1;
		return (u16)(reload - t % reload);
	case 3: /* square wave: counts down by two, OUT high for the first half */
	case 7:
		*out = (t % reload) < (reload + 1) / 2;
		return (u16)(reload - (2 * t) % reload);
	default: /* 0, 1, 4, 5: one pass down to zero, then wrapping on */
		*out = c->mode == 4 || c->mode == 5 ? t != reload : t >= reload;
		return (u16)(reload - t);
	}
}

/* Rising edges of OUT in the first `t` clocks of a count: one per period in
 * modes 2 and 3, one at terminal count in mode 0 (and 1, whose gate never
 * falls on channel 0), one after the strobe in modes 4 and 5. */
static u64 rising_edges(const struct vpit_channel *c, u64 t)
{
	u64 reload = reload_of(c);

	if (!c->armed)
		return 0;
	switch (c->mode) {
	case 2:
	case 3:
	case 6:
	case 7:
		return t / reload;
	case 4:
	case 5:
		return t > reload;
	default:
		return t >= reload;
	}
}

/* IRQ0 follows OUT0; each rising edge since the last sync is one request
 * (an edge-triggered PIC coalesces those it has not yet taken). */
static void pit_sync(struct vm *vm, void *st, u64 tsc)
{
	struct vpit *p = st;
	const struct vpit_channel *c = &p->ch[0];
	u64 t = elapsed(vm, c, tsc), edges = rising_edges(c, t);
	bool out;

	count_at(c, t, &out);
	if (edges > p->irq_edges) {
		vm_set_irq(vm, 0, false);
		vm_set_irq(vm, 0, true);
	}
	p->irq_edges = edges;
	vm_set_irq(vm, 0, out);
}

/* The guest TSC at which OUT0 next rises (the next IRQ0 request), past the
 * edges already passed on: one per period in modes 2 and 3, the terminal
 * count in mode 0 (and 1), the strobe in modes 4 and 5; ~0ULL when no edge
 * is to come. Rounded up, so that pit_sync at that TSC sees the edge. */
static u64 pit_deadline(struct vm *vm, void *st)
{
	const struct vpit *p = st;
	const struct vpit_channel *c = &p->ch[0];
	u64 reload = reload_of(c), clocks;

	if (!c->armed)
		return ~0ULL;
	switch (c->mode) {
	case 2:
	case 3:
	case 6:
	case 7:
		clocks = (p->irq_edges + 1) * reload;
		break;
	case 4:
	case 5:
		if (p->irq_edges)
			return ~0ULL;
		clocks = reload + 1;
		break;
	default:
		if (p->irq_edges)
			return ~0ULL;
		clocks = reload;
		break;
	}
	return c->start_tsc + vdev_scale(clocks, vdev_tsc_hz(vm), PIT_HZ) + 1;
}

static void latch(struct vm *vm, struct vpit_channel *c, u64 tsc)
{
	bool out;

	if (!c->latched) {
		c->latch = count_at(c, elapsed(vm, c, tsc), &out);
		c->latched = 1;
		c->read_hi = 0;
	}
}

static void write_cmd(struct vcpu *v, struct vpit *p, u8 val)
{
	unsigned sc = val >> 6, rw = (val >> 4) & 3;
	struct vpit_channel *c;

	if (sc == 3) { /* read-back: bit 5 clear = latch the count of each selected */
		if (!(val & 0x20))
			for (int i = 0; i < 3; i++)
				if (val & (2 << i))
					latch(v->vm, &p->ch[i], vcpu_guest_tsc(v));
		return;
	}
	c = &p->ch[sc];
	if (rw == 0) { /* counter latch command */
		latch(v->vm, c, vcpu_guest_tsc(v));
		return;
	}
	if (sc == 0)
		pit_sync(v->vm, p, vcpu_guest_tsc(v)); /* edges of the old count first */
	c->mode = (val >> 1) & 7;
	c->access = rw;
	c->write_hi = 0;
	c->read_hi = 0;
	c->latched = 0;
	c->armed = 0; /* a new control word stops the count until it is written */
	if (sc == 0) {
		p->irq_edges = 0;
		/* OUT goes low on a mode 0 control word and high on the others: from
		 * power-on (low) that is an edge, and a request, as on the chip. */
		vm_set_irq(v->vm, 0, c->mode != 0);
	}
}

static void write_count(struct vcpu *v, struct vpit *p, struct vpit_channel *c, u8 val)
{
	switch (c->access) {
	case 1:
		c->reload = val;
		break;
	case 2:
		c->reload = (u32)val << 8;
		break;
	default:
		if (!c->write_hi) {
			c->reload = (c->reload & 0xFF00) | val;
			c->write_hi = 1;
			return;
		}
		c->reload = (c->reload & 0x00FF) | (u32)val << 8;
		c->write_hi = 0;
		break;
	}
	if (c == &p->ch[0])
		pit_sync(v->vm, p, vcpu_guest_tsc(v));
	c->start_tsc = vcpu_guest_tsc(v);
	c->armed = 1;
	if (c == &p->ch[0])
		p->irq_edges = 0;
}

static u8 read_count(struct vcpu *v, struct vpit_channel *c)
{
	bool out;
	u16 n = c->latched ? c->latch : count_at(c, elapsed(v->vm, c, vcpu_guest_tsc(v)), &out);
	u8 b;

	switch (c->access) {
	case 1:
		c->latched = 0;
		return n & 0xFF;
	case 2:
		c->latched = 0;
		return n >> 8;
	default:
		b = c->read_hi ? n >> 8 : n & 0xFF;
		c->read_hi ^= 1;
		if (!c->read_hi)
			c->latched = 0;
		return b;
	}
}

static u8 port_b_read(struct vcpu *v, struct vpit *p)
{
	u64 tsc = vcpu_guest_tsc(v);
	bool out2 = false;
	u8 val = p->port61 & 0x0F;

	if (p->port61 & PORT_B_GATE2)
		count_at(&p->ch[2], elapsed(v->vm, &p->ch[2], tsc), &out2);
	if (out2)
		val |= PORT_B_OUT2;
	/* BIOS-era delay loops count the edges of the refresh toggle. */
	if (vdev_scale(tsc, REFRESH_HZ, vdev_tsc_hz(v->vm)) & 1)
		val |= PORT_B_REFRESH;
	return val;
}

static void port_b_write(struct vcpu *v, struct vpit *p, u8 val)
{
	/* The gate rising restarts channel 2 in the gate-triggered modes and
	 * resumes it in the others; both are approximated as a restart. */
	if ((val & PORT_B_GATE2) && !(p->port61 & PORT_B_GATE2) && p->ch[2].armed)
		p->ch[2].start_tsc = vcpu_guest_tsc(v);
	p->port61 = val & 0x0F;
}

static bool pit_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vpit *p = st;
	u8 b = (u8)*val;

	if (port == PORT_B) {
		if (in)
			*val = port_b_read(v, p);
		else
			port_b_write(v, p, b);
	} else if (port == PORT_PIT_CMD) {
		if (in)
			*val = 0xFF;
		else
			write_cmd(v, p, b);
	} else if (in) {
		*val = read_count(v, &p->ch[port - PORT_PIT0]);
	} else {
		write_count(v, p, &p->ch[port - PORT_PIT0], b);
	}
	return true;
}

static void pit_reset(struct vm *vm, void *st)
{
	struct vpit *p = st;

	for (int i = 0; i < 3; i++)
		p->ch[i].access = 3;
}

/* The record: 24 bytes per channel, port 0x61 at 0x48; version 2 added the
 * IRQ0 edge count at 0x50 (a version 1 record starts it at zero). */
static int pit_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vpit *p = st;

	for (int i = 0; i < 3; i++) {
		struct vpit_channel *c = &p->ch[i];
		u32 o = (u32)i * 24;

		REC(r, o + 0, c->mode);
		REC(r, o + 1, c->access);
		REC(r, o + 2, c->write_hi);
		REC(r, o + 3, c->read_hi);
		REC(r, o + 4, c->latched);
		REC(r, o + 5, c->armed);
		REC(r, o + 6, c->latch);
		REC(r, o + 8, c->reload);
		REC(r, o + 16, c->start_tsc);
		if (!r->enc &&
		    (c->mode > 7 || c->access < 1 || c->access > 3 || c->write_hi > 1 ||
		     c->read_hi > 1 || c->latched > 1 || c->armed > 1 || c->reload > 0xFFFF)) {
			*why = "8254 counter values no chip can hold";
			return -EINVAL;
		}
	}
	REC(r, 0x48, p->port61);
	if (version >= 2)
		REC(r, 0x50, p->irq_edges);
	if (!r->enc)
		p->port61 &= 0x0F;
	return 0;
}

const struct vdev vdev_pit = {
	.id = VDEV_PIT,
	.version = 2,
	.record_size = 0x58,
	.state_size = sizeof(struct vpit),
	.ports = { { PORT_PIT0, 4 }, { PORT_B, 1 } },
	.reset = pit_reset,
	.io = pit_io,
	.sync = pit_sync,
	.deadline = pit_deadline,
	.state = pit_state,
};
