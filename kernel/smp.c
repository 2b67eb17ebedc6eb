/*
 * Bring-up of the application processors and the cross-CPU requests. The
 * boot CPU starts each CPU the MADT lists, one at a time, through the
 * real-mode trampoline (boot/trampoline.asm) with INIT-SIPI-SIPI; the AP
 * loads its own GDT, TSS and stacks and waits in smp_idle for requests, which
 * arrive in its mailbox with an IPI on SMP_CALL_VECTOR as the doorbell. A
 * panic on any CPU stops the others with an NMI first.
 *
 * Per-CPU data is host_cpus[], indexed by the CPU number; a CPU finds its own
 * entry through its APIC ID, not through GS base: a guest can change GS base
 * (on AMD-V VMLOAD loads the guest's, and the exit path would have to restore
 * the host's before anything looked), the APIC ID it cannot, so this_cpu()
 * also works in an NMI or exception on any path. The cost, one APIC register
 * read, is paid only off the hot paths (printk, requests, panics).
 *
 * Boot CPU for bring-up; any CPU for requests and panics.
 * Intel SDM Vol. 3A 9.4 "Multiple-Processor (MP) Initialization", 9.4.4.1
 * "Typical BSP Initialization Sequence"; MultiProcessor Specification 1.4
 * B.4 "Application Processor Startup".
 */
#include "kernel/smp.h"
#include "kernel/acpi.h"
#include "kernel/apic.h"
#include "kernel/bootinfo.h"
#include "kernel/irq.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/traps.h"
#include "kernel/x86.h"

struct host_cpu host_cpus[SMP_MAX_CPUS];
int smp_cpu_count = 1;
static bool smp_up;	   /* the APIC is set up: this_cpu() may read the ID */
static int panic_cpu = -1; /* the CPU that owns a panic, -1 while none does */
static int hang_cpu = -1;  /* test hook amber.cpu_hang=N */
static void (*ap_idle)(int cpu);

extern char trampoline_start[], trampoline_end[], tr_gdt[], tr_gdtr[], tr_pm32[], tr_pm32_ptr[],
	tr_lm_ptr[], tr_boot_cr3[], tr_efer[], tr_kernel_cr3[], tr_stack_top[], tr_cpu_index[],
	tr_hang[], tr_alive[];
extern char ap_long_entry[], boot_pml4[];
extern void ipi_call_entry(void), apic_spurious_entry(void);
void smp_ap_main(u32 index);
void smp_ipi_ack(void);

/* A field of the trampoline's copy at `page`. */
#define TR(page, field) ((void *)((u8 *)phys_to_virt(page) + ((field)-trampoline_start)))

struct host_cpu *this_cpu(void)
{
	u32 id;

	if (!smp_up)
		return &host_cpus[0];
	id = apic_id();
	for (int i = 0; i < smp_cpu_count; i++)
		if (host_cpus[i].apic_id == id)
			return &host_cpus[i];
	return &host_cpus[0];
}

static int cpu_state(int i) { return __atomic_load_n(&host_cpus[i].state, __ATOMIC_ACQUIRE); }

int smp_online_count(void)
{
	int n = 0;

	for (int i = 0; i < smp_cpu_count; i++)
		n += cpu_state(i) == CPU_ONLINE;
	return n;
}

/* ---- requests -------------------------------------------------------------- */

static void serve(struct host_cpu *c)
{
	u32 posted = CALL_POSTED;

	if (__atomic_load_n(&c->call_state, __ATOMIC_ACQUIRE) != CALL_POSTED)
		return;
	/* A caller that timed out takes its request back with the same exchange. */
	if (!__atomic_compare_exchange_n(&c->call_state, &posted, CALL_RUNNING, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	c->call_ret = c->call_fn(c->call_arg);
	c->calls_served++;
	__atomic_store_n(&c->call_state, CALL_DONE, __ATOMIC_RELEASE);
}

void smp_poll(void)
{
	if (smp_cpu_count > 1)
		serve(this_cpu());
}

/* The doorbell's interrupt handler (kernel/isr.asm): acknowledges only; the
 * request runs in the CPU's loop, where it may take locks. */
void smp_ipi_ack(void)
{
	host_cpus[smp_this_index()].ipis++;
	apic_eoi();
}

static void report_lost(struct host_cpu *c, u64 timeout_us, bool running)
{
	__atomic_store_n(&c->state, CPU_NOANSWER, __ATOMIC_RELEASE);
	pr_err("smp: CPU %d (APIC id %u) did not answer a request within %lu ms%s; "
	       "it is left out",
	       c->index, c->apic_id, timeout_us / 1000, running ? " (it is still running it)" : "");
}

int smp_call(int cpu, smp_fn fn, u64 arg, u64 *ret, u64 timeout_us)
{
	struct host_cpu *me = this_cpu(), *c;
	u64 dl;
	u32 posted = CALL_POSTED;

	if (cpu < 0 || cpu >= smp_cpu_count || !fn)
		return -EINVAL;
	c = &host_cpus[cpu];
	if (c == me) {
		u64 r = fn(arg);

		if (ret)
			*ret = r;
		return 0;
	}
	if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != CPU_ONLINE)
		return -ENODEV;
	dl = deadline_after_us(timeout_us);
	/* Another caller may be waiting on the same CPU; serve our own mailbox
	 * meanwhile, since that caller may be waiting on us. */
	while (!spin_trylock(&c->call_lock)) {
		if (deadline_passed(dl)) {
			pr_err("smp: CPU %d is busy with another CPU's request; try again", cpu);
			return -EBUSY;
		}
		serve(me);
		cpu_relax();
	}
	c->call_fn = fn;
	c->call_arg = arg;
	__atomic_store_n(&c->call_state, CALL_POSTED, __ATOMIC_RELEASE);
	apic_send(c->apic_id, APIC_ICR_FIXED | APIC_ICR_ASSERT | SMP_CALL_VECTOR);
	while (__atomic_load_n(&c->call_state, __ATOMIC_ACQUIRE) != CALL_DONE) {
		if (deadline_passed(dl)) {
			bool withdrawn = __atomic_compare_exchange_n(&c->call_state, &posted,
								     CALL_IDLE, false,
								     __ATOMIC_ACQUIRE,
								     __ATOMIC_RELAXED);

			/* Withdrawn: it never runs. Still running: the mailbox
			 * stays busy and the CPU is never asked again. */
			spin_unlock(&c->call_lock);
			report_lost(c, timeout_us, !withdrawn);
			return -ETIMEDOUT;
		}
		serve(me);
		cpu_relax();
	}
	if (ret)
		*ret = c->call_ret;
	__atomic_store_n(&c->call_state, CALL_IDLE, __ATOMIC_RELAXED);
	spin_unlock(&c->call_lock);
	return 0;
}

/* ---- panic ----------------------------------------------------------------- */

static __noreturn void halt_for_good(struct host_cpu *c)
{
	__atomic_store_n(&c->state, CPU_STOPPED, __ATOMIC_RELEASE);
	for (;;)
		__asm__ volatile("cli; hlt" ::: "memory");
}

/* A CPU that runs kernel code and has not yet halted for the panic. */
static bool must_stop(int i) { return host_cpus[i].booted && cpu_state(i) != CPU_STOPPED; }

bool smp_nmi(void)
{
	struct host_cpu *me = this_cpu();
	int owner = __atomic_load_n(&panic_cpu, __ATOMIC_ACQUIRE);

	if (owner < 0 || owner == me->index)
		return false;
	/* Never returns, so NMIs stay blocked (no IRET) and nothing wakes it. */
	halt_for_good(me);
}

void smp_panic_stop(void)
{
	struct host_cpu *me = this_cpu();
	int owner = -1, stopped = 0;
	u64 dl;

	if (!__atomic_compare_exchange_n(&panic_cpu, &owner, me->index, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		if (owner == me->index)
			return;	   /* a fault while this CPU reports its panic */
		halt_for_good(me); /* another CPU panics and reports */
	}
	if (smp_cpu_count < 2)
		return;
	/* Every CPU that runs kernel code, a left-out one too: it may still be
	 * running something. One held in INIT since its start runs nothing. */
	for (int i = 0; i < smp_cpu_count; i++)
		if (i != me->index && must_stop(i))
			apic_send(host_cpus[i].apic_id, APIC_ICR_NMI | APIC_ICR_ASSERT);
	dl = deadline_after_us(100000);
	for (int i = 0; i < smp_cpu_count; i++) {
		while (i != me->index && must_stop(i) && !deadline_passed(dl))
			cpu_relax();
	}
	printk_panic_unlock();
	for (int i = 0; i < smp_cpu_count; i++) {
		if (i == me->index)
			continue;
		if (cpu_state(i) == CPU_STOPPED)
			stopped++;
		else if (must_stop(i))
			printk("\n*** CPU %d (APIC id %u) did not stop within 100 ms", i,
			       host_cpus[i].apic_id);
	}
	printk("\n*** CPU %d stopped %d other CPU(s) before reporting", me->index, stopped);
}

/* ---- bring-up ------------------------------------------------------------- */

/* The idle loop of an AP: serves requests, sleeps until the next doorbell.
 * The request check comes before the sleep and STI's one-instruction shadow
 * keeps an IPI that arrives in between pending until HLT, so none is lost. */
static __noreturn void smp_idle(struct host_cpu *c)
{
	for (;;) {
		void (*fn)(int) = __atomic_load_n(&ap_idle, __ATOMIC_ACQUIRE);

		serve(c);
		if (fn)
			fn(c->index); /* sleeps itself, bounded */
		else
			irq_wait();
	}
}

void smp_set_idle(void (*fn)(int cpu)) { __atomic_store_n(&ap_idle, fn, __ATOMIC_RELEASE); }

int smp_kick(int cpu)
{
	if (cpu < 0 || cpu >= smp_cpu_count || cpu_state(cpu) != CPU_ONLINE)
		return -ENODEV;
	return apic_send(host_cpus[cpu].apic_id,
			 APIC_ICR_FIXED | APIC_ICR_ASSERT | SMP_CALL_VECTOR);
}

/* First C on an AP, on its own kernel stack and the kernel's page tables. */
void smp_ap_main(u32 index)
{
	struct host_cpu *c = &host_cpus[index];

	traps_init_cpu(index);
	apic_init_ap();
	apic_timer_init(SMP_TIMER_VECTOR);
	c->apic_id = apic_id();
	c->booted = true;
	__atomic_store_n(&c->state, CPU_ONLINE, __ATOMIC_RELEASE);
	smp_idle(c);
}

/* INIT-SIPI-SIPI to one AP and a bounded wait until it is online: SDM Vol.
 * 3A 9.4.4.1 "Typical BSP Initialization Sequence" (INIT, 10 ms, SIPI, 200
 * us, SIPI, 200 us) and MP spec B.4. Returns 0 or -ETIMEDOUT. */
static int start_ap(struct host_cpu *c, u64 page)
{
	u32 sipi = APIC_ICR_STARTUP | APIC_ICR_ASSERT | (u32)(page >> PAGE_SHIFT);
	u64 dl;

	*(u64 *)TR(page, tr_stack_top) = traps_kernel_stack_top(c->index);
	*(u32 *)TR(page, tr_cpu_index) = c->index;
	*(u32 *)TR(page, tr_hang) = c->index == hang_cpu;
	*(volatile u32 *)TR(page, tr_alive) = 0;
	__atomic_store_n(&c->state, CPU_STARTING, __ATOMIC_RELEASE);
	mb();

	apic_send(c->apic_id, APIC_ICR_INIT | APIC_ICR_ASSERT);
	mdelay(10);
	apic_send(c->apic_id, sipi);
	udelay(200);
	/* A second SIPI only if the first was lost; a CPU already running
	 * ignores it, but one in the trampoline need not see it at all. */
	if (!*(volatile u32 *)TR(page, tr_alive)) {
		apic_send(c->apic_id, sipi);
		udelay(200);
	}
	dl = deadline_after_us(SMP_START_TIMEOUT_US);
	while (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != CPU_ONLINE) {
		if (deadline_passed(dl)) {
			bool ran = *(volatile u32 *)TR(page, tr_alive);

			/* INIT holds it in wait-for-SIPI, out of the trampoline the
			 * next CPU needs (SDM Vol. 3A 9.4.2 "MP Initialization
			 * Protocol Requirements and Restrictions"). */
			apic_send(c->apic_id, APIC_ICR_INIT | APIC_ICR_ASSERT);
			__atomic_store_n(&c->state, CPU_NOANSWER, __ATOMIC_RELEASE);
			pr_err("smp: CPU %d (APIC id %u) did not answer within %d ms%s; Amber goes "
			       "on without it",
			       c->index, c->apic_id, SMP_START_TIMEOUT_US / 1000,
			       ran ? " (it ran the trampoline)" : "");
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
	return 0;
}

/* The trampoline in the low page: code copied, the addresses that depend on
 * where it landed filled in. */
static void trampoline_setup(u64 page)
{
	u64 efer = EFER_LME | (rdmsr(MSR_EFER) & EFER_NX);

	memcpy(phys_to_virt(page), trampoline_start, trampoline_end - trampoline_start);
	*(u32 *)TR(page, tr_gdtr + 2) = (u32)(page + (tr_gdt - trampoline_start));
	*(u32 *)TR(page, tr_pm32_ptr) = (u32)(page + (tr_pm32 - trampoline_start));
	*(u32 *)TR(page, tr_lm_ptr) = (u32)virt_to_phys(ap_long_entry);
	*(u32 *)TR(page, tr_boot_cr3) = (u32)virt_to_phys(boot_pml4);
	*(u32 *)TR(page, tr_efer) = (u32)efer;
	*(u64 *)TR(page, tr_kernel_cr3) = read_cr3();
}

/* amber.cpu_hang=N on the kernel command line (a test hook, README): CPU N's
 * trampoline parks before it signals, as a CPU that does not answer. */
static void parse_hang_hook(void)
{
	const char *p = boot_info.cmdline, *key = "amber.cpu_hang=";
	size_t kl = strlen(key);

	for (; *p; p++) {
		if ((p == boot_info.cmdline || p[-1] == ' ') && !strncmp(p, key, kl)) {
			hang_cpu = 0;
			for (p += kl; *p >= '0' && *p <= '9'; p++)
				hang_cpu = hang_cpu * 10 + (*p - '0');
			pr_warn("smp: test hook: CPU %d will not answer (amber.cpu_hang)",
				hang_cpu);
			return;
		}
	}
}

void smp_init(void)
{
	struct host_cpu *bsp = &host_cpus[0];
	u32 ids[SMP_MAX_CPUS];
	int n, dropped, online = 1;
	u64 page;

	bsp->index = 0;
	bsp->state = CPU_ONLINE;
	bsp->booted = true;
	if (apic_init(acpi.lapic_phys)) {
		pr_warn("smp: no usable local APIC: Amber runs on the boot CPU alone");
		return;
	}
	bsp->apic_id = apic_id();
	idt_set_handler(SMP_CALL_VECTOR, ipi_call_entry, 0);
	idt_set_handler(APIC_SPURIOUS_VECTOR, apic_spurious_entry, 0);
	idt_set_handler(SMP_TIMER_VECTOR, ipi_call_entry, 0);
	smp_up = true;
	parse_hang_hook();
	n = smp_cpu_list(acpi.cpu_apic_ids, MIN(acpi.cpu_count, ACPI_MAX_CPUS), bsp->apic_id, ids,
			 SMP_MAX_CPUS, &dropped);
	if (dropped)
		pr_warn("smp: %d CPU(s) beyond Amber's %d left out", dropped, SMP_MAX_CPUS);
	if (n < 2) {
		pr_info("smp: one CPU");
		return;
	}
	/* The SIPI vector names a page below 1 MiB; 0xA0-0xBF are reserved
	 * (SDM Vol. 3A 9.4.4.1), and below 0xA0000 is where RAM is anyway. */
	page = pmm_alloc_low_page(0xA0000);
	if (!page || (u64)(trampoline_end - trampoline_start) > PAGE_SIZE) {
		pr_err("smp: no free page below 640 KiB for the AP trampoline: one CPU");
		return;
	}
	trampoline_setup(page);
	apic_timer_calibrate();
	for (int i = 1; i < n; i++) {
		struct host_cpu *c = &host_cpus[i];

		c->index = i;
		c->apic_id = ids[i];
		smp_cpu_count = i + 1;
		online += start_ap(c, page) == 0;
	}
	pr_info("smp: %d of %d CPUs online (trampoline at 0x%lx)", online, n, page);
}
