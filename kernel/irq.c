/*
 * The host timer: PIT channel 0 as a periodic rate generator on IRQ0. Nothing
 * else in the host is interrupt driven; the tick exists so that guest mode ends
 * regularly (AMD-V: INTR intercept; VT-x: external-interrupt exiting) and the
 * shell gets the CPU back. Host context, boot CPU.
 * Intel 8254 datasheet "Mode 2: Rate Generator"; 8259A "Operation Command Words".
 */
#include "kernel/irq.h"
#include "kernel/printk.h"
#include "kernel/traps.h"
#include "kernel/x86.h"

#define PIT_HZ 1193182U
#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define PIT_CMD_CH0_LOHI_MODE2 0x34 /* channel 0, lobyte/hibyte, mode 2, binary */
#define PIC1_DATA 0x21

extern void irq_timer_entry(void), irq_other_entry(void);
extern volatile u64 irq_timer_ticks;

static unsigned timer_hz;

void irq_timer_start(unsigned hz)
{
	u32 divisor;

	if (timer_hz == hz || !hz)
		return;
	divisor = PIT_HZ / hz;
	if (divisor > 0xFFFF)
		divisor = 0xFFFF;
	idt_set_handler(IRQ_TIMER_VECTOR, irq_timer_entry, 0);
	for (unsigned v = IRQ_TIMER_VECTOR + 1; v < IRQ_TIMER_VECTOR + 16; v++)
		idt_set_handler(v, irq_other_entry, 0);
	outb(PIT_CMD, PIT_CMD_CH0_LOHI_MODE2);
	outb(PIT_CH0, divisor & 0xFF);
	outb(PIT_CH0, divisor >> 8);
	outb(PIC1_DATA, inb(PIC1_DATA) & ~0x01); /* unmask IRQ0 only */
	timer_hz = hz;
	pr_debug("irq: PIT channel 0 at %u Hz on vector 0x%x", hz, IRQ_TIMER_VECTOR);
}

u64 irq_timer_count(void) { return irq_timer_ticks; }
