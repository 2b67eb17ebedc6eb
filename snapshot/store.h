/*
 * The snapshot store on a disk: a superblock, two catalog copies with
 * generation numbers and CRC32C, and a data area where every snapshot is one
 * contiguous image. Free space is what no catalog entry covers. Pure logic over
 * drivers/blockdev.h (host tool and unit tests link it with a file-backed disk).
 * docs/snapshot-format.md "The store on disk" gives every byte and the commit
 * protocol.
 */
#ifndef AMBER_SNAP_STORE_H
#define AMBER_SNAP_STORE_H

#include "drivers/blockdev.h"
#include "snapshot/format.h"

#define SNAP_STORE_VERSION 1
#define SNAP_SB_SIZE 128  /* superblock bytes in block 0 */
#define SNAP_CAT_BLOCKS 4 /* blocks per catalog copy */
#define SNAP_CAT_BYTES (SNAP_CAT_BLOCKS * SNAP_BLOCK)
#define SNAP_CAT_HEAD 64
#define SNAP_CAT_ENTRY 128
#define SNAP_CAT_MAX ((SNAP_CAT_BYTES - SNAP_CAT_HEAD) / SNAP_CAT_ENTRY) /* 127 */
#define SNAP_CAT_A_BLOCK 1
#define SNAP_CAT_B_BLOCK (SNAP_CAT_A_BLOCK + SNAP_CAT_BLOCKS)
#define SNAP_DATA_START 256 /* blocks: the first MiB holds the metadata */
#define SNAP_STORE_MIN_BLOCKS (SNAP_DATA_START + 16)

#define SNAP_STATE_COMPLETE 1	      /* written, flushed, committed */
#define SNAP_STATE_RECOVERED 2	      /* found on the disk after the catalog lost it */
#define SNAP_STATE_DAMAGED_RECOVERY 3 /* in memory only: a found image cut short */

/* One catalog entry (128 bytes on disk). */
struct snap_entry {
	char name[32];
	char vm_image[32]; /* the guest image the VM was created from */
	u64 start_block;   /* first 4 KiB block of the image on the disk */
	u64 size;	   /* the image's total_size */
	u64 ticks;	   /* header timestamp: Amber's ticks at the freeze */
	u64 wall;	   /* wall-clock time of the save, Unix seconds (0: unknown) */
	u64 seq;	   /* serial number within this store, increasing */
	u64 memory_pages;
	u32 state;	/* SNAP_STATE_COMPLETE or SNAP_STATE_RECOVERED */
	u32 header_crc; /* CRC32C of the image's 64-byte header: ties entry and image */
	u16 vm_id;
	u16 vcpus;
};

static inline u64 snap_entry_blocks(const struct snap_entry *e)
{
	return (e->size + SNAP_BLOCK - 1) / SNAP_BLOCK;
}

struct snap_store {
	struct blkdev *dev;
	u32 spb;	  /* device sectors per 4 KiB block */
	u64 total_blocks; /* as the superblock says */
	u64 data_start;
	u64 store_id;
	u64 generation; /* of the catalog copy in use */
	u64 next_seq;
	int cur; /* that copy: 0 = A, 1 = B */
	struct {
		bool ok;
		u64 generation;
		char why[80]; /* why a copy is not valid */
	} copy[2];
	u32 count;
	struct snap_entry entry[SNAP_CAT_MAX];
	char err[160]; /* one-line reason of the last failure */
	/* The last commit's new catalog was written but its flush failed: the
	 * disk may hold the change or not, so callers must not say either. */
	bool unsure;
	/* Set by open when a catalog copy is damaged and the images were scanned. */
	bool damaged;
	u32 recovered;	 /* images found that the catalog in use did not name */
	u32 overwritten; /* found images cut short by a later one (not restorable) */
	u32 lost;	 /* found images left out: the catalog was full */
	char note[200];	 /* what open found and did, for a loud message */
	/* Optional, called during the scan with the blocks done; a nonzero
	 * return (Ctrl-C: -ECANCELED) ends the open with it. */
	int (*progress)(void *ctx, u64 done, u64 total);
	void *progress_ctx;
	u8 buf[SNAP_CAT_BYTES] __aligned(SNAP_BLOCK);
};

/* Opens the store on dev. When a catalog copy is damaged (not merely never
 * written), the data area is scanned and every image the catalog in use lacks
 * is added as a recovered entry (st->damaged, st->recovered and st->note say
 * so). Returns 0; -ENODATA when dev holds no store;
 * -EBADMSG when the superblock or both catalog copies are damaged; -EINVAL for
 * an unsupported sector size; -ERANGE when the disk is smaller than the store;
 * or the disk's errno. st->err says why. */
int snap_store_open(struct snap_store *st, struct blkdev *dev);
/* The overwrite guard of `disk write`: true when dev holds a store, or looks
 * like it once did (a superblock, catalog or image magic where the store puts
 * them). Registered with blkdev_set_guard() at boot and by amber-snap. */
bool snap_store_present(struct blkdev *dev);
/* Whether entry i's image still starts with the header the entry names:
 * 1 yes, 0 no (damaged or overwritten), or the disk's errno. */
int snap_store_check_entry(struct snap_store *st, u32 i);
/* 1 when the first MiB of dev is all zero (a blank disk), 0 if not, or errno. */
int snap_store_blank(struct snap_store *st, struct blkdev *dev);
/* Writes an empty store over dev (superblock last). */
int snap_store_format(struct snap_store *st, struct blkdev *dev, u64 store_id);

int snap_store_find(const struct snap_store *st, const char *name);
/* First fit: a free extent of `bytes` (rounded up to blocks). -ENOSPC if none. */
int snap_store_alloc(const struct snap_store *st, u64 bytes, u64 *start_block);
void snap_store_space(const struct snap_store *st, u64 *free_blocks, u64 *largest_free);

int snap_store_read(struct snap_store *st, u64 block, u64 nblocks, void *buf);
int snap_store_write(struct snap_store *st, u64 block, u64 nblocks, const void *buf);

/* Commit protocol: flush (the image is durable), write the next generation of
 * the catalog into the copy not in use, flush. Until that write completes the
 * other copy still describes the store, so a torn write loses nothing. */
int snap_store_add(struct snap_store *st, const struct snap_entry *e);
int snap_store_remove(struct snap_store *st, int index);
/* One commit that drops entry `index` and adds e, of the same name: until the
 * new catalog is durable the old one names the old image, whose extent no
 * allocation could take meanwhile; after it the old extent is free. */
int snap_store_replace(struct snap_store *st, const struct snap_entry *e, int index);

/* The dd command that copies entry e's image out of the disk image, the
 * same line in `snap info` and `amber-snap info`: "dd skip=N count=M bs=4096". */
void snap_entry_dd(char *buf, size_t len, const struct snap_entry *e);

/* Encodings, for tests and tools. */
void snap_entry_encode(const struct snap_entry *e, u8 out[SNAP_CAT_ENTRY]);
void snap_entry_decode(const u8 in[SNAP_CAT_ENTRY], struct snap_entry *e);

#endif
