# Storage drivers end to end: Amber drives virtio-blk (transitional and
# modern-only), NVMe (two namespaces; PRP lists, chained ones too) and IDE under
# QEMU, and an ATA disk under Bochs. For each disk the test checks on the host,
# byte for byte in the image file, what Amber wrote, and checks that Amber reads
# what the host put there; plus read-only disks, reads past the end, and a disk
# that stops answering (a QEMU blkdebug breakpoint holds its requests: the
# "device that never answers"), which must time out with a message, leave the
# shell alive, and work again after the driver's reset once QEMU lets go.
import os
import random
import re
import socket
import time

from harness import BUILD, boot_bochs, boot_qemu, crc32c, make_disk, need_file, timeout, work_dir

SECTOR = 512
MIB = 1 << 20
RANDOM_LBA, RANDOM_COUNT = 5000, 1024   # host-written random data Amber sums
MARK_LBA = 7                            # host-written marker Amber dumps


# ---- host-side helpers ------------------------------------------------------
def word_pattern(word, lba, count):
	"""What `disk write N LBA WORD COUNT` puts on the disk (docs/storage.md)."""
	out = bytearray()
	for s in range(lba, lba + count):
		unit = f"{word}@{s}\n".encode()
		out += (unit * (SECTOR // len(unit) + 1))[:SECTOR]
	return bytes(out)


def host_read(path, lba, count):
	with open(path, "rb") as f:
		f.seek(lba * SECTOR)
		return f.read(count * SECTOR)


def host_write(path, lba, data):
	with open(path, "r+b") as f:
		f.seek(lba * SECTOR)
		f.write(data)


def hexdump_line(offset, chunk):
	"""One line of `disk read`, formatted like the kernel prints it."""
	hexpart = "".join(f"{b:02x} " + (" " if i == 7 else "") for i, b in enumerate(chunk))
	asc = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
	return f"{offset:08x}  {hexpart} |{asc}|"


def prepared_disk(name, size=64 * MIB):
	"""An image with a marker sector and a block of random data from the host.
	Returns (path, marker bytes, random bytes)."""
	path = make_disk(size, name)
	marker = (f"HOST-WROTE-THIS-FOR-{name}!".encode() * 40)[:SECTOR]
	rnd = random.Random(name).randbytes(RANDOM_COUNT * SECTOR)
	host_write(path, MARK_LBA, marker)
	host_write(path, RANDOM_LBA, rnd)
	return path, marker, rnd


# ---- the QEMU monitor (HMP on a Unix socket) ---------------------------------
class Monitor:
	def __init__(self, path, wait=10):
		self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		deadline = time.monotonic() + wait
		while True:
			try:
				self.sock.connect(path)
				break
			except OSError:
				if time.monotonic() > deadline:
					raise AssertionError(f"QEMU monitor socket {path} did not open")
				time.sleep(0.1)
		self._read_prompt()

	def _read_prompt(self, wait=10):
		buf = b""
		self.sock.settimeout(wait)
		while not buf.rstrip().endswith(b"(qemu)"):
			data = self.sock.recv(4096)
			if not data:
				break
			buf += data
		return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", buf.decode("latin-1"))

	def cmd(self, line):
		self.sock.sendall(line.encode() + b"\n")
		return self._read_prompt()

	def close(self):
		self.sock.close()


def qemu_with(extra, monitor=False):
	"""QEMU (-kernel, TCG) with these -drive/-device arguments; a monitor
	socket when asked. Returns (vm, monitor or None) with the prompt reached."""
	mon_path = None
	extra = list(extra)
	if monitor:
		mon_path = os.path.join(work_dir(), "mon.sock")
		extra += ["-monitor", f"unix:{mon_path},server=on,wait=off"]
	vm = boot_qemu(extra=extra, name="qemu-disk")
	try:
		vm.boot_text = vm.wait_prompt(timeout=30)
		mon = Monitor(mon_path) if monitor else None
	except BaseException:
		vm.stop()
		raise
	return vm, mon


def expect(vm, regex, text, what):
	if not re.search(regex, text, re.M):
		vm.fail(f"expected {what} (/{regex}/) in:\n{text.rstrip()}")


def check_rw(vm, name, path, marker, rnd, big_commands=None):
	"""The read/write checks every disk passes. big_commands: how many device
	commands the 512 KiB write plus its flush may take, when that is known."""
	# The host's data, as Amber sees it.
	out = vm.cmd_ok(f"disk read {name} {MARK_LBA}")
	want = hexdump_line(MARK_LBA * SECTOR, marker[:16])
	if want not in out:
		vm.fail(f"{name}: expected the host's marker line\n  {want}\nin:\n{out}")
	out = vm.cmd_ok(f"disk sum {name} {RANDOM_LBA} {RANDOM_COUNT}", timeout=60)
	expect(vm, rf"crc32c 0x{crc32c(rnd):08x}\b", out,
	       f"the crc32c of the host's {RANDOM_COUNT} random sectors")

	# Amber's writes, as the host sees them.
	out = vm.cmd_ok(f"disk write {name} 20 amber 3")
	expect(vm, r"wrote 3 sectors at LBA 20", out, "the write report")
	if host_read(path, 20, 3) != word_pattern("amber", 20, 3):
		vm.fail(f"{name}: the image does not hold the 3 sectors Amber wrote at LBA 20")
	if host_read(path, 19, 1) != bytes(SECTOR) or host_read(path, 23, 1) != bytes(SECTOR):
		vm.fail(f"{name}: the write at LBA 20..22 touched a neighbouring sector")

	# 512 KiB in one request: crosses pages (and NVMe PRP list entries).
	out = vm.cmd_ok(f"disk write {name} 1000 0xA5 1024", timeout=60)
	m = re.search(r"wrote 1024 sectors at LBA 1000 .*\((\d+) commands", out)
	if not m:
		vm.fail(f"{name}: expected the report of the 1024-sector write in:\n{out}")
	if big_commands is not None and int(m.group(1)) != big_commands:
		vm.fail(f"{name}: the 512 KiB write took {m.group(1)} commands, expected {big_commands}")
	if host_read(path, 1000, 1024) != b"\xa5" * (1024 * SECTOR):
		vm.fail(f"{name}: the image does not hold 1024 sectors of 0xA5 at LBA 1000")
	if host_read(path, 999, 1) != bytes(SECTOR) or host_read(path, 2024, 1) != bytes(SECTOR):
		vm.fail(f"{name}: the 1024-sector write spilled over its range")
	# Every sector stamped with its LBA: a misplaced sector would show.
	vm.cmd_ok(f"disk write {name} 3001 big 1100", timeout=60)
	if host_read(path, 3001, 1100) != word_pattern("big", 3001, 1100):
		vm.fail(f"{name}: the image does not hold the LBA-stamped sectors 3001..4100")
	out = vm.cmd_ok(f"disk sum {name} 3001 1100", timeout=60)
	expect(vm, rf"crc32c 0x{crc32c(word_pattern('big', 3001, 1100)):08x}\b", out,
	       "Amber reading back its own stamped sectors")


def check_limits(vm, name, sectors):
	"""Reads past the end fail with a clear message; the last sector reads."""
	vm.cmd_ok(f"disk read {name} {sectors - 1}")
	out = vm.cmd(f"disk read {name} {sectors - 1} 2")
	expect(vm, r"goes past the end of " + name, out, "a past-the-end error")
	out = vm.cmd(f"disk write {name} {sectors} 1")
	expect(vm, r"goes past the end of " + name, out, "a past-the-end error for a write")


# ---- the tests --------------------------------------------------------------
def test_virtio_transitional():
	path, marker, rnd = prepared_disk("legacy.img")
	extra = ["-drive", f"file={path},if=none,id=d0,format=raw",
		 "-device", "virtio-blk-pci,drive=d0,serial=AMBERVBLK0"]
	vm, _ = qemu_with(extra)
	with vm:
		out = vm.cmd_ok("disk list")
		expect(vm, r"^\s+0\s+vblk0\s+virtio-blk\s+64 MiB\s+512\s+virtio-blk legacy 1af4:1001", out,
		       "vblk0 as a legacy 1af4:1001 disk of 64 MiB")
		out = vm.cmd_ok("disk info vblk0")
		expect(vm, r"transport:\s+virtio-pci legacy", out, "the legacy transport")
		expect(vm, r"serial:\s+AMBERVBLK0", out, "the serial from VIRTIO_BLK_T_GET_ID")
		check_rw(vm, "vblk0", path, marker, rnd, big_commands=2)
		check_limits(vm, "vblk0", 64 * MIB // SECTOR)


def test_virtio_modern():
	path, marker, rnd = prepared_disk("modern.img", 32 * MIB)
	extra = ["-drive", f"file={path},if=none,id=d0,format=raw",
		 "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
	vm, _ = qemu_with(extra)
	with vm:
		out = vm.cmd_ok("disk info 0")
		expect(vm, r"model:\s+virtio-blk modern 1af4:1042", out, "a modern 1af4:1042 disk")
		expect(vm, r"transport:\s+virtio-pci modern \(capabilities\)", out,
		       "the capability transport")
		expect(vm, r"capacity:\s+32 MiB, 65536 sectors", out, "the capacity")
		check_rw(vm, "vblk0", path, marker, rnd, big_commands=2)
		check_limits(vm, "vblk0", 32 * MIB // SECTOR)


def test_virtio_readonly():
	path, marker, _ = prepared_disk("ro.img", 16 * MIB)
	before = host_read(path, 0, 64)
	extra = ["-drive", f"file={path},if=none,id=d0,format=raw,readonly=on",
		 "-device", "virtio-blk-pci,drive=d0"]
	vm, _ = qemu_with(extra)
	with vm:
		out = vm.cmd_ok("disk list")
		expect(vm, r"vblk0 .*\[read-only\]", out, "vblk0 marked read-only (VIRTIO_BLK_F_RO)")
		out = vm.cmd("disk write vblk0 0 0x11 4")
		expect(vm, r"write refused: vblk0 is read-only", out, "a clear read-only error")
		out = vm.cmd("disk bench vblk0 1M --force")
		expect(vm, r"read-only", out, "bench refusing a read-only disk")
		vm.cmd_ok(f"disk read vblk0 {MARK_LBA}", expect=r"HOST-WROTE")
	if host_read(path, 0, 64) != before:
		raise AssertionError("the read-only image changed")


def test_nvme_error_status_by_name():
	# QEMU 7.2 does not mark a namespace on a read-only drive write-protected
	# (NSATTR), so Amber registers it writable; the controller then fails the
	# Write, and the completion status must come back by name.
	path, marker, _ = prepared_disk("nvme-ro.img", 16 * MIB)
	extra = ["-drive", f"file={path},if=none,id=d0,format=raw,readonly=on",
		 "-device", "nvme,serial=ro,drive=d0"]
	vm, _ = qemu_with(extra)
	with vm:
		out = vm.cmd("disk write nvme0n1 3 0x42")
		# (an error wraps at 80 columns: any space may be a line break)
		expect(vm, r"^error: disk write: nvme0n1: write of 1 block at LBA 3 failed: [A-Z][A-Za-z\s]+"
		       r"\s+\(SCT\s+\d\s+SC\s+0x[0-9a-f]{2}\)", out, "the NVMe status by name")
		out = vm.cmd_ok(f"disk read nvme0n1 {MARK_LBA}", expect=r"HOST-WROTE")
	if host_read(path, 3, 1) != bytes(SECTOR):
		raise AssertionError("the read-only NVMe image changed")


def test_snapshot_disk_needs_force():
	path, marker, _ = prepared_disk("snapdisk.img", 64 * MIB)
	vm, _ = qemu_with(["-drive", f"file={path},if=none,id=d0,format=raw",
			   "-device", "virtio-blk-pci,drive=d0"])
	with vm:
		vm.cmd_ok("snap format 0 --force", timeout=60)
		before = host_read(path, 0, 8)
		out = vm.cmd("disk write 0 0 0x33 8")
		expect(vm, r"^error: disk write: vblk0 holds snapshots that this would destroy; "
		       r"add --force", out, "a refusal naming --force")
		if host_read(path, 0, 8) != before:
			vm.fail("the refused write changed the snapshot disk")
		vm.cmd_ok("disk write 0 60000 0x33 8 --force", expect=r"wrote 8 sectors at LBA 60000")
		if host_read(path, 60000, 8) != b"\x33" * (8 * SECTOR):
			vm.fail("the forced write did not reach the image")
		out = vm.cmd("disk bench 0 1M")
		expect(vm, r"^error: disk bench: it overwrites the first 1M of vblk0; add --force", out,
		       "bench refusing without --force")


def test_nvme_two_namespaces():
	p1, m1, r1 = prepared_disk("ns1.img", 64 * MIB)
	p2, m2, r2 = prepared_disk("ns2.img", 32 * MIB)
	extra = ["-drive", f"file={p1},if=none,id=d1,format=raw",
		 "-drive", f"file={p2},if=none,id=d2,format=raw",
		 "-device", "nvme,id=nvme0,serial=amber0",
		 "-device", "nvme-ns,drive=d1,bus=nvme0,nsid=1",
		 "-device", "nvme-ns,drive=d2,bus=nvme0,nsid=2"]
	vm, _ = qemu_with(extra)
	with vm:
		out = vm.cmd_ok("disk list")
		expect(vm, r"nvme0n1\s+nvme\s+64 MiB\s+512", out, "namespace 1 (64 MiB)")
		expect(vm, r"nvme0n2\s+nvme\s+32 MiB\s+512", out, "namespace 2 (32 MiB)")
		out = vm.cmd_ok("disk info nvme0n2")
		expect(vm, r"serial:\s+amber0", out, "the controller's serial")
		expect(vm, r"MDTS 7 \(512 KiB per command\)", out, "QEMU's default MDTS")
		# 512 KiB = MDTS: one Write with a 127-entry PRP list, plus the flush.
		check_rw(vm, "nvme0n1", p1, m1, r1, big_commands=2)
		check_rw(vm, "nvme0n2", p2, m2, r2, big_commands=2)
		# Each namespace got only its own writes.
		if host_read(p2, 20, 3) != word_pattern("amber", 20, 3) or \
		   host_read(p1, 3001, 1) != word_pattern("big", 3001, 1):
			vm.fail("namespace images do not hold what was written to each")
		check_limits(vm, "nvme0n2", 32 * MIB // SECTOR)


def test_nvme_chained_prp_list():
	path, marker, rnd = prepared_disk("chain.img", 64 * MIB)
	# mdts=0: no controller limit, so Amber's own 4 MiB applies: one command
	# of 1024 pages, whose 1023 PRP entries need two chained list pages.
	extra = ["-drive", f"file={path},if=none,id=d0,format=raw",
		 "-device", "nvme,serial=amberchain,drive=d0,mdts=0"]
	vm, _ = qemu_with(extra)
	with vm:
		out = vm.cmd_ok("disk info nvme0n1")
		expect(vm, r"MDTS 0 \(4096 KiB per command\)", out, "a 4 MiB command limit")
		out = vm.cmd_ok("disk write nvme0n1 10000 chain 8192", timeout=60)
		expect(vm, r"wrote 8192 sectors at LBA 10000 .*\(2 commands", out,
		       "4 MiB written by one command (plus the flush)")
		if host_read(path, 10000, 8192) != word_pattern("chain", 10000, 8192):
			vm.fail("the image does not hold the 4 MiB Amber wrote with a chained PRP list")
		out = vm.cmd_ok("disk sum nvme0n1 10000 8192", timeout=60)
		expect(vm, rf"crc32c 0x{crc32c(word_pattern('chain', 10000, 8192)):08x}\b", out,
		       "the 4 MiB read back through a chained PRP list")
		check_rw(vm, "nvme0n1", path, marker, rnd, big_commands=2)


def test_ide_qemu():
	path, marker, rnd = prepared_disk("ide.img", 32 * MIB)
	vm, _ = qemu_with(["-drive", f"file={path},format=raw,if=ide"])
	with vm:
		out = vm.cmd_ok("disk info ata0")
		expect(vm, r"model:\s+QEMU HARDDISK", out, "QEMU's IDE disk")
		expect(vm, r"position:\s+primary master", out, "the primary master")
		check_rw(vm, "ata0", path, marker, rnd)
		check_limits(vm, "ata0", 32 * MIB // SECTOR)


def _hang_and_recover(vm, mon, drive_id, name, marker, event="read_aio"):
	"""Makes the disk stop answering, expects a timeout message within a few
	seconds with the shell still alive, then lets QEMU go and expects the
	driver to reset the device and read correctly again."""
	vm.cmd_ok(f"disk timeout {name} 1", expect=r"1000 ms")
	mon.cmd(f'qemu-io {drive_id} "break {event} hang"')
	start = time.monotonic()
	op = f"disk read {name} 0" if event == "read_aio" else f"disk write {name} 0 0x77"
	out = vm.cmd(op, timeout=20)
	took = time.monotonic() - start
	expect(vm, rf"{name}: .*timed out after \d+ ms", out, "a timeout message")
	if took > 15:
		vm.fail(f"the timeout took {took:.1f} s for a 1 s limit")
	vm.cmd_ok("disk list", expect=name)                 # the shell is alive
	out = vm.cmd_ok(f"disk info {name}")
	expect(vm, r"last error: .*timed out", out, "the timeout kept as the last error")
	resumed = mon.cmd(f'qemu-io {drive_id} "resume hang"')
	if "Could not resume" in resumed:
		vm.fail(f"QEMU held no request at the breakpoint: {resumed}")
	time.sleep(0.5)
	out = vm.cmd_ok(f"disk read {name} {MARK_LBA}")
	expect(vm, r"reset after", out, "the driver resetting the device first")
	want = hexdump_line(MARK_LBA * SECTOR, marker[:16])
	if want not in out:
		vm.fail(f"{name}: after the reset, expected the marker line\n  {want}\nin:\n{out}")


def _hang_vm(device_args, name, kind_if=None):
	path, marker, _ = prepared_disk(f"hang-{name}.img", 16 * MIB)
	drive = f"file=blkdebug::{path},format=raw,id=d0"
	if kind_if:
		extra = ["-drive", drive + f",if={kind_if}"]
	else:
		extra = ["-drive", drive + ",if=none", "-device", device_args]
	vm, mon = qemu_with(extra, monitor=True)
	return vm, mon, marker


@timeout(90)
def test_timeout_virtio():
	vm, mon, marker = _hang_vm("virtio-blk-pci,drive=d0", "vblk0")
	with vm:
		_hang_and_recover(vm, mon, "d0", "vblk0", marker)
		mon.close()


@timeout(90)
def test_timeout_virtio_modern_write():
	vm, mon, marker = _hang_vm("virtio-blk-pci,drive=d0,disable-legacy=on", "vblk0")
	with vm:
		_hang_and_recover(vm, mon, "d0", "vblk0", marker, event="write_aio")
		mon.close()


@timeout(90)
def test_timeout_nvme():
	vm, mon, marker = _hang_vm("nvme,drive=d0,serial=hang", "nvme0n1")
	with vm:
		_hang_and_recover(vm, mon, "d0", "nvme0n1", marker)
		mon.close()


@timeout(90)
def test_timeout_ide():
	vm, mon, marker = _hang_vm(None, "ata0", kind_if="ide")
	with vm:
		_hang_and_recover(vm, mon, "d0", "ata0", marker)
		mon.close()


@timeout(240)
def test_bochs_ata():
	iso = os.path.join(BUILD, "amber.iso")
	need_file(iso, "make iso builds it")
	path, marker, rnd = prepared_disk("bochs.img", 16 * MIB)
	with boot_bochs(iso=iso, disk=path) as vm:
		vm.wait_prompt(timeout=120)
		out = vm.cmd_ok("disk list")
		expect(vm, r"^\s+0\s+ata0\s+ata\s+16 MiB\s+512", out, "Bochs' ata1-master as ata0")
		out = vm.cmd_ok("disk info ata0")
		expect(vm, r"position:\s+secondary master", out, "the secondary master")
		check_rw(vm, "ata0", path, marker, rnd)
		check_limits(vm, "ata0", 16 * MIB // SECTOR)
