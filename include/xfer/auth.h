/* auth: the handshake's cryptography (xfer-protocol(7), HANDSHAKE). No I/O.
 * Both sides hold a pre-shared secret, stretched once per process with
 * Argon2id into the pre-shared key. Each connection makes a fresh
 * X25519 exchange (libsodium crypto_kx); the session keys are derived from
 * it, from the secret, and from a hash of everything HELLO and WELCOME said,
 * so a key or tag from one connection, one direction or one cipher choice is
 * worthless in any other. Each side proves it knows the secret with a tag
 * that only the holder of the secret can compute; the sender proves first,
 * so merely connecting to a receiver yields nothing to guess against.
 * Tags are compared in constant time. Returns 0 or a negative code. */
#ifndef XFER_AUTH_H
#define XFER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_KEY_LEN 32
#define AUTH_PK_LEN 32
#define AUTH_NONCE_LEN 32
#define AUTH_TAG_LEN 32

/* Cipher choices, as a bitmask in HELLO and one value in WELCOME. */
#define AUTH_CIPHER_AES256GCM 1u
#define AUTH_CIPHER_XCHACHA20 2u

/* Generated secrets: 28 base32 characters (140 bits) in groups of four. */
#define AUTH_SECRET_CHARS 28
#define AUTH_SECRET_TEXT_LEN (AUTH_SECRET_CHARS + AUTH_SECRET_CHARS / 4 - 1)
/* A chosen secret shorter than this draws a warning. */
#define AUTH_WEAK_SECRET_LEN 16

struct auth_psk {
    uint8_t key[AUTH_KEY_LEN];
};

/* One side's contribution to a handshake. */
struct auth_ephemeral {
    uint8_t pk[AUTH_PK_LEN];
    uint8_t sk[AUTH_KEY_LEN];
    uint8_t nonce[AUTH_NONCE_LEN];
};

/* What HELLO and WELCOME said: the transcript the keys are bound to. */
struct auth_transcript {
    uint16_t client_flags;
    uint8_t client_pk[AUTH_PK_LEN];
    uint8_t client_nonce[AUTH_NONCE_LEN];
    uint8_t session_id[16];
    uint16_t client_ciphers;
    uint16_t server_flags;
    uint8_t server_pk[AUTH_PK_LEN];
    uint8_t server_nonce[AUTH_NONCE_LEN];
    uint16_t cipher;
};

struct auth_keys {
    uint8_t c2s[AUTH_KEY_LEN]; /* sender -> receiver records */
    uint8_t s2c[AUTH_KEY_LEN]; /* receiver -> sender records */
    uint8_t client_tag[AUTH_TAG_LEN];
    uint8_t server_tag[AUTH_TAG_LEN];
};

/* Calls sodium_init(); 0, or -1 if libsodium cannot be used. */
int auth_init(void);

/* The secret's stretching (xfer-protocol(7), Key schedule): Argon2id version
 * 1.3 (libsodium crypto_pwhash, crypto_pwhash_ALG_ARGON2ID13, one lane) with
 * 2 passes over 64 MiB and this fixed 16-byte salt. Each guess of a secret,
 * even by whoever holds a transcript, then costs one such evaluation: 64 MiB
 * and 60 to 70 ms of one core on the 2-core x86-64 test machine, against
 * about a microsecond for the BLAKE2b it replaced. Changing any of them
 * changes every key, so it takes a new protocol version. */
#define AUTH_PWHASH_OPSLIMIT 2ull
#define AUTH_PWHASH_MEMLIMIT (64u * 1024u * 1024u)
#define AUTH_PWHASH_SALT "xfer/3 stretched"

/* The pre-shared key: Argon2id of the secret's len bytes, as above. It is
 * slow on purpose, so the process keeps the last result: a call with the
 * same secret as the one before returns it without another evaluation (the
 * receiver derives once at start-up, the sender once before connecting, and
 * neither again per connection). Not thread-safe. Returns 0, or -1 if
 * Argon2id cannot run (its 64 MiB cannot be allocated); psk is zeroed then. */
int auth_psk_from_secret(struct auth_psk *psk, const char *secret, size_t len);

/* How many times this process has run Argon2id for auth_psk_from_secret(). */
unsigned auth_psk_evaluations(void);

/* Wipes the kept pre-shared key; the next call evaluates again. */
void auth_psk_forget(void);

/* A fresh X25519 key pair and nonce. */
int auth_ephemeral_new(struct auth_ephemeral *e);

/* The ciphers this machine can run, fastest first in the bitmask's sense:
 * AES-256-GCM only where the CPU has AES-NI and carry-less multiply. */
uint16_t auth_local_ciphers(void);

/* The receiver's pick among the sender's offer: AES-256-GCM if both can,
 * else XChaCha20-Poly1305; 0 if nothing in common. */
uint16_t auth_choose_cipher(uint16_t offered);

/* Derives session keys and both tags. The client passes its own ephemeral
 * and the server's public key, the server the reverse. */
int auth_client_keys(struct auth_keys *k, const struct auth_psk *psk,
                     const struct auth_ephemeral *mine, const struct auth_transcript *t);
int auth_server_keys(struct auth_keys *k, const struct auth_psk *psk,
                     const struct auth_ephemeral *mine, const struct auth_transcript *t);

/* Constant-time comparison of two tags: 1 when equal. */
int auth_tag_equal(const uint8_t a[AUTH_TAG_LEN], const uint8_t b[AUTH_TAG_LEN]);

/* A new random secret as text, "abcd-efgh-..." (AUTH_SECRET_TEXT_LEN chars
 * and a NUL). */
int auth_secret_generate(char out[AUTH_SECRET_TEXT_LEN + 1]);

/* Wipes key material. */
void auth_wipe(void *p, size_t len);

#endif
