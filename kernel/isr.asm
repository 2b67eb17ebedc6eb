; Exception entry stubs of the host: each pushes its vector (and a zero where
; the CPU pushes no error code), saves the general registers as struct
; trap_frame (kernel/traps.h) and calls trap_handler. Runs on the interrupted
; stack, or on the CPU's IST1-3 for #DF, NMI and #MC. Also the entries of the
; local APIC's vectors (the request doorbell, spurious).

extern trap_handler, smp_ipi_ack
global isr_stub_table, ipi_call_entry, apic_spurious_entry

section .text
bits 64

; SDM Vol. 3A 6.3.1 "External Interrupts" / Table 6-1: vectors 8, 10-14, 17,
; 21, 29 and 30 push an error code; the others get a zero so the frame is uniform.
%assign v 0
%rep 32
isr_%[v]:
%if !(v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30)
	push 0
%endif
	push v
	jmp isr_common
%assign v v + 1
%endrep

isr_common:
	push r15
	push r14
	push r13
	push r12
	push r11
	push r10
	push r9
	push r8
	push rbp
	push rdi
	push rsi
	push rdx
	push rcx
	push rbx
	push rax
	mov rdi, rsp
	cld
	; Align the stack for the C call; the frame pointer chain stays intact.
	mov rbx, rsp
	and rsp, -16
	call trap_handler
	mov rsp, rbx
	pop rax
	pop rbx
	pop rcx
	pop rdx
	pop rsi
	pop rdi
	pop rbp
	pop r8
	pop r9
	pop r10
	pop r11
	pop r12
	pop r13
	pop r14
	pop r15
	add rsp, 16                     ; vector and error code
	iretq

; The cross-CPU request doorbell (kernel/smp.c, SMP_CALL_VECTOR): saves the
; registers a C call may change and acknowledges at the local APIC; the request
; itself runs in the CPU's loop. The CPU aligned RSP to 16 before its 5-word
; frame, so 9 pushes keep the C call aligned.
ipi_call_entry:
	push rax
	push rcx
	push rdx
	push rsi
	push rdi
	push r8
	push r9
	push r10
	push r11
	cld
	call smp_ipi_ack
	pop r11
	pop r10
	pop r9
	pop r8
	pop rdi
	pop rsi
	pop rdx
	pop rcx
	pop rax
	iretq

; The local APIC's spurious vector: no EOI (SDM Vol. 3A 11.9 "Spurious
; Interrupt").
apic_spurious_entry:
	iretq

section .rodata
align 8
isr_stub_table:
%assign v 0
%rep 32
	dq isr_%[v]
%assign v v + 1
%endrep

section .note.GNU-stack noalloc noexec nowrite progbits
