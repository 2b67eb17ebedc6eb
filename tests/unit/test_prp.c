/*
 * Host unit test of drivers/nvme_prp.c: builds PRPs for buffers at many
 * offsets and lengths over a scrambled virtual-to-physical mapping, then walks
 * them the way a controller does (NVMe Base 2.0 4.1.1) and checks that exactly
 * the buffer's bytes are described, in order; plus the list-page arithmetic
 * and the error cases.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/nvme.h"
#include "tests/unit/check.h"

#define PG 4096ULL
#define BUF_PAGES 1600
#define PHYS_BASE 0x200000000ULL
#define LIST_PHYS 0x7000000ULL

static u8 *buf_base;
static unsigned perm[BUF_PAGES];

/* Buffer page i lives at physical page perm[i] of a scrambled region. */
static u64 fake_to_phys(const void *va)
{
	uintptr_t off = (uintptr_t)va - (uintptr_t)buf_base;
	return PHYS_BASE + perm[off / PG] * PG + off % PG;
}

static u64 bad_to_phys(const void *va)
{
	return fake_to_phys(va) + 8; /* pages not mapped on page boundaries */
}

static u64 *list_virt[NVME_PRP_LIST_PAGES];
static struct nvme_prp_lists lists;

static u64 *list_page_by_phys(u64 pa)
{
	for (int i = 0; i < lists.count; i++)
		if (lists.phys[i] == pa)
			return list_virt[i];
	return NULL;
}

/* Controller side: expands PRP1/PRP2 into physical segments and compares each
 * byte range with the expected translation of the buffer. Returns the number
 * of list pages it followed, or -1 on a malformed PRP. */
static int walk_and_check(const u8 *buf, u64 len, u64 prp1, u64 prp2)
{
	u64 done = 0, first = PG - (prp1 % PG);
	int lists_used = 0;

	if (first > len)
		first = len;
	CHECK_EQ(prp1, fake_to_phys(buf));
	done = first;
	if (done == len)
		return 0;
	if (len - done <= PG) {
		CHECK_EQ(prp2, fake_to_phys(buf + done));
		return 0;
	}
	u64 *list = list_page_by_phys(prp2);
	if (!list) {
		CHECK(!"PRP2 is not a list page");
		return -1;
	}
	lists_used = 1;
	int slot = 0;
	while (done < len) {
		u64 remaining = len - done;
		if (slot == NVME_PRP_PER_PAGE - 1 && remaining > PG) {
			list = list_page_by_phys(list[slot]);
			if (!list) {
				CHECK(!"chain entry is not a list page");
				return -1;
			}
			lists_used++;
			slot = 0;
		}
		u64 pa = list[slot++];
		CHECK_EQ(pa % PG, 0);
		CHECK_EQ(pa, fake_to_phys(buf + done));
		done += remaining < PG ? remaining : PG;
	}
	return lists_used;
}

static void test_list_pages(void)
{
	CHECK_EQ(nvme_prp_list_pages(0), 0);
	CHECK_EQ(nvme_prp_list_pages(1), 0);
	CHECK_EQ(nvme_prp_list_pages(2), 1);
	CHECK_EQ(nvme_prp_list_pages(512), 1);
	CHECK_EQ(nvme_prp_list_pages(513), 2);
	CHECK_EQ(nvme_prp_list_pages(1023), 2);
	CHECK_EQ(nvme_prp_list_pages(1024), 3);
	CHECK_EQ(nvme_prp_list_pages(1534), 3);
	CHECK_EQ(nvme_prp_list_pages(1535), 4);
	/* the driver's limit fits its list pages at any buffer offset */
	CHECK(nvme_prp_list_pages(NVME_MAX_TRANSFER / PG) <= NVME_PRP_LIST_PAGES);
}

static void one_case(u64 off, u64 len, int want_lists)
{
	u64 prp1 = 0xdead, prp2 = 0xbeef;
	for (int i = 0; i < lists.count; i++)
		memset(list_virt[i], 0xee, PG);
	int rc = nvme_prp_build(buf_base + off, len, fake_to_phys, &lists, &prp1, &prp2);
	CHECK_EQ(rc, 0);
	if (rc)
		return;
	int used = walk_and_check(buf_base + off, len, prp1, prp2);
	if (want_lists >= 0)
		CHECK_EQ(used, want_lists);
	if (used == 0 && len <= PG - off % PG)
		CHECK_EQ(prp2, 0);
}

static void test_build(void)
{
	static const u64 offsets[] = { 0, 4, 512, 2048, 4092 };
	static const u64 lengths[] = { 4,	 512,	 4096,	       4100,	  8192,
				       12288,	 65536,	 PG * 511,     PG * 512,  PG * 513,
				       PG * 514, MiB(2), MiB(2) + 512, PG * 1023, PG * 1024,
				       MiB(4) };

	for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++)
		for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++)
			one_case(offsets[o], lengths[l], -1);

	/* the shapes, exactly */
	one_case(0, 4096, 0);	/* PRP1 only */
	one_case(512, 4096, 0); /* PRP1 + PRP2 as a data page */
	one_case(0, 8192, 0);
	one_case(0, 12288, 1);	     /* a list of two entries */
	one_case(0, PG * 513, 1);    /* 512 entries fill one list page exactly */
	one_case(0, PG * 514, 2);    /* 513 entries: the chain begins */
	one_case(4092, PG * 513, 2); /* unaligned start needs one more page */
	one_case(0, PG * 1024, 2);   /* 1023 entries: two pages, full */
	one_case(0, PG * 1025, 3);   /* 1024 entries: third page */
	one_case(0, PG * 1535, 3);   /* 1534: the most three pages hold */
	one_case(8, MiB(4), 3);	     /* the driver's largest, unaligned */

	/* every length from 1 page to 3 pages in 4-byte steps near the edges */
	for (u64 len = 4; len <= 3 * PG; len += (len < 64 || len > 3 * PG - 64) ? 4 : 1020)
		for (u64 off = 0; off < PG; off += 1020)
			one_case(off, len, -1);
}

static void test_errors(void)
{
	u64 prp1, prp2;
	CHECK_EQ(nvme_prp_build(buf_base, 0, fake_to_phys, &lists, &prp1, &prp2), -EINVAL);
	CHECK_EQ(nvme_prp_build(buf_base + 2, 512, fake_to_phys, &lists, &prp1, &prp2), -EINVAL);
	CHECK_EQ(nvme_prp_build(buf_base, PG * 1536, fake_to_phys, &lists, &prp1, &prp2), -E2BIG);
	CHECK_EQ(nvme_prp_build(buf_base + 4, PG * 1535, fake_to_phys, &lists, &prp1, &prp2),
		 -E2BIG);
	CHECK_EQ(nvme_prp_build(buf_base, PG * 3, bad_to_phys, &lists, &prp1, &prp2), -EFAULT);
	struct nvme_prp_lists none = { .count = 0 };
	CHECK_EQ(nvme_prp_build(buf_base, PG * 2, fake_to_phys, &none, &prp1, &prp2), 0);
	CHECK_EQ(nvme_prp_build(buf_base, PG * 3, fake_to_phys, &none, &prp1, &prp2), -E2BIG);
}

static void test_status_names(void)
{
	CHECK_STR(nvme_status_name(0), "Successful Completion");
	CHECK_STR(nvme_status_name(0x80 << 1), "LBA Out of Range");
	CHECK_STR(nvme_status_name(2 << 9 | 0x81 << 1), "Unrecovered Read Error");
	CHECK_STR(nvme_status_name(1 << 9 | 0x02 << 1 | 1), "Invalid Queue Size");
	CHECK_STR(nvme_status_name(7 << 9 | 0x12 << 1), "vendor-specific status");
}

int main(void)
{
	buf_base = aligned_alloc(PG, BUF_PAGES * PG);
	/* a fixed scramble: physical pages in a different order, with gaps */
	for (unsigned i = 0; i < BUF_PAGES; i++)
		perm[i] = (i * 7919u) % 4093u * 3u;
	for (int i = 0; i < NVME_PRP_LIST_PAGES; i++) {
		list_virt[i] = aligned_alloc(PG, PG);
		lists.virt[i] = list_virt[i];
		lists.phys[i] = LIST_PHYS + (u64)(NVME_PRP_LIST_PAGES - i) * PG;
	}
	lists.count = NVME_PRP_LIST_PAGES;

	test_list_pages();
	test_build();
	test_errors();
	test_status_names();
	for (int i = 0; i < NVME_PRP_LIST_PAGES; i++)
		free(list_virt[i]);
	free(buf_base);
	return test_done("prp");
}
