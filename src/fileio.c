#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "xfer/err.h"
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

/* -ELOOP if the failed open of dirfd/name was because name is a symbolic link:
 * with O_DIRECTORY, O_NOFOLLOW fails on a link with ENOTDIR, not ELOOP, and the
 * callers (and openat2()) say ELOOP for a link in the way. Else err. */
static int link_in_the_way(int dirfd, const char *name, int err)
{
    struct stat st;

    if (err == -ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        return -ELOOP;
    return err;
}

/* The portable way: every directory on the way opened O_NOFOLLOW, so a
 * link anywhere fails with ELOOP instead of being followed. */
int fileio_open_by_components(int dirfd, const char *path, int flags, mode_t mode)
{
    char buf[4096];
    char *save = NULL;
    char *part;
    char *next;
    int cur = dirfd;
    int fd;

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    part = strtok_r(buf, "/", &save);
    while (part != NULL) {
        next = strtok_r(NULL, "/", &save);
        if (strcmp(part, "..") == 0 || strcmp(part, ".") == 0) {
            fd = -EXDEV;
        } else if (next == NULL) {
            fd = openat(cur, part, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            fd = fd < 0 ? link_in_the_way(cur, part, -errno) : fd;
        } else {
            fd = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            fd = fd < 0 ? link_in_the_way(cur, part, -errno) : fd;
        }
        if (cur != dirfd)
            (void)close(cur); /* a directory opened read-only on the way */
        if (fd < 0)
            return fd;
        cur = fd;
        part = next;
    }
    return cur == dirfd ? -EINVAL : cur;
}

int fileio_create_fresh(int dirfd, const char *path, mode_t mode)
{
    if (unlinkat(dirfd, path, 0) < 0 && errno != ENOENT)
        return -errno;
    return fileio_open_beneath(dirfd, path, O_RDWR | O_CREAT | O_EXCL, mode);
}

int fileio_check_private(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (st.st_nlink != 1 || st.st_uid != geteuid())
        return XFER_ELINKED;
    return 0;
}

int fileio_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
    static int no_openat2;
    struct open_how how;
    long fd;

    if (path[0] == '/' || path[0] == '\0')
        return -EINVAL;
    if (!no_openat2) {
        memset(&how, 0, sizeof(how));
        how.flags = (uint64_t)(flags | O_CLOEXEC);
        how.mode = (flags & O_CREAT) ? mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno != ENOSYS && errno != EPERM) /* EPERM: a seccomp filter */
            return -errno;
        no_openat2 = 1; /* a benign race: worst case both threads fall back */
    }
    return fileio_open_by_components(dirfd, path, flags, mode);
}
