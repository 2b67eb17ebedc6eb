/*
 * What a guest's intercepted instructions do, written once for both backends:
 * port I/O (dispatched to the emulated devices, string forms included), CPUID (the host's, with the
 * virtualization extensions and what Amber does not emulate hidden), MSRs from
 * an allow-list (anything else is #GP) and XSETBV.
 * Host context, on the exit path of the vCPU named in each call.
 */
#include "kernel/cpu.h"
#include "kernel/lib.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/x86.h"
#include "vmm/insn.h"
#include "vmm/vmm_internal.h"

#define GP_VECTOR 13

static struct vcpu_state st; /* the backend's state around an MSR access */

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

/* Emulates one IN or OUT of `size` bytes at `port`; *val holds the value out, or
 * receives the value in (all ones when nothing answers). */
static void io_dispatch(struct vcpu *v, const struct vm_exit *e, u32 *val)
{
	struct vm *vm = v->vm;
	u16 port = e->io.port;

	if (port >= VUART_BASE && port < VUART_BASE + 8) {
		if (e->io.in)
			*val = vuart_read(vm, port - VUART_BASE);
		else
			vuart_write(vm, port - VUART_BASE, (u8)*val);
		return;
	}
	if (port >= DEBUG_EXIT_PORT && port < DEBUG_EXIT_PORT + 4) {
		if (!e->io.in)
			debug_exit(vm, *val);
		return;
	}
	if (legacy_io(v, port, e->io.size, e->io.in, val))
		return;
	unemulated(v, e);
}

/* ---- string I/O ------------------------------------------------------------ */

#define STRIO_BATCH 1024 /* elements of a REP INS/OUTS done per exit */
#define X86_EFLAGS_DF BIT(10)

/* The guest page the last element of a string went to, so that a batch walks
 * the guest's page tables once per page rather than once per element. */
struct strio_page {
	u64 la, gpa; /* page-aligned; la == ~0 when empty */
};

/* Copies one element between buf and the guest at la (the element may cross
 * into the next page); with buf NULL only checks that it could. Returns 0,
 * -EFAULT or -EPERM like vcpu_translate, and the linear address that failed
 * in *bad. */
static int strio_copy(struct vcpu *v, struct strio_page *pc, u64 la, u64 la_mask, u8 *buf, u8 size,
		      bool write, u64 *bad)
{
	while (size) {
		u64 page = la & ~(PAGE_SIZE - 1), off = la & (PAGE_SIZE - 1);
		u8 n = (u8)MIN((u64)size, PAGE_SIZE - off);
		int err;

		if (pc->la != page) {
			err = vcpu_translate(v, &st, page, write ? VCPU_ACCESS_WRITE : 0, &pc->gpa);
			if (err) {
				*bad = la;
				pc->la = ~0ULL;
				return err;
			}
			pc->la = page;
		}
		if (!buf  ? !gpa_to_hva(v->vm, pc->gpa + off, n) :
		    write ? vm_copy_to_guest(v->vm, pc->gpa + off, buf, n) :
			    vm_copy_from_guest(v->vm, buf, pc->gpa + off, n)) {
			*bad = la;
			return -EFAULT;
		}
		if (buf)
			buf += n;
		size -= n;
		la = (la + n) & la_mask;
	}
	return 0;
}

static void hex_bytes(char *out, size_t cap, const u8 *b, unsigned n)
{
	size_t at = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < n && at + 4 < cap; i++)
		at += snprintf(out + at, cap - at, i ? " %02x" : "%02x", b[i]);
}

/* Reads the instruction at RIP (CS base ignored in 64-bit mode, SDM Vol. 3A
 * 3.4.4 "Segment Loading Instructions in IA-32e Mode"): n bytes, or as many
 * of them as are mapped when the instruction may end before a page boundary.
 * Returns how many were read (0: none). */
static unsigned fetch_insn(struct vcpu *v, enum insn_mode mode, u8 *code, unsigned n)
{
	u64 la = mode == INSN_MODE_64 ? st.rip : (st.cs.base + st.rip) & 0xFFFFFFFFULL;
	unsigned first = (unsigned)MIN((u64)n, PAGE_SIZE - (la & (PAGE_SIZE - 1)));

	if (vcpu_read_linear(v, la, code, first))
		return 0;
	if (first < n && vcpu_read_linear(v, la + first, code + first, n - first))
		return first;
	return n;
}

/*
 * INS and OUTS, REP or not (SDM Vol. 2B "INS/INSB/INSW/INSD",
 * "OUTS/OUTSB/OUTSW/OUTSD", "REP/REPE/REPZ/REPNE/REPNZ"). The exit says the
 * port, the size and the direction; the address size and the segment come
 * from the instruction bytes at RIP, which both backends can give (the VMX
 * instruction-information field and the SVM EXITINFO1 bits would need
 * decoding in vmm/vmx and vmm/svm). Each element goes through the same port
 * dispatch as IN/OUT. A REP does at most STRIO_BATCH elements per exit,
 * updating rSI/rDI/rCX as the CPU does after each; while elements remain,
 * RIP stays on the instruction, so the guest executes it again and the host
 * is never held by a huge count.
 *
 * A guest buffer that is not mapped, or that the page rights forbid, would
 * be a #PF for the guest. Injecting one needs CR2 loaded with the address,
 * and the backend interface can set CR2 only through the full set_state
 * (which also rewrites the TSC offset), so the guest is stopped with a
 * report instead; the elements before the fault are done, as on the CPU.
 * Segment limits are not checked (a flat or 64-bit guest has none to break).
 */
static int emulate_string_io(struct vcpu *v, const struct vm_exit *e)
{
	u8 code[INSN_MAX_LEN];
	char hex[3 * INSN_MAX_LEN + 1];
	struct strio_page pc = { .la = ~0ULL };
	unsigned n = e->insn_len >= 1 && e->insn_len <= INSN_MAX_LEN ? e->insn_len : INSN_MAX_LEN;
	enum insn_mode mode;
	struct insn in;
	u64 amask, la_mask, count, done, bad = 0;
	u8 idx;
	bool rep, ins;
	int err;

	vcpu_ops->get_state(v, &st);
	mode = insn_mode_of(&st);
	la_mask = mode == INSN_MODE_64 ? ~0ULL : 0xFFFFFFFFULL;
	if (fetch_insn(v, mode, code, n) != n)
		return vcpu_stop_report(v, e, "string I/O on port 0x%x: code at RIP not readable",
					e->io.port);
	err = insn_decode(code, n, mode, &in);
	ins = e->io.in;
	if (err || in.len != n || in.op != (ins ? INSN_INS : INSN_OUTS) || in.size != e->io.size) {
		hex_bytes(hex, sizeof(hex), code, n);
		return vcpu_stop_report(v, e, "%s on port 0x%x: cannot emulate %s (%s)",
					ins ? "INS" : "OUTS", e->io.port, hex,
					err ? insn_strerror(err) : "not what the CPU reported");
	}

	amask = in.addr_size == 8 ? ~0ULL : (1ULL << (8 * in.addr_size)) - 1;
	idx = ins ? REG_RDI : REG_RSI;
	rep = in.rep || in.repne; /* F2 repeats INS/OUTS as F3 does */
	count = rep ? v->regs[REG_RCX] & amask : 1;
	for (done = 0; done < count && done < STRIO_BATCH; done++) {
		u64 la = insn_linear_address(&in, v->regs, &st, mode);
		u64 step = (st.rflags & X86_EFLAGS_DF) ? -(u64)in.size : in.size;
		u32 val = 0xFFFFFFFF;

		if (ins) {
			/* The buffer first, so a fault does not eat the port's data. */
			err = strio_copy(v, &pc, la, la_mask, NULL, in.size, true, &bad);
			if (!err) {
				io_dispatch(v, e, &val);
				err = strio_copy(v, &pc, la, la_mask, (u8 *)&val, in.size, true,
						 &bad);
			}
		} else {
			err = strio_copy(v, &pc, la, la_mask, (u8 *)&val, in.size, false, &bad);
			if (!err)
				io_dispatch(v, e, &val);
		}
		if (err)
			return vcpu_stop_report(v, e,
						"%s port 0x%x: buffer 0x%lx %s (#PF not injected)",
						ins ? "INS" : "OUTS", e->io.port, bad,
						err == -EPERM ? "not allowed" : "not mapped");
		insn_reg_write(v->regs, idx, false, in.addr_size, v->regs[idx] + step);
		if (rep)
			insn_reg_write(v->regs, REG_RCX, false, in.addr_size, v->regs[REG_RCX] - 1);
		if (v->vm->state != VM_RUNNING)
			break;
	}
	if (v->vm->state == VM_STOPPED)
		return EXIT_YIELD;
	if (!rep || (v->regs[REG_RCX] & amask) == 0)
		vcpu_ops->advance_rip(v, e);
	return v->vm->state == VM_RUNNING ? EXIT_RESUME : EXIT_YIELD;
}

/* ---- MMIO ------------------------------------------------------------------- */

int emulate_mmio(struct vcpu *v, const struct vm_exit *e, const struct mmio_region *r)
{
	u8 code[INSN_MAX_LEN];
	char hex[3 * INSN_MAX_LEN + 1];
	const char *dir = e->mem.write ? "write" : "read";
	struct vm_exit done = *e;
	enum insn_mode mode;
	struct insn in;
	u64 rflags, gpa;
	unsigned n;
	int err;

	vcpu_ops->get_state(v, &st);
	mode = insn_mode_of(&st);
	n = fetch_insn(v, mode, code, INSN_MAX_LEN);
	err = n ? insn_decode(code, n, mode, &in) : -ENODATA;
	if (err) {
		hex_bytes(hex, sizeof(hex), code, MIN(n, 8u));
		return vcpu_stop_report(v, e, "MMIO %s of %s at GPA 0x%lx: cannot emulate %s (%s)",
					dir, r->name, e->mem.gpa, n ? hex : "-",
					insn_strerror(err));
	}
	/* The operand must be the address that exited, or the bytes are not
	 * the instruction the CPU ran (a decoder gap, or code changed since). */
	if (vcpu_translate(v, &st, insn_linear_address(&in, v->regs, &st, mode),
			   insn_writes_memory(&in) ? VCPU_ACCESS_WRITE : 0, &gpa) ||
	    gpa != e->mem.gpa) {
		hex_bytes(hex, sizeof(hex), code, MIN((unsigned)in.len, 8u));
		return vcpu_stop_report(v, e, "MMIO %s at GPA 0x%lx: %s addresses elsewhere", dir,
					e->mem.gpa, hex);
	}
	rflags = st.rflags;
	err = mmio_execute(r, &in, gpa, v->regs, &rflags);
	if (err) {
		hex_bytes(hex, sizeof(hex), code, MIN((unsigned)in.len, 8u));
		return vcpu_stop_report(v, e, "MMIO %s of %s+0x%lx (%s) failed: error %d", dir,
					r->name, gpa - r->base, hex, err);
	}
	/* ADD/OR/AND change the arithmetic flags. The backend interface has no
	 * narrow RFLAGS setter yet, so the whole state goes back, as for an
	 * emulated WRMSR (issue 11 "Time" asks for narrow accessors). */
	if (rflags != st.rflags) {
		st.rflags = rflags;
		vcpu_ops->set_state(v, &st);
	}
	done.insn_len = in.len;
	vcpu_ops->advance_rip(v, &done);
	return v->vm->state == VM_RUNNING ? EXIT_RESUME : EXIT_YIELD;
}

int emulate_io(struct vcpu *v, const struct vm_exit *e)
{
	u64 mask = e->io.size == 1 ? 0xFF : e->io.size == 2 ? 0xFFFF : 0xFFFFFFFFULL;
	u64 *rax = &v->regs[REG_RAX];
	u32 val;

	if (e->io.string)
		return emulate_string_io(v, e);
	if (e->io.in) {
		val = 0xFFFFFFFF;
		io_dispatch(v, e, &val);
		/* A 32-bit IN zero-extends into RAX; 8 and 16 bits merge (SDM "IN"). */
		*rax = e->io.size == 4 ? (u32)val : (*rax & ~mask) | (val & mask);
	} else {
		val = (u32)(*rax & mask);
		io_dispatch(v, e, &val);
	}
	if (v->vm->state == VM_STOPPED)
		return EXIT_YIELD;
	vcpu_ops->advance_rip(v, e);
	return v->vm->state == VM_RUNNING ? EXIT_RESUME : EXIT_YIELD;
}

/* ---- CPUID --------------------------------------------------------------- */

/* SDM Vol. 2A "CPUID" and APM Vol. 3 Appendix E "Obtaining Processor
 * Information Via the CPUID Instruction". */
#define CPUID_1_ECX_MONITOR BIT(3)
#define CPUID_1_ECX_VMX BIT(5)
#define CPUID_1_ECX_X2APIC BIT(21)
#define CPUID_1_ECX_TSC_DEADLINE BIT(24)
#define CPUID_1_ECX_XSAVE BIT(26)
#define CPUID_1_ECX_OSXSAVE BIT(27)
#define CPUID_1_ECX_HYPERVISOR BIT(31)
#define CPUID_1_EDX_APIC BIT(9)
#define CPUID_7_ECX_WAITPKG BIT(5)
#define CPUID_D1_EAX_XSAVES BIT(3)
#define CPUID_80000001_ECX_SVM BIT(2)
#define CPUID_80000001_ECX_SKINIT BIT(12)
#define X86_CR4_OSXSAVE BIT(18)

#define AMBER_CPUID_BASE 0x40000000
/* The hypervisor signature in EBX, ECX, EDX of leaf 0x40000000. */
static const char amber_signature[12] = "AmberAmberAm";

int emulate_cpuid(struct vcpu *v, const struct vm_exit *e)
{
	u32 leaf = (u32)v->regs[REG_RAX], sub = (u32)v->regs[REG_RCX];
	u32 a = 0, b = 0, c = 0, d = 0;
	u64 allowed = vcpu_xcr0_allowed();

	if ((leaf & 0xFFFFFF00) == AMBER_CPUID_BASE) {
		if (leaf == AMBER_CPUID_BASE) {
			a = AMBER_CPUID_BASE; /* the highest hypervisor leaf */
			memcpy(&b, amber_signature, 4);
			memcpy(&c, amber_signature + 4, 4);
			memcpy(&d, amber_signature + 8, 4);
		}
		goto out;
	}
	cpuid_count(leaf, sub, &a, &b, &c, &d);
	switch (leaf) {
	case 1:
		/* No VMX, no MONITOR/MWAIT (intercepted as #UD), no local APIC or
		 * its timer: Amber emulates none of them. OSXSAVE mirrors the
		 * guest's CR4. */
		c &= ~(CPUID_1_ECX_VMX | CPUID_1_ECX_MONITOR | CPUID_1_ECX_X2APIC |
		       CPUID_1_ECX_TSC_DEADLINE | CPUID_1_ECX_OSXSAVE);
		c |= CPUID_1_ECX_HYPERVISOR;
		if (c & CPUID_1_ECX_XSAVE) {
			vcpu_ops->get_state(v, &st);
			if (st.cr4 & X86_CR4_OSXSAVE)
				c |= CPUID_1_ECX_OSXSAVE;
		}
		d &= ~CPUID_1_EDX_APIC;
		b = (b & 0x00FFFFFF) | ((u32)v->id << 24); /* initial APIC id */
		break;
	case 5:	  /* MONITOR/MWAIT */
	case 6:	  /* thermal and power management */
	case 0xA: /* performance monitoring: no virtual PMU */
		a = b = c = d = 0;
		break;
	case 7:
		if (sub == 0)
			c &= ~CPUID_7_ECX_WAITPKG;
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
		} else if (sub == 1) {
			a &= ~CPUID_D1_EAX_XSAVES; /* no IA32_XSS management */
			b = c = d = 0;
		} else if (sub < 64 && !(allowed & BIT(sub))) {
			a = b = c = d = 0;
		}
		break;
	case 0x80000001:
		c &= ~(CPUID_80000001_ECX_SVM | CPUID_80000001_ECX_SKINIT);
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
	vcpu_ops->advance_rip(v, e);
	return EXIT_RESUME;
}

/* ---- MSRs ------------------------------------------------------------------ */

#define MSR_IA32_UCODE_REV 0x0000008b
#define MSR_MTRR_PHYS_FIRST 0x00000200
#define MSR_MTRR_PHYS_LAST 0x0000020f
#define MSR_MTRR_FIX_64K 0x00000250
#define MSR_MTRR_FIX_16K_80000 0x00000258
#define MSR_MTRR_FIX_16K_A0000 0x00000259
#define MSR_MTRR_FIX_4K_FIRST 0x00000268
#define MSR_MTRR_FIX_4K_LAST 0x0000026f
#define APICBASE_BSP BIT(8)
#define APIC_DEFAULT_BASE 0xFEE00000ULL
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

/* Points at the field of the backend state that holds `msr`, or NULL. */
static u64 *state_field(u32 msr)
{
	switch (msr) {
	case MSR_IA32_PAT:
		return &st.pat;
	case MSR_IA32_SYSENTER_CS:
		return &st.sysenter_cs;
	case MSR_IA32_SYSENTER_ESP:
		return &st.sysenter_esp;
	case MSR_IA32_SYSENTER_EIP:
		return &st.sysenter_eip;
	case MSR_STAR:
		return &st.star;
	case MSR_LSTAR:
		return &st.lstar;
	case MSR_CSTAR:
		return &st.cstar;
	case MSR_SYSCALL_MASK:
		return &st.sfmask;
	case MSR_FS_BASE:
		return &st.fs.base;
	case MSR_GS_BASE:
		return &st.gs.base;
	case MSR_KERNEL_GS_BASE:
		return &st.kernel_gs_base;
	case MSR_EFER:
		return &st.efer;
	case MSR_IA32_TSC:
		return &st.tsc;
	default:
		return NULL;
	}
}

static int msr_read(struct vcpu *v, u32 msr, u64 *val)
{
	u64 *f = state_field(msr);

	if (f) {
		vcpu_ops->get_state(v, &st);
		*val = *f;
		return 0;
	}
	if (is_mtrr(msr)) {
		/* No variable or fixed ranges; the default type is write-back. */
		*val = msr == MSR_IA32_MTRR_DEF_TYPE ? MTRR_DEF_TYPE_E | MTRR_TYPE_WB : 0;
		return 0;
	}
	switch (msr) {
	case MSR_IA32_MTRRCAP:
	case MSR_IA32_UCODE_REV:
		*val = 0;
		return 0;
	case MSR_IA32_MISC_ENABLE:
		*val = 1; /* fast strings */
		return 0;
	case MSR_IA32_APICBASE:
		/* CPUID says there is no local APIC: its base MSR reads as disabled. */
		*val = APIC_DEFAULT_BASE | (v->id == 0 ? APICBASE_BSP : 0);
		return 0;
	default:
		return -EPERM;
	}
}

static int msr_write(struct vcpu *v, u32 msr, u64 val)
{
	u64 *f = state_field(msr);
	u64 efer_ok = EFER_SCE | EFER_LME | EFER_LMA | (cpu.nx ? EFER_NX : 0);

	if (is_mtrr(msr))
		return 0; /* accepted, without effect: EPT/NPT use write-back */
	if (!f)
		return msr == MSR_IA32_UCODE_REV ? 0 : -EPERM;
	vcpu_ops->get_state(v, &st);
	switch (msr) {
	case MSR_EFER:
		if (val & ~efer_ok)
			return -EPERM;
		/* LMA is the CPU's to set; LME cannot change while paging is on. */
		if (((val ^ st.efer) & EFER_LME) && (st.cr0 & BIT(31)))
			return -EPERM;
		val = (val & ~EFER_LMA) | (st.efer & EFER_LMA);
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
	*f = val;
	vcpu_ops->set_state(v, &st);
	return 0;
}

int emulate_rdmsr(struct vcpu *v, const struct vm_exit *e)
{
	u64 val;

	if (msr_read(v, (u32)v->regs[REG_RCX], &val)) {
		vcpu_ops->inject_exception(v, GP_VECTOR, true, 0);
		return EXIT_RESUME;
	}
	v->regs[REG_RAX] = (u32)val;
	v->regs[REG_RDX] = val >> 32;
	vcpu_ops->advance_rip(v, e);
	return EXIT_RESUME;
}

int emulate_wrmsr(struct vcpu *v, const struct vm_exit *e)
{
	u64 val = (v->regs[REG_RDX] << 32) | (u32)v->regs[REG_RAX];

	if (msr_write(v, (u32)v->regs[REG_RCX], val)) {
		vcpu_ops->inject_exception(v, GP_VECTOR, true, 0);
		return EXIT_RESUME;
	}
	vcpu_ops->advance_rip(v, e);
	return EXIT_RESUME;
}

/* XSETBV: only XCR0, only valid combinations of what the guest may use
 * (SDM Vol. 2C "XSETBV"); anything else is #GP. */
int emulate_xsetbv(struct vcpu *v, const struct vm_exit *e)
{
	u64 val = (v->regs[REG_RDX] << 32) | (u32)v->regs[REG_RAX];

	if ((u32)v->regs[REG_RCX] != 0 || !vcpu_xcr0_valid(val)) {
		vcpu_ops->inject_exception(v, GP_VECTOR, true, 0);
		return EXIT_RESUME;
	}
	vcpu_fpu_set_xcr0(v, val);
	vcpu_ops->advance_rip(v, e);
	return EXIT_RESUME;
}
