# PCI BAR decoding, class names and the capability walk (kernel/pci_parse.c).
UNIT_TESTS += pci
pci_SRCS := tests/unit/test_pci.c kernel/pci_parse.c
