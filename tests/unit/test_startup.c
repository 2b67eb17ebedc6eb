/*
 * Host unit test of vmm/startup.c: the state INIT leaves a vCPU in and the one
 * a STARTUP IPI starts it in (SDM Vol. 3A 9.1.1), and the scheduler's view of
 * INIT and STARTUP IPIs sent through the real LAPICs (vmm/dev_lapic.c): an
 * application processor waits for SIPI from power-on, starts at the vector,
 * ignores a second SIPI, goes back to waiting on INIT; an INIT to the BSP is
 * a machine reset. The backend is a recording stand-in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/printk.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "tests/unit/check.h"

extern const struct vdev vdev_lapic, vdev_ioapic;

static u64 tsc_now = 5000;
static int kicks, resets, reset_calls, stops;
static struct vcpu_state live[2]; /* what the "backend" holds per vCPU */
static int loads[2];

void printk(const char *fmt, ...) {}
u64 vcpu_guest_tsc(struct vcpu *v) { return tsc_now + (u64)v->id; }
void vcpu_kick(struct vcpu *v) { kicks++; }
void vm_request_reset(struct vm *vm, const char *how)
{
	vm->reset_pending = true;
	resets++;
}
bool vm_reset_pending(struct vcpu *v)
{
	reset_calls++;
	v->vm->reset_pending = false;
	return true;
}
void vm_stop(struct vm *vm, const char *fmt, ...)
{
	stops++;
	vm->state = VM_STOPPED;
}

static int fake_get_state(struct vcpu *v, struct vcpu_state *s)
{
	*s = live[v->id];
	return 0;
}

static int fake_reset_state(struct vcpu *v, const struct vcpu_state *s)
{
	live[v->id] = *s;
	loads[v->id]++;
	return 0;
}

static u64 tsc_of[2] = { 777000, 1 }; /* each vCPU's TSC in the "backend" */

static int fake_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	CHECK_EQ(f, VCPU_FIELD_TSC);
	*val = tsc_of[v->id];
	return 0;
}

static int fake_set_field(struct vcpu *v, enum vcpu_field f, u64 val)
{
	CHECK_EQ(f, VCPU_FIELD_TSC);
	tsc_of[v->id] = val;
	return 0;
}

static const struct vcpu_ops fake_ops = {
	.name = "fake",
	.get_state = fake_get_state,
	.reset_state = fake_reset_state,
	.get_field = fake_get_field,
	.set_field = fake_set_field,
};
const struct vcpu_ops *vcpu_ops = &fake_ops;

static struct vm vm;
static struct vcpu cpu[2];

static void setup(void)
{
	memset(&vm, 0, sizeof(vm));
	vm.guest_tsc_hz = 1000000000ULL;
	vm.nvcpus = 2;
	vm.state = VM_RUNNING;
	for (int i = 0; i < 2; i++) {
		cpu[i] = (struct vcpu){ .vm = &vm, .id = i };
		vm.vcpus[i] = &cpu[i];
	}
	vm.dev[VDEV_LAPIC] = calloc(1, vdev_lapic.state_size);
	vm.dev[VDEV_IOAPIC] = calloc(1, vdev_ioapic.state_size);
	vdev_lapic.reset(&vm, vm.dev[VDEV_LAPIC]);
	vdev_ioapic.reset(&vm, vm.dev[VDEV_IOAPIC]);
}

static void ipi(u8 mode, u8 vector, u32 dest, bool level, bool assert)
{
	struct apic_msg m = {
		.vector = vector, .mode = mode, .dest = dest, .level = level, .assert = assert
	};

	vlapic_send(&vm, &cpu[0], &m);
}

/* The INIT and STARTUP states from a state that had been running 64-bit code. */
static void test_states(void)
{
	static struct vcpu_state s;

	memset(&s, 0xA5, sizeof(s));
	s.cr0 = 0x80000011ULL | BIT(30); /* PG, CD, ET, PE: NW clear */
	s.pat = 0x0007040600070406ULL;
	s.xcr0 = 7;
	s.tsc = 1234;
	vcpu_init_state(&s, -1);
	CHECK_EQ(s.cs.selector, 0xF000);
	CHECK_EQ(s.cs.base, 0xFFFF0000);
	CHECK_EQ(s.cs.limit, 0xFFFF);
	CHECK_EQ(s.cs.attr, 0x9B);
	CHECK_EQ(s.rip, 0xFFF0);
	CHECK_EQ(s.rflags, 2);
	CHECK_EQ(s.cr0, 0x40000010ULL); /* CD kept, NW stays clear */
	CHECK_EQ(s.cr3, 0);
	CHECK_EQ(s.cr4, 0);
	CHECK_EQ(s.efer, 0);
	CHECK_EQ(s.regs[REG_RDX], 0x600);
	CHECK_EQ(s.regs[REG_RAX], 0);
	CHECK_EQ(s.regs[REG_RSP], 0);
	CHECK_EQ(s.ss.attr, 0x93);
	CHECK_EQ(s.ds.base, 0);
	CHECK_EQ(s.gdtr.limit, 0xFFFF);
	CHECK_EQ(s.idtr.base, 0);
	CHECK_EQ(s.ldtr.attr, 0x82);
	CHECK_EQ(s.tr.attr, 0x83);
	CHECK_EQ(s.dr6, 0xFFFF0FF0);
	CHECK_EQ(s.dr7, 0x400);
	CHECK_EQ(s.pending.valid, 0);
	CHECK_EQ(s.interruptibility, 0);
	CHECK_EQ(s.halted, VCPU_WAIT_SIPI);
	/* what INIT keeps */
	CHECK_EQ(s.pat, 0x0007040600070406ULL);
	CHECK_EQ(s.xcr0, 7);
	CHECK_EQ(s.tsc, 1234);
	CHECK_EQ(s.xsave[0], 0xA5);
	vcpu_init_state(&s, 0x9A);
	CHECK_EQ(s.cs.selector, 0x9A00);
	CHECK_EQ(s.cs.base, 0x9A000);
	CHECK_EQ(s.rip, 0);
	CHECK_EQ(s.halted, VCPU_RUNS);
}

static void test_flow(void)
{
	struct vcpu *ap = &cpu[1];

	setup();
	/* power-on: the AP waits, the BSP runs */
	CHECK(vcpu_startup(&cpu[0]));
	CHECK(vcpu_waits_for_sipi(ap));
	CHECK(!vcpu_startup(ap));
	CHECK(ap->wait_sipi);
	CHECK_EQ(loads[1], 1);
	CHECK_EQ(live[1].cs.selector, 0xF000);
	CHECK_EQ(tsc_of[1], 777000); /* the BSP's time */
	CHECK(!vcpu_startup(ap));
	CHECK_EQ(loads[1], 1); /* loaded once */
	/* INIT (assert, then the ignored de-assert), STARTUP, STARTUP */
	kicks = 0;
	ipi(APIC_DM_INIT, 0, 1, true, true);
	ipi(APIC_DM_INIT, 0, 1, true, false);
	ipi(APIC_DM_STARTUP, 0x10, 1, false, false);
	ipi(APIC_DM_STARTUP, 0x20, 1, false, false);
	CHECK(kicks >= 2);
	CHECK(!vcpu_waits_for_sipi(ap));
	tsc_of[0] += 5000;
	CHECK(vcpu_startup(ap));
	CHECK_EQ(tsc_of[1], 782000);
	CHECK(!ap->wait_sipi);
	CHECK_EQ(live[1].cs.selector, 0x1000);
	CHECK_EQ(live[1].cs.base, 0x10000);
	CHECK_EQ(live[1].rip, 0);
	CHECK_EQ(live[1].cr0 & 1, 0);
	/* a STARTUP to a running AP is ignored */
	live[1].rip = 0x1234;
	ipi(APIC_DM_STARTUP, 0x30, 1, false, false);
	CHECK(vcpu_startup(ap));
	CHECK_EQ(live[1].rip, 0x1234);
	/* INIT again: back to waiting, its LAPIC reset */
	ap->halted = true;
	ipi(APIC_DM_INIT, 0, 1, false, true);
	CHECK(!vcpu_startup(ap));
	CHECK(!ap->halted);
	CHECK(ap->wait_sipi);
	CHECK_EQ(live[1].rip, 0xFFF0);
	ipi(APIC_DM_STARTUP, 0x08, 1, false, false);
	CHECK(vcpu_startup(ap));
	CHECK_EQ(live[1].cs.base, 0x8000);
	/* INIT to the BSP (all including self): a reset, the BSP not halted */
	CHECK_EQ(resets, 0);
	{
		struct apic_msg m = { .mode = APIC_DM_INIT, .shorthand = APIC_DEST_ALL };

		vlapic_send(&vm, ap, &m);
	}
	CHECK(vcpu_startup(&cpu[0]));
	CHECK_EQ(resets, 1);
	CHECK_EQ(reset_calls, 1);
	CHECK(!vcpu_waits_for_sipi(&cpu[0]));
	CHECK(!vcpu_startup(ap)); /* the AP got the INIT too */
	CHECK_EQ(stops, 0);
	free(vm.dev[VDEV_LAPIC]);
	free(vm.dev[VDEV_IOAPIC]);
}

int main(void)
{
	test_states();
	test_flow();
	return test_done("startup");
}
