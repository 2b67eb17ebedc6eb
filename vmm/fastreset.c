/*
 * Fast reset (vmm/fastreset.h): the base in 2 MiB chunks from the page
 * allocator, restored page by page from the dirty log. A reset costs the
 * log's harvest (a walk of the EPT/NPT leaves), a 4 KiB copy per dirty page
 * and the vCPU and device state: no disk, no CRC, no look at clean pages.
 * Host context, boot CPU, the VM out of guest mode (paused, or on the exit
 * path of one of its vCPUs).
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/time.h"
#include "kernel/x86.h"
#include "vmm/fastreset.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

u64 fastreset_base_bytes(const struct vm *vm) { return vm->nchunks * VM_CHUNK_SIZE; }

u64 fastreset_free_bytes(void)
{
	u64 free_bytes = pmm_free_pages() * PAGE_SIZE;

	return free_bytes > VM_HOST_RESERVE ? free_bytes - VM_HOST_RESERVE : 0;
}

static void base_free(struct fastreset_base *b)
{
	for (u64 i = 0; b->chunks && i < b->nchunks; i++)
		if (b->chunks[i])
			pmm_free_2m(b->chunks[i]);
	kfree(b->chunks);
	for (int i = 0; i < VM_MAX_VCPUS; i++)
		kfree(b->vcpu[i]);
	kfree(b->devrec);
	kfree(b);
}

static u64 devrec_bytes(void)
{
	u64 n = 0;

	for (int i = 0; i < vdev_count(); i++)
		n += vdev_at(i)->record_size;
	return n;
}

/* A base of the right size with nothing in it, or NULL: host memory short.
 * Leaves the host its reserve, as vm create does. */
static struct fastreset_base *base_alloc(struct vm *vm)
{
	struct fastreset_base *b;

	if (fastreset_base_bytes(vm) > fastreset_free_bytes())
		return NULL;
	b = kzalloc(sizeof(*b));
	if (!b)
		return NULL;
	b->nchunks = vm->nchunks;
	b->chunks = kzalloc(b->nchunks * sizeof(u64));
	b->devrec = kzalloc(devrec_bytes());
	if (!b->chunks || !b->devrec)
		goto fail;
	for (int i = 0; i < vm->nvcpus; i++) {
		b->vcpu[i] = kzalloc(sizeof(struct vcpu_state));
		if (!b->vcpu[i])
			goto fail;
	}
	for (u64 i = 0; i < b->nchunks; i++) {
		b->chunks[i] = pmm_alloc_2m_uninit();
		if (!b->chunks[i])
			goto fail;
	}
	return b;
fail:
	base_free(b);
	return NULL;
}

/* The device records in and out, in vdev_at() order. */
static void devices_save(struct vm *vm, u8 *rec)
{
	for (int i = 0; i < vdev_count(); i++) {
		const struct vdev *d = vdev_at(i);

		vdev_save(vm, d, rec);
		rec += d->record_size;
	}
}

static int devices_load(struct vm *vm, const u8 *rec)
{
	for (int i = 0; i < vdev_count(); i++) {
		const struct vdev *d = vdev_at(i);
		const char *why;
		int err = vdev_load(vm, d, rec, d->record_size, d->version, &why);

		if (err)
			return err; /* Amber's own record: never expected */
		rec += d->record_size;
	}
	return 0;
}

int fastreset_take(struct vm *vm)
{
	struct fastreset_base *b, *old = vm->base;
	bool own_log = old ? old->own_log : false;
	int err;

	/* The old base goes first: two at once would double what a large guest
	 * needs. */
	vm->base = NULL;
	if (old) {
		old->own_log = false; /* the log stays on for the new base */
		base_free(old);
	}
	b = base_alloc(vm);
	if (!b) {
		err = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		err = vcpu_get_state(v, b->vcpu[i]);
		if (err)
			goto fail;
		/* A paused guest's TSC stands still at the value it resumes with. */
		if (vm->state == VM_PAUSED)
			b->vcpu[i]->tsc = v->frozen_tsc;
	}
	devices_save(vm, b->devrec);
	if (!vm->dirty.on) {
		err = vm_dirty_start(vm);
		if (err)
			goto fail;
		own_log = true;
	} else {
		err = vm_dirty_sync(vm);
		if (err)
			goto fail;
	}
	for (u64 i = 0; i < b->nchunks; i++) {
		u64 len = MIN(VM_CHUNK_SIZE, vm->mem_size - i * VM_CHUNK_SIZE);

		memcpy(phys_to_virt(b->chunks[i]), phys_to_virt(vm->chunks[i]), len);
	}
	dirty_log_clear(&vm->dirty);
	b->own_log = own_log;
	vm->base = b;
	return 0;
fail:
	if (own_log)
		vm_dirty_stop(vm);
	if (b)
		base_free(b);
	return err;
}

int fastreset_reset(struct vm *vm)
{
	struct fastreset_base *b = vm->base;
	const struct dirty_log *l = &vm->dirty;
	u64 t0 = ticks(), c0 = rdtsc(), n = 0;
	int err;

	if (!b)
		return -ENOENT;
	err = vm_dirty_sync(vm);
	if (err)
		return err;
	for (u64 p = dirty_log_next(l, 0); p < l->npages; p = dirty_log_next(l, p + 1)) {
		u64 gpa = p * PAGE_SIZE;
		const u8 *src = (const u8 *)phys_to_virt(b->chunks[gpa / VM_CHUNK_SIZE]) +
				gpa % VM_CHUNK_SIZE;

		memcpy(gpa_to_hva(vm, gpa, PAGE_SIZE), src, PAGE_SIZE);
		n++;
	}
	dirty_log_clear(&vm->dirty);
	for (int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		err = vcpu_set_state(v, b->vcpu[i]);
		if (err)
			return err;
		v->frozen_tsc = b->vcpu[i]->tsc; /* what `vm resume` loads */
		v->intr_dirty = true;
	}
	err = devices_load(vm, b->devrec);
	if (err)
		return err;
	vm->reset_pending = false;
	b->resets++;
	b->pages_last = n;
	b->pages_total += n;
	b->us_last = ticks() - t0;
	b->tsc_last = rdtsc() - c0;
	b->tsc_total += b->tsc_last;
	return 0;
}

struct fastreset_base *fastreset_alloc(struct vm *vm) { return base_alloc(vm); }

void fastreset_free(struct fastreset_base *b) { base_free(b); }

int fastreset_adopt(struct vm *vm, struct fastreset_base *b)
{
	struct fastreset_base *old = vm->base;
	bool own_log = old ? old->own_log : false;
	int err;

	vm->base = NULL;
	if (old) {
		old->own_log = false;
		base_free(old);
	}
	if (!vm->dirty.on) {
		err = vm_dirty_start(vm);
		if (err) {
			base_free(b);
			return err;
		}
		own_log = true;
	}
	b->own_log = own_log;
	vm->base = b;
	/* Every page differs from the base here: mark them all, and the reset
	 * copies the whole of RAM. */
	dirty_log_mark(&vm->dirty, 0, vm->mem_size);
	err = fastreset_reset(vm);
	b->resets = b->pages_total = b->tsc_total = 0; /* that was no reset */
	return err;
}

void fastreset_drop(struct vm *vm)
{
	struct fastreset_base *b = vm->base;

	if (!b)
		return;
	vm->base = NULL;
	if (b->own_log)
		vm_dirty_stop(vm);
	base_free(b);
}
