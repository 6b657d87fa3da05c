/* sender: `xfer send`. Proves it holds the secret and checks that the
 * receiver does too, then offers each FILE in turn on one connection, streams
 * chunks within a window of unconfirmed bytes, hashes the source as it goes,
 * and reconnects with backoff for up to --retry-for seconds, resuming from
 * the receiver's confirmed offset. A receiver that breaks the protocol after
 * the handshake, or the limits xfer-protocol(7) sets on what it may ask for,
 * ends the run (XFER_EXIT_PEER). Returns an XFER_EXIT_* code. */
#ifndef XFER_SENDER_H
#define XFER_SENDER_H

#include "xfer/auth.h"
#include "xfer/cli.h"

/* psk: the pre-shared key both sides derive from the secret. */
int sender_run(const struct cli_opts *o, const struct auth_psk *psk);

#endif
