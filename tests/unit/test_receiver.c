/* The receiver's session API (receiver_open(), receiver_serve(), receiver_close()) on a loop of
 * the test's own: the calls the session fuzzer builds on, with the cases it never takes. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "xfer/auth.h"
#include "xfer/cli.h"
#include "xfer/receiver.h"

static char dir[] = "/tmp/xfer-unit-receiver-XXXXXX";
static uv_loop_t loop;
static struct cli_opts opts;
static struct auth_psk psk;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(auth_init(), 0);
    cr_assert_eq(auth_psk_from_secret(&psk, "unit", 4), 0);
    memset(&opts, 0, sizeof(opts));
    opts.command = CLI_RECV;
    opts.dir = dir;
    cr_assert_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
    (void)rmdir(dir);
}

TestSuite(receiver, .init = setup, .fini = teardown);

/* Closes rx and expects every handle it made to close with it. */
static void close_clean(struct receiver *rx)
{
    receiver_close(rx);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(receiver, open_and_close_leave_the_loop_clean)
{
    struct receiver *rx = NULL;

    cr_assert_eq(receiver_open(&rx, &loop, &opts, &psk), 0);
    cr_assert_not_null(rx);
    close_clean(rx);
}

Test(receiver, open_refuses_a_missing_directory)
{
    struct receiver *rx = (struct receiver *)&rx;

    opts.dir = "/nonexistent/xfer-unit";
    cr_assert_lt(receiver_open(&rx, &loop, &opts, &psk), 0);
    cr_assert_null(rx);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* A socket the loop cannot take over: the half-made session closes itself (it used to abort
 * in uv_close() on a timer never initialised, the path a failed accept also takes). */
Test(receiver, serve_refuses_a_bad_socket_and_closes_clean)
{
    struct receiver *rx = NULL;

    cr_assert_eq(receiver_open(&rx, &loop, &opts, &psk), 0);
    cr_assert_lt(receiver_serve(rx, -1), 0);
    close_clean(rx);
}

/* A peer that hangs up at once: the session ends and nothing is left behind. */
Test(receiver, serve_ends_the_session_when_the_peer_hangs_up)
{
    struct receiver *rx = NULL;
    uint64_t deadline;
    int sv[2];

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(receiver_open(&rx, &loop, &opts, &psk), 0);
    cr_assert_eq(receiver_serve(rx, sv[0]), 0);
    cr_assert_eq(close(sv[1]), 0);
    /* The session closes on EOF; then only the receiver's ticker is active. */
    deadline = uv_now(&loop) + 5000;
    while (loop.active_handles > 1 && uv_now(&loop) < deadline)
        (void)uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(loop.active_handles, 1, "the session did not end");
    close_clean(rx);
}
