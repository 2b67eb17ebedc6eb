# The control channel (COM2) driven as a user's program would: requests are
# shell command lines, answers and events JSON lines (README "Control
# channel"). QEMU TCG, AMD-V; COM2 is a unix socket QEMU listens on.
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from harness import ROOT, boot_qemu, make_disk, work_dir


class Ctl:
	"""A program on the far end of COM2: sends requests, collects events."""

	def __init__(self, vm, path, timeout=30):
		self.vm = vm
		self.events = []
		self.buf = b""
		self.synced = False
		self.cut = None
		end = time.monotonic() + timeout
		while True:
			try:
				self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
				self.sock.connect(path)
				break
			except OSError:
				self.sock.close()
				if time.monotonic() > end:
					vm.fail(f"no control channel socket at {path}")
				time.sleep(0.2)

	def close(self):
		self.sock.close()

	def send(self, data):
		self.sock.sendall(data if isinstance(data, bytes) else data.encode("latin-1"))

	def next_obj(self, timeout):
		"""The next JSON object Amber sends; every line must be one."""
		end = time.monotonic() + timeout
		while b"\n" not in self.buf:
			left = end - time.monotonic()
			if left <= 0:
				return None
			self.sock.settimeout(left)
			try:
				data = self.sock.recv(65536)
			except socket.timeout:
				return None
			if not data:
				self.vm.fail("Amber closed the control channel")
			self.buf += data
		line, self.buf = self.buf.split(b"\n", 1)
		try:
			obj = json.loads(line)
		except ValueError:
			obj = None
		if obj is None and not self.synced:
			# Connected in the middle of a line (a serial line has no
			# start): skip up to the first whole one, as amber-ctl does.
			return self.next_obj(max(0.01, end - time.monotonic()))
		if obj is None:
			# A line cut short because this program did not read: Amber
			# must say so with a "lost" event next, never send garbage.
			self.cut = line
			return self.next_obj(max(0.01, end - time.monotonic()))
		if self.cut is not None and obj.get("event") != "lost":
			self.vm.fail(f"a line that is not JSON, without a lost event: {self.cut[:200]!r}")
		self.cut = None
		self.synced = True
		return obj

	def answer(self, req_id=None, timeout=30):
		"""The next answer (with `req_id` when given); events are kept."""
		end = time.monotonic() + timeout
		while True:
			obj = self.next_obj(max(0.01, end - time.monotonic()))
			if obj is None:
				self.vm.fail(f"no answer (id {req_id}) on the control channel in {timeout} s")
			if "event" in obj:
				self.events.append(obj)
				continue
			for key in ("status", "message", "data", "output"):
				if key not in obj:
					self.vm.fail(f"answer without '{key}': {obj}")
			if req_id is None or obj.get("id") == req_id:
				return obj
			self.vm.fail(f"expected the answer to request {req_id}, got {obj}")

	def request(self, line, req_id=None, timeout=30):
		self.send((f"#{req_id} " if req_id is not None else "") + line + "\n")
		return self.answer(req_id, timeout)

	def ok(self, line, timeout=30):
		a = self.request(line, timeout=timeout)
		if a["status"] != "ok":
			self.vm.fail(f"'{line}' failed on the control channel: {a}")
		return a

	def error(self, line_or_bytes, err, regex):
		"""Sends raw bytes or a line; expects an error answer with errno name
		`err` and a message matching `regex`."""
		data = line_or_bytes if isinstance(line_or_bytes, bytes) else \
			(line_or_bytes + "\n").encode("latin-1")
		self.send(data)
		a = self.answer()
		if a["status"] != "error" or a.get("error") != err or not re.search(regex, a["message"]):
			self.vm.fail(f"expected error {err} /{regex}/, got {a}")
		return a

	def wait_event(self, pred, what, timeout=30):
		"""Waits for an event for which pred(obj) holds (also among those kept)."""
		for e in self.events:
			if pred(e):
				return e
		end = time.monotonic() + timeout
		while time.monotonic() < end:
			obj = self.next_obj(max(0.01, end - time.monotonic()))
			if obj is None:
				break
			if "event" not in obj:
				self.vm.fail(f"an answer arrived while only events were expected: {obj}")
			self.events.append(obj)
			if pred(obj):
				return obj
		self.vm.fail(f"no {what} event in {timeout} s; events: {self.events[-10:]}")


def sock_path():
	# A unix socket path must stay under 108 bytes: not in the build tree.
	d = tempfile.mkdtemp(prefix="amber-ctl-")
	return d, os.path.join(d, "ctl.sock")


class booted:
	"""QEMU with COM2 on a unix socket, at the prompt, and a Ctl on it."""

	def __init__(self, disks=(), cmdline="", modules=(), mem="512M"):
		self.dir, path = sock_path()
		self.vm = boot_qemu(disks=disks, cmdline=cmdline, modules=modules, mem=mem,
				    extra=["-chardev", f"socket,id=ctl,path={path},server=on,wait=off",
					   "-serial", "chardev:ctl"])
		try:
			self.vm.boot_text = self.vm.wait_prompt()
			self.ctl = Ctl(self.vm, path)
		except BaseException:
			self.vm.stop()
			shutil.rmtree(self.dir, ignore_errors=True)
			raise

	def __enter__(self):
		return self.vm, self.ctl

	def __exit__(self, *exc):
		self.ctl.close()
		self.vm.stop()
		shutil.rmtree(self.dir, ignore_errors=True)


def test_ctl_vm_lifecycle():
	with booted() as (vm, ctl):
		a = ctl.ok("vm list")
		if a["data"].get("vms") != []:
			vm.fail(f"expected an empty VM list in data, got {a}")
		a = ctl.request("vm create hello -- one two", req_id=7)
		if a["status"] != "ok" or a["id"] != 7 or a["command"] != "vm create hello -- one two":
			vm.fail(f"vm create through the channel: {a}")
		ctl.wait_event(lambda e: e["event"] == "state" and e["vm"] == 1, "VM 1 created")
		ctl.ok("vm start 1")
		ctl.wait_event(lambda e: e["event"] == "output" and e["vm"] == 1
				      and e["line"] == "cmdline: hello one two", "guest output")
		ex = ctl.wait_event(lambda e: e["event"] == "exit" and e["vm"] == 1, "VM 1 exit")
		if ex.get("code") != 0 or ex.get("state") != "exited":
			vm.fail(f"exit event without code 0: {ex}")
		vms = ctl.ok("vm list")["data"]["vms"]
		if len(vms) != 1 or vms[0]["id"] != 1 or vms[0]["state"] != "exited" \
				or vms[0]["exit_code"] != 0 or vms[0]["image"] != "hello":
			vm.fail(f"vm list data after the exit: {vms}")
		info = ctl.ok("vm info 1")
		d = info["data"]["vm"]
		if d["cmdline"] != "hello one two" or d["vcpus"] != 1 or not d["vcpu"][0]["exits"]:
			vm.fail(f"vm info data: {d}")
		if "exit code: 0" not in info["output"]:
			vm.fail(f"vm info output as the shell prints it: {info['output']!r}")
		# The CPU model, as `vm info` shows it: host unless cpu= said else.
		if d.get("cpu") != "host" or "CPU model: host" not in info["output"]:
			vm.fail(f"vm info's CPU model: data {d.get('cpu')!r}, output {info['output']!r}")
		ctl.ok("vm create hello cpu=portable -- three")
		p = ctl.ok("vm info 2")
		if p["data"]["vm"].get("cpu") != "portable" or "CPU model: portable" not in p["output"]:
			vm.fail(f"vm info of a portable VM: {p}")
		# An error carries the text the shell prints for the same mistake.
		a = ctl.request("vm start 5")
		shell = vm.cmd("vm start 5").strip()
		if a["status"] != "error" or a["message"] != shell:
			vm.fail(f"error text differs: channel {a['message']!r}, shell {shell!r}")
		# The person's shell on COM1 saw none of the channel's output.
		if "created vm 1" in vm.seen:
			vm.fail("a channel request's output reached COM1")
		ctl.ok("help")  # every shell command is reachable, long output included


def test_ctl_snapshot():
	disk = make_disk(64 << 20)
	with booted(disks=[("virtio", disk)]) as (vm, ctl):
		d = ctl.ok("disk list")["data"]["disks"]
		if len(d) != 1 or d[0]["bytes"] != 64 << 20 or d[0]["kind"] != "virtio-blk":
			vm.fail(f"disk list data: {d}")
		ctl.ok("vm create counter mem=16M -- every=2000000")
		ctl.ok("vm start 1")
		ctl.wait_event(lambda e: e["event"] == "output" and e["line"].startswith("count="),
			       "counter output")
		a = ctl.ok("snap save 1 nightly", timeout=120)
		s = a["data"].get("save")
		if not s or s["vm"] != 1 or s["name"] != "nightly" or s["memory"] != 16 << 20 \
				or not 0 < s["pages_stored"] <= s["pages"] or not s["bytes_written"]:
			vm.fail(f"save report data: {a}")
		if not a["message"].startswith("saved VM 1 as 'nightly'") or "\r" in a["output"] \
				or "[#" in a["output"]:
			vm.fail(f"save message/output (no progress bar expected): {a}")
		snaps = ctl.ok("snap list")["data"]["snapshots"]
		if [x["name"] for x in snaps] != ["nightly"] or snaps[0]["state"] != "complete":
			vm.fail(f"snap list data: {snaps}")
		a = ctl.ok("snap restore nightly", timeout=120)
		r = a["data"].get("restore")
		if not r or r["vm"] != 2 or r["state"] != "paused" or r["image_bytes"] != s["image_bytes"]:
			vm.fail(f"restore report data: {a}")
		ctl.ok("vm resume 2")
		ctl.wait_event(lambda e: e["event"] == "output" and e["vm"] == 2, "restored VM output")
		vms = ctl.ok("vm list")["data"]["vms"]
		if [v["id"] for v in vms] != [1, 2]:
			vm.fail(f"vm list after restore: {vms}")
		# A lazy restore reports the same object (one function writes both),
		# less what only a full restore knows.
		lz = ctl.ok("snap restore nightly --lazy", timeout=120)["data"].get("restore")
		full_only = {"image_bytes", "create_us", "disk_read_us", "chain", "pages_zeroed"}
		if not lz or lz["vm"] != 3 or lz["lazy"] is not True or r["lazy"] is not False \
				or set(lz) != set(r) - full_only or {lz["cpu"], r["cpu"]} != {"host"}:
			vm.fail(f"lazy restore report data {lz} against the full one's {r}")


def test_ctl_malformed():
	with booted() as (vm, ctl):
		before = ctl.ok("vm list")["data"]
		ctl.error('{"command": "vm list"}', "EINVAL", r"not JSON")
		a = ctl.error("nosuch arg", "ENOENT", r"^error: nosuch: unknown command")
		if a["message"] != vm.cmd("nosuch arg").strip():
			vm.fail(f"unknown command text differs from the shell's: {a}")
		ctl.error(b"vm " + b"x" * (10 * 1024) + b"\n", "E2BIG", r"line too long \(10243 bytes")
		ctl.error(b"vm\x00 li\xfest\n", "EINVAL", r"2 non-text byte")
		ctl.error("#12x vm list", "EINVAL", r"request id")
		ctl.error("#3", "EINVAL", r"no command")
		ctl.error("vm console 1", "EPERM", r"needs a terminal")
		ctl.error("vm create nosuchimage", "EINVAL", r"no guest image 'nosuchimage'")
		if ctl.ok("vm list")["data"] != before:
			vm.fail("a malformed request changed the VM list")
		vm.cmd_ok("version")  # the person's shell lives on


def test_ctl_busy_during_save():
	disk = make_disk(128 << 20)
	with booted(disks=[("virtio", disk)]) as (vm, ctl):
		ctl.ok("vm create counter mem=64M -- every=2000000")
		ctl.ok("vm start 1")
		ctl.wait_event(lambda e: e["event"] == "output", "counter output")
		# Both requests in one write: the second arrives while the save runs.
		ctl.send("#1 snap save 1 big\n#2 vm kill 1\n#3 snap delete big\n")
		busy = [ctl.answer(2, timeout=120), ctl.answer(3, timeout=120)]
		for b in busy:
			if b["status"] != "error" or b["error"] != "EBUSY" \
					or "'snap save 1 big' is running" not in b["message"]:
				vm.fail(f"expected a busy answer during the save, got {b}")
		a = ctl.answer(1, timeout=120)
		if a["status"] != "ok" or not a["data"].get("save"):
			vm.fail(f"the save itself: {a}")
		vms = ctl.ok("vm list")["data"]["vms"]
		snaps = ctl.ok("snap list")["data"]["snapshots"]
		if len(vms) != 1 or [x["name"] for x in snaps] != ["big"]:
			vm.fail(f"refused requests changed something: {vms} {snaps}")


def test_ctl_console_commands_are_events():
	with booted() as (vm, ctl):
		vm.cmd_ok("vm create hello")
		e = ctl.wait_event(lambda e: e["event"] == "command", "console command")
		if e["from"] != "console" or e["command"] != "vm create hello" or e["status"] != "ok":
			vm.fail(f"console command event: {e}")


def test_ctl_boot_script():
	rc = os.path.join(work_dir(), "amber.rc")
	with open(rc, "w") as f:
		f.write("# made by test_ctl\nvm create hello -- from-rc\nvm start 2\nnosuch\n")
	with booted(cmdline='amber.run="vm create hello -- from-cmdline; vm start 1"',
		    modules=[(rc, "")]) as (vm, ctl):
		text = vm.boot_text
		for want in (r"\[boot\] vm create hello -- from-cmdline", r"\[boot\] vm start 1",
			     r"\[boot\] vm start 2", r"\[boot\] nosuch\n.*unknown command",
			     r"\[boot\] failed \(ENOENT\)", r"\[boot\] ok"):
			if not re.search(want, text):
				vm.fail(f"expected /{want}/ in the boot output:\n{text}")
		if "made by test_ctl" in text:
			vm.fail("a comment of amber.rc was run")
		out = vm.cmd_ok("vm images")
		if not re.search(r"(?m)^amber\.rc\s.*module\s+boot script", out):
			vm.fail(f"'vm images' should call amber.rc the boot script:\n{out}")
		# The guests may be done before the program connects: ask, do not wait
		# for events.
		end = time.monotonic() + 30
		while True:
			vms = ctl.ok("vm list")["data"]["vms"]
			if [(v["id"], v["state"]) for v in vms] == [(1, "exited"), (2, "exited")]:
				break
			if time.monotonic() > end:
				vm.fail(f"the boot script's VMs did not run to their exit: {vms}")
			time.sleep(0.5)
		for vid, arg in ((1, "from-cmdline"), (2, "from-rc")):
			if f"[vm{vid}] cmdline: hello {arg}" not in vm.seen:
				vm.fail(f"VM {vid} did not run with '{arg}'")


def test_ctl_absent_com2():
	# Without COM2 Amber boots as before and says nothing of a channel.
	vm = boot_qemu()
	with vm:
		text = vm.wait_prompt()
		if "control channel" in text:
			vm.fail("a control channel was announced without COM2")
		vm.cmd_ok("version")


def test_ctl_scripts_expose_channel():
	# run-qemu and run-bochs put COM2 on a socket with --ctl (no emulator runs).
	out = subprocess.run([os.path.join(ROOT, "scripts", "run-qemu"), "--ctl", "/tmp/x.sock",
			      "--print-cmd"], capture_output=True, text=True, timeout=30).stdout
	if not re.search(r"-serial \S+ .*-chardev socket,id=ctl,path=/tmp/x.sock,server=on,"
			 r"wait=off -serial chardev:ctl", out):
		raise AssertionError(f"run-qemu --ctl: {out}")
	# (the interactive run-bochs relays it itself: test_run_bochs)
	out = subprocess.run([os.path.join(ROOT, "scripts", "run-bochs"), "--ctl", "5555",
			      "--serial-tcp", "5556", "--print-rc"], capture_output=True, text=True,
			     timeout=30).stdout
	if "com2: enabled=1, mode=socket-server, dev=127.0.0.1:5555" not in out:
		raise AssertionError(f"run-bochs --ctl: {out}")


def test_amber_ctl_tool():
	# The host tool against a live channel: one command, --json, an error.
	d, path = sock_path()
	vm = boot_qemu(extra=["-chardev", f"socket,id=ctl,path={path},server=on,wait=off",
			      "-serial", "chardev:ctl"])
	tool = os.path.join(ROOT, "tools", "amber-ctl")
	try:
		with vm:
			vm.wait_prompt()
			r = subprocess.run([tool, path, "vm", "create", "hello", "--", "a b"],
					   capture_output=True, text=True, timeout=60)
			if r.returncode != 0 or "vm 1" not in r.stdout.lower():
				vm.fail(f"amber-ctl vm create: {r}")
			r = subprocess.run([tool, path, "vm", "list", "--json"], capture_output=True,
					   text=True, timeout=60)
			obj = json.loads(r.stdout)
			vms = obj["data"]["vms"]
			if r.returncode != 0 or vms[0]["id"] != 1 or vms[0]["image"] != "hello":
				vm.fail(f"amber-ctl --json: {r}")
			r = subprocess.run([tool, path, "vm", "start", "5"], capture_output=True,
					   text=True, timeout=60)
			if r.returncode != 1 or "there is no VM '5'" not in r.stdout:
				vm.fail(f"amber-ctl on an error answer: {r}")
			script = os.path.join(d, "script")
			with open(script, "w") as f:
				f.write("vm start 1\nvm list\n")
			r = subprocess.run([tool, path, "-f", script], capture_output=True, text=True,
					   timeout=60)
			if r.returncode != 0 or "amber> vm list" not in r.stdout:
				vm.fail(f"amber-ctl -f: {r}")
	finally:
		shutil.rmtree(d, ignore_errors=True)


def test_ctl_slow_reader():
	# A program that stops reading while a guest prints fast: Amber must go on
	# (COM1 answers) and the program later gets whole lines, or a cut line and
	# a "lost" event (Ctl fails otherwise), then a good answer.
	with booted() as (vm, ctl):
		ctl.ok("vm create counter -- every=100000")
		ctl.ok("vm start 1")
		time.sleep(3)
		vm.cmd_ok("version", timeout=10)
		time.sleep(2)
		a = ctl.request("#9 vm list", timeout=30)
		if a.get("id") != 9 or a["data"]["vms"][0]["state"] != "running":
			vm.fail(f"the answer after a slow read: {a}")
