/* link: one TCP connection carrying xfer frames, shared by sender and
 * receiver. It reads frames (a DATA payload lands straight in its own
 * heap buffer, handed to the owner, so chunks are never copied in user
 * space), queues frames for writing, sends PING when idle, and closes the
 * connection when the peer has been silent longer than the idle timeout.
 *
 * The owner embeds struct link, calls link_init() with a uv_tcp_t it has
 * accepted or connected, and frees its memory only after ops->on_close.
 *
 * Output is bounded: a peer that keeps sending frames we answer but never
 * reads the answers must not make us queue them without end. Control frames
 * queued and not yet written (counted with their bookkeeping, so the figure
 * is memory) past LINK_TX_HIGH stop reading from the peer, whatever the
 * owner's link_pause() says; below LINK_TX_LOW reading goes on (if the owner
 * has not paused it too). Past LINK_TX_MAX, or with nothing drained for the
 * idle timeout while stopped, the link closes with XFER_ESTALLED. DATA is
 * not counted: the sender's window bounds it. */
#ifndef XFER_LINK_H
#define XFER_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "xfer/proto.h"
#include "xfer/seal.h"

#define LINK_TX_HIGH (64u * 1024u)
#define LINK_TX_LOW (16u * 1024u)
#define LINK_TX_MAX (256u * 1024u)

struct link;

struct link_ops {
    /* One decoded frame. For DATA, data_buf is the buffer holding the
     * payload (f->u.data.bytes points into it) and the callee owns it from
     * now on: give it back with link_buf_release(). Return <0 to close the
     * link with that error (the owner sends an ERROR frame first if it
     * wants to). */
    int (*on_frame)(struct link *l, const struct proto_frame *f, uint8_t *data_buf);
    /* A write queued with link_send_data() finished (status 0) or was
     * cancelled (<0); ctx is what was passed. */
    void (*on_data_sent)(struct link *l, void *ctx, int status);
    /* The connection is closed and every write callback has run. err is 0
     * for a close the owner asked for, else why it was closed. */
    void (*on_close)(struct link *l, int err);
};

enum link_pause_reason {
    LINK_PAUSE_OWNER = 1,  /* link_pause(): the owner's flow control */
    LINK_PAUSE_OUTPUT = 2  /* our replies are not being drained */
};

enum link_state {
    LINK_OPEN,
    LINK_DRAINING, /* flushing queued frames before closing */
    LINK_CLOSING,
    LINK_CLOSED
};

struct link {
    uv_tcp_t tcp;
    uv_timer_t timer;
    const struct link_ops *ops;
    void *data; /* the owner's */
    enum link_state state;
    int close_err;
    int handles_open;
    int paused; /* LINK_PAUSE_* bits: reading stops while any is set */
    uint64_t idle_ms;       /* peer silence that ends the connection */
    uint64_t last_rx;       /* uv_now() of the last byte received */
    uint64_t last_tx;       /* uv_now() of the last frame queued */
    uint64_t drain_started;
    size_t tx_pending;      /* bytes queued and not yet written */
    size_t ctrl_queued;     /* memory held by control frames queued, not yet written */
    size_t stalled_queued;  /* ctrl_queued when it closed with XFER_ESTALLED */
    uint64_t last_drain;    /* uv_now() of the last write done, or of the output pause */
    unsigned writes_pending;
    /* record layer: once keys exist, every frame travels sealed */
    struct seal tx_seal;
    struct seal rx_seal;
    int tx_sealed;
    int rx_sealed;
    int rx_opened_one; /* a sealed record has arrived: clear frames are over */
    /* frame assembly */
    uint8_t hdr[PROTO_HDR_LEN];
    size_t hdr_got;
    struct proto_header cur;
    int cur_sealed;         /* the body being read is a sealed record */
    size_t cur_len;         /* bytes of body to read */
    uint8_t *payload;       /* ctrl buffer, or a pool buffer being filled */
    size_t payload_got;
    uint8_t ctrl[PROTO_MAX_CONTROL];
    uint64_t rx_bytes;
    uint64_t tx_bytes;
};

/* Timeouts, read once from XFER_IDLE_TIMEOUT (seconds, may be fractional;
 * default 15). Heartbeats go out at a third of it. */
uint64_t link_idle_timeout_ms(void);

/* Takes over tcp (already initialised on loop, connected) and starts reading. */
int link_init(struct link *l, const struct link_ops *ops, void *data);

/* Encodes and queues a control frame. Returns 0 or <0; XFER_ESTALLED when
 * it took the output past LINK_TX_MAX and the link is closing. */
int link_send(struct link *l, const struct proto_frame *f);

/* Queues a DATA frame of frame_len bytes (from proto_encode_data_prefix(),
 * then the chunk) that sits at rec + SEAL_HDR_LEN, with SEAL_TAG_LEN free
 * bytes after it, so it can be sealed in place. rec stays owned by the
 * caller until ops->on_data_sent(ctx). */
int link_send_data(struct link *l, uint8_t *rec, size_t frame_len, void *ctx);

/* From now on frames go out sealed with (cipher, key), and come in sealed
 * with (cipher, key); a clear frame is then a forgery. With crossing_ok, a
 * clear PING or ERROR is still accepted until the first sealed record
 * arrives: for the side that switches first, whose peer may have sent one
 * before it switched too. Returns 0 or -1. */
int link_seal_tx(struct link *l, uint16_t cipher, const uint8_t key[32]);
int link_seal_rx(struct link *l, uint16_t cipher, const uint8_t key[32], int crossing_ok);

/* Stops and restarts reading (backpressure). Silence is not counted while
 * paused: the peer is waiting on us. Reading restarts only once the output
 * bound (above) lets it too. */
void link_pause(struct link *l);
void link_resume(struct link *l);

/* Closes now; queued writes are cancelled. */
void link_close(struct link *l, int err);

/* Sends an ERROR frame (code, text), then closes once it is written or after
 * a short bound, whichever comes first. */
void link_fail(struct link *l, int err, uint16_t code, const char *text);

/* Closes after everything queued is written (bounded like link_fail). */
void link_finish(struct link *l);

int link_is_open(const struct link *l);

/* How long the peer has sent nothing; 0 while we are the ones not reading. */
uint64_t link_silent_ms(const struct link *l);

/* Record buffers (SEAL_MAX_BODY bytes) come from a small free list, so a
 * steady stream of chunks reuses warm memory instead of faulting in fresh
 * pages. Both calls belong on the loop thread; release(NULL) is harmless. */
uint8_t *link_buf_get(void);
void link_buf_release(uint8_t *buf);

/* "ADDR:PORT" or "[ADDR]:PORT" of the peer. */
void link_peer_name(const struct link *l, char *out, size_t cap);

#endif
