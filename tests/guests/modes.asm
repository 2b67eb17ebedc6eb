; modes: walks through the CPU modes and control bits a hypervisor must get
; right, and checks what it reads back: CR0.NE and CR0.CD (bits a VT-x host
; keeps for itself and shows through a read shadow), PAE paging switched on by
; one MOV to CR0, long mode through EFER.LME, CR8, and the upper general
; registers across exits. Prints a line per step; exit code 0 when every check
; held, else the number of the first one that failed.
%include "guest.inc"

PML4            equ 0x300000                    ; 4-level tables, 4 KiB each
PDPT            equ 0x301000
PD              equ 0x302000                    ; 512 x 2 MiB: the first GiB
PAE_PDPT        equ 0x303000                    ; PAE: four 8-byte entries
CR0_NE          equ 1 << 5
CR0_CD          equ 1 << 30
CR0_PG          equ 1 << 31
CR4_PAE         equ 1 << 5
MSR_EFER        equ 0xC0000080
EFER_LME        equ 1 << 8
EFER_LMA        equ 1 << 10
PTE_P_W         equ 0x3
PTE_P_W_PS      equ 0x83
MARKER          equ 0x5AFEC0DE

; FAIL_IF cc, n: exit with code n when condition cc holds (32-bit code);
; FAIL64_IF the same in 64-bit code, where the 32-bit helpers cannot run.
%macro FAIL_IF 2
	j%-1 %%ok
	mov al, %2
	jmp fail
%%ok:
%endmacro
%macro FAIL64_IF 2
	j%-1 %%ok
	mov al, %2
	jmp fail64
%%ok:
%endmacro

main:
	PRINT "modes: start"
	call newline

	; 1, 2: CR0.NE reads back as written, set and clear.
	mov eax, cr0
	or eax, CR0_NE
	mov cr0, eax
	mov eax, cr0
	test eax, CR0_NE
	FAIL_IF z, 1
	and eax, ~CR0_NE
	mov cr0, eax
	mov eax, cr0
	test eax, CR0_NE
	FAIL_IF nz, 2

	; 3, 4: CR0.CD likewise (caching off, then on again).
	mov eax, cr0
	or eax, CR0_CD
	mov cr0, eax
	mov eax, cr0
	test eax, CR0_CD
	FAIL_IF z, 3
	and eax, ~CR0_CD
	mov cr0, eax
	mov eax, cr0
	test eax, CR0_CD
	FAIL_IF nz, 4
	PRINT "modes: CR0.NE and CR0.CD read back as written"
	call newline

	; Identity map of the first GiB with 2 MiB pages, shared by PAE and
	; 4-level paging (their page directories have one format).
	mov edi, PD
	mov eax, PTE_P_W_PS
	mov ecx, 512
.fill_pd:
	mov [edi], eax
	mov dword [edi + 4], 0
	add eax, 0x200000
	add edi, 8
	loop .fill_pd
	mov dword [marker], MARKER

	; 5: PAE paging, enabled together with CR0.NE in one MOV (on VT-x that
	; write exits, and the hypervisor must load the PDPTEs itself).
	mov dword [PAE_PDPT], PD | 1
	mov dword [PAE_PDPT + 4], 0
	mov eax, cr4
	or eax, CR4_PAE
	mov cr4, eax
	mov eax, PAE_PDPT
	mov cr3, eax
	mov eax, cr0
	or eax, CR0_PG | CR0_NE
	mov cr0, eax
	cmp dword [marker], MARKER
	FAIL_IF ne, 5
	PRINT "modes: PAE paging on"
	call newline
	mov eax, cr0
	and eax, ~CR0_PG
	mov cr0, eax

	; Long mode: EFER.LME (an MSR exit), then CR0.PG with 4-level tables.
	mov dword [PML4], PDPT | PTE_P_W
	mov dword [PML4 + 4], 0
	mov dword [PDPT], PD | PTE_P_W
	mov dword [PDPT + 4], 0
	mov eax, PML4
	mov cr3, eax
	mov ecx, MSR_EFER
	rdmsr
	or eax, EFER_LME
	wrmsr
	mov eax, cr0
	or eax, CR0_PG
	mov cr0, eax
	lgdt [gdt64_desc]
	jmp 0x18:long_mode

fail:
	push eax
	PRINT "modes: check "
	movzx eax, al
	call putdec
	PRINT " failed"
	call newline
	pop eax
	jmp exit

bits 64
long_mode:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax

	; 6: EFER.LMA is set, as RDMSR reports it.
	mov ecx, MSR_EFER
	rdmsr
	test eax, EFER_LMA
	FAIL64_IF z, 6

	; 7: CR8 (the TPR) holds what was written.
	mov eax, 9
	mov cr8, rax
	xor eax, eax
	mov rax, cr8
	cmp rax, 9
	FAIL64_IF ne, 7
	xor eax, eax
	mov cr8, rax

	; 8: R8-R15 and the upper halves survive an exit (CPUID always exits).
	mov r8, 0x0808080808080808
	mov r9, 0x0909090909090909
	mov r10, 0x1010101010101010
	mov r11, 0x1111111111111111
	mov r12, 0x1212121212121212
	mov r13, 0x1313131313131313
	mov r14, 0x1414141414141414
	mov r15, 0x1515151515151515
	mov rbp, 0xBBBBBBBB00000000
	xor eax, eax
	cpuid
	mov rax, 0x0808080808080808
	cmp r8, rax
	FAIL64_IF ne, 8
	mov rax, 0x1515151515151515
	cmp r15, rax
	FAIL64_IF ne, 8
	mov rax, 0xBBBBBBBB00000000
	cmp rbp, rax
	FAIL64_IF ne, 8
	lea rsi, [rel long_msg]
	call puts64
	xor eax, eax
	jmp exit

fail64:
	mov bl, al
	lea rsi, [rel fail64_msg]
	call puts64
	mov al, bl
	add al, '0'
	mov dx, COM1
	out dx, al
	mov al, 10
	out dx, al
	mov al, bl
	jmp exit

; puts64: the NUL-terminated string at RSI, straight to COM1.
puts64:
	mov dx, COM1
.next:
	lodsb
	test al, al
	jz .done
	out dx, al
	jmp .next
.done:
	ret

bits 32
long_msg: db "modes: long mode, CR8 and R8-R15 ok", 10, 0
fail64_msg: db "modes: check failed in long mode: ", 0

align 8
gdt64:
	dq 0
	dq 0x00CF9B000000FFFF                   ; 0x08: 32-bit code
	dq 0x00CF93000000FFFF                   ; 0x10: data
	dq 0x00AF9B000000FFFF                   ; 0x18: 64-bit code
gdt64_desc:
	dw gdt64_desc - gdt64 - 1
	dd gdt64
marker: dd 0

GUEST_END
