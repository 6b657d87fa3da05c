#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xfer/auth.h"
#include "xfer/report.h"
#include "xfer/secret.h"

/* Trailing newlines and blanks are an editor's, not the secret's. */
static size_t trim(char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                       s[len - 1] == '\t'))
        len--;
    s[len] = '\0';
    return len;
}

static int read_secret_file(const char *path, char *out, size_t cap, char *err, size_t errcap)
{
    struct stat st;
    ssize_t n;
    int e;
    /* O_NONBLOCK: a FIFO given by mistake must be refused, not waited on.
     * O_NOFOLLOW: the mode checked below must be that of the file read, not
     * that of a link which whoever can write its directory may repoint. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);

    e = fd < 0 ? errno : 0;
    if (fd >= 0 && fstat(fd, &st) < 0)
        e = errno;
    /* ELOOP also means a loop of links among the directories on the path. */
    if (fd < 0 && e == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, errcap,
                 "secret file %s is a symbolic link; give the path of the file itself", path);
        return XFER_EXIT_IO;
    }
    if (e != 0) {
        snprintf(err, errcap, "cannot read secret file %s: %s", path, strerror(e));
        if (fd >= 0)
            (void)close(fd);
        return XFER_EXIT_IO;
    }
    if (!S_ISREG(st.st_mode) || st.st_size >= (off_t)cap) {
        snprintf(err, errcap, "secret file %s is not a small regular file (at most %zu bytes)",
                 path, cap - 1);
        (void)close(fd);
        return XFER_EXIT_IO;
    }
    if (st.st_mode & 0077)
        report_info("warning: secret file %s is open to other users (mode %04o); chmod 600 it",
                    path, (unsigned)(st.st_mode & 07777));
    n = read(fd, out, cap - 1);
    (void)close(fd); /* read-only */
    if (n < 0) {
        snprintf(err, errcap, "cannot read secret file %s: %s", path, strerror(errno));
        return XFER_EXIT_IO;
    }
    if (memchr(out, '\0', (size_t)n) != NULL) {
        snprintf(err, errcap, "secret file %s holds a NUL byte; use a text secret", path);
        return XFER_EXIT_IO;
    }
    out[n] = '\0';
    return XFER_EXIT_OK;
}

int secret_load(const struct cli_opts *o, char *out, size_t cap, int *generated, char *err,
                size_t errcap)
{
    const char *env = getenv("XFER_SECRET");
    const char *from = "XFER_SECRET";
    size_t len;

    *generated = 0;
    if (o->secret_file != NULL) {
        int code = read_secret_file(o->secret_file, out, cap, err, errcap);

        if (code != XFER_EXIT_OK)
            return code;
        from = o->secret_file;
    } else if (env != NULL && env[0] != '\0') {
        if (strlen(env) >= cap) {
            snprintf(err, errcap, "XFER_SECRET is longer than %zu bytes", cap - 1);
            return XFER_EXIT_USAGE;
        }
        memcpy(out, env, strlen(env) + 1);
    } else if (o->command == CLI_RECV) {
        if (cap < AUTH_SECRET_TEXT_LEN + 1) {
            snprintf(err, errcap, "no room for a generated secret");
            return XFER_EXIT_INTERNAL;
        }
        *generated = 1;
        return auth_secret_generate(out) == 0 ? XFER_EXIT_OK : XFER_EXIT_INTERNAL;
    } else {
        snprintf(err, errcap,
                 "no secret: set XFER_SECRET to the one 'xfer recv' printed, or pass "
                 "--secret-file FILE");
        return XFER_EXIT_USAGE;
    }
    len = trim(out, strlen(out));
    if (len == 0) {
        snprintf(err, errcap, "the secret in %s is empty", from);
        return XFER_EXIT_USAGE;
    }
    if (len < AUTH_WEAK_SECRET_LEN)
        report_info("warning: the secret is only %zu bytes: whoever poses as your receiver "
                    "for one connection can then guess it offline; use 16 or more random "
                    "characters, or the one 'xfer recv' generates",
                    len);
    return XFER_EXIT_OK;
}
