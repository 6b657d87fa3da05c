#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "xfer/fileio.h"

int64_t fileio_pread(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (int64_t)got;
}

int fileio_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

int fileio_datasync(int fd)
{
    if (fdatasync(fd) < 0)
        return -errno;
    return 0;
}

int fileio_hash_range(int fd, uint64_t off, uint64_t len, XXH3_state_t *state, uint8_t *buf,
                      size_t bufsize)
{
    while (len > 0) {
        size_t want = len < bufsize ? (size_t)len : bufsize;
        int64_t n = fileio_pread(fd, buf, want, off);

        if (n < 0)
            return (int)n;
        if ((size_t)n < want)
            return -EIO;
        (void)XXH3_128bits_update(state, buf, want); /* only fails on NULL input */
        off += want;
        len -= want;
    }
    return 0;
}

XXH3_state_t *fileio_hash_state_new(void)
{
    XXH3_state_t *st = XXH3_createState();

    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    (void)XXH3_128bits_reset(st); /* cannot fail on a valid state */
    return st;
}
