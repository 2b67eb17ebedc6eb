/*
 * What the boot loader told Amber, reduced to one neutral record whether it came
 * from Multiboot 1 or Multiboot 2 (kernel/multiboot.c fills it at boot).
 */
#ifndef AMBER_BOOTINFO_H
#define AMBER_BOOTINFO_H

#include "kernel/types.h"

#define BOOT_MAX_MMAP 64
#define BOOT_MAX_MODULES 16

enum mem_type {
	MEM_USABLE = 1,
	MEM_RESERVED = 2,
	MEM_ACPI_RECLAIM = 3,
	MEM_ACPI_NVS = 4,
	MEM_BAD = 5,
};

struct mem_range {
	u64 base;
	u64 len;
	u32 type; /* enum mem_type; the Multiboot memory-map types */
};

struct boot_module {
	u64 start; /* physical, first byte */
	u64 end;   /* physical, one past the last byte */
	char cmdline[128];
};

struct boot_info {
	int multiboot_version;	  /* 1 or 2 */
	u64 info_phys, info_size; /* the loader's structure, kept reserved */
	char loader[64];
	char cmdline[256];
	struct mem_range mmap[BOOT_MAX_MMAP];
	int mmap_count;
	struct boot_module modules[BOOT_MAX_MODULES];
	int module_count;
	u64 rsdp_phys; /* 0 when the loader gave none: search the BIOS area */
	/* Linear framebuffer from the loader (Multiboot 2 tag 8), 0 if none. */
	u64 fb_phys;
	u32 fb_pitch, fb_width, fb_height;
	u8 fb_bpp;
	bool fb_is_text; /* EGA text mode at fb_phys (0xB8000) */
};

extern struct boot_info boot_info;

/* Parses the loader's structure; pure (the unit tests feed it captured bytes). */
int multiboot_parse(u32 magic, const void *info, struct boot_info *bi);

#endif
