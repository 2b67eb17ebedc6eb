# libFuzzer target for the instruction decoder (vmm/insn.c): invariants on
# every input, not only "does not crash" (see tests/fuzz/fuzz_insn.c).
FUZZ_TARGETS += insn
insn_FUZZ_SRCS := tests/fuzz/fuzz_insn.c vmm/insn.c
