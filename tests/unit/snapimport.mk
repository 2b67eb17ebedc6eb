# amber-snap import: refusals leave the disk unchanged, an imported chain links.
UNIT_TESTS += snapimport
snapimport_SRCS := tests/unit/test_snapimport.c tools/snapimport.c snapshot/chain.c snapshot/store.c \
                   snapshot/format.c snapshot/image.c snapshot/reader.c snapshot/pages.c \
                   kernel/crc32c.c kernel/lib.c kernel/format.c tools/hostdisk.c drivers/blockdev.c
