; rtc: the MC146818 RTC as a polling guest sees it, interrupts off. It
; measures the TSC against the PIT, then checks that two updates of the
; seconds register take 2000 ms of TSC (+-0.1 %) with update-in-progress seen
; before each; that IRQ 8 reaches the slave 8259A's IRR (OCW3 read) only once
; PIE lets the periodic flag through; then it counts register C's periodic
; flag (64 Hz) in windows of 500 ms of TSC: each must hold 32 +-1.
; Prints "rtc: window N: P flags at HH:MM:SS"; with windows=N it exits 0 after
; N windows, else runs until stopped. A failed check prints "rtc: FAILED ..."
; and exits 1. MC146818A datasheet, "Register A" .. "Register C", "Update
; Cycle"; Intel 8259A datasheet, "Operation Command Words".
%include "guest.inc"
%include "intr.inc"
%include "tsc.inc"

CMOS_INDEX   equ 0x70
CMOS_DATA    equ 0x71
WINDOW_US    equ 500000
RATE_64HZ    equ 0x2A                           ; DV = 32.768 kHz, RS = 10
SPIN_FINE    equ 2000                           ; 2-40 us between polls of UIP
SPIN_FLAGS   equ 100000                         ; 0.1-2 ms between polls of C

%macro CHECK 2                                  ; CHECK cc, "what failed"
	j%1 %%ok
	PRINT "rtc: FAILED: "
	PRINT %2
	call newline
	mov eax, 1
	ret
%%ok:
%endmacro

main:
	call tsc_calibrate
	PRINT "rtc: TSC "
	mov eax, [tsc_khz]
	call putdec
	PRINT " kHz by the PIT"
	call newline
	mov al, 0x0B
	call cmos_read
	cmp al, 0x02                            ; BCD, 24 hours, no interrupts
	CHECK e, "register B at power-on is not 0x02"

	; Two seconds of the clock against the TSC.
	call next_second                        ; near an update (10 ms)
	CHECK nc, "no update of the seconds register within 2 s"
	call next_update                        ; exactly at the next one
	CHECK nc, "no UIP, or no update after it, within 2 s"
	mov [tsc_a], eax
	mov [tsc_a + 4], edx
	mov [sec_a], bl
	call next_update
	CHECK nc, "no UIP, or no update after it, within 2 s"
	call next_update
	CHECK nc, "no UIP, or no update after it, within 2 s"
	mov [sec_b], bl
	sub eax, [tsc_a]
	sbb edx, [tsc_a + 4]
	div dword [tsc_khz]                     ; EAX = milliseconds
	mov [ms], eax
	PRINT "rtc: 2 seconds took "
	mov eax, [ms]
	call putdec
	PRINT " ms of TSC, UIP before each update"
	call newline
	cmp dword [ms], 1998
	CHECK ae, "the clock ran fast against the TSC"
	cmp dword [ms], 2002
	CHECK be, "the clock ran slow against the TSC"
	movzx eax, byte [sec_a]
	call bcd2bin
	mov ebx, eax
	movzx eax, byte [sec_b]
	call bcd2bin
	sub eax, ebx
	add eax, 60
	xor edx, edx
	mov ecx, 60
	div ecx
	cmp edx, 2
	CHECK e, "the seconds register did not advance by 2"

	; IRQ 8 at the 8259A: not while PIE is clear, at once when it is set.
	call pic_init
	mov al, 0x0A
	mov ah, RATE_64HZ
	call cmos_write
	mov al, 0x0C
	call cmos_read                          ; clear the flags
	mov eax, 20000                          ; more than one 15.6 ms period
	call tsc_wait_us
	call slave_irr
	test al, 1
	CHECK z, "IRQ 8 in the IRR with PIE clear"
	mov al, 0x0B
	mov ah, 0x42                            ; PIE
	call cmos_write
	call slave_irr
	test al, 1
	CHECK nz, "no IRQ 8 in the IRR once PIE was set"
	mov al, 0x0C
	call cmos_read
	and al, 0xC0
	cmp al, 0xC0
	CHECK e, "register C does not show IRQF and PF"
	mov al, 0x0B
	mov ah, 0x02
	call cmos_write
	PRINT "rtc: IRQ 8 in the 8259A's IRR once PIE is set"
	call newline

	mov esi, key_windows
	call get_num
	jnc .have
	xor eax, eax
.have:
	mov [windows], eax
.window:
	call window
	jnc .judged
	PRINT "rtc: the host paused the guest over 7 ms: window measured again"
	call newline
	inc dword [retries]
	cmp dword [retries], 10
	CHECK b, "the host paused the guest in 10 windows"
	jmp .window
.judged:
	mov ebx, eax
	inc dword [done]
	PRINT "rtc: window "
	mov eax, [done]
	call putdec
	PRINT ": "
	mov eax, ebx
	call putdec
	PRINT " flags at "
	mov al, 0x04
	call cmos_read
	call putbcd
	mov al, ':'
	call putc
	mov al, 0x02
	call cmos_read
	call putbcd
	mov al, ':'
	call putc
	mov al, 0x00
	call cmos_read
	call putbcd
	call newline
	cmp ebx, 31
	CHECK ae, "fewer periodic flags than 64 Hz gives"
	cmp ebx, 33
	CHECK be, "more periodic flags than 64 Hz gives"
	mov eax, [windows]
	test eax, eax
	jz .window
	cmp eax, [done]
	jne .window
	xor eax, eax
	ret

; cmos_read: AL = CMOS register AL (NMI left enabled).
cmos_read:
	out CMOS_INDEX, al
	in al, CMOS_DATA
	ret

; cmos_write: register AL = AH.
cmos_write:
	out CMOS_INDEX, al
	mov al, ah
	out CMOS_DATA, al
	ret

; next_second: waits (at most 2 s of TSC) for the seconds register to change,
; looking every 10 ms: the change is known to 10 ms. BL = the new seconds; CF
; set on timeout.
next_second:
	mov al, 0x00
	out CMOS_INDEX, al
	in al, CMOS_DATA
	mov bh, al
	call limit_start
.poll:
	mov eax, 10000
	call tsc_wait_us
	in al, CMOS_DATA                        ; the index stays: one exit a poll
	cmp al, bh
	jne changed
	call limit_passed
	jnc .poll
	ret

; next_update: called less than 15 ms after an update, sleeps on the TSC
; until 985 ms after the call, then waits for the next update's UIP
; (register A, polled alone), then for the seconds to change: UIP must come
; first ("Update Cycle": it rises 244 us before the update). EDX:EAX = the
; TSC at the change, BL = the new seconds; CF set when either does not come
; within 2 s.
next_update:
	mov al, 0x00
	out CMOS_INDEX, al
	in al, CMOS_DATA
	mov bh, al
	call limit_start
	mov eax, 985000
	call tsc_wait_us
	mov al, 0x0A
	out CMOS_INDEX, al
.uip:
	mov eax, SPIN_FINE
	call spin
	in al, CMOS_DATA
	test al, 0x80
	jnz .seen
	call limit_passed
	jnc .uip
	ret
.seen:
	mov al, 0x00
	out CMOS_INDEX, al
.poll:
	mov eax, SPIN_FINE
	call spin
	in al, CMOS_DATA
	cmp al, bh
	jne changed
	call limit_passed
	jnc .poll
	ret
changed:
	mov bl, al
	rdtsc
	clc
	ret

; limit_start / limit_passed: CF set once 2 s of TSC have passed since
; limit_start. Keep EBX.
limit_start:
	push eax
	push edx
	rdtsc
	mov [limit_tsc], eax
	mov [limit_tsc + 4], edx
	pop edx
	pop eax
	ret

limit_passed:
	push eax
	push edx
	rdtsc
	sub eax, [limit_tsc]
	sbb edx, [limit_tsc + 4]
	div dword [tsc_khz]                     ; milliseconds
	cmp eax, 2000                           ; CF set while below
	cmc
	pop edx
	pop eax
	ret

; bcd2bin: EAX = the BCD byte in AL as a number.
bcd2bin:
	push ebx
	movzx eax, al
	mov ebx, eax
	shr ebx, 4
	and eax, 0x0F
	imul ebx, ebx, 10
	add eax, ebx
	pop ebx
	ret

; putbcd: AL as two hex digits (a BCD register reads as decimal).
putbcd:
	push eax
	push eax
	shr al, 4
	add al, '0'
	call putc
	pop eax
	and al, 0x0F
	add al, '0'
	call putc
	pop eax
	ret

; slave_irr: AL = the slave 8259A's IRR (OCW3).
slave_irr:
	mov al, 0x0A
	out PIC_S_CMD, al
	in al, PIC_S_CMD
	ret

; window: EAX = periodic flags seen in register C during the next 500 ms of
; TSC (each read clears them). A flag waits 15.6 ms to be seen at 64 Hz, so
; while no two polls are more than 7 ms apart none can be missed; a window
; in which the host took the CPU longer than that (its console output, its
; shell) cannot be judged: CF set.
window:
	push ebx
	push ecx
	push edx
	push esi
	push edi
	push ebp
	mov eax, WINDOW_US / 1000
	mul dword [tsc_khz]
	mov ecx, eax                            ; TSC ticks in the window
	mov eax, 7
	mul dword [tsc_khz]
	mov ebp, eax                            ; 7 ms of TSC: the largest gap
	mov byte [gap], 0
	mov al, 0x0C
	call cmos_read                          ; the index stays at C
	xor ebx, ebx
	rdtsc
	mov esi, eax
	mov edi, eax
.poll:
	mov eax, SPIN_FLAGS
	call spin
	in al, CMOS_DATA
	test al, 0x40
	jz .none
	inc ebx
.none:
	rdtsc
	mov edx, eax
	sub edx, edi
	mov edi, eax
	cmp edx, ebp
	jb .no_gap
	mov byte [gap], 1
.no_gap:
	sub eax, esi
	cmp eax, ecx
	jb .poll
	mov eax, ebx
	cmp byte [gap], 1                       ; CF set when gap is 0
	cmc
	pop ebp
	pop edi
	pop esi
	pop edx
	pop ecx
	pop ebx
	ret

key_windows: db "windows=", 0
align 8
tsc_a: dq 0
limit_tsc: dq 0
ms: dd 0
windows: dd 0
done: dd 0
retries: dd 0
sec_a: db 0
sec_b: db 0
gap: db 0

GUEST_END
