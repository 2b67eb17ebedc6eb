/*
 * The snapshot store: superblock, two generation-numbered catalog copies and
 * contiguous extents in the data area. A snapshot exists once a catalog copy
 * naming it is durable; everything before that point writes only into free
 * space. Pure logic over the block-device interface (kernel, host tool, tests).
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
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

static void sb_encode(const struct snap_store *st, u8 *out)
{
	memset(out, 0, SNAP_BLOCK);
	memcpy(out, sb_magic, 8);
	snap_put32(out + 0x08, SNAP_STORE_VERSION);
	snap_put32(out + 0x0C, SNAP_BLOCK);
	snap_put64(out + 0x10, st->total_blocks);
	snap_put64(out + 0x18, cat_block[0]);
	snap_put64(out + 0x20, cat_block[1]);
	snap_put32(out + 0x28, SNAP_CAT_BLOCKS);
	snap_put32(out + 0x2C, SNAP_CAT_ENTRY);
	snap_put64(out + 0x30, st->data_start);
	snap_put64(out + 0x38, st->store_id);
	snap_put32(out + 0x7C, crc32c(0, out, 0x7C));
}

/* Checks the superblock in buf; fills the store's geometry. */
static int sb_decode(struct snap_store *st, const u8 *in)
{
	if (memcmp(in, sb_magic, 8) != 0)
		return store_fail(st, -ENODATA, "%s holds no snapshot store", st->dev->name);
	if (snap_get32(in + 0x7C) != crc32c(0, in, 0x7C))
		return store_fail(st, -EBADMSG,
				  "%s: the store's superblock is damaged (CRC32C mismatch)",
				  st->dev->name);
	if (snap_get32(in + 0x08) != SNAP_STORE_VERSION || snap_get32(in + 0x0C) != SNAP_BLOCK ||
	    snap_get64(in + 0x18) != cat_block[0] || snap_get64(in + 0x20) != cat_block[1] ||
	    snap_get32(in + 0x28) != SNAP_CAT_BLOCKS || snap_get32(in + 0x2C) != SNAP_CAT_ENTRY ||
	    snap_get64(in + 0x30) != SNAP_DATA_START)
		return store_fail(st, -EBADMSG, "%s: store version %u or layout not supported",
				  st->dev->name, snap_get32(in + 0x08));
	st->total_blocks = snap_get64(in + 0x10);
	st->data_start = snap_get64(in + 0x30);
	st->store_id = snap_get64(in + 0x38);
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

bool blkdev_holds_snapshots(struct blkdev *dev)
{
	static struct snap_store probe; /* one command at a time; too big for the stack */

	if (set_dev(&probe, dev) || snap_store_read(&probe, 0, 1, probe.buf))
		return false;
	return sb_decode(&probe, probe.buf) != -ENODATA;
}

/* Checks the catalog copy `slot` read into st->buf; its entries land in
 * `entries`. */
static int cat_decode(struct snap_store *st, int slot, struct snap_entry *entries, u32 *count)
{
	const u8 *b = st->buf;
	char *why = st->copy[slot].why;
	u32 n;

	if (memcmp(b, cat_magic, 8) != 0) {
		strlcpy(why, "no catalog (never written)", sizeof(st->copy[slot].why));
		return -EBADMSG;
	}
	{
		u32 stored = snap_get32(b + 0x3C), crc;

		crc = crc32c(0, b, 0x3C);
		crc = crc32c(crc, "\0\0\0\0", 4);
		crc = crc32c(crc, b + 0x40, SNAP_CAT_BYTES - 0x40);
		if (crc != stored) {
			strlcpy(why, "CRC32C mismatch (torn or damaged write)",
				sizeof(st->copy[slot].why));
			return -EBADMSG;
		}
	}
	n = snap_get32(b + 0x18);
	if (snap_get64(b + 0x10) != st->store_id || n > SNAP_CAT_MAX ||
	    snap_get32(b + 0x1C) != SNAP_CAT_ENTRY) {
		strlcpy(why, "belongs to another store or has an impossible count",
			sizeof(st->copy[slot].why));
		return -EBADMSG;
	}
	for (u32 i = 0; i < n; i++) {
		struct snap_entry *e = &entries[i];

		snap_entry_decode(b + SNAP_CAT_HEAD + i * SNAP_CAT_ENTRY, e);
		if (!snap_name_valid(e->name) || e->state != SNAP_STATE_COMPLETE || !e->size ||
		    e->start_block < st->data_start || e->start_block >= st->total_blocks ||
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
	*count = n;
	st->copy[slot].ok = true;
	st->copy[slot].generation = snap_get64(b + 0x08);
	return 0;
}

int snap_store_open(struct snap_store *st, struct blkdev *dev)
{
	static struct snap_entry other[SNAP_CAT_MAX]; /* copy B's entries while deciding */
	u32 count[2] = { 0, 0 };
	u64 next_seq[2] = { 0, 0 };
	int ret, best;

	memset(st->copy, 0, sizeof(st->copy));
	st->count = 0;
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
		if (cat_decode(st, slot, slot ? other : st->entry, &count[slot]) == 0)
			next_seq[slot] = snap_get64(st->buf + 0x20);
	}
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
	return 0;
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
	u32 n = 0, crc;

	memset(b, 0, SNAP_CAT_BYTES);
	for (u32 i = 0; i < st->count; i++)
		if ((int)i != skip)
			snap_entry_encode(&st->entry[i], b + SNAP_CAT_HEAD + n++ * SNAP_CAT_ENTRY);
	if (add)
		snap_entry_encode(add, b + SNAP_CAT_HEAD + n++ * SNAP_CAT_ENTRY);
	memcpy(b, cat_magic, 8);
	snap_put64(b + 0x08, gen);
	snap_put64(b + 0x10, st->store_id);
	snap_put32(b + 0x18, n);
	snap_put32(b + 0x1C, SNAP_CAT_ENTRY);
	snap_put64(b + 0x20, next_seq);
	crc = crc32c(0, b, SNAP_CAT_BYTES);
	snap_put32(b + 0x3C, crc);
}

static int commit(struct snap_store *st, const struct snap_entry *add, int skip)
{
	int slot = 1 - st->cur, ret;
	u64 next_seq = st->next_seq + (add ? 1 : 0);

	ret = flush(st); /* what the new catalog names must be durable first */
	if (ret)
		return ret;
	cat_encode(st, add, skip, st->generation + 1, next_seq);
	ret = meta_write(st, cat_block[slot], SNAP_CAT_BLOCKS, st->buf);
	if (!ret)
		ret = flush(st);
	if (ret)
		return ret;
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
	 * rather than a store whose catalogs do not match it. */
	memset(st->buf, 0, SNAP_CAT_BYTES);
	ret = meta_write(st, 0, 1, st->buf);
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
