/*
 * Host CPU tables and exceptions. Each CPU has its own GDT with a 64-bit TSS
 * whose IST1-3 give #DF, NMI and #MC each a known-good stack, and its own
 * kernel stack (the APs'; the boot CPU keeps boot/boot.asm's), every stack
 * with an unmapped guard page under it; all CPUs share one IDT. An exception
 * in the host stops the other CPUs, prints a full register dump and stops the
 * machine cleanly, unless the faulting instruction is listed in the fixup
 * table (rdmsr_safe and friends). Any CPU.
 * SDM Vol. 3A 6.14 "Exception and Interrupt Handling in 64-bit Mode",
 * 7.7 "Task Management in 64-bit Mode".
 */
#include "kernel/traps.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/smp.h"
#include "kernel/x86.h"

struct tss64 {
	u32 reserved0;
	u64 rsp[3];
	u64 reserved1;
	u64 ist[7];
	u64 reserved2;
	u16 reserved3;
	u16 iomap_base;
} __packed;
_Static_assert(sizeof(struct tss64) == 104, "64-bit TSS is 104 bytes");

struct idt_entry {
	u16 offset_lo;
	u16 selector;
	u8 ist;
	u8 type_attr;
	u16 offset_mid;
	u32 offset_hi;
	u32 reserved;
} __packed;
_Static_assert(sizeof(struct idt_entry) == 16, "64-bit IDT gate is 16 bytes");

struct desc_ptr {
	u16 limit;
	u64 base;
} __packed;

/* One CPU's descriptor tables. */
struct cpu_tables {
	u64 gdt[5];
	struct tss64 tss;
} __aligned(16);

static struct cpu_tables tables[SMP_MAX_CPUS];
static struct idt_entry idt[256] __aligned(16);

/* Every CPU's stacks, each with its guard page below it (left unmapped by
 * kernel/paging.c): the kernel stack an AP runs on, and the IST stacks. */
#define KSTACK_SIZE 16384
#define IST_SIZE 8192
struct cpu_stacks {
	u8 kernel_guard[PAGE_SIZE];
	u8 kernel[KSTACK_SIZE];
	struct {
		u8 guard[PAGE_SIZE];
		u8 stack[IST_SIZE];
	} ist[3]; /* IST1 #DF, IST2 NMI, IST3 #MC */
};
_Static_assert(sizeof(struct cpu_stacks) % PAGE_SIZE == 0, "stacks keep page alignment");
struct cpu_stacks cpu_stacks[SMP_MAX_CPUS] __aligned(PAGE_SIZE);

extern const u64 isr_stub_table[32];
extern const struct extable_entry __extable_start[], __extable_end[];

static const char *const exception_names[32] = {
	"#DE divide error",
	"#DB debug",
	"NMI",
	"#BP breakpoint",
	"#OF overflow",
	"#BR bound range",
	"#UD invalid opcode",
	"#NM device not available",
	"#DF double fault",
	"coprocessor segment overrun",
	"#TS invalid TSS",
	"#NP segment not present",
	"#SS stack fault",
	"#GP general protection",
	"#PF page fault",
	"reserved 15",
	"#MF x87 floating point",
	"#AC alignment check",
	"#MC machine check",
	"#XM SIMD floating point",
	"#VE virtualization",
	"#CP control protection",
	"reserved 22",
	"reserved 23",
	"reserved 24",
	"reserved 25",
	"reserved 26",
	"reserved 27",
	"#HV hypervisor injection",
	"#VC VMM communication",
	"#SX security",
	"reserved 31",
};

void idt_set_handler(u8 vector, void (*handler)(void), u8 ist)
{
	u64 a = (u64)(uintptr_t)handler;

	idt[vector] = (struct idt_entry){
		.offset_lo = a & 0xFFFF,
		.selector = GDT_KERNEL_CS,
		.ist = ist,
		.type_attr = 0x8E, /* present, DPL 0, 64-bit interrupt gate */
		.offset_mid = (a >> 16) & 0xFFFF,
		.offset_hi = a >> 32,
	};
}

/* Remaps the legacy 8259 PICs away from the exception vectors and masks them:
 * Amber's host runs with interrupts off and polls, but a spurious IRQ must never
 * look like a CPU exception. */
static void pic_disable(void)
{
	outb(0x20, 0x11);
	outb(0xA0, 0x11);
	outb(0x21, 0x20);
	outb(0xA1, 0x28);
	outb(0x21, 0x04);
	outb(0xA1, 0x02);
	outb(0x21, 0x01);
	outb(0xA1, 0x01);
	outb(0x21, 0xFF);
	outb(0xA1, 0xFF);
}

bool traps_stack_guard(u64 pa)
{
	u64 base = virt_to_phys(cpu_stacks), off;

	if (pa < base || pa >= base + sizeof(cpu_stacks))
		return false;
	off = (pa - base) % sizeof(struct cpu_stacks);
	if (off == offsetof(struct cpu_stacks, kernel_guard))
		return true;
	for (u64 i = 0; i < 3; i++)
		if (off == offsetof(struct cpu_stacks, ist) + i * sizeof(cpu_stacks[0].ist[0]))
			return true;
	return false;
}

u64 traps_kernel_stack_top(int cpu_index)
{
	return (u64)(uintptr_t)(cpu_stacks[cpu_index].kernel + KSTACK_SIZE);
}

int traps_stack_cpu(u64 rsp)
{
	u64 base = (u64)(uintptr_t)cpu_stacks;

	if (rsp < base || rsp >= base + sizeof(cpu_stacks))
		return 0; /* the boot CPU's own stack (boot/boot.asm) */
	return (int)((rsp - base) / sizeof(struct cpu_stacks));
}

void traps_init_cpu(int cpu_index)
{
	struct cpu_tables *t = &tables[cpu_index];
	struct cpu_stacks *st = &cpu_stacks[cpu_index];
	struct desc_ptr gp, ip;
	u64 ta = (u64)(uintptr_t)&t->tss;

	t->gdt[0] = 0;
	t->gdt[1] = 0x00AF9A000000FFFFULL; /* 0x08: 64-bit code */
	t->gdt[2] = 0x00CF92000000FFFFULL; /* 0x10: data */
	/* 0x18: 16-byte TSS descriptor, SDM Vol. 3A 7.2.3 "TSS Descriptor in 64-bit mode". */
	t->gdt[3] = (sizeof(t->tss) - 1) | ((ta & 0xFFFFFF) << 16) | (0x89ULL << 40) |
		    (((ta >> 24) & 0xFF) << 56);
	t->gdt[4] = ta >> 32;
	for (int i = 0; i < 3; i++)
		t->tss.ist[i] = (u64)(uintptr_t)(st->ist[i].stack + IST_SIZE);
	t->tss.iomap_base = sizeof(t->tss);

	gp.limit = sizeof(t->gdt) - 1;
	gp.base = (u64)(uintptr_t)t->gdt;
	__asm__ volatile("lgdt %0\n\t"
			 "pushq %1\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\n\t"
			 "mov %2, %%ax\n\t"
			 "mov %%ax, %%ds\n\t"
			 "mov %%ax, %%es\n\t"
			 "mov %%ax, %%ss\n\t"
			 "ltr %w3"
			 :
			 : "m"(gp), "i"(GDT_KERNEL_CS), "i"(GDT_KERNEL_DS), "r"(GDT_TSS)
			 : "rax", "memory");
	ip.limit = sizeof(idt) - 1;
	ip.base = (u64)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(ip));
}

void traps_init(void)
{
	for (int v = 0; v < 32; v++) {
		u8 ist = v == 8 ? 1 : v == 2 ? 2 : v == 18 ? 3 : 0;
		idt_set_handler(v, (void (*)(void))(uintptr_t)isr_stub_table[v], ist);
	}
	traps_init_cpu(0);
	pic_disable();
}

static bool extable_fixup(struct trap_frame *f)
{
	for (const struct extable_entry *e = __extable_start; e < __extable_end; e++) {
		if (e->insn == f->rip) {
			f->rip = e->fixup;
			return true;
		}
	}
	return false;
}

static void dump_stack(u64 rbp)
{
	printk("Call trace:\n");
	/* Follow the frame-pointer chain (the kernel is built with frame pointers),
	 * stopping at the first implausible link. */
	for (int depth = 0; depth < 16 && rbp && !(rbp & 7); depth++) {
		u64 *frame = (u64 *)(uintptr_t)rbp;
		u64 ret = frame[1];

		if (ret < 0x100000 || ret > 0x100000000ULL)
			break;
		printk("  [<%016lx>]\n", ret);
		if (frame[0] <= rbp)
			break;
		rbp = frame[0];
	}
}

void trap_handler(struct trap_frame *f)
{
	if (f->vector == 13 || f->vector == 6 || f->vector == 14) {
		if (extable_fixup(f))
			return;
	}
	if (f->vector == 2 && smp_nmi())
		return; /* not reached: a stop request halts this CPU */
	cli();
	smp_panic_stop(); /* nothing runs on while this CPU reports */
	printk("\n*** Amber: CPU exception %lu (%s) in the hypervisor on CPU %d, error code "
	       "0x%lx\n",
	       f->vector, f->vector < 32 ? exception_names[f->vector] : "?", this_cpu()->index,
	       f->error);
	if (f->vector == 14)
		printk("faulting address (CR2): 0x%016lx (%s, %s%s)\n", read_cr2(),
		       f->error & 1 ? "protection violation" : "page not present",
		       f->error & 2 ? "write" : "read", f->error & 16 ? ", instruction fetch" : "");
	printk("RIP: %04lx:%016lx RFLAGS: %016lx\n", f->cs, f->rip, f->rflags);
	printk("RSP: %04lx:%016lx\n", f->ss, f->rsp);
	printk("RAX: %016lx RBX: %016lx RCX: %016lx\n", f->rax, f->rbx, f->rcx);
	printk("RDX: %016lx RSI: %016lx RDI: %016lx\n", f->rdx, f->rsi, f->rdi);
	printk("RBP: %016lx R8:  %016lx R9:  %016lx\n", f->rbp, f->r8, f->r9);
	printk("R10: %016lx R11: %016lx R12: %016lx\n", f->r10, f->r11, f->r12);
	printk("R13: %016lx R14: %016lx R15: %016lx\n", f->r13, f->r14, f->r15);
	printk("CR0: %016lx CR2: %016lx CR3: %016lx CR4: %016lx\n", read_cr0(), read_cr2(),
	       read_cr3(), read_cr4());
	dump_stack(f->rbp);
	panic("unhandled CPU exception %lu at RIP 0x%lx", f->vector, f->rip);
}

int rdmsr_safe(u32 msr, u64 *val)
{
	u32 lo = 0, hi = 0;
	int err = 0;

	__asm__ volatile("1: rdmsr\n" ASM_FIXUP_ERR("%2", "%3")
			 : "+a"(lo), "+d"(hi), "+r"(err)
			 : "i"(-EIO), "c"(msr));
	*val = ((u64)hi << 32) | lo;
	return err;
}

int wrmsr_safe(u32 msr, u64 val)
{
	int err = 0;

	__asm__ volatile("1: wrmsr\n" ASM_FIXUP_ERR("%0", "%1")
			 : "+r"(err)
			 : "i"(-EIO), "c"(msr), "a"((u32)val), "d"((u32)(val >> 32))
			 : "memory");
	return err;
}
