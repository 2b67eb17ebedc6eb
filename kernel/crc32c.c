/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, RFC 3720 B.4 "CRC32C"),
 * Amber's one checksum: snapshot sections, the store's catalog, `disk sum`.
 * Two ways, same results: slicing-by-8 tables fold 8 bytes per step (everywhere;
 * amber-snap and the unit tests on the host use only these), and in the kernel
 * the CRC32 instruction of SSE4.2. On hardware the instruction is several times
 * faster, under an emulator (QEMU TCG) several times slower, so crc32c_init()
 * times both at boot and keeps the faster, as Linux does for its RAID6 and XOR
 * routines.
 */
#include "kernel/lib.h"
#ifndef AMBER_HOST_TEST
#include "kernel/cpu.h"
#include "kernel/printk.h"
#include "kernel/x86.h"

static bool use_insn;
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
	if (use_insn)
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

#ifndef AMBER_HOST_TEST
/* Times each way over the same 16 KiB (the kernel's own code: no allocation
 * needed) and keeps the faster; boot only, after cpu_init(). */
void crc32c_init(void)
{
	extern char _load_start[];
	const u32 len = 16384;
	u64 t0, t_table, t_insn;
	u32 a, b;

	if (!cpu.sse42)
		return;
	crc32c(0, _load_start, 64); /* builds the tables outside the timing */
	t0 = rdtsc();
	a = crc32c(0, _load_start, len);
	t_table = rdtsc() - t0;
	t0 = rdtsc();
	b = ~crc32c_insn(~0u, (const u8 *)_load_start, len);
	t_insn = rdtsc() - t0;
	if (a != b) {
		pr_warn("crc32c: the CRC32 instruction disagrees with the tables; not used");
		return;
	}
	use_insn = t_insn < t_table;
	pr_debug("crc32c: %s (CRC32 instruction %lu cycles, tables %lu cycles for 16 KiB)",
		 use_insn ? "CRC32 instruction" : "slicing-by-8 tables", t_insn, t_table);
}
#endif
