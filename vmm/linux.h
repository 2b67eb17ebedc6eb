/*
 * Loads a Linux bzImage into a guest's RAM by the Linux/x86 boot protocol
 * (the kernel's Documentation/arch/x86/boot.rst, "The Linux/x86 Boot
 * Protocol", and zero-page.rst, "Zero Page"): reads the setup header, places
 * the kernel and an initrd, fills the zero page and describes the 32-bit
 * entry state. Pure module (guest memory through the loader_target callbacks
 * of vmm/loader.h), so host unit tests and a fuzzer feed it hostile images.
 */
#ifndef AMBER_LINUX_H
#define AMBER_LINUX_H

#include "kernel/bootinfo.h"
#include "kernel/types.h"
#include "vmm/loader.h"
#include "vmm/vcpu_state.h"

/* ---- the setup header ("The Real-Mode Kernel Header"), file offsets ------- */
#define LINUX_HDR_START 0x1F1	     /* setup_sects: first byte of the header */
#define LINUX_SETUP_SECTS 0x1F1	     /* u8, 0 means 4 */
#define LINUX_SYSSIZE 0x1F4	     /* u32, protected-mode size in 16-byte units */
#define LINUX_BOOT_FLAG 0x1FE	     /* u16, 0xAA55 */
#define LINUX_JUMP 0x200	     /* u16: a short jump past the header */
#define LINUX_HEADER 0x202	     /* u32, "HdrS" */
#define LINUX_VERSION 0x206	     /* u16, the protocol version */
#define LINUX_TYPE_OF_LOADER 0x210   /* u8 */
#define LINUX_LOADFLAGS 0x211	     /* u8 */
#define LINUX_CODE32_START 0x214     /* u32 */
#define LINUX_RAMDISK_IMAGE 0x218    /* u32 */
#define LINUX_RAMDISK_SIZE 0x21C     /* u32 */
#define LINUX_HEAP_END_PTR 0x224     /* u16 */
#define LINUX_CMD_LINE_PTR 0x228     /* u32, 2.02+ */
#define LINUX_INITRD_ADDR_MAX 0x22C  /* u32, 2.03+: highest byte an initrd may use */
#define LINUX_KERNEL_ALIGNMENT 0x230 /* u32, 2.05+ */
#define LINUX_RELOCATABLE 0x234	     /* u8, 2.05+ */
#define LINUX_XLOADFLAGS 0x236	     /* u16, 2.12+ */
#define LINUX_CMDLINE_SIZE 0x238     /* u32, 2.06+: longest command line, NUL excluded */
#define LINUX_SETUP_DATA 0x250	     /* u64, 2.09+ */
#define LINUX_PREF_ADDRESS 0x258     /* u64, 2.10+ */
#define LINUX_INIT_SIZE 0x260	     /* u32, 2.10+: memory the kernel needs from its start */
#define LINUX_HDR_LIMIT 0x290	     /* where the zero page's header area ends */

#define LINUX_BOOT_FLAG_MAGIC 0xAA55
#define LINUX_HDRS_MAGIC 0x53726448 /* "HdrS" */
#define LINUX_MIN_VERSION 0x0206    /* cmdline_size and kernel_alignment exist */
#define LINUX_LOADED_HIGH BIT(0)    /* loadflags: a bzImage, loaded at 1 MiB or above */
#define LINUX_KEEP_SEGMENTS BIT(6)  /* loadflags: obsolete since 2.07; cleared */
#define LINUX_CAN_USE_HEAP BIT(7)
#define XLF_KERNEL_64 BIT(0) /* xloadflags: a 64-bit entry at start + 0x200 */
#define XLF_CAN_BE_LOADED_ABOVE_4G BIT(1)
#define LINUX_LOADER_UNDEFINED 0xFF /* type_of_loader: a loader with no assigned id */

/* ---- the zero page (struct boot_params, "Zero Page"), its offsets -------- */
#define BP_ACPI_RSDP_ADDR 0x070	   /* u64, protocol 2.14+ */
#define BP_EXT_RAMDISK_IMAGE 0x0C0 /* u32: bits 63:32 of ramdisk_image */
#define BP_EXT_RAMDISK_SIZE 0x0C4
#define BP_EXT_CMD_LINE_PTR 0x0C8
#define BP_ALT_MEM_K 0x1E0    /* u32: KiB of memory above 1 MiB */
#define BP_E820_ENTRIES 0x1E8 /* u8 */
#define BP_SENTINEL 0x1EF     /* u8: left 0, so the kernel trusts the fields */
#define BP_E820_TABLE 0x2D0   /* 128 entries of {u64 addr, u64 size, u32 type} */
#define BP_E820_MAX 128
#define BP_E820_ENTRY_SIZE 20

/* ---- where Amber puts the boot data in guest memory --------------------- */
/* All below the EBDA (vmm/platform.h) and clear of where kernels load (1 MiB
 * and up); Linux copies the zero page and the command line early on. */
#define LINUX_GDT_GPA 0x6000	   /* the boot GDT: null, null, __BOOT_CS, __BOOT_DS */
#define LINUX_ZERO_PAGE_GPA 0x7000 /* struct boot_params, 4 KiB */
#define LINUX_CMDLINE_GPA 0x20000  /* the command line, at most LINUX_CMDLINE_MAX */
#define LINUX_CMDLINE_MAX 0x1000   /* bytes Amber reserves for it, NUL included */
#define LINUX_BOOT_CS 0x10	   /* __BOOT_CS, "32-bit Boot Protocol" */
#define LINUX_BOOT_DS 0x18	   /* __BOOT_DS */

/* What the caller gives besides the image. */
struct linux_params {
	const char *cmdline; /* the kernel's command line ("" for none) */
	const u8 *initrd;    /* NULL for none */
	u64 initrd_size;
	const struct mem_range *map; /* the VM's memory map (e820 types), as the */
	int nmap;		     /* firmware describes it; copied verbatim */
	u64 rsdp;		     /* ACPI RSDP address, 0 for none */
};

/* What was loaded where: for the entry state and for reports. */
struct linux_loaded {
	u16 version; /* boot protocol, e.g. 0x020F */
	u8 xloadflags;
	bool relocatable;
	u64 kernel;		 /* load address = the 32-bit entry point */
	u64 kernel_size;	 /* bytes copied from the file */
	u64 kernel_end;		 /* kernel + init_size: memory it may use while booting */
	u64 initrd, initrd_size; /* 0, 0 for none */
	u64 zero_page, cmdline;	 /* guest-physical addresses */
	bool rsdp_passed;	 /* protocol 2.14+ and an RSDP was given */
};

/* True when `img` carries a bzImage setup header (boot flag and "HdrS"); says
 * nothing of whether it will load. */
bool linux_is_bzimage(const u8 *img, u64 size);

/* Checks the bzImage `img` and params against the guest memory `t` and, only
 * when everything fits, writes the kernel, the initrd, the command line, the
 * zero page and the boot GDT. Returns 0, or -ENOEXEC (not a usable bzImage),
 * -E2BIG (kernel or initrd does not fit the RAM), -EINVAL (bad params: command
 * line too long, memory map too large) or the callback's error, with one line
 * in err saying which. On error nothing has been written unless a callback
 * itself failed. */
int linux_load(const u8 *img, u64 size, const struct linux_params *p, const struct loader_target *t,
	       struct linux_loaded *out, char *err, size_t errlen);

/* The entry state of "32-bit Boot Protocol": protected mode, paging off, flat
 * __BOOT_CS/__BOOT_DS from the boot GDT, interrupts off, ESI = the zero page,
 * EBP = EDI = EBX = 0, EIP = the loaded kernel's start. */
void linux_entry_state(struct vcpu_state *s, const struct linux_loaded *l);

/* What a guest image holds, by its content (for `vm images`). */
enum image_kind {
	IMAGE_UNKNOWN,
	IMAGE_MULTIBOOT,
	IMAGE_LINUX,
	IMAGE_INITRD, /* compressed or plain cpio: something to pass as initrd= */
};
enum image_kind image_kind(const u8 *img, u64 size, const char **detail);

#endif
