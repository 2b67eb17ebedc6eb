/*
 * AMD-V hardware definitions: the VMCB's intercept and control bits, event
 * injection, the exit information of the intercepts Amber uses and the
 * EXITCODE values, grouped as in APM Vol. 2 Appendix B "Layout of VMCB" and
 * Appendix C "SVM Intercept Exit Codes". Names follow Linux's
 * arch/x86/include/asm/svm.h so a reader can grep either. Pure definitions.
 */
#ifndef AMBER_SVM_DEFS_H
#define AMBER_SVM_DEFS_H

#include "kernel/types.h"

/* Intercept vector 3 (offset 0x0C), APM Table B-1. */
#define INTERCEPT_INTR BIT(0)
#define INTERCEPT_NMI BIT(1)
#define INTERCEPT_SMI BIT(2)
#define INTERCEPT_INIT BIT(3)
#define INTERCEPT_VINTR BIT(4)
#define INTERCEPT_IRET BIT(20)
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
#define INTERCEPT_RDTSCP BIT(7)
#define INTERCEPT_MONITOR BIT(10)
#define INTERCEPT_MWAIT BIT(11)
#define INTERCEPT_MWAIT_COND BIT(12)
#define INTERCEPT_XSETBV BIT(13)

/* TLB_CONTROL (offset 0x5C), APM 15.16.1 "TLB Flush". */
#define TLB_CONTROL_DO_NOTHING 0
#define TLB_CONTROL_FLUSH_ALL_ASID 1

/* V_INTR fields (offset 0x60), APM 15.21.1 "Virtual Interrupt Masking". */
#define V_TPR_MASK 0x0F
#define V_IRQ_MASK BIT(8)
#define V_INTR_PRIO_SHIFT 16
#define V_INTR_PRIO_MASK (0xF << V_INTR_PRIO_SHIFT)
#define V_IGN_TPR_MASK BIT(20)
#define V_INTR_MASKING_MASK BIT(24)
/* V_INTR_VECTOR is the VMCB's byte at 0x64: bits 39:32 of the u64 at 0x60. */
#define V_INTR_VECTOR_SHIFT 32
#define V_INTR_VECTOR_MASK (0xFFULL << V_INTR_VECTOR_SHIFT)

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

#define X86_RFLAGS_IF BIT(9)

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

/* Permission maps: APM 15.10.1 "I/O Permissions Map" (12 KiB) and 15.11 "MSR
 * Intercepts" (8 KiB); a set bit intercepts. */
#define SVM_IOPM_SIZE (3 * PAGE_SIZE)
#define SVM_MSRPM_SIZE (2 * PAGE_SIZE)

/* APM Vol. 2 15.30.5 "TSC Ratio MSR": bits 39:32 integer, 31:0 fraction;
 * 1.0 at reset. */
#define MSR_AMD64_TSC_RATIO 0xc0000104
#define SVM_TSC_RATIO_ONE (1ULL << 32)

#endif
