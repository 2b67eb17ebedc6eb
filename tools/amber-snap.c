/*
 * amber-snap: Amber's snapshots on the build host. Reads a disk image that
 * Amber wrote snapshots to (or one image cut out of it) with the very same
 * format and store code the kernel runs: list, info, verify, extract, core;
 * for an incremental snapshot, its whole chain.
 * Host only; opens the disk image read-only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/lib.h"
#include "snapshot/chain.h"
#include "snapshot/image.h"
#include "snapshot/store.h"
#include "tools/hostdisk.h"
#include "tools/snapcore.h"

#define EXIT_DAMAGED 1 /* verify found a problem */
#define EXIT_USAGE 2   /* bad arguments, missing file or snapshot */

static const char usage[] =
	"usage: amber-snap list DISK.img\n"
	"       amber-snap info DISK.img NAME\n"
	"       amber-snap verify DISK.img NAME\n"
	"       amber-snap extract DISK.img NAME -o FILE\n"
	"       amber-snap core DISK.img NAME -o FILE\n"
	"info, verify and core also take an extracted image instead of DISK.img NAME;\n"
	"for an incremental snapshot, verify and core need DISK.img NAME (its chain).\n"
	"Exit status: 0 fine, 1 the snapshot is damaged, 2 usage or I/O error.\n";

static struct hostdisk disk;
static struct snap_store store;
static struct snap_parsed parsed, base_parsed;
static struct snap_links links;
/* The chain of the snapshot named on the command line (DISK.img NAME):
 * chain[0] is it, chain[chain_n - 1] its full image; chain_err why not. */
static int chain[SNAP_MAX_CHAIN];
static u32 chain_n;
static int chain_err;
static char chain_why[160];

/* The image: a byte range of the disk image file. */
struct file_src {
	int fd;
	u64 base;
};

static int file_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	struct file_src *f = src->ctx;
	ssize_t n;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	n = pread(f->fd, buf, len, (off_t)(f->base + off));
	return n == (ssize_t)len ? 0 : -EIO;
}

static void print_line(void *ctx, const char *line) { printf("%s\n", line); }
static void print_problem(struct snap_report *r, const char *line)
{
	printf("  damaged: %s\n", line);
}

static int open_store(const char *path)
{
	int ret;

	if (hostdisk_open(&disk, path, false))
		return -EIO;
	ret = snap_store_open(&store, &disk.dev);
	if (ret == -ENODATA)
		fprintf(stderr, "amber-snap: %s holds no Amber snapshot store\n", path);
	else if (ret)
		fprintf(stderr, "amber-snap: %s: %s\n", path, store.err);
	return ret;
}

/* DISK.img NAME, or an extracted image alone: sets up src. */
static int open_image(int argc, char **argv, int *used, struct snap_source *src, struct file_src *f,
		      const char **name)
{
	char magic[4] = { 0 };
	struct stat st;
	int fd, entry, ret;

	if (argc < 1)
		return -EINVAL;
	fd = open(argv[0], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "amber-snap: %s: %s\n", argv[0], strerror(errno));
		return -EIO;
	}
	if (pread(fd, magic, 4, 0) == 4 && !memcmp(magic, "SNAP", 4)) {
		*f = (struct file_src){ fd, 0 };
		*src = (struct snap_source){ .read = file_read, .size = (u64)st.st_size, .ctx = f };
		*name = argv[0];
		*used = 1;
		return 0;
	}
	close(fd);
	if (argc < 2)
		return -EINVAL;
	ret = open_store(argv[0]);
	if (ret)
		return ret;
	entry = snap_store_find(&store, argv[1]);
	if (entry < 0) {
		fprintf(stderr, "amber-snap: no snapshot '%s' in %s (see amber-snap list)\n",
			argv[1], argv[0]);
		return -ENOENT;
	}
	if (snap_links_read(&store, &links)) {
		fprintf(stderr, "amber-snap: %s: %s\n", argv[0], store.err);
		return -EIO;
	}
	chain_err = snap_chain(&store, &links, (u32)entry, chain, &chain_n, chain_why,
			       sizeof(chain_why));
	*f = (struct file_src){ disk.fd, store.entry[entry].start_block * SNAP_BLOCK };
	*src = (struct snap_source){ .read = file_read,
				     .size = snap_entry_blocks(&store.entry[entry]) * SNAP_BLOCK,
				     .ctx = f };
	*name = argv[1];
	*used = 2;
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	static u32 order[SNAP_CAT_MAX];
	static u8 depth[SNAP_CAT_MAX];
	u64 free_blocks, largest;

	if (argc != 1)
		return -EINVAL;
	if (open_store(argv[0]))
		return EXIT_USAGE;
	snap_store_space(&store, &free_blocks, &largest);
	printf("%s: %u snapshot%s, %llu KiB free (largest extent %llu KiB), catalog generation %llu "
	       "in copy %c\n",
	       argv[0], store.count, store.count == 1 ? "" : "s",
	       (unsigned long long)free_blocks * 4, (unsigned long long)largest * 4,
	       (unsigned long long)store.generation, 'A' + store.cur);
	for (int c = 0; c < 2; c++)
		if (!store.copy[c].ok)
			printf("  note: catalog copy %c is not in use: %s\n", 'A' + c,
			       store.copy[c].why);
	if (store.damaged)
		printf("WARNING: catalog damaged; data area scanned: %s\n", store.note);
	if (store.count)
		printf("  %-20s %-12s %3s %9s %12s  %-19s  %10s %s\n", "NAME", "VM IMAGE", "CPU",
		       "RAM(KiB)", "IMAGE(bytes)", "SAVED (RTC)", "OFFSET", "SEQ STATE");
	if (snap_links_read(&store, &links)) {
		fprintf(stderr, "amber-snap: %s: %s\n", argv[0], store.err);
		return EXIT_USAGE;
	}
	snap_links_tree(&links, order, depth);
	for (u32 k = 0; k < store.count; k++) {
		u32 i = order[k];
		const struct snap_entry *e = &store.entry[i];
		int ok = snap_store_check_entry(&store, i);
		char when[32], name[64];

		/* Children under their parent, as `snap list` shows them. */
		snprintf(name, sizeof(name), "%*s%s%s%s", depth[k] > 1 ? 2 * (depth[k] - 1) : 0, "",
			 depth[k] ? "`-" : "", e->name, snap_link_mark(&links, i));
		snap_format_time(when, sizeof(when), e->wall);
		printf("  %-20s %-12s %3u %9llu %12llu  %-19s  %10llu #%llu %s\n", name,
		       e->vm_image[0] ? e->vm_image : "?", e->vcpus,
		       (unsigned long long)e->memory_pages * 4, (unsigned long long)e->size, when,
		       (unsigned long long)e->start_block * SNAP_BLOCK, (unsigned long long)e->seq,
		       ok < 0				? "unreadable" :
		       !ok				? "DAMAGED" :
		       e->state == SNAP_STATE_RECOVERED ? "recovered" :
							  "complete");
	}
	return 0;
}

/* A source over catalog entry i of the open store. */
static void entry_source(u32 i, struct snap_source *src, struct file_src *f)
{
	*f = (struct file_src){ disk.fd, store.entry[i].start_block * SNAP_BLOCK };
	*src = (struct snap_source){ .read = file_read,
				     .size = snap_entry_blocks(&store.entry[i]) * SNAP_BLOCK,
				     .ctx = f };
}

/* verify of the images below the one named: each one's every CRC. Returns
 * 0, -EBADMSG or an errno. */
static int verify_ancestors(void)
{
	int worst = 0;

	for (u32 k = 1; k < chain_n; k++) {
		struct snap_report rep = { .emit = print_problem };
		const char *name = store.entry[chain[k]].name;
		struct snap_source src;
		struct file_src f;
		int ret;

		entry_source((u32)chain[k], &src, &f);
		ret = snap_image_open(&src, &base_parsed, &rep);
		if (ret == 0 || ret == -EBADMSG) {
			int ret2 = snap_image_check_pages(&src, &base_parsed, &rep, NULL, NULL);

			ret = ret2 ? ret2 : ret;
		}
		if (!ret && crc32c(0, base_parsed.hdr_raw, SNAP_HEADER_SIZE) !=
				    store.entry[chain[k]].header_crc)
			ret = -EBADMSG;
		if (!ret)
			printf("%s: intact: header, %u sections and %llu stored pages, every CRC32C "
			       "matches\n",
			       name, base_parsed.nsections,
			       (unsigned long long)(snap_image_page_bytes(&base_parsed) /
						    PAGE_SIZE));
		else
			printf("%s: damaged: %d problem%s\n", name, rep.errors,
			       rep.errors == 1 ? "" : "s");
		snap_image_close(&base_parsed);
		if (ret && (!worst || ret != -EBADMSG))
			worst = ret;
	}
	return worst;
}

/* info and verify: describe, or check every CRC (and a child's chain). */
static int cmd_check(int argc, char **argv, bool verify)
{
	struct snap_report rep = { .emit = print_problem };
	struct snap_source src;
	struct file_src f;
	const char *name;
	int used, ret;

	ret = open_image(argc, argv, &used, &src, &f, &name);
	if (ret == -EINVAL || (!ret && used != argc))
		return -EINVAL;
	if (ret)
		return EXIT_USAGE;
	ret = snap_image_open(&src, &parsed, &rep);
	if (!verify && (ret == 0 || ret == -EBADMSG))
		snap_image_describe(&src, &parsed, print_line, NULL);
	if (verify && (ret == 0 || ret == -EBADMSG)) {
		int ret2 = snap_image_check_pages(&src, &parsed, &rep, NULL, NULL);

		if (ret2)
			ret = ret2;
	}
	if (verify && parsed.child && used == 1)
		printf("%s: a child of '%s'; its chain is not in this file (amber-snap verify "
		       "DISK.img NAME checks it)\n",
		       name, parsed.parent.name);
	if (verify && used == 2 && chain_err) {
		printf("%s: chain broken: %s\n", name, chain_why);
		if (!ret)
			ret = -EBADMSG;
	}
	if (verify && !ret)
		printf("%s: intact: header, %u sections and %llu stored pages, every CRC32C matches\n",
		       name, parsed.nsections,
		       (unsigned long long)(snap_image_page_bytes(&parsed) / PAGE_SIZE));
	else if (ret == -EBADMSG && rep.errors)
		printf("%s: damaged: %d problem%s\n", name, rep.errors, rep.errors == 1 ? "" : "s");
	else if (ret)
		fprintf(stderr, "amber-snap: %s: cannot read the image (%s)\n", name,
			errno_name(ret));
	snap_image_close(&parsed);
	if (verify && used == 2 && chain_n > 1) {
		int ret2 = verify_ancestors();

		if (!ret && !ret2)
			printf("%s: the chain is intact: %u images down to the full '%s'\n", name,
			       chain_n, store.entry[chain[chain_n - 1]].name);
		ret = ret ? ret : ret2;
	}
	return ret == -EBADMSG ? EXIT_DAMAGED : ret ? EXIT_USAGE : 0;
}

/* "-o FILE" at the end of the arguments; returns FILE, argc reduced. */
static const char *output_arg(int *argc, char **argv)
{
	if (*argc < 2 || strcmp(argv[*argc - 2], "-o"))
		return NULL;
	*argc -= 2;
	return argv[*argc + 1];
}

static int cmd_extract(int argc, char **argv)
{
	const char *out = output_arg(&argc, argv);
	const struct snap_entry *e;
	u8 *buf;
	int fd, entry;

	if (!out || argc != 2)
		return -EINVAL;
	if (open_store(argv[0]))
		return EXIT_USAGE;
	entry = snap_store_find(&store, argv[1]);
	if (entry < 0) {
		fprintf(stderr, "amber-snap: no snapshot '%s' in %s\n", argv[1], argv[0]);
		return EXIT_USAGE;
	}
	e = &store.entry[entry];
	buf = malloc(1 << 20);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (!buf || fd < 0) {
		fprintf(stderr, "amber-snap: %s: %s\n", out, strerror(errno));
		return EXIT_USAGE;
	}
	for (u64 off = 0; off < e->size; off += 1 << 20) {
		u64 n = e->size - off < (1 << 20) ? e->size - off : (1 << 20);

		if (pread(disk.fd, buf, n, (off_t)(e->start_block * SNAP_BLOCK + off)) !=
			    (ssize_t)n ||
		    write(fd, buf, n) != (ssize_t)n) {
			fprintf(stderr, "amber-snap: copying to %s: %s\n", out, strerror(errno));
			return EXIT_USAGE;
		}
	}
	close(fd);
	free(buf);
	printf("%s: %llu bytes from byte %llu of %s (same as: dd if=%s of=%s bs=4096 skip=%llu "
	       "count=%llu)\n",
	       out, (unsigned long long)e->size, (unsigned long long)e->start_block * SNAP_BLOCK,
	       argv[0], argv[0], out, (unsigned long long)e->start_block,
	       (unsigned long long)snap_entry_blocks(e));
	return 0;
}

/* snapcore_base_fn: the images below the child, full image first, each
 * page's CRC checked as it lands; a child leaves its parent's pages. */
static int load_ancestors(void *ctx, snap_page_fn page, void *pctx)
{
	for (u32 k = chain_n; k-- > 1;) {
		struct snap_report rep = { .emit = print_problem };
		struct snap_source src;
		struct file_src f;
		int ret;

		entry_source((u32)chain[k], &src, &f);
		ret = snap_image_open(&src, &base_parsed, &rep);
		if (!ret)
			ret = snap_image_load_pages(&src, &base_parsed, page, pctx, &rep, NULL,
						    NULL);
		snap_image_close(&base_parsed);
		if (ret) {
			fprintf(stderr,
				"amber-snap: '%s' (in the chain) is damaged; no core written\n",
				store.entry[chain[k]].name);
			return ret;
		}
	}
	return 0;
}

static int cmd_core(int argc, char **argv)
{
	const char *out = output_arg(&argc, argv);
	struct snap_report rep = { .emit = print_problem };
	struct snap_source src;
	struct file_src f;
	const char *name;
	int used, ret;

	if (!out)
		return -EINVAL;
	ret = open_image(argc, argv, &used, &src, &f, &name);
	if (ret == -EINVAL || (!ret && used != argc))
		return -EINVAL;
	if (ret)
		return EXIT_USAGE;
	ret = snap_image_open(&src, &parsed, &rep);
	if (!ret)
		ret = snap_image_check_pages(&src, &parsed, &rep, NULL, NULL);
	if (ret) {
		fprintf(stderr,
			"amber-snap: %s is damaged; no core written (amber-snap verify names "
			"the problems)\n",
			name);
		snap_image_close(&parsed);
		return EXIT_DAMAGED;
	}
	if (parsed.child && (used == 1 || chain_err)) {
		fprintf(stderr, "amber-snap: %s is a child of '%s' and %s; no core written\n", name,
			parsed.parent.name,
			used == 1 ? "its chain is not in this file (give DISK.img NAME)" :
				    chain_why);
		snap_image_close(&parsed);
		return EXIT_DAMAGED;
	}
	ret = snapcore_write(&src, &parsed, out, parsed.child ? load_ancestors : NULL, NULL);
	if (!ret)
		printf("%s: ELF core of '%s': %u vCPU%s, %llu MiB of guest memory at guest-physical "
		       "addresses (gdb -c %s)\n",
		       out, name, parsed.hdr.vcpu_count, parsed.hdr.vcpu_count == 1 ? "" : "s",
		       (unsigned long long)(parsed.hdr.memory_pages * PAGE_SIZE >> 20), out);
	snap_image_close(&parsed);
	return ret ? EXIT_USAGE : 0;
}

int main(int argc, char **argv)
{
	int ret = -EINVAL;

	if (argc >= 2 && !strcmp(argv[1], "list"))
		ret = cmd_list(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "info"))
		ret = cmd_check(argc - 2, argv + 2, false);
	else if (argc >= 2 && !strcmp(argv[1], "verify"))
		ret = cmd_check(argc - 2, argv + 2, true);
	else if (argc >= 2 && !strcmp(argv[1], "extract"))
		ret = cmd_extract(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "core"))
		ret = cmd_core(argc - 2, argv + 2);
	if (ret == -EINVAL) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return ret;
}
