/*
 * The host's page tables: all physical memory mapped 1:1 with 2 MiB pages (RAM
 * write-back, holes between RAM uncached so device registers are never cached),
 * page 0 left unmapped to catch NULL pointers, and ioremap() for device
 * registers above what is mapped at boot. Only Amber's code is executable, and
 * it is read-only; constants are read-only; the page under each stack is left
 * unmapped, so an overflow faults instead of overwriting what lies below. The
 * 2 MiB regions that hold the image are mapped in 4 KiB pages for that. Host
 * context.
 * SDM Vol. 3A 4.5 "4-Level Paging and 5-Level Paging", 4.6 "Access Rights".
 */
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/traps.h"
#include "kernel/x86.h"

#define PTE_P BIT(0)
#define PTE_W BIT(1)
#define PTE_PWT BIT(3)
#define PTE_PCD BIT(4)
#define PTE_PS BIT(7)
#define PTE_ADDR GENMASK_ULL(51, 12)
#define PTE_NX BIT(63)

extern char _text_start[], _text_end[], _rodata_start[], _rodata_end[], _kernel_end[];
extern char boot_stack_guard[];

static u64 *pml4;
static u64 pte_nx; /* PTE_NX once EFER.NXE is on (boot.asm sets it where the CPU has NX) */

/* The pages under the stacks: the boot stack (boot/boot.asm), on which the
 * shell runs, and each CPU's kernel and IST stacks (kernel/traps.c). */
static bool stack_guard(u64 pa)
{
	return pa == virt_to_phys(boot_stack_guard) || traps_stack_guard(pa);
}

static u64 *table_of(u64 entry) { return phys_to_virt(entry & PTE_ADDR); }

/* Returns the page directory covering `va`, creating the levels above it. */
static u64 *pd_for(u64 va)
{
	u64 *pml4e = &pml4[(va >> 39) & 511];
	u64 *pdpte;

	if (!(*pml4e & PTE_P)) {
		u64 pa = pmm_alloc_page();
		if (!pa)
			return NULL;
		*pml4e = pa | PTE_P | PTE_W;
	}
	pdpte = &table_of(*pml4e)[(va >> 30) & 511];
	if (!(*pdpte & PTE_P)) {
		u64 pa = pmm_alloc_page();
		if (!pa)
			return NULL;
		*pdpte = pa | PTE_P | PTE_W;
	}
	return table_of(*pdpte);
}

static bool range_has_ram(u64 base, u64 len)
{
	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mem_range *r = &boot_info.mmap[i];

		if (r->type == MEM_USABLE && base < r->base + r->len && r->base < base + len)
			return true;
	}
	return false;
}

static int map_2m(u64 pa, bool uncached)
{
	u64 *pd = pd_for(pa);

	if (!pd)
		return -ENOMEM;
	pd[(pa >> 21) & 511] = pa | PTE_P | PTE_W | PTE_PS | pte_nx |
			       (uncached ? PTE_PCD | PTE_PWT : 0);
	return 0;
}

static bool in(u64 pa, const char *start, const char *end)
{
	return pa >= virt_to_phys(start) && pa < virt_to_phys(end);
}

/* A 4 KiB page of the regions that hold Amber's image: code R+X, constants
 * R, the stack guards absent, everything else (data, .bss, RAM) RW and NX. */
static u64 small_page(u64 pa)
{
	bool legacy = pa >= 0xA0000 && pa < MiB(1);

	if (pa == 0 || stack_guard(pa))
		return 0;
	if (in(pa, _text_start, _text_end))
		return pa | PTE_P;
	if (in(pa, _rodata_start, _rodata_end))
		return pa | PTE_P | pte_nx;
	return pa | PTE_P | PTE_W | pte_nx | (legacy ? PTE_PCD | PTE_PWT : 0);
}

/* The 2 MiB region at `pa` in 4 KiB pages. */
static void map_small(u64 pa)
{
	u64 pt_pa = pmm_alloc_page(), *pd = pd_for(pa), *pt;

	if (!pt_pa || !pd)
		panic("no memory for the kernel page tables");
	pt = phys_to_virt(pt_pa);
	for (u64 i = 0; i < 512; i++)
		pt[i] = small_page(pa + i * PAGE_SIZE);
	pd[(pa >> 21) & 511] = pt_pa | PTE_P | PTE_W;
}

void paging_init(void)
{
	u64 top = GiB(4), image_top;

	if (rdmsr(MSR_EFER) & EFER_NX)
		pte_nx = PTE_NX;
	for (int i = 0; i < boot_info.mmap_count; i++)
		top = MAX(top,
			  ALIGN_UP(boot_info.mmap[i].base + boot_info.mmap[i].len, HUGE_PAGE_SIZE));
	top = MIN(top, GiB(64));
	image_top = ALIGN_UP(virt_to_phys(_kernel_end), HUGE_PAGE_SIZE);

	pml4 = phys_to_virt(pmm_alloc_page());
	if (!pml4)
		panic("no memory for the kernel page tables");
	for (u64 pa = image_top; pa < top; pa += HUGE_PAGE_SIZE) {
		bool ram = range_has_ram(pa, HUGE_PAGE_SIZE);

		/* Above 4 GiB only RAM is mapped now; devices there come via ioremap. */
		if (pa >= GiB(4) && !ram)
			continue;
		if (map_2m(pa, !ram))
			panic("out of memory while building the kernel page tables");
	}
	/* From 0 to the end of the image in 4 KiB pages: page 0 absent, the
	 * legacy VGA/BIOS area 0xA0000-0xFFFFF uncached, the image's own rights. */
	for (u64 pa = 0; pa < image_top; pa += HUGE_PAGE_SIZE)
		map_small(pa);
	write_cr3(virt_to_phys(pml4));
}

int paging_query(u64 va, u64 *page_size, bool *writable, bool *executable)
{
	u64 *table = pml4, e = 0;
	bool w = true, x = true;

	if (((s64)va << 16) >> 16 != (s64)va)
		return -EINVAL; /* not canonical */
	for (int level = 3; level >= 0; level--) {
		e = table[(va >> (12 + 9 * level)) & 511];
		if (!(e & PTE_P))
			return -ENOENT;
		w = w && (e & PTE_W);
		x = x && !(pte_nx && (e & PTE_NX));
		if (level == 0 || (level <= 2 && (e & PTE_PS))) {
			*page_size = 1ULL << (12 + 9 * level);
			*writable = w;
			*executable = x;
			return 0;
		}
		table = table_of(e);
	}
	return -ENOENT;
}

bool paging_nx(void) { return pte_nx != 0; }

void *ioremap(u64 phys, u64 size)
{
	u64 start = ALIGN_DOWN(phys, HUGE_PAGE_SIZE);
	u64 end = ALIGN_UP(phys + size, HUGE_PAGE_SIZE);

	for (u64 pa = start; pa < end; pa += HUGE_PAGE_SIZE) {
		u64 *pd = pd_for(pa);
		u64 *pde;

		if (!pd)
			return NULL;
		pde = &pd[(pa >> 21) & 511];
		if (*pde & PTE_P) {
			/* Already mapped: make sure a device page is not cached. */
			if ((*pde & PTE_PS) && !range_has_ram(pa, HUGE_PAGE_SIZE) &&
			    !(*pde & PTE_PCD)) {
				*pde |= PTE_PCD | PTE_PWT;
				invlpg(pa);
			}
			continue;
		}
		*pde = pa | PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT | pte_nx;
		invlpg(pa);
	}
	return phys_to_virt(phys);
}
