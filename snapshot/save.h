/*
 * Inside `snap save`: the steps of a save (snapshot/save.c) that the live
 * save (snapshot/live.c) reuses, each printing why it failed. Not for other
 * callers: snap.h is the interface. Kernel only; host context (the shell).
 */
#ifndef AMBER_SAVE_H
#define AMBER_SAVE_H

#include "kernel/json.h"
#include "snapshot/image.h"
#include "vmm/vmm.h"

struct save_io {
	u64 start, blocks; /* the extent the store gave the image */
	u64 bytes;	   /* image bytes handed to the disk so far */
};

/* What one save cost, for its summary line (and `make bench`): times in
 * microseconds, and what was counted. */
struct save_stats {
	u64 scan_us, write_us, commit_us;
	u64 bytes; /* image bytes written */
	u64 cmds;  /* device commands: image writes, flushes, catalog */
};

/* The image being written (one save at a time). */
extern struct snap_image *const save_img;

/* Fills save_img's header, IMAGE record, vCPUs (captured now: no vCPU is in
 * guest mode in a shell command) and device records; leaves its memory
 * regions unset. was: the VM's state as the image records it. */
int save_capture_state(struct vm *vm, enum vm_state was, const char *name);
/* Free space for an image of total bytes (0: says it cannot be described)
 * into io; says how much is free when there is not enough. */
int save_extent(struct vm *vm, int index, u64 total, struct save_io *io);
/* The sink's write into io's extent (snap_sink.ctx = io). */
int save_write(struct snap_sink *s, u64 off, const void *buf, u64 len);
/* Says that writing the image failed with ret (or was cancelled); returns ret. */
int save_write_failed(int ret);
/* Commits save_img, written at io, to the catalog as `name` (replacing
 * entry old when >= 0); st->commit_us is the time it took. */
int save_commit(struct vm *vm, const char *name, int old, const struct save_io *io,
		struct save_stats *st);
/* The summary's figures as the control channel's "save" object; more (may
 * be NULL) adds its own fields to it. */
void save_json(struct vm *vm, const char *name, int index, const struct save_stats *st, u64 frozen,
	       void (*more)(struct json *j, const void *ctx), const void *ctx);

/* `snap save --live` of a running VM, after snap_save's checks
 * (snapshot/live.c); parent: --parent's record (a child), or NULL. */
int snap_save_live(struct vm *vm, const char *name, int index, int old, struct snap_parent *parent);

#endif
