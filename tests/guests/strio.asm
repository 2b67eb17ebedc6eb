; strio: string I/O (INS/OUTS, REP or not) through Amber's port dispatch, in
; 32-bit protected mode and then in 64-bit mode: lines written with REP OUTSB
; and OUTSW to COM1, forward and backward (DF=1); bytes sent and read back
; with REP INSB/INSW through the UART's loopback mode (PC16550D 8.5 "Modem
; Control Register", bit 4); OUTSD/INSD on the PCI configuration ports; 16-bit
; addressing in 32-bit code, 16-bit protected mode with segment bases, and
; 32-bit addressing and an FS override in 64-bit code; counts larger than one exit's batch. After each instruction
; it checks rSI/rDI/rCX and the memory around the buffer. Prints a line per
; step; exit code 0 when every check held, else the number of the first one
; that failed. It also passes on QEMU TCG without Amber (-kernel), which is
; how its expectations were checked against a CPU model.
%include "guest.inc"

PML4            equ 0x300000                    ; 4-level tables, 4 KiB each
PDPT            equ 0x301000
PD              equ 0x302000                    ; 512 x 2 MiB: the first GiB
BIG             equ 0x200ffc                    ; big buffer, crossing pages
BIG_COUNT       equ 3000                        ; dwords: several exits' batches
LOOP_BUF        equ 0x210000                    ; loopback receive buffer
LOW_BUF         equ 0x7000                      ; below 64 KiB for 16-bit addressing
FS_BASE_VAL     equ 0x220000
MSR_EFER        equ 0xC0000080
MSR_FS_BASE     equ 0xC0000100
EFER_LME        equ 1 << 8
CR0_PG          equ 1 << 31
CR4_PAE         equ 1 << 5
UART_MCR        equ COM1 + 4
UART_SCR        equ COM1 + 7
MCR_LOOP        equ 0x10
PCI_ADDR        equ 0xCF8
PCI_DATA        equ 0xCFC
PCI_ABSENT      equ 0x8000F800                  ; bus 0, device 31, function 0
GUARD           equ 0xCC
DS16_BASE       equ 0x230000                    ; bases of the 16-bit data segments
ES16_BASE       equ 0x240000

; SEG16 base, access: a byte-granular 64 KiB segment descriptor, D=0
; (SDM Vol. 3A 3.4.5 "Segment Descriptors").
%macro SEG16 2
	dw 0xFFFF
	dw (%1) & 0xFFFF
	db ((%1) >> 16) & 0xFF
	db %2
	db 0x00
	db ((%1) >> 24) & 0xFF
%endmacro

%macro FAIL_IF 2                                ; cc, check number (32-bit code)
	j%-1 %%ok
	mov al, %2
	jmp fail
%%ok:
%endmacro
%macro FAIL64_IF 2                              ; the same in 64-bit code
	j%-1 %%ok
	mov al, %2
	jmp fail64
%%ok:
%endmacro

; REVSTR "text": the bytes of text in reverse order.
%macro REVSTR 1
%strlen %%len %1
%assign %%i %%len
%rep %%len
%substr %%c %1 %%i
	db %%c
%assign %%i %%i - 1
%endrep
%endmacro

; WSTR "text": each character of text as a 16-bit word (high byte zero).
%macro WSTR 1
%strlen %%len %1
%assign %%i 1
%rep %%len
%substr %%c %1 %%i
	dw %%c
%assign %%i %%i + 1
%endrep
%endmacro

main:
	PRINT "strio: start"
	call newline

	; 1-2: REP OUTSB forward prints a line; ESI past it, ECX zero.
	mov esi, fwd_msg
	mov ecx, fwd_len
	mov dx, COM1
	cld
	rep outsb
	cmp esi, fwd_msg + fwd_len
	FAIL_IF ne, 1
	test ecx, ecx
	FAIL_IF nz, 2

	; 3-4: REP OUTSB backward (DF=1) from the last byte of a reversed line.
	mov esi, bwd_msg + bwd_len - 1
	mov ecx, bwd_len
	std
	rep outsb
	cld
	cmp esi, bwd_msg - 1
	FAIL_IF ne, 3
	test ecx, ecx
	FAIL_IF nz, 4

	; 5: REP OUTSW: each word's low byte is a character.
	mov esi, w_msg
	mov ecx, w_count
	rep outsw
	cmp esi, w_msg + 2 * w_count
	FAIL_IF ne, 5

	; 6-7: OUTSB without REP sends one byte and leaves ECX alone.
	mov esi, one_byte
	mov ecx, 0x12345
	outsb
	cmp ecx, 0x12345
	FAIL_IF ne, 6
	cmp esi, one_byte + 1
	FAIL_IF ne, 7

	; 8-13: loopback, forward out and forward in, then forward out and
	; backward in (the bytes land reversed), guards untouched.
	call loop_on
	mov edi, LOOP_BUF - 1
	mov ecx, 18
	mov al, GUARD
	rep stosb
	mov esi, pattern
	mov ecx, 16
	mov dx, COM1
	rep outsb
	mov edi, LOOP_BUF
	mov ecx, 16
	rep insb
	cmp edi, LOOP_BUF + 16
	FAIL_IF ne, 8
	mov esi, pattern
	mov edi, LOOP_BUF
	mov ecx, 16
	repe cmpsb
	FAIL_IF ne, 9
	mov esi, pattern
	mov ecx, 16
	rep outsb
	mov edi, LOOP_BUF + 15
	mov ecx, 16
	std
	rep insb
	cld
	cmp edi, LOOP_BUF - 1
	FAIL_IF ne, 10
	call check_reversed
	FAIL_IF ne, 11
	cmp byte [LOOP_BUF - 1], GUARD
	FAIL_IF ne, 12
	cmp byte [LOOP_BUF + 16], GUARD
	FAIL_IF ne, 13

	; 14-15: REP INSW from the loopback: each word is the byte received,
	; zero-extended (a 16-bit read of the UART reads RBR and IER, which is 0).
	mov esi, pattern
	mov ecx, 4
	rep outsb
	mov edi, LOOP_BUF
	mov ecx, 4
	rep insw
	cmp dword [LOOP_BUF], 0x00420041
	FAIL_IF ne, 14
	cmp dword [LOOP_BUF + 4], 0x00440043
	FAIL_IF ne, 15
	call loop_off
	PRINT "strio: loopback insb/insw forward and backward ok"
	call newline

	; 16-17: 16-bit addressing in 32-bit code: SI and CX count, the upper
	; halves of ESI and ECX stay.
	mov esi, a16_msg
	mov edi, LOW_BUF
	mov ecx, a16_len
	rep movsb
	mov esi, 0xABCD0000 + LOW_BUF
	mov ecx, 0x5A5A0000 + a16_len
	mov dx, COM1
	a16 rep outsb
	cmp esi, 0xABCD0000 + LOW_BUF + a16_len
	FAIL_IF ne, 16
	cmp ecx, 0x5A5A0000
	FAIL_IF ne, 17

	; 18-19: OUTSD to the PCI address port: the last dword written stays,
	; the third going forward, the first going backward.
	mov esi, dwords
	mov ecx, 3
	mov dx, PCI_ADDR
	rep outsd
	in eax, dx
	cmp eax, [dwords + 8]
	FAIL_IF ne, 18
	mov esi, dwords + 8
	mov ecx, 3
	std
	rep outsd
	cld
	in eax, dx
	cmp eax, [dwords]
	FAIL_IF ne, 19

	; 20-23: REP INSD of BIG_COUNT dwords from an absent PCI function (all
	; ones) across page boundaries: more than one exit's batch.
	mov eax, PCI_ABSENT
	mov dx, PCI_ADDR
	out dx, eax
	mov edi, BIG - 4
	mov ecx, BIG_COUNT + 2
	xor eax, eax
	rep stosd
	mov edi, BIG
	mov ecx, BIG_COUNT
	mov dx, PCI_DATA
	rep insd
	cmp edi, BIG + 4 * BIG_COUNT
	FAIL_IF ne, 20
	test ecx, ecx
	FAIL_IF nz, 21
	mov edi, BIG
	mov ecx, BIG_COUNT
	mov eax, 0xFFFFFFFF
	repe scasd
	FAIL_IF ne, 22
	cmp dword [BIG - 4], 0
	FAIL_IF ne, 23
	cmp dword [BIG + 4 * BIG_COUNT], 0
	FAIL_IF ne, 23

	; 24-25: REP OUTSB of 5000 bytes to the scratch register: the last byte
	; written stays there.
	mov edi, BIG
	mov ecx, 5000
	mov al, 0x11
	rep stosb
	mov byte [BIG + 4999], 0x5A
	mov esi, BIG
	mov ecx, 5000
	mov dx, UART_SCR
	rep outsb
	in al, dx
	cmp al, 0x5A
	FAIL_IF ne, 24
	cmp esi, BIG + 5000
	FAIL_IF ne, 25
	PRINT "strio: 32-bit outsd/insd, a16 and long counts ok"
	call newline

	; 40-44: 16-bit protected mode (CS.D=0), where DS and ES have bases of
	; their own: OUTSB from DS:SI, INSB through the loopback to ES:DI.
	mov esi, m16_msg
	mov edi, DS16_BASE
	mov ecx, m16_len
	rep movsb
	mov esi, pattern
	mov edi, DS16_BASE + 0x100
	mov ecx, 16
	rep movsb
	mov edi, ES16_BASE
	mov ecx, 0x40
	mov al, GUARD
	rep stosb
	call loop_off
	lgdt [gdt64_desc]
	jmp 0x20:0                              ; code16, offset 0
back32:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	call loop_off
	cmp esi, 0x12340000 + 0x100 + 16        ; upper half of ESI kept
	FAIL_IF ne, 40
	cmp edi, 0x56780000 + 0x10 + 16
	FAIL_IF ne, 41
	mov esi, pattern
	mov edi, ES16_BASE + 0x10
	mov ecx, 16
	repe cmpsb
	FAIL_IF ne, 42
	cmp byte [ES16_BASE + 0x0F], GUARD
	FAIL_IF ne, 43
	cmp byte [ES16_BASE + 0x20], GUARD
	FAIL_IF ne, 43
	cmp ebx, 1                              ; the 16-bit code's own checks
	FAIL_IF ne, 44
	PRINT "strio: 16-bit protected mode outsb/insb ok"
	call newline

	; 64-bit mode: identity map of the first GiB with 2 MiB pages.
	mov edi, PD
	mov eax, 0x83
	mov ecx, 512
.fill_pd:
	mov [edi], eax
	mov dword [edi + 4], 0
	add eax, 0x200000
	add edi, 8
	loop .fill_pd
	mov dword [PML4], PDPT | 3
	mov dword [PML4 + 4], 0
	mov dword [PDPT], PD | 3
	mov dword [PDPT + 4], 0
	mov eax, cr4
	or eax, CR4_PAE
	mov cr4, eax
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

loop_on:
	push eax
	push edx
	mov dx, UART_MCR
	mov al, MCR_LOOP
	out dx, al
	pop edx
	pop eax
	ret

loop_off:
	push eax
	push edx
	mov dx, UART_MCR
	xor al, al
	out dx, al
	pop edx
	pop eax
	ret

; check_reversed: ZF set when LOOP_BUF holds pattern in reverse order.
check_reversed:
	push ecx
	push edx
	xor ecx, ecx
.cmp:
	mov edx, 15
	sub edx, ecx
	mov al, [pattern + ecx]
	cmp al, [LOOP_BUF + edx]
	jne .out
	inc ecx
	cmp ecx, 16
	jb .cmp
	xor eax, eax                            ; ZF: all equal
.out:
	pop edx
	pop ecx
	ret

; The 16-bit code segment (selector 0x20, base code16): prints m16_msg from
; DS:0 (DS base DS16_BASE), then sends pattern (DS:0x100) through the UART
; loopback and reads it into ES:0x10 (ES base ES16_BASE). EBX = 1 when SI and
; CX ended as they should; no stack is used.
bits 16
code16:
	mov ax, 0x28
	mov ds, ax
	mov ax, 0x30
	mov es, ax
	xor ebx, ebx
	mov esi, 0x12340000
	mov ecx, m16_len
	mov dx, COM1
	rep outsb
	cmp si, m16_len
	jne .back
	mov dx, UART_MCR
	mov al, MCR_LOOP
	out dx, al
	mov dx, COM1
	mov esi, 0x12340000 + 0x100
	mov cx, 16
	rep outsb
	mov edi, 0x56780000 + 0x10
	mov cx, 16
	rep insb
	test cx, cx
	jnz .back
	mov bl, 1
.back:
	jmp dword 0x08:back32
bits 32

fail:
	push eax
	PRINT "strio: check "
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

	; 30-31: REP OUTSB forward and backward with 64-bit registers.
	mov rsi, fwd64_msg
	mov rcx, fwd64_len
	mov dx, COM1
	rep outsb
	mov rax, fwd64_msg + fwd64_len
	cmp rsi, rax
	FAIL64_IF ne, 30
	mov rsi, bwd64_msg + bwd64_len - 1
	mov rcx, bwd64_len
	std
	rep outsb
	cld
	mov rax, bwd64_msg - 1
	cmp rsi, rax
	FAIL64_IF ne, 31
	test rcx, rcx
	FAIL64_IF nz, 31

	; 32-34: loopback in 64-bit mode: OUTSB backward, INSB forward (the
	; bytes land reversed), then OUTSB forward, INSB backward (reversed too).
	mov dx, UART_MCR
	mov al, MCR_LOOP
	out dx, al
	mov dx, COM1
	mov rsi, pattern + 15
	mov rcx, 16
	std
	rep outsb
	cld
	mov rdi, LOOP_BUF
	mov rcx, 16
	rep insb
	mov rax, LOOP_BUF + 16
	cmp rdi, rax
	FAIL64_IF ne, 32
	call check_reversed64
	FAIL64_IF ne, 33
	mov rsi, pattern
	mov rcx, 16
	rep outsb
	mov rdi, LOOP_BUF + 15
	mov rcx, 16
	std
	rep insb
	cld
	call check_reversed64
	FAIL64_IF ne, 34
	mov dx, UART_MCR
	xor al, al
	out dx, al

	; 35-36: 32-bit addressing in 64-bit mode: ESI and ECX are used, and
	; writing them clears the upper halves of RSI and RCX.
	mov rsi, 0xFFFFFFFF00000000 + fwd32_msg
	mov rcx, 0xFFFFFFFF00000000 + fwd32_len
	mov dx, COM1
	a32 rep outsb
	mov rax, fwd32_msg + fwd32_len
	cmp rsi, rax
	FAIL64_IF ne, 35
	test rcx, rcx
	FAIL64_IF nz, 36

	; 37: an FS override: the string is at FS base + RSI.
	mov rsi, fs_msg
	mov rdi, FS_BASE_VAL
	mov rcx, fs_len
	rep movsb
	mov ecx, MSR_FS_BASE
	mov eax, FS_BASE_VAL
	xor edx, edx
	wrmsr
	xor esi, esi
	mov rcx, fs_len
	mov dx, COM1
	fs rep outsb
	cmp rsi, fs_len
	FAIL64_IF ne, 37

	xor eax, eax
	jmp exit

fail64:
	mov bl, al
	mov rsi, fail64_msg
	mov rcx, fail64_len
	mov dx, COM1
.out:
	mov al, [rsi]
	out dx, al
	inc rsi
	loop .out
	movzx eax, bl
	mov cl, 10
	div cl                                  ; AL tens, AH units
	add ax, '00'
	out dx, al
	mov al, ah
	out dx, al
	mov al, 10
	out dx, al
	mov al, bl
	jmp exit

; check_reversed64: ZF set when LOOP_BUF holds pattern in reverse order.
check_reversed64:
	push rcx
	push rdx
	xor ecx, ecx
.cmp:
	mov edx, 15
	sub edx, ecx
	mov al, [pattern + rcx]
	cmp al, [LOOP_BUF + rdx]
	jne .out
	inc ecx
	cmp ecx, 16
	jb .cmp
	xor eax, eax                            ; ZF: all equal
.out:
	pop rdx
	pop rcx
	ret

bits 32
fwd_msg:	db "strio: fwd outsb ok", 10
fwd_len		equ $ - fwd_msg
bwd_msg:	db 10
	REVSTR "strio: bwd outsb ok"
bwd_len		equ $ - bwd_msg
a16_msg:	db "strio: a16 outsb ok", 10
a16_len		equ $ - a16_msg
w_msg:		WSTR "strio: outsw ok"
	dw 10
w_count		equ ($ - w_msg) / 2
one_byte:	db 10
pattern:	db "ABCDEFGHIJKLMNOP"
align 4
dwords:		dd 0x80000010, 0x80000020, 0x80000030
fwd64_msg:	db "strio: 64-bit fwd outsb ok", 10
fwd64_len	equ $ - fwd64_msg
bwd64_msg:	db 10
	REVSTR "strio: 64-bit bwd outsb ok"
bwd64_len	equ $ - bwd64_msg
fwd32_msg:	db "strio: 64-bit a32 outsb ok", 10
fwd32_len	equ $ - fwd32_msg
m16_msg:	db "strio: 16-bit outsb from DS:SI ok", 10
m16_len		equ $ - m16_msg
fs_msg:		db "strio: 64-bit fs outsb ok", 10
fs_len		equ $ - fs_msg
fail64_msg:	db "strio: check failed in long mode: "
fail64_len	equ $ - fail64_msg

align 8
gdt64:
	dq 0
	dq 0x00CF9B000000FFFF                   ; 0x08: 32-bit code
	dq 0x00CF93000000FFFF                   ; 0x10: data
	dq 0x00AF9B000000FFFF                   ; 0x18: 64-bit code
	SEG16 0x100000 + (code16 - $$), 0x9B    ; 0x20: 16-bit code
	SEG16 DS16_BASE, 0x93                   ; 0x28: 16-bit data (DS)
	SEG16 ES16_BASE, 0x93                   ; 0x30: 16-bit data (ES)
gdt64_desc:
	dw gdt64_desc - gdt64 - 1
	dd gdt64

GUEST_END
