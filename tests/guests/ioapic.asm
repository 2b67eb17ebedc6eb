; ioapic: the I/O APIC at 0xFEC00000 as a guest sees it, polling (IF=0):
; IOAPICID/VER/ARB, an index past the table (reads 0, writes ignored), the
; 8254's IRQ0 arriving at pin 2 (the MADT's override) and not at pin 0, an
; edge entry setting the LAPIC's IRR, a masked entry not, and a level entry
; whose Remote IRR holds until the EOI register, which re-raises a line still
; asserted. Prints "ioapic: ..." lines and exits 0; a failed check prints
; "ioapic: FAILED" and exits 1. 82093AA datasheet, "I/O Redirection Table
; Registers"; SDM Vol. 3A 11.8.5 "Signaling Interrupt Servicing Completion".
%include "guest.inc"

APIC         equ 0xFEE00000
IOAPIC       equ 0xFEC00000
PIC_M_DATA   equ 0x21
PIT_CH0      equ 0x40
PIT_CMD      equ 0x43
POLL_MAX     equ 2000000
REMOTE_IRR   equ 1 << 14

%macro CHECK 2
	j%1 %%ok
	PRINT "ioapic: FAILED: "
	PRINT %2
	call newline
	mov eax, 1
	ret
%%ok:
%endmacro

%macro SAY 1
	PRINT "ioapic: "
	PRINT %1
	call newline
%endmacro

%macro IRR_BIT 1
	mov eax, [APIC + 0x200 + (%1 / 32) * 16]
	test eax, 1 << (%1 % 32)
%endmacro

; IORD idx -> EAX; IOWR idx, value
%macro IORD 1
	mov dword [IOAPIC], %1
	mov eax, [IOAPIC + 0x10]
%endmacro
%macro IOWR 2
	mov dword [IOAPIC], %1
	mov dword [IOAPIC + 0x10], %2
%endmacro

main:
	mov dword [APIC + 0xF0], 0x1FF
	IORD 0
	shr eax, 24
	cmp eax, 8
	CHECK e, "IOAPIC id is not 8"
	IORD 1
	cmp eax, 0x00170020
	CHECK e, "IOAPICVER is not 0x00170020"
	IORD 2
	shr eax, 24
	cmp eax, 8
	CHECK e, "IOAPICARB is not 8"
	IORD 0x14
	cmp eax, 0x10000
	CHECK e, "entry 2 is not masked at power-on"
	IOWR 0x40, 0x12345678                   ; past the table
	IORD 0x40
	test eax, eax
	CHECK z, "index 0x40 does not read 0"
	IOWR 0xFF, 0xFFFFFFFF
	IORD 0xFF
	test eax, eax
	CHECK z, "index 0xff does not read 0"
	IORD 1
	cmp eax, 0x00170020
	CHECK e, "a write past the table changed IOAPICVER"
	SAY "id 8 version 0x20 24 pins"

	; IRQ0 at 100 Hz (mode 2); pin 2 edge -> 0x50, pin 0 -> 0x52
	IOWR 0x10, 0x52
	IOWR 0x14, 0x50
	IOWR 0x15, 0
	mov al, 0x34
	out PIT_CMD, al
	mov al, 11932 & 0xFF
	out PIT_CH0, al
	mov al, 11932 >> 8
	out PIT_CH0, al
	mov ecx, POLL_MAX
.edge:
	in al, PIC_M_DATA                       ; lets the 8254 catch up
	IRR_BIT 0x50
	jnz .edge_done
	loop .edge
.edge_done:
	IRR_BIT 0x50
	CHECK nz, "IRQ0 never reached pin 2 (vector 0x50 not in IRR)"
	IRR_BIT 0x52
	CHECK z, "IRQ0 reached pin 0"
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK z, "an edge entry shows Remote IRR"
	SAY "IRQ0 -> GSI 2 edge sets IRR"

	; masked: vector 0x51 never arrives while IRQ0 keeps ticking
	IOWR 0x14, 0x10051
	mov ecx, POLL_MAX / 20
.masked:
	in al, PIC_M_DATA
	IRR_BIT 0x51
	jnz .masked_seen
	loop .masked
.masked_seen:
	IRR_BIT 0x51
	CHECK z, "a masked entry delivered"
	IOWR 0x14, 0x51                         ; unmasked: the next edge arrives
	mov ecx, POLL_MAX
.unmasked:
	in al, PIC_M_DATA
	IRR_BIT 0x51
	jnz .unmasked_done
	loop .unmasked
.unmasked_done:
	IRR_BIT 0x51
	CHECK nz, "the unmasked entry never delivered"
	SAY "masking holds edges back"

	; level: 8254 mode 0 keeps OUT0 low until the count ends, then high
	IOWR 0x14, 0x10053
	mov al, 0x30                            ; channel 0, mode 0: OUT0 low
	out PIT_CMD, al
	IOWR 0x14, 0x8053                       ; level, active high, unmasked
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK z, "Remote IRR set while the line is low"
	mov al, 1000 & 0xFF
	out PIT_CH0, al
	mov al, 1000 >> 8
	out PIT_CH0, al
	mov ecx, POLL_MAX
.level:
	in al, PIC_M_DATA
	IORD 0x14
	test eax, REMOTE_IRR
	jnz .level_done
	loop .level
.level_done:
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK nz, "Remote IRR never set by the level line"
	IRR_BIT 0x53
	CHECK nz, "the level entry did not set IRR"
	mov dword [IOAPIC + 0x40], 0x53         ; EOI: line still high
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK nz, "EOI with the line high did not deliver again"
	mov al, 0x30                            ; OUT0 low
	out PIT_CMD, al
	in al, PIC_M_DATA
	mov dword [IOAPIC + 0x40], 0x52         ; another vector: no effect
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK nz, "EOI of another vector cleared Remote IRR"
	mov dword [IOAPIC + 0x40], 0x53
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK z, "EOI did not clear Remote IRR"
	SAY "level Remote IRR until EOI"
	xor eax, eax
	ret

GUEST_END
