# The control channel's request lines, request ids and boot scripts, and the
# JSON writer that answers them.
FUZZ_TARGETS += ctl
ctl_FUZZ_SRCS := kernel/ctl_proto.c kernel/json.c kernel/format.c kernel/lib.c
