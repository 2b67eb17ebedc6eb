/*
 * The Linux bzImage loader for guests: checks the setup header, places the
 * protected-mode kernel, the initrd and the boot data, fills the zero page
 * and gives the 32-bit entry state; tells kernels, initrds and Multiboot
 * images apart. Pure: host context or host unit tests and the fuzzer.
 * Linux Documentation/arch/x86/boot.rst, "The Linux/x86 Boot Protocol".
 */
#include "vmm/linux.h"
#include "kernel/lib.h"
#include "kernel/printk.h"

#define SECTOR 512
#define DEFAULT_SETUP_SECTS 4	       /* "setup_sects": 0 means 4 */
#define OLD_INITRD_ADDR_MAX 0x37FFFFFF /* before 2.03, "initrd_addr_max" */

static int fail(char *err, size_t len, int code, const char *fmt, ...) __printf(4, 5);
static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return code;
}

static u16 get16(const u8 *p) { return (u16)(p[0] | p[1] << 8); }
static u32 get32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }
static u64 get64(const u8 *p) { return get32(p) | (u64)get32(p + 4) << 32; }
static void put16(u8 *p, u16 v) { p[0] = (u8)v, p[1] = (u8)(v >> 8); }
static void put32(u8 *p, u32 v) { put16(p, (u16)v), put16(p + 2, (u16)(v >> 16)); }
static void put64(u8 *p, u64 v) { put32(p, (u32)v), put32(p + 4, (u32)(v >> 32)); }

bool linux_is_bzimage(const u8 *img, u64 size)
{
	return size >= LINUX_HEADER + 4 && get16(img + LINUX_BOOT_FLAG) == LINUX_BOOT_FLAG_MAGIC &&
	       get32(img + LINUX_HEADER) == LINUX_HDRS_MAGIC;
}

/* The setup header's fields the loader uses, read once and checked. */
struct setup {
	u16 version;
	u8 loadflags, xloadflags;
	bool relocatable;
	u64 setup_size;	 /* bytes of real-mode setup before the kernel */
	u64 pm_size;	 /* bytes of protected-mode kernel in the file */
	u64 init_size;	 /* memory the kernel needs from its load address */
	u64 align, pref; /* kernel_alignment, pref_address */
	u64 initrd_max;	 /* highest byte an initrd may occupy */
	u64 cmdline_max; /* cmdline_size: longest command line, NUL excluded */
	u64 hdr_end;	 /* end of the setup header in the file */
};

static int parse_setup(const u8 *img, u64 size, struct setup *s, char *err, size_t errlen)
{
	u64 sects, syssize;

	if (size < LINUX_BOOT_FLAG + 2 || get16(img + LINUX_BOOT_FLAG) != LINUX_BOOT_FLAG_MAGIC)
		return fail(err, errlen, -ENOEXEC,
			    "not a bzImage: no boot flag 0xAA55 at offset 0x1FE");
	if (size < LINUX_HEADER + 4 || get32(img + LINUX_HEADER) != LINUX_HDRS_MAGIC)
		return fail(err, errlen, -ENOEXEC,
			    "not a bzImage: no \"HdrS\" signature at offset 0x202");
	if (size < LINUX_HDR_LIMIT)
		return fail(err, errlen, -ENOEXEC,
			    "truncated: %lu bytes, too short for a Linux setup header", size);
	s->version = get16(img + LINUX_VERSION);
	if (s->version < LINUX_MIN_VERSION)
		return fail(err, errlen, -ENOEXEC,
			    "boot protocol %u.%02u is too old: Amber needs 2.06 or later",
			    (unsigned)s->version >> 8, (unsigned)s->version & 0xFF);
	s->loadflags = img[LINUX_LOADFLAGS];
	if (!(s->loadflags & LINUX_LOADED_HIGH))
		return fail(err, errlen, -ENOEXEC,
			    "a zImage (loadflags lack LOADED_HIGH): only bzImages load");
	sects = img[LINUX_SETUP_SECTS] ? img[LINUX_SETUP_SECTS] : DEFAULT_SETUP_SECTS;
	s->setup_size = (sects + 1) * SECTOR;
	if (s->setup_size >= size)
		return fail(err, errlen, -ENOEXEC,
			    "truncated: the file ends in the setup code (%lu sectors)", sects);
	s->pm_size = size - s->setup_size;
	/* syssize counts 16-byte units, rounded up by the kernel's build. */
	syssize = (u64)get32(img + LINUX_SYSSIZE) * 16;
	if (syssize > s->pm_size + 15)
		return fail(err, errlen, -ENOEXEC,
			    "truncated: the header says %lu bytes of kernel, the file has %lu",
			    syssize, s->pm_size);
	s->relocatable = img[LINUX_RELOCATABLE] != 0;
	s->align = get32(img + LINUX_KERNEL_ALIGNMENT);
	if (s->relocatable && (s->align == 0 || (s->align & (s->align - 1))))
		return fail(err, errlen, -ENOEXEC, "kernel_alignment 0x%lx is not a power of two",
			    s->align);
	s->xloadflags = s->version >= 0x020C ? (u8)get16(img + LINUX_XLOADFLAGS) : 0;
	s->initrd_max = get32(img + LINUX_INITRD_ADDR_MAX);
	s->cmdline_max = get32(img + LINUX_CMDLINE_SIZE);
	/* Before 2.10 there is no pref_address or init_size: such a kernel is
	 * linked for 1 MiB, and the file is all Amber knows of its size. */
	s->pref = s->version >= 0x020A ? get64(img + LINUX_PREF_ADDRESS) : MiB(1);
	s->init_size = s->version >= 0x020A ? get32(img + LINUX_INIT_SIZE) : 0;
	s->init_size = MAX(s->init_size, s->pm_size);
	/* "the end of setup header can be calculated as 0x0202 + byte value at
	 * offset 0x0201" ("Details of Header Fields"). */
	s->hdr_end = MIN(LINUX_JUMP + 2 + (u64)img[LINUX_JUMP + 1], (u64)LINUX_HDR_LIMIT);
	return 0;
}

/* The usable range of the map that holds [base, base + len), clipped to the
 * RAM; false when none does. */
static bool in_usable(const struct linux_params *p, u64 mem, u64 base, u64 len)
{
	if (base >= mem || len > mem - base)
		return false;
	for (int i = 0; i < p->nmap; i++) {
		const struct mem_range *r = &p->map[i];

		if (r->type == MEM_USABLE && base >= r->base && base - r->base <= r->len &&
		    len <= r->len - (base - r->base))
			return true;
	}
	return false;
}

/* Where the kernel goes: a relocatable one at pref_address aligned up to
 * kernel_alignment ("Loading The Rest of The Kernel"), any other at 1 MiB. */
static int place_kernel(const struct setup *s, const struct linux_params *p, u64 mem,
			struct linux_loaded *out, char *err, size_t errlen)
{
	char have[24], need[24], upto[24];
	u64 at = MiB(1);

	if (s->relocatable && s->version >= 0x020A) {
		if (s->pref >= GiB(4))
			return fail(err, errlen, -ENOEXEC, "pref_address 0x%lx is above 4 GiB",
				    s->pref);
		at = ALIGN_UP(s->pref, s->align);
	} else if (s->relocatable) {
		at = ALIGN_UP(MiB(1), s->align);
	}
	if (at < MiB(1) || at > GiB(4) || s->init_size > GiB(4) - at)
		return fail(err, errlen, -ENOEXEC,
			    "the kernel's address 0x%lx is not between 1 MiB and 4 GiB", at);
	out->kernel = at;
	out->kernel_size = s->pm_size;
	out->kernel_end = at + s->init_size;
	if (!in_usable(p, mem, at, s->init_size)) {
		format_size(have, sizeof(have), mem);
		format_size(need, sizeof(need), s->init_size);
		format_size(upto, sizeof(upto), out->kernel_end);
		return fail(err, errlen, -E2BIG,
			    "the kernel needs RAM up to %s (%s at 0x%lx); the VM has %s", upto,
			    need, at, have);
	}
	return 0;
}

/* Is [a, a + len) clear of the kernel and inside usable RAM below `limit`? */
static bool initrd_fits(const struct linux_params *p, u64 mem, const struct linux_loaded *k, u64 a,
			u64 len, u64 limit)
{
	return a >= MiB(1) && a + len <= limit && (a + len <= k->kernel || a >= k->kernel_end) &&
	       in_usable(p, mem, a, len);
}

/* As high as initrd_addr_max and the RAM allow, page aligned, clear of the
 * kernel ("initrd_addr_max", "Loading The Rest of The Kernel"): the highest
 * of the candidates at the top of each usable range and just under the
 * kernel. */
static int place_initrd(const struct setup *s, const struct linux_params *p, u64 mem,
			struct linux_loaded *out, char *err, size_t errlen)
{
	u64 len = p->initrd_size, limit, best = 0;
	char sz[24];

	if (!len)
		return fail(err, errlen, -EINVAL, "the initrd is empty");
	limit = (s->version >= 0x0203 ? s->initrd_max : OLD_INITRD_ADDR_MAX) + 1;
	limit = MIN(MIN(limit, GiB(4)), mem);
	for (int i = 0; i <= p->nmap; i++) {
		const struct mem_range *r = i < p->nmap ? &p->map[i] : NULL;
		u64 top = out->kernel, a;

		if (r && (r->type != MEM_USABLE || r->base >= limit))
			continue;
		if (r)
			top = r->len > limit - r->base ? limit : r->base + r->len;
		top = MIN(top, limit);
		if (top < len)
			continue;
		a = ALIGN_DOWN(top - len, PAGE_SIZE);
		if (a > best && initrd_fits(p, mem, out, a, len, limit))
			best = a;
	}
	if (!best) {
		format_size(sz, sizeof(sz), len);
		return fail(err, errlen, -E2BIG,
			    "the initrd (%s) does not fit in the RAM below 0x%lx", sz, limit);
	}
	out->initrd = best;
	out->initrd_size = len;
	return 0;
}

/* The zero page: the image's setup header with the loader's fields, the
 * memory map, the command line and initrd, the RSDP ("Zero Page"). */
static void build_zero_page(u8 *zp, const u8 *img, const struct setup *s,
			    const struct linux_params *p, const struct linux_loaded *l)
{
	memset(zp, 0, PAGE_SIZE);
	memcpy(zp + LINUX_HDR_START, img + LINUX_HDR_START, s->hdr_end - LINUX_HDR_START);
	zp[LINUX_TYPE_OF_LOADER] = LINUX_LOADER_UNDEFINED;
	/* No real-mode setup runs: it has no heap, and segments are reloaded. */
	zp[LINUX_LOADFLAGS] = s->loadflags & ~(LINUX_KEEP_SEGMENTS | LINUX_CAN_USE_HEAP);
	put16(zp + LINUX_HEAP_END_PTR, 0);
	put32(zp + LINUX_CMD_LINE_PTR, (u32)l->cmdline);
	put32(zp + LINUX_RAMDISK_IMAGE, (u32)l->initrd);
	put32(zp + LINUX_RAMDISK_SIZE, (u32)l->initrd_size);
	if (s->hdr_end > LINUX_SETUP_DATA)
		put64(zp + LINUX_SETUP_DATA, 0); /* no setup_data list */
	if (l->rsdp_passed)
		put64(zp + BP_ACPI_RSDP_ADDR, p->rsdp);
	zp[BP_E820_ENTRIES] = (u8)p->nmap;
	for (int i = 0; i < p->nmap; i++) {
		u8 *e = zp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;

		put64(e, p->map[i].base);
		put64(e + 8, p->map[i].len);
		put32(e + 16, p->map[i].type);
	}
}

int linux_load(const u8 *img, u64 size, const struct linux_params *p, const struct loader_target *t,
	       struct linux_loaded *out, char *err, size_t errlen)
{
	/* The boot GDT ("32-bit Boot Protocol"): flat 4 GiB code at __BOOT_CS
	 * (0x10) and data at __BOOT_DS (0x18). */
	static const u64 gdt[4] = { 0, 0, 0x00CF9B000000FFFFULL, 0x00CF93000000FFFFULL };
	static u8 zp[PAGE_SIZE];
	const char *cmdline = p->cmdline ? p->cmdline : "";
	u64 mem = t->mem_size, cmdlen = strlen(cmdline);
	struct setup s = { 0 };
	int ret;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	ret = parse_setup(img, size, &s, err, errlen);
	if (ret)
		return ret;
	out->version = s.version;
	out->xloadflags = s.xloadflags;
	out->relocatable = s.relocatable;
	if (p->nmap < 1 || p->nmap > BP_E820_MAX)
		return fail(err, errlen, -EINVAL, "the memory map has %d ranges; 1 to %d fit",
			    p->nmap, BP_E820_MAX);
	if (cmdlen > s.cmdline_max || cmdlen >= LINUX_CMDLINE_MAX)
		return fail(err, errlen, -EINVAL,
			    "the command line has %lu bytes; the kernel takes %lu", cmdlen,
			    MIN(s.cmdline_max, (u64)LINUX_CMDLINE_MAX - 1));
	if (!in_usable(p, mem, LINUX_GDT_GPA, PAGE_SIZE) ||
	    !in_usable(p, mem, LINUX_ZERO_PAGE_GPA, PAGE_SIZE) ||
	    !in_usable(p, mem, LINUX_CMDLINE_GPA, LINUX_CMDLINE_MAX))
		return fail(err, errlen, -E2BIG,
			    "no usable RAM at 0x6000-0x7fff and 0x20000 for the boot data");
	out->zero_page = LINUX_ZERO_PAGE_GPA;
	out->cmdline = LINUX_CMDLINE_GPA;
	out->rsdp_passed = p->rsdp && s.version >= 0x020E;
	ret = place_kernel(&s, p, mem, out, err, errlen);
	if (!ret && p->initrd)
		ret = place_initrd(&s, p, mem, out, err, errlen);
	if (ret)
		return ret;

	build_zero_page(zp, img, &s, p, out);
	ret = t->write(t->ctx, out->kernel, img + s.setup_size, s.pm_size);
	if (!ret && p->initrd)
		ret = t->write(t->ctx, out->initrd, p->initrd, p->initrd_size);
	if (!ret)
		ret = t->write(t->ctx, out->cmdline, cmdline, cmdlen + 1);
	if (!ret)
		ret = t->write(t->ctx, LINUX_GDT_GPA, gdt, sizeof(gdt));
	if (!ret)
		ret = t->write(t->ctx, out->zero_page, zp, sizeof(zp));
	if (ret)
		return fail(err, errlen, ret, "could not write the kernel into guest memory");
	return 0;
}

void linux_entry_state(struct vcpu_state *s, const struct linux_loaded *l)
{
	const struct vcpu_segment code = { LINUX_BOOT_CS, 0xC9B, 0xFFFFFFFF, 0 };
	const struct vcpu_segment data = { LINUX_BOOT_DS, 0xC93, 0xFFFFFFFF, 0 };

	memset(s, 0, sizeof(*s)); /* EAX..EDI 0: EBP, EDI, EBX must be */
	s->regs[REG_RSI] = l->zero_page;
	s->rip = l->kernel;
	s->rflags = 0x2;		/* IF = 0 */
	s->cr0 = 0x11;			/* PE | ET: protected mode, paging off */
	s->pat = 0x0007040600070406ULL; /* the power-on PAT */
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->ldtr = (struct vcpu_segment){ 0, 0, 0, 0 };	     /* unusable */
	s->tr = (struct vcpu_segment){ 0, 0x8B, 0xFFFF, 0 }; /* busy 32-bit TSS */
	s->gdtr = (struct vcpu_dtable){ LINUX_GDT_GPA, 4 * 8 - 1, 0 };
	s->idtr = (struct vcpu_dtable){ 0, 0, 0 };
	s->dr6 = 0xFFFF0FF0;
	s->dr7 = 0x400;
	s->xcr0 = 1;
}

enum image_kind image_kind(const u8 *img, u64 size, const char **detail)
{
	static const struct {
		const char *magic;
		u8 len;
		const char *what;
	} initrds[] = {
		{ "\x1F\x8B", 2, "gzip" },
		{ "\xFD"
		  "7zXZ",
		  5, "xz" },
		{ "\x28\xB5\x2F\xFD", 4, "zstd" },
		{ "\x02\x21\x4C\x18", 4, "lz4" },
		{ "BZh", 3, "bzip2" },
		{ "070701", 6, "cpio" },
		{ "070702", 6, "cpio" },
		{ "\x5D\x00\x00", 3, "lzma" },
	};
	const char *unused;

	if (!detail)
		detail = &unused;
	*detail = "";
	if (linux_is_bzimage(img, size)) {
		*detail = "bzImage";
		return IMAGE_LINUX;
	}
	if (mb_probe(img, size)) {
		*detail = "Multiboot";
		return IMAGE_MULTIBOOT;
	}
	for (size_t i = 0; i < ARRAY_SIZE(initrds); i++) {
		if (size >= initrds[i].len && !memcmp(img, initrds[i].magic, initrds[i].len)) {
			*detail = initrds[i].what;
			return IMAGE_INITRD;
		}
	}
	return IMAGE_UNKNOWN;
}
