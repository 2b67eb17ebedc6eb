# The Linux bzImage loader; the harness writes a synthetic bzImage as its seed.
FUZZ_TARGETS += linux
linux_FUZZ_SRCS := vmm/linux.c vmm/loader.c kernel/lib.c kernel/format.c $(wildcard vmm/memmap.c)
