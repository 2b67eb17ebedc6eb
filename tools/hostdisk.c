/*
 * Host shims (see hostdisk.h): blkdev_read/write/flush with the same range and
 * read-only checks as drivers/blockdev.c, a disk backed by an image file
 * (pread/pwrite/fsync), and snap_mem_alloc over aligned_alloc. Host only.
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

int blkdev_fail(struct blkdev *dev, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dev->error, sizeof(dev->error), fmt, ap);
	va_end(ap);
	return err;
}

static int check_range(struct blkdev *dev, const char *what, u64 lba, u64 count)
{
	if (lba >= dev->sectors || count > dev->sectors - lba)
		return blkdev_fail(dev, -ERANGE,
				   "%s of %llu sectors at LBA %llu goes past the end of %s", what,
				   (unsigned long long)count, (unsigned long long)lba, dev->name);
	return 0;
}

int blkdev_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	int ret;

	if (!count)
		return 0;
	ret = check_range(dev, "read", lba, count);
	return ret ? ret : dev->ops->read(dev, lba, count, buf);
}

int blkdev_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	int ret;

	if (!count)
		return 0;
	if (dev->readonly)
		return blkdev_fail(dev, -EROFS, "write refused: %s is read-only", dev->name);
	ret = check_range(dev, "write", lba, count);
	return ret ? ret : dev->ops->write(dev, lba, count, buf);
}

int blkdev_flush(struct blkdev *dev)
{
	if (dev->readonly || !dev->can_flush || !dev->ops->flush)
		return 0;
	return dev->ops->flush(dev);
}

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
