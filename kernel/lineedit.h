/*
 * The shell's line editor as a pure state machine: bytes from the terminal go in,
 * echo and cursor movements come out through a callback, and a finished line is
 * reported. Knows backspace, Ctrl-U, Ctrl-C, Ctrl-A/E, arrows (VT100/xterm
 * sequences), history and Tab completion. No I/O of its own, so the host unit
 * tests drive it byte by byte.
 */
#ifndef AMBER_LINEEDIT_H
#define AMBER_LINEEDIT_H

#include "kernel/types.h"

#define LE_LINE_MAX 256 /* including the terminating NUL */
#define LE_HISTORY 16

enum le_result {
	LE_MORE,     /* keep feeding */
	LE_LINE,     /* a line is ready in le->buf */
	LE_CANCEL,   /* Ctrl-C: line abandoned */
	LE_TOO_LONG, /* Enter on a line that overflowed the buffer: discarded */
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
 * other output overwrote them). */
void le_redraw(struct lineedit *le);
/* Adds a line to the history (the shell calls it for each executed line). */
void le_history_add(struct lineedit *le, const char *line);

#endif
