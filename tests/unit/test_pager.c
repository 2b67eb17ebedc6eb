/*
 * Host unit test of vmm/pager.c: a VM of 3 MiB whose pages a fake source fills
 * two at a time, a fake backend that records what it maps. Checks the present
 * bits and the mappings, the fault and fill paths, the prefetch up to resident
 * (the source released once, the bitmap freed), a source that fails (the VM
 * stopped, nothing more filled), and that freeing leaves no memory behind.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/mm.h"
#include "kernel/printk.h"
#include "vmm/pager.h"
#include "vmm/vmm_internal.h"
#include "tests/unit/check.h"

#define NPAGES 768 /* 3 MiB: one whole 2 MiB block and a half */

static int live_heap, live_pages;
static u64 now;

void *kzalloc(size_t size)
{
	live_heap++;
	return calloc(1, size);
}

void kfree(void *p)
{
	if (p)
		live_heap--;
	free(p);
}

u64 pmm_alloc_contig(u64 npages, u64 align_pages)
{
	void *p = aligned_alloc(4096, npages * 4096);

	(void)align_pages;
	memset(p, 0, npages * 4096);
	live_pages += (int)npages;
	return (u64)(uintptr_t)p;
}

void pmm_free_contig(u64 pa, u64 npages)
{
	free((void *)(uintptr_t)pa);
	live_pages -= (int)npages;
}

u64 ticks(void) { return now; }
void printk(const char *fmt, ...) { (void)fmt; }

struct vm *vm_table[VM_MAX];
static int stops;

void vm_stop(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm->stop_reason, sizeof(vm->stop_reason), fmt, ap);
	va_end(ap);
	vm->state = VM_STOPPED;
	stops++;
}

/* The fake backend: which pages are mapped. */
static u8 mapped[NPAGES];
static int unmaps, map_err;

static int fake_unmap(struct vm *vm)
{
	(void)vm;
	memset(mapped, 0, sizeof(mapped));
	unmaps++;
	return 0;
}

static int fake_map(struct vm *vm, u64 gpa, u64 size)
{
	(void)vm;
	CHECK_EQ(gpa / (2 << 20), (gpa + size - 1) / (2 << 20)); /* one block */
	if (map_err)
		return map_err;
	for (u64 p = gpa / 4096; p < (gpa + size) / 4096; p++)
		mapped[p]++;
	return 0;
}

static const struct vcpu_ops fake_ops = { .ram_unmap = fake_unmap, .ram_map = fake_map };
const struct vcpu_ops *vcpu_ops = &fake_ops;

/* The fake source: fills pages in pairs (p & ~1, p | 1); page `bad` fails. */
static int releases, fills, next_piece;
static u64 bad = ~0ULL;

static int src_fault(struct vm *vm, u64 page)
{
	u64 first = page & ~1ULL;

	if (page == bad)
		return pager_fail(vm, -EBADMSG, "page %llu is damaged", (unsigned long long)page);
	fills++;
	return pager_filled(vm, first, 2);
}

static int src_prefetch(struct vm *vm)
{
	while (next_piece < NPAGES && pager_present(vm, (u64)next_piece))
		next_piece++;
	if (next_piece >= NPAGES)
		return 1;
	/* 100 pages from there, those already present included. */
	for (int p = next_piece; p < next_piece + 100 && p < NPAGES; p++)
		if (!pager_present(vm, (u64)p) && src_fault(vm, (u64)p))
			return -EIO;
	return 0;
}

static void src_release(struct vm *vm)
{
	CHECK(vm->pager->ctx == &releases);
	releases++;
}

static const struct pager_ops src = { .fault = src_fault,
				      .prefetch = src_prefetch,
				      .release = src_release };

static u64 chunks[2];
static struct vm the_vm;

static struct vm *make_vm(void)
{
	memset(&the_vm, 0, sizeof(the_vm));
	the_vm.id = 1;
	the_vm.mem_size = NPAGES * 4096ULL;
	the_vm.nchunks = 2;
	the_vm.chunks = chunks;
	the_vm.state = VM_RUNNING;
	vm_table[0] = &the_vm;
	releases = fills = next_piece = 0;
	bad = ~0ULL;
	return &the_vm;
}

static void test_fill_to_resident(void)
{
	struct vm *vm = make_vm();
	struct vcpu v = { .vm = vm };
	struct vm_exit e = { .kind = VMEXIT_MEM };

	CHECK_EQ(pager_attach(vm, &src, &releases, "test source"), 0);
	CHECK_EQ(unmaps, 1);
	CHECK(pager_active(vm->pager));
	CHECK(!pager_present(vm, 0));
	CHECK(!pager_present(vm, NPAGES - 1));
	/* A guest access to page 5 fills 4 and 5, maps them, and resumes. */
	e.mem.gpa = 5 * 4096 + 12;
	CHECK_EQ(pager_fault(&v, &e), EXIT_RESUME);
	CHECK(pager_present(vm, 4) && pager_present(vm, 5) && !pager_present(vm, 6));
	CHECK(mapped[4] == 1 && mapped[5] == 1 && mapped[6] == 0);
	CHECK_EQ(vm->pager->faults, 1);
	CHECK_EQ(vm->pager->resident, 2);
	/* Amber's own access across the 2 MiB line fills what is missing. */
	CHECK_EQ(pager_fill_range(vm, 511 * 4096 + 100, 4096), 0);
	CHECK(pager_present(vm, 511) && pager_present(vm, 512));
	CHECK_EQ(vm->pager->host_fills, 2);		   /* pair 510-511, pair 512-513 */
	CHECK_EQ(pager_fill_range(vm, 4 * 4096, 8192), 0); /* there: no fill */
	CHECK_EQ(vm->pager->host_fills, 2);
	/* Idle turns until resident: every page mapped once, the source gone. */
	while (pager_idle(0))
		;
	CHECK(vm->pager->done);
	CHECK(!pager_active(vm->pager));
	CHECK_EQ(releases, 1);
	CHECK(vm->pager->present == NULL);
	CHECK(vm->pager->ops == NULL);
	for (int p = 0; p < NPAGES; p++)
		CHECK_EQ(mapped[p], 1);
	CHECK_EQ(fills, NPAGES / 2);
	CHECK(pager_present(vm, 700));
	CHECK_EQ(pager_fill_range(vm, 0, NPAGES * 4096), 0);
	CHECK_EQ(pager_finish(vm, "test"), 0);
	CHECK_EQ(stops, 0);
	pager_free(vm);
	CHECK(vm->pager == NULL);
	CHECK_EQ(live_heap, 0);
	CHECK_EQ(live_pages, 0);
}

static void test_failure(void)
{
	struct vm *vm = make_vm();
	struct vcpu v = { .vm = vm };
	struct vm_exit e = { .kind = VMEXIT_MEM };

	stops = 0;
	CHECK_EQ(pager_attach(vm, &src, &releases, "test source"), 0);
	bad = 301;
	e.mem.gpa = 301 * 4096;
	CHECK_EQ(pager_fault(&v, &e), EXIT_YIELD);
	CHECK_EQ(stops, 1);
	CHECK_EQ(vm->state, VM_STOPPED);
	CHECK_STR(vm->stop_reason, "page 301 is damaged");
	CHECK(!pager_active(vm->pager));
	CHECK_EQ(releases, 1);
	CHECK(!pager_present(vm, 301));
	CHECK_EQ(mapped[301], 0);
	/* Nothing is filled any more: not for the guest, Amber or the idle. */
	CHECK_EQ(pager_fault(&v, &e), EXIT_YIELD);
	CHECK_EQ(pager_fill_range(vm, 0, 4096), -EIO);
	CHECK(!pager_idle(0));
	CHECK(pager_finish(vm, "test") < 0);
	CHECK_EQ(releases, 1);
	CHECK_EQ(stops, 1);
	pager_free(vm);
	CHECK_EQ(live_heap, 0);
	CHECK_EQ(live_pages, 0);

	/* A failure in the middle of a prefetch, and a VM freed mid-fill. */
	vm = make_vm();
	CHECK_EQ(pager_attach(vm, &src, &releases, "test source"), 0);
	bad = 150;
	CHECK(pager_idle(0));
	CHECK(pager_idle(0)); /* the second piece meets page 150 */
	CHECK(!pager_active(vm->pager));
	CHECK(pager_present(vm, 149) && !pager_present(vm, 150));
	pager_free(vm);
	vm = make_vm();
	CHECK_EQ(pager_attach(vm, &src, &releases, "test source"), 0);
	CHECK(pager_idle(0));
	pager_free(vm);
	CHECK_EQ(releases, 1);
	CHECK_EQ(live_heap, 0);
	CHECK_EQ(live_pages, 0);
}

int main(void)
{
	test_fill_to_resident();
	test_failure();
	return test_done("pager");
}
