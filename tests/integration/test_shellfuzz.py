# The shell and its control surfaces under thousands of random and
# semi-valid lines, generated here from a fixed seed (the same lines every
# run): real command lines mutated token by token and byte by byte, numbers at
# the edges, random tokens, overlong lines, control characters and escape
# sequences, Tab completion. After each batch a liveness check: no fault (no
# exception report or panic on the serial line), no hang (every line gets its
# prompt back, and `uptime` answers), no leak (once the VMs the batch made are
# killed, `mem` shows exactly the free pages and heap use of the start).
# Runs on the build host (QEMU TCG) with two scratch disks, virtio-blk and
# NVMe, so that `disk` and `snap` reach real devices.
#
# Excluded, because they end or capture the test itself: `reboot` and
# `poweroff` (QEMU exits), `vm console` (the terminal then belongs to a
# guest), `vm start` and `vm resume` (a running guest's output interleaves
# with the shell's and its time slices slow every later line; running guests
# are what test_vm_* and test_snapshot test). A generated line whose typed text
# holds one of those words is dropped, and Tab is typed only after a prefix
# that cannot complete to one. The line editor can still reorder what was
# typed (cursor keys, history); with the fixed seed that is checked once
# (the test would fail loudly: QEMU gone, a guest running) and stays so.
import os
import random
import re
import sys
import time

from harness import PROMPT_RE, boot_qemu, make_disk, strip_ansi, timeout

SEED = 20261201
LINES = int(os.environ.get("AMBER_FUZZ_LINES", 2000))   # more by hand: AMBER_FUZZ_LINES=N
BATCH = 100
EXCLUDED = ("reboot", "poweroff", "console", "start", "resume", "panic", "hang")
FAULT_RE = re.compile(r"\*\*\* Amber(: CPU exception| panic)[^\n]*")

SEEDS = [
	"help", "help snap", "help vm", "help disk", "help nosuch", "version", "uptime", "log",
	"mem", "mem map 0x100000 0 0x200000", "mem probe 0x100000", "cpu", "pci", "acpi",
	"disk list", "disk info 0", "disk info nvme0n1", "disk read 0 0", "disk read 1 100 4",
	"disk sum 0 0 64", "disk sum nvme0n1 8 8", "disk flush 0", "disk flush 1",
	"disk write 0 4096 0xA5 8", "disk write 1 100 word 3", "disk write 0 0 7 --force",
	"disk timeout 0 30", "disk timeout 1 500ms", "disk bench 1 1M --force",
	"vm images", "vm list", "vm create counter", "vm create memtest mem=8M",
	"vm create hello -- x=1", "vm create counter mem=2M cpus=2", "vm info 1", "vm pause 1",
	"vm kill 1", "vm kill 2", "vm screen 1",
	"snap list", "snap list disk=1", "snap format 0 --force", "snap format 1",
	"snap save 1 s1", "snap save 2 s2 disk=1", "snap info s1", "snap verify s1",
	"snap restore s1", "snap delete s1", "snap info s2 disk=1",
]
WORDS = ["help", "version", "uptime", "log", "mem", "cpu", "pci", "acpi", "disk", "vm",
	 "snap", "list", "info", "read", "sum", "write", "flush", "timeout", "bench", "images",
	 "create", "pause", "kill", "screen", "save", "restore", "verify", "delete", "format",
	 "counter", "memtest", "hello", "hostile", "image", "mem=", "mem=1M", "mem=0",
	 "mem=99999G", "cpus=0", "cpus=9999", "disk=", "disk=0", "disk=1", "disk=99",
	 "disk=nvme0n1", "--force", "--", "-", "=", '"', '""', '"a b"', "vblk0", "nvme0n1",
	 "s1", "s2", "a" * 31, "b" * 32, "../x", "name.with.dots", "x" * 80]
NUMBERS = ["0", "1", "-1", "2", "7", "255", "256", "4095", "4096", "65535", "65536",
	   "2147483647", "2147483648", "4294967295", "4294967296", "9223372036854775807",
	   "9223372036854775808", "18446744073709551615", "18446744073709551616",
	   "99999999999999999999999999", "0x0", "0xffffffffffffffff", "0x10000000000000000",
	   "0x", "0b101", "007", "1e9", "1M", "1G", "4096G", "1K", "+1", " 1", "1.5", "0ms",
	   "1000000000ms", "100000s"]
CONTROL = ["\x01", "\x05", "\x08", "\x7f", "\x0c", "\x15", "\x00", "\x1b", "\x1b[", "\x1b[A",
	   "\x1b[B", "\x1b[C", "\x1b[D", "\x1b[H", "\x1b[F", "\x1b[3~", "\x1b[1;5C", "\x1b[99999~",
	   "\x1bO", "\x1bOA", "\x1b[1", "\xff", "\x80", "\xc3\xa9", "\x02", "\x1a", "\x1c"]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import figures  # noqa: E402  (tests/figures.py)

TAB_PREFIXES = ["", "sn", "di", "he", "me", "up", "ve", "lo", "ac", "pc", "cp", "vm", "x"]


def _mutate_tokens(rng, line):
	toks = line.split(" ")
	for _ in range(rng.randint(1, 3)):
		op = rng.randrange(6)
		i = rng.randrange(len(toks))
		if op == 0:
			toks[i] = rng.choice(NUMBERS)
		elif op == 1:
			toks[i] = rng.choice(WORDS)
		elif op == 2 and len(toks) > 1:
			del toks[i]
		elif op == 3:
			toks.insert(i, rng.choice(WORDS + NUMBERS))
		elif op == 4:
			toks[i] = toks[i] * rng.randint(2, 5)
		else:
			toks += [rng.choice(WORDS + NUMBERS) for _ in range(rng.randint(10, 40))]
	return " ".join(toks)


def _mutate_bytes(rng, line):
	b = list(line)
	for _ in range(rng.randint(1, 4)):
		op = rng.randrange(4)
		i = rng.randrange(len(b) + 1)
		if op == 0:
			b.insert(i, chr(rng.choice([c for c in range(256) if c not in (9, 10, 13)])))
		elif op == 1 and b:
			del b[min(i, len(b) - 1)]
		elif op == 2:
			b.insert(i, rng.choice(CONTROL))
		elif b:
			b[min(i, len(b) - 1)] = chr(rng.randrange(0x20, 0x7f))
	return "".join(b)


def generate(rng):
	"""One line to type (without the final Enter)."""
	kind = rng.randrange(20)
	base = rng.choice(SEEDS)
	if kind < 2:
		return base
	if kind < 8:
		return _mutate_tokens(rng, base)
	if kind < 13:
		return _mutate_bytes(rng, base)
	if kind < 15:   # random tokens
		return " ".join(rng.choice(WORDS + NUMBERS) for _ in range(rng.randint(1, 8)))
	if kind < 16:   # overlong, around the 255-character limit and beyond it
		n = rng.choice([254, 255, 256, 257, 300, 1000])
		return (base + " " + "z" * n)[:n]
	if kind < 18:   # control characters and escape sequences
		return "".join(rng.choice(CONTROL + [rng.choice(WORDS)]) for _ in range(rng.randint(1, 12)))
	return rng.choice(TAB_PREFIXES) + "\t" + rng.choice(["", " list", " 0", "\t"])


def typed_text(line):
	"""The printable bytes as typed, escape sequences left out (as the
	line editor drops them)."""
	return re.sub(r"\x1b(\[[0-9;]*[\x40-\x7e]?|O.?|.)?", "", line)


def allowed(line):
	text = typed_text(line)
	if any(w in text for w in EXCLUDED):
		return False
	# Completion only right after one of the safe prefixes.
	return "\t" not in line or line.split("\t", 1)[0] in TAB_PREFIXES


def ends_in_escape(line):
	"""True when the line editor would still be inside an escape sequence
	after `line` (kernel/lineedit.c le_feed): the Enter that follows is
	then swallowed, and a second one is needed."""
	esc = 0
	for ch in line.encode("latin-1"):
		if esc == 1:
			esc = 2 if ch in b"[O" else 0
		elif esc == 2:
			if 0x40 <= ch <= 0x7E or ch < 0x20 or ch > 0x7E:
				esc = 0
		elif ch == 0x1B:
			esc = 1
	return esc != 0


def lines(seed=SEED, count=LINES):
	rng = random.Random(seed)
	out = []
	while len(out) < count:
		line = generate(rng)
		if allowed(line):
			out.append(line)
	return out


def free_memory(vm):
	out = vm.cmd_ok("mem")
	free = re.search(r"4 KiB pages: (\d+) free", out)
	heap = re.search(r"Heap: .+ used \((\d+) bytes\)", out)
	if not free or not heap:
		vm.fail(f"'mem' did not report free pages and heap use:\n{out}")
	return int(free.group(1)), int(heap.group(1))


def kill_all(vm):
	out = vm.cmd_ok("vm list")
	running = re.search(r"(?m)^\d+\s+\S+\s+running", out)
	if running:
		vm.fail("a guest is running, though no line may start one (the exclusions "
			f"failed: the line editor formed an excluded command?):\n{out}")
	for vid in re.findall(r"(?m)^(\d+)\s", out):
		vm.cmd(f"vm kill {vid}", timeout=30)


def check_alive(vm, last):
	"""No fault so far; the shell answers a command of its own."""
	m = FAULT_RE.search(vm.seen)
	if m:
		vm.fail(f"a fault after the line {last!r}: {m.group(0)}")
	start = len(vm.seen)
	vm.send("\x03\x03uptime\r")
	deadline = time.monotonic() + 30
	while not re.search(r"up \d+\.\d+ s \(\d+ ticks", vm.seen[start:]):
		if time.monotonic() > deadline or vm.proc.poll() is not None:
			vm.fail(f"the shell stopped answering after the line {last!r}")
		time.sleep(0.05)
	vm.wait_prompt(timeout=30)


@timeout(600)
def test_shell_random_lines():
	all_lines = lines()
	assert len(set(all_lines)) > LINES // 2, "the generator repeats itself"
	d0, d1 = make_disk(16 << 20, "fuzz0.img"), make_disk(16 << 20, "fuzz1.img")
	with boot_qemu(disks=[("virtio", d0), ("nvme", d1)], name="qemu-fuzz") as vm:
		vm.wait_prompt()
		# Warm-up: every seed line once, so that buffers a driver or command
		# allocates on first use (and keeps) are in the baseline.
		for line in SEEDS:
			vm.cmd(line, timeout=60)
		kill_all(vm)
		base = free_memory(vm)
		tried = 0
		for b in range(0, len(all_lines), BATCH):
			for line in all_lines[b:b + BATCH]:
				start = len(vm.seen)
				vm.pos = max(vm.pos, start)
				vm.send(line + "\r" + ("\r" if ends_in_escape(line) else ""))
				vm.wait_for(PROMPT_RE, 60, what=f"the prompt after the line {line!r}")
				tried += 1
			check_alive(vm, all_lines[b + BATCH - 1] if b + BATCH <= len(all_lines) else line)
			kill_all(vm)
			now = free_memory(vm)
			if now != base:
				vm.fail(f"after lines {b}-{b + BATCH - 1}: {now[0]} free pages and {now[1]} "
					f"heap bytes in use, at the start {base[0]} and {base[1]}: a leak")
		if vm.proc.poll() is not None:
			vm.fail("QEMU exited during the run")
		text = strip_ansi(vm.seen)
		errors = len(re.findall(r"(?m)^error", text))
	print(f"shell lines tried: {tried} (seed {SEED}), {errors} of them answered with an "
	      "error line; no fault, no hang, no leak")
	figures.record("shell", f"{tried} lines tried (seed {SEED}, {len(SEEDS)} real command "
		       f"lines mutated), in {(tried + BATCH - 1) // BATCH} batches of {BATCH}; "
		       f"{errors} answered with an error line. Faults: 0. Hangs: 0. Leaks: 0 (after "
		       f"each batch {base[0]} free pages and {base[1]} heap bytes, as at the start).")
