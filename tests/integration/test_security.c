/* Protocol 3's promises against a hostile network: only holders of the shared secret get a file
 * in, an impostor receiver learns nothing about a sender's files, recorded, reflected or forged
 * handshake frames are worthless, half-open and flooding connections cannot hold the receiver,
 * and peer-supplied text cannot drive the terminal. Raw peers use wire.c, an implementation of
 * the protocol independent of src/.
 *
 * Every test puts the receiver's --dir in site/dst with sentinel files beside it and outside
 * it, and checks at the end that those are untouched and that --dir holds exactly what the
 * test expects. */
#include "harness.h"
#include "wire.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(security, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

/* A secret other than HARNESS_SECRET, long enough to draw no warning. */
#define OTHER_SECRET "not-the-receivers-secret-at-all-9876"

/* ---- the receiver's surroundings --------------------------------------- */

struct sentinel {
    char *path;
    const char *text;
    struct stat st;
};

struct site {
    char *base; /* site/ */
    char *dir;  /* site/dst, the receiver's --dir */
    struct sentinel keep[3];
    pid_t pid;
    int port;
};

static void put_sentinel(struct sentinel *s, char *path, const char *text)
{
    s->path = path;
    s->text = text;
    cr_assert_eq(harness_write_file(path, text, strlen(text)), 0, "cannot write %s", path);
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(stat(path, &s->st), 0);
}

/* Creates site/dst (empty) and the sentinels: site/notes.txt next to --dir,
 * site/other/keep.txt in a sibling directory, and outside.txt above the site. */
static void make_site(struct site *s)
{
    memset(s, 0, sizeof(*s));
    s->base = harness_pathf("site");
    s->dir = harness_pathf("site/dst");
    cr_assert_eq(harness_mkdirs(s->dir), 0);
    cr_assert_eq(harness_mkdirs(harness_pathf("site/other")), 0);
    put_sentinel(&s->keep[0], harness_pathf("site/notes.txt"), "notes next to --dir\n");
    put_sentinel(&s->keep[1], harness_pathf("site/other/keep.txt"), "a sibling's file\n");
    put_sentinel(&s->keep[2], harness_pathf("outside.txt"), "above the site\n");
}

/* make_site() and a receiver on it, sharing HARNESS_SECRET unless env says otherwise. */
static void start_site(struct site *s, const char *const extra[], const char *const env[])
{
    make_site(s);
    s->pid = harness_must_recv(&s->port, s->dir, extra, env, "recv");
}

/* Sentinels untouched, nothing new beside --dir, and `ls -A` of --dir exactly dir_ls. */
static void check_site(const struct site *s, const char *dir_ls)
{
    for (int i = 0; i < 3; i++) {
        const struct sentinel *k = &s->keep[i];
        struct stat st;
        char *text;

        cr_assert_eq(stat(k->path, &st), 0, "sentinel %s is gone", k->path);
        text = harness_read_file(k->path);
        cr_assert(text != NULL && strcmp(text, k->text) == 0, "sentinel %s was rewritten", k->path);
        cr_assert(st.st_ino == k->st.st_ino && st.st_size == k->st.st_size &&
                      st.st_mtim.tv_sec == k->st.st_mtim.tv_sec &&
                      st.st_mtim.tv_nsec == k->st.st_mtim.tv_nsec && st.st_mode == k->st.st_mode &&
                      st.st_nlink == 1,
                  "sentinel %s was touched (inode, size, mtime, mode or links changed)", k->path);
    }
    cr_assert_str_eq(harness_ls(s->base), "dst\nnotes.txt\nother\n",
                     "something appeared next to --dir");
    cr_assert_str_eq(harness_ls(harness_pathf("site/other")), "keep.txt\n",
                     "something appeared in a sibling of --dir");
    harness_must_ls(s->dir, dir_ls);
}

static int count_text(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Lines of text that start with prefix. */
static int count_lines_starting(const char *text, const char *prefix)
{
    int n = 0;

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');

        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
        p = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

/* Lines of text holding both a and b. */
static int count_lines_with(const char *text, const char *a, const char *b)
{
    int n = 0;

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        char *line = harness_strf("%.*s", nl != NULL ? (int)(nl - p) : (int)strlen(p), p);

        if (strstr(line, a) != NULL && strstr(line, b) != NULL)
            n++;
        p = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

/* The receiver ("recv") has logged at least *arg refused proofs from 127.0.0.1. */
static bool refusals_logged(void *arg)
{
    return count_lines_with(harness_log("recv"), "127.0.0.1", "secret") >= *(int *)arg;
}

static int secret_file(const char *rel, const char *text, mode_t mode, char **path)
{
    *path = harness_pathf("%s", rel);
    cr_assert_eq(harness_write_file(*path, text, strlen(text)), 0);
    return chmod(*path, mode);
}

/* Sends src to the site's receiver with extra arguments before it, env for the sender. */
static int send_to(const struct site *s, const char *src, const char *const pre[],
                   const char *const env[], const char *name)
{
    const char *args[16];
    size_t n = 0;

    while (pre != NULL && *pre != NULL)
        args[n++] = *pre++;
    args[n++] = src;
    args[n++] = harness_strf("127.0.0.1:%d", s->port);
    args[n] = NULL;
    return harness_run_send(args, env, name, HARNESS_DEADLINE_MS);
}

/* ---- raw sockets ------------------------------------------------------- */

static int listen_loopback(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Accepts one connection within timeout_ms; -ETIMEDOUT if none came. */
static int accept_within(int lfd, int timeout_ms)
{
    struct pollfd pfd = {lfd, POLLIN, 0};
    int r = poll(&pfd, 1, timeout_ms);

    if (r <= 0)
        return -ETIMEDOUT;
    r = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    return r < 0 ? -errno : r;
}

/* A sender of src connected to a raw listener on a new port: *lfd listens, *fd is the accepted
 * connection. */
static pid_t sender_to_listener(const char *src, int *lfd, int *fd)
{
    int port;
    pid_t pid;

    *lfd = listen_loopback(&port);
    pid = harness_start_send(
        (const char *[]){"--retry-for", "30", src, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
        "send");
    cr_assert_gt(pid, 0);
    *fd = accept_within(*lfd, REPLY_MS);
    cr_assert_geq(*fd, 0, "the sender did not connect: %s", harness_report(pid, "send"));
    return pid;
}

/* A blocking TCP connection to loopback (IPv4 or IPv6) port. */
static int connect_loopback(int family, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;

    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    if (family == AF_INET6) {
        struct sockaddr_in6 sa;

        memset(&sa, 0, sizeof(sa));
        sa.sin6_family = AF_INET6;
        sa.sin6_addr = in6addr_loopback;
        sa.sin6_port = htons((uint16_t)port);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t)port);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    cr_assert_eq(rc, 0, "cannot connect to loopback port %d: %s", port, strerror(errno));
    return fd;
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0, "write failed: %s", n < 0 ? strerror(errno) : "nothing written");
        p += n;
        len -= (size_t)n;
    }
}

/* Writes what it can of len bytes: a peer that closes on us (EPIPE, ECONNRESET) ends it.
 * Returns the bytes written. */
static size_t write_until_closed(int fd, const uint8_t *p, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            break;
        cr_assert_gt(n, 0, "write failed: %s", n < 0 ? strerror(errno) : "nothing written");
        done += (size_t)n;
    }
    return done;
}

struct bytes {
    uint8_t *p;
    size_t len;
    size_t cap;
};

static void bytes_add(struct bytes *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Reads fd until EOF (a reset counts as one) or until deadline_ms; returns 1 at EOF, 0 if the
 * deadline came first. */
static int read_to_eof(int fd, struct bytes *b, long long deadline_ms)
{
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        long long left = deadline_ms - w_now_ms();
        uint8_t buf[65536];
        ssize_t n;

        if (left <= 0)
            return 0;
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        bytes_add(b, buf, (size_t)n);
    }
}

/* Walks the clear frames in b: calls check(type, payload, len, arg) for each; fails on a record
 * or a torn frame. */
static void each_clear_frame(const struct bytes *b, const char *who,
                             void (*check)(uint8_t type, const uint8_t *payload, uint32_t len,
                                           void *arg),
                             void *arg)
{
    size_t pos = 0;

    while (pos < b->len) {
        uint32_t len;

        cr_assert_geq(b->len - pos, W_HDR, "%s: a torn header at byte %zu", who, pos);
        cr_assert_neq(b->p[pos + 4], W_REC_TYPE, "%s sent a sealed record (byte %zu)", who, pos);
        len = w_get_u32(b->p + pos);
        cr_assert_geq(b->len - pos - W_HDR, len, "%s: a torn %s frame at byte %zu", who,
                      b->p[pos + 4] <= W_TYPE_MAX ? w_type_names[b->p[pos + 4]] : "?", pos);
        check(b->p[pos + 4], b->p + pos + W_HDR, len, arg);
        pos += W_HDR + len;
    }
}

/* ---- tests: the secret ------------------------------------------------- */

Test(security, wrong_secret_sender_exits_7_and_leaves_nothing)
{
    /* Checks that a sender holding another secret exits 7 (at once, though --retry-for 30 would
     * let it retry) with one `xfer: error:` line that points at the secret; that the receiver
     * logs the refused proof with the sender's address; that nothing is created; and that the
     * receiver keeps serving. */
    char *src = harness_must_src("src/wrong.bin", 100000, 3);
    const char *const env[] = {"XFER_SECRET=" OTHER_SECRET, NULL};
    long long start;
    char *log;
    struct site s;
    int rc;

    start_site(&s, NULL, NULL);
    start = w_now_ms();
    rc = send_to(&s, src, (const char *[]){"--retry-for", "30", NULL}, env, "send");
    cr_assert_eq(rc, 7, "sender exit %d, want 7; stderr:\n%s", rc, harness_log("send"));
    cr_assert_lt(w_now_ms() - start, 10000, "the sender took %lld ms to give up",
                 w_now_ms() - start);
    log = harness_log("send");
    cr_assert_eq(count_lines_starting(log, "xfer: error:"), 1,
                 "want exactly one `xfer: error:` line; sender stderr:\n%s", log);
    cr_assert(strstr(log, "secret") != NULL, "the error does not mention the secret:\n%s", log);
    cr_assert_eq(harness_wait_until(refusals_logged, &(int){1}, s.pid, HARNESS_MS(5000)), 0,
                 "the receiver did not log the refused proof; its stderr:\n%s",
                 harness_log("recv"));
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "");

    rc = send_to(&s, src, NULL, NULL, "send-right");
    cr_assert_eq(rc, 0, "the right secret afterwards: exit %d; stderr:\n%s", rc,
                 harness_log("send-right"));
    check_site(&s, "wrong.bin\n");
}

Test(security, sender_without_a_secret_exits_2_naming_xfer_secret)
{
    /* Checks that a sender with neither XFER_SECRET (empty here) nor --secret-file exits 2 with
     * one error line that names XFER_SECRET, and that nothing reaches the receiver. */
    char *src = harness_must_src("src/nosecret.bin", 1000, 4);
    const char *const env[] = {"XFER_SECRET=", NULL};
    char *log;
    struct site s;
    int rc;

    start_site(&s, NULL, NULL);
    rc = send_to(&s, src, NULL, env, "send");
    log = harness_log("send");
    cr_assert_eq(rc, 2, "sender exit %d, want 2; stderr:\n%s", rc, log);
    cr_assert_eq(count_lines_starting(log, "xfer: error:"), 1, "sender stderr:\n%s", log);
    cr_assert(strstr(log, "XFER_SECRET") != NULL, "the error does not name XFER_SECRET:\n%s", log);
    cr_assert_null(strstr(harness_log("recv"), "sender"), "the receiver heard from it:\n%s",
                   harness_log("recv"));
    check_site(&s, "");
}

struct printed {
    const char *path;
    regex_t re;
    char secret[64];
    char host[300];
    int port;
};

static bool printed_command(void *arg)
{
    struct printed *p = arg;
    char *text = harness_read_file(p->path);
    regmatch_t m[5];

    if (text == NULL || regexec(&p->re, text, 5, m, 0) != 0)
        return false;
    snprintf(p->secret, sizeof(p->secret), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
             text + m[1].rm_so);
    snprintf(p->host, sizeof(p->host), "%.*s", (int)(m[3].rm_eo - m[3].rm_so), text + m[3].rm_so);
    p->port = atoi(text + m[4].rm_so);
    return true;
}

/* Starts `xfer recv --port 0 -q` without a secret and reads the command it prints. */
static pid_t recv_without_secret(const char *dir, const char *name, struct printed *p)
{
    static const char *const env[] = {"XFER_SECRET=", NULL};
    pid_t pid;
    int rc;

    pid = harness_spawn((const char *[]){XFER_BIN, "recv", "--port", "0", "--dir", dir, "-q", NULL},
                        env, NULL, name);
    cr_assert_gt(pid, 0);
    p->path = harness_pathf("%s.err", name);
    /* 28 base32 characters in 7 groups of 4. */
    cr_assert_eq(regcomp(&p->re,
                         "^  XFER_SECRET=([a-z2-7]{4}(-[a-z2-7]{4}){6}) xfer send FILE "
                         "([^ ]+):([0-9]+)$",
                         REG_EXTENDED | REG_NEWLINE),
                 0);
    rc = harness_wait_until(printed_command, p, pid, HARNESS_MS(10000));
    regfree(&p->re);
    cr_assert_eq(rc, 0,
                 "no `  XFER_SECRET=xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx xfer send FILE HOST:PORT` "
                 "line (%s); stderr:\n%s",
                 strerror(-rc), harness_log(name));
    return pid;
}

Test(security, receiver_without_a_secret_prints_a_working_sender_command_even_when_quiet)
{
    /* Checks that `xfer recv -q --port 0` without a secret prints, despite -q, the command a
     * sender needs: XFER_SECRET=<28 base32 characters in 7 groups of 4> xfer send FILE
     * HOST:PORT, PORT being the port it really listens on; that a sender given exactly that
     * secret delivers a file there; that -q still silences the rest; and that another receiver
     * makes up another secret. */
    char *src = harness_must_src("src/generated.bin", 300000, 5);
    struct printed p;
    struct printed q;
    struct site s;
    char *log;
    int rc;

    make_site(&s);
    s.pid = recv_without_secret(s.dir, "recv", &p);
    s.port = p.port;
    cr_assert(p.port > 0 && p.port < 65536, "printed port %d", p.port);
    cr_assert_eq(harness_wait_port("127.0.0.1", p.port, HARNESS_MS(5000)), 0,
                 "nothing listens on the printed port %d", p.port);
    cr_log_info("printed: XFER_SECRET=%s xfer send FILE %s:%d", p.secret, p.host, p.port);
    rc = send_to(&s, src, NULL, (const char *[]){harness_strf("XFER_SECRET=%s", p.secret), NULL},
                 "send");
    cr_assert_eq(rc, 0, "sender with the printed secret: exit %d; stderr:\n%s\n%s", rc,
                 harness_log("send"), harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/generated.bin", s.dir)), 0);
    log = harness_log("recv");
    cr_assert_null(strstr(log, "listening"), "-q did not silence the receiver:\n%s", log);
    cr_assert_null(strstr(log, "generated.bin"), "-q did not silence the receiver:\n%s", log);

    cr_assert_eq(harness_mkdirs(harness_pathf("second")), 0);
    (void)recv_without_secret(harness_pathf("second"), "recv2", &q);
    cr_assert_str_neq(p.secret, q.secret, "two receivers made up the same secret");
    check_site(&s, "generated.bin\n");
}

Test(security, secret_file_on_both_sides_wins_over_xfer_secret)
{
    /* Checks --secret-file on both sides: each side's XFER_SECRET holds a different wrong
     * secret, so the transfer works only if the file (0600, with a trailing newline that is not
     * part of the secret) is what both use; and neither side warns. */
    char *src = harness_must_src("src/file-secret.bin", 200000, 6);
    char *path;
    struct site s;
    int rc;

    cr_assert_eq(secret_file("secret.txt", "correct-horse-battery-staple-42\n", 0600, &path), 0);
    start_site(&s, (const char *[]){"--secret-file", path, NULL},
               (const char *[]){"XFER_SECRET=receiver-env-secret-is-not-used", NULL});
    rc =
        send_to(&s, src, (const char *[]){"--secret-file", path, NULL},
                (const char *[]){"XFER_SECRET=sender-env-secret-is-not-used-either", NULL}, "send");
    cr_assert_eq(rc, 0, "exit %d; sender stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/file-secret.bin", s.dir)), 0);
    cr_assert_null(strstr(harness_log("send"), "warning"), "sender:\n%s", harness_log("send"));
    cr_assert_null(strstr(harness_log("recv"), "warning"), "receiver:\n%s", harness_log("recv"));
    check_site(&s, "file-secret.bin\n");
}

Test(security, weak_secret_draws_a_warning_naming_16_characters)
{
    /* Checks that an 8-character secret (from a file on the receiver, from XFER_SECRET on the
     * sender) draws on each side a warning that asks for 16 characters, and still works. */
    char *src = harness_must_src("src/weak.bin", 1000, 7);
    char *path;
    char *log;
    struct site s;
    int rc;

    cr_assert_eq(secret_file("weak.txt", "abcdefgh", 0600, &path), 0);
    start_site(&s, (const char *[]){"--secret-file", path, NULL}, NULL);
    rc = send_to(&s, src, NULL, (const char *[]){"XFER_SECRET=abcdefgh", NULL}, "send");
    cr_assert_eq(rc, 0, "exit %d; sender stderr:\n%s", rc, harness_log("send"));
    log = harness_log("send");
    cr_assert(strstr(log, "warning") != NULL && strstr(log, "16") != NULL &&
                  strstr(log, "characters") != NULL,
              "no warning naming 16 characters from the sender:\n%s", log);
    log = harness_log("recv");
    cr_assert(strstr(log, "warning") != NULL && strstr(log, "16") != NULL &&
                  strstr(log, "characters") != NULL,
              "no warning naming 16 characters from the receiver:\n%s", log);
    check_site(&s, "weak.bin\n");
}

Test(security, group_readable_secret_file_draws_a_warning)
{
    /* Checks that a secret file others can read (0640) draws a warning on both sides, and that
     * the transfer still works. */
    char *src = harness_must_src("src/readable.bin", 1000, 8);
    char *path;
    struct site s;
    int rc;

    cr_assert_eq(secret_file("shared.txt", "a-long-enough-secret-in-a-shared-file", 0640, &path),
                 0);
    start_site(&s, (const char *[]){"--secret-file", path, NULL}, NULL);
    rc = send_to(&s, src, (const char *[]){"--secret-file", path, NULL}, NULL, "send");
    cr_assert_eq(rc, 0, "exit %d; sender stderr:\n%s", rc, harness_log("send"));
    cr_assert(strstr(harness_log("send"), "warning") != NULL &&
                  strstr(harness_log("send"), path) != NULL,
              "the sender did not warn about %s:\n%s", path, harness_log("send"));
    cr_assert(strstr(harness_log("recv"), "warning") != NULL &&
                  strstr(harness_log("recv"), path) != NULL,
              "the receiver did not warn about %s:\n%s", path, harness_log("recv"));
    check_site(&s, "readable.bin\n");
}

Test(security, secret_file_that_is_a_symbolic_link_is_refused_with_exit_6)
{
    /* Checks that --secret-file naming a symbolic link (to a good 0600 file) makes the receiver
     * and the sender exit 6 at once with one error line naming the link, and that the file it
     * points to given directly works. */
    char *src = harness_must_src("src/linked.bin", 1000, 10);
    char *path;
    char *link = harness_pathf("secret-link");
    const char *err_line = "is a symbolic link";
    struct site s;
    pid_t pid;
    int rc;

    cr_assert_eq(secret_file("secret.txt", "a-long-enough-secret-behind-a-link", 0600, &path), 0);
    cr_assert_eq(symlink(path, link), 0, "symlink: %s", strerror(errno));
    make_site(&s);
    pid = harness_spawn((const char *[]){XFER_BIN, "recv", "--port", "0", "--dir", s.dir,
                                         "--secret-file", link, NULL},
                        NULL, NULL, "recv-link");
    cr_assert_gt(pid, 0, "cannot start xfer: %s", strerror(-pid));
    rc = harness_wait(pid, REPLY_MS);
    cr_assert_eq(rc, 6, "receiver exit %d, want 6; stderr:\n%s", rc, harness_log("recv-link"));
    rc = harness_run_send(
        (const char *[]){"--secret-file", link, src, "127.0.0.1:9", NULL}, NULL, "send-link",
        HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 6, "sender exit %d, want 6; stderr:\n%s", rc, harness_log("send-link"));
    for (int i = 0; i < 2; i++) {
        const char *log = harness_log(i == 0 ? "recv-link" : "send-link");

        cr_assert_eq(count_lines_starting(log, "xfer: error:"), 1, "stderr:\n%s", log);
        cr_assert_eq(count_lines_with(log, link, err_line), 1, "stderr:\n%s", log);
    }

    s.pid = harness_must_recv(&s.port, s.dir, (const char *[]){"--secret-file", path, NULL},
                              NULL, "recv");
    rc = send_to(&s, src, (const char *[]){"--secret-file", path, NULL}, NULL, "send");
    cr_assert_eq(rc, 0, "exit %d; sender stderr:\n%s", rc, harness_log("send"));
    check_site(&s, "linked.bin\n");
}

/* Fails unless pid's core file size limit is 0, soft and hard, by /proc/PID/limits. */
static void expect_no_core_dumps(pid_t pid, const char *name)
{
    static const char key[] = "Max core file size";
    char *limits = harness_read_file(harness_strf("/proc/%d/limits", (int)pid));
    char soft[32] = "";
    char hard[32] = "";
    char *line;

    cr_assert_not_null(limits, "cannot read /proc/%d/limits", (int)pid);
    line = strstr(limits, key);
    cr_assert_not_null(line, "no \"%s\" in /proc/%d/limits:\n%s", key, (int)pid, limits);
    cr_assert_eq(sscanf(line + strlen(key), "%31s %31s", soft, hard), 2);
    cr_assert(strcmp(soft, "0") == 0 && strcmp(hard, "0") == 0,
              "%s may dump core: soft limit %s, hard limit %s; %s", name, soft, hard,
              harness_report(pid, name));
}

Test(security, receiver_and_sender_turn_core_dumps_off)
{
    /* Checks that a receiver (serving) and a sender (connected, waiting for WELCOME) started with
     * core dumps allowed run with a core size limit of 0, soft and hard, so a crash cannot write
     * the secret in their memory to a core file. */
    char *src = harness_must_src("src/core.bin", 1000, 13);
    struct rlimit was;
    struct rlimit allowed;
    struct site s;
    pid_t pid;
    int lfd;
    int fd;

    cr_assert_eq(getrlimit(RLIMIT_CORE, &was), 0);
    allowed = was;
    allowed.rlim_cur = was.rlim_max == RLIM_INFINITY || was.rlim_max > 1 << 20 ? 1 << 20
                                                                                 : was.rlim_max;
    cr_assert_gt(allowed.rlim_cur, 0, "the hard core limit is 0 already: nothing to check");
    cr_assert_eq(setrlimit(RLIMIT_CORE, &allowed), 0, "%s", strerror(errno));
    start_site(&s, NULL, NULL);
    pid = sender_to_listener(src, &lfd, &fd);
    cr_assert_eq(setrlimit(RLIMIT_CORE, &was), 0);
    expect_no_core_dumps(s.pid, "recv");
    expect_no_core_dumps(pid, "send");
    close(fd);
    close(lfd);
    check_site(&s, "");
}

/* ---- tests: impostors -------------------------------------------------- */

struct seen {
    int auth;
    int errors;
    int others;
    uint16_t code;
};

static void note_frame(uint8_t type, const uint8_t *payload, uint32_t len, void *arg)
{
    struct seen *s = arg;

    if (type == W_AUTH) {
        s->auth++;
    } else if (type == W_ERROR && len >= 4) {
        s->errors++;
        s->code = w_get_u16(payload);
    } else if (type != W_PING) {
        s->others++;
    }
}

enum fake_proof {
    FAKE_RANDOM, /* 32 random bytes */
    FAKE_REFLECT /* the sender's own AUTH tag, sent back */
};

/* Plays the first half of a receiver's handshake on fd, for the sender pid: reads a whole HELLO,
 * which must offer XChaCha20-Poly1305 (every sender does), and answers a well-formed WELCOME of
 * this version choosing it, with a fresh X25519 key pair (its secret key in sk) and nonce. Fills
 * t with what the two frames said and appends HELLO to up. */
static void fake_welcome(int fd, pid_t pid, uint16_t version, uint8_t sk[32],
                         struct w_transcript *t, struct bytes *up)
{
    uint8_t buf[W_HDR + W_HELLO_LEN];
    const uint8_t *h = buf + W_HDR;
    uint8_t *p;

    cr_assert_eq(w_read_exact(fd, buf, W_HDR + W_HELLO_LEN, w_now_ms() + REPLY_MS),
                 W_HDR + W_HELLO_LEN, "no whole HELLO; %s", harness_report(pid, "send"));
    bytes_add(up, buf, W_HDR + W_HELLO_LEN);
    cr_assert(buf[4] == W_HELLO && w_get_u32(buf) == W_HELLO_LEN, "the first frame is not HELLO");
    memset(t, 0, sizeof(*t));
    t->client_flags = w_get_u16(h + 6);
    memcpy(t->session_id, h + 8, W_SESSION_ID);
    t->client_ciphers = w_get_u16(h + 8 + W_SESSION_ID);
    memcpy(t->client_pk, h + 10 + W_SESSION_ID, W_KEY);
    memcpy(t->client_nonce, h + 10 + W_SESSION_ID + W_KEY, W_KEY);
    cr_assert(t->client_ciphers & W_CIPHER_XCHACHA20, "the sender does not offer XChaCha20");

    t->cipher = W_CIPHER_XCHACHA20;
    cr_assert_eq(crypto_kx_keypair(t->server_pk, sk), 0);
    randombytes_buf(t->server_nonce, W_KEY);
    p = w_put_header(buf, W_WELCOME_LEN, W_WELCOME);
    p = w_put_u32(p, W_MAGIC);
    p = w_put_u16(p, version);
    p = w_put_u16(p, t->server_flags);
    p = w_put_u16(p, t->cipher);
    p = w_put_bytes(p, t->server_pk, W_KEY);
    p = w_put_bytes(p, t->server_nonce, W_KEY);
    write_all(fd, buf, (size_t)(p - buf));
}

/* Plays, on a raw socket, a receiver that does not hold the secret to a real `xfer send` of a
 * file whose name holds "quarterly": a well-formed WELCOME (a real X25519 key, XChaCha20, which
 * every sender offers), then, after the sender's AUTH, an AUTH of its own made as how says.
 * Expects the sender to exit 7 with one error line and not to come back (--retry-for 30), and
 * to send after its AUTH nothing but ERROR AUTH_FAILED: no record (so no OFFER), and no byte of
 * the file's name anywhere on the connection. */
static void fake_receiver(enum fake_proof how)
{
    char *src = harness_must_src("src/quarterly-plans.txt", 5000, 9);
    uint8_t auth[W_HDR + W_KEY];
    uint8_t sk[32];
    struct w_transcript t;
    struct bytes up = {0};
    struct seen seen = {0};
    struct site s;
    pid_t pid;
    int lfd;
    int fd;
    int rc;

    make_site(&s);
    pid = sender_to_listener(src, &lfd, &fd);
    fake_welcome(fd, pid, W_VERSION, sk, &t, &up);

    /* The sender proves first: a stranger posing as the receiver does get its AUTH. */
    cr_assert_eq(w_read_exact(fd, auth, sizeof(auth), w_now_ms() + REPLY_MS), sizeof(auth),
                 "no AUTH from the sender; %s", harness_report(pid, "send"));
    bytes_add(&up, auth, sizeof(auth));
    cr_assert(auth[4] == W_AUTH && w_get_u32(auth) == W_KEY, "the sender sent %s, not AUTH",
              auth[4] <= W_TYPE_MAX ? w_type_names[auth[4]] : "?");
    if (how == FAKE_RANDOM)
        randombytes_buf(auth + W_HDR, W_KEY);
    write_all(fd, auth, sizeof(auth));

    cr_assert(read_to_eof(fd, &up, w_now_ms() + REPLY_MS), "the sender kept the connection open");
    rc = harness_wait(pid, REPLY_MS);
    cr_assert_eq(rc, 7, "sender exit %d, want 7; stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(count_lines_starting(harness_log("send"), "xfer: error:"), 1,
                 "want one error line; sender stderr:\n%s", harness_log("send"));
    {
        size_t skip = W_HDR + W_HELLO_LEN + sizeof(auth);
        struct bytes after = {up.p + skip, up.len - skip, 0};

        each_clear_frame(&after, "the sender", note_frame, &seen);
    }
    cr_assert_eq(seen.auth, 0, "the sender sent a second AUTH");
    cr_assert_eq(seen.others, 0, "the sender sent frames other than ERROR after its AUTH");
    cr_assert(seen.errors == 0 || seen.code == CODE_AUTH_FAILED, "ERROR code %u, want 12",
              seen.code);
    cr_assert_null(memmem(up.p, up.len, "quarterly", 9), "the file's name crossed the wire");
    cr_assert_null(memmem(up.p, up.len, "plans", 5), "the file's name crossed the wire");
    cr_assert_eq(accept_within(lfd, 200), -ETIMEDOUT, "the sender came back after giving up");
    cr_log_info("sender sent %zu bytes: HELLO, AUTH and %d ERROR; it said:\n%s", up.len,
                seen.errors, harness_log("send"));
    close(fd);
    close(lfd);
    free(up.p);
    check_site(&s, "");
}

Test(security, fake_receiver_with_a_random_proof_gets_no_offer_and_no_file_name)
{
    /* Checks a sender against a raw server posing as its receiver without the secret, whose AUTH
     * carries 32 random bytes: the sender exits 7 and sends nothing about its file (see
     * fake_receiver()). */
    fake_receiver(FAKE_RANDOM);
}

Test(security, a_fake_receiver_can_test_a_guess_only_through_argon2id)
{
    /* Checks what one connection gives a party posing as the receiver to guess the secret with:
     * the client tag in the sender's AUTH is the one derived from Argon2id of the secret
     * (xfer-protocol(7), Key schedule; derived here by wire.c), not the one derived from protocol
     * 2's single keyed BLAKE2b of it, so each guess costs the guesser one Argon2id evaluation. */
    char *src = harness_must_src("src/guess.bin", 1000, 11);
    uint8_t auth[W_HDR + W_KEY];
    uint8_t sk[32];
    uint8_t psk[32];
    struct w_transcript t;
    struct w_keys k;
    struct bytes up = {0};
    pid_t pid;
    int lfd;
    int fd;

    pid = sender_to_listener(src, &lfd, &fd);
    fake_welcome(fd, pid, W_VERSION, sk, &t, &up);
    cr_assert_eq(w_read_exact(fd, auth, sizeof(auth), w_now_ms() + REPLY_MS), sizeof(auth),
                 "no AUTH from the sender; %s", harness_report(pid, "send"));
    cr_assert(auth[4] == W_AUTH && w_get_u32(auth) == W_KEY, "the sender did not send AUTH");

    w_psk(psk, HARNESS_SECRET);
    cr_assert_eq(w_server_keys(&k, psk, sk, &t), 0);
    cr_assert(memcmp(auth + W_HDR, k.client_tag, W_KEY) == 0,
              "the client tag is not the one of Argon2id(secret)");
    crypto_generichash(psk, sizeof(psk), (const uint8_t *)HARNESS_SECRET, strlen(HARNESS_SECRET),
                       (const uint8_t *)"xfer/2 pre-shared key", 21);
    cr_assert_eq(w_server_keys(&k, psk, sk, &t), 0);
    cr_assert(memcmp(auth + W_HDR, k.client_tag, W_KEY) != 0,
              "the client tag can be tested with one BLAKE2b per guess");
    close(fd);
    close(lfd);
    free(up.p);
}

Test(security, a_receiver_of_protocol_2_makes_the_sender_exit_4_naming_the_version)
{
    /* Checks that a sender meeting a protocol-2 receiver (a WELCOME saying version 2, otherwise
     * well formed) exits 4 with one error line saying the receiver speaks another protocol
     * version, without sending AUTH or blaming the secret: the key schedules differ, so a proof
     * would only fail as if the secrets did. */
    char *src = harness_must_src("src/old.bin", 1000, 12);
    struct w_transcript t;
    struct bytes up = {0};
    uint8_t sk[32];
    char *log;
    pid_t pid;
    int lfd;
    int fd;
    int rc;

    pid = sender_to_listener(src, &lfd, &fd);
    fake_welcome(fd, pid, 2, sk, &t, &up);
    cr_assert(read_to_eof(fd, &up, w_now_ms() + REPLY_MS), "the sender kept the connection open");
    rc = harness_wait(pid, REPLY_MS);
    log = harness_log("send");
    cr_assert_eq(rc, 4, "sender exit %d, want 4; stderr:\n%s", rc, log);
    cr_assert_eq(count_lines_starting(log, "xfer: error:"), 1, "sender stderr:\n%s", log);
    cr_assert(strstr(log, "protocol version") != NULL, "sender stderr:\n%s", log);
    cr_assert_null(strstr(log, "secret"), "the sender blamed the secret:\n%s", log);
    {
        struct bytes after = {up.p + W_HDR + W_HELLO_LEN, up.len - W_HDR - W_HELLO_LEN, 0};
        struct seen seen = {0};

        each_clear_frame(&after, "the sender", note_frame, &seen);
        cr_assert_eq(seen.auth, 0, "the sender sent its proof to a protocol-2 receiver");
        cr_assert(seen.errors == 0 || seen.code == CODE_VERSION_MISMATCH, "ERROR code %u, want 8",
                  seen.code);
    }
    cr_assert_eq(accept_within(lfd, 200), -ETIMEDOUT, "the sender came back after giving up");
    close(fd);
    close(lfd);
    free(up.p);
}

Test(security, wrong_auth_tag_gets_error_12_before_the_offer_behind_it_is_read)
{
    /* Checks that a client whose AUTH proof is wrong (one bit off) is answered ERROR 12 in the
     * clear and closed, even with a well-sealed OFFER right behind AUTH in the same write: no
     * partial, no .xfer. Then the same write with the right proof gets the receiver's AUTH and
     * ACCEPT, and delivers, so the first result is the proof's doing. */
    static const uint8_t body[] = "delivered only with the right proof";
    struct w_offer o = {sizeof(body) - 1, 1700003000, 0, 0644, "behind-auth.txt", 15};
    struct site s;
    char *text;

    start_site(&s, NULL, NULL);
    for (int right = 0; right < 2; right++) {
        uint8_t out[W_HDR + W_KEY + W_HDR + 26 + 64 + W_AEAD_TAG];
        uint8_t frame[W_HDR + 26 + 64];
        uint8_t *p;
        uint8_t *rec;
        size_t n;
        struct w_conn c;
        struct w_frame f;

        w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
        w_hello(&c);
        p = w_put_header(out, W_KEY, W_AUTH);
        p = w_put_bytes(p, c.keys.client_tag, W_KEY);
        if (!right)
            out[W_HDR + 17] ^= 0x04;
        c.tx_sealed = 1;
        rec = w_seal(&c, frame, w_enc_offer(frame, &o), &n);
        memcpy(p, rec, n);
        free(rec);
        w_send_raw(&c, out, (size_t)(p - out) + n);
        if (!right) {
            text = w_expect_error_and_close(&c, CODE_AUTH_FAILED, 0, "after a wrong AUTH");
            cr_log_info("wrong proof: \"%s\"", text);
            w_close(&c);
            cr_assert_eq(harness_wait_until(refusals_logged, &(int){1}, s.pid, HARNESS_MS(5000)), 0,
                         "the receiver did not log the refusal:\n%s", harness_log("recv"));
            check_site(&s, "");
            continue;
        }
        w_expect_receiver_auth(&c);
        w_expect_type(&c, &f, W_ACCEPT);
        p = frame +
            w_enc_data_prefix(frame, 1, 0, XXH3_64bits_withSeed(body, o.size, 0), (uint32_t)o.size);
        memcpy(p, body, o.size);
        w_send(&c, frame, (size_t)(p - frame) + o.size);
        w_send(&c, frame, w_enc_end(frame, 1, XXH3_128bits(body, o.size)));
        do {
            w_next(&c, &f, "COMMITTED");
        } while (f.type == W_ACK);
        cr_assert_eq(f.type, W_COMMITTED, "receiver sent %s", w_describe(&f));
        w_send(&c, frame, w_enc_bye(frame, CODE_OK));
        w_expect_eof(&c, REPLY_MS, "after BYE");
        w_close(&c);
    }
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "behind-auth.txt\n");
}

/* Bytes a relay slips into the receiver-to-sender stream once, right after the first `after`
 * bytes the receiver sent. */
struct inject {
    size_t after;
    const uint8_t *bytes;
    size_t len;
};

/* Forwards one connection from lfd to target_port both ways until both ends close, keeping
 * what each side sent (what was injected is not part of down). Fails if no connection comes,
 * or if it takes longer than timeout_ms. */
static void relay_one_connection(int lfd, int target_port, struct bytes *up, struct bytes *down,
                                 int timeout_ms, const struct inject *inj)
{
    long long deadline = w_now_ms() + timeout_ms;
    int cfd = accept_within(lfd, timeout_ms);
    int sfd;
    int open_up = 1;
    int open_down = 1;
    int injected = inj == NULL;

    cr_assert_geq(cfd, 0, "the sender did not connect to the relay");
    sfd = connect_loopback(AF_INET, target_port);
    while (open_up || open_down) {
        struct pollfd pfd[2] = {{cfd, open_up ? POLLIN : 0, 0}, {sfd, open_down ? POLLIN : 0, 0}};
        long long left = deadline - w_now_ms();
        uint8_t buf[65536];
        ssize_t n;

        cr_assert_gt(left, 0, "the relayed session did not end within %d ms", timeout_ms);
        if (poll(pfd, 2, (int)left) <= 0)
            continue;
        if (pfd[0].revents) {
            n = read(cfd, buf, sizeof(buf));
            if (n > 0)
                bytes_add(up, buf, (size_t)n);
            if (n <= 0 || write_until_closed(sfd, buf, (size_t)n) < (size_t)n) {
                open_up = 0;
                (void)shutdown(sfd, SHUT_WR); /* pass the FIN on; nothing to do if it fails */
            }
        }
        if (pfd[1].revents) {
            n = read(sfd, buf, sizeof(buf));
            if (n <= 0) {
                open_down = 0;
                (void)shutdown(cfd, SHUT_WR);
                continue;
            }
            if (!injected && down->len + (size_t)n >= inj->after) {
                size_t k = inj->after - down->len;

                /* The sender may be gone: what it does not read does not matter. */
                (void)write_until_closed(cfd, buf, k);
                (void)write_until_closed(cfd, inj->bytes, inj->len);
                (void)write_until_closed(cfd, buf + k, (size_t)n - k);
                injected = 1;
            } else {
                (void)write_until_closed(cfd, buf, (size_t)n);
            }
            bytes_add(down, buf, (size_t)n);
        }
    }
    close(cfd);
    close(sfd);
}

Test(security, replayed_handshake_and_session_get_nothing_in)
{
    /* Checks that a recording of a real, successful session is worthless: a real sender goes
     * through an in-test recording proxy and delivers its file; with that file removed, every
     * byte the sender sent is replayed in one write on a new connection. The receiver answers
     * with a fresh WELCOME (a new key), so the recorded AUTH is wrong: ERROR 12 in the clear,
     * a close, and the file does not come back. */
    char *src = harness_must_src("src/replayed.bin", 2 * HARNESS_MIB + 5, 10);
    struct bytes up = {0};
    struct bytes down = {0};
    struct w_conn c;
    struct w_frame f;
    struct site s;
    size_t replayed;
    int proxy_port;
    pid_t pid;
    int lfd;
    int rc;

    start_site(&s, NULL, NULL);
    lfd = listen_loopback(&proxy_port);
    pid = harness_start_send((const char *[]){src, harness_strf("127.0.0.1:%d", proxy_port), NULL},
                             NULL, "send");
    cr_assert_gt(pid, 0);
    relay_one_connection(lfd, s.port, &up, &down, HARNESS_DEADLINE_MS, NULL);
    rc = harness_wait(pid, REPLY_MS);
    cr_assert_eq(rc, 0, "the recorded sender: exit %d; stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/replayed.bin", s.dir)), 0);
    cr_assert_gt(up.len, 2 * HARNESS_MIB, "only %zu bytes recorded", up.len);
    cr_assert(up.p[4] == W_HELLO && up.p[W_HDR + W_HELLO_LEN + 4] == W_AUTH,
              "the recording does not start with HELLO and AUTH");
    cr_assert_eq(unlink(harness_strf("%s/replayed.bin", s.dir)), 0);

    w_attach(&c, connect_loopback(AF_INET, s.port), HARNESS_SECRET, 0, "recv");
    /* The receiver is expected to hang up after the AUTH, with most of this unread. */
    replayed = write_until_closed(c.fd, up.p, up.len);
    cr_assert_geq(replayed, W_HDR + W_HELLO_LEN + W_HDR + W_KEY);
    w_expect_type(&c, &f, W_WELCOME);
    cr_assert_eq(down.len > W_HDR + W_WELCOME_LEN && down.p[4] == W_WELCOME, 1);
    cr_assert(memcmp(f.raw, down.p, W_HDR + W_WELCOME_LEN) != 0,
              "the receiver answered the replay with the very WELCOME it sent before");
    w_expect_error_and_close(&c, CODE_AUTH_FAILED, 0, "after the replayed AUTH");
    w_close(&c);
    cr_log_info("replay: %zu of %zu recorded bytes written before the receiver hung up", replayed,
                up.len);
    close(lfd);
    free(up.p);
    free(down.p);
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "");
}

Test(security, forged_clear_error_after_the_handshake_does_not_end_the_sender)
{
    /* Checks a sender against an on-path attacker who, once both proofs have checked out, slips
     * a clear ERROR AUTH_FAILED in right behind the receiver's AUTH (its last clear frame; all
     * it sends after is sealed). Such a frame can only be forged: it must not make the sender
     * give up for good (exit 7, "the secrets differ") but at worst cost it the connection, so
     * with --retry-for 30 it reconnects (unhindered) and delivers its file: exit 0. */
    static const char text[] = "authentication failed: forged by an on-path attacker";
    char *src = harness_must_src("src/forged.bin", 3 * HARNESS_MIB, 16);
    uint8_t forged[W_HDR + 4 + sizeof(text)];
    struct inject inj = {W_HDR + W_WELCOME_LEN + W_HDR + W_KEY, forged, 0};
    struct bytes up = {0};
    struct bytes down = {0};
    struct site s;
    int relayed = 0;
    int proxy_port;
    pid_t pid;
    int lfd;
    int rc;

    inj.len = w_enc_error(forged, CODE_AUTH_FAILED, text);
    start_site(&s, NULL, NULL);
    lfd = listen_loopback(&proxy_port);
    pid = harness_start_send(
        (const char *[]){"--retry-for", "30", src, harness_strf("127.0.0.1:%d", proxy_port), NULL},
        NULL, "send");
    cr_assert_gt(pid, 0);
    relay_one_connection(lfd, s.port, &up, &down, HARNESS_DEADLINE_MS, &inj);
    cr_assert(down.len >= inj.after && down.p[4] == W_WELCOME &&
                  down.p[W_HDR + W_WELCOME_LEN + 4] == W_AUTH,
              "the receiver did not send WELCOME and AUTH first: the forgery missed its spot");
    relayed++;
    /* Later connections pass untouched, for as long as the sender keeps trying. */
    while (harness_alive(pid)) {
        struct pollfd pfd = {lfd, POLLIN, 0};

        if (poll(&pfd, 1, HARNESS_POLL_MS) <= 0)
            continue;
        up.len = 0;
        down.len = 0;
        relay_one_connection(lfd, s.port, &up, &down, HARNESS_DEADLINE_MS, NULL);
        relayed++;
    }
    rc = harness_wait(pid, REPLY_MS);
    cr_assert_eq(rc, 0,
                 "a forged clear ERROR after the handshake ended the sender with exit %d (want "
                 "0: reconnect and deliver); sender stderr:\n%s",
                 rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/forged.bin", s.dir)), 0);
    cr_log_info("%d connections relayed", relayed);
    close(lfd);
    free(up.p);
    free(down.p);
    check_site(&s, "forged.bin\n");
}

Test(security, a_proof_sent_back_the_other_way_is_refused)
{
    /* Checks reflection both ways. To the receiver: its own proof for this very connection (the
     * server tag, which the receiver sends only after the sender's proof, here computed by a
     * holder of the secret) sent as the sender's AUTH is refused with ERROR 12 in the clear, so
     * the two directions' proofs differ. To a sender: a fake receiver that sends the sender's
     * own AUTH back as its proof gets exit 7 and nothing about the file (see fake_receiver()).
     * Nothing is created. */
    struct w_conn c;
    struct site s;

    start_site(&s, NULL, NULL);
    w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
    w_hello(&c);
    cr_assert(memcmp(c.keys.server_tag, c.keys.client_tag, W_KEY) != 0);
    w_send_auth(&c, c.keys.server_tag);
    w_expect_error_and_close(&c, CODE_AUTH_FAILED, 0, "after AUTH carrying the server tag");
    w_close(&c);
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "");
    harness_kill(s.pid, SIGKILL);

    fake_receiver(FAKE_REFLECT);
}

/* ---- tests: connections that never finish ------------------------------ */

struct watch {
    long long closed_after; /* ms from the start of the watch; -1 if still open */
    size_t sent;            /* bytes of the drip sent */
    struct bytes got;
};

/* Watches fd until the peer closes it or limit_ms passes; every period_ms sends the next step
 * bytes of drip (if any is left). */
static void watch_until_closed(int fd, const uint8_t *drip, size_t drip_len, size_t step,
                               int period_ms, int limit_ms, struct watch *w)
{
    long long start = w_now_ms();
    long long next = start + period_ms;

    memset(w, 0, sizeof(*w));
    w->closed_after = -1;
    for (;;) {
        long long now = w_now_ms();
        struct pollfd pfd = {fd, POLLIN, 0};
        uint8_t buf[4096];
        long long wait;
        ssize_t n;

        if (now - start >= limit_ms)
            return;
        if (drip != NULL && w->sent < drip_len && now >= next) {
            size_t k = drip_len - w->sent < step ? drip_len - w->sent : step;

            n = send(fd, drip + w->sent, k, MSG_NOSIGNAL);
            if (n < 0 && errno != EINTR) {
                w->closed_after = now - start; /* EPIPE or ECONNRESET: closed on us */
                return;
            }
            if (n > 0)
                w->sent += (size_t)n;
            next += period_ms;
        }
        wait = (drip != NULL && w->sent < drip_len ? next : start + limit_ms) - w_now_ms();
        if (wait < 0)
            wait = 0;
        if (poll(&pfd, 1, (int)wait) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            w->closed_after = w_now_ms() - start;
            return;
        }
        bytes_add(&w->got, buf, (size_t)n);
    }
}

struct handshake_seen {
    int welcome;
    int timeout_errors;
    int others;
};

static void note_handshake_frame(uint8_t type, const uint8_t *payload, uint32_t len, void *arg)
{
    struct handshake_seen *s = arg;

    if (type == W_WELCOME)
        s->welcome++;
    else if (type == W_ERROR && len >= 4 && w_get_u16(payload) == CODE_TIMEOUT)
        s->timeout_errors++;
    else if (type != W_PING)
        s->others++;
}

/* XFER_IDLE_TIMEOUT=1 makes the handshake deadline min(10 s, 1 s). */
static const char *const short_deadline[] = {"XFER_IDLE_TIMEOUT=1", NULL};

Test(security, truncated_handshake_is_closed_by_the_total_deadline)
{
    /* Checks, with a 1 s handshake deadline, two clients that send a whole HELLO and never
     * AUTH: one then falls silent, the other keeps the connection busy with a PING every
     * 300 ms, so no idle timer can be what closes it. The receiver closes each between 0.8 and
     * 3 s after it connected, having sent only WELCOME, PINGs and at most an ERROR TIMEOUT, and
     * creates nothing. */
    static uint8_t pings[64 * W_HDR];
    struct site s;

    for (size_t i = 0; i < sizeof(pings); i += W_HDR)
        w_put_header(pings + i, 0, W_PING);
    start_site(&s, NULL, short_deadline);
    for (int busy = 0; busy < 2; busy++) {
        uint8_t hello[W_HDR + W_HELLO_LEN];
        struct handshake_seen seen = {0};
        struct w_conn c;
        struct watch w;

        w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
        w_send_raw(&c, hello, w_enc_hello(hello, &c, W_MAGIC, W_VERSION));
        watch_until_closed(c.fd, busy ? pings : NULL, sizeof(pings), W_HDR, 300, 8000, &w);
        cr_assert_neq(w.closed_after, -1, "a %s connection after HELLO was still open after 8 s",
                      busy ? "pinging" : "silent");
        cr_assert(w.closed_after >= 800 && w.closed_after <= 3000,
                  "a %s connection after HELLO was closed after %lld ms, want 800..3000",
                  busy ? "pinging" : "silent", w.closed_after);
        each_clear_frame(&w.got, "the receiver", note_handshake_frame, &seen);
        cr_assert(seen.welcome == 1 && seen.others == 0 && seen.timeout_errors <= 1,
                  "the receiver sent %d WELCOME, %d ERROR TIMEOUT and %d other frames",
                  seen.welcome, seen.timeout_errors, seen.others);
        cr_log_info("%s after HELLO: closed after %lld ms (%d ERROR TIMEOUT, %zu PING bytes "
                    "sent)",
                    busy ? "pinging" : "silent", w.closed_after, seen.timeout_errors, w.sent);
        free(w.got.p);
        w_close(&c);
    }
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "");
}

Test(security, dripping_hello_is_closed_by_the_total_deadline)
{
    /* Checks that a client dripping a valid HELLO one byte every 300 ms (each byte well within
     * the 1 s idle timeout, the whole HELLO 29 s) is closed by the 1 s total handshake deadline:
     * between 0.8 and 3 s after it connected, before its HELLO is complete, without a WELCOME. */
    uint8_t hello[W_HDR + W_HELLO_LEN];
    struct handshake_seen seen = {0};
    struct w_conn c;
    struct watch w;
    struct site s;

    start_site(&s, NULL, short_deadline);
    w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
    w_enc_hello(hello, &c, W_MAGIC, W_VERSION);
    w_send_raw(&c, hello, 1);
    watch_until_closed(c.fd, hello + 1, sizeof(hello) - 1, 1, 300, 10000, &w);
    cr_assert_neq(w.closed_after, -1, "a dripping HELLO was still open after 10 s (%zu bytes in)",
                  w.sent + 1);
    cr_assert(w.closed_after >= 800 && w.closed_after <= 3000,
              "a dripping HELLO was closed after %lld ms, want 800..3000", w.closed_after);
    cr_assert_lt(w.sent + 1, sizeof(hello));
    each_clear_frame(&w.got, "the receiver", note_handshake_frame, &seen);
    cr_assert(seen.welcome == 0 && seen.others == 0 && seen.timeout_errors <= 1,
              "the receiver sent %d WELCOME, %d ERROR TIMEOUT and %d other frames", seen.welcome,
              seen.timeout_errors, seen.others);
    cr_log_info("dripping HELLO: closed after %lld ms with %zu of %zu bytes sent", w.closed_after,
                w.sent + 1, sizeof(hello));
    free(w.got.p);
    w_close(&c);
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "");
}

/* ---- tests: a hostile network ------------------------------------------ */

Test(security, flipped_ciphertext_bit_drops_the_connection_and_the_transfer_resumes)
{
    /* Checks one bit flipped by faultproxy deep inside the sealed data (5 MiB + 12345 bytes into
     * an 8 MiB transfer): the record fails to open, the receiver drops the connection, the
     * sender reconnects and resumes, exits 0, and the file is identical. */
    long long size = 8 * HARNESS_MIB;
    char *src = harness_must_src("src/flip.bin", size, 11);
    struct harness_proxy proxy;
    struct harness_proxy_stats st;
    struct site s;
    int rc;

    start_site(&s, NULL, NULL);
    rc = harness_start_proxy(
        &proxy, s.port,
        (const char *[]){"--flip-at", harness_strf("%lld", 5 * HARNESS_MIB + 12345), NULL},
        "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start: %s", harness_log("proxy"));
    rc = harness_run_send(
        (const char *[]){"--retry-for", "60", src, harness_strf("127.0.0.1:%d", proxy.port), NULL},
        NULL, "send", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/flip.bin", s.dir)), 0,
                 "flip.bin differs from its source");
    cr_assert_eq(harness_stop_proxy(&proxy, &st), 0);
    cr_assert_eq(st.flips, 1, "the proxy flipped %lld bits", st.flips);
    cr_assert_geq(st.connections, 2, "the connection was not dropped and resumed (%lld in all)",
                  st.connections);
    cr_log_info("flip: connections=%lld up=%lld down=%lld; receiver said:\n%s", st.connections,
                st.up, st.down, harness_log("recv"));
    check_site(&s, "flip.bin\n");
}

#define FLOOD 100

Test(security, flood_of_silent_connections_neither_stops_a_transfer_nor_keeps_senders_out)
{
    /* Checks 100 connections that never speak (half from 127.0.0.1, half from ::1 where IPv6
     * works), opened while a real transfer (throttled by faultproxy to last a few seconds) is
     * under way: the transfer completes intact; every flood connection is closed by the
     * receiver, at once (turned away over a limit) or by the 2 s handshake deadline, within
     * 6 s; then a new sender gets in and delivers. */
    static const char *const env[] = {"XFER_IDLE_TIMEOUT=2", NULL};
    long long size = 12 * HARNESS_MIB;
    char *src = harness_must_src("src/during.bin", size, 12);
    char *after = harness_must_src("src/after.bin", 100000, 13);
    int v6 = harness_ipv6_available();
    struct harness_proxy proxy;
    int fds[FLOOD];
    long long closed[FLOOD];
    struct bytes got[FLOOD];
    int busy = 0;
    int timeouts = 0;
    int silent = 0;
    long long start;
    long long last = 0;
    struct site s;
    long long transfer_done = -1;
    pid_t pid;
    int sent;
    int left;
    int rc;

    start_site(&s, NULL, env);
    rc = harness_start_proxy(&proxy, s.port, (const char *[]){"--throttle", "4000000", NULL},
                             "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start: %s", harness_log("proxy"));
    pid = harness_start_send(
        (const char *[]){"--retry-for", "60", src, harness_strf("127.0.0.1:%d", proxy.port), NULL},
        env, "send");
    cr_assert_gt(pid, 0);
    rc = harness_wait_dir_bytes(s.dir, 2 * HARNESS_MIB, pid, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "the transfer did not start (%s); %s", strerror(-rc),
                 harness_report(pid, "send"));

    start = w_now_ms();
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = connect_loopback(v6 && i % 2 ? AF_INET6 : AF_INET, s.port);
        closed[i] = -1;
        memset(&got[i], 0, sizeof(got[i]));
    }
    cr_assert_lt(harness_dir_bytes(s.dir), size, "the transfer ended before the flood began");

    /* Watch the flood and the transfer together: when each flood connection closes is
     * measured as it happens. */
    left = FLOOD;
    sent = -ETIMEDOUT;
    while ((left > 0 || sent == -ETIMEDOUT) && w_now_ms() - start < HARNESS_DEADLINE_MS) {
        struct pollfd pfd[FLOOD];
        int map[FLOOD];
        int n = 0;

        if (sent == -ETIMEDOUT) {
            sent = harness_wait(pid, 0);
            transfer_done = w_now_ms() - start;
        }
        if (left > 0 && w_now_ms() - start > 8000)
            break;
        for (int i = 0; i < FLOOD; i++) {
            if (closed[i] >= 0)
                continue;
            pfd[n].fd = fds[i];
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            map[n++] = i;
        }
        if (poll(pfd, (nfds_t)n, HARNESS_POLL_MS) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            uint8_t buf[4096];
            ssize_t r;

            if (pfd[k].revents == 0)
                continue;
            r = read(pfd[k].fd, buf, sizeof(buf));
            if (r > 0) {
                bytes_add(&got[map[k]], buf, (size_t)r);
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            closed[map[k]] = w_now_ms() - start;
            left--;
        }
    }
    cr_assert_eq(sent, 0, "the transfer under the flood: exit %d; stderr:\n%s\n%s", sent,
                 harness_log("send"), harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/during.bin", s.dir)), 0);
    cr_assert_eq(left, 0, "%d of %d silent connections were still open 8 s after the flood", left,
                 FLOOD);
    for (int i = 0; i < FLOOD; i++) {
        struct seen seen = {0};

        each_clear_frame(&got[i], "the receiver", note_frame, &seen);
        cr_assert_eq(seen.others, 0, "flood connection %d got frames other than PING and ERROR", i);
        if (seen.errors > 0 && seen.code == CODE_BUSY)
            busy++;
        else if (seen.errors > 0 && seen.code == CODE_TIMEOUT)
            timeouts++;
        else
            silent++;
        if (closed[i] > last)
            last = closed[i];
        free(got[i].p);
        close(fds[i]);
    }
    cr_log_info("flood: %d turned away at once (BUSY), %d closed with ERROR TIMEOUT, %d closed "
                "without ERROR; the last after %lld ms; the transfer ended %lld ms after the "
                "flood began",
                busy, timeouts, silent, last, transfer_done);
    cr_assert_leq(last, 6000, "the last flood connection was closed after %lld ms", last);

    rc = send_to(&s, after, NULL, env, "send-after");
    cr_assert_eq(rc, 0, "a sender after the flood: exit %d; stderr:\n%s\n%s", rc,
                 harness_log("send-after"), harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(after, harness_strf("%s/after.bin", s.dir)), 0);
    cr_assert_eq(harness_stop_proxy(&proxy, NULL), 0);
    check_site(&s, "after.bin\nduring.bin\n");
}

Test(security, three_wrong_secrets_lock_the_address_out_for_a_while)
{
    /* Checks the lock-out: after 3 senders from 127.0.0.1 fail to prove the secret, that address
     * gets no proof evaluated for a while. A connection that had said HELLO before the lock-out
     * and now sends the right AUTH gets ERROR (in the clear) whose text says "retry in", its
     * proof unread; a new connection is turned away at once the same way; and a sender with the
     * right secret started right after still gets its file in by retrying (--retry-for 30). */
    const char *const wrong[] = {"XFER_SECRET=" OTHER_SECRET, NULL};
    char *src = harness_must_src("src/locked.bin", 100000, 14);
    struct w_conn early;
    struct w_frame f;
    struct w_conn c;
    struct site s;
    char *text;
    long long noticed;
    int rc;

    start_site(&s, NULL, NULL);
    w_connect(&early, s.port, HARNESS_SECRET, 0, "recv");
    w_hello(&early);
    for (int i = 0; i < 3; i++) {
        char *name = harness_strf("wrong%d", i);

        rc = send_to(&s, src, NULL, wrong, name);
        cr_assert_eq(rc, 7, "wrong-secret sender %d: exit %d; stderr:\n%s", i, rc,
                     harness_log(name));
    }
    /* The third failure counts when the receiver reads that sender's AUTH. */
    rc = harness_wait_until(refusals_logged, &(int){3}, s.pid, HARNESS_MS(5000));
    cr_assert_eq(rc, 0, "the receiver did not log 3 failed proofs (%s):\n%s", strerror(-rc),
                 harness_log("recv"));
    noticed = w_now_ms();

    w_send_auth(&early, early.keys.client_tag);
    w_next(&early, &f, "ERROR refusing to look at our proof");
    cr_assert(f.type == W_ERROR && !f.sealed && w_get_u16(f.payload) == CODE_BUSY,
              "%lld ms after the third failure, the right AUTH on a connection opened before got "
              "%s, want a clear ERROR BUSY",
              w_now_ms() - noticed, w_describe(&f));
    text = harness_strf("%.*s", (int)w_get_u16(f.payload + 2), (const char *)f.payload + 4);
    cr_assert(strstr(text, "retry in") != NULL, "ERROR text \"%s\" has no \"retry in\"", text);
    w_expect_eof(&early, CLOSE_AFTER_ERROR_MS, "after refusing to look at our proof");
    w_close(&early);

    w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
    w_next(&c, &f, "ERROR turning us away");
    cr_assert(f.type == W_ERROR && !f.sealed,
              "%lld ms after the third failure, a new connection got %s, want a clear ERROR",
              w_now_ms() - noticed, w_describe(&f));
    text = harness_strf("%.*s", (int)w_get_u16(f.payload + 2), (const char *)f.payload + 4);
    cr_assert(strstr(text, "retry in") != NULL, "ERROR code %u text \"%s\" has no \"retry in\"",
              w_get_u16(f.payload), text);
    w_expect_eof(&c, CLOSE_AFTER_ERROR_MS, "after turning us away");
    w_close(&c);
    cr_log_info("turned away %lld ms after the third failure: ERROR code %u \"%s\"",
                w_now_ms() - noticed, w_get_u16(f.payload), text);

    rc = send_to(&s, src, (const char *[]){"--retry-for", "30", NULL}, NULL, "send-right");
    cr_assert_eq(rc, 0, "the right secret after the lock-out: exit %d; stderr:\n%s\n%s", rc,
                 harness_log("send-right"), harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/locked.bin", s.dir)), 0);
    cr_log_info("the right sender %s", strstr(harness_log("send-right"), "retry in") != NULL
                                           ? "was turned away first and retried"
                                           : "came after the lock-out had ended");
    check_site(&s, "locked.bin\n");
}

/* The receiver's table of addresses (GUARD_TABLE in include/xfer/guard.h, xfer(1) SECURITY). */
#define ADDR_TABLE 256
/* Connections one batch of wrong proofs keeps in their handshake at once: under the receiver's
 * overall cap of 64, so that none displaces another. */
#define PROOF_BATCH 48

/* A blocking TCP connection to 127.0.0.1:port from the loopback address src (host order), so one
 * test can act as many hosts: all of 127.0.0.0/8 is local. */
static int connect_from(uint32_t src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    char text[INET_ADDRSTRLEN];

    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(src);
    inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", text,
                 strerror(errno));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
                 "cannot connect from %s to port %d: %s", text, port, strerror(errno));
    return fd;
}

/* One wrong proof of the secret from each of the n addresses first + i: in batches, every
 * connection of a batch has its WELCOME before any sends its AUTH, so that the batch's proofs
 * are checked, and its addresses locked out if they are, all but at once. Each gets ERROR
 * AUTH_FAILED and is closed. */
static void wrong_proofs_from(uint32_t first, int n, int port)
{
    struct w_conn c[PROOF_BATCH];

    for (int done = 0; done < n; done += PROOF_BATCH) {
        int k = n - done < PROOF_BATCH ? n - done : PROOF_BATCH;

        for (int i = 0; i < k; i++) {
            w_attach(&c[i], connect_from(first + (uint32_t)(done + i), port), OTHER_SECRET, 0,
                     "recv");
            w_hello(&c[i]);
        }
        for (int i = 0; i < k; i++)
            w_send_auth(&c[i], c[i].keys.client_tag);
        for (int i = 0; i < k; i++) {
            (void)w_expect_error_and_close(&c[i], CODE_AUTH_FAILED, 0, "a wrong proof");
            w_close(&c[i]);
        }
    }
}

Test(security, a_table_full_of_locked_out_addresses_does_not_keep_a_new_address_out)
{
    /* Checks that strangers cannot fill the receiver's table of addresses to keep senders out:
     * 256 addresses (127.1.0.1 on) each fail 3 proofs, which locks them all out and fills the
     * table; then a sender with the right secret from an address not among them (127.0.0.1)
     * gets its file in at the first attempt (--retry-for 0). Then, the attack's lock-outs still
     * hold: the second address locked out is turned away with "retry in" (the first is the
     * stalest, the one the sender's address displaced). */
    const uint32_t attack = 0x7f010001u; /* 127.1.0.1 */
    char *src = harness_must_src("src/full.bin", 100000, 16);
    struct w_frame f;
    struct w_conn c;
    struct site s;
    char *text;
    int rc;

    start_site(&s, NULL, NULL);
    for (int round = 0; round < 3; round++)
        wrong_proofs_from(attack, ADDR_TABLE, s.port);

    rc = send_to(&s, src, (const char *[]){"--retry-for", "0", NULL}, NULL, "send");
    cr_assert_eq(rc, 0,
                 "a sender from a new address, with the table full of lock-outs: exit %d; "
                 "stderr:\n%s\n%s",
                 rc, harness_log("send"), harness_report(s.pid, "recv"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/full.bin", s.dir)), 0);

    w_attach(&c, connect_from(attack + 1, s.port), HARNESS_SECRET, 0, "recv");
    do
        rc = w_recv(&c, &f, REPLY_MS);
    while (rc == 1 && f.type == W_PING);
    text = rc == 1 && f.type == W_ERROR
               ? harness_strf("%.*s", (int)w_get_u16(f.payload + 2), (const char *)f.payload + 4)
               : "";
    if (rc == 1 && f.type == W_ERROR && w_get_u16(f.payload) == CODE_BUSY &&
        strstr(text, "retry in") != NULL)
        cr_log_info("after the sender, 127.1.0.2 is still locked out: \"%s\"", text);
    else
        /* Not a failure (the sender got in all the same), but not the case under test: a
         * slow run, under valgrind say, takes longer than the 1 s lock-outs. */
        cr_log_info("note: 127.1.0.2's lock-out (1 s) ended before the sender was done, so this "
                    "run did not show the sender coming in past a full table (w_recv %d, %s "
                    "\"%s\")",
                    rc, rc == 1 ? w_describe(&f) : "-", text);
    w_close(&c);
    check_site(&s, "full.bin\n");
}

/* ---- tests: text from peers -------------------------------------------- */

Test(security, escape_sequences_in_offered_names_are_refused_and_logged_escaped)
{
    /* Checks names that would drive a terminal: one with ESC sequences (clear screen, red) and
     * one starting with U+202E (right-to-left override, "gnp.exe" shows as "exe.png"). Each is
     * REFUSE BAD_NAME; the receiver logs each refusal with the name escaped (\x1b, \u{202e}),
     * and, like ERROR text a client sends before the handshake, no raw ESC, BEL or U+202E ever
     * reaches its stderr. Nothing is created. */
    static const char esc_name[] = "\x1b[2J\x1b[31mred.txt";
    static const char bidi_name[] = "\xe2\x80\xae"
                                    "gnp.exe";
    const char *const names[] = {esc_name, bidi_name};
    uint8_t buf[W_HDR + 26 + 64];
    struct w_frame f;
    struct w_conn c;
    struct site s;
    char *log;

    start_site(&s, NULL, NULL);
    w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
    w_handshake(&c);
    for (int i = 0; i < 2; i++) {
        struct w_offer o = {3, 1700004000, 0, 0644, names[i], strlen(names[i])};

        w_send(&c, buf, w_enc_offer(buf, &o));
        w_next(&c, &f, "REFUSE");
        cr_assert(f.type == W_REFUSE && w_get_u16(f.payload) == CODE_BAD_NAME,
                  "offer %d: receiver sent %s, want REFUSE BAD_NAME", i, w_describe(&f));
    }
    w_send(&c, buf, w_enc_bye(buf, 1));
    w_expect_eof(&c, REPLY_MS, "after BYE");
    w_close(&c);

    w_connect(&c, s.port, HARNESS_SECRET, 0, "recv");
    w_send_raw(&c, buf, w_enc_error(buf, CODE_IO, "\x1b]0;owned\x07\x1b[31mgoodbye"));
    w_expect_eof(&c, REPLY_MS, "after a clear ERROR");
    w_close(&c);

    cr_assert_eq(
        harness_wait_file_text(harness_pathf("recv.err"), "goodbye", s.pid, HARNESS_MS(5000)), 0,
        "the receiver did not log the ERROR text:\n%s", harness_log("recv"));
    log = harness_log("recv");
    cr_assert_null(strchr(log, '\x1b'), "a raw ESC reached the receiver's stderr:\n%s", log);
    cr_assert_null(strchr(log, '\x07'), "a raw BEL reached the receiver's stderr");
    cr_assert_null(strstr(log, "\xe2\x80\xae"), "a raw U+202E reached the receiver's stderr");
    cr_assert(strstr(log, "\\x1b[2J\\x1b[31mred.txt") != NULL,
              "the ESC name's refusal is not logged escaped:\n%s", log);
    cr_assert(strstr(log, "\\u{202e}gnp.exe") != NULL,
              "the U+202E name's refusal is not logged escaped:\n%s", log);
    cr_assert_eq(count_text(log, "refused"), 2, "want two refusals logged:\n%s", log);
    cr_assert(harness_alive(s.pid), "the receiver died: %s", harness_report(s.pid, "recv"));
    check_site(&s, "");
}

Test(security, sender_refuses_a_local_name_with_escapes_and_shows_it_escaped)
{
    /* Checks the sender's side of the same names: given local files named with an ESC sequence
     * or a leading U+202E (say, from `xfer send *` in a directory others can write to), it
     * refuses each before connecting (exit 2) and its error line shows the name escaped: no raw
     * ESC or U+202E reaches its stderr. */
    static const char *const names[] = {"a\x1b[2J\x1b[31mred.txt", "\xe2\x80\xae"
                                                                   "gnp.exe"};
    struct site s;

    start_site(&s, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        char *src = harness_must_src(harness_strf("src/%s", names[i]), 10, 15);
        char *name = harness_strf("send%d", i);
        char *log;
        int rc;

        rc = send_to(&s, src, NULL, NULL, name);
        log = harness_log(name);
        cr_assert_eq(rc, 2, "sender of a bad local name: exit %d, want 2; stderr:\n%s", rc, log);
        cr_assert_null(strchr(log, '\x1b'), "a raw ESC reached the sender's stderr (%zu bytes)",
                       strlen(log));
        cr_assert_null(strstr(log, "\xe2\x80\xae"), "a raw U+202E reached the sender's stderr");
    }
    check_site(&s, "");
}

Test(security, line_separators_in_names_are_logged_escaped_and_names_are_not_normalised)
{
    /* Checks issue 9 finding 9: a file whose name holds U+2028 (LINE SEPARATOR) arrives under that
     * name, but neither side's log shows the character raw (it is \u{2028}), so a name cannot
     * pass for two log lines; and the NFC and NFD spellings of "café" arrive as two files, as
     * xfer(1) RULES documents (names are carried byte for byte, never normalised). */
    static const char lsep[] = "one\xe2\x80\xa8two.txt";
    static const char nfc[] = "caf\xc3\xa9";
    static const char nfd[] = "cafe\xcc\x81";
    const char *const names[] = {lsep, nfc, nfd};
    char *src[3];
    struct site s;
    char *log;
    int rc;

    start_site(&s, NULL, NULL);
    for (int i = 0; i < 3; i++)
        src[i] = harness_must_src(harness_strf("src/%s", names[i]), 1000 + i, 90 + i);
    rc = harness_run_send(
        (const char *[]){src[0], src[1], src[2], harness_strf("127.0.0.1:%d", s.port), NULL},
        NULL, "send", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(s.pid, "recv"));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(harness_cmp_files(src[i], harness_strf("%s/%s", s.dir, names[i])), 0,
                     "file %d did not arrive under its own name; D holds:\n%s", i,
                     harness_ls(s.dir));
    log = harness_log("recv");
    cr_assert_null(strstr(log, "\xe2\x80\xa8"), "a raw U+2028 reached the receiver's stderr:\n%s",
                   log);
    cr_assert(strstr(log, "one\\u{2028}two.txt") != NULL, "the name is not logged escaped:\n%s",
              log);
    cr_assert_null(strstr(harness_log("send"), "\xe2\x80\xa8"),
                   "a raw U+2028 reached the sender's stderr:\n%s", harness_log("send"));
}

/* What the receiver logs for strangers (xfer(1) OUTPUT and SECURITY): a burst of 5 lines of a
 * kind, then one a second; a stranger's ERROR text cut to 200 characters. */
#define LOG_BURST 5
#define STRANGER_TEXT 200
#define FLOOD_ERRORS 200
#define FLOOD_PROOFS 100

/* The longest line of text that holds needle; 0 if none does. */
static size_t longest_line_with(const char *text, const char *needle)
{
    size_t most = 0;

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char *line = harness_strf("%.*s", (int)len, p);

        if (strstr(line, needle) != NULL && len > most)
            most = len;
        p = nl != NULL ? nl + 1 : NULL;
    }
    return most;
}

/* One connection that sends a clear ERROR with text before anything else, and is closed. */
static void stranger_error(int port, const char *text)
{
    uint8_t buf[W_HDR + 4 + W_MAX_TEXT];
    struct w_conn c;

    w_connect(&c, port, HARNESS_SECRET, 0, "recv");
    w_send_raw(&c, buf, w_enc_error(buf, CODE_IO, text));
    w_expect_eof(&c, REPLY_MS, "after a clear ERROR");
    w_close(&c);
}

Test(security, strangers_cannot_flood_the_log_with_error_texts_or_wrong_proofs)
{
    /* Checks what connections that never authenticate can make the receiver log: 200 that each
     * send a clear ERROR with 1024 bytes of text (control bytes, 4 characters each once escaped)
     * and 100 wrong proofs from 100 addresses get at most 5 lines of each kind plus one a second
     * while they run, each ERROR text cut to 200 characters with a "[cut from 1024 bytes]"
     * marker; the next line let through counts the lines held back. The receiver still takes a
     * file afterwards. */
    const char *path = harness_pathf("recv.err");
    char *src = harness_must_src("src/after.bin", 1000, 17);
    char text[W_MAX_TEXT + 1];
    long long start;
    long long deadline;
    long long budget;
    struct site s;
    char *log;
    int errors;
    int refusals;
    int rc;

    memset(text, '\x01', W_MAX_TEXT);
    memcpy(text, "floodmark", 9);
    text[W_MAX_TEXT] = '\0';
    start_site(&s, NULL, NULL);
    start = w_now_ms();
    for (int i = 0; i < FLOOD_ERRORS; i++)
        stranger_error(s.port, text);
    wrong_proofs_from(0x7f020001u, FLOOD_PROOFS, s.port); /* 127.2.0.1 on */
    /* Everything above was logged before its connection closed. */
    budget = LOG_BURST + (w_now_ms() - start) / 1000 + 1;
    log = harness_log("recv");
    errors = count_text(log, "floodmark");
    refusals = count_text(log, "does not hold this receiver's secret");
    cr_log_info("%d ERROR lines and %d refusals logged for %d and %d in %lld ms; %zu bytes", errors,
                refusals, FLOOD_ERRORS, FLOOD_PROOFS, w_now_ms() - start, strlen(log));
    cr_assert_geq(errors, 1, "no ERROR text was logged at all:\n%s", log);
    cr_assert_leq(errors, budget, "%d strangers' ERROR lines logged, want at most %lld", errors,
                  budget);
    cr_assert_geq(refusals, 1, "no refused proof was logged at all:\n%s", log);
    cr_assert_leq(refusals, budget, "%d refused proofs logged, want at most %lld", refusals,
                  budget);
    cr_assert(strstr(log, "[cut from 1024 bytes]") != NULL, "no cut marker:\n%s", log);
    cr_assert_leq(longest_line_with(log, "floodmark"), STRANGER_TEXT + 160,
                  "an ERROR line of %zu bytes", longest_line_with(log, "floodmark"));

    /* The next line let through says how many were held back. */
    deadline = w_now_ms() + HARNESS_MS(10000);
    do
        stranger_error(s.port, text);
    while (harness_wait_file_text(path, "more like it, not shown", s.pid, HARNESS_POLL_MS) != 0 &&
           w_now_ms() < deadline);
    log = harness_log("recv");
    cr_assert_geq(count_lines_with(log, "floodmark", "more like it, not shown"), 1,
                  "no ERROR line counted the lines held back:\n%s", log);

    rc = send_to(&s, src, NULL, NULL, "send");
    cr_assert_eq(rc, 0, "a sender after the flood: exit %d; stderr:\n%s\n%s", rc,
                 harness_log("send"), harness_report(s.pid, "recv"));
    check_site(&s, "after.bin\n");
}
