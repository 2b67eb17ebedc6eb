/*
 * The corpus records and their deterministic single-byte mutations
 * (vmm/fuzzinput.h). Pure code: the hypercall handler calls it on a vCPU's
 * exit path, the host unit test directly.
 */
#include "kernel/lib.h"
#include "vmm/fuzzinput.h"

int fuzz_corpus_parse(struct fuzz_corpus *c, const u8 *data, u64 size, const char **why)
{
	u64 pos = 0;

	memset(c, 0, sizeof(*c));
	c->data = data;
	while (pos < size) {
		u32 len;

		if (size - pos < 2) {
			*why = "a record's length is cut short";
			return -EINVAL;
		}
		len = data[pos] | (u32)data[pos + 1] << 8;
		if (!len || len > FUZZ_INPUT_MAX) {
			*why = "a record's length is 0 or more than 4096";
			return -EINVAL;
		}
		if (len > size - pos - 2) {
			*why = "a record is longer than what is left of the image";
			return -EINVAL;
		}
		if (c->count == FUZZ_RECORDS_MAX) {
			*why = "more than 64 records";
			return -EINVAL;
		}
		c->off[c->count] = (u32)(pos + 2);
		c->len[c->count] = (u16)len;
		c->longest = (u16)MAX(c->longest, len);
		c->count++;
		pos += 2 + len;
	}
	if (!c->count) {
		*why = "no records (each is a 16-bit little-endian length and its bytes)";
		return -EINVAL;
	}
	return 0;
}

u64 fuzz_input_count(const struct fuzz_corpus *c)
{
	return c->count + (u64)c->count * c->longest * 256;
}

u32 fuzz_input(const struct fuzz_corpus *c, u64 k, u8 *out)
{
	u64 m, s;
	u32 r, len;

	if (!c->count || k >= fuzz_input_count(c))
		return 0;
	r = (u32)(k < c->count ? k : (k - c->count) % c->count);
	len = c->len[r];
	memcpy(out, c->data + c->off[r], len);
	if (k < c->count)
		return len;
	m = k - c->count;
	s = m / c->count;
	if (s < (u64)len * 256)
		out[s % len] = (u8)(s / len);
	return len;
}
