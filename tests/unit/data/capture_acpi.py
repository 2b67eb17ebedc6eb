#!/usr/bin/env python3
"""Captures the ACPI tables an emulator's firmware builds, for tests/unit/test_acpi.c.

Boots the firmware with no OS, dumps guest RAM (QEMU monitor `pmemsave`, or the
Bochs debugger's `writemem` from a one-instruction boot sector), then keeps only
the RSDP and the tables reachable from it. Output format (little endian), read by
the unit test: records of {u64 phys, u64 len, len bytes, zero padding to 8},
ended by a record with len 0.

  tests/unit/data/capture_acpi.py qemu-pc qemu-q35 qemu-q35-ovmf bochs
"""
import os
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def qemu_dump(machine, ovmf, mem_mb, path):
	args = ['qemu-system-x86_64', '-M', machine, '-m', f'{mem_mb}M', '-accel', 'tcg',
			'-display', 'none', '-nodefaults', '-monitor', 'stdio']
	if ovmf:
		args += ['-bios', '/usr/share/ovmf/OVMF.fd']
	p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
						 stderr=subprocess.DEVNULL, text=True)
	time.sleep(8 if ovmf else 2)  # let the firmware build its tables
	p.stdin.write(f'pmemsave 0 {mem_mb << 20:#x} "{path}"\n')
	p.stdin.flush()
	time.sleep(3)
	p.stdin.write('quit\n')
	p.stdin.flush()
	p.wait(timeout=20)


def bochs_dump(mem_mb, path, tmp):
	# A boot sector that executes `xchg bx,bx` (a magic breakpoint) and halts.
	boot = bytearray(512)
	boot[0:4] = b'\x87\xdb\xeb\xfe'
	boot[510:512] = b'\x55\xaa'
	img = os.path.join(tmp, 'floppy.img')
	with open(img, 'wb') as f:
		f.write(boot + bytes(1474560 - 512))
	rc = os.path.join(tmp, 'bochsrc')
	with open(rc, 'w') as f:
		f.write(f'''megs: {mem_mb}
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
cpu: model=corei7_icelake_u, count=1, ips=100000000, reset_on_triple_fault=0
pci: enabled=1, chipset=i440fx
floppya: 1_44={img}, status=inserted
boot: floppy
clock: sync=none, time0=local
display_library: rfb, options="timeout=0"
magic_break: enabled=1
sound: driver=dummy
speaker: enabled=0
log: {tmp}/bochs.log
mouse: enabled=0
''')
	dbg = os.path.join(tmp, 'cmds.dbg')
	with open(dbg, 'w') as f:
		f.write(f'c\nwritemem "{path}" 0 {mem_mb << 20}\nquit\n')
	subprocess.run(['timeout', '60', 'bochs-bin', '-q', '-f', rc, '-rc', dbg],
				   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
				   stderr=subprocess.DEVNULL)


def checksum_ok(b):
	return sum(b) & 0xff == 0


def find_rsdp(m):
	"""ACPI 6.4 5.2.5.1: the BIOS area on 16-byte boundaries; UEFI hands the OS
	a pointer instead and puts it anywhere (OVMF: a revision 2 RSDP at an
	address that is not 16-byte aligned, after a revision 0 one)."""
	i = 0xe0000
	while 0 <= i < 0x100000:
		i = m.find(b'RSD PTR ', i, 0x100000)
		if i >= 0 and i % 16 == 0 and checksum_ok(m[i:i + 20]):
			return i
		i = i + 1 if i >= 0 else -1
	i = 0
	while True:
		i = m.find(b'RSD PTR ', i)
		if i < 0:
			raise SystemExit('no RSDP found')
		if m[i + 15] >= 2 and checksum_ok(m[i:i + 20]) and checksum_ok(m[i:i + 36]):
			return i
		i += 1


def extract(m):
	pieces = []
	rsdp = find_rsdp(m)
	rev = m[rsdp + 15]
	pieces.append((rsdp, 36 if rev >= 2 else 20))
	roots = [(struct.unpack_from('<I', m, rsdp + 16)[0], 4)]
	if rev >= 2:
		roots.insert(0, (struct.unpack_from('<Q', m, rsdp + 24)[0], 8))

	def table(addr):
		ln = struct.unpack_from('<I', m, addr + 4)[0]
		pieces.append((addr, ln))
		return ln

	for root, esz in roots:
		if not root:
			continue
		ln = table(root)
		for off in range(36, ln, esz):
			a = int.from_bytes(m[root + off:root + off + esz], 'little')
			table(a)
			if m[a:a + 4] == b'FACP':
				fl = struct.unpack_from('<I', m, a + 4)[0]
				for o4, o8 in ((36, 132), (40, 140)):  # FACS, DSDT
					x = struct.unpack_from('<I', m, a + o4)[0]
					if fl >= o8 + 8 and struct.unpack_from('<Q', m, a + o8)[0]:
						x = struct.unpack_from('<Q', m, a + o8)[0]
					if x:
						table(x)
	# Merge into a few regions.
	pieces.sort()
	regions = []
	for a, ln in pieces:
		if regions and a <= regions[-1][1] + 4096:
			regions[-1][1] = max(regions[-1][1], a + ln)
		else:
			regions.append([a, a + ln])
	out = b''
	for a, e in regions:
		data = m[a:e]
		out += struct.pack('<QQ', a, len(data)) + data + bytes(-len(data) % 8)
	return out + struct.pack('<QQ', 0, 0)


def main():
	for name in sys.argv[1:] or ['qemu-pc', 'qemu-q35', 'qemu-q35-ovmf', 'bochs']:
		with tempfile.TemporaryDirectory() as tmp:
			dump = os.path.join(tmp, 'mem.bin')
			if name == 'bochs':
				bochs_dump(128, dump, tmp)
			else:
				machine = 'q35' if 'q35' in name else 'pc'
				ovmf = name.endswith('ovmf')
				qemu_dump(machine, ovmf, 256 if ovmf else 128, dump)
			with open(dump, 'rb') as f:
				blob = extract(f.read())
		out = os.path.join(HERE, f'acpi-{name}.bin')
		with open(out, 'wb') as f:
			f.write(blob)
		print(f'{out}: {len(blob)} bytes')


if __name__ == '__main__':
	main()
