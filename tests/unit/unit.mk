# Host unit tests. Each tests/unit/<name>.mk fragment adds one test program:
#   UNIT_TESTS += format
#   format_SRCS := tests/unit/test_format.c kernel/format.c kernel/lib.c
# The program is built with sanitizers into $(BUILD)/unit/<name> and must exit 0
# when every check passed; tests/run.py runs each one as a test.
UNIT_TESTS :=
include $(filter-out tests/unit/unit.mk,$(wildcard tests/unit/*.mk))

UNIT_BINS := $(addprefix $(BUILD)/unit/,$(UNIT_TESTS))

define unit_rule
$(BUILD)/unit/$(1): $$($(1)_SRCS) $$(wildcard tests/unit/*.h)
	@mkdir -p $$(dir $$@)
	$$(call say,HOSTCC,$$@)
	$$(Q)$$(CC) $$(HOST_CFLAGS) -o $$@ $$($(1)_SRCS)
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

unit-build: $(UNIT_BINS)
unit: unit-build
	@for t in $(UNIT_BINS); do echo "== $$t"; $$t || exit 1; done
