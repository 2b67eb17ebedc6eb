/*
 * Host unit tests of the snapshot image format (snapshot/format.c, image.c,
 * reader.c, crc32c.c): the header against the table, CRC32C, the vCPU
 * record layout, a full round trip, and bit flips that must each be detected
 * and named. Host only (ASan/UBSan).
 */
#include <stdint.h>

#include "tests/unit/check.h"
#include "kernel/lib.h"
#include "snapshot/image.h"
#include "vmm/vdev_id.h"

/* ---- a fake guest: regions of host memory ------------------------------------ */
#define MEM_PAGES 300
static u8 *guest_mem, *guest_copy;

static void *guest_page(void *ctx, u64 gpa)
{
	u8 *base = ctx;

	return gpa / PAGE_SIZE < MEM_PAGES ? base + gpa : NULL;
}

/* ---- an in-memory image: sink and source ------------------------------------- */
static u8 *img_buf;
static u64 img_cap;

static int mem_write(struct snap_sink *s, u64 off, const void *buf, u64 len)
{
	if (off % SNAP_BLOCK || len % SNAP_BLOCK || off + len > img_cap)
		return -EINVAL;
	memcpy(img_buf + off, buf, len);
	return 0;
}

static int mem_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	if (off + len > src->size)
		return -EIO;
	memcpy(buf, img_buf + off, len);
	return 0;
}

static char report_text[8192];
static void collect(struct snap_report *r, const char *line)
{
	strncat(report_text, line, sizeof(report_text) - strlen(report_text) - 2);
	strcat(report_text, "\n");
}

static int describe_lines, describe_wide;
static char describe_text[8192];
static void count_line(void *ctx, const char *line)
{
	describe_lines++;
	if (strlen(line) > 80) { /* `snap info` is read on an 80-column terminal */
		fprintf(stderr, "wider than 80 columns: %s\n", line);
		describe_wide++;
	}
	strncat(describe_text, line, sizeof(describe_text) - strlen(describe_text) - 2);
	strcat(describe_text, "\n");
}

static struct vcpu_state vs[2], vs_back;
static struct snap_image img;
static u64 img_size;

static void fill_state(struct vcpu_state *s, unsigned seed, u32 xsave_size)
{
	u8 *p = (u8 *)s;

	srand(seed);
	for (size_t i = 0; i < sizeof(*s); i++)
		p[i] = (u8)rand();
	s->xsave_size = xsave_size;
	memset(s->xsave + xsave_size, 0, sizeof(s->xsave) - xsave_size);
	s->reserved = 0;
	s->gdtr.reserved = s->idtr.reserved = 0;
}

/* A guest with zero pages, patterned pages and a page with one non-zero byte. */
static void build_guest(void)
{
	guest_mem = aligned_alloc(4096, MEM_PAGES * PAGE_SIZE);
	guest_copy = aligned_alloc(4096, MEM_PAGES * PAGE_SIZE);
	memset(guest_mem, 0, MEM_PAGES * PAGE_SIZE);
	for (u64 pg = 0; pg < MEM_PAGES; pg++) {
		if (pg % 7 == 3 || (pg >= 100 && pg < 140))
			for (u64 i = 0; i < PAGE_SIZE; i += 8)
				*(u64 *)(guest_mem + pg * PAGE_SIZE + i) =
					pg * 0x9E3779B97F4A7C15ULL ^ i;
	}
	guest_mem[250 * PAGE_SIZE + 4095] = 1;
}

/* A live save's last write (snapshot/live.c): the page data is in img_buf
 * already, copied from in_place_data; NULL for a whole write. */
static bool in_place;
static const u8 *in_place_data;

/* Writes the image of the fake guest (two regions) into img_buf. */
static void write_image(u64 stage_size)
{
	struct snap_sink sink = { .write = mem_write };
	int ret;

	memset(&img, 0, sizeof(img));
	img.hdr.vm_id = 3;
	img.hdr.timestamp = 123456789;
	strcpy(img.info.name, "unit");
	strcpy(img.info.backend, "AMD-V");
	img.nvcpus = 2;
	img.vcpu[0] = &vs[0];
	img.vcpu[1] = &vs[1];
	img.dev.vm_id = 3;
	img.dev.vm_state = SNAP_VM_RUNNING;
	img.dev.mem_size = MEM_PAGES * PAGE_SIZE;
	strcpy(img.dev.image, "memtest");
	strcpy(img.dev.cmdline, "pattern=5");
	img.dev.guest_tsc_hz = 2600000000ULL;
	img.note = "unit test image";
	/* Two device records, opaque to the image code (sizes as the devices'). */
	img.ndevrecs = 2;
	img.devrec[0] = (struct snap_devrec){ .id = VDEV_UART, .version = 1, .len = 0xD8 };
	memcpy(img.devrec[0].data + 0x18, "hello", 5);
	img.devrec[1] = (struct snap_devrec){ .id = VDEV_PIC, .version = 2, .len = 32 };
	img.devrec[1].data[0x12] = 0xFB;
	img.devrec[1].data[31] = 0xA5;
	img.nregions = 2;
	CHECK_EQ(snap_region_init(&img.region[0], 0, 200, SNAP_PAGES_PER_CRC), 0);
	CHECK_EQ(snap_region_init(&img.region[1], 200 * PAGE_SIZE, 100, 5), 0);
	for (u32 i = 0; i < img.nregions; i++)
		CHECK_EQ(snap_region_scan(&img.region[i], guest_page, guest_mem, NULL, NULL), 0);
	img_size = snap_image_layout(&img);
	CHECK(img_size > 0);
	img_cap = img_size;
	free(img_buf);
	img_buf = malloc(img_cap);
	memset(img_buf, 0xEE, img_cap);
	img.data_in_place = in_place;
	for (u32 i = 0; in_place_data && i < img.nregions; i++)
		memcpy(img_buf + img.region[i].data_pos, in_place_data + img.region[i].data_pos,
		       img.region[i].stored * PAGE_SIZE);
	sink.stage = malloc(stage_size);
	sink.stage_size = stage_size;
	ret = snap_image_write(&img, &sink, guest_page, guest_mem);
	CHECK_EQ(ret, 0);
	free(sink.stage);
	for (u32 i = 0; i < img.nregions; i++)
		snap_region_release(&img.region[i]);
}

/* Opens the image in img_buf, checks pages; returns the errors reported. */
static int verify_image(struct snap_parsed *p, u64 size)
{
	struct snap_source src = { .read = mem_read, .size = size };
	struct snap_report rep = { .emit = collect };

	report_text[0] = '\0';
	if (snap_image_open(&src, p, &rep) == 0)
		snap_image_check_pages(&src, p, &rep, NULL, NULL);
	snap_image_close(p);
	return rep.errors;
}

/* With the page data in place, the rest written around it gives the same
 * bytes as a whole write; with nothing there the pages' CRCs fail (so the
 * data really was left alone). */
static void test_data_in_place(void)
{
	struct snap_parsed p;
	u8 *whole;

	write_image(8192);
	whole = malloc(img_size);
	memcpy(whole, img_buf, img_size);
	in_place = true;
	in_place_data = whole;
	write_image(4096);
	CHECK(memcmp(img_buf, whole, img_size) == 0);
	CHECK_EQ(verify_image(&p, img_size), 0);
	in_place_data = NULL; /* 0xEE where the pages should be */
	write_image(4096);
	CHECK(memcmp(img_buf, whole, img.region[0].data_pos) == 0);
	CHECK(verify_image(&p, img_size) > 0);
	CHECK(strstr(report_text, "CRC32C mismatch") != NULL);
	in_place = false;
	free(whole);
}

static void test_header(void)
{
	struct snapshot_header h = {
		.magic = SNAPSHOT_MAGIC,
		.version = 1,
		.vm_id = 0x1122334455667788ULL,
		.vcpu_count = 2,
		.memory_pages = 0x4000,
		.region_count = 3,
		.total_size = 0x123000,
		.timestamp = 0xABCDEF012345ULL,
	};
	u8 raw[64];

	CHECK_EQ(snap_header_compute_checksum(&h), 0x50414E53ULL ^ 1 ^ 0x1122334455667788ULL ^ 2 ^
							   0x4000 ^ 3 ^ 0x123000 ^
							   0xABCDEF012345ULL);
	h.checksum = snap_header_compute_checksum(&h);
	CHECK(snap_header_is_valid(&h));
	snap_header_encode(&h, raw);
	/* The table: offsets, sizes, little-endian, zero padding. */
	CHECK(memcmp(raw, "SNAP", 4) == 0);
	CHECK_EQ(snap_get32(raw + 0x04), 1);
	CHECK_EQ(snap_get64(raw + 0x08), 0x1122334455667788ULL);
	CHECK_EQ(raw[0x08], 0x88);
	CHECK_EQ(snap_get32(raw + 0x10), 2);
	CHECK_EQ(snap_get32(raw + 0x14), 0);
	CHECK_EQ(snap_get64(raw + 0x18), 0x4000);
	CHECK_EQ(snap_get32(raw + 0x20), 3);
	CHECK_EQ(snap_get32(raw + 0x24), 0);
	CHECK_EQ(snap_get64(raw + 0x28), 0x123000);
	CHECK_EQ(snap_get64(raw + 0x30), 0xABCDEF012345ULL);
	CHECK_EQ(snap_get64(raw + 0x38), h.checksum);
	/* The C struct is the same bytes (x86 is little-endian). */
	CHECK(memcmp(raw, &h, 64) == 0);
	{
		struct snapshot_header d;

		snap_header_decode(raw, &d);
		CHECK(memcmp(&d, &h, 64) == 0);
	}
	/* Every single-bit flip of a field breaks is_valid(). */
	for (int bit = 0; bit < 512; bit++) {
		struct snapshot_header d;
		u8 bad[64];
		int off = bit / 8;

		if ((off >= 0x14 && off < 0x18) || (off >= 0x24 && off < 0x28))
			continue; /* padding: not in the XOR (the CRC in IMAGE covers it) */
		memcpy(bad, raw, 64);
		bad[off] ^= (u8)(1 << (bit % 8));
		snap_header_decode(bad, &d);
		if (snap_header_is_valid(&d))
			fprintf(stderr, "flip of bit %d not detected\n", bit);
		CHECK(!snap_header_is_valid(&d));
	}
	h.version = 1;
	h.checksum = snap_header_compute_checksum(&h);
	CHECK(snap_header_is_valid(&h)); /* version 1 and 2 are both read */
	h.version = SNAPSHOT_VERSION + 1;
	h.checksum = snap_header_compute_checksum(&h);
	CHECK(!snap_header_is_valid(&h));
	h.version = 0;
	h.checksum = snap_header_compute_checksum(&h);
	CHECK(!snap_header_is_valid(&h));
}

static void test_crc(void)
{
	static u8 buf[10000];

	CHECK_EQ(crc32c(0, "123456789", 9), 0xE3069283);
	CHECK_EQ(crc32c(0, "123456789", 9), 0xE3069283);
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (u8)rand();
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len < 100; len += 7)
			CHECK_EQ(crc32c(0, buf + off, len), crc32c(0, buf + off, len));
	CHECK_EQ(crc32c(crc32c(0, buf, 1234), buf + 1234, 10000 - 1234), crc32c(0, buf, 10000));
}

static void test_vcpu_layout(void)
{
	static u8 rec[SNAP_VCPU_FIXED + 4096 + 8];
	const char *why = NULL;
	u32 id;

	/* docs/snapshot-format.md "VCPU": the documented offsets. */
	CHECK_EQ(snap_vcpu_field_offset("rax"), 0x008);
	CHECK_EQ(snap_vcpu_field_offset("r15"), 0x080);
	CHECK_EQ(snap_vcpu_field_offset("rip"), 0x088);
	CHECK_EQ(snap_vcpu_field_offset("rflags"), 0x090);
	CHECK_EQ(snap_vcpu_field_offset("cr0"), 0x098);
	CHECK_EQ(snap_vcpu_field_offset("cr8"), 0x0B8);
	CHECK_EQ(snap_vcpu_field_offset("efer"), 0x0C0);
	CHECK_EQ(snap_vcpu_field_offset("pat"), 0x0C8);
	CHECK_EQ(snap_vcpu_field_offset("es.selector"), 0x0D0);
	CHECK_EQ(snap_vcpu_field_offset("cs.attr"), 0x0E2);
	CHECK_EQ(snap_vcpu_field_offset("tr.base"), 0x148);
	CHECK_EQ(snap_vcpu_field_offset("gdtr.base"), 0x150);
	CHECK_EQ(snap_vcpu_field_offset("idtr.limit"), 0x168);
	CHECK_EQ(snap_vcpu_field_offset("sysenter_cs"), 0x170);
	CHECK_EQ(snap_vcpu_field_offset("star"), 0x188);
	CHECK_EQ(snap_vcpu_field_offset("kernel_gs_base"), 0x1A8);
	CHECK_EQ(snap_vcpu_field_offset("dr0"), 0x1B0);
	CHECK_EQ(snap_vcpu_field_offset("dr7"), 0x1D8);
	CHECK_EQ(snap_vcpu_field_offset("tsc"), 0x1E0);
	CHECK_EQ(snap_vcpu_field_offset("interruptibility"), 0x1E8);
	CHECK_EQ(snap_vcpu_field_offset("halted"), 0x1EC);
	CHECK_EQ(snap_vcpu_field_offset("pending.valid"), 0x1F0);
	CHECK_EQ(snap_vcpu_field_offset("pending.error_code"), 0x1F4);
	CHECK_EQ(snap_vcpu_field_offset("xcr0"), 0x1F8);
	CHECK_EQ(snap_vcpu_field_offset("xsave_size"), 0x200);
	CHECK_EQ(snap_vcpu_field_offset("xsave"), SNAP_VCPU_FIXED);
	CHECK_STR(snap_vcpu_field_at(0x08C), "rip");

	fill_state(&vs[0], 1, 832);
	snap_vcpu_encode(5, &vs[0], rec);
	CHECK_EQ(snap_get32(rec), 5);
	CHECK_EQ(snap_get64(rec + 0x088), vs[0].rip);
	CHECK_EQ(snap_get16(rec + 0x0E0), vs[0].cs.selector);
	CHECK_EQ(snap_get64(rec + 0x1E0), vs[0].tsc);
	CHECK(memcmp(rec + SNAP_VCPU_FIXED, vs[0].xsave, 832) == 0);
	CHECK_EQ(snap_vcpu_decode(rec, snap_vcpu_size(832), &id, &vs_back, &why), 0);
	CHECK_EQ(id, 5);
	CHECK(memcmp(&vs_back, &vs[0], sizeof(vs_back)) == 0);
	CHECK(snap_vcpu_decode(rec, snap_vcpu_size(832) - 8, &id, &vs_back, &why) != 0);
	snap_put32(rec + 0x200, 5000);
	CHECK(snap_vcpu_decode(rec, snap_vcpu_size(832), &id, &vs_back, &why) != 0);
}

static void test_round_trip(void)
{
	static struct snap_parsed p;
	struct snap_source src = { .read = mem_read };
	struct snap_report rep = { .emit = collect };
	u64 stored = 0;

	fill_state(&vs[0], 11, 832);
	fill_state(&vs[1], 12, 0);
	write_image(3 * SNAP_BLOCK); /* a small stage: many flushes */
	CHECK_EQ(img_size % SNAP_BLOCK, 0);
	CHECK(img_size < MEM_PAGES * PAGE_SIZE / 2); /* zero pages elided */
	CHECK(memcmp(img_buf, "SNAP", 4) == 0);

	src.size = img_size;
	report_text[0] = '\0';
	CHECK_EQ(snap_image_open(&src, &p, &rep), 0);
	CHECK_EQ(rep.errors, 0);
	if (rep.errors)
		fprintf(stderr, "%s", report_text);
	CHECK_EQ(p.hdr.vcpu_count, 2);
	CHECK_EQ(p.hdr.memory_pages, MEM_PAGES);
	CHECK_EQ(p.hdr.region_count, 2);
	CHECK_EQ(p.hdr.total_size, img_size);
	CHECK_EQ(p.hdr.vm_id, 3);
	CHECK_EQ(p.hdr.timestamp, 123456789);
	CHECK_EQ(p.nsections, 1 + 1 + 2 + 1 + 2 + 1 + 2 + 1);
	CHECK_STR(p.info.name, "unit");
	CHECK_STR(p.dev.image, "memtest");
	CHECK_STR(p.dev.cmdline, "pattern=5");
	CHECK_STR(p.note, "unit test image");
	CHECK_EQ(p.region[1].gpa, 200 * PAGE_SIZE);
	CHECK_EQ(p.dev.guest_tsc_hz, 2600000000ULL);
	CHECK_EQ(p.ndevrecs, 2);
	CHECK_EQ(p.devrec[0].id, VDEV_UART);
	CHECK_EQ(p.devrec[0].version, 1);
	CHECK_EQ(p.devrec[0].len, 0xD8);
	CHECK(memcmp(p.devrec[0].data + 0x18, "hello", 5) == 0);
	CHECK_EQ(p.devrec[1].id, VDEV_PIC);
	CHECK_EQ(p.devrec[1].version, 2);
	CHECK_EQ(p.devrec[1].data[0x12], 0xFB);
	CHECK_EQ(p.devrec[1].data[31], 0xA5);
	describe_lines = 0;
	snap_image_describe(&src, &p, count_line, NULL);
	CHECK(describe_lines > 10);
	CHECK(strstr(describe_text, "vCPU 1: ") != NULL);
	CHECK(strstr(describe_text, "devices: uart v1, pic v2") != NULL);
	CHECK_EQ(describe_wide, 0);
	for (u64 pg = 0; pg < MEM_PAGES; pg++)
		stored += !snap_page_is_zero(guest_mem + pg * PAGE_SIZE);
	CHECK_EQ(p.region[0].stored + p.region[1].stored, stored);
	CHECK_EQ(snap_image_check_pages(&src, &p, &rep, NULL, NULL), 0);
	for (u32 i = 0; i < 2; i++) {
		CHECK_EQ(snap_image_read_vcpu(&src, &p, i, &vs_back, &rep), 0);
		CHECK(memcmp(&vs_back, &vs[i], sizeof(vs_back)) == 0);
	}
	memset(guest_copy, 0xAA, MEM_PAGES * PAGE_SIZE);
	CHECK_EQ(snap_image_load_pages(&src, &p, guest_page, guest_copy, &rep, NULL, NULL), 0);
	CHECK(memcmp(guest_copy, guest_mem, MEM_PAGES * PAGE_SIZE) == 0);
	for (u64 pg = 200; pg < MEM_PAGES; pg++) {
		if (!snap_page_is_zero(guest_mem + pg * PAGE_SIZE)) {
			CHECK_EQ(snap_region_stored_gpa(&p.region[1], 0), pg * PAGE_SIZE);
			break;
		}
	}
	snap_image_close(&p);

	/* The same image whatever the staging size. */
	{
		u8 *first = malloc(img_size);
		u64 first_size = img_size;

		memcpy(first, img_buf, img_size);
		write_image(64 * SNAP_BLOCK);
		CHECK_EQ(img_size, first_size);
		CHECK(memcmp(first, img_buf, img_size) == 0);
		free(first);
	}
}

/* Flips one bit of the image; returns the number of findings and leaves
 * their text in report_text. */
static int flip(u64 off, int bit)
{
	static struct snap_parsed p;
	int errors;

	img_buf[off] ^= (u8)(1 << bit);
	errors = verify_image(&p, img_size);
	img_buf[off] ^= (u8)(1 << bit);
	if (getenv("SNAP_VERBOSE"))
		printf("flip of bit %d at 0x%llx:\n%s", bit, (unsigned long long)off, report_text);
	return errors;
}

static u64 section_pos(u32 type, u32 index)
{
	static struct snap_parsed p;
	struct snap_source src = { .read = mem_read, .size = img_size };
	struct snap_report rep = { 0 };
	u64 pos = 0;

	snap_image_open(&src, &p, &rep);
	for (u32 i = 0; i < p.nsections; i++)
		if (p.sec[i].type == type && p.sec[i].index == index)
			pos = p.sec[i].pos;
	snap_image_close(&p);
	return pos;
}

static void test_bit_flips(void)
{
	static struct snap_parsed p;
	u64 vcpu1 = section_pos(SNAP_SEC_VCPU, 1), pages0 = section_pos(SNAP_SEC_PAGES, 0);
	u64 data0, off;

	CHECK_EQ(verify_image(&p, img_size), 0);
	CHECK(vcpu1 && pages0);

	/* Header: a field (XOR and CRC both see it) and the padding (CRC only). */
	CHECK(flip(0x30, 3) > 0);
	CHECK(strstr(report_text, "header (image bytes 0x00-0x3f): checksum mismatch") != NULL);
	CHECK(flip(0x15, 0) > 0);
	CHECK(strstr(report_text, "header") != NULL);

	/* A byte of vCPU 1's RIP. */
	CHECK(flip(vcpu1 + SNAP_SECTION_HDR_SIZE + 0x088, 5) > 0);
	CHECK(strstr(report_text, "vCPU 1 state record") != NULL);
	CHECK(strstr(report_text, "CRC32C mismatch") != NULL);

	/* A byte in stored page 20 of region 0 (guest page 100 + ...). */
	{
		struct snap_source src = { .read = mem_read, .size = img_size };
		struct snap_report rep = { 0 };
		u64 gpa;

		snap_image_open(&src, &p, &rep);
		data0 = p.region[0].data_pos;
		gpa = snap_region_stored_gpa(&p.region[0], 20);
		snap_image_close(&p);
		CHECK_EQ(flip(data0 + 20 * PAGE_SIZE + 1000, 1), 1);
		/* Stored pages 16-31 form the chunk; its range contains the page. */
		CHECK(strstr(report_text,
			     "memory region 0, stored pages 16-31 between guest-physical") != NULL);
		{
			unsigned long long lo, hi;
			const char *s = strstr(report_text, "guest-physical ");

			CHECK(s && sscanf(s, "guest-physical 0x%llx and 0x%llx", &lo, &hi) == 2);
			CHECK(s && lo <= gpa && gpa <= hi);
		}
	}

	/* The loader refuses a damaged page too. */
	{
		struct snap_source src = { .read = mem_read, .size = img_size };
		struct snap_report rep = { 0 };

		img_buf[data0 + 5] ^= 0x40;
		CHECK_EQ(snap_image_open(&src, &p, &rep), 0);
		CHECK_EQ(snap_image_load_pages(&src, &p, guest_page, guest_copy, &rep, NULL, NULL),
			 -EBADMSG);
		snap_image_close(&p);
		img_buf[data0 + 5] ^= 0x40;
	}

	/* A section header, the bitmap, the END padding, a truncated image. */
	CHECK(flip(pages0 + 8, 0) > 0);
	CHECK(strstr(report_text, "CRC32C mismatch") != NULL);
	CHECK(flip(pages0 + SNAP_SECTION_HDR_SIZE + SNAP_PAGES_HEAD + 2, 2) > 0);
	CHECK(strstr(report_text, "memory region 0 index") != NULL);
	CHECK(flip(img_size - 1, 7) > 0);
	CHECK(strstr(report_text, "END") != NULL);
	CHECK(verify_image(&p, img_size - SNAP_BLOCK) > 0);

	/* Every byte is covered: any single-bit flip is found. */
	srand(99);
	for (int i = 0; i < 3000; i++) {
		off = (u64)rand() % img_size;
		if (i < 400)
			off = (u64)i * 7 % (vcpu1 + 64); /* dense over the metadata */
		int bit = rand() % 8, n = flip(off, bit);

		if (!n)
			fprintf(stderr, "flip of bit %d at 0x%llx not detected\n", bit,
				(unsigned long long)off);
		CHECK(n > 0);
	}
}

/* Issue 12 defect 1: a REGIONS count far past the 16-entry arrays, with the
 * section's CRCs made consistent, is refused by name; nothing reads past the
 * arrays and `snap info` prints a bounded description. */
static void test_hostile_region_count(void)
{
	static struct snap_parsed p;
	struct snap_source src = { .read = mem_read, .size = img_size };
	struct snap_report rep = { .emit = collect };
	u64 pos = section_pos(SNAP_SEC_REGIONS, 0);
	static const u32 counts[] = { 0xFFFFFFFFu, SNAP_MAX_REGIONS + 1, 1000 };
	struct snap_section s;
	u8 saved[8];

	CHECK(pos != 0);
	memcpy(saved, img_buf + pos + SNAP_SECTION_HDR_SIZE, 8);
	for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
		CHECK_EQ(snap_section_decode(img_buf + pos, &s), 0);
		snap_put32(img_buf + pos + SNAP_SECTION_HDR_SIZE, counts[c]);
		s.payload_crc = crc32c(0, img_buf + pos + SNAP_SECTION_HDR_SIZE, s.length);
		snap_section_encode(&s, img_buf + pos);
		report_text[0] = '\0';
		CHECK(snap_image_open(&src, &p, &rep) == -EBADMSG);
		CHECK(p.nregions <= SNAP_MAX_REGIONS);
		CHECK(strstr(report_text, "region table") != NULL);
		snap_image_check_pages(&src, &p, &rep, NULL, NULL);
		describe_lines = 0;
		describe_text[0] = '\0';
		snap_image_describe(&src, &p, count_line, NULL);
		CHECK(describe_lines < 40);
		snap_image_close(&p);
	}
	memcpy(img_buf + pos + SNAP_SECTION_HDR_SIZE, saved, 8);
	CHECK_EQ(snap_section_decode(img_buf + pos, &s), 0);
	s.payload_crc = crc32c(0, img_buf + pos + SNAP_SECTION_HDR_SIZE, s.length);
	snap_section_encode(&s, img_buf + pos);
	CHECK_EQ(verify_image(&p, img_size), 0);
}

/* Rewrites one section header in place (type and flags), CRC recomputed. */
static void retype(u64 pos, u32 type, u32 flags)
{
	struct snap_section s;

	CHECK_EQ(snap_section_decode(img_buf + pos, &s), 0);
	s.type = type;
	s.flags = flags;
	snap_section_encode(&s, img_buf + pos);
}

static void test_unknown_sections(void)
{
	static struct snap_parsed p;
	struct snap_source src = { .read = mem_read, .size = img_size };
	struct snap_report rep = { .emit = collect };
	u64 note = section_pos(SNAP_SEC_NOTE, 0);

	CHECK(note != 0);
	retype(note, 0x0200, 0);
	report_text[0] = '\0';
	CHECK_EQ(snap_image_open(&src, &p, &rep), 0);
	CHECK_EQ(p.skipped, 1);
	snap_image_close(&p);

	retype(note, 0x0201, SNAP_SEC_MANDATORY);
	CHECK(verify_image(&p, img_size) > 0);
	CHECK(strstr(report_text, "mandatory section type 0x0201 is unknown") != NULL);
	retype(note, SNAP_SEC_NOTE, 0);
	CHECK_EQ(verify_image(&p, img_size), 0);

	/* A version from the future (checksum made consistent) is refused by name. */
	{
		struct snapshot_header h;

		snap_header_decode(img_buf, &h);
		CHECK_EQ(h.version, SNAPSHOT_VERSION);
		h.version = 3;
		h.checksum = snap_header_compute_checksum(&h);
		snap_header_encode(&h, img_buf);
		CHECK(verify_image(&p, img_size) > 0);
		CHECK(strstr(report_text, "format version 3") != NULL);
		h.version = SNAPSHOT_VERSION;
		h.checksum = snap_header_compute_checksum(&h);
		snap_header_encode(&h, img_buf);
		img_buf[0] = 'X';
		CHECK(verify_image(&p, img_size) > 0);
		CHECK(strstr(report_text, "bad magic") != NULL);
		img_buf[0] = 'S';
		CHECK_EQ(verify_image(&p, img_size), 0);
	}
}

/* docs/snapshot-format.md "Version 1 device state": where each device's
 * record lies in a version 1 image's DEVICES and PLATFORM payloads. */
static void test_v1_pieces(void)
{
	struct snap_devrec recs[SNAP_MAX_DEVICES];
	u8 dev[SNAP_DEVICES_SIZE_V1] = { 0 }, pf[SNAP_PLATFORM_SIZE];
	u32 n = 0;

	for (unsigned i = 0; i < sizeof(pf); i++)
		pf[i] = (u8)i;
	dev[0xB1] = 3;	   /* COM1 LCR */
	dev[0x187] = 0x77; /* the last byte of COM1's receive ring */
	snap_v1_devrecs(SNAP_SEC_DEVICES, dev, sizeof(dev), recs, &n);
	snap_v1_devrecs(SNAP_SEC_PLATFORM, pf, sizeof(pf), recs, &n);
	CHECK_EQ(n, 7);
	for (u32 i = 0; i < n; i++) {
		const struct snap_devrec *r = &recs[i];

		CHECK_EQ(r->version, 1);
		switch (r->id) {
		case VDEV_UART:
			CHECK_EQ(r->len, 0xD8);
			CHECK_EQ(r->data[1], 3);
			CHECK_EQ(r->data[0xD7], 0x77);
			break;
		case VDEV_PIT: /* three 24-byte channels, then port 0x61 */
			CHECK_EQ(r->len, 0x49);
			CHECK_EQ(r->data[0x10], 0x10);
			CHECK_EQ(r->data[0x48], 0x48);
			break;
		case VDEV_PIC: /* the two masks */
			CHECK_EQ(r->len, 2);
			CHECK_EQ(r->data[0], 0x49);
			CHECK_EQ(r->data[1], 0x4A);
			break;
		case VDEV_KBD: /* command, command byte, queue length; queue at 4 */
			CHECK_EQ(r->len, 8);
			CHECK_EQ(r->data[0], 0x4B);
			CHECK_EQ(r->data[2], 0x4D);
			CHECK_EQ(r->data[3], 0);
			CHECK_EQ(r->data[4], 0x50);
			CHECK_EQ(r->data[7], 0x53);
			break;
		case VDEV_BOARD: /* POST code; PCI address at 4 */
			CHECK_EQ(r->len, 8);
			CHECK_EQ(r->data[0], 0x4E);
			CHECK_EQ(snap_get32(r->data + 4), 0x57565554);
			break;
		case VDEV_CMOS:
			CHECK_EQ(r->len, 1);
			CHECK_EQ(r->data[0], 0x4F);
			break;
		case VDEV_VGA: /* index, misc; CRT registers at 8 */
			CHECK_EQ(r->len, 0x28);
			CHECK_EQ(r->data[0], 0x60);
			CHECK_EQ(r->data[8], 0x68);
			CHECK_EQ(r->data[0x27], 0x87);
			break;
		default:
			CHECK(!"a record of no device");
		}
	}
	/* The older 0x60-byte PLATFORM has no VGA registers: no VGA record. */
	n = 0;
	snap_v1_devrecs(SNAP_SEC_PLATFORM, pf, SNAP_PLATFORM_SIZE_NO_VGA, recs, &n);
	CHECK_EQ(n, 5);
	for (u32 i = 0; i < n; i++)
		CHECK(recs[i].id != VDEV_VGA);
}

/* A version 1 image (DEVICES of 392 bytes with COM1 in it, PLATFORM) is still
 * read: the round-trip image is rewritten so, its DEVICES and two DEVICE
 * sections replaced by the v1 pair (a PLATFORM from before the VGA fields
 * takes exactly their room), header version and CRCs made right. */
static void test_version1_image(void)
{
	static struct snap_parsed p;
	struct snap_source src = { .read = mem_read, .size = img_size };
	struct snap_report rep = { .emit = collect };
	u64 dv = section_pos(SNAP_SEC_DEVICES, 0), im = section_pos(SNAP_SEC_IMAGE, 0);
	u64 end = section_pos(SNAP_SEC_NOTE, 0);
	struct snap_section sec = { .type = SNAP_SEC_DEVICES, .flags = SNAP_SEC_MANDATORY };
	struct snap_image_info info;
	struct snapshot_header h;
	u8 *saved = malloc(img_size), *pay;
	bool pic_seen = false;

	CHECK(dv && end && im == SNAP_HEADER_SIZE);
	CHECK(end - dv >=
	      3 * SNAP_SECTION_HDR_SIZE + SNAP_DEVICES_SIZE_V1 + SNAP_PLATFORM_SIZE_NO_VGA);
	memcpy(saved, img_buf, img_size);
	/* DEVICES, v1: the identity as before, COM1 from 0xB0. */
	pay = img_buf + dv + SNAP_SECTION_HDR_SIZE;
	memset(pay, 0, SNAP_DEVICES_SIZE_V1);
	snap_devices_encode(&img.dev, pay);
	memset(pay + 0xB0, 0, SNAP_DEVICES_SIZE_V1 - 0xB0);
	pay[0xB1] = 3;
	memcpy(pay + 0xC8, "hello", 5);
	sec.length = SNAP_DEVICES_SIZE_V1;
	sec.payload_crc = crc32c(0, pay, SNAP_DEVICES_SIZE_V1);
	snap_section_encode(&sec, img_buf + dv);
	/* PLATFORM, v1 without VGA: PIC masks, the TSC rate. */
	pay += SNAP_DEVICES_SIZE_V1;
	memset(pay + SNAP_SECTION_HDR_SIZE, 0, SNAP_PLATFORM_SIZE_NO_VGA);
	pay[SNAP_SECTION_HDR_SIZE + 0x4A] = 0xFB;
	snap_put64(pay + SNAP_SECTION_HDR_SIZE + SNAP_PLATFORM_TSC_HZ, 1999999999ULL);
	sec = (struct snap_section){ .type = SNAP_SEC_PLATFORM,
				     .flags = SNAP_SEC_MANDATORY,
				     .length = SNAP_PLATFORM_SIZE_NO_VGA };
	sec.payload_crc = crc32c(0, pay + SNAP_SECTION_HDR_SIZE, SNAP_PLATFORM_SIZE_NO_VGA);
	snap_section_encode(&sec, pay);
	/* The rest of the room: an optional section of unknown type. */
	pay += SNAP_SECTION_HDR_SIZE + SNAP_PLATFORM_SIZE_NO_VGA;
	sec = (struct snap_section){ .type = 0x0200,
				     .length = img_buf + end - pay - SNAP_SECTION_HDR_SIZE };
	memset(pay + SNAP_SECTION_HDR_SIZE, 0, sec.length);
	sec.payload_crc = crc32c(0, pay + SNAP_SECTION_HDR_SIZE, sec.length);
	snap_section_encode(&sec, pay);
	/* Header version 1, and the IMAGE section's copy of the header CRC. */
	snap_header_decode(img_buf, &h);
	h.version = 1;
	h.checksum = snap_header_compute_checksum(&h);
	snap_header_encode(&h, img_buf);
	snap_image_info_decode(img_buf + im + SNAP_SECTION_HDR_SIZE, &info);
	info.header_crc = crc32c(0, img_buf, SNAP_HEADER_SIZE);
	snap_image_info_encode(&info, img_buf + im + SNAP_SECTION_HDR_SIZE);
	CHECK_EQ(snap_section_decode(img_buf + im, &sec), 0);
	sec.payload_crc = crc32c(0, img_buf + im + SNAP_SECTION_HDR_SIZE, SNAP_IMAGE_SIZE);
	snap_section_encode(&sec, img_buf + im);

	report_text[0] = '\0';
	CHECK_EQ(snap_image_open(&src, &p, &rep), 0);
	CHECK_EQ(snap_image_check_pages(&src, &p, &rep, NULL, NULL), 0);
	if (rep.errors)
		fprintf(stderr, "%s", report_text);
	CHECK_EQ(rep.errors, 0);
	CHECK_EQ(p.hdr.version, 1);
	CHECK_EQ(p.skipped, 1);
	CHECK_STR(p.dev.cmdline, "pattern=5");
	CHECK_EQ(p.dev.vm_state, SNAP_VM_RUNNING);
	CHECK_EQ(p.dev.exit_code, 0); /* no VM end in version 1 */
	CHECK_STR(p.dev.stop_reason, "");
	CHECK_EQ(p.dev.guest_tsc_hz, 1999999999ULL);
	CHECK_EQ(p.ndevrecs, 6);
	for (u32 i = 0; i < p.ndevrecs; i++) {
		if (p.devrec[i].id == VDEV_UART) {
			CHECK_EQ(p.devrec[i].data[1], 3);
			CHECK(memcmp(p.devrec[i].data + 0x18, "hello", 5) == 0);
		}
		if (p.devrec[i].id == VDEV_PIC) {
			pic_seen = true;
			CHECK_EQ(p.devrec[i].data[1], 0xFB);
		}
	}
	CHECK(pic_seen);
	snap_image_close(&p);

	/* A v1 image may not carry DEVICE sections, nor a v2 one PLATFORM. */
	h.version = 2;
	h.checksum = snap_header_compute_checksum(&h);
	snap_header_encode(&h, img_buf);
	info.header_crc = crc32c(0, img_buf, SNAP_HEADER_SIZE);
	snap_image_info_encode(&info, img_buf + im + SNAP_SECTION_HDR_SIZE);
	CHECK_EQ(snap_section_decode(img_buf + im, &sec), 0);
	sec.payload_crc = crc32c(0, img_buf + im + SNAP_SECTION_HDR_SIZE, SNAP_IMAGE_SIZE);
	snap_section_encode(&sec, img_buf + im);
	report_text[0] = '\0';
	CHECK(snap_image_open(&src, &p, &rep) != 0);
	CHECK(strstr(report_text, "device state") != NULL);
	snap_image_close(&p);

	memcpy(img_buf, saved, img_size);
	free(saved);
	CHECK_EQ(verify_image(&p, img_size), 0);
}

/* Issue 12 defect 5: the VM's end (exit code, stop reason) is in DEVICES
 * since version 2; a version 1 DEVICES (0x188 bytes) decodes its identity
 * alone (test_version1_image reads a whole version 1 image). Issue 13: a
 * Linux guest's initrd at 0x160; a version 2 DEVICES of 0x160 bytes, from
 * before it, decodes without one. */
static void test_devices_versions(void)
{
	struct snap_devices d = { .vm_state = SNAP_VM_EXITED, .exit_code = 0xFFFFFFFE }, back;
	u8 raw[SNAP_DEVICES_SIZE] = { 0 };

	_Static_assert(SNAP_DEVICES_SIZE > SNAP_DEVICES_SIZE_V1, "raw holds every version");
	strcpy(d.cmdline, "pattern=5");
	d.cpu_model = CPU_MODEL_PORTABLE;
	for (int i = 0; i < CPUID_WORDS; i++)
		d.cpuid.w[i] = 0x11111111u * (u32)(i + 1);
	d.cpuid.xcr0 = 0x207;
	d.guest_tsc_hz = 2600000000ULL;
	strcpy(d.stop_reason, "guest wrote to its own page tables");
	strcpy(d.initrd, "initramfs.cpio.gz");
	snap_devices_encode(&d, raw);
	CHECK_EQ(SNAP_DEVICES_SIZE, 0x1B0);
	CHECK_EQ(SNAP_DEVICES_SIZE_NO_CPU, 0x180);
	CHECK_EQ(SNAP_DEVICES_SIZE_NO_INITRD, 0x160);
	/* The CPU model from 0x180: id, zero, the eight words, XCR0. */
	CHECK_EQ(snap_get32(raw + 0x180), CPU_MODEL_PORTABLE);
	CHECK_EQ(snap_get32(raw + 0x184), 0);
	CHECK_EQ(snap_get32(raw + 0x188), 0x11111111u); /* 1:ECX */
	CHECK_EQ(snap_get32(raw + 0x190), 0x33333333u); /* 7:EBX */
	CHECK_EQ(snap_get32(raw + 0x1A4), 0x88888888u); /* 80000001:EDX */
	CHECK_EQ(snap_get64(raw + 0x1A8), 0x207);
	snap_devices_decode(raw, SNAP_DEVICES_SIZE, &back);
	CHECK(back.has_cpuid);
	CHECK_EQ(back.cpu_model, CPU_MODEL_PORTABLE);
	CHECK(!memcmp(&back.cpuid, &d.cpuid, sizeof(d.cpuid)));
	/* Older: the host model, nothing recorded. */
	snap_devices_decode(raw, SNAP_DEVICES_SIZE_NO_CPU, &back);
	CHECK(!back.has_cpuid);
	CHECK_EQ(back.cpu_model, CPU_MODEL_HOST);
	CHECK_STR(back.initrd, "initramfs.cpio.gz");
	CHECK(memcmp(raw + 0x160, "initramfs.cpio.gz", 18) == 0);
	CHECK_EQ(raw[0x17F], 0);
	CHECK_EQ(snap_get32(raw + 0x004), SNAP_VM_EXITED);
	CHECK_EQ(snap_get64(raw + 0x0B0), 2600000000ULL);
	CHECK_EQ(snap_get32(raw + 0x0B8), 0xFFFFFFFE);
	CHECK(memcmp(raw + 0x0C0, "guest wrote", 11) == 0);
	CHECK_EQ(raw[0x15F], 0);
	snap_devices_decode(raw, SNAP_DEVICES_SIZE, &back);
	CHECK_EQ((s32)back.exit_code, -2);
	CHECK_EQ(back.guest_tsc_hz, 2600000000ULL);
	CHECK_STR(back.stop_reason, d.stop_reason);
	CHECK_STR(back.initrd, "initramfs.cpio.gz");
	snap_devices_decode(raw, SNAP_DEVICES_SIZE_NO_INITRD, &back);
	CHECK_STR(back.stop_reason, d.stop_reason);
	CHECK_STR(back.initrd, "");
	snap_devices_decode(raw, SNAP_DEVICES_SIZE_V1, &back);
	CHECK_STR(back.cmdline, "pattern=5");
	CHECK_EQ(back.exit_code, 0);
	CHECK_EQ(back.guest_tsc_hz, 0);
	CHECK_STR(back.stop_reason, "");
	CHECK_STR(back.initrd, "");
	CHECK_STR(snap_vm_state_name(SNAP_VM_EXITED), "exited");
	CHECK_STR(snap_vm_state_name(SNAP_VM_STOPPED), "stopped");
}

static void test_names(void)
{
	CHECK(snap_name_valid("base-1.2_x"));
	CHECK(!snap_name_valid(""));
	CHECK(!snap_name_valid("a b"));
	CHECK(!snap_name_valid("0123456789012345678901234567890123"));
	CHECK(snap_name_valid("0123456789012345678901234567890"));
}

int main(void)
{
	build_guest();
	test_header();
	test_crc();
	test_vcpu_layout();
	test_round_trip();
	test_bit_flips();
	test_unknown_sections();
	test_hostile_region_count();
	test_v1_pieces();
	test_version1_image();
	test_devices_versions();
	test_names();
	test_data_in_place();
	free(img_buf);
	free(guest_mem);
	free(guest_copy);
	return test_done("snapformat");
}
