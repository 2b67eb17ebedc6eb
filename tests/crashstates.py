#!/usr/bin/env python3
# Crash states from a write log: reads the log QEMU's blklogwrites driver
# keeps (the dm-log-writes format) and builds the disk images a power cut
# could have left, in the manner of CrashMonkey and ALICE. Runs on the build
# host (python3 standard library only); tests/integration/test_crash.py uses
# it, and a person can run it on a log by hand:
#
#     tests/crashstates.py LOG BASE.img [--max-subsets N] [--seed S]
#         prints one line per crash state (what it keeps of which write)
#
# The log format (Linux Documentation/admin-guide/device-mapper/log-writes.rst,
# and what QEMU 7.2's block/blklogwrites.c writes), all little-endian, in units
# of the log sector size (512 here):
#   sector 0:   super: u64 magic 0x6a736677736872, u64 version (1),
#               u64 nr_entries, u32 sectorsize
#   sector 1..: entries, each one sector: u64 sector, u64 nr_sectors,
#               u64 flags, u64 data_len; then nr_sectors sectors of the data
#               written. flags: 1 FLUSH, 2 FUA, 4 DISCARD, 8 MARK, 16 METADATA.
#
# The crash model. A flush makes every write completed before it durable. The
# writes issued since the last flush sit in the disk's volatile cache: any
# subset of them may have reached the medium, in any order, and a write of
# several sectors may be torn (any subset of its sectors). So for each epoch
# (the writes between two flushes) and each crash point j in it (after the
# j-th write was issued), the states are: every earlier epoch whole, plus a
# subset of the epoch's first j writes, the last of those possibly torn. All
# subsets are taken while there are at most max_subsets, else a sample drawn
# with a fixed seed (always with the empty and the full subset); torn writes
# keep every proper prefix of their sectors (at most 64, evenly spread) and
# a few random sector subsets.
import os
import random
import struct
import sys

LOG_MAGIC = 0x6A736677736872
FLAG_FLUSH, FLAG_FUA, FLAG_DISCARD, FLAG_MARK = 1, 2, 4, 8
ENTRY = struct.Struct("<QQQQ")


class LogError(Exception):
	pass


class Write:
	"""One logged write: its first sector, the data, its position in the log."""
	def __init__(self, index, sector, data, sector_size):
		self.index = index
		self.sector = sector
		self.data = data
		self.ss = sector_size

	@property
	def nsectors(self):
		return len(self.data) // self.ss

	def __repr__(self):
		return f"write#{self.index}(sector {self.sector}+{self.nsectors})"


def read_log(path):
	"""The log's entries in order: Write objects and the string "flush".
	Returns (entries, sector_size)."""
	with open(path, "rb") as f:
		raw = f.read()
	if len(raw) < 512:
		raise LogError(f"{path}: shorter than the log superblock")
	magic, version, count, ss = struct.unpack_from("<QQQI", raw, 0)
	if magic != LOG_MAGIC or version != 1:
		raise LogError(f"{path}: not a dm-log-writes log (magic {magic:#x}, version {version})")
	if ss not in (512, 4096):
		raise LogError(f"{path}: log sector size {ss}")
	entries, pos = [], 1
	for i in range(count):
		off = pos * ss
		if off + ENTRY.size > len(raw):
			raise LogError(f"{path}: entry {i} of {count} lies past the end of the log")
		sector, nsec, flags, dlen = ENTRY.unpack_from(raw, off)
		if flags & (FLAG_DISCARD | FLAG_MARK) or dlen:
			raise LogError(f"{path}: entry {i} is a discard or mark (flags {flags:#x}); "
				       "Amber issues neither")
		if nsec:
			data = raw[off + ss:off + ss + nsec * ss]
			if len(data) != nsec * ss:
				raise LogError(f"{path}: entry {i}: data cut short")
			entries.append(Write(i, sector, data, ss))
		if flags & FLAG_FLUSH:
			entries.append("flush")
		if flags & FLAG_FUA:   # durable on completion: as if a flush followed
			entries.append("flush")
		pos += 1 + nsec
	return entries, ss


def epochs(entries):
	"""The writes between flushes: a list of lists."""
	out, cur = [], []
	for e in entries:
		if e == "flush":
			out.append(cur)
			cur = []
		else:
			cur.append(e)
	out.append(cur)
	return out


class State:
	"""One disk a power cut could leave: `durable` writes whole, then the
	`cached` ones, each whole or (the torn one) only the sectors in `torn`."""
	def __init__(self, durable, cached, torn=None, note=""):
		self.durable = durable
		self.cached = cached
		self.torn = torn          # (write, tuple of sector offsets kept) or None
		self.note = note

	def key(self):
		parts = [w.index for w in self.cached]
		t = (self.torn[0].index, self.torn[1]) if self.torn else None
		return (len(self.durable), tuple(parts), t)

	def describe(self):
		kept = ", ".join(f"#{w.index}" for w in self.cached) or "none"
		s = f"{len(self.durable)} writes durable; of the cached ones kept: {kept}"
		if self.torn:
			w, secs = self.torn
			s += f"; {w!r} torn, kept sectors {list(secs)[:8]}{'...' if len(secs) > 8 else ''}"
		return s

	def build(self, base, path):
		"""Writes this state's disk image to `path`, starting from `base`
		(the bytes of the disk before the logged writes)."""
		img = bytearray(base)
		for w in self.durable + self.cached:
			off = w.sector * w.ss
			img[off:off + len(w.data)] = w.data
		if self.torn:
			w, secs = self.torn
			for s in secs:
				off = (w.sector + s) * w.ss
				img[off:off + w.ss] = w.data[s * w.ss:(s + 1) * w.ss]
		with open(path, "wb") as f:
			f.write(img)


def _subsets(items, limit, rng):
	"""Every subset of items (in order) while there are at most `limit`, else
	a sample of `limit` that holds the empty and the full one."""
	n = len(items)
	if 2 ** n <= limit:
		for mask in range(2 ** n):
			yield [items[i] for i in range(n) if mask >> i & 1]
		return
	yield []
	yield list(items)
	seen = {0, 2 ** n - 1}
	while len(seen) < limit:
		mask = rng.getrandbits(n)
		if mask not in seen:
			seen.add(mask)
			yield [items[i] for i in range(n) if mask >> i & 1]


def _tears(w, rng, random_subsets=4):
	"""Sector subsets of a torn write: proper prefixes, proper suffixes (a disk
	may write a request back to front) and a few random subsets."""
	n = w.nsectors
	if n < 2:
		return []
	step = max(1, (n - 1) // 64)
	cuts = list(range(1, n, step))
	out = [tuple(range(k)) for k in cuts] + [tuple(range(k, n)) for k in cuts]
	for _ in range(random_subsets):
		secs = tuple(s for s in range(n) if rng.random() < 0.5)
		if 0 < len(secs) < n:
			out.append(secs)
	return out


def crash_states(entries, max_subsets=64, seed=12):
	"""Every crash state of the log (deduplicated), in log order."""
	rng = random.Random(seed)
	seen = set()
	durable = []
	for ep in epochs(entries):
		for j in range(len(ep) + 1):
			issued = ep[:j]
			for sub in _subsets(issued, max_subsets, rng):
				st = State(list(durable), sub, note=f"crash after {j} of {len(ep)} writes")
				if st.key() not in seen:
					seen.add(st.key())
					yield st
			if j:
				last = ep[j - 1]
				for secs in _tears(last, rng):
					st = State(list(durable), issued[:-1], (last, secs),
						   note=f"crash during write {j} of {len(ep)}")
					if st.key() not in seen:
						seen.add(st.key())
						yield st
		durable += ep


def final_state(entries):
	"""The disk after every logged write: must equal what QEMU left."""
	return State([e for e in entries if e != "flush"], [], note="all writes")


def main(argv):
	import argparse
	ap = argparse.ArgumentParser(description="list the crash states of a blklogwrites log")
	ap.add_argument("log")
	ap.add_argument("base", help="the disk image before the logged writes")
	ap.add_argument("--max-subsets", type=int, default=64)
	ap.add_argument("--seed", type=int, default=12)
	ap.add_argument("--write", metavar="DIR", help="build each state as DIR/stateN.img")
	opts = ap.parse_args(argv)
	entries, _ = read_log(opts.log)
	with open(opts.base, "rb") as f:
		base = f.read()
	n = 0
	for st in crash_states(entries, opts.max_subsets, opts.seed):
		print(f"state {n}: {st.note}: {st.describe()}")
		if opts.write:
			st.build(base, os.path.join(opts.write, f"state{n}.img"))
		n += 1
	print(f"{n} crash states from {sum(1 for e in entries if e != 'flush')} writes and "
	      f"{entries.count('flush')} flushes")
	return 0


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
