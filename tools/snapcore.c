/*
 * An ELF core file from a snapshot image: ELF64/EM_X86_64 for a guest in long
 * mode, ELF32/EM_386 for one in 32- or 16-bit code (gdb picks its
 * disassembler from the file's machine). One PT_NOTE with NT_PRPSINFO, then
 * per vCPU NT_PRSTATUS (the user_regs_struct of that machine), NT_FPREGSET
 * (64-bit: the FXSAVE area) and an "AMBER" note with the system state
 * (docs/snapshot-format.md "Core files"); then one PT_LOAD per memory region
 * at its guest-physical address, zero pages left as holes. Layouts: System V
 * gABI "Program Header" / "Note Section", Linux's elfcore.h. Host only.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/snapcore.h"

/* struct elf_prstatus of x86-64 Linux (what gdb's core reader expects). */
struct core_prstatus {
	int32_t si_signo, si_code, si_errno;
	int16_t pr_cursig;
	uint16_t pad0;
	uint64_t pr_sigpend, pr_sighold;
	int32_t pr_pid, pr_ppid, pr_pgrp, pr_sid;
	int64_t pr_utime[2], pr_stime[2], pr_cutime[2], pr_cstime[2];
	uint64_t pr_reg[27]; /* user_regs_struct */
	int32_t pr_fpvalid;
	int32_t pad1;
};
_Static_assert(sizeof(struct core_prstatus) == 336, "elf_prstatus is 336 bytes on x86-64");
_Static_assert(offsetof(struct core_prstatus, pr_reg) == 112, "pr_reg at 112");

/* The same two of i386 Linux: 144 and 124 bytes (BFD's elf32-i386 reads
 * exactly these sizes). */
struct core_prstatus32 {
	int32_t si_signo, si_code, si_errno;
	int16_t pr_cursig;
	uint16_t pad0;
	uint32_t pr_sigpend, pr_sighold;
	int32_t pr_pid, pr_ppid, pr_pgrp, pr_sid;
	int32_t pr_time[8];
	uint32_t pr_reg[17]; /* ebx ecx edx esi edi ebp eax ds es fs gs orig_eax
			       eip cs eflags esp ss */
	int32_t pr_fpvalid;
};
_Static_assert(sizeof(struct core_prstatus32) == 144, "i386 elf_prstatus is 144 bytes");

struct core_prpsinfo32 {
	char pr_state, pr_sname, pr_zomb, pr_nice;
	uint32_t pr_flag;
	uint16_t pr_uid, pr_gid;
	int32_t pr_pid, pr_ppid, pr_pgrp, pr_sid;
	char pr_fname[16];
	char pr_psargs[80];
};
_Static_assert(sizeof(struct core_prpsinfo32) == 124, "i386 elf_prpsinfo is 124 bytes");

/* The AMBER note (owner "AMBER", type 1), one per vCPU after its prstatus:
 * what gdb's registers lack. Little-endian; documented byte by byte in
 * docs/snapshot-format.md "Core files". */
#define NT_AMBER_SYSTEM \
	0x414d4201 /* not a number of Linux core notes: BFD reads
				     * those by type whatever the owner */
struct core_amber_seg {
	uint16_t selector, attr; /* attr: the packed AMD form of vcpu_state.h */
	uint32_t limit;
	uint64_t base;
};
struct core_amber {
	uint32_t version; /* 1 */
	uint32_t vcpu;
	uint32_t mode; /* 16, 32 or 64: the code the vCPU was running */
	uint32_t real; /* 1: real mode (CR0.PE clear) */
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, pat, xcr0;
	uint64_t gdtr_base, idtr_base;
	uint32_t gdtr_limit, idtr_limit;
	struct core_amber_seg seg[8]; /* es cs ss ds fs gs ldtr tr */
};
_Static_assert(sizeof(struct core_amber) == 232, "the AMBER note is 232 bytes");

struct core_prpsinfo {
	char pr_state, pr_sname, pr_zomb, pr_nice;
	uint32_t pad0;
	uint64_t pr_flag;
	uint32_t pr_uid, pr_gid;
	int32_t pr_pid, pr_ppid, pr_pgrp, pr_sid;
	char pr_fname[16];
	char pr_psargs[80];
};
_Static_assert(sizeof(struct core_prpsinfo) == 136, "elf_prpsinfo is 136 bytes on x86-64");

/* user_regs_struct indexes (arch/x86/include/uapi/asm/ptrace.h order). */
enum {
	UR_R15,
	UR_R14,
	UR_R13,
	UR_R12,
	UR_RBP,
	UR_RBX,
	UR_R11,
	UR_R10,
	UR_R9,
	UR_R8,
	UR_RAX,
	UR_RCX,
	UR_RDX,
	UR_RSI,
	UR_RDI,
	UR_ORIG_RAX,
	UR_RIP,
	UR_CS,
	UR_EFLAGS,
	UR_RSP,
	UR_SS,
	UR_FS_BASE,
	UR_GS_BASE,
	UR_DS,
	UR_ES,
	UR_FS,
	UR_GS,
};

#define FXSAVE_SIZE 512

/* A note's bytes; owner names ("CORE", "AMBER") take 8 with their padding. */
static size_t note_size(size_t desc) { return sizeof(Elf64_Nhdr) + 8 + ((desc + 3) & ~3UL); }

static uint8_t *put_note(uint8_t *p, const char *owner, uint32_t type, const void *desc, size_t len)
{
	Elf64_Nhdr nh = { .n_namesz = (Elf64_Word)strlen(owner) + 1,
			  .n_descsz = (Elf64_Word)len,
			  .n_type = type };

	memcpy(p, &nh, sizeof(nh));
	p += sizeof(nh);
	memset(p, 0, 8);
	memcpy(p, owner, strlen(owner) + 1);
	p += 8;
	memset(p, 0, (len + 3) & ~3UL);
	memcpy(p, desc, len);
	return p + ((len + 3) & ~3UL);
}

/* The code a vCPU runs: 64 (EFER.LMA and CS.L), 32 (CR0.PE and CS.D) or
 * 16 (real mode, or a 16-bit code segment). SDM Vol. 3A 5.2.1 "Code-Segment
 * Descriptor" (the L and D flags); attr bit 9 is L, bit 10 D/B. */
static uint32_t vcpu_mode(const struct vcpu_state *s)
{
	if ((s->efer & (1u << 10)) && (s->cs.attr & (1u << 9)))
		return 64;
	if ((s->cr0 & 1) && (s->cs.attr & (1u << 10)))
		return 32;
	return 16;
}

static void fill_amber(struct core_amber *a, const struct vcpu_state *s, uint32_t id)
{
	const struct vcpu_segment *seg[8] = { &s->es, &s->cs, &s->ss,	&s->ds,
					      &s->fs, &s->gs, &s->ldtr, &s->tr };

	memset(a, 0, sizeof(*a));
	*a = (struct core_amber){ .version = 1,
				  .vcpu = id,
				  .mode = vcpu_mode(s),
				  .real = !(s->cr0 & 1),
				  .cr0 = s->cr0,
				  .cr2 = s->cr2,
				  .cr3 = s->cr3,
				  .cr4 = s->cr4,
				  .cr8 = s->cr8,
				  .efer = s->efer,
				  .pat = s->pat,
				  .xcr0 = s->xcr0,
				  .gdtr_base = s->gdtr.base,
				  .idtr_base = s->idtr.base,
				  .gdtr_limit = s->gdtr.limit,
				  .idtr_limit = s->idtr.limit };
	for (int i = 0; i < 8; i++)
		a->seg[i] = (struct core_amber_seg){ seg[i]->selector, seg[i]->attr, seg[i]->limit,
						     seg[i]->base };
}

static void fill_prstatus32(struct core_prstatus32 *ps, const struct vcpu_state *s, uint32_t id)
{
	const uint64_t v[17] = { s->regs[REG_RBX], s->regs[REG_RCX], s->regs[REG_RDX],
				 s->regs[REG_RSI], s->regs[REG_RDI], s->regs[REG_RBP],
				 s->regs[REG_RAX], s->ds.selector,   s->es.selector,
				 s->fs.selector,   s->gs.selector,   ~0ULL,
				 s->rip,	   s->cs.selector,   s->rflags,
				 s->regs[REG_RSP], s->ss.selector };

	memset(ps, 0, sizeof(*ps));
	ps->si_signo = ps->pr_cursig = 19;
	ps->pr_pid = (int32_t)id + 1;
	for (int i = 0; i < 17; i++)
		ps->pr_reg[i] = (uint32_t)v[i];
}

static void fill_prstatus(struct core_prstatus *ps, const struct vcpu_state *s, uint32_t id)
{
	uint64_t *r = ps->pr_reg;

	memset(ps, 0, sizeof(*ps));
	ps->si_signo = ps->pr_cursig = 19; /* SIGSTOP: the guest was frozen, not killed */
	ps->pr_pid = (int32_t)id + 1;	   /* gdb shows each vCPU as a thread */
	ps->pr_fpvalid = s->xsave_size >= FXSAVE_SIZE;
	r[UR_R15] = s->regs[REG_R15];
	r[UR_R14] = s->regs[REG_R14];
	r[UR_R13] = s->regs[REG_R13];
	r[UR_R12] = s->regs[REG_R12];
	r[UR_RBP] = s->regs[REG_RBP];
	r[UR_RBX] = s->regs[REG_RBX];
	r[UR_R11] = s->regs[REG_R11];
	r[UR_R10] = s->regs[REG_R10];
	r[UR_R9] = s->regs[REG_R9];
	r[UR_R8] = s->regs[REG_R8];
	r[UR_RAX] = s->regs[REG_RAX];
	r[UR_RCX] = s->regs[REG_RCX];
	r[UR_RDX] = s->regs[REG_RDX];
	r[UR_RSI] = s->regs[REG_RSI];
	r[UR_RDI] = s->regs[REG_RDI];
	r[UR_ORIG_RAX] = ~0ULL;
	r[UR_RIP] = s->rip;
	r[UR_CS] = s->cs.selector;
	r[UR_EFLAGS] = s->rflags;
	r[UR_RSP] = s->regs[REG_RSP];
	r[UR_SS] = s->ss.selector;
	r[UR_FS_BASE] = s->fs.base;
	r[UR_GS_BASE] = s->gs.base;
	r[UR_DS] = s->ds.selector;
	r[UR_ES] = s->es.selector;
	r[UR_FS] = s->fs.selector;
	r[UR_GS] = s->gs.selector;
}

struct core_mem {
	struct snap_parsed *p;
	uint8_t *buf[SNAP_MAX_REGIONS];
};

static void *core_page(void *ctx, u64 gpa)
{
	struct core_mem *m = ctx;

	for (u32 i = 0; i < m->p->nregions; i++) {
		const struct snap_region *r = &m->p->region[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->pages * PAGE_SIZE)
			return m->buf[i] + (gpa - r->gpa);
	}
	return NULL;
}

/* Writes len bytes at off, leaving all-zero pages as holes. */
static int write_sparse(int fd, const uint8_t *buf, uint64_t len, uint64_t off)
{
	for (uint64_t done = 0; done < len; done += PAGE_SIZE) {
		uint64_t n = len - done < PAGE_SIZE ? len - done : PAGE_SIZE;

		if (n == PAGE_SIZE && snap_page_is_zero(buf + done))
			continue;
		if (pwrite(fd, buf + done, n, (off_t)(off + done)) != (ssize_t)n)
			return -1;
	}
	return 0;
}

/* The ELF file header and program headers at hdrs, in the class `c32`
 * chooses: nph headers, PT_NOTE first. */
static void put_headers(uint8_t *hdrs, bool c32, const struct snap_parsed *p, uint64_t notes_off,
			uint64_t notes_len, uint64_t data_off, uint64_t *seg_off)
{
	uint32_t nph = 1 + p->nregions;

	memcpy(hdrs, ELFMAG, SELFMAG);
	hdrs[EI_CLASS] = c32 ? ELFCLASS32 : ELFCLASS64;
	hdrs[EI_DATA] = ELFDATA2LSB;
	hdrs[EI_VERSION] = EV_CURRENT;
	hdrs[EI_OSABI] = ELFOSABI_NONE;
	if (c32) {
		Elf32_Ehdr *eh = (Elf32_Ehdr *)hdrs;
		Elf32_Phdr *ph = (Elf32_Phdr *)(hdrs + sizeof(*eh));

		*eh = (Elf32_Ehdr){ .e_type = ET_CORE,
				    .e_machine = EM_386,
				    .e_version = EV_CURRENT,
				    .e_phoff = sizeof(*eh),
				    .e_ehsize = sizeof(*eh),
				    .e_phentsize = sizeof(*ph),
				    .e_phnum = (Elf32_Half)nph };
		ph[0] = (Elf32_Phdr){ .p_type = PT_NOTE,
				      .p_offset = (Elf32_Off)notes_off,
				      .p_filesz = (Elf32_Word)notes_len,
				      .p_align = 4 };
		for (u32 i = 0; i < p->nregions; i++) {
			uint32_t size = (uint32_t)(p->region[i].pages * PAGE_SIZE);

			seg_off[i] = data_off;
			ph[1 + i] = (Elf32_Phdr){ .p_type = PT_LOAD,
						  .p_flags = PF_R | PF_W | PF_X,
						  .p_offset = (Elf32_Off)data_off,
						  .p_vaddr = (Elf32_Addr)p->region[i].gpa,
						  .p_paddr = (Elf32_Addr)p->region[i].gpa,
						  .p_filesz = size,
						  .p_memsz = size,
						  .p_align = PAGE_SIZE };
			data_off += size;
		}
	} else {
		Elf64_Ehdr *eh = (Elf64_Ehdr *)hdrs;
		Elf64_Phdr *ph = (Elf64_Phdr *)(hdrs + sizeof(*eh));

		*eh = (Elf64_Ehdr){ .e_type = ET_CORE,
				    .e_machine = EM_X86_64,
				    .e_version = EV_CURRENT,
				    .e_phoff = sizeof(*eh),
				    .e_ehsize = sizeof(*eh),
				    .e_phentsize = sizeof(*ph),
				    .e_phnum = (Elf64_Half)nph };
		ph[0] = (Elf64_Phdr){ .p_type = PT_NOTE,
				      .p_offset = notes_off,
				      .p_filesz = notes_len,
				      .p_align = 4 };
		for (u32 i = 0; i < p->nregions; i++) {
			uint64_t size = p->region[i].pages * PAGE_SIZE;

			seg_off[i] = data_off;
			ph[1 + i] = (Elf64_Phdr){ .p_type = PT_LOAD,
						  .p_flags = PF_R | PF_W | PF_X,
						  .p_offset = data_off,
						  .p_vaddr = p->region[i].gpa,
						  .p_paddr = p->region[i].gpa,
						  .p_filesz = size,
						  .p_memsz = size,
						  .p_align = PAGE_SIZE };
			data_off += size;
		}
	}
	memcpy(hdrs, ELFMAG, SELFMAG);
	hdrs[EI_CLASS] = c32 ? ELFCLASS32 : ELFCLASS64;
	hdrs[EI_DATA] = ELFDATA2LSB;
	hdrs[EI_VERSION] = EV_CURRENT;
	hdrs[EI_OSABI] = ELFOSABI_NONE;
}

/* "Core was generated by": the VM's command line, which starts with its
 * image's name (vmm.c), else the image and the line. */
static void psargs(char *out, size_t len, const struct snap_parsed *p)
{
	size_t n = strlen(p->dev.image);

	if (n && !strncmp(p->dev.cmdline, p->dev.image, n) &&
	    (p->dev.cmdline[n] == ' ' || !p->dev.cmdline[n]))
		snprintf(out, len, "%s", p->dev.cmdline);
	else
		snprintf(out, len, "%s%s%s", p->dev.image, p->dev.cmdline[0] ? " " : "",
			 p->dev.cmdline);
}

int snapcore_write(struct snap_source *src, struct snap_parsed *p, const char *path,
		   struct snapcore_info *out_info, snapcore_base_fn base, void *base_ctx)
{
	struct snap_report rep = { 0 };
	struct core_mem mem = { .p = p };
	uint32_t nv = p->hdr.vcpu_count, nph = 1 + p->nregions;
	struct vcpu_state *vs = calloc(nv ? nv : 1, sizeof(*vs));
	uint64_t seg_off[SNAP_MAX_REGIONS];
	uint64_t notes_off, notes_len, data_off, end;
	uint8_t *hdrs = NULL, *np;
	bool c32;
	int fd = -1, ret = -1;

	if (!vs)
		goto out;
	for (u32 i = 0; i < nv; i++) {
		if (snap_image_read_vcpu(src, p, i, &vs[i], &rep)) {
			fprintf(stderr, "amber-snap: vCPU %u record unreadable\n", i);
			goto out;
		}
	}
	out_info->mode = nv ? vcpu_mode(&vs[0]) : 64;
	out_info->real = nv && !(vs[0].cr0 & 1);
	c32 = out_info->mode != 64;
	notes_off = c32 ? sizeof(Elf32_Ehdr) + nph * sizeof(Elf32_Phdr) :
			  sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr);
	notes_len = c32 ? note_size(sizeof(struct core_prpsinfo32)) +
				    nv * (note_size(sizeof(struct core_prstatus32)) +
					  note_size(sizeof(struct core_amber))) :
			  note_size(sizeof(struct core_prpsinfo)) +
				    nv * (note_size(sizeof(struct core_prstatus)) +
					  note_size(FXSAVE_SIZE) +
					  note_size(sizeof(struct core_amber)));
	data_off = (notes_off + notes_len + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	end = data_off;
	for (u32 i = 0; i < p->nregions; i++) {
		end += p->region[i].pages * PAGE_SIZE;
		if (c32 && p->region[i].gpa + p->region[i].pages * PAGE_SIZE > (1ULL << 32))
			end = ~0ULL;
	}
	if (c32 && end > 0xffffffffULL) {
		fprintf(stderr, "amber-snap: a 32-bit core holds at most 4 GiB at addresses\n"
				"  below 4 GiB; this guest's memory does not fit\n");
		goto out;
	}
	for (u32 i = 0; i < p->nregions; i++) {
		mem.buf[i] = calloc(p->region[i].pages, PAGE_SIZE);
		if (!mem.buf[i]) {
			fprintf(stderr, "amber-snap: out of memory for region %u\n", i);
			goto out;
		}
	}
	if (base && base(base_ctx, core_page, &mem))
		goto out;
	if (snap_image_load_pages(src, p, core_page, &mem, &rep, NULL, NULL)) {
		fprintf(stderr, "amber-snap: reading the pages failed: %s\n",
			rep.errors ? rep.first : "I/O error");
		goto out;
	}
	hdrs = calloc(1, data_off);
	if (!hdrs)
		goto out;
	put_headers(hdrs, c32, p, notes_off, notes_len, data_off, seg_off);
	if (c32) {
		struct core_prpsinfo32 ps = { .pr_sname = 'T', .pr_state = 3 };

		snprintf(ps.pr_fname, sizeof(ps.pr_fname), "%s", p->dev.image);
		psargs(ps.pr_psargs, sizeof(ps.pr_psargs), p);
		np = put_note(hdrs + notes_off, "CORE", NT_PRPSINFO, &ps, sizeof(ps));
	} else {
		struct core_prpsinfo ps = { .pr_sname = 'T', .pr_state = 3 };

		snprintf(ps.pr_fname, sizeof(ps.pr_fname), "%s", p->dev.image);
		psargs(ps.pr_psargs, sizeof(ps.pr_psargs), p);
		np = put_note(hdrs + notes_off, "CORE", NT_PRPSINFO, &ps, sizeof(ps));
	}
	for (u32 i = 0; i < nv; i++) {
		struct vcpu_state *s = &vs[i];
		struct core_amber am;

		if (c32) {
			struct core_prstatus32 pr;

			fill_prstatus32(&pr, s, i);
			np = put_note(np, "CORE", NT_PRSTATUS, &pr, sizeof(pr));
		} else {
			struct core_prstatus pr;

			fill_prstatus(&pr, s, i);
			np = put_note(np, "CORE", NT_PRSTATUS, &pr, sizeof(pr));
			if (s->xsave_size < FXSAVE_SIZE)
				memset(s->xsave, 0, FXSAVE_SIZE);
			np = put_note(np, "CORE", NT_FPREGSET, s->xsave, FXSAVE_SIZE);
		}
		fill_amber(&am, s, i);
		np = put_note(np, "AMBER", NT_AMBER_SYSTEM, &am, sizeof(am));
	}

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 ||
	    pwrite(fd, hdrs, notes_off + notes_len, 0) != (ssize_t)(notes_off + notes_len)) {
		fprintf(stderr, "amber-snap: %s: %s\n", path, strerror(errno));
		goto out;
	}
	for (u32 i = 0; i < p->nregions; i++) {
		if (write_sparse(fd, mem.buf[i], p->region[i].pages * PAGE_SIZE, seg_off[i])) {
			fprintf(stderr, "amber-snap: %s: %s\n", path, strerror(errno));
			goto out;
		}
	}
	if (ftruncate(fd, (off_t)end)) {
		fprintf(stderr, "amber-snap: %s: %s\n", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(hdrs);
	free(vs);
	for (u32 i = 0; i < p->nregions; i++)
		free(mem.buf[i]);
	return ret;
}
