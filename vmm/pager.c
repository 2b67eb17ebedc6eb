/*
 * The pager of a VM whose RAM arrives after it starts (vmm/pager.h): which
 * pages are present, the "page missing" hook of the exit path and of Amber's
 * own accesses, the prefetch in the scheduler's idle turns, and the end (all
 * resident, a failed fill, or the VM destroyed). No vendor and no snapshot
 * knowledge: the backend maps (vcpu_ops->ram_map), the source fills.
 * Host context, boot CPU, interrupts off.
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "vmm/pager.h"
#include "vmm/vmm_internal.h"

int pager_attach(struct vm *vm, const struct pager_ops *ops, void *ctx, const char *source)
{
	struct pager *p;
	u64 npages = vm->mem_size / PAGE_SIZE;
	u64 alloc = ALIGN_UP((npages + 63) / 64 * sizeof(u64), PAGE_SIZE) / PAGE_SIZE;
	u64 pa;
	int err;

	if (!vcpu_ops->ram_unmap || !vcpu_ops->ram_map)
		return -EOPNOTSUPP;
	p = kzalloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	pa = pmm_alloc_contig(alloc, 1); /* zeroed: nothing present */
	if (!pa) {
		kfree(p);
		return -ENOMEM;
	}
	p->present = phys_to_virt(pa);
	p->alloc = alloc;
	p->npages = npages;
	p->ops = ops;
	p->ctx = ctx;
	p->started = ticks();
	strlcpy(p->source, source, sizeof(p->source));
	err = vcpu_ops->ram_unmap(vm);
	if (err) {
		pmm_free_contig(pa, alloc);
		kfree(p);
		return err;
	}
	vm->pager = p;
	return 0;
}

/* The source's state goes; the bitmap too once nothing can be missing. */
static void pager_release(struct vm *vm)
{
	struct pager *p = vm->pager;

	if (p->ops)
		p->ops->release(vm);
	p->ops = NULL;
	p->ctx = NULL;
}

void pager_free(struct vm *vm)
{
	struct pager *p = vm->pager;

	if (!p)
		return;
	pager_release(vm);
	if (p->present)
		pmm_free_contig(virt_to_phys(p->present), p->alloc);
	kfree(p);
	vm->pager = NULL;
}

u8 *pager_ram(struct vm *vm, u64 page)
{
	u64 gpa = page * PAGE_SIZE;

	return (u8 *)phys_to_virt(vm->chunks[gpa / VM_CHUNK_SIZE]) + gpa % VM_CHUNK_SIZE;
}

bool pager_present(const struct vm *vm, u64 page)
{
	const struct pager *p = vm->pager;

	return !p || p->done || (page < p->npages && (p->present[page / 64] >> (page % 64)) & 1);
}

/* Every page is there: the bitmap and the source go, the figures stay. */
static void pager_complete(struct vm *vm)
{
	struct pager *p = vm->pager;

	p->done = true;
	p->done_us = ticks() - p->started;
	pager_release(vm);
	pmm_free_contig(virt_to_phys(p->present), p->alloc);
	p->present = NULL;
	printk("[vm%d] memory resident: %llu pages from %s in %llu ms\n"
	       "[vm%d] (%llu guest faults, %llu by Amber, %llu prefetch reads)\n",
	       vm->id, (unsigned long long)p->npages, p->source,
	       (unsigned long long)(p->done_us / 1000), vm->id, (unsigned long long)p->faults,
	       (unsigned long long)p->host_fills, (unsigned long long)p->prefetches);
}

/* Pages [first, first + n) present, a bitmap word at a time; resident
 * counts the ones that were not. */
static void pager_mark(struct pager *p, u64 first, u64 n)
{
	for (u64 i = first, end = first + n; i < end;) {
		u64 bits = MIN(64 - i % 64, end - i);
		u64 mask = (bits == 64 ? ~0ULL : (1ULL << bits) - 1) << (i % 64);
		u64 *w = &p->present[i / 64];

		p->resident += bits;
		for (u64 old = *w & mask; old; old &= old - 1) /* no libgcc popcount */
			p->resident--;
		*w |= mask;
		i += bits;
	}
}

int pager_filled(struct vm *vm, u64 first, u64 count)
{
	struct pager *p = vm->pager;

	while (count) {
		u64 block_end = ALIGN_DOWN(first * PAGE_SIZE, VM_CHUNK_SIZE) + VM_CHUNK_SIZE;
		u64 n = MIN(count, block_end / PAGE_SIZE - first);
		int err = vcpu_ops->ram_map(vm, first * PAGE_SIZE, n * PAGE_SIZE);

		if (err)
			return err;
		pager_mark(p, first, n);
		first += n;
		count -= n;
	}
	return 0;
}

/* After each call into the source (never inside one, where its state is in
 * use): a failed source goes, a complete VM is resident. */
static void pager_settle(struct vm *vm)
{
	struct pager *p = vm->pager;

	if (p->failed)
		pager_release(vm);
	else if (!p->done && p->resident == p->npages)
		pager_complete(vm);
}

int pager_fail(struct vm *vm, int err, const char *fmt, ...)
{
	struct pager *p = vm->pager;
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	p->failed = err ? err : -EIO;
	vm_stop(vm, "%s", why);
	return err;
}

int pager_fault(struct vcpu *v, struct vm_exit *e)
{
	struct vm *vm = v->vm;
	struct pager *p = vm->pager;
	u64 page = e->mem.gpa / PAGE_SIZE;

	if (p->failed)
		return EXIT_YIELD;
	if (pager_present(vm, page))
		return EXIT_RESUME; /* filled by another path since the access */
	p->faults++;
	p->ops->fault(vm, page);
	pager_settle(vm);
	/* A failed fill stopped the VM, the page named. */
	return p->failed ? EXIT_YIELD : EXIT_RESUME;
}

int pager_fill_range(struct vm *vm, u64 gpa, u64 len)
{
	struct pager *p = vm->pager;

	if (!p || p->done || !len)
		return 0;
	for (u64 page = gpa / PAGE_SIZE; page <= (gpa + len - 1) / PAGE_SIZE; page++) {
		if (pager_present(vm, page))
			continue;
		if (p->failed)
			return -EIO;
		p->host_fills++;
		p->ops->fault(vm, page);
		pager_settle(vm);
		if (p->failed || !pager_present(vm, page))
			return -EIO;
	}
	return 0;
}

/* One prefetch piece for the next VM with pages to come; false when none. */
static bool pager_piece(void)
{
	static int cursor;

	for (int i = 1; i <= VM_MAX; i++) {
		struct vm *vm = vm_table[(cursor + i) % VM_MAX];

		if (!vm || !pager_active(vm->pager))
			continue;
		cursor = (cursor + i) % VM_MAX;
		vm->pager->prefetches++;
		vm->pager->ops->prefetch(vm);
		pager_settle(vm);
		return true;
	}
	return false;
}

bool pager_idle(u64 budget_us)
{
	u64 t0 = ticks();

	if (!pager_piece())
		return false;
	budget_us = MIN(budget_us, PAGER_TURN_MAX_US);
	while (ticks() - t0 < budget_us && pager_piece())
		;
	return true;
}

int pager_finish(struct vm *vm, const char *for_what)
{
	struct pager *p = vm->pager;
	int ret = 0;

	if (!p || p->done)
		return 0;
	if (p->failed) {
		printk("error: %s: VM %d lost part of its memory when it was restored\n"
		       "  (%s)\n",
		       for_what, vm->id, vm->stop_reason);
		return -EIO;
	}
	printk("%s: VM %d is still being restored (%llu of %llu pages resident):\n"
	       "  reading the rest first\n",
	       for_what, vm->id, (unsigned long long)p->resident, (unsigned long long)p->npages);
	while (!p->done && !p->failed && ret == 0) {
		p->prefetches++;
		ret = p->ops->prefetch(vm);
		pager_settle(vm);
	}
	if (p->failed) {
		printk("error: %s: VM %d could not be filled: %s\n", for_what, vm->id,
		       vm->stop_reason);
		return p->failed;
	}
	return p->done ? 0 : -EIO;
}

void pager_describe(const struct vm *vm, char *buf, size_t len)
{
	const struct pager *p = vm->pager;

	if (!p) {
		buf[0] = '\0';
	} else if (p->done) {
		snprintf(buf, len,
			 "resident after %llu ms, from %s\n"
			 "        %llu guest faults, %llu by Amber, %llu prefetch reads",
			 (unsigned long long)(p->done_us / 1000), p->source,
			 (unsigned long long)p->faults, (unsigned long long)p->host_fills,
			 (unsigned long long)p->prefetches);
	} else {
		snprintf(buf, len,
			 "%llu%% resident (%llu of %llu pages) from %s%s\n"
			 "        %llu guest faults, %llu by Amber, %llu prefetch reads",
			 (unsigned long long)(p->resident * 100 / p->npages),
			 (unsigned long long)p->resident, (unsigned long long)p->npages, p->source,
			 p->failed ? ", FAILED" : "", (unsigned long long)p->faults,
			 (unsigned long long)p->host_fills, (unsigned long long)p->prefetches);
	}
}
