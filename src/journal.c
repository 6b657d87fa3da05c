#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xfer/buf.h"
#include "xfer/err.h"
#include "xfer/fileio.h"
#include "xfer/journal.h"

/* magic, version, chunk size, xxhash version, state size, size, mtime,
 * mtime nsec, name length, name, checksum */
#define HEADER_FIXED (4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 2 + 8)
/* magic, from_chunk, n, confirmed, state length, checksum */
#define RECORD_FIXED (4 + 8 + 4 + 8 + 4 + 8)
/* Caps one record's hash list so a record stays a bounded write. */
#define RECORD_MAX_HASHES 65536u
/* Journals smaller than this are never worth compacting. */
#define JOURNAL_COMPACT_MIN (256u * 1024u)

/* XXH3's streaming state points at the library's default secret, whose
 * address differs from one process to the next. It is stored as NULL and
 * re-pointed at this process's secret when loaded. */
static void state_export(const XXH3_state_t *st, uint8_t *out)
{
    XXH3_state_t copy;

    memcpy(&copy, st, sizeof(copy));
    copy.extSecret = NULL;
    memcpy(out, &copy, sizeof(copy));
}

/* A state that passed its record's checksum may still be one no XXH3 call
 * made (a journal edited by hand, or written by a bug), and XXH3 trusts the
 * fields that index its buffer and secret: those must be in range. Returns
 * 0, or -1 with st reset. */
static int state_import(XXH3_state_t *st, const uint8_t *in)
{
    XXH3_state_t fresh;

    (void)XXH3_128bits_reset(&fresh); /* cannot fail on a valid state */
    memcpy(st, in, sizeof(*st));
    st->extSecret = fresh.extSecret;
    if (st->useSeed != fresh.useSeed || st->seed != fresh.seed ||
        st->nbStripesPerBlock != fresh.nbStripesPerBlock ||
        st->secretLimit != fresh.secretLimit || st->bufferedSize > sizeof(st->buffer) ||
        st->nbStripesSoFar >= st->nbStripesPerBlock) {
        memcpy(st, &fresh, sizeof(*st));
        return -1;
    }
    return 0;
}

void journal_init(struct journal *j)
{
    memset(j, 0, sizeof(*j));
    j->fd = -1;
    j->dirfd = -1;
}

uint64_t journal_chunk_len(uint64_t size, uint64_t chunk)
{
    uint64_t start = chunk * PROTO_CHUNK_SIZE;

    if (start >= size)
        return 0;
    if (size - start < PROTO_CHUNK_SIZE)
        return size - start;
    return PROTO_CHUNK_SIZE;
}

static uint64_t chunks_below(uint64_t offset)
{
    return (offset + PROTO_CHUNK_SIZE - 1) / PROTO_CHUNK_SIZE;
}

static int reserve_hashes(struct journal *j, uint64_t n)
{
    uint64_t cap = j->cap ? j->cap : 64;
    uint64_t *p;

    if (n <= j->cap)
        return 0;
    while (cap < n)
        cap *= 2;
    p = realloc(j->hashes, cap * sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    j->hashes = p;
    j->cap = cap;
    return 0;
}

static int ensure_state(struct journal *j)
{
    if (j->state != NULL)
        return 0;
    j->state = fileio_hash_state_new();
    if (j->state == NULL)
        return -ENOMEM;
    return XXH3_128bits_reset(j->state) == XXH_OK ? 0 : -EINVAL;
}

static void forget_records(struct journal *j)
{
    j->confirmed = 0;
    j->nhashes = 0;
    j->state_valid = 1;
    j->state_missing = 0;
    if (j->state != NULL)
        (void)XXH3_128bits_reset(j->state); /* cannot fail on a valid state */
}

static int parse_header(struct journal *j, struct buf_reader *r)
{
    uint32_t magic, version, chunk, xxh_version, state_size;
    uint64_t mtime, sum;
    uint16_t name_len;
    size_t start = r->pos;

    if (buf_get_u32(r, &magic) < 0 || buf_get_u32(r, &version) < 0 ||
        buf_get_u32(r, &chunk) < 0 || buf_get_u32(r, &xxh_version) < 0 ||
        buf_get_u32(r, &state_size) < 0 || buf_get_u64(r, &j->id.size) < 0 ||
        buf_get_u64(r, &mtime) < 0 || buf_get_u32(r, &j->id.mtime_nsec) < 0 ||
        buf_get_u16(r, &name_len) < 0)
        return XFER_ECORRUPT;
    if (magic != JOURNAL_MAGIC || version != JOURNAL_VERSION || chunk != PROTO_CHUNK_SIZE ||
        name_len > PROTO_MAX_NAME || j->id.size > INT64_MAX)
        return XFER_ECORRUPT;
    if (buf_get_bytes(r, j->id.name, name_len) < 0)
        return XFER_ECORRUPT;
    j->id.name[name_len] = '\0';
    j->id.mtime_sec = (int64_t)mtime;
    if (buf_get_u64(r, &sum) < 0 || sum != XXH3_64bits(r->p + start, r->pos - 8 - start))
        return XFER_ECORRUPT;
    /* A state written by another xxHash build cannot be trusted byte for
     * byte; the partial is then restarted rather than resumed. */
    j->state_valid = xxh_version == XXH_versionNumber() && state_size == sizeof(XXH3_state_t);
    return 0;
}

/* Returns 1 when a record was applied, 0 at a torn or damaged record. */
static int parse_record(struct journal *j, struct buf_reader *r)
{
    uint32_t magic, n, state_len;
    uint64_t from, confirmed, sum;
    const uint8_t *state = NULL;
    const uint8_t *hashes = NULL;
    size_t start = r->pos;

    if (buf_get_u32(r, &magic) < 0 || buf_get_u64(r, &from) < 0 || buf_get_u32(r, &n) < 0 ||
        buf_get_u64(r, &confirmed) < 0 || buf_get_u32(r, &state_len) < 0)
        return 0;
    if (magic != JOURNAL_RECORD_MAGIC || n > RECORD_MAX_HASHES || from > j->nhashes ||
        state_len > 4096)
        return 0;
    if (buf_peek_bytes(r, &state, state_len) < 0 || buf_peek_bytes(r, &hashes, (size_t)n * 8) < 0)
        return 0;
    if (buf_get_u64(r, &sum) < 0 || sum != XXH3_64bits(r->p + start, r->pos - 8 - start))
        return 0;
    /* Confirmed offsets are whole chunks, or the end of the file. */
    if (from + n > JOURNAL_MAX_CHUNKS || confirmed > j->id.size ||
        chunks_below(confirmed) != from + n ||
        (confirmed % PROTO_CHUNK_SIZE != 0 && confirmed != j->id.size))
        return 0;
    if (reserve_hashes(j, from + n) < 0)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        struct buf_reader hr;

        buf_reader_init(&hr, hashes + (size_t)i * 8, 8);
        (void)buf_get_u64(&hr, &j->hashes[from + i]); /* 8 bytes are there */
    }
    j->nhashes = from + n;
    j->confirmed = confirmed;
    /* A record without a state (only ever followed by one with it, inside a
     * compacted journal) leaves the journal unresumable until one comes. */
    j->state_missing = state_len == 0;
    if (state_len == sizeof(XXH3_state_t)) {
        if (state_import(j->state, state) < 0)
            j->state_valid = 0; /* the partial restarts rather than resumes */
    } else if (state_len != 0) {
        j->state_valid = 0;
    }
    return 1;
}

int journal_parse(struct journal *j, const uint8_t *p, size_t len, uint64_t *valid_len)
{
    struct buf_reader r;
    int rc;

    *valid_len = 0;
    rc = ensure_state(j);
    if (rc < 0)
        return rc;
    forget_records(j);
    buf_reader_init(&r, p, len);
    rc = parse_header(j, &r);
    if (rc < 0)
        return rc;
    *valid_len = r.pos;
    while (buf_remaining(&r) > 0 && parse_record(j, &r))
        *valid_len = r.pos;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int sync_fd(int fd)
{
    if (fdatasync(fd) < 0)
        return -errno;
    return 0;
}

/* Makes a rename of the journal durable: fsyncs the directory it is in. */
static int sync_parent(const struct journal *j)
{
    char dir[sizeof(j->path)];
    char *slash;
    int fd;
    int rc = 0;

    snprintf(dir, sizeof(dir), "%s", j->path);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        *slash = '\0';
    if (strcmp(dir, ".") == 0) {
        fd = openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
    } else {
        fd = fileio_open_beneath(j->dirfd, dir, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
            return fd;
    }
    if (fsync(fd) < 0)
        rc = -errno;
    (void)close(fd); /* read-only */
    return rc;
}

/* Encodes the header into hdr (header_len() bytes); returns its length. */
static size_t encode_header(const struct journal *j, uint8_t *hdr)
{
    struct buf_writer w;
    size_t name_len = strlen(j->id.name);

    buf_writer_init(&w, hdr, HEADER_FIXED + name_len);
    (void)buf_put_u32(&w, JOURNAL_MAGIC); /* hdr is sized for all of it */
    (void)buf_put_u32(&w, JOURNAL_VERSION);
    (void)buf_put_u32(&w, PROTO_CHUNK_SIZE);
    (void)buf_put_u32(&w, XXH_versionNumber());
    (void)buf_put_u32(&w, sizeof(XXH3_state_t));
    (void)buf_put_u64(&w, j->id.size);
    (void)buf_put_u64(&w, (uint64_t)j->id.mtime_sec);
    (void)buf_put_u32(&w, j->id.mtime_nsec);
    (void)buf_put_u16(&w, (uint16_t)name_len);
    (void)buf_put_bytes(&w, j->id.name, name_len);
    (void)buf_put_u64(&w, XXH3_64bits(hdr, w.pos));
    return w.pos;
}

int journal_reset(struct journal *j)
{
    uint8_t hdr[HEADER_FIXED + PROTO_MAX_NAME];
    size_t len;
    int rc = ensure_state(j);

    if (rc < 0)
        return rc;
    len = encode_header(j, hdr);
    /* Truncate first: a crash between the two leaves an empty journal, which
     * loads as "no journal", never as the old records under a new header. */
    if (ftruncate(j->fd, 0) < 0)
        return -errno;
    rc = write_all(j->fd, hdr, len, 0);
    if (rc == 0)
        rc = sync_fd(j->fd);
    if (rc < 0)
        return rc;
    j->end = len;
    forget_records(j);
    return 0;
}

static int read_whole(int fd, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *p = NULL;
    size_t got = 0;
    int rc;

    *out = NULL;
    *len = 0;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size < 0 || (uint64_t)st.st_size > (UINT64_C(1) << 36))
        return XFER_ECORRUPT;
    p = malloc((size_t)st.st_size + 1);
    if (p == NULL)
        return -ENOMEM;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *out = p;
    *len = got;
    return 0;
fail:
    free(p);
    return rc;
}

static int same_identity(const struct journal_identity *a, const struct journal_identity *b)
{
    return a->size == b->size && a->mtime_sec == b->mtime_sec &&
           a->mtime_nsec == b->mtime_nsec && strcmp(a->name, b->name) == 0;
}

int journal_open(struct journal *j, int dirfd, const char *path,
                 const struct journal_identity *id, int *resumed)
{
    uint8_t *image = NULL;
    size_t len = 0;
    uint64_t valid = 0;
    int rc;

    *resumed = 0;
    journal_close(j);
    if (strlen(path) >= sizeof(j->path))
        return -ENAMETOOLONG;
    snprintf(j->path, sizeof(j->path), "%s", path);
    j->dirfd = dirfd;
    /* An existing journal is checked before anything is written to it; a
     * new one is created exclusively, so it is the file we just made. */
    j->fd = fileio_open_beneath(dirfd, path, O_RDWR | O_NONBLOCK, 0);
    if (j->fd == -ENOENT)
        j->fd = fileio_open_beneath(dirfd, path, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600);
    if (j->fd < 0) {
        rc = j->fd;
        goto fail;
    }
    rc = fileio_check_private(j->fd); /* a FIFO, a device or a hard link: not ours */
    if (rc < 0)
        goto fail;
    rc = read_whole(j->fd, &image, &len);
    if (rc == -ENOMEM)
        goto fail;
    if (rc == 0)
        rc = journal_parse(j, image, len, &valid);
    if (rc == -ENOMEM)
        goto fail;
    if (rc < 0 || !same_identity(&j->id, id) || !j->state_valid || j->state_missing) {
        j->id = *id;
        rc = journal_reset(j);
        if (rc < 0)
            goto fail;
    } else {
        if (valid < len && ftruncate(j->fd, (off_t)valid) < 0) {
            rc = -errno;
            goto fail;
        }
        j->end = valid;
        *resumed = j->confirmed > 0;
    }
    free(image);
    return 0;
fail:
    free(image);
    journal_close(j);
    return rc;
}

static size_t record_len(uint64_t n, int with_state)
{
    return RECORD_FIXED + (with_state ? sizeof(XXH3_state_t) : 0) + (size_t)n * 8;
}

/* Encodes one record into rec (record_len() bytes); state may be NULL. */
static size_t encode_record(uint8_t *rec, uint64_t from_chunk, const uint64_t *hashes, uint64_t n,
                            uint64_t confirmed, const XXH3_state_t *state)
{
    struct buf_writer w;

    buf_writer_init(&w, rec, record_len(n, state != NULL));
    (void)buf_put_u32(&w, JOURNAL_RECORD_MAGIC); /* rec is sized for all of it */
    (void)buf_put_u64(&w, from_chunk);
    (void)buf_put_u32(&w, (uint32_t)n);
    (void)buf_put_u64(&w, confirmed);
    (void)buf_put_u32(&w, state != NULL ? sizeof(XXH3_state_t) : 0);
    if (state != NULL) {
        state_export(state, rec + w.pos);
        w.pos += sizeof(XXH3_state_t);
    }
    for (uint64_t i = 0; i < n; i++)
        (void)buf_put_u64(&w, hashes[i]);
    (void)buf_put_u64(&w, XXH3_64bits(rec, w.pos));
    return w.pos;
}

static size_t header_len(const struct journal *j)
{
    return HEADER_FIXED + strlen(j->id.name);
}

/* What a journal holding only the current hashes and state would take. */
static uint64_t compact_len(const struct journal *j)
{
    uint64_t records = j->nhashes / RECORD_MAX_HASHES + 1;

    return header_len(j) + records * RECORD_FIXED + sizeof(XXH3_state_t) + j->nhashes * 8;
}

/* Rewrites the journal as its header plus the fewest records, each full
 * of hashes, the state in the last. Written beside it and renamed over it,
 * so a crash leaves the old journal or the new one, never a mix. */
static int journal_compact(struct journal *j)
{
    char tmp[sizeof(j->path) + 8];
    uint8_t *image = NULL;
    size_t len = (size_t)compact_len(j);
    size_t pos;
    uint64_t chunk = 0;
    int fd = -1;
    int rc;

    snprintf(tmp, sizeof(tmp), "%s.new", j->path);
    image = malloc(len);
    if (image == NULL)
        return -ENOMEM;
    pos = encode_header(j, image);
    do {
        uint64_t n = j->nhashes - chunk;
        int last = n <= RECORD_MAX_HASHES;
        uint64_t end;

        if (!last)
            n = RECORD_MAX_HASHES;
        end = last ? j->confirmed : (chunk + n) * PROTO_CHUNK_SIZE;
        pos += encode_record(image + pos, chunk, j->hashes + chunk, n, end,
                             last ? j->state : NULL);
        chunk += n;
    } while (chunk < j->nhashes);
    /* Never through a link planted at its name. */
    fd = fileio_create_fresh(j->dirfd, tmp, 0600);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = write_all(fd, image, pos, 0);
    if (rc == 0)
        rc = sync_fd(fd);
    if (rc == 0 && renameat(j->dirfd, tmp, j->dirfd, j->path) < 0)
        rc = -errno;
    if (rc < 0) {
        (void)unlinkat(j->dirfd, tmp, 0);
        goto out;
    }
    (void)close(j->fd); /* the old journal, now unlinked; nothing to flush */
    j->fd = fd;
    fd = -1;
    j->end = pos;
    rc = sync_parent(j);
out:
    if (fd >= 0)
        (void)close(fd);
    free(image);
    return rc;
}

int journal_commit(struct journal *j, uint64_t from_chunk, const uint64_t *hashes, uint64_t n,
                   uint64_t confirmed, const XXH3_state_t *state)
{
    uint8_t *rec = NULL;
    size_t len;
    int rc;

    /* The same rules journal_parse() enforces: a record it would reject
     * must never be written, or every record after it is lost on reload. */
    if (from_chunk > j->nhashes || n > RECORD_MAX_HASHES || confirmed > j->id.size ||
        chunks_below(confirmed) != from_chunk + n ||
        (confirmed % PROTO_CHUNK_SIZE != 0 && confirmed != j->id.size))
        return -EINVAL;
    rc = reserve_hashes(j, from_chunk + n);
    if (rc < 0)
        return rc;
    rec = malloc(record_len(n, 1));
    if (rec == NULL)
        return -ENOMEM;
    len = encode_record(rec, from_chunk, hashes, n, confirmed, state);
    rc = write_all(j->fd, rec, len, j->end);
    if (rc == 0)
        rc = sync_fd(j->fd);
    if (rc < 0)
        goto out;
    j->end += len;
    memcpy(j->hashes + from_chunk, hashes, (size_t)n * sizeof(*hashes));
    j->nhashes = from_chunk + n;
    j->confirmed = confirmed;
    XXH3_copyState(j->state, state);
    /* Every record repeats the state, so a long transfer grows the journal
     * by time, not just by size; past twice its minimal size it is
     * rewritten. The commit above already holds either way. */
    if (j->dirfd >= 0 && j->end > JOURNAL_COMPACT_MIN && j->end > 2 * compact_len(j))
        (void)journal_compact(j);
out:
    free(rec);
    return rc;
}

void journal_close(struct journal *j)
{
    if (j->fd >= 0)
        (void)close(j->fd); /* nothing to flush: commits fdatasync */
    free(j->hashes);
    if (j->state != NULL)
        XXH3_freeState(j->state);
    journal_init(j);
}
