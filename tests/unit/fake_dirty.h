/*
 * The fake dirty-tracking backend of the host unit tests that run the
 * generic dirty log (test_dirtylog.c, test_fastreset.c): a page allocator
 * from the host heap that counts what is live, no pager, and vcpu_ops whose
 * dirty_* calls act like both real backends: a guest write the "hardware"
 * sees (fake_write) notes its 2 MiB block in the log, and a harvest reports
 * the written pages of the noted blocks only (vmm/dirtylog.h,
 * dirty_log_note), so a write that was never noted is lost, as it would be.
 * Include once per test program, after vmm/vmm.h. Host only.
 */
#ifndef AMBER_UNIT_FAKE_DIRTY_H
#define AMBER_UNIT_FAKE_DIRTY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/mm.h"
#include "vmm/vmm.h"

static int live_pages; /* pages taken from pmm_alloc_contig and not freed */

u64 pmm_alloc_contig(u64 npages, u64 align_pages)
{
	void *p = aligned_alloc(PAGE_SIZE, npages * PAGE_SIZE);

	(void)align_pages;
	if (!p)
		return 0;
	memset(p, 0, npages * PAGE_SIZE);
	live_pages += (int)npages;
	return (u64)(uintptr_t)p;
}

void pmm_free_contig(u64 pa, u64 npages)
{
	free((void *)(uintptr_t)pa);
	live_pages -= (int)npages;
}

/* No VM here has RAM still arriving (vmm/pager.c is not linked). */
int pager_finish(struct vm *vm, const char *for_what)
{
	(void)vm;
	(void)for_what;
	return 0;
}

/* What the backend was asked, and the pages its "hardware" saw written
 * since the last harvest. */
static struct {
	int starts, harvests, stops, start_err;
	u64 written[8];
	int nwritten;
} be;

/* The guest writes page p; the backend notices (a fault on AMD-V, a log
 * entry on VT-x) and notes its block. */
static inline void fake_write(struct vm *vm, u64 p)
{
	be.written[be.nwritten++] = p;
	dirty_log_note(&vm->dirty, p * PAGE_SIZE);
}

static int fake_start(struct vm *vm)
{
	(void)vm;
	be.starts++;
	return be.start_err;
}

static int fake_harvest(struct vm *vm, u64 *bits)
{
	u64 *blocks = vm->dirty.blocks;

	be.harvests++;
	for (int i = 0; i < be.nwritten; i++) {
		u64 b = be.written[i] / DIRTY_BLOCK_PAGES;

		if ((blocks[b / 64] >> (b % 64)) & 1)
			bits[be.written[i] / 64] |= 1ULL << (be.written[i] % 64);
	}
	memset(blocks, 0, dirty_log_block_words(vm->dirty.npages) * sizeof(u64));
	be.nwritten = 0;
	return 0;
}

static void fake_stop(struct vm *vm)
{
	(void)vm;
	be.stops++;
}

static const struct vcpu_ops fake_ops = {
	.name = "fake",
	.dirty_start = fake_start,
	.dirty_harvest = fake_harvest,
	.dirty_stop = fake_stop,
};
const struct vcpu_ops *vcpu_ops = &fake_ops;

#endif
