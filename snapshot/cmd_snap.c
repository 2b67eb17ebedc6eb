/*
 * The `snap` shell command: save, restore, list, info, verify, delete and
 * format, over the snapshot store of one disk (disk=N picks it; by default the
 * first disk holding a store, else the first disk). Host context (the shell).
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "snapshot/chain.h"
#include "snapshot/snap.h"
#include "vmm/vmm.h"

static struct snap_parsed info_parsed;

static const char *entry_state(u32 i)
{
	const struct snap_entry *e = &snap_store.entry[i];
	int ok = snap_store_check_entry(&snap_store, i);

	if (ok < 0)
		return "unreadable";
	if (!ok)
		return "DAMAGED";
	return e->state == SNAP_STATE_RECOVERED ? "recovered" : "complete";
}

/* The name column of entry i as a tree: a child is indented under its
 * parent, one step per level, and a broken link is named. */
static void tree_name(char *buf, size_t len, const struct snap_links *L, u32 i, u32 depth)
{
	const char *mark = L ? snap_link_mark(L, i) : "";

	snprintf(buf, len, "%*s%s%s%s", (int)(depth > 1 ? 2 * (depth - 1) : 0), "",
		 depth ? "`-" : "", snap_store.entry[i].name, mark);
}

/* `snap list`: a summary line of the store, then one aligned row per
 * snapshot in 80 columns, children indented under their parents (`L`, NULL:
 * flat; order[] and depth[] from snap_links_tree). A name too long for its
 * column gets a line of its own. `verbose` adds the catalog's inner figures
 * and each image's sequence number and vCPUs. The whole table is this one
 * function. */
static void list_print(int index, bool verbose, const struct snap_links *L, const u32 *order,
		       const u8 *depth, u32 ntree)
{
	struct snap_store *st = &snap_store;
	char used[32], free_s[32], big[32], size[32], mem[32], when[32];
	u64 free_blocks, largest, used_bytes = 0;

	snap_store_space(st, &free_blocks, &largest);
	for (u32 i = 0; i < st->count; i++)
		used_bytes += snap_entry_blocks(&st->entry[i]) * SNAP_BLOCK;
	format_size(used, sizeof(used), used_bytes);
	format_size(free_s, sizeof(free_s), free_blocks * SNAP_BLOCK);
	format_size(big, sizeof(big), largest * SNAP_BLOCK);
	printk("disk %d (%s): %u snapshot%s, %s used, %s free\n", index, st->dev->name, st->count,
	       st->count == 1 ? "" : "s", used, free_s);
	if (verbose)
		printk("  largest free extent %s; catalog generation %llu in copy %c\n", big,
		       (unsigned long long)st->generation, 'A' + st->cur);
	for (int c = 0; c < 2; c++)
		if (!st->copy[c].ok)
			printk("  note: catalog copy %c is not in use: %s\n", 'A' + c,
			       st->copy[c].why);
	if (!st->count)
		return;
	printk("  %-16s %-10s %8s %9s %-19s %s\n", "NAME", "VM IMAGE", "RAM", "SIZE", "SAVED (RTC)",
	       "STATE");
	for (u32 k = 0; k < st->count; k++) {
		u32 i = L ? order[k] : k;
		const struct snap_entry *e = &st->entry[i];
		char tree[64];
		const char *name = tree;

		tree_name(tree, sizeof(tree), L, i, L && k < ntree ? depth[k] : 0);
		format_size(size, sizeof(size), e->size);
		format_size(mem, sizeof(mem), e->memory_pages * PAGE_SIZE);
		snap_format_time(when, sizeof(when), e->wall);
		if (strlen(name) > 16) {
			printk("  %s\n", name);
			name = "";
		}
		printk("  %-16s %-10.10s %8s %9s %-19s %s\n", name,
		       e->vm_image[0] ? e->vm_image : "?", mem, size, when, entry_state(i));
		if (verbose)
			printk("  %-16s sequence #%llu, %u vCPU%s, saved from VM %u\n", "",
			       (unsigned long long)e->seq, e->vcpus, e->vcpus == 1 ? "" : "s",
			       e->vm_id);
	}
}

/* The store and its snapshots as the control channel's data (kernel/ctl.h). */
static void list_json(int index, const struct snap_links *L)
{
	struct json *j = ctl_data();
	u64 free_blocks, largest;

	if (!j)
		return;
	snap_store_space(&snap_store, &free_blocks, &largest);
	json_obj_begin(j, "store");
	json_u64(j, "disk", (u64)index);
	json_str(j, "disk_name", snap_store.dev->name);
	json_u64(j, "free", free_blocks * SNAP_BLOCK);
	json_u64(j, "largest_free", largest * SNAP_BLOCK);
	json_u64(j, "generation", snap_store.generation);
	json_obj_end(j);
	json_arr_begin(j, "snapshots");
	for (u32 i = 0; i < snap_store.count; i++) {
		const struct snap_entry *e = &snap_store.entry[i];

		json_obj_begin(j, NULL);
		json_str(j, "name", e->name);
		json_str(j, "vm_image", e->vm_image);
		json_u64(j, "vm", e->vm_id);
		json_u64(j, "vcpus", e->vcpus);
		json_u64(j, "memory", e->memory_pages * PAGE_SIZE);
		json_u64(j, "size", e->size);
		json_u64(j, "wall", e->wall);
		json_u64(j, "seq", e->seq);
		json_str(j, "state", entry_state(i));
		if (L && L->parent[i] >= 0)
			json_str(j, "parent", snap_store.entry[L->parent[i]].name);
		json_obj_end(j);
	}
	json_arr_end(j);
}

static int snap_list(const char *disk_opt, bool verbose)
{
	static u32 order[SNAP_CAT_MAX];
	static u8 depth[SNAP_CAT_MAX];
	const struct snap_links *L;
	struct blkdev *dev;
	int index, ret;
	u32 n;

	dev = snap_pick_disk(disk_opt, &index);
	if (!dev)
		return -ENODEV;
	ret = snap_store_open_shell(dev);
	if (ret == -ENODATA && !disk_opt) {
		printk("no snapshots: no disk holds a snapshot store ('snap save' creates one)\n");
		return 0;
	}
	if (snap_open_report(ret, dev, index))
		return ret;
	L = snap_incr_links(); /* NULL: listed flat */
	n = L ? snap_links_tree(L, order, depth) : 0;
	list_print(index, verbose, L, order, depth, n);
	list_json(index, L);
	return 0;
}

static void info_line(void *ctx, const char *line) { printk("%s\n", line); }

static int snap_info(const char *name, const char *disk_opt)
{
	struct snap_report rep = { .emit = snap_report_print };
	struct snap_source src;
	const struct snap_entry *e;
	char size[32], dd[64];
	struct blkdev *dev;
	int index, entry, ret;

	entry = snap_open_entry(name, disk_opt, &dev, &index);
	if (entry < 0)
		return entry;
	e = &snap_store.entry[entry];
	format_size(size, sizeof(size), e->size);
	printk("snapshot '%s' on disk %d (%s): %s\n", name, index, snap_store.dev->name, size);
	printk("  where:   blocks %llu-%llu (byte offset %llu, %llu bytes)\n",
	       (unsigned long long)e->start_block,
	       (unsigned long long)(e->start_block + snap_entry_blocks(e) - 1),
	       (unsigned long long)(e->start_block * SNAP_BLOCK), (unsigned long long)e->size);
	snap_entry_dd(dd, sizeof(dd), e);
	printk("  copy:    %s\n", dd);
	printk("  catalog: %s; generation %llu in copy %c, sequence #%llu\n", entry_state(entry),
	       (unsigned long long)snap_store.generation, 'A' + snap_store.cur,
	       (unsigned long long)e->seq);
	ret = snap_source_get(&src, entry);
	if (ret)
		return ret;
	ret = snap_image_open(&src, &info_parsed, &rep);
	if (ret == 0 || ret == -EBADMSG)
		snap_image_describe(&src, &info_parsed, info_line, NULL);
	if (ret == -EBADMSG)
		shell_error(ret,
			    "snapshot '%s' is damaged (%d problem%s);\n"
			    "  'snap verify %s' checks the pages too",
			    name, rep.errors, rep.errors == 1 ? "" : "s", name);
	else if (ret)
		shell_error(ret, "reading '%s' failed: %s", name,
			    snap_store.err[0] ? snap_store.err : errno_name(ret));
	snap_image_close(&info_parsed);
	snap_source_put(&src);
	return ret;
}

/* Every CRC of one image, named `name`; prints the verdict. */
static int verify_image(const char *name, int entry)
{
	struct snap_report rep = { .emit = snap_report_print };
	struct snap_progress pr;
	struct snap_source src;
	char size[32];
	int ret, ret2;

	ret = snap_source_get(&src, entry);
	if (ret)
		return ret;
	ret = snap_image_open(&src, &info_parsed, &rep);
	/* Pages are checked even after a metadata finding: name every problem. */
	if (ret == 0 || ret == -EBADMSG) {
		snap_progress_init(&pr, "verify");
		ret2 = snap_image_check_pages(&src, &info_parsed, &rep, snap_progress, &pr);
		snap_progress_done(&pr);
		if (ret2)
			ret = ret2;
	}
	if (!ret && crc32c(0, info_parsed.hdr_raw, SNAP_HEADER_SIZE) !=
			    snap_store.entry[entry].header_crc) {
		snap_report(&rep, "catalog entry and image header disagree (image overwritten?)");
		ret = -EBADMSG;
	}
	format_size(size, sizeof(size), info_parsed.hdr.total_size);
	if (!ret)
		ctl_summary_next();
	if (!ret)
		printk("snapshot '%s' is intact: every CRC32C matches\n  checked: the header, %u "
		       "sections and %llu stored pages (%s)\n",
		       name, info_parsed.nsections,
		       (unsigned long long)(snap_image_page_bytes(&info_parsed) / PAGE_SIZE), size);
	else if (ret == -ECANCELED)
		printk("snap verify: cancelled\n");
	else if (ret == -EBADMSG)
		shell_error(ret, "snapshot '%s' is damaged: %d problem%s (above)", name, rep.errors,
			    rep.errors == 1 ? "" : "s");
	else
		shell_error(ret, "reading '%s' failed: %s", name,
			    snap_store.err[0] ? snap_store.err : errno_name(ret));
	snap_image_close(&info_parsed);
	snap_source_put(&src);
	return ret;
}

/* `snap verify`: the image, and for a child every image of its chain and
 * every link (snapshot/chain.c checks ids, CRCs, depths and sizes). */
static int snap_verify(const char *name, const char *disk_opt)
{
	static int chain[SNAP_MAX_CHAIN];
	struct blkdev *dev;
	int index, entry, ret, bad = 0;
	u32 n;

	entry = snap_open_entry(name, disk_opt, &dev, &index);
	if (entry < 0)
		return entry;
	ret = snap_incr_chain(entry, chain, &n, "snap verify");
	if (ret == -EIO)
		return ret;
	if (ret) {
		shell_error(ret, "the chain of '%s' is broken (its own image checked below)", name);
		n = 1;
	}
	for (u32 k = 0; k < n; k++) {
		int r = verify_image(snap_store.entry[chain[k]].name, chain[k]);

		if (r == -ECANCELED)
			return r;
		if (r && !bad)
			bad = r;
	}
	if (!ret && !bad && n > 1)
		printk("the chain of '%s' is intact: %u images down to the full '%s'\n", name, n,
		       snap_store.entry[chain[n - 1]].name);
	return bad ? bad : ret;
}

/* A snapshot that children build on stays: they hold only the pages that
 * changed since it (docs/snapshot-format.md 1.11 argues against merging). */
int snap_refuse_parent(const char *name, int entry, const char *verb)
{
	const struct snap_links *L = snap_incr_links();
	int kids[8];
	char list[160] = "";
	u32 n;

	if (!L) {
		return shell_error(-EIO,
				   "cannot tell whether snapshots build on '%s';\n"
				   "  it is still there",
				   name);
	}
	n = snap_children(L, (u32)entry, kids, ARRAY_SIZE(kids));
	if (!n)
		return 0;
	for (u32 k = 0; k < MIN(n, (u32)ARRAY_SIZE(kids)); k++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s'%s'", k ? ", " : "",
			 snap_store.entry[kids[k]].name);
	return shell_error(-EBUSY,
			   "%s build%s on '%s': %s%s;\n"
			   "  delete %s first%s; '%s' is still there",
			   n == 1 ? "a snapshot" : "snapshots", n == 1 ? "s" : "", name, list,
			   n > ARRAY_SIZE(kids) ? " and more" : "", n == 1 ? "it" : "them",
			   strcmp(verb, "replace") ? "" : ", or save under another name", name);
}

static int snap_delete(const char *name, const char *disk_opt)
{
	char size[32];
	struct blkdev *dev;
	int index, entry, ret, vm;

	entry = snap_open_entry(name, disk_opt, &dev, &index);
	if (entry < 0)
		return entry;
	ret = snap_refuse_parent(name, entry, "delete");
	if (ret)
		return ret;
	vm = snap_lazy_reader(snap_store.dev, snap_store.entry[entry].start_block);
	if (vm) {
		printk("error: snap delete: VM %d still reads its memory from '%s' (a lazy\n"
		       "  restore, 'vm info %d'); kill it or wait until it is resident\n",
		       vm, name, vm);
		return -EBUSY;
	}
	format_size(size, sizeof(size), snap_entry_blocks(&snap_store.entry[entry]) * SNAP_BLOCK);
	ret = snap_store_remove(&snap_store, entry);
	if (ret && snap_store.unsure) {
		return shell_error(
			ret,
			"the disk did not confirm the new catalog (%s):\n"
			"  '%s' may or may not be deleted ('snap list' reads the disk again)",
			snap_store.err, name);
	}
	if (ret) {
		return shell_error(ret, "%s; the snapshot is still there", snap_store.err);
	}
	printk("deleted '%s' from disk %d (%s freed)\n", name, index, size);
	return 0;
}

/* Refuses to erase a store or other data without --force. */
static int snap_format(const char *disk, bool force)
{
	struct blkdev *dev;
	char size[32];
	int index, ret;

	dev = snap_pick_disk(disk, &index);
	if (!dev)
		return -ENODEV;
	if (dev->readonly) {
		return shell_error(-EROFS, "disk %d (%s) is read-only", index, dev->name);
	}
	if (!force) {
		ret = snap_store_open_shell(dev);
		if (ret == 0 || ret == -EBADMSG || ret == -ERANGE) {
			return shell_error(-EEXIST,
					   "disk %d (%s) holds a snapshot store%s;\n"
					   "  'snap format %d --force' erases it",
					   index, dev->name,
					   ret ? " (damaged)" :
						 (snap_store.count ? " with snapshots" : ""),
					   index);
		}
		ret = snap_store_blank(&snap_store, dev);
		if (ret < 0) {
			return shell_error(ret, "disk %d: %s", index, snap_store.err);
		}
		if (!ret) {
			return shell_error(-EEXIST,
					   "disk %d (%s) is not blank (its first MiB holds data);\n"
					   "  'snap format %d --force' erases it",
					   index, dev->name, index);
		}
	}
	ret = snap_store_format(&snap_store, dev, snap_new_store_id());
	if (ret) {
		return shell_error(ret, "%s", snap_store.err);
	}
	format_size(size, sizeof(size),
		    (snap_store.total_blocks - snap_store.data_start) * SNAP_BLOCK);
	printk("disk %d (%s): empty snapshot store created, %s for images\n", index, dev->name,
	       size);
	return 0;
}

/*
 * `snap restore NAME [--lazy] [into=ID]`. With into=ID the restored VM takes
 * the place of VM ID the way QEMU's loadvm replaces the running machine: same
 * id, same console attachment; the old VM is destroyed only once the new one
 * passed every check (vm_publish), so a failed restore leaves it as it was.
 * The lazy restore's checks are its metadata's: its pages are checked as they
 * arrive, and a damaged one stops the new VM.
 */
static int restore_cmd(const char *name, const char *disk, const char *into_arg, bool lazy)
{
	struct vm *old = NULL;
	char image[32] = "", text[160];
	const char *was = "";
	bool console = false;
	int id = 0, ret;

	if (into_arg) {
		old = vm_from_arg(into_arg);
		if (!old)
			return -ENOENT;
		id = old->id;
		strlcpy(image, old->image, sizeof(image));
		was = vm_state_name(old->state);
		console = old->console_attached;
	}
	ret = lazy ? snap_restore_lazy(name, disk, old) : snap_restore(name, disk, old);
	if (!old)
		return ret;
	if (ret) {
		printk("snap restore: VM %d is as it was (%s, %s)\n", id, image, was);
		return ret;
	}
	snprintf(text, sizeof(text),
		 "VM %d was %s, %s; it gave way once the restore was complete%s", id, image, was,
		 console ? " (its console stays attached)" : "");
	shell_wrap("  before:", 11, text);
	if (ctl_data()) {
		struct json *j = ctl_data();

		json_obj_begin(j, "replaced");
		json_u64(j, "vm", (u64)id);
		json_str(j, "vm_image", image);
		json_str(j, "state", was);
		json_obj_end(j);
	}
	return 0;
}

/* Positional words after the subcommand, disk=N, the --flags and --parent
 * NAME left out; *parent is that NAME (NULL if none). */
static int positional(int argc, char **argv, char **pos, int max, const char **parent)
{
	int n = 0;

	*parent = NULL;
	for (int i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "disk=", 5) || !strncmp(argv[i], "into=", 5) ||
		    !strcmp(argv[i], "--force") || !strcmp(argv[i], "--verbose") ||
		    !strcmp(argv[i], "--lazy") || !strcmp(argv[i], "--replace") ||
		    !strcmp(argv[i], "--live"))
			continue;
		if (!strcmp(argv[i], "--parent") && i + 1 < argc) {
			*parent = argv[++i];
			continue;
		}
		if (n < max)
			pos[n] = argv[i];
		n++;
	}
	return n;
}

static int cmd_snap(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	const char *disk = shell_opt(argc, argv, 2, "disk");
	const char *into = shell_opt(argc, argv, 2, "into");
	char *pos[2] = { NULL, NULL };
	const char *parent;
	int npos = positional(argc, argv, pos, 2, &parent);
	u64 id;

	if ((parent || shell_flag(argc, argv, 2, "--replace") ||
	     shell_flag(argc, argv, 2, "--live")) &&
	    strcmp(sub, "save"))
		return shell_usage("snap");
	if (!strcmp(sub, "save") && npos == 2) {
		if (parse_u64(pos[0], &id) || id < 1 || id > VM_MAX)
			return shell_err_no_vm(pos[0]);
		return snap_save((int)id, pos[1], disk, parent,
				 shell_flag(argc, argv, 2, "--replace"),
				 shell_flag(argc, argv, 2, "--live"));
	}
	if (into && strcmp(sub, "restore"))
		return shell_usage("snap");
	if (!strcmp(sub, "restore") && npos == 1)
		return restore_cmd(pos[0], disk, into, shell_flag(argc, argv, 2, "--lazy"));
	if (!strcmp(sub, "list") && npos == 0)
		return snap_list(disk, shell_flag(argc, argv, 2, "--verbose"));
	if (!strcmp(sub, "info") && npos == 1)
		return snap_info(pos[0], disk);
	if (!strcmp(sub, "verify") && npos == 1)
		return snap_verify(pos[0], disk);
	if (!strcmp(sub, "delete") && npos == 1)
		return snap_delete(pos[0], disk);
	if (!strcmp(sub, "dirty") && npos == 2)
		return snap_dirty_cmd(pos[0], pos[1]);
	if (!strcmp(sub, "reset") && (npos == 1 || npos == 2))
		return snap_reset_cmd(pos[0], pos[1], disk);
	if (!strcmp(sub, "format") && npos == 1 && !disk)
		return snap_format(pos[0], shell_flag(argc, argv, 2, "--force"));
	return shell_usage("snap");
}
/* Kept in one table so `help snap SUB`, the usage lines and the
 * unknown-subcommand error say the same. */
static const struct shell_sub snap_subs[] = {
	{ .name = "save",
	  .args = "VM NAME [--live] [--parent BASE] [--replace] [disk=N]",
	  .summary = "pause VM, write its image, commit, resume it",
	  .help = "  NAME is 1-31 letters, digits, '.', '_' or '-'. The VM runs on once the\n"
		  "  image is durable; Ctrl-C cancels and earlier snapshots stay intact.\n"
		  "  A save to a blank disk creates the store. --parent BASE writes only\n"
		  "  the pages changed since BASE (a child: restoring it reads the chain).\n"
		  "  --replace: a snapshot named NAME gives way once the new image is\n"
		  "  committed (one catalog write), so a failure keeps the old one.\n"
		  "  --live: a running VM runs on while its memory is written (rounds\n"
		  "  of the pages it changed), frozen only for a short last pass; with\n"
		  "  --parent too, a child written so.\n" },
	{ .name = "restore",
	  .args = "NAME [--lazy] [into=ID] [disk=N]",
	  .summary = "check the image, make a paused VM from it",
	  .help = "  Every CRC is checked before the VM exists; 'vm resume ID' runs it.\n"
		  "  --lazy checks the metadata and runs the VM at once: its pages are\n"
		  "  read as it touches them and in the background ('vm info' shows\n"
		  "  how far); a damaged page stops that VM alone.\n"
		  "  into=ID replaces VM ID (QEMU's loadvm): the restored VM keeps its\n"
		  "  id and console; the old one goes once the new one passed every\n"
		  "  check (with --lazy: the metadata's), and stays if the restore fails.\n" },
	{ .name = "list",
	  .args = "[disk=N] [--verbose]",
	  .summary = "the snapshots on a disk and its free space",
	  .help = "  --verbose adds the catalog's generation and copy, the largest free\n"
		  "  extent, and each image's sequence number and vCPUs.\n" },
	{ .name = "info",
	  .args = "NAME [disk=N]",
	  .summary = "where it lies, header fields, sections, vCPUs",
	  .help = "  Also the catalog's generation and copy, and a dd line that copies the\n"
		  "  image off the disk.\n" },
	{ .name = "verify",
	  .args = "NAME [disk=N]",
	  .summary = "check every CRC32C; names the damaged part" },
	{ .name = "delete",
	  .args = "NAME [disk=N]",
	  .summary = "remove it and free its space",
	  .help = "  Refused while other snapshots build on it (it names them).\n" },
	{ .name = "format",
	  .args = "DISK [--force]",
	  .summary = "create an empty store on a disk",
	  .help = "  A disk that holds data or a store is refused without --force.\n" },
	{ .name = "dirty",
	  .args = "VM start|show|clear|stop",
	  .summary = "track the pages a VM writes (debugging)",
	  .help = "  start turns tracking on, show lists the written pages, clear forgets\n"
		  "  them, stop turns it off. Incremental snapshots build on it.\n" },
	{ .name = "reset",
	  .args = "VM [NAME [disk=N] | --info | --drop]",
	  .summary = "return VM to a base kept in memory (fast)",
	  .help = "  The first reset keeps VM's base in memory (or NAME's image); each\n"
		  "  later one returns to it, copying back only the pages written since.\n"
		  "  --info shows the base and a fuzzing crash, --drop frees the base.\n" },
	{ NULL },
};

SHELL_COMMAND(snap, .name = "snap", .summary = "save VMs to disk and bring them back (snapshots)",
	      .help = "disk=N picks the disk; by default the first holding a store, else the\n"
		      "first disk. Format: docs/snapshot-format.md.\n",
	      .fn = cmd_snap, .subs = snap_subs);
