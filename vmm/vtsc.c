/*
 * The guest TSC's rate (vmm/vtsc.h). A VM's guest TSC normally runs with the
 * host's; a restored image brings the rate of the host it was saved on, which
 * its devices and CPUID go on using, and the backend scales the TSC to it
 * where the CPU can. Host context, boot CPU.
 */
#include "kernel/printk.h"
#include "kernel/time.h"
#include "vmm/vdev.h"
#include "vmm/vtsc.h"

int vtsc_multiplier(u64 guest_hz, u64 host_hz, unsigned frac_bits, unsigned int_bits, u64 *mult)
{
	u64 q, r, m;
	unsigned done;

	if (!guest_hz || !host_hz || frac_bits + int_bits > 64 || frac_bits % 16)
		return -ERANGE;
	q = guest_hz / host_hz;
	r = guest_hz % host_hz;
	if (int_bits < 64 && q >> int_bits)
		return -ERANGE;
	/* The fraction 16 bits at a time, long division: r < host_hz, so
	 * r << 16 cannot overflow for any host under 2^48 Hz. */
	m = q;
	for (done = 0; done < frac_bits; done += 16) {
		if (host_hz >> 48)
			return -ERANGE;
		r <<= 16;
		m = m << 16 | r / host_hz;
		r %= host_hz;
	}
	if (r >= host_hz - r) /* round to nearest: r / host_hz >= 1/2 */
		m++;
	if (!m || (frac_bits + int_bits < 64 && m >> (frac_bits + int_bits)))
		return -ERANGE;
	*mult = m;
	return 0;
}

enum vtsc_mode vtsc_adopt(struct vm *vm, u64 hz, int *err)
{
	u64 host = tsc_hz();
	bool was_scaled = vm->tsc_mode == VTSC_SCALED;
	int i, e = 0;

	*err = 0;
	vm->guest_tsc_hz = hz;
	vm->tsc_mode = VTSC_NATIVE;
	if (vtsc_same_rate(hz, host)) {
		for (i = 0; was_scaled && i < vm->nvcpus; i++)
			vcpu_ops->set_tsc_ratio(vm->vcpus[i], host, host);
		return VTSC_NATIVE;
	}
	for (i = 0; i < vm->nvcpus && !e; i++)
		e = vcpu_ops->set_tsc_ratio(vm->vcpus[i], hz, host);
	if (!e) {
		vm->tsc_mode = VTSC_SCALED;
		return VTSC_SCALED;
	}
	/* All or none: the vCPUs of one guest must agree on its time. vCPU i - 1
	 * failed and is as it was; the ones before it go back to 1:1. */
	for (i -= 2; i >= 0; i--)
		vcpu_ops->set_tsc_ratio(vm->vcpus[i], host, host);
	*err = e;
	vm->tsc_mode = VTSC_UNSCALED;
	return VTSC_UNSCALED;
}

u64 vtsc_run_hz(const struct vm *vm)
{
	return vm->tsc_mode == VTSC_SCALED ? vdev_tsc_hz(vm) : tsc_hz();
}

u64 vtsc_to_host(const struct vm *vm, u64 ticks)
{
	return vm->tsc_mode == VTSC_SCALED ? vdev_scale(ticks, tsc_hz(), vdev_tsc_hz(vm)) : ticks;
}

/* "2495.0" for 2495012345 Hz. */
static void vtsc_mhz(char *buf, size_t len, u64 hz)
{
	snprintf(buf, len, "%llu.%llu", (unsigned long long)(hz / 1000000),
		 (unsigned long long)(hz / 100000 % 10));
}

void vtsc_describe(const struct vm *vm, int err, char *buf, size_t len)
{
	u64 host = tsc_hz(), guest = vdev_tsc_hz(vm);
	u64 ratio = (host * 1000 + guest / 2) / guest; /* thousandths */
	char g[24], h[24];

	vtsc_mhz(g, sizeof(g), guest);
	vtsc_mhz(h, sizeof(h), host);
	switch (vm->tsc_mode) {
	case VTSC_SCALED:
		snprintf(buf, len, "VM %d's TSC scaled by %s to %s MHz as saved (host %s MHz)",
			 vm->id, vcpu_ops->name, g, h);
		break;
	case VTSC_UNSCALED:
		snprintf(buf, len,
			 "warning: VM %d's TSC runs %s/%s MHz = %llu.%03llux its rate: %s", vm->id,
			 h, g, (unsigned long long)(ratio / 1000),
			 (unsigned long long)(ratio % 1000),
			 err == -EOPNOTSUPP ? "no TSC scaling" :
			 err == -ERANGE	    ? "past TSC scaling" :
					      "scaling failed");
		break;
	default:
		buf[0] = 0;
		break;
	}
}
