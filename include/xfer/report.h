/* report: what xfer tells its user on stderr. Informational lines are
 * dropped under -q; errors never are. Peer-supplied text must go through
 * report_escape() before it reaches a terminal. */
#ifndef XFER_REPORT_H
#define XFER_REPORT_H

#include <stddef.h>
#include <stdint.h>

void report_set_quiet(int quiet);
int report_is_quiet(void);

/* "xfer: " + message + newline. */
void report_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "xfer: error: " + message + newline. */
void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Human sizes: "1.5 GiB". */
void report_size(uint64_t bytes, char *out, size_t cap);

/* Escapes a peer's name or text for display (see name_escape()). */
const char *report_escape(const char *s, char *out, size_t cap);

/* The same into one of a few rotating static buffers, so that one message
 * can show several escaped strings. Loop thread only. */
const char *report_escaped(const char *s);

/* A budget for lines that strangers can cause, so that a flood of
 * connections cannot flood the log: REPORT_BUDGET_BURST lines at once, then
 * one a second (REPORT_BUDGET_MS). Lines held back are counted, and the next
 * line let through says how many. A zero-filled budget is full. */
#define REPORT_BUDGET_BURST 5
#define REPORT_BUDGET_MS 1000

struct report_budget {
    uint64_t refill_ms; /* when the next spent line comes back */
    unsigned spent;     /* lines out of REPORT_BUDGET_BURST in use */
    uint64_t held;      /* lines held back since the last one let through */
};

/* 1 if a line may go out at now (milliseconds, any monotonic clock), with
 * *held set to the lines held back before it, which it should mention; else
 * 0, and this one counts as held back. */
int report_budget_take(struct report_budget *b, uint64_t now, uint64_t *held);

/* Room for report_budget_note()'s text. */
#define REPORT_BUDGET_NOTE 64

/* What to add to a line let through after held were held back: "" when
 * none, else " (and N more like it, not shown)". Returns out. */
const char *report_budget_note(uint64_t held, char *out, size_t cap);

#endif
