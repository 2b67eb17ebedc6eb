/*
 * Brings up memory management at boot: the physical allocator from the boot
 * memory map, then the kernel's page tables, then the heap.
 */
#include "kernel/mm.h"

void mm_init(void)
{
	pmm_init();
	paging_init();
	heap_init();
}
