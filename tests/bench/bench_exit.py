# The cost of a VM exit on the AMD-V backend (issue 4 "Count what an exit
# costs"): the `bench` demo guest times an empty loop and the same loop with a
# CPUID (always intercepted) under QEMU TCG with -icount shift=0,sleep=off,
# where one instruction is one TSC tick and the counts repeat from run to run.
# per_exit is the round trip (the guest's CPUID, #VMEXIT, Amber's exit path,
# VMRUN) with the guest's own loop taken out. Recorded in docs/performance.md.
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
				"integration"))

import vm_cases  # noqa: E402

LOOPS = 20000


def bench_vmexit_cpuid_svm_icount():
	with vm_cases.boot_qemu_tcg(icount=True, name="qemu-svm-icount") as vm:
		vm.wait_prompt(timeout=120)
		vid = vm_cases.create(vm, f"bench -- loops={LOOPS}")
		vm.send(f"vm start {vid}\r")
		m = vm.wait_for(r"bench: loops=(\d+) cpuid_ticks=(\d+) empty_ticks=(\d+) "
				r"per_exit=(\d+)\r?\n", timeout=300)
		loops, full, empty, per_exit = (int(x) for x in m.groups())
		vm.wait_for(rf"\[vm{vid}\] exited with code 0", timeout=30)
		counts = vm_cases.exit_counts(vm, vid)
		return {
			"emulator": "QEMU-TCG-icount",
			"backend": "AMD-V",
			"loops": loops,
			"ticks_per_exit": per_exit,
			"guest_loop_ticks": round(empty / loops, 2),
			"cpuid_exits": counts.get("cpuid", 0),
		}


def bench_vmexit_cpuid_svm_wall():
	"""The same guest without icount: wall-clock exits per second of QEMU TCG on
	this machine (depends on the host; for orientation only)."""
	with vm_cases.boot_qemu_tcg(name="qemu-svm-wall") as vm:
		vm.wait_prompt(timeout=60)
		vid = vm_cases.create(vm, f"bench -- loops={LOOPS * 5}")
		vm.send(f"vm start {vid}\r")
		m = vm.wait_for(r"bench: loops=(\d+) cpuid_ticks=(\d+) empty_ticks=(\d+) "
				r"per_exit=(\d+)\r?\n", timeout=300)
		loops, full, empty, per_exit = (int(x) for x in m.groups())
		mhz = re.search(r"TSC (\d+)\.(\d+) MHz", harness_text(vm))
		hz = (int(mhz.group(1)) * 1000 + int(mhz.group(2))) * 1000 if mhz else 0
		return {
			"emulator": "QEMU-TCG",
			"backend": "AMD-V",
			"loops": loops,
			"ticks_per_exit": per_exit,
			"exits_per_s": int(hz / per_exit) if hz and per_exit else "?",
		}


def bench_irq0_roundtrip_svm_icount():
	"""An IRQ0 round trip on the AMD-V backend under QEMU -icount (issue 11
	"Measure"): the eventinj guest's `cost` mode times, from STI to the
	instruction after the shadowed NOP, the interrupt-window exit (VINTR),
	the injection through the 8259A's acknowledge, a handler whose EOI
	exits, and its IRET; the mean of 100."""
	with vm_cases.boot_qemu_tcg(icount=True, name="qemu-svm-icount") as vm:
		vm.wait_prompt(timeout=120)
		vid = vm_cases.create(vm, "eventinj -- cost")
		vm.send(f"vm start {vid}\r")
		m = vm.wait_for(r"eventinj: irq round trip ticks=(\d+)\r?\n", timeout=120)
		vm.wait_for(rf"\[vm{vid}\] exited with code 0", timeout=30)
		counts = vm_cases.exit_counts(vm, vid)
		return {
			"emulator": "QEMU-TCG-icount",
			"backend": "AMD-V",
			"ticks_per_irq": int(m.group(1)),
			"intr_window_exits": counts.get("intr-window", 0),
		}


def harness_text(vm):
	return vm_cases.strip_ansi(vm.seen)
