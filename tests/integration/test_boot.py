# Amber boots the ways a person boots it: QEMU -kernel (Multiboot 1), the GRUB
# ISO under SeaBIOS and under OVMF (Multiboot 2, BIOS and UEFI), and the ISO in
# Bochs with VT-x. Bochs is slow to start, so its one boot checks several things.
import os
import re

from harness import BUILD, boot_bochs, boot_qemu, boot_qemu_iso, need_file, timeout

ISO = os.path.join(BUILD, "amber.iso")
BLOB = os.path.abspath(__file__)   # any file makes a module


def expect(vm, regex, text, what):
	if not re.search(regex, text, re.M):
		vm.fail(f"expected {what} (/{regex}/) in:\n{text.rstrip()}")


def check_multiboot(vm, version):
	out = vm.cmd_ok("version")
	expect(vm, r"^Amber \S+", out, "the version line")
	expect(vm, rf"Multiboot {version}", out, f"'Multiboot {version}'")
	return out


def test_qemu_kernel_with_modules():
	with boot_qemu(modules=[(BLOB, "alpha beta"), (BLOB, "")]) as vm:
		vm.wait_prompt()
		check_multiboot(vm, 1)
		out = vm.cmd_ok("mem")
		expect(vm, r"module 0: .*test_boot\.py alpha beta", out,
		       "module 0 with its arguments")
		expect(vm, r"module 1: .*test_boot\.py", out, "module 1")


def test_qemu_iso_seabios():
	need_file(ISO, "make iso builds it")
	with boot_qemu_iso() as vm:
		vm.wait_prompt()
		check_multiboot(vm, 2)
		vm.send("poweroff\r")
		vm.expect_exit(timeout=20, code=0)


def test_qemu_iso_with_modules():
	with boot_qemu_iso(modules=[(BLOB, "alpha beta")]) as vm:
		vm.wait_prompt()
		out = vm.cmd_ok("mem")
		# GRUB passes "NAME ARGS", as QEMU -initrd does (scripts/mkiso).
		expect(vm, r"module 0: .*test_boot\.py alpha beta", out,
		       "the module and its arguments")


@timeout(180)
def test_qemu_iso_uefi():
	need_file(ISO, "make iso builds it")
	with boot_qemu_iso(uefi=True) as vm:
		vm.wait_prompt(timeout=120)   # OVMF alone takes 3-10 s under TCG
		check_multiboot(vm, 2)


@timeout(240)
def test_bochs_icelake_vmx():
	need_file(ISO, "make iso builds it")
	with boot_bochs() as vm:
		vm.wait_prompt(timeout=120)
		check_multiboot(vm, 2)
		out = vm.cmd_ok("cpu", timeout=60)
		expect(vm, r"^VT-x:\s+yes", out, "VT-x (VMX) on Bochs corei7_icelake_u")
		expect(vm, r"\bEPT yes\b", out, "EPT on Bochs corei7_icelake_u")
		expect(vm, r"^virtualization: VT-x with EPT", out, "the verdict 'VT-x with EPT'")
		out = vm.cmd_ok("pci", timeout=60)
		expect(vm, r"8086:1237", out, "the i440FX host bridge")
		# ACPI power-off ends Bochs with its own status 1 (TESTRIG.md).
		vm.send("poweroff\r")
		vm.expect_exit(timeout=60, code=1)


@timeout(240)
def test_bochs_ryzen_svm():
	need_file(ISO, "make iso builds it")
	with boot_bochs(cpu="ryzen") as vm:
		vm.wait_prompt(timeout=120)
		out = vm.cmd_ok("cpu", timeout=60)
		# Bochs raises #GP on RDMSR VM_CR: the probe must survive it.
		expect(vm, r"^AMD-V:\s+yes", out, "AMD-V (SVM) on Bochs ryzen")
		expect(vm, r"^virtualization: AMD-V with NPT", out, "the verdict 'AMD-V with NPT'")

