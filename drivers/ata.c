/*
 * Parallel ATA disks on both IDE channels: IDENTIFY, LBA48 (or LBA28) reads
 * and writes by polled PIO, or by PIIX bus-master DMA when the firmware left
 * a DMA mode selected, and FLUSH CACHE (EXT). Interrupts stay off (nIEN).
 * Context: host, boot and shell.
 * Reference: ATA/ATAPI-8 ACS 7.16 "IDENTIFY DEVICE", 7.36 "READ SECTORS EXT",
 * 7.62 "WRITE SECTORS EXT", 7.11 "FLUSH CACHE EXT"; ATA8-APT 9 "Protocols".
 */
#include "drivers/ata.h"
#include "drivers/blockdev.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/pci.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/x86.h"

/* ATA8-APT 9.2 "Software reset protocol": BSY clears within 31 s. */
#define ATA_RESET_TIMEOUT_US (31 * 1000000ULL)
/* A drive that is absent or dead must not hold up the boot for 30 s. */
#define ATA_PROBE_TIMEOUT_US (3 * 1000000ULL)
#define ATA_MAX_CHANNELS 4
#define ATA_BOUNCE_BYTES KiB(64)
#define ATA_PRDT_MAX (PAGE_SIZE / sizeof(struct ata_prd))

struct ata_channel {
	struct pci_dev *pci; /* NULL for the ISA ports */
	u16 cmd, ctl, bm;    /* bm 0: no bus master */
	int index;	     /* 0 primary, 1 secondary (of its controller) */
	struct ata_prd *prdt;
	u64 prdt_phys;
	u8 *bounce;
	u64 bounce_phys;
};

struct ata_drive {
	struct blkdev blk;
	struct ata_channel *ch;
	bool slave, lba48, dma, flush_ext;
	int dma_mode; /* UDMA n, or 100 + MWDMA n */
	bool broken;  /* timed out: reset the channel before the next command */
	u16 id[256];
};

static struct ata_channel ata_channels[ATA_MAX_CHANNELS];
static int ata_channel_count, ata_drive_count;

static inline void ata_insw(u16 port, void *buf, u64 words)
{
	__asm__ volatile("rep insw" : "+D"(buf), "+c"(words) : "d"(port) : "memory");
}

static inline void ata_outsw(u16 port, const void *buf, u64 words)
{
	__asm__ volatile("rep outsw" : "+S"(buf), "+c"(words) : "d"(port) : "memory");
}

static u8 ata_altstatus(struct ata_channel *ch) { return inb(ch->ctl + ATA_REG_ALTSTATUS); }

/* ATA8-APT: the host waits 400 ns after a command or a device selection
 * before status is valid; each alternate-status read takes at least 100 ns. */
static void ata_delay400(struct ata_channel *ch)
{
	for (int i = 0; i < 4; i++)
		ata_altstatus(ch);
}

/* Waits for BSY to clear, then returns the status. */
static int ata_wait_idle(struct ata_channel *ch, u64 timeout_us, u8 *status)
{
	u64 dl = deadline_after_us(timeout_us);

	for (;;) {
		u8 st = ata_altstatus(ch);

		if (!(st & ATA_SR_BSY)) {
			*status = st;
			return 0;
		}
		if (deadline_passed(dl)) {
			*status = st;
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
}

/* Waits for the device to ask for data (DRQ) or to report an error. */
static int ata_wait_drq(struct ata_channel *ch, u64 timeout_us, u8 *status)
{
	u64 dl = deadline_after_us(timeout_us);

	for (;;) {
		u8 st = ata_altstatus(ch);

		if (!(st & ATA_SR_BSY) && (st & (ATA_SR_DRQ | ATA_SR_ERR | ATA_SR_DF))) {
			*status = st;
			return 0;
		}
		if (deadline_passed(dl)) {
			*status = st;
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
}

static const char *ata_op_name(u8 cmd)
{
	switch (cmd) {
	case ATA_CMD_READ_SECTORS:
	case ATA_CMD_READ_SECTORS_EXT:
	case ATA_CMD_READ_DMA:
	case ATA_CMD_READ_DMA_EXT:
		return "read";
	case ATA_CMD_WRITE_SECTORS:
	case ATA_CMD_WRITE_SECTORS_EXT:
	case ATA_CMD_WRITE_DMA:
	case ATA_CMD_WRITE_DMA_EXT:
		return "write";
	case ATA_CMD_IDENTIFY:
		return "identify";
	default:
		return "flush";
	}
}

/* Turns the error register into a message (ACS 6.2 "Error field"). */
static int ata_fail(struct ata_drive *d, u8 cmd, u64 lba, u8 status, int err, const char *what)
{
	struct blkdev *dev = &d->blk;
	u8 er = inb(d->ch->cmd + ATA_REG_ERROR);
	const char *why = what;

	if (!why) {
		why = status & ATA_SR_DF ? "device fault" :
		      er & ATA_ER_UNC	 ? "uncorrectable data error (UNC)" :
		      er & ATA_ER_IDNF	 ? "address not found (IDNF)" :
		      er & ATA_ER_ICRC	 ? "interface CRC error (ICRC)" :
		      er & ATA_ER_ABRT	 ? "command aborted (ABRT)" :
					   "error";
	}
	if (err == -ETIMEDOUT) {
		/* The DMA engine may still be running: turn off Bus Master Enable
		 * (PCI 3.0 6.2.2) so that a late transfer cannot reach memory the
		 * caller reuses. Stopping the engine itself waits for the reset:
		 * QEMU makes a write of 0 to the BM command register wait for the
		 * held request. */
		if (d->dma && d->ch->pci)
			pci_write16(d->ch->pci, PCI_COMMAND,
				    pci_read16(d->ch->pci, PCI_COMMAND) & ~PCI_COMMAND_MASTER);
		d->broken = true;
		return blkdev_fail(dev, err,
				   "%s: %s at LBA %llu timed out after %llu ms (status 0x%02x); "
				   "the channel will be reset before the next command",
				   dev->name, ata_op_name(cmd), (unsigned long long)lba,
				   (unsigned long long)(dev->timeout_us / 1000), status);
	}
	return blkdev_fail(dev, err, "%s: %s at LBA %llu failed: %s (status 0x%02x, error 0x%02x)",
			   dev->name, ata_op_name(cmd), (unsigned long long)lba, why, status, er);
}

/* Software reset of the channel (ATA8-APT 9.2), after a timeout. */
static int ata_reset_channel(struct ata_channel *ch)
{
	u8 st;

	if (ch->bm)
		outb(ch->bm + ATA_BM_CMD, 0);
	if (ch->pci)
		pci_enable(ch->pci, PCI_COMMAND_IO | PCI_COMMAND_MASTER);
	outb(ch->ctl + ATA_REG_DEVCTL, ATA_DEVCTL_NIEN | ATA_DEVCTL_SRST);
	udelay(5);
	outb(ch->ctl + ATA_REG_DEVCTL, ATA_DEVCTL_NIEN);
	mdelay(2);
	return ata_wait_idle(ch, ATA_RESET_TIMEOUT_US, &st);
}

/* Selects the drive and loads the task file for an LBA command; the
 * sequence of ATA8-APT 9.4 "PIO data-in": wait not busy, select, wait, load
 * (LBA48: the high-order bytes first), issue. */
static int ata_issue(struct ata_drive *d, u8 cmd, u64 lba, u32 count)
{
	struct ata_channel *ch = d->ch;
	u8 devreg = ATA_DEVICE_OBS | ATA_DEVICE_LBA | (d->slave ? ATA_DEVICE_SLAVE : 0);
	u8 st;

	if (d->broken) {
		if (ata_reset_channel(ch))
			return blkdev_fail(&d->blk, -EIO,
					   "%s: channel reset after the earlier timeout "
					   "failed: device still busy",
					   d->blk.name);
		pr_info("%s: channel reset after an earlier timeout\n", d->blk.name);
		d->broken = false;
	}
	if (ata_wait_idle(ch, d->blk.timeout_us, &st))
		return ata_fail(d, cmd, lba, st, -ETIMEDOUT, NULL);
	if (!d->lba48)
		devreg |= (u8)((lba >> 24) & 0xf);
	outb(ch->cmd + ATA_REG_DEVICE, devreg);
	ata_delay400(ch);
	if (ata_wait_idle(ch, d->blk.timeout_us, &st))
		return ata_fail(d, cmd, lba, st, -ETIMEDOUT, NULL);
	if (d->lba48) {
		outb(ch->cmd + ATA_REG_NSECT, (u8)(count >> 8));
		outb(ch->cmd + ATA_REG_LBAL, (u8)(lba >> 24));
		outb(ch->cmd + ATA_REG_LBAM, (u8)(lba >> 32));
		outb(ch->cmd + ATA_REG_LBAH, (u8)(lba >> 40));
	}
	outb(ch->cmd + ATA_REG_NSECT, (u8)count);
	outb(ch->cmd + ATA_REG_LBAL, (u8)lba);
	outb(ch->cmd + ATA_REG_LBAM, (u8)(lba >> 8));
	outb(ch->cmd + ATA_REG_LBAH, (u8)(lba >> 16));
	outb(ch->cmd + ATA_REG_COMMAND, cmd);
	ata_delay400(ch);
	return 0;
}

/* Polled PIO, one DRQ block per sector (ATA8-APT 9.4 and 9.5). */
static int ata_pio(struct ata_drive *d, u64 lba, u32 count, u8 *buf, bool write)
{
	struct ata_channel *ch = d->ch;
	u32 words = d->blk.sector_size / 2;
	u8 cmd = d->lba48 ? (write ? ATA_CMD_WRITE_SECTORS_EXT : ATA_CMD_READ_SECTORS_EXT) :
			    (write ? ATA_CMD_WRITE_SECTORS : ATA_CMD_READ_SECTORS);
	u8 st;
	int ret = ata_issue(d, cmd, lba, count);

	if (ret)
		return ret;
	d->blk.commands++;
	for (u32 i = 0; i < count; i++, buf += d->blk.sector_size) {
		if (ata_wait_drq(ch, d->blk.timeout_us, &st))
			return ata_fail(d, cmd, lba + i, st, -ETIMEDOUT, NULL);
		if (st & (ATA_SR_ERR | ATA_SR_DF))
			return ata_fail(d, cmd, lba + i, st, -EIO, NULL);
		if (write)
			ata_outsw(ch->cmd + ATA_REG_DATA, buf, words);
		else
			ata_insw(ch->cmd + ATA_REG_DATA, buf, words);
		ata_delay400(ch);
	}
	if (ata_wait_idle(ch, d->blk.timeout_us, &st))
		return ata_fail(d, cmd, lba, st, -ETIMEDOUT, NULL);
	st = inb(ch->cmd + ATA_REG_STATUS); /* also acknowledges the device */
	if (st & (ATA_SR_ERR | ATA_SR_DF))
		return ata_fail(d, cmd, lba, st, -EIO, NULL);
	if (st & ATA_SR_DRQ)
		return ata_fail(d, cmd, lba, st, -EIO,
				"device wants more data than the command moves");
	return 0;
}

/* Fills the channel's PRD table for [buf, buf+len); returns the entry count,
 * or 0 when the buffer is not DMA-able (above 4 GiB, odd address, or too
 * many pieces). PIIX 2.7.2: regions are even, below 4 GiB, and do not cross
 * a 64 KiB boundary. */
static u32 ata_build_prdt(struct ata_channel *ch, const u8 *buf, u64 len)
{
	u64 last_end = 0, last_len = 0;
	u32 n = 0;

	for (u64 done = 0; done < len;) {
		u64 pa = virt_to_phys(buf + done);
		u64 piece = MIN(len - done, PAGE_SIZE - (pa & (PAGE_SIZE - 1)));

		piece = MIN(piece, KiB(64) - (pa & (KiB(64) - 1)));
		if ((pa & 1) || (piece & 1) || pa + piece > GiB(4))
			return 0;
		/* Extend the previous region unless that would cross 64 KiB. */
		if (n && last_end == pa && (pa & (KiB(64) - 1))) {
			last_len += piece;
		} else {
			if (n == ATA_PRDT_MAX)
				return 0;
			n++;
			ch->prdt[n - 1].addr = (u32)pa;
			ch->prdt[n - 1].flags = 0;
			last_len = piece;
		}
		ch->prdt[n - 1].count = (u16)(last_len == KiB(64) ? 0 : last_len);
		last_end = pa + piece;
		done += piece;
	}
	if (n)
		ch->prdt[n - 1].flags = ATA_PRD_EOT;
	return n;
}

/* Bus-master DMA transfer (PIIX 2.7 "Bus Master IDE"), polled: the transfer
 * is done when the engine is no longer active and the device not busy. */
static int ata_dma(struct ata_drive *d, u64 lba, u32 count, u8 *buf, bool write)
{
	struct ata_channel *ch = d->ch;
	u64 len = (u64)count * d->blk.sector_size;
	u8 cmd = d->lba48 ? (write ? ATA_CMD_WRITE_DMA_EXT : ATA_CMD_READ_DMA_EXT) :
			    (write ? ATA_CMD_WRITE_DMA : ATA_CMD_READ_DMA);
	bool bounce = !ata_build_prdt(ch, buf, len);
	u8 st, bmst;
	int ret;

	if (bounce) {
		/* Too large to bounce (only a buffer in many scattered pieces):
		 * PIO takes any buffer. */
		if (len > ATA_BOUNCE_BYTES)
			return ata_pio(d, lba, count, buf, write);
		if (write)
			memcpy(ch->bounce, buf, len);
		ata_build_prdt(ch, ch->bounce, len);
	}
	outb(ch->bm + ATA_BM_CMD, 0);
	outl(ch->bm + ATA_BM_PRDT, (u32)ch->prdt_phys);
	outb(ch->bm + ATA_BM_STATUS,
	     inb(ch->bm + ATA_BM_STATUS) | ATA_BM_ST_ERROR | ATA_BM_ST_INTR);
	outb(ch->bm + ATA_BM_CMD, write ? 0 : ATA_BM_CMD_READ);
	ret = ata_issue(d, cmd, lba, count);
	if (ret)
		return ret;
	d->blk.commands++;
	outb(ch->bm + ATA_BM_CMD, (write ? 0 : ATA_BM_CMD_READ) | ATA_BM_CMD_START);

	u64 dl = deadline_after_us(d->blk.timeout_us);
	for (;;) {
		bmst = inb(ch->bm + ATA_BM_STATUS);
		st = ata_altstatus(ch);
		if ((bmst & ATA_BM_ST_ERROR) ||
		    (!(st & ATA_SR_BSY) && (st & (ATA_SR_ERR | ATA_SR_DF))))
			break;
		if (!(bmst & ATA_BM_ST_ACTIVE) && !(st & (ATA_SR_BSY | ATA_SR_DRQ)))
			break;
		if (deadline_passed(dl))
			return ata_fail(d, cmd, lba, st, -ETIMEDOUT, NULL);
		cpu_relax();
	}
	outb(ch->bm + ATA_BM_CMD, 0);
	st = inb(ch->cmd + ATA_REG_STATUS);
	outb(ch->bm + ATA_BM_STATUS, bmst | ATA_BM_ST_ERROR | ATA_BM_ST_INTR);
	if (bmst & ATA_BM_ST_ERROR)
		return ata_fail(d, cmd, lba, st, -EIO, "bus-master DMA error");
	if (st & (ATA_SR_ERR | ATA_SR_DF))
		return ata_fail(d, cmd, lba, st, -EIO, NULL);
	if (bounce && !write)
		memcpy(buf, ch->bounce, len);
	return 0;
}

static int ata_rw(struct blkdev *dev, u64 lba, u64 count, u8 *buf, bool write)
{
	struct ata_drive *d = container_of(dev, struct ata_drive, blk);
	/* LBA48 moves up to 65536 sectors per command, LBA28 256 (ACS 7.36). */
	u64 per_cmd = d->lba48 ? 65536 : 256;
	int ret;

	if (!d->lba48 && lba + count > (1ULL << 28))
		return blkdev_fail(dev, -ERANGE, "%s: LBA beyond 28 bits on a drive without LBA48",
				   dev->name);
	if (d->dma) {
		/* Misaligned buffers go through the 64 KiB bounce buffer. */
		u64 per_prdt =
			(((uintptr_t)buf & 1) ? ATA_BOUNCE_BYTES : MiB(16)) / dev->sector_size;

		per_cmd = MIN(per_cmd, per_prdt);
	}
	while (count) {
		u32 n = (u32)MIN(count, per_cmd);

		ret = d->dma ? ata_dma(d, lba, n, buf, write) : ata_pio(d, lba, n, buf, write);
		if (ret)
			return ret;
		lba += n;
		count -= n;
		buf += (u64)n * dev->sector_size;
	}
	return 0;
}

static int ata_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	return ata_rw(dev, lba, count, buf, false);
}

static int ata_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	return ata_rw(dev, lba, count, (u8 *)buf, true); /* PIO/DMA only read it */
}

static int ata_flush(struct blkdev *dev)
{
	struct ata_drive *d = container_of(dev, struct ata_drive, blk);
	u8 cmd = d->flush_ext ? ATA_CMD_FLUSH_CACHE_EXT : ATA_CMD_FLUSH_CACHE;
	u8 st;
	int ret = ata_issue(d, cmd, 0, 0);

	if (ret)
		return ret;
	dev->commands++;
	if (ata_wait_idle(d->ch, dev->timeout_us, &st))
		return ata_fail(d, cmd, 0, st, -ETIMEDOUT, NULL);
	st = inb(d->ch->cmd + ATA_REG_STATUS);
	if (st & (ATA_SR_ERR | ATA_SR_DF))
		return ata_fail(d, cmd, 0, st, -EIO, NULL);
	return 0;
}

static void ata_info(struct blkdev *dev)
{
	struct ata_drive *d = container_of(dev, struct ata_drive, blk);
	struct ata_channel *ch = d->ch;

	printk("  position:   %s %s, ports 0x%x/0x%x%s\n", ch->index ? "secondary" : "primary",
	       d->slave ? "slave" : "master", ch->cmd, ch->ctl, ch->bm ? ", bus master" : "");
	if (d->dma)
		printk("  transfer:   bus-master DMA (%s%d), %s\n",
		       d->dma_mode >= 100 ? "MWDMA" : "UDMA", d->dma_mode % 100,
		       d->lba48 ? "LBA48" : "LBA28");
	else
		printk("  transfer:   polled PIO, %s\n", d->lba48 ? "LBA48" : "LBA28");
	printk("  write cache: %s; flush with %s\n",
	       (d->id[ATA_ID_CMDSET_85] & BIT(5)) ? "enabled" : "off or absent",
	       d->flush_ext ? "FLUSH CACHE EXT" : "FLUSH CACHE");
	if (d->broken)
		printk("  state:      a command timed out; channel reset pending\n");
}

static const struct blkdev_ops ata_ops = {
	.read = ata_read,
	.write = ata_write,
	.flush = ata_flush,
	.info = ata_info,
};

/* IDENTIFY strings hold two characters per word, the first in the high byte. */
static void ata_id_string(const u16 *id, int word, int words, char *out)
{
	int len = 0;

	for (int i = 0; i < words; i++) {
		out[len++] = (char)(id[word + i] >> 8);
		out[len++] = (char)(id[word + i] & 0xff);
	}
	while (len && (out[len - 1] == ' ' || out[len - 1] == 0))
		len--;
	out[len] = 0;
	for (int i = 0; i < len; i++)
		if (out[i] < 0x20 || out[i] > 0x7e)
			out[i] = '?';
}

/* The DMA mode the firmware selected, or -1 (ACS 7.16.7.44 word 88, word 63). */
static int ata_selected_dma_mode(const u16 *id)
{
	if (!(id[ATA_ID_CAPABILITY] & BIT(8)))
		return -1;
	for (int m = 6; m >= 0; m--)
		if (id[ATA_ID_UDMA] & BIT(8 + m))
			return m;
	for (int m = 2; m >= 0; m--)
		if (id[ATA_ID_MWDMA] & BIT(8 + m))
			return 100 + m;
	return -1;
}

/* Issues IDENTIFY DEVICE to one position; 0 and the data in d->id when an
 * ATA disk answers, -ENODEV when nothing or something else (ATAPI) is there. */
static int ata_identify(struct ata_channel *ch, struct ata_drive *d, const char **what)
{
	u8 st;

	outb(ch->cmd + ATA_REG_DEVICE, ATA_DEVICE_OBS | (d->slave ? ATA_DEVICE_SLAVE : 0));
	ata_delay400(ch);
	/* Task-file registers of an absent drive do not hold what was written. */
	outb(ch->cmd + ATA_REG_NSECT, 0x55);
	outb(ch->cmd + ATA_REG_LBAL, 0xaa);
	if (inb(ch->cmd + ATA_REG_NSECT) != 0x55 || inb(ch->cmd + ATA_REG_LBAL) != 0xaa)
		return -ENODEV;
	if (ata_wait_idle(ch, ATA_PROBE_TIMEOUT_US, &st))
		return -ENODEV;
	outb(ch->cmd + ATA_REG_COMMAND, ATA_CMD_IDENTIFY);
	ata_delay400(ch);
	st = ata_altstatus(ch);
	if (st == 0 || st == 0xff)
		return -ENODEV;
	if (ata_wait_drq(ch, ATA_PROBE_TIMEOUT_US, &st))
		return -ENODEV;
	if (st & ATA_SR_ERR) {
		u8 mid = inb(ch->cmd + ATA_REG_LBAM), high = inb(ch->cmd + ATA_REG_LBAH);

		if (mid == ATA_SIG_ATAPI_MID && high == ATA_SIG_ATAPI_HIGH)
			*what = "ATAPI device (CD/DVD), not a disk";
		else if (mid == ATA_SIG_SATA_MID && high == ATA_SIG_SATA_HIGH)
			*what = "SATA device behind a legacy port";
		return -ENODEV;
	}
	ata_insw(ch->cmd + ATA_REG_DATA, d->id, 256);
	inb(ch->cmd + ATA_REG_STATUS);
	if (d->id[ATA_ID_CONFIG] & BIT(15)) {
		*what = "not an ATA device";
		return -ENODEV;
	}
	return 0;
}

static void ata_probe_drive(struct ata_channel *ch, bool slave)
{
	struct ata_drive *d = kzalloc(sizeof(*d));
	const char *what = NULL;
	const u16 *id;

	if (!d)
		return;
	d->ch = ch;
	d->slave = slave;
	if (ata_identify(ch, d, &what)) {
		if (what)
			pr_info("ata: %s %s: %s\n", ch->index ? "secondary" : "primary",
				slave ? "slave" : "master", what);
		kfree(d);
		return;
	}
	id = d->id;
	if (!(id[ATA_ID_CAPABILITY] & BIT(9))) {
		pr_warn("ata: %s %s: CHS-only drive not supported\n",
			ch->index ? "secondary" : "primary", slave ? "slave" : "master");
		kfree(d);
		return;
	}
	snprintf(d->blk.name, sizeof(d->blk.name), "ata%d", ata_drive_count);
	d->blk.kind = "ata";
	ata_id_string(id, ATA_ID_MODEL, 20, d->blk.model);
	ata_id_string(id, ATA_ID_SERIAL, 10, d->blk.serial);
	d->lba48 = (id[ATA_ID_CMDSET_83] & BIT(10)) && (id[ATA_ID_CMDSET_86] & BIT(10));
	if (d->lba48)
		d->blk.sectors = (u64)id[100] | (u64)id[101] << 16 | (u64)id[102] << 32 |
				 (u64)id[103] << 48;
	else
		d->blk.sectors = (u64)id[60] | (u64)id[61] << 16;
	d->blk.sector_size = 512;
	/* word 106: valid when bits 15:14 are 01; bit 12: logical sector > 256 words */
	if ((id[ATA_ID_SECTOR_SIZE] & 0xc000) == 0x4000 && (id[ATA_ID_SECTOR_SIZE] & BIT(12))) {
		u32 words = id[117] | (u32)id[118] << 16;

		if (words >= 256 && words <= 2048 && !(words & (words - 1)))
			d->blk.sector_size = words * 2;
	}
	d->flush_ext = d->lba48 && (id[ATA_ID_CMDSET_83] & BIT(13));
	d->blk.can_flush = true;
	d->blk.max_sectors = (u32)(MiB(16) / d->blk.sector_size);
	d->blk.ops = &ata_ops;
	d->dma_mode = ata_selected_dma_mode(id);
	d->dma = ch->bm && ch->prdt && d->dma_mode >= 0;
	if (blkdev_register(&d->blk) < 0) {
		kfree(d);
		return;
	}
	ata_drive_count++;
}

static void ata_probe_channel(struct pci_dev *pci, u16 cmd, u16 ctl, u16 bm, int index)
{
	struct ata_channel *ch;
	u8 st = inb(cmd + ATA_REG_STATUS);
	u64 prdt, bounce;

	/* A floating bus (no controller, or no drive pulls the lines) reads 0xff. */
	if (st == 0xff || ata_channel_count >= ATA_MAX_CHANNELS)
		return;
	ch = &ata_channels[ata_channel_count++];
	ch->pci = pci;
	ch->cmd = cmd;
	ch->ctl = ctl;
	ch->index = index;
	outb(ctl + ATA_REG_DEVCTL, ATA_DEVCTL_NIEN);
	if (bm) {
		prdt = pmm_alloc_page();
		bounce = pmm_alloc_contig(ATA_BOUNCE_BYTES / PAGE_SIZE,
					  ATA_BOUNCE_BYTES / PAGE_SIZE);
		/* The PRD table and bounce pages must lie below 4 GiB. */
		if (prdt && bounce && prdt < GiB(4) && bounce + ATA_BOUNCE_BYTES <= GiB(4)) {
			ch->bm = bm;
			ch->prdt = phys_to_virt(prdt);
			ch->prdt_phys = prdt;
			ch->bounce = phys_to_virt(bounce);
			ch->bounce_phys = bounce;
		}
	}
	ata_probe_drive(ch, false);
	ata_probe_drive(ch, true);
}

void ata_probe_pci(struct pci_dev *pci)
{
	u8 pif = pci->prog_if;
	/* PCI IDE Controller Specification 1.0, 2 "Programming Interface Byte":
	 * bit 0 / bit 2 set means that channel uses its BARs (native mode). */
	pci_enable(pci, PCI_COMMAND_IO | PCI_COMMAND_MASTER);
	for (int c = 0; c < 2; c++) {
		bool native = pif & (c ? BIT(2) : BIT(0));
		u16 cmd = c ? ATA_SECONDARY_CMD : ATA_PRIMARY_CMD;
		u16 ctl = c ? ATA_SECONDARY_CTL : ATA_PRIMARY_CTL;
		u16 bm = 0;

		if (native) {
			if (!pci->bar_is_io[2 * c] || !pci->bar_is_io[2 * c + 1])
				continue;
			cmd = (u16)pci->bar[2 * c];
			ctl = (u16)pci->bar[2 * c + 1] + 2;
		}
		if ((pif & BIT(7)) && pci->bar_is_io[4] && pci->bar_size[4] >= 16)
			bm = (u16)(pci->bar[4] + 8 * c);
		ata_probe_channel(pci, cmd, ctl, bm, c);
	}
}

void ata_probe_legacy(void)
{
	ata_probe_channel(NULL, ATA_PRIMARY_CMD, ATA_PRIMARY_CTL, 0, 0);
	ata_probe_channel(NULL, ATA_SECONDARY_CMD, ATA_SECONDARY_CTL, 0, 1);
}
