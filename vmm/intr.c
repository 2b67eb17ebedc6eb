/*
 * Interrupt delivery to vCPUs (vmm/intr.h): the generic side decides what a
 * vCPU takes next; the backends inject it. Host context, boot CPU.
 */
#include "vmm/intr.h"

void vcpu_kick(struct vcpu *v) { v->kicked = true; }

void vm_kick(struct vm *vm)
{
	for (int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
}
