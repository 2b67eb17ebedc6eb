/*
 * The guest TSC's rate against the host's (vmm/vtsc.c): the fixed-point
 * multipliers of hardware TSC scaling, and what a VM does when its image was
 * saved on a host whose TSC ran at another rate. Pure arithmetic and one
 * call into the backend; host context, boot CPU.
 */
#ifndef AMBER_VTSC_H
#define AMBER_VTSC_H

#include "kernel/types.h"

struct vm;

/* Rates closer than this are one rate: the host's own calibration varies by
 * about as much from boot to boot, so a restore on the same host never
 * scales or warns (KVM's tsc_tolerance_ppm is the same 250). */
#define VTSC_TOLERANCE_PPM 250

/* How a VM's TSC runs (vm->tsc_mode). */
enum vtsc_mode {
	VTSC_NATIVE,   /* at the host's rate, which is the guest's */
	VTSC_SCALED,   /* at the guest's rate, by the backend's TSC scaling */
	VTSC_UNSCALED, /* at the host's rate, which is not the guest's */
};

/*
 * The multiplier that makes host TSC ticks into guest ticks at guest_hz /
 * host_hz, as a fixed-point number with frac_bits fraction bits and at most
 * int_bits integer bits (VT-x: 16.48, AMD-V: 8.32), rounded to nearest.
 * 0, or -ERANGE when a rate is 0 or the ratio does not fit (nor rounds to 0).
 */
int vtsc_multiplier(u64 guest_hz, u64 host_hz, unsigned frac_bits, unsigned int_bits, u64 *mult);

/* A host TSC value through a multiplier, as the hardware computes it: the
 * 128-bit product shifted right by frac_bits (SDM Vol. 3C 26.6.5 "Time-Stamp
 * Counter Offset and Multiplier"; APM Vol. 2 15.30.5 "TSC Ratio MSR"). */
static inline u64 vtsc_scale(u64 tsc, u64 mult, unsigned frac_bits)
{
	return (u64)(((unsigned __int128)tsc * mult) >> frac_bits);
}

/* Whether two rates are one within VTSC_TOLERANCE_PPM of the second. */
static inline bool vtsc_same_rate(u64 a, u64 b)
{
	u64 d = a > b ? a - b : b - a;

	return d <= b / 1000000 * VTSC_TOLERANCE_PPM + b % 1000000 * VTSC_TOLERANCE_PPM / 1000000;
}

/*
 * Gives vm's guest the TSC rate `hz` (its image's): the devices and CPUID
 * count with it from now on, and the backend is asked to scale every vCPU's
 * TSC to it. Where that cannot be done (no TSC scaling, a ratio past the
 * hardware's, or one backend call failing) every vCPU stays unscaled and the
 * guest's TSC runs at the host's rate. Each vCPU's TSC keeps its value.
 * Returns the mode chosen (also in vm->tsc_mode); *err holds the backend's
 * errno for VTSC_UNSCALED, else 0.
 */
enum vtsc_mode vtsc_adopt(struct vm *vm, u64 hz, int *err);

/* The rate at which vm's guest TSC advances in host time. */
u64 vtsc_run_hz(const struct vm *vm);

/* Host TSC ticks in which vm's guest TSC advances by `ticks`, rounded down
 * (a deadline from it comes early, never late). */
u64 vtsc_to_host(const struct vm *vm, u64 ticks);

/* One line (without newline, under 80 columns) that says how vm's TSC runs
 * after vtsc_adopt, for `snap restore`; "" for VTSC_NATIVE. */
void vtsc_describe(const struct vm *vm, int err, char *buf, size_t len);

#endif
