#include "wire.h"

#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const char *const w_type_names[W_TYPE_MAX + 1] = {
    "?",      "HELLO",     "WELCOME",   "OFFER", "ACCEPT", "COMPLETE",
    "REFUSE", "NEED_HASH", "FILE_HASH", "DATA",  "ACK",    "REWIND",
    "END",    "COMMITTED", "PING",      "ERROR", "BYE",    "AUTH"};

long long w_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fields ------------------------------------------------------------ */

uint8_t *w_put_u8(uint8_t *p, uint8_t v)
{
    p[0] = v;
    return p + 1;
}

uint8_t *w_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

uint8_t *w_put_u32(uint8_t *p, uint32_t v)
{
    p = w_put_u16(p, (uint16_t)(v >> 16));
    return w_put_u16(p, (uint16_t)v);
}

uint8_t *w_put_u64(uint8_t *p, uint64_t v)
{
    p = w_put_u32(p, (uint32_t)(v >> 32));
    return w_put_u32(p, (uint32_t)v);
}

uint8_t *w_put_bytes(uint8_t *p, const void *b, size_t n)
{
    memcpy(p, b, n);
    return p + n;
}

uint16_t w_get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t w_get_u32(const uint8_t *p)
{
    return ((uint32_t)w_get_u16(p) << 16) | w_get_u16(p + 2);
}

uint64_t w_get_u64(const uint8_t *p)
{
    return ((uint64_t)w_get_u32(p) << 32) | w_get_u32(p + 4);
}

uint8_t *w_put_header(uint8_t *p, uint32_t len, uint8_t type)
{
    p = w_put_u32(p, len);
    p = w_put_u8(p, type);
    p = w_put_u8(p, 0);
    return w_put_u16(p, 0);
}

/* ---- frames a sender sends --------------------------------------------- */

size_t w_enc_offer(uint8_t *out, const struct w_offer *o)
{
    uint8_t *p = w_put_header(out, (uint32_t)(26 + o->name_len), W_OFFER);

    p = w_put_u64(p, o->size);
    p = w_put_u64(p, (uint64_t)o->mtime_sec);
    p = w_put_u32(p, o->mtime_nsec);
    p = w_put_u32(p, o->mode);
    p = w_put_u16(p, (uint16_t)o->name_len);
    p = w_put_bytes(p, o->name, o->name_len);
    return (size_t)(p - out);
}

size_t w_enc_data_prefix(uint8_t *out, uint32_t epoch, uint64_t offset, uint64_t hash, uint32_t n)
{
    uint8_t *p = w_put_header(out, W_DATA_FIXED + n, W_DATA);

    p = w_put_u32(p, epoch);
    p = w_put_u64(p, offset);
    p = w_put_u64(p, hash);
    return (size_t)(p - out);
}

size_t w_enc_end(uint8_t *out, uint32_t epoch, XXH128_hash_t h)
{
    uint8_t *p = w_put_header(out, 20, W_END);

    p = w_put_u32(p, epoch);
    p = w_put_u64(p, h.high64);
    p = w_put_u64(p, h.low64);
    return (size_t)(p - out);
}

size_t w_enc_file_hash(uint8_t *out, XXH128_hash_t h)
{
    uint8_t *p = w_put_header(out, 16, W_FILE_HASH);

    p = w_put_u64(p, h.high64);
    p = w_put_u64(p, h.low64);
    return (size_t)(p - out);
}

size_t w_enc_error(uint8_t *out, uint16_t code, const char *text)
{
    size_t n = strlen(text);
    uint8_t *p = w_put_header(out, (uint32_t)(4 + n), W_ERROR);

    p = w_put_u16(p, code);
    p = w_put_u16(p, (uint16_t)n);
    p = w_put_bytes(p, text, n);
    return (size_t)(p - out);
}

size_t w_enc_bye(uint8_t *out, uint16_t status)
{
    uint8_t *p = w_put_header(out, 2, W_BYE);

    p = w_put_u16(p, status);
    return (size_t)(p - out);
}

/* ---- key schedule ------------------------------------------------------ */

static void must_init_sodium(void)
{
    cr_assert_geq(sodium_init(), 0, "libsodium cannot be initialised");
}

void w_psk(uint8_t psk[32], const char *secret)
{
    /* A test process uses one or two secrets; a hostile test may connect hundreds of times. */
    static struct {
        char secret[1025];
        uint8_t psk[32];
    } kept[4];
    static size_t next;
    static const char salt[] = "xfer/3 stretched"; /* its 16 bytes, without the NUL */

    must_init_sodium();
    cr_assert_lt(strlen(secret), sizeof(kept[0].secret));
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        if (kept[i].secret[0] != '\0' && strcmp(kept[i].secret, secret) == 0) {
            memcpy(psk, kept[i].psk, 32);
            return;
        }
    }
    cr_assert_eq(sizeof(salt) - 1, crypto_pwhash_SALTBYTES);
    cr_assert_eq(crypto_pwhash(psk, 32, secret, strlen(secret), (const uint8_t *)salt, 2,
                               64u * 1024 * 1024, crypto_pwhash_ALG_ARGON2ID13),
                 0, "Argon2id of the secret failed (out of memory?)");
    strcpy(kept[next].secret, secret);
    memcpy(kept[next].psk, psk, 32);
    next = (next + 1) % (sizeof(kept) / sizeof(kept[0]));
}

/* TH = BLAKE2b-256, unkeyed, of T (152 bytes): client flags (u16), client pk, client nonce,
 * session id, client ciphers (u16), server flags (u16), server pk, server nonce, chosen cipher
 * (u16), as they travelled. */
void w_transcript_hash(uint8_t th[32], const struct w_transcript *t)
{
    uint8_t raw[152];
    uint8_t *p = raw;

    p = w_put_u16(p, t->client_flags);
    p = w_put_bytes(p, t->client_pk, W_KEY);
    p = w_put_bytes(p, t->client_nonce, W_KEY);
    p = w_put_bytes(p, t->session_id, W_SESSION_ID);
    p = w_put_u16(p, t->client_ciphers);
    p = w_put_u16(p, t->server_flags);
    p = w_put_bytes(p, t->server_pk, W_KEY);
    p = w_put_bytes(p, t->server_nonce, W_KEY);
    p = w_put_u16(p, t->cipher);
    cr_assert_eq(p - raw, 152);
    crypto_generichash(th, 32, raw, sizeof(raw), NULL, 0);
}

/* c2s_kx, s2c_kx: the two crypto_kx session keys, named by the direction they serve. */
static void derive(struct w_keys *k, const uint8_t psk[32], const uint8_t c2s_kx[32],
                   const uint8_t s2c_kx[32], const struct w_transcript *t)
{
    static const char ctx[crypto_kdf_CONTEXTBYTES] = {'x', 'f', 'e', 'r', '2', 'k', 'e', 'y'};
    uint8_t th[32];
    uint8_t both[32 * 3];
    uint8_t master[crypto_kdf_KEYBYTES];
    uint8_t tag_key[32];

    w_transcript_hash(th, t);
    /* master = BLAKE2b-256 keyed with the psk over th || c2s_kx || s2c_kx. */
    memcpy(both, th, 32);
    memcpy(both + 32, c2s_kx, 32);
    memcpy(both + 64, s2c_kx, 32);
    crypto_generichash(master, sizeof(master), both, sizeof(both), psk, 32);
    crypto_kdf_derive_from_key(k->c2s, 32, 1, ctx, master);
    crypto_kdf_derive_from_key(k->s2c, 32, 2, ctx, master);
    /* Each proof is BLAKE2b-256 of th under its own subkey. */
    crypto_kdf_derive_from_key(tag_key, 32, 3, ctx, master);
    crypto_generichash(k->client_tag, W_KEY, th, sizeof(th), tag_key, sizeof(tag_key));
    crypto_kdf_derive_from_key(tag_key, 32, 4, ctx, master);
    crypto_generichash(k->server_tag, W_KEY, th, sizeof(th), tag_key, sizeof(tag_key));
}

int w_client_keys(struct w_keys *k, const uint8_t psk[32], const uint8_t sk[32],
                  const struct w_transcript *t)
{
    uint8_t rx[crypto_kx_SESSIONKEYBYTES];
    uint8_t tx[crypto_kx_SESSIONKEYBYTES];

    must_init_sodium();
    if (crypto_kx_client_session_keys(rx, tx, t->client_pk, sk, t->server_pk) != 0)
        return -1;
    derive(k, psk, tx, rx, t);
    return 0;
}

int w_server_keys(struct w_keys *k, const uint8_t psk[32], const uint8_t sk[32],
                  const struct w_transcript *t)
{
    uint8_t rx[crypto_kx_SESSIONKEYBYTES];
    uint8_t tx[crypto_kx_SESSIONKEYBYTES];

    must_init_sodium();
    if (crypto_kx_server_session_keys(rx, tx, t->server_pk, sk, t->client_pk) != 0)
        return -1;
    derive(k, psk, rx, tx, t);
    return 0;
}

uint16_t w_local_ciphers(void)
{
    must_init_sodium();
    return (uint16_t)(W_CIPHER_XCHACHA20 |
                      (crypto_aead_aes256gcm_is_available() ? W_CIPHER_AES256GCM : 0));
}

/* ---- records ----------------------------------------------------------- */

static void make_nonce(uint8_t *nonce, size_t len, uint64_t counter)
{
    memset(nonce, 0, len);
    for (int i = 0; i < 8; i++)
        nonce[len - 1 - i] = (uint8_t)(counter >> (8 * i));
}

/* Seals len bytes at frame into rec (room for W_HDR + len + W_AEAD_TAG). */
static size_t seal_into(uint16_t cipher, const uint8_t key[32], uint64_t counter, uint8_t *rec,
                        const uint8_t *frame, size_t len)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    unsigned long long clen = 0;
    int rc;

    w_put_u32(rec, (uint32_t)(len + W_AEAD_TAG));
    rec[4] = W_REC_TYPE;
    rec[5] = 0;
    rec[6] = 0;
    rec[7] = 0;
    if (cipher == W_CIPHER_AES256GCM) {
        make_nonce(nonce, crypto_aead_aes256gcm_NPUBBYTES, counter);
        rc = crypto_aead_aes256gcm_encrypt(rec + W_HDR, &clen, frame, len, rec, W_HDR, NULL, nonce,
                                           key);
    } else {
        make_nonce(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, counter);
        rc = crypto_aead_xchacha20poly1305_ietf_encrypt(rec + W_HDR, &clen, frame, len, rec, W_HDR,
                                                        NULL, nonce, key);
    }
    cr_assert_eq(rc, 0, "sealing a record failed");
    cr_assert_eq(clen, len + W_AEAD_TAG);
    return W_HDR + (size_t)clen;
}

/* Opens body (len bytes) in place; returns the frame length or -1. */
static ssize_t open_in_place(uint16_t cipher, const uint8_t key[32], uint64_t counter,
                             const uint8_t hdr[W_HDR], uint8_t *body, size_t len)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    unsigned long long mlen = 0;
    int rc;

    if (len < W_AEAD_TAG)
        return -1;
    if (cipher == W_CIPHER_AES256GCM) {
        make_nonce(nonce, crypto_aead_aes256gcm_NPUBBYTES, counter);
        rc = crypto_aead_aes256gcm_decrypt(body, &mlen, NULL, body, len, hdr, W_HDR, nonce, key);
    } else {
        make_nonce(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, counter);
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt(body, &mlen, NULL, body, len, hdr, W_HDR,
                                                        nonce, key);
    }
    return rc == 0 ? (ssize_t)mlen : -1;
}

uint8_t *w_seal(struct w_conn *c, const uint8_t *frame, size_t len, size_t *rec_len)
{
    uint8_t *rec = malloc(W_HDR + len + W_AEAD_TAG);

    cr_assert_not_null(rec);
    *rec_len = seal_into(c->cipher, c->keys.c2s, c->tx_counter, rec, frame, len);
    c->tx_counter++;
    return rec;
}

/* ---- socket ------------------------------------------------------------ */

void w_attach(struct w_conn *c, int fd, const char *secret, uint16_t ciphers, const char *log)
{
    int one = 1;

    memset(c, 0, sizeof(*c));
    must_init_sodium();
    c->fd = fd;
    c->log = log;
    w_psk(c->psk, secret);
    randombytes_buf(c->session_id, sizeof(c->session_id));
    c->ciphers = ciphers != 0 ? ciphers : w_local_ciphers();
    cr_assert_eq(crypto_kx_keypair(c->pk, c->sk), 0);
    randombytes_buf(c->nonce, sizeof(c->nonce));
    /* Keeps our small frames from waiting; only a latency hint. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void w_connect(struct w_conn *c, int port, const char *secret, uint16_t ciphers, const char *log)
{
    struct sockaddr_in sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
                 "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
    w_attach(c, fd, secret, ciphers, log);
}

void w_close(struct w_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    sodium_memzero(&c->keys, sizeof(c->keys));
}

void w_send_raw(struct w_conn *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0, "send to the peer failed: %s; %s stderr:\n%s",
                     n < 0 ? strerror(errno) : "nothing written", c->log, harness_log(c->log));
        p += n;
        len -= (size_t)n;
    }
}

void w_send(struct w_conn *c, const uint8_t *frame, size_t len)
{
    uint8_t *rec;
    size_t n;

    if (!c->tx_sealed) {
        w_send_raw(c, frame, len);
        return;
    }
    rec = w_seal(c, frame, len, &n);
    w_send_raw(c, rec, n);
    free(rec);
}

ssize_t w_read_exact(int fd, uint8_t *p, size_t len, long long deadline_ms)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = {fd, POLLIN, 0};
        long long left = deadline_ms - w_now_ms();
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

/* ---- frames ------------------------------------------------------------ */

size_t w_enc_hello(uint8_t *out, const struct w_conn *c, uint32_t magic, uint16_t version)
{
    uint8_t *p = w_put_header(out, W_HELLO_LEN, W_HELLO);

    p = w_put_u32(p, magic);
    p = w_put_u16(p, version);
    p = w_put_u16(p, c->flags);
    p = w_put_bytes(p, c->session_id, W_SESSION_ID);
    p = w_put_u16(p, c->ciphers);
    p = w_put_bytes(p, c->pk, W_KEY);
    p = w_put_bytes(p, c->nonce, W_KEY);
    return (size_t)(p - out);
}

/* Checks the 8 header bytes of a frame and fills type and len. */
static void take_frame_header(struct w_frame *f, const char *where)
{
    f->len = w_get_u32(f->raw);
    f->type = f->raw[4];
    cr_assert(f->type >= 1 && f->type <= W_TYPE_MAX, "the peer sent a frame of type %u%s", f->type,
              where);
    cr_assert(f->raw[5] == 0 && w_get_u16(f->raw + 6) == 0,
              "the peer sent %s with flags %u and reserved %u (both must be 0)%s",
              w_type_names[f->type], f->raw[5], w_get_u16(f->raw + 6), where);
    cr_assert_leq(f->len, W_MAX_CONTROL, "the peer sent %s with payload length %u%s",
                  w_type_names[f->type], f->len, where);
    f->payload = f->raw + W_HDR;
}

static int recv_record(struct w_conn *c, struct w_frame *f, long long deadline)
{
    uint8_t body[W_HDR + W_MAX_CONTROL + W_AEAD_TAG];
    uint32_t blen = w_get_u32(f->record_hdr);
    ssize_t n;

    f->sealed = 1;
    cr_assert(f->record_hdr[5] == 0 && f->record_hdr[6] == 0 && f->record_hdr[7] == 0,
              "record header with non-zero bytes 5..7");
    cr_assert(blen >= W_HDR + W_AEAD_TAG && blen <= sizeof(body),
              "a record of %u body bytes from a peer that sends only control frames", blen);
    cr_assert(c->cipher != 0, "a sealed record before any key was agreed");
    n = w_read_exact(c->fd, body, blen, deadline);
    if (n == -ETIMEDOUT)
        return -ETIMEDOUT;
    cr_assert_eq(n, (ssize_t)blen, "the connection ended inside a record (%zd of %u bytes)", n,
                 blen);
    n = open_in_place(c->cipher, c->keys.s2c, c->rx_counter, f->record_hdr, body, blen);
    if (n < 0)
        return -EBADMSG;
    c->rx_counter++;
    cr_assert_geq(n, W_HDR, "a record holding %zd bytes, less than a frame header", n);
    memcpy(f->raw, body, (size_t)n);
    take_frame_header(f, " inside a record");
    cr_assert_eq((ssize_t)f->len, n - W_HDR,
                 "a record of %zd frame bytes holds a %s frame of payload length %u", n,
                 w_type_names[f->type], f->len);
    return 1;
}

int w_recv(struct w_conn *c, struct w_frame *f, int timeout_ms)
{
    long long deadline = w_now_ms() + timeout_ms;
    uint8_t hdr[W_HDR];
    ssize_t n;

    memset(f, 0, sizeof(*f));
    n = w_read_exact(c->fd, hdr, W_HDR, deadline);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return 0;
    cr_assert_eq(n, W_HDR, "the connection ended inside a header (%zd of 8 bytes)", n);
    if (hdr[4] == W_REC_TYPE) {
        memcpy(f->record_hdr, hdr, W_HDR);
        return recv_record(c, f, deadline);
    }
    memcpy(f->raw, hdr, W_HDR);
    take_frame_header(f, "");
    n = w_read_exact(c->fd, f->raw + W_HDR, f->len, deadline);
    if (n == -ETIMEDOUT)
        return -ETIMEDOUT;
    cr_assert_eq(n, (ssize_t)f->len, "the connection ended inside a %s frame (%zd of %u bytes)",
                 w_type_names[f->type], n, f->len);
    return 1;
}

void w_check_length(const struct w_frame *f)
{
    uint32_t want = 0;

    switch (f->type) {
    case W_WELCOME:
        want = W_WELCOME_LEN;
        break;
    case W_AUTH:
        want = W_KEY;
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
        cr_assert_geq(f->len, 4, "%s with payload length %u", w_type_names[f->type], f->len);
        cr_assert_leq(w_get_u16(f->payload + 2), W_MAX_TEXT, "%s text_len %u above 1024",
                      w_type_names[f->type], w_get_u16(f->payload + 2));
        want = 4 + (uint32_t)w_get_u16(f->payload + 2);
        break;
    case W_COMPLETE:
    case W_NEED_HASH:
    case W_COMMITTED:
    case W_PING:
        want = 0;
        break;
    default:
        cr_assert_fail("the receiver sent %s, a frame only a sender may send",
                       w_type_names[f->type]);
    }
    cr_assert_eq(f->len, want, "%s has payload length %u, want %u", w_type_names[f->type], f->len,
                 want);
}

char *w_describe(const struct w_frame *f)
{
    const char *how = f->sealed ? "" : " (clear)";

    switch (f->type) {
    case W_ACCEPT:
    case W_ACK:
        return harness_strf("%s(epoch %u, offset %llu)%s", w_type_names[f->type],
                            w_get_u32(f->payload), (unsigned long long)w_get_u64(f->payload + 4),
                            how);
    case W_REWIND:
        return harness_strf("REWIND(epoch %u, offset %llu, reason %u)%s", w_get_u32(f->payload),
                            (unsigned long long)w_get_u64(f->payload + 4),
                            w_get_u16(f->payload + 12), how);
    case W_REFUSE:
    case W_ERROR:
        return harness_strf("%s(code %u, \"%.*s\")%s", w_type_names[f->type], w_get_u16(f->payload),
                            (int)w_get_u16(f->payload + 2), (const char *)f->payload + 4, how);
    default:
        return harness_strf("%s%s", w_type_names[f->type], how);
    }
}

void w_next(struct w_conn *c, struct w_frame *f, const char *what)
{
    for (;;) {
        int r = w_recv(c, f, REPLY_MS);

        cr_assert_neq(r, -ETIMEDOUT, "no frame within %d ms while waiting for %s; %s stderr:\n%s",
                      REPLY_MS, what, c->log, harness_log(c->log));
        cr_assert_neq(r, -EBADMSG, "a record that does not open while waiting for %s", what);
        cr_assert_neq(r, 0, "the peer closed the connection while we waited for %s; %s stderr:\n%s",
                      what, c->log, harness_log(c->log));
        cr_assert_eq(r, 1, "reading from the peer failed (%s) while waiting for %s", strerror(-r),
                     what);
        w_check_length(f);
        cr_assert(f->sealed || !c->rx_sealed,
                  "the receiver sent %s in the clear after the "
                  "handshake; %s stderr:\n%s",
                  w_describe(f), c->log, harness_log(c->log));
        if (f->type != W_PING)
            return;
    }
}

void w_expect_type(struct w_conn *c, struct w_frame *f, uint8_t type)
{
    w_next(c, f, w_type_names[type]);
    cr_assert_eq(f->type, type, "the receiver sent %s, want %s; %s stderr:\n%s", w_describe(f),
                 w_type_names[type], c->log, harness_log(c->log));
}

void w_expect_eof(struct w_conn *c, int timeout_ms, const char *after)
{
    struct w_frame f;

    for (;;) {
        int r = w_recv(c, &f, timeout_ms);

        cr_assert_neq(r, -ETIMEDOUT, "the receiver did not close the connection within %d ms %s",
                      timeout_ms, after);
        cr_assert_neq(r, -EBADMSG, "a record that does not open %s", after);
        cr_assert_geq(r, 0, "reading from the receiver failed: %s", strerror(-r));
        if (r == 0)
            return;
        w_check_length(&f);
        cr_assert_eq(f.type, W_PING, "the receiver sent %s %s, want the connection closed",
                     w_describe(&f), after);
    }
}

char *w_expect_error_and_close(struct w_conn *c, uint16_t code, int sealed, const char *after)
{
    struct w_frame f;
    char *text;

    w_next(c, &f, "ERROR");
    cr_assert_eq(f.type, W_ERROR, "the receiver sent %s %s, want ERROR code %u", w_describe(&f),
                 after, code);
    cr_assert_eq(w_get_u16(f.payload), code, "the receiver sent %s %s, want code %u",
                 w_describe(&f), after, code);
    cr_assert_eq(f.sealed, sealed, "the receiver sent %s %s, want it %s", w_describe(&f), after,
                 sealed ? "sealed" : "in the clear");
    text = harness_strf("%.*s", (int)w_get_u16(f.payload + 2), (const char *)f.payload + 4);
    w_expect_eof(c, CLOSE_AFTER_ERROR_MS, harness_strf("after its ERROR (%s)", after));
    return text;
}

/* ---- handshake --------------------------------------------------------- */

void w_hello(struct w_conn *c)
{
    uint8_t buf[W_HDR + W_HELLO_LEN];
    struct w_transcript t;
    struct w_frame f;
    const uint8_t *p;

    w_send_raw(c, buf, w_enc_hello(buf, c, W_MAGIC, W_VERSION));
    w_expect_type(c, &f, W_WELCOME);
    cr_assert(!f.sealed, "WELCOME came sealed");
    p = f.payload;
    cr_assert_eq(w_get_u32(p), W_MAGIC, "WELCOME magic is %#x", w_get_u32(p));
    cr_assert_eq(w_get_u16(p + 4), W_VERSION, "WELCOME version is %u", w_get_u16(p + 4));
    c->server_flags = w_get_u16(p + 6);
    cr_assert_eq(c->server_flags, 0, "WELCOME flags are %u", c->server_flags);
    c->cipher = w_get_u16(p + 8);
    cr_assert((c->cipher & c->ciphers) != 0 && (c->cipher & (c->cipher - 1)) == 0,
              "WELCOME chose cipher %#x, not one of the offered %#x", c->cipher, c->ciphers);
    memcpy(c->server_pk, p + 10, W_KEY);
    memcpy(c->server_nonce, p + 10 + W_KEY, W_KEY);

    memset(&t, 0, sizeof(t));
    t.client_flags = c->flags;
    memcpy(t.client_pk, c->pk, W_KEY);
    memcpy(t.client_nonce, c->nonce, W_KEY);
    memcpy(t.session_id, c->session_id, W_SESSION_ID);
    t.client_ciphers = c->ciphers;
    t.server_flags = c->server_flags;
    memcpy(t.server_pk, c->server_pk, W_KEY);
    memcpy(t.server_nonce, c->server_nonce, W_KEY);
    t.cipher = c->cipher;
    cr_assert_eq(w_client_keys(&c->keys, c->psk, c->sk, &t), 0,
                 "the receiver's public key is unusable");
}

void w_send_auth(struct w_conn *c, const uint8_t tag[W_KEY])
{
    uint8_t buf[W_HDR + W_KEY];
    uint8_t *p = w_put_header(buf, W_KEY, W_AUTH);

    p = w_put_bytes(p, tag, W_KEY);
    w_send_raw(c, buf, (size_t)(p - buf));
}

void w_expect_receiver_auth(struct w_conn *c)
{
    struct w_frame f;

    w_expect_type(c, &f, W_AUTH);
    cr_assert(!f.sealed, "the receiver's AUTH came sealed");
    cr_assert_eq(f.len, W_KEY, "the receiver's AUTH has payload length %u", f.len);
    cr_assert(sodium_memcmp(f.payload, c->keys.server_tag, W_KEY) == 0,
              "the receiver's AUTH is not the server tag our key schedule computes from the "
              "shared secret");
    c->tx_sealed = 1;
    c->rx_sealed = 1;
}

void w_handshake(struct w_conn *c)
{
    w_hello(c);
    w_send_auth(c, c->keys.client_tag);
    w_expect_receiver_auth(c);
}

void w_deliver_small(struct w_conn *c, const char *name, const uint8_t *bytes, uint32_t n)
{
    struct w_offer o = {n, 1700002000, 0, 0644, name, strlen(name)};
    uint8_t *frame = malloc(W_HDR + 26 + o.name_len + W_HDR + W_DATA_FIXED + (size_t)n);
    size_t len;
    struct w_frame f;

    cr_assert(n > 0 && n <= W_CHUNK && o.name_len <= 255);
    cr_assert_not_null(frame);
    w_send(c, frame, w_enc_offer(frame, &o));
    w_expect_type(c, &f, W_ACCEPT);
    cr_assert(w_get_u32(f.payload) == 1 && w_get_u64(f.payload + 4) == 0,
              "the receiver sent %s, want ACCEPT(epoch 1, offset 0)", w_describe(&f));
    len = w_enc_data_prefix(frame, 1, 0, XXH3_64bits_withSeed(bytes, n, 0), n);
    memcpy(frame + len, bytes, n);
    w_send(c, frame, len + n);
    w_send(c, frame, w_enc_end(frame, 1, XXH3_128bits(bytes, n)));
    do {
        w_next(c, &f, "ACK or COMMITTED");
        cr_assert(f.type == W_ACK || f.type == W_COMMITTED,
                  "the receiver sent %s, want ACK or COMMITTED", w_describe(&f));
    } while (f.type != W_COMMITTED);
    w_send(c, frame, w_enc_bye(frame, CODE_OK));
    w_expect_eof(c, REPLY_MS, "after BYE");
    free(frame);
}
