/*
 * The registry of disks and the checked entry points of the block-device
 * interface: range and read-only checks, splitting of large requests to each
 * driver's limit, and the error message a failed request leaves behind.
 * Context: host, boot (drivers_init) and shell, interrupts off.
 */
#include "drivers/ata.h"
#include "drivers/blockdev.h"
#include "drivers/nvme.h"
#include "drivers/virtio.h"
#include "kernel/lib.h"
#include "kernel/pci.h"
#include "kernel/printk.h"

static struct blkdev *blkdevs[BLKDEV_MAX];
static int blkdev_nr;

int blkdev_register(struct blkdev *dev)
{
	char size[32];

	if (blkdev_nr >= BLKDEV_MAX) {
		pr_warn("%s: not registered, Amber keeps at most %d disks\n", dev->name,
			BLKDEV_MAX);
		return -ENOSPC;
	}
	if (!dev->timeout_us)
		dev->timeout_us = BLKDEV_DEFAULT_TIMEOUT_US;
	if (!dev->max_sectors)
		dev->max_sectors = 65536;
	blkdevs[blkdev_nr] = dev;
	format_size(size, sizeof(size), dev->sectors * dev->sector_size);
	pr_info("disk %d: %s (%s) \"%s\" %s, %u-byte sectors%s\n", blkdev_nr, dev->name, dev->kind,
		dev->model, size, dev->sector_size, dev->readonly ? ", read-only" : "");
	return blkdev_nr++;
}

int blkdev_count(void) { return blkdev_nr; }

struct blkdev *blkdev_get(int index)
{
	if (index < 0 || index >= blkdev_nr)
		return NULL;
	return blkdevs[index];
}

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

__attribute__((weak)) bool blkdev_holds_snapshots(struct blkdev *dev) { return false; }

void drivers_init(void)
{
	bool ide_seen = false;

	for (int i = 0; i < pci_dev_count; i++) {
		struct pci_dev *d = &pci_devs[i];

		if (d->vendor == VIRTIO_PCI_VENDOR && (d->device == VIRTIO_PCI_DEVICE_BLK_LEGACY ||
						       d->device == VIRTIO_PCI_DEVICE_BLK_MODERN))
			virtio_blk_probe(d);
		else if (d->class_code == 0x01 && d->subclass == 0x08 && d->prog_if == 0x02)
			nvme_probe(d);
		else if (d->class_code == 0x01 && d->subclass == 0x01) {
			ata_probe_pci(d);
			ide_seen = true;
		}
	}
	/* A machine without a PCI IDE function may still have the ISA ports. */
	if (!ide_seen)
		ata_probe_legacy();
	if (!blkdev_nr)
		pr_info("disks: none found\n");
}
