/*
 * `snap reset VM [--drop | --info]`: fast reset from the shell. The first
 * call takes the VM's base in memory (vmm/fastreset.h), each later one
 * returns the VM to it, copying back only the pages written since. A running
 * VM is paused for it and runs on afterwards. Host context (the shell).
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "snapshot/snap.h"
#include "vmm/fastreset.h"
#include "vmm/hypercall.h"
#include "vmm/vmm.h"

static int take(struct vm *vm)
{
	char want[24], have[24];
	int err = fastreset_take(vm);

	format_size(want, sizeof(want), fastreset_base_bytes(vm));
	if (err == -ENOMEM) {
		format_size(have, sizeof(have), fastreset_free_bytes());
		printk("error: vm %d: a reset base needs %s of host memory, %s is free\n"
		       "  beyond the host's reserve; no base was taken\n",
		       vm->id, want, have);
	} else if (err == -EOPNOTSUPP) {
		printk("error: vm %d: this CPU cannot track dirty pages; no base was taken\n",
		       vm->id);
	} else if (err) {
		printk("error: vm %d: the reset base could not be taken (%s)\n", vm->id,
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
		printk("error: vm %d: its dirty tracking was stopped under the base;\n"
		       "  'snap reset %d --drop' and take a new one\n",
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

int snap_reset_cmd(const char *vm_arg, const char *what)
{
	struct vm *vm;
	bool was_running;
	u64 id;
	int err;

	if (parse_u64(vm_arg, &id) || id > 1000 || !(vm = vm_get((int)id))) {
		printk("error: snap reset: '%s' is not a VM number (see 'vm list')\n", vm_arg);
		return -EINVAL;
	}
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
	if (what) {
		printk("error: snap reset: '%s' is neither --drop nor --info\n", what);
		return -EINVAL;
	}
	if (vm->state == VM_CREATED) {
		printk("error: vm %d has not started: 'vm start %d' first\n", vm->id, vm->id);
		return -EINVAL;
	}
	if (!vm->base && vm->state != VM_RUNNING && vm->state != VM_HALTED &&
	    vm->state != VM_PAUSED) {
		printk("error: vm %d is %s; a base is taken from a running or paused VM\n", vm->id,
		       vm_state_name(vm->state));
		return -EINVAL;
	}
	was_running = vm->state == VM_RUNNING || vm->state == VM_HALTED;
	if (was_running) {
		err = vm_pause(vm);
		if (err)
			return err;
	}
	if (vm->base) {
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
