/* The receiver's rules about names: existing files, --overwrite, two senders of one name, and
 * several senders of different names at once. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(rules, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static int send_one(const char *src, int port, const char *name)
{
    return harness_run_send((const char *[]){src, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
                            name, HARNESS_DEADLINE_MS);
}

Test(rules, identical_existing_file_is_reported_complete_and_left_alone)
{
    /* Checks that an existing D/NAME with the same bytes gives exit 0 and is not replaced
     * (same inode, same mtime). */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/same.bin", 4 * HARNESS_MIB, 31);
    char *dst = harness_strf("%s/same.bin", dir);
    struct stat before;
    struct stat after;
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    cr_assert_eq(harness_make_file(dst, 4 * HARNESS_MIB, 31), 0);
    cr_assert_eq(stat(dst, &before), 0);
    rc = send_one(src, port, "send");
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert_eq(stat(dst, &after), 0, "%s is gone", dst);
    cr_assert_eq(after.st_ino, before.st_ino, "%s was replaced (new inode)", dst);
    cr_assert(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                  after.st_mtim.tv_nsec == before.st_mtim.tv_nsec,
              "%s was rewritten (mtime changed)", dst);
    cr_assert_eq(harness_cmp_files(src, dst), 0);
    harness_must_ls(dir, "same.bin\n");
}

Test(rules, different_existing_file_is_refused_with_exit_4)
{
    /* Checks that an existing D/NAME with other bytes is left untouched and the sender exits 4
     * (EXISTS). */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/clash.bin", 4 * HARNESS_MIB, 32);
    char *orig = harness_must_src("orig/clash.bin", 4 * HARNESS_MIB, 33);
    char *dst = harness_strf("%s/clash.bin", dir);
    struct stat before;
    struct stat after;
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    cr_assert_eq(harness_make_file(dst, 4 * HARNESS_MIB, 33), 0);
    cr_assert_eq(stat(dst, &before), 0);
    rc = send_one(src, port, "send");
    cr_assert_eq(rc, 4, "sender exit %d (want 4); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert_eq(stat(dst, &after), 0, "%s is gone", dst);
    cr_assert_eq(after.st_ino, before.st_ino, "%s was replaced (new inode)", dst);
    cr_assert_eq(harness_cmp_files(orig, dst), 0, "%s was modified", dst);
    cr_expect(strstr(harness_log("send"), "xfer: error:") != NULL,
              "no `xfer: error:` line; stderr:\n%s", harness_log("send"));
}

Test(rules, overwrite_replaces_a_different_existing_file)
{
    /* Checks that with recv --overwrite an existing different D/NAME is replaced: exit 0. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/clash.bin", 4 * HARNESS_MIB, 34);
    char *dst = harness_strf("%s/clash.bin", dir);
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, (const char *[]){"--overwrite", NULL}, NULL, "recv");
    cr_assert_eq(harness_make_file(dst, 6 * HARNESS_MIB, 35), 0);
    rc = send_one(src, port, "send");
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert_eq(harness_cmp_files(src, dst), 0, "%s was not replaced", dst);
    harness_must_ls(dir, "clash.bin\n");
}

Test(rules, second_sender_of_the_same_name_is_refused_while_the_first_runs)
{
    /* Checks that two senders of one NAME at once end with the first succeeding and the
     * second refused BUSY (exit 4). */
    char *dir = harness_pathf("dst");
    char *src1 = harness_must_src("one/same.bin", 32 * HARNESS_MIB, 36);
    char *src2 = harness_must_src("two/same.bin", 32 * HARNESS_MIB, 36);
    char *dst = harness_strf("%s/same.bin", dir);
    struct harness_proxy proxy;
    pid_t send1;
    pid_t recv;
    int port;
    int rc;

    recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    /* Throttled so the first sender is still streaming when the second arrives. */
    rc = harness_start_proxy(
        &proxy, port, (const char *[]){"--throttle", harness_strf("%lld", 4 * HARNESS_MIB), NULL},
        "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start (%s); stderr:\n%s", strerror(-rc),
                 harness_log("proxy"));
    send1 = harness_start_send(
        (const char *[]){src1, harness_strf("127.0.0.1:%d", proxy.port), NULL}, NULL, "send1");
    cr_assert_gt(send1, 0);
    rc = harness_wait_dir_bytes(harness_strf("%s/.xfer", dir), HARNESS_MIB, send1,
                                HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "first transfer did not get under way (%s); stderr:\n%s", strerror(-rc),
                 harness_log("send1"));

    rc = harness_run_send(
        (const char *[]){"--retry-for", "10", src2, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
        "send2", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 4, "second sender exit %d (want 4, busy); stderr:\n%s", rc,
                 harness_log("send2"));
    cr_assert(harness_alive(send1), "first sender ended before the second was refused");

    rc = harness_wait(send1, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "first sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send1"),
                 harness_report(recv, "recv"));
    cr_assert_eq(harness_cmp_files(src1, dst), 0, "%s differs from its source", dst);
}

Test(rules, four_concurrent_senders_of_different_files_all_succeed)
{
    /* Checks one receiver serving four senders at once: all exit 0, all copies identical. */
    char *dir = harness_pathf("dst");
    char *src[4];
    pid_t send[4];
    pid_t recv;
    int port;
    int rc;
    int i;

    recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    for (i = 0; i < 4; i++)
        src[i] = harness_must_src(harness_strf("src/f%d.bin", i), 8 * HARNESS_MIB + i * 4099,
                                  40 + (uint64_t)i);
    for (i = 0; i < 4; i++) {
        send[i] =
            harness_start_send((const char *[]){src[i], harness_strf("127.0.0.1:%d", port), NULL},
                               NULL, harness_strf("send%d", i));
        cr_assert_gt(send[i], 0, "cannot start sender %d", i);
    }
    for (i = 0; i < 4; i++) {
        char *name = harness_strf("send%d", i);

        rc = harness_wait(send[i], HARNESS_DEADLINE_MS);
        cr_assert_eq(rc, 0, "sender %d exit %d (want 0); stderr:\n%s\n%s", i, rc, harness_log(name),
                     harness_report(recv, "recv"));
    }
    for (i = 0; i < 4; i++) {
        char *dst = harness_strf("%s/f%d.bin", dir, i);

        cr_assert_eq(harness_cmp_files(src[i], dst), 0, "%s differs from its source", dst);
    }
    harness_must_ls(dir, "f0.bin\nf1.bin\nf2.bin\nf3.bin\n");
}
