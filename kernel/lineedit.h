/*
 * The shell's line editor as a pure state machine: bytes from the terminal go in,
 * echo and cursor movements come out through a callback, and a finished line is
 * reported. Knows backspace, Ctrl-U, Ctrl-C, Ctrl-A/E, arrows (VT100/xterm
 * sequences), history and Tab completion. A line longer than the terminal is
 * wide wraps over several rows and is edited there (the editor tracks the row
 * and column of the terminal's cursor). No I/O of its own, so the host unit
 * tests drive it byte by byte against a model terminal.
 */
#ifndef AMBER_LINEEDIT_H
#define AMBER_LINEEDIT_H

#include "kernel/types.h"

#define LE_LINE_MAX 256 /* including the terminating NUL */
#define LE_HISTORY 16
#define LE_COLS 80 /* terminal width unless the owner sets `cols` */

enum le_result {
	LE_MORE,     /* keep feeding */
	LE_LINE,     /* a line is ready in le->buf */
	LE_CANCEL,   /* Ctrl-C: line abandoned */
	LE_TOO_LONG, /* Enter on a line typed past the limit (not echoed): discarded */
	LE_GARBAGE,  /* Enter on a line that held non-text bytes: discarded */
};

struct lineedit {
	char buf[LE_LINE_MAX];
	size_t len, cursor;
	bool overflow;
	unsigned garbage;    /* non-text bytes seen in this line */
	int esc;	     /* escape-sequence state: 0 none, 1 ESC, 2 CSI/SS3 */
	int esc_param;	     /* first numeric parameter of a CSI sequence */
	bool esc_param_done; /* a ';' ended the first parameter */
	bool last_cr;	     /* swallow the LF of a CR LF pair */
	const char *prompt;
	/* The terminal: `cols` wide; its cursor is at `term_pos` of prompt+line
	 * (row term_pos / cols), but one row up in the last column while a
	 * character written there waits to wrap (`wrap_pending`, as VT100s do);
	 * rows up to `rows_used` below the prompt's exist on the screen. */
	unsigned cols;
	size_t term_pos, rows_used;
	bool wrap_pending;
	char history[LE_HISTORY][LE_LINE_MAX];
	int hist_count; /* entries stored (at most LE_HISTORY) */
	int hist_pos;	/* -1: editing a fresh line; else 0 = newest */
	char saved[LE_LINE_MAX];
	/* Output sink and Tab completion (both set by the owner). complete() is
	 * called with the word prefix and must call `add` for each candidate. */
	void (*write)(void *ctx, const char *s, size_t n);
	void (*complete)(void *ctx, const char *prefix,
			 void (*add)(struct lineedit *le, const char *cand), struct lineedit *le);
	void *ctx;
	/* Completion scratch. */
	char comp_common[LE_LINE_MAX];
	int comp_count;
	char comp_list[512];
};

void le_init(struct lineedit *le, const char *prompt);
/* Starts a fresh line (after a result other than LE_MORE) and prints the prompt. */
void le_start(struct lineedit *le);
enum le_result le_feed(struct lineedit *le, u8 c);
/* Prints the prompt and the line being edited again, cursor in place (after
 * other output overwrote them; the terminal's cursor is at a row's start). */
void le_redraw(struct lineedit *le);
/* The control sequence that takes the cursor to the prompt's row and erases
 * from there down: what other output writes first so that it replaces the
 * line being edited, all its rows. */
void le_erase_seq(const struct lineedit *le, char *seq, size_t size);
/* Adds a line to the history (the shell calls it for each executed line). */
void le_history_add(struct lineedit *le, const char *line);

#endif
