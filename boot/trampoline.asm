; The application processors' way from reset to C. kernel/smp.c copies the
; block trampoline_start..trampoline_end to a page below 1 MiB, fills its data
; fields and sends INIT-SIPI-SIPI; the AP starts here in real mode at CS:IP =
; page:0, turns on protected mode and then long mode on the boot page tables
; (boot/boot.asm: 0-4 GiB 1:1, executable, so the code in this low page may
; run; the kernel's own tables map it no-execute), and jumps to ap_long_entry
; in the kernel's text, which switches to the kernel's page tables and its own
; stack and calls smp_ap_main. One AP runs this at a time.
;
; Intel SDM Vol. 3A 9.4.4 "MP Initialization Example", 10.9 "Mode Switching",
; 10.8.5 "Initializing IA-32e Mode"; MultiProcessor Specification 1.4 B.4
; "Application Processor Startup".

CR0_PE          equ 1 << 0
CR0_WP          equ 1 << 16
CR0_NW          equ 1 << 29
CR0_CD          equ 1 << 30
CR0_PG          equ 1 << 31
CR4_PAE         equ 1 << 5
MSR_EFER        equ 0xC0000080

; Selectors of the trampoline's own GDT (tr_gdt below).
TR_CODE32       equ 0x08
TR_DATA         equ 0x10
TR_CODE64       equ 0x18

%define OFF(label) ((label) - trampoline_start)

extern smp_ap_main
global trampoline_start, trampoline_end, ap_long_entry
global tr_gdtr, tr_pm32_ptr, tr_lm_ptr, tr_boot_cr3, tr_efer, tr_kernel_cr3
global tr_stack_top, tr_cpu_index, tr_hang, tr_alive, tr_gdt, tr_pm32

; The block is only copied from here, never run in place: .rodata.
section .rodata
align 16
bits 16
trampoline_start:
	cli
	cld
	mov ax, cs
	mov ds, ax
	xor ebx, ebx
	mov bx, ax
	shl ebx, 4                      ; EBX = the page's linear address, kept to the end
	cmp dword [OFF(tr_hang)], 0
	jne .park                       ; test hook amber.cpu_hang=N: never signal
	mov dword [OFF(tr_alive)], 1    ; "I ran": the BSP tells a dead CPU from a stuck one

	o32 lgdt [OFF(tr_gdtr)]         ; o32: all 32 bits of the base
	mov eax, cr0
	and eax, ~(CR0_CD | CR0_NW)     ; caches on: INIT leaves CD and NW set
	or eax, CR0_PE
	mov cr0, eax
	o32 jmp far [OFF(tr_pm32_ptr)]  ; to tr_pm32 below, in 32-bit CS

; A CPU held by the test hook waits here until the BSP's INIT takes it back.
.park:
	hlt
	jmp .park

bits 32
tr_pm32:
	mov ax, TR_DATA
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov eax, cr4
	or eax, CR4_PAE
	mov cr4, eax
	mov eax, [ebx + OFF(tr_boot_cr3)]
	mov cr3, eax
	mov ecx, MSR_EFER
	rdmsr
	or eax, [ebx + OFF(tr_efer)]    ; LME, and NXE where the BSP has it
	wrmsr
	mov eax, cr0
	or eax, CR0_PG | CR0_WP
	mov cr0, eax
	jmp far [ebx + OFF(tr_lm_ptr)]  ; to ap_long_entry, 64-bit CS

align 8
tr_gdt:
	dq 0
	dq 0x00CF9A000000FFFF           ; 0x08: 32-bit code
	dq 0x00CF92000000FFFF           ; 0x10: data
	dq 0x00AF9A000000FFFF           ; 0x18: 64-bit code
tr_gdt_end:
; Filled by kernel/smp.c before each start.
align 8
tr_gdtr:
	dw tr_gdt_end - tr_gdt - 1
	dd 0                            ; linear address of tr_gdt in the copy
tr_pm32_ptr:
	dd 0                            ; linear address of .pm32 in the copy
	dw TR_CODE32
tr_lm_ptr:
	dd 0                            ; ap_long_entry
	dw TR_CODE64
align 8
tr_boot_cr3:    dd 0                    ; boot_pml4 (below 4 GiB)
tr_efer:        dd 0
tr_kernel_cr3:  dq 0
tr_stack_top:   dq 0
tr_cpu_index:   dd 0
tr_hang:        dd 0
tr_alive:       dd 0
trampoline_end:

; Entered from the low page in 64-bit mode, still on the boot page tables,
; with RBX's low half holding the page's address. Runs in the kernel's text.
section .text
bits 64
ap_long_entry:
	mov ebx, ebx                    ; the upper half is undefined after compat mode
	mov rax, [rbx + OFF(tr_kernel_cr3)]
	mov cr3, rax
	mov ax, TR_DATA
	mov ds, ax
	mov es, ax
	mov ss, ax
	xor eax, eax
	mov fs, ax
	mov gs, ax
	mov rsp, [rbx + OFF(tr_stack_top)]
	mov edi, [rbx + OFF(tr_cpu_index)]
	xor ebp, ebp                    ; ends the stack walk in panic dumps
	call smp_ap_main
.hang:
	cli
	hlt
	jmp .hang

section .note.GNU-stack noalloc noexec nowrite progbits
