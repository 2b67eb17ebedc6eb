# Snapshot save and restore against the disk they go to (issue 6 "Measure"):
# one boot of Amber per disk kind (QEMU TCG, -cpu max: the AMD-V backend), where
# `disk bench` first measures the disk's own sequential write and read, then a
# 64 MiB and a 256 MiB memtest guest (RAM filled with a pattern, so nearly every
# page is stored) are saved, killed, restored and resumed on the same disk, and
# a small counter guest shows the zero pages left out. The figures are what
# Amber prints: the `snap save` line (image bytes and disk commands counted;
# frozen, scan, write and flush+commit times), the `snap restore` line (new-VM,
# load and disk-read times, pages zeroed, the bytes the block layer read and
# commands) and `disk bench` (read time and, timed apart, the CRC32C of what it
# read); restores and disk benches are repeated, the fastest kept (REPEAT), and
# before each restore `disk sum` reads and CRCs the image's own extent: the
# floor of read + CRC for exactly those bytes, taken beside the restore.
# The ratios save/disk write, restore/disk read, disk bytes read per image byte
# and restore time / (read + CRC time of the same bytes) answer whether the
# disk is the limit; TCG's MiB/s themselves depend on this host. Reported,
# never asserted; the figures and what they mean are in docs/performance.md.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness  # noqa: E402
from harness import make_disk  # noqa: E402

DISK_BENCH_SIZE = "256M"  # as much as the larger image moves
GUEST_MIB = (64, 256)
AMBER_MEM = "1G"  # a 256 MiB guest and its restored copy never live together
# The host runs other emulators beside this one (two cores): each timing that
# sets a ratio is taken this many times in the boot and the fastest kept, the
# best estimate of the undisturbed cost, for the restore and for its floor
# (disk bench's read and CRC) alike.
REPEAT = 3

BENCH_RE = re.compile(r"bench-result disk=(\S+) kind=(\S+) bytes=(\d+) write_us=(\d+) "
		      r"read_us=(\d+) write_cmds=(\d+) read_cmds=(\d+) verify=(\w+) crc_us=(\d+)")
SAVE_RE = re.compile(r"saved VM \d+ as '\S+' in \d+ ms.*\n  image: .*\n"
		     r"  memory: +\S+ \S+, (\d+) of (\d+) pages stored.*\n"
		     r"  written: +\S+ \S+ \((\d+) bytes\) in (\d+) commands at (\S+) MiB/s, flushed\n"
		     r"  frozen: +(\d+) ms \(scan (\d+) ms, write (\d+) ms, flush and commit (\d+) ms\)")
SUM_RE = re.compile(r"sum-result reads_us=(\d+) crc_us=(\d+)")
INFO_RE = re.compile(r"byte offset (\d+), (\d+) bytes")
RESTORE_RE = re.compile(r"restored '\S+' as VM (\d+) in (\d+) ms.*\n  state: .*\n  VM: .*\n"
			r"  image: +\S+ \S+ \((\d+) bytes\) in one pass at (\S+) MiB/s\n"
			r"  time: +new VM (\d+) ms, load and check (\d+) ms \(disk reads (\d+) ms\)\n"
			r"  read: +\S+ \S+ \((\d+) bytes\) in (\d+) commands; (\d+) pages zeroed")


def boot(kind, disk, icount=False):
	"""Amber in QEMU TCG with -cpu max (AMD-V, whatever KVM the host has) and
	one disk of `kind` (run-qemu's names: virtio, nvme, ...). With icount,
	guest time is instructions (-icount shift=0,sleep=off): Amber's CPU work,
	the CRC above all, then costs the same however loaded the host is."""
	args, _ = harness._qemu_args((), [(kind, disk)], AMBER_MEM, "", (), None, False)
	args += ["--accel", "tcg", "--cpu", "max"]
	extra = ["--", "-icount", "shift=0,sleep=off"] if icount else []
	return harness.Emulator(f"qemu-snap-{kind}{'-icount' if icount else ''}",
				lambda port, _: args + ["--serial-tcp", str(port)] + extra)


def mib_s(nbytes, us):
	return round(nbytes / (1 << 20) / (us / 1e6), 1) if us else 0


def start_vm(vm, args):
	out = vm.cmd_ok(f"vm create {args}", timeout=60)
	m = re.search(r"created vm (\d+)", out)
	if not m:
		vm.fail(f"no VM id in the output of 'vm create {args}':\n{out}")
	vid = int(m.group(1))
	vm.cmd_ok(f"vm start {vid}")
	return vid


def save(vm, vid, name):
	out = vm.cmd_ok(f"snap save {vid} {name}", timeout=240)
	m = SAVE_RE.search(out)
	if not m:
		vm.fail(f"no summary line from 'snap save {vid} {name}':\n{out}")
	stored, pages, nbytes, cmds, rate, frozen, scan, write, commit = m.groups()
	return {"stored_pages": int(stored), "pages": int(pages), "bytes": int(nbytes),
		"cmds": int(cmds), "rate": float(rate), "frozen_ms": int(frozen),
		"scan_ms": int(scan), "write_ms": int(write), "commit_ms": int(commit)}


def restore(vm, name):
	out = vm.cmd_ok(f"snap restore {name}", timeout=240)
	m = RESTORE_RE.search(out)
	if not m:
		vm.fail(f"no summary line from 'snap restore {name}':\n{out}")
	vid, total, size, rate, create, load, reads, nread, cmds, zeroed = m.groups()
	return {"vm": int(vid), "ms": int(total), "rate": float(rate), "size": int(size),
		"new_vm_ms": int(create), "load_ms": int(load), "reads_ms": int(reads),
		"zeroed": int(zeroed),
		"bytes_read": int(nread), "cmds": int(cmds)}


def memtest_round(vm, mib, result):
	"""Save and restore one memtest guest of `mib` MiB once its RAM is filled."""
	vid = start_vm(vm, f"memtest mem={mib}M")
	vm.wait_for(rf"\[vm{vid}\] memtest: pass \d+ ok", timeout=240,
		    what=f"the first verified pass of the {mib} MiB memtest")
	s = save(vm, vid, f"mt{mib}")
	vm.cmd_ok(f"vm kill {vid}")
	m = INFO_RE.search(vm.cmd_ok(f"snap info mt{mib}"))
	if not m or int(m.group(1)) % 512:
		vm.fail(f"no sector-aligned byte offset in 'snap info mt{mib}'")
	lba, sectors = int(m.group(1)) // 512, int(m.group(2)) // 512
	# Each restore right after `disk sum` of the image's own extent: the same
	# bytes read in disk bench's 4 MiB requests and CRCed, under the same load.
	tries, sums = [], []
	for i in range(REPEAT):
		out = vm.cmd_ok(f"disk sum 0 {lba} {sectors}", timeout=120)
		m = SUM_RE.search(out)
		if not m:
			vm.fail(f"no sum-result line from 'disk sum':\n{out}")
		sums.append(int(m.group(1)) + int(m.group(2)))
		tries.append(restore(vm, f"mt{mib}"))
		if i < REPEAT - 1:
			vm.cmd_ok(f"vm kill {tries[-1]['vm']}")
	r = dict(min(tries, key=lambda t: t["ms"]), vm=tries[-1]["vm"])
	result[f"mt{mib}_restore_ms_all"] = "/".join(str(t["ms"]) for t in tries)
	result[f"mt{mib}_sum_ms_all"] = "/".join(str(round(u / 1000)) for u in sums)
	result[f"mt{mib}_sum_floor_ms"] = round(min(sums) / 1000, 1)
	result[f"mt{mib}_restore_vs_sum"] = round(r["ms"] * 1000 / min(sums), 2)
	# The restored guest must verify its memory again: a figure for an image
	# that does not restore would mean nothing.
	vm.cmd_ok(f"vm resume {r['vm']}")
	vm.wait_for(rf"\[vm{r['vm']}\] memtest: pass \d+ ok", timeout=240,
		    what=f"a verified pass of the restored {mib} MiB memtest")
	vm.cmd_ok(f"vm kill {r['vm']}")
	p = f"mt{mib}_"
	result[p + "image_bytes"] = r["size"]
	result[p + "image_per_ram"] = round(r["size"] / (mib << 20), 3)
	result[p + "save_MiB_s"] = s["rate"]
	result[p + "restore_MiB_s"] = r["rate"]
	result[p + "frozen_ms"] = s["frozen_ms"]
	result[p + "save_whole_MiB_s"] = mib_s(s["bytes"], s["frozen_ms"] * 1000)
	result[p + "scan_ms"] = s["scan_ms"]
	result[p + "write_ms"] = s["write_ms"]
	result[p + "commit_ms"] = s["commit_ms"]
	result[p + "save_cmds"] = s["cmds"]
	result[p + "restore_ms"] = r["ms"]
	result[p + "new_vm_ms"] = r["new_vm_ms"]
	result[p + "load_ms"] = r["load_ms"]
	result[p + "restore_reads_ms"] = r["reads_ms"]
	result[p + "pages_zeroed"] = r["zeroed"]
	result[p + "restore_bytes_read"] = r["bytes_read"]
	result[p + "restore_read_per_image_byte"] = round(r["bytes_read"] / r["size"], 3)
	result[p + "restore_cmds"] = r["cmds"]
	# The floor: reading the image's bytes as `disk bench` reads, plus their
	# CRC32C, both measured in this boot over disk_bench_bytes and scaled to
	# the image's size.
	if result.get("disk_bench_bytes"):
		floor_us = ((result["disk_read_us"] + result["disk_crc_us"]) * r["size"] /
			    result["disk_bench_bytes"])
		result[p + "read_crc_floor_ms"] = round(floor_us / 1000, 1)
		result[p + "restore_vs_read_crc"] = round(r["ms"] * 1000 / floor_us, 2)
	if result.get("disk_write_MiB_s"):
		result[p + "save_vs_disk_write"] = round(s["rate"] / result["disk_write_MiB_s"], 2)
		result[p + "frozen_vs_disk_write"] = round(
			result[p + "save_whole_MiB_s"] / result["disk_write_MiB_s"], 2)
	if result.get("disk_read_MiB_s"):
		result[p + "restore_vs_disk_read"] = round(r["rate"] / result["disk_read_MiB_s"], 2)


def counter_round(vm, result):
	"""A small guest: most of its RAM is zero and left out of the image."""
	vid = start_vm(vm, "counter -- every=20000000")
	vm.wait_for(rf"\[vm{vid}\] count=1\b", timeout=60, what="the counter's first line")
	s = save(vm, vid, "ct")
	vm.cmd_ok(f"vm kill {vid}")
	ram = s["pages"] * 4096
	result["counter_ram_bytes"] = ram
	result["counter_stored_pages"] = s["stored_pages"]
	result["counter_image_bytes"] = s["bytes"]
	result["counter_image_per_ram"] = round(s["bytes"] / ram, 4)
	result["counter_frozen_ms"] = s["frozen_ms"]


def _bench(kind, icount=False):
	# Written out in full and synced, so no host-side block allocation or
	# writeback of the image file's creation lands in one of the measurements.
	disk = make_disk(512 << 20, f"snap-{kind}.img", fill=0)
	fd = os.open(disk, os.O_RDWR)
	os.fsync(fd)
	os.close(fd)
	result = {"emulator": "QEMU-TCG" + ("-icount" if icount else ""), "backend": "AMD-V",
		  "disk_kind": kind}
	with boot(kind, disk, icount) as vm:
		vm.wait_prompt(timeout=60)
		runs = []
		for _ in range(REPEAT):
			out = vm.cmd(f"disk bench 0 {DISK_BENCH_SIZE} --force", timeout=300)
			m = BENCH_RE.search(out)
			if not m:
				vm.fail(f"no bench-result line from 'disk bench':\n{out}")
			runs.append(m.groups())
		name, size = runs[0][0], int(runs[0][2])
		wus = min(int(g[3]) for g in runs)
		rus = min(int(g[4]) for g in runs)
		cus = min(int(g[8]) for g in runs)
		result["disk"] = name
		result["disk_write_MiB_s"] = mib_s(size, wus)
		result["disk_read_MiB_s"] = mib_s(size, rus)
		result["crc32c_MiB_s"] = mib_s(size, cus)
		result["disk_bench_bytes"] = size
		result["disk_read_us"] = rus
		result["disk_crc_us"] = cus
		# disk bench wrote from LBA 0: the disk holds data, not a store.
		vm.cmd_ok("snap format 0 --force", timeout=60)
		for mib in GUEST_MIB:
			memtest_round(vm, mib, result)
		counter_round(vm, result)
	return result


def bench_snapshot_virtio():
	return _bench("virtio")


def bench_snapshot_nvme():
	return _bench("nvme")


def bench_snapshot_virtio_icount():
	"""The same on virtio-blk with guest time counted in instructions: the
	ratios without the noise of other work on the host."""
	return _bench("virtio", icount=True)
