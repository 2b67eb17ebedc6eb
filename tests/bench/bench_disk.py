# Disk throughput through Amber's block-device interface (`disk bench`): a
# sequential write of 32 MiB from LBA 0 with a flush, then a sequential read of
# it, on each QEMU disk kind. These are the yardstick the snapshot code is
# measured against. QEMU TCG, wall clock: the MiB/s depend on this host; the
# command counts do not. They show how requests were split: `disk bench` moves
# 4 MiB per request, which virtio-blk and ATA DMA issue as one command each and
# NVMe as eight (QEMU's MDTS 7 is 512 KiB); the write count includes the flush.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import boot_qemu, make_disk  # noqa: E402

SIZE = "32M"
RESULT_RE = re.compile(r"bench-result disk=(\S+) kind=(\S+) bytes=(\d+) write_us=(\d+) "
		       r"read_us=(\d+) write_cmds=(\d+) read_cmds=(\d+) verify=(\w+)")


def _bench(device_args, name, disk_if=None):
	path = make_disk(128 << 20, f"bench-{name}.img")
	if disk_if:
		extra = ["-drive", f"file={path},format=raw,if={disk_if}"]
	else:
		extra = ["-drive", f"file={path},if=none,id=d0,format=raw", "-device", device_args]
	with boot_qemu(extra=extra, name=f"qemu-bench-{name}") as vm:
		vm.wait_prompt(timeout=60)
		out = vm.cmd(f"disk bench {name} {SIZE} --force", timeout=300)
		m = RESULT_RE.search(out)
		if not m:
			vm.fail(f"no bench-result line from 'disk bench {name}':\n{out}")
		disk, kind, size, wus, rus, wc, rc, verify = m.groups()
		size, wus, rus = int(size), int(wus), int(rus)
		mib = size / (1 << 20)
		return {
			"emulator": "QEMU-TCG",
			"disk": disk,
			"kind": kind,
			"bytes": size,
			"write_MiB_s": round(mib / (wus / 1e6), 1) if wus else 0,
			"read_MiB_s": round(mib / (rus / 1e6), 1) if rus else 0,
			"write_commands": int(wc),
			"read_commands": int(rc),
			"verify": verify,
		}


def bench_disk_virtio_legacy():
	return _bench("virtio-blk-pci,drive=d0", "vblk0")


def bench_disk_virtio_modern():
	return _bench("virtio-blk-pci,drive=d0,disable-legacy=on", "vblk0")


def bench_disk_nvme():
	return _bench("nvme,serial=bench,drive=d0", "nvme0n1")


def bench_disk_ide_dma():
	return _bench(None, "ata0", disk_if="ide")
