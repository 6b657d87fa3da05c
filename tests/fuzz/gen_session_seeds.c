/* gen_session_seeds: writes the generated sessions of fixtures/fuzz/session/
 * (see session_input.h for the format): valid transfers, the receiver's
 * refusals, a damaged chunk, a whole-file mismatch, an identical file, and
 * handshakes that go wrong. Usage: gen_session_seeds DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xfer/auth.h"
#include "xfer/proto.h"

#include "session_input.h"

struct seed {
    uint8_t b[8192];
    size_t len;
};

static void add(struct seed *s, const void *p, size_t n)
{
    if (s->len + n > sizeof(s->b))
        abort();
    memcpy(s->b + s->len, p, n);
    s->len += n;
}

static void add_frame(struct seed *s, uint8_t flags, const struct proto_frame *f)
{
    uint8_t buf[PROTO_HDR_LEN + PROTO_MAX_CONTROL + 64];
    int n = proto_encode(f, buf, sizeof(buf));
    uint8_t hdr[SI_REC_HDR] = {flags, (uint8_t)(n >> 8), (uint8_t)n};

    if (n < 0)
        abort();
    add(s, hdr, sizeof(hdr));
    add(s, buf, (size_t)n);
}

static void add_raw(struct seed *s, uint8_t flags, const char *bytes)
{
    size_t n = strlen(bytes);
    uint8_t hdr[SI_REC_HDR] = {flags, (uint8_t)(n >> 8), (uint8_t)n};

    add(s, hdr, sizeof(hdr));
    add(s, bytes, n);
}

static void offer(struct seed *s, uint8_t flags, const char *name, uint64_t size)
{
    struct proto_frame f = {.type = PROTO_OFFER};

    f.u.offer.size = size;
    f.u.offer.mtime_sec = 1700000000;
    f.u.offer.mode = 0644;
    f.u.offer.name_len = (uint16_t)strlen(name);
    memcpy(f.u.offer.name, name, f.u.offer.name_len);
    add_frame(s, flags, &f);
}

static void data(struct seed *s, uint8_t flags, uint32_t epoch, uint64_t off, const char *bytes)
{
    struct proto_frame f = {.type = PROTO_DATA};

    f.u.data.epoch = epoch;
    f.u.data.offset = off;
    f.u.data.len = (uint32_t)strlen(bytes);
    f.u.data.bytes = (const uint8_t *)bytes;
    f.u.data.hash = 0x0123456789abcdefull; /* wrong unless SI_FIX_HASH */
    add_frame(s, flags, &f);
}

static void end(struct seed *s, uint8_t flags, uint32_t epoch)
{
    struct proto_frame f = {.type = PROTO_END};

    f.u.end.epoch = epoch; /* hash: zero, wrong unless SI_FIX_HASH */
    add_frame(s, flags, &f);
}

static void simple(struct seed *s, uint8_t flags, uint8_t type)
{
    struct proto_frame f = {.type = type};

    add_frame(s, flags, &f);
}

/* FILE_HASH of all-zero bits: with SI_FIX_HASH the harness fills in the right one. */
static void file_hash(struct seed *s, uint8_t flags)
{
    struct proto_frame f = {.type = PROTO_FILE_HASH};

    add_frame(s, flags, &f);
}

/* The two records SI_MODE_PARTIAL and SI_MODE_EXISTING read first: an
 * OFFER naming the file, then its bytes (flags: SI_FIX_HASH or not). */
static void file_records(struct seed *s, uint8_t flags, const char *name, const char *bytes)
{
    offer(s, 0, name, strlen(bytes));
    add_raw(s, flags, bytes);
}

static void start(struct seed *s, uint8_t mode)
{
    s->len = 0;
    add(s, &mode, 1);
}

static void write_seed(const char *dir, const char *name, const struct seed *s)
{
    char path[4096];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wb");
    if (fp == NULL || fwrite(s->b, 1, s->len, fp) != s->len || fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const uint8_t ok = SI_SETTLE | SI_FIX_HASH;
    struct seed s;

    if (argc != 2) {
        fprintf(stderr, "usage: gen_session_seeds DIR\n");
        return 2;
    }

    /* Raw: a correct HELLO, then a wrong proof. */
    {
        struct proto_frame f = {.type = PROTO_HELLO};
        uint8_t buf[256];
        int n;

        f.u.hello.version = PROTO_VERSION;
        f.u.hello.ciphers = AUTH_CIPHER_XCHACHA20 | AUTH_CIPHER_AES256GCM;
        memset(f.u.hello.pk, 9, sizeof(f.u.hello.pk));
        start(&s, 0);
        n = proto_encode(&f, buf, sizeof(buf));
        add(&s, buf, (size_t)n);
        f.type = PROTO_AUTH;
        n = proto_encode(&f, buf, sizeof(buf));
        add(&s, buf, (size_t)n);
        write_seed(argv[1], "raw_hello_wrong_proof", &s);
    }
    start(&s, 0);
    add(&s, "GET / HTTP/1.1\r\n\r\n", 18);
    write_seed(argv[1], "raw_http", &s);

    /* One small file, delivered and committed; then BYE. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "a.txt", 11);
    data(&s, ok, 1, 0, "hello world");
    end(&s, ok, 1);
    {
        struct proto_frame f = {.type = PROTO_BYE};

        add_frame(&s, SI_SETTLE, &f);
    }
    write_seed(argv[1], "auth_one_file", &s);

    /* The same over AES-256-GCM (XChaCha20 where the CPU lacks AES). */
    s.b[0] = SI_MODE_AUTH | SI_MODE_AES;
    write_seed(argv[1], "auth_one_file_aes", &s);

    /* A chunk shorter than the file below 1 MiB: every chunk but the last
     * is whole, so it is refused (REWIND), and the whole one follows. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "two", 10);
    data(&s, ok, 1, 0, "01234");
    data(&s, ok, 2, 0, "0123456789");
    end(&s, ok, 2);
    write_seed(argv[1], "auth_short_chunk", &s);

    /* A file, then the same again: NEED_HASH, FILE_HASH, COMPLETE. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "same", 4);
    data(&s, ok, 1, 0, "same");
    end(&s, ok, 1);
    offer(&s, SI_SETTLE, "same", 4);
    {
        struct proto_frame f = {.type = PROTO_FILE_HASH};

        add_frame(&s, ok, &f);
    }
    write_seed(argv[1], "auth_identical_file", &s);

    /* A different file under a committed name: refused as existing. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "x", 1);
    data(&s, ok, 1, 0, "x");
    end(&s, ok, 1);
    offer(&s, SI_SETTLE, "x", 2);
    offer(&s, SI_SETTLE, "x", 1);
    {
        struct proto_frame f = {.type = PROTO_FILE_HASH};

        add_frame(&s, SI_SETTLE, &f); /* wrong hash: the same size, another file */
    }
    write_seed(argv[1], "auth_existing_file", &s);

    /* SI_MODE_EXISTING: a finished file already there; identical, then after
     * COMPLETE the same again with --overwrite and a different hash. */
    start(&s, SI_MODE_AUTH | SI_MODE_EXISTING | SI_MODE_OVERWRITE);
    file_records(&s, 0, "e", "hello");
    offer(&s, SI_SETTLE, "e", 5);
    file_hash(&s, ok);
    offer(&s, SI_SETTLE, "e", 5);
    file_hash(&s, SI_SETTLE);
    data(&s, ok, 1, 0, "jello");
    end(&s, ok, 1);
    write_seed(argv[1], "existing_identical_then_overwritten", &s);

    /* Issue 9, finding 1: a matching FILE_HASH starts the job that forgets
     * the name's leftovers; a second FILE_HASH and an OFFER read while it
     * runs freed the new file under its open job (heap-use-after-free). */
    start(&s, SI_MODE_AUTH | SI_MODE_EXISTING);
    file_records(&s, 0, "e", "hello");
    offer(&s, SI_SETTLE, "e", 5);
    file_hash(&s, SI_FIX_HASH);
    file_hash(&s, 0);
    offer(&s, SI_SETTLE, "f", 3); /* the job lands while the connection is open */
    write_seed(argv[1], "regress_uaf_second_file_hash_then_offer", &s);
    /* With --overwrite two FILE_HASH frames were enough. */
    start(&s, SI_MODE_AUTH | SI_MODE_EXISTING | SI_MODE_OVERWRITE);
    file_records(&s, 0, "e", "hello");
    offer(&s, SI_SETTLE, "e", 5);
    file_hash(&s, SI_FIX_HASH);
    file_hash(&s, SI_SETTLE);
    write_seed(argv[1], "regress_uaf_second_file_hash_overwrite", &s);

    /* Names the receiver refuses. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "..", 1);
    offer(&s, SI_SETTLE, ".xfer", 1);
    offer(&s, SI_SETTLE, "a/b", 1);
    offer(&s, SI_SETTLE, "\xe2\x80\xae" "txt.exe", 1);
    offer(&s, SI_SETTLE, "\xff", 1);
    write_seed(argv[1], "auth_bad_names", &s);

    /* A damaged chunk: REWIND to epoch 2, then the right one. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "b", 6);
    data(&s, SI_SETTLE, 1, 0, "damage");
    data(&s, ok, 2, 0, "damage");
    end(&s, ok, 2);
    write_seed(argv[1], "auth_bad_chunk", &s);

    /* Regression: a write batch whose first chunk is damaged appended zero
     * hashes to a list not yet allocated (NULL + 0: undefined behaviour). */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "b", 6);
    data(&s, SI_SETTLE, 1, 0, "damage");
    write_seed(argv[1], "regress_damaged_first_chunk", &s);

    /* A chunk at the wrong offset, then the expected one. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "off", 4);
    data(&s, ok, 1, 2, "ab");
    data(&s, ok, 2, 0, "abcd");
    end(&s, ok, 2);
    write_seed(argv[1], "auth_wrong_offset", &s);

    /* The whole-file hash does not match: started over under epoch 2. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "c", 3);
    data(&s, ok, 1, 0, "abc");
    end(&s, SI_SETTLE, 1);
    data(&s, ok, 2, 0, "abc");
    end(&s, ok, 2);
    write_seed(argv[1], "auth_file_mismatch", &s);

    /* An empty file: END right after ACCEPT. */
    start(&s, SI_MODE_AUTH);
    offer(&s, SI_SETTLE, "empty", 0);
    end(&s, ok, 1);
    write_seed(argv[1], "auth_empty_file", &s);

    /* DATA before ACCEPT: the receiver is still opening the file. */
    start(&s, SI_MODE_AUTH);
    offer(&s, 0, "early", 5);
    data(&s, SI_FIX_HASH, 1, 0, "early");
    write_seed(argv[1], "auth_data_too_early", &s);

    /* Clear frames after the handshake: a PING (allowed once), then
     * forgeries. */
    start(&s, SI_MODE_AUTH);
    simple(&s, SI_CLEAR | SI_SETTLE, PROTO_PING);
    simple(&s, SI_SETTLE, PROTO_PING);
    offer(&s, SI_CLEAR | SI_SETTLE, "clear", 1);
    write_seed(argv[1], "auth_clear_frames", &s);

    /* Resuming: the partial is whole and journaled; ACCEPT at its end, the
     * prefix read back and checked, then END. */
    start(&s, SI_MODE_AUTH | SI_MODE_PARTIAL);
    file_records(&s, SI_FIX_HASH, "r", "hello");
    offer(&s, SI_SETTLE, "r", 5);
    end(&s, ok, 1);
    write_seed(argv[1], "partial_resume", &s);

    /* The same partial damaged on disk: read back, found bad, resent. */
    start(&s, SI_MODE_AUTH | SI_MODE_PARTIAL);
    file_records(&s, 0, "r", "hello");
    offer(&s, SI_SETTLE, "r", 5);
    data(&s, ok, 2, 0, "hello");
    end(&s, ok, 2);
    write_seed(argv[1], "partial_damaged", &s);

    /* A journal for another version of the file (another size): reset. */
    start(&s, SI_MODE_AUTH | SI_MODE_PARTIAL);
    file_records(&s, SI_FIX_HASH, "r", "hello");
    offer(&s, SI_SETTLE, "r", 4);
    data(&s, ok, 1, 0, "hell");
    end(&s, ok, 1);
    write_seed(argv[1], "partial_other_file", &s);

    /* Frames a receiver never expects from a sender. */
    start(&s, SI_MODE_AUTH);
    simple(&s, SI_SETTLE, PROTO_ACK);
    write_seed(argv[1], "auth_unexpected_ack", &s);
    start(&s, SI_MODE_AUTH);
    {
        struct proto_frame f = {.type = PROTO_ERROR};

        f.u.error.code = 9;
        f.u.error.text_len = 4;
        memcpy(f.u.error.text, "oops", 4);
        add_frame(&s, SI_SETTLE, &f);
    }
    write_seed(argv[1], "auth_error", &s);
    return 0;
}
