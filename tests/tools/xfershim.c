/* xfershim: an LD_PRELOAD library for the integration tests (tests/integration/test_edges.c).
 * It changes nothing unless told to by the environment:
 *
 *   XFERSHIM_READ_MAX=N     read(), readv(), recv(), recvfrom() and recvmsg() on a socket return
 *                           at most N bytes (N >= 1), so the process sees a stream split at every
 *                           byte. libuv reads TCP streams with read() (recvmsg() only for IPC
 *                           pipes), which this reaches through libuv's PLT.
 *   XFERSHIM_FAIL_FLAG=F    while the file F exists, pwrite() and pwritev() (and their 64-bit
 *                           names) to a regular file whose path ends with XFERSHIM_FAIL_SUFFIX
 *                           (default ".part") fail with XFERSHIM_FAIL_ERRNO (a number; default
 *                           EIO) and write nothing. Creating and removing F turns a disk fault on
 *                           and off while the process runs.
 *   XFERSHIM_BLOCK_FLAG=F   while the file F exists, pread(), fsync() and fdatasync() on a regular
 *                           file whose path ends with XFERSHIM_BLOCK_SUFFIX (default ".part")
 *                           wait (polling F every 5 ms) instead of starting: a disk that hangs.
 *                           Each call that waits creates the file XFERSHIM_BLOCKED (if set),
 *                           so a test knows the hang has begun.
 *   XFERSHIM_FINISH_FLAG=F  the same for fchmod() and ftruncate() on such a file, and unlinkat()
 *                           of a name with that suffix: the receiver calls them to commit a
 *                           verified file, restart a mismatched one, or forget an identical one's
 *                           leftovers (and unlinkat() before it creates a partial), so a test can
 *                           hold the receiver in those states while every write and sync passes.
 *   XFERSHIM_STATS=F        at exit, F gets one line "capped=C reads=R failed=X": socket reads
 *                           that were shortened, socket reads in all, writes failed on purpose.
 *                           A test reads it to prove the shim was loaded and active.
 *
 * Counters are atomic: pwrite runs on libuv's threadpool. Under an ASan build, preloading this
 * needs ASAN_OPTIONS=verify_asan_link_order=0 (the sanitizer runtime is then not first). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static size_t read_max;       /* 0: reads untouched */
static const char *fail_flag; /* NULL: writes untouched */
static const char *fail_suffix = ".part";
static int fail_errno = EIO;
static const char *block_flag; /* NULL: reads and syncs untouched */
static const char *block_suffix = ".part";
static const char *finish_flag; /* NULL: fchmod and ftruncate untouched */
static const char *blocked_path;
static const char *stats_path;
static atomic_llong n_capped;
static atomic_llong n_reads;
static atomic_llong n_failed;
static atomic_llong n_blocked;

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pread64)(int, void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_fchmod)(int, mode_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_unlinkat)(int, const char *, int);

/* Looked up on first use too: the sanitizer runtime or the loader may call in before
 * shim_init() has run. */
#define REAL(f) (resolve(), real_##f)

static void *next(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);

    if (p == NULL) {
        fprintf(stderr, "xfershim: no next %s\n", name);
        abort();
    }
    return p;
}

static void resolve(void)
{
    if (real_pwritev64 != NULL)
        return; /* the last one set: all are */
    real_read = next("read");
    real_readv = next("readv");
    real_recv = next("recv");
    real_recvfrom = next("recvfrom");
    real_recvmsg = next("recvmsg");
    real_pwrite = next("pwrite");
    real_pwrite64 = next("pwrite64");
    real_pwritev = next("pwritev");
    real_pread = next("pread");
    real_pread64 = next("pread64");
    real_fsync = next("fsync");
    real_fdatasync = next("fdatasync");
    real_fchmod = next("fchmod");
    real_ftruncate = next("ftruncate");
    real_unlinkat = next("unlinkat");
    real_pwritev64 = next("pwritev64");
}

static void write_stats(void)
{
    FILE *f;

    if (stats_path == NULL)
        return;
    f = fopen(stats_path, "w");
    if (f == NULL)
        return;
    fprintf(f, "capped=%lld reads=%lld failed=%lld blocked=%lld\n",
            (long long)atomic_load(&n_capped), (long long)atomic_load(&n_reads),
            (long long)atomic_load(&n_failed), (long long)atomic_load(&n_blocked));
    fclose(f);
}

__attribute__((constructor)) static void shim_init(void)
{
    const char *v;

    resolve();
    v = getenv("XFERSHIM_READ_MAX");
    if (v != NULL && atol(v) > 0)
        read_max = (size_t)atol(v);
    v = getenv("XFERSHIM_FAIL_FLAG");
    if (v != NULL && *v != '\0')
        fail_flag = v;
    v = getenv("XFERSHIM_FAIL_SUFFIX");
    if (v != NULL && *v != '\0')
        fail_suffix = v;
    v = getenv("XFERSHIM_FAIL_ERRNO");
    if (v != NULL && atoi(v) > 0)
        fail_errno = atoi(v);
    v = getenv("XFERSHIM_BLOCK_FLAG");
    if (v != NULL && *v != '\0')
        block_flag = v;
    v = getenv("XFERSHIM_FINISH_FLAG");
    if (v != NULL && *v != '\0')
        finish_flag = v;
    v = getenv("XFERSHIM_BLOCK_SUFFIX");
    if (v != NULL && *v != '\0')
        block_suffix = v;
    v = getenv("XFERSHIM_BLOCKED");
    if (v != NULL && *v != '\0')
        blocked_path = v;
    v = getenv("XFERSHIM_STATS");
    if (v != NULL && *v != '\0') {
        stats_path = v;
        atexit(write_stats);
    }
}

static int is_socket(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The length to ask the kernel for: len, or read_max on a socket. */
static size_t cap(int fd, size_t len)
{
    if (read_max == 0 || !is_socket(fd))
        return len;
    atomic_fetch_add(&n_reads, 1);
    if (len <= read_max)
        return len;
    atomic_fetch_add(&n_capped, 1);
    return read_max;
}

ssize_t read(int fd, void *buf, size_t len)
{
    return REAL(read)(fd, buf, cap(fd, len));
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    return REAL(recv)(fd, buf, cap(fd, len), flags);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *flen)
{
    return REAL(recvfrom)(fd, buf, cap(fd, len), flags, from, flen);
}

/* The vector cut down to its first want bytes, in copy (which has room for n entries). */
static int trim(const struct iovec *iov, int n, size_t want, struct iovec *copy)
{
    int k = 0;

    for (int i = 0; i < n && want > 0; i++) {
        copy[k] = iov[i];
        if (copy[k].iov_len > want)
            copy[k].iov_len = want;
        want -= copy[k].iov_len;
        k++;
    }
    return k;
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t t = 0;

    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    size_t total = iov_total(iov, n);
    size_t want = cap(fd, total);
    struct iovec copy[64];

    if (want == total || n > 64)
        return REAL(readv)(fd, iov, n);
    return REAL(readv)(fd, copy, trim(iov, n, want, copy));
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    size_t total = iov_total(msg->msg_iov, (int)msg->msg_iovlen);
    size_t want = cap(fd, total);
    struct iovec copy[64];
    struct iovec *saved = msg->msg_iov;
    size_t saved_len = msg->msg_iovlen;
    ssize_t r;

    if (want == total || msg->msg_iovlen > 64)
        return REAL(recvmsg)(fd, msg, flags);
    msg->msg_iov = copy;
    msg->msg_iovlen = (size_t)trim(saved, (int)saved_len, want, copy);
    r = REAL(recvmsg)(fd, msg, flags);
    msg->msg_iov = saved;
    msg->msg_iovlen = saved_len;
    return r;
}

/* Whether fd is open on a path that ends with suffix. */
static int path_ends(int fd, const char *suffix)
{
    char link[64];
    char path[PATH_MAX];
    size_t slen = strlen(suffix);
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    return (size_t)n >= slen && strcmp(path + n - slen, suffix) == 0;
}

/* Whether a write to fd is to fail now: the flag file exists and fd is a matching file. */
static int failing(int fd)
{
    if (fail_flag == NULL || access(fail_flag, F_OK) != 0 || !path_ends(fd, fail_suffix))
        return 0;
    atomic_fetch_add(&n_failed, 1);
    errno = fail_errno;
    return 1;
}

/* Holds the calling thread while flag exists, if the call is on a matching file. */
static void hold_while(const char *flag, int matches)
{
    const struct timespec tick = {0, 5 * 1000 * 1000};
    int counted = 0;

    if (flag == NULL || !matches)
        return;
    while (access(flag, F_OK) == 0) {
        /* Made anew by every call that waits, so a test that removes it learns of the next. */
        if (!counted && blocked_path != NULL) {
            int fd = open(blocked_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

            if (fd >= 0)
                close(fd);
        }
        if (!counted)
            atomic_fetch_add(&n_blocked, 1);
        counted = 1;
        nanosleep(&tick, NULL);
    }
}

static void maybe_block(int fd)
{
    hold_while(block_flag, block_flag != NULL && path_ends(fd, block_suffix));
}

static void maybe_hold_finish(int fd)
{
    hold_while(finish_flag, finish_flag != NULL && path_ends(fd, block_suffix));
}

int fchmod(int fd, mode_t mode)
{
    maybe_hold_finish(fd);
    return REAL(fchmod)(fd, mode);
}

int ftruncate(int fd, off_t len)
{
    maybe_hold_finish(fd);
    return REAL(ftruncate)(fd, len);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    size_t n = strlen(path);
    size_t k = strlen(block_suffix);

    hold_while(finish_flag, finish_flag != NULL && n >= k && strcmp(path + n - k, block_suffix) == 0);
    return REAL(unlinkat)(dirfd, path, flags);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
    maybe_block(fd);
    return REAL(pread)(fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t len, off_t off)
{
    maybe_block(fd);
    return REAL(pread64)(fd, buf, len, off);
}

int fsync(int fd)
{
    maybe_block(fd);
    return REAL(fsync)(fd);
}

int fdatasync(int fd)
{
    maybe_block(fd);
    return REAL(fdatasync)(fd);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (failing(fd))
        return -1;
    return REAL(pwrite)(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    if (failing(fd))
        return -1;
    return REAL(pwrite64)(fd, buf, len, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (failing(fd))
        return -1;
    return REAL(pwritev)(fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    if (failing(fd))
        return -1;
    return REAL(pwritev64)(fd, iov, n, off);
}
