# The foundation shell as a person at the serial console meets it: banner,
# commands, line editing, history, completion, bad input. Each test boots Amber
# in QEMU (-kernel, TCG, well under a second) and types at the prompt.
import random
import re
import time

from harness import boot_qemu, make_disk

ESC_LEFT = "\x1b[D"
ESC_UP = "\x1b[A"
ESC_HOME = "\x1b[H"
BACKSPACE = "\x7f"
CTRL_C = "\x03"
CTRL_U = "\x15"


def booted():
	"""A QEMU that has reached the prompt, without disks."""
	vm = boot_qemu()
	try:
		vm.boot_text = vm.wait_prompt()
	except BaseException:
		vm.stop()
		raise
	return vm


def expect(vm, regex, text, what):
	"""Fails with `what` when `regex` is not in `text` (multi-line, as output)."""
	if not re.search(regex, text, re.M):
		vm.fail(f"expected {what} (/{regex}/) in:\n{text.rstrip()}")


def expect_version(vm, out, how):
	expect(vm, r"^Amber \S+", out, f"the version line after {how}")


def test_banner():
	with booted() as vm:
		expect(vm, r"^Amber \S+", vm.boot_text, "a banner line beginning with 'Amber'")
		expect(vm, r"help", vm.boot_text, "a hint to type 'help'")


def test_help_lists_commands():
	with booted() as vm:
		out = vm.cmd_ok("help")
		for name in ("help", "version", "uptime", "mem", "log", "poweroff"):
			expect(vm, rf"^\s+{name}\s+\S", out, f"'{name}' with its summary in help")


def test_help_command():
	with booted() as vm:
		out = vm.cmd_ok("help version")
		expect(vm, r"^usage: version", out, "the usage line of 'version'")
		out = vm.cmd("help nosuchcommand")
		expect(vm, r"nosuchcommand", out, "a message naming the unknown command")
		# A help text longer than printk's stack buffer arrives whole.
		out = vm.cmd_ok("help vm")
		expect(vm, r"^\s+vm screen ID\s", out, "the last line of the long 'help vm' text")


def test_help_subcommand():
	"""`help CMD SUB` comes from the command's table: its usage and what it does."""
	with booted() as vm:
		out = vm.cmd_ok("help vm create")
		expect(vm, r"^usage: vm create IMAGE \[OPTION\.\.\.\] \[-- ARGS\]", out, "the usage of 'vm create'")
		expect(vm, r"^\s+mem=SIZE\s+its RAM", out, "the options of 'vm create' explained")
		out = vm.cmd_ok("help snap save")
		expect(vm, r"^usage: snap save VM NAME", out, "the usage of 'snap save'")
		out = vm.cmd("help vm frob")
		expect(vm, r"^error: help: 'vm' has no subcommand 'frob'; see 'help vm'", out,
		       "an unknown subcommand named")
		out = vm.cmd("help version now")
		expect(vm, r"^error: help: 'version' has no subcommands", out, "no subcommands")


def test_one_error_style():
	"""Every mistake answers "error: CMD[ SUB]: ..." naming what to do; an
	unknown subcommand of any command names the valid ones."""
	with booted() as vm:
		for cmd, subs in (("vm", "images|create|list|start"), ("snap", "save|restore|list"),
				  ("disk", "list|info|read"), ("mem", "map|probe")):
			out = vm.cmd(f"{cmd} frob")
			expect(vm, rf"\Aerror: {cmd}: there is no subcommand 'frob'; see 'help {cmd}'\n"
			       rf"usage: {cmd} {re.escape(subs)}", out, f"'{cmd} frob' refused")
		for line, regex in (("vm start", r"\Aerror: vm start: wrong arguments \('help vm start'"
				     r".*\nusage: vm start ID$"),
				    ("vm info 7", r"\Aerror: vm info: there is no VM '7'; 'vm list'"),
				    ("snap save 7 x", r"\Aerror: snap save: there is no VM '7'; 'vm list'"),
				    ("disk info 3", r"\Aerror: disk info: there is no disk"),
				    ("snap list disk=3", r"\Aerror: snap list: there is no disk"),
				    ("version now", r"\Aerror: version: wrong arguments"),
				    ("frob", r"\Aerror: frob: unknown command; 'help' lists"),
				    ("help frob", r"\Aerror: help: frob: unknown command; 'help' lists")):
			out = vm.cmd(line)
			expect(vm, regex, out, f"'{line}' refused in the one style")


def test_version():
	with booted() as vm:
		out = vm.cmd_ok("version")
		expect_version(vm, out, "'version'")
		expect(vm, r"Multiboot 1", out, "'Multiboot 1' (QEMU -kernel)")


def uptime(vm):
	"""(seconds, ticks) from the `uptime` command."""
	out = vm.cmd_ok("uptime")
	m = re.search(r"up (\d+)\.(\d+) s \((\d+) ticks", out)
	if not m:
		vm.fail(f"expected 'up S.mmm s (N ticks' from uptime, got:\n{out}")
	return int(m.group(1)) + int(m.group(2)) / 10 ** len(m.group(2)), int(m.group(3))


def test_uptime_increases():
	with booted() as vm:
		s1, t1 = uptime(vm)
		time.sleep(0.3)
		s2, t2 = uptime(vm)
		assert t2 > t1, f"ticks did not increase: {t1} then {t2}"
		assert s2 >= s1, f"seconds went back: {s1} then {s2}"
		# A tick is one microsecond: seconds and ticks tell the same time.
		assert abs(t2 / 1e6 - s2) < 0.01, f"{t2} ticks but {s2} s"
		assert t2 - t1 >= 100_000, f"only {t2 - t1} ticks passed in 0.3 s of wall time"


def test_mem():
	with booted() as vm:
		out = vm.cmd_ok("mem")
		expect(vm, r"^\s+[0-9a-f]{16}-[0-9a-f]{16}\s+.*usable", out,
		       "a usable range in the map")
		m = re.search(r"^Free: (\d+(?:\.\d+)?) (KiB|MiB|GiB)", out, re.M)
		if not m:
			vm.fail(f"expected 'Free: N MiB' in:\n{out}")
		mib = float(m.group(1)) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m.group(2)]
		# QEMU gives 512 MiB; the kernel keeps some, most must be free.
		assert 256 < mib <= 512, f"free memory {mib:.0f} MiB is implausible for 512 MiB"


def test_log():
	with booted() as vm:
		out = vm.cmd_ok("log")
		expect(vm, r"Multiboot", out, "the boot messages (Multiboot ...) in the log")
		expect(vm, r"memory", out, "the memory message in the log")


def test_unknown_command():
	with booted() as vm:
		out = vm.cmd("frobnicate now")
		lines = [l for l in out.splitlines() if l.strip()]
		assert len(lines) == 1 and "unknown command" in lines[0], \
			f"expected one line with 'unknown command', got:\n{out}"
		expect_version(vm, vm.cmd("version"), "an unknown command")


def test_overlong_line():
	with booted() as vm:
		out = vm.cmd("x" * 1000)
		expect(vm, r"too long", out, "a 'too long' message for a 1000-character line")
		expect_version(vm, vm.cmd("version"), "an overlong line")


def test_binary_garbage():
	with booted() as vm:
		rng = random.Random(1234)   # the same bytes every run
		junk = bytes(rng.randrange(256) for _ in range(2000))
		junk += b"\x1b[" + b"9" * 40 + b"\x1b[1;2;3X\x1bO\x1b\x1b[[A\x00\xff\x7f\x08"
		vm.send(junk)
		vm.wait_quiet(idle=1.0, timeout=60)
		# Whatever state the junk left: the first Ctrl-C may only end an escape
		# sequence, the second cancels the line; then the shell must answer.
		vm.send(CTRL_C + CTRL_C)
		vm.wait_quiet(idle=0.5, timeout=20)
		expect_version(vm, vm.cmd("version"), "2 KB of binary garbage")


def test_backspace():
	with booted() as vm:
		out = vm.cmd("verzion" + BACKSPACE * 4 + "sion")
		expect_version(vm, out, "'verzion', 4 backspaces, 'sion'")


def test_left_arrow_insert():
	with booted() as vm:
		# "vrsion", the cursor 5 left (after the v), insert "e": "version".
		out = vm.cmd("vrsion" + ESC_LEFT * 5 + "e")
		expect_version(vm, out, "inserting with the left arrow")


def test_line_wider_than_the_terminal():
	"""A line of 100 columns: the arrows and Home move across its rows, and its
	echo reaches the program as one line (the terminal wraps it, not Amber)."""
	with booted() as vm:
		start = len(vm.seen)
		out = vm.cmd(" " * 80 + "vrsion" + ESC_LEFT * 5 + "e" + ESC_HOME + "help")
		expect(vm, r"\Ausage: version\n", out, "'help' + 80 spaces + 'version' edited across rows")
		echo = vm.seen[start:].split("usage: version")[0]
		assert echo.count("\n") == 1, f"the echo of one line held newlines: {echo!r}"


def test_full_line_stops_echoing():
	"""At 255 characters typing rings the bell once and echoes no more; Enter
	refuses the line rather than run it cut short."""
	with booted() as vm:
		start = len(vm.seen)
		vm.send("x" * 300)
		vm.wait_quiet(idle=0.5, timeout=20)
		echo = vm.seen[start:]
		assert echo.count("x") == 255 and echo.count("\a") == 1, \
			f"{echo.count('x')} x echoed and {echo.count(chr(7))} bells for 300 typed"
		out = vm.cmd("")
		expect(vm, r"^error: line too long: at most 255 characters; nothing was run", out,
		       "the full line refused")
		expect_version(vm, vm.cmd("version"), "a full line")


def test_ctrl_u_clears_line():
	with booted() as vm:
		out = vm.cmd("nonsense words" + CTRL_U + "version")
		expect_version(vm, out, "Ctrl-U then 'version'")
		assert "unknown command" not in out, f"Ctrl-U left text behind:\n{out}"


def test_ctrl_c_cancels_line():
	with booted() as vm:
		vm.send("poweroff" + CTRL_C)
		vm.wait_for(r"\^C", what="'^C' echoed")
		vm.wait_prompt(10)
		expect_version(vm, vm.cmd("version"), "a cancelled line")


def test_history_up_arrow():
	with booted() as vm:
		vm.cmd_ok("help version")
		out = vm.cmd(ESC_UP)
		expect(vm, r"^usage: version", out, "'help version' run again by the up arrow")


def test_tab_completion():
	with booted() as vm:
		out = vm.cmd("vers\t")
		expect_version(vm, out, "'vers' completed by Tab")


def test_poweroff():
	with booted() as vm:
		vm.send("poweroff\r")
		vm.expect_exit(timeout=20, code=0)


def test_pci_host_bridge():
	with booted() as vm:
		out = vm.cmd_ok("pci")
		expect(vm, r"8086:1237", out, "the i440FX host bridge 8086:1237")


def test_acpi_tables():
	with booted() as vm:
		out = vm.cmd_ok("acpi")
		expect(vm, r"FACP", out, "the FADT (FACP)")
		expect(vm, r"APIC", out, "the MADT (APIC)")


def test_cpu_svm_npt():
	with booted() as vm:
		out = vm.cmd_ok("cpu")
		expect(vm, r"^AMD-V:\s+yes", out, "AMD-V (SVM) present under QEMU -cpu max")
		expect(vm, r"\bNPT yes\b", out, "NPT present under QEMU -cpu max")
		expect(vm, r"^virtualization: AMD-V with NPT", out, "the verdict 'AMD-V with NPT'")
		expect(vm, r"^backend:\s+AMD-V in use", out, "the backend the VMM chose")


def _help_lines(vm):
	"""Every `help` page: each command's, each subcommand's."""
	lines = ["help"]
	for name in re.findall(r"^  (\S+) ", vm.cmd_ok("help"), re.M):
		lines.append(f"help {name}")
		out = vm.cmd_ok(f"help {name}")
		lines += [f"help {name} {sub}" for sub in
			  sorted(set(re.findall(rf"^  {name} ([a-z][a-z-]*)\b", out, re.M)))]
	return lines


def test_every_line_fits_80_columns():
	"""The 80-column rule on what every listing, report and help page prints,
	and on the errors: a VM and its snapshot round trip on a disk."""
	disk = make_disk(64 << 20, name="cols.img")
	with boot_qemu(disks=[("virtio", disk)]) as vm:
		vm.wait_prompt()
		lines = _help_lines(vm) + [
			"version", "uptime", "log", "mem", "mem map 0x100000 0xffffffff80000000",
			"cpu", "pci", "acpi", "disk list", "disk info 0", "disk read 0 0",
			"disk sum 0 0 64", "disk frob", "vm images", "vm list",
			"vm create counter -- every=20000000", "vm create hello", "vm list",
			"vm start 1", "vm info 1", "vm pause 1", "vm info 1", "snap dirty 1 start",
			"snap dirty 1 show", "snap dirty 1 stop", "snap save 1 nightly-build-of-the-test-vm-31",
			"snap save 1 nightly-build-of-the-test-vm-31", "snap save 9 x", "snap list", "snap list --verbose",
			"snap info nightly-build-of-the-test-vm-31", "snap verify nightly-build-of-the-test-vm-31",
			"snap restore nightly-build-of-the-test-vm-31", "snap restore nosuch",
			"snap save 1 nightly-build-of-the-test-vm-31 --replace",
			"snap save 1 kid --parent nightly-build-of-the-test-vm-31", "snap list",
			"snap list --verbose", "snap restore kid",
			"snap restore nightly-build-of-the-test-vm-31 --lazy into=4",
			"snap restore kid into=4", "snap restore kid into=9", "vm console 2",
			"snap reset 1", "snap reset 1 --info", "snap reset 1 --drop", "snap reset 9",
			"vm images hostile", "vm list", "vm info 3",
			"vm resume 3", "vm start 2", "vm list", "snap delete nightly-build-of-the-test-vm-31",
			"snap format 0", "vm kill 3", "vm frob", "snap frob", "vm create nosuch",
			"help vm frob", "frob"]
		wide = []
		for line in lines:
			out = vm.cmd(line, timeout=60)
			wide += [f"{line!r}: {len(l)}: {l}" for l in out.splitlines() if len(l) > 80]
		if wide:
			vm.fail("lines wider than 80 columns:\n" + "\n".join(wide))
