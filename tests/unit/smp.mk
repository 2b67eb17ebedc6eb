# The CPU list the boot CPU brings up from the MADT (kernel/smp_list.c).
UNIT_TESTS += smp
smp_SRCS := tests/unit/test_smp.c kernel/smp_list.c
