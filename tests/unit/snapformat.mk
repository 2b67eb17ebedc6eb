# Snapshot image format: header, CRC32C, vCPU record, round trip, bit flips.
UNIT_TESTS += snapformat
snapformat_SRCS := tests/unit/test_snapformat.c snapshot/format.c snapshot/image.c \
                   snapshot/reader.c snapshot/pages.c snapshot/describe.c kernel/crc32c.c kernel/lib.c kernel/format.c tools/hostdisk.c drivers/blockdev.c
