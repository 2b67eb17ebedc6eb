/*
 * The `snap` shell command: save, restore, list, info, verify, delete and
 * format, over the snapshot store of one disk (disk=N picks it; by default the
 * first disk holding a store, else the first disk). Host context (the shell).
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "snapshot/snap.h"

static struct snap_parsed info_parsed;

/* Opens the store on the chosen disk and finds `name` in it. */
static int open_entry(const char *name, const char *disk_opt, int *index)
{
	struct blkdev *dev = snap_pick_disk(disk_opt, index);
	int entry, ret;

	if (!dev)
		return -ENODEV;
	ret = snap_open_store(dev, *index);
	if (ret)
		return ret;
	entry = snap_store_find(&snap_store, name);
	if (entry < 0)
		printk("error: no snapshot '%s' on disk %d (%s) (see 'snap list')\n", name, *index,
		       dev->name);
	return entry;
}

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

static void print_entry(u32 i)
{
	const struct snap_entry *e = &snap_store.entry[i];
	char size[32], mem[32], when[32];

	format_size(size, sizeof(size), e->size);
	format_size(mem, sizeof(mem), e->memory_pages * PAGE_SIZE);
	snap_format_time(when, sizeof(when), e->wall);
	printk("  %-20s %-12s %3u %9s %10s  %-19s  #%llu %s\n", e->name,
	       e->vm_image[0] ? e->vm_image : "?", e->vcpus, mem, size, when,
	       (unsigned long long)e->seq, entry_state(i));
}

static void print_store(int index)
{
	struct snap_store *st = &snap_store;
	char used[32], free_s[32], big[32];
	u64 free_blocks, largest, used_bytes = 0;

	snap_store_space(st, &free_blocks, &largest);
	for (u32 i = 0; i < st->count; i++)
		used_bytes += snap_entry_blocks(&st->entry[i]) * SNAP_BLOCK;
	format_size(used, sizeof(used), used_bytes);
	format_size(free_s, sizeof(free_s), free_blocks * SNAP_BLOCK);
	format_size(big, sizeof(big), largest * SNAP_BLOCK);
	printk("disk %d (%s): %u snapshot%s, %s used, %s free (largest extent %s); catalog "
	       "generation %llu in copy %c\n",
	       index, st->dev->name, st->count, st->count == 1 ? "" : "s", used, free_s, big,
	       (unsigned long long)st->generation, 'A' + st->cur);
	for (int c = 0; c < 2; c++)
		if (!st->copy[c].ok)
			printk("  note: catalog copy %c is not in use: %s\n", 'A' + c,
			       st->copy[c].why);
}

/* The store and its snapshots as the control channel's data (kernel/ctl.h). */
static void list_json(int index)
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
		json_obj_end(j);
	}
	json_arr_end(j);
}

static int snap_list(const char *disk_opt)
{
	struct blkdev *dev;
	int index, ret;

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
	print_store(index);
	list_json(index);
	if (!snap_store.count)
		return 0;
	printk("  %-20s %-12s %3s %9s %10s  %-19s  %s\n", "NAME", "VM IMAGE", "CPU", "RAM", "IMAGE",
	       "SAVED (RTC)", "SEQ STATE");
	for (u32 i = 0; i < snap_store.count; i++)
		print_entry(i);
	return 0;
}

static void info_line(void *ctx, const char *line) { printk("%s\n", line); }

static int snap_info(const char *name, const char *disk_opt)
{
	struct snap_report rep = { .emit = snap_report_print };
	struct snap_source src;
	const struct snap_entry *e;
	int index, entry, ret;

	entry = open_entry(name, disk_opt, &index);
	if (entry < 0)
		return entry;
	e = &snap_store.entry[entry];
	printk("snapshot '%s' on disk %d (%s): blocks %llu-%llu (byte offset %llu, %llu bytes: "
	       "dd skip=%llu count=%llu bs=4096)\n",
	       name, index, snap_store.dev->name, (unsigned long long)e->start_block,
	       (unsigned long long)(e->start_block + snap_entry_blocks(e) - 1),
	       (unsigned long long)(e->start_block * SNAP_BLOCK), (unsigned long long)e->size,
	       (unsigned long long)e->start_block, (unsigned long long)snap_entry_blocks(e));
	ret = snap_source_get(&src, entry);
	if (ret)
		return ret;
	ret = snap_image_open(&src, &info_parsed, &rep);
	if (ret == 0 || ret == -EBADMSG)
		snap_image_describe(&src, &info_parsed, info_line, NULL);
	if (ret == -EBADMSG)
		printk("error: snapshot '%s' is damaged (%d problem%s; 'snap verify %s' checks the pages too)\n",
		       name, rep.errors, rep.errors == 1 ? "" : "s", name);
	else if (ret)
		printk("error: reading '%s' failed: %s\n", name,
		       snap_store.err[0] ? snap_store.err : errno_name(ret));
	snap_image_close(&info_parsed);
	snap_source_put(&src);
	return ret;
}

static int snap_verify(const char *name, const char *disk_opt)
{
	struct snap_report rep = { .emit = snap_report_print };
	struct snap_progress pr;
	struct snap_source src;
	char size[32];
	int index, entry, ret, ret2;

	entry = open_entry(name, disk_opt, &index);
	if (entry < 0)
		return entry;
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
		printk("snapshot '%s' is intact: header, %u sections and %llu stored pages, every "
		       "CRC32C matches (%s)\n",
		       name, info_parsed.nsections,
		       (unsigned long long)(snap_image_page_bytes(&info_parsed) / PAGE_SIZE), size);
	else if (ret == -ECANCELED)
		printk("snap verify: cancelled\n");
	else if (ret == -EBADMSG)
		printk("error: snapshot '%s' is damaged: %d problem%s (listed above)\n", name,
		       rep.errors, rep.errors == 1 ? "" : "s");
	else
		printk("error: reading '%s' failed: %s\n", name,
		       snap_store.err[0] ? snap_store.err : errno_name(ret));
	snap_image_close(&info_parsed);
	snap_source_put(&src);
	return ret;
}

static int snap_delete(const char *name, const char *disk_opt)
{
	char size[32];
	int index, entry, ret, vm;

	entry = open_entry(name, disk_opt, &index);
	if (entry < 0)
		return entry;
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
		printk("error: snap delete: the disk did not confirm the new catalog (%s):\n"
		       "  '%s' may or may not be deleted ('snap list' reads the disk again)\n",
		       snap_store.err, name);
		return ret;
	}
	if (ret) {
		printk("error: snap delete: %s; the snapshot is still there\n", snap_store.err);
		return ret;
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
		printk("error: snap format: disk %d (%s) is read-only\n", index, dev->name);
		return -EROFS;
	}
	if (!force) {
		ret = snap_store_open_shell(dev);
		if (ret == 0 || ret == -EBADMSG || ret == -ERANGE) {
			printk("error: disk %d (%s) already holds a snapshot store%s; 'snap format %d "
			       "--force' erases it\n",
			       index, dev->name,
			       ret ? " (damaged)" : (snap_store.count ? " with snapshots" : ""),
			       index);
			return -EEXIST;
		}
		ret = snap_store_blank(&snap_store, dev);
		if (ret < 0) {
			printk("error: disk %d: %s\n", index, snap_store.err);
			return ret;
		}
		if (!ret) {
			printk("error: disk %d (%s) is not blank (its first MiB holds data); "
			       "'snap format %d --force' erases it\n",
			       index, dev->name, index);
			return -EEXIST;
		}
	}
	ret = snap_store_format(&snap_store, dev, snap_new_store_id());
	if (ret) {
		printk("error: snap format: %s\n", snap_store.err);
		return ret;
	}
	format_size(size, sizeof(size),
		    (snap_store.total_blocks - snap_store.data_start) * SNAP_BLOCK);
	printk("disk %d (%s): empty snapshot store created, %s for images\n", index, dev->name,
	       size);
	return 0;
}

/* Positional words after the subcommand, disk=N and --force left out. */
static int positional(int argc, char **argv, char **pos, int max)
{
	int n = 0;

	for (int i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "disk=", 5) || !strcmp(argv[i], "--force") ||
		    !strcmp(argv[i], "--lazy"))
			continue;
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
	char *pos[2] = { NULL, NULL };
	int npos = positional(argc, argv, pos, 2);
	u64 id;

	if (!strcmp(sub, "save") && npos == 2) {
		if (parse_u64(pos[0], &id) || id > 1000) {
			printk("error: snap save: '%s' is not a VM number (see 'vm list')\n",
			       pos[0]);
			return -EINVAL;
		}
		return snap_save((int)id, pos[1], disk);
	}
	if (!strcmp(sub, "restore") && npos == 1)
		return shell_flag(argc, argv, 2, "--lazy") ? snap_restore_lazy(pos[0], disk) :
							     snap_restore(pos[0], disk);
	if (!strcmp(sub, "list") && npos == 0)
		return snap_list(disk);
	if (!strcmp(sub, "info") && npos == 1)
		return snap_info(pos[0], disk);
	if (!strcmp(sub, "verify") && npos == 1)
		return snap_verify(pos[0], disk);
	if (!strcmp(sub, "delete") && npos == 1)
		return snap_delete(pos[0], disk);
	if (!strcmp(sub, "dirty") && npos == 2)
		return snap_dirty_cmd(pos[0], pos[1]);
	if (!strcmp(sub, "format") && npos == 1 && !disk)
		return snap_format(pos[0], shell_flag(argc, argv, 2, "--force"));
	return shell_usage("snap");
}
SHELL_COMMAND(snap, .name = "snap",
	      .usage = "snap save VM NAME | restore NAME [--lazy] | list | info NAME | "
		       "verify NAME | delete NAME | format DISK [--force] | dirty VM WHAT (disk=N)",
	      .summary = "save VMs to disk and bring them back (snapshots)",
	      .help = "  snap save VM NAME [disk=N]  pause VM, write its image, commit, resume it\n"
		      "  snap restore NAME [disk=N]  verify the image, create a paused VM from it\n"
		      "  snap restore NAME --lazy    check the metadata, run the VM at once; its\n"
		      "                              pages are read as it touches them and in\n"
		      "                              the background ('vm info' shows how far)\n"
		      "  snap list [disk=N]          the snapshots on a disk and its free space\n"
		      "  snap info NAME [disk=N]     header fields, sections, regions, vCPUs\n"
		      "  snap verify NAME [disk=N]   check every CRC32C; names the damaged part\n"
		      "  snap delete NAME [disk=N]   remove from the catalog, free its space\n"
		      "  snap format DISK [--force]  create an empty store (--force: over data)\n"
		      "  snap dirty VM WHAT          WHAT: start|show|clear|stop tracking the\n"
		      "                              pages VM writes (a debugging aid)\n"
		      "The default disk is the first holding a store, else the first disk. A save\n"
		      "to a blank disk creates the store. Ctrl-C cancels a save; earlier snapshots\n"
		      "stay intact. Format: docs/snapshot-format.md.\n",
	      .fn = cmd_snap);
