/*
 * The host's one interrupt source: the 8254 PIT's channel 0 on IRQ0 through the
 * legacy 8259 PIC, a one-shot the VMM arms for its next deadline. The host still runs
 * with IF=0; the VMM opens short windows (and guest mode) in which the tick is
 * taken, so even a guest spinning with interrupts off gives the CPU back.
 * Host context, boot CPU.
 */
#ifndef AMBER_IRQ_H
#define AMBER_IRQ_H

#include "kernel/types.h"

#define IRQ_TIMER_VECTOR 0x20 /* IRQ0: kernel/traps.c remaps the master PIC to 0x20 */

/* Installs the handler (which only counts and acknowledges), arms the first
 * one-shot and unmasks IRQ0. Idempotent. */
void irq_timer_init(void);
/* The timer interrupts once at ticks() `at` (or at most about 54 ms from now,
 * or right away for a time past), unless an interrupt armed for earlier is
 * still on its way. Cheap when nothing changes: call it before every wait. */
void irq_timer_arm(u64 at);
/* Timer interrupts taken so far (0 until the first one arrived). */
u64 irq_timer_count(void);
/* Lets a pending interrupt in for one instruction, then closes again. */
static inline void irq_window(void) { __asm__ volatile("sti; nop; cli" ::: "memory"); }
/* Sleeps until the next interrupt (the tick), with interrupts off again after. */
static inline void irq_wait(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

#endif
