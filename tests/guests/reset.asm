; reset: a guest that resets its machine once and tells its two boots apart
; by CMOS byte 0x50, which the reset keeps as the battery keeps it on a PC.
; First boot: prints "reset: first boot", marks the byte and resets through
; via=cf9 (port 0xCF9 <- 0x06, the FADT's RESET_REG; the default), via=kbd
; (the 8042's pulse, 0x64 <- 0xFE) or via=92 (port 0x92 bit 0). Second boot:
; prints "reset: second boot, after N" (N: the CMOS byte), clears the byte
; and exits 0. spin=N: N million loop turns before the reset (a moment to
; save it). Still running after asking for the reset: "reset: FAILED", exit 1. Intel 82371AB (PIIX4) datasheet, "Reset Control
; Register"; IBM PC/AT Technical Reference, "Keyboard Controller".
%include "guest.inc"

CMOS_INDEX   equ 0x70
CMOS_DATA    equ 0x71
MARK         equ 0x50                           ; a general-purpose CMOS byte

main:
	mov al, MARK
	out CMOS_INDEX, al
	in al, CMOS_DATA
	test al, al
	jnz .second
	PRINT "reset: first boot"
	call newline
	mov al, MARK
	out CMOS_INDEX, al
	mov al, 0xA5
	out CMOS_DATA, al
	mov esi, key_spin                       ; spin=N: N million loop turns first
	call get_num
	jc .go
	mov ecx, eax
	PRINT "reset: spinning"
	call newline
.outer:
	mov edx, 1000000
.inner:
	dec edx
	jnz .inner
	loop .outer
.go:
	mov esi, via_kbd
	call has_word
	test eax, eax
	jnz .kbd
	mov esi, via_92
	call has_word
	test eax, eax
	jnz .p92
	mov dx, 0xCF9
	mov al, 0x02                            ; SYS_RST first, as Linux does
	out dx, al
	mov al, 0x06                            ; then RST_CPU: a hard reset
	out dx, al
	jmp .still_here
.kbd:
	mov al, 0xFE
	out 0x64, al
	jmp .still_here
.p92:
	in al, 0x92
	or al, 0x01
	out 0x92, al
.still_here:
	mov ecx, 10000000
.spin:
	dec ecx
	jnz .spin
	PRINT "reset: FAILED: the machine did not reset"
	call newline
	mov eax, 1
	ret
.second:
	mov bl, al
	PRINT "reset: second boot, after 0x"
	movzx eax, bl
	shr eax, 4
	call hexdigit
	movzx eax, bl
	and eax, 0x0F
	call hexdigit
	call newline
	mov al, MARK
	out CMOS_INDEX, al
	xor al, al
	out CMOS_DATA, al
	xor eax, eax
	ret

hexdigit:
	add al, '0'
	cmp al, '9'
	jbe .out
	add al, 'a' - '0' - 10
.out:
	call putc
	ret

via_kbd: db "via=kbd", 0
key_spin: db "spin=", 0
via_92: db "via=92", 0

GUEST_END
