/* secret: where the pre-shared secret comes from. Each test runs in its own
 * process (Criterion's default), so it may set or unset XFER_SECRET freely;
 * files go to a fresh directory under TMPDIR that the suite removes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "xfer/auth.h"
#include "xfer/cli.h"
#include "xfer/report.h"
#include "xfer/secret.h"

#define STRONG "kq7m-2xvd-r4tn-ba6w-hz3e-pj5c-lf2y"

static char dir[256];
static char files[8][320];
static int nfiles;

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    cr_assert_eq(auth_init(), 0);
    cr_assert_eq(unsetenv("XFER_SECRET"), 0);
    report_set_quiet(0);
    snprintf(dir, sizeof(dir), "%s/xfer-secret-XXXXXX", tmp != NULL ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    for (int i = 0; i < nfiles; i++) {
        if (unlink(files[i]) < 0)
            (void)rmdir(files[i]); /* the directory test's directory */
    }
    (void)rmdir(dir); /* best effort: a leftover is only a temp file */
}

TestSuite(secret, .init = setup, .fini = teardown);

/* Creates dir/name holding len bytes with the given mode; returns its path. */
static const char *file_with(const char *name, const void *bytes, size_t len, mode_t mode)
{
    char *path;
    int fd;

    cr_assert_lt(nfiles, 8);
    path = files[nfiles++];
    snprintf(path, sizeof(files[0]), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    cr_assert_eq(fchmod(fd, mode), 0); /* whatever the umask */
    cr_assert_eq(close(fd), 0);
    return path;
}

static const char *text_file(const char *name, const char *text)
{
    return file_with(name, text, strlen(text), 0600);
}

static struct cli_opts opts(enum cli_command command, const char *secret_file)
{
    struct cli_opts o;

    memset(&o, 0, sizeof(o));
    o.command = command;
    o.secret_file = secret_file;
    return o;
}

/* The result of one secret_load() into a buffer of the usual size. */
struct loaded {
    int code;
    int generated;
    char secret[SECRET_MAX_LEN + 1];
    char err[512];
};

static struct loaded load(enum cli_command command, const char *secret_file)
{
    struct cli_opts o = opts(command, secret_file);
    struct loaded r;

    memset(&r, 0, sizeof(r));
    r.generated = -1;
    r.code = secret_load(&o, r.secret, sizeof(r.secret), &r.generated, r.err, sizeof(r.err));
    return r;
}

/* An error: the given exit code and a one-line message. */
static void assert_fails(const struct loaded *r, int code)
{
    cr_assert_eq(r->code, code, "exit code %d (\"%s\"), want %d", r->code, r->err, code);
    cr_assert_gt(strlen(r->err), 0, "no message");
    cr_assert_null(strchr(r->err, '\n'), "message is not one line: \"%s\"", r->err);
}

static void assert_generated_format(const char *s)
{
    cr_assert_eq(strlen(s), AUTH_SECRET_TEXT_LEN, "\"%s\"", s);
    for (size_t i = 0; i < AUTH_SECRET_TEXT_LEN; i++) {
        if (i % 5 == 4) {
            cr_assert_eq(s[i], '-', "\"%s\"", s);
        } else {
            int ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7');

            cr_assert(ok, "\"%s\": '%c' is not base32", s, s[i]);
        }
    }
}

/* ---- --secret-file ---- */

Test(secret, reads_the_secret_from_the_secret_file)
{
    /* Checks that --secret-file's content (no newline) is the secret, not a generated one. */
    struct loaded r = load(CLI_SEND, text_file("s", STRONG));

    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
    cr_assert_eq(r.generated, 0);
}

Test(secret, trims_a_trailing_newline)
{
    /* Checks that "secret\n" (as an editor saves it) gives "secret". */
    struct loaded r = load(CLI_SEND, text_file("s", STRONG "\n"));

    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
}

Test(secret, trims_a_trailing_crlf)
{
    /* Checks that "secret\r\n" (a file from Windows) gives "secret". */
    struct loaded r = load(CLI_SEND, text_file("s", STRONG "\r\n"));

    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
}

Test(secret, trims_trailing_blanks_tabs_and_blank_lines)
{
    /* Checks that "secret \t\n\n  \r\n" gives "secret". */
    struct loaded r = load(CLI_SEND, text_file("s", STRONG " \t\n\n  \r\n"));

    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
}

Test(secret, keeps_spaces_inside_the_secret)
{
    /* Checks that a passphrase's inner spaces survive trimming. */
    struct loaded r = load(CLI_SEND, text_file("s", "correct horse battery staple\n"));

    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, "correct horse battery staple");
}

Test(secret, an_empty_secret_file_is_a_usage_error)
{
    /* Checks an empty file: XFER_EXIT_USAGE, naming the file. */
    const char *path = file_with("empty", "", 0, 0600);
    struct loaded r = load(CLI_SEND, path);

    assert_fails(&r, XFER_EXIT_USAGE);
    cr_assert_not_null(strstr(r.err, path), "\"%s\" does not name the file", r.err);
}

Test(secret, a_secret_file_of_only_blank_lines_is_a_usage_error)
{
    /* Checks a file holding "\n \r\n": empty once trimmed, so XFER_EXIT_USAGE. */
    struct loaded r = load(CLI_RECV, text_file("blank", "\n \r\n"));

    assert_fails(&r, XFER_EXIT_USAGE);
    cr_assert_eq(r.generated, 0, "a blank file must not fall back to a generated secret");
}

Test(secret, a_missing_secret_file_is_an_io_error)
{
    /* Checks a path that does not exist: XFER_EXIT_IO, naming the file. */
    char path[320];
    struct loaded r;

    snprintf(path, sizeof(path), "%s/no-such-file", dir);
    r = load(CLI_SEND, path);
    assert_fails(&r, XFER_EXIT_IO);
    cr_assert_not_null(strstr(r.err, path), "\"%s\" does not name the file", r.err);
}

Test(secret, a_directory_as_secret_file_is_an_io_error)
{
    /* Checks --secret-file pointing at a directory: XFER_EXIT_IO. */
    char *path = files[nfiles++];
    struct loaded r;

    snprintf(path, sizeof(files[0]), "%s/a-directory", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    r = load(CLI_SEND, path);
    assert_fails(&r, XFER_EXIT_IO);
}

Test(secret, a_secret_file_holding_a_nul_is_an_error)
{
    /* Checks a file "abc\0def...": refused with XFER_EXIT_IO rather than cut at the NUL. */
    static const char bytes[] = "abcdefgh\0ijklmnopqrstuvwxyz";
    struct loaded r = load(CLI_SEND, file_with("nul", bytes, sizeof(bytes) - 1, 0600));

    assert_fails(&r, XFER_EXIT_IO);
    cr_assert_not_null(strstr(r.err, "NUL"), "\"%s\"", r.err);
}

Test(secret, a_secret_file_that_does_not_fit_is_an_io_error)
{
    /* Checks a file of cap bytes is refused and one of cap - 1 bytes read, for a 64-byte cap. */
    char big[64];
    char out[64];
    char err[256];
    int generated;
    struct cli_opts o;

    memset(big, 'k', sizeof(big));
    o = opts(CLI_SEND, file_with("fits", big, sizeof(big) - 1, 0600));
    cr_assert_eq(secret_load(&o, out, sizeof(out), &generated, err, sizeof(err)), XFER_EXIT_OK,
                 "%s", err);
    cr_assert_eq(strlen(out), sizeof(big) - 1);
    o = opts(CLI_SEND, file_with("too-big", big, sizeof(big), 0600));
    cr_assert_eq(secret_load(&o, out, sizeof(out), &generated, err, sizeof(err)), XFER_EXIT_IO);
}

/* Checks a FIFO given as --secret-file is refused at once (opened
 * O_NONBLOCK, then not a regular file), instead of waiting for a writer. */
Test(secret, a_fifo_as_secret_file_is_refused_without_waiting, .timeout = 5)
{
    /* Checks --secret-file naming a FIFO with no writer: XFER_EXIT_IO at once, no hang. */
    char *path = files[nfiles++];
    struct loaded r;

    snprintf(path, sizeof(files[0]), "%s/fifo", dir);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
    r = load(CLI_RECV, path);
    assert_fails(&r, XFER_EXIT_IO);
}

Test(secret, a_secret_file_that_is_a_symbolic_link_is_refused)
{
    /* Checks --secret-file naming a symbolic link, to a good 0600 file or to nothing:
     * XFER_EXIT_IO, one line naming the link and saying it is one, and nothing read. */
    const char *target = text_file("real", STRONG);
    const char *names[] = {"link", "dangling"};
    const char *targets[] = {target, "no-such-file"};

    for (int i = 0; i < 2; i++) {
        char *path = files[nfiles++];
        struct loaded r;

        snprintf(path, sizeof(files[0]), "%s/%s", dir, names[i]);
        cr_assert_eq(symlink(targets[i], path), 0, "symlink: %s", strerror(errno));
        r = load(CLI_SEND, path);
        assert_fails(&r, XFER_EXIT_IO);
        cr_assert_not_null(strstr(r.err, path), "\"%s\" does not name the link", r.err);
        cr_assert_not_null(strstr(r.err, "symbolic link"), "\"%s\"", r.err);
        cr_assert_str_eq(r.secret, "", "the link's target was read");
    }
}

Test(secret, a_symbolic_link_among_the_directories_is_followed)
{
    /* Checks that only the last component must not be a link: a secret file reached through a
     * linked directory (as /etc may be) is read. */
    char via[400];
    char *sub;
    struct loaded r;

    /* Registered after the file file_with() makes in it, so teardown removes it first. */
    sub = files[nfiles + 1];
    snprintf(sub, sizeof(files[0]), "%s/real-dir", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    (void)file_with("real-dir/s", STRONG, strlen(STRONG), 0600);
    nfiles++; /* sub */
    cr_assert_lt(nfiles, 8);
    snprintf(files[nfiles], sizeof(files[0]), "%s/linked-dir", dir);
    cr_assert_eq(symlink("real-dir", files[nfiles]), 0, "symlink: %s", strerror(errno));
    snprintf(via, sizeof(via), "%s/s", files[nfiles]);
    nfiles++;
    r = load(CLI_SEND, via);
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
}

/* ---- XFER_SECRET ---- */

Test(secret, secret_file_wins_over_xfer_secret)
{
    /* Checks that with both given, the file's secret is used. */
    struct loaded r;

    cr_assert_eq(setenv("XFER_SECRET", "from-the-environment-0123456789", 1), 0);
    r = load(CLI_SEND, text_file("s", STRONG "\n"));
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
}

Test(secret, a_bad_secret_file_is_not_rescued_by_xfer_secret)
{
    /* Checks a missing --secret-file is an error even when XFER_SECRET is set. */
    char path[320];
    struct loaded r;

    cr_assert_eq(setenv("XFER_SECRET", "from-the-environment-0123456789", 1), 0);
    snprintf(path, sizeof(path), "%s/no-such-file", dir);
    r = load(CLI_SEND, path);
    assert_fails(&r, XFER_EXIT_IO);
}

Test(secret, xfer_secret_is_used_when_no_file_is_given)
{
    /* Checks that send and recv both take XFER_SECRET, and recv does not generate one. */
    struct loaded s;
    struct loaded r;

    cr_assert_eq(setenv("XFER_SECRET", STRONG, 1), 0);
    s = load(CLI_SEND, NULL);
    r = load(CLI_RECV, NULL);
    cr_assert_eq(s.code, XFER_EXIT_OK, "%s", s.err);
    cr_assert_str_eq(s.secret, STRONG);
    cr_assert_eq(s.generated, 0);
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
    cr_assert_eq(r.generated, 0);
}

Test(secret, xfer_secret_is_trimmed_like_a_file)
{
    /* Checks XFER_SECRET="secret\r\n" gives "secret" and leaves the environment as it was. */
    struct loaded r;

    cr_assert_eq(setenv("XFER_SECRET", STRONG "\r\n", 1), 0);
    r = load(CLI_SEND, NULL);
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(r.secret, STRONG);
    cr_assert_str_eq(getenv("XFER_SECRET"), STRONG "\r\n");
}

Test(secret, an_xfer_secret_of_blanks_is_a_usage_error)
{
    /* Checks XFER_SECRET="  \n": empty once trimmed, XFER_EXIT_USAGE naming XFER_SECRET. */
    struct loaded r;

    cr_assert_eq(setenv("XFER_SECRET", "  \n", 1), 0);
    r = load(CLI_RECV, NULL);
    assert_fails(&r, XFER_EXIT_USAGE);
    cr_assert_not_null(strstr(r.err, "XFER_SECRET"), "\"%s\"", r.err);
}

Test(secret, an_xfer_secret_longer_than_the_buffer_is_a_usage_error)
{
    /* Checks a 64-byte XFER_SECRET into a 64-byte buffer: XFER_EXIT_USAGE, nothing overrun. */
    char value[65];
    struct guard g = {0};
    char *out = (char *)guard_alloc(&g, 64);
    char err[256];
    int generated;
    struct cli_opts o = opts(CLI_SEND, NULL);

    memset(value, 'k', 64);
    value[64] = '\0';
    cr_assert_eq(setenv("XFER_SECRET", value, 1), 0);
    cr_assert_eq(secret_load(&o, out, 64, &generated, err, sizeof(err)), XFER_EXIT_USAGE);
    value[63] = '\0';
    cr_assert_eq(setenv("XFER_SECRET", value, 1), 0);
    cr_assert_eq(secret_load(&o, out, 64, &generated, err, sizeof(err)), XFER_EXIT_OK, "%s", err);
    cr_assert_str_eq(out, value);
    guard_free(&g);
}

/* ---- no secret at all ---- */

Test(secret, send_without_a_secret_is_a_usage_error_naming_xfer_secret)
{
    /* Checks send with neither --secret-file nor XFER_SECRET: XFER_EXIT_USAGE, says XFER_SECRET. */
    struct loaded r = load(CLI_SEND, NULL);

    assert_fails(&r, XFER_EXIT_USAGE);
    cr_assert_not_null(strstr(r.err, "XFER_SECRET"), "\"%s\"", r.err);
    cr_assert_eq(r.generated, 0);
}

Test(secret, an_empty_xfer_secret_counts_as_none)
{
    /* Checks XFER_SECRET="": send is a usage error, recv generates a secret. */
    struct loaded s;
    struct loaded r;

    cr_assert_eq(setenv("XFER_SECRET", "", 1), 0);
    s = load(CLI_SEND, NULL);
    r = load(CLI_RECV, NULL);
    assert_fails(&s, XFER_EXIT_USAGE);
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_eq(r.generated, 1);
}

Test(secret, recv_without_a_secret_generates_one)
{
    /* Checks recv with no secret: XFER_EXIT_OK, *generated = 1, "xxxx-xxxx-..." base32. */
    struct loaded r = load(CLI_RECV, NULL);

    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_eq(r.generated, 1);
    assert_generated_format(r.secret);
}

Test(secret, each_generated_secret_is_new)
{
    /* Checks that two receivers without a secret get two different ones. */
    struct loaded a = load(CLI_RECV, NULL);
    struct loaded b = load(CLI_RECV, NULL);

    cr_assert_eq(a.generated, 1);
    cr_assert_eq(b.generated, 1);
    cr_assert_str_neq(a.secret, b.secret);
}

/* Checks secret_load() refuses to generate a secret into a buffer too
 * small for it, rather than writing past it. */
Test(secret, a_generated_secret_that_does_not_fit_is_refused)
{
    /* Checks recv with no secret into a 16-byte buffer: an error, nothing written past it. */
    struct guard g = {0};
    char *out = (char *)guard_alloc(&g, 16);
    char err[256];
    int generated = 0;
    struct cli_opts o = opts(CLI_RECV, NULL);
    int code = secret_load(&o, out, 16, &generated, err, sizeof(err));

    cr_assert_neq(code, XFER_EXIT_OK);
    guard_free(&g);
}

/* ---- warnings on stderr ---- */

static int saved_stderr = -1;
static char capture_path[320];

static void capture_start(void)
{
    int fd;

    snprintf(capture_path, sizeof(capture_path), "%s/stderr", dir);
    cr_assert_lt(nfiles, 8);
    strcpy(files[nfiles++], capture_path);
    fd = open(capture_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fflush(stderr), 0);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(saved_stderr, 0);
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
    cr_assert_eq(close(fd), 0);
}

/* Restores stderr and returns what was written to it (static storage). */
static const char *capture_end(void)
{
    static char text[4096];
    ssize_t n;
    int fd;

    cr_assert_eq(fflush(stderr), 0);
    cr_assert_geq(dup2(saved_stderr, STDERR_FILENO), 0);
    cr_assert_eq(close(saved_stderr), 0);
    fd = open(capture_path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    n = read(fd, text, sizeof(text) - 1);
    cr_assert_geq(n, 0);
    text[n] = '\0';
    cr_assert_eq(close(fd), 0);
    return text;
}

Test(secret, a_short_secret_draws_a_warning)
{
    /* Checks that a 15-character secret is accepted with a warning on stderr. */
    struct loaded r;
    const char *text;

    cr_assert_eq(setenv("XFER_SECRET", "fifteen-chars15", 1), 0);
    capture_start();
    r = load(CLI_SEND, NULL);
    text = capture_end();
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_not_null(strstr(text, "warning"), "stderr: \"%s\"", text);
    cr_assert_not_null(strstr(text, " 15 "), "stderr does not give the length: \"%s\"", text);
}

Test(secret, a_secret_of_16_characters_draws_no_warning)
{
    /* Checks that an AUTH_WEAK_SECRET_LEN-character secret in a 0600 file is silent. */
    struct loaded r;
    const char *text;
    const char *path = text_file("s", "sixteen-chars-16\n");

    capture_start();
    r = load(CLI_SEND, path);
    text = capture_end();
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_str_eq(text, "");
}

Test(secret, a_secret_file_others_can_read_draws_a_warning)
{
    /* Checks a 0640 secret file: accepted, with a warning naming the file and chmod 600. */
    const char *path = file_with("s", STRONG "\n", strlen(STRONG) + 1, 0640);
    struct loaded r;
    const char *text;

    capture_start();
    r = load(CLI_SEND, path);
    text = capture_end();
    cr_assert_eq(r.code, XFER_EXIT_OK, "%s", r.err);
    cr_assert_not_null(strstr(text, path), "stderr: \"%s\"", text);
    cr_assert_not_null(strstr(text, "chmod 600"), "stderr: \"%s\"", text);
}
