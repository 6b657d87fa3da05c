/* What xfer prints and how it exits, as xfer(1) describes it: the sender's lines when stderr is
 * not a terminal, -q, error lines, recv --once status, the listening line, --bind, and a receiver
 * stopped by SIGTERM or kill -9 in the middle of a transfer. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TestSuite(output, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

#define WINDOW_BYTES (64 * HARNESS_MIB)

/* Bound for a receiver to exit after SIGTERM: it only waits for its disk writes in progress. */
#define PROMPT_EXIT_MS HARNESS_MS(5000)

/* Short liveness timeouts, so a connection broken by a test is noticed in seconds. */
static const char *const idle_env[] = {"XFER_IDLE_TIMEOUT=2", NULL};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reading stderr line by line ------------------------------------------ */

struct lines {
    char *v[256];
    size_t n;
};

/* Splits text at '\n' (text is harness-owned and modified). A last line without '\n' counts. */
static void split_lines(char *text, struct lines *l)
{
    char *p = text;

    l->n = 0;
    while (*p != '\0' && l->n < sizeof(l->v) / sizeof(l->v[0])) {
        char *nl = strchr(p, '\n');

        l->v[l->n++] = p;
        if (nl == NULL)
            break;
        *nl = '\0';
        p = nl + 1;
    }
}

static struct lines *log_lines(const char *name)
{
    static struct lines l;

    split_lines(harness_strf("%s", harness_log(name)), &l);
    return &l;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Every line starts with "xfer: ", as the OUTPUT section says of everything on stderr. */
static void expect_all_lines_prefixed(const char *name)
{
    struct lines *l = log_lines(name);

    for (size_t i = 0; i < l->n; i++)
        cr_assert(starts_with(l->v[i], "xfer: "),
                  "%s line %zu does not start with \"xfer: \": "
                  "\"%s\"; stderr:\n%s",
                  name, i + 1, l->v[i], harness_log(name));
}

/* The number of lines starting with "xfer: error: ". */
static size_t count_error_lines(const char *name)
{
    struct lines *l = log_lines(name);
    size_t n = 0;

    for (size_t i = 0; i < l->n; i++) {
        if (starts_with(l->v[i], "xfer: error: "))
            n++;
    }
    return n;
}

/* The first line starting with "xfer: error: ", or NULL. */
static char *first_error_line(const char *name)
{
    struct lines *l = log_lines(name);

    for (size_t i = 0; i < l->n; i++) {
        if (starts_with(l->v[i], "xfer: error: "))
            return l->v[i];
    }
    return NULL;
}

/* The first line containing text, or NULL. */
static char *find_line(const char *name, const char *text)
{
    struct lines *l = log_lines(name);

    for (size_t i = 0; i < l->n; i++) {
        if (strstr(l->v[i], text) != NULL)
            return l->v[i];
    }
    return NULL;
}

/* ---- small helpers ------------------------------------------------------------ */

static int send_file(const char *const extra[], const char *src, const char *host, const char *name)
{
    const char *args[16];
    size_t n = 0;

    while (extra != NULL && *extra != NULL)
        args[n++] = *extra++;
    args[n++] = src;
    args[n++] = host;
    args[n] = NULL;
    return harness_run_send(args, NULL, name, HARNESS_DEADLINE_MS);
}

/* One connect() attempt. Returns 0 if it was accepted, else -errno. */
static int connect_once(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;
    int r = 0;

    memset(&ss, 0, sizeof(ss));
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET6, host, &sa->sin6_addr), 1);
        len = sizeof(*sa);
    } else {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET, host, &sa->sin_addr), 1);
        len = sizeof(*sa);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&ss, len) < 0)
        r = -errno;
    close(fd);
    return r;
}

struct line_arg {
    const char *path;
    const char *text;
};

/* The file holds a whole line (up to '\n') containing text. */
static bool whole_line_pred(void *arg)
{
    struct line_arg *a = arg;
    char *s = harness_read_file(a->path);
    char *hit;

    if (s == NULL)
        return false;
    hit = strstr(s, a->text);
    return hit != NULL && strchr(hit, '\n') != NULL;
}

/* Waits for a whole line containing text on NAME's stderr; returns that line. */
static char *must_wait_line(const char *name, const char *text, pid_t watch)
{
    struct line_arg a = {harness_pathf("%s.err", name), text};
    int rc = harness_wait_until(whole_line_pred, &a, watch, HARNESS_DEADLINE_MS);

    cr_assert_eq(rc, 0, "no line with \"%s\" from %s (%s); %s", text, name, strerror(-rc),
                 harness_report(watch, name));
    return find_line(name, text);
}

/* Starts `xfer recv --port PORT --dir DIR extra...` without waiting for 127.0.0.1 (it may not
 * listen there). */
static pid_t spawn_recv(const char *port, const char *dir, const char *const extra[],
                        const char *name)
{
    const char *argv[16];
    size_t n = 0;
    pid_t pid;

    cr_assert_eq(harness_mkdirs(dir), 0);
    argv[n++] = XFER_BIN;
    argv[n++] = "recv";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--dir";
    argv[n++] = dir;
    while (extra != NULL && *extra != NULL)
        argv[n++] = *extra++;
    argv[n] = NULL;
    pid = harness_spawn(argv, NULL, NULL, name);
    cr_assert_gt(pid, 0, "cannot start the receiver: %s", strerror(-pid));
    return pid;
}

/* ---- the sender's lines --------------------------------------------------- */

Test(output, sender_not_on_a_tty_prints_sending_first_and_verified_last)
{
    /* Checks the sender's stderr when it is a file: first `xfer: sending NAME (N bytes`, last
     * `xfer: NAME verified (`, every line starting "xfer: ", and no progress line (no \r, no
     * escape sequences). */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/report.bin", 3 * HARNESS_MIB + 5, 101);
    struct lines *l;
    char *log;
    int port;
    int rc;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = send_file(NULL, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s", rc, harness_log("send"));
    log = harness_log("send");
    cr_assert(strchr(log, '\r') == NULL && strchr(log, '\033') == NULL,
              "a progress line was drawn on a non-terminal stderr:\n%s", log);
    expect_all_lines_prefixed("send");
    l = log_lines("send");
    cr_assert_geq(l->n, 2, "want at least two lines; stderr:\n%s", log);
    cr_assert(starts_with(l->v[0], harness_strf("xfer: sending report.bin (%lld bytes",
                                                3 * HARNESS_MIB + 5)),
              "first line is \"%s\"; stderr:\n%s", l->v[0], log);
    cr_assert(starts_with(l->v[l->n - 1], "xfer: report.bin verified ("),
              "last line is \"%s\"; stderr:\n%s", l->v[l->n - 1], log);
}

Test(output, sender_prints_resuming_after_a_cut)
{
    /* Checks that after the proxy resets the connection half way through, the sender says
     * `connection lost`, then `resuming NAME at OFFSET of N bytes` with 0 < OFFSET < N on a
     * chunk boundary, and still ends with `NAME verified`. */
    char *dir = harness_pathf("dst");
    long long size = 48 * HARNESS_MIB;
    char *src = harness_must_src("src/cut.bin", size, 102);
    struct harness_proxy proxy;
    struct lines *l;
    unsigned long long at = 0;
    unsigned long long of = 0;
    char *line;
    int port;
    int rc;

    harness_must_recv(&port, dir, NULL, idle_env, "recv");
    rc = harness_start_proxy(&proxy, port,
                             (const char *[]){"--cut-after", harness_strf("%lld", size / 2), NULL},
                             "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start: %s", strerror(-rc));
    rc = harness_run_send(
        (const char *[]){"--retry-for", "60", src, harness_strf("127.0.0.1:%d", proxy.port), NULL},
        idle_env, "send", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_log("recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/cut.bin", dir)), 0, "cut.bin differs");
    expect_all_lines_prefixed("send");
    cr_assert_not_null(find_line("send", "xfer: connection lost"),
                       "no `connection lost` line; stderr:\n%s", harness_log("send"));
    line = find_line("send", "resuming cut.bin at ");
    cr_assert_not_null(line, "no `resuming cut.bin at` line; stderr:\n%s", harness_log("send"));
    cr_assert_eq(sscanf(line, "xfer: resuming cut.bin at %llu of %llu bytes", &at, &of), 2,
                 "cannot read \"%s\" as `xfer: resuming NAME at OFFSET of N bytes`", line);
    cr_assert_eq(of, (unsigned long long)size, "\"%s\": wrong size", line);
    cr_assert(at > 0 && at < of && at % HARNESS_MIB == 0,
              "\"%s\": the offset is not a chunk boundary inside the file", line);
    l = log_lines("send");
    cr_assert(starts_with(l->v[0], "xfer: sending cut.bin ("), "first line is \"%s\"", l->v[0]);
    cr_assert(starts_with(l->v[l->n - 1], "xfer: cut.bin verified ("), "last line is \"%s\"",
              l->v[l->n - 1]);
}

Test(output, quiet_on_both_sides_prints_nothing_for_a_good_transfer)
{
    /* Checks that with -q on both sides a successful transfer, and the receiver's SIGTERM
     * shutdown after it, print nothing at all (stderr and stdout empty). */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/quiet.bin", 2 * HARNESS_MIB, 103);
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, (const char *[]){"-q", NULL}, NULL, "recv");
    rc = send_file((const char *[]){"-q", NULL}, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/quiet.bin", dir)), 0);
    harness_must_ls(dir, "quiet.bin\n");
    cr_assert_eq(harness_kill(recv, SIGTERM), 0);
    rc = harness_wait(recv, PROMPT_EXIT_MS);
    cr_assert_eq(rc, 0, "quiet receiver exit %d after SIGTERM", rc);
    cr_assert_str_empty(harness_log("send"), "send -q printed on stderr:\n%s", harness_log("send"));
    cr_assert_str_empty(harness_log("recv"), "recv -q printed on stderr:\n%s", harness_log("recv"));
    cr_assert_str_empty(harness_read_file(harness_pathf("send.out")), "send -q printed on stdout");
    cr_assert_str_empty(harness_read_file(harness_pathf("recv.out")), "recv -q printed on stdout");
}

/* ---- error lines ------------------------------------------------------------ */

/* NAME's stderr holds exactly one error line, mentioning what; with quiet every line is it. */
static void expect_one_error_line(const char *name, const char *what, bool quiet)
{
    char *line;
    size_t n;

    expect_all_lines_prefixed(name);
    n = count_error_lines(name);
    cr_assert_eq(n, 1, "%zu `xfer: error:` lines, want 1; stderr:\n%s", n, harness_log(name));
    line = first_error_line(name);
    cr_assert(strstr(line, what) != NULL, "the error line does not say which file (%s): \"%s\"",
              what, line);
    if (quiet)
        cr_assert_eq(log_lines(name)->n, 1, "with -q want only the error line; stderr:\n%s",
                     harness_log(name));
}

Test(output, missing_file_is_one_error_line_and_exit_6)
{
    /* Checks `xfer send MISSING HOST`: exit 6 and one `xfer: error:` line naming the file, also
     * with -q (where it is the only line). */
    char *dir = harness_pathf("dst");
    char *missing = harness_pathf("no-such-file.bin");
    int port;
    int rc;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = send_file(NULL, missing, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 6, "exit %d, want 6; stderr:\n%s", rc, harness_log("send"));
    expect_one_error_line("send", "no-such-file.bin", false);
    rc = send_file((const char *[]){"-q", NULL}, missing, harness_strf("127.0.0.1:%d", port),
                   "sendq");
    cr_assert_eq(rc, 6, "-q: exit %d, want 6; stderr:\n%s", rc, harness_log("sendq"));
    expect_one_error_line("sendq", "no-such-file.bin", true);
}

Test(output, refused_file_is_one_error_line_and_exit_4)
{
    /* Checks a file refused because a different one exists: exit 4 and one `xfer: error:` line
     * naming it, also with -q (where it is the only line); the existing file is untouched. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/clash.bin", HARNESS_MIB, 104);
    char *orig = harness_must_src("orig/clash.bin", HARNESS_MIB + 1, 105);
    int port;
    int rc;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    cr_assert_eq(harness_make_file(harness_strf("%s/clash.bin", dir), HARNESS_MIB + 1, 105), 0);
    rc = send_file(NULL, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 4, "exit %d, want 4; stderr:\n%s", rc, harness_log("send"));
    expect_one_error_line("send", "clash.bin", false);
    rc = send_file((const char *[]){"-q", NULL}, src, harness_strf("127.0.0.1:%d", port), "sendq");
    cr_assert_eq(rc, 4, "-q: exit %d, want 4; stderr:\n%s", rc, harness_log("sendq"));
    expect_one_error_line("sendq", "clash.bin", true);
    cr_assert_eq(harness_cmp_files(orig, harness_strf("%s/clash.bin", dir)), 0,
                 "the existing clash.bin was modified");
}

Test(output, recv_with_a_missing_dir_is_one_error_line_and_exit_6)
{
    /* Checks `xfer recv --dir MISSING`: exit 6 and one `xfer: error:` line naming the dir. */
    const char *argv[] = {XFER_BIN, "recv", "--port", "0", "--dir", harness_pathf("absent"), NULL};
    pid_t pid = harness_spawn(argv, NULL, NULL, "recv");
    int rc;

    cr_assert_gt(pid, 0);
    rc = harness_wait(pid, HARNESS_MS(10000));
    cr_assert_eq(rc, 6, "exit %d, want 6; stderr:\n%s", rc, harness_log("recv"));
    expect_one_error_line("recv", "absent", false);
}

Test(output, usage_error_is_one_error_line_and_exit_2)
{
    /* Checks that a usage error (an unknown option) exits 2 and, like every error, is reported
     * on one line starting "xfer: error: ", every line of stderr starting "xfer: ". */
    char *src = harness_must_src("src/u.bin", 10, 113);
    const char *argv[] = {XFER_BIN, "send", "--no-such-option", src, "127.0.0.1:9", NULL};
    pid_t pid = harness_spawn(argv, NULL, NULL, "send");
    int rc;

    cr_assert_gt(pid, 0);
    rc = harness_wait(pid, HARNESS_MS(10000));
    cr_assert_eq(rc, 2, "exit %d, want 2; stderr:\n%s", rc, harness_log("send"));
    expect_one_error_line("send", "--no-such-option", false);
}

/* Whether we run as root, who may write into any directory whatever its mode. */
static bool is_root(void)
{
    return geteuid() == 0;
}

Test(output, recv_with_a_read_only_dir_exits_6_at_start_up)
{
    /* Checks xfer(1) on --dir: a directory the receiver cannot write to is an error at
     * start-up (one error line, exit status 6), not something every sender finds out later.
     * As root, the receiver runs as nobody (setpriv), since root may write anywhere. */
    char *dir = harness_pathf("ro");
    int port = harness_free_port();
    const char *argv[16];
    size_t n = 0;
    pid_t recv;
    int rc;

    cr_assert_gt(port, 0);
    if (is_root()) {
        if (access("/usr/bin/setpriv", X_OK) != 0)
            cr_skip_test("running as root without setpriv: cannot make a dir unwritable");
        argv[n++] = "/usr/bin/setpriv";
        argv[n++] = "--reuid=65534";
        argv[n++] = "--regid=65534";
        argv[n++] = "--clear-groups";
        /* nobody must be able to reach the dir and open it, just not write to it. */
        cr_assert_eq(chmod(harness_dir(), 0755), 0, "chmod: %s", strerror(errno));
    }
    cr_assert_eq(harness_mkdirs(dir), 0);
    cr_assert_eq(chmod(dir, 0555), 0, "chmod: %s", strerror(errno));
    argv[n++] = XFER_BIN;
    argv[n++] = "recv";
    argv[n++] = "--port";
    argv[n++] = harness_strf("%d", port);
    argv[n++] = "--dir";
    argv[n++] = dir;
    argv[n] = NULL;
    recv = harness_spawn(argv, NULL, NULL, "recv");
    cr_assert_gt(recv, 0, "cannot start the receiver: %s", strerror(-recv));
    rc = harness_wait(recv, HARNESS_MS(10000));
    cr_assert_eq(rc, 6, "recv exit %d, want 6; stderr:\n%s", rc, harness_log("recv"));
    expect_one_error_line("recv", "ro", false);
    cr_assert_str_empty(harness_ls(dir), "the read-only dir holds:\n%s", harness_ls(dir));
}

/* ---- recv --once ------------------------------------------------------------ */

Test(output, recv_once_exits_4_when_its_only_file_was_refused)
{
    /* Checks that `recv --once` ends after a session whose only file was refused (a different
     * file exists) with status 4, leaving that file alone. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/taken.bin", HARNESS_MIB, 106);
    char *orig = harness_must_src("orig/taken.bin", 2 * HARNESS_MIB, 107);
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, (const char *[]){"--once", NULL}, NULL, "recv");
    cr_assert_eq(harness_make_file(harness_strf("%s/taken.bin", dir), 2 * HARNESS_MIB, 107), 0);
    rc = send_file(NULL, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 4, "sender exit %d, want 4; stderr:\n%s", rc, harness_log("send"));
    rc = harness_wait(recv, HARNESS_MS(10000));
    cr_assert_eq(rc, 4, "recv --once exit %d, want 4 (-%d: still running); stderr:\n%s", rc,
                 ETIMEDOUT, harness_log("recv"));
    cr_assert_eq(harness_cmp_files(orig, harness_strf("%s/taken.bin", dir)), 0);
}

Test(output, recv_once_exits_0_when_its_file_was_verified)
{
    /* Checks that `recv --once` ends with status 0 after a session whose file was verified. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/fine.bin", HARNESS_MIB + 9, 108);
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, (const char *[]){"--once", NULL}, NULL, "recv");
    rc = send_file(NULL, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s", rc, harness_log("send"));
    rc = harness_wait(recv, HARNESS_MS(10000));
    cr_assert_eq(rc, 0, "recv --once exit %d, want 0 (-%d: still running); stderr:\n%s", rc,
                 ETIMEDOUT, harness_log("recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/fine.bin", dir)), 0);
    harness_must_ls(dir, "fine.bin\n");
}

Test(output, recv_once_interrupted_by_sigterm_exits_130)
{
    /* Checks that `recv --once` stopped by SIGTERM before any session ended exits 130. */
    char *dir = harness_pathf("dst");
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, (const char *[]){"--once", NULL}, NULL, "recv");
    cr_assert_eq(harness_kill(recv, SIGTERM), 0);
    rc = harness_wait(recv, PROMPT_EXIT_MS);
    cr_assert_eq(rc, 130, "recv --once exit %d after SIGTERM, want 130; stderr:\n%s", rc,
                 harness_log("recv"));
}

/* Whether pid sits in a write to its stderr (fd 2), by /proc/PID/syscall: "1 0x2 ..." for
 * write(2), "20 0x2 ..." for writev(2) on x86-64. */
static bool writing_stderr(void *arg)
{
    char path[64];
    char text[32] = "";
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/syscall", (int)*(pid_t *)arg);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (read(fd, text, sizeof(text) - 1) < 0)
        text[0] = '\0';
    close(fd);
    return strncmp(text, "1 0x2 ", 6) == 0 || strncmp(text, "20 0x2 ", 7) == 0;
}

Test(output, recv_sigterm_as_it_says_it_listens_exits_0)
{
    /* Checks that a receiver sent SIGTERM while it prints its listening line (so before its
     * loop ever ran) still shuts down cleanly, exit 0: whoever waits for that line and then
     * stops the receiver must not see it die of the signal. Its stderr is a FIFO we have
     * filled, so it is held inside the write of that line, its first, when the signal comes. */
    char *err = harness_pathf("recv.err");
    char *dir = harness_pathf("dst");
    char junk[4096];
    char port[16];
    struct pollfd pfd;
    pid_t recv;
    ssize_t n = 1;
    int wfd;
    int rc;

    memset(junk, 'x', sizeof(junk));
    cr_assert_eq(harness_mkdirs(dir), 0);
    snprintf(port, sizeof(port), "%d", harness_free_port());
    cr_assert_eq(mkfifo(err, 0600), 0, "mkfifo: %s", strerror(errno));
    pfd.fd = open(err, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    wfd = open(err, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert(pfd.fd >= 0 && wfd >= 0, "open fifo: %s", strerror(errno));
    while (write(wfd, junk, sizeof(junk)) > 0)
        ;
    while (write(wfd, junk, 1) > 0)
        ;
    close(wfd); /* the FIFO stays full while our read end is open */
    recv = harness_spawn((const char *[]){XFER_BIN, "recv", "--bind", "127.0.0.1", "--port", port,
                                          "--dir", dir, NULL},
                         NULL, NULL, "recv");
    cr_assert(recv > 0);
    cr_assert_eq(harness_wait_until(writing_stderr, &recv, recv, HARNESS_DEADLINE_MS), 0,
                 "the receiver never blocked writing its stderr (%s)", harness_describe(recv));
    cr_assert_eq(harness_kill(recv, SIGTERM), 0);
    /* Drain the FIFO until the receiver, its only writer, is gone (EOF). */
    pfd.events = POLLIN;
    while (n != 0) {
        cr_assert_gt(poll(&pfd, 1, PROMPT_EXIT_MS), 0, "the receiver neither wrote nor exited");
        n = read(pfd.fd, junk, sizeof(junk));
        cr_assert(n >= 0 || errno == EAGAIN, "read fifo: %s", strerror(errno));
    }
    close(pfd.fd);
    rc = harness_wait(recv, PROMPT_EXIT_MS);
    cr_assert_eq(rc, 0, "receiver exit %d after SIGTERM during its listening line, want 0", rc);
}

/* ---- listening ---------------------------------------------------------------- */

Test(output, recv_port_0_prints_the_port_it_really_listens_on)
{
    /* Checks `recv --port 0`: the line `listening on 0.0.0.0:PORT` (and `[::]:PORT`, the same
     * number, when IPv6 works) names a port that accepts connections and receives a file. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/eph.bin", HARNESS_MIB, 109);
    pid_t recv = spawn_recv("0", dir, NULL, "recv");
    char *line = must_wait_line("recv", "listening on ", recv);
    int port = 0;
    int port6 = 0;
    int n;
    int rc;

    n = sscanf(line, "xfer: listening on 0.0.0.0:%d and [::]:%d", &port, &port6);
    cr_assert_geq(n, 1, "cannot read \"%s\" as `xfer: listening on 0.0.0.0:PORT`", line);
    cr_assert(port > 0 && port < 65536, "\"%s\": port %d", line, port);
    if (harness_ipv6_available()) {
        cr_assert_eq(n, 2, "\"%s\" does not name the IPv6 listener", line);
        cr_assert_eq(port6, port, "\"%s\": the IPv6 port differs from the IPv4 one", line);
        cr_assert_eq(connect_once("::1", port), 0, "[::1]:%d does not accept", port);
    }
    cr_assert_eq(connect_once("127.0.0.1", port), 0, "127.0.0.1:%d does not accept", port);
    rc = send_file(NULL, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/eph.bin", dir)), 0);
}

Test(output, recv_bind_127_0_0_1_listens_there_only)
{
    /* Checks `recv --bind 127.0.0.1`: its line names only 127.0.0.1:PORT, a sender there
     * succeeds, and the port is closed on 127.0.0.2 (another loopback address) and on ::1. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/v4.bin", HARNESS_MIB, 110);
    int port = harness_free_port();
    pid_t recv;
    char *line;
    int rc;

    cr_assert_gt(port, 0);
    recv = spawn_recv(harness_strf("%d", port), dir, (const char *[]){"--bind", "127.0.0.1", NULL},
                      "recv");
    line = must_wait_line("recv", "listening on ", recv);
    cr_assert_str_eq(line, harness_strf("xfer: listening on 127.0.0.1:%d", port));
    cr_assert_eq(harness_wait_port("127.0.0.1", port, HARNESS_DEADLINE_MS), 0);
    rc = connect_once("127.0.0.2", port);
    cr_assert_neq(rc, 0, "127.0.0.2:%d accepted a connection: not bound to 127.0.0.1 only", port);
    if (harness_ipv6_available()) {
        rc = connect_once("::1", port);
        cr_assert_eq(rc, -ECONNREFUSED, "[::1]:%d: %s, want connection refused", port,
                     rc == 0 ? "accepted" : strerror(-rc));
    }
    rc = send_file(NULL, src, harness_strf("127.0.0.1:%d", port), "send");
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/v4.bin", dir)), 0);
}

Test(output, recv_bind_ipv6_loopback_serves_an_ipv6_sender)
{
    /* Checks `recv --bind '[::1]'`: its line names [::1]:PORT, 127.0.0.1 is refused, and
     * `send FILE '[::1]:PORT'` succeeds. */
    char *dir = harness_pathf("dst");
    char *src;
    int port;
    pid_t recv;
    char *line;
    int rc;

    if (!harness_ipv6_available())
        cr_skip_test("IPv6 loopback (::1) is not available here");
    src = harness_must_src("src/v6.bin", HARNESS_MIB, 111);
    port = harness_free_port();
    cr_assert_gt(port, 0);
    recv = spawn_recv(harness_strf("%d", port), dir, (const char *[]){"--bind", "[::1]", NULL},
                      "recv");
    line = must_wait_line("recv", "listening on ", recv);
    cr_assert_str_eq(line, harness_strf("xfer: listening on [::1]:%d", port));
    cr_assert_eq(harness_wait_port("::1", port, HARNESS_DEADLINE_MS), 0);
    rc = connect_once("127.0.0.1", port);
    cr_assert_eq(rc, -ECONNREFUSED, "127.0.0.1:%d: %s, want connection refused", port,
                 rc == 0 ? "accepted" : strerror(-rc));
    rc = send_file(NULL, src, harness_strf("[::1]:%d", port), "send");
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/v6.bin", dir)), 0);
}

/* ---- a receiver stopped mid-transfer -------------------------------------------- */

struct slow {
    char *dir;
    char *xfer_dir;
    char *src;
    long long size;
    pid_t recv;
    int port;
    pid_t send;
    struct harness_proxy proxy;
};

/* Receiver into dst/, a proxy throttled to rate bytes/s in front of it, and a sender with
 * --retry-for 60 through it, left running once min_partial bytes sit in dst/.xfer. */
static void start_slow(struct slow *s, const char *name, long long size, long long rate,
                       long long min_partial)
{
    int rc;

    memset(s, 0, sizeof(*s));
    s->size = size;
    s->dir = harness_pathf("dst");
    s->xfer_dir = harness_strf("%s/.xfer", s->dir);
    s->src = harness_must_src(harness_strf("src/%s", name), size, 112);
    s->recv = harness_must_recv(&s->port, s->dir, NULL, idle_env, "recv");
    rc = harness_start_proxy(&s->proxy, s->port,
                             (const char *[]){"--throttle", harness_strf("%lld", rate), NULL},
                             "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start (%s); stderr:\n%s", strerror(-rc),
                 harness_log("proxy"));
    s->send =
        harness_start_send((const char *[]){"--retry-for", "60", s->src,
                                            harness_strf("127.0.0.1:%d", s->proxy.port), NULL},
                           idle_env, "send");
    cr_assert_gt(s->send, 0, "cannot start the sender: %s", strerror(-s->send));
    rc = harness_wait_dir_bytes(s->xfer_dir, min_partial, s->send, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "the partial never reached %lld bytes (%s; %lld now); sender stderr:\n%s",
                 min_partial, strerror(-rc), harness_dir_bytes(s->xfer_dir), harness_log("send"));
}

/* Waits for the sender to finish with 0 and an identical copy. */
static void expect_sender_finishes(struct slow *s, const char *name, const char *recv2)
{
    int rc = harness_wait(s->send, HARNESS_DEADLINE_MS);

    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s\nrestarted receiver stderr:\n%s", rc,
                 harness_log("send"), harness_log(recv2));
    cr_assert_eq(harness_cmp_files(s->src, harness_strf("%s/%s", s->dir, name)), 0,
                 "%s differs from its source", name);
    harness_must_ls(s->dir, harness_strf("%s\n", name));
}

Test(output, sigterm_mid_transfer_exits_0_keeps_the_partial_and_a_restart_finishes)
{
    /* Checks that a receiver without --once, sent SIGTERM while a file streams in, exits 0
     * within 5 s, leaves a non-empty .part and its .journal in --dir/.xfer (and nothing under the
     * final name), and that a receiver restarted on the same --dir and port lets the still
     * retrying sender resume and finish. */
    struct slow s;
    struct stat st;
    long long start;
    long long took;
    char *part;
    pid_t recv2;
    int rc;

    start_slow(&s, "term.bin", 32 * HARNESS_MIB, 8 * HARNESS_MIB, 8 * HARNESS_MIB);
    start = now_ms();
    cr_assert_eq(harness_kill(s.recv, SIGTERM), 0);
    rc = harness_wait(s.recv, PROMPT_EXIT_MS);
    took = now_ms() - start;
    cr_assert_neq(rc, -ETIMEDOUT, "the receiver still runs %d ms after SIGTERM; stderr:\n%s",
                  PROMPT_EXIT_MS, harness_log("recv"));
    cr_assert_eq(rc, 0, "exit %d after SIGTERM, want 0; stderr:\n%s", rc, harness_log("recv"));
    cr_log_info("receiver exited %lld ms after SIGTERM", took);

    part = harness_find_one(s.xfer_dir, ".part");
    cr_assert_not_null(part, "no single .part in %s; it holds:\n%s", s.xfer_dir,
                       harness_ls(s.xfer_dir));
    cr_assert_not_null(harness_find_one(s.xfer_dir, ".journal"), "no .journal in %s", s.xfer_dir);
    cr_assert_eq(stat(part, &st), 0);
    cr_assert_gt(st.st_size, 0, "the partial is empty after SIGTERM");
    cr_assert_neq(access(harness_strf("%s/term.bin", s.dir), F_OK), 0,
                  "term.bin appeared under its name unfinished");
    cr_assert(harness_alive(s.send), "the sender gave up while the receiver was down: %s",
              harness_report(s.send, "send"));

    recv2 = harness_start_recv(s.port, s.dir, NULL, idle_env, "recv2");
    cr_assert_gt(recv2, 0, "restarted receiver did not start (%s); stderr:\n%s", strerror(-recv2),
                 harness_log("recv2"));
    expect_sender_finishes(&s, "term.bin", "recv2");
    cr_expect_not_null(find_line("send", "resuming term.bin at "),
                       "the sender started over instead of resuming; stderr:\n%s",
                       harness_log("send"));
}

Test(output, receiver_kill_9_and_restart_resends_at_most_one_window)
{
    /* Checks that after kill -9 of the receiver with about 80 MiB of a 128 MiB file in, a
     * restarted receiver lets the sender resume: the proxy carries at most the file plus the
     * 64 MiB window plus 2 MiB of slack upstream (starting over would need 208 MiB). */
    struct harness_proxy_stats st;
    long long size = 128 * HARNESS_MIB;
    long long bound = size + WINDOW_BYTES + 2 * HARNESS_MIB;
    struct slow s;
    pid_t recv2;
    int rc;

    start_slow(&s, "k9.bin", size, 32 * HARNESS_MIB, 80 * HARNESS_MIB);
    rc = harness_kill(s.recv, SIGKILL);
    cr_assert_eq(rc, 0, "cannot kill the receiver: %s", strerror(-rc));
    recv2 = harness_start_recv(s.port, s.dir, NULL, idle_env, "recv2");
    cr_assert_gt(recv2, 0, "restarted receiver did not start (%s); stderr:\n%s", strerror(-recv2),
                 harness_log("recv2"));
    expect_sender_finishes(&s, "k9.bin", "recv2");
    rc = harness_stop_proxy(&s.proxy, &st);
    cr_assert_eq(rc, 0, "cannot read proxy stats: %s", strerror(-rc));
    cr_log_info("k9.bin: %lld bytes, proxy connections=%lld up=%lld down=%lld", size,
                st.connections, st.up, st.down);
    cr_assert_geq(st.connections, 2, "the sender never reconnected");
    cr_assert_leq(st.up, bound,
                  "%lld bytes went up for a %lld-byte file: %lld resent, more than one window "
                  "(64 MiB) plus 2 MiB",
                  st.up, size, st.up - size);
}
