# The Multiboot 1 guest loader; the demo guests are its seeds.
FUZZ_TARGETS += loader
loader_FUZZ_SRCS := vmm/loader.c vmm/memmap.c kernel/lib.c kernel/format.c
loader_FUZZ_SEEDS := $(GUEST_BINS)
