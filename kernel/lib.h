/*
 * The few string and memory routines the kernel needs, written here since
 * Amber links no libc. Pure code: also built into the host unit tests.
 */
#ifndef AMBER_LIB_H
#define AMBER_LIB_H

#include "kernel/types.h"

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
size_t strlcpy(char *dst, const char *src, size_t size);

/* Parses an unsigned number: decimal, or hex with a 0x prefix. The whole
 * string must be the number. Returns 0 or -EINVAL / -ERANGE. */
int parse_u64(const char *s, u64 *out);
/* Parses a size such as 4096, 64K, 32M, 1G (binary units). */
int parse_size(const char *s, u64 *out);
/* Formats a byte count as "32 MiB", "1.5 GiB" or "512 B" into buf. */
void format_size(char *buf, size_t len, u64 bytes);

const char *errno_name(int err);

/* Copies a field one way or the other, for functions that serve both
 * directions (save and restore, get and set state) so that the two cannot
 * drift apart, as bhyve's vmm_snapshot does. `out`: from `live` to `rec`. */
#define XFER_FIELD(out, live, rec) ((out) ? (void)((rec) = (live)) : (void)((live) = (rec)))
/* The same for two arrays of one size. */
#define XFER_BYTES(out, live, rec) \
	do { \
		_Static_assert(sizeof(live) == sizeof(rec), "the two sides differ in size"); \
		if (out) \
			memcpy((rec), (live), sizeof(rec)); \
		else \
			memcpy((live), (rec), sizeof(live)); \
	} while (0) /* "EIO" for -5 or 5; "E?" if unknown */

/* CRC-32C (Castagnoli) as iSCSI, ext4 and NVMe use it (kernel/crc32c.c). */
u32 crc32c(u32 crc, const void *data, size_t len);
/* Kernel, boot only: picks the faster of the two implementations. */
void crc32c_init(void);

#endif
