# Fast reset against a full restore (issue 16 "Figures"): the fuzz guest's
# `bench` mode in a 256 MiB VM takes its base by hypercall, then dirties 10
# pages and resets, RESETS times. Under QEMU TCG with -icount
# shift=0,sleep=off a TSC tick is an instruction (Amber runs nested in the same
# emulated CPU), so `snap reset VM --info` gives the instructions of one reset
# (fastreset_reset: harvest, copies, vCPU and device state) and of one whole
# iteration (report to report: the guest's work, the exits, the reset). The
# same guest is then saved to a virtio disk and restored with `snap restore`,
# whose milliseconds are millions of instructions under icount: the full
# restore a fast reset replaces. The same loop runs first in a 64 MiB VM: a
# reset costs what its dirty pages cost, not what its RAM does, so the two
# figures per reset should be close. Wall-clock resets per second are for
# orientation only (emulated, nested, icount). Recorded in docs/performance.md.
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
				"integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_snapshot  # noqa: E402
import harness  # noqa: E402

RESETS = 300
MIB = 256
SMALL_MIB = 64  # the same loop in a quarter of the RAM: a reset should cost the same
RESET_RE = re.compile(r"(\d+) resets, (\d+) pages copied back\s+\((\d+) by the last, in "
		      r"(\d+) us\); TSC ticks: (\d+) by the last,\s+(\d+) per reset")
EXEC_RE = re.compile(r"TSC ticks per execution \(report to report\): (\d+)")


def fuzz_bench(vm, mib):
	"""Runs the fuzz guest's bench loop in a VM of mib MiB; returns its id,
	the resets, pages copied by the last, instructions per reset and per
	iteration, and the wall-clock seconds of the loop."""
	vid = bench_snapshot.start_vm(vm, f"fuzz hypercalls mem={mib}M -- bench resets={RESETS}")
	vm.wait_for(rf"\[vm{vid}\] fuzz: bench start", timeout=120)
	t0 = time.monotonic()
	vm.wait_for(rf"\[vm{vid}\] fuzz: bench done after {RESETS} resets", timeout=600)
	wall = time.monotonic() - t0
	vm.wait_for(rf"\[vm{vid}\] exited with code 0", timeout=30)
	out = vm.cmd_ok(f"snap reset {vid} --info")
	m = RESET_RE.search(out)
	e = EXEC_RE.search(out)
	if not m or not e:
		vm.fail(f"no counts from 'snap reset {vid} --info':\n{out}")
	resets, _, pages_last, _, _, per_reset = (int(x) for x in m.groups())
	return vid, resets, pages_last, per_reset, int(e.group(1)), wall


def bench_fast_reset_svm_icount():
	disk = harness.make_disk(size=512 << 20, name="reset.img")
	with bench_snapshot.boot("virtio", disk, icount=True) as vm:
		vm.wait_prompt(timeout=120)
		vid, _, _, small_reset, _, _ = fuzz_bench(vm, SMALL_MIB)
		vm.cmd_ok(f"vm kill {vid}", expect="killed")
		vid, resets, pages_last, per_reset, per_exec, wall = fuzz_bench(vm, MIB)
		save = bench_snapshot.save(vm, vid, "reset256")
		vm.cmd_ok(f"vm kill {vid}", expect="killed")
		restore = bench_snapshot.restore(vm, "reset256")
		full = restore["ms"] * 1_000_000  # instructions under icount: 1 ns each
		return {
			"emulator": "QEMU-TCG-icount",
			"backend": "AMD-V",
			"guest_MiB": MIB,
			"resets": resets,
			"pages_per_reset": pages_last,
			"insns_per_reset": per_reset,
			f"insns_per_reset_{SMALL_MIB}MiB": small_reset,
			f"reset_{MIB}_vs_{SMALL_MIB}MiB": round(per_reset / small_reset, 2)
			if small_reset else 0,
			"insns_per_iteration": per_exec,
			"full_restore_ms": restore["ms"],
			"full_restore_insns": full,
			"image_bytes": save["bytes"],
			"restore_vs_reset": round(full / per_reset) if per_reset else 0,
			"restore_vs_iteration": round(full / per_exec) if per_exec else 0,
			"resets_per_s_wall": round(RESETS / wall) if wall else 0,
		}


def bench_fast_reset_vmx_bochs():
	"""The same loop on VT-x in Bochs icelake (EPT dirty flags and PML), whose
	TSC counts instructions: a reset at 64 and at 256 MiB. No disk, so no
	full restore to compare with; the point is that the two are close."""
	with harness.boot_bochs(cpu="corei7_icelake_u", mem=768) as vm:
		vm.wait_prompt(timeout=120)
		if "dirty log: EPT dirty flags and PML" not in vm.seen:
			vm.fail("this Bochs offers no PML: the harvest would scan all of RAM")
		vid, _, _, small_reset, _, _ = fuzz_bench(vm, SMALL_MIB)
		vm.cmd_ok(f"vm kill {vid}", expect="killed")
		vid, resets, pages_last, per_reset, per_exec, _ = fuzz_bench(vm, MIB)
		vm.cmd_ok(f"vm kill {vid}", expect="killed")
		return {
			"emulator": "Bochs-icelake",
			"backend": "VT-x",
			"guest_MiB": MIB,
			"resets": resets,
			"pages_per_reset": pages_last,
			"insns_per_reset": per_reset,
			f"insns_per_reset_{SMALL_MIB}MiB": small_reset,
			f"reset_{MIB}_vs_{SMALL_MIB}MiB": round(per_reset / small_reset, 2)
			if small_reset else 0,
			"insns_per_iteration": per_exec,
		}
