/*
 * The two cascaded 8259A programmable interrupt controllers of a PC (master
 * at 0x20/0x21, slave at 0xA0/0xA1 on the master's IR2) and the PIIX edge/
 * level control registers (ELCR, 0x4D0/0x4D1): initialization words ICW1-4,
 * OCW1 (mask), OCW2 (EOI and rotation), OCW3 (status read, poll, special mask),
 * fully nested and special fully nested modes, automatic EOI.
 * Intel 8259A datasheet, "Functional Description", "Programming the 8259A"
 * (Initialization Command Words, Operation Command Words), "Interrupt
 * Sequence", "The Special Mask Mode", "Poll Command"; Intel 82371AB (PIIX4)
 * datasheet, "ELCR1/ELCR2 - Edge/Level Control Registers".
 * Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/intr.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_MASTER 0x20
#define PORT_SLAVE 0xA0
#define PORT_ELCR 0x4D0

#define ICW1_IC4 0x01  /* ICW4 follows */
#define ICW1_SNGL 0x02 /* single controller: no ICW3 */
#define ICW1_LTIM 0x08 /* level-triggered inputs */
#define ICW1_INIT 0x10 /* a command-port write with D4 set is ICW1 */
#define ICW4_AEOI 0x02
#define ICW4_SFNM 0x10
#define OCW3_SELECT 0x08 /* D4 = 0, D3 = 1: OCW3; D3 = 0: OCW2 */
#define OCW3_RIS 0x01
#define OCW3_RR 0x02
#define OCW3_POLL 0x04
#define OCW3_SMM 0x20
#define OCW3_ESMM 0x40

#define CASCADE_IR 2 /* the slave's INT drives the master's IR2 */
/* ELCR bits that hold: IRQ0-2, IRQ8 and IRQ13 are always edge-triggered. */
#define ELCR_MASTER_BITS 0xF8
#define ELCR_SLAVE_BITS 0xDE

struct pic8259 {
	u8 irr, isr, imr;
	u8 line;	/* level of each IR input now, for edge detection */
	u8 vector_base; /* ICW2, bits 7:3 */
	u8 icw1, icw3, icw4;
	u8 init_step; /* 0 ready, else the ICW (2, 3, 4) the data port expects */
	u8 lowest;    /* the IR of lowest priority; 7 after ICW1 (no rotation) */
	u8 read_isr;  /* OCW3: the command port reads the ISR, else the IRR */
	u8 poll;      /* OCW3 P: the next command-port read is a poll */
	u8 special_mask;
	u8 rotate_aeoi; /* OCW2: rotate priorities on automatic EOI */
	u8 elcr;
};

struct vpic {
	struct pic8259 chip[2]; /* master, slave */
};

static struct vpic *vpic(struct vm *vm) { return vm->dev[VDEV_PIC]; }

/* Interrupt requests of these IRs are level-sensitive. */
static u8 level_mask(const struct pic8259 *c) { return c->icw1 & ICW1_LTIM ? 0xFF : c->elcr; }

/* "Fully Nested Mode": priority 0 (highest) to 7 belongs to the IR one
 * above `lowest`, and so on around. */
static int priority(const struct pic8259 *c, int ir) { return (ir - c->lowest - 1) & 7; }

static int highest(const struct pic8259 *c, u8 set)
{
	for (int p = 0; p < 8; p++) {
		int ir = (c->lowest + 1 + p) & 7;

		if (set & BIT(ir))
			return ir;
	}
	return -1;
}

/* The IR this chip would signal on INT now, or -1: the highest unmasked
 * request above every level in service. In special mask mode a masked level
 * in service blocks nobody; in special fully nested mode (master) the slave's
 * own level in service does not block the slave's higher requests. */
static int chip_pending(const struct pic8259 *c, bool master)
{
	int req = highest(c, c->irr & ~c->imr);
	u8 blocking = c->isr;
	int svc;

	if (req < 0)
		return -1;
	if (c->special_mask)
		blocking &= ~c->imr;
	if (master && (c->icw4 & ICW4_SFNM))
		blocking &= ~BIT(CASCADE_IR);
	svc = highest(c, blocking);
	if (svc >= 0 && priority(c, svc) <= priority(c, req))
		return -1;
	return req;
}

/*
 * An IR input changes level. Edge mode latches a request on the rising edge
 * and keeps it until it is acknowledged: the datasheet asks the line to stay
 * high until the first INTA, a promise an emulated CPU, whose interrupt
 * window may come much later, cannot keep for the device. Level mode follows
 * the line.
 */
static void chip_set_line(struct pic8259 *c, int ir, bool level)
{
	u8 bit = BIT(ir);

	if (level) {
		if (!(c->line & bit) || (level_mask(c) & bit))
			c->irr |= bit;
		c->line |= bit;
	} else {
		c->line &= ~bit;
		if (level_mask(c) & bit)
			c->irr &= ~bit;
	}
}

static bool cascaded(const struct vpic *p) { return !(p->chip[0].icw1 & ICW1_SNGL); }

/* The slave's INT output is the master's IR2 input. */
static void update_cascade(struct vpic *p)
{
	if (cascaded(p))
		chip_set_line(&p->chip[0], CASCADE_IR, chip_pending(&p->chip[1], false) >= 0);
}

/* "Interrupt Sequence": the acknowledged request moves from IRR to ISR (or,
 * with AEOI, is done at once). A level request stays in the IRR. */
static u8 chip_ack(struct pic8259 *c, int ir)
{
	u8 bit = BIT(ir);

	if (!(level_mask(c) & bit))
		c->irr &= ~bit;
	if (c->icw4 & ICW4_AEOI) {
		if (c->rotate_aeoi)
			c->lowest = (u8)ir;
	} else {
		c->isr |= bit;
	}
	return (u8)(c->vector_base + ir);
}

bool vpic_intr(struct vm *vm) { return chip_pending(&vpic(vm)->chip[0], true) >= 0; }

/* The master's INT output rose: the vCPUs it reaches may wake (vmm/intr.h). */
static void kick_on_rise(struct vm *vm, bool before)
{
	if (!before && vpic_intr(vm))
		vm_kick(vm);
}

void vpic_set_irq(struct vm *vm, unsigned irq, bool level)
{
	struct vpic *p = vpic(vm);
	bool before = vpic_intr(vm);

	/* IRQ2 is the cascade input; an ISA card's "IRQ2" arrives as IRQ9. */
	if (irq >= 16 || irq == CASCADE_IR)
		return;
	chip_set_line(&p->chip[irq >= 8], irq & 7, level);
	update_cascade(p);
	kick_on_rise(vm, before);
}

u8 vpic_ack(struct vm *vm)
{
	struct vpic *p = vpic(vm);
	struct pic8259 *m = &p->chip[0], *s = &p->chip[1];
	int ir = chip_pending(m, true), sir;
	u8 vector;

	if (ir < 0) /* the request went away: "default" IR7, nothing in service */
		return (u8)(m->vector_base + 7);
	if (ir != CASCADE_IR || !cascaded(p))
		return chip_ack(m, ir);
	chip_ack(m, CASCADE_IR);
	sir = chip_pending(s, false);
	vector = sir < 0 ? (u8)(s->vector_base + 7) : chip_ack(s, sir);
	update_cascade(p);
	return vector;
}

/* "Poll Command": the read acts as an acknowledge of this chip alone and
 * returns I (bit 7) with the highest requesting level. */
static u8 chip_poll(struct pic8259 *c, bool master)
{
	int ir = chip_pending(c, master);

	c->poll = 0;
	if (ir < 0)
		return 0;
	chip_ack(c, ir);
	return (u8)(0x80 | ir);
}

/* OCW2: the EOI commands and the priority rotation. */
static void chip_ocw2(struct pic8259 *c, u8 val)
{
	int level = val & 7, ir;

	switch (val >> 5) {
	case 1: /* non-specific EOI: the highest level in service */
	case 5: /* ... and rotate: that level becomes the lowest */
		ir = highest(c, c->isr);
		if (ir < 0)
			break;
		c->isr &= ~BIT(ir);
		if (val >> 5 == 5)
			c->lowest = (u8)ir;
		break;
	case 3: /* specific EOI */
		c->isr &= ~BIT(level);
		break;
	case 7: /* rotate on specific EOI */
		c->isr &= ~BIT(level);
		c->lowest = (u8)level;
		break;
	case 6: /* set priority: `level` becomes the lowest */
		c->lowest = (u8)level;
		break;
	case 4: /* rotate in automatic EOI mode: set */
		c->rotate_aeoi = 1;
		break;
	case 0: /* ... clear */
		c->rotate_aeoi = 0;
		break;
	default: /* 2: no operation */
		break;
	}
}

/* ICW1 starts an initialization: the edge sense is reset (a line high now
 * must fall and rise again), the mask cleared, IR7 made lowest, special mask
 * mode cleared, status read set to the IRR and, without IC4, ICW4 zeroed. The
 * datasheet's list does not name the IRR and ISR; they are cleared too, as
 * guests re-initializing after a crash expect no stale level in service. */
static void chip_icw1(struct pic8259 *c, u8 val)
{
	c->icw1 = val;
	c->irr = c->isr = c->imr = 0;
	c->lowest = 7;
	c->special_mask = c->read_isr = c->poll = c->rotate_aeoi = 0;
	if (!(val & ICW1_IC4))
		c->icw4 = 0;
	c->init_step = 2;
}

static void chip_write_data(struct pic8259 *c, u8 val)
{
	switch (c->init_step) {
	case 2:
		c->vector_base = val & 0xF8; /* 8086 mode: T7-T3 */
		c->init_step = !(c->icw1 & ICW1_SNGL) ? 3 : (c->icw1 & ICW1_IC4) ? 4 : 0;
		break;
	case 3:
		c->icw3 = val;
		c->init_step = (c->icw1 & ICW1_IC4) ? 4 : 0;
		break;
	case 4:
		c->icw4 = val;
		c->init_step = 0;
		break;
	default: /* OCW1 */
		c->imr = val;
		break;
	}
}

static void chip_write_cmd(struct pic8259 *c, u8 val)
{
	if (val & ICW1_INIT) {
		chip_icw1(c, val);
	} else if (val & OCW3_SELECT) {
		if (val & OCW3_POLL)
			c->poll = 1;
		if (val & OCW3_RR)
			c->read_isr = val & OCW3_RIS;
		if (val & OCW3_ESMM)
			c->special_mask = !!(val & OCW3_SMM);
	} else {
		chip_ocw2(c, val);
	}
}

static bool pic_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vpic *p = st;
	u8 b = (u8)*val;

	if (size != 1)
		return false;
	if (port == PORT_ELCR || port == PORT_ELCR + 1) {
		struct pic8259 *c = &p->chip[port - PORT_ELCR];
		u8 bits = port == PORT_ELCR ? ELCR_MASTER_BITS : ELCR_SLAVE_BITS;

		if (in)
			*val = c->elcr;
		else
			c->elcr = b & bits;
		return true;
	}
	struct pic8259 *c = &p->chip[(port & ~1) == PORT_SLAVE];
	bool master = c == &p->chip[0], before;

	/* A timer may have raised a line since the last exit. */
	vdev_sync(v->vm, vcpu_guest_tsc(v));
	before = vpic_intr(v->vm);
	if (port & 1) {
		if (in)
			*val = c->imr;
		else
			chip_write_data(c, b);
	} else if (in) {
		*val = c->poll ? chip_poll(c, master) : c->read_isr ? c->isr : c->irr;
	} else {
		chip_write_cmd(c, b);
	}
	update_cascade(p);
	kick_on_rise(v->vm, before); /* an unmask or EOI let a request through */
	return true;
}

static void pic_reset(struct vm *vm, void *st)
{
	struct vpic *p = st;

	/* Before any ICW: everything masked, as the BIOS leaves a PC. */
	for (int i = 0; i < 2; i++) {
		p->chip[i].imr = 0xFF;
		p->chip[i].lowest = 7;
	}
}

/*
 * The record: 16 bytes per chip, master first. Version 1 (images of Amber
 * before this device had interrupts) held the two masks alone, at 0 and 1.
 */
static int pic_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vpic *p = st;

	if (version == 1) {
		REC(r, 0, p->chip[0].imr);
		REC(r, 1, p->chip[1].imr);
		return 0;
	}
	for (int i = 0; i < 2; i++) {
		struct pic8259 *c = &p->chip[i];
		u32 o = (u32)i * 16;

		REC(r, o + 0, c->irr);
		REC(r, o + 1, c->isr);
		REC(r, o + 2, c->imr);
		REC(r, o + 3, c->line);
		REC(r, o + 4, c->vector_base);
		REC(r, o + 5, c->icw1);
		REC(r, o + 6, c->icw3);
		REC(r, o + 7, c->icw4);
		REC(r, o + 8, c->init_step);
		REC(r, o + 9, c->lowest);
		REC(r, o + 10, c->read_isr);
		REC(r, o + 11, c->poll);
		REC(r, o + 12, c->special_mask);
		REC(r, o + 13, c->rotate_aeoi);
		REC(r, o + 14, c->elcr);
		if (r->enc)
			continue;
		if (c->vector_base & 7 || c->lowest > 7 || c->read_isr > 1 || c->poll > 1 ||
		    c->special_mask > 1 || c->rotate_aeoi > 1 ||
		    (c->init_step != 0 && (c->init_step < 2 || c->init_step > 4)) ||
		    c->elcr & ~(i ? ELCR_SLAVE_BITS : ELCR_MASTER_BITS)) {
			*why = "8259A register values no chip can hold";
			return -EINVAL;
		}
	}
	return 0;
}

const struct vdev vdev_pic = {
	.id = VDEV_PIC,
	.version = 2,
	.record_size = 32,
	.state_size = sizeof(struct vpic),
	.ports = { { PORT_MASTER, 2 }, { PORT_SLAVE, 2 }, { PORT_ELCR, 2 } },
	.reset = pic_reset,
	.io = pic_io,
	.state = pic_state,
};
