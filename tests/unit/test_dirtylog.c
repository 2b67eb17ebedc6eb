/*
 * Host unit test of the generic dirty log (vmm/dirtylog.c): marking ranges
 * (page edges, the end of RAM, nothing while off), count, next and clear; and
 * vm_dirty_start/sync/stop over the fake backend (fake_dirty.h): the backend's
 * harvest lands in the log, the blocks it noted are collected and outlive a
 * clear, a second start and a sync while off are refused, a backend that
 * cannot start leaves nothing allocated. "Physical" addresses are host
 * pointers here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "kernel/mm.h"
#include "vmm/vmm.h"
#include "tests/unit/check.h"
#include "tests/unit/fake_dirty.h"

static void test_marks(void)
{
	u64 bits[3] = { 0 };
	struct dirty_log l = { .bits = bits, .npages = 130 };

	dirty_log_mark(&l, 0, 4096); /* off: nothing */
	CHECK_EQ(dirty_log_count(&l), 0);
	l.on = true;
	dirty_log_mark(&l, 4095, 2); /* straddles pages 0 and 1 */
	CHECK(dirty_log_test(&l, 0) && dirty_log_test(&l, 1) && !dirty_log_test(&l, 2));
	dirty_log_mark(&l, 63 * 4096 + 5, 4096); /* pages 63 and 64: two words */
	CHECK(dirty_log_test(&l, 63) && dirty_log_test(&l, 64) && !dirty_log_test(&l, 65));
	dirty_log_mark(&l, 129 * 4096, 1ULL << 40); /* clipped at the end of RAM */
	CHECK(dirty_log_test(&l, 129));
	CHECK_EQ(bits[2] >> 2, 0);
	dirty_log_mark(&l, 130 * 4096, 4096); /* past RAM: nothing */
	dirty_log_mark(&l, ~0ULL - 10, 100);
	dirty_log_mark(&l, 70 * 4096, 0);
	CHECK_EQ(dirty_log_count(&l), 5);
	CHECK(!dirty_log_test(&l, 130) && !dirty_log_test(&l, 1000));
	CHECK_EQ(dirty_log_next(&l, 0), 0);
	CHECK_EQ(dirty_log_next(&l, 2), 63);
	CHECK_EQ(dirty_log_next(&l, 65), 129);
	CHECK_EQ(dirty_log_next(&l, 130), 130);
	dirty_log_clear(&l);
	CHECK_EQ(dirty_log_count(&l), 0);
	CHECK_EQ(dirty_log_next(&l, 0), 130);
}

static void test_vm(void)
{
	static struct vm vm;

	vm.mem_size = 32ULL << 20;
	CHECK_EQ(vm_dirty_sync(&vm), -EINVAL); /* off */
	vm_dirty_stop(&vm);		       /* off: nothing to do */
	CHECK_EQ(be.stops, 0);

	be.start_err = -EOPNOTSUPP;
	CHECK_EQ(vm_dirty_start(&vm), -EOPNOTSUPP);
	CHECK(!vm.dirty.on && !vm.dirty.bits);
	CHECK_EQ(live_pages, 0);
	be.start_err = 0;

	CHECK_EQ(vm_dirty_start(&vm), 0);
	CHECK(vm.dirty.on);
	CHECK_EQ(vm.dirty.npages, 8192);
	CHECK_EQ(live_pages, 2); /* 8192 bits: one page, and one for the blocks */
	CHECK_EQ(vm_dirty_start(&vm), -EBUSY);
	CHECK_EQ(be.starts, 2);

	/* Amber's own write and the guest's, seen by the "hardware". */
	dirty_log_mark(&vm.dirty, 0x5000, 8);
	fake_write(&vm, 0x1fff);
	fake_write(&vm, 0x300);
	CHECK_EQ(vm.dirty.blocks[0], BIT(1) | BIT(15)); /* pages 768 and 8191 */
	CHECK_EQ(dirty_log_count(&vm.dirty), 1);
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK_EQ(dirty_log_count(&vm.dirty), 3);
	CHECK(dirty_log_test(&vm.dirty, 5) && dirty_log_test(&vm.dirty, 0x300) &&
	      dirty_log_test(&vm.dirty, 0x1fff));
	CHECK_EQ(vm.dirty.blocks[0], 0); /* collected */
	dirty_log_clear(&vm.dirty);
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK_EQ(dirty_log_count(&vm.dirty), 0);
	/* A write noted, then the log cleared before a sync: the note stays
	 * for the harvest, the page is reported. */
	fake_write(&vm, 0x42);
	dirty_log_clear(&vm.dirty);
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK(dirty_log_test(&vm.dirty, 0x42));
	dirty_log_clear(&vm.dirty);
	/* Notes past RAM are dropped. */
	dirty_log_note(&vm.dirty, vm.mem_size);
	dirty_log_note(&vm.dirty, ~0ULL);
	CHECK_EQ(vm.dirty.blocks[0], 0);

	vm_dirty_stop(&vm);
	CHECK_EQ(be.stops, 1);
	CHECK(!vm.dirty.on && !vm.dirty.bits);
	CHECK_EQ(live_pages, 0);
	dirty_log_mark(&vm.dirty, 0x5000, 8); /* off again: harmless */

	/* 64 GiB of RAM: 16 Mi pages, a 2 MiB bitmap. */
	vm.mem_size = 64ULL << 30;
	CHECK_EQ(vm_dirty_start(&vm), 0);
	CHECK_EQ(live_pages, 514); /* and 32 Ki blocks: 4 KiB, twice */
	dirty_log_mark(&vm.dirty, vm.mem_size - 1, 1);
	fake_write(&vm, vm.mem_size / PAGE_SIZE - 1);
	CHECK_EQ(vm.dirty.blocks[511], BIT(63));
	CHECK_EQ(dirty_log_next(&vm.dirty, 0), (64ULL << 30) / PAGE_SIZE - 1);
	vm_dirty_stop(&vm);
	CHECK_EQ(live_pages, 0);
}

/* A live save's tap (vmm/dirtylog.h): it sees Amber's writes and each
 * harvest's; clearing it loses nothing from the log, and the log's own
 * owner clearing the log leaves the tap as it was. */
static void test_tap(void)
{
	static struct vm vm;
	static u64 tap[2];

	vm.mem_size = 128ULL << 12; /* 128 pages: two words */
	CHECK_EQ(vm_dirty_start(&vm), 0);
	dirty_log_mark(&vm.dirty, 0x1000, 4); /* before the tap: the log's only */
	vm.dirty.tap = tap;
	dirty_log_mark(&vm.dirty, 0x2000, 4);
	fake_write(&vm, 100);
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK_EQ(tap[0], 1ULL << 2);
	CHECK_EQ(tap[1], 1ULL << 36);
	CHECK_EQ(dirty_log_count(&vm.dirty), 3);
	memset(tap, 0, sizeof(tap)); /* the tap's owner moves on */
	fake_write(&vm, 7);
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK_EQ(tap[0], 1ULL << 7);
	CHECK_EQ(tap[1], 0);
	CHECK_EQ(dirty_log_count(&vm.dirty), 4); /* pages 1, 2, 7, 100 */
	dirty_log_clear(&vm.dirty);
	CHECK_EQ(tap[0], 1ULL << 7);
	vm.dirty.tap = NULL;
	vm_dirty_stop(&vm);
	CHECK_EQ(live_pages, 0);
}

/* A sync with a tap follows the 2 MiB blocks the backend noted, as the
 * harvest does, not all of RAM: a probe bit put in the tap of a block
 * nobody wrote (never so in use: the tap holds nothing bits lacks) stays
 * out of the log, while the pages of the noted blocks come in. A sync that
 * went over every word of the tap would carry the probe over. */
static void test_tap_follows_blocks(void)
{
	static struct vm vm;
	static u64 tap[4 * DIRTY_BLOCK_PAGES / 64];

	vm.mem_size = 4ULL * DIRTY_BLOCK_PAGES * PAGE_SIZE; /* 8 MiB: four blocks */
	CHECK_EQ(vm_dirty_start(&vm), 0);
	vm.dirty.tap = tap;
	tap[(2 * DIRTY_BLOCK_PAGES + 5) / 64] |= 1ULL << 5;	     /* the probe: block 2 */
	fake_write(&vm, 3);					     /* block 0 */
	fake_write(&vm, 3 * DIRTY_BLOCK_PAGES + 511);		     /* block 3's last page */
	dirty_log_mark(&vm.dirty, DIRTY_BLOCK_PAGES * PAGE_SIZE, 1); /* block 1 */
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK(dirty_log_test(&vm.dirty, 3));
	CHECK(dirty_log_test(&vm.dirty, 3 * DIRTY_BLOCK_PAGES + 511));
	CHECK(dirty_log_test(&vm.dirty, DIRTY_BLOCK_PAGES));
	CHECK(!dirty_log_test(&vm.dirty, 2 * DIRTY_BLOCK_PAGES + 5));
	CHECK_EQ(dirty_log_count(&vm.dirty), 3);
	/* The notes were taken: a sync with no new write adds nothing. */
	tap[0] |= 1ULL << 9;
	CHECK_EQ(vm_dirty_sync(&vm), 0);
	CHECK(!dirty_log_test(&vm.dirty, 9));
	vm.dirty.tap = NULL;
	vm_dirty_stop(&vm);
	CHECK_EQ(live_pages, 0);
}

int main(void)
{
	test_marks();
	test_vm();
	test_tap();
	test_tap_follows_blocks();
	return test_done("dirtylog");
}
