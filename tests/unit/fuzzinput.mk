# The fuzz corpus and its deterministic mutations (vmm/fuzzinput.c).
UNIT_TESTS += fuzzinput
fuzzinput_SRCS := tests/unit/test_fuzzinput.c vmm/fuzzinput.c kernel/lib.c
