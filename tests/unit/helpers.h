/* helpers: shared by the unit tests. Failures abort the calling test through
 * Criterion's asserts. */
#ifndef XFER_TEST_HELPERS_H
#define XFER_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

/* A guard is test memory that ends right before a PROT_NONE page, so a decoder
 * that reads, or an encoder that writes, one byte past the end crashes the
 * test instead of passing by luck (picohttpparser's test.c does the same). */
struct guard {
    uint8_t *map;
    size_t maplen;
};

/* Returns len writable bytes whose end touches the guard page. */
uint8_t *guard_alloc(struct guard *g, size_t len);

/* Copies len bytes of p so that they end at the guard page; returns the copy. */
const uint8_t *guard_copy(struct guard *g, const void *p, size_t len);

/* Unmaps; safe on a zeroed guard. */
void guard_free(struct guard *g);

/* Reads FIXTURES_DIR/rel whole into malloc'd memory (plus a NUL the length
 * does not count); the caller frees it. */
uint8_t *fixture_read(const char *rel, size_t *len);

#endif
