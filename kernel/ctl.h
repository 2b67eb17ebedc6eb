/*
 * The control channel: a line protocol for programs on COM2 (0x2F8), next to
 * the person's shell on COM1. Each request is one shell command line; each
 * answer and each event is one line of JSON. Also runs the boot script
 * (amber.run= on Amber's command line, a Multiboot module named amber.rc).
 * Host context, the shell's main loop; README "Control channel" has the protocol.
 */
#ifndef AMBER_CTL_H
#define AMBER_CTL_H

#include "kernel/json.h"

/* The name (first word of its command line, directories aside) of the
 * Multiboot module that holds the boot script. */
#define CTL_RC_NAME "amber.rc"

/* Probes COM2 and, when a UART is there, announces the channel. */
void ctl_init(void);
/* Runs the commands of the boot script, each echoed with its result. */
void ctl_boot_script(void);
/* The main loop's share: answers complete requests, reports VM state changes. */
void ctl_poll(void);
/* While a command runs: answers requests that arrive with "busy". */
void ctl_poll_busy(void);
/* Runs a command line typed on COM1 (through shell_exec), so the channel can
 * report it as an event. */
int ctl_exec_console(char *line);
/* Brackets guest time: lines a VM prints become "output" events. */
void ctl_guest_time(bool on);

/* The "data" object of the answer to the command now running, or NULL when
 * no one reads it. A command adds its members (json_arr_begin(j, "vms")...),
 * each of them balanced. */
struct json *ctl_data(void);
/* Marks the line a command prints next as its summary: the "message" of its
 * answer (by default the last line; a report with detail lines after its
 * summary line marks it). */
void ctl_summary_next(void);

#endif
