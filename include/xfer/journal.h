/* journal: the durable record of one partial file. It holds the source's
 * identity (name, size, mtime), the confirmed offset, the XXH3-64 hash of
 * every chunk below it and the serialized XXH3-128 state of that prefix.
 *
 * On disk it is a header followed by append-only records, each closed by a
 * checksum; a torn or damaged record ends the journal and is cut off, so a
 * kill -9 mid-update falls back to the last good record. Records are appended
 * and fdatasync'ed by journal_commit(); the caller makes the partial's data
 * durable first. A journal past twice its minimal size is rewritten beside
 * itself and renamed into place, so its size follows the file's (8 bytes a
 * chunk), not the transfer's duration.
 *
 * journal_parse() is pure (bytes in, struct out). The other calls do blocking
 * file I/O and belong on the threadpool. */
#ifndef XFER_JOURNAL_H
#define XFER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

#include "xfer/proto.h"

#define JOURNAL_MAGIC 0x584a4e4cu        /* "XJNL" */
#define JOURNAL_RECORD_MAGIC 0x584a5243u /* "XJRC" */
#define JOURNAL_VERSION 1
/* A hash list longer than this is not a journal we wrote (8 PiB of chunks). */
#define JOURNAL_MAX_CHUNKS (UINT64_C(1) << 33)

struct journal_identity {
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    char name[PROTO_MAX_NAME + 1];
};

struct journal {
    int fd;
    int dirfd;      /* the caller's, for compaction; not owned */
    char path[128]; /* relative to dirfd */
    uint64_t end; /* length of the valid prefix of the journal file */
    struct journal_identity id;
    uint64_t confirmed;       /* [0, confirmed) is durable and hashed */
    uint64_t *hashes;         /* one per chunk below confirmed, owned */
    uint64_t nhashes;
    uint64_t cap;
    int state_valid;          /* 0: this build cannot use the saved state */
    int state_missing;        /* the last record carried no state */
    XXH3_state_t *state;      /* XXH3-128 of [0, confirmed), owned */
};

/* Zeroes j so journal_close() is safe on it. */
void journal_init(struct journal *j);

/* Parses a journal image. Fills j (allocating its hash list and state) from
 * the header and every record up to the first torn or damaged one; *valid_len
 * gets the length of that good prefix. Returns 0, or XFER_ECORRUPT when even
 * the header is unusable, or -ENOMEM. */
int journal_parse(struct journal *j, const uint8_t *p, size_t len, uint64_t *valid_len);

/* Opens (creating if needed, exclusively) the journal at path under dirfd.
 * If it is for another source identity, or unreadable, it is reset to a
 * fresh header for id. A torn tail is cut off. *resumed is 1 when a
 * matching journal with a usable state was found. A link, a non-file
 * (-ELOOP, -EINVAL) or a file with other links or another owner
 * (XFER_ELINKED) at path is neither read nor written. */
int journal_open(struct journal *j, int dirfd, const char *path,
                 const struct journal_identity *id, int *resumed);

/* Discards every record: the journal describes an empty partial again. */
int journal_reset(struct journal *j);

/* Appends a record confirming [0, confirmed): the hashes of chunks
 * [from_chunk, from_chunk + n) replace any kept from from_chunk on, and
 * state is the XXH3-128 state after hashing [0, confirmed). Durable on return. */
int journal_commit(struct journal *j, uint64_t from_chunk, const uint64_t *hashes, uint64_t n,
                   uint64_t confirmed, const XXH3_state_t *state);

void journal_close(struct journal *j);

/* Bytes of file covered by chunk i of a file of the given size. */
uint64_t journal_chunk_len(uint64_t size, uint64_t chunk);

#endif
