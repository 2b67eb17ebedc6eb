; Wraps one flat guest binary into an object for Amber's image: the bytes, and
; a record {name, data, size, default arguments, purpose, usage} in the
; .guest_images section that vmm/images.c walks. Built by tests/guests/guests.mk
; with nasm -f elf64 -DIMAGE_NAME='"hello"' -DIMAGE_FILE='"path"'
;   -DIMAGE_ARGS='""' -DIMAGE_PURPOSE='"..."' -DIMAGE_USAGE='"..."'

section .rodata align=16
image_data:
	incbin IMAGE_FILE
image_data_end:
image_name:
	db IMAGE_NAME, 0
image_args:
	db IMAGE_ARGS, 0
image_purpose:
	db IMAGE_PURPOSE, 0
image_usage:
	db IMAGE_USAGE, 0

section .guest_images progbits alloc noexec nowrite align=8
	dq image_name
	dq image_data
	dq image_data_end - image_data
	dq image_args
	dq image_purpose
	dq image_usage

section .note.GNU-stack noalloc noexec nowrite progbits
