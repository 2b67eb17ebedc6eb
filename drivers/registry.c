/*
 * The registry of disks found at boot, and drivers_init(), which probes every
 * driver on the PCI list and the legacy ATA ports. Context: boot and shell.
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
