; Entry of the host timer interrupt (IRQ0, vector 0x20): counts the tick and
; acknowledges it at the master 8259; and of the other PIC vectors. Touches no register but RAX, and no stack
; but the CPU's own frame, so it may interrupt any host code that opened an
; interrupt window. Intel 8259A datasheet, "Operation Command Word 2" (EOI).

global irq_timer_entry, irq_timer_ticks, irq_other_entry, irq_other_count

section .text
bits 64
irq_timer_entry:
	push rax
	lock inc qword [rel irq_timer_ticks]
	mov al, 0x20                    ; OCW2: non-specific EOI
	out 0x20, al
	pop rax
	iretq

; Any other PIC vector (0x21-0x2F). Only spurious interrupts arrive here (every
; other line stays masked): the 8259 raises IRQ7 or IRQ15 when a request went
; away before the CPU acknowledged it. A non-specific EOI to both PICs is
; harmless then, since nothing else is ever in service.
irq_other_entry:
	push rax
	lock inc qword [rel irq_other_count]
	mov al, 0x20
	out 0xA0, al
	out 0x20, al
	pop rax
	iretq

section .bss
align 8
irq_timer_ticks:
	resq 1
irq_other_count:
	resq 1

section .note.GNU-stack noalloc noexec nowrite progbits
