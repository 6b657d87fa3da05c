/* Every frame type in every receiver state (xfer-protocol(7), STATES): a frame the state does
 * not expect is answered ERROR code 9 (PROTOCOL) and the connection closed, PING is ignored and
 * ERROR closes quietly; and whatever a connection did, the receiver goes on serving others. Run
 * under the ASan build (CI does), this is also the audit for the class of bug where a frame
 * accepted in the wrong state starts a second job on a file whose first one is still in flight.
 *
 * States in which a job is in flight are held there by tests/tools/xfershim.c, which makes the
 * job wait (XFERSHIM_FINISH_FLAG) until the frame under test has been answered; ENDED, where
 * writes and syncs are in flight, is reached by sending the file, END and the frame under test in
 * one write: the receiver reads them in one go, before any job can land. */
#include "harness.h"
#include "wire.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

TestSuite(states, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

/* Size of the files the cases offer: two chunks and a bit, so a file can be half received. */
#define CASE_SIZE (W_CHUNK + 4000)

enum rx_state {
    ST_HELLO,        /* connected, nothing sent */
    ST_AUTH,         /* WELCOME received, no proof sent */
    ST_IDLE,         /* handshake done */
    ST_OPENING,      /* OFFER read: the open job held in the shim */
    ST_CHECKING,     /* NEED_HASH received, no FILE_HASH sent */
    ST_HASH_MATCHED, /* FILE_HASH equal to the existing file's: the forget job held */
    ST_HASH_DIFFERS, /* FILE_HASH different (receiver has --overwrite): the open job held */
    ST_RECEIVING,    /* ACCEPT received, no DATA sent */
    ST_MID_FILE,     /* first chunk sent and confirmed */
    ST_ENDED,        /* the whole file and END just read: writes and syncs in flight */
    ST_COMMITTING,   /* all confirmed, the commit job held in the shim */
    ST_RESETTING,    /* all confirmed but the file hash wrong, the reset job held */
    ST_BYE,          /* BYE just read */
    ST_COUNT
};

static const char *const state_names[ST_COUNT] = {
    "HELLO",    "AUTH",      "IDLE",   "OPENING", "CHECKING", "HASH_MATCHED", "HASH_DIFFERS",
    "RECEIVING", "MID_FILE", "ENDED", "COMMITTING", "RESETTING", "BYE",
};

struct rx {
    char *dir;
    pid_t pid;
    int port;
    char *hold;    /* while it exists, the receiver's commit and reset jobs wait (xfershim) */
    char *holding; /* made by each job that starts to wait */
};

struct frame {
    uint8_t b[W_HDR + W_DATA_FIXED + 64];
    size_t len;
};

/* The file a case offers: its name, its bytes (the harness's seeded content) and their hash. */
struct subject {
    char name[64];
    uint8_t *bytes;
    XXH128_hash_t hash;
};

static void start_rx(struct rx *r, int overwrite)
{
    const char *asan = getenv("ASAN_OPTIONS");

    r->dir = harness_pathf("dst");
    /* The forget job looks for leftovers only where a state directory exists, and a job that
     * lands late must not remove it under the next case: a file of no transfer keeps it. */
    cr_assert_eq(harness_mkdirs(harness_strf("%s/.xfer", r->dir)), 0);
    cr_assert_eq(chmod(harness_strf("%s/.xfer", r->dir), 0700), 0);
    cr_assert_eq(harness_write_file(harness_strf("%s/.xfer/keep", r->dir), "", 0), 0);
    r->hold = harness_pathf("hold");
    r->holding = harness_pathf("holding");
    /* --overwrite: a different FILE_HASH then opens the file, a path the default never takes.
     * Under ASan the preloaded shim must be allowed before the sanitizer's runtime. */
    r->pid = harness_must_recv(
        &r->port, r->dir, overwrite ? (const char *[]){"--overwrite", NULL} : NULL,
        (const char *[]){"LD_PRELOAD=" XFERSHIM_LIB, harness_strf("XFERSHIM_FINISH_FLAG=%s", r->hold),
                         harness_strf("XFERSHIM_BLOCKED=%s", r->holding),
                         harness_strf("ASAN_OPTIONS=%s%sverify_asan_link_order=0",
                                      asan ? asan : "", asan && *asan ? ":" : ""),
                         NULL},
        "recv");
}

static void subject_init(struct subject *s, enum rx_state st, uint8_t type)
{
    char *path;
    FILE *fp;

    snprintf(s->name, sizeof(s->name), "%s-%s.bin", state_names[st], w_type_names[type]);
    path = harness_must_src(harness_strf("src/%s", s->name), CASE_SIZE, 1000 + st * 32 + type);
    s->bytes = malloc(CASE_SIZE);
    cr_assert_not_null(s->bytes);
    fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    cr_assert_eq(fread(s->bytes, 1, CASE_SIZE, fp), CASE_SIZE);
    fclose(fp);
    s->hash = XXH3_128bits(s->bytes, CASE_SIZE);
}

static struct frame enc_offer(const char *name)
{
    struct w_offer o = {CASE_SIZE, 1700000000, 0, 0644, name, strlen(name)};
    struct frame f;

    cr_assert_lt(W_HDR + 26 + o.name_len, sizeof(f.b));
    f.len = w_enc_offer(f.b, &o);
    return f;
}

/* DATA for the chunk at offset of s, whose bytes follow the frame in a separate buffer. */
static uint8_t *enc_chunk(const struct subject *s, uint32_t epoch, uint64_t offset, size_t *len)
{
    uint64_t n = CASE_SIZE - offset < W_CHUNK ? CASE_SIZE - offset : W_CHUNK;
    uint8_t *b = malloc(W_HDR + W_DATA_FIXED + n);
    size_t hl;

    cr_assert_not_null(b);
    hl = w_enc_data_prefix(b, epoch, offset, XXH3_64bits_withSeed(s->bytes + offset, n, offset),
                           (uint32_t)n);
    memcpy(b + hl, s->bytes + offset, n);
    *len = hl + n;
    return b;
}

/* Each frame a sender or a receiver can send, well formed, with plausible fields. */
static struct frame enc_probe(const struct w_conn *c, uint8_t type)
{
    static const uint8_t bytes[10] = "0123456789";
    XXH128_hash_t h = {.low64 = 0x1111, .high64 = 0x2222};
    struct frame f;
    uint8_t *p = f.b + W_HDR;

    memset(&f, 0, sizeof(f));
    switch (type) {
    case W_HELLO:
        f.len = w_enc_hello(f.b, c, W_MAGIC, W_VERSION);
        return f;
    case W_WELCOME:
        p = w_put_u32(p, W_MAGIC);
        p = w_put_u16(p, W_VERSION);
        p = w_put_u16(p, 0);
        p = w_put_u16(p, W_CIPHER_XCHACHA20);
        memset(p, 7, 2 * W_KEY);
        p += 2 * W_KEY;
        break;
    case W_OFFER:
        return enc_offer("probe-offer.bin");
    case W_ACCEPT:
    case W_ACK:
        p = w_put_u32(p, 1);
        p = w_put_u64(p, 0);
        break;
    case W_REWIND:
        p = w_put_u32(p, 2);
        p = w_put_u64(p, 0);
        p = w_put_u16(p, 1);
        break;
    case W_REFUSE:
    case W_ERROR:
        p = w_put_u16(p, type == W_ERROR ? CODE_IO : CODE_EXISTS);
        p = w_put_u16(p, 5);
        p = w_put_bytes(p, "probe", 5);
        break;
    case W_FILE_HASH:
        f.len = w_enc_file_hash(f.b, h);
        return f;
    case W_DATA:
        /* Epoch 99 was never announced: in a state that takes DATA that alone is the error. */
        f.len = w_enc_data_prefix(f.b, 99, 0, XXH3_64bits_withSeed(bytes, sizeof(bytes), 0),
                                  sizeof(bytes));
        memcpy(f.b + f.len, bytes, sizeof(bytes));
        f.len += sizeof(bytes);
        return f;
    case W_END:
        f.len = w_enc_end(f.b, 1, h);
        return f;
    case W_BYE:
        f.len = w_enc_bye(f.b, CODE_OK);
        return f;
    case W_AUTH:
        memset(p, 0x42, W_KEY);
        p += W_KEY;
        break;
    default: /* COMPLETE, NEED_HASH, COMMITTED, PING: no payload */
        break;
    }
    w_put_header(f.b, (uint32_t)(p - (f.b + W_HDR)), type);
    f.len = (size_t)(p - f.b);
    return f;
}

/* Sends the frames in one write, each sealed once the handshake is done. */
static void send_batch(struct w_conn *c, const uint8_t *const frames[], const size_t lens[],
                       size_t n)
{
    size_t total = 0;
    uint8_t *out = NULL;

    for (size_t i = 0; i < n; i++) {
        size_t rl = lens[i];
        uint8_t *rec = c->tx_sealed ? w_seal(c, frames[i], lens[i], &rl) : NULL;

        out = realloc(out, total + rl);
        cr_assert_not_null(out);
        memcpy(out + total, rec != NULL ? rec : frames[i], rl);
        total += rl;
        free(rec);
    }
    w_send_raw(c, out, total);
    free(out);
}

static void send_one(struct w_conn *c, const struct frame *f)
{
    const uint8_t *b = f->b;

    send_batch(c, &b, &f->len, 1);
}

/* The next frame that is neither PING nor an ACK (confirmations of what the case sent may
 * come at any time before the answer to the probe). */
static void next_answer(struct w_conn *c, struct w_frame *f, const char *what)
{
    do
        w_next(c, f, what);
    while (f->type == W_ACK);
}

/* Sends the frames in one write and waits until a job of the receiver's is held in the shim. */
static void send_and_hold(struct w_conn *c, const struct rx *r, const uint8_t *const frames[],
                          const size_t lens[], size_t n, const char *what)
{
    cr_assert_eq(harness_write_file(r->hold, "", 0), 0);
    (void)unlink(r->holding);
    send_batch(c, frames, lens, n);
    cr_assert_eq(harness_wait_file(r->holding, r->pid, REPLY_MS), 0,
                 "the receiver never started to %s; stderr:\n%s", what, harness_log("recv"));
}

/* Brings c to state st (the receiver's part of it being done or, for transient states, just
 * started) and sends probe in the same write as the last step's frame. */
static void drive(struct w_conn *c, const struct rx *r, enum rx_state st, const struct subject *s,
                  const struct frame *probe)
{
    struct frame step = {.len = 0};
    uint8_t *chunk0 = NULL;
    uint8_t *chunk1 = NULL;
    size_t len0 = 0;
    size_t len1 = 0;
    struct w_frame f;

    if (st == ST_HELLO) {
        send_one(c, probe);
        return;
    }
    if (st == ST_AUTH) {
        w_hello(c);
        send_one(c, probe);
        return;
    }
    w_handshake(c);
    switch (st) {
    case ST_IDLE:
        send_one(c, probe);
        return;
    case ST_OPENING:
        step = enc_offer(s->name);
        send_and_hold(c, r, (const uint8_t *[]){step.b}, &step.len, 1, "open the file");
        send_one(c, probe);
        return;
    case ST_CHECKING:
    case ST_HASH_MATCHED:
    case ST_HASH_DIFFERS: {
        XXH128_hash_t h = s->hash;

        cr_assert_eq(harness_write_file(harness_strf("%s/%s", r->dir, s->name), s->bytes,
                                        CASE_SIZE),
                     0);
        step = enc_offer(s->name);
        send_one(c, &step);
        w_expect_type(c, &f, W_NEED_HASH);
        if (st == ST_CHECKING) {
            send_one(c, probe);
            return;
        }
        if (st == ST_HASH_DIFFERS)
            h.low64 ^= 1;
        step.len = w_enc_file_hash(step.b, h);
        send_and_hold(c, r, (const uint8_t *[]){step.b}, &step.len, 1,
                      st == ST_HASH_DIFFERS ? "open the file" : "forget the file's leftovers");
        send_one(c, probe);
        return;
    }
    case ST_BYE:
        step.len = w_enc_bye(step.b, CODE_OK);
        break;
    default: { /* the receiving states */
        struct frame offer = enc_offer(s->name);

        send_one(c, &offer);
        w_expect_type(c, &f, W_ACCEPT);
        if (st == ST_RECEIVING) {
            send_one(c, probe);
            return;
        }
        chunk0 = enc_chunk(s, 1, 0, &len0);
        if (st == ST_MID_FILE) {
            send_batch(c, (const uint8_t *[]){chunk0}, (size_t[]){len0}, 1);
            w_expect_type(c, &f, W_ACK);
            free(chunk0);
            send_one(c, probe);
            return;
        }
        {
            XXH128_hash_t h = s->hash;

            if (st == ST_RESETTING)
                h.high64 ^= 1;
            chunk1 = enc_chunk(s, 1, W_CHUNK, &len1);
            step.len = w_enc_end(step.b, 1, h);
            if (st == ST_ENDED) {
                send_batch(c, (const uint8_t *[]){chunk0, chunk1, step.b, probe->b},
                           (size_t[]){len0, len1, step.len, probe->len}, 4);
            } else {
                /* Every chunk written and confirmed, then the job that finishes the file
                 * (commit or reset) starts and waits in the shim: the probe finds it there. */
                send_and_hold(c, r, (const uint8_t *[]){chunk0, chunk1, step.b},
                              (size_t[]){len0, len1, step.len}, 3,
                              st == ST_COMMITTING ? "commit the file" : "restart the file");
                send_one(c, probe);
            }
            free(chunk0);
            free(chunk1);
            return;
        }
    }
    }
    send_batch(c, (const uint8_t *[]){step.b, probe->b}, (size_t[]){step.len, probe->len}, 2);
}

/* Whether the probe is what st expects: the normal conversation, tested elsewhere. */
static int expected_here(enum rx_state st, uint8_t type)
{
    return (st == ST_HELLO && type == W_HELLO) || (st == ST_AUTH && type == W_AUTH) ||
           (st == ST_IDLE && (type == W_OFFER || type == W_BYE)) ||
           (st == ST_CHECKING && type == W_FILE_HASH);
}

static void expect_protocol_error(struct w_conn *c, enum rx_state st, uint8_t type)
{
    const char *what = harness_strf("%s in state %s", w_type_names[type], state_names[st]);
    struct w_frame f;
    int r;

    if (st == ST_BYE) {
        /* The session is over: the receiver may close before it reads the probe. */
        r = w_recv(c, &f, REPLY_MS);
        while (r == 1 && (f.type == W_PING || f.type == W_ACK))
            r = w_recv(c, &f, REPLY_MS);
        cr_assert(r == 0 || (r == 1 && f.type == W_ERROR && w_get_u16(f.payload) == CODE_PROTOCOL),
                  "after %s the receiver sent %s, want ERROR code 9 or a close", what,
                  r == 1 ? w_describe(&f) : "nothing");
        if (r == 1)
            w_expect_eof(c, CLOSE_AFTER_ERROR_MS, what);
        return;
    }
    next_answer(c, &f, harness_strf("the answer to %s", what));
    cr_assert(f.type == W_ERROR && w_get_u16(f.payload) == CODE_PROTOCOL,
              "after %s the receiver sent %s, want ERROR code 9 (PROTOCOL); stderr:\n%s", what,
              w_describe(&f), harness_log("recv"));
    w_expect_eof(c, CLOSE_AFTER_ERROR_MS, what);
}

static void expect_quiet_close(struct w_conn *c, enum rx_state st)
{
    const char *what = harness_strf("ERROR in state %s", state_names[st]);
    struct w_frame f;
    int r = w_recv(c, &f, REPLY_MS);

    while (r == 1 && (f.type == W_PING || f.type == W_ACK))
        r = w_recv(c, &f, REPLY_MS);
    cr_assert_eq(r, 0, "after %s the receiver sent %s, want the connection closed", what,
                 r == 1 ? w_describe(&f) : "nothing");
}

/* One case: the probe in state st, then the receiver still alive. */
static void run_case(const struct rx *r, enum rx_state st, uint8_t type)
{
    struct subject s;
    struct frame probe;
    struct w_conn c;

    subject_init(&s, st, type);
    w_connect(&c, r->port, HARNESS_SECRET, 0, "recv");
    probe = enc_probe(&c, type);
    if (type == W_PING) {
        /* Ignored anywhere: the frame after it (COMMITTED, which no receiver takes) is the one
         * the receiver answers. */
        struct frame after = enc_probe(&c, W_COMMITTED);

        memcpy(probe.b + probe.len, after.b, after.len);
        probe.len += after.len;
        type = W_COMMITTED;
    }
    drive(&c, r, st, &s, &probe);
    if (type == W_ERROR)
        expect_quiet_close(&c, st);
    else
        expect_protocol_error(&c, st, type);
    w_close(&c);
    (void)unlink(r->hold); /* the held job lands, on a connection that is gone */
    free(s.bytes);
    cr_assert(harness_alive(r->pid), "the receiver died after %s in state %s: %s",
              w_type_names[type], state_names[st], harness_report(r->pid, "recv"));
}

static void run_state(enum rx_state st)
{
    struct rx r;

    start_rx(&r, 1);
    for (uint8_t type = 1; type <= W_TYPE_MAX; type++) {
        if (!expected_here(st, type))
            run_case(&r, st, type);
    }
    {
        /* And a real sender still gets a file through. */
        char *src = harness_must_src("after/after.bin", 2 * HARNESS_MIB + 3, 77);
        int rc = harness_run_send((const char *[]){src, harness_strf("127.0.0.1:%d", r.port), NULL},
                                  NULL, "send-after", HARNESS_DEADLINE_MS);

        cr_assert_eq(rc, 0, "a normal transfer after the probes failed: exit %d\n%s\n%s", rc,
                     harness_log("send-after"), harness_report(r.pid, "recv"));
        cr_assert_eq(harness_cmp_files(src, harness_strf("%s/after.bin", r.dir)), 0);
    }
}

/* Checks, for each state, every frame type that state does not expect. */
Test(states, every_frame_in_state_hello) { run_state(ST_HELLO); }
Test(states, every_frame_in_state_auth) { run_state(ST_AUTH); }
Test(states, every_frame_in_state_idle) { run_state(ST_IDLE); }
Test(states, every_frame_while_the_open_job_runs) { run_state(ST_OPENING); }
Test(states, every_frame_while_checking_an_existing_file) { run_state(ST_CHECKING); }
Test(states, every_frame_after_a_matching_file_hash) { run_state(ST_HASH_MATCHED); }
Test(states, every_frame_after_a_different_file_hash) { run_state(ST_HASH_DIFFERS); }
Test(states, every_frame_after_accept) { run_state(ST_RECEIVING); }
Test(states, every_frame_in_the_middle_of_a_file) { run_state(ST_MID_FILE); }
Test(states, every_frame_after_end) { run_state(ST_ENDED); }
Test(states, every_frame_while_committing) { run_state(ST_COMMITTING); }
Test(states, every_frame_after_an_end_with_a_wrong_hash) { run_state(ST_RESETTING); }
Test(states, every_frame_after_bye) { run_state(ST_BYE); }

/* ---- the use-after-free these tests were written for ------------------- */

/* Checks the attack of issue 9 finding 1: OFFER an existing file, answer NEED_HASH with a
 * matching FILE_HASH (the receiver starts removing the name's leftover state), then a different
 * FILE_HASH and an OFFER for another name while that job runs. The second FILE_HASH must be a
 * protocol error, and the receiver must live; before the fix the job freed the second file
 * while its open job wrote to it (ASan: heap-use-after-free; release builds crashed). */
static void double_file_hash(int with_overwrite, int then_offer)
{
    struct subject s;
    struct frame offer, h1, h2, other;
    XXH128_hash_t wrong;
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    start_rx(&r, with_overwrite);
    subject_init(&s, ST_HASH_MATCHED, W_FILE_HASH);
    cr_assert_eq(harness_write_file(harness_strf("%s/%s", r.dir, s.name), s.bytes, CASE_SIZE), 0);
    w_connect(&c, r.port, HARNESS_SECRET, 0, "recv");
    w_handshake(&c);
    offer = enc_offer(s.name);
    send_one(&c, &offer);
    w_expect_type(&c, &f, W_NEED_HASH);
    wrong = s.hash;
    wrong.low64 ^= 1;
    h1.len = w_enc_file_hash(h1.b, s.hash);
    h2.len = w_enc_file_hash(h2.b, wrong);
    other = enc_offer("another.bin");
    /* The match is judged and the job removing the name's leftovers holds in the shim. */
    send_and_hold(&c, &r, (const uint8_t *[]){h1.b}, &h1.len, 1, "forget the file's leftovers");
    if (then_offer)
        send_batch(&c, (const uint8_t *[]){h2.b, other.b}, (size_t[]){h2.len, other.len}, 2);
    else
        send_one(&c, &h2);
    /* Let the held job land while the receiver works on what came after it. */
    (void)unlink(r.hold);
    w_next(&c, &f, "ERROR after the second FILE_HASH");
    cr_assert(f.type == W_ERROR && w_get_u16(f.payload) == CODE_PROTOCOL,
              "a second FILE_HASH got %s, want ERROR code 9; stderr:\n%s", w_describe(&f),
              harness_log("recv"));
    w_expect_eof(&c, CLOSE_AFTER_ERROR_MS, "after the ERROR");
    w_close(&c);
    free(s.bytes);
    /* The receiver's jobs for that connection land after the close: wait for them by asking it
     * for another file (its log says when it took it). */
    {
        char *src = harness_must_src("after/after.bin", 3000, 78);
        int rc = harness_run_send((const char *[]){src, harness_strf("127.0.0.1:%d", r.port), NULL},
                                  NULL, "send-after", HARNESS_DEADLINE_MS);

        cr_assert_eq(rc, 0, "a transfer after the attack failed: exit %d\n%s\n%s", rc,
                     harness_log("send-after"), harness_report(r.pid, "recv"));
    }
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(states, second_file_hash_then_offer_after_a_match_is_a_protocol_error)
{
    double_file_hash(0, 1);
}

Test(states, second_file_hash_with_overwrite_is_a_protocol_error) { double_file_hash(1, 0); }
