/*
 * Host unit test of the nested page-table builder (vmm/svm/npt.c): guest RAM
 * made of scattered 2 MiB host chunks is mapped with 2 MiB leaves, a size that
 * is not a multiple of 2 MiB ends in 4 KiB pages, nothing past the RAM is
 * mapped, every entry carries P/RW/US, a failed allocation leaves nothing that
 * npt_destroy() does not give back, and bad arguments are refused.
 * "Physical" addresses are host pointers here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "vmm/svm/npt.h"
#include "tests/unit/check.h"

static int live_pages, alloc_limit = -1;

static u64 fake_alloc(void *ctx)
{
	void *p;

	if (alloc_limit >= 0 && live_pages >= alloc_limit)
		return 0;
	p = aligned_alloc(4096, 4096);
	if (!p)
		return 0;
	memset(p, 0, 4096);
	live_pages++;
	return (u64)(uintptr_t)p;
}

static void fake_free(void *ctx, u64 pa)
{
	free((void *)(uintptr_t)pa);
	live_pages--;
}

static void *fake_to_virt(void *ctx, u64 pa) { return (void *)(uintptr_t)pa; }

static const struct npt_mm mm = {
	.alloc_page = fake_alloc,
	.free_page = fake_free,
	.to_virt = fake_to_virt,
};

/* The tables for a guest of mem_size bytes, as svm_vm_init builds them;
 * on failure everything built so far is freed again. */
static int build(struct npt *npt, const u64 *chunks, u64 nchunks, u64 mem_size)
{
	int err = npt_init(npt, &mm, true);

	if (err)
		return err;
	err = npt_map_ram(npt, chunks, nchunks, mem_size);
	if (err)
		npt_destroy(npt);
	return err;
}

/* The host-physical address behind gpa, ~0 when unmapped. */
static u64 translate(const struct npt *npt, u64 gpa, u64 *size)
{
	u64 hpa, page, leaf;

	if (npt_translate(npt, gpa, &hpa, &page, &leaf))
		return ~0ULL;
	if (size)
		*size = page;
	return hpa;
}

/* Host chunks: fake 2 MiB-aligned addresses, scattered and descending, never
 * dereferenced (only the tables are). */
static void make_chunks(u64 *chunks, int n)
{
	for (int i = 0; i < n; i++)
		chunks[i] = 0x4000000000ULL - (u64)(i * 7 + 3) * HUGE_PAGE_SIZE;
}

/* Every entry on the path to gpa has P, RW and US (nested walks are user). */
static int path_flags_ok(const struct npt *npt, u64 gpa)
{
	u64 *t = (u64 *)(uintptr_t)npt->root;

	for (int level = 3; level >= 0; level--) {
		u64 e = t[(gpa >> (12 + 9 * level)) & 511];

		if ((e & NPT_TABLE) != NPT_TABLE)
			return 0;
		if ((level == 1 && (e & NPT_PS)) || level == 0)
			return 1;
		t = (u64 *)(uintptr_t)(e & NPT_ADDR_MASK);
	}
	return 0;
}

static void test_whole_chunks(void)
{
	u64 chunks[40], size;
	struct npt npt;

	make_chunks(chunks, 40);
	CHECK_EQ(build(&npt, chunks, 40, 40 * HUGE_PAGE_SIZE), 0);
	/* 1 PML4 + 1 PDPT + 1 PD: 80 MiB fits one page directory. */
	CHECK_EQ(npt.table_pages, 3);
	for (int i = 0; i < 40; i++) {
		u64 gpa = (u64)i * HUGE_PAGE_SIZE;

		CHECK_EQ(translate(&npt, gpa, &size), chunks[i]);
		CHECK_EQ(size, HUGE_PAGE_SIZE);
		CHECK_EQ(translate(&npt, gpa + 0x12345, NULL), chunks[i] + 0x12345);
		CHECK(path_flags_ok(&npt, gpa));
	}
	CHECK_EQ(translate(&npt, 40 * HUGE_PAGE_SIZE, NULL), ~0ULL);
	CHECK_EQ(translate(&npt, 0xFEC00000ULL, NULL), ~0ULL);
	CHECK_EQ(translate(&npt, 1ULL << 32, NULL), ~0ULL);
	CHECK_EQ(translate(&npt, 1ULL << 50, NULL), ~0ULL);
	npt_destroy(&npt);
	CHECK_EQ(live_pages, 0);
}

static void test_partial_tail(void)
{
	u64 chunks[3], size, mem = 2 * HUGE_PAGE_SIZE + 5 * PAGE_SIZE;
	struct npt npt;

	make_chunks(chunks, 3);
	CHECK_EQ(build(&npt, chunks, 3, mem), 0);
	CHECK_EQ(npt.table_pages, 4); /* plus one page table for the tail */
	CHECK_EQ(translate(&npt, HUGE_PAGE_SIZE, &size), chunks[1]);
	CHECK_EQ(size, HUGE_PAGE_SIZE);
	for (u64 off = 0; off < 5 * PAGE_SIZE; off += PAGE_SIZE) {
		CHECK_EQ(translate(&npt, 2 * HUGE_PAGE_SIZE + off + 8, &size), chunks[2] + off + 8);
		CHECK_EQ(size, PAGE_SIZE);
		CHECK(path_flags_ok(&npt, 2 * HUGE_PAGE_SIZE + off));
	}
	CHECK_EQ(translate(&npt, mem, NULL), ~0ULL);
	CHECK_EQ(translate(&npt, mem + PAGE_SIZE, NULL), ~0ULL);
	npt_destroy(&npt);
	CHECK_EQ(live_pages, 0);
}

static void test_above_1g(void)
{
	static u64 chunks[1024 + 8];
	struct npt npt;
	u64 n = 1024 + 8; /* 2 GiB + 16 MiB: two page directories */

	make_chunks((u64 *)chunks, (int)n);
	CHECK_EQ(build(&npt, chunks, n, n * HUGE_PAGE_SIZE), 0);
	CHECK_EQ(npt.table_pages, 1 + 1 + 3);
	CHECK_EQ(translate(&npt, GiB(2) + HUGE_PAGE_SIZE, NULL), chunks[1025]);
	CHECK_EQ(translate(&npt, GiB(1) - 1, NULL), chunks[511] + HUGE_PAGE_SIZE - 1);
	npt_destroy(&npt);
	CHECK_EQ(live_pages, 0);
}

static void test_errors(void)
{
	u64 chunks[4], hpa, size, leaf;
	struct npt npt;

	make_chunks(chunks, 4);
	CHECK_EQ(build(&npt, chunks, 4, HUGE_PAGE_SIZE + 100), -EINVAL);
	CHECK_EQ(build(&npt, chunks, 1, 2 * HUGE_PAGE_SIZE), -EINVAL); /* more RAM than chunks */
	CHECK_EQ(live_pages, 0);
	for (int limit = 0; limit < 4; limit++) {
		alloc_limit = limit;
		CHECK_EQ(build(&npt, chunks, 4, 3 * HUGE_PAGE_SIZE + PAGE_SIZE), -ENOMEM);
		CHECK_EQ(live_pages, 0);
		CHECK_EQ(npt.root, 0);
	}
	alloc_limit = -1;

	CHECK_EQ(npt_init(&npt, &mm, true), 0);
	CHECK_EQ(npt_map(&npt, 0x1000, 0x2000, 0x800, NPT_RW), -EINVAL);  /* unaligned */
	CHECK_EQ(npt_map(&npt, 0x1000, 0x2000, 0x1000, NPT_PS), -EINVAL); /* not a right */
	CHECK_EQ(npt_map(&npt, 1ULL << 48, 0x2000, 0x1000, NPT_RW), -EINVAL);
	CHECK_EQ(npt_map(&npt, 0x1000, 0x2000, 0x1000, 0), 0); /* read-only */
	CHECK_EQ(npt_map(&npt, 0x1000, 0x3000, 0x1000, NPT_RW), -EEXIST);
	CHECK_EQ(npt_translate(&npt, 0x1234, &hpa, &size, &leaf), 0);
	CHECK_EQ(hpa, 0x2234);
	CHECK_EQ(leaf & (NPT_P | NPT_RW | NPT_US), NPT_P | NPT_US);
	CHECK_EQ(npt_translate(&npt, 0x3000, &hpa, &size, &leaf), -ENOENT);
	CHECK_EQ(npt_ncr3(&npt), npt.root);
	npt_destroy(&npt);
	CHECK_EQ(live_pages, 0);
	npt_destroy(&npt); /* destroying twice is harmless */
	CHECK_EQ(translate(&npt, 0, NULL), ~0ULL);
}

/* The leaf entry that maps gpa, for the test to read its R/W bit. */
static u64 *leaf_of(struct npt *n, u64 gpa)
{
	u64 *t = (u64 *)(uintptr_t)n->root;

	for (int level = 3; level >= 0; level--) {
		u64 *entry = &t[(gpa >> (12 + 9 * level)) & 511];

		if (level == 0 || (*entry & NPT_PS))
			return entry;
		t = (u64 *)(uintptr_t)(*entry & NPT_ADDR_MASK);
	}
	return NULL;
}

/* Dirty tracking: 2 MiB leaves split and every page write-protected as it
 * starts, a fault makes one page writable (dirty) again, the harvest reports
 * and re-protects it, the stop gives write access back and merges, and a split
 * that runs out of pages is undone by the stop. */
static void test_tracking(void)
{
	u64 chunks[3], mem = 2 * NPT_PAGE_2M + 259 * NPT_PAGE_4K, npages = mem / NPT_PAGE_4K;
	u64 bits[(3 * 512 + 63) / 64], before, size, blocks;
	struct npt npt;

	make_chunks(chunks, 3);
	CHECK_EQ(build(&npt, chunks, 3, mem), 0);
	before = npt.table_pages;
	CHECK_EQ(npt_unprotect(&npt, mem, 0), -EEXIST); /* not tracking: writable */
	CHECK_EQ(npt_track_start(&npt, mem), 0);
	CHECK_EQ(npt.table_pages, before + 2);
	for (u64 p = 0; p < npages; p++) {
		u64 gpa = p * NPT_PAGE_4K;

		CHECK_EQ(translate(&npt, gpa, &size),
			 chunks[gpa / NPT_PAGE_2M] + gpa % NPT_PAGE_2M);
		CHECK_EQ(size, NPT_PAGE_4K);
		CHECK_EQ(*leaf_of(&npt, gpa) & (NPT_P | NPT_RW | NPT_US), NPT_P | NPT_US);
	}
	memset(bits, 0, sizeof(bits));
	CHECK_EQ(npt_harvest(&npt, mem, NULL, bits), 0);
	/* The guest writes pages 3, 511, 512 and the last one: each faults. */
	CHECK_EQ(npt_unprotect(&npt, mem, 3 * NPT_PAGE_4K + 8), 0);
	CHECK_EQ(npt_unprotect(&npt, mem, 3 * NPT_PAGE_4K), -EEXIST);
	CHECK_EQ(npt_unprotect(&npt, mem, 511 * NPT_PAGE_4K), 0);
	CHECK_EQ(npt_unprotect(&npt, mem, 512 * NPT_PAGE_4K + 0xfff), 0);
	CHECK_EQ(npt_unprotect(&npt, mem, mem - 1), 0);
	CHECK_EQ(*leaf_of(&npt, 3 * NPT_PAGE_4K) & NPT_RW, NPT_RW);
	/* No RAM there: the fault is for the MMIO path. */
	CHECK_EQ(npt_unprotect(&npt, mem, mem), -ENOENT);
	CHECK_EQ(npt_unprotect(&npt, mem, 0xFEC00000ULL), -ENOENT);
	CHECK_EQ(npt_unprotect(&npt, 1ULL << 40, 1ULL << 40), -ENOENT);
	CHECK_EQ(npt_harvest(&npt, mem, NULL, bits), 4);
	for (u64 p = 0; p < npages; p++)
		CHECK_EQ((bits[p / 64] >> (p % 64)) & 1,
			 p == 3 || p == 511 || p == 512 || p == npages - 1);
	CHECK_EQ(*leaf_of(&npt, 3 * NPT_PAGE_4K) & NPT_RW, 0); /* protected again */
	CHECK_EQ(npt_harvest(&npt, mem, NULL, NULL), 0);
	/* With the blocks the faults noted, only those are looked at: a write
	 * in a block nobody noted waits for a harvest of all of RAM. */
	CHECK_EQ(npt_unprotect(&npt, mem, 5 * NPT_PAGE_4K), 0);
	CHECK_EQ(npt_unprotect(&npt, mem, mem - 1), 0);
	blocks = BIT(0);
	memset(bits, 0, sizeof(bits));
	CHECK_EQ(npt_harvest(&npt, mem, &blocks, bits), 1);
	CHECK_EQ(blocks, 0);
	CHECK_EQ(bits[0], BIT(5));
	CHECK_EQ(*leaf_of(&npt, mem - 1) & NPT_RW, NPT_RW); /* not looked at */
	blocks = BIT(2) | BIT(7);			    /* the tail block, and one past RAM */
	CHECK_EQ(npt_harvest(&npt, mem, &blocks, bits), 1);
	CHECK_EQ(blocks, 0);
	CHECK_EQ((bits[(npages - 1) / 64] >> ((npages - 1) % 64)) & 1, 1);
	CHECK_EQ(npt_harvest(&npt, mem, NULL, NULL), 0);
	npt_track_stop(&npt, mem);
	CHECK_EQ(npt.table_pages, before);
	for (u64 gpa = 0; gpa < 2 * NPT_PAGE_2M; gpa += NPT_PAGE_2M) {
		CHECK_EQ(translate(&npt, gpa, &size), chunks[gpa / NPT_PAGE_2M]);
		CHECK_EQ(size, NPT_PAGE_2M);
		CHECK_EQ(*leaf_of(&npt, gpa) & NPT_RW, NPT_RW);
	}
	CHECK_EQ(*leaf_of(&npt, mem - 1) & NPT_RW, NPT_RW); /* the tail, 4 KiB */
	CHECK_EQ(translate(&npt, mem, NULL), ~0ULL);

	/* One page left for the two splits: the first succeeds, the stop merges it
	 * and gives every page write access back. */
	alloc_limit = live_pages + 1;
	CHECK_EQ(npt_track_start(&npt, mem), -ENOMEM);
	alloc_limit = -1;
	CHECK_EQ(translate(&npt, 5 * NPT_PAGE_4K, &size), chunks[0] + 5 * NPT_PAGE_4K);
	CHECK_EQ(size, NPT_PAGE_4K);
	npt_track_stop(&npt, mem);
	CHECK_EQ(npt.table_pages, before);
	CHECK_EQ(*leaf_of(&npt, 0) & (NPT_RW | NPT_PS), NPT_RW | NPT_PS);
	CHECK_EQ(*leaf_of(&npt, NPT_PAGE_2M) & (NPT_RW | NPT_PS), NPT_RW | NPT_PS);

	/* A page table whose leaves do not map one aligned 2 MiB stays. */
	CHECK_EQ(npt_track_start(&npt, mem), 0);
	*leaf_of(&npt, 7 * NPT_PAGE_4K) |= NPT_NX; /* rights differ */
	npt_track_stop(&npt, mem);
	CHECK_EQ(npt.table_pages, before + 1);
	npt_destroy(&npt);
	CHECK_EQ(live_pages, 0);
}

/* Lazy restore: every RAM leaf removed with the root kept, then pages mapped
 * back a run at a time; a 2 MiB block whose 512 pages are all back becomes
 * one leaf again, the partial tail stays in 4 KiB pages. */
static void test_fill(void)
{
	u64 chunks[3], mem = 2 * NPT_PAGE_2M + 259 * NPT_PAGE_4K, root, size = 0;
	bool merged = true;
	struct npt n;

	make_chunks(chunks, 3);
	CHECK_EQ(build(&n, chunks, 3, mem), 0);
	root = n.root;
	npt_unmap_all(&n);
	CHECK_EQ(n.root, root);
	CHECK_EQ(n.table_pages, 1);
	CHECK_EQ(live_pages, 1);
	for (u64 gpa = 0; gpa < mem; gpa += NPT_PAGE_4K * 37)
		CHECK_EQ(translate(&n, gpa, NULL), ~0ULL);
	/* Pages 5-7 of block 1: only they come back. */
	CHECK_EQ(npt_fill(&n, NPT_PAGE_2M + 5 * NPT_PAGE_4K, chunks[1] + 5 * NPT_PAGE_4K,
			  3 * NPT_PAGE_4K, &merged),
		 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(translate(&n, NPT_PAGE_2M + 4 * NPT_PAGE_4K, NULL), ~0ULL);
	CHECK_EQ(translate(&n, NPT_PAGE_2M + 5 * NPT_PAGE_4K, &size), chunks[1] + 5 * NPT_PAGE_4K);
	CHECK_EQ(size, NPT_PAGE_4K);
	CHECK(path_flags_ok(&n, NPT_PAGE_2M + 7 * NPT_PAGE_4K));
	CHECK_EQ(translate(&n, NPT_PAGE_2M + 8 * NPT_PAGE_4K, NULL), ~0ULL);
	/* The rest of block 1, pages already there included: one 2 MiB leaf. */
	CHECK_EQ(npt_fill(&n, NPT_PAGE_2M, chunks[1], 300 * NPT_PAGE_4K, &merged), 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(npt_fill(&n, NPT_PAGE_2M + 300 * NPT_PAGE_4K, chunks[1] + 300 * NPT_PAGE_4K,
			  212 * NPT_PAGE_4K, &merged),
		 0);
	CHECK_EQ(merged, true);
	CHECK_EQ(translate(&n, NPT_PAGE_2M + 0x1234, &size), chunks[1] + 0x1234);
	CHECK_EQ(size, NPT_PAGE_2M);
	CHECK(path_flags_ok(&n, NPT_PAGE_2M));
	/* Once merged, a fill inside it changes nothing. */
	CHECK_EQ(npt_fill(&n, NPT_PAGE_2M, chunks[1], NPT_PAGE_4K, &merged), 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(translate(&n, 0, NULL), ~0ULL);
	/* The tail block never becomes a 2 MiB leaf. */
	CHECK_EQ(npt_fill(&n, 2 * NPT_PAGE_2M, chunks[2], 259 * NPT_PAGE_4K, &merged), 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(translate(&n, mem - NPT_PAGE_4K, &size), chunks[2] + 258 * NPT_PAGE_4K);
	CHECK_EQ(size, NPT_PAGE_4K);
	CHECK_EQ(translate(&n, mem, NULL), ~0ULL);
	/* A run across two blocks is refused. */
	CHECK_EQ(npt_fill(&n, NPT_PAGE_2M - NPT_PAGE_4K, chunks[0] + NPT_PAGE_2M - NPT_PAGE_4K,
			  2 * NPT_PAGE_4K, &merged),
		 -EINVAL);
	/* Out of table pages: -ENOMEM, nothing half made that destroy misses. */
	alloc_limit = live_pages;
	CHECK_EQ(npt_fill(&n, 0, chunks[0], NPT_PAGE_4K, &merged), -ENOMEM);
	alloc_limit = -1;
	/* A whole block with nothing of it mapped: one 2 MiB leaf, no table
	 * made, nothing to flush. */
	size = n.table_pages;
	CHECK_EQ(npt_fill(&n, 0, chunks[0], NPT_PAGE_2M, &merged), 0);
	CHECK_EQ(merged, false);
	CHECK_EQ(n.table_pages, size);
	CHECK_EQ(translate(&n, 0x5678, &size), chunks[0] + 0x5678);
	CHECK_EQ(size, NPT_PAGE_2M);
	CHECK(path_flags_ok(&n, 0));
	npt_unmap_all(&n);
	CHECK_EQ(live_pages, 1);
	npt_destroy(&n);
	CHECK_EQ(live_pages, 0);
}

int main(void)
{
	test_whole_chunks();
	test_partial_tail();
	test_above_1g();
	test_errors();
	test_tracking();
	test_fill();
	return test_done("npt");
}
