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
#include "vmm/hypercall.h"
#include "vmm/pager.h"
#include "vmm/vdev.h"
#include "vmm/vmm.h"
#include "vmm/vtsc.h"

#define SNAP_STAGE (256 * 1024) /* staging buffer for the metadata of an image */

struct snap_store snap_store;
static struct snap_image image;		       /* save: the image being written */
static struct snap_parsed parsed;	       /* restore: the image being read */
static struct vcpu_state vstate[VM_MAX_VCPUS]; /* save: every vCPU, captured at once */
static char note[240];		       /* save: the NOTE section's text (a fuzz crash added) */
static struct snap_parent save_parent; /* save --parent: the record */

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

/* One bar over a save, the scan of guest RAM and then the image's write, in
 * bytes of work: the RAM scanned plus the image written. While the scan runs
 * the image's size is guessed from the share of pages it found to store. */
static struct {
	struct snap_progress pr;
	u64 ram; /* bytes the scan covers */
	bool writing;
} save_pr;

static int save_progress(void *ctx, u64 done, u64 total)
{
	u64 guess = total;

	(void)ctx;
	if (save_pr.writing)
		return snap_progress(&save_pr.pr, save_pr.ram + done, save_pr.ram + total);
	save_pr.ram = total;
	if (done >= PAGE_SIZE)
		guess = image.region[0].stored * (total / PAGE_SIZE) / (done / PAGE_SIZE) *
			PAGE_SIZE;
	return snap_progress(&save_pr.pr, done, total + guess);
}

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
	case VM_OFF: /* its stop_reason begins with VM_OFF_REASON */
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
	strlcpy(image.dev.initrd, vm->initrd, sizeof(image.dev.initrd));
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
static int capture(struct vm *vm, enum vm_state was, const char *name, bool child, u64 *scan_us)
{
	u64 *changed = NULL, t0;
	int ret;

	memset(&image, 0, sizeof(image));
	image.hdr.vm_id = (u64)vm->id;
	image.hdr.timestamp = ticks();
	image.info.image_id = snap_new_store_id() | 1; /* never 0: that means none */
	strlcpy(image.info.name, name, sizeof(image.info.name));
	strlcpy(image.info.backend, vcpu_ops ? vcpu_ops->name : "?", sizeof(image.info.backend));
	/* A fuzzing VM's first crash goes into the note (vmm/hypercall.h). */
	hypercall_note(vm, note, sizeof(note),
		       "written by Amber " AMBER_VERSION " (" AMBER_GIT ")");
	image.note = note;
	image.nvcpus = (u32)vm->nvcpus;
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		ret = vcpu_get_state(v, &vstate[i]);
		if (ret) {
			return shell_error(
				ret,
				"%s could not read the state of vCPU %d (%s)\n"
				"snap save: nothing was committed, earlier snapshots are intact",
				image.info.backend, i, errno_name(ret));
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
		return shell_error(ret, "no memory for the page bitmap of VM %d", vm->id);
	}
	t0 = ticks();
	save_pr.writing = false;
	if (child) {
		/* Only the pages changed since the parent, zero or not. */
		image.parent = &save_parent;
		ret = snap_incr_changed(vm, &save_parent, &changed);
		if (ret)
			return ret;
		ret = snap_region_scan_changed(&image.region[0], changed, guest_page, vm,
					       save_progress, NULL);
		snap_incr_free(vm, changed);
	} else {
		ret = snap_region_scan(&image.region[0], guest_page, vm, save_progress, NULL);
	}
	*scan_us = ticks() - t0;
	if (ret) /* else the bar goes on through the write */
		snap_progress_done(&save_pr.pr);
	if (ret == -ECANCELED)
		printk("snap save: cancelled; nothing was committed, earlier snapshots are intact\n");
	else if (ret)
		shell_error(ret, "%s while scanning guest memory", errno_name(ret));
	return ret;
}

u64 snap_new_store_id(void) { return rdtsc() * 0x9E3779B97F4A7C15ULL ^ ticks() ^ snap_wallclock(); }

/* The store on dev for a save: opened, or created on a blank disk. */
static int save_store(struct blkdev *dev, int index)
{
	char size[32];
	int ret = snap_store_open_shell(dev);

	if (ret && ret != -ENODATA)
		shell_error(ret, "disk %d: %s", index, snap_store.err);
	if (!ret)
		snap_store_warn(index);
	if (ret != -ENODATA)
		return ret;
	ret = snap_store_blank(&snap_store, dev);
	if (ret < 0) {
		return shell_error(ret, "disk %d: %s", index, snap_store.err);
	}
	if (!ret) {
		return shell_error(-EEXIST,
				   "disk %d (%s) holds data that is not a snapshot store;\n"
				   "  'snap format %d --force' erases it",
				   index, dev->name, index);
	}
	ret = snap_store_format(&snap_store, dev, snap_new_store_id());
	if (ret) {
		return shell_error(ret, "disk %d: %s", index, snap_store.err);
	}
	format_size(size, sizeof(size), dev->sectors * dev->sector_size);
	printk("snap: disk %d (%s, %s) was blank: created a snapshot store on it\n", index,
	       dev->name, size);
	return 0;
}

static int write_image(struct vm *vm, struct save_io *io, u64 *elapsed)
{
	struct snap_sink sink = {
		.write = save_write,
		.progress = save_progress,
		.ctx = io,
		.stage_size = SNAP_STAGE,
	};
	u64 t0 = ticks();
	int ret;

	save_pr.writing = true;
	sink.stage = snap_mem_alloc(SNAP_STAGE);
	if (!sink.stage) {
		snap_progress_done(&save_pr.pr);
		return -ENOMEM;
	}
	ret = snap_image_write(&image, &sink, guest_page, vm);
	snap_progress_done(&save_pr.pr);
	*elapsed = ticks() - t0;
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
	if (image.parent) {
		json_str(j, "parent", image.parent->name);
		json_str(j, "changed_from",
			 image.parent->source == SNAP_DELTA_LOG ? "dirty log" : "comparison");
	}
	json_obj_end(j);
}

/* Writes the image into free space and commits it; `old` >= 0 is the entry
 * of the same name it replaces in that one commit (--replace). */
static int save_image(struct vm *vm, const char *name, int index, int old, struct save_stats *st)
{
	char need[32], big[32], all[32];
	struct snap_entry e = { 0 };
	struct save_io io;
	u64 total = snap_image_layout(&image), free_blocks, largest;
	u8 raw[SNAP_HEADER_SIZE];
	u64 t0;
	int ret;

	if (!total) {
		snap_progress_done(&save_pr.pr); /* the scan's bar ends before an error */
		return shell_error(-EINVAL, "VM %d cannot be described as an image", vm->id);
	}
	if (snap_store_alloc(&snap_store, total, &io.start)) {
		snap_progress_done(&save_pr.pr);
		snap_store_space(&snap_store, &free_blocks, &largest);
		format_size(need, sizeof(need), total);
		format_size(big, sizeof(big), largest * SNAP_BLOCK);
		format_size(all, sizeof(all), free_blocks * SNAP_BLOCK);
		return shell_error(
			-ENOSPC,
			"disk full: VM %d's image needs %s, the largest free extent\n"
			"  on disk %d (%s) is %s (%s free in all); earlier snapshots are intact",
			vm->id, need, index, snap_store.dev->name, big, all);
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
		return shell_error(ret,
				   "writing the image failed: %s;\n"
				   "  nothing was committed, earlier snapshots are intact",
				   snap_store.err[0] ? snap_store.err : errno_name(ret));
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
	ret = old >= 0 ? snap_store_replace(&snap_store, &e, old) : snap_store_add(&snap_store, &e);
	st->commit_us = ticks() - t0;
	if (ret && snap_store.unsure)
		shell_error(
			ret,
			"the disk did not confirm the new catalog (%s): '%s'\n"
			"  may or may not be saved ('snap list' reads the disk again); earlier\n"
			"  snapshots are intact",
			snap_store.err, e.name);
	else if (ret)
		shell_error(
			ret,
			"committing the catalog failed: %s;\n"
			"  the previous catalog still describes the disk, earlier snapshots are intact",
			snap_store.err);
	return ret;
}

int snap_save(int vm_id, const char *name, const char *disk_opt, const char *parent, bool replace)
{
	struct vm *vm = vm_get(vm_id);
	struct blkdev *dev;
	enum vm_state was;
	struct save_stats st = { 0 };
	char img[32], mem[32], rate[32];
	u64 t0, c0, frozen;
	bool paused = false;
	int index, old = -1, ret;

	if (!snap_name_valid(name)) {
		return shell_error(-EINVAL,
				   "'%s' is not a name: use 1-31 letters, digits, '.', '_', '-'",
				   name);
	}
	if (!vm) {
		char id[16];

		snprintf(id, sizeof(id), "%d", vm_id);
		return shell_err_no_vm(id);
	}
	dev = snap_pick_disk(disk_opt, &index);
	if (!dev)
		return -ENODEV;
	if (dev->readonly) {
		return shell_error(-EROFS, "disk %d (%s) is read-only", index, dev->name);
	}
	ret = save_store(dev, index);
	if (ret)
		return ret;
	if (replace)
		old = snap_store_find(&snap_store, name);
	else if (snap_store_find(&snap_store, name) >= 0) {
		return shell_error(-EEXIST,
				   "'%s' exists on disk %d already;\n"
				   "  pick another name, or add --replace",
				   name, index);
	}
	if (old >= 0 && parent && !strcmp(parent, name)) {
		return shell_error(-EINVAL, "'%s' cannot build on the image it replaces", name);
	}
	/* Children hold only what changed since it: replaced, they would name
	 * an image that is gone. */
	if (old >= 0 && snap_refuse_parent(name, old, "replace"))
		return -EBUSY;

	if (parent && snap_incr_parent(vm, parent, &save_parent))
		return -EINVAL;
	/* A lazily restored VM still being filled: its image needs every page. */
	ret = pager_finish(vm, "snap save");
	if (ret)
		return ret;
	was = vm->state;
	if (was == VM_CREATED) {
		/* Its memory holds the loaded image but nothing ran: a restore could
		 * only resume it, never start it as 'vm start' does. */
		return shell_error(-EINVAL, "VM %d was never started ('vm start %d' first)", vm_id,
				   vm_id);
	}
	c0 = dev->commands;
	t0 = ticks();
	if (was == VM_RUNNING || was == VM_HALTED) {
		ret = vm_pause(vm);
		if (ret)
			return ret;
		paused = true;
	}
	snap_progress_init(&save_pr.pr, "save");
	ret = capture(vm, was, name, parent != NULL, &st.scan_us);
	if (!ret)
		ret = save_image(vm, name, index, old, &st);
	snap_region_release(&image.region[0]);
	/* Still paused: its dirty log counts from this image on. */
	if (!ret)
		snap_incr_mark(vm, image.info.image_id, image.info.header_crc);
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
	/* A summary line, the figures aligned below it (80 columns). */
	ctl_summary_next();
	printk("saved VM %d as '%s' in %llu ms%s\n", vm->id, name,
	       (unsigned long long)(frozen / 1000), paused ? ", running again" : "");
	printk("  image:   %s on disk %d (%s)\n", img, index, dev->name);
	printk("  memory:  %s, %llu of %llu pages stored (zero pages left out)\n", mem,
	       (unsigned long long)image.region[0].stored,
	       (unsigned long long)image.hdr.memory_pages);
	format_size(img, sizeof(img), st.bytes);
	printk("  written: %s (%llu bytes) in %llu commands at %s, flushed\n", img,
	       (unsigned long long)st.bytes, (unsigned long long)st.cmds, rate);
	printk("  frozen:  %llu ms (scan %llu ms, write %llu ms, flush and commit %llu ms)\n",
	       (unsigned long long)(frozen / 1000), (unsigned long long)(st.scan_us / 1000),
	       (unsigned long long)(st.write_us / 1000), (unsigned long long)(st.commit_us / 1000));
	if (parent) {
		printk("  parent:  '%s', a chain of %u images now\n", parent,
		       save_parent.depth + 1);
		printk("           %llu pages changed, found %s\n",
		       (unsigned long long)image.region[0].stored,
		       save_parent.source == SNAP_DELTA_LOG ? "in the dirty log" :
							      "by comparison with the parent");
	}
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
			return shell_error(-EINVAL, "device %u (%s) record version %u: %s", rec->id,
					   vdev_id_name(rec->id) ? vdev_id_name(rec->id) :
								   "unknown",
					   rec->version, why);
		}
	}
	return 0;
}

/* The one restore in progress (the shell runs one command at a time). */
static struct {
	const struct snap_entry *entry;
	const char *name;
	struct vm *vm;	 /* hidden until restore_commit() */
	struct vm *into; /* the VM it replaces (into=ID), else NULL */
	u64 create_us;	 /* making the empty VM (its RAM is not zeroed) */
	bool said;	 /* prepare printed why it refused */
	int tsc_err;	 /* why the TSC could not be scaled (vtsc_adopt) */
	/* A chain: the image loaded before this one (its child's parent). */
	u64 prev_id;
	u32 prev_crc;
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
	/* A chain: the full image made the VM; each child, loaded over it,
	 * must name the image just loaded and have the VM's shape. */
	if (rs.vm || p->child) {
		if (!rs.vm || !p->child || p->parent.image_id != rs.prev_id ||
		    p->parent.header_crc != rs.prev_crc) {
			snap_report(rep, "parent record: not the image loaded before it");
			return 1;
		}
		if (ri != 0 || p->nregions != 1 || p->region[0].gpa != 0 ||
		    p->region[0].pages * PAGE_SIZE != rs.vm->mem_size ||
		    p->hdr.vcpu_count != (u32)rs.vm->nvcpus) {
			snap_report(rep, "memory regions or vCPUs differ from its parent's");
			return 1;
		}
		ld->ctx = rs.vm;
		return 0;
	}
	if (ri != 0 || p->nregions != 1 || p->region[0].gpa != 0 || !p->hdr.vcpu_count ||
	    p->hdr.vcpu_count > VM_MAX_VCPUS) {
		shell_error(-EINVAL,
			    "'%s' has %u memory regions and %u vCPUs; this Amber\n"
			    "  restores one region at address 0 and at most %d vCPUs",
			    rs.name, p->nregions, p->hdr.vcpu_count, VM_MAX_VCPUS);
		rs.said = true;
		return -EOPNOTSUPP;
	}
	/* Saved on another machine (or vendor), a guest may have enabled what
	 * this CPU lacks: VM entry would fail, so refuse it before loading. */
	for (u32 i = 0; i < p->hdr.vcpu_count; i++) {
		const char *what;

		if (vcpu_state_fits(&ld->vcpu[i], &what)) {
			printk("error: snap restore: vCPU %u of '%s' uses %s,\n"
			       "  which this CPU does not offer; restore refused, no VM created\n",
			       i, rs.name, what);
			rs.said = true;
			return -EOPNOTSUPP;
		}
	}
	/* The VM is as large as the region; a header that says otherwise is
	 * reported by the walk (check_whole), so nothing is loaded for it. */
	if (p->region[0].pages != p->hdr.memory_pages)
		return 1;
	rs.vm = vm_create_hidden(p->dev.image[0] ? p->dev.image : "?",
				 p->region[0].pages * PAGE_SIZE, (int)p->hdr.vcpu_count, rs.into);
	rs.create_us = ticks() - t0;
	if (!rs.vm) {
		shell_error(-ENOMEM, "could not create the VM (see above); nothing restored");
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
	strlcpy(vm->initrd, p->dev.initrd, sizeof(vm->initrd)); /* a reset reloads it */
	if (restore_devices(vm, p))
		return -EINVAL;
	/* The devices count at the rate the image was saved with; the backend
	 * scales the TSC to it where it can (vmm/vtsc.c), before any vCPU's TSC
	 * is loaded. */
	vtsc_adopt(vm, vm->guest_tsc_hz, &rs.tsc_err);
	for (u32 i = 0; i < p->hdr.vcpu_count; i++) {
		ret = vcpu_set_state(vm->vcpus[i], &vs[i]);
		if (ret) {
			return shell_error(ret, "%s could not load the state of vCPU %u (%s)",
					   vcpu_ops->name, i, errno_name(ret));
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
	case SNAP_VM_STOPPED: /* or powered off, as its reason says */
		vm->state = strncmp(p->dev.stop_reason, VM_OFF_REASON, strlen(VM_OFF_REASON)) ?
				    VM_STOPPED :
				    VM_OFF;
		strlcpy(vm->stop_reason, p->dev.stop_reason, sizeof(vm->stop_reason));
		break;
	default:
		vm->state = VM_PAUSED;
		break;
	}
	vm->started_ticks = ticks();
	ret = vm_publish(vm);
	if (ret)
		shell_error(ret, "VM slot %d was taken while the image was read", vm->id);
	return ret;
}

/* A finding ends the progress bar's line before it is printed. */
static void restore_report_print(struct snap_report *r, const char *line)
{
	snap_progress_done(r->ctx);
	snap_report_print(r, line);
}

/* The progress of a chain's restore: one bar over all its images. */
struct chain_progress {
	struct snap_progress pr; /* first: the report prints through it */
	u64 base, total;
};
static int chain_progress(void *ctx, u64 done, u64 total)
{
	struct chain_progress *cp = ctx;

	return snap_progress(&cp->pr, cp->base + done, cp->total);
}

/* Reads each image of the chain once (snap_image_load), the full image
 * first, into one hidden VM, then commits it with the last image's CPU and
 * device state. On any failure the hidden VM is removed: nothing in Amber
 * changed. chain[0] is the snapshot restored, chain[n-1] its full image. */
static int restore_one_pass(const int *chain, u32 n, const char *name, u64 *zeroed, u64 *io_us)
{
	struct chain_progress cp = { .base = 0 };
	struct snap_report rep = { .emit = restore_report_print, .ctx = &cp.pr };
	struct snap_loader ld = {
		.prepare = restore_prepare,
		.page = guest_page,
		.progress = chain_progress,
		.pctx = &cp,
		.vcpu = vstate,
		.nvcpu = VM_MAX_VCPUS,
	};
	const char *img = name;
	int ret = 0;

	for (u32 k = 0; k < n; k++)
		cp.total += snap_entry_blocks(&snap_store.entry[chain[k]]) * SNAP_BLOCK;
	snap_progress_init(&cp.pr, "restore");
	for (u32 k = n; k-- > 0;) {
		struct snap_source src;

		rs.entry = &snap_store.entry[chain[k]];
		img = rs.entry->name;
		ret = snap_source_get(&src, chain[k]);
		if (ret)
			break;
		if (k != n - 1)
			snap_image_close(&parsed); /* the parent's, loaded */
		ret = snap_image_load(&src, &parsed, &rep, &ld);
		*zeroed += ld.zeroed;
		*io_us += entry_io.io_us;
		cp.base += src.size;
		snap_source_put(&src);
		if (ret)
			break;
		rs.prev_id = parsed.info.image_id;
		rs.prev_crc = crc32c(0, parsed.hdr_raw, SNAP_HEADER_SIZE);
	}
	if (!ret) /* a bar drawn ends at 100 % (the last blocks carry no pages) */
		(void)snap_progress(&cp.pr, cp.total, cp.total);
	snap_progress_done(&cp.pr);
	if (!ret) {
		ret = snap_restore_commit(rs.vm, &parsed, vstate);
		if (ret)
			printk("snap restore: nothing restored\n");
		else
			return 0;
	} else if (ret == -ECANCELED) {
		printk("snap restore: cancelled; no VM created\n");
	} else if (ret == -EBADMSG) {
		shell_error(ret,
			    "snapshot '%s' is damaged (%d problem%s, above);\n"
			    "  restore refused, no VM created",
			    img, rep.errors, rep.errors == 1 ? "" : "s");
	} else if (!rs.said) { /* prepare said why itself */
		shell_error(ret, "reading '%s' failed: %s; no VM created", img,
			    snap_store.err[0] ? snap_store.err : errno_name(ret));
	}
	vm_destroy(rs.vm);
	rs.vm = NULL;
	return ret;
}

int snap_restore(const char *name, const char *disk_opt, struct vm *into)
{
	static int chain[SNAP_MAX_CHAIN];
	struct blkdev *dev;
	struct vm *vm;
	char mem[32], rate[32], how[64], tscline[96], human[32];
	u64 t0, t_all, c0, b0, size = 0, zeroed = 0, io_us = 0;
	int index, entry, ret;
	u32 n;

	entry = snap_open_entry(name, disk_opt, &dev, &index);
	if (entry < 0)
		return entry;
	/* A child needs its whole chain, checked link by link first. */
	ret = snap_incr_chain(entry, chain, &n, "snap restore");
	if (ret) {
		printk("snap restore: refused, no VM created\n");
		return ret;
	}
	for (u32 k = 0; k < n; k++)
		size += snap_store.entry[chain[k]].size;
	rs.name = name;
	rs.vm = NULL;
	rs.into = into;
	rs.create_us = 0;
	rs.said = false;
	rs.tsc_err = 0;
	c0 = dev->commands;
	b0 = dev->bytes_read;
	t0 = ticks();
	ret = restore_one_pass(chain, n, name, &zeroed, &io_us);
	t_all = ticks() - t0;
	vm = rs.vm;
	rs.vm = NULL;
	if (!ret) /* still paused: its dirty log counts from this image on */
		snap_incr_mark(vm, parsed.info.image_id,
			       crc32c(0, parsed.hdr_raw, SNAP_HEADER_SIZE));
	snap_image_close(&parsed);
	if (ret)
		return ret;
	if (vm->state == VM_EXITED)
		snprintf(how, sizeof(how), "exited with code %d, as it was saved", vm->exit_code);
	else if (vm->state == VM_STOPPED || vm->state == VM_OFF)
		snprintf(how, sizeof(how), "%s, as it was saved ('vm info' says why)",
			 vm_state_name(vm->state));
	else
		snprintf(how, sizeof(how), "paused; 'vm resume %d' runs it", vm->id);
	/* The rate is the image's size over the whole restore: how fast an image
	 * of that size comes back. The bytes are what the disk delivered (the
	 * block layer's count), so bytes/image size is reads per image byte. */
	format_size(mem, sizeof(mem), vm->mem_size);
	print_rate(rate, sizeof(rate), size, t_all);
	ctl_summary_next();
	printk("restored '%s' as VM %d in %llu ms, %s\n", name, vm->id,
	       (unsigned long long)(t_all / 1000), vm_state_name(vm->state));
	printk("  state:   %s\n", how);
	printk("  VM:      %s, %s of RAM, saved from VM %u\n", vm->image, mem, parsed.dev.vm_id);
	format_size(human, sizeof(human), size);
	printk("  image:   %s (%llu bytes) in one pass at %s\n", human, (unsigned long long)size,
	       rate);
	if (n > 1)
		printk("  chain:   %u images, each read once\n", n);
	printk("  time:    new VM %llu ms, load and check %llu ms (disk reads %llu ms)\n",
	       (unsigned long long)(rs.create_us / 1000),
	       (unsigned long long)((t_all - rs.create_us) / 1000),
	       (unsigned long long)(io_us / 1000));
	format_size(human, sizeof(human), dev->bytes_read - b0);
	printk("  read:    %s (%llu bytes) in %llu commands; %llu pages zeroed\n", human,
	       (unsigned long long)(dev->bytes_read - b0), (unsigned long long)(dev->commands - c0),
	       (unsigned long long)zeroed);
	vtsc_describe(vm, rs.tsc_err, tscline, sizeof(tscline));
	if (tscline[0])
		printk("%s\n", tscline);
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
		json_u64(j, "disk_read_us", io_us);
		json_u64(j, "chain", n);
		json_u64(j, "pages_zeroed", zeroed);
		json_u64(j, "bytes_read", dev->bytes_read - b0);
		json_u64(j, "disk_commands", dev->commands - c0);
		json_u64(j, "tsc_hz", vm->guest_tsc_hz);
		json_u64(j, "host_tsc_hz", tsc_hz());
		json_str(j, "tsc",
			 vm->tsc_mode == VTSC_SCALED   ? "scaled" :
			 vm->tsc_mode == VTSC_UNSCALED ? "unscaled" :
							 "native");
		json_obj_end(j);
	}
	return 0;
}
