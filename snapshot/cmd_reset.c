/*
 * `snap reset VM [NAME | --drop | --info]`: fast reset from the shell. The
 * first call takes the VM's base in memory (vmm/fastreset.h), each later one
 * returns the VM to it, copying back only the pages written since; with NAME
 * the base is read from that snapshot image instead. A running VM is paused
 * for it and runs on afterwards. Host context (the shell).
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "snapshot/snap.h"
#include "vmm/fastreset.h"
#include "vmm/hypercall.h"
#include "vmm/vdev.h"
#include "vmm/vmm.h"

static void say_no_memory(struct vm *vm)
{
	char want[24], have[24];

	format_size(want, sizeof(want), fastreset_base_bytes(vm));
	format_size(have, sizeof(have), fastreset_free_bytes());
	shell_error(-ENOMEM,
		    "VM %d's reset base needs %s of host memory, %s is free\n"
		    "  beyond the host's reserve; no base was taken",
		    vm->id, want, have);
}

static int take(struct vm *vm)
{
	char want[24];
	int err = fastreset_take(vm);

	format_size(want, sizeof(want), fastreset_base_bytes(vm));
	if (err == -ENOMEM) {
		say_no_memory(vm);
	} else if (err == -EOPNOTSUPP) {
		shell_error(err, "this CPU cannot track VM %d's dirty pages; no base was taken",
			    vm->id);
	} else if (err) {
		shell_error(err, "VM %d's reset base could not be taken (%s)", vm->id,
			    errno_name(err));
	} else {
		printk("vm %d: reset base taken (%s of RAM copied, dirty tracking on);\n"
		       "  'snap reset %d' returns to it, '--drop' frees it\n",
		       vm->id, want, vm->id);
	}
	return err;
}

static int reset(struct vm *vm)
{
	const struct fastreset_base *b = vm->base;
	int err = fastreset_reset(vm);

	if (err == -EINVAL) {
		shell_error(err,
			    "VM %d's dirty tracking was stopped under the base;\n"
			    "  'snap reset %d --drop' and take a new one",
			    vm->id, vm->id);
		return err;
	}
	if (err) {
		vm_stop(vm, "fast reset failed half way (%s); the state is mixed", errno_name(err));
		return err;
	}
	printk("vm %d: reset to its base: %llu pages copied back in %llu us (reset %llu)\n", vm->id,
	       (unsigned long long)b->pages_last, (unsigned long long)b->us_last,
	       (unsigned long long)b->resets);
	return 0;
}

static void info(struct vm *vm)
{
	const struct fastreset_base *b = vm->base;

	if (b)
		printk("vm %d: reset base of %llu MiB, %llu resets, %llu pages copied back\n"
		       "  (%llu by the last, in %llu us); TSC ticks: %llu by the last,\n"
		       "  %llu per reset\n",
		       vm->id, (unsigned long long)(fastreset_base_bytes(vm) >> 20),
		       (unsigned long long)b->resets, (unsigned long long)b->pages_total,
		       (unsigned long long)b->pages_last, (unsigned long long)b->us_last,
		       (unsigned long long)b->tsc_last,
		       (unsigned long long)(b->resets ? b->tsc_total / b->resets : 0));
	else
		printk("vm %d: no reset base\n", vm->id);
	hypercall_describe(vm);
}

/* ---- a base from a snapshot image --------------------------------------- */
static struct snap_parsed img;		       /* the image being read */
static struct vcpu_state vstate[VM_MAX_VCPUS]; /* its vCPU records, decoded */

struct image_load {
	struct vm *vm;
	struct fastreset_base *b;
	const struct snap_entry *entry;
	const char *name;
	bool said; /* prepare printed why it refused */
};

/* Pages of the image land in the base's chunks, never in the VM's RAM. */
static void *base_page(void *ctx, u64 gpa)
{
	struct image_load *il = ctx;

	if (gpa >= il->vm->mem_size)
		return NULL;
	return (u8 *)phys_to_virt(il->b->chunks[gpa / VM_CHUNK_SIZE]) + gpa % VM_CHUNK_SIZE;
}

/* snap_loader.prepare: the image must fit the VM as it is (one region of its
 * size at 0, its vCPU count) and be the one the catalog names. */
static int image_prepare(struct snap_loader *ld, struct snap_parsed *p, u32 ri,
			 struct snap_report *rep)
{
	struct image_load *il = ld->ctx;

	if (crc32c(0, p->hdr_raw, SNAP_HEADER_SIZE) != il->entry->header_crc) {
		snap_report(rep, "catalog entry and image header disagree (image overwritten?)");
		return 1;
	}
	if (ri != 0 || p->nregions != 1 || p->region[0].gpa != 0 ||
	    p->region[0].pages * PAGE_SIZE != il->vm->mem_size ||
	    p->hdr.vcpu_count != (u32)il->vm->nvcpus) {
		shell_error(-EOPNOTSUPP,
			    "'%s' holds %llu KiB of RAM in %u regions and %u vCPUs;\n"
			    "  vm %d has %llu KiB and %d: no base taken, the VM is unchanged",
			    il->name, (unsigned long long)(p->hdr.memory_pages * 4), p->nregions,
			    p->hdr.vcpu_count, il->vm->id,
			    (unsigned long long)(il->vm->mem_size >> 10), il->vm->nvcpus);
		il->said = true;
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The image's device records through the VM's devices (each checks its own,
 * older versions included) into the base in this Amber's encoding. On a
 * refusal the VM's devices get their own records back. */
static int image_devices(struct vm *vm, struct fastreset_base *b, const char *name)
{
	int n = vdev_count();
	u64 size = 0;
	const char *why;
	u8 *save, *rec;

	for (int i = 0; i < n; i++)
		size += vdev_at(i)->record_size;
	save = kmalloc(size); /* the VM's own records, for an undo */
	if (!save) {
		shell_error(-ENOMEM, "out of host memory; the VM is unchanged");
		return -ENOMEM;
	}
	for (int i = 0, off = 0; i < n; off += vdev_at(i)->record_size, i++)
		vdev_save(vm, vdev_at(i), save + off);
	vdev_reset_all(vm);
	for (u32 i = 0; i < img.ndevrecs; i++) {
		const struct snap_devrec *r = &img.devrec[i];
		const struct vdev *d = vdev_find(r->id);

		why = "no such device in this Amber";
		if (!d || vdev_load(vm, d, r->data, r->len, r->version, &why)) {
			shell_error(-EINVAL,
				    "'%s': device %u record version %u: %s;\n"
				    "  no base taken, the VM is unchanged",
				    name, r->id, r->version, why);
			rec = save;
			for (int k = 0; k < n; k++) {
				vdev_load(vm, vdev_at(k), rec, vdev_at(k)->record_size,
					  vdev_at(k)->version, &why);
				rec += vdev_at(k)->record_size;
			}
			kfree(save);
			return -EINVAL;
		}
	}
	kfree(save);
	rec = b->devrec;
	for (int i = 0; i < n; i++) {
		vdev_save(vm, vdev_at(i), rec);
		rec += vdev_at(i)->record_size;
	}
	return 0;
}

/* Reads snapshot NAME into a new base for vm (every CRC checked, nothing of
 * the VM touched until all passed), then returns vm to it in full. */
static int take_from_image(struct vm *vm, const char *name, const char *disk_opt)
{
	struct image_load il = { .vm = vm, .name = name };
	struct snap_progress pr;
	struct snap_report rep = { .emit = snap_report_print };
	struct snap_loader ld = {
		.prepare = image_prepare,
		.page = base_page,
		.ctx = &il,
		.progress = snap_progress,
		.pctx = &pr,
		.vcpu = vstate,
		.nvcpu = VM_MAX_VCPUS,
	};
	struct snap_source src;
	struct blkdev *dev;
	u64 t0 = ticks();
	int index, entry, ret;

	entry = snap_open_entry(name, disk_opt, &dev, &index);
	if (entry < 0)
		return entry;
	il.b = fastreset_alloc(vm);
	if (!il.b) {
		say_no_memory(vm);
		return -ENOMEM;
	}
	ret = snap_source_get(&src, entry);
	if (ret) {
		fastreset_free(il.b);
		return ret;
	}
	il.entry = &snap_store.entry[entry];
	snap_progress_init(&pr, "base");
	ret = snap_image_load(&src, &img, &rep, &ld);
	snap_progress_done(&pr);
	if (!ret) {
		if (img.dev.guest_tsc_hz && img.dev.guest_tsc_hz != vm->guest_tsc_hz)
			printk("snap reset: note: '%s' ran its TSC at %llu Hz, vm %d at %llu Hz\n",
			       name, (unsigned long long)img.dev.guest_tsc_hz, vm->id,
			       (unsigned long long)vm->guest_tsc_hz);
		for (int i = 0; i < vm->nvcpus; i++)
			memcpy(il.b->vcpu[i], &vstate[i], sizeof(vstate[i]));
		ret = image_devices(vm, il.b, name);
	} else if (ret == -EBADMSG) {
		shell_error(ret,
			    "snapshot '%s' is damaged (%d problem%s, above);\n"
			    "  no base taken, the VM is unchanged",
			    name, rep.errors, rep.errors == 1 ? "" : "s");
	} else if (ret == -ECANCELED) {
		printk("snap reset: cancelled; no base taken, the VM is unchanged\n");
	} else if (!il.said) {
		shell_error(ret, "reading '%s' failed: %s; the VM is unchanged", name,
			    errno_name(ret));
	}
	snap_image_close(&img);
	snap_source_put(&src);
	if (ret) {
		fastreset_free(il.b);
		return ret;
	}
	ret = fastreset_adopt(vm, il.b);
	if (ret == -EOPNOTSUPP || ret == -ENOMEM) {
		shell_error(ret, "VM %d's dirty tracking cannot start (%s); no base taken", vm->id,
			    errno_name(ret));
		return ret;
	}
	if (ret) {
		vm_stop(vm, "loading the base from '%s' failed half way (%s)", name,
			errno_name(ret));
		return ret;
	}
	printk("vm %d: reset base read from '%s' and loaded in %llu ms;\n"
	       "  'snap reset %d' returns to it, '--drop' frees it\n",
	       vm->id, name, (unsigned long long)((ticks() - t0) / 1000), vm->id);
	return 0;
}

int snap_reset_cmd(const char *vm_arg, const char *what, const char *disk_opt)
{
	const char *name = what && strncmp(what, "--", 2) ? what : NULL;
	struct vm *vm;
	bool was_running;
	u64 id;
	int err;

	if (parse_u64(vm_arg, &id) || id > VM_MAX || !(vm = vm_get((int)id)))
		return shell_err_no_vm(vm_arg);
	if (what && !strcmp(what, "--info")) {
		info(vm);
		return 0;
	}
	if (what && !strcmp(what, "--drop")) {
		if (!vm->base) {
			printk("vm %d has no reset base\n", vm->id);
			return 0;
		}
		fastreset_drop(vm);
		printk("vm %d: reset base freed\n", vm->id);
		return 0;
	}
	if (what && !name) {
		return shell_error(-EINVAL, "there is no option '%s' (--drop or --info)", what);
	}
	if (vm->state == VM_CREATED) {
		return shell_error(-EINVAL, "vm %d has not started: 'vm start %d' first", vm->id,
				   vm->id);
	}
	if ((!vm->base || name) && vm->state != VM_RUNNING && vm->state != VM_HALTED &&
	    vm->state != VM_PAUSED) {
		return shell_error(-EINVAL,
				   "vm %d is %s; a base is taken from a running or paused VM",
				   vm->id, vm_state_name(vm->state));
	}
	was_running = vm->state == VM_RUNNING || vm->state == VM_HALTED;
	if (was_running) {
		err = vm_pause(vm);
		if (err)
			return err;
	}
	if (name) {
		err = take_from_image(vm, name, disk_opt);
	} else if (vm->base) {
		err = reset(vm);
		if (!err && !was_running && vm->state != VM_PAUSED) {
			vm->state = VM_PAUSED; /* an ended VM: 'vm resume' runs it again */
			printk("vm %d: paused at its base: 'vm resume %d' runs it\n", vm->id,
			       vm->id);
		}
	} else {
		err = take(vm);
	}
	if (was_running && vm->state == VM_PAUSED)
		vm_resume(vm);
	return err;
}
