/*
 * The inputs a fuzzing guest asks for (HC_NEXT_INPUT, vmm/hypercall.h): the
 * records of a corpus image first, then single-byte mutations of them in a
 * fixed order, so a run is repeatable and bounded. Pure code, no allocation
 * (host unit-tested in tests/unit/test_fuzzinput.c).
 */
#ifndef AMBER_FUZZINPUT_H
#define AMBER_FUZZINPUT_H

#include "kernel/types.h"

#define FUZZ_INPUT_MAX 4096 /* bytes of one input, the most a record may hold */
#define FUZZ_RECORDS_MAX 64 /* records of one corpus */

/*
 * A corpus image is a sequence of records, each a 16-bit little-endian
 * length (1..FUZZ_INPUT_MAX) and that many bytes; nothing may follow the
 * last one. Binary inputs need the length; a text file would not carry them.
 */
struct fuzz_corpus {
	const u8 *data;
	u32 count;		   /* records */
	u32 off[FUZZ_RECORDS_MAX]; /* each record's bytes, from data */
	u16 len[FUZZ_RECORDS_MAX];
	u16 longest;
};

/* Parses `size` bytes at data into c (which points into data afterwards).
 * Returns 0, or -EINVAL with *why set: empty, a zero or oversized length,
 * a record cut short, more than FUZZ_RECORDS_MAX records. */
int fuzz_corpus_parse(struct fuzz_corpus *c, const u8 *data, u64 size, const char **why);

/* Inputs in the order a run hands them out: the count c gives (records plus
 * every mutation), after which the run is over. */
u64 fuzz_input_count(const struct fuzz_corpus *c);

/*
 * Input number k (0-based) into out[FUZZ_INPUT_MAX]; returns its length, 0
 * when k is past the last. Inputs 0..count-1 are the records. Beyond them,
 * m = k - count walks the records in turn (record m % count) and, for each,
 * step s = m / count sets byte s % len to the value s / len: every
 * single-byte change of every record, lowest position first, at most
 * count * longest * 256 of them. A record that has used up its own
 * len * 256 steps is handed out unchanged while the longer ones finish.
 */
u32 fuzz_input(const struct fuzz_corpus *c, u64 k, u8 *out);

#endif
