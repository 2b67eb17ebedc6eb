; Amber's entry: the Multiboot 1 and 2 headers, the 32-bit entry point the boot
; loader jumps to, and the switch to 64-bit long mode. Runs once, on the boot CPU,
; with no stack of its own until it sets one up here.
;
; Multiboot Specification 0.6.96 3.1 "OS image format" (header, a.out kludge),
; 3.2 "Machine state"; Multiboot2 Specification 1.0 3.1 "OS image format".
; Intel SDM Vol. 3A 10.8.5 "Initializing IA-32e Mode".

MB1_MAGIC       equ 0x1BADB002
MB1_PAGE_ALIGN  equ 1 << 0            ; modules on 4 KiB boundaries
MB1_MEMINFO     equ 1 << 1            ; mem_* and mmap_* fields wanted
MB1_AOUT_KLUDGE equ 1 << 16           ; address fields valid: lets QEMU load an ELF64
MB1_FLAGS       equ MB1_PAGE_ALIGN | MB1_MEMINFO | MB1_AOUT_KLUDGE

MB2_MAGIC       equ 0xE85250D6
MB2_ARCH_I386   equ 0

CR0_PE          equ 1 << 0
CR0_WP          equ 1 << 16
CR0_NW          equ 1 << 29
CR0_CD          equ 1 << 30
CR0_PG          equ 1 << 31
CR4_PAE         equ 1 << 5
MSR_EFER        equ 0xC0000080
EFER_LME        equ 1 << 8
EFER_NXE        equ 1 << 11
PTE_P           equ 1 << 0
PTE_W           equ 1 << 1
PTE_PS          equ 1 << 7

extern _load_start, _load_end, _bss_start, _bss_end, kmain
global _start32, boot_stack_top, boot_pml4, boot_stack_guard

section .multiboot
align 4
mb1_header:
	dd MB1_MAGIC
	dd MB1_FLAGS
	dd -(MB1_MAGIC + MB1_FLAGS)
	dd mb1_header                   ; header_addr
	dd _load_start                  ; load_addr
	dd _load_end                    ; load_end_addr
	dd _bss_end                     ; bss_end_addr
	dd _start32                     ; entry_addr

align 8
mb2_header:
	dd MB2_MAGIC
	dd MB2_ARCH_I386
	dd mb2_header_end - mb2_header
	dd -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
	; Module alignment tag (type 6): modules on page boundaries.
	align 8
	dw 6, 0
	dd 8
	; End tag.
	align 8
	dw 0, 0
	dd 8
mb2_header_end:

section .boot.text
bits 32
; Entered from the loader: protected mode, paging off, EAX = loader magic,
; EBX = physical address of its information structure.
_start32:
	cli
	cld
	mov edi, eax                    ; keep magic and info for kmain(magic, info)
	mov esi, ebx

	; Zero .bss ourselves: the stack and the boot page tables live there, and
	; not every loader clears it (a warm reboot leaves old contents).
	mov ebx, edi
	mov edx, esi
	mov edi, _bss_start
	mov ecx, _bss_end
	sub ecx, edi
	xor eax, eax
	rep stosb
	mov edi, ebx
	mov esi, edx

	mov esp, boot_stack_top

	; Long mode present? CPUID 8000_0001h EDX bit 29.
	mov eax, 0x80000000
	cpuid
	cmp eax, 0x80000001
	jb .no_long_mode
	mov eax, 0x80000001
	cpuid
	test edx, 1 << 29
	jz .no_long_mode

	; Identity-map the first 4 GiB with 2 MiB pages: enough for the kernel, the
	; loader's structures and the legacy devices until mm_init() builds the
	; kernel's real page tables.
	mov eax, boot_pdpt
	or eax, PTE_P | PTE_W
	mov [boot_pml4], eax
	xor ecx, ecx
.fill_pdpt:
	mov eax, ecx
	shl eax, 12
	add eax, boot_pd
	or eax, PTE_P | PTE_W
	mov [boot_pdpt + ecx * 8], eax
	inc ecx
	cmp ecx, 4
	jb .fill_pdpt
	xor ecx, ecx                    ; 2048 entries of 2 MiB = 4 GiB
.fill_pd:
	mov eax, ecx
	shl eax, 21
	or eax, PTE_P | PTE_W | PTE_PS
	mov [boot_pd + ecx * 8], eax
	mov eax, ecx
	shr eax, 11                     ; bits 32+ of the physical address
	mov [boot_pd + ecx * 8 + 4], eax
	inc ecx
	cmp ecx, 2048
	jb .fill_pd

	mov eax, cr4
	or eax, CR4_PAE
	mov cr4, eax
	mov eax, boot_pml4
	mov cr3, eax
	; NXE only where the CPU has NX (CPUID 8000_0001h EDX bit 20).
	mov eax, 0x80000001
	cpuid
	mov ebx, EFER_LME
	test edx, 1 << 20
	jz .no_nx
	or ebx, EFER_NXE
.no_nx:
	mov ecx, MSR_EFER
	rdmsr
	or eax, ebx
	wrmsr
	; Caches on: some firmware (the Bochs BIOS) hands over with CR0.CD and NW
	; set, and VMX entry never loads those two bits, so guests would inherit them.
	mov eax, cr0
	and eax, ~(CR0_CD | CR0_NW)
	or eax, CR0_PE | CR0_PG | CR0_WP
	mov cr0, eax

	lgdt [boot_gdt_ptr]
	jmp 0x08:long_entry

.no_long_mode:
	; No 64-bit CPU: say so on COM1 and the VGA screen, then stop.
	mov esi, no_lm_msg
	mov edi, 0xB8000
.msg:
	lodsb
	test al, al
	jz .halt
	mov dx, 0x3F8
	out dx, al
	mov ah, 0x4F
	stosw
	jmp .msg
.halt:
	hlt
	jmp .halt

bits 64
long_entry:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	xor ax, ax
	mov fs, ax
	mov gs, ax
	mov rsp, boot_stack_top
	mov edi, edi                    ; zero-extend magic and info pointer
	mov esi, esi
	xor ebp, ebp                    ; ends the stack walk in panic dumps
	call kmain
.hang:
	cli
	hlt
	jmp .hang

section .rodata
no_lm_msg: db "Amber: this CPU has no 64-bit long mode; stopping.", 0

align 8
boot_gdt:
	dq 0
	dq 0x00AF9A000000FFFF           ; 0x08: 64-bit code, DPL 0
	dq 0x00CF92000000FFFF           ; 0x10: data, DPL 0
boot_gdt_end:
boot_gdt_ptr:
	dw boot_gdt_end - boot_gdt - 1
	dd boot_gdt

section .bss
align 4096
boot_pml4: resb 4096
boot_pdpt: resb 4096
boot_pd: resb 4096 * 4
boot_stack_guard: resb 4096             ; left unmapped by kernel/paging.c
boot_stack: resb 16384
boot_stack_top:

section .note.GNU-stack noalloc noexec nowrite progbits
