/*
 * Host CPUs: bring-up of every CPU the MADT lists (kernel/smp.c), the per-CPU
 * record, and the one cross-CPU request mechanism (smp_call). The boot CPU
 * runs the shell, the disks and today every guest; the others wait in an idle
 * loop that serves requests. docs/architecture.md "Execution model" has the
 * rules: what runs where, the locks and their order.
 */
#ifndef AMBER_SMP_H
#define AMBER_SMP_H

#include "kernel/spinlock.h"
#include "kernel/traps.h"
#include "kernel/types.h"

#define SMP_MAX_CPUS 16
/* The vector of the cross-CPU request IPI. Above the PIC's 0x20-0x2F; the
 * APIC's spurious vector is 0xFF (kernel/apic.h). */
#define SMP_CALL_VECTOR 0xF0
/* The local APIC timer of an AP (the end of a guest's slice there; only the
 * boot CPU takes the PIT). Its handler is the doorbell's: acknowledge only. */
#define SMP_TIMER_VECTOR 0xF1
/* How long a CPU may take to come up after its SIPIs, and to answer a request. */
#define SMP_START_TIMEOUT_US 1000000
#define SMP_CALL_TIMEOUT_US 500000

enum host_cpu_state {
	CPU_ABSENT = 0, /* no such entry */
	CPU_STARTING,	/* INIT-SIPI-SIPI sent, not yet in its idle loop */
	CPU_ONLINE,	/* serves requests (the boot CPU: runs the shell) */
	CPU_NOANSWER,	/* did not come up or did not answer a request: left out */
	CPU_STOPPED,	/* halted for good by a panic on another CPU */
};

/* A request's way through a CPU's mailbox. */
enum smp_call_state {
	CALL_IDLE,
	CALL_POSTED,
	CALL_RUNNING,
	CALL_DONE
};

typedef u64 (*smp_fn)(u64 arg);

/* One per CPU, in host_cpus[] indexed by the CPU number (0 = boot CPU). A CPU
 * finds its own entry by its APIC ID (this_cpu()). */
struct host_cpu {
	int index;
	u32 apic_id;
	int state;   /* enum host_cpu_state; read by other CPUs */
	bool booted; /* it reached the kernel: it runs code, even if left out later */
	bool virt_on;
	/* The virtualization backend's per-CPU pages, set by its cpu_enable on
	 * this CPU: VT-x its VMXON region; AMD-V its VM_HSAVE_PA area and the
	 * host's VMSAVE area. */
	u64 virt_page[2];
	/* The mailbox (smp_call): one caller at a time holds call_lock. */
	spinlock_t call_lock;
	u32 call_state; /* enum smp_call_state, moved with atomics */
	smp_fn call_fn;
	u64 call_arg, call_ret;
	u64 calls_served, ipis;
};

extern struct host_cpu host_cpus[SMP_MAX_CPUS];
extern int smp_cpu_count; /* entries of host_cpus[] in use, not-answering ones included */

/* The calling CPU's number, from the stack it runs on (each AP runs on its own
 * kernel stack, the boot CPU on boot/boot.asm's): a few instructions, no APIC
 * read, so the VMM's exit path may use it for its per-CPU data. */
static inline int smp_this_index(void)
{
	return traps_stack_cpu((u64)(uintptr_t)__builtin_frame_address(0));
}

/* Boot CPU, after acpi_init: maps the APIC and brings up every other CPU. */
void smp_init(void);
/* The calling CPU's entry (host_cpus[0] before smp_init). */
struct host_cpu *this_cpu(void);
int smp_online_count(void);
/* Runs fn(arg) on CPU `cpu` and waits (at most timeout_us) for it: 0 with
 * *ret (may be NULL) set, -ETIMEDOUT after reporting the CPU as not answering
 * (left out from then on), -ENODEV for a CPU that is not online, -EINVAL.
 * fn runs in the target's loop, not in an interrupt handler; arg must stay
 * valid after a timeout (pass values, or objects that outlive the call).
 * While it waits the caller serves its own mailbox, so two CPUs calling each
 * other cannot deadlock. Any CPU, no lock held. */
int smp_call(int cpu, smp_fn fn, u64 arg, u64 *ret, u64 timeout_us);
/* The kick: the doorbell IPI without a request. It ends guest mode on that
 * CPU (AMD-V's INTR intercept, VT-x's external-interrupt exiting, whatever
 * the guest's IF) or wakes it from its idle HLT; its loop then looks at what
 * changed. 0, -ENODEV for a CPU that is not online. Any CPU. */
int smp_kick(int cpu);
/* The loop an AP runs once online, between requests (the VMM's vCPUs on that
 * CPU); it must return after sleeping at most until the next interrupt.
 * Without one, an AP sleeps until the next doorbell. */
void smp_set_idle(void (*fn)(int cpu));
/* Runs a request waiting in the calling CPU's mailbox, if any. */
void smp_poll(void);
/* Panic path: claims the panic for this CPU, stops every other CPU with an
 * NMI, waits (bounded) until they are halted and frees the console lock.
 * A CPU that loses the race for the panic halts here for good. */
void smp_panic_stop(void);
/* NMI handler: halts this CPU for good if another CPU is panicking (the NMI
 * is its stop request); false for any other NMI. */
bool smp_nmi(void);

/* Pure helper (host-tested): the CPUs to bring up from the MADT's enabled
 * APIC IDs. The boot CPU first, each ID once, at most `max`; *dropped counts
 * IDs left out for want of room. Returns how many are in out[]. */
int smp_cpu_list(const u32 *ids, int n, u32 boot_id, u32 *out, int max, int *dropped);

#endif
