UNIT_TESTS += lineedit
lineedit_SRCS := tests/unit/test_lineedit.c kernel/lineedit.c kernel/format.c kernel/lib.c
