/*
 * The generic dirty log (vmm/dirtylog.h): the bitmap, and the calls that start,
 * sync and stop a VM's tracking through its backend's dirty_* operations. No
 * vendor knowledge here: how a write is noticed (EPT dirty flags, NPT write
 * protection) is the backend's. Host context, boot CPU, interrupts off.
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "vmm/dirtylog.h"
#include "vmm/pager.h"
#include "vmm/vmm.h"

void dirty_log_mark(struct dirty_log *l, u64 gpa, u64 len)
{
	u64 first, last;

	if (!l->on || !len || gpa >= l->npages * PAGE_SIZE)
		return;
	first = gpa / PAGE_SIZE;
	last = (len > l->npages * PAGE_SIZE - gpa ? l->npages * PAGE_SIZE - 1 : gpa + len - 1) /
	       PAGE_SIZE;
	for (u64 p = first; p <= last; p++) {
		l->bits[p / 64] |= 1ULL << (p % 64);
		if (l->tap)
			l->tap[p / 64] |= 1ULL << (p % 64);
	}
}

bool dirty_log_test(const struct dirty_log *l, u64 page)
{
	return l->bits && page < l->npages && (l->bits[page / 64] >> (page % 64)) & 1;
}

u64 dirty_log_count(const struct dirty_log *l)
{
	u64 n = 0;

	for (u64 w = 0; l->bits && w < dirty_log_words(l->npages); w++)
		for (u64 b = l->bits[w]; b; b &= b - 1) /* no libgcc popcount */
			n++;
	return n;
}

u64 dirty_log_next(const struct dirty_log *l, u64 page)
{
	while (l->bits && page < l->npages) {
		u64 word = l->bits[page / 64] >> (page % 64);

		if (word)
			return MIN(page + (u64)__builtin_ctzll(word), l->npages);
		page = (page / 64 + 1) * 64;
	}
	return l->npages;
}

static u64 dirty_epochs; /* the last epoch handed out */

void dirty_log_clear(struct dirty_log *l)
{
	l->epoch = ++dirty_epochs;
	if (l->bits)
		memset(l->bits, 0, dirty_log_words(l->npages) * sizeof(u64));
}

int vm_dirty_start(struct vm *vm)
{
	struct dirty_log *l = &vm->dirty;
	u64 npages = vm->mem_size / PAGE_SIZE;
	u64 bits_pages = (dirty_log_words(npages) * sizeof(u64) + PAGE_SIZE - 1) / PAGE_SIZE;
	/* The blocks, and as much again for the copy a sync with a tap keeps. */
	u64 alloc = bits_pages +
		    (2 * dirty_log_block_words(npages) * sizeof(u64) + PAGE_SIZE - 1) / PAGE_SIZE;
	u64 pa;
	int err;

	if (l->on)
		return -EBUSY;
	if (!vcpu_ops->dirty_start)
		return -EOPNOTSUPP;
	/* Pages still arriving would be mapped untracked: all of them first. */
	err = pager_finish(vm, "dirty tracking");
	if (err)
		return err;
	/* Whole pages (zeroed by the allocator): a 64 GiB guest needs 2 MiB,
	 * and two more pages for its blocks. */
	pa = pmm_alloc_contig(alloc, 1);
	if (!pa)
		return -ENOMEM;
	err = vcpu_ops->dirty_start(vm);
	if (err) {
		pmm_free_contig(pa, alloc);
		return err;
	}
	l->bits = phys_to_virt(pa);
	l->blocks = phys_to_virt(pa + bits_pages * PAGE_SIZE);
	l->npages = npages;
	l->alloc = alloc;
	l->on = true;
	l->epoch = ++dirty_epochs;
	return 0;
}

int vm_dirty_sync(struct vm *vm)
{
	struct dirty_log *l = &vm->dirty;
	u64 bwords = dirty_log_block_words(l->npages), *seen;
	int err;

	if (!l->on)
		return -EINVAL;
	if (!l->tap)
		return vcpu_ops->dirty_harvest(vm, l->bits);
	seen = l->blocks + bwords;
	/* The harvest ORs into the tap the pages of the noted blocks only,
	 * and clears the notes: they are kept first. What the tap held before
	 * is in bits already (the tap's owner never clears bits, and
	 * dirty_log_mark sets both), so ORing the noted blocks' words of the
	 * tap into bits adds exactly the new pages, and a sync follows the
	 * pages written, not RAM, as the harvest does. */
	memcpy(seen, l->blocks, bwords * sizeof(u64));
	err = vcpu_ops->dirty_harvest(vm, l->tap);
	for (u64 w = 0; !err && w < bwords; w++) {
		for (u64 m = seen[w]; m; m &= m - 1) {
			u64 b = w * 64 + (u64)__builtin_ctzll(m);
			u64 first = b * (DIRTY_BLOCK_PAGES / 64);
			u64 end = MIN(first + DIRTY_BLOCK_PAGES / 64, dirty_log_words(l->npages));

			for (u64 i = first; i < end; i++)
				l->bits[i] |= l->tap[i];
		}
	}
	return err;
}

void vm_dirty_stop(struct vm *vm)
{
	struct dirty_log *l = &vm->dirty;

	if (!l->on)
		return;
	vcpu_ops->dirty_stop(vm);
	pmm_free_contig(virt_to_phys(l->bits), l->alloc);
	memset(l, 0, sizeof(*l));
}
