#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "xfer/cli.h"
#include "xfer/receiver.h"
#include "xfer/report.h"
#include "xfer/sender.h"

#ifndef XFER_VERSION
#define XFER_VERSION "0.0.0"
#endif

int main(int argc, char **argv)
{
    struct cli_opts o;
    char err[512];
    int code;

    /* A peer that vanishes mid-write must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    code = cli_parse(argc, argv, &o, err, sizeof(err));
    if (code != 0) {
        fprintf(stderr, "xfer: error: %s\n", err);
        return code;
    }
    report_set_quiet(o.quiet);
    switch (o.command) {
    case CLI_HELP:
        fputs(cli_usage, stdout);
        return 0;
    case CLI_VERSION:
        printf("xfer %s (protocol 1)\n", XFER_VERSION);
        return 0;
    case CLI_RECV:
        return receiver_run(&o);
    case CLI_SEND:
        code = sender_run(&o);
        free(o.files);
        return code;
    default:
        return XFER_EXIT_USAGE;
    }
}
