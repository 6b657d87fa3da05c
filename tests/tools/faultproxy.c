/* faultproxy: a loopback TCP proxy that integration tests put between an xfer
 * sender (client) and receiver (server) to inject faults. Linux only.
 *
 *   faultproxy --target HOST:PORT [--listen PORT] [--port-file FILE] [--stats FILE]
 *              [--cut-after N] [--cuts K] [--stall-after N] [--stall-ms MS]
 *              [--flip-at N] [--throttle BYTES_PER_SEC] [--control-fd FD]
 *
 * Listens on 127.0.0.1:PORT (default 0: ephemeral), writes "PORT\n" to
 * --port-file (temp file + rename) and prints "listening PORT" as the first
 * stdout line. Each client is forwarded to HOST:PORT (IPv4 or [IPv6] literal).
 * Fault positions count client->server ("up") bytes over the proxy's whole
 * life, across connections:
 *   --cut-after N    forward exactly N up bytes, then reset both sides; with
 *                    --cuts K (default 1) again at 2N, 3N ... KN.
 *   --stall-after N  at N, read and write nothing either way for --stall-ms MS
 *                    (default: until a peer closes), then resume. Once.
 *   --flip-at N      XOR 0x01 into up byte N (0-based). Once.
 *   --throttle B     about B bytes/s for each direction of each connection.
 * --control-fd FD reads commands, one a line, from FD (a pipe, typically 0), for faults
 * at moments the controller picks (the chaos soak); each acts at once:
 *   cut              reset both sides of every open connection.
 *   stall MS         forward nothing either way on every open, connected, not yet
 *                    stalled connection for MS ms, then resume.
 *   flip up|down     XOR 0x01 into the middle byte of the next read in that direction.
 * Each is answered on stdout with "ok cut|stall|flip N" (N: connections affected; 1 for
 * a flip, which is armed) or "error LINE"; an armed flip prints "flipped up|down" when it
 * is made, before the flipped byte is passed on. EOF on FD shuts the proxy down as
 * SIGTERM does, so the proxy does not outlive its controller.
 * --stats FILE is rewritten atomically at start, after each connection closes
 * and at exit: "connections=C up=U down=D cuts=X flips=Y stalls=Z" (C counts
 * accepted connections). SIGINT/SIGTERM close everything and exit 0. Bad
 * arguments: one line on stderr, exit 2. Cannot listen: exit 1.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#define CHUNK_SIZE 65536
#define MAX_QUEUED ((size_t)1 << 20) /* per direction; reading pauses above this */
#define TICK_MS 10                   /* throttle refill period */
#define STALL_POLL_MS 100            /* how often an endless stall looks for a closed peer */
#define DRAIN_MAX_MS 1000            /* how long a cut waits for the server to ack its last bytes */
#define NONE UINT64_MAX

struct chunk {
    uv_write_t req; /* first member: on_write casts the request back */
    struct pipe *pipe;
    size_t len;
    char data[];
};

/* One direction: bytes read from src are written to dst. */
struct pipe {
    struct conn *conn;
    uv_stream_t *src;
    uv_stream_t *dst;
    uv_shutdown_t shut_req;
    size_t queued; /* written to dst, not yet completed */
    double tokens; /* throttle budget in bytes */
    int reading;
    int eof;
    int shut;
};

struct conn {
    uv_tcp_t client;
    uv_tcp_t server;
    uv_connect_t connect_req;
    uv_timer_t timer; /* ends or polls a stall; after a cut, waits for the drain */
    uv_timer_t tick;  /* throttle refill */
    struct pipe up;
    struct pipe down;
    struct chunk *held; /* up bytes read past the stall point */
    uint64_t tick_ms;
    uint64_t cut_ms;
    uint64_t stall_ms; /* of the stall in progress; NONE: until a peer closes */
    int handles;       /* open uv handles; the conn is freed when none is left */
    int connected;
    int stalled;
    int cutting;
    int closing;
};

static struct {
    struct sockaddr_storage target;
    const char *port_file;
    const char *stats_file;
    uint64_t listen_port;
    uint64_t cut_after;   /* 0: off */
    uint64_t cuts;        /* cuts to make */
    uint64_t stall_after; /* NONE: off */
    uint64_t stall_ms;    /* NONE: until a peer closes */
    uint64_t flip_at;     /* NONE: off */
    uint64_t throttle;    /* 0: off */
    int control_fd;       /* -1: off */
    uv_loop_t *loop;
    uv_pipe_t control;
    char line[256]; /* control command being read */
    size_t line_len;
    int flip_up; /* a control "flip" waits for the next read in that direction */
    int flip_down;
    uint64_t affected; /* conns a control command acted on */
    uv_tcp_t listener;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uint64_t n_conns;
    uint64_t n_up;
    uint64_t n_down;
    uint64_t n_cuts;
    uint64_t n_flips;
    uint64_t n_stalls;
} P = {.cuts = 1, .stall_after = NONE, .stall_ms = NONE, .flip_at = NONE, .control_fd = -1};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void up_feed(struct conn *c, struct chunk *ch);
static void cut_drain(struct conn *c);
static int parse_u64(const char *s, uint64_t *out);

/* Temp file + rename, so a reader never sees a partial file. Reports its own error. */
/* Temp file + rename, so a reader never sees a partial file. Reports its own errors. */
static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    FILE *f;
    int r;

    r = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (r < 0 || (size_t)r >= sizeof tmp) {
        fprintf(stderr, "faultproxy: cannot write %s: path too long\n", path);
        return -1;
    }
    f = fopen(tmp, "w");
    r = f == NULL ? -1 : fputs(text, f);
    if (f != NULL && fclose(f) != 0)
        r = -1;
    if (r >= 0 && rename(tmp, path) == 0)
        return 0;
    fprintf(stderr, "faultproxy: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp); /* best effort: the error is already reported */
    return -1;
}

static void stats_write(void)
{
    char line[256];

    if (P.stats_file == NULL)
        return;
    snprintf(line, sizeof line,
             "connections=%" PRIu64 " up=%" PRIu64 " down=%" PRIu64 " cuts=%" PRIu64
             " flips=%" PRIu64 " stalls=%" PRIu64 "\n",
             P.n_conns, P.n_up, P.n_down, P.n_cuts, P.n_flips, P.n_stalls);
    (void)write_atomic(P.stats_file, line); /* reported there; the proxy carries on */
}

/* A stalled conn reads nothing, so only the TCP state shows a peer's FIN or RST. */
static int peer_gone(uv_tcp_t *t)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t *)t, &fd) < 0)
        return 1;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 1;
    return ti.tcpi_state != TCP_ESTABLISHED;
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;

    c->handles--;
    if (c->handles > 0)
        return;
    free(c->held);
    free(c);
    stats_write();
}

static void handle_close(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_close);
}

static void tcp_close(uv_tcp_t *t, int reset)
{
    if (uv_is_closing((uv_handle_t *)t))
        return;
    /* close_reset refuses a socket never connected or shutting down; a FIN does there. */
    if (reset && uv_tcp_close_reset(t, on_close) == 0)
        return;
    uv_close((uv_handle_t *)t, on_close);
}

/* Safe to call again: each handle closes once; pending writes end with ECANCELED. */
static void conn_close(struct conn *c, int reset)
{
    c->closing = 1;
    tcp_close(&c->client, reset);
    tcp_close(&c->server, reset);
    handle_close((uv_handle_t *)&c->timer);
    handle_close((uv_handle_t *)&c->tick);
}

static struct pipe *pipe_of(uv_handle_t *h)
{
    struct conn *c = h->data;

    return h == (uv_handle_t *)&c->client ? &c->up : &c->down;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pipe *p = pipe_of(h);
    size_t size = CHUNK_SIZE;
    struct chunk *ch;

    (void)suggested;
    /* Read no more than the throttle allows, so the rate stays smooth. */
    if (P.throttle > 0 && p->tokens < (double)size)
        size = p->tokens >= 1 ? (size_t)p->tokens : 1;
    ch = malloc(sizeof *ch + size);
    if (ch == NULL)
        *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
    else
        *buf = uv_buf_init(ch->data, (unsigned int)size);
}

static void pipe_update(struct pipe *p)
{
    struct conn *c = p->conn;
    int want;

    if (c->closing)
        return;
    want = c->connected && !c->stalled && !p->eof && p->queued < MAX_QUEUED &&
           (P.throttle == 0 || p->tokens >= 1);
    if (want == p->reading)
        return;
    p->reading = want;
    if (!want)
        uv_read_stop(p->src); /* always 0 on unix */
    else if (uv_read_start(p->src, on_alloc, on_read) < 0)
        conn_close(c, 1);
}

static void on_write(uv_write_t *req, int status)
{
    struct chunk *ch = (struct chunk *)req;
    struct pipe *p = ch->pipe;
    struct conn *c = p->conn;

    p->queued -= ch->len;
    free(ch);
    if (c->cutting && p == &c->down)
        return; /* the client was reset, its writes cancelled; the server still drains */
    if (status < 0)
        conn_close(c, 1); /* also ECANCELED while closing: a no-op by then */
    else if (c->cutting)
        cut_drain(c);
    else
        pipe_update(p);
}

static void pipe_write(struct pipe *p, struct chunk *ch)
{
    uv_buf_t buf = uv_buf_init(ch->data, (unsigned int)ch->len);

    ch->pipe = p;
    if (uv_write(&ch->req, p->dst, &buf, 1, on_write) < 0) {
        free(ch);
        conn_close(p->conn, 1);
        return;
    }
    p->queued += ch->len;
}

/* Reset the server once the bytes up to the cut are written and acked, or time is up:
 * an RST discards whatever its send queue still holds. */
static void cut_drain(struct conn *c)
{
    uv_os_fd_t fd;
    int unacked = 0;

    if (c->up.queued > 0)
        return; /* on_write calls again */
    if (uv_fileno((uv_handle_t *)&c->server, &fd) == 0 && ioctl(fd, SIOCOUTQ, &unacked) < 0)
        unacked = 0; /* unknown: do not wait */
    if (unacked > 0 && uv_now(P.loop) - c->cut_ms < DRAIN_MAX_MS) {
        uv_timer_start(&c->timer, on_timer, 1, 0);
        return;
    }
    tcp_close(&c->server, 1);
    handle_close((uv_handle_t *)&c->timer);
}

static void conn_cut(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->cutting = 1;
    c->cut_ms = uv_now(P.loop);
    tcp_close(&c->client, 1);
    handle_close((uv_handle_t *)&c->tick);
    cut_drain(c);
}

static void conn_stall(struct conn *c, uint64_t ms)
{
    if (c->closing)
        return;
    c->stalled = 1;
    c->stall_ms = ms;
    pipe_update(&c->up);
    pipe_update(&c->down);
    if (ms != NONE)
        uv_timer_start(&c->timer, on_timer, ms, 0);
    else
        uv_timer_start(&c->timer, on_timer, STALL_POLL_MS, STALL_POLL_MS);
}

static void stall_end(struct conn *c)
{
    struct chunk *h = c->held;

    c->stalled = 0;
    c->held = NULL;
    if (h != NULL)
        up_feed(c, h);
    pipe_update(&c->up);
    pipe_update(&c->down);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->cutting)
        cut_drain(c);
    else if (c->stall_ms != NONE)
        stall_end(c);
    else if (peer_gone(&c->client) || peer_gone(&c->server))
        conn_close(c, 0);
}

/* Forward up bytes, stopping exactly at the next cut or stall position. */
static void up_feed(struct conn *c, struct chunk *ch)
{
    uint64_t pos = P.n_up;
    uint64_t n = ch->len;
    uint64_t at = P.stall_after;
    int cut = 0;
    int stall = 0;

    if (at != NONE && P.n_stalls == 0 && at >= pos && at - pos <= n) {
        n = at - pos;
        stall = 1;
    }
    at = (P.n_cuts + 1) * P.cut_after; /* parse_args rules out overflow */
    if (P.cut_after > 0 && P.n_cuts < P.cuts && at - pos <= n) {
        n = at - pos;
        cut = 1;
        stall = 0;
    }
    at = P.flip_at;
    if (at != NONE && P.n_flips == 0 && at >= pos && at - pos < n) {
        ch->data[at - pos] ^= 0x01;
        P.n_flips++;
    }
    if (P.flip_up && n > 0) {
        ch->data[n / 2] ^= 0x01;
        P.flip_up = 0;
        P.n_flips++;
        printf("flipped up\n");
        fflush(stdout);
    }
    if (stall && n < ch->len) {
        c->held = malloc(sizeof *ch + (ch->len - n));
        if (c->held == NULL) {
            free(ch);
            conn_close(c, 1);
            return;
        }
        c->held->len = ch->len - n;
        memcpy(c->held->data, ch->data + n, c->held->len);
    }
    P.n_up += n;
    ch->len = n;
    if (n > 0)
        pipe_write(&c->up, ch);
    else
        free(ch);
    if (cut) {
        P.n_cuts++;
        conn_cut(c);
    } else if (stall) {
        P.n_stalls++;
        conn_stall(c, P.stall_ms);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct pipe *p = req->data;
    struct conn *c = p->conn;

    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, 1);
        return;
    }
    p->shut = 1;
    if (c->up.shut && c->down.shut)
        conn_close(c, 0);
}

/* EOF passes on as a half-close, after pending writes; an error resets both sides. */
static void pipe_end(struct pipe *p, ssize_t err)
{
    if (err != UV_EOF) {
        conn_close(p->conn, 1);
        return;
    }
    p->eof = 1;
    pipe_update(p);
    p->shut_req.data = p;
    if (uv_shutdown(&p->shut_req, p->dst, on_shutdown) < 0)
        conn_close(p->conn, 1);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pipe *p = pipe_of((uv_handle_t *)s);
    struct chunk *ch = NULL;

    if (buf->base != NULL)
        ch = (struct chunk *)(buf->base - offsetof(struct chunk, data));
    if (nread <= 0) {
        free(ch);
        if (nread < 0)
            pipe_end(p, nread);
        return;
    }
    ch->len = (size_t)nread;
    p->tokens -= (double)nread;
    if (p == &p->conn->up) {
        up_feed(p->conn, ch);
    } else {
        P.n_down += (uint64_t)nread;
        if (P.flip_down) {
            ch->data[nread / 2] ^= 0x01;
            P.flip_down = 0;
            P.n_flips++;
            printf("flipped down\n");
            fflush(stdout);
        }
        pipe_write(p, ch);
    }
    pipe_update(p);
}

static void on_tick(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(P.loop);
    double add = (double)P.throttle * (double)(now - c->tick_ms) / 1000;
    double cap = P.throttle < 10 ? 1 : (double)P.throttle / 10; /* 100 ms of burst */

    c->tick_ms = now;
    c->up.tokens = c->up.tokens + add < cap ? c->up.tokens + add : cap;
    c->down.tokens = c->down.tokens + add < cap ? c->down.tokens + add : cap;
    pipe_update(&c->up);
    pipe_update(&c->down);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, 1);
        return;
    }
    c->connected = 1;
    /* Small frames (acks, pings) must not wait for Nagle; failure only costs latency. */
    (void)uv_tcp_nodelay(&c->client, 1);
    (void)uv_tcp_nodelay(&c->server, 1);
    if (P.throttle > 0) {
        c->tick_ms = uv_now(P.loop);
        uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS); /* cannot fail: not closing */
    }
    pipe_update(&c->up);
    pipe_update(&c->down);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct conn *c;
    int r;

    if (status < 0) {
        fprintf(stderr, "faultproxy: accept: %s\n", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "faultproxy: out of memory\n");
        return;
    }
    /* These create no socket yet and cannot fail. */
    (void)uv_tcp_init(P.loop, &c->client);
    (void)uv_tcp_init(P.loop, &c->server);
    (void)uv_timer_init(P.loop, &c->timer);
    (void)uv_timer_init(P.loop, &c->tick);
    c->handles = 4;
    c->client.data = c;
    c->server.data = c;
    c->timer.data = c;
    c->tick.data = c;
    c->connect_req.data = c;
    c->up = (struct pipe){
        .conn = c, .src = (uv_stream_t *)&c->client, .dst = (uv_stream_t *)&c->server};
    c->down = (struct pipe){
        .conn = c, .src = (uv_stream_t *)&c->server, .dst = (uv_stream_t *)&c->client};
    P.n_conns++;
    r = uv_accept(listener, (uv_stream_t *)&c->client);
    if (r == 0)
        r = uv_tcp_connect(&c->connect_req, &c->server, (struct sockaddr *)&P.target, on_connect);
    if (r < 0)
        conn_close(c, 1);
}

/* Conn handles carry their conn in data; the listener, signal and control handles carry
 * NULL. */
static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (h->data != NULL)
        conn_close(h->data, 0);
    else if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_walk(s->loop, close_all, NULL);
}

/* A control command for every conn: each has exactly one client handle, so walking the
 * loop's handles visits each conn once, with no list of our own to keep. */
static void control_conn(uv_handle_t *h, void *arg)
{
    struct conn *c = h->data;
    const uint64_t *stall_ms = arg;

    if (c == NULL || h != (uv_handle_t *)&c->client || c->closing)
        return;
    if (*stall_ms == NONE) {
        P.n_cuts++;
        conn_close(c, 1);
    } else if (c->connected && !c->stalled) {
        P.n_stalls++;
        conn_stall(c, *stall_ms);
    } else {
        return;
    }
    P.affected++;
}

static void control_run(const char *line)
{
    const char *what = line;
    uint64_t stall_ms = NONE;
    uint64_t n = 1;

    P.affected = 0;
    if (strcmp(line, "flip up") == 0) {
        P.flip_up = 1;
        what = "flip";
    } else if (strcmp(line, "flip down") == 0) {
        P.flip_down = 1;
        what = "flip";
    } else if (strcmp(line, "cut") == 0 ||
               (strncmp(line, "stall ", 6) == 0 && parse_u64(line + 6, &stall_ms) == 0 &&
                stall_ms != NONE)) {
        what = stall_ms == NONE ? "cut" : "stall";
        uv_walk(P.loop, control_conn, &stall_ms);
        n = P.affected;
    } else {
        printf("error %s\n", line);
        fflush(stdout);
        return;
    }
    printf("ok %s %" PRIu64 "\n", what, n);
    fflush(stdout);
}

static void on_control_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char space[512];

    (void)h;
    (void)suggested;
    *buf = uv_buf_init(space, sizeof space);
}

/* Lines longer than P.line are cut short; they are errors anyway. */
static void on_control(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ssize_t i;

    if (nread < 0) {
        uv_walk(P.loop, close_all, NULL); /* the controller is gone: as on SIGTERM */
        return;
    }
    (void)s;
    for (i = 0; i < nread; i++) {
        if (buf->base[i] != '\n') {
            if (P.line_len < sizeof P.line - 1)
                P.line[P.line_len++] = buf->base[i];
            continue;
        }
        P.line[P.line_len] = '\0';
        control_run(P.line);
        P.line_len = 0;
    }
}

static int control_start(void)
{
    int r;

    if (P.control_fd < 0)
        return 0;
    (void)uv_pipe_init(P.loop, &P.control, 0); /* creates nothing yet: cannot fail */
    r = uv_pipe_open(&P.control, P.control_fd);
    if (r == 0)
        r = uv_read_start((uv_stream_t *)&P.control, on_control_alloc, on_control);
    if (r < 0) {
        fprintf(stderr, "faultproxy: error: cannot read commands from fd %d: %s\n", P.control_fd,
                uv_strerror(r));
        return r;
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT with HOST an IPv4 literal, or [IPv6]:PORT. */
static int parse_target(const char *s)
{
    char host[INET6_ADDRSTRLEN + 16];
    const char *start = s + (s[0] == '[');
    const char *end = s[0] == '[' ? strstr(s, "]:") : strrchr(s, ':');
    uint64_t port;

    if (end == NULL || (size_t)(end - start) >= sizeof host)
        return -1;
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';
    if (parse_u64(end + 1 + (s[0] == '['), &port) < 0 || port == 0 || port > 65535)
        return -1;
    if (s[0] == '[')
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&P.target);
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&P.target);
}

static int parse_opt(const char *k, const char *v)
{
    uint64_t n = NONE;

    if (strcmp(k, "--target") == 0)
        return parse_target(v);
    if (strcmp(k, "--port-file") == 0)
        P.port_file = v;
    else if (strcmp(k, "--stats") == 0)
        P.stats_file = v;
    else if (parse_u64(v, &n) < 0 || n == NONE)
        return -1;
    else if (strcmp(k, "--listen") == 0 && n <= 65535)
        P.listen_port = n;
    else if (strcmp(k, "--cut-after") == 0 && n > 0)
        P.cut_after = n;
    else if (strcmp(k, "--cuts") == 0 && n > 0)
        P.cuts = n;
    else if (strcmp(k, "--stall-after") == 0)
        P.stall_after = n;
    else if (strcmp(k, "--stall-ms") == 0)
        P.stall_ms = n;
    else if (strcmp(k, "--flip-at") == 0)
        P.flip_at = n;
    else if (strcmp(k, "--throttle") == 0 && n > 0)
        P.throttle = n;
    else if (strcmp(k, "--control-fd") == 0 && n <= INT_MAX)
        P.control_fd = (int)n;
    else
        return -1;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i += 2) {
        if (i + 1 == argc) {
            fprintf(stderr, "faultproxy: error: %s needs a value\n", argv[i]);
            return -1;
        }
        if (parse_opt(argv[i], argv[i + 1]) < 0) {
            fprintf(stderr, "faultproxy: error: bad option or value: %s %s\n", argv[i],
                    argv[i + 1]);
            return -1;
        }
    }
    if (P.target.ss_family == 0) {
        fprintf(stderr, "faultproxy: error: --target HOST:PORT is required\n");
        return -1;
    }
    if (P.cut_after > 0 && P.cuts > (NONE - 1) / P.cut_after) {
        fprintf(stderr, "faultproxy: error: --cut-after times --cuts is too large\n");
        return -1;
    }
    return 0;
}

static int start_listening(void)
{
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof name;
    char text[32];
    int r;

    (void)uv_tcp_init(P.loop, &P.listener); /* creates no socket yet: cannot fail */
    r = uv_ip4_addr("127.0.0.1", (int)P.listen_port, &addr);
    if (r == 0)
        r = uv_tcp_bind(&P.listener, (struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&P.listener, 128, on_connection);
    if (r == 0)
        r = uv_tcp_getsockname(&P.listener, (struct sockaddr *)&name, &namelen);
    if (r < 0) {
        fprintf(stderr, "faultproxy: error: cannot listen on 127.0.0.1:%d: %s\n",
                (int)P.listen_port, uv_strerror(r));
        return r;
    }
    snprintf(text, sizeof text, "%d\n", ntohs(((struct sockaddr_in *)&name)->sin_port));
    if (P.port_file != NULL && write_atomic(P.port_file, text) < 0)
        return -1;
    printf("listening %s", text);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    int r;

    if (parse_args(argc, argv) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN); /* a write to a reset peer must fail with EPIPE, not kill us */
    P.loop = uv_default_loop();
    if (start_listening() < 0 || control_start() < 0)
        return 1;
    /* Signal handles cannot fail to init or start with a valid signum and callback. */
    (void)uv_signal_init(P.loop, &P.sigint);
    (void)uv_signal_init(P.loop, &P.sigterm);
    (void)uv_signal_start(&P.sigint, on_signal, SIGINT);
    (void)uv_signal_start(&P.sigterm, on_signal, SIGTERM);
    stats_write();
    uv_run(P.loop, UV_RUN_DEFAULT);
    stats_write();
    r = uv_loop_close(P.loop);
    if (r < 0)
        fprintf(stderr, "faultproxy: loop did not close clean: %s\n", uv_strerror(r));
    return 0;
}
