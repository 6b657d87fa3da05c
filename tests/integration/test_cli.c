/* The command-line contract: usage errors, local I/O errors, an unreachable receiver. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

TestSuite(cli, .init = harness_setup, .fini = harness_teardown, .timeout = 60);

/* Bound for commands that should fail at once. */
#define QUICK_MS HARNESS_MS(10000)

/* Runs XFER_BIN with args and returns its exit code. */
static int run_xfer(const char *const args[], const char *name)
{
    const char *argv[16];
    size_t n = 0;
    pid_t pid;

    argv[n++] = XFER_BIN;
    while (args != NULL && *args != NULL)
        argv[n++] = *args++;
    argv[n] = NULL;
    pid = harness_spawn(argv, NULL, NULL, name);
    cr_assert_gt(pid, 0, "cannot start xfer: %s", strerror(-pid));
    return harness_wait(pid, QUICK_MS);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(cli, exits_2_without_arguments)
{
    /* Checks that a bare `xfer` is a usage error. */
    int rc = run_xfer(NULL, "xfer");

    cr_assert_eq(rc, 2, "exit %d (want 2); stderr:\n%s", rc, harness_log("xfer"));
}

Test(cli, exits_2_on_an_unknown_command)
{
    /* Checks that `xfer frobnicate` is a usage error. */
    int rc = run_xfer((const char *[]){"frobnicate", NULL}, "xfer");

    cr_assert_eq(rc, 2, "exit %d (want 2); stderr:\n%s", rc, harness_log("xfer"));
}

Test(cli, send_exits_2_on_an_unknown_option)
{
    /* Checks that `xfer send --no-such-option FILE HOST` is a usage error. */
    char *src = harness_must_src("src/a.bin", 10, 51);
    int rc =
        run_xfer((const char *[]){"send", "--no-such-option", src, "127.0.0.1:9", NULL}, "xfer");

    cr_assert_eq(rc, 2, "exit %d (want 2); stderr:\n%s", rc, harness_log("xfer"));
}

Test(cli, recv_exits_2_on_an_unknown_option)
{
    /* Checks that `xfer recv --no-such-option` is a usage error. */
    int rc = run_xfer((const char *[]){"recv", "--no-such-option", "--port", "0", NULL}, "xfer");

    cr_assert_eq(rc, 2, "exit %d (want 2); stderr:\n%s", rc, harness_log("xfer"));
}

Test(cli, send_exits_2_when_the_host_is_missing)
{
    /* Checks that `xfer send FILE` (no HOST) is a usage error. */
    char *src = harness_must_src("src/a.bin", 10, 52);
    int rc = run_xfer((const char *[]){"send", src, NULL}, "xfer");

    cr_assert_eq(rc, 2, "exit %d (want 2); stderr:\n%s", rc, harness_log("xfer"));
}

Test(cli, send_exits_2_on_duplicate_basenames)
{
    /* Checks that two FILEs with one basename are rejected before anything is sent. */
    char *a = harness_must_src("one/dup.bin", 10, 53);
    char *b = harness_must_src("two/dup.bin", 10, 54);
    int rc = run_xfer((const char *[]){"send", a, b, "127.0.0.1:9", NULL}, "xfer");

    cr_assert_eq(rc, 2, "exit %d (want 2); stderr:\n%s", rc, harness_log("xfer"));
}

Test(cli, help_and_version_exit_0)
{
    /* Checks that --help and --version succeed. */
    int rc = run_xfer((const char *[]){"--help", NULL}, "help");

    cr_assert_eq(rc, 0, "--help exit %d (want 0); stderr:\n%s", rc, harness_log("help"));
    rc = run_xfer((const char *[]){"--version", NULL}, "version");
    cr_assert_eq(rc, 0, "--version exit %d (want 0); stderr:\n%s", rc, harness_log("version"));
}

Test(cli, send_exits_6_when_the_file_is_missing)
{
    /* Checks that a missing FILE is a local I/O error (6) even with a receiver up. */
    char *dir = harness_pathf("dst");
    int port;
    int rc;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = run_xfer((const char *[]){"send", harness_pathf("no-such-file"),
                                   harness_strf("127.0.0.1:%d", port), NULL},
                  "send");
    cr_assert_eq(rc, 6, "exit %d (want 6); stderr:\n%s", rc, harness_log("send"));
    cr_expect(strstr(harness_log("send"), "xfer: error:") != NULL,
              "no `xfer: error:` line; stderr:\n%s", harness_log("send"));
}

Test(cli, send_exits_6_when_the_file_is_a_directory)
{
    /* Checks that a FILE that is not a regular file is a local I/O error (6). */
    char *dir = harness_pathf("dst");
    char *notfile = harness_pathf("adir");
    int port;
    int rc;

    cr_assert_eq(harness_mkdirs(notfile), 0);
    harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = run_xfer((const char *[]){"send", notfile, harness_strf("127.0.0.1:%d", port), NULL},
                  "send");
    cr_assert_eq(rc, 6, "exit %d (want 6); stderr:\n%s", rc, harness_log("send"));
}

Test(cli, recv_exits_6_when_the_dir_is_unusable)
{
    /* Checks that `recv --dir` naming a regular file is a local I/O error (6). */
    char *file = harness_must_src("src/plain", 10, 55);
    int rc = run_xfer((const char *[]){"recv", "--port", "0", "--dir", file, NULL}, "recv");

    cr_assert_eq(rc, 6, "exit %d (want 6); stderr:\n%s", rc, harness_log("recv"));
}

/* Listens on ADDR:port (IPv6 sockets are v6-only); returns the fd. */
static int hold_port(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;
    int fd;

    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

        sa->sin_family = AF_INET;
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
        sa->sin_port = htons((uint16_t)port);
        len = sizeof(*sa);
    } else {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

        sa->sin6_family = AF_INET6;
        sa->sin6_addr = in6addr_any;
        sa->sin6_port = htons((uint16_t)port);
        len = sizeof(*sa);
    }
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)); /* best effort */
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1) < 0) {
        int r = -errno;

        close(fd);
        return r;
    }
    return fd;
}

Test(cli, recv_exits_6_when_the_port_is_taken)
{
    /* Checks that a receiver that can bind neither 0.0.0.0:P nor [::]:P exits 6. */
    char *dir = harness_pathf("dst");
    int port = harness_free_port();
    int fd4;
    int fd6 = -1;
    int rc;

    cr_assert_gt(port, 0);
    cr_assert_eq(harness_mkdirs(dir), 0);
    fd4 = hold_port(AF_INET, port);
    cr_assert_geq(fd4, 0, "cannot hold 0.0.0.0:%d: %s", port, strerror(-fd4));
    if (harness_ipv6_available()) {
        fd6 = hold_port(AF_INET6, port);
        cr_assert_geq(fd6, 0, "cannot hold [::]:%d: %s", port, strerror(-fd6));
    }
    rc = run_xfer((const char *[]){"recv", "--port", harness_strf("%d", port), "--dir", dir, NULL},
                  "recv");
    close(fd4);
    if (fd6 >= 0)
        close(fd6);
    cr_assert_eq(rc, 6, "exit %d (want 6); stderr:\n%s", rc, harness_log("recv"));
}

Test(cli, send_exits_3_when_the_receiver_is_unreachable)
{
    /* Checks that `send --retry-for 2` to a closed port gives up with exit 3 within 10 s. */
    char *src = harness_must_src("src/a.bin", 1000, 56);
    int port = harness_free_port();
    long long start;
    long long elapsed;
    int rc;

    cr_assert_gt(port, 0);
    start = now_ms();
    rc = run_xfer(
        (const char *[]){"send", "--retry-for", "2", src, harness_strf("127.0.0.1:%d", port), NULL},
        "send");
    elapsed = now_ms() - start;
    cr_assert_neq(rc, -ETIMEDOUT, "still retrying after %d ms; stderr:\n%s", QUICK_MS,
                  harness_log("send"));
    cr_assert_eq(rc, 3, "exit %d (want 3) after %lld ms; stderr:\n%s", rc, elapsed,
                 harness_log("send"));
    cr_assert_geq(elapsed, 1500, "gave up after %lld ms, before --retry-for 2 ran out", elapsed);
}
