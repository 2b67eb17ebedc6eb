/*
 * libFuzzer target: the Multiboot 1 guest loader (vmm/loader.c) on a hostile
 * guest image: header search, a.out kludge, ELF32 and ELF64 program headers,
 * the copy into a 4 MiB guest RAM (every write bounds-checked here, so a
 * write outside RAM is a crash), the information structure. Host only.
 */
#include <stdlib.h>
#include <string.h>

#include "kernel/lib.h"
#include "vmm/loader.h"
#include "vmm/platform.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

#define RAM_SIZE (4u << 20)
static u8 ram[RAM_SIZE];

static int ram_write(void *ctx, u64 gpa, const void *src, u64 len)
{
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		abort(); /* the loader must have refused this already */
	memcpy(ram + gpa, src, len);
	return 0;
}

static int ram_zero(void *ctx, u64 gpa, u64 len)
{
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		abort();
	memset(ram + gpa, 0, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static const struct loader_target t = { RAM_SIZE, ram_write, ram_zero, NULL };
	struct mb_loaded out;
	struct vcpu_state s;
	char err[160];
	u32 info;

	if (mb_load(data, size, &t, &out, err, sizeof(err)))
		return 0;
	if (out.lo > out.hi || out.hi > RAM_SIZE || out.entry < out.lo || out.entry >= out.hi)
		abort(); /* a loaded image must lie in RAM with its entry inside it */
	if (mb_write_info(&t, &out, "fuzz cmdline", &info, err, sizeof(err)) == 0) {
		/* The information page and the stack page under it never touch the
		 * image, nor the reserved area where the firmware tables go. */
		if (info < MB_STACK_SIZE || info % 0x1000 ||
		    (info + MB_INFO_SIZE > out.lo && info - MB_STACK_SIZE < out.hi) ||
		    (info + MB_INFO_SIZE > PLAT_EBDA && info - MB_STACK_SIZE < PLAT_BIOS_AREA_END))
			abort();
		mb_entry_state(&s, out.entry, info);
	}
	return 0;
}
