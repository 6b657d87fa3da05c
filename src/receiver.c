#define _GNU_SOURCE /* renameat2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <netdb.h>
#include <unistd.h>

#include <uv.h>
#include <xxhash.h>

#include "xfer/auth.h"
#include "xfer/err.h"
#include "xfer/fileio.h"
#include "xfer/guard.h"
#include "xfer/journal.h"
#include "xfer/link.h"
#include "xfer/name.h"
#include "xfer/proto.h"
#include "xfer/receiver.h"
#include "xfer/report.h"

/* DATA frames a connection may hold in memory before it stops reading the
 * socket: this, not the file size, bounds a connection's memory. */
#define RX_QUEUE_MAX 8
/* Confirm after this many new bytes, or this long after the last confirm. */
#define ACK_BYTES (8u * PROTO_CHUNK_SIZE)
#define ACK_INTERVAL_MS 250
#define VERIFY_BATCH 8
/* A connection must finish its handshake within this long of being accepted. */
#define HELLO_DEADLINE_MS 10000
/* Senders served at once: authenticated connections, each receiving at most
 * one file, which holds RX_FDS_PER_SENDER descriptors (socket, partial,
 * journal, state dir, and one a job opens for a moment) and up to 17 chunk
 * buffers. Fewer when the open-files limit has no room for that many after
 * RX_FDS_OWN for the receiver itself (stdio, loop, listeners, --dir, the
 * threadpool's short-lived opens) and some for connections in their
 * handshake (see senders_allowed()). */
#define RX_MAX_SENDERS 64
#define RX_FDS_PER_SENDER 5
#define RX_FDS_OWN 24

struct receiver;
struct conn;

enum conn_state {
    CONN_HELLO,     /* waiting for HELLO */
    CONN_AUTH,      /* WELCOME sent; waiting for the sender's proof */
    CONN_IDLE,      /* waiting for OFFER or BYE */
    CONN_OPENING,   /* open job in flight for the offered file */
    CONN_CHECKING,  /* same-size file exists: comparing whole-file hashes */
    CONN_FORGETTING, /* identical: its leftover state is being removed */
    CONN_RECEIVING, /* DATA flowing; END may have arrived */
    CONN_COMMITTING, /* verified: the commit job is in flight */
    CONN_RESETTING, /* whole-file mismatch: the reset job is in flight */
    CONN_BYE        /* session over; closing */
};

struct chunk {
    uint8_t *buf; /* heap buffer from link, owned */
    const uint8_t *bytes;
    uint64_t offset;
    uint32_t len;
    uint64_t hash;
};

struct rfile {
    struct rfile *next;
    struct conn *owner;
    char name[PROTO_MAX_NAME + 1];
    char part_path[NAME_KEY_LEN + 16];    /* relative to xfd */
    char journal_path[NAME_KEY_LEN + 16]; /* relative to xfd */
    struct journal_identity id;
    uint32_t mode;
    int fd;
    int xfd; /* --dir/.xfer, opened without following links */
    struct journal j;
    int resumed;
    uint32_t epoch;
    XXH3_state_t *state; /* running hash; the write job's while it runs */
    XXH3_state_t *snap;  /* copy of state at `written`, for sync jobs */
    uint64_t written;    /* [0, written) is written and hashed */
    uint64_t confirmed;  /* [0, confirmed) is durable and journaled */
    uint64_t rx_next;    /* offset the next DATA frame must carry */
    uint64_t last_ack_ms;
    /* chunk hashes written but not yet journaled: chunks [pend_from, +npend) */
    uint64_t pend_from;
    uint64_t *pend;
    size_t npend;
    size_t pend_cap;
    struct chunk queue[RX_QUEUE_MAX];
    size_t nqueue;
    int write_busy;
    int sync_busy;
    int verify_busy;
    int verify_done;     /* the resumed prefix matched the journal */
    uint64_t verify_next; /* next chunk to check */
    uint64_t verify_end;
    uint64_t *verify_hashes;
    XXH3_state_t *verify_state; /* hash of [0, verify_next * chunk) as read back */
    struct proto_hash128 resume_digest; /* the journal's hash of the resumed prefix */
    int rewind_pending;         /* damage found: rewind once jobs are idle */
    int resync;                 /* an unexpected DATA frame: rewind once writes land */
    int end_received;
    struct proto_hash128 end_hash;
    int io_failed;
    struct proto_hash128 their_hash; /* for the identical-file check */
    struct proto_hash128 our_hash;
    int have_their_hash;
    int have_our_hash;
    int existing_unreadable;
    uint64_t started_ms;
};

struct conn {
    struct link link;
    struct conn *next;
    struct receiver *rx;
    enum conn_state state;
    uint8_t session_id[PROTO_SESSION_ID_LEN];
    struct auth_keys keys; /* until the sender's proof is checked */
    struct guard_addr addr;
    int guarded; /* counted by the guard as not yet authenticated */
    int sender;  /* authenticated, and counted in rx->senders */
    uint16_t cipher;
    char peer[80];
    struct rfile *file;
    int jobs;        /* threadpool jobs that still point at this conn */
    int link_closed;
    uint64_t accepted_ms;
    int bye_status;
    int got_bye;
};

struct receiver {
    uv_loop_t *loop;
    const struct cli_opts *opts;
    const struct auth_psk *psk;
    struct guard guard;
    /* What strangers can make us log: lines turned away or dropped by the
     * guard, failed proofs, and their ERROR texts each have a budget. */
    struct report_budget guard_lines;
    struct report_budget refused_lines;
    struct report_budget stranger_errors;
    uint64_t last_accept_report;
    const char *generated_secret; /* to print with the sender's command */
    uv_tcp_t listeners[2]; /* IPv4 and IPv6, or the one --bind names */
    int listening[2];
    uv_timer_t ticker;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    int dirfd;
    mode_t umask;
    struct conn *conns;
    struct rfile *active; /* files being received, for the busy rule */
    unsigned senders;     /* connections with c->sender set */
    unsigned max_senders;
    uint64_t nofile;      /* the open-files limit max_senders comes from */
    uint64_t last_full_report;
    int stopping;
    int signals;
    int exit_code;
    int allocated;      /* by receiver_open(): freed when its handles close */
    int handles_closed; /* of ticker, sigint and sigterm */
};

/* ---- small helpers ---------------------------------------------------- */

static void send_simple(struct conn *c, uint8_t type)
{
    struct proto_frame f = {.type = type};

    (void)link_send(&c->link, &f); /* a dead link reports itself via on_close */
}

static void send_text(struct conn *c, uint8_t type, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void send_text(struct conn *c, uint8_t type, uint16_t code, const char *fmt, ...)
{
    struct proto_frame f;
    va_list ap;

    memset(&f, 0, sizeof(f));
    f.type = type;
    f.u.refuse.code = code;
    va_start(ap, fmt);
    vsnprintf(f.u.refuse.text, sizeof(f.u.refuse.text), fmt, ap);
    va_end(ap);
    (void)link_send(&c->link, &f);
}

static void send_epoch_offset(struct conn *c, uint8_t type, uint32_t epoch, uint64_t offset)
{
    struct proto_frame f = {.type = type};

    f.u.ack.epoch = epoch;
    f.u.ack.offset = offset;
    (void)link_send(&c->link, &f);
}

/* ---- file lifecycle ---------------------------------------------------- */

static void drop_queue(struct rfile *f)
{
    for (size_t i = 0; i < f->nqueue; i++)
        link_buf_release(f->queue[i].buf);
    f->nqueue = 0;
}

static void file_release(struct receiver *rx, struct rfile *f)
{
    struct rfile **pp;

    if (f == NULL)
        return;
    for (pp = &rx->active; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    drop_queue(f);
    if (f->fd >= 0)
        (void)close(f->fd); /* durability was handled by sync and commit */
    journal_close(&f->j);
    if (f->xfd >= 0)
        (void)close(f->xfd); /* a directory, read-only */
    if (f->state != NULL)
        XXH3_freeState(f->state);
    if (f->snap != NULL)
        XXH3_freeState(f->snap);
    if (f->verify_state != NULL)
        XXH3_freeState(f->verify_state);
    free(f->verify_hashes);
    free(f->pend);
    free(f);
}

static struct rfile *file_new(struct receiver *rx, struct conn *c, const struct proto_frame *fr)
{
    struct rfile *f = calloc(1, sizeof(*f));
    char key[NAME_KEY_LEN + 1];

    if (f == NULL)
        return NULL;
    f->fd = -1;
    f->xfd = -1;
    journal_init(&f->j);
    f->state = fileio_hash_state_new();
    f->snap = fileio_hash_state_new();
    if (f->state == NULL || f->snap == NULL || XXH3_128bits_reset(f->state) != XXH_OK ||
        XXH3_128bits_reset(f->snap) != XXH_OK) {
        file_release(rx, f);
        return NULL;
    }
    f->owner = c;
    memcpy(f->name, fr->u.offer.name, (size_t)fr->u.offer.name_len + 1);
    name_state_key(f->name, key);
    snprintf(f->part_path, sizeof(f->part_path), "%s.part", key);
    snprintf(f->journal_path, sizeof(f->journal_path), "%s.journal", key);
    f->id.size = fr->u.offer.size;
    f->id.mtime_sec = fr->u.offer.mtime_sec;
    f->id.mtime_nsec = fr->u.offer.mtime_nsec;
    memcpy(f->id.name, f->name, sizeof(f->id.name));
    f->mode = fr->u.offer.mode;
    f->epoch = 1;
    f->next = rx->active;
    rx->active = f;
    return f;
}

static struct rfile *file_find(struct receiver *rx, const char *name)
{
    for (struct rfile *f = rx->active; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

/* ---- connection teardown ----------------------------------------------- */

static void receiver_maybe_exit(struct receiver *rx);

static void conn_try_free(struct conn *c)
{
    struct receiver *rx = c->rx;
    struct conn **pp;

    if (!c->link_closed || c->jobs > 0)
        return;
    if (c->guarded)
        guard_release(&rx->guard, &c->addr);
    if (c->sender)
        rx->senders--; /* its descriptors are all closed by now */
    auth_wipe(&c->keys, sizeof(c->keys));
    file_release(rx, c->file);
    c->file = NULL;
    for (pp = &rx->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (rx->opts->once && c->got_bye && !rx->stopping) {
        rx->exit_code = c->bye_status == PROTO_OK       ? XFER_EXIT_OK
                        : c->bye_status == PROTO_VERIFY ? XFER_EXIT_VERIFY
                                                        : XFER_EXIT_REFUSED;
        free(c);
        rx->stopping = 1;
        receiver_maybe_exit(rx);
        return;
    }
    free(c);
    receiver_maybe_exit(rx);
}

static void conn_on_close(struct link *l, int err)
{
    struct conn *c = l->data;

    if (err == XFER_ESTALLED)
        report_info("closed the connection from %s: it stopped reading our replies (%zu bytes "
                    "of them waiting; %" PRIu64 " bytes read from it)",
                    c->peer, l->stalled_queued, l->rx_bytes);
    else if (c->file != NULL && err != 0 && err != UV_EOF && !c->rx->stopping)
        report_info("connection from %s lost while receiving %s: %s", c->peer,
                    report_escaped(c->file->name), xfer_strerror(err));
    else if (c->file != NULL && err == UV_EOF && !c->rx->stopping)
        report_info("sender %s disconnected during %s; partial kept for resume", c->peer,
                    report_escaped(c->file->name));
    c->link_closed = 1;
    conn_try_free(c);
}

/* ---- threadpool jobs ---------------------------------------------------- */

struct job {
    uv_work_t req;
    struct conn *c;
    struct rfile *f;
    int rc;
};

static int job_submit(struct job *jb, struct conn *c, uv_work_cb work, uv_after_work_cb after)
{
    int rc;

    jb->c = c;
    jb->f = c->file;
    rc = uv_queue_work(c->rx->loop, &jb->req, work, after);
    if (rc == 0)
        c->jobs++;
    return rc;
}

/* Every after-work callback starts here; 1 means the connection is gone and
 * the callback must only clean up. */
static int job_landed(struct job *jb)
{
    struct conn *c = jb->c;

    c->jobs--;
    if (!c->link_closed && link_is_open(&c->link) && jb->f != c->file) {
        /* The states keep a connection on one file while its jobs run; if
         * that ever broke, going on would write through a stale file. */
        report_error("internal: a job for another file landed on the connection from %s; "
                     "closing it",
                     c->peer);
        link_fail(&c->link, XFER_EPROTO, PROTO_PROTOCOL, "receiver internal error");
    }
    if (c->link_closed || !link_is_open(&c->link)) {
        conn_try_free(c);
        return 1;
    }
    return 0;
}

static void conn_io_error(struct conn *c, const char *what, int rc)
{
    struct rfile *f = c->file;
    uint16_t code = rc == -ENOSPC || rc == -EDQUOT ? PROTO_NO_SPACE : PROTO_IO;

    char text[PROTO_MAX_TEXT];

    report_error("%s %s: %s; the partial is kept and the sender will retry", what,
                 f != NULL ? report_escaped(f->name) : "", xfer_strerror(rc));
    snprintf(text, sizeof(text), "receiver %s %s: %s; the partial is kept", what,
             f != NULL ? f->name : "", xfer_strerror(rc));
    /* ERROR, not REFUSE: the condition may pass (space freed), so the sender
     * reconnects and resumes from the last confirmed offset. */
    link_fail(&c->link, rc, code, text);
    if (f != NULL)
        f->io_failed = 1;
}

/* -- open ----------------------------------------------------------------- */

enum open_result {
    OPEN_ACCEPT,
    OPEN_REFUSE,
    OPEN_CHECK
};

struct open_job {
    struct job jb;
    int dirfd;
    int overwrite;
    int skip_exists;
    const char *replaced; /* "journal" or "partial": one had other links; its name was removed */
    enum open_result result;
    uint16_t code;
    char text[PROTO_MAX_TEXT];
};

/* New entries in .xfer must survive a power cut along with the data the
 * journal vouches for. */
static int sync_state_dir(int xfd, int dirfd)
{
    if (fsync(xfd) < 0 || fsync(dirfd) < 0)
        return -errno;
    return 0;
}

/* --dir/.xfer, created if needed, held by descriptor from here on: a link
 * planted in its place, or anywhere below it, is refused, never followed. */
static int open_state_dir(int dirfd)
{
    struct stat st;
    int fd;

    if (mkdirat(dirfd, NAME_STATE_DIR, 0700) < 0 && errno != EEXIST)
        return -errno;
    fd = fileio_open_beneath(dirfd, NAME_STATE_DIR, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    /* One made in advance by someone else could be used to swap partials
     * and journals under us, or to plant hard links to files outside D: it
     * must be ours, and closed to others. We make it 0700, so one open to
     * others was not made by us, and whatever is in it may be planted. */
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid()) {
        (void)close(fd); /* a directory, read-only */
        return -EPERM;
    }
    if ((st.st_mode & 077) != 0) {
        (void)close(fd); /* a directory, read-only */
        return XFER_ESTATEDIR;
    }
    return fd;
}

/* The partial: reopened when the journal vouches for it, else created
 * anew with O_EXCL after removing whatever held the name. */
static int open_part_file(struct open_job *oj)
{
    struct rfile *f = oj->jb.f;
    int fd;
    int rc;

    if (f->resumed) {
        fd = fileio_open_beneath(f->xfd, f->part_path, O_RDWR, 0);
        if (fd >= 0) {
            rc = fileio_check_private(fd);
            if (rc < 0) {
                (void)close(fd); /* not a file we wrote: never written through */
                if (rc == XFER_ELINKED)
                    oj->replaced = "partial";
                fd = rc;
            }
        }
        if (fd >= 0) {
            f->fd = fd;
            return 0;
        }
        /* A link, a hard-linked file or something else in the partial's
         * place, or no partial: whatever the journal vouched for is gone;
         * start over (the name is removed below, never what it reaches). */
        rc = journal_reset(&f->j);
        if (rc < 0)
            return rc;
        f->resumed = 0;
    }
    fd = fileio_create_fresh(f->xfd, f->part_path, 0600);
    if (fd < 0)
        return fd;
    f->fd = fd;
    return 0;
}

static int open_partial(struct open_job *oj)
{
    struct rfile *f = oj->jb.f;
    struct statvfs vfs;
    int rc;

    f->xfd = open_state_dir(oj->dirfd);
    if (f->xfd < 0)
        return f->xfd;
    rc = journal_open(&f->j, f->xfd, f->journal_path, &f->id, &f->resumed);
    if (rc == -ELOOP || rc == -EINVAL || rc == XFER_ELINKED) {
        /* A link, a non-file, or a file that another name or user can reach
         * (a hard link planted there) in the journal's place: not ours, so
         * it vouches for nothing. Remove the name (never what it points to)
         * and start the file over with one made exclusively. */
        if (rc == XFER_ELINKED)
            oj->replaced = "journal";
        if (unlinkat(f->xfd, f->journal_path, 0) < 0)
            return -errno;
        rc = journal_open(&f->j, f->xfd, f->journal_path, &f->id, &f->resumed);
    }
    if (rc < 0)
        return rc;
    rc = open_part_file(oj);
    if (rc < 0)
        return rc;
    if (f->resumed) {
        XXH3_copyState(f->state, f->j.state);
        XXH3_copyState(f->snap, f->state);
        f->written = f->j.confirmed;
    }
    f->confirmed = f->written;
    f->rx_next = f->written;
    f->pend_from = f->written / PROTO_CHUNK_SIZE;
    if (fstatvfs(oj->dirfd, &vfs) == 0) {
        uint64_t have = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        uint64_t need = f->id.size - f->written;

        if (need > have) {
            oj->result = OPEN_REFUSE;
            oj->code = PROTO_NO_SPACE;
            snprintf(oj->text, sizeof(oj->text),
                     "not enough space for %s: need %" PRIu64 " bytes, have %" PRIu64, f->name,
                     need, have);
            if (!f->resumed) {
                /* Nothing worth keeping: leave no trace of the attempt. */
                (void)unlinkat(f->xfd, f->part_path, 0);
                (void)unlinkat(f->xfd, f->journal_path, 0);
                (void)unlinkat(oj->dirfd, NAME_STATE_DIR, AT_REMOVEDIR);
            }
            return 0;
        }
    }
    return sync_state_dir(f->xfd, oj->dirfd);
}

static void open_work(uv_work_t *req)
{
    struct open_job *oj = (struct open_job *)req;
    struct rfile *f = oj->jb.f;
    struct stat st;

    oj->result = OPEN_ACCEPT;
    if (fstatat(oj->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !oj->skip_exists) {
        if (!S_ISREG(st.st_mode)) {
            oj->result = OPEN_REFUSE;
            oj->code = PROTO_EXISTS;
            snprintf(oj->text, sizeof(oj->text), "%s exists on the receiver and is not a regular file",
                     f->name);
            return;
        }
        if ((uint64_t)st.st_size == f->id.size) {
            oj->result = OPEN_CHECK;
            return;
        }
        if (!oj->overwrite) {
            oj->result = OPEN_REFUSE;
            oj->code = PROTO_EXISTS;
            snprintf(oj->text, sizeof(oj->text),
                     "a different %s exists on the receiver; remove it there or run the "
                     "receiver with --overwrite",
                     f->name);
            return;
        }
    } else if (!oj->skip_exists && errno != ENOENT) {
        oj->jb.rc = -errno;
        return;
    }
    oj->jb.rc = open_partial(oj);
}

static void conn_accept_file(struct conn *c);
static void conn_start_check(struct conn *c);

/* The connection is done with its file (answered, refused or saved) and
 * waits for the next offer. */
static void conn_file_done(struct conn *c)
{
    file_release(c->rx, c->file);
    c->file = NULL;
    c->state = CONN_IDLE;
}

static void refuse_file(struct conn *c, uint16_t code, const char *text)
{
    report_info("refused %s from %s: %s", report_escaped(c->file->name), c->peer, report_escaped(text));
    send_text(c, PROTO_REFUSE, code, "%s", text);
    conn_file_done(c);
}

static void open_done(uv_work_t *req, int status)
{
    struct open_job *oj = (struct open_job *)req;
    struct conn *c = oj->jb.c;
    int rc = status < 0 ? status : oj->jb.rc;

    if (job_landed(&oj->jb)) {
        free(oj);
        return;
    }
    if (oj->replaced != NULL)
        report_info("the %s of %s in .xfer had another link or owner (a hard link planted "
                    "there?); it was not written through: its name was removed and the file "
                    "starts over",
                    oj->replaced, report_escaped(c->file->name));
    if (rc < 0) {
        char text[PROTO_MAX_TEXT];

        if (rc == -EPERM)
            snprintf(text, sizeof(text),
                     "receiver cannot store %s: its directory's .xfer belongs to another user; "
                     "the receiver's owner should remove it",
                     c->file->name);
        else if (rc == XFER_ESTATEDIR)
            snprintf(text, sizeof(text),
                     "receiver cannot store %s: its directory's .xfer is open to other users, so "
                     "what is in it may have been planted; the receiver's owner should check it "
                     "and remove it (or chmod 700 it)",
                     c->file->name);
        else if (rc == -ELOOP || rc == -EXDEV)
            snprintf(text, sizeof(text),
                     "receiver cannot store %s: a symbolic link is in the way under its "
                     "directory (at .xfer), and links are never followed",
                     c->file->name);
        else
            snprintf(text, sizeof(text), "receiver cannot store %s: %s", c->file->name,
                     xfer_strerror(rc));
        refuse_file(c, rc == -ENOSPC ? PROTO_NO_SPACE : PROTO_IO, text);
    } else if (oj->result == OPEN_REFUSE) {
        refuse_file(c, oj->code, oj->text);
    } else if (oj->result == OPEN_CHECK) {
        conn_start_check(c);
    } else {
        conn_accept_file(c);
    }
    free(oj);
}

static void start_open(struct conn *c, int skip_exists)
{
    struct open_job *oj = calloc(1, sizeof(*oj));
    int rc = UV_ENOMEM;

    if (oj != NULL) {
        oj->dirfd = c->rx->dirfd;
        oj->overwrite = c->rx->opts->overwrite;
        oj->skip_exists = skip_exists;
        rc = job_submit(&oj->jb, c, open_work, open_done);
    }
    if (rc < 0) {
        free(oj);
        conn_io_error(c, "cannot open", rc);
        return;
    }
    c->state = CONN_OPENING;
}

/* -- identical-file check ------------------------------------------------ */

struct check_job {
    struct job jb;
    int dirfd;
    XXH128_hash_t hash;
};

static void check_work(uv_work_t *req)
{
    struct check_job *cj = (struct check_job *)req;
    XXH3_state_t *st = fileio_hash_state_new();
    uint8_t *buf = malloc(PROTO_CHUNK_SIZE);
    struct stat sb;
    int fd = -1;

    cj->jb.rc = -ENOMEM;
    if (st == NULL || buf == NULL || XXH3_128bits_reset(st) != XXH_OK)
        goto out;
    /* O_NONBLOCK: a FIFO swapped in under the name must not hang a thread. */
    fd = fileio_open_beneath(cj->dirfd, cj->jb.f->name, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0) {
        cj->jb.rc = fd;
        goto out;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        cj->jb.rc = -EINVAL;
        goto out;
    }
    cj->jb.rc = fileio_hash_range(fd, 0, (uint64_t)sb.st_size, st, buf, PROTO_CHUNK_SIZE);
    cj->hash = XXH3_128bits_digest(st);
out:
    if (fd >= 0)
        (void)close(fd); /* read-only */
    free(buf);
    if (st != NULL)
        XXH3_freeState(st);
}

/* A receiver stopped between a commit's rename and the journal's removal
 * leaves that journal behind. Once the file is known to be here and
 * identical, nothing can resume from it, so it goes. */
struct forget_job {
    struct job jb;
    int dirfd;
};

static void forget_work(uv_work_t *req)
{
    struct forget_job *fj = (struct forget_job *)req;
    struct rfile *f = fj->jb.f;
    int xfd = fileio_open_beneath(fj->dirfd, NAME_STATE_DIR, O_RDONLY | O_DIRECTORY, 0);

    if (xfd < 0)
        return; /* no state dir (the usual case), or not one we can use */
    (void)unlinkat(xfd, f->part_path, 0); /* names only; either may be gone */
    (void)unlinkat(xfd, f->journal_path, 0);
    (void)close(xfd); /* a directory, read-only */
    (void)unlinkat(fj->dirfd, NAME_STATE_DIR, AT_REMOVEDIR); /* fails while others use it */
}

static void finish_identical(struct conn *c)
{
    send_simple(c, PROTO_COMPLETE);
    conn_file_done(c);
}

static void forget_done(uv_work_t *req, int status)
{
    struct forget_job *fj = (struct forget_job *)req;
    struct conn *c = fj->jb.c;

    (void)status; /* leftovers that stay are harmless clutter */
    if (job_landed(&fj->jb)) {
        free(fj);
        return;
    }
    free(fj);
    finish_identical(c);
}

static void check_compare(struct conn *c)
{
    struct rfile *f = c->file;

    if (!f->have_our_hash || !f->have_their_hash)
        return;
    if (!f->existing_unreadable && f->our_hash.high == f->their_hash.high &&
        f->our_hash.low == f->their_hash.low) {
        struct forget_job *fj = calloc(1, sizeof(*fj));

        report_info("%s is already here and identical; nothing to receive", report_escaped(f->name));
        if (fj != NULL) {
            fj->dirfd = c->rx->dirfd;
            if (job_submit(&fj->jb, c, forget_work, forget_done) == 0) {
                /* Answered: nothing more about this file may arrive. */
                c->state = CONN_FORGETTING;
                return;
            }
            free(fj);
        }
        finish_identical(c); /* without the tidy-up, which is not worth failing for */
        return;
    }
    if (!c->rx->opts->overwrite) {
        refuse_file(c, PROTO_EXISTS,
                    "a different file of the same name and size exists on the receiver; "
                    "remove it there or run the receiver with --overwrite");
        return;
    }
    start_open(c, 1);
}

static void check_done(uv_work_t *req, int status)
{
    struct check_job *cj = (struct check_job *)req;
    struct conn *c = cj->jb.c;
    int rc = status < 0 ? status : cj->jb.rc;

    if (job_landed(&cj->jb)) {
        free(cj);
        return;
    }
    if (rc < 0) {
        c->file->existing_unreadable = 1; /* compares as different */
    } else {
        c->file->our_hash.high = cj->hash.high64;
        c->file->our_hash.low = cj->hash.low64;
    }
    c->file->have_our_hash = 1;
    free(cj);
    check_compare(c);
}

static void conn_start_check(struct conn *c)
{
    struct check_job *cj = calloc(1, sizeof(*cj));
    int rc = UV_ENOMEM;

    if (cj != NULL) {
        cj->dirfd = c->rx->dirfd;
        rc = job_submit(&cj->jb, c, check_work, check_done);
    }
    if (rc < 0) {
        free(cj);
        conn_io_error(c, "cannot check", rc);
        return;
    }
    c->state = CONN_CHECKING;
    send_simple(c, PROTO_NEED_HASH);
}

/* -- write ---------------------------------------------------------------- */

struct write_job {
    struct job jb;
    struct chunk chunks[RX_QUEUE_MAX];
    uint64_t hashes[RX_QUEUE_MAX];
    size_t n;
    size_t done;  /* chunks verified and written */
    int bad;      /* chunk `done` failed its hash */
};

static void write_work(uv_work_t *req)
{
    struct write_job *wj = (struct write_job *)req;
    struct rfile *f = wj->jb.f;

    for (wj->done = 0; wj->done < wj->n; wj->done++) {
        struct chunk *ch = &wj->chunks[wj->done];

        if (proto_chunk_hash(ch->bytes, ch->len, ch->offset) != ch->hash) {
            wj->bad = 1;
            return;
        }
        wj->jb.rc = fileio_pwrite(f->fd, ch->bytes, ch->len, ch->offset);
        if (wj->jb.rc < 0)
            return;
        (void)XXH3_128bits_update(f->state, ch->bytes, ch->len); /* fails only on NULL */
        wj->hashes[wj->done] = ch->hash;
    }
}

static void pump(struct conn *c);

static int pend_append(struct rfile *f, const uint64_t *hashes, size_t n)
{
    /* A write job that wrote nothing (its first chunk bad, or the disk full) has no hash
     * to add, and f->pend may still be NULL: memcpy() must not see it even for 0 bytes. */
    if (n == 0)
        return 0;
    if (f->npend + n > f->pend_cap) {
        size_t cap = f->pend_cap ? f->pend_cap * 2 : 64;
        uint64_t *p;

        while (cap < f->npend + n)
            cap *= 2;
        p = realloc(f->pend, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        f->pend = p;
        f->pend_cap = cap;
    }
    memcpy(f->pend + f->npend, hashes, n * sizeof(*hashes));
    f->npend += n;
    return 0;
}

/* Tells the sender to resend from f->written under a new epoch; frames of
 * the old epoch still on the wire are then recognised and dropped. */
static void rewind_sender(struct conn *c, uint16_t reason)
{
    struct rfile *f = c->file;
    struct proto_frame fr = {.type = PROTO_REWIND};

    drop_queue(f);
    f->epoch++;
    f->rx_next = f->written;
    f->end_received = 0;
    fr.u.rewind.epoch = f->epoch;
    fr.u.rewind.offset = f->written;
    fr.u.rewind.reason = reason;
    (void)link_send(&c->link, &fr);
    link_resume(&c->link);
}

static void write_done(uv_work_t *req, int status)
{
    struct write_job *wj = (struct write_job *)req;
    struct conn *c = wj->jb.c;
    struct rfile *f = wj->jb.f;
    uint64_t good = 0;
    int rc = status < 0 ? status : wj->jb.rc;

    for (size_t i = 0; i < wj->n; i++) {
        if (i < wj->done)
            good += wj->chunks[i].len;
        link_buf_release(wj->chunks[i].buf);
    }
    f->write_busy = 0;
    if (job_landed(&wj->jb)) {
        free(wj);
        return;
    }
    f->written += good;
    /* Sync jobs journal this copy, so they can overlap the next write. */
    XXH3_copyState(f->snap, f->state);
    if (pend_append(f, wj->hashes, wj->done) < 0 && rc == 0)
        rc = UV_ENOMEM;
    if (rc < 0) {
        free(wj);
        conn_io_error(c, "cannot write", rc);
        return;
    }
    if (wj->bad && !f->rewind_pending && !f->resync) {
        report_info("chunk at offset %" PRIu64 " of %s arrived damaged; asking for it again",
                    f->written, report_escaped(f->name));
        rewind_sender(c, PROTO_REWIND_BAD_CHUNK);
    }
    free(wj);
    pump(c);
}

static void start_write(struct conn *c)
{
    struct rfile *f = c->file;
    struct write_job *wj;

    if (f->write_busy || f->nqueue == 0 || f->rewind_pending)
        return;
    wj = calloc(1, sizeof(*wj));
    if (wj == NULL) {
        conn_io_error(c, "cannot write", UV_ENOMEM);
        return;
    }
    memcpy(wj->chunks, f->queue, f->nqueue * sizeof(f->queue[0]));
    wj->n = f->nqueue;
    f->nqueue = 0;
    if (job_submit(&wj->jb, c, write_work, write_done) < 0) {
        for (size_t i = 0; i < wj->n; i++)
            link_buf_release(wj->chunks[i].buf);
        free(wj);
        conn_io_error(c, "cannot write", UV_ENOMEM);
        return;
    }
    f->write_busy = 1;
    link_resume(&c->link);
}

/* -- sync: make written data durable, journal it, confirm it ------------- */

struct sync_job {
    struct job jb;
    uint64_t offset;
    uint64_t from_chunk;
    uint64_t *hashes;
    size_t n;
    XXH3_state_t *state;
};

static void sync_work(uv_work_t *req)
{
    struct sync_job *sj = (struct sync_job *)req;
    struct rfile *f = sj->jb.f;

    /* Data first, then the record that vouches for it. */
    sj->jb.rc = fileio_datasync(f->fd);
    if (sj->jb.rc == 0)
        sj->jb.rc = journal_commit(&f->j, sj->from_chunk, sj->hashes, sj->n, sj->offset,
                                   sj->state);
}

static void sync_done(uv_work_t *req, int status)
{
    struct sync_job *sj = (struct sync_job *)req;
    struct conn *c = sj->jb.c;
    struct rfile *f = sj->jb.f;
    int rc = status < 0 ? status : sj->jb.rc;

    f->sync_busy = 0;
    free(sj->hashes);
    XXH3_freeState(sj->state);
    if (job_landed(&sj->jb)) {
        free(sj);
        return;
    }
    if (rc < 0) {
        free(sj);
        conn_io_error(c, "cannot sync", rc);
        return;
    }
    f->npend -= sj->n;
    if (f->npend > 0) /* else f->pend may be NULL */
        memmove(f->pend, f->pend + sj->n, f->npend * sizeof(*f->pend));
    f->pend_from += sj->n;
    f->confirmed = sj->offset;
    f->last_ack_ms = uv_now(c->rx->loop);
    send_epoch_offset(c, PROTO_ACK, f->epoch, f->confirmed);
    free(sj);
    pump(c);
}

static void start_sync(struct conn *c)
{
    struct rfile *f = c->file;
    struct sync_job *sj;

    if (f->sync_busy || f->rewind_pending || f->written <= f->confirmed)
        return;
    sj = calloc(1, sizeof(*sj));
    if (sj == NULL)
        goto fail;
    sj->offset = f->written;
    sj->from_chunk = f->pend_from;
    sj->n = f->npend;
    sj->hashes = malloc((f->npend ? f->npend : 1) * sizeof(uint64_t));
    sj->state = fileio_hash_state_new();
    if (sj->hashes == NULL || sj->state == NULL)
        goto fail;
    if (f->npend > 0) /* else f->pend may be NULL */
        memcpy(sj->hashes, f->pend, f->npend * sizeof(uint64_t));
    XXH3_copyState(sj->state, f->snap);
    if (job_submit(&sj->jb, c, sync_work, sync_done) < 0)
        goto fail;
    f->sync_busy = 1;
    return;
fail:
    if (sj != NULL) {
        free(sj->hashes);
        if (sj->state != NULL)
            XXH3_freeState(sj->state);
    }
    free(sj);
    conn_io_error(c, "cannot sync", UV_ENOMEM);
}

/* -- verify: on resume, read the confirmed prefix back against the journal */

struct verify_job {
    struct job jb;
    uint64_t first;
    uint64_t end;
    uint64_t bad_chunk; /* first chunk that failed, or end */
};

static void verify_work(uv_work_t *req)
{
    struct verify_job *vj = (struct verify_job *)req;
    struct rfile *f = vj->jb.f;
    uint8_t *buf = malloc(PROTO_CHUNK_SIZE);

    vj->bad_chunk = vj->end;
    if (buf == NULL) {
        vj->jb.rc = -ENOMEM;
        return;
    }
    for (uint64_t ch = vj->first; ch < vj->end; ch++) {
        uint64_t off = ch * PROTO_CHUNK_SIZE;
        uint64_t len = journal_chunk_len(f->id.size, ch);
        int64_t n = fileio_pread(f->fd, buf, len, off);

        if (n < 0) {
            vj->jb.rc = (int)n;
            break;
        }
        if ((uint64_t)n != len || proto_chunk_hash(buf, len, off) != f->verify_hashes[ch]) {
            vj->bad_chunk = ch;
            break;
        }
        (void)XXH3_128bits_update(f->verify_state, buf, len); /* fails only on NULL */
    }
    free(buf);
}

static void start_verify(struct conn *c);

/* The partial failed its check at chunk bad: everything from there is
 * received again. The read-back hash state is exactly the prefix's. */
static void apply_damage_rewind(struct conn *c)
{
    struct rfile *f = c->file;
    uint64_t bad = f->verify_next;

    if (f->write_busy || f->sync_busy)
        return; /* pump() calls again when they land */
    f->rewind_pending = 0;
    f->verify_done = 1;
    f->written = bad * PROTO_CHUNK_SIZE;
    f->confirmed = f->written;
    f->pend_from = bad;
    f->npend = 0;
    XXH3_copyState(f->state, f->verify_state);
    XXH3_copyState(f->snap, f->state);
    report_info("partial of %s is damaged on disk at offset %" PRIu64 "; receiving it again from there",
                report_escaped(f->name), f->written);
    rewind_sender(c, PROTO_REWIND_DAMAGED);
}

static void verify_done(uv_work_t *req, int status)
{
    struct verify_job *vj = (struct verify_job *)req;
    struct conn *c = vj->jb.c;
    struct rfile *f = vj->jb.f;
    int rc = status < 0 ? status : vj->jb.rc;

    f->verify_busy = 0;
    if (job_landed(&vj->jb)) {
        free(vj);
        return;
    }
    if (rc < 0) {
        free(vj);
        conn_io_error(c, "cannot read back", rc);
        return;
    }
    f->verify_next = vj->bad_chunk;
    if (vj->bad_chunk < vj->end) {
        f->rewind_pending = 1;
        drop_queue(f);
        free(vj);
        pump(c);
        return;
    }
    free(vj);
    if (f->verify_next < f->verify_end) {
        start_verify(c);
        return;
    }
    /* Every chunk matched its journal hash; the prefix as a whole must also
     * match the journal's hash state, which the file's final hash continues
     * from. If not, partial and journal were changed together: start over. */
    {
        XXH128_hash_t h = XXH3_128bits_digest(f->verify_state);

        if (h.high64 != f->resume_digest.high || h.low64 != f->resume_digest.low) {
            f->verify_next = 0;
            (void)XXH3_128bits_reset(f->verify_state); /* cannot fail on a valid state */
            f->rewind_pending = 1;
            drop_queue(f);
        } else {
            f->verify_done = 1;
        }
    }
    pump(c);
}

static void start_verify(struct conn *c)
{
    struct rfile *f = c->file;
    struct verify_job *vj = calloc(1, sizeof(*vj));

    if (vj == NULL) {
        conn_io_error(c, "cannot read back", UV_ENOMEM);
        return;
    }
    vj->first = f->verify_next;
    vj->end = f->verify_next + VERIFY_BATCH;
    if (vj->end > f->verify_end)
        vj->end = f->verify_end;
    if (job_submit(&vj->jb, c, verify_work, verify_done) < 0) {
        free(vj);
        conn_io_error(c, "cannot read back", UV_ENOMEM);
        return;
    }
    f->verify_busy = 1;
}

/* -- commit --------------------------------------------------------------- */

struct commit_job {
    struct job jb;
    int dirfd;
    int overwrite;
    mode_t mode;
};

static void commit_work(uv_work_t *req)
{
    struct commit_job *cj = (struct commit_job *)req;
    struct rfile *f = cj->jb.f;
    struct timespec times[2];
    int rc = 0;

    times[0].tv_sec = f->id.mtime_sec;
    times[0].tv_nsec = f->id.mtime_nsec;
    times[1] = times[0];
    if (fchmod(f->fd, cj->mode) < 0 || futimens(f->fd, times) < 0 || fsync(f->fd) < 0) {
        cj->jb.rc = -errno;
        return;
    }
    /* RENAME_NOREPLACE: a file that appeared under the name meanwhile is not
     * silently replaced. */
    if (cj->overwrite) {
        if (renameat(f->xfd, f->part_path, cj->dirfd, f->name) < 0) {
            cj->jb.rc = -errno;
            return;
        }
    } else if (renameat2(f->xfd, f->part_path, cj->dirfd, f->name, RENAME_NOREPLACE) < 0) {
        /* Filesystems without RENAME_NOREPLACE: link() also refuses to
         * replace, and the partial's name is then dropped. */
        if (errno != EINVAL && errno != ENOSYS) {
            cj->jb.rc = -errno;
            return;
        }
        if (linkat(f->xfd, f->part_path, cj->dirfd, f->name, 0) < 0) {
            cj->jb.rc = -errno;
            return;
        }
        (void)unlinkat(f->xfd, f->part_path, 0); /* the data is safe under its name */
    }
    if (fsync(cj->dirfd) < 0)
        rc = -errno;
    /* The data is safe under its name; the journal is now only clutter. */
    (void)unlinkat(f->xfd, f->journal_path, 0);
    (void)unlinkat(cj->dirfd, NAME_STATE_DIR, AT_REMOVEDIR); /* fails while others use it */
    cj->jb.rc = rc;
}

static void commit_done(uv_work_t *req, int status)
{
    struct commit_job *cj = (struct commit_job *)req;
    struct conn *c = cj->jb.c;
    struct rfile *f = cj->jb.f;
    int rc = status < 0 ? status : cj->jb.rc;

    if (job_landed(&cj->jb)) {
        free(cj);
        return;
    }
    free(cj);
    if (rc == -EEXIST) {
        refuse_file(c, PROTO_EXISTS,
                    "a file of that name appeared on the receiver during the transfer; the "
                    "received data is kept as a partial");
        return;
    }
    if (rc < 0) {
        conn_io_error(c, "cannot commit", rc);
        return;
    }
    {
        char size[32];
        double secs = (double)(uv_now(c->rx->loop) - f->started_ms) / 1000.0;

        report_size(f->id.size, size, sizeof(size));
        report_info("%s verified and saved (%s in %.1f s)", report_escaped(f->name), size, secs);
    }
    send_simple(c, PROTO_COMMITTED);
    conn_file_done(c);
}

/* -- restart after a whole-file mismatch --------------------------------- */

struct reset_job {
    struct job jb;
};

static void reset_work(uv_work_t *req)
{
    struct reset_job *rj = (struct reset_job *)req;
    struct rfile *f = rj->jb.f;

    rj->jb.rc = journal_reset(&f->j);
    if (rj->jb.rc == 0 && ftruncate(f->fd, 0) < 0)
        rj->jb.rc = -errno;
}

static void reset_done(uv_work_t *req, int status)
{
    struct reset_job *rj = (struct reset_job *)req;
    struct conn *c = rj->jb.c;
    struct rfile *f = rj->jb.f;
    int rc = status < 0 ? status : rj->jb.rc;

    if (job_landed(&rj->jb)) {
        free(rj);
        return;
    }
    free(rj);
    if (rc < 0) {
        conn_io_error(c, "cannot restart", rc);
        return;
    }
    f->written = 0;
    f->confirmed = 0;
    f->pend_from = 0;
    f->npend = 0;
    (void)XXH3_128bits_reset(f->state); /* cannot fail on a valid state */
    XXH3_copyState(f->snap, f->state);
    rewind_sender(c, PROTO_REWIND_VERIFY);
    c->state = CONN_RECEIVING;
}

static void finish_file(struct conn *c)
{
    struct rfile *f = c->file;
    XXH128_hash_t h = XXH3_128bits_digest(f->state);
    int rc;

    if (h.high64 == f->end_hash.high && h.low64 == f->end_hash.low) {
        struct commit_job *cj = calloc(1, sizeof(*cj));

        rc = UV_ENOMEM;
        if (cj != NULL) {
            cj->dirfd = c->rx->dirfd;
            cj->overwrite = c->rx->opts->overwrite;
            cj->mode = (mode_t)(f->mode & 0777 & ~c->rx->umask);
            rc = job_submit(&cj->jb, c, commit_work, commit_done);
        }
        if (rc < 0) {
            free(cj);
            conn_io_error(c, "cannot commit", rc);
            return;
        }
        c->state = CONN_COMMITTING;
        return;
    }
    report_info("%s did not match the sender's hash; receiving it again from the start",
                report_escaped(f->name));
    {
        struct reset_job *rj = calloc(1, sizeof(*rj));

        rc = UV_ENOMEM;
        if (rj != NULL)
            rc = job_submit(&rj->jb, c, reset_work, reset_done);
        if (rc < 0) {
            free(rj);
            conn_io_error(c, "cannot restart", rc);
            return;
        }
        f->end_received = 0;
        c->state = CONN_RESETTING; /* pump() starts nothing meanwhile */
    }
}

/* Moves a receiving file forward: write, verify, confirm, finish. */
static void pump(struct conn *c)
{
    struct rfile *f = c->file;
    uint64_t now;

    if (f == NULL || c->state != CONN_RECEIVING || !link_is_open(&c->link))
        return;
    if (f->rewind_pending) {
        apply_damage_rewind(c);
        return;
    }
    if (f->resync && !f->write_busy) {
        f->resync = 0;
        rewind_sender(c, PROTO_REWIND_BAD_CHUNK);
    }
    start_write(c);
    now = uv_now(c->rx->loop);
    if (f->written - f->confirmed >= ACK_BYTES ||
        (f->written > f->confirmed && now - f->last_ack_ms >= ACK_INTERVAL_MS) ||
        (f->end_received && f->written == f->id.size))
        start_sync(c);
    if (f->nqueue < RX_QUEUE_MAX)
        link_resume(&c->link);
    if (f->end_received && f->written == f->id.size && f->verify_done && !f->write_busy &&
        !f->sync_busy && !f->verify_busy && f->confirmed == f->written)
        finish_file(c);
}

/* ---- frames ------------------------------------------------------------- */

static void conn_accept_file(struct conn *c)
{
    struct rfile *f = c->file;
    char size[32];

    report_size(f->id.size, size, sizeof(size));
    f->started_ms = uv_now(c->rx->loop);
    f->last_ack_ms = f->started_ms;
    if (f->written > 0) {
        report_info("resuming %s at %" PRIu64 " of %" PRIu64 " bytes from %s", report_escaped(f->name),
                    f->written, f->id.size, c->peer);
        f->verify_end = f->written / PROTO_CHUNK_SIZE +
                        (f->written % PROTO_CHUNK_SIZE != 0 ? 1 : 0);
        f->verify_hashes = malloc(f->verify_end * sizeof(uint64_t) + 8);
        f->verify_state = fileio_hash_state_new();
        if (f->verify_hashes == NULL || f->verify_state == NULL ||
            XXH3_128bits_reset(f->verify_state) != XXH_OK) {
            conn_io_error(c, "cannot resume", UV_ENOMEM);
            return;
        }
        /* A copy: the sync job may grow the journal's list meanwhile. */
        memcpy(f->verify_hashes, f->j.hashes, f->verify_end * sizeof(uint64_t));
        {
            XXH128_hash_t h = XXH3_128bits_digest(f->snap);

            f->resume_digest.high = h.high64;
            f->resume_digest.low = h.low64;
        }
        start_verify(c);
    } else {
        report_info("receiving %s (%s) from %s", report_escaped(f->name), size, c->peer);
        f->verify_done = 1;
    }
    c->state = CONN_RECEIVING;
    send_epoch_offset(c, PROTO_ACCEPT, f->epoch, f->written);
}

/* Our half of the key exchange. No proof yet: the sender proves first, so a
 * stranger who merely connects learns nothing to guess the secret against. */
static int on_hello(struct conn *c, const struct proto_frame *fr)
{
    struct proto_frame w = {.type = PROTO_WELCOME};
    struct auth_ephemeral eph;
    struct auth_transcript t;
    int rc;

    memset(&t, 0, sizeof(t));
    memcpy(c->session_id, fr->u.hello.session_id, PROTO_SESSION_ID_LEN);
    c->cipher = auth_choose_cipher(fr->u.hello.ciphers);
    if (c->cipher == 0) {
        link_fail(&c->link, XFER_EPROTO, PROTO_PROTOCOL, "no cipher in common");
        return 0;
    }
    if (auth_ephemeral_new(&eph) < 0)
        return UV_EINVAL;
    t.client_flags = fr->u.hello.flags;
    memcpy(t.client_pk, fr->u.hello.pk, sizeof(t.client_pk));
    memcpy(t.client_nonce, fr->u.hello.nonce, sizeof(t.client_nonce));
    memcpy(t.session_id, fr->u.hello.session_id, sizeof(t.session_id));
    t.client_ciphers = fr->u.hello.ciphers;
    memcpy(t.server_pk, eph.pk, sizeof(t.server_pk));
    memcpy(t.server_nonce, eph.nonce, sizeof(t.server_nonce));
    t.cipher = c->cipher;
    rc = auth_server_keys(&c->keys, c->rx->psk, &eph, &t);
    auth_wipe(&eph.sk, sizeof(eph.sk));
    if (rc < 0) {
        link_fail(&c->link, XFER_EPROTO, PROTO_PROTOCOL, "unusable public key");
        return 0;
    }
    w.u.welcome.version = PROTO_VERSION;
    w.u.welcome.cipher = c->cipher;
    memcpy(w.u.welcome.pk, eph.pk, PROTO_KEY_LEN);
    memcpy(w.u.welcome.nonce, eph.nonce, PROTO_KEY_LEN);
    c->state = CONN_AUTH;
    return link_send(&c->link, &w);
}

/* A connection that has just authenticated takes a sender's place, or, with
 * every place taken, is told so (sealed, so its sender can trust it) and
 * closed: its sender retries, and gets in once another one is done. */
static void admit_sender(struct receiver *rx, struct conn *c)
{
    uint64_t now = uv_now(rx->loop);
    char text[160];

    if (rx->senders < rx->max_senders) {
        rx->senders++;
        c->sender = 1;
        return;
    }
    snprintf(text, sizeof(text), "serving %u senders, the most this receiver serves at once; "
             "retry later", rx->max_senders);
    /* One line a second at most: senders retrying must not flood the log. */
    if (now - rx->last_full_report >= 1000 || rx->last_full_report == 0) {
        rx->last_full_report = now;
        report_info("turned away %s: already serving %u senders, the most at once", c->peer,
                    rx->max_senders);
    }
    link_fail(&c->link, UV_ECONNREFUSED, PROTO_BUSY, text);
}

/* The sender's proof: one guess per connection, compared in constant time
 * before any frame about a file is even parsed; then ours, and from there
 * on everything is sealed. */
static int on_auth(struct conn *c, const struct proto_frame *fr)
{
    struct receiver *rx = c->rx;
    struct proto_frame mine = {.type = PROTO_AUTH};
    uint64_t now = uv_now(rx->loop);
    uint64_t retry_ms = 0;
    uint64_t held = 0;
    char text[160];
    char note[REPORT_BUDGET_NOTE];
    int rc = 0;

    if (guard_locked(&rx->guard, &c->addr, now, &retry_ms)) {
        /* Locked out while this connection waited: no guess is evaluated. */
        snprintf(text, sizeof(text),
                 "too many failed proofs of the secret from this address; retry in %llu s",
                 (unsigned long long)(retry_ms + 999) / 1000);
        if (report_budget_take(&rx->guard_lines, now, &held))
            report_info("turned away %s: %s%s", c->peer, text,
                        report_budget_note(held, note, sizeof(note)));
        link_fail(&c->link, XFER_EPROTO, PROTO_BUSY, text);
    } else if (!auth_tag_equal(c->keys.client_tag, fr->u.auth.tag)) {
        guard_auth_failed(&rx->guard, &c->addr, now);
        if (report_budget_take(&rx->refused_lines, now, &held))
            report_info("refused %s: it does not hold this receiver's secret%s", c->peer,
                        report_budget_note(held, note, sizeof(note)));
        link_fail(&c->link, XFER_EPROTO, PROTO_AUTH_FAILED,
                  "authentication failed: the sender does not hold this receiver's secret");
    } else {
        memcpy(mine.u.auth.tag, c->keys.server_tag, sizeof(mine.u.auth.tag));
        rc = link_send(&c->link, &mine); /* the last clear frame */
        if (rc == 0 && (link_seal_tx(&c->link, c->cipher, c->keys.s2c) < 0 ||
                        link_seal_rx(&c->link, c->cipher, c->keys.c2s, 1) < 0))
            rc = UV_EINVAL;
        if (rc == 0) {
            guard_auth_succeeded(&rx->guard, &c->addr);
            c->guarded = 0;
            c->state = CONN_IDLE;
            admit_sender(rx, c);
        }
    }
    auth_wipe(&c->keys, sizeof(c->keys));
    return rc;
}

static int on_offer(struct conn *c, const struct proto_frame *fr)
{
    struct receiver *rx = c->rx;
    const char *why = NULL;
    struct rfile *other;

    if (name_check(fr->u.offer.name, fr->u.offer.name_len, &why) < 0) {
        report_info("refused a file from %s: %s (%s)", c->peer, why,
                    report_escaped(fr->u.offer.name));
        send_text(c, PROTO_REFUSE, PROTO_BAD_NAME, "bad file name: %s", why);
        return 0;
    }
    other = file_find(rx, fr->u.offer.name);
    if (other != NULL) {
        if (!link_is_open(&other->owner->link)) {
            /* Its sender is gone; the file is released once its last
             * writes land, a moment from now. */
            send_text(c, PROTO_REFUSE, PROTO_RETRY,
                      "the previous transfer of this file is closing; retry");
            return 0;
        }
        if (memcmp(other->owner->session_id, c->session_id, PROTO_SESSION_ID_LEN) == 0 ||
            link_silent_ms(&other->owner->link) > other->owner->link.idle_ms / 2) {
            /* The same sender reconnected before we noticed its old
             * connection died, or the holder has missed a heartbeat (it
             * sends one every idle/3): retire it; the new sender retries. */
            link_close(&other->owner->link, XFER_ETIMEDOUT);
            send_text(c, PROTO_REFUSE, PROTO_RETRY,
                      "closing this sender's previous connection; retry");
            return 0;
        }
        report_info("refused %s from %s: another sender (%s) is transferring it",
                    report_escaped(fr->u.offer.name), c->peer, other->owner->peer);
        send_text(c, PROTO_REFUSE, PROTO_BUSY,
                  "another sender (%s) is transferring %s to this receiver; if that was an "
                  "earlier run of yours, the receiver drops it within %llu s: try again then",
                  other->owner->peer, fr->u.offer.name,
                  (unsigned long long)(other->owner->link.idle_ms / 1000 + 1));
        return 0;
    }
    if (rx->stopping) {
        send_text(c, PROTO_REFUSE, PROTO_RETRY, "receiver is shutting down");
        return 0;
    }
    c->file = file_new(rx, c, fr);
    if (c->file == NULL)
        return UV_ENOMEM;
    start_open(c, 0);
    return 0;
}

static int on_data(struct conn *c, const struct proto_frame *fr, uint8_t *buf)
{
    struct rfile *f = c->file;
    struct chunk *ch;

    if (fr->u.data.epoch > f->epoch) {
        link_buf_release(buf); /* an epoch we never announced */
        return XFER_EPROTO;
    }
    if (fr->u.data.epoch != f->epoch || f->rewind_pending || f->resync) {
        link_buf_release(buf); /* sent before the sender saw our REWIND */
        return 0;
    }
    if (f->end_received) {
        link_buf_release(buf); /* nothing follows END in its epoch */
        return XFER_EPROTO;
    }
    if (fr->u.data.offset != f->rx_next || f->rx_next >= f->id.size ||
        fr->u.data.len != journal_chunk_len(f->id.size, f->rx_next / PROTO_CHUNK_SIZE)) {
        /* Not the chunk we expect, or a damaged header: same remedy as a bad
         * hash. The write job will find nothing queued after it. */
        link_buf_release(buf);
        f->resync = 1;
        drop_queue(f);
        pump(c);
        return 0;
    }
    if (f->nqueue >= RX_QUEUE_MAX) {
        link_buf_release(buf); /* cannot happen: reading pauses when the queue fills */
        return UV_ENOBUFS;
    }
    ch = &f->queue[f->nqueue++];
    ch->buf = buf;
    ch->bytes = fr->u.data.bytes;
    ch->offset = fr->u.data.offset;
    ch->len = fr->u.data.len;
    ch->hash = fr->u.data.hash;
    f->rx_next += ch->len;
    if (f->nqueue >= RX_QUEUE_MAX)
        link_pause(&c->link);
    pump(c);
    return 0;
}

static int on_end(struct conn *c, const struct proto_frame *fr)
{
    struct rfile *f = c->file;

    if (fr->u.end.epoch > f->epoch)
        return XFER_EPROTO; /* an epoch we never announced */
    if (fr->u.end.epoch != f->epoch || f->rewind_pending || f->resync)
        return 0; /* superseded by a REWIND the sender has not seen yet */
    if (f->rx_next != f->id.size || f->end_received)
        return XFER_EPROTO;
    f->end_received = 1;
    f->end_hash = fr->u.end.hash;
    pump(c);
    return 0;
}

/* How much of a stranger's ERROR text is logged: any message of ours fits. */
#define RECEIVER_STRANGER_TEXT 200

/* Logs a sender's ERROR text. Until the first sealed record it is not
 * authenticated (before the proof, or in the clear just after it), so it may
 * be a stranger's, who could open connection after connection to fill the
 * log: those get a budget of lines, each cut to RECEIVER_STRANGER_TEXT
 * characters. A sealed ERROR is shown whole (PROTO_MAX_TEXT bounds it). */
static void log_peer_error(struct conn *c, const char *text)
{
    char full[PROTO_MAX_TEXT * 4];
    char cut[RECEIVER_STRANGER_TEXT + 1];
    char note[REPORT_BUDGET_NOTE];
    uint64_t held = 0;
    size_t len;

    if (c->link.rx_opened_one) {
        report_info("sender %s: %s", c->peer, report_escape(text, full, sizeof(full)));
        return;
    }
    if (!report_budget_take(&c->rx->stranger_errors, uv_now(c->rx->loop), &held))
        return;
    len = strlen(report_escape(text, full, sizeof(full)));
    if (len <= RECEIVER_STRANGER_TEXT) {
        report_info("sender %s, not authenticated: %s%s", c->peer, full,
                    report_budget_note(held, note, sizeof(note)));
        return;
    }
    report_info("sender %s, not authenticated: %s [cut from %zu bytes]%s", c->peer,
                report_escape(text, cut, sizeof(cut)), strlen(text),
                report_budget_note(held, note, sizeof(note)));
}

static int conn_on_frame(struct link *l, const struct proto_frame *fr, uint8_t *buf)
{
    struct conn *c = l->data;

    if (fr->type == PROTO_PING)
        return 0;
    if (fr->type == PROTO_ERROR) {
        log_peer_error(c, fr->u.error.text);
        link_close(l, 0);
        return 0;
    }
    switch (c->state) {
    case CONN_HELLO:
        if (fr->type == PROTO_HELLO)
            return on_hello(c, fr);
        break;
    case CONN_AUTH:
        if (fr->type == PROTO_AUTH)
            return on_auth(c, fr);
        break;
    case CONN_IDLE:
        if (fr->type == PROTO_OFFER)
            return on_offer(c, fr);
        if (fr->type == PROTO_BYE) {
            c->got_bye = 1;
            c->bye_status = fr->u.bye.status;
            c->state = CONN_BYE;
            link_finish(l);
            return 0;
        }
        break;
    case CONN_CHECKING:
        /* One answer to one NEED_HASH: a second could start a second
         * outcome for the same file while the first is in flight. */
        if (fr->type == PROTO_FILE_HASH && !c->file->have_their_hash) {
            c->file->their_hash = fr->u.file_hash;
            c->file->have_their_hash = 1;
            check_compare(c);
            return 0;
        }
        break;
    case CONN_RECEIVING:
        if (fr->type == PROTO_DATA)
            return on_data(c, fr, buf);
        if (fr->type == PROTO_END)
            return on_end(c, fr);
        break;
    case CONN_OPENING:
    case CONN_FORGETTING:
    case CONN_COMMITTING:
    case CONN_RESETTING:
    case CONN_BYE:
        /* Each waits for its job or its close: the sender has sent END (or
         * FILE_HASH, or OFFER) and must wait for our answer. TCP keeps its
         * frames in order, so nothing older than that can still arrive. */
        break;
    }
    link_buf_release(buf);
    return XFER_EPROTO;
}

static void conn_on_data_sent(struct link *l, void *ctx, int status)
{
    (void)l; /* the receiver sends no DATA */
    (void)ctx;
    (void)status;
}

static const struct link_ops conn_ops = {
    .on_frame = conn_on_frame,
    .on_data_sent = conn_on_data_sent,
    .on_close = conn_on_close,
};

/* ---- listening, ticking, shutting down ---------------------------------- */

/* A shorter idle timeout (tests) shortens the HELLO deadline with it. */
static uint64_t hello_deadline_ms(void)
{
    uint64_t idle = link_idle_timeout_ms();

    return idle < HELLO_DEADLINE_MS ? idle : HELLO_DEADLINE_MS;
}

static void on_ticker(uv_timer_t *t)
{
    struct receiver *rx = t->data;
    uint64_t now = uv_now(rx->loop);

    for (struct conn *c = rx->conns; c != NULL; c = c->next) {
        /* A total deadline, not a per-read one: a peer dripping a byte at a
         * time gets no more time than a silent one. */
        if ((c->state == CONN_HELLO || c->state == CONN_AUTH) &&
            now - c->accepted_ms > hello_deadline_ms() && link_is_open(&c->link)) {
            link_fail(&c->link, XFER_ETIMEDOUT, PROTO_TIMEOUT, "handshake not finished in time");
            continue;
        }
        pump(c);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h; /* memory is in struct receiver */
}

/* receiver_open()'s memory goes with the last of its three handles. */
static void on_rx_handle_closed(uv_handle_t *h)
{
    struct receiver *rx = h->data;

    if (++rx->handles_closed == 3 && rx->allocated) {
        (void)close(rx->dirfd); /* a directory, read-only */
        free(rx);
    }
}

static void receiver_maybe_exit(struct receiver *rx)
{
    if (!rx->stopping)
        return;
    for (int i = 0; i < 2; i++) {
        if (rx->listening[i] && !uv_is_closing((uv_handle_t *)&rx->listeners[i]))
            uv_close((uv_handle_t *)&rx->listeners[i], on_listener_closed);
    }
    for (struct conn *c = rx->conns; c != NULL; c = c->next) {
        if (link_is_open(&c->link))
            link_fail(&c->link, 0, PROTO_SHUTDOWN, "receiver is shutting down");
    }
    if (rx->conns != NULL)
        return;
    if (!uv_is_closing((uv_handle_t *)&rx->ticker))
        uv_close((uv_handle_t *)&rx->ticker, on_rx_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&rx->sigint))
        uv_close((uv_handle_t *)&rx->sigint, on_rx_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&rx->sigterm))
        uv_close((uv_handle_t *)&rx->sigterm, on_rx_handle_closed);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct receiver *rx = s->data;

    if (rx->signals++ > 0) {
        report_info("second signal: exiting now; partials and journals are consistent up to "
                    "the last confirmed offset");
        _exit(XFER_EXIT_INTERRUPTED);
    }
    report_info("%s: shutting down; partials are kept for resume",
                signum == SIGINT ? "interrupted" : "terminated");
    rx->exit_code = rx->opts->once ? XFER_EXIT_INTERRUPTED : XFER_EXIT_OK;
    rx->stopping = 1;
    receiver_maybe_exit(rx);
}

/* At a pre-authentication cap, the newcomer takes the place of an older
 * pending connection (from its own address at the per-address cap, from
 * anywhere at the global one): first one that has sent nothing at all, else
 * the oldest. A sender says HELLO as soon as it connects and needs one round
 * trip, so idle or stalled connections can no longer keep it out for the
 * whole handshake deadline; flooding only evicts floods. Returns whether a
 * connection was dropped. */
static int evict_pending(struct receiver *rx, const struct conn *newcomer,
                         const struct guard_addr *from)
{
    struct conn *victim = NULL;
    char note[REPORT_BUDGET_NOTE];
    uint64_t held = 0;

    for (struct conn *c = rx->conns; c != NULL; c = c->next) {
        int silent;
        int victim_silent;

        if (c == newcomer || !c->guarded || !link_is_open(&c->link))
            continue;
        if (from != NULL && memcmp(&c->addr, from, sizeof(*from)) != 0)
            continue;
        silent = c->link.rx_bytes == 0;
        victim_silent = victim != NULL && victim->link.rx_bytes == 0;
        if (victim == NULL || (silent && !victim_silent) ||
            (silent == victim_silent && c->accepted_ms < victim->accepted_ms))
            victim = c;
    }
    if (victim == NULL)
        return 0;
    /* Shares the turned-away lines' budget. */
    if (report_budget_take(&rx->guard_lines, uv_now(rx->loop), &held))
        report_info("dropped %s, %s in its handshake, to make room for %s%s", victim->peer,
                    victim->link.rx_bytes == 0 ? "silent" : "the oldest", newcomer->peer,
                    report_budget_note(held, note, sizeof(note)));
    /* It stops counting now, not when its close completes. */
    guard_release(&rx->guard, &victim->addr);
    victim->guarded = 0;
    link_fail(&victim->link, UV_ECONNREFUSED, PROTO_BUSY,
              "too many connections in their handshake; this one was the oldest; retry later");
    return 1;
}

/* Counts a new connection against the pre-authentication limits; one over
 * them is told why and closed before it can cost anything. */
static void admit(struct receiver *rx, struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    const char *why = NULL;
    uint64_t retry_ms = 0;
    uint64_t now = uv_now(rx->loop);
    uint64_t held = 0;
    char text[160];
    char note[REPORT_BUDGET_NOTE];

    if (uv_tcp_getpeername(&c->link.tcp, (struct sockaddr *)&ss, &len) < 0 ||
        guard_addr_from(&c->addr, &ss) < 0) {
        link_close(&c->link, UV_ECONNABORTED);
        return;
    }
    switch (guard_full(&rx->guard, &c->addr, now)) {
    case GUARD_FULL_ADDR:
        (void)evict_pending(rx, c, &c->addr); /* none evictable: admit refuses */
        break;
    case GUARD_FULL_ALL:
        (void)evict_pending(rx, c, NULL);
        break;
    case GUARD_ROOM:
        break;
    }
    if (guard_admit(&rx->guard, &c->addr, now, &why, &retry_ms) == 0) {
        c->guarded = 1;
        return;
    }
    /* A flood must not flood the log too. */
    if (report_budget_take(&rx->guard_lines, now, &held))
        report_info("turned away %s: %s%s", c->peer, why,
                    report_budget_note(held, note, sizeof(note)));
    if (retry_ms > 0)
        snprintf(text, sizeof(text), "%s; retry in %llu s", why,
                 (unsigned long long)(retry_ms + 999) / 1000);
    else
        snprintf(text, sizeof(text), "%s; retry later", why);
    link_fail(&c->link, UV_ECONNREFUSED, PROTO_BUSY, text);
}

/* A connection whose tcp handle is initialised but not yet connected. */
static struct conn *conn_new(struct receiver *rx)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->rx = rx;
    if (uv_tcp_init(rx->loop, &c->link.tcp) < 0) {
        free(c);
        return NULL;
    }
    c->next = rx->conns;
    rx->conns = c;
    c->accepted_ms = uv_now(rx->loop);
    c->link.tcp.data = &c->link;
    c->link.data = c;
    c->link.ops = &conn_ops;
    return c;
}

/* Its socket could not be taken over: close the bare handle. link_close()
 * closes the link's timer too, which must then exist: uv_close() aborts on
 * a handle never initialised. */
static void conn_abort(struct conn *c)
{
    (void)uv_timer_init(c->rx->loop, &c->link.timer); /* fails only on a bad loop */
    c->link.timer.data = &c->link;
    c->link.handles_open = 2;
    c->link.state = LINK_OPEN;
    link_close(&c->link, UV_ECONNABORTED);
}

/* The socket is connected: the session starts, waiting for HELLO. */
static int conn_start(struct conn *c)
{
    link_peer_name(&c->link, c->peer, sizeof(c->peer));
    return link_init(&c->link, &conn_ops, c); /* on failure it closed itself */
}

static void on_connection(uv_stream_t *server, int status)
{
    struct receiver *rx = server->data;
    struct conn *c;

    if (status < 0) {
        /* libuv retries at once after telling us, so this can come in a
         * burst (out of descriptors, say): one line a second at most. */
        uint64_t now = uv_now(rx->loop);

        if (now - rx->last_accept_report >= 1000 || rx->last_accept_report == 0) {
            rx->last_accept_report = now;
            report_error("accepting a connection failed: %s%s", uv_strerror(status),
                         status == UV_EMFILE || status == UV_ENFILE
                             ? "; raise the open-files limit (ulimit -n)"
                             : "");
        }
        return;
    }
    c = conn_new(rx);
    if (c == NULL)
        return; /* the pending connection stays in the backlog */
    if (uv_accept(server, (uv_stream_t *)&c->link.tcp) < 0) {
        conn_abort(c);
        return;
    }
    if (conn_start(c) < 0)
        return;
    admit(rx, c);
}

static int listen_on(struct receiver *rx, int slot, const char *addr, int v6only, char *desc,
                     size_t cap)
{
    struct sockaddr_storage ss;
    uv_tcp_t *t = &rx->listeners[slot];
    int namelen = sizeof(ss);
    char host[64];
    int rc;

    if (strchr(addr, ':') != NULL)
        rc = uv_ip6_addr(addr, rx->opts->port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(addr, rx->opts->port, (struct sockaddr_in *)&ss);
    if (rc < 0)
        return rc;
    rc = uv_tcp_init(rx->loop, t);
    if (rc < 0)
        return rc;
    t->data = rx;
    rc = uv_tcp_bind(t, (struct sockaddr *)&ss, v6only ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)t, 128, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(t, (struct sockaddr *)&ss, &namelen);
    if (rc < 0) {
        uv_close((uv_handle_t *)t, NULL);
        return rc;
    }
    rx->listening[slot] = 1;
    if (ss.ss_family == AF_INET6) {
        (void)uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
        snprintf(desc, cap, "[%s]:%d", host, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        (void)uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
        snprintf(desc, cap, "%s:%d", host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    return 0;
}

/* --bind takes an IPv4 or IPv6 literal, a bracketed IPv6 literal, or a
 * name, resolved once at start-up. */
static int resolve_bind(const char *arg, char *out, size_t cap)
{
    struct addrinfo hints, *res = NULL;
    size_t n = strlen(arg);
    int rc;

    if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') {
        arg++;
        n -= 2;
    }
    if (n >= cap)
        return UV_EINVAL;
    memcpy(out, arg, n);
    out[n] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(out, NULL, &hints, &res);
    if (rc != 0)
        return UV_EAI_NONAME;
    rc = 0;
    if (res->ai_family == AF_INET6)
        rc = uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, out, cap);
    else
        rc = uv_ip4_name((struct sockaddr_in *)res->ai_addr, out, cap);
    freeaddrinfo(res);
    return rc;
}

/* With --port 0 the system picked the port: remember which. */
static void learn_port(struct receiver *rx)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (rx->opts->port != 0 || uv_tcp_getsockname(&rx->listeners[0], (struct sockaddr *)&ss,
                                                   &len) < 0)
        return;
    if (ss.ss_family == AF_INET6)
        ((struct cli_opts *)rx->opts)->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        ((struct cli_opts *)rx->opts)->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int start_listening(struct receiver *rx)
{
    char d4[80] = "", d6[80] = "";
    int rc4, rc6;

    if (rx->opts->bind != NULL) {
        char addr[256];
        int rc = resolve_bind(rx->opts->bind, addr, sizeof(addr));

        if (rc == 0)
            rc = listen_on(rx, 0, addr, 0, d4, sizeof(d4));
        if (rc < 0) {
            report_error("cannot listen on %s port %u: %s; pick another --bind or --port",
                         rx->opts->bind, rx->opts->port, uv_strerror(rc));
            return rc;
        }
        learn_port(rx);
        report_info("listening on %s", d4);
        return 0;
    }
    rc4 = listen_on(rx, 0, "0.0.0.0", 0, d4, sizeof(d4));
    if (rc4 == 0)
        learn_port(rx); /* an ephemeral port: IPv6 then uses the same number */
    /* Either family alone is enough: hosts without IPv6 (or IPv4) exist. */
    rc6 = listen_on(rx, 1, "::", 1, d6, sizeof(d6));
    if (rc4 < 0 && rc6 < 0) {
        report_error("cannot listen on port %u: %s; pick another --port", rx->opts->port,
                     uv_strerror(rc4));
        return rc4;
    }
    if (rc4 == 0 && rc6 == 0)
        report_info("listening on %s and %s", d4, d6);
    else
        report_info("listening on %s", rc4 == 0 ? d4 : d6);
    return 0;
}

/* The address a sender should use: the --bind address, else this host's
 * first address that is not loopback, else its name. */
static void sender_host(const struct receiver *rx, char *out, size_t cap)
{
    uv_interface_address_t *ifs = NULL;
    int n = 0;
    const char *b = rx->opts->bind;

    if (b != NULL && strcmp(b, "0.0.0.0") != 0 && strcmp(b, "::") != 0 &&
        strcmp(b, "[::]") != 0) {
        if (strchr(b, ':') != NULL && b[0] != '[')
            snprintf(out, cap, "[%s]", b);
        else
            snprintf(out, cap, "%s", b);
        return;
    }
    if (uv_interface_addresses(&ifs, &n) == 0) {
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < n; i++) {
                char ip[64];

                if (ifs[i].is_internal)
                    continue;
                if (pass == 0 && ifs[i].address.address4.sin_family == AF_INET) {
                    (void)uv_ip4_name(&ifs[i].address.address4, ip, sizeof(ip));
                    snprintf(out, cap, "%s", ip);
                    uv_free_interface_addresses(ifs, n);
                    return;
                }
                if (pass == 1 && ifs[i].address.address6.sin6_family == AF_INET6 &&
                    !IN6_IS_ADDR_LINKLOCAL(&ifs[i].address.address6.sin6_addr)) {
                    (void)uv_ip6_name(&ifs[i].address.address6, ip, sizeof(ip));
                    snprintf(out, cap, "[%s]", ip);
                    uv_free_interface_addresses(ifs, n);
                    return;
                }
            }
        }
        uv_free_interface_addresses(ifs, n);
    }
    {
        size_t len = cap;

        if (uv_os_gethostname(out, &len) != 0)
            snprintf(out, cap, "127.0.0.1");
    }
}

/* Printed even under -q: without it nobody can send to this receiver. */
static void print_sender_command(const struct receiver *rx)
{
    char host[300];

    sender_host(rx, host, sizeof(host));
    fprintf(stderr,
            "xfer: no secret given, so this receiver made one up; it lasts until the receiver "
            "stops.\n"
            "xfer: on the sending machine, run:\n"
            "  XFER_SECRET=%s xfer send FILE %s:%u\n",
            rx->generated_secret, host, rx->opts->port);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg; /* only used at the very end, after an error */
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Raises the soft open-files limit to the hard one: each sender costs
 * descriptors, and the soft limit is often 1024 of a far higher hard one.
 * Where that fails, the soft limit stays, and the cap on senders follows it. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl); /* e.g. a hard limit past the kernel's: keep ours */
}

/* How many senders the open-files limit leaves room for: after RX_FDS_OWN,
 * half of the rest (at most GUARD_MAX_PENDING, one each) is kept for
 * connections in their handshake, and each sender takes RX_FDS_PER_SENDER;
 * never fewer than 1 nor more than RX_MAX_SENDERS. */
static unsigned senders_allowed(uint64_t nofile)
{
    uint64_t avail = nofile > RX_FDS_OWN ? nofile - RX_FDS_OWN : 0;
    uint64_t handshakes = avail / 2 < GUARD_MAX_PENDING ? avail / 2 : GUARD_MAX_PENDING;
    uint64_t n = (avail - handshakes) / RX_FDS_PER_SENDER;

    if (n < 1)
        return 1;
    return n < RX_MAX_SENDERS ? (unsigned)n : RX_MAX_SENDERS;
}

/* What every connection shares: --dir, the guard, the ticker, and the
 * signal handles (initialised, not started). Returns 0 or an XFER_EXIT_*. */
static int receiver_setup(struct receiver *rx, uv_loop_t *loop, const struct cli_opts *o,
                          const struct auth_psk *psk)
{
    struct rlimit rl;
    struct stat st;

    memset(rx, 0, sizeof(*rx));
    rx->opts = o;
    rx->psk = psk;
    rx->loop = loop;
    rx->nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0;
    rx->max_senders = senders_allowed(rx->nofile);
    rx->umask = umask(0);
    umask(rx->umask);
    rx->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rx->dirfd < 0 || fstat(rx->dirfd, &st) < 0) {
        report_error("cannot use directory %s: %s; create it or pass another --dir", o->dir,
                     strerror(errno));
        return XFER_EXIT_IO;
    }
    if (faccessat(rx->dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
        report_error("cannot write to directory %s: %s; fix its permissions or pass another "
                     "--dir",
                     o->dir, strerror(errno));
        (void)close(rx->dirfd);
        return XFER_EXIT_IO;
    }
    if (uv_timer_init(rx->loop, &rx->ticker) < 0 || uv_signal_init(rx->loop, &rx->sigint) < 0 ||
        uv_signal_init(rx->loop, &rx->sigterm) < 0)
        return XFER_EXIT_INTERNAL;
    rx->ticker.data = rx;
    rx->sigint.data = rx;
    rx->sigterm.data = rx;
    return 0;
}

int receiver_open(struct receiver **rxp, uv_loop_t *loop, const struct cli_opts *o,
                  const struct auth_psk *psk)
{
    struct receiver *rx = malloc(sizeof(*rx));
    int rc;

    *rxp = NULL;
    if (rx == NULL)
        return UV_ENOMEM;
    rc = receiver_setup(rx, loop, o, psk);
    if (rc == XFER_EXIT_IO) {
        free(rx);
        return UV_EIO;
    }
    rx->allocated = 1;
    if (rc != 0) {
        /* Only the ticker was initialised: the first uv_signal_init() on a
         * loop is the one that can fail, and then the second is not tried. */
        rx->handles_closed = 2;
        uv_close((uv_handle_t *)&rx->ticker, on_rx_handle_closed);
        return UV_EMFILE;
    }
    (void)uv_timer_start(&rx->ticker, on_ticker, 100, 100);
    *rxp = rx;
    return 0;
}

int receiver_serve(struct receiver *rx, uv_os_sock_t fd)
{
    struct conn *c = conn_new(rx);
    int rc;

    if (c == NULL) {
        (void)close(fd); /* ours now, and unused */
        return UV_ENOMEM;
    }
    rc = uv_tcp_open(&c->link.tcp, fd);
    if (rc < 0) {
        (void)close(fd); /* the handle did not take it */
        conn_abort(c);
        return rc;
    }
    return conn_start(c);
}

void receiver_close(struct receiver *rx)
{
    rx->stopping = 1;
    receiver_maybe_exit(rx);
}

int receiver_run(const struct cli_opts *o, const struct auth_psk *psk, const char *generated)
{
    struct receiver rx;
    int rc;

    raise_fd_limit();
    rc = receiver_setup(&rx, uv_default_loop(), o, psk);
    if (rc != 0)
        return rc;
    if (rx.max_senders < RX_MAX_SENDERS)
        report_info("the open-files limit (%" PRIu64 ") lets this receiver serve %u senders at "
                    "once, not %d; raise it (ulimit -n) to serve more",
                    rx.nofile, rx.max_senders, RX_MAX_SENDERS);
    rx.generated_secret = generated;
    /* Before the listening line: whoever waits for it and then stops us gets a clean
     * shutdown, not a death by the signal. The loop delivers it once it runs. */
    (void)uv_signal_start(&rx.sigint, on_signal, SIGINT);
    (void)uv_signal_start(&rx.sigterm, on_signal, SIGTERM);
    rc = start_listening(&rx);
    if (rc < 0) {
        uv_walk(rx.loop, walk_close, NULL);
        (void)uv_run(rx.loop, UV_RUN_DEFAULT);
        (void)close(rx.dirfd);
        return XFER_EXIT_IO;
    }
    if (rx.generated_secret != NULL)
        print_sender_command(&rx);
    (void)uv_timer_start(&rx.ticker, on_ticker, 100, 100);
    (void)uv_run(rx.loop, UV_RUN_DEFAULT);
    (void)close(rx.dirfd);
    rc = uv_loop_close(rx.loop);
    if (rc != 0)
        report_error("internal: handles left open at exit (%s)", uv_strerror(rc));
    return rx.exit_code;
}
