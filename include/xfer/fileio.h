/* fileio: the blocking file operations xfer runs on the libuv threadpool,
 * never on the loop: whole reads and writes, durable syncs, hashing a range.
 * Each returns 0 (or a byte count) or -errno. */
#ifndef XFER_FILEIO_H
#define XFER_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <xxhash.h>

/* Reads up to len bytes at off, retrying short reads; the count returned is
 * short only at end of file. */
int64_t fileio_pread(int fd, void *buf, size_t len, uint64_t off);

/* Writes all len bytes at off. */
int fileio_pwrite(int fd, const void *buf, size_t len, uint64_t off);

int fileio_datasync(int fd);

/* Feeds [off, off + len) of fd into state, reading through buf of bufsize
 * bytes. -EIO if the file is shorter. */
int fileio_hash_range(int fd, uint64_t off, uint64_t len, XXH3_state_t *state, uint8_t *buf,
                      size_t bufsize);

/* Opens path (relative, no "..") under dirfd without following any symbolic
 * link and without leaving dirfd: openat2() with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS where the kernel has it, else one O_NOFOLLOW openat()
 * per component. flags are open(2)'s; O_CLOEXEC is added. Returns an fd or
 * -errno (ELOOP for a link in the way, EXDEV for an escape). */
int fileio_open_beneath(int dirfd, const char *path, int flags, mode_t mode);

/* Creates path under dirfd anew (O_RDWR, mode): removes whatever held the
 * name (a link is removed, never followed), then creates exclusively, so
 * the descriptor is a file nobody else can reach. Returns it or -errno. */
int fileio_create_fresh(int dirfd, const char *path, mode_t mode);

/* For a file opened in the state directory: 0 if it is a regular file with
 * one link that belongs to this process's user, -EINVAL if it is not a
 * regular file, XFER_ELINKED if another name or user could reach it (a hard
 * link planted there), or -errno. Such a file must never be written. */
int fileio_check_private(int fd);

/* fileio_open_beneath() without openat2(): what it falls back to where the
 * kernel lacks it (before Linux 5.6, under some seccomp filters, under
 * valgrind). Same contract; public so tests can reach it on any kernel. */
int fileio_open_by_components(int dirfd, const char *path, int flags, mode_t mode);

/* A new XXH3-128 streaming state, zero-filled then reset: the journal writes
 * states to disk byte for byte, and uninitialised padding must not leak
 * heap contents into it. NULL when out of memory. Free with
 * XXH3_freeState(). */
XXH3_state_t *fileio_hash_state_new(void);

#endif
