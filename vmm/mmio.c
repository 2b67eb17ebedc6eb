/*
 * The MMIO bus of a VM (see vmm/mmio.h): which device owns a guest-physical
 * address, and one decoded instruction carried out against its handlers.
 * Pure C: host context on a vCPU's exit path, and the host unit tests.
 */
#include "vmm/mmio.h"

int mmio_register(struct mmio_bus *bus, const char *name, u64 base, u64 size,
		  const struct mmio_ops *ops, void *dev)
{
	if (!size || base + size - 1 < base || !ops || !ops->read || !ops->write)
		return -EINVAL;
	for (unsigned i = 0; i < bus->n; i++) {
		const struct mmio_region *r = &bus->regions[i];

		if (base <= r->base + r->size - 1 && r->base <= base + size - 1)
			return -EEXIST;
	}
	if (bus->n >= MMIO_MAX_REGIONS)
		return -ENOSPC;
	bus->regions[bus->n++] = (struct mmio_region){
		.name = name, .base = base, .size = size, .ops = ops, .dev = dev
	};
	return 0;
}

int mmio_unregister(struct mmio_bus *bus, u64 base)
{
	for (unsigned i = 0; i < bus->n; i++) {
		if (bus->regions[i].base != base)
			continue;
		bus->regions[i] = bus->regions[--bus->n];
		return 0;
	}
	return -ENOENT;
}

const struct mmio_region *mmio_find(const struct mmio_bus *bus, u64 gpa)
{
	for (unsigned i = 0; i < bus->n; i++) {
		const struct mmio_region *r = &bus->regions[i];

		if (gpa >= r->base && gpa - r->base < r->size)
			return r;
	}
	return NULL;
}

int mmio_execute(const struct mmio_region *r, void *ctx, const struct insn *in, u64 gpa,
		 u64 regs[NR_VCPU_REGS], u64 *rflags)
{
	u64 off = gpa - r->base, val = 0, out, saved[NR_VCPU_REGS], fl = *rflags;
	int err;

	if (gpa < r->base || off >= r->size || in->size > r->size - off)
		return -ERANGE;
	switch (in->op) {
	case INSN_MOV_STORE:
		return r->ops->write(r->dev, ctx, off, in->size, insn_source(in, regs));
	case INSN_MOV_LOAD:
	case INSN_MOVZX:
	case INSN_MOVSX:
		err = r->ops->read(r->dev, ctx, off, in->size, &val);
		if (!err)
			insn_complete_load(in, regs, val);
		return err;
	case INSN_XCHG:
	case INSN_ADD:
	case INSN_OR:
	case INSN_AND:
		/* A locked read-modify-write: nothing else runs in this VM
		 * between the two handler calls (one vCPU, exit path). */
		err = r->ops->read(r->dev, ctx, off, in->size, &val);
		if (err)
			return err;
		for (int i = 0; i < NR_VCPU_REGS; i++)
			saved[i] = regs[i];
		out = insn_rmw(in, regs, &fl, val);
		err = r->ops->write(r->dev, ctx, off, in->size, out);
		if (err) {
			for (int i = 0; i < NR_VCPU_REGS; i++)
				regs[i] = saved[i];
			return err;
		}
		*rflags = fl;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}
