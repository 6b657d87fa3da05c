/* cli: argv to struct cli_opts. For send, o.files is a malloc'd array the
 * caller frees; every test frees it, so valgrind sees no leak. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "xfer/cli.h"

/* cli_parse() over a NULL-terminated argv. */
static int parse(struct cli_opts *o, char *err, size_t errcap, char **argv)
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    err[0] = '\0';
    return cli_parse(argc, argv, o, err, errcap);
}

/* The argv array is a compound literal that lives until the end of the
 * enclosing block, as o.files (pointers into it) needs. */
#define PARSE(o, ...) parse((o), err, sizeof(err), (char *[]){"xfer", __VA_ARGS__, NULL})

/* A usage error: exit code 2 and a message, and no files array left behind. */
#define assert_usage_error(rc, o)                                                                  \
    do {                                                                                           \
        cr_assert_eq((rc), XFER_EXIT_USAGE);                                                       \
        cr_assert_gt(strlen(err), 0, "usage error without a message");                             \
        cr_assert_null((o).files);                                                                 \
    } while (0)

/* ---- recv ---- */

Test(cli, recv_has_defaults)
{
    /* Checks `xfer recv`: port 9337, dir ".", all interfaces, no once/overwrite/quiet. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "recv"), 0, "%s", err);
    cr_assert_eq(o.command, CLI_RECV);
    cr_assert_eq(o.port, XFER_DEFAULT_PORT);
    cr_assert_eq(o.port, 9337);
    cr_assert_eq(o.port_given, 0);
    cr_assert_str_eq(o.dir, ".");
    cr_assert_null(o.bind);
    cr_assert_eq(o.once, 0);
    cr_assert_eq(o.overwrite, 0);
    cr_assert_eq(o.quiet, 0);
    cr_assert_null(o.files);
    cr_assert_eq(o.nfiles, 0);
}

Test(cli, recv_takes_every_option)
{
    /* Checks `xfer recv --port 7000 --bind 127.0.0.1 --dir /srv/in --once --overwrite -q`. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "recv", "--port", "7000", "--bind", "127.0.0.1", "--dir", "/srv/in",
                       "--once", "--overwrite", "-q"),
                 0, "%s", err);
    cr_assert_eq(o.command, CLI_RECV);
    cr_assert_eq(o.port, 7000);
    cr_assert_eq(o.port_given, 1);
    cr_assert_str_eq(o.bind, "127.0.0.1");
    cr_assert_str_eq(o.dir, "/srv/in");
    cr_assert_eq(o.once, 1);
    cr_assert_eq(o.overwrite, 1);
    cr_assert_eq(o.quiet, 1);
}

Test(cli, recv_takes_options_in_equals_form)
{
    /* Checks `--port=7000 --bind=::1 --dir=in --quiet`. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "recv", "--port=7000", "--bind=::1", "--dir=in", "--quiet"), 0, "%s",
                 err);
    cr_assert_eq(o.port, 7000);
    cr_assert_str_eq(o.bind, "::1");
    cr_assert_str_eq(o.dir, "in");
    cr_assert_eq(o.quiet, 1);
}

Test(cli, recv_rejects_an_extra_argument)
{
    /* Checks `xfer recv extra`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "recv", "extra"), o);
}

Test(cli, recv_rejects_send_options)
{
    /* Checks `xfer recv --retry-for 5`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "recv", "--retry-for", "5"), o);
}

Test(cli, recv_rejects_options_missing_their_value)
{
    /* Checks --port, --bind and --dir as the last argument, and --dir=: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "recv", "--port"), o);
    assert_usage_error(PARSE(&o, "recv", "--bind"), o);
    assert_usage_error(PARSE(&o, "recv", "--dir"), o);
    assert_usage_error(PARSE(&o, "recv", "--dir="), o);
}

Test(cli, rejects_a_bad_port)
{
    /* Checks --port abc, -1, 65536, 80x and "": usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "recv", "--port", "abc"), o);
    assert_usage_error(PARSE(&o, "recv", "--port", "-1"), o);
    assert_usage_error(PARSE(&o, "recv", "--port", "65536"), o);
    assert_usage_error(PARSE(&o, "recv", "--port", "80x"), o);
    assert_usage_error(PARSE(&o, "recv", "--port", ""), o);
}

/* ---- send ---- */

Test(cli, send_takes_files_and_a_host)
{
    /* Checks `xfer send a.txt b.txt HOST`: two files, the host, the default port and retry. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "a.txt", "b.txt", "example.org"), 0, "%s", err);
    cr_assert_eq(o.command, CLI_SEND);
    cr_assert_eq(o.nfiles, 2);
    cr_assert_str_eq(o.files[0], "a.txt");
    cr_assert_str_eq(o.files[1], "b.txt");
    cr_assert_str_eq(o.host, "example.org");
    cr_assert_eq(o.port, 9337);
    cr_assert_eq(o.port_given, 0);
    cr_assert_eq(o.retry_for, XFER_DEFAULT_RETRY_FOR);
    cr_assert_eq(o.quiet, 0);
    free(o.files);
}

Test(cli, send_takes_host_and_port)
{
    /* Checks `xfer send f HOST:7000`: host and port split. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "f", "example.org:7000"), 0, "%s", err);
    cr_assert_str_eq(o.host, "example.org");
    cr_assert_eq(o.port, 7000);
    cr_assert_eq(o.port_given, 1);
    cr_assert_eq(o.nfiles, 1);
    cr_assert_str_eq(o.files[0], "f");
    free(o.files);
}

Test(cli, send_takes_a_bracketed_ipv6_host)
{
    /* Checks `xfer send f [::1]`: host "::1", default port. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "f", "[::1]"), 0, "%s", err);
    cr_assert_str_eq(o.host, "::1");
    cr_assert_eq(o.port, 9337);
    cr_assert_eq(o.port_given, 0);
    free(o.files);
}

Test(cli, send_takes_a_bracketed_ipv6_host_and_port)
{
    /* Checks `xfer send f [::1]:7000`: host "::1", port 7000. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "f", "[::1]:7000"), 0, "%s", err);
    cr_assert_str_eq(o.host, "::1");
    cr_assert_eq(o.port, 7000);
    cr_assert_eq(o.port_given, 1);
    free(o.files);
}

Test(cli, send_takes_a_bare_ipv6_host)
{
    /* Checks `xfer send f ::1`: the whole literal is the host, the port stays default. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "f", "::1"), 0, "%s", err);
    cr_assert_str_eq(o.host, "::1");
    cr_assert_eq(o.port, 9337);
    cr_assert_eq(o.port_given, 0);
    free(o.files);
}

Test(cli, send_accepts_port_option_agreeing_with_host_port)
{
    /* Checks `xfer send --port 7000 f HOST:7000`: accepted, port 7000. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "--port", "7000", "f", "example.org:7000"), 0, "%s", err);
    cr_assert_eq(o.port, 7000);
    free(o.files);
}

Test(cli, send_rejects_port_option_disagreeing_with_host_port)
{
    /* Checks `xfer send --port 7001 f HOST:7000`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "--port", "7001", "f", "example.org:7000"), o);
}

Test(cli, send_takes_port_in_equals_form)
{
    /* Checks `xfer send --port=7000 f HOST`: port 7000. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "--port=7000", "f", "example.org"), 0, "%s", err);
    cr_assert_eq(o.port, 7000);
    cr_assert_eq(o.port_given, 1);
    cr_assert_str_eq(o.host, "example.org");
    free(o.files);
}

Test(cli, send_takes_retry_for_zero)
{
    /* Checks `--retry-for 0`: no retrying, accepted. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "--retry-for", "0", "f", "h"), 0, "%s", err);
    cr_assert_eq(o.retry_for, 0.0);
    free(o.files);
}

Test(cli, send_takes_fractional_retry_for)
{
    /* Checks `--retry-for 2.5` and `--retry-for=2.5`: 2.5 seconds. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "--retry-for", "2.5", "f", "h"), 0, "%s", err);
    cr_assert_eq(o.retry_for, 2.5);
    free(o.files);
    cr_assert_eq(PARSE(&o, "send", "--retry-for=2.5", "f", "h"), 0, "%s", err);
    cr_assert_eq(o.retry_for, 2.5);
    free(o.files);
}

Test(cli, send_rejects_negative_retry_for)
{
    /* Checks `--retry-for -1`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "--retry-for", "-1", "f", "h"), o);
}

Test(cli, send_rejects_non_numeric_retry_for)
{
    /* Checks `--retry-for abc`, `2s`, `nan` and "": usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "--retry-for", "abc", "f", "h"), o);
    assert_usage_error(PARSE(&o, "send", "--retry-for", "2s", "f", "h"), o);
    assert_usage_error(PARSE(&o, "send", "--retry-for", "nan", "f", "h"), o);
    assert_usage_error(PARSE(&o, "send", "--retry-for=", "f", "h"), o);
}

Test(cli, send_takes_quiet_anywhere)
{
    /* Checks -q between files: it is an option, not a file. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "a", "-q", "b", "h"), 0, "%s", err);
    cr_assert_eq(o.quiet, 1);
    cr_assert_eq(o.nfiles, 2);
    cr_assert_str_eq(o.files[1], "b");
    free(o.files);
}

Test(cli, send_treats_arguments_after_double_dash_as_files)
{
    /* Checks `xfer send -- -q h`: "-q" is a file name after "--". */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "--", "-q", "h"), 0, "%s", err);
    cr_assert_eq(o.quiet, 0);
    cr_assert_eq(o.nfiles, 1);
    cr_assert_str_eq(o.files[0], "-q");
    free(o.files);
}

Test(cli, send_rejects_an_unknown_option)
{
    /* Checks `xfer send --frobnicate f h`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "--frobnicate", "f", "h"), o);
}

Test(cli, send_rejects_recv_options)
{
    /* Checks `xfer send --once f h`: --once is recv's, usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "--once", "f", "h"), o);
}

Test(cli, send_rejects_a_missing_host)
{
    /* Checks `xfer send f` and `xfer send`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "f"), o);
    assert_usage_error(parse(&o, err, sizeof(err), (char *[]){"xfer", "send", NULL}), o);
}

Test(cli, send_rejects_a_malformed_destination)
{
    /* Checks HOST:, :7000, [::1, [], [::1]x, HOST:99999: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "f", "example.org:"), o);
    assert_usage_error(PARSE(&o, "send", "f", ":7000"), o);
    assert_usage_error(PARSE(&o, "send", "f", "[::1"), o);
    assert_usage_error(PARSE(&o, "send", "f", "[]"), o);
    assert_usage_error(PARSE(&o, "send", "f", "[::1]x"), o);
    assert_usage_error(PARSE(&o, "send", "f", "example.org:99999"), o);
}

Test(cli, send_rejects_port_0)
{
    /* Checks `xfer send f HOST:0` and `--port 0`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "send", "f", "example.org:0"), o);
    assert_usage_error(PARSE(&o, "send", "--port", "0", "f", "example.org"), o);
}

/* ---- commands ---- */

Test(cli, help_is_a_command)
{
    /* Checks `xfer --help`, `xfer -h` and `xfer help`: CLI_HELP. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "--help"), 0);
    cr_assert_eq(o.command, CLI_HELP);
    cr_assert_eq(PARSE(&o, "-h"), 0);
    cr_assert_eq(o.command, CLI_HELP);
    cr_assert_eq(PARSE(&o, "help"), 0);
    cr_assert_eq(o.command, CLI_HELP);
}

Test(cli, help_after_a_command_wins)
{
    /* Checks `xfer send --help` and `xfer recv --help`: CLI_HELP, nothing left to free. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "send", "f", "--help"), 0);
    cr_assert_eq(o.command, CLI_HELP);
    cr_assert_null(o.files);
    cr_assert_eq(PARSE(&o, "recv", "--help"), 0);
    cr_assert_eq(o.command, CLI_HELP);
}

Test(cli, version_is_a_command)
{
    /* Checks `xfer --version` and `xfer -V`: CLI_VERSION. */
    struct cli_opts o;
    char err[256];

    cr_assert_eq(PARSE(&o, "--version"), 0);
    cr_assert_eq(o.command, CLI_VERSION);
    cr_assert_eq(PARSE(&o, "-V"), 0);
    cr_assert_eq(o.command, CLI_VERSION);
}

Test(cli, no_command_is_a_usage_error)
{
    /* Checks bare `xfer`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(parse(&o, err, sizeof(err), (char *[]){"xfer", NULL}), o);
}

Test(cli, unknown_command_is_a_usage_error)
{
    /* Checks `xfer frobnicate` and `xfer --frobnicate`: usage error 2. */
    struct cli_opts o;
    char err[256];

    assert_usage_error(PARSE(&o, "frobnicate"), o);
    assert_usage_error(PARSE(&o, "--frobnicate"), o);
}

Test(cli, error_message_fits_a_small_buffer)
{
    /* Checks that a long error is truncated to errcap, NUL-terminated. */
    struct cli_opts o;
    char err[8];

    memset(err, 'X', sizeof(err));
    cr_assert_eq(PARSE(&o, "send", "--frobnicate-with-a-long-name", "f", "h"), XFER_EXIT_USAGE);
    cr_assert_eq(strlen(err), sizeof(err) - 1);
}

/* ---- cli_split_host ---- */

Test(cli, split_host_leaves_the_port_alone_without_one)
{
    /* Checks "HOST", "[::1]" and "::1": host set, *port untouched, port_given 0. */
    const char *args[] = {"example.org", "[::1]", "::1"};
    const char *hosts[] = {"example.org", "::1", "::1"};

    for (size_t i = 0; i < 3; i++) {
        char host[64];
        uint16_t port = 1234;
        int given = -1;

        cr_assert_eq(cli_split_host(args[i], host, sizeof(host), &port, &given), 0, "%s", args[i]);
        cr_assert_str_eq(host, hosts[i]);
        cr_assert_eq(port, 1234, "%s", args[i]);
        cr_assert_eq(given, 0, "%s", args[i]);
    }
}

Test(cli, split_host_rejects_a_host_longer_than_its_buffer)
{
    /* Checks hosts of hostcap bytes (no room for the NUL), plain and bracketed: -1. */
    char host[4];
    uint16_t port = 0;
    int given;

    cr_assert_eq(cli_split_host("abc", host, sizeof(host), &port, &given), 0);
    cr_assert_eq(cli_split_host("abcd", host, sizeof(host), &port, &given), -1);
    cr_assert_eq(cli_split_host("abcd:80", host, sizeof(host), &port, &given), -1);
    cr_assert_eq(cli_split_host("[::12]", host, sizeof(host), &port, &given), -1);
    cr_assert_eq(cli_split_host("::12", host, sizeof(host), &port, &given), -1);
}
