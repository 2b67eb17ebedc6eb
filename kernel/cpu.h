/*
 * What the CPU offers, gathered once at boot. Reports exactly what
 * virtualization the machine has, so the VMM picks a backend and the `cpu`
 * command can say why.
 */
#ifndef AMBER_CPU_H
#define AMBER_CPU_H

#include "kernel/types.h"

struct cpu_features {
	char vendor[13];
	char brand[49];
	u32 family, model, stepping;
	u32 max_leaf, max_ext_leaf;
	u8 phys_addr_bits;
	bool is_intel, is_amd;
	bool hypervisor;    /* running under another hypervisor */
	char hv_vendor[13]; /* its CPUID 0x40000000 signature, or "" */
	bool tsc_invariant;
	bool pdpe1gb, nx, xsave, avx, fxsr;
	bool sse42; /* the CRC32 instruction (kernel/crc32c.c) */
	u64 xcr0_supported;
	u32 xsave_size; /* bytes of the XSAVE area for the supported features */

	/* Intel VT-x; SDM Vol. 3D A.1-A.10 capability MSRs. */
	bool vmx;
	bool vmx_locked_off; /* IA32_FEATURE_CONTROL locked with VMX disabled */
	bool vmx_ept, vmx_unrestricted, vmx_vpid, vmx_ept_ad, vmx_preempt_timer;
	bool vmx_ept_2m, vmx_ept_1g, vmx_ept_wb, vmx_ept_4level;
	u32 vmcs_revision;

	/* AMD-V; APM Vol. 2 15.4 "Enabling SVM", CPUID 8000_000A. */
	bool svm;
	bool svm_disabled;     /* VM_CR.SVMDIS set (firmware); false when VM_CR faults */
	bool svm_vm_cr_faults; /* RDMSR of VM_CR raised #GP (Bochs) */
	bool svm_npt, svm_nrips, svm_flush_asid, svm_vmcb_clean, svm_decode_assists;
	bool svm_tsc_rate; /* the TSC ratio MSR C000_0104 */
	u32 svm_nasid;
};

extern struct cpu_features cpu;

void cpu_init(void);
void cpu_print_features(void); /* the `cpu` command's report */
/* The report's last line: "virtualization: VT-x with EPT (...)", "...: AMD-V
 * with NPT (...)" or "...: none (reason)". */
void cpu_virt_summary(char *buf, size_t len);

#endif
