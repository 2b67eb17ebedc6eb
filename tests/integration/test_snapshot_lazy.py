# Lazy restore (`snap restore NAME --lazy`, snapshot/lazy.c, vmm/pager.c):
# memtest restored lazily verifies its memory while the pages arrive and
# after they all have; `vm list` and `vm info` show how far the fill is; a
# save of a VM still being filled reads the rest first; the image it reads
# cannot be deleted meanwhile; one paused at once goes on filling and
# resumes; a damaged page stops only that VM, named, while a counter beside
# it runs on, as it does when a read fails mid-way (QEMU blkdebug); a VM
# killed mid-fill gives every page back (`mem`). On QEMU
# (AMD-V: 64 MiB on virtio-blk, 256 MiB on NVMe) and Bochs icelake (VT-x).
import os
import re
import sys

from harness import boot_bochs, boot_qemu, have_tool, make_disk, need_file, skip, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_snapshot import (ISO, expect, flip_bit, free_memory, memtest_passes, parse_image, seen_after,
			   snapshot_base, start_vm)  # noqa: E402

LAZY_RE = re.compile(r"restored '\S+' lazily as VM (\d+) in \d+ us, \w+\r?\n(?:.*\n)*?  read: +metadata "
		     r"checked, (\d+) bytes read in \d+ commands; its (\d+)\s+pages arrive")


def restore_lazy(vm, name, image_size):
	"""snap restore --lazy; returns the new VM's id. The metadata is all it
	may read before the guest runs: far less than the image."""
	out = vm.cmd_ok(f"snap restore {name} --lazy", timeout=120)
	m = LAZY_RE.search(out)
	if not m:
		vm.fail(f"no lazy summary line in the output of 'snap restore {name} --lazy':\n{out}")
	nread = int(m.group(2))
	if nread * 20 > image_size:
		vm.fail(f"the lazy restore of '{name}' read {nread} bytes of a {image_size}-byte "
			f"image before the guest ran; it should read the metadata only")
	return int(m.group(1))


def save_memtest(vm, mem, names):
	mt = start_vm(vm, "memtest", mem=mem)
	memtest_passes(vm, mt, 0, 1, 240)
	for name in names:   # saved running: a lazy restore runs it at once
		vm.cmd_ok(f"snap save {mt} {name}", timeout=240)
	sizes = {name: snapshot_base(vm, name) for name in names}
	vm.cmd_ok(f"vm kill {mt}")
	return sizes


def lazy_cycle(vm, mem):
	"""memtest of `mem` saved, restored lazily: it verifies as its pages come
	and once resident; a save mid-fill reads the rest first."""
	bases = save_memtest(vm, mem, ["mt"])
	before = free_memory(vm)
	start = len(vm.seen)
	mt = restore_lazy(vm, "mt", bases["mt"][1])
	out = vm.cmd_ok("vm list")
	expect(vm, rf"^{mt}\s+memtest\s+running\b", out, "the lazily restored memtest, running")
	out = vm.cmd_ok(f"vm info {mt}")
	expect(vm, r"^memory: (\d+% resident \(\d+ of \d+ pages\)|resident after) .*snapshot 'mt'",
	       out, "how far the fill is")
	# The guest verifies while its pages arrive, then after they all have.
	memtest_passes(vm, mt, start, 1, 240)
	seen_after(vm, start, rf"\[vm{mt}\] memory resident: \d+ pages from snapshot 'mt'", 240,
		   "the fill to complete")
	memtest_passes(vm, mt, len(vm.seen), 1, 240)
	out = vm.cmd_ok(f"vm info {mt}")
	expect(vm, r"^memory: resident after \d+ ms", out, "the fill complete in vm info")
	vm.cmd_ok(f"vm kill {mt}")
	if free_memory(vm) != before:
		vm.fail(f"memory after the lazy VM was killed: {free_memory(vm)}, before: {before}")
	# The image it reads cannot be deleted meanwhile; a save while it is
	# still being filled reads the rest first.
	start = len(vm.seen)
	mt = restore_lazy(vm, "mt", bases["mt"][1])
	out = vm.cmd("snap delete mt")
	if not re.search(rf"snap delete: VM {mt} still reads its memory from 'mt'", out) and \
	   not re.search(rf"\[vm{mt}\] memory resident", vm.seen[start:]):
		vm.fail(f"'snap delete' of the image VM {mt} is still filled from:\n{out}")
	out = vm.cmd_ok(f"snap save {mt} again", timeout=240)
	expect(vm, r"saved VM \d+ as 'again'", out, "the save of a VM restored lazily")
	start = len(vm.seen)
	memtest_passes(vm, mt, start, 1, 240)
	vm.cmd_ok(f"vm kill {mt}")
	vm.cmd_ok("snap verify again", timeout=240, expect=r"intact")
	# Paused at once (both lines together): the fill goes on while it is
	# paused, and it resumes verifying. From 'again': 'mt' is gone when its
	# fill was done before the delete above came.
	start = len(vm.seen)
	vid = mt
	vm.send(f"snap restore again --lazy\rvm pause {vid}\r")
	vm.wait_for(rf"vm {vid} paused", 120)
	vm.wait_prompt()
	if not re.search(rf"restored 'again' lazily as VM {vid} ", vm.seen[start:]):
		vm.fail(f"'again' was not restored as VM {vid}:\n{vm.seen[start:]}")
	seen_after(vm, start, rf"\[vm{vid}\] memory resident", 240, "the fill of the paused VM")
	out = vm.cmd_ok(f"vm info {vid}")
	expect(vm, rf"^vm {vid}: memtest, paused", out, "the VM still paused")
	vm.cmd_ok(f"vm resume {vid}")
	memtest_passes(vm, vid, len(vm.seen), 1, 240)
	vm.cmd_ok(f"vm kill {vid}")
	return bases


@timeout(600)
def test_lazy_memtest_qemu():
	"""64 MiB memtest on QEMU TCG (AMD-V, virtio-blk)."""
	disk = make_disk(256 << 20)
	with boot_qemu(disks=[("virtio", disk)], mem="512M", name="qemu-lazy") as vm:
		vm.wait_prompt()
		lazy_cycle(vm, "64M")


@timeout(900)
def test_lazy_memtest_qemu_256():
	"""256 MiB memtest on QEMU TCG (AMD-V, NVMe)."""
	disk = make_disk(1024 << 20)
	with boot_qemu(disks=[("nvme", disk)], mem="1G", name="qemu-lazy-256") as vm:
		vm.wait_prompt()
		lazy_cycle(vm, "256M")


@timeout(600)
def test_lazy_damage_and_kill():
	"""A flipped bit in a stored page: the lazily restored VM stops when
	that page is needed, the damaged pages named, and a counter beside it
	runs on; a VM killed mid-fill gives all its memory back."""
	disk = make_disk(256 << 20)
	with boot_qemu(disks=[("virtio", disk)], mem="512M", name="qemu-lazy-save") as vm:
		vm.wait_prompt()
		bases = save_memtest(vm, "32M", ["bad", "good"])
	base, size = bases["bad"]
	img = parse_image(disk, base)
	end = next(s for s in img["sections"] if s["type"] == 0xFFFF)
	damaged = end["pos"] - 40 * 4096 + 1000   # a stored page near the end
	flip_bit(disk, base + damaged, 5)
	with boot_qemu(disks=[("virtio", disk)], mem="512M", name="qemu-lazy-restore") as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		seen_after(vm, 0, rf"\[vm{ct}\] count=1\b", 120, "the counter's first count")
		start = len(vm.seen)
		mt = restore_lazy(vm, "bad", size)
		m = seen_after(vm, start,
			       rf"\[vm{mt}\] stopped: lazy restore of 'bad': stored pages \d+-\d+ "
			       r"at guest-physical 0x[0-9a-f]+-0x[0-9a-f]+ \(image bytes "
			       r"0x([0-9a-f]+)-0x([0-9a-f]+)\) fail their CRC32C", 240,
			       "the damaged page to stop the VM")
		if not int(m.group(1), 16) <= damaged <= int(m.group(2), 16):
			vm.fail(f"the report names image bytes {m.group(1)}-{m.group(2)}, the flip is "
				f"at {damaged:#x}")
		if re.search(rf"\[vm{mt}\] memtest: CORRUPTION", vm.seen[start:]):
			vm.fail("the guest saw the damaged page")
		out = vm.cmd_ok("vm list")
		expect(vm, rf"^{mt}\s+memtest\s+stopped", out, "the damaged VM stopped")
		expect(vm, rf"^{ct}\s+counter\s+running", out, "the counter still running")
		n = len(re.findall(rf"\[vm{ct}\] count=", vm.seen))
		seen_after(vm, len(vm.seen) - 100, rf"\[vm{ct}\] count={n + 1}\b", 120,
			   "the counter counting on")
		out = vm.cmd(f"snap save {mt} x", timeout=60)
		expect(vm, r"lost part of its memory", out, "a save of the damaged VM refused")
		vm.cmd_ok(f"vm kill {mt}")
		# Killed mid-fill: every page back.
		before = free_memory(vm)
		# Both lines at once: the shell reads the kill before its next idle
		# turn, so the VM (the lowest free id, ct + 1) dies with 0% resident.
		start = len(vm.seen)
		vid = ct + 1
		vm.send(f"snap restore good --lazy\rvm kill {vid}\r")
		vm.wait_for(rf"killed vm {vid}", 120)
		vm.wait_prompt()
		if not re.search(rf"restored 'good' lazily as VM {vid} ", vm.seen[start:]):
			vm.fail(f"'good' was not restored as VM {vid}:\n{vm.seen[start:]}")
		if re.search(rf"\[vm{vid}\] memory resident", vm.seen[start:]):
			vm.fail("the fill completed before the kill: nothing was killed mid-fill")
		if free_memory(vm) != before:
			vm.fail(f"memory after killing VM {vid} mid-fill: {free_memory(vm)}, "
				f"before: {before}")


@timeout(600)
def test_lazy_bochs_vtx():
	"""The same on VT-x (Bochs icelake, ATA): a 16 MiB memtest restored
	lazily verifies while its pages arrive and once resident."""
	need_file(ISO, "make iso builds it")
	if not have_tool("bochs-bin") and not have_tool("bochs"):
		skip("Bochs is not installed")
	disk = make_disk(64 << 20)
	with boot_bochs(iso=ISO, disk=disk) as vm:
		vm.wait_prompt(timeout=120)
		bases = save_memtest(vm, "16M", ["mt"])
		start = len(vm.seen)
		mt = restore_lazy(vm, "mt", bases["mt"][1])
		out = vm.cmd_ok(f"vm info {mt}")
		expect(vm, r"^memory: (\d+% resident|resident after)", out, "how far the fill is")
		memtest_passes(vm, mt, start, 1, 300)
		seen_after(vm, start, rf"\[vm{mt}\] memory resident: \d+ pages", 300,
			   "the fill to complete")
		memtest_passes(vm, mt, len(vm.seen), 1, 300)
		vm.cmd_ok(f"vm kill {mt}")


@timeout(600)
def test_lazy_disk_error():
	"""A read that fails in the middle of the page data (QEMU blkdebug):
	the lazily restored VM stops with the pages and the disk's error named,
	a counter beside it runs on, and killing it gives every page back."""
	from test_diskfail import faulty_boot, rule
	disk = make_disk(128 << 20)
	with faulty_boot("virtio", disk, "", "qemu-lazy-ioerr-save") as vm:
		vm.wait_prompt()
		bases = save_memtest(vm, "32M", ["mt"])
	base, size = bases["mt"]
	img = parse_image(disk, base)
	pages = next(s for s in img["sections"] if s["type"] == 5)
	sector = (base + pages["pos"] + pages["length"] // 2) // 512   # mid page data
	with faulty_boot("virtio", disk, rule("read_aio", sector=sector, once=False),
			 "qemu-lazy-ioerr") as vm:
		vm.wait_prompt()
		ct = start_vm(vm, "counter", args="every=20000000")
		seen_after(vm, 0, rf"\[vm{ct}\] count=1\b", 120, "the counter's first count")
		before = free_memory(vm)
		start = len(vm.seen)
		mt = restore_lazy(vm, "mt", size)
		m = seen_after(vm, start,
			       rf"\[vm{mt}\] stopped: lazy restore of 'mt': reading guest-physical "
			       r"0x[0-9a-f]+-0x[0-9a-f]+ \(image bytes 0x([0-9a-f]+)-0x([0-9a-f]+)\) "
			       r"failed", 240, "the failed read to stop the VM")
		if not int(m.group(1), 16) <= sector * 512 - base <= int(m.group(2), 16):
			vm.fail(f"the report names image bytes {m.group(1)}-{m.group(2)}, the bad "
				f"sector is at image byte {sector * 512 - base:#x}")
		out = vm.cmd_ok("vm list")
		expect(vm, rf"^{mt}\s+memtest\s+stopped", out, "the VM stopped")
		expect(vm, rf"^{ct}\s+counter\s+running", out, "the counter still running")
		vm.cmd_ok(f"vm kill {mt}")
		if free_memory(vm) != before:
			vm.fail(f"memory after the failed VM was killed: {free_memory(vm)}, "
				f"before: {before}")
