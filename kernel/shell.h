/*
 * The serial command shell. Commands register themselves with SHELL_COMMAND in
 * their own file: the macro drops a record into the linker section
 * .shell_cmds, which the shell walks. Adding a command touches one file.
 *
 * A command runs in host context with interrupts off, on the shell's stack. It
 * returns 0 on success or a negative errno after printing, with shell_error(),
 * one message "error: CMD: what is wrong, and what to do" (the control channel
 * relays that line). A command with subcommands describes them in one table,
 * which `help CMD SUB`, the usage lines and the unknown-subcommand error read.
 */
#ifndef AMBER_SHELL_H
#define AMBER_SHELL_H

#include "kernel/types.h"

#define SHELL_MAX_ARGS 16
#define SHELL_LINE_MAX 256

/* One subcommand; a command's table ends with an entry whose name is NULL.
 * Every string fits 80 columns as `help` prints it (tests check). */
struct shell_sub {
	const char *name;    /* "create" */
	const char *args;    /* after "vm create": "IMAGE [mem=SIZE]"; "" for none */
	const char *summary; /* one line of at most 50 characters for `help CMD` */
	const char *help;    /* more lines for `help CMD SUB`; may be NULL */
	bool hidden;	     /* a test hook: left out of the usage line */
};

struct shell_cmd {
	const char *name;
	const char *usage;   /* "uptime": shown on misuse and by help; NULL with subs */
	const char *summary; /* one line for `help` */
	const char *help;    /* longer text for `help CMD`; may be NULL */
	int (*fn)(int argc, char **argv);
	const struct shell_sub *subs; /* NULL when the command has none */
};

#define SHELL_COMMAND(ident, ...) \
	static const struct shell_cmd shell_cmd_##ident __used __section(".shell_cmds") \
		__aligned(8) = { __VA_ARGS__ }

void shell_run(void) __noreturn;
/* Executes one line as if typed; used by the boot command line and tests. */
int shell_exec(char *line);
/* Prints "usage: ..." for the command named argv[0]; returns -EINVAL. */
int shell_usage(const char *cmd_name);
/* Prints "error: CMD SUB: " (the running command and its subcommand, when one
 * runs), the message and a newline; returns err. The one way a command says
 * what went wrong, so that every error reads alike. The message is wrapped at
 * SHELL_COLUMNS: a line continues 2 columns in (or at the indent of a line
 * the message breaks itself), so long names never push it past 80. */
int shell_error(int err, const char *fmt, ...) __printf(2, 3);
/* The same mistake in the same words wherever it is made; each returns its
 * errno: a VM id (-ENOENT), a disk (-ENOENT; `count` disks exist), a snapshot
 * missing from disk `index` named `disk` (-ENOENT). */
int shell_err_no_vm(const char *arg);
int shell_err_no_disk(const char *arg, int count);
int shell_err_no_snap(const char *name, int index, const char *disk);
/* Prints the usage of one subcommand of `c` as `help CMD SUB` does. */
void shell_print_sub_usage(const struct shell_cmd *c, const struct shell_sub *s);
/* The subcommand `name` of `c`, or NULL. */
const struct shell_sub *shell_sub_find(const struct shell_cmd *c, const char *name);
/* The columns of the terminal a person reads Amber on. */
#define SHELL_COLUMNS 80
/* Prints `head` then the words of `text`, wrapped at SHELL_COLUMNS; a
 * continued line starts with `indent` spaces. `head` is taken as `indent`
 * columns wide when shorter (aligned columns). Ends with a newline. */
void shell_wrap(const char *head, int indent, const char *text);
/* True when Ctrl-C arrived on the console since the last call (long commands
 * poll it to cancel). Consumes the keypress. */
bool shell_interrupted(void);
/* Prints a progress bar line "\rWHAT [#####     ]  50%   12.3 MiB/s,   3 s left":
 * done of total bytes since start_ticks, the time left at the rate so far. */
void shell_progress(const char *what, u64 done, u64 total, u64 start_ticks);

/* The command table, for `help` and completion. */
const struct shell_cmd *shell_find(const char *name);
const struct shell_cmd *shell_cmds_begin(void);
const struct shell_cmd *shell_cmds_end(void);

/* Work to do while the shell waits for a key (the VMM's scheduler). */
void shell_set_idle(void (*fn)(void));
/* Called with true before each command and false after it: the VMM stops
 * the guests on other CPUs while a command may touch their state. */
void shell_set_hold(int (*fn)(bool on));
/* Hands every typed byte to `handler` instead of the line editor until it
 * returns false (used by `vm console`); the prompt comes back then. */
void shell_attach_input(bool (*handler)(u8 c, void *ctx), void *ctx);

/* Parses "key=value" among argv[from..]; returns the value or NULL. */
const char *shell_opt(int argc, char **argv, int from, const char *key);
/* True when "--flag" is among argv[from..]. */
bool shell_flag(int argc, char **argv, int from, const char *flag);

#endif
