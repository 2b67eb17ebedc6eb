/*
 * Fixed-size little-endian records: the snapshot format, the store and each
 * emulated device's saved state (pure code, host tests build it too).
 * Each record's layout is written once, as a list of (offset, field) pairs that
 * a `struct rec` walks either way: encoding moves the fields into the
 * little-endian bytes, decoding moves the bytes into the fields. Encoder and
 * decoder cannot disagree about an offset or a width (the width is the field's
 * own size).
 */
#ifndef AMBER_RECORD_H
#define AMBER_RECORD_H

#include "kernel/lib.h"

static inline void put_le(u8 *p, u64 v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (u8)(v >> (8 * i));
}

static inline u64 get_le(const u8 *p, unsigned size)
{
	u64 v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (u64)p[i] << (8 * i);
	return v;
}

/* An integer of 1, 2, 4 or 8 bytes in host memory, read or written by size. */
static inline u64 mem_load(const void *p, unsigned size)
{
	u8 v8;
	u16 v16;
	u32 v32;
	u64 v64;

	switch (size) {
	case 1:
		memcpy(&v8, p, 1);
		return v8;
	case 2:
		memcpy(&v16, p, 2);
		return v16;
	case 4:
		memcpy(&v32, p, 4);
		return v32;
	default:
		memcpy(&v64, p, 8);
		return v64;
	}
}

static inline void mem_store(void *p, unsigned size, u64 v)
{
	u8 v8 = (u8)v;
	u16 v16 = (u16)v;
	u32 v32 = (u32)v;

	switch (size) {
	case 1:
		memcpy(p, &v8, 1);
		break;
	case 2:
		memcpy(p, &v16, 2);
		break;
	case 4:
		memcpy(p, &v32, 4);
		break;
	default:
		memcpy(p, &v, 8);
		break;
	}
}

/* A record being encoded (`enc`: struct to bytes) or decoded. Encoding never
 * writes the struct and decoding never writes the bytes, whatever the casts
 * at the two entry points say. */
struct rec {
	u8 *buf;
	bool enc;
};

static inline void rec_int(const struct rec *r, u32 off, void *field, unsigned size)
{
	if (r->enc)
		put_le(r->buf + off, mem_load(field, size), size);
	else
		mem_store(field, size, get_le(r->buf + off, size));
}

static inline void rec_bytes(const struct rec *r, u32 off, void *field, size_t size)
{
	if (r->enc)
		memcpy(r->buf + off, field, size);
	else
		memcpy(field, r->buf + off, size);
}

/* A NUL-padded fixed string field; its last byte is always NUL. */
static inline void rec_str(const struct rec *r, u32 off, char *field, size_t size)
{
	if (r->enc) {
		size_t n = strnlen(field, size - 1);

		memset(r->buf + off, 0, size);
		memcpy(r->buf + off, field, n);
	} else {
		memcpy(field, r->buf + off, size);
		field[size - 1] = '\0';
	}
}

#define REC(r, off, field) rec_int((r), (off), &(field), sizeof(field))
#define REC_BYTES(r, off, field) rec_bytes((r), (off), (field), sizeof(field))
#define REC_STR(r, off, field) rec_str((r), (off), (field), sizeof(field))

/* The entry points: an encoder clears the record first (padding is zero). */
#define DEFINE_RECORD_CODEC(name, type, size) \
	void name##_encode(const type *v, u8 out[size]) \
	{ \
		struct rec r = { out, true }; \
\
		memset(out, 0, size); \
		name##_fields(&r, (type *)v); \
	} \
	void name##_decode(const u8 in[size], type *v) \
	{ \
		struct rec r = { (u8 *)in, false }; \
\
		name##_fields(&r, v); \
	}

#endif
