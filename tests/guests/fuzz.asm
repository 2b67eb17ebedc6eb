; fuzz: drives Amber's hypercalls (vmm/hypercall.h, docs/vmm.md "Hypercalls")
; with VMCALL on Intel and VMMCALL on AMD (CPUID's vendor decides). Modes, by
; the first word of its command line:
;   fuzz (default)  takes the reset base, then runs each input Amber hands out
;                   through a toy parser with a planted bug ("FUZ#" divides by
;                   zero), reporting ok and resetting; the exception handler
;                   reports the crash and prints "fuzz: crash (vector V) after
;                   E executions"; exit 0. "fuzz: inputs used up" exits 2.
;   check resets=N [all]  checksums its RAM (below 640 KiB and from 1 MiB up),
;                   loads known registers and x87 control word, takes the base;
;                   after it and after each of N resets it checks that the
;                   checksum, the registers, ESP and the control word are the
;                   base's, then dirties 10 pages (all: every page but the
;                   legacy hole 0x9F000-0xFFFFF), trashes the registers and
;                   resets. "fuzz: check passed after N resets, checksum C" exit 0;
;                   a difference is "fuzz: MISMATCH ..." exit 1.
;   bench resets=N  takes the base, then N times: dirties 10 pages and
;                   resets; "fuzz: bench done after N resets" exit 0 (the
;                   cost is read from `snap reset VM --info`: make bench).
;   probe           one HC_PROBE: "fuzz: probe magic M version V", then four
;                   calls Amber must refuse, "fuzz: refused A B C D" (their
;                   results), exit 0; where Amber refuses the hypercalls
;                   altogether, "fuzz: hypercall raised #UD" exit 3.
; The base is taken with no stack write between the checksum and the call,
; and the calls are inline, so the base's memory is exactly what was summed.
%include "guest.inc"

HC_PROBE        equ 0
HC_SNAPSHOT     equ 1
HC_RESET        equ 2
HC_REPORT       equ 3
HC_NEXT_INPUT   equ 4
RESULT_OK       equ 0
RESULT_CRASH    equ 1
INPUT_MAX       equ 4096
LOW_END         equ 0x9F000                     ; below the EBDA
HIGH_START      equ 0x100000
CW_BASE         equ 0x027F                      ; x87 control word at the base
CW_OTHER        equ 0x037F
K_EBX           equ 0x0B0B0B0B
K_ECX           equ 0x0C0C0C0C
K_EDX           equ 0x0D0D0D0D
K_ESI           equ 0x51515151
K_EDI           equ 0xD1D1D1D1

; HCALL: the hypercall in EAX (arguments EBX, ECX), no stack used.
%macro HCALL 0
	cmp byte [amd], 0
	jne %%svm
	vmcall
	jmp %%done
%%svm:
	vmmcall
%%done:
%endmacro

; CHECKSUM reg, ptr: reg = the sum (rotated) of RAM [0, LOW_END) and
; [HIGH_START, [end]); ptr is clobbered. Reads only.
%macro CHECKSUM 2
	xor %1, %1
	xor %2, %2
%%low:
	rol %1, 1
	add %1, [%2]
	add %2, 4
	cmp %2, LOW_END
	jb %%low
	mov %2, HIGH_START
%%high:
	rol %1, 1
	add %1, [%2]
	add %2, 4
	cmp %2, [end]
	jb %%high
%endmacro

main:
	xor eax, eax
	cpuid
	cmp ebx, 'Genu'
	setne byte [amd]
	call ram_end
	and eax, ~0xFFF
	mov [end], eax
	mov esi, word_check
	call has_word
	test eax, eax
	jnz check
	mov esi, word_probe
	call has_word
	test eax, eax
	jnz probe
	mov esi, word_bench
	call has_word
	test eax, eax
	jnz bench
	jmp fuzz

; ---- bench ---------------------------------------------------------------
bench:
	call get_resets
	PRINT "fuzz: bench start"
	call newline
	mov eax, HC_SNAPSHOT
	HCALL
	test eax, eax
	jnz .no_base
	mov eax, HC_REPORT
	mov ebx, RESULT_OK
	HCALL
	cmp eax, [nresets]
	ja .done
	call dirty_ten
	mov eax, HC_RESET
	HCALL
	PRINT "fuzz: HC_RESET returned "
	jmp fail_eax
.no_base:
	PRINT "fuzz: HC_SNAPSHOT failed: "
	jmp fail_eax
.done:
	PRINT "fuzz: bench done after "
	mov eax, [nresets]
	call putdec
	PRINT " resets"
	call newline
	xor eax, eax
	ret

; get_resets: [nresets] = resets=N from the command line, default 10.
get_resets:
	push eax
	push esi
	mov esi, key_resets
	call get_num
	jnc .have
	mov eax, 10
.have:
	mov [nresets], eax
	pop esi
	pop eax
	ret

; dirty_ten: writes a dword in 10 pages from 2 MiB, 12 KiB apart.
dirty_ten:
	push ecx
	push edi
	mov edi, 0x200000
	mov ecx, 10
.page:
	mov dword [edi + 8], 0xDEADBEEF
	add edi, 0x3000
	loop .page
	pop edi
	pop ecx
	ret

; ---- probe ---------------------------------------------------------------
probe:
	mov dword [handler], probe_ud
	call idt_setup
	mov eax, HC_PROBE
	HCALL
	PRINT "fuzz: probe magic "
	call puthex
	PRINT " version "
	mov eax, ebx
	call putdec
	call newline
	; What a careless harness gets: a buffer outside RAM, an unknown call,
	; a reset with no base, an unknown result.
	PRINT "fuzz: refused "
	mov eax, HC_NEXT_INPUT
	mov ebx, 0xFFFFF000
	mov ecx, INPUT_MAX
	HCALL
	call putsigned
	mov eax, 99
	HCALL
	call putsigned
	mov eax, HC_RESET
	HCALL
	call putsigned
	mov eax, HC_REPORT
	mov ebx, 7
	HCALL
	call putsigned
	call newline
	xor eax, eax
	ret

; putsigned: EAX as a signed decimal number and a space.
putsigned:
	push eax
	test eax, eax
	jns .positive
	neg eax
	push eax
	mov al, '-'
	call putc
	pop eax
.positive:
	call putdec
	mov al, ' '
	call putc
	pop eax
	ret
probe_ud:
	PRINT "fuzz: hypercall raised #UD (vector "
	mov eax, [esp]
	call putdec
	PRINT ")"
	call newline
	mov al, 3
	jmp exit

; ---- fuzz ----------------------------------------------------------------
fuzz:
	mov dword [handler], fuzz_crash
	call idt_setup
	PRINT "fuzz: ready, taking the base"
	call newline
	mov eax, HC_SNAPSHOT
	HCALL
	test eax, eax
	jnz .no_base
	; Every reset resumes here, with the base's registers and memory.
	mov eax, HC_NEXT_INPUT
	mov ebx, input
	mov ecx, INPUT_MAX
	HCALL
	test eax, eax
	jz .used_up
	js .no_input
	mov esi, input
	mov ecx, eax
	call target
	mov eax, HC_REPORT
	mov ebx, RESULT_OK
	HCALL
	mov eax, HC_RESET
	HCALL
	PRINT "fuzz: HC_RESET returned "
	jmp fail_eax
.no_base:
	PRINT "fuzz: HC_SNAPSHOT failed: "
	jmp fail_eax
.no_input:
	PRINT "fuzz: HC_NEXT_INPUT failed: "
	jmp fail_eax
.used_up:
	PRINT "fuzz: inputs used up, no crash found"
	call newline
	mov eax, 2
	ret

; fail_eax: prints EAX as a signed number, exits 4.
fail_eax:
	test eax, eax
	jns .positive
	neg eax
	push eax
	mov al, '-'
	call putc
	pop eax
.positive:
	call putdec
	call newline
	mov al, 4
	jmp exit

; target: ESI = the input, ECX = its length. A toy parser of "FUZx"
; messages whose fourth byte picks a divisor, x - '#': the planted bug is
; that nobody checks for '#', which divides by zero.
target:
	cmp ecx, 4
	jb .done
	cmp word [esi], 'FU'
	jne .done
	cmp byte [esi + 2], 'Z'
	jne .done
	movzx ebx, byte [esi + 3]
	sub ebx, '#'
	mov eax, 1000
	xor edx, edx
	div ebx
.done:
	ret

fuzz_crash:
	mov eax, HC_REPORT
	mov ebx, RESULT_CRASH
	HCALL
	mov ebx, eax
	PRINT "fuzz: crash (vector "
	mov eax, [esp]
	call putdec
	PRINT ") after "
	mov eax, ebx
	call putdec
	PRINT " executions"
	call newline
	mov al, 0
	jmp exit

; ---- check ---------------------------------------------------------------
check:
	mov dword [handler], check_exception
	call idt_setup
	call get_resets
	mov esi, word_all
	call has_word
	mov [all], al
	mov [esp_base], esp
	fninit
	fldcw [cw_base]
	CHECKSUM ebp, eax
	mov ebx, K_EBX
	mov ecx, K_ECX
	mov edx, K_EDX
	mov esi, K_ESI
	mov edi, K_EDI
	mov eax, HC_SNAPSHOT
	HCALL
	; The base: after the call and after every reset.
	test eax, eax
	jnz .bad_eax
	cmp ebx, K_EBX
	jne .bad_reg
	cmp ecx, K_ECX
	jne .bad_reg
	cmp edx, K_EDX
	jne .bad_reg
	cmp esi, K_ESI
	jne .bad_reg
	cmp edi, K_EDI
	jne .bad_reg
	cmp esp, [esp_base]
	jne .bad_reg
	CHECKSUM ebx, ecx
	cmp ebx, ebp
	jne .bad_sum
	fnstcw [cw_seen]
	cmp word [cw_seen], CW_BASE
	jne .bad_fpu
	mov eax, HC_REPORT
	mov ebx, RESULT_OK
	HCALL
	cmp eax, [nresets]
	ja .passed
	cmp byte [all], 0
	jne .dirty_all
	call dirty_ten
	jmp .trash
.dirty_all:
	xor edi, edi
.page:
	cmp edi, LOW_END
	jb .write
	cmp edi, HIGH_START
	jb .next
	cmp edi, image_end
	jae .write
	mov eax, [edi + 0xFFC]                  ; its own image: the same value
	mov [edi + 0xFFC], eax
	jmp .next
.write:
	mov dword [edi + 0xFFC], 0xBADC0FFE
.next:
	add edi, 4096
	cmp edi, [end]
	jb .page
.trash:
	fldcw [cw_other]
	mov ebx, 0xFFFFFFFF
	mov ecx, ebx
	mov edx, ebx
	mov esi, ebx
	mov edi, ebx
	xor ebp, ebp
	sub esp, 64
	mov eax, HC_RESET
	HCALL
	PRINT "fuzz: HC_RESET returned "
	jmp fail_eax
.passed:
	PRINT "fuzz: check passed after "
	mov eax, [nresets]
	call putdec
	PRINT " resets, checksum "
	mov eax, ebp
	call puthex
	call newline
	xor eax, eax
	ret
.bad_eax:
	PRINT "fuzz: HC_SNAPSHOT failed: "
	jmp fail_eax
.bad_reg:
	PRINT "fuzz: MISMATCH of registers after a reset: ebx="
	mov eax, ebx
	call puthex
	PRINT " esi="
	mov eax, esi
	call puthex
	PRINT " esp="
	mov eax, esp
	call puthex
	jmp .mismatch
.bad_sum:
	PRINT "fuzz: MISMATCH of the RAM checksum: base "
	mov eax, ebp
	call puthex
	PRINT ", now "
	mov eax, ebx
	call puthex
	jmp .mismatch
.bad_fpu:
	PRINT "fuzz: MISMATCH of the x87 control word: "
	movzx eax, word [cw_seen]
	call puthex
.mismatch:
	call newline
	mov eax, 1
	ret

check_exception:
	PRINT "fuzz: MISMATCH: exception "
	mov eax, [esp]
	call putdec
	call newline
	mov al, 1
	jmp exit

; ---- exceptions ----------------------------------------------------------
; idt_setup: interrupt gates for vectors 0-31, each pushing its number and
; jumping to [handler] (which never returns).
idt_setup:
	pushad
	xor ecx, ecx
.gate:
	mov eax, ecx
	shl eax, 4
	add eax, stubs
	mov [idt + ecx * 8], ax
	mov word [idt + ecx * 8 + 2], 0x08
	mov word [idt + ecx * 8 + 4], 0x8E00
	shr eax, 16
	mov [idt + ecx * 8 + 6], ax
	inc ecx
	cmp ecx, 32
	jb .gate
	lidt [idt_desc]
	popad
	ret

align 16
stubs:                                          ; 16 bytes each
%assign vec 0
%rep 32
	push dword vec
	jmp near common_stub
	align 16
%assign vec vec + 1
%endrep
common_stub:
	jmp [handler]

word_check: db "check", 0
word_probe: db "probe", 0
word_bench: db "bench", 0
word_all: db "all", 0
key_resets: db "resets=", 0
align 4
cw_base: dw CW_BASE
cw_other: dw CW_OTHER
cw_seen: dw 0
amd: db 0
all: db 0
align 4
handler: dd 0
nresets: dd 0
end: dd 0
esp_base: dd 0
idt_desc:
	dw 32 * 8 - 1
	dd idt
align 8
idt: times 32 dq 0
align 16
input: times INPUT_MAX db 0

GUEST_END
