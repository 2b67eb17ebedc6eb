/*
 * Restore of a whole VM (`snap restore`), in one pass: each image of the chain
 * is read once, straight into a VM that stays hidden until every check passed,
 * then shows it paused (or exited, or stopped, as it was saved). A failure
 * removes the hidden VM and changes nothing else. Kernel only; host context
 * (the shell).
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

static struct snap_parsed parsed;	       /* the image being read */
static struct vcpu_state vstate[VM_MAX_VCPUS]; /* every vCPU, as loaded */

/* ---- restore ---------------------------------------------------------------- */
/* Every device record into the new VM's devices, each checked by its device;
 * a record of a device this Amber does not have is refused (each is
 * mandatory, Xen's rule), as is one its device finds impossible. */
static int restore_devices(struct vm *vm, struct snap_parsed *p)
{
	strlcpy(vm->cmdline, p->dev.cmdline, sizeof(vm->cmdline));
	if (p->dev.guest_tsc_hz)
		vm->guest_tsc_hz = p->dev.guest_tsc_hz;
	/* A named CPU model goes on showing the guest the very features it saw
	 * (snap_cpu_fits found them all here); the host model shows this host's. */
	if (p->dev.has_cpuid && p->dev.cpu_model != CPU_MODEL_HOST) {
		vm->cpu_model = p->dev.cpu_model;
		vm->cpuid = p->dev.cpuid;
	}
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

int snap_cpu_fits(const char *name, const struct snap_parsed *p, const struct vcpu_state *vs)
{
	const char *model = cpu_model_name(p->dev.cpu_model);
	struct cpuid_features here;
	char miss[240], unknown[16];
	int n;

	vmm_cpuid_offered(&here);
	if (!model) {
		snprintf(unknown, sizeof(unknown), "%u", p->dev.cpu_model);
		model = unknown;
	}
	n = p->dev.has_cpuid ? cpuid_features_missing(&p->dev.cpuid, &here, miss, sizeof(miss)) : 0;
	if (n && p->dev.cpu_model != CPU_MODEL_HOST) {
		/* A named model: the guest was shown exactly these features and
		 * may use any of them (Linux patches its code by them at boot). */
		printk("error: snap restore: '%s' runs CPU model %s; this CPU lacks %d of\n"
		       "  its features:\n",
		       name, model, n);
		shell_wrap("  ", 2, miss);
		printk("  restore refused, no VM created\n");
		return -EOPNOTSUPP;
	}
	for (u32 i = 0; i < p->hdr.vcpu_count; i++) {
		const char *what;

		if (vcpu_state_fits(&vs[i], &what)) {
			printk("error: snap restore: vCPU %u of '%s' uses %s,\n"
			       "  which this CPU does not offer; restore refused, no VM created\n",
			       i, name, what);
			if (p->dev.cpu_model == CPU_MODEL_HOST)
				printk("  (its guest saw CPU model host; one created with 'vm create "
				       "... cpu=portable'\n  restores under VT-x and AMD-V alike)\n");
			return -EOPNOTSUPP;
		}
	}
	if (n) { /* the host model: what the guest may use is unknown */
		printk("snap restore: note: '%s' was shown features this CPU lacks (CPU model\n"
		       "  host); a guest that uses one faults:\n",
		       name);
		shell_wrap("  ", 2, miss);
	}
	return 0;
}

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
	/* Saved on another machine (or vendor), a guest may use what this CPU
	 * lacks: refuse it before loading. */
	if (snap_cpu_fits(rs.name, p, ld->vcpu)) {
		rs.said = true;
		return -EOPNOTSUPP;
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
		.page = snap_guest_page,
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
		*io_us += snap_source_io_us(&src);
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
	snap_print_rate(rate, sizeof(rate), size, t_all);
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
	snap_restore_json(name, vm,
			  &(struct snap_restore_figures){
				  .total_us = t_all,
				  .bytes_read = dev->bytes_read - b0,
				  .disk_commands = dev->commands - c0,
				  .full = { .image_bytes = size,
					    .create_us = rs.create_us,
					    .disk_read_us = io_us,
					    .pages_zeroed = zeroed,
					    .chain = n },
			  });
	return 0;
}

void snap_restore_json(const char *name, struct vm *vm, const struct snap_restore_figures *f)
{
	struct json *j = ctl_data();
	const char *cpu = cpu_model_name(vm->cpu_model);

	if (!j)
		return;
	json_obj_begin(j, "restore");
	json_str(j, "name", name);
	json_u64(j, "vm", (u64)vm->id);
	json_str(j, "state", vm_state_name(vm->state));
	json_bool(j, "lazy", f->lazy);
	json_u64(j, "memory", vm->mem_size);
	json_str(j, "cpu", cpu ? cpu : "?");
	json_u64(j, "total_us", f->total_us);
	json_u64(j, "bytes_read", f->bytes_read);
	json_u64(j, "disk_commands", f->disk_commands);
	if (!f->lazy) {
		json_u64(j, "image_bytes", f->full.image_bytes);
		json_u64(j, "create_us", f->full.create_us);
		json_u64(j, "disk_read_us", f->full.disk_read_us);
		json_u64(j, "chain", f->full.chain);
		json_u64(j, "pages_zeroed", f->full.pages_zeroed);
	}
	json_u64(j, "tsc_hz", vm->guest_tsc_hz);
	json_u64(j, "host_tsc_hz", tsc_hz());
	json_str(j, "tsc",
		 vm->tsc_mode == VTSC_SCALED   ? "scaled" :
		 vm->tsc_mode == VTSC_UNSCALED ? "unscaled" :
						 "native");
	json_obj_end(j);
}
