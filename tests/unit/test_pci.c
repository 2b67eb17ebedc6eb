/*
 * Host unit test of kernel/pci_parse.c: BAR decoding from sizing values seen
 * on QEMU and Bochs devices, class names, and the capability walk over config
 * spaces held in byte arrays (including a looping list). Host only.
 */
#include "tests/unit/check.h"

#include "kernel/pci.h"

static void test_bars(void)
{
	struct pci_bar_info b;

	/* PIIX IDE BAR4: I/O at 0xc040, 16 ports; the upper 16 bits read 0. */
	CHECK_EQ(pci_bar_decode(0xc041, 0, 0xfff1, 0, &b), 1);
	CHECK(b.is_io);
	CHECK(!b.is_64);
	CHECK_EQ(b.addr, 0xc040);
	CHECK_EQ(b.size, 16);
	/* The same with the upper bits reading as ones. */
	CHECK_EQ(pci_bar_decode(0xc041, 0, 0xfffffff1, 0, &b), 1);
	CHECK_EQ(b.size, 16);

	/* e1000 BAR0: 32-bit memory, 128 KiB. */
	CHECK_EQ(pci_bar_decode(0xfebc0000, 0, 0xfffe0000, 0, &b), 1);
	CHECK(!b.is_io);
	CHECK(!b.is_64);
	CHECK(!b.prefetch);
	CHECK_EQ(b.addr, 0xfebc0000);
	CHECK_EQ(b.size, 128 * 1024);

	/* Standard VGA BAR0: 16 MiB prefetchable. */
	CHECK_EQ(pci_bar_decode(0xfd000008, 0, 0xff000008, 0, &b), 1);
	CHECK(b.prefetch);
	CHECK_EQ(b.size, 16 << 20);

	/* NVMe BAR0: 64-bit, 16 KiB, below 4 GiB. */
	CHECK_EQ(pci_bar_decode(0xfebf0004, 0, 0xffffc004, 0xffffffff, &b), 2);
	CHECK(b.is_64);
	CHECK(!b.prefetch);
	CHECK_EQ(b.addr, 0xfebf0000);
	CHECK_EQ(b.size, 16384);

	/* A 64-bit prefetchable BAR above 4 GiB, 8 GiB large. */
	CHECK_EQ(pci_bar_decode(0x0000000c, 0x8, 0x0000000c, 0xfffffffe, &b), 2);
	CHECK(b.is_64);
	CHECK(b.prefetch);
	CHECK_EQ(b.addr, 0x800000000ULL);
	CHECK_EQ(b.size, 8ULL << 30);

	/* Unimplemented BAR: reads back zero. */
	CHECK_EQ(pci_bar_decode(0, 0, 0, 0, &b), 1);
	CHECK_EQ(b.size, 0);
	CHECK_EQ(b.addr, 0);
	/* An unimplemented 64-bit pair still occupies two slots. */
	CHECK_EQ(pci_bar_decode(0x4, 0, 0x4, 0, &b), 2);
	CHECK_EQ(b.size, 0);

	/* A read-back with a gap: the lowest writable bit decides (4 KiB). */
	CHECK_EQ(pci_bar_decode(0xfe000000, 0, 0xfff0f000, 0, &b), 1);
	CHECK_EQ(b.size, 4096);
}

static void test_class_names(void)
{
	CHECK_STR(pci_class_name(0x06, 0x00), "host bridge");
	CHECK_STR(pci_class_name(0x01, 0x01), "IDE controller");
	CHECK_STR(pci_class_name(0x01, 0x08), "NVMe controller");
	CHECK_STR(pci_class_name(0x01, 0x00), "SCSI storage");
	CHECK_STR(pci_class_name(0x02, 0x00), "Ethernet");
	CHECK_STR(pci_class_name(0x03, 0x00), "VGA");
	CHECK_STR(pci_class_name(0x06, 0x01), "ISA bridge");
	CHECK_STR(pci_class_name(0x06, 0x80), "bridge");
	CHECK_STR(pci_class_name(0x0c, 0x03), "USB controller");
	CHECK_STR(pci_class_name(0x12, 0x00), "accelerator");
	CHECK_STR(pci_class_name(0x40, 0x00), "co-processor");
	CHECK_STR(pci_class_name(0xff, 0x00), "unknown class");
	CHECK_STR(pci_class_name(0x77, 0x01), "unknown class");
}

static u8 cfg_rd(const void *ctx, u16 off)
{
	const u8 *cfg = ctx;

	CHECK(off < 256); /* the walk must stay in the config space it was given */
	return off < 256 ? cfg[off] : 0xff;
}

static void add_cap(u8 *cfg, u8 at, u8 id, u8 next)
{
	cfg[at] = id;
	cfg[at + 1] = next;
}

static void test_caps(void)
{
	u8 cfg[256] = { 0 };

	/* No capability list bit: nothing, even with a pointer present. */
	cfg[PCI_CAPABILITY_LIST] = 0x40;
	add_cap(cfg, 0x40, 0x11, 0);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x11, 0), 0);

	/* A virtio-style list: MSI-X at 0x98, vendor caps at 0x84, 0x70, 0x60, 0x50. */
	memset(cfg, 0, sizeof(cfg));
	cfg[PCI_STATUS] = PCI_STATUS_CAP_LIST;
	cfg[PCI_CAPABILITY_LIST] = 0x98;
	add_cap(cfg, 0x98, 0x11, 0x84);
	add_cap(cfg, 0x84, PCI_CAP_ID_VNDR, 0x70);
	add_cap(cfg, 0x70, PCI_CAP_ID_VNDR, 0x60);
	add_cap(cfg, 0x60, PCI_CAP_ID_VNDR, 0x50);
	add_cap(cfg, 0x50, PCI_CAP_ID_VNDR, 0x00);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x11, 0), 0x98);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, PCI_CAP_ID_VNDR, 0), 0x84);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, PCI_CAP_ID_VNDR, 0x84), 0x70);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, PCI_CAP_ID_VNDR, 0x70), 0x60);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, PCI_CAP_ID_VNDR, 0x60), 0x50);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, PCI_CAP_ID_VNDR, 0x50), 0);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x10, 0), 0); /* PCIe: absent */

	/* Reserved low bits of the pointers are ignored. */
	cfg[PCI_CAPABILITY_LIST] = 0x9b;
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x11, 0), 0x98);

	/* A list that loops back on itself ends, it does not hang. */
	add_cap(cfg, 0x50, PCI_CAP_ID_VNDR, 0x98);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x05, 0), 0);
	/* A pointer into the header (below 0x40) ends the list. */
	cfg[PCI_CAPABILITY_LIST] = 0x10;
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x11, 0), 0);
	/* A function that reads all ones (removed): no capability. */
	memset(cfg, 0xff, sizeof(cfg));
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0x11, 0), 0);
	CHECK_EQ(pci_cap_walk(cfg_rd, cfg, 0xff, 0), 0);
}

int main(void)
{
	test_bars();
	test_class_names();
	test_caps();
	return test_done("test_pci");
}
