#!/usr/bin/env python3
# Amber's one test runner (`make test`): the host unit test programs in
# $AMBER_BUILD/unit/, each fuzz target of tests/fuzz/ for FUZZ_TEST_SECONDS,
# then every test_* function of tests/integration/test_*.py,
# each in its own process group under a timeout. Runs on the build host.
"""usage: tests/run.py [-j N] [--timeout S] [--list] [FILTER...]

FILTER: run only the tests whose name contains one of these substrings
(names look like unit/virtqueue, fuzz/image and test_shell.test_version).
Prints PASS/FAIL/SKIP per test as each ends, then "N passed, N failed"
(", N skipped" when some were) and exits 0 only when none failed.
"""
import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
# The build folder: $AMBER_BUILD, else make's BUILD (`make test BUILD=x` exports
# it to the recipe), else build/.
BUILD = os.path.join(ROOT, os.environ.get("AMBER_BUILD") or os.environ.get("BUILD") or "build")
INTEGRATION = os.path.join(TESTS, "integration")
DEFAULT_TIMEOUT = 120
SKIP_STATUS = 77   # the child's exit status for a skipped test (as in automake)
GRACE = 5          # seconds between SIGTERM and SIGKILL on a timeout


class TestTimeout(BaseException):
	"""Raised in a test process by SIGTERM from the runner. Not an Exception, so
	no `except OSError` in a test swallows it on the way out."""


class Test:
	def __init__(self, name, argv, timeout, cwd=ROOT):
		self.name = name
		self.argv = argv
		self.timeout = timeout
		self.cwd = cwd


def unit_tests(default_timeout):
	"""The host unit test programs: those `make print-unit-bins` names when the
	Makefile has that target (so a removed test's stale binary is not run),
	else every executable in $AMBER_BUILD/unit."""
	paths = None
	try:
		r = subprocess.run(["make", "-s", "--no-print-directory", "print-unit-bins",
				    "BUILD=" + os.path.relpath(BUILD, ROOT)], cwd=ROOT,
				   capture_output=True, text=True, timeout=30)
		if r.returncode == 0:
			paths = [os.path.join(ROOT, p) for p in r.stdout.split()]
	except (OSError, subprocess.TimeoutExpired):
		pass
	if paths is None:
		d = os.path.join(BUILD, "unit")
		names = sorted(os.listdir(d)) if os.path.isdir(d) else []
		paths = [os.path.join(d, f) for f in names]
		paths = [p for p in paths if os.path.isfile(p) and os.access(p, os.X_OK)]
	# A listed program that was not built runs as a failing test ("could not start").
	return [Test("unit/" + os.path.basename(p), [p], default_timeout) for p in paths]


FUZZ_TEST_SECONDS = int(os.environ.get("FUZZ_TEST_SECONDS", "20"))


def fuzz_tests():
	"""One test per fuzz target (tests/fuzz/*.mk): a bounded run that fails on
	a crash. A target that was not built fails ("make fuzz-build")."""
	try:
		r = subprocess.run(["make", "-s", "--no-print-directory", "print-fuzz-targets",
				    "BUILD=" + os.path.relpath(BUILD, ROOT)], cwd=ROOT,
				   capture_output=True, text=True, timeout=30)
	except (OSError, subprocess.TimeoutExpired):
		return []
	if r.returncode != 0:
		return []
	names = [line.split()[0] for line in r.stdout.splitlines() if line.split()]
	runner = os.path.join(TESTS, "fuzz", "run.py")
	return [Test("fuzz/" + n, [sys.executable, runner, n, str(FUZZ_TEST_SECONDS)],
		     FUZZ_TEST_SECONDS + 180) for n in names]


def load_module(path):
	name = os.path.splitext(os.path.basename(path))[0]
	spec = importlib.util.spec_from_file_location(name, path)
	mod = importlib.util.module_from_spec(spec)
	spec.loader.exec_module(mod)
	return mod


def integration_tests(default_timeout):
	"""test_* functions, in file order, of tests/integration/test_*.py."""
	sys.path.insert(0, TESTS)
	tests = []
	if not os.path.isdir(INTEGRATION):
		return tests
	for f in sorted(os.listdir(INTEGRATION)):
		if not (f.startswith("test_") and f.endswith(".py")):
			continue
		path = os.path.join(INTEGRATION, f)
		modname = f[:-3]
		try:
			mod = load_module(path)
		except Exception:
			# A module that does not import is one failing test, not a crash.
			msg = traceback.format_exc()
			tests.append(Test(f"{modname}.<import>", [sys.executable, "-c",
				"import sys; sys.stdout.write(sys.argv[1]); sys.exit(1)", msg], 10))
			continue
		# Only functions defined in the file: an imported helper named test_* is not a test.
		fns = [(fn.__code__.co_firstlineno, n, fn) for n, fn in vars(mod).items()
		       if n.startswith("test_") and callable(fn) and hasattr(fn, "__code__")
		       and fn.__module__ == mod.__name__]
		for _, n, fn in sorted(fns):
			t = getattr(fn, "timeout", default_timeout)
			argv = [sys.executable, os.path.abspath(__file__), "--run-one", path, n]
			tests.append(Test(f"{modname}.{n}", argv, t))
	return tests


def run_one(path, fn_name):
	"""Child side: runs one test function, reports through stdout and status."""
	sys.path.insert(0, TESTS)
	import harness

	def on_term(signum, frame):
		raise TestTimeout("the test ran past its time limit")

	signal.signal(signal.SIGTERM, on_term)
	try:
		fn = getattr(load_module(path), fn_name)
		fn()
	except harness.Skip as e:
		print(str(e))
		return SKIP_STATUS
	except AssertionError as e:
		msg = str(e) or "assertion failed"
		tb = traceback.extract_tb(e.__traceback__)
		here = [f for f in tb if f.filename == path]
		if here:
			msg += f"\n(at {os.path.basename(path)}:{here[-1].lineno}: {here[-1].line})"
		print(msg)
		return 1
	except TestTimeout as e:
		print(str(e))
		emu = harness.last_emulator()
		if emu:
			print(f"{emu.name}: last lines seen:\n{emu.tail()}")
		return 1
	except Exception:
		print(traceback.format_exc().rstrip())
		return 1
	return 0


_running = set()   # test processes now running: stopped on Ctrl-C


def execute(test):
	"""Runs one test in its own process group; returns (status, seconds, output)."""
	env = dict(os.environ, AMBER_TEST_NAME=test.name.replace("/", "_"), PYTHONUNBUFFERED="1",
		   AMBER_BUILD=os.path.relpath(BUILD, ROOT))
	start = time.monotonic()
	try:
		proc = subprocess.Popen(test.argv, cwd=test.cwd, env=env, stdin=subprocess.DEVNULL,
					stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
					start_new_session=True)
	except OSError as e:
		return "FAIL", 0.0, f"could not start: {e}"
	_running.add(proc)
	chunks = []
	reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
	reader.start()
	timed_out = False
	try:
		proc.wait(timeout=test.timeout)
	except subprocess.TimeoutExpired:
		timed_out = True
		try:
			os.killpg(proc.pid, signal.SIGTERM)
			proc.wait(timeout=GRACE)
		except (ProcessLookupError, subprocess.TimeoutExpired):
			pass
	# Whatever the test left behind (an emulator, a helper) goes with it.
	try:
		os.killpg(proc.pid, signal.SIGKILL)
	except ProcessLookupError:
		pass
	proc.wait()
	_running.discard(proc)
	reader.join(timeout=5)
	out = b"".join(chunks).decode("utf-8", "replace").rstrip()
	secs = time.monotonic() - start
	if timed_out:
		return "FAIL", secs, f"timed out after {test.timeout} s\n{out}".rstrip()
	if proc.returncode == 0:
		return "PASS", secs, out
	if proc.returncode == SKIP_STATUS and test.argv[1:2] == [os.path.abspath(__file__)]:
		return "SKIP", secs, out
	if proc.returncode < 0:
		out = f"killed by signal {-proc.returncode}\n{out}".rstrip()
	elif not out:
		out = f"exit status {proc.returncode}"
	return "FAIL", secs, out


def indent(text, prefix="    "):
	return "\n".join(prefix + line for line in text.splitlines())


def main():
	if sys.argv[1:2] == ["--run-one"]:
		return run_one(sys.argv[2], sys.argv[3])
	ap = argparse.ArgumentParser(description=__doc__,
				     formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("-j", type=int, default=2, metavar="N",
			help="integration tests run N at a time (default 2)")
	ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
			help=f"per-test time limit in seconds unless a test sets its own "
			f"(default {DEFAULT_TIMEOUT})")
	ap.add_argument("--list", action="store_true", help="list the tests and exit")
	ap.add_argument("filters", nargs="*", metavar="FILTER")
	opts = ap.parse_args()

	units = unit_tests(opts.timeout) + fuzz_tests()
	integ = integration_tests(opts.timeout)
	if opts.filters:
		keep = lambda t: any(f in t.name for f in opts.filters)
		units = [t for t in units if keep(t)]
		integ = [t for t in integ if keep(t)]
	if opts.list:
		for t in units + integ:
			print(f"{t.name} (timeout {t.timeout} s)")
		return 0

	counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
	failed = []
	lock = threading.Lock()

	def report(test, result):
		status, secs, out = result
		with lock:
			counts[status] += 1
			if status == "SKIP":
				reason = out.strip() or "no reason given"
				print(f"SKIP {test.name}: {reason}", flush=True)
				return
			print(f"{status} {test.name} ({secs:.1f}s)", flush=True)
			if status == "PASS":  # a passing test's notes (a rerun and why)
				for line in out.splitlines():
					if line.lstrip().startswith("note:"):
						print(f"    {line.strip()}", flush=True)
			if status == "FAIL":
				failed.append(test.name)
				if out:
					print(indent(out), flush=True)

	start = time.monotonic()
	# Unit tests are quick, and each fuzz target takes a core for its time:
	# in order, before the emulators start.
	for t in units:
		report(t, execute(t))

	# Longest time limit first: the slow Bochs and UEFI boots start at once
	# instead of trailing at the end while the other worker idles.
	queue = sorted(integ, key=lambda t: -t.timeout)

	def worker():
		while True:
			with lock:
				if not queue:
					return
				t = queue.pop(0)
			report(t, execute(t))

	workers = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, opts.j))]
	for w in workers:
		w.start()
	try:
		for w in workers:
			while w.is_alive():
				w.join(0.5)
	except KeyboardInterrupt:
		queue.clear()
		for proc in list(_running):
			try:
				os.killpg(proc.pid, signal.SIGTERM)
			except ProcessLookupError:
				pass
		print("interrupted")
		return 130

	if not units and not integ:
		which = f" matching {' '.join(opts.filters)}" if opts.filters else ""
		print(f"no tests found{which}")
		return 1
	if failed:
		print(f"failed: {' '.join(failed)}")
	print(f"({time.monotonic() - start:.0f}s)")
	line = f"{counts['PASS']} passed, {counts['FAIL']} failed"
	if counts["SKIP"]:
		line += f", {counts['SKIP']} skipped"
	print(line)
	return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
	sys.exit(main())
