/*
 * Nested page tables for AMD-V: a 4-level x86-64 page table that maps a VM's
 * guest-physical RAM onto its 2 MiB host chunks. Pure module (page allocation
 * through pmm_alloc_page): the host unit tests build and walk it.
 * APM Vol. 2 15.25 "Nested Paging".
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
#define NPT_PS BIT(7)
#define NPT_ADDR GENMASK_ULL(51, 12)
#define NPT_LEAF (NPT_P | NPT_RW | NPT_US) /* write-back through PAT entry 0 */

struct npt {
	u64 root_pa;	 /* the PML4: nCR3 */
	u64 table_pages; /* page-table pages in use */
};

/* Maps guest-physical [0, mem_size) to the chunks (chunks[i] backs GPA i*2 MiB):
 * 2 MiB pages where a whole chunk is mapped, 4 KiB pages for a partial last
 * chunk. Nothing else is mapped, so every other access faults to the host.
 * Returns 0, -EINVAL for a size that is not a multiple of 4 KiB, or -ENOMEM
 * (with everything already built freed). */
int npt_build(struct npt *npt, const u64 *chunks, u64 mem_size);
void npt_free(struct npt *npt);
/* Walks the tables: the host-physical address backing gpa, or ~0 when unmapped;
 * *page_size says which page size mapped it. */
u64 npt_translate(const struct npt *npt, u64 gpa, u64 *page_size);

#endif
