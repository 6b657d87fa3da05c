/* secret: where the pre-shared secret comes from. --secret-file wins over
 * the environment variable XFER_SECRET; never the command line, which other
 * local users can read in the process list. A receiver given neither makes
 * up a strong one. Reads at most one small file, at start-up, and refuses
 * one whose name is a symbolic link. */
#ifndef XFER_SECRET_H
#define XFER_SECRET_H

#include <stddef.h>

#include "xfer/cli.h"

#define SECRET_MAX_LEN 1024

/* Fills out (NUL-terminated) and sets *generated when it made one up.
 * Returns XFER_EXIT_OK, or an exit code with a one-line reason in err. */
int secret_load(const struct cli_opts *o, char *out, size_t cap, int *generated, char *err,
                size_t errcap);

#endif
