/*
 * Host tests of the MMIO bus (vmm/mmio.c) with the decoder (vmm/insn.c):
 * registration and lookup, then every MOV form, MOVZX/MOVSX, XCHG and
 * LOCK ADD/OR/AND decoded from its bytes and carried out against a small
 * register-file device, checking what the device saw and what the guest's
 * registers and flags became. The device stands in for the LAPIC/IOAPIC
 * models that will register here: 64 bytes of little-endian registers whose
 * handlers record each access, and an offset whose accesses fail.
 */
#include "tests/unit/check.h"
#include "vmm/mmio.h"

#define DEV_BASE 0xfee00000ULL
#define DEV_SIZE 64
#define DEV_FAIL_OFF 0x38 /* accesses here return -EIO */

struct regfile {
	u8 r[DEV_SIZE];
	int reads, writes;
	u64 last_off;
	u8 last_size;
};

static int rf_read(void *dev, void *ctx, u64 off, u8 size, u64 *val)
{
	struct regfile *d = dev;

	if (off == DEV_FAIL_OFF)
		return -EIO;
	d->reads++;
	d->last_off = off;
	d->last_size = size;
	*val = 0;
	for (unsigned i = 0; i < size; i++)
		*val |= (u64)d->r[off + i] << (8 * i);
	return 0;
}

static int rf_write(void *dev, void *ctx, u64 off, u8 size, u64 val)
{
	struct regfile *d = dev;

	if (off == DEV_FAIL_OFF)
		return -EIO;
	d->writes++;
	d->last_off = off;
	d->last_size = size;
	for (unsigned i = 0; i < size; i++)
		d->r[off + i] = (u8)(val >> (8 * i));
	return 0;
}

static const struct mmio_ops rf_ops = { .read = rf_read, .write = rf_write };

static u64 rf_get(const struct regfile *d, unsigned off, unsigned size)
{
	u64 v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (u64)d->r[off + i] << (8 * i);
	return v;
}

static void rf_set(struct regfile *d, unsigned off, unsigned size, u64 v)
{
	for (unsigned i = 0; i < size; i++)
		d->r[off + i] = (u8)(v >> (8 * i));
}

static struct mmio_bus bus;
static struct regfile dev;
static u64 regs[NR_VCPU_REGS], rflags;

/* Decodes the bytes in `mode` and carries the instruction out at gpa. */
static int run_at(int line, enum insn_mode mode, u64 gpa, const u8 *b, size_t n)
{
	const struct mmio_region *r = mmio_find(&bus, gpa);
	struct insn in;
	int err = insn_decode(b, n, mode, &in);

	if (err || in.len != n || !r) {
		fprintf(stderr, "line %d: decode %d, length %u of %zu, region %p\n", line, err,
			err ? 0u : (unsigned)in.len, n, (const void *)r);
		check_failures++;
		return -EINVAL;
	}
	return mmio_execute(r, NULL, &in, gpa, regs, &rflags);
}
#define RUN(mode, gpa, ...) \
	run_at(__LINE__, mode, gpa, (const u8[]){ __VA_ARGS__ }, \
	       sizeof((const u8[]){ __VA_ARGS__ }))

static void test_bus(void)
{
	struct mmio_bus b = { 0 };
	int d;

	CHECK_EQ(mmio_register(&b, "a", 0x1000, 0, &rf_ops, &d), -EINVAL);
	CHECK_EQ(mmio_register(&b, "a", ~0ULL - 0xF, 0x20, &rf_ops, &d), -EINVAL);
	CHECK_EQ(mmio_register(&b, "a", 0x1000, 0x1000, NULL, &d), -EINVAL);
	CHECK_EQ(mmio_register(&b, "a", 0x1000, 0x1000, &rf_ops, &d), 0);
	CHECK_EQ(mmio_register(&b, "b", 0x1fff, 1, &rf_ops, &d), -EEXIST);
	CHECK_EQ(mmio_register(&b, "b", 0x0, 0x1001, &rf_ops, &d), -EEXIST);
	CHECK_EQ(mmio_register(&b, "b", 0x2000, 0x10, &rf_ops, &d), 0);
	CHECK_EQ(mmio_register(&b, "c", ~0ULL - 0xF, 0x10, &rf_ops, &d), 0); /* to the top */
	CHECK(mmio_find(&b, 0xfff) == NULL);
	CHECK(mmio_find(&b, 0x1000) == &b.regions[0]);
	CHECK(mmio_find(&b, 0x1fff) == &b.regions[0]);
	CHECK(mmio_find(&b, 0x2000) == &b.regions[1]);
	CHECK(mmio_find(&b, 0x2010) == NULL);
	CHECK(mmio_find(&b, ~0ULL) == &b.regions[2]);
	for (int i = 3; i < MMIO_MAX_REGIONS; i++)
		CHECK_EQ(mmio_register(&b, "x", 0x10000 * (u64)(i + 1), 0x10, &rf_ops, &d), 0);
	CHECK_EQ(mmio_register(&b, "full", 0x900000, 0x10, &rf_ops, &d), -ENOSPC);
	/* A device that moves (a relocated LAPIC page): only an exact base is
	 * removed, the slot is free again, the other regions are still found. */
	CHECK_EQ(mmio_unregister(&b, 0x1001), -ENOENT);
	CHECK_EQ(mmio_unregister(&b, 0x1000), 0);
	CHECK_EQ(mmio_unregister(&b, 0x1000), -ENOENT);
	CHECK(mmio_find(&b, 0x1000) == NULL);
	CHECK(mmio_find(&b, 0x2000) != NULL && mmio_find(&b, 0x2000)->base == 0x2000);
	CHECK(mmio_find(&b, ~0ULL) != NULL && mmio_find(&b, ~0ULL)->base == ~0ULL - 0xF);
	CHECK_EQ(mmio_register(&b, "moved", 0x900000, 0x1000, &rf_ops, &d), 0);
	CHECK(mmio_find(&b, 0x900fff) != NULL);
	CHECK_EQ(b.n, MMIO_MAX_REGIONS);
}

static void test_stores(void)
{
	/* mov dword [0xfee00010],0: an immediate to a 32-bit register */
	rf_set(&dev, 0x10, 4, 0xffffffff);
	CHECK_EQ(RUN(INSN_MODE_32, DEV_BASE + 0x10, 0xc7, 0x05, 0x10, 0x00, 0xe0, 0xfe, 0x00, 0x00,
		     0x00, 0x00),
		 0);
	CHECK_EQ(rf_get(&dev, 0x10, 4), 0);
	CHECK_EQ(dev.last_size, 4);

	regs[REG_RCX] = 0x11223344;
	regs[REG_RAX] = DEV_BASE + 0x20;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x20, 0x89, 0x08), 0); /* mov [rax],ecx */
	CHECK_EQ(rf_get(&dev, 0x20, 4), 0x11223344);

	regs[REG_RDX] = 0x8877665544332211ULL;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x28, 0x48, 0x89, 0x15, 0, 0, 0, 0), 0); /* [rip] */
	CHECK_EQ(rf_get(&dev, 0x28, 8), 0x8877665544332211ULL);
	CHECK_EQ(dev.last_size, 8);

	regs[REG_RBX] = 0xab00;
	CHECK_EQ(RUN(INSN_MODE_32, DEV_BASE + 3, 0x88, 0x3d, 0x03, 0x00, 0xe0, 0xfe), 0); /* bh */
	CHECK_EQ(dev.r[3], 0xab);
	CHECK_EQ(dev.last_size, 1);

	regs[REG_RAX] = 0xbeef;
	CHECK_EQ(RUN(INSN_MODE_16, DEV_BASE + 4, 0x89, 0x07), 0); /* mov [bx],ax */
	CHECK_EQ(rf_get(&dev, 4, 2), 0xbeef);

	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 6, 0x66, 0xc7, 0x00, 0x34, 0x12), 0); /* imm16 */
	CHECK_EQ(rf_get(&dev, 6, 2), 0x1234);

	regs[REG_RAX] = 0xcafebabe;
	/* movabs [0xfee00030],eax (moffs) */
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x30, 0xa3, 0x30, 0x00, 0xe0, 0xfe, 0, 0, 0, 0), 0);
	CHECK_EQ(rf_get(&dev, 0x30, 4), 0xcafebabe);
}

static void test_loads(void)
{
	rf_set(&dev, 0x20, 8, 0xfedcba9876543210ULL);
	regs[REG_RAX] = 0xffffffffffffffffULL;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x20, 0x8b, 0x00), 0); /* mov eax,[rax] */
	CHECK_EQ(regs[REG_RAX], 0x76543210);			     /* upper half zeroed */

	regs[REG_R9] = 0x1111111111111111ULL;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x20, 0x66, 0x44, 0x8b, 0x08), 0); /* mov r9w */
	CHECK_EQ(regs[REG_R9], 0x1111111111113210ULL);

	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x20, 0x4c, 0x8b, 0x10), 0); /* mov r10,[rax] */
	CHECK_EQ(regs[REG_R10], 0xfedcba9876543210ULL);

	regs[REG_RCX] = 0x12345678;
	CHECK_EQ(RUN(INSN_MODE_32, DEV_BASE + 0x27, 0x8a, 0x28), 0); /* mov ch,[eax] */
	CHECK_EQ(regs[REG_RCX], 0x1234fe78);

	/* movabs al,[moffs64] */
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x21, 0xa0, 0x21, 0x00, 0xe0, 0xfe, 0, 0, 0, 0), 0);
	CHECK_EQ(regs[REG_RAX] & 0xff, 0x32);

	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x27, 0x0f, 0xb6, 0x30), 0); /* movzx esi,byte */
	CHECK_EQ(regs[REG_RSI], 0xfe);
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x27, 0x48, 0x0f, 0xbe, 0x30), 0); /* movsx rsi */
	CHECK_EQ(regs[REG_RSI], 0xfffffffffffffffeULL);
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x26, 0x0f, 0xbf, 0x30), 0); /* movsx esi,word */
	CHECK_EQ(regs[REG_RSI], 0xfffffedcULL);
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x26, 0x0f, 0xb7, 0x30), 0); /* movzx esi,word */
	CHECK_EQ(regs[REG_RSI], 0xfedc);
}

static void test_rmw(void)
{
	int w;

	/* xchg [rdx],eax: the old value to EAX, EAX's to the device. */
	rf_set(&dev, 0x10, 4, 0xaaaa5555);
	regs[REG_RAX] = 0x0123456789abcdefULL;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x10, 0x87, 0x02), 0);
	CHECK_EQ(rf_get(&dev, 0x10, 4), 0x89abcdef);
	CHECK_EQ(regs[REG_RAX], 0xaaaa5555);

	/* lock or dword [rax],0x10000000 sets a bit and clears CF/OF. */
	rflags = 0x202 | 0x801;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x10, 0xf0, 0x81, 0x08, 0x00, 0x00, 0x00, 0x10), 0);
	CHECK_EQ(rf_get(&dev, 0x10, 4), 0x99abcdef);
	CHECK_EQ(rflags, 0x202 | 0x80); /* SF; low byte 0xef has odd parity: no PF */

	/* lock and byte [rax],0xfe */
	dev.r[0x10] = 0x01;
	rflags = 0x2;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x10, 0xf0, 0x80, 0x20, 0xfe), 0);
	CHECK_EQ(dev.r[0x10], 0);
	CHECK_EQ(rflags, 0x2 | 0x40 | 0x4);

	/* lock add dword [rax],1 wraps to 0 with CF. */
	rf_set(&dev, 0x14, 4, 0xffffffff);
	rflags = 0x2;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + 0x14, 0xf0, 0x83, 0x00, 0x01), 0);
	CHECK_EQ(rf_get(&dev, 0x14, 4), 0);
	CHECK_EQ(rflags, 0x2 | 0x1 | 0x4 | 0x10 | 0x40);

	/* A failing write leaves registers and flags as they were. */
	w = dev.writes;
	regs[REG_RAX] = 0x42;
	rflags = 0x2;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + DEV_FAIL_OFF, 0x87, 0x02), -EIO);
	CHECK_EQ(regs[REG_RAX], 0x42);
	CHECK_EQ(dev.writes, w);
}

static void test_refused(void)
{
	struct insn in;
	const struct mmio_region *r = mmio_find(&bus, DEV_BASE);
	static const u8 outsb[] = { 0xf3, 0x6e };
	static const u8 mov8[] = { 0x48, 0x89, 0x00 };
	int rd = dev.reads;

	/* An 8-byte store at the last 4 bytes leaves the region. */
	CHECK_EQ(insn_decode(mov8, sizeof(mov8), INSN_MODE_64, &in), 0);
	CHECK_EQ(mmio_execute(r, NULL, &in, DEV_BASE + DEV_SIZE - 4, regs, &rflags), -ERANGE);
	CHECK_EQ(mmio_execute(r, NULL, &in, DEV_BASE - 1, regs, &rflags), -ERANGE);
	CHECK_EQ(insn_decode(outsb, sizeof(outsb), INSN_MODE_64, &in), 0);
	CHECK_EQ(mmio_execute(r, NULL, &in, DEV_BASE, regs, &rflags), -EOPNOTSUPP);
	/* A failing read changes nothing. */
	regs[REG_RAX] = 7;
	CHECK_EQ(RUN(INSN_MODE_64, DEV_BASE + DEV_FAIL_OFF, 0x8b, 0x00), -EIO);
	CHECK_EQ(regs[REG_RAX], 7);
	CHECK_EQ(dev.reads, rd);
}

int main(void)
{
	test_bus();
	CHECK_EQ(mmio_register(&bus, "regfile", DEV_BASE, DEV_SIZE, &rf_ops, &dev), 0);
	test_stores();
	test_loads();
	test_rmw();
	test_refused();
	return test_done("mmio");
}
