/*
 * The CMOS RTC at 0x70/0x71 as polling guests read it: the clock counts from
 * the VM's start (BCD, 24-hour), status registers A-D say no update is in
 * progress, and the memory-size bytes describe the VM's RAM. Writes to the
 * data port are ignored. Motorola MC146818 datasheet, "Address Map"; IBM PC/AT
 * Technical Reference, "CMOS RAM Address Map". Host context, on a vCPU's exit
 * path.
 */
#include "kernel/lib.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_CMOS_INDEX 0x70
#define PORT_CMOS_DATA 0x71

struct vcmos {
	u8 index; /* register selected through port 0x70 (bit 7, NMI mask, dropped) */
};

static u8 bcd(u64 v) { return (u8)((v / 10 % 10) << 4 | v % 10); }

static u8 cmos_read(struct vcpu *v, u8 index)
{
	struct vm *vm = v->vm;
	u64 secs = vcpu_guest_tsc(v) / vdev_tsc_hz(vm);
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

static bool cmos_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vcmos *c = st;

	if (port == PORT_CMOS_INDEX) {
		if (in)
			*val = 0xFF;
		else
			c->index = *val & 0x7F;
	} else if (in) {
		*val = cmos_read(v, c->index);
	}
	return true;
}

static void cmos_reset(struct vm *vm, void *st) {}

static int cmos_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vcmos *c = st;

	REC(r, 0, c->index);
	if (!r->enc)
		c->index &= 0x7F;
	return 0;
}

const struct vdev vdev_cmos = {
	.id = VDEV_CMOS,
	.version = 1,
	.record_size = 8,
	.state_size = sizeof(struct vcmos),
	.ports = { { PORT_CMOS_INDEX, 2 } },
	.reset = cmos_reset,
	.io = cmos_io,
	.state = cmos_state,
};
