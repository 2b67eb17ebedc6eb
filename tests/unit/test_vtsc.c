/*
 * Host unit test of the guest TSC's rate (vmm/vtsc.c): the fixed-point
 * multipliers of VT-x (16.48) and AMD-V (8.32) against exact 128-bit
 * arithmetic, the scaled TSC's rate and its value kept at the switch on a
 * stand-in backend that computes the guest TSC as the hardware does, the
 * all-or-none choice across vCPUs, host time of guest ticks, and the line
 * `snap restore` prints.
 */
#include <stdlib.h>
#include <string.h>

#include "kernel/time.h"
#include "vmm/vdev.h"
#include "vmm/vtsc.h"
#include "tests/unit/check.h"

/* ---- a host and a backend that scales as VT-x does ------------------------ */
static u64 host_hz = 2500000000ULL, host_tsc = 123456789012ULL;
static bool can_scale = true;
static int fail_on = -1, calls;

u64 tsc_hz(void) { return host_hz; }

struct fake_vcpu {
	u64 mult, offset;
};
static struct fake_vcpu fv[4];

static u64 fake_host(const struct fake_vcpu *f)
{
	return f->mult ? vtsc_scale(host_tsc, f->mult, 48) : host_tsc;
}

static u64 guest_tsc(int i) { return fake_host(&fv[i]) + fv[i].offset; }

static int fake_set_ratio(struct vcpu *v, u64 guest, u64 host)
{
	struct fake_vcpu *f = &fv[v->id];
	u64 mult = 0, tsc;
	int err;

	calls++;
	if (v->id == fail_on)
		return -EIO;
	if (guest != host) {
		if (!can_scale)
			return -EOPNOTSUPP;
		err = vtsc_multiplier(guest, host, 48, 16, &mult);
		if (err)
			return err;
	}
	tsc = guest_tsc(v->id);
	f->mult = mult;
	f->offset = tsc - fake_host(f);
	return 0;
}

static const struct vcpu_ops fake_ops = { .name = "VT-x", .set_tsc_ratio = fake_set_ratio };
const struct vcpu_ops *vcpu_ops = &fake_ops;

static struct vcpu vc[4];
static struct vm vm;

static void vm_fresh(int n)
{
	memset(&vm, 0, sizeof(vm));
	memset(fv, 0, sizeof(fv));
	vm.id = 3;
	vm.nvcpus = n;
	vm.guest_tsc_hz = host_hz;
	for (int i = 0; i < n; i++) {
		vc[i] = (struct vcpu){ .vm = &vm, .id = i };
		vm.vcpus[i] = &vc[i];
		fv[i].offset = 1000000ULL * (u64)(i + 1); /* the guest's TSC is not the host's */
	}
	calls = 0;
	fail_on = -1;
	can_scale = true;
}

/* ---- the multiplier ------------------------------------------------------ */
static u64 exact_mult(u64 g, u64 h, unsigned frac)
{
	unsigned __int128 n = ((unsigned __int128)g << frac) + h / 2;

	return (u64)(n / h);
}

static void test_multiplier(void)
{
	u64 m = 0;

	CHECK_EQ(vtsc_multiplier(1000, 1000, 48, 16, &m), 0);
	CHECK_EQ(m, 1ULL << 48);
	CHECK_EQ(vtsc_multiplier(2000, 1000, 48, 16, &m), 0);
	CHECK_EQ(m, 2ULL << 48);
	CHECK_EQ(vtsc_multiplier(1000, 2000, 32, 8, &m), 0);
	CHECK_EQ(m, 1ULL << 31);
	CHECK_EQ(vtsc_multiplier(1, 3, 48, 16, &m), 0);
	CHECK_EQ(m, exact_mult(1, 3, 48));
	CHECK_EQ(vtsc_multiplier(2, 3, 48, 16, &m), 0); /* 0.666...: rounds up */
	CHECK_EQ(m, exact_mult(2, 3, 48));
	/* Bochs' 100 MHz to a 2.5 GHz host and back. */
	CHECK_EQ(vtsc_multiplier(100000000, 2500000000ULL, 48, 16, &m), 0);
	CHECK_EQ(m, exact_mult(100000000, 2500000000ULL, 48));
	CHECK_EQ(vtsc_multiplier(2500000000ULL, 100000000, 32, 8, &m), 0);
	CHECK_EQ(m, 25ULL << 32);
	/* The integer part must fit: AMD-V holds up to 255.99..., VT-x 65535. */
	CHECK_EQ(vtsc_multiplier(256, 1, 32, 8, &m), -ERANGE);
	CHECK_EQ(vtsc_multiplier(255, 1, 32, 8, &m), 0);
	CHECK_EQ(vtsc_multiplier(65536, 1, 48, 16, &m), -ERANGE);
	CHECK_EQ(vtsc_multiplier(65535, 1, 48, 16, &m), 0);
	/* So close to 256 that rounding carries into bit 40. */
	CHECK_EQ(vtsc_multiplier((256ULL << 33) - 1, 1ULL << 33, 32, 8, &m), -ERANGE);
	/* Nothing, or so little that it rounds to 0. */
	CHECK_EQ(vtsc_multiplier(0, 1000, 48, 16, &m), -ERANGE);
	CHECK_EQ(vtsc_multiplier(1000, 0, 48, 16, &m), -ERANGE);
	CHECK_EQ(vtsc_multiplier(1, 1ULL << 40, 32, 8, &m), -ERANGE);
	/* Pseudo-random rates between 1 MHz and 10 GHz against the exact value. */
	u64 x = 88172645463325252ULL;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		u64 g = 1000000 + x % 10000000000ULL, h = 1000000 + (x >> 20) % 10000000000ULL;
		unsigned frac = i & 1 ? 48 : 32, intb = i & 1 ? 16 : 8;
		u64 want = exact_mult(g, h, frac);
		int err = vtsc_multiplier(g, h, frac, intb, &m);

		if (frac + intb < 64 && want >> (frac + intb)) {
			CHECK_EQ(err, -ERANGE);
		} else {
			CHECK_EQ(err, 0);
			CHECK_EQ(m, want);
		}
	}
}

/* One second of the host's TSC through the multiplier is the guest's rate,
 * within what the fraction bits carry. */
static void test_scale(void)
{
	u64 m;

	vtsc_multiplier(100000000, 2500000000ULL, 48, 16, &m);
	CHECK(llabs((long long)vtsc_scale(2500000000ULL, m, 48) - 100000000) <= 1);
	vtsc_multiplier(2500000000ULL, 100000000, 32, 8, &m);
	CHECK_EQ(vtsc_scale(100000000, m, 32), 2500000000ULL);
	vtsc_multiplier(1193182, 3579545, 32, 8, &m); /* an awkward ratio */
	CHECK(llabs((long long)vtsc_scale(3579545ULL * 3600, m, 32) - 1193182LL * 3600) <= 4);
	/* The 128-bit product: a TSC far past 2^64 / multiplier. */
	CHECK_EQ(vtsc_scale(1ULL << 60, 2ULL << 48, 48), 1ULL << 61);
	CHECK(vtsc_same_rate(2500000000ULL + 625000, 2500000000ULL));
	CHECK(!vtsc_same_rate(2500000000ULL + 625001, 2500000000ULL));
	CHECK(vtsc_same_rate(2500000000ULL - 625000, 2500000000ULL));
	CHECK(!vtsc_same_rate(100000000, 2500000000ULL));
}

/* ---- the choice for a restored VM -------------------------------------- */
static void test_adopt(void)
{
	char line[128];
	u64 t0, g0;
	int err;

	/* The same host (its calibration a little off): nothing scaled. */
	vm_fresh(2);
	CHECK_EQ(vtsc_adopt(&vm, host_hz + host_hz / 10000, &err), VTSC_NATIVE);
	CHECK_EQ(calls, 0);
	CHECK_EQ(vm.guest_tsc_hz, host_hz + host_hz / 10000);
	CHECK_EQ(vtsc_run_hz(&vm), host_hz);
	CHECK_EQ(vtsc_to_host(&vm, 12345), 12345);
	vtsc_describe(&vm, err, line, sizeof(line));
	CHECK_STR(line, "");

	/* Saved under Bochs at 100 MHz, here 2.5 GHz with scaling: each vCPU's
	 * TSC reads on from its value and then runs at 100 MHz. */
	vm_fresh(2);
	host_tsc = 123456789012ULL;
	g0 = guest_tsc(1);
	CHECK_EQ(vtsc_adopt(&vm, 100000000, &err), VTSC_SCALED);
	CHECK_EQ(err, 0);
	CHECK_EQ(vm.tsc_mode, VTSC_SCALED);
	CHECK_EQ(calls, 2);
	CHECK(llabs((long long)(guest_tsc(1) - g0)) <= 1);
	t0 = guest_tsc(0);
	host_tsc += host_hz; /* one second */
	CHECK(llabs((long long)(guest_tsc(0) - t0) - 100000000) <= 1);
	CHECK_EQ(vtsc_run_hz(&vm), 100000000);
	/* 1 ms of guest TSC is 1 ms of the host's: 2.5 million host ticks. */
	CHECK_EQ(vtsc_to_host(&vm, 100000), 2500000);
	vtsc_describe(&vm, err, line, sizeof(line));
	CHECK_STR(line, "VM 3's TSC scaled by VT-x to 100.0 MHz as saved (host 2500.0 MHz)");

	/* No scaling: the TSC runs at the host's rate, the devices keep the
	 * image's, and the warning says how much faster the guest's time runs. */
	vm_fresh(2);
	can_scale = false;
	CHECK_EQ(vtsc_adopt(&vm, 100000000, &err), VTSC_UNSCALED);
	CHECK_EQ(err, -EOPNOTSUPP);
	CHECK_EQ(vm.guest_tsc_hz, 100000000);
	CHECK_EQ(vdev_tsc_hz(&vm), 100000000);
	CHECK_EQ(vtsc_run_hz(&vm), host_hz);
	CHECK_EQ(vtsc_to_host(&vm, 100000), 100000);
	CHECK_EQ(fv[0].mult, 0);
	vtsc_describe(&vm, err, line, sizeof(line));
	CHECK_STR(line, "warning: VM 3's TSC runs 2500.0/100.0 MHz = 25.000x its rate: no TSC "
			"scaling");

	/* A ratio past the hardware's (VT-x: 65535). */
	vm_fresh(1);
	CHECK_EQ(vtsc_adopt(&vm, host_hz * 70000, &err), VTSC_UNSCALED);
	CHECK_EQ(err, -ERANGE);
	CHECK_EQ(fv[0].mult, 0);

	/* All or none: vCPU 2 fails, vCPUs 0 and 1 go back to 1:1 with their
	 * values kept, vCPU 3 was never asked. */
	vm_fresh(4);
	fail_on = 2;
	g0 = guest_tsc(0);
	CHECK_EQ(vtsc_adopt(&vm, 100000000, &err), VTSC_UNSCALED);
	CHECK_EQ(err, -EIO);
	CHECK_EQ(calls, 3 + 2);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(fv[i].mult, 0);
	CHECK(llabs((long long)(guest_tsc(0) - g0)) <= 2);
	vtsc_describe(&vm, err, line, sizeof(line));
	CHECK_STR(line, "warning: VM 3's TSC runs 2500.0/100.0 MHz = 25.000x its rate: scaling "
			"failed");

	/* A scaled VM given its host's rate again goes back to 1:1. */
	vm_fresh(2);
	vtsc_adopt(&vm, 100000000, &err);
	CHECK_EQ(vtsc_adopt(&vm, host_hz, &err), VTSC_NATIVE);
	CHECK_EQ(fv[0].mult, 0);
	CHECK_EQ(fv[1].mult, 0);

	/* The longest warning fits 80 columns. */
	vm_fresh(1);
	vm.id = 16;
	host_hz = 9999900000ULL;
	can_scale = false;
	vtsc_adopt(&vm, 10000000, &err);
	vtsc_describe(&vm, -ERANGE, line, sizeof(line));
	CHECK(strlen(line) <= 80);
	host_hz = 2500000000ULL;
}

int main(void)
{
	test_multiplier();
	test_scale();
	test_adopt();
	return test_done("vtsc");
}
