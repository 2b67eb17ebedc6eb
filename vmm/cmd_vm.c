/*
 * The `vm` shell command: list guest images, create VMs from them, start,
 * pause, resume and kill them, show their state and exit counts, attach the
 * terminal to a guest's COM1 and print a guest's VGA text screen.
 * Host context (the shell); no vCPU is in guest mode while a command runs.
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "vmm/hypercall.h"
#include "vmm/linux.h"
#include "vmm/pager.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "vmm/vtsc.h"

#define CTRL_RIGHT_BRACKET 0x1D /* Ctrl-]: detaches `vm console` */
#define VGA_TEXT_GPA 0xB8000
#define VGA_COLS 80
#define VGA_ROWS 25

struct vm *vm_from_arg(const char *arg)
{
	u64 id;
	struct vm *vm = NULL;

	if (!parse_u64(arg, &id) && id >= 1 && id <= VM_MAX)
		vm = vm_get((int)id);
	if (!vm)
		shell_err_no_vm(arg);
	return vm;
}

/* The VM named by `vm SUB ID`; prints why not and returns NULL. */
static struct vm *arg_vm(int argc, char **argv)
{
	if (argc != 3) {
		shell_usage("vm");
		return NULL;
	}
	return vm_from_arg(argv[2]);
}

/* What `img` holds, as `vm images` names it, into kind[len]: a kernel, an
 * initrd, the boot script (kernel/ctl.c) or a fuzzing corpus (vm create
 * inputs=, vmm/fuzzinput.h). */
static void image_kind_name(const struct guest_image *img, char *kind, size_t len)
{
	static struct fuzz_corpus corpus; /* too large for the stack; shell only */
	const char *what;

	switch (image_kind(img->data, img->size, &what)) {
	case IMAGE_LINUX:
		strlcpy(kind, "Linux kernel", len);
		return;
	case IMAGE_MULTIBOOT:
		strlcpy(kind, "Multiboot", len);
		return;
	case IMAGE_INITRD:
		snprintf(kind, len, "initrd (%s)", what);
		return;
	default:
		break;
	}
	if (img->module && !strcmp(img->name, CTL_RC_NAME))
		strlcpy(kind, "boot script", len);
	else if (!fuzz_corpus_parse(&corpus, img->data, img->size, &what))
		strlcpy(kind, "fuzz corpus", len);
	else
		strlcpy(kind, "unknown", len);
}

#define IMAGES_TEXT_COL 45 /* `vm images`: where PURPOSE starts */

/* `vm images NAME`: everything known about one image, one fact a line. */
static int image_detail(const char *name)
{
	const struct guest_image *img = guest_image_find(name);
	char size[24], kind[24];

	if (!img)
		return shell_error(-ENOENT, "no guest image '%s'; 'vm images' lists them", name);
	image_kind_name(img, kind, sizeof(kind));
	format_size(size, sizeof(size), img->size);
	printk("%s: %s, %s, %s\n", img->name, kind, size,
	       img->module ? "a Multiboot module" : "built in");
	if (img->purpose[0])
		shell_wrap("  purpose:", 12, img->purpose);
	shell_wrap("  default:", 12, img->cmdline[0] ? img->cmdline : "(no arguments)");
	if (img->usage[0])
		shell_wrap("  words:", 12, img->usage);
	if (!strcmp(kind, "fuzz corpus"))
		printk("  for 'vm create fuzz inputs=%s'\n", img->name);
	else if (!strcmp(kind, "boot script"))
		printk("  ran at boot, one shell command a line\n");
	return 0;
}

static int cmd_images(int argc, char **argv)
{
	int n = guest_image_count();

	if (argc == 3)
		return image_detail(argv[2]);
	if (argc != 2)
		return shell_usage("vm");
	if (!n) {
		printk("no guest images (no built-in guests, no Multiboot modules)\n");
		return 0;
	}
	/* A line per image, its default arguments on a second one when it has
	 * any; 'vm images NAME' gives the words it understands. */
	printk("%-10s %9s  %-8s %-13s %s\n", "NAME", "SIZE", "FROM", "KIND", "PURPOSE");
	for (int i = 0; i < n; i++) {
		const struct guest_image *img = guest_image_at(i);
		char size[24], kind[24], head[80], line[96];

		image_kind_name(img, kind, sizeof(kind));
		format_size(size, sizeof(size), img->size);
		snprintf(head, sizeof(head), "%-10s %9s  %-8s %-13s", img->name, size,
			 img->module ? "module" : "built-in", kind);
		if (img->purpose[0] || !img->cmdline[0]) {
			shell_wrap(head, IMAGES_TEXT_COL, img->purpose);
			if (!img->cmdline[0])
				continue;
			head[0] = '\0';
		}
		snprintf(line, sizeof(line), "%-*s args:", IMAGES_TEXT_COL - 1, head);
		shell_wrap(line, IMAGES_TEXT_COL + 6, img->cmdline);
	}
	return 0;
}

/* `pin=LIST`: the home CPU of each vCPU (docs/architecture.md "Execution
 * model"). LIST is one CPU number per vCPU ("1,2"; one number pins them
 * all there) or "auto" (the default), which spreads them over the APs that
 * run guests, the least loaded first, and uses the boot CPU only when there
 * is none.
 * Every CPU named must be online with virtualization on. Fills pins[0..n). */
static int parse_pins(const char *list, int n, int *pins)
{
	int count = 0;

	if (!strcmp(list, "auto")) {
		vmm_place_auto(n, pins);
		return 0;
	}
	for (const char *p = list; *p; p++) {
		u64 c = 0;
		const char *start = p;

		while (*p >= '0' && *p <= '9' && c < 1000)
			c = c * 10 + (u64)(*p++ - '0');
		if (p == start || (*p && *p != ','))
			return shell_error(-EINVAL,
					   "pin=%s: write CPU numbers like pin=1,2 (one per vCPU) "
					   "or pin=auto",
					   list);
		if (count == VM_MAX_VCPUS || count == n)
			return shell_error(-EINVAL, "pin=%s names more CPUs than the %d vCPU%s",
					   list, n, n == 1 ? "" : "s");
		if (c >= (u64)smp_cpu_count || host_cpus[c].state != CPU_ONLINE ||
		    !host_cpus[c].virt_on)
			return shell_error(-EINVAL,
					   "pin=%s: CPU %lu %s; 'cpu' lists the CPUs that "
					   "run guests",
					   list, c,
					   c >= (u64)smp_cpu_count ? "does not exist" :
					   host_cpus[c].state != CPU_ONLINE ?
								     "is not online" :
								     "has no virtualization on");
		pins[count++] = (int)c;
		if (!*p)
			break;
	}
	if (count != 1 && count != n)
		return shell_error(-EINVAL,
				   "pin=%s names %d CPUs for %d vCPUs: one, or one per vCPU", list,
				   count, n);
	for (int i = count; i < n; i++)
		pins[i] = pins[0];
	return 0;
}

/* The CPUs the vCPUs of vm are placed on, "1,2", for `vm list`/`vm info`. */
static void format_pins(struct vm *vm, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < vm->nvcpus && n + 4 < len; i++)
		n += snprintf(buf + n, len - n, "%s%d", i ? "," : "", vm->vcpus[i]->cpu);
}

/* `vm pin ID LIST`: gives a VM's vCPUs new home CPUs, LIST as for pin=
 * ("auto" spreads them as if the VM were new). The shell holds the APs while
 * a command runs (vmm_hold), so none of its vCPUs is in guest mode or claimed
 * now; each runs on its new CPU from its next slice, and the hold's end
 * writes back what the boot CPU had loaded of one that leaves it. */
static int cmd_pin(int argc, char **argv)
{
	int pins[VM_MAX_VCPUS], old[VM_MAX_VCPUS];
	char where[40];
	struct vm *vm;

	if (argc != 4)
		return shell_usage("vm");
	vm = vm_from_arg(argv[2]);
	if (!vm)
		return -ENOENT;
	/* Its own vCPUs do not count against the CPUs "auto" weighs. */
	for (int i = 0; i < vm->nvcpus; i++) {
		old[i] = vm->vcpus[i]->cpu;
		vm->vcpus[i]->cpu = 0;
	}
	if (parse_pins(argv[3], vm->nvcpus, pins)) {
		for (int i = 0; i < vm->nvcpus; i++)
			vm->vcpus[i]->cpu = old[i];
		return -EINVAL;
	}
	for (int i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i]->cpu = pins[i];
	format_pins(vm, where, sizeof(where));
	printk("vm %d: its vCPUs run on CPU %s\n", vm->id, where);
	return 0;
}

static int cmd_create(int argc, char **argv)
{
	int pins[VM_MAX_VCPUS] = { 0 };
	const char *pin = NULL;
	u64 mem = VM_DEFAULT_MEM, cpus = 1;
	char args[128];
	const char *cmdline = NULL, *initrd = NULL, *inputs = NULL;
	bool hypercalls = false;
	int i, model = CPU_MODEL_HOST;
	char missing[160];
	struct vm *vm;

	if (argc < 3)
		return shell_usage("vm");
	for (i = 3; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (!strncmp(argv[i], "mem=", 4)) {
			if (parse_size(argv[i] + 4, &mem))
				return shell_error(-EINVAL,
						   "'%s' is not a size; write it like 64M or 1G",
						   argv[i] + 4);
		} else if (!strncmp(argv[i], "cpus=", 5)) {
			if (parse_u64(argv[i] + 5, &cpus) || cpus < 1 || cpus > VM_MAX_VCPUS)
				return shell_error(-EINVAL, "cpus must be a number from 1 to %d",
						   VM_MAX_VCPUS);
		} else if (!strncmp(argv[i], "pin=", 4) && argv[i][4]) {
			pin = argv[i] + 4; /* checked once cpus= is known */
		} else if (!strncmp(argv[i], "initrd=", 7) && argv[i][7]) {
			initrd = argv[i] + 7;
		} else if (!strncmp(argv[i], "cpu=", 4)) {
			model = cpu_model_lookup(argv[i] + 4);
			if (model < 0)
				return shell_error(-EINVAL,
						   "no CPU model '%s'; there are host (the "
						   "default) and portable",
						   argv[i] + 4);
		} else if (!strcmp(argv[i], "hypercalls")) {
			hypercalls = true; /* vmm/hypercall.h */
		} else if (!strncmp(argv[i], "inputs=", 7) && argv[i][7]) {
			inputs = argv[i] + 7; /* a corpus implies the hypercalls */
			hypercalls = true;
		} else {
			return shell_error(-EINVAL,
					   "unknown option '%s'; 'help vm create' lists "
					   "them",
					   argv[i]);
		}
	}
	if (i < argc) { /* "--": the rest is the guest's command line */
		size_t len = 0;

		args[0] = '\0';
		for (i++; i < argc; i++) {
			size_t w = strlen(argv[i]);

			if (len + w + 2 > sizeof(args))
				return shell_error(-EINVAL,
						   "guest arguments over %zu characters; "
						   "shorten them",
						   sizeof(args) - 1);
			if (len)
				args[len++] = ' ';
			memcpy(args + len, argv[i], w + 1);
			len += w;
		}
		cmdline = args;
	}
	if (parse_pins(pin ? pin : "auto", (int)cpus, pins))
		return -EINVAL;
	/* Refused before anything is made (QEMU's "enforce"): the model's
	 * features this CPU lacks. */
	if (model != CPU_MODEL_HOST &&
	    vmm_cpu_model_missing((u32)model, missing, sizeof(missing))) {
		shell_error(-EOPNOTSUPP, "this CPU lacks what CPU model %s shows a guest:",
			    cpu_model_name((u32)model));
		shell_wrap("  ", 2, missing);
		printk("  nothing created; cpu=host shows what this CPU has\n");
		return -EOPNOTSUPP;
	}
	vm = vm_create(argv[2], mem, (int)cpus, cmdline, initrd);
	if (!vm)
		return -EINVAL;
	vm_set_cpu_model(vm, (u32)model, missing, sizeof(missing)); /* checked above */
	for (i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i]->cpu = pins[i]; /* the APs are held: none looks yet */
	if (hypercalls && hypercall_enable(vm, inputs)) {
		vm_destroy(vm);
		return -EINVAL;
	}
	printk("created vm %d (%s, %lu MiB, %d vCPU%s%s): vm start %d runs it\n", vm->id, vm->image,
	       vm->mem_size >> 20, vm->nvcpus, model ? ", CPU " : "",
	       model ? cpu_model_name((u32)model) : "", vm->id);
	if (smp_cpu_count > 1) {
		char where[40];

		format_pins(vm, where, sizeof(where));
		printk("  its vCPUs run on CPU %s\n", where);
	}
	return 0;
}

/* One VM as an object of the control channel's data (kernel/ctl.h);
 * `detail` adds what `vm info` shows. */
static void vm_json(struct json *j, const char *key, struct vm *vm, bool detail)
{
	u64 exits = 0;

	for (int i = 0; i < vm->nvcpus; i++)
		exits += vm->vcpus[i]->exits;
	json_obj_begin(j, key);
	json_u64(j, "id", (u64)vm->id);
	json_str(j, "image", vm->image);
	json_str(j, "state", vm_state_name(vm->state));
	json_u64(j, "memory", vm->mem_size);
	json_u64(j, "vcpus", (u64)vm->nvcpus);
	json_u64(j, "exits", exits);
	if (vm->pager) {
		json_u64(j, "resident_pages",
			 vm->pager->done ? vm->pager->npages : vm->pager->resident);
		json_u64(j, "pages", vm->pager->npages);
	}
	if (vm->state == VM_EXITED)
		json_s64(j, "exit_code", vm->exit_code);
	if (vm->state == VM_STOPPED)
		json_str(j, "stop_reason", vm->stop_reason);
	if (detail) {
		json_str(j, "cmdline", vm->cmdline);
		/* The CPU model `vm info` shows (vmm/cpumodel.h). */
		json_str(j, "cpu",
			 cpu_model_name(vm->cpu_model) ? cpu_model_name(vm->cpu_model) : "?");
		json_u64(j, "unemulated_port_accesses", vm->io_unemulated);
		json_arr_begin(j, "vcpu");
		for (int i = 0; i < vm->nvcpus; i++) {
			struct vcpu *v = vm->vcpus[i];

			json_obj_begin(j, NULL);
			json_u64(j, "exits", v->exits);
			json_u64(j, "cpu", (u64)v->cpu);
			json_bool(j, "halted", v->halted);
			json_bool(j, "wait_for_sipi", vcpu_waits_for_sipi(v));
			json_obj_begin(j, "exit_counts");
			for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
				if (v->exit_counts[k])
					json_u64(j, vm_exit_kind_name(k), v->exit_counts[k]);
			json_obj_end(j);
			json_obj_end(j);
		}
		json_arr_end(j);
	}
	json_obj_end(j);
}

static int cmd_list(int argc, char **argv)
{
	bool any = false;
	struct json *j = ctl_data();

	if (argc != 2)
		return shell_usage("vm");
	if (j) {
		json_arr_begin(j, "vms");
		for (int id = 1; id <= VM_MAX; id++)
			if (vm_get(id))
				vm_json(j, NULL, vm_get(id), false);
		json_arr_end(j);
	}
	for (int id = 1; id <= VM_MAX; id++) {
		struct vm *vm = vm_get(id);
		u64 exits = 0;
		char mem[24];

		if (!vm)
			continue;
		char where[40];

		if (!any)
			printk("%-3s %-16s %-8s %10s %5s %12s  %s\n", "ID", "IMAGE", "STATE",
			       "MEMORY", "VCPUS", "EXITS", "ON CPU");
		any = true;
		for (int i = 0; i < vm->nvcpus; i++)
			exits += vm->vcpus[i]->exits;
		format_size(mem, sizeof(mem), vm->mem_size);
		format_pins(vm, where, sizeof(where));
		printk("%-3d %-16s %-8s %10s %5d %12lu  %s", vm->id, vm->image,
		       vm_state_name(vm->state), mem, vm->nvcpus, exits, where);
		/* Lazily restored, still arriving (vmm/pager.h): how far. */
		if (pager_active(vm->pager))
			printk("  %llu%% resident",
			       (unsigned long long)(vm->pager->resident * 100 / vm->pager->npages));
		printk("\n");
	}
	if (!any)
		printk("no VMs (vm create IMAGE makes one)\n");
	return 0;
}

/* The guest TSC's rate and how it gets it (vmm/vtsc.h); for a VM that runs,
 * its TSC and the host's clock read together, so two looks give the rate
 * at which the guest's time passes. */
static void vm_info_tsc(struct vm *vm)
{
	u64 g = vdev_tsc_hz(vm), h = tsc_hz(), t, tsc;

	printk("TSC: %lu.%03lu MHz, %s %lu.%03lu MHz\n", g / 1000000, g / 1000 % 1000,
	       vm->tsc_mode == VTSC_SCALED   ? "scaled from the host's" :
	       vm->tsc_mode == VTSC_UNSCALED ? "running at the host's" :
					       "the host's",
	       h / 1000000, h / 1000 % 1000);
	if (vm->state != VM_RUNNING && vm->state != VM_HALTED)
		return;
	t = ticks();
	tsc = vcpu_guest_tsc(vm->vcpus[0]);
	printk("  guest TSC %lu at %lu us of host time\n", tsc, t);
}

/* What `vm info` shows: a summary line, then aligned details, each fitting
 * 80 columns (a long command line wraps under itself). */
static int cmd_info(struct vm *vm)
{
	char mem[24];
	struct json *j = ctl_data();

	if (j)
		vm_json(j, "vm", vm, true);

	format_size(mem, sizeof(mem), vm->mem_size);
	printk("vm %d: %s, %s, %s RAM, %d vCPU%s\n", vm->id, vm->image, vm_state_name(vm->state),
	       mem, vm->nvcpus, vm->nvcpus == 1 ? "" : "s");
	shell_wrap("command line:", 14, vm->cmdline);
	if (vm->boot_layout[0])
		shell_wrap("boot:", 6, vm->boot_layout);
	printk("CPU model: %s\n",
	       cpu_model_name(vm->cpu_model) ? cpu_model_name(vm->cpu_model) : "?");
	vm_info_tsc(vm);
	if (vm->pager) {
		char how[200];

		pager_describe(vm, how, sizeof(how));
		shell_wrap("memory:", 8, how);
	}
	if (vm->state == VM_EXITED)
		printk("exit code: %d\n", vm->exit_code);
	if (vm->state == VM_STOPPED)
		shell_wrap("stopped:", 9, vm->stop_reason);
	if (vm->state == VM_OFF)
		shell_wrap("powered off:", 13, vm->stop_reason);
	if (vm->resets)
		printk("resets by the guest: %lu\n", vm->resets);
	if (vm->io_unemulated)
		printk("accesses to unemulated ports: %lu\n", vm->io_unemulated);
	if (vm->hypercalls && vm->hc)
		printk("hypercalls: allowed, inputs %s ('snap reset %d --info' counts)\n",
		       vm->hc->inputs[0] ? vm->hc->inputs : "none", vm->id);
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		bool sipi = vcpu_waits_for_sipi(v);

		printk("vCPU %d: %lu exits%s, on CPU %d%s\n", i, v->exits,
		       sipi	 ? ", wait-for-SIPI" :
		       v->halted ? ", halted" :
				   "",
		       v->cpu, vcpu_runs_on(v) != v->cpu ? " (now the boot CPU)" : "");
		for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
			if (v->exit_counts[k])
				printk("  %-14s %lu\n", vm_exit_kind_name(k), v->exit_counts[k]);
		if (vm->state != VM_RUNNING && !sipi) {
			printk("  registers:\n");
			vcpu_dump(v, false);
		}
	}
	return 0;
}

static bool console_input(u8 c, void *ctx)
{
	int id = (int)(uintptr_t)ctx;
	struct vm *vm = vm_get(id);

	if (c == CTRL_RIGHT_BRACKET || !vm) {
		if (vm)
			vm->console_attached = false;
		printk("\n[detached from vm %d]\n", id);
		return false;
	}
	vmm_hold(true);		    /* its UART may be in use on another CPU */
	vuart_console_input(vm, c); /* waits while the guest's receiver is full */
	vmm_hold(false);
	return true;
}

/*
 * Attaches the terminal to vm's COM1. A VM that has ended reads nothing more,
 * so the attach is refused; one that has not started yet would be fed bytes
 * its boot may throw away (a FIFO reset), so it is refused too, saying what
 * to do. A paused VM is attached, with a line saying that typed bytes wait in
 * its receive buffer until it resumes: that is how a key is put in front of
 * a guest at an exact point (after `snap restore`, before `vm resume`), and
 * the waiting bytes are device state a snapshot keeps.
 */
static int cmd_console(struct vm *vm)
{
	switch (vm->state) {
	case VM_CREATED:
		return shell_error(-EINVAL, "vm %d has not started: 'vm start %d' first", vm->id,
				   vm->id);
	case VM_EXITED:
		return shell_error(-EINVAL, "vm %d has exited (code %d) and reads no more input",
				   vm->id, vm->exit_code);
	case VM_STOPPED:
	case VM_OFF:
		return shell_error(-EINVAL, "vm %d is %s and reads no more input; see 'vm info %d'",
				   vm->id, vm_state_name(vm->state), vm->id);
	case VM_PAUSED:
		printk("vm %d is paused: what you type waits (63 bytes) until 'vm resume %d'\n",
		       vm->id, vm->id);
		break;
	default:
		break;
	}
	vuart_flush(vm);
	vm->console_attached = true;
	printk("[attached to vm %d's COM1; Ctrl-] detaches]\n", vm->id);
	shell_attach_input(console_input, (void *)(uintptr_t)vm->id);
	return 0;
}

/* Code page 437 as plain ASCII, so a serial terminal shows what a guest draws. */
static char cp437_ascii(u8 c)
{
	if (c >= 0x20 && c < 0x7F)
		return (char)c;
	if (c == 0 || c == 0xFF)
		return ' ';
	if (c <= 0x02)
		return 'o';
	if (c <= 0x06)
		return '*';
	if (c >= 0xB0 && c <= 0xB2)
		return ':';
	if (c == 0xB3 || c == 0xBA)
		return '|';
	if (c == 0xC4 || c == 0xCD)
		return '-';
	if (c >= 0xB4 && c <= 0xDA)
		return '+';
	if (c >= 0xDB && c <= 0xDF)
		return '#';
	return '?';
}

static int cmd_screen(struct vm *vm)
{
	const u8 *vga = gpa_to_hva(vm, VGA_TEXT_GPA, VGA_COLS * VGA_ROWS * 2);
	char line[VGA_COLS + 3];

	if (!vga)
		return shell_error(-EINVAL, "VM %d has no RAM at the VGA text buffer (0x%x)",
				   vm->id, VGA_TEXT_GPA);
	memset(line, '-', sizeof(line) - 1);
	line[0] = line[VGA_COLS + 1] = '+';
	line[VGA_COLS + 2] = '\0';
	printk("%s\n", line);
	for (int r = 0; r < VGA_ROWS; r++) {
		line[0] = line[VGA_COLS + 1] = '|';
		for (int c = 0; c < VGA_COLS; c++)
			line[1 + c] = cp437_ascii(vga[(r * VGA_COLS + c) * 2]);
		printk("%s\n", line);
	}
	memset(line, '-', sizeof(line) - 1);
	line[0] = line[VGA_COLS + 1] = '+';
	printk("%s\n", line);
	return 0;
}

/* A test hook: the next N reads or writes of the VM's complete vCPU state
 * (vcpu_get_state, vcpu_set_state) fail with EIO, as they do when the backend
 * cannot reach a VMCS. The tests show with it that a snapshot whose capture
 * failed commits nothing. */
static int cmd_fail_state(int argc, char **argv)
{
	struct vm *vm;
	u64 n;

	if (argc != 4)
		return shell_usage("vm");
	if (parse_u64(argv[3], &n) || n > 1000)
		return shell_error(-EINVAL, "'%s' is not a count from 0 to 1000", argv[3]);
	vm = vm_from_arg(argv[2]);
	if (!vm)
		return -ENOENT;
	vm->fail_state = (u32)n;
	printk("vm %d: the next %u vCPU state access(es) will fail (test hook)\n", vm->id,
	       vm->fail_state);
	return 0;
}

static int cmd_vm(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	const char *why = vmm_unavailable_reason();
	struct vm *vm;
	int err;

	if (argc < 2)
		return shell_usage("vm");
	if (!shell_sub_find(shell_find("vm"), sub))
		return shell_usage("vm");
	if (!strcmp(sub, "images"))
		return cmd_images(argc, argv);
	if (!strcmp(sub, "list"))
		return cmd_list(argc, argv);
	if (!strcmp(sub, "create")) {
		if (why)
			return shell_error(-ENODEV, "no guest can run here: %s", why);
		return cmd_create(argc, argv);
	}
	if (!strcmp(sub, "fail-state"))
		return cmd_fail_state(argc, argv);
	if (!strcmp(sub, "pin"))
		return cmd_pin(argc, argv);
	vm = arg_vm(argc, argv);
	if (!vm)
		return argc == 3 ? -ENOENT : -EINVAL;
	if (!strcmp(sub, "info"))
		return cmd_info(vm);
	if (!strcmp(sub, "console"))
		return cmd_console(vm);
	if (!strcmp(sub, "screen"))
		return cmd_screen(vm);
	if (!strcmp(sub, "kill")) {
		int id = vm->id;

		vm_destroy(vm);
		printk("killed vm %d\n", id);
		return 0;
	}
	if (!strcmp(sub, "start"))
		err = vm_start(vm);
	else if (!strcmp(sub, "pause"))
		err = vm_pause(vm);
	else
		err = vm_resume(vm);
	if (!err)
		printk("vm %d %s\n", vm->id,
		       !strcmp(sub, "start") ? "started" :
		       !strcmp(sub, "pause") ? "paused" :
					       "resumed");
	/* The freeze: how long the hold that began this command waited for
	 * the other CPUs to leave guest mode (docs/architecture.md). */
	if (!err && !strcmp(sub, "pause"))
		for (int i = 0; i < vm->nvcpus; i++)
			if (vm->vcpus[i]->cpu) {
				printk("  its vCPUs on other CPUs were out of guest mode in %lu us\n",
				       vmm_hold_wait_us);
				break;
			}
	return err;
}

static const struct shell_sub vm_subs[] = {
	{ .name = "images",
	  .args = "[NAME]",
	  .summary = "guest images and what each is for; NAME: its words" },
	{ .name = "create",
	  .args = "IMAGE [OPTION...] [-- ARGS]",
	  .summary = "a VM that runs IMAGE; it waits for 'vm start'",
	  .help = "  OPTION is one of:\n"
		  "  mem=SIZE       its RAM, like 64M or 1G (default 32M)\n"
		  "  cpus=N         its vCPUs (default 1)\n"
		  "  pin=LIST       the host CPU of each vCPU, like pin=1,2 (one number:\n"
		  "                 all there), or auto (the default): each on the CPU\n"
		  "                 after the boot CPU with the fewest vCPUs ('vm pin')\n"
		  "  initrd=IMAGE   an initrd for a Linux kernel (see 'vm images')\n"
		  "  cpu=MODEL      the CPU its guest sees: host (default: all this CPU\n"
		  "                 offers) or portable (a baseline both vendors give:\n"
		  "                 its snapshot restores under VT-x and AMD-V; 'cpu')\n"
		  "  hypercalls     the guest may use Amber's hypercalls (docs/vmm.md)\n"
		  "  inputs=IMAGE   a fuzzing corpus for them (implies hypercalls)\n"
		  "  -- ARGS        the rest of the line is the guest's command line\n"
		  "                 (default: the image's own, shown by 'vm images')\n" },
	{ .name = "list", .args = "", .summary = "every VM with its state, RAM and exits" },
	{ .name = "start", .args = "ID", .summary = "run a created VM" },
	{ .name = "pause", .args = "ID", .summary = "stop it running; its state is kept whole" },
	{ .name = "resume", .args = "ID", .summary = "let a paused VM run on" },
	{ .name = "kill", .args = "ID", .summary = "end it and free its memory" },
	{ .name = "pin",
	  .args = "ID LIST",
	  .summary = "move its vCPUs to other host CPUs ('cpu')",
	  .help = "  LIST as for 'vm create ... pin=': one CPU for all its vCPUs, one per\n"
		  "  vCPU (like 1,2), or auto. A running VM goes on where it was; each\n"
		  "  vCPU runs on its new CPU from its next time slice.\n" },
	{ .name = "info",
	  .args = "ID",
	  .summary = "state, exit counts; registers when not running" },
	{ .name = "console", .args = "ID", .summary = "type to the guest's COM1; Ctrl-] detaches" },
	{ .name = "screen", .args = "ID", .summary = "the guest's VGA text screen (80x25)" },
	{ .name = "fail-state",
	  .args = "ID N",
	  .summary = "test hook: make vCPU state accesses fail",
	  .help = "  The next N reads or writes (at most 1000) of the VM's complete vCPU\n"
		  "  state fail with EIO, as a lost VMCS would; tests show with it that\n"
		  "  a failed capture commits nothing.\n",
	  .hidden = true },
	{ NULL },
};

SHELL_COMMAND(vm, .name = "vm", .summary = "create, run and control guests", .fn = cmd_vm,
	      .subs = vm_subs);
