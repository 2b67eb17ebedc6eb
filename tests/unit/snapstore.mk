# Snapshot store: catalog commit and rollback, torn writes, full disk.
UNIT_TESTS += snapstore
snapstore_SRCS := tests/unit/test_snapstore.c snapshot/store.c snapshot/format.c snapshot/image.c \
                  snapshot/reader.c snapshot/pages.c kernel/crc32c.c kernel/lib.c kernel/format.c tools/hostdisk.c drivers/blockdev.c
