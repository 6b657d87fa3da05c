#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

uint8_t *guard_alloc(struct guard *g, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (len + page - 1) / page * page;
    void *map;

    g->maplen = data + page;
    map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(map, MAP_FAILED, "mmap of %zu bytes failed", g->maplen);
    g->map = map;
    cr_assert_eq(mprotect(g->map + data, page, PROT_NONE), 0, "mprotect failed");
    return g->map + data - len;
}

const uint8_t *guard_copy(struct guard *g, const void *p, size_t len)
{
    uint8_t *dst = guard_alloc(g, len);

    if (len > 0)
        memcpy(dst, p, len);
    return dst;
}

void guard_free(struct guard *g)
{
    if (g->map != NULL)
        (void)munmap(g->map, g->maplen); /* test memory; the process ends soon */
    g->map = NULL;
    g->maplen = 0;
}

uint8_t *fixture_read(const char *rel, size_t *len)
{
    char path[4096];
    FILE *fp;
    uint8_t *p;
    long n;

    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, rel);
    fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    cr_assert_geq(n, 0);
    rewind(fp);
    p = malloc((size_t)n + 1);
    cr_assert_not_null(p);
    cr_assert_eq(fread(p, 1, (size_t)n, fp), (size_t)n, "short read of %s", path);
    p[n] = '\0';
    (void)fclose(fp); /* read-only */
    *len = (size_t)n;
    return p;
}
