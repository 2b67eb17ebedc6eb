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
	return test_done("lineedit");
}
