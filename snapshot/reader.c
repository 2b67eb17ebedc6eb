/*
 * Reading a snapshot image: walk the sections, check every CRC and every
 * count against the header, and name the broken part (header, a section, a
 * vCPU record, a range of pages); then load vCPU records and pages. The image
 * is untrusted input: every length is bounded before it is used. Pure code.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "snapshot/image.h"
#include "vmm/vdev_id.h"

#define SNAP_MAX_REGION_PAGES (1ULL << 24) /* 64 GiB per region */

static struct vcpu_state check_state; /* the shell runs one command at a time */

void snap_report(struct snap_report *r, const char *fmt, ...)
{
	char line[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!r->errors)
		strlcpy(r->first, line, sizeof(r->first));
	r->errors++;
	if (r->emit)
		r->emit(r, line);
}

/* CRC32C of image bytes [off, off+len), read through the scratch buffer. */
static int crc_range(struct snap_source *src, struct snap_parsed *p, u64 off, u64 len, u32 *crc,
		     bool *all_zero)
{
	while (len) {
		u64 n = MIN(len, SNAP_SCRATCH);
		int ret = src->read(src, off, p->scratch, n);

		if (ret)
			return ret;
		*crc = crc32c(*crc, p->scratch, n);
		for (u64 i = 0; all_zero && *all_zero && i < n; i++)
			if (p->scratch[i])
				*all_zero = false;
		off += n;
		len -= n;
	}
	return 0;
}

/* "vCPU 1 state record (section 4 at image offset 0x1a0)" and the like. */
static void sec_label(char *buf, size_t size, const struct snap_sec_desc *d, u32 num)
{
	char what[48];

	switch (d->type) {
	case SNAP_SEC_VCPU:
		snprintf(what, sizeof(what), "vCPU %u state record", d->index);
		break;
	case SNAP_SEC_PAGES:
	case SNAP_SEC_DELTA:
		snprintf(what, sizeof(what), "memory region %u index", d->index);
		break;
	case SNAP_SEC_PARENT:
		strlcpy(what, "parent record", sizeof(what));
		break;
	case SNAP_SEC_REGIONS:
		strlcpy(what, "region table", sizeof(what));
		break;
	case SNAP_SEC_DEVICES:
		strlcpy(what, "device state", sizeof(what));
		break;
	case SNAP_SEC_PLATFORM:
		strlcpy(what, "platform device state", sizeof(what));
		break;
	case SNAP_SEC_DEVICE:
		snprintf(what, sizeof(what), "device %u (%s) record", d->index,
			 vdev_id_name(d->index) ? vdev_id_name(d->index) : "unknown");
		break;
	default:
		snprintf(what, sizeof(what), "%s section", snap_section_name(d->type));
		break;
	}
	snprintf(buf, size, "%s (section %u at image offset 0x%llx)", what, num,
		 (unsigned long long)d->pos);
}

/* Reads a small payload into scratch and checks its CRC. */
static int read_payload(struct snap_source *src, struct snap_parsed *p,
			const struct snap_sec_desc *d, u32 num, struct snap_report *rep)
{
	char label[96];
	u32 crc;
	int ret;

	if (d->length > SNAP_SCRATCH)
		return -EBADMSG;
	ret = src->read(src, d->pos + SNAP_SECTION_HDR_SIZE, p->scratch, d->length);
	if (ret)
		return ret;
	crc = crc32c(0, p->scratch, d->length);
	if (crc != d->crc) {
		sec_label(label, sizeof(label), d, num);
		snap_report(rep, "%s: CRC32C mismatch (stored 0x%08x, computed 0x%08x)", label,
			    d->crc, crc);
		return -EBADMSG;
	}
	return 0;
}

/* A DELTA run list into the region's bitmap: runs ascending, not touching,
 * inside the region, as many pages as stored. Returns false when not. */
static bool runs_to_bitmap(struct snap_region *r, const u8 *raw, u64 n, u64 *next, u64 *bits)
{
	for (u64 k = 0; k < n; k++) {
		u64 first = snap_get32(raw + k * SNAP_DELTA_RUN);
		u64 count = snap_get32(raw + k * SNAP_DELTA_RUN + 4);

		if (!count || first < *next || first + count > r->pages)
			return false;
		for (u64 pg = first; pg < first + count; pg++)
			r->bitmap[pg / 64] |= 1ULL << (pg % 64);
		*bits += count;
		*next = first + count + 1; /* the next run leaves a gap */
	}
	return true;
}

/* The PAGES index (head, bitmap, chunk CRCs) or the DELTA index (head, run
 * list, chunk CRCs) into p->region[index]: a DELTA becomes a bitmap too. */
static int open_pages(struct snap_source *src, struct snap_parsed *p, const struct snap_sec_desc *d,
		      u32 num, struct snap_report *rep)
{
	struct snap_region *r = &p->region[d->index];
	struct snap_delta_head h;
	bool delta = d->type == SNAP_SEC_DELTA, zero = true, runs_ok = true;
	u64 payload = d->pos + SNAP_SECTION_HDR_SIZE, words, ncrc, index_len, off, bits = 0;
	u64 next = 0, nlist;
	char label[96];
	u8 raw[SNAP_PAGES_HEAD];
	u32 crc;
	int ret;

	sec_label(label, sizeof(label), d, num);
	if (d->length < SNAP_PAGES_HEAD) {
		snap_report(rep, "%s: %llu bytes, too short", label, (unsigned long long)d->length);
		return -EBADMSG;
	}
	ret = src->read(src, payload, raw, sizeof(raw));
	if (ret)
		return ret;
	snap_delta_head_decode(raw, &h);
	crc = crc32c(0, raw, sizeof(raw));
	words = snap_bitmap_words(h.region_pages);
	if (h.pages_per_crc == 0 || h.pages_per_crc > SNAP_PAGES_PER_CRC_MAX || !h.region_pages ||
	    h.region_pages > SNAP_MAX_REGION_PAGES || h.stored_pages > h.region_pages ||
	    (delta ? h.runs > h.stored_pages : h.runs != 0)) {
		snap_report(rep,
			    "%s: impossible index (%llu pages, %llu stored, CRC per %u, %u runs)",
			    label, (unsigned long long)h.region_pages,
			    (unsigned long long)h.stored_pages, h.pages_per_crc, h.runs);
		return -EBADMSG;
	}
	ncrc = snap_crc_count(h.stored_pages, h.pages_per_crc);
	nlist = delta ? h.runs : words; /* u64 words, or 8-byte runs */
	index_len = SNAP_PAGES_HEAD + nlist * 8 + ncrc * 4;
	if (h.data_offset < index_len || h.data_offset - index_len >= SNAP_BLOCK ||
	    (payload + h.data_offset) % SNAP_BLOCK ||
	    d->length != h.data_offset + h.stored_pages * PAGE_SIZE) {
		snap_report(rep, "%s: page data misplaced (data offset 0x%llx, length 0x%llx)",
			    label, (unsigned long long)h.data_offset,
			    (unsigned long long)d->length);
		return -EBADMSG;
	}
	ret = snap_region_init_for(r, 0, h.region_pages, h.pages_per_crc, h.stored_pages);
	if (ret)
		return ret;
	r->stored = h.stored_pages;
	r->runs = h.runs;
	r->sec_pos = d->pos;
	r->data_pos = payload + h.data_offset;
	off = payload + SNAP_PAGES_HEAD;
	/* Bitmap or runs, then CRC table, each converted from little-endian. */
	for (u64 i = 0; i < nlist + ncrc;) {
		u64 n = i < nlist ? MIN(nlist - i, SNAP_SCRATCH / 8) :
				    MIN(nlist + ncrc - i, SNAP_SCRATCH / 4);
		unsigned size = i < nlist ? 8 : 4;

		ret = src->read(src, off, p->scratch, n * size);
		if (ret)
			return ret;
		crc = crc32c(crc, p->scratch, n * size);
		if (size == 8 && delta) {
			if (runs_ok)
				runs_ok = runs_to_bitmap(r, p->scratch, n, &next, &bits);
		} else {
			for (u64 k = 0; k < n; k++) {
				if (size == 8) {
					r->bitmap[i + k] = snap_get64(p->scratch + k * 8);
					bits += snap_popcount64(r->bitmap[i + k]);
				} else {
					r->crc[i + k - nlist] = snap_get32(p->scratch + k * 4);
				}
			}
		}
		off += n * size;
		i += n;
	}
	ret = crc_range(src, p, off, h.data_offset - index_len, &crc, &zero);
	if (ret)
		return ret;
	if (crc != d->crc) {
		snap_report(
			rep,
			"%s: CRC32C mismatch in the bitmap or chunk CRCs (stored 0x%08x, computed 0x%08x)",
			label, d->crc, crc);
		return -EBADMSG;
	}
	if (!runs_ok) {
		snap_report(rep, "%s: runs of changed pages overlap, touch or pass the region",
			    label);
		return -EBADMSG;
	}
	if (!zero || (h.region_pages % 64 && (r->bitmap[words - 1] >> (h.region_pages % 64))) ||
	    bits != h.stored_pages) {
		snap_report(rep, "%s: bitmap counts %llu pages, index says %llu", label,
			    (unsigned long long)bits, (unsigned long long)h.stored_pages);
		return -EBADMSG;
	}
	return 0;
}

/* snap_image_load(): region d->index's page data, read now into guest memory,
 * as long as the walk found nothing wrong (a damaged image's pages are not
 * worth reading). The region table must come first, as the writer puts it:
 * it says where the pages go. */
static int load_region(struct snap_source *src, struct snap_parsed *p,
		       const struct snap_sec_desc *d, u32 num, struct snap_report *rep, u64 seen)
{
	struct snap_loader *ld = p->ld;
	struct snap_region *r = &p->region[d->index];
	const struct snap_region_desc *t = &p->rdesc[d->index];
	char label[96];
	int ret;

	if (rep->errors > p->errors_before)
		return 0;
	if (!(seen & BIT(1))) {
		sec_label(label, sizeof(label), d, num);
		snap_report(rep,
			    "%s: comes before the region table (restore reads an image in "
			    "one pass and must know where the pages go)",
			    label);
		return -EBADMSG;
	}
	/* Not in the table, or disagreeing with it: check_whole() reports it. */
	if (d->index >= p->nregions || t->pages != r->pages || t->type != SNAP_REGION_RAM ||
	    t->gpa % PAGE_SIZE)
		return 0;
	r->gpa = t->gpa;
	r->type = t->type;
	ret = ld->prepare(ld, p, d->index, rep);
	if (ret)
		return ret < 0 ? ret : 0;
	ld->progress_base = r->data_pos;
	ld->progress_total = p->hdr.total_size;
	ret = snap_region_load(src, p, d->index, ld, rep);
	if (!ret)
		ld->loaded |= BIT(d->index);
	return ret;
}

/* The DEVICES lengths a reader takes (format.h): version 1's, or version 2's
 * with or without the CPU model and the initrd field. */
static bool devices_size_ok(u64 len, bool v1)
{
	if (v1)
		return len == SNAP_DEVICES_SIZE_V1;
	return len == SNAP_DEVICES_SIZE || len == SNAP_DEVICES_SIZE_NO_CPU ||
	       len == SNAP_DEVICES_SIZE_NO_INITRD;
}

/* Checks one section's payload by type; unknown optional ones are skipped
 * (their CRC still checked), unknown mandatory ones refused. */
static int open_section(struct snap_source *src, struct snap_parsed *p, struct snap_sec_desc *d,
			u32 num, struct snap_report *rep, u64 *seen)
{
	bool v1 = p->hdr.version == 1;
	char label[96];
	const char *why;
	u32 crc = 0, id;
	int ret;

	sec_label(label, sizeof(label), d, num);
	if ((d->type == SNAP_SEC_IMAGE) != (num == 0)) {
		snap_report(rep, "%s: the IMAGE section must come first, and only there", label);
		return -EBADMSG;
	}
	switch (d->type) {
	case SNAP_SEC_IMAGE:
		if (d->length != SNAP_IMAGE_SIZE)
			break;
		ret = read_payload(src, p, d, num, rep);
		if (!ret)
			snap_image_info_decode(p->scratch, &p->info);
		return ret;
	case SNAP_SEC_PARENT:
		/* Section 1, so that the chain is known from the first block. */
		if (d->length != SNAP_PARENT_SIZE || num != 1 || p->child)
			break;
		ret = read_payload(src, p, d, num, rep);
		if (ret)
			return ret;
		snap_parent_decode(p->scratch, &p->parent);
		why = snap_parent_check(&p->parent);
		if (why) {
			snap_report(rep, "%s: %s", label, why);
			return -EBADMSG;
		}
		p->child = true;
		return 0;
	case SNAP_SEC_REGIONS: {
		struct snap_regions_head rh;

		if (d->length < SNAP_REGIONS_HEAD ||
		    d->length > snap_regions_size(SNAP_MAX_REGIONS) || (*seen & BIT(1)))
			break;
		ret = read_payload(src, p, d, num, rep);
		if (ret)
			return ret;
		/* The count is checked before anything is stored or indexed by it. */
		snap_regions_head_decode(p->scratch, &rh);
		if (rh.count > SNAP_MAX_REGIONS || rh.zero ||
		    d->length != snap_regions_size(rh.count)) {
			snap_report(rep, "%s: %u regions in %llu bytes (at most %d)", label,
				    rh.count, (unsigned long long)d->length, SNAP_MAX_REGIONS);
			return -EBADMSG;
		}
		for (u32 i = 0; i < rh.count; i++)
			snap_region_desc_decode(p->scratch + SNAP_REGIONS_HEAD +
							i * SNAP_REGION_ENTRY_SIZE,
						&p->rdesc[i]);
		p->nregions = rh.count;
		*seen |= BIT(1);
		return 0;
	}
	case SNAP_SEC_VCPU:
		if (d->index >= SNAP_MAX_VCPUS || (p->vcpus_seen & BIT(d->index)) ||
		    d->length > snap_vcpu_size(SNAP_VCPU_XSAVE_MAX))
			break;
		p->vcpus_seen |= BIT(d->index);
		ret = read_payload(src, p, d, num, rep);
		if (ret)
			return ret;
		/* Decoded only to validate it; restore reads it again. */
		ret = snap_vcpu_decode(p->scratch, d->length, &id, &check_state, &why);
		if (ret || id != d->index) {
			snap_report(rep, "%s: %s", label,
				    ret ? why : "vCPU number differs from the header's");
			return -EBADMSG;
		}
		p->vcpu_sec[d->index] = (int)num;
		/* A one-pass restore keeps it, so that it is never read twice. */
		if (p->ld && d->index < p->ld->nvcpu)
			p->ld->vcpu[d->index] = check_state;
		return 0;
	case SNAP_SEC_DEVICES:
		if (!devices_size_ok(d->length, v1) || (*seen & BIT(2)))
			break;
		ret = read_payload(src, p, d, num, rep);
		if (ret)
			return ret;
		snap_devices_decode(p->scratch, d->length, &p->dev);
		if (v1) /* 0xB0 on held COM1; the TSC rate comes from PLATFORM */
			snap_v1_devrecs(d->type, p->scratch, d->length, p->devrec, &p->ndevrecs);
		*seen |= BIT(2);
		return 0;
	case SNAP_SEC_PLATFORM:
		if (!v1 ||
		    (d->length != SNAP_PLATFORM_SIZE && d->length != SNAP_PLATFORM_SIZE_NO_VGA) ||
		    (*seen & BIT(4)))
			break;
		ret = read_payload(src, p, d, num, rep);
		if (ret)
			return ret;
		p->platform_tsc_hz = snap_get64(p->scratch + SNAP_PLATFORM_TSC_HZ);
		snap_v1_devrecs(d->type, p->scratch, d->length, p->devrec, &p->ndevrecs);
		*seen |= BIT(4);
		return 0;
	case SNAP_SEC_DEVICE: {
		struct snap_devrec *rec;

		if (v1 || d->index >= 64 || (p->devices_seen & BIT(d->index)) ||
		    d->length < SNAP_DEVREC_HEAD || d->length > snap_devrec_size(SNAP_DEVREC_MAX) ||
		    p->ndevrecs >= SNAP_MAX_DEVICES)
			break;
		p->devices_seen |= BIT(d->index);
		ret = read_payload(src, p, d, num, rep);
		if (ret)
			return ret;
		rec = &p->devrec[p->ndevrecs];
		rec->id = d->index;
		rec->version = snap_get32(p->scratch);
		rec->len = snap_get32(p->scratch + 4);
		if (!rec->version || d->length != snap_devrec_size(rec->len)) {
			snap_report(rep, "%s: record version %u of %u bytes in %llu", label,
				    rec->version, rec->len, (unsigned long long)d->length);
			return -EBADMSG;
		}
		memcpy(rec->data, p->scratch + SNAP_DEVREC_HEAD, rec->len);
		p->ndevrecs++;
		return 0;
	}
	case SNAP_SEC_NOTE:
		if (d->length > SNAP_SCRATCH)
			break;
		ret = read_payload(src, p, d, num, rep);
		if (!ret) {
			memcpy(p->note, p->scratch, MIN(d->length, sizeof(p->note) - 1));
			p->note[sizeof(p->note) - 1] = '\0';
		}
		return ret;
	case SNAP_SEC_PAGES:
	case SNAP_SEC_DELTA:
		/* A full image has PAGES, an incremental one DELTA: a mix, or a
		 * DELTA before the PARENT record that says what it builds on,
		 * is damage. */
		if (d->index >= SNAP_MAX_REGIONS || (p->pages_seen & BIT(d->index)) ||
		    (d->type == SNAP_SEC_DELTA) != p->child)
			break;
		p->pages_seen |= BIT(d->index);
		if (d->type == SNAP_SEC_DELTA)
			p->delta_seen |= BIT(d->index);
		ret = open_pages(src, p, d, num, rep);
		if (ret) {
			snap_region_release(&p->region[d->index]);
			return ret;
		}
		return p->ld ? load_region(src, p, d, num, rep, *seen) : 0;
	case SNAP_SEC_END: {
		bool zero = true;

		*seen |= BIT(3);
		ret = crc_range(src, p, d->pos + SNAP_SECTION_HDR_SIZE, d->length, &crc, &zero);
		if (ret)
			return ret;
		if (crc != d->crc || !zero) {
			snap_report(rep, "%s: padding damaged (CRC32C 0x%08x, stored 0x%08x)",
				    label, crc, d->crc);
			return -EBADMSG;
		}
		return 0;
	}
	default:
		if (d->flags & SNAP_SEC_MANDATORY) {
			snap_report(rep,
				    "%s: mandatory section type 0x%04x is unknown to this Amber "
				    "(written by a newer version?)",
				    label, d->type);
			return -EBADMSG;
		}
		ret = crc_range(src, p, d->pos + SNAP_SECTION_HDR_SIZE, d->length, &crc, NULL);
		if (ret)
			return ret;
		if (crc != d->crc) {
			snap_report(rep,
				    "%s: CRC32C mismatch (optional section of unknown type 0x%04x)",
				    label, d->type);
			return -EBADMSG;
		}
		p->skipped++;
		return 0;
	}
	snap_report(rep, "%s: unexpected length %llu, index %u or repeated section", label,
		    (unsigned long long)d->length, d->index);
	return -EBADMSG;
}

/* Counts and positions that must agree once every section was seen. */
static void check_whole(struct snap_parsed *p, struct snap_report *rep, u64 seen, u64 limit,
			u64 end, bool walked)
{
	const struct snapshot_header *h = &p->hdr;
	u64 pages = 0;
	u32 nvcpus = 0;

	if (p->nsections && p->sec[0].type == SNAP_SEC_IMAGE && p->info.section_count) {
		if (p->info.header_crc != crc32c(0, p->hdr_raw, SNAP_HEADER_SIZE))
			snap_report(
				rep,
				"header (image bytes 0x00-0x3f): CRC32C mismatch (stored in IMAGE 0x%08x, computed 0x%08x)",
				p->info.header_crc, crc32c(0, p->hdr_raw, SNAP_HEADER_SIZE));
	}
	/* A walk cut short by a damaged section header was reported already;
	 * what it could not reach is no separate finding. */
	if (!walked)
		return;
	if (p->nsections && p->info.section_count && p->info.section_count != p->nsections)
		snap_report(rep, "image: %u sections found, IMAGE says %u", p->nsections,
			    p->info.section_count);
	if (!(seen & BIT(3)))
		snap_report(rep, "image: no END section before byte 0x%llx (image cut short?)",
			    (unsigned long long)limit);
	else if (end != h->total_size)
		snap_report(rep, "image: END section ends at 0x%llx, header's total_size is 0x%llx",
			    (unsigned long long)end, (unsigned long long)h->total_size);
	if (!(seen & BIT(1)))
		snap_report(rep, "image: no region table");
	if (!(seen & BIT(2)))
		snap_report(rep, "image: no device state");
	if (h->version == 1 && !(seen & BIT(4)))
		snap_report(rep, "image: no platform device state");
	if (h->version == 1 && p->platform_tsc_hz)
		p->dev.guest_tsc_hz = p->platform_tsc_hz;
	for (u32 i = 0; i < SNAP_MAX_VCPUS; i++)
		if (p->vcpus_seen & BIT(i))
			nvcpus = i + 1;
	for (u32 i = 0; i < nvcpus; i++)
		if (!(p->vcpus_seen & BIT(i)))
			snap_report(rep, "image: vCPU %u has no state record", i);
	if (nvcpus != h->vcpu_count)
		snap_report(rep, "image: %u vCPU records, header says %u", nvcpus, h->vcpu_count);
	if ((seen & BIT(1)) && p->nregions != h->region_count)
		snap_report(rep, "image: %u regions in the table, header says %u", p->nregions,
			    h->region_count);
	for (u32 i = 0; (seen & BIT(1)) && i < p->nregions; i++) {
		struct snap_region *r = &p->region[i];

		pages += p->rdesc[i].pages;
		if (!(p->pages_seen & BIT(i)))
			snap_report(rep, "image: memory region %u has no pages section", i);
		if (!r->bitmap)
			continue;
		if (r->pages != p->rdesc[i].pages || p->rdesc[i].type != SNAP_REGION_RAM ||
		    p->rdesc[i].gpa % PAGE_SIZE)
			snap_report(rep,
				    "image: memory region %u: table and pages section disagree", i);
		r->gpa = p->rdesc[i].gpa;
		r->type = p->rdesc[i].type;
	}
	if (p->child && p->parent.memory_pages != h->memory_pages)
		snap_report(rep, "image: parent record says %llu pages, header says %llu",
			    (unsigned long long)p->parent.memory_pages,
			    (unsigned long long)h->memory_pages);
	if ((seen & BIT(1)) && pages != h->memory_pages)
		snap_report(rep, "image: regions hold %llu pages, header says %llu",
			    (unsigned long long)pages, (unsigned long long)h->memory_pages);
}

/* Walks the whole image (snap_image_open), loading it on the way when ld is
 * set (snap_image_load). */
static int walk(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep,
		struct snap_loader *ld)
{
	struct snapshot_header *h = &p->hdr;
	u64 pos = SNAP_HEADER_SIZE, limit, seen = 0, end = 0;
	int ret, errors = rep->errors;
	bool walked = true;

	memset(p, 0, sizeof(*p));
	p->ld = ld;
	p->errors_before = errors;
	for (u32 i = 0; i < SNAP_MAX_VCPUS; i++)
		p->vcpu_sec[i] = -1;
	p->scratch = snap_mem_alloc(SNAP_SCRATCH);
	if (!p->scratch)
		return -ENOMEM;
	if (src->size < SNAP_HEADER_SIZE) {
		snap_report(rep, "image: %llu bytes, too short for a header",
			    (unsigned long long)src->size);
		return -EBADMSG;
	}
	ret = src->read(src, 0, p->hdr_raw, SNAP_HEADER_SIZE);
	if (ret)
		return ret;
	snap_header_decode(p->hdr_raw, h);
	if (h->magic != SNAPSHOT_MAGIC) {
		snap_report(rep,
			    "header: bad magic 0x%08x (a snapshot starts with 0x%08x, \"SNAP\")",
			    h->magic, SNAPSHOT_MAGIC);
		return -EBADMSG;
	}
	if (h->version < SNAPSHOT_VERSION_MIN || h->version > SNAPSHOT_VERSION) {
		snap_report(rep, "header: format version %u; this Amber reads versions %u to %u",
			    h->version, SNAPSHOT_VERSION_MIN, SNAPSHOT_VERSION);
		return -EBADMSG;
	}
	if (!snap_header_is_valid(h))
		snap_report(
			rep,
			"header (image bytes 0x00-0x3f): checksum mismatch (stored 0x%016llx, computed 0x%016llx)",
			(unsigned long long)h->checksum,
			(unsigned long long)snap_header_compute_checksum(h));
	if (h->pad0 || h->pad1)
		snap_report(rep, "header: padding at 0x14 or 0x24 is not zero");
	limit = src->size;
	if (h->total_size % SNAP_BLOCK || h->total_size > src->size || h->total_size < SNAP_BLOCK)
		snap_report(
			rep,
			"header: total_size 0x%llx is impossible (the image has room for 0x%llx)",
			(unsigned long long)h->total_size, (unsigned long long)src->size);
	else
		limit = h->total_size;

	while (pos < limit && !(seen & BIT(3))) {
		struct snap_sec_desc *d = &p->sec[p->nsections];
		struct snap_section s;
		u8 raw[SNAP_SECTION_HDR_SIZE];

		if (p->nsections == SNAP_MAX_SECTIONS) {
			snap_report(rep, "image: more than %d sections", SNAP_MAX_SECTIONS);
			walked = false;
			break;
		}
		if (limit - pos < SNAP_SECTION_HDR_SIZE) {
			snap_report(rep, "image: section header at 0x%llx runs past the end",
				    (unsigned long long)pos);
			walked = false;
			break;
		}
		ret = src->read(src, pos, raw, sizeof(raw));
		if (ret)
			return ret;
		if (snap_section_decode(raw, &s)) {
			snap_report(
				rep,
				"section %u header at image offset 0x%llx: CRC32C mismatch; the sections after it cannot be found",
				p->nsections, (unsigned long long)pos);
			walked = false;
			break;
		}
		if (s.reserved || (s.flags & ~SNAP_SEC_MANDATORY) || s.length % 8 ||
		    s.length > limit - pos - SNAP_SECTION_HDR_SIZE) {
			snap_report(
				rep,
				"section %u header at image offset 0x%llx: impossible length 0x%llx or flags 0x%x",
				p->nsections, (unsigned long long)pos, (unsigned long long)s.length,
				s.flags);
			walked = false;
			break;
		}
		*d = (struct snap_sec_desc){ .type = s.type,
					     .flags = s.flags,
					     .index = s.index,
					     .pos = pos,
					     .length = s.length,
					     .crc = s.payload_crc };
		ret = open_section(src, p, d, p->nsections, rep, &seen);
		if (ret && ret != -EBADMSG)
			return ret;
		p->nsections++;
		pos += SNAP_SECTION_HDR_SIZE + s.length;
		end = pos;
	}
	if (ld)
		ld->progress_total = limit;
	check_whole(p, rep, seen, limit, end, walked);
	return rep->errors > errors ? -EBADMSG : 0;
}

int snap_image_open(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep)
{
	return walk(src, p, rep, NULL);
}

int snap_image_load(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep,
		    struct snap_loader *ld)
{
	int ret;

	ld->loaded = ld->zeroed = 0;
	ret = walk(src, p, rep, ld);
	if (ret)
		return ret;
	/* check_whole() found every region's pages and every vCPU record; what
	 * was not loaded was skipped by ld->prepare, which said why. */
	for (u32 i = 0; i < p->nregions; i++) {
		if (!(ld->loaded & BIT(i))) {
			snap_report(rep, "image: memory region %u was not loaded", i);
			return -EBADMSG;
		}
	}
	return p->hdr.vcpu_count <= ld->nvcpu ? 0 : -EOPNOTSUPP;
}

void snap_image_close(struct snap_parsed *p)
{
	for (u32 i = 0; i < SNAP_MAX_REGIONS; i++)
		snap_region_release(&p->region[i]);
	if (p->scratch)
		snap_mem_free(p->scratch, SNAP_SCRATCH);
	p->scratch = NULL;
}

int snap_image_read_vcpu(struct snap_source *src, struct snap_parsed *p, u32 id,
			 struct vcpu_state *s, struct snap_report *rep)
{
	const struct snap_sec_desc *d;
	const char *why;
	u32 got;
	int ret;

	if (id >= SNAP_MAX_VCPUS || p->vcpu_sec[id] < 0)
		return -ENOENT;
	d = &p->sec[p->vcpu_sec[id]];
	ret = read_payload(src, p, d, (u32)p->vcpu_sec[id], rep);
	if (ret)
		return ret;
	ret = snap_vcpu_decode(p->scratch, d->length, &got, s, &why);
	if (ret)
		snap_report(rep, "vCPU %u state record: %s", id, why);
	return ret;
}
