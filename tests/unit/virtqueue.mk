# Split virtqueue arithmetic (drivers/virtqueue.c).
UNIT_TESTS += virtqueue
virtqueue_SRCS := tests/unit/test_virtqueue.c drivers/virtqueue.c
