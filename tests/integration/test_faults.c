/* Network faults injected by faultproxy between sender and receiver: cuts, a flipped bit, a
 * stall, and stray non-xfer clients on the receiver port. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(faults, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

#define WINDOW_BYTES (64 * HARNESS_MIB)

/* Short liveness timeouts so a stalled or half-dead connection is noticed in seconds. */
static const char *const idle_env[] = {"XFER_IDLE_TIMEOUT=2", NULL};

struct run {
    char *dir;
    char *src;
    long long size;
    pid_t recv;
    int recv_port;
    struct harness_proxy proxy;
    struct harness_proxy_stats stats;
};

/* Receiver into dst/, proxy with the given faults in front of it, source src/NAME. */
static void setup_run(struct run *r, const char *name, long long size, const char *const fault[])
{
    int rc;

    memset(r, 0, sizeof(*r));
    r->size = size;
    r->dir = harness_pathf("dst");
    r->src = harness_must_src(harness_strf("src/%s", name), size, 11);
    r->recv = harness_must_recv(&r->recv_port, r->dir, NULL, idle_env, "recv");
    rc = harness_start_proxy(&r->proxy, r->recv_port, fault, "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start (%s); stderr:\n%s", strerror(-rc),
                 harness_log("proxy"));
}

/* Sends r->src through the proxy, expects exit 0 and an identical copy, stops the proxy and
 * reads its stats into r->stats. */
static void send_through_proxy_and_check(struct run *r, const char *name)
{
    char *dst = harness_strf("%s/%s", r->dir, name);
    int rc;

    rc = harness_run_send((const char *[]){"--retry-for", "60", r->src,
                                           harness_strf("127.0.0.1:%d", r->proxy.port), NULL},
                          idle_env, "send", HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); sender stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(r->recv, "recv"));
    cr_assert_eq(harness_cmp_files(r->src, dst), 0, "%s differs from its source", dst);
    rc = harness_stop_proxy(&r->proxy, &r->stats);
    cr_assert_eq(rc, 0, "cannot read proxy stats (%s); proxy stderr:\n%s", strerror(-rc),
                 harness_log("proxy"));
    cr_log_info("%s: %lld-byte file, proxy connections=%lld up=%lld down=%lld cuts=%lld "
                "flips=%lld stalls=%lld",
                name, r->size, r->stats.connections, r->stats.up, r->stats.down, r->stats.cuts,
                r->stats.flips, r->stats.stalls);
}

Test(faults, resumes_after_a_cut_and_resends_at_most_one_window)
{
    /* Checks a connection reset at 1/3 of a 48 MiB file: the sender reconnects, the copy is
     * identical, and the bytes sent again are bounded by the 64 MiB in-flight window. */
    struct run r;
    long long size = 48 * HARNESS_MIB;

    setup_run(&r, "cut.bin", size,
              (const char *[]){"--cut-after", harness_strf("%lld", size / 3), NULL});
    send_through_proxy_and_check(&r, "cut.bin");
    cr_assert_geq(r.stats.cuts, 1, "the proxy never cut the connection");
    cr_assert_geq(r.stats.connections, 2, "the sender did not reconnect");
    cr_assert_leq(r.stats.up, size + WINDOW_BYTES + HARNESS_MIB,
                  "sent %lld bytes up for a %lld-byte file: more than one window resent",
                  r.stats.up, size);
    cr_assert_leq(r.stats.up, 2 * size,
                  "sent %lld bytes up for a %lld-byte file: more than the file twice", r.stats.up,
                  size);
    harness_must_ls(r.dir, "cut.bin\n");
}

Test(faults, survives_three_cuts)
{
    /* Checks three resets (at 8, 16 and 24 MiB sent) during one 48 MiB file. */
    struct run r;
    long long size = 48 * HARNESS_MIB;

    setup_run(&r, "cuts.bin", size,
              (const char *[]){"--cut-after", harness_strf("%lld", 8 * HARNESS_MIB), "--cuts", "3",
                               NULL});
    send_through_proxy_and_check(&r, "cuts.bin");
    cr_assert_eq(r.stats.cuts, 3, "the proxy made %lld cuts, want 3", r.stats.cuts);
    cr_assert_geq(r.stats.connections, 4, "only %lld connections for 3 cuts", r.stats.connections);
    cr_assert_leq(r.stats.up, size + 3 * (WINDOW_BYTES + HARNESS_MIB),
                  "sent %lld bytes up for a %lld-byte file", r.stats.up, size);
    harness_must_ls(r.dir, "cuts.bin\n");
}

Test(faults, repairs_a_bit_flipped_in_transit)
{
    /* Checks that one flipped bit in the middle of the stream is caught by the chunk hash and
     * resent: the copy is identical. */
    struct run r;
    long long size = 32 * HARNESS_MIB;

    setup_run(&r, "flip.bin", size,
              (const char *[]){"--flip-at", harness_strf("%lld", size / 2 + 12345), NULL});
    send_through_proxy_and_check(&r, "flip.bin");
    cr_assert_eq(r.stats.flips, 1, "the proxy flipped %lld bits, want 1", r.stats.flips);
    harness_must_ls(r.dir, "flip.bin\n");
}

Test(faults, recovers_from_a_stalled_connection)
{
    /* Checks that with XFER_IDLE_TIMEOUT=2 a connection that stops carrying bytes forever is
     * detected, the sender reconnects (later connections pass) and completes. */
    struct run r;
    long long size = 32 * HARNESS_MIB;

    setup_run(&r, "stall.bin", size,
              (const char *[]){"--stall-after", harness_strf("%lld", size / 2), NULL});
    send_through_proxy_and_check(&r, "stall.bin");
    cr_assert_geq(r.stats.stalls, 1, "the proxy never stalled");
    cr_assert_geq(r.stats.connections, 2, "the sender did not reconnect");
    cr_expect(strstr(harness_log("send"), "connection lost") != NULL,
              "sender did not report the lost connection; stderr:\n%s", harness_log("send"));
    harness_must_ls(r.dir, "stall.bin\n");
}

Test(faults, ignores_stray_clients_while_a_transfer_runs)
{
    /* Checks that an HTTP request and random garbage sent to the receiver port during a
     * transfer neither break that transfer nor kill the receiver. */
    static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    struct run r;
    char *garbage_path = harness_pathf("garbage");
    char *garbage;
    char *dst;
    long long size = 32 * HARNESS_MIB;
    pid_t send;
    int rc;

    /* Throttled, so the transfer is still running when the stray clients arrive. */
    setup_run(&r, "busy.bin", size,
              (const char *[]){"--throttle", harness_strf("%lld", 8 * HARNESS_MIB), NULL});
    send = harness_start_send((const char *[]){"--retry-for", "60", r.src,
                                               harness_strf("127.0.0.1:%d", r.proxy.port), NULL},
                              idle_env, "send");
    cr_assert_gt(send, 0, "cannot start sender: %s", strerror(-send));
    rc = harness_wait_dir_bytes(harness_strf("%s/.xfer", r.dir), 2 * HARNESS_MIB, send,
                                HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "transfer did not get under way (%s); sender stderr:\n%s", strerror(-rc),
                 harness_log("send"));

    rc = harness_send_raw("127.0.0.1", r.recv_port, http, sizeof(http) - 1, 1000);
    cr_assert_eq(rc, 0, "cannot connect to the receiver: %s", strerror(-rc));
    cr_assert_eq(harness_make_file(garbage_path, 64 * 1024, 99), 0);
    garbage = harness_read_file(garbage_path);
    cr_assert_not_null(garbage);
    rc = harness_send_raw("127.0.0.1", r.recv_port, garbage, 64 * 1024, 1000);
    cr_assert_eq(rc, 0, "cannot connect to the receiver: %s", strerror(-rc));
    cr_assert(harness_alive(r.recv), "receiver died after stray clients: %s",
              harness_report(r.recv, "recv"));

    rc = harness_wait(send, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); sender stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(r.recv, "recv"));
    dst = harness_strf("%s/busy.bin", r.dir);
    cr_assert_eq(harness_cmp_files(r.src, dst), 0, "%s differs from its source", dst);
    cr_assert(harness_alive(r.recv), "receiver died: %s", harness_report(r.recv, "recv"));
    rc = harness_wait_port("127.0.0.1", r.recv_port, HARNESS_MS(5000));
    cr_assert_eq(rc, 0, "receiver no longer accepts connections");
}
