/*
 * The `disk` shell command: list the disks, show one, hex-dump sectors, write
 * a recognisable pattern, flush, set the command timeout, and the sequential
 * write/read benchmark. Host context (the shell); everything goes through the
 * block-device interface (drivers/blockdev.h).
 */
#include "drivers/blockdev.h"
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"

#define DISK_CHUNK MiB(4) /* staging buffer for read, write and bench */
/* Ctrl-C is polled between requests (a 4 MiB request takes about 10 ms on
 * QEMU's virtio-blk and NVMe, 40 ms with the flush) and every DISK_DUMP_POLL
 * dumped lines (about 60 ms at 115200 baud): both under the 100 ms a person
 * notices. A request is not split further: one 4 MiB command is what tests
 * the drivers' longest transfers (NVMe's chained PRP lists). */
#define DISK_DUMP_POLL 8
#define DISK_BENCH_DEFAULT MiB(16)
#define DISK_WORD_MAX 32

struct disk_buf {
	u8 *p;
	u64 bytes;
	u64 pages;
};

/* A page-aligned staging buffer of up to `want` bytes (less if memory is
 * fragmented), at least one sector. */
static int disk_buf_get(struct disk_buf *b, u64 want, u32 sector_size)
{
	for (u64 pages = ALIGN_UP(want, PAGE_SIZE) / PAGE_SIZE; pages; pages /= 2) {
		u64 pa = pmm_alloc_contig(pages, 1);

		if (pa) {
			b->p = phys_to_virt(pa);
			b->pages = pages;
			b->bytes = ALIGN_DOWN(pages * PAGE_SIZE, sector_size);
			if (b->bytes)
				return 0;
			pmm_free_contig(pa, pages);
		}
	}
	return shell_error(-ENOMEM, "out of memory for a %llu-byte buffer",
			   (unsigned long long)want);
}

static void disk_buf_put(struct disk_buf *b) { pmm_free_contig(virt_to_phys(b->p), b->pages); }

/* Accepts an index from `disk list` or a name such as vblk0 or nvme0n2. */
static struct blkdev *disk_lookup(const char *arg)
{
	u64 idx;

	if (!parse_u64(arg, &idx) && idx < (u64)blkdev_count())
		return blkdev_get((int)idx);
	for (int i = 0; i < blkdev_count(); i++)
		if (!strcmp(blkdev_get(i)->name, arg))
			return blkdev_get(i);
	shell_err_no_disk(arg, blkdev_count());
	return NULL;
}

static int disk_report(struct blkdev *dev, int ret)
{
	return shell_error(ret, "%s (%s)", dev->error[0] ? dev->error : "request failed",
			   errno_name(ret));
}

static int disk_list(void)
{
	char size[32];
	struct json *j = ctl_data();

	if (j) {
		json_arr_begin(j, "disks");
		for (int i = 0; i < blkdev_count(); i++) {
			struct blkdev *d = blkdev_get(i);

			json_obj_begin(j, NULL);
			json_u64(j, "index", (u64)i);
			json_str(j, "name", d->name);
			json_str(j, "kind", d->kind);
			json_u64(j, "bytes", d->sectors * d->sector_size);
			json_u64(j, "sector_size", d->sector_size);
			json_str(j, "model", d->model);
			json_bool(j, "readonly", d->readonly);
			json_obj_end(j);
		}
		json_arr_end(j);
	}

	if (!blkdev_count()) {
		printk("no disks found\n");
		return 0;
	}
	/* 80 columns: the model is cut to what is left of the line. */
	printk("  #  %-9s %-10s %10s %6s  %s\n", "name", "kind", "capacity", "sector", "model");
	for (int i = 0; i < blkdev_count(); i++) {
		struct blkdev *d = blkdev_get(i);
		int room = d->readonly ? 20 : 34;

		format_size(size, sizeof(size), d->sectors * d->sector_size);
		printk("%3d  %-9s %-10s %10s %6u  %.*s%s\n", i, d->name, d->kind, size,
		       d->sector_size, room, d->model, d->readonly ? "  [read-only]" : "");
	}
	return 0;
}

static int disk_info(struct blkdev *d)
{
	char size[32];

	format_size(size, sizeof(size), d->sectors * d->sector_size);
	printk("%s: %s\n", d->name, d->kind);
	printk("  model:      %s\n", d->model[0] ? d->model : "(none)");
	printk("  serial:     %s\n", d->serial[0] ? d->serial : "(none)");
	printk("  capacity:   %s, %llu sectors of %u bytes\n", size, (unsigned long long)d->sectors,
	       d->sector_size);
	printk("  access:     %s, %s\n", d->readonly ? "read-only" : "read-write",
	       d->can_flush ? "volatile cache (flushed on request)" : "no flush needed");
	printk("  requests:   up to %u sectors per command\n", d->max_sectors);
	printk("  timeout:    %llu ms per command; %llu commands issued\n",
	       (unsigned long long)(d->timeout_us / 1000), (unsigned long long)d->commands);
	if (d->ops->info)
		d->ops->info(d);
	if (d->error[0])
		printk("  last error: %s\n", d->error);
	return 0;
}

static bool disk_line_same(const u8 *a, const u8 *b) { return !memcmp(a, b, 16); }

/* Hex dump in the style of `hexdump -C`: repeated lines are folded into "*".
 * Offsets are byte offsets on the disk. */
struct disk_dump {
	u8 prev[16];
	bool have_prev, squeezing;
};

static void disk_dump_line(struct disk_dump *st, u64 off, const u8 *p)
{
	char hex[16 * 3 + 2], asc[17];
	int h = 0;

	if (st->have_prev && disk_line_same(st->prev, p)) {
		if (!st->squeezing)
			printk("*\n");
		st->squeezing = true;
		return;
	}
	st->squeezing = false;
	st->have_prev = true;
	memcpy(st->prev, p, 16);
	for (int i = 0; i < 16; i++) {
		h += snprintf(hex + h, sizeof(hex) - h, "%02x %s", p[i], i == 7 ? " " : "");
		asc[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
	}
	asc[16] = 0;
	printk("%08llx  %s |%s|\n", (unsigned long long)off, hex, asc);
}

/* Reads COUNT sectors in chunks; dumps them when `dump`, and always prints
 * their crc32c (Castagnoli, as `crc32c` tools and tests/integration compute it).
 * `sum` also says how long the reads and the CRC took: read + CRC of an
 * image's extent is the floor for its restore (tests/bench/bench_snapshot.py). */
static int disk_read(struct blkdev *dev, u64 lba, u64 count, bool dump)
{
	struct disk_dump st = { 0 };
	struct disk_buf b;
	u64 t0, t_read = 0, t_crc = 0;
	u32 crc = 0;
	int ret = 0;

	if (disk_buf_get(&b, MIN(DISK_CHUNK, count * dev->sector_size), dev->sector_size))
		return -ENOMEM;
	for (u64 done = 0; done < count && !ret;) {
		u64 n = MIN(count - done, b.bytes / dev->sector_size);

		t0 = ticks();
		ret = blkdev_read(dev, lba + done, n, b.p);
		t_read += ticks() - t0;
		if (ret) {
			disk_buf_put(&b);
			return disk_report(dev, ret);
		}
		for (u64 i = 0; dump && i < n * dev->sector_size && !ret; i += 16) {
			disk_dump_line(&st, (lba + done) * dev->sector_size + i, b.p + i);
			if ((i / 16) % DISK_DUMP_POLL == DISK_DUMP_POLL - 1 && shell_interrupted())
				ret = -ECANCELED;
		}
		t0 = ticks();
		crc = crc32c(crc, b.p, n * dev->sector_size);
		t_crc += ticks() - t0;
		done += n;
		if (ret || (done < count && shell_interrupted())) {
			disk_buf_put(&b);
			return shell_error(-ECANCELED, "interrupted after %llu sectors",
					   (unsigned long long)done);
		}
	}
	if (dump)
		printk("%08llx\n", (unsigned long long)((lba + count) * dev->sector_size));
	printk("read %llu sector%s at LBA %llu from %s: crc32c 0x%08x\n", (unsigned long long)count,
	       count == 1 ? "" : "s", (unsigned long long)lba, dev->name, crc);
	if (!dump)
		printk("sum-result reads_us=%llu crc_us=%llu\n", (unsigned long long)t_read,
		       (unsigned long long)t_crc);
	disk_buf_put(&b);
	return 0;
}

/* PATTERN: a number 0..255 fills every byte with it; a word W fills the
 * sector at LBA L with "W@L\n" repeated (cut at the sector's end), so that
 * each sector says where it belongs. docs/storage.md gives the same rule. */
static void disk_fill(u8 *p, u64 lba, u64 count, u32 ss, int byte, const char *word)
{
	char unit[DISK_WORD_MAX + 24];

	if (byte >= 0) {
		memset(p, byte, count * ss);
		return;
	}
	for (u64 s = 0; s < count; s++, p += ss) {
		int len = snprintf(unit, sizeof(unit), "%s@%llu\n", word,
				   (unsigned long long)(lba + s));

		for (u32 i = 0; i < ss; i++)
			p[i] = (u8)unit[i % len];
	}
}

static int disk_parse_pattern(const char *arg, int *byte)
{
	u64 v;

	*byte = -1;
	if (!parse_u64(arg, &v)) {
		if (v > 255) {
			return shell_error(-EINVAL, "pattern %s: a byte value must be 0..255", arg);
		}
		*byte = (int)v;
		return 0;
	}
	if (strlen(arg) > DISK_WORD_MAX) {
		return shell_error(-EINVAL, "pattern word longer than %d characters",
				   DISK_WORD_MAX);
	}
	for (const char *c = arg; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f || *c == '@') {
			return shell_error(-EINVAL,
					   "pattern '%s': use a byte value or a word without '@'",
					   arg);
		}
	return 0;
}

static bool disk_may_overwrite(struct blkdev *dev, bool force, const char *what)
{
	if (!force && blkdev_holds_snapshots(dev)) {
		shell_error(-EPERM, "%s holds snapshots that this would destroy; add --force",
			    dev->name);
		return false;
	}
	return true;
}

static int disk_write(struct blkdev *dev, u64 lba, const char *pattern, u64 count, bool force)
{
	u64 start, commands;
	struct disk_buf b;
	int byte, ret = 0;

	if (disk_parse_pattern(pattern, &byte))
		return -EINVAL;
	if (!disk_may_overwrite(dev, force, "disk write"))
		return -EPERM;
	commands = dev->commands; /* the snapshot check above may read the disk */
	if (disk_buf_get(&b, MIN(DISK_CHUNK, count * dev->sector_size), dev->sector_size))
		return -ENOMEM;
	start = ticks();
	for (u64 done = 0; done < count && !ret;) {
		u64 n = MIN(count - done, b.bytes / dev->sector_size);

		disk_fill(b.p, lba + done, n, dev->sector_size, byte, pattern);
		ret = blkdev_write(dev, lba + done, n, b.p);
		done += n;
		if (!ret && done < count && shell_interrupted()) {
			/* What was written stays written: flush it, then say so. */
			blkdev_flush(dev);
			disk_buf_put(&b);
			return shell_error(
				-ECANCELED,
				"interrupted after %llu sectors; what was written is flushed",
				(unsigned long long)done);
		}
	}
	if (!ret)
		ret = blkdev_flush(dev);
	disk_buf_put(&b);
	if (ret)
		return disk_report(dev, ret);
	printk("wrote %llu sector%s at LBA %llu to %s and flushed (%llu commands, %llu ms)\n",
	       (unsigned long long)count, count == 1 ? "" : "s", (unsigned long long)lba, dev->name,
	       (unsigned long long)(dev->commands - commands),
	       (unsigned long long)((ticks() - start) / 1000));
	return 0;
}

/* MiB/s with one decimal, from bytes and microseconds. */
static void disk_rate(char *out, size_t len, u64 bytes, u64 us)
{
	u64 tenths = us ? (bytes * 10 * TICKS_PER_SEC / us) >> 20 : 0;

	snprintf(out, len, "%llu.%llu", (unsigned long long)(tenths / 10),
		 (unsigned long long)(tenths % 10));
}

static void disk_bench_fill(u8 *p, u64 bytes, u64 offset)
{
	for (u64 i = 0; i < bytes; i += 8)
		*(u64 *)(p + i) = (offset + i) * 0x9e3779b97f4a7c15ULL;
}

/* Sequential write of `size` bytes from LBA 0 (then a flush), then a
 * sequential read of the same range, checked against what was written. */
static int disk_bench(struct blkdev *dev, u64 size)
{
	u32 ss = dev->sector_size;
	u64 total = MIN(size, dev->sectors * ss) / ss, t0, t_write, t_read, t_crc, c0, c_write,
	    c_read;
	char rate_w[24], rate_r[24], rate_c[24], sz[32];
	u32 crc = 0;
	struct disk_buf b;
	bool verified = true;
	int ret = 0;

	if (!total) {
		return shell_error(-EINVAL, "bench size is smaller than one sector");
	}
	if (dev->readonly)
		return disk_report(dev, blkdev_check(dev, true, 0, 1));
	if (disk_buf_get(&b, MIN(DISK_CHUNK, total * ss), ss))
		return -ENOMEM;
	format_size(sz, sizeof(sz), total * ss);
	printk("bench %s: sequential write then read of %s in %llu KiB requests\n", dev->name, sz,
	       (unsigned long long)(b.bytes / 1024));

	/* Only the requests are timed: making the pattern and checking it is CPU
	 * work that would otherwise count against the disk. */
	c0 = dev->commands;
	t_write = 0;
	for (u64 done = 0; done < total && !ret;) {
		u64 n = MIN(total - done, b.bytes / ss);

		disk_bench_fill(b.p, n * ss, done * ss);
		t0 = ticks();
		ret = blkdev_write(dev, done, n, b.p);
		t_write += ticks() - t0;
		done += n;
		if (!ret && done < total && shell_interrupted())
			ret = -ECANCELED;
	}
	if (!ret) {
		t0 = ticks();
		ret = blkdev_flush(dev);
		t_write += ticks() - t0;
	}
	c_write = dev->commands - c0;

	c0 = dev->commands;
	t_read = t_crc = 0;
	for (u64 done = 0; done < total && !ret;) {
		u64 n = MIN(total - done, b.bytes / ss);

		t0 = ticks();
		ret = blkdev_read(dev, done, n, b.p);
		t_read += ticks() - t0;
		/* What checking the bytes costs (a restore CRCs all it reads):
		 * timed apart, so that read + CRC is the floor for a restore. */
		t0 = ticks();
		if (!ret)
			crc = crc32c(crc, b.p, n * ss);
		t_crc += ticks() - t0;
		if (!ret) {
			for (u64 i = 0; i < n * ss && verified; i += 8)
				verified = *(u64 *)(b.p + i) ==
					   (done * ss + i) * 0x9e3779b97f4a7c15ULL;
		}
		done += n;
		if (!ret && done < total && shell_interrupted())
			ret = -ECANCELED;
	}
	c_read = dev->commands - c0;
	disk_buf_put(&b);
	if (ret == -ECANCELED) {
		return shell_error(ret, "interrupted");
	}
	if (ret)
		return disk_report(dev, ret);

	disk_rate(rate_w, sizeof(rate_w), total * ss, t_write);
	disk_rate(rate_r, sizeof(rate_r), total * ss, t_read);
	disk_rate(rate_c, sizeof(rate_c), total * ss, t_crc);
	printk("  write: %s in %llu ms = %s MiB/s, %llu commands (flush included)\n", sz,
	       (unsigned long long)(t_write / 1000), rate_w, (unsigned long long)c_write);
	printk("  read:  %s in %llu ms = %s MiB/s, %llu commands\n", sz,
	       (unsigned long long)(t_read / 1000), rate_r, (unsigned long long)c_read);
	printk("  CRC32C of what was read: %llu ms = %s MiB/s (CPU; crc 0x%08x)\n",
	       (unsigned long long)(t_crc / 1000), rate_c, crc);
	printk("  verify: %s\n", verified ? "read data matches what was written" :
					    "MISMATCH: the disk returned other data");
	/* One line for scripts (tests/bench/bench_disk.py). */
	printk("bench-result disk=%s kind=%s bytes=%llu write_us=%llu read_us=%llu write_cmds=%llu "
	       "read_cmds=%llu verify=%s crc_us=%llu\n",
	       dev->name, dev->kind, (unsigned long long)(total * ss), (unsigned long long)t_write,
	       (unsigned long long)t_read, (unsigned long long)c_write, (unsigned long long)c_read,
	       verified ? "ok" : "bad", (unsigned long long)t_crc);
	return verified ? 0 : -EIO;
}

static int disk_set_timeout(struct blkdev *dev, const char *arg)
{
	size_t len = strlen(arg);
	u64 v, us;
	char num[24];

	if (len > 2 && len < sizeof(num) && !strcmp(arg + len - 2, "ms")) {
		memcpy(num, arg, len - 2);
		num[len - 2] = 0;
		if (parse_u64(num, &v))
			goto bad;
		us = v * 1000;
	} else {
		if (parse_u64(arg, &v) || v > 3600)
			goto bad;
		us = v * TICKS_PER_SEC;
	}
	if (us < 10000 || us > 3600 * TICKS_PER_SEC)
		goto bad;
	dev->timeout_us = us;
	printk("%s: commands now time out after %llu ms\n", dev->name,
	       (unsigned long long)(us / 1000));
	return 0;
bad:
	return shell_error(-EINVAL,
			   "timeout '%s': give seconds (1..3600) or milliseconds\n"
			   "  like 500ms (at least 10ms)",
			   arg);
}

static int disk_number(const char *what, const char *arg, u64 *v)
{
	if (parse_u64(arg, v)) {
		return shell_error(-EINVAL, "%s '%s' is not a number", what, arg);
	}
	return 0;
}

static int cmd_disk(int argc, char **argv)
{
	bool force = shell_flag(argc, argv, 1, "--force");
	struct blkdev *dev;
	u64 lba, count = 1, size = DISK_BENCH_DEFAULT;
	const char *sub = argc > 1 ? argv[1] : "list";

	if (force)
		argc--; /* --force is accepted last; drop it from the positional count */
	if (force && strcmp(argv[argc], "--force")) {
		return shell_error(-EINVAL, "put --force at the end of the command");
	}
	if (!strcmp(sub, "list") && argc <= 2)
		return disk_list();
	if (argc < 3)
		return shell_usage("disk");
	dev = disk_lookup(argv[2]);
	if (!dev)
		return -ENOENT;

	if (!strcmp(sub, "info") && argc == 3)
		return disk_info(dev);
	if (!strcmp(sub, "flush") && argc == 3) {
		int ret = blkdev_flush(dev);

		if (ret)
			return disk_report(dev, ret);
		printk("%s: flushed\n", dev->name);
		return 0;
	}
	if (!strcmp(sub, "timeout") && argc == 4)
		return disk_set_timeout(dev, argv[3]);
	if ((!strcmp(sub, "read") && (argc == 4 || argc == 5)) ||
	    (!strcmp(sub, "sum") && argc == 5)) {
		if (disk_number("LBA", argv[3], &lba) ||
		    (argc == 5 && disk_number("COUNT", argv[4], &count)))
			return -EINVAL;
		if (!count) {
			return shell_error(-EINVAL, "COUNT must be at least 1");
		}
		if (blkdev_check(dev, false, lba, count))
			return disk_report(dev, blkdev_check(dev, false, lba, count));
		return disk_read(dev, lba, count, !strcmp(sub, "read"));
	}
	if (!strcmp(sub, "write") && (argc == 5 || argc == 6)) {
		if (disk_number("LBA", argv[3], &lba) ||
		    (argc == 6 && disk_number("COUNT", argv[5], &count)))
			return -EINVAL;
		if (!count) {
			return shell_error(-EINVAL, "COUNT must be at least 1");
		}
		if (blkdev_check(dev, true, lba, count))
			return disk_report(dev, blkdev_check(dev, true, lba, count));
		return disk_write(dev, lba, argv[4], count, force);
	}
	if (!strcmp(sub, "bench") && (argc == 3 || argc == 4)) {
		if (argc == 4 && parse_size(argv[3], &size)) {
			return shell_error(-EINVAL, "size '%s': use bytes or K/M/G, e.g. 16M",
					   argv[3]);
		}
		if (!force) {
			return shell_error(
				-EPERM, "it overwrites the first %s of %s; add --force to run it",
				argc == 4 ? argv[3] : "16M", dev->name);
		}
		return disk_bench(dev, size);
	}
	return shell_usage("disk");
}

/* Kept in one table so `help disk SUB`, the usage lines and the
 * unknown-subcommand error say the same. */
static const struct shell_sub disk_subs[] = {
	{ .name = "list", .args = "", .summary = "the disks Amber found, with their sizes" },
	{ .name = "info", .args = "N", .summary = "model, capacity, cache and timeout of a disk" },
	{ .name = "read",
	  .args = "N LBA [COUNT]",
	  .summary = "hex dump of sectors, and their crc32c",
	  .help = "  COUNT sectors (default 1) from LBA; Ctrl-C stops a long dump.\n" },
	{ .name = "sum",
	  .args = "N LBA COUNT",
	  .summary = "only the crc32c of sectors, and the time",
	  .help = "  For large ranges: the crc32c of COUNT sectors and how long the reads\n"
		  "  and the CRC took (the sum-result line).\n" },
	{ .name = "write",
	  .args = "N LBA PATTERN [COUNT] [--force]",
	  .summary = "fill sectors with a pattern, then flush",
	  .help = "  PATTERN is a byte (0..255, 0xA5) that fills every byte, or a word W\n"
		  "  that fills the sector at LBA L with \"W@L\\n\" repeated. A disk that\n"
		  "  holds snapshots needs --force.\n" },
	{ .name = "flush", .args = "N", .summary = "write the disk's volatile cache out" },
	{ .name = "timeout",
	  .args = "N SECONDS|MSms",
	  .summary = "how long one command may take",
	  .help = "  Default 30 s; after a timeout the device is reset before its next\n"
		  "  command.\n" },
	{ .name = "bench",
	  .args = "N [SIZE] --force",
	  .summary = "sequential write and read speed",
	  .help = "  Writes SIZE (default 16M) from LBA 0, flushes, reads it back and\n"
		  "  checks it; reports MiB/s, commands, and how fast the CPU computes the\n"
		  "  CRC32C (a restore's floor is read + CRC). It destroys that data.\n" },
	{ NULL },
};

SHELL_COMMAND(disk, .name = "disk",
	      .summary = "list disks, dump or write sectors, benchmark a disk",
	      .help = "N: a number from 'disk list' or a disk's name (vblk0, nvme0n1, ata0).\n",
	      .fn = cmd_disk, .subs = disk_subs);
