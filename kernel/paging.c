/*
 * The host's page tables: all physical memory mapped 1:1 with 2 MiB pages (RAM
 * write-back, holes between RAM uncached so device registers are never cached),
 * page 0 left unmapped to catch NULL pointers, and ioremap() for device
 * registers above what is mapped at boot. Host context.
 * SDM Vol. 3A 4.5 "4-Level Paging and 5-Level Paging".
 */
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/x86.h"

#define PTE_P BIT(0)
#define PTE_W BIT(1)
#define PTE_PWT BIT(3)
#define PTE_PCD BIT(4)
#define PTE_PS BIT(7)
#define PTE_ADDR GENMASK_ULL(51, 12)

static u64 *pml4;

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
	pd[(pa >> 21) & 511] = pa | PTE_P | PTE_W | PTE_PS | (uncached ? PTE_PCD | PTE_PWT : 0);
	return 0;
}

void paging_init(void)
{
	u64 top = GiB(4), pt_pa, *pt, *pd;

	for (int i = 0; i < boot_info.mmap_count; i++)
		top = MAX(top,
			  ALIGN_UP(boot_info.mmap[i].base + boot_info.mmap[i].len, HUGE_PAGE_SIZE));
	top = MIN(top, GiB(64));

	pml4 = phys_to_virt(pmm_alloc_page());
	if (!pml4)
		panic("no memory for the kernel page tables");
	for (u64 pa = HUGE_PAGE_SIZE; pa < top; pa += HUGE_PAGE_SIZE) {
		bool ram = range_has_ram(pa, HUGE_PAGE_SIZE);

		/* Above 4 GiB only RAM is mapped now; devices there come via ioremap. */
		if (pa >= GiB(4) && !ram)
			continue;
		if (map_2m(pa, !ram))
			panic("out of memory while building the kernel page tables");
	}
	/* The first 2 MiB in 4 KiB pages, page 0 absent. The legacy VGA/BIOS area
	 * 0xA0000-0xFFFFF is uncached. */
	pt_pa = pmm_alloc_page();
	pd = pd_for(0);
	if (!pt_pa || !pd)
		panic("no memory for the kernel page tables");
	pt = phys_to_virt(pt_pa);
	for (u64 i = 1; i < 512; i++) {
		u64 pa = i * PAGE_SIZE;
		bool legacy = pa >= 0xA0000 && pa < MiB(1);

		pt[i] = pa | PTE_P | PTE_W | (legacy ? PTE_PCD | PTE_PWT : 0);
	}
	pd[0] = pt_pa | PTE_P | PTE_W;
	write_cr3(virt_to_phys(pml4));
}

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
		*pde = pa | PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT;
		invlpg(pa);
	}
	return phys_to_virt(phys);
}
