/*
 * The generic vCPU run loop: enter the guest through the backend, dispatch the
 * neutral exit record through one table indexed by enum vm_exit_kind, and the
 * round-robin scheduler that the shell runs while it waits for a key. Also the
 * stop report (reason, exit record, registers, code bytes) every misbehaving
 * guest gets. Host context, boot CPU, interrupts off (the backends open the
 * window in which the host timer ends a slice).
 */
#include "kernel/irq.h"
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "kernel/x86.h"
#include "vmm/hypercall.h"
#include "vmm/intr.h"
#include "vmm/pager.h"
#include "vmm/vmm_internal.h"

typedef int (*exit_handler_t)(struct vcpu *v, struct vm_exit *e);

/* Reports and page walks, one per CPU (never nested on one). */
static struct vcpu_state scratches[SMP_MAX_CPUS];
#define scratch (scratches[smp_this_index()])

static const char *const kind_names[VMEXIT_KIND_COUNT] = {
	[VMEXIT_NONE] = "other",
	[VMEXIT_HOST_INTERRUPT] = "interrupt",
	[VMEXIT_IO] = "io",
	[VMEXIT_MEM] = "mem",
	[VMEXIT_CPUID] = "cpuid",
	[VMEXIT_MSR_READ] = "rdmsr",
	[VMEXIT_MSR_WRITE] = "wrmsr",
	[VMEXIT_HLT] = "hlt",
	[VMEXIT_TRIPLE_FAULT] = "triple-fault",
	[VMEXIT_VIRT_INSN] = "virt-insn",
	[VMEXIT_EXCEPTION] = "exception",
	[VMEXIT_ENTRY_FAILED] = "entry-failed",
	[VMEXIT_UNHANDLED] = "unhandled",
	[VMEXIT_XSETBV] = "xsetbv",
	[VMEXIT_INTR_WINDOW] = "intr-window",
	[VMEXIT_NMI_WINDOW] = "nmi-window",
	[VMEXIT_HYPERCALL] = "hypercall",
};

const char *vm_exit_kind_name(enum vm_exit_kind kind)
{
	return (unsigned)kind < VMEXIT_KIND_COUNT && kind_names[kind] ? kind_names[kind] : "?";
}

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS",
	"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
	"#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

/* ---- guest memory through the guest's own page tables ---------------------- */

#define PG_P BIT(0)
#define PG_RW BIT(1)
#define PG_US BIT(2)
#define PG_A BIT(5)
#define PG_D BIT(6)
#define PG_PS BIT(7)
#define X86_CR0_PE BIT(0)
#define X86_CR0_WP BIT(16)
#define X86_CR0_PG BIT(31)
#define X86_CR4_PSE BIT(4)
#define X86_CR4_PAE BIT(5)
#define X86_CR4_SMAP BIT(21)
#define X86_EFLAGS_AC BIT(18)
#define X86_EFLAGS_VM BIT(17)
#define EFER_LMA_BIT BIT(10)

/* The paging-structure entries one walk went through, so that an emulated
 * access can set their accessed bits once it is known to be allowed. */
struct walk {
	void *entry[5];
	u64 entry_gpa[5]; /* where each entry lies, for the dirty log */
	bool wide[5];
	int n;
	u64 rights; /* R/W and U/S of every level ANDed (SDM Vol. 3A 4.6) */
};

/* Reads the entry at gpa (8 bytes when wide, else 4) into *val; false when it
 * is outside RAM or not present. `rights` says whether the entry has R/W and
 * U/S bits (PAE PDPTEs have none) and A bit to set. */
static bool walk_entry(struct vm *vm, struct walk *w, u64 gpa, bool wide, bool rights, u64 *val)
{
	void *p = gpa_to_hva(vm, gpa, wide ? 8 : 4);

	if (!p)
		return false;
	*val = wide ? *(u64 *)p : *(u32 *)p;
	if (!(*val & PG_P))
		return false;
	if (rights) {
		w->rights &= *val;
		w->entry[w->n] = p;
		w->entry_gpa[w->n] = gpa;
		w->wide[w->n++] = wide;
	}
	return true;
}

/* Translates a guest-linear address with the paging mode of state s
 * (SDM Vol. 3A 4.3 "32-Bit Paging", 4.4 "PAE Paging", 4.5 "4-Level Paging").
 * Fills w with the entries used; rights are the caller's to check. */
static int guest_translate(struct vm *vm, const struct vcpu_state *s, u64 la, u64 *gpa,
			   struct walk *w)
{
	u64 e, table;
	int level;

	w->n = 0;
	w->rights = PG_RW | PG_US;
	if (!(s->cr0 & X86_CR0_PG)) {
		*gpa = la & 0xFFFFFFFFULL;
		return 0;
	}
	if (!(s->cr4 & X86_CR4_PAE)) {
		la &= 0xFFFFFFFFULL;
		if (!walk_entry(vm, w, (s->cr3 & 0xFFFFF000) + ((la >> 22) << 2), false, true, &e))
			return -EFAULT;
		if ((e & PG_PS) && (s->cr4 & X86_CR4_PSE)) {
			*gpa = (e & 0xFFC00000) | ((e & 0x1FE000) << 19) | (la & 0x3FFFFF);
			return 0;
		}
		if (!walk_entry(vm, w, (e & 0xFFFFF000) + (((la >> 12) & 0x3FF) << 2), false, true,
				&e))
			return -EFAULT;
		*gpa = (e & 0xFFFFF000) | (la & 0xFFF);
		return 0;
	}
	if (s->efer & EFER_LMA_BIT) {
		table = s->cr3 & GENMASK_ULL(51, 12);
		level = 3;
	} else {
		la &= 0xFFFFFFFFULL;
		if (!walk_entry(vm, w, (s->cr3 & 0xFFFFFFE0) + ((la >> 30) << 3), true, false, &e))
			return -EFAULT;
		table = e & GENMASK_ULL(51, 12);
		level = 1;
	}
	for (; level >= 0; level--) {
		if (!walk_entry(vm, w, table + (((la >> (12 + 9 * level)) & 511) << 3), true, true,
				&e))
			return -EFAULT;
		if (level > 0 && (e & PG_PS)) {
			u64 size = 1ULL << (12 + 9 * level);

			*gpa = (e & GENMASK_ULL(51, 12) & ~(size - 1)) | (la & (size - 1));
			return 0;
		}
		table = e & GENMASK_ULL(51, 12);
	}
	*gpa = table | (la & 0xFFF);
	return 0;
}

/* The CPL of a vCPU: 0 in real mode, 3 in virtual-8086 mode, else SS.DPL
 * (SDM Vol. 3A 5.5 "Privilege Levels"; VM entry keeps SS.DPL equal to CPL). */
static int vcpu_cpl(const struct vcpu_state *s)
{
	if (!(s->cr0 & X86_CR0_PE))
		return 0;
	if (s->rflags & X86_EFLAGS_VM)
		return 3;
	return (s->ss.attr >> 5) & 3;
}

int vcpu_translate(struct vcpu *v, const struct vcpu_state *s, u64 la, u32 access, u64 *gpa)
{
	bool write = access & VCPU_ACCESS_WRITE, user = vcpu_cpl(s) == 3;
	struct walk w;
	int err = guest_translate(v->vm, s, la, gpa, &w);

	if (err || !(s->cr0 & X86_CR0_PG))
		return err;
	/* SDM Vol. 3A 4.6.1 "Determination of Access Rights": user accesses
	 * need U/S everywhere, writes need R/W everywhere (for supervisor
	 * writes only with CR0.WP), SMAP keeps supervisor data accesses off
	 * user pages unless EFLAGS.AC. Protection keys are not checked. */
	if (user && !(w.rights & PG_US))
		return -EPERM;
	if (write && !(w.rights & PG_RW) && (user || (s->cr0 & X86_CR0_WP)))
		return -EPERM;
	if (!user && (w.rights & PG_US) && (s->cr4 & X86_CR4_SMAP) && !(s->rflags & X86_EFLAGS_AC))
		return -EPERM;
	/* 4.8 "Accessed and Dirty Flags": A in every entry used, D in the one
	 * that maps the page when it is written. Locked ORs, as the CPU's own
	 * walker does: another vCPU of the VM may be changing the same entry
	 * on another host CPU, and a plain read-modify-write would undo its
	 * write. An entry that has the bits already is not written. */
	for (int i = 0; i < w.n; i++) {
		u64 set = PG_A | (write && i == w.n - 1 ? PG_D : 0);

		if (w.wide[i] ? (*(u64 *)w.entry[i] & set) == set :
				(*(u32 *)w.entry[i] & (u32)set) == (u32)set)
			continue;
		dirty_log_mark(&v->vm->dirty, w.entry_gpa[i], w.wide[i] ? 8 : 4);
		if (w.wide[i])
			__atomic_fetch_or((u64 *)w.entry[i], set, __ATOMIC_SEQ_CST);
		else
			__atomic_fetch_or((u32 *)w.entry[i], (u32)set, __ATOMIC_SEQ_CST);
	}
	return 0;
}

u64 vcpu_guest_tsc(struct vcpu *v)
{
	u64 tsc;
	int err = vcpu_ops->get_field(v, VCPU_FIELD_TSC, &tsc);

	if (err) { /* the devices see the time stand still at the last pause */
		vm_stop(v->vm, "%s could not read the guest's TSC (%s)", vcpu_ops->name,
			errno_name(err));
		return v->frozen_tsc;
	}
	return tsc;
}

int vcpu_read_linear(struct vcpu *v, const struct vcpu_state *s, u64 la, void *dst, u64 len)
{
	u8 *d = dst;
	struct walk w;

	while (len) {
		u64 n = MIN(len, PAGE_SIZE - (la & (PAGE_SIZE - 1))), gpa;

		if (guest_translate(v->vm, s, la, &gpa, &w) || vm_copy_from_guest(v->vm, d, gpa, n))
			return -EFAULT;
		la += n;
		d += n;
		len -= n;
	}
	return 0;
}

int vcpu_write_linear(struct vcpu *v, u64 la, const void *src, u64 len)
{
	const u8 *p = src;
	int err;

	if (vcpu_ops->get_state(v, &scratch))
		return -EIO;
	while (len) {
		u64 n = MIN(len, PAGE_SIZE - (la & (PAGE_SIZE - 1))), gpa;

		err = vcpu_translate(v, &scratch, la, VCPU_ACCESS_WRITE, &gpa);
		if (err)
			return err;
		if (vm_copy_to_guest(v->vm, gpa, p, n))
			return -EFAULT;
		la += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- reports --------------------------------------------------------------- */

static void dump_segment(const char *pfx, const char *name, const struct vcpu_segment *sg)
{
	printk("%s%s=%04x base=%016lx limit=%08x attr=%03x\n", pfx, name, sg->selector, sg->base,
	       sg->limit, sg->attr);
}

void vcpu_dump(struct vcpu *v, bool report)
{
	const u64 *r = v->regs;
	struct vcpu_state *s = &scratch;
	u8 code[16];
	char hex[64], pfx[16];
	int n = 0;
	int err = vcpu_ops->get_state(v, s);

	/* Three 64-bit registers to a line: 80 columns. */
	if (report)
		snprintf(pfx, sizeof(pfx), "[vm%d]   ", v->vm->id);
	else
		strlcpy(pfx, "    ", sizeof(pfx));
	if (!err)
		printk("%sRIP=%016lx RFLAGS=%08lx RSP=%016lx\n", pfx, s->rip, s->rflags,
		       r[REG_RSP]);
	printk("%sRAX=%016lx RBX=%016lx RCX=%016lx\n", pfx, r[REG_RAX], r[REG_RBX], r[REG_RCX]);
	printk("%sRDX=%016lx RSI=%016lx RDI=%016lx\n", pfx, r[REG_RDX], r[REG_RSI], r[REG_RDI]);
	printk("%sRBP=%016lx R8 =%016lx R9 =%016lx\n", pfx, r[REG_RBP], r[REG_R8], r[REG_R9]);
	printk("%sR10=%016lx R11=%016lx R12=%016lx\n", pfx, r[REG_R10], r[REG_R11], r[REG_R12]);
	printk("%sR13=%016lx R14=%016lx R15=%016lx\n", pfx, r[REG_R13], r[REG_R14], r[REG_R15]);
	if (err) {
		printk("%sRSP=%016lx; the rest of the state is unreadable:\n%s%s failed (%s)\n",
		       pfx, r[REG_RSP], pfx, vcpu_ops->name, errno_name(err));
		return;
	}
	printk("%sCR0=%08lx CR2=%016lx CR3=%016lx\n", pfx, s->cr0, s->cr2, s->cr3);
	printk("%sCR4=%08lx EFER=%08lx XCR0=%lx\n", pfx, s->cr4, s->efer, v->xcr0);
	printk("%sGDTR=%016lx/%x IDTR=%016lx/%x\n", pfx, s->gdtr.base, s->gdtr.limit, s->idtr.base,
	       s->idtr.limit);
	dump_segment(pfx, "CS", &s->cs);
	dump_segment(pfx, "SS", &s->ss);
	dump_segment(pfx, "DS", &s->ds);
	if (s->pending.valid)
		printk("%sevent being delivered: type %u vector %u error 0x%x\n", pfx,
		       s->pending.type, s->pending.vector, s->pending.error_code);
	if (vcpu_read_linear(v, s, s->cs.base + s->rip, code, sizeof(code)) == 0) {
		for (unsigned i = 0; i < sizeof(code) && n < (int)sizeof(hex) - 3; i++)
			n += snprintf(hex + n, sizeof(hex) - n, "%02x ", code[i]);
		printk("%scode at RIP: %s\n", pfx, hex);
	} else {
		printk("%scode at RIP: not readable (outside RAM or not mapped)\n", pfx);
	}
}

int vcpu_stop_report(struct vcpu *v, const struct vm_exit *e, const char *fmt, ...)
{
	struct vm *vm = v->vm;
	const char *name = vcpu_ops->exit_name ? vcpu_ops->exit_name(e->raw_reason) : NULL;
	char reason[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	vm_stop(vm, "%s", reason);
	printk("[vm%d]   vCPU %d, %s exit %s (0x%x), qualification 0x%lx, info 0x%lx, RIP 0x%lx\n",
	       vm->id, v->id, vcpu_ops->name, name ? name : "?", e->raw_reason, e->qualification,
	       e->info2, e->rip);
	vcpu_dump(v, true);
	return EXIT_YIELD;
}

int vcpu_backend_failed(struct vcpu *v, const struct vm_exit *e, const char *what, int err)
{
	return vcpu_stop_report(v, e, "%s could not %s (%s)", vcpu_ops->name, what,
				errno_name(err));
}

/* ---- exit handlers ----------------------------------------------------------- */

static int handle_none(struct vcpu *v, struct vm_exit *e) { return EXIT_RESUME; }

/* The host's timer or the backend's own: the run loop looks at the clock. */
static int handle_host_interrupt(struct vcpu *v, struct vm_exit *e) { return EXIT_RESUME; }

/* The window asked for has come: the next entry injects (vmm/intr.c). */
static int handle_window(struct vcpu *v, struct vm_exit *e) { return EXIT_RESUME; }

static int handle_io(struct vcpu *v, struct vm_exit *e)
{
	return e->io.string ? emulate_string_io(v, e) : emulate_io(v, e);
}

static int handle_mem(struct vcpu *v, struct vm_exit *e)
{
	const struct mmio_region *r;

	/* A RAM page that has not arrived yet (vmm/pager.h). */
	if (pager_active(v->vm->pager) && e->mem.gpa < v->vm->mem_size &&
	    !pager_present(v->vm, e->mem.gpa / PAGE_SIZE))
		return pager_fault(v, e);
	r = e->mem.fetch ? NULL : mmio_find(&v->vm->mmio, e->mem.gpa);
	if (r)
		return emulate_mmio(v, e, r);
	return vcpu_stop_report(v, e,
				"guest %s GPA 0x%lx, outside its RAM (0-0x%lx) and every device",
				e->mem.fetch ? "fetched code at" :
				e->mem.write ? "wrote to" :
					       "read from",
				e->mem.gpa, v->vm->mem_size - 1);
}

static int handle_cpuid(struct vcpu *v, struct vm_exit *e) { return emulate_cpuid(v, e); }
static int handle_rdmsr(struct vcpu *v, struct vm_exit *e) { return emulate_rdmsr(v, e); }
static int handle_wrmsr(struct vcpu *v, struct vm_exit *e) { return emulate_wrmsr(v, e); }
static int handle_xsetbv(struct vcpu *v, struct vm_exit *e) { return emulate_xsetbv(v, e); }

/* HLT: the vCPU sleeps until it has something it can take (vmm/intr.c), at
 * once when that is already so; the scheduler looks at it again when it is
 * kicked or a device deadline comes. With IF=0 and no NMI nothing wakes it:
 * once every vCPU of a VM sleeps so, the VM is "halted". */
static int handle_hlt(struct vcpu *v, struct vm_exit *e)
{
	int err = vcpu_ops->advance_rip(v, e);

	if (err)
		return vcpu_backend_failed(v, e, "move RIP past HLT", err);
	v->kicked = false;
	if (intr_can_wake(v))
		return EXIT_RESUME;
	v->halted = true;
	return EXIT_YIELD;
}

static int handle_triple_fault(struct vcpu *v, struct vm_exit *e)
{
	return vcpu_stop_report(v, e,
				"triple fault: an exception the guest could not handle "
				"(shutdown)");
}

static int handle_virt_insn(struct vcpu *v, struct vm_exit *e)
{
	const char *name = vcpu_ops->exit_name ? vcpu_ops->exit_name(e->raw_reason) : NULL;

	return vcpu_stop_report(v, e,
				"executed the virtualization instruction %s, which Amber "
				"does not offer to guests",
				name ? name : "?");
}

/* Contributory exceptions, SDM Vol. 3A 6.15 "Exception and Interrupt Reference",
 * Interrupt 8, Table 6-4: two of them in a row make a #DF. */
static bool contributory(u8 vec) { return vec == 0 || (vec >= 10 && vec <= 13); }

/* An intercepted exception goes back to the guest, unless they come in a storm
 * (a handler that faults again, forever): then the VM is stopped. When it
 * arose while the CPU was delivering another exception (the backend requeued
 * that one as the pending event), the two combine as the CPU would have
 * combined them: a #DF, or a triple fault after a #DF (SDM Vol. 3A 6.15,
 * Table 6-5 "Conditions for Generating a Double Fault"). */
static int handle_exception(struct vcpu *v, struct vm_exit *e)
{
	u64 now = ticks();
	u8 vec = e->exc.vector;
	bool has_error = e->exc.has_error;
	u32 error = e->exc.error_code;
	int err = vcpu_ops->get_state(v, &scratch);

	if (err)
		return vcpu_backend_failed(v, e, "read the vCPU state", err);
	if (scratch.pending.valid && scratch.pending.type == 3) {
		u8 prev = scratch.pending.vector;

		if (prev == 8)
			return handle_triple_fault(v, e);
		if ((contributory(prev) && contributory(vec)) ||
		    (prev == 14 && (contributory(vec) || vec == 14))) {
			vec = 8;
			has_error = true;
			error = 0;
		}
	}

	if (now - v->exc_window > EXC_STORM_WINDOW_US) {
		v->exc_window = now;
		v->exceptions = 0;
	}
	if (++v->exceptions > EXC_STORM_LIMIT)
		return vcpu_stop_report(v, e,
					"exception storm: more than %d %s exceptions within "
					"a second",
					EXC_STORM_LIMIT, exception_names[vec & 31]);
	err = vcpu_inject_exception(v, vec, has_error, error);
	if (err)
		return vcpu_backend_failed(v, e, "inject the exception", err);
	return EXIT_RESUME;
}

static int handle_entry_failed(struct vcpu *v, struct vm_exit *e)
{
	return vcpu_stop_report(v, e, "the CPU refused to enter the guest (invalid guest state)");
}

static int handle_unhandled(struct vcpu *v, struct vm_exit *e)
{
	const char *name = vcpu_ops->exit_name ? vcpu_ops->exit_name(e->raw_reason) : NULL;

	return vcpu_stop_report(v, e, "unexpected VM exit %s (0x%x)", name ? name : "?",
				e->raw_reason);
}

static const exit_handler_t exit_handlers[VMEXIT_KIND_COUNT] = {
	[VMEXIT_NONE] = handle_none,
	[VMEXIT_HOST_INTERRUPT] = handle_host_interrupt,
	[VMEXIT_IO] = handle_io,
	[VMEXIT_MEM] = handle_mem,
	[VMEXIT_CPUID] = handle_cpuid,
	[VMEXIT_MSR_READ] = handle_rdmsr,
	[VMEXIT_MSR_WRITE] = handle_wrmsr,
	[VMEXIT_HLT] = handle_hlt,
	[VMEXIT_TRIPLE_FAULT] = handle_triple_fault,
	[VMEXIT_VIRT_INSN] = handle_virt_insn,
	[VMEXIT_EXCEPTION] = handle_exception,
	[VMEXIT_ENTRY_FAILED] = handle_entry_failed,
	[VMEXIT_UNHANDLED] = handle_unhandled,
	[VMEXIT_XSETBV] = handle_xsetbv,
	[VMEXIT_INTR_WINDOW] = handle_window,
	[VMEXIT_NMI_WINDOW] = handle_window,
	[VMEXIT_HYPERCALL] = hypercall_exit,
};

/* ---- the run loop and the scheduler --------------------------------------- */

/* What an exit's handling may have changed, for vmm/intr.c: a plain exit
 * (CPUID, XSETBV, a reflected exception) touches neither a device nor the
 * interrupt state, so the next entry may skip the look at delivery
 * (intr_unchanged); the other exits that reach no emulated device keep the
 * devices' next deadline but have the look made (windows, host interrupts,
 * the exits a backend finishes itself: VT-x CR8 accesses, the AMD-V IRET
 * intercept); every other exit may have used a device. */
enum exit_class {
	EXIT_USES_DEVICES = 0,
	EXIT_NO_DEVICE,
	EXIT_PLAIN,
};

static enum exit_class exit_class_of(enum vm_exit_kind kind)
{
	switch (kind) {
	case VMEXIT_CPUID:
	case VMEXIT_EXCEPTION:
	case VMEXIT_XSETBV:
		return EXIT_PLAIN;
	case VMEXIT_NONE:
	case VMEXIT_HOST_INTERRUPT:
	case VMEXIT_INTR_WINDOW:
	case VMEXIT_NMI_WINDOW:
		return EXIT_NO_DEVICE;
	default:
		return EXIT_USES_DEVICES;
	}
}

/* ---- placement, the hold, the kick ---------------------------------------
 *
 * Each vCPU has a home CPU (v->cpu: vm create pin=, the boot CPU by
 * default). Every CPU runs the vCPUs placed on it: the boot CPU from the
 * shell's idle hook (vmm_idle), an AP from its own loop (vmm_ap_idle, which
 * kernel/smp.c calls between requests). A vCPU is claimed (v->on_cpu) by the
 * CPU that looks at it or runs it, under sched_lock, so it runs on one CPU at
 * a time. The shell touches VM state only while it holds the APs
 * (vmm_hold): every AP is out of guest mode and claims nothing, which is also
 * what freezes every vCPU of a VM at one instant for pause, save and kill.
 */
static spinlock_t sched_lock;		   /* claims, ap_hold */
static u32 ap_hold;			   /* set: no AP claims a vCPU */
static unsigned hold_depth;		   /* vmm_hold's nesting; boot CPU only */
static struct vcpu *running[SMP_MAX_CPUS]; /* what each CPU has claimed */
static unsigned cursors[SMP_MAX_CPUS];	   /* each CPU's round robin */
u64 vmm_hold_wait_us;

int vcpu_runs_on(struct vcpu *v)
{
	struct vm *vm = v->vm;
	int c = v->cpu;

	/* The boot CPU takes over a VM whose RAM still arrives from a disk (the
	 * pager reads it there), whose writes a live save tracks (the harvest
	 * runs there), one with hypercalls (a fast reset rewrites every vCPU
	 * from the exit path), and every vCPU whose CPU is not online. */
	if (c <= 0 || c >= smp_cpu_count || pager_active(vm->pager) || vm->dirty.on ||
	    vm->hypercalls || !host_cpus[c].virt_on ||
	    __atomic_load_n(&host_cpus[c].state, __ATOMIC_ACQUIRE) != CPU_ONLINE)
		return 0;
	return c;
}

int vmm_vcpus_placed(int cpu)
{
	int n = 0;

	for (int i = 0; i < VM_MAX; i++) {
		struct vm *vm = vm_table[i];

		if (!vm || (vm->state != VM_CREATED && vm->state != VM_RUNNING &&
			    vm->state != VM_PAUSED && vm->state != VM_HALTED))
			continue;
		for (int j = 0; j < vm->nvcpus; j++)
			n += vm->vcpus[j] && vm->vcpus[j]->cpu == cpu;
	}
	return n;
}

/* Where new vCPUs go by default (vm create without pin=, pin=auto, a
 * restored VM): each to the AP that runs guests with the fewest vCPUs placed
 * on it, counting the ones placed before it (the lowest number on a tie), so
 * that VMs spread over the machine and the boot CPU keeps the shell and the
 * disks. The boot CPU when no AP runs guests. */
void vmm_place_auto(int n, int *pins)
{
	int load[SMP_MAX_CPUS];

	for (int c = 1; c < smp_cpu_count; c++)
		load[c] = vmm_vcpus_placed(c);
	for (int i = 0; i < n; i++) {
		int best = 0;

		for (int c = 1; c < smp_cpu_count; c++)
			if (host_cpus[c].state == CPU_ONLINE && host_cpus[c].virt_on &&
			    (!best || load[c] < load[best]))
				best = c;
		pins[i] = best;
		if (best)
			load[best]++;
	}
}

/* The cross-CPU half of vcpu_kick: a vCPU that runs elsewhere gets a kick,
 * which ends its guest mode or wakes its CPU from HLT, so that it looks at
 * what arrived. */
static void kick_remote(struct vcpu *v)
{
	int c = vcpu_runs_on(v);

	if (c != smp_this_index())
		smp_kick(c);
}

static void unclaim(int cpu, struct vcpu *v)
{
	spin_lock(&sched_lock);
	v->on_cpu = -1;
	running[cpu] = NULL;
	spin_unlock(&sched_lock);
}

/* What an AP leaves behind after a slice of v, and the boot CPU after a
 * slice or a look at a vCPU placed elsewhere: nothing of v loaded. */
static void vcpu_put(struct vcpu *v)
{
	vcpu_fpu_release(v);
	if (vcpu_ops->vcpu_put)
		vcpu_ops->vcpu_put(v);
}

/* Waits until no AP has a vCPU, kicking each that has one; bounded (500 ms
 * for all). Returns 0 or -ETIMEDOUT after reporting a CPU left out. */
static int wait_aps(void)
{
	u64 t0 = ticks(), dl;
	int err = 0;

	/* Every kick first, so that the CPUs leave guest mode together. */
	for (int c = 1; c < smp_cpu_count; c++)
		if (__atomic_load_n(&running[c], __ATOMIC_ACQUIRE))
			smp_kick(c);
	dl = deadline_after_us(SMP_CALL_TIMEOUT_US);
	for (int c = 1; c < smp_cpu_count; c++) {
		struct vcpu *v = __atomic_load_n(&running[c], __ATOMIC_ACQUIRE);

		if (!v)
			continue;
		while (__atomic_load_n(&running[c], __ATOMIC_ACQUIRE)) {
			if (deadline_passed(dl)) {
				__atomic_store_n(&host_cpus[c].state, CPU_NOANSWER,
						 __ATOMIC_RELEASE);
				pr_err("vmm: CPU %d did not leave guest mode (vm%d vCPU %d) within "
				       "%d ms; it is left out",
				       c, v->vm->id, v->id, SMP_CALL_TIMEOUT_US / 1000);
				err = -ETIMEDOUT;
				break;
			}
			smp_poll();
			cpu_relax();
		}
	}
	vmm_hold_wait_us = ticks() - t0;
	return err;
}

int vmm_hold(bool on)
{
	if (smp_cpu_count < 2)
		return 0;
	if (on) {
		if (hold_depth++)
			return 0;
		spin_lock(&sched_lock);
		__atomic_store_n(&ap_hold, 1, __ATOMIC_RELEASE);
		spin_unlock(&sched_lock);
		return wait_aps();
	}
	if (!hold_depth || --hold_depth)
		return 0;
	/* What the shell loaded of a vCPU placed on an AP goes back to memory
	 * before that AP may load it (a VMCS is active on one CPU at a time). */
	for (int i = 0; i < VM_MAX; i++) {
		struct vm *vm = vm_table[i];

		for (int j = 0; vm && j < vm->nvcpus; j++)
			if (vm->vcpus[j] && vm->vcpus[j]->cpu)
				vcpu_put(vm->vcpus[j]);
	}
	__atomic_store_n(&ap_hold, 0, __ATOMIC_RELEASE);
	for (int c = 1; c < smp_cpu_count; c++)
		smp_kick(c); /* asleep until their next timer otherwise */
	return 0;
}

static void note_late(u64 now, u64 due, const char *where);

/* Runs v until its slice ends (VMM_SLICE_US, or PAGER_SLICE_US while its
 * VM's RAM arrives; by the host timer that vmm/intr.c arms), it halts, its
 * VM leaves the running state, or (on an AP) the shell holds the APs.
 * Between exits the interrupt state is brought up to date (intr_before_entry,
 * intr_after_exit). Holds vm->lock except in guest mode. `back`: when the
 * caller began to choose v (the host has had the CPU since). */
static void vcpu_run_slice(struct vcpu *v, int cpu, u64 back)
{
	struct vm *vm = v->vm;
	u64 slice_end = ticks() + (pager_active(vm->pager) ? PAGER_SLICE_US : VMM_SLICE_US);
	unsigned n = 0;
	struct vm_exit e;
	enum exit_class cls = EXIT_USES_DEVICES; /* what the last exit changed */
	u64 entered;

	vcpu_fpu_switch(v);
	v->intr_dirty = true; /* the shell ran: look again */
	spin_lock(&vm->lock);
	while (vm->state == VM_RUNNING && !v->halted) {
		int err = 0, action;

		if (cls != EXIT_PLAIN || !intr_unchanged(v))
			err = intr_before_entry(v, slice_end, cls == EXIT_USES_DEVICES);
		if (err) {
			memset(&e, 0, sizeof(e));
			vcpu_backend_failed(v, &e, "prepare interrupt delivery", err);
			break;
		}
		if (vm->state != VM_RUNNING || vm->reset_pending ||
		    (cpu && __atomic_load_n(&ap_hold, __ATOMIC_ACQUIRE)))
			break;
		e.kind = VMEXIT_UNHANDLED; /* the backend fills in the record */
		spin_unlock(&vm->lock);
		entered = ticks();
		note_late(entered, back, "in the host between two entries");
		err = vcpu_ops->vcpu_run(v, &e);
		back = ticks();
		note_late(back, MAX(slice_end, entered), "in guest mode past its timer");
		spin_lock(&vm->lock);
		if (err && e.kind != VMEXIT_ENTRY_FAILED)
			e.kind = VMEXIT_ENTRY_FAILED;
		if ((unsigned)e.kind >= VMEXIT_KIND_COUNT)
			e.kind = VMEXIT_UNHANDLED;
		v->exits++;
		v->exit_counts[e.kind]++;
		cls = exit_class_of(e.kind);
		if (cls != EXIT_PLAIN)
			v->intr_dirty = true;
		if (cls == EXIT_PLAIN && v->intr_quiet) {
			v->cr8_stale = true; /* nothing in the IRR for a CR8 to let go */
		} else if (!err) {
			err = intr_after_exit(v);
			if (err) {
				vcpu_backend_failed(v, &e, "read the guest's CR8", err);
				break;
			}
		}
		action = exit_handlers[e.kind](v, &e);
		/* The slice ends by the clock; a host interrupt is the moment to
		 * look (the timer may have come a little early: SLICE_SLACK_US).
		 * An INIT the vCPU sent itself takes effect at once: the
		 * scheduler acts on it (vmm/startup.c). */
		if (action == EXIT_YIELD || ((e.kind == VMEXIT_HOST_INTERRUPT || ++n % 64 == 0) &&
					     ticks() + SLICE_SLACK_US >= slice_end))
			break;
		if ((e.kind == VMEXIT_MEM || e.kind == VMEXIT_MSR_WRITE) &&
		    (vcpu_waits_for_sipi(v) || !vcpu_startup(v)))
			break;
	}
	/* The LAPIC's TPR is whole again before the shell or a snapshot sees it. */
	if (v->cr8_stale)
		intr_after_exit(v); /* a failure leaves it stale: the next look meets it */
	spin_unlock(&vm->lock);
}

/* Every vCPU sleeps in HLT with nothing that could ever wake it, or waits
 * for a STARTUP IPI that none of the others can send any more. vm->lock held:
 * a halted vCPU is in no guest mode. */
static bool all_halted(struct vm *vm)
{
	bool hlt = false;

	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		if (vcpu_waits_for_sipi(v))
			continue;
		if (!v->halted || !intr_sleeps_for_good(v))
			return false;
		hlt = true;
	}
	return hlt;
}

/* v can run: not halted, or halted and woken now. A halted vCPU is looked at
 * again only when it was kicked or its wake time has come. */
static bool vcpu_ready(struct vcpu *v, u64 now)
{
	if (!v->halted)
		return true;
	if (!v->kicked && now < v->wake_at)
		return false;
	v->kicked = false;
	if (!intr_can_wake(v))
		return false;
	v->halted = false;
	return true;
}

/* Under sched_lock: the vCPU in slot k when CPU `cpu` may claim it now. A
 * halted one whose wake time has not come is passed over (*wake notes it). */
static struct vcpu *candidate(int cpu, unsigned k, u64 now, u64 *wake)
{
	struct vm *vm = vm_table[k / VM_MAX_VCPUS];
	struct vcpu *v;

	if (!vm || vm->state != VM_RUNNING || vm->reset_pending ||
	    (int)(k % VM_MAX_VCPUS) >= vm->nvcpus)
		return NULL;
	v = vm->vcpus[k % VM_MAX_VCPUS];
	if (!v || v->on_cpu >= 0 || vcpu_runs_on(v) != cpu)
		return NULL;
	if (v->halted && !v->kicked && now < v->wake_at) {
		*wake = MIN(*wake, v->wake_at);
		return NULL;
	}
	return v;
}

/* The next runnable vCPU placed on `cpu` after the last one it ran, round
 * robin over all VMs, claimed for it; *wake receives the earliest wake time
 * of the sleeping ones passed over. */
static struct vcpu *sched_next(int cpu, u64 *wake)
{
	const unsigned slots = VM_MAX * VM_MAX_VCPUS;
	unsigned cursor = cursors[cpu];
	u64 now = ticks();

	*wake = ~0ULL;
	for (unsigned i = 1; i <= slots; i++) {
		unsigned k = (cursor + i) % slots;
		struct vcpu *v;
		struct vm *vm;
		bool ready;

		spin_lock(&sched_lock);
		v = cpu && ap_hold ? NULL : candidate(cpu, k, now, wake);
		if (v) {
			v->on_cpu = cpu;
			running[cpu] = v;
		}
		spin_unlock(&sched_lock);
		if (cpu && __atomic_load_n(&ap_hold, __ATOMIC_ACQUIRE) && !v)
			return NULL;
		if (!v)
			continue;
		vm = v->vm;
		spin_lock(&vm->lock);
		/* A vCPU waiting for a STARTUP IPI is not run (vmm/startup.c). */
		ready = vm->state == VM_RUNNING && vcpu_startup(v) && vm->state == VM_RUNNING &&
			!vm->reset_pending && vcpu_ready(v, now);
		if (!ready && v->halted)
			*wake = MIN(*wake, v->wake_at);
		/* intr_can_wake may have loaded a VMCS: given up before another
		 * CPU can look at v (under vm->lock, halt_check). */
		if (!ready && (cpu || v->cpu))
			vcpu_put(v);
		spin_unlock(&vm->lock);
		if (ready) {
			cursors[cpu] = k;
			return v;
		}
		unclaim(cpu, v);
	}
	return NULL;
}

/* A VM whose vCPUs all sleep with nothing that could wake them is "halted". */
static void halt_check(struct vm *vm)
{
	struct vcpu *v = vm->vcpus[0];
	u64 rip = 0;
	bool halted;

	spin_lock(&vm->lock);
	halted = vm->state == VM_RUNNING && all_halted(vm);
	/* all_halted read the halted vCPUs' state: what it loaded of one that
	 * another CPU runs goes back before that CPU may load it. */
	for (int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i]->halted && vcpu_runs_on(vm->vcpus[i]) != smp_this_index())
			vcpu_put(vm->vcpus[i]);
	if (halted) {
		vm->state = VM_HALTED;
		vuart_flush(vm);
	}
	spin_unlock(&vm->lock);
	if (!halted)
		return;
	if (vcpu_ops->read_rip(v, &rip))
		printk("[vm%d] halted: every vCPU executed HLT and nothing will wake it\n", vm->id);
	else
		printk("[vm%d] halted: every vCPU executed HLT and nothing will wake it "
		       "(RIP 0x%lx)\n",
		       vm->id, rip);
}

/* One slice of the next vCPU placed on `cpu`; 0 when there was none (*wake:
 * the earliest wake time of the sleeping ones). */
static bool run_next(int cpu, u64 *wake)
{
	u64 back = ticks();
	struct vcpu *v = sched_next(cpu, wake);

	if (!v)
		return false;
	vcpu_run_slice(v, cpu, back);
	halt_check(v->vm);
	/* An AP keeps nothing of a vCPU between slices: the shell on the boot
	 * CPU may read it while it holds the APs, and it may move. */
	if (cpu || v->cpu)
		vcpu_put(v);
	unclaim(cpu, v);
	return true;
}

/* A stretch the CPU should have been back from by ticks() `due` lasted until
 * `now` (read by the caller: two clock reads an exit, not four): a sleep or a stint in guest mode past its timer, or the host's own
 * work between two entries, which takes microseconds. Far later means the
 * CPU was taken away meanwhile (an SMI's handler on hardware; Bochs 2.7's
 * clock jumps at one point of its emulated time, docs/testing.md "Emulator
 * quirks"), or an exit's work was slow, and every guest on the CPU lost that
 * stretch. It goes into the log (`log`), which is how a test tells such a
 * stall from a guest's timer going wrong. */
static void note_late(u64 now, u64 due, const char *where)
{
	if (now > due + SLEEP_LATE_US)
		pr_debug("vmm: CPU %d lost %lu us %s: a stall (the CPU was away, or Amber "
			 "was slow)",
			 smp_this_index(), now - due, where);
}

/* Sleeps in HLT until the host timer at ticks() `at`, a kick or a request. */
static void sleep_until(u64 at)
{
	u64 t0 = ticks();

	irq_timer_arm(at);
	irq_wait();
	note_late(ticks(), MAX(at, t0), "asleep past its timer");
}

void vmm_idle(void)
{
	u64 wake, t0 = ticks();

	vmm_resets_due();
	if (!run_next(0, &wake)) {
		/* Nothing to run: a VM restored asleep for good is halted now; the
		 * host fills the RAM of a lazily restored VM, or sleeps until the
		 * next wake time or the shell's next look at the console, whichever
		 * comes first. */
		for (int i = 0; i < VM_MAX; i++)
			if (vm_table[i])
				halt_check(vm_table[i]);
		if (pager_idle(0))
			return;
		if (irq_timer_count())
			sleep_until(MIN(wake, ticks() + VMM_SLICE_US));
		else
			cpu_relax();
		return;
	}
	/* Between slices: RAM still arriving, PAGER_SHARE times the slice. */
	pager_idle((ticks() - t0) * PAGER_SHARE);
}

/* An AP's turn between requests (kernel/smp.c smp_set_idle): a slice of one
 * of its vCPUs, or a sleep until the next wake time, kick or request. */
static void vmm_ap_idle(int cpu)
{
	u64 wake;

	if (run_next(cpu, &wake))
		return;
	sleep_until(MIN(wake, ticks() + VMM_SLICE_US));
}

void vcpu_sched_init(void)
{
	intr_set_remote_kick(kick_remote);
	smp_set_idle(vmm_ap_idle);
}
