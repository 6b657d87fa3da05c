/* gen_fixtures: writes the .bin files under fixtures/frames and the .journal
 * files under fixtures/journals from tests/unit/fixtures.c. Run by hand when a
 * format changes on purpose: `gen_fixtures /path/to/xfer/fixtures`, then
 * review the binary diff; the unit tests compare against these files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "fixtures.h"
#include "xfer/journal.h"
#include "xfer/proto.h"

static int write_file(int dirfd, const char *name, const void *p, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0 || write(fd, p, len) != (ssize_t)len) {
        fprintf(stderr, "gen_fixtures: %s: %s\n", name, strerror(errno));
        if (fd >= 0)
            (void)close(fd);
        return -1;
    }
    return close(fd);
}

static int write_frames(const char *dir)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dirfd < 0) {
        fprintf(stderr, "gen_fixtures: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < frame_fixture_count; i++) {
        static uint8_t out[FRAME_FIXTURE_MAX];
        struct proto_frame want;
        size_t n = frame_fixtures[i].make(out, sizeof(out), &want);

        if (write_file(dirfd, frame_fixtures[i].file, out, n) < 0) {
            (void)close(dirfd);
            return -1;
        }
        printf("frames/%s: %zu bytes\n", frame_fixtures[i].file, n);
    }
    return close(dirfd);
}

/* Writes name as journal_open() and two journal_commit()s leave it: chunk 0
 * confirmed, then the rest of JFIX_SIZE. Returns the file's length. */
static long write_two_records(int dirfd, const char *name, const uint8_t *data)
{
    struct journal j;
    struct journal_identity id;
    XXH3_state_t *st = XXH3_createState();
    uint64_t h;
    int resumed;
    struct stat sb;

    if (st == NULL)
        return -1;
    /* Zeroed so the stored state holds no uninitialised heap bytes. */
    memset(st, 0, sizeof(*st));
    (void)XXH3_128bits_reset(st); /* cannot fail on a valid state */
    jfix_identity(&id);
    journal_init(&j);
    (void)unlinkat(dirfd, name, 0); /* start from nothing; ENOENT is fine */
    if (journal_open(&j, dirfd, name, &id, &resumed) < 0)
        goto fail;
    (void)XXH3_128bits_update(st, data, PROTO_CHUNK_SIZE);
    h = proto_chunk_hash(data, PROTO_CHUNK_SIZE, 0);
    if (journal_commit(&j, 0, &h, 1, PROTO_CHUNK_SIZE, st) < 0)
        goto fail;
    (void)XXH3_128bits_update(st, data + PROTO_CHUNK_SIZE, JFIX_SIZE - PROTO_CHUNK_SIZE);
    h = proto_chunk_hash(data + PROTO_CHUNK_SIZE, JFIX_SIZE - PROTO_CHUNK_SIZE, PROTO_CHUNK_SIZE);
    if (journal_commit(&j, 1, &h, 1, JFIX_SIZE, st) < 0)
        goto fail;
    journal_close(&j);
    XXH3_freeState(st);
    if (fstatat(dirfd, name, &sb, 0) < 0)
        return -1;
    return (long)sb.st_size;
fail:
    journal_close(&j);
    XXH3_freeState(st);
    return -1;
}

static int cut_file(int dirfd, const char *name, off_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = ftruncate(fd, len);
    (void)close(fd); /* nothing buffered */
    return rc;
}

static int flip_bit(int dirfd, const char *name, off_t off)
{
    int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
    uint8_t b;
    int rc = -1;

    if (fd < 0)
        return -1;
    if (pread(fd, &b, 1, off) == 1) {
        b ^= 0x10;
        if (pwrite(fd, &b, 1, off) == 1)
            rc = 0;
    }
    (void)close(fd); /* nothing buffered */
    return rc;
}

static int write_journals(const char *dir)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint8_t *data = malloc(JFIX_SIZE);
    uint8_t garbage[512];
    struct journal j;
    struct journal_identity id;
    int resumed;
    long full;
    long cut;
    int rc = -1;

    if (dirfd < 0 || data == NULL)
        goto out;
    jfix_data(data, JFIX_SIZE);

    /* torn_record: the second record cut in half, as by a crash mid-write */
    full = write_two_records(dirfd, "torn_record.journal", data);
    if (full < 0)
        goto out;
    cut = JFIX_ONE_RECORD_LEN + (full - (long)JFIX_ONE_RECORD_LEN) / 2;
    if (cut_file(dirfd, "torn_record.journal", cut) < 0)
        goto out;
    printf("journals/torn_record.journal: %ld of %ld bytes\n", cut, full);

    /* flipped_record: whole, but one bit of the second record's state flipped */
    full = write_two_records(dirfd, "flipped_record.journal", data);
    if (full < 0)
        goto out;
    if (flip_bit(dirfd, "flipped_record.journal", JFIX_ONE_RECORD_LEN + 100) < 0)
        goto out;
    printf("journals/flipped_record.journal: %ld bytes, byte %u flipped\n", full,
           JFIX_ONE_RECORD_LEN + 100);

    /* header_only: a journal just opened, nothing confirmed yet */
    jfix_identity(&id);
    journal_init(&j);
    (void)unlinkat(dirfd, "header_only.journal", 0); /* ENOENT is fine */
    if (journal_open(&j, dirfd, "header_only.journal", &id, &resumed) < 0)
        goto out;
    journal_close(&j);
    printf("journals/header_only.journal\n");

    /* garbage: what a journal is not; fixed noise, not from the API */
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (uint8_t)((i * 151 + 17) ^ (i >> 3));
    memcpy(garbage, "not a journal\n", 14);
    if (write_file(dirfd, "garbage.journal", garbage, sizeof(garbage)) < 0)
        goto out;
    printf("journals/garbage.journal: %zu bytes\n", sizeof(garbage));
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "gen_fixtures: journals: %s\n", strerror(errno));
    if (dirfd >= 0)
        (void)close(dirfd);
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    char path[4096];

    if (argc != 2) {
        fprintf(stderr, "usage: gen_fixtures FIXTURES_DIR\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/frames", argv[1]);
    if (write_frames(path) < 0)
        return 1;
    snprintf(path, sizeof(path), "%s/journals", argv[1]);
    if (write_journals(path) < 0)
        return 1;
    return 0;
}
