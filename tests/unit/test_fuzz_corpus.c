/* The fuzzers' inputs, replayed in every build: each file of fixtures/fuzz/<target>/ (the seed
 * corpus and the regress_* inputs of crashes the fuzzers found) goes through the same harness
 * as in tests/fuzz/fuzz_<target>.c, linked here without libFuzzer (CMake renames its entry
 * points). A harness aborts on any failure, which fails the test; under -DXFER_SANITIZE=ON
 * the sanitizers check every replay as they do in the fuzzers. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

int fuzz_frame_init(int *argc, char ***argv);
int fuzz_frame_one(const uint8_t *data, size_t size);
int fuzz_session_init(int *argc, char ***argv);
int fuzz_session_one(const uint8_t *data, size_t size);
int fuzz_journal_one(const uint8_t *data, size_t size);
int fuzz_name_one(const uint8_t *data, size_t size);

typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size);

static void replay(const char *target, const char *file, fuzz_one_fn one)
{
    char rel[512];
    size_t len;
    uint8_t *data;

    snprintf(rel, sizeof(rel), "fuzz/%s/%s", target, file);
    data = fixture_read(rel, &len);
    cr_assert_eq(one(data, len), 0, "%s", rel);
    free(data);
}

/* Every file of the target's corpus; there must be some. */
static void replay_all(const char *target, fuzz_one_fn one)
{
    char path[512];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/fuzz/%s", FIXTURES_DIR, target);
    d = opendir(path);
    cr_assert_not_null(d, "%s", path);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        replay(target, e->d_name, one);
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 0, "no inputs in %s", path);
}

Test(fuzz_corpus, every_frame_input_runs_clean)
{
    cr_assert_eq(fuzz_frame_init(NULL, NULL), 0);
    replay_all("frame", fuzz_frame_one);
}

Test(fuzz_corpus, every_session_input_runs_clean)
{
    cr_assert_eq(fuzz_session_init(NULL, NULL), 0);
    replay_all("session", fuzz_session_one);
}

Test(fuzz_corpus, every_journal_input_runs_clean)
{
    replay_all("journal", fuzz_journal_one);
}

Test(fuzz_corpus, every_name_input_runs_clean)
{
    replay_all("name", fuzz_name_one);
}

/* fuzz_session found it (UBSan): a write batch whose first chunk fails its hash appended zero
 * hashes to a pending list not yet allocated, NULL + 0 and memcpy(NULL, ..., 0). The receiver
 * must rewind the sender and carry on. */
Test(fuzz_regressions, session_first_chunk_damaged_before_any_write)
{
    cr_assert_eq(fuzz_session_init(NULL, NULL), 0);
    replay("session", "regress_damaged_first_chunk", fuzz_session_one);
}

/* fuzz_journal found it (SEGV in XXH3_128bits_digest): a journal record whose checksum holds
 * but whose saved hash state claims more buffered bytes than XXH3 has room for. */
Test(fuzz_regressions, journal_impossible_state_is_never_digested)
{
    replay("journal", "regress_impossible_state.journal", fuzz_journal_one);
}
