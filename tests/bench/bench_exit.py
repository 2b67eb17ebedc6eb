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


def _run_bench_guest(vm, args, pattern, timeout=300):
	"""Runs the bench guest with args to its exit; returns (match, exit counts)."""
	vid = vm_cases.create(vm, "bench -- " + args)
	vm.send(f"vm start {vid}\r")
	m = vm.wait_for(pattern, timeout=timeout)
	vm.wait_for(rf"\[vm{vid}\] exited with code 0", timeout=30)
	return m, vm_cases.exit_counts(vm, vid)


def bench_mmio_tpr_read_svm_icount():
	"""One emulated MMIO access (issue 11 "Measure"): the bench guest's `mmio`
	word times loops reads of the LAPIC's TPR against the same loop reading
	plain memory; the difference per read is the nested page fault exit, the
	instruction's fetch and decode, the LAPIC's register read, the full look
	at interrupt delivery that follows a device access, and VMRUN."""
	with vm_cases.boot_qemu_tcg(icount=True, name="qemu-svm-icount") as vm:
		vm.wait_prompt(timeout=120)
		m, counts = _run_bench_guest(vm, f"mmio loops={LOOPS}",
					     r"bench: mmio loops=(\d+) tpr_ticks=(\d+) "
					     r"empty_ticks=(\d+) per_access=(\d+)\r?\n")
		return {
			"emulator": "QEMU-TCG-icount",
			"backend": "AMD-V",
			"loops": int(m.group(1)),
			"ticks_per_mmio_read": int(m.group(4)),
			"mem_exits": counts.get("mem", 0),
		}


def bench_apic_timer_roundtrip_svm_icount():
	"""A LAPIC timer interrupt round trip (issue 11 "Measure"): the bench
	guest's `timer` word spins reading the TSC for 20 ms with no timer and
	again with a 10 kHz periodic LAPIC timer whose handler only EOIs; the
	spinning the interrupts took away, over their number, is what one costs
	the guest: the host timer's exit at the deadline, the LAPIC brought up
	to date, the injection, the handler with its EOI (an MMIO exit) and
	IRET. Both spins carry the same slice ends, which cancel."""
	with vm_cases.boot_qemu_tcg(icount=True, name="qemu-svm-icount") as vm:
		vm.wait_prompt(timeout=120)
		m, counts = _run_bench_guest(vm, "timer",
					     r"bench: timer spin_ticks=(\d+) idle_iters=(\d+) "
					     r"timer_iters=(\d+) interrupts=(\d+)\r?\n")
		d, a, b, n = (int(x) for x in m.groups())
		return {
			"emulator": "QEMU-TCG-icount",
			"backend": "AMD-V",
			"interrupts": n,
			"ticks_per_timer_irq": round((a - b) * d / a / n) if a and n else "?",
			"spin_iter_ticks": round(d / a, 2) if a else "?",
			"host_interrupt_exits": counts.get("interrupt", 0),
			"mem_exits": counts.get("mem", 0),
		}


def bench_idle_exits_svm_icount():
	"""Exits per second of guest time for an idle guest (issue 11 "Measure"):
	the bench guest's `idle` word sleeps in HLT under a 1 kHz periodic LAPIC
	timer, once for 100 and once for 1100 interrupts in the same boot; the
	difference of the two VMs' exit counts over the difference of their
	measured guest TSC intervals is the rate with the set-up taken out."""
	with vm_cases.boot_qemu_tcg(icount=True, name="qemu-svm-icount") as vm:
		vm.wait_prompt(timeout=120)
		runs = []
		for ms in (100, 1100):
			m, counts = _run_bench_guest(vm, f"idle ms={ms}",
						     r"bench: idle ms=(\d+) ticks=(\d+) "
						     r"tsc_khz=(\d+)\r?\n")
			runs.append((int(m.group(2)), int(m.group(3)), counts))
		(t0, khz, c0), (t1, _, c1) = runs
		seconds = (t1 - t0) / (khz * 1000.0)
		diff = {k: c1.get(k, 0) - c0.get(k, 0) for k in set(c0) | set(c1)}
		total = sum(diff.values())
		kinds = " ".join(f"{k}:{v}" for k, v in sorted(diff.items()) if v)
		return {
			"emulator": "QEMU-TCG-icount",
			"backend": "AMD-V",
			"guest_seconds": round(seconds, 4),
			"exits_per_s": round(total / seconds) if seconds > 0 else "?",
			"exits_per_tick": round(total / 1000.0, 2),
			"by_kind": kinds.replace(" ", ","),
		}
