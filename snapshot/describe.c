/*
 * A readable description of an opened snapshot image: every header field, the
 * sections, the regions and each vCPU's main registers. Shared by `snap info`
 * and `amber-snap info`, so both print the same lines, each within 80
 * columns. Pure code.
 */
#include "kernel/lib.h"
#include "kernel/printk.h"
#include "snapshot/image.h"
#include "vmm/vdev_id.h"

#define DESCRIBE_WIDTH 78 /* columns a line may fill */
#define DESCRIBE_CUT 66	  /* characters of the guest's command line a line shows */

struct out {
	void (*emit)(void *ctx, const char *line);
	void *ctx;
};

static void __printf(2, 3) line(struct out *o, const char *fmt, ...)
{
	char buf[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	o->emit(o->ctx, buf);
}

static const char *cpu_mode(const struct vcpu_state *s)
{
	if (!(s->cr0 & BIT(0)))
		return "real mode";
	if ((s->efer & BIT(10)) && (s->cs.attr & BIT(9)))
		return "64-bit mode";
	if (s->efer & BIT(10))
		return "compatibility mode";
	return (s->cr0 & BIT(31)) ? "protected mode, paging" : "protected mode";
}

static void describe_vcpus(struct snap_source *src, struct snap_parsed *p, struct out *o)
{
	static struct vcpu_state s; /* 4.6 KiB: not on the shell's stack */
	struct snap_report quiet = { 0 };

	for (u32 i = 0; i < p->hdr.vcpu_count && i < SNAP_MAX_VCPUS; i++) {
		if (snap_image_read_vcpu(src, p, i, &s, &quiet)) {
			line(o, "vCPU %u: record unreadable", i);
			continue;
		}
		line(o, "vCPU %u: %s%s%s", i, cpu_mode(&s),
		     s.halted == VCPU_WAIT_SIPI ? ", waiting for SIPI" :
		     s.halted			? ", halted" :
						  "",
		     s.pending.valid ? ", an event pending" : "");
		line(o, "  rip 0x%llx rsp 0x%llx rflags 0x%llx", (unsigned long long)s.rip,
		     (unsigned long long)s.regs[REG_RSP], (unsigned long long)s.rflags);
		line(o, "  rax 0x%llx rbx 0x%llx rcx 0x%llx", (unsigned long long)s.regs[REG_RAX],
		     (unsigned long long)s.regs[REG_RBX], (unsigned long long)s.regs[REG_RCX]);
		line(o, "  rdx 0x%llx cs %04x ss %04x", (unsigned long long)s.regs[REG_RDX],
		     s.cs.selector, s.ss.selector);
		line(o, "  cr0 0x%llx cr3 0x%llx cr4 0x%llx", (unsigned long long)s.cr0,
		     (unsigned long long)s.cr3, (unsigned long long)s.cr4);
		line(o, "  efer 0x%llx xcr0 0x%llx tsc %llu", (unsigned long long)s.efer,
		     (unsigned long long)s.xcr0, (unsigned long long)s.tsc);
		line(o, "  XSAVE area %u bytes", s.xsave_size);
	}
}

void snap_image_describe(struct snap_source *src, struct snap_parsed *p,
			 void (*emit)(void *ctx, const char *line), void *ctx)
{
	const struct snapshot_header *h = &p->hdr;
	struct out o = { emit, ctx };
	char size[32], mem[32];

	format_size(size, sizeof(size), h->total_size);
	format_size(mem, sizeof(mem), h->memory_pages * PAGE_SIZE);
	line(&o, "header: magic 0x%08x (\"SNAP\"%s), version %u, checksum 0x%llx (%s)", h->magic,
	     h->magic == SNAPSHOT_MAGIC ? "" : ": WRONG", h->version,
	     (unsigned long long)h->checksum, snap_header_is_valid(h) ? "valid" : "INVALID");
	line(&o, "  vm_id %llu, vcpu_count %u, memory_pages %llu (%s), region_count %u",
	     (unsigned long long)h->vm_id, h->vcpu_count, (unsigned long long)h->memory_pages, mem,
	     h->region_count);
	line(&o, "  total_size %llu (%s), timestamp %llu ticks (%llu.%03llu s after boot)",
	     (unsigned long long)h->total_size, size, (unsigned long long)h->timestamp,
	     (unsigned long long)(h->timestamp / 1000000),
	     (unsigned long long)(h->timestamp / 1000 % 1000));
	line(&o, "image: name \"%s\", captured by %s", p->info.name,
	     p->info.backend[0] ? p->info.backend : "?");
	line(&o, "  VM %u was %s, image \"%s\", %llu MiB", p->dev.vm_id,
	     snap_vm_state_name(p->dev.vm_state), p->dev.image,
	     (unsigned long long)(p->dev.mem_size >> 20));
	/* The command line in pieces of DESCRIBE_CUT characters. */
	for (size_t at = 0, len = strlen(p->dev.cmdline); at == 0 || at < len; at += DESCRIBE_CUT)
		line(&o, "%s%.*s%s", at ? "          " : "  cmdline \"", DESCRIBE_CUT,
		     p->dev.cmdline + at, at + DESCRIBE_CUT >= len ? "\"" : "");
	if (p->dev.initrd[0])
		line(&o, "  initrd \"%s\" (a reset of the VM loads it again)", p->dev.initrd);
	if (p->dev.has_cpuid)
		line(&o, "  CPU model %s (its CPUID: 1:ECX %08x, 7:EBX %08x, XCR0 %llx)",
		     cpu_model_name(p->dev.cpu_model) ? cpu_model_name(p->dev.cpu_model) : "?",
		     p->dev.cpuid.w[CPUID_W_1_ECX], p->dev.cpuid.w[CPUID_W_7_EBX],
		     (unsigned long long)p->dev.cpuid.xcr0);
	if (p->dev.vm_state == SNAP_VM_EXITED)
		line(&o, "  the VM had exited with code %d", (int)p->dev.exit_code);
	if (p->dev.vm_state == SNAP_VM_STOPPED)
		line(&o, "  the VM had been stopped: %.50s", p->dev.stop_reason);
	if (p->child) {
		line(&o, "parent: '%s', %u image%s below this one; changed pages found %s",
		     p->parent.name, p->parent.depth, p->parent.depth == 1 ? "" : "s",
		     p->parent.source == SNAP_DELTA_LOG ? "in the dirty log" : "by comparison");
		line(&o, "  parent image id %016llx, header CRC32C 0x%08x",
		     (unsigned long long)p->parent.image_id, p->parent.header_crc);
	}
	line(&o, "image id %016llx", (unsigned long long)p->info.image_id);
	if (p->note[0])
		line(&o, "note: %s", p->note);
	line(&o, "sections:  #  offset      type     flags      index  length");
	for (u32 i = 0; i < p->nsections; i++) {
		const struct snap_sec_desc *d = &p->sec[i];

		line(&o, "         %3u  0x%-9llx %-8s %-10s %5u  %llu", i,
		     (unsigned long long)d->pos, snap_section_name(d->type),
		     (d->flags & SNAP_SEC_MANDATORY) ? "mandatory" : "optional", d->index,
		     (unsigned long long)d->length);
	}
	for (u32 i = 0; i < p->nregions; i++) {
		const struct snap_region *r = &p->region[i];
		u64 stored = r->bitmap ? r->stored : 0;

		line(&o, "region %u: guest-physical 0x%llx-0x%llx, %llu pages", i,
		     (unsigned long long)p->rdesc[i].gpa,
		     (unsigned long long)(p->rdesc[i].gpa + p->rdesc[i].pages * PAGE_SIZE - 1),
		     (unsigned long long)p->rdesc[i].pages);
		line(&o, "  %llu stored (%llu%%), %s, CRC32C per %u pages",
		     (unsigned long long)stored,
		     (unsigned long long)(p->rdesc[i].pages ? stored * 100 / p->rdesc[i].pages : 0),
		     p->child ? "the changed ones" : "zero pages elided", r->pages_per_crc);
	}
	{
		char list[DESCRIBE_WIDTH + 1] = "devices:", item[48];
		size_t n = strlen(list);

		for (u32 i = 0; i < p->ndevrecs; i++) {
			const char *nm = vdev_id_name(p->devrec[i].id);

			if (nm)
				snprintf(item, sizeof(item), " %s v%u%s", nm, p->devrec[i].version,
					 i + 1 < p->ndevrecs ? "," : "");
			else
				snprintf(item, sizeof(item), " #%u v%u%s", p->devrec[i].id,
					 p->devrec[i].version, i + 1 < p->ndevrecs ? "," : "");
			if (n + strlen(item) > DESCRIBE_WIDTH) { /* wrap under the first */
				line(&o, "%s", list);
				n = strlcpy(list, "        ", sizeof(list));
			}
			n += strlcpy(list + n, item, sizeof(list) - n);
		}
		line(&o, "%s", p->ndevrecs ? list : "devices: none recorded");
	}
	describe_vcpus(src, p, &o);
}
