/*
 * The Multiboot 1 loader for guests: finds the header, loads an a.out-kludge
 * image or the PT_LOAD segments of an ELF32/ELF64, refuses malformed or
 * oversized images with one line saying why, and writes the information
 * structure the kernel expects. Pure: host context or host unit tests.
 * Multiboot Specification 0.6.96 3.1-3.3; System V gABI "Program Header".
 */
#include "vmm/loader.h"
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "vmm/memmap.h"
#include "vmm/platform.h"

#define EI_CLASS 4
#define EI_DATA 5
#define ELFCLASS32 1
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define ET_EXEC 2
#define EM_386 3
#define EM_X86_64 62
#define PT_LOAD 1
#define MAX_SEGMENTS 32

struct elf32_ehdr {
	u8 e_ident[16];
	u16 e_type, e_machine;
	u32 e_version, e_entry, e_phoff, e_shoff, e_flags;
	u16 e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
} __packed;
struct elf32_phdr {
	u32 p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align;
} __packed;
struct elf64_ehdr {
	u8 e_ident[16];
	u16 e_type, e_machine;
	u32 e_version;
	u64 e_entry, e_phoff, e_shoff;
	u32 e_flags;
	u16 e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
} __packed;
struct elf64_phdr {
	u32 p_type, p_flags;
	u64 p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
} __packed;
_Static_assert(sizeof(struct elf32_ehdr) == 52 && sizeof(struct elf32_phdr) == 32, "ELF32");
_Static_assert(sizeof(struct elf64_ehdr) == 64 && sizeof(struct elf64_phdr) == 56, "ELF64");

struct mb_header {
	u32 magic, flags, checksum;
	u32 header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
} __packed;

struct segment {
	u64 paddr, vaddr, memsz, filesz, offset;
};

static int fail(char *err, size_t len, int code, const char *fmt, ...) __printf(4, 5);
static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return code;
}

static u32 get32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

/* Offset of a valid Multiboot 1 header (magic + flags + checksum == 0) in the
 * first 8 KiB, 4-byte aligned; -1 if none. */
static s64 find_header(const u8 *img, u64 size)
{
	u64 end = MIN(size, (u64)MULTIBOOT_SEARCH);

	for (u64 off = 0; off + 12 <= end; off += 4)
		if (get32(img + off) == MULTIBOOT_HEADER_MAGIC &&
		    get32(img + off) + get32(img + off + 4) + get32(img + off + 8) == 0)
			return (s64)off;
	return -1;
}

/* True when [lo, hi) touches the reserved low area [PLAT_EBDA, 1 MiB): the
 * EBDA, the VGA window and the firmware tables Amber writes there. */
static bool in_low_hole(u64 lo, u64 hi) { return lo < PLAT_BIOS_AREA_END && hi > PLAT_EBDA; }

/* Checks the segments against each other, the RAM and the reserved low area. */
static int check_segments(const struct segment *seg, int n, u64 mem_size, u64 *lo, u64 *hi,
			  char *err, size_t errlen)
{
	char have[24];

	*lo = ~0ULL;
	*hi = 0;
	for (int i = 0; i < n; i++) {
		u64 end = seg[i].paddr + seg[i].memsz;

		if (end < seg[i].paddr || end > GiB(4))
			return fail(err, errlen, -ENOEXEC,
				    "segment at 0x%lx+0x%lx does not fit below 4 GiB", seg[i].paddr,
				    seg[i].memsz);
		for (int j = 0; j < i; j++)
			if (seg[i].paddr < seg[j].paddr + seg[j].memsz && seg[j].paddr < end)
				return fail(err, errlen, -ENOEXEC,
					    "segments overlap: 0x%lx-0x%lx and 0x%lx-0x%lx",
					    seg[j].paddr, seg[j].paddr + seg[j].memsz - 1,
					    seg[i].paddr, end - 1);
		if (in_low_hole(seg[i].paddr, end))
			return fail(
				err, errlen, -ENOEXEC,
				"segment at 0x%lx-0x%lx overlaps the reserved area 0x%llx-0xfffff "
				"(firmware tables, VGA window)",
				seg[i].paddr, end - 1, PLAT_EBDA);
		*lo = MIN(*lo, seg[i].paddr);
		*hi = MAX(*hi, end);
	}
	if (*hi > mem_size) {
		format_size(have, sizeof(have), mem_size);
		return fail(
			err, errlen, -E2BIG,
			"image larger than the VM's RAM: it needs memory up to 0x%lx, the VM has %s",
			*hi, have);
	}
	return 0;
}

/* Reads the a.out-kludge address fields (3.1.3 "The address fields of Multiboot
 * header") into one segment. */
static int parse_aout(const u8 *img, u64 size, u64 hoff, struct segment *seg, u32 *entry, char *err,
		      size_t errlen)
{
	struct mb_header h;
	u64 load_end, bss_end, file_off;

	if (hoff + sizeof(h) > size)
		return fail(err, errlen, -ENOEXEC,
			    "truncated: the Multiboot address fields are cut off");
	memcpy(&h, img + hoff, sizeof(h));
	if (h.header_addr < h.load_addr || h.header_addr - h.load_addr > hoff)
		return fail(
			err, errlen, -ENOEXEC,
			"bad address fields: header_addr 0x%x and load_addr 0x%x do not match the file",
			h.header_addr, h.load_addr);
	file_off = hoff - (h.header_addr - h.load_addr);
	load_end = h.load_end_addr ? h.load_end_addr : h.load_addr + (size - file_off);
	if (load_end < h.load_addr)
		return fail(err, errlen, -ENOEXEC,
			    "bad address fields: load_end_addr 0x%x below load_addr 0x%x",
			    h.load_end_addr, h.load_addr);
	if (file_off + (load_end - h.load_addr) > size)
		return fail(err, errlen, -ENOEXEC,
			    "truncated: the header says %lu bytes to load, the file has %lu",
			    load_end - h.load_addr, size - file_off);
	bss_end = h.bss_end_addr ? h.bss_end_addr : load_end;
	if (bss_end < load_end)
		return fail(err, errlen, -ENOEXEC,
			    "bad address fields: bss_end_addr 0x%x below load_end 0x%lx",
			    h.bss_end_addr, load_end);
	*seg = (struct segment){ .paddr = h.load_addr,
				 .vaddr = h.load_addr,
				 .memsz = bss_end - h.load_addr,
				 .filesz = load_end - h.load_addr,
				 .offset = file_off };
	*entry = h.entry_addr;
	return 0;
}

/* Collects the PT_LOAD segments of an ELF32 or ELF64 executable. */
static int parse_elf(const u8 *img, u64 size, struct segment *seg, int *nseg, u64 *entry,
		     enum mb_format *fmt, char *err, size_t errlen)
{
	bool is64;
	u64 phoff, phentsize, phnum;
	u16 machine, type;

	if (size < sizeof(struct elf32_ehdr) || memcmp(img, "\177ELF", 4) != 0)
		return fail(err, errlen, -ENOEXEC,
			    "not ELF and no a.out-kludge address fields in the Multiboot header");
	if (img[EI_CLASS] != ELFCLASS32 && img[EI_CLASS] != ELFCLASS64)
		return fail(err, errlen, -ENOEXEC, "ELF class %u is neither 32- nor 64-bit",
			    img[EI_CLASS]);
	if (img[EI_DATA] != ELFDATA2LSB)
		return fail(err, errlen, -ENOEXEC, "ELF file is not little-endian");
	is64 = img[EI_CLASS] == ELFCLASS64;
	if (is64) {
		struct elf64_ehdr eh;

		if (size < sizeof(eh))
			return fail(err, errlen, -ENOEXEC,
				    "truncated: the ELF64 header is cut off");
		memcpy(&eh, img, sizeof(eh));
		machine = eh.e_machine;
		type = eh.e_type;
		phoff = eh.e_phoff;
		phentsize = eh.e_phentsize;
		phnum = eh.e_phnum;
		*entry = eh.e_entry;
	} else {
		struct elf32_ehdr eh;

		memcpy(&eh, img, sizeof(eh));
		machine = eh.e_machine;
		type = eh.e_type;
		phoff = eh.e_phoff;
		phentsize = eh.e_phentsize;
		phnum = eh.e_phnum;
		*entry = eh.e_entry;
	}
	*fmt = is64 ? MB_FORMAT_ELF64 : MB_FORMAT_ELF32;
	if (machine != (is64 ? EM_X86_64 : EM_386))
		return fail(err, errlen, -ENOEXEC, "ELF machine %u is not x86", machine);
	if (type != ET_EXEC)
		return fail(err, errlen, -ENOEXEC, "ELF type %u is not an executable", type);
	if (phentsize != (is64 ? sizeof(struct elf64_phdr) : sizeof(struct elf32_phdr)))
		return fail(err, errlen, -ENOEXEC, "ELF program header size %lu is wrong",
			    phentsize);
	if (phoff > size || phnum * phentsize > size - phoff)
		return fail(err, errlen, -ENOEXEC,
			    "truncated: the ELF program headers are cut off");
	*nseg = 0;
	for (u64 i = 0; i < phnum; i++) {
		const u8 *p = img + phoff + i * phentsize;
		struct segment s;
		u32 ptype;

		if (is64) {
			struct elf64_phdr ph;

			memcpy(&ph, p, sizeof(ph));
			ptype = ph.p_type;
			s = (struct segment){ ph.p_paddr, ph.p_vaddr, ph.p_memsz, ph.p_filesz,
					      ph.p_offset };
		} else {
			struct elf32_phdr ph;

			memcpy(&ph, p, sizeof(ph));
			ptype = ph.p_type;
			s = (struct segment){ ph.p_paddr, ph.p_vaddr, ph.p_memsz, ph.p_filesz,
					      ph.p_offset };
		}
		if (ptype != PT_LOAD || s.memsz == 0)
			continue;
		if (s.filesz > s.memsz)
			return fail(err, errlen, -ENOEXEC,
				    "ELF segment %lu has more file bytes than memory", i);
		if (s.offset > size || s.filesz > size - s.offset)
			return fail(
				err, errlen, -ENOEXEC,
				"truncated: ELF segment %lu needs file bytes 0x%lx-0x%lx, the file has 0x%lx",
				i, s.offset, s.offset + s.filesz, size);
		if (*nseg == MAX_SEGMENTS)
			return fail(err, errlen, -ENOEXEC, "more than %d loadable ELF segments",
				    MAX_SEGMENTS);
		seg[(*nseg)++] = s;
	}
	if (!*nseg)
		return fail(err, errlen, -ENOEXEC, "the ELF file has no loadable segments");
	/* An entry given as a virtual address is translated like GRUB does: through
	 * the segment whose virtual range holds it. */
	for (int i = 0; i < *nseg; i++)
		if (seg[i].vaddr != seg[i].paddr && *entry >= seg[i].vaddr &&
		    *entry - seg[i].vaddr < seg[i].memsz) {
			*entry = *entry - seg[i].vaddr + seg[i].paddr;
			break;
		}
	return 0;
}

int mb_load(const u8 *img, u64 size, const struct loader_target *t, struct mb_loaded *out,
	    char *err, size_t errlen)
{
	struct segment seg[MAX_SEGMENTS];
	s64 hoff = find_header(img, size);
	int nseg = 1, ret;
	u64 entry = 0;
	u32 flags, e32 = 0;
	bool in_segment = false;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (hoff < 0)
		return fail(err, errlen, -ENOEXEC,
			    "not a Multiboot image: no Multiboot 1 header in the first 8 KiB");
	flags = get32(img + hoff + 4);
	out->header_flags = flags;
	/* Bits 0-15 are requirements; Amber meets 0 and 1 and ignores 2 (video)
	 * like QEMU does. Anything else it cannot promise. */
	if (flags & 0xFFF8)
		return fail(
			err, errlen, -ENOEXEC,
			"the Multiboot header requires features Amber does not offer (flags 0x%x)",
			flags);
	if (flags & MULTIBOOT_AOUT_KLUDGE) {
		out->format = MB_FORMAT_AOUT;
		ret = parse_aout(img, size, (u64)hoff, &seg[0], &e32, err, errlen);
		entry = e32;
	} else {
		ret = parse_elf(img, size, seg, &nseg, &entry, &out->format, err, errlen);
	}
	if (ret)
		return ret;
	ret = check_segments(seg, nseg, t->mem_size, &out->lo, &out->hi, err, errlen);
	if (ret)
		return ret;
	if (entry >= t->mem_size)
		return fail(err, errlen, -ENOEXEC, "entry point 0x%lx is outside the guest's RAM",
			    entry);
	for (int i = 0; i < nseg; i++)
		in_segment |= entry >= seg[i].paddr && entry - seg[i].paddr < seg[i].memsz;
	if (!in_segment)
		return fail(err, errlen, -ENOEXEC,
			    "entry point 0x%lx is not inside the loaded image", entry);
	out->entry = (u32)entry;
	for (int i = 0; i < nseg; i++) {
		ret = t->write(t->ctx, seg[i].paddr, img + seg[i].offset, seg[i].filesz);
		if (!ret && seg[i].memsz > seg[i].filesz)
			ret = t->zero(t->ctx, seg[i].paddr + seg[i].filesz,
				      seg[i].memsz - seg[i].filesz);
		if (ret)
			return fail(err, errlen, ret,
				    "could not write the image into guest memory");
	}
	return 0;
}

/* The information page at `p` and the stack page under it: inside RAM below
 * 4 GiB, above page 0, clear of the image [lo, hi) and of the reserved low
 * area (the firmware tables). */
static bool info_fits(u64 p, u64 lo, u64 hi, u64 mem)
{
	u64 start = p - MB_STACK_SIZE, end = p + MB_INFO_SIZE;

	return p >= MB_STACK_SIZE + 0x1000 && end <= mem && end <= GiB(4) &&
	       (end <= lo || start >= hi) && !in_low_hole(start, end);
}

static int place_info(const struct loader_target *t, const struct mb_loaded *img, u32 *gpa,
		      char *err, size_t errlen)
{
	u64 above = ALIGN_UP(img->hi, 0x1000) + MB_STACK_SIZE;

	/* Right above an image in conventional memory is the reserved area:
	 * then the first pages above 1 MiB. */
	if (in_low_hole(above - MB_STACK_SIZE, above + MB_INFO_SIZE))
		above = PLAT_BIOS_AREA_END + MB_STACK_SIZE;

	if (info_fits(MB_INFO_DEFAULT, img->lo, img->hi, t->mem_size)) {
		*gpa = MB_INFO_DEFAULT;
		return 0;
	}
	/* Conventional memory below the EBDA and the VGA window, then above. */
	for (u64 p = ALIGN_DOWN(PLAT_EBDA, 0x1000) - MB_INFO_SIZE; p >= MB_STACK_SIZE + 0x1000;
	     p -= 0x1000) {
		if (info_fits(p, img->lo, img->hi, t->mem_size)) {
			*gpa = (u32)p;
			return 0;
		}
	}
	if (info_fits(above, img->lo, img->hi, t->mem_size)) {
		*gpa = (u32)above;
		return 0;
	}
	return fail(err, errlen, -ENOSPC,
		    "no 8 KiB of RAM below 4 GiB clear of the image (0x%lx-0x%lx) for the "
		    "Multiboot information and the entry stack",
		    img->lo, img->hi - 1);
}

int mb_write_info(const struct loader_target *t, const struct mb_loaded *img, const char *cmdline,
		  u32 *info_gpa, char *err, size_t errlen)
{
	static u8 area[MB_INFO_SIZE];
	struct multiboot_info *mbi = (struct multiboot_info *)area;
	struct multiboot_mmap_entry *mm = (struct multiboot_mmap_entry *)(area + MB_MMAP_OFFSET);
	static const char loader_name[] = "Amber";
	const u32 name_off = 0x1C0, cmd_off = 0x200, cmd_max = 0xC00;
	u64 mem = t->mem_size, *gdt = (u64 *)(area + MB_GDT_OFFSET);
	struct e820_entry map[MEMMAP_MAX];
	u32 base = 0;
	int n, ret = place_info(t, img, &base, err, errlen);

	_Static_assert(MB_MMAP_OFFSET + MEMMAP_MAX * sizeof(*mm) <= 0x1C0, "mmap fits");
	if (ret)
		return ret;
	memset(area, 0, sizeof(area));
	mbi->flags = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MODS |
		     MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_BOOT_LOADER_NAME;
	mbi->mem_lower = (u32)(MIN(mem, PLAT_EBDA) >> 10); /* 639: the EBDA follows */
	/* Upper memory ends at the first hole above 1 MiB (3.3 "Boot information
	 * format"): the IOAPIC page, for a VM that large. */
	mbi->mem_upper = mem > MiB(1) ? (u32)((MIN(mem, PLAT_IOAPIC_BASE) - MiB(1)) >> 10) : 0;
	/* The platform's map (vmm/memmap.c): the EBDA, VGA window and firmware
	 * tables below 1 MiB and the APIC pages reserved, RAM around them. */
	n = memmap_build(mem, map);
	for (int i = 0; i < n; i++)
		mm[i] = (struct multiboot_mmap_entry){ 20, map[i].addr, map[i].len, map[i].type };
	mbi->mmap_addr = base + MB_MMAP_OFFSET;
	mbi->mmap_length = n * sizeof(*mm);
	memcpy(area + name_off, loader_name, sizeof(loader_name));
	mbi->boot_loader_name = base + name_off;
	strlcpy((char *)area + cmd_off, cmdline ? cmdline : "", cmd_max);
	mbi->cmdline = base + cmd_off;
	/* A flat GDT for the entry state (selectors MB_BOOT_CS and MB_BOOT_DS), in
	 * case the kernel reloads a segment before it has a GDT of its own. */
	gdt[0] = 0;
	gdt[1] = 0x00CF9B000000FFFFULL; /* 32-bit code, base 0, limit 4 GiB */
	gdt[2] = 0x00CF93000000FFFFULL; /* 32-bit data */
	*info_gpa = base;
	ret = t->write(t->ctx, base, area, sizeof(area));
	if (ret)
		fail(err, errlen, ret, "could not write the Multiboot information");
	return ret;
}

void mb_entry_state(struct vcpu_state *s, u32 entry, u32 info_gpa)
{
	const struct vcpu_segment code = { MB_BOOT_CS, 0xC9B, 0xFFFFFFFF, 0 };
	const struct vcpu_segment data = { MB_BOOT_DS, 0xC93, 0xFFFFFFFF, 0 };

	memset(s, 0, sizeof(*s));
	s->regs[REG_RAX] = MULTIBOOT_BOOTLOADER_MAGIC;
	s->regs[REG_RBX] = info_gpa;
	s->regs[REG_RSP] = info_gpa;
	s->rip = entry;
	s->rflags = 0x2;
	s->cr0 = 0x11;			/* PE | ET: protected mode, paging off */
	s->pat = 0x0007040600070406ULL; /* the power-on PAT */
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->ldtr = (struct vcpu_segment){ 0, 0, 0, 0 };	     /* unusable */
	s->tr = (struct vcpu_segment){ 0, 0x8B, 0xFFFF, 0 }; /* busy 32-bit TSS */
	s->gdtr = (struct vcpu_dtable){ info_gpa + MB_GDT_OFFSET, 3 * 8 - 1, 0 };
	s->idtr = (struct vcpu_dtable){ 0, 0, 0 }; /* none: the kernel sets its own */
	s->dr6 = 0xFFFF0FF0;
	s->dr7 = 0x400;
	s->xcr0 = 1;
	s->xsave_size = 0; /* FPU in its initial state */
}

const char *mb_format_name(enum mb_format f)
{
	switch (f) {
	case MB_FORMAT_AOUT:
		return "a.out kludge";
	case MB_FORMAT_ELF32:
		return "ELF32";
	case MB_FORMAT_ELF64:
		return "ELF64";
	}
	return "?";
}

bool mb_probe(const u8 *img, u64 size) { return find_header(img, size) >= 0; }
