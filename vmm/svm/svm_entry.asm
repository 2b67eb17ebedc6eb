; The AMD-V world switch: loads the guest's general registers from struct vcpu,
; runs it with VMRUN, and stores them back after the #VMEXIT. RAX and RSP are
; not handled here: VMRUN loads and #VMEXIT saves them through the VMCB.
; Host context, boot CPU, entered with interrupts off and GIF set.
;
; Interrupts (APM Vol. 2 15.17 "Global Interrupt Flag, STGI and CLGI", 15.21.1
; "Virtual Interrupt Masking"): CLGI holds every interrupt while the host sets
; IF=1 for the guest's sake; with V_INTR_MASKING and the INTR intercept the host
; timer then ends guest mode (#VMEXIT restores the host's IF=1 with GIF=0). STGI
; lets the pending interrupt in at the one point where the host is ready for it;
; CLI closes the window again.
;
; VMLOAD/VMSAVE (15.5.2 "VMSAVE and VMLOAD Instructions") switch the state
; VMRUN leaves alone: FS, GS, TR, LDTR and their hidden parts, KernelGsBase,
; STAR/LSTAR/CSTAR/SFMASK and SYSENTER_*. The host's copy was saved once at
; bring-up and is reloaded after every exit, so the host's TSS (IST stacks)
; is back before any host interrupt or exception can need it.

%include "asm-offsets.inc"

global svm_vmrun

section .text
bits 64
; void svm_vmrun(struct vcpu *v, u64 vmcb_pa, u64 host_save_pa)
svm_vmrun:
	push rbp
	mov rbp, rsp
	push rbx
	push r12
	push r13
	push r14
	push r15
	push rdx                        ; [rsp + 8]: host save area
	push rdi                        ; [rsp]: the vCPU

	mov rax, rsi                    ; VMLOAD/VMRUN/VMSAVE take the VMCB in RAX
	clgi
	sti
	vmload                          ; RAX: the VMCB
	mov rcx, [rdi + VCPU_RCX]
	mov rdx, [rdi + VCPU_RDX]
	mov rbx, [rdi + VCPU_RBX]
	mov rbp, [rdi + VCPU_RBP]
	mov rsi, [rdi + VCPU_RSI]
	mov r8, [rdi + VCPU_R8]
	mov r9, [rdi + VCPU_R9]
	mov r10, [rdi + VCPU_R10]
	mov r11, [rdi + VCPU_R11]
	mov r12, [rdi + VCPU_R12]
	mov r13, [rdi + VCPU_R13]
	mov r14, [rdi + VCPU_R14]
	mov r15, [rdi + VCPU_R15]
	mov rdi, [rdi + VCPU_RDI]

	vmrun                           ; RAX: the VMCB

	; #VMEXIT: RAX, RSP and RFLAGS are the host's again (RAX = the VMCB).
	vmsave                          ; RAX: the VMCB
	push rdi
	mov rdi, [rsp + 8]
	mov [rdi + VCPU_RCX], rcx
	mov [rdi + VCPU_RDX], rdx
	mov [rdi + VCPU_RBX], rbx
	mov [rdi + VCPU_RBP], rbp
	mov [rdi + VCPU_RSI], rsi
	mov [rdi + VCPU_R8], r8
	mov [rdi + VCPU_R9], r9
	mov [rdi + VCPU_R10], r10
	mov [rdi + VCPU_R11], r11
	mov [rdi + VCPU_R12], r12
	mov [rdi + VCPU_R13], r13
	mov [rdi + VCPU_R14], r14
	mov [rdi + VCPU_R15], r15
	pop rax
	mov [rdi + VCPU_RDI], rax

	mov rax, [rsp + 8]
	vmload                          ; the host's FS/GS/TR/LDTR/syscall MSRs
	stgi                            ; a pending host interrupt is taken here
	cli

	add rsp, 16
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	pop rbp
	ret

section .note.GNU-stack noalloc noexec nowrite progbits
