/*
 * String, memory and number helpers for a kernel without libc. Pure code: the
 * host unit tests link it too (there the compiler's own memcpy etc. are hidden
 * behind AMBER_HOST_TEST so the sanitizers keep their interceptors).
 */
#include "kernel/lib.h"

#ifndef AMBER_HOST_TEST
/* Eight bytes a step where the destination is aligned: an emulator (QEMU
 * TCG, Bochs) pays per iteration of a rep string instruction whatever its
 * width, so rep stosq fills 8x faster there (a restore zeroes the guest
 * pages its image leaves out: 186 MiB for a booted Linux of 256 MiB); on
 * hardware both widths run at the cache's speed (SDM Vol. 1 7.3.9.3 "Fast-String
 * Operation"). */
void *memset(void *dst, int c, size_t n)
{
	void *ret = dst;

	if (n >= 64 && !((u64)dst & 7)) {
		u64 q = n / 8, pat = 0x0101010101010101ULL * (u8)c;

		__asm__ volatile("rep stosq" : "+D"(dst), "+c"(q) : "a"(pat) : "memory");
		n %= 8;
	}
	__asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(c) : "memory");
	return ret;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *ret = dst;

	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
	return ret;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (d == s || n == 0)
		return dst;
	if (d < s || d >= s + n)
		return memcpy(dst, src, n);
	while (n--)
		d[n] = s[n];
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

char *strchr(const char *s, int c)
{
	for (;; s++) {
		if (*s == (char)c)
			return (char *)s;
		if (!*s)
			return NULL;
	}
}
#endif /* !AMBER_HOST_TEST */

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

size_t strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int parse_u64(const char *s, u64 *out)
{
	u64 v = 0;
	unsigned base = 10;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return -EINVAL;
	}
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -EINVAL;
		if (v > (~0ULL - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

int parse_size(const char *s, u64 *out)
{
	char num[32];
	size_t len;
	unsigned shift = 0;
	u64 v;
	int err;

	if (!s || !*s)
		return -EINVAL;
	len = strlen(s);
	if (len >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, len + 1);
	/* Accept K/M/G with an optional "iB" or "B": 64M, 64MB, 64MiB. */
	if (len > 3 && num[len - 2] == 'i' && (num[len - 1] == 'B' || num[len - 1] == 'b'))
		num[len -= 2] = '\0';
	else if (len > 2 && (num[len - 1] == 'B' || num[len - 1] == 'b') &&
		 strchr("KkMmGg", num[len - 2]))
		num[--len] = '\0';
	switch (num[len - 1]) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift)
		num[--len] = '\0';
	err = parse_u64(num, &v);
	if (err)
		return err;
	if (shift && v > (~0ULL >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

void format_size(char *buf, size_t len, u64 bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;
	u64 whole = bytes, tenths = 0;

	while (whole >= 1024 && u < ARRAY_SIZE(units) - 1) {
		tenths = (whole % 1024) * 10 / 1024;
		whole /= 1024;
		u++;
	}
	/* snprintf lives in format.c; avoid the dependency for this tiny case. */
	char tmp[32];
	int i = 0, j = 0;
	u64 w = whole;

	do {
		tmp[i++] = '0' + w % 10;
		w /= 10;
	} while (w);
	while (i && (size_t)j < len - 1)
		buf[j++] = tmp[--i];
	if (tenths && u && (size_t)j < len - 3) {
		buf[j++] = '.';
		buf[j++] = '0' + tenths;
	}
	if ((size_t)j < len - 1)
		buf[j++] = ' ';
	for (const char *p = units[u]; *p && (size_t)j < len - 1; p++)
		buf[j++] = *p;
	buf[j] = '\0';
}

const char *errno_name(int err)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ EPERM, "EPERM" },	    { ENOENT, "ENOENT" },   { EIO, "EIO" },
		{ E2BIG, "E2BIG" },	    { ENOEXEC, "ENOEXEC" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" },	    { EFAULT, "EFAULT" },   { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" },	    { ENODEV, "ENODEV" },   { EINVAL, "EINVAL" },
		{ ENOSPC, "ENOSPC" },	    { EROFS, "EROFS" },	    { ERANGE, "ERANGE" },
		{ ENOSYS, "ENOSYS" },	    { ENODATA, "ENODATA" }, { ETIMEDOUT, "ETIMEDOUT" },
		{ ECANCELED, "ECANCELED" }, { EBADMSG, "EBADMSG" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	};

	if (err < 0)
		err = -err;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].err == err)
			return names[i].name;
	return "E?";
}
