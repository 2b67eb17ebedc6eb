/*
 * The EPT builder: 4-level extended page tables mapping guest-physical to
 * host-physical memory, write-back, with 2 MiB pages where both sides are
 * aligned and 4 KiB pages elsewhere. Pure code (table pages come from a
 * caller-supplied allocator), so the host unit tests build it unchanged.
 * SDM Vol. 3C 29.3 "The Extended Page Table Mechanism (EPT)".
 */
#ifndef AMBER_EPT_H
#define AMBER_EPT_H

#include "kernel/types.h"

/* EPT paging-structure entries, SDM Vol. 3C 29.3.2 "EPT Translation Mechanism". */
#define EPT_READ BIT(0)
#define EPT_WRITE BIT(1)
#define EPT_EXEC BIT(2)
#define EPT_RWX (EPT_READ | EPT_WRITE | EPT_EXEC)
#define EPT_MT_SHIFT 3 /* leaf entries: bits 5:3 memory type */
#define EPT_MT_WB 6ULL
#define EPT_IPAT BIT(6)
#define EPT_LARGE BIT(7) /* a PDE/PDPTE that maps a page */
/* Leaf flags the CPU sets when the EPTP enables them, SDM Vol. 3C 29.3.5
 * "Accessed and Dirty Flags for EPT". */
#define EPT_ACCESSED BIT(8)
#define EPT_DIRTY BIT(9)
#define EPT_ADDR_MASK GENMASK_ULL(51, 12)

/* The EPT pointer, SDM Vol. 3C 25.6.11 "Extended-Page-Table Pointer (EPTP)". */
#define VMX_EPTP_MT_WB 6ULL
#define VMX_EPTP_PWL_4 (3ULL << 3) /* page-walk length minus one */
#define VMX_EPTP_AD_ENABLE BIT(6)  /* accessed and dirty flags on */

#define EPT_PAGE_4K 0x1000ULL
#define EPT_PAGE_2M 0x200000ULL

/* Where the builder gets its table pages: zeroed, 4 KiB aligned physical
 * pages (0 when none is left), and how it reaches them. */
struct ept_mm {
	u64 (*alloc_page)(void *ctx);
	void (*free_page)(void *ctx, u64 pa);
	void *(*to_virt)(void *ctx, u64 pa);
	void *ctx;
};

struct ept {
	const struct ept_mm *mm;
	u64 root;	  /* physical address of the PML4 */
	bool large_pages; /* 2 MiB leaves allowed (IA32_VMX_EPT_VPID_CAP bit 16) */
	bool ad;	  /* accessed/dirty flags on (IA32_VMX_EPT_VPID_CAP bit 21) */
	u64 table_pages;  /* tables allocated so far, root included */
};

/* Allocates an empty PML4. Returns 0 or -ENOMEM. */
int ept_init(struct ept *e, const struct ept_mm *mm, bool large_pages);
/* Frees every table page (never the memory the leaves map); e->root becomes 0. */
void ept_destroy(struct ept *e);
/* Maps [gpa, gpa + size) to [hpa, hpa + size) write-back with permissions
 * `prot` (EPT_READ/WRITE/EXEC). All three must be 4 KiB aligned. Returns 0,
 * -EINVAL, -ENOMEM, or -EEXIST if part of the range is already mapped (the
 * part before it stays mapped: ept_destroy() undoes everything). */
int ept_map(struct ept *e, u64 gpa, u64 hpa, u64 size, u64 prot);
/* Maps a guest's RAM: chunk i (2 MiB of host memory at chunks[i]) at
 * guest-physical i * 2 MiB, only the first mem_size bytes in all. */
int ept_map_ram(struct ept *e, const u64 *chunks, u64 nchunks, u64 mem_size);
/* Walks the tables like the CPU: 0 and the host-physical address, leaf size
 * and leaf entry for a mapped gpa; -ENOENT otherwise. */
int ept_translate(const struct ept *e, u64 gpa, u64 *hpa, u64 *page_size, u64 *leaf);
/* The EPTP value for VMCS field EPT_POINTER: root, 4-level walk, write-back,
 * and the accessed/dirty flags when e->ad. */
u64 ept_eptp(const struct ept *e);

/*
 * Dirty tracking of the RAM at [0, size) (e->ad must be set): the leaf's dirty
 * flag is the page's dirty bit. After each of the three the caller flushes the
 * CPU's cached translations (INVEPT) before the guest runs again: a cached
 * translation whose flag was already set does not set it again.
 */
/* Splits every 2 MiB leaf into 512 4 KiB leaves (one written byte marks one
 * page) and clears every dirty flag. 0, or -ENOMEM with the mapping unchanged
 * in meaning (part of it split): ept_track_stop() undoes it. */
int ept_track_start(struct ept *e, u64 size);
/* Each page table whose 512 leaves map one aligned 2 MiB with equal rights
 * becomes a 2 MiB leaf again (when large_pages) and is freed. */
void ept_track_stop(struct ept *e, u64 size);
/* Sets bit (gpa / 4 KiB) in `bits` (NULL: none) for each page whose leaf is
 * dirty, and clears the flag. Looks at the 2 MiB blocks whose bit is set in
 * `blocks` (struct dirty_log's summary; cleared here), or at all of RAM when
 * blocks is NULL. Returns the number of pages found dirty. */
u64 ept_harvest(struct ept *e, u64 size, u64 *blocks, u64 *bits);

/*
 * RAM that arrives after the VM starts (a lazy restore, vmm/pager.c): every
 * RAM leaf is removed at once, then pages come back a few at a time. Turning
 * a not-present entry present needs no INVEPT: the CPU caches no translation
 * for it, and an EPT violation drops what it cached for the faulting address
 * (SDM Vol. 3C 29.4.3.1 "Operations that Invalidate Cached Mappings").
 */
/* Frees every table below the root and clears the root: nothing mapped, the
 * root (so the EPTP) unchanged. The caller flushes (INVEPT). */
void ept_unmap_all(struct ept *e);
/* Maps the 4 KiB pages of [gpa, gpa + size), one 2 MiB-aligned block at
 * most, to [hpa, hpa + size) with all rights; pages already mapped stay as
 * they are. A page table whose 512 leaves then map one aligned 2 MiB becomes
 * a 2 MiB leaf (when large_pages), *merged set: a change of page size the
 * caller flushes (INVEPT). A whole aligned block of which nothing was
 * mapped becomes its 2 MiB leaf at once, *merged clear (nothing was present
 * to flush). Returns 0, -EINVAL or -ENOMEM. */
int ept_fill(struct ept *e, u64 gpa, u64 hpa, u64 size, bool *merged);

#endif
