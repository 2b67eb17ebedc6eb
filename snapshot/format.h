/*
 * The snapshot image format: the seed's 64-byte SnapshotHeader, then typed,
 * length-prefixed sections, each covered by CRC32C (docs/snapshot-format.md
 * describes every byte). Pure code: no kernel services, so the host tool
 * (tools/amber-snap) and the unit tests build the very same encoder.
 */
#ifndef AMBER_SNAP_FORMAT_H
#define AMBER_SNAP_FORMAT_H

#include "kernel/types.h"
#include "vmm/cpumodel.h"
#include "vmm/vcpu_state.h"

#define SNAPSHOT_MAGIC 0x50414E53u /* the bytes 'S' 'N' 'A' 'P' in little-endian order */
#define SNAPSHOT_VERSION 2	   /* what this Amber writes */
#define SNAPSHOT_VERSION_MIN 1 /* the oldest it reads: devices in DEVICES + PLATFORM, no VM end */
#define SNAP_HEADER_SIZE 64
#define SNAP_BLOCK 4096 /* images are a whole number of these; page data is aligned to them */

/*
 * SnapshotHeader of the seed document, laid out as #[repr(C)] lays it out
 * (natural alignment, little-endian). checksum is the XOR of the eight other
 * fields, each zero-extended to 64 bits: kept for compatibility; the CRC32C of
 * these 64 bytes in the IMAGE section is what protects them.
 */
struct snapshot_header {
	u32 magic;   /* SNAPSHOT_MAGIC */
	u32 version; /* SNAPSHOT_VERSION */
	u64 vm_id;   /* id of the VM that was saved */
	u32 vcpu_count;
	u32 pad0;	  /* zero */
	u64 memory_pages; /* guest memory in 4 KiB pages (all regions) */
	u32 region_count;
	u32 pad1;	/* zero */
	u64 total_size; /* bytes of the whole image, header included */
	u64 timestamp;	/* Amber's kernel ticks (microseconds since boot) at the freeze */
	u64 checksum;
};
_Static_assert(sizeof(struct snapshot_header) == SNAP_HEADER_SIZE, "header is 64 bytes");
_Static_assert(offsetof(struct snapshot_header, magic) == 0x00, "magic at 0x00");
_Static_assert(offsetof(struct snapshot_header, version) == 0x04, "version at 0x04");
_Static_assert(offsetof(struct snapshot_header, vm_id) == 0x08, "vm_id at 0x08");
_Static_assert(offsetof(struct snapshot_header, vcpu_count) == 0x10, "vcpu_count at 0x10");
_Static_assert(offsetof(struct snapshot_header, pad0) == 0x14, "padding at 0x14");
_Static_assert(offsetof(struct snapshot_header, memory_pages) == 0x18, "memory_pages at 0x18");
_Static_assert(offsetof(struct snapshot_header, region_count) == 0x20, "region_count at 0x20");
_Static_assert(offsetof(struct snapshot_header, pad1) == 0x24, "padding at 0x24");
_Static_assert(offsetof(struct snapshot_header, total_size) == 0x28, "total_size at 0x28");
_Static_assert(offsetof(struct snapshot_header, timestamp) == 0x30, "timestamp at 0x30");
_Static_assert(offsetof(struct snapshot_header, checksum) == 0x38, "checksum at 0x38");

/* The seed's compute_checksum(): XOR of the eight fields other than checksum. */
u64 snap_header_compute_checksum(const struct snapshot_header *h);
/* The seed's is_valid(): magic, a supported version and the checksum match. */
bool snap_header_is_valid(const struct snapshot_header *h);
void snap_header_encode(const struct snapshot_header *h, u8 out[SNAP_HEADER_SIZE]);
void snap_header_decode(const u8 in[SNAP_HEADER_SIZE], struct snapshot_header *h);

/* ---- sections -------------------------------------------------------------- */
/* Every section starts with this 32-byte header at an 8-byte aligned offset;
 * the next one follows `length` bytes later. */
#define SNAP_SECTION_HDR_SIZE 32
#define SNAP_SEC_MANDATORY BIT(0) /* a reader that does not know the type must refuse */

enum snap_section_type {
	SNAP_SEC_IMAGE = 0x0001,    /* first: CRC of the header, name, backend */
	SNAP_SEC_REGIONS = 0x0002,  /* guest-physical memory regions */
	SNAP_SEC_VCPU = 0x0003,	    /* one per vCPU; index = vCPU number */
	SNAP_SEC_DEVICES = 0x0004,  /* VM identity (version 1: and COM1) */
	SNAP_SEC_PAGES = 0x0005,    /* one per region; index = region number */
	SNAP_SEC_PLATFORM = 0x0006, /* version 1 only: PIT, PIC masks, 8042, VGA ... */
	SNAP_SEC_DEVICE = 0x0007,   /* version 2: one per device; index = device id */
	SNAP_SEC_PARENT = 0x0008,   /* incremental image: the image it builds on */
	SNAP_SEC_DELTA = 0x0009,    /* incremental image: one per region, pages changed */
	SNAP_SEC_NOTE = 0x0100,	    /* optional free text (who wrote the image) */
	SNAP_SEC_END = 0xFFFF,	    /* last: zero padding to a SNAP_BLOCK boundary */
};

struct snap_section {
	u32 type;	 /* enum snap_section_type */
	u32 flags;	 /* SNAP_SEC_MANDATORY; other bits zero */
	u64 length;	 /* payload bytes after this header, a multiple of 8 */
	u32 index;	 /* vCPU or region number; 0 for the others */
	u32 reserved;	 /* zero */
	u32 payload_crc; /* CRC32C of the payload (PAGES: of its index part only) */
	u32 header_crc;	 /* CRC32C of bytes 0x00-0x1B of this header */
};

void snap_section_encode(const struct snap_section *s, u8 out[SNAP_SECTION_HDR_SIZE]);
/* Decodes and checks header_crc and reserved; returns 0 or -EBADMSG. */
int snap_section_decode(const u8 in[SNAP_SECTION_HDR_SIZE], struct snap_section *s);
const char *snap_section_name(u32 type); /* "VCPU", or "unknown" */

/* IMAGE payload (64 bytes). */
#define SNAP_IMAGE_SIZE 64
struct snap_image_info {
	u32 header_crc;	   /* CRC32C of the 64 header bytes */
	u32 section_count; /* every section, IMAGE and END included */
	u64 image_id;	   /* random id of this image (0: written before children) */
	char name[32];	   /* the snapshot's name, NUL-padded */
	char backend[16];  /* "VT-x" or "AMD-V": who captured it (informational) */
};
void snap_image_info_encode(const struct snap_image_info *in, u8 out[SNAP_IMAGE_SIZE]);
void snap_image_info_decode(const u8 in[SNAP_IMAGE_SIZE], struct snap_image_info *out);

/* PARENT payload (64 bytes): the image an incremental image builds on,
 * named by its random id and the CRC32C of its header, so that a chain is
 * never joined to another image of the same name. Section 1, right after
 * IMAGE (so it lies in the image's first block). */
#define SNAP_PARENT_SIZE 64
#define SNAP_PARENT_VERSION 1
#define SNAP_MAX_CHAIN 32 /* images in a chain, the full one included */
enum snap_delta_source {
	SNAP_DELTA_LOG = 1,	/* the changed pages came from the dirty log */
	SNAP_DELTA_COMPARE = 2, /* by comparison with the parent's pages */
};
struct snap_parent {
	u32 version;	  /* SNAP_PARENT_VERSION */
	u32 depth;	  /* images below this one: 1 when the parent is full */
	u64 image_id;	  /* the parent's IMAGE image_id */
	u32 header_crc;	  /* CRC32C of the parent's 64-byte header */
	u32 source;	  /* enum snap_delta_source (informational) */
	u64 memory_pages; /* the parent's memory_pages: this image's too */
	char name[32];	  /* the parent's name when this image was saved */
};
void snap_parent_encode(const struct snap_parent *in, u8 out[SNAP_PARENT_SIZE]);
void snap_parent_decode(const u8 in[SNAP_PARENT_SIZE], struct snap_parent *out);
/* NULL when the record is possible, else why not. */
const char *snap_parent_check(const struct snap_parent *pr);

/* REGIONS payload: u32 count, u32 zero, then count entries of 24 bytes. */
#define SNAP_REGION_RAM 1
#define SNAP_REGION_ENTRY_SIZE 24
#define SNAP_MAX_REGIONS 16
struct snap_region_desc {
	u64 gpa;   /* guest-physical start, page aligned */
	u64 pages; /* 4 KiB pages */
	u32 type;  /* SNAP_REGION_RAM */
	u32 zero;  /* reserved, zero */
};
static inline u64 snap_regions_size(u32 n) { return 8 + (u64)n * SNAP_REGION_ENTRY_SIZE; }
#define SNAP_REGIONS_HEAD 8
struct snap_regions_head {
	u32 count; /* entries that follow */
	u32 zero;  /* reserved, zero */
};
void snap_regions_head_encode(const struct snap_regions_head *h, u8 out[SNAP_REGIONS_HEAD]);
void snap_regions_head_decode(const u8 in[SNAP_REGIONS_HEAD], struct snap_regions_head *h);
void snap_region_desc_encode(const struct snap_region_desc *d, u8 out[SNAP_REGION_ENTRY_SIZE]);
void snap_region_desc_decode(const u8 in[SNAP_REGION_ENTRY_SIZE], struct snap_region_desc *d);

/* DEVICES payload: the VM's identity and how it ended. Version 1 images held
 * COM1's state from 0xB0 on and were 392 bytes, without the VM's end; version
 * 2 holds the guest TSC rate, the exit code and the stop reason there, and
 * from 0x160 a Linux guest's initrd (a reset loads it again); version 2
 * images written before that field have 0x160 bytes and no initrd; from 0x180
 * the guest's CPU model and the CPUID features it was shown (vmm/cpumodel.h),
 * absent (0x180 bytes: the host model, features unrecorded) before. */
#define SNAP_DEVICES_SIZE 0x1B0
#define SNAP_DEVICES_SIZE_NO_CPU 0x180 /* before the CPU model (0x180-0x1AF) */
#define SNAP_DEVICES_SIZE_NO_INITRD 0x160
#define SNAP_DEVICES_SIZE_V1 0x188
enum snap_vm_state {
	SNAP_VM_OTHER, /* version 1 only: a state it could not name */
	SNAP_VM_RUNNING,
	SNAP_VM_PAUSED,
	SNAP_VM_HALTED,
	SNAP_VM_EXITED,	 /* the guest wrote exit_code to port 0xF4 */
	SNAP_VM_STOPPED, /* Amber stopped it: stop_reason */
	SNAP_VM_CREATED, /* built, never started */
	SNAP_VM_STATES
};
struct snap_devices {
	u32 vm_id;
	u32 vm_state; /* enum snap_vm_state, at the freeze */
	u64 mem_size; /* bytes of guest RAM */
	char image[32];
	char cmdline[128];
	u64 guest_tsc_hz;	     /* the TSC rate the devices' timers convert with */
	u32 exit_code;		     /* SNAP_VM_EXITED: the code the guest wrote */
	char stop_reason[160];	     /* SNAP_VM_STOPPED: why Amber stopped it */
	char initrd[32];	     /* a Linux guest's initrd image, else "" */
	u32 cpu_model;		     /* enum cpu_model_id */
	bool has_cpuid;		     /* the image recorded `cpuid` (0x1B0 bytes) */
	struct cpuid_features cpuid; /* the features the guest was shown */
};
_Static_assert(0x188 + 4 * CPUID_WORDS == 0x1A8, "DEVICES: the feature words end at 0x1A8");
void snap_devices_encode(const struct snap_devices *d, u8 out[SNAP_DEVICES_SIZE]);
/* Decodes a payload of `len` bytes: SNAP_DEVICES_SIZE, the older version 2
 * SNAP_DEVICES_SIZE_NO_CPU or SNAP_DEVICES_SIZE_NO_INITRD, or the version 1 SNAP_DEVICES_SIZE_V1 (its
 * identity part); what a payload lacks decodes as zero. */
void snap_devices_decode(const u8 *in, u64 len, struct snap_devices *d);
const char *snap_vm_state_name(u32 state);

/* Version 1 PLATFORM payload: 0x88 bytes, or 0x60 from before the VGA
 * registers; the guest TSC rate at 0x58, the rest cut into device records. */
#define SNAP_PLATFORM_SIZE 0x88
#define SNAP_PLATFORM_SIZE_NO_VGA 0x60
#define SNAP_PLATFORM_TSC_HZ 0x58

/* DEVICE payload: one emulated device's record as the device itself lays it
 * out (vmm/dev_*.c): u32 record version, u32 record bytes, the record, zero
 * padding to a multiple of 8. The section's index is the device id
 * (vmm/vdev_id.h); the section is mandatory. */
#define SNAP_DEVREC_HEAD 8
#define SNAP_DEVREC_MAX 4096
#define SNAP_MAX_DEVICES 16
struct snap_devrec {
	u32 id, version, len;
	u8 data[SNAP_DEVREC_MAX];
};
static inline u64 snap_devrec_size(u32 len) { return SNAP_DEVREC_HEAD + ALIGN_UP((u64)len, 8); }
/* Cuts the device records out of a version 1 DEVICES or PLATFORM payload of
 * `len` bytes and appends them to recs[*n] (at most SNAP_MAX_DEVICES). */
void snap_v1_devrecs(u32 section, const u8 *payload, u64 len, struct snap_devrec *recs, u32 *n);

/* VCPU payload: u32 vCPU number, u32 fixed-part size (SNAP_VCPU_FIXED), the
 * fields of struct vcpu_state one by one in little-endian (the table in
 * format.c, mirrored in the doc), then xsave_size bytes of XSAVE area and zero
 * padding to a multiple of 8. */
#define SNAP_VCPU_FIXED 0x208
#define SNAP_VCPU_XSAVE_MAX sizeof(((struct vcpu_state *)0)->xsave)
#define SNAP_MAX_VCPUS 64
static inline u64 snap_vcpu_size(u32 xsave_size)
{
	return ALIGN_UP(SNAP_VCPU_FIXED + (u64)xsave_size, 8);
}
/* out must hold snap_vcpu_size(s->xsave_size) bytes. */
void snap_vcpu_encode(u32 id, const struct vcpu_state *s, u8 *out);
/* Decodes a record of `len` bytes; returns 0 or -EBADMSG with *why set. */
int snap_vcpu_decode(const u8 *in, u64 len, u32 *id, struct vcpu_state *s, const char **why);
/* The record offset of a named field ("rip", "cs.base"), or -1: for tests and tools. */
int snap_vcpu_field_offset(const char *name);
/* Names the field holding record byte `off` ("rip", "xsave area"), for reports. */
const char *snap_vcpu_field_at(u64 off);

/* PAGES payload: a 32-byte index head, the bitmap of stored (non-zero) pages,
 * one CRC32C per pages_per_crc stored pages, zero padding up to data_offset,
 * then the stored pages. payload_crc covers [0, data_offset). */
#define SNAP_PAGES_HEAD 32
#define SNAP_PAGES_PER_CRC 16	   /* what the writer uses: a CRC per 64 KiB of pages */
#define SNAP_PAGES_PER_CRC_MAX 256 /* what a reader accepts (1 MiB chunks) */
struct snap_pages_head {
	u32 pages_per_crc;
	u64 region_pages; /* bits in the bitmap */
	u64 stored_pages; /* bits set */
	u64 data_offset;  /* payload offset of the first stored page */
};
void snap_pages_head_encode(const struct snap_pages_head *h, u8 out[SNAP_PAGES_HEAD]);
void snap_pages_head_decode(const u8 in[SNAP_PAGES_HEAD], struct snap_pages_head *h);
/* DELTA payload: the PAGES layout with a run list in place of the bitmap:
 * a 32-byte head (0x04 holds the number of runs), runs of 8 bytes (u32 first
 * page, u32 pages; ascending, not touching), the chunk CRCs, zero padding up
 * to data_offset, the stored pages. A page no run names is the parent's. */
#define SNAP_DELTA_RUN 8
struct snap_delta_head {
	u32 pages_per_crc;
	u32 runs;
	u64 region_pages;
	u64 stored_pages;
	u64 data_offset;
};
void snap_delta_head_encode(const struct snap_delta_head *h, u8 out[SNAP_PAGES_HEAD]);
void snap_delta_head_decode(const u8 in[SNAP_PAGES_HEAD], struct snap_delta_head *h);
static inline u64 snap_bitmap_words(u64 pages) { return (pages + 63) / 64; }
static inline u64 snap_crc_count(u64 stored, u32 ppc) { return (stored + ppc - 1) / ppc; }

/* ---- helpers --------------------------------------------------------------- */
bool snap_page_is_zero(const void *page);
/* Valid snapshot names: 1-31 characters of A-Z a-z 0-9 . _ - */
bool snap_name_valid(const char *name);

/* Calendar time (UTC, proleptic Gregorian) to Unix seconds and back to
 * "YYYY-MM-DD HH:MM:SS"; for catalog times, kernel and host alike. */
u64 snap_unix_time(u32 year, u32 month, u32 day, u32 hour, u32 min, u32 sec);
void snap_format_time(char *buf, size_t len, u64 unix_seconds);

/* Memory for bitmaps and buffers: the kernel backs these with its page
 * allocator (snapshot/snap.c), the host tool and tests with malloc. */
void *snap_mem_alloc(size_t size);
void snap_mem_free(void *p, size_t size);

/* Set bits of a word; the kernel links no libgcc (so no __builtin_popcountll). */
static inline u64 snap_popcount64(u64 v)
{
	v = v - ((v >> 1) & 0x5555555555555555ULL);
	v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
	v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
	return (v * 0x0101010101010101ULL) >> 56;
}

static inline void snap_put16(u8 *p, u16 v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
}
static inline void snap_put32(u8 *p, u32 v)
{
	snap_put16(p, (u16)v);
	snap_put16(p + 2, (u16)(v >> 16));
}
static inline void snap_put64(u8 *p, u64 v)
{
	snap_put32(p, (u32)v);
	snap_put32(p + 4, (u32)(v >> 32));
}
static inline u16 snap_get16(const u8 *p) { return (u16)(p[0] | (p[1] << 8)); }
static inline u32 snap_get32(const u8 *p) { return snap_get16(p) | ((u32)snap_get16(p + 2) << 16); }
static inline u64 snap_get64(const u8 *p) { return snap_get32(p) | ((u64)snap_get32(p + 4) << 32); }

#endif
