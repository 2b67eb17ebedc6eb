/*
 * Host unit test of drivers/virtqueue.c: ring layout sizes and offsets, chain
 * publishing, a simulated device completing out of order, free-list integrity,
 * 16-bit index wrap-around and protocol violations by the device.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/virtio.h"
#include "tests/unit/check.h"

#define FAKE_PHYS 0x100000ULL

static u16 dev_last_avail; /* the simulated device's position in the avail ring */

/* Device side: takes the next available chain, checks its shape against
 * expected buffers when given, returns the head. */
static int dev_pop(struct virtq *vq, const struct virtq_buf *want, int n)
{
	u16 avail_idx = vq->avail->idx;
	if (avail_idx == dev_last_avail)
		return -1;
	u16 head = vq->avail->ring[dev_last_avail & (vq->size - 1)];
	dev_last_avail++;
	u16 d = head;
	int i = 0;
	for (;;) {
		if (want && i < n) {
			CHECK_EQ(vq->desc[d].addr, want[i].addr);
			CHECK_EQ(vq->desc[d].len, want[i].len);
			CHECK_EQ(!!(vq->desc[d].flags & VIRTQ_DESC_F_WRITE), want[i].device_writes);
		}
		i++;
		if (!(vq->desc[d].flags & VIRTQ_DESC_F_NEXT))
			break;
		d = vq->desc[d].next;
		if (i > vq->size) {
			CHECK(!"chain loops");
			return -1;
		}
	}
	if (want)
		CHECK_EQ(i, n);
	return head;
}

static void dev_push(struct virtq *vq, u16 head, u32 len)
{
	struct virtq_used_elem *e = &vq->used->ring[vq->used->idx & (vq->size - 1)];
	e->id = head;
	e->len = len;
	vq->used->idx++;
}

/* Counts the free list and checks that it names distinct descriptors. */
static void check_free_list(struct virtq *vq)
{
	char *seen = calloc(vq->size, 1);
	u16 d = vq->free_head;
	for (int i = 0; i < vq->num_free; i++) {
		CHECK(d < vq->size);
		if (d >= vq->size)
			break;
		CHECK(!seen[d]);
		seen[d] = 1;
		d = vq->desc[d].next;
	}
	free(seen);
}

static struct virtq *new_queue(u16 qsz, void **mem)
{
	static struct virtq vq;
	u64 size = virtq_area_size(qsz);
	*mem = aligned_alloc(4096, size);
	memset(*mem, 0xcc, size);
	CHECK_EQ(virtq_init(&vq, *mem, FAKE_PHYS, qsz), 0);
	dev_last_avail = 0;
	return &vq;
}

static void test_layout(void)
{
	/* desc 16*q, avail 6+2q, used (aligned to 4096) 6+8q, each rounded up. */
	CHECK_EQ(virtq_area_size(1), 8192);
	CHECK_EQ(virtq_area_size(128), 8192);
	CHECK_EQ(virtq_area_size(256), 12288);
	CHECK_EQ(virtq_area_size(1024), 16384 + 4096 + 12288);
	CHECK_EQ(virtq_area_size(32768), 593920 + 266240);
	CHECK_EQ(virtq_area_size(0), 0);
	CHECK_EQ(virtq_area_size(3), 0);
	CHECK_EQ(virtq_area_size(65535), 0);

	void *mem;
	struct virtq *vq = new_queue(256, &mem);
	CHECK_EQ((u8 *)vq->avail - (u8 *)mem, 4096);
	CHECK_EQ((u8 *)vq->used - (u8 *)mem, 8192);
	CHECK_EQ(vq->desc_phys, FAKE_PHYS);
	CHECK_EQ(vq->avail_phys, FAKE_PHYS + 4096);
	CHECK_EQ(vq->used_phys, FAKE_PHYS + 8192);
	CHECK_EQ(vq->avail->flags, VIRTQ_AVAIL_F_NO_INTERRUPT);
	CHECK_EQ(vq->avail->idx, 0);
	CHECK_EQ(vq->used->idx, 0);
	CHECK_EQ(vq->num_free, 256);
	check_free_list(vq);
	free(mem);

	struct virtq bad;
	char *m = aligned_alloc(4096, 8192);
	CHECK_EQ(virtq_init(&bad, m, FAKE_PHYS + 8, 4), -EINVAL);
	CHECK_EQ(virtq_init(&bad, m, FAKE_PHYS, 6), -EINVAL);
	CHECK_EQ(virtq_init(&bad, NULL, FAKE_PHYS, 4), -EINVAL);
	free(m);
}

static void test_chain(void)
{
	void *mem;
	struct virtq *vq = new_queue(8, &mem);
	struct virtq_buf req[3] = { { 0x1000, 16, false },
				    { 0x20000, 4096, true },
				    { 0x1010, 1, true } };
	u32 len = 0;

	CHECK_EQ(virtq_add_chain(vq, req, 0), -EINVAL);
	int head = virtq_add_chain(vq, req, 3);
	CHECK(head >= 0);
	CHECK_EQ(vq->num_free, 5);
	CHECK_EQ(vq->avail->idx, 1);
	CHECK_EQ(virtq_get_used(vq, &len), -EAGAIN);
	CHECK_EQ(dev_pop(vq, req, 3), head);
	dev_push(vq, (u16)head, 4097);
	CHECK_EQ(virtq_get_used(vq, &len), head);
	CHECK_EQ(len, 4097);
	CHECK_EQ(vq->num_free, 8);
	CHECK_EQ(virtq_get_used(vq, &len), -EAGAIN);
	check_free_list(vq);

	/* Fill the queue, then complete in reverse order. */
	int heads[8], n = 0;
	struct virtq_buf two[2] = { { 0x3000, 512, false }, { 0x4000, 1, true } };
	for (;;) {
		int h = virtq_add_chain(vq, two, 2);
		if (h < 0) {
			CHECK_EQ(h, -ENOSPC);
			break;
		}
		heads[n++] = h;
	}
	CHECK_EQ(n, 4);
	CHECK_EQ(vq->num_free, 0);
	CHECK_EQ(virtq_add_chain(vq, two, 1), -ENOSPC);
	for (int i = 0; i < n; i++)
		CHECK_EQ(dev_pop(vq, two, 2), heads[i]);
	for (int i = n - 1; i >= 0; i--)
		dev_push(vq, (u16)heads[i], 1);
	for (int i = n - 1; i >= 0; i--) {
		CHECK_EQ(virtq_get_used(vq, &len), heads[i]);
		check_free_list(vq);
	}
	CHECK_EQ(vq->num_free, 8);

	/* A single chain of the full queue length is possible. */
	struct virtq_buf eight[8];
	for (int i = 0; i < 8; i++)
		eight[i] = (struct virtq_buf){ 0x10000 + i * 0x1000, 4096, i == 7 };
	head = virtq_add_chain(vq, eight, 8);
	CHECK(head >= 0);
	CHECK_EQ(dev_pop(vq, eight, 8), head);
	dev_push(vq, (u16)head, 4096);
	CHECK_EQ(virtq_get_used(vq, &len), head);
	CHECK_EQ(vq->num_free, 8);
	check_free_list(vq);
	free(mem);
}

/* Many requests of random length, completed in random order, across the
 * 16-bit wrap of avail->idx and used->idx. */
static void test_wrap(void)
{
	void *mem;
	struct virtq *vq = new_queue(16, &mem);
	int pending[16], npend = 0;
	u32 len;
	unsigned seed = 12345;
	long completed = 0;

	for (long iter = 0; iter < 200000; iter++) {
		seed = seed * 1103515245 + 12345;
		int n = 1 + (seed >> 16) % 5;
		struct virtq_buf b[5];
		for (int i = 0; i < n; i++)
			b[i] = (struct virtq_buf){ 0x1000ULL * (iter % 97 + 1) + i, (u32)(i + 1),
						   i == n - 1 };
		int h = virtq_add_chain(vq, b, n);
		if (h >= 0) {
			CHECK_EQ(dev_pop(vq, b, n), h);
			pending[npend++] = h;
		} else {
			CHECK_EQ(h, -ENOSPC);
		}
		/* complete one random pending request now and then */
		if (npend && ((seed >> 8) & 1 || h < 0)) {
			int k = (seed >> 20) % npend;
			dev_push(vq, (u16)pending[k], 7);
			pending[k] = pending[--npend];
			int got = virtq_get_used(vq, &len);
			CHECK(got >= 0);
			CHECK_EQ(len, 7);
			completed++;
		}
	}
	while (npend) {
		dev_push(vq, (u16)pending[--npend], 0);
		CHECK(virtq_get_used(vq, &len) >= 0);
		completed++;
	}
	CHECK(completed > 65536 * 2); /* the indices wrapped at least twice */
	CHECK_EQ(vq->num_free, 16);
	CHECK_EQ(vq->avail_idx, vq->avail->idx);
	CHECK_EQ(vq->last_used_idx, vq->used->idx);
	check_free_list(vq);
	free(mem);
}

static void test_bad_device(void)
{
	void *mem;
	struct virtq *vq = new_queue(4, &mem);
	struct virtq_buf b[2] = { { 0x1000, 16, false }, { 0x2000, 1, true } };
	u32 len;

	int h = virtq_add_chain(vq, b, 2);
	CHECK(h >= 0);
	dev_push(vq, 9, 0); /* id out of range */
	CHECK_EQ(virtq_get_used(vq, &len), -EIO);

	vq->used->idx = (u16)(vq->last_used_idx + 5); /* more than the ring holds */
	CHECK_EQ(virtq_get_used(vq, &len), -EIO);
	vq->used->idx = vq->last_used_idx;

	/* a chain that loops back on itself */
	vq->desc[h].flags |= VIRTQ_DESC_F_NEXT;
	vq->desc[vq->desc[h].next].flags |= VIRTQ_DESC_F_NEXT;
	vq->desc[vq->desc[h].next].next = (u16)h;
	dev_push(vq, (u16)h, 0);
	CHECK_EQ(virtq_get_used(vq, &len), -EIO);

	CHECK(!virtq_notify_suppressed(vq));
	vq->used->flags = VIRTQ_USED_F_NO_NOTIFY;
	CHECK(virtq_notify_suppressed(vq));
	free(mem);
}

int main(void)
{
	test_layout();
	test_chain();
	test_wrap();
	test_bad_device();
	return test_done("virtqueue");
}
