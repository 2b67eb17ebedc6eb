/*
 * Save (snapshot/save.c) and restore (snapshot/restore.c) of whole VMs into the
 * snapshot store, and what the `snap` shell commands (snapshot/cmd_snap.c)
 * share with them (snapshot/snap.c): the one open store, disk selection, an
 * image source over a catalog entry, and the progress bar. Kernel only; host
 * context (the shell), interrupts off.
 */
#ifndef AMBER_SNAP_H
#define AMBER_SNAP_H

#include "snapshot/image.h"
#include "snapshot/store.h"

/* The store the running command works on (the shell runs one at a time). */
extern struct snap_store snap_store;

/* Picks the disk for a command: `opt` is the value of disk=N (an index or a
 * name such as vblk0), or NULL for the default: the first disk holding a store,
 * else the first disk. Prints the error and returns NULL when there is none. */
struct blkdev *snap_pick_disk(const char *opt, int *index);
/* Registers the overwrite guard of `disk write` (snap_store_present). Boot. */
void snap_init(void);
/* Prints, loudly, what opening a damaged store found and recovered. */
void snap_store_warn(int index);
/* snap_store_open() into snap_store with a progress bar and Ctrl-C for the
 * scan a damaged catalog causes; prints nothing. */
int snap_store_open_shell(struct blkdev *dev);
/* Prints what a snap_store_open() that returned ret means (the warning of a
 * recovery included); returns ret. */
int snap_open_report(int ret, struct blkdev *dev, int index);
/* Opens the store on dev into snap_store; prints a clear error otherwise. */
int snap_open_store(struct blkdev *dev, int index);
/* Picks the disk (disk=N or the default), opens its store and finds `name`:
 * its catalog entry, or a negative errno after saying why. */
int snap_open_entry(const char *name, const char *disk_opt, struct blkdev **dev, int *index);

/* A source reading catalog entry `entry` of snap_store. Release with
 * snap_source_put(). */
int snap_source_get(struct snap_source *src, int entry);
void snap_source_put(struct snap_source *src);
/* Microseconds the source has waited for the disk so far. */
u64 snap_source_io_us(const struct snap_source *src);
/* A snap_page_fn over a VM's RAM (ctx: the struct vm). */
void *snap_guest_page(void *ctx, u64 gpa);
/* "12.3 MiB/s" for bytes in us microseconds. */
void snap_print_rate(char *buf, size_t len, u64 bytes, u64 us);

/* A progress bar for `what` that Ctrl-C cancels (returns -ECANCELED). */
struct snap_progress {
	const char *what;
	u64 start, last;
	bool shown;
};
void snap_progress_init(struct snap_progress *pr, const char *what);
int snap_progress(void *ctx, u64 done, u64 total);
/* Ends the bar's line if one was drawn. */
void snap_progress_done(struct snap_progress *pr);

/* Report sink printing each finding as "  damaged: ...". */
void snap_report_print(struct snap_report *r, const char *line);

/* Wall-clock time from the CMOS RTC in Unix seconds, 0 if it cannot be read. */
u64 snap_wallclock(void);
/* An identifier for a new store (TSC, ticks and RTC mixed). */
u64 snap_new_store_id(void);

/* parent: NULL for a full image, or the snapshot a child builds on. replace:
 * a snapshot already named `name` gives way in the commit of the new one.
 * live: a running VM runs on while its memory is written (snapshot/live.c). */
int snap_save(int vm_id, const char *name, const char *disk_opt, const char *parent, bool replace,
	      bool live);
/* 0 when no snapshot builds on entry `entry` of snap_store (named `name`);
 * else says that `verb` (delete, replace) would orphan them, or that it
 * cannot tell, and returns -EBUSY or -EIO (snapshot/cmd_snap.c). */
int snap_refuse_parent(const char *name, int entry, const char *verb);
/* into: NULL for a new VM, or the VM the restored one replaces (`snap restore
 * NAME into=ID`): it keeps that VM's id and console, and the old VM is
 * destroyed only when the new one is complete (vm_publish); a failed
 * restore leaves it as it was. */
struct vm;
int snap_restore(const char *name, const char *disk_opt, struct vm *into);
/* The last step of a restore, after every check passed: the hidden VM gets
 * its devices, the vCPU states vs[] and the state it was saved in, then
 * becomes visible (vm_publish). 0, or an errno after saying why (the caller
 * removes the VM). */
struct vm;
/* Whether this CPU can run the guest of image p with vCPU states vs: every
 * CPUID feature its CPU model showed it (a model other than host), and each
 * vCPU's CR4 bits and XCR0 components (vcpu_state_fits). Returns 0 (after a
 * note for host-model features missing here), or -EOPNOTSUPP after the
 * refusal naming what is missing. */
int snap_cpu_fits(const char *name, const struct snap_parsed *p, const struct vcpu_state *vs);
int snap_restore_commit(struct vm *vm, struct snap_parsed *p, const struct vcpu_state *vs);
/* `snap restore NAME --lazy` (snapshot/lazy.c): the metadata checked, the
 * VM running at once, its pages read as it touches them and in the idle
 * turns until it is resident. */
int snap_restore_lazy(const char *name, const char *disk_opt, struct vm *into);
/* What a restore (full or lazy) reports on the control channel: its
 * "restore" object. The fields under `full` only a full restore knows. */
struct snap_restore_figures {
	bool lazy;
	u64 total_us, bytes_read, disk_commands;
	struct {
		u64 image_bytes, create_us, disk_read_us, pages_zeroed;
		u32 chain;
	} full;
};
void snap_restore_json(const char *name, struct vm *vm, const struct snap_restore_figures *f);
/* The id of a VM still filled from the image at start_block of dev, or 0. */
int snap_lazy_reader(const struct blkdev *dev, u64 start_block);

/* ---- incremental snapshots (snapshot/incr.c) -------------------------------- */
struct vm;
struct snap_links;
/* Every entry's link in snap_store (a static table), or NULL after saying why. */
const struct snap_links *snap_incr_links(void);
/* The chain of `entry` (snapshot/chain.h); prints why `cmd` is refused when
 * it is broken. */
int snap_incr_chain(int entry, int *chain, u32 *n, const char *cmd);
/* Checks that snapshot `name` can be vm's parent and fills its record; says
 * why not otherwise. */
int snap_incr_parent(struct vm *vm, const char *name, struct snap_parent *out);
/* The pages changed since par's image (bit per page, *changed allocated;
 * free with snap_incr_free): from the dirty log or by comparison, which
 * par->source then says. Prints why on failure. */
int snap_incr_changed(struct vm *vm, struct snap_parent *par, u64 **changed);
void snap_incr_free(struct vm *vm, u64 *changed);
/* vm was saved as, or restored from, the image with this id and header CRC
 * (on snap_store): its dirty log counts from now on, where the log is free
 * for it (no fast-reset base, no `snap dirty` session of a person's). */
void snap_incr_mark(struct vm *vm, u64 image_id, u32 header_crc);
/* The same; adopt: the caller started the log that is on (a live save) and
 * hands it over, so it counts from this image like one started here. */
void snap_incr_mark_log(struct vm *vm, u64 image_id, u32 header_crc, bool adopt);

/* `snap dirty VM start|show|clear|stop` (snapshot/cmd_dirty.c). */
int snap_dirty_cmd(const char *vm_arg, const char *what);
/* `snap reset VM [NAME | --drop | --info]` (snapshot/cmd_reset.c); what is
 * NULL for a plain reset, disk_opt the value of disk=N or NULL. */
int snap_reset_cmd(const char *vm_arg, const char *what, const char *disk_opt);

#endif
