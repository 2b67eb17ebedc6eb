/*
 * CPU tables and exceptions of the host: GDT with a TSS, IDT, the exception
 * dump, and the exception-fixup table that makes rdmsr_safe() possible.
 */
#ifndef AMBER_TRAPS_H
#define AMBER_TRAPS_H

#include "kernel/types.h"

#define GDT_KERNEL_CS 0x08
#define GDT_KERNEL_DS 0x10
#define GDT_TSS 0x18

/* Registers saved by the exception entry stubs (kernel/isr.asm), lowest address first. */
struct trap_frame {
	u64 rax, rbx, rcx, rdx, rsi, rdi, rbp;
	u64 r8, r9, r10, r11, r12, r13, r14, r15;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};
_Static_assert(sizeof(struct trap_frame) == 22 * 8, "trap_frame must match kernel/isr.asm");

/* Boot CPU: the shared IDT, CPU 0's GDT and TSS, the PICs masked. */
void traps_init(void);
/* Loads CPU cpu_index's own GDT and TSS (IST1 #DF, IST2 NMI, IST3 #MC) and
 * the shared IDT; on that CPU. */
void traps_init_cpu(int cpu_index);
/* The top of CPU cpu_index's kernel stack (the APs run on it). */
u64 traps_kernel_stack_top(int cpu_index);
/* The CPU whose stacks hold rsp (its kernel stack or an IST stack); 0 for
 * any other stack, which only the boot CPU runs on. */
int traps_stack_cpu(u64 rsp);
/* Is pa the unmapped page under one of the CPUs' stacks (kernel/paging.c
 * leaves them out)? */
bool traps_stack_guard(u64 pa);
void trap_handler(struct trap_frame *f);
/* Interrupt vector used by the IPI/timer path of the VMM; exported for it. */
void idt_set_handler(u8 vector, void (*handler)(void), u8 ist);

/*
 * Exception fixup, for instructions that may fault on purpose (RDMSR of an MSR
 * the CPU lacks, XRSTOR of a bad area). In inline assembly, label the
 * instruction "1:" and follow it with ASM_FIXUP_ERR(err, val): a #GP, #UD or
 * #PF at 1: then continues after the instruction with operand `err` set to
 * `val` (`mem probe` tests the kernel's page rights that way).
 *   asm volatile("1: rdmsr\n" ASM_FIXUP_ERR("%2", "%3") : ... "+r"(err) : "i"(-EIO));
 */
#define ASM_FIXUP_ERR(err, val) \
	"2:\n" \
	".pushsection .fixup, \"ax\"\n" \
	"3: mov " val ", " err "\n" \
	"   jmp 2b\n" \
	".popsection\n" \
	".pushsection .extable, \"a\"\n" \
	".balign 8\n" \
	".quad 1b, 3b\n" \
	".popsection\n"

/* Exception fixup entry: a fault at `insn` resumes at `fixup`. */
struct extable_entry {
	u64 insn, fixup;
};

#endif
