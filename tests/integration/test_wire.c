/* Speaks xfer-protocol(7) by hand to a real `xfer recv` over a raw TCP socket. The encoder and
 * decoder below are written from the man page alone (nothing from src/ is linked; xxHash is used
 * only for the hashes the page names), so these tests also show that the page is enough to
 * implement a sender, and that the receiver answers as the page says. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
/* For XXH3_state_t's layout: the journal keeps the raw image of that struct (JOURNAL FORMAT). */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

TestSuite(wire, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

/* Constants of xfer-protocol(7). */
#define W_MAGIC 0x58464552u
#define W_VERSION 1
#define W_HDR 8
#define W_CHUNK 1048576u
#define W_DATA_FIXED 20
#define W_MAX_CONTROL 4096
#define W_MAX_TEXT 1024
#define W_SESSION_ID 16

enum w_type {
    W_HELLO = 1,
    W_WELCOME = 2,
    W_OFFER = 3,
    W_ACCEPT = 4,
    W_COMPLETE = 5,
    W_REFUSE = 6,
    W_NEED_HASH = 7,
    W_FILE_HASH = 8,
    W_DATA = 9,
    W_ACK = 10,
    W_REWIND = 11,
    W_END = 12,
    W_COMMITTED = 13,
    W_PING = 14,
    W_ERROR = 15,
    W_BYE = 16
};

enum w_code {
    CODE_OK = 0,
    CODE_EXISTS = 1,
    CODE_BAD_NAME = 4,
    CODE_RETRY = 5,
    CODE_IO = 6,
    CODE_VERIFY = 7,
    CODE_VERSION_MISMATCH = 8,
    CODE_PROTOCOL = 9,
    CODE_TIMEOUT = 10,
    CODE_SHUTDOWN = 11
};

enum w_reason { REASON_BAD_CHUNK = 1, REASON_VERIFY = 3 };

/* Bound for any single answer of the receiver. */
#define REPLY_MS 15000

/* The man page lets the side that sends ERROR wait up to 2 s for it to be written. */
#define CLOSE_AFTER_ERROR_MS 5000

static const char *const type_names[] = {"?",        "HELLO",  "WELCOME",   "OFFER",     "ACCEPT",
                                         "COMPLETE", "REFUSE", "NEED_HASH", "FILE_HASH", "DATA",
                                         "ACK",      "REWIND", "END",       "COMMITTED", "PING",
                                         "ERROR",    "BYE"};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- encoder: big-endian fields ----------------------------------------- */

static uint8_t *put_u8(uint8_t *p, uint8_t v)
{
    p[0] = v;
    return p + 1;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p = put_u16(p, (uint16_t)(v >> 16));
    return put_u16(p, (uint16_t)v);
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    p = put_u32(p, (uint32_t)(v >> 32));
    return put_u32(p, (uint32_t)v);
}

static uint8_t *put_bytes(uint8_t *p, const void *b, size_t n)
{
    memcpy(p, b, n);
    return p + n;
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)get_u16(p) << 16) | get_u16(p + 2);
}

static uint64_t get_u64(const uint8_t *p)
{
    return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

/* Header: u32 payload length, u8 type, u8 flags (0), u16 reserved (0). */
static uint8_t *put_header(uint8_t *p, uint32_t len, uint8_t type)
{
    p = put_u32(p, len);
    p = put_u8(p, type);
    p = put_u8(p, 0);
    return put_u16(p, 0);
}

static const uint8_t test_session_id[W_SESSION_ID] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

/* HELLO: magic, version, flags, session id, file count (28 bytes). Returns the frame length. */
static size_t enc_hello(uint8_t *out, uint32_t magic, uint16_t version)
{
    uint8_t *p = put_header(out, 28, W_HELLO);

    p = put_u32(p, magic);
    p = put_u16(p, version);
    p = put_u16(p, 0);
    p = put_bytes(p, test_session_id, W_SESSION_ID);
    p = put_u32(p, 1);
    return (size_t)(p - out);
}

struct offer {
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t mode;
    const char *name;
    size_t name_len;
};

/* OFFER: size, mtime_sec, mtime_nsec, mode, name_len, name (26 + L). out holds 8 + 26 + L. */
static size_t enc_offer(uint8_t *out, const struct offer *o)
{
    uint8_t *p = put_header(out, (uint32_t)(26 + o->name_len), W_OFFER);

    p = put_u64(p, o->size);
    p = put_u64(p, (uint64_t)o->mtime_sec);
    p = put_u32(p, o->mtime_nsec);
    p = put_u32(p, o->mode);
    p = put_u16(p, (uint16_t)o->name_len);
    p = put_bytes(p, o->name, o->name_len);
    return (size_t)(p - out);
}

/* Header and fixed fields of DATA (28 bytes); the n chunk bytes follow on the wire. */
static size_t enc_data_prefix(uint8_t *out, uint32_t epoch, uint64_t offset, uint64_t hash,
                              uint32_t n)
{
    uint8_t *p = put_header(out, W_DATA_FIXED + n, W_DATA);

    p = put_u32(p, epoch);
    p = put_u64(p, offset);
    p = put_u64(p, hash);
    return (size_t)(p - out);
}

/* END: epoch, then the XXH3-128 as high and low u64 (20 bytes). */
static size_t enc_end(uint8_t *out, uint32_t epoch, XXH128_hash_t h)
{
    uint8_t *p = put_header(out, 20, W_END);

    p = put_u32(p, epoch);
    p = put_u64(p, h.high64);
    p = put_u64(p, h.low64);
    return (size_t)(p - out);
}

/* FILE_HASH: the XXH3-128 as high and low u64 (16 bytes). */
static size_t enc_file_hash(uint8_t *out, XXH128_hash_t h)
{
    uint8_t *p = put_header(out, 16, W_FILE_HASH);

    p = put_u64(p, h.high64);
    p = put_u64(p, h.low64);
    return (size_t)(p - out);
}

/* ERROR: code, text_len, text. out holds 8 + 4 + strlen(text). */
static size_t enc_error(uint8_t *out, uint16_t code, const char *text)
{
    size_t n = strlen(text);
    uint8_t *p = put_header(out, (uint32_t)(4 + n), W_ERROR);

    p = put_u16(p, code);
    p = put_u16(p, (uint16_t)n);
    p = put_bytes(p, text, n);
    return (size_t)(p - out);
}

static size_t enc_bye(uint8_t *out, uint16_t status)
{
    uint8_t *p = put_header(out, 2, W_BYE);

    p = put_u16(p, status);
    return (size_t)(p - out);
}

/* ---- the receiver under test ------------------------------------------- */

struct rx {
    char *dir;
    pid_t pid;
    int port;
};

static void start_rx(struct rx *r, const char *const env[])
{
    r->dir = harness_pathf("dst");
    r->pid = harness_must_recv(&r->port, r->dir, NULL, env, "recv");
}

/* Checks that the receiver still runs and that a real `xfer send` through it succeeds. */
static void expect_rx_still_serves(const struct rx *r)
{
    char *src = harness_must_src("after/after.bin", 2 * HARNESS_MIB + 3, 77);
    int rc;

    cr_assert(harness_alive(r->pid), "the receiver died: %s", harness_report(r->pid, "recv"));
    rc = harness_run_send((const char *[]){src, harness_strf("127.0.0.1:%d", r->port), NULL}, NULL,
                          "send-after", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "a normal transfer afterwards failed: sender exit %d; stderr:\n%s\n%s", rc,
                 harness_log("send-after"), harness_report(r->pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/after.bin", r->dir)), 0,
                 "after.bin differs from its source");
}

/* ---- socket ---------------------------------------------------------------- */

static int wire_connect(int port)
{
    struct sockaddr_in sa;
    int one = 1;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
                 "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
    /* As the page asks of both sides; also keeps our small frames from waiting. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* only a latency hint */
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0, "send to the receiver failed: %s; receiver stderr:\n%s",
                     n < 0 ? strerror(errno) : "nothing written", harness_log("recv"));
        p += n;
        len -= (size_t)n;
    }
}

/* ---- decoder ------------------------------------------------------------- */

/* Every frame the receiver sends is a control frame, so its payload fits W_MAX_CONTROL. */
struct frame {
    uint8_t type;
    uint32_t len;
    uint8_t raw[W_HDR + W_MAX_CONTROL]; /* header and payload as received */
    const uint8_t *payload;
};

/* Reads exactly len bytes before deadline_ms (CLOCK_MONOTONIC). Returns the number of bytes read
 * (less than len only at EOF), -ETIMEDOUT, or -errno. ECONNRESET counts as EOF: a peer that
 * closes with our bytes unread resets the connection instead of a FIN. */
static ssize_t read_exact(int fd, uint8_t *p, size_t len, long long deadline_ms)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = {fd, POLLIN, 0};
        long long left = deadline_ms - now_ms();
        ssize_t n;
        int r;

        if (left <= 0)
            return -ETIMEDOUT;
        r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            continue; /* the deadline check above ends the loop */
        n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET)
            break;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Reads one frame, checking its header against the page. Returns 1 for a frame, 0 for EOF at a
 * frame boundary, -ETIMEDOUT if nothing complete came within timeout_ms. */
static int recv_frame(int fd, struct frame *f, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    ssize_t n;

    memset(f, 0, sizeof(*f));
    n = read_exact(fd, f->raw, W_HDR, deadline);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return 0;
    cr_assert_eq(n, W_HDR, "the connection ended inside a frame header (%zd of 8 bytes)", n);
    f->len = get_u32(f->raw);
    f->type = f->raw[4];
    cr_assert(f->type >= 1 && f->type <= W_BYE, "receiver sent a frame of type %u", f->type);
    cr_assert(f->raw[5] == 0 && get_u16(f->raw + 6) == 0,
              "receiver sent %s with flags %u and reserved %u (both must be 0)",
              type_names[f->type], f->raw[5], get_u16(f->raw + 6));
    cr_assert_leq(f->len, W_MAX_CONTROL, "receiver sent %s with payload length %u",
                  type_names[f->type], f->len);
    f->payload = f->raw + W_HDR;
    n = read_exact(fd, f->raw + W_HDR, f->len, deadline);
    if (n == -ETIMEDOUT)
        return -ETIMEDOUT;
    cr_assert_eq(n, (ssize_t)f->len, "the connection ended inside a %s frame (%zd of %u bytes)",
                 type_names[f->type], n, f->len);
    return 1;
}

/* Payload lengths of R->S frames with fixed fields. */
static void check_length(const struct frame *f)
{
    uint32_t want = 0;

    switch (f->type) {
    case W_WELCOME:
        want = 8;
        break;
    case W_ACCEPT:
    case W_ACK:
        want = 12;
        break;
    case W_REWIND:
        want = 14;
        break;
    case W_REFUSE:
    case W_ERROR:
        cr_assert_geq(f->len, 4, "%s with payload length %u", type_names[f->type], f->len);
        cr_assert_leq(get_u16(f->payload + 2), W_MAX_TEXT, "%s text_len %u above 1024",
                      type_names[f->type], get_u16(f->payload + 2));
        want = 4 + (uint32_t)get_u16(f->payload + 2);
        break;
    case W_COMPLETE:
    case W_NEED_HASH:
    case W_COMMITTED:
    case W_PING:
        want = 0;
        break;
    default:
        cr_assert_fail("the receiver sent %s, a frame only a sender may send", type_names[f->type]);
    }
    cr_assert_eq(f->len, want, "%s has payload length %u, the page says %u", type_names[f->type],
                 f->len, want);
}

/* A readable account of a frame, for assertion messages. */
static char *describe(const struct frame *f)
{
    switch (f->type) {
    case W_ACCEPT:
    case W_ACK:
        return harness_strf("%s(epoch %u, offset %llu)", type_names[f->type], get_u32(f->payload),
                            (unsigned long long)get_u64(f->payload + 4));
    case W_REWIND:
        return harness_strf("REWIND(epoch %u, offset %llu, reason %u)", get_u32(f->payload),
                            (unsigned long long)get_u64(f->payload + 4), get_u16(f->payload + 12));
    case W_REFUSE:
    case W_ERROR:
        return harness_strf("%s(code %u, \"%.*s\")", type_names[f->type], get_u16(f->payload),
                            (int)get_u16(f->payload + 2), (const char *)f->payload + 4);
    default:
        return harness_strf("%s", type_names[f->type]);
    }
}

/* The next frame that is not a PING (valid at any time, no answer). Fails the test on EOF or
 * timeout; what says what we were waiting for. */
static void next_frame(int fd, struct frame *f, const char *what)
{
    for (;;) {
        int r = recv_frame(fd, f, REPLY_MS);

        cr_assert_neq(r, -ETIMEDOUT,
                      "no frame within %d ms while waiting for %s; receiver stderr:\n%s", REPLY_MS,
                      what, harness_log("recv"));
        cr_assert_neq(r, 0,
                      "the receiver closed the connection while we waited for %s; "
                      "receiver stderr:\n%s",
                      what, harness_log("recv"));
        cr_assert_eq(r, 1, "reading from the receiver failed (%s) while waiting for %s",
                     strerror(-r), what);
        check_length(f);
        if (f->type != W_PING)
            return;
    }
}

static void expect_type(int fd, struct frame *f, uint8_t type)
{
    next_frame(fd, f, type_names[type]);
    cr_assert_eq(f->type, type, "receiver sent %s, want %s; receiver stderr:\n%s", describe(f),
                 type_names[type], harness_log("recv"));
}

/* Expects EOF (after any PINGs) within timeout_ms. */
static void expect_eof(int fd, int timeout_ms, const char *after)
{
    struct frame f;

    for (;;) {
        int r = recv_frame(fd, &f, timeout_ms);

        cr_assert_neq(r, -ETIMEDOUT, "the receiver did not close the connection within %d ms %s",
                      timeout_ms, after);
        cr_assert_geq(r, 0, "reading from the receiver failed: %s", strerror(-r));
        if (r == 0)
            return;
        check_length(&f);
        cr_assert_eq(f.type, W_PING, "receiver sent %s %s, want the connection closed",
                     describe(&f), after);
    }
}

/* ERROR with this code, then the connection closed. */
static void expect_error_and_close(int fd, uint16_t code, const char *after)
{
    struct frame f;

    next_frame(fd, &f, "ERROR");
    cr_assert_eq(f.type, W_ERROR, "receiver sent %s %s, want ERROR code %u", describe(&f), after,
                 code);
    cr_assert_eq(get_u16(f.payload), code, "receiver sent %s %s, want code %u", describe(&f), after,
                 code);
    expect_eof(fd, CLOSE_AFTER_ERROR_MS, harness_strf("after its ERROR (%s)", after));
}

/* ---- conversation steps ---------------------------------------------------- */

static void say_hello(int fd)
{
    uint8_t buf[64];
    struct frame f;

    send_all(fd, buf, enc_hello(buf, W_MAGIC, W_VERSION));
    expect_type(fd, &f, W_WELCOME);
    cr_assert_eq(get_u32(f.payload), W_MAGIC, "WELCOME magic is %#x", get_u32(f.payload));
    cr_assert_eq(get_u16(f.payload + 4), W_VERSION, "WELCOME version is %u",
                 get_u16(f.payload + 4));
}

static void send_offer(int fd, const struct offer *o)
{
    uint8_t buf[W_HDR + 26 + 512];

    cr_assert_leq(o->name_len, 512);
    send_all(fd, buf, enc_offer(buf, o));
}

static void expect_accept(int fd, uint32_t epoch, uint64_t offset)
{
    struct frame f;

    expect_type(fd, &f, W_ACCEPT);
    cr_assert(get_u32(f.payload) == epoch && get_u64(f.payload + 4) == offset,
              "receiver sent %s, want ACCEPT(epoch %u, offset %llu)", describe(&f), epoch,
              (unsigned long long)offset);
}

/* One DATA frame claiming offset for the n bytes at bytes; its chunk hash (XXH3-64 seeded with
 * the offset) is XORed with hash_xor, 0 for the right hash. */
static void send_data(int fd, uint32_t epoch, uint64_t offset, const uint8_t *bytes, uint32_t n,
                      uint64_t hash_xor)
{
    uint8_t prefix[W_HDR + W_DATA_FIXED];
    uint64_t hash = XXH3_64bits_withSeed(bytes, n, offset) ^ hash_xor;

    send_all(fd, prefix, enc_data_prefix(prefix, epoch, offset, hash, n));
    send_all(fd, bytes, n);
}

/* DATA for bytes [offset, offset + n) of file. */
static void send_chunk(int fd, uint32_t epoch, const uint8_t *file, uint64_t offset, uint32_t n,
                       uint64_t hash_xor)
{
    send_data(fd, epoch, offset, file + offset, n, hash_xor);
}

/* DATA for every chunk of file from offset from on. */
static void send_chunks_from(int fd, uint32_t epoch, const uint8_t *file, uint64_t size,
                             uint64_t from)
{
    for (uint64_t off = from; off < size; off += W_CHUNK) {
        uint64_t n = size - off < W_CHUNK ? size - off : W_CHUNK;

        send_chunk(fd, epoch, file, off, (uint32_t)n, 0);
    }
}

static void send_end(int fd, uint32_t epoch, XXH128_hash_t h)
{
    uint8_t buf[W_HDR + 20];

    send_all(fd, buf, enc_end(buf, epoch, h));
}

static void send_bye(int fd, uint16_t status)
{
    uint8_t buf[W_HDR + 2];

    send_all(fd, buf, enc_bye(buf, status));
}

/* Reads ACKs up to COMMITTED: every ACK on a chunk boundary or at size, never going down within
 * an epoch, the last one ACK(epoch, size). Anything else fails. */
static void expect_acks_then_committed(int fd, uint32_t epoch, uint64_t size)
{
    uint32_t last_epoch = 0;
    uint64_t last = 0;
    int acks = 0;
    struct frame f;

    for (;;) {
        next_frame(fd, &f, "ACK or COMMITTED");
        if (f.type == W_COMMITTED)
            break;
        cr_assert_eq(f.type, W_ACK, "receiver sent %s, want ACK or COMMITTED; stderr:\n%s",
                     describe(&f), harness_log("recv"));
        {
            uint32_t e = get_u32(f.payload);
            uint64_t off = get_u64(f.payload + 4);

            cr_assert(off <= size && (off % W_CHUNK == 0 || off == size),
                      "%s is not on a chunk boundary of a %llu-byte file", describe(&f),
                      (unsigned long long)size);
            cr_assert(e != last_epoch || off >= last, "%s after ACK(epoch %u, offset %llu)",
                      describe(&f), last_epoch, (unsigned long long)last);
            last_epoch = e;
            last = off;
            acks++;
        }
    }
    cr_assert_gt(acks, 0,
                 "COMMITTED came without any ACK; the page wants the last ACK to carry "
                 "the file size");
    cr_assert(last_epoch == epoch && last == size,
              "the last ACK before COMMITTED was ACK(epoch %u, offset %llu), want ACK(epoch %u, "
              "offset %llu)",
              last_epoch, (unsigned long long)last, epoch, (unsigned long long)size);
}

/* Reads frames up to a REWIND, allowing only ACKs (and PINGs) before it. */
static void expect_rewind(int fd, uint32_t epoch, uint64_t offset, uint16_t reason)
{
    struct frame f;

    for (;;) {
        next_frame(fd, &f, "REWIND");
        if (f.type != W_ACK)
            break;
    }
    cr_assert_eq(f.type, W_REWIND, "receiver sent %s, want REWIND; stderr:\n%s", describe(&f),
                 harness_log("recv"));
    cr_assert(get_u32(f.payload) == epoch && get_u64(f.payload + 4) == offset &&
                  get_u16(f.payload + 12) == reason,
              "receiver sent %s, want REWIND(epoch %u, offset %llu, reason %u)", describe(&f),
              epoch, (unsigned long long)offset, reason);
}

/* Writes harness_dir()/REL with size pseudo-random bytes and returns a malloc'ed copy of them
 * (the caller frees it): the frames are built from memory, the result compared with the file. */
static uint8_t *make_content(uint64_t size, uint64_t seed, const char *rel)
{
    char *path = harness_must_src(rel, (long long)size, seed);
    uint8_t *buf = malloc(size ? size : 1);
    FILE *fp;

    cr_assert_not_null(buf);
    fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    cr_assert_eq(fread(buf, 1, size, fp), size, "cannot read %s", path);
    fclose(fp);
    return buf;
}

/* The state key of NAME: XXH3-128 of the name as 32 lower-case hex digits, high 64 bits first. */
static char *state_key(const char *name)
{
    XXH128_hash_t h = XXH3_128bits(name, strlen(name));

    return harness_strf("%016llx%016llx", (unsigned long long)h.high64,
                        (unsigned long long)h.low64);
}

/* ---- tests: the first frame ------------------------------------------------ */

Test(wire, hello_of_version_2_gets_error_version_mismatch_and_close)
{
    /* Checks that a HELLO with the right magic and version 2 is answered with ERROR code 8 and a
     * close, and that the receiver keeps serving afterwards. */
    struct rx r;
    uint8_t buf[64];
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    send_all(fd, buf, enc_hello(buf, W_MAGIC, 2));
    expect_error_and_close(fd, CODE_VERSION_MISMATCH, "after a version 2 HELLO");
    close(fd);
    expect_rx_still_serves(&r);
}

Test(wire, hello_of_another_version_is_judged_by_its_first_8_bytes)
{
    /* Checks the page's promise that magic and version come first, so a HELLO of another version
     * with a payload of another length (8 bytes here) still gets VERSION_MISMATCH, not PROTOCOL. */
    struct rx r;
    uint8_t buf[16];
    uint8_t *p;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    p = put_header(buf, 8, W_HELLO);
    p = put_u32(p, W_MAGIC);
    p = put_u16(p, 7);
    p = put_u16(p, 0);
    send_all(fd, buf, (size_t)(p - buf));
    expect_error_and_close(fd, CODE_VERSION_MISMATCH, "after an 8-byte version 7 HELLO");
    close(fd);
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, hello_with_a_bad_magic_gets_error_protocol_and_close)
{
    /* Checks that a HELLO whose magic is not "XFER" is answered with ERROR code 9 and a close,
     * and that the receiver keeps serving afterwards. */
    struct rx r;
    uint8_t buf[64];
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    send_all(fd, buf, enc_hello(buf, 0x58464553u /* "XFES" */, W_VERSION));
    expect_error_and_close(fd, CODE_PROTOCOL, "after a HELLO with a bad magic");
    close(fd);
    expect_rx_still_serves(&r);
}

Test(wire, header_longer_than_the_maximum_is_refused_before_its_payload)
{
    /* Checks that an OFFER header announcing 1,000,000 payload bytes (the maximum is 4096) is
     * answered with ERROR and a close at once, while none of those bytes has been sent: the
     * receiver must judge the header alone. Its idle timeout is the default 15 s, so an answer
     * within a few seconds cannot come from giving up on the missing bytes. */
    struct rx r;
    uint8_t buf[64];
    long long start;
    long long took;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    start = now_ms();
    send_all(fd, buf, (size_t)(put_header(buf, 1000000, W_OFFER) - buf));
    expect_error_and_close(fd, CODE_PROTOCOL, "after an OFFER header of length 1000000");
    took = now_ms() - start;
    cr_assert_lt(took, 5000, "the answer took %lld ms: the receiver waited for the payload", took);
    close(fd);
    expect_rx_still_serves(&r);
}

Test(wire, data_header_longer_than_one_chunk_is_refused_before_its_payload)
{
    /* Checks the DATA maximum of 20 + 1048576: a header of 1048597 is an ERROR at once. */
    struct rx r;
    uint8_t buf[64];
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_all(fd, buf, (size_t)(put_header(buf, W_DATA_FIXED + W_CHUNK + 1, W_DATA) - buf));
    expect_error_and_close(fd, CODE_PROTOCOL, "after a DATA header of length 1048597");
    close(fd);
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, offer_before_hello_gets_error_protocol_and_close)
{
    /* Checks that a well-formed OFFER as the first frame of a connection is ERROR code 9. */
    struct rx r;
    struct offer o = {5, 1700000000, 0, 0644, "early.txt", 9};
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    send_offer(fd, &o);
    expect_error_and_close(fd, CODE_PROTOCOL, "after an OFFER before HELLO");
    close(fd);
    harness_must_ls(r.dir, "");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, malformed_headers_get_error_protocol)
{
    /* Checks each header rule of the page on its own connection, right after a good HELLO:
     * non-zero flags, non-zero reserved bits, type 0 and type 17 are ERROR code 9. */
    static const struct {
        const char *what;
        uint8_t bytes[8];
    } cases[] = {
        {"flags 1", {0, 0, 0, 0, W_PING, 1, 0, 0}},
        {"reserved 1", {0, 0, 0, 0, W_PING, 0, 0, 1}},
        {"type 0", {0, 0, 0, 0, 0, 0, 0, 0}},
        {"type 17", {0, 0, 0, 0, 17, 0, 0, 0}},
    };
    struct rx r;

    start_rx(&r, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = wire_connect(r.port);

        say_hello(fd);
        send_all(fd, cases[i].bytes, sizeof(cases[i].bytes));
        expect_error_and_close(fd, CODE_PROTOCOL,
                               harness_strf("after a header with %s", cases[i].what));
        close(fd);
    }
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, malformed_offers_get_error_protocol)
{
    /* Checks the OFFER rules that make a protocol error (not a REFUSE): a trailing byte, a
     * missing byte, mtime_nsec of 1000000000, a size above 2^63-1, and a name_len of 256. */
    struct rx r;
    char long_name[256];
    uint8_t buf[W_HDR + 26 + 512];
    size_t n;

    memset(long_name, 'a', sizeof(long_name));
    start_rx(&r, NULL);
    for (int i = 0; i < 5; i++) {
        struct offer o = {5, 1700000000, 0, 0644, "ok.txt", 6};
        const char *what = NULL;
        int fd = wire_connect(r.port);

        say_hello(fd);
        if (i == 3) {
            o.size = (uint64_t)1 << 63;
            what = "size 2^63";
        } else if (i == 2) {
            o.mtime_nsec = 1000000000u;
            what = "mtime_nsec 1000000000";
        } else if (i == 4) {
            o.name = long_name;
            o.name_len = sizeof(long_name);
            what = "name_len 256";
        }
        n = enc_offer(buf, &o);
        if (i == 0) {
            /* One byte more than its fields, with the length saying so. */
            buf[n] = 'x';
            n++;
            put_u32(buf, (uint32_t)(n - W_HDR));
            what = "a trailing byte";
        } else if (i == 1) {
            n--;
            put_u32(buf, (uint32_t)(n - W_HDR));
            what = "a missing byte";
        }
        send_all(fd, buf, n);
        expect_error_and_close(fd, CODE_PROTOCOL, harness_strf("after an OFFER with %s", what));
        close(fd);
    }
    harness_must_ls(r.dir, "");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, silent_connection_is_closed_within_the_hello_deadline)
{
    /* Checks that with XFER_IDLE_TIMEOUT=1 a connection that never speaks is closed by the
     * receiver within 5 s (not at once). Before the close it may send PINGs (valid at any time)
     * and at most one ERROR, with code TIMEOUT; nothing else. */
    static const char *const env[] = {"XFER_IDLE_TIMEOUT=1", NULL};
    long long deadline;
    long long start;
    long long took;
    struct frame f;
    struct rx r;
    int errors = 0;
    int got;
    int fd;

    start_rx(&r, env);
    fd = wire_connect(r.port);
    start = now_ms();
    deadline = start + 5000;
    for (;;) {
        long long left = deadline - now_ms();

        got = left > 0 ? recv_frame(fd, &f, (int)left) : -ETIMEDOUT;
        if (got != 1)
            break;
        check_length(&f);
        if (f.type == W_PING)
            continue;
        cr_assert_eq(f.type, W_ERROR, "a silent connection got %s", describe(&f));
        cr_assert_eq(get_u16(f.payload), CODE_TIMEOUT, "a silent connection got %s, want code %u",
                     describe(&f), CODE_TIMEOUT);
        errors++;
        cr_assert_eq(errors, 1, "a silent connection got a second ERROR");
    }
    took = now_ms() - start;
    cr_assert_neq(got, -ETIMEDOUT, "the receiver did not close a silent connection within 5 s");
    cr_assert_eq(got, 0, "reading failed: %s", strerror(-got));
    cr_assert_geq(took, 800, "closed after %lld ms, before the 1 s timeout could have passed",
                  took);
    cr_log_info("silent connection closed after %lld ms, %s", took,
                errors ? "with ERROR TIMEOUT" : "without ERROR");
    close(fd);
    expect_rx_still_serves(&r);
}

/* ---- tests: whole sessions ------------------------------------------------ */

Test(wire, hand_written_session_matches_the_man_page_example_byte_for_byte)
{
    /* Checks the EXAMPLES section end to end: our encoder reproduces the page's HELLO, OFFER,
     * DATA, END and BYE bytes for hello.txt; the receiver answers with exactly the page's
     * WELCOME, ACCEPT, ACK and COMMITTED; the partial is .xfer/349d...a3.part meanwhile; and
     * after COMMITTED the file is there with its bytes, mtime and mode, and nothing else. */
    static const uint8_t man_hello[] = {0x00, 0x00, 0x00, 0x1c, 0x01, 0x00, 0x00, 0x00, 0x58,
                                        0x46, 0x45, 0x52, 0x00, 0x01, 0x00, 0x00, 0x00, 0x11,
                                        0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                        0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x00, 0x00, 0x01};
    static const uint8_t man_welcome[] = {0x00, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x00,
                                          0x58, 0x46, 0x45, 0x52, 0x00, 0x01, 0x00, 0x00};
    static const uint8_t man_offer[] = {
        0x00, 0x00, 0x00, 0x23, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x05, 0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x1d, 0xcd, 0x65, 0x00, 0x00, 0x00,
        0x01, 0xa4, 0x00, 0x09, 'h',  'e',  'l',  'l',  'o',  '.',  't',  'x',  't'};
    static const uint8_t man_accept[] = {0x00, 0x00, 0x00, 0x0c, 0x04, 0x00, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t man_data[] = {0x00, 0x00, 0x00, 0x19, 0x09, 0x00, 0x00, 0x00, 0x00,
                                       0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x00, 0x00, 0x95, 0x55, 0xe8, 0x55, 0x5c, 0x62, 0xdc,
                                       0xfd, 'h',  'e',  'l',  'l',  'o'};
    static const uint8_t man_end[] = {0x00, 0x00, 0x00, 0x14, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x01, 0xb5, 0xe9, 0xc1, 0xad, 0x07, 0x1b, 0x3e, 0x7f,
                                      0xc7, 0x79, 0xcf, 0xaa, 0x5e, 0x52, 0x38, 0x18};
    static const uint8_t man_ack[] = {0x00, 0x00, 0x00, 0x0c, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05};
    static const uint8_t man_committed[] = {0x00, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00};
    static const uint8_t man_bye[] = {0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t hello[] = "hello";
    struct offer o = {5, 1700000000, 500000000, 0644, "hello.txt", 9};
    uint8_t buf[128];
    struct frame f;
    struct stat st;
    struct rx r;
    mode_t mask;
    char *part;
    size_t n;
    int fd;

    /* Our encoder against the page. */
    n = enc_hello(buf, W_MAGIC, W_VERSION);
    cr_assert(n == sizeof(man_hello) && memcmp(buf, man_hello, n) == 0, "HELLO differs");
    n = enc_offer(buf, &o);
    cr_assert(n == sizeof(man_offer) && memcmp(buf, man_offer, n) == 0, "OFFER differs");
    n = enc_data_prefix(buf, 1, 0, XXH3_64bits_withSeed(hello, 5, 0), 5);
    memcpy(buf + n, hello, 5);
    n += 5;
    cr_assert(n == sizeof(man_data) && memcmp(buf, man_data, n) == 0,
              "DATA differs: XXH3-64(\"hello\", 0) is %016llx",
              (unsigned long long)XXH3_64bits_withSeed(hello, 5, 0));
    n = enc_end(buf, 1, XXH3_128bits(hello, 5));
    cr_assert(n == sizeof(man_end) && memcmp(buf, man_end, n) == 0, "END differs");
    n = enc_bye(buf, CODE_OK);
    cr_assert(n == sizeof(man_bye) && memcmp(buf, man_bye, n) == 0, "BYE differs");
    cr_assert_str_eq(state_key("hello.txt"), "349d47ee15f9d95fb85102175e7843a3");

    start_rx(&r, NULL);
    part = harness_strf("%s/.xfer/349d47ee15f9d95fb85102175e7843a3.part", r.dir);
    fd = wire_connect(r.port);
    send_all(fd, man_hello, sizeof(man_hello));
    expect_type(fd, &f, W_WELCOME);
    cr_assert(memcmp(f.raw, man_welcome, sizeof(man_welcome)) == 0,
              "WELCOME differs from the page's 16 bytes");
    send_all(fd, man_offer, sizeof(man_offer));
    expect_type(fd, &f, W_ACCEPT);
    cr_assert(memcmp(f.raw, man_accept, sizeof(man_accept)) == 0,
              "receiver sent %s, not the page's ACCEPT(1, 0)", describe(&f));
    cr_assert_eq(access(part, F_OK), 0, "no partial at %s after ACCEPT; .xfer holds:\n%s", part,
                 harness_ls(harness_strf("%s/.xfer", r.dir)));
    send_all(fd, man_data, sizeof(man_data));
    send_all(fd, man_end, sizeof(man_end));
    expect_type(fd, &f, W_ACK);
    cr_assert(memcmp(f.raw, man_ack, sizeof(man_ack)) == 0, "receiver sent %s, not ACK(1, 5)",
              describe(&f));
    expect_type(fd, &f, W_COMMITTED);
    cr_assert(memcmp(f.raw, man_committed, sizeof(man_committed)) == 0);
    /* COMMITTED is sent only after the rename, the journal's removal and .xfer's rmdir. */
    cr_assert_str_eq(harness_ls(r.dir), "hello.txt\n", "`ls -A` right after COMMITTED");
    send_all(fd, man_bye, sizeof(man_bye));
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);

    cr_assert_str_eq(harness_read_file(harness_strf("%s/hello.txt", r.dir)), "hello");
    cr_assert_eq(stat(harness_strf("%s/hello.txt", r.dir), &st), 0);
    cr_assert(st.st_mtim.tv_sec == 1700000000 && st.st_mtim.tv_nsec == 500000000,
              "mtime is %lld.%09ld, want the offered 1700000000.500000000",
              (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    mask = umask(022);
    umask(mask);
    cr_assert_eq(st.st_mode & 07777, 0644 & ~mask, "mode is %o, want %o",
                 (unsigned)(st.st_mode & 07777), (unsigned)(0644 & ~mask));
}

Test(wire, hand_written_session_delivers_a_three_chunk_file)
{
    /* Checks a session with chunks at 0, 1 MiB and 2 MiB (the last short), each hashed with its
     * offset as the seed, and END with the XXH3-128 of the whole: ACKs, COMMITTED, the file. */
    uint64_t size = 2 * W_CHUNK + 777;
    uint8_t *file = make_content(size, 61, "src/three.bin");
    struct offer o = {size, 1700000100, 0, 0600, "three.bin", 9};
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    send_chunks_from(fd, 1, file, size, 0);
    send_end(fd, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 1, size);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    free(file);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/three.bin"), harness_strf("%s/three.bin", r.dir)), 0,
        "three.bin differs from what was sent");
    harness_must_ls(r.dir, "three.bin\n");
}

Test(wire, bad_chunk_hash_gets_rewind_and_old_epoch_frames_are_ignored)
{
    /* Checks that DATA whose hash is wrong (chunk 1 of 4) is answered with REWIND(epoch 2,
     * offset 1 MiB, reason BAD_CHUNK); that DATA and END still carrying epoch 1 afterwards are
     * dropped silently (a stale chunk of garbage with a valid hash, and an END with a wrong
     * hash); and that resending from 1 MiB under epoch 2 completes with the right bytes. */
    uint64_t size = 3 * W_CHUNK + 100;
    uint8_t *file = make_content(size, 62, "src/rewind.bin");
    uint8_t *garbage = make_content(W_CHUNK, 63, "src/garbage.bin");
    struct offer o = {size, 1700000200, 0, 0644, "rewind.bin", 10};
    XXH128_hash_t wrong;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    send_chunk(fd, 1, file, 0, W_CHUNK, 0);
    send_chunk(fd, 1, file, W_CHUNK, W_CHUNK, 1); /* hash off by one bit */
    send_chunk(fd, 1, file, 2 * W_CHUNK, W_CHUNK, 0);
    expect_rewind(fd, 2, W_CHUNK, REASON_BAD_CHUNK);

    /* Sent "before we saw the REWIND": epoch 1, so they must change nothing. */
    send_data(fd, 1, W_CHUNK, garbage, W_CHUNK, 0);
    wrong = XXH3_128bits(file, size);
    wrong.low64 ^= 1;
    send_end(fd, 1, wrong);

    send_chunks_from(fd, 2, file, size, W_CHUNK);
    send_end(fd, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 2, size);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    free(file);
    free(garbage);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/rewind.bin"), harness_strf("%s/rewind.bin", r.dir)), 0,
        "rewind.bin differs from what was sent: a stale frame was used");
    harness_must_ls(r.dir, "rewind.bin\n");
}

Test(wire, end_with_a_wrong_file_hash_gets_rewind_verify_and_no_file)
{
    /* Checks that END whose XXH3-128 does not match is answered (after the ACK of the whole
     * file) with REWIND(epoch 2, offset 0, reason VERIFY), that nothing appears under the name
     * and the partial is emptied, and that sending the file again under epoch 2 then works. */
    uint64_t size = W_CHUNK + 10;
    uint8_t *file = make_content(size, 64, "src/verify.bin");
    struct offer o = {size, 1700000300, 0, 0644, "verify.bin", 10};
    char *part;
    XXH128_hash_t wrong;
    struct stat st;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    part = harness_strf("%s/.xfer/%s.part", r.dir, state_key("verify.bin"));
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    send_chunks_from(fd, 1, file, size, 0);
    wrong = XXH3_128bits(file, size);
    wrong.high64 ^= 0x8000000000000000ULL;
    send_end(fd, 1, wrong);
    expect_rewind(fd, 2, 0, REASON_VERIFY);
    cr_assert_neq(access(harness_strf("%s/verify.bin", r.dir), F_OK), 0,
                  "verify.bin appeared under its name after a hash mismatch");
    cr_assert_eq(stat(part, &st), 0, "no partial %s after REWIND VERIFY", part);
    cr_assert_eq(st.st_size, 0, "the partial still holds %lld bytes after REWIND VERIFY",
                 (long long)st.st_size);

    send_chunks_from(fd, 2, file, size, 0);
    send_end(fd, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 2, size);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    free(file);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/verify.bin"), harness_strf("%s/verify.bin", r.dir)), 0,
        "verify.bin differs from what was sent");
    harness_must_ls(r.dir, "verify.bin\n");
}

/* Offers each name on one connection, expecting REFUSE BAD_NAME for each, then BYE and a quiet
 * close; then expects --dir (a subdirectory of "base") and base untouched. */
static void expect_names_refused(const char *const names[], const size_t lens[], size_t count)
{
    char *base = harness_pathf("base");
    struct rx r;
    struct frame f;
    int fd;

    r.dir = harness_pathf("base/dst");
    r.pid = harness_must_recv(&r.port, r.dir, NULL, NULL, "recv");
    fd = wire_connect(r.port);
    say_hello(fd);
    for (size_t i = 0; i < count; i++) {
        struct offer o = {3, 1700000400, 0, 0644, names[i], lens[i]};
        char shown[64];
        size_t k = 0;

        /* Printable for the messages: the names hold NULs and controls. */
        for (size_t j = 0; j < lens[i] && k + 5 < sizeof(shown); j++) {
            unsigned char c = (unsigned char)names[i][j];

            if (c >= 0x21 && c < 0x7f)
                shown[k++] = (char)c;
            else
                k += (size_t)snprintf(shown + k, sizeof(shown) - k, "\\x%02x", c);
        }
        shown[k] = '\0';
        send_offer(fd, &o);
        next_frame(fd, &f, "REFUSE");
        cr_assert_eq(f.type, W_REFUSE, "name \"%s\": receiver sent %s, want REFUSE BAD_NAME", shown,
                     describe(&f));
        cr_assert_eq(get_u16(f.payload), CODE_BAD_NAME,
                     "name \"%s\": receiver sent %s, want code %u (BAD_NAME)", shown, describe(&f),
                     CODE_BAD_NAME);
    }
    /* After a REFUSE other than RETRY the connection is back to IDLE: BYE ends it cleanly. */
    send_bye(fd, 1);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    cr_assert_str_eq(harness_ls(r.dir), "", "--dir is not empty after bad names");
    cr_assert_str_eq(harness_ls(base), "dst\n", "something was created next to --dir");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, offer_with_a_bad_name_gets_refuse_bad_name_and_creates_nothing)
{
    /* Checks "../x", "a/b", ".xfer" and "": each is REFUSE code 4, and nothing is created
     * inside --dir or next to it. */
    static const char *const names[] = {"../x", "a/b", ".xfer", ""};
    static const size_t lens[] = {4, 3, 5, 0};

    expect_names_refused(names, lens, 4);
}

Test(wire, offer_with_a_control_bidi_or_invalid_utf8_name_gets_refuse_bad_name)
{
    /* Checks the rest of the page's name rules: ".", "..", an embedded NUL, C0 and C1 controls,
     * DEL, bidi controls (U+202E, U+2066, U+061C, U+200F), invalid UTF-8, an overlong "/" and a
     * surrogate are each REFUSE code 4, creating nothing. */
    static const char *const names[] = {".",
                                        "..",
                                        "a\0b",
                                        "tab\tname",
                                        "del\x7f",
                                        "nel\xc2\x85",
                                        "\xe2\x80\xae"
                                        "fdp.exe",
                                        "iso\xe2\x81\xa6",
                                        "alm\xd8\x9c",
                                        "rlm\xe2\x80\x8f",
                                        "bad\xff",
                                        "over\xc0\xaf",
                                        "sur\xed\xa0\x80"};
    static const size_t lens[] = {1, 2, 3, 8, 4, 5, 10, 6, 5, 6, 4, 6, 6};

    expect_names_refused(names, lens, sizeof(lens) / sizeof(lens[0]));
}

/* ---- tests: more of the conversation ------------------------------------------ */

Test(wire, chunk_at_the_wrong_offset_gets_rewind_bad_chunk)
{
    /* Checks that DATA of the current epoch that is not the next chunk (chunk 2 right after
     * chunk 0, its hash right for its offset) is not a protocol error but REWIND(epoch 2,
     * offset 1 MiB, BAD_CHUNK), and that continuing from there completes the file. */
    uint64_t size = 2 * W_CHUNK + 5;
    uint8_t *file = make_content(size, 65, "src/gap.bin");
    struct offer o = {size, 1700000500, 0, 0644, "gap.bin", 7};
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    send_chunk(fd, 1, file, 0, W_CHUNK, 0);
    send_chunk(fd, 1, file, 2 * W_CHUNK, 5, 0);
    expect_rewind(fd, 2, W_CHUNK, REASON_BAD_CHUNK);
    send_chunks_from(fd, 2, file, size, W_CHUNK);
    send_end(fd, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 2, size);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    free(file);
    cr_assert_eq(harness_cmp_files(harness_pathf("src/gap.bin"), harness_strf("%s/gap.bin", r.dir)),
                 0, "gap.bin differs from what was sent");
}

Test(wire, end_before_the_last_chunk_is_a_protocol_error)
{
    /* Checks that END of the current epoch arriving before every chunk is ERROR code 9. */
    uint64_t size = W_CHUNK + 5;
    uint8_t *file = make_content(size, 66, "src/short.bin");
    struct offer o = {size, 1700000600, 0, 0644, "short.bin", 9};
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    send_chunk(fd, 1, file, 0, W_CHUNK, 0);
    send_end(fd, 1, XXH3_128bits(file, size));
    /* ACKs of the first chunk may come before the ERROR. */
    {
        struct frame f;

        do {
            next_frame(fd, &f, "ERROR");
        } while (f.type == W_ACK);
        cr_assert(f.type == W_ERROR && get_u16(f.payload) == CODE_PROTOCOL,
                  "receiver sent %s after an early END, want ERROR code %u", describe(&f),
                  CODE_PROTOCOL);
    }
    expect_eof(fd, CLOSE_AFTER_ERROR_MS, "after its ERROR");
    close(fd);
    free(file);
    cr_assert_neq(access(harness_strf("%s/short.bin", r.dir), F_OK), 0,
                  "short.bin appeared under its name");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

/* Puts size bytes from seed at dir/NAME (as if received earlier) and returns their XXH3-128. */
static XXH128_hash_t put_existing(const struct rx *r, const char *name, uint64_t size,
                                  uint64_t seed)
{
    char *rel = harness_strf("existing/%s", name);
    uint8_t *bytes = make_content(size, seed, rel);
    XXH128_hash_t h = XXH3_128bits(bytes, size);

    free(bytes);
    cr_assert_eq(harness_make_file(harness_strf("%s/%s", r->dir, name), (long long)size, seed), 0);
    return h;
}

Test(wire, same_size_existing_file_gets_need_hash_and_complete_when_identical)
{
    /* Checks EXISTING FILES: an OFFER for a name that exists with the same size is answered
     * NEED_HASH; FILE_HASH with the existing file's XXH3-128 is answered COMPLETE, and the file
     * is left as it was (same inode, no .xfer). */
    uint64_t size = W_CHUNK + 33;
    struct offer o = {size, 1700000700, 0, 0644, "same.bin", 8};
    uint8_t buf[W_HDR + 16];
    XXH128_hash_t h;
    struct stat before;
    struct stat after;
    struct frame f;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    h = put_existing(&r, "same.bin", size, 67);
    cr_assert_eq(stat(harness_strf("%s/same.bin", r.dir), &before), 0);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_type(fd, &f, W_NEED_HASH);
    send_all(fd, buf, enc_file_hash(buf, h));
    expect_type(fd, &f, W_COMPLETE);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    cr_assert_eq(stat(harness_strf("%s/same.bin", r.dir), &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino, "same.bin was replaced");
    harness_must_ls(r.dir, "same.bin\n");
}

Test(wire, same_size_existing_file_gets_refuse_exists_when_different)
{
    /* Checks that after NEED_HASH a FILE_HASH that differs from the existing file's is answered
     * REFUSE code 1 (EXISTS) without --overwrite, leaving the file alone. */
    uint64_t size = W_CHUNK + 33;
    struct offer o = {size, 1700000800, 0, 0644, "other.bin", 9};
    uint8_t buf[W_HDR + 16];
    XXH128_hash_t h;
    struct frame f;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    h = put_existing(&r, "other.bin", size, 68);
    h.low64 ^= 1;
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_type(fd, &f, W_NEED_HASH);
    send_all(fd, buf, enc_file_hash(buf, h));
    expect_type(fd, &f, W_REFUSE);
    cr_assert_eq(get_u16(f.payload), CODE_EXISTS, "receiver sent %s, want code %u", describe(&f),
                 CODE_EXISTS);
    send_bye(fd, CODE_EXISTS);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("existing/other.bin"), harness_strf("%s/other.bin", r.dir)),
        0, "other.bin was modified");
    harness_must_ls(r.dir, "other.bin\n");
}

Test(wire, bye_status_is_the_exit_status_of_recv_once)
{
    /* Checks the BYE table: a `recv --once` session that ends with BYE OK exits 0, VERIFY 5, and
     * IO or EXISTS 4. */
    static const struct {
        uint16_t status;
        int exit_code;
    } cases[] = {{CODE_OK, 0}, {CODE_VERIFY, 5}, {CODE_IO, 4}, {CODE_EXISTS, 4}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *name = harness_strf("recv%zu", i);
        pid_t pid;
        int port;
        int rc;
        int fd;

        pid = harness_must_recv(&port, harness_pathf("dst%zu", i), (const char *[]){"--once", NULL},
                                NULL, name);
        fd = wire_connect(port);
        say_hello(fd);
        send_bye(fd, cases[i].status);
        expect_eof(fd, REPLY_MS, "after BYE");
        close(fd);
        rc = harness_wait(pid, REPLY_MS);
        cr_assert_eq(rc, cases[i].exit_code,
                     "recv --once after BYE status %u: exit %d, want %d (-%d: still running); "
                     "stderr:\n%s",
                     cases[i].status, rc, cases[i].exit_code, ETIMEDOUT, harness_log(name));
    }
}

Test(wire, error_from_the_sender_makes_the_receiver_close_quietly)
{
    /* Checks that the receiver, on getting ERROR, closes the connection without answering it
     * (PINGs aside), and keeps serving. */
    uint8_t buf[64];
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_all(fd, buf, enc_error(buf, CODE_IO, "test gives up"));
    expect_eof(fd, REPLY_MS, "after our ERROR");
    close(fd);
    expect_rx_still_serves(&r);
}

/* Sends chunks [0, n) of file for o on a fresh session, waits for the ACK of all of them, and
 * drops the connection without BYE, as a killed sender would. */
static void leave_partial(const struct rx *r, const struct offer *o, const uint8_t *file,
                          uint32_t nchunks)
{
    uint64_t target = (uint64_t)nchunks * W_CHUNK;
    struct frame f;
    int fd = wire_connect(r->port);

    say_hello(fd);
    send_offer(fd, o);
    expect_accept(fd, 1, 0);
    for (uint32_t i = 0; i < nchunks; i++)
        send_chunk(fd, 1, file, (uint64_t)i * W_CHUNK, W_CHUNK, 0);
    for (;;) {
        next_frame(fd, &f, "the ACK of the chunks sent");
        cr_assert_eq(f.type, W_ACK, "receiver sent %s, want ACK", describe(&f));
        if (get_u64(f.payload + 4) == target)
            break;
    }
    close(fd);
}

/* Offers o on a fresh connection and returns it with the answer in *f. While the receiver
 * answers REFUSE RETRY (our previous connection for the name is still closing) it reconnects
 * after the page's first backoff step, 100 ms, up to REPLY_MS in all. */
static int offer_again(const struct rx *r, const struct offer *o, struct frame *f)
{
    long long deadline = now_ms() + REPLY_MS;
    struct timespec backoff = {0, 100 * 1000000L};

    for (;;) {
        int fd = wire_connect(r->port);

        say_hello(fd);
        send_offer(fd, o);
        next_frame(fd, f, "the answer to the OFFER");
        if (f->type != W_REFUSE || get_u16(f->payload) != CODE_RETRY)
            return fd;
        close(fd);
        cr_assert_lt(now_ms(), deadline, "still REFUSE RETRY after %d ms", REPLY_MS);
        (void)nanosleep(&backoff, NULL); /* an early wake-up only retries sooner */
    }
}

Test(wire, reconnecting_sender_gets_accept_at_the_confirmed_offset)
{
    /* Checks RESUME by hand: after 3 chunks of a 5-chunk file were ACKed and the connection
     * dropped, the same OFFER on a new connection gets ACCEPT(1, 3 MiB), and sending the rest
     * with END over the whole file commits the right bytes. */
    uint64_t size = 4 * W_CHUNK + 3;
    uint8_t *file = make_content(size, 69, "src/resume.bin");
    struct offer o = {size, 1700000900, 123, 0644, "resume.bin", 10};
    struct frame f;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    leave_partial(&r, &o, file, 3);
    fd = offer_again(&r, &o, &f);
    cr_assert(f.type == W_ACCEPT && get_u32(f.payload) == 1 &&
                  get_u64(f.payload + 4) == 3 * W_CHUNK,
              "receiver sent %s, want ACCEPT(epoch 1, offset %u)", describe(&f), 3 * W_CHUNK);
    send_chunks_from(fd, 1, file, size, 3 * W_CHUNK);
    send_end(fd, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 1, size);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    free(file);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/resume.bin"), harness_strf("%s/resume.bin", r.dir)), 0,
        "resume.bin differs from what was sent");
    harness_must_ls(r.dir, "resume.bin\n");
}

Test(wire, offer_with_another_mtime_starts_the_partial_over)
{
    /* Checks SOURCE IDENTITY by hand: after 2 chunks were ACKed under one mtime, an OFFER of the
     * same name and size with an mtime 1 ns later gets ACCEPT(1, 0), and the file committed is
     * the new content. */
    uint64_t size = 3 * W_CHUNK;
    uint8_t *old = make_content(size, 70, "src/old.bin");
    uint8_t *file = make_content(size, 71, "src/ident.bin");
    struct offer o = {size, 1700001000, 5, 0644, "ident.bin", 9};
    struct frame f;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    leave_partial(&r, &o, old, 2);
    o.mtime_nsec = 6;
    fd = offer_again(&r, &o, &f);
    cr_assert(f.type == W_ACCEPT && get_u32(f.payload) == 1 && get_u64(f.payload + 4) == 0,
              "receiver sent %s, want ACCEPT(epoch 1, offset 0)", describe(&f));
    send_chunks_from(fd, 1, file, size, 0);
    send_end(fd, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 1, size);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
    free(old);
    free(file);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/ident.bin"), harness_strf("%s/ident.bin", r.dir)), 0,
        "ident.bin is not the new content");
}

Test(wire, ping_before_hello_is_ignored)
{
    /* Checks that PING, valid in every state, may come before HELLO: it gets no answer and the
     * HELLO after it gets WELCOME. */
    uint8_t buf[W_HDR];
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    send_all(fd, buf, (size_t)(put_header(buf, 0, W_PING) - buf));
    say_hello(fd);
    send_bye(fd, CODE_OK);
    expect_eof(fd, REPLY_MS, "after BYE");
    close(fd);
}

Test(wire, sigterm_sends_error_shutdown_on_every_connection)
{
    /* Checks that a receiver sent SIGTERM sends ERROR code 11 (SHUTDOWN) and closes both an idle
     * connection and one in the middle of a file, exits 0, and keeps that file's partial. */
    uint64_t size = 3 * W_CHUNK;
    uint8_t *file = make_content(size, 72, "src/down.bin");
    struct offer o = {size, 1700001100, 0, 0644, "down.bin", 8};
    struct frame f;
    struct rx r;
    int idle;
    int busy;
    int rc;

    start_rx(&r, NULL);
    idle = wire_connect(r.port);
    say_hello(idle);
    busy = wire_connect(r.port);
    say_hello(busy);
    send_offer(busy, &o);
    expect_accept(busy, 1, 0);
    send_chunk(busy, 1, file, 0, W_CHUNK, 0);
    do {
        next_frame(busy, &f, "the ACK of the first chunk");
    } while (f.type == W_ACK && get_u64(f.payload + 4) < W_CHUNK);
    cr_assert(f.type == W_ACK, "receiver sent %s, want ACK", describe(&f));

    cr_assert_eq(harness_kill(r.pid, SIGTERM), 0);
    expect_error_and_close(idle, CODE_SHUTDOWN, "on the idle connection after SIGTERM");
    expect_error_and_close(busy, CODE_SHUTDOWN, "on the busy connection after SIGTERM");
    close(idle);
    close(busy);
    free(file);
    rc = harness_wait(r.pid, REPLY_MS);
    cr_assert_eq(rc, 0, "exit %d after SIGTERM, want 0; stderr:\n%s", rc, harness_log("recv"));
    cr_assert_not_null(harness_find_one(harness_strf("%s/.xfer", r.dir), ".part"),
                       "the partial of down.bin is gone");
}

Test(wire, partial_state_is_private)
{
    /* Checks FILES: after ACCEPT, .xfer is mode 0700 and HEX.part and HEX.journal are 0600. */
    struct offer o = {5, 1700001200, 0, 0644, "modes.txt", 9};
    char *base;
    struct stat st;
    struct rx r;
    int fd;

    start_rx(&r, NULL);
    base = harness_strf("%s/.xfer/%s", r.dir, state_key("modes.txt"));
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    cr_assert_eq(stat(harness_strf("%s/.xfer", r.dir), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0700, ".xfer has mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(stat(harness_strf("%s.part", base), &st), 0, "no %s.part", base);
    cr_assert_eq(st.st_mode & 07777, 0600, ".part has mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(stat(harness_strf("%s.journal", base), &st), 0, "no %s.journal", base);
    cr_assert_eq(st.st_mode & 07777, 0600, ".journal has mode %o", (unsigned)(st.st_mode & 07777));
    close(fd);
}

/* Reads a whole (small, binary) file into a malloc'ed buffer; *len gets its length. */
static uint8_t *slurp(const char *path, size_t *len)
{
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    FILE *fp = fopen(path, "rb");

    cr_assert_not_null(buf);
    cr_assert_not_null(fp, "cannot open %s: %s", path, strerror(errno));
    *len = fread(buf, 1, cap, fp);
    cr_assert(feof(fp), "%s is larger than 1 MiB", path);
    fclose(fp);
    return buf;
}

Test(wire, journal_on_disk_follows_the_man_page_layout)
{
    /* Checks JOURNAL FORMAT on a real journal, once ACK(3 MiB) has confirmed 3 chunks: the
     * header (XJNL, version 1, chunk size, this xxHash's version and state size, the offered
     * identity, XXH3-64 checksum), then valid XJRC records whose chunk hashes are ours, the last
     * confirming 3 MiB with a state image whose extSecret is zero and that, re-pointed at the
     * default secret, digests to the XXH3-128 of those 3 MiB. */
    uint64_t size = 5 * W_CHUNK;
    uint64_t confirmed = 3 * W_CHUNK;
    uint8_t *file = make_content(size, 73, "src/jnl.bin");
    struct offer o = {size, -12345, 999999999, 0644, "jnl.bin", 7};
    uint64_t hashes[8];
    uint64_t nhashes = 0;
    uint64_t last_confirmed = 0;
    XXH3_state_t *st = XXH3_createState();
    XXH3_state_t *fresh = XXH3_createState();
    XXH128_hash_t want;
    XXH128_hash_t got;
    struct frame f;
    struct rx r;
    uint8_t *j;
    size_t len;
    size_t pos;
    uint32_t L;
    int records = 0;
    int fd;

    cr_assert(st != NULL && fresh != NULL);
    start_rx(&r, NULL);
    fd = wire_connect(r.port);
    say_hello(fd);
    send_offer(fd, &o);
    expect_accept(fd, 1, 0);
    for (uint64_t off = 0; off < confirmed; off += W_CHUNK)
        send_chunk(fd, 1, file, off, W_CHUNK, 0);
    do {
        next_frame(fd, &f, "ACK of 3 MiB");
        cr_assert_eq(f.type, W_ACK, "receiver sent %s, want ACK", describe(&f));
    } while (get_u64(f.payload + 4) < confirmed);

    /* ACK comes only after the record vouching for it is synced, so it is on disk now. */
    j = slurp(harness_strf("%s/.xfer/%s.journal", r.dir, state_key("jnl.bin")), &len);
    cr_assert_geq(len, 50, "journal of %zu bytes", len);
    cr_assert_eq(get_u32(j), 0x584A4E4Cu, "header magic %#x", get_u32(j));
    cr_assert_eq(get_u32(j + 4), 1, "journal version %u", get_u32(j + 4));
    cr_assert_eq(get_u32(j + 8), W_CHUNK, "chunk_size %u", get_u32(j + 8));
    cr_assert_eq(get_u32(j + 12), XXH_versionNumber(), "xxh_version %u, this xxHash is %u",
                 get_u32(j + 12), XXH_versionNumber());
    cr_assert_eq(get_u32(j + 16), sizeof(XXH3_state_t), "state_size %u, sizeof is %zu",
                 get_u32(j + 16), sizeof(XXH3_state_t));
    cr_assert_eq(get_u64(j + 20), size);
    cr_assert_eq((int64_t)get_u64(j + 28), -12345, "mtime_sec %lld",
                 (long long)(int64_t)get_u64(j + 28));
    cr_assert_eq(get_u32(j + 36), 999999999u);
    L = get_u16(j + 40);
    cr_assert_eq(L, 7);
    cr_assert_geq(len, 50 + L);
    cr_assert(memcmp(j + 42, "jnl.bin", 7) == 0, "journal name differs");
    cr_assert_eq(get_u64(j + 42 + L), XXH3_64bits(j, 42 + L), "header checksum is wrong");

    pos = 50 + L;
    while (pos < len) {
        const uint8_t *rec = j + pos;
        uint64_t from;
        uint32_t n;
        uint32_t S;
        size_t reclen;

        cr_assert_geq(len - pos, 28, "a torn record at %zu", pos);
        cr_assert_eq(get_u32(rec), 0x584A5243u, "record magic %#x at %zu", get_u32(rec), pos);
        from = get_u64(rec + 4);
        n = get_u32(rec + 12);
        S = get_u32(rec + 24);
        cr_assert_eq(S, sizeof(XXH3_state_t), "state_len %u", S);
        reclen = 28 + (size_t)S + 8 * (size_t)n + 8;
        cr_assert_geq(len - pos, reclen, "a torn record at %zu", pos);
        cr_assert_eq(get_u64(rec + reclen - 8), XXH3_64bits(rec, reclen - 8),
                     "record checksum wrong at %zu", pos);
        cr_assert_leq(from, nhashes, "record from_chunk %llu beyond %llu known hashes",
                      (unsigned long long)from, (unsigned long long)nhashes);
        cr_assert_leq(from + n, sizeof(hashes) / sizeof(hashes[0]));
        for (uint32_t k = 0; k < n; k++)
            hashes[from + k] = get_u64(rec + 28 + S + 8 * k);
        nhashes = from + n;
        last_confirmed = get_u64(rec + 16);
        cr_assert_eq(nhashes, (last_confirmed + W_CHUNK - 1) / W_CHUNK,
                     "record confirms %llu with %llu chunk hashes",
                     (unsigned long long)last_confirmed, (unsigned long long)nhashes);
        if (last_confirmed == confirmed) {
            static const uint8_t zero[sizeof(void *)];

            /* The image, with its secret pointer re-pointed as the page says. */
            memcpy(st, rec + 28, S);
            cr_assert(memcmp((const uint8_t *)rec + 28 + offsetof(XXH3_state_t, extSecret), zero,
                             sizeof(zero)) == 0,
                      "the stored state's extSecret is not zero");
            cr_assert_eq(XXH3_128bits_reset(fresh), XXH_OK);
            st->extSecret = fresh->extSecret;
            got = XXH3_128bits_digest(st);
            want = XXH3_128bits(file, confirmed);
            cr_assert(got.high64 == want.high64 && got.low64 == want.low64,
                      "the journal's hash state does not digest to the XXH3-128 of the "
                      "confirmed prefix");
        }
        records++;
        pos += reclen;
    }
    cr_assert_gt(records, 0, "no record after ACK(%llu)", (unsigned long long)confirmed);
    cr_assert_eq(last_confirmed, confirmed, "the last record confirms %llu",
                 (unsigned long long)last_confirmed);
    for (uint64_t k = 0; k < nhashes; k++)
        cr_assert_eq(hashes[k], XXH3_64bits_withSeed(file + k * W_CHUNK, W_CHUNK, k * W_CHUNK),
                     "journal hash of chunk %llu differs from the chunk's", (unsigned long long)k);

    send_chunks_from(fd, 1, file, size, confirmed);
    send_end(fd, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(fd, 1, size);
    close(fd);
    free(j);
    free(file);
    XXH3_freeState(st);
    XXH3_freeState(fresh);
    harness_must_ls(r.dir, "jnl.bin\n");
}
