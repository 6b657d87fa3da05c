/* Speaks xfer protocol 3 by hand to a real `xfer recv` over a raw TCP socket. The client (wire.c)
 * is a second implementation written from the protocol's description: its own encoder, decoder,
 * key schedule and record layer over libsodium, nothing from src/ linked; xxHash is used only
 * for the hashes the protocol names. So these tests also show that the description is enough to
 * implement a sender, and that the receiver answers as it says: in the clear until the sender
 * has proved it holds the secret, in sealed records after. */
/* For XXH3_state_t's layout: the journal keeps the raw image of that struct (JOURNAL FORMAT). */
#define XXH_STATIC_LINKING_ONLY
#include "harness.h"
#include "wire.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

TestSuite(wire, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

enum w_reason { REASON_BAD_CHUNK = 1, REASON_VERIFY = 3 };

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

/* A connection to r that knows the harness's secret and offers every cipher we can run. */
static void open_conn(struct w_conn *c, const struct rx *r)
{
    w_connect(c, r->port, HARNESS_SECRET, 0, "recv");
}

/* ---- conversation steps ------------------------------------------------ */

static void send_offer(struct w_conn *c, const struct w_offer *o)
{
    uint8_t buf[W_HDR + 26 + 512];

    cr_assert_leq(o->name_len, 512);
    w_send(c, buf, w_enc_offer(buf, o));
}

static void expect_accept(struct w_conn *c, uint32_t epoch, uint64_t offset)
{
    struct w_frame f;

    w_expect_type(c, &f, W_ACCEPT);
    cr_assert(w_get_u32(f.payload) == epoch && w_get_u64(f.payload + 4) == offset,
              "receiver sent %s, want ACCEPT(epoch %u, offset %llu)", w_describe(&f), epoch,
              (unsigned long long)offset);
}

/* One DATA frame claiming offset for the n bytes at bytes; its chunk hash (XXH3-64 seeded with
 * the offset) is XORed with hash_xor, 0 for the right hash. */
static void send_data(struct w_conn *c, uint32_t epoch, uint64_t offset, const uint8_t *bytes,
                      uint32_t n, uint64_t hash_xor)
{
    uint8_t *frame = malloc(W_HDR + W_DATA_FIXED + (size_t)n);
    uint64_t hash = XXH3_64bits_withSeed(bytes, n, offset) ^ hash_xor;
    size_t len;

    cr_assert_not_null(frame);
    len = w_enc_data_prefix(frame, epoch, offset, hash, n);
    memcpy(frame + len, bytes, n);
    w_send(c, frame, len + n);
    free(frame);
}

/* DATA for bytes [offset, offset + n) of file. */
static void send_chunk(struct w_conn *c, uint32_t epoch, const uint8_t *file, uint64_t offset,
                       uint32_t n, uint64_t hash_xor)
{
    send_data(c, epoch, offset, file + offset, n, hash_xor);
}

/* DATA for every chunk of file from offset from on. */
static void send_chunks_from(struct w_conn *c, uint32_t epoch, const uint8_t *file, uint64_t size,
                             uint64_t from)
{
    for (uint64_t off = from; off < size; off += W_CHUNK) {
        uint64_t n = size - off < W_CHUNK ? size - off : W_CHUNK;

        send_chunk(c, epoch, file, off, (uint32_t)n, 0);
    }
}

static void send_end(struct w_conn *c, uint32_t epoch, XXH128_hash_t h)
{
    uint8_t buf[W_HDR + 20];

    w_send(c, buf, w_enc_end(buf, epoch, h));
}

static void send_bye(struct w_conn *c, uint16_t status)
{
    uint8_t buf[W_HDR + 2];

    w_send(c, buf, w_enc_bye(buf, status));
}

/* Reads ACKs up to COMMITTED: every ACK on a chunk boundary or at size, never going down within
 * an epoch, the last one ACK(epoch, size). Anything else fails. */
static void expect_acks_then_committed(struct w_conn *c, uint32_t epoch, uint64_t size)
{
    uint32_t last_epoch = 0;
    uint64_t last = 0;
    int acks = 0;
    struct w_frame f;

    for (;;) {
        w_next(c, &f, "ACK or COMMITTED");
        if (f.type == W_COMMITTED)
            break;
        cr_assert_eq(f.type, W_ACK, "receiver sent %s, want ACK or COMMITTED; stderr:\n%s",
                     w_describe(&f), harness_log("recv"));
        {
            uint32_t e = w_get_u32(f.payload);
            uint64_t off = w_get_u64(f.payload + 4);

            cr_assert(off <= size && (off % W_CHUNK == 0 || off == size),
                      "%s is not on a chunk boundary of a %llu-byte file", w_describe(&f),
                      (unsigned long long)size);
            cr_assert(e != last_epoch || off >= last, "%s after ACK(epoch %u, offset %llu)",
                      w_describe(&f), last_epoch, (unsigned long long)last);
            last_epoch = e;
            last = off;
            acks++;
        }
    }
    cr_assert_gt(acks, 0, "COMMITTED came without any ACK; the last ACK must carry the file size");
    cr_assert(last_epoch == epoch && last == size,
              "the last ACK before COMMITTED was ACK(epoch %u, offset %llu), want ACK(epoch %u, "
              "offset %llu)",
              last_epoch, (unsigned long long)last, epoch, (unsigned long long)size);
}

/* Reads frames up to a REWIND, allowing only ACKs (and PINGs) before it. */
static void expect_rewind(struct w_conn *c, uint32_t epoch, uint64_t offset, uint16_t reason)
{
    struct w_frame f;

    for (;;) {
        w_next(c, &f, "REWIND");
        if (f.type != W_ACK)
            break;
    }
    cr_assert_eq(f.type, W_REWIND, "receiver sent %s, want REWIND; stderr:\n%s", w_describe(&f),
                 harness_log("recv"));
    cr_assert(w_get_u32(f.payload) == epoch && w_get_u64(f.payload + 4) == offset &&
                  w_get_u16(f.payload + 12) == reason,
              "receiver sent %s, want REWIND(epoch %u, offset %llu, reason %u)", w_describe(&f),
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

/* ---- tests: the first frame -------------------------------------------- */

Test(wire, hello_of_version_1_2_or_4_gets_error_version_mismatch_and_close)
{
    /* Checks that a HELLO with the right magic and another version is answered in the clear with
     * ERROR code 8, naming version 3, and a close: a protocol-1 sender's HELLO as it was (28
     * bytes: magic, version 1, flags, session id, file count), a protocol-2 HELLO (our layout,
     * but a pre-shared key without Argon2id: it must hear of the version, not fail a proof) and
     * one saying version 4. Then the receiver keeps serving. */
    static const uint8_t v1_hello[] = {0x00, 0x00, 0x00, 0x1c, 0x01, 0x00, 0x00, 0x00, 0x58,
                                       0x46, 0x45, 0x52, 0x00, 0x01, 0x00, 0x00, 0x00, 0x11,
                                       0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                       0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x00, 0x00, 0x01};
    static const uint16_t others[] = {2, 4};
    uint8_t buf[W_HDR + W_HELLO_LEN];
    struct w_conn c;
    char *text;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_send_raw(&c, v1_hello, sizeof(v1_hello));
    text = w_expect_error_and_close(&c, CODE_VERSION_MISMATCH, 0, "after a version 1 HELLO");
    cr_assert(strstr(text, "version 3") != NULL,
              "the ERROR text \"%s\" does not say which version the receiver speaks", text);
    w_close(&c);

    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        char *after = harness_strf("after a version %u HELLO", others[i]);

        open_conn(&c, &r);
        w_send_raw(&c, buf, w_enc_hello(buf, &c, W_MAGIC, others[i]));
        text = w_expect_error_and_close(&c, CODE_VERSION_MISMATCH, 0, after);
        cr_assert(strstr(text, "version 3") != NULL, "%s: the ERROR text is \"%s\"", after,
                  text);
        w_close(&c);
    }
    harness_must_ls(r.dir, "");
    expect_rx_still_serves(&r);
}

Test(wire, hello_of_another_version_is_judged_by_its_first_8_bytes)
{
    /* Checks that magic and version come first, so a HELLO of another version with a payload of
     * another length (8 bytes here) still gets VERSION_MISMATCH, not PROTOCOL. */
    struct w_conn c;
    uint8_t buf[16];
    uint8_t *p;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    p = w_put_header(buf, 8, W_HELLO);
    p = w_put_u32(p, W_MAGIC);
    p = w_put_u16(p, 7);
    p = w_put_u16(p, 0);
    w_send_raw(&c, buf, (size_t)(p - buf));
    w_expect_error_and_close(&c, CODE_VERSION_MISMATCH, 0, "after an 8-byte version 7 HELLO");
    w_close(&c);
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, hello_with_a_bad_magic_gets_error_protocol_and_close)
{
    /* Checks that a HELLO whose magic is not "XFER" is answered with ERROR code 9 in the clear
     * and a close, and that the receiver keeps serving afterwards. */
    uint8_t buf[W_HDR + W_HELLO_LEN];
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_send_raw(&c, buf, w_enc_hello(buf, &c, 0x58464553u /* "XFES" */, W_VERSION));
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a HELLO with a bad magic");
    w_close(&c);
    expect_rx_still_serves(&r);
}

Test(wire, header_longer_than_the_maximum_is_refused_before_its_payload)
{
    /* Checks that a length beyond its maximum is judged from the header alone, while none of the
     * announced bytes has been sent: before the handshake a HELLO header announcing 1,000,000
     * payload bytes (the maximum is 4096) gets ERROR 9 in the clear; after it, a record header
     * announcing a 2,000,000-byte body (the largest record holds one DATA frame) gets ERROR 9
     * sealed. The idle timeout is the default 15 s and the handshake deadline 10 s, so an answer
     * within a few seconds cannot come from giving up on the missing bytes. */
    struct w_conn c;
    uint8_t buf[64];
    long long start;
    long long took;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    start = w_now_ms();
    w_send_raw(&c, buf, (size_t)(w_put_header(buf, 1000000, W_HELLO) - buf));
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a HELLO header of length 1000000");
    took = w_now_ms() - start;
    cr_assert_lt(took, 5000, "the answer took %lld ms: the receiver waited for the payload", took);
    w_close(&c);

    open_conn(&c, &r);
    w_handshake(&c);
    start = w_now_ms();
    w_put_u32(buf, 2000000);
    buf[4] = W_REC_TYPE;
    buf[5] = buf[6] = buf[7] = 0;
    w_send_raw(&c, buf, W_HDR);
    w_expect_error_and_close(&c, CODE_PROTOCOL, 1, "after a record header of length 2000000");
    took = w_now_ms() - start;
    cr_assert_lt(took, 5000, "the answer took %lld ms: the receiver waited for the body", took);
    w_close(&c);
    expect_rx_still_serves(&r);
}

Test(wire, data_header_longer_than_one_chunk_is_refused_before_its_payload)
{
    /* Checks the DATA maximum of 20 + 1048576 as it shows on the wire now: a record of one byte
     * more than header, DATA maximum and tag (1048621) is refused at once with a sealed ERROR 9;
     * and DATA in the clear, which can never be valid, is refused from its header alone, before
     * the handshake (clear ERROR) and after it (sealed ERROR). */
    struct w_conn c;
    uint8_t buf[64];
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    w_put_u32(buf, W_MAX_BODY + 1);
    buf[4] = W_REC_TYPE;
    buf[5] = buf[6] = buf[7] = 0;
    w_send_raw(&c, buf, W_HDR);
    w_expect_error_and_close(&c, CODE_PROTOCOL, 1,
                             harness_strf("after a record header of length %u", W_MAX_BODY + 1));
    w_close(&c);

    open_conn(&c, &r);
    w_send_raw(&c, buf, (size_t)(w_put_header(buf, W_DATA_FIXED + 5, W_DATA) - buf));
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a clear DATA header before HELLO");
    w_close(&c);

    open_conn(&c, &r);
    w_handshake(&c);
    w_send_raw(&c, buf, (size_t)(w_put_header(buf, W_DATA_FIXED + 5, W_DATA) - buf));
    w_expect_error_and_close(&c, CODE_PROTOCOL, 1, "after a clear DATA header after AUTH");
    w_close(&c);
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, offer_before_the_handshake_gets_error_protocol_and_close)
{
    /* Checks that nothing about a file is taken before the sender's proof: a well-formed OFFER
     * as the first frame; an OFFER in the clear after WELCOME instead of AUTH; a record as the
     * first bytes; a correctly sealed OFFER after WELCOME with AUTH skipped; and AUTH before
     * HELLO. Each gets ERROR 9 in the clear and a close, and nothing is created. */
    struct w_offer o = {5, 1700000000, 0, 0644, "early.txt", 9};
    uint8_t buf[W_HDR + 26 + 16];
    struct w_conn c;
    struct rx r;
    size_t n;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    send_offer(&c, &o);
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after an OFFER before HELLO");
    w_close(&c);

    open_conn(&c, &r);
    w_hello(&c);
    send_offer(&c, &o);
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a clear OFFER instead of AUTH");
    w_close(&c);

    open_conn(&c, &r);
    {
        uint8_t *rec;

        /* A well-formed record under a key nobody agreed on: no key exists yet. */
        c.cipher = W_CIPHER_XCHACHA20;
        randombytes_buf(c.keys.c2s, sizeof(c.keys.c2s));
        rec = w_seal(&c, buf, w_enc_offer(buf, &o), &n);
        w_send_raw(&c, rec, n);
        free(rec);
    }
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a record before HELLO");
    w_close(&c);

    open_conn(&c, &r);
    w_hello(&c);
    c.tx_sealed = 1; /* AUTH skipped: the keys are right, the proof never sent */
    send_offer(&c, &o);
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a sealed OFFER with AUTH skipped");
    w_close(&c);

    open_conn(&c, &r);
    w_send_auth(&c, c.nonce);
    w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after AUTH before HELLO");
    w_close(&c);

    harness_must_ls(r.dir, "");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, malformed_headers_get_error_protocol)
{
    /* Checks each header rule on its own connection, right after a good handshake: inside a
     * record, non-zero flags, non-zero reserved bits, type 0, type 18, and a frame shorter than
     * its record; on the record itself, non-zero flag and reserved bytes; and a frame in the
     * clear once a record has been opened. Each is a sealed ERROR 9 and a close. */
    static const struct {
        const char *what;
        int sealed; /* 1: seal these 8 bytes as the frame; 0: send them as they are; 2: send a
                     * sealed PING first, then them as they are */
        int pad;    /* bytes of zeros after the frame, inside the record */
        uint8_t bytes[8];
    } cases[] = {
        {"inner flags 1", 1, 0, {0, 0, 0, 0, W_PING, 1, 0, 0}},
        {"inner reserved 1", 1, 0, {0, 0, 0, 0, W_PING, 0, 0, 1}},
        {"inner type 0", 1, 0, {0, 0, 0, 0, 0, 0, 0, 0}},
        {"inner type 18", 1, 0, {0, 0, 0, 0, 18, 0, 0, 0}},
        {"a PING one byte shorter than its record", 1, 1, {0, 0, 0, 0, W_PING, 0, 0, 0}},
        {"record flags 1", 0, 0, {0, 0, 0, 24, W_REC_TYPE, 1, 0, 0}},
        {"record reserved 1", 0, 0, {0, 0, 0, 24, W_REC_TYPE, 0, 0, 1}},
        {"a clear PING after a sealed one", 2, 0, {0, 0, 0, 0, W_PING, 0, 0, 0}},
    };
    struct rx r;

    start_rx(&r, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct w_conn c;
        uint8_t frame[16] = {0};

        open_conn(&c, &r);
        w_handshake(&c);
        memcpy(frame, cases[i].bytes, 8);
        if (cases[i].sealed == 1) {
            w_send(&c, frame, 8 + (size_t)cases[i].pad);
        } else {
            if (cases[i].sealed == 2) {
                uint8_t ping[W_HDR];

                w_put_header(ping, 0, W_PING);
                w_send(&c, ping, W_HDR);
            }
            w_send_raw(&c, frame, 8);
        }
        w_expect_error_and_close(&c, CODE_PROTOCOL, 1,
                                 harness_strf("after a header with %s", cases[i].what));
        w_close(&c);
    }
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, malformed_offers_get_error_protocol)
{
    /* Checks the OFFER rules that make a protocol error (not a REFUSE), each in a well-sealed
     * record after a good handshake: a trailing byte, a missing byte, mtime_nsec of
     * 1000000000, a size above 2^63-1, and a name_len of 256. Each is a sealed ERROR 9. */
    struct rx r;
    char long_name[256];
    uint8_t buf[W_HDR + 26 + 512];
    size_t n;

    memset(long_name, 'a', sizeof(long_name));
    start_rx(&r, NULL);
    for (int i = 0; i < 5; i++) {
        struct w_offer o = {5, 1700000000, 0, 0644, "ok.txt", 6};
        const char *what = NULL;
        struct w_conn c;

        open_conn(&c, &r);
        w_handshake(&c);
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
        n = w_enc_offer(buf, &o);
        if (i == 0) {
            /* One byte more than its fields, with the length saying so. */
            buf[n] = 'x';
            n++;
            w_put_u32(buf, (uint32_t)(n - W_HDR));
            what = "a trailing byte";
        } else if (i == 1) {
            n--;
            w_put_u32(buf, (uint32_t)(n - W_HDR));
            what = "a missing byte";
        }
        w_send(&c, buf, n);
        w_expect_error_and_close(&c, CODE_PROTOCOL, 1,
                                 harness_strf("after an OFFER with %s", what));
        w_close(&c);
    }
    harness_must_ls(r.dir, "");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, handshake_frames_after_the_handshake_are_protocol_errors)
{
    /* Checks that the handshake happens once: a second HELLO, a second AUTH (both sealed), and a
     * sealed WELCOME (a receiver's frame) after a good handshake are each a sealed ERROR 9. */
    struct rx r;

    start_rx(&r, NULL);
    for (int i = 0; i < 3; i++) {
        uint8_t buf[W_HDR + W_HELLO_LEN];
        const char *what = NULL;
        struct w_conn c;
        size_t n;

        open_conn(&c, &r);
        w_handshake(&c);
        if (i == 0) {
            n = w_enc_hello(buf, &c, W_MAGIC, W_VERSION);
            what = "a second HELLO";
        } else if (i == 1) {
            uint8_t *p = w_put_header(buf, W_KEY, W_AUTH);

            n = (size_t)(w_put_bytes(p, c.keys.client_tag, W_KEY) - buf);
            what = "a second AUTH";
        } else {
            uint8_t *p = w_put_header(buf, W_WELCOME_LEN, W_WELCOME);

            p = w_put_u32(p, W_MAGIC);
            p = w_put_u16(p, W_VERSION);
            p = w_put_u16(p, 0);
            p = w_put_u16(p, c.cipher);
            p = w_put_bytes(p, c.server_pk, W_KEY);
            p = w_put_bytes(p, c.server_nonce, W_KEY);
            n = (size_t)(p - buf);
            what = "a WELCOME";
        }
        w_send(&c, buf, n);
        w_expect_error_and_close(&c, CODE_PROTOCOL, 1, harness_strf("after %s", what));
        w_close(&c);
    }
    harness_must_ls(r.dir, "");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, hello_without_a_usable_cipher_or_key_gets_error_protocol)
{
    /* Checks the two ways a HELLO can leave nothing to agree on: ciphers 0x0004 (no cipher the
     * receiver knows) and an all-zero public key (a low-order point, no shared secret). Each is
     * a clear ERROR 9 and a close, without a WELCOME. */
    uint8_t buf[W_HDR + W_HELLO_LEN];
    struct w_conn c;
    char *text;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    c.ciphers = 0x0004;
    w_send_raw(&c, buf, w_enc_hello(buf, &c, W_MAGIC, W_VERSION));
    text = w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a HELLO offering cipher 0x4");
    cr_log_info("no cipher in common: \"%s\"", text);
    w_close(&c);

    open_conn(&c, &r);
    memset(c.pk, 0, sizeof(c.pk));
    w_send_raw(&c, buf, w_enc_hello(buf, &c, W_MAGIC, W_VERSION));
    text = w_expect_error_and_close(&c, CODE_PROTOCOL, 0, "after a HELLO with a zero public key");
    cr_log_info("zero key: \"%s\"", text);
    w_close(&c);
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, each_cipher_is_chosen_as_offered_and_carries_a_session)
{
    /* Checks the cipher choice: offered both, the receiver picks AES-256-GCM where this CPU runs
     * it, else XChaCha20-Poly1305; offered one alone, it picks that one; and a whole session
     * sealed with each cipher this machine can run delivers its file. */
    static const uint8_t bytes[] = "sealed either way";
    uint16_t local = w_local_ciphers();
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_hello(&c);
    cr_assert_eq(c.cipher, (local & W_CIPHER_AES256GCM) ? W_CIPHER_AES256GCM : W_CIPHER_XCHACHA20,
                 "offered both ciphers, the receiver chose %#x", c.cipher);
    w_close(&c);

    w_connect(&c, r.port, HARNESS_SECRET, W_CIPHER_XCHACHA20, "recv");
    w_handshake(&c);
    cr_assert_eq(c.cipher, W_CIPHER_XCHACHA20);
    w_deliver_small(&c, "xchacha.txt", bytes, sizeof(bytes) - 1);
    w_close(&c);
    if (local & W_CIPHER_AES256GCM) {
        w_connect(&c, r.port, HARNESS_SECRET, W_CIPHER_AES256GCM, "recv");
        w_handshake(&c);
        cr_assert_eq(c.cipher, W_CIPHER_AES256GCM);
        w_deliver_small(&c, "aesgcm.txt", bytes, sizeof(bytes) - 1);
        w_close(&c);
        harness_must_ls(r.dir, "aesgcm.txt\nxchacha.txt\n");
    } else {
        cr_log_info("this CPU has no AES-256-GCM in libsodium: only XChaCha20 checked");
        harness_must_ls(r.dir, "xchacha.txt\n");
    }
    cr_assert_str_eq(harness_read_file(harness_strf("%s/xchacha.txt", r.dir)), (const char *)bytes);
}

Test(wire, a_record_that_does_not_open_closes_the_connection_without_an_answer)
{
    /* Checks the record layer's promise that a damaged, repeated, reordered or reflected record
     * fails to open: after a good OFFER and ACCEPT, each of these ends the connection with no
     * ERROR (PINGs aside) and no file: a record with one ciphertext bit flipped; the OFFER's
     * record sent again; a record sealed with counter 1 where 0 is due; and the receiver's own
     * ACCEPT record sent back to it. */
    struct rx r;

    start_rx(&r, NULL);
    for (int i = 0; i < 4; i++) {
        /* A name per case: the previous case's partial may still be closing. */
        struct w_offer o = {5, 1700000010, 0, 0644, harness_strf("sealed%d.txt", i), 11};
        uint8_t frame[W_HDR + 26 + 16];
        uint8_t ping[W_HDR];
        const char *what = NULL;
        struct w_conn c;
        uint8_t *rec = NULL;
        size_t n = 0;

        open_conn(&c, &r);
        w_handshake(&c);
        w_put_header(ping, 0, W_PING);
        if (i == 2) {
            /* Counter 1 first: the receiver expects 0. */
            c.tx_counter = 1;
            rec = w_seal(&c, ping, W_HDR, &n);
            what = "a record sealed with counter 1 first";
        } else {
            rec = w_seal(&c, frame, w_enc_offer(frame, &o), &n);
            w_send_raw(&c, rec, n);
            expect_accept(&c, 1, 0);
            if (i == 0) {
                free(rec);
                rec = w_seal(&c, ping, W_HDR, &n);
                rec[W_HDR + 3] ^= 0x01;
                what = "a record with a flipped bit";
            } else if (i == 1) {
                what = "the OFFER's record again";
            } else {
                /* What the receiver sealed for us, turned around: the other direction's key. */
                struct w_conn mirror = c;

                memcpy(mirror.keys.c2s, c.keys.s2c, sizeof(mirror.keys.c2s));
                mirror.tx_counter = 0;
                free(rec);
                {
                    uint8_t accept[W_HDR + 12];
                    uint8_t *p = w_put_header(accept, 12, W_ACCEPT);

                    p = w_put_u32(p, 1);
                    w_put_u64(p, 0);
                    rec = w_seal(&mirror, accept, sizeof(accept), &n);
                }
                what = "the receiver's ACCEPT record sent back";
            }
        }
        w_send_raw(&c, rec, n);
        free(rec);
        w_expect_eof(&c, REPLY_MS, harness_strf("after %s", what));
        w_close(&c);
    }
    harness_must_ls(r.dir, ".xfer\n");
    cr_assert(harness_alive(r.pid), "the receiver died: %s", harness_report(r.pid, "recv"));
}

Test(wire, silent_connection_is_closed_within_the_hello_deadline)
{
    /* Checks that with XFER_IDLE_TIMEOUT=1 a connection that never speaks is closed by the
     * receiver within 5 s (not at once). Before the close it may send PINGs (valid at any time,
     * in the clear before the handshake) and at most one ERROR, with code TIMEOUT; nothing
     * else. */
    static const char *const env[] = {"XFER_IDLE_TIMEOUT=1", NULL};
    long long deadline;
    long long start;
    long long took;
    struct w_frame f;
    struct w_conn c;
    struct rx r;
    int errors = 0;
    int got;

    start_rx(&r, env);
    open_conn(&c, &r);
    start = w_now_ms();
    deadline = start + 5000;
    for (;;) {
        long long left = deadline - w_now_ms();

        got = left > 0 ? w_recv(&c, &f, (int)left) : -ETIMEDOUT;
        if (got != 1)
            break;
        w_check_length(&f);
        cr_assert(!f.sealed, "a record before any handshake");
        if (f.type == W_PING)
            continue;
        cr_assert_eq(f.type, W_ERROR, "a silent connection got %s", w_describe(&f));
        cr_assert_eq(w_get_u16(f.payload), CODE_TIMEOUT, "a silent connection got %s, want code %u",
                     w_describe(&f), CODE_TIMEOUT);
        errors++;
        cr_assert_eq(errors, 1, "a silent connection got a second ERROR");
    }
    took = w_now_ms() - start;
    cr_assert_neq(got, -ETIMEDOUT, "the receiver did not close a silent connection within 5 s");
    cr_assert_eq(got, 0, "reading failed: %s", strerror(-got));
    cr_assert_geq(took, 800, "closed after %lld ms, before the 1 s timeout could have passed",
                  took);
    cr_log_info("silent connection closed after %lld ms, %s", took,
                errors ? "with ERROR TIMEOUT" : "without ERROR");
    w_close(&c);
    expect_rx_still_serves(&r);
}

/* ---- tests: whole sessions --------------------------------------------- */

Test(wire, hand_written_session_matches_the_man_page_example_byte_for_byte)
{
    /* Checks the man page's EXAMPLES session as protocol 3 carries it: our encoder reproduces
     * the page's OFFER, DATA, END and BYE frames for hello.txt, and each travels as one record
     * whose header is the body length (frame + 16) and 0x80 0 0 0; HELLO, WELCOME and both
     * AUTHs have their protocol-3 lengths and fields, in the clear, and the receiver's AUTH
     * carries the server tag; the receiver's records open, under counters 0, 1, 2, to
     * exactly the page's ACCEPT, ACK and COMMITTED; no byte of the name crosses the wire in the
     * clear; the partial is .xfer/349d...a3.part meanwhile; and after COMMITTED the file is
     * there with its bytes, mtime and mode, and nothing else. */
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
    const uint8_t *frames[] = {man_offer, man_data, man_end, man_bye};
    const size_t lens[] = {sizeof(man_offer), sizeof(man_data), sizeof(man_end), sizeof(man_bye)};
    struct w_offer o = {5, 1700000000, 500000000, 0644, "hello.txt", 9};
    uint8_t *recs[4];
    size_t rec_lens[4];
    uint8_t buf[W_HDR + W_HELLO_LEN];
    uint8_t *p;
    struct w_frame f;
    struct w_conn c;
    struct stat st;
    struct rx r;
    mode_t mask;
    char *part;
    size_t n;

    /* Our encoder against the page. */
    n = w_enc_offer(buf, &o);
    cr_assert(n == sizeof(man_offer) && memcmp(buf, man_offer, n) == 0, "OFFER differs");
    n = w_enc_data_prefix(buf, 1, 0, XXH3_64bits_withSeed(hello, 5, 0), 5);
    memcpy(buf + n, hello, 5);
    n += 5;
    cr_assert(n == sizeof(man_data) && memcmp(buf, man_data, n) == 0,
              "DATA differs: XXH3-64(\"hello\", 0) is %016llx",
              (unsigned long long)XXH3_64bits_withSeed(hello, 5, 0));
    n = w_enc_end(buf, 1, XXH3_128bits(hello, 5));
    cr_assert(n == sizeof(man_end) && memcmp(buf, man_end, n) == 0, "END differs");
    n = w_enc_bye(buf, CODE_OK);
    cr_assert(n == sizeof(man_bye) && memcmp(buf, man_bye, n) == 0, "BYE differs");
    cr_assert_str_eq(state_key("hello.txt"), "349d47ee15f9d95fb85102175e7843a3");

    start_rx(&r, NULL);
    part = harness_strf("%s/.xfer/349d47ee15f9d95fb85102175e7843a3.part", r.dir);
    open_conn(&c, &r);
    n = w_enc_hello(buf, &c, W_MAGIC, W_VERSION);
    cr_assert_eq(n, 8 + 90, "HELLO is %zu bytes, want 98", n);
    cr_assert(memcmp(buf, "\x00\x00\x00\x5a\x01\x00\x00\x00XFER\x00\x03\x00\x00", 16) == 0,
              "HELLO's first 16 bytes differ");
    w_hello(&c);
    w_send_auth(&c, c.keys.client_tag);
    w_expect_receiver_auth(&c);

    /* The four frames sealed as the records we send, under counters 0..3. */
    for (int i = 0; i < 4; i++) {
        recs[i] = w_seal(&c, frames[i], lens[i], &rec_lens[i]);
        cr_assert_eq(rec_lens[i], W_HDR + lens[i] + W_AEAD_TAG);
        cr_assert_eq(w_get_u32(recs[i]), lens[i] + W_AEAD_TAG);
        cr_assert(recs[i][4] == 0x80 && recs[i][5] == 0 && recs[i][6] == 0 && recs[i][7] == 0);
        if (lens[i] - W_HDR >= 8)
            cr_assert_null(memmem(recs[i], rec_lens[i], frames[i] + W_HDR, lens[i] - W_HDR),
                           "record %d carries its frame's payload in the clear", i);
    }
    cr_assert_null(memmem(recs[0], rec_lens[0], "hello.txt", 9), "the name is visible");

    w_send_raw(&c, recs[0], rec_lens[0]);
    w_expect_type(&c, &f, W_ACCEPT);
    cr_assert(f.sealed && memcmp(f.raw, man_accept, sizeof(man_accept)) == 0,
              "receiver sent %s, not the page's ACCEPT(1, 0)", w_describe(&f));
    cr_assert_eq(w_get_u32(f.record_hdr), sizeof(man_accept) + W_AEAD_TAG);
    cr_assert_eq(c.rx_counter, 1, "ACCEPT was not the receiver's record 0");
    cr_assert_eq(access(part, F_OK), 0, "no partial at %s after ACCEPT; .xfer holds:\n%s", part,
                 harness_ls(harness_strf("%s/.xfer", r.dir)));
    w_send_raw(&c, recs[1], rec_lens[1]);
    w_send_raw(&c, recs[2], rec_lens[2]);
    w_expect_type(&c, &f, W_ACK);
    cr_assert(memcmp(f.raw, man_ack, sizeof(man_ack)) == 0, "receiver sent %s, not ACK(1, 5)",
              w_describe(&f));
    w_expect_type(&c, &f, W_COMMITTED);
    cr_assert(memcmp(f.raw, man_committed, sizeof(man_committed)) == 0);
    /* COMMITTED is sent only after the rename, the journal's removal and .xfer's rmdir. */
    cr_assert_str_eq(harness_ls(r.dir), "hello.txt\n", "`ls -A` right after COMMITTED");
    w_send_raw(&c, recs[3], rec_lens[3]);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
    for (int i = 0; i < 4; i++)
        free(recs[i]);

    p = (uint8_t *)harness_read_file(harness_strf("%s/hello.txt", r.dir));
    cr_assert_str_eq((const char *)p, "hello");
    cr_assert_eq(stat(harness_strf("%s/hello.txt", r.dir), &st), 0);
    cr_assert(st.st_mtim.tv_sec == 1700000000 && st.st_mtim.tv_nsec == 500000000,
              "mtime is %lld.%09ld, want the offered 1700000000.500000000",
              (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    mask = umask(022);
    umask(mask);
    cr_assert_eq(st.st_mode & 07777, 0644 & ~mask, "mode is %o, want %o",
                 (unsigned)(st.st_mode & 07777), (unsigned)(0644 & ~mask));
}

/* Parses hex digits (spaces ignored) into out; returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (*hex != '\0') {
        unsigned v;

        if (*hex == ' ') {
            hex++;
            continue;
        }
        cr_assert(n < cap && sscanf(hex, "%2x", &v) == 1, "bad hex at \"%s\"", hex);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

static void expect_hex(const char *what, const uint8_t *got, size_t len, const char *want_hex)
{
    uint8_t want[256];
    char shown[2 * 256 + 1];

    cr_assert_eq(unhex(want_hex, want, sizeof(want)), len, "%s: test vector length", what);
    for (size_t i = 0; i < len; i++)
        snprintf(shown + 2 * i, 3, "%02x", got[i]);
    cr_assert(memcmp(got, want, len) == 0, "%s is %s, the page says %s", what, shown, want_hex);
}

Test(wire, key_schedule_and_a_record_match_the_man_page_example)
{
    /* Checks our key schedule and record layer against the fixed-input example of
     * xfer-protocol(7) (Key schedule example, A sealed record): secret
     * abcd-efgh-ijkl-mnop-qrst-uvwx-yz23, secret keys 00..1f (sender) and 20..3f (receiver),
     * nonces 40..5f and 60..7f, session id 00 11 .. ff, XChaCha20 offered and chosen, flags 0.
     * PSK, both public keys, TH, K_C2S, K_S2C and both tags must be the page's, the same from
     * the receiver's side as from the sender's, and the page's OFFER sealed under K_C2S with
     * counter 0 must be the page's record byte for byte. Pure computation: no process runs. */
    static const uint8_t offer[] = {
        0x00, 0x00, 0x00, 0x23, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x05, 0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x1d, 0xcd, 0x65, 0x00, 0x00, 0x00,
        0x01, 0xa4, 0x00, 0x09, 'h',  'e',  'l',  'l',  'o',  '.',  't',  'x',  't'};
    uint8_t psk[32];
    uint8_t csk[32];
    uint8_t ssk[32];
    uint8_t th[32];
    struct w_transcript t;
    struct w_keys ck;
    struct w_keys sk;
    struct w_conn c;
    uint8_t *rec;
    size_t n;

    memset(&t, 0, sizeof(t));
    for (int i = 0; i < 32; i++) {
        csk[i] = (uint8_t)i;
        ssk[i] = (uint8_t)(0x20 + i);
        t.client_nonce[i] = (uint8_t)(0x40 + i);
        t.server_nonce[i] = (uint8_t)(0x60 + i);
    }
    for (int i = 0; i < W_SESSION_ID; i++)
        t.session_id[i] = (uint8_t)(0x11 * i);
    cr_assert_eq(crypto_scalarmult_base(t.client_pk, csk), 0);
    cr_assert_eq(crypto_scalarmult_base(t.server_pk, ssk), 0);
    t.client_ciphers = W_CIPHER_XCHACHA20;
    t.cipher = W_CIPHER_XCHACHA20;
    w_psk(psk, "abcd-efgh-ijkl-mnop-qrst-uvwx-yz23");
    expect_hex("PSK", psk, 32, "1c101b51b0d6f3eddbcb2b520d03d3ad3cde57445ac669416718c2cc2b1220d8");
    expect_hex("client pk", t.client_pk, 32,
               "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f");
    expect_hex("server pk", t.server_pk, 32,
               "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254");
    w_transcript_hash(th, &t);
    expect_hex("TH", th, 32, "0a94aaa9fc8860f3f23c790aefb433721d9edc5832beb6b8e121d9d6499d6e13");
    cr_assert_eq(w_client_keys(&ck, psk, csk, &t), 0);
    cr_assert_eq(w_server_keys(&sk, psk, ssk, &t), 0);
    cr_assert(memcmp(&ck, &sk, sizeof(ck)) == 0, "the two sides derive different keys");
    expect_hex("K_C2S", ck.c2s, 32,
               "49385f89a8d4699093076c986f4ab6859849f9b0b1442f1731923ff3da0a8750");
    expect_hex("K_S2C", ck.s2c, 32,
               "f707dc94b15da0bb05dc6aa020690d11d01f0444b2b0f9d5de95e5c2c9d2fd8b");
    expect_hex("client tag", ck.client_tag, 32,
               "a96017d75aae7baeca92f808b0e6b53dbabafdbf990b85244cbb7cc7f14d97b0");
    expect_hex("server tag", ck.server_tag, 32,
               "111b57929e7db727af37e7c07f2929a3ec97c47e12e4b4654323a54ba3d2a4a4");

    memset(&c, 0, sizeof(c));
    c.cipher = W_CIPHER_XCHACHA20;
    c.keys = ck;
    rec = w_seal(&c, offer, sizeof(offer), &n);
    cr_assert_eq(n, W_HDR + sizeof(offer) + W_AEAD_TAG);
    expect_hex("the sealed OFFER", rec, n,
               "0000003b80000000"
               "d2a0e7b93438c566e378ac850568edf4dcb6e7268404bdcf515bf0f95e909644691497dbb52bc389"
               "9c7a2b"
               "83e8517c3856789906404cc300f923d2");
    free(rec);
}

Test(wire, hand_written_session_delivers_a_three_chunk_file)
{
    /* Checks a session with chunks at 0, 1 MiB and 2 MiB (the last short), each hashed with its
     * offset as the seed, and END with the XXH3-128 of the whole: ACKs, COMMITTED, the file. The
     * two whole chunks travel in records of the largest size, 1048620 bytes of body. */
    uint64_t size = 2 * W_CHUNK + 777;
    uint8_t *file = make_content(size, 61, "src/three.bin");
    struct w_offer o = {size, 1700000100, 0, 0600, "three.bin", 9};
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    send_chunks_from(&c, 1, file, size, 0);
    send_end(&c, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 1, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
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
    struct w_offer o = {size, 1700000200, 0, 0644, "rewind.bin", 10};
    XXH128_hash_t wrong;
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    send_chunk(&c, 1, file, 0, W_CHUNK, 0);
    send_chunk(&c, 1, file, W_CHUNK, W_CHUNK, 1); /* hash off by one bit */
    send_chunk(&c, 1, file, 2 * W_CHUNK, W_CHUNK, 0);
    expect_rewind(&c, 2, W_CHUNK, REASON_BAD_CHUNK);

    /* Sent "before we saw the REWIND": epoch 1, so they must change nothing. */
    send_data(&c, 1, W_CHUNK, garbage, W_CHUNK, 0);
    wrong = XXH3_128bits(file, size);
    wrong.low64 ^= 1;
    send_end(&c, 1, wrong);

    send_chunks_from(&c, 2, file, size, W_CHUNK);
    send_end(&c, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 2, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
    free(file);
    free(garbage);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/rewind.bin"), harness_strf("%s/rewind.bin", r.dir)), 0,
        "rewind.bin differs from what was sent: a stale frame was used");
    harness_must_ls(r.dir, "rewind.bin\n");
}

Test(wire, bad_hash_in_the_very_first_chunk_gets_rewind_to_0)
{
    /* Checks that DATA whose hash is wrong in the first chunk of a new file, when nothing is
     * written yet, is answered with REWIND(epoch 2, offset 0, BAD_CHUNK), and that resending
     * from 0 completes. The receiver used to hand memcpy() its still-null list of pending
     * chunk hashes here (with a length of 0): undefined behaviour, which UBSan stops. */
    uint64_t size = W_CHUNK + 100;
    uint8_t *file = make_content(size, 67, "src/first.bin");
    struct w_offer o = {size, 1700000250, 0, 0644, "first.bin", 9};
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    send_chunk(&c, 1, file, 0, W_CHUNK, 1); /* hash off by one bit */
    expect_rewind(&c, 2, 0, REASON_BAD_CHUNK);
    send_chunks_from(&c, 2, file, size, 0);
    send_end(&c, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 2, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
    free(file);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/first.bin"), harness_strf("%s/first.bin", r.dir)), 0,
        "first.bin differs from what was sent");
    harness_must_ls(r.dir, "first.bin\n");
}

Test(wire, end_with_a_wrong_file_hash_gets_rewind_verify_and_no_file)
{
    /* Checks that END whose XXH3-128 does not match is answered (after the ACK of the whole
     * file) with REWIND(epoch 2, offset 0, reason VERIFY), that nothing appears under the name
     * and the partial is emptied, and that sending the file again under epoch 2 then works. */
    uint64_t size = W_CHUNK + 10;
    uint8_t *file = make_content(size, 64, "src/verify.bin");
    struct w_offer o = {size, 1700000300, 0, 0644, "verify.bin", 10};
    char *part;
    XXH128_hash_t wrong;
    struct w_conn c;
    struct stat st;
    struct rx r;

    start_rx(&r, NULL);
    part = harness_strf("%s/.xfer/%s.part", r.dir, state_key("verify.bin"));
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    send_chunks_from(&c, 1, file, size, 0);
    wrong = XXH3_128bits(file, size);
    wrong.high64 ^= 0x8000000000000000ULL;
    send_end(&c, 1, wrong);
    expect_rewind(&c, 2, 0, REASON_VERIFY);
    cr_assert_neq(access(harness_strf("%s/verify.bin", r.dir), F_OK), 0,
                  "verify.bin appeared under its name after a hash mismatch");
    cr_assert_eq(stat(part, &st), 0, "no partial %s after REWIND VERIFY", part);
    cr_assert_eq(st.st_size, 0, "the partial still holds %lld bytes after REWIND VERIFY",
                 (long long)st.st_size);

    send_chunks_from(&c, 2, file, size, 0);
    send_end(&c, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 2, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
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
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    r.dir = harness_pathf("base/dst");
    r.pid = harness_must_recv(&r.port, r.dir, NULL, NULL, "recv");
    open_conn(&c, &r);
    w_handshake(&c);
    for (size_t i = 0; i < count; i++) {
        struct w_offer o = {3, 1700000400, 0, 0644, names[i], lens[i]};
        char shown[64];
        size_t k = 0;

        /* Printable for the messages: the names hold NULs and controls. */
        for (size_t j = 0; j < lens[i] && k + 5 < sizeof(shown); j++) {
            unsigned char ch = (unsigned char)names[i][j];

            if (ch >= 0x21 && ch < 0x7f)
                shown[k++] = (char)ch;
            else
                k += (size_t)snprintf(shown + k, sizeof(shown) - k, "\\x%02x", ch);
        }
        shown[k] = '\0';
        send_offer(&c, &o);
        w_next(&c, &f, "REFUSE");
        cr_assert_eq(f.type, W_REFUSE, "name \"%s\": receiver sent %s, want REFUSE BAD_NAME", shown,
                     w_describe(&f));
        cr_assert_eq(w_get_u16(f.payload), CODE_BAD_NAME,
                     "name \"%s\": receiver sent %s, want code %u (BAD_NAME)", shown,
                     w_describe(&f), CODE_BAD_NAME);
    }
    /* After a REFUSE other than RETRY the connection is back to IDLE: BYE ends it cleanly. */
    send_bye(&c, 1);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
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
    /* Checks the rest of the name rules: ".", "..", an embedded NUL, C0 and C1 controls, DEL,
     * bidi controls (U+202E, U+2066, U+061C, U+200F), invalid UTF-8, an overlong "/" and a
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

/* ---- tests: more of the conversation ----------------------------------- */

Test(wire, chunk_at_the_wrong_offset_gets_rewind_bad_chunk)
{
    /* Checks that DATA of the current epoch that is not the next chunk (chunk 2 right after
     * chunk 0, its hash right for its offset) is not a protocol error but REWIND(epoch 2,
     * offset 1 MiB, BAD_CHUNK), and that continuing from there completes the file. */
    uint64_t size = 2 * W_CHUNK + 5;
    uint8_t *file = make_content(size, 65, "src/gap.bin");
    struct w_offer o = {size, 1700000500, 0, 0644, "gap.bin", 7};
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    send_chunk(&c, 1, file, 0, W_CHUNK, 0);
    send_chunk(&c, 1, file, 2 * W_CHUNK, 5, 0);
    expect_rewind(&c, 2, W_CHUNK, REASON_BAD_CHUNK);
    send_chunks_from(&c, 2, file, size, W_CHUNK);
    send_end(&c, 2, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 2, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
    free(file);
    cr_assert_eq(harness_cmp_files(harness_pathf("src/gap.bin"), harness_strf("%s/gap.bin", r.dir)),
                 0, "gap.bin differs from what was sent");
}

Test(wire, end_before_the_last_chunk_is_a_protocol_error)
{
    /* Checks that END of the current epoch arriving before every chunk is ERROR code 9. */
    uint64_t size = W_CHUNK + 5;
    uint8_t *file = make_content(size, 66, "src/short.bin");
    struct w_offer o = {size, 1700000600, 0, 0644, "short.bin", 9};
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    send_chunk(&c, 1, file, 0, W_CHUNK, 0);
    send_end(&c, 1, XXH3_128bits(file, size));
    /* ACKs of the first chunk may come before the ERROR. */
    do {
        w_next(&c, &f, "ERROR");
    } while (f.type == W_ACK);
    cr_assert(f.type == W_ERROR && w_get_u16(f.payload) == CODE_PROTOCOL,
              "receiver sent %s after an early END, want ERROR code %u", w_describe(&f),
              CODE_PROTOCOL);
    w_expect_eof(&c, CLOSE_AFTER_ERROR_MS, "after its ERROR");
    w_close(&c);
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
    struct w_offer o = {size, 1700000700, 0, 0644, "same.bin", 8};
    uint8_t buf[W_HDR + 16];
    XXH128_hash_t h;
    struct stat before;
    struct stat after;
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    h = put_existing(&r, "same.bin", size, 67);
    cr_assert_eq(stat(harness_strf("%s/same.bin", r.dir), &before), 0);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    w_expect_type(&c, &f, W_NEED_HASH);
    w_send(&c, buf, w_enc_file_hash(buf, h));
    w_expect_type(&c, &f, W_COMPLETE);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
    cr_assert_eq(stat(harness_strf("%s/same.bin", r.dir), &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino, "same.bin was replaced");
    harness_must_ls(r.dir, "same.bin\n");
}

Test(wire, same_size_existing_file_gets_refuse_exists_when_different)
{
    /* Checks that after NEED_HASH a FILE_HASH that differs from the existing file's is answered
     * REFUSE code 1 (EXISTS) without --overwrite, leaving the file alone. */
    uint64_t size = W_CHUNK + 33;
    struct w_offer o = {size, 1700000800, 0, 0644, "other.bin", 9};
    uint8_t buf[W_HDR + 16];
    XXH128_hash_t h;
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    h = put_existing(&r, "other.bin", size, 68);
    h.low64 ^= 1;
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    w_expect_type(&c, &f, W_NEED_HASH);
    w_send(&c, buf, w_enc_file_hash(buf, h));
    w_expect_type(&c, &f, W_REFUSE);
    cr_assert_eq(w_get_u16(f.payload), CODE_EXISTS, "receiver sent %s, want code %u",
                 w_describe(&f), CODE_EXISTS);
    send_bye(&c, CODE_EXISTS);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
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
        struct w_conn c;
        pid_t pid;
        int port;
        int rc;

        pid = harness_must_recv(&port, harness_pathf("dst%zu", i), (const char *[]){"--once", NULL},
                                NULL, name);
        w_connect(&c, port, HARNESS_SECRET, 0, name);
        w_handshake(&c);
        send_bye(&c, cases[i].status);
        w_expect_eof(&c, REPLY_MS, "after BYE");
        w_close(&c);
        rc = harness_wait(pid, REPLY_MS);
        cr_assert_eq(rc, cases[i].exit_code,
                     "recv --once after BYE status %u: exit %d, want %d (-%d: still running); "
                     "stderr:\n%s",
                     cases[i].status, rc, cases[i].exit_code, ETIMEDOUT, harness_log(name));
    }
}

Test(wire, error_from_the_sender_makes_the_receiver_close_quietly)
{
    /* Checks that the receiver, on getting a (sealed) ERROR, closes the connection without
     * answering it (PINGs aside), and keeps serving. */
    uint8_t buf[64];
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    w_send(&c, buf, w_enc_error(buf, CODE_IO, "test gives up"));
    w_expect_eof(&c, REPLY_MS, "after our ERROR");
    w_close(&c);
    expect_rx_still_serves(&r);
}

/* Sends chunks [0, n) of file for o on a fresh session, waits for the ACK of all of them, and
 * drops the connection without BYE, as a killed sender would. */
static void leave_partial(const struct rx *r, const struct w_offer *o, const uint8_t *file,
                          uint32_t nchunks)
{
    uint64_t target = (uint64_t)nchunks * W_CHUNK;
    struct w_frame f;
    struct w_conn c;

    open_conn(&c, r);
    w_handshake(&c);
    send_offer(&c, o);
    expect_accept(&c, 1, 0);
    for (uint32_t i = 0; i < nchunks; i++)
        send_chunk(&c, 1, file, (uint64_t)i * W_CHUNK, W_CHUNK, 0);
    for (;;) {
        w_next(&c, &f, "the ACK of the chunks sent");
        cr_assert_eq(f.type, W_ACK, "receiver sent %s, want ACK", w_describe(&f));
        if (w_get_u64(f.payload + 4) == target)
            break;
    }
    w_close(&c);
}

/* Offers o on a fresh connection c and returns the answer in *f. While the receiver answers
 * REFUSE RETRY (our previous connection for the name is still closing) it reconnects after a
 * first backoff step of 100 ms, up to REPLY_MS in all. */
static void offer_again(const struct rx *r, const struct w_offer *o, struct w_conn *c,
                        struct w_frame *f)
{
    long long deadline = w_now_ms() + REPLY_MS;
    struct timespec backoff = {0, 100 * 1000000L};

    for (;;) {
        open_conn(c, r);
        w_handshake(c);
        send_offer(c, o);
        w_next(c, f, "the answer to the OFFER");
        if (f->type != W_REFUSE || w_get_u16(f->payload) != CODE_RETRY)
            return;
        w_close(c);
        cr_assert_lt(w_now_ms(), deadline, "still REFUSE RETRY after %d ms", REPLY_MS);
        (void)nanosleep(&backoff, NULL); /* an early wake-up only retries sooner */
    }
}

Test(wire, reconnecting_sender_gets_accept_at_the_confirmed_offset)
{
    /* Checks RESUME by hand: after 3 chunks of a 5-chunk file were ACKed and the connection
     * dropped, the same OFFER on a new connection (a new handshake, new keys) gets ACCEPT(1,
     * 3 MiB), and sending the rest with END over the whole file commits the right bytes. */
    uint64_t size = 4 * W_CHUNK + 3;
    uint8_t *file = make_content(size, 69, "src/resume.bin");
    struct w_offer o = {size, 1700000900, 123, 0644, "resume.bin", 10};
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    leave_partial(&r, &o, file, 3);
    offer_again(&r, &o, &c, &f);
    cr_assert(f.type == W_ACCEPT && w_get_u32(f.payload) == 1 &&
                  w_get_u64(f.payload + 4) == 3 * W_CHUNK,
              "receiver sent %s, want ACCEPT(epoch 1, offset %u)", w_describe(&f), 3 * W_CHUNK);
    send_chunks_from(&c, 1, file, size, 3 * W_CHUNK);
    send_end(&c, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 1, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
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
    struct w_offer o = {size, 1700001000, 5, 0644, "ident.bin", 9};
    struct w_frame f;
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    leave_partial(&r, &o, old, 2);
    o.mtime_nsec = 6;
    offer_again(&r, &o, &c, &f);
    cr_assert(f.type == W_ACCEPT && w_get_u32(f.payload) == 1 && w_get_u64(f.payload + 4) == 0,
              "receiver sent %s, want ACCEPT(epoch 1, offset 0)", w_describe(&f));
    send_chunks_from(&c, 1, file, size, 0);
    send_end(&c, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 1, size);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
    free(old);
    free(file);
    cr_assert_eq(
        harness_cmp_files(harness_pathf("src/ident.bin"), harness_strf("%s/ident.bin", r.dir)), 0,
        "ident.bin is not the new content");
}

Test(wire, ping_before_hello_is_ignored)
{
    /* Checks that PING, valid in every state, may come in the clear before HELLO, between
     * WELCOME and AUTH, and after the receiver's AUTH until our first record (each side switches
     * to records at its own moment): it gets no answer, the HELLO after it gets WELCOME, the
     * AUTH after it the receiver's AUTH, and a sealed BYE then ends the session cleanly. */
    uint8_t buf[W_HDR];
    struct w_conn c;
    struct rx r;

    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_put_header(buf, 0, W_PING);
    w_send_raw(&c, buf, W_HDR);
    w_hello(&c);
    w_send_raw(&c, buf, W_HDR);
    w_send_auth(&c, c.keys.client_tag);
    w_expect_receiver_auth(&c);
    w_send_raw(&c, buf, W_HDR);
    send_bye(&c, CODE_OK);
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);
}

Test(wire, sigterm_sends_error_shutdown_on_every_connection)
{
    /* Checks that a receiver sent SIGTERM sends ERROR code 11 (SHUTDOWN), sealed, and closes
     * both an idle connection and one in the middle of a file, exits 0, and keeps that file's
     * partial. */
    uint64_t size = 3 * W_CHUNK;
    uint8_t *file = make_content(size, 72, "src/down.bin");
    struct w_offer o = {size, 1700001100, 0, 0644, "down.bin", 8};
    struct w_frame f;
    struct w_conn idle;
    struct w_conn busy;
    struct rx r;
    int rc;

    start_rx(&r, NULL);
    open_conn(&idle, &r);
    w_handshake(&idle);
    open_conn(&busy, &r);
    w_handshake(&busy);
    send_offer(&busy, &o);
    expect_accept(&busy, 1, 0);
    send_chunk(&busy, 1, file, 0, W_CHUNK, 0);
    do {
        w_next(&busy, &f, "the ACK of the first chunk");
    } while (f.type == W_ACK && w_get_u64(f.payload + 4) < W_CHUNK);
    cr_assert(f.type == W_ACK, "receiver sent %s, want ACK", w_describe(&f));

    cr_assert_eq(harness_kill(r.pid, SIGTERM), 0);
    w_expect_error_and_close(&idle, CODE_SHUTDOWN, 1, "on the idle connection after SIGTERM");
    w_expect_error_and_close(&busy, CODE_SHUTDOWN, 1, "on the busy connection after SIGTERM");
    w_close(&idle);
    w_close(&busy);
    free(file);
    rc = harness_wait(r.pid, REPLY_MS);
    cr_assert_eq(rc, 0, "exit %d after SIGTERM, want 0; stderr:\n%s", rc, harness_log("recv"));
    cr_assert_not_null(harness_find_one(harness_strf("%s/.xfer", r.dir), ".part"),
                       "the partial of down.bin is gone");
}

Test(wire, partial_state_is_private)
{
    /* Checks FILES: after ACCEPT, .xfer is mode 0700 and HEX.part and HEX.journal are 0600. */
    struct w_offer o = {5, 1700001200, 0, 0644, "modes.txt", 9};
    struct w_conn c;
    char *base;
    struct stat st;
    struct rx r;

    start_rx(&r, NULL);
    base = harness_strf("%s/.xfer/%s", r.dir, state_key("modes.txt"));
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    cr_assert_eq(stat(harness_strf("%s/.xfer", r.dir), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0700, ".xfer has mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(stat(harness_strf("%s.part", base), &st), 0, "no %s.part", base);
    cr_assert_eq(st.st_mode & 07777, 0600, ".part has mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(stat(harness_strf("%s.journal", base), &st), 0, "no %s.journal", base);
    cr_assert_eq(st.st_mode & 07777, 0600, ".journal has mode %o", (unsigned)(st.st_mode & 07777));
    w_close(&c);
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
    struct w_offer o = {size, -12345, 999999999, 0644, "jnl.bin", 7};
    uint64_t hashes[8];
    uint64_t nhashes = 0;
    uint64_t last_confirmed = 0;
    XXH3_state_t *st = XXH3_createState();
    XXH3_state_t *fresh = XXH3_createState();
    XXH128_hash_t want;
    XXH128_hash_t got;
    struct w_frame f;
    struct w_conn c;
    struct rx r;
    uint8_t *j;
    size_t len;
    size_t pos;
    uint32_t L;
    int records = 0;

    cr_assert(st != NULL && fresh != NULL);
    start_rx(&r, NULL);
    open_conn(&c, &r);
    w_handshake(&c);
    send_offer(&c, &o);
    expect_accept(&c, 1, 0);
    for (uint64_t off = 0; off < confirmed; off += W_CHUNK)
        send_chunk(&c, 1, file, off, W_CHUNK, 0);
    do {
        w_next(&c, &f, "ACK of 3 MiB");
        cr_assert_eq(f.type, W_ACK, "receiver sent %s, want ACK", w_describe(&f));
    } while (w_get_u64(f.payload + 4) < confirmed);

    /* ACK comes only after the record vouching for it is synced, so it is on disk now. */
    j = slurp(harness_strf("%s/.xfer/%s.journal", r.dir, state_key("jnl.bin")), &len);
    cr_assert_geq(len, 50, "journal of %zu bytes", len);
    cr_assert_eq(w_get_u32(j), 0x584A4E4Cu, "header magic %#x", w_get_u32(j));
    cr_assert_eq(w_get_u32(j + 4), 1, "journal version %u", w_get_u32(j + 4));
    cr_assert_eq(w_get_u32(j + 8), W_CHUNK, "chunk_size %u", w_get_u32(j + 8));
    cr_assert_eq(w_get_u32(j + 12), XXH_versionNumber(), "xxh_version %u, this xxHash is %u",
                 w_get_u32(j + 12), XXH_versionNumber());
    cr_assert_eq(w_get_u32(j + 16), sizeof(XXH3_state_t), "state_size %u, sizeof is %zu",
                 w_get_u32(j + 16), sizeof(XXH3_state_t));
    cr_assert_eq(w_get_u64(j + 20), size);
    cr_assert_eq((int64_t)w_get_u64(j + 28), -12345, "mtime_sec %lld",
                 (long long)(int64_t)w_get_u64(j + 28));
    cr_assert_eq(w_get_u32(j + 36), 999999999u);
    L = w_get_u16(j + 40);
    cr_assert_eq(L, 7);
    cr_assert_geq(len, 50 + L);
    cr_assert(memcmp(j + 42, "jnl.bin", 7) == 0, "journal name differs");
    cr_assert_eq(w_get_u64(j + 42 + L), XXH3_64bits(j, 42 + L), "header checksum is wrong");

    pos = 50 + L;
    while (pos < len) {
        const uint8_t *rec = j + pos;
        uint64_t from;
        uint32_t n;
        uint32_t S;
        size_t reclen;

        cr_assert_geq(len - pos, 28, "a torn record at %zu", pos);
        cr_assert_eq(w_get_u32(rec), 0x584A5243u, "record magic %#x at %zu", w_get_u32(rec), pos);
        from = w_get_u64(rec + 4);
        n = w_get_u32(rec + 12);
        S = w_get_u32(rec + 24);
        cr_assert_eq(S, sizeof(XXH3_state_t), "state_len %u", S);
        reclen = 28 + (size_t)S + 8 * (size_t)n + 8;
        cr_assert_geq(len - pos, reclen, "a torn record at %zu", pos);
        cr_assert_eq(w_get_u64(rec + reclen - 8), XXH3_64bits(rec, reclen - 8),
                     "record checksum wrong at %zu", pos);
        cr_assert_leq(from, nhashes, "record from_chunk %llu beyond %llu known hashes",
                      (unsigned long long)from, (unsigned long long)nhashes);
        cr_assert_leq(from + n, sizeof(hashes) / sizeof(hashes[0]));
        for (uint32_t k = 0; k < n; k++)
            hashes[from + k] = w_get_u64(rec + 28 + S + 8 * k);
        nhashes = from + n;
        last_confirmed = w_get_u64(rec + 16);
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

    send_chunks_from(&c, 1, file, size, confirmed);
    send_end(&c, 1, XXH3_128bits(file, size));
    expect_acks_then_committed(&c, 1, size);
    w_close(&c);
    free(j);
    free(file);
    XXH3_freeState(st);
    XXH3_freeState(fresh);
    harness_must_ls(r.dir, "jnl.bin\n");
}
