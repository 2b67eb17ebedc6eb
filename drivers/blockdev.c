/*
 * The checked entry points of the block-device interface: range and read-only
 * checks, splitting of large requests to each driver's limit, and the error
 * message a failed request leaves behind. Pure: tools/amber-snap links this
 * same file over a disk-image file. Context: host and shell, interrupts off.
 */
#include "drivers/blockdev.h"
#include "kernel/lib.h"
#include "kernel/printk.h"

int blkdev_fail(struct blkdev *dev, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dev->error, sizeof(dev->error), fmt, ap);
	va_end(ap);
	return err;
}

int blkdev_check(struct blkdev *dev, bool write, u64 lba, u64 count)
{
	const char *what = write ? "write" : "read";

	if (write && dev->readonly)
		return blkdev_fail(dev, -EROFS,
				   "write refused: %s is read-only (the device says so)",
				   dev->name);
	if (count == 0)
		return 0;
	if (lba >= dev->sectors || count > dev->sectors - lba)
		return blkdev_fail(
			dev, -ERANGE,
			"%s of %llu sector%s at LBA %llu goes past the end of %s (%llu sectors)",
			what, (unsigned long long)count, count == 1 ? "" : "s",
			(unsigned long long)lba, dev->name, (unsigned long long)dev->sectors);
	return 0;
}

int blkdev_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	int ret = blkdev_check(dev, false, lba, count);

	if (ret || count == 0)
		return ret;
	if (!buf)
		return blkdev_fail(dev, -EINVAL, "read of %s: no buffer", dev->name);
	for (u64 done = 0; done < count;) {
		u64 n = MIN(count - done, (u64)dev->max_sectors);

		ret = dev->ops->read(dev, lba + done, n, (u8 *)buf + done * dev->sector_size);
		if (ret)
			return ret;
		dev->bytes_read += n * dev->sector_size;
		done += n;
	}
	return 0;
}

int blkdev_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	int ret = blkdev_check(dev, true, lba, count);

	if (ret || count == 0)
		return ret;
	if (!buf)
		return blkdev_fail(dev, -EINVAL, "write of %s: no buffer", dev->name);
	for (u64 done = 0; done < count;) {
		u64 n = MIN(count - done, (u64)dev->max_sectors);

		ret = dev->ops->write(dev, lba + done, n,
				      (const u8 *)buf + done * dev->sector_size);
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

/* A disk without a volatile cache (or a read-only one) has nothing to flush:
 * its writes are durable when they complete. */
int blkdev_flush(struct blkdev *dev)
{
	if (dev->readonly || !dev->can_flush || !dev->ops->flush)
		return 0;
	return dev->ops->flush(dev);
}

static blkdev_guard_fn guard;

void blkdev_set_guard(blkdev_guard_fn fn) { guard = fn; }

/* Without a registered guard nothing can tell whether a disk holds
 * snapshots, so every disk is treated as if it did: the check fails safe. */
bool blkdev_holds_snapshots(struct blkdev *dev) { return guard ? guard(dev) : true; }

bool blkdev_has_guard(void) { return guard != NULL; }
