/*
 * The small ports of the board itself: the POST code port 0x80 (kept, read
 * back), system control port A at 0x92 (A20 always on; bit 0 rising resets
 * the machine), the PIIX reset control register at 0xCF9 (also the FADT's
 * RESET_REG) and the PCI configuration mechanism #1 at 0xCF8/0xCFC with no
 * device behind it. PCI Local Bus 3.0, 3.2.2.3.2 "Configuration Mechanism #1";
 * IBM PS/2 "System Control Port A"; Intel 82371AB (PIIX4) datasheet "Reset
 * Control Register". Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PORT_POST 0x80
#define PORT_SYS_CTRL_A 0x92
#define PORT_PCI_ADDR 0xCF8
#define PORT_PCI_DATA 0xCFC
#define RST_CNT_SYS_RST 0x02 /* with RST_CPU: a hard reset, else a soft one */
#define RST_CNT_RST_CPU 0x04 /* writing it 1 resets */
#define RST_CNT_FULL_RST 0x08

struct vboard {
	u8 post;      /* last POST code written */
	u32 pci_addr; /* last value written to 0xCF8 */
	u8 rst_cnt;   /* 0xCF9: SYS_RST and FULL_RST as written */
	u8 port92;    /* bit 0 as last written */
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
		if (in) {
			*val = 0x02 | b->port92; /* A20 on */
		} else {
			if ((*val & 1) && !b->port92)
				vm_request_reset(v->vm, "port 0x92");
			b->port92 = *val & 1;
		}
		return true;
	case PORT_PCI_ADDR:
		if (size != 4)
			return false; /* byte accesses to 0xCF8-0xCFB are other ports */
		if (in)
			*val = b->pci_addr;
		else
			b->pci_addr = *val;
		return true;
	case PLAT_RESET_PORT:
		if (size != 1)
			return false;
		if (in) {
			*val = b->rst_cnt;
		} else {
			b->rst_cnt = *val & (RST_CNT_SYS_RST | RST_CNT_FULL_RST);
			if (*val & RST_CNT_RST_CPU)
				vm_request_reset(v->vm, "port 0xcf9");
		}
		return true;
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
	if (version >= 2) {
		REC(r, 8, b->rst_cnt);
		REC(r, 9, b->port92);
	} else if (!r->enc) {
		b->rst_cnt = b->port92 = 0;
	}
	if (!r->enc && ((b->rst_cnt & ~(RST_CNT_SYS_RST | RST_CNT_FULL_RST)) || b->port92 > 1)) {
		*why = "reset control bits no chipset holds";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_board = {
	.id = VDEV_BOARD,
	.version = 2,
	.record_size = 16,
	.state_size = sizeof(struct vboard),
	.ports = { { PORT_POST, 1 }, { PORT_SYS_CTRL_A, 1 }, { PORT_PCI_ADDR, 8 } },
	.reset = board_reset,
	.io = board_io,
	.state = board_state,
};
