/*
 * The guest images Amber can run: the demo guests linked into the image (the
 * .guest_images section, one record per guest, written by tests/guests/
 * image.asm) and the Multiboot modules Amber was booted with, each named by the
 * basename of the first word of its command line, the other words being the
 * guest's default arguments. A module shadows a built-in guest of the same name.
 * Host context; the table is built once at boot.
 */
#include "kernel/bootinfo.h"
#include "kernel/lib.h"
#include "kernel/mm.h"
#include "kernel/printk.h"
#include "vmm/vmm_internal.h"

/* The record tests/guests/image.asm emits: six quadwords. */
struct guest_image_record {
	const char *name;
	const u8 *data;
	u64 size;
	const char *cmdline;
	const char *purpose;
	const char *usage;
};
_Static_assert(sizeof(struct guest_image_record) == 48, "matches tests/guests/image.asm");

extern const struct guest_image_record __guest_images_start[], __guest_images_end[];

#define MAX_IMAGES 32

static struct guest_image images[MAX_IMAGES];
static int nimages;
static char module_names[BOOT_MAX_MODULES][32];
static char module_args[BOOT_MAX_MODULES][128];

static void add(const struct guest_image *img)
{
	for (int i = 0; i < nimages; i++) {
		if (strcmp(images[i].name, img->name) == 0) {
			images[i] = *img; /* a module replaces the built-in one */
			return;
		}
	}
	if (nimages < MAX_IMAGES)
		images[nimages++] = *img;
}

/* "path/to/guest.elf a b" -> name "guest.elf", args "a b". */
static void split_module_cmdline(const char *cmdline, char *name, size_t nlen, char *args,
				 size_t alen)
{
	const char *p = cmdline, *word, *base;
	size_t n;

	while (*p == ' ')
		p++;
	word = p;
	while (*p && *p != ' ')
		p++;
	base = word;
	for (const char *q = word; q < p; q++)
		if (*q == '/')
			base = q + 1;
	n = MIN((size_t)(p - base), nlen - 1);
	memcpy(name, base, n);
	name[n] = '\0';
	while (*p == ' ')
		p++;
	strlcpy(args, p, alen);
}

void guest_images_init(void)
{
	nimages = 0;
	for (const struct guest_image_record *r = __guest_images_start; r < __guest_images_end; r++)
		add(&(struct guest_image){ r->name, r->data, r->size, r->cmdline, false, r->purpose,
					   r->usage });
	for (int i = 0; i < boot_info.module_count; i++) {
		const struct boot_module *m = &boot_info.modules[i];

		split_module_cmdline(m->cmdline, module_names[i], sizeof(module_names[i]),
				     module_args[i], sizeof(module_args[i]));
		if (!module_names[i][0])
			snprintf(module_names[i], sizeof(module_names[i]), "module%d", i);
		add(&(struct guest_image){ module_names[i], phys_to_virt(m->start),
					   m->end - m->start, module_args[i], true, "", "" });
	}
}

const struct guest_image *guest_image_find(const char *name)
{
	for (int i = 0; i < nimages; i++)
		if (strcmp(images[i].name, name) == 0)
			return &images[i];
	return NULL;
}

int guest_image_count(void) { return nimages; }

const struct guest_image *guest_image_at(int i)
{
	return i >= 0 && i < nimages ? &images[i] : NULL;
}
