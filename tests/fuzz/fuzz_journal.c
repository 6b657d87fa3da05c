/* fuzz_journal: the resume-journal reader, journal_parse().
 *
 * Each run parses the input twice: as it is (random damage, which the
 * checksums must catch), and with every checksum the input's own length
 * fields point at recomputed, so records of any content reach the code
 * behind the checksums. A parse that succeeds must describe a consistent
 * journal, and a usable saved hash state must then be usable the way the
 * receiver uses it on resume (copied, finished into a digest, continued).
 * Seeds: fixtures/fuzz/journal/ (the journals of fixtures/journals). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "xfer/journal.h"

/* Offsets in the on-disk layout (src/journal.c). */
#define HDR_NAME_LEN_AT 40 /* magic .. mtime nsec */
#define HDR_NAME_AT 42
#define REC_N_AT 12
#define REC_STATE_LEN_AT 24
#define REC_FIXED 28 /* magic, from_chunk, n, confirmed, state length */

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Recomputes the header's and each record's checksum in place. */
static void fix_checksums(uint8_t *p, size_t len)
{
    uint64_t pos, body;

    if (len < HDR_NAME_AT)
        return;
    pos = HDR_NAME_AT + get_be(p + HDR_NAME_LEN_AT, 2);
    if (pos + 8 > len)
        return;
    put_be64(p + pos, XXH3_64bits(p, (size_t)pos));
    pos += 8;
    while (pos + REC_FIXED <= len) {
        body = REC_FIXED + get_be(p + pos + REC_STATE_LEN_AT, 4) +
               get_be(p + pos + REC_N_AT, 4) * 8;
        if (body + 8 > len - pos)
            return;
        put_be64(p + pos + body, XXH3_64bits(p + pos, (size_t)body));
        pos += body + 8;
    }
}

static void check_parse(const uint8_t *p, size_t len)
{
    struct journal j;
    uint64_t valid = 0;
    int rc;

    journal_init(&j);
    rc = journal_parse(&j, p, len, &valid);
    if (valid > len)
        abort();
    if (rc == 0) {
        uint64_t chunks = (j.confirmed + PROTO_CHUNK_SIZE - 1) / PROTO_CHUNK_SIZE;

        if (j.confirmed > j.id.size || j.nhashes != chunks || j.nhashes > j.cap ||
            strlen(j.id.name) > PROTO_MAX_NAME)
            abort();
        for (uint64_t i = 0; i < j.nhashes; i++)
            (void)j.hashes[i]; /* each one is there (ASan checks) */
        if (j.state_valid && !j.state_missing) {
            /* What the receiver does with a resumed state. */
            XXH3_state_t *st = XXH3_createState();
            static const uint8_t more[100];

            if (st == NULL)
                abort();
            XXH3_copyState(st, j.state);
            (void)XXH3_128bits_digest(st);
            (void)XXH3_128bits_update(st, more, sizeof(more));
            (void)XXH3_128bits_digest(st);
            XXH3_freeState(st);
        }
    }
    journal_close(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    check_parse(data, size);
    copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    fix_checksums(copy, size);
    check_parse(copy, size);
    free(copy);
    return 0;
}
