# Interrupt delivery (vmm/intr.c): the pure decision, and what it asks of a
# recording backend, LAPIC and 8259A around an entry.
UNIT_TESTS += intr
intr_SRCS := tests/unit/test_intr.c vmm/intr.c vmm/vtsc.c
