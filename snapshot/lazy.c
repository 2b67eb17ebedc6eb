/*
 * Lazy restore (`snap restore NAME --lazy`): the image's metadata is read and
 * checked (header, sections, vCPU and device records, the page index and its
 * CRCs), the VM made with none of its RAM filled, and it runs at once. The
 * pager (vmm/pager.h) asks this source for a page the guest touches: a stored
 * page comes with its CRC chunk (read, checked, only then mapped), a page the
 * image leaves out is zeroed with the others of its 2 MiB. The idle turns read
 * the rest in requests of up to 4 MiB. Host context, boot CPU.
 */
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/time.h"
#include "snapshot/snap.h"
#include "vmm/pager.h"
#include "vmm/vmm.h"

#define LAZY_PREFETCH_PAGES 1024 /* one prefetch piece: 4 MiB of stored pages */
/* A fault reads its chunk and the missing ones after it, up to 2 MiB in one
 * request: every page is read once in any case, and a guest that walks its
 * memory takes one exit per 2 MiB rather than one per chunk. */
#define LAZY_FAULT_PAGES 512
#define BLOCK_PAGES (VM_CHUNK_SIZE / PAGE_SIZE)

/* Where the pages of one lazily restored VM come from. It keeps its own copy
 * of the index: the store and the parsed image belong to the next command. */
struct lazy_src {
	struct blkdev *dev;
	u64 start_block; /* the image's extent on dev */
	u64 blocks;
	char name[32];
	u64 pages;  /* guest pages (one region at 0) */
	u64 stored; /* pages in the image */
	u32 ppc;    /* stored pages per CRC chunk */
	u64 nchunks;
	u64 data_pos;	 /* image offset of the first stored page */
	u64 *bitmap;	 /* bit p: page p stored */
	u32 *crc;	 /* each chunk's CRC32C */
	u32 *chunk_page; /* guest page of each chunk's first stored page */
	u64 next_chunk;	 /* prefetch: chunks before it are present */
	u64 next_block;	 /* prefetch: 2 MiB blocks before it have their zero pages */
};

static bool lazy_stored(const struct lazy_src *s, u64 page)
{
	return (s->bitmap[page / 64] >> (page % 64)) & 1;
}

/* The chunk holding stored page `page`: the last whose first page is <= it. */
static u64 lazy_chunk_of(const struct lazy_src *s, u64 page)
{
	u64 lo = 0, hi = s->nchunks;

	while (hi - lo > 1) {
		u64 mid = lo + (hi - lo) / 2;

		if (s->chunk_page[mid] <= page)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Next stored page at or after `page` (s->pages when none). */
static u64 lazy_next_stored(const struct lazy_src *s, u64 page)
{
	while (page < s->pages) {
		u64 w = s->bitmap[page / 64] >> (page % 64);

		if (w)
			return page + (u64)__builtin_ctzll(w);
		page = (page / 64 + 1) * 64;
	}
	return s->pages;
}

/* Reads `count` stored pages from stored page n straight into guest page pg
 * on (contiguous in host memory: one 2 MiB block). */
static int lazy_read(struct vm *vm, struct lazy_src *s, u64 n, u64 pg, u64 count)
{
	u64 spb = SNAP_BLOCK / s->dev->sector_size;
	u64 block = s->start_block + (s->data_pos + n * PAGE_SIZE) / SNAP_BLOCK;

	if (block + count > s->start_block + s->blocks)
		return -ERANGE;
	return blkdev_read(s->dev, block * spb, count * spb, pager_ram(vm, pg));
}

/* First page at or after `page` that the image leaves out (s->pages when
 * none). */
static u64 lazy_next_hole(const struct lazy_src *s, u64 page)
{
	while (page < s->pages) {
		u64 w = ~s->bitmap[page / 64] >> (page % 64);

		if (w)
			return MIN(page + (u64)__builtin_ctzll(w), s->pages);
		page = (page / 64 + 1) * 64;
	}
	return s->pages;
}

/* Maps the stored pages of chunks [c0, c0 + k), checked: a run of stored
 * pages at a time, so that a whole 2 MiB block becomes one leaf at once
 * (mapping chunk by chunk made it 32 small fills and as many merge tries). */
static int lazy_map(struct vm *vm, struct lazy_src *s, u64 c0, u64 k)
{
	u64 hi = c0 + k < s->nchunks ? s->chunk_page[c0 + k] : s->pages;

	for (u64 p = s->chunk_page[c0]; p < hi;) {
		u64 end = MIN(lazy_next_hole(s, p), hi);
		int err = pager_filled(vm, p, end - p);

		if (err)
			return pager_fail(vm, err,
					  "lazy restore of '%s': %s could not map "
					  "guest-physical 0x%llx (%s)",
					  s->name, vcpu_ops->name,
					  (unsigned long long)(p * PAGE_SIZE), errno_name(err));
		p = lazy_next_stored(s, end);
	}
	return 0;
}

/*
 * Chunks [c0, c0 + k) into guest memory: their stored pages read straight
 * into place (one request per run contiguous in the guest and in one 2 MiB
 * block), each chunk's CRC checked, and only then mapped. A chunk that fails
 * its CRC, or a failed read, stops the VM naming the pages; the chunks
 * checked before it are mapped.
 */
static int lazy_load(struct vm *vm, struct lazy_src *s, u64 c0, u64 k)
{
	u64 n0 = c0 * s->ppc, n1 = MIN((c0 + k) * s->ppc, s->stored);
	u64 pg = s->chunk_page[c0];
	int err;

	for (u64 n = n0; n < n1;) {
		u64 run = 1;

		while (n + run < n1 && pg + run < s->pages && lazy_stored(s, pg + run) &&
		       (pg + run) % BLOCK_PAGES != 0)
			run++;
		err = lazy_read(vm, s, n, pg, run);
		if (err)
			return pager_fail(
				vm, err,
				"lazy restore of '%s': reading guest-physical 0x%llx-0x%llx "
				"(image bytes 0x%llx-0x%llx) failed: %s",
				s->name, (unsigned long long)(pg * PAGE_SIZE),
				(unsigned long long)((pg + run) * PAGE_SIZE - 1),
				(unsigned long long)(s->data_pos + n * PAGE_SIZE),
				(unsigned long long)(s->data_pos + (n + run) * PAGE_SIZE - 1),
				s->dev->error[0] ? s->dev->error : errno_name(err));
		n += run;
		pg = lazy_next_stored(s, pg + run);
	}
	/* Check each chunk; the ones before a failing chunk are mapped. */
	for (u64 c = c0; c < c0 + k; c++) {
		u64 first = c * s->ppc, last = MIN(first + s->ppc, s->stored) - 1;
		u64 p = s->chunk_page[c], lo = p, hi = p;
		u32 crc = 0;

		for (u64 n = first; n <= last; n++, p = lazy_next_stored(s, p + 1)) {
			crc = crc32c(crc, pager_ram(vm, p), PAGE_SIZE);
			hi = p;
		}
		if (crc == s->crc[c])
			continue;
		err = c > c0 ? lazy_map(vm, s, c0, c - c0) : 0;
		if (err)
			return err;
		return pager_fail(vm, -EBADMSG,
				  "lazy restore of '%s': stored pages %llu-%llu at guest-physical "
				  "0x%llx-0x%llx (image bytes 0x%llx-0x%llx) fail their CRC32C",
				  s->name, (unsigned long long)first, (unsigned long long)last,
				  (unsigned long long)(lo * PAGE_SIZE),
				  (unsigned long long)((hi + 1) * PAGE_SIZE - 1),
				  (unsigned long long)(s->data_pos + first * PAGE_SIZE),
				  (unsigned long long)(s->data_pos + (last + 1) * PAGE_SIZE - 1));
	}
	return lazy_map(vm, s, c0, k);
}

/* Every page of 2 MiB block b that the image leaves out and is not yet
 * there: zeroed and mapped, no read. */
static int lazy_zero_block(struct vm *vm, struct lazy_src *s, u64 b)
{
	u64 end = MIN((b + 1) * BLOCK_PAGES, s->pages);

	for (u64 p = b * BLOCK_PAGES; p < end;) {
		u64 run = 0;
		int err;

		while (p + run < end && !lazy_stored(s, p + run) && !pager_present(vm, p + run))
			run++;
		if (!run) {
			p++;
			continue;
		}
		memset(pager_ram(vm, p), 0, run * PAGE_SIZE);
		err = pager_filled(vm, p, run);
		if (err)
			return pager_fail(vm, err,
					  "lazy restore of '%s': %s could not map guest-physical "
					  "0x%llx (%s)",
					  s->name, vcpu_ops->name,
					  (unsigned long long)(p * PAGE_SIZE), errno_name(err));
		p += run;
	}
	return 0;
}

/* Chunks from c on that are not there yet, at most max_pages stored pages. */
static u64 lazy_missing_run(struct vm *vm, const struct lazy_src *s, u64 c, u64 max_pages)
{
	u64 k = 0;

	while (c + k < s->nchunks && k * s->ppc < max_pages &&
	       !pager_present(vm, s->chunk_page[c + k]))
		k++;
	return k;
}

static int lazy_fault(struct vm *vm, u64 page)
{
	struct lazy_src *s = vm->pager->ctx;
	u64 c;

	if (!lazy_stored(s, page))
		return lazy_zero_block(vm, s, page / BLOCK_PAGES);
	c = lazy_chunk_of(s, page);
	return lazy_load(vm, s, c, lazy_missing_run(vm, s, c, LAZY_FAULT_PAGES));
}

/* The next piece in image order: up to LAZY_PREFETCH_PAGES stored pages of
 * chunks not yet there (one read per 2 MiB block they fill), else the zero
 * pages of the next 2 MiB block. */
static int lazy_prefetch(struct vm *vm)
{
	struct lazy_src *s = vm->pager->ctx;
	u64 k;

	while (s->next_chunk < s->nchunks && pager_present(vm, s->chunk_page[s->next_chunk]))
		s->next_chunk++;
	k = lazy_missing_run(vm, s, s->next_chunk, LAZY_PREFETCH_PAGES);
	if (k)
		return lazy_load(vm, s, s->next_chunk, k);
	if (s->next_block * BLOCK_PAGES < s->pages)
		return lazy_zero_block(vm, s, s->next_block++);
	return 1;
}

static void lazy_src_free(struct lazy_src *s)
{
	if (!s)
		return;
	snap_mem_free(s->bitmap, snap_bitmap_words(s->pages) * sizeof(u64));
	snap_mem_free(s->crc, MAX(s->nchunks, 1) * sizeof(u32));
	snap_mem_free(s->chunk_page, MAX(s->nchunks, 1) * sizeof(u32));
	kfree(s);
}

static void lazy_release(struct vm *vm) { lazy_src_free(vm->pager->ctx); }

static const struct pager_ops lazy_ops = {
	.fault = lazy_fault,
	.prefetch = lazy_prefetch,
	.release = lazy_release,
};

/* A source over the extent of `e` on dev with a copy of region r's index. */
static struct lazy_src *lazy_src_new(struct blkdev *dev, const struct snap_entry *e,
				     const struct snap_region *r)
{
	struct lazy_src *s = kzalloc(sizeof(*s));
	u64 c = 0;

	if (!s)
		return NULL;
	s->dev = dev;
	s->start_block = e->start_block;
	s->blocks = snap_entry_blocks(e);
	strlcpy(s->name, e->name, sizeof(s->name));
	s->pages = r->pages;
	s->stored = r->stored;
	s->ppc = r->pages_per_crc;
	s->nchunks = (r->stored + r->pages_per_crc - 1) / r->pages_per_crc;
	s->data_pos = r->data_pos;
	s->bitmap = snap_mem_alloc(snap_bitmap_words(s->pages) * sizeof(u64));
	s->crc = snap_mem_alloc(MAX(s->nchunks, 1) * sizeof(u32));
	s->chunk_page = snap_mem_alloc(MAX(s->nchunks, 1) * sizeof(u32));
	if (!s->bitmap || !s->crc || !s->chunk_page) {
		lazy_src_free(s);
		return NULL;
	}
	memcpy(s->bitmap, r->bitmap, snap_bitmap_words(s->pages) * sizeof(u64));
	memcpy(s->crc, r->crc, s->nchunks * sizeof(u32));
	/* A word of the bitmap at a time: a full word (the usual case) places
	 * its chunk starts by arithmetic; a page-by-page walk cost about 25
	 * instructions a stored page, most of a small guest's restore. */
	for (u64 w = 0, n = 0; w < snap_bitmap_words(s->pages) && c < s->nchunks; w++) {
		u64 bits = s->bitmap[w];

		if (bits == ~0ULL) {
			for (; c < s->nchunks && c * s->ppc < n + 64; c++)
				s->chunk_page[c] = (u32)(w * 64 + c * s->ppc - n);
			n += 64;
			continue;
		}
		for (; bits && c < s->nchunks; bits &= bits - 1, n++)
			if (n == c * s->ppc)
				s->chunk_page[c++] = (u32)(w * 64 + (u64)__builtin_ctzll(bits));
	}
	return s;
}

int snap_lazy_reader(const struct blkdev *dev, u64 start_block)
{
	for (int id = 1; id <= VM_MAX; id++) {
		struct vm *vm = vm_get(id);
		const struct lazy_src *s;

		if (!vm || !pager_active(vm->pager) || vm->pager->ops != &lazy_ops)
			continue;
		s = vm->pager->ctx;
		if (s->dev == dev && s->start_block == start_block)
			return id;
	}
	return 0;
}

/* ---- snap restore NAME --lazy -------------------------------------------- */
static struct snap_parsed lz_parsed;
static struct vcpu_state lz_vstate[VM_MAX_VCPUS];

/* Checks what a lazy restore needs beyond snap_image_open()'s checks; says
 * why not and returns false. */
static bool lazy_restorable(const char *name, const struct snap_parsed *p,
			    const struct snap_entry *e)
{
	if (crc32c(0, p->hdr_raw, SNAP_HEADER_SIZE) != e->header_crc) {
		shell_error(-EBADMSG,
			    "catalog entry and image header of '%s' disagree (image\n"
			    "  overwritten?); restore refused, no VM created",
			    name);
		return false;
	}
	if (p->child) {
		shell_error(-EOPNOTSUPP,
			    "'%s' is an incremental image (its pages are spread\n"
			    "  over its chain); restore it without --lazy",
			    name);
		return false;
	}
	if (p->nregions != 1 || p->region[0].gpa != 0 || !p->region[0].bitmap ||
	    p->region[0].pages != p->hdr.memory_pages || !p->hdr.vcpu_count ||
	    p->hdr.vcpu_count > VM_MAX_VCPUS) {
		shell_error(-EOPNOTSUPP,
			    "'%s' has %u memory regions and %u vCPUs; this Amber\n"
			    "  restores one region at address 0 and at most %d vCPUs",
			    name, p->nregions, p->hdr.vcpu_count, VM_MAX_VCPUS);
		return false;
	}
	return true;
}

/* Makes the VM from the checked metadata: RAM unfilled behind a pager over
 * the image, devices and vCPUs set, visible, and running when it was saved
 * running or halted. Returns it, or NULL after saying why (nothing left). */
static struct vm *lazy_make(const char *name, struct blkdev *dev, int index,
			    const struct snap_entry *e, struct snap_source *src,
			    struct snap_report *rep, struct vm *into)
{
	struct snap_parsed *p = &lz_parsed;
	struct lazy_src *s;
	char source[48];
	struct vm *vm;
	int ret;

	for (u32 i = 0; i < p->hdr.vcpu_count; i++) {
		ret = snap_image_read_vcpu(src, p, i, &lz_vstate[i], rep);
		if (ret) {
			shell_error(ret, "vCPU %u of '%s': %s;\n  restore refused, no VM created",
				    i, name, ret == -EBADMSG ? rep->first : errno_name(ret));
			return NULL;
		}
	}
	if (snap_cpu_fits(name, p, lz_vstate))
		return NULL;
	vm = vm_create_hidden(p->dev.image[0] ? p->dev.image : "?", p->region[0].pages * PAGE_SIZE,
			      (int)p->hdr.vcpu_count, into);
	if (!vm) {
		shell_error(-ENOMEM, "could not create the VM (see above); nothing restored");
		return NULL;
	}
	s = lazy_src_new(dev, e, &p->region[0]);
	snprintf(source, sizeof(source), "snapshot '%s' on disk %d", name, index);
	ret = s ? pager_attach(vm, &lazy_ops, s, source) : -ENOMEM;
	if (ret) {
		lazy_src_free(s);
		shell_error(ret,
			    "%s cannot run a VM whose memory is still arriving (%s);\n"
			    "  nothing restored",
			    vcpu_ops->name, errno_name(ret));
		vm_destroy(vm);
		return NULL;
	}
	ret = snap_restore_commit(vm, p, lz_vstate);
	if (ret) {
		printk("snap restore: nothing restored\n");
		vm_destroy(vm);
		return NULL;
	}
	/* Published (a VM it replaced is gone): a VM that cannot run on stays,
	 * paused, rather than vanish. */
	if (vm->state == VM_PAUSED &&
	    (p->dev.vm_state == SNAP_VM_RUNNING || p->dev.vm_state == SNAP_VM_HALTED)) {
		ret = vm_resume(vm);
		if (ret)
			shell_error(ret, "VM %d could not run (%s); it stays paused", vm->id,
				    errno_name(ret));
	}
	return vm;
}

int snap_restore_lazy(const char *name, const char *disk_opt, struct vm *into)
{
	struct snap_report rep = { .emit = snap_report_print };
	const struct snap_entry *e;
	struct snap_source src;
	struct blkdev *dev;
	struct vm *vm = NULL;
	char mem[32], how[64];
	u64 t0, c0, b0;
	int index, entry, ret;

	entry = snap_open_entry(name, disk_opt, &dev, &index);
	if (entry < 0)
		return entry;
	e = &snap_store.entry[entry];
	ret = snap_source_get(&src, entry);
	if (ret)
		return ret;
	c0 = dev->commands;
	b0 = dev->bytes_read;
	t0 = ticks();
	/* The metadata, every CRC of it; the page data stays on the disk. */
	ret = snap_image_open(&src, &lz_parsed, &rep);
	if (ret == -EBADMSG)
		shell_error(ret,
			    "snapshot '%s' is damaged (%d problem%s, above);\n"
			    "  restore refused, no VM created",
			    name, rep.errors, rep.errors == 1 ? "" : "s");
	else if (ret)
		shell_error(ret, "reading '%s' failed: %s; no VM created", name,
			    snap_store.err[0] ? snap_store.err : errno_name(ret));
	else if (lazy_restorable(name, &lz_parsed, e))
		vm = lazy_make(name, dev, index, e, &src, &rep, into);
	else
		ret = -EOPNOTSUPP;
	if (!ret && !vm)
		ret = -EINVAL;
	snap_image_close(&lz_parsed);
	snap_source_put(&src);
	if (ret)
		return ret;
	if (vm->state == VM_RUNNING)
		strlcpy(how, "running, its pages arriving", sizeof(how));
	else if (vm->state == VM_PAUSED)
		snprintf(how, sizeof(how), "paused; 'vm resume %d' continues it", vm->id);
	else
		snprintf(how, sizeof(how), "%s, as it was saved", vm_state_name(vm->state));
	/* Microseconds: under QEMU's -icount shift=0 each is 1000 instructions,
	 * the figure `make bench` compares with a full restore. The layout is
	 * the full restore's: a summary line, aligned details in 80 columns. */
	format_size(mem, sizeof(mem), vm->mem_size);
	ctl_summary_next();
	printk("restored '%s' lazily as VM %d in %llu us, %s\n", name, vm->id,
	       (unsigned long long)(ticks() - t0), vm_state_name(vm->state));
	printk("  state:   %s\n", how);
	printk("  VM:      %s, %s of RAM, saved from VM %u\n", vm->image, mem, lz_parsed.dev.vm_id);
	printk("  read:    metadata checked, %llu bytes read in %llu commands; its %llu\n"
	       "           pages arrive as it touches them and in the background\n"
	       "           ('vm info %d' shows how far)\n",
	       (unsigned long long)(dev->bytes_read - b0), (unsigned long long)(dev->commands - c0),
	       (unsigned long long)(vm->mem_size / PAGE_SIZE), vm->id);
	snap_restore_json(name, vm,
			  &(struct snap_restore_figures){
				  .lazy = true,
				  .total_us = ticks() - t0,
				  .bytes_read = dev->bytes_read - b0,
				  .disk_commands = dev->commands - c0,
			  });
	return 0;
}
