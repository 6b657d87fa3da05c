/* name: what a received file may be called, and how peer-supplied text is
 * shown. Pure functions, no I/O. */
#ifndef XFER_NAME_H
#define XFER_NAME_H

#include <stddef.h>

/* The receiver keeps partials and journals in this directory under --dir, so
 * no received file may take its name. */
#define NAME_STATE_DIR ".xfer"
#define NAME_KEY_LEN 32

/* Accepts a plain file name: 1..255 bytes of valid UTF-8, no '/', no NUL or
 * control characters, not "." or "..", not NAME_STATE_DIR. Returns 0, or
 * XFER_ENAME with *why set to a static reason. */
int name_check(const char *name, size_t len, const char **why);

/* Writes name with control characters, invalid UTF-8, backslashes and
 * bidirectional overrides escaped (\xNN, \u{NNNN}) so a peer's text cannot
 * drive the terminal; always NUL-terminates, truncating with "...". */
void name_escape(const char *in, size_t len, char *out, size_t cap);

/* A fixed-length file-system-safe key for name: 32 hex digits of its
 * XXH3-128. Partials are "<key>.part", journals "<key>.journal". */
void name_state_key(const char *name, char out[NAME_KEY_LEN + 1]);

#endif
