/*
 * Offsets the assembly entry stubs (vmm/vmx/vmx_entry.asm, vmm/svm/svm_entry.asm)
 * need, generated from the C structures so they are never typed twice. Compiled
 * to assembly only (never linked); the Makefile turns the "@@ASMOFF name value"
 * lines into $(BUILD)/asm-offsets.inc, a list of nasm %defines.
 */
#include <stddef.h>
#include "vmm/vmm.h"
#include "vmm/vmx/vmx_defs.h"

#define DEFINE(sym, val) __asm__ volatile("\n@@ASMOFF " #sym " %c0" ::"i"(val))
#define REG(name) DEFINE(VCPU_##name, offsetof(struct vcpu, regs) + REG_##name * 8)

void asm_offsets(void);
void asm_offsets(void)
{
	REG(RAX);
	REG(RCX);
	REG(RDX);
	REG(RBX);
	REG(RSP);
	REG(RBP);
	REG(RSI);
	REG(RDI);
	REG(R8);
	REG(R9);
	REG(R10);
	REG(R11);
	REG(R12);
	REG(R13);
	REG(R14);
	REG(R15);
	DEFINE(VCPU_REGS, offsetof(struct vcpu, regs));
	DEFINE(VCPU_ARCH, offsetof(struct vcpu, arch));
	/* vmx_entry.asm writes HOST_RSP itself, just before VMLAUNCH/VMRESUME. */
	DEFINE(VMCS_HOST_RSP, HOST_RSP);
}
