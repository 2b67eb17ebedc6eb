# Every host CPU comes up (kernel/smp.c): QEMU TCG with -smp 4 (AMD-V, xAPIC)
# and Bochs corei7_icelake_u with `cpu: count=2` (VT-x, x2APIC) list every CPU
# online with virtualization on, and guests run on the APs; `cpu ping` gets
# an answer from each through the cross-CPU mailbox, also from one that runs
# a guest; a CPU held back by the test hook amber.cpu_hang=N is
# reported at boot and left out while Amber goes on; a panic on one CPU stops
# the others before it prints, and nothing runs after it.
import os
import re
import time

from harness import BUILD, boot_bochs, boot_qemu, need_file, timeout

ISO = os.path.join(BUILD, "amber.iso")
ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(boot CPU, runs the shell|online, idle|"
		 r"online, runs \d+ vCPUs?|not answering, left out|starting|stopped)\s+(\S+ o(?:n|ff))\s+(\d+)\s*$", re.M)


def cpu_rows(vm, out):
	rows = {int(m.group(1)): (int(m.group(2)), m.group(3), m.group(4))
		for m in ROW.finditer(out)}
	if not rows:
		vm.fail(f"`cpu` printed no CPU table:\n{out}")
	for line in out.splitlines():
		if len(line) > 80:
			vm.fail(f"`cpu` line wider than 80 columns: {line!r}")
	return rows


def check_online(vm, rows, n, virt):
	if sorted(rows) != list(range(n)):
		vm.fail(f"expected CPUs 0..{n - 1} in `cpu`, got {sorted(rows)}")
	for i, (apic, state, v) in rows.items():
		want = "boot CPU, runs the shell" if i == 0 else "online, idle"
		if state != want or v != f"{virt} on":
			vm.fail(f"CPU {i}: expected '{want}' with '{virt} on', got '{state}', '{v}'")
	if len({apic for apic, _, _ in rows.values()}) != n:
		vm.fail(f"APIC ids are not distinct: {rows}")


def check_ping(vm, rows, expect_cpus):
	out = vm.cmd_ok("cpu ping", timeout=60)
	for i in expect_cpus:
		m = re.search(rf"^cpu {i}: APIC id (\d+) answered in [\d.]+ us$", out, re.M)
		if not m or int(m.group(1)) != rows[i][0]:
			vm.fail(f"expected CPU {i} (APIC id {rows[i][0]}) to answer `cpu ping`:\n{out}")
	others = set(int(x) for x in re.findall(r"^cpu (\d+):", out, re.M))
	if others != set(expect_cpus):
		vm.fail(f"`cpu ping` asked CPUs {sorted(others)}, expected {sorted(expect_cpus)}")
	return out


@timeout(120)
def test_qemu_smp4_svm():
	with boot_qemu(smp=4, name="qemu-smp4") as vm:
		vm.wait_prompt(timeout=60)
		if "smp: 4 of 4 CPUs online" not in vm.seen:
			vm.fail("expected 'smp: 4 of 4 CPUs online' in the boot log")
		if "vmm: AMD-V on 4 of 4 online CPUs" not in vm.seen:
			vm.fail("expected AMD-V enabled on all 4 CPUs in the boot log")
		out = vm.cmd_ok("cpu", timeout=30)
		rows = cpu_rows(vm, out)
		check_online(vm, rows, 4, "AMD-V")
		if "4 of 4 CPU(s) online" not in out:
			vm.fail(f"expected '4 of 4 CPU(s) online':\n{out}")
		check_ping(vm, rows, [1, 2, 3])
		# Each answered request is counted by the CPU that served it.
		rows2 = {int(m.group(1)): int(m.group(5)) for m in ROW.finditer(vm.cmd_ok("cpu"))}
		for i in (1, 2, 3):
			if rows2[i] < 2:  # the boot's cpu_enable and the ping
				vm.fail(f"CPU {i} served {rows2[i]} requests, expected at least 2")


@timeout(120)
def test_qemu_cpu_not_answering():
	"""The test hook parks CPU 2 in its trampoline before it signals."""
	with boot_qemu(smp=3, cmdline="amber.cpu_hang=2", name="qemu-smp-hang") as vm:
		vm.wait_prompt(timeout=60)
		if not re.search(r"CPU 2 \(APIC id 2\) did not answer within \d+ ms; Amber goes on",
				 vm.seen):
			vm.fail("expected CPU 2 reported as not answering at boot")
		if "smp: 2 of 3 CPUs online" not in vm.seen:
			vm.fail("expected 'smp: 2 of 3 CPUs online' in the boot log")
		out = vm.cmd_ok("cpu", timeout=30)
		rows = cpu_rows(vm, out)
		if rows[2][1] != "not answering, left out" or rows[2][2] != "AMD-V off":
			vm.fail(f"CPU 2 should be 'not answering, left out' with AMD-V off:\n{out}")
		check_online(vm, {i: rows[i] for i in (0, 1)}, 2, "AMD-V")
		check_ping(vm, rows, [1])
		vm.cmd_ok("version")  # the shell goes on


@timeout(120)
def test_qemu_panic_stops_other_cpus():
	"""CPU 2 panics: the 3 others halt (NMI) before it prints, nothing follows."""
	with boot_qemu(smp=4, name="qemu-smp-panic") as vm:
		vm.wait_prompt(timeout=60)
		vm.send("cpu panic 2\r")
		deadline = time.monotonic() + 30
		while "*** System halted." not in vm.seen and time.monotonic() < deadline:
			time.sleep(0.2)
		seen = vm.seen
		if "*** System halted." not in seen:
			vm.fail("expected the panic report to end with '*** System halted.'")
		stop = seen.find("*** CPU 2 stopped 3 other CPU(s) before reporting")
		head = seen.find("*** Amber panic on CPU 2: test hook")
		if stop < 0 or head < 0 or stop > head:
			vm.fail("expected CPU 2 to stop the 3 others, then print its panic")
		if "did not stop" in seen:
			vm.fail("a CPU did not stop on the panic's NMI")
		time.sleep(1.0)
		vm.send("version\r")
		time.sleep(1.0)
		after = vm.seen[vm.seen.find("*** System halted.") + len("*** System halted."):]
		if after.strip():
			vm.fail(f"output after the panic (something still runs): {after!r}")


@timeout(300)
def test_bochs_smp2_vmx():
	need_file(ISO, "make iso builds it")
	with boot_bochs(cpus=2) as vm:
		vm.wait_prompt(timeout=150)
		if "vmm: VT-x on 2 of 2 online CPUs" not in vm.seen:
			vm.fail("expected VT-x enabled on both CPUs in the boot log")
		out = vm.cmd_ok("cpu", timeout=60)
		rows = cpu_rows(vm, out)
		check_online(vm, rows, 2, "VT-x")
		check_ping(vm, rows, [1])
		# A guest runs on the boot CPU with the other in VMX operation too.
		out = vm.cmd("vm create hello", timeout=60)
		m = re.search(r"created vm (\d+)", out)
		if not m:
			vm.fail(f"'vm create hello' did not create a VM:\n{out}")
		vm.cmd_ok(f"vm start {m.group(1)}", timeout=60)
		vm.wait_for(rf"\[vm{m.group(1)}\] exited with code 0", timeout=120)
		vm.send("poweroff\r")
		vm.expect_exit(timeout=60, code=1)


@timeout(120)
def test_qemu_smp2_guests_still_run():
	"""Guests run on CPU 1 (placed there by default: the boot CPU keeps the
	shell), and CPU 1 answers `cpu ping` while one runs there."""
	with boot_qemu(smp=2, name="qemu-smp2-guest") as vm:
		vm.wait_prompt(timeout=60)
		out = vm.cmd("vm create hello -- one two", timeout=30)
		m = re.search(r"created vm (\d+)", out)
		if not m:
			vm.fail(f"'vm create hello' did not create a VM:\n{out}")
		vid = int(m.group(1))
		vm.cmd_ok(f"vm start {vid}", expect=rf"vm {vid} started")
		vm.wait_for(rf"\[vm{vid}\] cmdline: hello one two", timeout=30)
		vm.wait_for(rf"\[vm{vid}\] exited with code 0", timeout=30)
		out = vm.cmd("vm create counter -- every=20000000", timeout=30)
		cid = int(re.search(r"created vm (\d+)", out).group(1))
		vm.cmd_ok(f"vm start {cid}", expect=rf"vm {cid} started")
		vm.wait_for(rf"\[vm{cid}\] count=2\r?\n", timeout=30)
		rows = cpu_rows(vm, vm.cmd_ok("cpu"))
		if rows[1][1] != "online, runs 1 vCPU":
			vm.fail(f"CPU 1 should run the counter's vCPU: {rows[1]}")
		check_ping(vm, rows, [1])
		vm.wait_for(rf"\[vm{cid}\] count=\d+\r?\n", timeout=30)  # it went on
		vm.cmd_ok(f"vm kill {cid}", expect="killed")


@timeout(120)
def test_qemu_request_timeout_then_panic():
	"""CPU 1 hangs in a request with interrupts off (hidden hook `cpu hang`):
	the request times out, CPU 1 is reported and left out, the others still
	answer; a later panic stops it too, since it still runs code."""
	with boot_qemu(smp=3, name="qemu-smp-timeout") as vm:
		vm.wait_prompt(timeout=60)
		out = vm.cmd("cpu hang 1", timeout=30)
		if not re.search(r"^error: cpu hang: CPU 1 did not answer", out, re.M):
			vm.fail(f"expected `cpu hang 1` to fail with a timeout:\n{out}")
		if not re.search(r"CPU 1 \(APIC id 1\) did not answer a request within 500 ms "
				 r"\(it is still running it\); it is left out", vm.seen):
			vm.fail("expected the timeout reported with the CPU and its APIC id")
		rows = cpu_rows(vm, vm.cmd_ok("cpu"))
		if rows[1][1] != "not answering, left out":
			vm.fail(f"CPU 1 should be listed as not answering: {rows[1]}")
		check_ping(vm, rows, [2])
		vm.send("cpu panic 2\r")
		deadline = time.monotonic() + 30
		while "*** System halted." not in vm.seen and time.monotonic() < deadline:
			time.sleep(0.2)
		if "*** CPU 2 stopped 2 other CPU(s) before reporting" not in vm.seen:
			vm.fail("expected CPU 2 to stop both others, the left-out CPU 1 included")
