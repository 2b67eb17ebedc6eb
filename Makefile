# Amber: one non-recursive Makefile.
#   make          build/amber.elf (QEMU -kernel boots it; GRUB with multiboot2)
#   make run      boot Amber in QEMU with the demo guests and a scratch snapshot disk
#   make run-linux  the same with Debian's kernel and a busybox initramfs as modules
#   make test     every test: host unit tests, then QEMU and Bochs integration tests
#   make iso      build/amber.iso, a BIOS + UEFI GRUB image for a USB stick
#   make bench    the benchmarks (counted or measured, never asserted)
#   make check    formatter check and static analysis
#   make fuzz     every libFuzzer target for FUZZ_SECONDS (tests/fuzz/README.md)
#   make reliability  the figures of docs/reliability.md, from the runs that prove them

BUILD   := build
CC      := gcc
LD      := ld
NASM    := nasm
PYTHON  := python3

# Every .c below these folders is part of the kernel; a new file needs no edit here.
KERNEL_DIRS := kernel vmm vmm/vmx vmm/svm snapshot drivers
KERNEL_C    := $(filter-out vmm/asm-offsets.c,$(foreach d,$(KERNEL_DIRS),$(wildcard $(d)/*.c)))
KERNEL_ASM  := $(wildcard boot/*.asm) $(foreach d,$(KERNEL_DIRS),$(wildcard $(d)/*.asm))
KERNEL_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(KERNEL_C)) \
               $(patsubst %.asm,$(BUILD)/%.asm.o,$(KERNEL_ASM))

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wundef -Wvla -Wno-unused-parameter
CFLAGS   := -std=gnu11 -O2 -g -ffreestanding -fno-pic -fno-pie -mno-red-zone -mno-sse \
            -mno-sse2 -mno-mmx -mno-80387 -mgeneral-regs-only -fno-stack-protector \
            -fno-strict-aliasing -fno-omit-frame-pointer -fno-asynchronous-unwind-tables \
            -mcmodel=small -nostdinc -isystem $(shell $(CC) -print-file-name=include) \
            -I. $(WARNINGS) -MMD -MP \
            -DAMBER_GIT='"$(shell git describe --always --dirty 2>/dev/null || echo unknown)"' \
            -DAMBER_BUILD_DATE='"$(shell date -u +%Y-%m-%d)"'
LDFLAGS  := -nostdlib -static -z max-page-size=0x1000 -z noexecstack -z noseparate-code \
            -no-pie -T boot/linker.ld

# Quiet by default; `make V=1` shows every command.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

.PHONY: all run run-bochs run-linux test iso bench check clean deps unit guests print-unit-bins fuzz fuzz-build \
	reliability print-fuzz-targets
all: $(BUILD)/amber.elf

deps:
	@./scripts/install-deps

# Demo guests are built first (tests/guests/guests.mk) and linked into the image.
include tests/guests/guests.mk

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Dependencies in a pass of their own: NASM 2.16's -MD, given while it
# assembles, lists the source alone and not what it %includes; then a new
# asm-offsets.inc did not reassemble the entry stubs, which kept the old
# structure offsets.
$(BUILD)/%.asm.o: %.asm
	@mkdir -p $(dir $@)
	$(call say,NASM,$<)
	$(Q)$(NASM) -f elf64 -I. -I$(BUILD)/ -M -MP -MT $@ $< > $(@:.o=.d)
	$(Q)$(NASM) -f elf64 -g -F dwarf -I. -I$(BUILD)/ $< -o $@

# Structure offsets for the entry stubs, generated from C (vmm/asm-offsets.c):
# nasm %defines in $(BUILD)/asm-offsets.inc, never typed twice.
$(BUILD)/asm-offsets.inc: vmm/asm-offsets.c vmm/vmm.h vmm/vcpu_state.h kernel/types.h
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)$(CC) $(filter-out -MMD -MP -g,$(CFLAGS)) -MMD -MP -MT $@ -MF $@.d -S $< -o $@.s
	$(Q)sed -n 's/^@@ASMOFF \([A-Za-z0-9_]*\) \([0-9]*\).*/%define \1 \2/p' $@.s > $@.tmp
	$(Q)mv $@.tmp $@
$(patsubst %.asm,$(BUILD)/%.asm.o,$(KERNEL_ASM)): | $(BUILD)/asm-offsets.inc

$(BUILD)/amber.elf: $(KERNEL_OBJ) $(GUEST_BLOBS_OBJ) boot/linker.ld
	$(call say,LD,$@)
	$(Q)$(LD) $(LDFLAGS) -o $@ $(KERNEL_OBJ) $(GUEST_BLOBS_OBJ)

iso: $(BUILD)/amber.iso
$(BUILD)/amber.iso: $(BUILD)/amber.elf scripts/mkiso
	./scripts/mkiso $(BUILD)/amber.elf $@

run: deps all
	./scripts/run-qemu

# The same in Bochs (VT-x with EPT): Amber's shell in this terminal, Ctrl-A X quits.
run-bochs: deps iso
	./scripts/run-bochs

# Amber with Debian's kernel and the busybox initramfs as modules (scripts/fetch-linux);
# at the prompt: vm create vmlinuz mem=256M initrd=initramfs.cpio.gz -- console=ttyS0
run-linux: deps all
	./scripts/run-qemu --module $(BUILD)/linux/vmlinuz console=ttyS0 \
		--module $(BUILD)/linux/initramfs.cpio.gz ""

# ---- host unit tests: pure modules built with sanitizers -------------------
HOST_CFLAGS := -std=gnu11 -O1 -g -I. -Wall -Wextra -Werror -Wno-unused-parameter \
               -fsanitize=address,undefined -fno-sanitize-recover=all -DAMBER_HOST_TEST \
               -fno-builtin-snprintf -fno-builtin-vsnprintf -Wno-format-truncation
include tests/unit/unit.mk

# ---- fuzz targets: libFuzzer over the kernel's own sources -----------------
# Each tests/fuzz/<name>.mk adds FUZZ_TARGETS += name and name_FUZZ_SRCS; the
# harness tests/fuzz/fuzz_<name>.c is always part of it (tests/fuzz/README.md).
FUZZ_CC      := clang
FUZZ_CFLAGS  := -std=gnu11 -O1 -g -I. -Wall -Wextra -Werror -Wno-unused-parameter \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -DAMBER_HOST_TEST -DAMBER_FUZZ -fno-builtin-snprintf -fno-builtin-vsnprintf
FUZZ_SECONDS ?= 60
FUZZ_TARGETS :=
include $(wildcard tests/fuzz/*.mk)
FUZZ ?= $(FUZZ_TARGETS)
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/bin/%,$(FUZZ_TARGETS))

define fuzz_rule
$(BUILD)/fuzz/bin/$(1): $$(sort tests/fuzz/fuzz_$(1).c $$($(1)_FUZZ_SRCS)) $$(wildcard tests/fuzz/*.h) \
		$$(wildcard snapshot/*.h kernel/*.h drivers/*.h vmm/*.h)
	@mkdir -p $$(dir $$@)
	$$(call say,FUZZCC,$$@)
	$$(Q)$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$(sort tests/fuzz/fuzz_$(1).c $$($(1)_FUZZ_SRCS))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))

fuzz-build: $(FUZZ_BINS) $(foreach t,$(FUZZ_TARGETS),$($(t)_FUZZ_SEEDS))
fuzz: fuzz-build
	@st=0; for t in $(FUZZ); do $(PYTHON) tests/fuzz/run.py $$t $(FUZZ_SECONDS) || st=1; done; exit $$st
# For tests/run.py and tests/fuzz/run.py: "name seedfile..." per line.
print-fuzz-targets:
	@$(foreach t,$(FUZZ_TARGETS),echo $(t) $($(t)_FUZZ_SEEDS);)

# ---- host tool: amber-snap, built from the kernel's own snapshot code ------
AMBER_SNAP_SRCS := tools/amber-snap.c tools/snapcore.c tools/snapimport.c tools/hostdisk.c drivers/blockdev.c snapshot/format.c \
                   snapshot/image.c snapshot/reader.c snapshot/pages.c snapshot/describe.c snapshot/store.c snapshot/chain.c \
                   kernel/crc32c.c kernel/lib.c kernel/format.c kernel/json.c
TOOL_CFLAGS := -std=gnu11 -O2 -g -I. -Wall -Wextra -Werror -Wno-unused-parameter -DAMBER_HOST_TEST \
               -fno-builtin-snprintf -fno-builtin-vsnprintf -Wno-format-truncation
all: $(BUILD)/amber-snap
$(BUILD)/amber-snap: $(AMBER_SNAP_SRCS) $(wildcard snapshot/*.h tools/*.h kernel/*.h) drivers/blockdev.h
	@mkdir -p $(dir $@)
	$(call say,HOSTCC,$@)
	$(Q)$(CC) $(TOOL_CFLAGS) -o $@ $(AMBER_SNAP_SRCS)

test: deps all iso unit-build fuzz-build
	$(PYTHON) tests/run.py

bench: deps all
	$(PYTHON) tests/bench.py

# The figures of docs/reliability.md, each written between its own markers by
# the run that proves it: fuzzing (tests/fuzz/run.py), then crash states,
# injected I/O errors, shell lines and page rights (the tests, tests/figures.py).
reliability: deps all unit-build fuzz-build
	$(PYTHON) tests/fuzz/run.py --report docs/reliability.md --seconds $(FUZZ_SECONDS) $(FUZZ)
	$(PYTHON) tests/run.py test_crash test_diskfail test_shellfuzz test_memprotect
	$(PYTHON) tests/figures.py docs/reliability.md

check:
	./scripts/check

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# For tests/run.py: the unit-test programs this tree defines.
print-unit-bins:
	@echo $(UNIT_BINS)
