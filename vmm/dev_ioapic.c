/*
 * The I/O APIC at PLAT_IOAPIC_BASE (vmm/intr.h): 24 input pins, each with a
 * redirection entry that turns an edge or a level into a message for the
 * local APICs (vlapic_send); level pins wait in Remote IRR for the EOI.
 * Intel 82093AA I/O APIC datasheet, 3.0 "Register Description" (IOREGSEL,
 * IOWIN, IOAPICID, IOAPICVER, IOAPICARB, "I/O Redirection Table
 * Registers"); the EOI register at 0x40 of the version 0x20 parts (ICH).
 * Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"

#define IOREGSEL 0x00
#define IOWIN 0x10
#define IOEOI 0x40
#define IOAPIC_PAGE 0x1000

#define IOAPICID 0x00
#define IOAPICVER 0x01
#define IOAPICARB 0x02
#define IOREDTBL 0x10 /* entry n: low dword at 0x10 + 2n, high at 0x11 + 2n */
#define IOAPIC_VERSION 0x20

/* Redirection entry fields ("I/O Redirection Table Registers"). */
#define RTE_DELIVS BIT(12)   /* delivery status: read-only, always idle here */
#define RTE_POLARITY BIT(13) /* 1: active low */
#define RTE_REMOTE_IRR BIT(14)
#define RTE_LEVEL BIT(15)
#define RTE_MASKED BIT(16)
#define RTE_WRITABLE 0xFF0000000001AFFFULL /* vector .. mask, dest; not 12, 14 */
#define RTE_VALID (RTE_WRITABLE | RTE_DELIVS | RTE_REMOTE_IRR)

struct vioapic {
	u32 id;	   /* IOAPICID bits 27:24 */
	u32 sel;   /* IOREGSEL */
	u32 lines; /* input pin levels as the devices drive them */
	u64 rte[IOAPIC_PINS];
};

static struct vioapic *vioapic(struct vm *vm) { return vm->dev[VDEV_IOAPIC]; }

/* The pin is asserted: its line at the active level the entry names. */
static bool asserted(const struct vioapic *io, unsigned pin)
{
	bool high = io->lines & BIT(pin);

	return io->rte[pin] & RTE_POLARITY ? !high : high;
}

/* Sends pin's interrupt; a level one waits in Remote IRR for its EOI. */
static void deliver(struct vm *vm, struct vioapic *io, unsigned pin)
{
	u64 e = io->rte[pin];
	struct apic_msg m = {
		.vector = (u8)e,
		.mode = (e >> 8) & 7,
		.logical = e & BIT(11),
		.level = e & RTE_LEVEL,
		.assert = true,
		.dest = (u32)(e >> 56),
	};

	if (e & RTE_MASKED)
		return;
	if (e & RTE_LEVEL) {
		if (e & RTE_REMOTE_IRR)
			return;
		io->rte[pin] |= RTE_REMOTE_IRR;
	}
	/* ExtINT entries name the 8259A, which reaches LINT0 by itself. */
	if (m.mode != APIC_DM_EXTINT)
		vlapic_send(vm, NULL, &m);
}

void vioapic_set_irq(struct vm *vm, unsigned gsi, bool level)
{
	struct vioapic *io = vioapic(vm);
	bool was;

	if (gsi >= IOAPIC_PINS)
		return;
	was = asserted(io, gsi);
	if (level)
		io->lines |= BIT(gsi);
	else
		io->lines &= ~BIT(gsi);
	if (!asserted(io, gsi))
		return;
	/* An edge pin interrupts on the edge; a level pin whenever it is
	 * asserted and not waiting for an EOI. */
	if (io->rte[gsi] & RTE_LEVEL || !was)
		deliver(vm, io, gsi);
}

void vioapic_eoi(struct vm *vm, u8 vector)
{
	struct vioapic *io = vioapic(vm);

	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		if ((u8)io->rte[pin] != vector || !(io->rte[pin] & RTE_REMOTE_IRR))
			continue;
		io->rte[pin] &= ~RTE_REMOTE_IRR;
		if ((io->rte[pin] & RTE_LEVEL) && asserted(io, pin))
			deliver(vm, io, pin);
	}
}

/* IOWIN read of the register IOREGSEL selects; an index past the table
 * reads 0 (the datasheet leaves it undefined). */
static u32 reg_read(const struct vioapic *io)
{
	u32 sel = io->sel & 0xFF, pin = (sel - IOREDTBL) / 2;

	switch (sel) {
	case IOAPICID:
	case IOAPICARB: /* the arbitration id is loaded from the id */
		return io->id;
	case IOAPICVER:
		return IOAPIC_VERSION | (IOAPIC_PINS - 1) << 16;
	default:
		if (sel < IOREDTBL || pin >= IOAPIC_PINS)
			return 0;
		return sel & 1 ? (u32)(io->rte[pin] >> 32) : (u32)io->rte[pin];
	}
}

static void reg_write(struct vm *vm, struct vioapic *io, u32 val)
{
	u32 sel = io->sel & 0xFF, pin = (sel - IOREDTBL) / 2;
	u64 e;

	if (sel == IOAPICID) {
		io->id = val & 0x0F000000;
		return;
	}
	if (sel < IOREDTBL || pin >= IOAPIC_PINS)
		return; /* read-only or past the table: ignored */
	e = io->rte[pin];
	if (sel & 1)
		e = (e & 0xFFFFFFFFULL) | (u64)val << 32;
	else
		e = (e & ~0xFFFFFFFFULL) | val;
	io->rte[pin] = (e & RTE_WRITABLE) | (io->rte[pin] & RTE_REMOTE_IRR);
	if (!(io->rte[pin] & RTE_LEVEL))
		io->rte[pin] &= ~RTE_REMOTE_IRR; /* edge entries have none */
	/* Unmasking (or making level) a pin that is asserted interrupts now. */
	if (io->rte[pin] & RTE_LEVEL && asserted(io, pin))
		deliver(vm, io, pin);
}

/* The page: IOREGSEL, IOWIN and EOI take accesses of up to 32 bits at
 * their offsets; the rest of the page reads 0 and ignores writes. */
static int ioapic_mmio_read(void *dev, void *ctx, u64 off, u8 size, u64 *val)
{
	struct vcpu *v = ctx;
	struct vioapic *io = vioapic(v->vm);

	*val = 0;
	if (size > 4)
		return 0;
	if (off == IOREGSEL)
		*val = io->sel;
	else if (off == IOWIN)
		*val = reg_read(io);
	if (size < 4)
		*val &= (1ULL << (8 * size)) - 1;
	return 0;
}

static int ioapic_mmio_write(void *dev, void *ctx, u64 off, u8 size, u64 val)
{
	struct vcpu *v = ctx;
	struct vioapic *io = vioapic(v->vm);

	if (size > 4)
		return 0;
	if (off == IOREGSEL)
		io->sel = (u32)val & 0xFF;
	else if (off == IOWIN && size == 4)
		reg_write(v->vm, io, (u32)val);
	else if (off == IOEOI)
		vioapic_eoi(v->vm, (u8)val);
	return 0;
}

static const struct mmio_ops ioapic_mmio_ops = {
	.read = ioapic_mmio_read,
	.write = ioapic_mmio_write,
};

/* Power-on: every entry masked, the id PLAT_IOAPIC_ID; the page on the bus. */
static void ioapic_reset(struct vm *vm, void *st)
{
	struct vioapic *io = st;

	io->id = (u32)PLAT_IOAPIC_ID << 24;
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
		io->rte[pin] = RTE_MASKED;
	if (!mmio_find(&vm->mmio, PLAT_IOAPIC_BASE))
		mmio_register(&vm->mmio, "ioapic", PLAT_IOAPIC_BASE, IOAPIC_PAGE, &ioapic_mmio_ops,
			      NULL);
}

/* The record: id, IOREGSEL, the pin levels, then the 24 entries at 0x10. */
static int ioapic_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vioapic *io = st;

	REC(r, 0, io->id);
	REC(r, 4, io->sel);
	REC(r, 8, io->lines);
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
		REC(r, 0x10 + 8 * pin, io->rte[pin]);
	if (r->enc)
		return 0;
	if ((io->id & ~0x0F000000u) || io->sel > 0xFF || (io->lines >> IOAPIC_PINS)) {
		*why = "IOAPIC register values no 82093AA can hold";
		return -EINVAL;
	}
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
		if (io->rte[pin] & ~RTE_VALID) {
			*why = "IOAPIC redirection entry with reserved bits set";
			return -EINVAL;
		}
	return 0;
}

const struct vdev vdev_ioapic = {
	.id = VDEV_IOAPIC,
	.version = 1,
	.record_size = 0x10 + 8 * IOAPIC_PINS,
	.state_size = sizeof(struct vioapic),
	.reset = ioapic_reset,
	.state = ioapic_state,
};
