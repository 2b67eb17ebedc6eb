/*
 * Split virtqueue arithmetic: ring layout, descriptor free list, publishing a
 * chain in the avail ring and consuming the used ring. Pure code (no port or
 * MMIO access): the kernel and the host unit tests build the same file.
 * Reference: virtio 1.2 2.7 "Split Virtqueues".
 */
#include "drivers/virtio.h"
#include "kernel/types.h"

/* The device reads the rings concurrently: descriptor and ring-entry stores
 * must be visible before the index that publishes them, and the used index
 * must be read before the entries it covers (2.7.13 "Supplying Buffers to The
 * Device", 2.7.14 "Receiving Used Buffers From The Device"). */
static inline void virtq_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static bool virtq_size_ok(u16 qsz)
{
	return qsz != 0 && (qsz & (qsz - 1)) == 0 && qsz <= VIRTQ_MAX_SIZE;
}

/* Descriptor table, then the avail ring (flags, idx, ring[qsz], used_event),
 * then, on the next 4096-byte boundary, the used ring (flags, idx,
 * ring[qsz], avail_event). */
static u64 virtq_used_offset(u16 qsz)
{
	return ALIGN_UP(16ULL * qsz + 6 + 2ULL * qsz, VIRTIO_LEGACY_VRING_ALIGN);
}

u64 virtq_area_size(u16 qsz)
{
	if (!virtq_size_ok(qsz))
		return 0;
	return virtq_used_offset(qsz) + ALIGN_UP(6 + 8ULL * qsz, VIRTIO_LEGACY_VRING_ALIGN);
}

int virtq_init(struct virtq *vq, void *mem, u64 phys, u16 qsz)
{
	if (!virtq_size_ok(qsz) || !mem || (phys & (VIRTIO_LEGACY_VRING_ALIGN - 1)))
		return -EINVAL;
	__builtin_memset(mem, 0, virtq_area_size(qsz));
	vq->size = qsz;
	vq->desc = mem;
	vq->avail = (struct virtq_avail *)((u8 *)mem + 16ULL * qsz);
	vq->used = (struct virtq_used *)((u8 *)mem + virtq_used_offset(qsz));
	vq->desc_phys = phys;
	vq->avail_phys = phys + 16ULL * qsz;
	vq->used_phys = phys + virtq_used_offset(qsz);
	for (u32 i = 0; i < qsz; i++)
		vq->desc[i].next = (u16)((i + 1) & (qsz - 1));
	vq->free_head = 0;
	vq->num_free = qsz;
	vq->avail_idx = 0;
	vq->last_used_idx = 0;
	/* Amber polls the used ring; interrupts would only cost exits. */
	vq->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	return 0;
}

int virtq_add_chain(struct virtq *vq, const struct virtq_buf *bufs, int n)
{
	u16 head, idx, last;

	if (n <= 0)
		return -EINVAL;
	if (n > vq->num_free)
		return -ENOSPC;
	head = idx = last = vq->free_head;
	/* Free descriptors are already linked through .next, so the chain's
	 * links are the free list's links: only flags, addr and len change. */
	for (int i = 0; i < n; i++) {
		struct virtq_desc *d = &vq->desc[idx];

		d->addr = bufs[i].addr;
		d->len = bufs[i].len;
		d->flags = (u16)((bufs[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		last = idx;
		idx = d->next;
	}
	vq->free_head = vq->desc[last].next;
	vq->num_free = (u16)(vq->num_free - n);

	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = head;
	virtq_fence();
	vq->avail_idx++;
	*(volatile u16 *)&vq->avail->idx = vq->avail_idx;
	virtq_fence();
	return head;
}

int virtq_get_used(struct virtq *vq, u32 *len)
{
	u16 used_idx = *(volatile u16 *)&vq->used->idx;
	struct virtq_used_elem elem;
	u16 id, count = 1;

	if (used_idx == vq->last_used_idx)
		return -EAGAIN;
	/* More entries than the ring holds: the device broke the protocol. */
	if ((u16)(used_idx - vq->last_used_idx) > vq->size)
		return -EIO;
	virtq_fence();
	elem = vq->used->ring[vq->last_used_idx & (vq->size - 1)];
	vq->last_used_idx++;
	if (elem.id >= vq->size)
		return -EIO;
	id = (u16)elem.id;

	/* Walk the chain to its end and hand it back to the free list. */
	u16 last = id;
	while (vq->desc[last].flags & VIRTQ_DESC_F_NEXT) {
		if (++count > vq->size)
			return -EIO; /* a loop: not a chain the driver built */
		last = vq->desc[last].next;
	}
	vq->desc[last].next = vq->free_head;
	vq->free_head = id;
	vq->num_free = (u16)(vq->num_free + count);
	if (len)
		*len = elem.len;
	return id;
}

bool virtq_notify_suppressed(const struct virtq *vq)
{
	return *(const volatile u16 *)&vq->used->flags & VIRTQ_USED_F_NO_NOTIFY;
}
