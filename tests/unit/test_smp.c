/* Host unit test: which CPUs smp_init brings up from the MADT's enabled APIC
 * IDs (kernel/smp_list.c): the boot CPU first whatever the firmware's order,
 * each ID once, at most SMP_MAX_CPUS, the rest counted as dropped. */
#include "tests/unit/check.h"
#include "kernel/smp.h"

int main(void)
{
	u32 out[SMP_MAX_CPUS];
	int dropped;

	/* QEMU and Bochs list the boot CPU first, IDs 0..n-1. */
	{
		const u32 ids[] = { 0, 1, 2, 3 };

		CHECK_EQ(smp_cpu_list(ids, 4, 0, out, SMP_MAX_CPUS, &dropped), 4);
		CHECK_EQ(dropped, 0);
		for (u32 i = 0; i < 4; i++)
			CHECK_EQ(out[i], i);
	}
	/* Firmware that lists the boot CPU elsewhere, with sparse IDs (one per
	 * core, hyperthreads disabled). */
	{
		const u32 ids[] = { 0, 2, 4, 6 };

		CHECK_EQ(smp_cpu_list(ids, 4, 4, out, SMP_MAX_CPUS, &dropped), 4);
		CHECK_EQ(out[0], 4);
		CHECK_EQ(out[1], 0);
		CHECK_EQ(out[2], 2);
		CHECK_EQ(out[3], 6);
	}
	/* An ID listed twice (as LAPIC and as x2APIC entry) starts one CPU. */
	{
		const u32 ids[] = { 0, 1, 1, 0, 2 };

		CHECK_EQ(smp_cpu_list(ids, 5, 0, out, SMP_MAX_CPUS, &dropped), 3);
		CHECK_EQ(out[2], 2);
		CHECK_EQ(dropped, 0);
	}
	/* A boot CPU the MADT forgot is still CPU 0; no MADT: one CPU. */
	{
		const u32 ids[] = { 1, 2 };

		CHECK_EQ(smp_cpu_list(ids, 2, 7, out, SMP_MAX_CPUS, &dropped), 3);
		CHECK_EQ(out[0], 7);
		CHECK_EQ(smp_cpu_list(ids, 0, 0, out, SMP_MAX_CPUS, &dropped), 1);
		CHECK_EQ(out[0], 0);
	}
	/* More CPUs than Amber has room for: the first ones, the rest counted. */
	{
		u32 ids[SMP_MAX_CPUS + 5];

		for (u32 i = 0; i < SMP_MAX_CPUS + 5; i++)
			ids[i] = 300 + i; /* x2APIC IDs above 255 */
		CHECK_EQ(smp_cpu_list(ids, SMP_MAX_CPUS + 5, 305, out, SMP_MAX_CPUS, &dropped),
			 SMP_MAX_CPUS);
		CHECK_EQ(dropped, 5);
		CHECK_EQ(out[0], 305);
		CHECK_EQ(out[1], 300);
		CHECK_EQ(out[SMP_MAX_CPUS - 1], 300 + SMP_MAX_CPUS - 1); /* 305 went first */
	}
	return test_done("smp");
}
