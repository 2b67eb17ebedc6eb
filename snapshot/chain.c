/*
 * Chains of incremental snapshots (snapshot/chain.h): links read from each
 * image's first block (header, IMAGE, PARENT: docs/snapshot-format.md 1.11),
 * parents found by id and header CRC, never by name alone, and the checks a
 * chain must pass before anything follows it. Pure code.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "snapshot/chain.h"

/* Offsets in an image's first block: IMAGE is section 0, PARENT section 1. */
#define IMAGE_SEC SNAP_HEADER_SIZE
#define PARENT_SEC (IMAGE_SEC + SNAP_SECTION_HDR_SIZE + SNAP_IMAGE_SIZE)
#define LINK_BYTES (PARENT_SEC + SNAP_SECTION_HDR_SIZE + SNAP_PARENT_SIZE)
_Static_assert(LINK_BYTES <= SNAP_BLOCK, "the link lies in the first block");

int snap_link_parse(const u8 *blk, u64 len, struct snap_link *l, const char **why)
{
	struct snapshot_header h;
	struct snap_section s;
	struct snap_image_info info;

	memset(l, 0, sizeof(*l));
	if (len < LINK_BYTES) {
		*why = "image shorter than its first block";
		return -EBADMSG;
	}
	snap_header_decode(blk, &h);
	if (!snap_header_is_valid(&h)) {
		*why = "header damaged";
		return -EBADMSG;
	}
	if (snap_section_decode(blk + IMAGE_SEC, &s) || s.type != SNAP_SEC_IMAGE ||
	    s.length != SNAP_IMAGE_SIZE ||
	    s.payload_crc != crc32c(0, blk + IMAGE_SEC + SNAP_SECTION_HDR_SIZE, SNAP_IMAGE_SIZE)) {
		*why = "IMAGE section damaged";
		return -EBADMSG;
	}
	snap_image_info_decode(blk + IMAGE_SEC + SNAP_SECTION_HDR_SIZE, &info);
	l->header_crc = crc32c(0, blk, SNAP_HEADER_SIZE);
	if (info.header_crc != l->header_crc) {
		*why = "header CRC32C mismatch";
		return -EBADMSG;
	}
	l->image_id = info.image_id;
	l->vcpus = h.vcpu_count;
	l->memory_pages = h.memory_pages;
	if (snap_section_decode(blk + PARENT_SEC, &s)) {
		*why = "section 1 header damaged";
		return -EBADMSG;
	}
	if (s.type != SNAP_SEC_PARENT)
		return 0; /* a full image */
	l->child = true;  /* even if its record turns out damaged */
	if (s.length != SNAP_PARENT_SIZE ||
	    s.payload_crc !=
		    crc32c(0, blk + PARENT_SEC + SNAP_SECTION_HDR_SIZE, SNAP_PARENT_SIZE)) {
		*why = "PARENT section damaged";
		return -EBADMSG;
	}
	snap_parent_decode(blk + PARENT_SEC + SNAP_SECTION_HDR_SIZE, &l->parent);
	*why = snap_parent_check(&l->parent);
	if (*why)
		return -EBADMSG;
	if (l->parent.memory_pages != l->memory_pages) {
		*why = "parent record and header disagree on the memory size";
		return -EBADMSG;
	}
	return 0;
}

/* The depth of a linked image: 0 for a full one. */
static u32 depth_of(const struct snap_link *l) { return l->child ? l->parent.depth : 0; }

/* i's parent among the entries: matched by the id and header CRC its
 * PARENT record names, checked for depth and size. */
static int find_parent(const struct snap_store *st, const struct snap_links *L, u32 i)
{
	const struct snap_link *c = &L->link[i];

	for (u32 j = 0; j < L->count; j++) {
		const struct snap_link *p = &L->link[j];

		if (j == i || L->why[j] || st->entry[j].header_crc != c->parent.header_crc ||
		    p->header_crc != c->parent.header_crc || p->image_id != c->parent.image_id)
			continue;
		if (depth_of(p) + 1 != c->parent.depth || p->memory_pages != c->memory_pages ||
		    p->vcpus != c->vcpus)
			return -ERANGE;
		return (int)j;
	}
	return -ENOENT;
}

int snap_links_read(struct snap_store *st, struct snap_links *L)
{
	L->count = st->count;
	for (u32 i = 0; i < st->count; i++) {
		/* One unreadable image must not hide the others' links: it is
		 * marked, and whoever reads it whole hears the disk's error. */
		if (snap_store_read(st, st->entry[i].start_block, 1, st->buf)) {
			memset(&L->link[i], 0, sizeof(L->link[i]));
			L->why[i] = "unreadable";
			continue;
		}
		L->why[i] = NULL;
		if (snap_link_parse(st->buf, MIN(st->entry[i].size, (u64)SNAP_BLOCK), &L->link[i],
				    &L->why[i]))
			L->why[i] = L->why[i] ? L->why[i] : "damaged";
	}
	for (u32 i = 0; i < st->count; i++) {
		if (L->why[i])
			L->parent[i] = -EBADMSG;
		else if (!L->link[i].child)
			L->parent[i] = SNAP_NO_PARENT;
		else
			L->parent[i] = find_parent(st, L, i);
	}
	return 0;
}

/* One line on why the link from entry i is broken. */
static void broken(const struct snap_store *st, const struct snap_links *L, u32 i, int err,
		   char *why, size_t len)
{
	const char *name = st->entry[i].name, *pname = L->link[i].parent.name;

	if (err == -EBADMSG)
		snprintf(why, len, "'%s': its first block is damaged (%s)", name, L->why[i]);
	else if (err == -ERANGE)
		snprintf(why, len, "'%s' does not fit its parent '%s' (depth or size)", name,
			 pname);
	else if (snap_store_find(st, pname) >= 0)
		snprintf(why, len, "'%s' was saved over another '%s' (wrong parent)", name, pname);
	else
		snprintf(why, len, "'%s' needs its parent '%s', which is not on this disk", name,
			 pname);
}

int snap_chain(const struct snap_store *st, const struct snap_links *L, u32 i,
	       int chain[SNAP_MAX_CHAIN], u32 *n, char *why, size_t len)
{
	*n = 0;
	why[0] = '\0';
	/* Depths fall by one at each link, so a chain ends within
	 * SNAP_MAX_CHAIN steps; the bound holds even so. */
	while (*n < SNAP_MAX_CHAIN && i < L->count) {
		int p = L->parent[i];

		chain[(*n)++] = (int)i;
		/* The snapshot itself damaged: its own walk names the damage
		 * (restore and verify read it whole), so it is no link error. */
		if (p == SNAP_NO_PARENT || (p == -EBADMSG && *n == 1))
			return 0;
		if (p < 0) {
			broken(st, L, i, p, why, len);
			return p;
		}
		i = (u32)p;
	}
	snprintf(why, len, "'%s': chain longer than %d images", st->entry[chain[0]].name,
		 SNAP_MAX_CHAIN);
	return -ERANGE;
}

u32 snap_children(const struct snap_links *L, u32 i, int *out, u32 max)
{
	u32 n = 0;

	for (u32 k = 0; k < L->count; k++) {
		if (L->parent[k] != (int)i)
			continue;
		if (n < max)
			out[n] = (int)k;
		n++;
	}
	return n;
}

const char *snap_link_mark(const struct snap_links *L, u32 i)
{
	switch (L->parent[i]) {
	case -EBADMSG:
		return L->link[i].child ? " (link damaged)" : "";
	case -ENOENT:
		return " (no parent)";
	case -ERANGE:
		return " (misfit)";
	default:
		return "";
	}
}

u32 snap_links_tree(const struct snap_links *L, u32 *order, u8 *depth)
{
	bool done[SNAP_CAT_MAX] = { false };
	u32 n = 0;

	/* Roots first (full images and broken children), each followed by
	 * its subtree: an explicit stack, one visit per entry. A cycle a crafted
	 * store could hold has no root: its entries come last, at depth 0. */
	for (int pass = 0; pass < 2; pass++) {
		for (u32 r = 0; r < L->count; r++) {
			u32 stack[SNAP_CAT_MAX], sd[SNAP_CAT_MAX], top = 0;

			if (done[r] || (pass == 0 && L->parent[r] >= 0))
				continue;
			stack[top] = r;
			sd[top++] = 0;
			done[r] = true;
			while (top) {
				u32 e = stack[--top], d = sd[top];

				order[n] = e;
				depth[n++] = (u8)MIN(d, 255u);
				/* Children pushed last-first so they print in catalog order. */
				for (u32 k = L->count; k-- > 0;) {
					if (L->parent[k] != (int)e || done[k] ||
					    top >= SNAP_CAT_MAX)
						continue;
					done[k] = true;
					stack[top] = k;
					sd[top++] = d + 1;
				}
			}
		}
	}
	return n;
}
