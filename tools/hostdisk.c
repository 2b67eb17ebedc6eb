/*
 * Host shims (see hostdisk.h): a disk backed by an image file (pread/pwrite/
 * fsync) behind the driver half of the block-device interface, whose checked
 * half is drivers/blockdev.c itself, and snap_mem_alloc over aligned_alloc.
 * Host only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/hostdisk.h"
#include "snapshot/format.h"

static int file_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	struct hostdisk *hd = (struct hostdisk *)dev;
	size_t len = count * dev->sector_size;
	ssize_t n = pread(hd->fd, buf, len, (off_t)(lba * dev->sector_size));

	if (n < 0 || (size_t)n != len)
		return blkdev_fail(dev, -EIO, "read at LBA %llu: %s", (unsigned long long)lba,
				   n < 0 ? strerror(errno) : "short read");
	return 0;
}

static int file_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	struct hostdisk *hd = (struct hostdisk *)dev;
	size_t len = count * dev->sector_size;
	ssize_t n = pwrite(hd->fd, buf, len, (off_t)(lba * dev->sector_size));

	if (n < 0 || (size_t)n != len)
		return blkdev_fail(dev, -EIO, "write at LBA %llu: %s", (unsigned long long)lba,
				   n < 0 ? strerror(errno) : "short write");
	return 0;
}

static int file_flush(struct blkdev *dev)
{
	struct hostdisk *hd = (struct hostdisk *)dev;

	return fsync(hd->fd) ? blkdev_fail(dev, -EIO, "fsync: %s", strerror(errno)) : 0;
}

static const struct blkdev_ops file_ops = {
	.read = file_read,
	.write = file_write,
	.flush = file_flush,
};

int hostdisk_open(struct hostdisk *hd, const char *path, bool writable)
{
	struct stat st;

	memset(hd, 0, sizeof(*hd));
	hd->fd = open(path, writable ? O_RDWR : O_RDONLY);
	if (hd->fd < 0 || fstat(hd->fd, &st) < 0) {
		int err = errno;

		fprintf(stderr, "%s: %s\n", path, strerror(err));
		if (hd->fd >= 0)
			close(hd->fd);
		return -err;
	}
	snprintf(hd->dev.name, sizeof(hd->dev.name), "%s", "image");
	hd->dev.kind = "file";
	hd->dev.sector_size = 512;
	hd->dev.sectors = (u64)st.st_size / 512;
	hd->dev.readonly = !writable;
	hd->dev.can_flush = true;
	hd->dev.max_sectors = 1u << 20;
	hd->dev.ops = &file_ops;
	return 0;
}

void hostdisk_close(struct hostdisk *hd)
{
	if (hd->fd >= 0)
		close(hd->fd);
	hd->fd = -1;
}

void *snap_mem_alloc(size_t size) { return aligned_alloc(4096, (size + 4095) & ~(size_t)4095); }

void snap_mem_free(void *p, size_t size) { free(p); }
