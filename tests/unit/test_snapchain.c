/*
 * Host unit tests of incremental snapshots: child images written through the
 * store (PARENT and DELTA sections), their links and chains (snapshot/chain.c),
 * loading a chain into memory exactly, the comparison that finds changed
 * pages, a parent that is missing or replaced, damage to the new records, and
 * the size of a child of a 256 MiB guest after 10 pages changed. Host only.
 */
#include "tests/unit/check.h"
#include "kernel/lib.h"
#include "snapshot/chain.h"
#include "snapshot/image.h"

#define PAGES 64

struct memdisk {
	struct blkdev dev;
	u8 *data;
};

static int md_read(struct blkdev *dev, u64 lba, u64 count, void *buf)
{
	memcpy(buf, ((struct memdisk *)dev)->data + lba * 512, count * 512);
	return 0;
}
static int md_write(struct blkdev *dev, u64 lba, u64 count, const void *buf)
{
	memcpy(((struct memdisk *)dev)->data + lba * 512, buf, count * 512);
	return 0;
}
static int md_flush(struct blkdev *dev) { return 0; }
static const struct blkdev_ops md_ops = { .read = md_read, .write = md_write, .flush = md_flush };

static struct memdisk md;
static struct snap_store st;
static struct snap_links links;
static struct snap_image img;
static struct snap_parsed parsed;
static struct vcpu_state vs;
static u8 guest[PAGES * PAGE_SIZE] __attribute__((aligned(4096)));
static u8 loaded[PAGES * PAGE_SIZE] __attribute__((aligned(4096)));

static void *guest_page(void *ctx, u64 gpa) { return gpa < sizeof(guest) ? guest + gpa : NULL; }
static void *loaded_page(void *ctx, u64 gpa) { return gpa < sizeof(loaded) ? loaded + gpa : NULL; }

static int store_sink(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	return snap_store_write(&st, *(u64 *)s->ctx + off / SNAP_BLOCK, len / SNAP_BLOCK, buf);
}

/* Fills img for the fake guest: one vCPU, one region of `pages` pages. */
static void describe(const char *name, u64 pages, const struct snap_parent *parent)
{
	memset(&img, 0, sizeof(img));
	memset(&vs, 0, sizeof(vs));
	vs.rip = 0x100000;
	img.hdr.vm_id = 1;
	img.hdr.timestamp = 1000 + st.next_seq;
	img.info.image_id = 0xA000 + st.next_seq;
	strcpy(img.info.name, name);
	img.nvcpus = 1;
	img.vcpu[0] = &vs;
	img.dev.mem_size = pages * PAGE_SIZE;
	img.parent = parent;
	img.nregions = 1;
	CHECK_EQ(snap_region_init(&img.region[0], 0, pages, SNAP_PAGES_PER_CRC), 0);
}

/* Lays out img, writes it into free space and commits it as `name`. */
static int commit_image(const char *name, snap_page_fn page)
{
	struct snap_entry e = { 0 };
	u64 start, total = snap_image_layout(&img);
	u8 raw[SNAP_HEADER_SIZE];
	struct snap_sink sink = { .write = store_sink, .ctx = &start };
	int ret;

	sink.stage = malloc(4 * SNAP_BLOCK);
	sink.stage_size = 4 * SNAP_BLOCK;
	ret = total ? snap_store_alloc(&st, total, &start) : -EINVAL;
	if (!ret)
		ret = snap_image_write(&img, &sink, page, NULL);
	free(sink.stage);
	snap_region_release(&img.region[0]);
	if (ret)
		return ret;
	strcpy(e.name, name);
	e.start_block = start;
	e.size = total;
	e.memory_pages = img.hdr.memory_pages;
	snap_header_encode(&img.hdr, raw);
	e.header_crc = crc32c(0, raw, sizeof(raw));
	e.vcpus = 1;
	return snap_store_add(&st, &e);
}

static void parent_of(const char *name, struct snap_parent *pr)
{
	int i = snap_store_find(&st, name);

	CHECK(i >= 0);
	CHECK_EQ(snap_links_read(&st, &links), 0);
	memset(pr, 0, sizeof(*pr));
	pr->version = SNAP_PARENT_VERSION;
	pr->depth = links.link[i].child ? links.link[i].parent.depth + 1 : 1;
	pr->image_id = links.link[i].image_id;
	pr->header_crc = links.link[i].header_crc;
	pr->memory_pages = links.link[i].memory_pages;
	pr->source = SNAP_DELTA_COMPARE;
	strcpy(pr->name, name);
}

static int save_full(const char *name)
{
	describe(name, PAGES, NULL);
	CHECK_EQ(snap_region_scan(&img.region[0], guest_page, NULL, NULL, NULL), 0);
	return commit_image(name, guest_page);
}

static int save_child(const char *name, const char *parent, const u64 *changed)
{
	static struct snap_parent pr;

	parent_of(parent, &pr);
	describe(name, PAGES, &pr);
	CHECK_EQ(snap_region_scan_changed(&img.region[0], changed, guest_page, NULL, NULL, NULL),
		 0);
	return commit_image(name, guest_page);
}

struct entry_src {
	u64 start;
};
static int entry_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	struct entry_src *e = src->ctx;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	memcpy(buf, md.data + e->start * SNAP_BLOCK + off, len);
	return 0;
}
static void source_of(int i, struct snap_source *src, struct entry_src *es)
{
	es->start = st.entry[i].start_block;
	*src = (struct snap_source){ entry_read, snap_entry_blocks(&st.entry[i]) * SNAP_BLOCK, es };
}

static int take(struct snap_loader *ld, struct snap_parsed *p, u32 ri, struct snap_report *rep)
{
	return 0;
}

/* Loads the chain of `name` into `loaded` (first filled with 0xEE), the full
 * image first; returns the first failure. */
static int load_chain(const char *name, u32 *n_out)
{
	static struct vcpu_state v[1];
	int chain[SNAP_MAX_CHAIN], ret;
	char why[160];
	u32 n;

	memset(loaded, 0xEE, sizeof(loaded));
	CHECK_EQ(snap_links_read(&st, &links), 0);
	ret = snap_chain(&st, &links, (u32)snap_store_find(&st, name), chain, &n, why, sizeof(why));
	if (ret)
		return ret;
	*n_out = n;
	for (u32 k = n; k-- > 0;) {
		struct snap_loader ld = {
			.prepare = take, .page = loaded_page, .vcpu = v, .nvcpu = 1
		};
		struct snap_report rep = { 0 };
		struct snap_source src;
		struct entry_src es;

		source_of(chain[k], &src, &es);
		ret = snap_image_load(&src, &parsed, &rep, &ld);
		CHECK_EQ(parsed.child, k != n - 1);
		snap_image_close(&parsed);
		if (ret)
			return ret;
	}
	return 0;
}

static void set_bit(u64 *bm, u64 p) { bm[p / 64] |= 1ULL << (p % 64); }

static void test_chain_save_and_load(void)
{
	u64 changed[1] = { 0 };
	u32 order[SNAP_CAT_MAX], n;
	u8 depth[SNAP_CAT_MAX];
	int chain[SNAP_MAX_CHAIN], kids[4];
	char why[160];

	for (u32 pg = 1; pg < PAGES; pg += 2)
		memset(guest + pg * PAGE_SIZE, (int)pg, PAGE_SIZE);
	CHECK_EQ(save_full("base"), 0);

	/* Child 1: three pages rewritten, one zeroed (stored as zeros). */
	memset(guest + 3 * PAGE_SIZE, 0x33, 100);
	memset(guest + 10 * PAGE_SIZE, 0x10, PAGE_SIZE);
	memset(guest + 11 * PAGE_SIZE, 0x11, PAGE_SIZE);
	memset(guest + 5 * PAGE_SIZE, 0, PAGE_SIZE);
	set_bit(changed, 3);
	set_bit(changed, 5);
	set_bit(changed, 10);
	set_bit(changed, 11);
	CHECK_EQ(save_child("c1", "base", changed), 0);
	CHECK_EQ(img.region[0].stored, 4);
	CHECK_EQ(img.region[0].runs, 3);

	changed[0] = 0;
	memset(guest + 20 * PAGE_SIZE, 0x20, PAGE_SIZE);
	set_bit(changed, 20);
	CHECK_EQ(save_child("c2", "c1", changed), 0);
	CHECK_EQ(save_child("c1b", "base", changed), 0); /* a sibling of c1 */

	CHECK_EQ(load_chain("c2", &n), 0);
	CHECK_EQ(n, 3);
	CHECK(memcmp(loaded, guest, sizeof(guest)) == 0);

	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(links.parent[snap_store_find(&st, "base")], SNAP_NO_PARENT);
	CHECK_EQ(links.parent[snap_store_find(&st, "c2")], snap_store_find(&st, "c1"));
	CHECK_EQ(snap_children(&links, (u32)snap_store_find(&st, "base"), kids, 4), 2);
	CHECK_EQ(snap_children(&links, (u32)snap_store_find(&st, "c2"), kids, 4), 0);
	CHECK_EQ(snap_chain(&st, &links, (u32)snap_store_find(&st, "c2"), chain, &n, why,
			    sizeof(why)),
		 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(chain[2], snap_store_find(&st, "base"));
	/* The tree: base, c1, c2 under c1, then c1b. */
	CHECK_EQ(snap_links_tree(&links, order, depth), 4);
	CHECK_STR(st.entry[order[0]].name, "base");
	CHECK_STR(st.entry[order[1]].name, "c1");
	CHECK_STR(st.entry[order[2]].name, "c2");
	CHECK_EQ(depth[2], 2);
	CHECK_STR(st.entry[order[3]].name, "c1b");
	CHECK_EQ(depth[3], 1);
}

/* The comparison finds exactly the pages that differ from the chain. */
static void test_compare(void)
{
	u64 decided[1] = { 0 }, changed[1] = { 0 };
	int chain[SNAP_MAX_CHAIN];
	char why[160];
	u32 n;

	memset(guest + 30 * PAGE_SIZE + 7, 0x77, 1); /* was zero: the root lacks it */
	memset(guest + 11 * PAGE_SIZE, 0x12, 1);     /* c1 holds it */
	memset(guest + 1 * PAGE_SIZE, 0, PAGE_SIZE); /* base holds it */
	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(snap_chain(&st, &links, (u32)snap_store_find(&st, "c2"), chain, &n, why,
			    sizeof(why)),
		 0);
	for (u32 k = 0; k < n; k++) {
		struct snap_report rep = { 0 };
		struct snap_source src;
		struct entry_src es;

		source_of(chain[k], &src, &es);
		CHECK_EQ(snap_image_open(&src, &parsed, &rep), 0);
		CHECK_EQ(snap_image_compare(&src, &parsed, PAGES, decided, changed, guest_page,
					    NULL, &rep, NULL, NULL),
			 0);
		snap_image_close(&parsed);
	}
	for (u32 pg = 0; pg < PAGES; pg++)
		if (!(decided[0] & (1ULL << pg)) && !snap_page_is_zero(guest + pg * PAGE_SIZE))
			set_bit(changed, pg);
	CHECK_EQ(changed[0], (1ULL << 30) | (1ULL << 11) | (1ULL << 1));
	CHECK_EQ(save_child("c3", "c2", changed), 0);
	CHECK_EQ(load_chain("c3", &n), 0);
	CHECK_EQ(n, 4);
	CHECK(memcmp(loaded, guest, sizeof(guest)) == 0);
}

/* A parent deleted, then another image saved under its name: the child's
 * chain is refused either way, with the reason. */
static void test_missing_and_wrong_parent(void)
{
	int chain[SNAP_MAX_CHAIN], c1b;
	char why[160];
	u32 n;

	CHECK_EQ(snap_store_remove(&st, snap_store_find(&st, "c1")), 0);
	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(snap_chain(&st, &links, (u32)snap_store_find(&st, "c2"), chain, &n, why,
			    sizeof(why)),
		 -ENOENT);
	CHECK(strstr(why, "needs its parent 'c1', which is not on this disk") != NULL);
	CHECK_EQ(load_chain("c3", &n), -ENOENT);
	/* Same name, another image. */
	CHECK_EQ(save_full("c1"), 0);
	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(snap_chain(&st, &links, (u32)snap_store_find(&st, "c2"), chain, &n, why,
			    sizeof(why)),
		 -ENOENT);
	CHECK(strstr(why, "wrong parent") != NULL);
	/* The sibling's chain is untouched. */
	c1b = snap_store_find(&st, "c1b");
	CHECK_EQ(snap_chain(&st, &links, (u32)c1b, chain, &n, why, sizeof(why)), 0);
	CHECK_EQ(n, 2);
}

/* Recomputes a section's CRCs after a crafted change (payload CRC over
 * crc_len bytes). */
static void reseal(u8 *sec, u64 crc_len)
{
	snap_put32(sec + 0x18, crc32c(0, sec + SNAP_SECTION_HDR_SIZE, crc_len));
	snap_put32(sec + 0x1C, crc32c(0, sec, 0x1C));
}

static int open_entry_image(const char *name)
{
	struct snap_report rep = { 0 };
	struct snap_source src;
	struct entry_src es;
	int ret;

	source_of(snap_store_find(&st, name), &src, &es);
	ret = snap_image_open(&src, &parsed, &rep);
	snap_image_close(&parsed);
	return ret;
}

/* Damage to PARENT and DELTA: a flipped bit, and crafted run lists whose
 * CRCs match (a hostile disk), each refused. */
static void test_damage(void)
{
	int i = snap_store_find(&st, "c1b");
	u8 *im = md.data + st.entry[i].start_block * SNAP_BLOCK, saved[SNAP_BLOCK * 2];
	u8 *parent = im + 0xA0, *delta = NULL;
	u64 pos = SNAP_HEADER_SIZE;

	CHECK_EQ(open_entry_image("c1b"), 0);
	CHECK_EQ(snap_get32(parent), SNAP_SEC_PARENT);
	memcpy(saved, im, sizeof(saved));
	im[0xA0 + 32 + 0x09] ^= 4; /* the parent's id */
	CHECK_EQ(open_entry_image("c1b"), -EBADMSG);
	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(links.parent[i], -EBADMSG);
	memcpy(im, saved, sizeof(saved));

	/* A PARENT record with its CRCs right but an impossible depth. */
	snap_put32(parent + 32 + 4, 0);
	reseal(parent, SNAP_PARENT_SIZE);
	CHECK_EQ(open_entry_image("c1b"), -EBADMSG);
	memcpy(im, saved, sizeof(saved));

	while (pos < st.entry[i].size && !delta) {
		if (snap_get32(im + pos) == SNAP_SEC_DELTA)
			delta = im + pos;
		pos += SNAP_SECTION_HDR_SIZE + snap_get64(im + pos + 8);
	}
	CHECK(delta != NULL);
	if (!delta)
		return;
	{
		u8 *head = delta + SNAP_SECTION_HDR_SIZE, *run = head + SNAP_PAGES_HEAD;
		u64 index = snap_get64(head + 0x18);
		static const u32 bad[][2] = { { 63, 2 }, { 0, 0 }, { 0xFFFFFFFF, 1 } };

		CHECK_EQ(snap_get32(head + 4), 1); /* one run: page 20 */
		CHECK_EQ(snap_get32(run), 20);
		for (u32 k = 0; k < ARRAY_SIZE(bad); k++) {
			snap_put32(run, bad[k][0]);
			snap_put32(run + 4, bad[k][1]);
			reseal(delta, index);
			CHECK_EQ(open_entry_image("c1b"), -EBADMSG);
			memcpy(im, saved, sizeof(saved));
		}
		/* More runs than stored pages. */
		snap_put32(head + 4, 2);
		reseal(delta, index);
		CHECK_EQ(open_entry_image("c1b"), -EBADMSG);
		memcpy(im, saved, sizeof(saved));
	}
	CHECK_EQ(open_entry_image("c1b"), 0);
}

/* A child of a 256 MiB guest after 10 pages changed fits in 64 KiB, with a
 * full XSAVE area and device records of a real VM's size. */
static u8 one_page[PAGE_SIZE] __attribute__((aligned(4096)));
static void *any_page(void *ctx, u64 gpa) { return one_page; }
static void test_child_size(void)
{
	static struct snap_parent pr = { .version = 1,
					 .depth = 1,
					 .image_id = 5,
					 .header_crc = 6,
					 .source = SNAP_DELTA_LOG,
					 .name = "big" };
	u64 pages = (256ULL << 20) / PAGE_SIZE, *changed = calloc(pages / 64, 8), total;

	pr.memory_pages = pages;
	memset(&img, 0, sizeof(img));
	vs.xsave_size = 4096;
	img.nvcpus = 1;
	img.vcpu[0] = &vs;
	img.parent = &pr;
	img.note = "written by Amber 0.0 (0123456789ab)";
	img.ndevrecs = 11;
	for (u32 d = 0; d < img.ndevrecs; d++) {
		img.devrec[d].id = d + 1;
		img.devrec[d].version = 2;
		img.devrec[d].len = 0xE8;
	}
	img.nregions = 1;
	CHECK_EQ(snap_region_init(&img.region[0], 0, pages, SNAP_PAGES_PER_CRC), 0);
	for (u32 k = 0; k < 10; k++)
		set_bit(changed, 1000 + k * 5000);
	CHECK_EQ(snap_region_scan_changed(&img.region[0], changed, any_page, NULL, NULL, NULL), 0);
	total = snap_image_layout(&img);
	printf("child of a 256 MiB guest, 10 pages changed: %llu bytes\n",
	       (unsigned long long)total);
	CHECK(total > 10 * PAGE_SIZE && total <= 64 * 1024);
	snap_region_release(&img.region[0]);
	free(changed);
	vs.xsave_size = 0;
}

/* The byte layout of PARENT and the DELTA head as docs/snapshot-format.md
 * 1.11 and 1.12 give it, and IMAGE's image_id at 0x08. */
static void test_record_layout(void)
{
	struct snap_parent pr = { .version = 1,
				  .depth = 3,
				  .image_id = 0x1122334455667788ULL,
				  .header_crc = 0xCAFEF00D,
				  .source = 2,
				  .memory_pages = 0x2000,
				  .name = "base" },
			   back;
	struct snap_delta_head h = { 16, 5, 8192, 9, 0x1000 }, hb;
	struct snap_image_info info = { .image_id = 0xABCDEF };
	u8 raw[SNAP_PARENT_SIZE], head[SNAP_PAGES_HEAD], im[SNAP_IMAGE_SIZE];

	snap_parent_encode(&pr, raw);
	CHECK_EQ(snap_get32(raw + 0x00), 1);
	CHECK_EQ(snap_get32(raw + 0x04), 3);
	CHECK_EQ(snap_get64(raw + 0x08), 0x1122334455667788ULL);
	CHECK_EQ(snap_get32(raw + 0x10), 0xCAFEF00D);
	CHECK_EQ(snap_get32(raw + 0x14), 2);
	CHECK_EQ(snap_get64(raw + 0x18), 0x2000);
	CHECK(memcmp(raw + 0x20, "base\0", 5) == 0 && raw[0x3F] == 0);
	snap_parent_decode(raw, &back);
	CHECK(memcmp(&back, &pr, sizeof(pr)) == 0);
	CHECK(snap_parent_check(&pr) == NULL);
	back.depth = SNAP_MAX_CHAIN;
	CHECK(snap_parent_check(&back) != NULL);
	back = pr;
	back.source = 3;
	CHECK(snap_parent_check(&back) != NULL);
	back = pr;
	strcpy(back.name, "no/slash");
	CHECK(snap_parent_check(&back) != NULL);
	snap_delta_head_encode(&h, head);
	CHECK_EQ(snap_get32(head + 0x04), 5);
	CHECK_EQ(snap_get64(head + 0x08), 8192);
	CHECK_EQ(snap_get64(head + 0x18), 0x1000);
	snap_delta_head_decode(head, &hb);
	CHECK(memcmp(&hb, &h, sizeof(h)) == 0);
	snap_image_info_encode(&info, im);
	CHECK_EQ(snap_get64(im + 0x08), 0xABCDEF);
}

/* An image from before incremental snapshots (IMAGE's id 0) is a parent
 * like any other: its header CRC names it. */
static void test_old_image_as_parent(void)
{
	u64 changed[1] = { 1ULL << 40 };
	u32 n;

	describe("old", PAGES, NULL);
	img.info.image_id = 0;
	CHECK_EQ(snap_region_scan(&img.region[0], guest_page, NULL, NULL, NULL), 0);
	CHECK_EQ(commit_image("old", guest_page), 0);
	memset(guest + 40 * PAGE_SIZE, 0x40, PAGE_SIZE);
	CHECK_EQ(save_child("new", "old", changed), 0);
	CHECK_EQ(load_chain("new", &n), 0);
	CHECK_EQ(n, 2);
	CHECK(memcmp(loaded, guest, sizeof(guest)) == 0);
}

/* Two children that name each other, CRCs and ids right: the depths cannot
 * both hold, so neither chain is followed, and the tree still lists both. */
static void test_cycle(void)
{
	u64 changed[1] = { 1 };
	struct snap_parent pa, pb;
	u32 order[SNAP_CAT_MAX], n;
	u8 depth[SNAP_CAT_MAX];
	int chain[SNAP_MAX_CHAIN], a, b;
	char why[160];

	CHECK_EQ(save_child("ya", "c1b", changed), 0);
	CHECK_EQ(save_child("yb", "c1b", changed), 0);
	parent_of("ya", &pa);
	parent_of("yb", &pb);
	a = snap_store_find(&st, "ya");
	b = snap_store_find(&st, "yb");
	pb.depth = 4; /* ya's parent yb: depth 4; yb's parent ya: depth 3 */
	pa.depth = 3;
	snap_parent_encode(&pb, md.data + st.entry[a].start_block * SNAP_BLOCK + 0xC0);
	reseal(md.data + st.entry[a].start_block * SNAP_BLOCK + 0xA0, SNAP_PARENT_SIZE);
	snap_parent_encode(&pa, md.data + st.entry[b].start_block * SNAP_BLOCK + 0xC0);
	reseal(md.data + st.entry[b].start_block * SNAP_BLOCK + 0xA0, SNAP_PARENT_SIZE);
	CHECK_EQ(snap_links_read(&st, &links), 0);
	CHECK_EQ(snap_chain(&st, &links, (u32)a, chain, &n, why, sizeof(why)), -ERANGE);
	CHECK(strstr(why, "does not fit its parent") != NULL);
	CHECK_EQ(snap_chain(&st, &links, (u32)b, chain, &n, why, sizeof(why)), -ERANGE);
	CHECK_EQ(snap_links_tree(&links, order, depth), st.count);
	CHECK_STR(snap_link_mark(&links, (u32)b), " (misfit)"); /* ya -> yb holds */
}

int main(void)
{
	md.data = calloc(1, 8 << 20);
	strcpy(md.dev.name, "mem0");
	md.dev.kind = "memory";
	md.dev.sector_size = 512;
	md.dev.sectors = (8 << 20) / 512;
	md.dev.can_flush = true;
	md.dev.max_sectors = 1 << 16;
	md.dev.ops = &md_ops;
	CHECK_EQ(snap_store_format(&st, &md.dev, 0x77), 0);
	test_chain_save_and_load();
	test_compare();
	test_missing_and_wrong_parent();
	test_damage();
	test_old_image_as_parent();
	test_cycle();
	test_record_layout();
	test_child_size();
	free(md.data);
	return test_done("snapchain");
}
