/*
 * Chains of incremental snapshots in a store: each image's link (its id, and
 * the parent its PARENT record names), read from the image's first block, and
 * the chain from a snapshot down to its full image. Images are hostile: a
 * link that names no image, another image, or makes no chain is reported,
 * never followed. Pure logic over the store (kernel, amber-snap, tests).
 */
#ifndef AMBER_SNAP_CHAIN_H
#define AMBER_SNAP_CHAIN_H

#include "snapshot/store.h"

/* What the first block of an image says about its place in a chain. */
struct snap_link {
	u64 image_id;	  /* its IMAGE image_id */
	u32 header_crc;	  /* CRC32C of its 64-byte header */
	u32 vcpus;	  /* header vcpu_count */
	u64 memory_pages; /* header memory_pages */
	bool child;	  /* it has a PARENT section (damaged if the parse failed) */
	struct snap_parent parent;
};

/* Parses the first `len` bytes of an image (at least its first block).
 * Returns 0, or -EBADMSG with *why set when the header, IMAGE or PARENT is
 * damaged or misplaced. */
int snap_link_parse(const u8 *blk, u64 len, struct snap_link *l, const char **why);

/* Every entry's link and parent in the catalog. parent[i]: the entry index
 * of i's parent, SNAP_NO_PARENT for a full image, or a negative errno:
 * -EBADMSG (i's first block is damaged), -ENOENT (no entry holds the image
 * its PARENT names), -ERANGE (the parent's depth or size does not fit). */
#define SNAP_NO_PARENT (-1)
struct snap_links {
	u32 count;
	struct snap_link link[SNAP_CAT_MAX];
	int parent[SNAP_CAT_MAX];
	const char *why[SNAP_CAT_MAX]; /* the parse's finding for -EBADMSG */
};
/* Reads the first block of every entry's image; one that cannot be read
 * counts as damaged (-EBADMSG, why "unreadable"). Returns 0. */
int snap_links_read(struct snap_store *st, struct snap_links *L);

/* The chain of entry i: chain[0] = i, then its parent and so on down to the
 * full image, *n entries. Returns 0, or the failing link's errno (as in
 * parent[]) with a one-line message in why naming the snapshots. When entry
 * i's own first block is damaged the chain is i alone and 0 is returned:
 * reading the image names the damage. */
int snap_chain(const struct snap_store *st, const struct snap_links *L, u32 i,
	       int chain[SNAP_MAX_CHAIN], u32 *n, char *why, size_t len);

/* Entries whose parent is entry i: their indexes in out[] (at most max);
 * returns how many there are. */
u32 snap_children(const struct snap_links *L, u32 i, int *out, u32 max);

/* What a listing adds to entry i's name: "", " (no parent)", " (link
 * damaged)" or " (misfit)". A damaged full image gets nothing: its state
 * (the header check) says it. */
const char *snap_link_mark(const struct snap_links *L, u32 i);

/* The catalog as a tree, for listings: order[] the entries with each one's
 * children after it, depth[] each one's distance from its full image (0 for
 * full images and for children whose chain is broken). Returns count. */
u32 snap_links_tree(const struct snap_links *L, u32 *order, u8 *depth);

#endif
