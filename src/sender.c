#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <xxhash.h>

#include "xfer/auth.h"
#include "xfer/err.h"
#include "xfer/fileio.h"
#include "xfer/link.h"
#include "xfer/name.h"
#include "xfer/proto.h"
#include "xfer/report.h"
#include "xfer/sender.h"

/* Unconfirmed bytes allowed in flight: what a reconnect may resend. */
#define WINDOW_BYTES (64u * PROTO_CHUNK_SIZE)
/* Chunk buffers: bounds the sender's memory whatever the file size. */
#define TX_BUFS 8
#define HASH_JOB_BYTES (8u * PROTO_CHUNK_SIZE)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_CAP_MS 4000
#define PROGRESS_MS 250
/* BUSY right after a restart usually means the receiver has not yet seen our
 * previous connection die; it is final only after this long. */
#define BUSY_GRACE_MS 3000
/* A source that keeps changing under us is given up after this many restarts. */
#define MAX_SOURCE_RESTARTS 3
/* Limits on what a receiver may ask of one file (xfer-protocol(7), STATES),
 * so that one holding the secret cannot keep us reading and sending it for
 * ever. A genuine receiver rewinds once for a damaged partial, once for a
 * failed verification, and for a bad chunk only when memory is failing. */
#define MAX_REWINDS_PER_ACCEPT 8
/* DATA bytes of one file, all connections of a run together, may not pass
 * this many times its size, plus a window for each connection that resumed
 * it where the receiver's confirmations left off: the first pass, a resend
 * after a failed verification and one after a damaged partial fit. */
#define RESEND_FACTOR 3
/* Connections that end after our proof and before the receiver's: the
 * first is retried (a drop at that very moment is possible), this many in a
 * row mean that what answers cannot prove it holds the secret. */
#define MAX_PROOFLESS_ENDS 2

enum send_state {
    S_CONNECTING, /* resolving or connecting */
    S_HELLO_SENT, /* waiting for WELCOME */
    S_AUTH_SENT,  /* our proof sent; waiting for the receiver's */
    S_OFFERED,   /* OFFER sent, waiting for ACCEPT, COMPLETE, REFUSE or NEED_HASH */
    S_HASHING,   /* receiver asked for the whole-file hash */
    S_STREAMING, /* sending DATA */
    S_ENDED,     /* END sent, waiting for COMMITTED or REWIND */
    S_BYE,       /* every file settled; closing */
    S_BACKOFF,   /* waiting to reconnect */
    S_DONE
};

struct sfile {
    const char *path;
    char name[PROTO_MAX_NAME + 1];
    int fd;
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t mode;
    int settled;      /* verified, skipped, or failed for good */
    int exit_code;
    XXH3_state_t *hash; /* XXH3-128 of [0, hash_off) */
    uint64_t hash_off;
    int inline_hash;  /* chunks read in order feed the hash as they go */
    int hash_busy;
    int digest_ready;
    struct proto_hash128 digest;
    int verify_fails;
    int restarts;
    int announced;
    uint64_t busy_since;
    int storage_errors; /* the receiver could not store it, without progress since */
    uint64_t storage_acked;
    uint64_t started_ms;
    uint64_t start_offset;
    uint64_t confirmed_max; /* highest offset the receiver confirmed: progress passes it */
    uint64_t sent;          /* DATA bytes of this version of the file, this run */
    int resumes;            /* ACCEPTs at or past confirmed_max: each may resend a window */
};

/* One DATA frame with room to seal it in place: record header, frame
 * header and fields, the chunk, the AEAD tag. */
struct txbuf {
    struct txbuf *next;
    uint8_t rec[SEAL_HDR_LEN + PROTO_DATA_PREFIX_LEN + PROTO_CHUNK_SIZE + SEAL_TAG_LEN];
};

#define TXBUF_PREFIX(b) ((b)->rec + SEAL_HDR_LEN)
#define TXBUF_DATA(b) ((b)->rec + SEAL_HDR_LEN + PROTO_DATA_PREFIX_LEN)

struct sconn {
    struct link link;
    struct sender *s;
    uv_connect_t connect;
    struct auth_ephemeral eph; /* this connection's key exchange */
    struct auth_keys keys;     /* until the receiver's proof is checked */
    uint16_t cipher;
};

struct sender {
    uv_loop_t *loop;
    const struct cli_opts *o;
    struct sfile *files;
    int nfiles;
    int cur;
    char port_str[8];
    uint8_t session_id[PROTO_SESSION_ID_LEN];
    const struct auth_psk *psk;
    struct sconn *conn;
    enum send_state state;
    uint64_t gen; /* bumped per connection, so stale reads are recognised */
    uint32_t epoch;
    uint64_t next_send;
    uint64_t acked;
    int end_sent;
    /* What the receiver said about the current file on this connection,
     * held against the limits of xfer-protocol(7), STATES. */
    uint64_t accept_offset;
    int rewinds;
    int damaged;
    int hash_asked;
    int proofless_ends; /* in a row: see MAX_PROOFLESS_ENDS */
    int read_busy;
    struct txbuf *free_bufs;
    int bufs_made;
    uint64_t retry_since;
    unsigned attempt;
    int reconnects;
    int ever_connected;
    int reported_waiting;
    uv_getaddrinfo_t gai;
    struct addrinfo *addrs;
    struct addrinfo *addr_next;
    uv_timer_t backoff;
    uv_timer_t progress;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    int tty;
    int progress_shown;
    int exit_code;
    int finished;
    int signals; /* SIGINT and SIGTERM received */
    char why[512];
};

static void pump(struct sender *s);
static void offer_next(struct sender *s);
static void schedule_retry(struct sender *s, const char *why);
static void finish(struct sender *s, int code);
static void peer_broke(struct sender *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct sfile *cur_file(struct sender *s)
{
    if (s->cur < 0 || s->cur >= s->nfiles)
        return NULL;
    return &s->files[s->cur];
}

static void set_failure(struct sender *s, struct sfile *f, int code)
{
    f->settled = 1;
    f->exit_code = code;
    if (s->exit_code == XFER_EXIT_OK)
        s->exit_code = code;
}

/* ---- progress ------------------------------------------------------------ */

static void clear_progress(struct sender *s)
{
    if (s->progress_shown) {
        fputs("\r\033[K", stderr);
        s->progress_shown = 0;
    }
}

static void on_progress(uv_timer_t *t)
{
    struct sender *s = t->data;
    struct sfile *f = cur_file(s);
    char done[32], total[32], rate[32], eta[32] = "--:--";
    double secs;
    double bps;
    uint64_t moved;

    if (f == NULL || (s->state != S_STREAMING && s->state != S_ENDED) || report_is_quiet())
        return;
    secs = (double)(uv_now(s->loop) - f->started_ms) / 1000.0;
    moved = s->acked > f->start_offset ? s->acked - f->start_offset : 0;
    bps = secs > 0 ? (double)moved / secs : 0;
    report_size(s->acked, done, sizeof(done));
    report_size(f->size, total, sizeof(total));
    report_size((uint64_t)bps, rate, sizeof(rate));
    if (bps > 0) {
        uint64_t left = (uint64_t)((double)(f->size - s->acked) / bps);

        snprintf(eta, sizeof(eta), "%" PRIu64 ":%02" PRIu64, left / 60, left % 60);
    }
    fprintf(stderr, "\r\033[K%s %3d%% %s / %s  %s/s  ETA %s", report_escaped(f->name),
            f->size ? (int)(s->acked * 100 / f->size) : 100, done, total, rate, eta);
    if (s->reconnects > 0)
        fprintf(stderr, "  (%d reconnect%s)", s->reconnects, s->reconnects == 1 ? "" : "s");
    s->progress_shown = 1;
}

/* ---- hashing the source ----------------------------------------------------- */

struct hash_job {
    uv_work_t req;
    struct sender *s;
    struct sfile *f;
    uint64_t len;
    int rc;
};

static void hash_work(uv_work_t *req)
{
    struct hash_job *hj = (struct hash_job *)req;
    uint8_t *buf = malloc(PROTO_CHUNK_SIZE);

    if (buf == NULL) {
        hj->rc = -ENOMEM;
        return;
    }
    hj->rc = fileio_hash_range(hj->f->fd, hj->f->hash_off, hj->len, hj->f->hash, buf,
                               PROTO_CHUNK_SIZE);
    free(buf);
}

static void mark_digest(struct sfile *f)
{
    XXH128_hash_t h = XXH3_128bits_digest(f->hash);

    f->digest.high = h.high64;
    f->digest.low = h.low64;
    f->digest_ready = 1;
}

static void start_hash(struct sender *s, struct sfile *f, uint64_t upto);
static void source_changed(struct sender *s, struct sfile *f, const char *how);

static void hash_done(uv_work_t *req, int status)
{
    struct hash_job *hj = (struct hash_job *)req;
    struct sender *s = hj->s;
    struct sfile *f = hj->f;
    int rc = status < 0 ? status : hj->rc;

    f->hash_busy = 0;
    if (rc == 0) {
        f->hash_off += hj->len;
        if (f->hash_off == f->size)
            mark_digest(f);
    }
    free(hj);
    if (s->finished)
        return;
    if (rc < 0) {
        source_changed(s, f, rc == -EIO ? "shrank" : "became unreadable");
        return;
    }
    pump(s);
}

/* Hashes [hash_off, upto) of the source in the background: the part the
 * inline path did not see. The transfer does not wait for it until END. */
static void start_hash(struct sender *s, struct sfile *f, uint64_t upto)
{
    struct hash_job *hj;

    if (f->hash_busy || f->digest_ready || f->hash_off >= upto || s->read_busy)
        return; /* a read in flight may still feed the hash inline */
    hj = calloc(1, sizeof(*hj));
    if (hj == NULL) {
        report_error("out of memory hashing %s", report_escaped(f->path));
        finish(s, XFER_EXIT_INTERNAL);
        return;
    }
    hj->s = s;
    hj->f = f;
    hj->len = upto - f->hash_off;
    if (hj->len > HASH_JOB_BYTES)
        hj->len = HASH_JOB_BYTES;
    if (uv_queue_work(s->loop, &hj->req, hash_work, hash_done) < 0) {
        free(hj);
        finish(s, XFER_EXIT_INTERNAL);
        return;
    }
    f->hash_busy = 1;
    f->inline_hash = 0;
}

/* ---- reading chunks ------------------------------------------------------- */

struct read_job {
    uv_work_t req;
    struct sender *s;
    struct sfile *f;
    struct txbuf *buf;
    uint64_t gen;
    uint32_t epoch;
    uint64_t offset;
    uint32_t len;
    int do_hash;
    uint64_t chunk_hash;
    int rc;
};

static void read_work(uv_work_t *req)
{
    struct read_job *rj = (struct read_job *)req;
    int64_t n = fileio_pread(rj->f->fd, TXBUF_DATA(rj->buf), rj->len, rj->offset);

    if (n < 0) {
        rj->rc = (int)n;
        return;
    }
    if ((uint64_t)n != rj->len) {
        rj->rc = -EIO; /* the source shrank */
        return;
    }
    rj->chunk_hash = proto_chunk_hash(TXBUF_DATA(rj->buf), rj->len, rj->offset);
    if (rj->do_hash)
        (void)XXH3_128bits_update(rj->f->hash, TXBUF_DATA(rj->buf), rj->len); /* fails only on NULL */
}

static void put_buf(struct sender *s, struct txbuf *b)
{
    b->next = s->free_bufs;
    s->free_bufs = b;
}

static struct txbuf *get_buf(struct sender *s)
{
    struct txbuf *b = s->free_bufs;

    if (b != NULL) {
        s->free_bufs = b->next;
        return b;
    }
    if (s->bufs_made >= TX_BUFS)
        return NULL;
    b = malloc(sizeof(*b));
    if (b != NULL)
        s->bufs_made++;
    return b;
}

static void read_done(uv_work_t *req, int status)
{
    struct read_job *rj = (struct read_job *)req;
    struct sender *s = rj->s;
    struct sfile *f = rj->f;
    int rc = status < 0 ? status : rj->rc;

    s->read_busy = 0;
    if (rc == 0 && rj->do_hash) {
        f->hash_off += rj->len;
        if (f->hash_off == f->size)
            mark_digest(f);
    }
    if (s->finished) {
        free(rj->buf);
        free(rj);
        return;
    }
    if (rc < 0) {
        put_buf(s, rj->buf);
        free(rj);
        source_changed(s, f, rc == -EIO ? "shrank" : "became unreadable");
        return;
    }
    if (rj->gen != s->gen || rj->epoch != s->epoch || f != cur_file(s) || s->conn == NULL ||
        s->state != S_STREAMING) {
        put_buf(s, rj->buf); /* overtaken by a REWIND or a reconnect */
        free(rj);
        pump(s);
        return;
    }
    (void)proto_encode_data_prefix(TXBUF_PREFIX(rj->buf), PROTO_DATA_PREFIX_LEN, rj->epoch,
                                   rj->offset, rj->chunk_hash, rj->len); /* sizes are valid */
    if (link_send_data(&s->conn->link, rj->buf->rec, PROTO_DATA_PREFIX_LEN + rj->len, rj->buf) <
        0)
        put_buf(s, rj->buf);
    free(rj);
    pump(s);
}

/* What the receiver may make us send of f in this run (see RESEND_FACTOR). */
static uint64_t resend_budget(const struct sfile *f)
{
    uint64_t windows = (uint64_t)f->resumes * WINDOW_BYTES;

    if (f->size > (UINT64_MAX - windows) / RESEND_FACTOR)
        return UINT64_MAX;
    return RESEND_FACTOR * f->size + windows;
}

static void start_read(struct sender *s, struct sfile *f)
{
    struct read_job *rj;
    struct txbuf *b;
    uint32_t len = (uint32_t)(f->size - s->next_send < PROTO_CHUNK_SIZE ? f->size - s->next_send
                                                                        : PROTO_CHUNK_SIZE);

    if (f->sent + len > resend_budget(f)) {
        peer_broke(s,
                   "it asked for %s again and again, until %" PRIu64
                   " bytes of it were sent, the most for a file of %" PRIu64 " bytes",
                   report_escaped(f->name), f->sent, f->size);
        return;
    }
    b = get_buf(s);
    if (b == NULL)
        return; /* all buffers are queued on the socket: wait for one */
    rj = calloc(1, sizeof(*rj));
    if (rj == NULL) {
        put_buf(s, b);
        return;
    }
    rj->s = s;
    rj->f = f;
    rj->buf = b;
    rj->gen = s->gen;
    rj->epoch = s->epoch;
    rj->offset = s->next_send;
    rj->len = len;
    rj->do_hash = f->inline_hash && !f->hash_busy && !f->digest_ready && rj->offset == f->hash_off;
    if (uv_queue_work(s->loop, &rj->req, read_work, read_done) < 0) {
        put_buf(s, b);
        free(rj);
        return;
    }
    s->read_busy = 1;
    s->next_send += rj->len;
    f->sent += rj->len; /* a read overtaken by a rewind counts too: at most a chunk */
}

/* ---- sending ---------------------------------------------------------------- */

static void send_frame(struct sender *s, const struct proto_frame *fr)
{
    if (s->conn != NULL)
        (void)link_send(&s->conn->link, fr); /* a dead link reports via on_close */
}

static void send_end(struct sender *s, struct sfile *f)
{
    struct proto_frame fr = {.type = PROTO_END};
    struct stat st;

    /* A source modified while we read it would give a file that never
     * existed; the journal identity (size, mtime) must still hold. */
    if (fstat(f->fd, &st) < 0 || (uint64_t)st.st_size != f->size ||
        st.st_mtim.tv_sec != f->mtime_sec || (uint32_t)st.st_mtim.tv_nsec != f->mtime_nsec) {
        source_changed(s, f, "was modified");
        return;
    }
    fr.u.end.epoch = s->epoch;
    fr.u.end.hash = f->digest;
    send_frame(s, &fr);
    s->end_sent = 1;
    s->state = S_ENDED;
}

/* Moves the current file forward: read within the window, then END. */
static void pump(struct sender *s)
{
    struct sfile *f = cur_file(s);

    if (f == NULL || s->finished)
        return;
    if (s->state == S_HASHING && f->digest_ready) {
        struct proto_frame fr = {.type = PROTO_FILE_HASH};

        fr.u.file_hash = f->digest;
        send_frame(s, &fr);
        s->state = S_OFFERED;
        return;
    }
    if (!f->digest_ready && !f->hash_busy && !s->read_busy) {
        if (s->state == S_HASHING)
            start_hash(s, f, f->size); /* the receiver needs it before any data */
        else if (s->next_send > f->hash_off)
            start_hash(s, f, s->next_send); /* resumed past it: catch up behind */
        else if (s->next_send == f->hash_off)
            f->inline_hash = 1; /* caught up: reads feed the hash from here */
    }
    if (s->state != S_STREAMING || s->read_busy || s->conn == NULL)
        return;
    if (s->next_send < f->size) {
        if (s->next_send - s->acked < WINDOW_BYTES)
            start_read(s, f);
        return;
    }
    if (f->digest_ready && !s->end_sent)
        send_end(s, f);
}

static void on_data_sent(struct link *l, void *ctx, int status)
{
    struct sconn *sc = l->data;
    struct sender *s = sc->s;

    (void)status; /* a failed write closes the link; the data is resent */
    put_buf(s, ctx);
    pump(s);
}

/* ---- the per-file conversation ---------------------------------------------- */

/* The receiver proved it holds the secret, and its frames are sealed, yet it
 * broke the protocol or its limits: a bug or a hostile peer. Retrying is how
 * such a peer would keep us sending for ever, so the run ends here. */
static void peer_broke(struct sender *s, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap); /* a long name is cut, not overrun */
    va_end(ap);
    clear_progress(s);
    report_error("the receiver at %s port %s broke the protocol: %s; stopped without retrying: "
                 "check that a genuine xfer recv of the same version runs there, then run the "
                 "same command again to resume",
                 s->o->host, s->port_str, what);
    if (s->conn != NULL)
        link_fail(&s->conn->link, XFER_EPROTO, PROTO_PROTOCOL, "protocol error: the sender stops");
    finish(s, XFER_EXIT_PEER);
}

/* Offsets of ACCEPT, ACK and REWIND: a chunk boundary or the file's end. */
static int on_chunk_boundary(const struct sfile *f, uint64_t off)
{
    return off <= f->size && (off % PROTO_CHUNK_SIZE == 0 || off == f->size);
}

static void offer(struct sender *s, struct sfile *f)
{
    struct proto_frame fr = {.type = PROTO_OFFER};

    fr.u.offer.size = f->size;
    fr.u.offer.mtime_sec = f->mtime_sec;
    fr.u.offer.mtime_nsec = f->mtime_nsec;
    fr.u.offer.mode = f->mode;
    fr.u.offer.name_len = (uint16_t)strlen(f->name);
    memcpy(fr.u.offer.name, f->name, fr.u.offer.name_len + 1);
    send_frame(s, &fr);
    s->hash_asked = 0;
    s->state = S_OFFERED;
}

static int bye_status(int exit_code)
{
    switch (exit_code) {
    case XFER_EXIT_OK:
        return PROTO_OK;
    case XFER_EXIT_VERIFY:
        return PROTO_VERIFY;
    case XFER_EXIT_IO:
        return PROTO_IO;
    default:
        return PROTO_EXISTS;
    }
}

static void offer_next(struct sender *s)
{
    while (s->cur < s->nfiles && s->files[s->cur].settled)
        s->cur++;
    if (s->cur < s->nfiles) {
        offer(s, &s->files[s->cur]);
        return;
    }
    {
        struct proto_frame fr = {.type = PROTO_BYE};

        fr.u.bye.status = (uint16_t)bye_status(s->exit_code);
        send_frame(s, &fr);
        s->state = S_BYE;
        if (s->conn != NULL)
            link_finish(&s->conn->link);
    }
}

static void file_settled(struct sender *s, struct sfile *f, const char *what)
{
    char size[32];
    double secs = (double)(uv_now(s->loop) - f->started_ms) / 1000.0;
    char rate[32];
    uint64_t moved = f->size - f->start_offset;

    clear_progress(s);
    report_size(f->size, size, sizeof(size));
    report_size(secs > 0 ? (uint64_t)((double)moved / secs) : moved, rate, sizeof(rate));
    if (what != NULL)
        report_info("%s %s (%s)", report_escaped(f->name), what, size);
    else
        report_info("%s verified (%s, %.1f s, %s/s)", report_escaped(f->name), size, secs, rate);
    f->settled = 1;
    s->retry_since = 0;
    s->attempt = 0;
    offer_next(s);
}

static void announce(struct sender *s, struct sfile *f, uint64_t offset)
{
    char size[32];

    clear_progress(s);
    f->started_ms = uv_now(s->loop);
    f->start_offset = offset;
    report_size(f->size, size, sizeof(size));
    if (offset > 0)
        report_info("resuming %s at %" PRIu64 " of %" PRIu64 " bytes", report_escaped(f->name),
                    offset, f->size);
    else if (!f->announced)
        report_info("sending %s (%" PRIu64 " bytes, %s)", report_escaped(f->name), f->size, size);
    else
        report_info("sending %s again from the start", report_escaped(f->name));
    f->announced = 1;
}

static int on_accept(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    uint64_t off = fr->u.accept.offset;

    if (!on_chunk_boundary(f, off) || fr->u.accept.epoch != 1) {
        /* Never read past what we offered. */
        peer_broke(s, "ACCEPT of %s with epoch %" PRIu32 " at offset %" PRIu64 " (%s)",
                   report_escaped(f->name), fr->u.accept.epoch, off,
                   off > f->size                ? "past the end of the file"
                   : !on_chunk_boundary(f, off) ? "not on a chunk boundary"
                                                : "epoch not 1");
        return 0;
    }
    /* A receiver that lost what it had confirmed (its state was deleted)
     * may start lower, but that resend comes out of the budget. */
    if (off >= f->confirmed_max)
        f->resumes++;
    s->epoch = fr->u.accept.epoch;
    s->next_send = off;
    s->acked = off;
    s->end_sent = 0;
    s->accept_offset = off;
    s->rewinds = 0;
    s->damaged = 0;
    s->state = S_STREAMING;
    announce(s, f, off);
    pump(s);
    return 0;
}

/* Why a REWIND is not one a genuine receiver sends, or NULL. Only a damaged
 * partial or a failed verification goes below what was confirmed. */
static const char *rewind_fault(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    uint64_t off = fr->u.rewind.offset;

    if (!on_chunk_boundary(f, off))
        return off > f->size ? "past the end of the file" : "not on a chunk boundary";
    if (off > s->next_send)
        return "past what was sent";
    if (fr->u.rewind.epoch != s->epoch + 1)
        return "with an epoch out of sequence";
    if (++s->rewinds > MAX_REWINDS_PER_ACCEPT)
        return "more than 8 times on one connection";
    switch (fr->u.rewind.reason) {
    case PROTO_REWIND_BAD_CHUNK:
        return off < s->acked ? "for a bad chunk below what it had confirmed" : NULL;
    case PROTO_REWIND_DAMAGED:
        if (s->damaged++ > 0)
            return "for a damaged partial a second time on one connection";
        return off < s->accept_offset ? NULL : "for a damaged partial, not below where it resumed";
    default: /* VERIFY: the decoder lets no other reason through */
        if (s->state != S_ENDED)
            return "for a failed verification before END";
        return off == 0 ? NULL : "for a failed verification, not to offset 0";
    }
}

static int on_rewind(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    uint64_t off = fr->u.rewind.offset;
    const char *fault = rewind_fault(s, f, fr);

    if (fault != NULL) {
        peer_broke(s, "REWIND of %s to offset %" PRIu64 " %s", report_escaped(f->name), off,
                   fault);
        return 0;
    }
    s->epoch = fr->u.rewind.epoch;
    s->next_send = off;
    if (s->acked > off)
        s->acked = off;
    s->end_sent = 0;
    s->state = S_STREAMING;
    if (fr->u.rewind.reason == PROTO_REWIND_VERIFY) {
        clear_progress(s);
        if (++f->verify_fails >= 2) {
            report_error("%s failed verification twice on the receiver; check the source "
                         "disk and memory, then run the same command again",
                         f->name);
            set_failure(s, f, XFER_EXIT_VERIFY);
            /* Abandon it: a fresh connection offers the next file. */
            snprintf(s->why, sizeof(s->why), "gave up on %s", f->name);
            s->attempt = 1; /* not a lost connection: no message */
            if (s->conn != NULL)
                link_close(&s->conn->link, 0);
            return 0;
        }
        report_info("%s did not verify on the receiver; sending it again", report_escaped(f->name));
        f->start_offset = 0;
        f->confirmed_max = 0; /* it threw everything away: confirming again is progress */
    }
    pump(s);
    return 0;
}

static int on_refuse(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    clear_progress(s);
    if (fr->u.refuse.code == PROTO_BUSY) {
        uint64_t now = uv_now(s->loop);

        if (f->busy_since == 0)
            f->busy_since = now;
        if (now - f->busy_since < BUSY_GRACE_MS) {
            snprintf(s->why, sizeof(s->why), "receiver busy with %s", f->name);
            link_finish(&s->conn->link);
            return 0;
        }
    }
    if (fr->u.refuse.code == PROTO_RETRY) {
        snprintf(s->why, sizeof(s->why), "receiver asked to retry: %s",
                 report_escaped(fr->u.refuse.text));
        link_finish(&s->conn->link);
        return 0;
    }
    report_error("%s refused by the receiver: %s%s", report_escaped(f->name),
                 report_escaped(fr->u.refuse.text),
                 fr->u.refuse.code == PROTO_NO_SPACE
                     ? "; free space there, then run the same command again"
                     : "");
    set_failure(s, f, XFER_EXIT_REFUSED);
    offer_next(s);
    return 0;
}

/* The receiver could not store what we sent: its disk is full or failing.
 * One reconnect is free (a passing fault clears by itself; a full disk is
 * then refused at the offer, with the numbers); the same error again with
 * nothing confirmed in between needs someone on the receiver, so the file is
 * given up with a line saying what, where and what to do, rather than
 * retried for --retry-for and reported as unreachable. The receiver keeps
 * the partial: a rerun resumes from what it confirmed. */
static int on_storage_error(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    char at[48] = ""; /* acked is this file's only once it was accepted */

    if (f->storage_errors == 0 || s->acked > f->storage_acked) {
        f->storage_errors = 1;
        f->storage_acked = s->acked;
        snprintf(s->why, sizeof(s->why), "receiver: %s", report_escaped(fr->u.error.text));
        link_close(&s->conn->link, 0);
        return 0;
    }
    if (s->state == S_STREAMING || s->state == S_ENDED)
        snprintf(at, sizeof(at), " to resume from byte %" PRIu64, s->acked);
    report_error("%s not stored: %s; fix that on the receiver (free space, check its disk), "
                 "then run the same command again%s",
                 report_escaped(f->name), report_escaped(fr->u.error.text), at);
    set_failure(s, f, XFER_EXIT_REFUSED);
    /* As for a failed verification: a fresh connection goes on with the
     * next file, or says goodbye. */
    snprintf(s->why, sizeof(s->why), "gave up on %s", f->name);
    s->attempt = 1;
    link_close(&s->conn->link, 0);
    return 0;
}

static int on_error_frame(struct sender *s, const struct proto_frame *fr)
{
    struct sfile *f = cur_file(s);

    clear_progress(s);
    /* Only once authenticated: before that an ERROR is unsealed and anyone's. */
    if ((fr->u.error.code == PROTO_NO_SPACE || fr->u.error.code == PROTO_IO) && f != NULL &&
        (s->state == S_OFFERED || s->state == S_HASHING || s->state == S_STREAMING ||
         s->state == S_ENDED))
        return on_storage_error(s, f, fr);
    if (fr->u.error.code == PROTO_AUTH_FAILED) {
        report_error("the receiver at %s port %s refused this sender: the secrets differ; "
                     "check XFER_SECRET or --secret-file on both sides (receiver said: %s)",
                     s->o->host, s->port_str, report_escaped(fr->u.error.text));
        finish(s, XFER_EXIT_AUTH);
        return 0;
    }
    if (fr->u.error.code == PROTO_VERSION_MISMATCH) {
        report_error("receiver refused the connection: %s; use the same xfer version on both "
                     "sides",
                     report_escaped(fr->u.error.text));
        finish(s, XFER_EXIT_REFUSED);
        return 0;
    }
    snprintf(s->why, sizeof(s->why), "receiver: %s (%s)", report_escaped(fr->u.error.text),
             proto_code_text(fr->u.error.code));
    link_close(&s->conn->link, 0);
    return 0;
}

/* The receiver's half of the key exchange. We prove we hold the secret
 * first; the receiver's proof comes back in AUTH. */
static int on_welcome(struct sender *s, struct sconn *sc, const struct proto_frame *fr)
{
    struct proto_frame auth = {.type = PROTO_AUTH};
    struct auth_transcript t;

    memset(&t, 0, sizeof(t));
    memcpy(t.client_pk, sc->eph.pk, sizeof(t.client_pk));
    memcpy(t.client_nonce, sc->eph.nonce, sizeof(t.client_nonce));
    memcpy(t.session_id, s->session_id, sizeof(t.session_id));
    t.client_ciphers = auth_local_ciphers();
    t.server_flags = fr->u.welcome.flags;
    memcpy(t.server_pk, fr->u.welcome.pk, sizeof(t.server_pk));
    memcpy(t.server_nonce, fr->u.welcome.nonce, sizeof(t.server_nonce));
    t.cipher = fr->u.welcome.cipher;
    if (!(t.cipher & t.client_ciphers) || (t.cipher & (t.cipher - 1)) != 0)
        return XFER_EPROTO; /* a cipher we did not offer, or several */
    if (auth_client_keys(&sc->keys, s->psk, &sc->eph, &t) < 0)
        return XFER_EPROTO; /* a degenerate public key */
    auth_wipe(&sc->eph, sizeof(sc->eph));
    sc->cipher = t.cipher;
    memcpy(auth.u.auth.tag, sc->keys.client_tag, sizeof(auth.u.auth.tag));
    send_frame(s, &auth);
    s->state = S_AUTH_SENT;
    return 0;
}

/* The receiver's proof. Nothing about any file is sent before it checks
 * out, and nothing after it in the clear. */
static int on_receiver_auth(struct sender *s, struct sconn *sc, const struct proto_frame *fr)
{
    int ok = auth_tag_equal(sc->keys.server_tag, fr->u.auth.tag);
    int rc = 0;

    if (!ok) {
        clear_progress(s);
        report_error("the receiver at %s port %s did not prove it knows the secret: something "
                     "other than your xfer recv is answering there; nothing was sent",
                     s->o->host, s->port_str);
        link_fail(&sc->link, 0, PROTO_AUTH_FAILED,
                  "authentication failed: the receiver's proof does not match this "
                  "sender's secret");
        auth_wipe(&sc->keys, sizeof(sc->keys));
        finish(s, XFER_EXIT_AUTH);
        return 0;
    }
    if (link_seal_tx(&sc->link, sc->cipher, sc->keys.c2s) < 0 ||
        link_seal_rx(&sc->link, sc->cipher, sc->keys.s2c, 0) < 0)
        rc = XFER_EPROTO;
    auth_wipe(&sc->keys, sizeof(sc->keys));
    if (rc < 0)
        return rc;
    s->ever_connected = 1;
    s->reported_waiting = 0;
    s->proofless_ends = 0;
    offer_next(s);
    return 0;
}

/* An ACK raises what is confirmed; only confirming data for the first time
 * is progress, which restarts the --retry-for clock: a receiver that
 * confirms the same bytes again on every connection must not keep us
 * retrying for ever. */
static int on_ack(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    uint64_t off = fr->u.ack.offset;

    if (fr->u.ack.epoch != s->epoch)
        return 0; /* confirms data of a superseded epoch */
    if (off > s->next_send || !on_chunk_boundary(f, off)) {
        peer_broke(s, "ACK of %s at offset %" PRIu64 " (%s)", report_escaped(f->name), off,
                   off > s->next_send ? "past what was sent" : "not on a chunk boundary");
        return 0;
    }
    if (off > s->acked)
        s->acked = off;
    if (off > f->confirmed_max) {
        f->confirmed_max = off;
        s->retry_since = 0;
        s->attempt = 0;
    }
    pump(s);
    return 0;
}

static const char *state_doing(enum send_state state)
{
    switch (state) {
    case S_OFFERED:
        return "offering";
    case S_HASHING:
        return "hashing";
    case S_STREAMING:
        return "sending";
    case S_ENDED:
        return "finishing";
    default:
        return "done with";
    }
}

/* Frames after the handshake: sealed, so they come from a holder of the
 * secret, and one unexpected in the state we are in (xfer-protocol(7),
 * STATES) ends the run. */
static int on_session_frame(struct sender *s, struct sfile *f, const struct proto_frame *fr)
{
    /* f is the file offered in every state but BYE, which expects nothing. */
    switch (s->state) {
    case S_OFFERED:
    case S_HASHING:
        if (fr->type == PROTO_ACCEPT)
            return on_accept(s, f, fr);
        if (fr->type == PROTO_COMPLETE) {
            file_settled(s, f, "is already on the receiver, identical: nothing sent");
            return 0;
        }
        if (fr->type == PROTO_REFUSE)
            return on_refuse(s, f, fr);
        if (fr->type == PROTO_NEED_HASH && !s->hash_asked) {
            /* Once per OFFER: asking again would have us answer for ever. */
            s->hash_asked = 1;
            s->state = S_HASHING;
            pump(s);
            return 0;
        }
        break;
    case S_STREAMING:
    case S_ENDED:
        if (fr->type == PROTO_ACK)
            return on_ack(s, f, fr);
        if (fr->type == PROTO_REWIND)
            return on_rewind(s, f, fr);
        if (fr->type == PROTO_COMMITTED && s->state == S_ENDED) {
            file_settled(s, f, NULL);
            return 0;
        }
        if (fr->type == PROTO_REFUSE && s->state == S_ENDED)
            return on_refuse(s, f, fr); /* the name appeared before commit */
        break;
    default:
        break;
    }
    peer_broke(s, "%s%s while %s %s",
               fr->type == PROTO_NEED_HASH && s->hash_asked ? "a second " : "an unexpected ",
               proto_type_name(fr->type), state_doing(s->state),
               f != NULL ? report_escaped(f->name) : "every file");
    return 0;
}

static int on_frame(struct link *l, const struct proto_frame *fr, uint8_t *data_buf)
{
    struct sconn *sc = l->data;
    struct sender *s = sc->s;

    link_buf_release(data_buf); /* receivers send no DATA: a protocol error below */
    if (fr->type == PROTO_PING)
        return 0;
    if (fr->type == PROTO_ERROR)
        return on_error_frame(s, fr);
    switch (s->state) {
    case S_HELLO_SENT:
        if (fr->type != PROTO_WELCOME)
            break;
        return on_welcome(s, sc, fr);
    case S_AUTH_SENT:
        if (fr->type != PROTO_AUTH)
            break;
        return on_receiver_auth(s, sc, fr);
    case S_OFFERED:
    case S_HASHING:
    case S_STREAMING:
    case S_ENDED:
    case S_BYE:
        return on_session_frame(s, cur_file(s), fr);
    default:
        break;
    }
    /* In the clear, so anyone's: a protocol error that costs this connection. */
    return XFER_EPROTO;
}

/* ---- connection lifecycle ------------------------------------------------- */

/* The connection ended after our proof and before the receiver's: closed,
 * reset or silent, as an impostor that has our proof and cannot answer it
 * ends it (a real receiver says ERROR first). The first time may be a drop
 * at that very moment and is retried; the second in a row is an
 * authentication failure. Returns 1 if the run ends. */
static int ended_without_proof(struct sender *s, int err)
{
    const char *how = err == XFER_ETIMEDOUT ? "went silent" : "closed the connection";

    if (err != UV_EOF && err != UV_ECONNRESET && err != UV_EPIPE && err != XFER_ETIMEDOUT)
        return 0; /* ours, or a frame it sent: not this */
    if (++s->proofless_ends < MAX_PROOFLESS_ENDS) {
        snprintf(s->why, sizeof(s->why),
                 "the receiver %s right after this sender's proof, without proving it knows "
                 "the secret",
                 how);
        return 0;
    }
    clear_progress(s);
    report_error("the receiver at %s port %s %s right after this sender's proof on %d "
                 "connections in a row, instead of proving it knows the secret: something other "
                 "than your xfer recv is answering there; nothing was sent",
                 s->o->host, s->port_str, how, s->proofless_ends);
    finish(s, XFER_EXIT_AUTH);
    return 1;
}

static void on_link_close(struct link *l, int err)
{
    struct sconn *sc = l->data;
    struct sender *s = sc->s;
    enum send_state was = s->state;

    auth_wipe(&sc->eph, sizeof(sc->eph));
    auth_wipe(&sc->keys, sizeof(sc->keys));
    free(sc);
    s->conn = NULL;
    s->gen++;
    if (s->finished)
        return;
    if (was == S_BYE) {
        finish(s, s->exit_code);
        return;
    }
    if (err == XFER_EVERSION) {
        clear_progress(s);
        report_error("the receiver at %s port %s speaks another xfer protocol version; use the "
                     "same xfer version on both sides",
                     s->o->host, s->port_str);
        finish(s, XFER_EXIT_REFUSED);
        return;
    }
    if (was == S_AUTH_SENT && ended_without_proof(s, err))
        return;
    if (s->why[0] == '\0')
        snprintf(s->why, sizeof(s->why), "%s", err == UV_EOF ? "receiver closed the connection"
                                                             : xfer_strerror(err));
    schedule_retry(s, s->why);
}

static const struct link_ops sender_link_ops = {
    .on_frame = on_frame,
    .on_data_sent = on_data_sent,
    .on_close = on_link_close,
};

static void try_next_address(struct sender *s);

static void on_failed_connect_closed(uv_handle_t *h)
{
    struct sconn *sc = h->data;
    struct sender *s = sc->s;

    free(sc);
    if (s->finished)
        return;
    if (s->addr_next != NULL) {
        try_next_address(s);
        return;
    }
    schedule_retry(s, s->why);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct sconn *sc = req->data;
    struct sender *s = sc->s;
    struct proto_frame hello = {.type = PROTO_HELLO};

    if (status < 0 || s->finished) {
        snprintf(s->why, sizeof(s->why), "cannot connect to %s port %s: %s", s->o->host,
                 s->port_str, uv_strerror(status < 0 ? status : UV_ECANCELED));
        sc->link.tcp.data = sc;
        uv_close((uv_handle_t *)&sc->link.tcp, on_failed_connect_closed);
        return;
    }
    uv_freeaddrinfo(s->addrs);
    s->addrs = NULL;
    s->addr_next = NULL;
    s->conn = sc;
    s->why[0] = '\0';
    if (link_init(&sc->link, &sender_link_ops, sc) < 0)
        return; /* it closed itself; on_link_close retries */
    s->state = S_HELLO_SENT;
    if (auth_ephemeral_new(&sc->eph) < 0) {
        link_close(&sc->link, UV_EINVAL);
        return;
    }
    hello.u.hello.version = PROTO_VERSION;
    memcpy(hello.u.hello.session_id, s->session_id, PROTO_SESSION_ID_LEN);
    hello.u.hello.ciphers = auth_local_ciphers();
    memcpy(hello.u.hello.pk, sc->eph.pk, PROTO_KEY_LEN);
    memcpy(hello.u.hello.nonce, sc->eph.nonce, PROTO_KEY_LEN);
    send_frame(s, &hello);
}

static void try_next_address(struct sender *s)
{
    struct addrinfo *ai = s->addr_next;
    struct sconn *sc = calloc(1, sizeof(*sc));

    s->addr_next = ai->ai_next;
    if (sc == NULL) {
        finish(s, XFER_EXIT_INTERNAL);
        return;
    }
    sc->s = s;
    sc->connect.data = sc;
    if (uv_tcp_init(s->loop, &sc->link.tcp) < 0) {
        free(sc);
        finish(s, XFER_EXIT_INTERNAL);
        return;
    }
    sc->link.tcp.data = sc;
    if (uv_tcp_connect(&sc->connect, &sc->link.tcp, ai->ai_addr, on_connected) < 0) {
        snprintf(s->why, sizeof(s->why), "cannot connect to %s port %s", s->o->host, s->port_str);
        uv_close((uv_handle_t *)&sc->link.tcp, on_failed_connect_closed);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct sender *s = req->data;

    if (s->finished) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || res == NULL) {
        snprintf(s->why, sizeof(s->why), "cannot resolve %s: %s", s->o->host,
                 uv_strerror(status));
        schedule_retry(s, s->why);
        return;
    }
    s->addrs = res;
    s->addr_next = res;
    try_next_address(s);
}

static void start_connect(struct sender *s)
{
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    s->state = S_CONNECTING;
    s->gai.data = s;
    rc = uv_getaddrinfo(s->loop, &s->gai, on_resolved, s->o->host, s->port_str, &hints);
    if (rc < 0) {
        snprintf(s->why, sizeof(s->why), "cannot resolve %s: %s", s->o->host, uv_strerror(rc));
        schedule_retry(s, s->why);
    }
}

static void on_backoff(uv_timer_t *t)
{
    start_connect(t->data);
}

static void schedule_retry(struct sender *s, const char *why)
{
    uint64_t now = uv_now(s->loop);
    uint64_t limit = (uint64_t)(s->o->retry_for * 1000.0);
    uint64_t delay;

    clear_progress(s);
    if (s->addrs != NULL) {
        uv_freeaddrinfo(s->addrs);
        s->addrs = NULL;
        s->addr_next = NULL;
    }
    if (s->retry_since == 0)
        s->retry_since = now;
    if (now - s->retry_since >= limit) {
        report_error("gave up on %s port %s after %.0f s: %s; check that 'xfer recv' runs there, "
                     "then run the same command again to resume",
                     s->o->host, s->port_str, s->o->retry_for, why);
        finish(s, XFER_EXIT_UNREACHABLE);
        return;
    }
    if (s->ever_connected && s->attempt == 0) {
        s->reconnects++;
        report_info("connection lost (%s); reconnecting for up to %.0f s", why,
                    s->o->retry_for);
    } else if (!s->ever_connected && !s->reported_waiting) {
        s->reported_waiting = 1;
        report_info("%s; retrying for up to %.0f s", why, s->o->retry_for);
    }
    delay = BACKOFF_FIRST_MS << (s->attempt < 6 ? s->attempt : 6);
    if (delay > BACKOFF_CAP_MS)
        delay = BACKOFF_CAP_MS;
    /* Jitter: many senders cut by one outage must not return in lockstep. */
    delay = delay / 2 + (uint64_t)rand() % (delay / 2 + 1);
    if (now + delay - s->retry_since > limit)
        delay = limit - (now - s->retry_since);
    s->attempt++;
    s->why[0] = '\0';
    s->state = S_BACKOFF;
    (void)uv_timer_start(&s->backoff, on_backoff, delay, 0);
}

/* The file changed under us: every byte sent so far may be of another
 * version, so the file starts over under its new identity. */
static void source_changed(struct sender *s, struct sfile *f, const char *how)
{
    struct stat st;

    clear_progress(s);
    if (++f->restarts > MAX_SOURCE_RESTARTS || fstat(f->fd, &st) < 0) {
        report_error("%s %s while being sent, %d times; send it again once it is stable",
                     report_escaped(f->path), how, f->restarts);
        set_failure(s, f, XFER_EXIT_IO);
    } else {
        report_info("%s %s while being sent; starting it over", report_escaped(f->path), how);
        f->size = (uint64_t)st.st_size;
        f->mtime_sec = st.st_mtim.tv_sec;
        f->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
        (void)XXH3_128bits_reset(f->hash); /* cannot fail on a valid state */
        f->hash_off = 0;
        f->inline_hash = 1;
        f->digest_ready = 0;
        f->confirmed_max = 0; /* a new version: the receiver starts it over */
        f->sent = 0;
        f->resumes = 0;
        if (f->size == 0)
            mark_digest(f);
    }
    /* A new connection re-offers it (new mtime: the receiver starts over)
     * or moves on to the next file. */
    snprintf(s->why, sizeof(s->why), "source changed");
    s->attempt = 1; /* reconnect at once, without the "lost" message */
    if (s->conn != NULL)
        link_close(&s->conn->link, 0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct sender *s = sig->data;

    clear_progress(s);
    if (s->signals++ > 0) {
        /* The first one's shutdown is waiting on something (a read of a
         * hung disk, say): the user asked twice, so stop waiting. Nothing
         * is lost: the receiver keeps what it confirmed. */
        report_error("second signal: exiting now; run the same command again to resume");
        _exit(XFER_EXIT_INTERRUPTED);
    }
    report_error("%s; run the same command again to resume",
                 signum == SIGINT ? "interrupted" : "terminated");
    finish(s, XFER_EXIT_INTERRUPTED);
}

static void finish(struct sender *s, int code)
{
    if (s->finished)
        return;
    clear_progress(s);
    s->finished = 1;
    /* The first failure is the exit status; an interrupt always says so. */
    if (s->exit_code == XFER_EXIT_OK || code == XFER_EXIT_INTERRUPTED)
        s->exit_code = code;
    s->state = S_DONE;
    /* A link already draining its last frame (an ERROR) closes by itself. */
    if (s->conn != NULL && link_is_open(&s->conn->link))
        link_close(&s->conn->link, 0);
    uv_close((uv_handle_t *)&s->backoff, NULL);
    uv_close((uv_handle_t *)&s->progress, NULL);
    /* The signal handles stay open, only unreferenced, until the loop has
     * drained: a second signal during the wait for jobs in flight must
     * still reach on_signal(), not the default action. */
    uv_unref((uv_handle_t *)&s->sigint);
    uv_unref((uv_handle_t *)&s->sigterm);
}

/* ---- setup ------------------------------------------------------------------ */

static int open_sources(struct sender *s)
{
    for (int i = 0; i < s->nfiles; i++) {
        struct sfile *f = &s->files[i];
        const char *base = strrchr(s->o->files[i], '/');
        const char *why = NULL;
        struct stat st;

        f->fd = -1;
        f->path = s->o->files[i];
        base = base != NULL ? base + 1 : f->path;
        if (name_check(base, strlen(base), &why) < 0) {
            report_error("cannot send %s: %s; rename or copy it first", report_escaped(f->path), why);
            return XFER_EXIT_USAGE;
        }
        memcpy(f->name, base, strlen(base) + 1);
        for (int k = 0; k < i; k++) {
            if (strcmp(s->files[k].name, f->name) == 0) {
                report_error("%s and %s would both arrive as %s; send them separately",
                             report_escaped(s->files[k].path), report_escaped(f->path), f->name);
                return XFER_EXIT_USAGE;
            }
        }
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0 || fstat(f->fd, &st) < 0) {
            report_error("cannot read %s: %s", report_escaped(f->path), strerror(errno));
            return XFER_EXIT_IO;
        }
        if (!S_ISREG(st.st_mode)) {
            report_error("cannot send %s: not a regular file (xfer sends files, not "
                         "directories or devices)",
                         report_escaped(f->path));
            return XFER_EXIT_IO;
        }
        f->size = (uint64_t)st.st_size;
        f->mtime_sec = st.st_mtim.tv_sec;
        f->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
        f->mode = st.st_mode & 07777;
        f->inline_hash = 1;
        f->hash = fileio_hash_state_new();
        if (f->hash == NULL || XXH3_128bits_reset(f->hash) != XXH_OK)
            return XFER_EXIT_INTERNAL;
        if (f->size == 0)
            mark_digest(f);
    }
    return XFER_EXIT_OK;
}

static void cleanup(struct sender *s)
{
    while (s->free_bufs != NULL) {
        struct txbuf *b = s->free_bufs;

        s->free_bufs = b->next;
        free(b);
    }
    for (int i = 0; i < s->nfiles; i++) {
        if (s->files[i].fd >= 0)
            (void)close(s->files[i].fd); /* read-only */
        if (s->files[i].hash != NULL)
            XXH3_freeState(s->files[i].hash);
    }
    free(s->files);
    if (s->addrs != NULL)
        uv_freeaddrinfo(s->addrs);
}

int sender_run(const struct cli_opts *o, const struct auth_psk *psk)
{
    struct sender s;
    int code;

    memset(&s, 0, sizeof(s));
    s.o = o;
    s.psk = psk;
    s.loop = uv_default_loop();
    s.nfiles = o->nfiles;
    s.files = calloc((size_t)o->nfiles, sizeof(*s.files));
    if (s.files == NULL)
        return XFER_EXIT_INTERNAL;
    for (int i = 0; i < s.nfiles; i++)
        s.files[i].fd = -1;
    code = open_sources(&s);
    if (code != XFER_EXIT_OK) {
        cleanup(&s);
        return code;
    }
    if (uv_random(NULL, NULL, s.session_id, sizeof(s.session_id), 0, NULL) < 0) {
        cleanup(&s);
        return XFER_EXIT_INTERNAL;
    }
    srand((unsigned)(s.session_id[0] | s.session_id[1] << 8 | s.session_id[2] << 16));
    snprintf(s.port_str, sizeof(s.port_str), "%u", o->port);
    s.tty = isatty(STDERR_FILENO);
    (void)uv_timer_init(s.loop, &s.backoff);
    (void)uv_timer_init(s.loop, &s.progress);
    (void)uv_signal_init(s.loop, &s.sigint);
    (void)uv_signal_init(s.loop, &s.sigterm);
    s.backoff.data = &s;
    s.progress.data = &s;
    s.sigint.data = &s;
    s.sigterm.data = &s;
    (void)uv_signal_start(&s.sigint, on_signal, SIGINT);
    (void)uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    if (s.tty)
        (void)uv_timer_start(&s.progress, on_progress, PROGRESS_MS, PROGRESS_MS);
    start_connect(&s);
    (void)uv_run(s.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&s.sigint, NULL);
    uv_close((uv_handle_t *)&s.sigterm, NULL);
    (void)uv_run(s.loop, UV_RUN_DEFAULT); /* their close callbacks */
    code = s.exit_code;
    cleanup(&s);
    if (uv_loop_close(s.loop) != 0)
        report_error("internal: handles left open at exit");
    return code;
}
