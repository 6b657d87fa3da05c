/* Processes killed mid-transfer, and what a later run finds: a resumable partial, a restarted
 * receiver, a changed source, a damaged partial. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(resume, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static const char *const idle_env[] = {"XFER_IDLE_TIMEOUT=2", NULL};

/* The seed of every source file here. */
#define SRC_SEED 21

static void start_slow_transfer(struct harness_slow *r, const char *name, long long size,
                                long long min_partial, const char *const send_extra[])
{
    harness_must_slow_transfer(r, name, size, SRC_SEED, min_partial, send_extra, idle_env);
}

/* kill -9 the first sender, then stop the proxy so the receiver sees the connection end. */
static void kill_sender(struct harness_slow *r)
{
    int rc;

    rc = harness_kill(r->send, SIGKILL);
    cr_assert_eq(rc, 0, "cannot kill the sender: %s", strerror(-rc));
    rc = harness_stop_proxy(&r->proxy, NULL);
    cr_assert_eq(rc, 0, "cannot stop the proxy: %s", strerror(-rc));
}

/* Reruns the sender straight to the receiver and expects exit 0. */
static void rerun_sender(struct harness_slow *r)
{
    int rc;

    rc =
        harness_run_send((const char *[]){r->src, harness_strf("127.0.0.1:%d", r->recv_port), NULL},
                         idle_env, "send2", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "rerun sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send2"),
                 harness_report(r->recv, "recv"));
}

Test(resume, rerun_sender_resumes_after_kill_9)
{
    /* Checks that after kill -9 of the sender a rerun resumes (says "resuming") and the copy is
     * identical. */
    struct harness_slow r;

    start_slow_transfer(&r, "big.bin", 48 * HARNESS_MIB, 8 * HARNESS_MIB, NULL);
    kill_sender(&r);
    rerun_sender(&r);
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0, "%s differs from its source", r.dst);
    cr_assert(strstr(harness_log("send2"), "resuming") != NULL,
              "rerun sender did not resume; stderr:\n%s", harness_log("send2"));
    harness_must_ls(r.dir, "big.bin\n");
}

Test(resume, retrying_sender_survives_receiver_kill_9_and_restart)
{
    /* Checks that a sender with --retry-for 60 rides out kill -9 of the receiver and its restart
     * on the same --dir and port, finishing with an identical copy. */
    struct harness_slow r;
    pid_t recv2;
    int rc;

    start_slow_transfer(&r, "big.bin", 32 * HARNESS_MIB, 8 * HARNESS_MIB,
                        (const char *[]){"--retry-for", "60", NULL});
    rc = harness_kill(r.recv, SIGKILL);
    cr_assert_eq(rc, 0, "cannot kill the receiver: %s", strerror(-rc));
    recv2 = harness_start_recv(r.recv_port, r.dir, NULL, idle_env, "recv2");
    cr_assert_gt(recv2, 0, "restarted receiver did not start (%s); stderr:\n%s", strerror(-recv2),
                 harness_log("recv2"));
    rc = harness_wait(r.send, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s\nrestarted receiver (%s) stderr:\n%s",
                 rc, harness_log("send1"), harness_describe(recv2), harness_log("recv2"));
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0, "%s differs from its source", r.dst);
    cr_expect(strstr(harness_log("send1"), "resuming") != NULL,
              "sender restarted from 0 instead of resuming; stderr:\n%s", harness_log("send1"));
    harness_must_ls(r.dir, "big.bin\n");
}

Test(resume, changed_source_is_sent_again_from_scratch)
{
    /* Checks that when the source changes (same size, new bytes, new mtime) between attempts,
     * the final file is the new content, not a splice of old partial and new data. */
    struct harness_slow r;
    struct stat st;
    struct timespec times[2];
    long long size = 32 * HARNESS_MIB;

    start_slow_transfer(&r, "changing.bin", size, 8 * HARNESS_MIB, NULL);
    kill_sender(&r);
    cr_assert_eq(stat(r.src, &st), 0);
    cr_assert_eq(harness_make_file(r.src, size, 22), 0, "cannot rewrite the source");
    /* Ten seconds later than before, so even a coarse mtime visibly changes. */
    times[0] = st.st_atim;
    times[1] = st.st_mtim;
    times[1].tv_sec += 10;
    cr_assert_eq(utimensat(AT_FDCWD, r.src, times, 0), 0, "cannot set mtime: %s", strerror(errno));
    rerun_sender(&r);
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0,
                 "%s is not the new source content (old partial reused?)", r.dst);
    harness_must_ls(r.dir, "changing.bin\n");
}

/* XORs len bytes at off in the file at path with 0xff. */
static void corrupt(const char *path, off_t off, size_t len)
{
    unsigned char buf[256];
    size_t i;
    int fd;

    cr_assert_leq(len, sizeof(buf));
    fd = open(path, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0, "cannot open %s: %s", path, strerror(errno));
    cr_assert_eq(pread(fd, buf, len, off), (ssize_t)len, "cannot read %s at %lld", path,
                 (long long)off);
    for (i = 0; i < len; i++)
        buf[i] ^= 0xff;
    cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len, "cannot write %s", path);
    cr_assert_eq(close(fd), 0);
}

Test(resume, damaged_partial_is_detected_and_resent)
{
    /* Checks that bytes corrupted in the on-disk .part (within the confirmed range) are caught
     * against the journal on resume and sent again: the final file is identical. */
    struct harness_slow r;
    char *part;

    start_slow_transfer(&r, "damaged.bin", 48 * HARNESS_MIB, 8 * HARNESS_MIB, NULL);
    kill_sender(&r);
    part = harness_find_one(r.xfer_dir, ".part");
    cr_assert_not_null(part, "expected exactly one *.part under %s; it has:\n%s", r.xfer_dir,
                       harness_ls(r.xfer_dir));
    corrupt(part, 4096, 64);
    corrupt(part, 2 * HARNESS_MIB + 17, 16);
    rerun_sender(&r);
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0,
                 "%s differs from its source: the damaged partial was kept", r.dst);
    harness_must_ls(r.dir, "damaged.bin\n");
}

Test(resume, state_left_beside_an_identical_file_is_removed)
{
    /* Checks that a partial and journal left in .xfer (a receiver killed after its commit's
     * rename but before removing the journal) go away once a rerun finds the file already there
     * and identical: the rerun exits 0 and --dir holds just the file. */
    struct harness_slow r;
    pid_t recv2;
    int port;
    int rc;

    start_slow_transfer(&r, "big.bin", 16 * HARNESS_MIB, 4 * HARNESS_MIB, NULL);
    rc = harness_kill(r.recv, SIGKILL);
    cr_assert_eq(rc, 0, "cannot kill the receiver: %s", strerror(-rc));
    kill_sender(&r);
    cr_assert_neq(harness_ls(r.xfer_dir), NULL, "no .xfer left behind to test with");
    cr_assert_str_neq(harness_ls(r.xfer_dir), "", "no state left behind to test with");
    /* The file as the commit would have left it: the same seed gives the same bytes. */
    cr_assert_eq(harness_make_file(r.dst, 16 * HARNESS_MIB, SRC_SEED), 0);
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0);
    recv2 = harness_must_recv(&port, r.dir, NULL, idle_env, "recv2");
    rc = harness_run_send((const char *[]){r.src, harness_strf("127.0.0.1:%d", port), NULL},
                          idle_env, "send2", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "rerun sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send2"),
                 harness_report(recv2, "recv2"));
    cr_assert(strstr(harness_log("recv2"), "already here and identical") != NULL,
              "receiver did not find the file identical; stderr:\n%s", harness_log("recv2"));
    harness_must_ls(r.dir, "big.bin\n");
}
