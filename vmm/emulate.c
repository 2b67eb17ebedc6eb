/*
 * What a guest's intercepted instructions do, written once for both backends:
 * port I/O (dispatched to the emulated devices), CPUID (the host's, with the
 * virtualization extensions and what Amber does not emulate hidden), MSRs from
 * an allow-list (anything else is #GP) and XSETBV.
 * Host context, on the exit path of the vCPU named in each call.
 */
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/x86.h"
#include "vmm/platform.h"
#include "vmm/intr.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define GP_VECTOR 13

/* ---- port I/O ------------------------------------------------------------ */

#define DEBUG_EXIT_PORT 0xF4 /* QEMU's isa-debug-exit, iobase=0xf4, iosize=4 */

static void debug_exit(struct vm *vm, u32 code)
{
	vuart_flush(vm);
	vm->exit_code = (int)code;
	vm->state = VM_EXITED;
	printk("[vm%d] exited with code %u\n", vm->id, code);
}

static void unemulated(struct vcpu *v, const struct vm_exit *e)
{
	struct vm *vm = v->vm;
	u16 port = e->io.port;

	vm->io_unemulated++;
	for (unsigned i = 0; i < ARRAY_SIZE(vm->warned_ports); i++) {
		if (vm->warned_ports[i] == port)
			break;
		if (!vm->warned_ports[i]) {
			vm->warned_ports[i] = port;
			printk("[vm%d] note: port 0x%x is not emulated (reads give all ones, writes "
			       "are dropped)\n",
			       vm->id, port);
			break;
		}
	}
	if (vm->io_unemulated > IO_STORM_LIMIT)
		vcpu_stop_report(v, e,
				 "I/O storm: more than %d accesses to unemulated ports "
				 "(the last one %s port 0x%x)",
				 IO_STORM_LIMIT, e->io.in ? "read" : "wrote", port);
}

void emulate_port(struct vcpu *v, const struct vm_exit *e, u32 *val)
{
	struct vm *vm = v->vm;
	u16 port = e->io.port;

	if (port >= DEBUG_EXIT_PORT && port < DEBUG_EXIT_PORT + 4) {
		if (!e->io.in)
			debug_exit(vm, *val);
		return;
	}
	if (vdev_io(v, port, e->io.size, e->io.in, val))
		return;
	unemulated(v, e);
}

int emulate_io(struct vcpu *v, const struct vm_exit *e)
{
	u64 mask = e->io.size == 1 ? 0xFF : e->io.size == 2 ? 0xFFFF : 0xFFFFFFFFULL;
	u64 *rax = &v->regs[REG_RAX];
	u32 val;
	int err;

	if (e->io.in) {
		val = 0xFFFFFFFF;
		emulate_port(v, e, &val);
		/* A 32-bit IN zero-extends into RAX; 8 and 16 bits merge (SDM "IN"). */
		*rax = e->io.size == 4 ? (u32)val : (*rax & ~mask) | (val & mask);
	} else {
		val = (u32)(*rax & mask);
		emulate_port(v, e, &val);
	}
	if (v->vm->state == VM_STOPPED)
		return EXIT_YIELD;
	err = vcpu_ops->advance_rip(v, e);
	if (err)
		return vcpu_backend_failed(v, e, "move RIP past the I/O instruction", err);
	if (vm_reset_pending(v))
		return EXIT_YIELD; /* the next slice loads the initial FPU state */
	return v->vm->state == VM_RUNNING ? EXIT_RESUME : EXIT_YIELD;
}

/* ---- CPUID --------------------------------------------------------------- */

/* SDM Vol. 2A "CPUID" and APM Vol. 3 Appendix E "Obtaining Processor
 * Information Via the CPUID Instruction". The feature bits: vmm/cpumodel.c. */
#define CPUID_1_ECX_XSAVE BIT(26)
#define CPUID_1_ECX_OSXSAVE BIT(27)
#define CPUID_80000007_EDX_INVARIANT_TSC BIT(8)
#define X86_CR4_OSXSAVE BIT(18)

#define AMBER_CPUID_BASE 0x40000000
/* The hypervisor signature in EBX, ECX, EDX of leaf 0x40000000. */
static const char amber_signature[12] = "AmberAmberAm";
/* The timing leaf of VMware's convention, which QEMU ("vmware-cpuid-freq")
 * and several guests follow: EAX the TSC and EBX the local APIC timer's
 * clock, both in kHz. */
#define AMBER_CPUID_TIMING 0x40000010
#define CPUID_TSC_LEAF 0x15  /* SDM "Time Stamp Counter and Nominal Core Crystal Clock" */
#define CPUID_FREQ_LEAF 0x16 /* SDM "Processor Frequency Information" */

/*
 * The fraction a/b closest to num/den with a <= amax (continued fractions:
 * the last convergent or semiconvergent within the bound). Leaf 0x15 needs
 * it because Linux computes the TSC rate as crystal_khz * EBX / EAX in 32
 * bits: with a 1 GHz crystal EBX must stay under 4295, or the product wraps
 * (a 100 MHz TSC read as 1.2 MHz).
 */
static u64 absdiff(u64 x, u64 y) { return x > y ? x - y : y - x; }

static void ratio_bounded(u64 num, u64 den, u64 amax, u32 *a, u32 *b)
{
	u64 h0 = 0, h1 = 1, k0 = 1, k1 = 0, n = num, d = den;

	while (d) {
		u64 q = n / d, r = n % d, h2 = q * h1 + h0, k2 = q * k1 + k0;

		if (h2 > amax) {
			u64 t = (amax - h0) / h1, hs = t * h1 + h0, ks = t * k1 + k0;
			/* The semiconvergent when it is nearer (the errors
			 * cross-multiplied, exact in 128 bits). */
			unsigned __int128 es = (unsigned __int128)absdiff(hs * den, ks * num) * k1;
			unsigned __int128 e1 = (unsigned __int128)absdiff(h1 * den, k1 * num) * ks;

			if (t && es < e1) {
				h1 = hs;
				k1 = ks;
			}
			break;
		}
		h0 = h1;
		h1 = h2;
		k0 = k1;
		k1 = k2;
		n = d;
		d = r;
	}
	*a = (u32)h1;
	*b = (u32)(k1 ? k1 : 1);
}

/*
 * The time leaves, from the guest's TSC rate and PLAT_APIC_BUS_HZ: leaf 0x15
 * as TSC = crystal * EBX / EAX with the crystal being the APIC timer's clock
 * (Linux takes it as such), the ratio the nearest one whose product
 * Linux's 32-bit arithmetic holds (within 0.03 %, exact for round rates);
 * leaf 0x16 in MHz; 0x40000010 in kHz. They are reported
 * whatever the host's vendor: 0x15/0x16 are Intel's, a guest that sees an
 * AMD vendor string (QEMU TCG) does not read them, and 0x40000010 is
 * vendor-neutral.
 */
static void time_leaf(const struct vm *vm, u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
	u32 tsc_khz = (u32)((vdev_tsc_hz(vm) + 500) / 1000);
	u32 bus_khz = (u32)(PLAT_APIC_BUS_HZ / 1000);

	*a = *b = *c = *d = 0;
	if (!tsc_khz)
		return;
	switch (leaf) {
	case CPUID_TSC_LEAF:
		ratio_bounded(tsc_khz, bus_khz, 0xFFFFFFFFu / bus_khz, b, a);
		*c = (u32)PLAT_APIC_BUS_HZ;
		break;
	case CPUID_FREQ_LEAF:
		*a = *b = (tsc_khz + 500) / 1000;	/* base and maximum MHz */
		*c = (u32)(PLAT_APIC_BUS_HZ / 1000000); /* bus (reference) MHz */
		break;
	case AMBER_CPUID_TIMING:
		*a = tsc_khz;
		*b = bus_khz;
		break;
	}
}

void vmm_cpuid_offered(struct cpuid_features *f)
{
	static const u32 leaves[][2] = { { 1, 0 }, { 7, 0 }, { 0xD, 1 }, { 0x80000001, 0 } };

	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < ARRAY_SIZE(leaves); i++) {
		u32 leaf = leaves[i][0], a, b, c, d;

		if (leaf < 0x80000000 ? leaf > cpu.max_leaf : leaf > cpu.max_ext_leaf)
			continue;
		cpuid_count(leaf, leaves[i][1], &a, &b, &c, &d);
		cpuid_mask_leaf(leaf, leaves[i][1], &a, &b, &c, &d);
		cpuid_features_from_leaf(f, leaf, leaves[i][1], a, b, c, d);
	}
	f->xcr0 = vcpu_xcr0_allowed();
}

void vmm_print_cpu_models(void)
{
	static const char *const words[CPUID_WORDS] = { "1:ECX",	"1:EDX",       "7:EBX",
							"7:ECX",	"7:EDX",       "D.1:EAX",
							"80000001:ECX", "80000001:EDX" };
	struct cpuid_features here;
	char line[200];

	vmm_cpuid_offered(&here);
	printk("guest CPUID features offered (cpu=host):\n ");
	for (int i = 0; i < CPUID_WORDS; i++)
		printk(" %s 0x%08x%s", words[i], here.w[i], i % 3 == 2 ? "\n " : "");
	printk(" XCR0 0x%lx\n", here.xcr0);
	for (u32 m = CPU_MODEL_HOST + 1; m < CPU_MODELS; m++) {
		if (!vmm_cpu_model_missing(m, line, sizeof(line))) {
			printk("cpu=%s: offered\n", cpu_model_name(m));
			continue;
		}
		printk("cpu=%s: this CPU lacks\n", cpu_model_name(m));
		shell_wrap("  ", 2, line);
	}
}

int vmm_cpu_model_missing(u32 model, char *missing, size_t len)
{
	struct cpuid_features here, want;

	vmm_cpuid_offered(&here);
	cpu_model_mask(model, &want);
	return model == CPU_MODEL_HOST ? 0 : cpuid_features_missing(&want, &here, missing, len);
}

int vm_set_cpu_model(struct vm *vm, u32 model, char *missing, size_t len)
{
	struct cpuid_features here, want;

	vmm_cpuid_offered(&here);
	cpu_model_mask(model, &want);
	if (model != CPU_MODEL_HOST && cpuid_features_missing(&want, &here, missing, len))
		return -EOPNOTSUPP;
	vm->cpu_model = model;
	cpuid_features_and(&vm->cpuid, &here, &want);
	return 0;
}

int emulate_cpuid(struct vcpu *v, const struct vm_exit *e)
{
	u32 leaf = (u32)v->regs[REG_RAX], sub = (u32)v->regs[REG_RCX];
	u32 a = 0, b = 0, c = 0, d = 0;
	u64 allowed = vcpu_xcr0_allowed() & v->vm->cpuid.xcr0;
	int err;

	if ((leaf & 0xFFFFFF00) == AMBER_CPUID_BASE) {
		if (leaf == AMBER_CPUID_BASE) {
			a = AMBER_CPUID_TIMING; /* the highest hypervisor leaf */
			memcpy(&b, amber_signature, 4);
			memcpy(&c, amber_signature + 4, 4);
			memcpy(&d, amber_signature + 8, 4);
		} else if (leaf == AMBER_CPUID_TIMING) {
			time_leaf(v->vm, leaf, &a, &b, &c, &d);
		}
		goto out;
	}
	if (leaf == CPUID_TSC_LEAF || leaf == CPUID_FREQ_LEAF) {
		time_leaf(v->vm, leaf, &a, &b, &c, &d);
		goto out;
	}
	/* A basic leaf the host lacks but the guest may ask for (the maximum
	 * below covers 0x15/0x16): zero, not Intel's repeat of the highest leaf. */
	if (leaf > cpu.max_leaf && leaf < 0x80000000)
		goto out;
	cpuid_count(leaf, sub, &a, &b, &c, &d);
	/* Amber's masks, then the VM's CPU model (vmm/cpumodel.c). */
	cpuid_mask_leaf(leaf, sub, &a, &b, &c, &d);
	cpuid_apply_features(&v->vm->cpuid, leaf, sub, &a, &b, &c, &d);
	switch (leaf) {
	case 0:
		a = MAX(a, (u32)CPUID_FREQ_LEAF);
		break;
	case 1:
		/* OSXSAVE mirrors the guest's CR4. */
		if (c & CPUID_1_ECX_XSAVE) {
			u64 cr4;

			err = vcpu_ops->get_field(v, VCPU_FIELD_CR4, &cr4);
			if (err)
				return vcpu_backend_failed(v, e, "read CR4 for CPUID", err);
			if (cr4 & X86_CR4_OSXSAVE)
				c |= CPUID_1_ECX_OSXSAVE;
		}
		b = (b & 0x00FFFFFF) | ((u32)v->id << 24); /* initial APIC id */
		break;
	case 5:	  /* MONITOR/MWAIT */
	case 6:	  /* thermal and power management */
	case 0xA: /* performance monitoring: no virtual PMU */
		a = b = c = d = 0;
		break;
	case 0xB:
	case 0x1F:
		d = v->id; /* x2APIC id */
		break;
	case 0xD:
		if (sub == 0) {
			a = (u32)allowed;
			d = (u32)(allowed >> 32);
			/* EBX (size for the XCR0 in force) is right as read: the guest's
			 * XCR0 is loaded while it runs. ECX: size for all it may enable. */
			c = 0;
			for (u32 i = 2; i < 32; i++) {
				u32 sa, sb, sc, sd;

				if (!(allowed & BIT(i)))
					continue;
				cpuid_count(0xd, i, &sa, &sb, &sc, &sd);
				c = MAX(c, sa + sb);
			}
			c = MAX(c, 576u);
		} else if (sub >= 2 && sub < 64 && !(allowed & BIT(sub))) {
			a = b = c = d = 0;
		}
		break;
	case 0x80000007:
		/* Advanced power management: only the invariant TSC, which the
		 * guest TSC is (a fixed rate, vdev_tsc_hz, on any host, paused or
		 * restored). */
		a = b = c = 0;
		d = CPUID_80000007_EDX_INVARIANT_TSC;
		break;
	case 0x80000008:
		/* EBX: AMD's speculation controls (IBPB, IBRS, STIBP, SSBD...),
		 * whose MSRs Amber does not hold; EAX (address sizes) stays. */
		b = 0;
		break;
	case 0x8000000A: /* SVM features */
		a = b = c = d = 0;
		break;
	default:
		break;
	}
out:
	v->regs[REG_RAX] = a;
	v->regs[REG_RBX] = b;
	v->regs[REG_RCX] = c;
	v->regs[REG_RDX] = d;
	err = vcpu_ops->advance_rip(v, e);
	if (err)
		return vcpu_backend_failed(v, e, "move RIP past CPUID", err);
	return EXIT_RESUME;
}

/* ---- MSRs ------------------------------------------------------------------ */

#define MSR_IA32_TSC_ADJUST 0x0000003b
#define MSR_IA32_UCODE_REV 0x0000008b
#define MSR_K8_INT_PENDING_MSG 0xc0010055 /* APM: "Interrupt Pending" */
#define MSR_MTRR_PHYS_FIRST 0x00000200
#define MSR_MTRR_PHYS_LAST 0x0000020f
#define MSR_MTRR_FIX_64K 0x00000250
#define MSR_MTRR_FIX_16K_80000 0x00000258
#define MSR_MTRR_FIX_16K_A0000 0x00000259
#define MSR_MTRR_FIX_4K_FIRST 0x00000268
#define MSR_MTRR_FIX_4K_LAST 0x0000026f
#define MTRR_DEF_TYPE_E BIT(11)
#define MTRR_TYPE_WB 6

static bool is_mtrr(u32 msr)
{
	return msr == MSR_IA32_MTRR_DEF_TYPE ||
	       (msr >= MSR_MTRR_PHYS_FIRST && msr <= MSR_MTRR_PHYS_LAST) ||
	       msr == MSR_MTRR_FIX_64K || msr == MSR_MTRR_FIX_16K_80000 ||
	       msr == MSR_MTRR_FIX_16K_A0000 ||
	       (msr >= MSR_MTRR_FIX_4K_FIRST && msr <= MSR_MTRR_FIX_4K_LAST);
}

static bool canonical(u64 va) { return (u64)((s64)(va << 16) >> 16) == va; }

/* PAT entries must be UC, WC, WT, WP, WB or UC- (SDM Vol. 3A 12.12.2
 * "IA32_PAT MSR"); anything else is #GP. */
static bool pat_valid(u64 pat)
{
	for (int i = 0; i < 8; i++) {
		u8 t = (pat >> (8 * i)) & 0xFF;

		if (t != 0 && t != 1 && t != 4 && t != 5 && t != 6 && t != 7)
			return false;
	}
	return true;
}

/* The backend field that holds `msr`, or -1. */
static int msr_field(u32 msr)
{
	switch (msr) {
	case MSR_IA32_PAT:
		return VCPU_FIELD_PAT;
	case MSR_IA32_SYSENTER_CS:
		return VCPU_FIELD_SYSENTER_CS;
	case MSR_IA32_SYSENTER_ESP:
		return VCPU_FIELD_SYSENTER_ESP;
	case MSR_IA32_SYSENTER_EIP:
		return VCPU_FIELD_SYSENTER_EIP;
	case MSR_STAR:
		return VCPU_FIELD_STAR;
	case MSR_LSTAR:
		return VCPU_FIELD_LSTAR;
	case MSR_CSTAR:
		return VCPU_FIELD_CSTAR;
	case MSR_SYSCALL_MASK:
		return VCPU_FIELD_SFMASK;
	case MSR_FS_BASE:
		return VCPU_FIELD_FS_BASE;
	case MSR_GS_BASE:
		return VCPU_FIELD_GS_BASE;
	case MSR_KERNEL_GS_BASE:
		return VCPU_FIELD_KERNEL_GS_BASE;
	case MSR_EFER:
		return VCPU_FIELD_EFER;
	case MSR_IA32_TSC:
		return VCPU_FIELD_TSC;
	default:
		return -1;
	}
}

/* msr_read and msr_write return 0, -EPERM for an access the guest gets #GP
 * for, or the backend's error when its state could not be reached. They move
 * only the one field (the TSC offset is written only by a write of the TSC,
 * so the guest's clock loses nothing to an emulated WRMSR). */
static int msr_read(struct vcpu *v, u32 msr, u64 *val)
{
	int f = msr_field(msr), err = vlapic_rdmsr(v, msr, val);

	if (err != -ENOENT) /* the APIC's MSRs: -EINVAL is #GP */
		return err ? -EPERM : 0;

	if (f >= 0)
		return vcpu_ops->get_field(v, (enum vcpu_field)f, val);
	if (is_mtrr(msr)) {
		/* No variable or fixed ranges; the default type is write-back. */
		*val = msr == MSR_IA32_MTRR_DEF_TYPE ? MTRR_DEF_TYPE_E | MTRR_TYPE_WB : 0;
		return 0;
	}
	switch (msr) {
	case MSR_IA32_MTRRCAP:
	case MSR_IA32_UCODE_REV:
	case MSR_IA32_TSC_ADJUST:    /* the guest's TSC is never adjusted */
	case MSR_K8_INT_PENDING_MSG: /* no C1E (Linux reads it on K8 CPUs) */
		*val = 0;
		return 0;
	case MSR_IA32_MISC_ENABLE:
		*val = 1; /* fast strings */
		return 0;
	default:
		return -EPERM;
	}
}

/* EFER as the guest may write it: LMA is the CPU's to set, LME cannot change
 * while paging is on (SDM Vol. 3A 2.2.1 "Extended Feature Enable Register"). */
static int efer_check(struct vcpu *v, u64 *val)
{
	u64 efer_ok = EFER_SCE | EFER_LME | EFER_LMA | (cpu.nx ? EFER_NX : 0);
	u64 efer, cr0;
	int err;

	if (*val & ~efer_ok)
		return -EPERM;
	err = vcpu_ops->get_field(v, VCPU_FIELD_EFER, &efer);
	if (!err)
		err = vcpu_ops->get_field(v, VCPU_FIELD_CR0, &cr0);
	if (err)
		return err;
	if (((*val ^ efer) & EFER_LME) && (cr0 & BIT(31)))
		return -EPERM;
	*val = (*val & ~EFER_LMA) | (efer & EFER_LMA);
	return 0;
}

static int msr_write(struct vcpu *v, u32 msr, u64 val)
{
	int f = msr_field(msr), err = vlapic_wrmsr(v, msr, val);

	if (err != -ENOENT)
		return err ? -EPERM : 0;

	if (is_mtrr(msr))
		return 0; /* accepted, without effect: EPT/NPT use write-back */
	/* TSC_ADJUST is held at 0: writing 0 is the only write that keeps it
	 * (SDM Vol. 3B 18.17.3 "Time-Stamp Counter Adjustment"); a guest that
	 * moves its TSC writes the TSC itself. */
	if (msr == MSR_IA32_TSC_ADJUST)
		return val ? -EPERM : 0;
	if (f < 0)
		return msr == MSR_IA32_UCODE_REV ? 0 : -EPERM;
	switch (msr) {
	case MSR_EFER:
		err = efer_check(v, &val);
		if (err)
			return err;
		break;
	case MSR_IA32_PAT:
		if (!pat_valid(val))
			return -EPERM;
		break;
	case MSR_LSTAR:
	case MSR_CSTAR:
	case MSR_FS_BASE:
	case MSR_GS_BASE:
	case MSR_KERNEL_GS_BASE:
	case MSR_IA32_SYSENTER_ESP:
	case MSR_IA32_SYSENTER_EIP:
		if (!canonical(val))
			return -EPERM;
		break;
	default:
		break;
	}
	return vcpu_ops->set_field(v, (enum vcpu_field)f, val);
}

/* The end of an emulated instruction: RIP moves past it when `err` is 0, the
 * guest gets #GP for -EPERM; any other error is the backend's and stops the VM. */
static int finish_insn(struct vcpu *v, const struct vm_exit *e, int err)
{
	const char *what = "move RIP past the instruction";

	if (err == -EPERM) {
		err = vcpu_inject_exception(v, GP_VECTOR, true, 0);
		what = "inject #GP";
	} else if (!err) {
		err = vcpu_ops->advance_rip(v, e);
	} else {
		what = "reach the vCPU state";
	}
	return err ? vcpu_backend_failed(v, e, what, err) : EXIT_RESUME;
}

int emulate_rdmsr(struct vcpu *v, const struct vm_exit *e)
{
	u64 val = 0;
	int err = msr_read(v, (u32)v->regs[REG_RCX], &val);

	if (!err) {
		v->regs[REG_RAX] = (u32)val;
		v->regs[REG_RDX] = val >> 32;
	}
	return finish_insn(v, e, err);
}

int emulate_wrmsr(struct vcpu *v, const struct vm_exit *e)
{
	u64 val = (v->regs[REG_RDX] << 32) | (u32)v->regs[REG_RAX];

	return finish_insn(v, e, msr_write(v, (u32)v->regs[REG_RCX], val));
}

/* XSETBV: only XCR0, only valid combinations of what the guest may use
 * (SDM Vol. 2C "XSETBV"); anything else is #GP. */
int emulate_xsetbv(struct vcpu *v, const struct vm_exit *e)
{
	u64 val = (v->regs[REG_RDX] << 32) | (u32)v->regs[REG_RAX];

	if ((u32)v->regs[REG_RCX] != 0 || !vcpu_xcr0_valid(val) || (val & ~v->vm->cpuid.xcr0))
		return finish_insn(v, e, -EPERM);
	vcpu_fpu_set_xcr0(v, val);
	return finish_insn(v, e, 0);
}
