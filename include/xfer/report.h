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

#endif
