#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "xfer/buf.h"
#include "xfer/err.h"

/* fixtures.c is shared with gen_fixtures, which has no Criterion, so a
 * builder that cannot build its frame aborts. */
static size_t must_encode(const struct proto_frame *f, uint8_t *out, size_t cap)
{
    int n = proto_encode(f, out, cap);

    if (n <= 0) {
        fprintf(stderr, "fixtures: cannot encode %s: %d\n", proto_type_name(f->type), n);
        abort();
    }
    return (size_t)n;
}

static size_t put_header(uint8_t *out, uint32_t len, uint8_t type, uint8_t flags, uint16_t reserved)
{
    struct buf_writer w;

    buf_writer_init(&w, out, PROTO_HDR_LEN);
    (void)buf_put_u32(&w, len); /* exactly PROTO_HDR_LEN bytes */
    (void)buf_put_u8(&w, type);
    (void)buf_put_u8(&w, flags);
    (void)buf_put_u16(&w, reserved);
    return PROTO_HDR_LEN;
}

/* Fills n bytes with first, first + 1, ...: each key field gets its own run,
 * so a field written in the wrong place shows in the golden diff. */
static void fill_run(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + i);
}

static void hello_frame(struct proto_frame *f, uint16_t version)
{
    memset(f, 0, sizeof(*f));
    f->type = PROTO_HELLO;
    f->u.hello.version = version;
    fill_run(f->u.hello.session_id, PROTO_SESSION_ID_LEN, 0x00);
    f->u.hello.ciphers = 3; /* AES-256-GCM and XChaCha20-Poly1305 */
    fill_run(f->u.hello.pk, PROTO_KEY_LEN, 0x20);
    fill_run(f->u.hello.nonce, PROTO_KEY_LEN, 0x40);
}

static void welcome_frame(struct proto_frame *f, uint16_t version)
{
    memset(f, 0, sizeof(*f));
    f->type = PROTO_WELCOME;
    f->u.welcome.version = version;
    f->u.welcome.cipher = 2; /* XChaCha20-Poly1305 */
    fill_run(f->u.welcome.pk, PROTO_KEY_LEN, 0x60);
    fill_run(f->u.welcome.nonce, PROTO_KEY_LEN, 0x80);
}

static void offer_frame(struct proto_frame *f, const char *name)
{
    memset(f, 0, sizeof(*f));
    f->type = PROTO_OFFER;
    f->u.offer.size = 1234567;
    f->u.offer.mtime_sec = 1700000000;
    f->u.offer.mtime_nsec = 123456789;
    f->u.offer.mode = 0100644;
    f->u.offer.name_len = (uint16_t)strlen(name);
    memcpy(f->u.offer.name, name, f->u.offer.name_len);
}

static size_t make_hello(uint8_t *out, size_t cap, struct proto_frame *want)
{
    hello_frame(want, PROTO_VERSION);
    return must_encode(want, out, cap);
}

static size_t make_welcome(uint8_t *out, size_t cap, struct proto_frame *want)
{
    welcome_frame(want, PROTO_VERSION);
    return must_encode(want, out, cap);
}

static size_t make_auth(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_AUTH;
    fill_run(want->u.auth.tag, PROTO_KEY_LEN, 0xc0);
    return must_encode(want, out, cap);
}

static size_t make_offer_utf8_name(uint8_t *out, size_t cap, struct proto_frame *want)
{
    offer_frame(want, "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt"); /* résumé ✓.txt */
    return must_encode(want, out, cap);
}

static size_t make_accept(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_ACCEPT;
    want->u.accept.epoch = 7;
    want->u.accept.offset = 3 * PROTO_CHUNK_SIZE;
    return must_encode(want, out, cap);
}

static size_t make_bare(uint8_t *out, size_t cap, struct proto_frame *want, uint8_t type)
{
    memset(want, 0, sizeof(*want));
    want->type = type;
    return must_encode(want, out, cap);
}

static size_t make_complete(uint8_t *out, size_t cap, struct proto_frame *want)
{
    return make_bare(out, cap, want, PROTO_COMPLETE);
}

static size_t make_need_hash(uint8_t *out, size_t cap, struct proto_frame *want)
{
    return make_bare(out, cap, want, PROTO_NEED_HASH);
}

static size_t make_committed(uint8_t *out, size_t cap, struct proto_frame *want)
{
    return make_bare(out, cap, want, PROTO_COMMITTED);
}

static size_t make_ping(uint8_t *out, size_t cap, struct proto_frame *want)
{
    return make_bare(out, cap, want, PROTO_PING);
}

static size_t make_text(uint8_t *out, size_t cap, struct proto_frame *want, uint8_t type,
                        uint16_t code, const char *text)
{
    memset(want, 0, sizeof(*want));
    want->type = type;
    /* refuse and error share one layout */
    want->u.refuse.code = code;
    want->u.refuse.text_len = (uint16_t)strlen(text);
    memcpy(want->u.refuse.text, text, want->u.refuse.text_len);
    return must_encode(want, out, cap);
}

static size_t make_refuse(uint8_t *out, size_t cap, struct proto_frame *want)
{
    return make_text(out, cap, want, PROTO_REFUSE, PROTO_BUSY,
                     "another sender is transferring that name");
}

static size_t make_error(uint8_t *out, size_t cap, struct proto_frame *want)
{
    return make_text(out, cap, want, PROTO_ERROR, PROTO_PROTOCOL, "unexpected DATA before ACCEPT");
}

static size_t make_file_hash(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_FILE_HASH;
    want->u.file_hash.high = UINT64_C(0x0123456789abcdef);
    want->u.file_hash.low = UINT64_C(0xfedcba9876543210);
    return must_encode(want, out, cap);
}

static const char data_small_bytes[] = "hello, xfer\n";

static size_t make_data_small(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_DATA;
    want->u.data.epoch = 7;
    want->u.data.offset = 0;
    want->u.data.len = sizeof(data_small_bytes) - 1;
    want->u.data.bytes = (const uint8_t *)data_small_bytes;
    want->u.data.hash = proto_chunk_hash(data_small_bytes, want->u.data.len, 0);
    return must_encode(want, out, cap);
}

static size_t make_ack(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_ACK;
    want->u.ack.epoch = 7;
    want->u.ack.offset = PROTO_CHUNK_SIZE;
    return must_encode(want, out, cap);
}

static size_t make_rewind(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_REWIND;
    want->u.rewind.epoch = 8;
    want->u.rewind.offset = PROTO_CHUNK_SIZE;
    want->u.rewind.reason = PROTO_REWIND_BAD_CHUNK;
    return must_encode(want, out, cap);
}

static size_t make_end(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_END;
    want->u.end.epoch = 7;
    want->u.end.hash.high = UINT64_C(0x1122334455667788);
    want->u.end.hash.low = UINT64_C(0x99aabbccddeeff00);
    return must_encode(want, out, cap);
}

static size_t make_bye(uint8_t *out, size_t cap, struct proto_frame *want)
{
    memset(want, 0, sizeof(*want));
    want->type = PROTO_BYE;
    want->u.bye.status = PROTO_OK;
    return must_encode(want, out, cap);
}

static size_t make_bad_magic(uint8_t *out, size_t cap, struct proto_frame *want)
{
    struct proto_frame hello;
    size_t n;

    hello_frame(&hello, PROTO_VERSION);
    n = must_encode(&hello, out, cap);
    out[PROTO_HDR_LEN + 3] = 'S'; /* "XFES" */
    memset(want, 0, sizeof(*want));
    return n;
}

/* A HELLO exactly as a version-1 sender writes it: magic, version 1, flags,
 * session id and a u32 file count, 28 bytes of payload. */
static size_t make_version_1(uint8_t *out, size_t cap, struct proto_frame *want)
{
    struct buf_writer w;

    memset(want, 0, sizeof(*want));
    want->type = PROTO_HELLO;
    want->u.hello.version = 1;
    if (cap < PROTO_HDR_LEN + 28)
        abort();
    put_header(out, 28, PROTO_HELLO, 0, 0);
    buf_writer_init(&w, out + PROTO_HDR_LEN, 28);
    (void)buf_put_u32(&w, PROTO_MAGIC); /* exactly 28 bytes, room checked above */
    (void)buf_put_u16(&w, 1);
    (void)buf_put_u16(&w, 0);
    for (uint8_t i = 0; i < PROTO_SESSION_ID_LEN; i++)
        (void)buf_put_u8(&w, i);
    (void)buf_put_u32(&w, 3); /* file count */
    return PROTO_HDR_LEN + 28;
}

/* A HELLO of version 2: our layout, from a peer whose pre-shared key is a
 * plain BLAKE2b of the secret, so it must hear of the version, not fail a proof. */
static size_t make_version_2(uint8_t *out, size_t cap, struct proto_frame *want)
{
    hello_frame(want, 2);
    return must_encode(want, out, cap);
}

/* A HELLO of a future version 4, laid out as ours. */
static size_t make_version_4(uint8_t *out, size_t cap, struct proto_frame *want)
{
    hello_frame(want, 4);
    return must_encode(want, out, cap);
}

static size_t make_oversize(uint8_t *out, size_t cap, struct proto_frame *want)
{
    (void)cap;
    memset(want, 0, sizeof(*want));
    return put_header(out, PROTO_MAX_CONTROL + 1, PROTO_OFFER, 0, 0);
}

static size_t make_oversize_data(uint8_t *out, size_t cap, struct proto_frame *want)
{
    (void)cap;
    memset(want, 0, sizeof(*want));
    return put_header(out, PROTO_MAX_PAYLOAD + 1, PROTO_DATA, 0, 0);
}

static size_t make_unknown_type(uint8_t *out, size_t cap, struct proto_frame *want)
{
    (void)cap;
    memset(want, 0, sizeof(*want));
    return put_header(out, 0, PROTO_TYPE_MAX + 1, 0, 0);
}

static size_t make_nonzero_flags(uint8_t *out, size_t cap, struct proto_frame *want)
{
    (void)cap;
    memset(want, 0, sizeof(*want));
    return put_header(out, 0, PROTO_PING, 1, 0);
}

static size_t make_truncated_offer(uint8_t *out, size_t cap, struct proto_frame *want)
{
    struct proto_frame offer;

    offer_frame(&offer, "a.txt");
    (void)must_encode(&offer, out, cap);
    /* size, mtime and mtime_nsec only: mode and name_len are missing */
    put_header(out, 20, PROTO_OFFER, 0, 0);
    memset(want, 0, sizeof(*want));
    return PROTO_HDR_LEN + 20;
}

static size_t make_name_past_end(uint8_t *out, size_t cap, struct proto_frame *want)
{
    struct proto_frame offer;
    size_t n;

    offer_frame(&offer, "abcdef");
    n = must_encode(&offer, out, cap);
    /* name_len says 12; the payload ends after the 6 bytes that are there */
    out[n - 6 - 1] = 12;
    memset(want, 0, sizeof(*want));
    return n;
}

static size_t make_trailing_byte(uint8_t *out, size_t cap, struct proto_frame *want)
{
    (void)cap;
    memset(want, 0, sizeof(*want));
    put_header(out, 1, PROTO_PING, 0, 0);
    out[PROTO_HDR_LEN] = 0;
    return PROTO_HDR_LEN + 1;
}

static size_t make_empty_data(uint8_t *out, size_t cap, struct proto_frame *want)
{
    int n = proto_encode_data_prefix(out, cap, 7, 0, proto_chunk_hash("", 0, 0), 1);

    if (n != PROTO_DATA_PREFIX_LEN)
        abort();
    /* the prefix announced one byte; say none instead */
    put_header(out, PROTO_DATA_FIXED, PROTO_DATA, 0, 0);
    memset(want, 0, sizeof(*want));
    return PROTO_DATA_PREFIX_LEN;
}

static size_t make_partial_hello(uint8_t *out, size_t cap, struct proto_frame *want)
{
    struct proto_frame hello;

    hello_frame(&hello, PROTO_VERSION);
    (void)must_encode(&hello, out, cap);
    memset(want, 0, sizeof(*want));
    /* header and 40 of the 90 payload bytes: it stops inside the public key */
    return PROTO_HDR_LEN + 40;
}

static size_t make_truncated_welcome(uint8_t *out, size_t cap, struct proto_frame *want)
{
    struct proto_frame welcome;

    welcome_frame(&welcome, PROTO_VERSION);
    (void)must_encode(&welcome, out, cap);
    /* everything up to the public key; the receiver's nonce is missing */
    put_header(out, 8 + 2 + PROTO_KEY_LEN, PROTO_WELCOME, 0, 0);
    memset(want, 0, sizeof(*want));
    return PROTO_HDR_LEN + 8 + 2 + PROTO_KEY_LEN;
}

static size_t make_http_get(uint8_t *out, size_t cap, struct proto_frame *want)
{
    static const char get[] = "GET / HTTP/1.1\r\n\r\n";

    (void)cap;
    memset(want, 0, sizeof(*want));
    memcpy(out, get, sizeof(get) - 1);
    return sizeof(get) - 1;
}

/* Keep in step with fixtures/frames/README. */
const struct frame_fixture frame_fixtures[] = {
    {"hello.bin", 98, make_hello},
    {"welcome.bin", 82, make_welcome},
    {"auth.bin", 40, make_auth},
    {"offer_utf8_name.bin", 50, make_offer_utf8_name},
    {"accept.bin", 20, make_accept},
    {"complete.bin", 8, make_complete},
    {"refuse.bin", 52, make_refuse},
    {"need_hash.bin", 8, make_need_hash},
    {"file_hash.bin", 24, make_file_hash},
    {"data_small.bin", 40, make_data_small},
    {"ack.bin", 20, make_ack},
    {"rewind.bin", 22, make_rewind},
    {"end.bin", 28, make_end},
    {"committed.bin", 8, make_committed},
    {"ping.bin", 8, make_ping},
    {"error.bin", 41, make_error},
    {"bye.bin", 10, make_bye},
    {"bad_magic.bin", XFER_EMAGIC, make_bad_magic},
    {"version_1.bin", XFER_EVERSION, make_version_1},
    {"version_2.bin", XFER_EVERSION, make_version_2},
    {"version_4.bin", XFER_EVERSION, make_version_4},
    {"oversize.bin", XFER_ETOOBIG, make_oversize},
    {"oversize_data.bin", XFER_ETOOBIG, make_oversize_data},
    {"unknown_type.bin", XFER_EPROTO, make_unknown_type},
    {"nonzero_flags.bin", XFER_EPROTO, make_nonzero_flags},
    {"truncated_offer.bin", XFER_EPROTO, make_truncated_offer},
    {"name_past_end.bin", XFER_EPROTO, make_name_past_end},
    {"trailing_byte.bin", XFER_EPROTO, make_trailing_byte},
    {"empty_data.bin", XFER_EPROTO, make_empty_data},
    {"truncated_welcome.bin", XFER_EPROTO, make_truncated_welcome},
    {"partial_hello.bin", XFER_EPARTIAL, make_partial_hello},
    {"http_get.bin", XFER_EPROTO, make_http_get},
};

const size_t frame_fixture_count = sizeof(frame_fixtures) / sizeof(frame_fixtures[0]);

void jfix_identity(struct journal_identity *id)
{
    memset(id, 0, sizeof(*id));
    id->size = JFIX_SIZE;
    id->mtime_sec = JFIX_MTIME_SEC;
    id->mtime_nsec = JFIX_MTIME_NSEC;
    strcpy(id->name, JFIX_NAME);
}

void jfix_data(uint8_t *p, size_t len)
{
    uint64_t x = 0x786665722d6a6e6cu; /* any fixed seed */

    for (size_t i = 0; i < len; i++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        p[i] = (uint8_t)(x >> 56);
    }
}
