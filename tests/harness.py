# Test harness: boots Amber in QEMU or Bochs with COM1 on a TCP socket this
# process listens on, then types at the shell and reads what comes back. Runs on
# the build host under tests/run.py (python3 standard library only).
#
#     from harness import boot_qemu, make_disk, timeout
#
#     @timeout(300)                        # default limit: 120 s per test
#     def test_snapshot_roundtrip():
#         disk = make_disk(64 << 20)       # sparse image in $BUILD/test-tmp/
#         with boot_qemu(disks=[("virtio", disk)]) as vm:
#             vm.wait_prompt()
#             out = vm.cmd_ok("version")   # output between echo and next prompt
#             vm.wait_for(r"guest says (\d+)", timeout=30)
#             vm.send("poweroff\r")
#             vm.expect_exit(code=0)
#
# Boot with boot_qemu (-kernel, Multiboot 1), boot_qemu_iso (GRUB ISO under
# SeaBIOS, or OVMF with uefi=True) or boot_bochs (ISO; cpu="ryzen" for AMD-V).
# Emulator methods: wait_for(regex), wait_prompt(), wait_quiet(), cmd(line),
# cmd_ok(line), send(bytes), expect_exit(), fail(msg), tail(); `seen` holds all
# output. Every wait is bounded; a failed wait raises AssertionError saying what
# was expected, with the last 40 lines seen, and fails fast on a kernel panic.
# Leaving the `with` block always kills the emulator. Logs of each boot go to
# $BUILD/test-logs/TEST.EMULATOR.log (serial) and .emu.log (emulator output).
# The command lines come from scripts/run-qemu and scripts/run-bochs, so the
# harness and a person at the keyboard boot alike.
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The build folder: $AMBER_BUILD, else make's BUILD (`make test BUILD=x` exports
# it to the recipe), else build/.
BUILD = os.path.join(ROOT, os.environ.get("AMBER_BUILD") or os.environ.get("BUILD") or "build")
PROMPT = "amber> "
# A fresh prompt starts a line; the line editor's redraws (Ctrl-U, history,
# completion lists) print it after a bare carriage return instead.
PROMPT_RE = re.compile(r"(?<=\n)" + re.escape(PROMPT))
PANIC_RE = re.compile(r"\*\*\* Amber panic[^\n]*")
CSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TAIL_LINES = 40


class Skip(Exception):
	"""Raised by skip(): the runner reports the test as skipped, with the reason."""


def skip(reason):
	raise Skip(reason)


def timeout(seconds):
	"""Decorator: this test may take up to `seconds` (the runner's default is 120)."""
	def mark(fn):
		fn.timeout = seconds
		return fn
	return mark


def strip_ansi(text):
	"""Text as a terminal would leave it: control sequences removed, and on
	each line only what follows its last carriage return (the shell redraws
	its prompt line after a bare CR; a guest's line interrupting the prompt
	starts with CR and erase-line)."""
	lines = CSI_RE.sub("", text).split("\n")
	return "\n".join(l.rstrip("\r").rsplit("\r", 1)[-1] for l in lines)


def current_test():
	"""The running test's name (set by tests/run.py), for log file names."""
	return os.environ.get("AMBER_TEST_NAME", "adhoc")


def log_dir():
	path = os.path.join(BUILD, "test-logs")
	os.makedirs(path, exist_ok=True)
	return path


def work_dir():
	"""A fresh folder for this test's disk images; removed at exit."""
	base = os.path.join(BUILD, "test-tmp")
	os.makedirs(base, exist_ok=True)
	path = tempfile.mkdtemp(prefix=re.sub(r"[^\w.-]", "_", current_test()) + "-", dir=base)
	_cleanup_dirs.append(path)
	return path


def make_disk(size=64 << 20, name="disk.img", fill=None):
	"""A sparse raw disk image of `size` bytes in this test's work folder
	(or one filled with the byte `fill`). Returns its path."""
	path = os.path.join(work_dir(), name)
	with open(path, "wb") as f:
		if fill is None:
			f.truncate(size)
		else:
			chunk = bytes([fill]) * (1 << 20)
			left = size
			while left > 0:
				f.write(chunk[:min(left, len(chunk))])
				left -= len(chunk)
	return path


_live = []          # emulators not yet stopped, killed at exit
_cleanup_dirs = []  # work folders removed at exit
_last = [None]      # the newest emulator: its tail goes into a timeout report
_boots = {}         # emulator name -> boots so far in this process


def _crc32c_table():
	table = []
	for i in range(256):
		c = i
		for _ in range(8):
			c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
		table.append(c)
	return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
	"""CRC-32C (Castagnoli), as kernel/crc32c.c crc32c(0, ...) computes it: for
	tests that craft or check disk bytes on the host."""
	crc = 0xFFFFFFFF
	for b in data:
		crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
	return crc ^ 0xFFFFFFFF


def _die_with_us(argv):
	"""argv wrapped so that the emulator gets SIGKILL when this test process
	dies, however it dies (PR_SET_PDEATHSIG through util-linux setpriv; the
	setting survives exec). Thread-safe, unlike a preexec_fn."""
	if shutil.which("setpriv"):
		return ["setpriv", "--pdeathsig", "KILL", "--"] + argv
	return argv


def last_emulator():
	return _last[0]


def _at_exit():
	for emu in list(_live):
		emu.stop()
	for d in _cleanup_dirs:
		subprocess.run(["rm", "-rf", d])


atexit.register(_at_exit)


class Emulator:
	"""One running emulator whose COM1 is connected to this process.

	Everything received is kept in `seen` (text, bytes as Latin-1). wait_for()
	searches from a cursor that each match moves forward, so successive waits
	read the output in order."""

	def __init__(self, name, argv_for_port, connect_timeout=30):
		self.name = name
		self.seen = ""
		self.pos = 0
		self.exit_code = None
		self._cond = threading.Condition()
		self._eof = False
		# A second boot in one test (a restore after a snapshot) gets its own logs.
		_boots[name] = _boots.get(name, 0) + 1
		if _boots[name] > 1:
			name = f"{name}-{_boots[name]}"
		self.name = name
		safe = re.sub(r"[^\w.-]", "_", f"{current_test()}.{name}")
		log_base = os.path.join(log_dir(), safe)
		self.log_path = log_base + ".log"
		self.emu_log_path = log_base + ".emu.log"

		listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		listener.bind(("127.0.0.1", 0))   # the kernel picks a free port: no race
		listener.listen(1)
		port = listener.getsockname()[1]
		argv = argv_for_port(port, log_base)
		self.argv = argv
		self._emu_log = open(self.emu_log_path, "wb")
		self._emu_log.write((" ".join(argv) + "\n").encode())
		self._emu_log.flush()
		self.proc = subprocess.Popen(_die_with_us(argv), cwd=ROOT, stdin=subprocess.DEVNULL,
					     stdout=self._emu_log, stderr=subprocess.STDOUT,
					     start_new_session=True)
		_live.append(self)
		_last[0] = self
		self.started = time.monotonic()
		self.sock = None
		try:
			self.sock = self._accept(listener, connect_timeout)
		finally:
			listener.close()
		self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		self._log = open(self.log_path, "wb")
		self._reader = threading.Thread(target=self._read_loop, daemon=True)
		self._reader.start()

	def _accept(self, listener, connect_timeout):
		"""The emulator's serial connection; fails when it exits or dawdles."""
		listener.settimeout(0.2)
		deadline = time.monotonic() + connect_timeout
		while True:
			try:
				return listener.accept()[0]
			except socket.timeout:
				pass
			if self.proc.poll() is not None:
				self._fail_start(f"exited with status {self.proc.returncode} "
						 "before connecting its serial port")
			if time.monotonic() > deadline:
				self._fail_start("did not connect its serial port "
						 f"within {connect_timeout} s")

	def _fail_start(self, what):
		self.stop()
		with open(self.emu_log_path, "rb") as f:
			tail = f.read().decode("latin-1").splitlines()[-TAIL_LINES:]
		raise AssertionError(f"{self.name} {what}\n"
				     f"command and output ({self.emu_log_path}):\n"
				     + "\n".join("  | " + l for l in tail))

	def _read_loop(self):
		while True:
			try:
				data = self.sock.recv(65536)
			except OSError:
				data = b""
			with self._cond:
				if not data:
					self._eof = True
					self._cond.notify_all()
					return
				self.seen += data.decode("latin-1")
				self._cond.notify_all()
			self._log.write(data)
			self._log.flush()

	# ---- context manager: the emulator never outlives the test -----------------
	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.stop()
		return False

	def stop(self):
		"""Kills the emulator (and its run script) if it still runs."""
		if self.proc.poll() is None:
			try:
				os.killpg(self.proc.pid, signal.SIGTERM)
				self.proc.wait(timeout=3)
			except (ProcessLookupError, subprocess.TimeoutExpired):
				try:
					os.killpg(self.proc.pid, signal.SIGKILL)
				except ProcessLookupError:
					pass
				self.proc.wait()
		if self.exit_code is None:
			self.exit_code = self.proc.returncode
		if self.sock:
			try:
				self.sock.close()
			except OSError:
				pass
		if self in _live:
			_live.remove(self)
		if not self._emu_log.closed:
			self._emu_log.close()

	# ---- reading ---------------------------------------------------------------
	def tail(self, lines=TAIL_LINES):
		"""The last lines received, control sequences removed, for messages."""
		text = strip_ansi(self.seen).splitlines()[-lines:]
		if not text:
			return "  (nothing received on the serial port)"
		return "\n".join("  | " + l for l in text)

	def fail(self, what):
		"""Raises AssertionError with `what` and the tail of the output."""
		log = os.path.relpath(self.log_path, ROOT)
		raise AssertionError(f"{what}\n{self.name}: last {TAIL_LINES} lines seen "
				     f"(full log {log}):\n{self.tail()}")

	def wait_for(self, regex, timeout=20, what=None):
		"""Waits until `regex` (str or compiled; matched against the raw text,
		escape sequences included) appears after the cursor; returns the match
		and moves the cursor past it. Fails on timeout, emulator exit or a panic."""
		pat = re.compile(regex) if isinstance(regex, str) else regex
		deadline = time.monotonic() + timeout
		with self._cond:
			while True:
				m = pat.search(self.seen, self.pos)
				if m:
					self.pos = m.end()
					return m
				p = PANIC_RE.search(self.seen, self.pos)
				if p:
					break
				left = deadline - time.monotonic()
				if self._eof or left <= 0:
					break
				self._cond.wait(min(left, 0.5))
		desc = what or f"/{pat.pattern}/"
		if p:
			self.fail(f"expected {desc}, but the kernel panicked: {p.group(0).strip()}")
		if self._eof:
			code = self.proc.wait(timeout=10)
			self.fail(f"expected {desc}, but {self.name} exited with status {code}")
		self.fail(f"expected {desc} within {timeout} s")

	def wait_quiet(self, idle=1.0, timeout=30):
		"""Waits until nothing has arrived for `idle` seconds (the kernel has
		digested its input); moves the cursor to the end of what was seen."""
		deadline = time.monotonic() + timeout
		with self._cond:
			while True:
				size = len(self.seen)
				self._cond.wait(idle)
				if len(self.seen) == size or self._eof:
					self.pos = len(self.seen)
					return
				if time.monotonic() > deadline:
					break
		self.fail(f"expected the output to pause for {idle} s within {timeout} s")

	def wait_prompt(self, timeout=30):
		"""Waits for the shell prompt; returns what came before it (ANSI-stripped)."""
		start = self.pos
		m = self.wait_for(PROMPT_RE, timeout, what=f"the shell prompt '{PROMPT}'")
		return strip_ansi(self.seen[start:m.start()])

	def expect_exit(self, timeout=20, code=None):
		"""Waits for the emulator to end; returns its exit status (checked
		against `code` when given)."""
		try:
			rc = self.proc.wait(timeout=timeout)
		except subprocess.TimeoutExpired:
			self.fail(f"expected {self.name} to exit within {timeout} s")
		self.exit_code = rc
		self._reader.join(timeout=2)
		if code is not None and rc != code:
			self.fail(f"expected {self.name} to exit with status {code}, got {rc}")
		return rc

	# ---- writing ---------------------------------------------------------------
	def send(self, data, pace=0.0):
		"""Sends raw bytes (str is encoded as Latin-1); `pace` seconds apart
		per byte when set, like a person typing."""
		if isinstance(data, str):
			data = data.encode("latin-1")
		try:
			if pace:
				for b in data:
					self.sock.sendall(bytes([b]))
					time.sleep(pace)
			else:
				self.sock.sendall(data)
		except OSError as e:
			self.fail(f"could not send {data[:40]!r}: {e}")

	def cmd(self, line, timeout=20):
		"""Types `line` and Enter, waits for the next prompt and returns the
		output between them: the echoed line left out, escape sequences and
		carriage returns removed."""
		start = len(self.seen)
		self.pos = max(self.pos, start)
		self.send(line + "\r")
		m = self.wait_for(PROMPT_RE, timeout,
				  what=f"the prompt after the command {line[:60]!r}")
		out = strip_ansi(self.seen[start:m.start()])
		# The first line is the echo of what was typed.
		nl = out.find("\n")
		return out[nl + 1:] if nl >= 0 else ""

	def cmd_ok(self, line, timeout=20, expect=None):
		"""cmd() that also fails when the output shows an error (a line
		beginning "error", or "unknown command") or misses the regex `expect`.
		Returns the output."""
		out = self.cmd(line, timeout)
		if re.search(r"(?im)^error\b|unknown command", out):
			self.fail(f"'{line}' failed:\n{out}")
		if expect and not re.search(expect, out):
			self.fail(f"expected /{expect}/ in the output of '{line}'")
		return out


# ---- boot helpers -------------------------------------------------------------
def _disk_spec(d):
	"""A disk for run-qemu --disk: "KIND:PATH[:ro]", (kind, path[, readonly]) or
	{"kind":..., "path":..., "readonly":...}; KIND is virtio, virtio-modern,
	nvme, ide or ahci."""
	if isinstance(d, str):
		return d
	if isinstance(d, dict):
		kind, path, ro = d["kind"], d["path"], d.get("readonly", False)
	else:
		kind, path = d[0], d[1]
		ro = len(d) > 2 and d[2]
	return f"{kind}:{path}" + (":ro" if ro else "")


def _qemu_args(modules, disks, mem, cmdline, extra, iso, uefi, smp=1):
	args = [os.path.join(ROOT, "scripts", "run-qemu"), "--no-disk", "--mem", mem]
	if smp > 1:
		args += ["--smp", str(smp)]  # multi-threaded TCG, one thread per CPU
	if iso:
		args += ["--iso"] if iso is True else ["--iso", iso]
	if uefi:
		args.append("--uefi")
	for path, margs in modules:
		args += ["--module", path, margs]
	if cmdline:
		args += ["--cmdline", cmdline]
	for d in disks:
		args += ["--disk", _disk_spec(d)]
	return args, list(extra)


def boot_qemu(modules=(), disks=(), mem="512M", cmdline="", extra=(), name="qemu", kernel=None,
	      smp=1):
	"""QEMU with -kernel (Multiboot 1). modules: [(path, "args")]; disks: see
	_disk_spec, or raw -drive/-device fragments in `extra` (QEMU arguments);
	smp: the number of CPUs (-smp, multi-threaded TCG)."""
	args, extra = _qemu_args(modules, disks, mem, cmdline, extra, None, False, smp)
	if kernel:
		args += ["--kernel", kernel]
	return Emulator(name, lambda port, _: args + ["--serial-tcp", str(port), "--"] + extra)


def boot_qemu_iso(iso=None, uefi=False, modules=(), disks=(), mem="512M", cmdline="", extra=(),
		  name=None):
	"""QEMU booting the GRUB ISO (Multiboot 2) under SeaBIOS, or OVMF with uefi.
	With modules or cmdline a temporary ISO is built from $AMBER_BUILD/amber.elf."""
	args, extra = _qemu_args(modules, disks, mem, cmdline, extra, iso or True, uefi)
	return Emulator(name or ("qemu-uefi" if uefi else "qemu-iso"),
			lambda port, _: args + ["--serial-tcp", str(port), "--"] + extra)


def boot_bochs(iso=None, disk=None, cpu="corei7_icelake_u", modules=(), cmdline="", mem=256,
	       ips=None, cpus=1):
	"""Bochs booting the GRUB ISO; cpu "ryzen" for AMD-V. disk: a flat image
	attached as ata1-master; ips: instructions per emulated second (the TSC
	rate); cpus: `cpu: count=N`. Bochs' own log goes next to the serial log."""
	args = [os.path.join(ROOT, "scripts", "run-bochs"), "--cpu", cpu, "--mem", str(mem)]
	if cpus > 1:
		args += ["--cpus", str(cpus)]
	if ips:
		args += ["--ips", str(ips)]
	if iso:
		args += ["--iso", iso]
	args += ["--disk", disk] if disk else ["--no-disk"]
	for path, margs in modules:
		args += ["--module", path, margs]
	if cmdline:
		args += ["--cmdline", cmdline]
	return Emulator(f"bochs-{cpu}", lambda port, log_base: args + [
		"--serial-tcp", str(port), "--log", log_base + ".bochs.log"])


def have_tool(name):
	"""True when `name` is on PATH (for a skip when a tool is truly missing)."""
	return shutil.which(name) is not None


def need_file(path, hint):
	"""Fails (not skips) when a build product is missing: `make test` builds it."""
	if not os.path.isfile(path):
		raise AssertionError(f"missing {os.path.relpath(path, ROOT)}: {hint}")
