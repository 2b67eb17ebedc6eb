/*
 * The page data of a snapshot image: checking its chunk CRCs (`snap verify`)
 * and loading it into guest memory, every page either read from the image or
 * zeroed, each chunk's CRC checked as it lands (restore, amber-snap core).
 * Pure code; the bitmaps and CRC tables come checked from snapshot/reader.c.
 */
#include "kernel/lib.h"
#include "snapshot/image.h"

#define MAX_PAGE_REPORTS 16
/* Pages per read: 4 MiB, the request size of `disk bench`, and still a few
 * milliseconds between two looks at Ctrl-C. */
#define LOAD_RUN 1024

u64 snap_image_page_bytes(const struct snap_parsed *p)
{
	u64 total = 0;

	for (u32 i = 0; i < p->nregions; i++)
		total += p->region[i].stored * PAGE_SIZE;
	return total;
}

static bool stored(const struct snap_region *r, u64 i)
{
	return r->bitmap[i / 64] & (1ULL << (i % 64));
}

/* Next stored page at or after i in r (a bitmap walk); returns its number. */
static u64 next_stored(const struct snap_region *r, u64 i)
{
	for (u64 w = i / 64; w < snap_bitmap_words(r->pages); w++) {
		u64 bits = r->bitmap[w] & (w == i / 64 ? ~0ULL << (i % 64) : ~0ULL);

		if (bits)
			return w * 64 + (u64)__builtin_ctzll(bits);
	}
	return r->pages;
}

/* Folds `count` stored pages into the running chunk CRC: numbers n.., at guest
 * pages pg.., contiguous in `data`, all in one chunk. Checks the chunk when it
 * is complete; returns false on a mismatch (reported). One call per chunk
 * where the pages allow it: a CRC call per page costs a tenth of the CRC. */
struct chunk_state {
	u32 crc;
	u64 first_pg;
};
static bool chunk_add(const struct snap_region *r, u32 ri, struct chunk_state *c, u64 n, u64 pg,
		      const void *data, u64 count, struct snap_report *rep, int *reports)
{
	u32 ppc = r->pages_per_crc;
	u64 last = n + count - 1, last_pg = pg + count - 1;

	if (n % ppc == 0) {
		c->crc = 0;
		c->first_pg = pg;
	}
	c->crc = crc32c(c->crc, data, count * PAGE_SIZE);
	if (last % ppc != ppc - 1 && last != r->stored - 1)
		return true;
	if (c->crc == r->crc[last / ppc])
		return true;
	if ((*reports)++ < MAX_PAGE_REPORTS)
		snap_report(
			rep,
			"memory region %u, stored pages %llu-%llu between guest-physical 0x%llx and 0x%llx (image bytes 0x%llx-0x%llx): CRC32C mismatch",
			ri, (unsigned long long)(last - last % ppc), (unsigned long long)last,
			(unsigned long long)(r->gpa + c->first_pg * PAGE_SIZE),
			(unsigned long long)(r->gpa + (last_pg + 1) * PAGE_SIZE - 1),
			(unsigned long long)(r->data_pos + (last - last % ppc) * PAGE_SIZE),
			(unsigned long long)(r->data_pos + (last + 1) * PAGE_SIZE - 1));
	return false;
}

int snap_image_check_pages(struct snap_source *src, struct snap_parsed *p, struct snap_report *rep,
			   snap_progress_fn progress, void *pctx)
{
	u64 total = snap_image_page_bytes(p), done = 0;
	int reports = 0, ret;

	for (u32 ri = 0; ri < p->nregions; ri++) {
		const struct snap_region *r = &p->region[ri];
		struct chunk_state c = { 0 };
		u64 pg = 0;

		if (!r->bitmap)
			continue;
		for (u64 n = 0; n < r->stored;) {
			u64 batch = MIN(r->stored - n, SNAP_SCRATCH / PAGE_SIZE);

			ret = src->read(src, r->data_pos + n * PAGE_SIZE, p->scratch,
					batch * PAGE_SIZE);
			if (ret)
				return ret;
			for (u64 k = 0; k < batch; k++, n++, pg++) {
				pg = next_stored(r, pg);
				chunk_add(r, ri, &c, n, pg, p->scratch + k * PAGE_SIZE, 1, rep,
					  &reports);
			}
			done += batch * PAGE_SIZE;
			ret = progress ? progress(pctx, done, total) : 0;
			if (ret)
				return ret;
		}
	}
	if (reports > MAX_PAGE_REPORTS)
		snap_report(rep, "... %d more damaged page ranges", reports - MAX_PAGE_REPORTS);
	return reports ? -EBADMSG : 0;
}

/*
 * Region ri into guest memory, front to back: a run of stored pages that is
 * contiguous in host memory is read straight into it in one request, and its
 * chunk CRCs are checked from there; every page the bitmap leaves out is
 * zeroed. Stops at the first damaged chunk (-EBADMSG, reported) or failed
 * read; the memory is then partly written and the caller must discard it.
 * Progress counts ld->progress_base plus the page bytes read here.
 */
int snap_region_load(struct snap_source *src, struct snap_parsed *p, u32 ri, struct snap_loader *ld,
		     struct snap_report *rep)
{
	const struct snap_region *r = &p->region[ri];
	struct chunk_state c = { 0 };
	int reports = 0, ret;
	u64 n = 0;

	if (ri >= p->nregions || !r->bitmap)
		return -EBADMSG;
	for (u64 i = 0; i < r->pages;) {
		u8 *dst = ld->page(ld->ctx, r->gpa + i * PAGE_SIZE);
		u64 run = 1;

		if (!dst)
			return -EFAULT;
		if (!stored(r, i)) {
			/* A run of pages the image leaves out, contiguous in host
			 * memory (a 2 MiB chunk of the VM's RAM at most), zeroed
			 * in one call; an incremental image leaves the parent's
			 * pages in place. */
			while (i + run < r->pages && !stored(r, i + run) &&
			       ld->page(ld->ctx, r->gpa + (i + run) * PAGE_SIZE) ==
				       dst + run * PAGE_SIZE)
				run++;
			if (!p->child) {
				memset(dst, 0, run * PAGE_SIZE);
				ld->zeroed += run;
			}
			i += run;
			continue;
		}
		while (i + run < r->pages && run < LOAD_RUN && stored(r, i + run) &&
		       ld->page(ld->ctx, r->gpa + (i + run) * PAGE_SIZE) == dst + run * PAGE_SIZE)
			run++;
		/* The bitmap's count was checked against stored_pages, and the
		 * section's length against it: n + run never passes the data. */
		ret = src->read(src, r->data_pos + n * PAGE_SIZE, dst, run * PAGE_SIZE);
		if (ret)
			return ret;
		/* The run's pages are consecutive both as stored pages and in the
		 * guest: CRC them a chunk's part at a time. */
		for (u64 k = 0; k < run;) {
			u64 m = MIN(run - k, r->pages_per_crc - n % r->pages_per_crc);

			if (!chunk_add(r, ri, &c, n, i + k, dst + k * PAGE_SIZE, m, rep, &reports))
				return -EBADMSG;
			k += m;
			n += m;
		}
		i += run;
		ret = ld->progress ? ld->progress(ld->pctx, ld->progress_base + n * PAGE_SIZE,
						  ld->progress_total) :
				     0;
		if (ret)
			return ret;
	}
	return n == r->stored ? 0 : -EBADMSG;
}

int snap_image_load_pages(struct snap_source *src, struct snap_parsed *p, snap_page_fn page,
			  void *ctx, struct snap_report *rep, snap_progress_fn progress, void *pctx)
{
	struct snap_loader ld = { .page = page,
				  .ctx = ctx,
				  .progress = progress,
				  .pctx = pctx,
				  .progress_total = snap_image_page_bytes(p) };
	int ret;

	for (u32 ri = 0; ri < p->nregions; ri++) {
		ret = snap_region_load(src, p, ri, &ld, rep);
		if (ret)
			return ret;
		ld.progress_base += p->region[ri].stored * PAGE_SIZE;
	}
	return 0;
}

int snap_image_compare(struct snap_source *src, struct snap_parsed *p, u64 npages, u64 *decided,
		       u64 *changed, snap_page_fn page, void *ctx, struct snap_report *rep,
		       snap_progress_fn progress, void *pctx)
{
	u64 total = snap_image_page_bytes(p), done = 0;
	int reports = 0, ret;
	bool bad = false;

	for (u32 ri = 0; ri < p->nregions; ri++) {
		const struct snap_region *r = &p->region[ri];
		struct chunk_state c = { 0 };
		u64 pg = 0;

		if (!r->bitmap || r->gpa % PAGE_SIZE)
			return -EBADMSG;
		for (u64 n = 0; n < r->stored;) {
			u64 batch = MIN(r->stored - n, SNAP_SCRATCH / PAGE_SIZE);

			ret = src->read(src, r->data_pos + n * PAGE_SIZE, p->scratch,
					batch * PAGE_SIZE);
			if (ret)
				return ret;
			for (u64 k = 0; k < batch; k++, n++, pg++) {
				const u8 *data = p->scratch + k * PAGE_SIZE, *mine;
				u64 at;

				pg = next_stored(r, pg);
				at = r->gpa / PAGE_SIZE + pg;
				if (!chunk_add(r, ri, &c, n, pg, data, 1, rep, &reports))
					bad = true;
				if (at >= npages)
					return -EFAULT;
				if (decided[at / 64] & (1ULL << (at % 64)))
					continue; /* a newer image of the chain has it */
				decided[at / 64] |= 1ULL << (at % 64);
				mine = page(ctx, at * PAGE_SIZE);
				if (!mine)
					return -EFAULT;
				if (memcmp(mine, data, PAGE_SIZE))
					changed[at / 64] |= 1ULL << (at % 64);
			}
			done += batch * PAGE_SIZE;
			ret = progress ? progress(pctx, done, total) : 0;
			if (ret)
				return ret;
		}
	}
	return bad ? -EBADMSG : 0;
}
