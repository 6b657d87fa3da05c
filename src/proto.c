#include <string.h>

#include <xxhash.h>

#include "xfer/buf.h"
#include "xfer/err.h"
#include "xfer/proto.h"

uint64_t proto_chunk_hash(const void *bytes, size_t len, uint64_t offset)
{
    /* Seeding with the offset binds a chunk to its place: a chunk resent at
     * the wrong offset, or an offset field hit by a flipped bit, fails. */
    return XXH3_64bits_withSeed(bytes, len, offset);
}

int proto_decode_header(const uint8_t *p, size_t len, struct proto_header *h)
{
    struct buf_reader r;
    uint8_t flags;
    uint16_t reserved;

    memset(h, 0, sizeof(*h));
    if (len < PROTO_HDR_LEN)
        return XFER_EPARTIAL;
    buf_reader_init(&r, p, PROTO_HDR_LEN);
    (void)buf_get_u32(&r, &h->len); /* cannot fail: length checked above */
    (void)buf_get_u8(&r, &h->type);
    (void)buf_get_u8(&r, &flags);
    (void)buf_get_u16(&r, &reserved);
    if (h->type == 0 || h->type > PROTO_TYPE_MAX || flags != 0 || reserved != 0)
        return XFER_EPROTO;
    if (h->type == PROTO_DATA) {
        if (h->len > PROTO_MAX_PAYLOAD)
            return XFER_ETOOBIG;
    } else if (h->len > PROTO_MAX_CONTROL) {
        return XFER_ETOOBIG;
    }
    return PROTO_HDR_LEN;
}

static int get_magic_version(struct buf_reader *r, uint16_t *version, uint16_t *flags)
{
    uint32_t magic;

    if (buf_get_u32(r, &magic) < 0)
        return XFER_EPROTO;
    if (magic != PROTO_MAGIC)
        return XFER_EMAGIC;
    if (buf_get_u16(r, version) < 0 || buf_get_u16(r, flags) < 0)
        return XFER_EPROTO;
    if (*version != PROTO_VERSION)
        return XFER_EVERSION;
    return 0;
}

static int get_text(struct buf_reader *r, uint16_t *code, uint16_t *text_len, char *text)
{
    if (buf_get_u16(r, code) < 0 || buf_get_u16(r, text_len) < 0)
        return XFER_EPROTO;
    if (*text_len > PROTO_MAX_TEXT)
        return XFER_ETOOBIG;
    if (buf_get_bytes(r, text, *text_len) < 0)
        return XFER_EPROTO;
    text[*text_len] = '\0';
    return 0;
}

static int get_hash128(struct buf_reader *r, struct proto_hash128 *h)
{
    if (buf_get_u64(r, &h->high) < 0 || buf_get_u64(r, &h->low) < 0)
        return XFER_EPROTO;
    return 0;
}

static int get_offer(struct buf_reader *r, struct proto_frame *f)
{
    uint64_t mtime;

    if (buf_get_u64(r, &f->u.offer.size) < 0 || buf_get_u64(r, &mtime) < 0 ||
        buf_get_u32(r, &f->u.offer.mtime_nsec) < 0 || buf_get_u32(r, &f->u.offer.mode) < 0 ||
        buf_get_u16(r, &f->u.offer.name_len) < 0)
        return XFER_EPROTO;
    f->u.offer.mtime_sec = (int64_t)mtime;
    if (f->u.offer.mtime_nsec >= 1000000000u)
        return XFER_EPROTO;
    if (f->u.offer.size > INT64_MAX)
        return XFER_ETOOBIG;
    if (f->u.offer.name_len > PROTO_MAX_NAME)
        return XFER_ETOOBIG;
    if (buf_get_bytes(r, f->u.offer.name, f->u.offer.name_len) < 0)
        return XFER_EPROTO;
    f->u.offer.name[f->u.offer.name_len] = '\0';
    return 0;
}

static int get_epoch_offset(struct buf_reader *r, uint32_t *epoch, uint64_t *offset)
{
    if (buf_get_u32(r, epoch) < 0 || buf_get_u64(r, offset) < 0)
        return XFER_EPROTO;
    if (*offset > INT64_MAX)
        return XFER_ETOOBIG;
    return 0;
}

static int get_data(struct buf_reader *r, struct proto_frame *f)
{
    size_t n;
    int rc = get_epoch_offset(r, &f->u.data.epoch, &f->u.data.offset);

    if (rc < 0)
        return rc;
    if (buf_get_u64(r, &f->u.data.hash) < 0)
        return XFER_EPROTO;
    n = buf_remaining(r);
    if (n == 0 || n > PROTO_CHUNK_SIZE)
        return XFER_EPROTO;
    f->u.data.len = (uint32_t)n;
    return buf_peek_bytes(r, &f->u.data.bytes, n);
}

static int decode_fields(uint8_t type, struct buf_reader *r, struct proto_frame *f)
{
    switch (type) {
    case PROTO_HELLO: {
        int rc = get_magic_version(r, &f->u.hello.version, &f->u.hello.flags);

        if (rc < 0)
            return rc;
        if (buf_get_bytes(r, f->u.hello.session_id, PROTO_SESSION_ID_LEN) < 0 ||
            buf_get_u16(r, &f->u.hello.ciphers) < 0 ||
            buf_get_bytes(r, f->u.hello.pk, PROTO_KEY_LEN) < 0 ||
            buf_get_bytes(r, f->u.hello.nonce, PROTO_KEY_LEN) < 0)
            return XFER_EPROTO;
        return 0;
    }
    case PROTO_WELCOME: {
        int rc = get_magic_version(r, &f->u.welcome.version, &f->u.welcome.flags);

        if (rc < 0)
            return rc;
        if (buf_get_u16(r, &f->u.welcome.cipher) < 0 ||
            buf_get_bytes(r, f->u.welcome.pk, PROTO_KEY_LEN) < 0 ||
            buf_get_bytes(r, f->u.welcome.nonce, PROTO_KEY_LEN) < 0)
            return XFER_EPROTO;
        return 0;
    }
    case PROTO_AUTH:
        if (buf_get_bytes(r, f->u.auth.tag, PROTO_KEY_LEN) < 0)
            return XFER_EPROTO;
        return 0;
    case PROTO_OFFER:
        return get_offer(r, f);
    case PROTO_ACCEPT:
        return get_epoch_offset(r, &f->u.accept.epoch, &f->u.accept.offset);
    case PROTO_ACK:
        return get_epoch_offset(r, &f->u.ack.epoch, &f->u.ack.offset);
    case PROTO_REWIND: {
        int rc = get_epoch_offset(r, &f->u.rewind.epoch, &f->u.rewind.offset);

        if (rc < 0)
            return rc;
        if (buf_get_u16(r, &f->u.rewind.reason) < 0)
            return XFER_EPROTO;
        if (f->u.rewind.reason == 0 || f->u.rewind.reason > PROTO_REWIND_REASON_MAX)
            return XFER_EPROTO;
        return 0;
    }
    case PROTO_REFUSE:
        return get_text(r, &f->u.refuse.code, &f->u.refuse.text_len, f->u.refuse.text);
    case PROTO_ERROR:
        return get_text(r, &f->u.error.code, &f->u.error.text_len, f->u.error.text);
    case PROTO_FILE_HASH:
        return get_hash128(r, &f->u.file_hash);
    case PROTO_DATA:
        return get_data(r, f);
    case PROTO_END:
        if (buf_get_u32(r, &f->u.end.epoch) < 0)
            return XFER_EPROTO;
        return get_hash128(r, &f->u.end.hash);
    case PROTO_BYE:
        if (buf_get_u16(r, &f->u.bye.status) < 0)
            return XFER_EPROTO;
        return 0;
    case PROTO_COMPLETE:
    case PROTO_NEED_HASH:
    case PROTO_COMMITTED:
    case PROTO_PING:
        return 0;
    default:
        return XFER_EPROTO;
    }
}

int proto_decode_payload(uint8_t type, const uint8_t *p, size_t len, struct proto_frame *f)
{
    struct buf_reader r;
    int rc;

    memset(f, 0, sizeof(*f));
    f->type = type;
    buf_reader_init(&r, p, len);
    rc = decode_fields(type, &r, f);
    if (rc < 0)
        return rc;
    /* Trailing bytes mean the peer and we disagree on the layout. */
    if (buf_remaining(&r) != 0)
        return XFER_EPROTO;
    return 0;
}

int proto_decode(const uint8_t *p, size_t len, struct proto_frame *f)
{
    struct proto_header h;
    int rc = proto_decode_header(p, len, &h);

    if (rc < 0) {
        memset(f, 0, sizeof(*f));
        return rc;
    }
    if (len - PROTO_HDR_LEN < h.len) {
        memset(f, 0, sizeof(*f));
        return XFER_EPARTIAL;
    }
    rc = proto_decode_payload(h.type, p + PROTO_HDR_LEN, h.len, f);
    if (rc < 0)
        return rc;
    return (int)(PROTO_HDR_LEN + h.len);
}

static int put_text(struct buf_writer *w, uint16_t code, const char *text)
{
    size_t n = strnlen(text, PROTO_MAX_TEXT);
    int rc = buf_put_u16(w, code);

    if (rc == 0)
        rc = buf_put_u16(w, (uint16_t)n);
    if (rc == 0)
        rc = buf_put_bytes(w, text, n);
    return rc;
}

static int put_hash128(struct buf_writer *w, const struct proto_hash128 *h)
{
    int rc = buf_put_u64(w, h->high);

    if (rc == 0)
        rc = buf_put_u64(w, h->low);
    return rc;
}

static int put_magic_version(struct buf_writer *w, uint16_t version, uint16_t flags)
{
    int rc = buf_put_u32(w, PROTO_MAGIC);

    if (rc == 0)
        rc = buf_put_u16(w, version);
    if (rc == 0)
        rc = buf_put_u16(w, flags);
    return rc;
}

static int put_epoch_offset(struct buf_writer *w, uint32_t epoch, uint64_t offset)
{
    int rc = buf_put_u32(w, epoch);

    if (rc == 0)
        rc = buf_put_u64(w, offset);
    return rc;
}

static int encode_fields(const struct proto_frame *f, struct buf_writer *w)
{
    int rc = 0;

    switch (f->type) {
    case PROTO_HELLO:
        rc = put_magic_version(w, f->u.hello.version, f->u.hello.flags);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.hello.session_id, PROTO_SESSION_ID_LEN);
        if (rc == 0)
            rc = buf_put_u16(w, f->u.hello.ciphers);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.hello.pk, PROTO_KEY_LEN);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.hello.nonce, PROTO_KEY_LEN);
        return rc;
    case PROTO_WELCOME:
        rc = put_magic_version(w, f->u.welcome.version, f->u.welcome.flags);
        if (rc == 0)
            rc = buf_put_u16(w, f->u.welcome.cipher);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.welcome.pk, PROTO_KEY_LEN);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.welcome.nonce, PROTO_KEY_LEN);
        return rc;
    case PROTO_AUTH:
        return buf_put_bytes(w, f->u.auth.tag, PROTO_KEY_LEN);
    case PROTO_OFFER:
        if (f->u.offer.name_len > PROTO_MAX_NAME)
            return XFER_ETOOBIG;
        rc = buf_put_u64(w, f->u.offer.size);
        if (rc == 0)
            rc = buf_put_u64(w, (uint64_t)f->u.offer.mtime_sec);
        if (rc == 0)
            rc = buf_put_u32(w, f->u.offer.mtime_nsec);
        if (rc == 0)
            rc = buf_put_u32(w, f->u.offer.mode);
        if (rc == 0)
            rc = buf_put_u16(w, f->u.offer.name_len);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.offer.name, f->u.offer.name_len);
        return rc;
    case PROTO_ACCEPT:
    case PROTO_ACK:
        return put_epoch_offset(w, f->u.ack.epoch, f->u.ack.offset);
    case PROTO_REWIND:
        rc = put_epoch_offset(w, f->u.rewind.epoch, f->u.rewind.offset);
        if (rc == 0)
            rc = buf_put_u16(w, f->u.rewind.reason);
        return rc;
    case PROTO_REFUSE:
        return put_text(w, f->u.refuse.code, f->u.refuse.text);
    case PROTO_ERROR:
        return put_text(w, f->u.error.code, f->u.error.text);
    case PROTO_FILE_HASH:
        return put_hash128(w, &f->u.file_hash);
    case PROTO_DATA:
        if (f->u.data.len == 0 || f->u.data.len > PROTO_CHUNK_SIZE)
            return XFER_ETOOBIG;
        rc = put_epoch_offset(w, f->u.data.epoch, f->u.data.offset);
        if (rc == 0)
            rc = buf_put_u64(w, f->u.data.hash);
        if (rc == 0)
            rc = buf_put_bytes(w, f->u.data.bytes, f->u.data.len);
        return rc;
    case PROTO_END:
        rc = buf_put_u32(w, f->u.end.epoch);
        if (rc == 0)
            rc = put_hash128(w, &f->u.end.hash);
        return rc;
    case PROTO_BYE:
        return buf_put_u16(w, f->u.bye.status);
    case PROTO_COMPLETE:
    case PROTO_NEED_HASH:
    case PROTO_COMMITTED:
    case PROTO_PING:
        return 0;
    default:
        return XFER_EPROTO;
    }
}

static void put_header(uint8_t *out, uint32_t len, uint8_t type)
{
    struct buf_writer w;

    buf_writer_init(&w, out, PROTO_HDR_LEN);
    (void)buf_put_u32(&w, len); /* cannot fail: room checked by callers */
    (void)buf_put_u8(&w, type);
    (void)buf_put_u8(&w, 0);
    (void)buf_put_u16(&w, 0);
}

int proto_encode(const struct proto_frame *f, uint8_t *out, size_t cap)
{
    struct buf_writer w;
    int rc;

    if (cap < PROTO_HDR_LEN)
        return XFER_ETOOBIG;
    buf_writer_init(&w, out + PROTO_HDR_LEN, cap - PROTO_HDR_LEN);
    rc = encode_fields(f, &w);
    if (rc < 0)
        return rc;
    put_header(out, (uint32_t)w.pos, f->type);
    return (int)(PROTO_HDR_LEN + w.pos);
}

int proto_encode_data_prefix(uint8_t *out, size_t cap, uint32_t epoch, uint64_t offset,
                             uint64_t hash, uint32_t datalen)
{
    struct buf_writer w;

    if (cap < PROTO_DATA_PREFIX_LEN || datalen == 0 || datalen > PROTO_CHUNK_SIZE)
        return XFER_ETOOBIG;
    put_header(out, PROTO_DATA_FIXED + datalen, PROTO_DATA);
    buf_writer_init(&w, out + PROTO_HDR_LEN, PROTO_DATA_FIXED);
    (void)buf_put_u32(&w, epoch); /* cannot fail: exactly PROTO_DATA_FIXED */
    (void)buf_put_u64(&w, offset);
    (void)buf_put_u64(&w, hash);
    return PROTO_DATA_PREFIX_LEN;
}

const char *proto_type_name(uint8_t type)
{
    static const char *const names[] = {
        "?",   "HELLO", "WELCOME", "OFFER", "ACCEPT", "COMPLETE",  "REFUSE", "NEED_HASH", "FILE_HASH",
        "DATA", "ACK",  "REWIND",  "END",   "COMMITTED", "PING", "ERROR",  "BYE", "AUTH"};

    if (type > PROTO_TYPE_MAX)
        return "?";
    return names[type];
}

const char *proto_code_text(uint16_t code)
{
    switch (code) {
    case PROTO_OK:
        return "ok";
    case PROTO_EXISTS:
        return "a different file with that name exists";
    case PROTO_BUSY:
        return "receiver busy";
    case PROTO_NO_SPACE:
        return "not enough space";
    case PROTO_BAD_NAME:
        return "bad file name";
    case PROTO_RETRY:
        return "temporary condition, retry";
    case PROTO_IO:
        return "receiver I/O error";
    case PROTO_VERIFY:
        return "verification failed";
    case PROTO_VERSION_MISMATCH:
        return "protocol version mismatch";
    case PROTO_PROTOCOL:
        return "protocol error";
    case PROTO_TIMEOUT:
        return "peer went silent";
    case PROTO_SHUTDOWN:
        return "receiver shutting down";
    case PROTO_AUTH_FAILED:
        return "authentication failed";
    default:
        return "unknown reason";
    }
}
