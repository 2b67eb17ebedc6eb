/*
 * Builds and walks the nested page tables of an AMD-V guest (see npt.h).
 * Host context when a VM is created or destroyed; also compiled into the host
 * unit tests, so no inline assembly here.
 * APM Vol. 2 15.25 "Nested Paging", 5.3 "Long-Mode Page Translation".
 */
#include "vmm/svm/npt.h"
#include "kernel/lib.h"
#include "kernel/mm.h"

#define PT_ENTRIES 512
#define CHUNK HUGE_PAGE_SIZE

static u64 *table(u64 entry) { return phys_to_virt(entry & NPT_ADDR); }

static int index_of(u64 gpa, int level) { return (gpa >> (12 + 9 * level)) & (PT_ENTRIES - 1); }

/* Returns the table that entry `*e` points to, allocating it when absent. */
static u64 *next_level(struct npt *npt, u64 *e)
{
	if (!(*e & NPT_P)) {
		u64 pa = pmm_alloc_page();

		if (!pa)
			return NULL;
		npt->table_pages++;
		*e = pa | NPT_P | NPT_RW | NPT_US;
	}
	return table(*e);
}

/* Returns the page directory (level 1) covering gpa, building levels 3 and 2. */
static u64 *pd_for(struct npt *npt, u64 gpa)
{
	u64 *pml4 = phys_to_virt(npt->root_pa);
	u64 *pdpt = next_level(npt, &pml4[index_of(gpa, 3)]);

	if (!pdpt)
		return NULL;
	return next_level(npt, &pdpt[index_of(gpa, 2)]);
}

int npt_build(struct npt *npt, const u64 *chunks, u64 mem_size)
{
	u64 nchunks = ALIGN_UP(mem_size, CHUNK) / CHUNK;

	npt->table_pages = 0;
	npt->root_pa = 0;
	if (!mem_size || (mem_size & (PAGE_SIZE - 1)))
		return -EINVAL;
	npt->root_pa = pmm_alloc_page();
	if (!npt->root_pa)
		return -ENOMEM;
	npt->table_pages = 1;
	for (u64 i = 0; i < nchunks; i++) {
		u64 gpa = i * CHUNK;
		u64 bytes = MIN(CHUNK, mem_size - gpa);
		u64 *pd = pd_for(npt, gpa);
		u64 *pt;

		if (!pd)
			goto nomem;
		if (bytes == CHUNK) {
			pd[index_of(gpa, 1)] = chunks[i] | NPT_LEAF | NPT_PS;
			continue;
		}
		/* The tail of a size that is not a multiple of 2 MiB: 4 KiB pages. */
		pt = next_level(npt, &pd[index_of(gpa, 1)]);
		if (!pt)
			goto nomem;
		for (u64 off = 0; off < bytes; off += PAGE_SIZE)
			pt[index_of(gpa + off, 0)] = (chunks[i] + off) | NPT_LEAF;
	}
	return 0;
nomem:
	npt_free(npt);
	return -ENOMEM;
}

/* Frees the table at `pa` (a level-`level` table) and every table below it. */
static void free_table(u64 pa, int level)
{
	u64 *t = phys_to_virt(pa);

	if (level > 0) {
		for (int i = 0; i < PT_ENTRIES; i++)
			if ((t[i] & NPT_P) && !(t[i] & NPT_PS))
				free_table(t[i] & NPT_ADDR, level - 1);
	}
	pmm_free_page(pa);
}

void npt_free(struct npt *npt)
{
	if (npt->root_pa)
		free_table(npt->root_pa, 3);
	npt->root_pa = 0;
	npt->table_pages = 0;
}

u64 npt_translate(const struct npt *npt, u64 gpa, u64 *page_size)
{
	u64 e = npt->root_pa | NPT_P;

	if (!npt->root_pa || gpa >> 48)
		return ~0ULL;
	for (int level = 3; level >= 0; level--) {
		e = table(e)[index_of(gpa, level)];
		if (!(e & NPT_P))
			return ~0ULL;
		if (level == 1 && (e & NPT_PS)) {
			if (page_size)
				*page_size = CHUNK;
			return (e & NPT_ADDR & ~(CHUNK - 1)) + (gpa & (CHUNK - 1));
		}
	}
	if (page_size)
		*page_size = PAGE_SIZE;
	return (e & NPT_ADDR) + (gpa & (PAGE_SIZE - 1));
}
