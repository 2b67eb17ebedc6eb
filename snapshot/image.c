/*
 * Writing a snapshot image: scan guest memory into bitmaps and chunk CRCs, lay
 * the sections out, then stream them into a sink. Page data goes to the sink
 * straight from guest memory, the rest through a staging buffer. Pure code;
 * snapshot/save.c runs it with the VM paused (so memory cannot change between
 * the scan and the write).
 */
#include "kernel/lib.h"
#include "snapshot/image.h"

static const u8 zeros[256];

int snap_region_init(struct snap_region *r, u64 gpa, u64 pages, u32 pages_per_crc)
{
	return snap_region_init_for(r, gpa, pages, pages_per_crc, pages);
}

int snap_region_init_for(struct snap_region *r, u64 gpa, u64 pages, u32 pages_per_crc,
			 u64 max_stored)
{
	memset(r, 0, sizeof(*r));
	if (!pages || !pages_per_crc || pages_per_crc > SNAP_PAGES_PER_CRC_MAX ||
	    max_stored > pages)
		return -EINVAL;
	r->gpa = gpa;
	r->pages = pages;
	r->type = SNAP_REGION_RAM;
	r->pages_per_crc = pages_per_crc;
	r->crc_cap = MAX(snap_crc_count(max_stored, pages_per_crc), 1ULL);
	r->bitmap = snap_mem_alloc(snap_bitmap_words(pages) * 8);
	r->crc = snap_mem_alloc(r->crc_cap * 4);
	if (!r->bitmap || !r->crc) {
		snap_region_release(r);
		return -ENOMEM;
	}
	memset(r->bitmap, 0, snap_bitmap_words(pages) * 8);
	memset(r->crc, 0, r->crc_cap * 4);
	return 0;
}

void snap_region_release(struct snap_region *r)
{
	if (r->bitmap)
		snap_mem_free(r->bitmap, snap_bitmap_words(r->pages) * 8);
	if (r->crc)
		snap_mem_free(r->crc, r->crc_cap * 4);
	r->bitmap = NULL;
	r->crc = NULL;
}

int snap_region_scan(struct snap_region *r, snap_page_fn page, void *ctx, snap_progress_fn progress,
		     void *pctx)
{
	int ret;

	r->stored = 0;
	memset(r->bitmap, 0, snap_bitmap_words(r->pages) * 8);
	memset(r->crc, 0, r->crc_cap * 4);
	for (u64 i = 0; i < r->pages; i++) {
		const void *p = page(ctx, r->gpa + i * PAGE_SIZE);
		u64 chunk;

		if (!p)
			return -EFAULT;
		if (progress && i % SNAP_SCAN_STEP == 0) {
			ret = progress(pctx, i * PAGE_SIZE, r->pages * PAGE_SIZE);
			if (ret)
				return ret;
		}
		if (snap_page_is_zero(p))
			continue;
		r->bitmap[i / 64] |= 1ULL << (i % 64);
		chunk = r->stored / r->pages_per_crc;
		r->crc[chunk] = crc32c(r->crc[chunk], p, PAGE_SIZE);
		r->stored++;
	}
	return progress ? progress(pctx, r->pages * PAGE_SIZE, r->pages * PAGE_SIZE) : 0;
}

int snap_region_scan_changed(struct snap_region *r, const u64 *changed, snap_page_fn page,
			     void *ctx, snap_progress_fn progress, void *pctx)
{
	u64 words = snap_bitmap_words(r->pages);
	int ret;

	r->stored = 0;
	memset(r->crc, 0, r->crc_cap * 4);
	for (u64 w = 0; w < words; w++) {
		u64 bits = changed[w];

		if (w == words - 1 && r->pages % 64)
			bits &= (1ULL << (r->pages % 64)) - 1;
		r->bitmap[w] = bits;
		for (; bits; bits &= bits - 1) {
			u64 i = w * 64 + (u64)__builtin_ctzll(bits), chunk;
			const void *p = page(ctx, r->gpa + i * PAGE_SIZE);

			if (!p || r->stored >= r->crc_cap * r->pages_per_crc)
				return -EFAULT;
			chunk = r->stored / r->pages_per_crc;
			r->crc[chunk] = crc32c(r->crc[chunk], p, PAGE_SIZE);
			r->stored++;
		}
		if (progress && w % (SNAP_SCAN_STEP / 64) == 0) {
			ret = progress(pctx, w * 64 * PAGE_SIZE, r->pages * PAGE_SIZE);
			if (ret)
				return ret;
		}
	}
	return progress ? progress(pctx, r->pages * PAGE_SIZE, r->pages * PAGE_SIZE) : 0;
}

u64 snap_bitmap_runs(const u64 *bm, u64 pages)
{
	u64 runs = 0;
	bool prev = false;

	for (u64 w = 0; w < snap_bitmap_words(pages); w++) {
		u64 bits = bm[w];

		if (w == snap_bitmap_words(pages) - 1 && pages % 64)
			bits &= (1ULL << (pages % 64)) - 1;
		/* A run starts at each set bit whose lower neighbour is clear. */
		runs += snap_popcount64(bits & ~((bits << 1) | (prev ? 1 : 0)));
		prev = bits >> 63;
	}
	return runs;
}

u64 snap_region_stored_gpa(const struct snap_region *r, u64 n)
{
	for (u64 w = 0; w < snap_bitmap_words(r->pages); w++) {
		u64 bits = r->bitmap[w];
		u64 cnt = snap_popcount64(bits);

		if (n >= cnt) {
			n -= cnt;
			continue;
		}
		for (;; n--) {
			u64 bit = (u64)__builtin_ctzll(bits);

			if (!n)
				return r->gpa + (w * 64 + bit) * PAGE_SIZE;
			bits &= bits - 1;
		}
	}
	return ~0ULL;
}

static u64 note_len(const char *note) { return ALIGN_UP(strlen(note) + 1, 8); }

static u64 pages_index_len(const struct snap_region *r, bool delta)
{
	return SNAP_PAGES_HEAD +
	       (delta ? r->runs * (u64)SNAP_DELTA_RUN : snap_bitmap_words(r->pages) * 8) +
	       snap_crc_count(r->stored, r->pages_per_crc) * 4;
}

u64 snap_image_layout(struct snap_image *img)
{
	struct snapshot_header *h = &img->hdr;
	u64 pos = SNAP_HEADER_SIZE, mem_pages = 0;
	u32 sections = 0;
	u8 raw[SNAP_HEADER_SIZE];

	if (!img->nvcpus || img->nvcpus > SNAP_MAX_VCPUS || !img->nregions ||
	    img->nregions > SNAP_MAX_REGIONS)
		return 0;
	pos += SNAP_SECTION_HDR_SIZE + SNAP_IMAGE_SIZE;
	if (img->parent) {
		pos += SNAP_SECTION_HDR_SIZE + SNAP_PARENT_SIZE;
		sections++;
	}
	pos += SNAP_SECTION_HDR_SIZE + snap_regions_size(img->nregions);
	for (u32 i = 0; i < img->nvcpus; i++) {
		if (img->vcpu[i]->xsave_size > SNAP_VCPU_XSAVE_MAX)
			return 0;
		pos += SNAP_SECTION_HDR_SIZE + snap_vcpu_size(img->vcpu[i]->xsave_size);
	}
	pos += SNAP_SECTION_HDR_SIZE + SNAP_DEVICES_SIZE;
	if (img->ndevrecs > SNAP_MAX_DEVICES)
		return 0;
	for (u32 i = 0; i < img->ndevrecs; i++) {
		if (img->devrec[i].len > SNAP_DEVREC_MAX)
			return 0;
		pos += SNAP_SECTION_HDR_SIZE + snap_devrec_size(img->devrec[i].len);
	}
	sections += 3 + img->nvcpus + img->ndevrecs;
	if (img->note) {
		pos += SNAP_SECTION_HDR_SIZE + note_len(img->note);
		sections++;
	}
	for (u32 i = 0; i < img->nregions; i++) {
		struct snap_region *r = &img->region[i];

		r->runs = img->parent ? (u32)snap_bitmap_runs(r->bitmap, r->pages) : 0;
		r->sec_pos = pos;
		r->data_pos = ALIGN_UP(
			pos + SNAP_SECTION_HDR_SIZE + pages_index_len(r, img->parent), SNAP_BLOCK);
		pos = r->data_pos + r->stored * PAGE_SIZE;
		mem_pages += r->pages;
		sections++;
	}
	/* END: its header, then zeros up to the next block boundary. */
	pos = ALIGN_UP(pos + SNAP_SECTION_HDR_SIZE, SNAP_BLOCK);
	sections++;

	h->magic = SNAPSHOT_MAGIC;
	h->version = SNAPSHOT_VERSION;
	h->vcpu_count = img->nvcpus;
	h->pad0 = 0;
	h->memory_pages = mem_pages;
	h->region_count = img->nregions;
	h->pad1 = 0;
	h->total_size = pos;
	h->checksum = snap_header_compute_checksum(h);
	snap_header_encode(h, raw);
	img->info.header_crc = crc32c(0, raw, sizeof(raw));
	img->info.section_count = sections;
	return pos;
}

/* ---- the sink -------------------------------------------------------------- */
static int sink_progress(struct snap_sink *s)
{
	return s->progress ? s->progress(s->progress_ctx, s->pos + s->stage_len, s->total) : 0;
}

/* Writes out what is staged; the staged length must be whole blocks. */
static int sink_flush(struct snap_sink *s)
{
	int ret;

	if (!s->stage_len)
		return 0;
	if (s->stage_len % SNAP_BLOCK)
		return -EINVAL;
	ret = s->write(s, s->pos, s->stage, s->stage_len);
	if (ret)
		return ret;
	s->pos += s->stage_len;
	s->stage_len = 0;
	return sink_progress(s);
}

static int sink_put(struct snap_sink *s, const void *data, u64 len)
{
	const u8 *p = data;

	while (len) {
		u64 n = MIN(len, s->stage_size - s->stage_len);
		int ret;

		if (p)
			memcpy(s->stage + s->stage_len, p, n);
		else
			memset(s->stage + s->stage_len, 0, n);
		s->stage_len += n;
		len -= n;
		if (p)
			p += n;
		if (s->stage_len == s->stage_size) {
			ret = sink_flush(s);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int put_section(struct snap_sink *s, u32 type, u32 flags, u32 index, u64 length, u32 crc)
{
	struct snap_section sec = {
		.type = type,
		.flags = flags,
		.length = length,
		.index = index,
		.payload_crc = crc,
	};
	u8 raw[SNAP_SECTION_HDR_SIZE];

	snap_section_encode(&sec, raw);
	return sink_put(s, raw, sizeof(raw));
}

/* A whole small section: header, then the payload it covers. */
static int put_record(struct snap_sink *s, u32 type, u32 index, const void *payload, u64 len)
{
	int ret = put_section(s, type, SNAP_SEC_MANDATORY, index, len, crc32c(0, payload, len));

	return ret ? ret : sink_put(s, payload, len);
}

static u32 crc_zeros(u32 crc, u64 len)
{
	while (len) {
		u64 n = MIN(len, sizeof(zeros));

		crc = crc32c(crc, zeros, n);
		len -= n;
	}
	return crc;
}

/* The bitmap and the CRC table in their little-endian disk form, through a
 * small bounce so the in-memory arrays stay native. */
static u32 put_words(struct snap_sink *s, const void *arr, u64 count, unsigned size, u32 crc,
		     int *err)
{
	u8 buf[256];
	u64 i = 0;

	while (i < count && !*err) {
		u64 n = MIN(count - i, sizeof(buf) / size);

		for (u64 k = 0; k < n; k++) {
			if (size == 8)
				snap_put64(buf + k * 8, ((const u64 *)arr)[i + k]);
			else
				snap_put32(buf + k * 4, ((const u32 *)arr)[i + k]);
		}
		crc = crc32c(crc, buf, n * size);
		if (s)
			*err = sink_put(s, buf, n * size);
		i += n;
	}
	return crc;
}

/* The DELTA run list in its disk form: (u32 first page, u32 pages) per run
 * of set bits, through a small bounce. */
static u32 put_runs(struct snap_sink *s, const struct snap_region *r, u32 crc, int *err)
{
	u8 buf[256];
	u64 n = 0;

	for (u64 i = 0; i < r->pages && !*err;) {
		u64 end;

		if (!(r->bitmap[i / 64] & (1ULL << (i % 64)))) {
			i++;
			continue;
		}
		for (end = i + 1; end < r->pages && (r->bitmap[end / 64] & (1ULL << (end % 64)));)
			end++;
		snap_put32(buf + n, (u32)i);
		snap_put32(buf + n + 4, (u32)(end - i));
		n += SNAP_DELTA_RUN;
		i = end;
		if (n == sizeof(buf) || i >= r->pages) {
			crc = crc32c(crc, buf, n);
			if (s)
				*err = sink_put(s, buf, n);
			n = 0;
		}
	}
	if (n && !*err) {
		crc = crc32c(crc, buf, n);
		if (s)
			*err = sink_put(s, buf, n);
	}
	return crc;
}

/* A region's PAGES section (its bitmap) or, for an incremental image, its
 * DELTA section (its run list); the index, then the page data. */
static int put_pages(struct snap_sink *s, struct snap_region *r, u32 index, bool delta,
		     bool in_place, snap_page_fn page, void *ctx)
{
	struct snap_delta_head head = {
		.pages_per_crc = r->pages_per_crc,
		.runs = delta ? r->runs : 0,
		.region_pages = r->pages,
		.stored_pages = r->stored,
		.data_offset = r->data_pos - (r->sec_pos + SNAP_SECTION_HDR_SIZE),
	};
	u64 words = snap_bitmap_words(r->pages), ncrc = snap_crc_count(r->stored, r->pages_per_crc);
	u64 pad = head.data_offset - pages_index_len(r, delta);
	u8 raw[SNAP_PAGES_HEAD];
	u32 crc;
	int err = 0;

	/* The index CRC goes into the section header, so compute it first. The
	 * PAGES head is the DELTA head with zero runs (1.9, 1.12). */
	snap_delta_head_encode(&head, raw);
	crc = crc32c(0, raw, sizeof(raw));
	if (delta)
		crc = put_runs(NULL, r, crc, &err);
	else
		crc = put_words(NULL, r->bitmap, words, 8, crc, &err);
	crc = put_words(NULL, r->crc, ncrc, 4, crc, &err);
	crc = crc_zeros(crc, pad);
	err = put_section(s, delta ? SNAP_SEC_DELTA : SNAP_SEC_PAGES, SNAP_SEC_MANDATORY, index,
			  head.data_offset + r->stored * PAGE_SIZE, crc);
	if (!err)
		err = sink_put(s, raw, sizeof(raw));
	if (delta)
		put_runs(s, r, 0, &err);
	else
		put_words(s, r->bitmap, words, 8, 0, &err);
	put_words(s, r->crc, ncrc, 4, 0, &err);
	if (!err)
		err = sink_put(s, NULL, pad);
	if (!err)
		err = sink_flush(s);
	if (err)
		return err;
	if (s->pos != r->data_pos)
		return -EINVAL;
	if (in_place) {
		s->pos += r->stored * PAGE_SIZE;
		return 0;
	}

	/* Runs of stored pages that are contiguous in host memory go out in one
	 * write each, at most 1 MiB so progress and Ctrl-C stay responsive. */
	for (u64 i = 0; i < r->pages;) {
		const u8 *start;
		u64 n = 1;

		if (!(r->bitmap[i / 64] & (1ULL << (i % 64)))) {
			i++;
			continue;
		}
		start = page(ctx, r->gpa + i * PAGE_SIZE);
		if (!start)
			return -EFAULT;
		while (i + n < r->pages && n < 256 &&
		       (r->bitmap[(i + n) / 64] & (1ULL << ((i + n) % 64))) &&
		       page(ctx, r->gpa + (i + n) * PAGE_SIZE) == start + n * PAGE_SIZE)
			n++;
		err = s->write(s, s->pos, start, n * PAGE_SIZE);
		if (err)
			return err;
		s->pos += n * PAGE_SIZE;
		i += n;
		err = sink_progress(s);
		if (err)
			return err;
	}
	return 0;
}

int snap_image_write(struct snap_image *img, struct snap_sink *s, snap_page_fn page, void *ctx)
{
	u8 raw[SNAP_DEVICES_SIZE > SNAP_HEADER_SIZE ? SNAP_DEVICES_SIZE : SNAP_HEADER_SIZE];
	u64 vlen = snap_vcpu_size(SNAP_VCPU_XSAVE_MAX);
	u8 *vbuf;
	int err;

	if (!s->stage_size || s->stage_size % SNAP_BLOCK)
		return -EINVAL;
	s->stage_len = 0;
	s->pos = 0;
	s->total = img->hdr.total_size;
	vbuf = snap_mem_alloc(vlen);
	if (!vbuf)
		return -ENOMEM;

	snap_header_encode(&img->hdr, raw);
	err = sink_put(s, raw, SNAP_HEADER_SIZE);
	if (!err) {
		snap_image_info_encode(&img->info, raw);
		err = put_record(s, SNAP_SEC_IMAGE, 0, raw, SNAP_IMAGE_SIZE);
	}
	if (!err && img->parent) {
		snap_parent_encode(img->parent, raw);
		err = put_record(s, SNAP_SEC_PARENT, 0, raw, SNAP_PARENT_SIZE);
	}
	if (!err) {
		u64 len = snap_regions_size(img->nregions);
		struct snap_regions_head rh = { .count = img->nregions };

		snap_regions_head_encode(&rh, vbuf);
		for (u32 i = 0; i < img->nregions; i++) {
			struct snap_region_desc d = { .gpa = img->region[i].gpa,
						      .pages = img->region[i].pages,
						      .type = img->region[i].type };

			snap_region_desc_encode(&d, vbuf + SNAP_REGIONS_HEAD +
							    i * SNAP_REGION_ENTRY_SIZE);
		}
		err = put_record(s, SNAP_SEC_REGIONS, 0, vbuf, len);
	}
	for (u32 i = 0; i < img->nvcpus && !err; i++) {
		snap_vcpu_encode(i, img->vcpu[i], vbuf);
		err = put_record(s, SNAP_SEC_VCPU, i, vbuf,
				 snap_vcpu_size(img->vcpu[i]->xsave_size));
	}
	if (!err) {
		snap_devices_encode(&img->dev, raw);
		err = put_record(s, SNAP_SEC_DEVICES, 0, raw, SNAP_DEVICES_SIZE);
	}
	for (u32 i = 0; i < img->ndevrecs && !err; i++) {
		const struct snap_devrec *d = &img->devrec[i];
		u64 len = snap_devrec_size(d->len);

		memset(vbuf, 0, len);
		snap_put32(vbuf, d->version);
		snap_put32(vbuf + 4, d->len);
		memcpy(vbuf + SNAP_DEVREC_HEAD, d->data, d->len);
		err = put_record(s, SNAP_SEC_DEVICE, d->id, vbuf, len);
	}
	if (!err && img->note) {
		u64 len = note_len(img->note);

		if (len > vlen)
			err = -EINVAL;
		if (!err) {
			memset(vbuf, 0, len);
			memcpy(vbuf, img->note, strlen(img->note));
			err = put_section(s, SNAP_SEC_NOTE, 0, 0, len, crc32c(0, vbuf, len));
		}
		if (!err)
			err = sink_put(s, vbuf, len);
	}
	snap_mem_free(vbuf, vlen);
	for (u32 i = 0; i < img->nregions && !err; i++) {
		if (s->pos + s->stage_len != img->region[i].sec_pos)
			return -EINVAL;
		err = put_pages(s, &img->region[i], i, img->parent != NULL, img->data_in_place,
				page, ctx);
	}
	if (!err) {
		u64 pad = img->hdr.total_size - (s->pos + s->stage_len + SNAP_SECTION_HDR_SIZE);

		err = put_section(s, SNAP_SEC_END, SNAP_SEC_MANDATORY, 0, pad, crc_zeros(0, pad));
		if (!err)
			err = sink_put(s, NULL, pad);
		if (!err)
			err = sink_flush(s);
	}
	if (!err && s->pos != img->hdr.total_size)
		err = -EINVAL;
	return err;
}
