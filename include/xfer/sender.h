/* sender: `xfer send`. Offers each FILE in turn on one connection, streams
 * chunks within a window of unconfirmed bytes, hashes the source as it goes,
 * and reconnects with backoff for up to --retry-for seconds, resuming from
 * the receiver's confirmed offset. Returns an XFER_EXIT_* code. */
#ifndef XFER_SENDER_H
#define XFER_SENDER_H

#include "xfer/cli.h"

int sender_run(const struct cli_opts *o);

#endif
