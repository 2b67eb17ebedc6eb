/*
 * The kernel heap: a first-fit free list over a fixed 4 MiB arena taken from the
 * physical allocator at boot, with neighbours merged on free. For small objects
 * (VM records, driver state); page-sized and DMA memory comes from pmm_*.
 * Host context, any CPU: heap_lock guards the list; no interrupt handler
 * allocates.
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "kernel/spinlock.h"

#define HEAP_SIZE MiB(4)
#define HEAP_MAGIC 0xA4B3E11Au

struct block {
	u32 magic;
	u32 free;
	u64 size; /* payload bytes */
	struct block *next;
	u64 pad; /* keeps payloads 16-byte aligned */
};
_Static_assert(sizeof(struct block) == 32, "heap block header keeps 16-byte alignment");

static struct block *head;
static u64 heap_used;
static spinlock_t heap_lock = SPINLOCK_INIT; /* the block list and heap_used */

void heap_init(void)
{
	u64 pa = pmm_alloc_contig(HEAP_SIZE / PAGE_SIZE, 1);

	if (!pa)
		panic("no memory for the kernel heap");
	head = phys_to_virt(pa);
	*head = (struct block){ HEAP_MAGIC, 1, HEAP_SIZE - sizeof(struct block), NULL, 0 };
}

void *kmalloc(size_t size)
{
	size = ALIGN_UP(size ? size : 1, 16);
	spin_lock(&heap_lock);
	for (struct block *b = head; b; b = b->next) {
		if (!b->free || b->size < size)
			continue;
		if (b->size >= size + sizeof(struct block) + 64) {
			struct block *rest = (struct block *)((char *)(b + 1) + size);

			*rest = (struct block){ HEAP_MAGIC, 1,
						b->size - size - sizeof(struct block), b->next, 0 };
			b->size = size;
			b->next = rest;
		}
		b->free = 0;
		heap_used += b->size;
		spin_unlock(&heap_lock);
		return b + 1;
	}
	spin_unlock(&heap_lock);
	return NULL;
}

void *kzalloc(size_t size)
{
	void *p = kmalloc(size);

	if (p)
		memset(p, 0, size);
	return p;
}

void kfree(void *p)
{
	struct block *b;

	if (!p)
		return;
	b = (struct block *)p - 1;
	spin_lock(&heap_lock);
	if (b->magic != HEAP_MAGIC || b->free) {
		spin_unlock(&heap_lock);
		panic("kfree(%p): not a block in use", p);
	}
	b->free = 1;
	heap_used -= b->size;
	/* Merge with free successors, then let the walk merge predecessors. */
	for (struct block *c = head; c; c = c->next) {
		while (c->free && c->next && c->next->free &&
		       (char *)(c + 1) + c->size == (char *)c->next) {
			c->size += sizeof(struct block) + c->next->size;
			c->next = c->next->next;
		}
	}
	spin_unlock(&heap_lock);
}

void heap_stats(u64 *used, u64 *size)
{
	*used = heap_used;
	*size = HEAP_SIZE;
}
