/*
 * The command shell on the serial console: reads bytes, feeds the line editor,
 * splits finished lines into words and runs the matching command from the
 * .shell_cmds table. Between keystrokes it gives the CPU to the idle hook (the
 * VMM runs guests there), so the shell stays responsive while VMs run.
 * Host context, the boot CPU's main loop.
 */
#include "kernel/shell.h"
#include "kernel/console.h"
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/lineedit.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "kernel/x86.h"

extern const struct shell_cmd __shell_cmds_start[], __shell_cmds_end[];

static struct lineedit editor;
static void (*idle_hook)(void);
static int (*hold_hook)(bool on);
static bool (*input_handler)(u8 c, void *ctx);
static void *input_ctx;

/* Bytes typed while a long command ran; replayed to the editor afterwards. */
static u8 pending[64];
static unsigned pending_len;

const struct shell_cmd *shell_find(const char *name)
{
	for (const struct shell_cmd *c = __shell_cmds_start; c < __shell_cmds_end; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const struct shell_cmd *shell_cmds_begin(void) { return __shell_cmds_start; }
const struct shell_cmd *shell_cmds_end(void) { return __shell_cmds_end; }

/* The command shell_exec runs, its subcommand when argv[1] names one, and
 * argv[1] itself: the prefix of shell_error's messages. */
static const struct shell_cmd *cur_cmd;
static const struct shell_sub *cur_sub;
static const char *cur_word;

const struct shell_sub *shell_sub_find(const struct shell_cmd *c, const char *name)
{
	for (const struct shell_sub *s = c->subs; s && s->name; s++)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

/* Prints `text` after what column `col` ends, one space between, wrapped at
 * SHELL_COLUMNS: a line the text breaks itself keeps its own indent, a line
 * wrapped here continues at that indent (2 on the first line). A word wider
 * than a line is not split. */
static void print_wrapped(int col, const char *text)
{
	int indent = 2;
	bool fresh = false; /* at the start of a line the text began */

	while (*text) {
		const char *w;
		int len;

		if (*text == '\n') {
			printk("\n");
			for (col = 0, text++; *text == ' '; text++, col++)
				printk(" ");
			indent = col;
			fresh = true;
			continue;
		}
		for (w = text; *w == ' '; w++)
			;
		for (len = 0; w[len] && w[len] != ' ' && w[len] != '\n'; len++)
			;
		if (!len) {
			text = w;
			continue;
		}
		if (!fresh && col + 1 + len > SHELL_COLUMNS && col > indent) {
			printk("\n%*s", indent, "");
			col = indent;
		} else if (!fresh) {
			printk(" ");
			col++;
		}
		fresh = false;
		printk("%.*s", len, w);
		col += len;
		text = w + len;
	}
	printk("\n");
}

int shell_error(int err, const char *fmt, ...)
{
	static char msg[1024];
	char head[80];
	va_list ap;

	if (cur_cmd && cur_sub)
		snprintf(head, sizeof(head), "error: %s %s:", cur_cmd->name, cur_sub->name);
	else if (cur_cmd)
		snprintf(head, sizeof(head), "error: %s:", cur_cmd->name);
	else
		snprintf(head, sizeof(head), "error:");
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One style at 80 columns whatever the names in it: the message wraps
	 * under itself (the control channel joins the lines again). */
	printk("%s", head);
	print_wrapped((int)strlen(head), msg);
	return err;
}

int shell_err_no_vm(const char *arg)
{
	return shell_error(-ENOENT, "there is no VM '%s'; 'vm list' shows the VMs", arg);
}

int shell_err_no_disk(const char *arg, int count)
{
	if (!count)
		return shell_error(-ENODEV, "there is no disk; attach a virtio-blk, NVMe or ATA "
					    "disk");
	return shell_error(-ENOENT, "there is no disk '%s' (0-%d); 'disk list' shows them", arg,
			   count - 1);
}

int shell_err_no_snap(const char *name, int index, const char *disk)
{
	return shell_error(-ENOENT,
			   "there is no snapshot '%s' on disk %d (%s);\n"
			   "  'snap list' shows them",
			   name, index, disk);
}

void shell_print_sub_usage(const struct shell_cmd *c, const struct shell_sub *s)
{
	printk("usage: %s %s%s%s\n", c->name, s->name, s->args[0] ? " " : "", s->args);
}

/* "usage: vm images|create|... ARGS": the subcommands a person may type. */
static void print_subs_usage(const struct shell_cmd *c)
{
	const char *sep = "";

	printk("usage: %s ", c->name);
	for (const struct shell_sub *s = c->subs; s->name; s++) {
		if (s->hidden)
			continue;
		printk("%s%s", sep, s->name);
		sep = "|";
	}
	printk(" ...\n");
}

int shell_usage(const char *cmd_name)
{
	const struct shell_cmd *c = shell_find(cmd_name);
	const struct shell_sub *s = c && c == cur_cmd ? cur_sub : NULL;

	if (!c)
		return -EINVAL;
	if (c->subs && !s) {
		if (c == cur_cmd && cur_word)
			shell_error(-EINVAL, "there is no subcommand '%s'; see 'help %s'", cur_word,
				    c->name);
		else
			shell_error(-EINVAL, "a subcommand is missing ('help %s' explains each)",
				    c->name);
		print_subs_usage(c);
		return -EINVAL;
	}
	shell_error(-EINVAL, "wrong arguments ('help %s%s%s' explains them)", c->name, s ? " " : "",
		    s ? s->name : "");
	if (s)
		shell_print_sub_usage(c, s);
	else
		printk("usage: %s\n", c->usage);
	return -EINVAL;
}

void shell_wrap(const char *head, int indent, const char *text)
{
	int col = (int)strlen(head);

	printk("%s", head);
	for (; col < indent; col++)
		printk(" ");
	while (*text) {
		const char *w = text;
		int len;

		while (*w == ' ')
			w++;
		for (len = 0; w[len] && w[len] != ' '; len++)
			;
		if (!len)
			break;
		if (col > indent && col + 1 + len > SHELL_COLUMNS) {
			printk("\n%*s", indent, "");
			col = indent;
		}
		if (col > indent) {
			printk(" ");
			col++;
		}
		printk("%.*s", len, w);
		col += len;
		text = w + len;
	}
	printk("\n");
}

const char *shell_opt(int argc, char **argv, int from, const char *key)
{
	size_t n = strlen(key);

	for (int i = from; i < argc; i++)
		if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

bool shell_flag(int argc, char **argv, int from, const char *flag)
{
	for (int i = from; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return true;
	return false;
}

bool shell_interrupted(void)
{
	int c;
	bool hit = false;

	ctl_poll_busy();
	while ((c = console_getc()) >= 0) {
		if (c == 0x03)
			hit = true;
		else if (pending_len < sizeof(pending))
			pending[pending_len++] = (u8)c;
	}
	return hit;
}

void shell_progress(const char *what, u64 done, u64 total, u64 start_ticks)
{
	const int width = 25;
	u64 pct = total ? MIN(done, total) * 100 / total : 100;
	u64 elapsed = ticks() - start_ticks;
	u64 rate = elapsed ? done * TICKS_PER_SEC / elapsed : 0; /* bytes per second */
	char bar[32], left[16];
	int fill = (int)(pct * width / 100);

	if (console_capture_exclusive())
		return; /* a program asked: the answer carries the figures */

	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : ' ';
	bar[width] = '\0';
	/* The time left at the rate so far; padded, so a shorter figure
	 * overwrites a longer one on the same line. */
	if (!rate) {
		strlcpy(left, "?", sizeof(left));
	} else {
		u64 secs = (total > done ? total - done : 0) / rate;

		if (secs < 60)
			snprintf(left, sizeof(left), "%lu s", secs);
		else if (secs < 100 * 60)
			snprintf(left, sizeof(left), "%lu:%02lu", secs / 60, secs % 60);
		else
			snprintf(left, sizeof(left), "%lu min", secs / 60);
	}
	printk("\r%s [%s] %3lu%% %4lu.%lu MiB/s, %6s left", what, bar, pct, rate >> 20,
	       ((rate & (MiB(1) - 1)) * 10) >> 20, left);
}

/* Splits a line into words in place; "double quotes" group words. Returns argc,
 * or -E2BIG when there are more than SHELL_MAX_ARGS words. */
static int split(char *line, char **argv)
{
	int argc = 0;
	char *p = line;

	for (;;) {
		char *w;

		while (*p == ' ')
			p++;
		if (!*p)
			return argc;
		if (argc == SHELL_MAX_ARGS)
			return -E2BIG;
		if (*p == '"') {
			w = ++p;
			while (*p && *p != '"')
				p++;
		} else {
			w = p;
			while (*p && *p != ' ')
				p++;
		}
		argv[argc++] = w;
		if (*p)
			*p++ = '\0';
	}
}

int shell_exec(char *line)
{
	char *argv[SHELL_MAX_ARGS + 1];
	const struct shell_cmd *c;
	int argc = split(line, argv), ret;

	if (argc == -E2BIG)
		return shell_error(-E2BIG,
				   "too many words (at most %d); \"quote\" words with "
				   "spaces",
				   SHELL_MAX_ARGS);
	if (argc == 0)
		return 0;
	argv[argc] = NULL;
	c = shell_find(argv[0]);
	if (!c)
		return shell_error(-ENOENT, "%s: unknown command; 'help' lists the commands",
				   argv[0]);
	cur_cmd = c;
	cur_word = argc > 1 && c->subs ? argv[1] : NULL;
	cur_sub = cur_word ? shell_sub_find(c, cur_word) : NULL;
	/* A command touches VM state only while no other CPU runs a guest. */
	if (hold_hook)
		hold_hook(true);
	ret = c->fn(argc, argv);
	if (hold_hook)
		hold_hook(false);
	cur_cmd = NULL;
	cur_sub = NULL;
	cur_word = NULL;
	return ret;
}

void shell_set_idle(void (*fn)(void)) { idle_hook = fn; }
void shell_set_hold(int (*fn)(bool on)) { hold_hook = fn; }

void shell_attach_input(bool (*handler)(u8 c, void *ctx), void *ctx)
{
	input_handler = handler;
	input_ctx = ctx;
}

static void editor_write(void *ctx, const char *s, size_t n) { printk_write(s, n); }

static void editor_complete(void *ctx, const char *prefix,
			    void (*add)(struct lineedit *le, const char *cand), struct lineedit *le)
{
	size_t n = strlen(prefix);

	for (const struct shell_cmd *c = __shell_cmds_start; c < __shell_cmds_end; c++)
		if (strncmp(c->name, prefix, n) == 0)
			add(le, c->name);
}

static void feed(u8 c)
{
	char line[LE_LINE_MAX];

	if (input_handler) {
		if (!input_handler(c, input_ctx)) {
			input_handler = NULL;
			le_start(&editor);
		}
		return;
	}
	switch (le_feed(&editor, c)) {
	case LE_MORE:
		return;
	case LE_LINE:
		le_history_add(&editor, editor.buf);
		strlcpy(line, editor.buf, sizeof(line));
		ctl_exec_console(line);
		break;
	case LE_TOO_LONG:
		shell_error(-E2BIG, "line too long: at most %d characters; nothing was run",
			    LE_LINE_MAX - 1);
		break;
	case LE_GARBAGE:
		shell_error(-EINVAL, "the line held %u non-text byte(s); nothing was run",
			    editor.garbage);
		break;
	case LE_CANCEL:
		break;
	}
	/* A command may have attached the input to a guest console. */
	if (!input_handler)
		le_start(&editor);
}

/* Gives the CPU to the idle hook (guests). While the line editor owns the
 * terminal, whatever the guests print first clears the prompt line, and the
 * prompt with the half-typed line is drawn again below it. */
static void run_idle(void)
{
	char seq[24];
	u64 before;

	ctl_guest_time(true);
	if (input_handler) {
		idle_hook();
		ctl_guest_time(false);
		return;
	}
	before = console_output_count();
	le_erase_seq(&editor, seq, sizeof(seq));
	console_guard_seq(seq);
	console_guard_line(true);
	idle_hook();
	console_guard_line(false);
	ctl_guest_time(false);
	if (console_output_count() != before)
		le_redraw(&editor);
}

void shell_run(void)
{
	le_init(&editor, "amber> ");
	editor.write = editor_write;
	editor.complete = editor_complete;
	le_start(&editor);
	for (;;) {
		int c;

		while (pending_len) {
			u8 b = pending[0];

			memmove(pending, pending + 1, --pending_len);
			feed(b);
		}
		while ((c = console_getc()) >= 0)
			feed((u8)c);
		ctl_poll();
		smp_poll(); /* requests other CPUs sent the boot CPU */
		if (idle_hook)
			run_idle();
		else
			cpu_relax();
	}
}
