/*
 * Host unit test of the fuzz inputs (vmm/fuzzinput.c): corpus records parsed
 * and refused (short, zero, oversized, trailing bytes, too many), the records
 * handed out first, then every single-byte mutation in the documented order,
 * the end of the run, and the input the demo guest's planted bug needs found
 * exactly where tests/integration/vm_cases.py expects it.
 */
#include <string.h>

#include "kernel/lib.h"
#include "vmm/fuzzinput.h"
#include "tests/unit/check.h"

/* Builds a corpus image from NUL-terminated strings; returns its size. */
static u64 build(u8 *buf, const char *const *recs, int n)
{
	u64 pos = 0;

	for (int i = 0; i < n; i++) {
		size_t len = strlen(recs[i]);

		buf[pos] = (u8)len;
		buf[pos + 1] = (u8)(len >> 8);
		memcpy(buf + pos + 2, recs[i], len);
		pos += 2 + len;
	}
	return pos;
}

static void test_parse(void)
{
	static u8 buf[70 * 8];
	struct fuzz_corpus c;
	const char *why = NULL;
	const char *recs[] = { "hello", "FUZZ", "AMBER" };
	u64 size = build(buf, recs, 3);

	CHECK_EQ(fuzz_corpus_parse(&c, buf, size, &why), 0);
	CHECK_EQ(c.count, 3);
	CHECK_EQ(c.longest, 5);
	CHECK_EQ(c.len[1], 4);
	CHECK(!memcmp(buf + c.off[1], "FUZZ", 4));
	CHECK_EQ(fuzz_corpus_parse(&c, buf, 0, &why), -EINVAL);
	CHECK_EQ(fuzz_corpus_parse(&c, buf, size + 1, &why), -EINVAL); /* 1 byte left */
	CHECK_EQ(fuzz_corpus_parse(&c, buf, size - 1, &why), -EINVAL); /* cut short */
	buf[0] = 0;
	buf[1] = 0;
	CHECK_EQ(fuzz_corpus_parse(&c, buf, size, &why), -EINVAL); /* zero length */
	buf[0] = 0x01;
	buf[1] = 0x10; /* 4097 */
	CHECK_EQ(fuzz_corpus_parse(&c, buf, size, &why), -EINVAL);
	for (int i = 0; i < 65; i++) {
		buf[i * 3] = 1;
		buf[i * 3 + 1] = 0;
		buf[i * 3 + 2] = 'x';
	}
	CHECK_EQ(fuzz_corpus_parse(&c, buf, 64 * 3, &why), 0);
	CHECK_EQ(fuzz_corpus_parse(&c, buf, 65 * 3, &why), -EINVAL);
	CHECK_STR(why, "more than 64 records");
}

static void test_order(void)
{
	static u8 buf[64], out[FUZZ_INPUT_MAX];
	struct fuzz_corpus c;
	const char *why;
	const char *recs[] = { "hello", "FUZZ", "AMBER" };
	u64 size = build(buf, recs, 3), total, k;
	u32 len;

	CHECK_EQ(fuzz_corpus_parse(&c, buf, size, &why), 0);
	total = fuzz_input_count(&c);
	CHECK_EQ(total, 3 + 3 * 5 * 256);
	len = fuzz_input(&c, 1, out);
	CHECK_EQ(len, 4);
	CHECK(!memcmp(out, "FUZZ", 4));
	/* The first mutation: record 0, byte 0 set to 0. */
	len = fuzz_input(&c, 3, out);
	CHECK_EQ(len, 5);
	CHECK(!memcmp(out, "\0ello", 5));
	/* Record 1, step 1: byte 1 set to 0. */
	len = fuzz_input(&c, 3 + 1 * 3 + 1, out);
	CHECK(!memcmp(out, "F\0ZZ", 4));
	/* The demo's planted bug wants "FUZ#": record 1, step 3 + 4 * 0x23. */
	for (k = 0; k < total; k++) {
		len = fuzz_input(&c, k, out);
		if (len == 4 && !memcmp(out, "FUZ#", 4))
			break;
	}
	CHECK_EQ(k, 433);
	/* Record 1 has used up its 4 * 256 steps: handed out as it is. */
	len = fuzz_input(&c, 3 + (4 * 256) * 3 + 1, out);
	CHECK(len == 4 && !memcmp(out, "FUZZ", 4));
	CHECK_EQ(fuzz_input(&c, total - 1, out), 5);
	CHECK_EQ(fuzz_input(&c, total, out), 0);
	CHECK_EQ(fuzz_input(&c, ~0ULL, out), 0);
}

int main(void)
{
	test_parse();
	test_order();
	return test_done("fuzzinput");
}
