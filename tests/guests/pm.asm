; pm: the ACPI PM timer and PM1 control block as a guest that read the FADT
; would use them (PM_TMR_BLK 0x608, PM1a_CNT_BLK 0x604). It measures the TSC
; against the PIT over 0.5 s and, over the same interval, the PM timer
; (24 bits, wrapping): its rate against the TSC must be 3579545 Hz +-0.1 %.
; Prints "pm: timer N Hz against the TSC", then powers off through S5
; (SLP_TYP 0, SLP_EN); should that return it prints "pm: FAILED" and exits 1.
; ACPI 6.4 4.8.3.3 "Power Management Timer", 4.8.3.2.1 "PM1 Control
; Registers"; Intel 8254 datasheet, "Mode 2".
%include "guest.inc"
%include "tsc.inc"

PM1A_CNT     equ 0x604
PM_TMR       equ 0x608
PM_HZ        equ 3579545
SLP_EN       equ 0x2000

%macro CHECK 2                                  ; CHECK cc, "what failed"
	j%1 %%ok
	PRINT "pm: FAILED: "
	PRINT %2
	call newline
	mov eax, 1
	ret
%%ok:
%endmacro

main:
	; TSC and PM timer together against 0.5 s of PIT clocks.
	call pit_start
	call pit_now
	mov [pit_last], ax
	mov dx, PM_TMR
	in eax, dx
	mov [pm0], eax
	rdtsc
	mov [tsc0], eax
	mov [tsc0 + 4], edx
	xor ecx, ecx
.wait:
	call pit_elapsed
	cmp ecx, PIT_HZ / 2
	jb .wait
	mov dx, PM_TMR
	in eax, dx
	mov [pm1], eax
	rdtsc
	sub eax, [tsc0]
	sbb edx, [tsc0 + 4]
	mov [tsc_delta], eax                    ; < 2^32 below 8 GHz
	; TSC kHz = TSC ticks * PIT_HZ / (PIT clocks * 1000)
	mov ebx, PIT_HZ
	mul ebx
	mov ebx, ecx
	imul ebx, ebx, 1000
	div ebx
	mov [tsc_khz], eax
	; PM ticks, 24 bits wrapping (0.5 s is far below the 4.7 s wrap)
	mov eax, [pm1]
	sub eax, [pm0]
	and eax, 0xFFFFFF
	mov [pm_delta], eax
	; PM Hz against the TSC = PM ticks * TSC kHz / (TSC ticks / 1000)
	mov eax, [tsc_delta]
	xor edx, edx
	mov ebx, 1000
	div ebx
	mov ebx, eax
	mov eax, [pm_delta]
	mul dword [tsc_khz]
	div ebx
	mov [pm_hz], eax
	PRINT "pm: TSC "
	mov eax, [tsc_khz]
	call putdec
	PRINT " kHz by the PIT; timer "
	mov eax, [pm_hz]
	call putdec
	PRINT " Hz against the TSC"
	call newline
	mov eax, [pm_hz]
	cmp eax, PM_HZ - PM_HZ / 1000
	CHECK ae, "the PM timer runs slow"
	cmp eax, PM_HZ + PM_HZ / 1000
	CHECK be, "the PM timer runs fast"
	mov dx, PM_TMR + 3
	in al, dx
	test al, al
	CHECK z, "the PM timer has bits above 23 (TMR_VAL_EXT is clear)"

	PRINT "pm: powering off (S5)"
	call newline
	mov dx, PM1A_CNT
	mov ax, SLP_EN                          ; SLP_TYP 0 (\_S5), SLP_EN
	out dx, ax
	mov eax, 100000
	call tsc_wait_us
	PRINT "pm: FAILED: still running after S5"
	call newline
	mov eax, 1
	ret

align 8
tsc0: dq 0
pm0: dd 0
pm1: dd 0
pm_delta: dd 0
tsc_delta: dd 0
pm_hz: dd 0

GUEST_END
