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
