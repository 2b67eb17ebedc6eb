# A snapshot taken with a timer running, restored across vendors on a host
# whose TSC runs at another rate (Bochs VT-x, whose TSC counts instructions at
# the ips it is given; QEMU TCG AMD-V with -icount at 1 GHz): the guest's
# timers keep their rate against its own TSC (the guest measures it: the
# 8254's IRQ0 and the LAPIC timer at 1 kHz, the RTC's periodic flag at 64 Hz),
# `snap restore` says how the TSC now runs, and 'vm info' shows the guest's
# TSC running at its saved rate against the host's clock where the backend
# scales it (VT-x's TSC multiplier in Bochs), at the host's where it cannot
# (QEMU has no TSC ratio MSR). One Bochs boot per direction.
import os
import re
import sys

from harness import boot_bochs, boot_qemu, make_disk, need_file, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_snapshot import ISO, seen_after, start_vm, vm_state_of  # noqa: E402

# (image, what a window line counts, its regex: window number and count,
# the range the guest itself holds each window to). eventinj is interrupt
# driven and prints between windows; rtc polls and measures a window again
# when the host held it up over 7 ms. On Bochs VT-x eventinj loses about ten
# ticks a window now and then even without a snapshot (a ~10 ms hold-up, one
# slice), so Bochs restores rtc; the apic guest's windows hold its own
# line, which Bochs' paced COM1 stretches to 3-5 ms, so it is restored on
# QEMU only (saved on Bochs).
EVENTINJ = ("eventinj", "IRQ0 of the 8254 at 1 kHz per 100 ms of its TSC",
	    r"eventinj: window (\d+): (\d+) ticks", 95, 103)  # eventinj.asm says why
# apic: 95-103 as eventinj (CI saw 97 on QEMU under -icount): the guest's
# window line goes out through Amber's synchronous console output, which
# holds the vCPU 3-7 ms while the 8254 and the LAPIC timer go on.
APIC = ("apic", "the LAPIC timer at 1 kHz per 100 ms of the 8254",
	r"apic: window (\d+): (\d+) ticks", 95, 103)
RTC = ("rtc", "the RTC's 64 Hz periodic flag per 500 ms of its TSC",
       r"rtc: window (\d+): (\d+) flags", 31, 33)

def _qemu(disk):
	# -icount: QEMU's TSC counts instructions (1 GHz), as Bochs' does (100 MHz),
	# so the unscaled guest's 1 kHz timers do not outrun the emulator.
	return boot_qemu(disks=[("virtio", disk)], extra=("-icount", "shift=0,sleep=off"))


def _bochs(disk):
	return boot_bochs(iso=ISO, disk=disk)


def _bochs_fast(disk):
	# 1.2 GHz: Bochs' TSC counts instructions at the ips the bochsrc gives.
	return boot_bochs(iso=ISO, disk=disk, ips=1200000000)


def _host_mhz(vm):
	m = re.search(r"TSC (\d+\.\d+) MHz\)", vm.cmd_ok("uptime"))
	if not m:
		vm.fail("no TSC rate in the output of 'uptime'")
	return float(m.group(1))


def _save_timers(boot, disk, prefix, guests):
	"""Each guest saved paused in the middle of its windows (one at a time:
	a second VM sharing the one CPU would make the first miss timer ticks);
	returns {image: last window printed} and the host's TSC rate in MHz."""
	frozen = {}
	with boot(disk) as vm:
		vm.wait_prompt(timeout=120)
		mhz = _host_mhz(vm)
		for g, *_ in guests:
			vid = start_vm(vm, g, args="windows=0")
			seen_after(vm, 0, rf"\[vm{vid}\] {g}: window 2: ", 120, f"the {g} guest's window 2")
			vm.cmd_ok(f"vm pause {vid}")
			vm.cmd_ok(f"snap save {vid} {prefix}-{g}", timeout=120)
			frozen[g] = [int(w) for w in re.findall(rf"\[vm{vid}\] {g}: window (\d+):",
								vm.seen)][-1]
			vm.cmd_ok(f"vm kill {vid}")
	return frozen, mhz


def _tsc_rate(vm, vid):
	"""The guest TSC's rate against the host's clock, in MHz, from two looks
	of 'vm info' (each reads the guest's TSC and the host's clock together)."""
	looks = []
	for _ in range(2):
		out = vm.cmd_ok(f"vm info {vid}")
		m = re.search(r"guest TSC (\d+) at (\d+) us of host time", out)
		if not m:
			vm.fail(f"'vm info {vid}' of a running VM shows no guest TSC:\n{out}")
		looks.append((int(m.group(1)), int(m.group(2))))
	(t0, u0), (t1, u1) = looks
	if u1 <= u0 or t1 <= t0:
		vm.fail(f"the guest's TSC or the host's clock stood still: {looks}")
	return (t1 - t0) / (u1 - u0)


def _restore_timers(boot, disk, prefix, guests, frozen, saved_mhz, scaler, again=False):
	"""Restores each guest; `scaler` is the boot-log phrase that says the
	backend has TSC scaling. Each goes on from its window with counts in
	the range the guest holds them to; the restore line says how the TSC
	runs, and 'vm info' at what rate against the host's clock."""
	with boot(disk) as vm:
		vm.wait_prompt(timeout=120)
		here = _host_mhz(vm)
		scaled = scaler in vm.seen
		ratio = here / saved_mhz
		if 0.99 < ratio < 1.01:
			vm.fail(f"the two hosts' TSCs run at one rate ({here} and {saved_mhz} MHz): "
				"this test needs two rates")
		for g, what, line_re, lo, hi in guests:
			out = vm.cmd_ok(f"snap restore {prefix}-{g}", timeout=240)
			m = re.search(r"restored '\S+' as VM (\d+)", out)
			if not m:
				vm.fail(f"no summary line in the output of 'snap restore':\n{out}")
			vid = int(m.group(1))
			for line in out.splitlines():
				if len(line.rstrip()) > 80 and "TSC" in line:
					vm.fail(f"a TSC line wider than 80 columns: {line!r}")
			if scaled:
				m = re.search(rf"VM {vid}'s TSC scaled by \S+ to ([\d.]+) MHz as saved "
					      r"\(host ([\d.]+) MHz\)", out)
				got = m and (float(m.group(1)), float(m.group(2)), ratio)
			else:
				m = re.search(rf"warning: VM {vid}'s TSC runs ([\d.]+)/([\d.]+) MHz = "
					      r"([\d.]+)x its rate: no TSC scaling", out)
				got = m and (float(m.group(2)), float(m.group(1)), float(m.group(3)))
			if not got or not all(abs(a - b) <= 0.01 * b for a, b in
					      zip(got, (saved_mhz, here, ratio))):
				vm.fail(f"expected the TSC {'scaled' if scaled else 'warning'} line for "
					f"{saved_mhz} MHz saved, {here} here in the output of 'snap "
					f"restore':\n{out}")
			s = len(vm.seen)
			vm.cmd_ok(f"vm resume {vid}")
			for w in (frozen[g] + 1, frozen[g] + 2, frozen[g] + 3):
				m = seen_after(vm, s, rf"\[vm{vid}\] {line_re}", 120,
					       f"window {w} of the restored {g} guest")
				if int(m.group(1)) != w or not lo <= int(m.group(2)) <= hi:
					vm.fail(f"the restored guest printed '{m.group(0)}', expected window "
						f"{w} with {lo}-{hi} ({what})")
				s = m.end()
			# How fast the guest's time passes against the host's clock: at
			# its saved rate where scaled, at the host's where not.
			rate = _tsc_rate(vm, vid)
			want = saved_mhz if scaled else here
			if not 0.97 * want <= rate <= 1.03 * want:
				vm.fail(f"the restored guest's TSC runs at {rate:.1f} MHz of host time, "
					f"expected {want:.1f} ({'scaled' if scaled else 'unscaled'})")
			if vm_state_of(vm, vid) != "running":
				vm.fail(f"the restored guest should run on:\n{vm.cmd_ok('vm list')}")
			if again:
				_save_and_restore_here(vm, vid, g, line_re, lo, hi, saved_mhz)
			else:
				vm.cmd_ok(f"vm kill {vid}")
		return scaled


def _save_and_restore_here(vm, vid, g, line_re, lo, hi, saved_mhz):
	"""A scaled guest saved again and restored on the same host: the image
	keeps the rate it was first saved with (so the TSC is scaled again) and
	the TSC read through the multiplier at the pause goes on from there: the
	next window follows the last one with a count in range."""
	vm.cmd_ok(f"vm pause {vid}")
	vm.cmd_ok(f"snap save {vid} again", timeout=120)
	last = [int(w) for w in re.findall(rf"\[vm{vid}\] {g}: window (\d+):", vm.seen)][-1]
	vm.cmd_ok(f"vm kill {vid}")
	out = vm.cmd_ok("snap restore again", timeout=240)
	m = re.search(r"restored '\S+' as VM (\d+)", out)
	r = m and re.search(rf"VM {m.group(1)}'s TSC scaled by \S+ to ([\d.]+) MHz as saved", out)
	if not r or abs(float(r.group(1)) - saved_mhz) > 0.01 * saved_mhz:
		vm.fail(f"the image saved again should keep its rate ({saved_mhz} MHz):\n{out}")
	vid = int(m.group(1))
	s = len(vm.seen)
	vm.cmd_ok(f"vm resume {vid}")
	for w in (last + 1, last + 2):
		m = seen_after(vm, s, rf"\[vm{vid}\] {line_re}", 120,
			       f"window {w} of the guest restored again")
		if int(m.group(1)) != w or not lo <= int(m.group(2)) <= hi:
			vm.fail(f"the guest restored again printed '{m.group(0)}', expected window "
				f"{w} with {lo}-{hi}")
		s = m.end()
	vm.cmd_ok(f"vm kill {vid}")


@timeout(600)
def test_timers_vtx_to_amdv():
	"""Saved under Bochs VT-x (run at 1.2 GHz), restored under QEMU TCG
	AMD-V with -icount (1 GHz, no TSC ratio MSR): the TSC runs unscaled at
	the host's rate and the warning says so; the devices keep the image's
	rate, so the guest's 1 kHz IRQ0 and LAPIC timer keep their rate against
	its TSC. (Bochs
	is faster here so that the guest's time runs slower than the host's:
	the other way, each millisecond the host spends printing is several for
	the guest, and its 1 kHz timer loses that many ticks.)"""
	need_file(ISO, "make iso builds it")
	disk = make_disk(64 << 20)
	frozen, mhz = _save_timers(_bochs_fast, disk, "vtx", (EVENTINJ, APIC))
	_restore_timers(_qemu, disk, "vtx", (EVENTINJ, APIC), frozen, mhz,
			"svm: TSC scaling (TSC ratio MSR): yes")


@timeout(600)
def test_timers_amdv_to_vtx():
	"""Saved under QEMU TCG AMD-V (1 GHz), restored under Bochs VT-x (100
	MHz) whose TSC scaling makes the guest's TSC run at its saved 1 GHz
	against the host's clock; the guest's RTC keeps its 64 Hz against it;
	saved again there and restored, it is scaled again and goes on."""
	need_file(ISO, "make iso builds it")
	disk = make_disk(64 << 20)
	frozen, mhz = _save_timers(_qemu, disk, "amdv", (RTC,))
	_restore_timers(_bochs, disk, "amdv", (RTC,), frozen, mhz, "vmx: TSC scaling: yes",
			again=True)
