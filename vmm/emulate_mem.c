/*
 * The emulation that reaches into guest memory through the guest's own page
 * tables: INS/OUTS (each element through the port dispatch of
 * vmm/emulate.c) and accesses to MMIO ranges (vmm/mmio.c), both decoded from
 * the instruction bytes at RIP by vmm/insn.c. Written once for both backends.
 * Host context, on the exit path of the vCPU named in each call.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "vmm/insn.h"
#include "vmm/mmio.h"
#include "vmm/vmm_internal.h"

/* ---- string I/O ------------------------------------------------------------ */

#define STRIO_BATCH 1024 /* elements of a REP INS/OUTS done per exit */

/* The vCPU's state around a string I/O or MMIO exit, one per CPU (each runs
 * the exits of its own vCPUs). */
static struct vcpu_state states[SMP_MAX_CPUS];
#define st (states[smp_this_index()])
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

	if (vcpu_read_linear(v, &st, la, code, first))
		return 0;
	if (first < n && vcpu_read_linear(v, &st, la + first, code + first, n - first))
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
int emulate_string_io(struct vcpu *v, const struct vm_exit *e)
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

	err = vcpu_ops->get_state(v, &st);
	if (err)
		return vcpu_backend_failed(v, e, "give the state for string I/O", err);
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
				emulate_port(v, e, &val);
				err = strio_copy(v, &pc, la, la_mask, (u8 *)&val, in.size, true,
						 &bad);
			}
		} else {
			err = strio_copy(v, &pc, la, la_mask, (u8 *)&val, in.size, false, &bad);
			if (!err)
				emulate_port(v, e, &val);
		}
		if (err)
			return vcpu_stop_report(v, e,
						"%s port 0x%x: buffer 0x%lx %s (#PF not injected)",
						ins ? "INS" : "OUTS", e->io.port, bad,
						err == -EPERM ? "not allowed" : "not mapped");
		insn_reg_write(v->regs, idx, false, in.addr_size, v->regs[idx] + step);
		if (rep)
			insn_reg_write(v->regs, REG_RCX, false, in.addr_size, v->regs[REG_RCX] - 1);
		if (v->vm->state != VM_RUNNING || v->vm->reset_pending)
			break;
	}
	if (v->vm->state == VM_STOPPED)
		return EXIT_YIELD;
	if (!rep || (v->regs[REG_RCX] & amask) == 0) {
		err = vcpu_ops->advance_rip(v, e);
		if (err)
			return vcpu_backend_failed(v, e, "move RIP past INS/OUTS", err);
	}
	if (vm_reset_pending(v))
		return EXIT_YIELD;
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

	err = vcpu_ops->get_state(v, &st);
	if (err)
		return vcpu_backend_failed(v, e, "give the state for MMIO", err);
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
	err = mmio_execute(r, v, &in, gpa, v->regs, &rflags);
	if (err) {
		hex_bytes(hex, sizeof(hex), code, MIN((unsigned)in.len, 8u));
		return vcpu_stop_report(v, e, "MMIO %s of %s+0x%lx (%s) failed: error %d", dir,
					r->name, gpa - r->base, hex, err);
	}
	/* ADD/OR/AND change the arithmetic flags. set_field has no RFLAGS, so
	 * the whole state goes back (which also rewrites the TSC offset from
	 * the value read above: the guest loses the time between the two). */
	if (rflags != st.rflags) {
		st.rflags = rflags;
		err = vcpu_ops->set_state(v, &st);
		if (err)
			return vcpu_backend_failed(v, e, "take the flags of an MMIO access", err);
	}
	done.insn_len = in.len;
	err = vcpu_ops->advance_rip(v, &done);
	if (err)
		return vcpu_backend_failed(v, e, "move RIP past an MMIO access", err);
	return v->vm->state == VM_RUNNING ? EXIT_RESUME : EXIT_YIELD;
}
