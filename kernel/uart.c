/*
 * 16550 UART driver for the host console (COM1 at 0x3F8) and the control channel
 * (COM2 at 0x2F8). Polled: output waits, bounded, for the transmit holding
 * register; input is read when the shell polls.
 * Register layout from the PC16550D datasheet ("Register Description").
 */
#include "kernel/console.h"
#include "kernel/x86.h"

#define UART_RBR 0	   /* receive buffer (read, DLAB=0) */
#define UART_THR 0	   /* transmit holding (write, DLAB=0) */
#define UART_DLL 0	   /* divisor latch low (DLAB=1) */
#define UART_IER 1	   /* interrupt enable (DLAB=0) */
#define UART_DLM 1	   /* divisor latch high (DLAB=1) */
#define UART_FCR 2	   /* FIFO control (write) */
#define UART_LCR 3	   /* line control; bit 7 = DLAB */
#define UART_MCR 4	   /* modem control */
#define UART_LSR 5	   /* line status */
#define UART_SCR 7	   /* scratch: no function, holds what was written */
#define UART_LSR_DR 0x01   /* data ready */
#define UART_LSR_THRE 0x20 /* transmit holding register empty */

/* Per port: COM1 and COM2 are the only ones Amber drives. */
static struct uart_port {
	bool present;
	int early_byte; /* a key that arrived before the FIFOs were enabled */
} ports[2] = { { false, -1 }, { false, -1 } };

static struct uart_port *port(u16 base) { return &ports[base == 0x2F8]; }

/* True when a UART answers at `base`: its scratch register holds two patterns
 * (PC16550D "Scratchpad Register"). An empty ISA decode reads 0xFF. */
bool uart_probe(u16 base)
{
	outb(base + UART_SCR, 0x5A);
	if (inb(base + UART_SCR) != 0x5A)
		return false;
	outb(base + UART_SCR, 0xA5);
	return inb(base + UART_SCR) == 0xA5;
}

void uart_init(u16 base)
{
	struct uart_port *pt = port(base);

	outb(base + UART_IER, 0x00);
	outb(base + UART_LCR, 0x80); /* DLAB on: program the divisor */
	outb(base + UART_DLL, 1);    /* 115200 = 1.8432 MHz / 16 / 1 */
	outb(base + UART_DLM, 0);
	outb(base + UART_LCR, 0x03); /* 8 data bits, no parity, 1 stop bit */
	/* Enabling the FIFOs resets them (PC16550D "FIFO Control Register"): keep a
	 * key that arrived while the machine booted. */
	u8 lsr = inb(base + UART_LSR);

	if (lsr != 0xFF && (lsr & UART_LSR_DR))
		pt->early_byte = inb(base + UART_RBR);
	outb(base + UART_FCR, 0xC7); /* enable and clear FIFOs, 14-byte threshold */
	outb(base + UART_MCR, 0x03); /* DTR, RTS */
	/* A missing UART reads back 0xFF from every register. */
	pt->present = inb(base + UART_LSR) != 0xFF;
}

void uart_putc(u16 base, char c)
{
	/* Bounded: a wedged or absent UART must not hang the kernel. At 115200 baud
	 * a byte takes ~87 us; 100000 polls of an I/O port are far longer. */
	if (!port(base)->present)
		return;
	for (int i = 0; i < 100000; i++)
		if (inb(base + UART_LSR) & UART_LSR_THRE)
			break;
	outb(base + UART_THR, (u8)c);
}

bool uart_tx_ready(u16 base)
{
	return port(base)->present && (inb(base + UART_LSR) & UART_LSR_THRE);
}

void uart_tx(u16 base, char c) { outb(base + UART_THR, (u8)c); }

int uart_getc(u16 base)
{
	struct uart_port *pt = port(base);

	if (pt->early_byte >= 0) {
		int c = pt->early_byte;

		pt->early_byte = -1;
		return c;
	}
	if (!pt->present || !(inb(base + UART_LSR) & UART_LSR_DR))
		return -1;
	return inb(base + UART_RBR);
}
