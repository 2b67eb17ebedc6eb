/*
 * The JSON writer behind the control channel's answers and events. Appends to
 * a fixed buffer; on overflow it stops and flags the result so the caller can
 * drop it rather than send half an object. Pure; host context.
 */
#include "kernel/json.h"
#include "kernel/lib.h"
#include "kernel/printk.h"

void json_init(struct json *j, char *buf, size_t cap)
{
	j->buf = buf;
	j->cap = cap;
	j->len = 0;
	j->overflow = cap == 0;
	j->depth = 0;
	j->first[0] = true;
	if (cap)
		buf[0] = '\0';
}

static void put(struct json *j, const char *s, size_t n)
{
	if (j->overflow)
		return;
	if (j->len + n >= j->cap) {
		j->overflow = true;
		return;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void puts_(struct json *j, const char *s) { put(j, s, strlen(s)); }

size_t json_escape_byte(u8 c, char *out)
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"':
		return (size_t)(memcpy(out, "\\\"", 2), 2);
	case '\\':
		return (size_t)(memcpy(out, "\\\\", 2), 2);
	case '\n':
		return (size_t)(memcpy(out, "\\n", 2), 2);
	case '\r':
		return (size_t)(memcpy(out, "\\r", 2), 2);
	case '\t':
		return (size_t)(memcpy(out, "\\t", 2), 2);
	}
	if (c < 0x20 || c >= 0x7F) {
		memcpy(out, "\\u00", 4);
		out[4] = hex[c >> 4];
		out[5] = hex[c & 15];
		return 6;
	}
	out[0] = (char)c;
	return 1;
}

static void put_string(struct json *j, const char *s, size_t n)
{
	char e[7];

	put(j, "\"", 1);
	for (size_t i = 0; i < n; i++)
		put(j, e, json_escape_byte((u8)s[i], e));
	put(j, "\"", 1);
}

/* The comma before a member and its "key": part. */
static void member(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		put(j, ",", 1);
	j->first[j->depth] = false;
	if (key) {
		put_string(j, key, strlen(key));
		put(j, ":", 1);
	}
}

static void open(struct json *j, const char *key, const char *brace)
{
	member(j, key);
	puts_(j, brace);
	if (j->depth + 1 >= JSON_DEPTH) {
		j->overflow = true; /* deeper than any answer needs: Amber's own bug */
		return;
	}
	j->first[++j->depth] = true;
}

static void close(struct json *j, const char *brace)
{
	if (j->depth > 0)
		j->depth--;
	puts_(j, brace);
}

void json_obj_begin(struct json *j, const char *key) { open(j, key, "{"); }
void json_obj_end(struct json *j) { close(j, "}"); }
void json_arr_begin(struct json *j, const char *key) { open(j, key, "["); }
void json_arr_end(struct json *j) { close(j, "]"); }

void json_strn(struct json *j, const char *key, const char *s, size_t n)
{
	member(j, key);
	put_string(j, s, n);
}

void json_str(struct json *j, const char *key, const char *s)
{
	if (!s) {
		json_null(j, key);
		return;
	}
	json_strn(j, key, s, strlen(s));
}

void json_u64(struct json *j, const char *key, u64 v)
{
	char num[24];

	member(j, key);
	put(j, num, (size_t)snprintf(num, sizeof(num), "%lu", v));
}

void json_s64(struct json *j, const char *key, s64 v)
{
	char num[24];

	member(j, key);
	put(j, num, (size_t)snprintf(num, sizeof(num), "%ld", v));
}

void json_bool(struct json *j, const char *key, bool v)
{
	member(j, key);
	puts_(j, v ? "true" : "false");
}

void json_null(struct json *j, const char *key)
{
	member(j, key);
	puts_(j, "null");
}
