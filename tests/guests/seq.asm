; seq: writes a monotonically increasing sequence across all its RAM, for the
; live-snapshot tests. Value v (1, 2, 3, ...) goes into the first dword of
; page (v mod N) of the N pages from 2 MiB up, one page per value, so every
; page is written again each lap. At any instant slot k holds the largest
; v <= last with v = k (mod N), or 0 before the first lap reached it: an
; image of one instant restores exactly that. delay=D spins D iterations
; between two values (default 0: as fast as the CPU goes, which no disk keeps
; up with). Prints "seq: ready, N pages" at start and "seq: wrapped" once
; every page holds a value. Keys on COM1: 'v' checks every slot against the
; last value (held in a register, so it is the vCPU's own state) and prints
; "seq: ok, last L" or "seq: HOLE ..." / "seq: FUTURE ..." and exits 1;
; 'q' exits 0.
%include "guest.inc"

TEST_START      equ 0x200000
COM1_LSR        equ COM1 + 5
POLL_MASK       equ 255                         ; look at COM1 every 256 values

main:
	mov esi, key_delay
	call get_num
	jnc .have_delay
	xor eax, eax
.have_delay:
	mov [delay], eax
	call ram_end
	sub eax, TEST_START
	shr eax, 12
	cmp eax, 2
	jae .sized
	PRINT "seq: not enough RAM above 2 MiB"
	call newline
	mov eax, 2
	ret
.sized:
	mov [npages], eax
	PRINT "seq: ready, "
	call putdec
	PRINT " pages, delay "
	mov eax, [delay]
	call putdec
	call newline
	xor ebp, ebp                            ; the last value written
	xor esi, esi                            ; its slot: ebp mod npages
.next:
	inc ebp
	inc esi
	cmp esi, [npages]
	jb .slot
	xor esi, esi
.slot:
	mov edi, esi
	shl edi, 12
	mov [edi + TEST_START], ebp
	test esi, esi
	jnz .delay
	cmp byte [wrapped], 0
	jne .delay
	mov byte [wrapped], 1
	PRINT "seq: wrapped"
	call newline
.delay:
	mov ecx, [delay]
.spin:
	test ecx, ecx
	jz .poll
	dec ecx
	jmp .spin
.poll:
	test ebp, POLL_MASK
	jnz .next
	mov dx, COM1_LSR
	in al, dx
	test al, 1
	jz .next
	mov dx, COM1
	in al, dx
	cmp al, 'q'
	je .quit
	cmp al, 'v'
	jne .next
	call check
	jnc .next
	mov eax, 1
	ret
.quit:
	PRINT "seq: bye"
	call newline
	xor eax, eax
	ret

; check: walks back from the slot of the last value (ESI, value EBP): slot
; ESI - j (mod N) must hold EBP - j, or 0 where that is below 1. CF set on a
; mismatch (reported); EBP and ESI kept.
check:
	pushad
	xor ecx, ecx                            ; j
	mov ebx, esi                            ; slot
.step:
	mov eax, ebp
	sub eax, ecx                            ; expected: ebp - j
	cmp ecx, ebp
	jb .expect
	xor eax, eax                            ; j >= ebp: never written
.expect:
	mov edi, ebx
	shl edi, 12
	mov edx, [edi + TEST_START]
	cmp edx, eax
	jne .bad
	test ebx, ebx
	jnz .back
	mov ebx, [npages]
.back:
	dec ebx
	inc ecx
	cmp ecx, [npages]
	jb .step
	PRINT "seq: ok, last "
	mov eax, ebp
	call putdec
	call newline
	popad
	clc
	ret
.bad:
	ja .future
	PRINT "seq: HOLE at page "
	jmp .say
.future:
	PRINT "seq: FUTURE at page "
.say:
	push eax
	mov eax, ebx
	call putdec
	PRINT ": found "
	mov eax, edx
	call putdec
	PRINT ", expected "
	pop eax
	call putdec
	PRINT ", last "
	mov eax, ebp
	call putdec
	call newline
	popad
	stc
	ret

key_delay: db "delay=", 0
align 4
delay:	dd 0
npages:	dd 0
wrapped: db 0

GUEST_END
