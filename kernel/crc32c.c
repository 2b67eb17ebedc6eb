/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, RFC 3720 B.4 "CRC32C"),
 * Amber's one checksum: snapshot sections, the store's catalog, `disk sum`.
 * In the kernel, on a CPU with SSE4.2, the CRC32 instruction computes it 8 bytes
 * at a time; everywhere else (older CPUs, amber-snap and the unit tests on the
 * host) slicing-by-8 tables fold 8 bytes per step. Both give the same results.
 */
#include "kernel/lib.h"
#ifndef AMBER_HOST_TEST
#include "kernel/cpu.h"
#endif

static u32 crc_tab[8][256];
static bool crc_ready;

static void crc_init(void)
{
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_tab[0][i] = c;
	}
	/* Table t holds the CRC of byte i followed by t zero bytes. */
	for (u32 i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^
					crc_tab[0][crc_tab[t - 1][i] & 0xff];
	crc_ready = true;
}

#ifndef AMBER_HOST_TEST
/* SDM Vol. 2A "CRC32 - Accumulate CRC32 Value": the instruction uses the
 * Castagnoli polynomial and works on general registers only, so the kernel may
 * use it although it is built with -mno-sse. Takes and returns the inverted CRC. */
static u32 crc32c_insn(u32 crc, const u8 *p, size_t len)
{
	u64 c = crc;

	for (; len && ((uintptr_t)p & 7); len--, p++)
		__asm__("crc32b %1, %k0" : "+r"(c) : "rm"(*p));
	for (; len >= 8; len -= 8, p += 8)
		__asm__("crc32q %1, %0" : "+r"(c) : "rm"(*(const u64 *)p));
	for (; len; len--, p++)
		__asm__("crc32b %1, %k0" : "+r"(c) : "rm"(*p));
	return (u32)c;
}
#endif

u32 crc32c(u32 crc, const void *data, size_t len)
{
	const u8 *p = data;

#ifndef AMBER_HOST_TEST
	if (cpu.sse42)
		return ~crc32c_insn(~crc, p, len);
#endif
	if (!crc_ready)
		crc_init();
	crc = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		/* Little-endian load of 8 bytes, the first 4 folded into the CRC. */
		u32 lo = (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
		u32 hi = (u32)p[4] | (u32)p[5] << 8 | (u32)p[6] << 16 | (u32)p[7] << 24;

		lo ^= crc;
		crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
		      crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
		      crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^
		      crc_tab[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
