/*
 * Which CPUs to bring up, from the MADT's list (ACPI 6.4 5.2.12.2 "Processor
 * Local APIC Structure": only the enabled ones reach it). Pure: the unit test
 * (tests/unit/test_smp.c) runs it on the host.
 */
#include "kernel/smp.h"

int smp_cpu_list(const u32 *ids, int n, u32 boot_id, u32 *out, int max, int *dropped)
{
	int count = 0;

	*dropped = 0;
	if (max < 1)
		return 0;
	/* The boot CPU is CPU 0 whether or not the firmware listed it first. */
	out[count++] = boot_id;
	for (int i = 0; i < n; i++) {
		bool seen = false;

		for (int j = 0; j < count && !seen; j++)
			seen = out[j] == ids[i];
		if (seen)
			continue;
		if (count == max) {
			(*dropped)++;
			continue;
		}
		out[count++] = ids[i];
	}
	return count;
}
