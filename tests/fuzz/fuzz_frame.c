/* fuzz_frame: the frame decoder, alone and behind the record layer.
 *
 * The input is what a peer could put on the wire. Each run:
 *  1. proto_decode() on it, as a clear frame (the handshake's frames);
 *     a frame that decodes is encoded again, and that encoding must decode
 *     and re-encode to the same bytes;
 *  2. the input as a sealed record under a fixed key (header checked with
 *     seal_parse_header(), body opened with seal_open()): a forgery, which
 *     must fail to open without reading past the body;
 *  3. the input sealed properly, then opened and decoded exactly as link.c
 *     does with a record (one frame per record), so the decoder also sees
 *     every byte sequence through the record path.
 * Seeds: fixtures/fuzz/frame/ (the golden frames of fixtures/frames). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xfer/auth.h"
#include "xfer/err.h"
#include "xfer/proto.h"
#include "xfer/seal.h"

#define FRAME_MAX (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)

static const uint8_t fixed_key[32] = "xfer fuzz_frame fixed record key";
static uint8_t *scratch; /* one record: SEAL_HDR_LEN + FRAME_MAX + SEAL_TAG_LEN */
static uint8_t *enc1;
static uint8_t *enc2;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; /* libFuzzer's own options only */
    (void)argv;
    if (auth_init() < 0)
        abort();
    scratch = malloc(SEAL_HDR_LEN + SEAL_MAX_BODY);
    enc1 = malloc(FRAME_MAX);
    enc2 = malloc(FRAME_MAX);
    if (scratch == NULL || enc1 == NULL || enc2 == NULL)
        abort();
    return 0;
}

/* A decoded frame must survive encode -> decode -> encode unchanged. The
 * first encoding may differ from the input (text is cut at a NUL). */
static void check_reencode(const struct proto_frame *f)
{
    struct proto_frame f2;
    int n1, n2, d;

    n1 = proto_encode(f, enc1, FRAME_MAX);
    if (n1 < 0)
        abort(); /* whatever decodes can be encoded */
    d = proto_decode(enc1, (size_t)n1, &f2);
    if (d != n1)
        abort();
    n2 = proto_encode(&f2, enc2, FRAME_MAX);
    if (n2 != n1 || memcmp(enc1, enc2, (size_t)n1) != 0)
        abort();
}

static void decode_clear(const uint8_t *data, size_t size)
{
    struct proto_frame f;
    int n = proto_decode(data, size, &f);

    if (n > (int)size)
        abort();
    if (n > 0)
        check_reencode(&f);
}

/* The input taken as a record nobody sealed: it must not open. */
static void open_forged(const uint8_t *data, size_t size)
{
    struct seal s;
    int len;

    if (size < SEAL_HDR_LEN)
        return;
    len = seal_parse_header(data);
    if (len < 0)
        return;
    if (size - SEAL_HDR_LEN < (size_t)len)
        return; /* link.c reads exactly len more bytes first */
    /* Opened in place, as link.c does: a copy sized to the body, so any
     * over-read of it is caught. */
    {
        uint8_t *body = malloc((size_t)len);

        if (body == NULL)
            abort();
        memcpy(body, data + SEAL_HDR_LEN, (size_t)len);
        if (seal_init(&s, AUTH_CIPHER_XCHACHA20, fixed_key) < 0)
            abort();
        if (seal_open(&s, data, body, (size_t)len) != XFER_ECORRUPT)
            abort(); /* nobody without the key can make a record that opens */
        seal_wipe(&s);
        free(body);
    }
}

/* The input sealed as one record, then received as link.c receives one. */
static void open_sealed(const uint8_t *data, size_t size)
{
    struct seal tx, rx;
    struct proto_header h;
    struct proto_frame f;
    int rec_len, body_len, n;

    if (size > FRAME_MAX)
        return;
    memcpy(scratch + SEAL_HDR_LEN, data, size);
    if (seal_init(&tx, AUTH_CIPHER_XCHACHA20, fixed_key) < 0 ||
        seal_init(&rx, AUTH_CIPHER_XCHACHA20, fixed_key) < 0)
        abort();
    rec_len = seal_close(&tx, scratch, size);
    if (rec_len != (int)(SEAL_OVERHEAD + size))
        abort();
    body_len = seal_parse_header(scratch);
    if (size < PROTO_HDR_LEN) {
        if (body_len >= 0)
            abort(); /* a record too short to hold a frame header */
        goto out;
    }
    if (body_len != (int)(size + SEAL_TAG_LEN))
        abort();
    n = seal_open(&rx, scratch, scratch + SEAL_HDR_LEN, (size_t)body_len);
    if (n != (int)size || memcmp(scratch + SEAL_HDR_LEN, data, size) != 0)
        abort();
    if (proto_decode_header(scratch + SEAL_HDR_LEN, (size_t)n, &h) < 0)
        goto out;
    if (h.len != (size_t)n - PROTO_HDR_LEN)
        goto out; /* one frame per record, exactly */
    if (proto_decode_payload(h.type, scratch + SEAL_HDR_LEN + PROTO_HDR_LEN, h.len, &f) == 0)
        check_reencode(&f);
out:
    seal_wipe(&tx);
    seal_wipe(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_clear(data, size);
    open_forged(data, size);
    open_sealed(data, size);
    return 0;
}
