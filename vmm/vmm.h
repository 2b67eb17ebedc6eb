/*
 * Amber's VMM: VMs, vCPUs, and the interface every hardware backend (VT-x in
 * vmm/vmx/, AMD-V in vmm/svm/) implements. Backends only *enter* the guest and
 * *decode* exits into the neutral struct vm_exit; the emulation of I/O ports,
 * guest-physical accesses, MSRs, CPUID and HLT is written once in vmm/.
 * Everything here runs in host context on the boot CPU, interrupts off.
 */
#ifndef AMBER_VMM_H
#define AMBER_VMM_H

#include "kernel/spinlock.h"
#include "kernel/types.h"
#include "vmm/cpumodel.h"
#include "vmm/dirtylog.h"
#include "vmm/mmio.h"
#include "vmm/vcpu_state.h"

#define VM_MAX 8
#define VM_MAX_VCPUS 8
#define VM_CHUNK_SIZE HUGE_PAGE_SIZE /* guest RAM is allocated in 2 MiB chunks */
#define VDEV_SLOTS 16		     /* device ids a VM can hold (vmm/vdev.h) */

struct vm;
struct vcpu;
struct fastreset_base;
struct hypercall_state;

/* ---- the neutral exit record a backend fills after every VM exit ---------- */
enum vm_exit_kind {
	VMEXIT_NONE,	       /* nothing for generic code to do (handled in backend) */
	VMEXIT_HOST_INTERRUPT, /* a physical interrupt or the slice timer: host's turn */
	VMEXIT_IO,	       /* IN/OUT (string forms included) */
	VMEXIT_MEM,	       /* EPT violation / NPT fault: no RAM at that address */
	VMEXIT_CPUID,
	VMEXIT_MSR_READ,
	VMEXIT_MSR_WRITE,
	VMEXIT_HLT,
	VMEXIT_TRIPLE_FAULT, /* shutdown */
	VMEXIT_VIRT_INSN,    /* VMX/SVM instruction executed by the guest */
	VMEXIT_EXCEPTION,    /* an intercepted guest exception */
	VMEXIT_ENTRY_FAILED, /* the CPU refused the guest state */
	VMEXIT_UNHANDLED,    /* anything else: the guest is stopped with a report */
	VMEXIT_XSETBV,	     /* XSETBV: generic code checks and loads the new XCR0 */
	VMEXIT_INTR_WINDOW,  /* the guest can take an interrupt now (set_windows) */
	VMEXIT_NMI_WINDOW,   /* the guest can take an NMI now (set_windows) */
	VMEXIT_HYPERCALL,    /* VMCALL / VMMCALL: Amber's hypercall (vmm/hypercall.h) */
	VMEXIT_KIND_COUNT,
};

/* Exception vectors, SDM Vol. 3A 6.3 "Sources of Interrupts" (table
 * "Protected-Mode Exceptions and Interrupts"). */
#define X86_TRAP_NMI 2
#define X86_TRAP_BP 3
#define X86_TRAP_OF 4
#define X86_TRAP_UD 6
#define X86_TRAP_DF 8
#define X86_TRAP_GP 13
#define X86_TRAP_PF 14
#define X86_TRAP_AC 17

struct vm_exit {
	enum vm_exit_kind kind;
	u32 raw_reason;	   /* VMX basic exit reason or SVM EXITCODE, for reports */
	u64 qualification; /* VMX exit qualification or SVM EXITINFO1 */
	u64 info2;	   /* SVM EXITINFO2 / VMX guest-linear address, for reports */
	u64 rip;	   /* guest RIP of the exiting instruction */
	u8 insn_len;	   /* its length, so advance_rip() can skip it */
	union {
		struct {
			u16 port;
			u8 size; /* 1, 2 or 4 bytes */
			bool in;
			bool string;
			bool rep;
		} io;
		struct {
			u64 gpa;
			bool write, fetch;
		} mem;
		struct {
			u32 index;
		} msr;
		struct {
			u8 vector;
			bool has_error;
			u32 error_code;
		} exc;
	};
};

/* ---- the backend interface ------------------------------------------------ */

/* The fields of struct vcpu_state that get_field/set_field reach one at a
 * time; CR0 and CR4 are read-only there (their writes exit on VT-x and are
 * finished in the backend). */
enum vcpu_field {
	VCPU_FIELD_CR0,
	VCPU_FIELD_CR4,
	VCPU_FIELD_EFER,
	VCPU_FIELD_PAT,
	VCPU_FIELD_SYSENTER_CS,
	VCPU_FIELD_SYSENTER_ESP,
	VCPU_FIELD_SYSENTER_EIP,
	VCPU_FIELD_STAR,
	VCPU_FIELD_LSTAR,
	VCPU_FIELD_CSTAR,
	VCPU_FIELD_SFMASK,
	VCPU_FIELD_FS_BASE,
	VCPU_FIELD_GS_BASE,
	VCPU_FIELD_KERNEL_GS_BASE,
	VCPU_FIELD_TSC, /* the guest's TSC: the host's (scaled) plus the offset */
	VCPU_FIELD_CR8, /* the TPR as MOV CR8 sees it, 0-15 (vmm/intr.c keeps
			   it equal to the LAPIC's) */
};

/* What decides whether an event can be injected now (intr_state): the
 * blocking bits of struct vcpu_state (VCPU_INTR_STI, _MOV_SS, _NMI) and: */
#define VCPU_INTR_IF BIT(8) /* RFLAGS.IF is set */
#define VCPU_INTR_QUEUED \
	BIT(9) /* an event already waits for the next entry
				   (injected, or re-queued after an exit that
				   interrupted its delivery) */
/* The exits set_windows can ask for. */
#define VCPU_WINDOW_INTR BIT(0) /* VMEXIT_INTR_WINDOW once IF=1, no shadow */
#define VCPU_WINDOW_NMI BIT(1)	/* VMEXIT_NMI_WINDOW once NMIs are unblocked */

struct vcpu_ops {
	const char *name;      /* "VT-x" or "AMD-V" */
	const char *mechanism; /* what it runs guests with: "VT-x with EPT" */
	/* Checks the CPU has everything the backend needs and enables it (VMXON,
	 * EFER.SVME). Returns 0, or a negative errno after printing what is
	 * missing; on failure the CPU is left as it was found. */
	int (*hw_enable)(void);
	/* Turns virtualization on for the calling CPU (VMXON with its own VMXON
	 * region; EFER.SVME with its own host save area), pages kept in
	 * this_cpu()->virt_page[]. hw_enable does it for the boot CPU; vmm_init
	 * asks every other CPU through smp_call. 0 or a negative errno. */
	int (*cpu_enable)(void);
	/* Builds the EPT/NPT for vm's RAM (vm->chunks); devices stay unmapped so
	 * accesses to them exit. */
	int (*vm_init)(struct vm *vm);
	void (*vm_destroy)(struct vm *vm);
	/* Prepares the VMCS/VMCB; vcpu_set_state() then loads the entry state. */
	int (*vcpu_init)(struct vcpu *v);
	void (*vcpu_destroy)(struct vcpu *v);
	/* Enters the guest and returns after the next VM exit, decoded into *exit.
	 * v->regs hold all 16 general registers on both sides of the call.
	 * Returns 0, or a negative errno when the entry itself failed (exit->kind
	 * is then VMEXIT_ENTRY_FAILED with the CPU's reason). */
	int (*vcpu_run)(struct vcpu *v, struct vm_exit *exit);
	/* Architectural state in and out (everything but regs[], which live in
	 * v). Each of the four calls below returns 0, or a negative errno when
	 * the backend could not reach the vCPU's VMCS/VMCB (then *s, or the
	 * vCPU, is unchanged and not to be trusted). */
	int (*get_state)(struct vcpu *v, struct vcpu_state *s);
	int (*set_state)(struct vcpu *v, const struct vcpu_state *s);
	/* Moves RIP past the instruction that caused `exit`. */
	int (*advance_rip)(struct vcpu *v, const struct vm_exit *exit);
	/* Queues an event for the next entry, replacing what was queued: a
	 * hardware exception (#GP for a refused MSR, a reflected fault), an
	 * external interrupt or an NMI (ev->type VCPU_EVENT_*). The error code
	 * is delivered exactly where the CPU would push one. */
	int (*inject_event)(struct vcpu *v, const struct vcpu_event *ev);
	/* The interruptibility now: VCPU_INTR_* bits (the guest's STI/MOV SS
	 * shadow and NMI blocking, RFLAGS.IF, an event queued). */
	int (*intr_state)(struct vcpu *v, u32 *state);
	/* Asks for exits as soon as the guest can take an interrupt or an NMI
	 * (VCPU_WINDOW_* bits); 0 cancels. Holds until changed. */
	int (*set_windows)(struct vcpu *v, u32 windows);
	/* Reads guest RIP cheaply for reports: 0, or a negative errno. */
	int (*read_rip)(struct vcpu *v, u64 *rip);
	/* One field of the state without moving the rest (the exit path's
	 * accessors: an emulated RDMSR/WRMSR, CPUID, the PIT's clock). Return 0,
	 * -EINVAL for a field that cannot be set this way, or the backend's
	 * errno as get_state does. Setting the TSC is the only call that
	 * touches the TSC offset. */
	int (*get_field)(struct vcpu *v, enum vcpu_field f, u64 *val);
	int (*set_field)(struct vcpu *v, enum vcpu_field f, u64 val);
	/* Makes v's TSC run at guest_hz/host_hz of the host's (equal rates: 1:1,
	 * scaling off), its value unchanged at the switch: VT-x's TSC multiplier,
	 * AMD-V's TSC ratio MSR (vmm/vtsc.h has the shared arithmetic). Returns
	 * 0, -EOPNOTSUPP where the CPU cannot scale, -ERANGE for a ratio past
	 * what it holds (both leave v as it was), or the backend's errno. */
	int (*set_tsc_ratio)(struct vcpu *v, u64 guest_hz, u64 host_hz);
	/* Optional (may be NULL): the name of a raw exit reason for reports, e.g.
	 * "NPF" or "EPT violation". */
	const char *(*exit_name)(u32 raw_reason);
	/* Dirty tracking of vm's RAM (vmm/dirtylog.h), may be NULL. dirty_start:
	 * RAM mapped in 4 KiB pages, all clean, every guest write noticed from
	 * now on (0, -ENOMEM or -EOPNOTSUPP, nothing changed on failure);
	 * dirty_harvest: ORs the pages written since the start or the last
	 * harvest into bits (bit p: gpa p * 4 KiB) and makes them clean again,
	 * 0 or a negative errno; dirty_stop: tracking off, 2 MiB mappings back.
	 * The TLB flushes each needs are the backend's. */
	int (*dirty_start)(struct vm *vm);
	int (*dirty_harvest)(struct vm *vm, u64 *bits);
	void (*dirty_stop)(struct vm *vm);
	/* RAM that arrives after the VM starts (vmm/pager.h), may be NULL.
	 * ram_unmap: every RAM page unmapped, so that each access to one exits
	 * as VMEXIT_MEM; ram_map: the pages of [gpa, gpa + size), within one
	 * 2 MiB block, mapped again to their RAM (those mapped stay). Each
	 * returns 0 or a negative errno; the TLB flushes are the backend's. */
	int (*ram_unmap)(struct vm *vm);
	int (*ram_map)(struct vm *vm, u64 gpa, u64 size);
	/* INIT and STARTUP (vmm/startup.c builds s): loads s, the state an INIT
	 * leaves the processor in or the one a STARTUP IPI starts it in, like
	 * set_state, and drops what the processor forgets at INIT beyond s:
	 * the event queued for the next entry, the interrupt and NMI windows,
	 * the guest's TLB entries (SDM Vol. 3A 9.1.1 "Processor State After
	 * Reset"; APM Vol. 2 16.3.2 "INIT"). 0, or the backend's errno with
	 * the vCPU not to be trusted. */
	int (*reset_state)(struct vcpu *v, const struct vcpu_state *s);
	/* The CPU that calls it gives v up: nothing of v stays loaded in it (VT-x
	 * VMCLEARs the VMCS, so that another CPU may load it; both backends
	 * write back the registers they switch by hand), so that v can run on,
	 * or be read by, another CPU. May be NULL. */
	void (*vcpu_put)(struct vcpu *v);
};

extern const struct vcpu_ops *vcpu_ops; /* chosen once at boot from CPUID */

/*
 * One field of struct vcpu_state in both directions, for the backends'
 * state transfer (one function serves get_state and set_state, so the two
 * cannot drift apart): with `out` set the live value is copied into the
 * record, with `in` set the record is copied into the live value. Exactly one
 * of out and in is non-NULL (both are tested, so that neither is ever
 * dereferenced unchecked).
 */
#define VCPU_XFER(out, in, live, field) \
	((out) ? (void)((out)->field = (live)) : (in) ? (void)((live) = (in)->field) : (void)0)
/* The same for a field that changes on the way or is reached through an
 * accessor: `get` is the record's value, `set` the statement that loads the
 * record's value (in->field) into the live state. */
#define VCPU_XFER_WITH(out, in, field, get, set) \
	do { \
		if (out) \
			(out)->field = (get); \
		else if (in) \
			set; \
	} while (0)

/* ---- VMs and vCPUs -------------------------------------------------------- */
enum vm_state {
	VM_CREATED, /* built, never started */
	VM_RUNNING, /* scheduled */
	VM_PAUSED,  /* every vCPU out of guest mode, state complete in VMCS/VMCB + regs */
	VM_HALTED,  /* every vCPU executed HLT with nothing to wake it */
	VM_EXITED,  /* the guest wrote its exit code to port 0xF4 */
	VM_STOPPED, /* stopped by Amber after a fault; see vm->stop_reason */
	VM_OFF,	    /* the guest powered the machine off (ACPI S5) */
};
/* How vm->stop_reason of a VM_OFF begins (a snapshot keeps it as a stop
 * reason: snapshot/restore.c tells the two apart by it). */
#define VM_OFF_REASON "the guest powered off"

struct vcpu {
	struct vm *vm;
	int id;
	/* Where it runs (vmm/vcpu.c "placement"): cpu, its home CPU (vm create
	 * pin=; 0, the boot CPU, by default); on_cpu, the CPU that has it now
	 * (running a slice or looking whether it can), -1 for none; changed
	 * under the scheduler's lock. */
	int cpu;
	int on_cpu;
	u64 regs[NR_VCPU_REGS];
	bool halted;
	/* In the INIT state, waiting for a STARTUP IPI (vmm/startup.c): not
	 * run until one comes. The LAPIC's INIT and STARTUP flags say what
	 * arrived; this says the INIT state is loaded. */
	bool wait_sipi;
	bool kicked; /* something to take may have arrived (vmm/intr.h) */
	/* Host TSC ticks the next entry may run before a device deadline is
	 * due (~0: none); a backend with a guest timer of its own (the
	 * VMX-preemption timer) exits by then, the other relies on the host
	 * timer that vmm/intr.c arms. */
	u64 run_budget;
	u8 cr8; /* the TPR the backend holds (vmm/intr.c) */
	/* What vmm/intr.c's last full look before an entry found, so that the
	 * entries after plain exits (CPUID, XSETBV, an exception) can skip it:
	 * intr_quiet, no NMI and no vector waited (the LAPIC's IRR empty), so
	 * nothing was injected and no window asked for; intr_until, the host TSC by which the next device deadline
	 * comes (~0: none); intr_timer, the host timer's count then.
	 * intr_dirty says that something may have changed since; cr8_stale
	 * that the guest's CR8 has not been read since the last exit. */
	bool intr_dirty;
	bool intr_quiet;
	bool cr8_stale;
	u64 intr_until;
	u64 intr_timer;
	u64 wake_at; /* halted: ticks() when a device deadline may wake it */
	void *arch;  /* backend's per-vCPU data (VMCS or VMCB and friends) */
	u8 *fpu;     /* XSAVE area of this vCPU while another one owns the FPU */
	u64 exits;
	u64 exit_counts[VMEXIT_KIND_COUNT];
	/* Generic bookkeeping (vmm/vcpu.c). */
	u64 xcr0;	/* the guest's XCR0 (valid in hardware while it owns the FPU) */
	u64 frozen_tsc; /* guest TSC at the last pause, restored on resume */
	u64 exceptions; /* intercepted guest exceptions in the current storm window */
	u64 exc_window; /* ticks() when that window began */
};

struct vm {
	int id; /* 1-based, as the shell shows it */
	/* Held by the CPU that handles an exit of one of its vCPUs, from the
	 * exit to the next entry (never in guest mode): its devices, every
	 * vCPU's LAPIC and the fields below (docs/architecture.md "Locks"). */
	spinlock_t lock;
	char image[32]; /* name of the guest image it was created from */
	char cmdline[128];
	enum vm_state state;
	char stop_reason[160];
	int exit_code;
	u64 mem_size; /* bytes of guest RAM, a multiple of 4 KiB */
	u64 nchunks;
	u64 *chunks; /* host-physical address of each 2 MiB chunk */
	int nvcpus;
	struct vcpu *vcpus[VM_MAX_VCPUS];
	void *arch;	       /* backend's per-VM data (EPT/NPT root) */
	void *dev[VDEV_SLOTS]; /* each emulated device's state (vmm/vdev.h) */
	bool console_attached;
	u64 created_ticks;
	/* Added by the VMM core (vmm/vmm.c). */
	u64 io_unemulated;	 /* accesses to ports no device claims: an I/O storm stops the VM */
	u16 warned_ports[8];	 /* unemulated ports already reported once (0: free slot) */
	u64 guest_tsc_hz;	 /* the guest's TSC rate: the host's, or its image's */
	u8 tsc_mode;		 /* enum vtsc_mode: how the TSC gets that rate (vmm/vtsc.h) */
	u64 started_ticks;	 /* when `vm start` ran, 0 before */
	char image_cmdline[128]; /* the cmdline the image came with */
	struct mmio_bus mmio;	 /* device ranges (vmm/mmio.c); no RAM behind them */
	u32 fail_state;		 /* test hook (vm fail-state): state accesses left to fail */
	u64 next_deadline;	 /* the devices' next deadline, guest TSC (vmm/intr.c) */
	char boot_layout[80];	 /* a Linux guest's layout for `vm info`, else "" */
	char initrd[32];	 /* a Linux guest's initrd image, else "" (reset reloads it) */
	/* Machine reset (vmm/vmm.c): a device asked for it on this exit; the exit
	 * path carries it out once the instruction is complete. */
	bool reset_pending;
	char reset_why[48];	/* "port 0xcf9", for the message */
	u64 resets;		/* resets carried out since the VM was created */
	struct dirty_log dirty; /* pages written while tracking (vmm/dirtylog.c) */
	/* Fast reset and the guest's hypercalls (vmm/fastreset.h, hypercall.h). */
	struct fastreset_base *base; /* the base a reset returns to, NULL: none */
	bool hypercalls;	     /* the guest may use them (vm create hypercalls) */
	struct hypercall_state *hc;  /* their host side, NULL when not allowed */
	struct pager *pager;	     /* RAM still arriving (vmm/pager.h), else NULL */
	u32 cpu_model;		     /* enum cpu_model_id (vm create cpu=) */
	struct cpuid_features cpuid; /* the CPUID features its guest is shown */
	struct vm *replaces;	     /* hidden: the VM it takes the place of (vm_publish) */
};

void vmm_init(void);
/* NULL when a backend runs guests, else one line saying why none can. */
const char *vmm_unavailable_reason(void);
/* One line for `cpu`: the backend in use and what it runs guests with, or
 * why there is none. */
void vmm_describe_backend(char *buf, size_t len);
/* The CPUID features Amber offers a guest on this CPU (the host model). */
void vmm_cpuid_offered(struct cpuid_features *f);
/* For `cpu`: the features offered and which models this CPU can give. */
void vmm_print_cpu_models(void);
/* How many of model's features this CPU lacks (0 for host), named in
 * `missing`. */
int vmm_cpu_model_missing(u32 model, char *missing, size_t len);
/* Gives vm the CPU model `model` (vmm/cpumodel.h): its guest is shown the
 * model's features that this CPU offers. Returns 0, or -EOPNOTSUPP with the
 * model's features this CPU lacks named in `missing` (nothing changed). */
int vm_set_cpu_model(struct vm *vm, u32 model, char *missing, size_t len);
/* Creates a VM from a guest image with `mem` bytes of RAM; returns it or NULL
 * after printing why. The guest is loaded and its vCPU 0 set to its entry
 * state: Multiboot's, or for a Linux bzImage the 32-bit boot protocol's with
 * the image named `initrd` (NULL for none) as its initrd. */
struct vm *vm_create(const char *image, u64 mem, int ncpus, const char *cmdline,
		     const char *initrd);
/* Creates an empty VM (vCPUs, and RAM that is NOT zeroed) outside the VM
 * table: `vm list` does not show it, nothing can start or schedule it. The
 * restore path fills every page of its RAM, then vm_publish() enters it in the
 * table (0, or -EBUSY if its slot was taken meanwhile); vm_destroy() removes
 * it unseen. With `replaces` (a VM in the table, else NULL) it takes that
 * VM's id, and vm_publish() destroys that VM as it enters the new one: until
 * then the old VM is untouched, so a failed restore leaves it as it was. */
struct vm *vm_create_hidden(const char *image, u64 mem, int ncpus, struct vm *replaces);
int vm_publish(struct vm *vm);
void vm_destroy(struct vm *vm);
struct vm *vm_get(int id);
/* The VM a shell argument names ("3"), or NULL after the shell's error. */
struct vm *vm_from_arg(const char *arg);
/* Starts a VM in VM_CREATED (after vm_create, or vm_create_hidden and a restored
 * state): VM_RUNNING, scheduled from then on. */
int vm_start(struct vm *vm);
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
const char *vm_state_name(enum vm_state st);
/* Name of an exit kind as `vm info` shows it ("io", "cpuid", ...). */
const char *vm_exit_kind_name(enum vm_exit_kind kind);

/* The complete architectural state of a vCPU that is out of guest mode (paused
 * VM, or between exits): the backend's part, the general registers, the FPU
 * (XSAVE area and XCR0) and the halted flag. The snapshot code uses these.
 * Each returns 0, or the backend's negative errno (nothing was read or set). */
int vcpu_get_state(struct vcpu *v, struct vcpu_state *s);
int vcpu_set_state(struct vcpu *v, const struct vcpu_state *s);
/* Whether this CPU can run a vCPU in state s, saved on another machine: the
 * CR4 bits and XCR0 components it has enabled exist here. Returns 0, or
 * -EOPNOTSUPP with *what naming the first one missing ("CR4.PCIDE (PCID)"). */
int vcpu_state_fits(const struct vcpu_state *s, const char **what);
/* Stops a VM for good with a message (misbehaving guest). */
void vm_stop(struct vm *vm, const char *fmt, ...) __printf(2, 3);
/* The guest powered its machine off (ACPI S5): VM_OFF, with a message. */
void vm_power_off(struct vm *vm, const char *how);
/* A device's reset line (port 0xCF9, the 8042, port 0x92): the reset happens
 * when the instruction that asked for it has completed (vm_reset_pending). */
void vm_request_reset(struct vm *vm, const char *how);
/* Carries out a requested reset on the exit path of v: every device back to
 * power-on, the image loaded again, vCPU 0 at its entry and the others
 * waiting for a STARTUP IPI, the guest TSC going on. A VM whose image this Amber does not have is stopped instead. Returns
 * true when a reset was pending (the exit then ends the slice). */
bool vm_reset_pending(struct vcpu *v);

/* Guest-physical to host-virtual, NULL outside RAM. Valid for `len` bytes only
 * within one 2 MiB chunk: use vm_copy_{to,from}_guest for longer ranges. */
void *gpa_to_hva(struct vm *vm, u64 gpa, u64 len);
int vm_copy_to_guest(struct vm *vm, u64 gpa, const void *src, u64 len);
int vm_copy_from_guest(struct vm *vm, void *dst, u64 gpa, u64 len);

/* The scheduler: runs guests for one time slice; the shell's idle hook. */
void vmm_idle(void);
/* The shell's hold on the guests that run on other CPUs (vmm/vcpu.c): with
 * on = true, every AP leaves guest mode (a kick each, a bounded wait; a CPU
 * that does not answer is reported and left out) and enters none until the
 * matching false. Nests. Boot CPU. Returns 0 or -ETIMEDOUT. */
int vmm_hold(bool on);
/* The CPU a vCPU runs on now: its home, or the boot CPU (vmm/vcpu.c). */
int vcpu_runs_on(struct vcpu *v);
/* How many vCPUs of VMs that may still run are placed on CPU `cpu`. */
int vmm_vcpus_placed(int cpu);
/* Default homes for n new vCPUs: spread over the APs that run guests, the
 * least loaded first; all 0 (the boot CPU) when there are none. */
void vmm_place_auto(int n, int *pins);
/* Microseconds the last hold waited for the APs to leave guest mode. */
extern u64 vmm_hold_wait_us;

#endif
