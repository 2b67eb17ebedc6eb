# The cost of dirty tracking on a guest's own speed (issue 15 "Figures"): the
# dirty guest's `b` key times two passes that each write one dword in every
# one of 2048 pages (8 MiB), under QEMU TCG with -icount shift=0,sleep=off,
# where a TSC tick is one instruction, Amber's included (it runs nested in the
# same emulated CPU). Measured without tracking, with tracking just started
# (the first pass takes a nested page fault per page on AMD-V), after a
# harvest re-armed it, and after it stopped (2 MiB mappings merged back).
# The same on VT-x in Bochs icelake. Recorded in docs/performance.md.
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
				"integration"))

import harness  # noqa: E402
import vm_cases  # noqa: E402

SPAN = 2048


def _pass(vm, vid):
	m = vm_cases.dirty_key(vm, vid, "b", rf"\[vm{vid}\] dirty: bench pages=(\d+) "
			       r"first=(\d+) second=(\d+)\r?\n")
	return int(m.group(2)), int(m.group(3))


def _measure(vm, emulator, backend, sizes):
	vm.wait_prompt(timeout=120)
	if True:
		vid = vm_cases.run(vm, f"dirty mem=32M -- pages=768 span={SPAN}")
		vm.wait_for(rf"\[vm{vid}\] dirty: ready", timeout=30)
		off = _pass(vm, vid)
		vm_cases.out_ok(vm, f"snap dirty {vid} start", expect="tracking on")
		on = _pass(vm, vid)
		out = vm_cases.out_ok(vm, f"snap dirty {vid} show", expect="pages dirty")
		dirty = int(re.search(r"(\d+) of \d+ pages dirty", out).group(1))
		vm_cases.out_ok(vm, f"snap dirty {vid} clear", expect="cleared")
		rearmed = _pass(vm, vid)
		vm_cases.out_ok(vm, f"snap dirty {vid} stop", expect="tracking off")
		stopped = _pass(vm, vid)
		counts = vm_cases.exit_counts(vm, vid)
		# The harvest's own cost against RAM size: a sync of a clean log
		# scans every leaf (and flushes) all the same.
		sync_us = {}
		for mib in sizes:
			big = vm_cases.run(vm, f"dirty mem={mib}M -- pages=768")
			vm.wait_for(rf"\[vm{big}\] dirty: ready", timeout=60)
			vm_cases.out_ok(vm, f"snap dirty {big} start", expect="tracking on")
			out = vm_cases.out_ok(vm, f"snap dirty {big} show", expect="pages dirty")
			sync_us[mib] = int(re.search(r"synced in (\d+) us", out).group(1))
			vm_cases.out_ok(vm, f"vm kill {big}", expect="killed")
		return {
			"emulator": emulator,
			"backend": backend,
			"pages": SPAN,
			"untracked_ticks_per_page": round(off[1] / SPAN, 1),
			"first_write_ticks_per_page": round(on[0] / SPAN, 1),
			"tracked_rewrite_ticks_per_page": round(on[1] / SPAN, 1),
			"rearmed_first_write_ticks_per_page": round(rearmed[0] / SPAN, 1),
			"after_stop_ticks_per_page": round(stopped[1] / SPAN, 1),
			"fault_cost_ticks": round((on[0] - off[0]) / SPAN),
			"pages_logged": dirty,
			"exits_other": counts.get("other", 0),
			**{f"sync_us_{mib}M": us for mib, us in sync_us.items()},
		}


def bench_dirty_tracking_svm_icount():
	with vm_cases.boot_qemu_tcg(icount=True, name="qemu-svm-icount") as vm:
		return _measure(vm, "QEMU-TCG-icount", "AMD-V", (32, 256))


def bench_dirty_tracking_vmx_bochs():
	"""The same in Bochs icelake (VT-x, EPT dirty flags), whose TSC counts
	guest instructions: no fault per page, the cost is in the harvest."""
	with harness.boot_bochs(cpu="corei7_icelake_u") as vm:
		return _measure(vm, "Bochs-icelake", "VT-x", (32, 128))  # 256 MiB host
