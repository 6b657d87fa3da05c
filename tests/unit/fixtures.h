/* fixtures: what the files under fixtures/frames and fixtures/journals hold.
 * gen_fixtures writes them from these definitions; the tests rebuild the same
 * bytes and compare, so a change to the wire or journal format shows up as a
 * golden-file mismatch rather than passing silently. */
#ifndef XFER_TEST_FIXTURES_H
#define XFER_TEST_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "xfer/journal.h"
#include "xfer/proto.h"

/* The largest fixture frame is a header; this is room for any of them. */
#define FRAME_FIXTURE_MAX 4096

struct frame_fixture {
    const char *file; /* under fixtures/frames */
    /* proto_decode()'s result: bytes consumed (the file's length) or XFER_E* */
    int expect;
    /* Writes the file's bytes to out and returns their count; fills want with
     * the frame they decode to (for XFER_EVERSION, the version seen). */
    size_t (*make)(uint8_t *out, size_t cap, struct proto_frame *want);
};

extern const struct frame_fixture frame_fixtures[];
extern const size_t frame_fixture_count;

/* The source file that the fixture journals describe. */
#define JFIX_NAME "fixture.bin"
#define JFIX_SIZE (PROTO_CHUNK_SIZE + 3000u)
#define JFIX_MTIME_SEC 1700000000
#define JFIX_MTIME_NSEC 123456789u
/* Length of the header and the first record (chunk 0, confirmed = one chunk)
 * in the fixture journals: a 50-byte header + 11 name bytes, then a 36-byte
 * record + 576 state bytes (xxHash 0.8.1) + one 8-byte hash. Fixed by the
 * files, not by the build that reads them. */
#define JFIX_ONE_RECORD_LEN 681u

void jfix_identity(struct journal_identity *id);

/* Fills p with the first len bytes of the source file (deterministic noise). */
void jfix_data(uint8_t *p, size_t len);

#endif
