/*
 * The guest's COM1: a 16550A with enough of its registers (divisor latch, line
 * and modem control, FIFO control, scratch, loopback) that a normal driver's
 * probe and polled I/O work. Output is collected a line at a time and printed
 * on Amber's console as "[vmN] line"; a line without a newline is cut at 127
 * characters, so a guest cannot make the host buffer grow. Input comes from
 * `vm console`. No interrupts. Host context, on a vCPU's exit path or the shell.
 * PC16550D datasheet, "Register Description" (Table 2 and 8.1-8.10).
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
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
#define UART_MCR_LOOP 0x10
#define UART_LSR_DR 0x01
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NO_INT 0x01
#define UART_IIR_FIFO_ENABLED 0xC0
#define UART_FCR_ENABLE_FIFO 0x01
#define UART_FCR_CLEAR_RCVR 0x02
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

bool vuart_input(struct vm *vm, u8 c)
{
	struct vuart *u = vuart(vm);
	u32 next = (u->rx_head + 1) % sizeof(u->rx);

	if (next == u->rx_tail)
		return false;
	u->rx[u->rx_head] = c;
	u->rx_head = next;
	return true;
}

static u8 rx_pop(struct vuart *u)
{
	u8 c;

	if (rx_empty(u))
		return 0;
	c = u->rx[u->rx_tail];
	u->rx_tail = (u->rx_tail + 1) % sizeof(u->rx);
	return c;
}

static u32 vuart_read(struct vm *vm, u16 offset)
{
	struct vuart *u = vuart(vm);
	bool dlab = u->lcr & UART_LCR_DLAB;
	u8 m = u->mcr;

	switch (offset) {
	case UART_RX:
		return dlab ? u->dll : rx_pop(u);
	case UART_IER:
		return dlab ? u->dlm : u->ier;
	case UART_IIR:
		return UART_IIR_NO_INT |
		       ((u->fcr & UART_FCR_ENABLE_FIFO) ? UART_IIR_FIFO_ENABLED : 0);
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		/* Transmission is instant: the holding register is always empty. */
		return UART_LSR_THRE | UART_LSR_TEMT | (rx_empty(u) ? 0 : UART_LSR_DR);
	case UART_MSR:
		if (m & UART_MCR_LOOP) /* 8.6: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
			return ((m & 1) ? UART_MSR_DSR : 0) | ((m & 2) ? UART_MSR_CTS : 0) |
			       ((m & 4) ? UART_MSR_RI : 0) | ((m & 8) ? UART_MSR_DCD : 0);
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	case UART_SCR:
		return u->scr;
	default:
		return 0xFF;
	}
}

static void vuart_write(struct vm *vm, u16 offset, u8 val)
{
	struct vuart *u = vuart(vm);
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (offset) {
	case UART_RX:
		if (dlab)
			u->dll = val;
		else if (u->mcr & UART_MCR_LOOP)
			vuart_input(vm, val); /* loopback: what is sent is received */
		else
			uart_tx(vm, val);
		break;
	case UART_IER:
		if (dlab)
			u->dlm = val;
		else
			u->ier = val & 0x0F;
		break;
	case UART_IIR:
		u->fcr = val;
		if (val & UART_FCR_CLEAR_RCVR)
			u->rx_head = u->rx_tail = 0;
		break;
	case UART_LCR:
		u->lcr = val;
		break;
	case UART_MCR:
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
	if (in)
		*val = vuart_read(v->vm, port - VUART_BASE);
	else
		vuart_write(v->vm, port - VUART_BASE, (u8)*val);
	return true;
}

static void uart_reset(struct vm *vm, void *st) {}

/* The record is the UART part of version 1 images' DEVICES section. */
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
	if (!r->enc && (u->line_len > LINE_MAX_CHARS || u->rx_head >= sizeof(u->rx) ||
			u->rx_tail >= sizeof(u->rx))) {
		*why = "16550 buffer positions past the buffers";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_uart = {
	.id = VDEV_UART,
	.version = 1,
	.record_size = 0xD8,
	.state_size = sizeof(struct vuart),
	.ports = { { VUART_BASE, 8 } },
	.reset = uart_reset,
	.io = uart_io,
	.state = uart_state,
};
