# Debian's Linux with two vCPUs (issue 14) on AMD-V in QEMU TCG, time counted by
# instructions (-icount) as the other Linux tests: the kernel brings its AP up
# with INIT-SIPI-SIPI through Amber's virtual LAPIC and /proc/cpuinfo lists
# both processors; saved mid-run with a workload on both vCPUs, restored,
# resumed, rebooted. Without the Debian files every test SKIPs (77).
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import vm_cases  # noqa: E402
from harness import strip_ansi, timeout  # noqa: E402
from test_linux import MARKER, boot, console_line, material  # noqa: E402


def boot_with(n):
	"""cpus=n: Linux boots to its shell, says it brought up n CPUs, and
	/proc/cpuinfo lists n processors."""
	kernel, initrd = material()
	with boot(kernel, initrd) as vm:
		vm.wait_prompt(timeout=60)
		vid = vm_cases.create(vm, f"vmlinuz mem=256M cpus={n} initrd=initramfs.cpio.gz -- "
				      "console=ttyS0", timeout=60)
		start = len(vm.seen)
		vm_cases.start(vm, vid)
		m = vm.wait_for(rf"\[vm{vid}\] (stopped: .*|.*{MARKER}.*|.*Kernel panic.*)",
				timeout=300, what=f"vm {vid} to stop, panic or print {MARKER}")
		if MARKER not in m.group(1):
			vm.fail(f"Linux with {n} vCPUs did not boot: {m.group(1)}\n"
				+ strip_ansi(vm.seen[start:])[-4000:])
		log = strip_ansi(vm.seen[start:])
		if not re.search(rf"Brought up \d+ nodes?, {n} CPUs", log):
			vm.fail(f"Linux should say it brought up {n} CPUs:\n" + log[-4000:])
		m = console_line(vm, vid, "echo CPUS-$(grep -c ^processor /proc/cpuinfo)",
				 r"CPUS-(\d+)", 120)
		if m.group(1) != str(n):
			vm.fail(f"/proc/cpuinfo lists {m.group(1)} processors, expected {n}")


@timeout(420)
def test_linux_two_vcpus():
	boot_with(2)


@timeout(420)
def test_linux_four_vcpus():
	boot_with(4)

def boot_disk_icount(kernel, initrd, disk):
	"""QEMU TCG, AMD-V, the Linux modules, a virtio-blk snapshot disk, and
	time counted by instructions (-icount): without it, on a loaded host,
	the AP's bring-up was seen to stall in Linux's calibrate_delay (see
	docs/vmm.md, "Several vCPUs")."""
	args, _ = harness._qemu_args([(kernel, "console=ttyS0"), (initrd, "")],
				     [("virtio", disk)], "512M", "", (), None, False)
	args += ["--accel", "tcg", "--cpu", "max", "--icount"]
	return harness.Emulator("qemu-svm-linux-smp", lambda port, _: args + ["--serial-tcp", str(port)])


def wait_marker(vm, vid, wait_s):
	"""Waits for the initramfs' marker; a guest that does not get there is
	paused and its vCPUs shown (where each one is) in the failure."""
	try:
		vm.wait_for(rf"\[vm{vid}\] .*{MARKER}", timeout=wait_s, what=MARKER)
	except AssertionError:
		vm.cmd(f"vm pause {vid}")
		vm.fail(f"Linux did not reach {MARKER}:\n" + vm.cmd(f"vm info {vid}"))


def cpu_times(vm, vid, wait_s):
	"""{cpu: user + system jiffies} from the guest's /proc/stat."""
	start = len(vm.seen)
	console_line(vm, vid, "grep ^cpu[0-9] /proc/stat; echo END-$((2+2))", r"END-4", wait_s)
	return {int(c): int(u) + int(s) for c, u, s in
		re.findall(r"(?m)cpu(\d+) (\d+) \d+ (\d+) ", strip_ansi(vm.seen[start:]))}


def both_busy(vm, vid, wait_s):
	"""Both vCPUs run the parallel workload: each one's busy time grows."""
	a = cpu_times(vm, vid, wait_s)
	time.sleep(2)
	b = cpu_times(vm, vid, wait_s)
	if sorted(a) != [0, 1] or not all(b[c] > a[c] for c in (0, 1)):
		vm.fail(f"both vCPUs should run the workload: /proc/stat {a} then {b}")


@timeout(600)
def test_linux_two_vcpus_save_restore_reboot():
	"""cpus=2 with a parallel workload (two busy loops) running on both vCPUs:
	saved mid-run, killed, restored and resumed, both CPUs online and busy
	again; then `reboot -f`: the reset puts the AP back into wait-for-SIPI
	and Linux brings it up once more."""
	kernel, initrd = material()
	disk = harness.make_disk(256 << 20)
	with boot_disk_icount(kernel, initrd, disk) as vm:
		vm.wait_prompt(timeout=60)
		vid = vm_cases.create(vm, "vmlinuz mem=128M cpus=2 initrd=initramfs.cpio.gz -- "
				      "console=ttyS0", timeout=60)
		vm_cases.start(vm, vid)
		wait_marker(vm, vid, 300)
		console_line(vm, vid, "(while :; do :; done) & (while :; do :; done) & "
			     "echo BUSY-$((3+3))", r"BUSY-6", 60)
		both_busy(vm, vid, 60)
		out = vm.cmd_ok(f"snap save {vid} lx2", timeout=180)
		if not re.search(r"saved VM \d+ as .*running again", out):
			vm.fail(f"'snap save' of the running 2-vCPU Linux VM:\n{out}")
		vm.cmd_ok(f"vm kill {vid}")
		out = vm.cmd_ok("snap restore lx2", timeout=180)
		again = int(re.search(r"as VM (\d+)", out).group(1))
		vm.cmd_ok(f"vm info {again}", expect=r"2 vCPUs")
		vm.cmd_ok(f"vm resume {again}")
		console_line(vm, again, "echo ONLINE-$(cat /sys/devices/system/cpu/online)",
			     r"ONLINE-0-1", 60)
		both_busy(vm, again, 60)
		start = len(vm.seen)
		console_line(vm, again, "reboot -f", rf"\[vm{again}\] reset through [^:]*: booting",
			     120)
		m = vm.wait_for(rf"\[vm{again}\] .*(Brought up \d+ nodes?, \d CPUs|Kernel panic.*)",
				timeout=300, what="the rebooted kernel bringing up its CPUs")
		if "2 CPUs" not in m.group(1):
			vm.fail(f"after the reset Linux should bring up 2 CPUs again: {m.group(1)}\n"
				+ strip_ansi(vm.seen[start:])[-3000:])
		wait_marker(vm, again, 300)


@timeout(600)
def test_linux_two_vcpus_on_two_cpus():
	"""Linux with its 2 vCPUs placed on the two APs of -smp 3 (pin=1,2; time
	counted by instructions, so the three emulated CPUs take turns in one
	QEMU thread): it boots, lists both processors, and a busy loop on each
	vCPU gets time on both."""
	kernel, initrd = material()
	args, _ = harness._qemu_args([(kernel, "console=ttyS0"), (initrd, "")], (), "512M", "", (),
				     None, False, 3)
	args += ["--accel", "tcg", "--cpu", "max", "--icount"]
	emu = harness.Emulator("qemu-svm-linux-pinned",
			       lambda port, _: args + ["--serial-tcp", str(port)])
	with emu as vm:
		vm.wait_prompt(timeout=60)
		vid = vm_cases.create(vm, "vmlinuz mem=256M cpus=2 pin=1,2 initrd=initramfs.cpio.gz -- "
				      "console=ttyS0", timeout=60)
		vm_cases.start(vm, vid)
		wait_marker(vm, vid, 400)
		m = console_line(vm, vid, "echo CPUS-$(grep -c ^processor /proc/cpuinfo)",
				 r"CPUS-(\d+)", 120)
		if m.group(1) != "2":
			vm.fail(f"/proc/cpuinfo lists {m.group(1)} processors, expected 2")
		before = cpu_times(vm, vid, 120)
		console_line(vm, vid, "for i in 0 1; do (while :; do :; done) & done; echo BUSY-$((1+1))",
			     r"BUSY-2", 60)
		time.sleep(5)
		after = cpu_times(vm, vid, 120)
		for c in (0, 1):
			if after.get(c, 0) <= before.get(c, 0):
				vm.fail(f"guest CPU {c} got no time for its busy loop: {before} -> {after}")
		out = vm.cmd_ok("cpu")
		for c in (1, 2):
			if not re.search(rf"(?m)^\s*{c}\s+\d+\s+online, runs 1 vCPU\b", out):
				vm.fail(f"`cpu` should show CPU {c} running 1 vCPU:\n{out}")
