/*
 * Parallel ATA (IDE) task-file registers, commands and the PIIX bus-master
 * DMA registers, for drivers/ata.c (host boot and shell).
 * Reference: ATA/ATAPI-8 ACS (T13/1699-D) 7 "Command descriptions" and
 * ATA8-APT (T13/1532-D) for the parallel transport; Intel PIIX/PIIX3
 * datasheet 2.7 "Bus Master IDE" for the BMIDE registers.
 */
#ifndef AMBER_ATA_H
#define AMBER_ATA_H

#include "kernel/types.h"

/* Legacy ISA ports of the two channels. */
#define ATA_PRIMARY_CMD 0x1f0
#define ATA_PRIMARY_CTL 0x3f6
#define ATA_SECONDARY_CMD 0x170
#define ATA_SECONDARY_CTL 0x376

/* Command block, offsets from the channel's command base. */
#define ATA_REG_DATA 0
#define ATA_REG_ERROR 1	  /* read */
#define ATA_REG_FEATURE 1 /* write */
#define ATA_REG_NSECT 2
#define ATA_REG_LBAL 3
#define ATA_REG_LBAM 4
#define ATA_REG_LBAH 5
#define ATA_REG_DEVICE 6
#define ATA_REG_STATUS 7  /* read */
#define ATA_REG_COMMAND 7 /* write */
/* Control block: alternate status (read) / device control (write). */
#define ATA_REG_ALTSTATUS 0
#define ATA_REG_DEVCTL 0

#define ATA_DEVCTL_NIEN 0x02 /* interrupts off: Amber polls */
#define ATA_DEVCTL_SRST 0x04
#define ATA_DEVCTL_HOB 0x80

#define ATA_DEVICE_OBS 0xa0 /* obsolete bits 7 and 5, set for old devices */
#define ATA_DEVICE_LBA 0x40
#define ATA_DEVICE_SLAVE 0x10

#define ATA_SR_BSY 0x80
#define ATA_SR_DRDY 0x40
#define ATA_SR_DF 0x20
#define ATA_SR_DRQ 0x08
#define ATA_SR_ERR 0x01

#define ATA_ER_ICRC 0x80
#define ATA_ER_UNC 0x40
#define ATA_ER_IDNF 0x10
#define ATA_ER_ABRT 0x04

/* ACS 7.x command codes */
#define ATA_CMD_READ_SECTORS 0x20
#define ATA_CMD_READ_SECTORS_EXT 0x24
#define ATA_CMD_READ_DMA_EXT 0x25
#define ATA_CMD_WRITE_SECTORS 0x30
#define ATA_CMD_WRITE_SECTORS_EXT 0x34
#define ATA_CMD_WRITE_DMA_EXT 0x35
#define ATA_CMD_READ_DMA 0xc8
#define ATA_CMD_WRITE_DMA 0xca
#define ATA_CMD_FLUSH_CACHE 0xe7
#define ATA_CMD_FLUSH_CACHE_EXT 0xea
#define ATA_CMD_IDENTIFY 0xec

/* IDENTIFY DEVICE data, word indices (ACS 7.16.7). */
#define ATA_ID_CONFIG 0
#define ATA_ID_SERIAL 10 /* 10 words */
#define ATA_ID_FW_REV 23
#define ATA_ID_MODEL 27 /* 20 words */
#define ATA_ID_CAPABILITY 49
#define ATA_ID_LBA28_SECTORS 60
#define ATA_ID_MWDMA 63
#define ATA_ID_CMDSET_82 82
#define ATA_ID_CMDSET_83 83
#define ATA_ID_CMDSET_85 85
#define ATA_ID_CMDSET_86 86
#define ATA_ID_UDMA 88
#define ATA_ID_LBA48_SECTORS 100
#define ATA_ID_SECTOR_SIZE 106
#define ATA_ID_LOGICAL_SECTOR_WORDS 117

/* Signatures left in LBA mid/high by a device that is not an ATA disk. */
#define ATA_SIG_ATAPI_MID 0x14
#define ATA_SIG_ATAPI_HIGH 0xeb
#define ATA_SIG_SATA_MID 0x3c
#define ATA_SIG_SATA_HIGH 0xc3

/* Bus-master IDE registers, per channel at BAR4 + 8 * channel. */
#define ATA_BM_CMD 0
#define ATA_BM_STATUS 2
#define ATA_BM_PRDT 4
#define ATA_BM_CMD_START 0x01
#define ATA_BM_CMD_READ 0x08 /* device to memory */
#define ATA_BM_ST_ACTIVE 0x01
#define ATA_BM_ST_ERROR 0x02
#define ATA_BM_ST_INTR 0x04

/* Physical Region Descriptor: 32-bit address, byte count (0 = 64 KiB), EOT.
 * A region may not cross a 64 KiB boundary. */
struct ata_prd {
	u32 addr;
	u16 count;
	u16 flags;
} __packed;
_Static_assert(sizeof(struct ata_prd) == 8, "PRD is 8 bytes");
#define ATA_PRD_EOT 0x8000

struct pci_dev;

/* Probes the channels of a PCI IDE function (native or compatibility mode). */
void ata_probe_pci(struct pci_dev *pci);
/* Probes the ISA ports when no PCI IDE function exists. */
void ata_probe_legacy(void);

#endif
