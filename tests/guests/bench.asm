; bench: the cost of a VM exit. Runs an empty loop and then the same loop with
; a CPUID in it (always intercepted), loops=N times each (default 100000),
; reading the TSC around both, and prints the two counts and their difference
; per iteration: the exit round trip with the guest's own loop taken out.
; Under QEMU -icount shift=0 one instruction is one TSC tick, so the figure is
; an instruction count and repeats exactly. Ends with exit code 0.
%include "guest.inc"

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
align 4
loops:	dd 0
t0:	dq 0
empty:	dq 0
full:	dq 0

GUEST_END
