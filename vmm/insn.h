/*
 * The x86 instruction decoder behind MMIO and string I/O emulation: it turns
 * the bytes fetched at guest RIP into a neutral description of the one memory
 * access the instruction makes, and applies the result back to the registers.
 * Only the forms compilers and kernels use on device registers are known;
 * anything else is refused so the caller can stop the guest with a report.
 * Pure C, no inline assembly: host context on an exit path, and the host
 * unit tests. SDM Vol. 2A chapter 2 "Instruction Format".
 */
#ifndef AMBER_INSN_H
#define AMBER_INSN_H

#include "kernel/types.h"
#include "vmm/vcpu_state.h"

/* SDM Vol. 2A 2.3.11 "AVX Instruction Length": 15 bytes for any instruction. */
#define INSN_MAX_LEN 15

/* The default operand and address size of the code segment (its D and L
 * flags, SDM Vol. 3A 3.4.5 "Segment Descriptors"): real and virtual-8086
 * mode and CS.D=0 are 16-bit, CS.D=1 is 32-bit, CS.L=1 with EFER.LMA is
 * 64-bit mode. */
enum insn_mode {
	INSN_MODE_16,
	INSN_MODE_32,
	INSN_MODE_64,
};

/* Segment registers in the order of their ModR/M "sreg" encoding
 * (SDM Vol. 2 Appendix B "Instruction Formats and Encodings", "Segment
 * Register (sreg) Field"). */
enum insn_seg {
	INSN_SEG_ES,
	INSN_SEG_CS,
	INSN_SEG_SS,
	INSN_SEG_DS,
	INSN_SEG_FS,
	INSN_SEG_GS,
};

enum insn_op {
	INSN_MOV_STORE, /* MOV m, r / MOV m, imm / MOV moffs, rAX: memory written */
	INSN_MOV_LOAD,	/* MOV r, m / MOV rAX, moffs: memory read into reg */
	INSN_MOVZX,	/* memory read, zero-extended into reg */
	INSN_MOVSX,	/* memory read, sign-extended into reg */
	INSN_XCHG,	/* memory read, then written with reg; old value to reg */
	INSN_ADD,	/* memory read, then written with mem + src; flags */
	INSN_OR,
	INSN_AND,
	INSN_INS,  /* INS: port to ES:rDI, count and direction from the caller */
	INSN_OUTS, /* OUTS: DS:rSI (overridable) to port */
};

#define INSN_NO_REG 0xFF

/*
 * One decoded instruction. The memory operand is
 *   segment : (base + index * scale + disp) mod 2^(8 * addr_size)
 * with base/index INSN_NO_REG when absent, or next RIP + disp when rip_rel.
 */
struct insn {
	u8 len;	      /* bytes, prefixes included */
	u8 op;	      /* enum insn_op */
	u8 size;      /* bytes of memory accessed: 1, 2, 4 or 8 */
	u8 reg_size;  /* bytes of the register operand (MOVZX/MOVSX: destination) */
	u8 reg;	      /* register operand (enum vcpu_reg), or INSN_NO_REG */
	bool high8;   /* the register operand is AH, CH, DH or BH */
	bool has_imm; /* the source is imm (sign-extended to size), not reg */
	u64 imm;
	u8 addr_size; /* 2, 4 or 8 */
	u8 seg;	      /* enum insn_seg in effect */
	bool seg_override;
	bool lock, rep, repne;
	bool rip_rel;
	u8 base, index; /* enum vcpu_reg, or INSN_NO_REG */
	u8 scale;	/* 1, 2, 4 or 8 */
	s64 disp;	/* displacement, or the whole moffs offset */
};

/* The direction of the memory access: a load reads, a store writes, XCHG and
 * ADD/OR/AND read then write; INS writes and OUTS reads its string. */
static inline bool insn_reads_memory(const struct insn *in)
{
	return in->op != INSN_MOV_STORE && in->op != INSN_INS;
}

static inline bool insn_writes_memory(const struct insn *in)
{
	return in->op != INSN_MOV_LOAD && in->op != INSN_MOVZX && in->op != INSN_MOVSX &&
	       in->op != INSN_OUTS;
}

/* Decodes the instruction in buf[0..n) for a CPU in `mode`. Returns 0 and
 * fills *in; -ENODATA when the instruction runs past buf[n-1] (fetch more);
 * -EOPNOTSUPP for an instruction outside the forms above; -EINVAL for an
 * encoding the CPU itself would refuse (#UD, #GP: over 15 bytes, LOCK on a
 * MOV, a register where memory belongs). Never reads past buf[n-1]. */
int insn_decode(const u8 *buf, size_t n, enum insn_mode mode, struct insn *in);

/* The mode a vCPU in state s executes in. */
enum insn_mode insn_mode_of(const struct vcpu_state *s);

/* What an insn_decode error means, for a report. */
const char *insn_strerror(int err);

/* The offset of the memory operand inside its segment (the effective address,
 * SDM Vol. 1 3.7.5 "Specifying an Offset"); rip is that of the instruction. */
u64 insn_effective_address(const struct insn *in, const u64 regs[NR_VCPU_REGS], u64 rip);

/* The linear address of the memory operand: segment base plus effective
 * address, 32-bit wrap outside 64-bit mode, and in 64-bit mode the base of
 * FS and GS only (SDM Vol. 3A 3.4.4 "Segment Loading Instructions in IA-32e
 * Mode"). Limits and rights are not checked: the CPU did that before the
 * access exited. */
u64 insn_linear_address(const struct insn *in, const u64 regs[NR_VCPU_REGS],
			const struct vcpu_state *s, enum insn_mode mode);

/* The value a MOV store, XCHG, ADD, OR or AND takes from its source operand:
 * the immediate or the register, size bytes of it. */
u64 insn_source(const struct insn *in, const u64 regs[NR_VCPU_REGS]);

/* Writes val (size bytes) into general register r the way the CPU does: 8 and
 * 16 bits merge, 32 bits zero the upper half, 64 bits replace; high8 names
 * AH..BH (SDM Vol. 1 3.4.1.1 "General-Purpose Registers in 64-Bit Mode"). */
void insn_reg_write(u64 regs[NR_VCPU_REGS], u8 r, bool high8, u8 size, u64 val);

/* Finishes a MOV load, MOVZX or MOVSX with the value read from memory. */
void insn_complete_load(const struct insn *in, u64 regs[NR_VCPU_REGS], u64 mem);

/* XCHG, ADD, OR, AND: from the old memory value computes the value to write
 * back, updates the register (XCHG) and the arithmetic flags in *rflags
 * (ADD, OR, AND: SDM Vol. 1 3.4.3.1 "Status Flags"). Returns the new value. */
u64 insn_rmw(const struct insn *in, u64 regs[NR_VCPU_REGS], u64 *rflags, u64 mem);

#endif
