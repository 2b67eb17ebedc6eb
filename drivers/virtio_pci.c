/*
 * The virtio PCI transport: finds a function's registers (vendor capabilities
 * for the modern interface, I/O BAR0 for the legacy one) and offers status,
 * feature, configuration, queue and notification access over either.
 * Context: host, boot and shell. Reference: virtio 1.2 4.1 "Virtio Over PCI Bus".
 */
#include "drivers/virtio.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/pci.h"
#include "kernel/printk.h"
#include "kernel/time.h"
#include "kernel/x86.h"

/* Virtio gives no bound for a reset; QEMU and real devices finish at once,
 * and a second is generous for hardware that defers it. */
#define VIRTIO_RESET_TIMEOUT_US 1000000

#define COMMON(vd, field) (&(vd)->common->field)

/* Maps the region a virtio capability describes; NULL with why[] set when it
 * points outside a memory BAR. 4.1.4.1 "Driver Requirements: Virtio Structure
 * PCI Capabilities": reserved BAR numbers are ignored. */
static volatile u8 *virtio_map_cap(struct pci_dev *pci, u8 cap, u32 *len, char *why, size_t why_len)
{
	u8 bar = pci_read8(pci, cap + offsetof(struct virtio_pci_cap, bar));
	u32 off = pci_read32(pci, cap + offsetof(struct virtio_pci_cap, offset));
	u32 length = pci_read32(pci, cap + offsetof(struct virtio_pci_cap, length));

	if (bar > 5 || !pci->bar_size[bar]) {
		snprintf(why, why_len, "capability at 0x%x names BAR %u, which is absent", cap,
			 bar);
		return NULL;
	}
	if (pci->bar_is_io[bar]) {
		snprintf(why, why_len, "capability at 0x%x is in I/O BAR %u (unsupported)", cap,
			 bar);
		return NULL;
	}
	if ((u64)off + length > pci->bar_size[bar]) {
		snprintf(why, why_len, "capability at 0x%x overruns BAR %u", cap, bar);
		return NULL;
	}
	*len = length;
	return ioremap(pci->bar[bar] + off, length);
}

static int virtio_attach_modern(struct virtio_dev *vd, struct pci_dev *pci, char *why,
				size_t why_len)
{
	u32 len, notify_len = 0;

	for (u8 cap = pci_find_cap(pci, PCI_CAP_ID_VNDR, 0); cap;
	     cap = pci_find_cap(pci, PCI_CAP_ID_VNDR, cap)) {
		u8 type = pci_read8(pci, cap + offsetof(struct virtio_pci_cap, cfg_type));
		volatile u8 *p;

		/* The first capability of each type is the preferred one. */
		if ((type == VIRTIO_PCI_CAP_COMMON_CFG && vd->common) ||
		    (type == VIRTIO_PCI_CAP_NOTIFY_CFG && vd->notify_base) ||
		    (type == VIRTIO_PCI_CAP_ISR_CFG && vd->isr) ||
		    (type == VIRTIO_PCI_CAP_DEVICE_CFG && vd->device_cfg) ||
		    type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG)
			continue;
		p = virtio_map_cap(pci, cap, &len, why, why_len);
		if (!p)
			return -ENODEV;
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			if (len < sizeof(struct virtio_pci_common_cfg)) {
				snprintf(why, why_len, "common configuration is only %u bytes",
					 len);
				return -ENODEV;
			}
			vd->common = (volatile struct virtio_pci_common_cfg *)p;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			vd->notify_base = p;
			notify_len = len;
			vd->notify_off_multiplier =
				pci_read32(pci, cap + offsetof(struct virtio_pci_notify_cap,
							       notify_off_multiplier));
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			vd->isr = p;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			vd->device_cfg = p;
			vd->device_cfg_len = len;
			break;
		}
	}
	if (!vd->common || !vd->notify_base || !vd->device_cfg) {
		snprintf(why, why_len, "no %s capability",
			 !vd->common	  ? "common configuration" :
			 !vd->notify_base ? "notification" :
					    "device configuration");
		return -ENODEV;
	}
	if (notify_len < 2) {
		snprintf(why, why_len, "notification region is %u bytes", notify_len);
		return -ENODEV;
	}
	vd->notify_len = notify_len;
	return 0;
}

int virtio_pci_attach(struct virtio_dev *vd, struct pci_dev *pci, bool modern, char *why,
		      size_t why_len)
{
	memset(vd, 0, sizeof(*vd));
	vd->pci = pci;
	vd->modern = modern;
	if (modern) {
		pci_enable(pci, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
		return virtio_attach_modern(vd, pci, why, why_len);
	}
	if (!pci->bar_size[0] || !pci->bar_is_io[0]) {
		snprintf(why, why_len, "legacy device without an I/O BAR0");
		return -ENODEV;
	}
	vd->io_base = (u16)pci->bar[0];
	pci_enable(pci, PCI_COMMAND_IO | PCI_COMMAND_MASTER);
	return 0;
}

u8 virtio_get_status(struct virtio_dev *vd)
{
	if (vd->modern)
		return mmio_read8(COMMON(vd, device_status));
	return inb(vd->io_base + VIRTIO_PCI_LEGACY_STATUS);
}

static void virtio_set_status(struct virtio_dev *vd, u8 status)
{
	if (vd->modern)
		mmio_write8(COMMON(vd, device_status), status);
	else
		outb(vd->io_base + VIRTIO_PCI_LEGACY_STATUS, status);
}

void virtio_add_status(struct virtio_dev *vd, u8 bits)
{
	virtio_set_status(vd, virtio_get_status(vd) | bits);
}

/* 4.1.4.3.2 "Driver Requirements: Common configuration structure layout":
 * after writing 0 the driver waits for device_status to read 0. */
int virtio_reset(struct virtio_dev *vd)
{
	u64 dl = deadline_after_us(VIRTIO_RESET_TIMEOUT_US);

	virtio_set_status(vd, 0);
	while (virtio_get_status(vd) != 0) {
		if (deadline_passed(dl))
			return -ETIMEDOUT;
		cpu_relax();
	}
	return 0;
}

int virtio_negotiate(struct virtio_dev *vd, u64 wanted, u64 *device_features)
{
	u64 dev;

	if (vd->modern) {
		mmio_write32(COMMON(vd, device_feature_select), 0);
		dev = mmio_read32(COMMON(vd, device_feature));
		mmio_write32(COMMON(vd, device_feature_select), 1);
		dev |= (u64)mmio_read32(COMMON(vd, device_feature)) << 32;
	} else {
		dev = inl(vd->io_base + VIRTIO_PCI_LEGACY_HOST_FEATURES);
		wanted &= 0xffffffffULL; /* the legacy interface has 32 feature bits */
	}
	*device_features = dev;
	vd->features = dev & wanted;
	if (!vd->modern) {
		outl(vd->io_base + VIRTIO_PCI_LEGACY_GUEST_FEATURES, (u32)vd->features);
		return 0;
	}
	/* 6.1 "Driver Requirements: Reserved Feature Bits": a modern device
	 * without VERSION_1 is not one this driver can speak to. */
	if (!(vd->features & BIT(VIRTIO_F_VERSION_1)))
		return -EOPNOTSUPP;
	mmio_write32(COMMON(vd, driver_feature_select), 0);
	mmio_write32(COMMON(vd, driver_feature), (u32)vd->features);
	mmio_write32(COMMON(vd, driver_feature_select), 1);
	mmio_write32(COMMON(vd, driver_feature), (u32)(vd->features >> 32));
	virtio_add_status(vd, VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_get_status(vd) & VIRTIO_STATUS_FEATURES_OK))
		return -EIO; /* 3.1.1 step 6: the device refused this subset */
	return 0;
}

u8 virtio_cfg_read8(struct virtio_dev *vd, u32 off)
{
	if (vd->modern)
		return off < vd->device_cfg_len ? mmio_read8(vd->device_cfg + off) : 0;
	return inb(vd->io_base + VIRTIO_PCI_LEGACY_CONFIG + off);
}

u16 virtio_cfg_read16(struct virtio_dev *vd, u32 off)
{
	if (vd->modern)
		return off + 2 <= vd->device_cfg_len ? mmio_read16(vd->device_cfg + off) : 0;
	return inw(vd->io_base + VIRTIO_PCI_LEGACY_CONFIG + off);
}

u32 virtio_cfg_read32(struct virtio_dev *vd, u32 off)
{
	if (vd->modern)
		return off + 4 <= vd->device_cfg_len ? mmio_read32(vd->device_cfg + off) : 0;
	return inl(vd->io_base + VIRTIO_PCI_LEGACY_CONFIG + off);
}

/* 2.5.1 "Driver Requirements: Device Configuration Space": a field wider
 * than 32 bits is read as two halves until config_generation is unchanged
 * (legacy devices have no generation: read until two passes agree). */
u64 virtio_cfg_read64(struct virtio_dev *vd, u32 off)
{
	u64 v, prev = ~0ULL;

	for (int tries = 0; tries < 100; tries++) {
		u8 gen = vd->modern ? mmio_read8(COMMON(vd, config_generation)) : 0;

		v = virtio_cfg_read32(vd, off) | (u64)virtio_cfg_read32(vd, off + 4) << 32;
		if (vd->modern ? gen == mmio_read8(COMMON(vd, config_generation)) : v == prev)
			break;
		prev = v;
	}
	return v;
}

static void mmio_write64_split(volatile u64 *p, u64 v)
{
	/* 4.1.3.1: 64-bit fields may be written as two 32-bit halves. */
	mmio_write32((volatile u32 *)p, (u32)v);
	mmio_write32((volatile u32 *)p + 1, (u32)(v >> 32));
}

int virtio_setup_queue(struct virtio_dev *vd, u16 index, struct virtq *vq, u16 max_size)
{
	u16 size;
	u64 pa;

	if (index >= VIRTIO_MAX_QUEUES)
		return -EINVAL;
	if (vd->modern) {
		mmio_write16(COMMON(vd, queue_select), index);
		size = mmio_read16(COMMON(vd, queue_size));
	} else {
		outw(vd->io_base + VIRTIO_PCI_LEGACY_QUEUE_SEL, index);
		size = inw(vd->io_base + VIRTIO_PCI_LEGACY_QUEUE_NUM);
	}
	if (size == 0)
		return -ENODEV;
	/* A modern driver may ask for a smaller ring (4.1.4.3.2); a legacy
	 * device's size is fixed and must already be a power of two. */
	if (vd->modern) {
		while (size & (size - 1))
			size &= (u16)(size - 1);
		if (size > max_size)
			size = max_size;
	}
	if (!virtq_area_size(size))
		return -EINVAL;

	if (vq->desc && vq->size == size) {
		pa = vq->desc_phys; /* re-initialisation after a reset */
	} else {
		pa = pmm_alloc_contig(virtq_area_size(size) / PAGE_SIZE, 1);
		if (!pa)
			return -ENOMEM;
	}
	if (virtq_init(vq, phys_to_virt(pa), pa, size))
		return -EINVAL;

	if (!vd->modern) {
		if (pa >> (32 + 12))
			return -ERANGE; /* the legacy PFN register is 32 bits */
		outl(vd->io_base + VIRTIO_PCI_LEGACY_QUEUE_PFN, (u32)(pa >> 12));
		return 0;
	}
	mmio_write16(COMMON(vd, queue_size), size);
	mmio_write64_split(COMMON(vd, queue_desc), vq->desc_phys);
	mmio_write64_split(COMMON(vd, queue_driver), vq->avail_phys);
	mmio_write64_split(COMMON(vd, queue_device), vq->used_phys);
	vd->queue_notify_off[index] = mmio_read16(COMMON(vd, queue_notify_off));
	if ((u64)vd->queue_notify_off[index] * vd->notify_off_multiplier + 2 > vd->notify_len)
		return -ERANGE; /* the doorbell would lie outside the notify region */
	mmio_write16(COMMON(vd, queue_enable), 1);
	return 0;
}

void virtio_notify(struct virtio_dev *vd, u16 index)
{
	if (!vd->modern) {
		outw(vd->io_base + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, index);
		return;
	}
	/* 4.1.4.4 "Notification structure layout" */
	mmio_write16(vd->notify_base + (u64)vd->queue_notify_off[index] * vd->notify_off_multiplier,
		     index);
}

bool virtio_device_broken(struct virtio_dev *vd)
{
	u8 status = virtio_get_status(vd);

	return status == 0xff || (status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}
