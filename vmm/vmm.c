/*
 * The VMM core: picks the hardware backend at boot, and owns the VM table, guest
 * RAM (2 MiB chunks from the physical allocator), loading a guest image and the
 * VM life cycle (create, start, pause, resume, stop, destroy).
 * Host context on the boot CPU, interrupts off; no vCPU is in guest mode while
 * any of this runs (guests only run inside vmm_idle()).
 */
#include "vmm/vmm.h"
#include "kernel/cpu.h"
#include "kernel/irq.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "kernel/x86.h"
#include "snapshot/snap.h"
#include "vmm/fastreset.h"
#include "vmm/fwtables.h"
#include "vmm/hypercall.h"
#include "vmm/linux.h"
#include "vmm/memmap.h"
#include "vmm/loader.h"
#include "vmm/pager.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

/* The two backends (vmm/vmx/vmx.c, vmm/svm/svm.c). Only this file names them:
 * everything else asks the one in use through vcpu_ops. */
extern const struct vcpu_ops vmx_ops, svm_ops;

const struct vcpu_ops *vcpu_ops;
struct vm *vm_table[VM_MAX];
static char unavailable[200] = "the VMM was not initialised";
static u64 wall_at_boot, ticks_at_boot; /* the host's RTC, read once */

static const char *const state_names[] = {
	[VM_CREATED] = "created", [VM_RUNNING] = "running", [VM_PAUSED] = "paused",
	[VM_HALTED] = "halted",	  [VM_EXITED] = "exited",   [VM_STOPPED] = "stopped",
	[VM_OFF] = "off",
};

const char *vm_state_name(enum vm_state st)
{
	return (unsigned)st < ARRAY_SIZE(state_names) ? state_names[st] : "?";
}

const char *vmm_unavailable_reason(void) { return vcpu_ops ? NULL : unavailable; }

void vmm_describe_backend(char *buf, size_t len)
{
	if (vcpu_ops)
		snprintf(buf, len, "%s in use (the CPU offers %s)", vcpu_ops->name,
			 vcpu_ops->mechanism);
	else
		snprintf(buf, len, "none: %s", unavailable);
}

/* Chooses the backend once: VT-x with EPT, else AMD-V with NPT
 * (docs/vmm.md "Backends"). */
static const struct vcpu_ops *pick_backend(void)
{
	if (cpu.vmx && cpu.vmx_locked_off)
		snprintf(unavailable, sizeof(unavailable),
			 "VT-x is disabled by the firmware (IA32_FEATURE_CONTROL is locked)");
	else if (cpu.vmx && !cpu.vmx_ept)
		snprintf(unavailable, sizeof(unavailable), "the CPU has VT-x but no EPT");
	else if (cpu.vmx)
		return &vmx_ops;
	else if (cpu.svm && cpu.svm_disabled)
		snprintf(unavailable, sizeof(unavailable),
			 "AMD-V is disabled by the firmware (VM_CR.SVMDIS)");
	else if (cpu.svm && !cpu.svm_npt)
		snprintf(unavailable, sizeof(unavailable),
			 "the CPU has AMD-V but no nested paging");
	else if (cpu.svm)
		return &svm_ops;
	else
		snprintf(unavailable, sizeof(unavailable),
			 "the CPU offers neither VT-x nor AMD-V%s",
			 cpu.hypervisor ?
				 " (Amber runs under a hypervisor without nested virtualization)" :
				 "");
	return NULL;
}

/* The host timer is what ends a slice of a guest that never exits; say so at
 * boot if it does not tick. */
static void check_timer(void)
{
	u64 dl = deadline_after_us(100000);

	irq_timer_arm(ticks() + 1000);
	while (!irq_timer_count() && !deadline_passed(dl))
		irq_window();
	if (!irq_timer_count())
		pr_warn("vmm: the host timer (PIT, IRQ0) does not tick: a guest that never exits "
			"will keep the CPU");
}

u64 vmm_wallclock(void)
{
	return wall_at_boot ? wall_at_boot + (ticks() - ticks_at_boot) / 1000000 : 0;
}

/* On each other CPU, through smp_call: the FPU control bits the guests'
 * state switching expects, and the backend's per-CPU enable. */
static u64 cpu_enable_here(u64 unused)
{
	(void)unused;
	vcpu_fpu_setup_cpu();
	return (u64)(s64)vcpu_ops->cpu_enable();
}

/* Virtualization on every online CPU; one that fails or does not answer is
 * reported and stays without it. */
static void enable_other_cpus(void)
{
	int on = 1, online = smp_online_count();

	for (int i = 1; i < smp_cpu_count; i++) {
		u64 r = 0;

		if (host_cpus[i].state != CPU_ONLINE)
			continue;
		if (smp_call(i, cpu_enable_here, 0, &r, SMP_CALL_TIMEOUT_US) == 0 && r == 0)
			on++;
		else if (host_cpus[i].state == CPU_ONLINE)
			pr_err("vmm: %s could not be enabled on CPU %d (error %ld)", vcpu_ops->name,
			       i, (long)(s64)r);
	}
	if (smp_cpu_count > 1)
		pr_info("vmm: %s on %d of %d online CPUs", vcpu_ops->name, on, online);
}

void vmm_init(void)
{
	const struct vcpu_ops *ops = pick_backend();

	wall_at_boot = snap_wallclock();
	ticks_at_boot = ticks();

	guest_images_init();
	if (ops) {
		if (ops->hw_enable() == 0) {
			vcpu_ops = ops;
		} else {
			snprintf(unavailable, sizeof(unavailable),
				 "%s could not be enabled (see the boot log)", ops->name);
		}
	}
	if (!vcpu_ops) {
		pr_warn("vmm: no guests can run: %s", unavailable);
		return;
	}
	vcpu_fpu_setup();
	enable_other_cpus();
	irq_timer_init();
	check_timer();
	shell_set_idle(vmm_idle);
	shell_set_hold(vmm_hold);
	vcpu_sched_init();
	pr_info("vmm: %s backend ready; %d guest image(s)", vcpu_ops->name, guest_image_count());
}

struct vm *vm_get(int id)
{
	if (id < 1 || id > VM_MAX)
		return NULL;
	return vm_table[id - 1];
}

static void free_ram(struct vm *vm)
{
	for (u64 i = 0; i < vm->nchunks; i++)
		if (vm->chunks[i])
			pmm_free_2m(vm->chunks[i]);
	kfree(vm->chunks);
	vm->chunks = NULL;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vuart_flush(vm);
	fastreset_drop(vm); /* before the tracking and the vCPUs go */
	hypercall_free(vm);
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		if (!v)
			continue;
		if (v->arch && vcpu_ops)
			vcpu_ops->vcpu_destroy(v);
		vcpu_free(v);
		vm->vcpus[i] = NULL;
	}
	pager_free(vm);
	if (vm->arch && vcpu_ops) {
		vm_dirty_stop(vm);
		vcpu_ops->vm_destroy(vm);
	}
	free_ram(vm);
	vdev_free_all(vm);
	if (vm->id >= 1 && vm->id <= VM_MAX && vm_table[vm->id - 1] == vm)
		vm_table[vm->id - 1] = NULL;
	kfree(vm);
}

/* Allocates a VM with its RAM and vCPUs and lets the backend build the nested
 * page tables and VMCS/VMCBs. Prints why and returns NULL on failure. A hidden
 * VM takes an id but no table entry (vm_publish), and RAM nobody zeroed; one
 * that `replaces` a VM takes that VM's id instead of a free one. */
static struct vm *vm_alloc(const char *image, u64 mem, int ncpus, bool hidden, struct vm *replaces)
{
	char want[24], have[24];
	u64 free_bytes = pmm_free_pages() * PAGE_SIZE;
	struct vm *vm;
	int slot;

	if (!vcpu_ops) {
		shell_error(-EINVAL, "cannot run guests: %s", unavailable);
		return NULL;
	}
	if (mem < VM_MIN_MEM || mem > VM_MAX_MEM || (mem & (PAGE_SIZE - 1))) {
		shell_error(-EINVAL, "memory must be a multiple of 4 KiB between 2 MiB and 64 GiB");
		return NULL;
	}
	if (ncpus < 1 || ncpus > VM_MAX_VCPUS) {
		shell_error(-EINVAL, "cpus must be between 1 and %d", VM_MAX_VCPUS);
		return NULL;
	}
	if (ALIGN_UP(mem, VM_CHUNK_SIZE) + VM_HOST_RESERVE > free_bytes) {
		format_size(want, sizeof(want), mem);
		format_size(have, sizeof(have),
			    free_bytes > VM_HOST_RESERVE ? free_bytes - VM_HOST_RESERVE : 0);
		shell_error(-EINVAL, "%s of RAM asked for, but only %s is free for guests", want,
			    have);
		return NULL;
	}
	for (slot = 0; slot < VM_MAX && vm_table[slot]; slot++)
		;
	if (replaces)
		slot = replaces->id - 1;
	if (slot == VM_MAX) {
		shell_error(-EINVAL, "all %d VM slots are in use; 'vm kill ID' frees one", VM_MAX);
		return NULL;
	}
	vm = kzalloc(sizeof(*vm));
	if (!vm)
		goto nomem;
	vm->id = slot + 1;
	vm->replaces = replaces;
	if (!hidden)
		vm_table[slot] = vm;
	strlcpy(vm->image, image, sizeof(vm->image));
	vm->mem_size = mem;
	vm->nchunks = ALIGN_UP(mem, VM_CHUNK_SIZE) / VM_CHUNK_SIZE;
	vm->chunks = kzalloc(vm->nchunks * sizeof(u64));
	if (!vm->chunks)
		goto nomem;
	for (u64 i = 0; i < vm->nchunks; i++) {
		vm->chunks[i] = hidden ? pmm_alloc_2m_uninit() : pmm_alloc_2m();
		if (!vm->chunks[i]) {
			shell_error(-EINVAL,
				    "host memory is too fragmented for its RAM (2 MiB pieces)");
			goto fail;
		}
	}
	/* The last chunk's part past the RAM is no page of the VM: no restore
	 * writes it, so it must not keep what the chunk held before. */
	if (hidden && mem % VM_CHUNK_SIZE)
		memset((u8 *)phys_to_virt(vm->chunks[vm->nchunks - 1]) + mem % VM_CHUNK_SIZE, 0,
		       VM_CHUNK_SIZE - mem % VM_CHUNK_SIZE);
	vm->guest_tsc_hz = tsc_hz();
	vm->created_ticks = ticks();
	vm_set_cpu_model(vm, CPU_MODEL_HOST, NULL, 0); /* vm create cpu= or a restore changes it */
	if (vdev_alloc_all(vm))
		goto nomem;
	if (vcpu_ops->vm_init(vm)) {
		shell_error(-EINVAL, "%s could not set up the VM's nested paging", vcpu_ops->name);
		goto fail;
	}
	vm->nvcpus = ncpus;
	for (int i = 0; i < ncpus; i++) {
		vm->vcpus[i] = vcpu_create(vm, i);
		if (!vm->vcpus[i])
			goto nomem;
		if (vcpu_ops->vcpu_init(vm->vcpus[i])) {
			shell_error(-EINVAL, "%s could not set up vCPU %d", vcpu_ops->name, i);
			goto fail;
		}
	}
	vm->state = VM_CREATED;
	return vm;
nomem:
	shell_error(-EINVAL, "out of host memory for the VM's bookkeeping");
fail:
	vm_destroy(vm);
	return NULL;
}

static int target_write(void *ctx, u64 gpa, const void *src, u64 len)
{
	return vm_copy_to_guest(ctx, gpa, src, len);
}

static int target_zero(void *ctx, u64 gpa, u64 len)
{
	static const u8 zeros[4096];

	while (len) {
		u64 n = MIN(len, sizeof(zeros));
		int err = vm_copy_to_guest(ctx, gpa, zeros, n);

		if (err)
			return err;
		gpa += n;
		len -= n;
	}
	return 0;
}

/* Writes the ACPI and MP tables into the VM's 0xE0000-0xFFFFF, which the
 * loader keeps clear (vmm/fwtables.c). Returns 0 or a negative errno. */
static int install_fwtables(struct vm *vm, struct fwtables_layout *where)
{
	u8 *area = gpa_to_hva(vm, PLAT_BIOS_AREA, FWTABLES_SIZE);

	/* A reset writes them again: the dirty log must hear of it. */
	dirty_log_mark(&vm->dirty, PLAT_BIOS_AREA, FWTABLES_SIZE);
	return area ? fwtables_build(area, vm->nvcpus, where) : -EFAULT;
}
void vm_loader_target(struct vm *vm, struct loader_target *t)
{
	*t = (struct loader_target){
		.mem_size = vm->mem_size, .write = target_write, .zero = target_zero, .ctx = vm
	};
}

/* The VM's memory map (vmm/memmap.c, the one every guest interface copies)
 * in the boot-information shape the Linux loader takes. Returns the count. */
static int vm_memory_map(const struct vm *vm, struct mem_range *map)
{
	struct e820_entry e[MEMMAP_MAX];
	int n = memmap_build(vm->mem_size, e);

	for (int i = 0; i < n; i++)
		map[i] = (struct mem_range){ e[i].addr, e[i].len,
					     e[i].type == E820_RAM ? MEM_USABLE : MEM_RESERVED };
	return n;
}

/* Which loader takes `img`, checked before any memory is allocated: a Linux
 * kernel (with an optional initrd) or anything else for the Multiboot loader,
 * which says why it is not one. Prints why and returns false when neither. */
static bool check_image(const struct guest_image *img, const struct guest_image **initrd,
			const char *initrd_name, bool *is_linux)
{
	const char *what;
	enum image_kind kind = image_kind(img->data, img->size, &what);

	*initrd = NULL;
	*is_linux = kind == IMAGE_LINUX;
	if (kind == IMAGE_INITRD) {
		shell_error(-EINVAL,
			    "'%s' is an initrd (%s), not a kernel: give it to a Linux\n"
			    "    kernel as initrd=%s",
			    img->name, what, img->name);
		return false;
	}
	if (!initrd_name)
		return true;
	if (!*is_linux) {
		shell_error(-EINVAL, "initrd= is for a Linux kernel; '%s' is not one", img->name);
		return false;
	}
	*initrd = guest_image_find(initrd_name);
	if (!*initrd) {
		shell_error(-EINVAL, "there is no initrd image '%s'; 'vm images' lists them",
			    initrd_name);
		return false;
	}
	return true;
}

/* The guest arguments of vm->cmdline, which starts with the image's name
 * (as GRUB's does): a Linux kernel gets them alone. */
static const char *guest_args(const struct vm *vm)
{
	size_t n = strlen(vm->image);

	return vm->cmdline[n] == ' ' ? vm->cmdline + n + 1 : vm->cmdline + n;
}

/* vm_load_image's part for the image and vCPU 0. */
static int vm_load_bsp(struct vm *vm, const struct guest_image *img, u64 tsc, char *err,
		       size_t errlen)
{
	static struct vcpu_state entry; /* large: not on the shell's stack */
	const struct guest_image *initrd = NULL;
	struct mem_range map[MEMMAP_MAX];
	struct fwtables_layout fw;
	struct loader_target t;
	struct mb_loaded info;
	const char *what;
	u32 info_gpa;

	vm_loader_target(vm, &t);
	err[0] = '\0';
	if (install_fwtables(vm, &fw)) {
		strlcpy(err, "the firmware tables do not fit in its RAM", errlen);
		return -EFAULT;
	}
	if (image_kind(img->data, img->size, &what) == IMAGE_LINUX) {
		if (vm->initrd[0]) {
			initrd = guest_image_find(vm->initrd);
			if (!initrd) {
				snprintf(err, errlen, "its initrd '%s' is not in this Amber",
					 vm->initrd);
				return -ENOENT;
			}
		}
		if (linux_vm_load(vm, img, initrd, guest_args(vm), map, vm_memory_map(vm, map),
				  fw.rsdp, tsc)) {
			strlcpy(err, "the Linux loader refused it (above)", errlen);
			return -EINVAL;
		}
		return 0;
	}
	vm_loader_target(vm, &t);
	if (mb_load(img->data, img->size, &t, &info, err, errlen) ||
	    mb_write_info(&t, &info, vm->cmdline, &info_gpa, err, errlen)) {
		if (!err[0])
			strlcpy(err, "guest memory write failed", errlen);
		return -EINVAL;
	}
	mb_entry_state(&entry, info.entry, info_gpa);
	entry.tsc = tsc;
	if (vcpu_set_state(vm->vcpus[0], &entry)) {
		snprintf(err, errlen, "%s could not load the entry state", vcpu_ops->name);
		return -EIO;
	}
	pr_debug("vm%d: %s (%s) at 0x%lx-0x%lx, entry 0x%x", vm->id, img->name,
		 mb_format_name(info.format), info.lo, info.hi, info.entry);
	return 0;
}

/*
 * Writes the firmware tables and loads img (a Linux kernel with vm->initrd,
 * or a Multiboot image with its information for vm->cmdline) into vm's RAM,
 * and puts vCPU 0 at its entry with its TSC at `tsc`, the others in the
 * INIT state waiting for a STARTUP IPI (their LAPICs' power-on says so):
 * what vm_create and a machine reset share. Returns 0, or a negative errno
 * with a message in err.
 */
static int vm_load_image(struct vm *vm, const struct guest_image *img, u64 tsc, char *err,
			 size_t errlen)
{
	int ret = vm_load_bsp(vm, img, tsc, err, errlen);

	/* After the BSP: the others take its TSC. */
	for (int i = 1; i < vm->nvcpus && !ret; i++) {
		ret = vcpu_wait_for_sipi(vm->vcpus[i]);
		if (ret)
			snprintf(err, errlen, "%s could not put vCPU %d in its INIT state (%s)",
				 vcpu_ops->name, i, errno_name(ret));
	}
	return ret;
}

struct vm *vm_create(const char *image, u64 mem, int ncpus, const char *cmdline,
		     const char *initrd_name)
{
	const struct guest_image *img = guest_image_find(image), *initrd;
	char err[160];
	struct vm *vm;
	bool is_linux;

	if (!img) {
		shell_error(-EINVAL, "there is no guest image '%s'; 'vm images' lists them", image);
		return NULL;
	}
	if (!check_image(img, &initrd, initrd_name, &is_linux))
		return NULL;
	vm = vm_alloc(img->name, mem, ncpus, false, NULL);
	if (!vm)
		return NULL;
	if (!cmdline)
		cmdline = img->cmdline;
	strlcpy(vm->image_cmdline, img->cmdline, sizeof(vm->image_cmdline));
	/* Like GRUB, the command line starts with the kernel's own name. */
	snprintf(vm->cmdline, sizeof(vm->cmdline), "%s%s%s", img->name, cmdline[0] ? " " : "",
		 cmdline);
	if (initrd)
		strlcpy(vm->initrd, initrd->name, sizeof(vm->initrd));
	if (vm_load_image(vm, img, 0, err, sizeof(err))) {
		shell_error(-EINVAL, "cannot load '%s': %s", img->name, err);
		vm_destroy(vm);
		return NULL;
	}
	return vm;
}

void vm_request_reset(struct vm *vm, const char *how)
{
	if (vm->state != VM_RUNNING || vm->reset_pending)
		return;
	vm->reset_pending = true;
	strlcpy(vm->reset_why, how, sizeof(vm->reset_why));
}

/*
 * A reset as the PC's reset line gives one: every device at power-on (the
 * CMOS keeps its battery-backed memory and clock), the image loaded again
 * with the same command line (RAM outside it keeps what it held, as on a warm
 * reset), vCPU 0 at the Multiboot entry. The guest TSC goes on counting, so
 * that time never runs backwards for the devices. The other vCPUs wait for a
 * STARTUP IPI again, as after power-on.
 */
/* Every vCPU of vm runs on the calling CPU: none can be in guest mode now. */
static bool vm_all_here(struct vm *vm)
{
	int here = smp_this_index();

	for (int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i] && vcpu_runs_on(vm->vcpus[i]) != here)
			return false;
	return true;
}

static void vm_do_reset(struct vm *vm)
{
	const struct guest_image *img;
	char err[160];
	u64 tsc;

	vm->reset_pending = false;
	if (vm->state != VM_RUNNING)
		return;
	vuart_flush(vm);
	img = guest_image_find(vm->image);
	if (!img) {
		vm_stop(vm, "reset through %s: image '%s' is not in this Amber", vm->reset_why,
			vm->image);
		return;
	}
	tsc = vcpu_guest_tsc(vm->vcpus[0]);
	vdev_sync(vm, tsc); /* what happened before the reset, before it */
	vdev_reset_all(vm);
	if (vm_load_image(vm, img, tsc, err, sizeof(err))) {
		vm_stop(vm, "reset through %s: reloading '%s' failed: %s", vm->reset_why, vm->image,
			err);
		return;
	}
	vm->resets++;
	printk("[vm%d] reset through %s: booting '%s' again\n", vm->id, vm->reset_why, vm->image);
}

/* A reset rewrites every vCPU: on the exit path when they all run on this
 * CPU; else it stays pending, no CPU enters the VM, and the boot CPU carries
 * it out with the APs held (vmm_resets_due, from vmm_idle). */
bool vm_reset_pending(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (!vm->reset_pending)
		return false;
	if (vm_all_here(vm))
		vm_do_reset(vm);
	return true;
}

void vmm_resets_due(void)
{
	for (int i = 0; i < VM_MAX; i++) {
		struct vm *vm = vm_table[i];

		if (!vm || !vm->reset_pending)
			continue;
		vmm_hold(true);
		vm_do_reset(vm);
		vmm_hold(false);
	}
}

void vm_power_off(struct vm *vm, const char *how)
{
	if (vm->state != VM_RUNNING)
		return;
	vuart_flush(vm);
	vm->state = VM_OFF;
	snprintf(vm->stop_reason, sizeof(vm->stop_reason), VM_OFF_REASON " (%s)", how);
	printk("[vm%d] powered off (%s)\n", vm->id, how);
}

struct vm *vm_create_hidden(const char *image, u64 mem, int ncpus, struct vm *replaces)
{
	if (replaces &&
	    (replaces->id < 1 || replaces->id > VM_MAX || vm_table[replaces->id - 1] != replaces)) {
		shell_error(-EINVAL, "VM %d is not in the VM table", replaces->id);
		return NULL;
	}
	return vm_alloc(image, mem, ncpus, true, replaces);
}

int vm_publish(struct vm *vm)
{
	struct vm *old = vm_table[vm->id - 1];

	/* The id chose the slot at creation and names the VM to the backend (the
	 * SVM ASID: the new vCPUs flush it on their first VMRUN), so it cannot
	 * move; the shell runs one command at a time, so nothing took the slot
	 * in between. A VM that replaces another takes its place only now,
	 * after the caller's every check: the old one goes, its terminal stays
	 * (the console's input finds the VM by its id). */
	int pins[VM_MAX_VCPUS];
	bool same = old && old->nvcpus == vm->nvcpus;

	if (old && old != vm->replaces)
		return -EBUSY;
	/* Its vCPUs' homes: those of the VM it replaces where it has as many
	 * (a restore keeps a `vm pin`), else spread as for a new VM. */
	for (int i = 0; same && i < vm->nvcpus; i++)
		pins[i] = old->vcpus[i]->cpu;
	if (old) {
		vm->console_attached = old->console_attached;
		vm_destroy(old);
	}
	if (!same)
		vmm_place_auto(vm->nvcpus, pins);
	for (int i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i]->cpu = pins[i];
	vm->replaces = NULL;
	vm_table[vm->id - 1] = vm;
	return 0;
}

int vm_start(struct vm *vm)
{
	if (vm->state != VM_CREATED) {
		printk("vm %d is %s; only a created VM can be started\n", vm->id,
		       vm_state_name(vm->state));
		return -EINVAL;
	}
	vm->state = VM_RUNNING;
	vm->started_ticks = ticks();
	return 0;
}

/* Freezes the guest's TSC: read at pause, written back at resume, so a paused
 * guest does not see the time it spent paused (and a snapshot holds the value).
 * Returns 0, or the backend's error after saying which vCPU it failed on. */
static int tsc_freeze(struct vm *vm, bool freeze)
{
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];
		int err = freeze ? vcpu_ops->get_field(v, VCPU_FIELD_TSC, &v->frozen_tsc) :
				   vcpu_ops->set_field(v, VCPU_FIELD_TSC, v->frozen_tsc);

		if (err) {
			printk("vm %d: %s could not %s the TSC of vCPU %d (%s)\n", vm->id,
			       vcpu_ops->name, freeze ? "read" : "write", i, errno_name(err));
			return err;
		}
	}
	return 0;
}

int vm_pause(struct vm *vm)
{
	int err;

	if (vm->state != VM_RUNNING && vm->state != VM_HALTED) {
		printk("vm %d is %s; only a running VM can be paused\n", vm->id,
		       vm_state_name(vm->state));
		return -EINVAL;
	}
	/* No vCPU is in guest mode here (guests run only inside vmm_idle), so the
	 * VMCS/VMCB and regs[] are complete; the FPU is saved into v->fpu. */
	for (int i = 0; i < vm->nvcpus; i++)
		vcpu_fpu_release(vm->vcpus[i]);
	err = tsc_freeze(vm, true);
	if (err)
		return err;
	vm->state = VM_PAUSED;
	return 0;
}

int vm_resume(struct vm *vm)
{
	int err;

	if (vm->state != VM_PAUSED) {
		printk("vm %d is %s; only a paused VM can be resumed\n", vm->id,
		       vm_state_name(vm->state));
		return -EINVAL;
	}
	err = tsc_freeze(vm, false);
	if (err)
		return err;
	vm->state = VM_RUNNING;
	return 0;
}

void vm_stop(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	if (vm->state == VM_STOPPED || vm->state == VM_EXITED || vm->state == VM_OFF)
		return;
	va_start(ap, fmt);
	vsnprintf(vm->stop_reason, sizeof(vm->stop_reason), fmt, ap);
	va_end(ap);
	vuart_flush(vm);
	vm->state = VM_STOPPED;
	printk("[vm%d] stopped: %s\n", vm->id, vm->stop_reason);
}

void *gpa_to_hva(struct vm *vm, u64 gpa, u64 len)
{
	u64 off = gpa & (VM_CHUNK_SIZE - 1);

	if (gpa >= vm->mem_size || len > vm->mem_size - gpa || off + len > VM_CHUNK_SIZE)
		return NULL;
	/* RAM still arriving: the pages are filled first (a failure stopped
	 * the VM). */
	if (vm->pager && pager_fill_range(vm, gpa, len))
		return NULL;
	return (u8 *)phys_to_virt(vm->chunks[gpa / VM_CHUNK_SIZE]) + off;
}

int vm_copy_to_guest(struct vm *vm, u64 gpa, const void *src, u64 len)
{
	const u8 *s = src;

	if (gpa >= vm->mem_size || len > vm->mem_size - gpa)
		return -EFAULT;
	/* Amber's own writes bypass the EPT/NPT: the log hears of them here. */
	dirty_log_mark(&vm->dirty, gpa, len);
	while (len) {
		u64 n = MIN(len, VM_CHUNK_SIZE - (gpa & (VM_CHUNK_SIZE - 1)));
		void *hva = gpa_to_hva(vm, gpa, n);

		if (!hva)
			return -EIO; /* a page that could not be filled */
		memcpy(hva, s, n);
		gpa += n;
		s += n;
		len -= n;
	}
	return 0;
}

int vm_copy_from_guest(struct vm *vm, void *dst, u64 gpa, u64 len)
{
	u8 *d = dst;

	if (gpa >= vm->mem_size || len > vm->mem_size - gpa)
		return -EFAULT;
	while (len) {
		u64 n = MIN(len, VM_CHUNK_SIZE - (gpa & (VM_CHUNK_SIZE - 1)));
		const void *hva = gpa_to_hva(vm, gpa, n);

		if (!hva)
			return -EIO; /* a page that could not be filled */
		memcpy(d, hva, n);
		gpa += n;
		d += n;
		len -= n;
	}
	return 0;
}
