/*
 * A small JSON writer for the control channel (kernel/ctl.c): objects, arrays,
 * strings, integers and booleans appended to a caller's buffer, with the
 * commas placed for the caller. Pure (no I/O), so the host unit tests and the
 * fuzzer drive it. RFC 8259 "The JavaScript Object Notation (JSON) Data
 * Interchange Format".
 */
#ifndef AMBER_JSON_H
#define AMBER_JSON_H

#include "kernel/types.h"

#define JSON_DEPTH 8

struct json {
	char *buf;
	size_t cap, len; /* len excludes the terminating NUL */
	bool overflow;	 /* something did not fit: the text is cut, not valid */
	int depth;
	bool first[JSON_DEPTH]; /* no member written yet at this depth */
};

void json_init(struct json *j, char *buf, size_t cap);
/* Each takes the member name `key`, or NULL inside an array or at top level. */
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
void json_str(struct json *j, const char *key, const char *s);
void json_strn(struct json *j, const char *key, const char *s, size_t n);
void json_u64(struct json *j, const char *key, u64 v);
void json_s64(struct json *j, const char *key, s64 v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);

/* The escaped form of one byte inside a JSON string, into out[7]; returns its
 * length. Quote, backslash and control bytes are escaped; bytes >= 0x80 become
 * \u00XX (read as Latin-1), so whatever a guest prints stays valid UTF-8. */
size_t json_escape_byte(u8 c, char *out);

#endif
