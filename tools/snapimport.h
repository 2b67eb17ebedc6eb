/*
 * amber-snap import: an extracted snapshot image into the store of another
 * disk image, through the store code Amber itself commits with
 * (snapshot/store.c), after checking every CRC of the image. Host only.
 */
#ifndef AMBER_TOOLS_SNAPIMPORT_H
#define AMBER_TOOLS_SNAPIMPORT_H

#include "kernel/types.h"

/* --format: a blank disk image (first MiB all zero) gets an empty store. */
extern bool snapimport_format;

/* Imports the image in `file` into `disk`'s store as `name`. Returns the
 * exit status: 0, 1 (the image is damaged) or 2 (refused or I/O error),
 * after a message; the disk is unchanged unless 0 is returned. */
int snapimport(const char *disk, const char *file, const char *name);

/* Prints prefix and text to f in lines of at most 80 columns, broken at
 * blanks, continuation lines indented by 4 (the reader's findings are long). */
void snaptool_wrap(void *f, const char *prefix, const char *text);

#endif
