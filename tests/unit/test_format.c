/* Host unit test of Amber's printf formatter (kernel/format.c) and the number
 * and size helpers of kernel/lib.c. */
#include "tests/unit/check.h"
#include "kernel/lib.h"
#include "kernel/printk.h"

#pragma GCC diagnostic ignored "-Wformat"
#pragma GCC diagnostic ignored "-Wformat-extra-args"

static const char *fmt(const char *f, ...)
{
	static char buf[128];
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, sizeof(buf), f, ap);
	va_end(ap);
	return buf;
}

int main(void)
{
	char small[5];
	u64 v;
	char sz[32];

	CHECK_STR(fmt("%d", 0), "0");
	CHECK_STR(fmt("%d", -42), "-42");
	CHECK_STR(fmt("%5d|", 42), "   42|");
	CHECK_STR(fmt("%-5d|", 42), "42   |");
	CHECK_STR(fmt("%05d", -42), "-0042");
	CHECK_STR(fmt("%+d", 7), "+7");
	CHECK_STR(fmt("%u", 4294967295u), "4294967295");
	CHECK_STR(fmt("%x", 0xbeef), "beef");
	CHECK_STR(fmt("%X", 0xbeef), "BEEF");
	CHECK_STR(fmt("%08x", 0x1234), "00001234");
	CHECK_STR(fmt("%lx", 0xffffffffffffffffUL), "ffffffffffffffff");
	CHECK_STR(fmt("%lu", 18446744073709551615UL), "18446744073709551615");
	CHECK_STR(fmt("%ld", (long)-9223372036854775807L - 1), "-9223372036854775808");
	CHECK_STR(fmt("%016lx", 0x1UL), "0000000000000001");
	CHECK_STR(fmt("%s", "amber"), "amber");
	CHECK_STR(fmt("%8s|", "ab"), "      ab|");
	CHECK_STR(fmt("%-8s|", "ab"), "ab      |");
	CHECK_STR(fmt("%.3s", "abcdef"), "abc");
	CHECK_STR(fmt("%s", (char *)NULL), "(null)");
	CHECK_STR(fmt("%c%c", 'o', 'k'), "ok");
	CHECK_STR(fmt("%p", (void *)0x1000), "0x1000");
	CHECK_STR(fmt("100%%"), "100%");
	CHECK_STR(fmt("%zu", (size_t)12), "12");
	CHECK_STR(fmt("%q"), "%q"); /* unknown conversions stay visible */

	/* Truncation: the return value counts everything, the buffer stays terminated. */
	CHECK_EQ(snprintf(small, sizeof(small), "%s", "abcdefgh"), 8);
	CHECK_STR(small, "abcd");
	CHECK_EQ(snprintf(NULL, 0, "%d", 12345), 5);

	CHECK_EQ(parse_u64("1234", &v), 0);
	CHECK_EQ(v, 1234);
	CHECK_EQ(parse_u64("0x1F", &v), 0);
	CHECK_EQ(v, 31);
	CHECK_EQ(parse_u64("", &v), -EINVAL);
	CHECK_EQ(parse_u64("12a", &v), -EINVAL);
	CHECK_EQ(parse_u64("0x", &v), -EINVAL);
	CHECK_EQ(parse_u64("18446744073709551616", &v), -ERANGE);
	CHECK_EQ(parse_size("64M", &v), 0);
	CHECK_EQ(v, 64UL << 20);
	CHECK_EQ(parse_size("1G", &v), 0);
	CHECK_EQ(v, 1UL << 30);
	CHECK_EQ(parse_size("4096", &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(parse_size("32MiB", &v), 0);
	CHECK_EQ(v, 32UL << 20);
	CHECK_EQ(parse_size("16k", &v), 0);
	CHECK_EQ(v, 16384);
	CHECK_EQ(parse_size("M", &v), -EINVAL);
	CHECK_EQ(parse_size("-1M", &v), -EINVAL);
	CHECK_EQ(parse_size("99999999999999T", &v), -ERANGE);

	format_size(sz, sizeof(sz), 512);
	CHECK_STR(sz, "512 B");
	format_size(sz, sizeof(sz), 32UL << 20);
	CHECK_STR(sz, "32 MiB");
	format_size(sz, sizeof(sz), 3UL << 29);
	CHECK_STR(sz, "1.5 GiB");

	CHECK_STR(errno_name(-ETIMEDOUT), "ETIMEDOUT");
	CHECK_STR(errno_name(9999), "E?");
	/* CRC-32C check value from RFC 3720 B.4 "CRC Examples": 32 zero bytes. */
	{
		u8 zeros[32] = { 0 };
		CHECK_EQ(crc32c(0, zeros, sizeof(zeros)), 0x8A9136AA);
		CHECK_EQ(crc32c(0, "123456789", 9), 0xE3069283);
	}
	return test_done("format");
}
