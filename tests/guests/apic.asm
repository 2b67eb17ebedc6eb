; apic: the local APIC as a guest sees it, in the style of kvm-unit-tests'
; apic.c. Without interrupts (IF=0): CPUID and IA32_APIC_BASE, ID and
; version, TPR/PPR, a self IPI seen in IRR, ESR, the timer in one-shot,
; periodic and TSC-deadline modes seen in IRR and the current count, the
; timer's rate against the 8254 (channel 2, 50 ms), the x2APIC mode switch.
; With the word "irq" on the command line it also takes interrupts: the
; order of three self IPIs by priority, and the timer counted in 50 ms.
; With windows=N it does only this: a periodic 1 kHz timer counted in
; windows of 100 ms of the 8254 (channel 2, a 20 Hz square wave), printing
; "apic: window K: T ticks" (100, 95-103 each), exiting after N windows or,
; with N = 0, running until stopped (the snapshot test saves it so).
; Prints "apic: ..." lines, exits 0; a failed check prints "apic: FAILED"
; and exits 1. SDM Vol. 3A chapter 11 "Advanced Programmable Interrupt
; Controller (APIC)".
%include "guest.inc"
%include "intr.inc"

APIC         equ 0xFEE00000
PORT_B       equ 0x61
PIT_CH2      equ 0x42
PIT_CMD      equ 0x43
REF_COUNT    equ 59659                          ; 50.000 ms at 1.193182 MHz
TIMER_50MS   equ 3125000                        ; 1 GHz / 16 over 50 ms
POLL_MAX     equ 2000000

%macro CHECK 2                                  ; CHECK cc, "what failed"
	j%1 %%ok
	PRINT "apic: FAILED: "
	PRINT %2
	call newline
	mov eax, 1
	ret
%%ok:
%endmacro

%macro SAY 1
	PRINT "apic: "
	PRINT %1
	call newline
%endmacro

; IRR_BIT vec: ZF clear when vector vec is set in IRR
%macro IRR_BIT 1
	mov eax, [APIC + 0x200 + (%1 / 32) * 16]
	test eax, 1 << (%1 % 32)
%endmacro

main:
	mov esi, key_windows
	call get_num
	jc .tests
	mov [windows], eax
	jmp run_windows
.tests:
	mov eax, 1
	cpuid
	test edx, 1 << 9
	CHECK nz, "CPUID.1:EDX.APIC is clear"
	test ecx, 1 << 21
	CHECK nz, "CPUID.1:ECX.x2APIC is clear"
	test ecx, 1 << 24
	CHECK nz, "CPUID.1:ECX.TSC-deadline is clear"
	mov ecx, 0x1B
	rdmsr
	cmp eax, 0xFEE00900
	CHECK e, "IA32_APIC_BASE is not 0xfee00900"
	mov eax, [APIC + 0x20]
	test eax, eax
	CHECK z, "APIC ID is not 0"
	mov eax, [APIC + 0x30]
	cmp al, 0x14
	CHECK e, "version is not 0x14"
	shr eax, 16
	cmp al, 5
	CHECK e, "max LVT entry is not 5"
	SAY "id 0 version 0x14 maxlvt 5"

	mov eax, [APIC + 0xF0]
	cmp eax, 0xFF
	CHECK e, "SVR is not 0xff at power-on"
	mov dword [APIC + 0xF0], 0x1FF          ; software enable
	mov dword [APIC + 0x80], 0x5A
	mov eax, [APIC + 0xA0]
	cmp eax, 0x5A
	CHECK e, "PPR does not follow TPR 0x5a"
	mov dword [APIC + 0x80], 0
	mov eax, [APIC + 0xA0]
	test eax, eax
	CHECK z, "PPR is not 0 with TPR 0"
	SAY "TPR/PPR ok"

	mov dword [APIC + 0x300], 0x40061       ; self, fixed, vector 0x61
	mov dword [APIC + 0x300], 0x40091
	mov dword [APIC + 0x300], 0x40071
	IRR_BIT 0x61
	CHECK nz, "self IPI 0x61 not in IRR"
	IRR_BIT 0x91
	CHECK nz, "self IPI 0x91 not in IRR"
	SAY "self-IPI sets IRR"

	mov dword [APIC + 0x280], 0
	mov dword [APIC + 0x300], 0x40005       ; illegal vector
	mov dword [APIC + 0x280], 0
	mov eax, [APIC + 0x280]
	test eax, 0x20
	CHECK nz, "ESR does not show the illegal vector sent"
	SAY "ESR send illegal vector"

	; one-shot, vector 0x40, 100 us at 1 GHz
	mov dword [APIC + 0x3E0], 0xB           ; divide by 1
	mov dword [APIC + 0x320], 0x40
	mov dword [APIC + 0x380], 100000
	mov eax, [APIC + 0x390]
	cmp eax, 100000
	CHECK be, "one-shot current count above the initial count"
	mov ecx, POLL_MAX
.oneshot:
	IRR_BIT 0x40
	jnz .oneshot_done
	loop .oneshot
.oneshot_done:
	IRR_BIT 0x40
	CHECK nz, "one-shot timer never set IRR"
	mov eax, [APIC + 0x390]
	test eax, eax
	CHECK z, "one-shot current count is not 0 after expiry"
	SAY "one-shot timer expires"

	; periodic, vector 0x41, 50 us
	mov dword [APIC + 0x320], 0x20041
	mov dword [APIC + 0x380], 50000
	mov ecx, POLL_MAX
.periodic:
	IRR_BIT 0x41
	jnz .periodic_done
	loop .periodic
.periodic_done:
	IRR_BIT 0x41
	CHECK nz, "periodic timer never set IRR"
	mov eax, [APIC + 0x390]
	test eax, eax
	CHECK nz, "periodic current count is 0"
	cmp eax, 50000
	CHECK be, "periodic current count above the initial count"
	mov dword [APIC + 0x380], 0             ; stop
	SAY "periodic timer reloads"

	; TSC-deadline, vector 0x42
	mov dword [APIC + 0x320], 0x40042
	rdtsc
	add eax, 200000
	adc edx, 0
	mov ecx, 0x6E0
	wrmsr
	mov ecx, POLL_MAX
.deadline:
	IRR_BIT 0x42
	jnz .deadline_done
	loop .deadline
.deadline_done:
	IRR_BIT 0x42
	CHECK nz, "TSC-deadline timer never set IRR"
	mov ecx, 0x6E0
	rdmsr
	or eax, edx
	CHECK z, "IA32_TSC_DEADLINE is not 0 after it fired"
	SAY "TSC-deadline timer fires"

	call rate
	test eax, eax
	jnz .ret

	push esi
	mov esi, word_irq
	call has_word
	pop esi
	test eax, eax
	jz .no_irq
	call with_irq
	test eax, eax
	jnz .ret
.no_irq:
	call x2apic
.ret:
	ret

;; rate: the timer's count against the 8254's channel 2 (mode 0 from 0xffff,
; gated on port 0x61) over about 48 ms: at 1 GHz / 16 the timer counts
; 3125000 / 59659 ticks per 8254 tick; it must, within 1 %. Each end is
; sampled as (timer, 8254, timer) and taken again when the two timer reads
; lie far apart (the VM was descheduled between them).
rate:
	mov dword [APIC + 0x320], 0x10040       ; one-shot, masked
	mov dword [APIC + 0x3E0], 0x3           ; divide by 16
	mov dword [APIC + 0x380], 0xFFFFFFFF
	in al, PORT_B
	and al, 0xFC                            ; gate 2 low, speaker off
	out PORT_B, al
	mov al, 0xB0                            ; channel 2, lo/hi, mode 0
	out PIT_CMD, al
	mov al, 0xFF
	out PIT_CH2, al
	out PIT_CH2, al
	in al, PORT_B
	or al, 1                                ; gate up: the count starts
	out PORT_B, al
	call sample
	mov [pit0], ebx
	mov [apic0], esi
	mov ecx, POLL_MAX
.wait:
	call sample
	cmp ebx, 0x2000
	jbe .done
	loop .wait
.done:
	mov eax, [pit0]
	sub eax, ebx                            ; 8254 ticks
	mov edi, [apic0]
	sub edi, esi                            ; timer ticks
	mov ebx, 3125000
	mul ebx
	mov ebx, 59659
	div ebx                                 ; expected timer ticks
	mov ebx, eax
	PRINT "apic: timer ticks: "
	mov eax, edi
	call putdec
	PRINT " expected "
	mov eax, ebx
	call putdec
	call newline
	mov eax, ebx
	xor edx, edx
	mov ecx, 100
	div ecx                                 ; 1 %
	mov ecx, ebx
	sub ecx, eax
	cmp edi, ecx
	CHECK ae, "the timer runs slow against the 8254"
	add ebx, eax
	cmp edi, ebx
	CHECK be, "the timer runs fast against the 8254"
	mov dword [APIC + 0x380], 0
	xor eax, eax
	ret

; sample: EBX = 8254 channel 2's count, ESI = the timer's current count
; read around it (their mean), retried while the two reads lie > 10000 apart.
sample:
	mov edx, 8
.again:
	mov esi, [APIC + 0x390]
	mov al, 0x80                            ; latch channel 2
	out PIT_CMD, al
	in al, PIT_CH2
	mov bl, al
	in al, PIT_CH2
	mov bh, al
	movzx ebx, bx
	mov edi, [APIC + 0x390]
	mov eax, esi
	sub eax, edi
	cmp eax, 10000
	jbe .ok
	dec edx
	jnz .again
.ok:
	shr eax, 1
	sub esi, eax
	ret

; x2apic: EN|EXTD, the registers as MSRs, a SELF IPI, back through disabled.
x2apic:
	mov ecx, 0x1B
	rdmsr
	or eax, 0xC00
	wrmsr
	mov ecx, 0x802
	rdmsr
	test eax, eax
	CHECK z, "x2APIC ID is not 0"
	mov ecx, 0x803
	rdmsr
	cmp al, 0x14
	CHECK e, "x2APIC version is not 0x14"
	mov ecx, 0x80D
	rdmsr
	cmp eax, 1
	CHECK e, "x2APIC LDR is not 1"
	mov eax, [APIC + 0x30]
	cmp eax, 0xFFFFFFFF
	CHECK e, "the xAPIC page still answers in x2APIC mode"
	mov ecx, 0x83F
	mov eax, 0x62
	xor edx, edx
	wrmsr
	mov ecx, 0x823
	rdmsr
	test eax, 1 << 2
	CHECK nz, "x2APIC SELF IPI 0x62 not in IRR"
	mov ecx, 0x1B
	rdmsr
	and eax, ~0xC00
	wrmsr                                   ; disabled
	or eax, 0x800
	wrmsr                                   ; xAPIC again
	mov eax, [APIC + 0x30]
	cmp al, 0x14
	CHECK e, "the xAPIC page does not answer after x2APIC"
	mov eax, [APIC + 0xF0]
	cmp eax, 0xFF
	CHECK e, "SVR is not 0xff after a global disable"
	SAY "x2APIC mode switch ok"
	xor eax, eax
	ret

; ---- with interrupts ------------------------------------------------------

%macro HANDLER 1
vec_%1:
	push eax
	mov eax, [order_n]
	mov byte [order + eax], %1
	inc dword [order_n]
	mov dword [APIC + 0xB0], 0
	pop eax
	iret
%endmacro
HANDLER 0x61
HANDLER 0x71
HANDLER 0x91
HANDLER 0x42

timer_isr:
	inc dword [ticks]
	mov dword [APIC + 0xB0], 0
	iret

with_irq:
	mov eax, 0x61
	mov edx, vec_0x61
	call set_gate
	mov eax, 0x71
	mov edx, vec_0x71
	call set_gate
	mov eax, 0x91
	mov edx, vec_0x91
	call set_gate
	mov eax, 0x42
	mov edx, vec_0x42
	call set_gate
	mov eax, 0x40
	mov edx, timer_isr
	call set_gate
	mov eax, 0x41
	mov edx, timer_isr
	call set_gate
	lidt [idt_desc]
	mov dword [ticks], 0
	sti                                     ; IRR: 0x40, 0x41, 0x42, 0x61, 0x71, 0x91
	nop
	nop
	cli
	; by priority: 0x91, 0x71, 0x61, then 0x42 (0x40/0x41 count in ticks)
	cmp dword [order_n], 4
	CHECK e, "not four interrupts from the self IPIs and the deadline"
	cmp dword [order], 0x42617191
	CHECK e, "the interrupts did not come in priority order"
	cmp dword [ticks], 2
	CHECK e, "not two timer interrupts from the one-shot and periodic"
	SAY "EOI order by priority: 0x91 0x71 0x61 0x42"

	; periodic at 1 kHz, counted over 50 ms of the 8254
	mov dword [ticks], 0
	mov dword [APIC + 0x3E0], 0x3
	mov dword [APIC + 0x320], 0x20040
	mov dword [APIC + 0x380], 62500
	in al, PORT_B
	and al, 0xFC
	out PORT_B, al
	mov al, 0xB0
	out PIT_CMD, al
	mov al, REF_COUNT & 0xFF
	out PIT_CH2, al
	mov al, REF_COUNT >> 8
	out PIT_CH2, al
	mov ebx, [ticks]
	in al, PORT_B
	or al, 1
	sti
	out PORT_B, al
	mov ecx, POLL_MAX * 4
.wait:
	in al, PORT_B
	test al, 0x20
	jnz .done
	loop .wait
.done:
	cli
	mov eax, [ticks]
	sub eax, ebx
	mov dword [APIC + 0x380], 0
	PRINT "apic: periodic 1 kHz interrupts in 50 ms: "
	call putdec
	call newline
	cmp eax, 49
	CHECK ae, "too few periodic interrupts"
	cmp eax, 51
	CHECK be, "too many periodic interrupts"
	xor eax, eax
	ret

; ---- windows -------------------------------------------------------------------

; out2: ZF clear while OUT2 is high.
out2:
	in al, PORT_B
	test al, 0x20
	ret

; rising: waits for the next rising edge of OUT2.
rising:
	call out2
	jnz rising
.low:
	call out2
	jz .low
	ret

run_windows:
	mov eax, 0x40
	mov edx, timer_isr
	call set_gate
	lidt [idt_desc]
	mov dword [APIC + 0xF0], 0x1FF
	mov dword [APIC + 0x3E0], 0x3           ; 1 GHz / 16
	mov dword [APIC + 0x320], 0x20040       ; periodic, vector 0x40
	mov dword [APIC + 0x380], 62500         ; 1 ms
	in al, PORT_B
	and al, 0xFC
	out PORT_B, al
	mov al, 0xB6                            ; channel 2, lo/hi, mode 3
	out PIT_CMD, al
	mov al, REF_COUNT & 0xFF
	out PIT_CH2, al
	mov al, REF_COUNT >> 8
	out PIT_CH2, al
	in al, PORT_B
	or al, 1
	out PORT_B, al
	sti
	call rising
	mov ebx, [ticks]
	mov edi, 1                              ; window number
.window:
	call rising
	call rising
	mov eax, [ticks]
	mov ecx, eax
	sub eax, ebx                            ; this window's interrupts
	mov ebx, ecx
	PRINT "apic: window "
	push eax
	mov eax, edi
	call putdec
	pop eax
	PRINT ": "
	call putdec
	PRINT " ticks"
	call newline
	; 95-103, as eventinj's IRQ0: this line goes out through
	; Amber's console inside the exit, holding the vCPU 3-7 ms while the
	; timer goes on; its ticks merge in the IRR.
	cmp eax, 95
	CHECK ae, "too few timer interrupts in a window"
	cmp eax, 103
	CHECK be, "too many timer interrupts in a window"
	inc edi
	mov eax, [windows]
	test eax, eax
	jz .window
	cmp edi, eax
	jbe .window
	cli
	xor eax, eax
	ret

key_windows: db "windows=", 0
windows: dd 0
word_irq: db "irq", 0
order_n: dd 0
order: dd 0, 0
ticks: dd 0
pit0: dd 0
apic0: dd 0

GUEST_END
