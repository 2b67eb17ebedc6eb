/*
 * Shell commands that show what hardware discovery found at boot: `cpu`, `pci`
 * and `acpi`. They print the records filled by cpu_init, smp_init, pci_init
 * and acpi_init; only `cpu ping` touches hardware (IPIs to the other CPUs).
 * Host context (the shell).
 */
#include "kernel/acpi.h"
#include "kernel/apic.h"
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/pci.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "kernel/x86.h"
#include "vmm/vmm.h"

static const char *cpu_state_name(const struct host_cpu *c)
{
	static char runs[32];
	int n;

	switch (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE)) {
	case CPU_ONLINE:
		if (c->index == 0)
			return "boot CPU, runs the shell";
		n = vmm_vcpus_placed(c->index);
		if (!n)
			return "online, idle";
		snprintf(runs, sizeof(runs), "online, runs %d vCPU%s", n, n == 1 ? "" : "s");
		return runs;
	case CPU_STARTING:
		return "starting";
	case CPU_NOANSWER:
		return "not answering, left out";
	case CPU_STOPPED:
		return "stopped";
	default:
		return "absent";
	}
}

/* One row per CPU, 80 columns at most. */
static void print_cpu_table(void)
{
	const char *virt = vcpu_ops ? vcpu_ops->name : "virtualization";

	printk("CPU  APIC id  state                     virtualization  requests served\n");
	for (int i = 0; i < smp_cpu_count; i++) {
		const struct host_cpu *c = &host_cpus[i];
		char v[24];

		snprintf(v, sizeof(v), "%s %s", virt, c->virt_on ? "on" : "off");
		printk("%3d  %7u  %-24s  %-14s  %15lu\n", i, c->apic_id, cpu_state_name(c), v,
		       c->calls_served);
	}
	printk("%d of %d CPU(s) online\n", smp_online_count(), smp_cpu_count);
}

/* What a pinged CPU answers: its own APIC ID, so the answer shows which CPU
 * ran the request. */
static u64 ping_answer(u64 unused)
{
	(void)unused;
	return apic_id();
}

/* Sends each other online CPU a request and prints the round trip. */
static int cpu_ping(void)
{
	int lost = 0, asked = 0;

	for (int i = 0; i < smp_cpu_count; i++) {
		const struct host_cpu *c = &host_cpus[i];
		u64 t0, t1, answer = ~0ULL, ns;
		int err;

		if (i == this_cpu()->index ||
		    __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != CPU_ONLINE)
			continue;
		asked++;
		t0 = rdtsc();
		err = smp_call(i, ping_answer, 0, &answer, SMP_CALL_TIMEOUT_US);
		t1 = rdtsc();
		if (err) {
			lost++;
			printk("cpu %d: APIC id %u: no answer (%s)\n", i, c->apic_id,
			       err == -ETIMEDOUT ? "timed out" : "busy");
			continue;
		}
		if (answer != c->apic_id) {
			lost++;
			printk("cpu %d: answered by APIC id %lu, expected %u\n", i, answer,
			       c->apic_id);
			continue;
		}
		ns = (t1 - t0) * 1000000000ULL / tsc_hz();
		printk("cpu %d: APIC id %u answered in %lu.%03lu us\n", i, c->apic_id, ns / 1000,
		       ns % 1000);
	}
	if (!asked) {
		printk("no other CPU is online\n");
		return 0;
	}
	if (lost)
		return shell_error(-ETIMEDOUT, "%d of %d CPU(s) did not answer; see `cpu`", lost,
				   asked);
	return 0;
}

static u64 panic_here(u64 unused)
{
	(void)unused;
	panic("test hook: `cpu panic` on CPU %d", this_cpu()->index);
}

/* Never returns: a CPU stuck with interrupts off, as a wedged one would be. */
static u64 hang_here(u64 unused)
{
	(void)unused;
	for (;;)
		cpu_relax();
	return 0;
}

/* Test hooks: CPU n panics (every other CPU must stop before it reports), or
 * hangs in a request (the caller must time out and leave it out). */
static int cpu_hook(const char *arg, smp_fn fn)
{
	u64 n;
	int err;

	if (parse_u64(arg, &n) || n == 0 || n >= (u64)smp_cpu_count ||
	    host_cpus[n].state != CPU_ONLINE)
		return shell_error(-EINVAL,
				   "no online CPU %s other than the boot CPU; `cpu` "
				   "lists them",
				   arg);
	err = smp_call((int)n, fn, 0, NULL, SMP_CALL_TIMEOUT_US);
	if (err)
		return shell_error(err, "CPU %s did not answer; it is left out", arg);
	return 0;
}

static int cmd_cpu(int argc, char **argv)
{
	char backend[160];

	if (argc == 2 && !strcmp(argv[1], "ping"))
		return cpu_ping();
	if (argc == 3 && !strcmp(argv[1], "panic"))
		return cpu_hook(argv[2], panic_here);
	if (argc == 3 && !strcmp(argv[1], "hang"))
		return cpu_hook(argv[2], hang_here);
	if (argc != 1)
		return shell_usage("cpu");
	cpu_print_features();
	vmm_describe_backend(backend, sizeof(backend));
	printk("backend:  %s\n", backend);
	print_cpu_table();
	if (!vmm_unavailable_reason())
		vmm_print_cpu_models();
	return 0;
}
static const struct shell_sub cpu_subs[] = {
	{ .name = "ping",
	  .args = "",
	  .summary = "round trip of a request to every other CPU",
	  .help = "  Sends each online CPU a request through the cross-CPU mailbox (an IPI\n"
		  "  on vector 0xF0) and prints how long its answer took.\n" },
	{ .name = "panic",
	  .args = "N",
	  .summary = "test hook: CPU N panics",
	  .help = "  CPU N calls panic(), which stops every other CPU with an NMI before\n"
		  "  it prints: the machine halts.\n",
	  .hidden = true },
	{ .name = "hang",
	  .args = "N",
	  .summary = "test hook: CPU N hangs in a request",
	  .help = "  CPU N spins with interrupts off inside a request: the request times out,\n"
		  "  CPU N is reported as not answering and left out.\n",
	  .hidden = true },
	{ NULL },
};
SHELL_COMMAND(cpu, .name = "cpu",
	      .summary = "CPU model, features, virtualization; every CPU and its state",
	      .help = "'cpu' alone shows the boot CPU's features and a table of every CPU.\n",
	      .fn = cmd_cpu, .subs = cpu_subs);

static void print_bar(const struct pci_dev *d, int i)
{
	char size[24];

	if (d->bar_is_io[i]) {
		printk("    BAR%d io 0x%lx size %lu\n", i, d->bar[i], d->bar_size[i]);
		return;
	}
	format_size(size, sizeof(size), d->bar_size[i]);
	printk("    BAR%d mem 0x%lx size %s%s%s\n", i, d->bar[i], size,
	       d->bar_is_64[i] ? " 64-bit" : "", d->bar_prefetch[i] ? " prefetchable" : "");
}

static int cmd_pci(int argc, char **argv)
{
	if (argc != 1)
		return shell_usage("pci");
	for (int n = 0; n < pci_dev_count; n++) {
		const struct pci_dev *d = &pci_devs[n];
		const char *name = pci_class_name(d->class_code, d->subclass);

		printk("%02x:%02x.%x %04x:%04x %s", d->bus, d->dev, d->fn, d->vendor, d->device,
		       name);
		if (!strcmp(name, "unknown class"))
			printk(" %02x/%02x", d->class_code, d->subclass);
		printk(" (class %02x%02x%02x, rev %02x)\n", d->class_code, d->subclass, d->prog_if,
		       d->revision);
		for (int i = 0; i < 6; i++)
			if (d->bar_size[i])
				print_bar(d, i);
	}
	printk("%d function(s); config space via ports 0xCF8/0xCFC", pci_dev_count);
	if (pci_has_ecam())
		printk(", extended space via ECAM at 0x%lx (buses %u-%u)\n", acpi.ecam_base,
		       acpi.ecam_bus_start, acpi.ecam_bus_end);
	else
		printk(", no extended space (no ECAM)\n");
	return 0;
}
SHELL_COMMAND(pci, .name = "pci", .usage = "pci",
	      .summary = "list the PCI functions and their BARs", .fn = cmd_pci);

static int cmd_acpi(int argc, char **argv)
{
	char how[96];

	if (argc != 1)
		return shell_usage("acpi");
	if (!acpi.rsdp_phys) {
		printk("acpi: no ACPI tables were found at boot\n");
		return 0;
	}
	printk("RSDP at 0x%lx%s, revision %u (%s)\n", acpi.rsdp_phys,
	       acpi.rsdp_from_loader ? " (the boot loader's copy)" : "", acpi.revision,
	       acpi.revision >= 2 ? "ACPI 2.0+, XSDT" : "ACPI 1.0, RSDT");
	for (int i = 0; i < acpi.table_count; i++)
		printk("  %-4s at 0x%08lx, %6u bytes, OEM %s\n", acpi.tables[i].sig,
		       acpi.tables[i].phys, acpi.tables[i].length, acpi.tables[i].oem_id);
	if (acpi.skipped_tables)
		printk("  (%d table(s) skipped as malformed; see `log`)\n", acpi.skipped_tables);
	printk("CPUs: %d enabled (APIC ids", acpi.cpu_count);
	for (int i = 0; i < acpi.cpu_count && i < ACPI_MAX_CPUS; i++)
		printk(" %u", acpi.cpu_apic_ids[i]);
	printk(")\n");
	if (acpi.lapic_phys)
		printk("local APIC at 0x%lx; %d I/O APIC(s), first at 0x%lx\n", acpi.lapic_phys,
		       acpi.ioapic_count, acpi.ioapic_phys);
	if (acpi.ecam_base)
		printk("ECAM (MCFG) at 0x%lx, buses %u-%u\n", acpi.ecam_base, acpi.ecam_bus_start,
		       acpi.ecam_bus_end);
	else
		printk("ECAM: none (no MCFG)\n");
	acpi_describe_poweroff(how, sizeof(how));
	printk("%s\n", how);
	if (acpi.reset_port)
		printk("reset via FADT reset register: port 0x%x value 0x%x\n", acpi.reset_port,
		       acpi.reset_value);
	else
		printk("reset via the 8042 keyboard controller (no FADT reset register)\n");
	return 0;
}
SHELL_COMMAND(acpi, .name = "acpi", .usage = "acpi",
	      .summary = "ACPI tables, CPUs, ECAM and the power-off method", .fn = cmd_acpi);
