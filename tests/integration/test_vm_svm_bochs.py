# The VM behaviour tests (vm_cases.py) on the AMD-V backend a second time, in
# Bochs with the `ryzen` model: SVM with NPT and NRIPS (so the next RIP comes
# from the CPU here, unlike QEMU TCG), no decode assists, and a VM_CR that may
# fault. Bochs boots slowly, so cases share a boot in three groups. Cases that
# an emulator bug rules out here are dropped from the groups (vm_cases.py says
# why: see BOCHS_INTR_BUG).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vm_cases  # noqa: E402
from harness import BUILD, boot_bochs, need_file  # noqa: E402

ISO = os.path.join(BUILD, "amber.iso")


def _boot(modules):
	if not modules:
		need_file(ISO, "make iso builds it")
	return boot_bochs(cpu="ryzen", modules=modules)


BACKEND = vm_cases.Backend("svm", boot=_boot, speed=80e6, slow=2.0, emulator="bochs-ryzen")
vm_cases.install_grouped(globals(), BACKEND, {
	"ryzen_basics": ["images", "hello_exits_zero", "exit_counts", "halt", "console", "screen",
			 "bad_arguments", "list_and_several_vms", "refused_images", "pic_timer",
			 "string_io", "image_at_0x9000", "acpi_tables", "hidden_instructions"],
	"ryzen_apic": ["apic_registers", "apic_interrupts", "ioapic_polled",
		       "ioapic_interrupts", "hostile_apic_insn", "hostile_apic_word",
		       "hostile_icr_storm", "hostile_irq_storm"],
	"ryzen_intr": ["eventinj"],
	"ryzen_dirty": ["dirty_log"],
	"ryzen_reset": ["fast_reset", "fast_reset_all_pages", "hypercall_ud", "fuzz_demo"],
	"ryzen_pause_memtest": ["counter_pause_resume", "memtest_passes", "invaders"],
	"ryzen_platform": ["rtc", "uart", "uart_listen", "pm_power_off", "reset_cf9", "reset_kbd", "reset_92"],
	"ryzen_hostile": ["hostile_oob_read", "hostile_oob_write", "hostile_oob_mmio",
			  "hostile_oob_high", "hostile_vmx", "hostile_svm", "hostile_triple",
			  "hostile_io_storm", "hostile_outs_oob", "hostile_ins_oob",
			  "hostile_gp_storm", "hostile_spin_sti",
			  "hostile_spin_cli"],  # left out: vm_cases.BOCHS_INTR_BUG
})
