; exits: performs a known number of intercepted instructions and ends, so a
; test can compare `vm info` exit counts with what the guest did:
; cpuid=N CPUIDs (default 1000), rdmsr=N reads of EFER (default 7) and out=N
; writes to the POST port 0x80 (default 500), then exit code 0.
%include "guest.inc"

main:
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

key_cpuid: db "cpuid=", 0
key_rdmsr: db "rdmsr=", 0
key_out: db "out=", 0
align 4
n_cpuid: dd 0
n_rdmsr: dd 0
n_out:	dd 0

GUEST_END
