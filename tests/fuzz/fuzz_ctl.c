/* libFuzzer harness for the control channel's parser (kernel/ctl_proto.c):
 * any bytes as they would arrive on COM2, and the same bytes as a boot script
 * and a kernel command line. Each request is answered into a JSON buffer as
 * kernel/ctl.c does; the answer must fit and stay in bounds. */
#include <stdlib.h>
#include <string.h>
#include "kernel/ctl_proto.h"
#include "kernel/json.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct ctl_line l;
	static char answer[CTL_LINE_MAX * 6 + 256];
	char *text;
	char cmd[CTL_LINE_MAX], script[256];
	bool cut;

	ctl_line_init(&l);
	for (size_t i = 0; i < size; i++) {
		enum ctl_feed r = ctl_line_feed(&l, data[i]);
		struct ctl_req req;
		struct json j;

		if (r == CTL_MORE || r == CTL_EMPTY)
			continue;
		if (l.len >= CTL_LINE_MAX || strlen(l.buf) != l.len)
			abort();
		if (r != CTL_LINE)
			continue;
		ctl_parse_request(l.buf, &req);
		if (req.cmd < l.buf || req.cmd > l.buf + l.len)
			abort();
		json_init(&j, answer, sizeof(answer));
		json_obj_begin(&j, NULL);
		if (req.has_id)
			json_u64(&j, "id", req.id);
		json_str(&j, "status", "error");
		json_str(&j, "message", req.cmd);
		json_obj_end(&j);
		if (j.overflow || j.depth != 0)
			abort(); /* the buffer is sized for the worst line */
	}

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (const char *p = text; p;) {
		p = ctl_script_next(p, text + size, cmd, sizeof(cmd), &cut);
		if (strlen(cmd) >= sizeof(cmd))
			abort();
	}
	ctl_cmdline_script(text, script, sizeof(script));
	free(text);
	return 0;
}
