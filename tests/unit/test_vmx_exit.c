/*
 * Host unit test of the VT-x exit decoder (vmm/vmx/vmx_exit.c): each basic
 * exit reason becomes the right neutral exit kind with its details, a failed
 * VM entry is refused with -EIO, faults the CPU met while delivering another
 * event combine as the CPU would, that event is requeued for the next entry,
 * and the exits VMX finishes itself (CR accesses, INVD) move RIP on.
 * The VMCS lives in memory here (vmcs.h compiles no VMX instruction for the
 * host): the decoder reads and writes it through the same vmcs_read*() and
 * vmcs_write*() it uses on the CPU. The helpers it calls in the backend's
 * other files (control-register writes, vmx_set_entry_ia32e) are recorded.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel/msr.h"
#include "vmm/vmx/vmcs.h"
#include "vmm/vmx/vmx.h"
#include "tests/unit/check.h"

/* ---- an in-memory VMCS ------------------------------------------------------ */

static struct {
	u32 field;
	u64 value;
} vmcs[128];
static int vmcs_used;

u64 __vmcs_read(u32 field)
{
	for (int i = 0; i < vmcs_used; i++)
		if (vmcs[i].field == field)
			return vmcs[i].value;
	return 0;
}

void __vmcs_write(u32 field, u64 value)
{
	for (int i = 0; i < vmcs_used; i++) {
		if (vmcs[i].field == field) {
			vmcs[i].value = value;
			return;
		}
	}
	if (vmcs_used == (int)(sizeof(vmcs) / sizeof(vmcs[0]))) {
		fprintf(stderr, "in-memory VMCS full\n");
		abort();
	}
	vmcs[vmcs_used].field = field;
	vmcs[vmcs_used++].value = value;
}

/* ---- what the decoder calls elsewhere in the backend, recorded ---------------- */

struct vmx_caps vmx_caps;
static int cr_writes, cr_write_cr;
static u64 cr_write_val, cr0_value = 0x11;
static int cr_write_err;
static int ia32e_calls;
static bool ia32e_on;

static int record_cr(int cr, u64 val)
{
	cr_writes++;
	cr_write_cr = cr;
	cr_write_val = val;
	return cr_write_err;
}

int vmx_write_cr0(struct vcpu *v, u64 val) { return record_cr(0, val); }
int vmx_write_cr3(struct vcpu *v, u64 val) { return record_cr(3, val); }
int vmx_write_cr4(struct vcpu *v, u64 val) { return record_cr(4, val); }
u64 vmx_read_cr0(void) { return cr0_value; }

void vmx_set_entry_ia32e(bool on)
{
	ia32e_calls++;
	ia32e_on = on;
}

void pr_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "(expected) ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* ---- the test --------------------------------------------------------------- */

static struct vmx_vcpu xv;
static struct vm vm = { .id = 1 };
static struct vcpu v = { .vm = &vm, .arch = &xv };
static int last_rc;

#define RIP0 0x100000ULL

/* Sets up the VMCS as the CPU leaves it after an exit and decodes it. */
static struct vm_exit decode(u32 reason, u64 qual, u32 insn_len)
{
	struct vm_exit e;

	memset(&e, 0xA5, sizeof(e));
	__vmcs_write(VM_EXIT_REASON, reason);
	__vmcs_write(EXIT_QUALIFICATION, qual);
	__vmcs_write(VM_EXIT_INSTRUCTION_LEN, insn_len);
	__vmcs_write(GUEST_RIP, RIP0);
	last_rc = vmx_decode_exit(&v, &e);
	return e;
}

static void reset(void)
{
	vmcs_used = 0;
	cr_writes = 0;
	cr_write_err = 0;
	ia32e_calls = 0;
	memset(&xv, 0, sizeof(xv));
	memset(v.regs, 0, sizeof(v.regs));
	vmx_caps.lma_saved = true;
	__vmcs_write(GUEST_CS_AR_BYTES, BIT(13)); /* a 64-bit code segment */
}

/* One exit reason for each neutral exit kind, and the decoder's return value:
 * every kind the generic code handles can come out of this decoder. */
static void test_every_kind(void)
{
	static const struct {
		u32 reason;
		u64 qual;
		enum vm_exit_kind kind;
		int rc;
	} cases[] = {
		{ EXIT_REASON_INVD, 0, VMEXIT_NONE, 0 },
		{ EXIT_REASON_EXTERNAL_INTERRUPT, 0, VMEXIT_HOST_INTERRUPT, 0 },
		{ EXIT_REASON_IO_INSTRUCTION, (0x80ULL << 16), VMEXIT_IO, 0 },
		{ EXIT_REASON_EPT_VIOLATION, EPT_VIOLATION_ACC_READ, VMEXIT_MEM, 0 },
		{ EXIT_REASON_CPUID, 0, VMEXIT_CPUID, 0 },
		{ EXIT_REASON_MSR_READ, 0, VMEXIT_MSR_READ, 0 },
		{ EXIT_REASON_MSR_WRITE, 0, VMEXIT_MSR_WRITE, 0 },
		{ EXIT_REASON_HLT, 0, VMEXIT_HLT, 0 },
		{ EXIT_REASON_TRIPLE_FAULT, 0, VMEXIT_TRIPLE_FAULT, 0 },
		{ EXIT_REASON_VMCALL, 0, VMEXIT_HYPERCALL, 0 },
		{ EXIT_REASON_VMCLEAR, 0, VMEXIT_VIRT_INSN, 0 },
		{ EXIT_REASON_MONITOR_INSTRUCTION, 0, VMEXIT_EXCEPTION, 0 },
		{ VMX_EXIT_REASONS_FAILED_VMENTRY | EXIT_REASON_INVALID_STATE, 0,
		  VMEXIT_ENTRY_FAILED, -EIO },
		{ EXIT_REASON_RDTSC, 0, VMEXIT_UNHANDLED, 0 },
		{ EXIT_REASON_XSETBV, 0, VMEXIT_XSETBV, 0 },
		{ EXIT_REASON_INTERRUPT_WINDOW, 0, VMEXIT_INTR_WINDOW, 0 },
		{ EXIT_REASON_NMI_WINDOW, 0, VMEXIT_NMI_WINDOW, 0 },
	};
	bool seen[VMEXIT_KIND_COUNT] = { false };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vm_exit e;

		reset();
		e = decode(cases[i].reason, cases[i].qual, 2);
		CHECK_EQ(e.kind, cases[i].kind);
		CHECK_EQ(last_rc, cases[i].rc);
		CHECK_EQ(e.raw_reason, cases[i].reason & VMX_EXIT_REASON_BASIC_MASK);
		CHECK_EQ(e.rip, RIP0);
		if ((unsigned)e.kind < VMEXIT_KIND_COUNT)
			seen[e.kind] = true;
	}
	for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
		if (!seen[k])
			fprintf(stderr, "exit kind %d never decoded\n", k);
	for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
		CHECK(seen[k]);
}

static void test_details(void)
{
	struct vm_exit e;

	/* "rep outsw" to port 0x1F0: size, direction, string and rep bits, and
	 * the linear address for the report. */
	reset();
	__vmcs_write(GUEST_LINEAR_ADDRESS, 0x7000);
	e = decode(EXIT_REASON_IO_INSTRUCTION,
		   (0x1F0ULL << IO_QUAL_PORT_SHIFT) | 1 | IO_QUAL_STRING | IO_QUAL_REP, 3);
	CHECK_EQ(e.kind, VMEXIT_IO);
	CHECK_EQ(e.io.port, 0x1F0);
	CHECK_EQ(e.io.size, 2);
	CHECK(!e.io.in);
	CHECK(e.io.string);
	CHECK(e.io.rep);
	CHECK_EQ(e.insn_len, 3);
	CHECK_EQ(e.info2, 0x7000);
	/* "in eax, dx". */
	e = decode(EXIT_REASON_IO_INSTRUCTION, (0xCFCULL << IO_QUAL_PORT_SHIFT) | 3 | IO_QUAL_IN,
		   1);
	CHECK_EQ(e.io.size, 4);
	CHECK(e.io.in);
	CHECK(!e.io.string);

	/* MSR index from ECX. */
	reset();
	v.regs[REG_RCX] = 0xC0000080;
	e = decode(EXIT_REASON_MSR_WRITE, 0, 2);
	CHECK_EQ(e.msr.index, 0xC0000080);
	CHECK_EQ(e.insn_len, 2);

	/* EPT violation: a write at a GPA, with the guest-linear address. */
	reset();
	__vmcs_write(GUEST_PHYSICAL_ADDRESS, 0xFEE00030);
	__vmcs_write(GUEST_LINEAR_ADDRESS, 0xFFFFFFFFFEE00030ULL);
	e = decode(EXIT_REASON_EPT_VIOLATION, EPT_VIOLATION_ACC_WRITE | EPT_VIOLATION_GVA_IS_VALID,
		   0);
	CHECK_EQ(e.mem.gpa, 0xFEE00030);
	CHECK(e.mem.write);
	CHECK(!e.mem.fetch);
	CHECK_EQ(e.info2, 0xFFFFFFFFFEE00030ULL);
	CHECK(decode(EXIT_REASON_EPT_VIOLATION, EPT_VIOLATION_ACC_INSTR, 0).mem.fetch);
	/* NMI unblocking by IRET: NMIs are blocked again for the resumed guest. */
	decode(EXIT_REASON_EPT_VIOLATION, EPT_VIOLATION_NMI_UNBLOCK, 0);
	CHECK(__vmcs_read(GUEST_INTERRUPTIBILITY_INFO) & GUEST_INTR_STATE_NMI);
	/* Dirty tracking's log full: the backend's (VMEXIT_NONE), NMI blocking
	 * restored as above. */
	reset();
	e = decode(EXIT_REASON_PML_FULL, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_NONE);
	CHECK(!(__vmcs_read(GUEST_INTERRUPTIBILITY_INFO) & GUEST_INTR_STATE_NMI));
	decode(EXIT_REASON_PML_FULL, EPT_VIOLATION_NMI_UNBLOCK, 0);
	CHECK(__vmcs_read(GUEST_INTERRUPTIBILITY_INFO) & GUEST_INTR_STATE_NMI);
	__vmcs_write(GUEST_PHYSICAL_ADDRESS, 0xFEE00030);
	/* A misconfigured EPT entry is Amber's bug: stopped with the address. */
	e = decode(EXIT_REASON_EPT_MISCONFIG, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_UNHANDLED);
	CHECK_EQ(e.info2, 0xFEE00030);

	/* The preemption timer is the host's turn, as is an NMI. */
	reset();
	CHECK_EQ(decode(EXIT_REASON_PREEMPTION_TIMER, 0, 0).kind, VMEXIT_HOST_INTERRUPT);
	__vmcs_write(VM_EXIT_INTR_INFO, INTR_INFO_VALID_MASK | (INTR_TYPE_NMI_INTR << 8) | 2);
	CHECK_EQ(decode(EXIT_REASON_EXCEPTION_NMI, 0, 0).kind, VMEXIT_HOST_INTERRUPT);

	/* Unknown and out-of-range reasons. */
	CHECK_EQ(decode(EXIT_REASON_INIT_SIGNAL, 0, 0).kind, VMEXIT_UNHANDLED);
	CHECK_EQ(decode(200, 0, 0).kind, VMEXIT_UNHANDLED);

	/* Without "save IA32e mode" the entry control follows EFER.LMA. */
	reset();
	vmx_caps.lma_saved = false;
	__vmcs_write(GUEST_IA32_EFER, EFER_LMA | EFER_LME);
	decode(EXIT_REASON_CPUID, 0, 2);
	CHECK_EQ(ia32e_calls, 1);
	CHECK(ia32e_on);
	reset();
	decode(EXIT_REASON_CPUID, 0, 2);
	CHECK_EQ(ia32e_calls, 0);
}

static void test_exceptions(void)
{
	struct vm_exit e;
	u32 gp = INTR_INFO_VALID_MASK | (INTR_TYPE_HARD_EXCEPTION << 8) |
		 INTR_INFO_DELIVER_CODE_MASK | X86_TRAP_GP;
	u32 pf = INTR_INFO_VALID_MASK | (INTR_TYPE_HARD_EXCEPTION << 8) |
		 INTR_INFO_DELIVER_CODE_MASK | X86_TRAP_PF;
	u32 df = INTR_INFO_VALID_MASK | (INTR_TYPE_HARD_EXCEPTION << 8) |
		 INTR_INFO_DELIVER_CODE_MASK | X86_TRAP_DF;

	/* #GP with its error code. */
	reset();
	__vmcs_write(VM_EXIT_INTR_INFO, gp);
	__vmcs_write(VM_EXIT_INTR_ERROR_CODE, 0x18);
	e = decode(EXIT_REASON_EXCEPTION_NMI, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_EXCEPTION);
	CHECK_EQ(e.exc.vector, X86_TRAP_GP);
	CHECK(e.exc.has_error);
	CHECK_EQ(e.exc.error_code, 0x18);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INTR_INFO_FIELD), 0); /* nothing being delivered */

	/* #GP while delivering #PF: a #DF, and the #PF is requeued (the
	 * generic code sees it pending). */
	__vmcs_write(IDT_VECTORING_INFO_FIELD, pf);
	__vmcs_write(IDT_VECTORING_ERROR_CODE, 2);
	e = decode(EXIT_REASON_EXCEPTION_NMI, 0, 0);
	CHECK_EQ(e.exc.vector, X86_TRAP_DF);
	CHECK(e.exc.has_error);
	CHECK_EQ(e.exc.error_code, 0);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INTR_INFO_FIELD), pf);
	CHECK_EQ(__vmcs_read(VM_ENTRY_EXCEPTION_ERROR_CODE), 2);

	/* #GP while delivering #DF: shutdown. */
	__vmcs_write(IDT_VECTORING_INFO_FIELD, df);
	e = decode(EXIT_REASON_EXCEPTION_NMI, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_TRIPLE_FAULT);
	CHECK_EQ(e.raw_reason, EXIT_REASON_TRIPLE_FAULT);

	/* A software interrupt being delivered is requeued with its length. */
	reset();
	__vmcs_write(IDT_VECTORING_INFO_FIELD,
		     INTR_INFO_VALID_MASK | (INTR_TYPE_SOFT_INTR << 8) | 0x80);
	decode(EXIT_REASON_EPT_VIOLATION, 0, 2);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INTR_INFO_FIELD),
		 INTR_INFO_VALID_MASK | (INTR_TYPE_SOFT_INTR << 8) | 0x80);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INSTRUCTION_LEN), 2);

	/* An external interrupt and an NMI cut short by an EPT violation are
	 * requeued as they were, once (no error code, no length). */
	reset();
	__vmcs_write(IDT_VECTORING_INFO_FIELD,
		     INTR_INFO_VALID_MASK | (INTR_TYPE_EXT_INTR << 8) | 0x30);
	decode(EXIT_REASON_EPT_VIOLATION, 0, 3);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INTR_INFO_FIELD),
		 INTR_INFO_VALID_MASK | (INTR_TYPE_EXT_INTR << 8) | 0x30);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INSTRUCTION_LEN), 0);
	reset();
	__vmcs_write(IDT_VECTORING_INFO_FIELD,
		     INTR_INFO_VALID_MASK | (INTR_TYPE_NMI_INTR << 8) | 2);
	decode(EXIT_REASON_EPT_VIOLATION, 0, 3);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INTR_INFO_FIELD),
		 INTR_INFO_VALID_MASK | (INTR_TYPE_NMI_INTR << 8) | 2);
	/* An exit with nothing being delivered queues nothing. */
	reset();
	decode(EXIT_REASON_INTERRUPT_WINDOW, 0, 0);
	CHECK_EQ(__vmcs_read(VM_ENTRY_INTR_INFO_FIELD), 0);

	/* MONITOR/MWAIT are hidden (#UD), RDPMC has no virtual PMU (#GP). */
	reset();
	e = decode(EXIT_REASON_MWAIT_INSTRUCTION, 0, 3);
	CHECK_EQ(e.exc.vector, X86_TRAP_UD);
	CHECK(!e.exc.has_error);
	e = decode(EXIT_REASON_RDPMC, 0, 2);
	CHECK_EQ(e.kind, VMEXIT_EXCEPTION);
	CHECK_EQ(e.exc.vector, X86_TRAP_GP);
	CHECK(e.exc.has_error);
}

#define CR_QUAL(type, cr, gpr) \
	(((u64)(type) << CR_ACCESS_TYPE_SHIFT) | (cr) | ((u64)(gpr) << CR_ACCESS_GPR_SHIFT))

static void test_cr_access(void)
{
	struct vm_exit e;

	/* MOV CR0, RBX: the write goes to the backend's CR0 emulation, RIP on. */
	reset();
	v.regs[REG_RBX] = 0x80000031;
	e = decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_TO_CR, 0, REG_RBX), 3);
	CHECK_EQ(e.kind, VMEXIT_NONE);
	CHECK_EQ(cr_write_cr, 0);
	CHECK_EQ(cr_write_val, 0x80000031);
	CHECK_EQ(__vmcs_read(GUEST_RIP), RIP0 + 3);
	/* Outside 64-bit mode only the low 32 bits count. */
	__vmcs_write(GUEST_CS_AR_BYTES, 0);
	v.regs[REG_RDX] = 0xFFFFFFFF00000620ULL;
	decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_TO_CR, 4, REG_RDX), 3);
	CHECK_EQ(cr_write_cr, 4);
	CHECK_EQ(cr_write_val, 0x620);
	/* A value real hardware would refuse: #GP, RIP stays. */
	cr_write_err = -EINVAL;
	e = decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_TO_CR, 3, REG_RAX), 3);
	CHECK_EQ(e.kind, VMEXIT_EXCEPTION);
	CHECK_EQ(e.exc.vector, X86_TRAP_GP);
	CHECK_EQ(__vmcs_read(GUEST_RIP), RIP0);

	/* CR8 is kept per vCPU: MOV CR8, RCX then MOV RSI, CR8; bits above 3 #GP. */
	reset();
	v.regs[REG_RCX] = 9;
	CHECK_EQ(
		decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_TO_CR, 8, REG_RCX), 4).kind,
		VMEXIT_NONE);
	CHECK_EQ(xv.cr8, 9);
	decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_FROM_CR, 8, REG_RSI), 4);
	CHECK_EQ(v.regs[REG_RSI], 9);
	v.regs[REG_RCX] = 0x10;
	CHECK_EQ(
		decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_TO_CR, 8, REG_RCX), 4).kind,
		VMEXIT_EXCEPTION);
	CHECK_EQ(xv.cr8, 9);
	/* MOV RDI, CR3 reads the VMCS. */
	__vmcs_write(GUEST_CR3, 0x123000);
	decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_FROM_CR, 3, REG_RDI), 3);
	CHECK_EQ(v.regs[REG_RDI], 0x123000);
	/* An access to another control register is not Amber's to emulate. */
	CHECK_EQ(decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_MOV_FROM_CR, 2, 0), 3).kind,
		 VMEXIT_UNHANDLED);

	/* CLTS clears TS; LMSW loads the low four bits but cannot clear PE. */
	cr0_value = 0x80000019; /* PG, ET, TS, PE */
	decode(EXIT_REASON_CR_ACCESS, CR_QUAL(CR_ACCESS_TYPE_CLTS, 0, 0), 2);
	CHECK_EQ(cr_write_val, 0x80000011);
	decode(EXIT_REASON_CR_ACCESS,
	       CR_QUAL(CR_ACCESS_TYPE_LMSW, 0, 0) | (0x2ULL << CR_ACCESS_LMSW_DATA_SHIFT), 3);
	CHECK_EQ(cr_write_val, 0x80000013);

	/* INVD does nothing but move RIP on. */
	reset();
	CHECK_EQ(decode(EXIT_REASON_INVD, 0, 2).kind, VMEXIT_NONE);
	CHECK_EQ(__vmcs_read(GUEST_RIP), RIP0 + 2);
}

static void test_names(void)
{
	CHECK_STR(vmx_exit_reason_name(EXIT_REASON_EPT_VIOLATION), "EPT violation");
	CHECK_STR(vmx_exit_reason_name(EXIT_REASON_VMCALL), "VMCALL");
	CHECK_STR(vmx_exit_reason_name(VMX_EXIT_VMFAIL),
		  "VMLAUNCH/VMRESUME failed (qualification: VM-instruction error)");
	CHECK_STR(vmx_exit_reason_name(999), "unknown");
	CHECK_STR(vmx_insn_error_name(VMXERR_VMRESUME_NONLAUNCHED_VMCS),
		  "VMRESUME with a non-launched VMCS");
}

int main(void)
{
	test_every_kind();
	test_details();
	test_exceptions();
	test_cr_access();
	test_names();
	return test_done("vmx_exit");
}
