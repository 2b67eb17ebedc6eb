/*
 * The pure parts of PCI: BAR decoding from the sizing values, class names and
 * the capability-list walk. No port or MMIO access here, so the host unit
 * tests run them on byte arrays. Context: any.
 * Reference: PCI Local Bus Specification 3.0, 6.2.5.1 "Address Maps" and 6.7
 * "Capabilities List"; PCI Code and ID Assignment Specification 1.11.
 */
#include "kernel/pci.h"

int pci_bar_decode(u32 val_lo, u32 val_hi, u32 mask_lo, u32 mask_hi, struct pci_bar_info *out)
{
	u64 mask;

	out->is_io = val_lo & PCI_BAR_IO;
	out->is_64 = !out->is_io && (val_lo & 0x6) == PCI_BAR_MEM_TYPE_64;
	out->prefetch = !out->is_io && (val_lo & PCI_BAR_MEM_PREFETCH);
	if (out->is_io) {
		out->addr = val_lo & ~3u;
		/* Upper address bits of an I/O BAR may read back as zero (PCI 3.0
		 * 6.2.5.1): the lowest writable bit still gives the size. */
		mask = mask_lo & ~3u;
	} else if (out->is_64) {
		out->addr = ((u64)val_hi << 32) | (val_lo & ~0xfu);
		mask = ((u64)mask_hi << 32) | (mask_lo & ~0xfu);
	} else {
		out->addr = val_lo & ~0xfu;
		mask = mask_lo & ~0xfu;
	}
	/* The size is the lowest address bit that is writable; taking only that
	 * bit also copes with devices whose read-back has gaps. */
	out->size = mask & (~mask + 1);
	if (!out->size)
		out->addr = 0;
	return out->is_64 ? 2 : 1;
}

u8 pci_cap_walk(pci_cfg_read8_fn rd, const void *ctx, u8 cap_id, u8 from)
{
	/* 48 is the most capabilities that fit in 192 bytes of 4-byte entries;
	 * more means the list loops. */
	int ttl = 48;
	u8 pos;

	if (!(rd(ctx, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	pos = from ? rd(ctx, (u16)(from + 1)) : rd(ctx, PCI_CAPABILITY_LIST);
	while (ttl-- > 0) {
		u8 id;

		pos &= ~3u; /* the bottom two bits are reserved */
		if (pos < 0x40)
			break; /* 0 ends the list; the header proper holds no capability */
		id = rd(ctx, pos);
		if (id == 0xff)
			break; /* a function that vanished */
		if (id == cap_id)
			return pos;
		pos = rd(ctx, (u16)(pos + 1));
	}
	return 0;
}

/* PCI Code and ID Assignment 1.11, 1.x "Base Class nnh" tables. */
const char *pci_class_name(u8 class_code, u8 subclass)
{
	static const struct {
		u8 class_code, subclass;
		const char *name;
	} names[] = {
		{ 0x00, 0x01, "VGA (pre-2.0)" },
		{ 0x01, 0x00, "SCSI storage" }, /* also legacy virtio-blk */
		{ 0x01, 0x01, "IDE controller" },
		{ 0x01, 0x02, "floppy controller" },
		{ 0x01, 0x04, "RAID controller" },
		{ 0x01, 0x05, "ATA controller" },
		{ 0x01, 0x06, "SATA controller" },
		{ 0x01, 0x07, "SAS controller" },
		{ 0x01, 0x08, "NVMe controller" },
		{ 0x02, 0x00, "Ethernet" },
		{ 0x03, 0x00, "VGA" },
		{ 0x03, 0x01, "XGA" },
		{ 0x03, 0x02, "3D controller" },
		{ 0x04, 0x01, "audio" },
		{ 0x04, 0x03, "HD audio" },
		{ 0x05, 0x00, "RAM controller" },
		{ 0x06, 0x00, "host bridge" },
		{ 0x06, 0x01, "ISA bridge" },
		{ 0x06, 0x02, "EISA bridge" },
		{ 0x06, 0x04, "PCI bridge" },
		{ 0x06, 0x07, "CardBus bridge" },
		{ 0x06, 0x09, "PCI bridge (semi-transparent)" },
		{ 0x07, 0x00, "serial controller" },
		{ 0x07, 0x01, "parallel port" },
		{ 0x08, 0x00, "interrupt controller" },
		{ 0x08, 0x01, "DMA controller" },
		{ 0x08, 0x02, "timer" },
		{ 0x08, 0x03, "RTC" },
		{ 0x08, 0x05, "SD host controller" },
		{ 0x08, 0x06, "IOMMU" },
		{ 0x0c, 0x00, "FireWire" },
		{ 0x0c, 0x03, "USB controller" },
		{ 0x0c, 0x05, "SMBus" },
	};
	static const char *const classes[] = {
		"unclassified",
		"storage controller",
		"network controller",
		"display controller",
		"multimedia controller",
		"memory controller",
		"bridge",
		"communication controller",
		"system peripheral",
		"input device",
		"docking station",
		"processor",
		"serial bus controller",
		"wireless controller",
		"intelligent I/O",
		"satellite",
		"encryption controller",
		"signal processing",
		"accelerator",
		"instrumentation",
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].class_code == class_code && names[i].subclass == subclass)
			return names[i].name;
	if (class_code < ARRAY_SIZE(classes))
		return classes[class_code];
	if (class_code == 0x40)
		return "co-processor";
	return "unknown class";
}
