/* The link's output bound (include/xfer/link.h) on a loop of the test's own, over a socket pair
 * whose far end the test reads, or does not, by hand: a peer that reads nothing stops being
 * read, is read again once it drains what it was sent, and is closed with XFER_ESTALLED past
 * the hard cap or after the idle timeout without a drain. The owner's link_pause() and the
 * bound's are separate reasons: reading resumes only once both have cleared. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "xfer/err.h"
#include "xfer/link.h"
#include "xfer/proto.h"

struct peer {
    struct link link;
    int far;    /* the test's end of the pair */
    int frames; /* PINGs the link has read */
    int closed;
    int close_err;
};

static uv_loop_t loop;

static int on_frame(struct link *l, const struct proto_frame *f, uint8_t *data_buf)
{
    struct peer *p = l->data;

    link_buf_release(data_buf); /* clear frames: never DATA */
    if (f->type == PROTO_PING)
        p->frames++;
    return 0;
}

static void on_data_sent(struct link *l, void *ctx, int status)
{
    (void)l; /* no DATA is sent here */
    (void)ctx;
    (void)status;
}

static void on_close(struct link *l, int err)
{
    struct peer *p = l->data;

    p->closed = 1;
    p->close_err = err;
}

static const struct link_ops ops = {
    .on_frame = on_frame,
    .on_data_sent = on_data_sent,
    .on_close = on_close,
};

/* A link on one end of a socket pair whose send buffer is already full, so that everything it
 * queues from now on waits in the link, as for a peer that stopped reading long ago. */
static void peer_open(struct peer *p)
{
    uint8_t junk[4096];
    int sv[2];

    memset(p, 0, sizeof(*p));
    memset(junk, 0, sizeof(junk));
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    cr_assert_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    while (write(sv[0], junk, sizeof(junk)) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
    p->far = sv[1];
    cr_assert_eq(uv_tcp_init(&loop, &p->link.tcp), 0);
    cr_assert_eq(uv_tcp_open(&p->link.tcp, sv[0]), 0);
    cr_assert_eq(link_init(&p->link, &ops, p), 0);
}

/* Queues PINGs until the link's output passes bytes. */
static void queue_past(struct peer *p, size_t bytes)
{
    struct proto_frame ping = {.type = PROTO_PING};

    while (p->link.ctrl_queued <= bytes)
        cr_assert_eq(link_send(&p->link, &ping), 0);
}

/* The far end reads all there is, and the loop runs until the link's output is down to
 * LINK_TX_LOW. */
static void drain(struct peer *p)
{
    uint8_t buf[65536];

    for (int i = 0; i < 10000 && p->link.ctrl_queued > LINK_TX_LOW; i++) {
        while (read(p->far, buf, sizeof(buf)) > 0)
            ;
        (void)uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert_leq(p->link.ctrl_queued, LINK_TX_LOW, "the output did not drain");
}

/* The far end sends a PING; returns how many the link has read after a few loop turns. */
static int ping_and_count(struct peer *p)
{
    uint8_t frame[PROTO_HDR_LEN] = {0, 0, 0, 0, PROTO_PING, 0, 0, 0};

    cr_assert_eq(write(p->far, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    for (int i = 0; i < 20; i++)
        (void)uv_run(&loop, UV_RUN_NOWAIT);
    return p->frames;
}

/* Runs the loop until the link has closed (by itself, or as asked), then closes the far end
 * and expects the loop to close clean. */
static void peer_finish(struct peer *p)
{
    while (!p->closed)
        (void)uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(close(p->far), 0);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

static void peer_close(struct peer *p)
{
    link_close(&p->link, 0);
    peer_finish(p);
}

TestSuite(link);

Test(link, output_past_the_high_mark_stops_reading_until_it_drains)
{
    struct peer p;

    peer_open(&p);
    cr_assert_eq(ping_and_count(&p), 1, "an idle link does not read");
    queue_past(&p, LINK_TX_HIGH);
    cr_assert_neq(p.link.paused & LINK_PAUSE_OUTPUT, 0);
    cr_assert_eq(ping_and_count(&p), 1, "read a frame while its replies were backed up");
    drain(&p);
    cr_assert_eq(p.link.paused, 0);
    cr_assert_eq(ping_and_count(&p), 3, "not reading again once the replies drained");
    peer_close(&p);
}

Test(link, owner_resume_does_not_override_the_output_bound)
{
    struct peer p;

    peer_open(&p);
    queue_past(&p, LINK_TX_HIGH);
    link_pause(&p.link);
    link_resume(&p.link);
    cr_assert_eq(p.link.paused, LINK_PAUSE_OUTPUT);
    cr_assert_eq(ping_and_count(&p), 0, "the owner's resume restarted reading");
    drain(&p);
    cr_assert_eq(ping_and_count(&p), 2, "not reading again once the replies drained");
    peer_close(&p);
}

Test(link, drained_output_does_not_override_the_owners_pause)
{
    struct peer p;

    peer_open(&p);
    queue_past(&p, LINK_TX_HIGH);
    link_pause(&p.link);
    drain(&p);
    cr_assert_eq(p.link.paused, LINK_PAUSE_OWNER);
    cr_assert_eq(ping_and_count(&p), 0, "the drained output restarted reading");
    link_resume(&p.link);
    cr_assert_eq(ping_and_count(&p), 2, "not reading again once both reasons cleared");
    peer_close(&p);
}

Test(link, output_past_the_hard_cap_closes_with_estalled)
{
    struct proto_frame ping = {.type = PROTO_PING};
    struct peer p;
    int rc = 0;

    peer_open(&p);
    while (rc == 0)
        rc = link_send(&p.link, &ping);
    cr_assert_eq(rc, XFER_ESTALLED);
    cr_assert_gt(p.link.stalled_queued, LINK_TX_MAX);
    cr_assert_leq(p.link.stalled_queued, LINK_TX_MAX + 1024, "queued well past the cap");
    peer_finish(&p);
    cr_assert_eq(p.close_err, XFER_ESTALLED);
    cr_assert_eq(p.link.ctrl_queued, 0, "writes left uncancelled");
}

Test(link, output_not_drained_for_the_idle_timeout_closes_with_estalled)
{
    struct peer p;

    cr_assert_eq(setenv("XFER_IDLE_TIMEOUT", "0.2", 1), 0); /* read once, by this process */
    peer_open(&p);
    queue_past(&p, LINK_TX_HIGH);
    peer_finish(&p);
    cr_assert_eq(p.close_err, XFER_ESTALLED);
    cr_assert_gt(p.link.stalled_queued, LINK_TX_HIGH);
}
