#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "xfer/auth.h"
#include "xfer/cli.h"
#include "xfer/proto.h"
#include "xfer/receiver.h"
#include "xfer/report.h"
#include "xfer/secret.h"
#include "xfer/sender.h"

#ifndef XFER_VERSION
#define XFER_VERSION "0.0.0"
#endif

/* The secret and every key derived from it sit in this process's memory, and
 * a core dump would put them on disk. RLIMIT_CORE 0 (hard limit too, so it
 * cannot be raised again) stops the kernel writing a core file;
 * PR_SET_DUMPABLE 0 also stops a core_pattern pipe such as systemd-coredump
 * and a debugger or /proc/PID/mem reader of the same user (root still can).
 * Called before the secret is read. A failure costs only this protection, so
 * it is a warning. */
static void main_disable_core_dumps(void)
{
    const struct rlimit none = {0, 0};

    if (setrlimit(RLIMIT_CORE, &none) < 0)
        report_info("warning: cannot limit core dumps to 0 bytes: %s; a crash could write the "
                    "secret to a core file",
                    strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        report_info("warning: cannot mark the process not dumpable: %s; a crash could write "
                    "the secret to a core file",
                    strerror(errno));
}

int main(int argc, char **argv)
{
    struct cli_opts o;
    char err[512];
    char secret[SECRET_MAX_LEN + 1];
    struct auth_psk psk;
    int generated = 0;
    int code;

    /* A peer that vanishes mid-write must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    code = cli_parse(argc, argv, &o, err, sizeof(err));
    if (code != 0) {
        fprintf(stderr, "xfer: error: %s\n", err);
        return code;
    }
    report_set_quiet(o.quiet);
    if (o.command == CLI_HELP) {
        fputs(cli_usage, stdout);
        return 0;
    }
    if (o.command == CLI_VERSION) {
        printf("xfer %s (protocol %d)\n", XFER_VERSION, PROTO_VERSION);
        return 0;
    }
    main_disable_core_dumps();
    if (auth_init() < 0) {
        fprintf(stderr, "xfer: error: libsodium cannot be initialised\n");
        return XFER_EXIT_INTERNAL;
    }
    code = secret_load(&o, secret, sizeof(secret), &generated, err, sizeof(err));
    /* Stretched once here, before the receiver listens or the sender connects: every
     * connection and reconnection uses this key. */
    if (code == XFER_EXIT_OK && auth_psk_from_secret(&psk, secret, strlen(secret)) < 0) {
        snprintf(err, sizeof(err),
                 "cannot derive the key from the secret: Argon2id needs %u MiB of memory and "
                 "could not get it; free some memory or raise the limit (ulimit -v)",
                 AUTH_PWHASH_MEMLIMIT >> 20);
        code = XFER_EXIT_INTERNAL;
    }
    if (code != XFER_EXIT_OK)
        fprintf(stderr, "xfer: error: %s\n", err);
    else if (o.command == CLI_RECV)
        code = receiver_run(&o, &psk, generated ? secret : NULL);
    else
        code = sender_run(&o, &psk);
    auth_wipe(secret, sizeof(secret));
    auth_wipe(&psk, sizeof(psk));
    auth_psk_forget();
    free(o.files);
    return code;
}
