/* seal: the AEAD record layer. Every test runs under each cipher this
 * machine has (AES-256-GCM only with AES hardware). A failed seal_open may
 * leave the body scrambled (AES-GCM decrypts before it checks), so each
 * attempt opens a fresh copy of the record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "helpers.h"
#include "xfer/auth.h"
#include "xfer/buf.h"
#include "xfer/err.h"
#include "xfer/proto.h"
#include "xfer/seal.h"

#define FULL_DATA_FRAME (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)

static void setup(void)
{
    cr_assert_eq(auth_init(), 0, "libsodium cannot be initialised");
}

TestSuite(seal, .init = setup);

/* The ciphers to test here: XChaCha20 always, AES-256-GCM when available. */
static size_t ciphers(uint16_t out[2])
{
    size_t n = 0;

    out[n++] = AUTH_CIPHER_XCHACHA20;
    if (crypto_aead_aes256gcm_is_available())
        out[n++] = AUTH_CIPHER_AES256GCM;
    return n;
}

static const char *cipher_name(uint16_t c)
{
    return c == AUTH_CIPHER_AES256GCM ? "AES-256-GCM" : "XChaCha20-Poly1305";
}

static void key_fill(uint8_t key[32], uint8_t first)
{
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(first + 7 * i);
}

/* A seal that is wiped (its cipher context freed) when it goes out of scope. */
#define SCOPED_SEAL(name) struct seal name __attribute__((cleanup(seal_wipe))) = {0}

/* A sender's tx and the matching receiver's rx: same cipher, same key. */
static void seal_pair(struct seal *tx, struct seal *rx, uint16_t cipher)
{
    uint8_t key[32];

    key_fill(key, 0x11);
    cr_assert_eq(seal_init(tx, cipher, key), 0, "%s", cipher_name(cipher));
    cr_assert_eq(seal_init(rx, cipher, key), 0, "%s", cipher_name(cipher));
}

/* A sealed record in its own malloc'd buffer. */
struct record {
    uint8_t *bytes;
    size_t len; /* SEAL_HDR_LEN + frame + SEAL_TAG_LEN */
};

/* Seals n bytes of frame with s into a new record. */
static struct record seal_frame(struct seal *s, const uint8_t *frame, size_t n)
{
    struct record r;
    int rc;

    r.bytes = malloc(n + SEAL_OVERHEAD);
    cr_assert_not_null(r.bytes);
    memcpy(r.bytes + SEAL_HDR_LEN, frame, n);
    rc = seal_close(s, r.bytes, n);
    cr_assert_eq(rc, (int)(n + SEAL_OVERHEAD), "seal_close of %zu bytes: %d", n, rc);
    r.len = (size_t)rc;
    return r;
}

/* Opens a copy of rec's body (ending at a guard page) with s, as the link
 * does: header first, then the body it announces. Returns seal_open's
 * result; on success copies the frame to out (if not NULL). */
static int open_copy(struct seal *s, const struct record *rec, uint8_t *out)
{
    struct guard g = {0};
    size_t blen = rec->len - SEAL_HDR_LEN;
    uint8_t *body = guard_alloc(&g, blen);
    int rc;

    memcpy(body, rec->bytes + SEAL_HDR_LEN, blen);
    rc = seal_open(s, rec->bytes, body, blen);
    if (rc >= 0 && out != NULL)
        memcpy(out, body, (size_t)rc);
    guard_free(&g);
    return rc;
}

/* n bytes of deterministic noise that start with a frame header (a PING's,
 * whatever the length) so the record looks like what link.c seals. */
static uint8_t *frame_bytes(size_t n)
{
    uint8_t *p = malloc(n);
    uint32_t x = 0x5eed1234u;

    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 24);
    }
    if (n >= PROTO_HDR_LEN) {
        struct buf_writer w;

        buf_writer_init(&w, p, PROTO_HDR_LEN);
        cr_assert_eq(buf_put_u32(&w, (uint32_t)(n - PROTO_HDR_LEN)), 0);
        cr_assert_eq(buf_put_u8(&w, PROTO_PING), 0);
        cr_assert_eq(buf_put_u8(&w, 0), 0);
        cr_assert_eq(buf_put_u16(&w, 0), 0);
    }
    return p;
}

/* The largest frame a record carries: a DATA frame of a whole chunk. */
static uint8_t *full_data_frame(void)
{
    struct proto_frame f;
    uint8_t *chunk = frame_bytes(PROTO_CHUNK_SIZE);
    uint8_t *out = malloc(FULL_DATA_FRAME);

    cr_assert_not_null(out);
    memset(&f, 0, sizeof(f));
    f.type = PROTO_DATA;
    f.u.data.epoch = 1;
    f.u.data.offset = 0;
    f.u.data.len = PROTO_CHUNK_SIZE;
    f.u.data.bytes = chunk;
    f.u.data.hash = proto_chunk_hash(chunk, PROTO_CHUNK_SIZE, 0);
    cr_assert_eq(proto_encode(&f, out, FULL_DATA_FRAME), FULL_DATA_FRAME);
    free(chunk);
    return out;
}

/* Seals frame in place in a buffer that ends at a guard page, checks the
 * header, opens it in place and compares. */
static void check_round_trip_in_place(uint16_t cipher, const uint8_t *frame, size_t n)
{
    SCOPED_SEAL(tx);
    SCOPED_SEAL(rx);
    struct guard g = {0};
    uint8_t *rec = guard_alloc(&g, n + SEAL_OVERHEAD);
    int rc;

    seal_pair(&tx, &rx, cipher);
    memcpy(rec + SEAL_HDR_LEN, frame, n);
    cr_assert_eq(seal_close(&tx, rec, n), (int)(n + SEAL_OVERHEAD), "%s, %zu bytes",
                 cipher_name(cipher), n);
    if (n >= 16)
        cr_assert_arr_neq(rec + SEAL_HDR_LEN, frame, 16, "%s: the frame went out in clear",
                          cipher_name(cipher));
    cr_assert_eq(seal_parse_header(rec), (int)(n + SEAL_TAG_LEN));
    rc = seal_open(&rx, rec, rec + SEAL_HDR_LEN, n + SEAL_TAG_LEN);
    cr_assert_eq(rc, (int)n, "%s, %zu bytes: seal_open returned %d", cipher_name(cipher), n, rc);
    cr_assert_arr_eq(rec + SEAL_HDR_LEN, frame, n, "%s, %zu bytes", cipher_name(cipher), n);
    guard_free(&g);
}

/* ---- round trips ---- */

Test(seal, a_bare_frame_header_round_trips_in_place)
{
    /* Checks an 8-byte frame (a PING) sealed and opened in place, under each cipher. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    struct proto_frame ping = {.type = PROTO_PING};
    uint8_t frame[PROTO_HDR_LEN];

    cr_assert_eq(proto_encode(&ping, frame, sizeof(frame)), PROTO_HDR_LEN);
    for (size_t i = 0; i < nc; i++)
        check_round_trip_in_place(c[i], frame, sizeof(frame));
}

Test(seal, a_4096_byte_frame_round_trips_in_place)
{
    /* Checks a 4096-byte frame sealed and opened in place, under each cipher. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(4096);

    for (size_t i = 0; i < nc; i++)
        check_round_trip_in_place(c[i], frame, 4096);
    free(frame);
}

Test(seal, a_full_data_frame_round_trips_in_place_and_still_decodes)
{
    /* Checks the largest DATA frame (8 + 20 + 1 MiB) sealed, opened in place and decoded. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = full_data_frame();

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec;
        struct proto_frame f;
        uint8_t *out = malloc(FULL_DATA_FRAME);

        cr_assert_not_null(out);
        check_round_trip_in_place(c[i], frame, FULL_DATA_FRAME);
        seal_pair(&tx, &rx, c[i]);
        rec = seal_frame(&tx, frame, FULL_DATA_FRAME);
        cr_assert_eq(open_copy(&rx, &rec, out), FULL_DATA_FRAME);
        cr_assert_eq(proto_decode(out, FULL_DATA_FRAME, &f), FULL_DATA_FRAME);
        cr_assert_eq(f.u.data.len, PROTO_CHUNK_SIZE);
        cr_assert_eq(f.u.data.hash, proto_chunk_hash(f.u.data.bytes, PROTO_CHUNK_SIZE, 0));
        free(rec.bytes);
        free(out);
    }
    free(frame);
}

Test(seal, a_long_sequence_of_records_opens_in_order)
{
    /* Checks 300 records of varied sizes sealed one after another open in the same order. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(600);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);

        seal_pair(&tx, &rx, c[i]);
        for (size_t k = 0; k < 300; k++) {
            size_t n = PROTO_HDR_LEN + (k * 37) % 592;
            uint8_t out[600];
            struct record rec = seal_frame(&tx, frame, n);

            cr_assert_eq(open_copy(&rx, &rec, out), (int)n, "%s, record %zu", cipher_name(c[i]), k);
            cr_assert_arr_eq(out, frame, n);
            free(rec.bytes);
        }
    }
    free(frame);
}

Test(seal, the_record_header_is_length_type_0x80_and_zeros)
{
    /* Checks the header seal_close writes: u32 body length (frame + 16), 0x80, three zeros. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(300);

    for (size_t i = 0; i < nc; i++) {
        static const uint8_t want[SEAL_HDR_LEN] = {0x00, 0x00, 0x01, 0x3c, 0x80, 0x00, 0x00, 0x00};
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec;

        seal_pair(&tx, &rx, c[i]);
        rec = seal_frame(&tx, frame, 300);
        cr_assert_arr_eq(rec.bytes, want, SEAL_HDR_LEN, "%s", cipher_name(c[i]));
        free(rec.bytes);
    }
    free(frame);
}

Test(seal, the_same_frame_sealed_twice_differs)
{
    /* Checks that the nonce moves on: one frame sealed twice gives two different records. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(64);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record a;
        struct record b;

        seal_pair(&tx, &rx, c[i]);
        a = seal_frame(&tx, frame, 64);
        b = seal_frame(&tx, frame, 64);
        cr_assert_arr_neq(a.bytes + SEAL_HDR_LEN, b.bytes + SEAL_HDR_LEN, 64 + SEAL_TAG_LEN, "%s",
                          cipher_name(c[i]));
        free(a.bytes);
        free(b.bytes);
    }
    free(frame);
}

/* ---- tampering ---- */

/* Flips bit (of byte at) in a copy of rec and expects seal_open to refuse it. */
static void check_flip_refused(struct seal *rx, const struct record *rec, size_t at, int bit,
                               uint16_t cipher)
{
    struct record bad;
    int rc;

    bad.len = rec->len;
    bad.bytes = malloc(rec->len);
    cr_assert_not_null(bad.bytes);
    memcpy(bad.bytes, rec->bytes, rec->len);
    bad.bytes[at] ^= (uint8_t)(1u << bit);
    rc = open_copy(rx, &bad, NULL);
    cr_assert_eq(rc, XFER_ECORRUPT, "%s: bit %d of byte %zu of %zu flipped: %d",
                 cipher_name(cipher), bit, at, rec->len, rc);
    free(bad.bytes);
}

Test(seal, flipping_any_bit_of_a_small_record_is_corrupt)
{
    /* Checks every bit of header, ciphertext and tag of a 40-byte record: XFER_ECORRUPT. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(16);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec;
        uint8_t out[16];

        seal_pair(&tx, &rx, c[i]);
        rec = seal_frame(&tx, frame, 16);
        for (size_t at = 0; at < rec.len; at++) {
            for (int bit = 0; bit < 8; bit++)
                check_flip_refused(&rx, &rec, at, bit, c[i]);
        }
        /* the failures did not move the receiver on: the real record opens */
        cr_assert_eq(open_copy(&rx, &rec, out), 16, "%s", cipher_name(c[i]));
        cr_assert_arr_eq(out, frame, 16);
        free(rec.bytes);
    }
    free(frame);
}

Test(seal, flipping_a_bit_anywhere_in_a_full_data_record_is_corrupt)
{
    /* Checks flips in each header byte, 3 places of the 1 MiB ciphertext, each tag byte. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = full_data_frame();

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec;
        size_t body_end;

        seal_pair(&tx, &rx, c[i]);
        rec = seal_frame(&tx, frame, FULL_DATA_FRAME);
        body_end = SEAL_HDR_LEN + FULL_DATA_FRAME;
        for (size_t at = 0; at < SEAL_HDR_LEN; at++)
            check_flip_refused(&rx, &rec, at, (int)(at % 8), c[i]);
        check_flip_refused(&rx, &rec, SEAL_HDR_LEN, 0, c[i]);
        check_flip_refused(&rx, &rec, SEAL_HDR_LEN + FULL_DATA_FRAME / 2, 3, c[i]);
        check_flip_refused(&rx, &rec, body_end - 1, 7, c[i]);
        for (size_t at = body_end; at < rec.len; at++)
            check_flip_refused(&rx, &rec, at, (int)(at % 8), c[i]);
        cr_assert_eq(open_copy(&rx, &rec, NULL), FULL_DATA_FRAME);
        free(rec.bytes);
    }
    free(frame);
}

Test(seal, a_record_cut_short_is_corrupt)
{
    /* Checks a body missing its last byte, or its whole tag, opened with a matching header. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(64);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec;
        struct record cut;
        struct buf_writer w;

        seal_pair(&tx, &rx, c[i]);
        rec = seal_frame(&tx, frame, 64);
        cut = rec;
        for (size_t drop = 1; drop <= SEAL_TAG_LEN; drop += SEAL_TAG_LEN - 1) {
            /* a header that agrees with the shorter body, as an attacker would send */
            cut.len = rec.len - drop;
            buf_writer_init(&w, cut.bytes, 4);
            cr_assert_eq(buf_put_u32(&w, (uint32_t)(cut.len - SEAL_HDR_LEN)), 0);
            cr_assert_eq(open_copy(&rx, &cut, NULL), XFER_ECORRUPT, "%s, %zu bytes dropped",
                         cipher_name(c[i]), drop);
        }
        free(rec.bytes);
    }
    free(frame);
}

Test(seal, open_refuses_bodies_shorter_than_a_tag_or_longer_than_the_maximum)
{
    /* Checks seal_open with a 0- or 15-byte body, or SEAL_MAX_BODY + 1 bytes: XFER_ECORRUPT. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t hdr[SEAL_HDR_LEN] = {0, 0, 0, 0, SEAL_RECORD_TYPE, 0, 0, 0};
    uint8_t *big = calloc(1, SEAL_MAX_BODY + 1);

    cr_assert_not_null(big);
    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);

        seal_pair(&tx, &rx, c[i]);
        cr_assert_eq(seal_open(&rx, hdr, big, 0), XFER_ECORRUPT);
        cr_assert_eq(seal_open(&rx, hdr, big, SEAL_TAG_LEN - 1), XFER_ECORRUPT);
        cr_assert_eq(seal_open(&rx, hdr, big, SEAL_MAX_BODY + 1), XFER_ECORRUPT);
    }
    free(big);
}

/* ---- replay, loss, reordering, reflection ---- */

/* Seals three different frames with tx; rec[k] carries frame k. */
static void seal_three(struct seal *tx, struct record rec[3], uint8_t *frames)
{
    for (int k = 0; k < 3; k++)
        rec[k] = seal_frame(tx, frames + 32 * k, 32);
}

static void free_three(struct record rec[3])
{
    for (int k = 0; k < 3; k++)
        free(rec[k].bytes);
}

Test(seal, a_replayed_record_is_corrupt)
{
    /* Checks that opening the same record a second time fails, and the next one still opens. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frames = frame_bytes(96);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec[3];

        seal_pair(&tx, &rx, c[i]);
        seal_three(&tx, rec, frames);
        cr_assert_eq(open_copy(&rx, &rec[0], NULL), 32);
        cr_assert_eq(open_copy(&rx, &rec[0], NULL), XFER_ECORRUPT, "%s: replay opened",
                     cipher_name(c[i]));
        cr_assert_eq(open_copy(&rx, &rec[1], NULL), 32);
        free_three(rec);
    }
    free(frames);
}

Test(seal, a_dropped_record_makes_the_next_one_corrupt)
{
    /* Checks that record 2 opened as if it were the first fails: a lost record is noticed. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frames = frame_bytes(96);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec[3];

        seal_pair(&tx, &rx, c[i]);
        seal_three(&tx, rec, frames);
        cr_assert_eq(open_copy(&rx, &rec[1], NULL), XFER_ECORRUPT, "%s: record 2 opened first",
                     cipher_name(c[i]));
        cr_assert_eq(open_copy(&rx, &rec[2], NULL), XFER_ECORRUPT);
        free_three(rec);
    }
    free(frames);
}

Test(seal, reordered_records_are_corrupt)
{
    /* Checks records 1, 3, 2: record 3 out of turn fails, then 2 and 3 open in order. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frames = frame_bytes(96);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec[3];
        uint8_t out[32];

        seal_pair(&tx, &rx, c[i]);
        seal_three(&tx, rec, frames);
        cr_assert_eq(open_copy(&rx, &rec[0], NULL), 32);
        cr_assert_eq(open_copy(&rx, &rec[2], NULL), XFER_ECORRUPT, "%s: record 3 before 2",
                     cipher_name(c[i]));
        cr_assert_eq(open_copy(&rx, &rec[1], out), 32);
        cr_assert_arr_eq(out, frames + 32, 32);
        cr_assert_eq(open_copy(&rx, &rec[2], out), 32);
        cr_assert_arr_eq(out, frames + 64, 32);
        free_three(rec);
    }
    free(frames);
}

Test(seal, a_record_opened_with_the_other_directions_key_is_corrupt)
{
    /* Checks a record sealed with the c2s key cannot be opened with s2c (no reflection). */
    uint16_t c[2];
    size_t nc = ciphers(c);
    uint8_t *frame = frame_bytes(32);

    for (size_t i = 0; i < nc; i++) {
        uint8_t c2s[32];
        uint8_t s2c[32];
        SCOPED_SEAL(tx);
        SCOPED_SEAL(own_rx);
        struct record rec;

        key_fill(c2s, 0x11);
        key_fill(s2c, 0x12);
        cr_assert_eq(seal_init(&tx, c[i], c2s), 0);
        cr_assert_eq(seal_init(&own_rx, c[i], s2c), 0);
        rec = seal_frame(&tx, frame, 32);
        cr_assert_eq(open_copy(&own_rx, &rec, NULL), XFER_ECORRUPT, "%s", cipher_name(c[i]));
        free(rec.bytes);
    }
    free(frame);
}

Test(seal, a_record_sealed_with_one_cipher_does_not_open_with_the_other)
{
    /* Checks XChaCha20 -> AES-256-GCM and back with the same key and counter: XFER_ECORRUPT. */
    uint8_t key[32];
    uint8_t *frame = frame_bytes(32);
    SCOPED_SEAL(x);
    SCOPED_SEAL(a);
    struct record rec;

    if (!crypto_aead_aes256gcm_is_available()) {
        free(frame);
        cr_skip_test("no AES-256-GCM on this machine");
    }
    key_fill(key, 0x11);
    cr_assert_eq(seal_init(&x, AUTH_CIPHER_XCHACHA20, key), 0);
    cr_assert_eq(seal_init(&a, AUTH_CIPHER_AES256GCM, key), 0);
    rec = seal_frame(&x, frame, 32);
    cr_assert_eq(open_copy(&a, &rec, NULL), XFER_ECORRUPT, "XChaCha20 record opened by AES");
    free(rec.bytes);
    seal_wipe(&x);
    seal_wipe(&a);
    cr_assert_eq(seal_init(&x, AUTH_CIPHER_XCHACHA20, key), 0);
    cr_assert_eq(seal_init(&a, AUTH_CIPHER_AES256GCM, key), 0);
    rec = seal_frame(&a, frame, 32);
    cr_assert_eq(open_copy(&x, &rec, NULL), XFER_ECORRUPT, "AES record opened by XChaCha20");
    free(rec.bytes);
    free(frame);
}

/* ---- record header ---- */

/* seal_parse_header on a header built from its fields, at a guard page. */
static int parse(uint32_t len, uint8_t type, uint8_t flags, uint16_t reserved)
{
    uint8_t hdr[SEAL_HDR_LEN];
    struct guard g = {0};
    struct buf_writer w;
    int rc;

    buf_writer_init(&w, hdr, sizeof(hdr));
    cr_assert_eq(buf_put_u32(&w, len), 0);
    cr_assert_eq(buf_put_u8(&w, type), 0);
    cr_assert_eq(buf_put_u8(&w, flags), 0);
    cr_assert_eq(buf_put_u16(&w, reserved), 0);
    rc = seal_parse_header(guard_copy(&g, hdr, sizeof(hdr)));
    guard_free(&g);
    return rc;
}

Test(seal, parse_header_returns_the_body_length)
{
    /* Checks the smallest (8 + 16), a middling and the largest (SEAL_MAX_BODY) body lengths. */
    cr_assert_eq(parse(PROTO_HDR_LEN + SEAL_TAG_LEN, SEAL_RECORD_TYPE, 0, 0),
                 PROTO_HDR_LEN + SEAL_TAG_LEN);
    cr_assert_eq(parse(4096, SEAL_RECORD_TYPE, 0, 0), 4096);
    cr_assert_eq(parse(SEAL_MAX_BODY, SEAL_RECORD_TYPE, 0, 0), SEAL_MAX_BODY);
}

Test(seal, parse_header_rejects_a_wrong_type_byte)
{
    /* Checks type bytes 0x00, 0x01 (a clear HELLO), 0x09 (DATA), 0x7f, 0x81, 0xff: XFER_EPROTO. */
    static const uint8_t types[] = {0x00, PROTO_HELLO, PROTO_DATA, 0x7f, 0x81, 0xff};

    for (size_t i = 0; i < sizeof(types); i++)
        cr_assert_eq(parse(64, types[i], 0, 0), XFER_EPROTO, "type 0x%02x", types[i]);
}

Test(seal, parse_header_rejects_nonzero_flags_or_reserved)
{
    /* Checks each bit of the flags byte and of the reserved u16: XFER_EPROTO. */
    for (int bit = 0; bit < 8; bit++)
        cr_assert_eq(parse(64, SEAL_RECORD_TYPE, (uint8_t)(1u << bit), 0), XFER_EPROTO,
                     "flags bit %d", bit);
    for (int bit = 0; bit < 16; bit++)
        cr_assert_eq(parse(64, SEAL_RECORD_TYPE, 0, (uint16_t)(1u << bit)), XFER_EPROTO,
                     "reserved bit %d", bit);
}

Test(seal, parse_header_rejects_a_body_too_short_for_a_frame_and_tag)
{
    /* Checks body lengths 0..23 (< frame header + tag): XFER_EPROTO. */
    for (uint32_t len = 0; len < PROTO_HDR_LEN + SEAL_TAG_LEN; len++)
        cr_assert_eq(parse(len, SEAL_RECORD_TYPE, 0, 0), XFER_EPROTO, "length %u", len);
}

Test(seal, parse_header_rejects_a_body_past_the_maximum)
{
    /* Checks body lengths SEAL_MAX_BODY + 1 and UINT32_MAX: XFER_ETOOBIG. */
    cr_assert_eq(parse(SEAL_MAX_BODY + 1, SEAL_RECORD_TYPE, 0, 0), XFER_ETOOBIG);
    cr_assert_eq(parse(UINT32_MAX, SEAL_RECORD_TYPE, 0, 0), XFER_ETOOBIG);
}

/* ---- limits and set-up ---- */

Test(seal, a_frame_too_large_for_a_record_is_too_big)
{
    /* Checks seal_close of a full DATA frame + 1 byte: XFER_ETOOBIG, and the counter unmoved. */
    uint16_t c[2];
    size_t nc = ciphers(c);
    size_t n = FULL_DATA_FRAME + 1;
    uint8_t *buf = calloc(1, n + SEAL_OVERHEAD);
    uint8_t *frame = frame_bytes(32);

    cr_assert_not_null(buf);
    cr_assert_eq(n + SEAL_TAG_LEN, SEAL_MAX_BODY + 1);
    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(tx);
        SCOPED_SEAL(rx);
        struct record rec;

        seal_pair(&tx, &rx, c[i]);
        cr_assert_eq(seal_close(&tx, buf, n), XFER_ETOOBIG, "%s", cipher_name(c[i]));
        rec = seal_frame(&tx, frame, 32);
        cr_assert_eq(open_copy(&rx, &rec, NULL), 32, "%s: the refused frame used a nonce",
                     cipher_name(c[i]));
        free(rec.bytes);
    }
    free(frame);
    free(buf);
}

Test(seal, init_refuses_an_unknown_cipher)
{
    /* Checks seal_init with cipher 0, 3 (both bits) and 4: -1. */
    static const uint16_t bad[] = {0, AUTH_CIPHER_AES256GCM | AUTH_CIPHER_XCHACHA20, 4};
    uint8_t key[32];

    key_fill(key, 0x11);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        SCOPED_SEAL(s);

        cr_assert_lt(seal_init(&s, bad[i], key), 0, "cipher %u", bad[i]);
        seal_wipe(&s);
    }
}

Test(seal, init_refuses_aes_without_aes_hardware)
{
    /* Checks seal_init(AES-256-GCM) is -1 exactly where libsodium cannot run it. */
    uint8_t key[32];
    SCOPED_SEAL(s);

    key_fill(key, 0x11);
    if (crypto_aead_aes256gcm_is_available())
        cr_skip_test("this machine has AES-256-GCM");
    cr_assert_lt(seal_init(&s, AUTH_CIPHER_AES256GCM, key), 0);
}

Test(seal, wipe_zeroes_the_key_and_state)
{
    /* Checks that seal_wipe leaves every byte of the struct zero. */
    uint16_t c[2];
    size_t nc = ciphers(c);

    for (size_t i = 0; i < nc; i++) {
        SCOPED_SEAL(s);
        SCOPED_SEAL(zero);
        uint8_t key[32];

        key_fill(key, 0x11);
        cr_assert_eq(seal_init(&s, c[i], key), 0);
        memset(&zero, 0, sizeof(zero));
        cr_assert_neq(memcmp(&s, &zero, sizeof(s)), 0);
        seal_wipe(&s);
        cr_assert_eq(memcmp(&s, &zero, sizeof(s)), 0, "%s", cipher_name(c[i]));
    }
}
