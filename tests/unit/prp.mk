# NVMe PRP construction and status names (drivers/nvme_prp.c).
UNIT_TESTS += prp
prp_SRCS := tests/unit/test_prp.c drivers/nvme_prp.c
