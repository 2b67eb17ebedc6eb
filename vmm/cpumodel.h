/*
 * Guest CPU models: which CPUID feature bits and XCR0 components a VM is
 * shown. `host` shows what Amber offers on this CPU; `portable` a baseline
 * that both test rigs (Bochs corei7_icelake_u with VT-x, QEMU TCG -cpu max
 * with AMD-V) give, so that its snapshot restores on either. Pure code: no
 * CPUID instruction here (vmm/emulate.c reads the host), unit tested on the host.
 */
#ifndef AMBER_VMM_CPUMODEL_H
#define AMBER_VMM_CPUMODEL_H

#include "kernel/types.h"

/* The feature words a model restricts, in the order the snapshot stores them
 * (docs/snapshot-format.md 1.7 "DEVICES"). */
enum cpuid_word {
	CPUID_W_1_ECX,	/* leaf 1 ECX */
	CPUID_W_1_EDX,	/* leaf 1 EDX */
	CPUID_W_7_EBX,	/* leaf 7 sub-leaf 0 EBX */
	CPUID_W_7_ECX,	/* leaf 7 sub-leaf 0 ECX */
	CPUID_W_7_EDX,	/* leaf 7 sub-leaf 0 EDX */
	CPUID_W_D1_EAX, /* leaf 0xD sub-leaf 1 EAX (XSAVEOPT, XSAVEC ...) */
	CPUID_W_81_ECX, /* leaf 0x80000001 ECX */
	CPUID_W_81_EDX, /* leaf 0x80000001 EDX */
	CPUID_WORDS,
};

struct cpuid_features {
	u32 w[CPUID_WORDS];
	u64 xcr0; /* XCR0 components (leaf 0xD sub-leaf 0 EDX:EAX) */
};

enum cpu_model_id {
	CPU_MODEL_HOST = 0, /* what this host offers (the default) */
	CPU_MODEL_PORTABLE = 1,
	CPU_MODELS,
};

/* "host", "portable", or NULL for an id this Amber does not know (inline:
 * the host tools name the model of an image without the rest). */
static inline const char *cpu_model_name(u32 id)
{
	return id == CPU_MODEL_HOST ? "host" : id == CPU_MODEL_PORTABLE ? "portable" : NULL;
}
/* The id of a model name, or -1. */
int cpu_model_lookup(const char *name);
/* The bits model `id` allows: every bit for host. */
void cpu_model_mask(u32 id, struct cpuid_features *mask);

/* Amber's own masks on the host's CPUID (leaf, sub-leaf): what no guest sees
 * (VMX, SVM, MONITOR, machine checks, SGX, CET, 5-level paging, ...) cleared,
 * what Amber emulates on any host (APIC, x2APIC, TSC-deadline, TSC_ADJUST,
 * the hypervisor bit) set. OSXSAVE is cleared: it follows the guest's CR4. */
void cpuid_mask_leaf(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d);
/* The feature words out of the masked leaves 1, 7.0, 0xD.1, 0x80000001. */
void cpuid_features_from_leaf(struct cpuid_features *f, u32 leaf, u32 sub, u32 a, u32 b, u32 c,
			      u32 d);
/* Restricts a leaf's output to the features f (the VM's): leaves 1, 7.0,
 * 0xD.1 and 0x80000001; other leaves are left as they are. */
void cpuid_apply_features(const struct cpuid_features *f, u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c,
			  u32 *d);
/* out = a & b, word by word. */
void cpuid_features_and(struct cpuid_features *out, const struct cpuid_features *a,
			const struct cpuid_features *b);
/* The features of `want` that `have` lacks, named ("PCID AVX512F XCR0.opmask"),
 * into buf (cut at len, ending "..." when cut). Returns how many. */
int cpuid_features_missing(const struct cpuid_features *want, const struct cpuid_features *have,
			   char *buf, size_t len);

#endif
