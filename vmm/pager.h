/*
 * RAM that arrives after the VM starts (lazy restore): a VM whose pages are
 * not all filled yet runs with the missing ones unmapped in the EPT/NPT. The
 * first access to one (VMEXIT_MEM) or Amber's own (gpa_to_hva) has its source
 * fill it; the scheduler's idle turns fill the rest in large pieces until the
 * VM is resident. Generic: the source (snapshot/lazy.c) knows where pages come
 * from, the backend only maps them. Host context, boot CPU, interrupts off.
 */
#ifndef AMBER_PAGER_H
#define AMBER_PAGER_H

#include "kernel/types.h"

struct vm;
struct vcpu;
struct vm_exit;

struct pager_ops {
	/* Fills guest page `page` (not present) and whatever its source
	 * delivers with it, each run announced with pager_filled(). Returns 0,
	 * or a negative errno after pager_fail() said why. */
	int (*fault)(struct vm *vm, u64 page);
	/* Fills one large piece of what is still missing: 0 after progress,
	 * 1 when nothing is left, or a negative errno after pager_fail(). */
	int (*prefetch)(struct vm *vm);
	/* Frees the source's state (the VM is resident, failed or destroyed). */
	void (*release)(struct vm *vm);
};

struct pager {
	const struct pager_ops *ops; /* NULL once released */
	void *ctx;		     /* the source's */
	char source[48];	     /* "snapshot 'mt' on disk 0", for messages */
	u64 *present;		     /* bit p: page p filled and mapped */
	u64 alloc;		     /* host pages under present */
	u64 npages, resident;
	u64 faults;	/* fills a guest access waited for */
	u64 host_fills; /* fills Amber's own access to guest memory needed */
	u64 prefetches; /* pieces the idle turns filled */
	u64 started;	/* ticks() at attach */
	u64 done_us;	/* how long until resident, 0 before */
	bool done;	/* every page filled and mapped */
	int failed;	/* errno of the fill that stopped the VM, 0 */
};

/* Gives vm (hidden or paused, none of its RAM filled) a pager: every RAM page
 * unmapped, none present. 0, -ENOMEM or -EOPNOTSUPP (the backend cannot). */
int pager_attach(struct vm *vm, const struct pager_ops *ops, void *ctx, const char *source);
/* Frees the pager (vm_destroy). */
void pager_free(struct vm *vm);
/* Host address of guest page `page` without filling it: for the source only. */
u8 *pager_ram(struct vm *vm, u64 page);
bool pager_present(const struct vm *vm, u64 page);
/* The source filled pages [first, first + count): they are mapped and count
 * as present. 0, or the backend's errno (the caller fails). */
int pager_filled(struct vm *vm, u64 first, u64 count);
/* The source cannot go on: the VM is stopped with `why` (a page named), its
 * missing pages stay missing and the source is released. Returns err. */
int pager_fail(struct vm *vm, int err, const char *fmt, ...) __printf(3, 4);

/* vm has pages still to come (and has not failed). */
static inline bool pager_active(const struct pager *p) { return p && !p->done && !p->failed; }

/* The exit path's "page missing" hook: a VMEXIT_MEM inside RAM of a VM with
 * a pager. Fills the page and resumes, or stops the VM (EXIT_YIELD). */
int pager_fault(struct vcpu *v, struct vm_exit *e);
/* Fills every missing page of [gpa, gpa + len) (gpa_to_hva). 0, or -EIO
 * when one could not be filled (the VM was stopped). */
int pager_fill_range(struct vm *vm, u64 gpa, u64 len);
/* Prefetch pieces for the VMs that still have pages to come, one VM after
 * the other, for about budget_us (at least one piece). Returns true when it
 * did work (the scheduler's idle turn then does not sleep). */
bool pager_idle(u64 budget_us);
/* While RAM is arriving the prefetch gets this many times the CPU time the
 * guests just had: the fill ends little later than a full restore would
 * (issue 16 asks at most 1.1 times), and the guests still run meanwhile,
 * their own faults served at once (a fault's fill counts as their time, so
 * it buys the prefetch more). With 9 a compute-bound guest took 10 % of the
 * CPU, most of the margin: the fill itself costs about what a full restore
 * does (docs/performance.md). A vCPU of such a VM runs slices of
 * PAGER_SLICE_US, so that a turn of PAGER_SHARE slices fits under
 * PAGER_TURN_MAX_US. */
#define PAGER_SHARE 19
#define PAGER_SLICE_US 5000
#define PAGER_TURN_MAX_US 100000 /* the shell looks at the console between turns */
/* Fills everything still missing, now (before a save or dirty tracking):
 * 0, or a negative errno after saying why. */
int pager_finish(struct vm *vm, const char *for_what);
/* "62% resident (10240 of 16384 pages) from snapshot ..." for vm info. */
void pager_describe(const struct vm *vm, char *buf, size_t len);

#endif
