; ioapic: the I/O APIC at 0xFEC00000 as a guest sees it, polling (IF=0):
; IOAPICID/VER/ARB, an index past the table (reads 0, writes ignored), the
; 8254's IRQ0 arriving at pin 2 (the MADT's override) and not at pin 0, an
; edge entry setting the LAPIC's IRR, a masked entry not, and a level entry
; whose Remote IRR holds until the EOI register, which re-raises a line still
; asserted. With the word "irq" it then takes the interrupts (IF=1, an
; IDT): IRQ0 through GSI 2 edge-triggered, a level line its handler lowers
; before the LAPIC EOI (one interrupt, Remote IRR clear after the EOI's
; broadcast), and a level line held high through two EOIs (three
; interrupts). Prints "ioapic: ..." lines and exits 0; a failed check prints
; "ioapic: FAILED" and exits 1. 82093AA datasheet, "I/O Redirection Table
; Registers"; SDM Vol. 3A 11.8.5 "Signaling Interrupt Servicing Completion".
%include "guest.inc"
%include "intr.inc"

APIC         equ 0xFEE00000
IOAPIC       equ 0xFEC00000
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
	push esi
	mov esi, word_irq
	call has_word
	pop esi
	test eax, eax
	jz .done
	jmp with_irq
.done:
	xor eax, eax
	ret

; ---- with interrupts --------------------------------------------------------

eoi_isr:                                        ; the polled part's leftovers
	mov dword [APIC + 0xB0], 0
	iret

edge_isr:                                       ; vector 0x60
	inc dword [edges]
	mov dword [APIC + 0xB0], 0
	iret

lower_isr:                                      ; vector 0x61: lowers the line
	push eax
	inc dword [levels]
	mov al, 0x30                            ; 8254 mode 0: OUT0 low
	out PIT_CMD, al
	mov dword [APIC + 0xB0], 0              ; EOI, broadcast to the IOAPIC
	pop eax
	iret

held_isr:                                       ; vector 0x62: lowers it the 3rd time
	push eax
	inc dword [helds]
	cmp dword [helds], 3
	jb .eoi
	mov al, 0x30
	out PIT_CMD, al
.eoi:
	mov dword [APIC + 0xB0], 0
	pop eax
	iret

; wait_for [var], n: HLT until the counter reaches n (bounded)
%macro WAIT_FOR 2
	mov ecx, 10000
%%again:
	cmp dword [%1], %2
	jae %%done
	sti
	hlt
	cli
	loop %%again
%%done:
%endmacro

with_irq:
	mov eax, 0x50
.leftover:
	mov edx, eoi_isr
	push eax
	call set_gate
	pop eax
	inc eax
	cmp eax, 0x54
	jb .leftover
	mov eax, 0x60
	mov edx, edge_isr
	call set_gate
	mov eax, 0x61
	mov edx, lower_isr
	call set_gate
	mov eax, 0x62
	mov edx, held_isr
	call set_gate
	lidt [idt_desc]
	IOWR 0x14, 0x10060                      ; masked while the 8254 changes
	mov dword [IOAPIC + 0x40], 0x53         ; leftovers of the polled part
	mov ecx, 8
.drain:                                         ; IRR from the polled part
	sti
	nop
	cli
	loop .drain
	mov al, 0x34                            ; IRQ0 at 100 Hz, mode 2
	out PIT_CMD, al
	mov al, 11932 & 0xFF
	out PIT_CH0, al
	mov al, 11932 >> 8
	out PIT_CH0, al
	IOWR 0x14, 0x60                         ; edge, unmasked
	WAIT_FOR edges, 5
	cmp dword [edges], 5
	CHECK ae, "IRQ0 through GSI 2 was not delivered five times"
	SAY "IRQ0 -> GSI 2 edge delivered"

	IOWR 0x14, 0x10061
	mov al, 0x30                            ; OUT0 low until the count ends
	out PIT_CMD, al
	IOWR 0x14, 0x8061                       ; level, unmasked
	mov al, 1000 & 0xFF
	out PIT_CH0, al
	mov al, 1000 >> 8
	out PIT_CH0, al
	WAIT_FOR levels, 1
	mov ecx, 2000                           ; a while for a wrong second one
.settle:
	in al, PIC_M_DATA
	sti
	nop
	cli
	loop .settle
	cmp dword [levels], 1
	CHECK e, "a lowered level line did not interrupt exactly once"
	IORD 0x14
	test eax, REMOTE_IRR
	CHECK z, "the LAPIC EOI's broadcast did not clear Remote IRR"
	mov eax, [APIC + 0x180 + (0x61 / 32) * 16]
	test eax, 1 << (0x61 % 32)
	CHECK z, "TMR still holds the level vector after its EOI"
	SAY "level EOI broadcast clears Remote IRR"

	IOWR 0x14, 0x10062
	IOWR 0x14, 0x8062
	mov al, 1000 & 0xFF
	out PIT_CH0, al
	mov al, 1000 >> 8
	out PIT_CH0, al
	WAIT_FOR helds, 3
	mov ecx, 2000
.settle2:
	in al, PIC_M_DATA
	sti
	nop
	cli
	loop .settle2
	cmp dword [helds], 3
	CHECK e, "a held level line did not interrupt exactly three times"
	SAY "held level line interrupts again after each EOI"
	IOWR 0x14, 0x10000
	xor eax, eax
	ret

word_irq: db "irq", 0
edges: dd 0
levels: dd 0
helds: dd 0

GUEST_END
