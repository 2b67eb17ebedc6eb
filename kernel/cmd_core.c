/*
 * The shell's basic commands: help, version, uptime, log, mem, reboot, poweroff.
 * Host context (the shell).
 */
#include "kernel/acpi.h"
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "kernel/traps.h"
#include "kernel/version.h"

#define HELP_LEFT 25 /* the usage column of `help CMD`; summaries follow */

/* One subcommand as a line of `help CMD`: usage, then summary; a usage too
 * wide for its column gets a line of its own. */
static void help_sub_line(const struct shell_cmd *c, const struct shell_sub *s)
{
	char left[SHELL_COLUMNS];

	snprintf(left, sizeof(left), "%s %s%s%s", c->name, s->name, s->args[0] ? " " : "", s->args);
	if (strlen(left) > HELP_LEFT)
		printk("  %s\n  %-*s %s\n", left, HELP_LEFT, "", s->summary);
	else
		printk("  %-*s %s\n", HELP_LEFT, left, s->summary);
}

static int help_command(const struct shell_cmd *c, const char *sub_name)
{
	const struct shell_sub *s;

	if (sub_name) {
		s = shell_sub_find(c, sub_name);
		if (!s && !c->subs)
			return shell_error(-ENOENT,
					   "'%s' has no subcommands; 'help %s' describes it",
					   c->name, c->name);
		if (!s)
			return shell_error(-ENOENT, "'%s' has no subcommand '%s'; see 'help %s'",
					   c->name, sub_name, c->name);
		shell_print_sub_usage(c, s);
		printk("%s\n", s->summary);
		if (s->help)
			printk("%s", s->help);
		return 0;
	}
	if (!c->subs) {
		printk("usage: %s\n%s\n", c->usage, c->summary);
		if (c->help)
			printk("%s", c->help);
		return 0;
	}
	printk("%s: %s\n", c->name, c->summary);
	for (s = c->subs; s->name; s++)
		help_sub_line(c, s);
	if (c->help)
		printk("%s", c->help);
	printk("'help %s SUB' tells more about one.\n", c->name);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	const struct shell_cmd *c;

	if (argc > 3)
		return shell_usage("help");
	if (argc >= 2) {
		c = shell_find(argv[1]);
		if (!c)
			/* The shell's own words for the same mistake (kernel/shell.c). */
			return shell_error(
				-ENOENT, "%s: unknown command; 'help' lists the commands", argv[1]);
		return help_command(c, argc == 3 ? argv[2] : NULL);
	}
	printk("Commands ('help CMD' for one, 'help CMD SUB' for a subcommand):\n");
	for (c = shell_cmds_begin(); c < shell_cmds_end(); c++)
		printk("  %-10s %s\n", c->name, c->summary);
	return 0;
}
SHELL_COMMAND(help, .name = "help", .usage = "help [COMMAND [SUBCOMMAND]]",
	      .summary = "list the commands, or describe one", .fn = cmd_help);

static int cmd_version(int argc, char **argv)
{
	if (argc != 1)
		return shell_usage("version");
	printk("Amber %s, built %s (%s)\n", AMBER_VERSION, AMBER_BUILD_DATE, AMBER_GIT);
	printk("booted by %s (Multiboot %d)\n", boot_info.loader[0] ? boot_info.loader : "unknown",
	       boot_info.multiboot_version);
	return 0;
}
SHELL_COMMAND(version, .name = "version", .usage = "version",
	      .summary = "show Amber's version and how it was booted", .fn = cmd_version);

static int cmd_uptime(int argc, char **argv)
{
	u64 t = ticks();

	if (argc != 1)
		return shell_usage("uptime");
	printk("up %lu.%03lu s (%lu ticks of 1 us; TSC %lu.%03lu MHz)\n", t / TICKS_PER_SEC,
	       t % TICKS_PER_SEC / 1000, t, tsc_hz() / 1000000, tsc_hz() / 1000 % 1000);
	return 0;
}
SHELL_COMMAND(uptime, .name = "uptime", .usage = "uptime",
	      .summary = "time since boot, in seconds and ticks", .fn = cmd_uptime);

/* One message of the ring, wrapped to 80 columns under its text: a
 * continued line starts below the first word after the "[ time ]" stamp. */
static void log_line(const char *line)
{
	char stamp[24];
	const char *end = strchr(line, ']');
	size_t n = end ? (size_t)(end - line) + 1 : 0;

	if (!n || n >= sizeof(stamp)) {
		shell_wrap("", 0, line);
		return;
	}
	memcpy(stamp, line, n);
	stamp[n] = '\0';
	shell_wrap(stamp, (int)n + 1, end + 1);
}

static int cmd_log(int argc, char **argv)
{
	if (argc != 1)
		return shell_usage("log");
	log_dump(log_line);
	return 0;
}
SHELL_COMMAND(log, .name = "log", .usage = "log", .summary = "show the kernel message log",
	      .fn = cmd_log);

static const char *mem_type_name(u32 type)
{
	switch (type) {
	case MEM_USABLE:
		return "usable";
	case MEM_ACPI_RECLAIM:
		return "ACPI reclaimable";
	case MEM_ACPI_NVS:
		return "ACPI NVS";
	case MEM_BAD:
		return "bad";
	default:
		return "reserved";
	}
}

/* `mem map ADDR...`: what the kernel's page tables give each address. */
static int mem_map(int argc, char **argv)
{
	int ret = 0;

	printk("no-execute pages: %s\n", paging_nx() ? "on (EFER.NXE)" : "off (the CPU has no NX)");
	for (int i = 2; i < argc; i++) {
		u64 va, size;
		bool w, x;
		int err;

		if (parse_u64(argv[i], &va)) {
			shell_error(-EINVAL, "'%s' is not an address", argv[i]);
			ret = -EINVAL;
			continue;
		}
		err = paging_query(va, &size, &w, &x);
		if (err == -EINVAL)
			printk("  0x%016lx: not a canonical address\n", va);
		else if (err)
			printk("  0x%016lx: not mapped\n", va);
		else
			printk("  0x%016lx: %s page, r%c%c (%s, %s)\n", va,
			       size == PAGE_SIZE      ? "4 KiB" :
			       size == HUGE_PAGE_SIZE ? "2 MiB" :
							"1 GiB",
			       w ? 'w' : '-', x ? 'x' : '-', w ? "writable" : "read-only",
			       x ? "executable" : "no-execute");
	}
	return ret;
}

extern char _load_start[], _kernel_end[];

/* `mem probe ADDR`: reads a byte of Amber's own image and writes the same
 * value back, each through the exception fixup, so that the CPU itself says
 * whether the page rights hold. Only inside the image: elsewhere even a read
 * could reach a device register. */
static int mem_probe(const char *arg)
{
	volatile u8 *p;
	int rerr = 0, werr = 0;
	u64 va;
	u8 v = 0;

	if (parse_u64(arg, &va) || va < (u64)(uintptr_t)_load_start ||
	    va >= (u64)(uintptr_t)_kernel_end) {
		return shell_error(-EINVAL,
				   "'%s' is not an address in Amber's image\n"
				   "  (0x%lx-0x%lx)",
				   arg, (u64)(uintptr_t)_load_start,
				   (u64)(uintptr_t)_kernel_end - 1);
	}
	p = (volatile u8 *)(uintptr_t)va;
	__asm__ volatile("1: movb (%2), %1\n" ASM_FIXUP_ERR("%0", "%3")
			 : "+r"(rerr), "+q"(v)
			 : "r"(p), "i"(-EFAULT)
			 : "memory");
	if (!rerr)
		__asm__ volatile("1: movb %1, (%2)\n" ASM_FIXUP_ERR("%0", "%3")
				 : "+r"(werr)
				 : "q"(v), "r"(p), "i"(-EFAULT)
				 : "memory");
	printk("  0x%016lx: read %s, write %s\n", va, rerr ? "faults" : "ok",
	       rerr ? "not tried" :
	       werr ? "faults" :
		      "ok (same value written back)");
	return 0;
}

static int cmd_mem(int argc, char **argv)
{
	char total[24], free_s[24], heap_s[24], heap_u[24], len[24];
	u64 hused, hsize;

	if (argc >= 3 && !strcmp(argv[1], "map"))
		return mem_map(argc, argv);
	if (argc == 3 && !strcmp(argv[1], "probe"))
		return mem_probe(argv[2]);
	if (argc != 1)
		return shell_usage("mem");
	printk("Memory map from the boot loader:\n");
	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mem_range *r = &boot_info.mmap[i];

		format_size(len, sizeof(len), r->len);
		printk("  %016lx-%016lx %10s  %s\n", r->base, r->base + r->len - 1, len,
		       mem_type_name(r->type));
	}
	for (int i = 0; i < boot_info.module_count; i++)
		printk("  module %d: %08lx-%08lx  %s\n", i, boot_info.modules[i].start,
		       boot_info.modules[i].end - 1, boot_info.modules[i].cmdline);
	format_size(total, sizeof(total), pmm_total_pages() * PAGE_SIZE);
	format_size(free_s, sizeof(free_s), pmm_free_pages() * PAGE_SIZE);
	heap_stats(&hused, &hsize);
	format_size(heap_u, sizeof(heap_u), hused);
	format_size(heap_s, sizeof(heap_s), hsize);
	printk("Free: %s of %s managed (4 KiB pages: %lu free)\n", free_s, total, pmm_free_pages());
	printk("Heap: %s of %s used (%lu bytes)\n", heap_u, heap_s, hused);
	return 0;
}
static const struct shell_sub mem_subs[] = {
	{ .name = "map", .args = "ADDR...", .summary = "page size and rights (rwx) of addresses" },
	{ .name = "probe",
	  .args = "ADDR",
	  .summary = "whether the CPU lets a read and a write through",
	  .help = "  Reads a byte of Amber's own image and writes it back, each through\n"
		  "  the exception fixup.\n" },
	{ NULL },
};

SHELL_COMMAND(mem, .name = "mem", .summary = "memory map, free memory and heap use; page rights",
	      .help = "'mem' alone shows the boot memory map, free pages and heap use.\n",
	      .fn = cmd_mem, .subs = mem_subs);

static int cmd_reboot(int argc, char **argv)
{
	if (argc != 1)
		return shell_usage("reboot");
	printk("Rebooting...\n");
	acpi_reboot(); /* does not return: it ends in a triple fault at worst */
}
SHELL_COMMAND(reboot, .name = "reboot", .usage = "reboot", .summary = "restart the machine",
	      .fn = cmd_reboot);

static int cmd_poweroff(int argc, char **argv)
{
	if (argc != 1)
		return shell_usage("poweroff");
	printk("Powering off...\n");
	acpi_poweroff();
	return shell_error(-EIO, "ACPI S5 did not take effect; switch the machine off by hand");
}
SHELL_COMMAND(poweroff, .name = "poweroff", .usage = "poweroff",
	      .summary = "switch the machine off (ACPI S5)", .fn = cmd_poweroff);
