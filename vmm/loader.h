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
#include "vmm/vcpu_state.h"

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

struct multiboot_mmap_entry {
	u32 size; /* of the rest of the entry: 20 */
	u64 addr, len;
	u32 type;
} __packed;
_Static_assert(sizeof(struct multiboot_mmap_entry) == 24, "Multiboot mmap entry is 24 bytes");

/* Where Amber puts the information structure and the boot GDT in guest RAM:
 * conventional memory, clear of where Multiboot kernels load (1 MiB and up). */
#define MB_INFO_AREA 0x9000
#define MB_INFO_AREA_END 0xA000
#define MB_GDT_GPA 0x9F00
#define MB_ENTRY_STACK 0x9000 /* ESP at entry: free memory below the info page */
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
 * Multiboot image, or malformed), -E2BIG (does not fit the RAM) or the
 * callback's error, and writes a one-line reason into err. */
int mb_load(const u8 *img, u64 size, const struct loader_target *t, struct mb_loaded *out,
	    char *err, size_t errlen);
/* Writes the Multiboot information (memory sizes, a memory map of the guest's
 * RAM, the command line, no modules) and the boot GDT into the info area.
 * Returns 0 or the callback's error. */
int mb_write_info(const struct loader_target *t, const char *cmdline, u32 *info_gpa);
/* The machine state of 3.2: 32-bit protected mode, paging off, flat 4 GiB code
 * and data segments, EAX = 0x2BADB002, EBX = info_gpa, EIP = entry. */
void mb_entry_state(struct vcpu_state *s, u32 entry, u32 info_gpa);
const char *mb_format_name(enum mb_format f);

#endif
