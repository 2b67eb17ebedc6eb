/*
 * The 82093AA I/O APIC at PLAT_IOAPIC_BASE (vmm/intr.h). 82093AA datasheet.
 * Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "vmm/intr.h"
#include "vmm/vdev.h"

void vioapic_set_irq(struct vm *vm, unsigned gsi, bool level) {}

void vioapic_eoi(struct vm *vm, u8 vector) {}
