/*
 * Line editor state machine (see lineedit.h). Terminal control uses the
 * ECMA-48 / VT100 sequences every serial terminal understands: CSI n A and
 * CSI n B (cursor up, down), CSI n C (right), CSI J (erase to the end of the
 * screen), CR. A VT100 leaves the cursor in the last column after writing
 * there and wraps only at the next character (ECMA-48 leaves this to the
 * device; xterm and the VT100 behave so): the editor models that instead of
 * printing newlines of its own, so the echo of a long line stays one line.
 */
#include "kernel/lineedit.h"
#include "kernel/lib.h"
#include "kernel/printk.h"

static void out(struct lineedit *le, const char *s, size_t n)
{
	if (le->write && n)
		le->write(le->ctx, s, n);
}

static void outs(struct lineedit *le, const char *s) { out(le, s, strlen(s)); }

static void csi(struct lineedit *le, size_t n, char cmd)
{
	char seq[24];

	if (n) {
		snprintf(seq, sizeof(seq), "\033[%zu%c", n, cmd);
		outs(le, seq);
	}
}

static size_t prompt_len(const struct lineedit *le) { return strlen(le->prompt); }

/* The screen row (0: the prompt's) the terminal's cursor is on. */
static size_t cursor_row(const struct lineedit *le)
{
	return le->term_pos / le->cols - (le->wrap_pending ? 1 : 0);
}

/* Writes text that belongs at the cursor's position of prompt+line. */
static void put_text(struct lineedit *le, const char *s, size_t n)
{
	if (!n)
		return;
	out(le, s, n);
	le->term_pos += n;
	le->wrap_pending = le->term_pos % le->cols == 0;
	le->rows_used = MAX(le->rows_used, (le->term_pos - 1) / le->cols);
}

/* Moves the terminal's cursor to position `p` of prompt+line: up or down by
 * rows, then to the column from the row's start. A row that does not exist
 * yet (the end of a line that fills its last row exactly) is made by a
 * newline, as moving down stops at the screen's bottom. */
static void move_to(struct lineedit *le, size_t p)
{
	size_t row = cursor_row(le), want = p / le->cols;

	if (p == le->term_pos && !le->wrap_pending)
		return;
	if (want < row)
		csi(le, row - want, 'A');
	if (want > row && row < le->rows_used) {
		size_t n = MIN(want, le->rows_used) - row;

		csi(le, n, 'B');
		row += n;
	}
	for (; row < want; row++)
		outs(le, "\r\n");
	le->rows_used = MAX(le->rows_used, want);
	outs(le, "\r");
	csi(le, p % le->cols, 'C');
	le->term_pos = p;
	le->wrap_pending = false;
}

/* Erases from the cursor to the end of the screen: below the line. With a
 * wrap pending the cursor still sits on the last character written, so the
 * erase starts on the next row. */
static void erase_below(struct lineedit *le)
{
	if (le->wrap_pending)
		move_to(le, le->term_pos);
	outs(le, "\033[J");
}

/* Rewrites the line from the prompt on and puts the cursor back in place. */
static void redraw(struct lineedit *le)
{
	move_to(le, 0);
	put_text(le, le->prompt, prompt_len(le));
	put_text(le, le->buf, le->len);
	erase_below(le);
	move_to(le, prompt_len(le) + le->cursor);
}

/* Rewrites from the cursor to the end after an insertion or deletion there. */
static void redraw_tail(struct lineedit *le)
{
	move_to(le, prompt_len(le) + le->cursor);
	put_text(le, le->buf + le->cursor, le->len - le->cursor);
	erase_below(le);
	move_to(le, prompt_len(le) + le->cursor);
}

/* Other output put the cursor at the start of a fresh row: the line is drawn
 * anew from there. */
static void draw_fresh(struct lineedit *le)
{
	le->term_pos = 0;
	le->rows_used = 0;
	le->wrap_pending = false;
	outs(le, "\r");
	redraw(le);
}

void le_redraw(struct lineedit *le) { draw_fresh(le); }

void le_erase_seq(const struct lineedit *le, char *seq, size_t size)
{
	size_t up = cursor_row(le);

	if (up)
		snprintf(seq, size, "\033[%zuA\r\033[J", up);
	else
		snprintf(seq, size, "\r\033[J");
}

void le_init(struct lineedit *le, const char *prompt)
{
	memset(le, 0, sizeof(*le));
	le->prompt = prompt;
	le->hist_pos = -1;
	le->cols = LE_COLS;
}

void le_start(struct lineedit *le)
{
	le->len = le->cursor = 0;
	le->buf[0] = '\0';
	le->overflow = false;
	le->garbage = 0;
	le->esc = 0;
	le->hist_pos = -1;
	if (le->cols < 2)
		le->cols = LE_COLS;
	le->term_pos = 0;
	le->rows_used = 0;
	le->wrap_pending = false;
	put_text(le, le->prompt, prompt_len(le));
}

void le_history_add(struct lineedit *le, const char *line)
{
	if (!*line)
		return;
	if (le->hist_count && strcmp(le->history[0], line) == 0)
		return; /* no duplicate of the newest entry */
	for (int i = MIN(le->hist_count, LE_HISTORY - 1); i > 0; i--)
		memcpy(le->history[i], le->history[i - 1], LE_LINE_MAX);
	strlcpy(le->history[0], line, LE_LINE_MAX);
	if (le->hist_count < LE_HISTORY)
		le->hist_count++;
}

static void set_line(struct lineedit *le, const char *s)
{
	le->len = le->cursor = strlcpy(le->buf, s, LE_LINE_MAX);
	if (le->len >= LE_LINE_MAX)
		le->len = le->cursor = LE_LINE_MAX - 1;
	redraw(le);
}

static void history_move(struct lineedit *le, int dir)
{
	int pos = le->hist_pos + dir;

	if (pos < -1 || pos >= le->hist_count)
		return;
	if (le->hist_pos == -1)
		strlcpy(le->saved, le->buf, LE_LINE_MAX);
	le->hist_pos = pos;
	set_line(le, pos == -1 ? le->saved : le->history[pos]);
}

static void insert(struct lineedit *le, char c)
{
	if (le->len >= LE_LINE_MAX - 1) {
		if (!le->overflow)
			outs(le, "\a"); /* full: nothing past the limit is echoed */
		le->overflow = true;
		return;
	}
	memmove(le->buf + le->cursor + 1, le->buf + le->cursor, le->len - le->cursor);
	le->buf[le->cursor++] = c;
	le->buf[++le->len] = '\0';
	put_text(le, &c, 1);
	if (le->cursor != le->len)
		redraw_tail(le);
}

static void delete_at(struct lineedit *le, size_t pos)
{
	memmove(le->buf + pos, le->buf + pos + 1, le->len - pos - 1);
	le->buf[--le->len] = '\0';
}

static void comp_add(struct lineedit *le, const char *cand)
{
	size_t n = strlen(le->comp_list);

	if (le->comp_count++ == 0) {
		strlcpy(le->comp_common, cand, LE_LINE_MAX);
	} else {
		size_t i = 0;

		while (le->comp_common[i] && le->comp_common[i] == cand[i])
			i++;
		le->comp_common[i] = '\0';
	}
	if (n + strlen(cand) + 3 < sizeof(le->comp_list)) {
		strlcpy(le->comp_list + n, cand, sizeof(le->comp_list) - n);
		strlcpy(le->comp_list + n + strlen(cand), "  ",
			sizeof(le->comp_list) - n - strlen(cand));
	}
}

/* Tab: completes the word under the cursor (command names for the first word;
 * the completer decides what applies). One match completes it and adds a space;
 * several extend to their common prefix and, if nothing was added, are listed. */
static void complete(struct lineedit *le)
{
	size_t start = le->cursor;
	char prefix[LE_LINE_MAX];
	size_t plen;

	if (!le->complete)
		return;
	while (start > 0 && le->buf[start - 1] != ' ')
		start--;
	plen = le->cursor - start;
	memcpy(prefix, le->buf + start, plen);
	prefix[plen] = '\0';
	/* Only the first word (the command) is completed for now. */
	for (size_t i = 0; i < start; i++)
		if (le->buf[i] != ' ')
			return;
	le->comp_count = 0;
	le->comp_list[0] = '\0';
	le->complete(le->ctx, prefix, comp_add, le);
	if (le->comp_count == 0)
		return;
	if (strlen(le->comp_common) > plen) {
		for (const char *p = le->comp_common + plen; *p; p++)
			insert(le, *p);
		if (le->comp_count == 1)
			insert(le, ' ');
	} else if (le->comp_count > 1) {
		move_to(le, prompt_len(le) + le->len);
		outs(le, "\n");
		outs(le, le->comp_list);
		outs(le, "\n");
		draw_fresh(le);
	}
}

/* Leaves the cursor after the line's end, so what follows starts below it. */
static void leave_line(struct lineedit *le)
{
	size_t end = prompt_len(le) + le->len;

	if (le->term_pos != end)
		move_to(le, end % le->cols ? end : end - 1); /* not onto a new row */
}

static enum le_result finish(struct lineedit *le)
{
	leave_line(le);
	outs(le, "\n");
	if (le->overflow)
		return LE_TOO_LONG;
	if (le->garbage)
		return LE_GARBAGE;
	return LE_LINE;
}

static void handle_csi(struct lineedit *le, u8 c)
{
	switch (c) {
	case 'A':
		history_move(le, +1);
		break;
	case 'B':
		history_move(le, -1);
		break;
	case 'C':
		if (le->cursor < le->len)
			move_to(le, prompt_len(le) + ++le->cursor);
		break;
	case 'D':
		if (le->cursor > 0)
			move_to(le, prompt_len(le) + --le->cursor);
		break;
	case 'H':
		le->cursor = 0;
		move_to(le, prompt_len(le));
		break;
	case 'F':
		le->cursor = le->len;
		move_to(le, prompt_len(le) + le->len);
		break;
	case '~':
		if (le->esc_param == 3 && le->cursor < le->len) { /* Delete key */
			delete_at(le, le->cursor);
			redraw_tail(le);
		} else if (le->esc_param == 1 || le->esc_param == 7) {
			handle_csi(le, 'H');
		} else if (le->esc_param == 4 || le->esc_param == 8) {
			handle_csi(le, 'F');
		}
		break;
	default:
		break; /* other sequences are swallowed */
	}
}

enum le_result le_feed(struct lineedit *le, u8 c)
{
	bool was_cr = le->last_cr;

	le->last_cr = false;
	if (le->esc == 1) {
		le->esc = (c == '[' || c == 'O') ? 2 : 0;
		le->esc_param = 0;
		le->esc_param_done = false;
		return LE_MORE;
	}
	if (le->esc == 2) {
		if (c >= 0x40 && c <= 0x7E) { /* final byte of the sequence */
			le->esc = 0;
			handle_csi(le, c);
		} else if (c >= '0' && c <= '9') {
			if (!le->esc_param_done && le->esc_param < 1000)
				le->esc_param = le->esc_param * 10 + (c - '0');
		} else if (c == ';') {
			le->esc_param_done = true;
		} else if (c < 0x20 || c > 0x7E) {
			le->esc = 0; /* broken sequence: drop it */
		}
		return LE_MORE;
	}

	switch (c) {
	case '\r':
		le->last_cr = true;
		return finish(le);
	case '\n':
		if (was_cr)
			return LE_MORE;
		return finish(le);
	case 0x03: /* Ctrl-C */
		leave_line(le);
		outs(le, "^C\n");
		return LE_CANCEL;
	case 0x7F: /* DEL, what most terminals send for Backspace */
	case 0x08: /* Ctrl-H */
		if (le->cursor > 0) {
			le->cursor--;
			delete_at(le, le->cursor);
			redraw_tail(le);
		}
		return LE_MORE;
	case 0x15: /* Ctrl-U: erase the whole line */
		le->len = le->cursor = 0;
		le->buf[0] = '\0';
		le->overflow = false;
		le->garbage = 0;
		redraw(le);
		return LE_MORE;
	case 0x01: /* Ctrl-A */
		handle_csi(le, 'H');
		return LE_MORE;
	case 0x05: /* Ctrl-E */
		handle_csi(le, 'F');
		return LE_MORE;
	case 0x0C: /* Ctrl-L: redraw */
		redraw(le);
		return LE_MORE;
	case '\t':
		complete(le);
		return LE_MORE;
	case 0x1B:
		le->esc = 1;
		return LE_MORE;
	default:
		break;
	}
	if (c >= 0x20 && c < 0x7F)
		insert(le, (char)c);
	else
		le->garbage++;
	return LE_MORE;
}
