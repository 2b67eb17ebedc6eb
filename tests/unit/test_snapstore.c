/*
 * Host unit tests of the snapshot store (snapshot/store.c) on an in-memory disk
 * that can tear a write or fail a flush: format, commit and reopen, a torn
 * catalog write falling back to the other copy, a full disk, delete and reuse,
 * replacing an image in one commit,
 * damaged metadata, 4 KiB sectors, and a real image written through the store.
 * Host only (ASan/UBSan).
 */
#include "tests/unit/check.h"
#include "kernel/lib.h"
#include "snapshot/image.h"
#include "snapshot/store.h"

/* ---- an in-memory disk with fault injection ---------------------------------- */
struct memdisk {
	struct blkdev dev;
	u8 *data;
	long tear_after; /* sectors the next writes may still store; -1 = no limit */
	int flushes;
	int writes;
};

static int md_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	struct memdisk *m = (struct memdisk *)dev;

	memcpy(buf, m->data + lba * dev->sector_size, count * dev->sector_size);
	return 0;
}

/* A torn write: the first sectors reach the medium, then the "power fails". */
static int md_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	struct memdisk *m = (struct memdisk *)dev;
	u64 n = count;

	m->writes++;
	if (m->tear_after >= 0 && (long)count > m->tear_after)
		n = (u64)m->tear_after;
	memcpy(m->data + lba * dev->sector_size, buf, n * dev->sector_size);
	if (m->tear_after >= 0) {
		m->tear_after -= (long)n;
		if (n < count)
			return blkdev_fail(dev, -EIO, "simulated power loss after %llu sectors",
					   (unsigned long long)n);
	}
	return 0;
}

static int md_flush(struct blkdev *dev)
{
	((struct memdisk *)dev)->flushes++;
	return 0;
}

static const struct blkdev_ops md_ops = { .read = md_read, .write = md_write, .flush = md_flush };

static void md_init(struct memdisk *m, u64 bytes, u32 sector_size)
{
	memset(m, 0, sizeof(*m));
	m->data = calloc(1, bytes);
	strcpy(m->dev.name, "mem0");
	m->dev.kind = "memory";
	m->dev.sector_size = sector_size;
	m->dev.sectors = bytes / sector_size;
	m->dev.can_flush = true;
	m->dev.max_sectors = 1 << 16;
	m->dev.ops = &md_ops;
	m->tear_after = -1;
}

static struct snap_store st; /* 35 KiB: static as in the kernel */

static struct snap_entry make_entry(const char *name, u64 start, u64 size)
{
	struct snap_entry e = { 0 };

	strcpy(e.name, name);
	strcpy(e.vm_image, "memtest");
	e.start_block = start;
	e.size = size;
	e.ticks = 42;
	e.memory_pages = 1024;
	e.vm_id = 1;
	e.vcpus = 1;
	return e;
}

/* Allocates, fills with `fill` and commits a fake image of `size` bytes. */
static int save_fake(struct snap_store *s, const char *name, u64 size, u8 fill)
{
	struct snap_entry e;
	u64 start;
	u8 *buf;
	int ret = snap_store_alloc(s, size, &start);

	if (ret)
		return ret;
	buf = malloc(size);
	memset(buf, fill, size);
	ret = snap_store_write(s, start, size / SNAP_BLOCK, buf);
	free(buf);
	if (ret)
		return ret;
	e = make_entry(name, start, size);
	return snap_store_add(s, &e);
}

static bool image_holds(struct snap_store *s, const char *name, u8 fill)
{
	int i = snap_store_find(s, name);
	u8 *buf;
	bool ok = true;

	if (i < 0)
		return false;
	buf = malloc(s->entry[i].size);
	if (snap_store_read(s, s->entry[i].start_block, s->entry[i].size / SNAP_BLOCK, buf))
		ok = false;
	for (u64 k = 0; ok && k < s->entry[i].size; k++)
		ok = buf[k] == fill;
	free(buf);
	return ok;
}

static void test_format_and_commit(u32 sector_size)
{
	struct memdisk m;
	u64 free_blocks, largest;

	md_init(&m, 8 << 20, sector_size);
	CHECK_EQ(snap_store_open(&st, &m.dev), -ENODATA);
	CHECK(!blkdev_holds_snapshots(&m.dev));
	CHECK_EQ(snap_store_blank(&st, &m.dev), 1);
	CHECK_EQ(snap_store_format(&st, &m.dev, 0x1234), 0);
	CHECK(blkdev_holds_snapshots(&m.dev));
	CHECK_EQ(snap_store_blank(&st, &m.dev), 0);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 0);
	CHECK_EQ(st.generation, 1);
	CHECK_EQ(st.cur, 0);
	snap_store_space(&st, &free_blocks, &largest);
	CHECK_EQ(free_blocks, 2048 - SNAP_DATA_START);
	CHECK_EQ(largest, free_blocks);

	CHECK_EQ(save_fake(&st, "one", 64 * 1024, 0x11), 0);
	CHECK_EQ(save_fake(&st, "two", 128 * 1024, 0x22), 0);
	CHECK_EQ(save_fake(&st, "two", 4096, 0x33), -EEXIST);
	CHECK(strstr(st.err, "exists") != NULL);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 2);
	CHECK_EQ(st.generation, 3);
	CHECK_EQ(st.cur, 0); /* gen 1 in A, 2 in B, 3 in A */
	CHECK(st.copy[0].ok && st.copy[1].ok);
	CHECK_EQ(st.copy[1].generation, 2);
	CHECK(image_holds(&st, "one", 0x11));
	CHECK(image_holds(&st, "two", 0x22));
	CHECK_EQ(st.entry[0].seq, 1);
	CHECK_EQ(st.entry[1].seq, 2);
	CHECK_EQ(st.entry[0].start_block, SNAP_DATA_START);
	CHECK_EQ(st.entry[1].start_block, SNAP_DATA_START + 16);
	CHECK_STR(st.entry[1].vm_image, "memtest");
	free(m.data);
}

static void test_torn_catalog(void)
{
	struct memdisk m;
	int flushes;

	md_init(&m, 8 << 20, 512);
	CHECK_EQ(snap_store_format(&st, &m.dev, 7), 0);
	CHECK_EQ(save_fake(&st, "keep", 8192, 0x5A), 0); /* gen 2, in B */
	/* Enough entries that the catalog spans several sectors, so a tear
	 * leaves new sectors beside old ones. */
	for (int i = 0; i < 20; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		CHECK_EQ(save_fake(&st, name, 4096, (u8)i), 0);
	}
	CHECK_EQ(st.generation, 22);
	CHECK_EQ(st.cur, 1);

	/* The image lands, then the catalog write is torn after 3 sectors. */
	{
		struct snap_entry e;
		u64 start;
		u8 buf[8192];

		CHECK_EQ(snap_store_alloc(&st, sizeof(buf), &start), 0);
		memset(buf, 0x77, sizeof(buf));
		CHECK_EQ(snap_store_write(&st, start, 2, buf), 0);
		flushes = m.flushes;
		m.tear_after = 3;
		e = make_entry("lost", start, sizeof(buf));
		CHECK_EQ(snap_store_add(&st, &e), -EIO);
		CHECK(m.flushes > flushes); /* the image was flushed before the catalog */
		CHECK(strstr(st.err, "power loss") != NULL);
		m.tear_after = -1;
	}
	/* After the "reboot" copy A (torn gen 23) fails its CRC; B (gen 22) rules. */
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK(!st.copy[0].ok);
	CHECK(strstr(st.copy[0].why, "CRC32C") != NULL);
	CHECK_EQ(st.cur, 1);
	CHECK_EQ(st.generation, 22);
	CHECK_EQ(st.count, 21);
	CHECK(image_holds(&st, "keep", 0x5A));
	CHECK_EQ(snap_store_find(&st, "lost"), -ENOENT);

	/* The store keeps working: the next commit rewrites copy A. */
	CHECK_EQ(save_fake(&st, "after", 4096, 0x66), 0);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.cur, 0);
	CHECK_EQ(st.generation, 23);
	CHECK_EQ(st.count, 22);
	CHECK(image_holds(&st, "after", 0x66));
	CHECK(image_holds(&st, "f19", 19));

	/* Torn in the middle of an image: nothing committed, nothing lost. */
	m.tear_after = 1;
	CHECK(save_fake(&st, "half", 64 * 1024, 0x99) != 0);
	m.tear_after = -1;
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 22);
	CHECK(image_holds(&st, "keep", 0x5A));

	/* Both copies damaged: refused with the reasons. */
	memset(m.data + SNAP_CAT_A_BLOCK * SNAP_BLOCK + 100, 0xFF, 4);
	memset(m.data + SNAP_CAT_B_BLOCK * SNAP_BLOCK + 100, 0xFF, 4);
	CHECK_EQ(snap_store_open(&st, &m.dev), -EBADMSG);
	CHECK(strstr(st.err, "both catalog copies") != NULL);
	/* A damaged superblock is not "no store": disk write must still refuse. */
	m.data[0x40] ^= 1;
	CHECK_EQ(snap_store_open(&st, &m.dev), -EBADMSG);
	CHECK(blkdev_holds_snapshots(&m.dev));
	free(m.data);
}

static void test_disk_full(void)
{
	struct memdisk m;
	u64 free_blocks, largest, start;

	md_init(&m, 2 << 20, 512); /* 1 MiB of metadata, 1 MiB of data */
	CHECK_EQ(snap_store_format(&st, &m.dev, 9), 0);
	CHECK_EQ(save_fake(&st, "a", 512 * 1024, 0xA1), 0);
	CHECK_EQ(save_fake(&st, "b", 256 * 1024, 0xB2), 0);
	CHECK_EQ(snap_store_alloc(&st, 512 * 1024, &start), -ENOSPC);
	CHECK_EQ(save_fake(&st, "c", 512 * 1024, 0xC3), -ENOSPC);
	snap_store_space(&st, &free_blocks, &largest);
	CHECK_EQ(free_blocks, 64);
	CHECK_EQ(largest, 64);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 2);
	CHECK(image_holds(&st, "a", 0xA1));
	CHECK(image_holds(&st, "b", 0xB2));

	/* Delete frees the extent; first fit reuses the hole. */
	CHECK_EQ(snap_store_remove(&st, snap_store_find(&st, "a")), 0);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 1);
	CHECK_EQ(snap_store_alloc(&st, 100 * 1024, &start), 0);
	CHECK_EQ(start, SNAP_DATA_START);
	CHECK_EQ(save_fake(&st, "c", 512 * 1024, 0xC3), 0);
	CHECK(image_holds(&st, "b", 0xB2));
	CHECK(image_holds(&st, "c", 0xC3));

	/* Writes outside the data area are refused. */
	CHECK_EQ(snap_store_write(&st, 0, 1, m.data), -ERANGE);
	free(m.data);

	md_init(&m, 1 << 20, 512);
	CHECK_EQ(snap_store_format(&st, &m.dev, 1), -ENOSPC);
	CHECK(strstr(st.err, "too small") != NULL);
	free(m.data);
}

static void test_catalog_full(void)
{
	struct memdisk m;
	char name[32];

	md_init(&m, 4 << 20, 512);
	CHECK_EQ(snap_store_format(&st, &m.dev, 3), 0);
	for (int i = 0; i < SNAP_CAT_MAX; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		CHECK_EQ(save_fake(&st, name, 4096, (u8)i), 0);
	}
	CHECK_EQ(save_fake(&st, "extra", 4096, 1), -ENOSPC);
	CHECK(strstr(st.err, "catalog is full") != NULL);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, SNAP_CAT_MAX);
	CHECK(image_holds(&st, "s126", 126));
	free(m.data);
}

/* ---- a real image through the store, as `snap save` / `snap verify` do ------- */
struct store_io {
	struct snap_store *st;
	u64 start;
};

static int store_sink_write(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	struct store_io *io = s->ctx;

	return snap_store_write(io->st, io->start + off / SNAP_BLOCK, len / SNAP_BLOCK, buf);
}

static int store_src_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	struct store_io *io = src->ctx;
	u64 first = off / SNAP_BLOCK, last = (off + len + SNAP_BLOCK - 1) / SNAP_BLOCK;
	u8 *tmp = malloc((last - first) * SNAP_BLOCK);
	int ret = snap_store_read(io->st, io->start + first, last - first, tmp);

	memcpy(buf, tmp + off % SNAP_BLOCK, len);
	free(tmp);
	return ret;
}

static void *guest_page(void *ctx, u64 gpa) { return (u8 *)ctx + gpa; }

static void test_real_image(void)
{
	static struct vcpu_state vs;
	static struct snap_image img;
	static struct snap_parsed p;
	struct memdisk m;
	struct store_io io = { &st, 0 };
	struct snap_sink sink = { .write = store_sink_write, .ctx = &io };
	struct snap_source src = { .read = store_src_read, .ctx = &io };
	struct snap_report rep = { 0 };
	struct snap_entry e;
	u8 *mem = aligned_alloc(4096, 64 * PAGE_SIZE);
	u8 stage[2 * SNAP_BLOCK];
	u8 raw[SNAP_HEADER_SIZE];

	memset(mem, 0, 64 * PAGE_SIZE);
	memcpy(mem + 5 * PAGE_SIZE, "counter=41", 10);
	vs.rip = 0x100000;
	vs.xsave_size = 576;
	img.nvcpus = 1;
	img.vcpu[0] = &vs;
	img.nregions = 1;
	strcpy(img.info.name, "real");
	CHECK_EQ(snap_region_init(&img.region[0], 0, 64, SNAP_PAGES_PER_CRC), 0);
	CHECK_EQ(snap_region_scan(&img.region[0], guest_page, mem, NULL, NULL), 0);
	CHECK_EQ(img.region[0].stored, 1);
	CHECK(snap_image_layout(&img) > 0);

	md_init(&m, 4 << 20, 4096);
	CHECK_EQ(snap_store_format(&st, &m.dev, 5), 0);
	CHECK_EQ(snap_store_alloc(&st, img.hdr.total_size, &io.start), 0);
	sink.stage = stage;
	sink.stage_size = sizeof(stage);
	CHECK_EQ(snap_image_write(&img, &sink, guest_page, mem), 0);
	e = make_entry("real", io.start, img.hdr.total_size);
	snap_header_encode(&img.hdr, raw);
	e.header_crc = crc32c(0, raw, sizeof(raw));
	CHECK_EQ(snap_store_add(&st, &e), 0);
	snap_region_release(&img.region[0]);

	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	io.start = st.entry[0].start_block;
	src.size = snap_entry_blocks(&st.entry[0]) * SNAP_BLOCK;
	CHECK_EQ(snap_image_open(&src, &p, &rep), 0);
	CHECK_EQ(snap_image_check_pages(&src, &p, &rep, NULL, NULL), 0);
	CHECK_EQ(rep.errors, 0);
	CHECK_EQ(p.hdr.memory_pages, 64);
	CHECK_EQ(crc32c(0, p.hdr_raw, SNAP_HEADER_SIZE), st.entry[0].header_crc);
	memset(mem, 0xFF, 64 * PAGE_SIZE);
	CHECK_EQ(snap_image_load_pages(&src, &p, guest_page, mem, &rep, NULL, NULL), 0);
	CHECK(memcmp(mem + 5 * PAGE_SIZE, "counter=41", 10) == 0);
	CHECK_EQ(mem[0], 0);
	snap_image_close(&p);
	free(mem);
	free(m.data);
}

/* A real image named `name` written through the store and committed. */
static void save_real(struct snap_store *s, const char *name, u32 pages, u8 *mem)
{
	static struct vcpu_state vs;
	static struct snap_image img;
	struct store_io io = { s, 0 };
	struct snap_sink sink = { .write = store_sink_write, .ctx = &io };
	struct snap_entry e;
	u8 stage[2 * SNAP_BLOCK];
	u8 raw[SNAP_HEADER_SIZE];

	memset(&img, 0, sizeof(img));
	vs.xsave_size = 0;
	img.nvcpus = 1;
	img.vcpu[0] = &vs;
	img.nregions = 1;
	strcpy(img.info.name, name);
	CHECK_EQ(snap_region_init(&img.region[0], 0, pages, SNAP_PAGES_PER_CRC), 0);
	CHECK_EQ(snap_region_scan(&img.region[0], guest_page, mem, NULL, NULL), 0);
	CHECK(snap_image_layout(&img) > 0);
	CHECK_EQ(snap_store_alloc(s, img.hdr.total_size, &io.start), 0);
	sink.stage = stage;
	sink.stage_size = sizeof(stage);
	CHECK_EQ(snap_image_write(&img, &sink, guest_page, mem), 0);
	e = make_entry(name, io.start, img.hdr.total_size);
	snap_header_encode(&img.hdr, raw);
	e.header_crc = crc32c(0, raw, sizeof(raw));
	CHECK_EQ(snap_store_add(s, &e), 0);
	snap_region_release(&img.region[0]);
}

/* True when no two entries (recovered ones included) share a block, and
 * `start` (a new allocation of `blocks`) overlaps none of them. */
static bool alloc_is_free(const struct snap_store *s, u64 start, u64 blocks)
{
	for (u32 i = 0; i < s->count; i++) {
		const struct snap_entry *e = &s->entry[i];

		if (start < e->start_block + snap_entry_blocks(e) &&
		    e->start_block < start + blocks)
			return false;
	}
	return true;
}

/* Issue 12 defect 2: one flipped bit in the catalog copy in use (bit 3 of
 * byte 0x5021, copy B after the first save) must not lose snapshot A, and the
 * next allocation must not be placed over it. */
static void test_damaged_catalog_recovery(void)
{
	struct memdisk m;
	u8 *mem = aligned_alloc(4096, 32 * PAGE_SIZE);
	u64 start;

	memset(mem, 0, 32 * PAGE_SIZE);
	memcpy(mem + 3 * PAGE_SIZE, "guest A", 7);
	md_init(&m, 8 << 20, 512);
	CHECK_EQ(snap_store_format(&st, &m.dev, 9), 0);
	save_real(&st, "A", 32, mem);
	CHECK_EQ(st.cur, 1);
	m.data[0x5021] ^= 1 << 3;

	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK(st.damaged);
	CHECK(!st.copy[1].ok);
	CHECK_EQ(st.recovered, 1);
	CHECK_EQ(st.count, 1);
	CHECK(snap_store_find(&st, "A") >= 0);
	CHECK_EQ(st.entry[0].state, SNAP_STATE_RECOVERED);
	CHECK_EQ(st.entry[0].start_block, SNAP_DATA_START);
	CHECK_EQ(snap_store_check_entry(&st, 0), 1);
	CHECK(strstr(st.note, "1 image") != NULL);
	CHECK_EQ(snap_store_alloc(&st, 64 * 1024, &start), 0);
	CHECK(alloc_is_free(&st, start, 16));

	/* The next save commits the repaired catalog; both copies valid again. */
	memcpy(mem + 3 * PAGE_SIZE, "guest B", 7);
	save_real(&st, "B", 32, mem);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK(!st.damaged);
	CHECK_EQ(st.count, 2);
	CHECK(snap_store_find(&st, "A") >= 0 && snap_store_find(&st, "B") >= 0);
	CHECK_EQ(st.entry[snap_store_find(&st, "A")].state, SNAP_STATE_RECOVERED);
	CHECK_EQ(st.entry[snap_store_find(&st, "B")].state, SNAP_STATE_COMPLETE);
	for (u32 i = 0; i < st.count; i++)
		CHECK_EQ(snap_store_check_entry(&st, i), 1);

	/* A catalog entry whose image was overwritten is reported, not trusted. */
	m.data[st.entry[0].start_block * SNAP_BLOCK + 8] ^= 1;
	CHECK_EQ(snap_store_check_entry(&st, 0), 0);
	free(m.data);
	free(mem);
}

/* Two found images that overlap: the later-starting one was written later
 * (it would have lost its header otherwise) and is kept; the other is counted
 * as overwritten, and its blocks outside the kept one are free again. */
static void test_recovery_overlap(void)
{
	struct memdisk m;
	u8 *mem = aligned_alloc(4096, 32 * PAGE_SIZE);
	u64 size, blocks;

	memset(mem, 0, 32 * PAGE_SIZE);
	memcpy(mem + 7 * PAGE_SIZE, "guest X", 7);
	md_init(&m, 8 << 20, 512);
	CHECK_EQ(snap_store_format(&st, &m.dev, 13), 0);
	save_real(&st, "X", 32, mem);
	size = st.entry[0].size;
	blocks = snap_entry_blocks(&st.entry[0]);
	CHECK(blocks >= 3);
	/* The same image again, two blocks further on, over X's tail. */
	memmove(m.data + (SNAP_DATA_START + 2) * SNAP_BLOCK, m.data + SNAP_DATA_START * SNAP_BLOCK,
		size);
	m.data[SNAP_CAT_B_BLOCK * SNAP_BLOCK + 0x21] ^= 8; /* the copy naming X */
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK(st.damaged);
	CHECK_EQ(st.count, 1);
	CHECK_EQ(st.recovered, 1);
	CHECK_EQ(st.overwritten, 1);
	CHECK_EQ(st.entry[0].start_block, SNAP_DATA_START + 2);
	CHECK_STR(st.entry[0].name, "X.r258");
	CHECK_EQ(snap_store_check_entry(&st, 0), 1);

	/* A guest whose memory holds an image (its first block at a page
	 * boundary): inside an image that verifies, that is page data. */
	memset(m.data, 0, 8 << 20);
	CHECK_EQ(snap_store_format(&st, &m.dev, 14), 0);
	save_real(&st, "X", 32, mem);
	memcpy(mem + 9 * PAGE_SIZE, m.data + SNAP_DATA_START * SNAP_BLOCK, PAGE_SIZE);
	save_real(&st, "Z", 32, mem);
	CHECK_EQ(st.cur, 0);
	m.data[SNAP_CAT_A_BLOCK * SNAP_BLOCK + 0x21] ^= 8; /* the copy naming Z */
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK(st.damaged);
	CHECK_EQ(st.recovered, 1);
	CHECK_EQ(st.overwritten, 0);
	CHECK_EQ(st.count, 2);
	CHECK(snap_store_find(&st, "Z") >= 0);
	CHECK_EQ(snap_store_find(&st, "X.r"), -ENOENT);
	free(m.data);
	free(mem);
}

/* Issue 12 defect 3: a flipped superblock magic leaves a disk that still
 * looks like a store (catalog copies, an image header), so the overwrite
 * guard of `disk write` still holds; a blank disk is not guarded. */
static void test_guard_without_superblock(void)
{
	struct memdisk m;

	md_init(&m, 8 << 20, 512);
	CHECK(!blkdev_holds_snapshots(&m.dev));
	CHECK_EQ(snap_store_format(&st, &m.dev, 11), 0);
	m.data[0] ^= 0x01;
	CHECK_EQ(snap_store_open(&st, &m.dev), -ENODATA);
	CHECK(blkdev_holds_snapshots(&m.dev));
	memset(m.data + SNAP_CAT_A_BLOCK * SNAP_BLOCK, 0, 8);
	CHECK(!blkdev_holds_snapshots(&m.dev)); /* catalog B was never written */
	/* An image header where a store's first image goes is enough. */
	memcpy(m.data + SNAP_DATA_START * SNAP_BLOCK, "SNAP", 4);
	CHECK(blkdev_holds_snapshots(&m.dev));
	free(m.data);
}

/* Writes a fake image like save_fake and commits it in place of `name`. */
static int replace_fake(struct snap_store *s, const char *name, u64 size, u8 fill)
{
	struct snap_entry e;
	u64 start;
	u8 *buf;
	int ret = snap_store_alloc(s, size, &start);

	if (ret)
		return ret;
	buf = malloc(size);
	memset(buf, fill, size);
	ret = snap_store_write(s, start, size / SNAP_BLOCK, buf);
	free(buf);
	if (ret)
		return ret;
	e = make_entry(name, start, size);
	return snap_store_replace(s, &e, snap_store_find(s, name));
}

/* `snap save --replace`: the new image goes beside the old one, one catalog
 * commit swaps them; a torn image or catalog write keeps the old one. */
static void test_replace(void)
{
	struct memdisk m;
	u64 old_start, free_blocks, largest;

	md_init(&m, 2 << 20, 512); /* 1 MiB for images */
	CHECK_EQ(snap_store_format(&st, &m.dev, 13), 0);
	CHECK_EQ(save_fake(&st, "a", 256 * 1024, 0xA1), 0);
	CHECK_EQ(save_fake(&st, "b", 64 * 1024, 0xB2), 0);
	old_start = st.entry[snap_store_find(&st, "a")].start_block;

	/* Torn in the image: nothing committed, the old 'a' is whole. */
	m.tear_after = 2;
	CHECK(replace_fake(&st, "a", 256 * 1024, 0xA2) != 0);
	m.tear_after = -1;
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 2);
	CHECK(image_holds(&st, "a", 0xA1));

	/* Power lost at the catalog write (a catalog this small fits in one
	 * sector, so any part of it that lands is all of it): the copy in use
	 * still names the old 'a'. */
	{
		struct snap_entry e;
		u64 start;
		u8 *buf = malloc(256 * 1024);

		CHECK_EQ(snap_store_alloc(&st, 256 * 1024, &start), 0);
		CHECK(start != old_start);
		memset(buf, 0xA3, 256 * 1024);
		CHECK_EQ(snap_store_write(&st, start, 64, buf), 0);
		free(buf);
		m.tear_after = 0;
		e = make_entry("a", start, 256 * 1024);
		CHECK_EQ(snap_store_replace(&st, &e, snap_store_find(&st, "a")), -EIO);
		m.tear_after = -1;
	}
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 2);
	CHECK(image_holds(&st, "a", 0xA1));

	/* Done: one entry named 'a', the new image, the old extent free. */
	CHECK_EQ(replace_fake(&st, "a", 256 * 1024, 0xA4), 0);
	CHECK_EQ(snap_store_open(&st, &m.dev), 0);
	CHECK_EQ(st.count, 2);
	CHECK(image_holds(&st, "a", 0xA4));
	CHECK(image_holds(&st, "b", 0xB2));
	CHECK(st.entry[snap_store_find(&st, "a")].start_block != old_start);
	snap_store_space(&st, &free_blocks, &largest);
	CHECK_EQ(free_blocks, 256 - 64 - 16);
	/* Room for the new image is needed beside the old one. */
	CHECK_EQ(replace_fake(&st, "a", 768 * 1024, 0xA5), -ENOSPC);
	CHECK(image_holds(&st, "a", 0xA4));
	/* Only an entry of that name is replaced. */
	{
		struct snap_entry e = make_entry("c", old_start, 4096);

		CHECK_EQ(snap_store_replace(&st, &e, snap_store_find(&st, "a")), -ENOENT);
		CHECK_EQ(snap_store_replace(&st, &e, -ENOENT), -ENOENT);
	}
	free(m.data);
}

int main(void)
{
	blkdev_set_guard(snap_store_present);
	test_format_and_commit(512);
	test_format_and_commit(4096);
	test_torn_catalog();
	test_disk_full();
	test_catalog_full();
	test_replace();
	test_real_image();
	test_damaged_catalog_recovery();
	test_recovery_overlap();
	test_guard_without_superblock();
	return test_done("snapstore");
}
