/*
 * VMCS accessors and the VMX instructions as C functions. The width of every
 * field is checked at compile time from its encoding (bits 14:13), so
 * vmcs_write32(GUEST_RIP, ...) does not build. Host context in VMX root
 * operation (after VMXON), with the vCPU's VMCS current (vmptrld).
 * SDM Vol. 3C 25.11.2 "VMREAD, VMWRITE, and Encodings of VMCS Fields".
 */
#ifndef AMBER_VMCS_H
#define AMBER_VMCS_H

#include "kernel/types.h"
#include "vmm/vmx/vmx_defs.h"

/* Called when VMREAD or VMWRITE fails (a field the CPU does not have): logs
 * it once per field in vmm/vmx/vmx.c. A bug of Amber, never of a guest. */
void vmcs_error(u32 field, bool write);

#ifdef AMBER_HOST_TEST
/* The host unit tests (tests/unit/test_vmx_exit.c) keep a VMCS in memory and
 * provide these two; no VMX instruction is compiled for the host. */
u64 __vmcs_read(u32 field);
void __vmcs_write(u32 field, u64 value);
#else
/*
 * The unchecked forms. VMX instructions report failure in RFLAGS: CF=1
 * (VMfailInvalid) or ZF=1 (VMfailValid), so "above" (CF=0 and ZF=0) means
 * success; SDM Vol. 3C 31.2 "Conventions".
 */
static inline u64 __vmcs_read(u32 field)
{
	u64 value;
	bool ok;

	__asm__ volatile("vmread %[f], %[v]" : [v] "=r"(value), "=@cca"(ok) : [f] "r"((u64)field));
	if (unlikely(!ok)) {
		vmcs_error(field, false);
		return 0;
	}
	return value;
}

static inline void __vmcs_write(u32 field, u64 value)
{
	bool ok;

	__asm__ volatile("vmwrite %[v], %[f]"
			 : "=@cca"(ok)
			 : [v] "r"(value), [f] "r"((u64)field)
			 : "memory");
	if (unlikely(!ok))
		vmcs_error(field, true);
}
#endif

#define VMCS_CHECK_WIDTH(field, width, msg) _Static_assert(VMCS_FIELD_WIDTH(field) == (width), msg)

#define vmcs_read16(field) \
	({ \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_U16, \
				 "vmcs_read16(" #field "): not a 16-bit field"); \
		(u16) __vmcs_read(field); \
	})
#define vmcs_read32(field) \
	({ \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_U32, \
				 "vmcs_read32(" #field "): not a 32-bit field"); \
		(u32) __vmcs_read(field); \
	})
#define vmcs_read64(field) \
	({ \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_U64, \
				 "vmcs_read64(" #field "): not a 64-bit field"); \
		__vmcs_read(field); \
	})
#define vmcs_readl(field) \
	({ \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_NATURAL, \
				 "vmcs_readl(" #field "): not a natural-width field"); \
		__vmcs_read(field); \
	})

#define vmcs_write16(field, value) \
	do { \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_U16, \
				 "vmcs_write16(" #field "): not a 16-bit field"); \
		__vmcs_write(field, (u16)(value)); \
	} while (0)
#define vmcs_write32(field, value) \
	do { \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_U32, \
				 "vmcs_write32(" #field "): not a 32-bit field"); \
		__vmcs_write(field, (u32)(value)); \
	} while (0)
#define vmcs_write64(field, value) \
	do { \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_U64, \
				 "vmcs_write64(" #field "): not a 64-bit field"); \
		__vmcs_write(field, (u64)(value)); \
	} while (0)
#define vmcs_writel(field, value) \
	do { \
		VMCS_CHECK_WIDTH(field, VMCS_FIELD_WIDTH_NATURAL, \
				 "vmcs_writel(" #field "): not a natural-width field"); \
		__vmcs_write(field, (u64)(value)); \
	} while (0)

#ifndef AMBER_HOST_TEST
/* ---- the VMX instructions; each returns 0 or -EIO (VMfail) ---- */
static inline int vmxon(u64 pa)
{
	bool ok;

	__asm__ volatile("vmxon %[pa]" : "=@cca"(ok) : [pa] "m"(pa) : "memory");
	return ok ? 0 : -EIO;
}

static inline void vmxoff(void) { __asm__ volatile("vmxoff" ::: "cc", "memory"); }

static inline int vmclear(u64 pa)
{
	bool ok;

	__asm__ volatile("vmclear %[pa]" : "=@cca"(ok) : [pa] "m"(pa) : "memory");
	return ok ? 0 : -EIO;
}

static inline int vmptrld(u64 pa)
{
	bool ok;

	__asm__ volatile("vmptrld %[pa]" : "=@cca"(ok) : [pa] "m"(pa) : "memory");
	return ok ? 0 : -EIO;
}

/* SDM Vol. 3C 31.3 "VMX Instructions", INVEPT: the descriptor is 128 bits. */
static inline int invept(u64 type, u64 eptp)
{
	struct {
		u64 eptp, reserved;
	} desc = { eptp, 0 };
	bool ok;

	__asm__ volatile("invept %[d], %[t]"
			 : "=@cca"(ok)
			 : [d] "m"(desc), [t] "r"(type)
			 : "memory");
	return ok ? 0 : -EIO;
}

/* INVVPID: the descriptor holds the VPID in bits 15:0 and a linear address. */
static inline int invvpid(u64 type, u16 vpid, u64 gva)
{
	struct {
		u64 vpid, gva;
	} desc = { vpid, gva };
	bool ok;

	__asm__ volatile("invvpid %[d], %[t]"
			 : "=@cca"(ok)
			 : [d] "m"(desc), [t] "r"(type)
			 : "memory");
	return ok ? 0 : -EIO;
}
#endif

#endif
