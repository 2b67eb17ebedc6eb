/* Host unit test of the control channel's pure parts: the JSON writer and its
 * escaping (kernel/json.c), request lines, request ids and boot scripts
 * (kernel/ctl_proto.c). */
#include "tests/unit/check.h"
#include "kernel/ctl_proto.h"
#include "kernel/json.h"
#include "kernel/lib.h"

static enum ctl_feed feed(struct ctl_line *l, const char *s, size_t n)
{
	enum ctl_feed r = CTL_MORE;

	for (size_t i = 0; i < n; i++)
		r = ctl_line_feed(l, (u8)s[i]);
	return r;
}

static void test_json(void)
{
	char buf[256];
	struct json j;

	json_init(&j, buf, sizeof(buf));
	json_obj_begin(&j, NULL);
	json_str(&j, "status", "ok");
	json_u64(&j, "n", 18446744073709551615ULL);
	json_s64(&j, "code", -22);
	json_bool(&j, "t", true);
	json_null(&j, "z");
	json_arr_begin(&j, "vms");
	json_obj_begin(&j, NULL);
	json_u64(&j, "id", 1);
	json_obj_end(&j);
	json_obj_begin(&j, NULL);
	json_u64(&j, "id", 2);
	json_obj_end(&j);
	json_arr_end(&j);
	json_arr_begin(&j, "empty");
	json_arr_end(&j);
	json_obj_end(&j);
	CHECK(!j.overflow);
	CHECK_STR(buf, "{\"status\":\"ok\",\"n\":18446744073709551615,\"code\":-22,\"t\":true,"
		       "\"z\":null,\"vms\":[{\"id\":1},{\"id\":2}],\"empty\":[]}");

	/* Escaping: quote, backslash, control bytes, DEL and bytes >= 0x80. */
	json_init(&j, buf, sizeof(buf));
	json_strn(&j, NULL, "a\"b\\c\n\r\t\x01\x7f\xff", 11);
	CHECK_STR(buf, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u007f\\u00ff\"");
	json_init(&j, buf, sizeof(buf));
	json_str(&j, NULL, NULL);
	CHECK_STR(buf, "null");

	/* Overflow stops writing and says so; the buffer stays a C string. */
	json_init(&j, buf, 8);
	json_str(&j, "status", "ok");
	CHECK(j.overflow);
	CHECK(strlen(buf) < 8);
	json_init(&j, buf, 0);
	CHECK(j.overflow);

	/* Nesting deeper than JSON_DEPTH is refused, not overrun. */
	json_init(&j, buf, sizeof(buf));
	for (int i = 0; i < JSON_DEPTH + 3; i++)
		json_arr_begin(&j, NULL);
	CHECK(j.overflow);
}

static void test_lines(void)
{
	static struct ctl_line l;
	static char big[10 * 1024];

	ctl_line_init(&l);
	CHECK_EQ(feed(&l, "vm list", 7), CTL_MORE);
	CHECK_EQ(feed(&l, "\r", 1), CTL_LINE);
	CHECK_STR(l.buf, "vm list");
	/* CR LF is one line end; the LF does not make an empty line. */
	CHECK_EQ(feed(&l, "\n", 1), CTL_MORE);
	CHECK_EQ(feed(&l, "\n", 1), CTL_EMPTY);
	CHECK_EQ(feed(&l, "a\tb\n", 4), CTL_LINE);
	CHECK_STR(l.buf, "a b");

	/* A 10 KiB line is dropped whole with its length; the next line is fine. */
	memset(big, 'x', sizeof(big));
	CHECK_EQ(feed(&l, big, sizeof(big)), CTL_MORE);
	CHECK_EQ(feed(&l, "\n", 1), CTL_TOO_LONG);
	CHECK_EQ(l.total, sizeof(big));
	CHECK_EQ(feed(&l, "version\n", 8), CTL_LINE);
	CHECK_STR(l.buf, "version");
	/* Exactly the limit is too long (the NUL needs its byte); one less fits. */
	CHECK_EQ(feed(&l, big, CTL_LINE_MAX), CTL_MORE);
	CHECK_EQ(feed(&l, "\n", 1), CTL_TOO_LONG);
	CHECK_EQ(feed(&l, big, CTL_LINE_MAX - 1), CTL_MORE);
	CHECK_EQ(feed(&l, "\n", 1), CTL_LINE);
	CHECK_EQ(strlen(l.buf), CTL_LINE_MAX - 1);

	/* Binary bytes spoil the line. */
	CHECK_EQ(feed(&l, "vm\x00li\xffst\n", 9), CTL_GARBAGE);
	CHECK_EQ(l.garbage, 2);
	CHECK_EQ(feed(&l, "{\"cmd\": 1}\n", 11), CTL_LINE); /* text: the shell judges it */
}

static void test_requests(void)
{
	struct ctl_req r;
	char line[64];

	strlcpy(line, "  vm list", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), 0);
	CHECK(!r.has_id);
	CHECK_STR(r.cmd, "vm list");

	strlcpy(line, "#42 snap save 1 x", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), 0);
	CHECK(r.has_id);
	CHECK_EQ(r.id, 42);
	CHECK_STR(r.cmd, "snap save 1 x");

	strlcpy(line, "#7", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), 0);
	CHECK_EQ(r.id, 7);
	CHECK_STR(r.cmd, "");

	strlcpy(line, "#12x vm list", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), -EINVAL);
	CHECK(!r.has_id);
	strlcpy(line, "# vm list", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), -EINVAL);
	strlcpy(line, "#1234567890123456789 x", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), -EINVAL);
	strlcpy(line, "#123456789012345678 x", sizeof(line));
	CHECK_EQ(ctl_parse_request(line, &r), 0);
	CHECK_EQ(r.id, 123456789012345678ULL);
}

static void test_script(void)
{
	const char *s = "vm create hello; vm start 1 ;;\n# a comment; not run\n"
			"  snap list # trailing\n\n";
	const char *end = s + strlen(s), *p = s;
	char cmd[16];
	bool cut;

	p = ctl_script_next(p, end, cmd, sizeof(cmd), &cut);
	CHECK_STR(cmd, "vm create hello");
	CHECK(!cut);
	p = ctl_script_next(p, end, cmd, sizeof(cmd), &cut);
	CHECK_STR(cmd, "vm start 1");
	p = ctl_script_next(p, end, cmd, sizeof(cmd), &cut);
	CHECK_STR(cmd, "snap list");
	CHECK(ctl_script_next(p, end, cmd, sizeof(cmd), &cut) == NULL);

	const char *lng = "a very long command here";

	ctl_script_next(lng, lng + strlen(lng), cmd, sizeof(cmd), &cut);
	CHECK(cut);
	CHECK_EQ(strlen(cmd), sizeof(cmd) - 1);

	char out[64];

	CHECK_EQ(ctl_cmdline_script("/amber.elf amber.run=\"vm create hello; vm start 1\" x", out,
				    sizeof(out)),
		 0);
	CHECK_STR(out, "vm create hello; vm start 1");
	CHECK_EQ(ctl_cmdline_script("amber.run=version quiet", out, sizeof(out)), 0);
	CHECK_STR(out, "version");
	CHECK_EQ(ctl_cmdline_script("xamber.run=version", out, sizeof(out)), -ENOENT);
	CHECK_EQ(ctl_cmdline_script("", out, sizeof(out)), -ENOENT);
	CHECK_EQ(ctl_cmdline_script("amber.run=\"unterminated", out, 4), 0);
	CHECK_STR(out, "unt");
}

int main(void)
{
	test_json();
	test_lines();
	test_requests();
	test_script();
	return test_done("ctl");
}
