/*
 * Guest CPU models and Amber's CPUID feature masks (see vmm/cpumodel.h). The
 * bits are those of SDM Vol. 2A "CPUID" (tables "Feature Information Returned
 * in the ECX/EDX Register", "Structured Extended Feature Flags Enumeration
 * Leaf") and APM Vol. 3 Appendix E "Obtaining Processor Information Via the
 * CPUID Instruction". Pure code, any context.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "vmm/cpumodel.h"

/* Leaf 1 ECX */
#define F1C_SSE3 BIT(0)
#define F1C_PCLMULQDQ BIT(1)
#define F1C_DTES64 BIT(2)
#define F1C_MONITOR BIT(3)
#define F1C_DS_CPL BIT(4)
#define F1C_VMX BIT(5)
#define F1C_SMX BIT(6)
#define F1C_EST BIT(7)
#define F1C_TM2 BIT(8)
#define F1C_SSSE3 BIT(9)
#define F1C_FMA BIT(12)
#define F1C_CX16 BIT(13)
#define F1C_XTPR BIT(14)
#define F1C_PDCM BIT(15)
#define F1C_PCID BIT(17)
#define F1C_SSE41 BIT(19)
#define F1C_SSE42 BIT(20)
#define F1C_X2APIC BIT(21)
#define F1C_MOVBE BIT(22)
#define F1C_POPCNT BIT(23)
#define F1C_TSC_DEADLINE BIT(24)
#define F1C_AES BIT(25)
#define F1C_XSAVE BIT(26)
#define F1C_OSXSAVE BIT(27)
#define F1C_AVX BIT(28)
#define F1C_F16C BIT(29)
#define F1C_RDRAND BIT(30)
#define F1C_HYPERVISOR BIT(31)
/* Leaf 1 EDX */
#define F1D_MCE BIT(7)
#define F1D_APIC BIT(9)
#define F1D_MCA BIT(14)
#define F1D_DS BIT(21)
#define F1D_ACPI BIT(22) /* thermal monitor MSRs */
#define F1D_TM BIT(29)
#define F1D_PBE BIT(31)
/* Leaf 7.0 EBX */
#define F7B_FSGSBASE BIT(0)
#define F7B_TSC_ADJUST BIT(1) /* offered: held at 0 (vmm/emulate.c) */
#define F7B_SGX BIT(2)
#define F7B_BMI1 BIT(3)
#define F7B_AVX2 BIT(5)
#define F7B_SMEP BIT(7)
#define F7B_BMI2 BIT(8)
#define F7B_ERMS BIT(9)
#define F7B_PQM BIT(12)
#define F7B_PQE BIT(15)
#define F7B_RDSEED BIT(18)
#define F7B_ADX BIT(19)
#define F7B_SMAP BIT(20)
#define F7B_CLFLUSHOPT BIT(23)
#define F7B_PT BIT(25)
#define F7B_SHA BIT(29)
/* Leaf 7.0 ECX */
#define F7C_UMIP BIT(2)
#define F7C_WAITPKG BIT(5)
#define F7C_CET_SS BIT(7)
#define F7C_LA57 BIT(16)
#define F7C_RDPID BIT(22)
#define F7C_SGX_LC BIT(30)
/* Leaf 7.0 EDX */
#define F7D_CET_IBT BIT(20)
#define F7D_SPEC_CTRL BIT(26) /* IBRS and IBPB */
#define F7D_STIBP BIT(27)
#define F7D_FLUSH_L1D BIT(28)
#define F7D_ARCH_CAPABILITIES BIT(29)
#define F7D_CORE_CAPABILITIES BIT(30)
#define F7D_SSBD BIT(31)
/* Leaf 0xD.1 EAX */
#define FD1A_XSAVEOPT BIT(0)
#define FD1A_XGETBV1 BIT(2)
#define FD1A_XSAVES BIT(3)
/* Leaf 0x80000001 ECX and EDX */
#define F81C_LAHF_LM BIT(0)
#define F81C_SVM BIT(2)
#define F81C_ABM BIT(5) /* LZCNT */
#define F81C_3DNOWPREFETCH BIT(8)
#define F81C_SKINIT BIT(12)
#define F81D_SYSCALL BIT(11)
#define F81D_NX BIT(20)
#define F81D_PDPE1GB BIT(26)
#define F81D_RDTSCP BIT(27)
#define F81D_LM BIT(29)

/* Leaf 1 EDX of every x86-64 CPU, less what Amber hides: FPU VME DE PSE TSC
 * MSR PAE CX8 APIC SEP MTRR PGE CMOV PAT PSE36 CLFSH MMX FXSR SSE SSE2. */
#define F1D_X86_64_BASE \
	(BIT(0) | GENMASK_ULL(6, 2) | BIT(8) | BIT(9) | GENMASK_ULL(13, 11) | \
	 GENMASK_ULL(17, 15) | BIT(19) | GENMASK_ULL(26, 23))

/*
 * The portable model: what both test rigs offer a guest, as `cpu` measured it
 * (docs/vmm.md "CPU models"), less two things they share that a move could
 * still break. Leaf 1 EDX: the x86-64 base above. Leaf 1 ECX: SSE3 to
 * SSE4.2, CX16, POPCNT, MOVBE, AES, PCLMULQDQ, XSAVE, AVX, F16C, FMA, RDRAND,
 * and what Amber emulates (x2APIC, TSC-deadline, hypervisor). Leaf 7:
 * FSGSBASE, TSC_ADJUST (Amber's), BMI1/2, AVX2, SMEP, SMAP, ERMS, ADX,
 * CLFLUSHOPT, UMIP. XSAVEOPT, XGETBV1; LAHF, LZCNT, SYSCALL, NX, 1 GiB
 * pages, long mode. XCR0: x87, SSE, AVX. Not in it, since one rig lacks it:
 * VME (QEMU), PCID and INVPCID, AVX-512 and its XCR0 components, RDSEED,
 * SHA, GFNI, FSRM, XSAVEC (Bochs only); SSE4A, CR8_LEGACY (QEMU only). Left
 * out though both have them: PKU (the PKRU component's place in the XSAVE
 * area is the CPU's to say, and a snapshot stores the area as it was) and
 * VAES.
 */
static const struct cpuid_features portable_mask = {
	.w = {
		[CPUID_W_1_ECX] = F1C_SSE3 | F1C_PCLMULQDQ | F1C_SSSE3 | F1C_FMA | F1C_CX16 |
				  F1C_SSE41 | F1C_SSE42 | F1C_X2APIC | F1C_MOVBE | F1C_POPCNT |
				  F1C_TSC_DEADLINE | F1C_AES | F1C_XSAVE | F1C_AVX | F1C_F16C | F1C_RDRAND | F1C_HYPERVISOR,
		[CPUID_W_1_EDX] = F1D_X86_64_BASE,
		[CPUID_W_7_EBX] = F7B_FSGSBASE | F7B_TSC_ADJUST | F7B_BMI1 | F7B_AVX2 |
				  F7B_SMEP | F7B_BMI2 | F7B_ERMS | F7B_ADX |
				  F7B_SMAP | F7B_CLFLUSHOPT,
		[CPUID_W_7_ECX] = F7C_UMIP,
		[CPUID_W_7_EDX] = 0,
		[CPUID_W_D1_EAX] = FD1A_XSAVEOPT | FD1A_XGETBV1,
		[CPUID_W_81_ECX] = F81C_LAHF_LM | F81C_ABM,
		[CPUID_W_81_EDX] = F81D_SYSCALL | F81D_NX | F81D_PDPE1GB | F81D_LM,
	},
	.xcr0 = 0x7, /* x87, SSE, AVX */
};

int cpu_model_lookup(const char *name)
{
	for (int i = 0; i < CPU_MODELS; i++)
		if (!strcmp(name, cpu_model_name(i)))
			return i;
	return -1;
}

void cpu_model_mask(u32 id, struct cpuid_features *mask)
{
	if (id == CPU_MODEL_PORTABLE) {
		*mask = portable_mask;
		return;
	}
	memset(mask->w, 0xFF, sizeof(mask->w));
	mask->xcr0 = ~0ULL;
}

void cpuid_mask_leaf(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	switch (leaf) {
	case 1:
		/* No VMX or SMX, no MONITOR/MWAIT (intercepted as #UD). The local
		 * APIC, x2APIC and the TSC-deadline timer are emulated
		 * (vmm/dev_lapic.c) whatever the host has. Nor machine checks, the
		 * debug store, thermal monitoring, SpeedStep or the PDCM/xTPR
		 * MSRs: Amber holds none of their MSRs (Linux reads
		 * IA32_THERM_INTERRUPT unchecked when ACPI and TM are set). */
		*c &= ~(F1C_VMX | F1C_SMX | F1C_MONITOR | F1C_OSXSAVE | F1C_DTES64 | F1C_DS_CPL |
			F1C_EST | F1C_TM2 | F1C_XTPR | F1C_PDCM);
		*c |= F1C_HYPERVISOR | F1C_X2APIC | F1C_TSC_DEADLINE;
		*d &= ~(F1D_MCE | F1D_MCA | F1D_DS | F1D_ACPI | F1D_TM | F1D_PBE);
		*d |= F1D_APIC;
		break;
	case 7:
		/* Only what Amber gives every guest the same way on both vendors:
		 * no 5-level paging (the page walk and the canonical checks are
		 * 48-bit), none of the features whose MSRs Amber does not hold
		 * (SGX, RDT, CET, processor trace, the speculation controls,
		 * ARCH/CORE_CAPABILITIES), no RDPID (it reads TSC_AUX, which is
		 * not per vCPU), no sub-leaf beyond 0. TSC_ADJUST is always there:
		 * with the invariant TSC it tells Linux that nothing else moved
		 * the TSC, so Linux trusts it without a watchdog, which under an
		 * emulator would be the slower, tick-counting jiffies. */
		if (sub != 0) {
			*a = *b = *c = *d = 0;
			break;
		}
		*a = 0;
		*b &= ~(F7B_SGX | F7B_PQM | F7B_PQE | F7B_PT);
		*b |= F7B_TSC_ADJUST;
		*c &= ~(F7C_WAITPKG | F7C_CET_SS | F7C_LA57 | F7C_RDPID | F7C_SGX_LC);
		*d &= ~(F7D_CET_IBT | F7D_SPEC_CTRL | F7D_STIBP | F7D_FLUSH_L1D |
			F7D_ARCH_CAPABILITIES | F7D_CORE_CAPABILITIES | F7D_SSBD);
		break;
	case 0xD:
		if (sub == 1) {
			*a &= ~FD1A_XSAVES; /* no IA32_XSS management */
			*b = *c = *d = 0;
		}
		break;
	case 0x80000001:
		/* AMD repeats MCE and MCA here; RDTSCP reads TSC_AUX (leaf 7). */
		*c &= ~(F81C_SVM | F81C_SKINIT);
		*d &= ~(F1D_MCE | F1D_MCA | F81D_RDTSCP);
		break;
	default:
		break;
	}
}

/* Where each feature word lies: leaf, sub-leaf, register (0 EAX .. 3 EDX). */
static const struct {
	u32 leaf;
	u8 sub, reg;
} word_at[CPUID_WORDS] = {
	[CPUID_W_1_ECX] = { 1, 0, 2 },		 [CPUID_W_1_EDX] = { 1, 0, 3 },
	[CPUID_W_7_EBX] = { 7, 0, 1 },		 [CPUID_W_7_ECX] = { 7, 0, 2 },
	[CPUID_W_7_EDX] = { 7, 0, 3 },		 [CPUID_W_D1_EAX] = { 0xD, 1, 0 },
	[CPUID_W_81_ECX] = { 0x80000001, 0, 2 }, [CPUID_W_81_EDX] = { 0x80000001, 0, 3 },
};

static bool word_here(int i, u32 leaf, u32 sub)
{
	/* Leaves 1 and 0x80000001 ignore ECX: any sub-leaf is the leaf. */
	return word_at[i].leaf == leaf &&
	       (leaf == 1 || leaf == 0x80000001 || word_at[i].sub == sub);
}

void cpuid_features_from_leaf(struct cpuid_features *f, u32 leaf, u32 sub, u32 a, u32 b, u32 c,
			      u32 d)
{
	u32 r[4] = { a, b, c, d };

	for (int i = 0; i < CPUID_WORDS; i++)
		if (word_here(i, leaf, sub))
			f->w[i] = r[word_at[i].reg];
}

void cpuid_apply_features(const struct cpuid_features *f, u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c,
			  u32 *d)
{
	u32 *r[4] = { a, b, c, d };

	for (int i = 0; i < CPUID_WORDS; i++)
		if (word_here(i, leaf, sub))
			*r[word_at[i].reg] &= f->w[i];
}

void cpuid_features_and(struct cpuid_features *out, const struct cpuid_features *a,
			const struct cpuid_features *b)
{
	for (int i = 0; i < CPUID_WORDS; i++)
		out->w[i] = a->w[i] & b->w[i];
	out->xcr0 = a->xcr0 & b->xcr0;
}

/* Names of the bits a guest may be shown, as Linux's /proc/cpuinfo spells
 * most of them (so a user can compare with the guest's flags). */
static const struct {
	u8 word, bit;
	const char *name;
} feature_names[] = {
	{ CPUID_W_1_ECX, 0, "SSE3" },
	{ CPUID_W_1_ECX, 1, "PCLMULQDQ" },
	{ CPUID_W_1_ECX, 9, "SSSE3" },
	{ CPUID_W_1_ECX, 11, "SDBG" },
	{ CPUID_W_1_ECX, 12, "FMA" },
	{ CPUID_W_1_ECX, 13, "CX16" },
	{ CPUID_W_1_ECX, 17, "PCID" },
	{ CPUID_W_1_ECX, 18, "DCA" },
	{ CPUID_W_1_ECX, 19, "SSE4.1" },
	{ CPUID_W_1_ECX, 20, "SSE4.2" },
	{ CPUID_W_1_ECX, 21, "x2APIC" },
	{ CPUID_W_1_ECX, 22, "MOVBE" },
	{ CPUID_W_1_ECX, 23, "POPCNT" },
	{ CPUID_W_1_ECX, 24, "TSC-deadline" },
	{ CPUID_W_1_ECX, 25, "AES" },
	{ CPUID_W_1_ECX, 26, "XSAVE" },
	{ CPUID_W_1_ECX, 27, "OSXSAVE" },
	{ CPUID_W_1_ECX, 28, "AVX" },
	{ CPUID_W_1_ECX, 29, "F16C" },
	{ CPUID_W_1_ECX, 30, "RDRAND" },
	{ CPUID_W_1_ECX, 31, "hypervisor" },
	{ CPUID_W_1_EDX, 0, "FPU" },
	{ CPUID_W_1_EDX, 1, "VME" },
	{ CPUID_W_1_EDX, 2, "DE" },
	{ CPUID_W_1_EDX, 3, "PSE" },
	{ CPUID_W_1_EDX, 4, "TSC" },
	{ CPUID_W_1_EDX, 5, "MSR" },
	{ CPUID_W_1_EDX, 6, "PAE" },
	{ CPUID_W_1_EDX, 8, "CX8" },
	{ CPUID_W_1_EDX, 9, "APIC" },
	{ CPUID_W_1_EDX, 11, "SEP" },
	{ CPUID_W_1_EDX, 12, "MTRR" },
	{ CPUID_W_1_EDX, 13, "PGE" },
	{ CPUID_W_1_EDX, 15, "CMOV" },
	{ CPUID_W_1_EDX, 16, "PAT" },
	{ CPUID_W_1_EDX, 17, "PSE36" },
	{ CPUID_W_1_EDX, 18, "PSN" },
	{ CPUID_W_1_EDX, 19, "CLFLUSH" },
	{ CPUID_W_1_EDX, 23, "MMX" },
	{ CPUID_W_1_EDX, 24, "FXSR" },
	{ CPUID_W_1_EDX, 25, "SSE" },
	{ CPUID_W_1_EDX, 26, "SSE2" },
	{ CPUID_W_1_EDX, 27, "SS" },
	{ CPUID_W_1_EDX, 28, "HT" },
	{ CPUID_W_7_EBX, 0, "FSGSBASE" },
	{ CPUID_W_7_EBX, 1, "TSC_ADJUST" },
	{ CPUID_W_7_EBX, 3, "BMI1" },
	{ CPUID_W_7_EBX, 4, "HLE" },
	{ CPUID_W_7_EBX, 5, "AVX2" },
	{ CPUID_W_7_EBX, 6, "FDP_EXCPTN_ONLY" },
	{ CPUID_W_7_EBX, 7, "SMEP" },
	{ CPUID_W_7_EBX, 8, "BMI2" },
	{ CPUID_W_7_EBX, 9, "ERMS" },
	{ CPUID_W_7_EBX, 10, "INVPCID" },
	{ CPUID_W_7_EBX, 11, "RTM" },
	{ CPUID_W_7_EBX, 13, "ZERO_FCS_FDS" },
	{ CPUID_W_7_EBX, 14, "MPX" },
	{ CPUID_W_7_EBX, 16, "AVX512F" },
	{ CPUID_W_7_EBX, 17, "AVX512DQ" },
	{ CPUID_W_7_EBX, 18, "RDSEED" },
	{ CPUID_W_7_EBX, 19, "ADX" },
	{ CPUID_W_7_EBX, 20, "SMAP" },
	{ CPUID_W_7_EBX, 21, "AVX512IFMA" },
	{ CPUID_W_7_EBX, 22, "PCOMMIT" },
	{ CPUID_W_7_EBX, 23, "CLFLUSHOPT" },
	{ CPUID_W_7_EBX, 24, "CLWB" },
	{ CPUID_W_7_EBX, 28, "AVX512CD" },
	{ CPUID_W_7_EBX, 29, "SHA" },
	{ CPUID_W_7_EBX, 30, "AVX512BW" },
	{ CPUID_W_7_EBX, 31, "AVX512VL" },
	{ CPUID_W_7_ECX, 1, "AVX512VBMI" },
	{ CPUID_W_7_ECX, 2, "UMIP" },
	{ CPUID_W_7_ECX, 3, "PKU" },
	{ CPUID_W_7_ECX, 4, "OSPKE" },
	{ CPUID_W_7_ECX, 6, "AVX512_VBMI2" },
	{ CPUID_W_7_ECX, 8, "GFNI" },
	{ CPUID_W_7_ECX, 9, "VAES" },
	{ CPUID_W_7_ECX, 10, "VPCLMULQDQ" },
	{ CPUID_W_7_ECX, 11, "AVX512_VNNI" },
	{ CPUID_W_7_ECX, 12, "AVX512_BITALG" },
	{ CPUID_W_7_ECX, 14, "AVX512_VPOPCNTDQ" },
	{ CPUID_W_7_ECX, 25, "CLDEMOTE" },
	{ CPUID_W_7_ECX, 27, "MOVDIRI" },
	{ CPUID_W_7_ECX, 28, "MOVDIR64B" },
	{ CPUID_W_7_ECX, 31, "PKS" },
	{ CPUID_W_7_EDX, 4, "FSRM" },
	{ CPUID_W_7_EDX, 8, "AVX512_VP2INTERSECT" },
	{ CPUID_W_7_EDX, 10, "MD_CLEAR" },
	{ CPUID_W_7_EDX, 14, "SERIALIZE" },
	{ CPUID_W_D1_EAX, 0, "XSAVEOPT" },
	{ CPUID_W_D1_EAX, 1, "XSAVEC" },
	{ CPUID_W_D1_EAX, 2, "XGETBV1" },
	{ CPUID_W_81_ECX, 0, "LAHF_LM" },
	{ CPUID_W_81_ECX, 1, "CMP_LEGACY" },
	{ CPUID_W_81_ECX, 3, "EXTAPIC" },
	{ CPUID_W_81_ECX, 4, "CR8_LEGACY" },
	{ CPUID_W_81_ECX, 5, "ABM" },
	{ CPUID_W_81_ECX, 6, "SSE4A" },
	{ CPUID_W_81_ECX, 7, "MISALIGNSSE" },
	{ CPUID_W_81_ECX, 8, "3DNOWPREFETCH" },
	{ CPUID_W_81_ECX, 9, "OSVW" },
	{ CPUID_W_81_ECX, 11, "XOP" },
	{ CPUID_W_81_ECX, 16, "FMA4" },
	{ CPUID_W_81_ECX, 21, "TBM" },
	{ CPUID_W_81_ECX, 22, "TOPOEXT" },
	{ CPUID_W_81_ECX, 29, "MWAITX" },
	{ CPUID_W_81_EDX, 11, "SYSCALL" },
	{ CPUID_W_81_EDX, 20, "NX" },
	{ CPUID_W_81_EDX, 22, "MMXEXT" },
	{ CPUID_W_81_EDX, 25, "FXSR_OPT" },
	{ CPUID_W_81_EDX, 26, "PDPE1GB" },
	{ CPUID_W_81_EDX, 29, "LM" },
	{ CPUID_W_81_EDX, 30, "3DNOWEXT" },
	{ CPUID_W_81_EDX, 31, "3DNOW" },
};

/* XCR0 components, SDM Vol. 1 13.1 "XSAVE-Supported Features and
 * State-Component Bitmaps". */
static const char *const xcr0_names[10] = {
	"x87", "SSE", "AVX", "BNDREGS", "BNDCSR", "opmask", "ZMM_Hi256", "Hi16_ZMM", "PT", "PKRU",
};

static const char *const word_names[CPUID_WORDS] = {
	[CPUID_W_1_ECX] = "1:ECX",	   [CPUID_W_1_EDX] = "1:EDX",
	[CPUID_W_7_EBX] = "7:EBX",	   [CPUID_W_7_ECX] = "7:ECX",
	[CPUID_W_7_EDX] = "7:EDX",	   [CPUID_W_D1_EAX] = "D.1:EAX",
	[CPUID_W_81_ECX] = "80000001:ECX", [CPUID_W_81_EDX] = "80000001:EDX",
};

/* Appends " name" to buf; "..." once it no longer fits. */
static void add_name(char *buf, size_t len, const char *name)
{
	size_t n = strlen(buf), w = strlen(name) + (n ? 1 : 0);

	if (!len || (n >= 3 && !strcmp(buf + n - 3, "...")))
		return;
	if (n + w + 4 > len) {
		if (n + 4 <= len)
			memcpy(buf + n, "...", 4);
		return;
	}
	snprintf(buf + n, len - n, "%s%s", n ? " " : "", name);
}

/* AMD's copies of leaf 1 EDX bits in 0x80000001 EDX (FPU ... PAT, PSE36,
 * MMX, FXSR; APM Vol. 3 E.4.2), reserved on Intel: the leaf 1 bits are the
 * ones that count (Linux reads those alone), so a copy missing is no feature
 * missing. */
#define F81D_LEAF1_COPIES (GENMASK_ULL(9, 0) | GENMASK_ULL(17, 12) | BIT(23) | BIT(24))

int cpuid_features_missing(const struct cpuid_features *want, const struct cpuid_features *have,
			   char *buf, size_t len)
{
	char other[32];
	int count = 0;

	if (len)
		buf[0] = '\0';
	for (int i = 0; i < CPUID_WORDS; i++) {
		u32 miss = want->w[i] & ~have->w[i];

		if (i == CPUID_W_81_EDX)
			miss &= ~(u32)F81D_LEAF1_COPIES;

		for (int bit = 0; bit < 32; bit++) {
			const char *name = NULL;

			if (!(miss & BIT(bit)))
				continue;
			for (size_t k = 0; k < ARRAY_SIZE(feature_names); k++)
				if (feature_names[k].word == i && feature_names[k].bit == bit)
					name = feature_names[k].name;
			if (!name) {
				snprintf(other, sizeof(other), "CPUID.%s[%d]", word_names[i], bit);
				name = other;
			}
			add_name(buf, len, name);
			count++;
		}
	}
	for (int bit = 0; bit < 64; bit++) {
		if (!(want->xcr0 & ~have->xcr0 & (1ULL << bit)))
			continue;
		if (bit < (int)ARRAY_SIZE(xcr0_names))
			snprintf(other, sizeof(other), "XCR0.%s", xcr0_names[bit]);
		else
			snprintf(other, sizeof(other), "XCR0[%d]", bit);
		add_name(buf, len, other);
		count++;
	}
	return count;
}
