/*
 * The host's own local APIC: its ID, EOI and the interrupt command register
 * (IPIs: INIT, STARTUP, NMI, fixed). xAPIC through its registers mapped with
 * ioremap, or x2APIC through MSRs where the CPU has it (then every CPU is
 * switched to x2APIC mode). Not the guests' virtual LAPIC (vmm/lapic.h).
 * Any CPU, host context. SDM Vol. 3A 11 "Advanced Programmable Interrupt
 * Controller (APIC)".
 */
#ifndef AMBER_HOST_APIC_H
#define AMBER_HOST_APIC_H

#include "kernel/types.h"

/* ICR delivery modes and flags, SDM Vol. 3A 11.6.1 "Interrupt Command
 * Register (ICR)". */
#define APIC_ICR_FIXED 0x000
#define APIC_ICR_NMI 0x400
#define APIC_ICR_INIT 0x500
#define APIC_ICR_STARTUP 0x600
#define APIC_ICR_BUSY BIT(12) /* delivery status: send pending (xAPIC) */
#define APIC_ICR_ASSERT BIT(14)
#define APIC_ICR_LEVEL BIT(15)

#define APIC_SPURIOUS_VECTOR 0xFF

/* Boot CPU, once: picks x2APIC or xAPIC (mapping the registers at phys) and
 * enables this CPU's APIC. 0 or -ENODEV (no APIC: Amber stays on one CPU). */
int apic_init(u64 phys);
/* Every other CPU, first thing in C: the same mode as the boot CPU, APIC
 * software-enabled with the spurious vector. */
void apic_init_ap(void);
bool apic_ready(void);
bool apic_x2apic(void);
u32 apic_id(void);
void apic_eoi(void);
/* The local APIC timer as the host timer of an AP. apic_timer_calibrate: the
 * boot CPU, once, before the APs start (10 ms). apic_timer_init: each AP,
 * one-shot mode on `vector`. apic_timer_at: the calling CPU's timer
 * interrupts once at ticks() `at` (at once for a time past), replacing what
 * was armed. */
void apic_timer_calibrate(void);
void apic_timer_init(u32 vector);
void apic_timer_at(u64 at);
/* Sends an IPI to the APIC with ID dest; icr is the low word (mode, vector,
 * flags). Waits, bounded, until the APIC has taken it: 0 or -ETIMEDOUT. */
int apic_send(u32 dest, u32 icr);

#endif
