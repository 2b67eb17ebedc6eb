/*
 * Host unit tests of the one-pass restore reader (snap_image_load in
 * snapshot/reader.c and pages.c): a source that counts every image byte it
 * hands out proves each is read exactly once; a damaged page late in the
 * image, a damaged vCPU record, a refusing prepare, a failing read and a
 * cancel all end without a loaded image. Host only (ASan/UBSan).
 */
#include "tests/unit/check.h"
#include "kernel/lib.h"
#include "snapshot/image.h"

#define PAGES 300 /* guest RAM of the fake guest */

static u8 *guest, *loaded;
static u8 *img;
static u64 img_size;
static u8 *reads;   /* how often each image byte was handed out */
static u64 fail_at; /* a read touching this image offset fails (~0: none) */

/* Guest pages from split_at on live in `upper`, apart from the rest (as a
 * VM's 2 MiB chunks lie apart in host memory); 0: one buffer. */
static u64 split_at;
static u8 *upper;

static void *page_of(void *ctx, u64 gpa)
{
	if (gpa / PAGE_SIZE >= PAGES)
		return NULL;
	if (split_at && gpa / PAGE_SIZE >= split_at && ctx == loaded)
		return upper + gpa - split_at * PAGE_SIZE;
	return (u8 *)ctx + gpa;
}

static int sink_write(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	if (off + len > img_size)
		return -EINVAL;
	memcpy(img + off, buf, len);
	return 0;
}

static int counting_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	if (off > src->size || len > src->size - off)
		return -ERANGE;
	if (fail_at >= off && fail_at < off + len)
		return -EIO;
	memcpy(buf, img + off, len);
	for (u64 i = 0; i < len; i++)
		reads[off + i]++;
	return 0;
}

static char report_text[4096];
static void collect(struct snap_report *r, const char *line)
{
	strncat(report_text, line, sizeof(report_text) - strlen(report_text) - 2);
	strcat(report_text, "\n");
}

static struct vcpu_state vs, vs_back[2];

/* One region at 0 of PAGES pages, every fifth page zero and pages
 * ZERO_FROM..ZERO_TO-1 too, one vCPU. */
#define ZERO_FROM 200
#define ZERO_TO 240
#define ZEROS (PAGES / 5 + (ZERO_TO - ZERO_FROM) - (ZERO_TO - ZERO_FROM) / 5)
static void build_image(void)
{
	static struct snap_image im;
	struct snap_sink sink = { .write = sink_write };

	guest = aligned_alloc(4096, PAGES * PAGE_SIZE);
	loaded = aligned_alloc(4096, PAGES * PAGE_SIZE);
	for (u64 pg = 0; pg < PAGES; pg++)
		for (u64 i = 0; i < PAGE_SIZE; i += 8)
			*(u64 *)(guest + pg * PAGE_SIZE + i) =
				pg % 5 == 2 || (pg >= ZERO_FROM && pg < ZERO_TO) ?
					0 :
					(pg + 1) * 0x9E3779B97F4A7C15ULL ^ i;
	memset(&vs, 0, sizeof(vs));
	vs.rip = 0x123456;
	vs.cr0 = 0x80000011;
	vs.xsave_size = 576;
	memset(vs.xsave, 0x3C, 576);
	memset(&im, 0, sizeof(im));
	im.hdr.vm_id = 1;
	strcpy(im.info.name, "load");
	strcpy(im.info.backend, "AMD-V");
	im.nvcpus = 1;
	im.vcpu[0] = &vs;
	im.dev.vm_state = SNAP_VM_PAUSED;
	im.dev.mem_size = PAGES * PAGE_SIZE;
	strcpy(im.dev.image, "memtest");
	im.note = "one pass";
	im.nregions = 1;
	CHECK_EQ(snap_region_init(&im.region[0], 0, PAGES, SNAP_PAGES_PER_CRC), 0);
	CHECK_EQ(snap_region_scan(&im.region[0], page_of, guest, NULL, NULL), 0);
	img_size = snap_image_layout(&im);
	CHECK(img_size > 0);
	img = malloc(img_size);
	reads = malloc(img_size);
	sink.stage = malloc(4 * SNAP_BLOCK);
	sink.stage_size = 4 * SNAP_BLOCK;
	CHECK_EQ(snap_image_write(&im, &sink, page_of, guest), 0);
	free(sink.stage);
	snap_region_release(&im.region[0]);
}

/* What the test's prepare does: 0 loads, > 0 skips, < 0 ends the walk. */
static int prepare_ret, prepare_calls;
static int prepare(struct snap_loader *ld, struct snap_parsed *p, u32 ri, struct snap_report *rep)
{
	prepare_calls++;
	if (prepare_ret > 0)
		snap_report(rep, "catalog entry and image header disagree (test)");
	ld->ctx = loaded;
	return prepare_ret;
}

static int cancel_after; /* progress calls before -ECANCELED (0: never) */
static int progress(void *ctx, u64 done, u64 total)
{
	CHECK(done <= total);
	return cancel_after && --cancel_after == 0 ? -ECANCELED : 0;
}

/* One snap_image_load() of img; fills *ld and returns what it returned. */
static int load(struct snap_loader *ld)
{
	static struct snap_parsed p;
	struct snap_source src = { .read = counting_read, .size = img_size };
	struct snap_report rep = { .emit = collect };
	int ret;

	memset(reads, 0, img_size);
	memset(loaded, 0xAA, PAGES * PAGE_SIZE); /* what pmm left: never trusted */
	memset(vs_back, 0, sizeof(vs_back));
	report_text[0] = '\0';
	prepare_calls = 0;
	*ld = (struct snap_loader){ .prepare = prepare,
				    .page = page_of,
				    .progress = progress,
				    .vcpu = vs_back,
				    .nvcpu = 2 };
	ret = snap_image_load(&src, &p, &rep, ld);
	snap_image_close(&p);
	if (getenv("SNAP_VERBOSE"))
		printf("load: %d\n%s", ret, report_text);
	return ret;
}

static u64 read_at_most_once(void)
{
	u64 total = 0;

	for (u64 i = 0; i < img_size; i++) {
		CHECK(reads[i] <= 1);
		if (reads[i] > 1) {
			fprintf(stderr, "image byte 0x%llx read %u times\n", (unsigned long long)i,
				reads[i]);
			break;
		}
		total += reads[i];
	}
	return total;
}

static void test_once(void)
{
	struct snap_loader ld;

	fail_at = ~0ULL;
	CHECK_EQ(load(&ld), 0);
	CHECK_EQ(prepare_calls, 1);
	CHECK_EQ(ld.loaded, 1);
	/* Every byte of the image was read, none twice: 1.0 bytes per byte. */
	CHECK_EQ(read_at_most_once(), img_size);
	CHECK(memcmp(loaded, guest, PAGES * PAGE_SIZE) == 0);
	CHECK_EQ(ld.zeroed, ZEROS);
	CHECK(memcmp(&vs_back[0], &vs, sizeof(vs)) == 0);

	/* The two-pass way reads the page data twice (what restore did). */
	{
		static struct snap_parsed p;
		struct snap_source src = { .read = counting_read, .size = img_size };
		struct snap_report rep = { 0 };
		u64 total = 0;

		memset(reads, 0, img_size);
		CHECK_EQ(snap_image_open(&src, &p, &rep), 0);
		CHECK_EQ(snap_image_check_pages(&src, &p, &rep, NULL, NULL), 0);
		CHECK_EQ(snap_image_load_pages(&src, &p, page_of, loaded, &rep, NULL, NULL), 0);
		snap_image_close(&p);
		for (u64 i = 0; i < img_size; i++)
			total += reads[i];
		CHECK(total > img_size * 3 / 2);
	}
}

/* Offset of the last stored page: the last block before END's header. */
static u64 last_page_off(void)
{
	u64 pos = SNAP_HEADER_SIZE, end = 0;

	while (pos + SNAP_SECTION_HDR_SIZE <= img_size) {
		u32 type = snap_get32(img + pos);

		if (type == SNAP_SEC_END) {
			end = pos;
			break;
		}
		pos += SNAP_SECTION_HDR_SIZE + snap_get64(img + pos + 8);
	}
	CHECK(end && end % SNAP_BLOCK == 0);
	return end - PAGE_SIZE;
}

static void test_damage(void)
{
	struct snap_loader ld;
	u64 late = last_page_off() + 777;
	u64 vcpu_pos = 0;

	/* A bit of the last stored page: found when its chunk is complete,
	 * after everything before it went into memory; no region counts as
	 * loaded, and the walk still reads no byte twice. */
	img[late] ^= 0x10;
	CHECK_EQ(load(&ld), -EBADMSG);
	CHECK_EQ(prepare_calls, 1);
	CHECK_EQ(ld.loaded, 0);
	CHECK(strstr(report_text, "memory region 0, stored pages") != NULL);
	CHECK(strstr(report_text, "CRC32C mismatch") != NULL);
	read_at_most_once();
	img[late] ^= 0x10;

	/* A damaged vCPU record comes before the pages: no VM is made. */
	for (u64 pos = SNAP_HEADER_SIZE; pos < img_size;) {
		if (snap_get32(img + pos) == SNAP_SEC_VCPU) {
			vcpu_pos = pos;
			break;
		}
		pos += SNAP_SECTION_HDR_SIZE + snap_get64(img + pos + 8);
	}
	CHECK(vcpu_pos != 0);
	img[vcpu_pos + SNAP_SECTION_HDR_SIZE + 0x88] ^= 1;
	CHECK_EQ(load(&ld), -EBADMSG);
	CHECK_EQ(prepare_calls, 0);
	CHECK(strstr(report_text, "vCPU 0 state record") != NULL);
	img[vcpu_pos + SNAP_SECTION_HDR_SIZE + 0x88] ^= 1;

	/* prepare refusing with a finding (the catalog's header CRC), or with
	 * an errno (no memory for the VM). */
	prepare_ret = 1;
	CHECK_EQ(load(&ld), -EBADMSG);
	CHECK(strstr(report_text, "catalog entry and image header disagree") != NULL);
	CHECK_EQ(ld.loaded, 0);
	prepare_ret = -ENOMEM;
	CHECK_EQ(load(&ld), -ENOMEM);
	prepare_ret = 0;

	/* A read error in the page data, and Ctrl-C on the way. */
	fail_at = late;
	CHECK_EQ(load(&ld), -EIO);
	fail_at = ~0ULL;
	cancel_after = 1;
	CHECK_EQ(load(&ld), -ECANCELED);
	cancel_after = 0;

	/* And intact again. */
	CHECK_EQ(load(&ld), 0);
	CHECK(memcmp(loaded, guest, PAGES * PAGE_SIZE) == 0);
}

/* A run of left-out pages is zeroed a host-contiguous stretch at a time
 * (one memset): split in host memory inside the run, each side is zeroed,
 * and nothing past the guest's pages is written. */
static void test_zero_run_split(void)
{
	struct snap_loader ld;
	u64 rest = PAGES - (ZERO_FROM + 17), stray = 0;

	split_at = ZERO_FROM + 17;
	upper = aligned_alloc(4096, (rest + 1) * PAGE_SIZE);
	memset(upper, 0xAA, (rest + 1) * PAGE_SIZE);
	fail_at = ~0ULL;
	CHECK_EQ(load(&ld), 0);
	CHECK_EQ(ld.zeroed, ZEROS);
	CHECK(memcmp(loaded, guest, split_at * PAGE_SIZE) == 0);
	CHECK(memcmp(upper, guest + split_at * PAGE_SIZE, rest * PAGE_SIZE) == 0);
	/* Nothing past what each buffer holds of the guest was written. */
	for (u64 i = 0; i < PAGE_SIZE; i++)
		stray += upper[rest * PAGE_SIZE + i] != 0xAA;
	for (u64 i = split_at * PAGE_SIZE; i < PAGES * PAGE_SIZE; i++)
		stray += loaded[i] != 0xAA;
	CHECK_EQ(stray, 0);
	split_at = 0;
	free(upper);
}

int main(void)
{
	fail_at = ~0ULL;
	build_image();
	test_once();
	test_damage();
	test_zero_run_split();
	free(guest);
	free(loaded);
	free(img);
	free(reads);
	return test_done("snapload");
}
