/* wire: a second implementation of xfer protocol 3, for tests that speak it by hand to a real
 * `xfer recv` (or play a receiver to a real `xfer send`) over a raw TCP socket.
 *
 * It is written from the protocol's description (xfer-protocol(7), HANDSHAKE and RECORD LAYER,
 * and include/xfer/proto.h, auth.h and seal.h; nothing from src/ is linked): libsodium does the
 * primitives, this file composes them as the description says, so a handshake that succeeds
 * against the real receiver also shows that the description is enough to implement a peer.
 *
 * The handshake, all in the clear: HELLO carries the sender's X25519 key, a nonce, a session id
 * and the ciphers it can run; WELCOME the receiver's key and nonce and the cipher it chose, no
 * proof; the sender's AUTH its proof of the secret (the client tag); the receiver's AUTH, sent
 * only if that checked out, its own (the server tag). Every frame after that travels in a
 * sealed record: [u32 body length][0x80][0][0][0], the body being the frame encrypted with the
 * direction's key (the 8-byte header as associated data) and a 16-byte tag; the nonce is the
 * direction's record counter, from 0, big-endian in the nonce's last 8 bytes.
 *
 * Helpers fail the running Criterion test on anything the description forbids, with the
 * receiver's stderr (harness_log(c->log)) in the message. */
#ifndef XFER_TESTS_WIRE_H
#define XFER_TESTS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <xxhash.h>

#include "harness.h" /* HARNESS_MS */

#define W_MAGIC 0x58464552u /* "XFER" */
#define W_VERSION 3
#define W_HDR 8
#define W_CHUNK 1048576u
#define W_DATA_FIXED 20
#define W_MAX_CONTROL 4096
#define W_MAX_TEXT 1024
#define W_SESSION_ID 16
#define W_KEY 32 /* public keys, handshake nonces, proofs */
#define W_HELLO_LEN (4 + 2 + 2 + W_SESSION_ID + 2 + W_KEY + W_KEY)
#define W_WELCOME_LEN (4 + 2 + 2 + 2 + W_KEY + W_KEY)
#define W_REC_TYPE 0x80
#define W_AEAD_TAG 16
/* The largest record body: a whole DATA frame and its tag. */
#define W_MAX_BODY (W_HDR + W_DATA_FIXED + W_CHUNK + W_AEAD_TAG)

/* Cipher bits in HELLO, one of them in WELCOME. */
#define W_CIPHER_AES256GCM 1u
#define W_CIPHER_XCHACHA20 2u

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
    W_BYE = 16,
    W_AUTH = 17,
    W_TYPE_MAX = 17
};

enum w_code {
    CODE_OK = 0,
    CODE_EXISTS = 1,
    CODE_BUSY = 2,
    CODE_BAD_NAME = 4,
    CODE_RETRY = 5,
    CODE_IO = 6,
    CODE_VERIFY = 7,
    CODE_VERSION_MISMATCH = 8,
    CODE_PROTOCOL = 9,
    CODE_TIMEOUT = 10,
    CODE_SHUTDOWN = 11,
    CODE_AUTH_FAILED = 12
};

/* Bound for any single answer of the peer. */
#define REPLY_MS HARNESS_MS(15000)

/* The side that sends ERROR may wait up to 2 s for it to be written before it closes. */
#define CLOSE_AFTER_ERROR_MS HARNESS_MS(5000)

extern const char *const w_type_names[W_TYPE_MAX + 1];

long long w_now_ms(void);

/* Big-endian field writers: each returns the byte after the field. */
uint8_t *w_put_u8(uint8_t *p, uint8_t v);
uint8_t *w_put_u16(uint8_t *p, uint16_t v);
uint8_t *w_put_u32(uint8_t *p, uint32_t v);
uint8_t *w_put_u64(uint8_t *p, uint64_t v);
uint8_t *w_put_bytes(uint8_t *p, const void *b, size_t n);
uint16_t w_get_u16(const uint8_t *p);
uint32_t w_get_u32(const uint8_t *p);
uint64_t w_get_u64(const uint8_t *p);

/* Frame header: u32 payload length, u8 type, u8 flags (0), u16 reserved (0). */
uint8_t *w_put_header(uint8_t *p, uint32_t len, uint8_t type);

/* ---- frames a sender sends --------------------------------------------- */

struct w_offer {
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t mode;
    const char *name;
    size_t name_len;
};

/* Each writes a whole frame to out and returns its length. */

/* OFFER: size, mtime_sec, mtime_nsec, mode, name_len, name (26 + L). out holds 8 + 26 + L. */
size_t w_enc_offer(uint8_t *out, const struct w_offer *o);
/* Header and fixed fields of DATA (28 bytes): epoch, offset, chunk hash; the n chunk bytes
 * follow (this returns 28). */
size_t w_enc_data_prefix(uint8_t *out, uint32_t epoch, uint64_t offset, uint64_t hash, uint32_t n);
/* END: epoch, then the XXH3-128 as high and low u64 (20 bytes). */
size_t w_enc_end(uint8_t *out, uint32_t epoch, XXH128_hash_t h);
/* FILE_HASH: the XXH3-128 as high and low u64 (16 bytes). */
size_t w_enc_file_hash(uint8_t *out, XXH128_hash_t h);
/* ERROR: code, text_len, text. out holds 8 + 4 + strlen(text). */
size_t w_enc_error(uint8_t *out, uint16_t code, const char *text);
size_t w_enc_bye(uint8_t *out, uint16_t status);

/* ---- key schedule ------------------------------------------------------ */

/* The pre-shared key: Argon2id (version 1.3, one lane) of the secret with 2 passes over 64 MiB
 * and the 16-byte salt "xfer/3 stretched", 32 bytes out. That takes tens of milliseconds, so the
 * last few secrets' keys are kept for the rest of the test process. */
void w_psk(uint8_t psk[32], const char *secret);

/* What HELLO and WELCOME said: the keys and proofs are bound to all of it. */
struct w_transcript {
    uint16_t client_flags;
    uint8_t client_pk[W_KEY];
    uint8_t client_nonce[W_KEY];
    uint8_t session_id[W_SESSION_ID];
    uint16_t client_ciphers;
    uint16_t server_flags;
    uint8_t server_pk[W_KEY];
    uint8_t server_nonce[W_KEY];
    uint16_t cipher;
};

struct w_keys {
    uint8_t c2s[32]; /* sender -> receiver records */
    uint8_t s2c[32];
    uint8_t client_tag[W_KEY]; /* the sender's proof, in its AUTH */
    uint8_t server_tag[W_KEY]; /* the receiver's proof, in its AUTH */
};

/* TH: BLAKE2b-256 of the 152-byte transcript. */
void w_transcript_hash(uint8_t th[32], const struct w_transcript *t);

/* Derives both directions' keys and both proofs, as the client (sk is the client's) or as the
 * server (sk is the server's). Returns 0, or -1 if the peer's public key is unusable. */
int w_client_keys(struct w_keys *k, const uint8_t psk[32], const uint8_t sk[32],
                  const struct w_transcript *t);
int w_server_keys(struct w_keys *k, const uint8_t psk[32], const uint8_t sk[32],
                  const struct w_transcript *t);

/* ---- a connection ------------------------------------------------------ */

struct w_conn {
    int fd;
    const char *log; /* harness name of the peer process, for messages ("recv") */
    uint8_t psk[32];
    uint8_t session_id[W_SESSION_ID];
    uint16_t flags;   /* HELLO's flags: 0 */
    uint16_t ciphers; /* offered in HELLO */
    uint8_t pk[W_KEY];
    uint8_t sk[32];
    uint8_t nonce[W_KEY];
    /* from WELCOME */
    uint16_t server_flags;
    uint16_t cipher;
    uint8_t server_pk[W_KEY];
    uint8_t server_nonce[W_KEY];
    struct w_keys keys;
    /* record layer */
    int tx_sealed;
    int rx_sealed; /* after the receiver's AUTH: anything clear from it is a failure */
    uint64_t tx_counter;
    uint64_t rx_counter;
};

/* Every frame the receiver sends is a control frame, so its payload fits W_MAX_CONTROL. */
struct w_frame {
    uint8_t type;
    uint32_t len;
    int sealed;                         /* it came in a record */
    uint8_t record_hdr[W_HDR];          /* that record's header */
    uint8_t raw[W_HDR + W_MAX_CONTROL]; /* the frame, opened */
    const uint8_t *payload;
};

/* Sets up c for a connection to 127.0.0.1:port: a fresh X25519 key pair and nonce, the psk of
 * secret, ciphers to offer (both when 0), and connects. log names the receiver's stderr. */
void w_connect(struct w_conn *c, int port, const char *secret, uint16_t ciphers, const char *log);

/* The same over an already connected socket. */
void w_attach(struct w_conn *c, int fd, const char *secret, uint16_t ciphers, const char *log);

void w_close(struct w_conn *c);

/* The ciphers this machine can run (AES-256-GCM only with hardware support). */
uint16_t w_local_ciphers(void);

/* Writes len bytes as they are: no sealing. */
void w_send_raw(struct w_conn *c, const void *data, size_t len);

/* Seals frame (len bytes) into a new record with the next tx counter and returns it (malloc'ed)
 * with its length in *rec_len. */
uint8_t *w_seal(struct w_conn *c, const uint8_t *frame, size_t len, size_t *rec_len);

/* Sends one frame: sealed once AUTH is sent, else as it is. */
void w_send(struct w_conn *c, const uint8_t *frame, size_t len);

/* HELLO for c with this magic and version. Returns the frame length (W_HDR + W_HELLO_LEN). */
size_t w_enc_hello(uint8_t *out, const struct w_conn *c, uint32_t magic, uint16_t version);

/* Sends HELLO, expects WELCOME (version 3, flags 0, one offered cipher) and derives c->keys. */
void w_hello(struct w_conn *c);

/* Sends AUTH with this tag, as it is. */
void w_send_auth(struct w_conn *c, const uint8_t tag[W_KEY]);

/* Expects the receiver's AUTH, in the clear, with the server tag of c's keys; from then on
 * both directions are sealed. */
void w_expect_receiver_auth(struct w_conn *c);

/* w_hello(), w_send_auth() with the client tag, w_expect_receiver_auth(). */
void w_handshake(struct w_conn *c);

/* Reads one frame (opening a record). Returns 1 for a frame, 0 for EOF at a frame boundary,
 * -ETIMEDOUT if nothing complete came within timeout_ms, -EBADMSG if a record did not open. */
int w_recv(struct w_conn *c, struct w_frame *f, int timeout_ms);

/* Checks the payload length of a frame a receiver sends. */
void w_check_length(const struct w_frame *f);

/* "ACK(epoch 1, offset 5)" and the like, for messages. */
char *w_describe(const struct w_frame *f);

/* The next frame that is not a PING; fails on EOF or timeout. what: what we wait for. */
void w_next(struct w_conn *c, struct w_frame *f, const char *what);

void w_expect_type(struct w_conn *c, struct w_frame *f, uint8_t type);

/* Expects EOF (after any PINGs) within timeout_ms. */
void w_expect_eof(struct w_conn *c, int timeout_ms, const char *after);

/* ERROR with this code, then the connection closed. sealed: whether the ERROR must come in a
 * record (1) or in the clear (0). Returns the ERROR's text (owned by the harness). */
char *w_expect_error_and_close(struct w_conn *c, uint16_t code, int sealed, const char *after);

/* A whole session for a small file (1..W_CHUNK bytes) on c, handshake done: OFFER, ACCEPT(1,
 * 0), DATA, END, ACKs, COMMITTED, BYE, close. */
void w_deliver_small(struct w_conn *c, const char *name, const uint8_t *bytes, uint32_t n);

/* Reads exactly len bytes before deadline_ms (w_now_ms() clock). Returns the number of bytes
 * read (less than len only at EOF), -ETIMEDOUT, or -errno; ECONNRESET counts as EOF. */
ssize_t w_read_exact(int fd, uint8_t *p, size_t len, long long deadline_ms);

#endif
