#include <string.h>

#include <sodium.h>

#include "xfer/auth.h"
#include "xfer/buf.h"

/* crypto_kdf's fixed context separates the subkeys' uses. */
static const char kdf_context[8] = {'x', 'f', 'e', 'r', '2', 'k', 'e', 'y'};

/* The last pre-shared key this process derived, and a mark of the secret it
 * came from: a BLAKE2b of that secret keyed with bytes drawn for this entry,
 * so no copy of the secret is kept (whoever can read this memory has the key
 * anyway). */
_Static_assert(sizeof(AUTH_PWHASH_SALT) - 1 == crypto_pwhash_SALTBYTES, "a salt of 16 bytes");

static struct {
    int valid;
    uint8_t mark_key[32];
    uint8_t mark[32];
    struct auth_psk psk;
} psk_cache;
static unsigned psk_evaluations;

enum subkey {
    SUBKEY_C2S = 1,
    SUBKEY_S2C = 2,
    SUBKEY_CLIENT_TAG = 3,
    SUBKEY_SERVER_TAG = 4
};

int auth_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void auth_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}

static void psk_mark(uint8_t out[32], const char *secret, size_t len)
{
    crypto_generichash(out, 32, (const uint8_t *)secret, len, psk_cache.mark_key,
                       sizeof(psk_cache.mark_key));
}

int auth_psk_from_secret(struct auth_psk *psk, const char *secret, size_t len)
{
    uint8_t mark[32];
    int r = 0;

    memset(mark, 0, sizeof(mark));
    if (psk_cache.valid) {
        psk_mark(mark, secret, len);
        if (sodium_memcmp(mark, psk_cache.mark, sizeof(mark)) == 0) {
            *psk = psk_cache.psk;
            goto done;
        }
    }
    auth_psk_forget();
    psk_evaluations++;
    if (crypto_pwhash(psk->key, sizeof(psk->key), secret, len, (const uint8_t *)AUTH_PWHASH_SALT,
                      AUTH_PWHASH_OPSLIMIT, AUTH_PWHASH_MEMLIMIT,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        /* Out of memory: the parameters are constants within libsodium's ranges. */
        sodium_memzero(psk, sizeof(*psk));
        r = -1;
        goto done;
    }
    randombytes_buf(psk_cache.mark_key, sizeof(psk_cache.mark_key));
    psk_mark(psk_cache.mark, secret, len);
    psk_cache.psk = *psk;
    psk_cache.valid = 1;
done:
    sodium_memzero(mark, sizeof(mark));
    return r;
}

unsigned auth_psk_evaluations(void)
{
    return psk_evaluations;
}

void auth_psk_forget(void)
{
    sodium_memzero(&psk_cache, sizeof(psk_cache));
}

int auth_ephemeral_new(struct auth_ephemeral *e)
{
    if (crypto_kx_keypair(e->pk, e->sk) != 0)
        return -1;
    randombytes_buf(e->nonce, sizeof(e->nonce));
    return 0;
}

uint16_t auth_local_ciphers(void)
{
    uint16_t c = AUTH_CIPHER_XCHACHA20;

    if (crypto_aead_aes256gcm_is_available())
        c |= AUTH_CIPHER_AES256GCM;
    return c;
}

uint16_t auth_choose_cipher(uint16_t offered)
{
    uint16_t common = offered & auth_local_ciphers();

    if (common & AUTH_CIPHER_AES256GCM)
        return AUTH_CIPHER_AES256GCM;
    if (common & AUTH_CIPHER_XCHACHA20)
        return AUTH_CIPHER_XCHACHA20;
    return 0;
}

/* BLAKE2b-256 of the transcript, in the order xfer-protocol(7) gives. */
static void transcript_hash(uint8_t out[32], const struct auth_transcript *t)
{
    uint8_t raw[AUTH_PK_LEN * 2 + AUTH_NONCE_LEN * 2 + 16 + 8];
    struct buf_writer w;

    buf_writer_init(&w, raw, sizeof(raw));
    (void)buf_put_u16(&w, t->client_flags); /* raw is sized for all */
    (void)buf_put_bytes(&w, t->client_pk, AUTH_PK_LEN);
    (void)buf_put_bytes(&w, t->client_nonce, AUTH_NONCE_LEN);
    (void)buf_put_bytes(&w, t->session_id, sizeof(t->session_id));
    (void)buf_put_u16(&w, t->client_ciphers);
    (void)buf_put_u16(&w, t->server_flags);
    (void)buf_put_bytes(&w, t->server_pk, AUTH_PK_LEN);
    (void)buf_put_bytes(&w, t->server_nonce, AUTH_NONCE_LEN);
    (void)buf_put_u16(&w, t->cipher);
    crypto_generichash(out, 32, raw, w.pos, NULL, 0);
}

/* c2s_kx/s2c_kx: crypto_kx's two shared keys, named by direction. */
static void derive(struct auth_keys *k, const struct auth_psk *psk, const uint8_t c2s_kx[32],
                   const uint8_t s2c_kx[32], const struct auth_transcript *t)
{
    uint8_t th[32];
    uint8_t master[crypto_kdf_KEYBYTES];
    crypto_generichash_state h;

    transcript_hash(th, t);
    /* The X25519 result alone would let anyone in the middle in; keyed with
     * the pre-shared key, only holders of the secret get these keys. */
    crypto_generichash_init(&h, psk->key, sizeof(psk->key), sizeof(master));
    crypto_generichash_update(&h, th, sizeof(th));
    crypto_generichash_update(&h, c2s_kx, 32);
    crypto_generichash_update(&h, s2c_kx, 32);
    crypto_generichash_final(&h, master, sizeof(master));
    crypto_kdf_derive_from_key(k->c2s, sizeof(k->c2s), SUBKEY_C2S, kdf_context, master);
    crypto_kdf_derive_from_key(k->s2c, sizeof(k->s2c), SUBKEY_S2C, kdf_context, master);
    {
        uint8_t ck[32], sk[32];

        crypto_kdf_derive_from_key(ck, sizeof(ck), SUBKEY_CLIENT_TAG, kdf_context, master);
        crypto_kdf_derive_from_key(sk, sizeof(sk), SUBKEY_SERVER_TAG, kdf_context, master);
        crypto_generichash(k->client_tag, AUTH_TAG_LEN, th, sizeof(th), ck, sizeof(ck));
        crypto_generichash(k->server_tag, AUTH_TAG_LEN, th, sizeof(th), sk, sizeof(sk));
        sodium_memzero(ck, sizeof(ck));
        sodium_memzero(sk, sizeof(sk));
    }
    sodium_memzero(master, sizeof(master));
    sodium_memzero(&h, sizeof(h));
}

int auth_client_keys(struct auth_keys *k, const struct auth_psk *psk,
                     const struct auth_ephemeral *mine, const struct auth_transcript *t)
{
    uint8_t rx[32], tx[32];

    if (crypto_kx_client_session_keys(rx, tx, mine->pk, mine->sk, t->server_pk) != 0)
        return -1; /* the server's public key is a low-order point */
    derive(k, psk, tx, rx, t);
    sodium_memzero(rx, sizeof(rx));
    sodium_memzero(tx, sizeof(tx));
    return 0;
}

int auth_server_keys(struct auth_keys *k, const struct auth_psk *psk,
                     const struct auth_ephemeral *mine, const struct auth_transcript *t)
{
    uint8_t rx[32], tx[32];

    if (crypto_kx_server_session_keys(rx, tx, mine->pk, mine->sk, t->client_pk) != 0)
        return -1;
    derive(k, psk, rx, tx, t);
    sodium_memzero(rx, sizeof(rx));
    sodium_memzero(tx, sizeof(tx));
    return 0;
}

int auth_tag_equal(const uint8_t a[AUTH_TAG_LEN], const uint8_t b[AUTH_TAG_LEN])
{
    return sodium_memcmp(a, b, AUTH_TAG_LEN) == 0;
}

int auth_secret_generate(char out[AUTH_SECRET_TEXT_LEN + 1])
{
    /* RFC 4648 base32 in lower case: no 0/1/8/9 to mistake for o/l/b/g. */
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    size_t o = 0;

    for (int i = 0; i < AUTH_SECRET_CHARS; i++) {
        if (i > 0 && i % 4 == 0)
            out[o++] = '-';
        out[o++] = alphabet[randombytes_uniform(32)];
    }
    out[o] = '\0';
    return 0;
}
