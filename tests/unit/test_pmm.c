/* Host unit test: from a Multiboot memory map to the physical allocator
 * (kernel/pmm.c). The "physical" memory is a host mapping placed at a fixed
 * low address, so the allocator's 1:1 phys_to_virt holds. */
#include <sys/mman.h>
#include "tests/unit/check.h"
#include "kernel/bootinfo.h"
#include "kernel/mm.h"

struct boot_info boot_info;
char _load_start[1], _kernel_end[1]; /* the kernel image is not in the test's "RAM" */

__noreturn void panic(const char *fmt, ...)
{
	fprintf(stderr, "panic: %s\n", fmt);
	abort();
}

#define RAM_BASE 0x40000000UL
#define RAM_SIZE (64UL << 20)

static bool in(u64 a, u64 s, u64 e) { return a >= s && a < e; }

int main(void)
{
	void *ram = mmap((void *)RAM_BASE, RAM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	u64 mod_s = RAM_BASE + 0x100000, mod_e = RAM_BASE + 0x180000 + 100; /* odd end */
	u64 free0, a, b, big, huge;

	if (ram != (void *)RAM_BASE) {
		perror("mmap at a fixed low address");
		return 1;
	}
	memset(ram, 0x5A, RAM_SIZE); /* the allocator must hand out zeroed pages */

	boot_info.mmap[0] = (struct mem_range){ 0, 0x9FC00, MEM_USABLE };
	boot_info.mmap[1] = (struct mem_range){ 0xF0000, 0x10000, MEM_RESERVED };
	boot_info.mmap[2] = (struct mem_range){ RAM_BASE, RAM_SIZE, MEM_USABLE };
	/* An overlapping reserved entry inside usable RAM must win. */
	boot_info.mmap[3] =
		(struct mem_range){ RAM_BASE + RAM_SIZE - 0x3000, 0x1000, MEM_RESERVED };
	boot_info.mmap_count = 4;
	boot_info.info_phys = RAM_BASE + 0x10000;
	boot_info.info_size = 0x800;
	boot_info.modules[0] = (struct boot_module){ mod_s, mod_e, "guest.elf" };
	boot_info.module_count = 1;

	pmm_init();
	free0 = pmm_free_pages();
	/* 64 MiB = 16384 pages, less: info (1), module (129: it ends 100 bytes into
	 * a page), reserved entry (1), the bitmap (9 pages: one bit for each page
	 * of the 1 GiB + 64 MiB below the top of RAM, plus a guard word). */
	CHECK_EQ(free0, 16384 - 1 - 129 - 1 - 9);
	CHECK_EQ(pmm_total_pages(), free0);

	/* Nothing handed out may touch what the boot must keep. */
	int failures_before = check_failures;

	for (int i = 0; i < 2000; i++) {
		u64 p = pmm_alloc_page();

		CHECK(p != 0);
		CHECK(!in(p, mod_s & ~0xFFFUL, (mod_e + 0xFFF) & ~0xFFFUL));
		CHECK(!in(p, boot_info.info_phys, boot_info.info_phys + 0x1000));
		CHECK(!in(p, 0, 0x100000));
		CHECK(!in(p, RAM_BASE + RAM_SIZE - 0x3000, RAM_BASE + RAM_SIZE - 0x2000));
		CHECK_EQ(*(u64 *)p, 0);
		if (check_failures > failures_before)
			break;
	}
	CHECK_EQ(pmm_free_pages(), free0 - 2000);

	/* 2 MiB allocations are aligned and zeroed. */
	huge = pmm_alloc_2m();
	CHECK(huge != 0);
	CHECK_EQ(huge & ((2UL << 20) - 1), 0);
	CHECK_EQ(*(u64 *)(huge + (2UL << 20) - 8), 0);

	/* Free and reuse. */
	a = pmm_alloc_page();
	pmm_free_page(a);
	b = pmm_alloc_page();
	CHECK_EQ(a, b);

	/* A contiguous run too large for what is left fails cleanly. */
	CHECK_EQ(pmm_alloc_contig(RAM_SIZE / 4096, 1), 0);
	big = pmm_alloc_contig(1024, 1);
	CHECK(big != 0);
	pmm_free_contig(big, 1024);
	pmm_free_2m(huge);

	/* The uninitialised 2 MiB page skips the memset (a restore fills it),
	 * the next zeroed one has it again. */
	memset((void *)huge, 0x77, 2UL << 20);
	CHECK_EQ(pmm_alloc_2m_uninit(), huge);
	CHECK_EQ(*(u64 *)(huge + 4096), 0x7777777777777777ULL);
	pmm_free_2m(huge);
	CHECK_EQ(pmm_alloc_2m(), huge);
	CHECK_EQ(*(u64 *)(huge + 4096), 0);
	pmm_free_2m(huge);

	/* Exhaustion: take everything, then one more fails; free returns it all. */
	{
		u64 n = pmm_free_pages(), got = 0;
		static u64 pages[20000];

		while (got < n && (pages[got] = pmm_alloc_page()))
			got++;
		CHECK_EQ(got, n);
		CHECK_EQ(pmm_alloc_page(), 0);
		CHECK_EQ(pmm_alloc_2m(), 0);
		for (u64 i = 0; i < got; i++)
			pmm_free_page(pages[i]);
		CHECK_EQ(pmm_free_pages(), n);
	}

	/* The AP trampoline's page below 1 MiB (kernel/smp.c): the highest
	 * whole page of RAM under the limit, never twice, never the loader's
	 * data or what the memory map does not call RAM, never page 0. The
	 * general allocator never hands out low pages at all. */
	{
		void *low = mmap((void *)0x10000, 0x90000, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		u64 free_before = pmm_free_pages(), p;

		if (low != (void *)0x10000) {
			perror("mmap of the low 640 KiB");
			return 1;
		}
		memset(low, 0x5A, 0x90000);
		/* RAM ends at 0x9FC00: the page at 0x9F000 is not whole. */
		CHECK_EQ(pmm_alloc_low_page(0xA0000), 0x9E000);
		CHECK_EQ(*(u64 *)0x9E000, 0); /* zeroed */
		CHECK_EQ(pmm_alloc_low_page(0xA0000), 0x9D000);
		/* A module across 0x9B000-0x9C0FF: both pages are the loader's. */
		boot_info.modules[1] = (struct boot_module){ 0x9B800, 0x9C100, "low" };
		boot_info.module_count = 2;
		CHECK_EQ(pmm_alloc_low_page(0xA0000), 0x9A000);
		/* The limit is the end of the page; an unaligned one rounds down. */
		CHECK_EQ(pmm_alloc_low_page(0x12345), 0x11000);
		/* Reserved by the memory map, though inside a usable entry. */
		boot_info.mmap[4] = (struct mem_range){ 0x80000, 0x10000, MEM_RESERVED };
		boot_info.mmap_count = 5;
		CHECK_EQ(pmm_alloc_low_page(0x90000), 0x7F000);
		/* Only page 0 below the limit: none. */
		CHECK_EQ(pmm_alloc_low_page(0x1000), 0);
		p = pmm_alloc_low_page(MiB(2)); /* clamped to 1 MiB: 0xA0000+ is not RAM */
		CHECK_EQ(p, 0x99000);
		CHECK_EQ(pmm_free_pages(), free_before);
	}
	return test_done("pmm");
}
