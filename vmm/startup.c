/*
 * INIT and STARTUP IPIs acted on: the application processors of a VM with
 * several vCPUs wait for a STARTUP IPI (from power-on, a reset, or an INIT),
 * and start in real mode at its vector, as on hardware. The LAPIC records
 * what arrived (vmm/dev_lapic.c); the scheduler asks vcpu_startup() before
 * it runs a vCPU, so every INIT and STARTUP takes effect between two of the
 * vCPU's instructions, whoever sent it. Host context, scheduler or VM
 * creation and reset, boot CPU.
 */
#include "kernel/lib.h"
#include "vmm/intr.h"
#include "vmm/vmm_internal.h"

/* Segment attributes in the packed form of vmm/vcpu_state.h. */
#define ATTR_DATA 0x93 /* present, S, read/write, accessed */
#define ATTR_CODE 0x9B /* present, S, execute/read, accessed */
#define ATTR_LDT 0x82  /* present, LDT */
#define ATTR_TSS 0x83  /* present, 16-bit busy TSS */
#define CR0_ET BIT(4)
#define CR0_NW BIT(29)
#define CR0_CD BIT(30)

static void seg(struct vcpu_segment *sg, u16 sel, u64 base, u16 attr)
{
	*sg = (struct vcpu_segment){ .selector = sel, .attr = attr, .limit = 0xFFFF, .base = base };
}

/*
 * SDM Vol. 3A 9.1.1 "Processor State After Reset", table "IA-32 and Intel 64
 * Processor States Following Power-up, Reset, or INIT", the INIT column:
 * real mode at F000:FFF0 (CS base FFFF0000), CR0 60000010 but CD and NW
 * kept, CR2-CR4, EFER, the general registers but EDX (the processor
 * signature: family 6) and the debug registers at their reset values, no
 * event pending or blocked. What INIT keeps stays as s holds it: the x87/SSE
 * state and XCR0, PAT, the SYSENTER and SYSCALL MSRs, the TSC. With
 * sipi_vector >= 0 the state a STARTUP IPI starts it in instead: CS selector
 * vector << 8, base vector << 12, IP 0 (SDM Vol. 3A 9.4.4.1 "Typical BSP
 * Initialization Sequence", MP spec 1.4 B.4.2 "USING STARTUP IPI"). CS is
 * execute/read (type 11) where the table says read/write (3): real mode
 * treats both alike and VM entry takes 11 on every VT-x, 3 only with
 * unrestricted guest.
 */
void vcpu_init_state(struct vcpu_state *s, int sipi_vector)
{
	memset(s->regs, 0, sizeof(s->regs));
	s->regs[REG_RDX] = 0x600;
	s->rip = 0xFFF0;
	s->rflags = 0x2;
	s->cr0 = (s->cr0 & (CR0_CD | CR0_NW)) | CR0_ET;
	s->cr2 = s->cr3 = s->cr4 = s->cr8 = 0;
	s->efer = 0;
	seg(&s->cs, 0xF000, 0xFFFF0000, ATTR_CODE);
	seg(&s->ss, 0, 0, ATTR_DATA);
	seg(&s->ds, 0, 0, ATTR_DATA);
	seg(&s->es, 0, 0, ATTR_DATA);
	seg(&s->fs, 0, 0, ATTR_DATA);
	seg(&s->gs, 0, 0, ATTR_DATA);
	seg(&s->ldtr, 0, 0, ATTR_LDT);
	seg(&s->tr, 0, 0, ATTR_TSS);
	s->gdtr = (struct vcpu_dtable){ .base = 0, .limit = 0xFFFF };
	s->idtr = (struct vcpu_dtable){ .base = 0, .limit = 0xFFFF };
	s->dr0 = s->dr1 = s->dr2 = s->dr3 = 0;
	s->dr6 = 0xFFFF0FF0;
	s->dr7 = 0x400;
	s->interruptibility = 0;
	s->pending = (struct vcpu_event){ 0 };
	s->halted = VCPU_WAIT_SIPI;
	if (sipi_vector >= 0) {
		seg(&s->cs, (u16)(sipi_vector << 8), (u64)sipi_vector << 12, ATTR_CODE);
		s->rip = 0;
		s->halted = VCPU_RUNS;
	}
}

/* An application processor reads the BSP's clock: the BSP's TSC is read and
 * written into v one call apart, so the few ticks between the two reads are
 * far fewer than a switch between vCPUs takes, and no vCPU can see the TSC
 * of another one behind its own (Linux's TSC sync check counts such warps). */
static int vcpu_tsc_follow_bsp(struct vcpu *v)
{
	u64 tsc;
	int err = vcpu_ops->get_field(v->vm->vcpus[0], VCPU_FIELD_TSC, &tsc);

	return err ? err : vcpu_ops->set_field(v, VCPU_FIELD_TSC, tsc);
}

/* Loads the INIT state (sipi_vector < 0) or the STARTUP state into the
 * application processor v, through the backend's reset_state, with the BSP's
 * TSC; the FPU stays as it is. Returns 0 or the backend's negative errno. */
static int vcpu_reset_to(struct vcpu *v, int sipi_vector)
{
	static struct vcpu_state s; /* 4.6 KiB: not on the stack; never nested */
	int err = vcpu_ops->get_state(v, &s);

	if (err)
		return err;
	vcpu_init_state(&s, sipi_vector);
	err = vcpu_ops->reset_state(v, &s);
	if (!err)
		err = vcpu_tsc_follow_bsp(v);
	if (err)
		return err;
	memcpy(v->regs, s.regs, sizeof(v->regs));
	v->halted = false;
	v->wait_sipi = sipi_vector < 0;
	v->cr8 = 0;
	v->wake_at = 0;
	v->kicked = true;
	v->intr_dirty = true;
	return 0;
}

int vcpu_wait_for_sipi(struct vcpu *v) { return vcpu_reset_to(v, -1); }

bool vcpu_startup(struct vcpu *v)
{
	struct vm *vm = v->vm;
	u8 vector = 0;
	int st = vlapic_startup(v, &vector), err;

	if (st == VLAPIC_RUN)
		return true;
	/* INIT to the BSP: it would start over in the BIOS at the reset
	 * vector, and Amber's "BIOS" boots the image again: a machine reset. */
	if (v->id == 0) {
		vlapic_started(v);
		vm_request_reset(vm, "an INIT IPI to the BSP");
		vm_reset_pending(v);
		return vm->state == VM_RUNNING;
	}
	if (!v->wait_sipi) {
		err = vcpu_reset_to(v, -1);
		if (err)
			goto fail;
	}
	if (st == VLAPIC_WAIT_SIPI)
		return false;
	err = vcpu_reset_to(v, vector);
	if (err)
		goto fail;
	vlapic_started(v);
	return true;
fail:
	vm_stop(vm, "%s could not start vCPU %d (%s)", vcpu_ops->name, v->id, errno_name(err));
	return false;
}

bool vcpu_waits_for_sipi(struct vcpu *v)
{
	u8 vector;

	return vlapic_startup(v, &vector) == VLAPIC_WAIT_SIPI;
}
