/* seal: the record layer that carries every frame after the handshake. No
 * I/O; the one allocation is AES-GCM's cipher context, made by seal_init()
 * and freed by seal_wipe(), which every seal_init() (even a failed one) must
 * be paired with. A sealed record is an 8-byte header (u32 length of
 * what follows, u8 type SEAL_RECORD_TYPE, three zero bytes) and the frame
 * encrypted with an AEAD (AES-256-GCM or XChaCha20-Poly1305), the header as
 * associated data, and a 16-byte tag. Nonces are a per-direction counter,
 * never random, so a dropped, repeated, reordered or reflected record fails
 * to open. Encryption and decryption work in place. */
#ifndef XFER_SEAL_H
#define XFER_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "xfer/proto.h"

#define SEAL_RECORD_TYPE 0x80
#define SEAL_HDR_LEN 8
#define SEAL_TAG_LEN 16
/* The largest record body: a whole DATA frame and its tag. */
#define SEAL_MAX_BODY (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD + SEAL_TAG_LEN)
/* Bytes a buffer needs around a frame of n bytes to seal it in place. */
#define SEAL_OVERHEAD (SEAL_HDR_LEN + SEAL_TAG_LEN)
#define SEAL_AES_NONCE_LEN 12

struct evp_cipher_ctx_st; /* OpenSSL's EVP_CIPHER_CTX */

struct seal {
    uint16_t cipher;
    uint64_t counter; /* nonce of the next record */
    uint8_t key[32];
    struct evp_cipher_ctx_st *aes; /* expanded key, AES-256-GCM only */
};

/* Takes a cipher (AUTH_CIPHER_*) and a 32-byte key; wipe the key after.
 * Returns 0 or -1 (unknown cipher, no memory). */
int seal_init(struct seal *s, uint16_t cipher, const uint8_t key[32]);

/* rec holds SEAL_HDR_LEN free bytes, then the frame (len bytes), then
 * SEAL_TAG_LEN free bytes. Fills the header, encrypts the frame in place,
 * appends the tag; returns the record's total length. */
int seal_close(struct seal *s, uint8_t *rec, size_t len);

/* Checks a record header; returns the body length to read next, or
 * XFER_EPROTO / XFER_ETOOBIG. */
int seal_parse_header(const uint8_t hdr[SEAL_HDR_LEN]);

/* Opens a body of len bytes read after hdr, in place. Returns the frame's
 * length (len - SEAL_TAG_LEN) or XFER_ECORRUPT if it was not sealed by the
 * peer as the next record. */
int seal_open(struct seal *s, const uint8_t hdr[SEAL_HDR_LEN], uint8_t *body, size_t len);

/* Frees and zeroes everything seal_init() set up. */
void seal_wipe(struct seal *s);

#endif
