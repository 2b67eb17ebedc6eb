# The VM behaviour tests (vm_cases.py) on the VT-x/EPT backend, in Bochs with
# the corei7_icelake_u model (VMX with EPT, unrestricted guest, VPID and the
# VMX-preemption timer; IA32_FEATURE_CONTROL already locked with VMX on). Every
# case boots its own Bochs from the GRUB ISO, so one failure never hides
# another. Bochs runs about 100 million guest instructions per second and its
# boot takes a few seconds more than QEMU's: hence `speed` and `slow`.
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vm_cases  # noqa: E402
from harness import BUILD, ROOT, boot_bochs, need_file, strip_ansi, work_dir  # noqa: E402

ISO = os.path.join(BUILD, "amber.iso")


def _boot(modules):
	# With modules run-bochs builds a temporary ISO around amber.elf;
	# without, it boots the one `make iso` built.
	if not modules:
		need_file(ISO, "make iso builds it")
	return boot_bochs(cpu="corei7_icelake_u", modules=modules)


BACKEND = vm_cases.Backend("vmx", boot=_boot, speed=80e6, slow=2.0)
vm_cases.install(globals(), BACKEND)


def test_vmx_bring_up():
	"""The boot log names the VMCS revision read from IA32_VMX_BASIC (0x4 on
	icelake_u) and the features in use; the VMM picked the VT-x backend."""
	with _boot([]) as vm:
		vm.wait_prompt(timeout=BACKEND.t(60))
		log = strip_ansi(vm.seen)
		m = re.search(r"vmx: VT-x on: VMCS revision (0x[0-9a-f]+), EPT with 2 MiB pages, "
			      r"VPID, unrestricted guest, preemption timer", log)
		if not m:
			vm.fail("the boot log lacks the VT-x bring-up line")
		if m.group(1) != "0x4":
			vm.fail(f"icelake_u reports VMCS revision 0x4, the log says {m.group(1)}")
		if "vmm: VT-x backend ready" not in log:
			vm.fail("the VMM did not pick the VT-x backend")


def _modes_guest():
	"""tests/guests/modes.asm assembled into the test's work folder."""
	out = os.path.join(work_dir(), "modes.bin")
	r = subprocess.run(["nasm", "-f", "bin", "-I", os.path.join(ROOT, "tests", "guests") + "/",
			    "-o", out, os.path.join(ROOT, "tests", "guests", "modes.asm")],
			   capture_output=True, text=True)
	if r.returncode != 0:
		raise AssertionError(f"assembling tests/guests/modes.asm failed:\n{r.stderr}")
	return out


def test_vmx_cpu_modes():
	"""What the VT-x backend emulates for the guest rather than the CPU: CR0.NE
	and CR0.CD writes through the read shadow, PAE paging enabled by an
	emulated MOV to CR0 (PDPTEs loaded by Amber), EFER.LME then native long mode
	(IA-32e entry control and EFER.LMA), CR8, and R8-R15 across exits."""
	with _boot([(_modes_guest(), "")]) as vm:
		vm.wait_prompt(timeout=BACKEND.t(60))
		vid = vm_cases.run(vm, "modes.bin")
		m = vm.wait_for(rf"\[vm{vid}\] (exited with code \d+|stopped: [^\r\n]*)",
				timeout=BACKEND.t(30))
		lines = "\n".join(vm_cases.guest_lines(vm, vid))
		if m.group(1) != "exited with code 0":
			vm.fail(f"the modes guest did not pass: {m.group(1)}\n{lines}")
		for step in ("CR0.NE and CR0.CD read back as written", "PAE paging on",
			     "long mode, CR8 and R8-R15 ok"):
			if f"modes: {step}" not in lines:
				vm.fail(f"the modes guest did not report '{step}':\n{lines}")
		counts = vm_cases.exit_counts(vm, vid)
		if counts.get("rdmsr", 0) < 2 or counts.get("wrmsr", 0) < 1:
			vm.fail(f"expected the EFER accesses among the exits, 'vm info' counted {counts}")
