/*
 * Amber's hypercalls: what a guest created with `vm create ... hypercalls`
 * (or inputs=IMAGE) asks of Amber with VMCALL (VT-x) or VMMCALL (AMD-V), so
 * that a fuzzing harness inside the guest drives fast reset (vmm/fastreset.h)
 * with no shell in the loop. The backends only report the exit
 * (VMEXIT_HYPERCALL); this is the one handler. docs/vmm.md "Hypercalls".
 *
 * Registers: RAX = call number, RBX and RCX = arguments, RAX = result (0 or
 * more: success, negative: -errno). In 64-bit mode (EFER.LMA) they are read
 * whole and RAX written whole; otherwise only their low 32 bits count and
 * only EAX is written. Every other register is kept. Any CPL may call.
 * A guest that was not allowed them gets #UD, as from a CPU without VMX/SVM.
 */
#ifndef AMBER_HYPERCALL_H
#define AMBER_HYPERCALL_H

#include "kernel/types.h"
#include "vmm/fuzzinput.h"

#define HC_PROBE 0    /* -> RAX = HC_MAGIC, RBX = HC_VERSION */
#define HC_SNAPSHOT 1 /* take the base now: resets resume here, RAX = 0 */
#define HC_RESET 2    /* back to the base; does not return (-ENOENT: none) */
#define HC_REPORT \
	3 /* RBX = HC_RESULT_*: the current input's outcome;
			   -> RAX = executions reported so far */
#define HC_NEXT_INPUT \
	4 /* RBX = buffer (guest-linear), RCX = its size: the
			   next input copied there; -> RAX = its length, 0 when
			   the inputs are used up (or the VM has none) */

#define HC_MAGIC 0x52424D41 /* "AMBR" */
#define HC_VERSION 1

#define HC_RESULT_OK 0
#define HC_RESULT_CRASH 1
#define HC_RESULT_HANG 2

struct vm;
struct vcpu;
struct vm_exit;

/* The host side: the inputs, the counts, the input being run and the first
 * one that crashed the guest (kept for `snap reset VM` to show). */
struct hypercall_state {
	char inputs[32]; /* the corpus image's name, "" for none */
	struct fuzz_corpus corpus;
	u64 next; /* number of the next input to hand out */
	u64 execs, crashes, hangs;
	u64 tsc_first, tsc_last; /* host TSC at the first and the last report */
	u64 cur_index;		 /* the input handed out last (cur_len > 0) */
	u32 cur_len;
	u32 crash_len; /* 0: no crash yet */
	u64 crash_index, crash_exec;
	u8 cur[FUZZ_INPUT_MAX];
	u8 crash[FUZZ_INPUT_MAX];
};

/* Allows vm the hypercalls, with the guest image named `inputs` (NULL: none)
 * as its corpus. 0, or a negative errno after printing why (nothing set). */
int hypercall_enable(struct vm *vm, const char *inputs);
void hypercall_free(struct vm *vm);
/* The exit handler of VMEXIT_HYPERCALL; returns an enum exit_action. */
int hypercall_exit(struct vcpu *v, struct vm_exit *e);
/* The note a snapshot of vm carries (the NOTE section `amber-snap info`
 * shows): `prefix`, then, once the guest reported a crash, "; fuzz crash:
 * execution E, input I of NAME, L bytes: HEX" with as much of the input in
 * hex as fits in len (cut with "..."). */
void hypercall_note(struct vm *vm, char *buf, size_t len, const char *prefix);
/* Prints the counts and the crashing input, lines prefixed "  ". */
void hypercall_describe(struct vm *vm);

#endif
