/*
 * Loads a Multiboot 1 kernel (ELF32, ELF64 or a.out-kludge image) into a
 * guest's RAM, builds its Multiboot information structure and describes the
 * entry state. Pure module: guest memory is reached through callbacks, so the
 * host unit tests feed it malformed images.
 * Multiboot Specification 0.6.96, 3.1 "OS image format", 3.2 "Machine state",
 * 3.3 "Boot information format".
 */
#ifndef AMBER_LOADER_H
#define AMBER_LOADER_H

#include "kernel/types.h"
#include "kernel/multiboot.h"
#include "vmm/vcpu_state.h"

/* The information page (the structure, memory map, names, command line and a
 * boot GDT at MB_GDT_OFFSET) and, under it, a page for the entry stack (ESP =
 * the information page). By default in conventional memory, clear of where
 * Multiboot kernels load (1 MiB and up); elsewhere when the image is there. */
#define MB_INFO_DEFAULT 0x9000
#define MB_INFO_SIZE 0x1000
#define MB_STACK_SIZE 0x1000
#define MB_MMAP_OFFSET 0x80
#define MB_GDT_OFFSET 0xF00
#define MB_BOOT_CS 0x08
#define MB_BOOT_DS 0x10

/* Guest memory as the loader sees it. */
struct loader_target {
	u64 mem_size;
	int (*write)(void *ctx, u64 gpa, const void *src, u64 len);
	int (*zero)(void *ctx, u64 gpa, u64 len);
	void *ctx;
};

enum mb_format {
	MB_FORMAT_AOUT,
	MB_FORMAT_ELF32,
	MB_FORMAT_ELF64
};

struct mb_loaded {
	enum mb_format format;
	u32 entry;
	u64 lo, hi; /* guest-physical range the image occupies, bss included */
	u32 header_flags;
};

/* Checks `img` and copies it into guest memory. On error returns -ENOEXEC (not a
 * Multiboot image, malformed, or reaching into [PLAT_EBDA, 1 MiB), where the
 * firmware tables go), -E2BIG (does not fit the RAM) or the
 * callback's error, and writes a one-line reason into err. */
int mb_load(const u8 *img, u64 size, const struct loader_target *t, struct mb_loaded *out,
	    char *err, size_t errlen);
/* Writes the Multiboot information (memory sizes, the memory map of
 * vmm/memmap.c, the command line, no modules) and the boot GDT into an
 * information page that, with the stack page under it, lies clear of the
 * loaded image `img` and of the reserved area below 1 MiB: MB_INFO_DEFAULT,
 * else the first free page of conventional memory, else the pages above the
 * image (above 1 MiB). Returns 0 with *info_gpa set, -ENOSPC (with the
 * reason in err) when the RAM has no such room, or the callback's error. */
int mb_write_info(const struct loader_target *t, const struct mb_loaded *img, const char *cmdline,
		  u32 *info_gpa, char *err, size_t errlen);
/* The machine state of 3.2: 32-bit protected mode, paging off, flat 4 GiB code
 * and data segments, EAX = 0x2BADB002, EBX = info_gpa, EIP = entry, the boot
 * GDT in the information page and ESP at its start. */
void mb_entry_state(struct vcpu_state *s, u32 entry, u32 info_gpa);
const char *mb_format_name(enum mb_format f);
/* True when `img` has a valid Multiboot 1 header in its first 8 KiB (what
 * mb_load looks for first); says nothing of whether it will load. */
bool mb_probe(const u8 *img, u64 size);

#endif
