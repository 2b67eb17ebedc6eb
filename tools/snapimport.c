/*
 * amber-snap import: checks an extracted image (every CRC, as `verify`),
 * then writes it into a free extent of the disk's store and commits a
 * catalog entry for it with snap_store_add, the commit of `snap save`: until
 * the new catalog is written the old one describes the disk, so a crash or
 * a refusal leaves it as it was. Host only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernel/lib.h"
#include "snapshot/chain.h"
#include "snapshot/image.h"
#include "snapshot/store.h"
#include "tools/hostdisk.h"
#include "tools/snapimport.h"

#define CHUNK (256 * SNAP_BLOCK)

bool snapimport_format;

static struct hostdisk disk;
static struct snap_store store;
static struct snap_links links;
static struct snap_parsed parsed;

struct imp_src {
	int fd;
};

static int imp_read(struct snap_source *src, u64 off, void *buf, u64 len)
{
	struct imp_src *f = src->ctx;
	ssize_t n;

	if (off > src->size || len > src->size - off)
		return -ERANGE;
	n = pread(f->fd, buf, len, (off_t)off);
	return n == (ssize_t)len ? 0 : -EIO;
}

void snaptool_wrap(void *fp, const char *prefix, const char *text)
{
	FILE *f = fp;
	size_t col = strlen(prefix);

	fputs(prefix, f);
	while (*text) {
		size_t n = strcspn(text, " ");

		if (col > 4 && col + 1 + n > 80) {
			fputs("\n   ", f);
			col = 3;
		}
		fputc(' ', f);
		fwrite(text, 1, n, f);
		col += 1 + n;
		text += n;
		while (*text == ' ')
			text++;
	}
	fputc('\n', f);
}

static void imp_problem(struct snap_report *r, const char *line)
{
	snaptool_wrap(stderr, "  damaged:", line);
}

/* A name `snap restore` can be given: 1-31 printable bytes, no blank,
 * not an option. */
static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n >= sizeof(((struct snap_entry *)0)->name) || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

/* Checks the image in fd like `verify` (header, every section and chunk
 * CRC) and that the file is the image, no more, no less. Returns 0 or the
 * exit status after a message. */
static int check_image(const char *file, struct snap_source *src)
{
	struct snap_report rep = { .emit = imp_problem };
	int ret;

	ret = snap_image_open(src, &parsed, &rep);
	if (ret == 0 || ret == -EBADMSG) {
		int ret2 = snap_image_check_pages(src, &parsed, &rep, NULL, NULL);

		ret = ret ? ret : ret2;
	}
	if (!ret && parsed.hdr.total_size != src->size) {
		fprintf(stderr, "  damaged: the file has %llu bytes, its header says %llu\n",
			(unsigned long long)src->size, (unsigned long long)parsed.hdr.total_size);
		ret = -EBADMSG;
	}
	if (ret == -ERANGE) /* a read past the end of the file */
		fprintf(stderr, "  damaged: the file ends before the image does\n");
	if (ret == -EBADMSG || ret == -ERANGE) {
		fprintf(stderr, "amber-snap: %s is damaged; nothing imported\n", file);
		return 1;
	}
	if (ret) {
		fprintf(stderr, "amber-snap: %s: cannot read the image (%s)\n", file,
			errno_name(ret));
		return 2;
	}
	return 0;
}

/* Refuses (with a message) a disk image another program holds: QEMU keeps
 * an open disk image locked (open file description locks, F_OFD_SETLK). */
static bool in_use(const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (!fcntl(disk.fd, F_OFD_SETLK, &fl))
		return false;
	fprintf(stderr,
		"amber-snap: %s is in use by another program (QEMU?);\n"
		"  stop it first, nothing imported\n",
		path);
	return true;
}

/* Opens the store of `path` for writing, or formats a blank disk when
 * --format says so (not for a child, whose parent it cannot hold). Returns 0 or the exit status after a message. */
static int open_store_rw(const char *path, const char *name)
{
	int ret;
	u64 id;

	if (hostdisk_open(&disk, path, true))
		return 2;
	if (in_use(path))
		return 2;
	ret = snap_store_open(&store, &disk.dev);
	if (ret == -ENODATA && snapimport_format && parsed.child) {
		fprintf(stderr,
			"amber-snap: '%s' is a child of '%s', which is not on %s\n"
			"  (it holds no store): not formatted, nothing imported\n",
			name, parsed.parent.name, path);
		return 2;
	}
	if (ret == -ENODATA && snapimport_format) {
		if (snap_store_blank(&store, &disk.dev) != 1) {
			fprintf(stderr,
				"amber-snap: %s holds no snapshot store and is not blank\n"
				"  (its first MiB is not all zero): not formatted, nothing "
				"imported\n",
				path);
			return 2;
		}
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (u64)getpid() << 32 ^ (u64)time(NULL);
		ret = snap_store_format(&store, &disk.dev, id);
		if (!ret)
			ret = snap_store_open(&store, &disk.dev);
		if (!ret)
			printf("%s: formatted an empty snapshot store\n", path);
	} else if (ret == -ENODATA) {
		fprintf(stderr,
			"amber-snap: %s holds no snapshot store; --format creates one\n"
			"  on a blank disk image (nothing imported)\n",
			path);
		return 2;
	}
	if (ret) {
		fprintf(stderr, "amber-snap: %s: %s; nothing imported\n", path, store.err);
		return 2;
	}
	if (store.damaged) {
		fprintf(stderr,
			"amber-snap: %s: the catalog is damaged (%s);\n"
			"  let Amber repair it first, nothing imported\n",
			path, store.note);
		return 2;
	}
	return 0;
}

/* The image must fit the store's chains: its id new on the disk, and a
 * child's parent there (by image id and header CRC, as snap restore finds
 * it). Returns 0 or 2 after a message. */
static int check_links(const char *path, const char *name)
{
	int parent = -1;

	if (snap_links_read(&store, &links)) {
		fprintf(stderr, "amber-snap: %s: %s\n", path, store.err);
		return 2;
	}
	for (u32 i = 0; i < store.count; i++) {
		const struct snap_link *l = &links.link[i];

		if (parsed.info.image_id && l->image_id == parsed.info.image_id &&
		    l->header_crc == parsed.info.header_crc) {
			fprintf(stderr,
				"amber-snap: this image is on %s already as '%s';\n"
				"  nothing imported\n",
				path, store.entry[i].name);
			return 2;
		}
		if (parsed.child && l->image_id == parsed.parent.image_id &&
		    l->header_crc == parsed.parent.header_crc)
			parent = (int)i;
	}
	if (parsed.child && parent < 0) {
		fprintf(stderr,
			"amber-snap: '%s' is a child of '%s', which is not on %s;\n"
			"  import its parent first (the chain down to a full image)\n",
			name, parsed.parent.name, path);
		return 2;
	}
	return 0;
}

/* Copies the image into blocks [start, ...) of the store, the last block
 * padded with zeros. */
static int copy_in(int fd, u64 size, u64 start)
{
	static u8 buf[CHUNK] __aligned(SNAP_BLOCK);

	for (u64 off = 0; off < size; off += CHUNK) {
		u64 n = size - off < CHUNK ? size - off : CHUNK;
		u64 blocks = (n + SNAP_BLOCK - 1) / SNAP_BLOCK;
		int ret;

		memset(buf + n, 0, blocks * SNAP_BLOCK - n);
		if (pread(fd, buf, n, (off_t)off) != (ssize_t)n)
			return -EIO;
		ret = snap_store_write(&store, start + off / SNAP_BLOCK, blocks, buf);
		if (ret)
			return ret;
	}
	return 0;
}

int snapimport(const char *path, const char *file, const char *name)
{
	struct snap_entry e = { 0 };
	struct snap_source src;
	struct imp_src f;
	struct stat st;
	char magic[4] = { 0 }, size[32];
	int ret;

	disk.fd = -1;
	if (!name_ok(name)) {
		fprintf(stderr,
			"amber-snap: '%s' is not a snapshot name (1-31 printable\n"
			"  characters, no blanks, not starting with '-')\n",
			name);
		return 2;
	}
	f.fd = open(file, O_RDONLY);
	if (f.fd < 0 || fstat(f.fd, &st) < 0) {
		fprintf(stderr, "amber-snap: %s: %s\n", file, strerror(errno));
		if (f.fd >= 0)
			close(f.fd);
		return 2;
	}
	if (pread(f.fd, magic, 4, 0) != 4 || memcmp(magic, "SNAP", 4)) {
		fprintf(stderr,
			"amber-snap: %s is not a snapshot image (amber-snap extract\n"
			"  writes one); nothing imported\n",
			file);
		close(f.fd);
		return 2;
	}
	src = (struct snap_source){ .read = imp_read, .size = (u64)st.st_size, .ctx = &f };
	ret = check_image(file, &src);
	if (!ret)
		ret = open_store_rw(path, name);
	if (!ret && snap_store_find(&store, name) >= 0) {
		fprintf(stderr, "amber-snap: a snapshot '%s' exists on %s; nothing imported\n",
			name, path);
		ret = 2;
	}
	if (!ret)
		ret = check_links(path, name);
	if (!ret && snap_store_alloc(&store, src.size, &e.start_block)) {
		format_size(size, sizeof(size), src.size);
		fprintf(stderr, "amber-snap: %s has no free extent of %s; nothing imported\n", path,
			size);
		ret = 2;
	}
	if (ret)
		goto out;
	strlcpy(e.name, name, sizeof(e.name));
	strlcpy(e.vm_image, parsed.dev.image, sizeof(e.vm_image));
	e.size = src.size;
	e.ticks = parsed.hdr.timestamp;
	e.wall = (u64)st.st_mtime;
	e.memory_pages = parsed.hdr.memory_pages;
	e.header_crc = parsed.info.header_crc;
	e.vm_id = (u16)parsed.hdr.vm_id;
	e.vcpus = (u16)parsed.hdr.vcpu_count;
	if (copy_in(f.fd, src.size, e.start_block) || snap_store_add(&store, &e)) {
		fprintf(stderr, "amber-snap: %s: %s;\n  %s\n", path,
			store.err[0] ? store.err : "reading the image failed",
			store.unsure ? "the new catalog may or may not be on the disk" :
				       "the catalog is as it was, nothing imported");
		ret = 2;
		goto out;
	}
	format_size(size, sizeof(size), src.size);
	printf("%s: imported '%s' (%s, %s) at byte %llu\n", path, name, size,
	       parsed.child ? "incremental" : "full image",
	       (unsigned long long)e.start_block * SNAP_BLOCK);
out:
	snap_image_close(&parsed);
	close(f.fd);
	if (disk.fd >= 0)
		hostdisk_close(&disk); /* and its lock */
	return ret;
}
