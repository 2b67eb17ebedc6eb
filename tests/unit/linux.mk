# The Linux bzImage loader (vmm/linux.c) on synthetic bzImages, bad ones included.
UNIT_TESTS += linux
linux_SRCS := tests/unit/test_linux.c vmm/linux.c vmm/loader.c kernel/lib.c kernel/format.c \
               $(wildcard vmm/memmap.c)
