# Defence in depth: Amber's code is mapped read-only and executable, its
# constants read-only, everything else (data, .bss, stacks, RAM) writable and
# no-execute, and the page under each stack is not mapped at all. Checked in
# two places: the ELF's program headers (no segment both writable and
# executable), and the running kernel's own page tables, page by page, through
# `mem map` (the tables' rights) and `mem probe` (the CPU enforcing them: a
# write to code or constants faults, a read of a stack guard faults). The
# section bounds come from build/amber.elf's symbols. Runs on the build host
# (QEMU TCG).
import os
import re
import struct
import subprocess
import sys

from harness import BUILD, boot_qemu, need_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import figures  # noqa: E402  (tests/figures.py)

ELF = os.path.join(BUILD, "amber.elf")
PAGE = 4096
PF_X, PF_W = 1, 2


def symbols():
	out = subprocess.run(["nm", ELF], capture_output=True, text=True, check=True).stdout
	syms = {}
	for line in out.splitlines():
		parts = line.split()
		if len(parts) == 3:
			syms[parts[2]] = int(parts[0], 16)
	return syms


# kernel/traps.c struct cpu_stacks: a guard page and a 16 KiB kernel stack,
# then three IST stacks (#DF, NMI, #MC) of a guard page and 8 KiB each.
CPU_STACKS_SIZE = PAGE + 16384 + 3 * (PAGE + 8192)
CPU_STACK_GUARDS = [0, PAGE + 16384] + [PAGE + 16384 + i * (PAGE + 8192) for i in (1, 2)]


def cpu_stack_guards(syms):
	"""The guard page of every CPU's kernel and IST stacks."""
	out = subprocess.run(["nm", "-S", ELF], capture_output=True, text=True, check=True).stdout
	m = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [bB] cpu_stacks$", out, re.M)
	assert m, "no symbol cpu_stacks (kernel/traps.c) in amber.elf"
	base, size = int(m.group(1), 16), int(m.group(2), 16)
	assert size % CPU_STACKS_SIZE == 0, \
		f"cpu_stacks is {size} bytes, not a multiple of {CPU_STACKS_SIZE}: layout changed?"
	return [base + cpu * CPU_STACKS_SIZE + g for cpu in range(size // CPU_STACKS_SIZE)
		for g in CPU_STACK_GUARDS]


def load_segments():
	"""(flags, vaddr, memsz) of each PT_LOAD, read from the ELF64 header."""
	with open(ELF, "rb") as f:
		data = f.read()
	assert data[:4] == b"\x7fELF" and data[4] == 2, "amber.elf is not an ELF64 file"
	phoff, = struct.unpack_from("<Q", data, 0x20)
	phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
	segs = []
	for i in range(phnum):
		ptype, flags, off, vaddr, _, filesz, memsz, _ = struct.unpack_from(
			"<IIQQQQQQ", data, phoff + i * phentsize)
		if ptype == 1:
			segs.append((flags, vaddr, memsz, off))
	return segs


def pages(start, end):
	return list(range(start & ~(PAGE - 1), end, PAGE))


def mapped(vm, addrs):
	"""{address: rights} from `mem map`, a few addresses per line."""
	rights = {}
	for i in range(0, len(addrs), 12):
		out = vm.cmd_ok("mem map " + " ".join(f"{a:#x}" for a in addrs[i:i + 12]))
		if i == 0 and "no-execute pages: on" not in out:
			vm.fail(f"no-execute is not on:\n{out}")
		for m in re.finditer(r"0x([0-9a-f]{16}): (not mapped|\S+ \S+ page, (\S{3}))", out):
			rights[int(m.group(1), 16)] = m.group(3) or "absent"
	missing = [a for a in addrs if a not in rights]
	if missing:
		vm.fail(f"'mem map' did not report {len(missing)} addresses, e.g. {missing[0]:#x}")
	return rights


def test_page_rights():
	need_file(ELF, "make builds it")
	segs = load_segments()
	assert len(segs) >= 2, f"one loadable segment only: {segs}"
	for flags, vaddr, memsz, off in segs:
		assert not (flags & PF_W and flags & PF_X), \
			f"segment at {vaddr:#x} is writable and executable (flags {flags})"
		assert vaddr % PAGE == 0, f"segment at {vaddr:#x} does not start on a page"
	# QEMU's Multiboot 1 loading (a.out kludge) needs file offsets to follow addresses.
	deltas = {vaddr - off for _, vaddr, _, off in segs}
	assert len(deltas) == 1, f"file offsets do not follow addresses: {segs}"

	s = symbols()
	text = pages(s["_text_start"], s["_text_end"])
	rodata = pages(s["_rodata_start"], s["_rodata_end"])
	data = pages(s["_data_start"], s["_kernel_end"])
	guards = [s["boot_stack_guard"]] + cpu_stack_guards(s)
	assert all(g % PAGE == 0 for g in guards), f"stack guards not page aligned: {guards}"
	data = [p for p in data if p not in guards]
	want = {}
	want.update({p: "r-x" for p in text})
	want.update({p: "r--" for p in rodata})
	want.update({p: "rw-" for p in data})
	want.update({g: "absent" for g in guards})
	# Around the image: page 0, low RAM, the VGA window, RAM above the image.
	want.update({0: "absent", 0x1000: "rw-", 0xB8000: "rw-", 0x200000: "rw-",
		     0x10000000: "rw-"})

	with boot_qemu(mem="512M", name="qemu-prot") as vm:
		vm.wait_prompt()
		got = mapped(vm, sorted(want))
		wrong = [f"{a:#x}: {got[a]}, expected {w}" for a, w in sorted(want.items())
			 if got[a] != w]
		if wrong:
			vm.fail(f"{len(wrong)} of {len(want)} pages have the wrong rights:\n  "
				+ "\n  ".join(wrong[:20]))
		# The CPU enforces them: writes to code and constants fault, a read
		# of a guard faults, data takes the write.
		probes = [(text[0] + 0x40, "read ok, write faults"),
			  (text[-1], "read ok, write faults"),
			  (rodata[0], "read ok, write faults"),
			  (s["__shell_cmds_start"], "read ok, write faults"),
			  (data[0], r"read ok, write ok"),
			  (guards[0] + 100, "read faults"),
			  (guards[1] + PAGE - 1, "read faults"),
			  (guards[-1] + 8, "read faults"),
			  (guards[0] + PAGE, r"read ok, write ok")]
		for addr, expect in probes:
			out = vm.cmd_ok(f"mem probe {addr:#x}")
			if not re.search(expect, out):
				vm.fail(f"mem probe {addr:#x}: expected '{expect}', got:\n{out}")
		vm.cmd_ok("version")   # the shell survived every probe
	summary = (f"{len(text)} code pages r-x, {len(rodata)} constant pages r--, {len(data)} "
		   f"data and .bss pages rw-, {len(guards)} stack guards unmapped, 5 pages around "
		   f"the image as expected; {len(probes)} probes by the CPU (writes to code and "
		   f"constants fault, reads of guards fault); {len(segs)} ELF segments, none "
		   "writable and executable.")
	print("page rights checked: " + summary)
	figures.record("memprot", summary)
