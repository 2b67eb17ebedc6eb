# The snapshot store: superblock, catalogs, recovery scan, allocator, images.
FUZZ_TARGETS += store
store_FUZZ_SRCS := snapshot/store.c snapshot/chain.c snapshot/format.c snapshot/image.c snapshot/reader.c snapshot/pages.c \
                   snapshot/describe.c kernel/crc32c.c kernel/lib.c kernel/format.c \
                   tools/hostdisk.c drivers/blockdev.c
