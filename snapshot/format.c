/*
 * Encoders and decoders for the fixed parts of a snapshot image: the 64-byte
 * header, section headers and the small records (IMAGE, DEVICES, vCPU state,
 * PAGES index head). Each record's layout is written once and serves encoding
 * and decoding alike; every value is stored little-endian byte by byte, whatever
 * the compiler does. Pure code (host and kernel).
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "snapshot/format.h"
#include "kernel/record.h"
#include "vmm/vdev_id.h"

u64 snap_header_compute_checksum(const struct snapshot_header *h)
{
	return (u64)h->magic ^ (u64)h->version ^ h->vm_id ^ (u64)h->vcpu_count ^ h->memory_pages ^
	       (u64)h->region_count ^ h->total_size ^ h->timestamp;
}

bool snap_header_is_valid(const struct snapshot_header *h)
{
	return h->magic == SNAPSHOT_MAGIC && h->version >= SNAPSHOT_VERSION_MIN &&
	       h->version <= SNAPSHOT_VERSION && h->checksum == snap_header_compute_checksum(h);
}

/* 1.1 "Header (64 bytes)" */
static void snap_header_fields(const struct rec *r, struct snapshot_header *h)
{
	REC(r, 0x00, h->magic);
	REC(r, 0x04, h->version);
	REC(r, 0x08, h->vm_id);
	REC(r, 0x10, h->vcpu_count);
	REC(r, 0x14, h->pad0);
	REC(r, 0x18, h->memory_pages);
	REC(r, 0x20, h->region_count);
	REC(r, 0x24, h->pad1);
	REC(r, 0x28, h->total_size);
	REC(r, 0x30, h->timestamp);
	REC(r, 0x38, h->checksum);
}
DEFINE_RECORD_CODEC(snap_header, struct snapshot_header, SNAP_HEADER_SIZE)

/* 1.2 "Sections": the header of every section; its CRC covers bytes 0x00-0x1B. */
static void section_fields(const struct rec *r, struct snap_section *s)
{
	REC(r, 0x00, s->type);
	REC(r, 0x04, s->flags);
	REC(r, 0x08, s->length);
	REC(r, 0x10, s->index);
	REC(r, 0x14, s->reserved);
	REC(r, 0x18, s->payload_crc);
}

void snap_section_encode(const struct snap_section *s, u8 out[SNAP_SECTION_HDR_SIZE])
{
	struct rec r = { out, true };

	section_fields(&r, (struct snap_section *)s);
	put_le(out + 0x1C, crc32c(0, out, 0x1C), 4);
}

int snap_section_decode(const u8 in[SNAP_SECTION_HDR_SIZE], struct snap_section *s)
{
	struct rec r = { (u8 *)in, false };

	section_fields(&r, s);
	s->header_crc = (u32)get_le(in + 0x1C, 4);
	return s->header_crc == crc32c(0, in, 0x1C) ? 0 : -EBADMSG;
}

const char *snap_section_name(u32 type)
{
	switch (type) {
	case SNAP_SEC_IMAGE:
		return "IMAGE";
	case SNAP_SEC_REGIONS:
		return "REGIONS";
	case SNAP_SEC_VCPU:
		return "VCPU";
	case SNAP_SEC_DEVICES:
		return "DEVICES";
	case SNAP_SEC_PAGES:
		return "PAGES";
	case SNAP_SEC_PLATFORM:
		return "PLATFORM";
	case SNAP_SEC_DEVICE:
		return "DEVICE";
	case SNAP_SEC_PARENT:
		return "PARENT";
	case SNAP_SEC_DELTA:
		return "DELTA";
	case SNAP_SEC_NOTE:
		return "NOTE";
	case SNAP_SEC_END:
		return "END";
	default:
		return "unknown";
	}
}

/* 1.4 "IMAGE" */
static void snap_image_info_fields(const struct rec *r, struct snap_image_info *in)
{
	REC(r, 0x00, in->header_crc);
	REC(r, 0x04, in->section_count);
	REC(r, 0x08, in->image_id);
	REC_STR(r, 0x10, in->name);
	REC_STR(r, 0x30, in->backend);
}
DEFINE_RECORD_CODEC(snap_image_info, struct snap_image_info, SNAP_IMAGE_SIZE)

/* 1.11 "PARENT" */
static void snap_parent_fields(const struct rec *r, struct snap_parent *pr)
{
	REC(r, 0x00, pr->version);
	REC(r, 0x04, pr->depth);
	REC(r, 0x08, pr->image_id);
	REC(r, 0x10, pr->header_crc);
	REC(r, 0x14, pr->source);
	REC(r, 0x18, pr->memory_pages);
	REC_STR(r, 0x20, pr->name);
}
DEFINE_RECORD_CODEC(snap_parent, struct snap_parent, SNAP_PARENT_SIZE)

const char *snap_parent_check(const struct snap_parent *pr)
{
	if (pr->version != SNAP_PARENT_VERSION)
		return "record version unknown to this Amber";
	if (!pr->depth || pr->depth >= SNAP_MAX_CHAIN)
		return "depth outside 1-31";
	if (pr->source != SNAP_DELTA_LOG && pr->source != SNAP_DELTA_COMPARE)
		return "unknown source of the changed pages";
	if (!snap_name_valid(pr->name))
		return "parent name is not a valid snapshot name";
	if (!pr->memory_pages)
		return "parent without memory";
	return NULL;
}

/* 1.5 "REGIONS": the head, then one entry per region. */
static void snap_regions_head_fields(const struct rec *r, struct snap_regions_head *h)
{
	REC(r, 0x00, h->count);
	REC(r, 0x04, h->zero);
}
DEFINE_RECORD_CODEC(snap_regions_head, struct snap_regions_head, SNAP_REGIONS_HEAD)

static void snap_region_desc_fields(const struct rec *r, struct snap_region_desc *d)
{
	REC(r, 0x00, d->gpa);
	REC(r, 0x08, d->pages);
	REC(r, 0x10, d->type);
	REC(r, 0x14, d->zero);
}
DEFINE_RECORD_CODEC(snap_region_desc, struct snap_region_desc, SNAP_REGION_ENTRY_SIZE)

/* 1.7 "DEVICES" */
static void snap_devices_fields(const struct rec *r, struct snap_devices *d, u64 len)
{
	bool v2 = len != SNAP_DEVICES_SIZE_V1;

	REC(r, 0x000, d->vm_id);
	REC(r, 0x004, d->vm_state);
	REC(r, 0x008, d->mem_size);
	REC_STR(r, 0x010, d->image);
	REC_STR(r, 0x030, d->cmdline);
	if (!v2) /* version 1: COM1 from 0xB0 on (cut into its record elsewhere) */
		return;
	REC(r, 0x0B0, d->guest_tsc_hz);
	REC(r, 0x0B8, d->exit_code);
	REC_STR(r, 0x0C0, d->stop_reason);
	if (len >= SNAP_DEVICES_SIZE_NO_CPU)
		REC_STR(r, 0x160, d->initrd);
	if (len < SNAP_DEVICES_SIZE)
		return;
	REC(r, 0x180, d->cpu_model);
	for (int i = 0; i < CPUID_WORDS; i++)
		REC(r, 0x188 + 4 * i, d->cpuid.w[i]);
	REC(r, 0x1A8, d->cpuid.xcr0);
	d->has_cpuid = true;
}

void snap_devices_encode(const struct snap_devices *d, u8 out[SNAP_DEVICES_SIZE])
{
	struct rec r = { out, true };

	memset(out, 0, SNAP_DEVICES_SIZE);
	snap_devices_fields(&r, (struct snap_devices *)d, SNAP_DEVICES_SIZE);
}

void snap_devices_decode(const u8 *in, u64 len, struct snap_devices *d)
{
	struct rec r = { (u8 *)in, false };

	memset(d, 0, sizeof(*d));
	snap_devices_fields(&r, d, len);
}

/*
 * 1.8 "Version 1 device state": where each device's record version 1 lies in
 * the DEVICES and PLATFORM sections of a version 1 image. The devices read
 * these records as they read their own (the layouts are the same), so an old
 * image needs nothing else to restore.
 */
static const struct {
	u32 section, id;
	u32 from, len, to; /* payload bytes [from, from+len) to record offset `to` */
} v1_pieces[] = {
	{ SNAP_SEC_DEVICES, VDEV_UART, 0xB0, 0xD8, 0 },
	{ SNAP_SEC_PLATFORM, VDEV_PIT, 0x00, 0x49, 0 },
	{ SNAP_SEC_PLATFORM, VDEV_PIC, 0x49, 2, 0 },
	{ SNAP_SEC_PLATFORM, VDEV_KBD, 0x4B, 3, 0 },
	{ SNAP_SEC_PLATFORM, VDEV_KBD, 0x50, 4, 4 },
	{ SNAP_SEC_PLATFORM, VDEV_BOARD, 0x4E, 1, 0 },
	{ SNAP_SEC_PLATFORM, VDEV_BOARD, 0x54, 4, 4 },
	{ SNAP_SEC_PLATFORM, VDEV_CMOS, 0x4F, 1, 0 },
	{ SNAP_SEC_PLATFORM, VDEV_VGA, 0x60, 0x28, 0 }, /* not in 0x60-byte payloads */
};

void snap_v1_devrecs(u32 section, const u8 *payload, u64 len, struct snap_devrec *recs, u32 *n)
{
	for (unsigned i = 0; i < ARRAY_SIZE(v1_pieces); i++) {
		struct snap_devrec *rec = NULL;

		if (v1_pieces[i].section != section || v1_pieces[i].from + v1_pieces[i].len > len)
			continue;
		for (u32 k = 0; k < *n; k++)
			if (recs[k].id == v1_pieces[i].id)
				rec = &recs[k];
		if (!rec) {
			if (*n >= SNAP_MAX_DEVICES)
				return;
			rec = &recs[(*n)++];
			memset(rec, 0, sizeof(*rec));
			rec->id = v1_pieces[i].id;
			rec->version = 1;
		}
		memcpy(rec->data + v1_pieces[i].to, payload + v1_pieces[i].from, v1_pieces[i].len);
		rec->len = MAX(rec->len, v1_pieces[i].to + v1_pieces[i].len);
	}
}

const char *snap_vm_state_name(u32 state)
{
	switch (state) {
	case SNAP_VM_RUNNING:
		return "running";
	case SNAP_VM_PAUSED:
		return "paused";
	case SNAP_VM_HALTED:
		return "halted";
	case SNAP_VM_EXITED:
		return "exited";
	case SNAP_VM_STOPPED:
		return "stopped";
	case SNAP_VM_CREATED:
		return "created";
	default:
		return "other";
	}
}

/*
 * The vCPU record, field by field: record offsets follow from the order and
 * the sizes (the first field sits at 0x008, after the vCPU number and the
 * fixed-part size). docs/snapshot-format.md lists the same table with offsets;
 * tests/unit/test_snapformat.c checks that the two agree.
 */
struct vcpu_field {
	const char *name;
	u16 off; /* in struct vcpu_state */
	u8 size; /* 1, 2, 4 or 8 */
};
#define VF(n, f) \
	{ \
		n, offsetof(struct vcpu_state, f), sizeof(((struct vcpu_state *)0)->f) \
	}
#define VSEG(s) \
	VF(#s ".selector", s.selector), VF(#s ".attr", s.attr), VF(#s ".limit", s.limit), \
		VF(#s ".base", s.base)
#define VDT(t) VF(#t ".base", t.base), VF(#t ".limit", t.limit), VF(#t ".reserved", t.reserved)

static const struct vcpu_field vcpu_fields[] = {
	VF("rax", regs[REG_RAX]),
	VF("rcx", regs[REG_RCX]),
	VF("rdx", regs[REG_RDX]),
	VF("rbx", regs[REG_RBX]),
	VF("rsp", regs[REG_RSP]),
	VF("rbp", regs[REG_RBP]),
	VF("rsi", regs[REG_RSI]),
	VF("rdi", regs[REG_RDI]),
	VF("r8", regs[REG_R8]),
	VF("r9", regs[REG_R9]),
	VF("r10", regs[REG_R10]),
	VF("r11", regs[REG_R11]),
	VF("r12", regs[REG_R12]),
	VF("r13", regs[REG_R13]),
	VF("r14", regs[REG_R14]),
	VF("r15", regs[REG_R15]),
	VF("rip", rip),
	VF("rflags", rflags),
	VF("cr0", cr0),
	VF("cr2", cr2),
	VF("cr3", cr3),
	VF("cr4", cr4),
	VF("cr8", cr8),
	VF("efer", efer),
	VF("pat", pat),
	VSEG(es),
	VSEG(cs),
	VSEG(ss),
	VSEG(ds),
	VSEG(fs),
	VSEG(gs),
	VSEG(ldtr),
	VSEG(tr),
	VDT(gdtr),
	VDT(idtr),
	VF("sysenter_cs", sysenter_cs),
	VF("sysenter_esp", sysenter_esp),
	VF("sysenter_eip", sysenter_eip),
	VF("star", star),
	VF("lstar", lstar),
	VF("cstar", cstar),
	VF("sfmask", sfmask),
	VF("kernel_gs_base", kernel_gs_base),
	VF("dr0", dr0),
	VF("dr1", dr1),
	VF("dr2", dr2),
	VF("dr3", dr3),
	VF("dr6", dr6),
	VF("dr7", dr7),
	VF("tsc", tsc),
	VF("interruptibility", interruptibility),
	VF("halted", halted),
	VF("pending.valid", pending.valid),
	VF("pending.type", pending.type),
	VF("pending.vector", pending.vector),
	VF("pending.has_error", pending.has_error),
	VF("pending.error_code", pending.error_code),
	VF("xcr0", xcr0),
	VF("xsave_size", xsave_size),
	VF("reserved", reserved),
};

static u64 field_load(const struct vcpu_state *s, const struct vcpu_field *f)
{
	return mem_load((const u8 *)s + f->off, f->size);
}

static void field_store(struct vcpu_state *s, const struct vcpu_field *f, u64 v)
{
	mem_store((u8 *)s + f->off, f->size, v);
}

void snap_vcpu_encode(u32 id, const struct vcpu_state *s, u8 *out)
{
	u64 off = 8;

	snap_put32(out, id);
	snap_put32(out + 4, SNAP_VCPU_FIXED);
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_fields); i++) {
		put_le(out + off, field_load(s, &vcpu_fields[i]), vcpu_fields[i].size);
		off += vcpu_fields[i].size;
	}
	memcpy(out + SNAP_VCPU_FIXED, s->xsave, s->xsave_size);
	memset(out + SNAP_VCPU_FIXED + s->xsave_size, 0,
	       snap_vcpu_size(s->xsave_size) - SNAP_VCPU_FIXED - s->xsave_size);
}

int snap_vcpu_decode(const u8 *in, u64 len, u32 *id, struct vcpu_state *s, const char **why)
{
	u64 off = 8;

	if (len < SNAP_VCPU_FIXED) {
		*why = "record shorter than its fixed part";
		return -EBADMSG;
	}
	if (snap_get32(in + 4) != SNAP_VCPU_FIXED) {
		*why = "fixed part of an unknown size";
		return -EBADMSG;
	}
	memset(s, 0, sizeof(*s));
	*id = snap_get32(in);
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_fields); i++) {
		field_store(s, &vcpu_fields[i], get_le(in + off, vcpu_fields[i].size));
		off += vcpu_fields[i].size;
	}
	if (s->xsave_size > SNAP_VCPU_XSAVE_MAX) {
		*why = "XSAVE area larger than 4096 bytes";
		return -EBADMSG;
	}
	if (len != snap_vcpu_size(s->xsave_size)) {
		*why = "record length does not match its XSAVE size";
		return -EBADMSG;
	}
	memcpy(s->xsave, in + SNAP_VCPU_FIXED, s->xsave_size);
	return 0;
}

int snap_vcpu_field_offset(const char *name)
{
	u64 off = 8;

	for (size_t i = 0; i < ARRAY_SIZE(vcpu_fields); i++) {
		if (strcmp(vcpu_fields[i].name, name) == 0)
			return (int)off;
		off += vcpu_fields[i].size;
	}
	if (strcmp(name, "xsave") == 0)
		return (int)off;
	return -1;
}

const char *snap_vcpu_field_at(u64 rec_off)
{
	u64 off = 8;

	if (rec_off < 4)
		return "vCPU number";
	if (rec_off < 8)
		return "fixed-part size";
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_fields); i++) {
		if (rec_off < off + vcpu_fields[i].size)
			return vcpu_fields[i].name;
		off += vcpu_fields[i].size;
	}
	return "xsave area";
}

/* 1.9 "PAGES": the head of the index part. */
static void snap_pages_head_fields(const struct rec *r, struct snap_pages_head *h)
{
	REC(r, 0x00, h->pages_per_crc);
	REC(r, 0x08, h->region_pages);
	REC(r, 0x10, h->stored_pages);
	REC(r, 0x18, h->data_offset);
}
DEFINE_RECORD_CODEC(snap_pages_head, struct snap_pages_head, SNAP_PAGES_HEAD)

/* 1.12 "DELTA": the head of the index part. */
static void snap_delta_head_fields(const struct rec *r, struct snap_delta_head *h)
{
	REC(r, 0x00, h->pages_per_crc);
	REC(r, 0x04, h->runs);
	REC(r, 0x08, h->region_pages);
	REC(r, 0x10, h->stored_pages);
	REC(r, 0x18, h->data_offset);
}
DEFINE_RECORD_CODEC(snap_delta_head, struct snap_delta_head, SNAP_PAGES_HEAD)

bool snap_page_is_zero(const void *page)
{
	const u64 *w = page;

	for (size_t i = 0; i < PAGE_SIZE / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	return true;
}

bool snap_name_valid(const char *name)
{
	size_t n = strnlen(name, 32);

	if (n == 0 || n > 31)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Days since 1970-01-01 of a civil date (the well-known era arithmetic:
 * 400-year eras of 146097 days, March-based years so leap days come last). */
static s64 days_from_civil(s64 y, u32 m, u32 d)
{
	s64 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * ((s64)m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

u64 snap_unix_time(u32 year, u32 month, u32 day, u32 hour, u32 min, u32 sec)
{
	s64 days = days_from_civil(year, month, day);

	if (days < 0)
		return 0;
	return (u64)days * 86400 + hour * 3600 + min * 60 + sec;
}

void snap_format_time(char *buf, size_t len, u64 t)
{
	s64 z = (s64)(t / 86400) + 719468, era, doe, yoe, doy, mp, y;
	u32 d, m, secs = (u32)(t % 86400);

	if (!t) {
		strlcpy(buf, "unknown", len);
		return;
	}
	era = z / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (u32)(doy - (153 * mp + 2) / 5 + 1);
	m = (u32)(mp < 10 ? mp + 3 : mp - 9);
	y += m <= 2;
	snprintf(buf, len, "%04lld-%02u-%02u %02u:%02u:%02u", (long long)y, m, d, secs / 3600,
		 secs / 60 % 60, secs % 60);
}
