/*
 * The table of emulated devices and what is done through it: allocation and
 * reset with the VM, port dispatch, the lazy catch-up of time-driven devices,
 * device records for snapshots, and the ISA interrupt lines between them.
 * Host context, boot CPU.
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

extern const struct vdev vdev_uart, vdev_pit, vdev_pic, vdev_kbd, vdev_cmos, vdev_vga, vdev_board,
	vdev_fwcfg, vdev_lapic, vdev_ioapic, vdev_pm;

/* Reset, sync and restore run in this order: the interrupt controllers
 * (LAPICs first: the IOAPIC and the PIC deliver to them) before the timers
 * that drive their lines. */
static const struct vdev *const vdev_table[] = {
	&vdev_lapic, &vdev_ioapic, &vdev_pic,	&vdev_uart,  &vdev_pit, &vdev_kbd,
	&vdev_cmos,  &vdev_vga,	   &vdev_board, &vdev_fwcfg, &vdev_pm,
};

#define RECORD_MAX 4096 /* the largest record any device declares (checked) */

const struct vdev *vdev_find(u32 id)
{
	for (unsigned i = 0; i < ARRAY_SIZE(vdev_table); i++)
		if (vdev_table[i]->id == id)
			return vdev_table[i];
	return NULL;
}

int vdev_count(void) { return (int)ARRAY_SIZE(vdev_table); }

const struct vdev *vdev_at(int i) { return i >= 0 && i < vdev_count() ? vdev_table[i] : NULL; }

void vdev_reset_all(struct vm *vm)
{
	for (unsigned i = 0; i < ARRAY_SIZE(vdev_table); i++) {
		const struct vdev *d = vdev_table[i];

		memset((u8 *)vm->dev[d->id] + d->keep_size, 0, d->state_size - d->keep_size);
		d->reset(vm, vm->dev[d->id]);
	}
}

int vdev_alloc_all(struct vm *vm)
{
	for (unsigned i = 0; i < ARRAY_SIZE(vdev_table); i++) {
		const struct vdev *d = vdev_table[i];

		BUG_ON(d->id <= 0 || d->id >= VDEV_ID_MAX || vm->dev[d->id]);
		BUG_ON(d->record_size > RECORD_MAX || d->record_size % 8);
		BUG_ON(d->keep_size > d->state_size);
		vm->dev[d->id] = kzalloc(d->state_size);
		if (!vm->dev[d->id])
			return -ENOMEM;
	}
	vdev_reset_all(vm);
	return 0;
}

void vdev_free_all(struct vm *vm)
{
	for (int id = 0; id < VDEV_SLOTS; id++) {
		kfree(vm->dev[id]);
		vm->dev[id] = NULL;
	}
}

bool vdev_io(struct vcpu *v, u16 port, u8 size, bool in, u32 *val)
{
	for (unsigned i = 0; i < ARRAY_SIZE(vdev_table); i++) {
		const struct vdev *d = vdev_table[i];

		for (unsigned k = 0; k < ARRAY_SIZE(d->ports); k++) {
			const struct vdev_ports *p = &d->ports[k];

			if (port >= p->base && port - p->base < p->count)
				return d->io(v, v->vm->dev[d->id], port, size, in, val);
		}
	}
	return false;
}

void vdev_sync(struct vm *vm, u64 tsc)
{
	for (unsigned i = 0; i < ARRAY_SIZE(vdev_table); i++) {
		const struct vdev *d = vdev_table[i];

		if (d->sync)
			d->sync(vm, vm->dev[d->id], tsc);
	}
}

u64 vdev_deadline(struct vm *vm)
{
	u64 first = ~0ULL;

	for (unsigned i = 0; i < ARRAY_SIZE(vdev_table); i++) {
		const struct vdev *d = vdev_table[i];

		if (d->deadline)
			first = MIN(first, d->deadline(vm, vm->dev[d->id]));
	}
	return first;
}

int vdev_save(struct vm *vm, const struct vdev *dev, u8 *out)
{
	struct rec r = { out, true };
	const char *why;

	memset(out, 0, dev->record_size);
	return dev->state(vm, vm->dev[dev->id], &r, dev->version, &why);
}

/*
 * A record is decoded from a zeroed copy of the device's full record size, so
 * a shorter record of an older version reads zero where it has no field, and
 * a device's state() never reads past what the image held. The live state is
 * changed only when the whole record was good: a refused record leaves the
 * device as it was.
 */
int vdev_load(struct vm *vm, const struct vdev *dev, const u8 *in, u32 len, u32 version,
	      const char **why)
{
	static u8 buf[RECORD_MAX];
	struct rec r = { buf, false };
	void *st = vm->dev[dev->id];
	u8 *copy;
	int ret;

	if (version < 1 || version > dev->version) {
		*why = "record version unknown to this Amber";
		return -EINVAL;
	}
	if (len > dev->record_size) {
		*why = "record longer than its version allows";
		return -EINVAL;
	}
	memset(buf, 0, sizeof(buf));
	memcpy(buf, in, len);
	copy = kmalloc(dev->state_size); /* to put back if the record is bad */
	if (!copy) {
		*why = "out of memory";
		return -ENOMEM;
	}
	memcpy(copy, st, dev->state_size);
	ret = dev->state(vm, st, &r, version, why);
	if (ret)
		memcpy(st, copy, dev->state_size);
	kfree(copy);
	return ret;
}

/* ---- ISA interrupt lines ------------------------------------------------ */

/* An ISA line ends at the 8259A pair and at an IOAPIC pin: IRQ0 at GSI 2
 * (the MADT's interrupt source override; IOAPIC pin 0 is the 8259A's
 * INTR), the others at the pin of their number. ACPI 6.4 5.2.12.5
 * "Interrupt Source Override Structure". */
void vm_set_irq(struct vm *vm, unsigned irq, bool level)
{
	vpic_set_irq(vm, irq, level);
	if (irq == PLAT_IRQ_PIT)
		vioapic_set_irq(vm, PLAT_GSI_PIT, level);
	else if (irq != 2 && irq < 16)
		vioapic_set_irq(vm, irq, level);
}
