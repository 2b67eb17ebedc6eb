/*
 * CPU identification and the virtualization report: CPUID leaves and the VMX
 * or SVM capability MSRs, read once at boot into `cpu`. Never changes a
 * control MSR (IA32_FEATURE_CONTROL, VM_CR, EFER): enabling belongs to the VMM.
 * Host context, boot CPU; the `cpu` shell command prints the report.
 */
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/x86.h"

/* CPUID bits, SDM Vol. 2A "CPUID" tables 3-10/3-11 and APM Vol. 3 Appendix E. */
#define CPUID_1_ECX_VMX BIT(5)
#define CPUID_1_ECX_SSE42 BIT(20)
#define CPUID_1_ECX_XSAVE BIT(26)
#define CPUID_1_ECX_AVX BIT(28)
#define CPUID_1_ECX_HYPERVISOR BIT(31)
#define CPUID_1_EDX_FXSR BIT(24)
#define CPUID_80000001_ECX_SVM BIT(2)
#define CPUID_80000001_EDX_NX BIT(20)
#define CPUID_80000001_EDX_PDPE1GB BIT(26)
#define CPUID_80000007_EDX_INVARIANT_TSC BIT(8)
/* APM Vol. 3 E.4.9 "Function 8000_000Ah: SVM Revision and Feature Identification". */
#define CPUID_8000000A_EDX_NPT BIT(0)
#define CPUID_8000000A_EDX_NRIPS BIT(3)
#define CPUID_8000000A_EDX_TSC_RATE BIT(4)
#define CPUID_8000000A_EDX_VMCB_CLEAN BIT(5)
#define CPUID_8000000A_EDX_FLUSH_ASID BIT(6)
#define CPUID_8000000A_EDX_DECODE_ASSISTS BIT(7)

/* SDM Vol. 3D A.1 "Basic VMX Information" .. A.10 "VPID and EPT Capabilities".
 * Allowed-1 settings are the high 32 bits of the control MSRs. */
#define VMX_BASIC_REVISION_MASK 0x7fffffffu
#define VMX_BASIC_TRUE_CTLS BIT(55)
#define PIN_BASED_VMX_PREEMPTION_TIMER BIT(6)
#define CPU_BASED_ACTIVATE_SECONDARY_CONTROLS BIT(31)
#define SECONDARY_EXEC_ENABLE_EPT BIT(1)
#define SECONDARY_EXEC_ENABLE_VPID BIT(5)
#define SECONDARY_EXEC_UNRESTRICTED_GUEST BIT(7)
#define VMX_EPT_PAGE_WALK_4_BIT BIT(6)
#define VMX_EPTP_WB_BIT BIT(14)
#define VMX_EPT_2MB_PAGE_BIT BIT(16)
#define VMX_EPT_1GB_PAGE_BIT BIT(17)
#define VMX_EPT_AD_BIT BIT(21)

struct cpu_features cpu;

/* Extra facts for the report only. */
static u64 feature_control;
static bool feature_control_faults;
static bool vmx_true_ctls, vmx_secondary;
static u64 vm_cr;

static void cpu_identify(void)
{
	u32 a, b, c, d, base_family, ext_model;
	u32 *brand = (u32 *)cpu.brand;
	char *s;

	cpuid(0, &a, &b, &c, &d);
	cpu.max_leaf = a;
	memcpy(cpu.vendor, &b, 4);
	memcpy(cpu.vendor + 4, &d, 4);
	memcpy(cpu.vendor + 8, &c, 4);
	cpu.vendor[12] = 0;
	cpu.is_intel = !strcmp(cpu.vendor, "GenuineIntel");
	cpu.is_amd = !strcmp(cpu.vendor, "AuthenticAMD");

	cpuid(1, &a, &b, &c, &d);
	/* SDM Vol. 2A CPUID, "Figure 3-6. Version Information Returned by CPUID in EAX". */
	base_family = (a >> 8) & 0xf;
	ext_model = (a >> 16) & 0xf;
	cpu.family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
	cpu.model = (a >> 4) & 0xf;
	if (base_family == 0x6 || base_family == 0xf)
		cpu.model |= ext_model << 4;
	cpu.stepping = a & 0xf;
	cpu.vmx = c & CPUID_1_ECX_VMX;
	cpu.sse42 = c & CPUID_1_ECX_SSE42;
	cpu.xsave = c & CPUID_1_ECX_XSAVE;
	cpu.avx = c & CPUID_1_ECX_AVX;
	cpu.hypervisor = c & CPUID_1_ECX_HYPERVISOR;
	cpu.fxsr = d & CPUID_1_EDX_FXSR;
	if (cpu.hypervisor) {
		/* The hypervisor leaf's signature: EBX, ECX, EDX (the range set
		 * aside for hypervisors by the SDM's CPUID description). */
		u32 *sig = (u32 *)cpu.hv_vendor;

		cpuid(0x40000000, &a, &sig[0], &sig[1], &sig[2]);
		cpu.hv_vendor[12] = 0;
		for (int i = 0; i < 12 && cpu.hv_vendor[i]; i++)
			if (cpu.hv_vendor[i] < ' ' || cpu.hv_vendor[i] > '~')
				cpu.hv_vendor[0] = 0; /* no signature there */
	}

	if (cpu.xsave && cpu.max_leaf >= 0xd) {
		/* Leaf 0xD sub-leaf 0: EDX:EAX the XCR0 bits supported, ECX the
		 * XSAVE area size if all of them were enabled. */
		cpuid_count(0xd, 0, &a, &b, &c, &d);
		cpu.xcr0_supported = (u64)d << 32 | a;
		cpu.xsave_size = c;
	}

	cpuid(0x80000000, &a, &b, &c, &d);
	cpu.max_ext_leaf = a >= 0x80000000 && a < 0x8000ffff ? a : 0;
	if (cpu.max_ext_leaf >= 0x80000001) {
		cpuid(0x80000001, &a, &b, &c, &d);
		cpu.svm = c & CPUID_80000001_ECX_SVM;
		cpu.nx = d & CPUID_80000001_EDX_NX;
		cpu.pdpe1gb = d & CPUID_80000001_EDX_PDPE1GB;
	}
	if (cpu.max_ext_leaf >= 0x80000004) {
		for (u32 i = 0; i < 3; i++)
			cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
			      &brand[4 * i + 3]);
		cpu.brand[48] = 0;
		/* Intel pads the brand string with leading spaces. */
		for (s = cpu.brand; *s == ' '; s++)
			;
		memmove(cpu.brand, s, strlen(s) + 1);
		/* AMD pads it with trailing ones. */
		for (size_t n = strlen(cpu.brand); n > 0 && cpu.brand[n - 1] == ' '; n--)
			cpu.brand[n - 1] = 0;
	}
	if (cpu.max_ext_leaf >= 0x80000007) {
		cpuid(0x80000007, &a, &b, &c, &d);
		cpu.tsc_invariant = d & CPUID_80000007_EDX_INVARIANT_TSC;
	}
	cpu.phys_addr_bits = 36; /* SDM: the default when leaf 0x80000008 is absent */
	if (cpu.max_ext_leaf >= 0x80000008) {
		cpuid(0x80000008, &a, &b, &c, &d);
		cpu.phys_addr_bits = a & 0xff;
	}
}

/* VT-x: SDM Vol. 3C 24.6 "Discovering Support for VMX" and 24.7 "Enabling and
 * Entering VMX Operation"; the capability MSRs of SDM Vol. 3D Appendix A. */
static void cpu_probe_vmx(void)
{
	u64 basic, pin, proc, proc2 = 0, ept = 0;

	if (rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &feature_control) < 0) {
		feature_control_faults = true;
	} else if ((feature_control & FEATURE_CONTROL_LOCKED) &&
		   !(feature_control & FEATURE_CONTROL_VMXON_OUTSIDE_SMX)) {
		cpu.vmx_locked_off = true;
	}
	if (rdmsr_safe(MSR_IA32_VMX_BASIC, &basic) < 0 ||
	    rdmsr_safe(MSR_IA32_VMX_PINBASED_CTLS, &pin) < 0 ||
	    rdmsr_safe(MSR_IA32_VMX_PROCBASED_CTLS, &proc) < 0) {
		pr_warn("cpu: VMX is advertised but its capability MSRs fault; VT-x unusable\n");
		cpu.vmx = false;
		return;
	}
	cpu.vmcs_revision = (u32)basic & VMX_BASIC_REVISION_MASK;
	vmx_true_ctls = basic & VMX_BASIC_TRUE_CTLS;
	cpu.vmx_preempt_timer = (pin >> 32) & PIN_BASED_VMX_PREEMPTION_TIMER;
	vmx_secondary = (proc >> 32) & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS;
	if (vmx_secondary && rdmsr_safe(MSR_IA32_VMX_PROCBASED_CTLS2, &proc2) < 0)
		proc2 = 0;
	proc2 >>= 32;
	cpu.vmx_ept = proc2 & SECONDARY_EXEC_ENABLE_EPT;
	cpu.vmx_vpid = proc2 & SECONDARY_EXEC_ENABLE_VPID;
	cpu.vmx_unrestricted = proc2 & SECONDARY_EXEC_UNRESTRICTED_GUEST;
	/* IA32_VMX_EPT_VPID_CAP exists only if EPT or VPID can be enabled. */
	if ((cpu.vmx_ept || cpu.vmx_vpid) && rdmsr_safe(MSR_IA32_VMX_EPT_VPID_CAP, &ept) < 0)
		ept = 0;
	if (cpu.vmx_ept) {
		cpu.vmx_ept_4level = ept & VMX_EPT_PAGE_WALK_4_BIT;
		cpu.vmx_ept_wb = ept & VMX_EPTP_WB_BIT;
		cpu.vmx_ept_2m = ept & VMX_EPT_2MB_PAGE_BIT;
		cpu.vmx_ept_1g = ept & VMX_EPT_1GB_PAGE_BIT;
		cpu.vmx_ept_ad = ept & VMX_EPT_AD_BIT;
	}
}

/* AMD-V: APM Vol. 2 15.4 "Enabling SVM" (VM_CR.SVMDIS) and CPUID 8000_000A. */
static void cpu_probe_svm(void)
{
	u32 a, b, c, d;

	if (rdmsr_safe(MSR_VM_CR, &vm_cr) < 0) {
		/* Bochs raises #GP here. Firmware that disables SVM leaves the MSR
		 * readable, so a faulting read is taken as "not disabled". */
		cpu.svm_vm_cr_faults = true;
	} else {
		cpu.svm_disabled = vm_cr & VM_CR_SVMDIS;
	}
	if (cpu.max_ext_leaf < 0x8000000a)
		return;
	cpuid(0x8000000a, &a, &b, &c, &d);
	cpu.svm_nasid = b;
	cpu.svm_npt = d & CPUID_8000000A_EDX_NPT;
	cpu.svm_nrips = d & CPUID_8000000A_EDX_NRIPS;
	cpu.svm_tsc_rate = d & CPUID_8000000A_EDX_TSC_RATE;
	cpu.svm_vmcb_clean = d & CPUID_8000000A_EDX_VMCB_CLEAN;
	cpu.svm_flush_asid = d & CPUID_8000000A_EDX_FLUSH_ASID;
	cpu.svm_decode_assists = d & CPUID_8000000A_EDX_DECODE_ASSISTS;
}

void cpu_init(void)
{
	char line[160];

	memset(&cpu, 0, sizeof(cpu));
	cpu_identify();
	if (cpu.vmx)
		cpu_probe_vmx();
	if (cpu.svm)
		cpu_probe_svm();
	cpu_virt_summary(line, sizeof(line));
	pr_info("cpu: %s, %s\n", cpu.brand[0] ? cpu.brand : cpu.vendor, line);
}

static const char *yn(bool b) { return b ? "yes" : "no"; }

/* Appends to buf, never past len. */
static void append(char *buf, size_t len, const char *fmt, ...) __printf(3, 4);
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

void cpu_virt_summary(char *buf, size_t len)
{
	buf[0] = 0;
	if (cpu.vmx && cpu.vmx_locked_off) {
		snprintf(buf, len,
			 "virtualization: none (VT-x disabled by the firmware: "
			 "IA32_FEATURE_CONTROL locked without VMXON outside SMX)");
	} else if (cpu.vmx && cpu.vmx_ept) {
		snprintf(buf, len, "virtualization: VT-x with EPT (");
		if (cpu.vmx_unrestricted)
			append(buf, len, "unrestricted guest, ");
		if (cpu.vmx_vpid)
			append(buf, len, "VPID, ");
		if (cpu.vmx_ept_ad)
			append(buf, len, "EPT A/D, ");
		if (cpu.vmx_preempt_timer)
			append(buf, len, "preemption timer, ");
		if (!cpu.vmx_unrestricted)
			append(buf, len, "no unrestricted guest, ");
		/* Drop the trailing ", ". */
		buf[strlen(buf) - 2] = 0;
		append(buf, len, ")");
	} else if (cpu.vmx) {
		snprintf(buf, len, "virtualization: none (VT-x without EPT; Amber needs EPT)");
	} else if (cpu.svm && cpu.svm_disabled) {
		snprintf(buf, len,
			 "virtualization: none (AMD-V disabled by the firmware: VM_CR.SVMDIS set)");
	} else if (cpu.svm && cpu.svm_npt) {
		snprintf(
			buf, len,
			"virtualization: AMD-V with NPT (NRIPS: %s, VMCB clean: %s, flush-by-ASID: %s, "
			"decode assists: %s)",
			yn(cpu.svm_nrips), yn(cpu.svm_vmcb_clean), yn(cpu.svm_flush_asid),
			yn(cpu.svm_decode_assists));
	} else if (cpu.svm) {
		snprintf(buf, len, "virtualization: none (AMD-V without NPT; Amber needs NPT)");
	} else if (cpu.hypervisor) {
		snprintf(buf, len,
			 "virtualization: none (under a hypervisor that offers neither "
			 "VMX nor SVM to its guests)");
	} else {
		snprintf(buf, len, "virtualization: none (the CPU offers neither VMX nor SVM)");
	}
}

void cpu_print_features(void)
{
	char line[160], *rest;

	printk("vendor:   %s\n", cpu.vendor);
	printk("brand:    %s\n", cpu.brand[0] ? cpu.brand : "(none)");
	printk("family %u (0x%x), model %u (0x%x), stepping %u\n", cpu.family, cpu.family,
	       cpu.model, cpu.model, cpu.stepping);
	printk("CPUID:    max leaf 0x%x, max extended leaf 0x%x\n", cpu.max_leaf, cpu.max_ext_leaf);
	printk("physical address bits: %u\n", cpu.phys_addr_bits);
	printk("features: NX %s, 1G pages %s, FXSR %s, SSE4.2 %s, AVX %s,\n", yn(cpu.nx),
	       yn(cpu.pdpe1gb), yn(cpu.fxsr), yn(cpu.sse42), yn(cpu.avx));
	printk("          invariant TSC %s, hypervisor %s%s%s\n", yn(cpu.tsc_invariant),
	       yn(cpu.hypervisor), cpu.hv_vendor[0] ? ": " : "", cpu.hv_vendor);
	if (cpu.xsave)
		printk("XSAVE:    yes, XCR0 may hold 0x%lx, area %u bytes for all of it\n",
		       cpu.xcr0_supported, cpu.xsave_size);
	else
		printk("XSAVE:    no\n");

	if (cpu.vmx || cpu.is_intel) {
		printk("VT-x:     %s\n", cpu.vmx ? "yes (CPUID.1:ECX.VMX)" : "no");
		if (cpu.vmx) {
			if (feature_control_faults)
				printk("  IA32_FEATURE_CONTROL: read faulted (taken as unlocked)\n");
			else
				printk("  IA32_FEATURE_CONTROL: 0x%lx (%s, VMXON outside SMX %s)\n",
				       feature_control,
				       (feature_control & FEATURE_CONTROL_LOCKED) ? "locked" :
										    "unlocked",
				       (feature_control & FEATURE_CONTROL_VMXON_OUTSIDE_SMX) ?
					       "enabled" :
					       "disabled");
			printk("  VMCS revision id 0x%x, TRUE controls %s, secondary controls %s\n",
			       cpu.vmcs_revision, yn(vmx_true_ctls), yn(vmx_secondary));
			printk("  EPT %s (4-level %s, WB %s, 2M %s, 1G %s, A/D %s)\n",
			       yn(cpu.vmx_ept), yn(cpu.vmx_ept_4level), yn(cpu.vmx_ept_wb),
			       yn(cpu.vmx_ept_2m), yn(cpu.vmx_ept_1g), yn(cpu.vmx_ept_ad));
			printk("  VPID %s, unrestricted guest %s, preemption timer %s\n",
			       yn(cpu.vmx_vpid), yn(cpu.vmx_unrestricted),
			       yn(cpu.vmx_preempt_timer));
		}
	}
	if (cpu.svm || cpu.is_amd) {
		printk("AMD-V:    %s\n", cpu.svm ? "yes (CPUID 8000_0001:ECX.SVM)" : "no");
		if (cpu.svm) {
			if (cpu.svm_vm_cr_faults)
				printk("  VM_CR: read faulted (Bochs does this); taken as SVM not disabled\n");
			else
				printk("  VM_CR: 0x%lx (SVMDIS %s)\n", vm_cr,
				       cpu.svm_disabled ? "set: disabled by firmware" : "clear");
			printk("  NPT %s, ASIDs %u, NRIPS %s, VMCB clean %s,\n", yn(cpu.svm_npt),
			       cpu.svm_nasid, yn(cpu.svm_nrips), yn(cpu.svm_vmcb_clean));
			printk("  flush-by-ASID %s, decode assists %s\n", yn(cpu.svm_flush_asid),
			       yn(cpu.svm_decode_assists));
		}
	}
	cpu_virt_summary(line, sizeof(line));
	rest = strchr(line, ' ');
	if (rest) { /* the boot line, wrapped to 80 columns */
		*rest++ = '\0';
		shell_wrap(line, 2, rest);
	} else {
		printk("%s\n", line);
	}
}
