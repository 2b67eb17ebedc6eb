/*
 * Amber's VMM: VMs, vCPUs, and the interface every hardware backend (VT-x in
 * vmm/vmx/, AMD-V in vmm/svm/) implements. Backends only *enter* the guest and
 * *decode* exits into the neutral struct vm_exit; the emulation of I/O ports,
 * guest-physical accesses, MSRs, CPUID and HLT is written once in vmm/.
 * Everything here runs in host context on the boot CPU, interrupts off.
 */
#ifndef AMBER_VMM_H
#define AMBER_VMM_H

#include "kernel/types.h"
#include "vmm/mmio.h"
#include "vmm/vcpu_state.h"

#define VM_MAX 8
#define VM_MAX_VCPUS 8
#define VM_CHUNK_SIZE HUGE_PAGE_SIZE /* guest RAM is allocated in 2 MiB chunks */

struct vm;
struct vcpu;

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
	VMEXIT_KIND_COUNT,
};

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
struct vcpu_ops {
	const char *name; /* "VT-x" or "AMD-V" */
	/* Checks the CPU has everything the backend needs and enables it (VMXON,
	 * EFER.SVME). Returns 0, or -ENODEV after printing what is missing. */
	int (*hw_enable)(void);
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
	/* Architectural state in and out (everything but regs[], which live in v). */
	void (*get_state)(struct vcpu *v, struct vcpu_state *s);
	void (*set_state)(struct vcpu *v, const struct vcpu_state *s);
	/* Moves RIP past the instruction that caused `exit`. */
	void (*advance_rip)(struct vcpu *v, const struct vm_exit *exit);
	/* Queues an exception for the next entry (#GP for a refused MSR, #UD for
	 * VMX/SVM instructions). */
	void (*inject_exception)(struct vcpu *v, u8 vector, bool has_error, u32 error_code);
	/* Reads guest RIP/RFLAGS/CR0 cheaply for reports. */
	u64 (*read_rip)(struct vcpu *v);
	/* Optional (may be NULL): the name of a raw exit reason for reports, e.g.
	 * "NPF" or "EPT_VIOLATION". */
	const char *(*exit_name)(u32 raw_reason);
};

extern const struct vcpu_ops vmx_ops, svm_ops;
extern const struct vcpu_ops *vcpu_ops; /* chosen once at boot from CPUID */

/* ---- VMs and vCPUs -------------------------------------------------------- */
enum vm_state {
	VM_CREATED, /* built, never started */
	VM_RUNNING, /* scheduled */
	VM_PAUSED,  /* every vCPU out of guest mode, state complete in VMCS/VMCB + regs */
	VM_HALTED,  /* every vCPU executed HLT with nothing to wake it */
	VM_EXITED,  /* the guest wrote its exit code to port 0xF4 */
	VM_STOPPED, /* stopped by Amber after a fault; see vm->stop_reason */
};

struct vcpu {
	struct vm *vm;
	int id;
	u64 regs[NR_VCPU_REGS];
	bool halted;
	void *arch; /* backend's per-vCPU data (VMCS or VMCB and friends) */
	u8 *fpu;    /* XSAVE area of this vCPU while another one owns the FPU */
	u64 exits;
	u64 exit_counts[VMEXIT_KIND_COUNT];
	/* Generic bookkeeping (vmm/vcpu.c). */
	u64 xcr0;	/* the guest's XCR0 (valid in hardware while it owns the FPU) */
	u64 frozen_tsc; /* guest TSC at the last pause, restored on resume */
	u64 exceptions; /* intercepted guest exceptions in the current storm window */
	u64 exc_window; /* ticks() when that window began */
};

/* Emulated COM1 (vmm/dev_uart.c). */
struct vuart {
	u8 ier, lcr, mcr, scr, dll, dlm;
	u8 fcr; /* FIFO control as last written (IIR shows FIFOs on) */
	char line[128];
	u32 line_len;
	u8 rx[64];
	u32 rx_head, rx_tail;
};

/* The legacy PC platform polling guests expect (vmm/dev_legacy.c). Times are
 * in guest TSC cycles; the PIT runs at 1.193182 MHz of guest time. */
struct vpit_channel {
	u8 mode;     /* 8254 mode 0-5 */
	u8 access;   /* 1 lobyte, 2 hibyte, 3 lobyte then hibyte */
	u8 write_hi; /* next write of an access-3 counter is the high byte */
	u8 read_hi;  /* next read of an access-3 counter is the high byte */
	u8 latched;  /* a latch command froze `latch` */
	u8 armed;    /* a count was written */
	u16 latch;
	u32 reload;    /* the count written (0 means 65536) */
	u64 start_tsc; /* guest TSC when counting started */
};

struct vplatform {
	struct vpit_channel pit[3];
	u8 port61; /* bit 0 gate of channel 2, bit 1 speaker data */
	u8 pic_imr[2];
	u8 kbd_cmd;    /* 8042 command waiting for its data byte (0x60), or 0 */
	u8 kbd_ccb;    /* 8042 controller command byte */
	u8 kbd_out[4]; /* bytes the 8042 has for the guest (port 0x60) */
	u8 kbd_out_len;
	u8 post; /* last POST code written to port 0x80 */
	u8 cmos_index;
	u32 pci_addr;  /* last value written to 0xCF8 */
	u8 crtc_index; /* VGA CRT controller (0x3D4/0x3D5): cursor and friends */
	u8 crtc[32];
	u8 vga_misc; /* VGA miscellaneous output (0x3C2 write, 0x3CC read) */
};

struct vm {
	int id;		/* 1-based, as the shell shows it */
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
	void *arch; /* backend's per-VM data (EPT/NPT root) */
	struct vuart uart;
	bool console_attached;
	u64 created_ticks;
	/* Added by the VMM core (vmm/vmm.c). */
	struct vplatform platform;
	u64 io_unemulated;	 /* accesses to ports no device claims: an I/O storm stops the VM */
	u16 warned_ports[8];	 /* unemulated ports already reported once (0: free slot) */
	u64 guest_tsc_hz;	 /* the guest's TSC frequency (the host's) */
	u64 started_ticks;	 /* when `vm start` ran, 0 before */
	char image_cmdline[128]; /* the cmdline the image came with */
	struct mmio_bus mmio;	 /* device ranges (vmm/mmio.c); no RAM behind them */
};

void vmm_init(void);
/* NULL when a backend runs guests, else one line saying why none can. */
const char *vmm_unavailable_reason(void);
/* Creates a VM from a guest image with `mem` bytes of RAM; returns it or NULL
 * after printing why. The guest is loaded and its vCPU 0 set to the Multiboot
 * entry state. */
struct vm *vm_create(const char *image, u64 mem, int ncpus, const char *cmdline);
/* Creates an empty VM (RAM and vCPUs, nothing loaded): the restore path. */
struct vm *vm_create_empty(const char *image, u64 mem, int ncpus);
void vm_destroy(struct vm *vm);
struct vm *vm_get(int id);
/* Starts a VM in VM_CREATED (after vm_create, or vm_create_empty and a restored
 * state): VM_RUNNING, scheduled from then on. */
int vm_start(struct vm *vm);
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
const char *vm_state_name(enum vm_state st);
/* Name of an exit kind as `vm info` shows it ("io", "cpuid", ...). */
const char *vm_exit_kind_name(enum vm_exit_kind kind);

/* The complete architectural state of a vCPU that is out of guest mode (paused
 * VM, or between exits): the backend's part, the general registers, the FPU
 * (XSAVE area and XCR0) and the halted flag. The snapshot code uses these. */
void vcpu_get_state(struct vcpu *v, struct vcpu_state *s);
void vcpu_set_state(struct vcpu *v, const struct vcpu_state *s);
/* Stops a VM for good with a message (misbehaving guest). */
void vm_stop(struct vm *vm, const char *fmt, ...) __printf(2, 3);

/* Guest-physical to host-virtual, NULL outside RAM. Valid for `len` bytes only
 * within one 2 MiB chunk: use vm_copy_{to,from}_guest for longer ranges. */
void *gpa_to_hva(struct vm *vm, u64 gpa, u64 len);
int vm_copy_to_guest(struct vm *vm, u64 gpa, const void *src, u64 len);
int vm_copy_from_guest(struct vm *vm, void *dst, u64 gpa, u64 len);

/* The scheduler: runs guests for one time slice; the shell's idle hook. */
void vmm_idle(void);

#endif
