/*
 * The host's timer interrupt: each CPU's local APIC timer, or the 8254 PIT's
 * channel 0 on IRQ0 through the legacy 8259 PIC where there is no local APIC
 * (kernel/irq.c); a one-shot the VMM arms for its next deadline. The host
 * still runs with IF=0; the VMM opens short windows (and guest mode) in which
 * the tick is taken, so even a guest spinning with interrupts off gives the
 * CPU back. Host context, any CPU.
 */
#ifndef AMBER_IRQ_H
#define AMBER_IRQ_H

#include "kernel/types.h"

#define IRQ_TIMER_VECTOR 0x20 /* IRQ0: kernel/traps.c remaps the master PIC to 0x20 */

/* Boot CPU, after smp_init: arms the first one-shot; with the PIT also
 * installs its handler (which only counts and acknowledges) and unmasks IRQ0.
 * Idempotent. */
void irq_timer_init(void);
/* The calling CPU's timer interrupts once at ticks() `at` (right away for a
 * time past; the PIT at most about 54 ms from now, and unless an interrupt it
 * was armed for earlier is still on its way). Call it before every wait. */
void irq_timer_arm(u64 at);
/* Interrupts this CPU took so far (0 until the first one arrived): the
 * PIT's, or every one of the local APIC's (its timer and the doorbell). */
u64 irq_timer_count(void);
/* Lets a pending interrupt in for one instruction, then closes again. */
static inline void irq_window(void) { __asm__ volatile("sti; nop; cli" ::: "memory"); }
/* Sleeps until the next interrupt (the tick), with interrupts off again after. */
static inline void irq_wait(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

#endif
