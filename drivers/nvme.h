/*
 * NVMe definitions: controller registers, submission and completion queue
 * entries, Identify data, and the PRP builder (nvme_prp.c, pure code that the
 * host unit tests build too). The driver itself is nvme.c (host boot and shell).
 * Reference: NVM Express Base Specification 2.0 (NVMe Base 2.0) and the NVM
 * Command Set Specification 1.0 (NVM CS 1.0).
 */
#ifndef AMBER_NVME_H
#define AMBER_NVME_H

#include "kernel/types.h"

/* NVMe Base 2.0 3.1 "Register Definition" (3.1.3 "Controller Properties") */
struct nvme_regs {
	u64 cap;   /* 0x00 Controller Capabilities */
	u32 vs;	   /* 0x08 Version */
	u32 intms; /* 0x0c Interrupt Mask Set */
	u32 intmc; /* 0x10 Interrupt Mask Clear */
	u32 cc;	   /* 0x14 Controller Configuration */
	u32 rsvd;
	u32 csts; /* 0x1c Controller Status */
	u32 nssr; /* 0x20 NVM Subsystem Reset */
	u32 aqa;  /* 0x24 Admin Queue Attributes */
	u64 asq;  /* 0x28 Admin Submission Queue Base Address */
	u64 acq;  /* 0x30 Admin Completion Queue Base Address */
} __packed;
_Static_assert(offsetof(struct nvme_regs, cc) == 0x14, "CC at 0x14");
_Static_assert(offsetof(struct nvme_regs, csts) == 0x1c, "CSTS at 0x1c");
_Static_assert(offsetof(struct nvme_regs, asq) == 0x28, "ASQ at 0x28");
_Static_assert(offsetof(struct nvme_regs, acq) == 0x30, "ACQ at 0x30");

#define NVME_CAP_MQES(cap) ((u32)((cap)&0xffff))       /* 0-based */
#define NVME_CAP_TO(cap) ((u32)(((cap) >> 24) & 0xff)) /* 500 ms units */
#define NVME_CAP_DSTRD(cap) ((u32)(((cap) >> 32) & 0xf))
#define NVME_CAP_CSS_NVM(cap) (((cap) >> 37) & 1)
#define NVME_CAP_MPSMIN(cap) ((u32)(((cap) >> 48) & 0xf)) /* 2^(12+n) */
#define NVME_CAP_MPSMAX(cap) ((u32)(((cap) >> 52) & 0xf))

#define NVME_CC_EN BIT(0)
#define NVME_CC_CSS_NVM (0u << 4)
#define NVME_CC_MPS(n) ((u32)(n) << 7)
#define NVME_CC_AMS_RR (0u << 11)
#define NVME_CC_SHN_NORMAL (1u << 14)
#define NVME_CC_IOSQES(n) ((u32)(n) << 16)
#define NVME_CC_IOCQES(n) ((u32)(n) << 20)

#define NVME_CSTS_RDY BIT(0)
#define NVME_CSTS_CFS BIT(1)

#define NVME_DOORBELL_BASE 0x1000

/* NVMe Base 2.0 4.2 "Submission Queue Entry" */
struct nvme_sqe {
	u8 opc;
	u8 flags;
	u16 cid;
	u32 nsid;
	u32 cdw2, cdw3;
	u64 mptr;
	u64 prp1;
	u64 prp2;
	u32 cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
} __packed;
_Static_assert(sizeof(struct nvme_sqe) == 64, "SQ entry is 64 bytes");
_Static_assert(offsetof(struct nvme_sqe, prp1) == 24, "PRP1 at 24");

/* NVMe Base 2.0 4.6 "Completion Queue Entry" */
struct nvme_cqe {
	u32 dw0;
	u32 dw1;
	u16 sq_head;
	u16 sq_id;
	u16 cid;
	u16 status; /* bit 0: phase tag; 15:1 status field */
} __packed;
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQ entry is 16 bytes");

#define NVME_STATUS_SC(s) (((s) >> 1) & 0xff)
#define NVME_STATUS_SCT(s) (((s) >> 9) & 0x7)
#define NVME_STATUS_DNR(s) (((s) >> 15) & 1)

/* NVMe Base 2.0 5 "Admin Command Set" */
#define NVME_ADMIN_DELETE_SQ 0x00
#define NVME_ADMIN_CREATE_SQ 0x01
#define NVME_ADMIN_DELETE_CQ 0x04
#define NVME_ADMIN_CREATE_CQ 0x05
#define NVME_ADMIN_IDENTIFY 0x06
#define NVME_ADMIN_SET_FEATURES 0x09
#define NVME_FEAT_NUM_QUEUES 0x07

/* NVMe Base 2.0 5.17 "Identify command": CNS values */
#define NVME_CNS_NAMESPACE 0x00
#define NVME_CNS_CONTROLLER 0x01
#define NVME_CNS_ACTIVE_NS_LIST 0x02

/* NVM CS 1.0 3.3 "I/O Commands for the NVM Command Set" */
#define NVME_CMD_FLUSH 0x00
#define NVME_CMD_WRITE 0x01
#define NVME_CMD_READ 0x02

/* Identify Controller data structure (the fields Amber uses). */
struct nvme_id_ctrl {
	u16 vid;
	u16 ssvid;
	char sn[20];
	char mn[40];
	char fr[8];
	u8 rab;
	u8 ieee[3];
	u8 cmic;
	u8 mdts; /* 2^n units of CAP.MPSMIN; 0: no limit */
	u16 cntlid;
	u32 ver;
	u8 rsvd84[512 - 84];
	u8 sqes;
	u8 cqes;
	u16 maxcmd;
	u32 nn; /* number of namespaces */
	u16 oncs;
	u16 fuses;
	u8 fna;
	u8 vwc; /* bit 0: volatile write cache present */
	u8 rsvd526[4096 - 526];
} __packed;
_Static_assert(offsetof(struct nvme_id_ctrl, mdts) == 77, "MDTS at byte 77");
_Static_assert(offsetof(struct nvme_id_ctrl, nn) == 516, "NN at byte 516");
_Static_assert(offsetof(struct nvme_id_ctrl, vwc) == 525, "VWC at byte 525");
_Static_assert(sizeof(struct nvme_id_ctrl) == 4096, "Identify data is 4096 bytes");

/* NVM CS 1.0 4.1.5.1 "Identify Namespace data structure" (fields used). */
struct nvme_lbaf {
	u16 ms;	  /* metadata bytes per LBA */
	u8 lbads; /* LBA data size, 2^n bytes */
	u8 rp;
} __packed;

struct nvme_id_ns {
	u64 nsze; /* size in logical blocks */
	u64 ncap;
	u64 nuse;
	u8 nsfeat;
	u8 nlbaf; /* 0-based */
	u8 flbas; /* bits 3:0 (and 6:5 high) format index; bit 4 extended metadata */
	u8 mc;
	u8 dpc;
	u8 dps;
	u8 rsvd30[99 - 30];
	u8 nsattr; /* bit 0: namespace is write protected */
	u8 rsvd100[128 - 100];
	struct nvme_lbaf lbaf[64];
	u8 rsvd384[4096 - 384];
} __packed;
_Static_assert(offsetof(struct nvme_id_ns, flbas) == 26, "FLBAS at byte 26");
_Static_assert(offsetof(struct nvme_id_ns, nsattr) == 99, "NSATTR at byte 99");
_Static_assert(offsetof(struct nvme_id_ns, lbaf) == 128, "LBAF at byte 128");
_Static_assert(sizeof(struct nvme_id_ns) == 4096, "Identify data is 4096 bytes");

/* ---- PRPs: NVMe Base 2.0 4.1.1 "Physical Region Page Entry and List" ------
 * Amber uses a 4 KiB memory page size (CC.MPS = 0). */
#define NVME_PAGE_SIZE 4096ULL
#define NVME_PRP_PER_PAGE 512
/* List pages kept per I/O queue: enough for a 4 MiB transfer at any offset. */
#define NVME_PRP_LIST_PAGES 3
#define NVME_MAX_TRANSFER MiB(4)

struct nvme_prp_lists {
	u64 *virt[NVME_PRP_LIST_PAGES]; /* list pages as the driver writes them */
	u64 phys[NVME_PRP_LIST_PAGES];	/* and as the controller reads them */
	int count;
};

typedef u64 (*nvme_to_phys_fn)(const void *va);

/* List pages needed to hold `entries` PRP entries (the entries after PRP1):
 * 0 for one or none, then 512 per page with the last slot of every page but
 * the last one holding the pointer to the next page. */
u64 nvme_prp_list_pages(u64 entries);
/* Fills PRP1 and PRP2 (and the list pages if needed) for a transfer of len
 * bytes from buf, translating each page with to_phys. Returns 0, -EINVAL for
 * an empty transfer or a buffer not dword aligned, -E2BIG when the lists are
 * too short, -EFAULT when a page does not translate to a page boundary. */
int nvme_prp_build(const void *buf, u64 len, nvme_to_phys_fn to_phys,
		   const struct nvme_prp_lists *lists, u64 *prp1, u64 *prp2);

struct pci_dev;
/* nvme.c: brings up the controller and registers its namespaces as disks. */
void nvme_probe(struct pci_dev *pci);

/* The status field of a completion by name ("LBA Out of Range"). */
const char *nvme_status_name(u16 status);

#endif
