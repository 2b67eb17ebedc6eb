/*
 * kmain: the C entry point, called once from boot/boot.asm in 64-bit mode on
 * the boot CPU with interrupts off. Brings the machine into a known state in
 * dependency order, then hands the CPU to the shell for good.
 */
#include "kernel/acpi.h"
#include "kernel/bootinfo.h"
#include "kernel/console.h"
#include "kernel/cpu.h"
#include "kernel/ctl.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/pci.h"
#include "kernel/printk.h"
#include "kernel/shell.h"
#include "kernel/smp.h"
#include "kernel/time.h"
#include "kernel/traps.h"
#include "kernel/version.h"
#include "drivers/blockdev.h"
#include "snapshot/snap.h"
#include "vmm/vmm.h"

struct boot_info boot_info;

void kmain(u32 magic, u64 info_phys);

static const char banner[] = "\nAmber " AMBER_VERSION
			     ": a minimal x86_64 hypervisor with snapshots\n";

void kmain(u32 magic, u64 info_phys)
{
	int err;

	console_init();
	traps_init();
	err = multiboot_parse(magic, phys_to_virt(info_phys), &boot_info);
	if (boot_info.fb_is_text && boot_info.fb_phys)
		console_enable_vga(boot_info.fb_phys);
	printk("%s", banner);
	if (err)
		panic("not started by a Multiboot loader (magic 0x%x): boot Amber with QEMU -kernel "
		      "or GRUB multiboot2",
		      magic);
	time_init();
	mm_init();
	if (!boot_info.fb_is_text && boot_info.fb_phys) {
		console_enable_fb(boot_info.fb_phys, boot_info.fb_pitch, boot_info.fb_width,
				  boot_info.fb_height, boot_info.fb_bpp);
		/* The serial console printed the banner already; the screen gets it now. */
		for (const char *p = banner; *p; p++)
			fbcon_putc(*p);
	}
	pr_info("boot: Multiboot %d from %s; %d memory ranges, %d module(s)",
		boot_info.multiboot_version,
		boot_info.loader[0] ? boot_info.loader : "unknown loader", boot_info.mmap_count,
		boot_info.module_count);
	pr_info("time: TSC %lu.%03lu MHz; a tick is 1 us", tsc_hz() / 1000000,
		tsc_hz() / 1000 % 1000);
	pr_info("memory: %lu MiB free", pmm_free_pages() * PAGE_SIZE >> 20);
	cpu_init();
	crc32c_init();
	acpi_init();
	smp_init();
	pci_init();
	drivers_init();
	snap_init();
	vmm_init();
	ctl_init();
	ctl_boot_script();
	printk("Type 'help' for the list of commands.\n");
	shell_run();
}
