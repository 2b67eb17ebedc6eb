#!/usr/bin/env python3
# The figures of docs/reliability.md: tests record them as they run
# (record()), into $AMBER_BUILD/reliability/SECTION.txt, and `make
# reliability` runs those tests and then this script, which puts each
# recorded block between its markers in the document:
#     <!-- figures: SECTION -->  ...  <!-- end figures: SECTION -->
# Runs on the build host.
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("AMBER_BUILD") or os.environ.get("BUILD") or "build")
FIG_DIR = os.path.join(BUILD, "reliability")


def record(section, text):
	"""Keeps this run's figures of `section` (Markdown) for figures.py."""
	os.makedirs(FIG_DIR, exist_ok=True)
	with open(os.path.join(FIG_DIR, section + ".txt"), "w") as f:
		f.write(text.rstrip() + "\n")


def update(doc):
	with open(doc) as f:
		text = f.read()
	done = []
	for name in sorted(os.listdir(FIG_DIR)) if os.path.isdir(FIG_DIR) else []:
		section = name[:-4]
		with open(os.path.join(FIG_DIR, name)) as f:
			block = f.read()
		pat = re.compile(rf"(<!-- figures: {re.escape(section)} -->\n).*?(<!-- end figures: "
				 rf"{re.escape(section)} -->)", re.S)
		if not pat.search(text):
			print(f"figures.py: {doc} has no markers for '{section}'", file=sys.stderr)
			continue
		text = pat.sub(lambda m: m.group(1) + block + m.group(2), text)
		done.append(section)
	with open(doc, "w") as f:
		f.write(text)
	print(f"figures.py: updated {', '.join(done) or 'nothing'} in {os.path.relpath(doc, ROOT)}")
	return 0


if __name__ == "__main__":
	sys.exit(update(sys.argv[1] if len(sys.argv) > 1 else
			os.path.join(ROOT, "docs", "reliability.md")))
