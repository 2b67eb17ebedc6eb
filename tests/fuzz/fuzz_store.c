/*
 * libFuzzer target: the snapshot store on a hostile disk (snapshot/store.c):
 * the superblock, both catalog copies, the scan that recovers images a damaged
 * catalog lost, the allocator, the overwrite guard, and each image the catalog
 * names opened through the reader, and the chains of incremental images
 * (links, chains, children, the tree `snap list` prints). The input is laid over a 1.3 MiB disk:
 * block 0, catalogs A and B (blocks 1-8), then the data area from block 256.
 * Host only.
 */
#include "tests/fuzz/fuzz_snap.h"
#include "snapshot/chain.h"
#include "snapshot/store.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define DISK_BLOCKS (SNAP_DATA_START + 80)
#define META_BYTES ((1 + 2 * SNAP_CAT_BLOCKS) * SNAP_BLOCK) /* blocks 0-8 of the input */

static u8 disk[DISK_BLOCKS * SNAP_BLOCK] __attribute__((aligned(4096)));

static int d_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	memcpy(buf, disk + lba * dev->sector_size, count * dev->sector_size);
	return 0;
}

static int d_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	memcpy(disk + lba * dev->sector_size, buf, count * dev->sector_size);
	return 0;
}

static int d_flush(struct blkdev *dev) { return 0; }

static const struct blkdev_ops ops = { .read = d_read, .write = d_write, .flush = d_flush };
static struct blkdev dev = { .name = "fuzz",
			     .sector_size = 512,
			     .sectors = sizeof(disk) / 512,
			     .max_sectors = 256,
			     .ops = &ops };
static struct snap_store st;

static int store_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	const struct snap_entry *e = src->ctx;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	memcpy(buf, disk + e->start_block * SNAP_BLOCK + off, len);
	return 0;
}

static int lines;
static void count_line(void *ctx, const char *line)
{
	if (++lines > FUZZ_MAX_LINES)
		abort();
}

/* The disk the input describes. */
static void lay(const u8 *data, size_t size)
{
	size_t meta = MIN(size, (size_t)META_BYTES);
	size_t rest = size - meta;

	memset(disk, 0, sizeof(disk));
	memcpy(disk, data, meta);
	rest = MIN(rest, sizeof(disk) - SNAP_DATA_START * SNAP_BLOCK);
	memcpy(disk + SNAP_DATA_START * SNAP_BLOCK, data + meta, rest);
	if (!(size & 1))
		return;
	/* Every other input gets consistent CRCs (see fuzz_fix_image). */
	snap_put32(disk + 0x7C, crc32c(0, disk, 0x7C));
	for (int c = 0; c < 2; c++) {
		u8 *cat = disk + (c ? SNAP_CAT_B_BLOCK : SNAP_CAT_A_BLOCK) * SNAP_BLOCK;

		snap_put32(cat + 0x3C, 0);
		snap_put32(cat + 0x3C, crc32c(0, cat, SNAP_CAT_BYTES));
	}
	fuzz_fix_image(disk + SNAP_DATA_START * SNAP_BLOCK, rest);
}

/* Whatever the images' links say, chains end within SNAP_MAX_CHAIN images
 * and follow parent[]; the tree lists every entry once. */
static void check_chains(void)
{
	static struct snap_links L;
	u32 order[SNAP_CAT_MAX], seen[SNAP_CAT_MAX] = { 0 }, n;
	u8 depth[SNAP_CAT_MAX];
	int chain[SNAP_MAX_CHAIN], kids[4];
	char why[160];

	if (snap_links_read(&st, &L))
		return;
	for (u32 i = 0; i < st.count; i++) {
		int ret = snap_chain(&st, &L, i, chain, &n, why, sizeof(why));

		if (n < 1 || n > SNAP_MAX_CHAIN || chain[0] != (int)i)
			abort();
		for (u32 k = 0; k + 1 < n; k++)
			if (L.parent[chain[k]] != chain[k + 1])
				abort();
		if (ret == 0 && L.parent[chain[n - 1]] != SNAP_NO_PARENT &&
		    !(n == 1 && L.parent[i] == -EBADMSG))
			abort();
		if (ret && !why[0])
			abort();
		snap_children(&L, i, kids, 4);
	}
	if (snap_links_tree(&L, order, depth) != st.count)
		abort();
	for (u32 k = 0; k < st.count; k++)
		if (order[k] >= st.count || seen[order[k]]++)
			abort();
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static struct snap_parsed p;
	u64 start, free_blocks, largest;

	lay(data, size);
	snap_store_present(&dev);
	if (snap_store_open(&st, &dev))
		return 0;
	snap_store_space(&st, &free_blocks, &largest);
	if (snap_store_alloc(&st, 3 * SNAP_BLOCK, &start) == 0) {
		/* Never space an entry (a recovered one included) occupies. */
		for (u32 i = 0; i < st.count; i++) {
			const struct snap_entry *e = &st.entry[i];

			if (start < e->start_block + snap_entry_blocks(e) &&
			    e->start_block < start + 3)
				abort();
		}
		if (start < st.data_start || start + 3 > st.total_blocks)
			abort();
	}
	for (u32 i = 0; i < st.count; i++) {
		struct snap_source src = { .read = store_read,
					   .size = snap_entry_blocks(&st.entry[i]) * SNAP_BLOCK,
					   .ctx = &st.entry[i] };
		struct snap_report rep = { 0 };
		int ret;

		snap_store_check_entry(&st, i);
		ret = snap_image_open(&src, &p, &rep);
		if (ret == 0 || ret == -EBADMSG) {
			lines = 0;
			snap_image_describe(&src, &p, count_line, NULL);
			snap_image_check_pages(&src, &p, &rep, NULL, NULL);
		}
		snap_image_close(&p);
		fuzz_load(&src, ret);
	}
	check_chains();
	/* A catalog the store commits must be valid when read back. */
	if (st.count && snap_store_remove(&st, 0) == 0) {
		u64 gen = st.generation;

		if (snap_store_open(&st, &dev) || st.generation != gen || !st.copy[st.cur].ok)
			abort();
	}
	return 0;
}

/* Seeds: a store with a chain of three real images (a full one, a child and
 * a grandchild), as the store itself writes it; the
 * same with copy B damaged (the recovery scan); and an empty store. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("AMBER_FUZZ_SEED_DIR");
	size_t used = META_BYTES + 64 * SNAP_BLOCK;
	u8 *out;

	if (!dir)
		return 0;
	out = malloc(used);
	memset(disk, 0, sizeof(disk));
	if (snap_store_format(&st, &dev, 0x5EED))
		abort();
	memcpy(out, disk, META_BYTES);
	fuzz_write_seed(dir, "store-empty", out, META_BYTES);
	for (u32 n = 1; n <= 3; n++) {
		struct snap_entry e = { 0 };
		struct snap_parent pr;
		u64 isize, start;
		u8 *img;

		/* seed1, seed2 a child of seed1, seed3 a child of seed2. */
		if (n == 1) {
			img = fuzz_make_image(1, &isize);
		} else {
			int p = snap_store_find(&st, n == 2 ? "seed1" : "seed2");

			fuzz_parent_of(disk + st.entry[p].start_block * SNAP_BLOCK,
				       st.entry[p].name, n - 1, &pr);
			img = fuzz_make_image_over(1, &isize, &pr, 0x300000081ULL << (n - 2));
		}
		if (snap_store_alloc(&st, isize, &start) ||
		    snap_store_write(&st, start, isize / SNAP_BLOCK, img))
			abort();
		snprintf(e.name, sizeof(e.name), "seed%u", n);
		e.start_block = start;
		e.size = isize;
		e.header_crc = crc32c(0, img, SNAP_HEADER_SIZE);
		if (snap_store_add(&st, &e))
			abort();
		free(img);
	}
	memcpy(out, disk, META_BYTES);
	memcpy(out + META_BYTES, disk + SNAP_DATA_START * SNAP_BLOCK, used - META_BYTES);
	fuzz_write_seed(dir, "store-chain", out, used);
	out[SNAP_CAT_B_BLOCK * SNAP_BLOCK + 0x21] ^= 8;
	fuzz_write_seed(dir, "store-damaged-b", out, used);
	free(out);
	exit(0);
}
