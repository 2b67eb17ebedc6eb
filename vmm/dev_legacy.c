/*
 * The small legacy PC platform that polling guests expect: the 8254 PIT (its
 * counters run against the guest's TSC), port 0x61 (channel 2 gate and output,
 * refresh toggle), an 8042 keyboard controller with no key pressed, the 8259
 * PICs and the POST port (writes accepted), the CMOS RTC and memory size
 * bytes, port 0x92, an empty PCI configuration space, and the VGA registers a
 * text-mode program touches (CRT controller, miscellaneous output, the input
 * status with its vertical retrace at 60 Hz of guest time). No interrupts are
 * ever raised. Host context, on a vCPU's exit path.
 * Intel 8254 datasheet ("Control Word Format", "Mode 0" .. "Mode 5", "Read-Back
 * Command"); IBM PC/AT Technical Reference (port 0x61, 8042, CMOS map).
 */
#include "kernel/lib.h"
#include "vmm/vmm_internal.h"

#define PIT_HZ 1193182ULL
#define PORT_PIT0 0x40
#define PORT_PIT_CMD 0x43
#define PORT_B 0x61
#define PORT_B_GATE2 0x01
#define PORT_B_SPEAKER 0x02
#define PORT_B_REFRESH 0x10
#define PORT_B_OUT2 0x20
#define PORT_KBD_DATA 0x60
#define PORT_KBD_STATUS 0x64
#define KBD_STAT_OBF 0x01
#define KBD_STAT_SYS 0x04
#define KBD_STAT_UNLOCKED 0x10
#define PORT_CMOS_INDEX 0x70
#define PORT_CMOS_DATA 0x71
#define PORT_POST 0x80
#define PORT_SYS_CTRL_A 0x92
#define PORT_PCI_ADDR 0xCF8
#define PORT_PCI_DATA 0xCFC
#define PORT_VGA_MISC_W 0x3C2
#define PORT_VGA_MISC_R 0x3CC
#define PORT_VGA_CRTC_INDEX 0x3D4
#define PORT_VGA_CRTC_DATA 0x3D5
#define PORT_VGA_STATUS 0x3DA
#define VGA_STATUS_DISPLAY_OFF 0x01
#define VGA_STATUS_VRETRACE 0x08
#define VGA_FRAME_HZ 60

/* The guest's TSC now; a backend that cannot give it stops the VM (and the
 * devices see the time stand still at the last pause). */
static u64 guest_tsc(struct vcpu *v)
{
	u64 tsc;
	int err = vcpu_ops->get_field(v, VCPU_FIELD_TSC, &tsc);

	if (err) {
		vm_stop(v->vm, "%s could not read the guest's TSC (%s)", vcpu_ops->name,
			errno_name(err));
		return v->frozen_tsc;
	}
	return tsc;
}

void legacy_reset(struct vm *vm)
{
	struct vplatform *p = &vm->platform;

	memset(p, 0, sizeof(*p));
	p->kbd_ccb = 0x45; /* translate, system flag, keyboard interrupt */
	p->pic_imr[0] = p->pic_imr[1] = 0xFF;
	p->vga_misc = 0x67; /* colour text mode at 0x3Dx, as the BIOS leaves it */
	for (int i = 0; i < 3; i++)
		p->pit[i].access = 3;
}

/* ---- 8254 PIT ------------------------------------------------------------- */

/* ticks * rate / hz, exactly, in 64-bit arithmetic (no 128-bit division in a
 * kernel without libgcc): rate and the remainder are small enough. */
static u64 scale(u64 ticks, u64 rate, u64 hz) { return ticks / hz * rate + ticks % hz * rate / hz; }

static u64 pit_elapsed(struct vm *vm, const struct vpit_channel *c, u64 tsc)
{
	u64 hz = vm->guest_tsc_hz ? vm->guest_tsc_hz : 1000000000ULL;

	if (tsc < c->start_tsc)
		return 0;
	return scale(tsc - c->start_tsc, PIT_HZ, hz);
}

/* The counter's value and output now ("Mode 0" .. "Mode 5"). A channel whose
 * count was never written reads 0 with its output low. */
static u16 pit_count(struct vm *vm, const struct vpit_channel *c, u64 tsc, bool *out)
{
	u64 reload = c->reload ? c->reload : 0x10000;
	u64 t = pit_elapsed(vm, c, tsc);

	*out = false;
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
		*out = t >= reload;
		return (u16)(reload - t);
	}
}

static void pit_latch(struct vm *vm, struct vpit_channel *c, u64 tsc)
{
	bool out;

	if (!c->latched) {
		c->latch = pit_count(vm, c, tsc, &out);
		c->latched = 1;
		c->read_hi = 0;
	}
}

static void pit_write_cmd(struct vcpu *v, u8 val)
{
	struct vplatform *p = &v->vm->platform;
	unsigned sc = val >> 6, rw = (val >> 4) & 3;

	if (sc == 3) { /* read-back: bit 5 clear = latch the count of each selected */
		if (!(val & 0x20))
			for (int i = 0; i < 3; i++)
				if (val & (2 << i))
					pit_latch(v->vm, &p->pit[i], guest_tsc(v));
		return;
	}
	if (rw == 0) { /* counter latch command */
		pit_latch(v->vm, &p->pit[sc], guest_tsc(v));
		return;
	}
	p->pit[sc].mode = (val >> 1) & 7;
	p->pit[sc].access = rw;
	p->pit[sc].write_hi = 0;
	p->pit[sc].read_hi = 0;
	p->pit[sc].latched = 0;
	p->pit[sc].armed = 0; /* a new control word stops the count until it is written */
}

static void pit_write_count(struct vcpu *v, struct vpit_channel *c, u8 val)
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
	c->start_tsc = guest_tsc(v);
	c->armed = 1;
}

static u8 pit_read_count(struct vcpu *v, struct vpit_channel *c)
{
	bool out;
	u16 n = c->latched ? c->latch : pit_count(v->vm, c, guest_tsc(v), &out);
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

static u8 port_b_read(struct vcpu *v)
{
	struct vplatform *p = &v->vm->platform;
	u64 tsc = guest_tsc(v);
	u64 hz = v->vm->guest_tsc_hz ? v->vm->guest_tsc_hz : 1000000000ULL;
	bool out2 = false;
	u8 val = p->port61 & 0x0F;

	if (p->port61 & PORT_B_GATE2)
		pit_count(v->vm, &p->pit[2], tsc, &out2);
	if (out2)
		val |= PORT_B_OUT2;
	/* The DRAM refresh request toggles every 15.085 us; BIOS-era delay loops
	 * count its edges. */
	if (scale(tsc, 66291, hz) & 1)
		val |= PORT_B_REFRESH;
	return val;
}

static void port_b_write(struct vcpu *v, u8 val)
{
	struct vplatform *p = &v->vm->platform;

	/* The gate rising restarts channel 2 in the gate-triggered modes and
	 * resumes it in the others; both are approximated as a restart. */
	if ((val & PORT_B_GATE2) && !(p->port61 & PORT_B_GATE2) && p->pit[2].armed)
		p->pit[2].start_tsc = guest_tsc(v);
	p->port61 = val & 0x0F;
}

/* ---- 8042 keyboard controller: present, no key ever pressed ------------- */

static void kbd_queue(struct vplatform *p, u8 b)
{
	if (p->kbd_out_len < sizeof(p->kbd_out))
		p->kbd_out[p->kbd_out_len++] = b;
}

static u8 kbd_read_data(struct vplatform *p)
{
	u8 b;

	if (!p->kbd_out_len)
		return 0;
	b = p->kbd_out[0];
	memmove(p->kbd_out, p->kbd_out + 1, --p->kbd_out_len);
	return b;
}

static void kbd_write_cmd(struct vcpu *v, u8 cmd)
{
	struct vplatform *p = &v->vm->platform;

	switch (cmd) {
	case 0x20:
		kbd_queue(p, p->kbd_ccb);
		break; /* read command byte */
	case 0x60:
	case 0xD1:
		p->kbd_cmd = cmd;
		break; /* data byte follows */
	case 0xAA:
		kbd_queue(p, 0x55);
		break; /* self test passed */
	case 0xAB:
		kbd_queue(p, 0x00);
		break; /* interface test passed */
	case 0xFE:     /* pulse the reset line */
		vm_stop(v->vm, "the guest reset the machine through the keyboard controller");
		break;
	default:
		break;
	}
}

static void kbd_write_data(struct vcpu *v, u8 val)
{
	struct vplatform *p = &v->vm->platform;

	if (p->kbd_cmd == 0x60) {
		p->kbd_ccb = val;
	} else if (p->kbd_cmd == 0xD1) {
		if (!(val & 1))
			vm_stop(v->vm,
				"the guest reset the machine through the keyboard controller");
	} else {
		kbd_queue(p, 0xFA); /* a keyboard command: acknowledged */
		if (val == 0xFF)
			kbd_queue(p, 0xAA); /* reset: self test passed */
	}
	p->kbd_cmd = 0;
}

/* ---- CMOS: the clock counts from the VM's start; memory sizes in KiB ----- */

static u8 bcd(u64 v) { return (u8)((v / 10 % 10) << 4 | v % 10); }

static u8 cmos_read(struct vcpu *v, u8 index)
{
	struct vm *vm = v->vm;
	u64 hz = vm->guest_tsc_hz ? vm->guest_tsc_hz : 1000000000ULL;
	u64 secs = guest_tsc(v) / hz;
	u64 ext_kib = vm->mem_size > MiB(1) ? (vm->mem_size - MiB(1)) >> 10 : 0;
	u64 above16 = vm->mem_size > MiB(16) ? (vm->mem_size - MiB(16)) >> 16 : 0;

	switch (index) {
	case 0x00:
		return bcd(secs % 60);
	case 0x02:
		return bcd(secs / 60 % 60);
	case 0x04:
		return bcd(secs / 3600 % 24);
	case 0x06:
		return 1; /* day of week */
	case 0x07:
		return 0x01; /* day of month */
	case 0x08:
		return 0x01; /* month */
	case 0x09:
		return 0x25; /* year */
	case 0x32:
		return 0x20; /* century */
	case 0x0A:
		return 0x26; /* status A: 32.768 kHz, no update in progress */
	case 0x0B:
		return 0x02; /* status B: 24-hour, BCD */
	case 0x0D:
		return 0x80; /* status D: CMOS valid */
	case 0x15:
		return 640 & 0xFF; /* base memory in KiB */
	case 0x16:
		return 640 >> 8;
	case 0x17:
	case 0x30:
		return (u8)MIN(ext_kib, 0xFFFFULL);
	case 0x18:
	case 0x31:
		return (u8)(MIN(ext_kib, 0xFFFFULL) >> 8);
	case 0x34:
		return (u8)MIN(above16, 0xFFFFULL);
	case 0x35:
		return (u8)(MIN(above16, 0xFFFFULL) >> 8);
	default:
		return 0;
	}
}

/* Input status 1 (VGA "External/General Registers"): vertical retrace for the
 * last 1/20 of each 60 Hz frame of guest time, horizontal blanking toggling. */
static u8 vga_status(struct vcpu *v)
{
	u64 hz = v->vm->guest_tsc_hz ? v->vm->guest_tsc_hz : 1000000000ULL;
	u64 frame_pos = scale(guest_tsc(v), VGA_FRAME_HZ * 20, hz);
	u8 val = 0;

	if (frame_pos % 20 == 19)
		val |= VGA_STATUS_VRETRACE | VGA_STATUS_DISPLAY_OFF;
	else if (scale(guest_tsc(v), 31469, hz) & 1) /* 31.469 kHz line rate */
		val |= VGA_STATUS_DISPLAY_OFF;
	return val;
}

/* ---- dispatch ---------------------------------------------------------------- */

bool legacy_io(struct vcpu *v, u16 port, u8 size, bool in, u32 *val)
{
	struct vplatform *p = &v->vm->platform;
	u8 b = (u8)*val;

	switch (port) {
	case PORT_PIT0:
	case PORT_PIT0 + 1:
	case PORT_PIT0 + 2:
		if (in)
			*val = pit_read_count(v, &p->pit[port - PORT_PIT0]);
		else
			pit_write_count(v, &p->pit[port - PORT_PIT0], b);
		return true;
	case PORT_PIT_CMD:
		if (in)
			*val = 0xFF;
		else
			pit_write_cmd(v, b);
		return true;
	case PORT_B:
		if (in)
			*val = port_b_read(v);
		else
			port_b_write(v, b);
		return true;
	case PORT_KBD_DATA:
		if (in)
			*val = kbd_read_data(p);
		else
			kbd_write_data(v, b);
		return true;
	case PORT_KBD_STATUS:
		if (in)
			*val = KBD_STAT_SYS | KBD_STAT_UNLOCKED |
			       (p->kbd_out_len ? KBD_STAT_OBF : 0);
		else
			kbd_write_cmd(v, b);
		return true;
	case 0x20:
	case 0xA0: /* PIC command: nothing pending, nothing in service */
		if (in)
			*val = 0;
		return true;
	case 0x21:
	case 0xA1: /* PIC data: the mask (ICW2-4 land here too) */
		if (in)
			*val = p->pic_imr[port == 0xA1];
		else
			p->pic_imr[port == 0xA1] = b;
		return true;
	case PORT_POST:
		if (in)
			*val = p->post;
		else
			p->post = b;
		return true;
	case PORT_CMOS_INDEX:
		if (in)
			*val = 0xFF;
		else
			p->cmos_index = b & 0x7F;
		return true;
	case PORT_CMOS_DATA:
		if (in)
			*val = cmos_read(v, p->cmos_index);
		return true;
	case PORT_SYS_CTRL_A:
		if (in)
			*val = 0x02; /* A20 on */
		else if (b & 1)
			vm_stop(v->vm, "the guest reset the machine through port 0x92");
		return true;
	case PORT_PCI_ADDR:
		if (size == 4) {
			if (in)
				*val = p->pci_addr;
			else
				p->pci_addr = *val;
			return true;
		}
		return false;
	case PORT_VGA_CRTC_INDEX:
		if (in)
			*val = p->crtc_index;
		else
			p->crtc_index = b & 0x1F;
		return true;
	case PORT_VGA_CRTC_DATA:
		if (in)
			*val = p->crtc[p->crtc_index & 0x1F];
		else
			p->crtc[p->crtc_index & 0x1F] = b;
		return true;
	case PORT_VGA_MISC_W:
		if (!in)
			p->vga_misc = b;
		return true;
	case PORT_VGA_MISC_R:
		if (in)
			*val = p->vga_misc;
		return true;
	case PORT_VGA_STATUS:
		if (in)
			*val = vga_status(v);
		return true;
	case PORT_PCI_DATA:
	case PORT_PCI_DATA + 1:
	case PORT_PCI_DATA + 2:
	case PORT_PCI_DATA + 3:
		if (in)
			*val = 0xFFFFFFFF; /* no device on any bus */
		return true;
	default:
		return false;
	}
}
