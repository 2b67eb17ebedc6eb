# The generic MSR emulation (vmm/emulate.c) against a recording backend.
UNIT_TESTS += emulate
emulate_SRCS := tests/unit/test_emulate.c vmm/emulate.c vmm/cpumodel.c kernel/lib.c kernel/format.c
