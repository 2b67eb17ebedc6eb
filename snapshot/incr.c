/*
 * Incremental snapshots in the kernel: which pages changed since the parent
 * (the dirty log when it covered the whole interval since the parent was
 * saved or restored, else a comparison with the parent chain's pages), the
 * chain checks a save or restore needs, and the tokens that tie a VM's dirty
 * log to the image it was last saved as or restored from. Host context (the
 * shell), the VM out of guest mode.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "snapshot/chain.h"
#include "snapshot/snap.h"
#include "vmm/vmm.h"

/* What a VM's dirty log counts from: the image it was last saved as or
 * restored from, and the log's epoch then (vmm/dirtylog.h). */
static struct {
	bool valid;
	u64 epoch, store_id, image_id;
	u32 header_crc;
} token[VM_MAX + 1];

static struct snap_links links; /* one command at a time; large */
static struct snap_parsed cmp;	/* the chain images a comparison reads */
static int parent_chain[SNAP_MAX_CHAIN];
static u32 parent_len;

const struct snap_links *snap_incr_links(void)
{
	int ret = snap_links_read(&snap_store, &links);

	if (ret) {
		shell_error(ret, "reading the snapshots' first blocks failed: %s", snap_store.err);
		return NULL;
	}
	return &links;
}

int snap_incr_chain(int entry, int *chain, u32 *n, const char *cmd)
{
	char why[160];
	int ret;

	if (!snap_incr_links())
		return -EIO;
	ret = snap_chain(&snap_store, &links, (u32)entry, chain, n, why, sizeof(why));
	if (ret)
		printk("error: %s:\n  %s\n", cmd, why);
	return ret;
}

int snap_incr_parent(struct vm *vm, const char *name, struct snap_parent *out)
{
	int entry = snap_store_find(&snap_store, name), ret;
	const struct snap_link *l;

	if (entry < 0) {
		return shell_error(-ENOENT,
				   "there is no snapshot '%s' on %s to be the parent;\n"
				   "  'snap list' shows them; nothing saved",
				   name, snap_store.dev->name);
	}
	ret = snap_incr_chain(entry, parent_chain, &parent_len, "snap save");
	if (ret) {
		printk("snap save: '%s' cannot be a parent; nothing saved\n", name);
		return ret;
	}
	l = &links.link[entry];
	if (links.why[entry]) {
		printk("error: snap save: '%s' is damaged (%s; 'snap verify %s');\n"
		       "  nothing saved\n",
		       name, links.why[entry], name);
		return -EBADMSG;
	}
	if (parent_len >= SNAP_MAX_CHAIN) {
		printk("error: snap save: '%s' ends a chain of %u images, the most there may be;\n"
		       "  save a full snapshot (no --parent); nothing saved\n",
		       name, parent_len);
		return -E2BIG;
	}
	if (l->memory_pages * PAGE_SIZE != vm->mem_size || l->vcpus != (u32)vm->nvcpus) {
		printk("error: snap save: '%s' holds %llu MiB and %u vCPUs, VM %d %llu MiB and %d;\n"
		       "  a child must have its parent's shape; nothing saved\n",
		       name, (unsigned long long)(l->memory_pages * PAGE_SIZE >> 20), l->vcpus,
		       vm->id, (unsigned long long)(vm->mem_size >> 20), vm->nvcpus);
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->version = SNAP_PARENT_VERSION;
	out->depth = parent_len;
	out->image_id = l->image_id;
	out->header_crc = l->header_crc;
	out->memory_pages = l->memory_pages;
	strlcpy(out->name, name, sizeof(out->name));
	return 0;
}

static void *vm_page(void *ctx, u64 gpa) { return gpa_to_hva(ctx, gpa, PAGE_SIZE); }

/* changed[] from a comparison of guest memory with the parent chain: each
 * chain image read once, newest first; a page no image stores is zero. */
static int compare_chain(struct vm *vm, u64 *changed, u64 words)
{
	u64 npages = vm->mem_size / PAGE_SIZE, *decided = snap_mem_alloc(words * 8);
	struct snap_report rep = { .emit = snap_report_print };
	int ret = decided ? 0 : -ENOMEM;

	if (decided)
		memset(decided, 0, words * 8);
	for (u32 k = 0; !ret && k < parent_len; k++) {
		struct snap_source src;
		const struct snap_entry *e = &snap_store.entry[parent_chain[k]];

		ret = snap_source_get(&src, parent_chain[k]);
		if (ret)
			break;
		ret = snap_image_open(&src, &cmp, &rep);
		if (!ret && crc32c(0, cmp.hdr_raw, SNAP_HEADER_SIZE) != e->header_crc) {
			snap_report(&rep, "catalog entry and image header disagree");
			ret = -EBADMSG;
		}
		if (!ret) {
			struct snap_progress pr;

			snap_progress_init(&pr, "compare");
			ret = snap_image_compare(&src, &cmp, npages, decided, changed, vm_page, vm,
						 &rep, snap_progress, &pr);
			snap_progress_done(&pr);
		}
		snap_image_close(&cmp);
		snap_source_put(&src);
		if (ret == -ECANCELED)
			printk("snap save: cancelled; nothing was committed, earlier snapshots are "
			       "intact\n");
		else if (ret)
			printk("error: snap save: comparing with '%s' failed (%s);\n"
			       "  nothing saved\n",
			       e->name, ret == -EBADMSG ? "it is damaged" : errno_name(ret));
	}
	for (u64 pg = 0; !ret && pg < npages; pg++) {
		if (decided[pg / 64] & (1ULL << (pg % 64)))
			continue;
		if (!snap_page_is_zero(vm_page(vm, pg * PAGE_SIZE)))
			changed[pg / 64] |= 1ULL << (pg % 64);
	}
	snap_mem_free(decided, words * 8);
	return ret;
}

int snap_incr_changed(struct vm *vm, struct snap_parent *par, u64 **changed)
{
	u64 words = snap_bitmap_words(vm->mem_size / PAGE_SIZE);
	bool log = vm->id >= 1 && vm->id <= VM_MAX && token[vm->id].valid && vm->dirty.on &&
		   token[vm->id].epoch == vm->dirty.epoch &&
		   token[vm->id].store_id == snap_store.store_id &&
		   token[vm->id].image_id == par->image_id &&
		   token[vm->id].header_crc == par->header_crc;
	int ret;

	*changed = snap_mem_alloc(words * 8);
	if (!*changed)
		return -ENOMEM;
	memset(*changed, 0, words * 8);
	/* The log holds every write since the parent was saved or restored,
	 * Amber's own included, while its epoch is the one seen then. */
	if (log && !vm_dirty_sync(vm)) {
		memcpy(*changed, vm->dirty.bits, words * 8);
		par->source = SNAP_DELTA_LOG;
		return 0;
	}
	par->source = SNAP_DELTA_COMPARE;
	ret = compare_chain(vm, *changed, words);
	if (ret) {
		snap_mem_free(*changed, words * 8);
		*changed = NULL;
	}
	return ret;
}

void snap_incr_free(struct vm *vm, u64 *changed)
{
	if (changed)
		snap_mem_free(changed, snap_bitmap_words(vm->mem_size / PAGE_SIZE) * 8);
}

void snap_incr_mark(struct vm *vm, u64 image_id, u32 header_crc)
{
	snap_incr_mark_log(vm, image_id, header_crc, false);
}

void snap_incr_mark_log(struct vm *vm, u64 image_id, u32 header_crc, bool adopt)
{
	bool ours;

	if (vm->id < 1 || vm->id > VM_MAX)
		return;
	/* The log is this file's to clear only where it started it (or a live
	 * save did, for this image: adopt): a fast reset's base
	 * (vmm/fastreset.h) or a person's `snap dirty` session keeps its own,
	 * and a child of this image then compares. */
	ours = adopt ||
	       (token[vm->id].valid && vm->dirty.on && token[vm->id].epoch == vm->dirty.epoch);
	token[vm->id].valid = false;
	if (vm->base)
		return;
	if (vm->dirty.on) {
		if (!ours)
			return;
		vm_dirty_sync(vm);
		dirty_log_clear(&vm->dirty);
	} else if (vm_dirty_start(vm)) {
		return; /* no tracking: a child of this image compares */
	}
	token[vm->id].valid = true;
	token[vm->id].epoch = vm->dirty.epoch;
	token[vm->id].store_id = snap_store.store_id;
	token[vm->id].image_id = image_id;
	token[vm->id].header_crc = header_crc;
}
