# The host's cross-CPU request round trip (issue 14, the baseline for the
# vCPU-to-vCPU IPI figure to come): `cpu ping` from the boot CPU to CPU 1,
# PINGS times: smp_call posts into CPU 1's mailbox, rings it with a fixed IPI
# (vector 0xF0), CPU 1 wakes from HLT, runs the request and answers; the boot
# CPU times it with the TSC. Bochs (VT-x, `cpu: count=2`, x2APIC) advances its
# TSC with emulated instructions (ips=100000000: 1 us = 100 ticks of emulated
# time), so its figure is emulated time, repeatable; QEMU's multi-threaded TCG (-smp 2, xAPIC) runs
# each CPU on a host thread, so its figure is wall time of two emulated CPUs
# sharing a loaded 2-core machine: orientation only. Recorded in
# docs/performance.md.
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
				"integration"))

import harness  # noqa: E402

PINGS = 30


def _pings(vm, n):
	us = []
	for _ in range(n):
		out = vm.cmd_ok("cpu ping", timeout=60)
		m = re.search(r"^cpu 1: APIC id \d+ answered in ([\d.]+) us$", out, re.M)
		if not m:
			vm.fail(f"no round trip from `cpu ping`:\n{out}")
		us.append(float(m.group(1)))
	return us


def _figures(us):
	return {"pings": len(us), "median_us": round(statistics.median(us), 3),
		"min_us": round(min(us), 3), "max_us": round(max(us), 3)}


def bench_ping_bochs_vmx():
	with harness.boot_bochs(cpus=2) as vm:
		vm.wait_prompt(timeout=150)
		r = _figures(_pings(vm, PINGS))
		r["median_tsc_ticks"] = round(r["median_us"] * 100)
		return {"emulator": "Bochs-icelake_u-count=2", "backend": "VT-x", **r}


def bench_ping_qemu_svm():
	with harness.boot_qemu(smp=2, name="qemu-smp2-bench") as vm:
		vm.wait_prompt(timeout=60)
		return {"emulator": "QEMU-TCG-smp2", "backend": "AMD-V", **_figures(_pings(vm, PINGS))}


# ---- vCPUs on their own CPUs (issue 14, step "vCPUs run in parallel") ------
#
# The smp guest with 2 vCPUs counting forever ("count every=N", each step
# checked against its memory): first placed on CPUs 1 and 2 (pin=1,2), then a
# second VM like it on the boot CPU alone, both in one QEMU run (-smp 3,
# multi-threaded TCG), each alone for WINDOW seconds of the guest's clock
# (QEMU's TSC is the host's: guest time and wall time are one here). The
# figure is the ratio of the counts' progress, 2 host CPUs against 1: what
# parallel placement buys a CPU-bound guest on this 2-core machine.

WINDOW = 20.0
EVERY = 2000000


def _smp_vm(vm, args):
	out = vm.cmd_ok(f"vm create smp mem=32M {args}", timeout=60)
	m = re.search(r"created vm (\d+)", out)
	if not m:
		vm.fail(f"no VM id in:\n{out}")
	return int(m.group(1))


def _progress(vm, vid, n):
	"""Runs VM vid (started or resumed) for WINDOW s; the sum over its n vCPUs
	of the count lines printed meanwhile, then pauses it."""
	start = len(vm.seen)
	t0 = time.monotonic()
	time.sleep(WINDOW)
	vm.cmd_ok(f"vm pause {vid}", timeout=60)
	elapsed = time.monotonic() - t0
	lines = re.findall(rf"\[vm{vid}\] smp: cpu (\d) count=(\d+)", harness.strip_ansi(vm.seen[start:]))
	per = {}
	for cpu, c in lines:
		per.setdefault(int(cpu), []).append(int(c))
	if sorted(per) != list(range(n)):
		vm.fail(f"expected counts from {n} vCPUs of VM {vid}, saw {sorted(per)}")
	return sum(max(v) - min(v) + 1 for v in per.values()) / elapsed


def bench_parallel_qemu_svm():
	with harness.boot_qemu(smp=3, name="qemu-smp3-bench") as vm:
		vm.wait_prompt(timeout=60)
		a = _smp_vm(vm, f"cpus=2 pin=1,2 -- count every={EVERY}")
		vm.cmd_ok(f"vm start {a}")
		two = _progress(vm, a, 2)
		b = _smp_vm(vm, f"cpus=2 -- count every={EVERY}")
		vm.cmd_ok(f"vm start {b}")
		one = _progress(vm, b, 2)
		return {"emulator": "QEMU-TCG-smp3", "backend": "AMD-V",
			"steps_per_s_2cpus": round(two, 2), "steps_per_s_1cpu": round(one, 2),
			"ratio": round(two / one, 2)}


# The freeze of a 4-vCPU VM spread over the 3 APs of -smp 4 (pin=auto), every
# vCPU counting: `vm pause` reports how long the hold that began the command
# waited until every AP had left guest mode (a kick IPI each), FREEZES times.
FREEZES = 20


def bench_freeze_qemu_svm():
	with harness.boot_qemu(smp=4, name="qemu-smp4-bench") as vm:
		vm.wait_prompt(timeout=60)
		vid = _smp_vm(vm, "cpus=4 pin=auto -- count every=1000000")
		vm.cmd_ok(f"vm start {vid}")
		us = []
		for _ in range(FREEZES):
			time.sleep(0.5)
			out = vm.cmd_ok(f"vm pause {vid}", timeout=60)
			m = re.search(r"out of guest mode in (\d+) us", out)
			if not m:
				vm.fail(f"no freeze time in:\n{out}")
			us.append(int(m.group(1)))
			vm.cmd_ok(f"vm resume {vid}", timeout=60)
		return {"emulator": "QEMU-TCG-smp4", "backend": "AMD-V", "vcpus": 4, "freezes": len(us),
			"median_us": statistics.median(us), "min_us": min(us), "max_us": max(us)}


# The IPI round trip between two vCPUs (the smp guest's `pingpong`: vCPU 0
# sends a fixed IPI, vCPU 1 wakes from HLT and answers with one, 1000 times;
# the guest prints the mean in its TSC ticks): with the two vCPUs on two
# CPUs (pin) and taking turns on one. Bochs' TSC counts emulated instructions
# (100 ticks per emulated us): repeatable; QEMU's is wall time.


def _pingpong(vm, args, timeout=300):
	vid = _smp_vm(vm, f"cpus=2 {args} -- pingpong rounds=1000")
	start = len(vm.seen)
	vm.cmd_ok(f"vm start {vid}", timeout=60)
	m = vm.wait_for(rf"\[vm{vid}\] smp: ipi round trip (\d+) ticks", timeout=timeout)
	if not re.search(r"round trip", vm.seen[start:]):
		vm.fail("no round trip printed")
	vm.wait_for(rf"\[vm{vid}\] exited with code 0", timeout=60)
	return int(m.group(1))


def bench_ipi_round_trip_bochs_vmx():
	with harness.boot_bochs(cpus=2) as vm:
		vm.wait_prompt(timeout=150)
		two = _pingpong(vm, "pin=0,1")
		one = _pingpong(vm, "")
		return {"emulator": "Bochs-icelake_u-count=2", "backend": "VT-x",
			"two_cpus_ticks": two, "one_cpu_ticks": one}


def bench_ipi_round_trip_qemu_svm():
	with harness.boot_qemu(smp=3, name="qemu-smp3-ipi") as vm:
		vm.wait_prompt(timeout=60)
		two = _pingpong(vm, "pin=1,2")
		one = _pingpong(vm, "")
		return {"emulator": "QEMU-TCG-smp3", "backend": "AMD-V",
			"two_cpus_ticks": two, "one_cpu_ticks": one}
