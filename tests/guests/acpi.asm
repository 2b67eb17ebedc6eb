; acpi: the firmware an OS finds in an Amber VM, read as an OS reads it. Scans
; 0xE0000-0xFFFFF for the RSDP (ACPI 6.4 5.2.5.1 "Finding the RSDP on IA-PC
; Systems"), walks RSDP -> RSDT and XSDT -> FADT (-> DSDT, FACS) and MADT with
; every signature and checksum checked; the MADT's local APICs, IOAPIC and
; IRQ0 override, the FADT's PM ports, SCI and reset register; the MP floating
; pointer and configuration table; then fw_cfg (QEMU docs/specs/fw_cfg.rst):
; the signature fetched with REP INSB, the RAM size against the Multiboot
; mem_upper, the CPU count against the MADT; the Multiboot memory map's
; reserved ranges; CPUID's hypervisor timing leaf. Prints a line per step;
; exit code 0 when every check held, else the number of the first that
; failed. Arguments: cpus=N (the vCPUs expected, default 1); `snap` stops
; halfway through an fw_cfg item until a key arrives on COM1, for a snapshot.
%include "guest.inc"

PM1A_EVT        equ 0x600                       ; vmm/platform.h
PM1A_CNT        equ 0x604
PM_TMR          equ 0x608
SCI_IRQ         equ 9
RESET_PORT      equ 0xCF9
RESET_VALUE     equ 6
LAPIC_BASE      equ 0xFEE00000
IOAPIC_BASE     equ 0xFEC00000
FW_CFG_SEL      equ 0x510
FW_CFG_DATA     equ 0x511
MB_INFO_MMAP_LEN equ 44
MB_INFO_MMAP_ADDR equ 48

%macro FAIL_IF 2                                ; cc, check number
	j%-1 %%ok
	mov al, %2
	jmp fail
%%ok:
%endmacro

main:
	PRINT "acpi: start"
	call newline
	mov esi, want_cpus_key
	call get_num
	jc .default_cpus
	mov [want_cpus], eax
.default_cpus:

	; 1-3: the RSDP, on a 16-byte boundary, both checksums, revision 2.
	mov esi, 0xE0000
.scan:
	cmp dword [esi], 'RSD '
	jne .next
	cmp dword [esi + 4], 'PTR '
	jne .next
	mov ecx, 20
	call sum_bytes
	test al, al
	jz .found
.next:
	add esi, 16
	cmp esi, 0x100000
	jb .scan
	mov al, 1
	jmp fail
.found:
	mov [rsdp], esi
	cmp byte [esi + 15], 2
	FAIL_IF ne, 2
	mov ecx, [esi + 20]
	cmp ecx, 36
	FAIL_IF b, 3
	call sum_bytes
	test al, al
	FAIL_IF nz, 3
	PRINT "acpi: RSDP at "
	mov eax, esi
	call puthex
	call newline

	; 4-6: RSDT and XSDT, the same tables in both.
	mov esi, [esi + 16]
	mov edx, 'RSDT'
	call check_table
	FAIL_IF c, 4
	mov [rsdt], esi
	mov esi, [rsdp]
	cmp dword [esi + 28], 0
	FAIL_IF ne, 5
	mov esi, [esi + 24]
	mov edx, 'XSDT'
	call check_table
	FAIL_IF c, 5
	mov [xsdt], esi
	mov ecx, [esi + 4]
	sub ecx, 36
	shr ecx, 3
	mov [ntables], ecx
	mov edi, [rsdt]
	mov eax, [edi + 4]
	sub eax, 36
	shr eax, 2
	cmp eax, ecx
	FAIL_IF ne, 6
	xor ebx, ebx
.same:
	mov eax, [esi + 36 + 8 * ebx]
	cmp eax, [edi + 36 + 4 * ebx]
	FAIL_IF ne, 6
	cmp dword [esi + 36 + 8 * ebx + 4], 0
	FAIL_IF ne, 6
	inc ebx
	cmp ebx, ecx
	jb .same

	; 7-9: every table's checksum; find the MADT and the FADT.
	xor ebx, ebx
.each:
	cmp ebx, [ntables]
	jae .walked
	mov eax, [xsdt]
	mov esi, [eax + 36 + 8 * ebx]
	mov edx, [esi]
	call check_table
	FAIL_IF c, 7
	cmp edx, 'APIC'
	jne .not_madt
	mov [madt], esi
.not_madt:
	cmp edx, 'FACP'
	jne .not_fadt
	mov [fadt], esi
.not_fadt:
	inc ebx
	jmp .each
.walked:
	cmp dword [madt], 0
	FAIL_IF e, 8
	cmp dword [fadt], 0
	FAIL_IF e, 9
	PRINT "acpi: RSDT and XSDT list "
	mov eax, [ntables]
	call putdec
	PRINT " tables, checksums ok"
	call newline

	; 10-13: the MADT: LAPIC address, one enabled LAPIC per CPU, the IOAPIC
	; with GSI base 0, ISA IRQ0 on GSI 2.
	mov esi, [madt]
	cmp dword [esi + 36], LAPIC_BASE
	FAIL_IF ne, 10
	mov edi, esi
	add edi, [esi + 4]                      ; the end
	add esi, 44
.entry:
	cmp esi, edi
	jae .madt_done
	movzx ecx, byte [esi + 1]
	cmp ecx, 2
	FAIL_IF b, 10
	mov al, [esi]
	cmp al, 0
	jne .not_lapic
	test byte [esi + 4], 1
	jz .advance
	inc dword [lapics]
	jmp .advance
.not_lapic:
	cmp al, 1
	jne .not_ioapic
	cmp dword [esi + 4], IOAPIC_BASE
	FAIL_IF ne, 11
	cmp dword [esi + 8], 0
	FAIL_IF ne, 11
	inc dword [ioapics]
	jmp .advance
.not_ioapic:
	cmp al, 2
	jne .advance
	cmp byte [esi + 3], 0                   ; source: ISA IRQ0
	jne .advance
	cmp dword [esi + 4], 2
	FAIL_IF ne, 12
	mov byte [irq0_override], 1
.advance:
	add esi, ecx
	jmp .entry
.madt_done:
	cmp dword [ioapics], 1
	FAIL_IF ne, 11
	cmp byte [irq0_override], 1
	FAIL_IF ne, 12
	mov eax, [lapics]
	cmp eax, [want_cpus]
	FAIL_IF ne, 13
	PRINT "acpi: MADT: "
	call putdec
	PRINT " local APIC(s), IOAPIC at 0xfec00000, IRQ0 -> GSI 2"
	call newline

	; 14-20: the FADT's ports, SCI and reset register; DSDT and FACS.
	mov esi, [fadt]
	cmp dword [esi + 56], PM1A_EVT
	FAIL_IF ne, 14
	cmp dword [esi + 64], PM1A_CNT
	FAIL_IF ne, 15
	cmp dword [esi + 76], PM_TMR
	FAIL_IF ne, 16
	cmp word [esi + 46], SCI_IRQ
	FAIL_IF ne, 17
	cmp dword [esi + 4], 129                ; RESET_REG and RESET_VALUE present
	FAIL_IF b, 18
	test dword [esi + 112], 1 << 10         ; RESET_REG_SUP
	FAIL_IF z, 18
	cmp byte [esi + 116], 1                 ; system I/O
	FAIL_IF ne, 18
	cmp dword [esi + 120], RESET_PORT
	FAIL_IF ne, 18
	cmp byte [esi + 128], RESET_VALUE
	FAIL_IF ne, 18
	mov eax, [esi + 40]
	cmp eax, [esi + 140]                    ; DSDT and X_DSDT agree
	FAIL_IF ne, 19
	push esi
	mov esi, eax
	mov edx, 'DSDT'
	call check_table
	pop esi
	FAIL_IF c, 19
	mov eax, [esi + 36]
	test eax, 63
	FAIL_IF nz, 20
	cmp dword [eax], 'FACS'
	FAIL_IF ne, 20
	PRINT "acpi: FADT: PM1a 0x600/0x604, PM timer 0x608, SCI 9, reset 0xcf9=6"
	call newline

	; 31-32: the MP floating pointer in 0xF0000-0xFFFFF and its table.
	mov esi, 0xF0000
.mp_scan:
	cmp dword [esi], '_MP_'
	jne .mp_next
	mov ecx, 16
	call sum_bytes
	test al, al
	jz .mp_found
.mp_next:
	add esi, 16
	cmp esi, 0x100000
	jb .mp_scan
	mov al, 31
	jmp fail
.mp_found:
	mov esi, [esi + 4]
	cmp dword [esi], 'PCMP'
	FAIL_IF ne, 32
	movzx ecx, word [esi + 4]
	call sum_bytes
	test al, al
	FAIL_IF nz, 32
	PRINT "acpi: MP table ok"
	call newline

	; 21-22: fw_cfg's signature with REP INSB: 4 bytes, EDI and ECX moved.
	mov dx, FW_CFG_SEL
	xor ax, ax
	out dx, ax
	mov dx, FW_CFG_DATA
	mov edi, sig_buf
	mov ecx, 4
	cld
	rep insb
	cmp edi, sig_buf + 4
	FAIL_IF ne, 22
	test ecx, ecx
	FAIL_IF nz, 22
	cmp dword [sig_buf], 'QEMU'
	FAIL_IF ne, 21
	cmp byte [sig_buf + 4], 0xCC             ; nothing written past it
	FAIL_IF ne, 22
	PRINT "acpi: fw_cfg signature QEMU (rep insb)"
	call newline

	; 23: the RAM size, 8 bytes, equals 1 MiB + mem_upper KiB.
	mov esi, snap_word
	call has_word
	mov [snap_mode], eax
	mov dx, FW_CFG_SEL
	mov ax, 0x0003
	out dx, ax
	mov dx, FW_CFG_DATA
	mov edi, ram_buf
	mov ecx, 3
	rep insb
	cmp dword [snap_mode], 0
	je .rest
	; Three bytes in: wait for a key (a snapshot is taken, the VM killed,
	; restored and resumed meanwhile); the read must go on at byte four.
	PRINT "acpi: fw_cfg mid-read, waiting for a key"
	call newline
	mov dx, COM1 + 5
.key:
	in al, dx
	test al, 1
	jz .key
	mov dx, COM1
	in al, dx
	PRINT "acpi: key received, reading on"
	call newline
	mov dx, FW_CFG_DATA
.rest:
	mov ecx, 5
	rep insb
	call ram_end
	cmp eax, [ram_buf]
	FAIL_IF ne, 23
	cmp dword [ram_buf + 4], 0
	FAIL_IF ne, 23
	PRINT "acpi: fw_cfg RAM size "
	mov eax, [ram_buf]
	call puthex
	PRINT " = 1 MiB + mem_upper"
	call newline

	; 24: NB_CPUS equals the MADT's count.
	mov dx, FW_CFG_SEL
	mov ax, 0x0005
	out dx, ax
	mov dx, FW_CFG_DATA
	in al, dx
	mov bl, al
	in al, dx
	mov bh, al
	movzx eax, bx
	cmp eax, [lapics]
	FAIL_IF ne, 24
	PRINT "acpi: fw_cfg NB_CPUS "
	call putdec
	call newline

	; 25-28: the Multiboot memory map marks [0x9FC00, 1 MiB), the IOAPIC
	; and the LAPIC pages reserved.
	mov ebx, [mbi]
	test dword [ebx + MB_INFO_FLAGS], 1 << 6
	FAIL_IF z, 25
	mov eax, 0x9FC00
	call reserved_in_map
	FAIL_IF c, 26
	mov eax, 0xE0000
	call reserved_in_map
	FAIL_IF c, 26
	mov eax, [rsdp]
	call reserved_in_map
	FAIL_IF c, 26
	mov eax, 0xFFFFF
	call reserved_in_map
	FAIL_IF c, 26
	mov eax, IOAPIC_BASE
	call reserved_in_map
	FAIL_IF c, 27
	mov eax, LAPIC_BASE
	call reserved_in_map
	FAIL_IF c, 28
	PRINT "acpi: memory map reserves the tables and the APIC pages"
	call newline

	; 29-30: CPUID 0x40000010: the TSC in kHz, the APIC timer at 1 GHz.
	mov eax, 0x40000000
	cpuid
	cmp eax, 0x40000010
	FAIL_IF b, 29
	mov eax, 0x40000010
	cpuid
	test eax, eax
	FAIL_IF z, 30
	cmp ebx, 1000000
	FAIL_IF ne, 30
	push eax
	PRINT "acpi: CPUID 0x40000010: TSC "
	pop eax
	call putdec
	PRINT " kHz, APIC bus 1000000 kHz"
	call newline

	PRINT "acpi: all checks passed"
	call newline
	xor eax, eax
	ret

fail:
	movzx eax, al
	push eax
	PRINT "acpi: FAILED check "
	pop eax
	call putdec
	call newline
	ret

; sum_bytes: AL = the byte sum of the ECX (> 0) bytes at ESI; ESI, ECX kept.
sum_bytes:
	push ecx
	push esi
	xor eax, eax
.add:
	add al, [esi]
	inc esi
	dec ecx
	jnz .add
	pop esi
	pop ecx
	ret

; check_table: the table at ESI has signature EDX, a length from 36 to
; 64 KiB that stays below 1 MiB, and a zero checksum. CF set if not.
check_table:
	push eax
	push ecx
	cmp [esi], edx
	jne .bad
	cmp esi, 0xE0000
	jb .bad
	mov ecx, [esi + 4]
	cmp ecx, 36
	jb .bad
	cmp ecx, 0x10000
	ja .bad
	lea eax, [esi + ecx]
	cmp eax, 0x100000
	ja .bad
	call sum_bytes
	test al, al
	jnz .bad
	clc
	jmp .out
.bad:
	stc
.out:
	pop ecx
	pop eax
	ret

; reserved_in_map: CF clear when the Multiboot map has a reserved (type 2)
; entry holding address EAX and no RAM (type 1) entry holding it.
reserved_in_map:
	pushad
	mov ebx, [mbi]
	mov esi, [ebx + MB_INFO_MMAP_ADDR]
	mov edi, esi
	add edi, [ebx + MB_INFO_MMAP_LEN]
	xor ebp, ebp                            ; reserved entries holding it
.entry:
	cmp esi, edi
	jae .done
	cmp dword [esi + 8], 0                  ; addr above 4 GiB: not ours
	jne .next
	mov ecx, eax
	sub ecx, [esi + 4]
	jb .next                                ; below the entry
	cmp dword [esi + 16], 0
	jne .holds                              ; length of 4 GiB or more
	cmp ecx, [esi + 12]
	jae .next
.holds:
	cmp dword [esi + 20], 1
	je .ram
	cmp dword [esi + 20], 2
	jne .next
	inc ebp
.next:
	add esi, [esi]
	add esi, 4
	jmp .entry
.ram:
	xor ebp, ebp
	jmp .fail_out
.done:
	test ebp, ebp
	jz .fail_out
	popad
	clc
	ret
.fail_out:
	popad
	stc
	ret

want_cpus_key:  db "cpus=", 0
snap_word:      db "snap", 0
align 4
want_cpus:      dd 1
rsdp:           dd 0
rsdt:           dd 0
xsdt:           dd 0
madt:           dd 0
fadt:           dd 0
ntables:        dd 0
lapics:         dd 0
ioapics:        dd 0
snap_mode:      dd 0
irq0_override:  db 0
align 4
sig_buf:        times 8 db 0xCC
ram_buf:        times 8 db 0

GUEST_END
