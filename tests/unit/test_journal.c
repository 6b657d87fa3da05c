/* journal: the resume journal. File tests run in a fresh temporary directory;
 * journal_parse() tests read fixtures/journals. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "fixtures.h"
#include "helpers.h"
#include "xfer/buf.h"
#include "xfer/err.h"
#include "xfer/journal.h"
#include "xfer/proto.h"

#define JPATH "data.journal"
/* Two whole chunks and a short third, so every chunk shape is exercised. */
#define DATA_SIZE (2u * PROTO_CHUNK_SIZE + 100u)

static char tmpdir[] = "/tmp/xfer-unit-journal-XXXXXX";
static int tmpfd = -1;

static void tmp_setup(void)
{
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    tmpfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(tmpfd, 0, "open %s: %s", tmpdir, strerror(errno));
}

static void tmp_teardown(void)
{
    DIR *d;
    struct dirent *e;

    if (tmpfd < 0)
        return;
    d = fdopendir(tmpfd);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            (void)unlinkat(tmpfd, e->d_name, 0); /* best effort: the dir is ours */
    }
    (void)closedir(d); /* closes tmpfd too */
    tmpfd = -1;
    (void)rmdir(tmpdir); /* best effort, as above */
}

TestSuite(journal, .init = tmp_setup, .fini = tmp_teardown);

static void identity(struct journal_identity *id, uint64_t size)
{
    memset(id, 0, sizeof(*id));
    id->size = size;
    id->mtime_sec = 1700000000;
    id->mtime_nsec = 42;
    strcpy(id->name, "data.bin");
}

static uint8_t *make_data(size_t len)
{
    uint8_t *p = malloc(len);

    cr_assert_not_null(p);
    jfix_data(p, len);
    return p;
}

/* The XXH3-128 state after hashing data[0, len). Zeroed first so the journal
 * never writes uninitialised bytes (valgrind would flag the write). */
static XXH3_state_t *state_of(const uint8_t *data, uint64_t len)
{
    XXH3_state_t *st = XXH3_createState();

    cr_assert_not_null(st);
    memset(st, 0, sizeof(*st));
    cr_assert_eq(XXH3_128bits_reset(st), XXH_OK);
    cr_assert_eq(XXH3_128bits_update(st, data, (size_t)len), XXH_OK);
    return st;
}

static uint64_t chunk_hash(const uint8_t *data, uint64_t size, uint64_t chunk)
{
    uint64_t off = chunk * PROTO_CHUNK_SIZE;

    return proto_chunk_hash(data + off, (size_t)journal_chunk_len(size, chunk), off);
}

/* Commits chunks [from, from + n) of data, confirming [0, confirmed). */
static int commit(struct journal *j, const uint8_t *data, uint64_t from, uint64_t n,
                  uint64_t confirmed)
{
    uint64_t hashes[4];
    XXH3_state_t *st = state_of(data, confirmed);
    int rc;

    cr_assert_leq(n, 4);
    for (uint64_t i = 0; i < n; i++)
        hashes[i] = chunk_hash(data, j->id.size, from + i);
    rc = journal_commit(j, from, hashes, n, confirmed, st);
    XXH3_freeState(st);
    return rc;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;

    cr_assert_eq(fstatat(tmpfd, path, &sb, 0), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)sb.st_size;
}

static void cut_file(const char *path, uint64_t len)
{
    int fd = openat(tmpfd, path, O_WRONLY | O_CLOEXEC);

    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)len), 0);
    cr_assert_eq(close(fd), 0);
}

static void flip_bit(const char *path, uint64_t off)
{
    int fd = openat(tmpfd, path, O_RDWR | O_CLOEXEC);
    uint8_t b;

    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x01;
    cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
    cr_assert_eq(close(fd), 0);
}

static void write_file(const char *path, const void *p, size_t len)
{
    int fd = openat(tmpfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, p, len), (ssize_t)len);
    cr_assert_eq(close(fd), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = openat(tmpfd, path, O_RDONLY | O_CLOEXEC);
    size_t size = (size_t)file_size(path);
    uint8_t *p = malloc(size + 1);

    cr_assert_geq(fd, 0);
    cr_assert_not_null(p);
    cr_assert_eq(read(fd, p, size), (ssize_t)size);
    cr_assert_eq(close(fd), 0);
    *len = size;
    return p;
}

static void assert_digest_of(const XXH3_state_t *st, const uint8_t *data, uint64_t len)
{
    XXH128_hash_t got = XXH3_128bits_digest(st);
    XXH128_hash_t want = XXH3_128bits(data, (size_t)len);

    cr_assert(XXH128_isEqual(got, want), "state digest is not XXH3-128 of the first %llu bytes",
              (unsigned long long)len);
}

struct two_records {
    uint64_t header; /* file length after journal_open */
    uint64_t one;    /* after the first commit (chunk 0) */
    uint64_t two;    /* after the second (chunk 1) */
};

/* Creates JPATH afresh for DATA_SIZE bytes of data and confirms chunks 0 and 1. */
static struct two_records write_two_records(const uint8_t *data)
{
    struct journal j;
    struct journal_identity id;
    struct two_records t;
    int resumed = -1;

    (void)unlinkat(tmpfd, JPATH, 0); /* ENOENT the first time */
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    t.header = file_size(JPATH);
    cr_assert_eq(commit(&j, data, 0, 1, PROTO_CHUNK_SIZE), 0);
    t.one = file_size(JPATH);
    cr_assert_eq(commit(&j, data, 1, 1, 2 * PROTO_CHUNK_SIZE), 0);
    t.two = file_size(JPATH);
    journal_close(&j);
    cr_assert_lt(t.header, t.one);
    cr_assert_lt(t.one, t.two);
    return t;
}

/* Reopens JPATH and checks it resumed from chunk 0 only, cut back to t.one. */
static void assert_resumes_first_record_only(const uint8_t *data, const struct two_records *t,
                                             const char *what)
{
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0, "%s", what);
    cr_assert_eq(resumed, 1, "%s", what);
    cr_assert_eq(j.confirmed, PROTO_CHUNK_SIZE, "%s: confirmed %llu", what,
                 (unsigned long long)j.confirmed);
    cr_assert_eq(j.nhashes, 1, "%s", what);
    cr_assert_eq(j.hashes[0], chunk_hash(data, DATA_SIZE, 0), "%s", what);
    assert_digest_of(j.state, data, PROTO_CHUNK_SIZE);
    cr_assert_eq(j.end, t->one, "%s: end %llu", what, (unsigned long long)j.end);
    cr_assert_eq(file_size(JPATH), t->one, "%s: the torn tail was not cut off", what);
    journal_close(&j);
}

/* ---- journal_open / journal_commit on files ---- */

Test(journal, new_journal_starts_empty)
{
    /* Checks that opening a missing journal creates one with nothing confirmed. */
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    cr_assert_eq(j.end, file_size(JPATH));
    cr_assert_gt(j.end, 0);
    journal_close(&j);
}

Test(journal, reopening_resumes_offset_hashes_and_state)
{
    /* Checks open, two commits, close, reopen: resumed=1 with offset, hashes and hash state. */
    uint8_t *data = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    write_two_records(data);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(j.confirmed, 2 * PROTO_CHUNK_SIZE);
    cr_assert_eq(j.nhashes, 2);
    cr_assert_eq(j.hashes[0], chunk_hash(data, DATA_SIZE, 0));
    cr_assert_eq(j.hashes[1], chunk_hash(data, DATA_SIZE, 1));
    cr_assert_eq(j.state_valid, 1);
    assert_digest_of(j.state, data, 2 * PROTO_CHUNK_SIZE);
    cr_assert_eq(j.id.size, id.size);
    cr_assert_eq(j.id.mtime_sec, id.mtime_sec);
    cr_assert_eq(j.id.mtime_nsec, id.mtime_nsec);
    cr_assert_str_eq(j.id.name, id.name);
    cr_assert_eq(j.end, file_size(JPATH));
    journal_close(&j);
    free(data);
}

Test(journal, resumed_state_continues_hashing_the_rest)
{
    /* Checks that the reloaded state, fed the remaining bytes, gives the whole file's XXH3-128. */
    uint8_t *data = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    write_two_records(data);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(XXH3_128bits_update(j.state, data + j.confirmed, DATA_SIZE - j.confirmed), XXH_OK);
    assert_digest_of(j.state, data, DATA_SIZE);
    journal_close(&j);
    free(data);
}

Test(journal, commits_after_a_resume_append_to_the_journal)
{
    /* Checks that a resumed journal accepts the next chunk and a second reopen sees all three. */
    uint8_t *data = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    write_two_records(data);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(commit(&j, data, 2, 1, DATA_SIZE), 0);
    journal_close(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(j.confirmed, DATA_SIZE);
    cr_assert_eq(j.nhashes, 3);
    cr_assert_eq(j.hashes[2], chunk_hash(data, DATA_SIZE, 2));
    assert_digest_of(j.state, data, DATA_SIZE);
    journal_close(&j);
    free(data);
}

Test(journal, torn_last_record_falls_back_to_the_previous_one)
{
    /* Checks the second record cut at its first byte, midway and one byte short. */
    uint8_t *data = make_data(DATA_SIZE);
    struct two_records t = write_two_records(data);
    uint64_t cuts[3];

    cuts[0] = t.one + 1;
    cuts[1] = t.one + (t.two - t.one) / 2;
    cuts[2] = t.two - 1;
    for (size_t i = 0; i < 3; i++) {
        char what[64];

        t = write_two_records(data);
        cut_file(JPATH, cuts[i]);
        snprintf(what, sizeof(what), "cut at %llu", (unsigned long long)cuts[i]);
        assert_resumes_first_record_only(data, &t, what);
    }
    free(data);
}

Test(journal, damaged_last_record_falls_back_to_the_previous_one)
{
    /* Checks a bit flipped in the second record's magic, fields, state, hash or checksum. */
    uint8_t *data = make_data(DATA_SIZE);
    struct two_records t = write_two_records(data);
    uint64_t offs[6];

    offs[0] = t.one;       /* record magic */
    offs[1] = t.one + 5;   /* from_chunk */
    offs[2] = t.one + 17;  /* confirmed */
    offs[3] = t.one + 100; /* state */
    offs[4] = t.two - 12;  /* chunk hash */
    offs[5] = t.two - 1;   /* checksum */
    for (size_t i = 0; i < 6; i++) {
        char what[64];

        t = write_two_records(data);
        flip_bit(JPATH, offs[i]);
        snprintf(what, sizeof(what), "bit flipped at %llu", (unsigned long long)offs[i]);
        assert_resumes_first_record_only(data, &t, what);
    }
    free(data);
}

Test(journal, torn_only_record_resumes_nothing)
{
    /* Checks that a torn first record leaves a header-only journal and resumed=0. */
    uint8_t *data = make_data(DATA_SIZE);
    struct two_records t = write_two_records(data);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    cut_file(JPATH, t.header + (t.one - t.header) / 2);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    cr_assert_eq(file_size(JPATH), t.header);
    journal_close(&j);
    free(data);
}

/* Writes two records, reopens with id and checks the journal was reset for it. */
static void assert_reset_for(const struct journal_identity *id)
{
    uint8_t *data = make_data(DATA_SIZE);
    struct two_records t = write_two_records(data);
    struct journal j;
    struct journal j2;
    uint8_t *image;
    size_t len;
    uint64_t valid;
    int resumed = -1;

    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    journal_close(&j);
    /* The file now holds only a header for the new identity. */
    image = read_file(JPATH, &len);
    cr_assert_eq(len, t.header + strlen(id->name) - strlen("data.bin"));
    journal_init(&j2);
    cr_assert_eq(journal_parse(&j2, image, len, &valid), 0);
    cr_assert_eq(valid, len);
    cr_assert_eq(j2.id.size, id->size);
    cr_assert_eq(j2.id.mtime_sec, id->mtime_sec);
    cr_assert_eq(j2.id.mtime_nsec, id->mtime_nsec);
    cr_assert_str_eq(j2.id.name, id->name);
    cr_assert_eq(j2.confirmed, 0);
    journal_close(&j2);
    free(image);
    free(data);
}

Test(journal, different_size_resets)
{
    /* Checks that a journal for a source of another size is reset: resumed=0, confirmed=0. */
    struct journal_identity id;

    identity(&id, DATA_SIZE + 1);
    assert_reset_for(&id);
}

Test(journal, different_mtime_seconds_resets)
{
    /* Checks that a journal for a source with another mtime (seconds) is reset. */
    struct journal_identity id;

    identity(&id, DATA_SIZE);
    id.mtime_sec += 1;
    assert_reset_for(&id);
}

Test(journal, different_mtime_nanoseconds_resets)
{
    /* Checks that a journal for a source with another mtime (nanoseconds) is reset. */
    struct journal_identity id;

    identity(&id, DATA_SIZE);
    id.mtime_nsec += 1;
    assert_reset_for(&id);
}

Test(journal, different_name_resets)
{
    /* Checks that a journal recorded for another name is reset. */
    struct journal_identity id;

    identity(&id, DATA_SIZE);
    strcpy(id.name, "other.bin");
    assert_reset_for(&id);
}

Test(journal, garbage_file_resets)
{
    /* Checks that a file that is not a journal is replaced by a fresh header: resumed=0. */
    static const char garbage[] = "GET / HTTP/1.1\r\n\r\nnot a journal at all";
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    write_file(JPATH, garbage, sizeof(garbage) - 1);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    cr_assert_eq(j.end, file_size(JPATH));
    journal_close(&j);
    /* and it is a journal now: reopening keeps it */
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(j.end, file_size(JPATH));
    journal_close(&j);
}

Test(journal, empty_file_resets)
{
    /* Checks that a zero-length file (a crash inside journal_reset) opens as a fresh journal. */
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    write_file(JPATH, "", 0);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_gt(file_size(JPATH), 0);
    journal_close(&j);
}

Test(journal, commit_below_nhashes_replaces_the_tail)
{
    /* Checks a rewind: chunks 0..2 confirmed, then chunk 1 re-sent with new bytes. */
    uint8_t *data = make_data(DATA_SIZE);
    uint8_t *data2 = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    memset(data2 + PROTO_CHUNK_SIZE, 0x5a, PROTO_CHUNK_SIZE); /* chunk 1 rewritten */
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(commit(&j, data, 0, 1, PROTO_CHUNK_SIZE), 0);
    cr_assert_eq(commit(&j, data, 1, 2, DATA_SIZE), 0);
    cr_assert_eq(j.nhashes, 3);
    cr_assert_eq(commit(&j, data2, 1, 1, 2 * PROTO_CHUNK_SIZE), 0);
    cr_assert_eq(j.nhashes, 2);
    cr_assert_eq(j.confirmed, 2 * PROTO_CHUNK_SIZE);
    cr_assert_eq(j.hashes[1], chunk_hash(data2, DATA_SIZE, 1));
    journal_close(&j);

    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(j.nhashes, 2);
    cr_assert_eq(j.confirmed, 2 * PROTO_CHUNK_SIZE);
    cr_assert_eq(j.hashes[0], chunk_hash(data, DATA_SIZE, 0));
    cr_assert_eq(j.hashes[1], chunk_hash(data2, DATA_SIZE, 1));
    cr_assert_neq(j.hashes[1], chunk_hash(data, DATA_SIZE, 1));
    assert_digest_of(j.state, data2, 2 * PROTO_CHUNK_SIZE);
    journal_close(&j);
    free(data2);
    free(data);
}

Test(journal, commit_back_to_zero_forgets_every_chunk)
{
    /* Checks a rewind to the start (from_chunk 0, n 0, confirmed 0) survives a reopen as empty. */
    uint8_t *data = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    write_two_records(data);
    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(commit(&j, data, 0, 0, 0), 0);
    cr_assert_eq(j.nhashes, 0);
    journal_close(&j);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    journal_close(&j);
    free(data);
}

Test(journal, commit_rejects_a_gap_or_a_count_that_does_not_match_the_offset)
{
    /* Checks -EINVAL for a gap (from_chunk > nhashes) or a hash count not matching confirmed. */
    uint8_t *data = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    uint64_t before;
    int resumed = -1;

    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    before = file_size(JPATH);
    cr_assert_eq(commit(&j, data, 1, 1, 2 * PROTO_CHUNK_SIZE), -EINVAL); /* chunk 0 missing */
    cr_assert_eq(commit(&j, data, 0, 1, 2 * PROTO_CHUNK_SIZE), -EINVAL); /* 2 chunks, 1 hash */
    cr_assert_eq(commit(&j, data, 0, 2, PROTO_CHUNK_SIZE), -EINVAL);     /* 1 chunk, 2 hashes */
    cr_assert_eq(file_size(JPATH), before);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    journal_close(&j);
    free(data);
}

/* Checks journal_commit() refuses a confirmed offset journal_parse() would
 * reject (not chunk-aligned and not the file size, or past the end): written,
 * it would silently drop every later record on reload. */
Test(journal, commit_rejects_an_offset_a_reload_would_drop)
{
    /* Checks -EINVAL for confirmed not at a chunk boundary or the end, and for confirmed > size. */
    uint8_t *data = make_data(DATA_SIZE);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_expect_eq(commit(&j, data, 0, 1, PROTO_CHUNK_SIZE - 1), -EINVAL);
    journal_close(&j);
    identity(&id, 100);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_expect_eq(commit(&j, data, 0, 1, 200), -EINVAL);
    journal_close(&j);
    free(data);
}

Test(journal, reset_discards_every_record)
{
    /* Checks that journal_reset empties the journal in memory and on disk. */
    uint8_t *data = make_data(DATA_SIZE);
    struct two_records t = write_two_records(data);
    struct journal j;
    struct journal_identity id;
    int resumed = -1;

    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(journal_reset(&j), 0);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    cr_assert_eq(j.end, t.header);
    cr_assert_eq(file_size(JPATH), t.header);
    journal_close(&j);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    journal_close(&j);
    free(data);
}

Test(journal, close_is_safe_on_an_initialised_or_closed_journal)
{
    /* Checks journal_close after journal_init only, and twice after an open. */
    struct journal j;
    struct journal_identity id;
    int resumed;

    journal_init(&j);
    journal_close(&j);
    identity(&id, DATA_SIZE);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    journal_close(&j);
    journal_close(&j);
    cr_assert_eq(j.fd, -1);
    cr_assert_null(j.hashes);
    cr_assert_null(j.state);
}

Test(journal, chunk_len_covers_whole_partial_and_missing_chunks)
{
    /* Checks journal_chunk_len for whole chunks, the short last chunk and chunks past the end. */
    cr_assert_eq(journal_chunk_len(DATA_SIZE, 0), PROTO_CHUNK_SIZE);
    cr_assert_eq(journal_chunk_len(DATA_SIZE, 1), PROTO_CHUNK_SIZE);
    cr_assert_eq(journal_chunk_len(DATA_SIZE, 2), 100);
    cr_assert_eq(journal_chunk_len(DATA_SIZE, 3), 0);
    cr_assert_eq(journal_chunk_len(2 * PROTO_CHUNK_SIZE, 1), PROTO_CHUNK_SIZE);
    cr_assert_eq(journal_chunk_len(2 * PROTO_CHUNK_SIZE, 2), 0);
    cr_assert_eq(journal_chunk_len(0, 0), 0);
}

/* ---- journal_parse on fixtures/journals ---- */

/* Parses a fixture placed before a guard page; returns journal_parse()'s result. */
static int parse_fixture(const char *rel, struct journal *j, uint64_t *valid, size_t *len)
{
    struct guard g = {0};
    uint8_t *image = fixture_read(rel, len);
    int rc;

    journal_init(j);
    rc = journal_parse(j, guard_copy(&g, image, *len), *len, valid);
    guard_free(&g);
    free(image);
    return rc;
}

/* Checks what every fixture with a good first record holds. */
static void assert_fixture_first_record(const struct journal *j, uint64_t valid)
{
    uint8_t *data = make_data(JFIX_SIZE);

    cr_assert_eq(valid, JFIX_ONE_RECORD_LEN);
    cr_assert_eq(j->id.size, JFIX_SIZE);
    cr_assert_eq(j->id.mtime_sec, JFIX_MTIME_SEC);
    cr_assert_eq(j->id.mtime_nsec, JFIX_MTIME_NSEC);
    cr_assert_str_eq(j->id.name, JFIX_NAME);
    cr_assert_eq(j->confirmed, PROTO_CHUNK_SIZE);
    cr_assert_eq(j->nhashes, 1);
    cr_assert_eq(j->hashes[0], proto_chunk_hash(data, PROTO_CHUNK_SIZE, 0));
    /* A state saved by another xxHash build is refused, not misread. */
    if (j->state_valid)
        assert_digest_of(j->state, data, PROTO_CHUNK_SIZE);
    free(data);
}

Test(journal, parse_stops_at_the_torn_record_in_the_fixture)
{
    /* Checks torn_record.journal: the header and first record, valid_len before the torn one. */
    struct journal j;
    uint64_t valid;
    size_t len;

    cr_assert_eq(parse_fixture("journals/torn_record.journal", &j, &valid, &len), 0);
    cr_assert_gt(len, valid);
    assert_fixture_first_record(&j, valid);
    journal_close(&j);
}

Test(journal, parse_stops_at_the_damaged_record_in_the_fixture)
{
    /* Checks flipped_record.journal: a whole second record with a bad checksum is not applied. */
    struct journal j;
    uint64_t valid;
    size_t len;

    cr_assert_eq(parse_fixture("journals/flipped_record.journal", &j, &valid, &len), 0);
    cr_assert_gt(len, valid);
    assert_fixture_first_record(&j, valid);
    journal_close(&j);
}

Test(journal, parse_refuses_an_impossible_hash_state_behind_a_good_checksum)
{
    /* Checks impossible_state.journal (found by fuzz_journal): torn_record's first record with
     * the saved XXH3 state's buffered-byte count set to 0xffffffff and its checksum redone.
     * XXH3 trusts that count, so the state must be refused (the partial restarts), never
     * digested; the offsets and hashes are still those of the record. */
    struct journal j;
    uint64_t valid;
    size_t len;

    cr_assert_eq(parse_fixture("journals/impossible_state.journal", &j, &valid, &len), 0);
    cr_assert_eq(valid, len);
    cr_assert_eq(valid, JFIX_ONE_RECORD_LEN);
    cr_assert_eq(j.confirmed, PROTO_CHUNK_SIZE);
    cr_assert_eq(j.nhashes, 1);
    cr_assert_eq(j.state_valid, 0);
    journal_close(&j);
}

Test(journal, parse_rejects_the_garbage_fixture)
{
    /* Checks garbage.journal: XFER_ECORRUPT with valid_len 0. */
    struct journal j;
    uint64_t valid = 1;
    size_t len;

    cr_assert_eq(parse_fixture("journals/garbage.journal", &j, &valid, &len), XFER_ECORRUPT);
    cr_assert_eq(valid, 0);
    journal_close(&j);
}

Test(journal, parse_accepts_the_header_only_fixture)
{
    /* Checks header_only.journal: the identity, nothing confirmed, all of it valid. */
    struct journal j;
    uint64_t valid;
    size_t len;

    cr_assert_eq(parse_fixture("journals/header_only.journal", &j, &valid, &len), 0);
    cr_assert_eq(valid, len);
    cr_assert_eq(j.id.size, JFIX_SIZE);
    cr_assert_str_eq(j.id.name, JFIX_NAME);
    cr_assert_eq(j.confirmed, 0);
    cr_assert_eq(j.nhashes, 0);
    journal_close(&j);
}

Test(journal, parse_of_every_prefix_stays_inside_the_image)
{
    /* Checks each prefix of a two-record journal: no over-read, valid_len a record boundary. */
    uint8_t *data = make_data(DATA_SIZE);
    struct two_records t = write_two_records(data);
    size_t len;
    uint8_t *image = read_file(JPATH, &len);

    cr_assert_eq(len, t.two);
    for (size_t n = 0; n <= len; n++) {
        struct guard g = {0};
        struct journal j;
        uint64_t valid = 12345;
        int rc;

        journal_init(&j);
        rc = journal_parse(&j, guard_copy(&g, image, n), n, &valid);
        if (n < t.header) {
            cr_assert_eq(rc, XFER_ECORRUPT, "prefix %zu", n);
            cr_assert_eq(valid, 0, "prefix %zu", n);
        } else {
            uint64_t want = n < t.one ? t.header : n < t.two ? t.one : t.two;

            cr_assert_eq(rc, 0, "prefix %zu", n);
            cr_assert_eq(valid, want, "prefix %zu: valid %llu", n, (unsigned long long)valid);
        }
        journal_close(&j);
        guard_free(&g);
    }
    free(image);
    free(data);
}

Test(journal, open_resumes_a_journal_written_by_another_process)
{
    /* Checks a journal from another process (gen_fixtures) resumes and finishes the hash. */
    uint8_t *data = make_data(JFIX_SIZE);
    struct journal j;
    struct journal_identity id;
    size_t len;
    uint8_t *image = fixture_read("journals/torn_record.journal", &len);
    int resumed = -1;

    write_file(JPATH, image, len);
    jfix_identity(&id);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    if (!resumed)
        cr_skip_test("fixture written by another xxHash build: its state is not reusable here");
    cr_assert_eq(j.confirmed, PROTO_CHUNK_SIZE);
    cr_assert_eq(file_size(JPATH), JFIX_ONE_RECORD_LEN);
    cr_assert_eq(
        XXH3_128bits_update(j.state, data + PROTO_CHUNK_SIZE, JFIX_SIZE - PROTO_CHUNK_SIZE),
        XXH_OK);
    assert_digest_of(j.state, data, JFIX_SIZE);
    journal_close(&j);
    free(image);
    free(data);
}

/* Fake hashes for journals about large files: only their order matters. */
static void fake_hashes(uint64_t *h, uint64_t from, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        h[i] = XXH3_64bits(&(uint64_t){from + i}, sizeof(uint64_t));
}

/* Checks a long transfer's journal stays bounded: thousands of one-chunk
 * commits (each repeating the 576-byte state) compact it, and it reopens
 * with the same offset, hashes and state. */
Test(journal, compacts_itself_and_reopens_intact)
{
    const uint64_t chunks = 3000;
    struct journal_identity id;
    struct journal j;
    XXH3_state_t *st = state_of((const uint8_t *)"abc", 3);
    XXH128_hash_t want = XXH3_128bits_digest(st);
    uint64_t h;
    int resumed = -1;

    identity(&id, chunks * PROTO_CHUNK_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    for (uint64_t c = 0; c < chunks; c++) {
        fake_hashes(&h, c, 1);
        cr_assert_eq(journal_commit(&j, c, &h, 1, (c + 1) * PROTO_CHUNK_SIZE, st), 0);
    }
    /* Uncompacted it would be about 3000 * 650 bytes. */
    cr_assert_lt(file_size(JPATH), 300 * 1024, "journal grew to %llu bytes",
                 (unsigned long long)file_size(JPATH));
    cr_assert_eq(file_size(JPATH), j.end);
    journal_close(&j);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(j.confirmed, chunks * PROTO_CHUNK_SIZE);
    cr_assert_eq(j.nhashes, chunks);
    for (uint64_t c = 0; c < chunks; c++) {
        fake_hashes(&h, c, 1);
        cr_assert_eq(j.hashes[c], h, "hash of chunk %llu", (unsigned long long)c);
    }
    cr_assert_eq(XXH3_128bits_digest(j.state).low64, want.low64);
    cr_assert_eq(XXH3_128bits_digest(j.state).high64, want.high64);
    journal_close(&j);
    XXH3_freeState(st);
}

/* Checks compaction splits a hash list longer than one record may hold, and
 * that only the last record needs to carry the state. */
Test(journal, compacts_more_hashes_than_one_record_holds)
{
    const uint64_t per = 65536;
    const uint64_t chunks = 2 * per + 10;
    struct journal_identity id;
    struct journal j;
    uint64_t *h = malloc(per * sizeof(*h));
    XXH3_state_t *st = state_of((const uint8_t *)"xyz", 3);
    uint64_t done = 0;
    int resumed = -1;

    cr_assert_not_null(h);
    identity(&id, chunks * PROTO_CHUNK_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    while (done < chunks) {
        uint64_t n = chunks - done < 4096 ? chunks - done : 4096;

        fake_hashes(h, done, n);
        cr_assert_eq(journal_commit(&j, done, h, n, (done + n) * PROTO_CHUNK_SIZE, st), 0);
        done += n;
    }
    journal_close(&j);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 1);
    cr_assert_eq(j.nhashes, chunks);
    fake_hashes(h, chunks - 1, 1);
    cr_assert_eq(j.hashes[chunks - 1], h[0]);
    journal_close(&j);
    XXH3_freeState(st);
    free(h);
}

/* Checks a journal whose last good record carries no state is not resumed:
 * without the state, the whole-file hash could not be continued. */
Test(journal, last_record_without_state_is_not_resumed)
{
    struct journal_identity id;
    struct journal j;
    uint8_t image[4096];
    uint64_t valid = 0;
    size_t len;
    int fd;
    int resumed = -1;
    uint64_t h;
    uint8_t *data = make_data(DATA_SIZE);

    identity(&id, DATA_SIZE);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(commit(&j, data, 0, 1, PROTO_CHUNK_SIZE), 0);
    journal_close(&j);
    /* Append a well-formed record with state length 0 by hand. */
    fd = openat(tmpfd, JPATH, O_RDWR | O_APPEND | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    {
        uint8_t rec[4 + 8 + 4 + 8 + 4 + 8 + 8];
        struct buf_writer w;

        fake_hashes(&h, 1, 1);
        buf_writer_init(&w, rec, sizeof(rec));
        cr_assert_eq(buf_put_u32(&w, JOURNAL_RECORD_MAGIC), 0);
        cr_assert_eq(buf_put_u64(&w, 1), 0);
        cr_assert_eq(buf_put_u32(&w, 1), 0);
        cr_assert_eq(buf_put_u64(&w, 2 * PROTO_CHUNK_SIZE), 0);
        cr_assert_eq(buf_put_u32(&w, 0), 0);
        cr_assert_eq(buf_put_u64(&w, h), 0);
        cr_assert_eq(buf_put_u64(&w, XXH3_64bits(rec, w.pos)), 0);
        cr_assert_eq(write(fd, rec, w.pos), (ssize_t)w.pos);
    }
    cr_assert_eq(close(fd), 0);
    fd = openat(tmpfd, JPATH, O_RDONLY | O_CLOEXEC);
    len = (size_t)read(fd, image, sizeof(image));
    cr_assert_eq(close(fd), 0);
    journal_init(&j);
    cr_assert_eq(journal_parse(&j, image, len, &valid), 0);
    cr_assert_eq(valid, len, "the stateless record itself is well-formed");
    cr_assert_eq(j.state_missing, 1);
    journal_close(&j);
    journal_init(&j);
    cr_assert_eq(journal_open(&j, tmpfd, JPATH, &id, &resumed), 0);
    cr_assert_eq(resumed, 0);
    cr_assert_eq(j.confirmed, 0);
    journal_close(&j);
    free(data);
}
