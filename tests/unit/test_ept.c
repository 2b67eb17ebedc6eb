/*
 * Host unit test of the EPT builder (vmm/vmx/ept.c): maps guest RAM made of
 * scattered 2 MiB chunks, then walks the tables like the CPU and checks every
 * page lands where it should, with 2 MiB leaves exactly where both sides are
 * aligned, write-back type, nothing mapped past the RAM; plus the error paths
 * and that destroying the tables gives every page back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmx/ept.h"
#include "tests/unit/check.h"

#define MAX_PAGES 4096

/* A fake physical allocator: "physical" addresses are host pointers. */
static struct {
	void *pages[MAX_PAGES];
	int used;
	int live;
	int limit; /* fail allocations after this many live pages; 0 = never */
} pool;

static u64 fake_alloc(void *ctx)
{
	void *p;

	(void)ctx;
	if (pool.used == MAX_PAGES || (pool.limit && pool.live >= pool.limit))
		return 0;
	p = aligned_alloc(4096, 4096);
	if (!p)
		return 0;
	memset(p, 0, 4096);
	pool.pages[pool.used++] = p;
	pool.live++;
	return (u64)(uintptr_t)p;
}

static void fake_free(void *ctx, u64 pa)
{
	(void)ctx;
	for (int i = 0; i < pool.used; i++) {
		if (pool.pages[i] == (void *)(uintptr_t)pa) {
			free(pool.pages[i]);
			pool.pages[i] = pool.pages[--pool.used];
			pool.live--;
			return;
		}
	}
	fprintf(stderr, "free of a page never allocated: 0x%llx\n", (unsigned long long)pa);
	abort();
}

static void *fake_to_virt(void *ctx, u64 pa)
{
	(void)ctx;
	return (void *)(uintptr_t)pa;
}

static const struct ept_mm fake_mm = {
	.alloc_page = fake_alloc,
	.free_page = fake_free,
	.to_virt = fake_to_virt,
};

/* Checks that gpa translates to hpa with the given leaf size. */
static void expect_map(struct ept *e, u64 gpa, u64 hpa, u64 size)
{
	u64 got = 0, psize = 0, leaf = 0;

	CHECK_EQ(ept_translate(e, gpa, &got, &psize, &leaf), 0);
	CHECK_EQ(got, hpa);
	CHECK_EQ(psize, size);
	CHECK_EQ(leaf & EPT_RWX, EPT_RWX);
	CHECK_EQ((leaf >> EPT_MT_SHIFT) & 7, EPT_MT_WB);
	CHECK_EQ(!!(leaf & EPT_LARGE), size == EPT_PAGE_2M);
	CHECK_EQ(leaf & EPT_IPAT, 0);
}

static void expect_unmapped(struct ept *e, u64 gpa)
{
	u64 got, psize, leaf;

	CHECK_EQ(ept_translate(e, gpa, &got, &psize, &leaf), -ENOENT);
}

/* 32 MiB of RAM in 16 chunks scattered over host memory above 4 GiB. */
static void test_whole_chunks(void)
{
	u64 chunks[16];
	struct ept e;

	for (int i = 0; i < 16; i++)
		chunks[i] = 0x100000000ULL + (u64)((i * 7) % 16) * EPT_PAGE_2M;
	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map_ram(&e, chunks, 16, 32ULL << 20), 0);
	/* PML4 + PDPT + PD, no page tables at all. */
	CHECK_EQ(e.table_pages, 3);
	for (u64 gpa = 0; gpa < (32ULL << 20); gpa += 0x3000 + 0x123)
		expect_map(&e, gpa, chunks[gpa / EPT_PAGE_2M] + gpa % EPT_PAGE_2M, EPT_PAGE_2M);
	expect_unmapped(&e, 32ULL << 20);
	expect_unmapped(&e, 0xfee00000);
	expect_unmapped(&e, 0x100000000ULL);
	CHECK_EQ(ept_eptp(&e), e.root | (3 << 3) | 6);
	CHECK_EQ(ept_eptp(&e) & 0xfff, 0x1e);
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);
	CHECK_EQ(e.root, 0);
}

/* RAM that ends inside a chunk: the tail is mapped with 4 KiB pages, and not
 * one page past mem_size. */
static void test_partial_tail(void)
{
	u64 chunks[3] = { 0x40000000, 0x40600000, 0x40200000 };
	u64 mem = 4 * 0x100000 + 0x3000; /* 4 MiB + 12 KiB */
	struct ept e;

	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map_ram(&e, chunks, 3, mem), 0);
	expect_map(&e, 0, 0x40000000, EPT_PAGE_2M);
	expect_map(&e, 0x3fffff, 0x407fffff, EPT_PAGE_2M);
	expect_map(&e, 0x400000, 0x40200000, EPT_PAGE_4K);
	expect_map(&e, 0x402fff, 0x40202fff, EPT_PAGE_4K);
	expect_unmapped(&e, 0x403000);
	expect_unmapped(&e, 0x5ff000);
	/* PML4, PDPT, PD and one PT. */
	CHECK_EQ(e.table_pages, 4);
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);
}

/* Host memory that is not 2 MiB aligned, and a CPU without 2 MiB EPT pages:
 * both get 4 KiB leaves only. */
static void test_small_pages(void)
{
	struct ept e;

	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map(&e, 0x200000, 0x7001000, 0x400000, EPT_RWX), 0);
	expect_map(&e, 0x200000, 0x7001000, EPT_PAGE_4K);
	expect_map(&e, 0x5ff000, 0x73ff000 + 0x1000, EPT_PAGE_4K);
	expect_unmapped(&e, 0x600000);
	expect_unmapped(&e, 0x1ff000);
	CHECK_EQ(e.table_pages, 3 + 2);
	ept_destroy(&e);

	CHECK_EQ(ept_init(&e, &fake_mm, false), 0);
	CHECK_EQ(ept_map(&e, 0, 0x80000000ULL, 0x400000, EPT_RWX), 0);
	expect_map(&e, 0x1ff123, 0x801ff123ULL, EPT_PAGE_4K);
	expect_map(&e, 0x3ff000, 0x803ff000ULL, EPT_PAGE_4K);
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);
}

/* Mappings across a PDPT (1 GiB) and a PML4 (512 GiB) boundary, and RAM
 * larger than 4 GiB. */
static void test_boundaries(void)
{
	struct ept e;
	u64 g512 = 512ULL << 30;

	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map(&e, g512 - EPT_PAGE_2M, 0x200000000ULL, 2 * EPT_PAGE_2M, EPT_RWX), 0);
	expect_map(&e, g512 - 1, 0x200000000ULL + EPT_PAGE_2M - 1, EPT_PAGE_2M);
	expect_map(&e, g512, 0x200000000ULL + EPT_PAGE_2M, EPT_PAGE_2M);
	/* Two PDPTs and two PDs under one PML4. */
	CHECK_EQ(e.table_pages, 5);
	CHECK_EQ(ept_map(&e, (1ULL << 30) - 0x1000, 0x300000000ULL, 0x2000, EPT_RWX), 0);
	expect_map(&e, (1ULL << 30) - 0x1000, 0x300000000ULL, EPT_PAGE_4K);
	expect_map(&e, 1ULL << 30, 0x300001000ULL, EPT_PAGE_4K);
	ept_destroy(&e);

	/* 6 GiB of RAM in 3072 chunks: 2 MiB leaves all the way. */
	{
		static u64 chunks[3072];

		for (int i = 0; i < 3072; i++)
			chunks[i] = 0x1000000000ULL + (u64)i * EPT_PAGE_2M;
		CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
		CHECK_EQ(ept_map_ram(&e, chunks, 3072, 6ULL << 30), 0);
		CHECK_EQ(e.table_pages, 1 + 1 + 6);
		expect_map(&e, (5ULL << 30) + 0x12345, 0x1000000000ULL + (5ULL << 30) + 0x12345,
			   EPT_PAGE_2M);
		expect_unmapped(&e, 6ULL << 30);
		ept_destroy(&e);
	}
	CHECK_EQ(pool.live, 0);
}

static void test_errors(void)
{
	u64 chunks[2] = { 0x40000000, 0x40200000 };
	struct ept e;

	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	/* Unaligned addresses or size, bad permissions, beyond 48 bits. */
	CHECK_EQ(ept_map(&e, 0x1001, 0x2000, 0x1000, EPT_RWX), -EINVAL);
	CHECK_EQ(ept_map(&e, 0x1000, 0x2800, 0x1000, EPT_RWX), -EINVAL);
	CHECK_EQ(ept_map(&e, 0x1000, 0x2000, 0x800, EPT_RWX), -EINVAL);
	CHECK_EQ(ept_map(&e, 0x1000, 0x2000, 0x1000, 0), -EINVAL);
	CHECK_EQ(ept_map(&e, 0x1000, 0x2000, 0x1000, EPT_WRITE), -EINVAL);
	CHECK_EQ(ept_map(&e, 0x1000, 0x2000, 0x1000, 0x40), -EINVAL);
	CHECK_EQ(ept_map(&e, 1ULL << 48, 0x2000, 0x1000, EPT_RWX), -EINVAL);
	CHECK_EQ(ept_map(&e, 0, 1ULL << 52, 0x1000, EPT_RWX), -EINVAL);
	/* RAM larger than its chunks, or not a whole number of pages. */
	CHECK_EQ(ept_map_ram(&e, chunks, 2, 3 * EPT_PAGE_2M), -EINVAL);
	CHECK_EQ(ept_map_ram(&e, chunks, 2, 0x100800), -EINVAL);
	/* Overlaps: a 4 KiB page inside a 2 MiB leaf, a 2 MiB leaf over 4 KiB pages. */
	CHECK_EQ(ept_map(&e, 0, 0x40000000, EPT_PAGE_2M, EPT_RWX), 0);
	CHECK_EQ(ept_map(&e, 0x5000, 0x9000, 0x1000, EPT_RWX), -EEXIST);
	CHECK_EQ(ept_map(&e, 0, 0x40000000, EPT_PAGE_2M, EPT_RWX), -EEXIST);
	CHECK_EQ(ept_map(&e, 0x400000, 0x1000, 0x1000, EPT_READ | EPT_EXEC), 0);
	CHECK_EQ(ept_map(&e, 0x400000, 0x40400000, EPT_PAGE_2M, EPT_RWX), -EEXIST);
	{
		u64 hpa, size, leaf;

		CHECK_EQ(ept_translate(&e, 0x400000, &hpa, &size, &leaf), 0);
		CHECK_EQ(leaf & EPT_RWX, EPT_READ | EPT_EXEC);
	}
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);

	/* Out of table pages half way: an error, and destroy frees what was built. */
	pool.limit = 3;
	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map(&e, 0, 0x40000000, EPT_PAGE_2M, EPT_RWX), 0);
	CHECK_EQ(ept_map(&e, 1ULL << 30, 0x40000000, EPT_PAGE_2M, EPT_RWX), -ENOMEM);
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);
	pool.limit = 1;
	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map(&e, 0, 0x40000000, 0x1000, EPT_RWX), -ENOMEM);
	ept_destroy(&e);
	pool.limit = 0;
	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	ept_destroy(&e);
	ept_destroy(&e); /* twice is harmless */
	CHECK_EQ(pool.live, 0);
	expect_unmapped(&e, 0);
}

/* The leaf entry that maps gpa, for the test to set the CPU's flags. */
static u64 *leaf_of(struct ept *e, u64 gpa)
{
	u64 *t = (u64 *)(uintptr_t)e->root;

	for (int level = 3; level >= 0; level--) {
		u64 *entry = &t[(gpa >> (12 + 9 * level)) & 511];

		if (level == 0 || (*entry & EPT_LARGE))
			return entry;
		t = (u64 *)(uintptr_t)(*entry & EPT_ADDR_MASK);
	}
	return NULL;
}

/* Dirty tracking: 2 MiB leaves split as it starts and merged as it stops, the
 * mapping the same throughout, the dirty flags harvested into the bitmap and
 * cleared, and a split that runs out of pages undone by the stop. */
static void test_tracking(void)
{
	u64 chunks[3] = { 0x80000000, 0x80c00000, 0x80400000 };
	u64 mem = 2 * EPT_PAGE_2M + 259 * EPT_PAGE_4K, npages = mem / EPT_PAGE_4K;
	u64 bits[(3 * 512 + 63) / 64], before, blocks;
	struct ept e;

	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	e.ad = true;
	CHECK_EQ(ept_map_ram(&e, chunks, 3, mem), 0);
	CHECK_EQ(ept_eptp(&e) & VMX_EPTP_AD_ENABLE, VMX_EPTP_AD_ENABLE);
	before = e.table_pages;
	*leaf_of(&e, 0) |= EPT_DIRTY; /* written before tracking: not reported */
	CHECK_EQ(ept_track_start(&e, mem), 0);
	CHECK_EQ(e.table_pages, before + 2);
	for (u64 p = 0; p < npages; p++) {
		u64 gpa = p * EPT_PAGE_4K;

		expect_map(&e, gpa, chunks[gpa / EPT_PAGE_2M] + gpa % EPT_PAGE_2M, EPT_PAGE_4K);
		CHECK_EQ(*leaf_of(&e, gpa) & EPT_DIRTY, 0);
	}
	memset(bits, 0, sizeof(bits));
	CHECK_EQ(ept_harvest(&e, mem, NULL, bits), 0);
	/* The CPU writes pages 3, 511, 512 and the last one. */
	*leaf_of(&e, 3 * EPT_PAGE_4K) |= EPT_DIRTY | EPT_ACCESSED;
	*leaf_of(&e, 511 * EPT_PAGE_4K) |= EPT_DIRTY;
	*leaf_of(&e, 512 * EPT_PAGE_4K) |= EPT_DIRTY;
	*leaf_of(&e, (npages - 1) * EPT_PAGE_4K) |= EPT_DIRTY;
	CHECK_EQ(ept_harvest(&e, mem, NULL, bits), 4);
	for (u64 p = 0; p < npages; p++)
		CHECK_EQ((bits[p / 64] >> (p % 64)) & 1,
			 p == 3 || p == 511 || p == 512 || p == npages - 1);
	CHECK_EQ(ept_harvest(&e, mem, NULL, NULL), 0); /* the flags were cleared */
	/* With the blocks the log noted, only those are looked at: a flag in a
	 * block nobody noted waits for a harvest of all of RAM. */
	*leaf_of(&e, 5 * EPT_PAGE_4K) |= EPT_DIRTY;
	*leaf_of(&e, (npages - 1) * EPT_PAGE_4K) |= EPT_DIRTY;
	blocks = BIT(0);
	memset(bits, 0, sizeof(bits));
	CHECK_EQ(ept_harvest(&e, mem, &blocks, bits), 1);
	CHECK_EQ(blocks, 0);
	CHECK_EQ(bits[0], BIT(5));
	CHECK_EQ(*leaf_of(&e, (npages - 1) * EPT_PAGE_4K) & EPT_DIRTY, EPT_DIRTY);
	blocks = BIT(2) | BIT(7); /* the tail block, and one past RAM */
	CHECK_EQ(ept_harvest(&e, mem, &blocks, bits), 1);
	CHECK_EQ(blocks, 0);
	CHECK_EQ((bits[(npages - 1) / 64] >> ((npages - 1) % 64)) & 1, 1);
	CHECK_EQ(ept_harvest(&e, mem, NULL, NULL), 0);
	ept_track_stop(&e, mem);
	CHECK_EQ(e.table_pages, before);
	for (u64 gpa = 0; gpa < 2 * EPT_PAGE_2M; gpa += EPT_PAGE_2M)
		expect_map(&e, gpa, chunks[gpa / EPT_PAGE_2M], EPT_PAGE_2M);
	expect_map(&e, mem - EPT_PAGE_4K, chunks[2] + 258 * EPT_PAGE_4K, EPT_PAGE_4K);
	expect_unmapped(&e, mem);

	/* One page left for the two splits: the first succeeds, the stop merges it. */
	pool.limit = pool.live + 1;
	CHECK_EQ(ept_track_start(&e, mem), -ENOMEM);
	pool.limit = 0;
	expect_map(&e, 5 * EPT_PAGE_4K, chunks[0] + 5 * EPT_PAGE_4K, EPT_PAGE_4K);
	expect_map(&e, EPT_PAGE_2M, chunks[1], EPT_PAGE_2M);
	ept_track_stop(&e, mem);
	CHECK_EQ(e.table_pages, before);
	expect_map(&e, 0, chunks[0], EPT_PAGE_2M);

	/* A page table whose leaves do not map one aligned 2 MiB stays. */
	CHECK_EQ(ept_track_start(&e, mem), 0);
	*leaf_of(&e, 7 * EPT_PAGE_4K) &= ~EPT_WRITE; /* rights differ */
	ept_track_stop(&e, mem);
	CHECK_EQ(e.table_pages, before + 1);
	expect_map(&e, EPT_PAGE_2M, chunks[1], EPT_PAGE_2M);
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);
}

/* Lazy restore: every RAM leaf removed with the root kept, then pages mapped
 * back a run at a time; a 2 MiB block whose 512 pages are all back becomes
 * one leaf again, the partial tail stays in 4 KiB pages. */
static void test_fill(void)
{
	u64 chunks[3] = { 0x80000000, 0x80c00000, 0x80400000 };
	u64 mem = 2 * EPT_PAGE_2M + 259 * EPT_PAGE_4K, root, tables;
	bool merged = true;
	struct ept e;

	CHECK_EQ(ept_init(&e, &fake_mm, true), 0);
	CHECK_EQ(ept_map_ram(&e, chunks, 3, mem), 0);
	root = e.root;
	ept_unmap_all(&e);
	CHECK_EQ(e.root, root);
	CHECK_EQ(e.table_pages, 1);
	CHECK_EQ(pool.live, 1);
	for (u64 gpa = 0; gpa < mem; gpa += EPT_PAGE_4K * 37)
		expect_unmapped(&e, gpa);
	/* Pages 5-7 of block 1: only they come back. */
	CHECK_EQ(ept_fill(&e, EPT_PAGE_2M + 5 * EPT_PAGE_4K, chunks[1] + 5 * EPT_PAGE_4K,
			  3 * EPT_PAGE_4K, &merged),
		 0);
	CHECK_EQ(merged, false);
	expect_unmapped(&e, EPT_PAGE_2M + 4 * EPT_PAGE_4K);
	expect_map(&e, EPT_PAGE_2M + 5 * EPT_PAGE_4K, chunks[1] + 5 * EPT_PAGE_4K, EPT_PAGE_4K);
	expect_map(&e, EPT_PAGE_2M + 7 * EPT_PAGE_4K, chunks[1] + 7 * EPT_PAGE_4K, EPT_PAGE_4K);
	expect_unmapped(&e, EPT_PAGE_2M + 8 * EPT_PAGE_4K);
	/* The rest of block 1, pages already there included: one 2 MiB leaf. */
	CHECK_EQ(ept_fill(&e, EPT_PAGE_2M, chunks[1], 300 * EPT_PAGE_4K, &merged), 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(ept_fill(&e, EPT_PAGE_2M + 300 * EPT_PAGE_4K, chunks[1] + 300 * EPT_PAGE_4K,
			  212 * EPT_PAGE_4K, &merged),
		 0);
	CHECK_EQ(merged, true);
	expect_map(&e, EPT_PAGE_2M + 0x1234, chunks[1] + 0x1234, EPT_PAGE_2M);
	/* Once merged, a fill inside it changes nothing. */
	CHECK_EQ(ept_fill(&e, EPT_PAGE_2M, chunks[1], EPT_PAGE_4K, &merged), 0);
	CHECK_EQ(merged, false);
	expect_unmapped(&e, 0);
	/* The tail block never becomes a 2 MiB leaf. */
	CHECK_EQ(ept_fill(&e, 2 * EPT_PAGE_2M, chunks[2], 259 * EPT_PAGE_4K, &merged), 0);
	CHECK_EQ(merged, false);
	expect_map(&e, mem - EPT_PAGE_4K, chunks[2] + 258 * EPT_PAGE_4K, EPT_PAGE_4K);
	expect_unmapped(&e, mem);
	/* A run across two blocks is refused. */
	CHECK_EQ(ept_fill(&e, EPT_PAGE_2M - EPT_PAGE_4K, chunks[0] + EPT_PAGE_2M - EPT_PAGE_4K,
			  2 * EPT_PAGE_4K, &merged),
		 -EINVAL);
	/* Out of table pages: -ENOMEM, nothing half made that destroy misses. */
	pool.limit = pool.live;
	CHECK_EQ(ept_fill(&e, 0, chunks[0], EPT_PAGE_4K, &merged), -ENOMEM);
	pool.limit = 0;
	/* A whole block with nothing of it mapped: one 2 MiB leaf, no table
	 * made, nothing to flush. */
	tables = e.table_pages;
	CHECK_EQ(ept_fill(&e, 0, chunks[0], EPT_PAGE_2M, &merged), 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(e.table_pages, tables);
	expect_map(&e, 0x5678, chunks[0] + 0x5678, EPT_PAGE_2M);
	ept_unmap_all(&e);
	CHECK_EQ(pool.live, 1);
	ept_destroy(&e);
	CHECK_EQ(pool.live, 0);
}

int main(void)
{
	test_whole_chunks();
	test_partial_tail();
	test_small_pages();
	test_boundaries();
	test_errors();
	test_tracking();
	test_fill();
	return test_done("ept");
}
