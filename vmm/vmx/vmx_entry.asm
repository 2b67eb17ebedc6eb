; VT-x world switch: enters a guest with VMLAUNCH/VMRESUME and comes back here
; (HOST_RIP) on the next VM exit. Host context, interrupts off, the vCPU's VMCS
; current. Offsets into struct vcpu and the HOST_RSP encoding come from C
; (vmm/asm-offsets.c). SDM Vol. 3C 27 "VM Entries", 28.5 "Loading Host State".

%include "asm-offsets.inc"

bits 64
section .text

global vmx_vcpu_enter
global vmx_vmexit_entry

; int vmx_vcpu_enter(struct vcpu *v, int launched)
;
; Saves the callee-saved registers of the System V ABI and the vCPU pointer on
; the host stack, points HOST_RSP there, loads the guest's general registers
; (RSP excepted: it is GUEST_RSP) and enters the guest. Returns 0 after a VM
; exit with the guest's registers stored back into v->regs; 1 when the VMX
; instruction failed with VMfailValid (VM_INSTRUCTION_ERROR says why), 2 with
; VMfailInvalid. A VM exit restores RFLAGS to 0x2 (SDM 28.5.3), so the host
; comes back with interrupts off as it left.
vmx_vcpu_enter:
	push rbp
	mov rbp, rsp
	push rbx
	push r12
	push r13
	push r14
	push r15
	push rdi                        ; the vCPU, at [rsp] again after the exit

	mov rax, VMCS_HOST_RSP
	vmwrite rax, rsp
	jbe .fail                       ; CF or ZF: VMfail

	; Flags for the choice below; the MOVs that follow keep them.
	test esi, esi
	mov rax, [rdi + VCPU_RAX]
	mov rbx, [rdi + VCPU_RBX]
	mov rcx, [rdi + VCPU_RCX]
	mov rdx, [rdi + VCPU_RDX]
	mov rsi, [rdi + VCPU_RSI]
	mov rbp, [rdi + VCPU_RBP]
	mov r8, [rdi + VCPU_R8]
	mov r9, [rdi + VCPU_R9]
	mov r10, [rdi + VCPU_R10]
	mov r11, [rdi + VCPU_R11]
	mov r12, [rdi + VCPU_R12]
	mov r13, [rdi + VCPU_R13]
	mov r14, [rdi + VCPU_R14]
	mov r15, [rdi + VCPU_R15]
	mov rdi, [rdi + VCPU_RDI]
	jnz .resume
	vmlaunch
	jmp .fail
.resume:
	vmresume

	; Still here: the instruction failed, and the guest never ran. Its
	; registers were only loaded; the host's are on the stack.
.fail:
	mov eax, 1                      ; VMfailValid (ZF)
	mov ecx, 2
	cmovc eax, ecx                  ; VMfailInvalid (CF)
	jmp vmx_restore_host

; HOST_RIP. RSP = HOST_RSP, i.e. [rsp] holds the vCPU pointer; every general
; register but RSP is still the guest's.
vmx_vmexit_entry:
	push rdi
	mov rdi, [rsp + 8]
	mov [rdi + VCPU_RAX], rax
	mov [rdi + VCPU_RBX], rbx
	mov [rdi + VCPU_RCX], rcx
	mov [rdi + VCPU_RDX], rdx
	mov [rdi + VCPU_RSI], rsi
	mov [rdi + VCPU_RBP], rbp
	mov [rdi + VCPU_R8], r8
	mov [rdi + VCPU_R9], r9
	mov [rdi + VCPU_R10], r10
	mov [rdi + VCPU_R11], r11
	mov [rdi + VCPU_R12], r12
	mov [rdi + VCPU_R13], r13
	mov [rdi + VCPU_R14], r14
	mov [rdi + VCPU_R15], r15
	pop rax                         ; the guest's RDI
	mov [rdi + VCPU_RDI], rax
	xor eax, eax

vmx_restore_host:
	add rsp, 8                      ; the vCPU pointer
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	pop rbp
	ret

section .note.GNU-stack noalloc noexec nowrite progbits
