# The snapshot image reader, as restore, `snap verify` and `snap info` run it.
FUZZ_TARGETS += image
image_FUZZ_SRCS := snapshot/format.c snapshot/image.c snapshot/reader.c snapshot/pages.c snapshot/describe.c \
                   kernel/crc32c.c kernel/lib.c kernel/format.c tools/hostdisk.c drivers/blockdev.c
