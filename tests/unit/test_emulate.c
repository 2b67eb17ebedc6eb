/*
 * Host unit test of the generic MSR emulation (vmm/emulate.c): RDMSR and
 * WRMSR of the state-backed MSRs reach the backend one field at a time, so
 * an emulated WRMSR neither copies the whole vCPU state out and back nor
 * rewrites the TSC offset (the guest's clock would lose the time between the
 * two copies, every exit); the checks of the SDM (EFER.LME under paging,
 * canonical bases, PAT types) give #GP; a backend that fails stops the VM.
 * The backend here keeps the fields in an array and counts every call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel/cpu.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "tests/unit/check.h"

/* ---- a recording backend ---------------------------------------------------- */

static u64 fields[VCPU_FIELD_TSC + 1];
static int field_sets[VCPU_FIELD_TSC + 1];
static int whole_gets, whole_sets, advances, injects, fail_with;
static u8 injected;

static int rec_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	if (fail_with)
		return fail_with;
	*val = fields[f];
	return 0;
}

static int rec_set_field(struct vcpu *v, enum vcpu_field f, u64 val)
{
	if (fail_with)
		return fail_with;
	if (f == VCPU_FIELD_CR0 || f == VCPU_FIELD_CR4)
		return -EINVAL;
	fields[f] = val;
	field_sets[f]++;
	return 0;
}

static int rec_get_state(struct vcpu *v, struct vcpu_state *s)
{
	whole_gets++;
	return 0;
}

static int rec_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	whole_sets++;
	return 0;
}

static int rec_advance_rip(struct vcpu *v, const struct vm_exit *e)
{
	advances++;
	return 0;
}

static int rec_inject(struct vcpu *v, const struct vcpu_event *ev)
{
	injects++;
	injected = ev->vector;
	return 0;
}

static const struct vcpu_ops rec_ops = {
	.name = "recording",
	.get_state = rec_get_state,
	.set_state = rec_set_state,
	.advance_rip = rec_advance_rip,
	.inject_event = rec_inject,
	.get_field = rec_get_field,
	.set_field = rec_set_field,
};
const struct vcpu_ops *vcpu_ops = &rec_ops;

/* ---- what emulate.c calls elsewhere in the kernel -------------------------------- */

struct cpu_features cpu;
static int stopped;

int vcpu_backend_failed(struct vcpu *v, const struct vm_exit *e, const char *what, int err)
{
	stopped++;
	v->vm->state = VM_STOPPED;
	return EXIT_YIELD;
}

int vcpu_stop_report(struct vcpu *v, const struct vm_exit *e, const char *fmt, ...)
{
	stopped++;
	v->vm->state = VM_STOPPED;
	return EXIT_YIELD;
}

void printk(const char *fmt, ...) {}
void shell_wrap(const char *head, int indent, const char *text) {}
u64 vcpu_xcr0_allowed(void) { return 7; }
/* The local APIC's MSRs (vmm/dev_lapic.c): IA32_APIC_BASE answers with a
 * marker, the x2APIC range refuses (#GP), the rest is not the APIC's. */
#define LAPIC_MARK 0xFEE00900ULL
int vlapic_rdmsr(struct vcpu *v, u32 msr, u64 *val)
{
	if (msr == 0x1B)
		*val = LAPIC_MARK;
	return msr == 0x1B ? 0 : msr >= 0x800 && msr <= 0x8FF ? -EINVAL : -ENOENT;
}
int vlapic_wrmsr(struct vcpu *v, u32 msr, u64 val)
{
	return msr == 0x1B ? 0 : msr >= 0x800 && msr <= 0x8FF ? -EINVAL : -ENOENT;
}
bool vcpu_xcr0_valid(u64 xcr0) { return xcr0 == 3 || xcr0 == 7; }
void vcpu_fpu_set_xcr0(struct vcpu *v, u64 xcr0) {}
void vuart_flush(struct vm *vm) {}
bool vdev_io(struct vcpu *v, u16 port, u8 size, bool in, u32 *val) { return false; }
bool vm_reset_pending(struct vcpu *v) { return false; }

/* ---- the test ------------------------------------------------------------------ */

static struct vm vm = { .id = 1, .state = VM_RUNNING };
static struct vcpu v = { .vm = &vm };
static const struct vm_exit exit_rec = { .kind = VMEXIT_MSR_WRITE, .insn_len = 2 };

static void reset(void)
{
	vm_set_cpu_model(&vm, CPU_MODEL_HOST, NULL, 0);
	memset(fields, 0, sizeof(fields));
	memset(field_sets, 0, sizeof(field_sets));
	whole_gets = whole_sets = advances = injects = fail_with = stopped = 0;
	vm.state = VM_RUNNING;
	fields[VCPU_FIELD_TSC] = 123456789;
}

static void guest_wrmsr(u32 msr, u64 val)
{
	v.regs[REG_RCX] = msr;
	v.regs[REG_RAX] = (u32)val;
	v.regs[REG_RDX] = val >> 32;
	CHECK_EQ(emulate_wrmsr(&v, &exit_rec), stopped ? EXIT_YIELD : EXIT_RESUME);
}

static u64 guest_rdmsr(u32 msr)
{
	v.regs[REG_RCX] = msr;
	v.regs[REG_RAX] = v.regs[REG_RDX] = 0xdead;
	emulate_rdmsr(&v, &exit_rec);
	return (v.regs[REG_RDX] << 32) | (u32)v.regs[REG_RAX];
}

static void test_one_field(void)
{
	reset();
	guest_wrmsr(MSR_LSTAR, 0xFFFFFFFF81000000ULL);
	CHECK_EQ(fields[VCPU_FIELD_LSTAR], 0xFFFFFFFF81000000ULL);
	CHECK_EQ(field_sets[VCPU_FIELD_LSTAR], 1);
	CHECK_EQ(advances, 1);
	CHECK_EQ(injects, 0);
	/* The point of the narrow accessors: nothing else moves. */
	CHECK_EQ(field_sets[VCPU_FIELD_TSC], 0);
	CHECK_EQ(whole_gets, 0);
	CHECK_EQ(whole_sets, 0);
	CHECK_EQ(guest_rdmsr(MSR_LSTAR), 0xFFFFFFFF81000000ULL);
	CHECK_EQ(whole_gets, 0);

	guest_wrmsr(MSR_IA32_SYSENTER_CS, 0x10);
	guest_wrmsr(MSR_STAR, 0x0023001000000000ULL);
	guest_wrmsr(MSR_IA32_PAT, 0x0007040600070406ULL);
	CHECK_EQ(guest_rdmsr(MSR_IA32_SYSENTER_CS), 0x10);
	CHECK_EQ(guest_rdmsr(MSR_STAR), 0x0023001000000000ULL);
	CHECK_EQ(guest_rdmsr(MSR_IA32_PAT), 0x0007040600070406ULL);
	CHECK_EQ(field_sets[VCPU_FIELD_TSC], 0);
	CHECK_EQ(whole_sets, 0);

	/* The TSC itself: read, and written only by a WRMSR of the TSC. */
	CHECK_EQ(guest_rdmsr(MSR_IA32_TSC), 123456789);
	guest_wrmsr(MSR_IA32_TSC, 5);
	CHECK_EQ(field_sets[VCPU_FIELD_TSC], 1);
	CHECK_EQ(fields[VCPU_FIELD_TSC], 5);
}

static void test_checks(void)
{
	/* LME cannot change while paging is on; LMA stays the CPU's. */
	reset();
	fields[VCPU_FIELD_CR0] = BIT(31) | 1;
	fields[VCPU_FIELD_EFER] = EFER_LME | EFER_LMA;
	guest_wrmsr(MSR_EFER, EFER_SCE);
	CHECK_EQ(injects, 1);
	CHECK_EQ(injected, 13);
	CHECK_EQ(advances, 0);
	CHECK_EQ(field_sets[VCPU_FIELD_EFER], 0);
	guest_wrmsr(MSR_EFER, EFER_SCE | EFER_LME);
	CHECK_EQ(fields[VCPU_FIELD_EFER], EFER_SCE | EFER_LME | EFER_LMA);
	CHECK_EQ(advances, 1);
	/* Bits EFER does not have here. */
	guest_wrmsr(MSR_EFER, BIT(15));
	CHECK_EQ(injects, 2);

	/* A non-canonical base, a PAT type that does not exist, an MSR that is
	 * not on the list: #GP, nothing written, RIP stays. */
	reset();
	guest_wrmsr(MSR_LSTAR, 0x0000800000000000ULL);
	guest_wrmsr(MSR_FS_BASE, 0x1234000000000000ULL);
	guest_wrmsr(MSR_IA32_PAT, 0x02);
	guest_wrmsr(0x12345, 1);
	CHECK_EQ(injects, 4);
	CHECK_EQ(advances, 0);
	for (int f = 0; f <= VCPU_FIELD_TSC; f++)
		CHECK_EQ(field_sets[f], 0);
	CHECK_EQ(guest_rdmsr(0x12345), 0xdead0000deadULL); /* unchanged RDX:RAX */
	CHECK_EQ(injects, 5);

	/* TSC_ADJUST is held at 0: it reads 0, takes 0, refuses the rest and
	 * never moves the TSC; MCG_CAP stays #GP (MCA is hidden); K8's
	 * interrupt-pending MSR reads 0 (no C1E). */
	reset();
	CHECK_EQ(guest_rdmsr(0x3b), 0);
	guest_wrmsr(0x3b, 0);
	CHECK_EQ(injects, 0);
	guest_wrmsr(0x3b, 1000);
	CHECK_EQ(injects, 1);
	CHECK_EQ(field_sets[VCPU_FIELD_TSC], 0);
	CHECK_EQ(guest_rdmsr(0xc0010055), 0);
	guest_rdmsr(0x179);
	CHECK_EQ(injects, 2);
	CHECK_EQ(advances, 3);
}

static void test_backend_failure(void)
{
	/* A backend that cannot reach the vCPU: the VM stops, no #GP. */
	reset();
	fail_with = -EIO;
	guest_wrmsr(MSR_STAR, 1);
	CHECK_EQ(stopped, 1);
	CHECK_EQ(injects, 0);
	CHECK_EQ(advances, 0);
	CHECK_EQ(vm.state, VM_STOPPED);
	reset();
	fail_with = -EIO;
	guest_rdmsr(MSR_EFER);
	CHECK_EQ(stopped, 1);
	CHECK_EQ(injects, 0);
}

/* ---- CPUID's time leaves ------------------------------------------------------ */

static u32 cpuid_regs[4];

static void guest_cpuid(u32 leaf)
{
	v.regs[REG_RAX] = leaf;
	v.regs[REG_RCX] = 0;
	v.regs[REG_RBX] = v.regs[REG_RDX] = 0xdead;
	CHECK_EQ(emulate_cpuid(&v, &exit_rec), EXIT_RESUME);
	for (int i = 0; i < 4; i++)
		cpuid_regs[i] = (u32)v.regs[(int[]){ REG_RAX, REG_RBX, REG_RCX, REG_RDX }[i]];
}

/* Leaves 0x15, 0x16 and 0x40000010 give the guest's TSC rate (to the kHz,
 * exactly, through the 0x15 ratio) and the APIC timer's 1 GHz; leaf 0
 * reaches 0x16 whatever the host has, and basic leaves the host lacks read
 * zero. */
static void test_time_leaves(void)
{
	static const u64 rates[] = { 2994374000ULL, 3000000000ULL, 5123456789ULL,
				     1000000ULL,    99999000ULL,   1497600000ULL };
	u32 a, b, c, d;

	reset();
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
	cpu.max_leaf = a;
	for (unsigned i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		u64 khz = (rates[i] + 500) / 1000;

		vm.guest_tsc_hz = rates[i];
		guest_cpuid(0x15);
		CHECK(cpuid_regs[0] != 0 && cpuid_regs[1] != 0);
		CHECK_EQ(cpuid_regs[2], 1000000000);
		/* As Linux computes it: crystal kHz * EBX / EAX in 32 bits. */
		CHECK((u64)(cpuid_regs[2] / 1000) * cpuid_regs[1] <= 0xFFFFFFFFu);
		u64 got = (u32)((cpuid_regs[2] / 1000) * cpuid_regs[1]) / cpuid_regs[0];
		CHECK(got * 10000 >= khz * 9997 && got * 10000 <= khz * 10003);
		CHECK_EQ(cpuid_regs[3], 0);
		guest_cpuid(0x16);
		CHECK_EQ(cpuid_regs[0], (khz + 500) / 1000);
		CHECK_EQ(cpuid_regs[1], (khz + 500) / 1000);
		CHECK_EQ(cpuid_regs[2], 1000);
		guest_cpuid(0x40000010);
		CHECK_EQ(cpuid_regs[0], khz);
		CHECK_EQ(cpuid_regs[1], 1000000);
		CHECK_EQ(cpuid_regs[2], 0);
	}
	vm.guest_tsc_hz = 2994374000ULL;
	guest_cpuid(0x15);
	CHECK_EQ(cpuid_regs[1], 2129); /* nearest 2994374 kHz : 1 GHz, EBX < 4295 */
	CHECK_EQ(cpuid_regs[0], 711);
	vm.guest_tsc_hz = 99999000ULL; /* Bochs: 100 MHz to Linux, not 1.214 MHz */
	guest_cpuid(0x15);
	CHECK_EQ((u32)(1000000u * cpuid_regs[1]) / cpuid_regs[0], 100000);
	guest_cpuid(0x40000000);
	CHECK_EQ(cpuid_regs[0], 0x40000010);
	CHECK(!memcmp(&cpuid_regs[1], "Ambe", 4));
	guest_cpuid(0x40000005);
	CHECK_EQ(cpuid_regs[0] | cpuid_regs[1] | cpuid_regs[2] | cpuid_regs[3], 0);
	guest_cpuid(0);
	CHECK(cpuid_regs[0] >= 0x16);
	/* A host whose basic leaves end at 0xD: 0x14 reads zero, 0x15 is there. */
	cpu.max_leaf = 0xD;
	guest_cpuid(0x14);
	CHECK_EQ(cpuid_regs[0] | cpuid_regs[1] | cpuid_regs[2] | cpuid_regs[3], 0);
	guest_cpuid(0x15);
	CHECK_EQ(cpuid_regs[2], 1000000000);
	guest_cpuid(0);
	CHECK(cpuid_regs[0] >= 0x16);
	CHECK_EQ(stopped, 0);
}

/* What Amber does not give every guest alike stays hidden whatever the host
 * offers (Linux uses each one it sees): MCE/MCA (MCG_CAP would #GP), LA57,
 * RDTSCP/RDPID (TSC_AUX is not per vCPU), CET, the speculation
 * controls and ARCH_CAPABILITIES; leaf 7's subleaves past 0 read zero. */
static void test_hidden_features(void)
{
	reset();
	__asm__ volatile("cpuid" : "=a"(cpu.max_leaf) : "a"(0) : "ebx", "ecx", "edx");
	guest_cpuid(1);
	CHECK_EQ(cpuid_regs[3] & (BIT(7) | BIT(14)), 0);
	CHECK(cpuid_regs[3] & BIT(9)); /* the APIC, always */
	guest_cpuid(0x80000001);
	CHECK_EQ(cpuid_regs[3] & (BIT(7) | BIT(14) | BIT(27)), 0);
	if (cpu.max_leaf >= 7) {
		guest_cpuid(7);
		CHECK_EQ(cpuid_regs[1] & (BIT(1) | BIT(2) | BIT(12) | BIT(15)), BIT(1));
		CHECK_EQ(cpuid_regs[2] & (BIT(5) | BIT(7) | BIT(16) | BIT(22) | BIT(30)), 0);
		CHECK_EQ(cpuid_regs[3] & (BIT(20) | 0xFC000000u), 0);
		v.regs[REG_RAX] = 7;
		v.regs[REG_RCX] = 1;
		CHECK_EQ(emulate_cpuid(&v, &exit_rec), EXIT_RESUME);
		CHECK_EQ(v.regs[REG_RAX] | v.regs[REG_RBX] | v.regs[REG_RCX] | v.regs[REG_RDX], 0);
	}
	guest_cpuid(0x80000008);
	CHECK_EQ(cpuid_regs[1], 0);
	guest_cpuid(0x80000007); /* the invariant TSC alone */
	CHECK_EQ(cpuid_regs[0] | cpuid_regs[1] | cpuid_regs[2], 0);
	CHECK_EQ(cpuid_regs[3], BIT(8));
	CHECK_EQ(stopped, 0);
}

/* A VM's CPU model restricts what CPUID shows and what XSETBV takes: with
 * the portable model no PCID or AVX-512 whatever this host has, XCR0 at most
 * x87+SSE+AVX; a model the host lacks is refused with the missing named. */
static void test_cpu_model(void)
{
	struct cpuid_features want;
	char missing[200];

	reset();
	__asm__ volatile("cpuid" : "=a"(cpu.max_leaf) : "a"(0) : "ebx", "ecx", "edx");
	__asm__ volatile("cpuid" : "=a"(cpu.max_ext_leaf) : "a"(0x80000000) : "ebx", "ecx", "edx");
	cpu_model_mask(CPU_MODEL_PORTABLE, &want);
	/* This host: the model is refused exactly when it lacks a bit of it. */
	vmm_cpuid_offered(&vm.cpuid);
	int lacks = cpuid_features_missing(&want, &vm.cpuid, missing, sizeof(missing));
	CHECK_EQ(vm_set_cpu_model(&vm, CPU_MODEL_PORTABLE, missing, sizeof(missing)),
		 lacks ? -EOPNOTSUPP : 0);
	CHECK_EQ(vm.cpu_model, lacks ? CPU_MODEL_HOST : CPU_MODEL_PORTABLE);
	/* Whatever the host: a VM shown the model's words sees no more. */
	vm.cpuid = want;
	guest_cpuid(1);
	CHECK_EQ(cpuid_regs[2] & ~(want.w[CPUID_W_1_ECX] | BIT(27)), 0); /* (OSXSAVE: CR4's) */
	CHECK_EQ(cpuid_regs[2] & BIT(17), 0);				 /* PCID */
	CHECK_EQ(cpuid_regs[3] & ~want.w[CPUID_W_1_EDX], 0);
	guest_cpuid(0x80000001);
	CHECK_EQ(cpuid_regs[2] & ~want.w[CPUID_W_81_ECX], 0);
	if (cpu.max_leaf >= 7) {
		guest_cpuid(7);
		CHECK_EQ(cpuid_regs[1] & ~want.w[CPUID_W_7_EBX], 0);
		CHECK_EQ(cpuid_regs[1] & BIT(16), 0); /* AVX512F */
	}
	if (cpu.max_leaf >= 0xD) {
		guest_cpuid(0xD);
		CHECK_EQ(cpuid_regs[0] & ~7u, 0);
		CHECK_EQ(cpuid_regs[3], 0);
	}
	/* XSETBV: within the stub's allowed 7, but the model allows 3 only. */
	vm.cpuid.xcr0 = 3;
	injects = advances = 0;
	v.regs[REG_RCX] = 0;
	v.regs[REG_RAX] = 7;
	v.regs[REG_RDX] = 0;
	CHECK_EQ(emulate_xsetbv(&v, &exit_rec), EXIT_RESUME);
	CHECK_EQ(injects, 1); /* #GP */
	CHECK_EQ(advances, 0);
	v.regs[REG_RAX] = 3;
	CHECK_EQ(emulate_xsetbv(&v, &exit_rec), EXIT_RESUME);
	CHECK_EQ(injects, 1);
	CHECK_EQ(advances, 1);
	vm_set_cpu_model(&vm, CPU_MODEL_HOST, NULL, 0);
	CHECK_EQ(vm.cpu_model, CPU_MODEL_HOST);
	CHECK_EQ(vm.cpuid.xcr0, 7);
}

int main(void)
{
	test_cpu_model();
	test_time_leaves();
	test_hidden_features();
	test_one_field();
	test_checks();
	test_backend_failure();
	return test_done("emulate");
}
