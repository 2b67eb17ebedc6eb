/*
 * An ELF64 core file (ET_CORE, EM_X86_64) from a snapshot image: one PT_NOTE
 * with NT_PRPSINFO, then per vCPU NT_PRSTATUS (registers in the x86-64
 * user_regs_struct order) and NT_FPREGSET (the FXSAVE part of its XSAVE area);
 * then one PT_LOAD per memory region at its guest-physical address, zero pages
 * included (as holes of a sparse file). Guest-physical equals guest-virtual
 * only for identity-mapped guests; gdb sees the addresses as they are here.
 * Layouts: System V gABI "Program Header" / "Note Section", and Linux's
 * include/uapi/linux/elfcore.h for prstatus/prpsinfo. Host only.
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

#define NOTE_NAME "CORE"
#define FXSAVE_SIZE 512

static size_t note_size(size_t desc) { return sizeof(Elf64_Nhdr) + 8 + ((desc + 3) & ~3UL); }

static uint8_t *put_note(uint8_t *p, uint32_t type, const void *desc, size_t len)
{
	Elf64_Nhdr nh = { .n_namesz = sizeof(NOTE_NAME),
			  .n_descsz = (Elf64_Word)len,
			  .n_type = type };

	memcpy(p, &nh, sizeof(nh));
	p += sizeof(nh);
	memset(p, 0, 8);
	memcpy(p, NOTE_NAME, sizeof(NOTE_NAME));
	p += 8;
	memset(p, 0, (len + 3) & ~3UL);
	memcpy(p, desc, len);
	return p + ((len + 3) & ~3UL);
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

int snapcore_write(struct snap_source *src, struct snap_parsed *p, const char *path,
		   snapcore_base_fn base, void *base_ctx)
{
	static struct vcpu_state s;
	struct snap_report rep = { 0 };
	struct core_mem mem = { .p = p };
	struct core_prpsinfo ps = { .pr_sname = 'T', .pr_state = 3 };
	uint32_t nv = p->hdr.vcpu_count, nph = 1 + p->nregions;
	size_t notes_len = note_size(sizeof(ps)) +
			   nv * (note_size(sizeof(struct core_prstatus)) + note_size(FXSAVE_SIZE));
	uint64_t notes_off = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr), data_off;
	uint8_t *hdrs = NULL, *np;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	int fd = -1, ret = -1;

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
	data_off = (notes_off + notes_len + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	hdrs = calloc(1, data_off);
	if (!hdrs)
		goto out;
	eh = (Elf64_Ehdr *)hdrs;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh->e_type = ET_CORE;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = (Elf64_Half)nph;

	ph = (Elf64_Phdr *)(hdrs + sizeof(Elf64_Ehdr));
	ph[0] = (Elf64_Phdr){
		.p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes_len, .p_align = 4
	};
	for (u32 i = 0; i < p->nregions; i++) {
		uint64_t size = p->region[i].pages * PAGE_SIZE;

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

	snprintf(ps.pr_fname, sizeof(ps.pr_fname), "%s", p->dev.image);
	snprintf(ps.pr_psargs, sizeof(ps.pr_psargs), "%s %s (snapshot %s)", p->dev.image,
		 p->dev.cmdline, p->info.name);
	np = put_note(hdrs + notes_off, NT_PRPSINFO, &ps, sizeof(ps));
	for (u32 i = 0; i < nv; i++) {
		struct core_prstatus pr;

		if (snap_image_read_vcpu(src, p, i, &s, &rep)) {
			fprintf(stderr, "amber-snap: vCPU %u record unreadable\n", i);
			goto out;
		}
		fill_prstatus(&pr, &s, i);
		np = put_note(np, NT_PRSTATUS, &pr, sizeof(pr));
		if (s.xsave_size < FXSAVE_SIZE)
			memset(s.xsave, 0, FXSAVE_SIZE);
		np = put_note(np, NT_FPREGSET, s.xsave, FXSAVE_SIZE);
	}

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 ||
	    pwrite(fd, hdrs, notes_off + notes_len, 0) != (ssize_t)(notes_off + notes_len)) {
		fprintf(stderr, "amber-snap: %s: %s\n", path, strerror(errno));
		goto out;
	}
	for (u32 i = 0; i < p->nregions; i++) {
		if (write_sparse(fd, mem.buf[i], p->region[i].pages * PAGE_SIZE,
				 ph[1 + i].p_offset)) {
			fprintf(stderr, "amber-snap: %s: %s\n", path, strerror(errno));
			goto out;
		}
	}
	if (ftruncate(fd, (off_t)data_off)) {
		fprintf(stderr, "amber-snap: %s: %s\n", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(hdrs);
	for (u32 i = 0; i < p->nregions; i++)
		free(mem.buf[i]);
	return ret;
}
