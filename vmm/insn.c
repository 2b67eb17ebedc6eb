/*
 * The x86 instruction decoder for MMIO and string I/O (see vmm/insn.h): the
 * MOV, MOVZX/MOVSX, XCHG, ADD/OR/AND memory forms and INS/OUTS, with every
 * prefix, ModR/M and SIB form, 16-bit addressing and RIP-relative operands.
 * Pure C: host context on an exit path, and the host unit tests and fuzzer.
 * SDM Vol. 2A 2.1 "Instruction Format for Protected Mode, Real-Address Mode,
 * and Virtual-8086 Mode", 2.2 "IA-32e Mode", Appendix A "Opcode Map".
 */
#include "vmm/insn.h"

#define EFER_LMA_BIT BIT(10)
#define X86_CR0_PE BIT(0)
#define X86_EFLAGS_VM BIT(17)
#define SEG_ATTR_L BIT(9)
#define SEG_ATTR_D BIT(10)

#define RFLAGS_CF BIT(0)
#define RFLAGS_PF BIT(2)
#define RFLAGS_AF BIT(4)
#define RFLAGS_ZF BIT(6)
#define RFLAGS_SF BIT(7)
#define RFLAGS_OF BIT(11)
#define RFLAGS_ARITH (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)

enum insn_mode insn_mode_of(const struct vcpu_state *s)
{
	if (!(s->cr0 & X86_CR0_PE) || (s->rflags & X86_EFLAGS_VM))
		return INSN_MODE_16;
	if ((s->efer & EFER_LMA_BIT) && (s->cs.attr & SEG_ATTR_L))
		return INSN_MODE_64;
	return (s->cs.attr & SEG_ATTR_D) ? INSN_MODE_32 : INSN_MODE_16;
}

const char *insn_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -ENODATA:
		return "instruction bytes not readable";
	case -EOPNOTSUPP:
		return "instruction not emulated";
	case -EINVAL:
		return "invalid instruction encoding";
	default:
		return "instruction decode failed";
	}
}

/* A cursor over the instruction bytes that never reads past the buffer nor
 * past the 15-byte limit. */
struct cursor {
	const u8 *buf;
	size_t n, pos;
	int err; /* the first error: -ENODATA or -EINVAL (too long) */
};

static u8 next_byte(struct cursor *c)
{
	if (c->err)
		return 0;
	if (c->pos >= INSN_MAX_LEN) {
		c->err = -EINVAL;
		return 0;
	}
	if (c->pos >= c->n) {
		c->err = -ENODATA;
		return 0;
	}
	return c->buf[c->pos++];
}

/* A little-endian value of `bytes` bytes, sign-extended to 64 bits
 * (SDM Vol. 2A 2.2.1.3 "Displacement", 2.2.1.5 "Immediates"). */
static s64 next_signed(struct cursor *c, unsigned bytes)
{
	u64 v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (u64)next_byte(c) << (8 * i);
	if (bytes < 8 && (v & (1ULL << (8 * bytes - 1))))
		v |= ~0ULL << (8 * bytes);
	return (s64)v;
}

static u64 size_mask(unsigned size) { return size >= 8 ? ~0ULL : (1ULL << (8 * size)) - 1; }

/*
 * The memory operand of a ModR/M byte with mod != 3: SDM Vol. 2A 2.1.3
 * "ModR/M and SIB Bytes", 2.1.4 "Displacement and Immediate Bytes" and 2.1.5
 * "Addressing-Mode Encoding of ModR/M and SIB Bytes", Table 2-1 (16-bit),
 * Table 2-2 (32-bit) and Table 2-3 (SIB), with the REX.X/REX.B extensions and
 * RIP-relative addressing of 2.2.1.6 "RIP-Relative Addressing".
 */
static void decode_modrm_mem(struct cursor *c, struct insn *in, u8 modrm, u8 rex, bool mode64)
{
	static const u8 base16[8] = { REG_RBX, REG_RBX, REG_RBP, REG_RBP,
				      REG_RSI, REG_RDI, REG_RBP, REG_RBX };
	static const u8 index16[8] = { REG_RSI,	    REG_RDI,	 REG_RSI,     REG_RDI,
				       INSN_NO_REG, INSN_NO_REG, INSN_NO_REG, INSN_NO_REG };
	u8 mod = modrm >> 6, rm = modrm & 7;
	bool ss_default = false;

	in->base = in->index = INSN_NO_REG;
	in->scale = 1;
	if (in->addr_size == 2) {
		if (mod == 0 && rm == 6) {
			in->disp = next_signed(c, 2);
		} else {
			in->base = base16[rm];
			in->index = index16[rm];
			ss_default = in->base == REG_RBP; /* [BP+SI], [BP+DI], [BP+d] */
			in->disp = mod == 1 ? next_signed(c, 1) : mod == 2 ? next_signed(c, 2) : 0;
		}
	} else {
		if (rm == 4) {
			u8 sib = next_byte(c);
			u8 idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
			u8 base = sib & 7;

			in->scale = 1 << (sib >> 6);
			in->index = idx == REG_RSP ? INSN_NO_REG : idx; /* 100b: none */
			if (mod == 0 && base == 5) {
				in->disp = next_signed(c, 4); /* no base, disp32 */
			} else {
				in->base = base | ((rex & 1) << 3);
				ss_default = in->base == REG_RSP || in->base == REG_RBP;
			}
		} else if (mod == 0 && rm == 5) {
			in->disp = next_signed(c, 4);
			in->rip_rel = mode64;
		} else {
			in->base = rm | ((rex & 1) << 3);
			ss_default = in->base == REG_RBP;
		}
		if (mod == 1)
			in->disp = next_signed(c, 1);
		else if (mod == 2)
			in->disp = next_signed(c, 4);
	}
	if (!in->seg_override)
		in->seg = ss_default ? INSN_SEG_SS : INSN_SEG_DS;
}

/* The register operand of ModR/M.reg (or an implicit rAX): with no REX
 * prefix, byte registers 4-7 are AH, CH, DH, BH; with any REX they are SPL,
 * BPL, SIL, DIL (SDM Vol. 2A 2.2.1.2 "More on REX Prefix Fields"). */
static void set_reg(struct insn *in, u8 r, u8 size, bool any_rex)
{
	in->reg_size = size;
	if (size == 1 && !any_rex && r >= 4 && r < 8) {
		in->reg = r - 4;
		in->high8 = true;
	} else {
		in->reg = r;
	}
}

int insn_decode(const u8 *buf, size_t n, enum insn_mode mode, struct insn *in)
{
	struct cursor c = { .buf = buf, .n = n };
	bool mode64 = mode == INSN_MODE_64, opsize = false, adsize = false, any_rex = false;
	u8 rex = 0, b, modrm = 0, opc, osz, reg;
	bool two_byte = false, has_modrm;

	*in = (struct insn){ .seg = INSN_SEG_DS, .reg = INSN_NO_REG };

	/* Legacy prefixes in any order (2.1.1 "Instruction Prefixes"); in 64-bit
	 * mode a REX prefix counts only right before the opcode (2.2.1.1 "REX
	 * Prefixes": a REX followed by a legacy prefix is ignored). */
	for (;;) {
		b = next_byte(&c);
		if (c.err)
			return c.err;
		if (mode64 && (b & 0xF0) == 0x40) {
			rex = b;
			any_rex = true;
			continue;
		}
		switch (b) {
		case 0xF0:
			in->lock = true;
			break;
		case 0xF2:
			in->repne = true;
			in->rep = false;
			break;
		case 0xF3:
			in->rep = true;
			in->repne = false;
			break;
		case 0x26:
		case 0x2E:
		case 0x36:
		case 0x3E:
			/* 64-bit mode ignores the CS, SS, DS and ES overrides
			 * (Vol. 1 3.4.2.1 "Segment Registers in 64-Bit Mode"). */
			if (!mode64) {
				in->seg = (b >> 3) & 3; /* 26 ES, 2E CS, 36 SS, 3E DS */
				in->seg_override = true;
			}
			break;
		case 0x64:
		case 0x65:
			in->seg = b == 0x64 ? INSN_SEG_FS : INSN_SEG_GS;
			in->seg_override = true;
			break;
		case 0x66:
			opsize = true;
			break;
		case 0x67:
			adsize = true;
			break;
		default:
			goto opcode;
		}
		rex = 0;
		any_rex = false;
	}
opcode:
	opc = b;
	if (opc == 0x0F) {
		two_byte = true;
		opc = next_byte(&c);
		if (c.err)
			return c.err;
	}

	/* Operand size: 2.2.1.2 and Vol. 1 3.6.1 "Operand Size and Address Size
	 * in 64-Bit Mode", Table 3-4; in 16/32-bit code 0x66 flips the default. */
	if (mode64)
		osz = (rex & 8) ? 8 : opsize ? 2 : 4;
	else
		osz = (mode == INSN_MODE_32) != opsize ? 4 : 2;
	if (mode64)
		in->addr_size = adsize ? 4 : 8;
	else
		in->addr_size = (mode == INSN_MODE_32) != adsize ? 4 : 2;

	/* Which opcodes are known: Appendix A, Table A-2 "One-byte Opcode Map"
	 * and Table A-3 "Two-byte Opcode Map". */
	has_modrm = true;
	if (two_byte) {
		switch (opc) {
		case 0xB6: /* MOVZX r, r/m8 */
		case 0xB7: /* MOVZX r, r/m16 */
		case 0xBE: /* MOVSX r, r/m8 */
		case 0xBF: /* MOVSX r, r/m16 */
			in->op = opc < 0xBE ? INSN_MOVZX : INSN_MOVSX;
			in->size = (opc & 1) ? 2 : 1;
			break;
		default:
			return -EOPNOTSUPP;
		}
	} else {
		switch (opc) {
		case 0x00: /* ADD r/m, r */
		case 0x01:
		case 0x08: /* OR */
		case 0x09:
		case 0x20: /* AND */
		case 0x21:
			in->op = opc < 0x08 ? INSN_ADD : opc < 0x20 ? INSN_OR : INSN_AND;
			in->size = (opc & 1) ? osz : 1;
			break;
		case 0x80: /* group 1: r/m8, imm8 */
		case 0x81: /* r/m, imm16/32 */
		case 0x83: /* r/m, imm8 sign-extended */
			in->size = opc == 0x80 ? 1 : osz;
			in->has_imm = true;
			break;
		case 0x86: /* XCHG r/m, r */
		case 0x87:
			in->op = INSN_XCHG;
			in->size = (opc & 1) ? osz : 1;
			break;
		case 0x88: /* MOV r/m, r */
		case 0x89:
		case 0x8A: /* MOV r, r/m */
		case 0x8B:
			in->op = (opc & 2) ? INSN_MOV_LOAD : INSN_MOV_STORE;
			in->size = (opc & 1) ? osz : 1;
			break;
		case 0xC6: /* MOV r/m, imm */
		case 0xC7:
			in->op = INSN_MOV_STORE;
			in->size = (opc & 1) ? osz : 1;
			in->has_imm = true;
			break;
		case 0xA0: /* MOV AL, moffs8 */
		case 0xA1: /* MOV rAX, moffs */
		case 0xA2: /* MOV moffs8, AL */
		case 0xA3: /* MOV moffs, rAX */
			in->op = (opc & 2) ? INSN_MOV_STORE : INSN_MOV_LOAD;
			in->size = (opc & 1) ? osz : 1;
			has_modrm = false;
			break;
		case 0x6C: /* INSB */
		case 0x6D: /* INSW/INSD */
		case 0x6E: /* OUTSB */
		case 0x6F: /* OUTSW/OUTSD: 64-bit mode has no OUTSQ, REX.W is ignored */
			in->op = opc < 0x6E ? INSN_INS : INSN_OUTS;
			in->size = (opc & 1) ? (osz == 2 ? 2 : 4) : 1;
			has_modrm = false;
			break;
		default:
			return -EOPNOTSUPP;
		}
	}

	if (!has_modrm) {
		in->base = in->index = INSN_NO_REG;
		in->scale = 1;
		if (in->op == INSN_INS || in->op == INSN_OUTS) {
			/* The string is at ES:rDI for INS (ES cannot be overridden),
			 * DS:rSI for OUTS (SDM Vol. 2B "INS/INSB/INSW/INSD",
			 * "OUTS/OUTSB/OUTSW/OUTSD"). */
			if (in->op == INSN_INS) {
				in->seg = INSN_SEG_ES;
				in->seg_override = false;
				in->base = REG_RDI;
			} else {
				in->base = REG_RSI;
			}
		} else {
			/* moffs: an offset of the address size (Vol. 2B "MOV"). */
			in->disp = next_signed(&c, in->addr_size);
			set_reg(in, REG_RAX, in->size, any_rex);
		}
		if (c.err)
			return c.err;
		if (in->lock)
			return -EINVAL; /* #UD: Vol. 2B "LOCK-Assert LOCK# Signal Prefix" */
		in->len = (u8)c.pos;
		return 0;
	}

	modrm = next_byte(&c);
	if (c.err)
		return c.err;
	reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
	if ((modrm >> 6) == 3)
		return -EINVAL; /* a register operand: no memory access to emulate */
	if (opc == 0xC6 || opc == 0xC7) {
		if ((reg & 7) != 0)
			return -EOPNOTSUPP; /* C6 F8 XABORT, C7 F8 XBEGIN, the rest #UD */
	} else if (!two_byte && (opc == 0x80 || opc == 0x81 || opc == 0x83)) {
		switch (reg & 7) {
		case 0:
			in->op = INSN_ADD;
			break;
		case 1:
			in->op = INSN_OR;
			break;
		case 4:
			in->op = INSN_AND;
			break;
		default: /* ADC, SBB, SUB, XOR, CMP */
			return -EOPNOTSUPP;
		}
	} else if (two_byte) {
		set_reg(in, reg, osz, any_rex); /* MOVZX/MOVSX destination */
	} else {
		set_reg(in, reg, in->size, any_rex);
	}
	decode_modrm_mem(&c, in, modrm, rex, mode64);
	if (in->has_imm) {
		/* imm8 for byte operands and 83, else imm16 or imm32 (64-bit
		 * operands take a sign-extended imm32). */
		unsigned isz = (in->size == 1 || opc == 0x83) ? 1 : in->size == 2 ? 2 : 4;

		in->imm = (u64)next_signed(&c, isz) & size_mask(in->size);
	}
	if (c.err)
		return c.err;
	/* LOCK is allowed only on read-modify-write forms (Vol. 2B "LOCK"). */
	if (in->lock && in->op != INSN_ADD && in->op != INSN_OR && in->op != INSN_AND &&
	    in->op != INSN_XCHG)
		return -EINVAL;
	in->len = (u8)c.pos;
	return 0;
}

static const struct vcpu_segment *segment(const struct vcpu_state *s, u8 seg)
{
	switch (seg) {
	case INSN_SEG_ES:
		return &s->es;
	case INSN_SEG_CS:
		return &s->cs;
	case INSN_SEG_SS:
		return &s->ss;
	case INSN_SEG_FS:
		return &s->fs;
	case INSN_SEG_GS:
		return &s->gs;
	default:
		return &s->ds;
	}
}

u64 insn_effective_address(const struct insn *in, const u64 regs[NR_VCPU_REGS], u64 rip)
{
	u64 ea = (u64)in->disp;

	if (in->rip_rel)
		ea += rip + in->len;
	if (in->base != INSN_NO_REG)
		ea += regs[in->base & 15];
	if (in->index != INSN_NO_REG)
		ea += regs[in->index & 15] * in->scale;
	return ea & size_mask(in->addr_size);
}

u64 insn_linear_address(const struct insn *in, const u64 regs[NR_VCPU_REGS],
			const struct vcpu_state *s, enum insn_mode mode)
{
	u64 ea = insn_effective_address(in, regs, s->rip);

	if (mode == INSN_MODE_64)
		return (in->seg == INSN_SEG_FS || in->seg == INSN_SEG_GS) ?
			       ea + segment(s, in->seg)->base :
			       ea;
	return (segment(s, in->seg)->base + ea) & 0xFFFFFFFFULL;
}

static u64 reg_read(const u64 regs[NR_VCPU_REGS], u8 r, bool high8, u8 size)
{
	if (high8)
		return (regs[r & 3] >> 8) & 0xFF;
	return regs[r & 15] & size_mask(size);
}

u64 insn_source(const struct insn *in, const u64 regs[NR_VCPU_REGS])
{
	if (in->has_imm)
		return in->imm & size_mask(in->size);
	if (in->reg == INSN_NO_REG)
		return 0;
	return reg_read(regs, in->reg, in->high8, in->size);
}

void insn_reg_write(u64 regs[NR_VCPU_REGS], u8 r, bool high8, u8 size, u64 val)
{
	u64 *p;

	if (high8) {
		p = &regs[r & 3];
		*p = (*p & ~0xFF00ULL) | ((val & 0xFF) << 8);
		return;
	}
	p = &regs[r & 15];
	if (size >= 4)
		*p = val & size_mask(size); /* 32-bit results zero-extend */
	else
		*p = (*p & ~size_mask(size)) | (val & size_mask(size));
}

static u64 sign_extend(u64 v, u8 size)
{
	u64 sign = 1ULL << (8 * size - 1);

	v &= size_mask(size);
	return size >= 8 ? v : (v ^ sign) - sign;
}

void insn_complete_load(const struct insn *in, u64 regs[NR_VCPU_REGS], u64 mem)
{
	mem &= size_mask(in->size);
	if (in->reg == INSN_NO_REG)
		return;
	if (in->op == INSN_MOVSX)
		mem = sign_extend(mem, in->size);
	insn_reg_write(regs, in->reg, in->high8, in->reg_size, mem);
}

/* PF is the even parity of the low byte of the result. */
static bool parity_even(u64 v)
{
	u8 b = (u8)v;

	b ^= b >> 4;
	b ^= b >> 2;
	b ^= b >> 1;
	return !(b & 1);
}

u64 insn_rmw(const struct insn *in, u64 regs[NR_VCPU_REGS], u64 *rflags, u64 mem)
{
	u64 mask = size_mask(in->size), sign = 1ULL << (8 * in->size - 1);
	u64 src = insn_source(in, regs), res, f = 0;

	mem &= mask;
	switch (in->op) {
	case INSN_XCHG:
		if (in->reg != INSN_NO_REG)
			insn_reg_write(regs, in->reg, in->high8, in->size, mem);
		return src;
	case INSN_ADD: /* SDM Vol. 2A "ADD": OF, SF, ZF, AF, CF and PF */
		res = (mem + src) & mask;
		if (res < mem)
			f |= RFLAGS_CF;
		if ((~(mem ^ src) & (mem ^ res)) & sign)
			f |= RFLAGS_OF;
		if ((mem ^ src ^ res) & 0x10)
			f |= RFLAGS_AF;
		break;
	case INSN_OR: /* "OR"/"AND": OF and CF cleared, AF undefined (cleared) */
		res = mem | src;
		break;
	case INSN_AND:
		res = mem & src;
		break;
	default:
		return mem;
	}
	if (!res)
		f |= RFLAGS_ZF;
	if (res & sign)
		f |= RFLAGS_SF;
	if (parity_even(res))
		f |= RFLAGS_PF;
	*rflags = (*rflags & ~RFLAGS_ARITH) | f;
	return res;
}
