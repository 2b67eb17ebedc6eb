/*
 * libFuzzer target: the snapshot image reader (snapshot/reader.c, describe.c)
 * on an image from a hostile disk, full or incremental (PARENT and DELTA
 * sections). Every path a restore, `snap verify` and
 * `snap info` take: open, page CRCs, vCPU records, loading the pages into
 * guest memory, the one-pass restore (snap_image_load), and the description,
 * which must stay bounded. Host only.
 */
#include "tests/fuzz/fuzz_snap.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int lines;
static void count_line(void *ctx, const char *line)
{
	if (++lines > FUZZ_MAX_LINES)
		abort(); /* a description without end */
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static struct snap_parsed p;
	static struct vcpu_state s;
	static u8 *copy;
	struct fuzz_buf b = { (u8 *)data, size };
	struct snap_source src = { .read = fuzz_src_read, .size = size, .ctx = &b };
	struct snap_report rep = { 0 };
	int ret;

	if (size & 1) {
		free(copy);
		copy = malloc(size);
		memcpy(copy, data, size);
		fuzz_fix_image(copy, size);
		b.p = copy;
	}
	ret = snap_image_open(&src, &p, &rep);

	if (ret == 0 || ret == -EBADMSG) {
		snap_image_check_pages(&src, &p, &rep, NULL, NULL);
		lines = 0;
		snap_image_describe(&src, &p, count_line, NULL);
		for (u32 i = 0; i < SNAP_MAX_VCPUS; i++)
			snap_image_read_vcpu(&src, &p, i, &s, &rep);
	}
	if (ret == 0)
		snap_image_load_pages(&src, &p, fuzz_guest_page, NULL, &rep, NULL, NULL);
	snap_image_close(&p);
	fuzz_load(&src, ret);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("AMBER_FUZZ_SEED_DIR");
	u64 size;
	u8 *img;

	if (!dir)
		return 0;
	for (u32 n = 1; n <= 2; n++) {
		struct snap_parent pr;
		char name[32];

		img = fuzz_make_image(n, &size);
		snprintf(name, sizeof(name), "image-%uvcpu", n);
		fuzz_write_seed(dir, name, img, size);
		/* A child: runs of one page, of two touching a region's end, and
		 * of several across the two regions. */
		fuzz_parent_of(img, "seed", 1, &pr);
		free(img);
		memset(fuzz_guest + 7 * PAGE_SIZE, 0x77, 8);
		img = fuzz_make_image_over(n, &size, &pr, 0xF8C00080ULL);
		snprintf(name, sizeof(name), "child-%uvcpu", n);
		fuzz_write_seed(dir, name, img, size);
		free(img);
	}
	exit(0);
}
