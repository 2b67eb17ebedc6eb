/*
 * Host unit test of the Multiboot 1 guest loader (vmm/loader.c): a.out-kludge,
 * ELF32 and ELF64 images land where they should with their bss zeroed, and
 * malformed images are refused with the right reason: no header, truncated,
 * overlapping segments, entry outside RAM or outside the image, larger than
 * RAM, unknown required flags. Also the information structure, where it goes
 * when the image holds its usual place, and the entry state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "vmm/loader.h"
#include "vmm/memmap.h"
#include "tests/unit/check.h"

#define RAM_SIZE (4u << 20)

static u8 *ram;
static char err[160];

static int ram_write(void *ctx, u64 gpa, const void *src, u64 len)
{
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		return -EFAULT;
	memcpy(ram + gpa, src, len);
	return 0;
}

static int ram_zero(void *ctx, u64 gpa, u64 len)
{
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		return -EFAULT;
	memset(ram + gpa, 0, len);
	return 0;
}

static const struct loader_target target = { RAM_SIZE, ram_write, ram_zero, NULL };

static int load(const u8 *img, u64 size, struct mb_loaded *out)
{
	memset(ram, 0xAA, RAM_SIZE);
	err[0] = 0;
	return mb_load(img, size, &target, out, err, sizeof(err));
}

static void put32(u8 *p, u32 v) { memcpy(p, &v, 4); }

/* ---- a.out kludge: header at `hoff`, the file loads at `load` ------------ */
static u8 img[16384];

static u64 aout(u32 hoff, u32 load, u32 load_end, u32 bss_end, u32 entry, u32 flags)
{
	u32 magic = MULTIBOOT_HEADER_MAGIC;

	memset(img, 0, sizeof(img));
	for (unsigned i = 0; i < sizeof(img); i++)
		img[i] = (u8)(i * 7 + 1);
	put32(img + hoff, magic);
	put32(img + hoff + 4, flags);
	put32(img + hoff + 8, -(magic + flags));
	put32(img + hoff + 12, load + hoff); /* header_addr */
	put32(img + hoff + 16, load);
	put32(img + hoff + 20, load_end);
	put32(img + hoff + 24, bss_end);
	put32(img + hoff + 28, entry);
	return load_end ? load_end - load : sizeof(img);
}

static void test_aout(void)
{
	struct mb_loaded l;
	u64 n = aout(64, 0x100000, 0x101000, 0x103000, 0x100080, 0x10002);

	CHECK_EQ(load(img, n, &l), 0);
	CHECK_STR(err, "");
	CHECK_EQ(l.format, MB_FORMAT_AOUT);
	CHECK_EQ(l.entry, 0x100080);
	CHECK_EQ(l.lo, 0x100000);
	CHECK_EQ(l.hi, 0x103000);
	CHECK(memcmp(ram + 0x100000, img, 0x1000) == 0);
	CHECK_EQ(ram[0x101000], 0); /* bss zeroed */
	CHECK_EQ(ram[0x102FFF], 0);
	CHECK_EQ(ram[0x103000], 0xAA); /* nothing past it */
	CHECK_EQ(ram[0xFFFFF], 0xAA);

	/* load_end_addr 0: the rest of the file; bss_end 0: no bss. */
	aout(0, 0x200000, 0, 0, 0x200010, 0x10000);
	CHECK_EQ(load(img, 8192, &l), 0);
	CHECK_EQ(l.hi, 0x200000 + 8192);

	/* The header says more than the file has. */
	n = aout(64, 0x100000, 0x104000, 0, 0x100080, 0x10000);
	CHECK_EQ(load(img, 0x2000, &l), -ENOEXEC);
	CHECK(strstr(err, "truncated") != NULL);
	/* Address fields cut off by the end of the file. */
	aout(64, 0x100000, 0, 0, 0x100080, 0x10000);
	CHECK_EQ(load(img, 64 + 20, &l), -ENOEXEC);
	CHECK(strstr(err, "truncated") != NULL);
	/* bss_end below load_end. */
	n = aout(64, 0x100000, 0x101000, 0x100800, 0x100080, 0x10000);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "bss_end_addr") != NULL);
	/* header_addr not inside what is loaded from the file. */
	aout(64, 0x100000, 0x101000, 0, 0x100080, 0x10000);
	put32(img + 64 + 12, 0x200000);
	CHECK_EQ(load(img, 0x1000, &l), -ENOEXEC);
	CHECK(strstr(err, "header_addr") != NULL);
	/* Entry outside RAM, and outside the image. */
	n = aout(64, 0x100000, 0x101000, 0, 0x900000, 0x10000);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "outside the guest's RAM") != NULL);
	n = aout(64, 0x100000, 0x101000, 0, 0x300000, 0x10000);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "not inside the loaded image") != NULL);
	/* Larger than RAM (through its bss). */
	n = aout(64, 0x100000, 0x101000, 0x100000 + (8u << 20), 0x100080, 0x10000);
	CHECK_EQ(load(img, n, &l), -E2BIG);
	CHECK(strstr(err, "larger than the VM's RAM") != NULL);
	CHECK(strstr(err, "4 MiB") != NULL);
	/* Over the default information page: a valid image, loaded (where the
	 * information goes instead is test_info_placement's). */
	n = aout(0, 0x8000, 0xA000, 0, 0x8000, 0x10000);
	CHECK_EQ(load(img, n, &l), 0);
	CHECK_EQ(l.lo, 0x8000);
	CHECK_EQ(l.hi, 0xA000);
	/* Into the reserved area below 1 MiB, where the firmware tables go:
	 * refused, even by one byte of bss; up to the EBDA is fine. */
	n = aout(0, 0xF0000, 0xF1000, 0, 0xF0000, 0x10000);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "overlaps the reserved area 0x9fc00-0xfffff") != NULL);
	CHECK_EQ(ram[0xF0000], 0xAA);
	n = aout(0, 0x9E000, 0x9F000, 0x9FC01, 0x9E000, 0x10000);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	n = aout(0, 0x9E000, 0x9F000, 0x9FC00, 0x9E000, 0x10000);
	CHECK_EQ(load(img, n, &l), 0);
	/* A required feature Amber does not know (bit 3). */
	n = aout(64, 0x100000, 0x101000, 0, 0x100080, 0x10008);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "requires features") != NULL);
	/* Video mode (bit 2) is ignored, like QEMU does. */
	n = aout(64, 0x100000, 0x101000, 0, 0x100080, 0x10004);
	CHECK_EQ(load(img, n, &l), 0);
}

static void test_no_header(void)
{
	struct mb_loaded l;
	u64 n = aout(64, 0x100000, 0x101000, 0, 0x100080, 0x10000);

	put32(img + 64 + 8, 0); /* bad checksum */
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "not a Multiboot image") != NULL);
	/* A header past the first 8 KiB does not count. */
	n = aout(8192, 0x100000, 0, 0, 0x100080, 0x10000);
	CHECK_EQ(load(img, sizeof(img), &l), -ENOEXEC);
	CHECK(strstr(err, "not a Multiboot image") != NULL);
	CHECK_EQ(load(img, 3, &l), -ENOEXEC);
	CHECK_EQ(load(img, 0, &l), -ENOEXEC);
}

/* ---- ELF ---------------------------------------------------------------- */
struct seg {
	u64 vaddr, paddr, filesz, memsz, offset;
};

/* An ELF with a Multiboot header (no a.out kludge) and the given segments. */
static u64 elf(int is64, u64 entry, const struct seg *s, int n)
{
	u32 magic = MULTIBOOT_HEADER_MAGIC, flags = 0x2;
	u32 phoff = is64 ? 64 : 52, phsz = is64 ? 56 : 32;

	memset(img, 0, sizeof(img));
	for (unsigned i = 1024; i < sizeof(img); i++)
		img[i] = (u8)(i * 13 + 5);
	memcpy(img, "\177ELF", 4);
	img[4] = is64 ? 2 : 1;
	img[5] = 1;
	img[6] = 1;
	*(u16 *)(img + 16) = 2;		    /* ET_EXEC */
	*(u16 *)(img + 18) = is64 ? 62 : 3; /* EM_X86_64 / EM_386 */
	if (is64) {
		*(u64 *)(img + 24) = entry;
		*(u64 *)(img + 32) = phoff;
		*(u16 *)(img + 54) = phsz;
		*(u16 *)(img + 56) = n;
	} else {
		*(u32 *)(img + 24) = (u32)entry;
		*(u32 *)(img + 28) = phoff;
		*(u16 *)(img + 42) = phsz;
		*(u16 *)(img + 44) = n;
	}
	for (int i = 0; i < n; i++) {
		u8 *p = img + phoff + i * phsz;

		*(u32 *)p = 1; /* PT_LOAD */
		if (is64) {
			*(u64 *)(p + 8) = s[i].offset;
			*(u64 *)(p + 16) = s[i].vaddr;
			*(u64 *)(p + 24) = s[i].paddr;
			*(u64 *)(p + 32) = s[i].filesz;
			*(u64 *)(p + 40) = s[i].memsz;
		} else {
			*(u32 *)(p + 4) = (u32)s[i].offset;
			*(u32 *)(p + 8) = (u32)s[i].vaddr;
			*(u32 *)(p + 12) = (u32)s[i].paddr;
			*(u32 *)(p + 16) = (u32)s[i].filesz;
			*(u32 *)(p + 20) = (u32)s[i].memsz;
		}
	}
	put32(img + 512, magic);
	put32(img + 516, flags);
	put32(img + 520, -(magic + flags));
	return 8192;
}

static void test_elf(void)
{
	struct mb_loaded l;
	struct seg two[2] = { { 0x100000, 0x100000, 0x800, 0x800, 1024 },
			      { 0x102000, 0x102000, 0x100, 0x1000, 4096 } };
	struct seg high[1] = { { 0xFFFFFFFF80100000ULL, 0x100000, 0x1000, 0x2000, 1024 } };
	struct seg overlap[2] = { { 0x100000, 0x100000, 0x800, 0x2000, 1024 },
				  { 0x101000, 0x101000, 0x100, 0x100, 4096 } };
	struct seg beyond[1] = { { 0x100000, 0x100000, 0x4000, 0x4000, 6000 } };
	struct seg toobig[1] = { { 0x100000, 0x100000, 0x100, 0x800000, 1024 } };
	u64 n;

	n = elf(0, 0x100010, two, 2);
	CHECK_EQ(load(img, n, &l), 0);
	CHECK_STR(err, "");
	CHECK_EQ(l.format, MB_FORMAT_ELF32);
	CHECK_EQ(l.entry, 0x100010);
	CHECK(memcmp(ram + 0x100000, img + 1024, 0x800) == 0);
	CHECK_EQ(ram[0x100800], 0xAA); /* between the segments: untouched */
	CHECK(memcmp(ram + 0x102000, img + 4096, 0x100) == 0);
	CHECK_EQ(ram[0x102100], 0); /* bss */
	CHECK_EQ(ram[0x102FFF], 0);
	CHECK_EQ(l.lo, 0x100000);
	CHECK_EQ(l.hi, 0x103000);

	/* ELF64 linked in the higher half: loaded at p_paddr, entry translated. */
	n = elf(1, 0xFFFFFFFF80100040ULL, high, 1);
	CHECK_EQ(load(img, n, &l), 0);
	CHECK_EQ(l.format, MB_FORMAT_ELF64);
	CHECK_EQ(l.entry, 0x100040);
	CHECK(memcmp(ram + 0x100000, img + 1024, 0x1000) == 0);
	CHECK_EQ(ram[0x101FFF], 0);

	n = elf(0, 0x100010, overlap, 2);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "overlap") != NULL);
	n = elf(0, 0x100010, beyond, 1);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "truncated") != NULL);
	n = elf(0, 0x100010, toobig, 1);
	CHECK_EQ(load(img, n, &l), -E2BIG);
	n = elf(0, 0x5000000, two, 2);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "outside the guest's RAM") != NULL);
	n = elf(0, 0x101800, two, 2); /* in RAM, between the segments */
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "not inside") != NULL);

	/* Program headers beyond the file. */
	n = elf(0, 0x100010, two, 2);
	*(u32 *)(img + 28) = 8190;
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "truncated") != NULL);
	/* Wrong machine, wrong type, no segments. */
	n = elf(0, 0x100010, two, 2);
	*(u16 *)(img + 18) = 40;
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "machine") != NULL);
	n = elf(0, 0x100010, two, 2);
	*(u16 *)(img + 16) = 3;
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	n = elf(0, 0x100010, two, 0);
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "no loadable") != NULL);
	/* A Multiboot header but neither ELF nor address fields. */
	n = elf(0, 0x100010, two, 2);
	img[0] = 0;
	CHECK_EQ(load(img, n, &l), -ENOEXEC);
	CHECK(strstr(err, "not ELF") != NULL);
}

static void test_info_and_entry(void)
{
	struct multiboot_info mbi;
	struct multiboot_mmap_entry mm[5];
	struct vcpu_state *s = calloc(1, sizeof(*s));
	u32 info = 0;

	struct mb_loaded at_1m = { .lo = 0x100000, .hi = 0x101000 };

	memset(ram, 0xAA, RAM_SIZE);
	CHECK_EQ(mb_write_info(&target, &at_1m, "guest one two", &info, err, sizeof(err)), 0);
	CHECK_EQ(info, MB_INFO_DEFAULT);
	memcpy(&mbi, ram + info, sizeof(mbi));
	CHECK_EQ(mbi.flags & 0x24D, 0x24D); /* mem, cmdline, mods, mmap, loader name */
	CHECK_EQ(mbi.mem_lower, 639);
	CHECK_EQ(mbi.mem_upper, (RAM_SIZE >> 10) - 1024);
	CHECK_EQ(mbi.mods_count, 0);
	CHECK_STR((char *)ram + mbi.cmdline, "guest one two");
	CHECK_STR((char *)ram + mbi.boot_loader_name, "Amber");
	/* RAM below the EBDA, [EBDA, 1 MiB) reserved (tables, VGA window), RAM
	 * above, and the IOAPIC and LAPIC pages reserved beyond the RAM. */
	CHECK_EQ(mbi.mmap_length, 5 * sizeof(mm[0]));
	memcpy(mm, ram + mbi.mmap_addr, sizeof(mm));
	CHECK_EQ(mm[0].size, 20);
	CHECK_EQ(mm[0].addr, 0);
	CHECK_EQ(mm[0].len, 0x9FC00);
	CHECK_EQ(mm[0].type, 1);
	CHECK_EQ(mm[1].addr, 0x9FC00);
	CHECK_EQ(mm[1].len, 0x100000 - 0x9FC00);
	CHECK_EQ(mm[1].type, 2);
	CHECK_EQ(mm[2].addr, 0x100000);
	CHECK_EQ(mm[2].len, RAM_SIZE - 0x100000);
	CHECK_EQ(mm[2].type, 1);
	CHECK_EQ(mm[3].addr, 0xFEC00000);
	CHECK_EQ(mm[3].len, 0x1000);
	CHECK_EQ(mm[3].type, 2);
	CHECK_EQ(mm[4].addr, 0xFEE00000);
	CHECK_EQ(mm[4].type, 2);
	CHECK_EQ(*(u64 *)(ram + info + MB_GDT_OFFSET + 8), 0x00CF9B000000FFFFULL);

	mb_entry_state(s, 0x100080, info);
	CHECK_EQ(s->regs[REG_RAX], 0x2BADB002);
	CHECK_EQ(s->regs[REG_RBX], MB_INFO_DEFAULT);
	CHECK_EQ(s->regs[REG_RSP], MB_INFO_DEFAULT); /* the stack page is under it */
	CHECK_EQ(s->gdtr.base, MB_INFO_DEFAULT + MB_GDT_OFFSET);
	CHECK_EQ(s->rip, 0x100080);
	CHECK_EQ(s->cr0 & 0x80000001, 1); /* protected mode, paging off */
	CHECK_EQ(s->cs.limit, 0xFFFFFFFF);
	CHECK_EQ(s->cs.attr, 0xC9B);
	CHECK_EQ(s->ds.attr, 0xC93);
	CHECK_EQ(s->rflags & 0x200, 0); /* interrupts off */
	free(s);
}

/* The information page and its stack page go where the image is not: the
 * default page, else free conventional memory, else above the image; with
 * no room anywhere, a clear refusal. */
static void test_info_placement(void)
{
	static const struct {
		u64 lo, hi, mem;
		u32 want; /* 0: refused */
	} cases[] = {
		{ 0x9000, 0xA000, RAM_SIZE, 0x9E000 },	    /* the image at 0x9000: a valid one */
		{ 0x8800, 0x9000, RAM_SIZE, 0x9E000 },	    /* only the stack page taken */
		{ 0x1000, 0x9F000, RAM_SIZE, 0x101000 },    /* low memory full: above 1 MiB */
		{ 0x2000, 0x9D000, RAM_SIZE, 0x9E000 },	    /* two pages free at the top */
		{ 0x2000, 0x9E000, RAM_SIZE, 0x101000 },    /* one: not enough, above 1 MiB */
		{ 0x2000, 0x9E000, 0x101000, 0 },	    /* never in the reserved area */
		{ 0x1000, RAM_SIZE - 0x1000, RAM_SIZE, 0 }, /* nowhere */
		{ 0x100000, 0x200000, RAM_SIZE, MB_INFO_DEFAULT },
	};
	struct vcpu_state *s = calloc(1, sizeof(*s));

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct loader_target t = target;
		struct mb_loaded l = { .lo = cases[i].lo, .hi = cases[i].hi };
		struct multiboot_info mbi;
		u32 info = 0;
		int ret;

		t.mem_size = cases[i].mem;
		memset(ram, 0xAA, RAM_SIZE);
		err[0] = 0;
		ret = mb_write_info(&t, &l, "placed", &info, err, sizeof(err));
		if (!cases[i].want) {
			CHECK_EQ(ret, -ENOSPC);
			CHECK(strstr(err, "Multiboot information") != NULL);
			/* Nothing was written into the image. */
			CHECK_EQ(ram[0x9000], 0xAA);
			continue;
		}
		CHECK_EQ(ret, 0);
		CHECK_EQ(info, cases[i].want);
		CHECK(info + MB_INFO_SIZE <= l.lo || info - MB_STACK_SIZE >= l.hi);
		memcpy(&mbi, ram + info, sizeof(mbi));
		CHECK_STR((char *)ram + mbi.cmdline, "placed");
		CHECK(mbi.cmdline >= info && mbi.cmdline < info + MB_INFO_SIZE);
		mb_entry_state(s, 0x100080, info);
		CHECK_EQ(s->regs[REG_RBX], info);
		CHECK_EQ(s->gdtr.base, info + MB_GDT_OFFSET);
		CHECK_EQ(*(u64 *)(ram + s->gdtr.base + 16), 0x00CF93000000FFFFULL);
	}
	free(s);
}

/* The memory map of vmm/memmap.c at the sizes where it changes shape: RAM
 * cut around the APIC pages in a VM past 4 GiB, none above a tiny one; the
 * ranges always ascend without overlap and the reserved ones are always
 * there. */
static void test_memmap(void)
{
	static const struct {
		u64 mem;
		int n;
	} cases[] = { { 0x80000, 4 }, { MiB(32), 5 }, { 0xFEC00000ULL, 5 }, { GiB(5), 7 } };
	struct e820_entry m[MEMMAP_MAX];

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = memmap_build(cases[i].mem, m), reserved = 0;
		u64 ram_bytes = 0;

		CHECK_EQ(n, cases[i].n);
		for (int k = 0; k < n; k++) {
			CHECK(m[k].len > 0);
			if (k)
				CHECK(m[k].addr >= m[k - 1].addr + m[k - 1].len);
			if (m[k].type == E820_RAM) {
				ram_bytes += m[k].len;
				CHECK(m[k].addr + m[k].len <= cases[i].mem);
			} else {
				CHECK_EQ(m[k].type, E820_RESERVED);
				reserved++;
			}
		}
		CHECK_EQ(reserved, 3);
		{
			/* The Multiboot information carries the same map, and its
			 * upper memory ends at the first hole. */
			struct loader_target t = target;
			struct mb_loaded at_1m = { .lo = 0x100000, .hi = 0x101000 };
			struct multiboot_info mbi;
			u32 info = 0;

			t.mem_size = cases[i].mem;
			CHECK_EQ(mb_write_info(&t, &at_1m, "", &info, err, sizeof(err)), 0);
			memcpy(&mbi, ram + info, sizeof(mbi));
			CHECK_EQ(mbi.mmap_length, n * 24);
			CHECK_EQ(mbi.mem_upper,
				 cases[i].mem > MiB(1) ?
					 (MIN(cases[i].mem, 0xFEC00000ULL) - MiB(1)) >> 10 :
					 0);
		}
		/* All RAM is listed but what the reserved ranges cover. */
		if (cases[i].mem == GiB(5)) {
			CHECK_EQ(ram_bytes, GiB(5) - 0x60400 - 0x2000);
			CHECK_EQ(m[4].addr, 0xFEC01000);
			CHECK_EQ(m[4].len, 0xFEE00000 - 0xFEC01000);
			CHECK_EQ(m[6].addr, 0xFEE01000);
			CHECK_EQ(m[6].len, GiB(5) - 0xFEE01000);
		}
	}
}

int main(void)
{
	ram = malloc(RAM_SIZE);
	test_aout();
	test_no_header();
	test_elf();
	test_info_and_entry();
	test_info_placement();
	test_memmap();
	free(ram);
	return test_done("loader");
}
