/*
 * An 8042 keyboard controller with no key ever pressed: self tests, the
 * command byte, keyboard commands acknowledged, and the reset pulse (command
 * 0xFE, or output port bit 0 cleared) that resets the machine.
 * IBM PC/AT Technical Reference, "Keyboard Controller" (commands 0x20, 0x60,
 * 0xAA, 0xAB, 0xD1, 0xFE). Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_KBD_DATA 0x60
#define PORT_KBD_STATUS 0x64
#define KBD_STAT_OBF 0x01
#define KBD_STAT_SYS 0x04
#define KBD_STAT_UNLOCKED 0x10

struct vkbd {
	u8 cmd;	   /* a command waiting for its data byte (0x60, 0xD1), or 0 */
	u8 ccb;	   /* controller command byte */
	u8 out[4]; /* bytes for the guest at port 0x60 */
	u8 out_len;
};

static void queue(struct vkbd *k, u8 b)
{
	if (k->out_len < sizeof(k->out))
		k->out[k->out_len++] = b;
}

static u8 read_data(struct vkbd *k)
{
	u8 b;

	if (!k->out_len)
		return 0;
	b = k->out[0];
	memmove(k->out, k->out + 1, --k->out_len);
	return b;
}

static void write_cmd(struct vcpu *v, struct vkbd *k, u8 cmd)
{
	switch (cmd) {
	case 0x20: /* read command byte */
		queue(k, k->ccb);
		break;
	case 0x60: /* write command byte: data follows */
	case 0xD1: /* write output port: data follows */
		k->cmd = cmd;
		break;
	case 0xAA: /* self test: passed */
		queue(k, 0x55);
		break;
	case 0xAB: /* interface test: passed */
		queue(k, 0x00);
		break;
	case 0xFE: /* pulse the reset line */
		vm_request_reset(v->vm, "the 8042");
		break;
	default:
		break;
	}
}

static void write_data(struct vcpu *v, struct vkbd *k, u8 val)
{
	if (k->cmd == 0x60) {
		k->ccb = val;
	} else if (k->cmd == 0xD1) {
		if (!(val & 1))
			vm_request_reset(v->vm, "the 8042");
	} else {
		queue(k, 0xFA); /* a keyboard command: acknowledged */
		if (val == 0xFF)
			queue(k, 0xAA); /* reset: self test passed */
	}
	k->cmd = 0;
}

static bool kbd_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vkbd *k = st;

	if (port == PORT_KBD_DATA) {
		if (in)
			*val = read_data(k);
		else
			write_data(v, k, (u8)*val);
	} else if (in) {
		*val = KBD_STAT_SYS | KBD_STAT_UNLOCKED | (k->out_len ? KBD_STAT_OBF : 0);
	} else {
		write_cmd(v, k, (u8)*val);
	}
	return true;
}

static void kbd_reset(struct vm *vm, void *st)
{
	struct vkbd *k = st;

	k->ccb = 0x45; /* translate, system flag, keyboard interrupt */
}

static int kbd_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vkbd *k = st;

	REC(r, 0, k->cmd);
	REC(r, 1, k->ccb);
	REC(r, 2, k->out_len);
	REC_BYTES(r, 4, k->out);
	if (!r->enc && k->out_len > sizeof(k->out)) {
		*why = "8042 output queue longer than it holds";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_kbd = {
	.id = VDEV_KBD,
	.version = 1,
	.record_size = 8,
	.state_size = sizeof(struct vkbd),
	.ports = { { PORT_KBD_DATA, 1 }, { PORT_KBD_STATUS, 1 } },
	.reset = kbd_reset,
	.io = kbd_io,
	.state = kbd_state,
};
