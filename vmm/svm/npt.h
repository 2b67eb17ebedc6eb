/*
 * The NPT builder: 4-level nested page tables (the long-mode page-table format)
 * mapping guest-physical to host-physical memory, write-back, with 2 MiB pages
 * where both sides are aligned and 4 KiB pages elsewhere. Pure code (table
 * pages come from a caller-supplied allocator), so the host unit tests build it
 * unchanged. APM Vol. 2 15.25 "Nested Paging".
 */
#ifndef AMBER_NPT_H
#define AMBER_NPT_H

#include "kernel/types.h"

/* Nested page-table entries use the long-mode format (APM Vol. 2 5.3.3
 * "4-Kbyte Page Translation", 5.3.4 "2-Mbyte Page Translation"). Nested walks
 * are user accesses (APM 15.25.5 "Nested Table Walk"), so U/S must be set. */
#define NPT_P BIT(0)
#define NPT_RW BIT(1)
#define NPT_US BIT(2)
#define NPT_A BIT(5)
#define NPT_D BIT(6)
#define NPT_PS BIT(7) /* a PDE/PDPTE that maps a page */
#define NPT_NX BIT(63)
#define NPT_ADDR_MASK GENMASK_ULL(51, 12)
#define NPT_TABLE (NPT_P | NPT_RW | NPT_US) /* non-leaf entries grant everything */

#define NPT_PAGE_4K 0x1000ULL
#define NPT_PAGE_2M 0x200000ULL

/* Where the builder gets its table pages: zeroed, 4 KiB aligned physical
 * pages (0 when none is left), and how it reaches them. */
struct npt_mm {
	u64 (*alloc_page)(void *ctx);
	void (*free_page)(void *ctx, u64 pa);
	void *(*to_virt)(void *ctx, u64 pa);
	void *ctx;
};

struct npt {
	const struct npt_mm *mm;
	u64 root;	  /* physical address of the PML4 */
	bool large_pages; /* 2 MiB leaves allowed (always, in long-mode tables) */
	u64 table_pages;  /* tables allocated so far, root included */
};

/* Allocates an empty PML4. Returns 0 or -ENOMEM. */
int npt_init(struct npt *n, const struct npt_mm *mm, bool large_pages);
/* Frees every table page (never the memory the leaves map); n->root becomes 0. */
void npt_destroy(struct npt *n);
/* Maps [gpa, gpa + size) to [hpa, hpa + size) write-back, present and user,
 * plus `prot` (NPT_RW, NPT_NX). All three must be 4 KiB aligned. Returns 0,
 * -EINVAL, -ENOMEM, or -EEXIST if part of the range is already mapped (the
 * part before it stays mapped: npt_destroy() undoes everything). */
int npt_map(struct npt *n, u64 gpa, u64 hpa, u64 size, u64 prot);
/* Maps a guest's RAM: chunk i (2 MiB of host memory at chunks[i]) at
 * guest-physical i * 2 MiB, only the first mem_size bytes in all. */
int npt_map_ram(struct npt *n, const u64 *chunks, u64 nchunks, u64 mem_size);
/* Walks the tables like the CPU: 0 and the host-physical address, leaf size
 * and leaf entry for a mapped gpa; -ENOENT otherwise. */
int npt_translate(const struct npt *n, u64 gpa, u64 *hpa, u64 *page_size, u64 *leaf);
/* The value for the VMCB's N_CR3: the root's physical address. */
u64 npt_ncr3(const struct npt *n);

/*
 * Dirty tracking of the RAM at [0, size) by write protection: a leaf's R/W bit
 * is the page's dirty bit. The first write to a clean page faults (NPF) and
 * npt_unprotect() gives write access back. After npt_track_start,
 * npt_track_stop and npt_harvest the caller flushes the ASID's translations
 * before the guest runs again: a cached writable translation would let writes
 * through unseen.
 */
/* Splits every 2 MiB leaf into 512 4 KiB leaves (one written byte marks one
 * page) and write-protects every page. 0, or -ENOMEM with the mapping
 * unchanged in meaning (part of it split or protected): npt_track_stop()
 * undoes it. */
int npt_track_start(struct npt *n, u64 size);
/* Gives every page write access back; each page table whose 512 leaves map
 * one aligned 2 MiB with equal rights becomes a 2 MiB leaf again (when
 * large_pages) and is freed. */
void npt_track_stop(struct npt *n, u64 size);
/* Sets bit (gpa / 4 KiB) in `bits` (NULL: none) for each page whose leaf is
 * writable, and write-protects it. Looks at the 2 MiB blocks whose bit is set in
 * `blocks` (struct dirty_log's summary; cleared here), or at all of RAM when
 * blocks is NULL. Returns the number of pages found dirty. */
u64 npt_harvest(struct npt *n, u64 size, u64 *blocks, u64 *bits);
/* The fault-and-mark step: the present, write-protected leaf of gpa (below
 * `size`) becomes writable. 0; -EEXIST when it already was (a stale
 * translation: flush and retry); -ENOENT when gpa is no RAM page (a genuine
 * fault for the MMIO path). */
int npt_unprotect(struct npt *n, u64 size, u64 gpa);

/*
 * RAM that arrives after the VM starts (a lazy restore, vmm/pager.c): every
 * RAM leaf is removed at once, then pages come back a few at a time. Turning
 * a not-present entry present needs no TLB flush: the TLB caches no
 * not-present translation (APM Vol. 2 5.5.3 "TLB Management", 15.25 "Nested
 * Paging").
 */
/* Frees every table below the root and clears the root: nothing mapped, the
 * root (so N_CR3) unchanged. The caller flushes the ASID's translations. */
void npt_unmap_all(struct npt *n);
/* Maps the 4 KiB pages of [gpa, gpa + size), one 2 MiB-aligned block at
 * most, to [hpa, hpa + size) writable; pages already mapped stay as they
 * are. A page table whose 512 leaves then map one aligned 2 MiB becomes a
 * 2 MiB leaf (when large_pages), *merged set: a change of page size the
 * caller flushes. A whole aligned block of which nothing was mapped becomes
 * its 2 MiB leaf at once, *merged clear (nothing was present to flush).
 * Returns 0, -EINVAL or -ENOMEM. */
int npt_fill(struct npt *n, u64 gpa, u64 hpa, u64 size, bool *merged);

#endif
