# Demo guests (tests/guests/*.asm): each is assembled to a flat Multiboot image
# (a.out kludge, loads at 1 MiB) in $(BUILD)/guests/NAME.bin, which also boots
# directly under `qemu-system-x86_64 -kernel`, and is wrapped by image.asm into
# an object that puts it in Amber's .guest_images section.
GUESTS := hello counter memtest hostile exits bench pic strio acpi apic ioapic eventinj rtc \
	uart pm reset dirty fuzz seq smp
GUEST_BINS := $(patsubst %,$(BUILD)/guests/%.bin,$(GUESTS))
GUEST_BLOBS_OBJ := $(patsubst %,$(BUILD)/guests/%.img.o,$(GUESTS))

# Each guest's default arguments, what it is for (one phrase of at most 34
# characters: `vm images` gives it one line) and the words its command line
# understands (`vm images NAME`), carried into its record by image.asm.
hello_ARGS :=
hello_PURPOSE := greets on COM1 and VGA, exits 0
hello_USAGE := echo halt
counter_ARGS :=
counter_PURPOSE := counts forever; pause and resume
counter_USAGE := every=N sse=SEED
memtest_ARGS := seed=1
memtest_PURPOSE := fills RAM, re-verifies it forever
memtest_USAGE := seed=N
hostile_ARGS :=
hostile_PURPOSE := misbehaves on purpose, by word
hostile_USAGE := oob-read oob-write oob-mmio oob-high vmx svm triple io-storm outs-oob ins-oob spin-cli spin-sti gp-storm long-line apic-insn apic-word icr-storm irq-storm
exits_ARGS := cpuid=1000 rdmsr=7 out=500
exits_PURPOSE := a known number of VM exits
exits_USAGE := cpuid=N rdmsr=N out=N hidden
bench_ARGS := loops=100000
bench_PURPOSE := the cost of a VM exit
bench_USAGE := loops=N mmio idle ms=N timer
pic_ARGS := windows=3
pic_PURPOSE := 8259A PIC and 8254 PIT checks
pic_USAGE := windows=N
strio_ARGS :=
strio_PURPOSE := string I/O (INS/OUTS) checks
strio_USAGE := 
acpi_ARGS :=
acpi_PURPOSE := ACPI tables and fw_cfg checks
acpi_USAGE := cpus=N snap
apic_ARGS :=
apic_PURPOSE := local APIC and timer checks
apic_USAGE := irq windows=N
ioapic_ARGS :=
ioapic_PURPOSE := I/O APIC checks
ioapic_USAGE := irq
eventinj_ARGS := windows=3
eventinj_PURPOSE := interrupt and NMI delivery checks
eventinj_USAGE := windows=N cost
rtc_ARGS := windows=3
rtc_PURPOSE := MC146818 RTC checks
rtc_USAGE := windows=N
uart_ARGS :=
uart_PURPOSE := 16550 UART interrupt checks
uart_USAGE := 
pm_ARGS :=
pm_PURPOSE := ACPI PM timer, then S5 power-off
pm_USAGE := 
reset_ARGS :=
reset_PURPOSE := resets itself once, exits 0
reset_USAGE := via=cf9|kbd|92 spin=N
dirty_ARGS := pages=768
dirty_PURPOSE := writes listed pages on each key
dirty_USAGE := pages=A,B,C span=N; keys: b q
fuzz_ARGS :=
fuzz_PURPOSE := hypercall fuzzer (inputs=IMAGE)
fuzz_USAGE := check resets=N all | bench resets=N | probe
seq_ARGS :=
seq_PURPOSE := writes 1, 2, 3.. across all RAM
seq_USAGE := delay=N; keys: v q
smp_ARGS :=
smp_PURPOSE := several vCPUs: SIPI, IPIs, barrier
smp_USAGE := iters=N count every=N wait

$(BUILD)/guests/%.bin: tests/guests/%.asm tests/guests/guest.inc tests/guests/intr.inc tests/guests/tsc.inc
	@mkdir -p $(dir $@)
	$(call say,NASM,$<)
	$(Q)$(NASM) -f bin -I tests/guests/ -MD $@.d -MT $@ -o $@ $<

$(BUILD)/guests/%.img.o: $(BUILD)/guests/%.bin tests/guests/image.asm tests/guests/guests.mk
	$(call say,WRAP,$@)
	$(Q)$(NASM) -f elf64 -DIMAGE_NAME='"$*"' -DIMAGE_FILE='"$<"' -DIMAGE_ARGS='"$($*_ARGS)"' \
		-DIMAGE_PURPOSE='"$($*_PURPOSE)"' -DIMAGE_USAGE='"$($*_USAGE)"' \
		-o $@ tests/guests/image.asm

guests: $(GUEST_BINS)
