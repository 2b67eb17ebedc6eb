; VT-x world switch: enters a guest with VMLAUNCH/VMRESUME and comes back here
; (HOST_RIP) on the next VM exit. Host context, interrupts off, the vCPU's VMCS
; current. Offsets into struct vcpu and the HOST_RSP encoding come from C
; (vmm/asm-offsets.c). SDM Vol. 3C 27 "VM Entries", 28.5 "Loading Host State".

%include "asm-offsets.inc"
%include "vmm/guest_regs.inc"

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
	LOAD_GUEST_GPRS rdi
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
	STORE_GUEST_GPRS rdi
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
