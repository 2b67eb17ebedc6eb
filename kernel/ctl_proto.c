/*
 * The control channel's line assembly, request parsing and boot-script
 * splitting (the contract is in ctl_proto.h). Every input is hostile: bounded
 * buffers, and a line that is too long or not text is dropped whole.
 * Pure; host context.
 */
#include "kernel/ctl_proto.h"
#include "kernel/lib.h"

void ctl_line_init(struct ctl_line *l) { memset(l, 0, sizeof(*l)); }

enum ctl_feed ctl_line_feed(struct ctl_line *l, u8 c)
{
	bool cr_lf = l->last_cr && c == '\n';

	if (l->done) {
		l->len = 0;
		l->total = 0;
		l->garbage = 0;
		l->done = false;
	}
	l->last_cr = c == '\r';
	if (cr_lf)
		return CTL_MORE;
	if (c == '\r' || c == '\n') {
		l->buf[l->len] = '\0';
		l->done = true;
		if (l->total >= CTL_LINE_MAX)
			return CTL_TOO_LONG;
		if (l->garbage)
			return CTL_GARBAGE;
		return l->len ? CTL_LINE : CTL_EMPTY;
	}
	if (l->total < ~0ULL)
		l->total++;
	if (c == '\t')
		c = ' ';
	if (c < 0x20 || c >= 0x7F) {
		l->garbage++;
		return CTL_MORE;
	}
	if (l->len < CTL_LINE_MAX - 1)
		l->buf[l->len++] = (char)c;
	return CTL_MORE;
}

int ctl_parse_request(char *line, struct ctl_req *r)
{
	char *p = line;
	u64 id = 0;
	int digits = 0;

	r->has_id = false;
	r->id = 0;
	while (*p == ' ')
		p++;
	r->cmd = p;
	if (*p != '#')
		return 0;
	for (p++; *p >= '0' && *p <= '9'; p++) {
		if (++digits > CTL_ID_DIGITS)
			return -EINVAL;
		id = id * 10 + (u64)(*p - '0');
	}
	if (!digits || (*p && *p != ' '))
		return -EINVAL;
	while (*p == ' ')
		p++;
	r->has_id = true;
	r->id = id;
	r->cmd = p;
	return 0;
}

const char *ctl_script_next(const char *p, const char *end, char *out, size_t cap, bool *cut)
{
	size_t n = 0;
	bool comment = false;

	*cut = false;
	if (cap)
		out[0] = '\0';
	/* Skip separators and blank commands until one with text, or the end. */
	for (;;) {
		while (p < end &&
		       (*p == ';' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		if (p >= end || !*p)
			return NULL;
		if (*p != '#')
			break;
		while (p < end && *p && *p != '\n')
			p++;
	}
	for (; p < end && *p && *p != ';' && *p != '\n'; p++) {
		char c = *p;

		if (c == '#')
			comment = true;
		if (comment)
			continue;
		if (c == '\t' || c == '\r')
			c = ' ';
		if ((u8)c < 0x20 || (u8)c >= 0x7F)
			continue;
		if (n + 1 < cap)
			out[n++] = c;
		else
			*cut = true;
	}
	while (n && out[n - 1] == ' ')
		n--;
	if (cap)
		out[n] = '\0';
	return p;
}

int ctl_cmdline_script(const char *cmdline, char *out, size_t cap)
{
	static const char key[] = "amber.run=";
	const char *p = cmdline;
	size_t n = 0;

	/* The key counts only at the start of a word. */
	for (;; p++) {
		if (!*p)
			return -ENOENT;
		if ((p == cmdline || p[-1] == ' ') && strncmp(p, key, sizeof(key) - 1) == 0)
			break;
	}
	p += sizeof(key) - 1;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++)
			if (n + 1 < cap)
				out[n++] = *p;
	} else {
		for (; *p && *p != ' '; p++)
			if (n + 1 < cap)
				out[n++] = *p;
	}
	if (cap)
		out[n] = '\0';
	return 0;
}
