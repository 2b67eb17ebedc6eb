/*
 * printk and the kernel message ring. Every pr_* message is stamped with the
 * time since boot and kept in a fixed ring (oldest lines drop out) that the
 * shell's `log` prints. Host context, any CPU, any time after console_init().
 * console_lock makes each call's output one piece; a line one CPU left open
 * (a prompt, a table row printed in parts) is not cut into by another CPU's
 * output unless it stays open longer than CONSOLE_LINE_WAIT_US, in which case
 * the other CPU starts a new line first.
 */
#include "kernel/printk.h"
#include "kernel/console.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/smp.h"
#include "kernel/spinlock.h"
#include "kernel/time.h"
#include "kernel/x86.h"

#define LOG_RING_SIZE 16384

#define CONSOLE_LINE_WAIT_US 20000

static char log_ring[LOG_RING_SIZE];
static size_t log_head; /* total bytes ever written; index = head % size */

/* console_lock: the consoles (console_write and what is behind it), the
 * message ring, and which CPU has a line open. Taken after every other
 * lock, never in an interrupt or NMI handler. */
static spinlock_t console_lock = SPINLOCK_INIT;
static int line_open_cpu = -1; /* the CPU whose last output did not end a line */

/* Takes console_lock for CPU `me`, waiting a little for another CPU's open
 * line to end, and ending it for that CPU if it does not. The shell's prompt,
 * open while the boot CPU gives guests their time, is guarded: a guest's line
 * from another CPU erases it at once (the shell draws it again after). */
static void console_begin(int me)
{
	u64 dl = 0;

	for (;;) {
		spin_lock(&console_lock);
		if (line_open_cpu < 0 || line_open_cpu == me || console_line_guarded())
			return;
		if (!dl)
			dl = deadline_after_us(CONSOLE_LINE_WAIT_US);
		else if (deadline_passed(dl))
			break;
		spin_unlock(&console_lock);
		cpu_relax();
	}
	console_write("\n", 1);
	line_open_cpu = -1;
}

static void console_end(int me, const char *s, size_t n)
{
	if (n)
		line_open_cpu = s[n - 1] == '\n' ? -1 : me;
	spin_unlock(&console_lock);
}

void printk_write(const char *s, size_t n)
{
	int me = this_cpu()->index;

	console_begin(me);
	console_write(s, n);
	console_end(me, s, n);
}

void printk_panic_unlock(void)
{
	spin_lock_bust(&console_lock);
	line_open_cpu = -1;
}

static void log_append(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		log_ring[(log_head + i) % LOG_RING_SIZE] = s[i];
	log_head += n;
}

void vprintk(const char *fmt, va_list ap)
{
	char buf[512];
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if ((size_t)n < sizeof(buf)) {
		printk_write(buf, n);
	} else {
		/* Longer than the stack buffer (a command's help text): format it
		 * again into the heap, or print what fits if there is no heap yet. */
		char *big = kmalloc(n + 1);

		if (big) {
			vsnprintf(big, n + 1, fmt, again);
			printk_write(big, n);
			kfree(big);
		} else {
			printk_write(buf, sizeof(buf) - 1);
		}
	}
	va_end(again);
}

void printk(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintk(fmt, ap);
	va_end(ap);
}

static void vlog(const char *level, bool print, const char *fmt, va_list ap)
{
	char buf[512];
	int n, stamp, pre, me;
	u64 t = ticks();

	stamp = snprintf(buf, sizeof(buf), "[%5lu.%06lu] ", t / TICKS_PER_SEC, t % TICKS_PER_SEC);
	pre = stamp + snprintf(buf + stamp, sizeof(buf) - stamp, "%s", level);
	n = pre + vsnprintf(buf + pre, sizeof(buf) - pre, fmt, ap);
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (n && buf[n - 1] != '\n' && (size_t)n < sizeof(buf) - 1) {
		buf[n++] = '\n';
		buf[n] = '\0';
	}
	me = this_cpu()->index;
	console_begin(me);
	log_append(buf, n);
	if (print) {
		console_write(buf + stamp, n - stamp); /* the console shows it without the stamp */
		console_end(me, buf + stamp, n - stamp);
	} else {
		spin_unlock(&console_lock);
	}
}

#define DEFINE_LOG(name, level, print) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		vlog(level, print, fmt, ap); \
		va_end(ap); \
	}
DEFINE_LOG(pr_info, "", true)
DEFINE_LOG(pr_warn, "warning: ", true)
DEFINE_LOG(pr_err, "error: ", true)
DEFINE_LOG(pr_debug, "", false)

void log_dump(void (*emit)(const char *line))
{
	size_t start = log_head > LOG_RING_SIZE ? log_head - LOG_RING_SIZE : 0;
	char line[256];
	size_t n = 0;
	bool skip_partial = start > 0; /* the oldest line may be cut: drop it */

	for (size_t i = start; i < log_head; i++) {
		char c = log_ring[i % LOG_RING_SIZE];

		if (c == '\n') {
			line[n] = '\0';
			if (!skip_partial)
				emit(line);
			skip_partial = false;
			n = 0;
		} else if (n < sizeof(line) - 1) {
			line[n++] = c;
		}
	}
}

void panic(const char *fmt, ...)
{
	va_list ap;

	cli();
	smp_panic_stop(); /* every other CPU halted before anything is printed */
	printk("\n*** Amber panic on CPU %d: ", this_cpu()->index);
	va_start(ap, fmt);
	vprintk(fmt, ap);
	va_end(ap);
	printk("\n*** System halted.\n");
	for (;;)
		hlt();
}
