/*
 * The AMD-V Virtual Machine Control Block, control area (intercepts, exit
 * information, nested paging) and state-save area (the guest's registers),
 * pinned to the offsets of APM Vol. 2 Appendix B "Layout of VMCB" (Tables B-1
 * "VMCB Layout, Control Area" and B-2 "VMCB Layout, State Save Area"), and the
 * SVM instructions the backend issues outside the entry stub as C functions.
 * Host context with EFER.SVME set.
 */
#ifndef AMBER_VMCB_H
#define AMBER_VMCB_H

#include "kernel/types.h"
#include "vmm/svm/svm_defs.h"

struct vmcb_control_area {
	u32 intercept_cr;	  /* 0x000: bits 15:0 reads, 31:16 writes of CR0-15 */
	u32 intercept_dr;	  /* 0x004: bits 15:0 reads, 31:16 writes of DR0-15 */
	u32 intercept_exceptions; /* 0x008: one bit per vector */
	u32 intercept_misc1;	  /* 0x00C: INTERCEPT_INTR ... INTERCEPT_SHUTDOWN */
	u32 intercept_misc2;	  /* 0x010: INTERCEPT_VMRUN ... */
	u32 intercept_misc3;	  /* 0x014 */
	u8 reserved_1[0x03c - 0x018];
	u16 pause_filter_thresh; /* 0x03C */
	u16 pause_filter_count;	 /* 0x03E */
	u64 iopm_base_pa;	 /* 0x040 */
	u64 msrpm_base_pa;	 /* 0x048 */
	u64 tsc_offset;		 /* 0x050 */
	u32 asid;		 /* 0x058 */
	u8 tlb_ctl;		 /* 0x05C */
	u8 reserved_2[3];
	u64 int_ctl;	    /* 0x060: V_TPR, V_IRQ, V_INTR_MASKING, ... */
	u64 int_state;	    /* 0x068: interrupt shadow */
	u64 exit_code;	    /* 0x070 */
	u64 exit_info_1;    /* 0x078 */
	u64 exit_info_2;    /* 0x080 */
	u64 exit_int_info;  /* 0x088 */
	u64 nested_ctl;	    /* 0x090: NP_ENABLE */
	u64 avic_vapic_bar; /* 0x098 */
	u64 ghcb_gpa;	    /* 0x0A0 */
	u64 event_inj;	    /* 0x0A8 */
	u64 nested_cr3;	    /* 0x0B0 */
	u64 virt_ext;	    /* 0x0B8: LBR virtualization */
	u32 clean;	    /* 0x0C0: VMCB clean bits */
	u32 reserved_3;
	u64 next_rip; /* 0x0C8: with NRIPS */
	u8 insn_len;  /* 0x0D0: with decode assists */
	u8 insn_bytes[15];
	u8 reserved_4[0x400 - 0x0e0];
} __packed;

struct vmcb_seg {
	u16 selector;
	u16 attrib; /* the packed 12-bit form that struct vcpu_segment uses too */
	u32 limit;
	u64 base;
} __packed;

struct vmcb_save_area {
	struct vmcb_seg es, cs, ss, ds, fs, gs; /* 0x400 */
	struct vmcb_seg gdtr, ldtr, idtr, tr;	/* 0x460 */
	u8 reserved_1[43];
	u8 cpl; /* 0x4CB */
	u32 reserved_2;
	u64 efer; /* 0x4D0 */
	u8 reserved_3[104];
	u64 xss; /* 0x540 */
	u64 cr4; /* 0x548 */
	u64 cr3;
	u64 cr0;
	u64 dr7;
	u64 dr6;
	u64 rflags;
	u64 rip; /* 0x578 */
	u8 reserved_4[88];
	u64 rsp; /* 0x5D8 */
	u64 s_cet, ssp, isst_addr;
	u64 rax;  /* 0x5F8 */
	u64 star; /* 0x600 */
	u64 lstar;
	u64 cstar;
	u64 sfmask;
	u64 kernel_gs_base;
	u64 sysenter_cs;
	u64 sysenter_esp;
	u64 sysenter_eip;
	u64 cr2; /* 0x640 */
	u8 reserved_5[32];
	u64 g_pat; /* 0x668 */
	u64 dbgctl;
	u64 br_from;
	u64 br_to;
	u64 last_excp_from;
	u64 last_excp_to; /* 0x690 */
} __packed;

struct vmcb {
	struct vmcb_control_area control;
	struct vmcb_save_area save;
	u8 reserved[4096 - 0x400 - sizeof(struct vmcb_save_area)];
} __packed;

_Static_assert(sizeof(struct vmcb_control_area) == 0x400, "VMCB control area is 1 KiB");
_Static_assert(__builtin_offsetof(struct vmcb_control_area, iopm_base_pa) == 0x040, "IOPM_BASE_PA");
_Static_assert(__builtin_offsetof(struct vmcb_control_area, exit_code) == 0x070, "EXITCODE");
_Static_assert(__builtin_offsetof(struct vmcb_control_area, event_inj) == 0x0a8, "EVENTINJ");
_Static_assert(__builtin_offsetof(struct vmcb_control_area, next_rip) == 0x0c8, "nRIP");
_Static_assert(__builtin_offsetof(struct vmcb, save) == 0x400, "VMCB save area at 0x400");
_Static_assert(__builtin_offsetof(struct vmcb, save.cpl) == 0x4cb, "CPL");
_Static_assert(__builtin_offsetof(struct vmcb, save.efer) == 0x4d0, "EFER");
_Static_assert(__builtin_offsetof(struct vmcb, save.cr4) == 0x548, "CR4");
_Static_assert(__builtin_offsetof(struct vmcb, save.rip) == 0x578, "RIP");
_Static_assert(__builtin_offsetof(struct vmcb, save.rsp) == 0x5d8, "RSP");
_Static_assert(__builtin_offsetof(struct vmcb, save.rax) == 0x5f8, "RAX");
_Static_assert(__builtin_offsetof(struct vmcb, save.cr2) == 0x640, "CR2");
_Static_assert(__builtin_offsetof(struct vmcb, save.g_pat) == 0x668, "G_PAT");
_Static_assert(sizeof(struct vmcb) == 4096, "a VMCB is one page");

/* VMSAVE stores FS, GS, TR, LDTR (hidden parts too), KernelGsBase, the
 * SYSCALL and SYSENTER MSRs to the page at pa (APM Vol. 2 15.5.2 "VMSAVE and
 * VMLOAD Instructions"). */
static inline void vmsave(u64 pa) { __asm__ volatile("vmsave %%rax" ::"a"(pa) : "memory"); }

#endif
