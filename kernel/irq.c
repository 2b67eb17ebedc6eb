/*
 * The host timer: PIT channel 0 as a one-shot (mode 0) on IRQ0, armed for the
 * next moment the VMM needs the CPU back: the end of a guest's slice, a guest
 * device's deadline, the shell's next look at the console. Nothing else in
 * the host is interrupt driven; the interrupt ends guest mode (AMD-V: INTR
 * intercept; VT-x: external-interrupt exiting) or an idle HLT. Between
 * deadlines an idle host sleeps. Host context, boot CPU; on an AP the same
 * calls drive its local APIC timer (kernel/apic.c) instead.
 * Intel 8254 datasheet "Mode 0: Interrupt on Terminal Count"; 8259A
 * "Operation Command Words".
 */
#include "kernel/irq.h"
#include "kernel/apic.h"
#include "kernel/smp.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/traps.h"
#include "kernel/x86.h"

#define PIT_HZ 1193182U
#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define PIT_CMD_CH0_LOHI_MODE0 0x30 /* channel 0, lobyte/hibyte, mode 0, binary */
#define PIC1_DATA 0x21

extern void irq_timer_entry(void), irq_other_entry(void);
extern volatile u64 irq_timer_ticks;

static bool timer_ready, timer_armed;
static u64 armed_at;	/* ticks() when the armed count runs out */
static u64 armed_count; /* irq_timer_ticks when it was armed */

void irq_timer_init(void)
{
	if (timer_ready)
		return;
	idt_set_handler(IRQ_TIMER_VECTOR, irq_timer_entry, 0);
	for (unsigned v = IRQ_TIMER_VECTOR + 1; v < IRQ_TIMER_VECTOR + 16; v++)
		idt_set_handler(v, irq_other_entry, 0);
	timer_ready = true;
	irq_timer_arm(ticks() + 1000);
	outb(PIC1_DATA, inb(PIC1_DATA) & ~0x01); /* unmask IRQ0 only */
	pr_debug("irq: PIT channel 0 one-shot on vector 0x%x", IRQ_TIMER_VECTOR);
}

/* A count written after the mode 0 control word starts counting at once;
 * OUT (IRQ0) rises when it reaches zero, once. The count is rounded up, so
 * the interrupt never comes before `at`. */
void irq_timer_arm(u64 at)
{
	u64 now, clocks;

	if (smp_this_index() != 0) {
		apic_timer_at(at); /* an AP: its own LAPIC timer */
		return;
	}
	if (!timer_ready)
		return;
	if (timer_armed && armed_count == irq_timer_ticks && armed_at <= at)
		return; /* an earlier interrupt is on its way */
	now = ticks();
	clocks = at > now ? ((at - now) * PIT_HZ + TICKS_PER_SEC - 1) / TICKS_PER_SEC : 1;
	if (clocks < 2)
		clocks = 2;
	if (clocks > 0xFFFF)
		clocks = 0xFFFF;
	outb(PIT_CMD, PIT_CMD_CH0_LOHI_MODE0);
	outb(PIT_CH0, clocks & 0xFF);
	outb(PIT_CH0, clocks >> 8);
	timer_armed = true;
	armed_count = irq_timer_ticks;
	armed_at = now + clocks * TICKS_PER_SEC / PIT_HZ;
}

/* On an AP: every interrupt it took (its timer and the doorbell alike), which
 * is what the caller asks: has the CPU been interrupted since. */
u64 irq_timer_count(void)
{
	int cpu = smp_this_index();

	return cpu ? __atomic_load_n(&host_cpus[cpu].ipis, __ATOMIC_RELAXED) : irq_timer_ticks;
}
