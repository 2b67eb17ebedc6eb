/*
 * NVMe over PCIe: controller reset and enable, the admin queue, Identify, one
 * I/O queue pair, and synchronous Read/Write/Flush polled through the phase
 * tag with a timeout; every active namespace becomes a disk. Context: host,
 * boot and shell, interrupts off (the controller's interrupts stay unused).
 * Reference: NVMe Base 2.0 3.5.1 "Memory-based Controller Initialization",
 * 5.17 "Identify command"; NVM CS 1.0 3.3 "I/O Commands".
 */
#include "drivers/blockdev.h"
#include "drivers/nvme.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/pci.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/x86.h"

#define NVME_QUEUE_DEPTH 64  /* one command is in flight at a time */
#define NVME_BOUNCE_PAGES 16 /* for buffers that are not dword aligned */
#define NVME_MAX_NAMESPACES 8

struct nvme_queue {
	struct nvme_sqe *sq;
	struct nvme_cqe *cq;
	u64 sq_phys, cq_phys;
	u16 qid, depth;
	u16 sq_tail, cq_head;
	u8 phase;
};

struct nvme_ctrl {
	struct pci_dev *pci;
	volatile u8 *regs;
	int index;
	u64 cap;
	u32 vs;
	u64 ready_timeout_us; /* CAP.TO */
	u32 db_stride;	      /* bytes between doorbells: 4 << CAP.DSTRD */
	struct nvme_queue admin, io;
	u16 next_cid;
	u32 max_xfer; /* bytes per command: MDTS and the PRP lists Amber keeps */
	u8 mdts;
	bool vwc;
	u32 nn;
	char model[41], serial[21];
	void *identify; /* one page for Identify data */
	struct nvme_prp_lists prp;
	u8 *bounce;
	bool broken; /* a command timed out or the controller failed: reset first */
};

struct nvme_ns {
	struct blkdev blk;
	struct nvme_ctrl *ctrl;
	u32 nsid;
	u8 lbaf;
};

static int nvme_count;

static u32 nvme_rd32(struct nvme_ctrl *c, u32 off) { return mmio_read32(c->regs + off); }
static void nvme_wr32(struct nvme_ctrl *c, u32 off, u32 v) { mmio_write32(c->regs + off, v); }

/* 64-bit properties are accessed as two dwords, low first (3.1.3): not every
 * controller takes a qword access. */
static u64 nvme_rd64(struct nvme_ctrl *c, u32 off)
{
	return nvme_rd32(c, off) | (u64)nvme_rd32(c, off + 4) << 32;
}

static void nvme_wr64(struct nvme_ctrl *c, u32 off, u64 v)
{
	nvme_wr32(c, off, (u32)v);
	nvme_wr32(c, off + 4, (u32)(v >> 32));
}

/* 3.1.3.x "Submission Queue y Tail Doorbell" / "Completion Queue y Head Doorbell" */
static void nvme_ring_sq(struct nvme_ctrl *c, struct nvme_queue *q)
{
	nvme_wr32(c, NVME_DOORBELL_BASE + (2 * q->qid) * c->db_stride, q->sq_tail);
}

static void nvme_ring_cq(struct nvme_ctrl *c, struct nvme_queue *q)
{
	nvme_wr32(c, NVME_DOORBELL_BASE + (2 * q->qid + 1) * c->db_stride, q->cq_head);
}

/* Stops the controller's DMA (Bus Master Enable off, PCI 3.0 6.2.2) after a
 * timeout or fatal status, so that a late transfer cannot land in memory the
 * caller reused; the next request resets the controller and turns it on. */
static void nvme_fence(struct nvme_ctrl *c)
{
	pci_write16(c->pci, PCI_COMMAND, pci_read16(c->pci, PCI_COMMAND) & ~PCI_COMMAND_MASTER);
	c->broken = true;
}

/* Waits until CSTS.RDY equals `ready`, at most CAP.TO (3.1.3.1 "Offset 0h:
 * CAP"); CSTS.CFS ends the wait early when waiting for ready. */
static int nvme_wait_ready(struct nvme_ctrl *c, bool ready, const char **why)
{
	u64 dl = deadline_after_us(c->ready_timeout_us);

	for (;;) {
		u32 csts = nvme_rd32(c, offsetof(struct nvme_regs, csts));

		if (csts == 0xffffffff) {
			*why = "controller registers read all ones (device gone)";
			return -ENODEV;
		}
		if (!!(csts & NVME_CSTS_RDY) == ready)
			return 0;
		if (ready && (csts & NVME_CSTS_CFS)) {
			*why = "controller fatal status (CSTS.CFS) while enabling";
			return -EIO;
		}
		if (deadline_passed(dl)) {
			*why = ready ? "controller did not become ready within CAP.TO" :
				       "controller did not stop within CAP.TO";
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
}

/* Submits one command and polls its completion. Returns 0, a negative errno
 * with the reason in why[] (timeout, fatal status), or, for a completion with
 * an error status, -EIO with the status in *status. */
static int nvme_exec(struct nvme_ctrl *c, struct nvme_queue *q, struct nvme_sqe *cmd,
		     u64 timeout_us, u16 *status, u32 *dw0, char *why, size_t why_len)
{
	u64 start = ticks(), dl = deadline_after_us(timeout_us);
	u32 polls = 0;

	*status = 0;
	cmd->cid = c->next_cid++;
	q->sq[q->sq_tail] = *cmd;
	q->sq_tail = (u16)((q->sq_tail + 1) % q->depth);
	wmb();
	nvme_ring_sq(c, q);

	for (;;) {
		volatile struct nvme_cqe *e = &q->cq[q->cq_head];
		u16 st = e->status;

		if ((st & 1) == q->phase) {
			struct nvme_cqe cqe;

			barrier();
			cqe = *(struct nvme_cqe *)e;
			/* 4.6: the phase tag inverts each time the head wraps. */
			if (++q->cq_head == q->depth) {
				q->cq_head = 0;
				q->phase ^= 1;
			}
			nvme_ring_cq(c, q);
			if (cqe.cid != cmd->cid)
				continue; /* not ours: a completion from before a reset */
			*status = cqe.status & ~1;
			if (dw0)
				*dw0 = cqe.dw0;
			return *status ? -EIO : 0;
		}
		if ((++polls & 1023) == 0) {
			u32 csts = nvme_rd32(c, offsetof(struct nvme_regs, csts));

			if (csts == 0xffffffff || (csts & NVME_CSTS_CFS)) {
				nvme_fence(c);
				snprintf(
					why, why_len, "%s",
					csts == 0xffffffff ?
						"controller stopped responding (registers read all ones)" :
						"controller fatal status (CSTS.CFS)");
				return -EIO;
			}
		}
		if (deadline_passed(dl)) {
			nvme_fence(c);
			snprintf(why, why_len, "timed out after %llu ms",
				 (unsigned long long)((ticks() - start) / 1000));
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
}

/* An admin command during (re)initialisation: CAP.TO bounds it as well. */
static int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd, u32 *dw0, const char *what,
		      char *why, size_t why_len)
{
	char reason[64];
	u16 status;
	int ret = nvme_exec(c, &c->admin, cmd, MAX(c->ready_timeout_us, 2000000ULL), &status, dw0,
			    reason, sizeof(reason));

	if (ret == -EIO && status)
		snprintf(why, why_len, "%s failed: %s (status 0x%x)", what,
			 nvme_status_name(status), status >> 1);
	else if (ret)
		snprintf(why, why_len, "%s: %s", what, reason);
	return ret;
}

static int nvme_identify(struct nvme_ctrl *c, u8 cns, u32 nsid, char *why, size_t why_len)
{
	struct nvme_sqe cmd = { .opc = NVME_ADMIN_IDENTIFY, .nsid = nsid };

	memset(c->identify, 0, PAGE_SIZE);
	cmd.prp1 = virt_to_phys(c->identify);
	cmd.cdw10 = cns;
	return nvme_admin(c, &cmd, NULL, "Identify", why, why_len);
}

static void nvme_queue_reset(struct nvme_queue *q)
{
	memset(q->sq, 0, PAGE_SIZE);
	memset(q->cq, 0, PAGE_SIZE);
	q->sq_tail = q->cq_head = 0;
	q->phase = 1; /* 4.6: the first pass through the CQ posts phase 1 */
}

/* 3.5.1 "Memory-based Controller Initialization": disable, program the
 * admin queue, enable, create the I/O queue pair. Also the recovery path. */
static int nvme_enable(struct nvme_ctrl *c, char *why, size_t why_len)
{
	const char *reason = "";
	struct nvme_sqe cmd;
	u32 cc;
	int ret;

	pci_enable(c->pci, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cc = nvme_rd32(c, offsetof(struct nvme_regs, cc));
	if (cc & NVME_CC_EN)
		nvme_wr32(c, offsetof(struct nvme_regs, cc), cc & ~NVME_CC_EN);
	ret = nvme_wait_ready(c, false, &reason);
	if (ret)
		goto fail;

	nvme_queue_reset(&c->admin);
	nvme_queue_reset(&c->io);
	nvme_wr32(c, offsetof(struct nvme_regs, aqa),
		  (u32)(c->admin.depth - 1) << 16 | (u32)(c->admin.depth - 1));
	nvme_wr64(c, offsetof(struct nvme_regs, asq), c->admin.sq_phys);
	nvme_wr64(c, offsetof(struct nvme_regs, acq), c->admin.cq_phys);
	/* 64-byte SQ entries (2^6), 16-byte CQ entries (2^4), 4 KiB pages. */
	cc = NVME_CC_EN | NVME_CC_CSS_NVM | NVME_CC_MPS(0) | NVME_CC_AMS_RR | NVME_CC_IOSQES(6) |
	     NVME_CC_IOCQES(4);
	nvme_wr32(c, offsetof(struct nvme_regs, cc), cc);
	ret = nvme_wait_ready(c, true, &reason);
	if (ret)
		goto fail;

	/* 5.27.1.5 "Number of Queues": ask for one pair (0-based counts). Some
	 * controllers need this before queue creation; failure is harmless. */
	cmd = (struct nvme_sqe){ .opc = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES };
	nvme_admin(c, &cmd, NULL, "Set Features", why, why_len);

	/* 5.4 "Create I/O Completion Queue": physically contiguous, no interrupt. */
	cmd = (struct nvme_sqe){ .opc = NVME_ADMIN_CREATE_CQ, .prp1 = c->io.cq_phys };
	cmd.cdw10 = (u32)(c->io.depth - 1) << 16 | c->io.qid;
	cmd.cdw11 = 1; /* PC */
	ret = nvme_admin(c, &cmd, NULL, "Create I/O Completion Queue", why, why_len);
	if (ret)
		return ret;
	/* 5.5 "Create I/O Submission Queue" bound to that completion queue. */
	cmd = (struct nvme_sqe){ .opc = NVME_ADMIN_CREATE_SQ, .prp1 = c->io.sq_phys };
	cmd.cdw10 = (u32)(c->io.depth - 1) << 16 | c->io.qid;
	cmd.cdw11 = (u32)c->io.qid << 16 | 1; /* CQID, PC */
	ret = nvme_admin(c, &cmd, NULL, "Create I/O Submission Queue", why, why_len);
	if (ret)
		return ret;
	c->broken = false;
	return 0;
fail:
	snprintf(why, why_len, "%s", reason);
	return ret;
}

static int nvme_io(struct nvme_ns *ns, u8 opc, u64 lba, u32 nlb, const void *buf, u64 len)
{
	struct nvme_ctrl *c = ns->ctrl;
	struct blkdev *dev = &ns->blk;
	struct nvme_sqe cmd = { .opc = opc, .nsid = ns->nsid };
	const char *what = opc == NVME_CMD_READ	 ? "read" :
			   opc == NVME_CMD_WRITE ? "write" :
						   "flush";
	char why[96];
	u16 status;
	int ret;

	if (c->broken) {
		ret = nvme_enable(c, why, sizeof(why));
		if (ret) {
			nvme_fence(c);
			return blkdev_fail(dev, -EIO, "%s: controller reset failed: %s", dev->name,
					   why);
		}
		pr_info("nvme%d: controller reset after an earlier failure\n", c->index);
	}
	if (len) {
		u64 prp1, prp2;

		ret = nvme_prp_build(buf, len, virt_to_phys, &c->prp, &prp1, &prp2);
		if (ret)
			return blkdev_fail(dev, ret,
					   "%s: cannot describe the buffer with PRPs (%s)",
					   dev->name, errno_name(ret));
		cmd.prp1 = prp1;
		cmd.prp2 = prp2;
		cmd.cdw10 = (u32)lba;
		cmd.cdw11 = (u32)(lba >> 32);
		cmd.cdw12 = nlb - 1; /* NLB is 0-based */
	}
	dev->commands++;
	ret = nvme_exec(c, &c->io, &cmd, dev->timeout_us, &status, NULL, why, sizeof(why));
	if (ret == -EIO && status && !nlb)
		return blkdev_fail(dev, -EIO, "%s: %s failed: %s (SCT %u SC 0x%02x)", dev->name,
				   what, nvme_status_name(status), NVME_STATUS_SCT(status),
				   NVME_STATUS_SC(status));
	if (ret == -EIO && status)
		return blkdev_fail(dev, -EIO,
				   "%s: %s of %u block%s at LBA %llu failed: %s (SCT %u SC 0x%02x)",
				   dev->name, what, nlb, nlb == 1 ? "" : "s",
				   (unsigned long long)lba, nvme_status_name(status),
				   NVME_STATUS_SCT(status), NVME_STATUS_SC(status));
	if (ret)
		return blkdev_fail(dev, ret,
				   "%s: %s at LBA %llu: %s; the controller will be reset "
				   "before the next request",
				   dev->name, what, (unsigned long long)lba, why);
	return 0;
}

/* Splits a transfer to the controller's limit; a buffer that PRPs cannot
 * describe (not dword aligned) goes through the bounce pages. */
static int nvme_rw(struct blkdev *dev, u64 lba, u64 count, u8 *buf, bool write)
{
	struct nvme_ns *ns = container_of(dev, struct nvme_ns, blk);
	struct nvme_ctrl *c = ns->ctrl;
	bool bounce = ((uintptr_t)buf & 3) != 0;
	u64 per_cmd = (bounce ? NVME_BOUNCE_PAGES * PAGE_SIZE : c->max_xfer) / dev->sector_size;
	int ret;

	while (count) {
		u64 n = MIN(count, per_cmd);
		u64 len = n * dev->sector_size;
		u8 *p = bounce ? c->bounce : buf;

		if (bounce && write)
			memcpy(p, buf, len);
		ret = nvme_io(ns, write ? NVME_CMD_WRITE : NVME_CMD_READ, lba, (u32)n, p, len);
		if (ret)
			return ret;
		if (bounce && !write)
			memcpy(buf, p, len);
		lba += n;
		buf += len;
		count -= n;
	}
	return 0;
}

static int nvme_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	return nvme_rw(dev, lba, count, buf, false);
}

static int nvme_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	/* The controller only reads from a write's buffer. */
	return nvme_rw(dev, lba, count, (u8 *)buf, true);
}

static int nvme_flush(struct blkdev *dev)
{
	return nvme_io(container_of(dev, struct nvme_ns, blk), NVME_CMD_FLUSH, 0, 0, NULL, 0);
}

static void nvme_info(struct blkdev *dev)
{
	struct nvme_ns *ns = container_of(dev, struct nvme_ns, blk);
	struct nvme_ctrl *c = ns->ctrl;
	struct pci_dev *p = c->pci;

	printk("  controller: nvme%d at %02x:%02x.%x %04x:%04x, NVMe %u.%u, registers at 0x%llx\n",
	       c->index, p->bus, p->dev, p->fn, p->vendor, p->device, c->vs >> 16,
	       (c->vs >> 8) & 0xff, (unsigned long long)virt_to_phys((const void *)c->regs));
	printk("  limits:     CAP.TO %llu ms, MQES %u, doorbell stride %u\n",
	       (unsigned long long)(c->ready_timeout_us / 1000), NVME_CAP_MQES(c->cap) + 1,
	       c->db_stride);
	printk("  transfers:  MDTS %u (%u KiB per command)\n", c->mdts, c->max_xfer / 1024);
	printk("  namespace:  %u (LBA format %u), volatile write cache %s, queue depth %u\n",
	       ns->nsid, ns->lbaf, c->vwc ? "yes" : "no", c->io.depth);
	if (c->broken)
		printk("  state:      a command failed or timed out; reset pending\n");
}

static const struct blkdev_ops nvme_ops = {
	.read = nvme_read,
	.write = nvme_write,
	.flush = nvme_flush,
	.info = nvme_info,
};

static void nvme_copy_str(char *dst, const char *src, size_t n)
{
	size_t len = n;

	while (len && (src[len - 1] == ' ' || src[len - 1] == 0))
		len--;
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[len] = 0;
}

/* NVM CS 1.0 4.1.5.1: registers the namespace when its format is one Amber
 * can use (no metadata, 512 B to 4 KiB blocks). */
static void nvme_add_ns(struct nvme_ctrl *c, u32 nsid)
{
	struct nvme_id_ns *id = c->identify;
	char why[96];
	struct nvme_ns *ns;
	u8 fmt, lbads;

	if (nvme_identify(c, NVME_CNS_NAMESPACE, nsid, why, sizeof(why))) {
		pr_warn("nvme%d: namespace %u: %s\n", c->index, nsid, why);
		return;
	}
	if (!id->nsze)
		return; /* inactive */
	fmt = (u8)((id->flbas & 0xf) | ((id->flbas >> 5) & 3) << 4);
	if (fmt > id->nlbaf || fmt >= 64) {
		pr_warn("nvme%d: namespace %u: format index %u out of range\n", c->index, nsid,
			fmt);
		return;
	}
	lbads = id->lbaf[fmt].lbads;
	if (id->lbaf[fmt].ms || lbads < 9 || lbads > 12) {
		pr_warn("nvme%d: namespace %u not used: %u-byte blocks with %u metadata bytes "
			"(Amber needs 512..4096 bytes, no metadata)\n",
			c->index, nsid, lbads < 32 ? 1u << lbads : 0, id->lbaf[fmt].ms);
		return;
	}
	ns = kzalloc(sizeof(*ns));
	if (!ns) {
		pr_warn("nvme%d: namespace %u: out of memory\n", c->index, nsid);
		return;
	}
	ns->ctrl = c;
	ns->nsid = nsid;
	ns->lbaf = fmt;
	snprintf(ns->blk.name, sizeof(ns->blk.name), "nvme%dn%u", c->index, nsid);
	ns->blk.kind = "nvme";
	memcpy(ns->blk.model, c->model, sizeof(ns->blk.model));
	memcpy(ns->blk.serial, c->serial, sizeof(ns->blk.serial));
	ns->blk.sector_size = 1u << lbads;
	ns->blk.sectors = id->nsze;
	ns->blk.can_flush = c->vwc;
	ns->blk.readonly = id->nsattr & 1; /* NVM CS 1.0 4.1.5.1 NSATTR: write protected */
	ns->blk.max_sectors = c->max_xfer >> lbads;
	ns->blk.ops = &nvme_ops;
	if (blkdev_register(&ns->blk) < 0)
		kfree(ns);
}

static u64 nvme_alloc(u64 pages) { return pmm_alloc_contig(pages, 1); }

static int nvme_setup(struct nvme_ctrl *c, char *why, size_t why_len)
{
	struct pci_dev *p = c->pci;
	struct nvme_id_ctrl *id;
	u64 need, pa[6];
	int ret;

	if (!p->bar_size[0] || p->bar_is_io[0]) {
		snprintf(why, why_len, "BAR0 is not a memory BAR");
		return -ENODEV;
	}
	pci_enable(p, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	c->regs = ioremap(p->bar[0], PAGE_SIZE);
	if (!c->regs) {
		snprintf(why, why_len, "cannot map BAR0");
		return -ENOMEM;
	}
	c->cap = nvme_rd64(c, offsetof(struct nvme_regs, cap));
	c->vs = nvme_rd32(c, offsetof(struct nvme_regs, vs));
	if (c->cap == ~0ULL) {
		snprintf(why, why_len, "registers read all ones");
		return -ENODEV;
	}
	if (NVME_CAP_MPSMIN(c->cap) != 0 || !NVME_CAP_CSS_NVM(c->cap)) {
		snprintf(why, why_len, "needs %s",
			 NVME_CAP_MPSMIN(c->cap) ? "pages larger than 4 KiB" :
						   "a command set other than NVM");
		return -EOPNOTSUPP;
	}
	/* CAP.TO is in 500 ms units; 0 would be a broken controller: use 500 ms. */
	c->ready_timeout_us = MAX(1u, NVME_CAP_TO(c->cap)) * 500000ULL;
	c->db_stride = 4u << NVME_CAP_DSTRD(c->cap);
	need = NVME_DOORBELL_BASE + 4ULL * c->db_stride;
	if (need > p->bar_size[0]) {
		snprintf(why, why_len, "BAR0 too small for the doorbells");
		return -ENODEV;
	}
	c->regs = ioremap(p->bar[0], need);

	for (int i = 0; i < 6; i++)
		if (!(pa[i] = nvme_alloc(i == 5 ? NVME_BOUNCE_PAGES : 1))) {
			snprintf(why, why_len, "out of memory");
			return -ENOMEM;
		}
	c->admin = (struct nvme_queue){ .sq = phys_to_virt(pa[0]),
					.cq = phys_to_virt(pa[1]),
					.sq_phys = pa[0],
					.cq_phys = pa[1],
					.qid = 0 };
	c->io = (struct nvme_queue){ .sq = phys_to_virt(pa[2]),
				     .cq = phys_to_virt(pa[3]),
				     .sq_phys = pa[2],
				     .cq_phys = pa[3],
				     .qid = 1 };
	c->admin.depth = c->io.depth = (u16)MIN(NVME_QUEUE_DEPTH, NVME_CAP_MQES(c->cap) + 1);
	c->identify = phys_to_virt(pa[4]);
	c->bounce = phys_to_virt(pa[5]);
	for (int i = 0; i < NVME_PRP_LIST_PAGES; i++) {
		u64 lp = nvme_alloc(1);

		if (!lp) {
			snprintf(why, why_len, "out of memory");
			return -ENOMEM;
		}
		c->prp.virt[i] = phys_to_virt(lp);
		c->prp.phys[i] = lp;
	}
	c->prp.count = NVME_PRP_LIST_PAGES;
	c->max_xfer = (u32)NVME_MAX_TRANSFER;

	ret = nvme_enable(c, why, why_len);
	if (ret)
		return ret;
	ret = nvme_identify(c, NVME_CNS_CONTROLLER, 0, why, why_len);
	if (ret)
		return ret;
	id = c->identify;
	nvme_copy_str(c->model, id->mn, sizeof(id->mn));
	nvme_copy_str(c->serial, id->sn, sizeof(id->sn));
	c->mdts = id->mdts;
	c->vwc = id->vwc & 1;
	c->nn = id->nn;
	/* 5.17.2.1: MDTS in units of the minimum page size (4 KiB here). */
	if (c->mdts && c->mdts < 20)
		c->max_xfer = (u32)MIN((u64)c->max_xfer, (1ULL << c->mdts) * NVME_PAGE_SIZE);
	return 0;
}

/* Registers each active namespace: the Active Namespace ID list (CNS 2) on
 * NVMe 1.1 and later, every id up to NN otherwise. */
static void nvme_scan(struct nvme_ctrl *c)
{
	u32 list[NVME_MAX_NAMESPACES], n = 0;
	char why[96];

	if (c->vs >= 0x10100 && !nvme_identify(c, NVME_CNS_ACTIVE_NS_LIST, 0, why, sizeof(why))) {
		u32 *ids = c->identify;

		for (u32 i = 0; i < 1024 && ids[i] && n < NVME_MAX_NAMESPACES; i++)
			list[n++] = ids[i];
	} else {
		for (u32 id = 1; id <= c->nn && n < NVME_MAX_NAMESPACES; id++)
			list[n++] = id;
	}
	if (!n)
		pr_info("nvme%d: no active namespaces\n", c->index);
	for (u32 i = 0; i < n; i++)
		nvme_add_ns(c, list[i]);
}

void nvme_probe(struct pci_dev *pci)
{
	struct nvme_ctrl *c = kzalloc(sizeof(*c));
	char why[96] = "out of memory";

	if (!c)
		goto fail;
	c->pci = pci;
	c->index = nvme_count;
	if (nvme_setup(c, why, sizeof(why)))
		goto fail;
	nvme_count++;
	pr_info("nvme%d: %s, serial %s, NVMe %u.%u, %u namespace(s), %u KiB per command\n",
		c->index, c->model, c->serial, c->vs >> 16, (c->vs >> 8) & 0xff, c->nn,
		c->max_xfer / 1024);
	nvme_scan(c);
	return;
fail:
	/* Queue pages stay allocated: the controller may still hold their addresses. */
	pr_warn("nvme %02x:%02x.%x: not used: %s\n", pci->bus, pci->dev, pci->fn, why);
	if (c && c->regs)
		nvme_fence(c);
	kfree(c);
}
