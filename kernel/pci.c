/*
 * PCI configuration access and the boot-time enumeration behind pci_devs[].
 * Offsets below 256 go through configuration mechanism #1 (ports 0xCF8/0xCFC),
 * the extended space through ECAM when ACPI's MCFG gives it (as Linux does on
 * x86: some firmware's MCFG is wrong, the ports never are). Host context, boot
 * and shell; single CPU with interrupts off, so the 0xCF8/0xCFC pair needs no lock.
 * Reference: PCI Local Bus Specification 3.0, 3.2.2.3.2 "Software Generation of
 * Configuration Transactions"; PCI Express Base 4.0 7.2.2 "PCI Express Enhanced
 * Configuration Access Mechanism (ECAM)".
 */
#include "kernel/pci.h"
#include "kernel/acpi.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/x86.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define PCI_CONFIG_ENABLE BIT(31)
#define PCI_CLASS_BRIDGE_HOST 0x0600
#define PCI_HEADER_TYPE_MASK 0x7f
#define PCI_HEADER_MULTI_FUNC 0x80

struct pci_dev pci_devs[PCI_MAX_DEVS];
int pci_dev_count;

static volatile u8 *ecam; /* bus 0 of segment 0; NULL: none or unusable */
static u8 ecam_bus_start, ecam_bus_end;

bool pci_has_ecam(void) { return ecam != NULL; }

static void cf8_select(u8 bus, u8 dev, u8 fn, u16 off)
{
	outl(PCI_CONFIG_ADDRESS, (u32)PCI_CONFIG_ENABLE | (u32)bus << 16 | (u32)(dev & 31) << 11 |
					 (u32)(fn & 7) << 8 | (off & 0xfc));
}

/* The ECAM address of a register, or NULL when ECAM cannot reach it. */
static volatile u8 *ecam_reg(u8 bus, u8 dev, u8 fn, u16 off)
{
	if (!ecam || bus < ecam_bus_start || bus > ecam_bus_end || off >= 4096)
		return NULL;
	return ecam + ((u64)bus << 20 | (u64)(dev & 31) << 15 | (u64)(fn & 7) << 12 | off);
}

/* Raw accessors by address; `size` is 1, 2 or 4 and `off` aligned to it.
 * A register nothing can reach reads as all ones, like an absent device. */
static u32 cfg_read(u8 bus, u8 dev, u8 fn, u16 off, int size)
{
	if (off >= 256) {
		volatile u8 *p = ecam_reg(bus, dev, fn, off);

		if (!p)
			return size == 4 ? 0xffffffff : size == 2 ? 0xffff : 0xff;
		return size == 4 ? mmio_read32(p) : size == 2 ? mmio_read16(p) : mmio_read8(p);
	}
	cf8_select(bus, dev, fn, off);
	if (size == 4)
		return inl(PCI_CONFIG_DATA);
	if (size == 2)
		return inw(PCI_CONFIG_DATA + (off & 2));
	return inb(PCI_CONFIG_DATA + (off & 3));
}

static void cfg_write(u8 bus, u8 dev, u8 fn, u16 off, int size, u32 v)
{
	if (off >= 256) {
		volatile u8 *p = ecam_reg(bus, dev, fn, off);

		if (!p)
			return;
		if (size == 4)
			mmio_write32(p, v);
		else if (size == 2)
			mmio_write16(p, (u16)v);
		else
			mmio_write8(p, (u8)v);
		return;
	}
	cf8_select(bus, dev, fn, off);
	if (size == 4)
		outl(PCI_CONFIG_DATA, v);
	else if (size == 2)
		outw(PCI_CONFIG_DATA + (off & 2), (u16)v);
	else
		outb(PCI_CONFIG_DATA + (off & 3), (u8)v);
}

u32 pci_read32(const struct pci_dev *d, u16 off)
{
	return cfg_read(d->bus, d->dev, d->fn, off & ~3, 4);
}
u16 pci_read16(const struct pci_dev *d, u16 off)
{
	return (u16)cfg_read(d->bus, d->dev, d->fn, off & ~1, 2);
}
u8 pci_read8(const struct pci_dev *d, u16 off)
{
	return (u8)cfg_read(d->bus, d->dev, d->fn, off, 1);
}
void pci_write32(const struct pci_dev *d, u16 off, u32 v)
{
	cfg_write(d->bus, d->dev, d->fn, off & ~3, 4, v);
}
void pci_write16(const struct pci_dev *d, u16 off, u16 v)
{
	cfg_write(d->bus, d->dev, d->fn, off & ~1, 2, v);
}
void pci_write8(const struct pci_dev *d, u16 off, u8 v)
{
	cfg_write(d->bus, d->dev, d->fn, off, 1, v);
}

void pci_enable(const struct pci_dev *d, u16 command_bits)
{
	pci_write16(d, PCI_COMMAND, pci_read16(d, PCI_COMMAND) | command_bits);
}

static u8 dev_read8(const void *ctx, u16 off) { return pci_read8(ctx, off); }

u8 pci_find_cap(const struct pci_dev *d, u8 cap_id, u8 from)
{
	if ((d->header_type & PCI_HEADER_TYPE_MASK) > 1)
		return 0; /* CardBus keeps its list elsewhere; Amber drives none */
	return pci_cap_walk(dev_read8, d, cap_id, from);
}

/* Sizes the BARs by writing all ones and reading back (PCI 3.0 6.2.5.1
 * "Address Maps"), with I/O and memory decoding off meanwhile so the
 * transient all-ones address claims no cycles. Host bridges keep decoding,
 * as in Linux: turning them off could cut the CPU from memory. */
static void pci_size_bars(struct pci_dev *d)
{
	/* Type 0 headers have six BARs, PCI-to-PCI bridges two, CardBus none. */
	int type = d->header_type & PCI_HEADER_TYPE_MASK;
	int nbars = type == 0 ? 6 : type == 1 ? 2 : 0;
	bool host = ((u16)d->class_code << 8 | d->subclass) == PCI_CLASS_BRIDGE_HOST;
	u16 cmd = pci_read16(d, PCI_COMMAND);

	if (!nbars)
		return;
	if (!host)
		pci_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	for (int i = 0; i < nbars;) {
		u16 off = PCI_BAR0 + 4 * i;
		u32 lo = pci_read32(d, off), hi = 0, mlo, mhi = 0;
		struct pci_bar_info bar;
		int used;

		pci_write32(d, off, 0xffffffff);
		mlo = pci_read32(d, off);
		pci_write32(d, off, lo);
		if (!(lo & PCI_BAR_IO) && (lo & 0x6) == PCI_BAR_MEM_TYPE_64) {
			if (i + 1 >= nbars) {
				pr_warn("pci: %02x:%02x.%x BAR%d claims 64 bits in the last slot, ignored\n",
					d->bus, d->dev, d->fn, i);
				break;
			}
			hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xffffffff);
			mhi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, hi);
		}
		used = pci_bar_decode(lo, hi, mlo, mhi, &bar);
		d->bar[i] = bar.addr;
		d->bar_size[i] = bar.size;
		d->bar_is_io[i] = bar.is_io;
		d->bar_is_64[i] = bar.is_64;
		d->bar_prefetch[i] = bar.prefetch;
		i += used; /* the upper half of a 64-bit BAR stays size 0 */
	}
	if (!host)
		pci_write16(d, PCI_COMMAND, cmd);
}

static void pci_add(u8 bus, u8 dev, u8 fn, u32 id)
{
	struct pci_dev *d;
	u32 cls;

	if (pci_dev_count >= PCI_MAX_DEVS) {
		if (pci_dev_count++ == PCI_MAX_DEVS)
			pr_warn("pci: more than %d functions, the rest are ignored\n",
				PCI_MAX_DEVS);
		return;
	}
	d = &pci_devs[pci_dev_count++];
	memset(d, 0, sizeof(*d));
	d->bus = bus;
	d->dev = dev;
	d->fn = fn;
	d->vendor = (u16)id;
	d->device = (u16)(id >> 16);
	cls = pci_read32(d, PCI_CLASS_REVISION);
	d->revision = (u8)cls;
	d->prog_if = (u8)(cls >> 8);
	d->subclass = (u8)(cls >> 16);
	d->class_code = (u8)(cls >> 24);
	d->header_type = pci_read8(d, PCI_HEADER_TYPE);
	pci_size_bars(d);
}

/* Maps the MCFG window and checks that it shows the same host bridge as the
 * ports do; a window that disagrees is not used. */
static void pci_ecam_init(void)
{
	u64 base = acpi.ecam_base;
	u64 len;
	u32 via_ports, via_ecam;

	if (!base)
		return;
	ecam_bus_start = acpi.ecam_bus_start;
	ecam_bus_end = acpi.ecam_bus_end;
	len = (u64)(ecam_bus_end + 1) << 20;
	ecam = ioremap(base, len);
	if (!ecam) {
		pr_warn("pci: cannot map ECAM at 0x%llx, extended config space unavailable\n",
			(unsigned long long)base);
		return;
	}
	via_ports = cfg_read(ecam_bus_start, 0, 0, PCI_VENDOR_ID, 4);
	via_ecam = mmio_read32(ecam_reg(ecam_bus_start, 0, 0, PCI_VENDOR_ID));
	if (via_ports != via_ecam) {
		pr_warn("pci: ECAM at 0x%llx reads %08x where the ports read %08x; not used\n",
			(unsigned long long)base, via_ecam, via_ports);
		ecam = NULL;
	}
}

void pci_init(void)
{
	int buses = 0;

	pci_dev_count = 0;
	pci_ecam_init();
	/* Every bus number is probed: cheap (8192 reads of a vendor id), no bridge
	 * walk to get wrong, and buses under extra host bridges are found too.
	 * Buses behind bridges the firmware left unnumbered stay unreachable. */
	for (int bus = 0; bus < 256; bus++) {
		bool found = false;

		for (u8 dev = 0; dev < 32; dev++) {
			u32 id = cfg_read((u8)bus, dev, 0, PCI_VENDOR_ID, 4);
			u8 nfn;

			if ((u16)id == 0xffff)
				continue;
			found = true;
			nfn = 1;
			if (cfg_read((u8)bus, dev, 0, PCI_HEADER_TYPE, 1) & PCI_HEADER_MULTI_FUNC)
				nfn = 8;
			for (u8 fn = 0; fn < nfn; fn++) {
				if (fn)
					id = cfg_read((u8)bus, dev, fn, PCI_VENDOR_ID, 4);
				if ((u16)id != 0xffff)
					pci_add((u8)bus, dev, fn, id);
			}
		}
		buses += found;
	}
	if (pci_dev_count > PCI_MAX_DEVS)
		pci_dev_count = PCI_MAX_DEVS;
	if (ecam)
		pr_info("pci: %d functions on %d bus(es); ECAM at 0x%llx for buses %u-%u\n",
			pci_dev_count, buses, (unsigned long long)acpi.ecam_base, ecam_bus_start,
			ecam_bus_end);
	else
		pr_info("pci: %d functions on %d bus(es); no ECAM (config space 0-255 only)\n",
			pci_dev_count, buses);
}
