/*
 * Virtio over PCI: the split virtqueue (pure ring arithmetic, virtqueue.c, also
 * built into the host unit tests) and the PCI transport in both its modern
 * (capability) and legacy (I/O BAR) forms (virtio_pci.c, host boot and shell).
 * Reference: virtio 1.2 2.7 "Split Virtqueues", 4.1 "Virtio Over PCI Bus".
 */
#ifndef AMBER_VIRTIO_H
#define AMBER_VIRTIO_H

#include "kernel/types.h"

/* virtio 1.2 2.1 "Device Status Field" */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* virtio 1.2 6 "Reserved Feature Bits" */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* ---- split virtqueue: virtio 1.2 2.7 "Split Virtqueues" ---------------- */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2 /* buffer is device-writable */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1
/* virtio 1.2 4.1.4.8 "Legacy Interfaces: A Note on PCI Device Layout": the
 * legacy queue address is a page frame number and the used ring starts on
 * the next 4096-byte boundary after the avail ring. */
#define VIRTIO_LEGACY_VRING_ALIGN 4096
#define VIRTQ_MAX_SIZE 32768

struct virtq_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc is 16 bytes");

struct virtq_avail {
	u16 flags;
	u16 idx;
	u16 ring[]; /* followed by u16 used_event */
};

struct virtq_used_elem {
	u32 id;
	u32 len;
};
_Static_assert(sizeof(struct virtq_used_elem) == 8, "virtq_used_elem is 8 bytes");

struct virtq_used {
	u16 flags;
	u16 idx;
	struct virtq_used_elem ring[]; /* followed by u16 avail_event */
};

/* The driver's view of one queue. The three areas live in one physically
 * contiguous block laid out as the legacy interface requires (the modern
 * interface accepts that layout as well). */
struct virtq {
	u16 size; /* descriptors; a power of two */
	u16 num_free;
	u16 free_head;	   /* free descriptors are chained through desc.next */
	u16 avail_idx;	   /* driver's copy of avail->idx */
	u16 last_used_idx; /* next used->idx position to consume */
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	u64 desc_phys, avail_phys, used_phys;
};

/* One buffer of a request: physical address, length, device-writable. */
struct virtq_buf {
	u64 addr;
	u32 len;
	bool device_writes;
};

/* Bytes of the legacy-layout block for a queue of qsz entries; 0 if qsz is not
 * a power of two in 1..32768. virtio 1.2 2.7 "Split Virtqueues" (alignment). */
u64 virtq_area_size(u16 qsz);
/* Lays out the queue in a zeroed block at mem (physical address phys) and
 * chains every descriptor into the free list. Returns 0 or -EINVAL. */
int virtq_init(struct virtq *vq, void *mem, u64 phys, u16 qsz);
/* Chains n buffers into descriptors and publishes the head in the avail ring.
 * Returns the head descriptor index, or -ENOSPC when fewer than n descriptors
 * are free, -EINVAL for n == 0. The caller then notifies the device. */
int virtq_add_chain(struct virtq *vq, const struct virtq_buf *bufs, int n);
/* Consumes one used-ring entry if the device published one: returns its head
 * descriptor index (the chain goes back to the free list) and the length the
 * device wrote in *len; -EAGAIN when the used ring holds nothing new. */
int virtq_get_used(struct virtq *vq, u32 *len);
/* True when the device asked not to be notified (VIRTQ_USED_F_NO_NOTIFY). */
bool virtq_notify_suppressed(const struct virtq *vq);

/* ---- PCI transport: virtio 1.2 4.1 "Virtio Over PCI Bus" ---------------- */

#define VIRTIO_PCI_VENDOR 0x1af4
/* 4.1.2 "PCI Device Discovery": transitional ids 0x1000..0x103f, modern 0x1040 + type. */
#define VIRTIO_PCI_DEVICE_BLK_LEGACY 0x1001
#define VIRTIO_PCI_DEVICE_BLK_MODERN 0x1042
#define VIRTIO_ID_BLOCK 2

/* 4.1.4 "Virtio Structure PCI Capabilities" */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

struct virtio_pci_cap {
	u8 cap_vndr; /* PCI_CAP_ID_VNDR */
	u8 cap_next;
	u8 cap_len;
	u8 cfg_type; /* VIRTIO_PCI_CAP_* */
	u8 bar;
	u8 id;
	u8 padding[2];
	u32 offset; /* within the BAR */
	u32 length;
} __packed;
_Static_assert(sizeof(struct virtio_pci_cap) == 16, "virtio_pci_cap is 16 bytes");

struct virtio_pci_notify_cap {
	struct virtio_pci_cap cap;
	u32 notify_off_multiplier;
} __packed;
_Static_assert(sizeof(struct virtio_pci_notify_cap) == 20, "notify cap is 20 bytes");

/* 4.1.4.3 "Common configuration structure layout" */
struct virtio_pci_common_cfg {
	u32 device_feature_select;
	u32 device_feature;
	u32 driver_feature_select;
	u32 driver_feature;
	u16 config_msix_vector;
	u16 num_queues;
	u8 device_status;
	u8 config_generation;
	u16 queue_select;
	u16 queue_size;
	u16 queue_msix_vector;
	u16 queue_enable;
	u16 queue_notify_off;
	u64 queue_desc;
	u64 queue_driver;
	u64 queue_device;
}; /* naturally aligned: no packing, so members can be addressed */
_Static_assert(offsetof(struct virtio_pci_common_cfg, device_status) == 0x14, "status at 0x14");
_Static_assert(offsetof(struct virtio_pci_common_cfg, queue_select) == 0x16,
	       "queue_select at 0x16");
_Static_assert(offsetof(struct virtio_pci_common_cfg, queue_desc) == 0x20, "queue_desc at 0x20");
_Static_assert(sizeof(struct virtio_pci_common_cfg) == 0x38, "common cfg is 0x38 bytes");

/* 4.1.4.8 "Legacy Interfaces: A Note on PCI Device Layout": I/O BAR0 offsets. */
#define VIRTIO_PCI_LEGACY_HOST_FEATURES 0x00  /* 32, R */
#define VIRTIO_PCI_LEGACY_GUEST_FEATURES 0x04 /* 32, RW */
#define VIRTIO_PCI_LEGACY_QUEUE_PFN 0x08      /* 32, RW */
#define VIRTIO_PCI_LEGACY_QUEUE_NUM 0x0c      /* 16, R */
#define VIRTIO_PCI_LEGACY_QUEUE_SEL 0x0e      /* 16, RW */
#define VIRTIO_PCI_LEGACY_QUEUE_NOTIFY 0x10   /* 16, RW */
#define VIRTIO_PCI_LEGACY_STATUS 0x12	      /* 8, RW */
#define VIRTIO_PCI_LEGACY_ISR 0x13	      /* 8, R */
#define VIRTIO_PCI_LEGACY_CONFIG 0x14	      /* device config while MSI-X is off */

struct pci_dev;

#define VIRTIO_MAX_QUEUES 4 /* queues a driver here may set up */

/* One virtio function and how to reach its registers. */
struct virtio_dev {
	struct pci_dev *pci;
	bool modern;
	u16 io_base;				       /* legacy */
	volatile struct virtio_pci_common_cfg *common; /* modern */
	volatile u8 *notify_base;
	u32 notify_len;
	u32 notify_off_multiplier;
	volatile u8 *isr;
	volatile u8 *device_cfg;
	u32 device_cfg_len;
	u64 features; /* negotiated */
	u16 queue_notify_off[VIRTIO_MAX_QUEUES];
};

/* Finds the registers of a virtio PCI function: the vendor capabilities when
 * modern is true, I/O BAR0 otherwise. Enables decoding and bus mastering.
 * Returns 0 or a negative errno with a reason in why[]. */
int virtio_pci_attach(struct virtio_dev *vd, struct pci_dev *pci, bool modern, char *why,
		      size_t why_len);
/* Resets the device and waits for the status to read 0 (modern: 4.1.4.3.2). */
int virtio_reset(struct virtio_dev *vd);
u8 virtio_get_status(struct virtio_dev *vd);
void virtio_add_status(struct virtio_dev *vd, u8 bits);
/* Feature negotiation, virtio 1.2 3.1.1 "Driver Requirements: Device
 * Initialization" steps 4-6: offers (device & wanted), and for the modern
 * interface sets FEATURES_OK and checks that it stuck. */
int virtio_negotiate(struct virtio_dev *vd, u64 wanted, u64 *device_features);
/* Device-specific configuration access (little-endian fields). */
u8 virtio_cfg_read8(struct virtio_dev *vd, u32 off);
u16 virtio_cfg_read16(struct virtio_dev *vd, u32 off);
u32 virtio_cfg_read32(struct virtio_dev *vd, u32 off);
u64 virtio_cfg_read64(struct virtio_dev *vd, u32 off);
/* Sets up queue `index` with at most max_size entries on a zeroed area it
 * allocates (or reuses: vq->desc non-NULL means already allocated). */
int virtio_setup_queue(struct virtio_dev *vd, u16 index, struct virtq *vq, u16 max_size);
void virtio_notify(struct virtio_dev *vd, u16 index);
/* True when the device set DEVICE_NEEDS_RESET or reads as absent (0xff). */
bool virtio_device_broken(struct virtio_dev *vd);

/* virtio_blk.c: registers the disk behind a virtio-blk PCI function. */
void virtio_blk_probe(struct pci_dev *pci);

#endif
