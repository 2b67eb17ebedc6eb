/*
 * libFuzzer target: the Linux bzImage loader (vmm/linux.c) on a hostile
 * image, initrd, RAM size and memory map. Every write is checked against the
 * guest RAM here, so a write outside it is a crash; so is a loaded layout that
 * breaks the boot protocol's rules (kernel or initrd outside RAM, overlapping,
 * an initrd above initrd_addr_max or not page aligned). Host only.
 * Input: 4 bytes of parameters (RAM in MiB, initrd length, a reserved hole in
 * the map), then the bzImage; the initrd is the image's last bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "vmm/linux.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define RAM_MAX (64u << 20)
static u8 ram[RAM_MAX];
static u64 ram_size;

static int ram_write(void *ctx, u64 gpa, const void *src, u64 len)
{
	if (gpa > ram_size || len > ram_size - gpa)
		abort(); /* the loader must have refused this already */
	memcpy(ram + gpa, src, len);
	return 0;
}

static int ram_zero(void *ctx, u64 gpa, u64 len)
{
	if (gpa > ram_size || len > ram_size - gpa)
		abort();
	memset(ram + gpa, 0, len);
	return 0;
}

static u32 get32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

static bool overlap(u64 a, u64 alen, u64 b, u64 blen) { return a < b + blen && b < a + alen; }

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct loader_target t = { 0, ram_write, ram_zero, NULL };
	struct mem_range map[4];
	struct linux_params p = { .cmdline = "console=ttyS0", .rsdp = 0xE0000 };
	struct linux_loaded l;
	static struct vcpu_state s;
	const u8 *img = data + 4;
	u64 n = size - 4, hole;
	char err[160];

	if (size < 4)
		return 0;
	ram_size = t.mem_size = MiB(data[0] % 63 + 2) /* 2 to 64 MiB */;
	p.initrd_size = MIN((u64)(data[1] | data[2] << 8), n);
	p.initrd = p.initrd_size ? img + n - p.initrd_size : NULL;
	hole = MiB(data[3] % 64);
	map[0] = (struct mem_range){ 0, 0x9FC00, MEM_USABLE };
	map[1] = (struct mem_range){ 0x9FC00, 0x100000 - 0x9FC00, MEM_RESERVED };
	map[2] = (struct mem_range){ 0x100000, ram_size - 0x100000, MEM_USABLE };
	p.map = map;
	p.nmap = 3;
	if (hole >= MiB(1) && hole + MiB(1) < ram_size) { /* a reserved MiB in the RAM */
		map[2].len = hole - MiB(1);
		map[3] = (struct mem_range){ hole, MiB(1), MEM_RESERVED };
		p.nmap = 4;
	}
	if (linux_load(img, n, &p, &t, &l, err, sizeof(err)))
		return 0;
	if (strlen(err) || l.kernel < MiB(1) || l.kernel_end > ram_size ||
	    l.kernel_end < l.kernel + l.kernel_size)
		abort();
	if (p.initrd) {
		u32 max = l.version >= 0x0203 ? get32(img + LINUX_INITRD_ADDR_MAX) : 0x37FFFFFF;

		if (l.initrd % 4096 || l.initrd < MiB(1) || l.initrd + l.initrd_size > ram_size ||
		    l.initrd + l.initrd_size - 1 > max ||
		    overlap(l.initrd, l.initrd_size, l.kernel, l.kernel_end - l.kernel) ||
		    (p.nmap == 4 && overlap(l.initrd, l.initrd_size, hole, MiB(1))))
			abort();
	}
	if (p.nmap == 4 && overlap(l.kernel, l.kernel_end - l.kernel, hole, MiB(1)))
		abort();
	linux_entry_state(&s, &l);
	return 0;
}

/* The seed: a protocol 2.15 bzImage as Debian's kernel has it, small. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static u8 seed[4 + 5 * 512 + 4096];
	const char *dir = getenv("AMBER_FUZZ_SEED_DIR");
	u8 *h = seed + 4;
	char path[512];
	FILE *f;

	if (!dir)
		return 0;
	seed[0] = 30;	/* 32 MiB */
	seed[1] = 0x80; /* a 128-byte initrd */
	seed[3] = 20;	/* a hole at 20 MiB */
	h[LINUX_SETUP_SECTS] = 4;
	h[LINUX_SYSSIZE + 1] = 1; /* 256 units of 16 bytes */
	h[LINUX_BOOT_FLAG] = 0x55, h[LINUX_BOOT_FLAG + 1] = 0xAA;
	h[LINUX_JUMP] = 0xEB, h[LINUX_JUMP + 1] = 0x6A;
	memcpy(h + LINUX_HEADER, "HdrS", 4);
	h[LINUX_VERSION] = 0x0F, h[LINUX_VERSION + 1] = 2;
	h[LINUX_LOADFLAGS] = LINUX_LOADED_HIGH;
	h[LINUX_INITRD_ADDR_MAX] = 0xFF, h[LINUX_INITRD_ADDR_MAX + 1] = 0xFF;
	h[LINUX_INITRD_ADDR_MAX + 2] = 0xFF, h[LINUX_INITRD_ADDR_MAX + 3] = 0x7F;
	h[LINUX_KERNEL_ALIGNMENT + 2] = 0x20; /* 2 MiB */
	h[LINUX_RELOCATABLE] = 1;
	h[LINUX_XLOADFLAGS] = 0x7F;
	h[LINUX_CMDLINE_SIZE] = 0xFF, h[LINUX_CMDLINE_SIZE + 1] = 0x07;
	h[LINUX_PREF_ADDRESS + 3] = 0x01; /* 16 MiB */
	h[LINUX_INIT_SIZE + 2] = 0x40;	  /* 4 MiB */
	snprintf(path, sizeof(path), "%s/bzimage-2.15", dir);
	f = fopen(path, "wb");
	if (!f || fwrite(seed, 1, sizeof(seed), f) != sizeof(seed))
		abort();
	fclose(f);
	exit(0);
}
