/*
 * The host's one interrupt source: the 8254 PIT's channel 0 on IRQ0 through the
 * legacy 8259 PIC, used by the VMM as its time-slice tick. The host still runs
 * with IF=0; the VMM opens short windows (and guest mode) in which the tick is
 * taken, so even a guest spinning with interrupts off gives the CPU back.
 * Host context, boot CPU.
 */
#ifndef AMBER_IRQ_H
#define AMBER_IRQ_H

#include "kernel/types.h"

#define IRQ_TIMER_VECTOR 0x20 /* IRQ0: kernel/traps.c remaps the master PIC to 0x20 */

/* Programs PIT channel 0 as a rate generator at `hz`, unmasks IRQ0 and installs
 * the handler (which only counts and acknowledges). Idempotent. */
void irq_timer_start(unsigned hz);
/* Timer interrupts taken so far (0 until the first one arrived). */
u64 irq_timer_count(void);
/* Lets a pending interrupt in for one instruction, then closes again. */
static inline void irq_window(void) { __asm__ volatile("sti; nop; cli" ::: "memory"); }
/* Sleeps until the next interrupt (the tick), with interrupts off again after. */
static inline void irq_wait(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

#endif
