/*
 * ACPI fixed hardware at PLAT_PM_BASE (the PIIX4 layout): the PM1a event block
 * (status, enable), the PM1a control block (SCI_EN, sleep type and enable: S5
 * powers the VM off) and the 24-bit PM timer at 3.579545 MHz, whose bit 23
 * toggling sets TMR_STS and raises the SCI on IRQ 9 (level) when enabled. The
 * timer is computed from the guest TSC, never stepped. ACPI 6.4 4.8.3.1 "PM1
 * Event Grouping", 4.8.3.2 "PM1 Control Grouping", 4.8.3.3 "Power Management
 * Timer". Host context, on a vCPU's exit path.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "vmm/platform.h"
#include "vmm/vdev.h"
#include "vmm/vmm_internal.h"

#define PM_TMR_HZ 3579545ULL
#define PM_TMR_BITS 24 /* FADT TMR_VAL_EXT clear */
#define PM_TMR_MASK ((1ULL << PM_TMR_BITS) - 1)
#define PM_TMR_MSB (1ULL << (PM_TMR_BITS - 1))

/* PM1 status and enable bits (Table 4.16, 4.17) and control (Table 4.18). */
#define PM1_TMR BIT(0)
#define PM1_BM_STS BIT(4)
#define PM1_GBL BIT(5)
#define PM1_PWRBTN BIT(8)
#define PM1_SLPBTN BIT(9)
#define PM1_RTC BIT(10)
#define PM1_WAK_STS BIT(15)
#define PM1_STS_MASK \
	(PM1_TMR | PM1_BM_STS | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_WAK_STS)
#define PM1_EN_MASK (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)
#define PM1_CNT_SCI_EN BIT(0)
#define PM1_CNT_BM_RLD BIT(1)
#define PM1_CNT_GBL_RLS BIT(2) /* write-only */
#define PM1_CNT_SLP_TYP(v) (((v) >> 10) & 7)
#define PM1_CNT_SLP_EN BIT(13) /* write-only */
#define PM1_CNT_KEEP (PM1_CNT_SCI_EN | PM1_CNT_BM_RLD | (7u << 10))

struct vpm {
	u16 sts, en, cnt;
	u8 sci;		 /* the SCI line as last driven */
	u8 warned_sleep; /* a sleep state other than S5 was reported */
	u64 tmr_seen;	 /* PM timer ticks (64-bit) up to which TMR_STS is current */
};

/* The PM timer's 64-bit tick count at guest TSC `tsc`; the register shows its
 * low 24 bits. */
static u64 vpm_ticks(u64 tsc, u64 tsc_hz) { return vdev_scale(tsc, PM_TMR_HZ, tsc_hz); }

/* TMR_STS is set each time bit 23 of the counter changes, every 2^23 ticks
 * (4.8.3.3): brings it up to `tsc` and drives the SCI. */
static void pm_sync(struct vm *vm, void *st, u64 tsc)
{
	struct vpm *p = st;
	u64 now = vpm_ticks(tsc, vdev_tsc_hz(vm));
	bool sci;

	if (now / PM_TMR_MSB > p->tmr_seen / PM_TMR_MSB)
		p->sts |= PM1_TMR;
	if (now > p->tmr_seen)
		p->tmr_seen = now;
	sci = (p->cnt & PM1_CNT_SCI_EN) && (p->sts & p->en & PM1_EN_MASK);
	if (sci != p->sci) {
		p->sci = sci;
		vm_set_irq(vm, PLAT_IRQ_SCI, sci);
	}
}

/* The next toggle of bit 23 while it would raise the SCI. */
static u64 pm_deadline(struct vm *vm, void *st)
{
	struct vpm *p = st;
	u64 hz = vdev_tsc_hz(vm), next;

	if (!(p->cnt & PM1_CNT_SCI_EN) || !(p->en & PM1_TMR) || (p->sts & PM1_TMR))
		return ~0ULL;
	next = (p->tmr_seen / PM_TMR_MSB + 1) * PM_TMR_MSB;
	/* The first TSC value whose tick count reaches `next`. */
	return vdev_scale(next, hz, PM_TMR_HZ) + 1;
}

static void pm_control(struct vcpu *v, struct vpm *p, u16 val)
{
	p->cnt = val & PM1_CNT_KEEP;
	if (!(val & PM1_CNT_SLP_EN))
		return;
	if (PM1_CNT_SLP_TYP(val) == PLAT_SLP_TYP_S5) {
		vm_power_off(v->vm, "ACPI S5");
		return;
	}
	if (!p->warned_sleep) {
		p->warned_sleep = 1;
		printk("[vm%d] note: the guest asked for ACPI sleep type %u; only S5 (%u) is "
		       "offered, ignored\n",
		       v->vm->id, PM1_CNT_SLP_TYP(val), PLAT_SLP_TYP_S5);
	}
}

/* One byte of the block at offset `off`, so that byte, word and dword
 * accesses all work as on the chipset. */
static u8 pm_read8(struct vcpu *v, struct vpm *p, unsigned off)
{
	u32 tmr;

	switch (off) {
	case 0:
	case 1:
		return (u8)(p->sts >> (8 * off));
	case 2:
	case 3:
		return (u8)(p->en >> (8 * (off - 2)));
	case 4:
	case 5:
		return (u8)(p->cnt >> (8 * (off - 4)));
	case 8:
	case 9:
	case 10:
	case 11:
		tmr = (u32)(vpm_ticks(vcpu_guest_tsc(v), vdev_tsc_hz(v->vm)) & PM_TMR_MASK);
		return (u8)(tmr >> (8 * (off - 8)));
	default:
		return 0;
	}
}

static bool pm_io(struct vcpu *v, void *st, u16 port, u8 size, bool in, u32 *val)
{
	struct vpm *p = st;
	unsigned off = port - PLAT_PM_BASE;
	u32 w = *val;

	if (off + size > PLAT_PM_LEN)
		return false;
	pm_sync(v->vm, p, vcpu_guest_tsc(v));
	if (in) {
		*val = 0;
		for (unsigned i = 0; i < size; i++)
			*val |= (u32)pm_read8(v, p, off + i) << (8 * i);
		return true;
	}
	for (unsigned i = 0; i < size; i++, off++) {
		u8 b = (u8)(w >> (8 * i));

		if (off <= 1) /* status: write one to clear */
			p->sts &= (u16) ~((u16)b << (8 * off));
		else if (off <= 3)
			p->en = (u16)((p->en & ~(0xFF << (8 * (off - 2)))) |
				      ((b << (8 * (off - 2))) & PM1_EN_MASK));
		else if (off == 4)
			p->cnt = (u16)((p->cnt & 0xFF00) | (b & PM1_CNT_KEEP));
		else if (off == 5)
			pm_control(v, p, (u16)((p->cnt & 0xFF) | b << 8));
		/* the timer and 6-7 are read-only */
	}
	pm_sync(v->vm, p, vcpu_guest_tsc(v));
	return true;
}

/* Power-on: every enable clear, SCI_EN clear (the guest's ACPI enable
 * sequence sets it; Amber has no SMI_CMD, so it may also simply write it). */
static void pm_reset(struct vm *vm, void *st) {}

static int pm_state(struct vm *vm, void *st, const struct rec *r, u32 version, const char **why)
{
	struct vpm *p = st;

	REC(r, 0x00, p->sts);
	REC(r, 0x02, p->en);
	REC(r, 0x04, p->cnt);
	REC(r, 0x06, p->sci);
	REC(r, 0x07, p->warned_sleep);
	REC(r, 0x08, p->tmr_seen);
	if (!r->enc && ((p->sts & ~PM1_STS_MASK) || (p->en & ~PM1_EN_MASK) ||
			(p->cnt & ~PM1_CNT_KEEP) || p->sci > 1 || p->warned_sleep > 1)) {
		*why = "ACPI PM1 bits no chipset holds";
		return -EINVAL;
	}
	return 0;
}

const struct vdev vdev_pm = {
	.id = VDEV_PM,
	.version = 1,
	.record_size = 0x10,
	.state_size = sizeof(struct vpm),
	.ports = { { PLAT_PM_BASE, PLAT_PM_LEN } },
	.reset = pm_reset,
	.io = pm_io,
	.sync = pm_sync,
	.deadline = pm_deadline,
	.state = pm_state,
};
