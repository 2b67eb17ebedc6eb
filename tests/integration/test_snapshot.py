# Snapshots end to end: memtest and counter saved, run on, killed, restored and
# resumed on every disk Amber drives (QEMU TCG with AMD-V: virtio-blk
# transitional and modern, NVMe; Bochs with VT-x: ATA); restore after a reboot;
# bit flips made here on the host that `snap verify` names and restore refuses;
# a damaged page at the end of the image that the one-pass restore refuses with
# nothing left behind; a disk too small; Ctrl-C; and amber-snap with gdb on
# what Amber wrote. Every restore must read each image byte once.
import hashlib
import os
import re
import struct
import subprocess
import time

from harness import (BUILD, boot_bochs, boot_qemu, have_tool, make_disk, need_file, skip,
		     strip_ansi, timeout, work_dir)

AMBER_SNAP = os.path.join(BUILD, "amber-snap")
ISO = os.path.join(BUILD, "amber.iso")
COUNTER_BIN = os.path.join(BUILD, "guests", "counter.bin")
GUEST_BASE = 0x100000      # demo guests load at 1 MiB
SNAPSHOT_MAGIC = 0x50414E53
HEADER = struct.Struct("<IIQIIQIIQQQ")   # the 64-byte table, padding included


def flat(text):
	"""Text with the findings' wrapped lines ("  damaged: ..." continues
	under itself at 11 columns) joined again."""
	return re.sub(r"\n {11}(?=\S)", " ", text)


def expect(vm, regex, text, what):
	if not re.search(regex, text, re.M):
		vm.fail(f"expected {what} (/{regex}/) in:\n{text.rstrip()}")


def start_vm(vm, image, mem=None, args=None):
	"""vm create + vm start; returns the VM id."""
	line = f"vm create {image}" + (f" mem={mem}" if mem else "") + (f" -- {args}" if args else "")
	m = re.search(r"created vm (\d+)", vm.cmd_ok(line))
	if not m:
		vm.fail(f"no VM id in the output of '{line}'")
	vm.cmd_ok(f"vm start {m.group(1)}")
	return int(m.group(1))


def seen_after(vm, start, regex, timeout, what):
	"""The first match of regex in everything received after offset `start`
	(output that came before a prompt included), waiting up to `timeout` s."""
	pat = re.compile(regex)
	deadline = time.monotonic() + timeout
	while True:
		m = pat.search(vm.seen, start)
		if m:
			return m
		bad = re.search(r"memtest: CORRUPTION[^\n]*|FAILED[^\n]*|\*\*\* Amber panic[^\n]*",
				vm.seen[start:])
		if bad:
			vm.fail(f"expected {what}, but saw: {bad.group(0)}")
		if time.monotonic() > deadline or vm.proc.poll() is not None:
			vm.fail(f"expected {what} within {timeout} s")
		time.sleep(0.1)


def memtest_passes(vm, vid, start, count, timeout):
	"""Waits for `count` 'pass N ok' lines of VM vid after offset start."""
	for _ in range(count):
		m = seen_after(vm, start, rf"\[vm{vid}\] memtest: pass \d+ ok", timeout,
			       f"a memtest pass of VM {vid} to verify")
		start = m.end()
	return start


def pause_counter(vm, vid):
	"""Pauses the counter VM; returns the last count it printed."""
	vm.cmd_ok(f"vm pause {vid}")
	counts = re.findall(rf"\[vm{vid}\] count=(\d+)", vm.seen)
	if not counts:
		vm.fail(f"VM {vid} printed no count before the pause")
	return int(counts[-1])


RESTORE_RE = re.compile(r"restored '\S+' as VM (\d+) in \d+ ms.*\n(?:.*\n)*?  image: .*\((\d+) bytes\) "
			r"in one pass.*\n(?:.*\n)*?  read: .*\((\d+) bytes\) in \d+ commands")


BAR_RE = re.compile(r"([a-z][a-z ]*) \[[# ]{25}\] +(\d+)% +\d+\.\d MiB/s, +\S+(?: s| min)? left")


def check_bar(vm, out, what):
	"""A save or restore of more than about half a second draws one progress
	bar, named `what`, with percent, rate and time left, ending at 100 %; the
	scan and the write of a save are one bar. A short one draws none."""
	m = re.search(r"^(?:saved VM \d+ as|restored) '?.*? in (\d+) ms", out, re.M)
	if not m:
		vm.fail(f"no duration in:\n{out}")
	ms, bars = int(m.group(1)), BAR_RE.findall(out)
	if (ms >= 900 or bars) and ({b[0] for b in bars} != {what} or bars[-1][1] != "100"):
		vm.fail(f"{ms} ms: one '{what}' bar to 100 % expected, saw {bars}:\n{out}")
	if ms < 300 and bars:
		vm.fail(f"{ms} ms: no bar expected, saw {bars}")
	return bars


def restore(vm, name, extra=""):
	"""snap restore; returns the new VM's id. The disk must have delivered
	exactly the image's bytes: each read once (the block layer counts)."""
	out = vm.cmd_ok(f"snap restore {name}{extra}", timeout=240)
	m = RESTORE_RE.search(out)
	if not m:
		vm.fail(f"no summary line in the output of 'snap restore {name}':\n{out}")
	check_bar(vm, out, "restore")
	size, nread = int(m.group(2)), int(m.group(3))
	if nread != size:
		vm.fail(f"restoring '{name}' read {nread} bytes from the disk for a {size}-byte "
			f"image ({nread / size:.2f} per byte); one pass reads each byte once")
	return int(m.group(1))


def resume_and_expect_count(vm, vid, want):
	"""Resumes a restored counter; its next line must be count=want."""
	start = len(vm.seen)
	vm.cmd_ok(f"vm resume {vid}")
	m = seen_after(vm, start, rf"\[vm{vid}\] count=(\d+)", 60, f"a count line of VM {vid}")
	if int(m.group(1)) != want:
		vm.fail(f"restored counter went on from count={m.group(1)}; the save was at "
			f"count={want - 1}, so the next line must be count={want}")


def save_restore_cycle(vm, memtest_mem, counter_every, pass_timeout):
	"""The scenario of the issue on one booted Amber with one snapshot disk."""
	mt = start_vm(vm, "memtest", mem=memtest_mem)
	ct = start_vm(vm, "counter", args=f"every={counter_every}")
	start = memtest_passes(vm, mt, 0, 1, pass_timeout)
	seen_after(vm, 0, rf"\[vm{ct}\] count=3\b", 120, "the counter at 3")

	out = vm.cmd_ok(f"snap save {mt} mt", timeout=240)
	expect(vm, r"saved VM \d+ as 'mt'.*running again", out, "the memtest save report")
	check_bar(vm, out, "save")
	# The save resumed it: memtest runs on and keeps verifying.
	memtest_passes(vm, mt, len(vm.seen), 1, pass_timeout)
	n = pause_counter(vm, ct)
	out = vm.cmd_ok(f"snap save {ct} ct", timeout=120)
	m = re.search(r"^  memory: +(\S+ \S+), (\d+) of (\d+) pages stored", out, re.M)
	if not m or int(m.group(2)) * 8 > int(m.group(3)):
		vm.fail(f"the counter's image should hold a small part of its RAM:\n{out}")
	vm.cmd_ok(f"vm resume {ct}")
	seen_after(vm, len(vm.seen) - 200, rf"\[vm{ct}\] count={n + 3}\b", 120,
		   f"the counter running on to {n + 3}")
	out = vm.cmd_ok("snap list")
	expect(vm, r"^\s+mt\s+memtest", out, "'mt' in the list")
	expect(vm, r"^\s+ct\s+counter", out, "'ct' in the list")
	vm.cmd_ok("snap verify mt", timeout=240, expect=r"intact")
	vm.cmd_ok(f"vm kill {mt}")
	vm.cmd_ok(f"vm kill {ct}")

	mt2 = restore(vm, "mt")
	out = vm.cmd_ok("vm list")
	expect(vm, rf"^{mt2}\s+memtest\s+paused", out, "the restored memtest, paused")
	start = len(vm.seen)
	vm.cmd_ok(f"vm resume {mt2}")
	memtest_passes(vm, mt2, start, 2, pass_timeout)
	ct2 = restore(vm, "ct")
	resume_and_expect_count(vm, ct2, n + 1)
	return n


# ---- QEMU TCG, AMD-V -------------------------------------------------------------
def qemu_cycle(kind):
	disk = make_disk(128 << 20)
	with boot_qemu(disks=[(kind, disk)], mem="512M", name=f"qemu-{kind}") as vm:
		vm.wait_prompt()
		vm.cmd_ok("disk list", expect=r"vblk0|nvme0")
		save_restore_cycle(vm, "32M", 20000000, 90)


@timeout(300)
def test_qemu_virtio_transitional():
	qemu_cycle("virtio")


@timeout(300)
def test_qemu_virtio_modern():
	qemu_cycle("virtio-modern")


@timeout(300)
def test_qemu_nvme():
	qemu_cycle("nvme")


@timeout(180)
def test_devices_mid_work():
	"""The pic guest saved while PIT channel 0 ticks into the 8259A: restored
	after its VM was killed, it continues from the window it was in, at the
	same rate (every 8254 and 8259A register came back; a PIC reset to its
	power-on state would mask IRQ0 and the next window would hold no tick).
	The VM is paused for the save: a running VM's guest time goes on while the
	shell works on the command (creating the store here), and a guest that
	polls its timer counts that as ticks lost, as under any host preemption.
	So does a QEMU process the host deschedules: -icount runs guest time by
	instructions, whatever the load on the machine."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], extra=("-icount", "shift=0,sleep=off")) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "pic", args="windows=0")
		seen_after(vm, 0, rf"\[vm{vid}\] pic: window 2: ", 60, "the pic guest's second window")
		vm.cmd_ok(f"vm pause {vid}")
		vm.cmd_ok(f"snap save {vid} pic", timeout=60)
		frozen = [int(w) for w in re.findall(rf"\[vm{vid}\] pic: window (\d+):", vm.seen)][-1]
		vm.cmd_ok(f"vm resume {vid}")
		seen_after(vm, len(vm.seen), rf"\[vm{vid}\] pic: window {frozen + 2}: ", 60,
			   "the saved guest running on")
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "pic")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		for w in (frozen + 1, frozen + 2):
			m = seen_after(vm, start, rf"\[vm{again}\] pic: window (\d+): (\d+) ticks", 60,
				       f"window {w} of the restored guest")
			if int(m.group(1)) != w or not 48 <= int(m.group(2)) <= 52:
				vm.fail(f"the restored guest printed '{m.group(0)}', expected window {w} "
					"with 50 +-2 ticks")
			start = m.end()


@timeout(180)
def test_fwcfg_mid_read():
	"""fw_cfg saved halfway through an item: the acpi guest selects the RAM
	size, reads three of its eight bytes with REP INSB and waits for a key;
	the VM is saved, killed and restored, and after the key its read goes on
	at the fourth byte. The RAM size it assembles is right only if the
	selector and the offset came back: a device at its power-on state would
	hand it the signature's bytes instead (check 23)."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "acpi", mem="32M", args="snap")
		seen_after(vm, 0, rf"\[vm{vid}\] acpi: fw_cfg mid-read", 60,
			   "the acpi guest halfway through fw_cfg's RAM size")
		vm.cmd_ok(f"vm pause {vid}")
		vm.cmd_ok(f"snap save {vid} fwcfg", timeout=60)
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "fwcfg")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		vm.send(f"vm console {again}\r")
		vm.wait_for(r"Ctrl-\] detaches", timeout=10)
		vm.send("g")
		m = seen_after(vm, start, rf"\[vm{again}\] (exited with code \d+)", 60,
			       "the restored acpi guest to finish")
		vm.send("\x1d")
		vm.wait_prompt(timeout=10)
		lines = strip_ansi(vm.seen[start:])
		if m.group(1) != "exited with code 0":
			vm.fail(f"the restored acpi guest failed: {m.group(1)}\n{lines}")
		expect(vm, rf"\[vm{again}\] acpi: fw_cfg RAM size 0x02000000 = 1 MiB \+ mem_upper",
		       lines, "the RAM size read across the snapshot")


@timeout(240)
def test_interrupts_mid_work():
	"""The eventinj guest saved while PIT IRQ0 interrupts it at 1 kHz and it
	sleeps in HLT between them (the save waits for a pause that finds its
	vCPU halted): restored after its VM was killed, the vCPU is still halted
	waiting for its interrupt, and the guest goes on from the window it was
	in with 100 +-2 interrupts per 100 ms of its TSC; its own checks (IR0 in
	service at each delivery: none doubled) stay quiet. A guest halted for
	good (CLI; HLT), saved and restored, is reported halted again once
	resumed."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], extra=("-icount", "shift=0,sleep=off")) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "eventinj", args="windows=0")
		seen_after(vm, 0, rf"\[vm{vid}\] eventinj: window 2: ", 60,
			   "the eventinj guest's second window")
		for _ in range(20):
			vm.cmd_ok(f"vm pause {vid}")
			if re.search(r"(?m)^vCPU 0: \d+ exits, halted", vm.cmd_ok(f"vm info {vid}")):
				break
			vm.cmd_ok(f"vm resume {vid}")
		else:
			vm.fail("the eventinj guest was never found halted between interrupts")
		vm.cmd_ok(f"snap save {vid} intr", timeout=60)
		frozen = [int(w) for w in re.findall(rf"\[vm{vid}\] eventinj: window (\d+):",
						     vm.seen)][-1]
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "intr")
		info = vm.cmd_ok(f"vm info {again}")
		if not re.search(r"(?m)^vCPU 0: \d+ exits, halted", info):
			vm.fail(f"the restored vCPU should still sleep in HLT:\n{info}")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		for w in (frozen + 1, frozen + 2, frozen + 3):
			m = seen_after(vm, start, rf"\[vm{again}\] eventinj: window (\d+): (\d+) ticks",
				       60, f"window {w} of the restored guest")
			if int(m.group(1)) != w or not 95 <= int(m.group(2)) <= 103:  # eventinj.asm
				vm.fail(f"the restored guest printed '{m.group(0)}', expected window {w} "
					"with 95-103 ticks")
			start = m.end()
		if vm_state_of(vm, again) != "running":
			vm.fail(f"the restored guest should run on:\n{vm.cmd_ok('vm list')}")
		# Its windows are checked: it goes, or making the next VM (RAM zeroed
		# by Amber, counted as guest time under icount) would cost it ticks.
		vm.cmd_ok(f"vm kill {again}")
		# A guest halted for good (CLI; HLT) is halted again once resumed.
		h = start_vm(vm, "hello", args="halt")
		seen_after(vm, 0, rf"\[vm{h}\] halted", 30, "the hello guest halted")
		vm.cmd_ok(f"vm pause {h}")
		vm.cmd_ok(f"snap save {h} halt", timeout=60)
		vm.cmd_ok(f"vm kill {h}")
		h2 = restore(vm, "halt")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {h2}")
		seen_after(vm, start, rf"\[vm{h2}\] halted", 30, "the restored hello guest halted")
		if vm_state_of(vm, h2) != "halted":
			vm.fail(f"the restored CLI; HLT guest should be halted:\n{vm.cmd_ok('vm list')}")


@timeout(240)
def test_apic_timer_mid_work():
	"""The apic guest saved while its LAPIC timer interrupts it at 1 kHz
	(periodic, 1 GHz / 16): restored after its VM was killed (and again
	after Amber rebooted), the guest goes
	on from the window it was in with 100 +-2 interrupts per 100 ms of the
	8254 (every LAPIC register came back, the timer's phase too: a LAPIC
	reset to its power-on state would mask the timer and the next window
	would hold none; a lost phase would double or drop ticks)."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], extra=("-icount", "shift=0,sleep=off")) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "apic", args="windows=0")
		seen_after(vm, 0, rf"\[vm{vid}\] apic: window 2: ", 60, "the apic guest's second window")
		vm.cmd_ok(f"vm pause {vid}")
		vm.cmd_ok(f"snap save {vid} apic", timeout=60)
		frozen = [int(w) for w in re.findall(rf"\[vm{vid}\] apic: window (\d+):", vm.seen)][-1]
		vm.cmd_ok(f"vm resume {vid}")
		seen_after(vm, len(vm.seen), rf"\[vm{vid}\] apic: window {frozen + 2}: ", 60,
			   "the saved guest running on")
		vm.cmd_ok(f"vm kill {vid}")
		again = restore(vm, "apic")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		for w in (frozen + 1, frozen + 2, frozen + 3):
			m = seen_after(vm, start, rf"\[vm{again}\] apic: window (\d+): (\d+) ticks", 60,
				       f"window {w} of the restored guest")
			if int(m.group(1)) != w or not 95 <= int(m.group(2)) <= 103:
				vm.fail(f"the restored guest printed '{m.group(0)}', expected window {w} "
					"with 95-103 ticks (apic.asm says why)")
			start = m.end()
		if vm_state_of(vm, again) != "running":
			vm.fail(f"the restored guest should run on:\n{vm.cmd_ok('vm list')}")
	# After Amber itself rebooted: the image on the disk alone.
	with boot_qemu(disks=[("virtio", disk)], extra=("-icount", "shift=0,sleep=off")) as vm:
		vm.wait_prompt()
		again = restore(vm, "apic")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		for w in (frozen + 1, frozen + 2):
			m = seen_after(vm, start, rf"\[vm{again}\] apic: window (\d+): (\d+) ticks", 60,
				       f"window {w} of the guest restored after a reboot")
			if int(m.group(1)) != w or not 95 <= int(m.group(2)) <= 103:
				vm.fail(f"restored after a reboot, the guest printed '{m.group(0)}', "
					f"expected window {w} with 95-103 ticks")
			start = m.end()


def vm_state_of(vm, vid):
	m = re.search(rf"(?m)^{vid}\s+\S+\s+(\w+)", vm.cmd_ok("vm list"))
	return m.group(1) if m else "?"


def _rtc_window(vm, vid, start, what):
	"""The next 'rtc: window N: P flags at HH:MM:SS' of VM vid after `start`:
	(N, P, the clock in seconds of the day, the end offset)."""
	m = seen_after(vm, start, rf"\[vm{vid}\] rtc: window (\d+): (\d+) flags at "
		       r"(\d\d):(\d\d):(\d\d)", 120, what)
	h, mi, se = (int(x) for x in m.group(3, 4, 5))
	return int(m.group(1)), int(m.group(2)), h * 3600 + mi * 60 + se, m.end()


@timeout(300)
def test_rtc_mid_work():
	"""The rtc guest saved while the RTC's periodic flag runs at 64 Hz and
	its clock counts: restored after its VM was killed and resumed, the next
	window holds 32 +-1 flags again (register A, the divider's phase and
	the flags came back) and the clock goes on from the value it had at the
	save, not from the time the restore happened (it is computed from the
	guest TSC, which the snapshot froze). -icount, as for the pic guest."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], extra=("-icount", "shift=0,sleep=off")) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "rtc", args="windows=0")
		_rtc_window(vm, vid, 0, "the rtc guest's first window")
		seen_after(vm, 0, rf"\[vm{vid}\] rtc: window 2: ", 120, "the rtc guest's second window")
		vm.cmd_ok(f"vm pause {vid}")
		vm.cmd_ok(f"snap save {vid} rtc", timeout=60)
		wins = re.findall(rf"\[vm{vid}\] rtc: window (\d+): \d+ flags at (\d\d):(\d\d):(\d\d)",
				  vm.seen)
		frozen = int(wins[-1][0])
		h, mi, se = (int(x) for x in wins[-1][1:])
		clock = h * 3600 + mi * 60 + se
		vm.cmd_ok(f"vm resume {vid}")
		seen_after(vm, len(vm.seen), rf"\[vm{vid}\] rtc: window {frozen + 2}: ", 120,
			   "the saved guest running on")
		vm.cmd_ok(f"vm kill {vid}")
		time.sleep(2)  # wall time that must not show in the restored clock
		again = restore(vm, "rtc")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		for w in (frozen + 1, frozen + 2):
			n, flags, now, start = _rtc_window(vm, again, start, f"window {w} of the restored guest")
			if n != w or not 31 <= flags <= 33:
				vm.fail(f"the restored guest's window {n} held {flags} flags; expected window "
					f"{w} with 32 +-1")
			if (now - clock) % 86400 > w - frozen:  # midnight may pass
				vm.fail(f"the restored clock reads {now} s of the day at window {w}; the save "
					f"was at {clock} s, 0.5 s per window")


@timeout(240)
def test_reset_without_image():
	"""A restored VM whose image this Amber does not have cannot boot again:
	the reset guest, run as a Multiboot module, saved before it resets, is
	restored after a reboot without that module; its reset stops it with a
	message that names the image."""
	disk = make_disk(64 << 20)
	mod = os.path.join(work_dir(), "rst.bin")
	with open(os.path.join(BUILD, "guests", "reset.bin"), "rb") as f, open(mod, "wb") as g:
		g.write(f.read())
	with boot_qemu(modules=[(mod, "")], disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "rst.bin", args="spin=1500")
		seen_after(vm, 0, rf"\[vm{vid}\] reset: spinning", 60, "the guest before its reset")
		vm.cmd_ok(f"vm pause {vid}")
		vm.cmd_ok(f"snap save {vid} rst", timeout=60)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = restore(vm, "rst")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {vid}")
		m = seen_after(vm, start, rf"\[vm{vid}\] stopped: ([^\r\n]*)", 120, "the reset to stop it")
		want = "reset through port 0xcf9: image 'rst.bin' is not in this Amber"
		if want not in m.group(1):
			vm.fail(f"expected '{want}', got: {m.group(1)}")
		if "second boot" in vm.seen[start:]:
			vm.fail("the VM booted again without its image")


# ---- helpers that read the disk image on the host ---------------------------------
def snapshot_base(vm, name):
	"""Byte offset of snapshot `name` on its disk, from `snap info`."""
	out = vm.cmd_ok(f"snap info {name}")
	m = re.search(r"byte offset (\d+), (\d+) bytes", out)
	if not m:
		vm.fail(f"no byte offset in 'snap info {name}':\n{out}")
	return int(m.group(1)), int(m.group(2))


def parse_image(path, base):
	"""Header fields and sections of the image at `base`, parsed here from the
	documented layout (docs/snapshot-format.md), independently of Amber."""
	with open(path, "rb") as f:
		f.seek(base)
		head = f.read(64)
		fields = HEADER.unpack(head)
		magic, version, vm_id, vcpus, pad0, pages, regions, pad1, total, ts, checksum = fields
		sections, pos = [], 64
		while pos < total:
			f.seek(base + pos)
			stype, flags, length, index = struct.unpack("<IIQI", f.read(20))
			sections.append({"type": stype, "index": index, "pos": pos, "length": length})
			pos += 32 + length
			if stype == 0xFFFF:
				break
	xor = 0
	for v in (magic, version, vm_id, vcpus, pages, regions, total, ts):
		xor ^= v
	return {"magic": magic, "version": version, "pad": (pad0, pad1), "total": total,
		"checksum": checksum, "xor": xor, "vcpus": vcpus, "sections": sections}


def flip_bit(path, offset, bit=0):
	with open(path, "r+b") as f:
		f.seek(offset)
		b = f.read(1)[0]
		f.seek(offset)
		f.write(bytes([b ^ (1 << bit)]))


def run_tool(*args):
	return subprocess.run([AMBER_SNAP, *args], capture_output=True, text=True, timeout=60)


@timeout(240)
def test_reboot_restore_and_bit_flips():
	need_file(AMBER_SNAP, "make builds it")
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-save") as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		seen_after(vm, 0, rf"\[vm{ct}\] count=2\b", 120, "the counter at 2")
		n = pause_counter(vm, ct)
		for name in ("good", "hdr", "cpu", "page"):
			vm.cmd_ok(f"snap save {ct} {name}", timeout=60)
		bases = {name: snapshot_base(vm, name) for name in ("good", "hdr", "cpu", "page")}

	# The image as the table describes it.
	img = parse_image(disk, bases["good"][0])
	assert img["magic"] == SNAPSHOT_MAGIC and img["version"] == 2, img
	assert img["pad"] == (0, 0) and img["checksum"] == img["xor"], img
	assert img["total"] == bases["good"][1] and img["total"] % 4096 == 0, img
	types = [s["type"] for s in img["sections"]]
	assert types[0] == 1 and types[-1] == 0xFFFF and 3 in types and 5 in types, types
	# Version 2: one DEVICE section per emulated device, each a distinct id.
	devs = [s["index"] for s in img["sections"] if s["type"] == 7]
	assert len(devs) >= 7 and len(set(devs)) == len(devs) and 6 not in types, img

	# One bit in each: the header's timestamp, vCPU 0's RIP, the last stored page.
	flip_bit(disk, bases["hdr"][0] + 0x30, 2)
	cpu = parse_image(disk, bases["cpu"][0])
	vcpu = next(s for s in cpu["sections"] if s["type"] == 3)
	flip_bit(disk, bases["cpu"][0] + vcpu["pos"] + 32 + 0x88, 4)
	page = parse_image(disk, bases["page"][0])
	end = next(s for s in page["sections"] if s["type"] == 0xFFFF)
	flip_bit(disk, bases["page"][0] + end["pos"] - 4096 + 123, 6)

	r = run_tool("verify", disk, "good")
	assert r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr
	for name, what in (("hdr", "header"), ("cpu", "vCPU 0 state record"),
			   ("page", "memory region 0, stored pages")):
		r = run_tool("verify", disk, name)
		assert r.returncode == 1 and what in r.stdout, f"amber-snap verify {name}:\n{r.stdout}{r.stderr}"

	# A new boot with the same disk: Amber restarted, the disk is all that survived.
	with boot_qemu(disks=[("virtio", disk)], name="qemu-restore") as vm:
		vm.wait_prompt()
		out = vm.cmd_ok("snap list")
		for name in ("good", "hdr", "cpu", "page"):
			expect(vm, rf"^\s+{name}\s+counter", out, f"'{name}' listed after the reboot")
		for name, what in (("hdr", r"header \(image bytes 0x00-0x3f\): checksum mismatch"),
				   ("cpu", r"vCPU 0 state record .*CRC32C mismatch"),
				   ("page", r"memory region 0, stored pages \d+-\d+ between guest-physical 0x[0-9a-f]+ and 0x[0-9a-f]+")):
			out = vm.cmd(f"snap verify {name}", timeout=60)
			expect(vm, what, flat(out), f"'snap verify {name}' naming the damage")
			expect(vm, rf"^error: snap verify: snapshot '{name}' is damaged", out, "the verdict")
			out = vm.cmd(f"snap restore {name}", timeout=60)
			expect(vm, r"restore refused, no VM created", out, f"restore of '{name}' refused")
		out = vm.cmd_ok("vm list")
		if re.search(r"^\d+\s", out, re.M):
			vm.fail(f"a refused restore left a VM behind:\n{out}")
		ct2 = restore(vm, "good")
		resume_and_expect_count(vm, ct2, n + 1)


def free_memory(vm):
	"""(free 4 KiB pages, heap bytes in use) from `mem`."""
	out = vm.cmd_ok("mem")
	free = re.search(r"4 KiB pages: (\d+) free", out)
	heap = re.search(r"Heap: .+ used \((\d+) bytes\)", out)
	if not free or not heap:
		vm.fail(f"'mem' did not report free pages and heap use:\n{out}")
	return int(free.group(1)), int(heap.group(1))


def sha256(path):
	with open(path, "rb") as f:
		return hashlib.sha256(f.read()).hexdigest()


@timeout(300)
def test_restore_damage_late():
	"""The one-pass restore loads pages into the new VM as it checks them: a
	flipped bit in the last stored page is found after nearly the whole image
	went into its memory. The restore is refused; that VM never appears (vm
	list as before, its id still free) and the disk is byte for byte what it
	was. Ctrl-C during a restore leaves nothing either. A good image restores
	right after, into the same id."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-save") as vm:
		vm.wait_prompt()
		mt = start_vm(vm, "memtest", mem="16M")
		memtest_passes(vm, mt, 0, 1, 120)
		vm.cmd_ok(f"vm pause {mt}")
		for name in ("late", "good"):
			vm.cmd_ok(f"snap save {mt} {name}", timeout=120)
		base, size = snapshot_base(vm, "late")
	img = parse_image(disk, base)
	end = next(s for s in img["sections"] if s["type"] == 0xFFFF)
	damaged = end["pos"] - 4096 + 2000       # in the last stored page
	assert damaged > size * 9 // 10, f"the last page at {damaged} of {size}: not late"
	flip_bit(disk, base + damaged, 3)
	before = sha256(disk)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-restore") as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		seen_after(vm, 0, rf"\[vm{ct}\] count=1\b", 120, "the counter's first count")
		vm.cmd_ok(f"vm pause {ct}")
		listed = vm.cmd_ok("vm list")
		vm.cmd_ok("snap list")   # the store opened once, as the restore opens it
		mem = free_memory(vm)
		out = vm.cmd("snap restore late", timeout=120)
		m = re.search(r"memory region 0, stored pages \d+-\d+ between guest-physical "
			      r"0x[0-9a-f]+ and 0x[0-9a-f]+ \(image bytes 0x([0-9a-f]+)-0x([0-9a-f]+)\)",
			      flat(out))
		if not m or not int(m.group(1), 16) <= damaged <= int(m.group(2), 16):
			vm.fail(f"expected the damaged page range around image byte {damaged:#x}:\n{out}")
		expect(vm, r"restore refused, no VM created", out, "the refusal")
		if re.search(r"^restored ", out, re.M):
			vm.fail(f"the damaged image was reported restored:\n{out}")
		after = vm.cmd_ok("vm list")
		if after != listed:
			vm.fail(f"the refused restore changed 'vm list':\nbefore:\n{listed}\nafter:\n{after}")
		if free_memory(vm) != mem:
			vm.fail(f"the refused restore kept memory: {free_memory(vm)} (free pages, heap "
				f"bytes), {mem} before: the hidden VM was not removed")
		out = vm.cmd(f"vm resume {ct + 1}")
		expect(vm, rf"there is no VM '{ct + 1}'", out, "the refused VM's id unused")
		# Ctrl-C right behind the command: the load stops, nothing is left.
		vm.send("snap restore good\r\x03")
		vm.wait_for(r"snap restore: cancelled; no VM created", 120)
		vm.wait_prompt()
		after = vm.cmd_ok("vm list")
		if after != listed:
			vm.fail(f"the cancelled restore changed 'vm list':\nbefore:\n{listed}\nafter:\n{after}")
		if free_memory(vm) != mem:
			vm.fail(f"the cancelled restore kept memory: {free_memory(vm)}, {mem} before")
		mt2 = restore(vm, "good")
		if mt2 != ct + 1:
			vm.fail(f"the good image came back as VM {mt2}, expected {ct + 1}")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {mt2}")
		memtest_passes(vm, mt2, start, 1, 120)
	if sha256(disk) != before:
		raise AssertionError("the refused restore changed the disk")


@timeout(180)
def test_disk_too_small():
	disk = make_disk(2 << 20)   # 1 MiB of store metadata, 1 MiB for images
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		vm.cmd_ok(f"snap save {ct} small", timeout=60)
		mt = start_vm(vm, "memtest", mem="8M")
		memtest_passes(vm, mt, 0, 1, 90)
		out = vm.cmd(f"snap save {mt} big", timeout=60)
		expect(vm, r"^error: snap save: disk full: [\s\S]*earlier snapshots are\s+intact", out, "a clear disk-full error")
		out = vm.cmd_ok("vm list")
		expect(vm, rf"^{mt}\s+memtest\s+running", out, "memtest running again after the refusal")
		out = vm.cmd_ok("snap list")
		expect(vm, r"^\s+small\s+counter", out, "the earlier snapshot still listed")
		if re.search(r"^\s+big\s", out, re.M):
			vm.fail(f"the refused snapshot is listed:\n{out}")
		vm.cmd_ok("snap verify small", expect=r"intact")


@timeout(360)
def test_progress_bar():
	"""A save and a restore of 640 MiB of patterns take more than the 300 ms
	after which a bar is drawn under TCG (256 MiB no longer did since the
	save and restore got faster): a bar drawn is one for each, with percent,
	rate and time left, to 100 %; at least one of them draws it."""
	disk = make_disk(1024 << 20)
	with boot_qemu(disks=[("virtio", disk)], mem="1G") as vm:
		vm.wait_prompt()
		mt = start_vm(vm, "memtest", mem="640M")
		memtest_passes(vm, mt, 0, 1, 240)
		out = vm.cmd_ok(f"snap save {mt} big", timeout=180)
		drawn = check_bar(vm, out, "save")
		vm.cmd_ok(f"vm kill {mt}")
		out = vm.cmd_ok("snap restore big", timeout=180)
		drawn += check_bar(vm, out, "restore")
		if not drawn:
			vm.fail("neither the save nor the restore drew a bar: none was checked")


@timeout(180)
def test_errors_and_cancel():
	with boot_qemu(disks=[]) as vm:
		vm.wait_prompt()
		out = vm.cmd("snap list")
		expect(vm, r"^error: snap \w+: there is no disk;", out, "'there is no disk'")
	disk = make_disk(256 << 20)
	with boot_qemu(disks=[("virtio", disk)], mem="512M") as vm:
		vm.wait_prompt()
		out = vm.cmd("snap save 3 x")
		expect(vm, r"^error: snap save: there is no VM '3'", out, "'no VM 3'")
		ct = start_vm(vm, "counter", args="every=20000000")
		vm.cmd_ok(f"snap save {ct} keep", timeout=60)
		out = vm.cmd(f"snap save {ct} keep", timeout=60)
		expect(vm, r"^error: snap save: 'keep' exists on disk 0 already;\n.*--replace", out,
		       "'name exists'")
		# --replace: the new image is committed in place of the old one, one
		# entry of that name is left and it is whole.
		vm.cmd_ok(f"snap save {ct} keep --replace", timeout=60, expect=r"saved VM")
		out = vm.cmd_ok("snap list")
		if len(re.findall(r"(?m)^\s+keep\s", out)) != 1:
			vm.fail(f"one 'keep' should be listed after --replace:\n{out}")
		out = vm.cmd(f"snap save {ct} keep --replace --parent keep", timeout=60)
		expect(vm, r"^error: snap save: 'keep' cannot build on the image it replaces", out,
		       "'--replace' of its own parent refused")
		out = vm.cmd("snap restore nosuch")
		expect(vm, r"^error: snap restore: there is no snapshot 'nosuch'", out, "'no snapshot'")
		out = vm.cmd("snap format 0")
		expect(vm, r"^error: snap format: disk 0 .* holds a snapshot store", out, "format refusing")
		out = vm.cmd("disk write 0 0 0xA5")
		expect(vm, r"^error: disk write: vblk0 holds snapshots that this would destroy", out, "'disk write' refusing a snapshot disk")
		vm.cmd_ok("snap verify keep", expect=r"intact")
		# Ctrl-C right behind the command: the save of 128 MiB of patterns stops.
		mt = start_vm(vm, "memtest", mem="128M")
		memtest_passes(vm, mt, 0, 1, 180)
		start = len(vm.seen)
		vm.send(f"snap save {mt} cancelled\r\x03")
		vm.wait_for(r"cancelled; nothing was committed, earlier snapshots are intact", 120)
		vm.wait_prompt()
		out = vm.cmd_ok("snap list")
		expect(vm, r"^\s+keep\s+counter", out, "the earlier snapshot after the cancel")
		if re.search(r"^\s+cancelled\s", out, re.M):
			vm.fail(f"the cancelled snapshot is listed:\n{out}")
		vm.cmd_ok("snap verify keep", expect=r"intact")
		vm.cmd_ok("snap delete keep", expect=r"deleted 'keep'")
		out = vm.cmd_ok("snap list")
		if re.search(r"^\s+keep\s", out, re.M):
			vm.fail(f"'keep' listed after its delete:\n{out}")
		memtest_passes(vm, mt, start, 1, 180)


@timeout(180)
def test_failed_capture_commits_nothing():
	"""A save whose vCPU state could not be read (a backend failure, here
	from the `vm fail-state` test hook) says so and commits nothing: no
	snapshot with a zeroed CPU state, the earlier one intact, the VM running
	on (issue 12, defect 6)."""
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		vm.cmd_ok(f"snap save {ct} keep", timeout=60)
		vm.cmd_ok(f"vm fail-state {ct} 1", expect=r"next 1 vCPU state access")
		out = vm.cmd(f"snap save {ct} broken", timeout=60)
		expect(vm, r"^error: snap save: AMD-V could not read the state of vCPU 0 \(EIO\)\n"
		       r"snap save: nothing was committed", out, "the failed capture reported")
		if re.search(r"^saved VM", out, re.M):
			vm.fail(f"the failed capture was reported as saved:\n{out}")
		out = vm.cmd_ok("snap list")
		expect(vm, r"^\s+keep\s+counter", out, "the earlier snapshot still listed")
		if re.search(r"^\s+broken\s", out, re.M):
			vm.fail(f"the snapshot whose capture failed is listed:\n{out}")
		vm.cmd_ok("snap verify keep", expect=r"intact")
		out = vm.cmd_ok("vm list")
		expect(vm, rf"^{ct}\s+counter\s+running", out, "the counter running again")
		# The hook is spent: the next save works.
		vm.cmd_ok(f"snap save {ct} after", timeout=60, expect=r"saved VM")


@timeout(180)
def test_amber_snap_tool_and_gdb():
	need_file(AMBER_SNAP, "make builds it")
	need_file(COUNTER_BIN, "make builds the demo guests")
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("nvme", disk)]) as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		seen_after(vm, 0, rf"\[vm{ct}\] count=2\b", 120, "the counter at 2")
		n = pause_counter(vm, ct)
		vm.cmd_ok(f"snap save {ct} frozen", timeout=60)
		base, size = snapshot_base(vm, "frozen")
	work = os.path.dirname(disk)
	r = run_tool("list", disk)
	assert r.returncode == 0 and re.search(r"^\s+frozen\s+counter", r.stdout, re.M), r.stdout + r.stderr
	r = run_tool("verify", disk, "frozen")
	assert r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr
	r = run_tool("info", disk, "frozen")
	assert r.returncode == 0 and "vcpu_count 1" in r.stdout, r.stdout + r.stderr
	image = os.path.join(work, "frozen.snap")
	r = run_tool("extract", disk, "frozen", "-o", image)
	assert r.returncode == 0, r.stdout + r.stderr
	with open(disk, "rb") as f:
		f.seek(base)
		assert f.read(size) == open(image, "rb").read(), "extract differs from the bytes dd cuts out"
	r = run_tool("verify", image)
	assert r.returncode == 0, r.stdout + r.stderr

	core = os.path.join(work, "frozen.core")
	r = run_tool("core", disk, "frozen", "-o", core)
	assert r.returncode == 0, r.stdout + r.stderr
	if not have_tool("gdb"):
		skip("gdb is not installed: the core file was written but not read back")
	# Known values: the guest's "every=" key string, and `count`, which follows
	# the 8-byte marker "CTRVARS\0" and `every` (tests/guests/counter.asm).
	blob = open(COUNTER_BIN, "rb").read()
	key = blob.index(b"every=\0")
	count_addr = GUEST_BASE + blob.index(b"CTRVARS\0") + 8 + 4
	g = subprocess.run(["gdb", "-batch", "-nx", "-c", core, "-ex", f"x/s {GUEST_BASE + key}",
			    "-ex", f"x/wd {count_addr}", "-ex", "p/x $pc"],
			   capture_output=True, text=True, timeout=60)
	out = g.stdout + g.stderr
	assert re.search(r'"every="', out), f"gdb did not read the guest's string:\n{out}"
	m = re.search(rf"{count_addr:#x}:\s+(\d+)", out)
	assert m and int(m.group(1)) in (n, n + 1), f"gdb read count {m and m.group(1)}, saved at {n}:\n{out}"
	m = re.search(r"\$1 = (0x[0-9a-f]+)", out)
	assert m and GUEST_BASE <= int(m.group(1), 16) < GUEST_BASE + len(blob), f"rip not in the guest:\n{out}"



@timeout(240)
def test_fuzz_crash_saved():
	"""A fuzzing VM's first crashing input ("FUZ#", tests/guests/fuzz.asm with
	the corpus of vm_cases.FUZZ_RECORDS) is in the note of its snapshot, which
	amber-snap info reads on the host."""
	need_file(AMBER_SNAP, "make builds it")
	corpus = os.path.join(work_dir(), "corpus.bin")
	with open(corpus, "wb") as f:
		for r in (b"hello", b"FUZZ", b"AMBER"):
			f.write(struct.pack("<H", len(r)) + r)
	disk = make_disk(64 << 20)
	with boot_qemu(modules=[(corpus, "")], disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "fuzz inputs=corpus.bin", mem="4M")
		seen_after(vm, 0, rf"\[vm{vid}\] fuzz: crash \(vector 0\) after 434 executions", 120,
			   "the fuzz guest to find its bug")
		vm.cmd_ok(f"snap save {vid} crash", timeout=60)
	r = run_tool("info", disk, "crash")
	assert r.returncode == 0, r.stdout + r.stderr
	assert re.search(r"note: .*fuzz crash: execution 434, input 433 of corpus.bin, 4 bytes: "
			 r"46555a23", r.stdout), f"the crash is not in the note:\n{r.stdout}"


@timeout(240)
def test_reset_base_from_image():
	"""`snap reset VM NAME`: the dirty guest saved after round 1 becomes the
	base of the running VM, which then goes on from round 1 (round 2 next, its
	pages holding 1: anything else prints LOST); a plain reset later returns
	there again; an image of another size is refused with the VM unchanged."""
	import sys
	sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
	from vm_cases import dirty_key
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		vid = start_vm(vm, "dirty", mem="8M", args="pages=80,511,512,2047")
		seen_after(vm, 0, rf"\[vm{vid}\] dirty: ready", 60, "the dirty guest")
		dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round 1 wrote 4 pages")
		vm.cmd_ok(f"snap save {vid} r1", timeout=60)
		dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round 2 wrote 4 pages")
		dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round 3 wrote 4 pages")
		out = vm.cmd_ok(f"snap reset {vid} r1", timeout=60)
		expect(vm, r"reset base read from 'r1'", out, "the base from the image")
		for _ in range(2):
			dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round 2 wrote 4 pages")
			dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round 3 wrote 4 pages")
			out = vm.cmd_ok(f"snap reset {vid}")
			expect(vm, r"reset to its base: \d+ pages copied back", out, "a reset")
		other = start_vm(vm, "dirty", mem="16M", args="pages=80")
		out = vm.cmd(f"snap reset {other} r1", timeout=60)
		expect(vm, r"holds 8192 KiB of RAM in 1 regions and 1 vCPUs;\s+vm \d+ has 16384 KiB",
		       out, "the refusal of an image of another size")
		out = vm.cmd(f"snap reset {vid} nosuch")
		expect(vm, r"no snapshot 'nosuch'", out, "the refusal of a missing image")
		dirty_key(vm, vid, "q", rf"\[vm{vid}\] dirty: bye")
		if "LOST" in strip_ansi(vm.seen):
			vm.fail("the dirty guest lost a value it wrote")

# ---- Bochs, VT-x, ATA ---------------------------------------------------------------
@timeout(600)
def test_bochs_vtx_ata():
	need_file(ISO, "make iso builds it")
	if not have_tool("bochs-bin") and not have_tool("bochs"):
		skip("Bochs is not installed")
	disk = make_disk(64 << 20)
	with boot_bochs(iso=ISO, disk=disk) as vm:
		vm.wait_prompt(timeout=120)
		out = vm.cmd_ok("disk list")
		expect(vm, r"\bata", out, "the ATA disk")
		save_restore_cycle(vm, "8M", 1000000, 200)


# ---- across vendors: the image holds architectural state, not a VMCS or VMCB ----------
def _save_counter_on(boot, disk, name):
	"""Runs an SSE-checking counter, saves it paused; returns the last count."""
	with boot(disk) as vm:
		vm.wait_prompt(timeout=120)
		ct = start_vm(vm, "counter", args="every=2000000 sse=7")
		seen_after(vm, 0, rf"\[vm{ct}\] count=3\b", 120, "the counter at 3")
		n = pause_counter(vm, ct)
		vm.cmd_ok(f"snap save {ct} {name}", timeout=120)
	return n


def _restore_counter_on(boot, disk, name, n):
	"""Restores the counter on the other backend: it must go on at n + 1 with
	its XMM registers intact (the guest checks them at every step)."""
	with boot(disk) as vm:
		vm.wait_prompt(timeout=120)
		vid = restore(vm, name)
		start = len(vm.seen)
		resume_and_expect_count(vm, vid, n + 1)
		seen_after(vm, start, rf"\[vm{vid}\] count={n + 2}\b", 60, f"count={n + 2}")
		if "CORRUPTED" in vm.seen[start:]:
			vm.fail("the guest's XMM registers did not survive the move between vendors")


def _qemu(disk):
	return boot_qemu(disks=[("virtio", disk)])


def _bochs_vtx(disk):
	return boot_bochs(iso=ISO, disk=disk)


@timeout(300)
def test_cross_vendor_vtx_to_amdv():
	need_file(ISO, "make iso builds it")
	disk = make_disk(64 << 20)
	n = _save_counter_on(_bochs_vtx, disk, "from-vtx")
	_restore_counter_on(_qemu, disk, "from-vtx", n)


@timeout(300)
def test_cross_vendor_amdv_to_vtx():
	need_file(ISO, "make iso builds it")
	disk = make_disk(64 << 20)
	n = _save_counter_on(_qemu, disk, "from-amdv")
	_restore_counter_on(_bochs_vtx, disk, "from-amdv", n)
