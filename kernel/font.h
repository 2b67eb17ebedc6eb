/* The framebuffer console's font: 8x16 glyphs for printable ASCII. */
#ifndef AMBER_FONT_H
#define AMBER_FONT_H

#include "kernel/types.h"

#define FONT_FIRST 0x20
#define FONT_GLYPHS 95
#define FONT_WIDTH 8
#define FONT_HEIGHT 16

extern const u8 font8x16[FONT_GLYPHS][FONT_HEIGHT];

#endif
