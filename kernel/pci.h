/*
 * PCI configuration space (port 0xCF8/0xCFC, or ECAM when ACPI's MCFG gives it)
 * and the list of functions found at boot. Context: host, boot and shell.
 * Reference: PCI Local Bus Specification 3.0, 6.1 "Configuration Space Organization".
 */
#ifndef AMBER_PCI_H
#define AMBER_PCI_H

#include "kernel/types.h"

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO BIT(0)
#define PCI_COMMAND_MEMORY BIT(1)
#define PCI_COMMAND_MASTER BIT(2)
#define PCI_COMMAND_INTX_DISABLE BIT(10)
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST BIT(4)
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_CAP_ID_VNDR 0x09

struct pci_dev {
	u16 seg;
	u8 bus, dev, fn;
	u16 vendor, device;
	u8 class_code, subclass, prog_if, revision;
	u8 header_type;
	/* BARs decoded at boot: address, size, I/O or memory. A 64-bit BAR takes
	 * two slots; the upper slot is marked unused (size 0). */
	u64 bar[6];
	u64 bar_size[6];
	bool bar_is_io[6];
	bool bar_is_64[6];    /* this slot and the next form one 64-bit BAR */
	bool bar_prefetch[6]; /* prefetchable memory */
};

#define PCI_MAX_DEVS 64
extern struct pci_dev pci_devs[PCI_MAX_DEVS];
extern int pci_dev_count;

void pci_init(void);
u32 pci_read32(const struct pci_dev *d, u16 off);
u16 pci_read16(const struct pci_dev *d, u16 off);
u8 pci_read8(const struct pci_dev *d, u16 off);
void pci_write32(const struct pci_dev *d, u16 off, u32 v);
void pci_write16(const struct pci_dev *d, u16 off, u16 v);
void pci_write8(const struct pci_dev *d, u16 off, u8 v);
/* Sets the given bits in the command register (e.g. MEMORY | MASTER). */
void pci_enable(const struct pci_dev *d, u16 command_bits);
/* Offset of the next capability with that id after `from` (0: first), or 0. */
u8 pci_find_cap(const struct pci_dev *d, u8 cap_id, u8 from);
const char *pci_class_name(u8 class_code, u8 subclass);
/* True when extended configuration space (offsets 256-4095) is reachable
 * through ECAM; otherwise such reads return all ones. */
bool pci_has_ecam(void);

/* The pure parts (kernel/pci_parse.c), also built into the host unit tests. */
#define PCI_BAR_IO BIT(0)
#define PCI_BAR_MEM_TYPE_64 BIT(2) /* bits 2:1 = 10b */
#define PCI_BAR_MEM_PREFETCH BIT(3)
struct pci_bar_info {
	u64 addr, size; /* size 0: the BAR is not implemented */
	bool is_io, is_64, prefetch;
};
/* Decodes a BAR from its original value and the value read back after
 * writing all ones (hi: the next BAR, used when this one is 64-bit).
 * Returns the number of BAR slots it occupies: 1, or 2 for a 64-bit BAR. */
int pci_bar_decode(u32 val_lo, u32 val_hi, u32 mask_lo, u32 mask_hi, struct pci_bar_info *out);
/* Walks the capability list of a type 0 or type 1 header through rd; same
 * contract as pci_find_cap. Bounded: a looping list ends the walk. */
typedef u8 (*pci_cfg_read8_fn)(const void *ctx, u16 off);
u8 pci_cap_walk(pci_cfg_read8_fn rd, const void *ctx, u8 cap_id, u8 from);

#endif
