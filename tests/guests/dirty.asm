; dirty: writes the pages named on its command line each time a key arrives
; on COM1, for the dirty-tracking tests. pages=A,B,C lists page numbers
; (guest-physical address / 4096, decimal, at most 64). At start it prints
; "dirty: ready, N pages, stack pages S-T" (the pages its own calls may
; write); then each key writes round R into the dword at offset 8 of every
; listed page, after checking that the page still holds round R-1 (a page
; that lost it is "dirty: LOST", exit 1), and prints "dirty: round R wrote N
; pages". 'q' exits 0. Between keys it only polls the UART: no memory writes.
; 'b' is the benchmark of the tracking's cost: it writes one dword in each of
; span=N pages (default 2048) from 4 MiB up, twice, and prints the TSC ticks
; of each pass ("dirty: bench pages=N first=T1 second=T2"); under QEMU
; -icount a tick is an instruction, Amber's own included.
%include "guest.inc"

MAX_PAGES       equ 64
COM1_LSR        equ COM1 + 5
STACK_DEPTH     equ 128                         ; most its calls push
BENCH_START     equ 0x400000

main:
	call parse_pages
	jc .bad
	PRINT "dirty: ready, "
	mov eax, [npages]
	call putdec
	PRINT " pages, stack pages "
	mov eax, stack_top - STACK_DEPTH
	shr eax, 12
	call putdec
	PRINT "-"
	mov eax, stack_top - 4
	shr eax, 12
	call putdec
	call newline
	xor ebp, ebp                            ; rounds done: kept in a register
.wait:
	mov dx, COM1_LSR
	in al, dx
	test al, 1
	jz .wait
	mov dx, COM1
	in al, dx
	cmp al, 'q'
	je .quit
	cmp al, 'b'
	je .bench
	cmp al, ' '
	jb .wait                                ; CR, LF and the like: no round
	xor ecx, ecx
.write:
	cmp ecx, [npages]
	jae .written
	mov edi, [pages + ecx * 4]
	shl edi, 12
	cmp [edi + 8], ebp
	jne .lost
	lea eax, [ebp + 1]
	mov [edi + 8], eax
	inc ecx
	jmp .write
.written:
	inc ebp
	PRINT "dirty: round "
	mov eax, ebp
	call putdec
	PRINT " wrote "
	mov eax, [npages]
	call putdec
	PRINT " pages"
	call newline
	jmp .wait
.lost:
	PRINT "dirty: LOST round "
	mov eax, ebp
	call putdec
	PRINT " of page "
	mov eax, edi
	shr eax, 12
	call putdec
	PRINT ", found "
	mov eax, [edi + 8]
	call putdec
	call newline
	mov eax, 1
	ret
.bench:
	call bench
	jmp .wait
.quit:
	PRINT "dirty: bye"
	call newline
	xor eax, eax
	ret
.bad:
	PRINT "dirty: give pages=A,B,... (page numbers, at most 64)"
	call newline
	mov eax, 2
	ret

; bench: two timed passes over span pages from BENCH_START.
bench:
	pushad
	mov esi, key_span
	call get_num
	jnc .have_span
	mov eax, 2048
.have_span:
	mov ebx, eax
	PRINT "dirty: bench pages="
	call putdec
	PRINT " first="
	call bench_pass
	call putdec
	PRINT " second="
	call bench_pass
	call putdec
	call newline
	popad
	ret

; bench_pass: writes a dword in each of EBX pages from BENCH_START; EAX = the
; TSC ticks it took (EBX kept).
bench_pass:
	push ecx
	push edx
	push edi
	push esi
	rdtsc
	mov esi, eax
	mov edi, BENCH_START
	mov ecx, ebx
.page:
	mov [edi], ecx
	add edi, 4096
	dec ecx
	jnz .page
	rdtsc
	sub eax, esi
	pop esi
	pop edi
	pop edx
	pop ecx
	ret

; parse_pages: fills pages[] and npages from "pages=A,B,..."; CF set when
; absent or malformed.
parse_pages:
	pushad
	mov esi, key_pages
	call get_num                            ; finds the key, parses the first
	jc .fail
	call cmdline
	mov edi, eax
.find:                                          ; EDI: the text after "pages="
	cmp byte [edi], 0
	je .fail
	cmp dword [edi], 'page'
	jne .next
	cmp word [edi + 4], 's='
	je .found
.next:
	inc edi
	jmp .find
.found:
	add edi, 6
	xor ecx, ecx
.number:
	xor eax, eax
	xor edx, edx                            ; digits seen
.digit:
	movzx ebx, byte [edi]
	sub ebx, '0'
	cmp ebx, 9
	ja .end_number
	imul eax, eax, 10
	add eax, ebx
	inc edi
	inc edx
	jmp .digit
.end_number:
	test edx, edx
	jz .fail
	cmp ecx, MAX_PAGES
	jae .fail
	mov [pages + ecx * 4], eax
	inc ecx
	cmp byte [edi], ','
	jne .done
	inc edi
	jmp .number
.done:
	mov [npages], ecx
	popad
	clc
	ret
.fail:
	popad
	stc
	ret

key_pages: db "pages=", 0
key_span: db "span=", 0
align 4
npages:	dd 0
pages:	times MAX_PAGES dd 0

GUEST_END
