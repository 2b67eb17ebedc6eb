/*
 * One block-device interface for every disk Amber drives (virtio-blk, NVMe,
 * ATA), and the registry of disks found at boot. The snapshot code talks only
 * to this interface and never learns what kind of disk it has.
 *
 * Requests are synchronous and polled (host context, interrupts off). They may
 * be of any length; the driver splits them to its limits. On failure a request
 * returns a negative errno and leaves a one-line explanation in dev->error.
 */
#ifndef AMBER_BLOCKDEV_H
#define AMBER_BLOCKDEV_H

#include "kernel/types.h"

struct blkdev;

struct blkdev_ops {
	/* buf is a kernel virtual address; drivers translate with virt_to_phys
	 * and bounce when their DMA constraints require it. */
	int (*read)(struct blkdev *dev, u64 lba, u64 count, void *buf);
	int (*write)(struct blkdev *dev, u64 lba, u64 count, const void *buf);
	int (*flush)(struct blkdev *dev);
	/* Optional: prints driver details for `disk info` (queue, transport). */
	void (*info)(struct blkdev *dev);
};

struct blkdev {
	char name[16];	  /* "vblk0", "nvme0n1", "ata0" */
	const char *kind; /* "virtio-blk", "nvme", "ata" */
	char model[41];
	char serial[21];
	u32 sector_size;
	u64 sectors;
	bool readonly;
	bool can_flush;
	u32 max_sectors; /* per driver call; blkdev_read/write split larger requests */
	u64 timeout_us;	 /* how long one device command may take (`disk timeout`) */
	u64 commands;	 /* device commands issued (for `disk bench`, `make bench`) */
	u64 bytes_read;	 /* bytes the disk delivered (restore's once-per-byte count) */
	char error[128];
	const struct blkdev_ops *ops;
	void *priv;
};

#define BLKDEV_MAX 16
/* No storage spec bounds an I/O command's duration; 30 s is the I/O timeout
 * Linux uses for SCSI, ATA and NVMe, long enough for a spinning disk's flush. */
#define BLKDEV_DEFAULT_TIMEOUT_US (30 * 1000000ULL)

/* Registers a disk found by a driver; returns its index or -ENOSPC. */
int blkdev_register(struct blkdev *dev);
int blkdev_count(void);
struct blkdev *blkdev_get(int index);

/* Validates a request without issuing it: -EROFS for a write to a read-only
 * disk, -ERANGE past the end; sets dev->error like a failed request. */
int blkdev_check(struct blkdev *dev, bool write, u64 lba, u64 count);
/* Checked entry points: validate the range and read-only state, then call the
 * driver. Return 0 or a negative errno with dev->error set. */
int blkdev_read(struct blkdev *dev, u64 lba, u64 count, void *buf);
int blkdev_write(struct blkdev *dev, u64 lba, u64 count, const void *buf);
int blkdev_flush(struct blkdev *dev);
/* Sets dev->error from a format string and returns err. */
int blkdev_fail(struct blkdev *dev, int err, const char *fmt, ...) __printf(3, 4);

/* The overwrite guard: true when the disk holds Amber snapshots (or looks as
 * if it did), so that `disk write` refuses without --force (`disk bench`
 * always needs it). The snapshot code registers the check at boot
 * (snap_store_present); until one is registered every disk counts as holding
 * snapshots, so a missing registration cannot silently remove the guard. */
typedef bool (*blkdev_guard_fn)(struct blkdev *dev);
void blkdev_set_guard(blkdev_guard_fn fn);
bool blkdev_has_guard(void);
bool blkdev_holds_snapshots(struct blkdev *dev);

/* Probes every driver on the PCI list and the legacy ATA ports. */
void drivers_init(void);

#endif
