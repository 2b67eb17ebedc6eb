# scripts/run-bochs as a person runs it: no options, in a terminal (a pty
# here). The terminal gets Amber's shell and nothing of Bochs' own output
# (that goes to bochs.log and bochs.out in the build folder); what is typed
# is echoed once, by Amber (the terminal is raw); the scratch disk is there
# as an ATA disk; Ctrl-A X quits, Bochs is gone, its disk lock removed and
# the terminal's settings are back as they were. With --ctl PORT the script
# relays the control channel: Bochs boots without waiting for a program, and
# one that connects later gets answers. One Bochs boot (VT-x).
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import json
import socket
import tempfile
import termios
import time

from harness import BUILD, ROOT, have_tool, need_file, skip, timeout

ISO = os.path.join(BUILD, "amber.iso")


class Terminal:
	"""The far side of a pty whose near side is run-bochs' terminal."""

	def __init__(self, argv, env):
		self.master, slave = pty.openpty()
		self.slave = slave
		self.before = termios.tcgetattr(slave)
		self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
					     start_new_session=True)
		self.seen = b""

	def read_until(self, regex, secs, what):
		pat = re.compile(regex)
		end = time.monotonic() + secs
		while not pat.search(self.seen):
			left = end - time.monotonic()
			if left <= 0 or self.proc.poll() is not None:
				raise AssertionError(f"expected {what} within {secs} s; the terminal "
						     f"showed:\n{self.seen.decode('latin-1')[-3000:]}")
			r, _, _ = select.select([self.master], [], [], min(left, 0.5))
			if r:
				try:
					self.seen += os.read(self.master, 65536)
				except OSError:
					pass
		return pat.search(self.seen)

	def type(self, text):
		for ch in text.encode("latin-1"):
			os.write(self.master, bytes([ch]))
			time.sleep(0.02)

	def close(self):
		if self.proc.poll() is None:
			os.killpg(self.proc.pid, signal.SIGKILL)
			self.proc.wait()
		os.close(self.master)
		os.close(self.slave)


def bochs_in(folder):
	"""Whether a bochs-bin process runs in (a folder under) `folder`."""
	for pid in filter(str.isdigit, os.listdir("/proc")):
		try:
			cmd = open(f"/proc/{pid}/cmdline", "rb").read()
			cwd = os.readlink(f"/proc/{pid}/cwd")
		except OSError:
			continue
		if cmd.startswith(b"bochs-bin") and cwd.startswith(folder):
			return True
	return False


def free_port():
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def ctl_request(port, line, secs):
	"""One request on the relayed control channel; its answer object."""
	with socket.create_connection(("127.0.0.1", port), timeout=secs) as c:
		c.sendall(line.encode() + b"\n")
		buf, end = b"", time.monotonic() + secs
		while time.monotonic() < end:
			c.settimeout(max(0.1, end - time.monotonic()))
			try:
				data = c.recv(65536)
			except socket.timeout:
				break
			if not data:
				break
			buf += data
			*lines, buf = buf.split(b"\n")
			for ln in lines:
				try:
					obj = json.loads(ln)
				except ValueError:
					continue  # joined mid-line
				if "status" in obj:
					return obj
	raise AssertionError(f"no answer to '{line}' on the relayed control channel in {secs} s")


@timeout(240)
def test_run_bochs_interactive():
	if not have_tool("bochs-bin"):
		skip("bochs-bin is not installed (scripts/install-deps)")
	need_file(ISO, "make iso")
	build = tempfile.mkdtemp(prefix="run-bochs-", dir=BUILD)
	os.symlink(ISO, os.path.join(build, "amber.iso"))
	env = dict(os.environ, AMBER_BUILD=build)
	env.pop("BUILD", None)
	port = free_port()
	term = Terminal([os.path.join(ROOT, "scripts", "run-bochs"), "--timeout", "200",
			 "--ctl", str(port)], env)
	try:
		term.read_until(rb"Ctrl-A X quits", 20, "the line saying how to quit")
		term.read_until(rb"amber> ", 150, "Amber's prompt")
		after = termios.tcgetattr(term.slave)
		if after[3] & termios.ECHO or after[3] & termios.ICANON:
			raise AssertionError("the terminal is not raw while the shell runs: it would "
					     "echo what is typed a second time")
		start = len(term.seen)
		term.type("help\r")
		term.read_until(rb"snap .*\r\n(.*\r\n)*amber> ", 60, "help's list, then the prompt")
		term.type("disk list\r")
		m = term.read_until(rb"disk list\r\n((?:.*\r\n)*?)amber> ", 60, "the disk list")
		if not re.search(rb"ata\d.*64 MiB", m.group(1)):
			raise AssertionError(f"the scratch disk is not an ATA disk of 64 MiB:\n"
					     f"{m.group(1).decode('latin-1')}")
		out = term.seen[start:].decode("latin-1")
		if not out.startswith("help\r\nCommands") or "amber> disk list\r\n" not in out:
			raise AssertionError(f"'help' not echoed exactly once:\n{out[:400]!r}")
		a = ctl_request(port, "disk list", 60)
		if a["status"] != "ok" or [d["bytes"] for d in a["data"].get("disks", [])] != [64 << 20]:
			raise AssertionError(f"'disk list' through the relayed channel: {a}")
		for noise in ("Bochs x86 Emulator", "bochs-bin", "Next at t=", "<bochs:"):
			if noise in term.seen.decode("latin-1").split("Ctrl-A X quits", 1)[1]:
				raise AssertionError(f"Bochs' own output ('{noise}') reached the terminal")
		term.type("\x01x")
		end = time.monotonic() + 20
		while term.proc.poll() is None and time.monotonic() < end:
			time.sleep(0.2)
		if term.proc.returncode != 0:
			raise AssertionError(f"run-bochs did not quit with status 0 after Ctrl-A X "
					     f"({term.proc.returncode})")
		if bochs_in(build):
			raise AssertionError("Bochs still runs after run-bochs quit")
		if termios.tcgetattr(term.slave) != term.before:
			raise AssertionError("the terminal's settings were not restored")
		disk = os.path.join(build, "scratch-disk-bochs.img")
		if os.path.getsize(disk) != 64 << 20 or os.path.exists(disk + ".lock"):
			raise AssertionError("the scratch disk is missing, of the wrong size or locked")
		for log in ("bochs.log", "bochs.out"):
			if not os.path.getsize(os.path.join(build, log)):
				raise AssertionError(f"{log} is empty: Bochs' output went elsewhere")
	finally:
		term.close()
		shutil.rmtree(build, ignore_errors=True)
