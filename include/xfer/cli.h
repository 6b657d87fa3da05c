/* cli: turns argv into struct cli_opts and defines the exit codes that
 * man/xfer.1 documents. Pure: no I/O beyond writing the error message into
 * the caller's buffer. */
#ifndef XFER_CLI_H
#define XFER_CLI_H

#include <stddef.h>
#include <stdint.h>

#define XFER_DEFAULT_PORT 9337
#define XFER_DEFAULT_RETRY_FOR 300

enum xfer_exit {
    XFER_EXIT_OK = 0,
    XFER_EXIT_INTERNAL = 1,
    XFER_EXIT_USAGE = 2,
    XFER_EXIT_UNREACHABLE = 3,
    XFER_EXIT_REFUSED = 4,
    XFER_EXIT_VERIFY = 5,
    XFER_EXIT_IO = 6,
    XFER_EXIT_AUTH = 7, /* the secrets differ, or an impostor answered */
    XFER_EXIT_PEER = 8, /* the receiver broke the protocol, or its limits (xfer-protocol(7)) */
    XFER_EXIT_INTERRUPTED = 130
};

enum cli_command {
    CLI_NONE,
    CLI_RECV,
    CLI_SEND,
    CLI_HELP,
    CLI_VERSION
};

struct cli_opts {
    enum cli_command command;
    uint16_t port;
    int port_given;
    const char *bind;  /* NULL: all interfaces */
    const char *dir;   /* "." by default */
    int once;
    int overwrite;
    int quiet;
    double retry_for;  /* seconds */
    const char *secret_file; /* NULL: XFER_SECRET, or (recv) a generated one */
    char **files;      /* points into argv */
    int nfiles;
    char host[256];    /* without brackets */
};

/* Returns 0, or XFER_EXIT_USAGE with a one-line message in err. */
int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t errcap);

/* Splits "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 literal.
 * *port is left alone when none is given. Returns 0 or -1. */
int cli_split_host(const char *arg, char *host, size_t hostcap, uint16_t *port, int *port_given);

extern const char cli_usage[];

#endif
