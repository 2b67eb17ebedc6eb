# The firmware tables every VM gets (vmm/fwtables.c): checksums, MADT, FADT
# and MP table against vmm/platform.h, read back by kernel/acpi_parse.c and
# disassembled by ACPICA's iasl when it is installed.
UNIT_TESTS += fwtables
fwtables_SRCS := tests/unit/test_fwtables.c vmm/fwtables.c kernel/acpi_parse.c
