# The VM behaviour tests (vm_cases.py) on the AMD-V/NPT backend, in QEMU TCG with
# -cpu max (SVM with NPT, no NRIPS, no decode assists). Every case boots its own
# QEMU (well under a second), so one failure never hides another.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vm_cases  # noqa: E402

BACKEND = vm_cases.Backend("svm", boot=lambda modules: vm_cases.boot_qemu_tcg(modules),
			   speed=300e6, slow=1.0, emulator="qemu-tcg",
			   boot_timed=lambda modules: vm_cases.boot_qemu_tcg(modules, icount=True))
vm_cases.install(globals(), BACKEND)
