/*
 * NPT builder: four levels of 512-entry tables (PML4, PDPT, PD, PT), leaves of
 * 2 MiB at the PD level where possible and 4 KiB in the PT otherwise, all
 * write-back (PAT entry 0). Pure code without inline assembly: the kernel
 * passes the page allocator, the host unit test (tests/unit/test_npt.c) a
 * fake one. APM Vol. 2 15.25 "Nested Paging", 5.3 "Long-Mode Page Translation".
 */
#include "vmm/svm/npt.h"

#define NPT_ENTRIES 512
#define NPT_LEVEL_SHIFT(level) (12 + 9 * (level)) /* level 0 = PT .. 3 = PML4 */
#define NPT_INDEX(gpa, level) (((gpa) >> NPT_LEVEL_SHIFT(level)) & (NPT_ENTRIES - 1))
/* Guest-physical addresses a 4-level walk can express: 48 bits. */
#define NPT_GPA_LIMIT (1ULL << 48)
/* Host-physical addresses an entry can hold: bits 51:12. */
#define NPT_HPA_LIMIT (1ULL << 52)

static u64 *npt_table(const struct npt *n, u64 pa) { return n->mm->to_virt(n->mm->ctx, pa); }

int npt_init(struct npt *n, const struct npt_mm *mm, bool large_pages)
{
	n->mm = mm;
	n->large_pages = large_pages;
	n->table_pages = 0;
	n->root = mm->alloc_page(mm->ctx);
	if (!n->root)
		return -ENOMEM;
	n->table_pages = 1;
	return 0;
}

/* Frees the table at `pa` of `level` and the tables below it. */
static void npt_free_table(struct npt *n, u64 pa, int level)
{
	u64 *t = npt_table(n, pa);

	for (int i = 0; level > 0 && i < NPT_ENTRIES; i++) {
		if (!(t[i] & NPT_P) || (t[i] & NPT_PS))
			continue;
		npt_free_table(n, t[i] & NPT_ADDR_MASK, level - 1);
	}
	n->mm->free_page(n->mm->ctx, pa);
	n->table_pages--;
}

void npt_destroy(struct npt *n)
{
	if (!n->root)
		return;
	npt_free_table(n, n->root, 3);
	n->root = 0;
}

/* Returns the table that the entry at t[idx] points to, creating it if the
 * entry is empty; NULL with *err set if it maps a page or no page is left. */
static u64 *npt_next_table(struct npt *n, u64 *t, u64 idx, int *err)
{
	u64 pa;

	if (t[idx] & NPT_PS) {
		*err = -EEXIST;
		return NULL;
	}
	if (!(t[idx] & NPT_P)) {
		pa = n->mm->alloc_page(n->mm->ctx);
		if (!pa) {
			*err = -ENOMEM;
			return NULL;
		}
		n->table_pages++;
		/* Non-leaf entries grant everything; the leaf decides. */
		t[idx] = pa | NPT_TABLE;
	}
	return npt_table(n, t[idx] & NPT_ADDR_MASK);
}

/* Installs one leaf of `size` (4 KiB or 2 MiB) for gpa. */
static int npt_map_one(struct npt *n, u64 gpa, u64 hpa, u64 size, u64 prot)
{
	int leaf_level = size == NPT_PAGE_2M ? 1 : 0;
	u64 *t = npt_table(n, n->root);
	int err = 0;

	for (int level = 3; level > leaf_level; level--) {
		t = npt_next_table(n, t, NPT_INDEX(gpa, level), &err);
		if (!t)
			return err;
	}
	if (t[NPT_INDEX(gpa, leaf_level)] & NPT_P)
		return -EEXIST;
	/* PWT, PCD and PAT clear: PAT entry 0, write-back; the guest's own
	 * PAT can still ask for uncached, the two types combine (APM Vol. 2
	 * 15.25 "Nested Paging"). */
	t[NPT_INDEX(gpa, leaf_level)] = hpa | NPT_P | NPT_US | prot | (leaf_level ? NPT_PS : 0);
	return 0;
}

int npt_map(struct npt *n, u64 gpa, u64 hpa, u64 size, u64 prot)
{
	u64 step;
	int err;

	if (!n->root || ((gpa | hpa | size) & (NPT_PAGE_4K - 1)) || (prot & ~(NPT_RW | NPT_NX)) ||
	    gpa + size > NPT_GPA_LIMIT || gpa + size < gpa || hpa + size > NPT_HPA_LIMIT ||
	    hpa + size < hpa)
		return -EINVAL;
	while (size) {
		bool big = n->large_pages && !(gpa & (NPT_PAGE_2M - 1)) &&
			   !(hpa & (NPT_PAGE_2M - 1)) && size >= NPT_PAGE_2M;

		step = big ? NPT_PAGE_2M : NPT_PAGE_4K;
		err = npt_map_one(n, gpa, hpa, step, prot);
		if (err)
			return err;
		gpa += step;
		hpa += step;
		size -= step;
	}
	return 0;
}

int npt_map_ram(struct npt *n, const u64 *chunks, u64 nchunks, u64 mem_size)
{
	int err;

	if (mem_size & (NPT_PAGE_4K - 1) || mem_size > nchunks * NPT_PAGE_2M)
		return -EINVAL;
	for (u64 i = 0; i * NPT_PAGE_2M < mem_size; i++) {
		u64 len = mem_size - i * NPT_PAGE_2M;

		if (len > NPT_PAGE_2M)
			len = NPT_PAGE_2M;
		err = npt_map(n, i * NPT_PAGE_2M, chunks[i], len, NPT_RW);
		if (err)
			return err;
	}
	return 0;
}

int npt_translate(const struct npt *n, u64 gpa, u64 *hpa, u64 *page_size, u64 *leaf)
{
	u64 *t, entry;

	if (!n->root || gpa >= NPT_GPA_LIMIT)
		return -ENOENT;
	t = npt_table(n, n->root);
	for (int level = 3; level >= 0; level--) {
		entry = t[NPT_INDEX(gpa, level)];
		if (!(entry & NPT_P))
			return -ENOENT;
		if (level == 0 || (entry & NPT_PS)) {
			u64 size = 1ULL << NPT_LEVEL_SHIFT(level);

			*hpa = (entry & NPT_ADDR_MASK & ~(size - 1)) | (gpa & (size - 1));
			*page_size = size;
			*leaf = entry;
			return 0;
		}
		t = npt_table(n, entry & NPT_ADDR_MASK);
	}
	return -ENOENT;
}

u64 npt_ncr3(const struct npt *n) { return n->root; }

/* ---- dirty tracking ------------------------------------------------------ */

/* Rights and type of a leaf, what must agree for 512 leaves to merge (the PAT
 * bit is clear in every leaf Amber makes, so its place does not matter). */
#define NPT_LEAF_FLAGS (NPT_P | NPT_RW | NPT_US | BIT(3) | BIT(4) | NPT_NX)

/* The PD entry that maps or points below gpa; NULL when no PD covers it. */
static u64 *npt_pde(const struct npt *n, u64 gpa)
{
	u64 *t = npt_table(n, n->root);

	for (int level = 3; level > 1; level--) {
		u64 entry = t[NPT_INDEX(gpa, level)];

		if (!(entry & NPT_P) || (entry & NPT_PS))
			return NULL;
		t = npt_table(n, entry & NPT_ADDR_MASK);
	}
	return &t[NPT_INDEX(gpa, 1)];
}

/* Replaces the 2 MiB leaf *pde by a page table of 512 4 KiB leaves. */
static int npt_split(struct npt *n, u64 *pde)
{
	u64 base = *pde & NPT_ADDR_MASK & ~(NPT_PAGE_2M - 1);
	u64 flags = *pde & NPT_LEAF_FLAGS;
	u64 pa = n->mm->alloc_page(n->mm->ctx);
	u64 *pt;

	if (!pa)
		return -ENOMEM;
	n->table_pages++;
	pt = npt_table(n, pa);
	for (int i = 0; i < NPT_ENTRIES; i++)
		pt[i] = (base + i * NPT_PAGE_4K) | flags;
	*pde = pa | NPT_TABLE;
	return 0;
}

/* Merges the page table below *pde back into a 2 MiB leaf if it maps one. */
static void npt_merge(struct npt *n, u64 *pde)
{
	u64 pa = *pde & NPT_ADDR_MASK;
	u64 *pt = npt_table(n, pa);
	u64 base = pt[0] & NPT_ADDR_MASK, flags = pt[0] & NPT_LEAF_FLAGS;

	if (!n->large_pages || !(flags & NPT_P) || (base & (NPT_PAGE_2M - 1)))
		return;
	for (int i = 1; i < NPT_ENTRIES; i++)
		if ((pt[i] & NPT_ADDR_MASK) != base + i * NPT_PAGE_4K ||
		    (pt[i] & NPT_LEAF_FLAGS) != flags)
			return;
	*pde = base | flags | NPT_PS;
	n->mm->free_page(n->mm->ctx, pa);
	n->table_pages--;
}

int npt_track_start(struct npt *n, u64 size)
{
	for (u64 gpa = 0; gpa < size; gpa += NPT_PAGE_2M) {
		u64 *pde = npt_pde(n, gpa);

		if (pde && (*pde & NPT_PS) && npt_split(n, pde))
			return -ENOMEM;
	}
	npt_harvest(n, size, NULL, NULL);
	return 0;
}

void npt_track_stop(struct npt *n, u64 size)
{
	for (u64 gpa = 0; gpa < size; gpa += NPT_PAGE_2M) {
		u64 *pde = npt_pde(n, gpa), *pt;

		if (!pde || !(*pde & NPT_P))
			continue;
		if (*pde & NPT_PS) {
			*pde |= NPT_RW;
			continue;
		}
		pt = npt_table(n, *pde & NPT_ADDR_MASK);
		for (u64 i = 0; i < NPT_ENTRIES && gpa + i * NPT_PAGE_4K < size; i++)
			if (pt[i] & NPT_P)
				pt[i] |= NPT_RW;
		npt_merge(n, pde);
	}
}

/* Marks pages [first, first + count) in bits. */
static void npt_mark(u64 *bits, u64 first, u64 count)
{
	for (u64 p = first; bits && p < first + count; p++)
		bits[p / 64] |= 1ULL << (p % 64);
}

/* The 2 MiB block at gpa: see npt_harvest. */
static u64 npt_harvest_block(struct npt *n, u64 gpa, u64 size, u64 *bits)
{
	u64 *pde = npt_pde(n, gpa), *pt, found = 0;

	if (!pde || !(*pde & NPT_P))
		return 0;
	if (*pde & NPT_PS) {
		if (!(*pde & NPT_RW))
			return 0;
		*pde &= ~NPT_RW;
		npt_mark(bits, gpa / NPT_PAGE_4K, NPT_ENTRIES);
		return NPT_ENTRIES;
	}
	pt = npt_table(n, *pde & NPT_ADDR_MASK);
	for (u64 i = 0; i < NPT_ENTRIES && gpa + i * NPT_PAGE_4K < size; i++) {
		if (!(pt[i] & NPT_P) || !(pt[i] & NPT_RW))
			continue;
		pt[i] &= ~NPT_RW;
		npt_mark(bits, gpa / NPT_PAGE_4K + i, 1);
		found++;
	}
	return found;
}

u64 npt_harvest(struct npt *n, u64 size, u64 *blocks, u64 *bits)
{
	u64 nblocks = (size + NPT_PAGE_2M - 1) / NPT_PAGE_2M, found = 0;

	if (!blocks) {
		for (u64 b = 0; b < nblocks; b++)
			found += npt_harvest_block(n, b * NPT_PAGE_2M, size, bits);
		return found;
	}
	/* Only the blocks noted since the last harvest: a reset that wrote ten
	 * pages looks at ten blocks at most, whatever the size of RAM. */
	for (u64 w = 0; w < (nblocks + 63) / 64; w++) {
		for (u64 m = blocks[w]; m; m &= m - 1) {
			u64 b = w * 64 + (u64)__builtin_ctzll(m);

			if (b < nblocks)
				found += npt_harvest_block(n, b * NPT_PAGE_2M, size, bits);
		}
		blocks[w] = 0;
	}
	return found;
}

int npt_unprotect(struct npt *n, u64 size, u64 gpa)
{
	u64 *leaf;

	if (!n->root || gpa >= size)
		return -ENOENT;
	leaf = npt_pde(n, gpa);
	if (!leaf || !(*leaf & NPT_P))
		return -ENOENT;
	if (!(*leaf & NPT_PS)) {
		leaf = &npt_table(n, *leaf & NPT_ADDR_MASK)[NPT_INDEX(gpa, 0)];
		if (!(*leaf & NPT_P))
			return -ENOENT;
	}
	if (*leaf & NPT_RW)
		return -EEXIST;
	*leaf |= NPT_RW;
	return 0;
}

/* ---- RAM that arrives after the VM starts (vmm/pager.c) ------------------ */

void npt_unmap_all(struct npt *n)
{
	u64 *root;

	if (!n->root)
		return;
	root = npt_table(n, n->root);
	for (int i = 0; i < NPT_ENTRIES; i++) {
		if ((root[i] & NPT_P) && !(root[i] & NPT_PS))
			npt_free_table(n, root[i] & NPT_ADDR_MASK, 2);
		root[i] = 0;
	}
}

int npt_fill(struct npt *n, u64 gpa, u64 hpa, u64 size, bool *merged)
{
	u64 *t, *pde, *pt;
	int err = 0;

	*merged = false;
	if (!n->root || ((gpa | hpa | size) & (NPT_PAGE_4K - 1)) || !size ||
	    (gpa & ~(NPT_PAGE_2M - 1)) != ((gpa + size - 1) & ~(NPT_PAGE_2M - 1)) ||
	    gpa + size > NPT_GPA_LIMIT || hpa + size > NPT_HPA_LIMIT)
		return -EINVAL;
	/* One walk for the whole run: a walk per page was most of what mapping
	 * a lazily restored VM cost. */
	t = npt_table(n, n->root);
	for (int level = 3; level > 1; level--) {
		t = npt_next_table(n, t, NPT_INDEX(gpa, level), &err);
		if (!t)
			return err;
	}
	pde = &t[NPT_INDEX(gpa, 1)];
	if (*pde & NPT_PS)
		return 0; /* the whole 2 MiB is there already */
	/* A whole block of which nothing is mapped: its 2 MiB leaf at once, no
	 * page table made and merged again. */
	if (!(*pde & NPT_P) && size == NPT_PAGE_2M && n->large_pages &&
	    !(hpa & (NPT_PAGE_2M - 1))) {
		*pde = hpa | NPT_P | NPT_US | NPT_RW | NPT_PS;
		return 0;
	}
	pt = npt_next_table(n, t, NPT_INDEX(gpa, 1), &err);
	if (!pt)
		return err;
	for (u64 i = NPT_INDEX(gpa, 0), off = 0; off < size; i++, off += NPT_PAGE_4K)
		if (!(pt[i] & NPT_P))
			pt[i] = (hpa + off) | NPT_P | NPT_US | NPT_RW;
	npt_merge(n, pde);
	*merged = (*pde & NPT_PS) != 0;
	return 0;
}
