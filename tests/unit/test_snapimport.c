/*
 * Host unit tests of amber-snap import (tools/snapimport.c): images saved into
 * one disk image file (full, child, another full), cut out as `extract` does,
 * and imported into others: a blank disk refused without --format, hostile
 * files, a name that exists, the same image twice and a child without its
 * parent refused with the disk's bytes unchanged; what is imported verifies.
 */
#include <fcntl.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "kernel/lib.h"
#include "snapshot/chain.h"
#include "snapshot/image.h"
#include "tools/hostdisk.h"
#include "tools/snapimport.h"

#define PAGES 16
#define DISK_BYTES (4 << 20)

static struct hostdisk hd;
static struct snap_store st;
static struct snap_links links;
static struct snap_image img;
static struct vcpu_state vs;
static u8 guest[PAGES * PAGE_SIZE] __attribute__((aligned(4096)));
static char dir[64];

static void *guest_page(void *ctx, u64 gpa) { return gpa < sizeof(guest) ? guest + gpa : NULL; }

static int store_sink(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	return snap_store_write(&st, *(u64 *)s->ctx + off / SNAP_BLOCK, len / SNAP_BLOCK, buf);
}

static const char *path(const char *name)
{
	static char buf[4][128];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void blank(const char *name)
{
	int fd = open(path(name), O_RDWR | O_CREAT | O_TRUNC, 0644);

	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, DISK_BYTES), 0);
	close(fd);
}

/* Saves the fake guest into the store as `name` (a child of `parent`). */
static void save(const char *name, const char *parent)
{
	static struct snap_parent pr;
	struct snap_entry e = { 0 };
	struct snap_sink sink = { .write = store_sink };
	u8 raw[SNAP_HEADER_SIZE];
	u64 start, total, changed[1] = { 1 };

	memset(&img, 0, sizeof(img));
	vs.rip = 0x100000;
	img.hdr.vm_id = 1;
	img.hdr.timestamp = 1000 + st.next_seq;
	img.info.image_id = 0xB000 + st.next_seq;
	strcpy(img.info.name, name);
	strcpy(img.dev.image, "counter");
	img.nvcpus = 1;
	img.vcpu[0] = &vs;
	img.dev.mem_size = PAGES * PAGE_SIZE;
	img.nregions = 1;
	if (parent) {
		int i = snap_store_find(&st, parent);

		CHECK(i >= 0);
		CHECK_EQ(snap_links_read(&st, &links), 0);
		pr = (struct snap_parent){ .version = SNAP_PARENT_VERSION,
					   .depth = 1,
					   .image_id = links.link[i].image_id,
					   .header_crc = links.link[i].header_crc,
					   .memory_pages = PAGES,
					   .source = SNAP_DELTA_COMPARE };
		strcpy(pr.name, parent);
		img.parent = &pr;
	}
	CHECK_EQ(snap_region_init(&img.region[0], 0, PAGES, SNAP_PAGES_PER_CRC), 0);
	if (parent)
		CHECK_EQ(snap_region_scan_changed(&img.region[0], changed, guest_page, NULL, NULL,
						  NULL),
			 0);
	else
		CHECK_EQ(snap_region_scan(&img.region[0], guest_page, NULL, NULL, NULL), 0);
	total = snap_image_layout(&img);
	CHECK(total);
	CHECK_EQ(snap_store_alloc(&st, total, &start), 0);
	sink.ctx = &start;
	sink.stage = malloc(4 * SNAP_BLOCK);
	sink.stage_size = 4 * SNAP_BLOCK;
	CHECK_EQ(snap_image_write(&img, &sink, guest_page, NULL), 0);
	free(sink.stage);
	snap_region_release(&img.region[0]);
	strcpy(e.name, name);
	e.start_block = start;
	e.size = total;
	e.memory_pages = img.hdr.memory_pages;
	snap_header_encode(&img.hdr, raw);
	e.header_crc = crc32c(0, raw, sizeof(raw));
	e.vcpus = 1;
	CHECK_EQ(snap_store_add(&st, &e), 0);
}

/* `amber-snap extract`: entry `name`'s bytes into file `out`; returns size. */
static u64 extract(const char *name, const char *out)
{
	int i = snap_store_find(&st, name), fd;
	u8 *buf;
	u64 size;

	CHECK(i >= 0);
	size = st.entry[i].size;
	buf = malloc(size);
	CHECK(pread(hd.fd, buf, size, (off_t)(st.entry[i].start_block * SNAP_BLOCK)) ==
	      (ssize_t)size);
	fd = open(path(out), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, buf, size) == (ssize_t)size);
	close(fd);
	free(buf);
	return size;
}

static u8 *slurp(const char *name, u64 *len)
{
	int fd = open(path(name), O_RDONLY);
	off_t n = lseek(fd, 0, SEEK_END);
	u8 *buf = malloc((size_t)n + 1);

	CHECK(fd >= 0 && pread(fd, buf, (size_t)n, 0) == n);
	close(fd);
	*len = (u64)n;
	return buf;
}

/* import refused with `want`, the disk's bytes unchanged. */
static void refused(const char *disk, const char *file, const char *name, int want)
{
	u64 n0, n1;
	u8 *before = slurp(disk, &n0), *after;

	CHECK_EQ(snapimport(path(disk), path(file), name), want);
	after = slurp(disk, &n1);
	CHECK(n0 == n1 && !memcmp(before, after, n0));
	free(before);
	free(after);
}

static void write_file(const char *name, const u8 *buf, u64 len)
{
	int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);

	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	close(fd);
}

int main(void)
{
	u64 len;
	u8 *img_bytes;

	snprintf(dir, sizeof(dir), "/tmp/amber-import-XXXXXX");
	CHECK(mkdtemp(dir));
	for (u32 i = 0; i < sizeof(guest); i++)
		guest[i] = (u8)(i * 7 + i / PAGE_SIZE);
	blank("a.img");
	CHECK_EQ(hostdisk_open(&hd, path("a.img"), true), 0);
	CHECK_EQ(snap_store_format(&st, &hd.dev, 0x55), 0);
	save("base", NULL);
	guest[0] ^= 0xFF;
	save("kid", "base");
	save("solo", NULL);
	extract("base", "base.snap");
	extract("kid", "kid.snap");
	extract("solo", "solo.snap");
	hostdisk_close(&hd);

	blank("b.img");
	snapimport_format = false;
	refused("b.img", "base.snap", "x", 2); /* no store, no --format */
	snapimport_format = true;
	refused("b.img", "kid.snap", "x", 2); /* a child cannot start a store */
	refused("b.img", "base.img", "x", 2); /* no such file */
	refused("b.img", "a.img", "x", 2);    /* not an image */
	refused("b.img", "base.snap", "bad name", 2);
	img_bytes = slurp("base.snap", &len);
	for (u64 at = 4; at < len; at += len / 13 + 1) { /* a bit anywhere past the magic */
		img_bytes[at] ^= 4;
		write_file("bad.snap", img_bytes, len);
		refused("b.img", "bad.snap", "x", 1);
		img_bytes[at] ^= 4;
	}
	write_file("bad.snap", img_bytes, len - SNAP_BLOCK); /* cut short */
	refused("b.img", "bad.snap", "x", 1);
	free(img_bytes);

	CHECK_EQ(snapimport(path("b.img"), path("base.snap"), "moved"), 0);
	snapimport_format = false;
	refused("b.img", "base.snap", "moved", 2); /* the name exists */
	refused("b.img", "base.snap", "again", 2); /* the same image */
	CHECK_EQ(snapimport(path("b.img"), path("kid.snap"), "kid"), 0);

	blank("c.img");
	snapimport_format = true;
	CHECK_EQ(snapimport(path("c.img"), path("solo.snap"), "solo"), 0);
	refused("c.img", "kid.snap", "kid", 2); /* its parent is not there */

	/* What was imported is what was saved: the chain links, every CRC. */
	CHECK_EQ(hostdisk_open(&hd, path("b.img"), false), 0);
	CHECK_EQ(snap_store_open(&st, &hd.dev), 0);
	CHECK_EQ(st.count, 2u);
	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(links.parent[snap_store_find(&st, "kid")], snap_store_find(&st, "moved"));
	CHECK_EQ(snap_store_check_entry(&st, (u32)snap_store_find(&st, "kid")), 1);
	hostdisk_close(&hd);
	for (const char *f = "a.img\0b.img\0c.img\0base.snap\0kid.snap\0solo.snap\0bad.snap\0"; *f;
	     f += strlen(f) + 1)
		unlink(path(f));
	rmdir(dir);
	return test_done("snapimport");
}
