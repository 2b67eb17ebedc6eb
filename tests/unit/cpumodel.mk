# Guest CPU models (vmm/cpumodel.c): Amber's CPUID masks, the portable model
# against the features both test rigs were measured to offer, and the names
# a refused restore gives for what is missing.
UNIT_TESTS += cpumodel
cpumodel_SRCS := tests/unit/test_cpumodel.c vmm/cpumodel.c kernel/lib.c kernel/format.c
