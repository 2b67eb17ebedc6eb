/*
 * The control channel's wire format, as pure functions (kernel/ctl.c does the
 * I/O): bytes from the UART are assembled into request lines, a line is split
 * into an optional request id and a shell command line, and a boot script is
 * cut into commands. No I/O and no globals, so the host unit tests and the
 * libFuzzer target feed them anything.
 */
#ifndef AMBER_CTL_PROTO_H
#define AMBER_CTL_PROTO_H

#include "kernel/types.h"

#define CTL_LINE_MAX 1024 /* a request line, NUL included */
#define CTL_ID_DIGITS 18  /* "#ID " fits a u64 without overflow checks */

enum ctl_feed {
	CTL_MORE,     /* keep feeding */
	CTL_LINE,     /* a request line is in l->buf */
	CTL_EMPTY,    /* an empty line: nothing to answer */
	CTL_TOO_LONG, /* a line of l->total bytes, over CTL_LINE_MAX - 1: dropped */
	CTL_GARBAGE,  /* a line that held l->garbage non-text bytes: dropped */
};

struct ctl_line {
	char buf[CTL_LINE_MAX];
	size_t len;	  /* bytes kept in buf */
	u64 total;	  /* bytes of the line so far, kept or not */
	unsigned garbage; /* non-text bytes in the line */
	bool last_cr;	  /* swallow the LF of a CR LF pair */
	bool done;	  /* the previous call ended a line: start afresh */
};

void ctl_line_init(struct ctl_line *l);
/* Feeds one byte. A line ends at CR, LF or CR LF; a tab counts as a space. */
enum ctl_feed ctl_line_feed(struct ctl_line *l, u8 c);

struct ctl_req {
	bool has_id;
	u64 id;		 /* "#ID" in front of the command, echoed in the answer */
	const char *cmd; /* the shell command line, leading spaces skipped */
};

/* Splits a request line ("[#ID ]COMMAND ARGS...") in place. Returns 0, or
 * -EINVAL when "#" is not followed by 1-18 digits and a space or the end
 * (then r->has_id is false and r->cmd is the whole line). r->cmd may be ""
 * after an id: the caller answers that there is no command. */
int ctl_parse_request(char *line, struct ctl_req *r);

/* Cuts the next command off a boot script: commands end at ';', a newline or
 * the end; '#' starts a comment that runs to the end of the line. Copies the
 * command, spaces trimmed, into out (cut to `cap` - 1 bytes, *cut set) and
 * returns the position after it, or NULL at the end of the script. */
const char *ctl_script_next(const char *p, const char *end, char *out, size_t cap, bool *cut);

/* Finds "amber.run=VALUE" in a kernel command line; VALUE is one word or a
 * "double-quoted" string. Copies VALUE into out and returns 0, or -ENOENT. */
int ctl_cmdline_script(const char *cmdline, char *out, size_t cap);

#endif
