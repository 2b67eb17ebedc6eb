# Guest CPU models (vm create cpu=MODEL, docs/vmm.md "CPU models") on AMD-V in
# QEMU TCG, in seconds: `cpu` says the portable model is offered, a counter
# created with it records the model in its image, and the restore checks this
# CPU against the image's recorded features. To see a refusal without a
# second machine, the test edits the image on the host as a CPU that had more
# would have written it (a PCID and an AVX512F bit in the recorded words,
# the section's CRCs made right again): the restore, full and lazy, names
# exactly those and creates nothing; the same edit to a host-model image only
# gets a note.
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vm_cases  # noqa: E402
from harness import boot_qemu, crc32c, make_disk, timeout  # noqa: E402

DEVICES = 0x0004
CPUID_1_ECX = 0x188  # DEVICES payload offsets (docs/snapshot-format.md 1.7)
CPUID_7_EBX = 0x190


def image_base(vm, name):
	m = re.search(r"byte offset (\d+), (\d+) bytes", vm.cmd_ok(f"snap info {name}"))
	if not m:
		vm.fail(f"no byte offset in 'snap info {name}'")
	return int(m.group(1))


def add_features(path, base, ecx1, ebx7):
	"""Sets bits in the recorded feature words of the image at `base` and
	rewrites the DEVICES section's payload CRC and header CRC (1.2)."""
	with open(path, "r+b") as f:
		pos = 64
		while True:
			f.seek(base + pos)
			hdr = bytearray(f.read(32))
			stype, _, length = struct.unpack_from("<IIQ", hdr)
			if stype == DEVICES:
				break
			if stype == 0xFFFF:
				raise AssertionError("no DEVICES section in the image")
			pos += 32 + length
		f.seek(base + pos + 32)
		pay = bytearray(f.read(length))
		assert length == 0x1B0, f"DEVICES of {length:#x} bytes, not 0x1B0"
		for off, bits in ((CPUID_1_ECX, ecx1), (CPUID_7_EBX, ebx7)):
			struct.pack_into("<I", pay, off, struct.unpack_from("<I", pay, off)[0] | bits)
		struct.pack_into("<I", hdr, 0x18, crc32c(bytes(pay)))
		struct.pack_into("<I", hdr, 0x1C, crc32c(bytes(hdr[:0x1C])))
		f.seek(base + pos)
		f.write(hdr + pay)


def counter_image(vm, name, opts):
	vid = vm_cases.create(vm, f"counter {opts} -- every=20000000")
	vm.cmd_ok(f"vm start {vid}")
	vm.wait_for(rf"\[vm{vid}\] count=1\b", timeout=60, what="the counter's first count")
	vm.cmd_ok(f"vm pause {vid}")
	vm.cmd_ok(f"snap save {vid} {name}", timeout=60)
	vm.cmd_ok(f"vm kill {vid}")


PCID, AVX512F = 1 << 17, 1 << 16


@timeout(180)
def test_portable_model_refused_by_name():
	disk = make_disk(64 << 20)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-cpumodel-save") as vm:
		vm.wait_prompt()
		vm.cmd_ok("cpu", expect=r"cpu=portable: offered")
		out = vm.cmd_ok("vm create counter cpu=portable")
		if not re.search(r"created vm \d+ \(counter, 32 MiB, 1 vCPU, CPU portable\)", out):
			vm.fail(f"'vm create ... cpu=portable' should say the model:\n{out}")
		vid = int(re.search(r"created vm (\d+)", out).group(1))
		vm.cmd_ok(f"vm info {vid}", expect=r"CPU model: portable")
		vm.cmd_ok(f"vm kill {vid}")
		counter_image(vm, "pm", "cpu=portable")
		counter_image(vm, "hm", "")
		vm.cmd_ok("snap info pm", expect=r"CPU model portable")
		vm.cmd_ok("snap info hm", expect=r"CPU model host")
		pm, hm = image_base(vm, "pm"), image_base(vm, "hm")
	add_features(disk, pm, PCID, AVX512F)
	add_features(disk, hm, PCID, AVX512F)
	with boot_qemu(disks=[("virtio", disk)], name="qemu-cpumodel-restore") as vm:
		vm.wait_prompt()
		for lazy in ("", " --lazy"):
			out = vm.cmd(f"snap restore pm{lazy}", timeout=60)
			want = (r"error: snap restore: 'pm' runs CPU model portable; this CPU lacks 2 "
				r"of\s+its features:\s+PCID AVX512F\s+restore refused, no VM created")
			if not re.search(want, out):
				vm.fail(f"'snap restore pm{lazy}' should be refused with /{want}/:\n{out}")
		vm.cmd_ok("vm list", expect="no VMs")
		out = vm.cmd_ok("snap restore hm", timeout=60)
		if not re.search(r"note: 'hm' was shown features this CPU lacks \(CPU model\s+host\); "
				 r"a guest that uses one faults:\s+PCID AVX512F", out):
			vm.fail(f"the host-model image should restore with a note naming PCID and "
				f"AVX512F:\n{out}")
		again = int(re.search(r"as VM (\d+)", out).group(1))
		vm.cmd_ok(f"vm info {again}", expect=r"CPU model: host")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {again}")
		vm.wait_for(rf"\[vm{again}\] count=3\b", timeout=60, what="the restored counter")
		# An unknown model name is refused with the ones there are.
		vm.cmd("vm create counter cpu=skylake")
		vm.cmd_ok("version")
		if not re.search(r"no CPU model 'skylake'; there are host \(the default\) and\s+portable",
				 vm.seen[start:]):
			vm.fail("'cpu=skylake' should be refused naming host and portable")
