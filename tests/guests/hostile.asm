; hostile: misbehaves on purpose, one misbehaviour per command-line word, so the
; tests can check that Amber stops only this VM, with a report, and stays alive:
;   oob-read   oob-write  read/write just past the end of RAM
;   oob-mmio   read an address of the MMIO hole no device answers (0xFED00000)
;   oob-high   read above 4 GiB through PAE paging
;   vmx        VMXON, then VMCALL          svm   VMMCALL
;   triple     #UD with no IDT: triple fault
;   io-storm   reads an unemulated port forever
;   outs-oob   REP OUTSB from a buffer past the end of RAM
;   ins-oob    REP INSB into a buffer past the end of RAM
;   spin-cli   spins with interrupts off (pause and kill must still work)
;   spin-sti   spins with interrupts on (no interrupt ever comes to a guest)
;   gp-storm   a #GP handler that returns to the faulting instruction
;   long-line  65536 characters on COM1 without a newline, then exit 0
;   apic-insn  BTS on a local APIC register: an instruction Amber does not decode
;   apic-word  a 16-bit write to the APIC's TPR (xAPIC registers are 32-bit)
;   icr-storm  sends IPIs through the ICR forever (self, all-but-self NMI,
;              INIT and STARTUP to a missing APIC), interrupts off
;   irq-storm  self IPIs of every vector forever, interrupts on, handlers
;              that never write EOI
; If it survives a misbehaviour that should have stopped it, it says so and
; exits with code 1; with no known word, code 2.
%include "guest.inc"

PAGE_TABLES equ 0x180000                        ; PDPT, then two page directories
HIGH_VA     equ 0x40000000                      ; mapped to GPA 4 GiB

%macro CASE 2                                   ; word, handler
	mov esi, %%word
	call has_word
	test eax, eax
	jnz %2
	jmp %%next
%%word:	db %1, 0
%%next:
%endmacro

main:
	CASE "oob-read", oob_read
	CASE "oob-write", oob_write
	CASE "oob-mmio", oob_mmio
	CASE "oob-high", oob_high
	CASE "vmx", do_vmx
	CASE "svm", do_svm
	CASE "triple", triple
	CASE "io-storm", io_storm
	CASE "outs-oob", outs_oob
	CASE "ins-oob", ins_oob
	CASE "spin-cli", spin_cli
	CASE "spin-sti", spin_sti
	CASE "gp-storm", gp_storm
	CASE "long-line", long_line
	CASE "apic-insn", apic_insn
	CASE "apic-word", apic_word
	CASE "icr-storm", icr_storm
	CASE "irq-storm", irq_storm
	PRINT "hostile: no misbehaviour named on the command line"
	call newline
	mov eax, 2
	ret

survived:
	PRINT "hostile: survived; Amber should have stopped this guest"
	call newline
	mov eax, 1
	ret

oob_read:
	call ram_end
	add eax, 0x1000
	PRINT "hostile: reading past the end of RAM at "
	call puthex
	call newline
	mov ebx, [eax]
	jmp survived

oob_write:
	call ram_end
	add eax, 0x1000
	PRINT "hostile: writing past the end of RAM at "
	call puthex
	call newline
	mov dword [eax], 0xDEADBEEF
	jmp survived

oob_mmio:
	PRINT "hostile: reading the MMIO hole at 0xfed00000"
	call newline
	mov eax, [0xFED00000]
	jmp survived

oob_high:
	PRINT "hostile: reading GPA 0x100000000 through PAE paging"
	call newline
	mov edi, PAGE_TABLES
	mov ecx, 3 * 4096 / 4
	xor eax, eax
	rep stosd
	; PDPT[0] -> PD0 (identity 0-2 MiB: this code), PDPT[1] -> PD1.
	mov dword [PAGE_TABLES], PAGE_TABLES + 0x1000 + 1
	mov dword [PAGE_TABLES + 8], PAGE_TABLES + 0x2000 + 1
	mov dword [PAGE_TABLES + 0x1000], 0x83          ; 2 MiB page at 0, present, writable
	mov dword [PAGE_TABLES + 0x2000], 0x83          ; 2 MiB page at ...
	mov dword [PAGE_TABLES + 0x2000 + 4], 1         ; ... 4 GiB
	mov eax, PAGE_TABLES
	mov cr3, eax
	mov eax, cr4
	or eax, 1 << 5                                  ; PAE
	mov cr4, eax
	mov eax, cr0
	or eax, 1 << 31                                 ; PG
	mov cr0, eax
	jmp .paged
.paged:
	mov eax, [HIGH_VA]
	jmp survived

do_vmx:
	PRINT "hostile: executing VMXON and VMCALL"
	call newline
	vmxon [vmxon_region]
	vmcall
	jmp survived

do_svm:
	PRINT "hostile: executing VMMCALL"
	call newline
	vmmcall
	jmp survived

triple:
	PRINT "hostile: #UD with no IDT (triple fault)"
	call newline
	lidt [no_idt]
	ud2
	jmp survived

io_storm:
	PRINT "hostile: reading unemulated port 0x300 forever"
	call newline
	mov dx, 0x300
.again:
	in al, dx
	jmp .again

outs_oob:
	call ram_end
	add eax, 0x1000
	PRINT "hostile: REP OUTSB to COM1 from past the end of RAM at "
	call puthex
	call newline
	mov esi, eax
	mov ecx, 16
	mov dx, COM1
	rep outsb
	jmp survived

ins_oob:
	call ram_end
	add eax, 0x1000
	PRINT "hostile: REP INSB from COM1 to past the end of RAM at "
	call puthex
	call newline
	mov edi, eax
	mov ecx, 16
	mov dx, COM1
	rep insb
	jmp survived

spin_cli:
	PRINT "hostile: spinning with interrupts off"
	call newline
	cli
.spin:
	jmp .spin

spin_sti:
	PRINT "hostile: spinning with interrupts on"
	call newline
	sti
.spin:
	jmp .spin

gp_storm:
	PRINT "hostile: #GP handler that returns to the faulting instruction"
	call newline
	; Every vector to `unexpected`, #GP to `gp_again`.
	mov edi, idt
	mov ecx, 32
.fill:
	mov eax, unexpected
	mov [edi], ax
	mov word [edi + 2], 0x08
	mov word [edi + 4], 0x8E00                      ; present 32-bit interrupt gate
	shr eax, 16
	mov [edi + 6], ax
	add edi, 8
	loop .fill
	mov eax, gp_again
	mov [idt + 13 * 8], ax
	shr eax, 16
	mov [idt + 13 * 8 + 6], ax
	lidt [idt_desc]
	mov ax, 0xF8                                    ; beyond the GDT: #GP(0xF8)
	mov ds, ax
	jmp survived
gp_again:
	add esp, 4                                      ; the error code
	iret                                            ; ... back to the same MOV
unexpected:
	PRINT "hostile: unexpected exception"
	call newline
	mov al, 3
	jmp exit

APIC equ 0xFEE00000

apic_insn:
	PRINT "hostile: BTS on the APIC's TPR"
	call newline
	bts dword [APIC + 0x80], 1
	jmp survived

apic_word:
	PRINT "hostile: a 16-bit write to the APIC's TPR"
	call newline
	mov word [APIC + 0x80], 0x10
	jmp survived

icr_storm:
	PRINT "hostile: spinning with an ICR storm"
	call newline
	mov dword [APIC + 0xF0], 0x1FF
.storm:
	mov dword [APIC + 0x300], 0x40080               ; self, vector 0x80
	mov dword [APIC + 0x300], 0xC0400               ; all but self, NMI
	mov dword [APIC + 0x310], 0x05000000
	mov dword [APIC + 0x300], 0x4500                ; INIT to APIC 5
	mov dword [APIC + 0x300], 0x4610                ; STARTUP to APIC 5
	mov dword [APIC + 0x300], 0x80022               ; all incl. self, 0x22
	jmp .storm

irq_storm:
	PRINT "hostile: spinning with an interrupt storm without EOI"
	call newline
	mov edi, irq_idt
	mov ecx, 256
.fill:
	mov eax, no_eoi
	mov [edi], ax
	mov word [edi + 2], 0x08
	mov word [edi + 4], 0x8E00
	shr eax, 16
	mov [edi + 6], ax
	add edi, 8
	loop .fill
	lidt [irq_idt_desc]
	mov dword [APIC + 0xF0], 0x1FF
	sti
	mov ebx, 0x20
.storm:
	mov eax, 0x40000
	or eax, ebx
	mov [APIC + 0x300], eax                         ; self IPI, vector EBX
	inc bl
	cmp bl, 0x20
	jae .storm
	mov bl, 0x20
	jmp .storm
no_eoi:
	iret

long_line:
	PRINT "hostile: 65536 characters without a newline"
	call newline
	mov ecx, 65536
	mov al, 'x'
.char:
	call putc
	loop .char
	call newline
	PRINT "hostile: long line done"
	call newline
	xor eax, eax
	ret

align 8
no_idt:
	dw 0
	dd 0
idt_desc:
	dw 32 * 8 - 1
	dd idt
align 4096
vmxon_region:
	times 4096 db 0
idt:
	times 32 * 8 db 0
irq_idt_desc:
	dw 256 * 8 - 1
	dd irq_idt
irq_idt:
	times 256 * 8 db 0

GUEST_END
