/*
 * Whole snapshot images: the layout and streaming writer (save), and the
 * walker that verifies every CRC, names the broken part and loads the pages
 * (restore, `snap verify`, amber-snap). Pure code over two small callbacks, a
 * sink that stores image blocks and a source that reads image bytes.
 */
#ifndef AMBER_SNAP_IMAGE_H
#define AMBER_SNAP_IMAGE_H

#include "snapshot/format.h"

/* Host-virtual address of the guest page at `gpa` (4 KiB), or NULL. */
typedef void *(*snap_page_fn)(void *ctx, u64 gpa);
/* Called as the work advances; a nonzero return (e.g. -ECANCELED) stops it. */
typedef int (*snap_progress_fn)(void *ctx, u64 done, u64 total);

/* One guest-physical memory region with its bitmap of stored pages. */
struct snap_region {
	u64 gpa;
	u64 pages;
	u32 type; /* SNAP_REGION_RAM */
	u32 pages_per_crc;
	u64 stored;   /* pages with a bit in the bitmap */
	u64 *bitmap;  /* snap_bitmap_words(pages) words, bit set = page stored */
	u32 *crc;     /* CRC32C of each run of pages_per_crc stored pages */
	u64 crc_cap;  /* entries allocated in crc[] */
	u64 sec_pos;  /* image offset of its PAGES section header */
	u64 data_pos; /* image offset of its first stored page */
	u32 runs;     /* DELTA: runs of stored pages (snap_image_layout) */
};

/* Allocates the bitmap and the CRC table for the worst case (every page stored). */
int snap_region_init(struct snap_region *r, u64 gpa, u64 pages, u32 pages_per_crc);
/* The same with a CRC table for at most max_stored stored pages (a reader
 * knows the count, and sizes its memory by it rather than by the worst case). */
int snap_region_init_for(struct snap_region *r, u64 gpa, u64 pages, u32 pages_per_crc,
			 u64 max_stored);
void snap_region_release(struct snap_region *r);
/* Builds the bitmap (all-zero pages are left out) and the chunk CRCs; `page`
 * must return every page of the region. progress (optional) is called every
 * SNAP_SCAN_STEP pages with the bytes scanned so far; its nonzero return stops
 * the scan. */
#define SNAP_SCAN_STEP 256
int snap_region_scan(struct snap_region *r, snap_page_fn page, void *ctx, snap_progress_fn progress,
		     void *pctx);
/* The same for an incremental image: the pages set in `changed` (bit p: page
 * p of the region) are stored, zero or not, and no others. */
int snap_region_scan_changed(struct snap_region *r, const u64 *changed, snap_page_fn page,
			     void *ctx, snap_progress_fn progress, void *pctx);
/* Runs of consecutive set bits in the first `pages` bits of bm. */
u64 snap_bitmap_runs(const u64 *bm, u64 pages);
/* Guest-physical address of the stored page number `n` of r, or ~0 if none. */
u64 snap_region_stored_gpa(const struct snap_region *r, u64 n);

/* ---- writing --------------------------------------------------------------- */
struct snap_image {
	struct snapshot_header hdr;  /* caller: vm_id, timestamp; layout: the rest */
	struct snap_image_info info; /* caller: name, backend; layout: the rest */
	struct snap_devices dev;
	u32 ndevrecs;
	struct snap_devrec devrec[SNAP_MAX_DEVICES]; /* written as DEVICE sections */
	u32 nvcpus;
	const struct vcpu_state *vcpu[SNAP_MAX_VCPUS];
	u32 nregions;
	struct snap_region region[SNAP_MAX_REGIONS]; /* scanned */
	const char *note;			     /* optional NOTE text, or NULL */
	/* The regions' page data is in its place on the sink already (a live
	 * save wrote it, snapshot/live.c): snap_image_write writes the rest. */
	bool data_in_place;
	/* An incremental image: its parent (PARENT section), and its regions
	 * written as DELTA sections; NULL for a full image. */
	const struct snap_parent *parent;
};

/* Computes the image's layout: fills the header (checksum included), the
 * IMAGE record and each region's positions. Returns total_size (a multiple of
 * SNAP_BLOCK), or 0 when the image description is not valid. */
u64 snap_image_layout(struct snap_image *img);

struct snap_sink {
	/* Stores `len` image bytes at image offset `off`; both are multiples of
	 * SNAP_BLOCK. buf may point into guest memory (page data is written
	 * straight from it, without a copy). Returns 0 or a negative errno. */
	int (*write)(struct snap_sink *s, u64 off, const void *buf, u64 len);
	snap_progress_fn progress; /* optional */
	void *progress_ctx;
	void *ctx;		   /* for write */
	u8 *stage;		   /* staging buffer for everything but page data */
	u64 stage_size;		   /* a multiple of SNAP_BLOCK */
	u64 stage_len, pos, total; /* private */
};

/* Streams the image laid out by snap_image_layout() into the sink. */
int snap_image_write(struct snap_image *img, struct snap_sink *sink, snap_page_fn page, void *ctx);

/* ---- reading --------------------------------------------------------------- */
struct snap_source {
	/* Reads `len` image bytes at image offset `off` into buf. When off and
	 * len are multiples of SNAP_BLOCK, buf is a page-aligned destination
	 * (possibly guest memory). Returns 0 or a negative errno. */
	int (*read)(struct snap_source *src, u64 off, void *buf, u64 len);
	u64 size; /* bytes the image may occupy (its extent on disk, or the file) */
	void *ctx;
};

/* What a walk found wrong, one line per finding. */
struct snap_report {
	void (*emit)(struct snap_report *r, const char *line); /* may be NULL */
	void *ctx;
	int errors;
	char first[200]; /* the first finding, for one-line refusals */
};
void snap_report(struct snap_report *r, const char *fmt, ...) __printf(2, 3);

#define SNAP_MAX_SECTIONS (SNAP_MAX_VCPUS + SNAP_MAX_REGIONS + 32)
#define SNAP_SCRATCH (1UL << 20) /* reader's buffer: one maximal CRC chunk */

struct snap_sec_desc {
	u32 type, flags, index;
	u64 pos;    /* image offset of the section header */
	u64 length; /* payload bytes */
	u32 crc;    /* payload_crc */
};

struct snap_loader;

struct snap_parsed {
	struct snapshot_header hdr;
	u8 hdr_raw[SNAP_HEADER_SIZE];
	struct snap_image_info info;
	struct snap_devices dev;
	u32 ndevrecs;
	struct snap_devrec devrec[SNAP_MAX_DEVICES]; /* DEVICE sections, or cut from v1 */
	u64 devices_seen;			     /* DEVICE sections met, by device id */
	u64 platform_tsc_hz;			     /* version 1: the TSC rate in PLATFORM */
	char note[256];
	struct snap_region_desc rdesc[SNAP_MAX_REGIONS]; /* the REGIONS table */
	u32 nregions;
	struct snap_region region[SNAP_MAX_REGIONS]; /* bitmap NULL if its index is bad */
	u32 pages_seen;				     /* PAGES sections met, by region */
	u32 nsections;
	struct snap_sec_desc sec[SNAP_MAX_SECTIONS];
	int vcpu_sec[SNAP_MAX_VCPUS]; /* index into sec[] of each valid vCPU record */
	u64 vcpus_seen;		      /* VCPU sections met, by vCPU number */
	u32 skipped;		      /* optional sections of unknown types */
	bool child;		      /* a PARENT section: an incremental image */
	struct snap_parent parent;    /* its record */
	u32 delta_seen;		      /* DELTA sections met, by region */
	u8 *scratch;		      /* SNAP_SCRATCH bytes */
	struct snap_loader *ld;	      /* snap_image_load(): where pages and vCPUs go */
	int errors_before;	      /* the report's count when the walk began */
};

/* Reads and checks the header and every section except the page data (their
 * CRCs included); reports each finding. Returns 0, -EBADMSG when something is
 * wrong, or the source's errno when it cannot be read. Call snap_image_close()
 * afterwards in every case. */
int snap_image_open(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep);
void snap_image_close(struct snap_parsed *p);
/* Checks every chunk CRC of the page data, naming each broken page range. */
int snap_image_check_pages(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep,
			   snap_progress_fn progress, void *pctx);
/* Reads vCPU `id`'s record again (CRC re-checked) and decodes it. */
int snap_image_read_vcpu(struct snap_source *src, struct snap_parsed *p, u32 id,
			 struct vcpu_state *s, struct snap_report *rep);
/* Fills guest memory after snap_image_open(): stored pages read straight
 * into the pages `page` returns (each chunk's CRC checked as it lands), the
 * others zeroed (amber-snap core; restore uses snap_image_load). */
int snap_image_load_pages(struct snap_source *src, struct snap_parsed *p, snap_page_fn page,
			  void *ctx, struct snap_report *rep, snap_progress_fn progress,
			  void *pctx);
/* ---- restore in one pass ----------------------------------------------------- */
struct snap_loader {
	/* Called when the walk reaches the page data of region ri, its index
	 * checked, its gpa and size agreeing with the region table, and nothing
	 * found wrong so far. Returns 0 to load the region through page/ctx
	 * (which it may set now), a positive number to skip it (the walk goes on
	 * and must end in a finding: the caller reported one, or the walk will),
	 * or a negative errno that ends the walk. */
	int (*prepare)(struct snap_loader *ld, struct snap_parsed *p, u32 ri,
		       struct snap_report *rep);
	snap_page_fn page;
	void *ctx;
	snap_progress_fn progress; /* optional */
	void *pctx;
	struct vcpu_state *vcpu; /* each vCPU record, decoded: vcpu[n] for n < nvcpu */
	u32 nvcpu;
	u64 loaded;			   /* out: regions loaded, by index */
	u64 zeroed;			   /* out: pages zeroed (none in the image) */
	u64 progress_base, progress_total; /* private */
};

/* Reads the image once, front to back: everything snap_image_open() checks,
 * and on the way each region's page data straight into guest memory through
 * ld (chunk CRCs checked as the pages land, pages not in the image zeroed)
 * and each vCPU record decoded into ld->vcpu. Returns 0 only when nothing was
 * found wrong, every region was loaded and every vCPU record decoded; else
 * -EBADMSG (reported), or an errno of the source, of ld->prepare or
 * -ECANCELED from progress. Guest memory is then partly written: discard it.
 * Call snap_image_close() afterwards in every case. */
int snap_image_load(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep,
		    struct snap_loader *ld);
/* One region's page data through ld (snapshot/pages.c; the two calls above). */
int snap_region_load(struct snap_source *src, struct snap_parsed *p, u32 ri, struct snap_loader *ld,
		     struct snap_report *rep);

/* A child's save by comparison: every stored page of the opened image (its
 * chunk CRCs checked, -EBADMSG reported) that a newer image of the chain did
 * not decide (`decided`, bit per guest page, below npages) is decided now,
 * and marked in `changed` when the guest's page (`page`) differs from it. */
int snap_image_compare(struct snap_source *src, struct snap_parsed *p, u64 npages, u64 *decided,
		       u64 *changed, snap_page_fn page, void *ctx, struct snap_report *rep,
		       snap_progress_fn progress, void *pctx);

/* Bytes of page data (stored pages) in the image: the progress total. */
u64 snap_image_page_bytes(const struct snap_parsed *p);

/* Prints the header fields, the sections, the regions and each vCPU's main
 * registers, one line per call of emit (used by `snap info` and amber-snap). */
void snap_image_describe(struct snap_source *src, struct snap_parsed *p,
			 void (*emit)(void *ctx, const char *line), void *ctx);

#endif
