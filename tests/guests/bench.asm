; bench: the cost of a VM exit. Runs an empty loop and then the same loop with
; a CPUID in it (always intercepted), loops=N times each (default 100000),
; reading the TSC around both, and prints the two counts and their difference
; per iteration: the exit round trip with the guest's own loop taken out.
; Under QEMU -icount shift=0 one instruction is one TSC tick, so the figure is
; an instruction count and repeats exactly. Ends with exit code 0.
; Three more measurements, one per word on the command line (make bench,
; tests/bench/bench_exit.py; SDM Vol. 3A 11.5.4 "APIC Timer"):
;   mmio   the same two loops with a read of the LAPIC's TPR (0xFEE00080, an
;          emulated MMIO access) in place of the CPUID: "bench: mmio ...".
;   idle   a periodic 1 kHz LAPIC timer and `hlt` until ms=N (default 1000)
;          interrupts have come, the TSC read at the first and the last:
;          "bench: idle ms=N ticks=T tsc_khz=K" (K from CPUID 0x40000010).
;   timer  what a LAPIC timer interrupt takes from the guest: a loop that
;          reads the TSC spins for SPIN_TICKS with no timer, then as long
;          with a 10 kHz periodic timer whose handler only EOIs; the
;          iterations lost over the interrupts taken are the round trip
;          (the host timer's exit, the LAPIC's sync, the injection, the
;          handler and its EOI exit, IRET): "bench: timer spin_ticks=D
;          idle_iters=A timer_iters=B interrupts=N", the cost being
;          (A - B) * D / A / N ticks.
%include "guest.inc"
%include "intr.inc"

APIC         equ 0xFEE00000
TIMER_VEC    equ 0x40
SPIN_TICKS   equ 20000000                       ; 20 ms of a 1 GHz TSC
TIMER_10KHZ  equ 100000                         ; 1 GHz bus clock, divide by 1
TIMER_1KHZ   equ 1000000

main:
	mov esi, key_loops
	call get_num
	jnc .have
	mov eax, 100000
.have:
	test eax, eax
	jnz .nonzero
	inc eax
.nonzero:
	mov [loops], eax
	mov esi, word_mmio
	call has_word
	test eax, eax
	jnz mmio
	mov esi, word_idle
	call has_word
	test eax, eax
	jnz idle
	mov esi, word_timer
	call has_word
	test eax, eax
	jnz timer

	; The empty loop: the same instructions, CPUID replaced by a NOP.
	rdtsc
	mov [t0], eax
	mov [t0 + 4], edx
	mov edi, [loops]
.empty:
	xor eax, eax
	nop
	dec edi
	jnz .empty
	rdtsc
	sub eax, [t0]
	sbb edx, [t0 + 4]
	mov [empty], eax
	mov [empty + 4], edx

	rdtsc
	mov [t0], eax
	mov [t0 + 4], edx
	mov edi, [loops]
.exits:
	xor eax, eax
	cpuid
	dec edi
	jnz .exits
	rdtsc
	sub eax, [t0]
	sbb edx, [t0 + 4]
	mov [full], eax
	mov [full + 4], edx

	PRINT "bench: loops="
	mov eax, [loops]
	call putdec
	PRINT " cpuid_ticks="
	mov eax, [full]
	mov edx, [full + 4]
	call putdec64
	PRINT " empty_ticks="
	mov eax, [empty]
	mov edx, [empty + 4]
	call putdec64
	PRINT " per_exit="
	mov eax, [full]
	mov edx, [full + 4]
	sub eax, [empty]
	sbb edx, [empty + 4]
	div dword [loops]                       ; fits: far below 2^32 per loop
	call putdec
	call newline
	xor eax, eax
	ret

; ---- mmio: a TPR read against the same loop's empty twin ----------------------

mmio:
	mov dword [APIC + 0xF0], 0x1FF          ; software enable
	rdtsc
	mov [t0], eax
	mov [t0 + 4], edx
	mov edi, [loops]
.empty:
	mov eax, [scratch]                      ; a plain memory read
	dec edi
	jnz .empty
	rdtsc
	sub eax, [t0]
	sbb edx, [t0 + 4]
	mov [empty], eax
	mov [empty + 4], edx

	rdtsc
	mov [t0], eax
	mov [t0 + 4], edx
	mov edi, [loops]
.reads:
	mov eax, [APIC + 0x80]                  ; TPR: an exit and its emulation
	dec edi
	jnz .reads
	rdtsc
	sub eax, [t0]
	sbb edx, [t0 + 4]
	mov [full], eax
	mov [full + 4], edx

	PRINT "bench: mmio loops="
	mov eax, [loops]
	call putdec
	PRINT " tpr_ticks="
	mov eax, [full]
	mov edx, [full + 4]
	call putdec64
	PRINT " empty_ticks="
	mov eax, [empty]
	mov edx, [empty + 4]
	call putdec64
	PRINT " per_access="
	mov eax, [full]
	mov edx, [full + 4]
	sub eax, [empty]
	sbb edx, [empty + 4]
	div dword [loops]
	call putdec
	call newline
	xor eax, eax
	ret

; ---- the LAPIC timer ----------------------------------------------------------

; timer_setup: vector TIMER_VEC -> tick_isr, the IDT loaded, the LAPIC
; software-enabled, the timer's divider 1 and its count stopped.
timer_setup:
	mov eax, TIMER_VEC
	mov edx, tick_isr
	call set_gate
	lidt [idt_desc]
	mov dword [APIC + 0xF0], 0x1FF
	mov dword [APIC + 0x3E0], 0xB           ; divide by 1
	mov dword [APIC + 0x380], 0
	mov dword [APIC + 0x320], 0x20000 | TIMER_VEC ; periodic
	mov dword [ticks], 0
	ret

tick_isr:
	inc dword [ticks]
	mov dword [APIC + 0xB0], 0              ; EOI
	iret

idle:
	mov esi, key_ms
	call get_num
	jnc .have
	mov eax, 1000
.have:
	test eax, eax
	jnz .nonzero
	inc eax
.nonzero:
	mov [target], eax
	call timer_setup
	mov dword [APIC + 0x380], TIMER_1KHZ
	sti
.first:
	hlt
	cmp dword [ticks], 0
	je .first
	rdtsc
	mov [t0], eax
	mov [t0 + 4], edx
	mov ebx, [ticks]
	add ebx, [target]
.sleep:
	hlt
	cmp [ticks], ebx
	jb .sleep
	rdtsc
	cli
	sub eax, [t0]
	sbb edx, [t0 + 4]
	mov [full], eax
	mov [full + 4], edx
	mov dword [APIC + 0x380], 0
	PRINT "bench: idle ms="
	mov eax, [target]
	call putdec
	PRINT " ticks="
	mov eax, [full]
	mov edx, [full + 4]
	call putdec64
	PRINT " tsc_khz="
	mov eax, 0x40000010
	cpuid
	call putdec
	call newline
	xor eax, eax
	ret

; spin: ESI = iterations of a TSC-reading loop in SPIN_TICKS ticks.
spin:
	xor esi, esi
	rdtsc
	mov ebx, eax
.loop:
	inc esi
	rdtsc
	sub eax, ebx
	cmp eax, SPIN_TICKS
	jb .loop
	ret

timer:
	call timer_setup
	sti
	call spin
	mov [iters_idle], esi
	mov dword [ticks], 0
	mov dword [APIC + 0x380], TIMER_10KHZ
	call spin
	mov dword [APIC + 0x380], 0
	cli
	PRINT "bench: timer spin_ticks="
	mov eax, SPIN_TICKS
	call putdec
	PRINT " idle_iters="
	mov eax, [iters_idle]
	call putdec
	PRINT " timer_iters="
	mov eax, esi
	call putdec
	PRINT " interrupts="
	mov eax, [ticks]
	call putdec
	call newline
	xor eax, eax
	ret

; putdec64: EDX:EAX as an unsigned decimal number.
putdec64:
	pushad
	mov ecx, 0
.divide:
	; EDX:EAX / 10 in two 32-bit steps.
	mov ebx, eax
	mov eax, edx
	xor edx, edx
	mov esi, 10
	div esi
	mov edi, eax                            ; high quotient
	mov eax, ebx
	div esi
	push edx                                ; the digit
	inc ecx
	mov edx, edi
	mov ebx, eax
	or ebx, edx
	jnz .divide
.print:
	pop eax
	add al, '0'
	call putc
	loop .print
	popad
	ret

key_loops: db "loops=", 0
key_ms: db "ms=", 0
word_mmio: db "mmio", 0
word_idle: db "idle", 0
word_timer: db "timer", 0
align 4
loops:	dd 0
target:	dd 0
ticks:	dd 0
iters_idle: dd 0
scratch: dd 0
t0:	dq 0
empty:	dq 0
full:	dq 0

GUEST_END
