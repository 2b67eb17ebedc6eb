/*
 * Private to the VT-x backend (the .c files of vmm/vmx/): per-VM and per-vCPU data, the
 * controls chosen at VMXON, and the helpers the backend's files share. Host
 * context in VMX root operation, boot CPU, interrupts off.
 */
#ifndef AMBER_VMX_H
#define AMBER_VMX_H

#include "kernel/types.h"
#include "vmm/vmm.h"
#include "vmm/vmx/ept.h"

/* What hw_enable() found and chose, used for every VMCS. */
struct vmx_caps {
	/* VMCS revision identifier, IA32_VMX_BASIC bits 30:0. */
	u32 revision;
	/* Control fields; VM_ENTRY_IA32E_MODE is set per guest on top. */
	u32 pin, proc, proc2, exit, entry;
	u64 cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
	/* Guest/host masks: the CR0/CR4 bits VMX pins. */
	u64 cr0_mask, cr4_mask;
	u64 ept_vpid_cap;
	bool vpid;	    /* VPIDs in use (with a usable INVVPID) */
	bool preempt_timer; /* VMX-preemption timer in use */
	bool lma_saved;	    /* exits store EFER.LMA in VM_ENTRY_IA32E_MODE */
	bool vnmi;	    /* virtual NMIs: NMI blocking tracked, NMI-window exits */
	bool tsc_scaling;   /* "use TSC scaling" may be set (per vCPU, when asked) */
	bool pml;	    /* "enable PML" may be set (while dirty tracking runs) */
	u32 preempt_slice;  /* timer value loaded before each entry */
	u8 preempt_rate;    /* the timer counts once every 2^rate TSC ticks */
};
extern struct vmx_caps vmx_caps;

struct vmx_vm {
	struct ept ept;
	u64 eptp;
	bool pml; /* dirty tracking runs with page-modification logging */
};

/* Guest state that the VMCS does not hold. It lives in the CPU while this
 * vCPU "owns" it (vmx_cpu_owner), else here: the host never uses it, so it
 * is switched only when another vCPU runs. */
struct vmx_guest_regs {
	u64 cr2, dr[4], dr6;
	u64 star, lstar, cstar, sfmask, kernel_gs_base;
};

struct vmx_vcpu {
	u64 vmcs_pa;	/* the VMCS region, 4 KiB */
	bool launched;	/* VMLAUNCH done since the last VMCLEAR: use VMRESUME */
	int active_cpu; /* the CPU it is active on (VMPTRLD), -1: cleared */
	int host_cpu;	/* the CPU its host state is for (its TLB entries), -1: none */
	u16 vpid;
	u64 cr8;	    /* the guest's TPR as MOV CR8 sees it (CR8 accesses exit) */
	bool reload_pdptrs; /* set_state ran: PAE PDPTEs to be read before entry */
	u32 windows;	    /* VCPU_WINDOW_* requested (set_windows) */
	u64 tsc_mult;	    /* TSC multiplier, 16.48 fixed point; 0: no scaling */
	u64 pml_pa;	    /* page-modification log, 4 KiB (vmx_dirty.c); 0: none */
	struct vmx_guest_regs g;
};

/* The entry stub, vmx_entry.asm: enters the guest with v->regs (RSP excepted,
 * it is GUEST_RSP) and stores them back after the exit. Returns 0 after a VM
 * exit, 1 on VMfailValid (see VM_INSTRUCTION_ERROR), 2 on VMfailInvalid. */
int vmx_vcpu_enter(struct vcpu *v, int launched);
void vmx_vmexit_entry(void); /* HOST_RIP */

/* vmx.c */
int vmx_load_vmcs(struct vmx_vcpu *x);
/* Drops the CPU's cached translations of one EPT. */
void vmx_flush_ept(u64 eptp);
void vmx_set_entry_ia32e(bool on);

/* vmx_pager.c: the vcpu_ops ram_* calls (vmm/vmm.h). */
int vmx_ram_unmap(struct vm *vm);
int vmx_ram_map(struct vm *vm, u64 gpa, u64 size);

/* vmx_state.c */
void vmx_get_state(struct vcpu *v, struct vcpu_state *s);
void vmx_set_state(struct vcpu *v, const struct vcpu_state *s);
int vmx_get_field(struct vcpu *v, enum vcpu_field f, u64 *val);
int vmx_set_field(struct vcpu *v, enum vcpu_field f, u64 val);
int vmx_set_tsc_ratio(struct vcpu *v, u64 guest_hz, u64 host_hz);
void vmx_own_cpu_regs(struct vcpu *v);
void vmx_load_pdptrs(struct vcpu *v);
void vmx_release_cpu_regs(struct vcpu *v);
void vmx_put_cpu_regs(struct vcpu *v);
u64 vmx_read_cr0(void);
u64 vmx_read_cr4(void);
/* Guest writes of CR0/CR3/CR4 as the guest sees them: return 0 or -EINVAL
 * when the value would #GP on real hardware. */
int vmx_write_cr0(struct vcpu *v, u64 val);
int vmx_write_cr3(struct vcpu *v, u64 val);
int vmx_write_cr4(struct vcpu *v, u64 val);
void vmx_inject_event(u32 type, u8 vector, bool has_error, u32 error_code, u32 insn_len);

/* vmx_dirty.c: the vcpu_ops dirty_* calls (vmm/vmm.h). */
int vmx_dirty_start(struct vm *vm);
int vmx_dirty_harvest(struct vm *vm, u64 *bits);
/* A page-modification-log-full exit of v (its VMCS loaded): the log goes to
 * the dirty log's blocks and starts again. */
void vmx_dirty_pml_full(struct vcpu *v);
void vmx_dirty_stop(struct vm *vm);

/* vmx_exit.c. VMX_EXIT_VMFAIL is the raw_reason reported when VMLAUNCH or
 * VMRESUME itself failed (no VM exit happened); qualification then holds the
 * VM-instruction error. */
#define VMX_EXIT_VMFAIL 0xffffffffU
int vmx_decode_exit(struct vcpu *v, struct vm_exit *exit);
const char *vmx_exit_reason_name(u32 reason);
const char *vmx_insn_error_name(u32 error);

#endif
