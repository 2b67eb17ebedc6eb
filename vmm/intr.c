/*
 * Interrupt delivery to vCPUs (vmm/intr.h): before every entry the generic
 * side decides what a vCPU takes next and injects it through the backend, or
 * asks the backend for the window in which it can be taken; a vCPU in HLT
 * sleeps until it has something it can take; no guest runs past the next
 * device deadline without an exit. Host context, boot CPU, interrupts off.
 */
#include "kernel/irq.h"
#include "kernel/time.h"
#include "vmm/intr.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "vmm/vtsc.h"

static void (*kick_remote)(struct vcpu *v);

void intr_set_remote_kick(void (*fn)(struct vcpu *v)) { kick_remote = fn; }

void vcpu_kick(struct vcpu *v)
{
	v->kicked = true;
	v->intr_dirty = true;
	if (kick_remote)
		kick_remote(v); /* a vCPU on another CPU: an IPI (vmm/vcpu.c) */
}

void vm_kick(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
}

/*
 * The decision, from what the backend reports (VCPU_INTR_* bits) and what
 * waits: an event already queued (re-injected after an exit that cut its
 * delivery short) goes first, and whatever else waits asks for its window,
 * so that an exit follows its delivery. Then an NMI, when neither NMI
 * blocking nor an STI/MOV SS shadow holds it; then a maskable interrupt when
 * RFLAGS.IF is set and no shadow holds it. What cannot go now asks for its
 * window. SDM Vol. 3A 6.8.3 "Masking Exceptions and Interrupts When
 * Switching Stacks", 6.7.1 "Handling Multiple NMIs"; Vol. 3C 27.6 "Event
 * Injection" (what VM entry accepts).
 */
struct intr_plan intr_decide(u32 state, bool nmi, bool intr)
{
	struct intr_plan p = { INTR_INJECT_NONE, 0 };
	u32 shadow = state & (VCPU_INTR_STI | VCPU_INTR_MOV_SS);

	if (state & VCPU_INTR_QUEUED) {
		p.windows = (nmi ? VCPU_WINDOW_NMI : 0) | (intr ? VCPU_WINDOW_INTR : 0);
		return p;
	}
	if (nmi) {
		if (!shadow && !(state & VCPU_INTR_NMI)) {
			p.inject = INTR_INJECT_NMI;
			if (intr)
				p.windows |= VCPU_WINDOW_INTR;
			return p;
		}
		p.windows |= VCPU_WINDOW_NMI;
	}
	if (intr) {
		if (!shadow && (state & VCPU_INTR_IF))
			p.inject = INTR_INJECT_EXTINT;
		else
			p.windows |= VCPU_WINDOW_INTR;
	}
	return p;
}

/* A maskable interrupt waits for v: a LAPIC vector above its PPR, or the
 * 8259A's INTR where it reaches v. */
static bool intr_waiting(struct vcpu *v)
{
	return vlapic_pending(v) >= 0 || (vlapic_accepts_pic(v) && vpic_intr(v->vm));
}

/* The vector v takes now (intr_waiting was true): the LAPIC's first, else
 * the 8259A's acknowledge cycle. */
static u8 intr_take_vector(struct vcpu *v)
{
	int vec = vlapic_pending(v);

	if (vec >= 0) {
		vlapic_accept(v, (u8)vec);
		return (u8)vec;
	}
	return vpic_ack(v->vm);
}

/* Guest TSC ticks as host microseconds, at the rate the guest's TSC runs
 * (the host's, or its image's where the backend scales it), whatever rate
 * a restored image's devices count with (vm->guest_tsc_hz). */
static u64 intr_tsc_to_us(struct vm *vm, u64 tsc_ticks)
{
	return vdev_scale(tsc_ticks, TICKS_PER_SEC, vtsc_run_hz(vm));
}

/* Brings the devices up to guest TSC `tsc` when their deadline has come;
 * returns the next deadline (> tsc, or ~0ULL). */
static u64 intr_sync_due(struct vm *vm, u64 tsc)
{
	u64 dl = vdev_deadline(vm);

	if (tsc >= dl) {
		vdev_sync(vm, tsc);
		dl = vdev_deadline(vm);
	}
	return dl;
}

int intr_before_entry(struct vcpu *v, u64 slice_end, bool devices_changed)
{
	struct vm *vm = v->vm;
	u64 host, tsc, dl = vm->next_deadline, at = slice_end;
	u8 tpr;
	struct vcpu_event ev = { .valid = 1 };
	struct intr_plan p = { INTR_INJECT_NONE, 0 };
	bool nmi, intr;
	u32 state;
	int err;

	if (v->cr8_stale) { /* the guest's CR8 first: the LAPIC's TPR lags it */
		err = intr_after_exit(v);
		if (err)
			return err;
	}
	/* The host's TSC before the guest's: the deadline in host TSC below
	 * comes out early by the few ticks between the reads, never late. */
	host = rdtsc();
	tsc = vcpu_guest_tsc(v);
	tpr = vlapic_get_cr8(v);
	v->intr_dirty = false;

	/* The devices' next deadline changes only when they are used or synced:
	 * kept across the exits that touch none. */
	if (devices_changed || tsc >= dl)
		dl = vm->next_deadline = intr_sync_due(vm, tsc);
	if (tpr != v->cr8) {
		err = vcpu_ops->set_field(v, VCPU_FIELD_CR8, tpr);
		if (err)
			return err;
		v->cr8 = tpr;
	}
	nmi = vlapic_nmi_pending(v);
	intr = intr_waiting(v);
	if (nmi || intr) { /* else nothing to inject and no window to ask for */
		err = vcpu_ops->intr_state(v, &state);
		if (err)
			return err;
		p = intr_decide(state, nmi, intr);
	}
	if (p.inject == INTR_INJECT_NMI) {
		vlapic_take_nmi(v);
		ev.type = VCPU_EVENT_NMI;
		ev.vector = X86_TRAP_NMI;
	} else if (p.inject == INTR_INJECT_EXTINT) {
		ev.type = VCPU_EVENT_EXTINT;
		ev.vector = intr_take_vector(v);
	}
	if (p.inject != INTR_INJECT_NONE) {
		err = vcpu_ops->inject_event(v, &ev);
		if (err)
			return err;
	}
	err = vcpu_ops->set_windows(v, p.windows);
	if (err)
		return err;
	/* The run ends by the next deadline: the backend's own timer where it
	 * has one, the host timer in any case (and by the slice's end). */
	v->run_budget = dl == ~0ULL ? ~0ULL : vtsc_to_host(vm, dl - tsc);
	v->intr_until = dl == ~0ULL ? ~0ULL : host + v->run_budget;
	if (dl != ~0ULL)
		at = MIN(at, ticks() + intr_tsc_to_us(vm, dl - tsc));
	irq_timer_arm(at);
	v->intr_quiet = !nmi && !intr && vlapic_irr_empty(v);
	v->intr_timer = irq_timer_count();
	return 0;
}

int intr_after_exit(struct vcpu *v)
{
	u64 cr8;
	int err = vcpu_ops->get_field(v, VCPU_FIELD_CR8, &cr8);

	if (err)
		return err;
	v->cr8_stale = false;
	if (cr8 != v->cr8) {
		v->cr8 = (u8)cr8;
		v->intr_dirty = true; /* a vector the old TPR held back may go */
		vlapic_set_cr8(v, (u8)cr8);
	}
	return 0;
}

/* HLT ends with an interrupt the vCPU can take (IF=1: the HLT has been
 * skipped, so no shadow is left) or an unblocked NMI, SDM Vol. 2A "HLT". An
 * event already queued is delivered on entry anyway. */
bool intr_can_wake(struct vcpu *v)
{
	struct vm *vm = v->vm;
	u64 tsc = vcpu_guest_tsc(v), dl = vm->next_deadline = intr_sync_due(vm, tsc);
	u32 state;

	if (vm->state != VM_RUNNING && vm->state != VM_PAUSED)
		return false;
	if (vcpu_ops->intr_state(v, &state))
		return true; /* the run path meets the failure and reports it */
	if ((state & VCPU_INTR_QUEUED) || (vlapic_nmi_pending(v) && !(state & VCPU_INTR_NMI)) ||
	    ((state & VCPU_INTR_IF) && intr_waiting(v)))
		return true;
	v->wake_at = dl == ~0ULL ? ~0ULL : ticks() + intr_tsc_to_us(vm, dl - tsc);
	return false;
}

bool intr_sleeps_for_good(struct vcpu *v)
{
	u32 state;

	if (vcpu_ops->intr_state(v, &state))
		return false;
	return !(state & (VCPU_INTR_IF | VCPU_INTR_QUEUED)) && !vlapic_nmi_pending(v);
}
