# vCPUs on their own host CPUs (issue 14, vmm/vcpu.c "placement"): QEMU TCG
# with -smp (multi-threaded, AMD-V). Two counters, placed on two APs by
# default, count at the same time; `vm pin` moves one; a guest spinning with
# interrupts off on one AP is paused and killed (the kick IPI ends its guest
# mode whatever its IF) while the other counts on; the smp guest's 4 vCPUs
# spread over the APs are paused and resumed while every one is busy, and
# each count goes on exactly from its frozen value, also after a restore
# spreads them again; `pin=` values that name no usable CPU are refused.
# Bochs with `cpu: count=2` (VT-x) runs one vCPU of the smp guest on each CPU.
import os
import re
import sys
import time

from harness import BUILD, boot_bochs, boot_qemu, make_disk, need_file, strip_ansi, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_snapshot import restore, seen_after  # noqa: E402
from test_snapshot_smp import freeze, resume_and_check, wait_counts  # noqa: E402

ISO = os.path.join(BUILD, "amber.iso")
EVERY = 10000000  # a counter line about every 0.1-0.5 s under TCG


def create(vm, args):
	out = vm.cmd_ok(f"vm create {args}")
	m = re.search(r"created vm (\d+)", out)
	if not m:
		vm.fail(f"no VM id in the output of 'vm create {args}':\n{out}")
	return int(m.group(1)), out


def counts(vm, vid, start=0):
	return [int(n) for n in re.findall(rf"\[vm{vid}\] count=(\d+)", strip_ansi(vm.seen[start:]))]


def wait_count(vm, vid, at_least, start=0, limit=60):
	deadline = time.monotonic() + limit
	while time.monotonic() < deadline:
		c = counts(vm, vid, start)
		if c and c[-1] >= at_least:
			return c[-1]
		if "*** Amber panic" in vm.seen:
			vm.fail("Amber panicked")
		time.sleep(0.2)
	vm.fail(f"VM {vid} did not count to {at_least} within {limit} s (saw {counts(vm, vid)[-3:]})")


def check_placement(vm, vid, want):
	out = vm.cmd_ok(f"vm info {vid}")
	got = [int(c) for c in re.findall(r"(?m)^vCPU \d+: .*, on CPU (\d+)", out)]
	if got != want:
		vm.fail(f"VM {vid}'s vCPUs should run on CPUs {want}, 'vm info' says {got}:\n{out}")


@timeout(180)
def test_two_vms_on_two_cpus():
	with boot_qemu(smp=3, name="qemu-smp3-run") as vm:
		vm.wait_prompt(timeout=60)
		# Without pin= each VM goes to the least loaded AP: 1, then 2.
		a, out = create(vm, f"counter -- every={EVERY}")
		if "its vCPUs run on CPU 1" not in out:
			vm.fail(f"'vm create' should say its vCPU runs on CPU 1:\n{out}")
		b, out = create(vm, f"counter -- every={EVERY}")
		if "its vCPUs run on CPU 2" not in out:
			vm.fail(f"a second 'vm create' should place its vCPU on CPU 2:\n{out}")
		check_placement(vm, a, [1])
		check_placement(vm, b, [2])
		if not re.search(rf"(?m)^{a}\s+counter\s+created\s.*\s1\s*$", vm.cmd_ok("vm list")):
			vm.fail(f"'vm list' should show VM {a} on CPU 1:\n{vm.cmd_ok('vm list')}")
		vm.cmd_ok(f"vm start {a}")
		vm.cmd_ok(f"vm start {b}")
		# Both advance over the same stretch of time: each counts 5 more
		# while the other does.
		start = len(vm.seen)
		wait_count(vm, a, 3)
		wait_count(vm, b, 3)
		mid = len(vm.seen)
		ca, cb = counts(vm, a)[-1], counts(vm, b)[-1]
		wait_count(vm, a, ca + 5, mid)
		wait_count(vm, b, cb + 5, mid)
		if not counts(vm, a, start) or not counts(vm, b, start):
			vm.fail("both counters should have printed")
		# The CPU table says which CPU runs vCPUs.
		out = vm.cmd_ok("cpu")
		for c in (1, 2):
			if not re.search(rf"(?m)^\s*{c}\s+\d+\s+online, runs 1 vCPU\b", out):
				vm.fail(f"`cpu` should show CPU {c} running 1 vCPU:\n{out}")
		# A guest spinning with interrupts off on CPU 2 beside the counter of
		# CPU 1: paused and killed at once, the counter unaffected.
		vm.cmd_ok(f"vm kill {b}")
		h, _ = create(vm, "hostile pin=2 -- spin-cli")
		vm.cmd_ok(f"vm start {h}")
		time.sleep(1)
		vm.cmd_ok(f"vm pause {h}", expect="paused", timeout=10)
		info = vm.cmd_ok(f"vm info {h}")
		if "paused" not in info or "RIP=" not in info:
			vm.fail(f"the spinning guest should be paused with its registers shown:\n{info}")
		vm.cmd_ok(f"vm kill {h}", timeout=10)
		c = counts(vm, a)[-1]
		wait_count(vm, a, c + 3, len(vm.seen))
		# A triple-faulting guest on CPU 2 is stopped; the counter goes on.
		t, _ = create(vm, "hostile pin=2 -- triple")
		start = len(vm.seen)
		vm.cmd_ok(f"vm start {t}")
		seen_after(vm, start, rf"\[vm{t}\] stopped: triple fault", 30, "the triple fault")
		c = counts(vm, a)[-1]
		wait_count(vm, a, c + 3, len(vm.seen))
		# `vm pin` moves the running counter to CPU 2, where it counts on;
		# a CPU that does not exist is refused and moves nothing.
		vm.cmd_ok(f"vm kill {t}")
		vm.cmd_ok(f"vm pin {a} 2", expect=rf"vm {a}: its vCPUs run on CPU 2")
		check_placement(vm, a, [2])
		c = counts(vm, a)[-1]
		wait_count(vm, a, c + 3, len(vm.seen))
		out = vm.cmd_ok("cpu")
		if not re.search(r"(?m)^\s*2\s+\d+\s+online, runs 1 vCPU\b", out) or \
				re.search(r"(?m)^\s*1\s+\d+\s+online, runs", out):
			vm.fail(f"`cpu` should show the counter on CPU 2 and none on CPU 1:\n{out}")
		out = vm.cmd(f"vm pin {a} 7")
		if "CPU 7 does not exist" not in out:
			vm.fail(f"'vm pin {a} 7' should be refused:\n{out}")
		check_placement(vm, a, [2])
		if "did not leave guest mode" in vm.seen or "not answering" in vm.cmd_ok("cpu"):
			vm.fail("every CPU should have answered the holds")


@timeout(60)
def test_pin_refused():
	with boot_qemu(smp=2, name="qemu-smp2-pin") as vm:
		vm.wait_prompt(timeout=60)
		for args, want in (("counter pin=2", r"error: vm create: pin=2: CPU 2 does not exist"),
				   ("counter pin=x", r"error: vm create: pin=x: write CPU numbers"),
				   ("counter cpus=2 pin=1,1,1", r"names more CPUs than the 2 vCPUs"),
				   ("counter cpus=3 pin=0,1", r"names 2 CPUs for 3 vCPUs")):
			out = vm.cmd(f"vm create {args}")
			if not re.search(want, out):
				vm.fail(f"'vm create {args}' should be refused with /{want}/:\n{out}")
		if "no VMs" not in vm.cmd_ok("vm list"):
			vm.fail("a refused vm create should leave no VM behind")


@timeout(300)
def test_smp_guest_spread_pause_save_restore():
	"""4 vCPUs over the 3 APs of -smp 4: every vCPU busy counting is frozen at
	one instant by pause and by save; each count goes on from its frozen
	value after resume and after restore, which spreads it over the APs
	again."""
	disk = make_disk(64 << 20)
	with boot_qemu(smp=4, disks=[("virtio", disk)], name="qemu-smp4-run") as vm:
		vm.wait_prompt(timeout=60)
		vid, _ = create(vm, "smp mem=32M cpus=4 pin=auto -- count every=1000000")
		check_placement(vm, vid, [1, 2, 3, 1])
		vm.cmd_ok(f"vm start {vid}")
		wait_counts(vm, vid, 4, 2)
		frozen = freeze(vm, vid, 4)
		resume_and_check(vm, vid, frozen)
		wait_counts(vm, vid, 4, 4)
		frozen = freeze(vm, vid, 4)
		vm.cmd_ok(f"snap save {vid} spread", timeout=120)
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "spread")
		check_placement(vm, again, [1, 2, 3, 1])
		resume_and_check(vm, again, frozen)
		if "FAILED" in vm.seen:
			vm.fail("the guest found a count in memory different from its register")


@timeout(300)
def test_bochs_vmx_smp_guest_split():
	"""VT-x (Bochs, x2APIC, cpu count=2): the smp guest with vCPU 0 on the boot
	CPU and vCPU 1 on CPU 1, its VMCS loaded on the AP with that CPU's host
	state; paused and resumed while both count, each goes on from its value."""
	need_file(ISO, "make iso builds it")
	with boot_bochs(cpus=2) as vm:
		vm.wait_prompt(timeout=150)
		vid, _ = create(vm, "smp mem=32M cpus=2 pin=0,1 -- count every=200000")
		check_placement(vm, vid, [0, 1])
		vm.cmd_ok(f"vm start {vid}", timeout=60)
		wait_counts(vm, vid, 2, 2, time_limit=150)
		frozen = freeze(vm, vid, 2)
		resume_and_check(vm, vid, frozen)
		if "FAILED" in vm.seen or "VMPTRLD" in vm.seen or "VMLAUNCH" in vm.seen:
			vm.fail("the guest or the VT-x backend reported a failure")
