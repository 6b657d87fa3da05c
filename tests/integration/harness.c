/* vasprintf, nftw, prctl: glibc extensions. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HARNESS_MAX_PROCS 64
#define HARNESS_MAX_ALLOCS 4096
#define HARNESS_MAX_READ (1024 * 1024)
#define HARNESS_PREFIX "xfer-itest-"
#define HARNESS_MAX_SLOW 100
#define HARNESS_MAX_WRAPPER_WORDS 32

struct harness_proc {
    pid_t pid;
    bool reaped;
};

static char harness_tmp[256];
static struct harness_proc harness_procs[HARNESS_MAX_PROCS];
static size_t harness_nprocs;
static void *harness_allocs[HARNESS_MAX_ALLOCS];
static size_t harness_nallocs;

/* Takes ownership of p: it is freed at teardown. Returns p. */
static void *harness_own(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    if (harness_nallocs == HARNESS_MAX_ALLOCS) {
        fprintf(stderr, "harness: too many allocations in one test\n");
        abort();
    }
    harness_allocs[harness_nallocs] = p;
    harness_nallocs++;
    return p;
}

static long long harness_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void harness_sleep_ms(int ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000;
    /* An early wake-up (EINTR) only makes the next poll come sooner. */
    (void)nanosleep(&ts, NULL);
}

static int harness_write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static struct harness_proc *harness_find_proc(pid_t pid)
{
    size_t i;

    for (i = 0; i < harness_nprocs; i++) {
        if (harness_procs[i].pid == pid)
            return &harness_procs[i];
    }
    return NULL;
}

static void harness_mark_reaped(pid_t pid)
{
    struct harness_proc *pr = harness_find_proc(pid);

    if (pr != NULL)
        pr->reaped = true;
}

static int harness_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    /* Keep going on a failure: removing the rest is still worth it. */
    if (type == FTW_DP)
        (void)rmdir(path);
    else
        (void)unlink(path);
    return 0;
}

/* Removes temp dirs left by test processes that no longer exist: a test killed by a Criterion
 * timeout never reaches its teardown. The owner's pid is part of the dir name. */
static void harness_remove_stale(void)
{
    DIR *d;
    struct dirent *e;

    d = opendir("/tmp");
    if (d == NULL)
        return;
    for (;;) {
        char path[512];
        char *end;
        long owner;

        e = readdir(d);
        if (e == NULL)
            break;
        if (strncmp(e->d_name, HARNESS_PREFIX, strlen(HARNESS_PREFIX)) != 0)
            continue;
        owner = strtol(e->d_name + strlen(HARNESS_PREFIX), &end, 10);
        if (owner <= 0 || *end != '-')
            continue;
        if (kill((pid_t)owner, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
        (void)nftw(path, harness_rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* best effort */
    }
    closedir(d);
}

int harness_slow(void)
{
    static int slow;

    if (slow == 0) {
        const char *v = getenv("XFER_TEST_SLOW");
        char *end;
        long n = 1;

        if (v != NULL && v[0] != '\0') {
            n = strtol(v, &end, 10);
            if (*end != '\0' || n < 1 || n > HARNESS_MAX_SLOW) {
                fprintf(stderr, "harness: XFER_TEST_SLOW must be 1..%d, not \"%s\"\n",
                        HARNESS_MAX_SLOW, v);
                abort();
            }
        }
        slow = (int)n;
    }
    return slow;
}

/* Criterion enforces a suite's .timeout from the runner process, before any test code runs, and
 * its --timeout option can only shorten it; so XFER_TEST_SLOW stretches it here, as each suite
 * starts. */
ReportHook(PRE_SUITE)(struct criterion_suite_set *set)
{
    if (set->suite.data != NULL && set->suite.data->timeout > 0)
        set->suite.data->timeout *= harness_slow();
}

void harness_setup(void)
{
    harness_nprocs = 0;
    harness_nallocs = 0;
    harness_remove_stale();
    snprintf(harness_tmp, sizeof(harness_tmp), "/tmp/" HARNESS_PREFIX "%ld-XXXXXX", (long)getpid());
    if (mkdtemp(harness_tmp) == NULL) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        abort();
    }
    /* A peer that vanishes must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Every xfer the test starts inherits it: receivers and senders share a
     * secret unless a test sets another one in a child's environment. */
    setenv("XFER_SECRET", HARNESS_SECRET, 1);
    /* For a wrapper's log names (see harness.h). */
    setenv("XFER_TEST_NAME",
           harness_strf("%s.%s", criterion_current_test->category, criterion_current_test->name),
           1);
}

/* XFER_TEST_WRAPPER, or NULL when it is unset or empty. */
static const char *harness_wrapper(void)
{
    const char *w = getenv("XFER_TEST_WRAPPER");

    return w != NULL && w[0] != '\0' ? w : NULL;
}

/* Under XFER_TEST_WRAPPER, asks every process still running to stop with SIGTERM and gives them
 * 5 s (stretched by XFER_TEST_SLOW) in all to exit, so the wrapper's exit-time checks (valgrind's
 * leak check) run: a receiver a test leaves running would otherwise only ever be SIGKILLed. */
static void harness_stop_gently(void)
{
    long long deadline = harness_now_ms() + HARNESS_MS(5000);
    size_t i;

    if (harness_wrapper() == NULL)
        return;
    for (i = 0; i < harness_nprocs; i++) {
        if (!harness_procs[i].reaped)
            (void)kill(harness_procs[i].pid, SIGTERM); /* ESRCH: it is exiting anyway */
    }
    for (i = 0; i < harness_nprocs; i++) {
        long long left = deadline - harness_now_ms();

        if (!harness_procs[i].reaped)
            (void)harness_wait(harness_procs[i].pid, left > 0 ? (int)left : 0); /* else SIGKILL */
    }
}

void harness_teardown(void)
{
    size_t i;
    int status;
    pid_t r;

    harness_stop_gently();
    for (i = 0; i < harness_nprocs; i++) {
        if (harness_procs[i].reaped)
            continue;
        /* By pid only: it is our child and not reaped, so the pid cannot have been reused. */
        if (kill(harness_procs[i].pid, SIGKILL) < 0 && errno != ESRCH)
            fprintf(stderr, "harness: kill %d: %s\n", (int)harness_procs[i].pid, strerror(errno));
        do {
            r = waitpid(harness_procs[i].pid, &status, 0);
        } while (r < 0 && errno == EINTR);
        harness_procs[i].reaped = true;
    }
    harness_nprocs = 0;

    if (harness_tmp[0] != '\0') {
        if (getenv("XFER_TEST_KEEP") != NULL) {
            fprintf(stderr, "harness: kept %s\n", harness_tmp);
        } else {
            if (nftw(harness_tmp, harness_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
                fprintf(stderr, "harness: cannot remove %s\n", harness_tmp);
        }
        harness_tmp[0] = '\0';
    }

    for (i = 0; i < harness_nallocs; i++)
        free(harness_allocs[i]);
    harness_nallocs = 0;
}

const char *harness_dir(void)
{
    return harness_tmp;
}

static char *harness_vstrf(const char *fmt, va_list ap)
{
    char *s = NULL;

    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    return harness_own(s);
}

char *harness_strf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = harness_vstrf(fmt, ap);
    va_end(ap);
    return s;
}

char *harness_pathf(const char *fmt, ...)
{
    va_list ap;
    char *rel;

    va_start(ap, fmt);
    rel = harness_vstrf(fmt, ap);
    va_end(ap);
    return harness_strf("%s/%s", harness_tmp, rel);
}

int harness_mkdirs(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    size_t i;

    if (len == 0 || len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        if (i < len)
            buf[i] = '/';
    }
    return 0;
}

int harness_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    int fd;
    int r;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
        r = -errno;
        goto out;
    }
    r = ntohs(sa.sin_port);
out:
    close(fd);
    return r;
}

bool harness_ipv6_available(void)
{
    struct sockaddr_in6 sa;
    int fd;
    bool ok;

    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* entry, or under XFER_TEST_SLOW an XFER_IDLE_TIMEOUT=S entry stretched like the test's own
 * deadlines: a liveness timeout of a second or two fires spuriously once valgrind slows the
 * peer down. Owned by the harness, or borrowed. */
static char *harness_slow_env(const char *entry)
{
    static const char key[] = "XFER_IDLE_TIMEOUT=";

    if (harness_slow() == 1 || strncmp(entry, key, strlen(key)) != 0)
        return (char *)entry;
    return harness_strf("%s%g", key, strtod(entry + strlen(key), NULL) * harness_slow());
}

/* Builds environ plus extra "K=V" entries, an entry in extra replacing one with the same key.
 * The array is owned by the harness; its strings are borrowed. */
static char **harness_build_env(const char *const extra[])
{
    size_t n = 0;
    size_t nextra = 0;
    size_t i;
    size_t j;
    size_t k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    while (extra != NULL && extra[nextra] != NULL)
        nextra++;
    env = harness_own(calloc(n + nextra + 1, sizeof(*env)));
    for (i = 0; i < n; i++) {
        bool replaced = false;

        for (j = 0; j < nextra; j++) {
            const char *eq = strchr(extra[j], '=');
            size_t keylen = eq != NULL ? (size_t)(eq - extra[j]) : strlen(extra[j]);

            if (strncmp(environ[i], extra[j], keylen) == 0 && environ[i][keylen] == '=') {
                replaced = true;
                break;
            }
        }
        if (!replaced) {
            env[k] = environ[i];
            k++;
        }
    }
    for (j = 0; j < nextra; j++) {
        env[k] = harness_slow_env(extra[j]);
        k++;
    }
    env[k] = NULL;
    return env;
}

/* Finds a program as execvp() would, in the parent: the child must not allocate. Returns a path
 * owned by the harness, or NULL. */
static const char *harness_which(const char *prog)
{
    const char *path = getenv("PATH");
    const char *p;

    if (strchr(prog, '/') != NULL)
        return prog;
    for (p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0';) {
        size_t len = strcspn(p, ":");
        char *cand = harness_strf("%.*s/%s", (int)len, len > 0 ? p : ".", prog);

        if (access(cand, X_OK) == 0)
            return cand;
        p += len;
        if (*p == ':')
            p++;
    }
    return NULL;
}

/* argv, or XFER_TEST_WRAPPER's words followed by argv when argv runs XFER_BIN. Returns an array
 * owned by the harness, or NULL if the wrapper is unusable. */
static const char *const *harness_wrap(const char *const argv[])
{
    const char *wrapper = harness_wrapper();
    const char **out;
    char *words;
    char *save = NULL;
    char *w;
    size_t argc = 0;
    size_t n = 0;

    if (wrapper == NULL || strcmp(argv[0], XFER_BIN) != 0)
        return argv;
    while (argv[argc] != NULL)
        argc++;
    out = harness_own(calloc(HARNESS_MAX_WRAPPER_WORDS + argc + 1, sizeof(*out)));
    words = harness_strf("%s", wrapper);
    for (w = strtok_r(words, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (n == HARNESS_MAX_WRAPPER_WORDS)
            return NULL;
        out[n++] = w;
    }
    if (n == 0)
        return argv;
    out[0] = harness_which(out[0]);
    if (out[0] == NULL)
        return NULL;
    memcpy(out + n, argv, (argc + 1) * sizeof(*out));
    return out;
}

pid_t harness_spawn(const char *const argv[], const char *const env[], const char *cwd,
                    const char *name)
{
    char **envp;
    char *out_path;
    char *err_path;
    pid_t parent = getpid();
    pid_t pid;
    int out_fd;
    int err_fd;
    int null_fd;

    if (harness_nprocs == HARNESS_MAX_PROCS)
        return -EMFILE;
    argv = harness_wrap(argv);
    if (argv == NULL)
        return -ENOEXEC;
    envp = harness_build_env(env);
    out_path = harness_pathf("%s.out", name);
    err_path = harness_pathf("%s.err", name);
    /* Opened before fork so the child only calls async-signal-safe functions. */
    out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0)
        return -errno;
    err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) {
        int r = -errno;

        close(out_fd);
        return r;
    }
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        int r = -errno;

        close(out_fd);
        close(err_fd);
        return r;
    }

    pid = fork();
    if (pid < 0) {
        int r = -errno;

        close(out_fd);
        close(err_fd);
        close(null_fd);
        return r;
    }
    if (pid == 0) {
        /* Dies with the test process, even if that is killed by a Criterion timeout. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(127);
        if (cwd != NULL && chdir(cwd) < 0)
            _exit(127);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    close(out_fd);
    close(err_fd);
    close(null_fd);
    harness_procs[harness_nprocs].pid = pid;
    harness_procs[harness_nprocs].reaped = false;
    harness_nprocs++;
    return pid;
}

static int harness_decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -EINVAL;
}

int harness_wait(pid_t pid, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    int status;
    pid_t r;

    for (;;) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            harness_mark_reaped(pid);
            return harness_decode_status(status);
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        if (harness_now_ms() >= deadline)
            return -ETIMEDOUT;
        harness_sleep_ms(HARNESS_POLL_MS);
    }
}

bool harness_alive(pid_t pid)
{
    struct harness_proc *pr = harness_find_proc(pid);
    siginfo_t info;

    if (pr != NULL && pr->reaped)
        return false;
    /* WNOWAIT: look without reaping, so the exit code can still be collected. */
    memset(&info, 0, sizeof(info));
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
        return false;
    return info.si_pid == 0;
}

char *harness_describe(pid_t pid)
{
    struct harness_proc *pr = harness_find_proc(pid);
    int status;
    pid_t r;

    if (pr == NULL)
        return harness_strf("pid %d is not ours", (int)pid);
    if (pr->reaped)
        return harness_strf("%s", "already reaped");
    r = waitpid(pid, &status, WNOHANG);
    if (r == 0)
        return harness_strf("%s", "running");
    if (r < 0)
        return harness_strf("unknown (%s)", strerror(errno));
    pr->reaped = true;
    if (WIFSIGNALED(status))
        return harness_strf("killed by signal %d (%s)", WTERMSIG(status),
                            strsignal(WTERMSIG(status)));
    return harness_strf("exited with %d", WEXITSTATUS(status));
}

char *harness_report(pid_t pid, const char *name)
{
    return harness_strf("%s (%s) stderr:\n%s", name, harness_describe(pid), harness_log(name));
}

int harness_kill(pid_t pid, int sig)
{
    struct harness_proc *pr = harness_find_proc(pid);
    int r;

    if (pr == NULL || pr->reaped)
        return -ESRCH; /* never signal a pid we do not own */
    if (kill(pid, sig) < 0)
        return -errno;
    if (sig == SIGKILL) {
        r = harness_wait(pid, HARNESS_DEADLINE_MS);
        if (r < 0)
            return r;
    }
    return 0;
}

char *harness_log(const char *name)
{
    char *s = harness_read_file(harness_pathf("%s.err", name));

    if (s == NULL)
        return harness_strf("%s", "");
    return s;
}

/* Connects a new socket to HOST:port. Returns the fd or -errno. */
static int harness_connect(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int family;
    int fd;
    int r;

    memset(&ss, 0, sizeof(ss));
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

        family = AF_INET6;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
            return -EINVAL;
        sslen = sizeof(*sa);
    } else {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

        family = AF_INET;
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
            return -EINVAL;
        sslen = sizeof(*sa);
    }
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static int harness_try_connect(const char *host, int port)
{
    int fd = harness_connect(host, port);

    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

int harness_send_raw(const char *host, int port, const void *data, size_t len, int linger_ms)
{
    long long deadline = harness_now_ms() + linger_ms;
    char buf[4096];
    int fd;

    fd = harness_connect(host, port);
    if (fd < 0)
        return fd;
    /* An error here means the receiver closed on us, which is an acceptable answer. */
    if (harness_write_all(fd, data, len) == 0) {
        for (;;) {
            struct pollfd pfd = {fd, POLLIN, 0};
            long long left = deadline - harness_now_ms();
            ssize_t n;

            if (left <= 0)
                break;
            if (poll(&pfd, 1, (int)(left < HARNESS_POLL_MS ? left : HARNESS_POLL_MS)) < 0 &&
                errno != EINTR)
                break;
            if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
                continue;
            n = read(fd, buf, sizeof(buf));
            if (n <= 0 && !(n < 0 && errno == EINTR))
                break;
        }
    }
    close(fd);
    return 0;
}

int harness_wait_port(const char *host, int port, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    int r;

    for (;;) {
        r = harness_try_connect(host, port);
        if (r == 0)
            return 0;
        if (r == -EINVAL)
            return r;
        if (harness_now_ms() >= deadline)
            return -ETIMEDOUT;
        harness_sleep_ms(HARNESS_POLL_MS);
    }
}

int harness_wait_until(bool (*pred)(void *arg), void *arg, pid_t watch, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;

    for (;;) {
        if (pred(arg))
            return 0;
        if (watch > 0 && !harness_alive(watch))
            return pred(arg) ? 0 : -ECHILD;
        if (harness_now_ms() >= deadline)
            return -ETIMEDOUT;
        harness_sleep_ms(HARNESS_POLL_MS);
    }
}

struct harness_dir_bytes_arg {
    const char *dir;
    long long min_bytes;
};

static bool harness_dir_bytes_pred(void *arg)
{
    struct harness_dir_bytes_arg *a = arg;

    return harness_dir_bytes(a->dir) >= a->min_bytes;
}

int harness_wait_dir_bytes(const char *dir, long long min_bytes, pid_t watch, int timeout_ms)
{
    struct harness_dir_bytes_arg a = {dir, min_bytes};

    return harness_wait_until(harness_dir_bytes_pred, &a, watch, timeout_ms);
}

static bool harness_file_pred(void *arg)
{
    return access((const char *)arg, F_OK) == 0;
}

int harness_wait_file(const char *path, pid_t watch, int timeout_ms)
{
    return harness_wait_until(harness_file_pred, (void *)path, watch, timeout_ms);
}

struct harness_text_arg {
    const char *path;
    const char *text;
};

static bool harness_text_pred(void *arg)
{
    struct harness_text_arg *a = arg;
    char *s = harness_read_file(a->path);

    return s != NULL && strstr(s, a->text) != NULL;
}

int harness_wait_file_text(const char *path, const char *text, pid_t watch, int timeout_ms)
{
    struct harness_text_arg a = {path, text};

    return harness_wait_until(harness_text_pred, &a, watch, timeout_ms);
}

/* splitmix64: a fixed, seedable stream, so a failing input can be regenerated. */
static uint64_t harness_next(uint64_t *state)
{
    uint64_t z;

    *state += 0x9e3779b97f4a7c15ULL;
    z = *state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int harness_make_file(const char *path, long long size, uint64_t seed)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *buf;
    uint64_t state = seed;
    long long left = size;
    int fd;
    int r = 0;

    buf = malloc(CHUNK);
    if (buf == NULL)
        return -ENOMEM;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    while (left > 0) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        size_t i;

        for (i = 0; i < n; i += 8) {
            uint64_t v = harness_next(&state);

            memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
        }
        r = harness_write_all(fd, buf, n);
        if (r < 0)
            break;
        left -= (long long)n;
    }
    if (close(fd) < 0 && r == 0)
        r = -errno;
out:
    free(buf);
    return r;
}

static ssize_t harness_read_full(int fd, unsigned char *p, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int harness_cmp_files(const char *a, const char *b)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *ba = NULL;
    unsigned char *bb = NULL;
    int fa = -1;
    int fb = -1;
    int r;

    fa = open(a, O_RDONLY | O_CLOEXEC);
    if (fa < 0) {
        r = -errno;
        goto out;
    }
    fb = open(b, O_RDONLY | O_CLOEXEC);
    if (fb < 0) {
        r = -errno;
        goto out;
    }
    ba = malloc(CHUNK);
    bb = malloc(CHUNK);
    if (ba == NULL || bb == NULL) {
        r = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t na = harness_read_full(fa, ba, CHUNK);
        ssize_t nb = harness_read_full(fb, bb, CHUNK);

        if (na < 0 || nb < 0) {
            r = na < 0 ? (int)na : (int)nb;
            goto out;
        }
        if (na != nb || memcmp(ba, bb, (size_t)na) != 0) {
            r = 1;
            goto out;
        }
        if (na == 0) {
            r = 0;
            goto out;
        }
    }
out:
    free(ba);
    free(bb);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return r;
}

char *harness_read_file(const char *path)
{
    unsigned char *buf;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    buf = malloc(HARNESS_MAX_READ + 1);
    if (buf == NULL) {
        close(fd);
        return NULL;
    }
    n = harness_read_full(fd, buf, HARNESS_MAX_READ);
    close(fd);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return harness_own(buf);
}

int harness_write_file(const char *path, const void *data, size_t len)
{
    int fd;
    int r;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    r = harness_write_all(fd, data, len);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}

long long harness_dir_bytes(const char *dir)
{
    DIR *d;
    struct dirent *e;
    long long total = 0;

    d = opendir(dir);
    if (d == NULL)
        return 0;
    for (;;) {
        struct stat st;
        char path[4096];

        e = readdir(d);
        if (e == NULL)
            break;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        /* The file may be renamed or removed between readdir and stat; it then counts 0. */
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            total += harness_dir_bytes(path);
        } else if (S_ISREG(st.st_mode)) {
            long long allocated = (long long)st.st_blocks * 512;

            total += allocated < (long long)st.st_size ? allocated : (long long)st.st_size;
        }
    }
    closedir(d);
    return total;
}

static int harness_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *harness_ls(const char *dir)
{
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t len = 0;
    size_t i;
    char *out;

    d = opendir(dir);
    if (d == NULL)
        return NULL;
    for (;;) {
        e = readdir(d);
        if (e == NULL)
            break;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            char **grown = realloc(names, ncap * sizeof(*names));

            if (grown == NULL) {
                free(names);
                closedir(d);
                return NULL;
            }
            names = grown;
            cap = ncap;
        }
        names[n] = harness_strf("%s", e->d_name);
        len += strlen(names[n]) + 1;
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), harness_cmp_names);
    out = harness_own(malloc(len + 1));
    out[0] = '\0';
    len = 0;
    for (i = 0; i < n; i++) {
        size_t l = strlen(names[i]);

        memcpy(out + len, names[i], l);
        out[len + l] = '\n';
        len += l + 1;
    }
    out[len] = '\0';
    free(names);
    return out;
}

struct harness_ls_arg {
    const char *dir;
    const char *expected;
};

static bool harness_ls_pred(void *arg)
{
    struct harness_ls_arg *a = arg;
    char *ls = harness_ls(a->dir);

    return ls != NULL && strcmp(ls, a->expected) == 0;
}

int harness_wait_ls(const char *dir, const char *expected, int timeout_ms)
{
    struct harness_ls_arg a = {dir, expected};

    return harness_wait_until(harness_ls_pred, &a, 0, timeout_ms);
}

char *harness_find_one(const char *dir, const char *suffix)
{
    DIR *d;
    struct dirent *e;
    char *found = NULL;
    size_t slen = strlen(suffix);
    int count = 0;

    d = opendir(dir);
    if (d == NULL)
        return NULL;
    for (;;) {
        struct stat st;
        char *path;
        size_t nlen;

        e = readdir(d);
        if (e == NULL)
            break;
        nlen = strlen(e->d_name);
        if (nlen < slen || strcmp(e->d_name + nlen - slen, suffix) != 0)
            continue;
        path = harness_strf("%s/%s", dir, e->d_name);
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        found = path;
        count++;
    }
    closedir(d);
    return count == 1 ? found : NULL;
}

pid_t harness_start_recv(int port, const char *dir, const char *const extra[],
                         const char *const env[], const char *name)
{
    const char *argv[32];
    size_t n = 0;
    pid_t pid;
    int r;

    argv[n++] = XFER_BIN;
    argv[n++] = "recv";
    argv[n++] = "--port";
    argv[n++] = harness_strf("%d", port);
    argv[n++] = "--dir";
    argv[n++] = dir;
    while (extra != NULL && *extra != NULL) {
        if (n == sizeof(argv) / sizeof(argv[0]) - 1)
            return -E2BIG;
        argv[n++] = *extra;
        extra++;
    }
    argv[n] = NULL;
    pid = harness_spawn(argv, env, NULL, name);
    if (pid < 0)
        return pid;
    /* The receiver listens on 0.0.0.0 and ::, so IPv4 loopback is always one of them. */
    {
        long long deadline = harness_now_ms() + HARNESS_DEADLINE_MS;

        for (;;) {
            r = harness_wait_port("127.0.0.1", port, HARNESS_POLL_MS * 5);
            if (r == 0)
                return pid;
            if (!harness_alive(pid))
                return -ECHILD;
            if (harness_now_ms() >= deadline)
                return -ETIMEDOUT;
        }
    }
}

pid_t harness_start_send(const char *const args[], const char *const env[], const char *name)
{
    const char *argv[64];
    size_t n = 0;

    argv[n++] = XFER_BIN;
    argv[n++] = "send";
    while (args != NULL && *args != NULL) {
        if (n == sizeof(argv) / sizeof(argv[0]) - 1)
            return -E2BIG;
        argv[n++] = *args;
        args++;
    }
    argv[n] = NULL;
    return harness_spawn(argv, env, NULL, name);
}

int harness_run_send(const char *const args[], const char *const env[], const char *name,
                     int timeout_ms)
{
    pid_t pid = harness_start_send(args, env, name);

    if (pid < 0)
        return pid;
    return harness_wait(pid, timeout_ms);
}

/* Reads a port number from path. The file may be mid-write, so a value counts only once two
 * reads a poll apart agree. */
static int harness_read_port_file(const char *path)
{
    char *a;
    char *b;
    char *end;
    long v;

    a = harness_read_file(path);
    if (a == NULL || a[0] == '\0')
        return -EAGAIN;
    harness_sleep_ms(HARNESS_POLL_MS);
    b = harness_read_file(path);
    if (b == NULL || strcmp(a, b) != 0)
        return -EAGAIN;
    errno = 0;
    v = strtol(a, &end, 10);
    if (errno != 0 || end == a || v <= 0 || v > 65535)
        return -EAGAIN;
    while (*end == '\n' || *end == '\r' || *end == ' ')
        end++;
    if (*end != '\0')
        return -EAGAIN;
    return (int)v;
}

int harness_start_proxy(struct harness_proxy *p, int target_port, const char *const fault[],
                        const char *name)
{
    const char *argv[32];
    char *port_file = harness_pathf("%s.port", name);
    long long deadline;
    size_t n = 0;

    p->pid = -1;
    p->port = -1;
    p->stats_path = harness_pathf("%s.stats", name);
    argv[n++] = FAULTPROXY_BIN;
    argv[n++] = "--target";
    argv[n++] = harness_strf("127.0.0.1:%d", target_port);
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    argv[n++] = "--stats";
    argv[n++] = p->stats_path;
    while (fault != NULL && *fault != NULL) {
        if (n == sizeof(argv) / sizeof(argv[0]) - 1)
            return -E2BIG;
        argv[n++] = *fault;
        fault++;
    }
    argv[n] = NULL;
    p->pid = harness_spawn(argv, NULL, NULL, name);
    if (p->pid < 0)
        return p->pid;
    /* No probe connection: it would count in the proxy's stats and positions. */
    deadline = harness_now_ms() + HARNESS_DEADLINE_MS;
    for (;;) {
        int port = harness_read_port_file(port_file);

        if (port > 0) {
            p->port = port;
            return 0;
        }
        if (!harness_alive(p->pid))
            return -ECHILD;
        if (harness_now_ms() >= deadline)
            return -ETIMEDOUT;
        harness_sleep_ms(HARNESS_POLL_MS);
    }
}

int harness_stop_proxy(struct harness_proxy *p, struct harness_proxy_stats *s)
{
    int r;

    if (p->pid <= 0)
        return -ESRCH;
    if (harness_alive(p->pid)) {
        r = harness_kill(p->pid, SIGTERM);
        if (r < 0)
            return r;
    }
    r = harness_wait(p->pid, HARNESS_DEADLINE_MS);
    if (r < 0)
        return r;
    p->pid = -1;
    if (s == NULL)
        return 0;
    return harness_read_proxy_stats(p->stats_path, s);
}

int harness_read_proxy_stats(const char *path, struct harness_proxy_stats *s)
{
    char *text;
    int n;

    memset(s, 0, sizeof(*s));
    text = harness_read_file(path);
    if (text == NULL)
        return -ENOENT;
    n = sscanf(text, "connections=%lld up=%lld down=%lld cuts=%lld flips=%lld stalls=%lld",
               &s->connections, &s->up, &s->down, &s->cuts, &s->flips, &s->stalls);
    if (n != 6)
        return -EINVAL;
    return 0;
}

pid_t harness_must_recv(int *port, const char *dir, const char *const extra[],
                        const char *const env[], const char *name)
{
    pid_t pid;

    cr_assert_eq(harness_mkdirs(dir), 0, "cannot create %s", dir);
    *port = harness_free_port();
    cr_assert_gt(*port, 0, "no free port: %s", strerror(-*port));
    pid = harness_start_recv(*port, dir, extra, env, name);
    cr_assert_gt(pid, 0, "receiver %s did not start (%s); stderr:\n%s", name, strerror(-pid),
                 harness_log(name));
    return pid;
}

char *harness_must_src(const char *rel, long long size, uint64_t seed)
{
    char *path = harness_pathf("%s", rel);
    char *slash = strrchr(path, '/');
    char *parent = harness_strf("%.*s", (int)(slash - path), path);
    int r;

    r = harness_mkdirs(parent);
    cr_assert_eq(r, 0, "cannot create %s: %s", parent, strerror(-r));
    r = harness_make_file(path, size, seed);
    cr_assert_eq(r, 0, "cannot write %s: %s", path, strerror(-r));
    return path;
}

void harness_must_ls(const char *dir, const char *expected)
{
    int r = harness_wait_ls(dir, expected, HARNESS_CLEANUP_MS);
    char *ls;

    if (r == 0)
        return;
    ls = harness_ls(dir);
    if (ls != NULL && strstr(ls, ".xfer\n") != NULL) {
        char *inner = harness_ls(harness_strf("%s/.xfer", dir));

        cr_assert_fail("`ls -A %s` is\n%s(.xfer holds:\n%s)\nwant\n%s", dir, ls,
                       inner != NULL ? inner : "?\n", expected);
    }
    cr_assert_fail("`ls -A %s` is\n%swant\n%s", dir, ls != NULL ? ls : "(cannot open)\n", expected);
}

void harness_must_slow_transfer(struct harness_slow *r, const char *name, long long size,
                                uint64_t seed, long long min_partial,
                                const char *const send_extra[], const char *const env[])
{
    const char *args[16];
    size_t n = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    r->dir = harness_pathf("dst");
    r->xfer_dir = harness_strf("%s/.xfer", r->dir);
    r->dst = harness_strf("%s/%s", r->dir, name);
    r->src = harness_must_src(harness_strf("src/%s", name), size, seed);
    r->recv = harness_must_recv(&r->recv_port, r->dir, NULL, env, "recv");
    rc = harness_start_proxy(
        &r->proxy, r->recv_port,
        (const char *[]){"--throttle", harness_strf("%lld", HARNESS_THROTTLE_BYTES_PER_SEC), NULL},
        "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start (%s); stderr:\n%s", strerror(-rc),
                 harness_log("proxy"));
    while (send_extra != NULL && *send_extra != NULL && n < 13)
        args[n++] = *send_extra++;
    args[n++] = r->src;
    args[n++] = harness_strf("127.0.0.1:%d", r->proxy.port);
    args[n] = NULL;
    r->send = harness_start_send(args, env, "send1");
    cr_assert_gt(r->send, 0, "cannot start sender: %s", strerror(-r->send));
    rc = harness_wait_dir_bytes(r->xfer_dir, min_partial, r->send, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0,
                 "partial never reached %lld bytes (%s; %lld now); the sender may have finished "
                 "too early (is --throttle working?); sender stderr:\n%s\nreceiver stderr:\n%s",
                 min_partial, strerror(-rc), harness_dir_bytes(r->xfer_dir), harness_log("send1"),
                 harness_report(r->recv, "recv"));
}
