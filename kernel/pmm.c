/*
 * Physical page allocator: one bit per 4 KiB page (1 = in use), built from the
 * boot memory map with the kernel image, the loader's structures, the modules
 * and the low 1 MiB reserved. Serves single pages, 2 MiB pages and contiguous
 * runs (DMA buffers), and single pages below 1 MiB for code a CPU runs in real
 * mode (the AP trampoline). Host context, boot onwards, any CPU: pmm_lock
 * guards the bitmap; no interrupt handler allocates.
 */
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/spinlock.h"

/* Pages above this are ignored: 64 GiB keeps the bitmap at 2 MiB at most. */
#define PMM_MAX_PHYS GiB(64)

extern char _load_start[], _kernel_end[];

static u64 *bitmap;
static u64 bitmap_pages; /* pages the bitmap describes */
static u64 free_count, total_count;
static u64 search_hint;
static spinlock_t pmm_lock = SPINLOCK_INIT;  /* the bitmap, the counts, the hint */
static u8 low_taken[MiB(1) / PAGE_SIZE / 8]; /* pages below 1 MiB handed out */

static inline bool page_used(u64 pfn) { return bitmap[pfn / 64] & BIT(pfn % 64); }
static inline void set_used(u64 pfn) { bitmap[pfn / 64] |= BIT(pfn % 64); }
static inline void set_free(u64 pfn) { bitmap[pfn / 64] &= ~BIT(pfn % 64); }

static void mark_range(u64 base, u64 len, bool used)
{
	u64 first = base / PAGE_SIZE;
	u64 last = MIN(ALIGN_UP(base + len, PAGE_SIZE) / PAGE_SIZE, bitmap_pages);

	/* Usable ranges are rounded inwards, reserved ones outwards. */
	if (!used) {
		first = ALIGN_UP(base, PAGE_SIZE) / PAGE_SIZE;
		last = MIN((base + len) / PAGE_SIZE, bitmap_pages);
	}
	for (u64 pfn = first; pfn < last; pfn++) {
		if (used && !page_used(pfn)) {
			set_used(pfn);
			free_count--;
		} else if (!used && page_used(pfn)) {
			set_free(pfn);
			free_count++;
		}
	}
}

/* Does [base, base+len) hold anything the boot must keep (the image, the
 * loader's structure, the modules)? */
static bool overlaps_boot_data_low(u64 base, u64 len)
{
	struct {
		u64 s, e;
	} keep[BOOT_MAX_MODULES + 2];
	int n = 0;

	keep[n].s = virt_to_phys(_load_start);
	keep[n++].e = virt_to_phys(_kernel_end);
	keep[n].s = boot_info.info_phys;
	keep[n++].e = boot_info.info_phys + boot_info.info_size;
	for (int i = 0; i < boot_info.module_count; i++) {
		keep[n].s = boot_info.modules[i].start;
		keep[n++].e = boot_info.modules[i].end;
	}
	for (int i = 0; i < n; i++)
		if (base < keep[i].e && keep[i].s < base + len)
			return true;
	return false;
}

/* ... or lies below 1 MiB, which only pmm_alloc_low_page hands out. */
static bool overlaps_boot_data(u64 base, u64 len)
{
	return overlaps_boot_data_low(base, len) || base < MiB(1);
}

void pmm_init(void)
{
	u64 top = 0, bytes;

	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mem_range *r = &boot_info.mmap[i];

		if (r->type == MEM_USABLE)
			top = MAX(top, MIN(r->base + r->len, PMM_MAX_PHYS));
	}
	if (!top)
		panic("the boot loader reported no usable memory");
	bitmap_pages = top / PAGE_SIZE;
	bytes = ALIGN_UP(bitmap_pages / 8 + 8, PAGE_SIZE);

	/* Place the bitmap in the first usable range that holds it and no boot data. */
	for (int i = 0; i < boot_info.mmap_count && !bitmap; i++) {
		const struct mem_range *r = &boot_info.mmap[i];
		u64 cand = ALIGN_UP(MAX(r->base, MiB(1)), PAGE_SIZE);

		if (r->type != MEM_USABLE)
			continue;
		for (; cand + bytes <= r->base + r->len && cand + bytes <= GiB(4);
		     cand += PAGE_SIZE) {
			if (!overlaps_boot_data(cand, bytes)) {
				bitmap = phys_to_virt(cand);
				break;
			}
		}
	}
	if (!bitmap)
		panic("no room for the physical page bitmap (%lu bytes)", bytes);

	memset(bitmap, 0xFF, bytes); /* everything in use ... */
	free_count = 0;
	for (int i = 0; i < boot_info.mmap_count; i++) /* ... but usable RAM */
		if (boot_info.mmap[i].type == MEM_USABLE)
			mark_range(boot_info.mmap[i].base, boot_info.mmap[i].len, false);
	/* Overlapping map entries: anything not usable wins. */
	for (int i = 0; i < boot_info.mmap_count; i++)
		if (boot_info.mmap[i].type != MEM_USABLE)
			mark_range(boot_info.mmap[i].base, boot_info.mmap[i].len, true);
	mark_range(0, MiB(1), true);
	mark_range(virt_to_phys(_load_start), _kernel_end - _load_start, true);
	mark_range(boot_info.info_phys, boot_info.info_size, true);
	for (int i = 0; i < boot_info.module_count; i++)
		mark_range(boot_info.modules[i].start,
			   boot_info.modules[i].end - boot_info.modules[i].start, true);
	mark_range(virt_to_phys(bitmap), bytes, true);
	total_count = free_count;
	search_hint = MiB(1) / PAGE_SIZE;
}

/* Finds `npages` free pages starting at a multiple of `align` pages. */
static u64 find_run(u64 npages, u64 align)
{
	for (int pass = 0; pass < 2; pass++) {
		u64 start = pass == 0 ? ALIGN_UP(search_hint, align) : 0;
		u64 end = pass == 0 ? bitmap_pages : search_hint + npages;

		for (u64 pfn = start; pfn + npages <= MIN(end, bitmap_pages); pfn += align) {
			u64 n;

			/* Skip whole used words quickly. */
			if (align == 1 && bitmap[pfn / 64] == ~0ULL) {
				pfn = ALIGN_UP(pfn + 1, 64) - 1;
				continue;
			}
			/* Whole words for whole-word runs (a VM's 2 MiB chunks):
			 * the bit-by-bit loop made a 2 MiB chunk cost ~10,000
			 * instructions, a VM's creation a few million. */
			if (!(align % 64) && !(npages % 64)) {
				for (n = 0; n < npages && !bitmap[(pfn + n) / 64]; n += 64)
					;
				if (n == npages)
					return pfn;
				continue;
			}
			for (n = 0; n < npages && !page_used(pfn + n); n++)
				;
			if (n == npages)
				return pfn;
			if (align == 1)
				pfn += n;
		}
	}
	return 0;
}

/* Takes `npages` free pages at a multiple of `align_pages`; zeroes them when
 * asked. Returns their physical address, or 0. */
static u64 alloc_run(u64 npages, u64 align_pages, bool zero)
{
	u64 pfn;

	if (!align_pages)
		align_pages = 1;
	spin_lock(&pmm_lock);
	pfn = npages && npages <= free_count ? find_run(npages, align_pages) : 0;
	if (!pfn) {
		spin_unlock(&pmm_lock);
		return 0;
	}
	for (u64 i = 0; i < npages;) {
		if (!((pfn + i) % 64) && npages - i >= 64) {
			bitmap[(pfn + i) / 64] = ~0ULL;
			i += 64;
		} else {
			set_used(pfn + i++);
		}
	}
	free_count -= npages;
	if (align_pages == 1)
		search_hint = pfn + npages;
	spin_unlock(&pmm_lock);
	if (zero)
		memset(phys_to_virt(pfn * PAGE_SIZE), 0, npages * PAGE_SIZE);
	return pfn * PAGE_SIZE;
}

u64 pmm_alloc_contig(u64 npages, u64 align_pages) { return alloc_run(npages, align_pages, true); }
u64 pmm_alloc_page(void) { return pmm_alloc_contig(1, 1); }
u64 pmm_alloc_2m(void) { return pmm_alloc_contig(512, 512); }
u64 pmm_alloc_2m_uninit(void) { return alloc_run(512, 512, false); }

void pmm_free_contig(u64 pa, u64 npages)
{
	u64 pfn = pa / PAGE_SIZE;

	BUG_ON(pa & (PAGE_SIZE - 1));
	spin_lock(&pmm_lock);
	for (u64 i = 0; i < npages; i++) {
		if (pfn + i >= bitmap_pages || !page_used(pfn + i)) {
			spin_unlock(&pmm_lock);
			panic("pmm: freeing page 0x%lx, which is not allocated",
			      pa + i * PAGE_SIZE);
		}
		set_free(pfn + i);
	}
	free_count += npages;
	if (pfn < search_hint)
		search_hint = pfn;
	spin_unlock(&pmm_lock);
}

/* Is the whole page at pa usable RAM in the boot memory map (no other entry
 * claiming any of it)? */
static bool page_is_ram(u64 pa)
{
	bool ram = false;

	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mem_range *r = &boot_info.mmap[i];

		if (pa < r->base + r->len && r->base < pa + PAGE_SIZE) {
			if (r->type != MEM_USABLE)
				return false;
			if (r->base <= pa && pa + PAGE_SIZE <= r->base + r->len)
				ram = true;
		}
	}
	return ram;
}

u64 pmm_alloc_low_page(u64 below)
{
	u64 pa;

	below = MIN(ALIGN_DOWN(below, PAGE_SIZE), MiB(1));
	spin_lock(&pmm_lock);
	for (pa = below - PAGE_SIZE; pa >= PAGE_SIZE && pa < below; pa -= PAGE_SIZE) {
		u64 pfn = pa / PAGE_SIZE;

		if (!(low_taken[pfn / 8] & BIT(pfn % 8)) && page_is_ram(pa) &&
		    !overlaps_boot_data_low(pa, PAGE_SIZE)) {
			low_taken[pfn / 8] |= BIT(pfn % 8);
			break;
		}
	}
	spin_unlock(&pmm_lock);
	if (pa < PAGE_SIZE || pa >= below)
		return 0;
	memset(phys_to_virt(pa), 0, PAGE_SIZE);
	return pa;
}

void pmm_free_page(u64 pa) { pmm_free_contig(pa, 1); }
void pmm_free_2m(u64 pa) { pmm_free_contig(pa, 512); }
u64 pmm_free_pages(void) { return free_count; }
u64 pmm_total_pages(void) { return total_count; }
