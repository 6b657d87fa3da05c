/* chaos: the seeded chaos soak. Many real transfers of random sizes (empty to 320 MiB)
 * run one after the other from `xfer send` through tests/tools/faultproxy to one
 * long-lived `xfer recv`, while faults land at random moments: connection cuts, stalls
 * shorter and longer than the liveness timeout, bit flips either way, kill -9 and SIGTERM
 * of the sender (then it is run again) and of the receiver (then it is restarted), and a
 * full disk under the receiver (a ballast file filling its tmpfs, freed a little later).
 *
 *   tests/chaos/run --seed N --minutes M [--bin PATH]       (the wrapper; builds if needed)
 *   chaos --seed N --minutes M --bin XFER --proxy FAULTPROXY [--rss-limit-mib N]
 *   chaos --seed N --plan K        (prints the plan of the first K transfers; runs nothing)
 *
 * It starts transfers for M minutes (a fraction is fine), finishes the last one, and
 * prints as its last line
 *   chaos: F faults, T transfers verified, W wrong files, L lost confirmed bytes
 * F counts faults that took effect (a cut that found no connection does not count).
 * Exit status: 0 when every check held; 1 on any failure (then W or L, or a "chaos: FAIL:"
 * line above the summary, says which); 2 on bad arguments; 130 when interrupted.
 *
 * The seed fixes the run's plan: the sequence of file sizes and contents, and for each
 * file its faults, their kinds, parameters and delays. What a fault hits still depends on
 * timing (how far the transfer got in those milliseconds), so a rerun repeats the plan,
 * not every byte of the schedule.
 *
 * Checks:
 * - Every transfer ends with the sender's exit 0 and D/NAME byte-identical to the source
 *   (else it counts as a wrong file), or with an acceptable refusal, after which the same
 *   sender command is run again, as a user would. Acceptable: exit 4 "not enough space"
 *   for a file larger than the tmpfs (the planned end of such a transfer, which leaves no
 *   D/NAME) or while the ballast fills the disk (run again once it is freed); exit 4
 *   "busy" for a rerun while the receiver still holds the killed sender's connection;
 *   exit 7 (or 4, "protocol version") after a bit flipped in the handshake, which then
 *   looks like a wrong secret and is final by design; 130 or death by SIGTERM (one that
 *   came before xfer set its handler, or a second one) after our SIGTERM; death by our
 *   SIGKILL. Anything else fails the soak.
 * - No confirmed byte is asked for again. The confirmed offset is read from the
 *   receiver's journal, D/.xfer/HEX.journal (format in xfer-protocol(7); read here
 *   independently of src/journal.c): every 50 ms while the receiver runs, and after it
 *   was killed. The receiver prints the offset it resumes a file at ("resuming NAME at N"
 *   or "receiving NAME", offset 0); every such N must be at least the highest confirmed
 *   offset seen for NAME before the line was read. The shortfall adds to L.
 * - Once a transfer has settled, D/.xfer holds no partial of it (no disk space leaks).
 * - The receiver's VmRSS stays below --rss-limit-mib (default 64), read every 250 ms.
 * - The receiver exits only when the soak kills it; after SIGTERM it exits 0 within 20 s.
 * - Every wait has a deadline; a transfer that does not settle within its own (30 s, plus
 *   0.2 s a MiB and 20 s a fault) fails the soak.
 *
 * The receiver's --dir is a 448 MiB tmpfs mounted in a mount namespace of the soak's own
 * (so it cannot outlive the soak); without root it is a plain directory, and disk-full
 * faults and oversized files are skipped (the output says so). Everything else lives in a
 * directory under $TMPDIR (default /tmp), removed at the end; on failure the logs in it
 * are kept and their path printed (also with CHAOS_KEEP_LOGS set). Children get
 * PR_SET_PDEATHSIG and their own process group; they are killed by pid on every way out,
 * SIGINT and SIGTERM of the soak included. Only 127.0.0.1 is used. Both sides run with
 * XFER_IDLE_TIMEOUT=1.5, so a long stall (2.25 to 4.5 s) costs seconds, not 15. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "xfer/name.h"

#define MIB (UINT64_C(1) << 20)
#define TICK_MS 10
#define JOURNAL_POLL_MS 50
#define RSS_POLL_MS 250
#define IDLE_TIMEOUT "1.5" /* XFER_IDLE_TIMEOUT for both sides: stalls cost seconds, not 15 */
#define IDLE_MS 1500
#define RETRY_FOR "120" /* the sender's --retry-for: longer than any outage we cause */
#define TMPFS_MIB 448
#define MAX_SIZE (320 * MIB) /* largest file that fits the tmpfs */
#define MAX_FAULTS 4
#define MAX_RUNS 40 /* sender runs for one transfer */
#define START_MS 10000
#define TERM_WAIT_MS 20000
#define KILL_WAIT_MS 5000
#define JOURNAL_MAX (64 * MIB)
#define TMP_MAX_LEN 200 /* of $TMPDIR */

enum fault_kind {
    FK_CUT,
    FK_STALL,
    FK_FLIP_UP,
    FK_FLIP_DOWN,
    FK_KILL_SENDER,
    FK_TERM_SENDER,
    FK_KILL_RECV,
    FK_TERM_RECV,
    FK_DISK_FULL,
    FK_COUNT
};

static const struct {
    const char *name;
    unsigned weight;
} kinds[FK_COUNT] = {
    [FK_CUT] = {"cut", 18},
    [FK_STALL] = {"stall", 10},
    [FK_FLIP_UP] = {"flip-up", 8},
    [FK_FLIP_DOWN] = {"flip-down", 6},
    [FK_KILL_SENDER] = {"kill-sender", 12},
    [FK_TERM_SENDER] = {"term-sender", 8},
    [FK_KILL_RECV] = {"kill-recv", 12},
    [FK_TERM_RECV] = {"term-recv", 8},
    [FK_DISK_FULL] = {"disk-full", 10},
};

struct fault {
    enum fault_kind kind;
    uint64_t delay_ms; /* after the previous fault (or the transfer's start) */
    uint64_t param;    /* stall: ms; disk-full: hold ms */
    uint64_t leave;    /* disk-full: bytes left free */
};

struct transfer {
    uint64_t idx;
    char name[64];
    char src[PATH_MAX];
    char dst[PATH_MAX];
    char journal[PATH_MAX];
    uint64_t size;
    uint64_t data_seed;
    int oversize; /* larger than the tmpfs: must be refused */
    struct fault faults[MAX_FAULTS];
    int nfaults;
    int next; /* next fault to inject */
    char done_faults[256];
    int nhit;
    uint64_t start_ms;
    uint64_t due_ms;
    uint64_t deadline_ms;
    uint64_t hwm; /* highest confirmed offset seen in the journal */
    uint64_t journal_ms;
    int runs;
    off_t log_from; /* where this run's lines start in send.log */
    /* what this sender run went through; decides which of its exits are acceptable */
    int killed;
    int termed;
    int flipped;
    int disk_full;
};

struct tail {
    char path[PATH_MAX];
    off_t off;
    char buf[8192];
    size_t len;
};

static struct soak {
    uint64_t seed;
    double minutes;
    const char *xfer;
    const char *proxy_bin;
    uint64_t rss_limit;
    uint64_t plan;              /* --plan K: print K transfers' plan and exit */
    uint64_t rng;               /* the plan's stream: consumed only by plan_transfer() */
    char tmp[TMP_MAX_LEN + 16]; /* short, so no path made from it is ever cut off */
    char dir[TMP_MAX_LEN + 32];
    char logs[TMP_MAX_LEN + 32];
    char ballast[TMP_MAX_LEN + 64];
    int mounted;
    pid_t recv_pid;
    pid_t send_pid;
    pid_t proxy_pid;
    int recv_port;
    int proxy_port;
    int proxy_fd;
    struct tail recv_log;
    struct tail proxy_log;
    uint64_t rss_max;
    uint64_t rss_ms;
    int ballast_on;
    uint64_t ballast_until;
    struct transfer *cur;
    uint64_t hits[FK_COUNT];
    uint64_t verified;
    uint64_t refused;
    uint64_t reruns;
    uint64_t wrong;
    uint64_t lost;
    uint64_t resumes;       /* resume offsets checked */
    uint64_t resumes_above; /* of which against a confirmed offset above 0 */
    uint64_t hwm_max;
    uint64_t leftovers; /* files left in D/.xfer after a transfer settled */
    int failed;
    struct {
        const char *why;
        uint64_t n;
        char example[200];
    } refusals[8]; /* refusals accepted, by reason, for the closing notes */
    int nrefusals;
} S = {.recv_pid = -1, .send_pid = -1, .proxy_pid = -1, .proxy_fd = -1, .rss_limit = 64};

static volatile sig_atomic_t stop_signal;

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...)
{
    va_list ap;

    fputs("chaos: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* A failed check: reported at once; the soak stops after the current step. */
static void fail(const char *fmt, ...)
{
    va_list ap;

    fputs("chaos: FAIL: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    S.failed = 1;
}

static void tick(void)
{
    (void)poll(NULL, 0, TICK_MS); /* EINTR (our signal) just ends the tick early */
}

static int stopping(void)
{
    return stop_signal != 0 || S.failed;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]; the modulo bias is irrelevant here. */
static uint64_t rnd(uint64_t lo, uint64_t hi)
{
    return lo + splitmix64(&S.rng) % (hi - lo + 1);
}

static void size_text(uint64_t n, char *out, size_t len)
{
    if (n >= MIB)
        snprintf(out, len, "%.1f MiB", (double)n / (double)MIB);
    else
        snprintf(out, len, "%" PRIu64 " B", n);
}

/* ---- processes ------------------------------------------------------------------- */

/* Starts argv[0] with stdin from in_fd (-1: /dev/null) and stdout and stderr appended to
 * out. The child gets its own process group (a terminal's ^C reaches only the soak,
 * which then cleans up) and dies with the soak. Returns the pid or -errno. */
static pid_t spawn(char *const argv[], int in_fd, const char *out)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        return -errno;
    if (pid > 0)
        return pid;
    (void)setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    if (in_fd < 0)
        in_fd = open("/dev/null", O_RDONLY);
    fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in_fd < 0 || fd < 0 || dup2(in_fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(127);
    if (in_fd > 2)
        close(in_fd);
    if (fd > 2)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

/* Waits up to ms for pid to end. Returns 0 with *status, or -ETIMEDOUT. */
static int reap(pid_t pid, uint64_t ms, int *status)
{
    uint64_t end = now_ms() + ms;
    pid_t r;

    for (;;) {
        r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (now_ms() >= end)
            return -ETIMEDOUT;
        tick();
    }
}

/* SIGKILL and reap; for cleanup and for the kill -9 faults. */
static int kill_reap(pid_t *pid, int *status)
{
    int st = 0;
    int r;

    if (*pid <= 0)
        return 0;
    (void)kill(*pid, SIGKILL); /* ESRCH: already a zombie, reaped below */
    r = reap(*pid, KILL_WAIT_MS, &st);
    *pid = -1;
    if (status != NULL)
        *status = st;
    return r;
}

static void status_text(int st, char *out, size_t len)
{
    if (WIFEXITED(st))
        snprintf(out, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, len, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, len, "status %#x", st);
}

/* ---- log files ------------------------------------------------------------------- */

static void tail_init(struct tail *t, const char *path)
{
    snprintf(t->path, sizeof t->path, "%s", path);
    t->off = 0;
    t->len = 0;
}

/* Copies the next complete line into line (without its newline). Returns 1, or 0 when no
 * complete line is there yet. An overlong line is cut into pieces. */
static int tail_line(struct tail *t, char *line, size_t cap)
{
    char *nl;
    ssize_t n;
    size_t k;
    int fd;

    nl = memchr(t->buf, '\n', t->len);
    if (nl == NULL && t->len < sizeof t->buf) {
        fd = open(t->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
        n = pread(fd, t->buf + t->len, sizeof t->buf - t->len, t->off);
        close(fd);
        if (n > 0) {
            t->len += (size_t)n;
            t->off += n;
        }
        nl = memchr(t->buf, '\n', t->len);
    }
    if (nl == NULL && t->len < sizeof t->buf)
        return 0;
    k = nl != NULL ? (size_t)(nl - t->buf) : t->len;
    snprintf(line, cap, "%.*s", (int)k, t->buf);
    if (nl != NULL)
        k++;
    memmove(t->buf, t->buf + k, t->len - k);
    t->len -= k;
    return 1;
}

/* Whether the file at path holds needle after offset from. */
static int log_has(const char *path, off_t from, const char *needle)
{
    char buf[65536];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* The first "xfer: error: " line after from, for messages. */
static void log_error(const char *path, off_t from, char *out, size_t cap)
{
    char buf[65536];
    char *p;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    snprintf(out, cap, "(no error line)");
    if (fd < 0)
        return;
    n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    p = strstr(buf, "xfer: error: ");
    if (p != NULL)
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

static void note_refusal(const char *why, const char *text)
{
    int i;

    for (i = 0; i < S.nrefusals && strcmp(S.refusals[i].why, why) != 0; i++)
        ;
    if (i == S.nrefusals && S.nrefusals < 8) {
        S.nrefusals++;
        S.refusals[i].why = why;
        snprintf(S.refusals[i].example, sizeof S.refusals[i].example, "%s", text);
    }
    if (i < S.nrefusals)
        S.refusals[i].n++;
}

/* ---- the journal ----------------------------------------------------------------- */

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The confirmed offset in the journal at path, if it is the journal of name and size:
 * the header, then records up to the first torn or damaged one, as xfer-protocol(7)
 * says. Returns 0, or -1 when there is no such journal. */
static int journal_confirmed(const char *path, const char *name, uint64_t size, uint64_t *confirmed)
{
    static uint8_t *p;
    struct stat st;
    size_t len = 0;
    size_t pos;
    size_t namelen = strlen(name);
    uint64_t c = 0;
    ssize_t n;
    int fd;
    int r = -1;

    if (p == NULL)
        p = malloc(JOURNAL_MAX);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p == NULL || fd < 0)
        goto out;
    if (fstat(fd, &st) < 0 || st.st_size > (off_t)JOURNAL_MAX)
        goto out;
    while (len < JOURNAL_MAX) {
        n = read(fd, p + len, JOURNAL_MAX - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (len < 50 || be(p, 4) != 0x584a4e4c || be(p + 4, 4) != 1 || be(p + 8, 4) != MIB)
        goto out;
    pos = 42 + be(p + 40, 2);
    if (len - 8 < pos || XXH3_64bits(p, pos) != be(p + pos, 8))
        goto out;
    if (be(p + 20, 8) != size || pos - 42 != namelen || memcmp(p + 42, name, namelen) != 0)
        goto out;
    pos += 8;
    while (len - pos >= 36 && be(p + pos, 4) == 0x584a5243) {
        uint64_t nh = be(p + pos + 12, 4);
        uint64_t sl = be(p + pos + 24, 4);
        uint64_t rec = 28 + sl + 8 * nh;

        if (nh > 65536 || sl > 4096 || len - pos < rec + 8)
            break;
        if (XXH3_64bits(p + pos, rec) != be(p + pos + rec, 8))
            break;
        c = be(p + pos + 16, 8);
        pos += rec + 8;
    }
    *confirmed = c;
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

/* Raises the transfer's high-water mark from its journal. */
static void journal_poll(struct transfer *t)
{
    uint64_t c;

    if (journal_confirmed(t->journal, t->name, t->size, &c) == 0 && c > t->hwm)
        t->hwm = c;
    if (t->hwm > S.hwm_max)
        S.hwm_max = t->hwm;
    t->journal_ms = now_ms();
}

/* ---- the receiver ---------------------------------------------------------------- */

static void recv_line(const char *line);

static void recv_lines(void)
{
    char line[1024];

    while (tail_line(&S.recv_log, line, sizeof line))
        recv_line(line);
}

/* A resume offset the receiver announces for the current file must not be below what it
 * had confirmed. Read before the next journal poll, so hwm predates the line. */
static void recv_line(const char *line)
{
    struct transfer *t = S.cur;
    char name[64];
    uint64_t off = 0;
    int k = 0;

    if (t == NULL)
        return;
    if (sscanf(line, "xfer: resuming %63s at %" SCNu64 " of%n", name, &off, &k) == 2 && k > 0) {
        /* resuming at off */
    } else if (sscanf(line, "xfer: receiving %63s (%n", name, &k) == 1 && k > 0) {
        off = 0;
    } else {
        return;
    }
    if (strcmp(name, t->name) != 0)
        return;
    S.resumes++;
    S.resumes_above += t->hwm > 0;
    if (off >= t->hwm)
        return;
    /* Counted in the summary, which fails the run; the soak goes on meanwhile. */
    say("LOST: %s resumed at %" PRIu64 ", below its confirmed offset %" PRIu64 " (%" PRIu64
        " confirmed bytes asked for again)",
        t->name, off, t->hwm, t->hwm - off);
    S.lost += t->hwm - off;
}

static int recv_start(void)
{
    char port[16];
    char line[1024];
    char *argv[] = {(char *)S.xfer, "recv",  "--bind", "127.0.0.1", "--port",
                    port,           "--dir", S.dir,    NULL};
    uint64_t end = now_ms() + START_MS;
    int st;
    pid_t pid;

    snprintf(port, sizeof port, "%d", S.recv_port);
    pid = spawn(argv, -1, S.recv_log.path);
    if (pid < 0) {
        fail("cannot start the receiver: %s", strerror((int)-pid));
        return -1;
    }
    S.recv_pid = pid;
    /* The log is tailed from where this process starts writing; older lines are read. */
    while (now_ms() < end && !stop_signal) {
        while (tail_line(&S.recv_log, line, sizeof line)) {
            char *at = strstr(line, "listening on 127.0.0.1:");

            recv_line(line);
            if (at != NULL) {
                S.recv_port = atoi(at + strlen("listening on 127.0.0.1:"));
                return 0;
            }
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            S.recv_pid = -1;
            status_text(st, line, sizeof line);
            fail("the receiver did not start (%s); see %s", line, S.recv_log.path);
            return -1;
        }
        tick();
    }
    fail("the receiver did not say it listens within %d s; see %s", START_MS / 1000,
         S.recv_log.path);
    return -1;
}

/* The receiver must still run: only the soak ends it. */
static void recv_check(void)
{
    char text[64];
    int st;

    if (S.recv_pid <= 0 || waitpid(S.recv_pid, &st, WNOHANG) != S.recv_pid)
        return;
    S.recv_pid = -1;
    status_text(st, text, sizeof text);
    fail("the receiver exited on its own (%s); see %s", text, S.recv_log.path);
}

static void rss_check(void)
{
    char path[64];
    char line[256];
    uint64_t kib = 0;
    FILE *f;

    if (S.recv_pid <= 0 || now_ms() < S.rss_ms)
        return;
    S.rss_ms = now_ms() + RSS_POLL_MS;
    snprintf(path, sizeof path, "/proc/%d/status", (int)S.recv_pid);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %" SCNu64, &kib) == 1)
            break;
    fclose(f);
    if (kib > S.rss_max)
        S.rss_max = kib;
    if (kib > S.rss_limit * 1024)
        fail("receiver RSS %" PRIu64 " KiB is above the %" PRIu64 " MiB bound", kib, S.rss_limit);
}

/* Stops the receiver (SIGKILL or SIGTERM), reads its journal, starts it again. */
static void recv_restart(int sig)
{
    char text[64];
    int st = 0;

    if (sig == SIGKILL) {
        if (kill_reap(&S.recv_pid, &st) < 0)
            fail("the receiver did not die of SIGKILL within %d s", KILL_WAIT_MS / 1000);
    } else {
        (void)kill(S.recv_pid, SIGTERM);
        if (reap(S.recv_pid, TERM_WAIT_MS, &st) < 0) {
            fail("the receiver did not exit within %d s of SIGTERM", TERM_WAIT_MS / 1000);
            (void)kill_reap(&S.recv_pid, NULL);
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            status_text(st, text, sizeof text);
            fail("the receiver ended with %s after SIGTERM, not exit 0; see %s", text,
                 S.recv_log.path);
        }
        S.recv_pid = -1;
    }
    if (S.failed)
        return;
    recv_lines(); /* its last words, checked against the hwm of before */
    if (S.cur != NULL)
        journal_poll(S.cur);
    (void)recv_start();
}

/* ---- the proxy ------------------------------------------------------------------- */

static int proxy_start(void)
{
    char target[64];
    char portfile[PATH_MAX];
    char statsfile[PATH_MAX];
    char *argv[] = {(char *)S.proxy_bin, "--target", target,         "--port-file", portfile,
                    "--stats",           statsfile,  "--control-fd", "0",           NULL};
    uint64_t end = now_ms() + START_MS;
    int fds[2];
    FILE *f;
    pid_t pid;

    snprintf(target, sizeof target, "127.0.0.1:%d", S.recv_port);
    snprintf(portfile, sizeof portfile, "%s/proxy.port", S.tmp);
    snprintf(statsfile, sizeof statsfile, "%s/proxy.stats", S.logs);
    if (pipe2(fds, O_CLOEXEC) < 0) {
        fail("pipe: %s", strerror(errno));
        return -1;
    }
    pid = spawn(argv, fds[0], S.proxy_log.path);
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        fail("cannot start faultproxy: %s", strerror((int)-pid));
        return -1;
    }
    S.proxy_pid = pid;
    S.proxy_fd = fds[1];
    (void)fcntl(S.proxy_fd, F_SETFL, O_NONBLOCK); /* a full pipe skips a fault, never blocks */
    while (now_ms() < end && !stop_signal) {
        f = fopen(portfile, "r");
        if (f != NULL) {
            int ok = fscanf(f, "%d", &S.proxy_port) == 1;

            fclose(f);
            if (ok)
                return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            S.proxy_pid = -1;
            break;
        }
        tick();
    }
    fail("faultproxy did not start; see %s", S.proxy_log.path);
    return -1;
}

static int proxy_cmd(const char *cmd)
{
    char line[64];
    size_t n = (size_t)snprintf(line, sizeof line, "%s\n", cmd);

    return write(S.proxy_fd, line, n) == (ssize_t)n ? 0 : -1;
}

/* Counts the proxy's faults that took effect; a flip marks the current sender run. */
static void proxy_lines(void)
{
    char line[256];
    unsigned long n = 0;
    char what[16];

    while (tail_line(&S.proxy_log, line, sizeof line)) {
        if (sscanf(line, "ok %15s %lu", what, &n) == 2 && n > 0) {
            if (strcmp(what, "cut") == 0)
                S.hits[FK_CUT]++;
            else if (strcmp(what, "stall") == 0)
                S.hits[FK_STALL]++;
        } else if (strcmp(line, "flipped up") == 0 || strcmp(line, "flipped down") == 0) {
            S.hits[line[8] == 'u' ? FK_FLIP_UP : FK_FLIP_DOWN]++;
            if (S.cur != NULL)
                S.cur->flipped = 1;
        }
    }
}

/* ---- files ----------------------------------------------------------------------- */

static int make_source(const struct transfer *t)
{
    static uint64_t buf[MIB / 8];
    uint64_t x = t->data_seed;
    uint64_t left = t->size;
    size_t i;
    int fd = open(t->src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int r = 0;

    if (fd < 0)
        return -errno;
    if (t->size > MAX_SIZE && !t->oversize) {
        (void)close(fd); /* empty yet: nothing to lose */
        return -EFBIG;   /* a bug in plan_size(), which must not fill our disk */
    }
    if (t->oversize) {
        /* Refused before any byte is read: a sparse file costs nothing. */
        if (ftruncate(fd, (off_t)t->size) < 0)
            r = -errno;
        left = 0;
    }
    while (left > 0 && r == 0) {
        size_t n = left < sizeof buf ? (size_t)left : sizeof buf;

        for (i = 0; i < (n + 7) / 8; i++)
            buf[i] = splitmix64(&x);
        if (write(fd, buf, n) != (ssize_t)n)
            r = errno != 0 ? -errno : -EIO;
        left -= n;
    }
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}

/* 1 when the two files hold the same bytes, 0 when not (or b is missing). */
static int same_file(const char *a, const char *b)
{
    static char ba[MIB];
    static char bb[MIB];
    int fa = open(a, O_RDONLY | O_CLOEXEC);
    int fb = open(b, O_RDONLY | O_CLOEXEC);
    int same = fa >= 0 && fb >= 0;
    ssize_t na;
    ssize_t nb;

    while (same) {
        na = read(fa, ba, sizeof ba);
        nb = na > 0 ? read(fb, bb, (size_t)na) : read(fb, bb, 1);
        if (na != nb || na < 0 || memcmp(ba, bb, na > 0 ? (size_t)na : 0) != 0)
            same = 0;
        if (na <= 0)
            break;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path); /* best effort: what stays is reported by the final rmdir */
    return 0;
}

static void rm_tree(const char *path)
{
    (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- the disk -------------------------------------------------------------------- */

/* For a failure's report: what takes up the receiver's disk. */
static void dir_report(const char *path)
{
    char sub[PATH_MAX];
    struct dirent *e;
    struct statvfs v;
    struct stat st;
    DIR *d = opendir(path);

    if (statvfs(path, &v) == 0)
        say("  %s: %" PRIu64 " bytes free", path, (uint64_t)v.f_bavail * v.f_frsize);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (lstat(sub, &st) < 0)
            continue;
        say("  %s: %" PRIu64 " bytes, %" PRIu64 " allocated", sub, (uint64_t)st.st_size,
            (uint64_t)st.st_blocks * 512);
        if (S_ISDIR(st.st_mode) && strcmp(e->d_name, ".xfer") == 0)
            dir_report(sub);
    }
    closedir(d);
}

/* After a transfer settled, D/.xfer holds no partial of it: a commit renames it into place
 * and a refusal for space leaves no trace. Other names' state is not a failure: a sender
 * killed while the proxy held its OFFER has that OFFER delivered after the stall, perhaps
 * after its rerun finished and we deleted the copy, and the receiver then rightly keeps a
 * partial for it. Such leftovers, like any journal, are counted and removed. */
static void leftovers_check(const struct transfer *t)
{
    char path[sizeof S.dir + 8];
    char sub[sizeof path + NAME_MAX + 2];
    char key[NAME_KEY_LEN + 1];
    struct dirent *e;
    DIR *d;

    name_state_key(t->name, key);

    snprintf(path, sizeof path, "%s/.xfer", S.dir);
    d = opendir(path);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".part") == 0 &&
            strncmp(e->d_name, key, NAME_KEY_LEN) == 0) {
            fail("%s settled, yet %s is left", t->name, sub);
            dir_report(S.dir);
        }
        say("note: %s settled, yet %s is left", t->name, sub);
        S.leftovers++;
        (void)unlink(sub);
    }
    closedir(d);
    (void)rmdir(path);
}

static void ballast_free(void)
{
    if (!S.ballast_on)
        return;
    if (unlink(S.ballast) < 0)
        fail("cannot remove the ballast %s: %s", S.ballast, strerror(errno));
    S.ballast_on = 0;
}

/* Fills the receiver's file system but for `leave` bytes. */
static int ballast_fill(uint64_t leave, uint64_t hold_ms)
{
    struct statvfs v;
    uint64_t have;
    int tries;
    int fd;
    int r = ENOSPC;

    fd = open(S.ballast, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    S.ballast_on = 1;
    /* The receiver writes meanwhile, so the free space can shrink under a fallocate: it
     * then fails (and allocates nothing); measure again. */
    for (tries = 0; tries < 3 && r == ENOSPC; tries++) {
        if (statvfs(S.dir, &v) < 0) {
            r = errno;
            break;
        }
        have = (uint64_t)v.f_bavail * v.f_frsize;
        if (have <= leave + 65536)
            break; /* full enough already */
        r = posix_fallocate(fd, 0, (off_t)((have - leave) & ~UINT64_C(4095)));
    }
    close(fd);
    if (r != 0) {
        ballast_free();
        return -r;
    }
    S.ballast_until = now_ms() + hold_ms;
    return 0;
}

static int tmpfs_mount(void)
{
    char opts[64];

    /* A mount namespace of our own, inherited by the children: if the soak dies, the
     * mount goes with it instead of outliving it. */
    if (unshare(CLONE_NEWNS) < 0)
        return -errno;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -errno;
    snprintf(opts, sizeof opts, "size=%dm,mode=0700", TMPFS_MIB);
    if (mount("tmpfs", S.dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return -errno;
    S.mounted = 1;
    return 0;
}

/* ---- the plan -------------------------------------------------------------------- */

static uint64_t plan_size(int *oversize)
{
    uint64_t r = rnd(0, 99);

    *oversize = 0;
    if (r < 10) /* on a chunk boundary, or a byte either side */
        return rnd(1, 40) * MIB - 1 + rnd(0, 2);
    if (r < 15)
        return r < 12 ? 0 : rnd(1, 16);
    if (r < 35)
        return rnd(17, 64 * 1024);
    if (r < 60)
        return rnd(64 * 1024, 2 * MIB);
    if (r < 82)
        return rnd(2 * MIB, 32 * MIB);
    if (r < 93)
        return rnd(32 * MIB, 128 * MIB);
    if (r < 98)
        return rnd(128 * MIB, MAX_SIZE);
    *oversize = 1;
    return (uint64_t)TMPFS_MIB * MIB + rnd(1, 64 * MIB);
}

static enum fault_kind plan_kind(void)
{
    unsigned total = 0;
    unsigned k;
    uint64_t r;

    for (k = 0; k < FK_COUNT; k++)
        total += kinds[k].weight;
    r = rnd(0, total - 1);
    for (k = 0; r >= kinds[k].weight; k++)
        r -= kinds[k].weight;
    return (enum fault_kind)k;
}

/* Draws everything about transfer idx from the plan's stream, and nothing else does, so
 * the seed fixes the plan whatever happens at run time. */
static void plan_transfer(struct transfer *t, uint64_t idx)
{
    uint64_t est_ms;
    uint64_t r;
    int i;

    memset(t, 0, sizeof *t);
    t->idx = idx;
    t->size = plan_size(&t->oversize);
    t->data_seed = splitmix64(&S.rng);
    /* About how long the transfer takes unhurt (150 MB/s), so faults land inside it. */
    est_ms = 40 + t->size / 150000;
    r = rnd(0, 9);
    t->nfaults = r < 3 ? 0 : r < 7 ? 1 : r < 9 ? 2 : (int)rnd(3, MAX_FAULTS);
    for (i = 0; i < t->nfaults; i++) {
        struct fault *f = &t->faults[i];

        f->kind = plan_kind();
        f->delay_ms = rnd(0, est_ms);
        if (f->kind == FK_STALL) /* a third shorter than the idle timeout */
            f->param = rnd(0, 2) == 0 ? rnd(50, IDLE_MS / 2) : rnd(IDLE_MS * 3 / 2, IDLE_MS * 3);
        else if (f->kind == FK_DISK_FULL)
            f->param = rnd(200, 3000);
        f->leave = rnd(0, 2 * MIB);
    }
    snprintf(t->name, sizeof t->name, "t%06" PRIu64 "-%" PRIu64, idx, t->size);
    snprintf(t->src, sizeof t->src, "%s/src/%s", S.tmp, t->name);
    snprintf(t->dst, sizeof t->dst, "%s/%s", S.dir, t->name);
    {
        XXH128_hash_t h = XXH3_128bits(t->name, strlen(t->name));

        snprintf(t->journal, sizeof t->journal, "%s/.xfer/%016" PRIx64 "%016" PRIx64 ".journal",
                 S.dir, (uint64_t)h.high64, (uint64_t)h.low64);
    }
}

/* ---- one transfer ---------------------------------------------------------------- */

static int send_start(struct transfer *t)
{
    char dest[64];
    char log[PATH_MAX];
    char *argv[] = {(char *)S.xfer, "send", "--retry-for", RETRY_FOR, t->src, dest, NULL};
    struct stat st;
    pid_t pid;

    snprintf(dest, sizeof dest, "127.0.0.1:%d", S.proxy_port);
    snprintf(log, sizeof log, "%s/send.log", S.logs);
    t->log_from = stat(log, &st) == 0 ? st.st_size : 0;
    t->killed = 0;
    t->termed = 0;
    t->flipped = 0;
    t->disk_full = S.ballast_on;
    t->runs++;
    if (t->runs > MAX_RUNS) {
        fail("%s: still not settled after %d sender runs", t->name, MAX_RUNS);
        return -1;
    }
    pid = spawn(argv, -1, log);
    if (pid < 0) {
        fail("cannot start the sender: %s", strerror((int)-pid));
        return -1;
    }
    S.send_pid = pid;
    return 0;
}

static void record(struct transfer *t, enum fault_kind k)
{
    size_t n = strlen(t->done_faults);

    snprintf(t->done_faults + n, sizeof t->done_faults - n, "%s%s", n > 0 ? " " : "",
             kinds[k].name);
    t->nhit++;
}

/* Injects the fault; returns 0, or 1 when it must wait (its target is not there yet). */
static int inject(struct transfer *t, const struct fault *f)
{
    char cmd[32];
    int r;

    switch (f->kind) {
    case FK_CUT:
    case FK_STALL:
    case FK_FLIP_UP:
    case FK_FLIP_DOWN:
        /* The proxy counts these when they take effect; see proxy_lines(). */
        if (f->kind == FK_STALL)
            snprintf(cmd, sizeof cmd, "stall %" PRIu64, f->param);
        else
            snprintf(cmd, sizeof cmd, "%s",
                     f->kind == FK_CUT       ? "cut"
                     : f->kind == FK_FLIP_UP ? "flip up"
                                             : "flip down");
        if (proxy_cmd(cmd) == 0)
            record(t, f->kind);
        return 0;
    case FK_KILL_SENDER:
    case FK_TERM_SENDER:
        if (S.send_pid <= 0)
            return 1;
        (void)kill(S.send_pid, f->kind == FK_KILL_SENDER ? SIGKILL : SIGTERM);
        if (f->kind == FK_KILL_SENDER)
            t->killed = 1;
        else
            t->termed = 1;
        S.hits[f->kind]++;
        record(t, f->kind);
        return 0;
    case FK_KILL_RECV:
    case FK_TERM_RECV:
        S.hits[f->kind]++;
        record(t, f->kind);
        recv_restart(f->kind == FK_KILL_RECV ? SIGKILL : SIGTERM);
        return 0;
    case FK_DISK_FULL:
        if (!S.mounted)
            return 0; /* no tmpfs: skipped, as the start-up line said */
        if (S.ballast_on)
            return 1;
        /* Even a fill that fails took the space for a moment, and the receiver may have
         * refused a file meanwhile. */
        t->disk_full = 1;
        r = ballast_fill(f->leave, f->param);
        if (r == 0) {
            S.hits[f->kind]++;
            record(t, f->kind);
        } else if (r != -ENOSPC) {
            fail("cannot fill the disk: %s", strerror(-r));
        }
        return 0;
    case FK_COUNT:
        break;
    }
    return 0;
}

enum outcome { RUN_AGAIN, SETTLED };

/* Judges a sender's exit: settled (verified, or refused as planned), run again (after a
 * fault that explains the exit), or a failure. */
static enum outcome judge(struct transfer *t, int st)
{
    char log[PATH_MAX];
    char err[512];
    char text[64];
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;

    snprintf(log, sizeof log, "%s/send.log", S.logs);
    log_error(log, t->log_from, err, sizeof err);
    status_text(st, text, sizeof text);
    if (code == 0 && t->oversize) {
        fail("%s: a file larger than the receiver's disk was accepted", t->name);
        return SETTLED;
    }
    if (code == 0) {
        if (same_file(t->src, t->dst)) {
            S.verified++;
        } else {
            S.wrong++;
            say("WRONG FILE: %s: the sender exited 0 but %s differs from the source (or is "
                "missing)",
                t->name, t->dst);
        }
        return SETTLED;
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && t->killed)
        return RUN_AGAIN;
    /* A SIGTERM that came before xfer set its handler, or was the second, kills it. */
    if (t->termed && (code == 130 || (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)))
        return RUN_AGAIN;
    if (code == 4 && log_has(log, t->log_from, "not enough space")) {
        if (t->oversize) {
            note_refusal("larger than the disk", err);
            if (access(t->dst, F_OK) == 0)
                fail("%s: refused, yet %s exists", t->name, t->dst);
            S.refused++;
            return SETTLED;
        }
        if (t->disk_full) {
            note_refusal("disk full", err);
            return RUN_AGAIN;
        }
    }
    if (code == 4 && t->disk_full) {
        note_refusal("disk full, other", err); /* e.g. no room for the journal */
        return RUN_AGAIN;
    }
    if (code == 4 && t->runs > 1 && log_has(log, t->log_from, "another sender")) {
        note_refusal("busy", err);
        return RUN_AGAIN;
    }
    if ((code == 7 || (code == 4 && log_has(log, t->log_from, "protocol version"))) && t->flipped) {
        note_refusal("handshake flipped", err);
        return RUN_AGAIN;
    }
    fail("%s: the sender ended with %s: %s; see %s", t->name, text, err, log);
    dir_report(S.dir);
    return SETTLED;
}

static void transfer_tick(struct transfer *t, uint64_t now)
{
    /* Order matters: the receiver's resume lines are judged against the hwm read
     * before them; the proxy's flip lines precede the exit they cause. */
    recv_lines();
    proxy_lines();
    recv_check();
    if (now - t->journal_ms >= JOURNAL_POLL_MS)
        journal_poll(t);
    rss_check();
    if (S.proxy_pid > 0 && waitpid(S.proxy_pid, NULL, WNOHANG) == S.proxy_pid) {
        S.proxy_pid = -1;
        fail("faultproxy died; see %s", S.proxy_log.path);
    }
    if (S.ballast_on && now >= S.ballast_until)
        ballast_free();
}

static void run_transfer(struct transfer *t)
{
    char size[32];
    uint64_t secs;
    int settled = 0;
    int st;
    int r;

    size_text(t->size, size, sizeof size);
    if (t->oversize && !S.mounted) {
        say("#%" PRIu64 " %s (%s): skipped, larger than any tmpfs we have", t->idx, t->name, size);
        return;
    }
    r = make_source(t);
    if (r < 0) {
        fail("cannot write %s: %s", t->src, strerror(-r));
        return;
    }
    S.cur = t;
    t->start_ms = now_ms();
    t->deadline_ms = t->start_ms + 30000 + t->size / MIB * 200 + (uint64_t)t->nfaults * 20000;
    t->due_ms = t->nfaults > 0 ? t->start_ms + t->faults[0].delay_ms : UINT64_MAX;
    if (send_start(t) < 0)
        return;
    while (!settled && !stopping()) {
        uint64_t now;

        tick();
        now = now_ms();
        transfer_tick(t, now);
        if (S.failed)
            break;
        if (S.send_pid > 0 && waitpid(S.send_pid, &st, WNOHANG) == S.send_pid) {
            S.send_pid = -1;
            /* Everything written before the exit is in the logs now: a flip that caused
             * it, what the receiver said meanwhile. */
            proxy_lines();
            recv_lines();
            if (judge(t, st) == SETTLED) {
                settled = 1;
                break;
            }
            S.reruns++;
            if (S.ballast_on && t->disk_full)
                ballast_free(); /* the space a user would free before running it again */
            if (send_start(t) < 0)
                break;
        }
        if (t->next < t->nfaults && now >= t->due_ms) {
            if (inject(t, &t->faults[t->next]) == 0) {
                t->next++;
                if (t->next < t->nfaults)
                    t->due_ms = now_ms() + t->faults[t->next].delay_ms;
            }
        }
        if (now_ms() > t->deadline_ms) {
            fail("%s (%s) did not settle within %" PRIu64 " s; see %s", t->name, size,
                 (t->deadline_ms - t->start_ms) / 1000, S.logs);
            break;
        }
    }
    (void)kill_reap(&S.send_pid, NULL);
    ballast_free();
    S.cur = NULL;
    secs = now_ms() - t->start_ms;
    if (settled && !S.failed)
        leftovers_check(t);
    if (settled && !S.failed)
        say("#%" PRIu64 " %s (%s): %s, %d fault%s%s%s%s, %d run%s, %.1f s", t->idx, t->name, size,
            t->oversize ? "refused (too large)" : "verified", t->nhit, t->nhit == 1 ? "" : "s",
            t->nhit > 0 ? " (" : "", t->done_faults, t->nhit > 0 ? ")" : "", t->runs,
            t->runs == 1 ? "" : "s", (double)secs / 1000);
    (void)unlink(t->src);
    (void)unlink(t->dst);
}

/* ---- set-up and tear-down -------------------------------------------------------- */

static void on_signal(int sig)
{
    stop_signal = sig;
}

static int setup(void)
{
    const char *tmpdir = getenv("TMPDIR");
    char path[PATH_MAX];
    char secret[64];
    int r;

    if (tmpdir == NULL || *tmpdir == '\0')
        tmpdir = "/tmp";
    if (strlen(tmpdir) > TMP_MAX_LEN) {
        fail("TMPDIR is longer than %d bytes", TMP_MAX_LEN);
        return -1;
    }
    snprintf(S.tmp, sizeof S.tmp, "%s/chaos.XXXXXX", tmpdir);
    if (mkdtemp(S.tmp) == NULL) {
        fail("cannot make a directory under %s: %s", tmpdir, strerror(errno));
        return -1;
    }
    snprintf(S.dir, sizeof S.dir, "%s/dir", S.tmp);
    snprintf(S.logs, sizeof S.logs, "%s/logs", S.tmp);
    snprintf(path, sizeof path, "%s/src", S.tmp);
    if (mkdir(S.dir, 0700) < 0 || mkdir(S.logs, 0700) < 0 || mkdir(path, 0700) < 0) {
        fail("cannot make directories in %s: %s", S.tmp, strerror(errno));
        return -1;
    }
    snprintf(S.ballast, sizeof S.ballast, "%s/chaos.ballast", S.dir);
    snprintf(path, sizeof path, "%s/recv.log", S.logs);
    tail_init(&S.recv_log, path);
    snprintf(path, sizeof path, "%s/proxy.log", S.logs);
    tail_init(&S.proxy_log, path);
    r = tmpfs_mount();
    if (r < 0)
        say("note: cannot mount a tmpfs on %s (%s): the receiver writes to a plain directory; "
            "disk-full faults and oversized files are skipped",
            S.dir, strerror(-r));
    snprintf(secret, sizeof secret, "chaos-soak-%016" PRIx64, S.seed);
    if (setenv("XFER_SECRET", secret, 1) < 0 || setenv("XFER_IDLE_TIMEOUT", IDLE_TIMEOUT, 1) < 0) {
        fail("setenv: %s", strerror(errno));
        return -1;
    }
    if (recv_start() < 0 || proxy_start() < 0)
        return -1;
    return 0;
}

/* Every way out comes here: children by pid, then the mount, then the files. */
static void teardown(int keep_logs)
{
    char path[PATH_MAX];

    (void)kill_reap(&S.send_pid, NULL);
    (void)kill_reap(&S.recv_pid, NULL);
    if (S.proxy_fd >= 0)
        close(S.proxy_fd);
    S.proxy_fd = -1;
    (void)kill_reap(&S.proxy_pid, NULL);
    if (S.mounted && umount2(S.dir, 0) < 0 && umount2(S.dir, MNT_DETACH) < 0)
        say("cannot unmount %s: %s", S.dir, strerror(errno));
    S.mounted = 0;
    if (S.tmp[0] == '\0')
        return;
    if (!keep_logs) {
        rm_tree(S.tmp);
        return;
    }
    rm_tree(S.dir);
    snprintf(path, sizeof path, "%s/src", S.tmp);
    rm_tree(path);
    say("logs kept in %s", S.logs);
}

/* The receiver's last check: a clean exit on SIGTERM. Then the proxy's own count. */
static void finish(void)
{
    char path[PATH_MAX];
    char text[64];
    int st;

    recv_lines();
    proxy_lines();
    recv_check();
    if (S.recv_pid > 0) {
        (void)kill(S.recv_pid, SIGTERM);
        if (reap(S.recv_pid, TERM_WAIT_MS, &st) < 0) {
            fail("the receiver did not exit within %d s of SIGTERM", TERM_WAIT_MS / 1000);
        } else {
            S.recv_pid = -1;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                status_text(st, text, sizeof text);
                fail("the receiver ended with %s after SIGTERM, not exit 0", text);
            }
        }
    }
    if (S.proxy_fd >= 0)
        close(S.proxy_fd); /* EOF: the proxy writes its stats and exits */
    S.proxy_fd = -1;
    if (S.proxy_pid > 0 && reap(S.proxy_pid, KILL_WAIT_MS, &st) == 0)
        S.proxy_pid = -1;
    snprintf(path, sizeof path, "%s/.xfer", S.dir);
    if (access(path, F_OK) == 0)
        say("note: %s is left over (partials of refused files?)", path);
}

static int parse_args(int argc, char **argv)
{
    int i;
    int seeded = 0;
    char *end;

    for (i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *v = argv[i + 1];

        errno = 0;
        if (strcmp(k, "--seed") == 0) {
            S.seed = strtoull(v, &end, 0);
            seeded = 1;
        } else if (strcmp(k, "--minutes") == 0) {
            S.minutes = strtod(v, &end);
            if (!(S.minutes >= 0 && S.minutes <= 10000))
                errno = ERANGE;
        } else if (strcmp(k, "--plan") == 0) {
            S.plan = strtoull(v, &end, 10);
        } else if (strcmp(k, "--rss-limit-mib") == 0) {
            S.rss_limit = strtoull(v, &end, 10);
        } else if (strcmp(k, "--bin") == 0) {
            S.xfer = v;
            end = "";
        } else if (strcmp(k, "--proxy") == 0) {
            S.proxy_bin = v;
            end = "";
        } else {
            break;
        }
        if (errno != 0 || *end != '\0' || *v == '\0' || *v == '-')
            break;
    }
    if (i == argc && seeded && S.plan > 0)
        return 0;
    if (i != argc || !seeded || S.xfer == NULL || S.proxy_bin == NULL || S.minutes <= 0) {
        fprintf(stderr, "usage: chaos --seed N --minutes M --bin XFER --proxy FAULTPROXY "
                        "[--rss-limit-mib N]\n       chaos --seed N --plan K\n");
        return -1;
    }
    if (access(S.xfer, X_OK) < 0 || access(S.proxy_bin, X_OK) < 0) {
        fprintf(stderr, "chaos: error: %s or %s is not executable\n", S.xfer, S.proxy_bin);
        return -1;
    }
    return 0;
}

/* The plan alone: what a run with this seed does, transfer by transfer. */
static int print_plan(void)
{
    struct transfer t;
    uint64_t i;
    int k;

    for (i = 1; i <= S.plan; i++) {
        plan_transfer(&t, i);
        printf("#%" PRIu64 " %" PRIu64 " bytes%s:", i, t.size, t.oversize ? " (too large)" : "");
        for (k = 0; k < t.nfaults; k++)
            printf(" %s after %" PRIu64 " ms", kinds[t.faults[k].kind].name, t.faults[k].delay_ms);
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct transfer t;
    uint64_t start;
    uint64_t faults = 0;
    uint64_t end;
    uint64_t idx = 0;
    int k;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (parse_args(argc, argv) < 0)
        return 2;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a tick ends early, the loop sees the flag */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a dead proxy fails the write, and its death is reported */
    S.rng = S.seed;
    if (S.plan > 0)
        return print_plan();
    say("seed %" PRIu64 ", %g minutes, xfer %s; rerun with: tests/chaos/run --seed %" PRIu64
        " --minutes %g",
        S.seed, S.minutes, S.xfer, S.seed, S.minutes);
    start = now_ms();
    end = start + (uint64_t)(S.minutes * 60000);
    if (setup() == 0) {
        if (S.mounted)
            say("receiver dir %s (a %d MiB tmpfs), logs %s", S.dir, TMPFS_MIB, S.logs);
        else
            say("receiver dir %s (a plain directory), logs %s", S.dir, S.logs);
        while (!stopping() && now_ms() < end) {
            plan_transfer(&t, ++idx);
            run_transfer(&t);
        }
        if (!stop_signal)
            finish();
    }
    for (k = 0; k < FK_COUNT; k++)
        faults += S.hits[k];
    say("faults by kind: cut %" PRIu64 ", stall %" PRIu64 ", flip %" PRIu64
        ", kill -9 sender %" PRIu64 ", SIGTERM sender %" PRIu64 ", kill -9 receiver %" PRIu64
        ", SIGTERM receiver %" PRIu64 ", disk full %" PRIu64,
        S.hits[FK_CUT], S.hits[FK_STALL], S.hits[FK_FLIP_UP] + S.hits[FK_FLIP_DOWN],
        S.hits[FK_KILL_SENDER], S.hits[FK_TERM_SENDER], S.hits[FK_KILL_RECV], S.hits[FK_TERM_RECV],
        S.hits[FK_DISK_FULL]);
    say("%" PRIu64 " sender reruns, %" PRIu64 " files refused as planned (too large), "
        "receiver peak RSS %.1f MiB (bound %" PRIu64 "), %.1f min",
        S.reruns, S.refused, (double)S.rss_max / 1024, S.rss_limit,
        (double)(now_ms() - start) / 60000);
    say("%" PRIu64 " resume offsets checked, %" PRIu64 " of them against a confirmed offset "
        "above 0 (the highest seen: %" PRIu64 ")",
        S.resumes, S.resumes_above, S.hwm_max);
    if (S.leftovers > 0)
        say("note: %" PRIu64 " journals were left in %s/.xfer by transfers that had settled",
            S.leftovers, S.dir);
    for (k = 0; k < S.nrefusals; k++)
        say("accepted refusals (%s): %" PRIu64 ", e.g. %s", S.refusals[k].why, S.refusals[k].n,
            S.refusals[k].example);
    teardown(S.failed || S.wrong > 0 || S.lost > 0 || getenv("CHAOS_KEEP_LOGS") != NULL);
    if (stop_signal)
        say("interrupted by signal %d", (int)stop_signal);
    say("%" PRIu64 " faults, %" PRIu64 " transfers verified, %" PRIu64 " wrong files, %" PRIu64
        " lost confirmed bytes",
        faults, S.verified, S.wrong, S.lost);
    if (stop_signal)
        return 130;
    return S.failed || S.wrong > 0 || S.lost > 0 ? 1 : 0;
}
