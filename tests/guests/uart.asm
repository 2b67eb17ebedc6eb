; uart: the 16550's interrupt logic as a polling guest sees it, interrupts
; off. THR empty raises IRQ 4 in the master 8259A's IRR (OCW3 read) only with
; OUT2 set, and reading IIR while it names THRE clears it. Then, in loopback
; (nothing can be printed meanwhile: results wait in memory), IIR's priority
; order (line status over received data over THRE), the receiver trigger
; levels 1, 4, 8 and 14, the character timeout (four characters at 9600 baud)
; and the overrun error that a full receiver reports. Prints "uart: ..." per
; part; any failed check prints "uart: FAILED ..." and exits 1.
; PC16550D datasheet, "Interrupt Enable Register", "Interrupt Identification
; Register", "FIFO Control Register", "Line Status Register".
%include "guest.inc"
%include "intr.inc"
%include "tsc.inc"

U_DATA       equ COM1
U_IER        equ COM1 + 1
U_IIR        equ COM1 + 2
U_LCR        equ COM1 + 3
U_MCR        equ COM1 + 4
U_LSR        equ COM1 + 5

%macro CHECK 2                                  ; CHECK cc, "what failed"
	j%1 %%ok
	PRINT "uart: FAILED: "
	PRINT %2
	call newline
	mov eax, 1
	ret
%%ok:
%endmacro

; LCHECK cc, "what": the same in loopback, where nothing can be printed: the
; message waits in [fail] and the UART is restored first.
%macro LCHECK 2
	j%1 %%ok
	jmp %%after
%%str:	db %2, 0
%%after:
	mov dword [fail], %%str
	jmp loop_done
%%ok:
%endmacro

; OUTB port, value
%macro OUTB 2
	mov dx, %1
	mov al, %2
	out dx, al
%endmacro

; IIR_IS value: reads IIR, ZF set when it equals value.
%macro IIR_IS 1
	mov dx, U_IIR
	in al, dx
	cmp al, %1
%endmacro

main:
	call tsc_calibrate
	OUTB U_IER, 0
	IIR_IS 0xC1
	CHECK e, "IIR is not 0xc1 (FIFOs on, nothing pending)"
	call pic_init
	OUTB U_MCR, 0x00                        ; OUT2 off
	OUTB U_IER, 0x02                        ; THRE: pending at once
	call master_irr
	test al, 0x10
	CHECK z, "IRQ 4 in the IRR with OUT2 off"
	OUTB U_MCR, 0x08                        ; OUT2 on
	call master_irr
	test al, 0x10
	CHECK nz, "THRE did not raise IRQ 4 with OUT2 on"
	IIR_IS 0xC2
	CHECK e, "IIR does not name THRE"
	IIR_IS 0xC1
	CHECK e, "reading IIR did not clear THRE"
	OUTB U_IER, 0
	OUTB U_MCR, 0
	PRINT "uart: THRE raises IRQ 4 through OUT2; reading IIR clears it"
	call newline

	; ---- loopback: no output until loop_done ----
	mov dword [fail], 0
	OUTB U_LCR, 0x80
	OUTB U_DATA, 12                         ; 9600 baud: 4 characters 4.2 ms
	OUTB U_IER, 0
	OUTB U_LCR, 0x03
	OUTB U_MCR, 0x10                        ; loopback
	OUTB U_IIR, 0x47                        ; FIFO, trigger 4, receiver cleared
	OUTB U_IER, 0x07                        ; RDA, THRE, line status
	IIR_IS 0xC2
	LCHECK e, "enabling THRE did not make it pending"
	IIR_IS 0xC1
	LCHECK e, "IIR not clear after THRE was read"
	mov al, 'a'
	call send
	mov al, 'b'
	call send
	mov al, 'c'
	call send
	IIR_IS 0xC2
	LCHECK e, "below the trigger level IIR should name THRE"
	IIR_IS 0xC1
	LCHECK e, "3 bytes below trigger 4 reported as received data"
	mov al, 'd'
	call send
	IIR_IS 0xC4
	LCHECK e, "at the trigger level IIR did not name received data over THRE"
	mov dx, U_DATA
	in al, dx
	mov bl, al
	in al, dx
	mov bh, al
	in al, dx
	mov cl, al
	in al, dx
	mov ch, al
	cmp bx, 'a' | 'b' << 8
	LCHECK e, "the loopback bytes came back wrong"
	cmp cx, 'c' | 'd' << 8
	LCHECK e, "the loopback bytes came back wrong"
	IIR_IS 0xC2
	LCHECK e, "THRE not pending under the received data"
	IIR_IS 0xC1
	LCHECK e, "IIR not clear once all was read"

	; The character timeout: one byte, below any trigger, 10 ms.
	mov al, 'e'
	call send
	IIR_IS 0xC2
	LCHECK e, "THRE not pending after the byte"
	IIR_IS 0xC1
	LCHECK e, "a timeout before four character times"
	mov eax, 10000
	call tsc_wait_us
	IIR_IS 0xCC
	LCHECK e, "no character timeout after 10 ms"
	mov dx, U_DATA
	in al, dx
	cmp al, 'e'
	LCHECK e, "the timed-out byte came back wrong"
	IIR_IS 0xC1
	LCHECK e, "the timeout stayed after the read"

	; Trigger levels: n - 1 bytes wait, the nth interrupts.
	xor esi, esi
.level:
	movzx eax, byte [fcr_of + esi]
	OUTB U_IIR, al
	movzx ecx, byte [level_of + esi]
	dec ecx
	jz .last
.fill:
	mov al, 'x'
	call send
	loop .fill
.last:
	mov dx, U_IIR
	in al, dx                               ; THRE, or nothing
	IIR_IS 0xC1
	LCHECK e, "received data reported below the trigger level"
	mov al, 'y'
	call send
	IIR_IS 0xC4
	LCHECK e, "no received data interrupt at the trigger level"
	inc esi
	cmp esi, 4
	jb .level

	; Overrun: 70 bytes for a full receiver; line status outranks data.
	OUTB U_IIR, 0xC7
	mov ecx, 70
.flood:
	mov al, 'z'
	call send
	loop .flood
	IIR_IS 0xC6
	LCHECK e, "an overrun did not raise the line status interrupt"
	mov dx, U_LSR
	in al, dx
	test al, 0x02
	LCHECK nz, "LSR does not show the overrun"
	IIR_IS 0xC4
	LCHECK e, "reading LSR did not leave received data next"
loop_done:
	OUTB U_IER, 0
	OUTB U_IIR, 0xC7
	OUTB U_LCR, 0x80
	OUTB U_DATA, 1
	OUTB U_LCR, 0x03
	OUTB U_MCR, 0x00
	mov esi, [fail]
	test esi, esi
	jz .passed
	PRINT "uart: FAILED: "
	call puts
	call newline
	mov eax, 1
	ret
.passed:
	PRINT "uart: IIR order, trigger levels 1/4/8/14, timeout and overrun ok"
	call newline
	mov esi, word_listen
	call has_word
	test eax, eax
	jnz listen
	xor eax, eax
	ret

; listen (command line word "listen"): a line typed at the console reaches a
; guest asleep in HLT by IRQ 4 alone, FIFO trigger 14, so that a short line
; raises no received-data interrupt, only the character timeout. Nothing
; else can wake the guest: every other IRQ is masked, no timer runs.
listen:
	mov eax, 0x24
	mov edx, uart_isr
	call set_gate
	lidt [idt_desc]
	mov al, 0xEF                            ; IRQ 4 alone
	out PIC_M_DATA, al
	OUTB U_IIR, 0xC7                        ; FIFO, trigger 14, cleared
	OUTB U_MCR, 0x08                        ; OUT2
	OUTB U_IER, 0x01                        ; received data (and timeout)
	PRINT "uart: listening in HLT"
	call newline
.sleep:
	sti
	hlt
	cli
	cmp byte [heard_cr], 0
	je .sleep
	PRINT "uart: heard '"
	mov esi, heard
	call puts
	PRINT "' in HLT by IRQ 4 ("
	mov eax, [timeouts]
	call putdec
	PRINT " timeouts)"
	call newline
	xor eax, eax
	ret

; uart_isr: vector 0x24. Drains the receiver into heard (a carriage return
; ends the line), counts character-timeout interrupts, EOI to the master.
uart_isr:
	pusha
	mov dx, U_IIR
	in al, dx
	and al, 0x0F
	cmp al, 0x0C
	jne .drain
	inc dword [timeouts]
.drain:
	mov dx, U_LSR
	in al, dx
	test al, 0x01
	jz .done
	mov dx, U_DATA
	in al, dx
	cmp al, 13
	jne .keep
	mov byte [heard_cr], 1
	jmp .drain
.keep:
	mov ecx, [heard_len]
	cmp ecx, 63
	jae .drain
	mov [heard + ecx], al
	inc dword [heard_len]
	jmp .drain
.done:
	mov al, 0x20
	out PIC_M_CMD, al
	popa
	iret

; send: AL into THR (in loopback it is received at once).
send:
	push edx
	mov dx, U_DATA
	out dx, al
	pop edx
	ret

; master_irr: AL = the master 8259A's IRR (OCW3).
master_irr:
	mov al, 0x0A
	out PIC_M_CMD, al
	in al, PIC_M_CMD
	ret

fcr_of: db 0x07, 0x47, 0x87, 0xC7
level_of: db 1, 4, 8, 14
fail: dd 0
word_listen: db "listen", 0
heard: times 64 db 0
heard_len: dd 0
heard_cr: db 0
timeouts: dd 0

GUEST_END
