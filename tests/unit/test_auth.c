/* auth: the handshake's key schedule. Each test runs a whole handshake in
 * memory: both sides' ephemerals, one transcript as the two HELLOs carry it,
 * and the keys each side derives from its own view of that transcript. */
#include <ctype.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "xfer/auth.h"

static const char test_secret[] = "tulp-7kq2-mzv4-x3re-9bdn-hw5a-qcl6";

static void setup(void)
{
    cr_assert_eq(auth_init(), 0, "libsodium cannot be initialised");
}

TestSuite(auth, .init = setup);

/* One connection: both ephemerals, the transcript both sides agree on (what
 * HELLO and WELCOME said), and the pre-shared key both hold. */
struct handshake {
    struct auth_psk psk;
    struct auth_ephemeral client;
    struct auth_ephemeral server;
    struct auth_transcript t;
};

static void handshake_new(struct handshake *h, const char *secret)
{
    memset(h, 0, sizeof(*h));
    cr_assert_eq(auth_psk_from_secret(&h->psk, secret, strlen(secret)), 0);
    cr_assert_eq(auth_ephemeral_new(&h->client), 0);
    cr_assert_eq(auth_ephemeral_new(&h->server), 0);
    h->t.client_flags = 0;
    memcpy(h->t.client_pk, h->client.pk, AUTH_PK_LEN);
    memcpy(h->t.client_nonce, h->client.nonce, AUTH_NONCE_LEN);
    randombytes_buf(h->t.session_id, sizeof(h->t.session_id));
    h->t.client_ciphers = AUTH_CIPHER_AES256GCM | AUTH_CIPHER_XCHACHA20;
    h->t.server_flags = 0;
    memcpy(h->t.server_pk, h->server.pk, AUTH_PK_LEN);
    memcpy(h->t.server_nonce, h->server.nonce, AUTH_NONCE_LEN);
    h->t.cipher = AUTH_CIPHER_XCHACHA20;
}

static void client_keys(const struct handshake *h, const struct auth_transcript *t,
                        struct auth_keys *k)
{
    cr_assert_eq(auth_client_keys(k, &h->psk, &h->client, t), 0);
}

static void server_keys(const struct handshake *h, const struct auth_transcript *t,
                        struct auth_keys *k)
{
    cr_assert_eq(auth_server_keys(k, &h->psk, &h->server, t), 0);
}

/* Fails unless every key and both tags of a and b differ. */
static void assert_nothing_shared(const struct auth_keys *a, const struct auth_keys *b,
                                  const char *what)
{
    cr_assert_arr_neq(a->c2s, b->c2s, AUTH_KEY_LEN, "%s: same c2s key", what);
    cr_assert_arr_neq(a->s2c, b->s2c, AUTH_KEY_LEN, "%s: same s2c key", what);
    cr_assert_arr_neq(a->client_tag, b->client_tag, AUTH_TAG_LEN, "%s: same client tag", what);
    cr_assert_arr_neq(a->server_tag, b->server_tag, AUTH_TAG_LEN, "%s: same server tag", what);
    cr_assert_not(auth_tag_equal(a->client_tag, b->client_tag), "%s", what);
    cr_assert_not(auth_tag_equal(a->server_tag, b->server_tag), "%s", what);
}

/* One side sees the transcript with one field altered (as by someone in the
 * middle), the other the original: nothing they derive may match. Tried
 * both ways, since each side's key exchange reads only the peer's pk. */
static void check_field_is_bound(void (*alter)(struct auth_transcript *), const char *what)
{
    struct handshake h;
    struct auth_transcript seen;
    struct auth_keys c;
    struct auth_keys s;

    handshake_new(&h, test_secret);
    seen = h.t;
    alter(&seen);
    cr_assert_neq(memcmp(&seen, &h.t, sizeof(seen)), 0, "%s: alteration changed nothing", what);
    client_keys(&h, &seen, &c);
    server_keys(&h, &h.t, &s);
    assert_nothing_shared(&c, &s, what);
    client_keys(&h, &h.t, &c);
    server_keys(&h, &seen, &s);
    assert_nothing_shared(&c, &s, what);
}

/* ---- agreement ---- */

Test(auth, client_and_server_derive_the_same_keys_and_tags)
{
    /* Checks that both sides of one handshake derive identical c2s, s2c and both tags. */
    struct handshake h;
    struct auth_keys c;
    struct auth_keys s;

    handshake_new(&h, test_secret);
    client_keys(&h, &h.t, &c);
    server_keys(&h, &h.t, &s);
    cr_assert_arr_eq(c.c2s, s.c2s, AUTH_KEY_LEN);
    cr_assert_arr_eq(c.s2c, s.s2c, AUTH_KEY_LEN);
    cr_assert_arr_eq(c.client_tag, s.client_tag, AUTH_TAG_LEN);
    cr_assert_arr_eq(c.server_tag, s.server_tag, AUTH_TAG_LEN);
    cr_assert(auth_tag_equal(c.client_tag, s.client_tag));
    cr_assert(auth_tag_equal(c.server_tag, s.server_tag));
}

Test(auth, derivation_is_deterministic_for_one_transcript)
{
    /* Checks that deriving twice from the same inputs gives the same keys: nothing random. */
    struct handshake h;
    struct auth_keys a;
    struct auth_keys b;

    handshake_new(&h, test_secret);
    client_keys(&h, &h.t, &a);
    client_keys(&h, &h.t, &b);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
}

/* ---- the secret ---- */

Test(auth, a_different_secret_changes_every_key_and_tag)
{
    /* Checks that a client holding another secret shares no key or tag with the server. */
    struct handshake h;
    struct handshake wrong;
    struct auth_keys c;
    struct auth_keys s;

    handshake_new(&h, test_secret);
    wrong = h;
    cr_assert_eq(auth_psk_from_secret(&wrong.psk, "tulp-7kq2-mzv4-x3re-9bdn-hw5a-qcl7",
                                      strlen(test_secret)),
                 0);
    client_keys(&wrong, &h.t, &c);
    server_keys(&h, &h.t, &s);
    assert_nothing_shared(&c, &s, "other secret");
}

/* ---- every transcript field is bound ---- */

static void alter_client_flags(struct auth_transcript *t)
{
    t->client_flags ^= 0x8000;
}

static void alter_server_flags(struct auth_transcript *t)
{
    t->server_flags ^= 0x0001;
}

static void alter_client_pk(struct auth_transcript *t)
{
    struct auth_ephemeral other;

    cr_assert_eq(auth_ephemeral_new(&other), 0);
    memcpy(t->client_pk, other.pk, AUTH_PK_LEN);
}

static void alter_client_nonce(struct auth_transcript *t)
{
    t->client_nonce[0] ^= 0x80;
}

static void alter_session_id(struct auth_transcript *t)
{
    t->session_id[15] ^= 0x01;
}

/* A man in the middle strips AES-256-GCM from the sender's offer. */
static void alter_client_ciphers(struct auth_transcript *t)
{
    t->client_ciphers = AUTH_CIPHER_XCHACHA20;
}

static void alter_server_nonce(struct auth_transcript *t)
{
    t->server_nonce[31] ^= 0x01;
}

/* A man in the middle rewrites the receiver's choice in WELCOME. */
static void alter_cipher(struct auth_transcript *t)
{
    t->cipher = AUTH_CIPHER_AES256GCM;
}

Test(auth, different_hello_flags_change_the_tags)
{
    /* Checks that HELLO's flags are bound into keys and tags. */
    check_field_is_bound(alter_client_flags, "client flags");
}

Test(auth, different_welcome_flags_change_the_tags)
{
    /* Checks that WELCOME's flags are bound into keys and tags. */
    check_field_is_bound(alter_server_flags, "server flags");
}

Test(auth, a_different_client_pk_in_the_transcript_changes_the_tags)
{
    /* Checks that the client's public key as the server saw it is bound into keys and tags. */
    check_field_is_bound(alter_client_pk, "client pk");
}

Test(auth, a_different_client_nonce_changes_the_tags)
{
    /* Checks that the client's nonce is bound into keys and tags. */
    check_field_is_bound(alter_client_nonce, "client nonce");
}

Test(auth, a_different_session_id_changes_the_tags)
{
    /* Checks that the session id is bound into keys and tags. */
    check_field_is_bound(alter_session_id, "session id");
}

Test(auth, a_downgraded_cipher_offer_changes_the_tags)
{
    /* Checks that the offered ciphers are bound, so stripping AES from HELLO is caught. */
    check_field_is_bound(alter_client_ciphers, "client ciphers");
}

/* Another valid public key (a one-bit change could be an invalid point). */
static void alter_server_pk(struct auth_transcript *t)
{
    struct auth_ephemeral other;

    cr_assert_eq(auth_ephemeral_new(&other), 0);
    memcpy(t->server_pk, other.pk, AUTH_PK_LEN);
}

Test(auth, a_different_server_pk_changes_the_tags)
{
    /* Checks that the server's public key is bound into keys and tags. */
    check_field_is_bound(alter_server_pk, "server pk");
}

Test(auth, a_different_server_nonce_changes_the_tags)
{
    /* Checks that the server's nonce is bound into keys and tags. */
    check_field_is_bound(alter_server_nonce, "server nonce");
}

Test(auth, a_rewritten_cipher_choice_changes_the_tags)
{
    /* Checks that the chosen cipher is bound, so rewriting WELCOME's choice is caught. */
    check_field_is_bound(alter_cipher, "cipher");
}

/* ---- no reflection ---- */

Test(auth, client_and_server_tags_differ)
{
    /* Checks client_tag != server_tag, so the receiver's proof cannot be echoed back as AUTH. */
    struct handshake h;
    struct auth_keys k;

    handshake_new(&h, test_secret);
    client_keys(&h, &h.t, &k);
    cr_assert_arr_neq(k.client_tag, k.server_tag, AUTH_TAG_LEN);
    cr_assert_not(auth_tag_equal(k.client_tag, k.server_tag));
}

Test(auth, the_two_directions_have_different_keys)
{
    /* Checks c2s != s2c, so a record cannot be reflected back to the side that sealed it. */
    struct handshake h;
    struct auth_keys k;

    handshake_new(&h, test_secret);
    client_keys(&h, &h.t, &k);
    cr_assert_arr_neq(k.c2s, k.s2c, AUTH_KEY_LEN);
}

Test(auth, two_connections_with_one_secret_get_different_keys)
{
    /* Checks that fresh ephemerals make a second connection's keys and tags all new. */
    struct handshake one;
    struct handshake two;
    struct auth_keys a;
    struct auth_keys b;

    handshake_new(&one, test_secret);
    handshake_new(&two, test_secret);
    cr_assert_arr_eq(one.psk.key, two.psk.key, AUTH_KEY_LEN);
    client_keys(&one, &one.t, &a);
    client_keys(&two, &two.t, &b);
    assert_nothing_shared(&a, &b, "second connection");
}

/* ---- hostile public keys ---- */

/* X25519 points of small order (0, 1 and two of order 8): the shared secret
 * with any key is all zeros, known to everyone, so accepting one would leave
 * only the pre-shared key between an attacker and the session keys. */
static const uint8_t low_order[][AUTH_PK_LEN] = {
    {0}, /* the all-zero key */
    {1}, /* u = 1 */
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
};

Test(auth, a_low_order_server_public_key_makes_client_keys_fail)
{
    /* Checks auth_client_keys with an all-zero or other low-order server pk: -1. */
    for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
        struct handshake h;
        struct auth_keys k;

        handshake_new(&h, test_secret);
        memcpy(h.t.server_pk, low_order[i], AUTH_PK_LEN);
        cr_assert_lt(auth_client_keys(&k, &h.psk, &h.client, &h.t), 0, "point %zu", i);
    }
}

Test(auth, a_low_order_client_public_key_makes_server_keys_fail)
{
    /* Checks auth_server_keys with an all-zero or other low-order client pk: -1. */
    for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
        struct handshake h;
        struct auth_keys k;

        handshake_new(&h, test_secret);
        memcpy(h.t.client_pk, low_order[i], AUTH_PK_LEN);
        cr_assert_lt(auth_server_keys(&k, &h.psk, &h.server, &h.t), 0, "point %zu", i);
    }
}

/* ---- tags ---- */

Test(auth, tag_equal_is_1_only_for_identical_tags)
{
    /* Checks auth_tag_equal: 1 for equal tags, 0 if the first, a middle or the last byte differ. */
    uint8_t a[AUTH_TAG_LEN];
    uint8_t b[AUTH_TAG_LEN];
    static const size_t where[] = {0, AUTH_TAG_LEN / 2, AUTH_TAG_LEN - 1};

    randombytes_buf(a, sizeof(a));
    memcpy(b, a, sizeof(b));
    cr_assert_eq(auth_tag_equal(a, b), 1);
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        memcpy(b, a, sizeof(b));
        b[where[i]] ^= 0x01;
        cr_assert_eq(auth_tag_equal(a, b), 0, "byte %zu differs", where[i]);
    }
}

/* ---- cipher choice ---- */

Test(auth, local_ciphers_always_include_xchacha_and_aes_only_with_hardware)
{
    /* Checks auth_local_ciphers: XChaCha20 always, AES-256-GCM exactly when libsodium has it. */
    uint16_t c = auth_local_ciphers();

    cr_assert(c & AUTH_CIPHER_XCHACHA20);
    cr_assert_eq(!!(c & AUTH_CIPHER_AES256GCM), !!crypto_aead_aes256gcm_is_available());
    cr_assert_eq(c & ~(AUTH_CIPHER_AES256GCM | AUTH_CIPHER_XCHACHA20), 0);
}

Test(auth, choose_cipher_prefers_aes_when_this_machine_has_it)
{
    /* Checks an offer of both: AES-256-GCM with AES hardware, XChaCha20-Poly1305 without. */
    uint16_t want =
        crypto_aead_aes256gcm_is_available() ? AUTH_CIPHER_AES256GCM : AUTH_CIPHER_XCHACHA20;

    cr_assert_eq(auth_choose_cipher(AUTH_CIPHER_AES256GCM | AUTH_CIPHER_XCHACHA20), want);
}

Test(auth, choose_cipher_takes_xchacha_when_only_xchacha_is_offered)
{
    /* Checks an offer of XChaCha20 alone (or with unknown bits): XChaCha20-Poly1305. */
    cr_assert_eq(auth_choose_cipher(AUTH_CIPHER_XCHACHA20), AUTH_CIPHER_XCHACHA20);
    cr_assert_eq(auth_choose_cipher(AUTH_CIPHER_XCHACHA20 | 0xfff0u), AUTH_CIPHER_XCHACHA20);
}

Test(auth, choose_cipher_is_0_when_nothing_is_in_common)
{
    /* Checks offers of nothing, of unknown bits only, and of AES alone on a machine without it. */
    cr_assert_eq(auth_choose_cipher(0), 0);
    cr_assert_eq(auth_choose_cipher(0xfffcu), 0);
    if (!crypto_aead_aes256gcm_is_available())
        cr_assert_eq(auth_choose_cipher(AUTH_CIPHER_AES256GCM), 0);
    else
        cr_assert_eq(auth_choose_cipher(AUTH_CIPHER_AES256GCM), AUTH_CIPHER_AES256GCM);
}

/* ---- generated secrets ---- */

Test(auth, generated_secret_is_groups_of_four_base32_letters)
{
    /* Checks the format: AUTH_SECRET_TEXT_LEN chars, "xxxx-xxxx-...", only [a-z2-7] between. */
    char s[AUTH_SECRET_TEXT_LEN + 2];

    memset(s, '#', sizeof(s));
    cr_assert_eq(auth_secret_generate(s), 0);
    cr_assert_eq(strlen(s), AUTH_SECRET_TEXT_LEN, "\"%s\"", s);
    cr_assert_eq(s[AUTH_SECRET_TEXT_LEN + 1], '#', "wrote past the NUL");
    for (size_t i = 0; i < AUTH_SECRET_TEXT_LEN; i++) {
        if (i % 5 == 4) {
            cr_assert_eq(s[i], '-', "\"%s\": position %zu", s, i);
        } else {
            int ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7');

            cr_assert(ok, "\"%s\": '%c' at %zu is not base32", s, s[i], i);
        }
    }
}

Test(auth, two_generated_secrets_differ)
{
    /* Checks that two calls give different secrets (140 random bits each). */
    char a[AUTH_SECRET_TEXT_LEN + 1];
    char b[AUTH_SECRET_TEXT_LEN + 1];

    cr_assert_eq(auth_secret_generate(a), 0);
    cr_assert_eq(auth_secret_generate(b), 0);
    cr_assert_str_neq(a, b);
}

Test(auth, generated_secrets_use_the_whole_alphabet)
{
    /* Checks that 200 secrets use all 32 symbols, so none of the 140 bits is stuck. */
    int seen[256] = {0};
    int distinct = 0;

    for (int n = 0; n < 200; n++) {
        char s[AUTH_SECRET_TEXT_LEN + 1];

        cr_assert_eq(auth_secret_generate(s), 0);
        for (size_t i = 0; i < AUTH_SECRET_TEXT_LEN; i++) {
            if (s[i] != '-')
                seen[(unsigned char)s[i]] = 1;
        }
    }
    for (int c = 0; c < 256; c++)
        distinct += seen[c];
    cr_assert_eq(distinct, 32);
}

/* ---- the pre-shared key ---- */

Test(auth, psk_from_secret_is_deterministic)
{
    /* Checks that one secret always gives the same pre-shared key. */
    struct auth_psk a;
    struct auth_psk b;

    cr_assert_eq(auth_psk_from_secret(&a, test_secret, strlen(test_secret)), 0);
    auth_psk_forget(); /* derived again, not served from the cache */
    cr_assert_eq(auth_psk_from_secret(&b, test_secret, strlen(test_secret)), 0);
    cr_assert_arr_eq(a.key, b.key, AUTH_KEY_LEN);
}

Test(auth, psk_from_secret_changes_with_any_byte_or_the_length)
{
    /* Checks that a one-bit change, a missing last byte or an extra byte each change the psk. */
    char other[sizeof(test_secret) + 1];
    struct auth_psk base;
    struct auth_psk k;
    size_t n = strlen(test_secret);

    cr_assert_eq(auth_psk_from_secret(&base, test_secret, n), 0);
    memcpy(other, test_secret, sizeof(test_secret));
    other[0] ^= 0x01;
    cr_assert_eq(auth_psk_from_secret(&k, other, n), 0);
    cr_assert_arr_neq(k.key, base.key, AUTH_KEY_LEN, "first byte flipped");
    cr_assert_eq(auth_psk_from_secret(&k, test_secret, n - 1), 0);
    cr_assert_arr_neq(k.key, base.key, AUTH_KEY_LEN, "last byte dropped");
    memcpy(other, test_secret, sizeof(test_secret));
    other[n] = 'x';
    cr_assert_eq(auth_psk_from_secret(&k, other, n + 1), 0);
    cr_assert_arr_neq(k.key, base.key, AUTH_KEY_LEN, "byte appended");
}

Test(auth, psk_is_argon2id_of_the_secret_with_the_documented_parameters)
{
    /* Checks the psk against a vector from the reference Argon2 (`argon2 "xfer/3 stretched" -id
     * -t 2 -k 65536 -p 1 -l 32 -r`, not libsodium) and against crypto_pwhash called here with
     * the parameters xfer-protocol(7) gives: Argon2id 1.3, 2 passes, 64 MiB, that salt. */
    static const uint8_t want[AUTH_KEY_LEN] = {
        0x19, 0x09, 0x00, 0x14, 0xaf, 0xfe, 0x18, 0x36, 0xa7, 0x6e, 0x73, 0x49, 0xa4, 0x9f, 0x02, 0x1e,
        0xb3, 0x13, 0x4c, 0x4e, 0x3f, 0x62, 0xa2, 0xc4, 0xf2, 0x9a, 0x1b, 0x20, 0x77, 0xbb, 0xec, 0xd5};
    uint8_t direct[AUTH_KEY_LEN];
    struct auth_psk k;

    cr_assert_eq(auth_psk_from_secret(&k, test_secret, strlen(test_secret)), 0);
    cr_assert_arr_eq(k.key, want, AUTH_KEY_LEN);
    cr_assert_eq(crypto_pwhash(direct, sizeof(direct), test_secret, strlen(test_secret),
                               (const uint8_t *)"xfer/3 stretched", 2, 64u << 20,
                               crypto_pwhash_ALG_ARGON2ID13),
                 0);
    cr_assert_arr_eq(k.key, direct, AUTH_KEY_LEN);
}

Test(auth, psk_is_neither_a_plain_hash_nor_the_protocol_2_key_of_the_secret)
{
    /* Checks the psk is not unkeyed BLAKE2b-256 of the secret, nor protocol 2's pre-shared key
     * (BLAKE2b-256 keyed with "xfer/2 pre-shared key"), a guess at which cost one BLAKE2b. */
    struct auth_psk k;
    uint8_t plain[AUTH_KEY_LEN];
    uint8_t v2[AUTH_KEY_LEN];

    cr_assert_eq(auth_psk_from_secret(&k, test_secret, strlen(test_secret)), 0);
    crypto_generichash(plain, sizeof(plain), (const uint8_t *)test_secret, strlen(test_secret),
                       NULL, 0);
    crypto_generichash(v2, sizeof(v2), (const uint8_t *)test_secret, strlen(test_secret),
                       (const uint8_t *)"xfer/2 pre-shared key", 21);
    cr_assert_arr_neq(k.key, plain, AUTH_KEY_LEN);
    cr_assert_arr_neq(k.key, v2, AUTH_KEY_LEN);
}

Test(auth, psk_of_the_same_secret_is_derived_once_per_process)
{
    /* Checks the cache: the same secret again costs no Argon2id and gives the same key; another
     * secret costs one; auth_psk_forget() drops the kept key, so the next call derives again. */
    static const char other[] = "tulp-7kq2-mzv4-x3re-9bdn-hw5a-qcl7";
    unsigned before = auth_psk_evaluations();
    struct auth_psk a;
    struct auth_psk b;

    cr_assert_eq(auth_psk_from_secret(&a, test_secret, strlen(test_secret)), 0);
    cr_assert_eq(auth_psk_evaluations(), before + 1);
    for (int i = 0; i < 3; i++) {
        memset(&b, 0, sizeof(b));
        cr_assert_eq(auth_psk_from_secret(&b, test_secret, strlen(test_secret)), 0);
        cr_assert_arr_eq(a.key, b.key, AUTH_KEY_LEN);
    }
    cr_assert_eq(auth_psk_evaluations(), before + 1, "the same secret was stretched again");
    cr_assert_eq(auth_psk_from_secret(&b, other, strlen(other)), 0);
    cr_assert_eq(auth_psk_evaluations(), before + 2, "another secret was served from the cache");
    cr_assert_arr_neq(a.key, b.key, AUTH_KEY_LEN);
    /* A prefix of the kept secret is another secret. */
    cr_assert_eq(auth_psk_from_secret(&b, other, strlen(other) - 1), 0);
    cr_assert_eq(auth_psk_evaluations(), before + 3);
    auth_psk_forget();
    cr_assert_eq(auth_psk_from_secret(&b, other, strlen(other) - 1), 0);
    cr_assert_eq(auth_psk_evaluations(), before + 4, "the forgotten key was still served");
}

/* ---- ephemerals and wiping ---- */

Test(auth, ephemerals_are_fresh_and_their_pk_matches_their_sk)
{
    /* Checks two ephemerals differ in pk, sk and nonce, and pk is X25519 of sk. */
    struct auth_ephemeral a;
    struct auth_ephemeral b;
    uint8_t pk[AUTH_PK_LEN];

    cr_assert_eq(auth_ephemeral_new(&a), 0);
    cr_assert_eq(auth_ephemeral_new(&b), 0);
    cr_assert_arr_neq(a.pk, b.pk, AUTH_PK_LEN);
    cr_assert_arr_neq(a.sk, b.sk, AUTH_KEY_LEN);
    cr_assert_arr_neq(a.nonce, b.nonce, AUTH_NONCE_LEN);
    cr_assert_eq(crypto_scalarmult_base(pk, a.sk), 0);
    cr_assert_arr_eq(pk, a.pk, AUTH_PK_LEN);
}

Test(auth, wipe_zeroes_key_material)
{
    /* Checks that auth_wipe leaves every byte of a struct auth_keys zero. */
    struct handshake h;
    struct auth_keys k;
    struct auth_keys zero;

    handshake_new(&h, test_secret);
    client_keys(&h, &h.t, &k);
    memset(&zero, 0, sizeof(zero));
    cr_assert_neq(memcmp(&k, &zero, sizeof(k)), 0);
    auth_wipe(&k, sizeof(k));
    cr_assert_eq(memcmp(&k, &zero, sizeof(k)), 0);
}
