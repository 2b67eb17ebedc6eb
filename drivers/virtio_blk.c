/*
 * virtio-blk over PCI, modern (1af4:1042) or legacy/transitional (1af4:1001):
 * initialisation and feature negotiation, one split virtqueue, synchronous
 * requests polled with a timeout. Context: host, boot and shell.
 * Reference: virtio 1.2 5.2 "Block Device", 3.1.1 "Driver Requirements:
 * Device Initialization".
 */
#include "drivers/blockdev.h"
#include "drivers/virtio.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/pci.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/x86.h"

/* virtio 1.2 5.2.3 "Feature bits" */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

/* 5.2.4 "Device configuration layout": byte offsets of struct virtio_blk_config */
#define VIRTIO_BLK_CFG_CAPACITY 0 /* u64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_BLK_SIZE 20

/* 5.2.6 "Device Operation" */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20

struct virtio_blk_req_hdr {
	u32 type;
	u32 ioprio;
	u64 sector; /* always in 512-byte units */
} __packed;
_Static_assert(sizeof(struct virtio_blk_req_hdr) == 16, "request header is 16 bytes");

/* Largest request Amber builds: bounds the time one command holds the disk. */
#define VBLK_MAX_REQUEST MiB(4)
#define VBLK_QUEUE_MAX 256

struct virtio_blk {
	struct blkdev blk;
	struct virtio_dev vd;
	struct virtq vq;
	u64 device_features;
	u32 seg_max;		/* data segments per request */
	u32 size_max;		/* bytes per segment */
	struct virtq_buf *segs; /* header + data + status */
	/* One DMA page: header at 0, status at 64, GET_ID data at 128. */
	u8 *dma;
	u64 dma_phys;
	bool broken; /* a request timed out: reset before the next one */
};

#define VBLK_HDR_OFF 0
#define VBLK_STATUS_OFF 64
#define VBLK_ID_OFF 128

static int vblk_count;

static u64 vblk_wanted(bool modern)
{
	u64 f = BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_RO) |
		BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH);
	return modern ? f | BIT(VIRTIO_F_VERSION_1) : f;
}

/* 3.1.1 "Driver Requirements: Device Initialization", steps 1-8. Used at
 * probe and again to recover a device after a timeout. */
static int vblk_start(struct virtio_blk *vb, char *why, size_t why_len)
{
	struct virtio_dev *vd = &vb->vd;
	int ret;

	pci_enable(vd->pci,
		   (vd->modern ? PCI_COMMAND_MEMORY : PCI_COMMAND_IO) | PCI_COMMAND_MASTER);
	ret = virtio_reset(vd);
	if (ret) {
		snprintf(why, why_len, "device did not finish its reset");
		return ret;
	}
	virtio_add_status(vd, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_add_status(vd, VIRTIO_STATUS_DRIVER);
	ret = virtio_negotiate(vd, vblk_wanted(vd->modern), &vb->device_features);
	if (ret) {
		snprintf(why, why_len, "%s",
			 ret == -EOPNOTSUPP ?
				 "device does not offer VIRTIO_F_VERSION_1" :
				 "device refused the feature subset (FEATURES_OK did not stick)");
		goto fail;
	}
	ret = virtio_setup_queue(vd, 0, &vb->vq, VBLK_QUEUE_MAX);
	if (ret) {
		snprintf(why, why_len, "request queue 0 could not be set up (%s)", errno_name(ret));
		goto fail;
	}
	virtio_add_status(vd, VIRTIO_STATUS_DRIVER_OK);
	if (virtio_device_broken(vd)) {
		snprintf(why, why_len, "device set DEVICE_NEEDS_RESET during initialisation");
		ret = -EIO;
		goto fail;
	}
	vb->broken = false;
	return 0;
fail:
	virtio_add_status(vd, VIRTIO_STATUS_FAILED);
	return ret;
}

/* Stops the device's DMA after a timeout so that a late completion cannot
 * write into memory the caller has reused: PCI 3.0 6.2.2 "Device Control"
 * (Bus Master Enable). vblk_start turns it back on. */
static void vblk_fence(struct virtio_blk *vb)
{
	u16 cmd = pci_read16(vb->vd.pci, PCI_COMMAND);

	pci_write16(vb->vd.pci, PCI_COMMAND, cmd & ~PCI_COMMAND_MASTER);
	vb->broken = true;
}

/* Fills segs[1..] with physically contiguous runs of [va, va+len), each at
 * most size_max bytes and at most seg_max of them; returns the bytes covered,
 * trimmed to whole sectors when the limits cut the buffer short. */
static u64 vblk_map(struct virtio_blk *vb, u8 *va, u64 len, bool device_writes, int *nsegs)
{
	u32 unit = vb->blk.sector_size;
	u64 done = 0, limit = MIN((u64)vb->size_max, VBLK_MAX_REQUEST);
	int n = 0;

	len = MIN(len, VBLK_MAX_REQUEST);
	while (done < len && (u32)n < vb->seg_max) {
		u64 pa = virt_to_phys(va + done);
		u64 run = MIN(len - done, PAGE_SIZE - (pa & (PAGE_SIZE - 1)));

		while (done + run < len && run < limit && virt_to_phys(va + done + run) == pa + run)
			run += MIN(PAGE_SIZE, len - done - run);
		run = MIN(run, limit);
		vb->segs[1 + n++] = (struct virtq_buf){ pa, (u32)run, device_writes };
		done += run;
	}
	/* A cut in the middle of a sector: give the partial sector back. */
	u64 excess = done % unit;
	while (excess && n) {
		struct virtq_buf *last = &vb->segs[n];
		u64 cut = MIN(excess, (u64)last->len);

		last->len -= (u32)cut;
		excess -= cut;
		done -= cut;
		if (!last->len)
			n--;
	}
	*nsegs = n;
	return done;
}

static const char *vblk_type_name(u32 type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return "read";
	case VIRTIO_BLK_T_OUT:
		return "write";
	case VIRTIO_BLK_T_FLUSH:
		return "flush";
	default:
		return "identify";
	}
}

/* Issues one request whose data buffers are already in segs[1..nsegs] and
 * waits for it. 5.2.6: header (device-readable), data, status (writable). */
static int vblk_submit(struct virtio_blk *vb, u32 type, u64 sector, int nsegs)
{
	struct blkdev *dev = &vb->blk;
	struct virtio_blk_req_hdr *hdr = (void *)(vb->dma + VBLK_HDR_OFF);
	volatile u8 *status = vb->dma + VBLK_STATUS_OFF;
	char why[96];
	u32 len, polls = 0;
	u64 dl, start;
	int head, ret;

	if (vb->broken) {
		ret = vblk_start(vb, why, sizeof(why));
		if (ret)
			return blkdev_fail(dev, -EIO,
					   "%s: reset after the earlier timeout failed: %s",
					   dev->name, why);
		pr_info("%s: device reset after an earlier timeout\n", dev->name);
	}
	hdr->type = type;
	hdr->ioprio = 0;
	hdr->sector = sector;
	*status = 0xff; /* not a status the device writes */
	vb->segs[0] = (struct virtq_buf){ vb->dma_phys + VBLK_HDR_OFF, sizeof(*hdr), false };
	vb->segs[nsegs + 1] = (struct virtq_buf){ vb->dma_phys + VBLK_STATUS_OFF, 1, true };

	head = virtq_add_chain(&vb->vq, vb->segs, nsegs + 2);
	if (head < 0)
		return blkdev_fail(dev, -EIO, "%s: no free descriptors (%d needed)", dev->name,
				   nsegs + 2);
	dev->commands++;
	if (!virtq_notify_suppressed(&vb->vq))
		virtio_notify(&vb->vd, 0);

	start = ticks();
	dl = deadline_after_us(dev->timeout_us);
	for (;;) {
		ret = virtq_get_used(&vb->vq, &len);
		if (ret >= 0)
			break;
		if (ret != -EAGAIN) {
			vblk_fence(vb);
			return blkdev_fail(dev, -EIO, "%s: device corrupted the used ring",
					   dev->name);
		}
		/* 2.1.2: DEVICE_NEEDS_RESET is fatal; a cleared DRIVER_OK means the
		 * device reset itself. Register reads are slow: check now and then. */
		if ((++polls & 1023) == 0) {
			u8 st = virtio_get_status(&vb->vd);

			if (st == 0xff || (st & VIRTIO_STATUS_DEVICE_NEEDS_RESET) ||
			    !(st & VIRTIO_STATUS_DRIVER_OK)) {
				vblk_fence(vb);
				return blkdev_fail(dev, -EIO,
						   "%s: %s failed: device %s (status 0x%02x)",
						   dev->name, vblk_type_name(type),
						   st == 0xff ? "is gone" : "needs a reset", st);
			}
		}
		if (deadline_passed(dl)) {
			vblk_fence(vb);
			return blkdev_fail(dev, -ETIMEDOUT,
					   "%s: %s at sector %llu timed out after %llu ms; "
					   "the device will be reset before the next request",
					   dev->name, vblk_type_name(type),
					   (unsigned long long)sector,
					   (unsigned long long)((ticks() - start) / 1000));
		}
		cpu_relax();
	}
	if (ret != head) {
		vblk_fence(vb);
		return blkdev_fail(dev, -EIO, "%s: device completed descriptor %d, expected %d",
				   dev->name, ret, head);
	}
	switch (*status) {
	case VIRTIO_BLK_S_OK:
		return 0;
	case VIRTIO_BLK_S_IOERR:
		return blkdev_fail(dev, -EIO, "%s: %s at sector %llu: device reported an I/O error",
				   dev->name, vblk_type_name(type), (unsigned long long)sector);
	case VIRTIO_BLK_S_UNSUPP:
		return blkdev_fail(dev, -EOPNOTSUPP, "%s: %s: request not supported by the device",
				   dev->name, vblk_type_name(type));
	default:
		return blkdev_fail(dev, -EIO, "%s: %s: device returned unknown status 0x%02x",
				   dev->name, vblk_type_name(type), *status);
	}
}

static int vblk_rw(struct blkdev *dev, u64 lba, u64 count, u8 *buf, bool write)
{
	struct virtio_blk *vb = container_of(dev, struct virtio_blk, blk);
	u64 len = count * dev->sector_size;
	u64 sector = lba * (dev->sector_size / 512);
	int nsegs, ret;

	while (len) {
		u64 chunk = vblk_map(vb, buf, len, !write, &nsegs);

		if (!chunk)
			return blkdev_fail(dev, -EINVAL, "%s: buffer too fragmented for one sector",
					   dev->name);
		ret = vblk_submit(vb, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, nsegs);
		if (ret)
			return ret;
		sector += chunk / 512;
		buf += chunk;
		len -= chunk;
	}
	return 0;
}

static int vblk_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	return vblk_rw(dev, lba, count, buf, false);
}

static int vblk_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	/* The device only reads a write's buffers; the cast drops const for the
	 * shared mapping code. */
	return vblk_rw(dev, lba, count, (u8 *)buf, true);
}

static int vblk_flush(struct blkdev *dev)
{
	struct virtio_blk *vb = container_of(dev, struct virtio_blk, blk);

	return vblk_submit(vb, VIRTIO_BLK_T_FLUSH, 0, 0);
}

static void vblk_info(struct blkdev *dev)
{
	struct virtio_blk *vb = container_of(dev, struct virtio_blk, blk);
	struct pci_dev *p = vb->vd.pci;
	char seg[24];

	printk("  transport:  virtio-pci %s, %02x:%02x.%x %04x:%04x, %s 0x%llx\n",
	       vb->vd.modern ? "modern (capabilities)" : "legacy (I/O BAR0)", p->bus, p->dev, p->fn,
	       p->vendor, p->device, vb->vd.modern ? "common cfg at" : "ports at",
	       vb->vd.modern ? (unsigned long long)virt_to_phys((const void *)vb->vd.common) :
			       (unsigned long long)vb->vd.io_base);
	printk("  features:   device 0x%llx, negotiated 0x%llx\n",
	       (unsigned long long)vb->device_features, (unsigned long long)vb->vd.features);
	format_size(seg, sizeof(seg), vb->size_max);
	printk("  queue:      %u descriptors, %u data segments of up to %s each\n", vb->vq.size,
	       vb->seg_max, seg);
	if (vb->broken)
		printk("  state:      a request timed out; reset pending\n");
}

static const struct blkdev_ops vblk_ops = {
	.read = vblk_read,
	.write = vblk_write,
	.flush = vblk_flush,
	.info = vblk_info,
};

/* Reads the 20-byte id string (the serial number) with VIRTIO_BLK_T_GET_ID;
 * devices that do not support it leave the serial empty. */
static void vblk_get_id(struct virtio_blk *vb)
{
	char *id = (char *)vb->dma + VBLK_ID_OFF;

	memset(id, 0, VIRTIO_BLK_ID_BYTES);
	vb->segs[1] = (struct virtq_buf){ vb->dma_phys + VBLK_ID_OFF, VIRTIO_BLK_ID_BYTES, true };
	if (vblk_submit(vb, VIRTIO_BLK_T_GET_ID, 0, 1))
		return;
	for (int i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++)
		vb->blk.serial[i] = (id[i] >= 0x20 && id[i] < 0x7f) ? id[i] : '?';
}

void virtio_blk_probe(struct pci_dev *pci)
{
	bool modern = pci->device == VIRTIO_PCI_DEVICE_BLK_MODERN;
	struct virtio_blk *vb = kzalloc(sizeof(*vb));
	struct blkdev *dev;
	char why[96] = "out of memory";
	u64 f, dma = pmm_alloc_page();
	int ret;

	if (!vb || !dma)
		goto fail;
	vb->segs = kzalloc(sizeof(*vb->segs) * VBLK_QUEUE_MAX);
	if (!vb->segs)
		goto fail;
	vb->dma = phys_to_virt(dma);
	vb->dma_phys = dma;
	dev = &vb->blk;
	snprintf(dev->name, sizeof(dev->name), "vblk%d", vblk_count);
	ret = virtio_pci_attach(&vb->vd, pci, modern, why, sizeof(why));
	if (ret)
		goto fail;
	ret = vblk_start(vb, why, sizeof(why));
	if (ret)
		goto fail;
	f = vb->vd.features;

	dev->kind = "virtio-blk";
	snprintf(dev->model, sizeof(dev->model), "virtio-blk %s %04x:%04x",
		 modern ? "modern" : "legacy", pci->vendor, pci->device);
	dev->sector_size = 512;
	if (f & BIT(VIRTIO_BLK_F_BLK_SIZE)) {
		u32 bs = virtio_cfg_read32(&vb->vd, VIRTIO_BLK_CFG_BLK_SIZE);

		if (bs >= 512 && bs <= 65536 && !(bs & (bs - 1)))
			dev->sector_size = bs;
	}
	dev->sectors =
		virtio_cfg_read64(&vb->vd, VIRTIO_BLK_CFG_CAPACITY) / (dev->sector_size / 512);
	/* Linux's rule: without SEG_MAX the device promises one segment only. */
	vb->seg_max = 1;
	if (f & BIT(VIRTIO_BLK_F_SEG_MAX))
		vb->seg_max = MAX(1u, virtio_cfg_read32(&vb->vd, VIRTIO_BLK_CFG_SEG_MAX));
	/* header and status take two descriptors of the chain */
	vb->seg_max = MIN(vb->seg_max, MIN((u32)vb->vq.size, (u32)VBLK_QUEUE_MAX) - 2u);
	vb->size_max = (u32)VBLK_MAX_REQUEST;
	if (f & BIT(VIRTIO_BLK_F_SIZE_MAX)) {
		u32 sm = virtio_cfg_read32(&vb->vd, VIRTIO_BLK_CFG_SIZE_MAX);

		if (sm >= dev->sector_size)
			vb->size_max = MIN(sm, (u32)VBLK_MAX_REQUEST);
	}
	dev->readonly = (vb->device_features & BIT(VIRTIO_BLK_F_RO)) != 0;
	dev->can_flush = (f & BIT(VIRTIO_BLK_F_FLUSH)) != 0;
	dev->max_sectors = (u32)(VBLK_MAX_REQUEST / dev->sector_size);
	dev->ops = &vblk_ops;

	/* A device that does not answer at probe should not hold up the boot. */
	dev->timeout_us = 5 * 1000000ULL;
	vblk_get_id(vb);
	dev->timeout_us = BLKDEV_DEFAULT_TIMEOUT_US;
	dev->error[0] = 0;
	dev->commands = 0;
	if (blkdev_register(dev) < 0)
		return; /* the device stays initialised but unused; memory is kept */
	vblk_count++;
	return;
fail:
	pr_warn("virtio-blk %02x:%02x.%x: not used: %s\n", pci->bus, pci->dev, pci->fn, why);
	/* The pages stay allocated: a device that got as far as a queue may
	 * still know their addresses. */
	if (vb)
		kfree(vb->segs);
	kfree(vb);
}
