UNIT_TESTS += format
format_SRCS := tests/unit/test_format.c kernel/format.c kernel/lib.c kernel/crc32c.c
