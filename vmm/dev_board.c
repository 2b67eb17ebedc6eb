/*
 * The small ports of the board itself: the POST code port 0x80 (kept, read
 * back), system control port A at 0x92 (A20 always on; bit 0 resets the
 * machine) and the PCI configuration mechanism #1 at 0xCF8/0xCFC with no
 * device behind it. PCI Local Bus 3.0, 3.2.2.3.2 "Configuration Mechanism #1";
 * IBM PS/2 "System Control Port A". Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_POST 0x80
#define PORT_SYS_CTRL_A 0x92
#define PORT_PCI_ADDR 0xCF8
#define PORT_PCI_DATA 0xCFC

struct vboard {
	u8 post;      /* last POST code written */
	u32 pci_addr; /* last value written to 0xCF8 */
};

static bool board_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vboard *b = st;

	switch (port) {
	case PORT_POST:
		if (in)
			*val = b->post;
		else
			b->post = (u8)*val;
		return true;
	case PORT_SYS_CTRL_A:
		if (in)
			*val = 0x02; /* A20 on */
		else if (*val & 1)
			vm_stop(v->vm, "the guest reset the machine through port 0x92");
		return true;
	case PORT_PCI_ADDR:
		if (size != 4)
			return false; /* byte accesses to 0xCF8-0xCFB are other ports */
		if (in)
			*val = b->pci_addr;
		else
			b->pci_addr = *val;
		return true;
	case PORT_PCI_ADDR + 1:
	case PORT_PCI_ADDR + 2:
	case PORT_PCI_ADDR + 3:
		return false;
	default: /* 0xCFC-0xCFF: no device on any bus */
		if (in)
			*val = 0xFFFFFFFF;
		return true;
	}
}

static void board_reset(struct vm *vm, void *st) {}

static int board_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vboard *b = st;

	REC(r, 0, b->post);
	REC(r, 4, b->pci_addr);
	return 0;
}

const struct vdev vdev_board = {
	.id = VDEV_BOARD,
	.version = 1,
	.record_size = 8,
	.state_size = sizeof(struct vboard),
	.ports = { { PORT_POST, 1 }, { PORT_SYS_CTRL_A, 1 }, { PORT_PCI_ADDR, 8 } },
	.reset = board_reset,
	.io = board_io,
	.state = board_state,
};
