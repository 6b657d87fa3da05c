/* What reaches the disk, and where: symbolic links planted at every step of a transfer never
 * redirect a write outside --dir; a .xfer made by someone else, or a partial edited together with
 * its journal, is not trusted; setuid, setgid and sticky bits never survive; a file that cannot
 * fit is refused without a trace; and what a hostile receiver (one that holds the secret) can make
 * a sender do: read past its file, print raw escape sequences, or keep it sending for ever (it
 * cannot: the sender stops with exit 8).
 *
 * Every test keeps sentinel files outside --dir (harness_dir()/outside, next to --dir) with known
 * bytes, mode and mtime, and checks they are untouched afterwards, byte for byte, along with
 * exactly what appears under --dir. */
#include "harness.h"
#include "wire.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

TestSuite(fs, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

/* ---- sentinels outside --dir ------------------------------------------------------------- */

/* 2017-07-14: far from the time any test runs, so a touched sentinel shows. */
#define SENTINEL_MTIME 1500000000
#define SENTINEL_MODE 0644
#define MAX_SENTINELS 4

struct sentinel {
    char *path;
    char *text;
    ino_t ino;
};

struct outside {
    char *dir;
    struct sentinel s[MAX_SENTINELS];
    size_t n;
    char *listing; /* `ls -A dir` as it must stay */
};

/* Creates harness_dir()/outside holding one file per name (names sorted), each with its own text,
 * mode SENTINEL_MODE and mtime SENTINEL_MTIME. */
static void outside_plant(struct outside *o, const char *const names[])
{
    memset(o, 0, sizeof(*o));
    o->dir = harness_pathf("outside");
    cr_assert_eq(harness_mkdirs(o->dir), 0, "cannot create %s", o->dir);
    o->listing = harness_strf("%s", "");
    for (; *names != NULL; names++) {
        struct timespec times[2] = {{SENTINEL_MTIME, 0}, {SENTINEL_MTIME, 0}};
        struct sentinel *s;
        struct stat st;

        cr_assert_lt(o->n, MAX_SENTINELS);
        s = &o->s[o->n++];
        s->path = harness_strf("%s/%s", o->dir, *names);
        s->text = harness_strf("sentinel %s outside --dir: xfer must never write here\n", *names);
        cr_assert_eq(harness_write_file(s->path, s->text, strlen(s->text)), 0, "cannot write %s",
                     s->path);
        cr_assert_eq(chmod(s->path, SENTINEL_MODE), 0, "chmod %s: %s", s->path, strerror(errno));
        cr_assert_eq(utimensat(AT_FDCWD, s->path, times, 0), 0, "utimensat %s: %s", s->path,
                     strerror(errno));
        cr_assert_eq(lstat(s->path, &st), 0);
        s->ino = st.st_ino;
        o->listing = harness_strf("%s%s\n", o->listing, *names);
    }
}

/* Every sentinel is the same file (inode, one link), with the same bytes, mode and mtime, and
 * nothing else appeared next to them. */
static void outside_must_be_untouched(const struct outside *o)
{
    char *ls = harness_ls(o->dir);
    size_t i;

    cr_assert(ls != NULL && strcmp(ls, o->listing) == 0,
              "something was written outside --dir: `ls -A %s` is\n%swant\n%s", o->dir,
              ls != NULL ? ls : "(cannot open)\n", o->listing);
    for (i = 0; i < o->n; i++) {
        const struct sentinel *s = &o->s[i];
        size_t len = strlen(s->text);
        struct stat st;
        char *now;

        cr_assert_eq(lstat(s->path, &st), 0, "sentinel %s is gone: %s", s->path, strerror(errno));
        cr_assert(S_ISREG(st.st_mode), "sentinel %s is no longer a regular file", s->path);
        cr_assert_eq(st.st_ino, s->ino, "sentinel %s was replaced (new inode)", s->path);
        cr_assert_eq(st.st_nlink, 1, "sentinel %s gained a hard link (%ld links)", s->path,
                     (long)st.st_nlink);
        cr_assert_eq(st.st_mode & 07777, SENTINEL_MODE, "sentinel %s has mode %04o, want %04o",
                     s->path, (unsigned)(st.st_mode & 07777), SENTINEL_MODE);
        cr_assert(st.st_mtim.tv_sec == SENTINEL_MTIME && st.st_mtim.tv_nsec == 0,
                  "sentinel %s was written to (mtime %lld.%09ld)", s->path,
                  (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        cr_assert_eq((size_t)st.st_size, len, "sentinel %s has %lld bytes, want %zu", s->path,
                     (long long)st.st_size, len);
        now = harness_read_file(s->path);
        cr_assert(now != NULL && memcmp(now, s->text, len) == 0,
                  "sentinel %s changed: it holds\n%s", s->path, now != NULL ? now : "(unreadable)");
    }
}

/* path is a symbolic link whose target is still want. */
static void must_be_link_to(const char *path, const char *want)
{
    char got[4096];
    ssize_t n = readlink(path, got, sizeof(got) - 1);

    cr_assert_geq(n, 0, "%s is no longer a symbolic link: %s", path, strerror(errno));
    got[n] = '\0';
    cr_assert_str_eq(got, want, "%s now points to %s, want %s", path, got, want);
}

static int send_one(const char *src, int port, const char *name)
{
    return harness_run_send((const char *[]){src, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
                            name, HARNESS_DEADLINE_MS);
}

/* ---- 1. symbolic links planted under --dir --------------------------------------------- */

Test(fs, symlink_in_place_of_the_state_dir_is_refused_and_not_followed)
{
    /* Checks that with D/.xfer a symbolic link to a directory outside D (../outside), the sender
     * is refused (exit 4) with a message about a symbolic link, nothing is written through the
     * link, and the link is left as it was. */
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/data.bin", 3 * HARNESS_MIB, 41);
    char *link = harness_strf("%s/.xfer", dir);
    struct outside o;
    pid_t recv;
    int port;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    cr_assert_eq(harness_mkdirs(dir), 0);
    cr_assert_eq(symlink("../outside", link), 0, "symlink %s: %s", link, strerror(errno));
    recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = send_one(src, port, "send");
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 4, "sender exit %d (want 4); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert(strstr(harness_log("send"), "xfer: error:") != NULL &&
                  strstr(harness_log("send"), "symbolic link") != NULL,
              "the sender's error does not say a symbolic link is in the way; stderr:\n%s",
              harness_log("send"));
    must_be_link_to(link, "../outside");
    harness_must_ls(dir, ".xfer\n");
    cr_assert(harness_alive(recv), "%s", harness_report(recv, "recv"));
}

/* A link at D/NAME to the sentinel keep, refused by a receiver with these extra options. */
static void final_name_link_is_refused(const char *const recv_extra[])
{
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/name.bin", 2 * HARNESS_MIB, 42);
    char *link = harness_strf("%s/name.bin", dir);
    struct outside o;
    pid_t recv;
    int port;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    cr_assert_eq(harness_mkdirs(dir), 0);
    cr_assert_eq(symlink(o.s[0].path, link), 0, "symlink %s: %s", link, strerror(errno));
    recv = harness_must_recv(&port, dir, recv_extra, NULL, "recv");
    rc = send_one(src, port, "send");
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 4, "sender exit %d (want 4); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert(strstr(harness_log("send"), "not a regular file") != NULL,
              "the sender's error does not say \"not a regular file\"; stderr:\n%s",
              harness_log("send"));
    must_be_link_to(link, o.s[0].path);
    harness_must_ls(dir, "name.bin\n");
    cr_assert(harness_alive(recv), "%s", harness_report(recv, "recv"));
}

Test(fs, symlink_at_the_final_name_is_refused_as_not_a_regular_file)
{
    /* Checks that D/NAME being a symbolic link to a file outside D gets the sender refused
     * (exit 4, "not a regular file"), the link's target untouched and the link left alone. */
    final_name_link_is_refused(NULL);
}

Test(fs, symlink_at_the_final_name_is_refused_even_with_overwrite)
{
    /* Checks the same with recv --overwrite: links are never replaced, let alone followed. */
    final_name_link_is_refused((const char *[]){"--overwrite", NULL});
}

Test(fs, dangling_symlink_at_the_final_name_is_refused_with_or_without_overwrite)
{
    /* Checks that a dangling symbolic link at D/NAME (to outside/ghost, which does not exist) gets
     * the sender refused (exit 4) by a plain receiver and by one with --overwrite, and that
     * nothing is created at the link's target. */
    static const char *const overwrite[] = {"--overwrite", NULL};
    char *dir = harness_pathf("dst");
    char *src = harness_must_src("src/ghost.bin", HARNESS_MIB + 7, 43);
    char *link = harness_strf("%s/ghost.bin", dir);
    char *target;
    struct outside o;
    int pass;

    outside_plant(&o, (const char *[]){"keep", NULL});
    target = harness_strf("%s/ghost", o.dir);
    cr_assert_eq(harness_mkdirs(dir), 0);
    cr_assert_eq(symlink(target, link), 0, "symlink %s: %s", link, strerror(errno));
    for (pass = 0; pass < 2; pass++) {
        char *rname = harness_strf("recv%d", pass);
        char *sname = harness_strf("send%d", pass);
        pid_t recv;
        int port;
        int rc;

        recv = harness_must_recv(&port, dir, pass == 0 ? NULL : overwrite, NULL, rname);
        rc = send_one(src, port, sname);
        outside_must_be_untouched(&o);
        cr_assert_eq(rc, 4, "%s: sender exit %d (want 4); stderr:\n%s\n%s",
                     pass == 0 ? "plain receiver" : "recv --overwrite", rc, harness_log(sname),
                     harness_report(recv, rname));
        cr_assert(strstr(harness_log(sname), "not a regular file") != NULL,
                  "the sender's error does not say \"not a regular file\"; stderr:\n%s",
                  harness_log(sname));
        must_be_link_to(link, target);
        harness_must_ls(dir, "ghost.bin\n");
        cr_assert_eq(harness_kill(recv, SIGKILL), 0);
    }
}

/* -- links planted in .xfer between two runs ----------------------------------------------- */

/* Throttles the first attempt so there is time to kill it mid-transfer. */
static const char *const idle_env[] = {"XFER_IDLE_TIMEOUT=2", NULL};

/* Every slow transfer's source file here comes from this seed. */
#define SLOW_SEED 44

static void start_slow_transfer(struct harness_slow *r, const char *name, long long size,
                                long long min_partial)
{
    harness_must_slow_transfer(r, name, size, SLOW_SEED, min_partial, NULL, idle_env);
}

static bool receiver_let_go(void *arg)
{
    char *log = harness_log((const char *)arg);

    return strstr(log, "partial kept for resume") != NULL ||
           strstr(log, "lost while receiving") != NULL;
}

/* kill -9 the sender, stop the proxy, and wait until the receiver has seen the connection end, so
 * nothing of that session touches .xfer by name once the test starts planting links there. */
static void kill_sender(struct harness_slow *r)
{
    int rc;

    rc = harness_kill(r->send, SIGKILL);
    cr_assert_eq(rc, 0, "cannot kill the sender: %s", strerror(-rc));
    rc = harness_stop_proxy(&r->proxy, NULL);
    cr_assert_eq(rc, 0, "cannot stop the proxy: %s", strerror(-rc));
    rc = harness_wait_until(receiver_let_go, "recv", r->recv, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "the receiver did not notice the killed sender (%s); %s", strerror(-rc),
                 harness_report(r->recv, "recv"));
}

/* Replaces the single dst/.xfer/ *suffix by a symbolic link to target. */
static void plant_state_link(struct harness_slow *r, const char *suffix, const char *target)
{
    char *path = harness_find_one(r->xfer_dir, suffix);

    cr_assert_not_null(path, "expected exactly one *%s under %s; it has:\n%s", suffix, r->xfer_dir,
                       harness_ls(r->xfer_dir));
    cr_assert_eq(unlink(path), 0, "unlink %s: %s", path, strerror(errno));
    cr_assert_eq(symlink(target, path), 0, "symlink %s: %s", path, strerror(errno));
}

/* Reruns the sender straight to the receiver; returns its exit code. */
static int rerun_sender(struct harness_slow *r)
{
    return harness_run_send(
        (const char *[]){r->src, harness_strf("127.0.0.1:%d", r->recv_port), NULL}, idle_env,
        "send2", HARNESS_DEADLINE_MS);
}

Test(fs, symlink_in_place_of_the_partial_is_not_followed_and_the_file_starts_over)
{
    /* Checks that after kill -9 of the sender, with D/.xfer/HEX.part replaced by a symbolic link
     * to outside/victim, a rerun succeeds from the first byte (the partial is not trusted, and not
     * written through), victim is untouched and D/NAME is identical to the source. */
    struct outside o;
    struct harness_slow r;
    int rc;

    outside_plant(&o, (const char *[]){"keep", "victim", NULL});
    start_slow_transfer(&r, "part.bin", 32 * HARNESS_MIB, 4 * HARNESS_MIB);
    kill_sender(&r);
    plant_state_link(&r, ".part", o.s[1].path);
    rc = rerun_sender(&r);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "rerun sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send2"),
                 harness_report(r.recv, "recv"));
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0, "%s differs from its source", r.dst);
    cr_assert(strstr(harness_log("send2"), "resuming") == NULL,
              "the rerun resumed on a partial that was a link; stderr:\n%s", harness_log("send2"));
    harness_must_ls(r.dir, "part.bin\n");
}

Test(fs, symlink_in_place_of_the_journal_is_not_followed_and_the_rerun_succeeds)
{
    /* Checks that after kill -9 of the sender, with D/.xfer/HEX.journal replaced by a symbolic
     * link to outside/victim2, a rerun succeeds, victim2 is untouched (neither read as a journal
     * nor written) and D/NAME is identical to the source. */
    struct outside o;
    struct harness_slow r;
    int rc;

    outside_plant(&o, (const char *[]){"keep", "victim2", NULL});
    start_slow_transfer(&r, "journal.bin", 32 * HARNESS_MIB, 4 * HARNESS_MIB);
    kill_sender(&r);
    plant_state_link(&r, ".journal", o.s[1].path);
    rc = rerun_sender(&r);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "rerun sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send2"),
                 harness_report(r.recv, "recv"));
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0, "%s differs from its source", r.dst);
    harness_must_ls(r.dir, "journal.bin\n");
}

/* Replaces the single dst/.xfer/ *suffix by a hard link to target: O_NOFOLLOW does not see it. */
static void plant_state_hard_link(struct harness_slow *r, const char *suffix, const char *target)
{
    char *path = harness_find_one(r->xfer_dir, suffix);

    cr_assert_not_null(path, "expected exactly one *%s under %s; it has:\n%s", suffix, r->xfer_dir,
                       harness_ls(r->xfer_dir));
    cr_assert_eq(unlink(path), 0, "unlink %s: %s", path, strerror(errno));
    cr_assert_eq(link(target, path), 0, "link %s: %s", path, strerror(errno));
}

/* After kill -9 of the sender, D/.xfer/HEX<suffix> is replaced by a hard link to a file outside
 * D; the rerun must succeed without writing through it, and the receiver must say so. */
static void hard_link_in_state_dir_is_not_written_through(const char *suffix, const char *name)
{
    struct outside o;
    struct harness_slow r;
    int rc;

    outside_plant(&o, (const char *[]){"keep", "victim", NULL});
    start_slow_transfer(&r, name, 32 * HARNESS_MIB, 4 * HARNESS_MIB);
    kill_sender(&r);
    plant_state_hard_link(&r, suffix, o.s[1].path);
    rc = rerun_sender(&r);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "rerun sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send2"),
                 harness_report(r.recv, "recv"));
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0, "%s differs from its source", r.dst);
    cr_assert(strstr(harness_log("recv"), "another link or owner") != NULL,
              "the receiver did not report the hard link; stderr:\n%s", harness_log("recv"));
    harness_must_ls(r.dir, harness_strf("%s\n", name));
}

Test(fs, hard_link_in_place_of_the_journal_is_not_written_through)
{
    /* Checks issue 9 finding 3: a hard link to outside/victim planted at the journal's name (as
     * whoever could write to .xfer before it was private can do) is neither read as a journal
     * nor truncated and rewritten: its name is removed, the file starts over, victim is
     * untouched. */
    hard_link_in_state_dir_is_not_written_through(".journal", "hardj.bin");
}

Test(fs, hard_link_in_place_of_the_partial_is_not_written_through)
{
    /* Checks the same for the partial the journal vouches for: resuming would write the rest of
     * the file (and, since it reads back damaged, all of it) into outside/victim. */
    hard_link_in_state_dir_is_not_written_through(".part", "hardp.bin");
}

Test(fs, state_dir_open_to_others_is_refused_with_a_clear_error)
{
    /* Checks that a D/.xfer of the receiver's own user but open to others (mode 0777: not one the
     * receiver made, since it makes it 0700, so anyone may have planted links in it) is not used:
     * the file is refused (sender exit 4) with a line saying why and what to do, nothing is
     * written into it and its mode is left for its owner to judge. */
    char *dir = harness_pathf("dst");
    char *xfer_dir = harness_strf("%s/.xfer", dir);
    char *src = harness_must_src("src/open.bin", 100000, 48);
    struct outside o;
    struct stat st;
    pid_t recv;
    int port;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    cr_assert_eq(harness_mkdirs(xfer_dir), 0);
    cr_assert_eq(chmod(xfer_dir, 0777), 0, "chmod %s: %s", xfer_dir, strerror(errno));
    recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = send_one(src, port, "send");
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 4, "sender exit %d (want 4); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    cr_assert(strstr(harness_log("send"), "open to other users") != NULL &&
                  strstr(harness_log("send"), "chmod 700") != NULL,
              "the sender's error does not say why and what to do; stderr:\n%s",
              harness_log("send"));
    harness_must_ls(xfer_dir, "");
    cr_assert_eq(stat(xfer_dir, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0777, "the receiver changed %s's mode to %04o", xfer_dir,
                 (unsigned)(st.st_mode & 07777));
    harness_must_ls(dir, ".xfer\n");
}

/* -- a state dir someone else made, and a partial someone else edited ----------------------- */

Test(fs, state_dir_made_by_another_user_is_not_used_as_it_is)
{
    /* Checks that a D/.xfer made beforehand by another user (uid 65534, mode 0777, as anyone who
     * may write to D can) does not end up holding this receiver's partials as it is: either the
     * file is refused, or by the time partial data is in it, it belongs to the receiver's user
     * with mode 0700 (xfer(1), FILES and SECURITY: "mode 0700"). Otherwise that user can remove,
     * replace or pre-plant partials and journals of files sent to D. */
    char *dir = harness_pathf("dst");
    char *xfer_dir = harness_strf("%s/.xfer", dir);
    char *src = harness_must_src("src/shared.bin", 16 * HARNESS_MIB, 47);
    struct harness_proxy proxy;
    struct outside o;
    struct stat st;
    pid_t recv;
    pid_t send;
    int port;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    cr_assert_eq(harness_mkdirs(xfer_dir), 0);
    cr_assert_eq(chown(xfer_dir, 65534, 65534), 0, "chown %s: %s", xfer_dir, strerror(errno));
    cr_assert_eq(chmod(xfer_dir, 0777), 0, "chmod %s: %s", xfer_dir, strerror(errno));
    recv = harness_must_recv(&port, dir, NULL, idle_env, "recv");
    rc = harness_start_proxy(
        &proxy, port,
        (const char *[]){"--throttle", harness_strf("%lld", HARNESS_THROTTLE_BYTES_PER_SEC), NULL},
        "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start (%s)", strerror(-rc));
    send = harness_start_send((const char *[]){src, harness_strf("127.0.0.1:%d", proxy.port), NULL},
                              idle_env, "send");
    cr_assert_gt(send, 0);
    rc = harness_wait_dir_bytes(xfer_dir, 2 * HARNESS_MIB, send, HARNESS_DEADLINE_MS);
    if (rc == -ECHILD) {
        /* Done before any partial data: that must have been a refusal. */
        rc = harness_wait(send, HARNESS_DEADLINE_MS);
        outside_must_be_untouched(&o);
        cr_assert_eq(rc, 4,
                     "sender exit %d (want 4, or a partial in a private .xfer); "
                     "stderr:\n%s\n%s",
                     rc, harness_log("send"), harness_report(recv, "recv"));
        return;
    }
    cr_assert_eq(rc, 0, "no partial data within the deadline: %s", strerror(-rc));
    cr_assert_eq(lstat(xfer_dir, &st), 0);
    cr_assert(st.st_uid == getuid() && (st.st_mode & 07777) == 0700,
              "the receiver writes its partials into a %s owned by uid %d with mode %04o (want "
              "its own uid %d, mode 0700); it holds:\n%s",
              xfer_dir, (int)st.st_uid, (unsigned)(st.st_mode & 07777), (int)getuid(),
              harness_ls(xfer_dir));
    rc = harness_wait(send, HARNESS_DEADLINE_MS);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "sender exit %d; stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
}

/* In the journal at path, gives chunk 0 the hash `hash` in every record that covers it, with the
 * record's checksum made to match (xfer-protocol(7), the journal). Returns how many records. */
static int journal_set_chunk0_hash(const char *path, uint64_t hash)
{
    enum { HEADER_FIXED = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 2 + 8, RECORD_FIXED = 4 + 8 + 4 + 8 + 4 };
    struct stat st;
    uint8_t *j;
    size_t len;
    size_t pos;
    int patched = 0;
    int fd;

    fd = open(path, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(fstat(fd, &st), 0);
    len = (size_t)st.st_size;
    j = malloc(len + 1);
    cr_assert_not_null(j);
    cr_assert_eq(pread(fd, j, len, 0), (ssize_t)len);
    cr_assert_geq(len, (size_t)HEADER_FIXED, "journal %s is too short", path);
    cr_assert_eq(w_get_u32(j), 0x584a4e4cu, "journal %s has no XJNL magic", path);
    pos = HEADER_FIXED + w_get_u16(j + 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4);
    while (len - pos >= RECORD_FIXED + 8 && w_get_u32(j + pos) == 0x584a5243u) {
        uint64_t from = w_get_u64(j + pos + 4);
        uint32_t n = w_get_u32(j + pos + 12);
        uint32_t state_len = w_get_u32(j + pos + 24);
        size_t body = RECORD_FIXED + state_len + (size_t)n * 8;

        if (len - pos < body + 8)
            break; /* a torn record: the receiver ignores it too */
        if (from == 0 && n > 0) {
            w_put_u64(j + pos + RECORD_FIXED + state_len, hash);
            w_put_u64(j + pos + body, XXH3_64bits(j + pos, body));
            patched++;
        }
        pos += body + 8;
    }
    cr_assert_eq(pwrite(fd, j, len, 0), (ssize_t)len);
    cr_assert_eq(close(fd), 0);
    free(j);
    return patched;
}

Test(fs, partial_edited_along_with_its_journal_hash_is_still_caught_by_the_whole_file_hash)
{
    /* Checks that the whole-file hash at the end of a resumed transfer covers the bytes on disk:
     * after kill -9 of the sender, 64 bytes of the partial's first chunk are changed and the
     * journal's hash of that chunk is made to match (as whoever can write to D/.xfer can), yet the
     * rerun ends with D/NAME identical to the source (xfer(1), RESUME: a mismatch is received
     * again) and never with a file that differs from it reported as verified. */
    struct outside o;
    struct harness_slow r;
    char *part;
    char *journal;
    uint8_t *chunk;
    int fd;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    start_slow_transfer(&r, "edited.bin", 32 * HARNESS_MIB, 6 * HARNESS_MIB);
    kill_sender(&r);
    part = harness_find_one(r.xfer_dir, ".part");
    journal = harness_find_one(r.xfer_dir, ".journal");
    cr_assert(part != NULL && journal != NULL,
              "expected one .part and one .journal; .xfer has:\n%s", harness_ls(r.xfer_dir));
    chunk = malloc(HARNESS_MIB);
    cr_assert_not_null(chunk);
    fd = open(part, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, chunk, HARNESS_MIB, 0), (ssize_t)HARNESS_MIB);
    memset(chunk + 4096, 'X', 64);
    cr_assert_eq(pwrite(fd, chunk, HARNESS_MIB, 0), (ssize_t)HARNESS_MIB);
    cr_assert_eq(close(fd), 0);
    cr_assert_gt(journal_set_chunk0_hash(journal, XXH3_64bits_withSeed(chunk, HARNESS_MIB, 0)), 0,
                 "no journal record covers chunk 0");
    free(chunk);
    rc = rerun_sender(&r);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "rerun sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send2"),
                 harness_report(r.recv, "recv"));
    cr_assert_eq(
        harness_cmp_files(r.src, r.dst), 0,
        "%s differs from its source (64 bytes at 4096 are the edited ones), yet the sender "
        "says:\n%sand the receiver:\n%s",
        r.dst, harness_log("send2"), harness_log("recv"));
    harness_must_ls(r.dir, "edited.bin\n");
}

/* -- a link planted at the final name while the file is in flight --------------------------- */

/* Starts a slow transfer, plants D/NAME -> outside/keep mid-way and lets it finish through the
 * proxy. Returns the sender's exit code. */
static int plant_final_link_mid_transfer(struct harness_slow *r, struct outside *o,
                                         const char *const recv_extra[])
{
    char *link;
    int rc;

    memset(r, 0, sizeof(*r));
    r->dir = harness_pathf("dst");
    r->xfer_dir = harness_strf("%s/.xfer", r->dir);
    r->dst = harness_strf("%s/late.bin", r->dir);
    r->src = harness_must_src("src/late.bin", 16 * HARNESS_MIB, 45);
    r->recv = harness_must_recv(&r->recv_port, r->dir, recv_extra, idle_env, "recv");
    rc = harness_start_proxy(
        &r->proxy, r->recv_port,
        (const char *[]){"--throttle", harness_strf("%lld", HARNESS_THROTTLE_BYTES_PER_SEC), NULL},
        "proxy");
    cr_assert_eq(rc, 0, "faultproxy did not start (%s)", strerror(-rc));
    r->send = harness_start_send(
        (const char *[]){r->src, harness_strf("127.0.0.1:%d", r->proxy.port), NULL}, idle_env,
        "send1");
    cr_assert_gt(r->send, 0);
    rc = harness_wait_dir_bytes(r->xfer_dir, 2 * HARNESS_MIB, r->send, HARNESS_DEADLINE_MS);
    cr_assert_eq(rc, 0, "partial never reached 2 MiB (%s); sender stderr:\n%s", strerror(-rc),
                 harness_log("send1"));
    link = r->dst;
    cr_assert_eq(symlink(o->s[0].path, link), 0, "symlink %s: %s", link, strerror(errno));
    rc = harness_wait(r->send, HARNESS_DEADLINE_MS);
    cr_assert_geq(rc, 0, "the sender did not finish: %s", strerror(-rc));
    return rc;
}

Test(fs, symlink_planted_at_the_final_name_mid_transfer_is_not_followed_at_commit)
{
    /* Checks that a symbolic link to outside/keep that appears at D/NAME while NAME is in flight
     * is not written through when the file is committed: the sender is refused (exit 4, the name
     * appeared meanwhile), keep is untouched and the link stays. */
    struct outside o;
    struct harness_slow r;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    rc = plant_final_link_mid_transfer(&r, &o, NULL);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 4, "sender exit %d (want 4); stderr:\n%s\n%s", rc, harness_log("send1"),
                 harness_report(r.recv, "recv"));
    must_be_link_to(r.dst, o.s[0].path);
    /* The received data stays as a partial, for a rerun once the name is free. */
    harness_must_ls(r.dir, ".xfer\nlate.bin\n");
}

Test(fs, symlink_planted_at_the_final_name_mid_transfer_is_replaced_not_followed_with_overwrite)
{
    /* Checks the same with recv --overwrite: the commit replaces the link itself by the received
     * file (exit 0, D/NAME a regular file identical to the source), keep is untouched. */
    struct outside o;
    struct harness_slow r;
    struct stat st;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    rc = plant_final_link_mid_transfer(&r, &o, (const char *[]){"--overwrite", NULL});
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send1"),
                 harness_report(r.recv, "recv"));
    cr_assert_eq(lstat(r.dst, &st), 0);
    cr_assert(S_ISREG(st.st_mode), "%s is not a regular file after the commit", r.dst);
    cr_assert_eq(harness_cmp_files(r.src, r.dst), 0, "%s differs from its source", r.dst);
    harness_must_ls(r.dir, "late.bin\n");
}

/* ---- 2. setuid, setgid and sticky bits --------------------------------------------------- */

/* Starts `sh -c 'umask MASK; exec xfer recv --port P --dir DIR'` and waits for its port. */
static pid_t must_recv_with_umask(const char *mask, const char *dir, int *port, const char *name)
{
    static const char script[] = "umask \"$1\" && exec \"$0\" recv --port \"$2\" --dir \"$3\"";
    long long deadline;
    pid_t pid;

    cr_assert_eq(harness_mkdirs(dir), 0);
    *port = harness_free_port();
    cr_assert_gt(*port, 0, "no free port");
    pid = harness_spawn((const char *[]){"/bin/sh", "-c", script, XFER_BIN, mask,
                                         harness_strf("%d", *port), dir, NULL},
                        NULL, NULL, name);
    cr_assert_gt(pid, 0, "cannot start the receiver: %s", strerror(-pid));
    deadline = w_now_ms() + HARNESS_DEADLINE_MS;
    while (harness_wait_port("127.0.0.1", *port, HARNESS_POLL_MS * 5) != 0) {
        cr_assert(harness_alive(pid), "the receiver did not start; %s", harness_report(pid, name));
        cr_assert_lt(w_now_ms(), deadline, "the receiver never listened");
    }
    return pid;
}

struct mode_case {
    const char *name;
    mode_t src_mode;
    mode_t want_022;
    mode_t want_077;
};

/* Sorted by name, as `ls -A` lists them. */
static const struct mode_case mode_cases[] = {
    {"sgid-only", 02640, 0640, 0600},
    {"sticky", 01777, 0755, 0700},
    {"suid-sgid", 06755, 0755, 0700},
};

#define N_MODE_CASES (sizeof(mode_cases) / sizeof(mode_cases[0]))

static void modes_are_masked(const char *mask)
{
    char *dir = harness_pathf("dst");
    const char *args[N_MODE_CASES + 2];
    char *listing = harness_strf("%s", "");
    struct outside o;
    pid_t recv;
    size_t i;
    int port;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    for (i = 0; i < N_MODE_CASES; i++) {
        char *src = harness_must_src(harness_strf("src/%s", mode_cases[i].name), 70000 + i, 50 + i);
        struct stat st;

        cr_assert_eq(chmod(src, mode_cases[i].src_mode), 0, "chmod %s: %s", src, strerror(errno));
        cr_assert_eq(stat(src, &st), 0);
        cr_assert_eq(st.st_mode & 07777, mode_cases[i].src_mode, "cannot give %s mode %04o", src,
                     (unsigned)mode_cases[i].src_mode);
        args[i] = src;
    }
    for (i = 0; i < N_MODE_CASES; i++)
        listing = harness_strf("%s%s\n", listing, mode_cases[i].name);
    recv = must_recv_with_umask(mask, dir, &port, "recv");
    args[N_MODE_CASES] = harness_strf("127.0.0.1:%d", port);
    args[N_MODE_CASES + 1] = NULL;
    rc = harness_run_send(args, NULL, "send", HARNESS_DEADLINE_MS);
    outside_must_be_untouched(&o);
    cr_assert_eq(rc, 0, "sender exit %d (want 0); stderr:\n%s\n%s", rc, harness_log("send"),
                 harness_report(recv, "recv"));
    for (i = 0; i < N_MODE_CASES; i++) {
        char *dst = harness_strf("%s/%s", dir, mode_cases[i].name);
        mode_t want = strcmp(mask, "022") == 0 ? mode_cases[i].want_022 : mode_cases[i].want_077;
        struct stat st;

        cr_assert_eq(lstat(dst, &st), 0, "%s is missing", dst);
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, want,
                     "%s (source mode %04o) arrived with mode %04o under umask %s, want %04o",
                     mode_cases[i].name, (unsigned)mode_cases[i].src_mode,
                     (unsigned)(st.st_mode & 07777), mask, (unsigned)want);
        cr_assert_eq(st.st_uid, getuid(), "%s belongs to uid %d, not the receiver's",
                     mode_cases[i].name, (int)st.st_uid);
        cr_assert_eq(harness_cmp_files(args[i], dst), 0, "%s differs from its source", dst);
    }
    harness_must_ls(dir, listing);
}

Test(fs, setuid_setgid_and_sticky_bits_are_dropped_under_umask_022)
{
    /* Checks that sources of mode 02640, 01777 and 06755 arrive as 0640, 0755 and 0755 from a
     * receiver running under umask 022: bits 0777 of the source, masked, nothing above. */
    modes_are_masked("022");
}

Test(fs, setuid_setgid_and_sticky_bits_are_dropped_under_umask_077)
{
    /* Checks the same under umask 077: 0600, 0700 and 0700. */
    modes_are_masked("077");
}

/* ---- 3. a file larger than the free space ------------------------------------------------ */

static char tmpfs_path[512];
static pid_t tmpfs_recv = -1;

/* Runs before harness_teardown() (a test's .fini precedes its suite's), even when the test
 * failed: the receiver holds the mount busy, so it goes first, then the mount, by path. */
static void tmpfs_fini(void)
{
    if (tmpfs_path[0] == '\0')
        return;
    if (tmpfs_recv > 0)
        (void)harness_kill(tmpfs_recv, SIGKILL); /* -ESRCH if already reaped: fine */
    if (umount2(tmpfs_path, 0) < 0 && umount2(tmpfs_path, MNT_DETACH) < 0)
        fprintf(stderr, "fs: cannot unmount %s: %s\n", tmpfs_path, strerror(errno));
    tmpfs_path[0] = '\0';
    tmpfs_recv = -1;
}

Test(fs, file_larger_than_the_free_space_is_refused_and_leaves_nothing, .fini = tmpfs_fini)
{
    /* Checks that a receiver whose --dir is an 8 MiB tmpfs refuses a 16 MiB file (exit 4, "not
     * enough space ... need ... have ...") and leaves nothing there, not even .xfer. */
    char *dir = harness_pathf("small");
    char *src = harness_must_src("src/big.bin", 16 * HARNESS_MIB, 46);
    struct outside o;
    char *log;
    int port;
    int rc;

    outside_plant(&o, (const char *[]){"keep", NULL});
    cr_assert_eq(harness_mkdirs(dir), 0);
    /* A mount namespace of our own (children inherit it): should this process die before its
     * .fini, the mount goes away with the namespace instead of outliving the test. */
    if (unshare(CLONE_NEWNS) == 0)
        (void)mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL); /* else it is merely shared */
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0755") < 0)
        cr_skip_test("cannot mount an 8 MiB tmpfs on %s (%s); this test needs root", dir,
                     strerror(errno));
    snprintf(tmpfs_path, sizeof(tmpfs_path), "%s", dir);
    tmpfs_recv = harness_must_recv(&port, dir, NULL, NULL, "recv");
    rc = send_one(src, port, "send");
    outside_must_be_untouched(&o);
    log = harness_log("send");
    cr_assert_eq(rc, 4, "sender exit %d (want 4); stderr:\n%s\n%s", rc, log,
                 harness_report(tmpfs_recv, "recv"));
    cr_assert(strstr(log, "xfer: error:") != NULL && strstr(log, "not enough space") != NULL &&
                  strstr(log, "need") != NULL && strstr(log, "have") != NULL,
              "the sender's error does not say \"not enough space\", \"need\" and \"have\":\n%s",
              log);
    harness_must_ls(dir, "");
    cr_assert(harness_alive(tmpfs_recv), "%s", harness_report(tmpfs_recv, "recv"));
}

/* ---- 4, 5. a hostile receiver ------------------------------------------------------------ */

/* A receiver that holds the secret and does the protocol-3 handshake by the book, then misbehaves.
 * Written from the scheme of src/auth.c and src/seal.c (xfer-protocol(7)) with libsodium directly,
 * nothing from src/ linked: the handshake is X25519 (crypto_kx), keys and proofs derived from it,
 * from the pre-shared key and from a hash of what HELLO and WELCOME said; the sender proves first
 * in AUTH, we answer with ours, and from then on every frame travels in an XChaCha20-Poly1305
 * record whose nonce is the direction's counter. It runs in the test's own thread, one connection
 * at a time, and fails nothing by itself: it records what the sender did. */

#define HX_MAGIC 0x58464552u
#define HX_VERSION 3
#define HX_HDR 8
#define HX_CHUNK (1024u * 1024u)
#define HX_TAG 16
#define HX_KEY 32
#define HX_MAX_CONTROL 4096
#define HX_MAX_BODY (HX_HDR + 20 + HX_CHUNK + HX_TAG)
#define HX_RECORD 0x80
#define HX_XCHACHA 2u
#define HX_HELLO_LEN (4 + 2 + 2 + 16 + 2 + HX_KEY + HX_KEY)
#define HX_WELCOME_LEN (4 + 2 + 2 + 2 + HX_KEY + HX_KEY)
/* Bound for one connection of the hostile receiver, start to end. */
#define HX_SESSION_MS HARNESS_MS(20000)
/* The sender keeps at most this much unconfirmed (xfer(1), RESUME). */
#define HX_WINDOW (64ull * HX_CHUNK)
/* Past these the hostile receiver gives up on a sender that keeps going (it would for ever): it
 * closes, stops listening, and the test fails on the sender's exit status. */
#define HX_RUNAWAY_BYTES (256ll * HX_CHUNK)
#define HX_RUNAWAY_ROUNDS 10000
#define HX_RUNAWAY_CONNECTIONS 30

enum hx_type {
    HX_T_HELLO = 1,
    HX_T_WELCOME = 2,
    HX_T_OFFER = 3,
    HX_T_ACCEPT = 4,
    HX_T_REFUSE = 6,
    HX_T_NEED_HASH = 7,
    HX_T_FILE_HASH = 8,
    HX_T_DATA = 9,
    HX_T_ACK = 10,
    HX_T_REWIND = 11,
    HX_T_END = 12,
    HX_T_PING = 14,
    HX_T_ERROR = 15,
    HX_T_BYE = 16,
    HX_T_AUTH = 17
};

struct hx_conn {
    int fd;
    int sealed;
    uint8_t psk[HX_KEY];
    uint8_t tx_key[HX_KEY]; /* receiver -> sender */
    uint8_t rx_key[HX_KEY];
    uint64_t tx_ctr;
    uint64_t rx_ctr;
    uint8_t *buf; /* one clear frame or one record body */
};

struct hx_frame {
    uint8_t type;
    uint32_t len;
    const uint8_t *p;
};

/* Reads exactly n bytes before deadline. Returns n, fewer at EOF, -ETIMEDOUT or -errno. */
static ssize_t hx_read_exact(int fd, uint8_t *p, size_t n, long long deadline)
{
    size_t got = 0;

    while (got < n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        long long left = deadline - w_now_ms();
        ssize_t r;

        if (left <= 0)
            return -ETIMEDOUT;
        if (poll(&pfd, 1, (int)left) <= 0)
            continue; /* EINTR or nothing yet: the deadline check ends the loop */
        r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == ECONNRESET)
            break;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int hx_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void hx_nonce(uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], uint64_t ctr)
{
    memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    w_put_u64(nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES - 8, ctr);
}

/* Sends one frame, sealed once the handshake is done. Returns 0 or -errno. */
static int hx_send(struct hx_conn *c, uint8_t type, const uint8_t *payload, size_t len)
{
    uint8_t rec[HX_HDR + HX_HDR + HX_MAX_CONTROL + HX_TAG];
    uint8_t frame[HX_HDR + HX_MAX_CONTROL];
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    unsigned long long clen = 0;
    uint8_t *p = w_put_u32(frame, (uint32_t)len);

    cr_assert_leq(len, HX_MAX_CONTROL);
    *p++ = type;
    *p++ = 0;
    p = w_put_u16(p, 0);
    p = w_put_bytes(p, payload, len);
    if (!c->sealed)
        return hx_write_all(c->fd, frame, (size_t)(p - frame));
    w_put_u32(rec, (uint32_t)((size_t)(p - frame) + HX_TAG));
    rec[4] = HX_RECORD;
    rec[5] = 0;
    w_put_u16(rec + 6, 0);
    hx_nonce(nonce, c->tx_ctr);
    crypto_aead_xchacha20poly1305_ietf_encrypt(rec + HX_HDR, &clen, frame, (size_t)(p - frame), rec,
                                               HX_HDR, NULL, nonce, c->tx_key);
    c->tx_ctr++;
    return hx_write_all(c->fd, rec, HX_HDR + (size_t)clen);
}

/* Reads one frame (opening its record once sealed). Returns 1, 0 at EOF, -ETIMEDOUT, -EPROTO for
 * anything the protocol forbids, -EBADMSG for a record that does not open, or -errno. */
static int hx_recv(struct hx_conn *c, struct hx_frame *f, long long deadline)
{
    uint8_t hdr[HX_HDR];
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    unsigned long long mlen = 0;
    uint32_t blen;
    ssize_t n;

    n = hx_read_exact(c->fd, hdr, HX_HDR, deadline);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return 0;
    if (n < HX_HDR)
        return -EPROTO;
    blen = w_get_u32(hdr);
    if (!c->sealed || hdr[4] != HX_RECORD) {
        /* A clear PING may cross the handshake's last clear frame; nothing else may. */
        if (blen > HX_MAX_CONTROL || (c->sealed && hdr[4] != HX_T_PING))
            return -EPROTO;
        memcpy(c->buf, hdr, HX_HDR);
        n = hx_read_exact(c->fd, c->buf + HX_HDR, blen, deadline);
        if (n < 0)
            return (int)n;
        if ((size_t)n < blen)
            return -EPROTO;
        f->type = hdr[4];
        f->len = blen;
        f->p = c->buf + HX_HDR;
        return 1;
    }
    if (blen < HX_HDR + HX_TAG || blen > HX_MAX_BODY)
        return -EPROTO;
    n = hx_read_exact(c->fd, c->buf, blen, deadline);
    if (n < 0)
        return (int)n;
    if ((size_t)n < blen)
        return -EPROTO;
    hx_nonce(nonce, c->rx_ctr);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(c->buf, &mlen, NULL, c->buf, blen, hdr, HX_HDR,
                                                   nonce, c->rx_key) != 0)
        return -EBADMSG;
    c->rx_ctr++;
    if (mlen < HX_HDR || w_get_u32(c->buf) != mlen - HX_HDR)
        return -EPROTO;
    f->type = c->buf[4];
    f->len = (uint32_t)(mlen - HX_HDR);
    f->p = c->buf + HX_HDR;
    return 1;
}

/* The next frame that is not a PING. */
static int hx_next(struct hx_conn *c, struct hx_frame *f, long long deadline)
{
    for (;;) {
        int r = hx_recv(c, f, deadline);

        if (r != 1 || f->type != HX_T_PING)
            return r;
    }
}

/* The receiver's side of the handshake; without prove, it stops once the sender's proof has
 * checked out, before sending its own. Returns 0, or <0 with *why set. */
static int hx_handshake(struct hx_conn *c, int prove, long long deadline, const char **why)
{
    uint8_t welcome[HX_WELCOME_LEN];
    uint8_t sk[crypto_kx_SECRETKEYBYTES];
    struct w_transcript t;
    struct w_keys k;
    const uint8_t *hello;
    struct hx_frame f;
    uint8_t *p;
    int r;

    r = hx_next(c, &f, deadline);
    if (r != 1 || f.type != HX_T_HELLO || f.len != HX_HELLO_LEN) {
        *why = "no HELLO of the expected length";
        return r < 0 ? r : -EPROTO;
    }
    hello = f.p;
    if (w_get_u32(hello) != HX_MAGIC || w_get_u16(hello + 4) != HX_VERSION ||
        (w_get_u16(hello + 24) & HX_XCHACHA) == 0) {
        *why = "HELLO without magic, version 3 or XChaCha20-Poly1305";
        return -EPROTO;
    }
    memset(&t, 0, sizeof(t));
    t.client_flags = w_get_u16(hello + 6);
    memcpy(t.session_id, hello + 8, sizeof(t.session_id));
    t.client_ciphers = w_get_u16(hello + 24);
    memcpy(t.client_pk, hello + 26, HX_KEY);
    memcpy(t.client_nonce, hello + 58, HX_KEY);
    t.server_flags = 0;
    t.cipher = HX_XCHACHA;
    crypto_kx_keypair(t.server_pk, sk);
    randombytes_buf(t.server_nonce, sizeof(t.server_nonce));
    /* The key schedule is wire.c's, itself written from xfer-protocol(7). */
    if (w_server_keys(&k, c->psk, sk, &t) != 0) {
        *why = "the sender's public key is unusable";
        return -EPROTO;
    }
    memcpy(c->rx_key, k.c2s, HX_KEY);
    memcpy(c->tx_key, k.s2c, HX_KEY);

    p = w_put_u32(welcome, HX_MAGIC);
    p = w_put_u16(p, HX_VERSION);
    p = w_put_u16(p, t.server_flags);
    p = w_put_u16(p, t.cipher);
    p = w_put_bytes(p, t.server_pk, HX_KEY);
    w_put_bytes(p, t.server_nonce, HX_KEY);
    r = hx_send(c, HX_T_WELCOME, welcome, sizeof(welcome));
    if (r < 0) {
        *why = "cannot send WELCOME";
        return r;
    }
    r = hx_next(c, &f, deadline);
    if (r != 1 || f.type != HX_T_AUTH || f.len != HX_KEY) {
        *why = "no AUTH after WELCOME";
        return r < 0 ? r : -EPROTO;
    }
    if (sodium_memcmp(f.p, k.client_tag, HX_KEY) != 0) {
        *why = "the sender's proof does not match this test's key schedule (is it out of date?)";
        return -EBADMSG;
    }
    if (!prove)
        return 0;
    r = hx_send(c, HX_T_AUTH, k.server_tag, HX_KEY);
    if (r < 0) {
        *why = "cannot send AUTH";
        return r;
    }
    c->sealed = 1;
    return 0;
}

enum hx_act {
    HX_ACCEPT_AT,        /* answer OFFER with ACCEPT(1, offset) */
    HX_REWIND_PAST_SENT, /* ACCEPT(1, 0), take the first window, REWIND(2, sent + offset) */
    HX_REFUSE,           /* REFUSE(code, text) */
    HX_ERROR,            /* ERROR(code, text), then close */
    /* ACCEPT(1, offset); whenever the DATA of the epoch reaches upto (or the file's end), ACK it
     * if ack, then REWIND(epoch + 1, rewind_to, reason code); for as long as the sender follows */
    HX_REWIND_LOOP,
    HX_HASH_LOOP,  /* NEED_HASH, and NEED_HASH again for every FILE_HASH */
    HX_ACK_THEN,   /* ACCEPT(1, 0); ACK every DATA, then send an empty frame of type code */
    HX_ACK_ALMOST, /* ACCEPT(1, 0); ACK every DATA but the last chunk, close at END */
    HX_NO_PROOF    /* check the sender's proof, then close without sending ours */
};

struct hx_plan {
    enum hx_act act;
    uint64_t offset;
    uint16_t code;
    const char *text;
    uint64_t rewind_to;
    uint64_t upto;
    int ack;
};

/* What the sender did, over every connection it made. */
struct hx_seen {
    int connections;
    int handshakes;
    int offers;
    uint64_t size;  /* as offered */
    int hostile;    /* connections on which the misbehaviour went out */
    long long data; /* DATA frames */
    long long data_past_end;
    long long data_unaligned;
    long long data_bad_len;
    long long data_after_rewind; /* DATA of the REWIND's epoch, at or past its offset */
    uint64_t rewind_to;
    int ends;
    int byes;
    long long data_bytes; /* chunk bytes in all DATA frames */
    long long rounds;     /* REWINDs or NEED_HASHes the sender followed */
    int runaway;          /* it kept going past HX_RUNAWAY_*: we gave up on it */
    char problem[256];    /* the first thing that went wrong on our side */
};

static void hx_problem(struct hx_seen *seen, const char *what, int r)
{
    if (seen->problem[0] == '\0')
        snprintf(seen->problem, sizeof(seen->problem), "%s (%s)", what,
                 r < 0    ? strerror(-r)
                 : r == 0 ? "EOF"
                          : "unexpected frame");
}

/* Takes a DATA frame into the record. Returns the end offset it covers. */
static uint64_t hx_take_data(struct hx_seen *seen, const struct hx_frame *f, uint32_t rewind_epoch)
{
    uint32_t epoch;
    uint64_t off;
    uint64_t n;

    seen->data++;
    if (f->len < 20 + 1) {
        seen->data_bad_len++;
        return 0;
    }
    epoch = w_get_u32(f->p);
    off = w_get_u64(f->p + 4);
    n = f->len - 20;
    if (off > seen->size || n > seen->size - off)
        seen->data_past_end++;
    if (off % HX_CHUNK != 0)
        seen->data_unaligned++;
    if (n != HX_CHUNK && off + n != seen->size)
        seen->data_bad_len++;
    if (rewind_epoch != 0 && epoch == rewind_epoch && off >= seen->rewind_to)
        seen->data_after_rewind++;
    seen->data_bytes += (long long)n;
    return off + n;
}

/* Sends a frame of epoch and offset (ACCEPT, ACK), with a u16 after them if reason (REWIND). */
static int hx_send_epoch_offset(struct hx_conn *c, uint8_t type, uint32_t epoch, uint64_t offset,
                                uint16_t reason)
{
    uint8_t payload[14];
    uint8_t *p = w_put_u64(w_put_u32(payload, epoch), offset);

    if (type == HX_T_REWIND)
        p = w_put_u16(p, reason);
    return hx_send(c, type, payload, (size_t)(p - payload));
}

/* The loops of HX_REWIND_LOOP, HX_HASH_LOOP, HX_ACK_THEN and HX_ACK_ALMOST, after the OFFER,
 * until the sender closes, says ERROR or BYE, or runs away. Returns the last hx_next() result. */
static int hx_keep_busy(struct hx_conn *c, const struct hx_plan *plan, struct hx_seen *seen,
                        long long deadline)
{
    static const uint8_t none[1]; /* the payload of an empty frame */
    uint64_t upto = plan->upto < seen->size ? plan->upto : seen->size;
    uint32_t epoch = 1;
    struct hx_frame f;
    int r;

    if (plan->act == HX_HASH_LOOP)
        r = hx_send(c, HX_T_NEED_HASH, none, 0);
    else
        r = hx_send_epoch_offset(c, HX_T_ACCEPT, 1, plan->act == HX_REWIND_LOOP ? plan->offset : 0,
                                 0);
    seen->hostile++;
    while (r >= 0) {
        uint64_t end;

        r = hx_next(c, &f, deadline);
        if (r != 1)
            break;
        if (f.type == HX_T_ERROR)
            break;
        if (f.type == HX_T_BYE) {
            seen->byes++;
            break;
        }
        if (seen->data_bytes > HX_RUNAWAY_BYTES || seen->rounds > HX_RUNAWAY_ROUNDS) {
            seen->runaway = 1;
            break;
        }
        if (f.type == HX_T_FILE_HASH && plan->act == HX_HASH_LOOP) {
            seen->rounds++;
            r = hx_send(c, HX_T_NEED_HASH, none, 0);
            continue;
        }
        if (f.type == HX_T_END) {
            seen->ends++;
            if (plan->act == HX_ACK_ALMOST)
                break;
            continue;
        }
        if (f.type != HX_T_DATA)
            continue;
        end = hx_take_data(seen, &f, 0);
        if (f.len < 20 || w_get_u32(f.p) != epoch)
            continue; /* sent before it saw our REWIND */
        if (plan->act == HX_ACK_ALMOST && end + HX_CHUNK > seen->size)
            continue;
        if (plan->act != HX_REWIND_LOOP || plan->ack)
            r = hx_send_epoch_offset(c, HX_T_ACK, epoch, end, 0);
        if (r >= 0 && plan->act == HX_ACK_THEN)
            r = hx_send(c, (uint8_t)plan->code, none, 0);
        if (r >= 0 && plan->act == HX_REWIND_LOOP && end >= upto) {
            seen->rounds++;
            r = hx_send_epoch_offset(c, HX_T_REWIND, ++epoch, plan->rewind_to, plan->code);
        }
    }
    return r;
}

static void hx_session(int fd, const struct hx_plan *plan, struct hx_seen *seen)
{
    long long deadline = w_now_ms() + HX_SESSION_MS;
    uint8_t payload[HX_MAX_CONTROL];
    uint32_t rewind_epoch = 0;
    struct hx_conn c;
    struct hx_frame f = {0, 0, NULL};
    const char *why = NULL;
    uint8_t *p;
    int one = 1;
    int r;

    memset(&c, 0, sizeof(c));
    c.fd = fd;
    w_psk(c.psk, HARNESS_SECRET);
    c.buf = malloc(HX_HDR + HX_MAX_BODY);
    cr_assert_not_null(c.buf);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* a latency hint only */
    seen->connections++;
    if (seen->connections > HX_RUNAWAY_CONNECTIONS) {
        seen->runaway = 1;
        goto out;
    }
    r = hx_handshake(&c, plan->act != HX_NO_PROOF, deadline, &why);
    if (r < 0) {
        hx_problem(seen, why, r);
        goto out;
    }
    if (plan->act == HX_NO_PROOF) {
        seen->hostile++;
        goto out; /* the sender's proof in hand, and nothing in return */
    }
    seen->handshakes++;
    r = hx_next(&c, &f, deadline);
    if (r == 1 && f.type == HX_T_BYE) {
        seen->byes++; /* it gave up on its file and has come to say goodbye */
        goto out;
    }
    if (r != 1 || f.type != HX_T_OFFER || f.len < 26) {
        hx_problem(seen, "no OFFER after the handshake", r);
        goto out;
    }
    seen->offers++;
    seen->size = w_get_u64(f.p);
    if (plan->act >= HX_REWIND_LOOP) { /* the acts that loop after the OFFER */
        /* However the sender hung up (a reset may cut a frame short), but not silence. */
        if (hx_keep_busy(&c, plan, seen, deadline) == -ETIMEDOUT)
            hx_problem(seen, "the sender neither closed nor went on", -ETIMEDOUT);
        goto out;
    }
    switch (plan->act) {
    case HX_ACCEPT_AT:
        r = hx_send_epoch_offset(&c, HX_T_ACCEPT, 1, plan->offset, 0);
        break;
    case HX_REFUSE:
    case HX_ERROR:
        p = w_put_u16(payload, plan->code);
        p = w_put_u16(p, (uint16_t)strlen(plan->text));
        p = w_put_bytes(p, plan->text, strlen(plan->text));
        r = hx_send(&c, plan->act == HX_REFUSE ? HX_T_REFUSE : HX_T_ERROR, payload,
                    (size_t)(p - payload));
        break;
    case HX_REWIND_PAST_SENT: {
        uint64_t got = 0;

        r = hx_send_epoch_offset(&c, HX_T_ACCEPT, 1, 0, 0);
        if (r < 0)
            break;
        /* Without an ACK the sender stops after one window: take it all, then ask for a chunk
         * well past the last one it sent (and past what it has read ahead). */
        while (got < HX_WINDOW && got < seen->size) {
            r = hx_next(&c, &f, deadline);
            if (r != 1 || f.type != HX_T_DATA)
                break;
            got = hx_take_data(seen, &f, 0);
        }
        if (r != 1 || f.type != HX_T_DATA) {
            hx_problem(seen, "the first window of DATA did not arrive", r);
            goto out;
        }
        seen->rewind_to = got + plan->offset;
        rewind_epoch = 2;
        r = hx_send_epoch_offset(&c, HX_T_REWIND, rewind_epoch, seen->rewind_to, 1 /* BAD_CHUNK */);
        break;
    }
    default: /* the looping acts, served above */
        r = -EINVAL;
        break;
    }
    if (r < 0) {
        hx_problem(seen, "cannot send the hostile frame", r);
        goto out;
    }
    seen->hostile++;
    if (plan->act == HX_ERROR)
        goto out; /* ERROR ends a connection */
    /* Whatever the sender does now, until it closes. */
    for (;;) {
        r = hx_next(&c, &f, deadline);
        if (r != 1)
            break;
        if (f.type == HX_T_DATA)
            (void)hx_take_data(seen, &f, rewind_epoch);
        else if (f.type == HX_T_END)
            seen->ends++;
        else if (f.type == HX_T_BYE) {
            seen->byes++;
            break;
        }
    }
    if (r == -ETIMEDOUT)
        hx_problem(seen, "the sender neither closed nor said BYE", r);
out:
    sodium_memzero(&c, offsetof(struct hx_conn, buf));
    free(c.buf);
}

/* A listening socket on 127.0.0.1; the port goes to *port. */
static int hx_listen(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 16), 0, "listen: %s", strerror(errno));
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Starts `xfer send --retry-for RETRY FILE 127.0.0.1:PORT` against the hostile receiver, serves
 * every connection it makes with plan until it exits, and returns its exit code. */
static int hx_run(const struct hx_plan *plan, const char *src, const char *retry,
                  struct hx_seen *seen)
{
    long long deadline = w_now_ms() + HARNESS_DEADLINE_MS;
    pid_t sender;
    int port;
    int lfd;
    int rc;

    cr_assert_geq(sodium_init(), 0, "libsodium cannot be initialised");
    memset(seen, 0, sizeof(*seen));
    lfd = hx_listen(&port);
    sender = harness_start_send(
        (const char *[]){"--retry-for", retry, src, harness_strf("127.0.0.1:%d", port), NULL}, NULL,
        "send");
    cr_assert_gt(sender, 0, "cannot start the sender: %s", strerror(-sender));
    while (harness_alive(sender) && w_now_ms() < deadline && !seen->runaway) {
        struct pollfd pfd = {lfd, POLLIN, 0};
        int fd;

        if (poll(&pfd, 1, HARNESS_POLL_MS) <= 0)
            continue;
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        hx_session(fd, plan, seen);
        close(fd);
    }
    close(lfd);
    rc = harness_wait(sender, HARNESS_DEADLINE_MS);
    cr_assert_geq(rc, 0,
                  "the sender is still running after %d ms against a hostile receiver; "
                  "stderr:\n%s",
                  HARNESS_DEADLINE_MS, harness_log("send"));
    cr_assert_eq(seen->problem[0], '\0', "the hostile receiver failed: %s; sender stderr:\n%s",
                 seen->problem, harness_log("send"));
    cr_assert_geq(seen->hostile, 1,
                  "the hostile frame never went out (%d connections, %d handshakes, %d offers); "
                  "sender (exit %d) stderr:\n%s",
                  seen->connections, seen->handshakes, seen->offers, rc, harness_log("send"));
    return rc;
}

static int count_text(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The sender stopped, at once, on a receiver that broke the protocol: exit 8 on the first
 * connection, with one error line saying so. (Its ERROR PROTOCOL may not reach us: our own
 * frames in flight can make its side of the socket answer with a reset.) */
static void must_stop_with_exit_8(int rc, const struct hx_seen *seen)
{
    char *log = harness_log("send");

    cr_assert_lt(rc, 128, "the sender crashed (exit %d); stderr:\n%s", rc, log);
    cr_assert_eq(seen->runaway, 0,
                 "the sender kept going: %lld DATA bytes, %lld rounds, %d connections before the "
                 "hostile receiver gave up on it (exit %d); stderr:\n%s",
                 seen->data_bytes, seen->rounds, seen->connections, rc, log);
    cr_assert_eq(rc, 8, "sender exit %d, want 8 (the receiver broke the protocol); stderr:\n%s", rc,
                 log);
    cr_assert_eq(count_text(log, "xfer: error:"), 1, "want one error line; stderr:\n%s", log);
    cr_assert(strstr(log, "broke the protocol") != NULL,
              "the sender does not say the receiver broke the protocol; stderr:\n%s", log);
    cr_assert_eq(seen->connections, 1, "the sender came back %d times after a protocol error",
                 seen->connections - 1);
}

/* The same, and nothing was finished: no END. */
static void must_give_up_on_a_protocol_error(int rc, const struct hx_seen *seen)
{
    must_stop_with_exit_8(rc, seen);
    cr_assert_eq(seen->ends, 0, "the sender sent END to a receiver that broke the protocol");
}

Test(fs, accept_past_the_end_of_the_file_is_a_protocol_error_and_nothing_is_sent)
{
    /* Checks that a receiver answering OFFER with ACCEPT at an offset past the file's end (one
     * chunk past it, chunk-aligned) gets no DATA at all: the sender says it broke the protocol
     * and exits 8 at once, without reconnecting. */
    char *src = harness_must_src("src/small.bin", 3 * HARNESS_MIB + 100, 60);
    struct hx_plan plan = {HX_ACCEPT_AT, 5 * HX_CHUNK, 0, NULL, 0, 0, 0};
    struct hx_seen seen;
    int rc;

    rc = hx_run(&plan, src, "2", &seen);
    cr_assert_eq(seen.data, 0,
                 "the sender sent %lld DATA frames after ACCEPT past its end (%lld "
                 "of them past the end)",
                 seen.data, seen.data_past_end);
    must_give_up_on_a_protocol_error(rc, &seen);
}

Test(fs, accept_at_an_unaligned_offset_is_a_protocol_error_and_nothing_is_sent)
{
    /* Checks the same for ACCEPT at an offset inside the file that is not a multiple of the
     * chunk size (1 MiB + 4096): no DATA, exit 8, an error line. */
    char *src = harness_must_src("src/small.bin", 3 * HARNESS_MIB + 100, 61);
    struct hx_plan plan = {HX_ACCEPT_AT, HX_CHUNK + 4096, 0, NULL, 0, 0, 0};
    struct hx_seen seen;
    int rc;

    rc = hx_run(&plan, src, "2", &seen);
    cr_assert_eq(seen.data, 0,
                 "the sender sent %lld DATA frames after an unaligned ACCEPT "
                 "(%lld unaligned)",
                 seen.data, seen.data_unaligned);
    must_give_up_on_a_protocol_error(rc, &seen);
}

Test(fs, rewind_past_what_was_sent_is_a_protocol_error)
{
    /* Checks that a receiver that takes the first 64 MiB window (no ACK) and then sends REWIND to
     * 16 MiB past the last chunk it got (inside the 96 MiB file, past anything the sender read)
     * gets no DATA of the new epoch: the sender says it broke the protocol and exits 8; every DATA
     * it did send was a whole, aligned chunk inside the file. */
    char *src = harness_must_src("src/window.bin", 96 * HARNESS_MIB, 62);
    struct hx_plan plan = {HX_REWIND_PAST_SENT, 16 * HX_CHUNK, 0, NULL, 0, 0, 0};
    struct hx_seen seen;
    int rc;

    rc = hx_run(&plan, src, "2", &seen);
    cr_assert_eq(seen.data_after_rewind, 0,
                 "the sender followed a REWIND past what it had sent: %lld DATA frames at or past "
                 "offset %llu",
                 seen.data_after_rewind, (unsigned long long)seen.rewind_to);
    cr_assert_eq(seen.data_past_end + seen.data_unaligned + seen.data_bad_len, 0,
                 "of %lld DATA frames, %lld reach past the end, %lld are unaligned, %lld have a "
                 "wrong length",
                 seen.data, seen.data_past_end, seen.data_unaligned, seen.data_bad_len);
    must_give_up_on_a_protocol_error(rc, &seen);
}

/* ---- 4. a hostile receiver that would keep the sender busy for ever ---------------------- */

/* Runs `xfer send --retry-for 2` of a size-byte file against plan, and expects it to stop with
 * exit 8 (see must_stop_with_exit_8()), with an error line that says `says`. */
static void hx_must_stop(const struct hx_plan *plan, long long size, uint64_t seed,
                         const char *says, struct hx_seen *seen)
{
    char *src = harness_must_src("src/busy.bin", size, seed);
    int rc = hx_run(plan, src, "2", seen);

    must_stop_with_exit_8(rc, seen);
    cr_assert(strstr(harness_log("send"), says) != NULL,
              "the error does not say \"%s\"; stderr:\n%s", says, harness_log("send"));
}

/* ACCEPT(1, accept_at), then for the DATA of each epoch: ACK, REWIND(epoch + 1, 0, reason), for a
 * file of size bytes: the sender stops with exit 8 within the limits of xfer-protocol(7), after
 * at most rewinds REWINDs and having sent at most three times the file's size and a window. */
static void ack_then_rewind_to_0(uint16_t reason, uint64_t accept_at, long long size,
                                 long long rewinds, const char *says)
{
    struct hx_plan plan = {HX_REWIND_LOOP, accept_at, reason, NULL, 0, 1, 1};
    struct hx_seen seen;

    hx_must_stop(&plan, size, 65 + reason, says, &seen);
    cr_assert_leq(seen.rounds, rewinds, "the sender followed %lld REWINDs to 0, want at most %lld",
                  seen.rounds, rewinds);
    cr_assert_leq(seen.data_bytes, 3 * size + (long long)HX_WINDOW,
                  "the sender sent %lld bytes of a %lld-byte file", seen.data_bytes, size);
}

Test(fs, ack_then_rewind_to_0_for_a_bad_chunk_stops_the_sender_at_the_first_rewind)
{
    /* Checks a receiver that confirms each chunk and then asks for the file again from offset 0
     * as if that chunk were bad (REWIND BAD_CHUNK), which would have the sender read and send
     * its file for ever: a bad chunk is never below what was confirmed, so the first such
     * REWIND ends the run with exit 8 and one error line. */
    ack_then_rewind_to_0(1 /* BAD_CHUNK */, 0, 4 * HARNESS_MIB, 1, "below what it had confirmed");
}

Test(fs, ack_then_rewind_to_0_for_a_damaged_partial_stops_the_sender_at_the_second_rewind)
{
    /* Checks the same with REWIND DAMAGED, after an ACCEPT at 1 MiB (a resume, so the partial's
     * check may find damage below it): the first goes back to 0 as a genuine receiver may, the
     * second on the same connection ends the run with exit 8. */
    ack_then_rewind_to_0(2 /* DAMAGED */, HX_CHUNK, 4 * HARNESS_MIB, 2, "a second time");
}

Test(fs, ack_then_rewind_to_0_for_a_failed_verification_before_end_stops_the_sender)
{
    /* Checks the same with REWIND VERIFY, which a genuine receiver sends only after END: on a
     * file larger than the window, so that END cannot have gone out before the first REWIND,
     * that REWIND ends the run with exit 8. */
    ack_then_rewind_to_0(3 /* VERIFY */, 0, 66 * HARNESS_MIB, 1, "before END");
}

Test(fs, rewinding_to_the_same_chunk_over_and_over_stops_the_sender_after_8_rewinds)
{
    /* Checks a receiver that never confirms anything and asks for the first chunk again (REWIND
     * BAD_CHUNK to 0, which is where it stands) whenever it arrives: each REWIND is one a
     * genuine receiver could send, but not more than 8 for a file on one connection; the 9th
     * ends the run with exit 8. */
    struct hx_plan plan = {HX_REWIND_LOOP, 0, 1 /* BAD_CHUNK */, NULL, 0, 1, 0};
    struct hx_seen seen;

    hx_must_stop(&plan, 4 * HARNESS_MIB, 70, "more than 8 times", &seen);
    cr_assert_eq(seen.rounds, 9, "the sender stopped after %lld REWINDs, want the 9th",
                 seen.rounds);
}

Test(fs, a_file_sent_again_and_again_stops_at_three_times_its_size_and_a_window)
{
    /* Checks a receiver that takes a whole 16 MiB file, confirming nothing, then asks for all
     * of it again (REWIND BAD_CHUNK to 0), over and over: fewer than 8 REWINDs, but the sender
     * sends a file's data at most 3 times its size plus 64 MiB for each connection that resumed
     * it, here 112 MiB, and then ends the run with exit 8. */
    long long size = 16 * HARNESS_MIB;
    struct hx_plan plan = {HX_REWIND_LOOP, 0, 1 /* BAD_CHUNK */, NULL, 0, (uint64_t)size, 0};
    struct hx_seen seen;

    hx_must_stop(&plan, size, 71, "the most for a file", &seen);
    cr_assert_eq(seen.data_bytes, 3 * size + (long long)HX_WINDOW,
                 "the sender sent %lld bytes, want exactly the limit", seen.data_bytes);
    cr_assert_lt(seen.rounds, 9, "it was the count of REWINDs that stopped it");
}

Test(fs, need_hash_again_after_file_hash_stops_the_sender_with_exit_8)
{
    /* Checks a receiver that answers every FILE_HASH with another NEED_HASH, a ping-pong that
     * would never end: NEED_HASH comes once per OFFER, and the second ends the run with exit 8,
     * no data sent. */
    struct hx_plan plan = {HX_HASH_LOOP, 0, 0, NULL, 0, 0, 0};
    struct hx_seen seen;

    hx_must_stop(&plan, 3 * HARNESS_MIB, 72, "a second NEED_HASH", &seen);
    cr_assert_eq(seen.rounds, 1, "the sender answered %lld NEED_HASH after the first", seen.rounds);
    cr_assert_eq(seen.data + seen.ends, 0, "the sender sent DATA or END after NEED_HASH");
}

Test(fs, ack_then_an_unexpected_frame_stops_the_sender_instead_of_reconnecting)
{
    /* Checks a receiver that confirms each chunk and then says COMPLETE (valid only as an
     * answer to OFFER), on every connection: each confirmation used to count as progress, so
     * the sender reconnected for ever. A frame unexpected in the sender's state ends the run
     * with exit 8, at once. */
    struct hx_plan plan = {HX_ACK_THEN, 0, 5 /* COMPLETE */, NULL, 0, 0, 0};
    struct hx_seen seen;

    hx_must_stop(&plan, 4 * HARNESS_MIB, 73, "unexpected COMPLETE", &seen);
}

Test(fs, confirming_the_same_data_on_every_connection_is_not_progress_for_retry_for)
{
    /* Checks a receiver that accepts the 4 MiB file at 0 on every connection, confirms all but
     * its last chunk and closes at END: only the first confirmation of a byte restarts the
     * --retry-for clock, so the sender gives up after 2 s with exit 3 rather than reconnecting
     * for ever. */
    char *src = harness_must_src("src/busy.bin", 4 * HARNESS_MIB, 74);
    struct hx_plan plan = {HX_ACK_ALMOST, 0, 0, NULL, 0, 0, 0};
    struct hx_seen seen;
    char *log;
    int rc;

    rc = hx_run(&plan, src, "2", &seen);
    log = harness_log("send");
    cr_assert_eq(seen.runaway, 0,
                 "the sender kept reconnecting: %d connections (exit %d); stderr:\n%s",
                 seen.connections, rc, log);
    cr_assert_eq(rc, 3, "sender exit %d, want 3 (gave up after --retry-for); stderr:\n%s", rc, log);
    cr_assert(strstr(log, "gave up") != NULL, "no line saying it gave up; stderr:\n%s", log);
    cr_assert_geq(seen.connections, 2, "the sender did not reconnect at all");
}

Test(fs, receiver_that_closes_after_the_senders_proof_twice_gets_exit_7)
{
    /* Checks a receiver that takes the sender's proof (AUTH) and closes the connection instead
     * of proving it holds the secret itself: the first time the sender retries, as after a
     * drop at that very moment; the second, on its second connection, it stops with exit 7 and
     * one error line, having offered nothing, instead of handing over proofs for --retry-for. */
    char *src = harness_must_src("src/busy.bin", 1000, 75);
    struct hx_plan plan = {HX_NO_PROOF, 0, 0, NULL, 0, 0, 0};
    struct hx_seen seen;
    char *log;
    int rc;

    rc = hx_run(&plan, src, "5", &seen);
    log = harness_log("send");
    cr_assert_eq(rc, 7, "sender exit %d after %d connections, want 7; stderr:\n%s", rc,
                 seen.connections, log);
    cr_assert_eq(seen.connections, 2, "the sender made %d connections, want 2", seen.connections);
    cr_assert_eq(seen.offers, 0);
    cr_assert_eq(count_text(log, "xfer: error:"), 1, "want one error line; stderr:\n%s", log);
    cr_assert(strstr(log, "closed the connection right after this sender's proof") != NULL,
              "the error does not say what happened; stderr:\n%s", log);
}

/* ---- 5. text from the receiver ----------------------------------------------------------- */

/* ESC [31m, a right-to-left override, CR, BEL and the C1 CSI (U+009B): each could repaint or
 * reorder the user's terminal. */
static const char hostile_text[] = "\x1b[31mred\x1b[0m \xe2\x80\xae"
                                   "exe.txt\r\x07\xc2\x9b"
                                   "2J end";

/* No raw control character (other than the newlines between lines), no raw U+202E or U+009B; the
 * text is shown with each of them escaped. */
static void must_show_hostile_text_escaped(const char *log)
{
    const unsigned char *p;

    for (p = (const unsigned char *)log; *p != '\0'; p++)
        cr_assert(!((*p < 0x20 && *p != '\n') || *p == 0x7f),
                  "a raw control byte 0x%02x reached the sender's stderr at offset %zu", *p,
                  (size_t)(p - (const unsigned char *)log));
    cr_assert_null(strstr(log, "\xe2\x80\xae"), "a raw U+202E reached the sender's stderr");
    cr_assert_null(strstr(log, "\xc2\x9b"), "a raw U+009B (CSI) reached the sender's stderr");
    cr_assert(strstr(log, "\\x1b[31mred\\x1b[0m") != NULL &&
                  strstr(log, "\\u{202e}exe.txt") != NULL &&
                  strstr(log, "\\x0d\\x07\\x9b2J end") != NULL,
              "the receiver's text is not shown escaped; stderr:\n%s", log);
}

Test(fs, refuse_text_from_the_receiver_is_printed_escaped)
{
    /* Checks that a receiver's REFUSE text with ESC[31m, U+202E, CR, BEL and CSI reaches the
     * sender's error line escaped (\x1b, \u{202e}, ...), never raw; the sender exits 4. */
    char *src = harness_must_src("src/refused.bin", 1000, 63);
    struct hx_plan plan = {HX_REFUSE, 0, 1 /* EXISTS */, hostile_text, 0, 0, 0};
    struct hx_seen seen;
    char *log;
    int rc;

    rc = hx_run(&plan, src, "2", &seen);
    log = harness_log("send");
    must_show_hostile_text_escaped(log);
    cr_assert_eq(rc, 4, "sender exit %d (want 4: refused); stderr:\n%s", rc, log);
    cr_assert(strstr(log, "xfer: error:") != NULL, "no `xfer: error:` line; stderr:\n%s", log);
    cr_assert_eq(seen.data, 0);
}

Test(fs, error_text_from_the_receiver_is_printed_escaped)
{
    /* Checks the same for the text of an ERROR frame (code IO), which the sender repeats in its
     * "connection lost" line and, the second time, in the line giving up on the file: exit 4. */
    char *src = harness_must_src("src/errored.bin", 1000, 64);
    struct hx_plan plan = {HX_ERROR, 0, 6 /* IO */, hostile_text, 0, 0, 0};
    struct hx_seen seen;
    char *log;
    int rc;

    rc = hx_run(&plan, src, "1", &seen);
    log = harness_log("send");
    must_show_hostile_text_escaped(log);
    cr_assert_eq(rc, 4, "sender exit %d (want 4: the receiver cannot store it); stderr:\n%s", rc,
                 log);
    cr_assert(strstr(log, "xfer: error:") != NULL, "no `xfer: error:` line; stderr:\n%s", log);
    cr_assert_eq(seen.data, 0);
}
