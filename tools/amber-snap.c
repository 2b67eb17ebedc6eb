/*
 * amber-snap: Amber's snapshots on the build host. Reads a disk image that
 * Amber wrote snapshots to (or one image cut out of it) with the very same
 * format and store code the kernel runs: list, info, verify, extract, core.
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
	"info, verify and core also take an extracted image instead of DISK.img NAME.\n"
	"Exit status: 0 fine, 1 the snapshot is damaged, 2 usage or I/O error.\n";

static struct hostdisk disk;
static struct snap_store store;
static struct snap_parsed parsed;

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
	for (u32 i = 0; i < store.count; i++) {
		const struct snap_entry *e = &store.entry[i];
		int ok = snap_store_check_entry(&store, i);
		char when[32];

		snap_format_time(when, sizeof(when), e->wall);
		printf("  %-20s %-12s %3u %9llu %12llu  %-19s  %10llu #%llu %s\n", e->name,
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

/* info and verify: describe, or check every CRC. */
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
	if (verify && !ret)
		printf("%s: intact: header, %u sections and %llu stored pages, every CRC32C matches\n",
		       name, parsed.nsections,
		       (unsigned long long)(snap_image_page_bytes(&parsed) / PAGE_SIZE));
	else if (ret == -EBADMSG)
		printf("%s: damaged: %d problem%s\n", name, rep.errors, rep.errors == 1 ? "" : "s");
	else if (ret)
		fprintf(stderr, "amber-snap: %s: cannot read the image (%s)\n", name,
			errno_name(ret));
	snap_image_close(&parsed);
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
	ret = snapcore_write(&src, &parsed, out);
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
