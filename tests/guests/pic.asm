; pic: the 8259A pair and the 8254's IRQ0 as a guest sees them by polling
; (OCW3 poll command; no interrupt is taken, IF stays 0). It checks the
; power-on masks, initializes both PICs as Linux does, shows that a masked
; IRQ0 waits in the IRR, that the poll acknowledges it (ISR), that an IR in
; service blocks its next request until the EOI, and then counts IRQ0 at
; 100 Hz (channel 0, mode 2) in windows of 500 ms measured by channel 2 (a
; 20 Hz square wave read on port 0x61: ten periods from one rising edge of
; OUT2, so the time the guest takes to see an edge does not add up): each
; window must hold 50 +-2 ticks (a tick each side of the edges the guest
; polls for, while Amber holds it printing its line). Prints "pic: window N:
; T ticks"; with windows=N it exits 0 after N windows, else it runs until
; stopped. Any check that fails prints "pic: FAILED ..." and exits 1.
; Intel 8259A datasheet ("Poll Command", "Operation Command Words"); Intel
; 8254 datasheet ("Mode 0", "Mode 2").
%include "guest.inc"
%include "intr.inc"

PIT_CH0      equ 0x40
PIT_CH2      equ 0x42
PIT_CMD      equ 0x43
PORT_B       equ 0x61
TICK_COUNT   equ 11932                          ; 10.000 ms at 1.193182 MHz
REF_COUNT    equ 59659                          ; 50.000 ms per period
OCW3_POLL    equ 0x0C
OCW3_IRR     equ 0x0A
OCW3_ISR     equ 0x0B
EOI          equ 0x20
POLL_SPIN    equ 10000                          ; loop turns between two polls

%macro CHECK 2                                  ; CHECK cc, "what failed"
	j%1 %%ok
	PRINT "pic: FAILED: "
	PRINT %2
	call newline
	mov eax, 1
	ret
%%ok:
%endmacro

main:
	in al, PIC_M_DATA                       ; everything masked at power-on
	cmp al, 0xFF
	CHECK e, "the master's mask at power-on is not 0xff"
	call pic_init
	mov al, 0x34                            ; channel 0, lo/hi byte, mode 2
	out PIT_CMD, al
	mov al, TICK_COUNT & 0xFF
	out PIT_CH0, al
	mov al, TICK_COUNT >> 8
	out PIT_CH0, al
	call ref_start

	; IRQ0 masked: 50 ms pass, the request waits in the IRR, the poll is empty.
	call ref_wait
	call poll
	test al, 0x80
	CHECK z, "a poll reported a masked IRQ0"
	mov al, OCW3_IRR
	out PIC_M_CMD, al
	in al, PIC_M_CMD
	test al, 1
	CHECK nz, "IRQ0 is not in the IRR while masked"
	PRINT "pic: masked IRQ0 waits in the IRR"
	call newline

	; Unmasked: the poll takes it (IR0 in service) ...
	mov al, 0xFE
	out PIC_M_DATA, al
	call poll
	cmp al, 0x80
	CHECK e, "the poll did not report IR0 once unmasked"
	mov al, OCW3_ISR
	out PIC_M_CMD, al
	in al, PIC_M_CMD
	test al, 1
	CHECK nz, "IR0 not in service after the poll"
	; ... and blocks the next request until the EOI.
	call ref_wait
	call poll
	test al, 0x80
	CHECK z, "IR0 in service did not block IR0"
	mov al, EOI
	out PIC_M_CMD, al
	call poll
	cmp al, 0x80
	CHECK e, "no IR0 after the EOI"
	mov al, EOI
	out PIC_M_CMD, al
	PRINT "pic: EOI releases the next request"
	call newline

	mov esi, key_windows
	call get_num
	jnc .have
	xor eax, eax
.have:
	mov [windows], eax
.window:
	call window
	mov ebx, eax
	inc dword [done]
	PRINT "pic: window "
	mov eax, [done]
	call putdec
	PRINT ": "
	mov eax, ebx
	call putdec
	PRINT " ticks"
	call newline
	cmp ebx, 48
	CHECK ae, "fewer IRQ0 ticks than 100 Hz gives"
	cmp ebx, 52
	CHECK be, "more IRQ0 ticks than 100 Hz gives"
	mov eax, [windows]
	test eax, eax
	jz .window
	cmp eax, [done]
	jne .window
	xor eax, eax
	ret

; poll: AL = the master's poll word (bit 7: a request was taken, 2:0 its IR).
poll:
	mov al, OCW3_POLL
	out PIC_M_CMD, al
	in al, PIC_M_CMD
	ret

; ref_start: channel 2 as a square wave of REF_COUNT clocks (mode 3), its
; gate raised on port 0x61, speaker off.
ref_start:
	in al, PORT_B
	and al, 0xFC
	out PORT_B, al
	mov al, 0xB6                            ; channel 2, lo/hi byte, mode 3
	out PIT_CMD, al
	mov al, REF_COUNT & 0xFF
	out PIT_CH2, al
	mov al, REF_COUNT >> 8
	out PIT_CH2, al
	in al, PORT_B
	or al, 0x01
	out PORT_B, al
	ret

; out2: ZF clear while OUT2 is high.
out2:
	in al, PORT_B
	test al, 0x20
	ret

; ref_wait: two rising edges of OUT2: at least one whole period (50 ms).
ref_wait:
	push ecx
	mov ecx, 2
.edge:
	call out2
	jnz .edge
.low:
	call out2
	jz .low
	loop .edge
	pop ecx
	ret

; take: takes an IRQ0 request if one is there (poll, EOI), counting it in EBX,
; then spins a while without exits: the IRR holds a request until it is taken,
; so polling every few tens of microseconds loses nothing at 100 Hz, and the
; fewer exits let an emulator that runs guest time by instructions keep up.
take:
	call poll
	test al, 0x80
	jz .none
	inc ebx
	mov al, EOI
	out PIC_M_CMD, al
.none:
	push ecx
	mov ecx, POLL_SPIN
.spin:
	dec ecx
	jnz .spin
	pop ecx
	ret

; edge: waits for the next rising edge of OUT2, taking requests meanwhile.
edge:
	call take
	call out2
	jnz edge
.low:
	call take
	call out2
	jz .low
	ret

; window: EAX = IRQ0 requests taken in the ten reference periods that follow
; the next rising edge of OUT2.
window:
	push ebx
	push ecx
	call edge
	xor ebx, ebx
	mov ecx, 10
.period:
	call edge
	loop .period
	mov eax, ebx
	pop ecx
	pop ebx
	ret

key_windows: db "windows=", 0
windows: dd 0
done: dd 0

GUEST_END
