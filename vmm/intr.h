/*
 * A VM's interrupt fabric: how an interrupt travels from the device that
 * raises it to the vCPU that takes it. The pieces, each in its own file:
 *
 *   ISA device --vm_set_irq()--+--> 8259A pair (dev_pic.c) --INTR--> LINT0
 *                              |      of the vCPUs' LAPICs (ExtINT)
 *                              +--> IOAPIC (dev_ioapic.c) --message--+
 *   LAPIC ICR, LINT0/1, LVT timer/error (dev_lapic.c) --message-------+
 *                                                                     v
 *   LAPIC: IRR, ISR, TMR, TPR/PPR, pending NMI, per vCPU (dev_lapic.c)
 *                                                                     v
 *   vmm/intr.c, before every VM entry: what may be injected now (an NMI,
 *   the highest LAPIC vector above PPR, or the 8259A's vector through an
 *   ExtINT LINT0), injected through the backend, or an interrupt/NMI window
 *   requested when RFLAGS.IF, an STI/MOV SS shadow or NMI blocking forbids it.
 *
 * The generic side owns which vector is pending; the backends only inject
 * what they are given and report the windows (vmm/vmm.h). Host context, on a
 * vCPU's exit path or the scheduler, boot CPU.
 */
#ifndef AMBER_INTR_H
#define AMBER_INTR_H

#include "vmm/vmm.h"

/* ---- messages between interrupt controllers -------------------------------
 * One interrupt message as the IOAPIC's redirection entries, the LAPIC's ICR
 * and LVT entries describe it. SDM Vol. 3A 11.6.1 "Interrupt Command
 * Register (ICR)"; 82093AA datasheet 3.2.4 "I/O Redirection Table Registers". */
enum apic_delivery {
	APIC_DM_FIXED = 0,
	APIC_DM_LOWEST = 1,
	APIC_DM_SMI = 2,
	APIC_DM_NMI = 4,
	APIC_DM_INIT = 5,
	APIC_DM_STARTUP = 6,
	APIC_DM_EXTINT = 7,
};

enum apic_shorthand {
	APIC_DEST_NONE = 0,
	APIC_DEST_SELF = 1,
	APIC_DEST_ALL = 2, /* all including self */
	APIC_DEST_ALL_BUT_SELF = 3,
};

struct apic_msg {
	u8 vector;
	u8 mode;      /* enum apic_delivery */
	u8 shorthand; /* enum apic_shorthand (ICR only; 0 elsewhere) */
	bool logical; /* destination mode: logical (LDR/DFR match) or physical */
	bool level;   /* trigger mode: level (TMR set on acceptance) */
	bool assert;  /* level: asserted; an INIT level de-assert is ignored */
	u32 dest;     /* APIC id, or the logical mask; 0xFF (xAPIC) or
			 0xFFFFFFFF (x2APIC) is the broadcast */
};

/* ---- vmm/dev_lapic.c: the local APIC of each vCPU ---------------------- */

/* Delivers m to every LAPIC it names; src is the sender for the ICR's
 * shorthands (NULL for the IOAPIC). Wakes the vCPUs that got something. */
void vlapic_send(struct vm *vm, struct vcpu *src, const struct apic_msg *m);
/* The highest vector in v's IRR above its PPR while the APIC is software
 * enabled, or -1. */
int vlapic_pending(struct vcpu *v);
/* No vector at all in v's IRR, whatever the PPR (a TPR the guest lowers
 * through CR8 cannot make one deliverable). */
bool vlapic_irr_empty(struct vcpu *v);
/* v is taking `vector` (the backend injects it): IRR -> ISR, PPR updated. */
void vlapic_accept(struct vcpu *v, u8 vector);
/* True when the 8259A's INTR reaches v: its LINT0 is unmasked with delivery
 * mode ExtINT, or its LAPIC is hardware-disabled (IA32_APIC_BASE.EN clear:
 * the pins go straight to the CPU). Power-on LAPICs of vCPU 0 behave so. */
bool vlapic_accepts_pic(struct vcpu *v);
/* An NMI waits for v (ICR, LINT1, the NMI source); take_nmi clears it as
 * the backend injects it. */
bool vlapic_nmi_pending(struct vcpu *v);
void vlapic_take_nmi(struct vcpu *v);
/* INIT and STARTUP IPIs as v's LAPIC holds them (SDM Vol. 3A 11.4.7.3
 * "Local APIC State After an INIT Reset ("Wait-for-SIPI" State)"):
 * VLAPIC_RUN, nothing pending; VLAPIC_WAIT_SIPI, an INIT arrived (or the
 * power-on of an application processor) and no STARTUP yet; VLAPIC_SIPI, a
 * STARTUP IPI arrived with *vector. vlapic_started() clears both once the
 * vCPU runs from the STARTUP (vmm/startup.c acts on them). */
enum {
	VLAPIC_RUN,
	VLAPIC_WAIT_SIPI,
	VLAPIC_SIPI
};
int vlapic_startup(struct vcpu *v, u8 *vector);
void vlapic_started(struct vcpu *v);
/* CR8 is TPR[7:4] (SDM Vol. 3A 10.8.6 "Task Priority in IA-32e Mode"). */
u8 vlapic_get_cr8(struct vcpu *v);
void vlapic_set_cr8(struct vcpu *v, u8 cr8);
/* The APIC MSRs: IA32_APIC_BASE (0x1B), IA32_TSC_DEADLINE (0x6E0) and the
 * x2APIC range 0x800-0x8FF. Return 0; -ENOENT for an MSR that is not the
 * APIC's (the caller goes on looking); -EINVAL for an access that raises
 * #GP (x2APIC MSR in xAPIC mode, reserved bits, read of a write-only
 * register). */
int vlapic_rdmsr(struct vcpu *v, u32 msr, u64 *val);
int vlapic_wrmsr(struct vcpu *v, u32 msr, u64 val);
/* The LAPIC timer's input clock (the "bus clock" before the divide
 * configuration register), in Hz: what CPUID 0x15/0x16/0x40000010 report. */
u64 vlapic_bus_hz(struct vm *vm);

/* ---- vmm/dev_ioapic.c: the 82093AA at 0xFEC00000 ------------------------- */
#define IOAPIC_PINS 24

/* Drives input pin `gsi` (0-23) to `level`; edge pins act on the rising edge. */
void vioapic_set_irq(struct vm *vm, unsigned gsi, bool level);
/* A LAPIC EOI of a level-triggered `vector` (and the IOAPIC's own EOI
 * register): clears Remote IRR of every entry with that vector, and a line
 * still asserted interrupts again. */
void vioapic_eoi(struct vm *vm, u8 vector);

/* ---- vmm/intr.c: delivery -------------------------------------------------- */

/* Something v may take has appeared (a LAPIC IRR bit, an NMI, the 8259A's
 * INTR): a halted v is looked at again by the scheduler. Cheap; any device
 * may call it. */
void vcpu_kick(struct vcpu *v);
/* The same for every vCPU of vm (the 8259A's INTR, a broadcast). */
void vm_kick(struct vm *vm);
/* Registers how a kick reaches a vCPU that runs on another host CPU (the
 * scheduler's IPI, vmm/vcpu.c); unset, a kick only sets the flags. */
void intr_set_remote_kick(void (*fn)(struct vcpu *v));

#endif
