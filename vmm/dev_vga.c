/*
 * The VGA registers a text-mode program touches: the CRT controller (index
 * 0x3D4, data 0x3D5: cursor shape and position, start address), the
 * miscellaneous output register (0x3C2 write, 0x3CC read) and input status 1
 * (0x3DA) with its vertical retrace at 60 Hz of guest time. The text buffer
 * itself is guest RAM at 0xB8000 (`vm screen` reads it).
 * IBM VGA Technical Reference, "External/General Registers", "CRT Controller
 * Registers". Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_VGA_MISC_W 0x3C2
#define PORT_VGA_MISC_R 0x3CC
#define PORT_VGA_CRTC_INDEX 0x3D4
#define PORT_VGA_CRTC_DATA 0x3D5
#define PORT_VGA_STATUS 0x3DA
#define VGA_STATUS_DISPLAY_OFF 0x01
#define VGA_STATUS_VRETRACE 0x08
#define VGA_FRAME_HZ 60
#define VGA_LINE_HZ 31469

struct vvga {
	u8 crtc_index;
	u8 misc;
	u8 crtc[32];
};

/* Input status 1: vertical retrace for the last 1/20 of each frame of guest
 * time, display-enable toggling at the line rate in between. */
static u8 status(struct vcpu *v)
{
	u64 hz = vdev_tsc_hz(v->vm), tsc = vcpu_guest_tsc(v);

	if (vdev_scale(tsc, VGA_FRAME_HZ * 20, hz) % 20 == 19)
		return VGA_STATUS_VRETRACE | VGA_STATUS_DISPLAY_OFF;
	return vdev_scale(tsc, VGA_LINE_HZ, hz) & 1 ? VGA_STATUS_DISPLAY_OFF : 0;
}

static bool vga_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vvga *g = st;
	u8 b = (u8)*val;

	switch (port) {
	case PORT_VGA_CRTC_INDEX:
		if (in)
			*val = g->crtc_index;
		else
			g->crtc_index = b & 0x1F;
		return true;
	case PORT_VGA_CRTC_DATA:
		if (in)
			*val = g->crtc[g->crtc_index & 0x1F];
		else
			g->crtc[g->crtc_index & 0x1F] = b;
		return true;
	case PORT_VGA_MISC_W:
		if (!in)
			g->misc = b;
		return true;
	case PORT_VGA_MISC_R:
		if (in)
			*val = g->misc;
		return true;
	case PORT_VGA_STATUS:
		if (in)
			*val = status(v);
		return true;
	default:
		return false;
	}
}

static void vga_reset(struct vm *vm, void *st)
{
	struct vvga *g = st;

	g->misc = 0x67; /* colour text mode at 0x3Dx, as the BIOS leaves it */
}

static int vga_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vvga *g = st;

	REC(r, 0x00, g->crtc_index);
	REC(r, 0x01, g->misc);
	REC_BYTES(r, 0x08, g->crtc);
	if (!r->enc)
		g->crtc_index &= 0x1F;
	return 0;
}

const struct vdev vdev_vga = {
	.id = VDEV_VGA,
	.version = 1,
	.record_size = 0x28,
	.state_size = sizeof(struct vvga),
	.ports = { { PORT_VGA_MISC_W, 1 }, { PORT_VGA_MISC_R, 1 }, { PORT_VGA_CRTC_INDEX, 7 } },
	.reset = vga_reset,
	.io = vga_io,
	.state = vga_state,
};
