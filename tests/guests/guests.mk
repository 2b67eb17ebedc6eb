# Demo guests (tests/guests/*.asm): each is assembled to a flat Multiboot image
# (a.out kludge, loads at 1 MiB) in $(BUILD)/guests/NAME.bin, which also boots
# directly under `qemu-system-x86_64 -kernel`, and is wrapped by image.asm into
# an object that puts it in Amber's .guest_images section.
GUESTS := hello counter memtest hostile exits bench pic strio acpi apic ioapic eventinj rtc \
	uart pm reset dirty fuzz
GUEST_BINS := $(patsubst %,$(BUILD)/guests/%.bin,$(GUESTS))
GUEST_BLOBS_OBJ := $(patsubst %,$(BUILD)/guests/%.img.o,$(GUESTS))

# Default guest arguments, shown by `vm images`.
hello_ARGS :=
counter_ARGS :=
memtest_ARGS := seed=1
hostile_ARGS :=
exits_ARGS := cpuid=1000 rdmsr=7 out=500
bench_ARGS := loops=100000
pic_ARGS := windows=3
strio_ARGS :=
acpi_ARGS :=
apic_ARGS :=
ioapic_ARGS :=
eventinj_ARGS := windows=3
rtc_ARGS := windows=3
uart_ARGS :=
pm_ARGS :=
reset_ARGS :=
dirty_ARGS := pages=768
fuzz_ARGS :=

$(BUILD)/guests/%.bin: tests/guests/%.asm tests/guests/guest.inc tests/guests/tsc.inc
	@mkdir -p $(dir $@)
	$(call say,NASM,$<)
	$(Q)$(NASM) -f bin -I tests/guests/ -MD $@.d -MT $@ -o $@ $<

$(BUILD)/guests/%.img.o: $(BUILD)/guests/%.bin tests/guests/image.asm
	$(call say,WRAP,$@)
	$(Q)$(NASM) -f elf64 -DIMAGE_NAME='"$*"' -DIMAGE_FILE='"$<"' -DIMAGE_ARGS='"$($*_ARGS)"' \
		-o $@ tests/guests/image.asm

guests: $(GUEST_BINS)
