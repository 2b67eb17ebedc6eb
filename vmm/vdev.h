/*
 * Emulated devices. Each lives in its own vmm/dev_*.c, owns its per-VM state
 * (vm->dev[id], allocated from the size it declares) and is described by one
 * struct vdev in vdev_table (vmm/vdev.c): the table gives the VMM its port
 * dispatch, reset and interrupt lines, and the snapshot its device records.
 * A device's state() moves its whole state to and from its record in one
 * function for both directions (bhyve's vmm_snapshot rule), so a field cannot
 * be saved and forgotten on restore. Adding a device: its file, one vdev_id
 * and one table entry. Host context, on a vCPU's exit path, the shell or a
 * snapshot, boot CPU.
 */
#ifndef AMBER_VDEV_H
#define AMBER_VDEV_H

#include "kernel/record.h"
#include "vmm/vdev_id.h"
#include "vmm/vmm.h"

_Static_assert(VDEV_ID_MAX <= VDEV_SLOTS, "struct vm has a slot for every device id");

struct vdev_ports {
	u16 base, count; /* count 0: unused slot */
};

struct vdev {
	enum vdev_id id; /* vdev_id_name() names it */
	u32 version;	 /* of the record this Amber writes; older ones are read */
	u32 record_size; /* bytes of that record, a multiple of 8 */
	u32 state_size;	 /* bytes of live state in vm->dev[id] */
	/* Bytes at the start of that state that a machine reset keeps (the CMOS's
	 * battery-backed memory and clock); 0 for most devices. */
	u32 keep_size;
	struct vdev_ports ports[3];
	/* Power-on state (st is zeroed before, past keep_size). */
	void (*reset)(struct vm *vm, void *st);
	/* One access of `size` (1, 2, 4) bytes to one of the device's ports;
	 * *val is the value written or receives the value read. Returns false
	 * when the device does not answer that port at that size. */
	bool (*io)(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val);
	/* Optional: brings outputs that depend on time (a timer's interrupt line)
	 * up to guest TSC `tsc`. Called before anyone looks at interrupt lines. */
	void (*sync)(struct vm *vm, void *st, u64 tsc);
	/* Optional: the guest TSC at which the device next changes an
	 * interrupt line by itself (a timer expiring), or ~0ULL when nothing is
	 * due. The scheduler runs the guest no longer than that, and wakes
	 * halted vCPUs then, so that sync() sees the expiry in time. */
	u64 (*deadline)(struct vm *vm, void *st);
	/* Moves the state into the record (r->enc) or out of a record written
	 * with `version` (1..vdev.version). Decoding checks what it reads and
	 * returns 0 or -EINVAL with *why set: an image is trusted no further than
	 * its CRCs reach. Encoding always returns 0. */
	int (*state)(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why);
};

/* The device with that record id, or NULL. */
const struct vdev *vdev_find(u32 id);
/* The table in id order, for walks: vdev_at(i) for i < vdev_count(). */
int vdev_count(void);
const struct vdev *vdev_at(int i);

/* Allocates and resets every device's state for a new VM; 0 or -ENOMEM
 * (vdev_free_all undoes a partial allocation). */
int vdev_alloc_all(struct vm *vm);
void vdev_free_all(struct vm *vm);
/* Power-on state of every device (a new VM, a machine reset). */
void vdev_reset_all(struct vm *vm);
/* Port dispatch: true when a device answered. */
bool vdev_io(struct vcpu *v, u16 port, u8 size, bool in, u32 *val);
/* Runs every device's sync() up to guest TSC `tsc`. */
void vdev_sync(struct vm *vm, u64 tsc);
/* The earliest deadline() of vm's devices, ~0ULL when none is due. */
u64 vdev_deadline(struct vm *vm);

/* Device record <-> live state: encodes into out[dev->record_size], or
 * decodes a record of `version` (checked: 1..dev->version) and `len` bytes
 * (at least what that version needs). Returns 0 or -EINVAL with *why. */
int vdev_save(struct vm *vm, const struct vdev *dev, u8 *out);
int vdev_load(struct vm *vm, const struct vdev *dev, const u8 *in, u32 len, u32 version,
	      const char **why);

/* ---- time ---------------------------------------------------------------- */
/* The guest TSC's rate, with a stand-in for a VM that has none set yet. */
static inline u64 vdev_tsc_hz(const struct vm *vm)
{
	return vm->guest_tsc_hz ? vm->guest_tsc_hz : 1000000000ULL;
}

/* ticks * rate / hz exactly in 64 bits (the kernel links no 128-bit
 * division): rate and the remainder are small enough. */
static inline u64 vdev_scale(u64 ticks, u64 rate, u64 hz)
{
	return ticks / hz * rate + ticks % hz * rate / hz;
}

/* ---- interrupt lines --------------------------------------------------- */
/* Drives ISA interrupt line `irq` (0-15) to `level`: edge devices pulse it.
 * The lines end at the 8259A pair and the IOAPIC (vmm/intr.h). */
void vm_set_irq(struct vm *vm, unsigned irq, bool level);

/* The 8259A pair (vmm/dev_pic.c): its 16 request lines (IRQ2 is the cascade
 * and cannot be driven from outside), the interrupt it asserts to the CPU, and
 * the acknowledge cycle that takes it (returns the vector, a spurious IR7
 * vector when the request went away). */
void vpic_set_irq(struct vm *vm, unsigned irq, bool level);
bool vpic_intr(struct vm *vm);
u8 vpic_ack(struct vm *vm);

#endif
