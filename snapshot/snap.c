/*
 * Save and restore of whole VMs. Save pauses the VM (every vCPU out of guest
 * mode), captures the neutral vCPU state and the devices, scans guest memory,
 * writes the image into free space of the store, flushes, commits the catalog
 * and resumes. Restore reads the image once, straight into a VM that stays
 * hidden until every check passed, then shows it paused. Kernel only; host
 * context (the shell).
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
#include "vmm/pager.h"
#include "vmm/vdev.h"
#include "vmm/vmm.h"

#define SNAP_STAGE (256 * 1024) /* staging buffer for the metadata of an image */

struct snap_store snap_store;
static struct snap_image image;		       /* save: the image being written */
static struct snap_parsed parsed;	       /* restore: the image being read */
static struct vcpu_state vstate[VM_MAX_VCPUS]; /* save: every vCPU, captured at once */

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

/* Redraws the bar at most four times a second (the serial line is slow) and
 * polls for Ctrl-C. */
int snap_progress(void *ctx, u64 done, u64 total)
{
	struct snap_progress *pr = ctx;
	u64 now = ticks();

	if (shell_interrupted())
		return -ECANCELED;
	if (now - pr->last >= 250000 || (done == total && pr->shown)) {
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

void snap_report_print(struct snap_report *r, const char *line) { printk("  damaged: %s\n", line); }

/* ---- disks and the store ---------------------------------------------------- */
struct blkdev *snap_pick_disk(const char *opt, int *index)
{
	int n = blkdev_count();
	u64 idx;

	if (!n) {
		printk("error: no snapshot disk: Amber found no disk (attach a virtio-blk, NVMe or ATA disk)\n");
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
		printk("error: no disk '%s' (disks 0-%d; see 'disk list')\n", opt, n - 1);
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
		printk("error: disk %d (%s) holds no snapshot store ('snap save' creates one on a "
		       "blank disk, 'snap format %d' on any other)\n",
		       index, dev->name, index);
	else if (ret)
		printk("error: disk %d: %s\n", index, snap_store.err);
	else
		snap_store_warn(index);
	return ret;
}

int snap_open_store(struct blkdev *dev, int index)
{
	return snap_open_report(snap_store_open_shell(dev), dev, index);
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

/* ---- save ------------------------------------------------------------------- */
struct save_io {
	u64 start, blocks; /* the extent the store gave the image */
	u64 bytes;	   /* image bytes handed to the disk so far */
};

/* What one save cost, for its summary line (and `make bench`): times in
 * microseconds, and what was counted. */
struct save_stats {
	u64 scan_us, write_us, commit_us;
	u64 bytes; /* image bytes written */
	u64 cmds;  /* device commands: image writes, flushes, catalog */
};

static int save_write(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	struct save_io *io = s->ctx;
	int ret;

	if (off / SNAP_BLOCK + len / SNAP_BLOCK > io->blocks)
		return -ERANGE; /* never past the extent */
	ret = snap_store_write(&snap_store, io->start + off / SNAP_BLOCK, len / SNAP_BLOCK, buf);
	if (!ret)
		io->bytes += len;
	return ret;
}

static void *guest_page(void *ctx, u64 gpa) { return gpa_to_hva(ctx, gpa, PAGE_SIZE); }

static u32 snap_vm_state(enum vm_state st)
{
	switch (st) {
	case VM_RUNNING:
		return SNAP_VM_RUNNING;
	case VM_PAUSED:
		return SNAP_VM_PAUSED;
	case VM_HALTED:
		return SNAP_VM_HALTED;
	case VM_EXITED:
		return SNAP_VM_EXITED;
	case VM_STOPPED:
	case VM_OFF: /* its stop_reason says "powered off" */
		return SNAP_VM_STOPPED;
	case VM_CREATED:
		return SNAP_VM_CREATED;
	default:
		return SNAP_VM_OTHER;
	}
}

static void capture_devices(struct vm *vm)
{
	image.dev.vm_id = (u32)vm->id;
	image.dev.mem_size = vm->mem_size;
	strlcpy(image.dev.image, vm->image, sizeof(image.dev.image));
	strlcpy(image.dev.cmdline, vm->cmdline, sizeof(image.dev.cmdline));
	image.dev.guest_tsc_hz = vm->guest_tsc_hz;
	image.ndevrecs = 0;
	for (int i = 0; i < vdev_count(); i++) {
		const struct vdev *d = vdev_at(i);
		struct snap_devrec *rec = &image.devrec[image.ndevrecs++];

		rec->id = d->id;
		rec->version = d->version;
		rec->len = d->record_size;
		vdev_save(vm, d, rec->data);
	}
}

/* Fills `image` from the stopped VM: vCPUs, devices and the scanned memory
 * (with a progress bar: the scan reads all of guest RAM and CRCs what is not
 * zero, a good part of the freeze for a large guest). */
static int capture(struct vm *vm, enum vm_state was, const char *name, u64 *scan_us)
{
	struct snap_progress pr;
	int ret;

	memset(&image, 0, sizeof(image));
	image.hdr.vm_id = (u64)vm->id;
	image.hdr.timestamp = ticks();
	strlcpy(image.info.name, name, sizeof(image.info.name));
	strlcpy(image.info.backend, vcpu_ops ? vcpu_ops->name : "?", sizeof(image.info.backend));
	image.note = "written by Amber " AMBER_VERSION " (" AMBER_GIT ")";
	image.nvcpus = (u32)vm->nvcpus;
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		ret = vcpu_get_state(v, &vstate[i]);
		if (ret) {
			printk("error: snap save: %s could not read the state of vCPU %d (%s)\n"
			       "snap save: nothing was committed, earlier snapshots are intact\n",
			       image.info.backend, i, errno_name(ret));
			return ret;
		}
		/* A paused guest's TSC stands still at the value it resumes with. */
		if (vm->state == VM_PAUSED)
			vstate[i].tsc = v->frozen_tsc;
		image.vcpu[i] = &vstate[i];
	}
	capture_devices(vm);
	image.dev.vm_state = snap_vm_state(was);
	image.dev.exit_code = (u32)vm->exit_code;
	if (was == VM_STOPPED || was == VM_OFF)
		strlcpy(image.dev.stop_reason, vm->stop_reason, sizeof(image.dev.stop_reason));
	/* Guest RAM is one region at GPA 0 (the 2 MiB chunks of vm->chunks). */
	image.nregions = 1;
	ret = snap_region_init(&image.region[0], 0, vm->mem_size / PAGE_SIZE, SNAP_PAGES_PER_CRC);
	if (ret) {
		printk("error: snap save: no memory for the page bitmap of VM %d\n", vm->id);
		return ret;
	}
	snap_progress_init(&pr, "scan");
	ret = snap_region_scan(&image.region[0], guest_page, vm, snap_progress, &pr);
	snap_progress_done(&pr);
	*scan_us = ticks() - pr.start;
	if (ret == -ECANCELED)
		printk("snap save: cancelled; nothing was committed, earlier snapshots are intact\n");
	else if (ret)
		printk("error: snap save: %s while scanning guest memory\n", errno_name(ret));
	return ret;
}

u64 snap_new_store_id(void) { return rdtsc() * 0x9E3779B97F4A7C15ULL ^ ticks() ^ snap_wallclock(); }

/* The store on dev for a save: opened, or created on a blank disk. */
static int save_store(struct blkdev *dev, int index)
{
	char size[32];
	int ret = snap_store_open_shell(dev);

	if (ret && ret != -ENODATA)
		printk("error: disk %d: %s\n", index, snap_store.err);
	if (!ret)
		snap_store_warn(index);
	if (ret != -ENODATA)
		return ret;
	ret = snap_store_blank(&snap_store, dev);
	if (ret < 0) {
		printk("error: disk %d: %s\n", index, snap_store.err);
		return ret;
	}
	if (!ret) {
		printk("error: disk %d (%s) holds data that is not a snapshot store; "
		       "'snap format %d --force' erases it\n",
		       index, dev->name, index);
		return -EEXIST;
	}
	ret = snap_store_format(&snap_store, dev, snap_new_store_id());
	if (ret) {
		printk("error: disk %d: %s\n", index, snap_store.err);
		return ret;
	}
	format_size(size, sizeof(size), dev->sectors * dev->sector_size);
	printk("snap: disk %d (%s, %s) was blank: created a snapshot store on it\n", index,
	       dev->name, size);
	return 0;
}

static int write_image(struct vm *vm, struct save_io *io, u64 *elapsed)
{
	struct snap_progress pr;
	struct snap_sink sink = {
		.write = save_write,
		.progress = snap_progress,
		.progress_ctx = &pr,
		.ctx = io,
		.stage_size = SNAP_STAGE,
	};
	int ret;

	sink.stage = snap_mem_alloc(SNAP_STAGE);
	if (!sink.stage)
		return -ENOMEM;
	snap_progress_init(&pr, "save");
	ret = snap_image_write(&image, &sink, guest_page, vm);
	snap_progress_done(&pr);
	*elapsed = ticks() - pr.start;
	snap_mem_free(sink.stage, SNAP_STAGE);
	return ret;
}

static void print_rate(char *buf, size_t len, u64 bytes, u64 us)
{
	u64 rate = us ? bytes * TICKS_PER_SEC / us : 0;

	snprintf(buf, len, "%llu.%llu MiB/s", (unsigned long long)(rate >> 20),
		 (unsigned long long)(((rate & (MiB(1) - 1)) * 10) >> 20));
}

/* The save report's figures as the control channel's data (kernel/ctl.h). */
static void save_json(struct vm *vm, const char *name, int index, const struct save_stats *st,
		      u64 frozen)
{
	struct json *j = ctl_data();

	if (!j)
		return;
	json_obj_begin(j, "save");
	json_u64(j, "vm", (u64)vm->id);
	json_str(j, "name", name);
	json_u64(j, "disk", (u64)index);
	json_u64(j, "image_bytes", image.hdr.total_size);
	json_u64(j, "memory", vm->mem_size);
	json_u64(j, "pages_stored", image.region[0].stored);
	json_u64(j, "pages", image.hdr.memory_pages);
	json_u64(j, "bytes_written", st->bytes);
	json_u64(j, "disk_commands", st->cmds);
	json_u64(j, "frozen_us", frozen);
	json_u64(j, "scan_us", st->scan_us);
	json_u64(j, "write_us", st->write_us);
	json_u64(j, "commit_us", st->commit_us);
	json_obj_end(j);
}

static int save_image(struct vm *vm, const char *name, int index, struct save_stats *st)
{
	char need[32], big[32], all[32];
	struct snap_entry e = { 0 };
	struct save_io io;
	u64 total = snap_image_layout(&image), free_blocks, largest;
	u8 raw[SNAP_HEADER_SIZE];
	u64 t0;
	int ret;

	if (!total) {
		printk("error: snap save: VM %d cannot be described as an image\n", vm->id);
		return -EINVAL;
	}
	if (snap_store_alloc(&snap_store, total, &io.start)) {
		snap_store_space(&snap_store, &free_blocks, &largest);
		format_size(need, sizeof(need), total);
		format_size(big, sizeof(big), largest * SNAP_BLOCK);
		format_size(all, sizeof(all), free_blocks * SNAP_BLOCK);
		printk("error: disk full: the image of VM %d needs %s, but the largest free extent "
		       "on disk %d (%s) is %s (%s free in all); earlier snapshots are intact\n",
		       vm->id, need, index, snap_store.dev->name, big, all);
		return -ENOSPC;
	}
	io.blocks = total / SNAP_BLOCK;
	io.bytes = 0;
	ret = write_image(vm, &io, &st->write_us);
	st->bytes = io.bytes;
	if (ret == -ECANCELED) {
		printk("snap save: cancelled; nothing was committed, earlier snapshots are intact\n");
		return ret;
	}
	if (ret) {
		printk("error: snap save: writing the image failed: %s; nothing was committed, "
		       "earlier snapshots are intact\n",
		       snap_store.err[0] ? snap_store.err : errno_name(ret));
		return ret;
	}
	strlcpy(e.name, name, sizeof(e.name));
	strlcpy(e.vm_image, vm->image, sizeof(e.vm_image));
	e.start_block = io.start;
	e.size = total;
	e.ticks = image.hdr.timestamp;
	e.wall = snap_wallclock();
	e.memory_pages = image.hdr.memory_pages;
	snap_header_encode(&image.hdr, raw);
	e.header_crc = crc32c(0, raw, sizeof(raw));
	e.vm_id = (u16)vm->id;
	e.vcpus = (u16)vm->nvcpus;
	t0 = ticks();
	ret = snap_store_add(&snap_store, &e);
	st->commit_us = ticks() - t0;
	if (ret && snap_store.unsure)
		printk("error: snap save: the disk did not confirm the new catalog (%s): '%s'\n"
		       "  may or may not be saved ('snap list' reads the disk again); earlier\n"
		       "  snapshots are intact\n",
		       snap_store.err, e.name);
	else if (ret)
		printk("error: snap save: committing the catalog failed: %s; the previous catalog "
		       "still describes the disk, earlier snapshots are intact\n",
		       snap_store.err);
	return ret;
}

int snap_save(int vm_id, const char *name, const char *disk_opt)
{
	struct vm *vm = vm_get(vm_id);
	struct blkdev *dev;
	enum vm_state was;
	struct save_stats st = { 0 };
	char img[32], mem[32], rate[32];
	u64 t0, c0, frozen;
	bool paused = false;
	int index, ret;

	if (!snap_name_valid(name)) {
		printk("error: snap save: '%s' is not a valid name (1-31 letters, digits, '.', '_', '-')\n",
		       name);
		return -EINVAL;
	}
	if (!vm) {
		printk("error: snap save: no VM %d (see 'vm list')\n", vm_id);
		return -ENOENT;
	}
	dev = snap_pick_disk(disk_opt, &index);
	if (!dev)
		return -ENODEV;
	if (dev->readonly) {
		printk("error: snap save: disk %d (%s) is read-only\n", index, dev->name);
		return -EROFS;
	}
	ret = save_store(dev, index);
	if (ret)
		return ret;
	if (snap_store_find(&snap_store, name) >= 0) {
		printk("error: snap save: a snapshot named '%s' exists on disk %d ('snap delete %s' "
		       "first, or pick another name)\n",
		       name, index, name);
		return -EEXIST;
	}

	/* A lazily restored VM still being filled: its image needs every page. */
	ret = pager_finish(vm, "snap save");
	if (ret)
		return ret;
	was = vm->state;
	if (was == VM_CREATED) {
		/* Its memory holds the loaded image but nothing ran: a restore could
		 * only resume it, never start it as 'vm start' does. */
		printk("error: snap save: VM %d was never started ('vm start %d' first)\n", vm_id,
		       vm_id);
		return -EINVAL;
	}
	c0 = dev->commands;
	t0 = ticks();
	if (was == VM_RUNNING || was == VM_HALTED) {
		ret = vm_pause(vm);
		if (ret)
			return ret;
		paused = true;
	}
	ret = capture(vm, was, name, &st.scan_us);
	if (!ret)
		ret = save_image(vm, name, index, &st);
	snap_region_release(&image.region[0]);
	if (paused)
		vm_resume(vm);
	frozen = ticks() - t0;
	st.cmds = dev->commands - c0;
	if (ret)
		return ret;
	/* The rate covers what the disk did for the image: the writes, the flush
	 * that makes it durable and the catalog commit (as `disk bench` counts
	 * its flush); the byte and command counts are exact. */
	format_size(img, sizeof(img), image.hdr.total_size);
	format_size(mem, sizeof(mem), vm->mem_size);
	print_rate(rate, sizeof(rate), st.bytes, st.write_us + st.commit_us);
	printk("saved VM %d as '%s' on disk %d (%s): image %s for %s of RAM (%llu of %llu pages "
	       "stored), %llu bytes in %llu disk commands, written and flushed at %s; VM frozen "
	       "%llu ms (scan %llu ms, write %llu ms, flush and commit %llu ms)%s\n",
	       vm->id, name, index, dev->name, img, mem, (unsigned long long)image.region[0].stored,
	       (unsigned long long)image.hdr.memory_pages, (unsigned long long)st.bytes,
	       (unsigned long long)st.cmds, rate, (unsigned long long)(frozen / 1000),
	       (unsigned long long)(st.scan_us / 1000), (unsigned long long)(st.write_us / 1000),
	       (unsigned long long)(st.commit_us / 1000), paused ? ", running again" : "");
	save_json(vm, name, index, &st, frozen);
	return 0;
}

/* ---- restore ---------------------------------------------------------------- */
/* Every device record into the new VM's devices, each checked by its device;
 * a record of a device this Amber does not have is refused (each is
 * mandatory, Xen's rule), as is one its device finds impossible. */
static int restore_devices(struct vm *vm, struct snap_parsed *p)
{
	strlcpy(vm->cmdline, p->dev.cmdline, sizeof(vm->cmdline));
	if (p->dev.guest_tsc_hz)
		vm->guest_tsc_hz = p->dev.guest_tsc_hz;
	for (u32 i = 0; i < p->ndevrecs; i++) {
		const struct snap_devrec *rec = &p->devrec[i];
		const struct vdev *d = vdev_find(rec->id);
		const char *why = "no such device in this Amber";

		if (!d || vdev_load(vm, d, rec->data, rec->len, rec->version, &why)) {
			printk("error: snap restore: device %u (%s) record version %u: %s\n",
			       rec->id, vdev_id_name(rec->id) ? vdev_id_name(rec->id) : "unknown",
			       rec->version, why);
			return -EINVAL;
		}
	}
	return 0;
}

/* The one restore in progress (the shell runs one command at a time). */
static struct {
	const struct snap_entry *entry;
	const char *name;
	struct vm *vm; /* hidden until restore_commit() */
	u64 create_us; /* making the empty VM (its RAM is not zeroed) */
	bool said;     /* prepare printed why it refused */
} rs;

/* snap_loader.prepare: the page data of region ri comes next and the image
 * checked out so far. Checks that this Amber can restore it, then makes the
 * hidden VM its pages go into. */
static int restore_prepare(struct snap_loader *ld, struct snap_parsed *p, u32 ri,
			   struct snap_report *rep)
{
	u64 t0 = ticks();

	/* The catalog names the image by its header's CRC: a different one
	 * means the extent was overwritten; do not read it into a VM. */
	if (crc32c(0, p->hdr_raw, SNAP_HEADER_SIZE) != rs.entry->header_crc) {
		snap_report(rep, "catalog entry and image header disagree (image overwritten?)");
		return 1;
	}
	if (ri != 0 || p->nregions != 1 || p->region[0].gpa != 0 || !p->hdr.vcpu_count ||
	    p->hdr.vcpu_count > VM_MAX_VCPUS) {
		printk("error: snap restore: '%s' has %u memory regions and %u vCPUs; this Amber "
		       "restores one region at address 0 and at most %d vCPUs\n",
		       rs.name, p->nregions, p->hdr.vcpu_count, VM_MAX_VCPUS);
		rs.said = true;
		return -EOPNOTSUPP;
	}
	/* The VM is as large as the region; a header that says otherwise is
	 * reported by the walk (check_whole), so nothing is loaded for it. */
	if (p->region[0].pages != p->hdr.memory_pages)
		return 1;
	rs.vm = vm_create_hidden(p->dev.image[0] ? p->dev.image : "?",
				 p->region[0].pages * PAGE_SIZE, (int)p->hdr.vcpu_count);
	rs.create_us = ticks() - t0;
	if (!rs.vm) {
		printk("error: snap restore: could not create the VM (see above); nothing restored\n");
		rs.said = true;
		return -ENOMEM;
	}
	ld->ctx = rs.vm;
	return 0;
}

int snap_restore_commit(struct vm *vm, struct snap_parsed *p, const struct vcpu_state *vs)
{
	int ret;

	strlcpy(vm->image, p->dev.image, sizeof(vm->image));
	if (restore_devices(vm, p))
		return -EINVAL;
	for (u32 i = 0; i < p->hdr.vcpu_count; i++) {
		ret = vcpu_set_state(vm->vcpus[i], &vs[i]);
		if (ret) {
			printk("error: snap restore: %s could not load the state of vCPU %u (%s)\n",
			       vcpu_ops->name, i, errno_name(ret));
			return ret;
		}
		vm->vcpus[i]->frozen_tsc = vs[i].tsc; /* what `vm resume` loads */
	}
	/* The VM comes back in the state it was saved in; a running or halted one
	 * comes back paused, so that 'vm resume' decides when it runs. */
	switch (p->dev.vm_state) {
	case SNAP_VM_EXITED:
		vm->state = VM_EXITED;
		vm->exit_code = (int)p->dev.exit_code;
		break;
	case SNAP_VM_STOPPED:
		vm->state = VM_STOPPED;
		strlcpy(vm->stop_reason, p->dev.stop_reason, sizeof(vm->stop_reason));
		break;
	default:
		vm->state = VM_PAUSED;
		break;
	}
	vm->started_ticks = ticks();
	ret = vm_publish(vm);
	if (ret)
		printk("error: snap restore: VM slot %d was taken while the image was read\n",
		       vm->id);
	return ret;
}

/* A finding ends the progress bar's line before it is printed. */
static void restore_report_print(struct snap_report *r, const char *line)
{
	snap_progress_done(r->ctx);
	snap_report_print(r, line);
}

/* Reads the image once into a hidden VM (snap_image_load), then commits it.
 * On any failure the hidden VM is removed: nothing in Amber changed. */
static int restore_one_pass(struct snap_source *src, const char *name, u64 *zeroed)
{
	struct snap_progress pr;
	struct snap_report rep = { .emit = restore_report_print, .ctx = &pr };
	struct snap_loader ld = {
		.prepare = restore_prepare,
		.page = guest_page,
		.progress = snap_progress,
		.pctx = &pr,
		.vcpu = vstate,
		.nvcpu = VM_MAX_VCPUS,
	};
	int ret;

	snap_progress_init(&pr, "restore");
	ret = snap_image_load(src, &parsed, &rep, &ld);
	snap_progress_done(&pr);
	*zeroed = ld.zeroed;
	if (!ret) {
		ret = snap_restore_commit(rs.vm, &parsed, vstate);
		if (ret)
			printk("snap restore: nothing restored\n");
		else
			return 0;
	} else if (ret == -ECANCELED) {
		printk("snap restore: cancelled; no VM created\n");
	} else if (ret == -EBADMSG) {
		printk("error: snap restore: snapshot '%s' is damaged (%d problem%s, first: %s); "
		       "restore refused, no VM created\n",
		       name, rep.errors, rep.errors == 1 ? "" : "s", rep.first);
	} else if (!rs.said) { /* prepare said why itself */
		printk("error: snap restore: reading '%s' failed: %s; no VM created\n", name,
		       snap_store.err[0] ? snap_store.err : errno_name(ret));
	}
	vm_destroy(rs.vm);
	rs.vm = NULL;
	return ret;
}

int snap_restore(const char *name, const char *disk_opt)
{
	struct snap_source src;
	struct blkdev *dev;
	struct vm *vm;
	char mem[32], rate[32], how[64];
	u64 t0, t_all, c0, b0, size, zeroed = 0;
	int index, entry, ret;

	dev = snap_pick_disk(disk_opt, &index);
	if (!dev)
		return -ENODEV;
	ret = snap_open_store(dev, index);
	if (ret)
		return ret;
	entry = snap_store_find(&snap_store, name);
	if (entry < 0) {
		printk("error: snap restore: no snapshot '%s' on disk %d (%s) (see 'snap list')\n",
		       name, index, dev->name);
		return -ENOENT;
	}
	ret = snap_source_get(&src, entry);
	if (ret)
		return ret;
	size = snap_store.entry[entry].size;
	rs.entry = &snap_store.entry[entry];
	rs.name = name;
	rs.vm = NULL;
	rs.create_us = 0;
	rs.said = false;
	c0 = dev->commands;
	b0 = dev->bytes_read;
	t0 = ticks();
	ret = restore_one_pass(&src, name, &zeroed);
	t_all = ticks() - t0;
	snap_image_close(&parsed);
	snap_source_put(&src);
	vm = rs.vm;
	rs.vm = NULL;
	if (ret)
		return ret;
	if (vm->state == VM_EXITED)
		snprintf(how, sizeof(how), "exited with code %d, as it was saved", vm->exit_code);
	else if (vm->state == VM_STOPPED)
		strlcpy(how, "stopped, as it was saved ('vm info' says why)", sizeof(how));
	else
		snprintf(how, sizeof(how), "paused: 'vm resume %d' continues it", vm->id);
	/* The rate is the image's size over the whole restore: how fast an image
	 * of that size comes back. The bytes are what the disk delivered (the
	 * block layer's count), so bytes/image size is reads per image byte. */
	format_size(mem, sizeof(mem), vm->mem_size);
	print_rate(rate, sizeof(rate), size, t_all);
	printk("restored '%s' as VM %d (%s, %s of RAM, saved from VM %u) in %llu ms = %s for the "
	       "%llu-byte image in one pass (new VM %llu ms, load and check %llu ms of which "
	       "disk reads %llu ms, %llu pages zeroed; %llu bytes read from the disk in %llu "
	       "commands), %s\n",
	       name, vm->id, vm->image, mem, parsed.dev.vm_id, (unsigned long long)(t_all / 1000),
	       rate, (unsigned long long)size, (unsigned long long)(rs.create_us / 1000),
	       (unsigned long long)((t_all - rs.create_us) / 1000),
	       (unsigned long long)(entry_io.io_us / 1000), (unsigned long long)zeroed,
	       (unsigned long long)(dev->bytes_read - b0), (unsigned long long)(dev->commands - c0),
	       how);
	if (ctl_data()) {
		struct json *j = ctl_data();

		json_obj_begin(j, "restore");
		json_str(j, "name", name);
		json_u64(j, "vm", (u64)vm->id);
		json_str(j, "state", vm_state_name(vm->state));
		json_u64(j, "memory", vm->mem_size);
		json_u64(j, "image_bytes", size);
		json_u64(j, "total_us", t_all);
		json_u64(j, "create_us", rs.create_us);
		json_u64(j, "disk_read_us", entry_io.io_us);
		json_u64(j, "pages_zeroed", zeroed);
		json_u64(j, "bytes_read", dev->bytes_read - b0);
		json_u64(j, "disk_commands", dev->commands - c0);
		json_obj_end(j);
	}
	return 0;
}
