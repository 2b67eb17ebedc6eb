UNIT_TESTS += console
console_SRCS := tests/unit/test_console.c kernel/console.c kernel/lib.c
