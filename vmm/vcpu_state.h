/*
 * Architectural state of one vCPU, the same for VT-x and AMD-V. Backends convert
 * to and from their VMCS / VMCB; the snapshot code stores exactly this record,
 * so an image saved on one vendor can later be restored on the other.
 * Pure data: no vendor header may be included here.
 */
#ifndef AMBER_VCPU_STATE_H
#define AMBER_VCPU_STATE_H

#include "kernel/types.h"

enum vcpu_reg {
	REG_RAX,
	REG_RCX,
	REG_RDX,
	REG_RBX,
	REG_RSP,
	REG_RBP,
	REG_RSI,
	REG_RDI,
	REG_R8,
	REG_R9,
	REG_R10,
	REG_R11,
	REG_R12,
	REG_R13,
	REG_R14,
	REG_R15,
	NR_VCPU_REGS,
};

/*
 * A segment register with its hidden part. `attr` uses the 12-bit packed form
 * of the AMD VMCB (APM Vol. 2 15.5.1 "Basic Operation", segment attributes):
 * bits 3:0 type, 4 S, 6:5 DPL, 7 P, 8 AVL, 9 L, 10 D/B, 11 G. A VMX segment
 * marked "unusable" is stored with P = 0 and attr otherwise zero.
 */
struct vcpu_segment {
	u16 selector;
	u16 attr;
	u32 limit;
	u64 base;
};
_Static_assert(sizeof(struct vcpu_segment) == 16, "segment record is 16 bytes");

struct vcpu_dtable {
	u64 base;
	u32 limit;
	u32 reserved;
};

/* An event being delivered to the guest when it was stopped (IDT-vectoring on
 * VT-x, EXITINTINFO / EVENTINJ on AMD-V). type uses the VMX encoding
 * (SDM Vol. 3C 25.8.3 "VM-Entry Controls for Event Injection"): 0 external
 * interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 6 software exception. */
#define VCPU_EVENT_EXTINT 0 /* external interrupt */
#define VCPU_EVENT_NMI 2
#define VCPU_EVENT_EXCEPTION 3 /* hardware exception */

struct vcpu_event {
	u8 valid;
	u8 type;
	u8 vector;
	u8 has_error;
	u32 error_code;
};

/* What the vCPU was doing (struct vcpu_state.halted): running, sitting in
 * HLT, or in the INIT state waiting for a STARTUP IPI (SDM Vol. 3A 11.4.7.3
 * "Local APIC State After an INIT Reset ("Wait-for-SIPI" State)"). */
#define VCPU_RUNS 0
#define VCPU_IN_HLT 1
#define VCPU_WAIT_SIPI 2

#define VCPU_INTR_STI BIT(0)	/* blocking by STI */
#define VCPU_INTR_MOV_SS BIT(1) /* blocking by MOV SS */
#define VCPU_INTR_NMI BIT(3)	/* blocking by NMI */

struct vcpu_state {
	u64 regs[NR_VCPU_REGS];
	u64 rip, rflags;
	u64 cr0, cr2, cr3, cr4, cr8;
	u64 efer, pat;
	struct vcpu_segment es, cs, ss, ds, fs, gs, ldtr, tr;
	struct vcpu_dtable gdtr, idtr;
	u64 sysenter_cs, sysenter_esp, sysenter_eip;
	u64 star, lstar, cstar, sfmask, kernel_gs_base;
	u64 dr0, dr1, dr2, dr3, dr6, dr7;
	u64 tsc;	      /* the guest's TSC value at the moment of the freeze */
	u32 interruptibility; /* VCPU_INTR_* */
	u32 halted;	      /* VCPU_RUNS, VCPU_IN_HLT or VCPU_WAIT_SIPI */
	struct vcpu_event pending;
	/* FPU/SSE/AVX: the standard-format XSAVE area (SDM Vol. 1 13.4 "XSAVE
	 * Area"), xsave_size bytes; xcr0 says which components it holds. */
	u64 xcr0;
	u32 xsave_size;
	u32 reserved;
	u8 xsave[4096] __aligned(64);
};

#endif
