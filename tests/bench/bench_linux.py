# Debian's kernel booting to its shell marker (issue 13 "Measure"): the guest
# time Linux itself reports at /init (its /proc/uptime, which repeats from run
# to run under QEMU -icount shift=0,sleep=off: one TSC tick is one instruction,
# Amber's included, plus the idle stretches QEMU skips ahead), the VM exits by
# kind, and the wall time from `vm start` to the marker for orientation. The
# same on VT-x in Bochs icelake, whose TSC also counts instructions. A
# snapshot of the booted guest, saved and restored against `disk bench`, in
# wall time and again under -icount (repeatable). Recorded in
# docs/performance.md.
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
				"integration"))

import harness  # noqa: E402
import test_linux  # noqa: E402
import vm_cases  # noqa: E402


def _boot_to_marker(vm, mem_mib, wait_s):
	vm.wait_prompt(timeout=120)
	vid = vm_cases.create(vm, f"vmlinuz mem={mem_mib}M initrd=initramfs.cpio.gz "
			      "-- console=ttyS0")
	t0 = time.monotonic()
	vm.send(f"vm start {vid}\r")
	m = vm.wait_for(rf"{test_linux.MARKER}: \S+ up ([\d.]+)s", timeout=wait_s)
	wall = time.monotonic() - t0
	time.sleep(1)  # the shell's banner: its exits belong to the boot
	counts = vm_cases.exit_counts(vm, vid)
	top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
	return {
		"mem_mib": mem_mib,
		"uptime_at_init_s": float(m.group(1)),
		"exits_total": sum(counts.values()),
		**{f"exits_{k.replace('-', '_')}": n for k, n in top},
		"wall_s": round(wall, 1),
	}


def bench_linux_boot_svm_icount():
	kernel, initrd = test_linux.material()
	with test_linux.boot(kernel, initrd) as vm:  # -icount shift=0,sleep=off
		return {"emulator": "QEMU-TCG-icount", "backend": "AMD-V",
			**_boot_to_marker(vm, 256, 180)}


def bench_linux_boot_vmx_bochs():
	kernel, initrd = test_linux.material()
	with harness.boot_bochs(modules=[(kernel, "console=ttyS0"), (initrd, "")],
				mem=512) as vm:
		return {"emulator": "Bochs-icelake", "backend": "VT-x",
			**_boot_to_marker(vm, 128, 400)}


# ---- a snapshot of the booted Linux guest (issue 13 "Measure") -------------
# One boot of Amber in QEMU TCG (AMD-V) with the Linux modules and a
# virtio-blk disk: `disk bench` measures the disk's own sequential write and
# read (the fastest of bench_snapshot.REPEAT), the disk gets a fresh store,
# then the Linux guest boots to its shell, starts the uptime loop and is saved
# running: the image's size against its RAM (Linux's free pages are zero and
# left out), how long the guest was frozen, the save's and the restore's
# MiB/s beside the disk's. The restored guest must go on with its loop (the
# figures of an image that does not restore would mean nothing).
LINUX_SNAP_MIB = 256


def bench_linux_snapshot_svm():
	return _linux_snapshot(False)


def bench_linux_snapshot_svm_icount():
	"""The same under -icount shift=0,sleep=off: every time is guest
	instructions (1 ms = 1 M), so the restore against its read + CRC floor
	repeats from run to run whatever else the host runs."""
	return _linux_snapshot(True)


def _linux_snapshot(icount):
	import bench_snapshot  # noqa: E402 (tests/bench, beside this file)

	kernel, initrd = test_linux.material()
	disk = harness.make_disk(512 << 20, "linux-snap.img", fill=0)
	fd = os.open(disk, os.O_RDWR)
	os.fsync(fd)
	os.close(fd)
	args, _ = harness._qemu_args([(kernel, "console=ttyS0"), (initrd, "")],
				     [("virtio", disk)], "1G", "", (), None, False)
	args += ["--accel", "tcg", "--cpu", "max"] + (["--icount"] if icount else [])
	result = {"emulator": "QEMU-TCG-icount" if icount else "QEMU-TCG", "backend": "AMD-V",
		  "disk_kind": "virtio",
		  "guest_ram_MiB": LINUX_SNAP_MIB}
	with harness.Emulator("qemu-linux-snap", lambda port, _: args + [
			"--serial-tcp", str(port)]) as vm:
		vm.wait_prompt(timeout=60)
		runs = []
		for _ in range(bench_snapshot.REPEAT):
			out = vm.cmd(f"disk bench 0 {bench_snapshot.DISK_BENCH_SIZE} --force",
				     timeout=300)
			m = bench_snapshot.BENCH_RE.search(out)
			if not m:
				vm.fail(f"no bench-result line from 'disk bench':\n{out}")
			runs.append(m.groups())
		size = int(runs[0][2])
		rus, cus = min(int(g[4]) for g in runs), min(int(g[8]) for g in runs)
		result["disk_write_MiB_s"] = bench_snapshot.mib_s(size, min(int(g[3]) for g in runs))
		result["disk_read_MiB_s"] = bench_snapshot.mib_s(size, rus)
		result["crc32c_MiB_s"] = bench_snapshot.mib_s(size, cus)
		vm.cmd_ok("snap format 0 --force", timeout=60)
		vid, _ = test_linux.linux_to_shell(vm, LINUX_SNAP_MIB, 180)
		start = len(vm.seen)
		test_linux.console_line(vm, vid, test_linux.LOOP,
					test_linux.TICK_RE.format(vid=vid), 60)
		test_linux.wait_ticks(vm, vid, start, 3, 60)
		s = bench_snapshot.save(vm, vid, "lx")
		frozen = test_linux.ticks(vm, vid, start)[-1]
		vm.cmd_ok(f"vm kill {vid}")
		tries = []
		for i in range(bench_snapshot.REPEAT):
			tries.append(bench_snapshot.restore(vm, "lx"))
			if i < bench_snapshot.REPEAT - 1:
				vm.cmd_ok(f"vm kill {tries[-1]['vm']}")
		r = min(tries, key=lambda t: t["ms"])
		test_linux.resume_loop(vm, tries[-1]["vm"], frozen, 60)
	result.update({
		"ram_pages": s["pages"],
		"stored_pages": s["stored_pages"],
		"image_bytes": r["size"],
		"image_per_ram": round(r["size"] / (LINUX_SNAP_MIB << 20), 3),
		"frozen_ms": s["frozen_ms"],
		"scan_ms": s["scan_ms"],
		"write_ms": s["write_ms"],
		"commit_ms": s["commit_ms"],
		"save_MiB_s": s["rate"],
		"save_vs_disk_write": round(s["rate"] / result["disk_write_MiB_s"], 2),
		"restore_ms_all": "/".join(str(t["ms"]) for t in tries),
		"restore_ms": r["ms"],
		"restore_MiB_s": r["rate"],
		"restore_vs_disk_read": round(r["rate"] / result["disk_read_MiB_s"], 2),
		"new_vm_ms": r["new_vm_ms"],
		"load_ms": r["load_ms"],
		"restore_reads_ms": r["reads_ms"],
		"pages_zeroed": r["zeroed"],
		"restore_bytes_read": r["bytes_read"],
		# The floor: the image's bytes read and CRCed at disk bench's rates.
		"read_crc_floor_ms": round((rus + cus) * r["size"] / size / 1000, 1),
		"restore_vs_read_crc": round(r["ms"] * 1000 * size / ((rus + cus) * r["size"]), 2),
	})
	return result
