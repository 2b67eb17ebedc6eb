/*
 * Host unit test of fast reset (vmm/fastreset.c) over fakes: the page
 * allocator (2 MiB chunks from the host heap, a free count that can run
 * short), the backend's dirty tracking (the pages its "hardware" saw
 * written), two devices and the vCPU state. Checks that a base is exact, that
 * a reset copies back exactly the logged pages and loads the vCPU and device
 * state, that a base taken while `snap dirty` tracks leaves the tracking to
 * it, that host memory running short refuses with nothing leaked, and that
 * adopting a filled base copies all of RAM.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "kernel/mm.h"
#include "vmm/fastreset.h"
#include "vmm/pager.h"
#include "vmm/vdev.h"
#include "tests/unit/check.h"
#include "tests/unit/fake_dirty.h"

/* ---- fakes ---------------------------------------------------------------- */
static int live_chunks, live_objs, chunk_fail_at = -1;
static u64 free_pages = 1 << 20;

u64 pmm_alloc_2m_uninit(void)
{
	void *p;

	if (chunk_fail_at == 0)
		return 0;
	if (chunk_fail_at > 0)
		chunk_fail_at--;
	p = aligned_alloc(HUGE_PAGE_SIZE, HUGE_PAGE_SIZE);
	memset(p, 0xA5, HUGE_PAGE_SIZE); /* "uninitialised" */
	live_chunks++;
	return (u64)(uintptr_t)p;
}

void pmm_free_2m(u64 pa)
{
	free((void *)(uintptr_t)pa);
	live_chunks--;
}

u64 pmm_free_pages(void) { return free_pages; }

void *kzalloc(size_t size)
{
	live_objs++;
	return calloc(1, size);
}

void *kmalloc(size_t size) { return kzalloc(size); }

void kfree(void *p)
{
	if (p)
		live_objs--;
	free(p);
}

u64 ticks(void) { return 0; }

/* The vCPU's "live" state: its registers and TSC are what the test checks. */
static struct vcpu_state live_vcpu;

int vcpu_get_state(struct vcpu *v, struct vcpu_state *s)
{
	(void)v;
	*s = live_vcpu;
	return 0;
}

int vcpu_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	(void)v;
	live_vcpu = *s;
	return 0;
}

/* Two devices with 16-byte records: their live state is dev_state[i]. */
static u8 dev_state[2][16];
static const struct vdev fake_devs[2] = {
	{ .id = 1, .version = 1, .record_size = 16 },
	{ .id = 2, .version = 1, .record_size = 16 },
};

int vdev_count(void) { return 2; }
const struct vdev *vdev_at(int i) { return &fake_devs[i]; }

int vdev_save(struct vm *vm, const struct vdev *dev, u8 *out)
{
	(void)vm;
	memcpy(out, dev_state[dev - fake_devs], 16);
	return 0;
}

int vdev_load(struct vm *vm, const struct vdev *dev, const u8 *in, u32 len, u32 version,
	      const char **why)
{
	(void)vm;
	(void)why;
	if (len != 16 || version != 1)
		return -EINVAL;
	memcpy(dev_state[dev - fake_devs], in, 16);
	return 0;
}

void *gpa_to_hva(struct vm *vm, u64 gpa, u64 len)
{
	u64 off = gpa & (VM_CHUNK_SIZE - 1);

	if (gpa >= vm->mem_size || len > vm->mem_size - gpa || off + len > VM_CHUNK_SIZE)
		return NULL;
	return (u8 *)phys_to_virt(vm->chunks[gpa / VM_CHUNK_SIZE]) + off;
}

/* ---- the test ---------------------------------------------------------- */
#define MEM (5ULL << 20) /* 1280 pages in three chunks, the last one half used */

static struct vm vm;
static struct vcpu vcpu0;
static u8 *ram_copy;

static u8 *page(u64 p) { return gpa_to_hva(&vm, p * PAGE_SIZE, PAGE_SIZE); }

static void vm_setup(void)
{
	vm.mem_size = MEM;
	vm.nchunks = 3;
	vm.chunks = calloc(3, sizeof(u64));
	for (int i = 0; i < 3; i++) {
		vm.chunks[i] = (u64)(uintptr_t)aligned_alloc(HUGE_PAGE_SIZE, HUGE_PAGE_SIZE);
		for (u64 k = 0; k < HUGE_PAGE_SIZE; k++)
			((u8 *)phys_to_virt(vm.chunks[i]))[k] = (u8)(k * 7 + i);
	}
	vm.nvcpus = 1;
	vm.vcpus[0] = &vcpu0;
	vcpu0.vm = &vm;
	live_vcpu.regs[REG_RBX] = 0x1111;
	live_vcpu.rip = 0x100000;
	live_vcpu.tsc = 5000;
	memset(dev_state, 0x33, sizeof(dev_state));
	ram_copy = malloc(MEM);
	for (u64 p = 0; p < MEM / PAGE_SIZE; p++)
		memcpy(ram_copy + p * PAGE_SIZE, page(p), PAGE_SIZE);
}

static bool ram_is_base(void)
{
	for (u64 p = 0; p < MEM / PAGE_SIZE; p++)
		if (memcmp(ram_copy + p * PAGE_SIZE, page(p), PAGE_SIZE))
			return false;
	return true;
}

/* The guest runs: writes through the "hardware", Amber writes, state moves. */
static void scribble(void)
{
	page(5)[0] ^= 0xFF;
	page(1279)[4095] ^= 0xFF; /* the last page of RAM */
	page(512)[100] ^= 0xFF;	  /* the first of the second chunk */
	fake_write(&vm, 5);
	fake_write(&vm, 1279);
	fake_write(&vm, 512);
	memset(page(700), 0, 64);
	dirty_log_mark(&vm.dirty, 700 * PAGE_SIZE, 64);
	live_vcpu.regs[REG_RBX] = 0xdead;
	live_vcpu.rip = 0x123456;
	live_vcpu.tsc = 99999;
	memset(dev_state, 0x77, sizeof(dev_state));
}

static void test_take_and_reset(void)
{
	CHECK_EQ(fastreset_reset(&vm), -ENOENT);
	CHECK_EQ(fastreset_take(&vm), 0);
	CHECK(vm.base && vm.dirty.on && vm.base->own_log);
	CHECK_EQ(dirty_log_count(&vm.dirty), 0);
	for (int round = 1; round <= 3; round++) {
		scribble();
		CHECK(!ram_is_base());
		CHECK_EQ(fastreset_reset(&vm), 0);
		CHECK(ram_is_base());
		CHECK_EQ(vm.base->pages_last, 4);
		CHECK_EQ(vm.base->resets, round);
		CHECK_EQ(live_vcpu.regs[REG_RBX], 0x1111);
		CHECK_EQ(live_vcpu.rip, 0x100000);
		CHECK_EQ(live_vcpu.tsc, 5000);
		CHECK_EQ(vcpu0.frozen_tsc, 5000);
		CHECK_EQ(dev_state[1][15], 0x33);
		CHECK_EQ(dirty_log_count(&vm.dirty), 0);
	}
	CHECK_EQ(vm.base->pages_total, 12);
	/* A write nobody saw is not put back: only logged pages are copied. */
	page(9)[0] ^= 1;
	CHECK_EQ(fastreset_reset(&vm), 0);
	CHECK_EQ(vm.base->pages_last, 0);
	CHECK(!ram_is_base());
	page(9)[0] ^= 1;
	/* A new base replaces the old one: no second copy stays behind. */
	CHECK_EQ(fastreset_take(&vm), 0);
	CHECK_EQ(live_chunks, 3);
	CHECK_EQ(be.starts, 1);
	fastreset_drop(&vm);
	CHECK(!vm.base && !vm.dirty.on);
	CHECK_EQ(be.stops, 1);
	CHECK_EQ(live_chunks + live_objs + live_pages, 0);
	fastreset_drop(&vm); /* none: nothing */
}

static void test_tracking_already_on(void)
{
	CHECK_EQ(vm_dirty_start(&vm), 0); /* `snap dirty VM start` */
	fake_write(&vm, 77);		  /* dirty before the base: cleared by it */
	CHECK_EQ(fastreset_take(&vm), 0);
	CHECK(!vm.base->own_log);
	CHECK_EQ(dirty_log_count(&vm.dirty), 0);
	scribble();
	CHECK_EQ(fastreset_reset(&vm), 0);
	CHECK(ram_is_base());
	fastreset_drop(&vm);
	CHECK(vm.dirty.on); /* the tracking was not the base's to stop */
	vm_dirty_stop(&vm);
	/* Tracking stopped under a base: the reset refuses. */
	CHECK_EQ(fastreset_take(&vm), 0);
	vm_dirty_stop(&vm);
	CHECK_EQ(fastreset_reset(&vm), -EINVAL);
	vm.base->own_log = false;
	fastreset_drop(&vm);
	CHECK_EQ(live_chunks + live_objs + live_pages, 0);
}

static void test_memory_short(void)
{
	u64 saved = free_pages;

	/* The base needs 6 MiB (3 chunks) beyond the 8 MiB reserve. */
	free_pages = (14ULL << 20) / PAGE_SIZE - 1;
	CHECK_EQ(fastreset_take(&vm), -ENOMEM);
	CHECK(!vm.base && !vm.dirty.on);
	free_pages = (14ULL << 20) / PAGE_SIZE;
	CHECK_EQ(fastreset_free_bytes(), 6ULL << 20);
	chunk_fail_at = 2; /* the third chunk fails */
	CHECK_EQ(fastreset_take(&vm), -ENOMEM);
	CHECK(!vm.base && !vm.dirty.on);
	CHECK_EQ(live_chunks + live_objs + live_pages, 0);
	/* A failing new base loses the old one and its tracking, leaks nothing. */
	chunk_fail_at = -1;
	CHECK_EQ(fastreset_take(&vm), 0);
	chunk_fail_at = 0;
	CHECK_EQ(fastreset_take(&vm), -ENOMEM);
	CHECK(!vm.base && !vm.dirty.on);
	CHECK_EQ(live_chunks + live_objs + live_pages, 0);
	chunk_fail_at = -1;
	free_pages = saved;
}

static void test_adopt(void)
{
	struct fastreset_base *b = fastreset_alloc(&vm);

	CHECK(b != NULL);
	for (u64 p = 0; p < MEM / PAGE_SIZE; p++)
		memset((u8 *)phys_to_virt(b->chunks[p / 512]) + p % 512 * PAGE_SIZE, (int)p,
		       PAGE_SIZE);
	b->vcpu[0]->rip = 0xabc;
	memset(b->devrec, 0x44, 32);
	CHECK_EQ(fastreset_adopt(&vm, b), 0);
	CHECK_EQ(vm.base->pages_last, MEM / PAGE_SIZE);
	CHECK_EQ(vm.base->resets, 0);
	CHECK_EQ(page(1000)[4095], (u8)1000);
	CHECK_EQ(live_vcpu.rip, 0xabc);
	CHECK_EQ(dev_state[0][0], 0x44);
	page(3)[0] = 0;
	fake_write(&vm, 3);
	CHECK_EQ(fastreset_reset(&vm), 0);
	CHECK_EQ(page(3)[0], 3);
	CHECK_EQ(vm.base->pages_last, 1);
	fastreset_drop(&vm);
	CHECK_EQ(live_chunks + live_objs + live_pages, 0);
}

int main(void)
{
	vm_setup();
	test_take_and_reset();
	test_tracking_already_on();
	test_memory_short();
	test_adopt();
	return test_done("fastreset");
}
