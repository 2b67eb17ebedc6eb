/*
 * Host-side stand-ins for the kernel interfaces the snapshot code uses: a
 * block device over a disk image file (drivers/blockdev.c does the checks, as
 * in the kernel), and the memory hooks of snapshot/format.h. Linked into tools/amber-snap and the host unit
 * tests; never into the kernel.
 */
#ifndef AMBER_TOOLS_HOSTDISK_H
#define AMBER_TOOLS_HOSTDISK_H

#include "drivers/blockdev.h"

struct hostdisk {
	struct blkdev dev;
	int fd;
};

/* Opens a raw disk image as a 512-byte-sector disk. Returns 0 or -errno
 * (the host's), with a message on stderr. */
int hostdisk_open(struct hostdisk *hd, const char *path, bool writable);
void hostdisk_close(struct hostdisk *hd);

#endif
