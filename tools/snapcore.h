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
 * `page` with what its chain holds, the full image first. A guest in 32- or
 * 16-bit code gets an i386 core (gdb then decodes its code as i386). Returns 0, or -1
 * after a message on stderr. */
typedef int (*snapcore_base_fn)(void *ctx, snap_page_fn page, void *pctx);
/* What the core says of vCPU 0's code: mode 64 (an ELF64 x86-64 core), 32
 * or 16 (an ELF32 i386 core); real: in real mode. */
struct snapcore_info {
	u32 mode;
	bool real;
};
int snapcore_write(struct snap_source *src, struct snap_parsed *p, const char *path,
		   struct snapcore_info *info, snapcore_base_fn base, void *base_ctx);

#endif
