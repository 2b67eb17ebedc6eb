# Debian's Linux with two vCPUs (issue 14) on AMD-V in QEMU TCG, time counted by
# instructions (-icount) as the other Linux tests: the kernel brings its AP up
# with INIT-SIPI-SIPI through Amber's virtual LAPIC and /proc/cpuinfo lists
# both processors. Without the Debian files every test SKIPs (77).
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vm_cases  # noqa: E402
from harness import strip_ansi, timeout  # noqa: E402
from test_linux import MARKER, boot, material  # noqa: E402


@timeout(420)
def test_linux_two_vcpus():
	"""cpus=2: Linux boots to its shell, says it brought up 2 CPUs, and
	/proc/cpuinfo lists processors 0 and 1."""
	kernel, initrd = material()
	with boot(kernel, initrd) as vm:
		vm.wait_prompt(timeout=60)
		vid = vm_cases.create(vm, "vmlinuz mem=256M cpus=2 initrd=initramfs.cpio.gz -- "
				      "console=ttyS0", timeout=60)
		start = len(vm.seen)
		vm_cases.start(vm, vid)
		m = vm.wait_for(rf"\[vm{vid}\] (stopped: .*|.*{MARKER}.*|.*Kernel panic.*)",
				timeout=300, what=f"vm {vid} to stop, panic or print {MARKER}")
		if MARKER not in m.group(1):
			vm.fail(f"Linux with 2 vCPUs did not boot: {m.group(1)}\n"
				+ strip_ansi(vm.seen[start:])[-4000:])
		log = strip_ansi(vm.seen[start:])
		if not re.search(r"Brought up \d+ nodes?, 2 CPUs", log):
			vm.fail("Linux should say it brought up 2 CPUs:\n" + log[-4000:])
		vm.send(f"vm console {vid}\r")
		vm.wait_for(r"Ctrl-\] detaches", timeout=10)
		vm.send("echo CPUS-$(grep -c ^processor /proc/cpuinfo)\r")
		m = vm.wait_for(r"CPUS-(\d+)", timeout=120, what="the processors in /proc/cpuinfo")
		vm.send("\x1d")
		vm.wait_prompt(timeout=10)
		if m.group(1) != "2":
			vm.fail(f"/proc/cpuinfo lists {m.group(1)} processors, expected 2")
