/*
 * The VT-x backend: VMX bring-up (one feature check, controls from the
 * capability MSRs, VMXON), per-VM EPT, per-vCPU VMCS with the host state of
 * the running kernel, and the run step that enters the guest and decodes the
 * next exit. Host context, interrupts off: bring-up on each CPU
 * (vmx_cpu_enable), VMs and vCPUs set up on the boot CPU, a vCPU run on the
 * CPU it is placed on.
 * SDM Vol. 3C 24.7 "Enabling and Entering VMX Operation", 25 "Virtual Machine
 * Control Structures", 27 "VM Entries".
 */
#include "kernel/cpu.h"
#include "kernel/irq.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "kernel/x86.h"
#include "vmm/vmx/vmcs.h"
#include "vmm/vmx/vmx.h"

/* Longest stretch in the guest: the VMX-preemption timer brings the CPU back
 * after this long whatever the host timer does. Bochs 2.7 needs it: there a
 * host interrupt that arrives while the guest runs with IF=0 never causes
 * the external-interrupt exit that the SDM promises, so a guest spinning
 * with interrupts off would keep the CPU for good. */
#define VMX_SLICE_US 1000

/* The controls Amber cannot do without, each named for the feature check;
 * the rest stay off or take the CPU's default. SDM Vol. 3C 25.6
 * "VM-Execution Control Fields", 25.7.1 "VM-Exit Controls", 25.8.1
 * "VM-Entry Controls". */
struct vmx_ctl_name {
	u32 bit;
	const char *name;
};

static const struct vmx_ctl_name vmx_pin_required[] = {
	{ PIN_BASED_EXT_INTR_MASK, "external-interrupt exiting" },
	{ PIN_BASED_NMI_EXITING, "NMI exiting" },
};
static const struct vmx_ctl_name vmx_proc_required[] = {
	{ CPU_BASED_HLT_EXITING, "HLT exiting" },
	{ CPU_BASED_INTR_WINDOW_EXITING, "interrupt-window exiting" },
	{ CPU_BASED_UNCOND_IO_EXITING, "unconditional I/O exiting" },
	{ CPU_BASED_CR8_LOAD_EXITING, "CR8-load exiting" },
	{ CPU_BASED_CR8_STORE_EXITING, "CR8-store exiting" },
	{ CPU_BASED_USE_TSC_OFFSETTING, "TSC offsetting" },
	{ CPU_BASED_MWAIT_EXITING, "MWAIT exiting" },
	{ CPU_BASED_MONITOR_EXITING, "MONITOR exiting" },
	{ CPU_BASED_RDPMC_EXITING, "RDPMC exiting" },
	{ CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, "secondary controls" },
};
static const struct vmx_ctl_name vmx_proc2_required[] = {
	{ SECONDARY_EXEC_ENABLE_EPT, "EPT" },
	{ SECONDARY_EXEC_UNRESTRICTED_GUEST, "unrestricted guest" },
};
static const struct vmx_ctl_name vmx_exit_required[] = {
	{ VM_EXIT_SAVE_DEBUG_CONTROLS, "save debug controls on exit" },
	{ VM_EXIT_HOST_ADDR_SPACE_SIZE, "64-bit host" },
	{ VM_EXIT_SAVE_IA32_PAT, "save IA32_PAT on exit" },
	{ VM_EXIT_LOAD_IA32_PAT, "load IA32_PAT on exit" },
	{ VM_EXIT_SAVE_IA32_EFER, "save IA32_EFER on exit" },
	{ VM_EXIT_LOAD_IA32_EFER, "load IA32_EFER on exit" },
};
/* VM_ENTRY_IA32E_MODE must be possible; it is set per guest (64-bit ones). */
static const struct vmx_ctl_name vmx_entry_required[] = {
	{ VM_ENTRY_LOAD_DEBUG_CONTROLS, "load debug controls on entry" },
	{ VM_ENTRY_LOAD_IA32_PAT, "load IA32_PAT on entry" },
	{ VM_ENTRY_LOAD_IA32_EFER, "load IA32_EFER on entry" },
	{ VM_ENTRY_IA32E_MODE, "IA-32e mode guests" },
};
/* "Enable RDTSCP" stays off: CPUID hides RDTSCP and RDPID (vmm/emulate.c)
 * and then both raise #UD, SDM Vol. 3C 25.6.2 "Processor-Based VM-Execution
 * Controls", Table 25-7. */
#define VMX_PROC2_OPTIONAL SECONDARY_EXEC_ENABLE_INVPCID
#define VMX_EXCEPTION_BITMAP (BIT(X86_TRAP_GP) | BIT(X86_TRAP_AC))

struct vmx_caps vmx_caps;
static bool vmx_on; /* the backend is usable: on for the boot CPU */
/* Per CPU, by number: the VMCS current there (VMPTRLD), 0 if none. */
static u64 vmx_current_vmcses[SMP_MAX_CPUS];
#define vmx_current_vmcs (vmx_current_vmcses[smp_this_index()])
static u64 vmx_vpid_used; /* bit i: VPID i + 1 belongs to a vCPU */

struct desc_ptr {
	u16 limit;
	u64 base;
} __packed;

void vmcs_error(u32 field, bool write)
{
	static u32 last_field = ~0u;

	if (field == last_field)
		return;
	last_field = field;
	pr_err("vmx: %s of VMCS field 0x%x failed (error %u)\n", write ? "VMWRITE" : "VMREAD",
	       field, (u32)__vmcs_read(VM_INSTRUCTION_ERROR));
}

/* ---- bring-up ------------------------------------------------------------ */

/* Appends ", what" to the list of missing features. */
static void vmx_missing(char *buf, size_t len, const char *what)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, "%s%s", n ? ", " : "", what);
}

/*
 * A control field's value from its capability MSR: bits that must be 1 are
 * the low half (allowed-0), bits that may be 1 the high half (allowed-1), so
 * (wanted | allowed0) & allowed1; SDM Vol. 3D A.3 "VM-Execution Controls".
 * Names each required control that cannot be set.
 */
static u32 vmx_adjust(u32 msr, const struct vmx_ctl_name *req, size_t nreq, u32 optional,
		      char *missing, size_t len)
{
	u64 cap = rdmsr(msr);
	u32 allowed0 = (u32)cap, allowed1 = cap >> 32;
	u32 wanted = optional;

	for (size_t i = 0; i < nreq; i++) {
		wanted |= req[i].bit;
		if (!(allowed1 & req[i].bit))
			vmx_missing(missing, len, req[i].name);
	}
	return (wanted | allowed0) & allowed1;
}
#define VMX_ADJUST(msr, req, optional, missing) \
	vmx_adjust(msr, req, ARRAY_SIZE(req), optional, missing, sizeof(missing))

/* The one feature check: fills vmx_caps, or lists everything missing. */
static int vmx_check_features(void)
{
	static char missing[400];
	u64 basic, misc;
	bool true_ctls;

	missing[0] = 0;
	if (!cpu.vmx) {
		pr_err("vmx: cannot use VT-x: the CPU has no VMX (CPUID.1:ECX bit 5)\n");
		return -ENODEV;
	}
	if (cpu.vmx_locked_off)
		vmx_missing(missing, sizeof(missing),
			    "VMX enabled in IA32_FEATURE_CONTROL (locked off by firmware)");
	basic = rdmsr(MSR_IA32_VMX_BASIC);
	misc = rdmsr(MSR_IA32_VMX_MISC);
	vmx_caps.revision = basic & VMX_BASIC_REVISION_MASK;
	if (((basic >> VMX_BASIC_VMCS_SIZE_SHIFT) & VMX_BASIC_VMCS_SIZE_MASK) > PAGE_SIZE)
		vmx_missing(missing, sizeof(missing), "a VMCS of at most 4 KiB");
	true_ctls = basic & VMX_BASIC_TRUE_CTLS;

	vmx_caps.pin =
		VMX_ADJUST(true_ctls ? MSR_IA32_VMX_TRUE_PINBASED_CTLS : MSR_IA32_VMX_PINBASED_CTLS,
			   vmx_pin_required,
			   PIN_BASED_VIRTUAL_NMIS |
				   (cpu.vmx_preempt_timer ? PIN_BASED_VMX_PREEMPTION_TIMER : 0),
			   missing);
	vmx_caps.proc = VMX_ADJUST(true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED_CTLS :
					       MSR_IA32_VMX_PROCBASED_CTLS,
				   vmx_proc_required, CPU_BASED_NMI_WINDOW_EXITING, missing);
	/* The window exits are switched on per entry (set_windows); the NMI
	 * window needs virtual NMIs (SDM Vol. 3C 25.6.1 "Pin-Based VM-Execution
	 * Controls"). */
	vmx_caps.vnmi = (vmx_caps.pin & PIN_BASED_VIRTUAL_NMIS) &&
			(vmx_caps.proc & CPU_BASED_NMI_WINDOW_EXITING);
	vmx_caps.proc &= ~(CPU_BASED_INTR_WINDOW_EXITING | CPU_BASED_NMI_WINDOW_EXITING);
	/* The secondary controls' MSR exists only when they can be activated. */
	if (vmx_caps.proc & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS)
		vmx_caps.proc2 = VMX_ADJUST(MSR_IA32_VMX_PROCBASED_CTLS2, vmx_proc2_required,
					    VMX_PROC2_OPTIONAL |
						    (cpu.vmx_vpid ? SECONDARY_EXEC_ENABLE_VPID : 0),
					    missing);
	else
		vmx_missing(missing, sizeof(missing), "EPT, unrestricted guest");
	/* TSC scaling is switched on per vCPU, for a restored guest whose TSC
	 * ran at another rate (vmm/vtsc.c). */
	vmx_caps.tsc_scaling =
		(vmx_caps.proc & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) &&
		(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32 & SECONDARY_EXEC_TSC_SCALING);
	/* Page-modification logging: dirty tracking's harvest then follows
	 * the pages written (vmx_dirty.c). */
	vmx_caps.pml = (vmx_caps.proc & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) &&
		       (rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32 & SECONDARY_EXEC_ENABLE_PML);
	vmx_caps.exit = VMX_ADJUST(true_ctls ? MSR_IA32_VMX_TRUE_EXIT_CTLS : MSR_IA32_VMX_EXIT_CTLS,
				   vmx_exit_required, 0, missing);
	vmx_caps.entry =
		VMX_ADJUST(true_ctls ? MSR_IA32_VMX_TRUE_ENTRY_CTLS : MSR_IA32_VMX_ENTRY_CTLS,
			   vmx_entry_required, 0, missing) &
		~VM_ENTRY_IA32E_MODE;

	if (vmx_caps.proc2 & (SECONDARY_EXEC_ENABLE_EPT | SECONDARY_EXEC_ENABLE_VPID))
		vmx_caps.ept_vpid_cap = rdmsr(MSR_IA32_VMX_EPT_VPID_CAP);
	if (vmx_caps.proc2 & SECONDARY_EXEC_ENABLE_EPT) {
		if (!(vmx_caps.ept_vpid_cap & VMX_EPT_PAGE_WALK_4_BIT))
			vmx_missing(missing, sizeof(missing), "4-level EPT");
		if (!(vmx_caps.ept_vpid_cap & VMX_EPTP_WB_BIT))
			vmx_missing(missing, sizeof(missing), "write-back EPT memory type");
		if (!(vmx_caps.ept_vpid_cap & VMX_EPT_INVEPT_BIT) ||
		    !(vmx_caps.ept_vpid_cap &
		      (VMX_EPT_EXTENT_CONTEXT_BIT | VMX_EPT_EXTENT_GLOBAL_BIT)))
			vmx_missing(missing, sizeof(missing), "INVEPT");
	}
	if (missing[0]) {
		pr_err("vmx: cannot use VT-x: missing %s\n", missing);
		return -ENODEV;
	}

	/* VPIDs only where INVVPID can flush a recycled one. */
	vmx_caps.vpid = (vmx_caps.proc2 & SECONDARY_EXEC_ENABLE_VPID) &&
			(vmx_caps.ept_vpid_cap & VMX_VPID_INVVPID_BIT) &&
			(vmx_caps.ept_vpid_cap &
			 (VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT | VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT));
	if (!vmx_caps.vpid)
		vmx_caps.proc2 &= ~SECONDARY_EXEC_ENABLE_VPID;
	vmx_caps.preempt_timer = vmx_caps.pin & PIN_BASED_VMX_PREEMPTION_TIMER;
	if (vmx_caps.preempt_timer) {
		/* The timer counts down once every 2^rate TSC ticks (IA32_VMX_MISC 4:0). */
		u64 t = (tsc_hz() / 1000000 * VMX_SLICE_US) >>
			(misc & VMX_MISC_PREEMPTION_TIMER_RATE_MASK);

		vmx_caps.preempt_slice = t < 1 ? 1 : t > 0xffffffffULL ? 0xffffffffU : (u32)t;
		vmx_caps.preempt_rate = misc & VMX_MISC_PREEMPTION_TIMER_RATE_MASK;
	}
	vmx_caps.lma_saved = misc & VMX_MISC_SAVE_EFER_LMA;

	/* SDM Vol. 3D A.7 "VMX-Fixed Bits in CR0" and A.8 "... in CR4": fixed0
	 * bits must be 1, bits clear in fixed1 must be 0. With unrestricted
	 * guest, PE and PG are the guest's own. */
	vmx_caps.cr0_fixed0 = rdmsr(MSR_IA32_VMX_CR0_FIXED0);
	vmx_caps.cr0_fixed1 = rdmsr(MSR_IA32_VMX_CR0_FIXED1);
	vmx_caps.cr4_fixed0 = rdmsr(MSR_IA32_VMX_CR4_FIXED0);
	vmx_caps.cr4_fixed1 = rdmsr(MSR_IA32_VMX_CR4_FIXED1);
	/* CD and NW are Amber's too: the CPU keeps them across VM exits, so a
	 * guest setting CD would otherwise turn caching off for the host. */
	vmx_caps.cr0_mask = ((vmx_caps.cr0_fixed0 & ~(X86_CR0_PE | X86_CR0_PG)) |
			     ~vmx_caps.cr0_fixed1 | X86_CR0_CD | X86_CR0_NW) &
			    0xffffffffULL;
	/* LA57 too: CPUID hides 5-level paging (vmm/emulate.c), so setting it
	 * must exit and be refused even on a CPU that has it. */
	vmx_caps.cr4_mask = vmx_caps.cr4_fixed0 | ~vmx_caps.cr4_fixed1 | X86_CR4_LA57;
	return 0;
}

/* Sets IA32_FEATURE_CONTROL when firmware left it unlocked; never writes it
 * once locked (Bochs: 0x5, locked with VMX on). SDM Vol. 3C 24.7. */
static int vmx_feature_control(void)
{
	u64 fc;

	if (rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &fc) < 0) {
		pr_err("vmx: IA32_FEATURE_CONTROL cannot be read\n");
		return -ENODEV;
	}
	if (fc & FEATURE_CONTROL_LOCKED) {
		if (fc & FEATURE_CONTROL_VMXON_OUTSIDE_SMX)
			return 0;
		pr_err("vmx: VMX is disabled and locked in IA32_FEATURE_CONTROL (firmware)\n");
		return -ENODEV;
	}
	if (wrmsr_safe(MSR_IA32_FEATURE_CONTROL,
		       fc | FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMXON_OUTSIDE_SMX) < 0) {
		pr_err("vmx: IA32_FEATURE_CONTROL cannot be written\n");
		return -ENODEV;
	}
	return 0;
}

/* Enters VMX operation on the calling CPU with its own VMXON region, kept in
 * this_cpu()->virt_page[0]; on failure leaves CR0 and CR4 as it found them.
 * Once per CPU, after vmx_check_features on the boot CPU; on that CPU.
 * SDM Vol. 3C 24.7 "Enabling and Entering VMX Operation". */
static int vmx_cpu_enable(void)
{
	struct host_cpu *c = this_cpu();
	u64 cr0, cr4, old_cr0, old_cr4, region;
	int err;

	if (c->virt_on)
		return 0;
	err = vmx_feature_control(); /* a per-CPU MSR: each CPU's firmware setting */
	if (err)
		return err;
	region = pmm_alloc_page();
	if (!region) {
		pr_err("vmx: CPU %d: no memory for the VMXON region\n", c->index);
		return -ENOMEM;
	}
	*(u32 *)phys_to_virt(region) = vmx_caps.revision;

	/* SDM Vol. 3C 24.8 "Restrictions on VMX Operation": the fixed bits of CR0
	 * and CR4 hold in VMX operation, CR4.VMXE included. */
	old_cr0 = read_cr0();
	old_cr4 = read_cr4();
	/* VM entry never loads CR0.CD and NW (SDM Vol. 3C 27.3.2.1 "Loading
	 * Guest Control Registers, Debug Registers, and MSRs"): every guest
	 * inherits the host's. Bochs' BIOS leaves both set (the reset value),
	 * so caching is turned on here, for the host and its guests alike. */
	cr0 = ((old_cr0 & ~(X86_CR0_CD | X86_CR0_NW)) | vmx_caps.cr0_fixed0) & vmx_caps.cr0_fixed1;
	cr4 = (old_cr4 | vmx_caps.cr4_fixed0 | X86_CR4_VMXE) & vmx_caps.cr4_fixed1;
	if ((cr0 & vmx_caps.cr0_fixed0) != vmx_caps.cr0_fixed0 ||
	    (cr4 & vmx_caps.cr4_fixed0) != vmx_caps.cr4_fixed0 || !(cr4 & X86_CR4_VMXE)) {
		pr_err("vmx: CR0/CR4 cannot meet the VMX fixed bits (CR0 0x%lx/0x%lx, CR4 0x%lx/0x%lx)\n",
		       vmx_caps.cr0_fixed0, vmx_caps.cr0_fixed1, vmx_caps.cr4_fixed0,
		       vmx_caps.cr4_fixed1);
		err = -ENODEV;
		goto free_region;
	}
	write_cr0(cr0);
	write_cr4(cr4);
	if (vmxon(region) < 0) {
		pr_err("vmx: CPU %d: VMXON failed\n", c->index);
		err = -EIO;
		goto restore_cr;
	}
	c->virt_page[0] = region;
	c->virt_on = true;
	return 0;

restore_cr:
	write_cr4(old_cr4);
	write_cr0(old_cr0);
free_region:
	pmm_free_page(region);
	return err;
}

/* The boot CPU, once: the feature check, then VMX operation on this CPU. */
static int vmx_hw_enable(void)
{
	const char *log;
	int err;

	if (vmx_on)
		return 0;
	err = vmx_check_features();
	if (err)
		return err;
	err = vmx_cpu_enable();
	if (err)
		return err;
	vmx_on = true;
	pr_info("vmx: VT-x on: VMCS revision 0x%x, EPT%s%s, unrestricted guest%s\n",
		vmx_caps.revision, cpu.vmx_ept_2m ? " with 2 MiB pages" : "",
		vmx_caps.vpid ? ", VPID" : "", vmx_caps.preempt_timer ? ", preemption timer" : "");
	pr_info("vmx: TSC scaling: %s\n", vmx_caps.tsc_scaling ? "yes" : "no");
	if (!(vmx_caps.ept_vpid_cap & VMX_EPT_AD_BIT))
		log = "none (no EPT A/D flags)";
	else if (vmx_caps.pml)
		log = "EPT dirty flags and PML";
	else
		log = "EPT dirty flags, no PML (harvests scan all of RAM)";
	pr_info("vmx: dirty log: %s\n", log);
	return 0;
}

/* ---- VMs: the EPT ------------------------------------------------------- */

static u64 vmx_ept_alloc(void *ctx) { return pmm_alloc_page(); }
static void vmx_ept_free(void *ctx, u64 pa) { pmm_free_page(pa); }
static void *vmx_ept_virt(void *ctx, u64 pa) { return phys_to_virt(pa); }

static const struct ept_mm vmx_ept_mm = {
	.alloc_page = vmx_ept_alloc,
	.free_page = vmx_ept_free,
	.to_virt = vmx_ept_virt,
};

/* Drops the CPU's cached translations of one EPT (single-context when the
 * CPU has it). SDM Vol. 3C 29.4.3.1 "Operations that Invalidate Cached Mappings". */
void vmx_flush_ept(u64 eptp)
{
	if (vmx_caps.ept_vpid_cap & VMX_EPT_EXTENT_CONTEXT_BIT)
		invept(VMX_EPT_EXTENT_CONTEXT, eptp);
	else
		invept(VMX_EPT_EXTENT_GLOBAL, 0);
}

static int vmx_vm_init(struct vm *vm)
{
	struct vmx_vm *xv = kzalloc(sizeof(*xv));
	int err;

	if (!xv)
		return -ENOMEM;
	err = ept_init(&xv->ept, &vmx_ept_mm, cpu.vmx_ept_2m);
	if (err)
		goto free;
	/* RAM only: every other guest-physical address is left unmapped, so
	 * the guest's device accesses (and strays) exit as EPT violations. */
	err = ept_map_ram(&xv->ept, vm->chunks, vm->nchunks, vm->mem_size);
	if (err)
		goto destroy;
	xv->eptp = ept_eptp(&xv->ept);
	vmx_flush_ept(xv->eptp);
	vm->arch = xv;
	return 0;

destroy:
	ept_destroy(&xv->ept);
free:
	kfree(xv);
	return err;
}

static void vmx_vm_destroy(struct vm *vm)
{
	struct vmx_vm *xv = vm->arch;

	if (!xv)
		return;
	vmx_flush_ept(xv->eptp);
	ept_destroy(&xv->ept);
	kfree(xv);
	vm->arch = NULL;
}

/* ---- vCPUs: the VMCS ---------------------------------------------------- */

/* Makes x's VMCS the current one on this CPU (VMPTRLD), if it is not
 * already. A VMCS is active on one CPU at a time: the one it was active on
 * before gave it up with VMCLEAR (vmx_vcpu_put), SDM Vol. 3C 25.11.1
 * "Software Use of Virtual-Machine Control Structures". */
int vmx_load_vmcs(struct vmx_vcpu *x)
{
	int here = smp_this_index();

	if (vmx_current_vmcses[here] == x->vmcs_pa)
		return 0;
	if (vmptrld(x->vmcs_pa) < 0) {
		pr_err("vmx: VMPTRLD of 0x%lx failed\n", x->vmcs_pa);
		return -EIO;
	}
	vmx_current_vmcses[here] = x->vmcs_pa;
	x->active_cpu = here;
	return 0;
}

void vmx_set_entry_ia32e(bool on)
{
	u32 ctl = vmcs_read32(VM_ENTRY_CONTROLS);

	ctl = on ? ctl | VM_ENTRY_IA32E_MODE : ctl & ~VM_ENTRY_IA32E_MODE;
	vmcs_write32(VM_ENTRY_CONTROLS, ctl);
}

/* The running kernel's state the CPU returns to on every exit, SDM Vol. 3C
 * 25.5 "Host-State Area" and 28.5 "Loading Host State". Amber's GDT and TSS
 * are those of kernel/traps.c; they are read back here, never assumed. */
static void vmx_setup_host_state(void)
{
	struct desc_ptr gdt, idt;
	u16 cs, ss, ds, es, fs, gs, tr;
	const u64 *desc;
	u64 tr_base;

	__asm__ volatile("sgdt %0" : "=m"(gdt));
	__asm__ volatile("sidt %0" : "=m"(idt));
	__asm__ volatile("str %0" : "=r"(tr));
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	__asm__ volatile("mov %%ss, %0" : "=r"(ss));
	__asm__ volatile("mov %%ds, %0" : "=r"(ds));
	__asm__ volatile("mov %%es, %0" : "=r"(es));
	__asm__ volatile("mov %%fs, %0" : "=r"(fs));
	__asm__ volatile("mov %%gs, %0" : "=r"(gs));
	/* A 64-bit TSS descriptor spans two GDT slots: base 23:0 in bits 39:16,
	 * 31:24 in bits 63:56, 63:32 in the second slot. SDM Vol. 3A 7.2.3
	 * "TSS Descriptor in 64-bit mode". */
	desc = (const u64 *)(uintptr_t)(gdt.base + (tr & ~7u));
	tr_base = ((desc[0] >> 16) & 0xffffff) | (((desc[0] >> 56) & 0xff) << 24) |
		  ((desc[1] & 0xffffffffULL) << 32);

	vmcs_writel(HOST_CR0, read_cr0());
	vmcs_writel(HOST_CR3, read_cr3());
	vmcs_writel(HOST_CR4, read_cr4());
	/* Selector fields must have RPL 0 and TI 0 (SDM Vol. 3C 27.2.3). */
	vmcs_write16(HOST_CS_SELECTOR, cs & ~7u);
	vmcs_write16(HOST_SS_SELECTOR, ss & ~7u);
	vmcs_write16(HOST_DS_SELECTOR, ds & ~7u);
	vmcs_write16(HOST_ES_SELECTOR, es & ~7u);
	vmcs_write16(HOST_FS_SELECTOR, fs & ~7u);
	vmcs_write16(HOST_GS_SELECTOR, gs & ~7u);
	vmcs_write16(HOST_TR_SELECTOR, tr & ~7u);
	vmcs_writel(HOST_FS_BASE, rdmsr(MSR_FS_BASE));
	vmcs_writel(HOST_GS_BASE, rdmsr(MSR_GS_BASE));
	vmcs_writel(HOST_TR_BASE, tr_base);
	vmcs_writel(HOST_GDTR_BASE, gdt.base);
	vmcs_writel(HOST_IDTR_BASE, idt.base);
	vmcs_write32(HOST_IA32_SYSENTER_CS, rdmsr(MSR_IA32_SYSENTER_CS));
	vmcs_writel(HOST_IA32_SYSENTER_ESP, rdmsr(MSR_IA32_SYSENTER_ESP));
	vmcs_writel(HOST_IA32_SYSENTER_EIP, rdmsr(MSR_IA32_SYSENTER_EIP));
	vmcs_write64(HOST_IA32_PAT, rdmsr(MSR_IA32_PAT));
	vmcs_write64(HOST_IA32_EFER, rdmsr(MSR_EFER));
	vmcs_writel(HOST_RIP, (u64)(uintptr_t)vmx_vmexit_entry);
	/* HOST_RSP is written by the entry stub, just before VMLAUNCH/VMRESUME. */
}

/* The controls and the parts of the guest state that never change. */
static void vmx_setup_controls(struct vcpu *v, struct vmx_vcpu *x)
{
	struct vmx_vm *xv = v->vm->arch;

	vmcs_write32(PIN_BASED_VM_EXEC_CONTROL, vmx_caps.pin);
	vmcs_write32(CPU_BASED_VM_EXEC_CONTROL, vmx_caps.proc);
	vmcs_write32(SECONDARY_VM_EXEC_CONTROL, vmx_caps.proc2);
	vmcs_write32(VM_EXIT_CONTROLS, vmx_caps.exit);
	vmcs_write32(VM_ENTRY_CONTROLS, vmx_caps.entry);
	/* The guest handles its own faults (one it cannot handle ends in a
	 * triple fault, which always exits); #GP and #AC pass through Amber so
	 * the generic code can count a storm and reinject them, as on AMD-V.
	 * #AC in a loop is also a known way to wedge a CPU in microcode. */
	vmcs_write32(EXCEPTION_BITMAP, VMX_EXCEPTION_BITMAP);
	vmcs_write32(PAGE_FAULT_ERROR_CODE_MASK, 0);
	vmcs_write32(PAGE_FAULT_ERROR_CODE_MATCH, 0);
	vmcs_write32(CR3_TARGET_COUNT, 0);
	vmcs_write32(VM_EXIT_MSR_STORE_COUNT, 0);
	vmcs_write32(VM_EXIT_MSR_LOAD_COUNT, 0);
	vmcs_write32(VM_ENTRY_MSR_LOAD_COUNT, 0);
	vmcs_write32(VM_ENTRY_INTR_INFO_FIELD, 0);
	/* CR0/CR4 bits VMX pins (and CR0.CD/NW) are owned by Amber: the guest
	 * reads its own value from the shadow, and writing another value there
	 * exits (vmx_exit.c emulates the write). */
	vmcs_writel(CR0_GUEST_HOST_MASK, vmx_caps.cr0_mask);
	vmcs_writel(CR4_GUEST_HOST_MASK, vmx_caps.cr4_mask);
	vmcs_write64(EPT_POINTER, xv->eptp);
	if (vmx_caps.vpid)
		vmcs_write16(VIRTUAL_PROCESSOR_ID, x->vpid);
	vmcs_write64(VMCS_LINK_POINTER, ~0ULL);
	vmcs_write64(GUEST_IA32_DEBUGCTL, 0);
	vmcs_writel(GUEST_PENDING_DBG_EXCEPTIONS, 0);
	vmcs_write32(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_ACTIVE);
	vmx_setup_host_state();
}

/* A VPID of its own for each vCPU, so that the TLB keeps its entries across
 * exits; a recycled VPID is flushed first. */
static u16 vmx_alloc_vpid(void)
{
	for (int i = 0; i < 64; i++) {
		if (vmx_vpid_used & BIT(i))
			continue;
		vmx_vpid_used |= BIT(i);
		if (vmx_caps.ept_vpid_cap & VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT)
			invvpid(VMX_VPID_EXTENT_SINGLE_CONTEXT, i + 1, 0);
		else
			invvpid(VMX_VPID_EXTENT_ALL_CONTEXT, 0, 0);
		return i + 1;
	}
	return 0;
}

static int vmx_vcpu_init(struct vcpu *v)
{
	struct vmx_vcpu *x;
	int err = -ENOMEM;

	if (!vmx_on || !v->vm->arch)
		return -ENODEV;
	x = kzalloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->vmcs_pa = pmm_alloc_page();
	if (!x->vmcs_pa)
		goto free;
	/* SDM Vol. 3C 25.2 "Format of the VMCS Region": revision id first. */
	*(u32 *)phys_to_virt(x->vmcs_pa) = vmx_caps.revision;
	if (vmx_caps.vpid) {
		x->vpid = vmx_alloc_vpid();
		if (!x->vpid) {
			err = -EBUSY;
			goto free_vmcs;
		}
	}
	err = -EIO;
	x->active_cpu = -1;
	if (vmclear(x->vmcs_pa) < 0)
		goto free_vpid;
	if (vmx_load_vmcs(x) < 0)
		goto free_vpid;
	v->arch = x;
	vmx_setup_controls(v, x);
	x->host_cpu = smp_this_index();
	return 0;

free_vpid:
	if (x->vpid)
		vmx_vpid_used &= ~BIT(x->vpid - 1);
free_vmcs:
	pmm_free_page(x->vmcs_pa);
free:
	kfree(x);
	return err;
}

static void vmx_vcpu_destroy(struct vcpu *v)
{
	struct vmx_vcpu *x = v->arch;

	if (!x)
		return;
	vmx_release_cpu_regs(v);
	/* VMCLEAR writes back anything the CPU caches of the VMCS before its
	 * memory is reused. */
	vmclear(x->vmcs_pa);
	if (vmx_current_vmcs == x->vmcs_pa)
		vmx_current_vmcs = 0;
	if (x->vpid)
		vmx_vpid_used &= ~BIT(x->vpid - 1);
	if (x->pml_pa) /* tracking still on: vm_destroy stops it after the vCPUs */
		pmm_free_page(x->pml_pa);
	pmm_free_page(x->vmcs_pa);
	kfree(x);
	v->arch = NULL;
}

/* ---- running ------------------------------------------------------------ */

/* After a failed entry the VMCS's launch state is not certain: VMCLEAR makes
 * it "clear", so a later attempt (a restored state) starts with VMLAUNCH. */
static void vmx_reset_launch(struct vmx_vcpu *x)
{
	vmclear(x->vmcs_pa);
	vmx_current_vmcs = 0;
	x->active_cpu = -1;
	x->launched = false;
}

/* vcpu_ops.vcpu_put: this CPU's registers of v back into its copy, and its
 * VMCS written back and cleared if it is active here, so that another CPU
 * may load it (the next entry is a VMLAUNCH). SDM Vol. 3C 25.11.3
 * "Initializing a VMCS", 31.3 "VMCLEAR". */
static void vmx_vcpu_put(struct vcpu *v)
{
	struct vmx_vcpu *x = v->arch;

	vmx_put_cpu_regs(v);
	if (x->active_cpu == smp_this_index())
		vmx_reset_launch(x);
}

/* The host state is the running CPU's (its GDT, TSS, stacks): written again
 * when the vCPU runs on another CPU than the one it was written for, and
 * that CPU's cached translations of the guest dropped, which may be older
 * than the EPT or the guest's own page tables (they changed elsewhere). */
static void vmx_move_here(struct vcpu *v, struct vmx_vcpu *x)
{
	int here = smp_this_index();

	if (x->host_cpu == here)
		return;
	vmx_setup_host_state();
	vmx_flush_ept(((struct vmx_vm *)v->vm->arch)->eptp);
	if (x->vpid) {
		if (vmx_caps.ept_vpid_cap & VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT)
			invvpid(VMX_VPID_EXTENT_SINGLE_CONTEXT, x->vpid, 0);
		else
			invvpid(VMX_VPID_EXTENT_ALL_CONTEXT, 0, 0);
	}
	x->host_cpu = here;
}

static int vmx_vcpu_run(struct vcpu *v, struct vm_exit *exit)
{
	struct vmx_vcpu *x = v->arch;
	u32 error;
	int rc;

	*exit = (struct vm_exit){ 0 }; /* inline stores: memset is a REP STOSB */
	if (vmx_load_vmcs(x) < 0) {
		exit->kind = VMEXIT_ENTRY_FAILED;
		exit->raw_reason = VMX_EXIT_VMFAIL;
		return -EIO;
	}
	vmx_move_here(v, x);
	vmx_own_cpu_regs(v);
	if (x->reload_pdptrs) {
		vmx_load_pdptrs(v);
		x->reload_pdptrs = false;
	}
	vmcs_writel(GUEST_RSP, v->regs[REG_RSP]);
	if (vmx_caps.preempt_timer) {
		/* The slice, or less when a device deadline comes first: the
		 * guest must not run past it without an exit. */
		u64 t = v->run_budget >> vmx_caps.preempt_rate;

		vmcs_write32(VMX_PREEMPTION_TIMER_VALUE,
			     t < vmx_caps.preempt_slice ? (u32)t : vmx_caps.preempt_slice);
	}
	rc = vmx_vcpu_enter(v, x->launched);
	if (rc) {
		/* VMLAUNCH/VMRESUME itself refused: the error number says why
		 * (SDM Vol. 3C 31.4 "VM Instruction Error Numbers"). */
		error = rc == 1 ? vmcs_read32(VM_INSTRUCTION_ERROR) : 0;
		exit->kind = VMEXIT_ENTRY_FAILED;
		exit->raw_reason = VMX_EXIT_VMFAIL;
		exit->qualification = error;
		exit->rip = vmcs_readl(GUEST_RIP);
		pr_err("vmx: VM %d vCPU %d: %s failed: %s (VM-instruction error %u)\n", v->vm->id,
		       v->id, x->launched ? "VMRESUME" : "VMLAUNCH",
		       rc == 1 ? vmx_insn_error_name(error) : "no current VMCS", error);
		vmx_reset_launch(x);
		return -EIO;
	}
	x->launched = true;
	v->regs[REG_RSP] = vmcs_readl(GUEST_RSP);
	rc = vmx_decode_exit(v, exit);
	if (rc) {
		vmx_reset_launch(x);
		return rc;
	}
	if (exit->raw_reason == EXIT_REASON_PML_FULL)
		vmx_dirty_pml_full(v);
	/* The interrupt that ended guest mode is still pending (it was not
	 * acknowledged on exit): the host takes it now, in a one-instruction
	 * window, or the next entry would exit at once again. After a
	 * preemption-timer exit the same window serves a tick that did not
	 * end guest mode (Bochs, see VMX_SLICE_US). */
	if (exit->kind == VMEXIT_HOST_INTERRUPT)
		irq_window();
	return 0;
}

static int vmx_advance_rip(struct vcpu *v, const struct vm_exit *exit)
{
	u32 intr;
	int err = vmx_load_vmcs(v->arch);

	if (err)
		return err;
	vmcs_writel(GUEST_RIP, vmcs_readl(GUEST_RIP) + exit->insn_len);
	/* The skipped instruction ends any STI or MOV SS shadow (SDM Vol. 3C
	 * 27.3.1.5 "Checks on Guest Non-Register State" would refuse STI
	 * blocking once IF is clear, and the shadow belongs to that one
	 * instruction anyway). */
	intr = vmcs_read32(GUEST_INTERRUPTIBILITY_INFO);
	if (intr & (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS))
		vmcs_write32(GUEST_INTERRUPTIBILITY_INFO,
			     intr & ~(GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS));
	return 0;
}

static int vmx_ops_inject_event(struct vcpu *v, const struct vcpu_event *ev)
{
	int err = vmx_load_vmcs(v->arch);

	if (err)
		return err;
	/* struct vcpu_event's types are VMX's own. */
	vmx_inject_event(ev->type, ev->vector, ev->has_error, ev->error_code, 0);
	return 0;
}

/* SDM Vol. 3C 25.4.2 "Guest Non-Register State" (interruptibility state),
 * 27.6 "Event Injection" (an event queued in the entry field). */
static int vmx_intr_state(struct vcpu *v, u32 *state)
{
	int err = vmx_load_vmcs(v->arch);

	if (err)
		return err;
	*state = vmcs_read32(GUEST_INTERRUPTIBILITY_INFO) &
		 (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS | GUEST_INTR_STATE_NMI);
	if (vmcs_readl(GUEST_RFLAGS) & X86_RFLAGS_IF)
		*state |= VCPU_INTR_IF;
	if (vmcs_read32(VM_ENTRY_INTR_INFO_FIELD) & INTR_INFO_VALID_MASK)
		*state |= VCPU_INTR_QUEUED;
	return 0;
}

/* Interrupt-window and NMI-window exiting, SDM Vol. 3C 26.7.5 "Interrupt-
 * Window Exiting and Virtual-Interrupt Delivery" and 26.7.6 "NMI-Window
 * Exiting". Without virtual NMIs there is no NMI window: a waiting NMI is
 * then looked at again on the next exit. */
static int vmx_set_windows(struct vcpu *v, u32 windows)
{
	struct vmx_vcpu *x = v->arch;
	u32 proc = vmx_caps.proc;
	int err;

	if (!vmx_caps.vnmi)
		windows &= ~VCPU_WINDOW_NMI;
	if (windows == x->windows)
		return 0;
	err = vmx_load_vmcs(x);
	if (err)
		return err;
	if (windows & VCPU_WINDOW_INTR)
		proc |= CPU_BASED_INTR_WINDOW_EXITING;
	if (windows & VCPU_WINDOW_NMI)
		proc |= CPU_BASED_NMI_WINDOW_EXITING;
	vmcs_write32(CPU_BASED_VM_EXEC_CONTROL, proc);
	x->windows = windows;
	return 0;
}

static int vmx_read_rip(struct vcpu *v, u64 *rip)
{
	int err = vmx_load_vmcs(v->arch);

	if (err)
		return err;
	*rip = vmcs_readl(GUEST_RIP);
	return 0;
}

/* The VMCS is reached only through VMPTRLD, which can fail: then nothing is
 * read or written, and the caller hears of it. */
static int vmx_ops_get_state(struct vcpu *v, struct vcpu_state *s)
{
	int err = vmx_load_vmcs(v->arch);

	if (err)
		return err;
	vmx_get_state(v, s);
	return 0;
}

static int vmx_ops_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	int err = vmx_load_vmcs(v->arch);

	if (err)
		return err;
	vmx_set_state(v, s);
	return 0;
}

/*
 * INIT and STARTUP (vcpu_ops.reset_state, the twin of svm_reset_state): the
 * state set as set_state would, and what INIT also drops: the interrupt and
 * NMI windows, pending debug exceptions, and the guest's cached
 * translations of this VPID (the guest's CR3 and paging changed without a
 * MOV to CR3 it executed). The activity state stays "active": a vCPU
 * waiting for a STARTUP IPI is simply not entered by the scheduler
 * (vmm/startup.c). VT-x's own wait-for-SIPI activity state waits for a
 * *physical* SIPI to this CPU (SDM Vol. 3C 25.4.2 "Guest Non-Register
 * State", 26.2 "Other Causes of VM Exits": SIPI), which never comes for a
 * virtual one, and AMD-V has no such state: not entering is the one way
 * that is the same on both backends. SDM Vol. 3A 9.1.1 "Processor State
 * After Reset"; 28.3.3.3 "Guidelines for Use of the INVVPID Instruction".
 */
static int vmx_reset_state(struct vcpu *v, const struct vcpu_state *s)
{
	struct vmx_vcpu *x = v->arch;
	int err = vmx_load_vmcs(x);

	if (err)
		return err;
	vmx_set_state(v, s);
	vmcs_writel(GUEST_PENDING_DBG_EXCEPTIONS, 0);
	err = vmx_set_windows(v, 0);
	if (err)
		return err;
	if (x->vpid) {
		if (vmx_caps.ept_vpid_cap & VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT)
			invvpid(VMX_VPID_EXTENT_SINGLE_CONTEXT, x->vpid, 0);
		else
			invvpid(VMX_VPID_EXTENT_ALL_CONTEXT, 0, 0);
	}
	return 0;
}

static int vmx_ops_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	int err = vmx_load_vmcs(v->arch);

	return err ? err : vmx_get_field(v, f, val);
}

static int vmx_ops_set_field(struct vcpu *v, enum vcpu_field f, u64 val)
{
	int err = vmx_load_vmcs(v->arch);

	return err ? err : vmx_set_field(v, f, val);
}

const struct vcpu_ops vmx_ops = {
	.name = "VT-x",
	.mechanism = "VT-x with EPT",
	.hw_enable = vmx_hw_enable,
	.cpu_enable = vmx_cpu_enable,
	.vm_init = vmx_vm_init,
	.vm_destroy = vmx_vm_destroy,
	.vcpu_init = vmx_vcpu_init,
	.vcpu_destroy = vmx_vcpu_destroy,
	.vcpu_run = vmx_vcpu_run,
	.get_state = vmx_ops_get_state,
	.set_state = vmx_ops_set_state,
	.advance_rip = vmx_advance_rip,
	.inject_event = vmx_ops_inject_event,
	.intr_state = vmx_intr_state,
	.set_windows = vmx_set_windows,
	.read_rip = vmx_read_rip,
	.get_field = vmx_ops_get_field,
	.set_field = vmx_ops_set_field,
	.set_tsc_ratio = vmx_set_tsc_ratio,
	.exit_name = vmx_exit_reason_name,
	.dirty_start = vmx_dirty_start,
	.dirty_harvest = vmx_dirty_harvest,
	.dirty_stop = vmx_dirty_stop,
	.ram_unmap = vmx_ram_unmap,
	.ram_map = vmx_ram_map,
	.reset_state = vmx_reset_state,
	.vcpu_put = vmx_vcpu_put,
};
