/*
 * Host unit test of the AMD-V exit decoder (vmm/svm/svm_exit.c): each EXITCODE
 * becomes the right neutral exit kind with its details, the next RIP comes
 * from NRIPS when the CPU has it and from EXITINFO2 or the fixed instruction
 * lengths when it does not (QEMU TCG), and an interrupted event delivery is
 * requeued for the next VMRUN (software interrupts excepted).
 */
#include <stdlib.h>
#include <string.h>

#include "vmm/svm/svm.h"
#include "tests/unit/check.h"

struct svm_caps svm_caps;

static struct vmcb *vmcb;
static struct svm_vcpu sv;
static struct vcpu v;

static int last_rc;

static struct vm_exit decode(u64 code, u64 info1, u64 info2)
{
	struct vm_exit e;

	memset(&e, 0xA5, sizeof(e));
	vmcb->control.exit_code = code;
	vmcb->control.exit_info_1 = info1;
	vmcb->control.exit_info_2 = info2;
	vmcb->control.event_inj = 0;
	last_rc = svm_decode_exit(&v, &e);
	return e;
}

/* One EXITCODE for each neutral exit kind, and the decoder's return value:
 * every kind the generic code handles can come out of this decoder. */
static void test_every_kind(void)
{
	static const struct {
		u64 code, info1, info2;
		enum vm_exit_kind kind;
		int rc;
	} cases[] = {
		{ SVM_EXIT_INVD, 0, 0, VMEXIT_NONE, 0 },
		{ SVM_EXIT_INTR, 0, 0, VMEXIT_HOST_INTERRUPT, 0 },
		{ SVM_EXIT_IOIO, (0x80ull << 16) | BIT(4), 0x300002, VMEXIT_IO, 0 },
		{ SVM_EXIT_NPF, NPF_USER, 0xFEE00000, VMEXIT_MEM, 0 },
		{ SVM_EXIT_CPUID, 0, 0, VMEXIT_CPUID, 0 },
		{ SVM_EXIT_MSR, 0, 0, VMEXIT_MSR_READ, 0 },
		{ SVM_EXIT_MSR, 1, 0, VMEXIT_MSR_WRITE, 0 },
		{ SVM_EXIT_HLT, 0, 0, VMEXIT_HLT, 0 },
		{ SVM_EXIT_SHUTDOWN, 0, 0, VMEXIT_TRIPLE_FAULT, 0 },
		{ SVM_EXIT_VMRUN, 0, 0, VMEXIT_VIRT_INSN, 0 },
		{ SVM_EXIT_EXCP_BASE + 17, 0, 0, VMEXIT_EXCEPTION, 0 },
		{ SVM_EXIT_ERR, 0, 0, VMEXIT_ENTRY_FAILED, -EIO },
		{ SVM_EXIT_PAUSE, 0, 0, VMEXIT_UNHANDLED, 0 },
		{ SVM_EXIT_XSETBV, 0, 0, VMEXIT_XSETBV, 0 },
		{ SVM_EXIT_VINTR, 0, 0, VMEXIT_INTR_WINDOW, 0 },
		{ SVM_EXIT_VMMCALL, 0, 0, VMEXIT_HYPERCALL, 0 },
	};
	bool seen[VMEXIT_KIND_COUNT] = { false };

	seen[VMEXIT_NMI_WINDOW] = true; /* AMD-V's NMI window is the IRET intercept */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vm_exit e;

		vmcb->save.rip = 0x300000;
		e = decode(cases[i].code, cases[i].info1, cases[i].info2);
		CHECK_EQ(e.kind, cases[i].kind);
		CHECK_EQ(last_rc, cases[i].rc);
		CHECK_EQ(e.raw_reason, (u32)cases[i].code);
		CHECK_EQ(e.rip, 0x300000);
		if ((unsigned)e.kind < VMEXIT_KIND_COUNT)
			seen[e.kind] = true;
	}
	for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
		if (!seen[k])
			fprintf(stderr, "exit kind %d never decoded\n", k);
	for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
		CHECK(seen[k]);
}

static void test_without_nrips(void)
{
	struct vm_exit e;

	svm_caps.nrips = false;
	vmcb->save.rip = 0x100000;
	vmcb->control.next_rip = 0x100123; /* stale: must be ignored without NRIPS */

	e = decode(SVM_EXIT_CPUID, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_CPUID);
	CHECK_EQ(e.insn_len, 2);
	CHECK_EQ(e.rip, 0x100000);
	CHECK_EQ(e.raw_reason, SVM_EXIT_CPUID);

	CHECK_EQ(decode(SVM_EXIT_HLT, 0, 0).insn_len, 1);
	CHECK_EQ(decode(SVM_EXIT_VMMCALL, 0, 0).insn_len, 3);
	CHECK_EQ(decode(SVM_EXIT_VMMCALL, 0, 0).kind, VMEXIT_HYPERCALL);
	CHECK_EQ(decode(SVM_EXIT_XSETBV, 0, 0).kind, VMEXIT_XSETBV);
	CHECK_EQ(decode(SVM_EXIT_XSETBV, 0, 0).insn_len, 3);

	/* RDMSR/WRMSR: EXITINFO1 0/1, index from ECX. */
	v.regs[REG_RCX] = 0xC0000080;
	e = decode(SVM_EXIT_MSR, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_MSR_READ);
	CHECK_EQ(e.msr.index, 0xC0000080);
	CHECK_EQ(e.insn_len, 2);
	CHECK_EQ(decode(SVM_EXIT_MSR, 1, 0).kind, VMEXIT_MSR_WRITE);

	/* IOIO: "in al, dx" from port 0x3FD; EXITINFO2 is the next RIP. */
	e = decode(SVM_EXIT_IOIO, (0x3FDull << 16) | BIT(4) | 1, 0x100001);
	CHECK_EQ(e.kind, VMEXIT_IO);
	CHECK_EQ(e.io.port, 0x3FD);
	CHECK_EQ(e.io.size, 1);
	CHECK(e.io.in);
	CHECK(!e.io.string);
	CHECK_EQ(e.insn_len, 1);
	/* "rep outsw" to port 0x1F0 with a 2-byte prefix: length from EXITINFO2. */
	e = decode(SVM_EXIT_IOIO, (0x1F0ull << 16) | BIT(5) | BIT(2) | BIT(3), 0x100003);
	CHECK_EQ(e.io.size, 2);
	CHECK(!e.io.in);
	CHECK(e.io.string);
	CHECK(e.io.rep);
	CHECK_EQ(e.insn_len, 3);
	CHECK_EQ(decode(SVM_EXIT_IOIO, BIT(6), 0x100002).io.size, 4);

	/* A nested page fault: a write at GPA 0x2001000; a code fetch. */
	e = decode(SVM_EXIT_NPF, NPF_WRITE | NPF_USER, 0x2001000);
	CHECK_EQ(e.kind, VMEXIT_MEM);
	CHECK_EQ(e.mem.gpa, 0x2001000);
	CHECK(e.mem.write);
	CHECK(!e.mem.fetch);
	CHECK(decode(SVM_EXIT_NPF, NPF_FETCH | NPF_USER, 0x100000000ULL).mem.fetch);

	/* Exceptions: #GP with its error code, #UD without. */
	e = decode(SVM_EXIT_EXCP_BASE + 13, 0xF8, 0);
	CHECK_EQ(e.kind, VMEXIT_EXCEPTION);
	CHECK_EQ(e.exc.vector, 13);
	CHECK(e.exc.has_error);
	CHECK_EQ(e.exc.error_code, 0xF8);
	e = decode(SVM_EXIT_EXCP_BASE + 6, 0, 0);
	CHECK_EQ(e.exc.vector, 6);
	CHECK(!e.exc.has_error);
	/* MONITOR/MWAIT are hidden: #UD for the guest. */
	e = decode(SVM_EXIT_MWAIT, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_EXCEPTION);
	CHECK_EQ(e.exc.vector, 6);

	CHECK_EQ(decode(SVM_EXIT_INTR, 0, 0).kind, VMEXIT_HOST_INTERRUPT);
	CHECK_EQ(decode(SVM_EXIT_NMI, 0, 0).kind, VMEXIT_HOST_INTERRUPT);
	CHECK_EQ(decode(SVM_EXIT_SHUTDOWN, 0, 0).kind, VMEXIT_TRIPLE_FAULT);
	CHECK_EQ(decode(SVM_EXIT_ERR, 0, 0).kind, VMEXIT_ENTRY_FAILED);
	CHECK_EQ(decode(SVM_EXIT_INIT, 0, 0).kind, VMEXIT_UNHANDLED);
	CHECK_EQ(decode(0x1234, 0, 0).kind, VMEXIT_UNHANDLED);

	/* INVD is handled in the backend: RIP moves on, nothing for generic code. */
	vmcb->save.rip = 0x100010;
	CHECK_EQ(decode(SVM_EXIT_INVD, 0, 0).kind, VMEXIT_NONE);
	CHECK_EQ(vmcb->save.rip, 0x100012);
}

static void test_with_nrips(void)
{
	svm_caps.nrips = true;
	vmcb->save.rip = 0x200000;
	/* A CPUID with a (pointless) prefix: NRIPS knows better than 2. */
	vmcb->control.next_rip = 0x200003;
	CHECK_EQ(decode(SVM_EXIT_CPUID, 0, 0).insn_len, 3);
	vmcb->control.next_rip = 0x200001;
	CHECK_EQ(decode(SVM_EXIT_HLT, 0, 0).insn_len, 1);
	/* An implausible next RIP falls back to the fixed length. */
	vmcb->control.next_rip = 0;
	CHECK_EQ(decode(SVM_EXIT_CPUID, 0, 0).insn_len, 2);
	svm_caps.nrips = false;
}

static void test_requeue(void)
{
	u64 df = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | SVM_EVTINJ_VALID_ERR | 8;
	u64 intn = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_SOFT | 0x80;
	u64 bp = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | 3;
	struct vm_exit e;

	vmcb->control.exit_int_info = df;
	memset(&e, 0, sizeof(e));
	vmcb->control.exit_code = SVM_EXIT_NPF;
	svm_decode_exit(&v, &e);
	CHECK_EQ(vmcb->control.event_inj, df);

	vmcb->control.event_inj = 0;
	vmcb->control.exit_int_info = intn;
	svm_decode_exit(&v, &e);
	CHECK_EQ(vmcb->control.event_inj, 0); /* INT n runs again instead */
	vmcb->control.exit_int_info = bp;
	svm_decode_exit(&v, &e);
	CHECK_EQ(vmcb->control.event_inj, 0);
	vmcb->control.exit_int_info = 0;
}

/* An external interrupt cut short is requeued as it was, or, where they go
 * through V_IRQ (QEMU's TCG, svm_post_virq), posted there again, also when
 * QEMU records it with the exception type; an NMI is requeued exactly as it
 * was. The IRET intercept
 * (on while an injected NMI blocks NMIs) keeps the blocking until an exit
 * at another RIP shows the IRET completed. */
static void test_intr_events(void)
{
	u64 intr = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_INTR | 0x30;
	u64 as_exception = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | 0x41;
	u64 nmi = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_NMI | 2;
	struct vm_exit e;

	vmcb->control.exit_int_info = intr;
	decode(SVM_EXIT_NPF, 0, 0x1000);
	CHECK_EQ(vmcb->control.event_inj, intr);
	CHECK(!sv.virq);

	svm_caps.virq_inject = true;
	sv.windows = VCPU_WINDOW_INTR; /* a window open before: the post ends it */
	vmcb->control.intercept_misc1 |= INTERCEPT_VINTR;
	vmcb->control.exit_int_info = intr;
	decode(SVM_EXIT_NPF, 0, 0x1000);
	CHECK_EQ(vmcb->control.event_inj, 0);
	CHECK(sv.virq);
	CHECK(vmcb->control.int_ctl & V_IRQ_MASK);
	CHECK(vmcb->control.int_ctl & V_IGN_TPR_MASK);
	CHECK_EQ((vmcb->control.int_ctl & V_INTR_VECTOR_MASK) >> V_INTR_VECTOR_SHIFT, 0x30);
	CHECK(!(vmcb->control.intercept_misc1 & INTERCEPT_VINTR));
	CHECK_EQ(sv.windows, 0);
	vmcb->control.exit_int_info = as_exception;
	decode(SVM_EXIT_INTR, 0, 0);
	CHECK_EQ(vmcb->control.event_inj, 0);
	CHECK_EQ((vmcb->control.int_ctl & V_INTR_VECTOR_MASK) >> V_INTR_VECTOR_SHIFT, 0x41);
	svm_drop_virq(&sv);
	CHECK(!sv.virq);
	CHECK(!(vmcb->control.int_ctl & (V_IRQ_MASK | V_INTR_VECTOR_MASK)));
	svm_caps.virq_inject = false;
	vmcb->control.exit_int_info = nmi;
	decode(SVM_EXIT_INTR, 0, 0);
	CHECK_EQ(vmcb->control.event_inj, nmi);
	vmcb->control.exit_int_info = 0;
	vmcb->control.event_inj = 0;

	sv.nmi_blocked = true;
	vmcb->control.intercept_misc1 |= INTERCEPT_IRET;
	vmcb->save.rip = 0x5000;
	e = decode(SVM_EXIT_IRET, 0, 0);
	CHECK_EQ(e.kind, VMEXIT_NONE);
	CHECK(!(vmcb->control.intercept_misc1 & INTERCEPT_IRET));
	CHECK(sv.nmi_blocked);
	decode(SVM_EXIT_INTR, 0, 0); /* same RIP: the IRET has not run */
	CHECK(sv.nmi_blocked);
	vmcb->save.rip = 0x1234;
	decode(SVM_EXIT_INTR, 0, 0);
	CHECK(!sv.nmi_blocked);
}

static void test_names(void)
{
	CHECK_STR(svm_exit_reason_name(SVM_EXIT_NPF), "NPF");
	CHECK_STR(svm_exit_reason_name(SVM_EXIT_VMMCALL), "VMMCALL");
	CHECK_STR(svm_exit_reason_name(SVM_EXIT_EXCP_BASE + 13), "EXCP_GP");
	CHECK_STR(svm_exit_reason_name((u32)SVM_EXIT_ERR), "INVALID");
	CHECK_STR(svm_exit_reason_name(0x05), "CR_ACCESS");
	CHECK_STR(svm_exit_reason_name(0x999), "UNKNOWN");
}

int main(void)
{
	vmcb = aligned_alloc(4096, sizeof(*vmcb));
	memset(vmcb, 0, sizeof(*vmcb));
	sv.vmcb = vmcb;
	v.arch = &sv;
	test_every_kind();
	test_without_nrips();
	test_with_nrips();
	test_requeue();
	test_intr_events();
	test_names();
	free(vmcb);
	return test_done("svm_exit");
}
