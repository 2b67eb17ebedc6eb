/*
 * Host unit test of the Linux bzImage loader (vmm/linux.c) on synthetic
 * bzImages built here: where the kernel and the initrd go, the zero page
 * (setup header, loader fields, e820 table, command line, RSDP), the entry
 * state, image kinds, and the refusal of each bad image with its reason and
 * without a single write to guest memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "vmm/linux.h"
#include "tests/unit/check.h"

#define RAM_MAX (64u << 20)
#define KERNEL_BYTES 0x3000 /* protected-mode part of the synthetic image */

static u8 *ram;
static u64 ram_size;
static int writes;
static char err[160];

static int ram_write(void *ctx, u64 gpa, const void *src, u64 len)
{
	if (gpa > ram_size || len > ram_size - gpa)
		return -EFAULT;
	memcpy(ram + gpa, src, len);
	writes++;
	return 0;
}

static int ram_zero(void *ctx, u64 gpa, u64 len)
{
	if (gpa > ram_size || len > ram_size - gpa)
		return -EFAULT;
	memset(ram + gpa, 0, len);
	writes++;
	return 0;
}

static u16 rd16(const u8 *p) { return (u16)(p[0] | p[1] << 8); }
static u32 rd32(const u8 *p) { return rd16(p) | (u32)rd16(p + 2) << 16; }
static u64 rd64(const u8 *p) { return rd32(p) | (u64)rd32(p + 4) << 32; }
static void wr16(u8 *p, u16 v) { memcpy(p, &v, 2); }
static void wr32(u8 *p, u32 v) { memcpy(p, &v, 4); }
static void wr64(u8 *p, u64 v) { memcpy(p, &v, 8); }

/* ---- a synthetic bzImage: protocol 2.15, like Debian's 6.1 kernel -------- */
static u8 img[5 * 512 + KERNEL_BYTES];
static u64 img_size;

static void make_bzimage(u8 setup_sects)
{
	u64 setup = ((setup_sects ? setup_sects : 4) + 1) * 512ULL;

	memset(img, 0, sizeof(img));
	img[LINUX_SETUP_SECTS] = setup_sects;
	wr32(img + LINUX_SYSSIZE, KERNEL_BYTES / 16);
	wr16(img + LINUX_BOOT_FLAG, 0xAA55);
	img[LINUX_JUMP] = 0xEB;
	img[LINUX_JUMP + 1] = 0x6A; /* header ends at 0x26C */
	memcpy(img + LINUX_HEADER, "HdrS", 4);
	wr16(img + LINUX_VERSION, 0x020F);
	img[LINUX_LOADFLAGS] = LINUX_LOADED_HIGH | LINUX_CAN_USE_HEAP;
	wr32(img + LINUX_CODE32_START, 0x100000);
	wr32(img + LINUX_INITRD_ADDR_MAX, 0x7FFFFFFF);
	wr32(img + LINUX_KERNEL_ALIGNMENT, 0x200000);
	img[LINUX_RELOCATABLE] = 1;
	wr16(img + LINUX_XLOADFLAGS, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	wr32(img + LINUX_CMDLINE_SIZE, 0x7FF);
	wr64(img + LINUX_SETUP_DATA, 0x1234); /* a loader must not pass this on */
	wr64(img + LINUX_PREF_ADDRESS, 0x1000000);
	wr32(img + LINUX_INIT_SIZE, 0x400000);
	for (u64 i = 0; i < KERNEL_BYTES; i++)
		img[setup + i] = (u8)(i * 13 + 5);
	img_size = setup + KERNEL_BYTES;
}

static u8 initrd[0x5000];
static struct mem_range map[BP_E820_MAX + 1];
static struct linux_params params;

/* The map a 32 MiB VM gets today: low RAM, EBDA and BIOS area reserved, RAM. */
static void default_params(u64 mem)
{
	ram_size = mem;
	map[0] = (struct mem_range){ 0, 0x9FC00, MEM_USABLE };
	map[1] = (struct mem_range){ 0x9FC00, 0x100000 - 0x9FC00, MEM_RESERVED };
	map[2] = (struct mem_range){ 0x100000, mem - 0x100000, MEM_USABLE };
	for (u64 i = 0; i < sizeof(initrd); i++)
		initrd[i] = (u8)(i * 3 + 1);
	params = (struct linux_params){ .cmdline = "console=ttyS0",
					.initrd = initrd,
					.initrd_size = sizeof(initrd),
					.map = map,
					.nmap = 3,
					.rsdp = 0xE0000 };
}

static int load(struct linux_loaded *l)
{
	const struct loader_target t = { ram_size, ram_write, ram_zero, NULL };

	memset(ram, 0xAA, ram_size);
	writes = 0;
	err[0] = 0;
	return linux_load(img, img_size, &params, &t, l, err, sizeof(err));
}

static void test_good_load(void)
{
	struct linux_loaded l;
	const u8 *zp = ram + LINUX_ZERO_PAGE_GPA;

	make_bzimage(4);
	default_params(MiB(32));
	CHECK_EQ(load(&l), 0);
	CHECK_STR(err, "");
	CHECK_EQ(l.version, 0x020F);
	CHECK_EQ(l.kernel, 0x1000000);
	CHECK_EQ(l.kernel_size, KERNEL_BYTES);
	CHECK_EQ(l.kernel_end, 0x1400000);
	CHECK(memcmp(ram + l.kernel, img + 5 * 512, KERNEL_BYTES) == 0);
	/* The initrd: as high as the RAM allows, page aligned. */
	CHECK_EQ(l.initrd, MiB(32) - 0x5000);
	CHECK_EQ(l.initrd_size, sizeof(initrd));
	CHECK(memcmp(ram + l.initrd, initrd, sizeof(initrd)) == 0);
	/* The zero page: the header copied, the loader's fields written. */
	CHECK(memcmp(zp + LINUX_HDR_START, img + LINUX_HDR_START, 0x210 - LINUX_HDR_START) == 0);
	CHECK_EQ(rd32(zp + LINUX_HEADER), LINUX_HDRS_MAGIC);
	CHECK_EQ(rd16(zp + LINUX_VERSION), 0x020F);
	CHECK_EQ(zp[LINUX_TYPE_OF_LOADER], 0xFF);
	CHECK_EQ(zp[LINUX_LOADFLAGS], LINUX_LOADED_HIGH);
	CHECK_EQ(rd32(zp + LINUX_CMD_LINE_PTR), LINUX_CMDLINE_GPA);
	CHECK_EQ(rd32(zp + LINUX_RAMDISK_IMAGE), l.initrd);
	CHECK_EQ(rd32(zp + LINUX_RAMDISK_SIZE), sizeof(initrd));
	CHECK_EQ(rd64(zp + LINUX_SETUP_DATA), 0);
	CHECK_EQ(rd64(zp + LINUX_PREF_ADDRESS), 0x1000000);
	CHECK_EQ(rd64(zp + BP_ACPI_RSDP_ADDR), 0xE0000);
	CHECK_EQ(rd32(zp + BP_EXT_RAMDISK_IMAGE), 0);
	CHECK_EQ(zp[BP_SENTINEL], 0);
	CHECK_EQ(zp[0x26C], 0); /* nothing past the header's end */
	CHECK_EQ(zp[BP_E820_ENTRIES], 3);
	for (int i = 0; i < 3; i++) {
		const u8 *e = zp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;

		CHECK_EQ(rd64(e), map[i].base);
		CHECK_EQ(rd64(e + 8), map[i].len);
		CHECK_EQ(rd32(e + 16), map[i].type);
	}
	CHECK_STR((char *)ram + LINUX_CMDLINE_GPA, "console=ttyS0");
	/* The boot GDT: __BOOT_CS and __BOOT_DS, flat 4 GiB. */
	CHECK_EQ(rd64(ram + LINUX_GDT_GPA + 0x10), 0x00CF9B000000FFFFULL);
	CHECK_EQ(rd64(ram + LINUX_GDT_GPA + 0x18), 0x00CF93000000FFFFULL);
	CHECK_EQ(rd64(ram + LINUX_GDT_GPA), 0);
	CHECK_EQ(ram[0x5FFF], 0xAA); /* nothing else written */
	CHECK_EQ(ram[l.kernel_end], 0xAA);
}

static void test_entry_state(void)
{
	static struct vcpu_state s;
	struct linux_loaded l;

	make_bzimage(4);
	default_params(MiB(32));
	CHECK_EQ(load(&l), 0);
	linux_entry_state(&s, &l);
	CHECK_EQ(s.rip, 0x1000000);
	CHECK_EQ(s.regs[REG_RSI], LINUX_ZERO_PAGE_GPA);
	CHECK_EQ(s.regs[REG_RBP], 0);
	CHECK_EQ(s.regs[REG_RDI], 0);
	CHECK_EQ(s.regs[REG_RBX], 0);
	CHECK_EQ(s.cs.selector, 0x10);
	CHECK_EQ(s.cs.attr, 0xC9B);
	CHECK_EQ(s.cs.limit, 0xFFFFFFFF);
	CHECK_EQ(s.cs.base, 0);
	CHECK_EQ(s.ds.selector, 0x18);
	CHECK_EQ(s.ss.selector, 0x18);
	CHECK_EQ(s.es.selector, 0x18);
	CHECK_EQ(s.ds.attr, 0xC93);
	CHECK_EQ(s.cr0, 0x11); /* PE, paging off */
	CHECK_EQ(s.rflags & BIT(9), 0);
	CHECK_EQ(s.efer, 0);
	CHECK_EQ(s.gdtr.base, LINUX_GDT_GPA);
	CHECK_EQ(s.gdtr.limit, 31);
}

static void test_placement(void)
{
	struct linux_loaded l;

	/* setup_sects 0 means 4. */
	make_bzimage(0);
	default_params(MiB(32));
	CHECK_EQ(load(&l), 0);
	CHECK(memcmp(ram + l.kernel, img + 5 * 512, KERNEL_BYTES) == 0);
	/* setup_sects 2: the kernel starts at 3 * 512 in the file. */
	make_bzimage(2);
	CHECK_EQ(load(&l), 0);
	CHECK(memcmp(ram + l.kernel, img + 3 * 512, KERNEL_BYTES) == 0);
	/* An unaligned pref_address goes up to kernel_alignment. */
	make_bzimage(4);
	wr64(img + LINUX_PREF_ADDRESS, 0x1100000);
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.kernel, 0x1200000);
	/* A kernel that is not relocatable loads at 1 MiB. */
	make_bzimage(4);
	img[LINUX_RELOCATABLE] = 0;
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.kernel, 0x100000);
	CHECK_EQ(l.kernel_end, 0x500000);
	/* initrd_addr_max: the initrd's last byte stays at or below it. */
	make_bzimage(4);
	wr32(img + LINUX_INITRD_ADDR_MAX, 0x17FFFFF);
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.initrd, 0x1800000 - 0x5000);
	/* ... and under the kernel when the limit falls inside it. */
	wr32(img + LINUX_INITRD_ADDR_MAX, 0x12FFFFF);
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.initrd, 0x1000000 - 0x5000);
	/* An unaligned limit: the initrd still starts on a page. */
	wr32(img + LINUX_INITRD_ADDR_MAX, 0x17FF7FF);
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.initrd, 0x17FA000);
	CHECK(l.initrd + l.initrd_size - 1 <= 0x17FF7FF);
	/* The map's reserved ranges are avoided; RAM past mem_size is never used. */
	make_bzimage(4);
	default_params(MiB(32));
	map[2].len = MiB(31) - 0x100000;
	map[3] = (struct mem_range){ MiB(31), MiB(1), MEM_RESERVED };
	map[4] = (struct mem_range){ MiB(32), MiB(32), MEM_USABLE };
	params.nmap = 5;
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.initrd, MiB(31) - 0x5000);
	/* Without an initrd nothing is placed, and no RSDP before 2.14. */
	default_params(MiB(32));
	params.initrd = NULL;
	wr16(img + LINUX_VERSION, 0x020D);
	CHECK_EQ(load(&l), 0);
	CHECK_EQ(l.initrd, 0);
	CHECK_EQ(rd32(ram + LINUX_ZERO_PAGE_GPA + LINUX_RAMDISK_IMAGE), 0);
	CHECK_EQ(rd64(ram + LINUX_ZERO_PAGE_GPA + BP_ACPI_RSDP_ADDR), 0);
	CHECK(!l.rsdp_passed);
}

/* Loads and expects refusal: the code, a piece of the message, no write. */
static void refused(int code, const char *reason, int line)
{
	struct linux_loaded l;
	int ret = load(&l);

	if (ret != code || !strstr(err, reason) || writes || strlen(err) > 76) {
		check_failures++;
		fprintf(stderr, "%s:%d: expected %d \"%s\", got %d \"%s\" (%d writes)\n", __FILE__,
			line, code, reason, ret, err, writes);
	}
	check_count++;
}
#define REFUSED(code, reason) refused(code, reason, __LINE__)

static void test_refusals(void)
{
	make_bzimage(4);
	default_params(MiB(32));
	img[LINUX_BOOT_FLAG] = 0;
	REFUSED(-ENOEXEC, "no boot flag 0xAA55");
	make_bzimage(4);
	img[LINUX_HEADER] = 'h';
	REFUSED(-ENOEXEC, "no \"HdrS\"");
	make_bzimage(4);
	wr16(img + LINUX_VERSION, 0x0205);
	REFUSED(-ENOEXEC, "boot protocol 2.05 is too old");
	make_bzimage(4);
	img[LINUX_LOADFLAGS] = 0;
	REFUSED(-ENOEXEC, "a zImage");
	make_bzimage(4);
	img_size = 0x250;
	REFUSED(-ENOEXEC, "too short for a Linux setup header");
	img_size = 5 * 512;
	REFUSED(-ENOEXEC, "the file ends in the setup code");
	img_size = 5 * 512 + KERNEL_BYTES - 16;
	REFUSED(-ENOEXEC, "the header says 12288 bytes of kernel, the file has 12272");
	make_bzimage(4);
	wr32(img + LINUX_KERNEL_ALIGNMENT, 0x300000);
	REFUSED(-ENOEXEC, "kernel_alignment 0x300000 is not a power of two");
	make_bzimage(4);
	wr32(img + LINUX_KERNEL_ALIGNMENT, 0x1000);
	wr64(img + LINUX_PREF_ADDRESS, 0x80000);
	REFUSED(-ENOEXEC, "is not between 1 MiB and 4 GiB");
	make_bzimage(4);
	wr64(img + LINUX_PREF_ADDRESS, 0x100000000ULL);
	REFUSED(-ENOEXEC, "pref_address 0x100000000 is above 4 GiB");
	make_bzimage(4);
	wr32(img + LINUX_INIT_SIZE, 0xFFFFFFFF);
	REFUSED(-ENOEXEC, "not between 1 MiB and 4 GiB");
	/* Does not fit the VM's RAM: the kernel, then the initrd. */
	make_bzimage(4);
	default_params(MiB(16));
	REFUSED(-E2BIG,
		"the kernel needs RAM up to 20 MiB (4 MiB at 0x1000000); the VM has 16 MiB");
	default_params(MiB(20));
	params.initrd_size = MiB(15) + 1; /* refused before a byte of it is read */
	REFUSED(-E2BIG, "does not fit in the RAM below 0x1400000");
	default_params(MiB(32));
	wr32(img + LINUX_INITRD_ADDR_MAX, 0xFFFFF);
	REFUSED(-E2BIG, "the initrd (20 KiB) does not fit in the RAM below 0x100000");
	make_bzimage(4);
	params.initrd_size = 0;
	REFUSED(-EINVAL, "the initrd is empty");
	/* Parameters. */
	default_params(MiB(32));
	wr32(img + LINUX_CMDLINE_SIZE, 5);
	REFUSED(-EINVAL, "the command line has 13 bytes; the kernel takes 5");
	make_bzimage(4);
	params.nmap = BP_E820_MAX + 1;
	REFUSED(-EINVAL, "the memory map has 129 ranges");
	params.nmap = 0;
	REFUSED(-EINVAL, "the memory map has 0 ranges");
	default_params(MiB(32));
	map[0].type = MEM_RESERVED;
	REFUSED(-E2BIG, "for the boot data");
	/* A reserved range under the kernel. */
	default_params(MiB(32));
	map[2].len = MiB(17) - 0x100000;
	map[3] = (struct mem_range){ MiB(17), MiB(15), MEM_USABLE };
	params.nmap = 4;
	REFUSED(-E2BIG, "the kernel needs RAM up to 20 MiB (4 MiB at 0x1000000)");
}

static void test_kinds(void)
{
	static const u8 gz[] = { 0x1F, 0x8B, 8, 0 }, cpio[] = "070701000000";
	static u8 mb[64];
	const char *d;

	make_bzimage(4);
	CHECK_EQ(image_kind(img, img_size, &d), IMAGE_LINUX);
	CHECK_STR(d, "bzImage");
	CHECK(linux_is_bzimage(img, img_size));
	CHECK(!linux_is_bzimage(img, 0x205));
	CHECK_EQ(image_kind(gz, sizeof(gz), &d), IMAGE_INITRD);
	CHECK_STR(d, "gzip");
	CHECK_EQ(image_kind(cpio, sizeof(cpio), &d), IMAGE_INITRD);
	CHECK_STR(d, "cpio");
	wr32(mb + 8, 0x1BADB002);
	wr32(mb + 12, 0x10000);
	wr32(mb + 16, -(0x1BADB002u + 0x10000));
	CHECK_EQ(image_kind(mb, sizeof(mb), &d), IMAGE_MULTIBOOT);
	CHECK_EQ(image_kind(gz, 1, &d), IMAGE_UNKNOWN);
	CHECK_EQ(image_kind(initrd, sizeof(initrd), NULL), IMAGE_UNKNOWN);
}

int main(void)
{
	ram = malloc(RAM_MAX);
	test_good_load();
	test_entry_state();
	test_placement();
	test_refusals();
	test_kinds();
	free(ram);
	return test_done("linux");
}
