/*
 * Interfaces between the generic VMM files (the C files of vmm/). Backends do not include
 * this: they see only vmm/vmm.h. Host context, boot CPU, interrupts off.
 */
#ifndef AMBER_VMM_INTERNAL_H
#define AMBER_VMM_INTERNAL_H

#include "kernel/irq.h"
#include "kernel/x86.h"
#include "vmm/vmm.h"

#define VM_MIN_MEM MiB(2)
#define VM_MAX_MEM GiB(64)
#define VM_DEFAULT_MEM MiB(32)
#define VM_HOST_RESERVE MiB(8) /* memory vm create leaves to the host */
#define VMM_SLICE_US 10000     /* longest a vCPU runs before the shell's turn */
#define SLICE_SLACK_US 50      /* a timer this close to a slice's end ends it */
#define SLEEP_LATE_US 20000    /* a wake this late: the CPU was away (logged) */
#define IO_STORM_LIMIT 100000  /* unemulated port accesses before a VM is stopped */
#define EXC_STORM_LIMIT 1000   /* intercepted exceptions in one window: a storm */
#define EXC_STORM_WINDOW_US 1000000

/* What an exit handler tells the run loop. */
enum exit_action {
	EXIT_RESUME, /* re-enter the guest */
	EXIT_YIELD,  /* back to the scheduler: slice over, vCPU halted or VM ended */
};

/* vmm/vcpu.c */
struct vcpu *vcpu_create(struct vm *vm, int id);
void vcpu_free(struct vcpu *v);
void vcpu_fpu_setup(void);
/* The same FPU control bits (CR0, CR4, XCR0) on another CPU, after
 * vcpu_fpu_setup ran on the boot CPU; on that CPU. */
void vcpu_fpu_setup_cpu(void);
/* Saves the vCPU's FPU state into v->fpu if it is loaded in the registers, so
 * that v->fpu is complete (pause, snapshot, destroy). */
void vcpu_fpu_release(struct vcpu *v);
/* Boot CPU, once, after the backend is on everywhere: the kick IPI and the
 * APs' loop that runs their vCPUs (vmm/vcpu.c). */
void vcpu_sched_init(void);
/* Boot CPU, from vmm_idle: the machine resets that wait for it (a VM whose
 * vCPUs run on several CPUs), each with the APs held (vmm/vmm.c). */
void vmm_resets_due(void);
u64 vcpu_xcr0_allowed(void);
/* Makes v the FPU owner (its state loaded in the registers) before it runs. */
void vcpu_fpu_switch(struct vcpu *v);
/* The guest changed XCR0 (XSETBV, already checked): v owns the FPU. */
void vcpu_fpu_set_xcr0(struct vcpu *v, u64 xcr0);
/* A valid XCR0 for a guest (SDM Vol. 1 13.3 "Enabling the XSAVE Feature Set"). */
bool vcpu_xcr0_valid(u64 xcr0);
/* Prints the registers of a vCPU in 80 columns: in a stop `report` each line
 * is prefixed "[vmN]   " like the guest's output, else indented (vm info). */
void vcpu_dump(struct vcpu *v, bool report);
/* Stops v's VM: the reason, the exit record and the registers. Returns EXIT_YIELD. */
int vcpu_stop_report(struct vcpu *v, const struct vm_exit *e, const char *fmt, ...) __printf(3, 4);
/* A backend call failed during an exit (its VMCS/VMCB could not be reached):
 * stops v's VM saying what could not be done. Returns EXIT_YIELD. */
int vcpu_backend_failed(struct vcpu *v, const struct vm_exit *e, const char *what, int err);
/* Reads guest memory at a guest-linear address through the guest's own paging
 * (none, 32-bit, PAE or 4-level) as state s (the caller's get_state, read
 * once per exit: the MMIO path's largest cost was a second one). Returns 0
 * or -EFAULT. */
int vcpu_read_linear(struct vcpu *v, const struct vcpu_state *s, u64 la, void *dst, u64 len);
/* Writes guest memory at a guest-linear address as the guest itself would:
 * the page rights at the vCPU's CPL are checked and the accessed and dirty
 * bits set. Returns 0, -EFAULT (not mapped, or outside RAM) or -EPERM (the
 * page rights forbid it), -EIO (the backend could not give the state); bytes
 * before a failing page are written. */
int vcpu_write_linear(struct vcpu *v, u64 la, const void *src, u64 len);
/* Translates la for an access the guest makes, like vcpu_write_linear, for
 * state s (from get_state): 0 and *gpa, -EFAULT or -EPERM. */
#define VCPU_ACCESS_WRITE BIT(0)
int vcpu_translate(struct vcpu *v, const struct vcpu_state *s, u64 la, u32 access, u64 *gpa);
/* The guest's TSC now, as the time base of the emulated devices; a backend
 * that cannot read it stops the VM. */
u64 vcpu_guest_tsc(struct vcpu *v);

/* A hardware exception for the next entry through the backend. */
static inline int vcpu_inject_exception(struct vcpu *v, u8 vector, bool has_error, u32 error)
{
	struct vcpu_event ev = { .valid = 1,
				 .type = VCPU_EVENT_EXCEPTION,
				 .vector = vector,
				 .has_error = has_error,
				 .error_code = error };

	return vcpu_ops->inject_event(v, &ev);
}

/* vmm/intr.c: interrupt delivery around each entry (vmm/intr.h for the
 * fabric). The decision alone, pure: what to inject given the backend's
 * VCPU_INTR_* state, an NMI waiting and a maskable interrupt waiting, and
 * which windows to ask for. */
enum intr_inject {
	INTR_INJECT_NONE,
	INTR_INJECT_NMI,
	INTR_INJECT_EXTINT,
};
struct intr_plan {
	enum intr_inject inject;
	u32 windows; /* VCPU_WINDOW_* */
};
struct intr_plan intr_decide(u32 state, bool nmi, bool intr);
/* Before an entry: devices brought up to a due deadline (their next one
 * recomputed when devices_changed: the last exit may have used a device), the TPR
 * pushed, the next event injected or its window requested, the run bounded
 * by the next deadline. Returns 0 or the backend's negative errno. */
int intr_before_entry(struct vcpu *v, u64 slice_end, bool devices_changed);
/* Right after an exit: the TPR the guest may have changed (CR8) goes to the
 * LAPIC. 0 or the backend's negative errno. After a plain exit of a quiet
 * vCPU the run loop leaves it for later (v->cr8_stale): the full look
 * before an entry and the slice's end catch it up. */
int intr_after_exit(struct vcpu *v);

/*
 * The entry after a plain exit (v->intr_dirty clear: CPUID, XSETBV, an
 * exception, nothing else since the last full look) needs no
 * intr_before_entry when that look found the vCPU quiet (no NMI, nothing
 * above the PPR, the LAPIC's IRR empty), no host timer interrupt has come
 * since (the one it armed, for the slice's end or the deadline, is still
 * on its way), and the host's TSC is short of the devices' deadline. Each
 * step skipped is safe then:
 *  - the devices' sync: none is due (the TSC is below the deadline), and
 *    only a device access, which marks v dirty, can move the deadline;
 *  - the TPR push: the LAPIC's TPR changes only by a device access or from
 *    CR8 (intr_after_exit marks v dirty when it changed);
 *  - the LAPIC, the 8259A, the NMI: they change only by device accesses,
 *    a deadline's sync or a kick (each marks v dirty or is caught above);
 *  - the backend's state (IF, shadows, a queued event): it only chooses
 *    between injecting and a window when something waits, and nothing
 *    does; a queued event is re-injected by the backend itself;
 *  - the windows: none was asked for, none is wanted;
 *  - the host timer: still armed, for no later than the full look wanted.
 * Sets the run's budget (the VMX-preemption timer) to the time left to the
 * deadline, from one read of the host's TSC (the guest's runs at its rate).
 */
static inline bool intr_unchanged(struct vcpu *v)
{
	u64 now;

	if (v->intr_dirty || !v->intr_quiet || irq_timer_count() != v->intr_timer)
		return false;
	if (v->intr_until == ~0ULL) {
		v->run_budget = ~0ULL;
		return true;
	}
	now = rdtsc();
	if (now >= v->intr_until)
		return false;
	v->run_budget = v->intr_until - now;
	return true;
}
/* v executed HLT (RIP already past it) or sleeps in it: true when it has
 * something it can take now, so it runs on. Brings devices up to now. */
bool intr_can_wake(struct vcpu *v);
/* v sleeps in HLT with IF=0 and no NMI waiting: nothing can wake it. */
bool intr_sleeps_for_good(struct vcpu *v);

/* vmm/startup.c: INIT and STARTUP IPIs. vcpu_init_state: s (from
 * get_state) turned into the state INIT leaves a processor in, or with
 * sipi_vector >= 0 the one a STARTUP IPI starts it in (pure). */
void vcpu_init_state(struct vcpu_state *s, int sipi_vector);
/* v (an application processor) in the INIT state, waiting for a STARTUP
 * IPI, its TSC the BSP's: VM creation and reset. 0 or the backend's errno. */
int vcpu_wait_for_sipi(struct vcpu *v);
/* Before the scheduler runs v: acts on an INIT or STARTUP its LAPIC
 * received (an INIT to the BSP resets the VM). False while v waits for a
 * STARTUP IPI (or its VM was stopped because the backend failed). */
bool vcpu_startup(struct vcpu *v);
/* v sits in the INIT state with no STARTUP IPI yet: only another vCPU's
 * IPI can wake it. */
bool vcpu_waits_for_sipi(struct vcpu *v);

/* vmm/emulate.c: CPUID, MSR and port I/O. */
/* IN and OUT (not the string forms). */
int emulate_io(struct vcpu *v, const struct vm_exit *e);
/* One IN or OUT of e->io.size bytes at e->io.port through the devices; *val
 * holds the value out, or receives the value in (all ones when nothing
 * answers). The string forms call it once per element. */
void emulate_port(struct vcpu *v, const struct vm_exit *e, u32 *val);
int emulate_cpuid(struct vcpu *v, const struct vm_exit *e);
int emulate_rdmsr(struct vcpu *v, const struct vm_exit *e);
int emulate_wrmsr(struct vcpu *v, const struct vm_exit *e);
int emulate_xsetbv(struct vcpu *v, const struct vm_exit *e);

/* vmm/emulate_mem.c: the emulation that reaches guest memory. INS/OUTS, REP
 * or not, element by element through emulate_port(). */
int emulate_string_io(struct vcpu *v, const struct vm_exit *e);
/* A guest access to a registered MMIO range r (VMEXIT_MEM): fetches and
 * decodes the instruction at RIP, calls the device, writes back, advances RIP;
 * anything it cannot do stops the VM with a report showing the bytes. */
int emulate_mmio(struct vcpu *v, const struct vm_exit *e, const struct mmio_region *r);

/* vmm/dev_uart.c: COM1. */
#define VUART_BASE 0x3F8
/* Prints a partial line (VM ending, console attach). */
void vuart_flush(struct vm *vm);
/* A byte reaches the receiver; false when it is full (an overrun, as on
 * hardware: the loopback path). */
bool vuart_input(struct vm *vm, u8 c);
/* A byte typed on `vm console`: it waits while the receiver is full, as
 * flow control would hold it (1 KiB of it); false when even that is full. */
bool vuart_console_input(struct vm *vm, u8 c);

/* vmm/images.c: the guest images Amber can run. */
struct guest_image {
	const char *name;
	const u8 *data;
	u64 size;
	const char *cmdline; /* default guest arguments */
	bool module;	     /* a Multiboot module, not built in */
	const char *purpose; /* one phrase ("" for a module): tests/guests/guests.mk */
	const char *usage;   /* the words its command line understands, or "" */
};
void guest_images_init(void);
const struct guest_image *guest_image_find(const char *name);
int guest_image_count(void);
const struct guest_image *guest_image_at(int i);

/* vmm/vmm.c */
extern struct vm *vm_table[VM_MAX];
struct loader_target;
/* The loaders' view of vm's RAM (vmm/loader.h): writes through vm_copy_to_guest. */
void vm_loader_target(struct vm *vm, struct loader_target *t);

/* vmm/linux_vm.c: loads the Linux kernel `img` with `initrd` (NULL for none),
 * the command line, the memory map and the ACPI RSDP address (0: none) into
 * vm and sets vCPU 0 to its entry with its TSC at `tsc`. Returns 0, or a
 * negative errno after printing why. */
struct mem_range;
int linux_vm_load(struct vm *vm, const struct guest_image *img, const struct guest_image *initrd,
		  const char *cmdline, const struct mem_range *map, int nmap, u64 rsdp, u64 tsc);

/* The host's wall clock in Unix seconds (its RTC read at boot, plus the time
 * since), 0 when it could not be read. */
u64 vmm_wallclock(void);

#endif
