/* Host unit test of the shell's line editor (kernel/lineedit.c): editing keys,
 * arrows, history, completion, overlong and binary input. */
#include "tests/unit/check.h"
#include "kernel/lineedit.h"
#include "kernel/lib.h"

static char screen[8192];
static size_t screen_len;

static void sink(void *ctx, const char *s, size_t n)
{
	if (screen_len + n < sizeof(screen)) {
		memcpy(screen + screen_len, s, n);
		screen_len += n;
		screen[screen_len] = '\0';
	}
}

static const char *const commands[] = { "help", "version", "vm", "uptime", "disk" };

static void completer(void *ctx, const char *prefix,
		      void (*add)(struct lineedit *le, const char *cand), struct lineedit *le)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strncmp(commands[i], prefix, strlen(prefix)) == 0)
			add(le, commands[i]);
}

/* Feeds a string; returns the result of the last byte. */
static enum le_result type(struct lineedit *le, const char *s)
{
	enum le_result r = LE_MORE;

	for (; *s; s++)
		r = le_feed(le, (u8)*s);
	return r;
}

/* ---- a model VT100 of TERM_COLS columns, for lines wider than it ---------- */
#define TERM_COLS 20
#define TERM_ROWS 40

static struct {
	char cell[TERM_ROWS][TERM_COLS + 1];
	int row, col;
	bool pending; /* wrote the last column: the next character wraps */
	int esc, param, bells;
} vt;

static void vt_clear_from(int row, int col)
{
	for (int r = row; r < TERM_ROWS; r++)
		for (int c = r == row ? col : 0; c < TERM_COLS; c++)
			vt.cell[r][c] = ' ';
}

static void vt_reset(void)
{
	memset(&vt, 0, sizeof(vt));
	vt_clear_from(0, 0);
}

static void vt_byte(char ch)
{
	if (vt.esc == 1) {
		vt.esc = ch == '[' ? 2 : 0;
		vt.param = 0;
		return;
	}
	if (vt.esc == 2) {
		int n = vt.param ? vt.param : 1;

		if (ch >= '0' && ch <= '9') {
			vt.param = vt.param * 10 + (ch - '0');
			return;
		}
		vt.esc = 0;
		vt.pending = false;
		if (ch == 'A')
			vt.row = vt.row - n < 0 ? 0 : vt.row - n;
		else if (ch == 'B')
			vt.row = vt.row + n >= TERM_ROWS ? TERM_ROWS - 1 : vt.row + n;
		else if (ch == 'C')
			vt.col = vt.col + n >= TERM_COLS ? TERM_COLS - 1 : vt.col + n;
		else if (ch == 'D')
			vt.col = vt.col - n < 0 ? 0 : vt.col - n;
		else if (ch == 'J')
			vt_clear_from(vt.row, vt.col);
		return;
	}
	switch (ch) {
	case '\033':
		vt.esc = 1;
		return;
	case '\r':
		vt.col = 0;
		vt.pending = false;
		return;
	case '\n': /* the console sends CR LF for it */
		vt.row++;
		vt.col = 0;
		vt.pending = false;
		return;
	case '\a':
		vt.bells++;
		return;
	default:
		break;
	}
	if (vt.pending) {
		vt.row++;
		vt.col = 0;
		vt.pending = false;
	}
	vt.cell[vt.row][vt.col] = ch;
	if (vt.col == TERM_COLS - 1)
		vt.pending = true;
	else
		vt.col++;
}

static void vt_sink(void *ctx, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vt_byte(s[i]);
}

static void vt_type(struct lineedit *le, const char *s)
{
	for (; *s; s++)
		CHECK_EQ(le_feed(le, (u8)*s), LE_MORE);
}

/* The screen shows the prompt and the line wrapped at TERM_COLS, nothing
 * below them, and the terminal's cursor is where the editor's is. */
static void vt_check(const struct lineedit *le, int line)
{
	char want[TERM_ROWS * TERM_COLS];
	size_t n = (size_t)snprintf(want, sizeof(want), "%s%s", le->prompt, le->buf);
	size_t pos = strlen(le->prompt) + le->cursor;
	int ok = 1, at;

	for (size_t i = 0; i < (size_t)TERM_ROWS * TERM_COLS; i++) {
		char c = i < n ? want[i] : ' ';

		if (vt.cell[i / TERM_COLS][i % TERM_COLS] != c)
			ok = 0;
	}
	at = vt.row * TERM_COLS + vt.col + (vt.pending ? 1 : 0);
	if (!ok || at != (int)pos) {
		fprintf(stderr, "line %d: screen differs or cursor at %d, not %zu:\n", line, at,
			pos);
		for (int r = 0; r < 6; r++)
			fprintf(stderr, "  |%s|\n", vt.cell[r]);
	}
	CHECK(ok);
	CHECK_EQ(at, (int)pos);
}

/* Lines longer than the terminal is wide: typed across rows, edited in the
 * middle and across row boundaries, cleared, recalled, cut at the limit. */
static void test_wide_lines(void)
{
	static struct lineedit le;
	char seq[32], big[300];

	vt_reset();
	le_init(&le, "amber> ");
	le.cols = TERM_COLS;
	le.write = vt_sink;
	le_start(&le);
	vt_type(&le, "abcdefghijklmnopqrstuvwxyz0123456789ABCD"); /* three rows */
	vt_check(&le, __LINE__);
	vt_type(&le, "\033[H");
	vt_check(&le, __LINE__);
	vt_type(&le, "X");
	vt_check(&le, __LINE__);
	vt_type(&le, "\033[F");
	vt_check(&le, __LINE__);
	for (int i = 0; i < 15; i++)
		vt_type(&le, "\033[D");
	vt_check(&le, __LINE__);
	vt_type(&le, "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f"); /* back across a row's start */
	vt_check(&le, __LINE__);
	vt_type(&le, "\033[3~\033[3~");
	vt_check(&le, __LINE__);
	for (int i = 0; i < 9; i++)
		vt_type(&le, "\033[C");
	vt_check(&le, __LINE__);
	/* A line that fills its last row exactly, then one more, then back. */
	vt_type(&le, "\x15");
	vt_check(&le, __LINE__);
	vt_type(&le, "0123456789abcdefghijklmnopqrstuvwxyz0");
	CHECK_EQ(strlen(le.prompt) + le.len, 2 * TERM_COLS + 4);
	vt_type(&le, "\x7f\x7f\x7f\x7f");
	vt_check(&le, __LINE__);
	vt_type(&le, "\033[H\033[F");
	vt_check(&le, __LINE__);
	vt_type(&le, "+");
	vt_check(&le, __LINE__);
	vt_type(&le, "\x7f\033[D\033[C");
	vt_check(&le, __LINE__);
	/* History brings a long line back over a short one and back. */
	le_history_add(&le, "history entry that is long enough for three rows");
	vt_type(&le, "\x15short\033[A");
	vt_check(&le, __LINE__);
	vt_type(&le, "\033[B");
	vt_check(&le, __LINE__);
	vt_type(&le, "\033[A");
	/* Other output first erases every row of the line, then it is redrawn. */
	le_erase_seq(&le, seq, sizeof(seq));
	vt_sink(NULL, seq, strlen(seq));
	CHECK_EQ(vt.row, 0);
	CHECK_EQ(vt.col, 0);
	for (int r = 0; r < 4; r++)
		CHECK_EQ(strspn(vt.cell[r], " "), (size_t)TERM_COLS);
	vt_sink(NULL, "guest line\n", 11);
	vt_reset(); /* the redraw starts on a fresh screen row */
	le_redraw(&le);
	vt_check(&le, __LINE__);
	/* Enter from the middle leaves the cursor below the whole line. */
	vt_type(&le, "\033[H");
	CHECK_EQ(le_feed(&le, '\r'), LE_LINE);
	CHECK_EQ(vt.row, 3);
	CHECK_EQ(vt.col, 0);
	/* Past the limit nothing more is echoed: one bell, the line refused. */
	vt_reset();
	le_start(&le);
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vt_type(&le, big);
	CHECK_EQ(le.len, LE_LINE_MAX - 1);
	CHECK_EQ(vt.bells, 1);
	vt_check(&le, __LINE__);
	CHECK_EQ(le_feed(&le, '\r'), LE_TOO_LONG);
}

int main(void)
{
	static struct lineedit le;
	char big[400];

	le_init(&le, "amber> ");
	le.write = sink;
	le.complete = completer;

	le_start(&le);
	CHECK(strstr(screen, "amber> ") != NULL);
	CHECK_EQ(type(&le, "version\r"), LE_LINE);
	CHECK_STR(le.buf, "version");
	le_history_add(&le, le.buf);

	/* CR LF counts once. */
	le_start(&le);
	CHECK_EQ(type(&le, "\n"), LE_MORE);
	CHECK_EQ(type(&le, "\n"), LE_LINE);
	CHECK_STR(le.buf, "");

	/* Backspace (DEL and ^H). */
	le_start(&le);
	CHECK_EQ(type(&le, "verzion\x7f\x7f\x7f\x7f"
			   "sion\r"),
		 LE_LINE);
	CHECK_STR(le.buf, "version");
	le_start(&le);
	CHECK_EQ(type(&le, "ab\x08"
			   "c\r"),
		 LE_LINE);
	CHECK_STR(le.buf, "ac");

	/* Left arrow then insert in the middle; right arrow; Home/End. */
	le_start(&le);
	CHECK_EQ(type(&le, "vrsion\033[D\033[D\033[D\033[D\033[De\r"), LE_LINE);
	CHECK_STR(le.buf, "version");
	le_start(&le);
	CHECK_EQ(type(&le, "bc\033[Ha\033[Fd\r"), LE_LINE);
	CHECK_STR(le.buf, "abcd");
	le_start(&le);
	CHECK_EQ(type(&le, "ac\x01\033[Cb\r"), LE_LINE);
	CHECK_STR(le.buf, "abc");
	/* Delete key (CSI 3 ~) removes the character under the cursor. */
	le_start(&le);
	CHECK_EQ(type(&le, "abxc\033[D\033[D\033[3~\r"), LE_LINE);
	CHECK_STR(le.buf, "abc");

	/* Ctrl-U clears, Ctrl-C cancels. */
	le_start(&le);
	CHECK_EQ(type(&le, "garbage\x15uptime\r"), LE_LINE);
	CHECK_STR(le.buf, "uptime");
	le_start(&le);
	CHECK_EQ(type(&le, "half a line\x03"), LE_CANCEL);

	/* History: up recalls, down returns to the fresh line. */
	le_history_add(&le, "help");
	le_start(&le);
	CHECK_EQ(type(&le, "\033[A\r"), LE_LINE);
	CHECK_STR(le.buf, "help");
	le_start(&le);
	CHECK_EQ(type(&le, "\033[A\033[A\r"), LE_LINE);
	CHECK_STR(le.buf, "version");
	le_start(&le);
	CHECK_EQ(type(&le, "par\033[A\033[B\r"), LE_LINE);
	CHECK_STR(le.buf, "par");
	le_start(&le);
	CHECK_EQ(type(&le, "\033[A\033[A\033[A\033[A\r"), LE_LINE); /* stops at the oldest */
	CHECK_STR(le.buf, "version");

	/* Tab: unique match completes with a space; ambiguous lists; none does nothing. */
	le_start(&le);
	CHECK_EQ(type(&le, "vers\t\r"), LE_LINE);
	CHECK_STR(le.buf, "version ");
	le_start(&le);
	screen_len = 0;
	CHECK_EQ(type(&le, "v\t"), LE_MORE);
	CHECK(strstr(screen, "version") && strstr(screen, "vm"));
	CHECK_EQ(type(&le, "\r"), LE_LINE);
	CHECK_STR(le.buf, "v");
	le_start(&le);
	CHECK_EQ(type(&le, "zz\t\r"), LE_LINE);
	CHECK_STR(le.buf, "zz");
	le_start(&le);
	CHECK_EQ(type(&le, "vm cr\t\r"), LE_LINE); /* only the first word completes */
	CHECK_STR(le.buf, "vm cr");

	/* Overlong lines are reported at Enter, and the buffer never overflows. */
	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\r';
	big[sizeof(big) - 1] = '\0';
	le_start(&le);
	CHECK_EQ(type(&le, big), LE_TOO_LONG);
	CHECK_EQ(le.len, LE_LINE_MAX - 1);
	/* ... and the next line is normal again. */
	le_start(&le);
	CHECK_EQ(type(&le, "help\r"), LE_LINE);

	/* Binary garbage is flagged, unknown escape sequences are swallowed. */
	le_start(&le);
	CHECK_EQ(type(&le, "a\x80\xff\x02"
			   "b\r"),
		 LE_GARBAGE);
	CHECK_EQ(le.garbage, 3);
	le_start(&le);
	CHECK_EQ(type(&le, "a\033[15;2~b\033OPc\r"), LE_LINE);
	CHECK_STR(le.buf, "abc");
	for (int i = 0; i < 256; i++)
		le_feed(&le, (u8)(i * 37 + 11)); /* any byte sequence keeps the state sane */
	CHECK(le.len < LE_LINE_MAX && le.cursor <= le.len);
	test_wide_lines();
	return test_done("lineedit");
}
