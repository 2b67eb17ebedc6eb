/*
 * fw_cfg, QEMU's firmware configuration interface, at PLAT_FW_CFG_PORT: a
 * 16-bit write to 0x510 selects an item and rewinds it, each byte read from
 * 0x511 (or 0x510) returns its next byte, 0 past its end. What a guest finds:
 *   0x0000 signature "QEMU"             0x0001 ID: 1, the port interface, no DMA
 *   0x0003 RAM size (u64)               0x0005 NB_CPUS: vCPUs at boot (u16)
 *   0x000f MAX_CPUS: APIC id limit (u16) 0x0019 the file directory
 *   files: etc/boot-cpus (u16) and etc/e820 (the map of vmm/memmap.c)
 * Test kernels written for QEMU (kvm-unit-tests) read the signature, RAM size
 * and NB_CPUS; SeaBIOS-style firmware reads the two files. Everything else
 * (kernel and initrd items, ACPI table loader, DMA) is absent: the tables are
 * already in RAM (vmm/fwtables.c). Multi-byte items are little-endian, the
 * directory big-endian. QEMU docs/specs/fw_cfg.rst.
 * Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/memmap.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define FW_CFG_SELECTOR PLAT_FW_CFG_PORT
#define FW_CFG_DATA (PLAT_FW_CFG_PORT + 1)

#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_ID 0x0001
#define FW_CFG_RAM_SIZE 0x0003
#define FW_CFG_NB_CPUS 0x0005
#define FW_CFG_MAX_CPUS 0x000f
#define FW_CFG_FILE_DIR 0x0019
#define FW_CFG_FILE_FIRST 0x0020
#define FW_CFG_ID_TRADITIONAL BIT(0)

#define FILE_NAME_LEN 56
#define ITEM_MAX 256 /* the largest item: the directory or etc/e820 */

struct vfwcfg {
	u16 selector; /* the item selected */
	u32 offset;   /* its next byte; never past its end */
};

/* The files, in directory order (QEMU sorts them by name), at selectors
 * FW_CFG_FILE_FIRST up. */
static const char *const files[] = { "etc/boot-cpus", "etc/e820" };

static void put_be(u8 *p, u64 v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (u8)(v >> (8 * (size - 1 - i)));
}

static void put_le64(u8 *p, u64 v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (u8)(v >> (8 * i));
}

static u32 file_item(struct vm *vm, unsigned idx, u8 *buf)
{
	struct e820_entry map[MEMMAP_MAX];
	int n;

	if (idx == 0) {
		put_le64(buf, (u64)vm->nvcpus, 2);
		return 2;
	}
	/* etc/e820: struct e820_entry {u64 address, u64 length, u32 type}. */
	n = memmap_build(vm->mem_size, map);
	for (int i = 0; i < n; i++) {
		put_le64(buf + 20 * i, map[i].addr, 8);
		put_le64(buf + 20 * i + 8, map[i].len, 8);
		put_le64(buf + 20 * i + 16, map[i].type, 4);
	}
	return (u32)(20 * n);
}

/* The bytes of item `key` into buf[ITEM_MAX]; returns its length (0: no such
 * item). Items are computed from the VM when read, so only the selector and
 * the offset are state. */
static u32 fwcfg_item(struct vm *vm, u16 key, u8 *buf)
{
	_Static_assert(4 + ARRAY_SIZE(files) * 64 <= ITEM_MAX, "the directory fits");
	_Static_assert(MEMMAP_MAX * 20 <= ITEM_MAX, "etc/e820 fits");

	switch (key) {
	case FW_CFG_SIGNATURE:
		memcpy(buf, "QEMU", 4);
		return 4;
	case FW_CFG_ID:
		put_le64(buf, FW_CFG_ID_TRADITIONAL, 4);
		return 4;
	case FW_CFG_RAM_SIZE:
		put_le64(buf, vm->mem_size, 8);
		return 8;
	case FW_CFG_NB_CPUS:
	case FW_CFG_MAX_CPUS: /* no hotplug: the APIC ids end at the last vCPU */
		put_le64(buf, (u64)vm->nvcpus, 2);
		return 2;
	case FW_CFG_FILE_DIR: {
		/* u32 count, then {u32 size, u16 select, u16 reserved, name[56]}. */
		u8 scratch[ITEM_MAX];

		put_be(buf, ARRAY_SIZE(files), 4);
		for (unsigned i = 0; i < ARRAY_SIZE(files); i++) {
			u8 *e = buf + 4 + 64 * i;

			memset(e, 0, 64);
			put_be(e, file_item(vm, i, scratch), 4);
			put_be(e + 4, FW_CFG_FILE_FIRST + i, 2);
			strlcpy((char *)e + 8, files[i], FILE_NAME_LEN);
		}
		return 4 + 64 * ARRAY_SIZE(files);
	}
	default:
		if (key >= FW_CFG_FILE_FIRST &&
		    (unsigned)(key - FW_CFG_FILE_FIRST) < ARRAY_SIZE(files))
			return file_item(vm, key - FW_CFG_FILE_FIRST, buf);
		return 0;
	}
}

static bool fwcfg_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vfwcfg *f = st;
	u8 buf[ITEM_MAX];
	u32 len;

	if (!in && size == 2 && port == FW_CFG_SELECTOR) {
		f->selector = (u16)*val;
		f->offset = 0;
		return true;
	}
	if (size != 1)
		return false; /* the data port is a byte wide, the selector a word */
	if (!in)
		return true; /* writes to the data port are ignored, as QEMU does */
	len = fwcfg_item(v->vm, f->selector, buf);
	*val = f->offset < len ? buf[f->offset++] : 0;
	return true;
}

static void fwcfg_reset(struct vm *vm, void *st) {}

/* The record: the selector at 0 and the offset at 4. An offset past the
 * item's end is kept as it reads the same (zeros) and moves no further. */
static int fwcfg_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vfwcfg *f = st;

	REC(r, 0, f->selector);
	REC(r, 4, f->offset);
	if (!r->enc && f->offset > ITEM_MAX) {
		*why = "fw_cfg offset past any item";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_fwcfg = {
	.id = VDEV_FWCFG,
	.version = 1,
	.record_size = 8,
	.state_size = sizeof(struct vfwcfg),
	.ports = { { PLAT_FW_CFG_PORT, 2 } },
	.reset = fwcfg_reset,
	.io = fwcfg_io,
	.state = fwcfg_state,
};
