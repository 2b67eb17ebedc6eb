/*
 * Host tests of the instruction decoder (vmm/insn.c), instruction by
 * instruction. The bytes come from the encoding tables of SDM Vol. 2A
 * chapter 2 "Instruction Format" and Appendix A "Opcode Map"; each was
 * checked against GNU as/objdump (the comment beside it is objdump's
 * reading). Every valid instruction is also decoded from each of its
 * truncations, which must ask for more bytes and never read past them.
 */
#include <stdlib.h>

#include "tests/unit/check.h"
#include "vmm/insn.h"

#define B(...) (const u8[]){ __VA_ARGS__ }, sizeof((const u8[]){ __VA_ARGS__ })
#define N INSN_NO_REG

/* Decodes bytes from an exact-size heap copy (so ASan sees any overread),
 * checks it takes all of them, and that every truncation gives -ENODATA. */
static struct insn dec_at(int line, enum insn_mode m, const u8 *bytes, size_t n)
{
	struct insn in;
	int rc;

	for (size_t k = 0; k < n; k++) {
		u8 *cut = malloc(k ? k : 1);

		memcpy(cut, bytes, k);
		rc = insn_decode(cut, k, m, &in);
		if (rc != -ENODATA) {
			fprintf(stderr, "line %d: %zu of %zu bytes gave %d, not -ENODATA\n", line,
				k, n, rc);
			check_failures++;
		}
		free(cut);
	}
	u8 *copy = malloc(n);
	memcpy(copy, bytes, n);
	rc = insn_decode(copy, n, m, &in);
	free(copy);
	check_count++;
	if (rc != 0 || in.len != n) {
		fprintf(stderr, "line %d: decode gave %d, length %u (expected 0, %zu)\n", line, rc,
			rc ? 0u : (unsigned)in.len, n);
		check_failures++;
		memset(&in, 0, sizeof(in));
	}
	return in;
}
#define DEC(m, ...) dec_at(__LINE__, m, B(__VA_ARGS__))

static int err_of(enum insn_mode m, const u8 *bytes, size_t n)
{
	struct insn in;
	u8 *copy = malloc(n);
	int rc;

	memcpy(copy, bytes, n);
	rc = insn_decode(copy, n, m, &in);
	free(copy);
	return rc;
}
#define ERR(m, ...) err_of(m, B(__VA_ARGS__))

/* The memory operand: op, size, register operand, addressing. */
#define CHECK_MEM(in, op_, size_, base_, index_, scale_, disp_) \
	do { \
		CHECK_EQ((in).op, op_); \
		CHECK_EQ((in).size, size_); \
		CHECK_EQ((in).base, base_); \
		CHECK_EQ((in).index, index_); \
		CHECK_EQ((in).scale, scale_); \
		CHECK_EQ((in).disp, disp_); \
	} while (0)

static void test_mov_64(void)
{
	struct insn in;

	in = DEC(INSN_MODE_64, 0x89, 0x08); /* mov [rax],ecx */
	CHECK_MEM(in, INSN_MOV_STORE, 4, REG_RAX, N, 1, 0);
	CHECK_EQ(in.reg, REG_RCX);
	CHECK_EQ(in.addr_size, 8);
	CHECK_EQ(in.seg, INSN_SEG_DS);

	in = DEC(INSN_MODE_64, 0x48, 0x89, 0x15, 0x00, 0x01, 0x00, 0x00); /* mov [rip+0x100],rdx */
	CHECK_MEM(in, INSN_MOV_STORE, 8, N, N, 1, 0x100);
	CHECK(in.rip_rel);
	CHECK_EQ(in.reg, REG_RDX);

	in = DEC(INSN_MODE_64, 0x88, 0x64, 0xb3, 0x12); /* mov [rbx+rsi*4+0x12],ah */
	CHECK_MEM(in, INSN_MOV_STORE, 1, REG_RBX, REG_RSI, 4, 0x12);
	CHECK_EQ(in.reg, REG_RAX);
	CHECK(in.high8);

	in = DEC(INSN_MODE_64, 0x40, 0x88, 0x33); /* mov [rbx],sil: REX makes 6 SIL */
	CHECK_MEM(in, INSN_MOV_STORE, 1, REG_RBX, N, 1, 0);
	CHECK_EQ(in.reg, REG_RSI);
	CHECK(!in.high8);

	in = DEC(INSN_MODE_64, 0x47, 0x8b, 0x4c, 0xec, 0x80); /* mov r9d,[r12+r13*8-0x80] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_R12, REG_R13, 8, -0x80);
	CHECK_EQ(in.reg, REG_R9);
	CHECK_EQ(in.seg, INSN_SEG_DS);

	in = DEC(INSN_MODE_64, 0x4c, 0x8b, 0x55, 0x00); /* mov r10,[rbp+0] */
	CHECK_MEM(in, INSN_MOV_LOAD, 8, REG_RBP, N, 1, 0);
	CHECK_EQ(in.reg, REG_R10);
	CHECK_EQ(in.seg, INSN_SEG_SS);

	in = DEC(INSN_MODE_64, 0x64, 0x66, 0x8b, 0x44, 0x24, 0x08); /* mov ax,fs:[rsp+8] */
	CHECK_MEM(in, INSN_MOV_LOAD, 2, REG_RSP, N, 1, 8);
	CHECK_EQ(in.seg, INSN_SEG_FS);
	CHECK(in.seg_override);

	/* mov dword [rax+0x12345678],0xdeadbeef */
	in = DEC(INSN_MODE_64, 0xc7, 0x80, 0x78, 0x56, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde);
	CHECK_MEM(in, INSN_MOV_STORE, 4, REG_RAX, N, 1, 0x12345678);
	CHECK(in.has_imm);
	CHECK_EQ(in.imm, 0xdeadbeef);
	CHECK_EQ(in.reg, N);

	in = DEC(INSN_MODE_64, 0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff); /* mov qword [rdi],-2 */
	CHECK_MEM(in, INSN_MOV_STORE, 8, REG_RDI, N, 1, 0);
	CHECK_EQ(in.imm, 0xfffffffffffffffeULL);

	in = DEC(INSN_MODE_64, 0x66, 0xc7, 0x01, 0x34, 0x12); /* mov word [rcx],0x1234 */
	CHECK_MEM(in, INSN_MOV_STORE, 2, REG_RCX, N, 1, 0);
	CHECK_EQ(in.imm, 0x1234);

	in = DEC(INSN_MODE_64, 0xc6, 0x02, 0x7f); /* mov byte [rdx],0x7f */
	CHECK_MEM(in, INSN_MOV_STORE, 1, REG_RDX, N, 1, 0);
	CHECK_EQ(in.imm, 0x7f);

	/* movabs al,[0x1122334455667788]: moffs of the address size */
	in = DEC(INSN_MODE_64, 0xa0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11);
	CHECK_MEM(in, INSN_MOV_LOAD, 1, N, N, 1, 0x1122334455667788LL);
	CHECK_EQ(in.reg, REG_RAX);
	CHECK(!in.high8);

	/* movabs [0xfee00020],eax */
	in = DEC(INSN_MODE_64, 0xa3, 0x20, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00);
	CHECK_MEM(in, INSN_MOV_STORE, 4, N, N, 1, 0xfee00020);

	/* movabs rax,[0xfee00030] */
	in = DEC(INSN_MODE_64, 0x48, 0xa1, 0x30, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00);
	CHECK_MEM(in, INSN_MOV_LOAD, 8, N, N, 1, 0xfee00030);
	CHECK_EQ(in.reg_size, 8);

	in = DEC(INSN_MODE_64, 0x67, 0x8b, 0x00); /* mov eax,[eax] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_RAX, N, 1, 0);
	CHECK_EQ(in.addr_size, 4);

	in = DEC(INSN_MODE_64, 0x67, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00); /* mov eax,[eip+0x10] */
	CHECK(in.rip_rel);
	CHECK_EQ(in.addr_size, 4);

	in = DEC(INSN_MODE_64, 0x65, 0x89, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00); /* gs:[0x10] */
	CHECK_MEM(in, INSN_MOV_STORE, 4, N, N, 1, 0x10);
	CHECK(!in.rip_rel);
	CHECK_EQ(in.seg, INSN_SEG_GS);

	in = DEC(INSN_MODE_64, 0x8b, 0x04, 0x6c); /* mov eax,[rsp+rbp*2] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_RSP, REG_RBP, 2, 0);
	CHECK_EQ(in.seg, INSN_SEG_SS);

	in = DEC(INSN_MODE_64, 0x41, 0x8b, 0x45, 0x00); /* mov eax,[r13+0]: not RIP-relative */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_R13, N, 1, 0);
	CHECK(!in.rip_rel);
	CHECK_EQ(in.seg, INSN_SEG_DS);

	in = DEC(INSN_MODE_64, 0x41, 0x8b, 0x04, 0x24); /* mov eax,[r12]: SIB needed */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_R12, N, 1, 0);

	in = DEC(INSN_MODE_64, 0x8b, 0x04, 0x25, 0x34, 0x12, 0x00, 0x00); /* mov eax,[0x1234] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, N, N, 1, 0x1234);
	CHECK(!in.rip_rel);

	/* mov eax,[r9*4+0x100]: SIB base 101 with mod 00 means no base even with REX */
	in = DEC(INSN_MODE_64, 0x42, 0x8b, 0x04, 0x8d, 0x00, 0x01, 0x00, 0x00);
	CHECK_MEM(in, INSN_MOV_LOAD, 4, N, REG_R9, 4, 0x100);
	in = DEC(INSN_MODE_64, 0x43, 0x8b, 0x04, 0x8d, 0x00, 0x01, 0x00, 0x00);
	CHECK_MEM(in, INSN_MOV_LOAD, 4, N, REG_R9, 4, 0x100);

	/* SIB index 100 is "none", but REX.X makes it R12. */
	in = DEC(INSN_MODE_64, 0x8b, 0x04, 0x20); /* mov eax,[rax+riz] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_RAX, N, 1, 0);
	in = DEC(INSN_MODE_64, 0x42, 0x8b, 0x04, 0x20); /* mov eax,[rax+r12] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_RAX, REG_R12, 1, 0);

	/* 64-bit mode ignores ES/CS/SS/DS overrides. */
	in = DEC(INSN_MODE_64, 0x26, 0x8b, 0x00);
	CHECK_EQ(in.seg, INSN_SEG_DS);
	CHECK(!in.seg_override);

	/* A REX before a legacy prefix is ignored: 48 66 89 08 is mov [rax],cx. */
	in = DEC(INSN_MODE_64, 0x48, 0x66, 0x89, 0x08);
	CHECK_EQ(in.size, 2);
	in = DEC(INSN_MODE_64, 0x66, 0x48, 0x89, 0x08); /* REX.W wins over 66 */
	CHECK_EQ(in.size, 8);
	/* REX.R extends ModR/M.reg: 44 89 00 is mov [rax],r8d. */
	in = DEC(INSN_MODE_64, 0x44, 0x89, 0x00);
	CHECK_EQ(in.reg, REG_R8);
}

static void test_movzx_xchg_alu_64(void)
{
	struct insn in;

	in = DEC(INSN_MODE_64, 0x0f, 0xb6, 0x07); /* movzx eax,byte [rdi] */
	CHECK_MEM(in, INSN_MOVZX, 1, REG_RDI, N, 1, 0);
	CHECK_EQ(in.reg_size, 4);

	in = DEC(INSN_MODE_64, 0x4d, 0x0f, 0xb7, 0x5d, 0x00); /* movzx r11,word [r13+0] */
	CHECK_MEM(in, INSN_MOVZX, 2, REG_R13, N, 1, 0);
	CHECK_EQ(in.reg, REG_R11);
	CHECK_EQ(in.reg_size, 8);

	in = DEC(INSN_MODE_64, 0x0f, 0xbe, 0x4e, 0x01); /* movsx ecx,byte [rsi+1] */
	CHECK_MEM(in, INSN_MOVSX, 1, REG_RSI, N, 1, 1);
	CHECK_EQ(in.reg, REG_RCX);

	in = DEC(INSN_MODE_64, 0x48, 0x0f, 0xbf, 0x10); /* movsx rdx,word [rax] */
	CHECK_MEM(in, INSN_MOVSX, 2, REG_RAX, N, 1, 0);
	CHECK_EQ(in.reg_size, 8);

	in = DEC(INSN_MODE_64, 0x0f, 0xb6, 0x27); /* movzx esp,byte [rdi]: reg 4 is ESP */
	CHECK_EQ(in.reg, REG_RSP);
	CHECK(!in.high8);

	in = DEC(INSN_MODE_64, 0x87, 0x02); /* xchg [rdx],eax */
	CHECK_MEM(in, INSN_XCHG, 4, REG_RDX, N, 1, 0);
	CHECK_EQ(in.reg, REG_RAX);

	in = DEC(INSN_MODE_64, 0x86, 0x39); /* xchg [rcx],bh */
	CHECK_MEM(in, INSN_XCHG, 1, REG_RCX, N, 1, 0);
	CHECK_EQ(in.reg, REG_RBX);
	CHECK(in.high8);

	in = DEC(INSN_MODE_64, 0xf0, 0x83, 0x04, 0x24, 0x00); /* lock add dword [rsp],0 */
	CHECK_MEM(in, INSN_ADD, 4, REG_RSP, N, 1, 0);
	CHECK(in.lock);
	CHECK(in.has_imm);
	CHECK_EQ(in.imm, 0);

	/* lock or dword [rax+rcx],0x10000000 */
	in = DEC(INSN_MODE_64, 0xf0, 0x81, 0x0c, 0x08, 0x00, 0x00, 0x00, 0x10);
	CHECK_MEM(in, INSN_OR, 4, REG_RAX, REG_RCX, 1, 0);
	CHECK_EQ(in.imm, 0x10000000);

	in = DEC(INSN_MODE_64, 0xf0, 0x80, 0x23, 0xfe); /* lock and byte [rbx],0xfe */
	CHECK_MEM(in, INSN_AND, 1, REG_RBX, N, 1, 0);
	CHECK_EQ(in.imm, 0xfe);

	in = DEC(INSN_MODE_64, 0x48, 0x83, 0x20, 0xf0); /* and qword [rax],-16 */
	CHECK_EQ(in.imm, 0xfffffffffffffff0ULL);
	in = DEC(INSN_MODE_64, 0x66, 0x83, 0x08, 0x80); /* or word [rax],-128 */
	CHECK_EQ(in.imm, 0xff80);
	in = DEC(INSN_MODE_64, 0x48, 0x81, 0x00, 0x00, 0x00, 0x00, 0x80); /* add qword,imm32 */
	CHECK_EQ(in.imm, 0xffffffff80000000ULL);

	in = DEC(INSN_MODE_64, 0xf0, 0x4d, 0x01, 0x38); /* lock add [r8],r15 */
	CHECK_MEM(in, INSN_ADD, 8, REG_R8, N, 1, 0);
	CHECK_EQ(in.reg, REG_R15);

	in = DEC(INSN_MODE_64, 0xf0, 0x08, 0x10); /* lock or byte [rax],dl */
	CHECK_MEM(in, INSN_OR, 1, REG_RAX, N, 1, 0);
	CHECK_EQ(in.reg, REG_RDX);

	in = DEC(INSN_MODE_64, 0x66, 0xf0, 0x21, 0x08); /* lock and word [rax],cx */
	CHECK_MEM(in, INSN_AND, 2, REG_RAX, N, 1, 0);
	CHECK_EQ(in.reg, REG_RCX);
}

static void test_32_and_16(void)
{
	struct insn in;

	in = DEC(INSN_MODE_32, 0x89, 0x08); /* mov [eax],ecx */
	CHECK_MEM(in, INSN_MOV_STORE, 4, REG_RAX, N, 1, 0);
	CHECK_EQ(in.addr_size, 4);

	/* mov dword [0xfee000b0],0: mod 00 rm 101 is disp32, not RIP-relative */
	in = DEC(INSN_MODE_32, 0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00);
	CHECK_MEM(in, INSN_MOV_STORE, 4, N, N, 1, (s32)0xfee000b0);
	CHECK(!in.rip_rel);

	in = DEC(INSN_MODE_32, 0x8b, 0x45, 0xfc); /* mov eax,[ebp-4] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_RBP, N, 1, -4);
	CHECK_EQ(in.seg, INSN_SEG_SS);

	in = DEC(INSN_MODE_32, 0x26, 0x88, 0x34, 0x1f); /* mov es:[edi+ebx],dh */
	CHECK_MEM(in, INSN_MOV_STORE, 1, REG_RDI, REG_RBX, 1, 0);
	CHECK_EQ(in.seg, INSN_SEG_ES);
	CHECK_EQ(in.reg, REG_RDX);
	CHECK(in.high8);

	in = DEC(INSN_MODE_32, 0x66, 0x8b, 0x06); /* mov ax,[esi] */
	CHECK_MEM(in, INSN_MOV_LOAD, 2, REG_RSI, N, 1, 0);

	in = DEC(INSN_MODE_32, 0x67, 0x8b, 0x40, 0x10); /* mov eax,[bx+si+0x10] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, REG_RBX, REG_RSI, 1, 0x10);
	CHECK_EQ(in.addr_size, 2);

	in = DEC(INSN_MODE_32, 0x0f, 0xb7, 0x04, 0x4c); /* movzx eax,word [esp+ecx*2] */
	CHECK_MEM(in, INSN_MOVZX, 2, REG_RSP, REG_RCX, 2, 0);
	CHECK_EQ(in.seg, INSN_SEG_SS);

	in = DEC(INSN_MODE_32, 0xa0, 0x00, 0x10, 0x00, 0x00); /* mov al,[0x1000] */
	CHECK_MEM(in, INSN_MOV_LOAD, 1, N, N, 1, 0x1000);

	in = DEC(INSN_MODE_32, 0xa3, 0x10, 0x00, 0xc0, 0xfe); /* mov [0xfec00010],eax */
	CHECK_MEM(in, INSN_MOV_STORE, 4, N, N, 1, (s32)0xfec00010);

	in = DEC(INSN_MODE_32, 0x87, 0x11); /* xchg [ecx],edx */
	CHECK_MEM(in, INSN_XCHG, 4, REG_RCX, N, 1, 0);

	in = DEC(INSN_MODE_32, 0xf0, 0x01, 0x00); /* lock add [eax],eax */
	CHECK_MEM(in, INSN_ADD, 4, REG_RAX, N, 1, 0);

	/* In 32-bit code 40-4F are INC/DEC, never REX: 0x48 is not a prefix. */
	CHECK_EQ(ERR(INSN_MODE_32, 0x48, 0x89, 0x08), -EOPNOTSUPP);

	/* 16-bit code, SDM Table 2-1. */
	in = DEC(INSN_MODE_16, 0x89, 0x00); /* mov [bx+si],ax */
	CHECK_MEM(in, INSN_MOV_STORE, 2, REG_RBX, REG_RSI, 1, 0);
	CHECK_EQ(in.addr_size, 2);

	in = DEC(INSN_MODE_16, 0x8b, 0x83, 0x34, 0x12); /* mov ax,[bp+di+0x1234] */
	CHECK_MEM(in, INSN_MOV_LOAD, 2, REG_RBP, REG_RDI, 1, 0x1234);
	CHECK_EQ(in.seg, INSN_SEG_SS);

	in = DEC(INSN_MODE_16, 0xc6, 0x46, 0x00, 0x05); /* mov byte [bp+0],5 */
	CHECK_MEM(in, INSN_MOV_STORE, 1, REG_RBP, N, 1, 0);
	CHECK_EQ(in.seg, INSN_SEG_SS);
	CHECK_EQ(in.imm, 5);

	in = DEC(INSN_MODE_16, 0x66, 0xa1, 0x78, 0x56); /* mov eax,[0x5678] */
	CHECK_MEM(in, INSN_MOV_LOAD, 4, N, N, 1, 0x5678);

	/* mov dword [ebx+ecx*4],0x11223344 */
	in = DEC(INSN_MODE_16, 0x67, 0x66, 0xc7, 0x04, 0x8b, 0x44, 0x33, 0x22, 0x11);
	CHECK_MEM(in, INSN_MOV_STORE, 4, REG_RBX, REG_RCX, 4, 0);
	CHECK_EQ(in.addr_size, 4);
	CHECK_EQ(in.imm, 0x11223344);

	in = DEC(INSN_MODE_16, 0x26, 0x8a, 0x45, 0xff); /* mov al,es:[di-1] */
	CHECK_MEM(in, INSN_MOV_LOAD, 1, REG_RDI, N, 1, -1);
	CHECK_EQ(in.seg, INSN_SEG_ES);

	in = DEC(INSN_MODE_16, 0x66, 0x0f, 0xbe, 0x04); /* movsx eax,byte [si] */
	CHECK_MEM(in, INSN_MOVSX, 1, REG_RSI, N, 1, 0);
	CHECK_EQ(in.reg_size, 4);

	in = DEC(INSN_MODE_16, 0x8b, 0x36, 0x20, 0x00); /* mov si,[0x20]: rm 110 mod 00 */
	CHECK_MEM(in, INSN_MOV_LOAD, 2, N, N, 1, 0x20);
	CHECK_EQ(in.seg, INSN_SEG_DS);

	in = DEC(INSN_MODE_16, 0x8b, 0x47, 0x80); /* mov ax,[bx-0x80] */
	CHECK_MEM(in, INSN_MOV_LOAD, 2, REG_RBX, N, 1, -0x80);
}

static void test_string(void)
{
	struct insn in;

	in = DEC(INSN_MODE_64, 0xf3, 0x6c); /* rep insb */
	CHECK_EQ(in.op, INSN_INS);
	CHECK_EQ(in.size, 1);
	CHECK(in.rep);
	CHECK_EQ(in.seg, INSN_SEG_ES);
	CHECK_EQ(in.base, REG_RDI);
	CHECK_EQ(in.addr_size, 8);

	in = DEC(INSN_MODE_64, 0x66, 0xf3, 0x6f); /* rep outsw */
	CHECK_EQ(in.op, INSN_OUTS);
	CHECK_EQ(in.size, 2);
	CHECK_EQ(in.base, REG_RSI);
	CHECK_EQ(in.seg, INSN_SEG_DS);

	in = DEC(INSN_MODE_64, 0xf3, 0x6f); /* rep outsd */
	CHECK_EQ(in.size, 4);
	in = DEC(INSN_MODE_64, 0x48, 0x6f); /* REX.W: still outsd */
	CHECK_EQ(in.size, 4);
	in = DEC(INSN_MODE_64, 0x6d); /* insd */
	CHECK_EQ(in.size, 4);
	CHECK(!in.rep);

	in = DEC(INSN_MODE_64, 0x67, 0xf3, 0x6e); /* rep outsb [esi] */
	CHECK_EQ(in.addr_size, 4);
	in = DEC(INSN_MODE_64, 0x64, 0xf3, 0x6e); /* rep outsb fs:[rsi] */
	CHECK_EQ(in.seg, INSN_SEG_FS);

	in = DEC(INSN_MODE_32, 0x67, 0xf3, 0x6e); /* rep outsb [si] */
	CHECK_EQ(in.addr_size, 2);
	in = DEC(INSN_MODE_32, 0x2e, 0xf3, 0x6e); /* rep outsb cs:[esi] */
	CHECK_EQ(in.seg, INSN_SEG_CS);
	in = DEC(INSN_MODE_32, 0x26, 0xf3, 0x6c); /* INS ignores an override: ES */
	CHECK_EQ(in.seg, INSN_SEG_ES);
	in = DEC(INSN_MODE_32, 0x64, 0xf3, 0x6c);
	CHECK_EQ(in.seg, INSN_SEG_ES);
	in = DEC(INSN_MODE_32, 0x66, 0xf3, 0x6d); /* rep insw */
	CHECK_EQ(in.size, 2);
	CHECK_EQ(in.addr_size, 4);

	in = DEC(INSN_MODE_16, 0xf3, 0x6e); /* rep outsb [si] */
	CHECK_EQ(in.addr_size, 2);
	CHECK_EQ(in.size, 1);
	in = DEC(INSN_MODE_16, 0x66, 0xf3, 0x6d); /* rep insd [di] */
	CHECK_EQ(in.size, 4);
	in = DEC(INSN_MODE_16, 0x6f); /* outsw */
	CHECK_EQ(in.size, 2);

	CHECK_EQ(ERR(INSN_MODE_32, 0xf0, 0x6e), -EINVAL); /* lock outsb */
}

static void test_refused(void)
{
	static const u8 prefixes15[15] = { 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
					   0x66, 0x66, 0x66, 0x66, 0x66, 0x89, 0x00 };
	static const u8 prefixes16[16] = { 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
					   0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x89, 0x00 };
	struct insn in;

	CHECK_EQ(ERR(INSN_MODE_64, 0x89, 0xc8), -EINVAL);	/* mov eax,ecx: no memory */
	CHECK_EQ(ERR(INSN_MODE_64, 0x0f, 0xb6, 0xc1), -EINVAL); /* movzx eax,cl */
	CHECK_EQ(ERR(INSN_MODE_64, 0xf0, 0x89, 0x08), -EINVAL); /* lock mov */
	CHECK_EQ(ERR(INSN_MODE_64, 0xf0, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0), -EINVAL);
	CHECK_EQ(ERR(INSN_MODE_64, 0x8c, 0x00), -EOPNOTSUPP);		  /* mov [rax],es */
	CHECK_EQ(ERR(INSN_MODE_64, 0x29, 0x00), -EOPNOTSUPP);		  /* sub [rax],eax */
	CHECK_EQ(ERR(INSN_MODE_64, 0x83, 0x38, 0x00), -EOPNOTSUPP);	  /* cmp dword [rax],0 */
	CHECK_EQ(ERR(INSN_MODE_64, 0x80, 0x30, 0x00), -EOPNOTSUPP);	  /* xor byte [rax],0 */
	CHECK_EQ(ERR(INSN_MODE_64, 0xc7, 0x08, 0, 0, 0, 0), -EOPNOTSUPP); /* C7 /1 */
	CHECK_EQ(ERR(INSN_MODE_64, 0x0f, 0x10, 0x00), -EOPNOTSUPP);	  /* movups */
	CHECK_EQ(ERR(INSN_MODE_64, 0xa4), -EOPNOTSUPP);			  /* movsb */
	CHECK_EQ(ERR(INSN_MODE_64, 0xf3), -ENODATA);
	CHECK_EQ(ERR(INSN_MODE_64, 0x0f), -ENODATA);
	/* 15 bytes is the limit (13 prefixes and a 2-byte MOV); one more is #GP. */
	CHECK_EQ(insn_decode(prefixes15, sizeof(prefixes15), INSN_MODE_64, &in), 0);
	CHECK_EQ(in.len, 15);
	CHECK_EQ(insn_decode(prefixes16, sizeof(prefixes16), INSN_MODE_64, &in), -EINVAL);
	/* ...however much buffer there is, the decoder stops at 15 bytes. */
	CHECK_EQ(insn_decode(prefixes16, 15, INSN_MODE_64, &in), -EINVAL);
	CHECK_STR(insn_strerror(-EOPNOTSUPP), "instruction not emulated");
}

/* Effective and linear addresses from registers and segments. */
static void test_addresses(void)
{
	u64 regs[NR_VCPU_REGS] = { 0 };
	struct vcpu_state s = { 0 };
	struct insn in;

	regs[REG_R12] = 0x1000;
	regs[REG_R13] = 0x10;
	in = DEC(INSN_MODE_64, 0x47, 0x8b, 0x4c, 0xec, 0x80); /* [r12+r13*8-0x80] */
	CHECK_EQ(insn_effective_address(&in, regs, 0), 0x1000);

	in = DEC(INSN_MODE_64, 0x48, 0x89, 0x15, 0x00, 0x01, 0x00, 0x00); /* [rip+0x100] */
	CHECK_EQ(insn_effective_address(&in, regs, 0xffffffff80001000ULL), 0xffffffff80001107ULL);

	in = DEC(INSN_MODE_64, 0x67, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0xff); /* [eip-0x10] */
	CHECK_EQ(insn_effective_address(&in, regs, 0x100000004ULL), 0xfffffffbULL);

	regs[REG_RAX] = 0xfffffff0;
	in = DEC(INSN_MODE_64, 0x67, 0x8b, 0x40, 0x20); /* [eax+0x20] wraps at 4 GiB */
	CHECK_EQ(insn_effective_address(&in, regs, 0), 0x10);

	regs[REG_RBX] = 0x12348000;
	regs[REG_RSI] = 0xffff9000;
	in = DEC(INSN_MODE_16, 0x8b, 0x40, 0x10); /* [bx+si+0x10] wraps at 64 KiB */
	CHECK_EQ(insn_effective_address(&in, regs, 0), 0x1010);

	/* Real mode: segment base selector * 16 plus the 16-bit offset. */
	s.ds.base = 0xb8000;
	s.es.base = 0x20000;
	s.ss.base = 0x9000;
	regs[REG_RDI] = 0x5;
	in = DEC(INSN_MODE_16, 0x26, 0x8a, 0x45, 0xff); /* es:[di-1] */
	CHECK_EQ(insn_linear_address(&in, regs, &s, INSN_MODE_16), 0x20004);
	regs[REG_RBP] = 0x100;
	in = DEC(INSN_MODE_16, 0xc6, 0x46, 0x02, 0x05); /* [bp+2]: SS */
	CHECK_EQ(insn_linear_address(&in, regs, &s, INSN_MODE_16), 0x9102);

	/* 32-bit: base + offset wraps at 4 GiB. */
	s.ds.base = 0xfff00000;
	in = DEC(INSN_MODE_32, 0xa1, 0x00, 0x00, 0x20, 0x00); /* mov eax,[0x200000] */
	CHECK_EQ(insn_linear_address(&in, regs, &s, INSN_MODE_32), 0x100000);

	/* 64-bit: only FS and GS have a base. */
	s.fs.base = 0x7f0000000000ULL;
	s.ds.base = 0x1234;
	regs[REG_RSP] = 0x1000;
	in = DEC(INSN_MODE_64, 0x64, 0x66, 0x8b, 0x44, 0x24, 0x08); /* fs:[rsp+8] */
	CHECK_EQ(insn_linear_address(&in, regs, &s, INSN_MODE_64), 0x7f0000001008ULL);
	in = DEC(INSN_MODE_64, 0x8b, 0x04, 0x25, 0x34, 0x12, 0x00, 0x00); /* ds:[0x1234] */
	CHECK_EQ(insn_linear_address(&in, regs, &s, INSN_MODE_64), 0x1234);
}

/* What a load writes back, and the read-modify-write results. */
static void test_writeback(void)
{
	u64 regs[NR_VCPU_REGS], fl;
	struct insn in;

	for (int i = 0; i < NR_VCPU_REGS; i++)
		regs[i] = 0x1111111111111111ULL * (u64)(i + 1);

	in = DEC(INSN_MODE_64, 0x8b, 0x00); /* mov eax,[rax]: zero-extends */
	insn_complete_load(&in, regs, 0xfffffffff00dbeefULL);
	CHECK_EQ(regs[REG_RAX], 0xf00dbeefULL);

	in = DEC(INSN_MODE_64, 0x66, 0x8b, 0x08); /* mov cx,[rax]: merges */
	insn_complete_load(&in, regs, 0xabcd1234);
	CHECK_EQ(regs[REG_RCX], 0x2222222222221234ULL);

	in = DEC(INSN_MODE_64, 0x8a, 0x38); /* mov bh,[rax] */
	insn_complete_load(&in, regs, 0x99);
	CHECK_EQ(regs[REG_RBX], 0x4444444444449944ULL);

	in = DEC(INSN_MODE_64, 0x40, 0x8a, 0x38); /* mov dil,[rax] */
	insn_complete_load(&in, regs, 0x99);
	CHECK_EQ(regs[REG_RDI], 0x8888888888888899ULL);

	in = DEC(INSN_MODE_64, 0x48, 0x8b, 0x10); /* mov rdx,[rax] */
	insn_complete_load(&in, regs, 0x0123456789abcdefULL);
	CHECK_EQ(regs[REG_RDX], 0x0123456789abcdefULL);

	in = DEC(INSN_MODE_64, 0x0f, 0xb6, 0x30); /* movzx esi,byte [rax] */
	insn_complete_load(&in, regs, 0xfff0);
	CHECK_EQ(regs[REG_RSI], 0xf0);

	in = DEC(INSN_MODE_64, 0x48, 0x0f, 0xbe, 0x30); /* movsx rsi,byte [rax] */
	insn_complete_load(&in, regs, 0xf0);
	CHECK_EQ(regs[REG_RSI], 0xfffffffffffffff0ULL);

	in = DEC(INSN_MODE_64, 0x0f, 0xbf, 0x30); /* movsx esi,word [rax] */
	insn_complete_load(&in, regs, 0x8000);
	CHECK_EQ(regs[REG_RSI], 0xffff8000ULL);

	in = DEC(INSN_MODE_64, 0x66, 0x0f, 0xbe, 0x30); /* movsx si,byte [rax]: merges */
	regs[REG_RSI] = 0x1234567812345678ULL;
	insn_complete_load(&in, regs, 0x80);
	CHECK_EQ(regs[REG_RSI], 0x123456781234ff80ULL);

	in = DEC(INSN_MODE_32, 0x8a, 0x25, 0x00, 0x10, 0x00, 0x00); /* mov ah,[0x1000] */
	regs[REG_RAX] = 0x12345678;
	insn_complete_load(&in, regs, 0xab);
	CHECK_EQ(regs[REG_RAX], 0x1234ab78);

	/* Sources: register (AH..BH too) or immediate. */
	regs[REG_RDX] = 0x1122334455667788ULL;
	in = DEC(INSN_MODE_32, 0x26, 0x88, 0x34, 0x1f); /* mov es:[edi+ebx],dh */
	CHECK_EQ(insn_source(&in, regs), 0x77);
	in = DEC(INSN_MODE_64, 0x66, 0x89, 0x10); /* mov [rax],dx */
	CHECK_EQ(insn_source(&in, regs), 0x7788);
	in = DEC(INSN_MODE_64, 0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff);
	CHECK_EQ(insn_source(&in, regs), 0xfffffffffffffffeULL);

	/* XCHG: register gets the old memory value, memory the register. */
	regs[REG_RAX] = 0xffffffff00000001ULL;
	in = DEC(INSN_MODE_64, 0x87, 0x02); /* xchg [rdx],eax */
	fl = 0;
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0xcafe), 1);
	CHECK_EQ(regs[REG_RAX], 0xcafe);
	CHECK_EQ(fl, 0);

	/* ADD: 0xff + 1 in a byte is 0 with CF, ZF, AF, PF. */
	in = DEC(INSN_MODE_64, 0xf0, 0x80, 0x00, 0x01); /* lock add byte [rax],1 */
	fl = 0x202 | 0x800;				/* IF, OF set before: OF must be cleared */
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0xff), 0);
	CHECK_EQ(fl, 0x202 | 0x1 | 0x4 | 0x10 | 0x40);
	/* 0x7fffffff + 1 overflows into the sign: OF, SF, AF, PF (0x00 low byte). */
	in = DEC(INSN_MODE_64, 0xf0, 0x83, 0x00, 0x01); /* lock add dword [rax],1 */
	fl = 0;
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0x7fffffff), 0x80000000);
	CHECK_EQ(fl, 0x800 | 0x80 | 0x10 | 0x4);
	/* lock add dword [rsp],0: Linux's barrier; the value stays. */
	in = DEC(INSN_MODE_64, 0xf0, 0x83, 0x04, 0x24, 0x00);
	fl = 0;
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0x3), 3);
	CHECK_EQ(fl, 0x4); /* 0b11: even parity */

	/* OR and AND clear OF and CF. */
	in = DEC(INSN_MODE_64, 0xf0, 0x81, 0x0c, 0x08, 0x00, 0x00, 0x00, 0x10);
	fl = 0x801;
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0x1), 0x10000001);
	CHECK_EQ(fl, 0);
	in = DEC(INSN_MODE_64, 0xf0, 0x80, 0x23, 0xfe); /* lock and byte [rbx],0xfe */
	fl = 0;
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0x01), 0);
	CHECK_EQ(fl, 0x40 | 0x4);
	in = DEC(INSN_MODE_64, 0xf0, 0x08, 0x30); /* lock or byte [rax],dh */
	regs[REG_RDX] = 0x8000;
	fl = 0;
	CHECK_EQ(insn_rmw(&in, regs, &fl, 0x01), 0x81);
	CHECK_EQ(fl, 0x80 | 0x4);
}

static void test_direction(void)
{
	struct insn in;

	in = DEC(INSN_MODE_64, 0x89, 0x08); /* mov [rax],ecx */
	CHECK(!insn_reads_memory(&in) && insn_writes_memory(&in));
	in = DEC(INSN_MODE_64, 0x8b, 0x00); /* mov eax,[rax] */
	CHECK(insn_reads_memory(&in) && !insn_writes_memory(&in));
	in = DEC(INSN_MODE_64, 0x0f, 0xbe, 0x00); /* movsx eax,byte [rax] */
	CHECK(insn_reads_memory(&in) && !insn_writes_memory(&in));
	in = DEC(INSN_MODE_64, 0x87, 0x02); /* xchg [rdx],eax */
	CHECK(insn_reads_memory(&in) && insn_writes_memory(&in));
	in = DEC(INSN_MODE_64, 0xf0, 0x83, 0x04, 0x24, 0x00); /* lock add [rsp],0 */
	CHECK(insn_reads_memory(&in) && insn_writes_memory(&in));
	in = DEC(INSN_MODE_64, 0xf3, 0x6c); /* rep insb */
	CHECK(!insn_reads_memory(&in) && insn_writes_memory(&in));
	in = DEC(INSN_MODE_64, 0xf3, 0x6e); /* rep outsb */
	CHECK(insn_reads_memory(&in) && !insn_writes_memory(&in));
}

static void test_mode_of(void)
{
	struct vcpu_state s = { 0 };

	CHECK_EQ(insn_mode_of(&s), INSN_MODE_16); /* real mode */
	s.cr0 = 1;
	s.cs.attr = 0x09b; /* D=0 */
	CHECK_EQ(insn_mode_of(&s), INSN_MODE_16);
	s.cs.attr = 0xc9b; /* D=1, G=1 */
	CHECK_EQ(insn_mode_of(&s), INSN_MODE_32);
	s.rflags = 1ULL << 17; /* virtual-8086 */
	CHECK_EQ(insn_mode_of(&s), INSN_MODE_16);
	s.rflags = 0;
	s.efer = 1ULL << 10;
	CHECK_EQ(insn_mode_of(&s), INSN_MODE_32); /* compatibility mode */
	s.cs.attr = 0xa9b;			  /* L=1 */
	CHECK_EQ(insn_mode_of(&s), INSN_MODE_64);
}

int main(void)
{
	test_mov_64();
	test_movzx_xchg_alu_64();
	test_32_and_16();
	test_string();
	test_refused();
	test_addresses();
	test_writeback();
	test_direction();
	test_mode_of();
	return test_done("insn");
}
