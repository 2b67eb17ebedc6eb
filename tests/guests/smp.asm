; smp: several vCPUs, in the style of kvm-unit-tests' smptest. The BSP reads
; the vCPU count from fw_cfg (NB_CPUS, QEMU docs/specs/fw_cfg.rst) and starts
; every AP with INIT-SIPI-SIPI by physical APIC id (SDM Vol. 3A 9.4.4.1
; "Typical BSP Initialization Sequence", MP spec 1.4 B.4 "Application
; Processor Startup") through a real-mode trampoline copied to 0x10000
; (SIPI vector 0x10); each AP goes to 32-bit protected mode on its own stack.
; Then: every vCPU counts in its own memory page to iters=N (default
; 200000), checking it against a register, and reports; a barrier across
; all vCPUs between the steps; IPIs of each kind arrive where sent, counted
; per vCPU by their handlers: fixed and NMI by physical id, lowest priority
; (exactly one AP takes it), logical flat, the shorthands all-but-self, self
; and all-including-self, an AP-to-AP ring that wakes vCPUs sitting in HLT,
; and in x2APIC mode physical and logical (cluster) IPIs both ways.
; Prints "smp: ..." lines and exits 0 on port 0xF4; a failed check prints
; "smp: FAILED: ..." and exits 1.
; Words: `count every=N`: once the APs are up every vCPU counts forever,
; printing "smp: cpu K count=M" after every N steps (default 2000000),
; each step checked against its memory (snapshot tests). `wait`: the BSP
; leaves the APs waiting for their STARTUP IPI until a key arrives on COM1.
; `pingpong`: once the APs are up, vCPU 0 sends vCPU 1 a fixed IPI, whose
; handler answers with one back, `rounds=N` times (default 1000), vCPU 1
; waiting in HLT between them; prints "smp: ipi round trip T ticks" (T: the
; mean in TSC ticks) and exits 0 (the IPI round trip of `make bench`).
%include "guest.inc"

APIC         equ 0xFEE00000
FW_CFG_SEL   equ 0x510
FW_CFG_DATA  equ 0x511
FW_CFG_NB_CPUS equ 0x05
TRAMPOLINE   equ 0x10000                        ; SIPI vector 0x10
MAX_CPUS     equ 8
PAGES        equ 0x400000                       ; each vCPU's own page (4 KiB)
STACKS       equ 0x410000                       ; each vCPU's stack (4 KiB)
TIMEOUT_HI   equ 4                              ; about 2^34 TSC ticks
DEFAULT_ITERS equ 200000
DEFAULT_EVERY equ 2000000

; vectors and the per-vCPU counters their handlers increment
V_FIXED      equ 0x40
V_LOWEST     equ 0x41
V_LOGICAL    equ 0x42
V_ALLBUT     equ 0x43
V_SELF       equ 0x44
V_ALL        equ 0x45
V_RING       equ 0x46
V_X2PHYS     equ 0x47
V_X2LOG      equ 0x48
V_PING       equ 0x49
V_PONG       equ 0x4A
DEFAULT_ROUNDS equ 1000

%macro FAIL 1
	PRINT "smp: FAILED: "
	PRINT %1
	call newline
	mov al, 1
	jmp exit
%endmacro

; CHECK cc, "what failed"
%macro CHECK 2
	j%1 %%ok
	FAIL %2
%%ok:
%endmacro

main:
	; the BSP moves to the per-vCPU stack of id 0: a handler finds its vCPU
	; by its stack (my_id)
	mov esp, STACKS + 4096
	mov esi, key_iters
	call get_num
	jnc .iters
	mov eax, DEFAULT_ITERS
.iters:
	mov [iters], eax
	mov esi, key_every
	call get_num
	jnc .every
	mov eax, DEFAULT_EVERY
.every:
	test eax, eax
	jnz .every_ok
	inc eax
.every_ok:
	mov [every], eax
	mov esi, word_count
	call has_word
	mov [count_mode], eax
	mov esi, word_pingpong
	call has_word
	mov [pingpong_mode], eax
	mov esi, key_rounds
	call get_num
	jnc .rounds
	mov eax, DEFAULT_ROUNDS
.rounds:
	test eax, eax
	jnz .rounds_ok
	inc eax
.rounds_ok:
	mov [rounds], eax

	; the vCPU count, from fw_cfg
	mov dx, FW_CFG_SEL
	mov ax, FW_CFG_NB_CPUS
	out dx, ax
	mov dx, FW_CFG_DATA
	in al, dx
	movzx ebx, al
	in al, dx
	movzx eax, al
	shl eax, 8
	or eax, ebx
	test eax, eax
	CHECK nz, "fw_cfg NB_CPUS is 0"
	cmp eax, MAX_CPUS
	CHECK be, "fw_cfg NB_CPUS above 8"
	mov [ncpus], eax
	PRINT "smp: "
	call putdec
	PRINT " vCPUs (fw_cfg NB_CPUS)"
	call newline

	call idt_init
	mov al, 0xFF                            ; the 8259A masked: only IPIs come
	out 0x21, al
	out 0xA1, al
	call cpu_setup                          ; the BSP's LAPIC, id 0
	mov dword [APIC + 0x350], 0x10000       ; LVT LINT0 masked
	; nothing comes now but the IPIs sent, and a wait with IF=1 lets a
	; hypervisor end the slice (Bochs' AMD-V cannot preempt IF=0)
	sti
	mov eax, [APIC + 0x20]
	shr eax, 24
	CHECK z, "the BSP's APIC id is not 0"

	mov esi, word_wait
	call has_word
	test eax, eax
	jz .start_aps
	PRINT "smp: APs wait for SIPI; a key starts them"
	call newline
.key:
	mov dx, COM1 + 5
	in al, dx
	test al, 1
	jnz .got_key
	pause
	jmp .key
.got_key:
	mov dx, COM1
	in al, dx

.start_aps:
	; the trampoline below 1 MiB, at the SIPI vector's page
	mov esi, trampoline
	mov edi, TRAMPOLINE
	mov ecx, trampoline_end - trampoline
	rep movsb
	mov dword [started], 1                  ; the BSP
	mov ebx, 1
.next_ap:
	cmp ebx, [ncpus]
	jae .all_up
	call start_ap
	inc ebx
	jmp .next_ap
.all_up:
	PRINT "smp: "
	mov eax, [ncpus]
	call putdec
	PRINT " vCPUs up"
	call newline
	xor eax, eax
	jmp cpu_main

; start_ap: INIT, then two STARTUP IPIs, to APIC id EBX; waits until it
; checks in (SDM Vol. 3A 9.4.4.1: INIT, 10 ms, SIPI, 200 us, SIPI).
start_ap:
	mov edx, ebx
	mov eax, 0xC500                         ; INIT, level, assert
	call send_ipi
	mov eax, 0x8500                         ; INIT, level, de-assert
	call send_ipi
	mov ecx, 10000
.d1:	pause
	loop .d1
	mov eax, 0x4600 | (TRAMPOLINE >> 12)    ; STARTUP
	call send_ipi
	mov ecx, 1000
.d2:	pause
	loop .d2
	mov eax, 0x4600 | (TRAMPOLINE >> 12)
	call send_ipi
	lea eax, [ebx + 1]
	mov esi, started
	call wait_ge
	jnc .up
	PRINT "smp: FAILED: AP "
	mov eax, ebx
	call putdec
	PRINT " did not start"
	call newline
	mov al, 1
	jmp exit
.up:
	cmp dword [alive + ebx * 4], 1
	CHECK e, "the AP that started is not the one sent the SIPI"
	ret

; ---- the AP's way in ------------------------------------------------------

bits 16
; Real mode at CS = 0x1000 (base 0x10000), IP 0: the GDT, protected mode and
; a far jump to the image's flat code at ap_pm.
trampoline:
	cli
	mov ax, cs
	mov ds, ax
	o32 lgdt [tramp_gdtr - trampoline]
	mov eax, cr0
	or al, 1
	mov cr0, eax
	jmp dword 0x08:ap_pm
tramp_gdtr:
	dw gdt_desc - gdt - 1
	dd gdt
trampoline_end:
bits 32

ap_pm:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov fs, ax
	mov gs, ax
	mov ss, ax
	mov eax, [APIC + 0x20]
	shr eax, 24
	cmp eax, MAX_CPUS
	jb .id_ok
	mov al, 2
	jmp exit
.id_ok:
	mov ebx, eax
	shl ebx, 12
	lea esp, [STACKS + ebx + 4096]
	lidt [idt_desc]
	push eax
	call cpu_setup
	pop eax
	mov dword [alive + eax * 4], 1
	lock inc dword [started]
	jmp cpu_main

; cpu_setup: this vCPU's LAPIC on (SVR), logical id: flat model, bit = APIC id.
cpu_setup:
	call my_id
	mov dword [APIC + 0xF0], 0x1FF
	mov dword [APIC + 0xE0], 0xFFFFFFFF     ; DFR: flat
	mov ecx, eax
	mov eax, 1
	shl eax, cl
	shl eax, 24
	mov [APIC + 0xD0], eax                  ; LDR
	mov dword [APIC + 0x80], 0              ; TPR
	ret

; ---- what every vCPU runs, EAX = its id -----------------------------------

cpu_main:
	sti                                     ; as the BSP's: only IPIs come
	cmp dword [count_mode], 0
	jne count_forever
	cmp dword [pingpong_mode], 0
	jne pingpong

	; step 1: count in its own page, checked against a register
	call barrier
	call my_id
	mov ebx, eax
	shl ebx, 12
	add ebx, PAGES
	xor esi, esi
	mov dword [ebx], 0
.count:
	inc dword [ebx]
	inc esi
	cmp [ebx], esi
	jne .count_bad
	cmp esi, [iters]
	jb .count
	call lock_print
	PRINT "smp: cpu "
	call my_id
	call putdec
	PRINT " counted "
	mov eax, [ebx]
	call putdec
	call newline
	call unlock_print
	call barrier
	call my_id
	test eax, eax
	jnz ap_ipis
	jmp bsp_checks
.count_bad:
	FAIL "a count in memory differs from its register"

; ---- the APs' side of the IPI tests ---------------------------------------

ap_ipis:
	sti
	mov esi, release
	mov eax, 1
	call wait_ge
	CHECK nc, "an AP waited for the BSP's IPIs in vain"
	call barrier                            ; barrier 3
	call ring
	call barrier                            ; barrier 4
	call x2apic_on
	call barrier                            ; barrier 5
	mov esi, release
	mov eax, 2
	call wait_ge
	CHECK nc, "an AP waited for the BSP's x2APIC IPIs in vain"
	; to the BSP, x2APIC physical, one AP after the other (the same vector
	; sent twice before the BSP takes it would merge in its IRR)
	call my_id
	dec eax
	mov esi, cnt_x2phys
	call wait_ge
	CHECK nc, "the BSP did not take the x2APIC IPIs of the APs before"
	mov edx, 0
	mov eax, V_X2PHYS
	call send_ipi
	call barrier                            ; barrier 6
	cli
.rest:
	hlt
	jmp .rest

; ring: every vCPU sends V_RING to the next APIC id (fixed, physical) and
; sleeps in HLT until its own arrives: a vCPU's IPI wakes a halted one.
ring:
	call my_id
	mov ebx, eax
	lea edx, [eax + 1]
	cmp edx, [ncpus]
	jb .to
	xor edx, edx
.to:
	mov eax, V_RING
	call send_ipi
.sleep:
	cli
	cmp dword [cnt_ring + ebx * 4], 0
	jne .woken
	sti
	hlt
	jmp .sleep
.woken:
	sti
	ret

; ---- the BSP's side ---------------------------------------------------------

bsp_checks:
	; every vCPU's page holds its count
	xor ebx, ebx
.pages:
	mov eax, ebx
	shl eax, 12
	mov eax, [PAGES + eax]
	cmp eax, [iters]
	CHECK e, "a vCPU's page does not hold its count"
	inc ebx
	cmp ebx, [ncpus]
	jb .pages
	PRINT "smp: barrier 2: every count in its page"
	call newline
	sti

	; fixed and NMI, physical, to each AP
	mov ebx, 1
.phys:
	cmp ebx, [ncpus]
	jae .phys_done
	mov edx, ebx
	mov eax, V_FIXED
	call send_ipi
	mov esi, cnt_fixed
	call wait_one
	mov edx, ebx
	mov eax, 0x400                          ; NMI
	call send_ipi
	mov esi, cnt_nmi
	call wait_one
	inc ebx
	jmp .phys
.phys_done:
	PRINT "smp: fixed and NMI IPIs by physical id"
	call newline

	; logical, flat model: every AP's bit
	mov ecx, [ncpus]
	mov edx, 1
	shl edx, cl
	sub edx, 2                              ; bits 1..n-1
	mov [ap_mask], edx
	cmp dword [ncpus], 1
	je .logical_done
	mov eax, V_LOGICAL | (1 << 11)
	call send_ipi
	mov esi, cnt_logical
	call wait_each_ap
	; lowest priority to the same set: exactly one AP takes it
	mov edx, [ap_mask]
	mov eax, V_LOWEST | (1 << 8) | (1 << 11)
	call send_ipi
	call wait_lowest
.logical_done:
	PRINT "smp: logical and lowest-priority IPIs"
	call newline

	; shorthands: all excluding self, self, all including self
	mov eax, V_ALLBUT | (3 << 18)
	call send_ipi
	mov esi, cnt_allbut
	call wait_each_ap
	cmp dword [cnt_allbut], 0
	CHECK e, "all-but-self reached the sender"
	mov eax, V_SELF | (1 << 18)
	call send_ipi
	mov esi, cnt_self
	mov ebx, 0
	call wait_one
	mov eax, V_ALL | (2 << 18)
	call send_ipi
	mov esi, cnt_all
	call wait_each_ap
	mov esi, cnt_all
	mov ebx, 0
	call wait_one
	xor ebx, ebx
.only_self:
	inc ebx
	cmp ebx, [ncpus]
	jae .self_ok
	cmp dword [cnt_self + ebx * 4], 0
	CHECK e, "a self IPI reached another vCPU"
	jmp .only_self
.self_ok:
	PRINT "smp: shorthand IPIs: all-but-self, self, all"
	call newline

	mov dword [release], 1
	call barrier                            ; barrier 3
	call ring
	call barrier                            ; barrier 4
	PRINT "smp: ring of IPIs woke every vCPU from HLT"
	call newline

	; x2APIC: every vCPU switches itself, then IPIs by x2APIC id and by
	; cluster (SDM Vol. 3A 11.12.10 "x2APIC Logical Destination Mode")
	call x2apic_on
	call barrier                            ; barrier 5
	mov ebx, 1
.x2phys:
	cmp ebx, [ncpus]
	jae .x2phys_done
	mov edx, ebx
	mov eax, V_X2PHYS
	call send_ipi
	mov esi, cnt_x2phys
	call wait_one
	inc ebx
	jmp .x2phys
.x2phys_done:
	cmp dword [ncpus], 1
	je .x2log_done
	mov edx, [ap_mask]                      ; cluster 0, APs' bits
	mov eax, V_X2LOG | (1 << 11)
	call send_ipi
	mov esi, cnt_x2log
	call wait_each_ap
.x2log_done:
	mov dword [release], 2
	; each AP answers with V_X2PHYS to id 0
	mov esi, cnt_x2phys
	mov eax, [ncpus]
	dec eax
	call wait_ge
	CHECK nc, "the APs' x2APIC IPIs did not reach the BSP"
	call barrier                            ; barrier 6
	cmp dword [cnt_x2phys], eax
	CHECK e, "the BSP took more x2APIC IPIs than the APs sent"
	PRINT "smp: x2APIC physical and logical IPIs both ways"
	call newline
	call check_totals
	PRINT "smp: all "
	mov eax, [ncpus]
	call putdec
	PRINT " vCPUs passed"
	call newline
	xor eax, eax
	jmp exit                                ; main's stack is gone: no ret

; check_totals: no vCPU took an IPI twice (each counter 0 or 1, but the
; BSP's V_X2PHYS that every AP sent once).
check_totals:
	mov esi, counters
.next:
	cmp esi, counters_end
	jae .done
	cmp esi, cnt_x2phys
	je .skip
	cmp dword [esi], 1
	CHECK be, "a vCPU took an IPI more than once"
.skip:
	add esi, 4
	jmp .next
.done:
	ret

; wait_one: waits until [ESI + EBX*4] is 1.
wait_one:
	push esi
	lea esi, [esi + ebx * 4]
	mov eax, 1
	call wait_ge
	pop esi
	jnc .ok
	PRINT "smp: FAILED: IPI not taken by vCPU "
	mov eax, ebx
	call putdec
	call newline
	mov al, 1
	jmp exit
.ok:
	ret

; wait_each_ap: waits until [ESI + i*4] is 1 for every AP i.
wait_each_ap:
	push ebx
	mov ebx, 1
.next:
	cmp ebx, [ncpus]
	jae .done
	call wait_one
	inc ebx
	jmp .next
.done:
	pop ebx
	ret

; wait_lowest: exactly one AP took V_LOWEST, the BSP none.
wait_lowest:
	rdtsc
	mov [deadline], eax
	mov [deadline + 4], edx
	add dword [deadline + 4], TIMEOUT_HI
.poll:
	xor eax, eax
	xor ebx, ebx
.sum:
	add eax, [cnt_lowest + ebx * 4]
	inc ebx
	cmp ebx, [ncpus]
	jb .sum
	test eax, eax
	jnz .taken
	call timed_out
	jnc .poll
	FAIL "no AP took the lowest-priority IPI"
.taken:
	cmp eax, 1
	CHECK e, "the lowest-priority IPI reached more than one vCPU"
	cmp dword [cnt_lowest], 0
	CHECK e, "the lowest-priority IPI reached the BSP"
	ret

; ---- counting forever (snapshot tests) ------------------------------------

count_forever:
	call my_id
	mov ebx, eax
	shl ebx, 12
	add ebx, PAGES
	mov dword [ebx], 0
	xor esi, esi
	xor edi, edi
.step:
	mov ecx, [every]
.spin:
	inc dword [ebx]
	inc esi
	cmp [ebx], esi
	jne .bad
	dec ecx
	jnz .spin
	inc edi
	call lock_print
	PRINT "smp: cpu "
	call my_id
	call putdec
	PRINT " count="
	mov eax, edi
	call putdec
	call newline
	call unlock_print
	jmp .step
.bad:
	FAIL "a count in memory differs from its register"

; ---- the IPI round trip (bench) -------------------------------------------

pingpong:
	call barrier
	call my_id
	test eax, eax
	jz .bsp
.sleep:                                         ; vCPU 1 and up: h_ping answers
	hlt
	jmp .sleep
.bsp:
	cmp dword [ncpus], 2
	CHECK ae, "pingpong needs 2 vCPUs"
	rdtsc
	mov [t_start], eax
	mov [t_start + 4], edx
	xor edi, edi
.round:
	mov ebp, [cnt_pong]
	mov edx, 1
	mov eax, V_PING
	call send_ipi
.wait:
	cmp [cnt_pong], ebp
	jne .back
	pause
	jmp .wait
.back:
	inc edi
	cmp edi, [rounds]
	jb .round
	rdtsc
	sub eax, [t_start]
	sbb edx, [t_start + 4]
	div dword [rounds]                      ; the mean: EDX:EAX / rounds
	push eax
	PRINT "smp: ipi round trip "
	pop eax
	call putdec
	PRINT " ticks ("
	mov eax, [rounds]
	call putdec
	PRINT " rounds)"
	call newline
	xor al, al
	jmp exit

; ---- helpers --------------------------------------------------------------

; my_id: EAX = this vCPU's id, from the stack it runs on.
my_id:
	mov eax, esp
	sub eax, STACKS
	shr eax, 12
	ret

; send_ipi: the ICR's low word EAX to destination EDX (APIC id or logical
; mask), xAPIC or x2APIC as this vCPU runs.
send_ipi:
	push eax
	push ecx
	push edx
	push eax
	call my_id
	mov ecx, eax
	pop eax
	cmp byte [x2 + ecx], 0
	jne .x2
	shl edx, 24
	mov [APIC + 0x310], edx
	mov [APIC + 0x300], eax
	jmp .out
.x2:
	mov ecx, 0x830
	wrmsr
.out:
	pop edx
	pop ecx
	pop eax
	ret

; x2apic_on: this vCPU's LAPIC to x2APIC mode (IA32_APIC_BASE.EXTD); its
; x2APIC id must be its id.
x2apic_on:
	mov ecx, 0x1B
	rdmsr
	or eax, 0xC00
	wrmsr
	call my_id
	mov byte [x2 + eax], 1
	mov ebx, eax
	mov ecx, 0x802
	rdmsr
	cmp eax, ebx
	CHECK e, "the x2APIC id is not the vCPU's id"
	ret

; eoi: ends the interrupt in service, xAPIC or x2APIC.
eoi:
	push eax
	push ecx
	push edx
	call my_id
	cmp byte [x2 + eax], 0
	jne .x2
	mov dword [APIC + 0xB0], 0
	jmp .out
.x2:
	mov ecx, 0x80B
	xor eax, eax
	xor edx, edx
	wrmsr
.out:
	pop edx
	pop ecx
	pop eax
	ret

; barrier: returns once every vCPU has reached its barrier of the same
; number (each counts its own rounds; the shared count only grows).
barrier:
	pushad
	call my_id
	inc dword [bar_round + eax * 4]
	mov eax, [bar_round + eax * 4]
	imul eax, [ncpus]
	lock inc dword [bar_count]
	mov esi, bar_count
	call wait_ge
	CHECK nc, "a barrier was never passed by every vCPU"
	popad
	ret

; wait_ge: waits until dword [ESI] >= EAX (unsigned); CF set when the TSC
; passed about 2^34 ticks first.
wait_ge:
	push edx
	push eax
	push ebx
	push ecx
	rdtsc
	mov ebx, eax
	lea ecx, [edx + TIMEOUT_HI]             ; the deadline in ECX:EBX
.poll:
	mov eax, [esp + 8]
	cmp [esi], eax
	jae .yes
	pause
	rdtsc
	cmp edx, ecx
	jb .poll
	ja .late
	cmp eax, ebx
	jb .poll
.late:
	stc
	jmp .out
.yes:
	clc
.out:
	pop ecx
	pop ebx
	pop eax
	pop edx
	ret

; timed_out: CF set once the TSC is past [deadline].
timed_out:
	push eax
	push edx
	pause
	rdtsc
	cmp edx, [deadline + 4]
	jb .no
	ja .yes
	cmp eax, [deadline]
	jb .no
.yes:
	pop edx
	pop eax
	stc
	ret
.no:
	pop edx
	pop eax
	clc
	ret

lock_print:
	push eax
.try:
	mov eax, 1
	xchg eax, [print_lock]
	test eax, eax
	jz .got
	pause
	jmp .try
.got:
	pop eax
	ret

unlock_print:
	mov dword [print_lock], 0
	ret

; ---- interrupts -------------------------------------------------------------

%macro IPI_HANDLER 2                            ; label, counter array
%1:
	push eax
	call my_id
	lock inc dword [%2 + eax * 4]
	call eoi
	pop eax
	iret
%endmacro

IPI_HANDLER h_fixed, cnt_fixed
IPI_HANDLER h_lowest, cnt_lowest
IPI_HANDLER h_logical, cnt_logical
IPI_HANDLER h_allbut, cnt_allbut
IPI_HANDLER h_self, cnt_self
IPI_HANDLER h_all, cnt_all
IPI_HANDLER h_ring, cnt_ring
IPI_HANDLER h_x2phys, cnt_x2phys
IPI_HANDLER h_x2log, cnt_x2log
IPI_HANDLER h_pong, cnt_pong

; h_ping: counts, and answers vCPU 0 with V_PONG.
h_ping:
	push eax
	push edx
	call my_id
	lock inc dword [cnt_ping + eax * 4]
	xor edx, edx
	mov eax, V_PONG
	call send_ipi
	call eoi
	pop edx
	pop eax
	iret

h_nmi:
	push eax
	call my_id
	lock inc dword [cnt_nmi + eax * 4]
	pop eax
	iret

h_unexpected:
	FAIL "an unexpected interrupt or exception"

; set_gate: IDT entry EAX to the handler at EDX.
set_gate:
	mov [idt + eax * 8], dx
	mov word [idt + eax * 8 + 2], 0x08
	mov word [idt + eax * 8 + 4], 0x8E00
	shr edx, 16
	mov [idt + eax * 8 + 6], dx
	ret

%macro GATE 2
	mov eax, %1
	mov edx, %2
	call set_gate
%endmacro

idt_init:
	xor ebx, ebx
.all:
	mov eax, ebx
	mov edx, h_unexpected
	call set_gate
	inc ebx
	cmp ebx, 256
	jb .all
	GATE 2, h_nmi
	GATE V_FIXED, h_fixed
	GATE V_LOWEST, h_lowest
	GATE V_LOGICAL, h_logical
	GATE V_ALLBUT, h_allbut
	GATE V_SELF, h_self
	GATE V_ALL, h_all
	GATE V_RING, h_ring
	GATE V_X2PHYS, h_x2phys
	GATE V_X2LOG, h_x2log
	GATE V_PING, h_ping
	GATE V_PONG, h_pong
	lidt [idt_desc]
	ret

align 4
idt_desc:
	dw 256 * 8 - 1
	dd idt
key_iters:   db "iters=", 0
key_every:   db "every=", 0
word_count:  db "count", 0
word_wait:   db "wait", 0
word_pingpong: db "pingpong", 0
key_rounds:  db "rounds=", 0

align 4
ncpus:       dd 0
iters:       dd 0
every:       dd 0
count_mode:  dd 0
pingpong_mode: dd 0
rounds:      dd 0
t_start:     dd 0, 0
started:     dd 0
release:     dd 0
ap_mask:     dd 0
bar_count:   dd 0
print_lock:  dd 0
deadline:    dd 0, 0
alive:       times MAX_CPUS dd 0
bar_round:   times MAX_CPUS dd 0
x2:          times MAX_CPUS db 0
align 4
counters:
cnt_fixed:   times MAX_CPUS dd 0
cnt_nmi:     times MAX_CPUS dd 0
cnt_lowest:  times MAX_CPUS dd 0
cnt_logical: times MAX_CPUS dd 0
cnt_allbut:  times MAX_CPUS dd 0
cnt_self:    times MAX_CPUS dd 0
cnt_all:     times MAX_CPUS dd 0
cnt_ring:    times MAX_CPUS dd 0
cnt_x2phys:  times MAX_CPUS dd 0
cnt_x2log:   times MAX_CPUS dd 0
counters_end:
cnt_ping:    times MAX_CPUS dd 0
cnt_pong:    times MAX_CPUS dd 0
align 8
idt:         times 256 * 8 db 0

GUEST_END
