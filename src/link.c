#include <stdlib.h>
#include <string.h>

#include "xfer/err.h"
#include "xfer/link.h"

/* How long a closing link may wait for its last frames to be written. */
#define LINK_DRAIN_MS 2000

/* Free chunk buffers kept for reuse; more than this are given back. */
#define LINK_POOL_MAX 16

struct pooled {
    struct pooled *next;
};

static struct pooled *pool;
static unsigned pool_len;

uint8_t *link_buf_get(void)
{
    struct pooled *p = pool;

    if (p == NULL)
        return malloc(SEAL_MAX_BODY);
    pool = p->next;
    pool_len--;
    return (uint8_t *)p;
}

void link_buf_release(uint8_t *buf)
{
    struct pooled *p = (struct pooled *)buf;

    if (buf == NULL)
        return;
    if (pool_len >= LINK_POOL_MAX) {
        free(buf);
        return;
    }
    p->next = pool;
    pool = p;
    pool_len++;
}

struct link_write {
    uv_write_t req;
    struct link *l;
    size_t len;
    size_t cost; /* a control frame's allocation, counted in l->ctrl_queued */
    void *ctx;
    int is_data;
    uint8_t bytes[]; /* an encoded control frame */
};

uint64_t link_idle_timeout_ms(void)
{
    static uint64_t cached;
    const char *env;

    if (cached != 0)
        return cached;
    cached = 15000;
    env = getenv("XFER_IDLE_TIMEOUT");
    if (env != NULL && *env != '\0') {
        char *end = NULL;
        double secs = strtod(env, &end);

        if (end != NULL && *end == '\0' && secs >= 0.1 && secs <= 86400)
            cached = (uint64_t)(secs * 1000);
    }
    return cached;
}

int link_is_open(const struct link *l)
{
    return l->state == LINK_OPEN;
}

uint64_t link_silent_ms(const struct link *l)
{
    if (l->paused)
        return 0;
    return uv_now(l->tcp.loop) - l->last_rx;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct link *l = h->data;

    if (--l->handles_open > 0)
        return;
    if (l->payload != l->ctrl)
        link_buf_release(l->payload);
    l->payload = NULL;
    seal_wipe(&l->tx_seal);
    seal_wipe(&l->rx_seal);
    l->state = LINK_CLOSED;
    l->ops->on_close(l, l->close_err);
}

void link_close(struct link *l, int err)
{
    if (l->state == LINK_CLOSING || l->state == LINK_CLOSED)
        return;
    if (l->close_err == 0)
        l->close_err = err;
    l->state = LINK_CLOSING;
    (void)uv_read_stop((uv_stream_t *)&l->tcp); /* harmless when not reading */
    (void)uv_timer_stop(&l->timer);
    /* Pending writes complete with UV_ECANCELED before the close callbacks. */
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
}

static void start_drain(struct link *l, int err)
{
    if (l->state != LINK_OPEN)
        return;
    l->close_err = err;
    l->state = LINK_DRAINING;
    l->drain_started = uv_now(l->tcp.loop);
    (void)uv_read_stop((uv_stream_t *)&l->tcp);
    if (l->writes_pending == 0)
        link_close(l, err);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void pause_for(struct link *l, int why)
{
    if (l->state != LINK_OPEN || (l->paused & why) != 0)
        return;
    if (l->paused == 0)
        (void)uv_read_stop((uv_stream_t *)&l->tcp);
    l->paused |= why;
}

static void resume_for(struct link *l, int why)
{
    int rc;

    if (l->state != LINK_OPEN || (l->paused & why) == 0)
        return;
    l->paused &= ~why;
    if (l->paused != 0)
        return; /* the other reason still holds */
    l->last_rx = uv_now(l->tcp.loop);
    rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (rc < 0)
        link_close(l, rc);
}

/* The peer reads nothing we send: closing is all that is left. No ERROR:
 * it would only queue behind what the peer already does not read. */
static void close_stalled(struct link *l)
{
    l->stalled_queued = l->ctrl_queued;
    link_close(l, XFER_ESTALLED);
}

/* After a control frame is queued: past the high mark, stop reading what
 * the peer sends until it has read our replies. Returns 0, or XFER_ESTALLED
 * once the link is closing. */
static int bound_output(struct link *l)
{
    if (l->ctrl_queued > LINK_TX_MAX) {
        close_stalled(l);
        return XFER_ESTALLED;
    }
    if (l->ctrl_queued > LINK_TX_HIGH && (l->paused & LINK_PAUSE_OUTPUT) == 0) {
        l->last_drain = uv_now(l->tcp.loop); /* the stall clock starts now */
        pause_for(l, LINK_PAUSE_OUTPUT);
    }
    return 0;
}

static void on_write_done(uv_write_t *req, int status)
{
    struct link_write *w = (struct link_write *)req;
    struct link *l = w->l;

    l->writes_pending--;
    l->tx_pending -= w->len;
    l->ctrl_queued -= w->cost;
    if (status == 0) {
        l->tx_bytes += w->len;
        l->last_drain = uv_now(l->tcp.loop);
    }
    if (w->is_data)
        l->ops->on_data_sent(l, w->ctx, status);
    free(w);
    if (status < 0 && l->state == LINK_OPEN) {
        link_close(l, status);
        return;
    }
    if (l->state == LINK_DRAINING && l->writes_pending == 0) {
        link_close(l, l->close_err);
        return;
    }
    if (l->ctrl_queued <= LINK_TX_LOW)
        resume_for(l, LINK_PAUSE_OUTPUT);
}

static int queue_write(struct link *l, struct link_write *w, uv_buf_t *bufs, unsigned n)
{
    int rc;

    w->l = l;
    rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, bufs, n, on_write_done);
    if (rc < 0)
        return rc;
    l->writes_pending++;
    l->tx_pending += w->len;
    l->ctrl_queued += w->cost;
    l->last_tx = uv_now(l->tcp.loop);
    return 0;
}

/* Seals in place when keys exist; returns where the bytes to write start
 * and sets *len to how many there are. */
static uint8_t *seal_if_keyed(struct link *l, uint8_t *rec, size_t frame_len, size_t *len,
                              int *rc)
{
    *rc = 0;
    if (!l->tx_sealed) {
        *len = frame_len;
        return rec + SEAL_HDR_LEN;
    }
    *rc = seal_close(&l->tx_seal, rec, frame_len);
    if (*rc < 0)
        return NULL;
    *len = (size_t)*rc;
    *rc = 0;
    return rec;
}

int link_send(struct link *l, const struct proto_frame *f)
{
    uint8_t frame[PROTO_HDR_LEN + PROTO_MAX_CONTROL];
    struct link_write *w;
    uv_buf_t buf;
    uint8_t *start;
    size_t cost;
    size_t len = 0;
    int n;
    int rc;

    if (l->state != LINK_OPEN)
        return UV_ECANCELED;
    n = proto_encode(f, frame, sizeof(frame));
    if (n < 0)
        return n;
    /* Only what this frame needs: most are a few dozen bytes, and a peer
     * that does not read keeps them all queued up to the output bound. */
    cost = sizeof(*w) + SEAL_HDR_LEN + (size_t)n + SEAL_TAG_LEN;
    w = calloc(1, cost);
    if (w == NULL)
        return UV_ENOMEM;
    memcpy(w->bytes + SEAL_HDR_LEN, frame, (size_t)n);
    start = seal_if_keyed(l, w->bytes, (size_t)n, &len, &rc);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->len = len;
    w->cost = cost;
    buf = uv_buf_init((char *)start, (unsigned)len);
    rc = queue_write(l, w, &buf, 1);
    if (rc < 0) {
        free(w);
        return rc;
    }
    return bound_output(l);
}

int link_send_data(struct link *l, uint8_t *rec, size_t frame_len, void *ctx)
{
    struct link_write *w;
    uv_buf_t buf;
    uint8_t *start;
    size_t len = 0;
    int rc;

    if (l->state != LINK_OPEN)
        return UV_ECANCELED;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return UV_ENOMEM;
    start = seal_if_keyed(l, rec, frame_len, &len, &rc);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->is_data = 1;
    w->ctx = ctx;
    w->len = len;
    buf = uv_buf_init((char *)start, (unsigned)len);
    rc = queue_write(l, w, &buf, 1);
    if (rc < 0)
        free(w);
    return rc;
}

int link_seal_tx(struct link *l, uint16_t cipher, const uint8_t key[32])
{
    if (seal_init(&l->tx_seal, cipher, key) < 0)
        return -1;
    l->tx_sealed = 1;
    return 0;
}

int link_seal_rx(struct link *l, uint16_t cipher, const uint8_t key[32], int crossing_ok)
{
    if (seal_init(&l->rx_seal, cipher, key) < 0)
        return -1;
    l->rx_sealed = 1;
    l->rx_opened_one = !crossing_ok;
    return 0;
}

void link_fail(struct link *l, int err, uint16_t code, const char *text)
{
    struct proto_frame f;

    if (l->state != LINK_OPEN)
        return;
    memset(&f, 0, sizeof(f));
    f.type = PROTO_ERROR;
    f.u.error.code = code;
    strncpy(f.u.error.text, text, PROTO_MAX_TEXT);
    /* Best effort: the connection is going away whether or not it is sent. */
    (void)link_send(l, &f);
    start_drain(l, err);
}

void link_finish(struct link *l)
{
    start_drain(l, 0);
}

static void reset_frame(struct link *l)
{
    l->hdr_got = 0;
    l->payload = NULL;
    l->payload_got = 0;
    l->cur_sealed = 0;
    l->cur_len = 0;
}

/* Opens a sealed record in l->payload; on return l->cur describes the frame
 * inside and *payload points at its payload. */
static int open_record(struct link *l, const uint8_t **payload)
{
    int n = seal_open(&l->rx_seal, l->hdr, l->payload, l->cur_len);
    int rc;

    if (n < 0)
        return n;
    l->rx_opened_one = 1;
    rc = proto_decode_header(l->payload, (size_t)n, &l->cur);
    if (rc < 0)
        return rc;
    if (l->cur.len != (size_t)n - PROTO_HDR_LEN)
        return XFER_EPROTO; /* one frame per record, exactly */
    *payload = l->payload + PROTO_HDR_LEN;
    return 0;
}

/* A whole frame or record is in l->payload: decode it and hand it on. */
static int dispatch(struct link *l)
{
    struct proto_frame f;
    const uint8_t *payload = l->payload;
    uint8_t *buf = l->payload != l->ctrl ? l->payload : NULL;
    int rc = 0;

    if (l->cur_sealed)
        rc = open_record(l, &payload);
    if (rc == 0)
        rc = proto_decode_payload(l->cur.type, payload, l->cur.len, &f);
    reset_frame(l);
    if (rc < 0) {
        link_buf_release(buf);
        return rc;
    }
    if (f.type != PROTO_DATA) {
        link_buf_release(buf); /* control frames were copied out by the decoder */
        buf = NULL;
    }
    return l->ops->on_frame(l, &f, buf);
}

static void fail_decode(struct link *l, int rc)
{
    char text[128];

    if (rc == XFER_EVERSION) {
        snprintf(text, sizeof(text), "this side speaks xfer protocol version %d", PROTO_VERSION);
        link_fail(l, rc, PROTO_VERSION_MISMATCH, text);
        return;
    }
    snprintf(text, sizeof(text), "bad frame: %s", xfer_strerror(rc));
    link_fail(l, rc, PROTO_PROTOCOL, text);
}

static int take_header(struct link *l)
{
    int rc;

    l->payload_got = 0;
    if (l->hdr[4] == SEAL_RECORD_TYPE) {
        if (!l->rx_sealed)
            return XFER_EPROTO; /* no keys yet: nothing sealed can be valid */
        rc = seal_parse_header(l->hdr);
        if (rc < 0)
            return rc;
        l->cur_sealed = 1;
        l->cur_len = (size_t)rc;
        /* Only now, with the length checked against SEAL_MAX_BODY. */
        l->payload = link_buf_get();
        return l->payload != NULL ? 0 : UV_ENOMEM;
    }
    rc = proto_decode_header(l->hdr, PROTO_HDR_LEN, &l->cur);
    if (rc < 0)
        return rc;
    /* Before keys, no frame may make us allocate (DATA is never clear).
     * After them, a clear frame is a forgery, but for a PING or ERROR the
     * peer sent before it switched: only until its first sealed record. */
    if (l->cur.type == PROTO_DATA)
        return XFER_EPROTO;
    if (l->rx_sealed &&
        (l->rx_opened_one || (l->cur.type != PROTO_PING && l->cur.type != PROTO_ERROR)))
        return XFER_EPROTO;
    l->cur_len = l->cur.len;
    l->payload = l->ctrl;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct link *l = h->data;

    (void)suggested; /* we read exactly up to the end of the current frame */
    if (l->hdr_got < PROTO_HDR_LEN)
        *buf = uv_buf_init((char *)l->hdr + l->hdr_got, (unsigned)(PROTO_HDR_LEN - l->hdr_got));
    else
        *buf = uv_buf_init((char *)l->payload + l->payload_got,
                           (unsigned)(l->cur_len - l->payload_got));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = s->data;
    int rc;

    (void)buf; /* it points into l->hdr or l->payload */
    if (nread < 0) {
        link_close(l, (int)nread);
        return;
    }
    if (nread == 0 || l->state != LINK_OPEN)
        return;
    l->last_rx = uv_now(s->loop);
    l->rx_bytes += (uint64_t)nread;
    if (l->hdr_got < PROTO_HDR_LEN) {
        l->hdr_got += (size_t)nread;
        if (l->hdr_got < PROTO_HDR_LEN)
            return;
        rc = take_header(l);
        if (rc < 0) {
            fail_decode(l, rc);
            return;
        }
    } else {
        l->payload_got += (size_t)nread;
    }
    if (l->payload_got < l->cur_len)
        return;
    rc = dispatch(l);
    if (rc == XFER_ECORRUPT)
        link_close(l, rc); /* forged or damaged record: nothing to say to its sender */
    else if (rc == XFER_EPROTO || rc == XFER_ETOOBIG || rc == XFER_EMAGIC || rc == XFER_EVERSION)
        fail_decode(l, rc);
    else if (rc < 0)
        link_close(l, rc);
}

static void on_tick(uv_timer_t *t)
{
    struct link *l = t->data;
    uint64_t now = uv_now(t->loop);

    if (l->state == LINK_DRAINING) {
        if (now - l->drain_started > LINK_DRAIN_MS)
            link_close(l, l->close_err);
        return;
    }
    if (l->state != LINK_OPEN)
        return;
    if ((l->paused & LINK_PAUSE_OUTPUT) != 0 && now - l->last_drain > l->idle_ms) {
        close_stalled(l);
        return;
    }
    if (!l->paused && now - l->last_rx > l->idle_ms) {
        link_close(l, XFER_ETIMEDOUT);
        return;
    }
    if (now - l->last_tx >= l->idle_ms / 3 && l->tx_pending == 0) {
        struct proto_frame ping = {.type = PROTO_PING};
        int rc = link_send(l, &ping);

        if (rc < 0)
            link_close(l, rc);
    }
}

int link_init(struct link *l, const struct link_ops *ops, void *data)
{
    uint64_t now = uv_now(l->tcp.loop);
    uint64_t tick;
    int rc;

    l->ops = ops;
    l->data = data;
    l->state = LINK_OPEN;
    l->idle_ms = link_idle_timeout_ms();
    l->last_rx = now;
    l->last_tx = now;
    l->last_drain = now;
    l->tcp.data = l;
    l->handles_open = 1;
    reset_frame(l);
    rc = uv_timer_init(l->tcp.loop, &l->timer);
    if (rc < 0) {
        link_close(l, rc);
        return rc;
    }
    l->timer.data = l;
    l->handles_open = 2;
    tick = l->idle_ms / 6;
    if (tick < 50)
        tick = 50;
    if (tick > 1000)
        tick = 1000;
    (void)uv_tcp_nodelay(&l->tcp, 1); /* small ACK frames must not wait on Nagle */
    rc = uv_timer_start(&l->timer, on_tick, tick, tick);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (rc < 0) {
        link_close(l, rc);
        return rc;
    }
    return 0;
}

void link_pause(struct link *l)
{
    pause_for(l, LINK_PAUSE_OWNER);
}

void link_resume(struct link *l)
{
    resume_for(l, LINK_PAUSE_OWNER);
}

void link_peer_name(const struct link *l, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[64] = "?";

    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(out, cap, "unknown peer");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        (void)uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
        snprintf(out, cap, "[%s]:%d", host, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else if (ss.ss_family != AF_INET) {
        snprintf(out, cap, "local peer"); /* a socket pair (receiver_serve()) */
    } else {
        (void)uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
        snprintf(out, cap, "%s:%d", host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
}
