# Crash consistency at every instant (the method of CrashMonkey and ALICE):
# QEMU's blklogwrites driver records every write and flush Amber issues during
# the first save to a blank disk (which formats it), a second save, a delete
# and a `snap format --force`, each in its own boot so that each log holds one
# operation. tests/crashstates.py builds every disk a power cut could leave
# (whole epochs up to the last flush, subsets of the writes cached since, torn
# writes); each is checked on the host with build/amber-snap (the kernel's own
# store and image code): the store opens (or, before the first format
# completed, is absent), every snapshot committed before the operation is
# listed and verifies, the one being saved or deleted is whole or absent. A
# sample of the states is booted in Amber, whose restored counter must go on
# counting where it was saved. Runs on the build host (QEMU TCG).
import os
import re
import shutil
import subprocess
import sys

from harness import BUILD, boot_qemu, need_file, skip, timeout, work_dir

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import crashstates  # noqa: E402  (tests/crashstates.py)
import figures  # noqa: E402  (tests/figures.py)

AMBER_SNAP = os.path.join(BUILD, "amber-snap")
DISK_SIZE = 4 << 20
MAX_SUBSETS = 64   # subsets of one epoch's cached writes before sampling
SEED = 12
LOG_SIZE = 16 << 20


DEVICES = {"virtio": "virtio-blk-pci,drive=lw0", "nvme": "nvme,serial=logged0,drive=lw0"}


def logged_boot(disk, log, kind):
	"""Amber in QEMU with `disk` on virtio-blk or NVMe behind blklogwrites -> `log`."""
	with open(log, "wb") as f:
		f.truncate(LOG_SIZE)
	extra = ["-blockdev", f"driver=file,node-name=f0,filename={disk}",
		 "-blockdev", f"driver=file,node-name=l0,filename={log}",
		 "-blockdev", "driver=blklogwrites,node-name=lw0,file=f0,log=l0,log-sector-size=512",
		 "-device", DEVICES[kind]]
	return boot_qemu(extra=extra, name=f"qemu-logged-{kind}")


def paused_counter(vm):
	"""A counter VM run to count=2 and paused; returns (id, last count)."""
	out = vm.cmd_ok("vm create counter mem=2M -- every=2000000")
	vid = int(re.search(r"created vm (\d+)", out).group(1))
	vm.cmd_ok(f"vm start {vid}")
	vm.wait_for(rf"\[vm{vid}\] count=2\b", 60)
	vm.cmd_ok(f"vm pause {vid}")
	return vid, int(re.findall(rf"\[vm{vid}\] count=(\d+)", vm.seen)[-1])


def snap_tool(*args):
	return subprocess.run([AMBER_SNAP, *args], capture_output=True, text=True, timeout=30)


def listed(path):
	"""(status, names): status "ok", "absent" (no store) or "damaged: why"."""
	r = snap_tool("list", path)
	if r.returncode != 0:
		if "holds no Amber snapshot store" in r.stderr:
			return "absent", set()
		return f"damaged: {(r.stdout + r.stderr).strip()}", set()
	names = set()
	rows = r.stdout.splitlines()
	for i, line in enumerate(rows):
		if line.lstrip().startswith("NAME "):
			for row in rows[i + 1:]:
				m = re.match(r"^\s+(\S+)\s", row)
				if m and not row.lstrip().startswith("note:"):
					names.add(m.group(1))
	return "ok", names


def check_state(path, must, may, store_optional):
	"""None when the disk at `path` keeps its promises, else why not."""
	status, names = listed(path)
	if status == "absent":
		return None if store_optional and not must else "the store is gone"
	if status != "ok":
		return f"the store does not open ({status})"
	missing = set(must) - names
	if missing:
		return f"committed snapshot(s) {sorted(missing)} not listed (listed: {sorted(names)})"
	strange = names - set(must) - set(may)
	if strange:
		return f"snapshot(s) {sorted(strange)} listed that were never saved"
	for n in sorted(names):
		r = snap_tool("verify", path, n)
		if r.returncode != 0:
			return f"snapshot '{n}' is listed but does not verify:\n{r.stdout}{r.stderr}"
	return None


class Phase:
	"""One logged operation: its log, the disk before and after it."""
	def __init__(self, name, base, log, after, must, may, store_optional=False):
		self.name, self.base, self.log, self.after = name, base, log, after
		self.must, self.may, self.store_optional = must, may, store_optional
		self.checked = 0
		self.sample = []   # states worth a boot: (path, State)


def run_phase(ph, work):
	"""Checks every crash state of one phase; fails on the first bad one."""
	entries, _ = crashstates.read_log(ph.log)
	writes = [e for e in entries if e != "flush"]
	assert writes, f"{ph.name}: the log holds no writes"
	ph.writes, ph.flushes = len(writes), entries.count("flush")
	with open(ph.base, "rb") as f:
		base = f.read()
	# The log is complete: replaying all of it gives the disk QEMU left.
	final = os.path.join(work, f"{ph.name}-final.img")
	crashstates.final_state(entries).build(base, final)
	with open(final, "rb") as a, open(ph.after, "rb") as b:
		assert a.read() == b.read(), (f"{ph.name}: replaying the {len(writes)} logged writes "
					      "does not give the disk QEMU left: the log is incomplete")
	state_img = os.path.join(work, f"{ph.name}-state.img")
	states = []
	for st in crashstates.crash_states(entries, MAX_SUBSETS, SEED):
		st.build(base, state_img)
		why = check_state(state_img, ph.must, ph.may, ph.store_optional)
		ph.checked += 1
		if why:
			keep = os.path.join(BUILD, "test-logs", f"crash-{ph.name}-bad.img")
			shutil.copyfile(state_img, keep)
			raise AssertionError(f"{ph.name}: crash state {ph.checked} ({st.note}: "
					     f"{st.describe()}) loses data: {why}\n(the disk is kept "
					     f"as {os.path.relpath(keep, os.getcwd())})")
		states.append(st)
	# Boot samples: the first torn catalog write, and two states spread over the rest.
	torn = [st for st in states if st.torn and st.torn[0].sector in (8, 40)]
	ph.sample = torn[:1] + [states[len(states) // 3], states[2 * len(states) // 3]]
	return ph.checked


def boot_and_restore(kind, path, ph, counts, what):
	"""Boots Amber on a crash state: the snapshots that must be there are
	listed, and each listed one restores and goes on at the count after the
	saved one. Returns how many were restored."""
	restored = 0
	with boot_qemu(disks=[(kind, path)], name=f"qemu-crashstate-{kind}") as vm:
		vm.wait_prompt()
		out = vm.cmd("snap list")
		if re.search(r"(?m)^error", out) and not ph.store_optional:
			vm.fail(f"{what}: Amber does not open the store:\n{out}")
		for n in ph.must + ph.may:
			if not re.search(rf"^\s+{n}\s+counter", out, re.M):
				if n in ph.must:
					vm.fail(f"{what}: '{n}' is not listed by Amber:\n{out}")
				continue
			r = vm.cmd_ok(f"snap restore {n}", timeout=60)
			vid = int(re.search(r"restored '\S+' as VM (\d+)", r).group(1))
			vm.cmd_ok(f"vm resume {vid}")
			m = vm.wait_for(rf"\[vm{vid}\] count=(\d+)\r?\n", 60)
			if int(m.group(1)) != counts[n] + 1:
				vm.fail(f"{what}: restored '{n}' went on at count={m.group(1)}, saved at "
					f"count={counts[n]}")
			vm.cmd_ok(f"vm kill {vid}")
			restored += 1
	return restored


class Recorder:
	"""One disk and the operations logged on it, one boot each."""
	def __init__(self, kind="virtio"):
		self.kind = kind
		self.work = work_dir()
		self.disk = os.path.join(self.work, "disk.img")
		with open(self.disk, "wb") as f:
			f.truncate(DISK_SIZE)
		self.counts = {}
		self.phases = []

	def copy(self, tag):
		path = os.path.join(self.work, f"{tag}.img")
		shutil.copyfile(self.disk, path)
		return path

	def record(self, name, action, must, may, store_optional=False):
		base = self.copy(f"{name}-base")
		log = os.path.join(self.work, f"{name}.log")
		with logged_boot(self.disk, log, self.kind) as vm:
			vm.wait_prompt()
			action(vm)
			vm.send("poweroff\r")
			vm.expect_exit(code=0)
		ph = Phase(name, base, log, self.copy(f"{name}-after"), must, may, store_optional)
		self.phases.append(ph)
		return ph

	def save(self, name, blank=False):
		def act(vm):
			vid, self.counts[name] = paused_counter(vm)
			out = vm.cmd_ok(f"snap save {vid} {name}", timeout=60)
			if blank and "was blank: created a snapshot store" not in out:
				vm.fail(f"the first save did not format the blank disk:\n{out}")
		return act

	@staticmethod
	def delete(name):
		return lambda vm: vm.cmd_ok(f"snap delete {name}", expect=rf"deleted '{name}'")

	def check_all(self):
		lines, total = [], 0
		for ph in self.phases:
			n = run_phase(ph, self.work)
			total += n
			lines.append(f"{ph.name}: {n}")
		print(f"crash states checked: {total} ({'; '.join(lines)}), snapshots lost: 0")
		return total


def crash_states_save_delete(kind):
	need_file(AMBER_SNAP, "make builds it")
	rec = Recorder(kind)
	# The first save formats the blank disk; then a second save, a delete.
	rec.record("first-save", rec.save("A", blank=True), must=[], may=["A"], store_optional=True)
	rec.record("save", rec.save("B"), must=["A"], may=["B"])
	rec.record("delete", rec.delete("A"), must=["B"], may=["A"])
	total = rec.check_all()
	# A sample in Amber itself: per operation a torn catalog write and two
	# states spread over the log; what is listed restores and counts on.
	booted = restored = 0
	for ph in rec.phases:
		with open(ph.base, "rb") as f:
			base = f.read()
		for i, st in enumerate(ph.sample):
			path = os.path.join(rec.work, f"{ph.name}-boot{i}.img")
			st.build(base, path)
			restored += boot_and_restore(kind, path, ph, rec.counts,
						     f"{ph.name} crash state ({st.note}: {st.describe()})")
			booted += 1
	assert restored >= booted - 1, f"only {restored} restores in {booted} booted crash states"
	print(f"crash states booted in Amber: {booted}, snapshots restored from them: {restored}")
	what = {"first-save": "first `snap save` to a blank disk (formats it)",
		"save": "`snap save` with one snapshot on the disk", "delete": "`snap delete`"}
	rows = [f"| {what[ph.name]} | {ph.writes} | {ph.flushes} | {ph.checked} | "
		f"{', '.join(ph.must) or '-'} | {', '.join(ph.may)} | 0 |" for ph in rec.phases]
	label = {"virtio": "On virtio-blk", "nvme": "On NVMe"}[kind]
	figures.record(f"crash-{kind}", "\n".join([f"{label}:", "",
		"| operation | writes | flushes | crash states checked | must survive | whole or "
		"absent | snapshots lost |", "|---|---|---|---|---|---|---|"] + rows + [
		"", f"{total} crash states checked with amber-snap (list, verify); {booted} of them "
		f"booted in Amber, {restored} snapshots restored from them and counting on. Seed "
		f"{SEED}, at most {MAX_SUBSETS} subsets of one epoch's cached writes."]))


@timeout(300)
def test_crash_states_virtio():
	crash_states_save_delete("virtio")


@timeout(300)
def test_crash_states_nvme():
	crash_states_save_delete("nvme")


@timeout(300)
def test_crash_states_format_force():
	# Found by this test: snap_store_format() zeroed the superblock, zeroed
	# catalog B and wrote the new catalog A with no flush between them, so a
	# cut could keep only the zeroed catalog B: the old superblock then opened
	# the old store from its older catalog A, and a snapshot deleted before
	# (here 'A') came back. The zeroed superblock is now flushed first.
	need_file(AMBER_SNAP, "make builds it")
	rec = Recorder()
	rec.record("setup-a", rec.save("A", blank=True), must=[], may=["A"], store_optional=True)
	rec.record("setup-b", rec.save("B"), must=["A"], may=["B"])
	rec.record("setup-delete", rec.delete("A"), must=["B"], may=["A"])
	rec.phases.clear()
	# Erasing a store on purpose: whatever the cut, the disk holds the old
	# store as it was (B whole) or the new empty one, or no store at all;
	# never an older generation of the old store.
	rec.record("format", lambda vm: vm.cmd_ok("snap format 0 --force",
						  expect=r"empty snapshot store created"),
		   must=[], may=["B"], store_optional=True)
	rec.check_all()
