; hello: the smallest demo guest. Prints a greeting with its command line and
; memory size on COM1 and on the VGA text screen, then ends with exit code 0
; through port 0xF4. Words on its command line change the ending:
;   echo   answers each line typed on COM1 ("vm console") until "bye"
;   halt   stops with CLI; HLT instead of exiting
%include "guest.inc"

VGA_TEXT equ 0xB8000
VGA_ATTR equ 0x1F                               ; white on blue

main:
	PRINT "Hello from an Amber guest!"
	call newline
	PRINT "cmdline: "
	call cmdline
	mov esi, eax
	call puts
	call newline
	PRINT "memory above 1 MiB: "
	mov eax, [mbi]
	mov eax, [eax + MB_INFO_MEM_UPPER]
	call putdec
	PRINT " KiB"
	call newline
	call vga_greeting

	mov esi, word_echo
	call has_word
	test eax, eax
	jnz echo
	mov esi, word_halt
	call has_word
	test eax, eax
	jnz halt
	PRINT "hello: goodbye (exit code 0)"
	call newline
	xor eax, eax
	ret

halt:
	PRINT "hello: halting"
	call newline
	cli
	hlt
	jmp halt

; echo: reads COM1 a line at a time and answers it; "bye" ends with code 0.
echo:
	PRINT "hello: type a line, 'bye' ends"
	call newline
.line:
	mov edi, line
.char:
	mov dx, COM1 + 5
.poll:
	in al, dx
	test al, 1                              ; data ready
	jz .poll
	mov dx, COM1
	in al, dx
	cmp al, 13
	je .done
	cmp al, 10
	je .done
	cmp edi, line + 60
	jae .char
	mov [edi], al
	inc edi
	jmp .char
.done:
	mov byte [edi], 0
	cmp edi, line
	je .line
	PRINT "hello: you typed '"
	mov esi, line
	call puts
	PRINT "'"
	call newline
	cmp dword [line], 'bye'                 ; "bye" and its NUL
	jne .line
	PRINT "hello: goodbye (exit code 0)"
	call newline
	xor eax, eax
	ret

; vga_greeting: "Hello from an Amber guest!" in the top left of the text screen.
vga_greeting:
	mov esi, vga_text
	mov edi, VGA_TEXT
	mov ah, VGA_ATTR
.next:
	lodsb
	test al, al
	jz .done
	stosw
	jmp .next
.done:
	ret

word_echo: db "echo", 0
word_halt: db "halt", 0
vga_text: db "Hello from an Amber guest!", 0
align 4
line:	times 64 db 0

GUEST_END
