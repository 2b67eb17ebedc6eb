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
%include "vmm/guest_regs.inc"

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
	LOAD_GUEST_GPRS rdi
	mov rdi, [rdi + VCPU_RDI]

	vmrun                           ; RAX: the VMCB

	; #VMEXIT: RAX, RSP and RFLAGS are the host's again (RAX = the VMCB).
	vmsave                          ; RAX: the VMCB
	push rdi
	mov rdi, [rsp + 8]
	STORE_GUEST_GPRS rdi
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
