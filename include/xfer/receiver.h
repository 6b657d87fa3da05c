/* receiver: `xfer recv`. Listens, lets in only senders that prove they hold
 * the secret (after proving it holds it too), runs one state machine per
 * connection on
 * a single libuv loop, writes chunks through the threadpool, confirms
 * offsets only once data and journal are durable, and commits a file under
 * its final name only when its whole-file XXH3-128 matches the sender's.
 * Returns an XFER_EXIT_* code. */
#ifndef XFER_RECEIVER_H
#define XFER_RECEIVER_H

#include "xfer/auth.h"
#include "xfer/cli.h"

/* psk: derived from the secret. generated: the secret as text when xfer
 * made it up (it is printed with the command a sender should run), or NULL. */
int receiver_run(const struct cli_opts *o, const struct auth_psk *psk, const char *generated);

#endif
