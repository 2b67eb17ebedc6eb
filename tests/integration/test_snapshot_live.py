# Live snapshots (`snap save VM NAME --live`) end to end on QEMU TCG with AMD-V
# (NPT write protection tracks the writes), and once on Bochs with VT-x (EPT
# dirty flags): the memtest guest saved while it runs, killed, restored, still
# verifying; the seq guest (tests/guests/seq.asm), which writes 1, 2, 3, ...
# across all its RAM, saved while it writes, restored with a sequence without
# holes and without values from after its own last one, and shown to have run
# during the save; a seq guest writing as fast as it can, which no disk keeps
# up with, saved in bounded time with a warning; Ctrl-C leaving nothing behind
# (no snapshot, the dirty log as it was); a `snap dirty` session and an
# incremental child alongside; --live with --parent refused.
import os
import re
import sys

from harness import boot_bochs, boot_qemu, make_disk, need_file, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_snapshot import memtest_passes, restore, start_vm  # noqa: E402
from vm_cases import dirty_key  # noqa: E402

ISO = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
		   "build", "amber.iso")
LIVE_RE = re.compile(r"saved VM (\d+) as '(\S+)' live in (\d+) ms, frozen (\d+) ms, running again\n"
		     r"(?:.*\n)*?  live: +(\d+) rounds? while it ran \((\d+) pages, then (\d+) "
		     r"rewritten\);\n +last pass (\d+) pages, frozen")
# The seq guest's delay: about a thousand values a second under TCG, fewer
# than the disk writes pages, so the rounds converge.
SLOW = 100000


def save_live(vm, vid, name, timeout=240):
	out = vm.cmd_ok(f"snap save {vid} {name} --live", timeout=timeout)
	m = LIVE_RE.search(out)
	if not m:
		vm.fail(f"no live summary from 'snap save {vid} {name} --live':\n{out}")
	return out, {"total_ms": int(m.group(3)), "frozen_ms": int(m.group(4)),
		     "rounds": int(m.group(5)), "first": int(m.group(6)),
		     "rewritten": int(m.group(7)), "last": int(m.group(8))}


def seq_check(vm, vid):
	"""'v' on the seq guest's console: its sequence must be whole; returns the
	last value it had written."""
	m = dirty_key(vm, vid, "v", rf"\[vm{vid}\] seq: (ok, last (\d+)\r?\n|HOLE[^\n]*|FUTURE[^\n]*)")
	if not m.group(2):
		vm.fail(f"VM {vid}'s sequence is not whole: {m.group(1)}")
	return int(m.group(2))


def start_seq(vm, mem, delay):
	vid = start_vm(vm, "seq", mem=mem, args=f"delay={delay}")
	# Every page holds a value once it wrapped: the layout then stays.
	vm.wait_for(rf"\[vm{vid}\] seq: wrapped", timeout=240)
	return vid


@timeout(600)
def test_live_save_restores_one_instant():
	disk = make_disk(256 << 20)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-live") as vm:
		vm.wait_prompt()
		# memtest: its RAM filled, verified again and again while it is saved.
		mt = start_vm(vm, "memtest", mem="64M")
		memtest_passes(vm, mt, 0, 1, 240)
		out, s = save_live(vm, mt, "mt")
		if s["first"] < 15000:
			vm.fail(f"the first round wrote {s['first']} pages of a 64 MiB memtest:\n{out}")
		if "could not keep up" in out:
			vm.fail(f"a guest that only reads should let the save keep up:\n{out}")
		state = re.search(rf"(?m)^{mt}\s+\S+\s+(\w+)", vm.cmd_ok("vm list"))
		if not state or state.group(1) != "running":
			vm.fail(f"VM {mt} should run on after a live save")
		# Its dirty log was started by the live save and handed on: a child
		# finds its pages there.
		out = vm.cmd_ok(f"snap save {mt} mtc --parent mt", timeout=120)
		if "found in the dirty log" not in out:
			vm.fail(f"a child of a live image should find its pages in the log:\n{out}")
		vm.cmd_ok(f"vm kill {mt}")
		m2 = restore(vm, "mt")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {m2}")
		memtest_passes(vm, m2, start, 2, 240)
		vm.cmd_ok(f"vm kill {m2}")

		# seq: the sequence resumes whole, from a value written during the save.
		sq = start_seq(vm, "32M", SLOW)
		before = seq_check(vm, sq)
		vm.cmd_ok(f"snap dirty {sq} start")      # a person's session alongside
		out, s = save_live(vm, sq, "sq")
		if "could not keep up" in out:
			vm.fail(f"the slow seq guest should let the save keep up:\n{out}")
		# The session's log is still on and its own: it holds the writes.
		show = vm.cmd_ok(f"snap dirty {sq} show")
		m = re.search(r"(\d+) of \d+ pages dirty", show)
		if not m or int(m.group(1)) < 10:
			vm.fail(f"the 'snap dirty' session should hold the guest's writes:\n{show}")
		vm.cmd_ok(f"vm kill {sq}")
		v = restore(vm, "sq")
		vm.cmd_ok(f"vm resume {v}")
		after = seq_check(vm, v)
		# It ran while the save wrote: the rounds after the first, or the
		# last pass, had pages it wrote meanwhile.
		if not s["rewritten"] + s["last"] or after <= before:
			vm.fail(f"the seq guest did not run during the live save ({before} before it, "
				f"{after} after the restore):\n{out}")
		vm.cmd_ok(f"vm kill {v}")
		out = vm.cmd_ok("snap verify sq", timeout=120)
		if "snapshot 'sq' is intact" not in out:
			vm.fail(f"'snap verify sq':\n{out}")


@timeout(600)
def test_live_save_cannot_keep_up_and_ctrl_c():
	disk = make_disk(256 << 20)
	# A disk QEMU holds to 16 MiB/s of writes: the guest, which dirties
	# hundreds of pages in each of its slices, outruns it whatever the host.
	slow = [f"-drive", f"file={disk},if=none,id=slow,format=raw,"
		f"throttling.bps-write={16 << 20}", "-device", "virtio-blk-pci,drive=slow"]
	with boot_qemu(extra=slow, name="qemu-live2") as vm:
		vm.wait_prompt()
		out = vm.cmd("snap save 1 x --live --parent y")
		if not re.search(r"error: .*--live with --parent", out):
			vm.fail(f"--live with --parent should be refused:\n{out}")
		sq = start_seq(vm, "64M", 0)
		# Ctrl-C right behind the command: nothing saved, no log left on.
		vm.send(f"snap save {sq} gone --live\r\x03")
		vm.wait_for(r"snap save: cancelled; nothing was committed", 120)
		vm.wait_prompt()
		if "gone" in vm.cmd("snap list"):
			vm.fail("a cancelled live save left a snapshot")
		out = vm.cmd(f"snap dirty {sq} show")
		if "dirty tracking is off" not in out:
			vm.fail(f"a cancelled live save should stop the log it started:\n{out}")
		seq_check(vm, sq)
		# As fast as it goes: more pages per round than the disk writes.
		out, s = save_live(vm, sq, "fast", timeout=400)
		if "could not keep up" not in out:
			vm.fail(f"the fast seq guest should outrun the save and be told:\n{out}")
		if s["rounds"] > 16:
			vm.fail(f"a live save should end after at most 16 rounds:\n{out}")
		# Converged by throttling, the last pass holds at most what the last
		# harvest found (1 MiB); only the rounds' limit may leave more.
		if s["last"] > 256 and "reached their limit" not in out:
			vm.fail(f"the last pass wrote {s['last']} pages frozen:\n{out}")
		vm.cmd_ok(f"vm kill {sq}")
		v = restore(vm, "fast")
		vm.cmd_ok(f"vm resume {v}")
		seq_check(vm, v)


@timeout(900)
def test_live_save_vmx():
	"""VT-x in Bochs (EPT dirty flags): seq saved live, restored whole."""
	need_file(ISO, "make iso builds it")
	disk = make_disk(64 << 20)
	with boot_bochs(disk=disk) as vm:
		vm.wait_prompt(timeout=120)
		sq = start_seq(vm, "8M", SLOW)
		before = seq_check(vm, sq)
		out, s = save_live(vm, sq, "sq", timeout=400)
		vm.cmd_ok(f"vm kill {sq}")
		v = restore(vm, "sq")
		vm.cmd_ok(f"vm resume {v}")
		after = seq_check(vm, v)
		if not s["rewritten"] + s["last"] or after <= before:
			vm.fail(f"the seq guest did not run during the live save ({before} before it, "
				f"{after} after the restore):\n{out}")
