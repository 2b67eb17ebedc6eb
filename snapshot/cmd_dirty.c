/*
 * `snap dirty VM start|show|clear|stop`: the VM's dirty log (vmm/dirtylog.h)
 * from the shell, a debugging aid for the tracking that incremental snapshots
 * build on. show lists the written pages as guest-physical page ranges.
 * Host context (the shell); the VM is out of guest mode meanwhile.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "snapshot/snap.h"
#include "vmm/vmm.h"

#define DIRTY_LINE 78 /* columns a list line may fill */

/* Prints the dirty pages as "0x300-0x302 0x345" ranges of page numbers,
 * wrapped at DIRTY_LINE columns. */
static void dirty_show(struct vm *vm, u64 sync_us)
{
	const struct dirty_log *l = &vm->dirty;
	char line[DIRTY_LINE + 1], item[48];
	u64 p = dirty_log_next(l, 0);
	size_t used = 0;

	printk("vm %d: %llu of %llu pages dirty (synced in %llu us)\n", vm->id,
	       (unsigned long long)dirty_log_count(l), (unsigned long long)l->npages,
	       (unsigned long long)sync_us);
	line[0] = 0;
	while (p < l->npages) {
		u64 end = p;

		while (end + 1 < l->npages && dirty_log_test(l, end + 1))
			end++;
		if (end == p)
			snprintf(item, sizeof(item), " 0x%llx", (unsigned long long)p);
		else
			snprintf(item, sizeof(item), " 0x%llx-0x%llx", (unsigned long long)p,
				 (unsigned long long)end);
		if (used + strlen(item) > DIRTY_LINE - 7) {
			printk("  pages%s\n", line);
			used = 0;
			line[0] = 0;
		}
		snprintf(line + used, sizeof(line) - used, "%s", item);
		used += strlen(item);
		p = dirty_log_next(l, end + 1);
	}
	if (used)
		printk("  pages%s\n", line);
}

int snap_dirty_cmd(const char *vm_arg, const char *what)
{
	struct vm *vm;
	u64 t0;
	int err;

	vm = vm_from_arg(vm_arg);
	if (!vm)
		return -ENOENT;
	if (!strcmp(what, "start")) {
		err = vm_dirty_start(vm);
		if (err == -EBUSY)
			shell_error(err, "VM %d: dirty tracking is on already", vm->id);
		else if (err)
			shell_error(err, "VM %d: dirty tracking cannot start (%s)", vm->id,
				    errno_name(err));
		else
			printk("vm %d: dirty tracking on, %llu pages of 4 KiB\n", vm->id,
			       (unsigned long long)vm->dirty.npages);
		return err;
	}
	/* A reset base counts on the log: clearing or stopping it would lose
	 * pages a reset must copy back. */
	if (vm->base && (!strcmp(what, "stop") || !strcmp(what, "clear"))) {
		return shell_error(-EBUSY,
				   "VM %d's reset base owns the dirty log ('snap reset %d --drop'\n"
				   "  frees it)",
				   vm->id, vm->id);
	}
	if (!strcmp(what, "stop")) {
		vm_dirty_stop(vm);
		printk("vm %d: dirty tracking off\n", vm->id);
		return 0;
	}
	if (strcmp(what, "show") && strcmp(what, "clear")) {
		return shell_error(-EINVAL, "'%s' is none of start, show, clear, stop", what);
	}
	t0 = ticks();
	err = vm_dirty_sync(vm);
	if (err) {
		return shell_error(err, "dirty tracking is off for VM %d; 'snap dirty %d start'",
				   vm->id, vm->id);
	}
	if (!strcmp(what, "show")) {
		dirty_show(vm, ticks() - t0);
	} else {
		dirty_log_clear(&vm->dirty);
		printk("vm %d: dirty log cleared\n", vm->id);
	}
	return 0;
}
