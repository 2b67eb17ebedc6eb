# Restore in one pass: each image byte read once, damage late in the image.
UNIT_TESTS += snapload
snapload_SRCS := tests/unit/test_snapload.c snapshot/format.c snapshot/image.c snapshot/reader.c \
                 snapshot/pages.c kernel/crc32c.c kernel/lib.c kernel/format.c tools/hostdisk.c \
                 drivers/blockdev.c
