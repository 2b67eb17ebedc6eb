/*
 * The hypercall handler (vmm/hypercall.h): decodes RAX, runs the call and
 * writes the result, on the exit path of the calling vCPU. The corpus and the
 * counts live here; fast reset itself is vmm/fastreset.c. Host context, boot
 * CPU, interrupts off.
 */
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/msr.h"
#include "kernel/printk.h"
#include "kernel/x86.h"
#include "vmm/fastreset.h"
#include "vmm/hypercall.h"
#include "vmm/vmm_internal.h"

#define DUMP_BYTES 16 /* bytes per line of a dumped input (80 columns) */
#define DUMP_LINES 4

int hypercall_enable(struct vm *vm, const char *inputs)
{
	struct hypercall_state *hc = kzalloc(sizeof(*hc));
	const struct guest_image *img = NULL;
	const char *why;

	if (!hc) {
		printk("vm %d: no host memory for the hypercall state\n", vm->id);
		return -ENOMEM;
	}
	if (inputs) {
		img = guest_image_find(inputs);
		if (!img) {
			printk("vm create: no image '%s' for inputs= (see 'vm images')\n", inputs);
			kfree(hc);
			return -ENOENT;
		}
		if (fuzz_corpus_parse(&hc->corpus, img->data, img->size, &why)) {
			printk("vm create: inputs=%s is no corpus: %s\n", inputs, why);
			kfree(hc);
			return -EINVAL;
		}
		strlcpy(hc->inputs, inputs, sizeof(hc->inputs));
	}
	hypercall_free(vm);
	vm->hc = hc;
	vm->hypercalls = true;
	return 0;
}

void hypercall_free(struct vm *vm)
{
	kfree(vm->hc);
	vm->hc = NULL;
	vm->hypercalls = false;
}

/* Prints up to DUMP_LINES lines of `len` bytes: hex, then the printable ones. */
static void dump_input(int vm_id, const u8 *buf, u32 len)
{
	for (u32 off = 0; off < len && off < DUMP_LINES * DUMP_BYTES; off += DUMP_BYTES) {
		char hex[DUMP_BYTES * 3 + 1], text[DUMP_BYTES + 1];
		u32 n = MIN(len - off, DUMP_BYTES);

		for (u32 i = 0; i < n; i++) {
			u8 c = buf[off + i];

			snprintf(hex + i * 3, 4, "%02x ", c);
			text[i] = c >= 0x20 && c < 0x7f ? (char)c : '.';
		}
		hex[n * 3] = 0;
		text[n] = 0;
		printk("[vm%d]   %-48s %s\n", vm_id, hex, text);
	}
	if (len > DUMP_LINES * DUMP_BYTES)
		printk("[vm%d]   ... %u bytes in all\n", vm_id, len);
}

/* HC_REPORT: counts the outcome; a crash is printed and its input kept (the
 * first one: the one a person wants to reproduce). */
static u64 report(struct vcpu *v, u64 result)
{
	struct vm *vm = v->vm;
	struct hypercall_state *hc = vm->hc;

	if (result > HC_RESULT_HANG)
		return (u64)-EINVAL;
	hc->execs++;
	hc->tsc_last = rdtsc();
	if (hc->execs == 1)
		hc->tsc_first = hc->tsc_last;
	if (result == HC_RESULT_OK)
		return hc->execs;
	if (result == HC_RESULT_HANG)
		hc->hangs++;
	else
		hc->crashes++;
	printk("[vm%d] fuzz: execution %llu %s, input %llu of %s (%u bytes):\n", vm->id,
	       (unsigned long long)hc->execs, result == HC_RESULT_CRASH ? "crashed" : "hung",
	       (unsigned long long)hc->cur_index, hc->inputs[0] ? hc->inputs : "-", hc->cur_len);
	dump_input(vm->id, hc->cur, hc->cur_len);
	if (result == HC_RESULT_CRASH && !hc->crash_len && hc->cur_len) {
		memcpy(hc->crash, hc->cur, hc->cur_len);
		hc->crash_len = hc->cur_len;
		hc->crash_index = hc->cur_index;
		hc->crash_exec = hc->execs;
	}
	return hc->execs;
}

/* HC_NEXT_INPUT: the next input into the guest's buffer at `la` (`size`
 * bytes), written as the guest would write it (its page rights). */
static u64 next_input(struct vcpu *v, u64 la, u64 size)
{
	struct hypercall_state *hc = v->vm->hc;
	u32 len;
	int err;

	if (!hc->inputs[0])
		return 0;
	len = fuzz_input(&hc->corpus, hc->next, hc->cur);
	if (!len || len > size) {
		hc->cur_len = 0; /* cur was overwritten: no input is being run */
		return len ? (u64)-ENOSPC : 0;
	}
	err = vcpu_write_linear(v, la, hc->cur, len);
	if (err) {
		hc->cur_len = 0; /* no input is being run */
		return (u64)(s64)err;
	}
	hc->cur_len = len;
	hc->cur_index = hc->next++;
	return len;
}

int hypercall_exit(struct vcpu *v, struct vm_exit *e)
{
	struct vm *vm = v->vm;
	u64 efer = 0, mask, nr, result;
	int err;

	if (!vm->hypercalls) {
		/* What a CPU without VMX/SVM does: the guest's own handler runs. */
		err = vcpu_inject_exception(v, X86_TRAP_UD, false, 0);
		return err ? vcpu_backend_failed(v, e, "inject #UD", err) : EXIT_RESUME;
	}
	err = vcpu_ops->get_field(v, VCPU_FIELD_EFER, &efer);
	if (err)
		return vcpu_backend_failed(v, e, "read EFER", err);
	mask = efer & EFER_LMA ? ~0ULL : 0xFFFFFFFFULL;
	nr = v->regs[REG_RAX] & mask;
	if (nr == HC_RESET) {
		err = fastreset_reset(vm);
		if (err == -ENOENT || err == -EINVAL) {
			result = (u64)(s64)err; /* no base, or its log stopped */
			err = vcpu_ops->advance_rip(v, e);
			if (err)
				return vcpu_backend_failed(v, e, "advance RIP", err);
		} else if (err) {
			return vcpu_backend_failed(v, e, "reset the VM to its base", err);
		} else {
			vcpu_fpu_switch(v); /* the base's FPU state into the registers */
			return EXIT_RESUME; /* RIP and RAX are the base's */
		}
	} else {
		err = vcpu_ops->advance_rip(v, e);
		if (err)
			return vcpu_backend_failed(v, e, "advance RIP", err);
		switch (nr) {
		case HC_PROBE:
			result = HC_MAGIC;
			v->regs[REG_RBX] = HC_VERSION;
			break;
		case HC_SNAPSHOT:
			/* RIP past the call and RAX = 0 are what the base holds. */
			v->regs[REG_RAX] = 0;
			err = fastreset_take(vm);
			result = (u64)(s64)err;
			if (err == -ENOMEM)
				printk("[vm%d] hypercall: no host memory for a reset base of %llu "
				       "MiB\n",
				       vm->id,
				       (unsigned long long)(fastreset_base_bytes(vm) >> 20));
			else if (err)
				printk("[vm%d] hypercall: the reset base could not be taken (%s)\n",
				       vm->id, errno_name(err));
			break;
		case HC_REPORT:
			result = report(v, v->regs[REG_RBX] & mask);
			break;
		case HC_NEXT_INPUT:
			result = next_input(v, v->regs[REG_RBX] & mask, v->regs[REG_RCX] & mask);
			break;
		default:
			result = (u64)-ENOSYS;
		}
	}
	if (mask == ~0ULL)
		v->regs[REG_RAX] = result;
	else
		v->regs[REG_RAX] = (v->regs[REG_RAX] & ~mask) | (result & mask);
	return EXIT_RESUME;
}

void hypercall_note(struct vm *vm, char *buf, size_t len, const char *prefix)
{
	const struct hypercall_state *hc = vm->hc;
	size_t used;

	strlcpy(buf, prefix, len);
	if (!hc || !hc->crash_len)
		return;
	used = strlen(buf);
	snprintf(buf + used, len - used,
		 "; fuzz crash: execution %llu, input %llu of %s, %u bytes: ",
		 (unsigned long long)hc->crash_exec, (unsigned long long)hc->crash_index,
		 hc->inputs, hc->crash_len);
	used = strlen(buf);
	for (u32 i = 0; i < hc->crash_len; i++, used += 2) {
		if (used + 2 + 4 > len) { /* two digits, "..." and the NUL */
			strlcpy(buf + used, "...", len - used);
			return;
		}
		snprintf(buf + used, len - used, "%02x", hc->crash[i]);
	}
}

void hypercall_describe(struct vm *vm)
{
	struct hypercall_state *hc = vm->hc;

	if (!hc)
		return;
	printk("  hypercalls: %llu executions, %llu crashed, %llu hung\n"
	       "  inputs: %s, %llu of %llu handed out\n",
	       (unsigned long long)hc->execs, (unsigned long long)hc->crashes,
	       (unsigned long long)hc->hangs, hc->inputs[0] ? hc->inputs : "none",
	       (unsigned long long)hc->next,
	       (unsigned long long)(hc->inputs[0] ? fuzz_input_count(&hc->corpus) : 0));
	if (hc->execs > 1)
		printk("  TSC ticks per execution (report to report): %llu\n",
		       (unsigned long long)((hc->tsc_last - hc->tsc_first) / (hc->execs - 1)));
	if (hc->crash_len) {
		printk("  first crash: execution %llu, input %llu (%u bytes):\n",
		       (unsigned long long)hc->crash_exec, (unsigned long long)hc->crash_index,
		       hc->crash_len);
		dump_input(vm->id, hc->crash, hc->crash_len);
	}
}
