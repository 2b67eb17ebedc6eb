# Live snapshots (issue 15 "Figures"): the longest freeze of a 1 GiB guest
# against that of a 64 MiB guest, both saved with `snap save --live` in one
# QEMU TCG boot (AMD-V, virtio-blk), and the same two saved stop-the-world for
# the contrast. The guests are memtest (RAM filled with a pattern, re-verified
# while it is saved: nearly every page is stored, as in bench_snapshot). A
# live save freezes the VM once, for its last pass; the figures are what
# Amber prints: frozen and total ms, rounds and pages rewritten; and a live
# child (--live --parent) against a plain one. Reported,
# never asserted (docs/performance.md).
import os
import re
import sys
import time

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

from harness import boot_qemu, make_disk  # noqa: E402

GUEST_MIB = (64, 1024)
AMBER_MEM = "2G"  # a 1 GiB guest and Amber's own memory; no restore here
LIVE_RE = re.compile(r"saved VM \d+ as '\S+' live in (\d+) ms, frozen (\d+) ms.*\n(?:.*\n)*?"
		     r"  written: .*\((\d+) bytes\) in (\d+) commands.*\n"
		     r"  frozen: +\d+ ms \(last pass (\d+) ms, metadata (\d+) ms, commit "
		     r"(\d+) ms\)\n  live: +(\d+) rounds? while it ran \((\d+) pages, then (\d+) "
		     r"rewritten\);\n +last pass (\d+) pages, frozen; the guest's longest wait (\d+) ms")
PLAIN_RE = re.compile(r"saved VM \d+ as '\S+' in (\d+) ms")


def _memtest(vm, mib):
	out = vm.cmd_ok(f"vm create memtest mem={mib}M", timeout=120)
	vid = int(re.search(r"created vm (\d+)", out).group(1))
	vm.cmd_ok(f"vm start {vid}")
	vm.wait_for(rf"\[vm{vid}\] memtest: pass \d+ ok", timeout=600,
		    what=f"the first verified pass of the {mib} MiB memtest")
	return vid


def bench_live_save_virtio():
	# The 1 GiB image, then the plain one in the space it leaves (deleted).
	disk = make_disk((1024 + 256) << 20, "live.img")
	result = {"emulator": "QEMU TCG -cpu max (AMD-V), virtio-blk", "guest": "memtest"}
	with boot_qemu(disks=[("virtio", disk)], mem=AMBER_MEM, name="qemu-bench-live") as vm:
		vm.wait_prompt(timeout=60)
		for mib in GUEST_MIB:
			vid = _memtest(vm, mib)
			out = vm.cmd_ok(f"snap save {vid} live{mib} --live", timeout=600)
			m = LIVE_RE.search(out)
			if not m:
				vm.fail(f"no live summary from 'snap save --live':\n{out}")
			(total, frozen, nbytes, cmds, last_ms, meta_ms, commit_ms, rounds, first,
			 rewritten, last_pages, wait) = map(int, m.groups())
			p = f"live{mib}_"
			result[p + "frozen_ms"] = frozen
			result[p + "longest_wait_ms"] = wait
			result[p + "total_ms"] = total
			result[p + "last_pass_ms"] = last_ms
			result[p + "metadata_ms"] = meta_ms
			result[p + "commit_ms"] = commit_ms
			result[p + "rounds"] = rounds
			result[p + "pages_first_round"] = first
			result[p + "pages_rewritten"] = rewritten
			result[p + "pages_last_pass"] = last_pages
			result[p + "bytes_written"] = nbytes
			result[p + "kept_up"] = "could not keep up" not in out
			vm.cmd_ok(f"snap delete live{mib}", timeout=60)
			out = vm.cmd_ok(f"snap save {vid} plain{mib}", timeout=600)
			m = PLAIN_RE.search(out)
			if not m:
				vm.fail(f"no summary from 'snap save':\n{out}")
			result[f"plain{mib}_frozen_ms"] = int(m.group(1))
			vm.cmd_ok(f"snap delete plain{mib}", timeout=60)
			vm.cmd_ok(f"vm kill {vid}")
	lo, hi = GUEST_MIB
	if result[f"live{lo}_frozen_ms"]:
		result["live_freeze_1g_vs_64m"] = round(
			result[f"live{hi}_frozen_ms"] / result[f"live{lo}_frozen_ms"], 2)
	if result[f"live{lo}_longest_wait_ms"]:
		result["live_wait_1g_vs_64m"] = round(
			result[f"live{hi}_longest_wait_ms"] / result[f"live{lo}_longest_wait_ms"], 2)
	if result[f"plain{lo}_frozen_ms"]:
		result["plain_freeze_1g_vs_64m"] = round(
			result[f"plain{hi}_frozen_ms"] / result[f"plain{lo}_frozen_ms"], 2)
	return result


CHILD_RE = re.compile(r"  parent:  '\S+', a chain of \d+ images now\n +(\d+) pages changed, "
		      r"found [^;]*;\n +(\d+) of them first written during the save")
PLAIN_CHILD_RE = re.compile(r"saved VM \d+ as '\S+' in (\d+) ms.*\n(?:.*\n)*?  parent: .*\n"
			    r" +(\d+) pages changed")
SEQ_DELAY = 100000   # test_snapshot_live's SLOW: a few thousand pages a second


def bench_live_child_virtio():
	"""A live child (`snap save --live --parent`) against a plain one of the
	same guest: the seq guest (256 MiB) writes a few thousand pages a second;
	a base saved, 8 s of writes, a live child; a second base, 8 s, a plain
	child; both find their pages in the dirty log. The freeze of each."""
	disk = make_disk(1024 << 20, "livechild.img")
	result = {"emulator": "QEMU TCG -cpu max (AMD-V), virtio-blk", "guest": "seq 256 MiB"}
	with boot_qemu(disks=[("virtio", disk)], mem="1G", name="qemu-bench-livechild") as vm:
		vm.wait_prompt(timeout=60)
		out = vm.cmd_ok(f"vm create seq mem=256M -- delay={SEQ_DELAY}", timeout=120)
		vid = int(re.search(r"created vm (\d+)", out).group(1))
		vm.cmd_ok(f"vm start {vid}")
		vm.wait_for(rf"\[vm{vid}\] seq: ready", timeout=60)
		vm.cmd_ok(f"snap save {vid} base", timeout=600)
		time.sleep(8)
		out = vm.cmd_ok(f"snap save {vid} kid --live --parent base", timeout=600)
		m, c = LIVE_RE.search(out), CHILD_RE.search(out)
		if not m or not c:
			vm.fail(f"no live child summary:\n{out}")
		(total, frozen, nbytes, cmds, last_ms, meta_ms, commit_ms, rounds, first,
		 rewritten, last_pages, wait) = map(int, m.groups())
		result.update({"live_child_pages": int(c.group(1)),
			       "live_child_pages_grown": int(c.group(2)),
			       "live_child_frozen_ms": frozen, "live_child_total_ms": total,
			       "live_child_rounds": rounds, "live_child_pages_rewritten": rewritten,
			       "live_child_pages_last_pass": last_pages,
			       "live_child_longest_wait_ms": wait})
		# The plain child's pages from the log as well (a child of base would
		# compare now: the log counts from kid): a new base, as many seconds.
		vm.cmd_ok(f"snap save {vid} base2", timeout=600)
		time.sleep(8)
		out = vm.cmd_ok(f"snap save {vid} kid2 --parent base2", timeout=600)
		m = PLAIN_CHILD_RE.search(out)
		if not m:
			vm.fail(f"no child summary:\n{out}")
		result["plain_child_frozen_ms"] = int(m.group(1))
		result["plain_child_pages"] = int(m.group(2))
		vm.cmd_ok(f"vm kill {vid}")
	return result
