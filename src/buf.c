#include <string.h>

#include "xfer/buf.h"
#include "xfer/err.h"

void buf_reader_init(struct buf_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

size_t buf_remaining(const struct buf_reader *r)
{
    return r->len - r->pos;
}

int buf_peek_bytes(struct buf_reader *r, const uint8_t **out, size_t len)
{
    *out = NULL;
    if (buf_remaining(r) < len)
        return XFER_EPARTIAL;
    *out = r->p + r->pos;
    r->pos += len;
    return 0;
}

int buf_get_bytes(struct buf_reader *r, void *out, size_t len)
{
    const uint8_t *src;
    int rc = buf_peek_bytes(r, &src, len);

    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(out, src, len);
    return 0;
}

static int get_be(struct buf_reader *r, size_t width, uint64_t *v)
{
    const uint8_t *src;
    uint64_t acc = 0;
    int rc = buf_peek_bytes(r, &src, width);

    *v = 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < width; i++)
        acc = (acc << 8) | src[i];
    *v = acc;
    return 0;
}

int buf_get_u8(struct buf_reader *r, uint8_t *v)
{
    uint64_t t;
    int rc = get_be(r, 1, &t);

    *v = (uint8_t)t;
    return rc;
}

int buf_get_u16(struct buf_reader *r, uint16_t *v)
{
    uint64_t t;
    int rc = get_be(r, 2, &t);

    *v = (uint16_t)t;
    return rc;
}

int buf_get_u32(struct buf_reader *r, uint32_t *v)
{
    uint64_t t;
    int rc = get_be(r, 4, &t);

    *v = (uint32_t)t;
    return rc;
}

int buf_get_u64(struct buf_reader *r, uint64_t *v)
{
    return get_be(r, 8, v);
}

void buf_writer_init(struct buf_writer *w, void *p, size_t cap)
{
    w->p = p;
    w->cap = cap;
    w->pos = 0;
}

int buf_put_bytes(struct buf_writer *w, const void *p, size_t len)
{
    if (w->cap - w->pos < len)
        return XFER_ETOOBIG;
    if (len > 0)
        memcpy(w->p + w->pos, p, len);
    w->pos += len;
    return 0;
}

static int put_be(struct buf_writer *w, size_t width, uint64_t v)
{
    uint8_t tmp[8];

    for (size_t i = 0; i < width; i++)
        tmp[width - 1 - i] = (uint8_t)(v >> (8 * i));
    return buf_put_bytes(w, tmp, width);
}

int buf_put_u8(struct buf_writer *w, uint8_t v)
{
    return put_be(w, 1, v);
}

int buf_put_u16(struct buf_writer *w, uint16_t v)
{
    return put_be(w, 2, v);
}

int buf_put_u32(struct buf_writer *w, uint32_t v)
{
    return put_be(w, 4, v);
}

int buf_put_u64(struct buf_writer *w, uint64_t v)
{
    return put_be(w, 8, v);
}
