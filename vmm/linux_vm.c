/*
 * A VM from a Linux kernel: hands the bzImage, the initrd module and the VM's
 * memory map to the pure loader (vmm/linux.c), sets vCPU 0 to the 32-bit
 * boot protocol's entry state and records the layout for `vm info`.
 * Host context (vm_create, from the shell).
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "vmm/linux.h"
#include "vmm/vmm_internal.h"

int linux_vm_load(struct vm *vm, const struct guest_image *img, const struct guest_image *initrd,
		  const char *cmdline, const struct mem_range *map, int nmap, u64 rsdp, u64 tsc)
{
	static struct vcpu_state entry; /* large: not on the shell's stack */
	struct linux_params p = { .cmdline = cmdline, .map = map, .nmap = nmap, .rsdp = rsdp };
	struct loader_target t;
	struct linux_loaded l;
	char err[160], rd[32] = "no initrd";
	int ret;

	if (initrd) {
		p.initrd = initrd->data;
		p.initrd_size = initrd->size;
	}
	vm_loader_target(vm, &t);
	ret = linux_load(img->data, img->size, &p, &t, &l, err, sizeof(err));
	if (ret) {
		shell_error(ret, "cannot load the Linux kernel '%s':\n  %s", img->name, err);
		return ret;
	}
	linux_entry_state(&entry, &l);
	entry.tsc = tsc;
	ret = vcpu_set_state(vm->vcpus[0], &entry);
	if (ret) {
		shell_error(ret, "%s could not load the entry state of '%s'", vcpu_ops->name,
			    img->name);
		return ret;
	}
	if (initrd)
		snprintf(rd, sizeof(rd), "initrd 0x%lx-0x%lx", l.initrd,
			 l.initrd + l.initrd_size - 1);
	/* One line for a person and the tests (at most 70 characters). */
	snprintf(vm->boot_layout, sizeof(vm->boot_layout), "Linux %u.%02u, kernel 0x%lx-0x%lx, %s",
		 (unsigned)l.version >> 8, (unsigned)l.version & 0xFF, l.kernel, l.kernel_end - 1,
		 rd);
	printk("vm %d: %s\n", vm->id, vm->boot_layout);
	return 0;
}
