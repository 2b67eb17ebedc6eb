/*
 * Shared by the snapshot fuzz harnesses: an in-memory image sink and source,
 * a small but complete image of a fake guest (the seed the writer itself
 * makes), and writing seed files. Host only.
 */
#ifndef AMBER_FUZZ_SNAP_H
#define AMBER_FUZZ_SNAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "snapshot/image.h"

#define FUZZ_GUEST_PAGES 40
#define FUZZ_MAX_LINES 2000 /* a description longer than this "prints without end" */

struct fuzz_buf {
	u8 *p;
	u64 size;
};

static int fuzz_sink_write(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	struct fuzz_buf *b = s->ctx;

	if (off > b->size || len > b->size - off)
		return -ERANGE;
	memcpy(b->p + off, buf, len);
	return 0;
}

static __attribute__((unused)) int fuzz_src_read(struct snap_source *src, u64 off, void *buf,
						 u64 len)
{
	const struct fuzz_buf *b = src->ctx;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	memcpy(buf, b->p + off, len);
	return 0;
}

/* Guest memory of the fake guest; NULL past its end (as gpa_to_hva does). */
static u8 fuzz_guest[FUZZ_GUEST_PAGES * PAGE_SIZE] __attribute__((aligned(4096)));
static void *fuzz_guest_page(void *ctx, u64 gpa)
{
	return gpa < sizeof(fuzz_guest) ? fuzz_guest + gpa : NULL;
}

/* The one-pass restore (snap_image_load) into the fake guest: prepare takes
 * every region, as restore does once it has made its VM. Returns what the
 * load returned; one pass must never accept what the walk alone refuses
 * (open_ret: snap_image_open() on the same bytes). */
static int fuzz_prepare(struct snap_loader *ld, struct snap_parsed *p, u32 ri,
			struct snap_report *rep)
{
	return 0;
}
static __attribute__((unused)) int fuzz_load(struct snap_source *src, int open_ret)
{
	static struct snap_parsed q;
	static struct vcpu_state vcpus[2];
	struct snap_loader ld = {
		.prepare = fuzz_prepare, .page = fuzz_guest_page, .vcpu = vcpus, .nvcpu = 2
	};
	struct snap_report rep = { 0 };
	int ret = snap_image_load(src, &q, &rep, &ld);

	if (ret == 0 && (open_ret != 0 || rep.errors))
		abort();
	for (u32 i = 0; ret == 0 && i < q.nregions; i++)
		if (!(ld.loaded & (1ULL << i)))
			abort();
	snap_image_close(&q);
	return ret;
}

/* A valid image with two regions (the second with a CRC per 3 pages), one or
 * two vCPUs and a note; returns its size in *size (malloc'ed). With `parent`
 * it is an incremental image over that parent: PARENT and DELTA sections
 * holding the pages whose number is in `changed` (bit per page). */
static u8 *fuzz_make_image_over(u32 nvcpus, u64 *size, const struct snap_parent *parent,
				u64 changed)
{
	static struct vcpu_state vs[2];
	static struct snap_image img;
	struct fuzz_buf b;
	struct snap_sink sink = { .write = fuzz_sink_write, .ctx = &b };
	u8 *stage = malloc(4 * SNAP_BLOCK);

	memset(fuzz_guest, 0, sizeof(fuzz_guest));
	for (u32 pg = 3; pg < FUZZ_GUEST_PAGES; pg += 5)
		memset(fuzz_guest + pg * PAGE_SIZE, (int)pg, 64);
	memset(&img, 0, sizeof(img));
	for (u32 i = 0; i < 2; i++) {
		memset(&vs[i], 0, sizeof(vs[i]));
		vs[i].rip = 0x100000 + i;
		vs[i].cr0 = 0x11;
		vs[i].xsave_size = i ? 576 : 0;
	}
	img.hdr.vm_id = 1;
	strcpy(img.info.name, "seed");
	strcpy(img.info.backend, "AMD-V");
	img.nvcpus = nvcpus;
	img.vcpu[0] = &vs[0];
	img.vcpu[1] = &vs[1];
	img.dev.vm_state = SNAP_VM_PAUSED;
	img.dev.mem_size = sizeof(fuzz_guest);
	strcpy(img.dev.image, "hello");
	img.note = "fuzz seed";
	img.nregions = 2;
	img.parent = parent;
	img.info.image_id = parent ? parent->image_id + 1 : 0x5EED;
	img.hdr.timestamp = parent ? parent->depth : 0;
	snap_region_init(&img.region[0], 0, 24, SNAP_PAGES_PER_CRC);
	snap_region_init(&img.region[1], 24 * PAGE_SIZE, FUZZ_GUEST_PAGES - 24, 3);
	for (u32 i = 0; i < 2; i++) {
		u64 bits = i ? changed >> 24 : changed & ((1ULL << 24) - 1);

		if (parent)
			snap_region_scan_changed(&img.region[i], &bits, fuzz_guest_page, NULL, NULL,
						 NULL);
		else
			snap_region_scan(&img.region[i], fuzz_guest_page, NULL, NULL, NULL);
	}
	*size = snap_image_layout(&img);
	b.size = *size;
	b.p = calloc(1, b.size);
	sink.stage = stage;
	sink.stage_size = 4 * SNAP_BLOCK;
	if (!*size || snap_image_write(&img, &sink, fuzz_guest_page, NULL))
		abort();
	for (u32 i = 0; i < 2; i++)
		snap_region_release(&img.region[i]);
	free(stage);
	return b.p;
}

static __attribute__((unused)) u8 *fuzz_make_image(u32 nvcpus, u64 *size)
{
	return fuzz_make_image_over(nvcpus, size, NULL, 0);
}

/* The PARENT record of a child of `img` (a chain `depth` images deep). */
static __attribute__((unused)) void fuzz_parent_of(const u8 *img, const char *name, u32 depth,
						   struct snap_parent *pr)
{
	struct snapshot_header h;

	snap_header_decode(img, &h);
	memset(pr, 0, sizeof(*pr));
	pr->version = SNAP_PARENT_VERSION;
	pr->depth = depth;
	pr->image_id = snap_get64(img + SNAP_HEADER_SIZE + SNAP_SECTION_HDR_SIZE + 8);
	pr->header_crc = crc32c(0, img, SNAP_HEADER_SIZE);
	pr->source = SNAP_DELTA_LOG;
	pr->memory_pages = h.memory_pages;
	strcpy(pr->name, name);
}

/*
 * CRCs stop a fuzzer at the first check: a mutated byte almost never comes
 * with its CRC. For every other input the harnesses make the image's CRCs
 * consistent first (header checksum, each section's header and payload CRC,
 * the header CRC in IMAGE), so that what lies behind the checks is fuzzed too,
 * as a crafted image from a hostile disk would be. Page chunk CRCs are left:
 * a mismatch there is reported and the walk goes on.
 */
static void fuzz_fix_image(u8 *img, size_t size)
{
	struct snapshot_header h;
	u64 pos = SNAP_HEADER_SIZE;

	if (size < SNAP_HEADER_SIZE)
		return;
	snap_header_decode(img, &h);
	h.checksum = snap_header_compute_checksum(&h);
	snap_header_encode(&h, img);
	for (int n = 0; n < SNAP_MAX_SECTIONS && size - pos >= SNAP_SECTION_HDR_SIZE; n++) {
		u8 *sec = img + pos, *payload = sec + SNAP_SECTION_HDR_SIZE;
		u32 type = snap_get32(sec);
		u64 len = snap_get64(sec + 8), crc_len = len;

		if (len > size - pos - SNAP_SECTION_HDR_SIZE)
			break;
		if ((type == SNAP_SEC_PAGES || type == SNAP_SEC_DELTA) && len >= SNAP_PAGES_HEAD)
			crc_len = MIN(snap_get64(payload + 0x18), len);
		if (type == SNAP_SEC_IMAGE && len >= SNAP_IMAGE_SIZE)
			snap_put32(payload, crc32c(0, img, SNAP_HEADER_SIZE));
		snap_put32(sec + 0x18, crc32c(0, payload, crc_len));
		snap_put32(sec + 0x1C, crc32c(0, sec, 0x1C));
		pos += SNAP_SECTION_HDR_SIZE + len;
		if (type == SNAP_SEC_END)
			break;
	}
}

static void fuzz_write_seed(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len)
		abort();
	fclose(f);
}

#endif
