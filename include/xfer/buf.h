/* buf: bounds-checked big-endian reader and writer over caller memory. No
 * allocation. A getter checks what remains before it consumes; on shortage it
 * consumes nothing and returns XFER_EPARTIAL. A putter on a full buffer
 * returns XFER_ETOOBIG and writes nothing. */
#ifndef XFER_BUF_H
#define XFER_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

struct buf_writer {
    uint8_t *p;
    size_t cap;
    size_t pos;
};

void buf_reader_init(struct buf_reader *r, const void *p, size_t len);
size_t buf_remaining(const struct buf_reader *r);
int buf_get_u8(struct buf_reader *r, uint8_t *v);
int buf_get_u16(struct buf_reader *r, uint16_t *v);
int buf_get_u32(struct buf_reader *r, uint32_t *v);
int buf_get_u64(struct buf_reader *r, uint64_t *v);
/* Copies len bytes into out. */
int buf_get_bytes(struct buf_reader *r, void *out, size_t len);
/* Points *out at the next len bytes inside the reader's memory, no copy. */
int buf_peek_bytes(struct buf_reader *r, const uint8_t **out, size_t len);

void buf_writer_init(struct buf_writer *w, void *p, size_t cap);
int buf_put_u8(struct buf_writer *w, uint8_t v);
int buf_put_u16(struct buf_writer *w, uint16_t v);
int buf_put_u32(struct buf_writer *w, uint32_t v);
int buf_put_u64(struct buf_writer *w, uint64_t v);
int buf_put_bytes(struct buf_writer *w, const void *p, size_t len);

#endif
