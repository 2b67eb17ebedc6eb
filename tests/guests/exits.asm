; exits: performs a known number of intercepted instructions and ends, so a
; test can compare `vm info` exit counts with what the guest did:
; cpuid=N CPUIDs (default 1000), rdmsr=N reads of EFER (default 7) and out=N
; writes to the POST port 0x80 (default 500), then exit code 0.
; With the word `hidden` it checks instead that what CPUID hides cannot run:
; RDTSCP, MONITOR and MWAIT raise #UD (SDM Vol. 2B "RDTSCP": #UD "If
; CPUID.80000001H:EDX.RDTSCP[bit 27] = 0"; "MONITOR", "MWAIT": #UD if
; CPUID.01H:ECX.MONITOR[bit 3] = 0).
%include "guest.inc"
%include "intr.inc"

main:
	mov esi, word_hidden
	call has_word
	test eax, eax
	jnz hidden
	mov esi, key_cpuid
	call get_num
	jnc .c
	mov eax, 1000
.c:	mov [n_cpuid], eax
	mov esi, key_rdmsr
	call get_num
	jnc .r
	mov eax, 7
.r:	mov [n_rdmsr], eax
	mov esi, key_out
	call get_num
	jnc .o
	mov eax, 500
.o:	mov [n_out], eax

	mov edi, [n_cpuid]
	test edi, edi
	jz .cpuid_done
.cpuid:
	xor eax, eax
	cpuid
	dec edi
	jnz .cpuid
.cpuid_done:
	mov edi, [n_rdmsr]
	test edi, edi
	jz .rdmsr_done
.rdmsr:
	mov ecx, 0xC0000080
	rdmsr
	dec edi
	jnz .rdmsr
.rdmsr_done:
	mov edi, [n_out]
	test edi, edi
	jz .out_done
.out:
	mov al, 0x42
	out 0x80, al
	dec edi
	jnz .out
.out_done:
	PRINT "exits: did "
	mov eax, [n_cpuid]
	call putdec
	PRINT " cpuid, "
	mov eax, [n_rdmsr]
	call putdec
	PRINT " rdmsr, "
	mov eax, [n_out]
	call putdec
	PRINT " out"
	call newline
	xor eax, eax
	ret

; hidden: each instruction CPUID hides once, under a #UD handler that counts
; and steps over the 3-byte instruction.
hidden:
	mov eax, 0x80000001
	cpuid
	test edx, 1 << 27
	jnz .offered
	mov eax, 1
	cpuid
	test ecx, 1 << 3
	jnz .offered
	mov eax, 6
	mov edx, on_ud
	call set_gate
	lidt [idt_desc]
	rdtscp
	cmp dword [uds], 1
	jne .ran
	xor eax, eax
	xor ecx, ecx
	xor edx, edx
	monitor
	mwait
	cmp dword [uds], 3
	jne .ran
	PRINT "exits: RDTSCP, MONITOR and MWAIT raise #UD, as CPUID says"
	call newline
	xor eax, eax
	ret
.offered:
	PRINT "exits: FAILED: CPUID offers RDTSCP or MONITOR"
	jmp .fail
.ran:
	PRINT "exits: FAILED: a hidden instruction ran without #UD ("
	mov eax, [uds]
	call putdec
	PRINT " #UD)"
.fail:
	call newline
	mov eax, 1
	ret

on_ud:
	inc dword [uds]
	add dword [esp], 3
	iret

word_hidden: db "hidden", 0
key_cpuid: db "cpuid=", 0
key_rdmsr: db "rdmsr=", 0
key_out: db "out=", 0
align 4
n_cpuid: dd 0
n_rdmsr: dd 0
n_out:	dd 0
uds:	dd 0

GUEST_END
