# Incremental snapshots (issue 15 "Figures"): a 256 MiB dirty guest (tests/
# guests/dirty.asm) that writes 10 named pages per key is saved full, then nine
# times as a child of the image before (a chain of 10 images), one key between
# saves; the first child's image bytes (10 pages changed, plus the guest's own
# stack), each child's save, and the restore of the whole chain against that
# of the full image alone, on one QEMU TCG boot (AMD-V, virtio-blk). Figures
# are what Amber prints; reported, never asserted (docs/performance.md).
import os
import re
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)
sys.path.insert(0, os.path.join(TESTS, "integration"))

from harness import boot_qemu, make_disk  # noqa: E402
from vm_cases import dirty_key  # noqa: E402

# Ten pages spread over 256 MiB, none in the guest's own image or stack.
PAGES = tuple(0x400 + k * 6000 for k in range(10))
CHAIN = 10  # images, the full one included
SAVE_RE = re.compile(r"saved VM \d+ as '\S+' in (?P<frozen>\d+) ms.*\n(?:.*\n)*?  memory: .*?"
		     r"(?P<stored>\d+) of \d+ pages stored.*\n  written: .*\((?P<bytes>\d+) bytes\) in "
		     r"(?P<cmds>\d+) commands")
CHILD_RE = re.compile(r"(\d+) pages changed\n\s+found (in the dirty log|by comparison)")
RESTORE_RE = re.compile(r"restored '\S+' as VM (\d+) in (\d+) ms.*\n(?:.*\n)*?  image: .*\((\d+) "
			r"bytes\) in one pass.*\n(?:  chain: +(\d+) images.*\n)?(?:.*\n)*?  read: "
			r".*\((\d+) bytes\) in (\d+) commands")


def _restore(vm, name):
	out = vm.cmd_ok(f"snap restore {name}", timeout=300)
	m = RESTORE_RE.search(out)
	if not m:
		vm.fail(f"no summary line from 'snap restore {name}':\n{out}")
	vm.cmd_ok(f"vm kill {m.group(1)}")
	return int(m.group(2)), int(m.group(3)), int(m.group(5))


def bench_incremental_chain_virtio():
	disk = make_disk(512 << 20)
	result = {"emulator": "QEMU TCG -cpu max (AMD-V), virtio-blk", "guest_mib": 256}
	with boot_qemu(disks=[("virtio", disk)], mem="1G", name="qemu-bench-incr") as vm:
		vm.wait_prompt()
		out = vm.cmd_ok("vm create dirty mem=256M -- pages=" + ",".join(map(str, PAGES)))
		vid = int(re.search(r"created vm (\d+)", out).group(1))
		vm.cmd_ok(f"vm start {vid}")
		vm.wait_for(rf"\[vm{vid}\] dirty: ready, 10 pages", timeout=30)
		dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round 1 wrote 10 pages")
		out = vm.cmd_ok(f"snap save {vid} b0", timeout=300)
		m = SAVE_RE.search(out)
		result["full_image_bytes"] = int(m.group("bytes"))
		result["full_save_frozen_ms"] = int(m.group("frozen"))
		frozen, sizes = [], []
		for k in range(1, CHAIN):
			dirty_key(vm, vid, "w", rf"\[vm{vid}\] dirty: round {k + 1} wrote 10 pages")
			out = vm.cmd_ok(f"snap save {vid} b{k} --parent b{k - 1}", timeout=300)
			m, c = SAVE_RE.search(out), CHILD_RE.search(out)
			if not m or not c:
				vm.fail(f"no summary from the save of child b{k}:\n{out}")
			sizes.append(int(m.group("bytes")))
			frozen.append(int(m.group("frozen")))
			if k == 1:
				result["child_pages_changed"] = int(c.group(1))
				result["child_found"] = c.group(2).replace(" ", "_")
		result["child_image_bytes"] = sizes[0]
		result["child_image_max_bytes"] = max(sizes)
		result["child_save_frozen_ms_mean"] = round(sum(frozen) / len(frozen), 1)
		result["chain_save_frozen_ms_total"] = sum(frozen) + result["full_save_frozen_ms"]
		vm.cmd_ok(f"vm kill {vid}")
		ms, size, nread = _restore(vm, "b0")
		result["full_restore_ms"] = ms
		ms, size, nread = _restore(vm, f"b{CHAIN - 1}")
		result["chain_images"] = CHAIN
		result["chain_restore_ms"] = ms
		result["chain_bytes"] = size
		result["chain_read_per_byte"] = round(nread / size, 3)
	return result
