# Debian's kernel booting to its shell marker (issue 13 "Measure"): the guest
# time Linux itself reports at /init (its /proc/uptime, which repeats from run
# to run under QEMU -icount shift=0,sleep=off: one TSC tick is one instruction,
# Amber's included, plus the idle stretches QEMU skips ahead), the VM exits by
# kind, and the wall time from `vm start` to the marker for orientation. The
# same on VT-x in Bochs icelake, whose TSC also counts instructions. Recorded
# in docs/performance.md.
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
				"integration"))

import harness  # noqa: E402
import test_linux  # noqa: E402
import vm_cases  # noqa: E402


def _boot_to_marker(vm, mem_mib, wait_s):
	vm.wait_prompt(timeout=120)
	vid = vm_cases.create(vm, f"vmlinuz mem={mem_mib}M initrd=initramfs.cpio.gz "
			      "-- console=ttyS0")
	t0 = time.monotonic()
	vm.send(f"vm start {vid}\r")
	m = vm.wait_for(rf"{test_linux.MARKER}: \S+ up ([\d.]+)s", timeout=wait_s)
	wall = time.monotonic() - t0
	time.sleep(1)  # the shell's banner: its exits belong to the boot
	counts = vm_cases.exit_counts(vm, vid)
	top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
	return {
		"mem_mib": mem_mib,
		"uptime_at_init_s": float(m.group(1)),
		"exits_total": sum(counts.values()),
		**{f"exits_{k.replace('-', '_')}": n for k, n in top},
		"wall_s": round(wall, 1),
	}


def bench_linux_boot_svm_icount():
	kernel, initrd = test_linux.material()
	with test_linux.boot(kernel, initrd) as vm:  # -icount shift=0,sleep=off
		return {"emulator": "QEMU-TCG-icount", "backend": "AMD-V",
			**_boot_to_marker(vm, 256, 180)}


def bench_linux_boot_vmx_bochs():
	kernel, initrd = test_linux.material()
	with harness.boot_bochs(modules=[(kernel, "console=ttyS0"), (initrd, "")],
				mem=512) as vm:
		return {"emulator": "Bochs-icelake", "backend": "VT-x",
			**_boot_to_marker(vm, 128, 400)}
