/*
 * Time. A tick is one microsecond of monotonic time since boot, derived from the
 * TSC calibrated against the PIT at boot (docs/architecture.md "Time").
 * Under Bochs the TSC counts instructions, so ticks there are emulated time.
 */
#ifndef AMBER_TIME_H
#define AMBER_TIME_H

#include "kernel/types.h"

#define TICKS_PER_SEC 1000000UL

void time_init(void);
u64 ticks(void);  /* microseconds since boot */
u64 tsc_hz(void); /* calibrated TSC frequency */
void udelay(u64 us);
void mdelay(u64 ms);

/* A deadline for bounded hardware waits:
 *   u64 dl = deadline_after_us(500000);
 *   while (!ready()) { if (deadline_passed(dl)) return -ETIMEDOUT; cpu_relax(); }
 */
static inline u64 deadline_after_us(u64 us) { return ticks() + us; }
static inline bool deadline_passed(u64 dl) { return ticks() >= dl; }

#endif
