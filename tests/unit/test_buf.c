/* buf: the bounds-checked big-endian reader and writer. */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "xfer/buf.h"
#include "xfer/err.h"

Test(buf, u8_round_trips)
{
    /* Checks that a u8 written is the byte read back. */
    uint8_t mem[1];
    struct buf_writer w;
    struct buf_reader r;
    uint8_t v = 0;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_u8(&w, 0xa5), 0);
    cr_assert_eq(w.pos, 1);
    cr_assert_eq(mem[0], 0xa5);
    buf_reader_init(&r, mem, w.pos);
    cr_assert_eq(buf_get_u8(&r, &v), 0);
    cr_assert_eq(v, 0xa5);
    cr_assert_eq(buf_remaining(&r), 0);
}

Test(buf, u16_round_trips_big_endian)
{
    /* Checks that a u16 is written most significant byte first and read back. */
    static const uint8_t want[] = {0xbe, 0xef};
    uint8_t mem[2];
    struct buf_writer w;
    struct buf_reader r;
    uint16_t v = 0;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_u16(&w, 0xbeef), 0);
    cr_assert_eq(w.pos, 2);
    cr_assert_arr_eq(mem, want, sizeof(want));
    buf_reader_init(&r, mem, w.pos);
    cr_assert_eq(buf_get_u16(&r, &v), 0);
    cr_assert_eq(v, 0xbeef);
    cr_assert_eq(buf_remaining(&r), 0);
}

Test(buf, u32_round_trips_big_endian)
{
    /* Checks that a u32 is written most significant byte first and read back. */
    static const uint8_t want[] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t mem[4];
    struct buf_writer w;
    struct buf_reader r;
    uint32_t v = 0;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_u32(&w, 0xdeadbeefu), 0);
    cr_assert_eq(w.pos, 4);
    cr_assert_arr_eq(mem, want, sizeof(want));
    buf_reader_init(&r, mem, w.pos);
    cr_assert_eq(buf_get_u32(&r, &v), 0);
    cr_assert_eq(v, 0xdeadbeefu);
    cr_assert_eq(buf_remaining(&r), 0);
}

Test(buf, u64_round_trips_big_endian)
{
    /* Checks that a u64 is written most significant byte first and read back. */
    static const uint8_t want[] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    uint8_t mem[8];
    struct buf_writer w;
    struct buf_reader r;
    uint64_t v = 0;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_u64(&w, UINT64_C(0x0123456789abcdef)), 0);
    cr_assert_eq(w.pos, 8);
    cr_assert_arr_eq(mem, want, sizeof(want));
    buf_reader_init(&r, mem, w.pos);
    cr_assert_eq(buf_get_u64(&r, &v), 0);
    cr_assert_eq(v, UINT64_C(0x0123456789abcdef));
    cr_assert_eq(buf_remaining(&r), 0);
}

Test(buf, bytes_round_trip_by_copy_and_by_peek)
{
    /* Checks that bytes put are got back by buf_get_bytes and in place by buf_peek_bytes. */
    static const char text[] = "xfer";
    uint8_t mem[8];
    char out[4];
    const uint8_t *peek = NULL;
    struct buf_writer w;
    struct buf_reader r;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_bytes(&w, text, 4), 0);
    cr_assert_eq(buf_put_bytes(&w, text, 4), 0);
    cr_assert_eq(w.pos, 8);
    buf_reader_init(&r, mem, w.pos);
    cr_assert_eq(buf_get_bytes(&r, out, 4), 0);
    cr_assert_arr_eq(out, text, 4);
    cr_assert_eq(buf_peek_bytes(&r, &peek, 4), 0);
    cr_assert_eq(peek, mem + 4);
    cr_assert_eq(buf_remaining(&r), 0);
}

Test(buf, mixed_widths_round_trip_in_order)
{
    /* Checks that a sequence of every width reads back in the order written. */
    uint8_t mem[1 + 2 + 4 + 8];
    struct buf_writer w;
    struct buf_reader r;
    uint8_t a;
    uint16_t b;
    uint32_t c;
    uint64_t d;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_u8(&w, 0xff), 0);
    cr_assert_eq(buf_put_u16(&w, 0xffff), 0);
    cr_assert_eq(buf_put_u32(&w, 0), 0);
    cr_assert_eq(buf_put_u64(&w, UINT64_MAX), 0);
    cr_assert_eq(w.pos, sizeof(mem));
    buf_reader_init(&r, mem, w.pos);
    cr_assert_eq(buf_get_u8(&r, &a), 0);
    cr_assert_eq(buf_get_u16(&r, &b), 0);
    cr_assert_eq(buf_get_u32(&r, &c), 0);
    cr_assert_eq(buf_get_u64(&r, &d), 0);
    cr_assert_eq(a, 0xff);
    cr_assert_eq(b, 0xffff);
    cr_assert_eq(c, 0);
    cr_assert_eq(d, UINT64_MAX);
}

/* A reader over the first len bytes of "\x11\x22...", ending at a guard page. */
static void short_reader(struct buf_reader *r, struct guard *g, size_t len)
{
    static const uint8_t src[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

    buf_reader_init(r, guard_copy(g, src, len), len);
}

Test(buf, get_u8_on_empty_input_is_partial_and_consumes_nothing)
{
    /* Checks buf_get_u8 on zero bytes: XFER_EPARTIAL, pos unchanged, value zeroed. */
    struct guard g = {0};
    struct buf_reader r;
    uint8_t v = 0xee;

    short_reader(&r, &g, 0);
    cr_assert_eq(buf_get_u8(&r, &v), XFER_EPARTIAL);
    cr_assert_eq(r.pos, 0);
    cr_assert_eq(v, 0);
    guard_free(&g);
}

Test(buf, get_u16_on_short_input_is_partial_and_consumes_nothing)
{
    /* Checks buf_get_u16 on 0 and 1 bytes: XFER_EPARTIAL, pos unchanged. */
    for (size_t len = 0; len < 2; len++) {
        struct guard g = {0};
        struct buf_reader r;
        uint16_t v = 0xeeee;

        short_reader(&r, &g, len);
        cr_assert_eq(buf_get_u16(&r, &v), XFER_EPARTIAL, "len %zu", len);
        cr_assert_eq(r.pos, 0, "len %zu", len);
        cr_assert_eq(v, 0, "len %zu", len);
        guard_free(&g);
    }
}

Test(buf, get_u32_on_short_input_is_partial_and_consumes_nothing)
{
    /* Checks buf_get_u32 on 0..3 bytes: XFER_EPARTIAL, pos unchanged. */
    for (size_t len = 0; len < 4; len++) {
        struct guard g = {0};
        struct buf_reader r;
        uint32_t v = 0xeeeeeeee;

        short_reader(&r, &g, len);
        cr_assert_eq(buf_get_u32(&r, &v), XFER_EPARTIAL, "len %zu", len);
        cr_assert_eq(r.pos, 0, "len %zu", len);
        cr_assert_eq(v, 0, "len %zu", len);
        guard_free(&g);
    }
}

Test(buf, get_u64_on_short_input_is_partial_and_consumes_nothing)
{
    /* Checks buf_get_u64 on 0..7 bytes: XFER_EPARTIAL, pos unchanged. */
    for (size_t len = 0; len < 8; len++) {
        struct guard g = {0};
        struct buf_reader r;
        uint64_t v = 0xee;

        short_reader(&r, &g, len);
        cr_assert_eq(buf_get_u64(&r, &v), XFER_EPARTIAL, "len %zu", len);
        cr_assert_eq(r.pos, 0, "len %zu", len);
        cr_assert_eq(v, 0, "len %zu", len);
        guard_free(&g);
    }
}

Test(buf, get_bytes_on_short_input_is_partial_and_consumes_nothing)
{
    /* Checks buf_get_bytes for one byte more than remains: XFER_EPARTIAL, out untouched. */
    for (size_t len = 0; len < 8; len++) {
        struct guard g = {0};
        struct buf_reader r;
        uint8_t out[8];

        memset(out, 0xee, sizeof(out));
        short_reader(&r, &g, len);
        cr_assert_eq(buf_get_bytes(&r, out, len + 1), XFER_EPARTIAL, "len %zu", len);
        cr_assert_eq(r.pos, 0, "len %zu", len);
        for (size_t i = 0; i < sizeof(out); i++)
            cr_assert_eq(out[i], 0xee, "len %zu: out[%zu] written", len, i);
        guard_free(&g);
    }
}

Test(buf, peek_bytes_on_short_input_is_partial_and_clears_the_pointer)
{
    /* Checks buf_peek_bytes for one byte more than remains: XFER_EPARTIAL, *out NULL. */
    for (size_t len = 0; len < 8; len++) {
        struct guard g = {0};
        struct buf_reader r;
        const uint8_t *out = (const uint8_t *)&r;

        short_reader(&r, &g, len);
        cr_assert_eq(buf_peek_bytes(&r, &out, len + 1), XFER_EPARTIAL, "len %zu", len);
        cr_assert_eq(r.pos, 0, "len %zu", len);
        cr_assert_null(out, "len %zu", len);
        guard_free(&g);
    }
}

Test(buf, getter_after_a_read_is_partial_and_keeps_its_position)
{
    /* Checks that a short getter midway leaves pos where the last good read left it. */
    struct guard g = {0};
    struct buf_reader r;
    uint32_t a;
    uint16_t b;

    short_reader(&r, &g, 5);
    cr_assert_eq(buf_get_u32(&r, &a), 0);
    cr_assert_eq(a, 0x11223344u);
    cr_assert_eq(buf_get_u16(&r, &b), XFER_EPARTIAL);
    cr_assert_eq(r.pos, 4);
    cr_assert_eq(buf_remaining(&r), 1);
    guard_free(&g);
}

Test(buf, get_bytes_of_a_huge_length_is_partial_without_wrapping)
{
    /* Checks that len = SIZE_MAX cannot wrap the bounds check into a read. */
    struct guard g = {0};
    struct buf_reader r;
    const uint8_t *out = NULL;

    short_reader(&r, &g, 4);
    r.pos = 1;
    cr_assert_eq(buf_peek_bytes(&r, &out, SIZE_MAX), XFER_EPARTIAL);
    cr_assert_eq(buf_get_bytes(&r, NULL, SIZE_MAX), XFER_EPARTIAL);
    cr_assert_eq(r.pos, 1);
    guard_free(&g);
}

Test(buf, zero_length_get_and_put_succeed_at_the_end)
{
    /* Checks that zero-length bytes need no room on either side. */
    uint8_t mem[1] = {0};
    struct buf_reader r;
    struct buf_writer w;

    buf_reader_init(&r, mem, 0);
    cr_assert_eq(buf_get_bytes(&r, mem, 0), 0);
    buf_writer_init(&w, mem, 0);
    cr_assert_eq(buf_put_bytes(&w, "x", 0), 0);
    cr_assert_eq(w.pos, 0);
}

/* Puts with a writer of cap bytes (cap < width) that ends at a guard page,
 * and checks that nothing was written or counted. */
static void check_full(int (*put)(struct buf_writer *, uint64_t), size_t width, const char *what)
{
    for (size_t cap = 0; cap < width; cap++) {
        struct guard g = {0};
        uint8_t *mem = guard_alloc(&g, cap);
        struct buf_writer w;

        memset(mem, 0xee, cap);
        buf_writer_init(&w, mem, cap);
        cr_assert_eq(put(&w, UINT64_MAX), XFER_ETOOBIG, "%s, cap %zu", what, cap);
        cr_assert_eq(w.pos, 0, "%s, cap %zu", what, cap);
        for (size_t i = 0; i < cap; i++)
            cr_assert_eq(mem[i], 0xee, "%s, cap %zu: byte %zu written", what, cap, i);
        guard_free(&g);
    }
}

static int put8(struct buf_writer *w, uint64_t v)
{
    return buf_put_u8(w, (uint8_t)v);
}

static int put16(struct buf_writer *w, uint64_t v)
{
    return buf_put_u16(w, (uint16_t)v);
}

static int put32(struct buf_writer *w, uint64_t v)
{
    return buf_put_u32(w, (uint32_t)v);
}

static int put64(struct buf_writer *w, uint64_t v)
{
    return buf_put_u64(w, v);
}

static int put_bytes8(struct buf_writer *w, uint64_t v)
{
    uint8_t b[8];

    memset(b, (int)(v & 0xff), sizeof(b));
    return buf_put_bytes(w, b, sizeof(b));
}

Test(buf, put_u8_on_a_full_buffer_is_too_big_and_writes_nothing)
{
    /* Checks buf_put_u8 with no room: XFER_ETOOBIG, pos and memory unchanged. */
    check_full(put8, 1, "u8");
}

Test(buf, put_u16_on_a_full_buffer_is_too_big_and_writes_nothing)
{
    /* Checks buf_put_u16 with 0 or 1 bytes of room: XFER_ETOOBIG, nothing written. */
    check_full(put16, 2, "u16");
}

Test(buf, put_u32_on_a_full_buffer_is_too_big_and_writes_nothing)
{
    /* Checks buf_put_u32 with 0..3 bytes of room: XFER_ETOOBIG, nothing written. */
    check_full(put32, 4, "u32");
}

Test(buf, put_u64_on_a_full_buffer_is_too_big_and_writes_nothing)
{
    /* Checks buf_put_u64 with 0..7 bytes of room: XFER_ETOOBIG, nothing written. */
    check_full(put64, 8, "u64");
}

Test(buf, put_bytes_on_a_full_buffer_is_too_big_and_writes_nothing)
{
    /* Checks buf_put_bytes of 8 bytes with 0..7 bytes of room: XFER_ETOOBIG, nothing written. */
    check_full(put_bytes8, 8, "bytes");
}

Test(buf, put_after_a_write_is_too_big_and_keeps_its_position)
{
    /* Checks that a putter that no longer fits leaves pos and earlier bytes alone. */
    uint8_t mem[5];
    struct buf_writer w;

    buf_writer_init(&w, mem, sizeof(mem));
    cr_assert_eq(buf_put_u32(&w, 0x11223344u), 0);
    cr_assert_eq(buf_put_u16(&w, 0xffff), XFER_ETOOBIG);
    cr_assert_eq(w.pos, 4);
    cr_assert_eq(buf_put_u8(&w, 0x55), 0);
    cr_assert_eq(mem[4], 0x55);
    cr_assert_eq(buf_put_u8(&w, 0x66), XFER_ETOOBIG);
    cr_assert_eq(w.pos, 5);
}

Test(buf, put_bytes_of_a_huge_length_is_too_big_without_wrapping)
{
    /* Checks that len = SIZE_MAX cannot wrap the room check into a write. */
    uint8_t mem[4];
    struct buf_writer w;

    buf_writer_init(&w, mem, sizeof(mem));
    w.pos = 1;
    cr_assert_eq(buf_put_bytes(&w, mem, SIZE_MAX), XFER_ETOOBIG);
    cr_assert_eq(w.pos, 1);
}
