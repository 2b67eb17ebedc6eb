/*
 * Multiboot 1 as the specification defines it: what Amber reads when it is
 * booted (kernel/multiboot.c) and what it builds for its guests (vmm/loader.c).
 * Multiboot Specification 0.6.96 3.1 "OS image format", 3.3 "Boot information
 * format".
 */
#ifndef AMBER_MULTIBOOT_H
#define AMBER_MULTIBOOT_H

#include "kernel/types.h"

#define MULTIBOOT_HEADER_MAGIC 0x1BADB002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_SEARCH 8192

/* Header flags (3.1.2 "The magic fields of Multiboot header"). */
#define MULTIBOOT_PAGE_ALIGN BIT(0)
#define MULTIBOOT_MEMORY_INFO BIT(1)
#define MULTIBOOT_VIDEO_MODE BIT(2)
#define MULTIBOOT_AOUT_KLUDGE BIT(16)

/* Information flags (3.3). */
#define MULTIBOOT_INFO_MEMORY BIT(0)
#define MULTIBOOT_INFO_CMDLINE BIT(2)
#define MULTIBOOT_INFO_MODS BIT(3)
#define MULTIBOOT_INFO_MEM_MAP BIT(6)
#define MULTIBOOT_INFO_BOOT_LOADER_NAME BIT(9)
#define MULTIBOOT_INFO_FRAMEBUFFER BIT(12)

struct multiboot_info {
	u32 flags;
	u32 mem_lower, mem_upper;
	u32 boot_device;
	u32 cmdline;
	u32 mods_count, mods_addr;
	u32 syms[4];
	u32 mmap_length, mmap_addr;
	u32 drives_length, drives_addr;
	u32 config_table;
	u32 boot_loader_name;
	u32 apm_table;
	u32 vbe_control_info, vbe_mode_info;
	u16 vbe_mode, vbe_interface_seg, vbe_interface_off, vbe_interface_len;
	u64 framebuffer_addr;
	u32 framebuffer_pitch, framebuffer_width, framebuffer_height;
	u8 framebuffer_bpp, framebuffer_type;
	u8 color_info[6];
} __packed;
_Static_assert(sizeof(struct multiboot_info) == 116, "Multiboot 1 information is 116 bytes");
_Static_assert(offsetof(struct multiboot_info, framebuffer_addr) == 88, "Multiboot 1 info layout");

struct multiboot_module {
	u32 mod_start, mod_end, string, reserved;
} __packed;

struct multiboot_mmap_entry {
	u32 size; /* of the rest of the entry: 20 */
	u64 addr, len;
	u32 type;
} __packed;
_Static_assert(sizeof(struct multiboot_mmap_entry) == 24, "Multiboot mmap entry is 24 bytes");

#endif
