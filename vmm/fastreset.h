/*
 * Fast reset: a VM's base kept in host memory (a copy of its RAM, every
 * vCPU's state, every device's record) and a reset that copies back only the
 * pages the dirty log (vmm/dirtylog.h) saw written since the last reset. The
 * shell (`snap reset`, snapshot/cmd_reset.c) and the guest's hypercalls
 * (vmm/hypercall.c) drive it. Host context, boot CPU, VM out of guest mode.
 */
#ifndef AMBER_FASTRESET_H
#define AMBER_FASTRESET_H

#include "vmm/vmm.h"

struct fastreset_base {
	u64 nchunks;
	u64 *chunks; /* host-physical 2 MiB copies of the VM's RAM chunks */
	struct vcpu_state *vcpu[VM_MAX_VCPUS];
	u8 *devrec;	 /* every device's record, in vdev_at() order */
	bool own_log;	 /* the base started the dirty tracking */
	u64 resets;	 /* resets to this base */
	u64 pages_last;	 /* pages the last reset copied back */
	u64 pages_total; /* ... and all resets together */
	u64 us_last;	 /* microseconds the last reset took */
	/* Host TSC ticks the last reset took, and all of them: under QEMU
	 * -icount a tick is an instruction (make bench). */
	u64 tsc_last;
	u64 tsc_total;
};

/* Host memory a base of vm needs, in bytes (its RAM rounded to 2 MiB). */
u64 fastreset_base_bytes(const struct vm *vm);
/* Host memory a base may take now: what is free beyond the host's reserve. */
u64 fastreset_free_bytes(void);
/* Takes vm's base now, replacing one it had: RAM copied, every vCPU's state
 * (a paused VM's frozen TSC) and device record saved, the dirty log on and
 * clear. Returns 0, -ENOMEM (host memory short: vm keeps no base), or the
 * errno of the state read or of the dirty tracking (-EOPNOTSUPP). Prints
 * nothing; the caller says why. */
int fastreset_take(struct vm *vm);
/* Returns vm to its base: the pages dirty since the base or the last reset
 * copied back, the log cleared, every vCPU's state (TSC included, frozen_tsc
 * too) and every device's record loaded. 0, -ENOENT (no base), -EINVAL (the
 * dirty log was stopped under the base), or the backend's errno from a vCPU
 * (then the VM is half reset and the caller must stop it). */
int fastreset_reset(struct vm *vm);
/* A base for vm filled from elsewhere (a snapshot image, snapshot/
 * cmd_reset.c): fastreset_alloc gives an empty one (NULL: host memory short),
 * the caller fills its chunks, vcpu[] and devrec (vdev_at() order, this
 * Amber's record versions), then fastreset_adopt makes it vm's base, the old
 * one freed, and returns vm to it in full: every page copied, the state
 * loaded, the log on and clear. Returns 0 or an errno as fastreset_reset
 * (on -EOPNOTSUPP or -ENOMEM from the tracking, b is freed and vm has no base
 * but is unchanged). fastreset_free frees a base never adopted. */
struct fastreset_base *fastreset_alloc(struct vm *vm);
void fastreset_free(struct fastreset_base *b);
int fastreset_adopt(struct vm *vm, struct fastreset_base *b);
/* Frees vm's base and stops the tracking it started; nothing without one
 * (vm_destroy calls it). */
void fastreset_drop(struct vm *vm);

#endif
