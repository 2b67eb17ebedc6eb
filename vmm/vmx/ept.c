/*
 * EPT builder: four levels of 512-entry tables (PML4, PDPT, PD, PT), leaves of
 * 2 MiB at the PD level where possible and 4 KiB in the PT otherwise, all
 * write-back. Pure code without inline assembly: the kernel passes the page
 * allocator, the host unit test (tests/unit/test_ept.c) a fake one.
 * SDM Vol. 3C 29.3.2 "EPT Translation Mechanism".
 */
#include "vmm/vmx/ept.h"

#define EPT_ENTRIES 512
#define EPT_LEVEL_SHIFT(level) (12 + 9 * (level)) /* level 0 = PT .. 3 = PML4 */
#define EPT_INDEX(gpa, level) (((gpa) >> EPT_LEVEL_SHIFT(level)) & (EPT_ENTRIES - 1))
/* Guest-physical addresses a 4-level walk can express: 48 bits. */
#define EPT_GPA_LIMIT (1ULL << 48)
/* Host-physical addresses an entry can hold: bits 51:12. */
#define EPT_HPA_LIMIT (1ULL << 52)

static u64 *ept_table(const struct ept *e, u64 pa) { return e->mm->to_virt(e->mm->ctx, pa); }

int ept_init(struct ept *e, const struct ept_mm *mm, bool large_pages)
{
	e->mm = mm;
	e->large_pages = large_pages;
	e->ad = false; /* the backend turns A/D flags on where the CPU has them */
	e->table_pages = 0;
	e->root = mm->alloc_page(mm->ctx);
	if (!e->root)
		return -ENOMEM;
	e->table_pages = 1;
	return 0;
}

/* Frees the table at `pa` of `level` and the tables below it. */
static void ept_free_table(struct ept *e, u64 pa, int level)
{
	u64 *t = ept_table(e, pa);

	for (int i = 0; level > 0 && i < EPT_ENTRIES; i++) {
		if (!(t[i] & EPT_RWX) || (t[i] & EPT_LARGE))
			continue;
		ept_free_table(e, t[i] & EPT_ADDR_MASK, level - 1);
	}
	e->mm->free_page(e->mm->ctx, pa);
	e->table_pages--;
}

void ept_destroy(struct ept *e)
{
	if (!e->root)
		return;
	ept_free_table(e, e->root, 3);
	e->root = 0;
}

/* Returns the table that the entry at t[idx] points to, creating it if the
 * entry is empty; NULL with *err set if it maps a page or no page is left. */
static u64 *ept_next_table(struct ept *e, u64 *t, u64 idx, int *err)
{
	u64 pa;

	if (t[idx] & EPT_LARGE) {
		*err = -EEXIST;
		return NULL;
	}
	if (!(t[idx] & EPT_RWX)) {
		pa = e->mm->alloc_page(e->mm->ctx);
		if (!pa) {
			*err = -ENOMEM;
			return NULL;
		}
		e->table_pages++;
		/* Non-leaf entries grant everything; the leaf decides. */
		t[idx] = pa | EPT_RWX;
	}
	return ept_table(e, t[idx] & EPT_ADDR_MASK);
}

/* Installs one leaf of `size` (4 KiB or 2 MiB) for gpa. */
static int ept_map_one(struct ept *e, u64 gpa, u64 hpa, u64 size, u64 prot)
{
	int leaf_level = size == EPT_PAGE_2M ? 1 : 0;
	u64 *t = ept_table(e, e->root);
	int err = 0;

	for (int level = 3; level > leaf_level; level--) {
		t = ept_next_table(e, t, EPT_INDEX(gpa, level), &err);
		if (!t)
			return err;
	}
	if (t[EPT_INDEX(gpa, leaf_level)] & EPT_RWX)
		return -EEXIST;
	/* IPAT stays clear so that a guest's own PAT can still ask for UC. */
	t[EPT_INDEX(gpa, leaf_level)] = hpa | prot | (EPT_MT_WB << EPT_MT_SHIFT) |
					(leaf_level ? EPT_LARGE : 0);
	return 0;
}

int ept_map(struct ept *e, u64 gpa, u64 hpa, u64 size, u64 prot)
{
	u64 step;
	int err;

	if (!e->root || ((gpa | hpa | size) & (EPT_PAGE_4K - 1)) || !(prot & EPT_RWX) ||
	    (prot & ~EPT_RWX) || gpa + size > EPT_GPA_LIMIT || gpa + size < gpa ||
	    hpa + size > EPT_HPA_LIMIT || hpa + size < hpa)
		return -EINVAL;
	/* Write without read is a misconfiguration (SDM Vol. 3C 29.3.3.1 "EPT Misconfigurations"). */
	if ((prot & EPT_WRITE) && !(prot & EPT_READ))
		return -EINVAL;
	while (size) {
		bool big = e->large_pages && !(gpa & (EPT_PAGE_2M - 1)) &&
			   !(hpa & (EPT_PAGE_2M - 1)) && size >= EPT_PAGE_2M;

		step = big ? EPT_PAGE_2M : EPT_PAGE_4K;
		err = ept_map_one(e, gpa, hpa, step, prot);
		if (err)
			return err;
		gpa += step;
		hpa += step;
		size -= step;
	}
	return 0;
}

int ept_map_ram(struct ept *e, const u64 *chunks, u64 nchunks, u64 mem_size)
{
	int err;

	if (mem_size & (EPT_PAGE_4K - 1) || mem_size > nchunks * EPT_PAGE_2M)
		return -EINVAL;
	for (u64 i = 0; i * EPT_PAGE_2M < mem_size; i++) {
		u64 len = mem_size - i * EPT_PAGE_2M;

		if (len > EPT_PAGE_2M)
			len = EPT_PAGE_2M;
		err = ept_map(e, i * EPT_PAGE_2M, chunks[i], len, EPT_RWX);
		if (err)
			return err;
	}
	return 0;
}

int ept_translate(const struct ept *e, u64 gpa, u64 *hpa, u64 *page_size, u64 *leaf)
{
	u64 *t, entry;

	if (!e->root || gpa >= EPT_GPA_LIMIT)
		return -ENOENT;
	t = ept_table(e, e->root);
	for (int level = 3; level >= 0; level--) {
		entry = t[EPT_INDEX(gpa, level)];
		if (!(entry & EPT_RWX))
			return -ENOENT;
		if (level == 0 || (entry & EPT_LARGE)) {
			u64 size = 1ULL << EPT_LEVEL_SHIFT(level);

			*hpa = (entry & EPT_ADDR_MASK & ~(size - 1)) | (gpa & (size - 1));
			*page_size = size;
			*leaf = entry;
			return 0;
		}
		t = ept_table(e, entry & EPT_ADDR_MASK);
	}
	return -ENOENT;
}

u64 ept_eptp(const struct ept *e)
{
	return e->root | VMX_EPTP_PWL_4 | VMX_EPTP_MT_WB | (e->ad ? VMX_EPTP_AD_ENABLE : 0);
}

/* ---- dirty tracking ------------------------------------------------------ */

/* Rights and type of a leaf, what must agree for 512 leaves to merge. */
#define EPT_LEAF_FLAGS (EPT_RWX | (7ULL << EPT_MT_SHIFT) | EPT_IPAT)

/* The PD entry that maps or points below gpa; NULL when no PD covers it. */
static u64 *ept_pde(const struct ept *e, u64 gpa)
{
	u64 *t = ept_table(e, e->root);

	for (int level = 3; level > 1; level--) {
		u64 entry = t[EPT_INDEX(gpa, level)];

		if (!(entry & EPT_RWX) || (entry & EPT_LARGE))
			return NULL;
		t = ept_table(e, entry & EPT_ADDR_MASK);
	}
	return &t[EPT_INDEX(gpa, 1)];
}

/* Replaces the 2 MiB leaf *pde by a page table of 512 4 KiB leaves. */
static int ept_split(struct ept *e, u64 *pde)
{
	u64 base = *pde & EPT_ADDR_MASK & ~(EPT_PAGE_2M - 1);
	u64 flags = *pde & EPT_LEAF_FLAGS;
	u64 pa = e->mm->alloc_page(e->mm->ctx);
	u64 *pt;

	if (!pa)
		return -ENOMEM;
	e->table_pages++;
	pt = ept_table(e, pa);
	for (int i = 0; i < EPT_ENTRIES; i++)
		pt[i] = (base + i * EPT_PAGE_4K) | flags;
	*pde = pa | EPT_RWX;
	return 0;
}

/* Merges the page table below *pde back into a 2 MiB leaf if it maps one. */
static void ept_merge(struct ept *e, u64 *pde)
{
	u64 pa = *pde & EPT_ADDR_MASK;
	u64 *pt = ept_table(e, pa);
	u64 base = pt[0] & EPT_ADDR_MASK, flags = pt[0] & EPT_LEAF_FLAGS;

	if (!e->large_pages || !(flags & EPT_RWX) || (base & (EPT_PAGE_2M - 1)))
		return;
	for (int i = 1; i < EPT_ENTRIES; i++)
		if ((pt[i] & EPT_ADDR_MASK) != base + i * EPT_PAGE_4K ||
		    (pt[i] & EPT_LEAF_FLAGS) != flags)
			return;
	*pde = base | flags | EPT_LARGE;
	e->mm->free_page(e->mm->ctx, pa);
	e->table_pages--;
}

int ept_track_start(struct ept *e, u64 size)
{
	for (u64 gpa = 0; gpa < size; gpa += EPT_PAGE_2M) {
		u64 *pde = ept_pde(e, gpa);

		if (pde && (*pde & EPT_LARGE) && ept_split(e, pde))
			return -ENOMEM;
	}
	ept_harvest(e, size, NULL, NULL);
	return 0;
}

void ept_track_stop(struct ept *e, u64 size)
{
	for (u64 gpa = 0; gpa < size; gpa += EPT_PAGE_2M) {
		u64 *pde = ept_pde(e, gpa);

		if (pde && (*pde & EPT_RWX) && !(*pde & EPT_LARGE))
			ept_merge(e, pde);
	}
}

/* Marks pages [first, first + n) in bits. */
static void ept_mark(u64 *bits, u64 first, u64 n)
{
	for (u64 p = first; bits && p < first + n; p++)
		bits[p / 64] |= 1ULL << (p % 64);
}

/* The 2 MiB block at gpa: see ept_harvest. */
static u64 ept_harvest_block(struct ept *e, u64 gpa, u64 size, u64 *bits)
{
	u64 *pde = ept_pde(e, gpa), *pt, found = 0;

	if (!pde || !(*pde & EPT_RWX))
		return 0;
	if (*pde & EPT_LARGE) {
		if (!(*pde & EPT_DIRTY))
			return 0;
		*pde &= ~EPT_DIRTY;
		ept_mark(bits, gpa / EPT_PAGE_4K, EPT_ENTRIES);
		return EPT_ENTRIES;
	}
	pt = ept_table(e, *pde & EPT_ADDR_MASK);
	for (u64 i = 0; i < EPT_ENTRIES && gpa + i * EPT_PAGE_4K < size; i++) {
		if (!(pt[i] & EPT_DIRTY))
			continue;
		pt[i] &= ~EPT_DIRTY;
		ept_mark(bits, gpa / EPT_PAGE_4K + i, 1);
		found++;
	}
	return found;
}

u64 ept_harvest(struct ept *e, u64 size, u64 *blocks, u64 *bits)
{
	u64 nblocks = (size + EPT_PAGE_2M - 1) / EPT_PAGE_2M, found = 0;

	if (!blocks) {
		for (u64 b = 0; b < nblocks; b++)
			found += ept_harvest_block(e, b * EPT_PAGE_2M, size, bits);
		return found;
	}
	/* Only the blocks noted since the last harvest: a reset that wrote ten
	 * pages looks at ten blocks at most, whatever the size of RAM. */
	for (u64 w = 0; w < (nblocks + 63) / 64; w++) {
		for (u64 m = blocks[w]; m; m &= m - 1) {
			u64 b = w * 64 + (u64)__builtin_ctzll(m);

			if (b < nblocks)
				found += ept_harvest_block(e, b * EPT_PAGE_2M, size, bits);
		}
		blocks[w] = 0;
	}
	return found;
}

/* ---- RAM that arrives after the VM starts (vmm/pager.c) ------------------ */

void ept_unmap_all(struct ept *e)
{
	u64 *root;

	if (!e->root)
		return;
	root = ept_table(e, e->root);
	for (int i = 0; i < EPT_ENTRIES; i++) {
		if ((root[i] & EPT_RWX) && !(root[i] & EPT_LARGE))
			ept_free_table(e, root[i] & EPT_ADDR_MASK, 2);
		root[i] = 0;
	}
}

int ept_fill(struct ept *e, u64 gpa, u64 hpa, u64 size, bool *merged)
{
	u64 *t, *pde, *pt;
	int err = 0;

	*merged = false;
	if (!e->root || ((gpa | hpa | size) & (EPT_PAGE_4K - 1)) || !size ||
	    (gpa & ~(EPT_PAGE_2M - 1)) != ((gpa + size - 1) & ~(EPT_PAGE_2M - 1)) ||
	    gpa + size > EPT_GPA_LIMIT || hpa + size > EPT_HPA_LIMIT)
		return -EINVAL;
	/* One walk for the whole run: a walk per page was most of what mapping
	 * a lazily restored VM cost. */
	t = ept_table(e, e->root);
	for (int level = 3; level > 1; level--) {
		t = ept_next_table(e, t, EPT_INDEX(gpa, level), &err);
		if (!t)
			return err;
	}
	pde = &t[EPT_INDEX(gpa, 1)];
	if (*pde & EPT_LARGE)
		return 0; /* the whole 2 MiB is there already */
	/* A whole block of which nothing is mapped: its 2 MiB leaf at once, no
	 * page table made and merged again. */
	if (!(*pde & EPT_RWX) && size == EPT_PAGE_2M && e->large_pages &&
	    !(hpa & (EPT_PAGE_2M - 1))) {
		*pde = hpa | EPT_RWX | (EPT_MT_WB << EPT_MT_SHIFT) | EPT_LARGE;
		return 0;
	}
	pt = ept_next_table(e, t, EPT_INDEX(gpa, 1), &err);
	if (!pt)
		return err;
	for (u64 i = EPT_INDEX(gpa, 0), off = 0; off < size; i++, off += EPT_PAGE_4K)
		if (!(pt[i] & EPT_RWX))
			pt[i] = (hpa + off) | EPT_RWX | (EPT_MT_WB << EPT_MT_SHIFT);
	ept_merge(e, pde);
	*merged = (*pde & EPT_LARGE) != 0;
	return 0;
}
