# Incremental snapshots: child images, links and chains, loading a chain.
UNIT_TESTS += snapchain
snapchain_SRCS := tests/unit/test_snapchain.c snapshot/chain.c snapshot/store.c snapshot/format.c \
                  snapshot/image.c snapshot/reader.c snapshot/pages.c kernel/crc32c.c kernel/lib.c \
                  kernel/format.c tools/hostdisk.c drivers/blockdev.c
