UNIT_TESTS += multiboot
multiboot_SRCS := tests/unit/test_multiboot.c kernel/multiboot.c kernel/lib.c kernel/format.c
