/*
 * Save of a whole VM (`snap save`). The stop-the-world save pauses the VM
 * (every vCPU out of guest mode), captures the neutral vCPU state and the
 * devices, scans guest memory, writes the image into free space of the store,
 * flushes, commits the catalog and resumes; --parent stores only the pages
 * changed since the parent. Kernel only; host context (the shell).
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "kernel/version.h"
#include "kernel/x86.h"
#include "snapshot/save.h"
#include "snapshot/snap.h"
#include "vmm/hypercall.h"
#include "vmm/pager.h"
#include "vmm/vdev.h"
#include "vmm/vmm.h"
#include "vmm/vtsc.h"

#define SNAP_STAGE (256 * 1024) /* staging buffer for the metadata of an image */

static struct snap_image image;		       /* the image being written */
static struct vcpu_state vstate[VM_MAX_VCPUS]; /* every vCPU, captured at once */
static char note[240];			       /* the NOTE section's text (a fuzz crash added) */
static struct snap_parent save_parent;	       /* save --parent: the record */
struct snap_image *const save_img = &image;

/* ---- save ------------------------------------------------------------------- */
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
	image.dev.cpu_model = vm->cpu_model;
	image.dev.cpuid = vm->cpuid;
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

int save_capture_state(struct vm *vm, enum vm_state was, const char *name)
{
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
	return 0;
}

/* Fills `image` from the stopped VM: vCPUs, devices and the scanned memory
 * (with a progress bar: the scan reads all of guest RAM and CRCs what is not
 * zero, a good part of the freeze for a large guest). */
static int capture(struct vm *vm, enum vm_state was, const char *name, bool child, u64 *scan_us)
{
	u64 *changed = NULL, t0;
	int ret = save_capture_state(vm, was, name);

	if (ret)
		return ret;
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
		ret = snap_region_scan_changed(&image.region[0], changed, snap_guest_page, vm,
					       save_progress, NULL);
		snap_incr_free(vm, changed);
	} else {
		ret = snap_region_scan(&image.region[0], snap_guest_page, vm, save_progress, NULL);
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
	ret = snap_image_write(&image, &sink, snap_guest_page, vm);
	snap_progress_done(&save_pr.pr);
	*elapsed = ticks() - t0;
	snap_mem_free(sink.stage, SNAP_STAGE);
	return ret;
}

void save_json(struct vm *vm, const char *name, int index, const struct save_stats *st, u64 frozen,
	       void (*more)(struct json *j, const void *ctx), const void *ctx)
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
	if (more)
		more(j, ctx);
	json_obj_end(j);
}

int save_extent(struct vm *vm, int index, u64 total, struct save_io *io)
{
	char need[32], big[32], all[32];
	u64 free_blocks, largest;

	if (!total) {
		snap_progress_done(&save_pr.pr); /* the scan's bar ends before an error */
		return shell_error(-EINVAL, "VM %d cannot be described as an image", vm->id);
	}
	if (snap_store_alloc(&snap_store, total, &io->start)) {
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
	io->blocks = total / SNAP_BLOCK;
	io->bytes = 0;
	return 0;
}

int save_write(struct snap_sink *s, u64 off, const void *buf, u64 len)
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

int save_write_failed(int ret)
{
	if (ret == -ECANCELED) {
		printk("snap save: cancelled; nothing was committed, earlier snapshots are intact\n");
		return ret;
	}
	return shell_error(ret,
			   "writing the image failed: %s;\n"
			   "  nothing was committed, earlier snapshots are intact",
			   snap_store.err[0] ? snap_store.err : errno_name(ret));
}

int save_commit(struct vm *vm, const char *name, int old, const struct save_io *io,
		struct save_stats *st)
{
	struct snap_entry e = { 0 };
	u8 raw[SNAP_HEADER_SIZE];
	u64 t0;
	int ret;

	strlcpy(e.name, name, sizeof(e.name));
	strlcpy(e.vm_image, vm->image, sizeof(e.vm_image));
	e.start_block = io->start;
	e.size = image.hdr.total_size;
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

/* Writes the image into free space and commits it; `old` >= 0 is the entry
 * of the same name it replaces in that one commit (--replace). */
static int save_image(struct vm *vm, const char *name, int index, int old, struct save_stats *st)
{
	struct save_io io;
	int ret = save_extent(vm, index, snap_image_layout(&image), &io);

	if (ret)
		return ret;
	ret = write_image(vm, &io, &st->write_us);
	st->bytes = io.bytes;
	if (ret)
		return save_write_failed(ret);
	return save_commit(vm, name, old, &io, st);
}

int snap_save(int vm_id, const char *name, const char *disk_opt, const char *parent, bool replace,
	      bool live)
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
	/* Only a running guest changes its memory while the image is written.
	 * A live save that cannot lay the image out (-EAGAIN) leaves the VM
	 * as it found it, and the plain save below follows. */
	if (live && was == VM_RUNNING) {
		ret = snap_save_live(vm, name, index, old, parent ? &save_parent : NULL);
		if (ret != -EAGAIN)
			return ret;
		was = vm->state;
	} else if (live)
		printk("snap save: VM %d is %s: its memory cannot change, so a plain save\n", vm_id,
		       vm_state_name(was));
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
	snap_print_rate(rate, sizeof(rate), st.bytes, st.write_us + st.commit_us);
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
	save_json(vm, name, index, &st, frozen, NULL, NULL);
	return 0;
}
