UNIT_TESTS += ctl
ctl_SRCS := tests/unit/test_ctl.c kernel/json.c kernel/ctl_proto.c kernel/format.c kernel/lib.c
