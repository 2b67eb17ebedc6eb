/*
 * Host unit test of the local APICs and the IOAPIC (vmm/dev_lapic.c,
 * vmm/dev_ioapic.c) through what the VMM and the guest reach: the xAPIC page
 * and the IOAPIC page on the MMIO bus, the APIC MSRs, vlapic_send/pending/
 * accept, the timer's sync and deadline against a guest TSC moved by hand,
 * and the records (round trip exact, impossible values refused).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/printk.h"
#include "vmm/intr.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"
#include "tests/unit/check.h"

extern const struct vdev vdev_lapic, vdev_ioapic;

static u64 tsc_now;
static int kicks, printed;

void printk(const char *fmt, ...) { printed++; }
u64 vcpu_guest_tsc(struct vcpu *v) { return tsc_now; }
void vcpu_kick(struct vcpu *v) { kicks++; }

#define HZ 2000000000ULL /* guest TSC: 2 GHz, two ticks per LAPIC bus tick */

static struct vm vm;
static struct vcpu cpu[2];

static void setup(struct vm *m, int n)
{
	memset(m, 0, sizeof(*m));
	m->guest_tsc_hz = HZ;
	m->nvcpus = n;
	for (int i = 0; i < n; i++) {
		cpu[i] = (struct vcpu){ .vm = m, .id = i };
		m->vcpus[i] = &cpu[i];
	}
	m->dev[VDEV_LAPIC] = calloc(1, vdev_lapic.state_size);
	m->dev[VDEV_IOAPIC] = calloc(1, vdev_ioapic.state_size);
	vdev_lapic.reset(m, m->dev[VDEV_LAPIC]);
	vdev_ioapic.reset(m, m->dev[VDEV_IOAPIC]);
}

static void teardown(struct vm *m)
{
	free(m->dev[VDEV_LAPIC]);
	free(m->dev[VDEV_IOAPIC]);
}

static u32 rd(struct vcpu *v, u64 gpa)
{
	const struct mmio_region *r = mmio_find(&v->vm->mmio, gpa);
	u64 val = 0xDEAD;

	CHECK(r != NULL);
	if (r)
		CHECK_EQ(r->ops->read(r->dev, v, gpa - r->base, 4, &val), 0);
	return (u32)val;
}

static int wr_sized(struct vcpu *v, u64 gpa, u8 size, u32 val)
{
	const struct mmio_region *r = mmio_find(&v->vm->mmio, gpa);

	return r ? r->ops->write(r->dev, v, gpa - r->base, size, val) : -99;
}

static void wr(struct vcpu *v, u64 gpa, u32 val) { CHECK_EQ(wr_sized(v, gpa, 4, val), 0); }

#define LAPIC(off) (PLAT_LAPIC_BASE + (off))

static bool irr_has(struct vcpu *v, u8 vec)
{
	return rd(v, LAPIC(0x200 + vec / 32 * 16)) & (1u << (vec % 32));
}

static void test_reset_and_registers(void)
{
	struct vcpu *v = &cpu[0];
	u64 base;

	setup(&vm, 2);
	CHECK_EQ(vlapic_rdmsr(v, 0x1B, &base), 0);
	CHECK_EQ(base, PLAT_LAPIC_BASE | 0x900); /* enabled, BSP */
	CHECK_EQ(vlapic_rdmsr(&cpu[1], 0x1B, &base), 0);
	CHECK_EQ(base, PLAT_LAPIC_BASE | 0x800);
	CHECK_EQ(rd(v, LAPIC(0x20)), 0);
	CHECK_EQ(rd(&cpu[1], LAPIC(0x20)), 1u << 24);
	CHECK_EQ(rd(v, LAPIC(0x30)), 0x50014);
	CHECK_EQ(rd(v, LAPIC(0xF0)), 0xFF);
	CHECK_EQ(rd(v, LAPIC(0x350)), 0x700); /* virtual wire: LINT0 ExtINT */
	CHECK_EQ(rd(v, LAPIC(0x360)), 0x400); /* LINT1 NMI */
	CHECK_EQ(rd(&cpu[1], LAPIC(0x350)), 0x10000);
	CHECK(vlapic_accepts_pic(v));
	CHECK(!vlapic_accepts_pic(&cpu[1]));
	CHECK_EQ(rd(v, LAPIC(0xE0)), 0xFFFFFFFF);
	/* software-disabled: LVT masks cannot be cleared */
	wr(v, LAPIC(0x320), 0x30);
	CHECK_EQ(rd(v, LAPIC(0x320)), 0x10030);
	wr(v, LAPIC(0xF0), 0x1FF);
	wr(v, LAPIC(0x320), 0x30);
	CHECK_EQ(rd(v, LAPIC(0x320)), 0x30);
	wr(v, LAPIC(0x320), 0x60031); /* timer mode 3 (reserved): mode kept */
	CHECK_EQ(rd(v, LAPIC(0x320)), 0x31);
	wr(v, LAPIC(0x320), 0x30);
	/* TPR/PPR and CR8 */
	wr(v, LAPIC(0x80), 0x5A);
	CHECK_EQ(rd(v, LAPIC(0xA0)), 0x5A);
	CHECK_EQ(vlapic_get_cr8(v), 5);
	vlapic_set_cr8(v, 2);
	CHECK_EQ(rd(v, LAPIC(0x80)), 0x20);
	/* read-only registers ignore writes; a reserved one sets ESR bit 7 */
	wr(v, LAPIC(0x30), 0);
	CHECK_EQ(rd(v, LAPIC(0x30)), 0x50014);
	wr(v, LAPIC(0x40), 1);
	CHECK_EQ(rd(v, LAPIC(0x280)), 0);
	wr(v, LAPIC(0x280), 0);
	CHECK_EQ(rd(v, LAPIC(0x280)), 0x80);
	wr(v, LAPIC(0x280), 0);
	CHECK_EQ(rd(v, LAPIC(0x280)), 0);
	/* byte reads inside a register; wider or unaligned accesses refused */
	{
		const struct mmio_region *r = mmio_find(&vm.mmio, LAPIC(0));
		u64 val;

		CHECK_EQ(r->ops->read(r->dev, v, 0x33, 1, &val), 0);
		CHECK_EQ(val, 0);
		CHECK_EQ(r->ops->read(r->dev, v, 0x32, 1, &val), 0);
		CHECK_EQ(val, 5);
		CHECK_EQ(r->ops->read(r->dev, v, 0x30, 8, &val), -EINVAL);
		CHECK_EQ(r->ops->read(r->dev, v, 0x34, 4, &val), -EINVAL);
		CHECK_EQ(wr_sized(v, LAPIC(0x80), 2, 0), -EINVAL);
		CHECK_EQ(wr_sized(v, LAPIC(0x84), 4, 0), -EINVAL);
	}
	teardown(&vm);
}

static void test_priorities(void)
{
	struct vcpu *v = &cpu[0];
	struct apic_msg m = { .vector = 0x45 };

	setup(&vm, 1);
	CHECK_EQ(vlapic_pending(v), -1);
	vlapic_send(&vm, NULL, &m); /* software-disabled: dropped */
	CHECK_EQ(vlapic_pending(v), -1);
	CHECK(!irr_has(v, 0x45));
	wr(v, LAPIC(0xF0), 0x1FF);
	kicks = 0;
	vlapic_send(&vm, NULL, &m);
	CHECK(kicks > 0);
	CHECK(irr_has(v, 0x45));
	CHECK_EQ(vlapic_pending(v), 0x45);
	wr(v, LAPIC(0x80), 0x40); /* same class as TPR: blocked */
	CHECK_EQ(vlapic_pending(v), -1);
	wr(v, LAPIC(0x80), 0x3F);
	CHECK_EQ(vlapic_pending(v), 0x45);
	wr(v, LAPIC(0x80), 0);
	vlapic_accept(v, 0x45);
	CHECK_EQ(rd(v, LAPIC(0xA0)), 0x40);
	CHECK_EQ(rd(v, LAPIC(0x100 + 0x45 / 32 * 16)), 1u << (0x45 % 32));
	m.vector = 0x42; /* lower class than in service: waits */
	vlapic_send(&vm, NULL, &m);
	CHECK_EQ(vlapic_pending(v), -1);
	CHECK_EQ(rd(v, LAPIC(0x90)), 0x40); /* APR: the highest class */
	m.vector = 0x91;
	vlapic_send(&vm, NULL, &m);
	CHECK_EQ(vlapic_pending(v), 0x91);
	vlapic_accept(v, 0x91);
	CHECK_EQ(rd(v, LAPIC(0xA0)), 0x90);
	wr(v, LAPIC(0xB0), 0); /* EOI: the highest in service first */
	CHECK_EQ(rd(v, LAPIC(0xA0)), 0x40);
	wr(v, LAPIC(0xB0), 0);
	CHECK_EQ(rd(v, LAPIC(0xA0)), 0);
	CHECK_EQ(vlapic_pending(v), 0x42);
	/* illegal vectors: ESR "receive illegal vector", nothing in IRR */
	m.vector = 3;
	vlapic_send(&vm, NULL, &m);
	wr(v, LAPIC(0x280), 0);
	CHECK_EQ(rd(v, LAPIC(0x280)), 0x40);
	/* self IPI through the ICR; a send of vector 5 is an error */
	wr(v, LAPIC(0x300), 0x40000 | 0x66);
	CHECK(irr_has(v, 0x66));
	wr(v, LAPIC(0x300), 0x40000 | 5);
	wr(v, LAPIC(0x280), 0);
	CHECK_EQ(rd(v, LAPIC(0x280)), 0x20);
	/* NMI */
	m = (struct apic_msg){ .mode = APIC_DM_NMI };
	vlapic_send(&vm, NULL, &m);
	CHECK(vlapic_nmi_pending(v));
	vlapic_take_nmi(v);
	CHECK(!vlapic_nmi_pending(v));
	/* a storm of one vector without EOI: one IRR bit, nothing grows */
	m = (struct apic_msg){ .vector = 0x70 };
	for (int i = 0; i < 100000; i++)
		vlapic_send(&vm, NULL, &m);
	CHECK(irr_has(v, 0x70));
	teardown(&vm);
}

static void test_destinations(void)
{
	struct apic_msg m = { .vector = 0x50, .dest = 1 };

	setup(&vm, 2);
	wr(&cpu[0], LAPIC(0xF0), 0x1FF);
	wr(&cpu[1], LAPIC(0xF0), 0x1FF);
	vlapic_send(&vm, NULL, &m); /* physical 1 */
	CHECK(!irr_has(&cpu[0], 0x50) && irr_has(&cpu[1], 0x50));
	/* logical flat: LDR bit per APIC */
	wr(&cpu[0], LAPIC(0xD0), 0x01000000);
	wr(&cpu[1], LAPIC(0xD0), 0x02000000);
	m = (struct apic_msg){ .vector = 0x51, .logical = true, .dest = 0x03 };
	vlapic_send(&vm, NULL, &m);
	CHECK(irr_has(&cpu[0], 0x51) && irr_has(&cpu[1], 0x51));
	m.vector = 0x52;
	m.dest = 0x01;
	vlapic_send(&vm, NULL, &m);
	CHECK(irr_has(&cpu[0], 0x52) && !irr_has(&cpu[1], 0x52));
	/* logical cluster: cluster 2, member bits */
	wr(&cpu[0], LAPIC(0xE0), 0x0FFFFFFF);
	wr(&cpu[1], LAPIC(0xE0), 0x0FFFFFFF);
	wr(&cpu[0], LAPIC(0xD0), 0x21000000);
	wr(&cpu[1], LAPIC(0xD0), 0x12000000);
	m.vector = 0x53;
	m.dest = 0x21;
	vlapic_send(&vm, NULL, &m);
	CHECK(irr_has(&cpu[0], 0x53) && !irr_has(&cpu[1], 0x53));
	m.vector = 0x54;
	m.dest = 0x12;
	vlapic_send(&vm, NULL, &m);
	CHECK(!irr_has(&cpu[0], 0x54) && irr_has(&cpu[1], 0x54));
	/* shorthands from vCPU 0's ICR: all excluding self */
	wr(&cpu[0], LAPIC(0x300), 0xC0000 | 0x55);
	CHECK(!irr_has(&cpu[0], 0x55) && irr_has(&cpu[1], 0x55));
	wr(&cpu[0], LAPIC(0x300), 0x80000 | 0x56);
	CHECK(irr_has(&cpu[0], 0x56) && irr_has(&cpu[1], 0x56));
	/* lowest priority: the lower arbitration priority (TPR, or the
	 * highest class in IRR/ISR: 0x50 on both) wins */
	wr(&cpu[0], LAPIC(0x80), 0x70);
	m = (struct apic_msg){ .vector = 0x57, .mode = APIC_DM_LOWEST, .dest = 0xFF };
	vlapic_send(&vm, NULL, &m);
	CHECK(!irr_has(&cpu[0], 0x57) && irr_has(&cpu[1], 0x57));
	/* INIT then SIPI to vCPU 1 by physical id */
	wr(&cpu[0], LAPIC(0x310), 1u << 24);
	wr(&cpu[0], LAPIC(0x300), 0x4500);
	CHECK_EQ(rd(&cpu[1], LAPIC(0xF0)), 0xFF); /* INIT reset the registers */
	CHECK(!irr_has(&cpu[1], 0x50));
	teardown(&vm);
}

static void test_timer(void)
{
	struct vcpu *v = &cpu[0];
	const u64 us = HZ / 1000000;

	setup(&vm, 1);
	wr(v, LAPIC(0xF0), 0x1FF);
	tsc_now = 1000;
	wr(v, LAPIC(0x3E0), 0x3);	     /* divide by 16 */
	wr(v, LAPIC(0x320), 0x20000 | 0x30); /* periodic, vector 0x30 */
	wr(v, LAPIC(0x380), 62500);	     /* 1 ms at 1 GHz / 16 */
	CHECK_EQ(rd(v, LAPIC(0x390)), 62500);
	tsc_now += 500 * us;
	CHECK_EQ(rd(v, LAPIC(0x390)), 31250);
	CHECK_EQ(vdev_lapic.deadline(&vm, vm.dev[VDEV_LAPIC]), 1000 + 1000 * us);
	CHECK(!irr_has(v, 0x30));
	tsc_now = 1000 + 1000 * us;
	vdev_lapic.sync(&vm, vm.dev[VDEV_LAPIC], tsc_now);
	CHECK(irr_has(v, 0x30));
	CHECK_EQ(rd(v, LAPIC(0x390)), 62500);
	CHECK_EQ(vdev_lapic.deadline(&vm, vm.dev[VDEV_LAPIC]), 1000 + 2000 * us);
	/* divide change half way: the rest of the period runs twice as fast */
	tsc_now += 500 * us;
	wr(v, LAPIC(0x3E0), 0x2); /* divide by 8 */
	CHECK_EQ(rd(v, LAPIC(0x390)), 31250);
	tsc_now += 125 * us;
	CHECK_EQ(rd(v, LAPIC(0x390)), 31250 - 15625);
	tsc_now += 125 * us; /* the period ends: the count reloads */
	CHECK_EQ(rd(v, LAPIC(0x390)), 62500);
	/* masked, the expiries are lost: unmasking delivers none of them */
	wr(v, LAPIC(0x320), 0x30030);
	vlapic_accept(v, 0x30);
	wr(v, LAPIC(0xB0), 0);
	tsc_now += 5000 * us;
	wr(v, LAPIC(0x320), 0x20030);
	CHECK(!irr_has(v, 0x30));
	/* one-shot: fires once, then reads 0 */
	wr(v, LAPIC(0x320), 0x31);
	wr(v, LAPIC(0x3E0), 0xB); /* divide by 1 */
	wr(v, LAPIC(0x380), 1000);
	tsc_now += 2000; /* 1000 bus ticks */
	vdev_lapic.sync(&vm, vm.dev[VDEV_LAPIC], tsc_now);
	CHECK(irr_has(v, 0x31));
	CHECK_EQ(rd(v, LAPIC(0x390)), 0);
	CHECK_EQ(vdev_lapic.deadline(&vm, vm.dev[VDEV_LAPIC]), ~0ULL);
	/* TSC-deadline: the MSR arms, fires, reads 0 */
	wr(v, LAPIC(0x320), 0x40000 | 0x32);
	CHECK_EQ(vlapic_wrmsr(v, 0x6E0, tsc_now + 5000), 0);
	CHECK_EQ(vdev_lapic.deadline(&vm, vm.dev[VDEV_LAPIC]), tsc_now + 5000);
	tsc_now += 5000;
	vdev_lapic.sync(&vm, vm.dev[VDEV_LAPIC], tsc_now);
	CHECK(irr_has(v, 0x32));
	u64 d = 1;
	CHECK_EQ(vlapic_rdmsr(v, 0x6E0, &d), 0);
	CHECK_EQ(d, 0);
	teardown(&vm);
}

static void test_x2apic(void)
{
	struct vcpu *v = &cpu[1];
	u64 val;

	setup(&vm, 2);
	CHECK_EQ(vlapic_rdmsr(v, 0x802, &val), -EINVAL);		   /* xAPIC mode: #GP */
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, PLAT_LAPIC_BASE | 0x400), -EINVAL); /* EXTD alone */
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, PLAT_LAPIC_BASE | 0x900), -EINVAL); /* BSP is RO */
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, PLAT_LAPIC_BASE | 0xC00), 0);
	CHECK_EQ(vlapic_rdmsr(v, 0x802, &val), 0);
	CHECK_EQ(val, 1);
	CHECK_EQ(vlapic_rdmsr(v, 0x80D, &val), 0);
	CHECK_EQ(val, 2);				  /* cluster 0, bit 1 */
	CHECK_EQ(vlapic_rdmsr(v, 0x80E, &val), -EINVAL);  /* no DFR */
	CHECK_EQ(vlapic_rdmsr(v, 0x80B, &val), -EINVAL);  /* EOI is write-only */
	CHECK_EQ(vlapic_wrmsr(v, 0x802, 5), -EINVAL);	  /* ID is read-only */
	CHECK_EQ(vlapic_wrmsr(v, 0x80B, 1), -EINVAL);	  /* EOI must be 0 */
	CHECK_EQ(vlapic_wrmsr(v, 0x808, 0x100), -EINVAL); /* TPR reserved bits */
	CHECK_EQ(vlapic_wrmsr(v, 0x831, 0), -EINVAL);	  /* no ICR2 */
	CHECK_EQ(vlapic_wrmsr(v, 0x80F, 0x1FF), 0);
	CHECK_EQ(vlapic_wrmsr(v, 0x832, 0x20040), 0);	     /* periodic LVT timer */
	CHECK_EQ(vlapic_wrmsr(v, 0x832, 0x60040), -EINVAL);  /* timer mode 3 */
	CHECK_EQ(vlapic_wrmsr(v, 0x835, 0x100000), -EINVAL); /* LINT0 bit 20 */
	CHECK_EQ(vlapic_wrmsr(v, 0x835, 0x1A7FF), 0);
	CHECK_EQ(vlapic_rdmsr(v, 0x832, &val), 0);
	CHECK_EQ(val, 0x20040);
	CHECK_EQ(vlapic_wrmsr(v, 0x83F, 0x77), 0); /* SELF IPI */
	CHECK_EQ(vlapic_rdmsr(v, 0x823, &val), 0); /* IRR 0x60-0x7F */
	CHECK_EQ(val, 1u << (0x77 - 0x60));
	/* ICR, one 64-bit MSR, 32-bit destination */
	CHECK_EQ(vlapic_wrmsr(&cpu[0], 0x80F, 0), -EINVAL); /* vCPU 0 still xAPIC */
	CHECK_EQ(vlapic_wrmsr(v, 0x830, 0x0000000100000088ULL), 0);
	CHECK_EQ(vlapic_rdmsr(v, 0x830, &val), 0);
	CHECK_EQ(val, 0x0000000100000088ULL);
	/* the MMIO page is gone for it: reads all ones */
	CHECK_EQ(rd(v, LAPIC(0x20)), 0xFFFFFFFF);
	/* x2APIC -> xAPIC is #GP; -> disabled then xAPIC is fine */
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, PLAT_LAPIC_BASE | 0x800), -EINVAL);
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, PLAT_LAPIC_BASE), 0);
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, PLAT_LAPIC_BASE | 0x800), 0);
	CHECK_EQ(rd(v, LAPIC(0xF0)), 0xFF);
	/* reserved bits of IA32_APIC_BASE; a globally disabled APIC passes
	 * the 8259A straight to the CPU and takes no interrupts */
	CHECK_EQ(vlapic_wrmsr(&cpu[0], 0x1B, PLAT_LAPIC_BASE | 0x901), -EINVAL);
	CHECK_EQ(vlapic_wrmsr(&cpu[0], 0x1B, PLAT_LAPIC_BASE | 0xB00), -EINVAL);
	CHECK_EQ(vlapic_wrmsr(&cpu[0], 0x1B, PLAT_LAPIC_BASE | 0x100), 0);
	CHECK(vlapic_accepts_pic(&cpu[0]));
	{
		struct apic_msg m = { .vector = 0x44, .dest = 0 };

		vlapic_send(&vm, NULL, &m);
		CHECK_EQ(vlapic_pending(&cpu[0]), -1);
	}
	CHECK_EQ(vlapic_wrmsr(&cpu[0], 0x1B, PLAT_LAPIC_BASE | 0x900), 0);
	CHECK(!vlapic_accepts_pic(&cpu[0])); /* LVTs masked after the disable */
	/* relocation: the page moves */
	CHECK_EQ(vlapic_wrmsr(&cpu[0], 0x1B, 0xFED00000ULL | 0x900), 0);
	CHECK_EQ(rd(&cpu[0], 0xFED00030ULL), 0x50014);
	CHECK_EQ(rd(v, LAPIC(0x30)), 0x50014); /* vCPU 1 still at the old page */
	CHECK_EQ(vlapic_wrmsr(v, 0x1B, 0xFED00000ULL | 0x800), 0);
	CHECK(mmio_find(&vm.mmio, LAPIC(0x30)) == NULL);
	CHECK(mmio_find(&vm.mmio, PLAT_IOAPIC_BASE) != NULL);
	teardown(&vm);
}

#define IOREGSEL (PLAT_IOAPIC_BASE + 0)
#define IOWIN (PLAT_IOAPIC_BASE + 0x10)

static u32 io_rd(u32 idx)
{
	wr(&cpu[0], IOREGSEL, idx);
	return rd(&cpu[0], IOWIN);
}

static void io_wr(u32 idx, u32 val)
{
	wr(&cpu[0], IOREGSEL, idx);
	wr(&cpu[0], IOWIN, val);
}

static void test_ioapic(void)
{
	struct vcpu *v = &cpu[0];

	setup(&vm, 1);
	wr(v, LAPIC(0xF0), 0x1FF);
	CHECK_EQ(io_rd(0), (u32)PLAT_IOAPIC_ID << 24);
	CHECK_EQ(io_rd(1), 0x170020);
	CHECK_EQ(io_rd(0x10), 0x10000); /* masked */
	CHECK_EQ(io_rd(0x40), 0);	/* past the table */
	io_wr(0x40, 0x1234);
	CHECK_EQ(io_rd(0xFF), 0);
	/* edge: one message per rising edge, none while masked */
	vioapic_set_irq(&vm, 2, true);
	CHECK(!irr_has(v, 0x40));
	vioapic_set_irq(&vm, 2, false);
	io_wr(0x14, 0x40);
	io_wr(0x15, 0);
	vioapic_set_irq(&vm, 2, true);
	CHECK(irr_has(v, 0x40));
	CHECK_EQ(vlapic_pending(v), 0x40);
	vlapic_accept(v, 0x40);
	vioapic_set_irq(&vm, 2, true); /* no edge */
	CHECK(!irr_has(v, 0x40));
	wr(v, LAPIC(0xB0), 0);
	/* level: Remote IRR until the EOI, again while asserted */
	io_wr(0x16, 0x8041);
	vioapic_set_irq(&vm, 3, true);
	CHECK(irr_has(v, 0x41));
	CHECK(io_rd(0x16) & (1u << 14));
	CHECK_EQ(rd(v, LAPIC(0x180 + 0x41 / 32 * 16)), 1u << (0x41 % 32)); /* TMR */
	vlapic_accept(v, 0x41);
	wr(v, LAPIC(0xB0), 0); /* EOI broadcast: Remote IRR clear, re-raised */
	CHECK(irr_has(v, 0x41));
	CHECK(io_rd(0x16) & (1u << 14));
	vioapic_set_irq(&vm, 3, false);
	vlapic_accept(v, 0x41);
	wr(v, LAPIC(0xB0), 0);
	CHECK(!(io_rd(0x16) & (1u << 14)));
	CHECK(!irr_has(v, 0x41));
	/* the EOI register of version 0x20 */
	vioapic_set_irq(&vm, 3, true);
	CHECK(io_rd(0x16) & (1u << 14));
	vioapic_set_irq(&vm, 3, false);
	wr(v, PLAT_IOAPIC_BASE + 0x40, 0x41);
	CHECK(!(io_rd(0x16) & (1u << 14)));
	/* active low: a line held low is asserted */
	io_wr(0x18, 0xA042);
	CHECK(irr_has(v, 0x42));
	teardown(&vm);
}

static void test_records(void)
{
	static struct vm other;
	static u8 a[4096], b[4096];
	const struct vdev *devs[2] = { &vdev_lapic, &vdev_ioapic };
	const char *why = NULL;

	setup(&vm, 2);
	wr(&cpu[0], LAPIC(0xF0), 0x1FF);
	wr(&cpu[0], LAPIC(0x320), 0x20030);
	wr(&cpu[0], LAPIC(0x380), 12345);
	wr(&cpu[0], LAPIC(0x300), 0x40000 | 0x66);
	io_wr(0x16, 0x8041);
	vioapic_set_irq(&vm, 3, true);
	for (int i = 0; i < 2; i++) {
		const struct vdev *d = devs[i];
		struct rec r = { a, true };
		struct rec l = { a, false };
		void *fresh = calloc(1, d->state_size);

		CHECK(d->record_size <= 4096 && d->record_size % 8 == 0);
		memset(&other, 0, sizeof(other));
		other.nvcpus = 2;
		other.dev[d->id] = fresh;
		other.dev[VDEV_LAPIC] = other.dev[VDEV_LAPIC] ? other.dev[VDEV_LAPIC] : fresh;
		memset(a, 0, sizeof(a));
		CHECK_EQ(d->state(&vm, vm.dev[d->id], &r, d->version, &why), 0);
		CHECK_EQ(d->state(&other, fresh, &l, d->version, &why), 0);
		r.buf = b;
		memset(b, 0, sizeof(b));
		CHECK_EQ(d->state(&other, fresh, &r, d->version, &why), 0);
		CHECK(memcmp(a, b, d->record_size) == 0);
		CHECK(memcmp(vm.dev[d->id], fresh, d->state_size) == 0);
		free(fresh);
	}
	/* impossible values are refused */
	{
		struct rec r = { a, true }, l = { a, false };
		void *fresh = calloc(1, vdev_lapic.state_size);

		memset(&other, 0, sizeof(other));
		other.dev[VDEV_LAPIC] = fresh;
		vdev_lapic.state(&vm, vm.dev[VDEV_LAPIC], &r, 1, &why);
		a[0] |= 0x01; /* APIC_BASE reserved bit */
		CHECK_EQ(vdev_lapic.state(&other, fresh, &l, 1, &why), -EINVAL);
		a[0] &= ~0x01;
		a[256 + 1] |= 0x01; /* vCPU 1 claims BSP */
		CHECK_EQ(vdev_lapic.state(&other, fresh, &l, 1, &why), -EINVAL);
		a[256 + 1] &= ~0x01;
		a[0x92 + 0] = 0; /* LVT timer mode 3 */
		a[0x92] = 0x06;
		CHECK_EQ(vdev_lapic.state(&other, fresh, &l, 1, &why), -EINVAL);
		free(fresh);
		fresh = calloc(1, vdev_ioapic.state_size);
		other.dev[VDEV_IOAPIC] = fresh;
		vdev_ioapic.state(&vm, vm.dev[VDEV_IOAPIC], &r, 1, &why);
		a[0x10 + 3] = 0x01; /* RTE 0 reserved bit 24 */
		CHECK_EQ(vdev_ioapic.state(&other, fresh, &l, 1, &why), -EINVAL);
		free(fresh);
	}
	teardown(&vm);
}

int main(void)
{
	test_reset_and_registers();
	test_priorities();
	test_destinations();
	test_timer();
	test_x2apic();
	test_ioapic();
	test_records();
	return test_done("apic");
}
