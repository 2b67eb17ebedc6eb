# The instruction decoder for MMIO and string I/O (vmm/insn.c), form by form.
UNIT_TESTS += insn
insn_SRCS := tests/unit/test_insn.c vmm/insn.c
