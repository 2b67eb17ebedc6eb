/*
 * Host unit test of interrupt delivery (vmm/intr.c): intr_decide() for every
 * combination of blocking and what waits (a queued event first, an NMI before
 * an interrupt, shadows and IF, the windows asked for), then intr_before_entry
 * and intr_can_wake against a recording backend, a LAPIC and an 8259A that
 * are small host stand-ins: which vector is injected and acknowledged, CR8 in
 * both directions, the run bounded by the device deadline, when the look
 * after a plain exit may be skipped (intr_unchanged), HLT wakeups.
 */
#include <stdlib.h>
#include <string.h>

#include "kernel/irq.h"
#include "kernel/time.h"
#include "vmm/intr.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "vmm/vtsc.h"
#include "tests/unit/check.h"

/* ---- stand-ins ---------------------------------------------------------- */
static u64 now_us, armed_at, guest_tsc = 1000000, deadline = ~0ULL, synced_to;
static int lapic_vec = -1, accepted = -1, pic_vec = -1, pic_acks;
static bool accepts_pic = true, nmi_waits;
static u8 lapic_tpr, backend_cr8;
static u32 backend_state, backend_windows;
static struct vcpu_event injected;
static int injections;

u64 ticks(void) { return now_us; }
u64 tsc_hz(void) { return 1000000000ULL; }
void irq_timer_arm(u64 at) { armed_at = at; }
static u64 timer_count;
u64 irq_timer_count(void) { return timer_count; }
u64 vcpu_guest_tsc(struct vcpu *v) { return guest_tsc; }
u64 vdev_deadline(struct vm *vm) { return deadline; }
void vdev_sync(struct vm *vm, u64 tsc)
{
	synced_to = tsc;
	if (deadline <= tsc)
		deadline = tsc + 5000; /* the device moves on to its next expiry */
}
bool vpic_intr(struct vm *vm) { return pic_vec >= 0; }
u8 vpic_ack(struct vm *vm)
{
	u8 v = (u8)pic_vec;

	pic_acks++;
	pic_vec = -1;
	return v;
}
int vlapic_pending(struct vcpu *v) { return lapic_vec; }
static bool irr_empty = true;
bool vlapic_irr_empty(struct vcpu *v) { return irr_empty && lapic_vec < 0; }
void vlapic_accept(struct vcpu *v, u8 vector)
{
	accepted = vector;
	lapic_vec = -1;
}
bool vlapic_accepts_pic(struct vcpu *v) { return accepts_pic; }
bool vlapic_nmi_pending(struct vcpu *v) { return nmi_waits; }
void vlapic_take_nmi(struct vcpu *v) { nmi_waits = false; }
u8 vlapic_get_cr8(struct vcpu *v) { return lapic_tpr; }
void vlapic_set_cr8(struct vcpu *v, u8 cr8) { lapic_tpr = cr8; }

static int rec_inject(struct vcpu *v, const struct vcpu_event *ev)
{
	injected = *ev;
	injections++;
	backend_state |= VCPU_INTR_QUEUED;
	return 0;
}
static int rec_intr_state(struct vcpu *v, u32 *state)
{
	*state = backend_state;
	return 0;
}
static int rec_set_windows(struct vcpu *v, u32 w)
{
	backend_windows = w;
	return 0;
}
static int cr8_reads;
static int rec_get_field(struct vcpu *v, enum vcpu_field f, u64 *val)
{
	cr8_reads += f == VCPU_FIELD_CR8;
	*val = f == VCPU_FIELD_CR8 ? backend_cr8 : 0;
	return 0;
}
static int rec_set_field(struct vcpu *v, enum vcpu_field f, u64 val)
{
	if (f == VCPU_FIELD_CR8)
		backend_cr8 = (u8)val;
	return 0;
}
static const struct vcpu_ops rec_ops = {
	.name = "recording",
	.inject_event = rec_inject,
	.intr_state = rec_intr_state,
	.set_windows = rec_set_windows,
	.get_field = rec_get_field,
	.set_field = rec_set_field,
};
const struct vcpu_ops *vcpu_ops = &rec_ops;

/* The devices count at another rate than the host's TSC (a restored image):
 * host time comes from the host's rate. */
static struct vm vm = { .id = 1, .state = VM_RUNNING, .guest_tsc_hz = 3000000000ULL };
static struct vcpu vcpu = { .vm = &vm };

/* ---- the decision ---------------------------------------------------------- */

static void test_decide(void)
{
	const u32 IF = VCPU_INTR_IF, STI = VCPU_INTR_STI, MOVSS = VCPU_INTR_MOV_SS,
		  NMIB = VCPU_INTR_NMI, Q = VCPU_INTR_QUEUED;
	static const struct {
		u32 state;
		bool nmi, intr;
		enum intr_inject inject;
		u32 windows;
	} cases[] = {
		{ IF, false, false, INTR_INJECT_NONE, 0 },
		{ IF, false, true, INTR_INJECT_EXTINT, 0 },
		{ 0, false, true, INTR_INJECT_NONE, VCPU_WINDOW_INTR },	       /* IF=0 */
		{ IF | STI, false, true, INTR_INJECT_NONE, VCPU_WINDOW_INTR }, /* shadow */
		{ IF | MOVSS, false, true, INTR_INJECT_NONE, VCPU_WINDOW_INTR },
		{ IF | NMIB, false, true, INTR_INJECT_EXTINT, 0 }, /* NMI blocking: not INTR's */
		{ 0, true, false, INTR_INJECT_NMI, 0 },		   /* NMIs ignore IF */
		{ IF, true, true, INTR_INJECT_NMI, VCPU_WINDOW_INTR },
		{ NMIB, true, false, INTR_INJECT_NONE, VCPU_WINDOW_NMI },
		{ IF | NMIB, true, true, INTR_INJECT_EXTINT, VCPU_WINDOW_NMI },
		{ STI | IF, true, true, INTR_INJECT_NONE, VCPU_WINDOW_NMI | VCPU_WINDOW_INTR },
		{ MOVSS, true, false, INTR_INJECT_NONE, VCPU_WINDOW_NMI },
		/* A queued (re-injected) event goes first, alone. */
		{ Q | IF, false, true, INTR_INJECT_NONE, VCPU_WINDOW_INTR },
		{ Q | IF, true, true, INTR_INJECT_NONE, VCPU_WINDOW_INTR | VCPU_WINDOW_NMI },
		{ Q | IF, false, false, INTR_INJECT_NONE, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct intr_plan p = intr_decide(cases[i].state, cases[i].nmi, cases[i].intr);

		if (p.inject != cases[i].inject || p.windows != cases[i].windows)
			fprintf(stderr, "case %zu\n", i);
		CHECK_EQ(p.inject, cases[i].inject);
		CHECK_EQ(p.windows, cases[i].windows);
	}
}

/* ---- around an entry ---------------------------------------------------------- */

static void reset(void)
{
	lapic_vec = accepted = pic_vec = -1;
	accepts_pic = true;
	nmi_waits = false;
	backend_state = VCPU_INTR_IF;
	backend_windows = 0;
	injections = pic_acks = 0;
	memset(&injected, 0, sizeof(injected));
	deadline = ~0ULL;
	synced_to = 0;
	irr_empty = true;
}

static void test_entry(void)
{
	/* The LAPIC's vector goes before the 8259A's, and is accepted. */
	reset();
	lapic_vec = 0x41;
	pic_vec = 0x20;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(injections, 1);
	CHECK_EQ(injected.type, VCPU_EVENT_EXTINT);
	CHECK_EQ(injected.vector, 0x41);
	CHECK_EQ(accepted, 0x41);
	CHECK_EQ(pic_acks, 0);
	/* The queued event holds the 8259A's until it is delivered: window. */
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(injections, 1);
	CHECK_EQ(backend_windows, VCPU_WINDOW_INTR);
	backend_state = VCPU_INTR_IF;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(injected.vector, 0x20);
	CHECK_EQ(pic_acks, 1);
	CHECK_EQ(backend_windows, 0);

	/* The 8259A's INTR does not reach a vCPU whose LINT0 refuses it. */
	reset();
	pic_vec = 0x20;
	accepts_pic = false;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(injections, 0);
	CHECK_EQ(backend_windows, 0);

	/* IF=0: nothing taken from the PIC, a window asked for. */
	reset();
	pic_vec = 0x20;
	backend_state = 0;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(injections, 0);
	CHECK_EQ(pic_acks, 0);
	CHECK_EQ(backend_windows, VCPU_WINDOW_INTR);

	/* An NMI: vector 2, taken from the LAPIC. */
	reset();
	nmi_waits = true;
	backend_state = 0;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(injected.type, VCPU_EVENT_NMI);
	CHECK_EQ(injected.vector, 2);
	CHECK(!nmi_waits);
}

static void test_time_and_cr8(void)
{
	/* A deadline passed: devices synced to now, the next one bounds the run
	 * (guest TSC at 1 GHz: 5000 ticks are 5 us). */
	reset();
	now_us = 777;
	guest_tsc = 2000000;
	deadline = 1999999;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(synced_to, 2000000);
	CHECK_EQ(vcpu.run_budget, 5000);
	CHECK_EQ(armed_at, 777 + 5);
	/* The TSC scaled to the image's 3 GHz (vmm/vtsc.c): 6000 guest ticks
	 * are 2 us, 2000 ticks of the host's 1 GHz TSC for the run's budget. */
	reset();
	vm.tsc_mode = VTSC_SCALED;
	deadline = guest_tsc + 6000;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(vcpu.run_budget, 2000);
	CHECK_EQ(armed_at, 777 + 2);
	vm.tsc_mode = VTSC_NATIVE;
	/* No deadline: the slice's end bounds it. */
	reset();
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(synced_to, 0);
	CHECK_EQ(vcpu.run_budget, ~0ULL);
	CHECK_EQ(armed_at, 777 + 10000);

	/* CR8: the LAPIC's TPR is pushed before the entry, the guest's CR8
	 * written in guest mode goes to the LAPIC after the exit. */
	lapic_tpr = 7;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(backend_cr8, 7);
	backend_cr8 = 2;
	CHECK_EQ(intr_after_exit(&vcpu), 0);
	CHECK_EQ(lapic_tpr, 2);
}

/* The look skipped after plain exits (intr_unchanged) holds only while the
 * last full look found the vCPU quiet, nothing marked it dirty, no host
 * timer interrupt came and the deadline is still ahead in host TSC. */
static void test_unchanged(void)
{
	reset();
	guest_tsc = 5000000;
	deadline = guest_tsc + 1000000000000ULL; /* far ahead */
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK(vcpu.intr_quiet);
	CHECK(!vcpu.intr_dirty);
	CHECK(intr_unchanged(&vcpu));
	CHECK(vcpu.run_budget > 0 && vcpu.run_budget <= 1000000000000ULL);
	/* A kick, a host timer interrupt: look again. */
	vcpu_kick(&vcpu);
	CHECK(!intr_unchanged(&vcpu));
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, false), 0);
	CHECK(intr_unchanged(&vcpu));
	timer_count++;
	CHECK(!intr_unchanged(&vcpu));
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, false), 0);
	CHECK(intr_unchanged(&vcpu));
	/* The deadline reached in host TSC (a guest TSC just ahead of it). */
	deadline = guest_tsc + 1;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	for (int i = 0; i < 1000 && intr_unchanged(&vcpu); i++)
		;
	CHECK(!intr_unchanged(&vcpu));
	/* No deadline: unbounded budget. */
	deadline = ~0ULL;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK(intr_unchanged(&vcpu));
	CHECK_EQ(vcpu.run_budget, ~0ULL);
	/* Something waits (IF=0: a window), an NMI, a vector TPR holds back:
	 * never quiet. */
	pic_vec = 0x20;
	backend_state = 0;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK(!vcpu.intr_quiet);
	CHECK(!intr_unchanged(&vcpu));
	reset();
	nmi_waits = true;
	backend_state = VCPU_INTR_NMI;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK(!vcpu.intr_quiet);
	reset();
	irr_empty = false;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK(!vcpu.intr_quiet);

	/* A CR8 left unread after a plain exit is read before the next full
	 * look, and the guest's value wins over the LAPIC's older one. */
	reset();
	lapic_tpr = 3;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, true), 0);
	CHECK_EQ(backend_cr8, 3);
	backend_cr8 = 9; /* the guest's MOV CR8, no exit */
	vcpu.cr8_stale = true;
	cr8_reads = 0;
	CHECK_EQ(intr_before_entry(&vcpu, now_us + 10000, false), 0);
	CHECK_EQ(cr8_reads, 1);
	CHECK(!vcpu.cr8_stale);
	CHECK_EQ(lapic_tpr, 9);
	CHECK_EQ(backend_cr8, 9);
	/* A CR8 change marks the vCPU dirty. */
	CHECK(!vcpu.intr_dirty);
	backend_cr8 = 4;
	CHECK_EQ(intr_after_exit(&vcpu), 0);
	CHECK(vcpu.intr_dirty);
	lapic_tpr = 0;
	backend_cr8 = 0;
	vcpu.cr8 = 0;
}

static void test_wake(void)
{
	/* IF=1 and the 8259A's INTR up: HLT ends. */
	reset();
	pic_vec = 0x20;
	CHECK(intr_can_wake(&vcpu));
	/* IF=0: it sleeps, for good unless an NMI comes. */
	backend_state = 0;
	CHECK(!intr_can_wake(&vcpu));
	CHECK(intr_sleeps_for_good(&vcpu));
	nmi_waits = true;
	CHECK(intr_can_wake(&vcpu));
	CHECK(!intr_sleeps_for_good(&vcpu));
	/* ... an NMI while NMIs are blocked does not end HLT. */
	backend_state = VCPU_INTR_NMI;
	CHECK(!intr_can_wake(&vcpu));
	/* IF=1, nothing yet: sleeps until the deadline, in host time. */
	reset();
	now_us = 1000;
	guest_tsc = 3000000;
	deadline = 3000000 + 2000000; /* 2 ms of a 1 GHz guest TSC */
	CHECK(!intr_can_wake(&vcpu));
	CHECK_EQ(vcpu.wake_at, 1000 + 2000);
	CHECK(!intr_sleeps_for_good(&vcpu));
	/* The deadline came: synced, the request it raised wakes. */
	guest_tsc = deadline;
	pic_vec = 0x20;
	CHECK(intr_can_wake(&vcpu));
	CHECK_EQ(synced_to, guest_tsc);
}

int main(void)
{
	test_decide();
	test_entry();
	test_time_and_cr8();
	test_unchanged();
	test_wake();
	return test_done("intr");
}
