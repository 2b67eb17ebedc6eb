# Several vCPUs frozen and saved together (issue 14): the smp guest counting on
# 4 vCPUs, each in its own page, is paused and resumed, saved, killed and
# restored; every vCPU's count must go on exactly from the value it had at the
# freeze, and the guest checks every step of its count against its memory. A
# guest whose APs still wait for their STARTUP IPI comes back with them
# waiting, and starts them after the restore. Across vendors: saved under VT-x
# in Bochs, restored under AMD-V in QEMU.
import os
import re
import sys

from harness import boot_bochs, boot_qemu, make_disk, need_file, strip_ansi, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_snapshot import ISO, restore, seen_after  # noqa: E402

COUNT_RE = r"\[vm{vid}\] smp: cpu (\d) count=(\d+)\r?\n"


def start_smp(vm, n, mem, args):
	"""Creates and starts the smp guest with n vCPUs; returns the VM id."""
	m = re.search(r"created vm (\d+)", vm.cmd_ok(f"vm create smp mem={mem} cpus={n} -- {args}"))
	if not m:
		vm.fail("no VM id in the output of 'vm create smp'")
	vm.cmd_ok(f"vm start {m.group(1)}")
	return int(m.group(1))


def last_counts(vm, vid, start=0):
	"""{vCPU: the last count it printed} in the output after offset start."""
	last = {}
	for cpu, n in re.findall(COUNT_RE.format(vid=vid), strip_ansi(vm.seen[start:])):
		last[int(cpu)] = int(n)
	return last


def wait_counts(vm, vid, n, at_least, start=0, time_limit=120):
	"""Waits until each of the n vCPUs printed a count >= at_least after start."""
	for cpu in range(n):
		seen_after(vm, start, rf"\[vm{vid}\] smp: cpu {cpu} count=([{at_least}-9]|\d\d+)\b",
			   time_limit, f"vCPU {cpu} of VM {vid} counting to {at_least}")


def resume_and_check(vm, vid, frozen):
	"""Resumes VM vid: each vCPU's next count line must be its frozen count + 1,
	and none may have printed while it was frozen."""
	start = len(vm.seen)
	vm.cmd_ok(f"vm resume {vid}")
	for cpu, n in sorted(frozen.items()):
		m = seen_after(vm, start, rf"\[vm{vid}\] smp: cpu {cpu} count=(\d+)\b", 60,
			       f"vCPU {cpu} counting on")
		if int(m.group(1)) != n + 1:
			vm.fail(f"vCPU {cpu} went on at count={m.group(1)}; it was frozen after "
				f"count={n}, so the next must be count={n + 1}")


def freeze(vm, vid, n):
	"""Pauses VM vid; returns every vCPU's last count, checking that all n
	printed one and that nothing is printed while it is paused."""
	vm.cmd_ok(f"vm pause {vid}")
	frozen = last_counts(vm, vid)
	if sorted(frozen) != list(range(n)):
		vm.fail(f"expected counts of vCPUs 0-{n - 1} before the pause, saw {frozen}")
	return frozen


def check_vcpus(vm, vid, n, waiting=()):
	out = vm.cmd_ok(f"vm info {vid}")
	if not re.search(rf"{n} vCPUs", out):
		vm.fail(f"VM {vid} should have {n} vCPUs:\n{out}")
	got = [int(i) for i in re.findall(r"(?m)^vCPU (\d+): .*wait-for-SIPI", out)]
	if got != list(waiting):
		vm.fail(f"vCPUs {list(waiting)} should wait for SIPI, saw {got}:\n{out}")


@timeout(240)
def test_smp_pause_save_restore_4_vcpus():
	"""4 vCPUs counting: pause/resume, then save, kill, restore, resume; each
	vCPU's count goes on from its frozen value, twice."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = start_smp(vm, 4, "32M", "count every=1000000")
		wait_counts(vm, vid, 4, 2)
		frozen = freeze(vm, vid, 4)
		resume_and_check(vm, vid, frozen)
		wait_counts(vm, vid, 4, 4)
		frozen = freeze(vm, vid, 4)
		vm.cmd_ok(f"snap save {vid} smp4", timeout=120)
		if not re.search(r"vcpu_count 4\b", vm.cmd_ok("snap info smp4")):
			vm.fail(f"the image should say 4 vCPUs:\n{vm.cmd_ok('snap info smp4')}")
		vm.cmd_ok("snap verify smp4", timeout=60, expect=r"intact")
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "smp4")
		check_vcpus(vm, again, 4)
		resume_and_check(vm, again, frozen)
		if "FAILED" in vm.seen:
			vm.fail("the guest found a count in memory different from its register")


@timeout(180)
def test_smp_restore_aps_waiting():
	"""A guest whose APs wait for their STARTUP IPI is saved and restored: they
	come back waiting, and the guest starts them after a key and passes."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = start_smp(vm, 3, "32M", "wait")
		seen_after(vm, 0, rf"\[vm{vid}\] smp: APs wait for SIPI", 60, "the BSP waiting")
		vm.cmd_ok(f"vm pause {vid}")
		check_vcpus(vm, vid, 3, waiting=(1, 2))
		vm.cmd_ok(f"snap save {vid} waiting", timeout=60)
		out = vm.cmd_ok("snap info waiting")
		if len(re.findall(r"(?m)^vCPU [12]: real mode, waiting for SIPI", out)) != 2:
			vm.fail(f"the image should hold vCPUs 1 and 2 waiting for SIPI:\n{out}")
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "waiting")
		check_vcpus(vm, again, 3, waiting=(1, 2))
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		vm.send(f"vm console {again}\r")
		vm.wait_for(r"Ctrl-\] detaches", timeout=10)
		vm.send("g")
		m = seen_after(vm, start, rf"\[vm{again}\] (exited with code \d+)", 120,
			       "the restored smp guest to finish")
		vm.send("\x1d")
		vm.wait_prompt(timeout=10)
		if m.group(1) != "exited with code 0" or "all 3 vCPUs passed" not in vm.seen[start:]:
			vm.fail(f"the restored guest did not pass: {m.group(1)}\n"
				f"{strip_ansi(vm.seen[start:])}")


@timeout(420)
def test_smp_cross_vendor_vtx_to_amdv():
	"""4 vCPUs counting under VT-x (Bochs), saved paused; restored under AMD-V
	(QEMU): every vCPU's count goes on from its frozen value."""
	need_file(ISO, "make iso builds it")
	disk = make_disk(64 << 20)
	with boot_bochs(iso=ISO, disk=disk) as vm:
		vm.wait_prompt(timeout=120)
		vid = start_smp(vm, 4, "8M", "count every=200000")
		wait_counts(vm, vid, 4, 2, time_limit=200)
		frozen = freeze(vm, vid, 4)
		vm.cmd_ok(f"snap save {vid} smp-vtx", timeout=120)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		again = restore(vm, "smp-vtx")
		check_vcpus(vm, again, 4)
		resume_and_check(vm, again, frozen)
