/*
 * `snap save VM NAME --live`: the VM runs on while its memory is written, by
 * pre-copy. The page data is laid out once (the pages not zero when it
 * starts) and written in rounds, each of the pages the dirty log says were
 * written since the previous one, the guest running between two disk writes;
 * then the VM is paused for a last pass over the pages written since, its
 * vCPU and device state, the image's metadata and the commit. Why pre-copy
 * and not copy-on-write: docs/snapshot-format.md "Live save". With --parent
 * the image is a child: its pages are those changed since the parent, a set
 * that grows as the guest writes pages the parent held. Host context (the
 * shell); the guest runs only in the vmm_idle() turns given here.
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "snapshot/save.h"
#include "snapshot/snap.h"
#include "vmm/vmm.h"

#define LIVE_TURN_US 10000     /* the save's own work between two guest turns */
#define LIVE_WRITE_PAGES 256   /* 1 MiB: the most one write request carries */
#define LIVE_FLUSH_PAGES 16384 /* 64 MiB written: a flush while the guest runs */
#define LIVE_SCAN_STEP 256     /* pages looked at between two looks at the clock */
#define LIVE_SOFT_ROUNDS 8     /* after these rounds the guest's turns thin out faster */
#define LIVE_MAX_ROUNDS 16     /* rounds while the guest runs, the first included */
#define LIVE_FINAL_PAGES 256   /* a dirty set this small (1 MiB) goes in the final pass */
#define LIVE_SOFT_BUDGET 3     /* as the soft rounds: 3 times the page data written */
#define LIVE_BUDGET 6	       /* all rounds write at most 6 times the page data */
#define LIVE_LAYOUTS 2	       /* lay out again once when the guest fills zero pages */
#define LIVE_THROTTLE_MAX 5    /* at most, the guest waits 32 x LIVE_TURN_US for a turn */
#define LIVE_STAGE (256 * 1024)

/* The one live save in progress (the shell runs one command at a time). */
static struct {
	struct vm *vm;
	struct snap_region *r; /* save_img->region[0]: bitmap fixed, CRCs kept */
	/* A child (--parent): its record, and the pages it must hold (those
	 * changed since the parent), which grows during the save. */
	const struct snap_parent *parent;
	u64 *set;
	u64 first_new; /* the lowest page added to set since the last layout */
	u64 grown;     /* pages added to set during the save */
	u64 words;     /* of the page bitmaps */
	u64 *tap;      /* the dirty log's tap: pages written since the last look */
	u64 *rank;     /* stored pages before bitmap word w */
	u32 *first;    /* chunk c's first page */
	u64 *todo;     /* chunk c is to be written (CRC and pages) */
	u64 nchunks;
	struct save_io io;
	u64 data_block; /* the extent's block of the first stored page */
	u64 total_size; /* the layout the page data was written for */
	u64 data_pos;
	struct snap_progress pr;
	u64 done, work; /* bytes for the bar */
	/* What it did, for the summary. */
	u32 rounds, layouts, throttle;
	u64 round_pages[LIVE_MAX_ROUNDS];
	u64 rewritten, last_dirty, final_pages;
	u64 unflushed;	 /* pages written since the last flush */
	u64 turn_mark;	 /* when the guest last had a turn (or the save began) */
	u64 longest_gap; /* the longest time the guest waited for a turn */
	bool started;	 /* this save started the dirty log */
	bool kept_up;	 /* the rounds converged, unthrottled */
	bool limited;	 /* a limit (rounds, bytes) ended the rounds */
} lv;

static bool bit(const u64 *bm, u64 i) { return (bm[i / 64] >> (i % 64)) & 1; }

/* The first set bit at or after i in the n bits of bm, or n. */
static u64 next_bit(const u64 *bm, u64 n, u64 i)
{
	while (i < n) {
		u64 w = bm[i / 64] >> (i % 64);

		if (w)
			return MIN(i + (u64)__builtin_ctzll(w), n);
		i = (i / 64 + 1) * 64;
	}
	return n;
}

static u8 *hva(u64 page) { return gpa_to_hva(lv.vm, page * PAGE_SIZE, PAGE_SIZE); }

/* The guest's share of the CPU: a vmm_idle() turn (a slice; every VM's
 * vCPUs take theirs round robin) after each LIVE_TURN_US of the save's own
 * work, about half the CPU, or after 2^throttle times that once throttled.
 * Measured in time, not bytes: a slow disk gives the guest as much time per
 * MiB written as the disk takes, as the guest would have beside a disk doing
 * DMA. Returns whether the turn was due (the caller's moment for the bar,
 * Ctrl-C and a flush). */
static bool guest_turn_due(void)
{
	return ticks() - lv.turn_mark >= (u64)LIVE_TURN_US << lv.throttle;
}

/* The turn itself, skipped when every vCPU of this VM sleeps until a later
 * wake time. */
static void guest_turn(void)
{
	u64 now = ticks();
	bool wants = false;

	lv.longest_gap = MAX(lv.longest_gap, now - lv.turn_mark);
	for (int i = 0; i < lv.vm->nvcpus && lv.vm->state == VM_RUNNING; i++) {
		struct vcpu *v = lv.vm->vcpus[i];

		wants |= !v->halted || v->kicked || now >= v->wake_at;
	}
	if (wants)
		vmm_idle();
	lv.turn_mark = ticks();
}

/* ---- the layout ------------------------------------------------------------- */
/* Where each stored page of the bitmap goes: ranks per word, chunks' first
 * pages. */
static void index_layout(void)
{
	struct snap_region *r = lv.r;

	lv.nchunks = snap_crc_count(r->stored, r->pages_per_crc);
	for (u64 w = 0, n = 0; w < lv.words; w++) {
		lv.rank[w] = n;
		for (u64 b = r->bitmap[w]; b; b &= b - 1, n++)
			if (n % r->pages_per_crc == 0)
				lv.first[n / r->pages_per_crc] = (u32)(w * 64 + __builtin_ctzll(b));
	}
}

/* A child's bitmap: the pages of lv.set, zero or not (a DELTA stores the
 * pages changed since the parent, docs/snapshot-format.md 1.12). */
static void child_layout(void)
{
	struct snap_region *r = lv.r;

	r->stored = 0;
	for (u64 w = 0; w < lv.words; w++) {
		u64 b = lv.set[w];

		if (w == lv.words - 1 && r->pages % 64)
			b &= (1ULL << (r->pages % 64)) - 1;
		r->bitmap[w] = b;
		r->stored += snap_popcount64(b);
	}
	index_layout();
	lv.first_new = r->pages;
}

/* The bitmap of the pages not zero now, the guest running between steps
 * (the tap sees what it writes meanwhile). */
static int scan_layout(void)
{
	struct snap_region *r = lv.r;
	int ret;

	memset(r->bitmap, 0, lv.words * 8);
	r->stored = 0;
	for (u64 i = 0; i < r->pages; i++) {
		const u8 *p = hva(i);

		if (!p)
			return -EFAULT;
		if (i % LIVE_SCAN_STEP == 0 && i && guest_turn_due()) {
			ret = snap_progress(&lv.pr, lv.done + i * PAGE_SIZE, lv.work);
			if (ret)
				return ret;
			guest_turn();
		}
		if (snap_page_is_zero(p))
			continue;
		r->bitmap[i / 64] |= 1ULL << (i % 64);
		r->stored++;
	}
	index_layout();
	return 0;
}

/* Stored page number (rank) of page pg, which the bitmap holds. */
static u64 stored_index(u64 pg)
{
	u64 below = lv.r->bitmap[pg / 64] & ((1ULL << (pg % 64)) - 1);

	return lv.rank[pg / 64] + snap_popcount64(below);
}

/* ---- writing chunks ----------------------------------------------------------- */
/* Chunks [c, e), consecutive: their CRCs from RAM now, then their pages into
 * their place (consecutive on disk), in writes of pages contiguous in host
 * memory. The guest does not run in between, so the CRCs and the disk hold
 * the same bytes. */
static int write_chunks(u64 c, u64 e)
{
	struct snap_region *r = lv.r;
	u64 n0 = c * r->pages_per_crc, n1 = MIN(e * r->pages_per_crc, r->stored);
	u64 pg = lv.first[c];
	int ret;

	for (u64 k = c; k < e; k++) {
		u64 m1 = MIN((k + 1) * r->pages_per_crc, r->stored);
		u32 crc = 0;

		pg = lv.first[k];
		for (u64 n = k * r->pages_per_crc; n < m1;
		     n++, pg = next_bit(r->bitmap, r->pages, pg + 1))
			crc = crc32c(crc, hva(pg), PAGE_SIZE);
		r->crc[k] = crc;
	}
	pg = lv.first[c];
	for (u64 n = n0; n < n1;) {
		u8 *start = hva(pg);
		u64 k = 1, last = pg;

		for (; n + k < n1 && k < LIVE_WRITE_PAGES; k++) {
			u64 q = next_bit(r->bitmap, r->pages, last + 1);

			if (hva(q) != start + k * PAGE_SIZE)
				break;
			last = q;
		}
		ret = snap_store_write(&snap_store, lv.io.start + lv.data_block + n, k, start);
		if (ret)
			return ret;
		lv.io.bytes += k * PAGE_SIZE;
		lv.unflushed += k;
		n += k;
		pg = next_bit(r->bitmap, r->pages, last + 1);
	}
	return 0;
}

/* A flush while the guest runs: what the rounds wrote becomes durable in
 * pieces, so that the flush inside the freeze covers only the last pass
 * (a disk's cache, or the host's under an emulator, may hold the whole
 * image otherwise). */
static int flush_now(void)
{
	int ret = blkdev_flush(snap_store.dev);

	lv.unflushed = 0;
	return ret;
}

/* Writes every chunk marked in todo and clears it; running: the guest takes
 * its turns, a flush follows each LIVE_FLUSH_PAGES pages, and Ctrl-C is
 * looked at. */
static int write_round(bool running, u64 *pages)
{
	u64 since = 0, c = next_bit(lv.todo, lv.nchunks, 0);
	int ret;

	*pages = 0;
	while (c < lv.nchunks) {
		u64 e = c + 1, n;

		while (e < lv.nchunks && bit(lv.todo, e) && e - c < LIVE_WRITE_PAGES / 16)
			e++;
		ret = write_chunks(c, e);
		if (ret)
			return ret;
		n = MIN(e * lv.r->pages_per_crc, lv.r->stored) - c * lv.r->pages_per_crc;
		for (u64 k = c; k < e; k++)
			lv.todo[k / 64] &= ~(1ULL << (k % 64));
		*pages += n;
		since += n;
		c = next_bit(lv.todo, lv.nchunks, e);
		if (!running || !guest_turn_due())
			continue;
		lv.done += since * PAGE_SIZE;
		since = 0;
		if (lv.unflushed >= LIVE_FLUSH_PAGES) {
			ret = flush_now();
			if (ret)
				return ret;
		}
		ret = snap_progress(&lv.pr, lv.done, lv.work);
		if (ret)
			return ret;
		guest_turn();
	}
	lv.done += since * PAGE_SIZE;
	return 0;
}

/* Syncs the dirty log and moves the tap's pages into todo (their chunks);
 * returns the pages found, *misses those outside the layout (a child's go
 * into its set, for the next layout). */
static u64 collect(u64 *misses)
{
	u64 found = 0;

	*misses = 0;
	vm_dirty_sync(lv.vm);
	for (u64 pg = next_bit(lv.tap, lv.r->pages, 0); pg < lv.r->pages;
	     pg = next_bit(lv.tap, lv.r->pages, pg + 1)) {
		u64 c;

		if (!bit(lv.r->bitmap, pg)) {
			(*misses)++;
			if (lv.parent && !bit(lv.set, pg)) {
				lv.set[pg / 64] |= 1ULL << (pg % 64);
				lv.first_new = MIN(lv.first_new, pg);
				lv.grown++;
			}
			continue;
		}
		c = stored_index(pg) / lv.r->pages_per_crc;
		lv.todo[c / 64] |= 1ULL << (c % 64);
		found++;
	}
	memset(lv.tap, 0, lv.words * 8);
	return found;
}

/* Pages of the chunks marked in todo: what the next round writes. */
static u64 todo_pages(void)
{
	u64 n = 0;

	for (u64 c = next_bit(lv.todo, lv.nchunks, 0); c < lv.nchunks;
	     c = next_bit(lv.todo, lv.nchunks, c + 1))
		n += MIN((c + 1) * lv.r->pages_per_crc, lv.r->stored) - c * lv.r->pages_per_crc;
	return n;
}

/* A child's room on the disk for the layout now: the extent it has while
 * the image still fits there with its pages where they were (*moved false),
 * else a new one, asked a quarter larger than the image (the pages the guest
 * writes during the save make a child grow; the catalog takes only the
 * image's own size, so the rest stays free). */
static int child_place(int index, bool *moved)
{
	u64 total = snap_image_layout(save_img), extra = ALIGN_UP(total / 4, SNAP_BLOCK), at;
	u64 bytes = lv.io.bytes;
	int ret;

	*moved = !lv.io.blocks || total > lv.io.blocks * SNAP_BLOCK ||
		 lv.r->data_pos != lv.data_pos;
	if (*moved && total && !snap_store_alloc(&snap_store, total + extra, &at)) {
		lv.io.start = at;
		lv.io.blocks = (total + extra) / SNAP_BLOCK;
	} else if (*moved) {
		/* save_extent says why it fails: the bar's line ends first. */
		if (!total || snap_store_alloc(&snap_store, total, &at))
			snap_progress_done(&lv.pr);
		ret = save_extent(lv.vm, index, total, &lv.io);
		if (ret)
			return ret;
	}
	lv.io.bytes = bytes; /* everything this save handed to the disk */
	lv.total_size = total;
	lv.data_pos = lv.r->data_pos;
	lv.data_block = lv.data_pos / SNAP_BLOCK;
	return 0;
}

/* A child's set grew (collect): laid out again. The chunks before the first
 * new page keep their pages, places and CRCs; every one from there on is to
 * be written (all of them when the image moved). */
static int child_grow(int index)
{
	u64 first = lv.first_new, c0 = 0;
	bool moved;
	int ret;

	child_layout();
	ret = child_place(index, &moved);
	if (ret)
		return ret;
	if (!moved && first < lv.r->pages)
		c0 = stored_index(first) / lv.r->pages_per_crc;
	for (u64 c = c0; c < lv.nchunks; c++)
		lv.todo[c / 64] |= 1ULL << (c % 64);
	lv.layouts++;
	return 0;
}

/* ---- the save ----------------------------------------------------------------- */
/* Ends the bar, says why the save stopped (Ctrl-C: cancelled); returns ret. */
static int fail(int ret)
{
	snap_progress_done(&lv.pr);
	if (ret == -EFAULT)
		return shell_error(ret, "VM %d's memory is not all mapped; nothing was committed",
				   lv.vm->id);
	return save_write_failed(ret);
}

/* Lays the image out and writes its page data in rounds while the guest
 * runs. 0: converged or a limit was reached, todo holds what the final pass
 * writes; -EAGAIN: the guest keeps filling pages that were zero. A child
 * never lays out from scratch again: a page the guest writes that its set
 * lacked joins it (child_grow) and the rounds go on. */
static int precopy(const char *name, int index)
{
	u64 misses, dirty, due, at;
	bool moved;
	int ret;

	for (lv.layouts = 1;; lv.layouts++) {
		if (lv.parent) {
			child_layout();
			lv.done = 0;
			ret = child_place(index, &moved);
			if (ret)
				return ret;
		} else {
			ret = scan_layout();
			if (ret)
				return fail(ret);
			lv.done = lv.layouts * lv.r->pages * PAGE_SIZE;
			lv.total_size = snap_image_layout(save_img);
			lv.data_pos = lv.r->data_pos;
			/* save_extent says why it fails: the bar's line ends first. */
			if (!lv.total_size || snap_store_alloc(&snap_store, lv.total_size, &at))
				snap_progress_done(&lv.pr);
			ret = save_extent(lv.vm, index, lv.total_size, &lv.io);
			if (ret)
				return ret;
			lv.data_block = lv.data_pos / SNAP_BLOCK;
		}
		lv.work = lv.done + lv.r->stored * PAGE_SIZE;
		memset(lv.todo, 0, snap_bitmap_words(lv.r->pages) * 8);
		for (u64 c = 0; c < lv.nchunks; c++)
			lv.todo[c / 64] |= 1ULL << (c % 64);
		lv.rounds = 0;
		lv.rewritten = 0;
		lv.throttle = 0;
		lv.limited = false;
		for (;;) {
			u64 pages;

			ret = write_round(true, &pages);
			if (ret)
				return fail(ret);
			if (lv.rounds < LIVE_MAX_ROUNDS)
				lv.round_pages[lv.rounds] = pages;
			lv.rounds++;
			if (lv.rounds > 1)
				lv.rewritten += pages;
			dirty = collect(&misses);
			lv.last_dirty = dirty;
			if (misses && !lv.parent)
				break; /* a new layout, or the final pass falls back */
			if (misses) {
				ret = child_grow(index);
				if (ret)
					return ret;
			}
			/* A child's new pages move the chunks after them: what the
			 * next round writes is todo, not only what was written. */
			due = lv.parent ? todo_pages() : dirty;
			if (due <= LIVE_FINAL_PAGES) {
				lv.kept_up = !lv.throttle;
				return 0;
			}
			if (lv.rounds >= LIVE_MAX_ROUNDS ||
			    lv.rewritten + due > LIVE_BUDGET * lv.r->stored) {
				lv.kept_up = false;
				lv.limited = true;
				return 0;
			}
			/* Not shrinking by half: the guest's turns become rarer
			 * (half as often each time), and twice as fast past the
			 * soft limits, so that the rounds converge and the last
			 * pass stays short (QEMU's auto-converge does the same). */
			if (due * 2 > pages)
				lv.throttle++;
			if (lv.rounds >= LIVE_SOFT_ROUNDS ||
			    lv.rewritten + due > LIVE_SOFT_BUDGET * lv.r->stored)
				lv.throttle++;
			lv.throttle = MIN(lv.throttle, LIVE_THROTTLE_MAX);
			lv.work = lv.done + due * PAGE_SIZE;
		}
		if (lv.layouts >= LIVE_LAYOUTS)
			return -EAGAIN;
		printk("snap save: VM %d filled %llu zero pages while '%s' was written;\n"
		       "  laying the image out again\n",
		       lv.vm->id, (unsigned long long)misses, name);
	}
}

/* The final pass, the VM paused: vCPU and device state, the layout checked
 * against the one written for (a child's grown by the pages written since the
 * last round), the pages written since the last round, the metadata, the
 * commit. -EAGAIN: the layout no longer fits (the plain save follows). */
static int final_pass(const char *name, int index, int old, enum vm_state was,
		      struct save_stats *st, u64 *pass_us)
{
	struct snap_region keep = *lv.r;
	struct snap_sink sink = { .write = save_write, .ctx = &lv.io, .stage_size = LIVE_STAGE };
	u64 misses, t0 = ticks();
	int ret;

	collect(&misses);
	ret = save_capture_state(lv.vm, was, name);
	save_img->nregions = 1;
	save_img->region[0] = keep; /* capture cleared it; lv.r points there */
	save_img->parent = lv.parent;
	if (ret)
		return ret;
	if (misses && lv.parent) {
		ret = child_grow(index);
		if (ret)
			return ret;
	} else if (misses) {
		return -EAGAIN;
	}
	if (snap_image_layout(save_img) != lv.total_size || lv.r->data_pos != lv.data_pos)
		return -EAGAIN;
	ret = write_round(false, &lv.final_pages);
	if (ret)
		return save_write_failed(ret);
	*pass_us = ticks() - t0;
	sink.stage = snap_mem_alloc(LIVE_STAGE);
	if (!sink.stage)
		return save_write_failed(-ENOMEM);
	save_img->data_in_place = true;
	t0 = ticks();
	ret = snap_image_write(save_img, &sink, snap_guest_page, lv.vm);
	st->write_us = ticks() - t0;
	snap_mem_free(sink.stage, LIVE_STAGE);
	if (ret)
		return save_write_failed(ret);
	st->bytes = lv.io.bytes;
	return save_commit(lv.vm, name, old, &lv.io, st);
}

static void live_free(void)
{
	u64 words = lv.words;

	if (lv.vm && lv.vm->dirty.tap == lv.tap)
		lv.vm->dirty.tap = NULL;
	snap_mem_free(lv.tap, words * 8);
	snap_mem_free(lv.rank, words * 8);
	snap_mem_free(lv.todo, words * 8);
	snap_mem_free(lv.first, words * 64 * 4 / SNAP_PAGES_PER_CRC + 4);
	if (lv.vm)
		snap_incr_free(lv.vm, lv.set);
	lv.set = NULL;
	lv.tap = lv.rank = lv.todo = NULL;
	lv.first = NULL;
}

static void live_json(struct json *j, const void *ctx)
{
	const u64 *total_us = ctx;

	json_u64(j, "live", 1);
	json_u64(j, "total_us", *total_us);
	json_u64(j, "rounds", lv.rounds);
	json_u64(j, "layouts", lv.layouts);
	json_u64(j, "rewritten_pages", lv.rewritten);
	json_u64(j, "final_pages", lv.final_pages);
	if (lv.parent)
		json_u64(j, "grown_pages", lv.grown);
	json_u64(j, "kept_up", lv.kept_up);
	json_u64(j, "limited", lv.limited);
	json_u64(j, "throttle", lv.throttle);
	json_u64(j, "longest_wait_us", lv.longest_gap);
}

static void summary(const char *name, int index, const struct save_stats *st, u64 total, u64 frozen,
		    u64 pass_us)
{
	struct vm *vm = lv.vm;
	char img[32], mem[32], rate[32];

	format_size(img, sizeof(img), save_img->hdr.total_size);
	format_size(mem, sizeof(mem), vm->mem_size);
	snap_print_rate(rate, sizeof(rate), st->bytes, total);
	ctl_summary_next();
	/* A guest that exited or was stopped during the save stays so. */
	printk("saved VM %d as '%s' live in %llu ms, frozen %llu ms, %s\n", vm->id, name,
	       (unsigned long long)(total / 1000), (unsigned long long)(frozen / 1000),
	       vm->state == VM_RUNNING ? "running again" : vm_state_name(vm->state));
	printk("  image:   %s on disk %d (%s)\n", img, index, snap_store.dev->name);
	printk("  memory:  %s, %llu of %llu pages stored (%s)\n", mem,
	       (unsigned long long)lv.r->stored, (unsigned long long)save_img->hdr.memory_pages,
	       lv.parent ? "changed since the parent" : "zero pages left out");
	format_size(img, sizeof(img), st->bytes);
	printk("  written: %s (%llu bytes) in %llu commands at %s, flushed\n", img,
	       (unsigned long long)st->bytes, (unsigned long long)st->cmds, rate);
	printk("  frozen:  %llu ms (last pass %llu ms, metadata %llu ms, commit %llu ms)\n",
	       (unsigned long long)(frozen / 1000), (unsigned long long)(pass_us / 1000),
	       (unsigned long long)(st->write_us / 1000),
	       (unsigned long long)(st->commit_us / 1000));
	printk("  live:    %u round%s while it ran (%llu pages, then %llu rewritten);\n"
	       "           last pass %llu pages, frozen; the guest's longest wait %llu ms\n",
	       lv.rounds, lv.rounds == 1 ? "" : "s", (unsigned long long)lv.round_pages[0],
	       (unsigned long long)lv.rewritten, (unsigned long long)lv.final_pages,
	       (unsigned long long)(lv.longest_gap / 1000));
	if (lv.parent) {
		printk("  parent:  '%s', a chain of %u images now\n", lv.parent->name,
		       lv.parent->depth + 1);
		printk("           %llu pages changed, found %s;\n"
		       "           %llu of them first written during the save\n",
		       (unsigned long long)lv.r->stored,
		       lv.parent->source == SNAP_DELTA_LOG ? "in the dirty log" :
							     "by comparison with the parent",
		       (unsigned long long)lv.grown);
	}
	if (lv.kept_up)
		return;
	if (lv.throttle)
		printk("  WARNING: could not keep up: the guest wrote pages faster than the disk\n"
		       "           took them; it was given a turn every %u ms to finish, not\n"
		       "           every %u%s\n",
		       (LIVE_TURN_US << lv.throttle) / 1000, LIVE_TURN_US / 1000,
		       lv.limited ? "," : "");
	else
		printk("  WARNING: could not keep up: the guest wrote pages faster than the disk\n"
		       "           took them,\n");
	if (lv.limited)
		printk("           and the rounds reached their limit (%u rounds, or %dx the\n"
		       "           page data): the last pass wrote %llu pages frozen\n",
		       LIVE_MAX_ROUNDS, LIVE_BUDGET, (unsigned long long)lv.final_pages);
}

int snap_save_live(struct vm *vm, const char *name, int index, int old, struct snap_parent *parent)
{
	struct save_stats st = { 0 };
	enum vm_state was;
	u64 t0 = ticks(), c0 = snap_store.dev->commands, tf = 0, frozen = 0, pass_us = 0, total;
	u64 pages = vm->mem_size / PAGE_SIZE;
	bool paused = false;
	int ret;

	memset(&lv, 0, sizeof(lv));
	lv.vm = vm;
	lv.turn_mark = t0;
	lv.words = snap_bitmap_words(pages);
	lv.tap = snap_mem_alloc(lv.words * 8);
	lv.rank = snap_mem_alloc(lv.words * 8);
	lv.todo = snap_mem_alloc(lv.words * 8);
	lv.first = snap_mem_alloc(lv.words * 64 * 4 / SNAP_PAGES_PER_CRC + 4);
	if (!lv.tap || !lv.rank || !lv.todo || !lv.first) {
		live_free();
		return shell_error(-ENOMEM, "no memory for the live save's bitmaps of VM %d",
				   vm->id);
	}
	memset(lv.tap, 0, lv.words * 8);
	/* The dirty log may be someone else's (vmm/dirtylog.h): the live save
	 * reads its own copy of the writes (the tap) and never clears the log. */
	if (!vm->dirty.on) {
		ret = vm_dirty_start(vm);
		if (ret) {
			live_free();
			return shell_error(ret,
					   "a live save needs dirty tracking, which cannot start\n"
					   "  (%s); save without --live",
					   errno_name(ret));
		}
		lv.started = true;
	}
	vm_dirty_sync(vm); /* earlier writes go to the log's owner, not the tap */
	vm->dirty.tap = lv.tap;

	/* The layout needs the metadata's size: the state as it is now. */
	ret = save_capture_state(vm, VM_RUNNING, name);
	save_img->nregions = 1;
	lv.r = &save_img->region[0];
	if (!ret)
		ret = snap_region_init(lv.r, 0, pages, SNAP_PAGES_PER_CRC);
	/* A child's pages: those changed since the parent, found with the tap
	 * on, so that what the guest writes from now on reaches the set. */
	if (!ret && parent) {
		lv.parent = parent;
		save_img->parent = parent;
		ret = snap_incr_changed(vm, parent, &lv.set);
	}
	snap_progress_init(&lv.pr, "live save");
	lv.work = 2 * vm->mem_size;
	if (!ret)
		ret = precopy(name, index);
	else if (ret == -ENOMEM)
		shell_error(ret, "no memory for the page bitmap of VM %d", vm->id);
	snap_progress_done(&lv.pr);
	if (!ret) {
		/* The rounds' pages made durable before the pause, so that the
		 * flush inside it covers the last pass alone. The guest has no
		 * turn after the last harvest: what it wrote is all in todo. */
		ret = flush_now();
		if (ret)
			fail(ret);
	}
	if (!ret) {
		/* The one instant of the image. */
		was = vm->state;
		tf = ticks();
		if (was == VM_RUNNING || was == VM_HALTED) {
			ret = vm_pause(vm);
			paused = !ret;
		}
		if (!ret)
			ret = final_pass(name, index, old, was, &st, &pass_us);
	}
	live_free();
	if (!ret) /* still paused: the log counts from this image on */
		snap_incr_mark_log(vm, save_img->info.image_id, save_img->info.header_crc,
				   lv.started);
	else if (lv.started)
		vm_dirty_stop(vm);
	if (paused)
		vm_resume(vm);
	if (tf) {
		frozen = ticks() - tf;
		/* The guest's last wait: from its last turn, the freeze included. */
		lv.longest_gap = MAX(lv.longest_gap, ticks() - lv.turn_mark);
	}
	total = ticks() - t0;
	st.cmds = snap_store.dev->commands - c0;
	snap_region_release(lv.r);
	if (ret == -EAGAIN && lv.parent) {
		/* A child's set grows in place: only its metadata can outgrow
		 * the layout (a NOTE added during the save). */
		printk("snap save: VM %d's state no longer fits the layout its pages were\n"
		       "  written for: saving it paused instead, as without --live\n",
		       vm->id);
		return ret;
	}
	if (ret == -EAGAIN) {
		printk("snap save: VM %d kept filling pages that were zero when its image was\n"
		       "  laid out (%u layouts): saving it paused instead, as without --live\n",
		       vm->id, lv.layouts);
		return ret;
	}
	if (ret)
		return ret;
	summary(name, index, &st, total, frozen, pass_us);
	save_json(vm, name, index, &st, frozen, live_json, &total);
	return 0;
}
