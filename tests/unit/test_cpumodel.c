/*
 * Host unit test of the guest CPU models (vmm/cpumodel.c). The fixtures are
 * what `cpu` printed as offered (cpu=host) on the two test rigs: Bochs 2.7
 * corei7_icelake_u with VT-x and QEMU 7.2 TCG -cpu max with AMD-V. The
 * portable model must be offered whole by both and show a guest the same
 * bits on each; what a Linux guest booted on Bochs' icelake was shown (PCID,
 * AVX-512 ...) QEMU must be found lacking, by name.
 */
#include <string.h>

#include "vmm/cpumodel.h"
#include "tests/unit/check.h"

static const struct cpuid_features bochs_icelake = {
	.w = { 0xf7fa3203, 0x1f8bbb7f, 0xf0bf27eb, 0x00005f4e, 0x00000110, 0x00000007, 0x00000121,
	       0x24100800 },
	.xcr0 = 0x2e7,
};
static const struct cpuid_features qemu_max = {
	.w = { 0xf7f83203, 0x0f8bbb7d, 0x01d843ab, 0x8000020c, 0x00000000, 0x00000005, 0x00000071,
	       0xe5d3bb7d },
	.xcr0 = 0x207,
};

static void test_names(void)
{
	CHECK_EQ(cpu_model_lookup("host"), CPU_MODEL_HOST);
	CHECK_EQ(cpu_model_lookup("portable"), CPU_MODEL_PORTABLE);
	CHECK_EQ(cpu_model_lookup("Portable"), -1);
	CHECK_EQ(cpu_model_lookup(""), -1);
	CHECK_STR(cpu_model_name(CPU_MODEL_PORTABLE), "portable");
	CHECK(cpu_model_name(CPU_MODELS) == NULL);
}

/* Amber's own masks: hidden what no guest gets, set what Amber emulates. */
static void test_mask_leaf(void)
{
	u32 a = 0x906ea, b = 0x05010800, c = 0xffffffff, d = 0xffffffff;

	cpuid_mask_leaf(1, 0, &a, &b, &c, &d);
	CHECK_EQ(a, 0x906ea);
	CHECK_EQ(b, 0x05010800);
	CHECK_EQ(c & (BIT(3) | BIT(5) | BIT(6) | BIT(27)), 0);	 /* MONITOR VMX SMX OSXSAVE */
	CHECK_EQ(d & (BIT(7) | BIT(14) | BIT(22) | BIT(29)), 0); /* MCE MCA ACPI TM */
	c = d = 0;
	cpuid_mask_leaf(1, 0, &a, &b, &c, &d);
	CHECK_EQ(c, BIT(21) | BIT(24) | BIT(31)); /* x2APIC, TSC-deadline, hypervisor */
	CHECK_EQ(d, BIT(9));			  /* the APIC */
	a = 2, b = c = d = 0xffffffff;
	cpuid_mask_leaf(7, 0, &a, &b, &c, &d);
	CHECK_EQ(a, 0);					   /* no sub-leaf 1 offered */
	CHECK_EQ(b & (BIT(1) | BIT(2) | BIT(25)), BIT(1)); /* TSC_ADJUST, no SGX or PT */
	CHECK_EQ(c & (BIT(16) | BIT(22)), 0);		   /* no LA57, RDPID */
	CHECK_EQ(d & 0xFC000000u, 0);			   /* no speculation MSRs */
	a = b = c = d = 0xffffffff;
	cpuid_mask_leaf(7, 1, &a, &b, &c, &d);
	CHECK_EQ(a | b | c | d, 0);
	a = 0xf, b = c = d = 1;
	cpuid_mask_leaf(0xD, 1, &a, &b, &c, &d);
	CHECK_EQ(a, 7); /* no XSAVES */
	CHECK_EQ(b | c | d, 0);
	c = d = 0xffffffff;
	cpuid_mask_leaf(0x80000001, 0, &a, &b, &c, &d);
	CHECK_EQ(c & (BIT(2) | BIT(12)), 0);	       /* SVM, SKINIT */
	CHECK_EQ(d & (BIT(7) | BIT(14) | BIT(27)), 0); /* MCE, MCA, RDTSCP */
}

/* Both rigs give the whole portable model, and a guest on either sees the
 * same bits: those of the model. */
static void test_portable_on_both_rigs(void)
{
	struct cpuid_features model, on_bochs, on_qemu;
	char buf[200];

	cpu_model_mask(CPU_MODEL_PORTABLE, &model);
	CHECK_EQ(cpuid_features_missing(&model, &bochs_icelake, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "");
	CHECK_EQ(cpuid_features_missing(&model, &qemu_max, buf, sizeof(buf)), 0);
	cpuid_features_and(&on_bochs, &bochs_icelake, &model);
	cpuid_features_and(&on_qemu, &qemu_max, &model);
	CHECK(!memcmp(&on_bochs, &on_qemu, sizeof(on_bochs)));
	CHECK(!memcmp(&on_bochs, &model, sizeof(model)));
	/* What Linux turned on under Bochs' icelake and QEMU lacks is not in it. */
	CHECK_EQ(model.w[CPUID_W_1_ECX] & BIT(17), 0); /* PCID */
	CHECK_EQ(model.w[CPUID_W_7_EBX] & BIT(16), 0); /* AVX512F */
	CHECK_EQ(model.w[CPUID_W_7_ECX] & BIT(3), 0);  /* PKU */
	CHECK_EQ(model.xcr0, 7);
	/* The host model is no restriction. */
	cpu_model_mask(CPU_MODEL_HOST, &model);
	cpuid_features_and(&on_bochs, &bochs_icelake, &model);
	CHECK(!memcmp(&on_bochs, &bochs_icelake, sizeof(on_bochs)));
}

/* What a guest shown the Bochs host's features would miss under QEMU, named. */
static void test_missing_names(void)
{
	struct cpuid_features want = { .w = { 0 } }, have = { .w = { 0 } };
	char buf[400], small[24];
	int n;

	n = cpuid_features_missing(&bochs_icelake, &qemu_max, buf, sizeof(buf));
	CHECK(n > 10);
	CHECK(strstr(buf, "PCID ") != NULL);
	CHECK(strstr(buf, "AVX512F ") != NULL);
	CHECK(strstr(buf, "RDSEED") != NULL);
	CHECK(strstr(buf, "XCR0.opmask XCR0.ZMM_Hi256 XCR0.Hi16_ZMM") != NULL);
	CHECK(strstr(buf, "SSE4A") == NULL); /* QEMU has it; Bochs was not asked for it */
	CHECK(buf[strlen(buf) - 1] != ' ');
	/* The other way: QEMU's AMD bits lack on Bochs. */
	n = cpuid_features_missing(&qemu_max, &bochs_icelake, buf, sizeof(buf));
	CHECK(strstr(buf, "MPX") == buf);
	CHECK(strstr(buf, "SSE4A") != NULL);
	CHECK(strstr(buf, "VME") == NULL);
	/* AMD's copies of leaf 1 EDX (FPU, DE ... in 0x80000001 EDX) are no
	 * feature of their own; its own bits (MMXEXT, 3DNOW) are. */
	CHECK(strstr(buf, "80000001:EDX") == NULL);
	CHECK(strstr(buf, "MMXEXT") != NULL);
	CHECK(strstr(buf, "PKS") != NULL);
	/* A bit without a name, and an XCR0 component past the names. */
	want.w[CPUID_W_7_EDX] = BIT(1);
	want.xcr0 = 1ULL << 17;
	n = cpuid_features_missing(&want, &have, buf, sizeof(buf));
	CHECK_EQ(n, 2);
	CHECK_STR(buf, "CPUID.7:EDX[1] XCR0[17]");
	/* Cut short: what fits, then "...". */
	n = cpuid_features_missing(&bochs_icelake, &qemu_max, small, sizeof(small));
	CHECK(n > 10);
	CHECK(strlen(small) < sizeof(small));
	CHECK(!strcmp(small + strlen(small) - 3, "..."));
	/* Nothing missing when have covers want. */
	CHECK_EQ(cpuid_features_missing(&have, &bochs_icelake, buf, sizeof(buf)), 0);
}

/* The VM's features restrict the four words, in the right registers only. */
static void test_apply(void)
{
	struct cpuid_features f;
	u32 a = ~0u, b = ~0u, c = ~0u, d = ~0u;

	cpu_model_mask(CPU_MODEL_PORTABLE, &f);
	cpuid_apply_features(&f, 1, 5, &a, &b, &c, &d); /* leaf 1 ignores the sub-leaf */
	CHECK_EQ(a, ~0u);
	CHECK_EQ(b, ~0u);
	CHECK_EQ(c, f.w[CPUID_W_1_ECX]);
	CHECK_EQ(d, f.w[CPUID_W_1_EDX]);
	a = b = c = d = ~0u;
	cpuid_apply_features(&f, 7, 0, &a, &b, &c, &d);
	CHECK_EQ(a, ~0u);
	CHECK_EQ(b, f.w[CPUID_W_7_EBX]);
	CHECK_EQ(c, f.w[CPUID_W_7_ECX]);
	CHECK_EQ(d, f.w[CPUID_W_7_EDX]);
	a = b = c = d = ~0u;
	cpuid_apply_features(&f, 7, 1, &a, &b, &c, &d); /* another sub-leaf: untouched */
	CHECK_EQ(a & b & c & d, ~0u);
	cpuid_apply_features(&f, 0xD, 1, &a, &b, &c, &d);
	CHECK_EQ(a, f.w[CPUID_W_D1_EAX]);
	a = b = c = d = ~0u;
	cpuid_apply_features(&f, 0x80000001, 0, &a, &b, &c, &d);
	CHECK_EQ(c, f.w[CPUID_W_81_ECX]);
	CHECK_EQ(d, f.w[CPUID_W_81_EDX]);
	a = b = c = d = ~0u;
	cpuid_apply_features(&f, 0xD, 0, &a, &b, &c, &d); /* XCR0 is emulate.c's */
	CHECK_EQ(a & b & c & d, ~0u);
	/* from_leaf is apply's inverse on the same words. */
	memset(&f, 0, sizeof(f));
	cpuid_features_from_leaf(&f, 7, 0, 1, 2, 3, 4);
	cpuid_features_from_leaf(&f, 7, 1, 9, 9, 9, 9);
	cpuid_features_from_leaf(&f, 0x80000001, 0, 5, 6, 7, 8);
	CHECK_EQ(f.w[CPUID_W_7_EBX], 2);
	CHECK_EQ(f.w[CPUID_W_7_ECX], 3);
	CHECK_EQ(f.w[CPUID_W_7_EDX], 4);
	CHECK_EQ(f.w[CPUID_W_81_ECX], 7);
	CHECK_EQ(f.w[CPUID_W_81_EDX], 8);
	CHECK_EQ(f.w[CPUID_W_1_ECX], 0);
}

int main(void)
{
	test_names();
	test_mask_leaf();
	test_portable_on_both_rigs();
	test_missing_names();
	test_apply();
	return test_done("cpumodel");
}
