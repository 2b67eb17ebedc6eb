/*
 * libFuzzer target for the instruction decoder (vmm/insn.c). The first input
 * byte picks the CPU mode, the rest are instruction bytes, given to the
 * decoder in a buffer of exactly their size (so AddressSanitizer sees any
 * read past it). Checked on every input: only the documented errors; a
 * decoded instruction is 1-15 bytes, within the buffer, with sane fields;
 * decoding is deterministic and depends only on the bytes it took (the same
 * result from exactly len bytes, -ENODATA from len - 1); -ENODATA never
 * comes when 15 bytes were there; the helpers run without undefined
 * behaviour. Host only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/insn.h"

#define FAIL(...) \
	do { \
		fprintf(stderr, "fuzz_insn: " __VA_ARGS__); \
		fprintf(stderr, "\n"); \
		abort(); \
	} while (0)

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

static bool same(const struct insn *a, const struct insn *b)
{
	return a->len == b->len && a->op == b->op && a->size == b->size &&
	       a->reg_size == b->reg_size && a->reg == b->reg && a->high8 == b->high8 &&
	       a->has_imm == b->has_imm && a->imm == b->imm && a->addr_size == b->addr_size &&
	       a->seg == b->seg && a->seg_override == b->seg_override && a->lock == b->lock &&
	       a->rep == b->rep && a->repne == b->repne && a->rip_rel == b->rip_rel &&
	       a->base == b->base && a->index == b->index && a->scale == b->scale &&
	       a->disp == b->disp;
}

static bool pow2_size(u8 s) { return s == 1 || s == 2 || s == 4 || s == 8; }

static bool reg_ok(u8 r) { return r < NR_VCPU_REGS || r == INSN_NO_REG; }

static void check_fields(const struct insn *in, enum insn_mode mode, size_t n)
{
	if (in->len < 1 || in->len > INSN_MAX_LEN || in->len > n)
		FAIL("length %u with %zu bytes", in->len, n);
	if (in->op > INSN_OUTS || !pow2_size(in->size) || !pow2_size(in->scale))
		FAIL("op %u size %u scale %u", in->op, in->size, in->scale);
	if (in->addr_size != 2 && in->addr_size != 4 && in->addr_size != 8)
		FAIL("address size %u", in->addr_size);
	if ((mode == INSN_MODE_64 && in->addr_size == 2) ||
	    (mode != INSN_MODE_64 && in->addr_size == 8))
		FAIL("address size %u in mode %d", in->addr_size, mode);
	if (!reg_ok(in->reg) || !reg_ok(in->base) || !reg_ok(in->index) || in->seg > INSN_SEG_GS)
		FAIL("reg %u base %u index %u seg %u", in->reg, in->base, in->index, in->seg);
	if (in->high8 && (in->reg > REG_RBX || in->size != 1))
		FAIL("high8 with reg %u size %u", in->reg, in->size);
	if (in->size == 8 && mode != INSN_MODE_64)
		FAIL("64-bit access outside 64-bit mode");
	if (in->rip_rel && (mode != INSN_MODE_64 || in->base != INSN_NO_REG))
		FAIL("RIP-relative in mode %d with base %u", mode, in->base);
	if (in->has_imm && (in->imm & ~(in->size == 8 ? ~0ULL : (1ULL << (8 * in->size)) - 1)))
		FAIL("immediate 0x%llx wider than %u bytes", (unsigned long long)in->imm, in->size);
	if (in->op == INSN_INS && (in->seg != INSN_SEG_ES || in->base != REG_RDI))
		FAIL("INS not at ES:rDI");
	if (in->lock && in->op != INSN_ADD && in->op != INSN_OR && in->op != INSN_AND &&
	    in->op != INSN_XCHG)
		FAIL("LOCK accepted on op %u", in->op);
}

/* The helpers, on registers made from the input: no UB, results in range. */
static void run_helpers(const struct insn *in, enum insn_mode mode, const u8 *data, size_t n)
{
	u64 regs[NR_VCPU_REGS], fl = 0x2;
	struct vcpu_state s;
	u64 ea, mem = 0;

	for (int i = 0; i < NR_VCPU_REGS; i++)
		regs[i] = 0x0123456789abcdefULL * (u64)(i + 1) + (n ? data[i % n] : 0);
	memset(&s, 0, sizeof(s));
	s.rip = 0xfffffffffffffff0ULL;
	s.fs.base = 0x7f0000000000ULL;
	s.ds.base = 0xfffff000;
	ea = insn_effective_address(in, regs, s.rip);
	if (in->addr_size < 8 && (ea >> (8 * in->addr_size)))
		FAIL("effective address 0x%llx wider than %u bytes", (unsigned long long)ea,
		     in->addr_size);
	if (mode != INSN_MODE_64 && (insn_linear_address(in, regs, &s, mode) >> 32))
		FAIL("linear address above 4 GiB outside 64-bit mode");
	for (size_t i = 0; i < 8 && i < n; i++)
		mem |= (u64)data[i] << (8 * i);
	(void)insn_source(in, regs);
	if (in->op == INSN_MOV_LOAD || in->op == INSN_MOVZX || in->op == INSN_MOVSX)
		insn_complete_load(in, regs, mem);
	else
		(void)insn_rmw(in, regs, &fl, mem);
	if (fl & ~0x8d7ULL)
		FAIL("flags 0x%llx beyond the arithmetic ones", (unsigned long long)fl);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct insn a, b, c;
	enum insn_mode mode;
	size_t n;
	u8 *buf;
	int ra, rb, rc;

	if (size < 1)
		return 0;
	mode = (enum insn_mode)(data[0] % 3);
	n = size - 1;
	buf = malloc(n ? n : 1);
	memcpy(buf, data + 1, n);

	ra = insn_decode(buf, n, mode, &a);
	rb = insn_decode(buf, n, mode, &b);
	if (ra != rb || (ra == 0 && !same(&a, &b)))
		FAIL("two decodes of the same bytes differ");
	if (ra != 0 && ra != -ENODATA && ra != -EOPNOTSUPP && ra != -EINVAL)
		FAIL("unexpected error %d", ra);
	if (ra == -ENODATA && n >= INSN_MAX_LEN)
		FAIL("-ENODATA with %zu bytes at hand", n);
	if (ra == 0) {
		check_fields(&a, mode, n);
		rc = insn_decode(buf, a.len, mode, &c);
		if (rc != 0 || !same(&a, &c))
			FAIL("decoding exactly %u bytes gave %d or a different result", a.len, rc);
		rc = insn_decode(buf, a.len - 1u, mode, &c);
		if (rc != -ENODATA)
			FAIL("decoding %u of %u bytes gave %d, not -ENODATA", a.len - 1u, a.len,
			     rc);
		run_helpers(&a, mode, data + 1, n);
	}
	free(buf);
	return 0;
}
