/*
 * The control channel on COM2: requests are shell command lines, run through
 * the shell's own command table with their output captured; answers and
 * events go back as one JSON object per line. COM1 and the shell are
 * untouched when no UART answers at 0x2F8. Host context, the shell's loop.
 */
#include "kernel/ctl.h"
#include "kernel/bootinfo.h"
#include "kernel/console.h"
#include "kernel/ctl_proto.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "kernel/version.h"
#include "kernel/x86.h"
#include "vmm/vmm.h"

#define COM2 0x2F8
#define CTL_OUTPUT_MAX (32 * 1024) /* a command's output kept for its answer */
#define CTL_DATA_MAX (16 * 1024)
#define CTL_EVENT_MAX 1024
#define CTL_SCRIPT_CMD_MAX 256

static bool ctl_up;
static struct ctl_line rx;

/* The command being run (from any source) and what it printed. */
static const char *running; /* its line, NULL when none runs */
static char running_copy[CTL_LINE_MAX];
static char output[CTL_OUTPUT_MAX];
static size_t output_len;
static bool output_cut;
static char data_buf[CTL_DATA_MAX];
static struct json data;

/* A guest line being assembled from console output during guest time. */
static char tap_buf[256];
static size_t tap_len;

/* The VM states last reported. */
static struct {
	struct vm *vm;
	enum vm_state state;
} seen[VM_MAX + 1];

/* A program that stops reading must not stall Amber, and must not get a
 * corrupted line either: a byte that cannot go out within CTL_TX_WAIT_US ends
 * the line there ("\n" once the UART takes bytes again) and everything until
 * then is dropped; the next message is preceded by a "lost" event. */
#define CTL_TX_WAIT_US 20000
static bool tx_stalled;
static u64 tx_lost; /* messages dropped while stalled */

/* An answer is different: the program that sent the request waits for it
 * and is reading (or is about to: it may be working through the events
 * that piled up while it was not), so an answer waits for the UART up to
 * CTL_ANSWER_WAIT_US in all, stalled or not, before it too is dropped. A
 * program that never reads again still holds Amber no longer than that. */
#define CTL_ANSWER_WAIT_US 2000000
static u64 answer_dl; /* while an answer goes out: its deadline; else 0 */

static void answer_begin(void) { answer_dl = deadline_after_us(CTL_ANSWER_WAIT_US); }

static void answer_end(void) { answer_dl = 0; }

static void send(const char *s, size_t n)
{
	for (size_t i = 0; i < n && !tx_stalled; i++) {
		u64 dl = answer_dl ? answer_dl : deadline_after_us(CTL_TX_WAIT_US);

		while (!uart_tx_ready(COM2)) {
			if (deadline_passed(dl)) {
				tx_stalled = true;
				return;
			}
			cpu_relax();
		}
		uart_tx(COM2, s[i]);
	}
}

static void send_lost_event(void);

/* Called before each message: while stalled, drops it (counted); when the
 * UART drains again, ends the cut line and reports the loss first. */
static bool send_begin(void)
{
	if (!tx_stalled)
		return true;
	while (answer_dl && !uart_tx_ready(COM2) && !deadline_passed(answer_dl))
		cpu_relax();
	if (!uart_tx_ready(COM2)) {
		tx_lost++;
		return false;
	}
	tx_stalled = false;
	send("\n", 1);
	send_lost_event();
	return !tx_stalled;
}

static void send_str(const char *s) { send(s, strlen(s)); }

static void send_escaped(const char *s, size_t n)
{
	char e[7];

	for (size_t i = 0; i < n; i++)
		send(e, json_escape_byte((u8)s[i], e));
}

/* Sends a finished one-line JSON object. An object that did not fit is
 * Amber's own sizing bug; it is replaced by an error rather than cut. */
static void send_json(struct json *j)
{
	if (!send_begin())
		return;
	if (j->overflow) {
		send_str("{\"status\":\"error\",\"error\":\"E2BIG\",\"message\":\"error: answer "
			 "too large for the channel\"}\n");
		return;
	}
	send(j->buf, j->len);
	send("\n", 1);
}

static void send_lost_event(void)
{
	char buf[96];
	struct json j;

	json_init(&j, buf, sizeof(buf));
	json_obj_begin(&j, NULL);
	json_str(&j, "event", "lost");
	json_u64(&j, "messages", tx_lost + 1); /* the one cut short too */
	json_obj_end(&j);
	tx_lost = 0;
	send(j.buf, j.len);
	send("\n", 1);
}

/* Answers a request that was not run: the same shape as any answer. */
static void answer_refused(const struct ctl_req *r, int err, const char *fmt, ...)
{
	char buf[CTL_EVENT_MAX], msg[256];
	struct json j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_init(&j, buf, sizeof(buf));
	json_obj_begin(&j, NULL);
	if (r && r->has_id)
		json_u64(&j, "id", r->id);
	json_str(&j, "status", "error");
	json_str(&j, "error", errno_name(err));
	json_str(&j, "message", msg);
	json_null(&j, "data");
	json_str(&j, "output", "");
	json_obj_end(&j);
	answer_begin();
	send_json(&j);
	answer_end();
}

static void capture(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			/* A progress bar redraws its line: keep only the last drawing,
			 * as the terminal shows it. */
			while (output_len && output[output_len - 1] != '\n')
				output_len--;
			continue;
		}
		if (output_len < sizeof(output))
			output[output_len++] = s[i];
		else
			output_cut = true;
	}
}

/* Where ctl_summary_next() marked the summary line in `output`, if it did. */
static size_t summary_at;
static bool summary_set;

void ctl_summary_next(void)
{
	summary_at = output_len;
	summary_set = running != NULL;
}

/* An error message wrapped at 80 columns (shell_error) continues on the
 * lines below it that begin with two spaces: the message is all of them,
 * joined by single spaces, in `joined`. */
static char joined[1024];
static void join_continued(const char **start, size_t *len, size_t end)
{
	size_t n = MIN(*len, sizeof(joined) - 1), b;

	memcpy(joined, *start, n);
	for (b = end + 1; b + 2 < output_len && !strncmp(output + b, "  ", 2); b = end + 1) {
		for (end = b; end < output_len && output[end] != '\n'; end++)
			;
		while (b < end && output[b] == ' ')
			b++;
		if (n + 1 + (end - b) >= sizeof(joined))
			break;
		joined[n++] = ' ';
		memcpy(joined + n, output + b, end - b);
		n += end - b;
	}
	*start = joined;
	*len = n;
}

/* The line of the output that says what happened: after an error the
 * shell's "error: " line (shell_error), else the first line that is not a
 * usage line; after success the line marked as the summary, else the last
 * non-empty line. */
static void message_line(bool error, const char **start, size_t *len)
{
	size_t end = output_len, b;

	if (!error && summary_set && summary_at < output_len) {
		for (end = summary_at; end < output_len && output[end] != '\n'; end++)
			;
		*start = output + summary_at;
		*len = end - summary_at;
		return;
	}

	for (int pass = 0; error && pass < 2; pass++) {
		for (b = 0; b < output_len; b = end + 1) {
			for (end = b; end < output_len && output[end] != '\n'; end++)
				;
			if (end > b && (pass ? strncmp(output + b, "usage: ", 7) != 0 :
					       strncmp(output + b, "error: ", 7) == 0)) {
				*start = output + b;
				*len = end - b;
				if (!pass)
					join_continued(start, len, end);
				return;
			}
		}
		end = output_len;
	}
	while (end && output[end - 1] == '\n')
		end--;
	b = end;
	while (b && output[b - 1] != '\n')
		b--;
	*start = output + b;
	*len = end - b;
}

struct json *ctl_data(void) { return running && ctl_up && !data.overflow ? &data : NULL; }

/* Runs one command line with its output captured (only captured when
 * `exclusive`, else also shown on the console); returns shell_exec's result. */
static int run_captured(char *line, bool exclusive)
{
	int ret;

	/* shell_exec splits `line` in place; the answer names the line whole. */
	strlcpy(running_copy, line, sizeof(running_copy));
	running = running_copy;
	output_len = 0;
	output_cut = false;
	summary_set = false;
	json_init(&data, data_buf, sizeof(data_buf));
	json_obj_begin(&data, NULL);
	console_set_capture(capture, exclusive);
	ret = shell_exec(line);
	console_set_capture(NULL, false);
	json_obj_end(&data);
	running = NULL;
	return ret;
}

/* Writes the members every answer and "command" event share, after the
 * caller's opening ones; ends the line. */
static void send_result(struct json *head, const char *cmd, int ret)
{
	const char *msg;
	size_t msg_len;

	message_line(ret != 0, &msg, &msg_len);
	json_str(head, "status", ret ? "error" : "ok");
	if (ret)
		json_str(head, "error", errno_name(ret));
	json_str(head, "command", cmd);
	json_strn(head, "message", msg, msg_len);
	json_bool(head, "output_cut", output_cut);
	if (head->overflow) {
		send_json(head);
		return;
	}
	if (!send_begin())
		return;
	send(head->buf, head->len);
	send_str(",\"data\":");
	if (data.overflow)
		send_str("null");
	else
		send(data.buf, data.len);
	send_str(",\"output\":\"");
	send_escaped(output, output_len);
	send_str("\"}\n");
}

/* True when the command line's first two words are `a` and `b`. */
static bool words_are(const char *p, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	while (*p == ' ')
		p++;
	if (strncmp(p, a, na) != 0 || p[na] != ' ')
		return false;
	for (p += na; *p == ' '; p++)
		;
	return strncmp(p, b, nb) == 0 && (p[nb] == ' ' || p[nb] == '\0');
}

/* Runs one request line from the channel and answers it. */
static void ctl_request(char *line)
{
	static char head_buf[CTL_LINE_MAX * 6 + 256];
	struct json head;
	struct ctl_req r;
	int ret;

	if (ctl_parse_request(line, &r)) {
		answer_refused(NULL, -EINVAL,
			       "error: a request id is '#' and 1-%d digits, then a space",
			       CTL_ID_DIGITS);
		return;
	}
	if (!*r.cmd) {
		answer_refused(&r, -EINVAL, "error: no command after the request id");
		return;
	}
	if (r.cmd[0] == '{' || r.cmd[0] == '[') {
		answer_refused(&r, -EINVAL,
			       "error: a request is a shell command line such as 'vm list', "
			       "not JSON");
		return;
	}
	if (words_are(r.cmd, "vm", "console")) {
		answer_refused(&r, -EPERM,
			       "error: vm console: needs a terminal; guest lines come as "
			       "output events");
		return;
	}
	ret = run_captured((char *)r.cmd, true);
	json_init(&head, head_buf, sizeof(head_buf));
	json_obj_begin(&head, NULL);
	if (r.has_id)
		json_u64(&head, "id", r.id);
	answer_begin();
	send_result(&head, running_copy, ret);
	answer_end();
}

/* Answers a finished line that cannot run now or at all. */
static void refuse_line(enum ctl_feed f)
{
	if (f == CTL_TOO_LONG)
		answer_refused(NULL, -E2BIG,
			       "error: line too long (%lu bytes; at most %d characters); "
			       "ignored",
			       rx.total, CTL_LINE_MAX - 1);
	else if (f == CTL_GARBAGE)
		answer_refused(NULL, -EINVAL, "error: line held %u non-text byte(s); ignored",
			       rx.garbage);
}

static void send_event_vm(const char *name, int id, struct vm *vm)
{
	char buf[CTL_EVENT_MAX];
	struct json j;

	json_init(&j, buf, sizeof(buf));
	json_obj_begin(&j, NULL);
	json_str(&j, "event", name);
	json_u64(&j, "vm", (u64)id);
	if (vm) {
		json_str(&j, "state", vm_state_name(vm->state));
		if (vm->state == VM_EXITED)
			json_s64(&j, "code", vm->exit_code);
		if (vm->state == VM_STOPPED)
			json_str(&j, "reason", vm->stop_reason);
	}
	json_obj_end(&j);
	send_json(&j);
}

/* Reports every VM whose state changed since the last look: "exit" (the
 * guest wrote its exit code), "stop" (Amber stopped it), "state" (any other
 * change, a new VM included) and "gone" (vm kill, or replaced). Taken from
 * the VM table, never from what a guest prints, so a guest cannot forge one. */
static void report_states(void)
{
	for (int id = 1; id <= VM_MAX; id++) {
		struct vm *vm = vm_get(id);

		if (vm == seen[id].vm && (!vm || vm->state == seen[id].state))
			continue;
		if (!vm)
			send_event_vm("gone", id, NULL);
		else if (vm->state == VM_EXITED)
			send_event_vm("exit", id, vm);
		else if (vm->state == VM_STOPPED)
			send_event_vm("stop", id, vm);
		else
			send_event_vm("state", id, vm);
		seen[id].vm = vm;
		seen[id].state = vm ? vm->state : VM_CREATED;
	}
}

void ctl_poll(void)
{
	int c;

	if (!ctl_up)
		return;
	report_states();
	/* A bounded batch, so COM1 and the guests get their turn. */
	for (int n = 0; n < 4096 && (c = uart_getc(COM2)) >= 0; n++) {
		enum ctl_feed f = ctl_line_feed(&rx, (u8)c);

		if (f == CTL_LINE) {
			/* The command keeps pointers into its line while requests that
			 * arrive meanwhile are assembled in rx. */
			static char line[CTL_LINE_MAX];

			strlcpy(line, rx.buf, sizeof(line));
			ctl_request(line);
			report_states();
		} else {
			refuse_line(f);
		}
	}
}

void ctl_poll_busy(void)
{
	int c;

	if (!ctl_up)
		return;
	for (int n = 0; n < 4096 && (c = uart_getc(COM2)) >= 0; n++) {
		enum ctl_feed f = ctl_line_feed(&rx, (u8)c);
		struct ctl_req r;

		if (f != CTL_LINE) {
			refuse_line(f);
			continue;
		}
		ctl_parse_request(rx.buf, &r);
		answer_refused(&r, -EBUSY,
			       "error: busy: '%s' is running; nothing done, retry when it ends",
			       running ? running : "a command");
	}
}

/* Runs a command from the console or the boot script; the channel sees it as
 * a "command" event with the same members as an answer. */
static int exec_reported(char *line, const char *from)
{
	static char head_buf[CTL_LINE_MAX * 6 + 256];
	struct json head;
	int ret;

	if (!ctl_up)
		return shell_exec(line);
	ret = run_captured(line, false);
	json_init(&head, head_buf, sizeof(head_buf));
	json_obj_begin(&head, NULL);
	json_str(&head, "event", "command");
	json_str(&head, "from", from);
	send_result(&head, running_copy, ret);
	report_states();
	return ret;
}

int ctl_exec_console(char *line)
{
	/* Empty lines are not worth an event. */
	const char *p = line;

	while (*p == ' ')
		p++;
	if (!*p)
		return 0;
	return exec_reported(line, "console");
}

static void tap(char c)
{
	char buf[CTL_EVENT_MAX];
	struct json j;
	const char *p = tap_buf;
	u64 id = 0;

	if (c != '\n') {
		if (c != '\r' && tap_len < sizeof(tap_buf) - 1)
			tap_buf[tap_len++] = c;
		return;
	}
	tap_buf[tap_len] = '\0';
	tap_len = 0;
	/* "[vmN] TEXT" is a line printed for VM N (dev_uart.c, the VMM's notes). */
	if (strncmp(p, "[vm", 3) != 0)
		return;
	for (p += 3; *p >= '0' && *p <= '9' && id <= VM_MAX; p++)
		id = id * 10 + (u64)(*p - '0');
	if (p[0] != ']' || (p[1] != ' ' && p[1] != '\0'))
		return;
	json_init(&j, buf, sizeof(buf));
	json_obj_begin(&j, NULL);
	json_str(&j, "event", "output");
	json_u64(&j, "vm", id);
	json_str(&j, "line", p[1] ? p + 2 : "");
	json_obj_end(&j);
	send_json(&j);
}

void ctl_guest_time(bool on)
{
	if (!ctl_up)
		return;
	tap_len = 0;
	console_set_tap(on ? tap : NULL);
}

void ctl_init(void)
{
	char buf[128];
	struct json j;

	/* A 16550 keeps what is written to its scratch register; a machine
	 * without COM2 reads 0xFF. Without it Amber is exactly as before. */
	if (!uart_probe(COM2))
		return;
	uart_init(COM2);
	ctl_line_init(&rx);
	ctl_up = true;
	json_init(&j, buf, sizeof(buf));
	json_obj_begin(&j, NULL);
	json_str(&j, "event", "ready");
	json_str(&j, "version", AMBER_VERSION);
	json_obj_end(&j);
	send_json(&j);
	pr_info("ctl: control channel on COM2 (0x%x), one JSON answer per request line", COM2);
}

/* Runs each command of one script, echoed as "[boot] CMD" with its result. */
static void run_script(const char *from, const char *p, const char *end)
{
	char cmd[CTL_SCRIPT_CMD_MAX];
	bool cut;

	while ((p = ctl_script_next(p, end, cmd, sizeof(cmd), &cut))) {
		int ret;

		printk("[boot] %s\n", cmd);
		if (cut) {
			printk("[boot] error: command longer than %d characters; not run\n",
			       CTL_SCRIPT_CMD_MAX - 1);
			continue;
		}
		ret = exec_reported(cmd, from);
		if (ret)
			printk("[boot] failed (%s)\n", errno_name(ret));
		else
			printk("[boot] ok\n");
	}
}

/* The first word of a module's command line, without its directories. */
static bool module_is_rc(const struct boot_module *m)
{
	const char *w = m->cmdline, *base = w;
	size_t n;

	for (; *w && *w != ' '; w++)
		if (*w == '/')
			base = w + 1;
	n = (size_t)(w - base);
	return n == strlen(CTL_RC_NAME) && strncmp(base, CTL_RC_NAME, n) == 0;
}

void ctl_boot_script(void)
{
	static char script[512];

	if (!ctl_cmdline_script(boot_info.cmdline, script, sizeof(script))) {
		printk("[boot] running amber.run= from the command line\n");
		run_script("boot", script, script + strlen(script));
	}
	for (int i = 0; i < boot_info.module_count; i++) {
		const struct boot_module *m = &boot_info.modules[i];

		if (!module_is_rc(m))
			continue;
		printk("[boot] running module amber.rc (%lu bytes)\n", m->end - m->start);
		run_script("boot", phys_to_virt(m->start),
			   (const char *)phys_to_virt(m->start) + (m->end - m->start));
	}
}
