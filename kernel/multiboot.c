/*
 * Reads the boot loader's information (Multiboot 1 or 2) into struct boot_info.
 * Runs once at boot, before the allocator exists; pure apart from reading the
 * loader's memory through phys_to_virt, so the unit tests feed it built buffers.
 * Multiboot Specification 0.6.96 3.3 "Boot information format";
 * Multiboot2 Specification 1.0 3.6 "Boot information".
 */
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/multiboot.h"

#define MB2_BOOTLOADER_MAGIC 0x36D76289

struct mb2_tag {
	u32 type, size;
} __packed;

enum {
	MB2_TAG_END = 0,
	MB2_TAG_CMDLINE = 1,
	MB2_TAG_LOADER_NAME = 2,
	MB2_TAG_MODULE = 3,
	MB2_TAG_MMAP = 6,
	MB2_TAG_FRAMEBUFFER = 8,
	MB2_TAG_ACPI_OLD = 14,
	MB2_TAG_ACPI_NEW = 15,
};

#define FB_TYPE_EGA_TEXT 2

static void copy_str(char *dst, size_t size, u64 phys)
{
	if (phys)
		strlcpy(dst, phys_to_virt(phys), size);
}

static void add_range(struct boot_info *bi, u64 base, u64 len, u32 type)
{
	if (bi->mmap_count >= BOOT_MAX_MMAP || len == 0)
		return;
	/* Types other than 1-5 are reserved by the spec: treat them as such. */
	if (type < MEM_USABLE || type > MEM_BAD)
		type = MEM_RESERVED;
	bi->mmap[bi->mmap_count++] = (struct mem_range){ base, len, type };
}

static void add_module(struct boot_info *bi, u64 start, u64 end, const char *cmdline, size_t max)
{
	struct boot_module *m;
	size_t n;

	if (bi->module_count >= BOOT_MAX_MODULES || end <= start)
		return;
	m = &bi->modules[bi->module_count++];
	m->start = start;
	m->end = end;
	n = strnlen(cmdline, max);
	if (n >= sizeof(m->cmdline))
		n = sizeof(m->cmdline) - 1;
	memcpy(m->cmdline, cmdline, n);
	m->cmdline[n] = '\0';
}

static int parse_mb1(const struct multiboot_info *mi, struct boot_info *bi)
{
	bi->multiboot_version = 1;
	bi->info_size = sizeof(*mi);
	if (mi->flags & MULTIBOOT_INFO_CMDLINE)
		copy_str(bi->cmdline, sizeof(bi->cmdline), mi->cmdline);
	if (mi->flags & MULTIBOOT_INFO_BOOT_LOADER_NAME)
		copy_str(bi->loader, sizeof(bi->loader), mi->boot_loader_name);
	if (mi->flags & MULTIBOOT_INFO_MODS) {
		const struct multiboot_module *mod = phys_to_virt(mi->mods_addr);

		for (u32 i = 0; i < mi->mods_count; i++)
			add_module(bi, mod[i].mod_start, mod[i].mod_end,
				   mod[i].string ? (const char *)phys_to_virt(mod[i].string) : "",
				   256);
	}
	if (mi->flags & MULTIBOOT_INFO_MEM_MAP) {
		u64 p = mi->mmap_addr, end = p + mi->mmap_length;

		while (p + sizeof(struct multiboot_mmap_entry) <= end) {
			const struct multiboot_mmap_entry *e = phys_to_virt(p);

			add_range(bi, e->addr, e->len, e->type);
			p += e->size + sizeof(e->size);
		}
	} else if (mi->flags & MULTIBOOT_INFO_MEMORY) {
		add_range(bi, 0, (u64)mi->mem_lower << 10, MEM_USABLE);
		add_range(bi, MiB(1), (u64)mi->mem_upper << 10, MEM_USABLE);
	}
	if (mi->flags & MULTIBOOT_INFO_FRAMEBUFFER) {
		bi->fb_phys = mi->framebuffer_addr;
		bi->fb_pitch = mi->framebuffer_pitch;
		bi->fb_width = mi->framebuffer_width;
		bi->fb_height = mi->framebuffer_height;
		bi->fb_bpp = mi->framebuffer_bpp;
		bi->fb_is_text = mi->framebuffer_type == FB_TYPE_EGA_TEXT;
	} else {
		/* A Multiboot 1 loader that reports no framebuffer left the BIOS's
		 * VGA text mode in place (QEMU -kernel, GRUB legacy). */
		bi->fb_phys = 0xB8000;
		bi->fb_is_text = true;
	}
	return 0;
}

static int parse_mb2(const u8 *info, struct boot_info *bi)
{
	u32 total = *(const u32 *)info;
	u32 off = 8;

	bi->multiboot_version = 2;
	bi->info_size = total;
	if (total < 16 || total > MiB(1))
		return -EINVAL;
	while (off + sizeof(struct mb2_tag) <= total) {
		const struct mb2_tag *tag = (const void *)(info + off);
		const u8 *body = (const u8 *)(tag + 1);
		u32 body_len;

		if (tag->size < sizeof(*tag) || off + tag->size > total)
			return -EINVAL;
		body_len = tag->size - sizeof(*tag);
		switch (tag->type) {
		case MB2_TAG_END:
			return 0;
		case MB2_TAG_CMDLINE:
			strlcpy(bi->cmdline, "", sizeof(bi->cmdline));
			memcpy(bi->cmdline, body, MIN(body_len, sizeof(bi->cmdline) - 1));
			bi->cmdline[MIN(body_len, sizeof(bi->cmdline) - 1)] = '\0';
			break;
		case MB2_TAG_LOADER_NAME:
			memcpy(bi->loader, body, MIN(body_len, sizeof(bi->loader) - 1));
			bi->loader[MIN(body_len, sizeof(bi->loader) - 1)] = '\0';
			break;
		case MB2_TAG_MODULE:
			if (body_len >= 8)
				add_module(bi, ((const u32 *)body)[0], ((const u32 *)body)[1],
					   (const char *)body + 8, body_len - 8);
			break;
		case MB2_TAG_MMAP: {
			u32 esize = ((const u32 *)body)[0];

			if (body_len < 8 || esize < 24)
				return -EINVAL;
			for (u32 p = 8; p + esize <= body_len; p += esize) {
				const u8 *e = body + p;

				add_range(bi, *(const u64 *)e, *(const u64 *)(e + 8),
					  *(const u32 *)(e + 16));
			}
			break;
		}
		case MB2_TAG_FRAMEBUFFER:
			if (body_len >= 22) {
				bi->fb_phys = *(const u64 *)body;
				bi->fb_pitch = *(const u32 *)(body + 8);
				bi->fb_width = *(const u32 *)(body + 12);
				bi->fb_height = *(const u32 *)(body + 16);
				bi->fb_bpp = body[20];
				bi->fb_is_text = body[21] == FB_TYPE_EGA_TEXT;
			}
			break;
		case MB2_TAG_ACPI_OLD:
		case MB2_TAG_ACPI_NEW:
			/* The tag holds a copy of the RSDP; prefer the ACPI 2.0 one. */
			if (!bi->rsdp_phys || tag->type == MB2_TAG_ACPI_NEW)
				bi->rsdp_phys = virt_to_phys(body);
			break;
		default:
			break;
		}
		off = ALIGN_UP(off + tag->size, 8);
	}
	return 0;
}

int multiboot_parse(u32 magic, const void *info, struct boot_info *bi)
{
	memset(bi, 0, sizeof(*bi));
	bi->info_phys = virt_to_phys(info);
	if (magic == MULTIBOOT_BOOTLOADER_MAGIC)
		return parse_mb1(info, bi);
	if (magic == MB2_BOOTLOADER_MAGIC)
		return parse_mb2(info, bi);
	return -EINVAL;
}
