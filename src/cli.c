#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xfer/cli.h"

const char cli_usage[] =
    "usage: xfer recv [--port P] [--bind ADDR] [--dir D] [--once] [--overwrite]\n"
    "                 [--secret-file F] [-q]\n"
    "       xfer send [--port P] [--retry-for SECS] [--secret-file F] [-q] FILE... HOST[:PORT]\n"
    "       xfer --help | --version\n"
    "\n"
    "Resumable, verified file transfer. Run 'xfer recv' on the receiving machine,\n"
    "then 'xfer send FILE HOST' on the sending one. A dropped connection resumes\n"
    "from the last offset the receiver confirmed. Both sides share a secret,\n"
    "from XFER_SECRET or --secret-file; a receiver without one makes one up and\n"
    "prints the command to run on the sender. See xfer(1).\n";

static int parse_port(const char *s, uint16_t *port)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);

    if (s[0] == '\0' || end == NULL || *end != '\0' || v < 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int cli_split_host(const char *arg, char *host, size_t hostcap, uint16_t *port, int *port_given)
{
    const char *colon;
    size_t n;

    *port_given = 0;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');

        if (close == NULL || close == arg + 1)
            return -1;
        n = (size_t)(close - arg - 1);
        if (n >= hostcap)
            return -1;
        memcpy(host, arg + 1, n);
        host[n] = '\0';
        if (close[1] == '\0')
            return 0;
        if (close[1] != ':' || parse_port(close + 2, port) < 0)
            return -1;
        *port_given = 1;
        return 0;
    }
    colon = strchr(arg, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL) {
        /* Two colons: a bare IPv6 literal, which cannot carry a port. */
        if (strlen(arg) >= hostcap)
            return -1;
        strcpy(host, arg);
        return 0;
    }
    n = colon != NULL ? (size_t)(colon - arg) : strlen(arg);
    if (n == 0 || n >= hostcap)
        return -1;
    memcpy(host, arg, n);
    host[n] = '\0';
    if (colon == NULL)
        return 0;
    if (parse_port(colon + 1, port) < 0)
        return -1;
    *port_given = 1;
    return 0;
}

static int usage_error(char *err, size_t cap, const char *fmt, const char *arg)
{
    snprintf(err, cap, fmt, arg);
    return XFER_EXIT_USAGE;
}

/* Takes the value of an option given as "--opt V" or "--opt=V". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static int is_option(const char *arg, const char *name)
{
    size_t n = strlen(name);

    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t errcap)
{
    int positional_only = 0;
    int npos = 0;
    char **pos;
    uint16_t host_port = 0;
    int host_port_given = 0;

    memset(o, 0, sizeof(*o));
    o->port = XFER_DEFAULT_PORT;
    o->dir = ".";
    o->retry_for = XFER_DEFAULT_RETRY_FOR;
    if (argc < 2)
        return usage_error(err, errcap, "missing command: say 'xfer recv' or 'xfer send' (see xfer --help)%s", "");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        o->command = CLI_HELP;
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        o->command = CLI_VERSION;
        return 0;
    }
    if (strcmp(argv[1], "recv") == 0)
        o->command = CLI_RECV;
    else if (strcmp(argv[1], "send") == 0)
        o->command = CLI_SEND;
    else
        return usage_error(err, errcap, "unknown command '%s': say 'xfer recv' or 'xfer send' (see xfer --help)", argv[1]);
    pos = calloc((size_t)argc, sizeof(*pos));
    if (pos == NULL)
        return usage_error(err, errcap, "out of memory%s", "");
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v;

        if (positional_only || a[0] != '-' || strcmp(a, "-") == 0) {
            pos[npos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            positional_only = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->command = CLI_HELP;
            free(pos);
            return 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (is_option(a, "--port")) {
            v = option_value(argc, argv, &i, "--port");
            if (v == NULL || parse_port(v, &o->port) < 0) {
                free(pos);
                return usage_error(err, errcap, "--port needs a number from 0 to 65535, not '%s'",
                                   v ? v : "");
            }
            o->port_given = 1;
        } else if (is_option(a, "--secret-file")) {
            o->secret_file = option_value(argc, argv, &i, "--secret-file");
            if (o->secret_file == NULL || o->secret_file[0] == '\0') {
                free(pos);
                return usage_error(err, errcap, "--secret-file needs a file%s", "");
            }
        } else if (o->command == CLI_RECV && is_option(a, "--bind")) {
            o->bind = option_value(argc, argv, &i, "--bind");
            if (o->bind == NULL || o->bind[0] == '\0') {
                free(pos);
                return usage_error(err, errcap, "--bind needs an address%s", "");
            }
        } else if (o->command == CLI_RECV && is_option(a, "--dir")) {
            o->dir = option_value(argc, argv, &i, "--dir");
            if (o->dir == NULL || o->dir[0] == '\0') {
                free(pos);
                return usage_error(err, errcap, "--dir needs a directory%s", "");
            }
        } else if (o->command == CLI_RECV && strcmp(a, "--once") == 0) {
            o->once = 1;
        } else if (o->command == CLI_RECV && strcmp(a, "--overwrite") == 0) {
            o->overwrite = 1;
        } else if (o->command == CLI_SEND && is_option(a, "--retry-for")) {
            char *end = NULL;

            v = option_value(argc, argv, &i, "--retry-for");
            if (v != NULL)
                o->retry_for = strtod(v, &end);
            if (v == NULL || v[0] == '\0' || end == NULL || *end != '\0' || !(o->retry_for >= 0) ||
                o->retry_for > 31536000) {
                free(pos);
                return usage_error(err, errcap,
                                   "--retry-for needs a number of seconds (0 or more), not '%s'",
                                   v ? v : "");
            }
        } else {
            free(pos);
            return usage_error(err, errcap, "unknown option '%s'; see xfer --help", a);
        }
    }
    if (o->command == CLI_RECV) {
        if (npos > 0) {
            const char *extra = pos[0];

            free(pos);
            return usage_error(err, errcap, "unexpected argument '%s' to xfer recv", extra);
        }
        free(pos);
        return 0;
    }
    if (npos < 2) {
        free(pos);
        return usage_error(err, errcap, "xfer send needs FILE... and HOST[:PORT] (see xfer --help)%s", "");
    }
    if (cli_split_host(pos[npos - 1], o->host, sizeof(o->host), &host_port, &host_port_given) <
        0) {
        const char *bad = pos[npos - 1];

        free(pos);
        return usage_error(err, errcap,
                           "bad destination '%s': use HOST, HOST:PORT, [IPv6] or [IPv6]:PORT", bad);
    }
    if (host_port_given) {
        if (o->port_given && host_port != o->port) {
            free(pos);
            return usage_error(err, errcap, "--port and HOST:PORT disagree%s", "");
        }
        o->port = host_port;
        o->port_given = 1;
    }
    if (o->port == 0) {
        free(pos);
        return usage_error(err, errcap, "port 0 cannot be sent to%s", "");
    }
    /* FILE arguments live in argv; reuse the array of pointers into it. */
    o->files = pos;
    o->nfiles = npos - 1;
    return 0;
}
