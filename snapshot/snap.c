/*
 * What save (snapshot/save.c) and restore (snapshot/restore.c) share with the
 * `snap` shell commands: the one open store, picking a disk and opening its
 * store, an image source over a catalog entry, the progress bar with Ctrl-C,
 * and memory for the snapshot code. Kernel only; host context (the shell).
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "kernel/version.h"
#include "kernel/x86.h"
#include "snapshot/snap.h"
#include "vmm/hypercall.h"
#include "vmm/pager.h"
#include "vmm/vdev.h"
#include "vmm/vmm.h"
#include "vmm/vtsc.h"

struct snap_store snap_store;

/* Small objects come from the heap, the rest as whole pages (zeroed). */
void *snap_mem_alloc(size_t size)
{
	u64 pa;

	if (size <= 2048)
		return kmalloc(size);
	pa = pmm_alloc_contig(ALIGN_UP(size, PAGE_SIZE) / PAGE_SIZE, 1);
	return pa ? phys_to_virt(pa) : NULL;
}

void snap_mem_free(void *p, size_t size)
{
	if (!p)
		return;
	if (size <= 2048)
		kfree(p);
	else
		pmm_free_contig(virt_to_phys(p), ALIGN_UP(size, PAGE_SIZE) / PAGE_SIZE);
}

/* ---- progress and reports ------------------------------------------------- */
void snap_progress_init(struct snap_progress *pr, const char *what)
{
	pr->what = what;
	pr->start = pr->last = ticks();
	pr->shown = false;
}

/* Draws the bar once the work has taken half a second (a shorter one gets
 * none), then at most four times a second (the serial line is slow); polls
 * for Ctrl-C. */
int snap_progress(void *ctx, u64 done, u64 total)
{
	struct snap_progress *pr = ctx;
	u64 now = ticks();

	if (shell_interrupted())
		return -ECANCELED;
	if (!pr->shown && now - pr->start < 500000)
		return 0;
	if (now - pr->last >= 250000 || !pr->shown || done == total) {
		shell_progress(pr->what, done, total, pr->start);
		pr->last = now;
		pr->shown = true;
	}
	return 0;
}

void snap_progress_done(struct snap_progress *pr)
{
	if (pr->shown)
		printk("\n");
	pr->shown = false;
}

/* A finding names offsets and ranges: wrapped under itself at 80 columns. */
void snap_report_print(struct snap_report *r, const char *line)
{
	shell_wrap("  damaged:", 11, line);
}

/* ---- disks and the store ---------------------------------------------------- */
struct blkdev *snap_pick_disk(const char *opt, int *index)
{
	int n = blkdev_count();
	u64 idx;

	if (!n) {
		shell_err_no_disk(opt, 0);
		return NULL;
	}
	if (opt) {
		if (!parse_u64(opt, &idx) && idx < (u64)n) {
			*index = (int)idx;
			return blkdev_get((int)idx);
		}
		for (int i = 0; i < n; i++) {
			if (!strcmp(blkdev_get(i)->name, opt)) {
				*index = i;
				return blkdev_get(i);
			}
		}
		shell_err_no_disk(opt, n);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		if (snap_store_present(blkdev_get(i))) {
			*index = i;
			return blkdev_get(i);
		}
	}
	*index = 0;
	return blkdev_get(0);
}

void snap_init(void) { blkdev_set_guard(snap_store_present); }

void snap_store_warn(int index)
{
	if (!snap_store.damaged)
		return;
	for (int c = 0; c < 2; c++)
		if (!snap_store.copy[c].ok)
			printk("WARNING: disk %d: catalog copy %c: %s\n", index, 'A' + c,
			       snap_store.copy[c].why);
	printk("WARNING: disk %d: data area scanned: %s\n", index, snap_store.note);
	if (snap_store.overwritten)
		printk("WARNING: %u found image%s cut short by a later one (not restorable)\n",
		       snap_store.overwritten, snap_store.overwritten == 1 ? " was" : "s were");
	printk("WARNING: 'snap list' marks recovered entries; the next save or delete\n"
	       "WARNING: writes the repaired catalog\n");
}

int snap_store_open_shell(struct blkdev *dev)
{
	struct snap_progress pr;
	int ret;

	snap_progress_init(&pr, "scan for images");
	snap_store.progress = snap_progress;
	snap_store.progress_ctx = &pr;
	ret = snap_store_open(&snap_store, dev);
	snap_progress_done(&pr);
	snap_store.progress = NULL;
	return ret;
}

int snap_open_report(int ret, struct blkdev *dev, int index)
{
	if (ret == -ENODATA)
		shell_error(
			ret,
			"disk %d (%s) holds no snapshot store;\n"
			"  'snap save' creates one on a blank disk, 'snap format %d' on any other",
			index, dev->name, index);
	else if (ret)
		shell_error(ret, "disk %d: %s", index, snap_store.err);
	else
		snap_store_warn(index);
	return ret;
}

int snap_open_store(struct blkdev *dev, int index)
{
	return snap_open_report(snap_store_open_shell(dev), dev, index);
}

int snap_open_entry(const char *name, const char *disk_opt, struct blkdev **dev, int *index)
{
	int entry, ret;

	*dev = snap_pick_disk(disk_opt, index);
	if (!*dev)
		return -ENODEV;
	ret = snap_open_store(*dev, *index);
	if (ret)
		return ret;
	entry = snap_store_find(&snap_store, name);
	if (entry < 0)
		return shell_err_no_snap(name, *index, (*dev)->name);
	return entry;
}

struct entry_io {
	u64 start;  /* first block of the image */
	u8 *bounce; /* one block, for reads that are not whole blocks */
	u64 cached; /* block held in bounce, or ~0 */
	u64 io_us;  /* time spent waiting for the disk (the restore's summary) */
};
static struct entry_io entry_io;

/* Whole blocks go straight into buf (scratch or guest memory, both page
 * aligned); anything else through the one-block bounce. */
static int entry_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	struct entry_io *io = src->ctx;
	u8 *dst = buf;
	u64 t0 = ticks();
	int ret;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	if (off % SNAP_BLOCK == 0 && len % SNAP_BLOCK == 0) {
		ret = snap_store_read(&snap_store, io->start + off / SNAP_BLOCK, len / SNAP_BLOCK,
				      buf);
		io->io_us += ticks() - t0;
		return ret;
	}
	while (len) {
		u64 blk = off / SNAP_BLOCK, in = off % SNAP_BLOCK, n = MIN(len, SNAP_BLOCK - in);

		if (blk != io->cached) {
			io->cached = ~0ULL;
			ret = snap_store_read(&snap_store, io->start + blk, 1, io->bounce);
			io->io_us += ticks() - t0;
			t0 = ticks();
			if (ret)
				return ret;
			io->cached = blk;
		}
		memcpy(dst, io->bounce + in, n);
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

int snap_source_get(struct snap_source *src, int entry)
{
	const struct snap_entry *e = &snap_store.entry[entry];

	entry_io.bounce = snap_mem_alloc(SNAP_BLOCK);
	if (!entry_io.bounce)
		return -ENOMEM;
	entry_io.start = e->start_block;
	entry_io.cached = ~0ULL;
	entry_io.io_us = 0;
	src->read = entry_read;
	src->size = snap_entry_blocks(e) * SNAP_BLOCK;
	src->ctx = &entry_io;
	return 0;
}

void snap_source_put(struct snap_source *src)
{
	snap_mem_free(entry_io.bounce, SNAP_BLOCK);
	entry_io.bounce = NULL;
}

u64 snap_new_store_id(void) { return rdtsc() * 0x9E3779B97F4A7C15ULL ^ ticks() ^ snap_wallclock(); }

void *snap_guest_page(void *ctx, u64 gpa) { return gpa_to_hva(ctx, gpa, PAGE_SIZE); }

u64 snap_source_io_us(const struct snap_source *src)
{
	return ((const struct entry_io *)src->ctx)->io_us;
}

void snap_print_rate(char *buf, size_t len, u64 bytes, u64 us)
{
	u64 rate = us ? bytes * TICKS_PER_SEC / us : 0;

	snprintf(buf, len, "%llu.%llu MiB/s", (unsigned long long)(rate >> 20),
		 (unsigned long long)(((rate & (MiB(1) - 1)) * 10) >> 20));
}
