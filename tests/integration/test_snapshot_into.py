# `snap restore NAME into=ID`: the restored VM replaces VM ID in place, the
# way QEMU's loadvm replaces the running machine. It keeps the id (another
# VM beside it keeps its own), the console attached to it stays attached,
# and the old VM goes only once the new one passed every check: a damaged
# image found after its pages were loaded leaves the old VM running as it
# was, with every page of the hidden VM given back. The lazy restore replaces a VM too. All of it
# through the control channel as well as the shell. QEMU TCG, AMD-V.
import os
import re
import sys

from harness import make_disk, timeout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ctl import booted  # noqa: E402
from test_snapshot import (expect, flip_bit, free_memory, parse_image, seen_after,  # noqa: E402
			   snapshot_base, start_vm)


def vm_rows(vm):
	"""`vm list` without its exit counts (they grow while VMs run)."""
	out = vm.cmd_ok("vm list")
	return [line.split()[:5] for line in out.splitlines() if re.match(r"\d+ ", line)]


def last_count(vm, vid):
	counts = re.findall(rf"\[vm{vid}\] count=(\d+)", vm.seen)
	if not counts:
		vm.fail(f"VM {vid} printed no count")
	return int(counts[-1])


@timeout(300)
def test_restore_into_replaces_in_place():
	disk = make_disk(64 << 20)
	with booted(disks=[("virtio", disk)]) as (vm, ctl):
		ct = start_vm(vm, "counter", args="every=20000000")
		mt = start_vm(vm, "memtest", mem="8M")
		seen_after(vm, 0, rf"\[vm{ct}\] count=2\b", 120, "the counter at 2")
		vm.cmd_ok(f"vm pause {ct}")
		n = last_count(vm, ct)
		for name in ("c1", "bad"):
			vm.cmd_ok(f"snap save {ct} {name}", timeout=120)
		vm.cmd_ok(f"vm resume {ct}")
		seen_after(vm, 0, rf"\[vm{ct}\] count={n + 2}\b", 120, f"the counter at {n + 2}")

		# A flipped bit in the last stored page of 'bad': found after its
		# pages went into the hidden VM. VM ct must be untouched.
		base, size = snapshot_base(vm, "bad")
		img = parse_image(disk, base)
		end = next(s for s in img["sections"] if s["type"] == 0xFFFF)
		flip_bit(disk, base + end["pos"] - 4096 + 100, 5)
		listed = vm_rows(vm)
		mem = free_memory(vm)
		out = vm.cmd(f"snap restore bad into={ct}", timeout=120)
		expect(vm, r"^error: snap restore: snapshot 'bad' is damaged", out, "the refusal")
		expect(vm, rf"^snap restore: VM {ct} is as it was \(counter, running\)", out,
		       "the old VM said to be as it was")
		if re.search(r"^restored ", out, re.M):
			vm.fail(f"the damaged image was reported restored:\n{out}")
		after = vm_rows(vm)
		if after != listed:
			vm.fail(f"the refused restore changed 'vm list':\n{listed}\nafter:\n{after}")
		if free_memory(vm) != mem:
			vm.fail(f"the refused restore kept memory: {free_memory(vm)}, {mem} before")
		k = last_count(vm, ct)
		seen_after(vm, 0, rf"\[vm{ct}\] count={k + 1}\b", 60, "the old counter counting on")

		# Mistakes: a VM that does not exist, into= on another subcommand.
		out = vm.cmd("snap restore c1 into=7")
		expect(vm, r"^error: snap restore: there is no VM '7'; 'vm list' shows the VMs$", out,
		       "the no-such-VM wording")
		out = vm.cmd("snap list into=1")
		expect(vm, r"^usage: snap list", out, "into= refused outside restore")

		# The good image into VM ct, through the control channel, while COM1's
		# terminal is attached to VM ct's console.
		vm.send(f"vm console {ct}\r")
		vm.wait_for(rf"\[attached to vm {ct}'s COM1", 20)
		a = ctl.ok(f"snap restore c1 into={ct}", timeout=120)
		r, rep = a["data"].get("restore"), a["data"].get("replaced")
		if not r or r["vm"] != ct or r["state"] != "paused" or not rep or rep["vm"] != ct \
				or rep["vm_image"] != "counter" or rep["state"] != "running":
			vm.fail(f"restore into={ct} data: {a}")
		if not a["message"].startswith(f"restored 'c1' as VM {ct} in ") or \
				not re.search(rf"(?m)^  before:  VM {ct} was counter, running; it gave way once "
					      r"the restore was\s+complete\s+\(its console stays attached\)",
					      a["output"]):
			vm.fail(f"restore into={ct} output: {a}")
		if any(len(line) > 80 for line in a["output"].splitlines()):
			vm.fail(f"a line over 80 columns:\n{a['output']}")
		vms = ctl.ok("vm list")["data"]["vms"]
		if sorted((v["id"], v["image"], v["state"]) for v in vms) != \
				sorted([(ct, "counter", "paused"), (mt, "memtest", "running")]):
			vm.fail(f"vm list after the restore into VM {ct}: {vms}")
		vm.send("\x1d")   # Ctrl-] on COM1: the terminal was attached to VM ct
		vm.wait_for(rf"\[detached from vm {ct}\]", 20)
		vm.wait_prompt()
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {ct}")
		m = seen_after(vm, start, rf"\[vm{ct}\] count=(\d+)", 60, f"a count of VM {ct}")
		if int(m.group(1)) != n + 1:
			vm.fail(f"VM {ct} went on from count={m.group(1)}; 'c1' was saved at count={n}")

		# Lazily, into the memtest VM: it runs at once as the counter.
		out = vm.cmd_ok(f"snap restore c1 --lazy into={mt}", timeout=120)
		expect(vm, rf"^restored 'c1' lazily as VM {mt} ", out, "the lazy summary")
		expect(vm, rf"^  before:  VM {mt} was memtest, running; it gave way", out,
		       "the VM it replaced")
		out = vm.cmd_ok("vm list")
		expect(vm, rf"^{mt}\s+counter\s+paused", out, f"VM {mt} a paused counter")
		start = len(vm.seen)
		vm.cmd_ok(f"vm resume {mt}")
		m = seen_after(vm, start, rf"\[vm{mt}\] count=(\d+)", 60, f"a count of VM {mt}")
		if int(m.group(1)) != n + 1:
			vm.fail(f"VM {mt} went on from count={m.group(1)}; 'c1' was saved at count={n}")
		if re.search(r"memtest: ", vm.seen[start:]):
			vm.fail(f"the replaced memtest VM still printed:\n{vm.seen[start:]}")
