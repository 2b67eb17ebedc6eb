#!/usr/bin/env python3
# `make bench`: runs every bench_* function of tests/bench/*.py and prints what
# it measured. Benchmarks report numbers, they never pass or fail on them; only
# a benchmark that could not run (an exception) makes the exit status 1.
# Runs on the build host; the functions use tests/harness.py like the tests.
"""usage: tests/bench.py [--list] [FILTER...]

A benchmark is a function bench_NAME() in tests/bench/MODULE.py that returns a
dict {metric: value} (value a number or a string with its unit, e.g.
{"vmexit_roundtrip_ns": 812, "emulator": "QEMU TCG"}). Results are printed as
`BENCH module.bench_name metric=value ...` lines, one per benchmark, and also
written to $AMBER_BUILD/bench-results.txt.
"""
import argparse
import importlib.util
import os
import sys
import time
import traceback

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
# The build folder: $AMBER_BUILD, else make's BUILD (`make test BUILD=x` exports
# it to the recipe), else build/.
BUILD = os.path.join(ROOT, os.environ.get("AMBER_BUILD") or os.environ.get("BUILD") or "build")
BENCH_DIR = os.path.join(TESTS, "bench")


def benchmarks():
	sys.path.insert(0, TESTS)
	found = []
	if not os.path.isdir(BENCH_DIR):
		return found
	for f in sorted(os.listdir(BENCH_DIR)):
		if not f.endswith(".py") or f.startswith("_"):
			continue
		spec = importlib.util.spec_from_file_location(f[:-3], os.path.join(BENCH_DIR, f))
		mod = importlib.util.module_from_spec(spec)
		spec.loader.exec_module(mod)
		fns = [(fn.__code__.co_firstlineno, n, fn) for n, fn in vars(mod).items()
		       if n.startswith("bench_") and callable(fn) and hasattr(fn, "__code__")]
		found += [(f"{f[:-3]}.{n}", fn) for _, n, fn in sorted(fns)]
	return found


def main():
	ap = argparse.ArgumentParser(description=__doc__,
				     formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
	ap.add_argument("filters", nargs="*", metavar="FILTER")
	opts = ap.parse_args()

	todo = [(n, fn) for n, fn in benchmarks()
		if not opts.filters or any(f in n for f in opts.filters)]
	if opts.list:
		for n, _ in todo:
			print(n)
		return 0
	if not todo:
		print("no benchmarks yet (add bench_* functions to tests/bench/*.py)")
		return 0

	os.makedirs(BUILD, exist_ok=True)
	broken = 0
	lines = []
	for name, fn in todo:
		os.environ["AMBER_TEST_NAME"] = "bench." + name
		start = time.monotonic()
		try:
			result = fn() or {}
		except BaseException as e:
			if isinstance(e, KeyboardInterrupt):
				raise
			broken += 1
			print(f"BROKEN {name} ({time.monotonic() - start:.1f}s)")
			print("    " + traceback.format_exc().rstrip().replace("\n", "\n    "))
			continue
		metrics = " ".join(f"{k}={v}" for k, v in result.items())
		line = f"BENCH {name} {metrics} ({time.monotonic() - start:.1f}s)"
		print(line, flush=True)
		lines.append(line)
	with open(os.path.join(BUILD, "bench-results.txt"), "w") as f:
		f.write("\n".join(lines) + "\n")
	print(f"{len(lines)} measured, {broken} broken")
	return 1 if broken else 0


if __name__ == "__main__":
	sys.exit(main())
