/*
 * The AMD-V backend: SVM bring-up (one feature check, EFER.SVME, the host save
 * area and the permission maps), per-VM NPT and ASID, per-vCPU VMCB with its
 * intercepts, and the run step that enters the guest and decodes the next
 * exit. State transfer is in svm_state.c, exit decoding in svm_exit.c;
 * everything an exit means is emulated by generic code in vmm/.
 * Host context, interrupts off: bring-up on each CPU (svm_cpu_enable), VMs
 * and vCPUs set up on the boot CPU, a vCPU run on the CPU it is placed on.
 * APM Vol. 2 15 "Secure Virtual Machine", Appendix B "Layout of VMCB".
 */
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "kernel/x86.h"
#include "vmm/svm/svm.h"

#define SVM_DEFAULT_PAT 0x0007040600070406ULL

/* Exceptions intercepted so generic code can count them (#GP and #AC storms,
 * the latter also a known way to wedge a CPU in microcode) and reinject them. */
#define SVM_EXCEPTION_INTERCEPTS (BIT(X86_TRAP_GP) | BIT(X86_TRAP_AC))

struct svm_caps svm_caps;
static bool svm_on; /* the backend is usable: on for the boot CPU */
/* Per CPU, by number: what its TSC ratio MSR holds (8.32 fixed point), and
 * the vCPU it ran last (its ASID's TLB entries are that vCPU's). */
static u64 tsc_ratios[SMP_MAX_CPUS];
static struct vcpu *last_run[SMP_MAX_CPUS];

/* ---- bring-up ------------------------------------------------------------ */

/* The one feature check: fills svm_caps, or says what is missing. */
static int svm_check_features(void)
{
	if (!cpu.svm || !cpu.svm_npt || cpu.svm_disabled) {
		pr_err("svm: cannot use AMD-V: %s\n",
		       !cpu.svm		? "the CPU has no SVM (CPUID 8000_0001 ECX bit 2)" :
		       cpu.svm_disabled ? "SVM is disabled by the firmware (VM_CR.SVMDIS)" :
					  "the CPU has no nested paging (NPT)");
		return -ENODEV;
	}
	if (cpu.svm_nasid && cpu.svm_nasid <= VM_MAX) {
		pr_err("svm: cannot use AMD-V: only %u ASIDs, Amber needs %d\n", cpu.svm_nasid,
		       VM_MAX + 1);
		return -ENODEV;
	}
	svm_caps.nasid = cpu.svm_nasid;
	svm_caps.nrips = cpu.svm_nrips;
	svm_caps.tsc_rate = cpu.svm_tsc_rate;
	/* QEMU's TCG names itself in the brand string of its own models
	 * ("QEMU TCG CPU", -cpu max) and in the hypervisor leaf. */
	svm_caps.virq_inject = !strncmp(cpu.brand, "QEMU", 4) ||
			       !strcmp(cpu.hv_vendor, "TCGTCGTCGTCG");
	return 0;
}

/* Sets EFER.SVME on the calling CPU with its own host save area (VM_HSAVE_PA,
 * this_cpu()->virt_page[0]) and its own VMSAVE area for the host (virt_page[1]);
 * on failure leaves EFER as it found it. Once per CPU, after
 * svm_check_features on the boot CPU; on that CPU.
 * APM Vol. 2 15.4 "Enabling SVM", 15.30.4 "VM_HSAVE_PA MSR". */
static int svm_cpu_enable(void)
{
	struct host_cpu *c = this_cpu();
	u64 old_efer, hsave, host_save;
	int err = -ENOMEM;

	if (c->virt_on)
		return 0;
	hsave = pmm_alloc_page();
	if (!hsave)
		goto nomem;
	host_save = pmm_alloc_page();
	if (!host_save)
		goto free_hsave;

	err = -ENODEV;
	if (rdmsr_safe(MSR_EFER, &old_efer) || wrmsr_safe(MSR_EFER, old_efer | EFER_SVME)) {
		pr_err("svm: CPU %d: setting EFER.SVME faulted\n", c->index);
		goto free_host_save;
	}
	if (wrmsr_safe(MSR_VM_HSAVE_PA, hsave)) {
		pr_err("svm: CPU %d: writing VM_HSAVE_PA faulted\n", c->index);
		goto restore_efer;
	}
	vmsave(host_save);
	/* TSC scaling is switched on per vCPU, for a restored guest whose TSC
	 * ran at another rate (vmm/vtsc.c); until then every guest runs 1:1. */
	if (svm_caps.tsc_rate && wrmsr_safe(MSR_AMD64_TSC_RATIO, SVM_TSC_RATIO_ONE))
		svm_caps.tsc_rate = false;
	tsc_ratios[c->index] = SVM_TSC_RATIO_ONE;
	c->virt_page[0] = hsave;
	c->virt_page[1] = host_save;
	c->virt_on = true;
	return 0;

restore_efer:
	wrmsr_safe(MSR_EFER, old_efer);
free_host_save:
	pmm_free_page(host_save);
free_hsave:
	pmm_free_page(hsave);
nomem:
	if (err == -ENOMEM)
		pr_err("svm: CPU %d: no memory for the host save areas\n", c->index);
	return err;
}

/* The boot CPU, once: the feature check, the permission maps every VMCB
 * shares, then SVM on this CPU. */
static int svm_hw_enable(void)
{
	int err;

	if (svm_on)
		return 0;
	err = svm_check_features();
	if (err)
		return err;
	err = -ENOMEM;
	svm_caps.iopm_pa = pmm_alloc_contig(SVM_IOPM_SIZE / PAGE_SIZE, 1);
	if (!svm_caps.iopm_pa)
		goto nomem;
	svm_caps.msrpm_pa = pmm_alloc_contig(SVM_MSRPM_SIZE / PAGE_SIZE, 1);
	if (!svm_caps.msrpm_pa)
		goto free_iopm;
	/* Every port and every MSR is intercepted: generic code decides. */
	memset(phys_to_virt(svm_caps.iopm_pa), 0xFF, SVM_IOPM_SIZE);
	memset(phys_to_virt(svm_caps.msrpm_pa), 0xFF, SVM_MSRPM_SIZE);
	err = svm_cpu_enable();
	if (err)
		goto free_msrpm;
	svm_on = true;
	pr_info("svm: AMD-V on: NPT, %u ASIDs, NRIPS %s, VM_CR %s", svm_caps.nasid,
		svm_caps.nrips ? "yes" : "no: next RIP decoded by Amber",
		cpu.svm_vm_cr_faults ? "unreadable (#GP), taken as enabled" : "readable");
	pr_info("svm: TSC scaling (TSC ratio MSR): %s", svm_caps.tsc_rate ? "yes" : "no");
	if (svm_caps.virq_inject)
		pr_info("svm: QEMU's TCG: interrupts go in through V_IRQ, not EVENTINJ");
	return 0;

free_msrpm:
	pmm_free_contig(svm_caps.msrpm_pa, SVM_MSRPM_SIZE / PAGE_SIZE);
free_iopm:
	pmm_free_contig(svm_caps.iopm_pa, SVM_IOPM_SIZE / PAGE_SIZE);
nomem:
	if (err == -ENOMEM)
		pr_err("svm: no memory for the permission maps\n");
	memset(&svm_caps, 0, sizeof(svm_caps));
	return err;
}

/* ---- VMs: the NPT ------------------------------------------------------- */

static u64 svm_npt_alloc(void *ctx) { return pmm_alloc_page(); }
static void svm_npt_free(void *ctx, u64 pa) { pmm_free_page(pa); }
static void *svm_npt_virt(void *ctx, u64 pa) { return phys_to_virt(pa); }

static const struct npt_mm svm_npt_mm = {
	.alloc_page = svm_npt_alloc,
	.free_page = svm_npt_free,
	.to_virt = svm_npt_virt,
};

static int svm_vm_init(struct vm *vm)
{
	struct svm_vm *sv = kzalloc(sizeof(*sv));
	int err;

	if (!sv)
		return -ENOMEM;
	err = npt_init(&sv->npt, &svm_npt_mm, true);
	if (err)
		goto free;
	/* RAM only: every other guest-physical address is left unmapped, so
	 * the guest's device accesses (and strays) exit as nested page faults. */
	err = npt_map_ram(&sv->npt, vm->chunks, vm->nchunks, vm->mem_size);
	if (err)
		goto destroy;
	sv->asid = vm->id; /* 1..VM_MAX; ASID 0 is the host's */
	vm->arch = sv;
	return 0;

destroy:
	npt_destroy(&sv->npt);
free:
	kfree(sv);
	return err;
}

static void svm_vm_destroy(struct vm *vm)
{
	struct svm_vm *sv = vm->arch;

	if (!sv)
		return;
	npt_destroy(&sv->npt);
	kfree(sv);
	vm->arch = NULL;
}

/* ---- vCPUs: the VMCB ---------------------------------------------------- */

/* The intercepts of APM Vol. 2 15.9-15.14, nested paging, V_INTR_MASKING. */
static void svm_setup_controls(struct vcpu *v, struct svm_vcpu *s)
{
	struct svm_vm *sv = v->vm->arch;
	struct vmcb_control_area *c = &s->vmcb->control;

	c->intercept_exceptions = SVM_EXCEPTION_INTERCEPTS;
	c->intercept_misc1 = INTERCEPT_INTR | INTERCEPT_NMI | INTERCEPT_SMI | INTERCEPT_INIT |
			     INTERCEPT_CPUID | INTERCEPT_INVD | INTERCEPT_HLT | INTERCEPT_INVLPGA |
			     INTERCEPT_IOIO_PROT | INTERCEPT_MSR_PROT | INTERCEPT_SHUTDOWN;
	c->intercept_misc2 = INTERCEPT_VMRUN | INTERCEPT_VMMCALL | INTERCEPT_VMLOAD |
			     INTERCEPT_VMSAVE | INTERCEPT_STGI | INTERCEPT_CLGI | INTERCEPT_SKINIT |
			     INTERCEPT_MONITOR | INTERCEPT_MWAIT | INTERCEPT_MWAIT_COND |
			     INTERCEPT_XSETBV | INTERCEPT_RDTSCP;
	c->iopm_base_pa = svm_caps.iopm_pa;
	c->msrpm_base_pa = svm_caps.msrpm_pa;
	c->asid = sv->asid;
	c->int_ctl = V_INTR_MASKING_MASK;
	c->nested_ctl = SVM_NESTED_CTL_NP_ENABLE;
	c->nested_cr3 = npt_ncr3(&sv->npt);
	s->vmcb->save.g_pat = SVM_DEFAULT_PAT;
}

/* The guest state comes later, from vcpu_set_state(). */
static int svm_vcpu_init(struct vcpu *v)
{
	struct svm_vcpu *s;

	if (!svm_on || !v->vm->arch)
		return -ENODEV;
	s = kzalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->vmcb_pa = pmm_alloc_page();
	if (!s->vmcb_pa)
		goto free;
	s->vmcb = phys_to_virt(s->vmcb_pa);
	s->flush = true;
	s->host_cpu = -1;
	v->arch = s;
	svm_setup_controls(v, s);
	return 0;

free:
	kfree(s);
	return -ENOMEM;
}

static void svm_vcpu_destroy(struct vcpu *v)
{
	struct svm_vcpu *s = v->arch;

	if (!s)
		return;
	svm_release_cpu_regs(v);
	pmm_free_page(s->vmcb_pa);
	kfree(s);
	v->arch = NULL;
}

/* ---- running ------------------------------------------------------------ */

static int svm_vcpu_run(struct vcpu *v, struct vm_exit *exit)
{
	struct svm_vcpu *s = v->arch;
	struct vmcb *vmcb = s->vmcb;
	int here = smp_this_index();

	*exit = (struct vm_exit){ 0 }; /* inline stores: memset is a REP STOSB */
	svm_own_cpu_regs(v);
	vmcb->save.rax = v->regs[REG_RAX];
	vmcb->save.rsp = v->regs[REG_RSP];
	/* Without flush-by-ASID the only TLB control is "flush everything"; it is
	 * needed once per vCPU, since a VM's ASID may have served an older VM;
	 * after its NPT changed; and whenever this CPU's entries of the ASID may
	 * be another vCPU's (they share it) or stale (v ran elsewhere since). */
	if (last_run[here] != v || s->host_cpu != here)
		s->flush = true;
	vmcb->control.tlb_ctl = s->flush ? TLB_CONTROL_FLUSH_ALL_ASID : TLB_CONTROL_DO_NOTHING;
	s->flush = false;
	last_run[here] = v;
	s->host_cpu = here;
	/* The TSC ratio is the CPU's, not the VMCB's: each vCPU brings its own
	 * (APM Vol. 2 15.30.5 "TSC Ratio MSR"). */
	if (svm_caps.tsc_rate && tsc_ratios[here] != (s->tsc_ratio ?: SVM_TSC_RATIO_ONE)) {
		tsc_ratios[here] = s->tsc_ratio ?: SVM_TSC_RATIO_ONE;
		wrmsr(MSR_AMD64_TSC_RATIO, tsc_ratios[here]);
	}
	/* The host's VMSAVE state of this CPU (svm_cpu_enable). */
	svm_vmrun(v, s->vmcb_pa, host_cpus[here].virt_page[1]);
	v->regs[REG_RAX] = vmcb->save.rax;
	v->regs[REG_RSP] = vmcb->save.rsp;
	/* The injected event, if any, was delivered or is in EXITINTINFO now;
	 * a posted interrupt the guest took is gone from V_IRQ. */
	vmcb->control.event_inj = 0;
	if (s->virq && !(vmcb->control.int_ctl & V_IRQ_MASK))
		svm_drop_virq(s);
	return svm_decode_exit(v, exit);
}

static int svm_advance_rip(struct vcpu *v, const struct vm_exit *exit)
{
	struct vmcb *vmcb = ((struct svm_vcpu *)v->arch)->vmcb;

	vmcb->save.rip += exit->insn_len;
	/* The skipped instruction ends any STI or MOV SS shadow. */
	vmcb->control.int_state &= ~SVM_INTERRUPT_SHADOW_MASK;
	return 0;
}

/* APM Vol. 2 15.20 "Event Injection". An NMI blocks NMIs until the guest's
 * IRET completes; the IRET intercept tells when (svm_exit.c). On QEMU's
 * TCG external interrupts go through V_IRQ instead (svm_post_virq). */
static int svm_ops_inject_event(struct vcpu *v, const struct vcpu_event *ev)
{
	struct svm_vcpu *s = v->arch;

	switch (ev->type) {
	case VCPU_EVENT_EXTINT:
		if (svm_caps.virq_inject)
			svm_post_virq(s, ev->vector);
		else
			svm_inject_event(s->vmcb, SVM_EVTINJ_TYPE_INTR, ev->vector, false, 0);
		break;
	case VCPU_EVENT_NMI:
		svm_inject_event(s->vmcb, SVM_EVTINJ_TYPE_NMI, X86_TRAP_NMI, false, 0);
		s->nmi_blocked = true;
		s->iret_seen = false;
		s->vmcb->control.intercept_misc1 |= INTERCEPT_IRET;
		break;
	default:
		svm_inject_event(s->vmcb, SVM_EVTINJ_TYPE_EXEPT, ev->vector, ev->has_error,
				 ev->error_code);
		break;
	}
	return 0;
}

/* The VMCB's interrupt shadow (one for STI and MOV SS), RFLAGS.IF, the NMI
 * blocking Amber tracks, and EVENTINJ or a posted V_IRQ. */
static int svm_intr_state(struct vcpu *v, u32 *state)
{
	struct svm_vcpu *s = v->arch;

	*state = (s->vmcb->control.int_state & SVM_INTERRUPT_SHADOW_MASK) ? VCPU_INTR_STI : 0;
	if (s->vmcb->save.rflags & X86_RFLAGS_IF)
		*state |= VCPU_INTR_IF;
	if (s->nmi_blocked)
		*state |= VCPU_INTR_NMI;
	if ((s->vmcb->control.event_inj & SVM_EVTINJ_VALID) || s->virq)
		*state |= VCPU_INTR_QUEUED;
	return 0;
}

/* The interrupt window is a virtual interrupt that is never taken: V_IRQ at
 * the highest priority, TPR ignored, and the VINTR intercept, which exits as
 * soon as the guest could take it (IF=1, no shadow). APM Vol. 2 15.21.4
 * "Injecting Virtual (INTR) Interrupts". The NMI window is the IRET
 * intercept, on whenever NMIs are blocked (svm_ops_inject_event). While
 * V_IRQ carries a posted interrupt there is no interrupt window: the next
 * exit after it is taken looks again (the guest's EOI is one). */
static int svm_set_windows(struct vcpu *v, u32 windows)
{
	struct svm_vcpu *s = v->arch;
	struct vmcb_control_area *c = &s->vmcb->control;

	if (s->virq)
		windows &= ~VCPU_WINDOW_INTR;

	if ((windows & VCPU_WINDOW_INTR) == (s->windows & VCPU_WINDOW_INTR))
		return 0;
	if (windows & VCPU_WINDOW_INTR) {
		c->int_ctl |= V_IRQ_MASK | V_IGN_TPR_MASK | V_INTR_PRIO_MASK;
		c->intercept_misc1 |= INTERCEPT_VINTR;
	} else {
		c->int_ctl &= ~(u64)(V_IRQ_MASK | V_IGN_TPR_MASK | V_INTR_PRIO_MASK);
		c->intercept_misc1 &= ~INTERCEPT_VINTR;
	}
	s->windows = windows;
	return 0;
}

static int svm_read_rip(struct vcpu *v, u64 *rip)
{
	*rip = ((struct svm_vcpu *)v->arch)->vmcb->save.rip;
	return 0;
}

/* The VMCB is plain memory: reaching it cannot fail. */
static int svm_ops_get_state(struct vcpu *v, struct vcpu_state *s)
{
	svm_get_state(v, s);
	return 0;
}

static int svm_ops_set_state(struct vcpu *v, const struct vcpu_state *s)
{
	svm_set_state(v, s);
	return 0;
}

/*
 * INIT and STARTUP (vcpu_ops.reset_state, the twin of vmx_reset_state): the
 * state set as set_state would, and what INIT also drops: the interrupt
 * window (V_IRQ and the VINTR intercept), NMI blocking with its IRET
 * intercept (set_state's interruptibility), and the guest's TLB entries of
 * this ASID (the guest's CR3 and paging changed without a MOV to CR3 it
 * executed). A vCPU waiting for a STARTUP IPI is simply not entered
 * (vmm/startup.c); AMD-V has no wait-for-SIPI state of its own. APM Vol. 2
 * 15.16 "TLB Control", 15.21.4 "Injecting Virtual (INTR) Interrupts";
 * SDM Vol. 3A 9.1.1 "Processor State After Reset".
 */
static int svm_reset_state(struct vcpu *v, const struct vcpu_state *st)
{
	struct svm_vcpu *s = v->arch;

	svm_set_state(v, st);
	svm_set_windows(v, 0);
	s->flush = true;
	return 0;
}

const struct vcpu_ops svm_ops = {
	.name = "AMD-V",
	.mechanism = "AMD-V with NPT",
	.hw_enable = svm_hw_enable,
	.cpu_enable = svm_cpu_enable,
	.vm_init = svm_vm_init,
	.vm_destroy = svm_vm_destroy,
	.vcpu_init = svm_vcpu_init,
	.vcpu_destroy = svm_vcpu_destroy,
	.vcpu_run = svm_vcpu_run,
	.get_state = svm_ops_get_state,
	.set_state = svm_ops_set_state,
	.advance_rip = svm_advance_rip,
	.inject_event = svm_ops_inject_event,
	.intr_state = svm_intr_state,
	.set_windows = svm_set_windows,
	.read_rip = svm_read_rip,
	.get_field = svm_get_field,
	.set_field = svm_set_field,
	.set_tsc_ratio = svm_set_tsc_ratio,
	.exit_name = svm_exit_reason_name,
	.dirty_start = svm_dirty_start,
	.dirty_harvest = svm_dirty_harvest,
	.dirty_stop = svm_dirty_stop,
	.ram_unmap = svm_ram_unmap,
	.ram_map = svm_ram_map,
	.reset_state = svm_reset_state,
	.vcpu_put = svm_vcpu_put,
};
