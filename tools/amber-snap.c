/*
 * amber-snap: Amber's snapshots on the build host. Reads a disk image that
 * Amber wrote snapshots to (or one image cut out of it) with the very same
 * format and store code the kernel runs: list, info, verify, extract, core;
 * for an incremental snapshot, its whole chain; --json for list/info/verify.
 * Host only; opens the disk image read-only (import: tools/snapimport.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/json.h"
#include "kernel/lib.h"
#include "snapshot/chain.h"
#include "snapshot/image.h"
#include "snapshot/store.h"
#include "tools/hostdisk.h"
#include "tools/snapcore.h"
#include "tools/snapimport.h"

#define EXIT_DAMAGED 1 /* verify found a problem */
#define EXIT_USAGE 2   /* bad arguments, missing file or snapshot */

static const char usage[] =
	"usage: amber-snap list DISK.img [--json]\n"
	"       amber-snap info DISK.img NAME [--json]\n"
	"       amber-snap verify DISK.img NAME [--json]\n"
	"       amber-snap extract DISK.img NAME -o FILE [-f]\n"
	"       amber-snap core DISK.img NAME -o FILE [-f]\n"
	"       amber-snap import DISK.img FILE NAME [--format]\n"
	"info, verify and core also take an extracted image instead of DISK.img NAME;\n"
	"for an incremental snapshot, verify and core need DISK.img NAME (its chain).\n"
	"-f overwrites an existing FILE; --json prints one JSON object on stdout.\n"
	"import copies an extracted image into DISK.img's store under NAME, after\n"
	"checking every CRC; --format first creates a store on a blank DISK.img.\n"
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
static int cur_entry = -1; /* the catalog entry open_image found, or -1 */
static char chain_why[160];

/* Options from anywhere on the command line. */
static bool opt_json, opt_force;
/* --json: the one object printed at the end; problems gathered for it. */
static char json_buf[1 << 20];
static struct json J;
static struct {
	char line[32][160];
	int n;
} probs;

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

static void print_line(void *ctx, const char *line)
{
	if (opt_json)
		json_str(&J, NULL, line);
	else
		printf("%s\n", line);
}

static void print_problem(struct snap_report *r, const char *line)
{
	if (!opt_json)
		snaptool_wrap(stdout, "  damaged:", line);
	else if (probs.n < (int)ARRAY_SIZE(probs.line))
		snprintf(probs.line[probs.n++], sizeof(probs.line[0]), "%s", line);
}

/* The gathered problems as the array "problems", emptied. */
static void json_problems(void)
{
	json_arr_begin(&J, "problems");
	for (int i = 0; i < probs.n; i++)
		json_str(&J, NULL, probs.line[i]);
	json_arr_end(&J);
	probs.n = 0;
}

/* Ends the --json object and prints it; 2 if it did not fit. */
static int json_finish(int ret)
{
	json_obj_end(&J);
	if (J.overflow) {
		fprintf(stderr, "amber-snap: the JSON answer is over %zu bytes\n",
			sizeof(json_buf));
		return EXIT_USAGE;
	}
	printf("%s\n", json_buf);
	return ret;
}

static const char *entry_state(u32 i)
{
	int ok = snap_store_check_entry(&store, i);

	if (ok < 0)
		return "unreadable";
	if (!ok)
		return "DAMAGED";
	return store.entry[i].state == SNAP_STATE_RECOVERED ? "recovered" : "complete";
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
	cur_entry = entry;
	*f = (struct file_src){ disk.fd, store.entry[entry].start_block * SNAP_BLOCK };
	*src = (struct snap_source){ .read = file_read,
				     .size = snap_entry_blocks(&store.entry[entry]) * SNAP_BLOCK,
				     .ctx = f };
	*name = argv[1];
	*used = 2;
	return 0;
}

/* list --json: the store and each entry, keys as the control channel's
 * `snap list` plus where each image lies. */
static void list_json(const char *path, const u32 *order)
{
	u64 free_blocks, largest;
	char dd[64];

	snap_store_space(&store, &free_blocks, &largest);
	json_str(&J, "disk", path);
	json_u64(&J, "free", free_blocks * SNAP_BLOCK);
	json_u64(&J, "largest_free", largest * SNAP_BLOCK);
	json_u64(&J, "generation", store.generation);
	json_bool(&J, "damaged", store.damaged);
	json_arr_begin(&J, "snapshots");
	for (u32 k = 0; k < store.count; k++) {
		const struct snap_entry *e = &store.entry[order[k]];

		json_obj_begin(&J, NULL);
		json_str(&J, "name", e->name);
		json_str(&J, "vm_image", e->vm_image);
		json_u64(&J, "vm", e->vm_id);
		json_u64(&J, "vcpus", e->vcpus);
		json_u64(&J, "memory", e->memory_pages * PAGE_SIZE);
		json_u64(&J, "size", e->size);
		json_u64(&J, "wall", e->wall);
		json_u64(&J, "seq", e->seq);
		json_u64(&J, "offset", e->start_block * SNAP_BLOCK);
		snap_entry_dd(dd, sizeof(dd), e);
		json_str(&J, "dd", dd);
		json_str(&J, "state", entry_state(order[k]));
		if (links.parent[order[k]] >= 0)
			json_str(&J, "parent", store.entry[links.parent[order[k]]].name);
		json_obj_end(&J);
	}
	json_arr_end(&J);
}

/* list: a summary line, then one row per snapshot in 80 columns, the
 * table of the shell's `snap list` (children under their parents). */
static int cmd_list(int argc, char **argv)
{
	static u32 order[SNAP_CAT_MAX];
	static u8 depth[SNAP_CAT_MAX];
	char used[32], free_s[32], big[32], size[32], mem[32];
	u64 free_blocks, largest, used_bytes = 0;

	if (argc != 1)
		return -EINVAL;
	if (open_store(argv[0]))
		return EXIT_USAGE;
	if (snap_links_read(&store, &links)) {
		fprintf(stderr, "amber-snap: %s: %s\n", argv[0], store.err);
		return EXIT_USAGE;
	}
	snap_links_tree(&links, order, depth);
	if (opt_json) {
		list_json(argv[0], order);
		return json_finish(0);
	}
	snap_store_space(&store, &free_blocks, &largest);
	for (u32 i = 0; i < store.count; i++)
		used_bytes += snap_entry_blocks(&store.entry[i]) * SNAP_BLOCK;
	format_size(used, sizeof(used), used_bytes);
	format_size(free_s, sizeof(free_s), free_blocks * SNAP_BLOCK);
	format_size(big, sizeof(big), largest * SNAP_BLOCK);
	printf("%s: %u snapshot%s, %s used, %s free\n", argv[0], store.count,
	       store.count == 1 ? "" : "s", used, free_s);
	printf("  largest free extent %s; catalog generation %llu in copy %c\n", big,
	       (unsigned long long)store.generation, 'A' + store.cur);
	for (int c = 0; c < 2; c++)
		if (!store.copy[c].ok)
			printf("  note: catalog copy %c is not in use: %s\n", 'A' + c,
			       store.copy[c].why);
	if (store.damaged)
		printf("WARNING: catalog damaged; data area scanned: %s\n", store.note);
	if (store.count)
		printf("  %-16s %-10s %8s %9s %-19s %s\n", "NAME", "VM IMAGE", "RAM", "SIZE",
		       "SAVED (RTC)", "STATE");
	for (u32 k = 0; k < store.count; k++) {
		u32 i = order[k];
		const struct snap_entry *e = &store.entry[i];
		char when[32], tree[64];
		const char *name = tree;

		snprintf(tree, sizeof(tree), "%*s%s%s%s", depth[k] > 1 ? 2 * (depth[k] - 1) : 0, "",
			 depth[k] ? "`-" : "", e->name, snap_link_mark(&links, i));
		snap_format_time(when, sizeof(when), e->wall);
		format_size(size, sizeof(size), e->size);
		format_size(mem, sizeof(mem), e->memory_pages * PAGE_SIZE);
		if (strlen(name) > 16) {
			printf("  %s\n", name);
			name = "";
		}
		printf("  %-16s %-10.10s %8s %9s %-19s %s\n", name,
		       e->vm_image[0] ? e->vm_image : "?", mem, size, when, entry_state(i));
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

/* verify of the images below the one named: each one's every CRC (for
 * --json, the array "chain" of them). Returns 0, -EBADMSG or an errno. */
static int verify_ancestors(void)
{
	int worst = 0;

	if (opt_json)
		json_arr_begin(&J, "chain");
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
		if (opt_json) {
			json_obj_begin(&J, NULL);
			json_str(&J, "name", name);
			json_bool(&J, "intact", !ret);
			json_problems();
			json_obj_end(&J);
		} else if (!ret)
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
	if (opt_json)
		json_arr_end(&J);
	return worst;
}

/* info of a snapshot in a store: where it lies, as the shell's `snap info`
 * says it (the same dd line). */
static void info_entry(const char *disk_path, u32 i)
{
	const struct snap_entry *e = &store.entry[i];
	char size[32], dd[64];

	snap_entry_dd(dd, sizeof(dd), e);
	if (opt_json) {
		json_str(&J, "disk", disk_path);
		json_u64(&J, "size", e->size);
		json_u64(&J, "offset", e->start_block * SNAP_BLOCK);
		json_u64(&J, "seq", e->seq);
		json_u64(&J, "wall", e->wall);
		json_str(&J, "dd", dd);
		json_str(&J, "state", entry_state(i));
		return;
	}
	format_size(size, sizeof(size), e->size);
	printf("snapshot '%s' in %s: %s\n", e->name, disk_path, size);
	printf("  where:   blocks %llu-%llu (byte offset %llu, %llu bytes)\n",
	       (unsigned long long)e->start_block,
	       (unsigned long long)(e->start_block + snap_entry_blocks(e) - 1),
	       (unsigned long long)(e->start_block * SNAP_BLOCK), (unsigned long long)e->size);
	printf("  copy:    %s\n", dd);
	printf("  catalog: %s; generation %llu in copy %c, sequence #%llu\n", entry_state(i),
	       (unsigned long long)store.generation, 'A' + store.cur, (unsigned long long)e->seq);
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
	if (opt_json)
		json_str(&J, "name", name);
	if (!verify && used == 2)
		info_entry(argv[0], (u32)cur_entry);
	ret = snap_image_open(&src, &parsed, &rep);
	if (opt_json && (ret == 0 || ret == -EBADMSG)) {
		json_str(&J, "vm_image", parsed.dev.image);
		json_u64(&J, "vcpus", parsed.hdr.vcpu_count);
		json_u64(&J, "memory", parsed.hdr.memory_pages * PAGE_SIZE);
		json_u64(&J, "image_size", src.size);
		if (parsed.child)
			json_str(&J, "parent", parsed.parent.name);
	}
	if (!verify && (ret == 0 || ret == -EBADMSG)) {
		if (opt_json)
			json_arr_begin(&J, "describe");
		snap_image_describe(&src, &parsed, print_line, NULL);
		if (opt_json)
			json_arr_end(&J);
	}
	if (verify && (ret == 0 || ret == -EBADMSG)) {
		int ret2 = snap_image_check_pages(&src, &parsed, &rep, NULL, NULL);

		if (ret2)
			ret = ret2;
	}
	if (opt_json) {
		json_str(&J, "status",
			 !ret		 ? "intact" :
			 ret == -EBADMSG ? "damaged" :
					   "unreadable");
		json_problems();
		if (verify && !ret) {
			json_u64(&J, "sections", parsed.nsections);
			json_u64(&J, "pages", snap_image_page_bytes(&parsed) / PAGE_SIZE);
		}
		if (verify && used == 2 && chain_err)
			json_str(&J, "chain_broken", chain_why);
	}
	if (opt_json) {
		/* stderr below says the rest */
	} else if (verify && parsed.child && used == 1)
		printf("%s: a child of '%s'; its chain is not in this file (amber-snap verify "
		       "DISK.img NAME checks it)\n",
		       name, parsed.parent.name);
	if (verify && used == 2 && chain_err) {
		if (!opt_json)
			printf("%s: chain broken: %s\n", name, chain_why);
		if (!ret)
			ret = -EBADMSG;
	}
	if (opt_json)
		;
	else if (verify && !ret)
		printf("%s: intact: header, %u sections and %llu stored pages, every CRC32C matches\n",
		       name, parsed.nsections,
		       (unsigned long long)(snap_image_page_bytes(&parsed) / PAGE_SIZE));
	else if (ret == -EBADMSG && rep.errors)
		printf("%s: damaged: %d problem%s\n", name, rep.errors, rep.errors == 1 ? "" : "s");
	if (ret && ret != -EBADMSG)
		fprintf(stderr, "amber-snap: %s: cannot read the image (%s)\n", name,
			errno_name(ret));
	snap_image_close(&parsed);
	if (verify && used == 2 && chain_n > 1) {
		int ret2 = verify_ancestors();

		if (!ret && !ret2 && !opt_json)
			printf("%s: the chain is intact: %u images down to the full '%s'\n", name,
			       chain_n, store.entry[chain[chain_n - 1]].name);
		ret = ret ? ret : ret2;
	}
	if (verify && opt_json)
		json_bool(&J, "intact", !ret);
	ret = ret == -EBADMSG ? EXIT_DAMAGED : ret ? EXIT_USAGE : 0;
	return opt_json ? json_finish(ret) : ret;
}

/* "-o FILE" at the end of the arguments; returns FILE, argc reduced. */
static const char *output_arg(int *argc, char **argv)
{
	if (*argc < 2 || strcmp(argv[*argc - 2], "-o"))
		return NULL;
	*argc -= 2;
	return argv[*argc + 1];
}

/* Without -f, an existing FILE is kept: true (after a message) if so. */
static bool refuse_overwrite(const char *out)
{
	struct stat st;

	if (opt_force || lstat(out, &st))
		return false;
	fprintf(stderr, "amber-snap: %s exists; give -f to overwrite it\n", out);
	return true;
}

static int cmd_extract(int argc, char **argv)
{
	const char *out = output_arg(&argc, argv);
	const struct snap_entry *e;
	char size[32], dd[64];
	u8 *buf;
	int fd, entry;

	if (!out || argc != 2)
		return -EINVAL;
	if (refuse_overwrite(out))
		return EXIT_USAGE;
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
	format_size(size, sizeof(size), e->size);
	snap_entry_dd(dd, sizeof(dd), e);
	printf("%s: %s (%llu bytes) from byte %llu of %s\n", out, size, (unsigned long long)e->size,
	       (unsigned long long)e->start_block * SNAP_BLOCK, argv[0]);
	printf("  the same as: %s if=%s of=%s\n", dd, argv[0], out);
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
	struct snapcore_info ci = { 0 };
	struct snap_report rep = { .emit = print_problem };
	struct snap_source src;
	struct file_src f;
	const char *name;
	int used, ret;

	if (!out)
		return -EINVAL;
	if (refuse_overwrite(out))
		return EXIT_USAGE;
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
	ret = snapcore_write(&src, &parsed, out, &ci, parsed.child ? load_ancestors : NULL, NULL);
	if (!ret) {
		char mem[32];

		format_size(mem, sizeof(mem), parsed.hdr.memory_pages * PAGE_SIZE);
		printf("%s: ELF core of '%s': %u vCPU%s, %s of guest memory\n", out, name,
		       parsed.hdr.vcpu_count, parsed.hdr.vcpu_count == 1 ? "" : "s", mem);
		printf("  at guest-physical addresses (gdb -c %s)\n", out);
		if (ci.mode == 32)
			printf("  vCPU 0 runs 32-bit code: an i386 core\n");
		else if (ci.mode == 16)
			printf("  vCPU 0 runs 16-bit code (%s): an i386 core;\n"
			       "  in gdb, 'set architecture i8086' decodes it\n",
			       ci.real ? "real mode" : "a 16-bit segment");
	}
	snap_image_close(&parsed);
	return ret ? EXIT_USAGE : 0;
}

/* Takes the options out of argv (anywhere after the command); returns the
 * arguments left, or -1 for an unknown option. */
static int take_options(int argc, char **argv, bool *help)
{
	int n = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			opt_json = true;
		else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force"))
			opt_force = true;
		else if (!strcmp(argv[i], "--format"))
			snapimport_format = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			*help = true;
		else if (argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "-o")) {
			fprintf(stderr, "amber-snap: unknown option %s\n", argv[i]);
			return -1;
		} else
			argv[n++] = argv[i];
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *cmd;
	bool help = false;
	int ret = -EINVAL;

	argv++; /* the arguments after the program's name */
	argc = take_options(argc - 1, argv, &help);
	if (help) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[0];
	json_init(&J, json_buf, sizeof(json_buf));
	json_obj_begin(&J, NULL);
	if (opt_json && strcmp(cmd, "list") && strcmp(cmd, "info") && strcmp(cmd, "verify")) {
		fprintf(stderr, "amber-snap: --json is for list, info and verify\n");
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "list"))
		ret = cmd_list(argc - 1, argv + 1);
	else if (!strcmp(cmd, "info"))
		ret = cmd_check(argc - 1, argv + 1, false);
	else if (!strcmp(cmd, "verify"))
		ret = cmd_check(argc - 1, argv + 1, true);
	else if (!strcmp(cmd, "extract"))
		ret = cmd_extract(argc - 1, argv + 1);
	else if (!strcmp(cmd, "core"))
		ret = cmd_core(argc - 1, argv + 1);
	else if (!strcmp(cmd, "import"))
		ret = argc == 4 ? snapimport(argv[1], argv[2], argv[3]) : -EINVAL;
	else /* named, as the shell names an unknown subcommand */
		fprintf(stderr, "amber-snap: there is no command '%s'; --help lists them\n", cmd);
	if (ret == -EINVAL) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return ret;
}
