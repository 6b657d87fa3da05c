/* Plain transfers over loopback with no faults: sizes, names, several files, IPv6, --once. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(basic, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

/* Sends one file to 127.0.0.1:port and expects exit 0 and identical bytes at dir/name. */
static void send_and_check(const char *name, long long size, uint64_t seed, const char *dir,
                           int port)
{
    char *src = harness_must_src(harness_strf("src/%s", name), size, seed);
    char *dst = harness_strf("%s/%s", dir, name);
    int rc;

    rc = harness_run_send((const char *[]){src, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
                          "send", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); sender stderr:\n%s\nreceiver stderr:\n%s", rc,
                 harness_log("send"), harness_log("recv"));
    cr_assert_eq(harness_cmp_files(src, dst), 0, "%s differs from its source", dst);
}

Test(basic, delivers_a_5_mb_file_intact_and_leaves_only_that_file)
{
    /* Checks a plain transfer: exit 0, identical bytes, and no .xfer state left behind. */
    char *dir = harness_pathf("dst");
    int port;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    send_and_check("data.bin", 5 * HARNESS_MIB, 1, dir, port);
    harness_must_ls(dir, "data.bin\n");
}

Test(basic, delivers_a_zero_byte_file)
{
    /* Checks that an empty file arrives as an empty file and leaves no state. */
    char *dir = harness_pathf("dst");
    int port;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    send_and_check("empty", 0, 2, dir, port);
    harness_must_ls(dir, "empty\n");
}

Test(basic, delivers_a_one_byte_file)
{
    /* Checks the smallest non-empty file (a chunk far shorter than the chunk size). */
    char *dir = harness_pathf("dst");
    int port;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    send_and_check("one", 1, 3, dir, port);
    harness_must_ls(dir, "one\n");
}

Test(basic, delivers_a_file_whose_name_has_spaces)
{
    /* Checks that a name with spaces survives the wire and lands under the same name. */
    char *dir = harness_pathf("dst");
    int port;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    send_and_check("my file  with spaces.bin", 300 * 1024, 4, dir, port);
    harness_must_ls(dir, "my file  with spaces.bin\n");
}

Test(basic, delivers_a_file_whose_name_is_utf8)
{
    /* Checks that a UTF-8 name arrives byte-identical. */
    char *dir = harness_pathf("dst");
    int port;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    send_and_check("r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt", 200 * 1024, 5, dir, port);
    harness_must_ls(dir, "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt\n");
}

Test(basic, delivers_two_files_in_one_session)
{
    /* Checks `xfer send a b HOST:PORT`: both files arrive intact, nothing else is left. */
    char *dir = harness_pathf("dst");
    char *a = harness_must_src("src/a.bin", 3 * HARNESS_MIB + 17, 6);
    char *b = harness_must_src("src/b.bin", 2 * HARNESS_MIB - 5, 7);
    int port;
    int rc;

    harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = harness_run_send((const char *[]){a, b, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
                          "send", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(a, harness_strf("%s/a.bin", dir)), 0, "a.bin differs");
    cr_assert_eq(harness_cmp_files(b, harness_strf("%s/b.bin", dir)), 0, "b.bin differs");
    harness_must_ls(dir, "a.bin\nb.bin\n");
}

Test(basic, delivers_over_ipv6_loopback)
{
    /* Checks `xfer send FILE [::1]:PORT` against a receiver listening on all interfaces. */
    char *dir = harness_pathf("dst");
    char *src;
    int port;
    int rc;

    if (!harness_ipv6_available())
        cr_skip_test("IPv6 loopback (::1) is not available here");
    harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = harness_wait_port("::1", port, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "receiver does not accept on [::1]:%d; stderr:\n%s", port,
                 harness_log("recv"));
    src = harness_must_src("src/v6.bin", 2 * HARNESS_MIB, 8);
    rc = harness_run_send((const char *[]){src, harness_strf("[::1]:%d", port), NULL}, NULL, "send",
                          HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s", rc, harness_log("send"));
    cr_assert_eq(harness_cmp_files(src, harness_strf("%s/v6.bin", dir)), 0, "v6.bin differs");
}

Test(basic, recv_once_exits_0_after_one_session)
{
    /* Checks that `recv --once` exits 0 by itself once a sender session has completed. */
    char *dir = harness_pathf("dst");
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, (const char *[]){"--once", NULL}, NULL, "recv");
    send_and_check("once.bin", 1 * HARNESS_MIB, 9, dir, port);
    rc = harness_wait(recv, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "recv --once exit %d (want 0, -%d = still running); stderr:\n%s", rc,
                 ETIMEDOUT, harness_log("recv"));
}
