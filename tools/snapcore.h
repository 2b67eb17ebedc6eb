/*
 * ELF core files from snapshot images (tools/snapcore.c): guest memory as
 * PT_LOAD segments, each vCPU's registers as NT_PRSTATUS (and its FXSAVE area
 * as NT_FPREGSET), so that `gdb -c FILE` reads the frozen guest. Host only.
 */
#ifndef AMBER_TOOLS_SNAPCORE_H
#define AMBER_TOOLS_SNAPCORE_H

#include "snapshot/image.h"

/* Writes the core of the opened (and verified) image to `path`. For an
 * incremental image, `base` (else NULL) first fills guest memory through
 * `page` with what its chain holds, the full image first. Returns 0, or -1
 * after a message on stderr. */
typedef int (*snapcore_base_fn)(void *ctx, snap_page_fn page, void *pctx);
int snapcore_write(struct snap_source *src, struct snap_parsed *p, const char *path,
		   snapcore_base_fn base, void *base_ctx);

#endif
