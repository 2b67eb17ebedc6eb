/*
 * The guest's COM1: a 16550A (divisor latch, line and modem control, FIFO
 * control with the receiver trigger levels, scratch, loopback) with its
 * interrupts on IRQ 4, gated by OUT2 as on a PC: received data at the trigger
 * level, the character timeout, THR empty, line status (overrun) and modem
 * status, reported in IIR by priority. Transmission is instant. Output is
 * collected a line at a time and printed on Amber's console as "[vmN] line";
 * a line without a newline is cut at 127 characters, so a guest cannot make
 * the host buffer grow. Input comes from `vm console`. Host context, on a
 * vCPU's exit path or the shell. PC16550D datasheet, "Register Description"
 * (Table 2 and 8.1-8.10): "Interrupt Enable Register", "Interrupt
 * Identification Register", "FIFO Control Register", "Line Status Register".
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define UART_RX 0  /* receive buffer / transmit holding; DLL when DLAB */
#define UART_IER 1 /* interrupt enable; DLM when DLAB */
#define UART_IIR 2 /* interrupt identification (read) / FIFO control (write) */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_LCR_DLAB 0x80
#define UART_IER_RDI 0x01  /* received data available (and timeout) */
#define UART_IER_THRI 0x02 /* transmitter holding register empty */
#define UART_IER_RLSI 0x04 /* receiver line status */
#define UART_IER_MSI 0x08  /* modem status */
#define UART_MCR_OUT2 0x08 /* on a PC: connects the interrupt to IRQ 4 */
#define UART_MCR_LOOP 0x10
#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_ERRORS 0x1E /* OE, PE, FE, BI: what a line status interrupt reports */
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_TIMEOUT 0x0C
#define UART_IIR_FIFO_ENABLED 0xC0
#define UART_FCR_ENABLE_FIFO 0x01
#define UART_FCR_CLEAR_RCVR 0x02
#define UART_FCR_TRIGGER(f) ((f) >> 6)
#define UART_MSR_DELTAS 0x0F /* DCTS, DDSR, TERI, DDCD */
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

struct vuart {
	u8 ier, lcr, mcr, scr, dll, dlm;
	u8 fcr; /* FIFO control as last written (IIR shows FIFOs on) */
	char line[128];
	u32 line_len;
	u8 rx[64];
	u32 rx_head, rx_tail;
	u8 thre;      /* the THR-empty interrupt is pending */
	u8 lsr_err;   /* OE, set when a byte found the receiver full */
	u8 msr_delta; /* MSR bits 3:0 */
	u8 irq;	      /* IRQ 4 as last driven */
	u64 rx_tsc;   /* guest TSC of the receiver's last activity, 0 unknown */
	/* Console input waiting for room in rx: the terminal's side of the
	 * wire, held back as hardware flow control would hold it, so a line
	 * pasted faster than the guest reads is not lost. Not device state:
	 * not in the record, empty after a restore. */
	u8 wire[1024];
	u32 wire_head, wire_tail;
};

#define LINE_MAX_CHARS (sizeof(((struct vuart *)0)->line) - 1)

static struct vuart *vuart(struct vm *vm) { return vm->dev[VDEV_UART]; }

void vuart_flush(struct vm *vm)
{
	struct vuart *u = vuart(vm);

	if (!u || !u->line_len) /* !u: a VM that failed before its devices existed */
		return;
	u->line[u->line_len] = '\0';
	printk("[vm%d] %s\n", vm->id, u->line);
	u->line_len = 0;
}

/* One byte sent by the guest. Control characters other than tab would reach
 * the operator's terminal: they are shown as '?'. */
static void uart_tx(struct vm *vm, u8 c)
{
	struct vuart *u = vuart(vm);

	if (c == '\n') {
		if (u->line_len) {
			vuart_flush(vm);
		} else {
			printk("[vm%d] \n", vm->id);
		}
		return;
	}
	if (c == '\r')
		return;
	u->line[u->line_len++] = (c >= 0x20 && c < 0x7F) || c == '\t' ? (char)c : '?';
	if (u->line_len >= LINE_MAX_CHARS)
		vuart_flush(vm);
}

static bool rx_empty(const struct vuart *u) { return u->rx_head == u->rx_tail; }

static u32 rx_count(const struct vuart *u)
{
	return (u->rx_head + sizeof(u->rx) - u->rx_tail) % sizeof(u->rx);
}

static bool fifo_on(const struct vuart *u) { return u->fcr & UART_FCR_ENABLE_FIFO; }

/* The receiver's trigger level ("FIFO Control Register", bits 7:6): 1, 4, 8
 * or 14 bytes; 1 without FIFOs (16450 mode). */
static u32 rx_trigger(const struct vuart *u)
{
	static const u8 level[4] = { 1, 4, 8, 14 };

	return fifo_on(u) ? level[UART_FCR_TRIGGER(u->fcr)] : 1;
}

/* Four character times at the programmed rate: 10 bits each at 115200 /
 * divisor baud ("FIFO Interrupt Mode Operation", character timeout). */
static u64 rx_timeout_ticks(struct vm *vm, const struct vuart *u)
{
	u32 divisor = (u32)u->dlm << 8 | u->dll;

	return vdev_scale(40ULL * (divisor ? divisor : 1), vdev_tsc_hz(vm), 115200);
}

/* True when the character timeout condition holds at guest TSC tsc: FIFO
 * mode, bytes below the trigger level, none received or read for four
 * character times. */
static bool rx_timed_out(struct vm *vm, const struct vuart *u, u64 tsc)
{
	u32 n = rx_count(u);

	return fifo_on(u) && n && n < rx_trigger(u) && u->rx_tsc &&
	       tsc >= u->rx_tsc + rx_timeout_ticks(vm, u);
}

/* The interrupt IIR reports, by priority ("Interrupt Identification
 * Register", Table 4): line status, received data or timeout, THR empty,
 * modem status; UART_IIR_NO_INT when none is enabled and pending. */
static u8 uart_pending(struct vm *vm, const struct vuart *u, u64 tsc)
{
	if ((u->ier & UART_IER_RLSI) && (u->lsr_err & UART_LSR_ERRORS))
		return UART_IIR_RLSI;
	if (u->ier & UART_IER_RDI) {
		if (rx_count(u) >= rx_trigger(u))
			return UART_IIR_RDI;
		if (rx_timed_out(vm, u, tsc))
			return UART_IIR_TIMEOUT;
	}
	if ((u->ier & UART_IER_THRI) && u->thre)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_MSI) && u->msr_delta)
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* IRQ 4 follows the chip's INTR through OUT2, which loopback forces off
 * ("Modem Control Register", bit 4). tsc 0: the guest's clock is not at
 * hand (the shell); the timeout is judged at the next look. */
static void uart_sync(struct vm *vm, void *st, u64 tsc)
{
	struct vuart *u = st;
	u8 on;

	if (!u->rx_tsc && !rx_empty(u) && tsc)
		u->rx_tsc = tsc; /* input from the shell: its clock starts now */
	on = uart_pending(vm, u, tsc) != UART_IIR_NO_INT && (u->mcr & UART_MCR_OUT2) &&
	     !(u->mcr & UART_MCR_LOOP);
	if (on != u->irq) {
		u->irq = on;
		vm_set_irq(vm, PLAT_IRQ_UART, on);
	}
}

/* When the character timeout will fire, if it can; 0 (now) when the
 * receiver's clock has not started, so that sync() starts it. */
static u64 uart_deadline(struct vm *vm, void *st)
{
	struct vuart *u = st;
	u32 n = rx_count(u);

	if (u->irq || !(u->ier & UART_IER_RDI) || !fifo_on(u) || !n || n >= rx_trigger(u))
		return ~0ULL;
	if (!u->rx_tsc)
		return 0;
	return u->rx_tsc + rx_timeout_ticks(vm, u);
}

/* The guest TSC when it matters (a byte waits in FIFO mode), else 0: most
 * accesses need no backend call. */
static u64 uart_now(struct vcpu *v, const struct vuart *u)
{
	return fifo_on(u) && !rx_empty(u) ? vcpu_guest_tsc(v) : 0;
}

bool vuart_input(struct vm *vm, u8 c)
{
	struct vuart *u = vuart(vm);
	u32 next = (u->rx_head + 1) % sizeof(u->rx);

	if (next == u->rx_tail) {
		u->lsr_err |= UART_LSR_OE; /* the byte is lost: overrun */
		uart_sync(vm, u, 0);
		return false;
	}
	u->rx[u->rx_head] = c;
	u->rx_head = next;
	u->rx_tsc = 0; /* restarted at the next look with a guest clock */
	uart_sync(vm, u, 0);
	/* Below the trigger level IRQ 4 stays low, but the character timeout
	 * now has a deadline: a vCPU asleep in HLT must look again, or a short
	 * line typed at an idle guest waits for its next timer (for ever in a
	 * tickless Linux). */
	vm_kick(vm);
	return true;
}

/* Moves console input from the wire into the receiver while it has room. */
static void wire_pump(struct vm *vm, struct vuart *u)
{
	while (u->wire_tail != u->wire_head && (u->rx_head + 1) % sizeof(u->rx) != u->rx_tail) {
		vuart_input(vm, u->wire[u->wire_tail]);
		u->wire_tail = (u->wire_tail + 1) % sizeof(u->wire);
	}
}

bool vuart_console_input(struct vm *vm, u8 c)
{
	struct vuart *u = vuart(vm);
	u32 next = (u->wire_head + 1) % sizeof(u->wire);

	if (next == u->wire_tail)
		return false; /* 1 KiB typed ahead of the guest: dropped */
	u->wire[u->wire_head] = c;
	u->wire_head = next;
	wire_pump(vm, u);
	return true;
}

static u8 rx_pop(struct vuart *u, u64 tsc)
{
	u8 c;

	if (rx_empty(u))
		return 0;
	c = u->rx[u->rx_tail];
	u->rx_tail = (u->rx_tail + 1) % sizeof(u->rx);
	u->rx_tsc = tsc;
	return c;
}

/* MSR bits 7:4 as the modem lines show them; in loopback the outputs of MCR
 * (8.6: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD). */
static u8 modem_status(u8 mcr)
{
	if (mcr & UART_MCR_LOOP)
		return ((mcr & 1) ? UART_MSR_DSR : 0) | ((mcr & 2) ? UART_MSR_CTS : 0) |
		       ((mcr & 4) ? UART_MSR_RI : 0) | ((mcr & 8) ? UART_MSR_DCD : 0);
	return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
}

/* The delta bits a change of the modem lines sets: DCTS, DDSR, TERI (RI
 * falling only), DDCD. */
static u8 modem_deltas(u8 before, u8 after)
{
	u8 changed = before ^ after, d = 0;

	if (changed & UART_MSR_CTS)
		d |= 0x01;
	if (changed & UART_MSR_DSR)
		d |= 0x02;
	if ((before & UART_MSR_RI) && !(after & UART_MSR_RI))
		d |= 0x04;
	if (changed & UART_MSR_DCD)
		d |= 0x08;
	return d;
}

static u32 vuart_read(struct vcpu *v, struct vuart *u, u16 offset)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	u64 tsc = uart_now(v, u);
	u8 val;

	switch (offset) {
	case UART_RX:
		if (dlab)
			return u->dll;
		val = rx_pop(u, tsc);
		wire_pump(v->vm, u);
		return val;
	case UART_IER:
		return dlab ? u->dlm : u->ier;
	case UART_IIR:
		val = uart_pending(v->vm, u, tsc);
		if (val == UART_IIR_THRI)
			u->thre = 0; /* reading IIR while it names THRE clears it */
		return val | (fifo_on(u) ? UART_IIR_FIFO_ENABLED : 0);
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		/* Transmission is instant: the holding register is always empty.
		 * Reading LSR clears the error bits. */
		val = UART_LSR_THRE | UART_LSR_TEMT | (rx_empty(u) ? 0 : UART_LSR_DR) | u->lsr_err;
		u->lsr_err = 0;
		return val;
	case UART_MSR:
		val = modem_status(u->mcr) | u->msr_delta;
		u->msr_delta = 0;
		return val;
	case UART_SCR:
		return u->scr;
	default:
		return 0xFF;
	}
}

static void vuart_write(struct vcpu *v, struct vuart *u, u16 offset, u8 val)
{
	struct vm *vm = v->vm;
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (offset) {
	case UART_RX:
		if (dlab) {
			u->dll = val;
			break;
		}
		if (u->mcr & UART_MCR_LOOP)
			vuart_input(vm, val); /* loopback: what is sent is received */
		else
			uart_tx(vm, val);
		u->thre = 1; /* sent at once: the holding register is empty again */
		break;
	case UART_IER:
		if (dlab) {
			u->dlm = val;
			break;
		}
		/* Enabling THRE while the register is empty interrupts at once
		 * (what drivers' THRE tests rely on). */
		if ((val & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
			u->thre = 1;
		u->ier = val & 0x0F;
		break;
	case UART_IIR:
		u->fcr = val & 0xC9; /* trigger, DMA mode, enable; clear bits act once */
		if (val & UART_FCR_CLEAR_RCVR) {
			u->rx_head = u->rx_tail = 0;
			u->rx_tsc = 0;
		}
		break;
	case UART_LCR:
		u->lcr = val;
		break;
	case UART_MCR:
		u->msr_delta |= modem_deltas(modem_status(u->mcr), modem_status(val & 0x1F));
		u->mcr = val & 0x1F;
		break;
	case UART_SCR:
		u->scr = val;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

static bool uart_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vuart *u = st;

	if (in)
		*val = vuart_read(v, u, port - VUART_BASE);
	else
		vuart_write(v, u, port - VUART_BASE, (u8)*val);
	uart_sync(v->vm, u, uart_now(v, u));
	return true;
}

static void uart_reset(struct vm *vm, void *st) {}

/* The record is the UART part of version 1 images' DEVICES section; version
 * 2 added the interrupt state at 0xD8 (a version 1 UART had none pending). */
static int uart_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vuart *u = st;

	REC(r, 0x00, u->ier);
	REC(r, 0x01, u->lcr);
	REC(r, 0x02, u->mcr);
	REC(r, 0x03, u->scr);
	REC(r, 0x04, u->dll);
	REC(r, 0x05, u->dlm);
	REC(r, 0x06, u->fcr);
	REC(r, 0x08, u->line_len);
	REC(r, 0x0C, u->rx_head);
	REC(r, 0x10, u->rx_tail);
	REC_BYTES(r, 0x18, u->line);
	REC_BYTES(r, 0x98, u->rx);
	if (version >= 2) {
		REC(r, 0xD8, u->thre);
		REC(r, 0xD9, u->lsr_err);
		REC(r, 0xDA, u->msr_delta);
		REC(r, 0xDB, u->irq);
		REC(r, 0xE0, u->rx_tsc);
	} else if (!r->enc) {
		u->thre = u->lsr_err = u->msr_delta = u->irq = 0;
		u->rx_tsc = 0;
	}
	if (r->enc)
		return 0;
	if (u->line_len > LINE_MAX_CHARS || u->rx_head >= sizeof(u->rx) ||
	    u->rx_tail >= sizeof(u->rx)) {
		*why = "16550 buffer positions past the buffers";
		return -EINVAL;
	}
	if (u->thre > 1 || (u->lsr_err & ~UART_LSR_ERRORS) || (u->msr_delta & ~UART_MSR_DELTAS) ||
	    u->irq > 1) {
		*why = "16550 interrupt state no chip can hold";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_uart = {
	.id = VDEV_UART,
	.version = 2,
	.record_size = 0xE8,
	.state_size = sizeof(struct vuart),
	.ports = { { VUART_BASE, 8 } },
	.reset = uart_reset,
	.io = uart_io,
	.sync = uart_sync,
	.deadline = uart_deadline,
	.state = uart_state,
};
