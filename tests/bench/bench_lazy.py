# Lazy restore against a full restore of the same image (issue 16 "Figures"):
# QEMU TCG, -cpu max (AMD-V), virtio-blk, guest time counted in instructions
# (-icount shift=0,sleep=off: one instruction a nanosecond, so Amber's
# microseconds are thousands of instructions). A memtest guest of 64 MiB and
# one of 256 MiB fill their RAM, are saved and killed; then a full restore
# (`snap restore`, then `vm resume`) and a lazy one (`snap restore --lazy`, the
# VM running when it returns) of the same image. The figures: instructions
# until the guest can run its first instruction, and the time until the lazy
# VM is resident (its prefetch sharing the CPU with the running guest), each
# against the full restore. Reported, never asserted; docs/performance.md.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness  # noqa: E402
from harness import make_disk  # noqa: E402

GUEST_MIB = (64, 256)
FULL_RE = re.compile(r"restored '\S+' as VM (\d+) in (\d+) ms, ")
LAZY_RE = re.compile(r"restored '\S+' lazily as VM (\d+) in (\d+) us, ")
RESIDENT_RE = r"\[vm{}\] memory resident: \d+ pages from .* in (\d+) ms"


def boot(disk):
	args, _ = harness._qemu_args((), [("virtio", disk)], "1G", "", (), None, False)
	args += ["--accel", "tcg", "--cpu", "max"]
	return harness.Emulator("qemu-lazy-icount", lambda port, _: args + [
		"--serial-tcp", str(port), "--", "-icount", "shift=0,sleep=off"])


def lazy_round(vm, mib, result):
	out = vm.cmd_ok(f"vm create memtest mem={mib}M", timeout=60)
	vid = int(re.search(r"created vm (\d+)", out).group(1))
	vm.cmd_ok(f"vm start {vid}")
	vm.wait_for(rf"\[vm{vid}\] memtest: pass \d+ ok", timeout=600,
		    what=f"the first verified pass of the {mib} MiB memtest")
	vm.cmd_ok(f"snap save {vid} mt{mib}", timeout=600)
	vm.cmd_ok(f"vm kill {vid}")

	out = vm.cmd_ok(f"snap restore mt{mib}", timeout=600)
	m = FULL_RE.search(out)
	if not m:
		vm.fail(f"no summary line from 'snap restore mt{mib}':\n{out}")
	full_us = int(m.group(2)) * 1000
	vm.cmd_ok(f"vm resume {m.group(1)}")
	vm.wait_for(rf"\[vm{m.group(1)}\] memtest: pass \d+ ok", timeout=600,
		    what="a verified pass of the fully restored memtest")
	vm.cmd_ok(f"vm kill {m.group(1)}")

	start = len(vm.seen)
	out = vm.cmd_ok(f"snap restore mt{mib} --lazy", timeout=600)
	m = LAZY_RE.search(out)
	if not m:
		vm.fail(f"no summary line from 'snap restore mt{mib} --lazy':\n{out}")
	vid, lazy_us = m.group(1), int(m.group(2))
	vm.wait_for(RESIDENT_RE.format(vid), timeout=600, what="the lazy VM resident")
	resident_ms = int(re.search(RESIDENT_RE.format(vid), vm.seen[start:]).group(1))
	vm.wait_for(rf"\[vm{vid}\] memtest: pass \d+ ok", timeout=600,
		    what="a verified pass of the lazily restored memtest")
	vm.cmd_ok(f"vm kill {vid}")
	p = f"mt{mib}_"
	result[p + "full_restore_instructions"] = full_us * 1000
	result[p + "lazy_restore_instructions"] = lazy_us * 1000
	result[p + "lazy_vs_full"] = round(lazy_us / full_us, 4)
	result[p + "resident_instructions"] = resident_ms * 1000 * 1000
	result[p + "resident_vs_full"] = round(resident_ms * 1000 / full_us, 2)


def bench_lazy_restore_icount():
	disk = make_disk(768 << 20, "lazy.img", fill=0)
	result = {"emulator": "QEMU-TCG-icount", "backend": "AMD-V", "disk_kind": "virtio"}
	with boot(disk) as vm:
		vm.wait_prompt(timeout=60)
		for mib in GUEST_MIB:
			lazy_round(vm, mib, result)
	return result
