/* harness: helpers for integration tests that drive the built xfer and faultproxy binaries.
 *
 * harness_setup() makes a fresh temp dir /tmp/xfer-itest-<pid>-XXXXXX (first removing any such
 * dir whose owner process is gone, e.g. killed by a Criterion timeout before its teardown) and
 * empties the process registry;
 * harness_teardown() SIGKILLs and reaps, by pid, every process started through harness_spawn()
 * that has not been reaped yet (under XFER_TEST_WRAPPER, below, it first sends them SIGTERM and
 * waits a few seconds, so the wrapper's exit-time checks run), frees what harness_*f() allocated,
 * and removes the temp dir (kept when XFER_TEST_KEEP is set in the environment, for debugging). Use
 * them as a Criterion suite's .init and .fini. Spawned children also get SIGKILL if the test
 * process dies (e.g. on a Criterion timeout), so no test leaves a process behind.
 *
 * Every wait takes a deadline in milliseconds and polls with short sleeps; none blocks longer
 * than its deadline. Functions return 0 (or a count) on success and -errno on failure;
 * -ETIMEDOUT means the deadline passed. Strings returned by harness_*f(), harness_read_file(),
 * harness_log() and harness_ls() are owned by the harness and freed at teardown.
 *
 * Two environment variables serve slow checkers such as valgrind (see tests/valgrind/run):
 * XFER_TEST_WRAPPER, when set, is a command (words split on blanks, no quoting; the first one a
 * path or found in PATH) that harness_spawn() puts in front of every XFER_BIN it starts (other
 * programs, such as faultproxy, run as they are); XFER_TEST_SLOW=N (1 to 100, default 1)
 * multiplies every deadline below, the ones derived from them in the tests, each suite's
 * Criterion timeout and any XFER_IDLE_TIMEOUT a test gives xfer. harness_setup() also exports XFER_TEST_NAME=<suite>.<test> to every child,
 * so a wrapper can name its log after the test (valgrind: --log-file=DIR/%q{XFER_TEST_NAME}). */
#ifndef XFER_TESTS_HARNESS_H
#define XFER_TESTS_HARNESS_H

/* The secret every test's xfer processes share (through XFER_SECRET). */
#define HARNESS_SECRET "integration-tests-shared-secret-0123"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef XFER_BIN
#error "XFER_BIN must be defined (absolute path to the xfer executable)"
#endif
#ifndef FAULTPROXY_BIN
#error "FAULTPROXY_BIN must be defined (absolute path to the faultproxy executable)"
#endif

/* XFER_TEST_SLOW, read once: 1 unless the environment sets it to 2..100. */
int harness_slow(void);

/* A bound of ms milliseconds, stretched by XFER_TEST_SLOW. Every deadline in the tests goes
 * through it. */
#define HARNESS_MS(ms) ((ms) * harness_slow())

/* The default bound for any single wait in a test. */
#define HARNESS_DEADLINE_MS HARNESS_MS(60000)

/* The harness never sleeps longer than this between two polls. */
#define HARNESS_POLL_MS 20

/* Grace for the receiver to remove its .xfer state after the sender has exited. */
#define HARNESS_CLEANUP_MS HARNESS_MS(2000)

#define HARNESS_MIB (1024LL * 1024LL)

/* Each test runs in its own process under Criterion, so this is per test. */
void harness_setup(void);
void harness_teardown(void);

/* The temp dir of the running test. */
const char *harness_dir(void);

/* printf into a string owned by the harness. */
char *harness_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* harness_dir() + "/" + printf(fmt, ...); owned by the harness. */
char *harness_pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mkdir -p. Returns 0 or -errno. */
int harness_mkdirs(const char *path);

/* Binds 127.0.0.1:0, reads the port the kernel picked, closes. Returns the port or -errno. */
int harness_free_port(void);

/* Whether a socket can bind [::1]:0 (IPv6 loopback is usable). */
bool harness_ipv6_available(void);

/* Starts argv[0] (an absolute path) with argv. env: NULL or a NULL-terminated list of "K=V"
 * entries added to (or replacing in) the current environment. cwd: NULL keeps ours. stdin is
 * /dev/null; stdout and stderr go to harness_dir()/NAME.out and NAME.err, so NAME must be unique
 * within a test. Returns the pid (recorded for teardown) or -errno. */
pid_t harness_spawn(const char *const argv[], const char *const env[], const char *cwd,
                    const char *name);

/* Waits up to timeout_ms for pid to exit and reaps it. Returns the exit code (0..255),
 * 128 + signal number if it was killed by a signal, or -ETIMEDOUT (pid still running). */
int harness_wait(pid_t pid, int timeout_ms);

/* Whether pid is still running (not exited; a zombie counts as exited and is reaped). */
bool harness_alive(pid_t pid);

/* What became of pid, for assertion messages: "running", "exited with N", or "killed by signal
 * S (NAME)". Reaps pid if it has exited. */
char *harness_describe(pid_t pid);

/* "NAME (what became of pid) stderr:\n<NAME.err>", for assertion messages. */
char *harness_report(pid_t pid, const char *name);

/* Sends sig to pid; for SIGKILL also reaps it. Returns 0 or -errno. */
int harness_kill(pid_t pid, int sig);

/* The text of harness_dir()/NAME.err (or "" if unreadable); for assertion messages. */
char *harness_log(const char *name);

/* Retries connect() to HOST:port (an IPv4 or IPv6 literal) until one succeeds (then closes it)
 * or the deadline passes. Returns 0 or -ETIMEDOUT. */
int harness_wait_port(const char *host, int port, int timeout_ms);

/* Acts as a stray client: connects to HOST:port, writes len bytes of data, then reads and
 * discards whatever comes back until EOF or linger_ms passes, and closes. A write or read error
 * after connecting (the peer dropped us) is not a failure. Returns 0, or -errno if the connection
 * could not be made. */
int harness_send_raw(const char *host, int port, const void *data, size_t len, int linger_ms);

/* Polls pred(arg) until it returns true. If watch > 0 and that process exits first, gives up
 * early with -ECHILD (the process is not reaped, so its exit code can still be collected with
 * harness_wait()). Returns 0, -ETIMEDOUT or -ECHILD. */
int harness_wait_until(bool (*pred)(void *arg), void *arg, pid_t watch, int timeout_ms);

/* harness_wait_until() for: harness_dir_bytes(dir) >= min_bytes. */
int harness_wait_dir_bytes(const char *dir, long long min_bytes, pid_t watch, int timeout_ms);

/* harness_wait_until() for: path exists. */
int harness_wait_file(const char *path, pid_t watch, int timeout_ms);

/* harness_wait_until() for: the file at path contains text. */
int harness_wait_file_text(const char *path, const char *text, pid_t watch, int timeout_ms);

/* Writes size bytes of a pseudo-random stream determined by seed to path (truncating it).
 * Returns 0 or -errno. */
int harness_make_file(const char *path, long long size, uint64_t seed);

/* Returns 0 if the two files have the same bytes, 1 if they differ (in size or content),
 * -errno if one cannot be read. */
int harness_cmp_files(const char *a, const char *b);

/* Reads a file of at most 1 MiB into a NUL-terminated string owned by the harness.
 * Returns NULL on failure. */
char *harness_read_file(const char *path);

/* Writes len bytes of data to path (truncating it). Returns 0 or -errno. */
int harness_write_file(const char *path, const void *data, size_t len);

/* Sum over regular files below dir (recursively) of the bytes actually holding data:
 * min(st_size, allocated blocks), so a sparse preallocated file does not count as written.
 * A missing dir counts 0. */
long long harness_dir_bytes(const char *dir);

/* The entry names of dir (as `ls -A`), sorted, each followed by '\n'; "" for an empty dir,
 * NULL if dir cannot be opened. */
char *harness_ls(const char *dir);

/* harness_wait_until() for: harness_ls(dir) equals expected. */
int harness_wait_ls(const char *dir, const char *expected, int timeout_ms);

/* Finds the single regular file in dir whose name ends with suffix. Returns its path (owned by
 * the harness), or NULL if there is none or more than one. */
char *harness_find_one(const char *dir, const char *suffix);

/* Starts `XFER_BIN recv --port PORT --dir DIR [extra...]` with env as in harness_spawn() and
 * waits until 127.0.0.1:PORT accepts connections. Returns the pid or -errno (-ETIMEDOUT, or
 * -ECHILD if it exited first). */
pid_t harness_start_recv(int port, const char *dir, const char *const extra[],
                         const char *const env[], const char *name);

/* Starts `XFER_BIN send [args...]`. Returns the pid or -errno. */
pid_t harness_start_send(const char *const args[], const char *const env[], const char *name);

/* harness_start_send() then harness_wait(). Returns the exit code or -errno. */
int harness_run_send(const char *const args[], const char *const env[], const char *name,
                     int timeout_ms);

/* The helpers below fail the running Criterion test (with the process's stderr in the message)
 * instead of returning an error. */

/* Creates dir, picks a free port (stored in *port) and starts a receiver there as NAME. */
pid_t harness_must_recv(int *port, const char *dir, const char *const extra[],
                        const char *const env[], const char *name);

/* Writes harness_dir()/REL (parents created) with size pseudo-random bytes from seed and
 * returns its path. */
char *harness_must_src(const char *rel, long long size, uint64_t seed);

/* Expects `ls -A dir` to be exactly expected (names sorted, each followed by '\n') within
 * HARNESS_CLEANUP_MS: the receiver may still be removing dir/.xfer just after a sender exits. */
void harness_must_ls(const char *dir, const char *expected);

struct harness_proxy {
    pid_t pid;
    int port;
    char *stats_path;
};

struct harness_proxy_stats {
    long long connections;
    long long up;
    long long down;
    long long cuts;
    long long flips;
    long long stalls;
};

/* Starts `FAULTPROXY_BIN --target 127.0.0.1:TARGET_PORT --port-file F --stats S [fault...]`,
 * waits for the port file and for the port to accept connections. Fills *p.
 * Returns 0 or -errno. */
int harness_start_proxy(struct harness_proxy *p, int target_port, const char *const fault[],
                        const char *name);

/* SIGTERMs the proxy (it then writes its final stats), waits for it and reads the stats.
 * Returns 0 or -errno. */
int harness_stop_proxy(struct harness_proxy *p, struct harness_proxy_stats *s);

/* Parses `connections=C up=U down=D cuts=X flips=Y stalls=Z`. Returns 0, -errno, or -EINVAL. */
int harness_read_proxy_stats(const char *path, struct harness_proxy_stats *s);

/* The first attempt of a transfer throttled so that a test has time to kill something mid-way:
 * a receiver into harness_dir()/dst, a faultproxy limiting each direction to
 * HARNESS_THROTTLE_BYTES_PER_SEC in front of it, and `xfer send [send_extra...] src/NAME` through
 * the proxy (stderr in send1.err; the receiver's in recv.err), left running once at least
 * min_partial bytes sit under dst/.xfer. src/NAME holds size bytes from seed. env goes to both
 * xfer processes. Fails the running test if any of that does not happen. */
#define HARNESS_THROTTLE_BYTES_PER_SEC (8 * HARNESS_MIB)

struct harness_slow {
    char *dir;      /* dst */
    char *xfer_dir; /* dst/.xfer */
    char *src;      /* src/NAME */
    char *dst;      /* dst/NAME */
    pid_t recv;
    int recv_port;
    pid_t send;
    struct harness_proxy proxy;
};

void harness_must_slow_transfer(struct harness_slow *r, const char *name, long long size,
                                uint64_t seed, long long min_partial,
                                const char *const send_extra[], const char *const env[]);

#endif /* XFER_TESTS_HARNESS_H */
