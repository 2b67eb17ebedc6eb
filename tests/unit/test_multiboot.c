/* Host unit test of the Multiboot 2 information parser (kernel/multiboot.c),
 * from a buffer laid out as GRUB lays it, and of its refusal of broken ones. */
#include "tests/unit/check.h"
#include "kernel/bootinfo.h"
#include "kernel/lib.h"

static u8 buf[1024] __attribute__((aligned(8)));
static u32 len;

static u8 *tag(u32 type, u32 size)
{
	u8 *t = buf + len;

	*(u32 *)t = type;
	*(u32 *)(t + 4) = size;
	len = (len + size + 7) & ~7u;
	return t + 8;
}

int main(void)
{
	static struct boot_info bi;
	u8 *p;

	len = 8;
	strcpy((char *)tag(1, 8 + 12), "console=ttyS");
	strcpy((char *)tag(2, 8 + 10), "GRUB 2.06");
	p = tag(3, 8 + 8 + 22);
	*(u32 *)p = 0x200000;
	*(u32 *)(p + 4) = 0x210000;
	strcpy((char *)p + 8, "/boot/memtest.elf s=1");
	p = tag(6, 8 + 8 + 3 * 24);
	*(u32 *)p = 24; /* entry size */
	*(u32 *)(p + 4) = 0;
	*(u64 *)(p + 8) = 0;
	*(u64 *)(p + 16) = 0x9FC00;
	*(u32 *)(p + 24) = 1;
	*(u64 *)(p + 32) = 0x100000;
	*(u64 *)(p + 40) = 0x7F00000;
	*(u32 *)(p + 48) = 1;
	*(u64 *)(p + 56) = 0xFFFC0000;
	*(u64 *)(p + 64) = 0x40000;
	*(u32 *)(p + 72) = 77; /* unknown type: reserved */
	p = tag(8, 8 + 24);
	*(u64 *)p = 0xB8000;
	*(u32 *)(p + 8) = 160;
	*(u32 *)(p + 12) = 80;
	*(u32 *)(p + 16) = 25;
	p[20] = 16;
	p[21] = 2; /* EGA text */
	p = tag(15, 8 + 36);
	memcpy(p, "RSD PTR ", 8);
	tag(0, 8);
	*(u32 *)buf = len;

	CHECK_EQ(multiboot_parse(0x36D76289, buf, &bi), 0);
	CHECK_EQ(bi.multiboot_version, 2);
	CHECK_STR(bi.cmdline, "console=ttyS");
	CHECK_STR(bi.loader, "GRUB 2.06");
	CHECK_EQ(bi.module_count, 1);
	CHECK_EQ(bi.modules[0].start, 0x200000);
	CHECK_EQ(bi.modules[0].end, 0x210000);
	CHECK_STR(bi.modules[0].cmdline, "/boot/memtest.elf s=1");
	CHECK_EQ(bi.mmap_count, 3);
	CHECK_EQ(bi.mmap[1].base, 0x100000);
	CHECK_EQ(bi.mmap[1].len, 0x7F00000);
	CHECK_EQ(bi.mmap[1].type, MEM_USABLE);
	CHECK_EQ(bi.mmap[2].type, MEM_RESERVED);
	CHECK(bi.fb_is_text);
	CHECK_EQ(bi.fb_phys, 0xB8000);
	CHECK(bi.rsdp_phys != 0 && memcmp((void *)bi.rsdp_phys, "RSD PTR ", 8) == 0);
	CHECK_EQ(bi.info_size, len);

	/* Wrong magic: refused. */
	CHECK_EQ(multiboot_parse(0x12345678, buf, &bi), -EINVAL);
	/* A tag running past the total size: refused, nothing read beyond. */
	*(u32 *)(buf + 8 + 4) = 4000;
	CHECK_EQ(multiboot_parse(0x36D76289, buf, &bi), -EINVAL);
	*(u32 *)(buf + 8 + 4) = 4; /* shorter than a tag header */
	CHECK_EQ(multiboot_parse(0x36D76289, buf, &bi), -EINVAL);
	return test_done("multiboot");
}
