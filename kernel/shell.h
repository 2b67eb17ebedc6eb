/*
 * The serial command shell. Commands register themselves with SHELL_COMMAND in
 * their own file: the macro drops a record into the linker section
 * .shell_cmds, which the shell walks. Adding a command touches one file.
 *
 * A command runs in host context with interrupts off, on the shell's stack. It
 * returns 0 on success or a negative errno after printing a one-line message
 * that says what was wrong (shell_usage() prints the usage line).
 */
#ifndef AMBER_SHELL_H
#define AMBER_SHELL_H

#include "kernel/types.h"

#define SHELL_MAX_ARGS 16
#define SHELL_LINE_MAX 256

struct shell_cmd {
	const char *name;
	const char *usage;   /* "vm create IMAGE [mem=SIZE]": shown on misuse and by help */
	const char *summary; /* one line for `help` */
	const char *help;    /* longer text for `help CMD`; may be NULL */
	int (*fn)(int argc, char **argv);
};

#define SHELL_COMMAND(ident, ...) \
	static const struct shell_cmd shell_cmd_##ident __used __section(".shell_cmds") \
		__aligned(8) = { __VA_ARGS__ }

void shell_run(void) __noreturn;
/* Executes one line as if typed; used by the boot command line and tests. */
int shell_exec(char *line);
/* Prints "usage: ..." for the command named argv[0]; returns -EINVAL. */
int shell_usage(const char *cmd_name);
/* True when Ctrl-C arrived on the console since the last call (long commands
 * poll it to cancel). Consumes the keypress. */
bool shell_interrupted(void);
/* Prints a progress bar line "\r[#####     ]  50%  12.3 MiB/s" */
void shell_progress(const char *what, u64 done, u64 total, u64 start_ticks);

/* The command table, for `help` and completion. */
const struct shell_cmd *shell_find(const char *name);
const struct shell_cmd *shell_cmds_begin(void);
const struct shell_cmd *shell_cmds_end(void);

/* Work to do while the shell waits for a key (the VMM's scheduler). */
void shell_set_idle(void (*fn)(void));
/* Hands every typed byte to `handler` instead of the line editor until it
 * returns false (used by `vm console`); the prompt comes back then. */
void shell_attach_input(bool (*handler)(u8 c, void *ctx), void *ctx);

/* Parses "key=value" among argv[from..]; returns the value or NULL. */
const char *shell_opt(int argc, char **argv, int from, const char *key);
/* True when "--flag" is among argv[from..]. */
bool shell_flag(int argc, char **argv, int from, const char *flag);

#endif
