/* fuzz_session: the receiver's real per-connection state machine
 * (src/receiver.c through receiver_open()/receiver_serve()), driven by an
 * arbitrary byte stream, handshake included.
 *
 * Each run: a fresh receiver writing under a new directory on tmpfs, a
 * socket pair whose one end it serves, and this harness on the other end
 * playing the sender as session_input.h describes: raw bytes, or a correct
 * handshake followed by frames the harness seals. Then it shuts its side
 * down, reads until the receiver closes, closes the receiver, runs the loop
 * until every handle and threadpool job is done, checks that nothing was
 * written outside the directory, and removes it. No listener is involved,
 * so the guard's lock-out of failing addresses never builds up, and every
 * run starts from the same state. Seeds: fixtures/fuzz/session/, written by
 * gen_session_seeds.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the unit tests define it too */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <xxhash.h>

#include "xfer/auth.h"
#include "xfer/cli.h"
#include "xfer/journal.h"
#include "xfer/name.h"
#include "xfer/proto.h"
#include "xfer/receiver.h"
#include "xfer/report.h"
#include "xfer/seal.h"

#include "session_input.h"

#define FRAME_MAX (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)
#define REPLY_CAP 65536 /* receiver output kept for the handshake; the rest is read and dropped */

static uv_loop_t loop;
static struct auth_psk psk;
static struct cli_opts opts;
static const char *tmp;    /* where runs make their directories */
static char base[256];     /* the run's private directory */
static char dir[300];      /* base/d: the receiver's --dir */
static uint8_t *record;    /* SEAL_HDR_LEN + FRAME_MAX + SEAL_TAG_LEN */

/* One run's sender side. */
struct peer {
    int fd;         /* our end */
    int rx_fd;      /* the receiver's end, for FIONREAD only */
    int eof;        /* the receiver closed its end */
    uint8_t reply[REPLY_CAP];
    size_t reply_len;
    struct seal tx;
    int sealed;
    XXH3_state_t *shadow; /* the file as the fixed-up DATA frames describe it */
    XXH3_state_t *prefix; /* what an OFFER resets it to: the preseeded partial's hash */
    struct proto_hash128 last_end;
};

static void die(const char *what)
{
    perror(what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; /* libFuzzer's own options only */
    (void)argv;
    if (auth_init() < 0)
        die("auth_init");
    if (uv_loop_init(&loop) < 0)
        die("uv_loop_init");
    if (auth_psk_from_secret(&psk, SI_SECRET, strlen(SI_SECRET)) < 0)
        die("auth_psk_from_secret");
    /* tmpfs: fsync is free there, and runs must be fast. */
    tmp = getenv("XFER_FUZZ_TMP");
    if (tmp == NULL)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    record = malloc(SEAL_HDR_LEN + SEAL_MAX_BODY);
    if (record == NULL)
        die("malloc");
    opts.command = CLI_RECV;
    opts.dir = dir;
    /* A line per refusal would drown libFuzzer's own; XFER_FUZZ_VERBOSE=1
     * shows them, to see what one input does. */
    report_set_quiet(getenv("XFER_FUZZ_VERBOSE") == NULL);
    return 0;
}

/* Reads what the receiver wrote so far; keeps the start for the handshake. */
static void drain(struct peer *p)
{
    uint8_t buf[16384];

    while (!p->eof) {
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            p->eof = 1; /* closed, or reset (ECONNRESET) */
            break;
        }
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0)
            continue;
        if ((size_t)n > REPLY_CAP - p->reply_len)
            n = (ssize_t)(REPLY_CAP - p->reply_len); /* the rest is dropped */
        memcpy(p->reply + p->reply_len, buf, (size_t)n);
        p->reply_len += (size_t)n;
    }
}

/* The receiver still has work: bytes it has not read, or threadpool jobs
 * and writes in flight (the loop counts both as active requests). */
static int receiver_busy(const struct peer *p)
{
    int unread = 0;

    if (loop.active_reqs.count > 0)
        return 1;
    return ioctl(p->rx_fd, FIONREAD, &unread) == 0 && unread > 0;
}

/* Runs the loop until the receiver is idle or has closed the connection. */
static void settle(struct peer *p)
{
    for (;;) {
        drain(p);
        if (p->eof || !receiver_busy(p))
            return;
        (void)uv_run(&loop, UV_RUN_ONCE);
    }
}

/* Writes everything, running the receiver whenever the socket is full.
 * Stops early if the receiver has closed. */
static void send_all(struct peer *p, const uint8_t *b, size_t len)
{
    while (len > 0 && !p->eof) {
        ssize_t n = send(p->fd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0) {
            b += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            drain(p);
            (void)uv_run(&loop, UV_RUN_ONCE);
        } else if (n < 0 && errno != EINTR) {
            p->eof = 1; /* EPIPE, ECONNRESET: the receiver hung up */
        }
    }
}

static int send_frame(struct peer *p, const struct proto_frame *f)
{
    uint8_t buf[PROTO_HDR_LEN + PROTO_MAX_CONTROL];
    int n = proto_encode(f, buf, sizeof(buf));

    if (n < 0)
        abort();
    send_all(p, buf, (size_t)n);
    return 0;
}

/* HELLO, WELCOME, our AUTH; then records go out sealed. Returns 0, or -1
 * when the receiver did not answer as a receiver with our secret does. */
static int handshake(struct peer *p, uint8_t mode)
{
    struct proto_frame hello = {.type = PROTO_HELLO};
    struct proto_frame auth = {.type = PROTO_AUTH};
    struct proto_frame welcome;
    struct auth_ephemeral mine;
    struct auth_transcript t;
    struct auth_keys k;
    uint16_t ciphers = AUTH_CIPHER_XCHACHA20;
    int rc;

    if ((mode & SI_MODE_AES) && (auth_local_ciphers() & AUTH_CIPHER_AES256GCM))
        ciphers = AUTH_CIPHER_AES256GCM;
    if (auth_ephemeral_new(&mine) < 0)
        abort();
    hello.u.hello.version = PROTO_VERSION;
    memset(hello.u.hello.session_id, 0x5a, PROTO_SESSION_ID_LEN);
    hello.u.hello.ciphers = ciphers;
    memcpy(hello.u.hello.pk, mine.pk, PROTO_KEY_LEN);
    memcpy(hello.u.hello.nonce, mine.nonce, PROTO_KEY_LEN);
    send_frame(p, &hello);
    settle(p);
    if (proto_decode(p->reply, p->reply_len, &welcome) <= 0 || welcome.type != PROTO_WELCOME)
        abort(); /* a receiver answers a correct HELLO with WELCOME */
    memset(&t, 0, sizeof(t));
    memcpy(t.client_pk, mine.pk, sizeof(t.client_pk));
    memcpy(t.client_nonce, mine.nonce, sizeof(t.client_nonce));
    memcpy(t.session_id, hello.u.hello.session_id, sizeof(t.session_id));
    t.client_ciphers = ciphers;
    t.server_flags = welcome.u.welcome.flags;
    memcpy(t.server_pk, welcome.u.welcome.pk, sizeof(t.server_pk));
    memcpy(t.server_nonce, welcome.u.welcome.nonce, sizeof(t.server_nonce));
    t.cipher = welcome.u.welcome.cipher;
    rc = auth_client_keys(&k, &psk, &mine, &t);
    if (rc < 0 || seal_init(&p->tx, t.cipher, k.c2s) < 0)
        abort();
    memcpy(auth.u.auth.tag, k.client_tag, sizeof(auth.u.auth.tag));
    send_frame(p, &auth);
    p->sealed = 1;
    auth_wipe(&k, sizeof(k));
    auth_wipe(&mine, sizeof(mine));
    return 0;
}

static uint64_t get_be64(const uint8_t *b)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void put_be(uint8_t *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* SI_FIX_LEN and SI_FIX_HASH, on the frame at f (len bytes). */
static void fix_frame(struct peer *p, uint8_t *f, size_t len, uint8_t flags)
{
    uint8_t *pl = f + PROTO_HDR_LEN;
    size_t plen;

    if (len < PROTO_HDR_LEN)
        return;
    plen = len - PROTO_HDR_LEN;
    if (flags & SI_FIX_LEN)
        put_be(f, plen, 4);
    if (f[4] == PROTO_OFFER)
        XXH3_copyState(p->shadow, p->prefix); /* a new file, or a resumed one */
    if (!(flags & SI_FIX_HASH))
        return;
    if (f[4] == PROTO_DATA && plen > PROTO_DATA_FIXED) {
        const uint8_t *bytes = pl + PROTO_DATA_FIXED;
        size_t n = plen - PROTO_DATA_FIXED;

        if (get_be64(pl + 4) == 0)
            (void)XXH3_128bits_reset(p->shadow); /* the file from its start */
        put_be(pl + 12, proto_chunk_hash(bytes, n, get_be64(pl + 4)), 8);
        (void)XXH3_128bits_update(p->shadow, bytes, n);
    } else if (f[4] == PROTO_END && plen >= 20) {
        XXH128_hash_t h = XXH3_128bits_digest(p->shadow);

        p->last_end.high = h.high64;
        p->last_end.low = h.low64;
        put_be(pl + 4, h.high64, 8);
        put_be(pl + 12, h.low64, 8);
    } else if (f[4] == PROTO_FILE_HASH && plen >= 16) {
        put_be(pl, p->last_end.high, 8);
        put_be(pl + 8, p->last_end.low, 8);
    }
}

/* The next [flags][length][bytes] of the input; 0 at its end. */
static int next_record(const uint8_t *data, size_t size, size_t *pos, uint8_t *flags,
                       const uint8_t **bytes, size_t *len)
{
    if (size - *pos < SI_REC_HDR)
        return 0;
    *flags = data[*pos];
    *len = (size_t)data[*pos + 1] << 8 | data[*pos + 2];
    *pos += SI_REC_HDR;
    if (*len > size - *pos)
        *len = size - *pos;
    *bytes = data + *pos;
    *pos += *len;
    return 1;
}

/* The two records SI_MODE_PARTIAL and SI_MODE_EXISTING each start with: an
 * OFFER naming a file, then its bytes (flags are the second record's). */
struct file_records {
    const uint8_t *offer;
    size_t offer_len;
    const uint8_t *content;
    size_t content_len;
    uint8_t flags;
};

static int next_file_records(const uint8_t *data, size_t size, size_t *pos, struct file_records *r)
{
    return next_record(data, size, pos, &r->flags, &r->offer, &r->offer_len) &&
           next_record(data, size, pos, &r->flags, &r->content, &r->content_len);
}

/* SI_MODE_PARTIAL: leaves in .xfer what an earlier, cut connection would
 * have, for the file the OFFER at of describes: the partial (content) and
 * a journal confirming it whole (when it holds the whole file, under
 * 1 MiB) or confirming nothing. With SI_FIX_HASH the journal's chunk hash
 * and state match the content; without, the partial reads back damaged. */
static void preseed(struct peer *p, const uint8_t *of, size_t olen, const uint8_t *content,
                    size_t clen, uint8_t flags)
{
    struct proto_frame f;
    struct journal_identity id;
    struct journal j;
    char key[NAME_KEY_LEN + 1];
    char path[NAME_KEY_LEN + 16];
    const char *why;
    uint64_t confirmed = 0;
    int xfd, fd, dfd, resumed;

    if (proto_decode(of, olen, &f) <= 0 || f.type != PROTO_OFFER ||
        name_check(f.u.offer.name, f.u.offer.name_len, &why) < 0)
        return;
    if (f.u.offer.size > 0 && f.u.offer.size <= PROTO_CHUNK_SIZE && clen >= f.u.offer.size)
        confirmed = f.u.offer.size;
    if (clen > f.u.offer.size)
        clen = (size_t)f.u.offer.size;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || mkdirat(dfd, NAME_STATE_DIR, 0700) < 0)
        die("mkdir .xfer");
    xfd = openat(dfd, NAME_STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (xfd < 0)
        die("open .xfer");
    name_state_key(f.u.offer.name, key);
    snprintf(path, sizeof(path), "%s.part", key);
    fd = openat(xfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, content, clen) != (ssize_t)clen || close(fd) < 0)
        die("write partial");
    memset(&id, 0, sizeof(id));
    id.size = f.u.offer.size;
    id.mtime_sec = f.u.offer.mtime_sec;
    id.mtime_nsec = f.u.offer.mtime_nsec;
    memcpy(id.name, f.u.offer.name, (size_t)f.u.offer.name_len + 1);
    snprintf(path, sizeof(path), "%s.journal", key);
    journal_init(&j);
    if (journal_open(&j, xfd, path, &id, &resumed) < 0)
        die("journal_open");
    if (confirmed > 0) {
        uint64_t hash = 0x0123456789abcdefull; /* wrong: the partial is damaged */

        if (flags & SI_FIX_HASH) {
            hash = proto_chunk_hash(content, (size_t)confirmed, 0);
            (void)XXH3_128bits_update(p->prefix, content, (size_t)confirmed);
        }
        if (journal_commit(&j, 0, &hash, 1, confirmed, p->prefix) < 0)
            die("journal_commit");
    }
    journal_close(&j);
    (void)close(xfd); /* directories, read-only */
    (void)close(dfd);
}

static void send_records(struct peer *p, const uint8_t *data, size_t size, size_t pos)
{
    uint8_t flags;
    const uint8_t *bytes;
    size_t len;

    while (!p->eof && next_record(data, size, &pos, &flags, &bytes, &len)) {
        uint8_t *frame = record + SEAL_HDR_LEN;

        memcpy(frame, bytes, len);
        fix_frame(p, frame, len, flags);
        if (flags & SI_CLEAR) {
            send_all(p, frame, len);
        } else {
            int n = seal_close(&p->tx, record, len);

            if (n < 0)
                abort(); /* len is far below a record's maximum */
            send_all(p, record, (size_t)n);
        }
        if (flags & SI_SETTLE)
            settle(p);
        else if (flags & SI_STEP)
            (void)uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* SI_MODE_EXISTING: the file the OFFER at of names, finished, with content
 * as its bytes; FILE_HASH frames fixed up from here on carry its hash. */
static void put_existing(struct peer *p, const uint8_t *of, size_t olen, const uint8_t *content,
                         size_t clen)
{
    struct proto_frame f;
    XXH128_hash_t h;
    const char *why;
    int dfd, fd;

    if (proto_decode(of, olen, &f) <= 0 || f.type != PROTO_OFFER ||
        name_check(f.u.offer.name, f.u.offer.name_len, &why) < 0)
        return;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        die("open dir");
    fd = openat(dfd, f.u.offer.name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, content, clen) != (ssize_t)clen || close(fd) < 0)
        die("write existing file");
    (void)close(dfd); /* a directory, read-only */
    h = XXH3_128bits(content, clen);
    p->last_end.high = h.high64;
    p->last_end.low = h.low64;
}

/* Empties dir (and its .xfer); every entry must be one the receiver may
 * make. */
static void wipe(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    struct dirent *e;

    if (d == NULL)
        die("fdopendir");
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (depth == 0 && strcmp(e->d_name, ".xfer") == 0) {
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

            if (sub < 0)
                die("open .xfer");
            wipe(sub, 1);
            if (unlinkat(dfd, e->d_name, AT_REMOVEDIR) < 0)
                die("rmdir .xfer");
            continue;
        }
        if (unlinkat(dfd, e->d_name, 0) < 0)
            die("unlink"); /* a directory: not something the receiver makes */
    }
    closedir(d);
}

/* Each run gets base/d as --dir, both removed after it: libFuzzer leaves
 * by _Exit(), so nothing done at exit would clean up. A crash leaves them,
 * for a look. */
static void make_dirs(void)
{
    snprintf(base, sizeof(base), "%s/xfer-fuzz-XXXXXX", tmp);
    if (mkdtemp(base) == NULL)
        die("mkdtemp");
    snprintf(dir, sizeof(dir), "%s/d", base);
    if (mkdir(dir, 0700) < 0)
        die("mkdir");
}

/* The receiver wrote nothing beside its directory. */
static void check_base(void)
{
    DIR *d = opendir(base);
    struct dirent *e;

    if (d == NULL)
        die("opendir");
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "d") != 0) {
            fprintf(stderr, "fuzz_session: the receiver wrote %s/%s\n", base, e->d_name);
            abort();
        }
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct peer p;
    struct receiver *rx;
    size_t pos = 1;
    int sv[2];
    int dfd;

    if (size == 0)
        return 0;
    make_dirs();
    memset(&p, 0, sizeof(p));
    p.shadow = XXH3_createState();
    p.prefix = XXH3_createState();
    if (p.shadow == NULL || p.prefix == NULL || XXH3_128bits_reset(p.shadow) != XXH_OK ||
        XXH3_128bits_reset(p.prefix) != XXH_OK)
        abort();
    if (data[0] & SI_MODE_PARTIAL) {
        struct file_records r;

        if (next_file_records(data, size, &pos, &r))
            preseed(&p, r.offer, r.offer_len, r.content, r.content_len, r.flags);
    }
    if (data[0] & SI_MODE_EXISTING) {
        struct file_records r;

        if (next_file_records(data, size, &pos, &r))
            put_existing(&p, r.offer, r.offer_len, r.content, r.content_len);
    }
    opts.overwrite = (data[0] & SI_MODE_OVERWRITE) != 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair");
    p.fd = sv[1];
    p.rx_fd = sv[0];
    if (receiver_open(&rx, &loop, &opts, &psk) < 0)
        die("receiver_open");
    if (receiver_serve(rx, sv[0]) < 0)
        die("receiver_serve");
    if (data[0] & SI_MODE_AUTH) {
        if (handshake(&p, data[0]) == 0)
            send_records(&p, data, size, pos);
    } else {
        send_all(&p, data + pos, size - pos);
    }
    (void)shutdown(p.fd, SHUT_WR);
    /* Until the receiver closes the connection: it has read our EOF. */
    for (;;) {
        drain(&p);
        if (p.eof)
            break;
        (void)uv_run(&loop, UV_RUN_ONCE);
    }
    receiver_close(rx);
    if (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        abort();
    (void)close(p.fd);
    seal_wipe(&p.tx);
    XXH3_freeState(p.shadow);
    XXH3_freeState(p.prefix);
    check_base();
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        die("open dir");
    wipe(dfd, 0);
    if (rmdir(dir) < 0 || rmdir(base) < 0)
        die("rmdir");
    return 0;
}
