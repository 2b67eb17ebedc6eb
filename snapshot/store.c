/*
 * The snapshot store: superblock, two generation-numbered catalog copies and
 * contiguous extents in the data area. A snapshot exists once a catalog copy
 * naming it is durable; everything before that point writes only into free
 * space. Pure logic over the block-device interface (kernel, host tool, tests).
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "snapshot/image.h"
#include "snapshot/store.h"
#include "kernel/record.h"

static const u8 sb_magic[8] = { 'A', 'M', 'B', 'E', 'R', 'S', 'N', 'P' };
static const u8 cat_magic[8] = { 'A', 'M', 'B', 'E', 'R', 'C', 'A', 'T' };
static const u64 cat_block[2] = { SNAP_CAT_A_BLOCK, SNAP_CAT_B_BLOCK };

static int __printf(3, 4) store_fail(struct snap_store *st, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return err;
}

/* Disk errors carry the driver's own explanation in dev->error. */
static int io_fail(struct snap_store *st, int err, const char *what)
{
	return store_fail(st, err, "%s %s failed: %s", st->dev->name, what,
			  st->dev->error[0] ? st->dev->error : errno_name(err));
}

int snap_store_read(struct snap_store *st, u64 block, u64 nblocks, void *buf)
{
	int ret = blkdev_read(st->dev, block * st->spb, nblocks * st->spb, buf);

	return ret ? io_fail(st, ret, "read") : 0;
}

int snap_store_write(struct snap_store *st, u64 block, u64 nblocks, const void *buf)
{
	int ret;

	/* The metadata area is written only by format and commit. */
	if (block < st->data_start || block + nblocks > st->total_blocks)
		return store_fail(st, -ERANGE, "write of blocks %llu-%llu is outside the data area",
				  (unsigned long long)block,
				  (unsigned long long)(block + nblocks - 1));
	ret = blkdev_write(st->dev, block * st->spb, nblocks * st->spb, buf);
	return ret ? io_fail(st, ret, "write") : 0;
}

static int meta_write(struct snap_store *st, u64 block, u64 nblocks, const void *buf)
{
	int ret = blkdev_write(st->dev, block * st->spb, nblocks * st->spb, buf);

	return ret ? io_fail(st, ret, "write") : 0;
}

static int flush(struct snap_store *st)
{
	int ret = blkdev_flush(st->dev);

	return ret ? io_fail(st, ret, "flush") : 0;
}

static int set_dev(struct snap_store *st, struct blkdev *dev)
{
	u32 ss = dev->sector_size;

	st->dev = dev;
	st->err[0] = '\0';
	if (ss < 512 || ss > SNAP_BLOCK || (ss & (ss - 1)))
		return store_fail(st, -EINVAL,
				  "%s: %u-byte sectors are not supported (512 to 4096)", dev->name,
				  ss);
	st->spb = SNAP_BLOCK / ss;
	return 0;
}

/* 2.2 "Catalog copy": one entry. */
static void snap_entry_fields(const struct rec *r, struct snap_entry *e)
{
	REC_STR(r, 0x00, e->name);
	REC_STR(r, 0x20, e->vm_image);
	REC(r, 0x40, e->start_block);
	REC(r, 0x48, e->size);
	REC(r, 0x50, e->ticks);
	REC(r, 0x58, e->wall);
	REC(r, 0x60, e->seq);
	REC(r, 0x68, e->memory_pages);
	REC(r, 0x70, e->state);
	REC(r, 0x74, e->header_crc);
	REC(r, 0x78, e->vm_id);
	REC(r, 0x7A, e->vcpus);
}
DEFINE_RECORD_CODEC(snap_entry, struct snap_entry, SNAP_CAT_ENTRY)

/* 2.1 "Superblock (block 0)" */
struct snap_sb {
	u8 magic[8];
	u32 version, block_size;
	u64 total_blocks, catalog_a, catalog_b;
	u32 catalog_blocks, entry_size;
	u64 data_start, store_id;
	u32 crc; /* CRC32C of bytes 0x00-0x7B */
};
#define SB_CRC_OFF 0x7C
static void snap_sb_fields(const struct rec *r, struct snap_sb *sb)
{
	REC_BYTES(r, 0x00, sb->magic);
	REC(r, 0x08, sb->version);
	REC(r, 0x0C, sb->block_size);
	REC(r, 0x10, sb->total_blocks);
	REC(r, 0x18, sb->catalog_a);
	REC(r, 0x20, sb->catalog_b);
	REC(r, 0x28, sb->catalog_blocks);
	REC(r, 0x2C, sb->entry_size);
	REC(r, 0x30, sb->data_start);
	REC(r, 0x38, sb->store_id);
	REC(r, SB_CRC_OFF, sb->crc);
}
DEFINE_RECORD_CODEC_SC(static, snap_sb, struct snap_sb, SNAP_SB_SIZE)

/* 2.2 "Catalog copy": the head before the entries. */
struct snap_cat_head {
	u8 magic[8];
	u64 generation, store_id;
	u32 count, entry_size;
	u64 next_seq;
	u32 crc; /* of the whole copy, computed with these 4 bytes as zero */
};
#define CAT_CRC_OFF 0x3C
static void snap_cat_head_fields(const struct rec *r, struct snap_cat_head *h)
{
	REC_BYTES(r, 0x00, h->magic);
	REC(r, 0x08, h->generation);
	REC(r, 0x10, h->store_id);
	REC(r, 0x18, h->count);
	REC(r, 0x1C, h->entry_size);
	REC(r, 0x20, h->next_seq);
	REC(r, CAT_CRC_OFF, h->crc);
}
DEFINE_RECORD_CODEC_SC(static, snap_cat_head, struct snap_cat_head, SNAP_CAT_HEAD)

static void sb_encode(const struct snap_store *st, u8 *out)
{
	struct snap_sb sb = { .version = SNAP_STORE_VERSION,
			      .block_size = SNAP_BLOCK,
			      .total_blocks = st->total_blocks,
			      .catalog_a = cat_block[0],
			      .catalog_b = cat_block[1],
			      .catalog_blocks = SNAP_CAT_BLOCKS,
			      .entry_size = SNAP_CAT_ENTRY,
			      .data_start = st->data_start,
			      .store_id = st->store_id };

	memcpy(sb.magic, sb_magic, 8);
	memset(out, 0, SNAP_BLOCK);
	snap_sb_encode(&sb, out);
	put_le(out + SB_CRC_OFF, crc32c(0, out, SB_CRC_OFF), 4);
}

/* Checks the superblock in buf; fills the store's geometry. */
static int sb_decode(struct snap_store *st, const u8 *in)
{
	struct snap_sb sb = { 0 };

	snap_sb_decode(in, &sb);
	if (memcmp(sb.magic, sb_magic, 8) != 0)
		return store_fail(st, -ENODATA, "%s holds no snapshot store", st->dev->name);
	if (sb.crc != crc32c(0, in, SB_CRC_OFF))
		return store_fail(st, -EBADMSG,
				  "%s: the store's superblock is damaged (CRC32C mismatch)",
				  st->dev->name);
	if (sb.version != SNAP_STORE_VERSION || sb.block_size != SNAP_BLOCK ||
	    sb.catalog_a != cat_block[0] || sb.catalog_b != cat_block[1] ||
	    sb.catalog_blocks != SNAP_CAT_BLOCKS || sb.entry_size != SNAP_CAT_ENTRY ||
	    sb.data_start != SNAP_DATA_START)
		return store_fail(st, -EBADMSG, "%s: store version %u or layout not supported",
				  st->dev->name, sb.version);
	st->total_blocks = sb.total_blocks;
	st->data_start = sb.data_start;
	st->store_id = sb.store_id;
	if (st->total_blocks < SNAP_STORE_MIN_BLOCKS)
		return store_fail(st, -EBADMSG, "%s: superblock gives an impossible size",
				  st->dev->name);
	if (st->total_blocks > st->dev->sectors / st->spb)
		return store_fail(st, -ERANGE,
				  "%s: the store spans %llu blocks but the disk has %llu",
				  st->dev->name, (unsigned long long)st->total_blocks,
				  (unsigned long long)(st->dev->sectors / st->spb));
	return 0;
}

/* True when one block of dev starting at `block` begins with `magic`. */
static bool block_starts_with(struct snap_store *st, u64 block, const void *magic, size_t len)
{
	if (block >= st->dev->sectors / st->spb || snap_store_read(st, block, 1, st->buf))
		return false;
	return memcmp(st->buf, magic, len) == 0;
}

/*
 * The overwrite guard of `disk write` (registered with blkdev_set_guard):
 * true when dev holds a store or looks as if it once did, so that one damaged
 * superblock does not leave the snapshots unprotected. It looks for the
 * superblock's magic (damaged CRC or not), either catalog copy's magic, and an
 * image header where the first image of a store goes. A read error counts as
 * "holds snapshots": the guard fails safe.
 */
bool snap_store_present(struct blkdev *dev)
{
	static struct snap_store probe; /* one command at a time; too big for the stack */
	u32 magic = SNAPSHOT_MAGIC;
	u8 snap[4];

	put_le(snap, magic, 4);
	if (set_dev(&probe, dev))
		return false;
	if (snap_store_read(&probe, 0, 1, probe.buf))
		return true;
	return block_starts_with(&probe, 0, sb_magic, 8) ||
	       block_starts_with(&probe, cat_block[0], cat_magic, 8) ||
	       block_starts_with(&probe, cat_block[1], cat_magic, 8) ||
	       block_starts_with(&probe, SNAP_DATA_START, snap, 4);
}

/* Checks the catalog copy `slot` read into st->buf; its entries land in
 * `entries`. */
static int cat_decode(struct snap_store *st, int slot, struct snap_entry *entries, u32 *count,
		      u64 *next_seq)
{
	const u8 *b = st->buf;
	char *why = st->copy[slot].why;
	struct snap_cat_head h = { 0 };
	u32 crc;

	snap_cat_head_decode(b, &h);
	if (memcmp(h.magic, cat_magic, 8) != 0) {
		strlcpy(why, "no catalog (never written)", sizeof(st->copy[slot].why));
		return -ENODATA;
	}
	crc = crc32c(0, b, CAT_CRC_OFF);
	crc = crc32c(crc, "\0\0\0\0", 4);
	crc = crc32c(crc, b + CAT_CRC_OFF + 4, SNAP_CAT_BYTES - CAT_CRC_OFF - 4);
	if (crc != h.crc) {
		strlcpy(why, "CRC32C mismatch (torn or damaged write)", sizeof(st->copy[slot].why));
		return -EBADMSG;
	}
	if (h.store_id != st->store_id || h.count > SNAP_CAT_MAX ||
	    h.entry_size != SNAP_CAT_ENTRY) {
		strlcpy(why, "wrong store id, count or entry size", sizeof(st->copy[slot].why));
		return -EBADMSG;
	}
	for (u32 i = 0; i < h.count; i++) {
		struct snap_entry *e = &entries[i];

		snap_entry_decode(b + SNAP_CAT_HEAD + i * SNAP_CAT_ENTRY, e);
		if (!snap_name_valid(e->name) ||
		    (e->state != SNAP_STATE_COMPLETE && e->state != SNAP_STATE_RECOVERED) ||
		    !e->size || e->start_block < st->data_start ||
		    e->start_block >= st->total_blocks ||
		    e->size > (st->total_blocks - e->start_block) * SNAP_BLOCK) {
			snprintf(why, sizeof(st->copy[slot].why), "entry %u is impossible", i);
			return -EBADMSG;
		}
		for (u32 k = 0; k < i; k++) {
			const struct snap_entry *o = &entries[k];

			if (strcmp(o->name, e->name) == 0 ||
			    (e->start_block < o->start_block + snap_entry_blocks(o) &&
			     o->start_block < e->start_block + snap_entry_blocks(e))) {
				snprintf(why, sizeof(st->copy[slot].why),
					 "entries %u and %u share a name or blocks", k, i);
				return -EBADMSG;
			}
		}
	}
	*count = h.count;
	*next_seq = h.next_seq;
	st->copy[slot].ok = true;
	st->copy[slot].generation = h.generation;
	return 0;
}

/* Whether [start, start+blocks) overlaps one of the first `n` entries. */
static bool overlaps_catalog(const struct snap_store *st, u32 n, u64 start, u64 blocks)
{
	for (u32 i = 0; i < n; i++) {
		const struct snap_entry *e = &st->entry[i];

		if (start < e->start_block + snap_entry_blocks(e) &&
		    e->start_block < start + blocks)
			return true;
	}
	return false;
}

/*
 * Whether the block in `blk` starts a snapshot image that fits the store at
 * `block`: a valid header and an IMAGE section whose CRCs match, the header's
 * CRC among them (the image is self-describing). Fills the entry it would have.
 */
static bool image_at(const struct snap_store *st, u64 block, const u8 *blk, struct snap_entry *e)
{
	struct snapshot_header h;
	struct snap_section s;
	struct snap_image_info info;
	const u8 *sec = blk + SNAP_HEADER_SIZE, *payload = sec + SNAP_SECTION_HDR_SIZE;

	snap_header_decode(blk, &h);
	if (!snap_header_is_valid(&h) || h.total_size % SNAP_BLOCK || h.total_size < SNAP_BLOCK ||
	    h.total_size / SNAP_BLOCK > st->total_blocks - block)
		return false;
	if (snap_section_decode(sec, &s) || s.type != SNAP_SEC_IMAGE ||
	    s.length != SNAP_IMAGE_SIZE || s.payload_crc != crc32c(0, payload, SNAP_IMAGE_SIZE))
		return false;
	snap_image_info_decode(payload, &info);
	if (info.header_crc != crc32c(0, blk, SNAP_HEADER_SIZE))
		return false;
	memset(e, 0, sizeof(*e));
	strlcpy(e->name, info.name, sizeof(e->name));
	e->start_block = block;
	e->size = h.total_size;
	e->ticks = h.timestamp;
	e->memory_pages = h.memory_pages;
	e->state = SNAP_STATE_RECOVERED;
	e->header_crc = info.header_crc;
	e->vm_id = (u16)h.vm_id;
	e->vcpus = (u16)h.vcpu_count;
	return true;
}

/* A recovered image's catalog name: its own, or "NAME.rBLOCK" when taken. */
static void recovered_name(const struct snap_store *st, struct snap_entry *e)
{
	char name[sizeof(e->name)];

	if (snap_name_valid(e->name) && snap_store_find(st, e->name) < 0)
		return;
	snprintf(name, sizeof(name), "%.16s.r%llu", snap_name_valid(e->name) ? e->name : "image",
		 (unsigned long long)e->start_block);
	strlcpy(e->name, name, sizeof(e->name));
}

#define SCAN_BLOCKS 256 /* 1 MiB per read */

/* Reads image bytes of the entry in src->ctx through a one-block bounce. */
struct entry_src {
	struct snap_store *st;
	u64 start;
	u8 *bounce;
};
static int entry_src_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	struct entry_src *es = src->ctx;
	u8 *dst = buf;
	int ret;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	if (off % SNAP_BLOCK == 0 && len % SNAP_BLOCK == 0)
		return snap_store_read(es->st, es->start + off / SNAP_BLOCK, len / SNAP_BLOCK, buf);
	while (len) {
		u64 in = off % SNAP_BLOCK, n = MIN(len, SNAP_BLOCK - in);

		ret = snap_store_read(es->st, es->start + off / SNAP_BLOCK, 1, es->bounce);
		if (ret)
			return ret;
		memcpy(dst, es->bounce + in, n);
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Whether entry e's image verifies whole: every section and page CRC. */
static int image_verifies(struct snap_store *st, const struct snap_entry *e)
{
	static struct snap_parsed p; /* one open at a time; large */
	struct entry_src es = { st, e->start_block, snap_mem_alloc(SNAP_BLOCK) };
	struct snap_source src = { entry_src_read, snap_entry_blocks(e) * SNAP_BLOCK, &es };
	struct snap_report rep = { 0 };
	int ret;

	if (!es.bounce)
		return -ENOMEM;
	ret = snap_image_open(&src, &p, &rep);
	if (!ret)
		ret = snap_image_check_pages(&src, &p, &rep, NULL, NULL);
	snap_image_close(&p);
	snap_mem_free(es.bounce, SNAP_BLOCK);
	return ret == -EBADMSG ? 0 : ret ? ret : 1;
}

/* A find at `block` inside a recovered entry (index >= first): true when that
 * entry is intact, so the find is its page data; otherwise the entry was cut
 * short by the find, which is newer, and is marked for removal. *err: errno. */
static bool inside_recovered(struct snap_store *st, u32 first, u64 block, int *err)
{
	*err = 0;
	for (u32 k = first; k < st->count; k++) {
		struct snap_entry *o = &st->entry[k];
		int ok;

		if (o->state == SNAP_STATE_DAMAGED_RECOVERY || block < o->start_block ||
		    block >= o->start_block + snap_entry_blocks(o))
			continue;
		ok = image_verifies(st, o);
		if (ok < 0) {
			*err = ok;
			return false;
		}
		if (ok)
			return true;
		o->state = SNAP_STATE_DAMAGED_RECOVERY;
	}
	return false;
}

/*
 * A catalog copy is damaged, so the catalog in use may have lost the newest
 * snapshots. Every block of the data area that no entry covers is checked for
 * the start of an image; each one found joins the catalog (in memory, state
 * "recovered"; the next commit makes it durable), so allocation never hands
 * out space a valid image occupies. A find inside an image found earlier is
 * that image's page data if the image verifies whole; if it does not, the
 * find was written later, over its tail (writing the earlier one would have
 * overwritten the find's header), and it wins. Returns 0 or the disk's errno.
 */
static int recover(struct snap_store *st)
{
	struct snap_entry found;
	u64 n, b = st->data_start;
	u8 *buf = snap_mem_alloc(SCAN_BLOCKS * SNAP_BLOCK);
	u32 first = st->count;
	int ret = 0;

	st->recovered = 0;
	while (b < st->total_blocks) {
		n = MIN((u64)(buf ? SCAN_BLOCKS : SNAP_CAT_BLOCKS), st->total_blocks - b);
		ret = snap_store_read(st, b, n, buf ? buf : st->buf);
		if (ret)
			break;
		for (u64 i = 0; i < n; i++) {
			const u8 *blk = (buf ? buf : st->buf) + i * SNAP_BLOCK;

			if (overlaps_catalog(st, first, b + i, 1) ||
			    !image_at(st, b + i, blk, &found))
				continue;
			/* Reaching into an entry of the catalog: one of the two
			 * was written over the other. The catalog's entry stays
			 * (restore checks its image); this one is not taken. */
			if (overlaps_catalog(st, first, b + i, snap_entry_blocks(&found))) {
				st->overwritten++;
				continue;
			}
			/* Inside an image found earlier: either page data of that
			 * image that looks like an image (it verifies whole: this
			 * find is not taken), or a later image written over its
			 * tail (it does not: the later one is taken instead). */
			if (inside_recovered(st, first, b + i, &ret))
				continue;
			if (ret)
				break;
			if (st->count == SNAP_CAT_MAX) {
				st->lost++;
				continue;
			}
			recovered_name(st, &found);
			found.seq = st->next_seq++;
			st->entry[st->count++] = found;
			st->recovered++;
		}
		b += n;
		if (st->progress) {
			ret = st->progress(st->progress_ctx, b - st->data_start,
					   st->total_blocks - st->data_start);
			if (ret)
				break;
		}
	}
	/* An image cut short by a later one is not restorable: it keeps its
	 * name but no space, so the later image stays protected. */
	for (u32 k = first; k < st->count;) {
		if (st->entry[k].state == SNAP_STATE_DAMAGED_RECOVERY) {
			st->overwritten++;
			st->recovered--;
			st->entry[k] = st->entry[--st->count];
		} else {
			k++;
		}
	}
	if (buf)
		snap_mem_free(buf, SCAN_BLOCKS * SNAP_BLOCK);
	if (ret == -ECANCELED)
		return store_fail(st, ret, "%s: the scan for images was cancelled", st->dev->name);
	return ret;
}

int snap_store_open(struct snap_store *st, struct blkdev *dev)
{
	static struct snap_entry other[SNAP_CAT_MAX]; /* copy B's entries while deciding */
	u32 count[2] = { 0, 0 };
	u64 next_seq[2] = { 0, 0 };
	int ret, best, dec[2];

	memset(st->copy, 0, sizeof(st->copy));
	st->count = 0;
	st->recovered = st->lost = st->overwritten = 0;
	st->damaged = false;
	ret = set_dev(st, dev);
	if (ret)
		return ret;
	ret = snap_store_read(st, 0, 1, st->buf);
	if (ret)
		return ret;
	ret = sb_decode(st, st->buf);
	if (ret)
		return ret;
	for (int slot = 0; slot < 2; slot++) {
		ret = snap_store_read(st, cat_block[slot], SNAP_CAT_BLOCKS, st->buf);
		if (ret)
			return ret;
		dec[slot] = cat_decode(st, slot, slot ? other : st->entry, &count[slot],
				       &next_seq[slot]);
	}
	/* A copy that was written but is not valid now may have named snapshots
	 * the other copy does not know: they are found again below. */
	st->damaged = (dec[0] && dec[0] != -ENODATA) || (dec[1] && dec[1] != -ENODATA);
	/* Both lost: nothing says which space is free. Refused, so that the user
	 * decides (amber-snap reads the images; 'snap format --force' starts over). */
	if (!st->copy[0].ok && !st->copy[1].ok)
		return store_fail(st, -EBADMSG,
				  "%s: both catalog copies are damaged (A: %s; B: %s)", dev->name,
				  st->copy[0].why, st->copy[1].why);
	/* The newest valid copy describes the store. */
	best = !st->copy[0].ok ||
	       (st->copy[1].ok && st->copy[1].generation > st->copy[0].generation);
	if (best == 1)
		memcpy(st->entry, other, count[1] * sizeof(other[0]));
	st->cur = best;
	st->count = count[best];
	st->generation = st->copy[best].generation;
	st->next_seq = next_seq[best];
	if (!st->damaged)
		return 0;
	ret = recover(st);
	if (ret)
		return ret;
	snprintf(st->note, sizeof(st->note), "%u image%s the catalog lacked, recovered%s",
		 st->recovered, st->recovered == 1 ? "" : "s",
		 st->lost ? " (more than it holds)" : "");
	return 0;
}

int snap_store_check_entry(struct snap_store *st, u32 i)
{
	int ret;

	if (i >= st->count)
		return -ENOENT;
	ret = snap_store_read(st, st->entry[i].start_block, 1, st->buf);
	if (ret)
		return ret;
	return crc32c(0, st->buf, SNAP_HEADER_SIZE) == st->entry[i].header_crc;
}

int snap_store_blank(struct snap_store *st, struct blkdev *dev)
{
	u64 blocks;
	int ret = set_dev(st, dev);

	if (ret)
		return ret;
	blocks = MIN((u64)SNAP_DATA_START, dev->sectors / st->spb);
	for (u64 b = 0; b < blocks; b += SNAP_CAT_BLOCKS) {
		u64 n = MIN((u64)SNAP_CAT_BLOCKS, blocks - b);

		ret = snap_store_read(st, b, n, st->buf);
		if (ret)
			return ret;
		for (u64 i = 0; i < n * SNAP_BLOCK; i++)
			if (st->buf[i])
				return 0;
	}
	return 1;
}

/* The next catalog generation in st->buf: the current entries without
 * `skip` (-1 for none), plus `add` (NULL for none). */
static void cat_encode(struct snap_store *st, const struct snap_entry *add, int skip, u64 gen,
		       u64 next_seq)
{
	u8 *b = st->buf;
	struct snap_cat_head h = { .generation = gen,
				   .store_id = st->store_id,
				   .entry_size = SNAP_CAT_ENTRY,
				   .next_seq = next_seq };

	memset(b, 0, SNAP_CAT_BYTES);
	for (u32 i = 0; i < st->count; i++)
		if ((int)i != skip)
			snap_entry_encode(&st->entry[i],
					  b + SNAP_CAT_HEAD + h.count++ * SNAP_CAT_ENTRY);
	if (add)
		snap_entry_encode(add, b + SNAP_CAT_HEAD + h.count++ * SNAP_CAT_ENTRY);
	memcpy(h.magic, cat_magic, 8);
	snap_cat_head_encode(&h, b);
	put_le(b + CAT_CRC_OFF, crc32c(0, b, SNAP_CAT_BYTES), 4);
}

static int commit(struct snap_store *st, const struct snap_entry *add, int skip)
{
	int slot = 1 - st->cur, ret;
	u64 next_seq = st->next_seq + (add ? 1 : 0);

	st->unsure = false;
	ret = flush(st); /* what the new catalog names must be durable first */
	if (ret)
		return ret;
	cat_encode(st, add, skip, st->generation + 1, next_seq);
	ret = meta_write(st, cat_block[slot], SNAP_CAT_BLOCKS, st->buf);
	if (ret)
		return ret;
	ret = flush(st);
	if (ret) {
		/* The write completed: a later read may see the new catalog or,
		 * if the disk lost its cache, the old one. The in-memory store
		 * stays as it was; the next command opens it from the disk. */
		st->unsure = true;
		return ret;
	}
	/* Durable: the in-memory catalog follows. */
	if (skip >= 0) {
		for (u32 i = (u32)skip; i + 1 < st->count; i++)
			st->entry[i] = st->entry[i + 1];
		st->count--;
	}
	if (add)
		st->entry[st->count++] = *add;
	st->copy[slot].ok = true;
	st->copy[slot].generation = st->generation + 1;
	st->cur = slot;
	st->generation++;
	st->next_seq = next_seq;
	return 0;
}

int snap_store_add(struct snap_store *st, const struct snap_entry *e)
{
	struct snap_entry add = *e;

	if (st->count == SNAP_CAT_MAX)
		return store_fail(st, -ENOSPC,
				  "the catalog is full (%d snapshots); delete one first",
				  SNAP_CAT_MAX);
	if (snap_store_find(st, e->name) >= 0)
		return store_fail(st, -EEXIST, "a snapshot named '%s' exists", e->name);
	add.seq = st->next_seq;
	add.state = SNAP_STATE_COMPLETE;
	return commit(st, &add, -1);
}

int snap_store_replace(struct snap_store *st, const struct snap_entry *e, int index)
{
	struct snap_entry add = *e;

	if (index < 0 || (u32)index >= st->count || strcmp(st->entry[index].name, e->name))
		return store_fail(st, -ENOENT, "no catalog entry '%s' to replace", e->name);
	add.seq = st->next_seq;
	add.state = SNAP_STATE_COMPLETE;
	return commit(st, &add, index);
}

int snap_store_remove(struct snap_store *st, int index)
{
	if (index < 0 || (u32)index >= st->count)
		return store_fail(st, -ENOENT, "no such catalog entry");
	return commit(st, NULL, index);
}

int snap_store_format(struct snap_store *st, struct blkdev *dev, u64 store_id)
{
	int ret = set_dev(st, dev);

	if (ret)
		return ret;
	st->total_blocks = dev->sectors / st->spb;
	if (st->total_blocks < SNAP_STORE_MIN_BLOCKS)
		return store_fail(st, -ENOSPC,
				  "%s is too small for a snapshot store (%llu KiB, needs %u KiB)",
				  dev->name, (unsigned long long)(st->total_blocks * 4),
				  SNAP_STORE_MIN_BLOCKS * 4);
	st->data_start = SNAP_DATA_START;
	st->store_id = store_id;
	st->count = 0;
	st->generation = 0;
	st->next_seq = 1;
	/* Superblock off first, on last: a format cut short leaves no store
	 * rather than a store whose catalogs do not match it. The zeroed
	 * superblock is flushed before any catalog changes: otherwise a cut
	 * could keep the old superblock with one catalog copy zeroed, and the
	 * old store would open from its other, older copy (bringing deleted
	 * snapshots back). */
	memset(st->buf, 0, SNAP_CAT_BYTES);
	ret = meta_write(st, 0, 1, st->buf);
	if (!ret)
		ret = flush(st);
	if (!ret)
		ret = meta_write(st, cat_block[1], SNAP_CAT_BLOCKS, st->buf);
	if (!ret) {
		cat_encode(st, NULL, -1, 1, 1);
		ret = meta_write(st, cat_block[0], SNAP_CAT_BLOCKS, st->buf);
	}
	if (!ret)
		ret = flush(st);
	if (!ret) {
		sb_encode(st, st->buf);
		ret = meta_write(st, 0, 1, st->buf);
	}
	if (!ret)
		ret = flush(st);
	if (ret)
		return ret;
	memset(st->copy, 0, sizeof(st->copy));
	st->copy[0].ok = true;
	st->copy[0].generation = 1;
	strlcpy(st->copy[1].why, "no catalog (never written)", sizeof(st->copy[1].why));
	st->cur = 0;
	st->generation = 1;
	return 0;
}

int snap_store_find(const struct snap_store *st, const char *name)
{
	for (u32 i = 0; i < st->count; i++)
		if (strcmp(st->entry[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

/* Walks the free extents in disk order: gaps between the entries, sorted by
 * start block (insertion sort of at most SNAP_CAT_MAX indexes). */
static void free_extents(const struct snap_store *st, bool (*fn)(void *ctx, u64 start, u64 len),
			 void *ctx)
{
	u8 order[SNAP_CAT_MAX] = { 0 };
	u64 at = st->data_start;

	for (u32 i = 0; i < st->count; i++) {
		u32 k = i;

		while (k && st->entry[order[k - 1]].start_block > st->entry[i].start_block) {
			order[k] = order[k - 1];
			k--;
		}
		order[k] = (u8)i;
	}
	for (u32 i = 0; i <= st->count; i++) {
		u64 next = i < st->count ? st->entry[order[i]].start_block : st->total_blocks;

		if (next > at && !fn(ctx, at, next - at))
			return;
		if (i < st->count)
			at = MAX(at, next + snap_entry_blocks(&st->entry[order[i]]));
	}
}

struct fit {
	u64 want, start;
	bool found;
	u64 free, largest;
};

static bool fit_first(void *ctx, u64 start, u64 len)
{
	struct fit *f = ctx;

	if (len < f->want)
		return true;
	f->start = start;
	f->found = true;
	return false;
}

static bool fit_sum(void *ctx, u64 start, u64 len)
{
	struct fit *f = ctx;

	f->free += len;
	f->largest = MAX(f->largest, len);
	return true;
}

int snap_store_alloc(const struct snap_store *st, u64 bytes, u64 *start_block)
{
	struct fit f = { .want = (bytes + SNAP_BLOCK - 1) / SNAP_BLOCK };

	if (!f.want)
		return -EINVAL;
	free_extents(st, fit_first, &f);
	if (!f.found)
		return -ENOSPC;
	*start_block = f.start;
	return 0;
}

void snap_store_space(const struct snap_store *st, u64 *free_blocks, u64 *largest_free)
{
	struct fit f = { 0 };

	free_extents(st, fit_sum, &f);
	*free_blocks = f.free;
	*largest_free = f.largest;
}

void snap_entry_dd(char *buf, size_t len, const struct snap_entry *e)
{
	snprintf(buf, len, "dd skip=%llu count=%llu bs=4096", (unsigned long long)e->start_block,
		 (unsigned long long)snap_entry_blocks(e));
}
