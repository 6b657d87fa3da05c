/* receiver: `xfer recv`. Listens, runs one state machine per connection on
 * a single libuv loop, writes chunks through the threadpool, confirms
 * offsets only once data and journal are durable, and commits a file under
 * its final name only when its whole-file XXH3-128 matches the sender's.
 * Returns an XFER_EXIT_* code. */
#ifndef XFER_RECEIVER_H
#define XFER_RECEIVER_H

#include "xfer/cli.h"

int receiver_run(const struct cli_opts *o);

#endif
