# ACPI table parsing against tables captured from QEMU and Bochs (tests/unit/data).
UNIT_TESTS += acpi
acpi_SRCS := tests/unit/test_acpi.c kernel/acpi_parse.c
# The captured tables are linked in with .incbin: rebuild when they change.
$(BUILD)/unit/acpi: $(wildcard tests/unit/data/acpi-*.bin)
