/* proto: encodes and decodes xfer frames (man/xfer-protocol.7). No I/O, no
 * allocation, never reads past len. Decoders return bytes consumed,
 * XFER_EPARTIAL when more input is needed, or another XFER_E* for input that
 * can never become valid. Encoders return bytes written or XFER_ETOOBIG.
 *
 * A frame is an 8-byte header (u32 payload length, u8 type, u8 flags = 0,
 * u16 reserved = 0) followed by the payload; integers are big-endian. */
#ifndef XFER_PROTO_H
#define XFER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC 0x58464552u /* "XFER" */
/* 3: the pre-shared key became Argon2id of the secret (auth.h); the frames
 * are those of 2, whose peers must get VERSION_MISMATCH, not a failed proof. */
#define PROTO_VERSION 3
#define PROTO_HDR_LEN 8
#define PROTO_CHUNK_SIZE (1024u * 1024u)
#define PROTO_DATA_FIXED 20 /* epoch, offset, chunk hash */
#define PROTO_MAX_PAYLOAD (PROTO_DATA_FIXED + PROTO_CHUNK_SIZE)
#define PROTO_MAX_CONTROL 4096 /* every frame but DATA */
#define PROTO_MAX_NAME 255
#define PROTO_MAX_TEXT 1024
#define PROTO_SESSION_ID_LEN 16
#define PROTO_KEY_LEN 32 /* X25519 public keys, nonces and tags */

enum proto_type {
    PROTO_HELLO = 1,
    PROTO_WELCOME = 2,
    PROTO_OFFER = 3,
    PROTO_ACCEPT = 4,
    PROTO_COMPLETE = 5,
    PROTO_REFUSE = 6,
    PROTO_NEED_HASH = 7,
    PROTO_FILE_HASH = 8,
    PROTO_DATA = 9,
    PROTO_ACK = 10,
    PROTO_REWIND = 11,
    PROTO_END = 12,
    PROTO_COMMITTED = 13,
    PROTO_PING = 14,
    PROTO_ERROR = 15,
    PROTO_BYE = 16,
    PROTO_AUTH = 17,
    PROTO_TYPE_MAX = 17
};

/* Reasons carried by REFUSE, ERROR and BYE. */
enum proto_code {
    PROTO_OK = 0,
    PROTO_EXISTS = 1,   /* a different file already has that name */
    PROTO_BUSY = 2,     /* another sender is transferring that name */
    PROTO_NO_SPACE = 3, /* the receiver's disk cannot hold the file */
    PROTO_BAD_NAME = 4, /* the name is not a plain, valid file name */
    PROTO_RETRY = 5,    /* transient: reconnect and offer again */
    PROTO_IO = 6,       /* the receiver could not read or write its disk */
    PROTO_VERIFY = 7,   /* the whole-file hash did not match, twice */
    PROTO_VERSION_MISMATCH = 8,
    PROTO_PROTOCOL = 9,  /* malformed or unexpected frame */
    PROTO_TIMEOUT = 10,  /* peer silent for too long */
    PROTO_SHUTDOWN = 11, /* receiver is shutting down */
    PROTO_AUTH_FAILED = 12, /* the peer does not hold the same secret */
    PROTO_CODE_MAX = 12
};

/* Why the receiver asks the sender to go back. */
enum proto_rewind_reason {
    PROTO_REWIND_BAD_CHUNK = 1, /* a chunk arrived with a wrong hash */
    PROTO_REWIND_DAMAGED = 2,   /* the partial on disk failed its journal check */
    PROTO_REWIND_VERIFY = 3,    /* whole-file hash mismatch: start the file over */
    PROTO_REWIND_REASON_MAX = 3
};

struct proto_hash128 {
    uint64_t high;
    uint64_t low;
};

struct proto_header {
    uint32_t len;
    uint8_t type;
};

struct proto_frame {
    uint8_t type;
    union {
        struct {
            uint16_t version;
            uint16_t flags;
            uint8_t session_id[PROTO_SESSION_ID_LEN];
            uint16_t ciphers; /* AUTH_CIPHER_* bitmask */
            uint8_t pk[PROTO_KEY_LEN];
            uint8_t nonce[PROTO_KEY_LEN];
        } hello;
        struct {
            uint16_t version;
            uint16_t flags;
            uint16_t cipher; /* the one AUTH_CIPHER_* chosen */
            uint8_t pk[PROTO_KEY_LEN];
            uint8_t nonce[PROTO_KEY_LEN];
        } welcome;
        struct {
            uint8_t tag[PROTO_KEY_LEN]; /* a proof: the sender's, then the receiver's */
        } auth;
        struct {
            uint64_t size;
            int64_t mtime_sec;
            uint32_t mtime_nsec;
            uint32_t mode;
            uint16_t name_len;
            char name[PROTO_MAX_NAME + 1]; /* NUL-terminated copy */
        } offer;
        struct {
            uint32_t epoch;
            uint64_t offset;
        } accept, ack;
        struct {
            uint32_t epoch;
            uint64_t offset;
            uint16_t reason;
        } rewind;
        struct {
            uint16_t code;
            uint16_t text_len;
            char text[PROTO_MAX_TEXT + 1]; /* NUL-terminated copy */
        } refuse, error;
        struct proto_hash128 file_hash;
        struct {
            uint32_t epoch;
            uint64_t offset;
            uint64_t hash; /* XXH3-64 of bytes, seeded with offset */
            uint32_t len;
            const uint8_t *bytes; /* points into the decoded input */
        } data;
        struct {
            uint32_t epoch;
            struct proto_hash128 hash;
        } end;
        struct {
            uint16_t status;
        } bye;
    } u;
};

/* Decodes the 8-byte header and checks the length against the type's maximum.
 * Returns PROTO_HDR_LEN, XFER_EPARTIAL, XFER_EPROTO (unknown type, nonzero
 * reserved bits) or XFER_ETOOBIG. */
int proto_decode_header(const uint8_t *p, size_t len, struct proto_header *h);

/* Decodes a payload of exactly len bytes for the given type. DATA's bytes
 * point into p. A HELLO or WELCOME with the right magic but another version
 * returns XFER_EVERSION with f->u.hello.version (or welcome) set. Returns 0. */
int proto_decode_payload(uint8_t type, const uint8_t *p, size_t len, struct proto_frame *f);

/* Header plus payload from one buffer; returns bytes consumed. */
int proto_decode(const uint8_t *p, size_t len, struct proto_frame *f);

/* Encodes a whole frame (DATA included, copying its bytes). */
int proto_encode(const struct proto_frame *f, uint8_t *out, size_t cap);

/* Encodes only the header and fixed fields of a DATA frame whose datalen
 * bytes the caller sends right after (no copy). Returns bytes written. */
int proto_encode_data_prefix(uint8_t *out, size_t cap, uint32_t epoch, uint64_t offset,
                             uint64_t hash, uint32_t datalen);
#define PROTO_DATA_PREFIX_LEN (PROTO_HDR_LEN + PROTO_DATA_FIXED)

/* Chunk hash as carried in DATA and kept in the journal. */
uint64_t proto_chunk_hash(const void *bytes, size_t len, uint64_t offset);

const char *proto_type_name(uint8_t type);
const char *proto_code_text(uint16_t code);

#endif
