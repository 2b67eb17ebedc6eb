# Incremental snapshots end to end on QEMU TCG with AMD-V: the dirty guest
# (tests/guests/dirty.asm, which checks that each of its pages still holds the
# round it wrote last) saved as a full image, then children with --parent, each
# holding only the pages changed since its parent (from the dirty log, or by
# comparison when the log does not cover the interval); the VM killed and the
# children restored from their chains, the guest verifying its memory; the tree
# in `snap list`, a chain in `snap verify`, deletes of parents refused; a
# parent that is missing or another image of the same name refused with nothing
# changed; amber-snap reading the chains. The VT-x backend (EPT dirty flags)
# in Bochs with an ATA disk, and a chain begun there finished on AMD-V.
import json
import os
import re
import struct
import subprocess
import sys

from harness import BUILD, boot_bochs, boot_qemu, have_tool, make_disk, need_file, skip, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vm_cases import dirty_key, guest_lines, run  # noqa: E402

AMBER_SNAP = os.path.join(BUILD, "amber-snap")
ISO = os.path.join(BUILD, "amber.iso")
PAGES = (0x50, 0x1FF, 0x200, 0x345, 0x1000, 0x1FFF)   # of the guest's 32 MiB
GUEST = "dirty mem=32M -- pages=" + ",".join(str(p) for p in PAGES)
CHAIN_RE = re.compile(r"restored '(\S+)' as VM (\d+) in \d+ ms.*\n(?:.*\n)*?  image: .*\((\d+) "
		      r"bytes\) in one pass.*\n  chain: +(\d+) images.*\n(?:.*\n)*?  read: .*\((\d+) "
		      r"bytes\) in \d+ commands")
CHILD_RE = re.compile(r"saved VM \d+ as '(\S+)' in .*\n(?:.*\n)*?  parent: +'(\S+)', a chain of "
		      r"(\d+) images now\n\s+(\d+) pages changed, found (in the dirty log|by "
		      r"comparison with the parent)")


def start_dirty(vm):
	vid = run(vm, GUEST)
	vm.wait_for(rf"\[vm{vid}\] dirty: ready, {len(PAGES)} pages", timeout=20)
	return vid


def write_round(vm, vid, rnd):
	"""One key: the guest checks every page holds round rnd-1, writes rnd."""
	dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: (round {rnd} wrote {len(PAGES)} pages|LOST[^\n]*)")
	text = "\n".join(guest_lines(vm, vid))
	if "LOST" in text:
		vm.fail(f"VM {vid} found a page without the value it wrote:\n{text}")


def save_child(vm, vid, name, parent, how):
	out = vm.cmd_ok(f"snap save {vid} {name} --parent {parent}", timeout=120)
	m = CHILD_RE.search(out)
	if not m or m.group(2) != parent or m.group(5) != how:
		vm.fail(f"'snap save {vid} {name} --parent {parent}' should say its pages were found "
			f"'{how}':\n{out}")
	return int(m.group(4))


def image_bytes(vm, name):
	m = re.search(r"byte offset \d+, (\d+) bytes", vm.cmd_ok(f"snap info {name}"))
	if not m:
		vm.fail(f"no size in 'snap info {name}'")
	return int(m.group(1))


def restore_chain(vm, name, images):
	"""snap restore of a child: the chain read once, every byte once."""
	out = vm.cmd_ok(f"snap restore {name}", timeout=120)
	m = CHAIN_RE.search(out)
	if not m or int(m.group(4)) != images:
		vm.fail(f"'snap restore {name}' should restore a chain of {images} images:\n{out}")
	if int(m.group(3)) != int(m.group(5)):
		vm.fail(f"restoring '{name}' read {m.group(5)} bytes for a chain of {m.group(3)}; "
			f"each image byte should be read once")
	return int(m.group(2))


def resume(vm, vid):
	vm.cmd_ok(f"vm resume {vid}")


def refused(vm, line, regex, what):
	out = vm.cmd(line, timeout=60)
	if not re.search(regex, out):
		vm.fail(f"'{line}' should be refused ({what}):\n{out}")
	return out


def names_listed(vm):
	out = vm.cmd_ok("snap list")
	rows = out.split("STATE\n", 1)[1] if "STATE\n" in out else ""  # after the header
	return re.findall(r"(?m)^  (?:\s*`-)?(\S+)", rows), out


@timeout(300)
def test_chain_saved_killed_restored():
	need_file(AMBER_SNAP, "make builds it")
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-incr") as vm:
		vm.wait_prompt()
		vid = start_dirty(vm)
		write_round(vm, vid, 1)
		vm.cmd_ok(f"snap save {vid} base", timeout=120)
		parent, sizes = "base", {}
		for rnd in (2, 3, 4):
			write_round(vm, vid, rnd)
			name = f"c{rnd - 1}"
			changed = save_child(vm, vid, name, parent, "in the dirty log")
			# The six pages, the stack and little else of 8192.
			if not len(PAGES) <= changed <= len(PAGES) + 4:
				vm.fail(f"'{name}' holds {changed} pages; the guest wrote {len(PAGES)}")
			sizes[name] = image_bytes(vm, name)
			parent = name
		for name, size in sizes.items():
			if size > 64 * 1024:
				vm.fail(f"child '{name}' is {size} bytes, more than 64 KiB")

		out = vm.cmd_ok("snap verify c3", timeout=120)
		for name in ("c3", "c2", "c1", "base"):
			if f"snapshot '{name}' is intact" not in out:
				vm.fail(f"'snap verify c3' did not check '{name}':\n{out}")
		if "the chain of 'c3' is intact: 4 images down to the full 'base'" not in out:
			vm.fail(f"'snap verify c3' gave no verdict on the chain:\n{out}")
		listed, out = names_listed(vm)
		if listed != ["base", "c1", "c2", "c3"] or not re.search(r"(?m)^    `-c2 ", out):
			vm.fail(f"'snap list' should show the chain as a tree:\n{out}")
		refused(vm, "snap delete base", r"a snapshot builds on 'base': 'c1';\s+delete it first; 'base' is "
			r"still there", "c1 depends on it")
		refused(vm, "snap delete c2", r"builds on 'c2': 'c3'", "c3 depends on it")
		refused(vm, f"snap save {vid} c2 --replace", r"builds on 'c2': 'c3';\s+delete it first, "
			r"or save under another name; 'c2' is still there", "c3 depends on it")

		vm.cmd_ok(f"vm kill {vid}")
		v3 = restore_chain(vm, "c3", 4)
		resume(vm, v3)
		write_round(vm, v3, 5)
		# Restored from c3: its log counts from c3.
		save_child(vm, v3, "c4", "c3", "in the dirty log")
		v1 = restore_chain(vm, "c1", 2)
		resume(vm, v1)
		write_round(vm, v1, 3)
		# Restored from c1, so the log does not cover the time since base.
		save_child(vm, v1, "cmp", "base", "by comparison with the parent")
		vm.cmd_ok(f"vm kill {v1}")
		vm.cmd_ok(f"vm kill {v3}")
		v = restore_chain(vm, "cmp", 2)
		resume(vm, v)
		write_round(vm, v, 4)
		v = restore_chain(vm, "c4", 5)
		resume(vm, v)
		write_round(vm, v, 6)
		vm.cmd_ok("snap delete c4")

	r = subprocess.run([AMBER_SNAP, "verify", disk, "c3"], capture_output=True, text=True,
			   timeout=60)
	if r.returncode or "chain" not in r.stdout:
		raise AssertionError(f"amber-snap verify of the chain:\n{r.stdout}{r.stderr}")
	r = subprocess.run([AMBER_SNAP, "list", disk], capture_output=True, text=True, timeout=60)
	if r.returncode or not re.search(r"(?m)^\s+`-c1 ", r.stdout):
		raise AssertionError(f"amber-snap list should show the tree:\n{r.stdout}{r.stderr}")
	listing = r.stdout
	# The core of c3 holds the chain's memory: round 4 in every page.
	core = os.path.join(os.path.dirname(disk), "c3.core")
	r = subprocess.run([AMBER_SNAP, "core", disk, "c3", "-o", core], capture_output=True,
			   text=True, timeout=60)
	if r.returncode:
		raise AssertionError(f"amber-snap core of a child:\n{r.stdout}{r.stderr}")
	with open(core, "rb") as f:
		elf = f.read()
	# ELF64, or ELF32 (i386) for a guest in 32-bit code such as this one.
	c32 = elf[4] == 1
	phoff, = struct.unpack_from("<I" if c32 else "<Q", elf, 0x1C if c32 else 0x20)
	phnum, = struct.unpack_from("<H", elf, 0x2C if c32 else 0x38)
	for i in range(phnum):
		if c32:
			ptype, off, vaddr = struct.unpack_from("<III", elf, phoff + 32 * i)
		else:
			ptype, _, off, vaddr = struct.unpack_from("<IIQQ", elf, phoff + 56 * i)
		if ptype == 1 and vaddr == 0:
			for pg in PAGES:
				at = off + pg * 4096 + 8
				got = struct.unpack_from("<I", elf, at)[0] if at + 4 <= len(elf) else 0
				if got != 4:
					raise AssertionError(f"page {pg:#x} of c3's core holds {got}, not 4")
			break
	else:
		raise AssertionError("no PT_LOAD at guest-physical 0 in the core")

	# One bit of c2's last changed page: the restore of c3 reads base and c1
	# into the hidden VM, finds c2 damaged, and leaves nothing behind.
	r = subprocess.run([AMBER_SNAP, "list", disk, "--json"], capture_output=True, text=True,
			   timeout=60)
	c2 = [e for e in json.loads(r.stdout)["snapshots"] if e["name"] == "c2"]
	assert c2, f"no c2 in 'amber-snap list --json':\n{r.stdout}\n{listing}"
	size, base = c2[0]["size"], c2[0]["offset"]
	with open(disk, "r+b") as f:
		pos = 64
		while pos < size:
			f.seek(base + pos)
			stype, _, length = struct.unpack("<IIQ", f.read(16))
			if stype == 0xFFFF:
				break
			pos += 32 + length
		f.seek(base + pos - 100)
		b = f.read(1)[0]
		f.seek(base + pos - 100)
		f.write(bytes([b ^ 0x10]))
	r = subprocess.run([AMBER_SNAP, "verify", disk, "c3"], capture_output=True, text=True,
			   timeout=60)
	if r.returncode != 1 or "c2: damaged" not in r.stdout:
		raise AssertionError(f"amber-snap verify should find c2 damaged:\n{r.stdout}{r.stderr}")
	with boot_qemu(disks=[("virtio", disk)], name="qemu-incr-damaged") as vm:
		vm.wait_prompt()
		free = re.search(r"4 KiB pages: (\d+) free", vm.cmd_ok("mem")).group(1)
		refused(vm, "snap restore c3", r"damaged: memory region 0, stored\s+pages[\s\S]*"
			r"snapshot 'c2' is damaged[^\n]*\n\s*restore refused, no VM created",
			"c2's page damaged")
		if re.search(r"(?m)^\d+\s", vm.cmd_ok("vm list")):
			vm.fail("the refused restore of a chain left a VM behind")
		now = re.search(r"4 KiB pages: (\d+) free", vm.cmd_ok("mem")).group(1)
		if now != free:
			vm.fail(f"the refused restore kept memory: {free} free pages before, {now} after")
		v = restore_chain(vm, "c1", 2)
		resume(vm, v)
		write_round(vm, v, 3)


# ---- the catalog, edited here as a program that knows only the format would ----
def crc32c(data):
	crc = 0xFFFFFFFF
	for b in data:
		crc ^= b
		for _ in range(8):
			crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
	return crc ^ 0xFFFFFFFF


def drop_entry(path, name):
	"""Writes the next catalog generation without `name` (docs/snapshot-format.md
	2.2), as an Amber that knew nothing of chains would delete it."""
	with open(path, "r+b") as f:
		copies = []
		for block in (1, 5):
			f.seek(block * 4096)
			cat = bytearray(f.read(16384))
			ok = cat[:8] == b"AMBERCAT" and struct.unpack_from("<I", cat, 0x3C)[0] == \
				crc32c(bytes(cat[:0x3C]) + b"\0\0\0\0" + bytes(cat[0x40:]))
			copies.append((struct.unpack_from("<Q", cat, 8)[0] if ok else -1, block, cat))
		gen, block, cat = max(copies)
		count = struct.unpack_from("<I", cat, 0x18)[0]
		entries = [bytes(cat[0x40 + 128 * i:0xC0 + 128 * i]) for i in range(count)]
		kept = [e for e in entries if e[:32].rstrip(b"\0").decode() != name]
		assert len(kept) == count - 1, f"no entry '{name}' in the catalog"
		new = bytearray(16384)
		new[:0x40] = cat[:0x40]
		struct.pack_into("<QI", new, 8, gen + 1, 0)
		struct.pack_into("<Q", new, 0x10, struct.unpack_from("<Q", cat, 0x10)[0])
		struct.pack_into("<I", new, 0x18, len(kept))
		for i, e in enumerate(kept):
			new[0x40 + 128 * i:0xC0 + 128 * i] = e
		struct.pack_into("<I", new, 0x3C, 0)
		struct.pack_into("<I", new, 0x3C, crc32c(bytes(new)))
		f.seek((6 - block) * 4096)   # the other copy: 1 <-> 5
		f.write(new)


@timeout(300)
def test_wrong_or_missing_parent_refused():
	need_file(AMBER_SNAP, "make builds it")
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-incr-bad") as vm:
		vm.wait_prompt()
		vid = start_dirty(vm)
		write_round(vm, vid, 1)
		vm.cmd_ok(f"snap save {vid} base", timeout=120)
		write_round(vm, vid, 2)
		save_child(vm, vid, "kid", "base", "in the dirty log")
		before, _ = names_listed(vm)
		refused(vm, f"snap save {vid} x --parent nope",
			r"no snapshot 'nope' on \S+ to be the parent[\s\S]*nothing saved", "no such parent")
		small = run(vm, "dirty mem=16M -- pages=80")
		refused(vm, f"snap save {small} y --parent base",
			r"a child must have its parent's shape; nothing saved", "16 MiB over 32 MiB")
		if names_listed(vm)[0] != before:
			vm.fail("a refused save changed the catalog")

	drop_entry(disk, "base")
	with boot_qemu(disks=[("virtio", disk)], name="qemu-incr-bad2") as vm:
		vm.wait_prompt()
		listed, out = names_listed(vm)
		if not re.search(r"kid \(no parent\)", out):
			vm.fail(f"'snap list' should mark the child whose parent is gone:\n{out}")
		refused(vm, "snap restore kid", r"needs its parent 'base', which is not on this disk\s+"
			r"snap restore: refused, no VM created", "the parent is gone")
		refused(vm, "snap verify kid", r"error: snap verify: the chain of 'kid' is broken", "broken chain")
		if re.search(r"(?m)^\d+\s", vm.cmd_ok("vm list")):
			vm.fail("a refused restore left a VM behind")
		# Another image named 'base': the id and CRC tell it apart.
		vid = start_dirty(vm)
		write_round(vm, vid, 1)
		vm.cmd_ok(f"snap save {vid} base", timeout=120)
		out = refused(vm, "snap restore kid", r"'kid' was saved over another 'base' \(wrong "
			      r"parent\)\s+snap restore: refused, no VM created", "wrong parent")
		out = vm.cmd_ok("vm list")
		if len(re.findall(r"(?m)^\d+\s", out)) != 1:
			vm.fail(f"a refused restore left a VM behind:\n{out}")
	r = subprocess.run([AMBER_SNAP, "verify", disk, "kid"], capture_output=True, text=True,
			   timeout=60)
	if r.returncode != 1 or "wrong parent" not in r.stdout + r.stderr:
		raise AssertionError(f"amber-snap verify should refuse the chain:\n{r.stdout}{r.stderr}")


@timeout(400)
def test_chain_vtx_then_amdv():
	"""A chain saved under VT-x in Bochs (its log from EPT dirty flags),
	restored there, then grown and restored under AMD-V in QEMU."""
	need_file(ISO, "make iso builds it")
	if not have_tool("bochs-bin") and not have_tool("bochs"):
		skip("Bochs is not installed")
	disk = make_disk(64 << 20)
	with boot_bochs(iso=ISO, disk=disk) as vm:
		vm.wait_prompt(timeout=120)
		vid = start_dirty(vm)
		write_round(vm, vid, 1)
		vm.cmd_ok(f"snap save {vid} base", timeout=120)
		write_round(vm, vid, 2)
		save_child(vm, vid, "c1", "base", "in the dirty log")
		write_round(vm, vid, 3)
		save_child(vm, vid, "c2", "c1", "in the dirty log")
		vm.cmd_ok(f"vm kill {vid}")
		v = restore_chain(vm, "c2", 3)
		resume(vm, v)
		write_round(vm, v, 4)
		save_child(vm, v, "c3", "c2", "in the dirty log")
	with boot_qemu(disks=[("virtio", disk)], name="qemu-incr-from-vtx") as vm:
		vm.wait_prompt()
		v = restore_chain(vm, "c3", 4)
		resume(vm, v)
		write_round(vm, v, 5)
		save_child(vm, v, "c4", "c3", "in the dirty log")
		vm.cmd_ok(f"vm kill {v}")
		v = restore_chain(vm, "c4", 5)
		resume(vm, v)
		write_round(vm, v, 6)
