; memtest: fills its RAM from 2 MiB up with a pattern derived from each
; address and a seed (seed=N, default 1), then re-verifies all of it forever,
; printing a line per pass with the checksum of what it read. Any word that
; differs is reported loudly ("memtest: CORRUPTION at ..."). The snapshot tests
; rely on it noticing memory that did not survive a save and restore.
%include "guest.inc"

TEST_START equ 0x200000
MAX_REPORTS equ 8

; pattern: EAX = the expected word at address EDI (EDX clobbered).
%macro PATTERN 0
	mov eax, edi
	imul eax, eax, 0x9E3779B1
	xor eax, [seed]
	mov edx, eax
	shr edx, 15
	xor eax, edx
%endmacro

main:
	mov esi, key_seed
	call get_num
	jnc .have_seed
	mov eax, 1
.have_seed:
	mov [seed], eax
	call ram_end
	and eax, ~3
	mov [end], eax
	cmp eax, TEST_START + 4096
	ja .sized
	PRINT "memtest: not enough RAM above 2 MiB to test"
	call newline
	mov eax, 2
	ret
.sized:
	PRINT "memtest: testing "
	mov eax, TEST_START
	call puthex
	PRINT "-"
	mov eax, [end]
	call puthex
	PRINT " ("
	mov eax, [end]
	sub eax, TEST_START
	shr eax, 20
	call putdec
	PRINT " MiB), seed "
	mov eax, [seed]
	call putdec
	call newline

	mov edi, TEST_START
.fill:
	PATTERN
	mov [edi], eax
	add edi, 4
	cmp edi, [end]
	jb .fill
	PRINT "memtest: pattern written"
	call newline

.pass:
	inc dword [pass]
	mov dword [errors], 0
	xor ebp, ebp                            ; checksum of what was read
	mov edi, TEST_START
.verify:
	PATTERN
	mov ebx, [edi]
	add ebp, ebx
	cmp ebx, eax
	jne .corrupt
.verified:
	add edi, 4
	cmp edi, [end]
	jb .verify

	PRINT "memtest: pass "
	mov eax, [pass]
	call putdec
	cmp dword [errors], 0
	jne .failed
	PRINT " ok, checksum "
	mov eax, ebp
	call puthex
	call newline
	jmp .pass
.failed:
	PRINT " FAILED: "
	mov eax, [errors]
	call putdec
	PRINT " corrupted words, checksum "
	mov eax, ebp
	call puthex
	call newline
	jmp .pass

.corrupt:
	inc dword [errors]
	cmp dword [errors], MAX_REPORTS
	ja .verified
	PRINT "memtest: CORRUPTION at "
	push eax
	mov eax, edi
	call puthex
	PRINT ": expected "
	pop eax
	call puthex
	PRINT ", found "
	mov eax, ebx
	call puthex
	call newline
	jmp .verified

key_seed: db "seed=", 0
align 4
seed:	dd 0
end:	dd 0
pass:	dd 0
errors:	dd 0

GUEST_END
