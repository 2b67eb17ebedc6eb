/*
 * Guest-physical ranges that devices emulate (MMIO): a device registers a
 * range with read and write handlers; a guest access there exits (the range
 * has no RAM behind it in EPT/NPT), and the instruction, decoded by
 * vmm/insn.c, is carried out against the handlers here. Pure C: host context
 * on a vCPU's exit path, and the host unit tests.
 */
#ifndef AMBER_MMIO_H
#define AMBER_MMIO_H

#include "kernel/types.h"
#include "vmm/insn.h"

#define MMIO_MAX_REGIONS 8

/* A device's handlers: `ctx` is the accessing vCPU (struct vcpu *, opaque
 * here so that this file stays pure; the local APIC answers each vCPU with
 * its own registers), offset from the region's base, size 1, 2, 4 or 8
 * (never crossing the region's end). Return 0, or a negative errno that
 * stops the guest with a report naming the device. */
struct mmio_ops {
	int (*read)(void *dev, void *ctx, u64 offset, u8 size, u64 *val);
	int (*write)(void *dev, void *ctx, u64 offset, u8 size, u64 val);
};

struct mmio_region {
	const char *name;
	u64 base, size;
	const struct mmio_ops *ops;
	void *dev;
};

struct mmio_bus {
	struct mmio_region regions[MMIO_MAX_REGIONS];
	unsigned n;
};

/* Adds [base, base + size) for dev. Returns 0, -EINVAL (empty or wrapping
 * range, missing handler), -EEXIST (overlaps a registered range) or -ENOSPC. */
int mmio_register(struct mmio_bus *bus, const char *name, u64 base, u64 size,
		  const struct mmio_ops *ops, void *dev);

/* Removes the region that starts at base (a device that moves, such as a
 * relocated local APIC page). Returns 0 or -ENOENT. */
int mmio_unregister(struct mmio_bus *bus, u64 base);

/* The region holding gpa, or NULL. */
const struct mmio_region *mmio_find(const struct mmio_bus *bus, u64 gpa);

/* Carries out the memory access of the decoded instruction `in`, at gpa in
 * region r on behalf of vCPU ctx: a store writes, a load reads into the register (zero or sign
 * extended), XCHG/ADD/OR/AND read then write and update regs and *rflags.
 * Returns 0; -ERANGE when the access leaves the region; -EOPNOTSUPP for INS
 * and OUTS (string I/O to MMIO is not emulated); or the handler's error. On
 * an error no register has changed. */
int mmio_execute(const struct mmio_region *r, void *ctx, const struct insn *in, u64 gpa,
		 u64 regs[NR_VCPU_REGS], u64 *rflags);

#endif
