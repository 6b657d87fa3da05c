/* proto: the frame codec. Every decode reads input that ends right before a
 * PROT_NONE page, so reading one byte too many crashes the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fixtures.h"
#include "helpers.h"
#include "xfer/buf.h"
#include "xfer/err.h"
#include "xfer/proto.h"

#define FRAME_MAX (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)

static const uint8_t sample_bytes[] = {'c', 'h', 'u', 'n', 'k', 0x00, 0xff, 0x01, 0x80, '\n'};

/* Fills n bytes with first, first + 1, ...: a distinct run per key field. */
static void fill_run(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + i);
}

/* A frame of the given type with distinct, non-trivial field values. */
static void sample(uint8_t type, struct proto_frame *f)
{
    static const char name[] = "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt";
    static const char refuse_text[] = "a different file already has that name";
    static const char error_text[] = "peer went silent";

    memset(f, 0, sizeof(*f));
    f->type = type;
    switch (type) {
    case PROTO_HELLO:
        f->u.hello.version = PROTO_VERSION;
        for (int i = 0; i < PROTO_SESSION_ID_LEN; i++)
            f->u.hello.session_id[i] = (uint8_t)(0xa0 + i);
        f->u.hello.ciphers = 0x0102u;
        fill_run(f->u.hello.pk, PROTO_KEY_LEN, 0x10);
        fill_run(f->u.hello.nonce, PROTO_KEY_LEN, 0x30);
        break;
    case PROTO_WELCOME:
        f->u.welcome.version = PROTO_VERSION;
        f->u.welcome.cipher = 0x0304u;
        fill_run(f->u.welcome.pk, PROTO_KEY_LEN, 0x50);
        fill_run(f->u.welcome.nonce, PROTO_KEY_LEN, 0x70);
        break;
    case PROTO_AUTH:
        fill_run(f->u.auth.tag, PROTO_KEY_LEN, 0xb0);
        break;
    case PROTO_OFFER:
        f->u.offer.size = UINT64_C(0x0000123456789abc);
        f->u.offer.mtime_sec = -31536000; /* 1969: before the epoch */
        f->u.offer.mtime_nsec = 999999999u;
        f->u.offer.mode = 0100755;
        f->u.offer.name_len = sizeof(name) - 1;
        memcpy(f->u.offer.name, name, sizeof(name));
        break;
    case PROTO_ACCEPT:
        f->u.accept.epoch = 0x01020304u;
        f->u.accept.offset = UINT64_C(5) * PROTO_CHUNK_SIZE;
        break;
    case PROTO_REFUSE:
        f->u.refuse.code = PROTO_EXISTS;
        f->u.refuse.text_len = sizeof(refuse_text) - 1;
        memcpy(f->u.refuse.text, refuse_text, sizeof(refuse_text));
        break;
    case PROTO_FILE_HASH:
        f->u.file_hash.high = UINT64_C(0x8899aabbccddeeff);
        f->u.file_hash.low = UINT64_C(0x0011223344556677);
        break;
    case PROTO_DATA:
        f->u.data.epoch = 9;
        f->u.data.offset = UINT64_C(3) * PROTO_CHUNK_SIZE;
        f->u.data.len = sizeof(sample_bytes);
        f->u.data.bytes = sample_bytes;
        f->u.data.hash = proto_chunk_hash(sample_bytes, sizeof(sample_bytes), f->u.data.offset);
        break;
    case PROTO_ACK:
        f->u.ack.epoch = 0xfffffffeu;
        f->u.ack.offset = INT64_MAX;
        break;
    case PROTO_REWIND:
        f->u.rewind.epoch = 3;
        f->u.rewind.offset = UINT64_C(2) * PROTO_CHUNK_SIZE;
        f->u.rewind.reason = PROTO_REWIND_VERIFY;
        break;
    case PROTO_END:
        f->u.end.epoch = 4;
        f->u.end.hash.high = UINT64_C(0x0123456789abcdef);
        f->u.end.hash.low = UINT64_C(0xfedcba9876543210);
        break;
    case PROTO_ERROR:
        f->u.error.code = PROTO_TIMEOUT;
        f->u.error.text_len = sizeof(error_text) - 1;
        memcpy(f->u.error.text, error_text, sizeof(error_text));
        break;
    case PROTO_BYE:
        f->u.bye.status = PROTO_SHUTDOWN;
        break;
    default: /* COMPLETE, NEED_HASH, COMMITTED, PING: no payload */
        break;
    }
}

/* Compares every field the type carries. */
static void assert_frames_equal(const struct proto_frame *got, const struct proto_frame *want)
{
    const char *t = proto_type_name(want->type);

    cr_assert_eq(got->type, want->type, "type %u, want %s", got->type, t);
    switch (want->type) {
    case PROTO_HELLO:
        cr_assert_eq(got->u.hello.version, want->u.hello.version);
        cr_assert_eq(got->u.hello.flags, want->u.hello.flags);
        cr_assert_arr_eq(got->u.hello.session_id, want->u.hello.session_id, PROTO_SESSION_ID_LEN);
        cr_assert_eq(got->u.hello.ciphers, want->u.hello.ciphers);
        cr_assert_arr_eq(got->u.hello.pk, want->u.hello.pk, PROTO_KEY_LEN);
        cr_assert_arr_eq(got->u.hello.nonce, want->u.hello.nonce, PROTO_KEY_LEN);
        break;
    case PROTO_WELCOME:
        cr_assert_eq(got->u.welcome.version, want->u.welcome.version);
        cr_assert_eq(got->u.welcome.flags, want->u.welcome.flags);
        cr_assert_eq(got->u.welcome.cipher, want->u.welcome.cipher);
        cr_assert_arr_eq(got->u.welcome.pk, want->u.welcome.pk, PROTO_KEY_LEN);
        cr_assert_arr_eq(got->u.welcome.nonce, want->u.welcome.nonce, PROTO_KEY_LEN);
        break;
    case PROTO_AUTH:
        cr_assert_arr_eq(got->u.auth.tag, want->u.auth.tag, PROTO_KEY_LEN);
        break;
    case PROTO_OFFER:
        cr_assert_eq(got->u.offer.size, want->u.offer.size);
        cr_assert_eq(got->u.offer.mtime_sec, want->u.offer.mtime_sec);
        cr_assert_eq(got->u.offer.mtime_nsec, want->u.offer.mtime_nsec);
        cr_assert_eq(got->u.offer.mode, want->u.offer.mode);
        cr_assert_eq(got->u.offer.name_len, want->u.offer.name_len);
        cr_assert_arr_eq(got->u.offer.name, want->u.offer.name, want->u.offer.name_len);
        cr_assert_eq(got->u.offer.name[got->u.offer.name_len], '\0', "name not terminated");
        break;
    case PROTO_ACCEPT:
        cr_assert_eq(got->u.accept.epoch, want->u.accept.epoch);
        cr_assert_eq(got->u.accept.offset, want->u.accept.offset);
        break;
    case PROTO_ACK:
        cr_assert_eq(got->u.ack.epoch, want->u.ack.epoch);
        cr_assert_eq(got->u.ack.offset, want->u.ack.offset);
        break;
    case PROTO_REWIND:
        cr_assert_eq(got->u.rewind.epoch, want->u.rewind.epoch);
        cr_assert_eq(got->u.rewind.offset, want->u.rewind.offset);
        cr_assert_eq(got->u.rewind.reason, want->u.rewind.reason);
        break;
    case PROTO_REFUSE:
    case PROTO_ERROR:
        /* refuse and error share one layout */
        cr_assert_eq(got->u.refuse.code, want->u.refuse.code, "%s code", t);
        cr_assert_eq(got->u.refuse.text_len, want->u.refuse.text_len, "%s text_len", t);
        cr_assert_arr_eq(got->u.refuse.text, want->u.refuse.text, want->u.refuse.text_len);
        cr_assert_eq(got->u.refuse.text[got->u.refuse.text_len], '\0', "text not terminated");
        break;
    case PROTO_FILE_HASH:
        cr_assert_eq(got->u.file_hash.high, want->u.file_hash.high);
        cr_assert_eq(got->u.file_hash.low, want->u.file_hash.low);
        break;
    case PROTO_DATA:
        cr_assert_eq(got->u.data.epoch, want->u.data.epoch);
        cr_assert_eq(got->u.data.offset, want->u.data.offset);
        cr_assert_eq(got->u.data.hash, want->u.data.hash);
        cr_assert_eq(got->u.data.len, want->u.data.len);
        cr_assert_arr_eq(got->u.data.bytes, want->u.data.bytes, want->u.data.len);
        break;
    case PROTO_END:
        cr_assert_eq(got->u.end.epoch, want->u.end.epoch);
        cr_assert_eq(got->u.end.hash.high, want->u.end.hash.high);
        cr_assert_eq(got->u.end.hash.low, want->u.end.hash.low);
        break;
    case PROTO_BYE:
        cr_assert_eq(got->u.bye.status, want->u.bye.status);
        break;
    default:
        break;
    }
}

/* Encodes f into a malloc'd buffer; returns it and the length. */
static uint8_t *encode(const struct proto_frame *f, size_t *len)
{
    uint8_t *out = malloc(FRAME_MAX);
    int n;

    cr_assert_not_null(out);
    n = proto_encode(f, out, FRAME_MAX);
    cr_assert_gt(n, 0, "encoding %s: %d", proto_type_name(f->type), n);
    *len = (size_t)n;
    return out;
}

/* Decodes len bytes of p copied to end at a guard page. The copy stays mapped
 * (DATA's bytes point into it) until guard_free(g). */
static int decode_at_guard(struct guard *g, const void *p, size_t len, struct proto_frame *f)
{
    return proto_decode(guard_copy(g, p, len), len, f);
}

static int decode_once(const void *p, size_t len)
{
    struct guard g = {0};
    struct proto_frame f;
    int rc = decode_at_guard(&g, p, len, &f);

    guard_free(&g);
    return rc;
}

/* Encodes want, decodes the bytes at a guard page and compares every field. */
static void check_round_trip(const struct proto_frame *want)
{
    struct guard g = {0};
    struct proto_frame got;
    size_t n;
    uint8_t *out = encode(want, &n);
    int rc = decode_at_guard(&g, out, n, &got);

    cr_assert_eq(rc, (int)n, "%s: decode returned %d, want %zu", proto_type_name(want->type), rc,
                 n);
    assert_frames_equal(&got, want);
    guard_free(&g);
    free(out);
}

static void check_sample_round_trip(uint8_t type)
{
    struct proto_frame f;

    sample(type, &f);
    check_round_trip(&f);
}

/* Writes a header with the given fields; returns PROTO_HDR_LEN. */
static size_t put_header(uint8_t *out, uint32_t len, uint8_t type, uint8_t flags, uint16_t reserved)
{
    struct buf_writer w;

    buf_writer_init(&w, out, PROTO_HDR_LEN);
    cr_assert_eq(buf_put_u32(&w, len), 0);
    cr_assert_eq(buf_put_u8(&w, type), 0);
    cr_assert_eq(buf_put_u8(&w, flags), 0);
    cr_assert_eq(buf_put_u16(&w, reserved), 0);
    return PROTO_HDR_LEN;
}

/* Overwrites big-endian fields at a payload offset of an encoded frame. */
static void patch_u16(uint8_t *frame, size_t off, uint16_t v)
{
    struct buf_writer w;

    buf_writer_init(&w, frame + PROTO_HDR_LEN + off, 2);
    cr_assert_eq(buf_put_u16(&w, v), 0);
}

static void patch_u32(uint8_t *frame, size_t off, uint32_t v)
{
    struct buf_writer w;

    buf_writer_init(&w, frame + PROTO_HDR_LEN + off, 4);
    cr_assert_eq(buf_put_u32(&w, v), 0);
}

static void patch_u64(uint8_t *frame, size_t off, uint64_t v)
{
    struct buf_writer w;

    buf_writer_init(&w, frame + PROTO_HDR_LEN + off, 8);
    cr_assert_eq(buf_put_u64(&w, v), 0);
}

/* Decodes the sample of type with one field patched; returns the result. */
static int decode_patched_u64(uint8_t type, size_t off, uint64_t v)
{
    struct proto_frame f;
    size_t n;
    uint8_t *out;
    int rc;

    sample(type, &f);
    out = encode(&f, &n);
    patch_u64(out, off, v);
    rc = decode_once(out, n);
    free(out);
    return rc;
}

/* ---- round trips ---- */

Test(proto, hello_round_trips)
{
    /* Checks that HELLO's version, flags, session id, ciphers, pk and nonce survive. */
    check_sample_round_trip(PROTO_HELLO);
}

Test(proto, hello_with_every_bit_set_round_trips)
{
    /* Checks HELLO with flags, ciphers and all key bytes 0xff: nothing is masked or signed. */
    struct proto_frame f;

    sample(PROTO_HELLO, &f);
    f.u.hello.flags = 0xffff;
    f.u.hello.ciphers = 0xffff;
    memset(f.u.hello.session_id, 0xff, PROTO_SESSION_ID_LEN);
    memset(f.u.hello.pk, 0xff, PROTO_KEY_LEN);
    memset(f.u.hello.nonce, 0xff, PROTO_KEY_LEN);
    check_round_trip(&f);
}

Test(proto, welcome_round_trips)
{
    /* Checks that WELCOME's version, flags, cipher, pk and nonce survive encode/decode. */
    check_sample_round_trip(PROTO_WELCOME);
}

Test(proto, welcome_with_every_bit_set_round_trips)
{
    /* Checks WELCOME with flags, cipher and all key bytes 0xff: nothing is masked or signed. */
    struct proto_frame f;

    sample(PROTO_WELCOME, &f);
    f.u.welcome.flags = 0xffff;
    f.u.welcome.cipher = 0xffff;
    memset(f.u.welcome.pk, 0xff, PROTO_KEY_LEN);
    memset(f.u.welcome.nonce, 0xff, PROTO_KEY_LEN);
    check_round_trip(&f);
}

Test(proto, auth_round_trips)
{
    /* Checks that AUTH's 32-byte tag survives encode/decode. */
    check_sample_round_trip(PROTO_AUTH);
}

Test(proto, offer_round_trips)
{
    /* Checks that OFFER's size, mtime, mode and UTF-8 name survive encode/decode. */
    check_sample_round_trip(PROTO_OFFER);
}

Test(proto, accept_round_trips)
{
    /* Checks that ACCEPT's epoch and offset survive encode/decode. */
    check_sample_round_trip(PROTO_ACCEPT);
}

Test(proto, complete_round_trips)
{
    /* Checks that COMPLETE encodes to a bare header and decodes back. */
    check_sample_round_trip(PROTO_COMPLETE);
}

Test(proto, refuse_round_trips)
{
    /* Checks that REFUSE's code and text survive encode/decode. */
    check_sample_round_trip(PROTO_REFUSE);
}

Test(proto, need_hash_round_trips)
{
    /* Checks that NEED_HASH encodes to a bare header and decodes back. */
    check_sample_round_trip(PROTO_NEED_HASH);
}

Test(proto, file_hash_round_trips)
{
    /* Checks that FILE_HASH's two 64-bit halves survive encode/decode in order. */
    check_sample_round_trip(PROTO_FILE_HASH);
}

Test(proto, data_round_trips_via_proto_encode)
{
    /* Checks that DATA's epoch, offset, hash and bytes survive proto_encode/decode. */
    check_sample_round_trip(PROTO_DATA);
}

Test(proto, data_round_trips_via_prefix_and_separate_bytes)
{
    /* Checks that proto_encode_data_prefix plus the bytes sent after it decode as one DATA. */
    struct proto_frame want;
    struct proto_frame got;
    struct guard g = {0};
    uint8_t frame[PROTO_DATA_PREFIX_LEN + sizeof(sample_bytes)];
    int n;

    sample(PROTO_DATA, &want);
    n = proto_encode_data_prefix(frame, PROTO_DATA_PREFIX_LEN, want.u.data.epoch,
                                 want.u.data.offset, want.u.data.hash, want.u.data.len);
    cr_assert_eq(n, PROTO_DATA_PREFIX_LEN);
    memcpy(frame + n, sample_bytes, sizeof(sample_bytes));
    cr_assert_eq(decode_at_guard(&g, frame, sizeof(frame), &got), (int)sizeof(frame));
    assert_frames_equal(&got, &want);
    guard_free(&g);
}

Test(proto, data_prefix_matches_proto_encode)
{
    /* Checks that the prefix is byte for byte the start of the same DATA from proto_encode. */
    struct proto_frame f;
    uint8_t prefix[PROTO_DATA_PREFIX_LEN];
    size_t n;
    uint8_t *whole;

    sample(PROTO_DATA, &f);
    whole = encode(&f, &n);
    cr_assert_eq(n, PROTO_DATA_PREFIX_LEN + f.u.data.len);
    cr_assert_eq(proto_encode_data_prefix(prefix, sizeof(prefix), f.u.data.epoch, f.u.data.offset,
                                          f.u.data.hash, f.u.data.len),
                 PROTO_DATA_PREFIX_LEN);
    cr_assert_arr_eq(prefix, whole, PROTO_DATA_PREFIX_LEN);
    free(whole);
}

Test(proto, data_of_exactly_one_chunk_round_trips)
{
    /* Checks that the largest DATA (PROTO_CHUNK_SIZE bytes) is accepted both ways. */
    struct proto_frame f;
    uint8_t *bytes = malloc(PROTO_CHUNK_SIZE);

    cr_assert_not_null(bytes);
    for (size_t i = 0; i < PROTO_CHUNK_SIZE; i++)
        bytes[i] = (uint8_t)(i * 7);
    sample(PROTO_DATA, &f);
    f.u.data.len = PROTO_CHUNK_SIZE;
    f.u.data.bytes = bytes;
    f.u.data.hash = proto_chunk_hash(bytes, PROTO_CHUNK_SIZE, f.u.data.offset);
    check_round_trip(&f);
    free(bytes);
}

Test(proto, ack_round_trips)
{
    /* Checks that ACK's epoch and offset (here INT64_MAX, the largest allowed) survive. */
    check_sample_round_trip(PROTO_ACK);
}

Test(proto, rewind_round_trips_with_each_reason)
{
    /* Checks that REWIND's epoch, offset and every valid reason (1..3) survive. */
    for (uint16_t reason = 1; reason <= PROTO_REWIND_REASON_MAX; reason++) {
        struct proto_frame f;

        sample(PROTO_REWIND, &f);
        f.u.rewind.reason = reason;
        check_round_trip(&f);
    }
}

Test(proto, end_round_trips)
{
    /* Checks that END's epoch and whole-file hash survive encode/decode. */
    check_sample_round_trip(PROTO_END);
}

Test(proto, committed_round_trips)
{
    /* Checks that COMMITTED encodes to a bare header and decodes back. */
    check_sample_round_trip(PROTO_COMMITTED);
}

Test(proto, ping_round_trips)
{
    /* Checks that PING encodes to a bare header and decodes back. */
    check_sample_round_trip(PROTO_PING);
}

Test(proto, error_round_trips)
{
    /* Checks that ERROR's code and text survive encode/decode. */
    check_sample_round_trip(PROTO_ERROR);
}

Test(proto, bye_round_trips)
{
    /* Checks that BYE's status survives encode/decode. */
    check_sample_round_trip(PROTO_BYE);
}

Test(proto, offer_with_a_255_byte_name_round_trips)
{
    /* Checks the longest name (PROTO_MAX_NAME bytes) at the largest allowed size. */
    struct proto_frame f;

    sample(PROTO_OFFER, &f);
    memset(f.u.offer.name, 'n', PROTO_MAX_NAME);
    f.u.offer.name[PROTO_MAX_NAME] = '\0';
    f.u.offer.name_len = PROTO_MAX_NAME;
    f.u.offer.size = INT64_MAX;
    check_round_trip(&f);
}

Test(proto, refuse_and_error_with_the_longest_text_round_trip)
{
    /* Checks that a PROTO_MAX_TEXT-byte text is accepted in REFUSE and ERROR. */
    uint8_t types[] = {PROTO_REFUSE, PROTO_ERROR};

    for (size_t i = 0; i < sizeof(types); i++) {
        struct proto_frame f;

        sample(types[i], &f);
        memset(f.u.refuse.text, 't', PROTO_MAX_TEXT);
        f.u.refuse.text[PROTO_MAX_TEXT] = '\0';
        f.u.refuse.text_len = PROTO_MAX_TEXT;
        check_round_trip(&f);
    }
}

Test(proto, refuse_and_error_with_empty_text_round_trip)
{
    /* Checks that a zero-length text is accepted and decodes to "". */
    uint8_t types[] = {PROTO_REFUSE, PROTO_ERROR};

    for (size_t i = 0; i < sizeof(types); i++) {
        struct proto_frame f;

        sample(types[i], &f);
        f.u.refuse.text[0] = '\0';
        f.u.refuse.text_len = 0;
        check_round_trip(&f);
    }
}

/* ---- wire layout, against the bytes proto.h documents ---- */

/* Appends n bytes first, first + 1, ... to a wire image under construction. */
static size_t put_run(uint8_t *out, size_t at, size_t n, uint8_t first)
{
    fill_run(out + at, n, first);
    return at + n;
}

Test(proto, hello_encodes_to_the_documented_bytes)
{
    /* Checks HELLO v3 byte for byte: magic, version, flags, session id, ciphers, pk, nonce. */
    static const uint8_t head[] = {
        0x00, 0x00, 0x00, 0x5a, 0x01, 0x00, 0x00, 0x00, /* header: 90 bytes of HELLO */
        'X',  'F',  'E',  'R',                          /* magic */
        0x00, 0x03, 0x00, 0x00,                         /* version 3, flags 0 */
    };
    uint8_t want[PROTO_HDR_LEN + 90];
    struct proto_frame f;
    size_t at = sizeof(head);
    size_t n;
    uint8_t *out;

    memcpy(want, head, sizeof(head));
    at = put_run(want, at, PROTO_SESSION_ID_LEN, 0xa0); /* session id */
    want[at++] = 0x01;                                  /* ciphers 0x0102 */
    want[at++] = 0x02;
    at = put_run(want, at, PROTO_KEY_LEN, 0x10); /* pk */
    at = put_run(want, at, PROTO_KEY_LEN, 0x30); /* nonce */
    cr_assert_eq(at, sizeof(want));
    sample(PROTO_HELLO, &f);
    out = encode(&f, &n);
    cr_assert_eq(n, sizeof(want));
    cr_assert_arr_eq(out, want, sizeof(want));
    free(out);
}

Test(proto, welcome_encodes_to_the_documented_bytes)
{
    /* Checks WELCOME v3 byte for byte: header, magic, version, flags, cipher, pk, nonce. */
    static const uint8_t head[] = {
        0x00, 0x00, 0x00, 0x4a, 0x02, 0x00, 0x00, 0x00, /* header: 74 bytes of WELCOME */
        'X',  'F',  'E',  'R',                          /* magic */
        0x00, 0x03, 0x00, 0x00,                         /* version 3, flags 0 */
        0x03, 0x04,                                     /* cipher 0x0304 */
    };
    uint8_t want[PROTO_HDR_LEN + 74];
    struct proto_frame f;
    size_t at = sizeof(head);
    size_t n;
    uint8_t *out;

    memcpy(want, head, sizeof(head));
    at = put_run(want, at, PROTO_KEY_LEN, 0x50); /* pk */
    at = put_run(want, at, PROTO_KEY_LEN, 0x70); /* nonce */
    cr_assert_eq(at, sizeof(want));
    sample(PROTO_WELCOME, &f);
    out = encode(&f, &n);
    cr_assert_eq(n, sizeof(want));
    cr_assert_arr_eq(out, want, sizeof(want));
    free(out);
}

Test(proto, auth_encodes_to_the_documented_bytes)
{
    /* Checks AUTH byte for byte: a header of type 17 and length 32, then the tag. */
    static const uint8_t head[] = {0x00, 0x00, 0x00, 0x20, 0x11, 0x00, 0x00, 0x00};
    uint8_t want[PROTO_HDR_LEN + PROTO_KEY_LEN];
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    memcpy(want, head, sizeof(head));
    cr_assert_eq(put_run(want, sizeof(head), PROTO_KEY_LEN, 0xb0), sizeof(want));
    sample(PROTO_AUTH, &f);
    out = encode(&f, &n);
    cr_assert_eq(n, sizeof(want));
    cr_assert_arr_eq(out, want, sizeof(want));
    free(out);
}

Test(proto, offer_encodes_to_the_documented_bytes)
{
    /* Checks OFFER's field order byte for byte: size, mtime, nsec, mode, name_len, name. */
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x1b, 0x03, 0x00, 0x00, 0x00, /* header: 27 bytes of OFFER */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* size */
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* mtime seconds */
        0x21, 0x22, 0x23, 0x24,                         /* mtime nanoseconds */
        0x00, 0x00, 0x81, 0xa4,                         /* mode 0100644 */
        0x00, 0x01, 'a',                                /* name */
    };
    struct proto_frame f;
    struct proto_frame got;
    struct guard g = {0};
    size_t n;
    uint8_t *out;

    memset(&f, 0, sizeof(f));
    f.type = PROTO_OFFER;
    f.u.offer.size = UINT64_C(0x0102030405060708);
    f.u.offer.mtime_sec = INT64_C(0x1112131415161718);
    f.u.offer.mtime_nsec = 0x21222324u;
    f.u.offer.mode = 0100644;
    f.u.offer.name_len = 1;
    f.u.offer.name[0] = 'a';
    out = encode(&f, &n);
    cr_assert_eq(n, sizeof(want));
    cr_assert_arr_eq(out, want, sizeof(want));
    cr_assert_eq(decode_at_guard(&g, want, sizeof(want), &got), (int)sizeof(want));
    assert_frames_equal(&got, &f);
    guard_free(&g);
    free(out);
}

/* ---- incomplete input ---- */

Test(proto, short_header_is_partial)
{
    /* Checks that 0..7 bytes of a header are XFER_EPARTIAL from both decoders. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    sample(PROTO_HELLO, &f);
    out = encode(&f, &n);
    for (size_t len = 0; len < PROTO_HDR_LEN; len++) {
        struct guard g = {0};
        struct proto_header h;
        const uint8_t *p = guard_copy(&g, out, len);

        cr_assert_eq(proto_decode_header(p, len, &h), XFER_EPARTIAL, "len %zu", len);
        cr_assert_eq(proto_decode(p, len, &f), XFER_EPARTIAL, "len %zu", len);
        guard_free(&g);
    }
    free(out);
}

Test(proto, every_incomplete_frame_is_partial)
{
    /* Checks that each strict prefix of each type's frame is XFER_EPARTIAL, never an over-read. */
    for (uint8_t type = 1; type <= PROTO_TYPE_MAX; type++) {
        struct proto_frame f;
        size_t n;
        uint8_t *out;

        sample(type, &f);
        out = encode(&f, &n);
        for (size_t len = PROTO_HDR_LEN; len < n; len++)
            cr_assert_eq(decode_once(out, len), XFER_EPARTIAL, "%s, %zu of %zu bytes",
                         proto_type_name(type), len, n);
        free(out);
    }
}

Test(proto, decodes_only_the_first_of_two_frames)
{
    /* Checks that proto_decode consumes one frame and leaves the next one's bytes alone. */
    struct proto_frame ack;
    struct proto_frame ping;
    struct proto_frame got;
    struct guard g = {0};
    uint8_t two[64];
    size_t n1;
    size_t n2;
    uint8_t *a;
    uint8_t *b;

    sample(PROTO_ACK, &ack);
    sample(PROTO_PING, &ping);
    a = encode(&ack, &n1);
    b = encode(&ping, &n2);
    memcpy(two, a, n1);
    memcpy(two + n1, b, n2);
    cr_assert_eq(decode_at_guard(&g, two, n1 + n2, &got), (int)n1);
    assert_frames_equal(&got, &ack);
    guard_free(&g);
    cr_assert_eq(decode_at_guard(&g, two + n1, n2, &got), (int)n2);
    assert_frames_equal(&got, &ping);
    guard_free(&g);
    free(a);
    free(b);
}

/* ---- header checks ---- */

Test(proto, decode_header_reports_length_and_type)
{
    /* Checks proto_decode_header on a valid header: PROTO_HDR_LEN, len and type filled. */
    uint8_t hdr[PROTO_HDR_LEN];
    struct proto_header h;
    struct guard g = {0};

    put_header(hdr, 12, PROTO_ACK, 0, 0);
    cr_assert_eq(proto_decode_header(guard_copy(&g, hdr, sizeof(hdr)), sizeof(hdr), &h),
                 PROTO_HDR_LEN);
    cr_assert_eq(h.len, 12);
    cr_assert_eq(h.type, PROTO_ACK);
    guard_free(&g);
}

Test(proto, rejects_control_frame_longer_than_the_control_maximum)
{
    /* Checks every type but DATA: length PROTO_MAX_CONTROL + 1 (and UINT32_MAX) is XFER_ETOOBIG. */
    for (uint8_t type = 1; type <= PROTO_TYPE_MAX; type++) {
        uint8_t hdr[PROTO_HDR_LEN];
        struct proto_header h;

        if (type == PROTO_DATA)
            continue;
        put_header(hdr, PROTO_MAX_CONTROL + 1, type, 0, 0);
        cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_ETOOBIG, "%s", proto_type_name(type));
        cr_assert_eq(proto_decode_header(hdr, sizeof(hdr), &h), XFER_ETOOBIG);
        put_header(hdr, UINT32_MAX, type, 0, 0);
        cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_ETOOBIG, "%s", proto_type_name(type));
    }
}

Test(proto, accepts_a_control_header_at_the_control_maximum)
{
    /* Checks that length PROTO_MAX_CONTROL passes the header check (then waits for the payload). */
    uint8_t hdr[PROTO_HDR_LEN];
    struct proto_header h;

    put_header(hdr, PROTO_MAX_CONTROL, PROTO_ERROR, 0, 0);
    cr_assert_eq(proto_decode_header(hdr, sizeof(hdr), &h), PROTO_HDR_LEN);
    cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_EPARTIAL);
}

Test(proto, rejects_data_frame_longer_than_a_chunk)
{
    /* Checks that DATA with length PROTO_MAX_PAYLOAD + 1 (and UINT32_MAX) is XFER_ETOOBIG. */
    uint8_t hdr[PROTO_HDR_LEN];
    struct proto_header h;

    put_header(hdr, PROTO_MAX_PAYLOAD + 1, PROTO_DATA, 0, 0);
    cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_ETOOBIG);
    cr_assert_eq(proto_decode_header(hdr, sizeof(hdr), &h), XFER_ETOOBIG);
    put_header(hdr, UINT32_MAX, PROTO_DATA, 0, 0);
    cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_ETOOBIG);
    put_header(hdr, PROTO_MAX_PAYLOAD, PROTO_DATA, 0, 0);
    cr_assert_eq(proto_decode_header(hdr, sizeof(hdr), &h), PROTO_HDR_LEN);
}

Test(proto, rejects_type_0)
{
    /* Checks that a frame of type 0 is XFER_EPROTO. */
    uint8_t hdr[PROTO_HDR_LEN];

    put_header(hdr, 0, 0, 0, 0);
    cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_EPROTO);
}

Test(proto, rejects_type_18_and_above)
{
    /* Checks that types PROTO_TYPE_MAX + 1 (18) and 255 are XFER_EPROTO. */
    uint8_t hdr[PROTO_HDR_LEN];

    put_header(hdr, 0, PROTO_TYPE_MAX + 1, 0, 0);
    cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_EPROTO);
    put_header(hdr, 0, 255, 0, 0);
    cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_EPROTO);
}

Test(proto, decode_payload_rejects_unknown_types)
{
    /* Checks proto_decode_payload directly with types 0 and 18: XFER_EPROTO. */
    struct proto_frame f;

    cr_assert_eq(proto_decode_payload(0, (const uint8_t *)"", 0, &f), XFER_EPROTO);
    cr_assert_eq(proto_decode_payload(PROTO_TYPE_MAX + 1, (const uint8_t *)"", 0, &f), XFER_EPROTO);
}

Test(proto, rejects_nonzero_flags)
{
    /* Checks that each bit of the header's flags byte makes the frame XFER_EPROTO. */
    for (int bit = 0; bit < 8; bit++) {
        uint8_t hdr[PROTO_HDR_LEN];

        put_header(hdr, 0, PROTO_PING, (uint8_t)(1u << bit), 0);
        cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_EPROTO, "flags bit %d", bit);
    }
}

Test(proto, rejects_nonzero_reserved)
{
    /* Checks that each bit of the header's reserved u16 makes the frame XFER_EPROTO. */
    for (int bit = 0; bit < 16; bit++) {
        uint8_t hdr[PROTO_HDR_LEN];

        put_header(hdr, 0, PROTO_PING, 0, (uint16_t)(1u << bit));
        cr_assert_eq(decode_once(hdr, sizeof(hdr)), XFER_EPROTO, "reserved bit %d", bit);
    }
}

/* ---- HELLO and WELCOME: magic and version ---- */

Test(proto, rejects_hello_with_bad_magic)
{
    /* Checks that a HELLO whose magic is not "XFER" is XFER_EMAGIC. */
    static const uint32_t bad[] = {0x58464553u, 0, 0x52454658u, 0xffffffffu};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_frame f;
        size_t n;
        uint8_t *out;

        sample(PROTO_HELLO, &f);
        out = encode(&f, &n);
        patch_u32(out, 0, bad[i]);
        cr_assert_eq(decode_once(out, n), XFER_EMAGIC, "magic 0x%08x", bad[i]);
        free(out);
    }
}

Test(proto, rejects_welcome_with_bad_magic)
{
    /* Checks that a WELCOME whose magic is not "XFER" is XFER_EMAGIC. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    sample(PROTO_WELCOME, &f);
    out = encode(&f, &n);
    patch_u32(out, 0, 0x48545450u); /* "HTTP" */
    cr_assert_eq(decode_once(out, n), XFER_EMAGIC);
    free(out);
}

Test(proto, reports_other_version_in_hello)
{
    /* Checks that HELLO versions 0, 1, 2, 4 and 0xffff are XFER_EVERSION with hello.version
     * set. */
    static const uint16_t versions[] = {0, 1, 2, 4, 0xffff};

    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        struct proto_frame f;
        struct guard g = {0};
        size_t n;
        uint8_t *out;

        sample(PROTO_HELLO, &f);
        out = encode(&f, &n);
        patch_u16(out, 4, versions[i]);
        cr_assert_eq(decode_at_guard(&g, out, n, &f), XFER_EVERSION, "version %u", versions[i]);
        cr_assert_eq(f.u.hello.version, versions[i]);
        guard_free(&g);
        free(out);
    }
}

Test(proto, reports_other_version_in_welcome)
{
    /* Checks that WELCOME versions 1, 2 and 4 are XFER_EVERSION with welcome.version set. */
    static const uint16_t versions[] = {1, 2, 4};

    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        struct proto_frame f;
        struct guard g = {0};
        size_t n;
        uint8_t *out;

        sample(PROTO_WELCOME, &f);
        out = encode(&f, &n);
        patch_u16(out, 4, versions[i]);
        cr_assert_eq(decode_at_guard(&g, out, n, &f), XFER_EVERSION, "version %u", versions[i]);
        cr_assert_eq(f.u.welcome.version, versions[i]);
        guard_free(&g);
        free(out);
    }
}

/* Decodes, at a guard page, a frame of type whose payload is magic, version,
 * flags 0 and then extra bytes of 0x42; returns the result and *seen. */
static int decode_other_layout(uint8_t type, uint16_t version, size_t extra, uint16_t *seen)
{
    uint8_t frame[PROTO_HDR_LEN + 8 + 256];
    struct proto_frame f;
    struct guard g = {0};
    struct buf_writer w;
    int rc;

    cr_assert_leq(extra, 256);
    put_header(frame, (uint32_t)(8 + extra), type, 0, 0);
    buf_writer_init(&w, frame + PROTO_HDR_LEN, sizeof(frame) - PROTO_HDR_LEN);
    cr_assert_eq(buf_put_u32(&w, PROTO_MAGIC), 0);
    cr_assert_eq(buf_put_u16(&w, version), 0);
    cr_assert_eq(buf_put_u16(&w, 0), 0);
    memset(frame + PROTO_HDR_LEN + 8, 0x42, extra);
    rc = decode_at_guard(&g, frame, PROTO_HDR_LEN + 8 + extra, &f);
    /* hello and welcome both start with version: either member reads it */
    *seen = type == PROTO_HELLO ? f.u.hello.version : f.u.welcome.version;
    guard_free(&g);
    return rc;
}

Test(proto, reports_other_version_whatever_its_payload_layout)
{
    /* Checks HELLO/WELCOME v1, v2 and v4 with 0, 20 (v1's HELLO) or 256 more bytes:
     * XFER_EVERSION. */
    static const uint8_t types[] = {PROTO_HELLO, PROTO_WELCOME};
    static const uint16_t versions[] = {1, 2, 4};
    static const size_t extras[] = {0, 20, 256};

    for (size_t t = 0; t < sizeof(types); t++) {
        for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
            for (size_t e = 0; e < sizeof(extras) / sizeof(extras[0]); e++) {
                uint16_t seen = 0;

                cr_assert_eq(decode_other_layout(types[t], versions[v], extras[e], &seen),
                             XFER_EVERSION, "%s v%u + %zu bytes", proto_type_name(types[t]),
                             versions[v], extras[e]);
                cr_assert_eq(seen, versions[v]);
            }
        }
    }
}

Test(proto, hello_of_our_version_in_another_layout_is_a_protocol_error)
{
    /* Checks v3 HELLO/WELCOME cut to v1's sizes: XFER_EPROTO, since only the version decides. */
    uint16_t seen = 0;

    cr_assert_eq(decode_other_layout(PROTO_HELLO, PROTO_VERSION, 0, &seen), XFER_EPROTO);
    cr_assert_eq(decode_other_layout(PROTO_HELLO, PROTO_VERSION, 20, &seen), XFER_EPROTO);
    cr_assert_eq(decode_other_layout(PROTO_WELCOME, PROTO_VERSION, 0, &seen), XFER_EPROTO);
}

/* ---- truncated payloads: the length says fewer bytes than the fields need ---- */

/* For every payload length k shorter than the sample's (for DATA: up to and
 * including the fixed fields), a frame whose header says k is XFER_EPROTO. */
static void check_truncated(uint8_t type)
{
    struct proto_frame f;
    size_t n;
    uint8_t *out;
    size_t payload;
    size_t limit;

    sample(type, &f);
    out = encode(&f, &n);
    payload = n - PROTO_HDR_LEN;
    limit = type == PROTO_DATA ? PROTO_DATA_FIXED + 1 : payload;
    cr_assert_gt(limit, 0, "%s has no payload to truncate", proto_type_name(type));
    for (size_t k = 0; k < limit; k++) {
        put_header(out, (uint32_t)k, type, 0, 0);
        cr_assert_eq(decode_once(out, PROTO_HDR_LEN + k), XFER_EPROTO, "%s with %zu of %zu bytes",
                     proto_type_name(type), k, payload);
    }
    free(out);
}

Test(proto, rejects_truncated_hello)
{
    /* Checks HELLO payloads of 0..89 bytes (cut in any field, key or nonce): XFER_EPROTO. */
    check_truncated(PROTO_HELLO);
}

Test(proto, rejects_truncated_welcome)
{
    /* Checks WELCOME payloads of 0..73 bytes (cut in any field, nonce included): XFER_EPROTO. */
    check_truncated(PROTO_WELCOME);
}

Test(proto, rejects_truncated_auth)
{
    /* Checks AUTH payloads of 0..31 bytes: XFER_EPROTO. */
    check_truncated(PROTO_AUTH);
}

Test(proto, rejects_truncated_offer)
{
    /* Checks OFFER payloads cut anywhere in the fixed fields or the name: XFER_EPROTO. */
    check_truncated(PROTO_OFFER);
}

Test(proto, rejects_truncated_accept)
{
    /* Checks ACCEPT payloads of 0..11 bytes: XFER_EPROTO. */
    check_truncated(PROTO_ACCEPT);
}

Test(proto, rejects_truncated_refuse)
{
    /* Checks REFUSE payloads cut anywhere in code, text_len or text: XFER_EPROTO. */
    check_truncated(PROTO_REFUSE);
}

Test(proto, rejects_truncated_file_hash)
{
    /* Checks FILE_HASH payloads of 0..15 bytes: XFER_EPROTO. */
    check_truncated(PROTO_FILE_HASH);
}

Test(proto, rejects_truncated_data)
{
    /* Checks DATA payloads of 0..20 bytes (fixed fields, no data): XFER_EPROTO. */
    check_truncated(PROTO_DATA);
}

Test(proto, rejects_truncated_ack)
{
    /* Checks ACK payloads of 0..11 bytes: XFER_EPROTO. */
    check_truncated(PROTO_ACK);
}

Test(proto, rejects_truncated_rewind)
{
    /* Checks REWIND payloads of 0..13 bytes: XFER_EPROTO. */
    check_truncated(PROTO_REWIND);
}

Test(proto, rejects_truncated_end)
{
    /* Checks END payloads of 0..19 bytes: XFER_EPROTO. */
    check_truncated(PROTO_END);
}

Test(proto, rejects_truncated_error)
{
    /* Checks ERROR payloads cut anywhere in code, text_len or text: XFER_EPROTO. */
    check_truncated(PROTO_ERROR);
}

Test(proto, rejects_truncated_bye)
{
    /* Checks BYE payloads of 0..1 bytes: XFER_EPROTO. */
    check_truncated(PROTO_BYE);
}

Test(proto, rejects_trailing_bytes_after_every_control_frame)
{
    /* Checks each type but DATA with one byte (0x00 or 0xff) past its fields: XFER_EPROTO. */
    for (uint8_t type = 1; type <= PROTO_TYPE_MAX; type++) {
        struct proto_frame f;
        size_t n;
        uint8_t *out;
        uint8_t *longer;

        if (type == PROTO_DATA)
            continue;
        sample(type, &f);
        out = encode(&f, &n);
        longer = malloc(n + 1);
        cr_assert_not_null(longer);
        memcpy(longer, out, n);
        put_header(longer, (uint32_t)(n - PROTO_HDR_LEN + 1), type, 0, 0);
        longer[n] = 0x00;
        cr_assert_eq(decode_once(longer, n + 1), XFER_EPROTO, "%s + 0x00", proto_type_name(type));
        longer[n] = 0xff;
        cr_assert_eq(decode_once(longer, n + 1), XFER_EPROTO, "%s + 0xff", proto_type_name(type));
        free(longer);
        free(out);
    }
}

/* ---- field checks ---- */

Test(proto, rejects_offer_whose_name_runs_past_the_payload)
{
    /* Checks an OFFER whose name_len (12) exceeds the 6 name bytes present: XFER_EPROTO. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    sample(PROTO_OFFER, &f);
    memcpy(f.u.offer.name, "abcdef", 7);
    f.u.offer.name_len = 6;
    out = encode(&f, &n);
    patch_u16(out, 24, 12);
    cr_assert_eq(decode_once(out, n), XFER_EPROTO);
    free(out);
}

Test(proto, rejects_offer_name_longer_than_255)
{
    /* Checks an OFFER carrying 256 name bytes with name_len 256 (or 0xffff): XFER_ETOOBIG. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;
    uint8_t *longer;

    sample(PROTO_OFFER, &f);
    memset(f.u.offer.name, 'n', PROTO_MAX_NAME);
    f.u.offer.name_len = PROTO_MAX_NAME;
    out = encode(&f, &n);
    longer = malloc(n + 1);
    cr_assert_not_null(longer);
    memcpy(longer, out, n);
    longer[n] = 'n';
    put_header(longer, (uint32_t)(n + 1 - PROTO_HDR_LEN), PROTO_OFFER, 0, 0);
    patch_u16(longer, 24, PROTO_MAX_NAME + 1);
    cr_assert_eq(decode_once(longer, n + 1), XFER_ETOOBIG);
    patch_u16(longer, 24, 0xffff);
    cr_assert_eq(decode_once(longer, n + 1), XFER_ETOOBIG);
    free(longer);
    free(out);
}

/* Decodes a REFUSE or ERROR with the given text_len and text_bytes bytes of text. */
static int decode_text_frame(uint8_t type, uint16_t text_len, size_t text_bytes)
{
    uint8_t frame[PROTO_HDR_LEN + 4 + PROTO_MAX_TEXT + 16];
    struct buf_writer w;

    cr_assert_leq(text_bytes, PROTO_MAX_TEXT + 16);
    put_header(frame, (uint32_t)(4 + text_bytes), type, 0, 0);
    buf_writer_init(&w, frame + PROTO_HDR_LEN, sizeof(frame) - PROTO_HDR_LEN);
    cr_assert_eq(buf_put_u16(&w, PROTO_IO), 0);
    cr_assert_eq(buf_put_u16(&w, text_len), 0);
    memset(frame + PROTO_HDR_LEN + 4, 't', text_bytes);
    return decode_once(frame, PROTO_HDR_LEN + 4 + text_bytes);
}

Test(proto, rejects_text_longer_than_the_text_maximum)
{
    /* Checks REFUSE and ERROR with text_len = PROTO_MAX_TEXT + 1 (bytes present): XFER_ETOOBIG. */
    cr_assert_eq(decode_text_frame(PROTO_REFUSE, PROTO_MAX_TEXT + 1, PROTO_MAX_TEXT + 1),
                 XFER_ETOOBIG);
    cr_assert_eq(decode_text_frame(PROTO_ERROR, PROTO_MAX_TEXT + 1, PROTO_MAX_TEXT + 1),
                 XFER_ETOOBIG);
    cr_assert_eq(decode_text_frame(PROTO_ERROR, PROTO_MAX_TEXT, PROTO_MAX_TEXT),
                 PROTO_HDR_LEN + 4 + PROTO_MAX_TEXT);
}

Test(proto, rejects_text_running_past_the_payload)
{
    /* Checks REFUSE and ERROR whose text_len (10) exceeds the 5 bytes present: XFER_EPROTO. */
    cr_assert_eq(decode_text_frame(PROTO_REFUSE, 10, 5), XFER_EPROTO);
    cr_assert_eq(decode_text_frame(PROTO_ERROR, 10, 5), XFER_EPROTO);
}

Test(proto, rejects_data_with_zero_data_bytes)
{
    /* Checks a DATA frame with the 20 fixed bytes and no data: XFER_EPROTO. */
    uint8_t frame[PROTO_DATA_PREFIX_LEN];

    cr_assert_eq(proto_encode_data_prefix(frame, sizeof(frame), 1, 0, 0, 1), PROTO_DATA_PREFIX_LEN);
    put_header(frame, PROTO_DATA_FIXED, PROTO_DATA, 0, 0);
    cr_assert_eq(decode_once(frame, sizeof(frame)), XFER_EPROTO);
}

Test(proto, decode_payload_rejects_data_longer_than_a_chunk)
{
    /* Checks proto_decode_payload given DATA with PROTO_CHUNK_SIZE + 1 bytes: XFER_EPROTO. */
    size_t len = PROTO_DATA_FIXED + PROTO_CHUNK_SIZE + 1;
    uint8_t *payload = calloc(1, len);
    struct guard g = {0};
    struct proto_frame f;

    cr_assert_not_null(payload);
    cr_assert_eq(proto_decode_payload(PROTO_DATA, guard_copy(&g, payload, len), len, &f),
                 XFER_EPROTO);
    guard_free(&g);
    free(payload);
}

Test(proto, rejects_rewind_reason_0)
{
    /* Checks a REWIND with reason 0: XFER_EPROTO. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    sample(PROTO_REWIND, &f);
    out = encode(&f, &n);
    patch_u16(out, 12, 0);
    cr_assert_eq(decode_once(out, n), XFER_EPROTO);
    free(out);
}

Test(proto, rejects_rewind_reason_4_and_above)
{
    /* Checks a REWIND with reason PROTO_REWIND_REASON_MAX + 1 (4) or 0xffff: XFER_EPROTO. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    sample(PROTO_REWIND, &f);
    out = encode(&f, &n);
    patch_u16(out, 12, PROTO_REWIND_REASON_MAX + 1);
    cr_assert_eq(decode_once(out, n), XFER_EPROTO);
    patch_u16(out, 12, 0xffff);
    cr_assert_eq(decode_once(out, n), XFER_EPROTO);
    free(out);
}

Test(proto, rejects_offer_mtime_nsec_of_a_second_or_more)
{
    /* Checks an OFFER with mtime_nsec 1000000000 or UINT32_MAX: XFER_EPROTO. */
    struct proto_frame f;
    size_t n;
    uint8_t *out;

    sample(PROTO_OFFER, &f);
    out = encode(&f, &n);
    patch_u32(out, 16, 1000000000u);
    cr_assert_eq(decode_once(out, n), XFER_EPROTO);
    patch_u32(out, 16, UINT32_MAX);
    cr_assert_eq(decode_once(out, n), XFER_EPROTO);
    free(out);
}

Test(proto, rejects_offer_size_above_int64_max)
{
    /* Checks an OFFER with size 2^63 or UINT64_MAX: XFER_ETOOBIG. */
    cr_assert_eq(decode_patched_u64(PROTO_OFFER, 0, UINT64_C(1) << 63), XFER_ETOOBIG);
    cr_assert_eq(decode_patched_u64(PROTO_OFFER, 0, UINT64_MAX), XFER_ETOOBIG);
}

Test(proto, rejects_offsets_above_int64_max)
{
    /* Checks ACCEPT, ACK, REWIND and DATA with offset 2^63 or UINT64_MAX: XFER_ETOOBIG. */
    static const uint8_t types[] = {PROTO_ACCEPT, PROTO_ACK, PROTO_REWIND, PROTO_DATA};

    for (size_t i = 0; i < sizeof(types); i++) {
        cr_assert_eq(decode_patched_u64(types[i], 4, UINT64_C(1) << 63), XFER_ETOOBIG, "%s",
                     proto_type_name(types[i]));
        cr_assert_eq(decode_patched_u64(types[i], 4, UINT64_MAX), XFER_ETOOBIG, "%s",
                     proto_type_name(types[i]));
    }
}

/* ---- encoders ---- */

Test(proto, encode_is_too_big_for_a_short_buffer_and_stays_inside_it)
{
    /* Checks every type into buffers 0..n-1 bytes long (ending at a guard page): XFER_ETOOBIG. */
    for (uint8_t type = 1; type <= PROTO_TYPE_MAX; type++) {
        struct proto_frame f;
        struct guard g = {0};
        size_t n;
        uint8_t *whole;

        sample(type, &f);
        whole = encode(&f, &n);
        for (size_t cap = 0; cap < n; cap++) {
            cr_assert_eq(proto_encode(&f, guard_alloc(&g, cap), cap), XFER_ETOOBIG,
                         "%s into %zu of %zu bytes", proto_type_name(type), cap, n);
            guard_free(&g);
        }
        cr_assert_eq(proto_encode(&f, guard_alloc(&g, n), n), (int)n, "%s", proto_type_name(type));
        guard_free(&g);
        free(whole);
    }
}

Test(proto, encode_rejects_an_offer_name_longer_than_255)
{
    /* Checks proto_encode of an OFFER with name_len 256: XFER_ETOOBIG. */
    struct proto_frame f;
    uint8_t out[512];

    sample(PROTO_OFFER, &f);
    f.u.offer.name_len = PROTO_MAX_NAME + 1;
    cr_assert_eq(proto_encode(&f, out, sizeof(out)), XFER_ETOOBIG);
}

Test(proto, data_prefix_rejects_zero_and_oversize_lengths)
{
    /* Checks proto_encode_data_prefix with datalen 0 or PROTO_CHUNK_SIZE + 1: XFER_ETOOBIG. */
    uint8_t out[PROTO_DATA_PREFIX_LEN];

    cr_assert_eq(proto_encode_data_prefix(out, sizeof(out), 1, 0, 0, 0), XFER_ETOOBIG);
    cr_assert_eq(proto_encode_data_prefix(out, sizeof(out), 1, 0, 0, PROTO_CHUNK_SIZE + 1),
                 XFER_ETOOBIG);
    cr_assert_eq(proto_encode_data_prefix(out, sizeof(out), 1, 0, 0, PROTO_CHUNK_SIZE),
                 PROTO_DATA_PREFIX_LEN);
}

Test(proto, data_prefix_needs_room_for_the_whole_prefix)
{
    /* Checks proto_encode_data_prefix into 27 bytes (ETOOBIG) and into exactly 28 (at a guard). */
    struct guard g = {0};

    cr_assert_eq(proto_encode_data_prefix(guard_alloc(&g, PROTO_DATA_PREFIX_LEN - 1),
                                          PROTO_DATA_PREFIX_LEN - 1, 1, 0, 0, 1),
                 XFER_ETOOBIG);
    guard_free(&g);
    cr_assert_eq(proto_encode_data_prefix(guard_alloc(&g, PROTO_DATA_PREFIX_LEN),
                                          PROTO_DATA_PREFIX_LEN, 1, 0, 0, 1),
                 PROTO_DATA_PREFIX_LEN);
    guard_free(&g);
}

/* Checks proto_encode() refuses DATA that is empty or longer than a chunk,
 * as proto_encode_data_prefix() does: no decoder would accept it. */
Test(proto, encode_rejects_data_longer_than_a_chunk_or_empty)
{
    /* Checks that proto_encode refuses DATA it could never have decoded: XFER_ETOOBIG. */
    struct proto_frame f;
    size_t cap = FRAME_MAX + 16;
    uint8_t *bytes = calloc(1, PROTO_CHUNK_SIZE + 1);
    uint8_t *out = malloc(cap);

    cr_assert_not_null(bytes);
    cr_assert_not_null(out);
    sample(PROTO_DATA, &f);
    f.u.data.bytes = bytes;
    f.u.data.len = PROTO_CHUNK_SIZE + 1;
    cr_expect_eq(proto_encode(&f, out, cap), XFER_ETOOBIG);
    f.u.data.len = 0;
    cr_expect_eq(proto_encode(&f, out, cap), XFER_ETOOBIG);
    free(out);
    free(bytes);
}

/* ---- names and hashes ---- */

Test(proto, type_names_cover_every_type)
{
    /* Checks proto_type_name: a real name for 1..17, "?" for 0, 18 and 255. */
    cr_assert_str_eq(proto_type_name(PROTO_HELLO), "HELLO");
    cr_assert_str_eq(proto_type_name(PROTO_DATA), "DATA");
    cr_assert_str_eq(proto_type_name(PROTO_BYE), "BYE");
    cr_assert_str_eq(proto_type_name(PROTO_AUTH), "AUTH");
    for (uint8_t type = 1; type <= PROTO_TYPE_MAX; type++)
        cr_assert_str_neq(proto_type_name(type), "?", "type %u", type);
    cr_assert_str_eq(proto_type_name(0), "?");
    cr_assert_str_eq(proto_type_name(PROTO_TYPE_MAX + 1), "?");
    cr_assert_str_eq(proto_type_name(255), "?");
}

Test(proto, code_texts_cover_every_code)
{
    /* Checks proto_code_text: a specific text for 0..PROTO_CODE_MAX, a generic one after. */
    for (uint16_t code = 0; code <= PROTO_CODE_MAX; code++)
        cr_assert_str_neq(proto_code_text(code), "unknown reason", "code %u", code);
    cr_assert_str_eq(proto_code_text(PROTO_AUTH_FAILED), "authentication failed");
    cr_assert_str_eq(proto_code_text(PROTO_CODE_MAX + 1), "unknown reason");
    cr_assert_str_eq(proto_code_text(0xffff), "unknown reason");
}

Test(proto, chunk_hash_binds_bytes_to_their_offset)
{
    /* Checks that the same bytes at another offset hash differently, and equal inputs equally. */
    uint64_t at0 = proto_chunk_hash(sample_bytes, sizeof(sample_bytes), 0);

    cr_assert_eq(proto_chunk_hash(sample_bytes, sizeof(sample_bytes), 0), at0);
    cr_assert_neq(proto_chunk_hash(sample_bytes, sizeof(sample_bytes), PROTO_CHUNK_SIZE), at0);
}

/* ---- golden frames in fixtures/frames ---- */

Test(proto, golden_frame_files_decode_as_listed)
{
    /* Checks each fixtures/frames file: the bytes fixtures.c builds, decoding as listed. */
    for (size_t i = 0; i < frame_fixture_count; i++) {
        const struct frame_fixture *fx = &frame_fixtures[i];
        char rel[256];
        uint8_t built[FRAME_FIXTURE_MAX];
        struct proto_frame want;
        struct proto_frame got;
        struct guard g = {0};
        size_t len;
        size_t n = fx->make(built, sizeof(built), &want);
        uint8_t *file;
        int rc;

        snprintf(rel, sizeof(rel), "frames/%s", fx->file);
        file = fixture_read(rel, &len);
        cr_assert_eq(len, n, "%s: %zu bytes, fixtures.c builds %zu", fx->file, len, n);
        cr_assert_arr_eq(file, built, n, "%s differs from what fixtures.c builds", fx->file);
        rc = decode_at_guard(&g, file, len, &got);
        cr_assert_eq(rc, fx->expect, "%s: decode returned %d (%s), want %d", fx->file, rc,
                     rc < 0 ? xfer_strerror(rc) : "ok", fx->expect);
        if (fx->expect > 0) {
            cr_assert_eq((size_t)rc, len, "%s: not consumed whole", fx->file);
            assert_frames_equal(&got, &want);
        }
        if (fx->expect == XFER_EVERSION)
            cr_assert_eq(got.u.hello.version, want.u.hello.version, "%s", fx->file);
        guard_free(&g);
        free(file);
    }
}

Test(proto, every_frame_fixture_file_is_listed)
{
    /* Checks that no .bin in fixtures/frames lacks an expected result in fixtures.c. */
    DIR *d = opendir(FIXTURES_DIR "/frames");
    struct dirent *e;
    size_t seen = 0;

    cr_assert_not_null(d, "cannot open %s", FIXTURES_DIR "/frames");
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        int listed = 0;

        if (len < 4 || strcmp(e->d_name + len - 4, ".bin") != 0)
            continue;
        for (size_t i = 0; i < frame_fixture_count; i++)
            listed |= strcmp(frame_fixtures[i].file, e->d_name) == 0;
        cr_assert(listed, "fixtures/frames/%s has no entry in tests/unit/fixtures.c", e->d_name);
        seen++;
    }
    (void)closedir(d); /* read-only */
    cr_assert_eq(seen, frame_fixture_count, "%zu .bin files for %zu entries", seen,
                 frame_fixture_count);
}
