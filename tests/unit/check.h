/*
 * A minimal check framework for the host unit tests: CHECK() records a failure
 * with file, line and the expression, and test_done() exits non-zero if any
 * check failed. Host only.
 */
#ifndef AMBER_UNIT_CHECK_H
#define AMBER_UNIT_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond) \
	do { \
		check_count++; \
		if (!(cond)) { \
			check_failures++; \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

#define CHECK_EQ(a, b) \
	do { \
		long long va_ = (long long)(a), vb_ = (long long)(b); \
		check_count++; \
		if (va_ != vb_) { \
			check_failures++; \
			fprintf(stderr, \
				"%s:%d: %s == %s: expected %lld (0x%llx), got %lld (0x%llx)\n", \
				__FILE__, __LINE__, #a, #b, vb_, (unsigned long long)vb_, va_, \
				(unsigned long long)va_); \
		} \
	} while (0)

#define CHECK_STR(a, b) \
	do { \
		const char *sa_ = (a), *sb_ = (b); \
		check_count++; \
		if (strcmp(sa_, sb_) != 0) { \
			check_failures++; \
			fprintf(stderr, "%s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, \
				__LINE__, #a, sb_, sa_); \
		} \
	} while (0)

static inline int test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
