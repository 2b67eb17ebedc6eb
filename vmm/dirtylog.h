/*
 * The dirty log of a VM: one bit per 4 KiB page of guest RAM, set when the
 * page was written since the log was last cleared, whoever wrote it (the guest
 * through the backend's tracking, or Amber's own writes into guest memory).
 * Snapshot code reads and clears it. Host context, boot CPU.
 */
#ifndef AMBER_DIRTYLOG_H
#define AMBER_DIRTYLOG_H

#include "kernel/types.h"

struct vm;

struct dirty_log {
	u64 *bits; /* bit p: page p (gpa p * 4 KiB) written */
	/* Bit b: 2 MiB block b holds guest writes the backend noticed and its
	 * harvest has not collected yet (dirty_log_note). The harvest looks at
	 * these blocks only, so that it follows the pages written, not RAM.
	 * As many words again follow them: a sync with a tap keeps there the
	 * blocks it harvests, to follow them too. */
	u64 *blocks;
	u64 npages; /* pages of guest RAM the log covers */
	u64 alloc;  /* pages of host memory under bits (0: none) */
	bool on;    /* tracking runs: the backend reports guest writes */
	/* Changes at every start and clear, never the same twice: a reader
	 * that saw epoch E knows the log holds every write since then while
	 * it still reads E (incremental snapshots rely on it). */
	u64 epoch;
	/* A second reader's bitmap (a live save's, snapshot/live.c), or NULL:
	 * every write marked in bits is marked here too. Its owner clears it
	 * as it likes, so it never clears bits, which others own. */
	u64 *tap;
};

/* ---- the log itself (pure, host unit-tested) ---------------------------- */
/* Words of bitmap for npages pages. */
static inline u64 dirty_log_words(u64 npages) { return (npages + 63) / 64; }
/* Pages a bit of dirty_log.blocks stands for, and the words of it. */
#define DIRTY_BLOCK_PAGES 512
static inline u64 dirty_log_block_words(u64 npages)
{
	return (npages + DIRTY_BLOCK_PAGES * 64 - 1) / (DIRTY_BLOCK_PAGES * 64);
}
/* The backend noticed a guest write to gpa (AMD-V: the nested page fault
 * that makes a page writable; VT-x: an entry of the page-modification log):
 * its 2 MiB block goes to the next harvest. Nothing when the log is off or
 * gpa is past RAM. Inline: exit decoders call it. */
static inline void dirty_log_note(struct dirty_log *l, u64 gpa)
{
	u64 b = gpa / (DIRTY_BLOCK_PAGES * PAGE_SIZE);

	if (l->blocks && gpa / PAGE_SIZE < l->npages)
		l->blocks[b / 64] |= 1ULL << (b % 64);
}
/* Marks the pages of [gpa, gpa + len) that lie in the log (and its tap);
 * nothing when the log is off. */
void dirty_log_mark(struct dirty_log *l, u64 gpa, u64 len);
bool dirty_log_test(const struct dirty_log *l, u64 page);
u64 dirty_log_count(const struct dirty_log *l);
/* The first dirty page at or after `page`, or l->npages when none is. */
u64 dirty_log_next(const struct dirty_log *l, u64 page);
void dirty_log_clear(struct dirty_log *l);

/* ---- per VM, through the backend ---------------------------------------- */
/* Starts tracking vm's RAM: the log is allocated and clear, RAM is mapped in
 * 4 KiB pages and every guest write from now on is seen. 0, -EBUSY (already on),
 * -ENOMEM, or the backend's errno (-EOPNOTSUPP: the CPU cannot track);
 * on failure nothing changed. */
int vm_dirty_start(struct vm *vm);
/* Brings the log up to date: the pages the guest wrote since the last sync
 * are ORed in (and into the tap; clean again in the backend), looking at the
 * 2 MiB blocks written only, tap or not. 0 or -EINVAL
 * when tracking is off. The VM must not run meanwhile (boot CPU: it never
 * does). */
int vm_dirty_sync(struct vm *vm);
/* Stops tracking, merges 2 MiB mappings back and frees the log. Safe to call
 * when tracking is off (vm_destroy does). */
void vm_dirty_stop(struct vm *vm);

#endif
