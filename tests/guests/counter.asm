; counter: counts forever and prints "count=N" after every step, a step being a
; busy loop of `every=` iterations (default 50000000). Used to watch pause and
; resume: a resumed counter goes on from the number it had. With `sse=SEED` it
; also fills XMM0-7 with values derived from SEED and checks them at every
; step: two such counters side by side show that each vCPU keeps its own FPU
; state ("counter: XMM registers CORRUPTED" otherwise).
%include "guest.inc"

DEFAULT_EVERY equ 50000000

main:
	mov esi, key_every
	call get_num
	jnc .have
	mov eax, DEFAULT_EVERY
.have:
	test eax, eax
	jnz .nonzero
	inc eax
.nonzero:
	mov [every], eax
	PRINT "counter: counting, a line every "
	call putdec
	PRINT " iterations"
	call newline
	mov esi, key_sse
	call get_num
	jc .step
	call sse_load
.step:
	mov ecx, [every]
.spin:
	dec ecx
	jnz .spin
	cmp byte [sse_on], 0
	je .count
	call sse_check
.count:
	inc dword [count]
	PRINT "count="
	mov eax, [count]
	call putdec
	call newline
	jmp .step

; sse_load: turns SSE on (CR4.OSFXSR, CR0.EM off) and loads XMM0-7 from a
; pattern of 32 dwords derived from the seed in EAX.
sse_load:
	mov ebx, eax
	mov edi, sse_pattern
	mov ecx, 32
.fill:
	imul ebx, ebx, 1103515245
	add ebx, 12345
	mov [edi], ebx
	add edi, 4
	loop .fill
	mov eax, cr0
	and eax, ~(1 << 2)                      ; EM off
	or eax, 1 << 1                          ; MP on
	mov cr0, eax
	mov eax, cr4
	or eax, (1 << 9) | (1 << 10)            ; OSFXSR, OSXMMEXCPT
	mov cr4, eax
	movdqu xmm0, [sse_pattern]
	movdqu xmm1, [sse_pattern + 16]
	movdqu xmm2, [sse_pattern + 32]
	movdqu xmm3, [sse_pattern + 48]
	movdqu xmm4, [sse_pattern + 64]
	movdqu xmm5, [sse_pattern + 80]
	movdqu xmm6, [sse_pattern + 96]
	movdqu xmm7, [sse_pattern + 112]
	mov byte [sse_on], 1
	PRINT "counter: XMM0-7 loaded"
	call newline
	ret

; sse_check: compares XMM0-7 with the pattern; reports a difference loudly.
sse_check:
	movdqu [sse_now], xmm0
	movdqu [sse_now + 16], xmm1
	movdqu [sse_now + 32], xmm2
	movdqu [sse_now + 48], xmm3
	movdqu [sse_now + 64], xmm4
	movdqu [sse_now + 80], xmm5
	movdqu [sse_now + 96], xmm6
	movdqu [sse_now + 112], xmm7
	mov esi, sse_pattern
	mov edi, sse_now
	mov ecx, 32
	repe cmpsd
	je .same
	PRINT "counter: XMM registers CORRUPTED"
	call newline
.same:
	ret

key_every: db "every=", 0
key_sse: db "sse=", 0
sse_on:	db 0
align 16
sse_pattern: times 32 dd 0
sse_now: times 32 dd 0
align 4
; Host-side tests find the variables by this marker (test_snapshot.py reads
; `count` from a core file with gdb): keep `every` and `count` right after it.
vars_marker: db "CTRVARS", 0
every:	dd 0
count:	dd 0

GUEST_END
