/*
 * NVMe data pointers: PRP1/PRP2 and chained PRP lists for one command, and the
 * names of completion status codes. Pure code: no register access, so the host
 * unit tests build it too.
 * Reference: NVMe Base 2.0 4.1.1 "Physical Region Page Entry and List",
 * 3.3.3.2 "Status Field Definition".
 */
#include "drivers/nvme.h"
#include "kernel/types.h"

u64 nvme_prp_list_pages(u64 entries)
{
	if (entries <= 1)
		return 0; /* PRP2 holds the only further page itself */
	if (entries <= NVME_PRP_PER_PAGE)
		return 1;
	/* every page but the last gives up its last slot to the chain pointer */
	return 1 +
	       (entries - NVME_PRP_PER_PAGE + (NVME_PRP_PER_PAGE - 2)) / (NVME_PRP_PER_PAGE - 1);
}

int nvme_prp_build(const void *buf, u64 len, nvme_to_phys_fn to_phys,
		   const struct nvme_prp_lists *lists, u64 *prp1, u64 *prp2)
{
	uintptr_t va = (uintptr_t)buf;
	u64 first, npages;

	if (len == 0 || (va & 3))
		return -EINVAL;
	*prp1 = to_phys(buf);
	*prp2 = 0;
	if ((*prp1 & (NVME_PAGE_SIZE - 1)) != (va & (NVME_PAGE_SIZE - 1)))
		return -EFAULT;
	/* PRP1 may start inside a page; every later entry is page aligned. */
	first = NVME_PAGE_SIZE - (va & (NVME_PAGE_SIZE - 1));
	if (len <= first)
		return 0;
	va += first;
	npages = (len - first + NVME_PAGE_SIZE - 1) / NVME_PAGE_SIZE;
	if (npages == 1) {
		*prp2 = to_phys((const void *)va);
		return (*prp2 & (NVME_PAGE_SIZE - 1)) ? -EFAULT : 0;
	}
	if (nvme_prp_list_pages(npages) > (u64)lists->count)
		return -E2BIG;

	int page = 0, slot = 0;
	*prp2 = lists->phys[0];
	for (u64 i = 0; i < npages; i++, va += NVME_PAGE_SIZE) {
		if (slot == NVME_PRP_PER_PAGE - 1 && npages - i > 1) {
			lists->virt[page][slot] = lists->phys[page + 1];
			page++;
			slot = 0;
		}
		u64 pa = to_phys((const void *)va);
		if (pa & (NVME_PAGE_SIZE - 1))
			return -EFAULT;
		lists->virt[page][slot++] = pa;
	}
	return 0;
}

struct nvme_status_desc {
	u8 sct, sc;
	const char *name;
};

/* NVMe Base 2.0 3.3.3.2.1 "Generic Command Status Values", 3.3.3.2.2
 * "Command Specific Status Values", 3.3.3.2.3 "Media and Data Integrity
 * Errors"; NVM CS 1.0 for the 0x80.. values. */
static const struct nvme_status_desc nvme_statuses[] = {
	{ 0, 0x00, "Successful Completion" },
	{ 0, 0x01, "Invalid Command Opcode" },
	{ 0, 0x02, "Invalid Field in Command" },
	{ 0, 0x03, "Command ID Conflict" },
	{ 0, 0x04, "Data Transfer Error" },
	{ 0, 0x05, "Commands Aborted due to Power Loss Notification" },
	{ 0, 0x06, "Internal Error" },
	{ 0, 0x07, "Command Abort Requested" },
	{ 0, 0x08, "Command Aborted due to SQ Deletion" },
	{ 0, 0x0b, "Invalid Namespace or Format" },
	{ 0, 0x0c, "Command Sequence Error" },
	{ 0, 0x13, "PRP Offset Invalid" },
	{ 0, 0x15, "Operation Denied" },
	{ 0, 0x20, "Namespace is Write Protected" },
	{ 0, 0x21, "Command Interrupted" },
	{ 0, 0x22, "Transient Transport Error" },
	{ 0, 0x80, "LBA Out of Range" },
	{ 0, 0x81, "Capacity Exceeded" },
	{ 0, 0x82, "Namespace Not Ready" },
	{ 0, 0x83, "Reservation Conflict" },
	{ 0, 0x84, "Format In Progress" },
	{ 1, 0x00, "Completion Queue Invalid" },
	{ 1, 0x01, "Invalid Queue Identifier" },
	{ 1, 0x02, "Invalid Queue Size" },
	{ 1, 0x08, "Invalid Interrupt Vector" },
	{ 1, 0x0c, "Invalid Queue Deletion" },
	{ 1, 0x0e, "Feature Not Changeable" },
	{ 1, 0x82, "Attempted Write to Read Only Range" },
	{ 2, 0x80, "Write Fault" },
	{ 2, 0x81, "Unrecovered Read Error" },
	{ 2, 0x82, "End-to-end Guard Check Error" },
	{ 2, 0x83, "End-to-end Application Tag Check Error" },
	{ 2, 0x84, "End-to-end Reference Tag Check Error" },
	{ 2, 0x85, "Compare Failure" },
	{ 2, 0x86, "Access Denied" },
	{ 2, 0x87, "Deallocated or Unwritten Logical Block" },
};

const char *nvme_status_name(u16 status)
{
	u8 sct = NVME_STATUS_SCT(status), sc = NVME_STATUS_SC(status);

	for (size_t i = 0; i < ARRAY_SIZE(nvme_statuses); i++)
		if (nvme_statuses[i].sct == sct && nvme_statuses[i].sc == sc)
			return nvme_statuses[i].name;
	switch (sct) {
	case 0:
		return "unknown generic status";
	case 1:
		return "unknown command-specific status";
	case 2:
		return "unknown media error";
	case 3:
		return "path-related error";
	case 7:
		return "vendor-specific status";
	default:
		return "unknown status type";
	}
}
