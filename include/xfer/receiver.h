/* receiver: `xfer recv`. Listens, lets in only senders that prove they hold
 * the secret (after proving it holds it too), runs one state machine per
 * connection on
 * a single libuv loop, writes chunks through the threadpool, confirms
 * offsets only once data and journal are durable, and commits a file under
 * its final name only when its whole-file XXH3-128 matches the sender's.
 * Returns an XFER_EXIT_* code. */
#ifndef XFER_RECEIVER_H
#define XFER_RECEIVER_H

#include <uv.h>

#include "xfer/auth.h"
#include "xfer/cli.h"

/* psk: derived from the secret. generated: the secret as text when xfer
 * made it up (it is printed with the command a sender should run), or NULL. */
int receiver_run(const struct cli_opts *o, const struct auth_psk *psk, const char *generated);

/* The same per-connection state machine without the listener, the signals
 * or the pre-authentication admission, on the caller's loop: for the session
 * fuzzer (tests/fuzz), which hands it one end of a socket pair.
 *
 * receiver_open() sets up a receiver for o->dir (0, or a negative code).
 * receiver_serve() takes ownership of fd, a connected stream socket, and
 * runs one session on it from HELLO on; it returns 0 or a negative code,
 * the session then being closed. receiver_close() sends ERROR SHUTDOWN to
 * the sessions still open and closes the receiver's handles; its memory is
 * freed once the caller's loop has run every session and handle closed. */
struct receiver;
int receiver_open(struct receiver **rxp, uv_loop_t *loop, const struct cli_opts *o,
                  const struct auth_psk *psk);
int receiver_serve(struct receiver *rx, uv_os_sock_t fd);
void receiver_close(struct receiver *rx);

#endif
