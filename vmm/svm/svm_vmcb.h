/*
 * The AMD-V Virtual Machine Control Block: control area (intercepts, exit
 * information, nested paging) and state-save area (the guest's registers).
 * Layout and names from APM Vol. 2 Appendix B "Layout of VMCB" (Tables B-1
 * "VMCB Layout, Control Area" and B-2 "VMCB Layout, State Save Area") and
 * Linux's arch/x86/include/asm/svm.h. Pure data, no code.
 */
#ifndef AMBER_SVM_VMCB_H
#define AMBER_SVM_VMCB_H

#include "kernel/types.h"

/* Intercept vector 3 (offset 0x0C), APM Table B-1. */
#define INTERCEPT_INTR BIT(0)
#define INTERCEPT_NMI BIT(1)
#define INTERCEPT_SMI BIT(2)
#define INTERCEPT_INIT BIT(3)
#define INTERCEPT_CPUID BIT(18)
#define INTERCEPT_INVD BIT(22)
#define INTERCEPT_HLT BIT(24)
#define INTERCEPT_INVLPGA BIT(26)
#define INTERCEPT_IOIO_PROT BIT(27)
#define INTERCEPT_MSR_PROT BIT(28)
#define INTERCEPT_SHUTDOWN BIT(31)
/* Intercept vector 4 (offset 0x10). */
#define INTERCEPT_VMRUN BIT(0)
#define INTERCEPT_VMMCALL BIT(1)
#define INTERCEPT_VMLOAD BIT(2)
#define INTERCEPT_VMSAVE BIT(3)
#define INTERCEPT_STGI BIT(4)
#define INTERCEPT_CLGI BIT(5)
#define INTERCEPT_SKINIT BIT(6)
#define INTERCEPT_MONITOR BIT(10)
#define INTERCEPT_MWAIT BIT(11)
#define INTERCEPT_MWAIT_COND BIT(12)
#define INTERCEPT_XSETBV BIT(13)

/* TLB_CONTROL (offset 0x5C), APM 15.16.1 "TLB Flush". */
#define TLB_CONTROL_DO_NOTHING 0
#define TLB_CONTROL_FLUSH_ALL_ASID 1

/* V_INTR fields (offset 0x60), APM 15.21.1 "Virtual Interrupt Masking". */
#define V_TPR_MASK 0x0F
#define V_INTR_MASKING_MASK BIT(24)

/* Guest interrupt state (offset 0x68). */
#define SVM_INTERRUPT_SHADOW_MASK BIT(0)

/* NP_ENABLE (offset 0x90), APM 15.25.3 "Enabling Nested Paging". */
#define SVM_NESTED_CTL_NP_ENABLE BIT(0)

/* EVENTINJ and EXITINTINFO, APM 15.20 "Event Injection". */
#define SVM_EVTINJ_VEC_MASK 0xFF
#define SVM_EVTINJ_TYPE_SHIFT 8
#define SVM_EVTINJ_TYPE_MASK (7 << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_INTR (0 << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_NMI (2 << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_EXEPT (3 << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_SOFT (4 << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_VALID_ERR BIT(11)
#define SVM_EVTINJ_VALID BIT(31)

/* EXITINFO1 of an IOIO intercept, APM 15.10.2 "IN and OUT Behavior". */
#define SVM_IOIO_TYPE_MASK BIT(0) /* 1 = IN */
#define SVM_IOIO_STR_MASK BIT(2)
#define SVM_IOIO_REP_MASK BIT(3)
#define SVM_IOIO_SIZE_SHIFT 4
#define SVM_IOIO_SIZE_MASK (7 << SVM_IOIO_SIZE_SHIFT)
#define SVM_IOIO_PORT_SHIFT 16

/* EXITINFO1 of a nested page fault: a #PF error code, APM 15.25.6 "Nested versus
 * Guest Page Faults, Fault Ordering". */
#define NPF_PRESENT BIT(0)
#define NPF_WRITE BIT(1)
#define NPF_USER BIT(2)
#define NPF_RSVD BIT(3)
#define NPF_FETCH BIT(4)

/* EXITCODE values, APM Appendix C "SVM Intercept Exit Codes". */
#define SVM_EXIT_EXCP_BASE 0x040
#define SVM_EXIT_INTR 0x060
#define SVM_EXIT_NMI 0x061
#define SVM_EXIT_SMI 0x062
#define SVM_EXIT_INIT 0x063
#define SVM_EXIT_VINTR 0x064
#define SVM_EXIT_RDTSC 0x06e
#define SVM_EXIT_CPUID 0x072
#define SVM_EXIT_RSM 0x073
#define SVM_EXIT_IRET 0x074
#define SVM_EXIT_INVD 0x076
#define SVM_EXIT_PAUSE 0x077
#define SVM_EXIT_HLT 0x078
#define SVM_EXIT_INVLPG 0x079
#define SVM_EXIT_INVLPGA 0x07a
#define SVM_EXIT_IOIO 0x07b
#define SVM_EXIT_MSR 0x07c
#define SVM_EXIT_TASK_SWITCH 0x07d
#define SVM_EXIT_FERR_FREEZE 0x07e
#define SVM_EXIT_SHUTDOWN 0x07f
#define SVM_EXIT_VMRUN 0x080
#define SVM_EXIT_VMMCALL 0x081
#define SVM_EXIT_VMLOAD 0x082
#define SVM_EXIT_VMSAVE 0x083
#define SVM_EXIT_STGI 0x084
#define SVM_EXIT_CLGI 0x085
#define SVM_EXIT_SKINIT 0x086
#define SVM_EXIT_RDTSCP 0x087
#define SVM_EXIT_ICEBP 0x088
#define SVM_EXIT_WBINVD 0x089
#define SVM_EXIT_MONITOR 0x08a
#define SVM_EXIT_MWAIT 0x08b
#define SVM_EXIT_MWAIT_COND 0x08c
#define SVM_EXIT_XSETBV 0x08d
#define SVM_EXIT_NPF 0x400
#define SVM_EXIT_ERR 0xffffffffffffffffULL /* VMEXIT_INVALID: VMRUN refused the VMCB */

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

/* Permission maps: APM 15.10.1 "I/O Permissions Map" (12 KiB) and 15.11 "MSR
 * Intercepts" (8 KiB); a set bit intercepts. */
#define SVM_IOPM_SIZE (3 * PAGE_SIZE)
#define SVM_MSRPM_SIZE (2 * PAGE_SIZE)

#endif
