/*
 * Memory management of the host: the physical page allocator (built from the
 * boot memory map), the kernel's page tables and a small heap.
 *
 * Amber maps all physical memory 1:1 (virtual == physical) in its own page
 * tables, so phys_to_virt() is the identity; every conversion still goes through
 * these helpers so that a reader sees where a physical address is dereferenced.
 * Page 0 is left unmapped to catch NULL dereferences.
 */
#ifndef AMBER_MM_H
#define AMBER_MM_H

#include "kernel/types.h"

static inline void *phys_to_virt(u64 pa) { return (void *)(uintptr_t)pa; }
static inline u64 virt_to_phys(const void *va) { return (u64)(uintptr_t)va; }

/* Physical allocator. Addresses returned are zeroed and naturally aligned;
 * 0 means out of memory. Contiguous runs serve DMA buffers and guest RAM. */
u64 pmm_alloc_page(void);
u64 pmm_alloc_2m(void);
u64 pmm_alloc_contig(u64 npages, u64 align_pages);
/* A 2 MiB page left as its last owner left it, for a caller that overwrites
 * all of it before anyone can read it (a restored VM's RAM: vm_create_hidden). */
u64 pmm_alloc_2m_uninit(void);
/* A zeroed page of RAM below `below` (at most 1 MiB), the highest one free,
 * never page 0, for code a CPU runs in real mode; 0 if none. The boot memory
 * map decides what is RAM; the loader's data and the modules are avoided.
 * Such a page is never freed. */
u64 pmm_alloc_low_page(u64 below);
void pmm_free_page(u64 pa);
void pmm_free_2m(u64 pa);
void pmm_free_contig(u64 pa, u64 npages);
u64 pmm_free_pages(void);
u64 pmm_total_pages(void);
/* Boot only: allocator, page tables, heap, in that order (kernel/mm.c). */
void mm_init(void);
void pmm_init(void);
void paging_init(void);
void heap_init(void);

/* What the kernel's page tables give `va`: the size of the page that maps it
 * and whether the host may write and execute there. -ENOENT: not mapped (a
 * stack guard, page 0), -EINVAL: not a canonical address. */
int paging_query(u64 va, u64 *page_size, bool *writable, bool *executable);
/* True when pages can be no-execute (EFER.NXE: the CPU has NX). */
bool paging_nx(void);

/* Maps a device's registers (uncached) into the kernel's address space and
 * returns the virtual address; NULL if the page tables cannot grow. */
void *ioremap(u64 phys, u64 size);

/* Kernel heap: small objects (up to a few pages). kzalloc zeroes. */
void *kmalloc(size_t size);
void *kzalloc(size_t size);
void kfree(void *p);
void heap_stats(u64 *used, u64 *size);

#endif
