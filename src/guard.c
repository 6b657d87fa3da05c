#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "xfer/guard.h"

_Static_assert(GUARD_MAX_PENDING < GUARD_TABLE,
               "take() needs an entry with no pending connection whatever is pending");

int guard_addr_from(struct guard_addr *a, const void *sa)
{
    const struct sockaddr *s = sa;

    memset(a, 0, sizeof(*a));
    if (s->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        memcpy(a->bytes, in6, 16);
        if (!IN6_IS_ADDR_V4MAPPED(in6))
            memset(a->bytes + 8, 0, 8);
        return 0;
    }
    if (s->sa_family == AF_INET) {
        a->bytes[10] = 0xff;
        a->bytes[11] = 0xff;
        memcpy(a->bytes + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    return -1;
}

static struct guard_entry *find(const struct guard *g, const struct guard_addr *a)
{
    for (int i = 0; i < GUARD_TABLE; i++) {
        if (g->entries[i].used && memcmp(&g->entries[i].addr, a, sizeof(*a)) == 0)
            return (struct guard_entry *)&g->entries[i];
    }
    return NULL;
}

/* Failures from e that still count at now: none once the window has passed. */
static unsigned live_failures(const struct guard_entry *e, uint64_t now)
{
    return now - e->last_failure_ms > GUARD_FAIL_WINDOW_MS ? 0 : e->failures;
}

/* An entry for a: a free one, else one whose loss costs least. An entry
 * holding a pending connection is never taken, so its count stays true;
 * GUARD_MAX_PENDING < GUARD_TABLE leaves one free of those whatever happens.
 * Of the others the one with the fewest failures still counted goes first,
 * then the stalest: addresses that never failed or were forgiven, then those
 * short of a lock-out, then the shortest lock-outs. So a fresh address always
 * gets in, and addresses flooding the table push out their own entries
 * before an older, longer lock-out. */
static struct guard_entry *take(struct guard *g, const struct guard_addr *a, uint64_t now)
{
    struct guard_entry *best = NULL;
    unsigned best_failures = 0;

    for (int i = 0; i < GUARD_TABLE; i++) {
        struct guard_entry *e = &g->entries[i];
        unsigned failures;

        if (!e->used) {
            best = e;
            break;
        }
        if (e->pending > 0)
            continue;
        failures = live_failures(e, now);
        if (best == NULL || failures < best_failures ||
            (failures == best_failures && e->last_failure_ms < best->last_failure_ms)) {
            best = e;
            best_failures = failures;
        }
    }
    if (best == NULL)
        return NULL; /* cannot happen: see above */
    memset(best, 0, sizeof(*best));
    best->used = 1;
    best->addr = *a;
    return best;
}

int guard_admit(struct guard *g, const struct guard_addr *a, uint64_t now, const char **why,
                uint64_t *retry_ms)
{
    struct guard_entry *e = find(g, a);

    *why = NULL;
    *retry_ms = 0;
    if (e != NULL && e->locked_until_ms > now) {
        *why = "too many failed proofs of the secret from this address";
        *retry_ms = e->locked_until_ms - now;
        return -1;
    }
    if (g->pending >= GUARD_MAX_PENDING) {
        *why = "too many connections still in their handshake";
        return -1;
    }
    if (e != NULL && e->pending >= GUARD_MAX_PER_ADDR) {
        *why = "too many connections in their handshake from this address";
        return -1;
    }
    if (e == NULL)
        e = take(g, a, now);
    if (e == NULL) { /* not with fewer than GUARD_MAX_PENDING pending, checked above */
        *why = "too many addresses in their handshake";
        return -1;
    }
    e->pending++;
    g->pending++;
    return 0;
}

enum guard_full guard_full(const struct guard *g, const struct guard_addr *a, uint64_t now)
{
    const struct guard_entry *e = find(g, a);

    if (e != NULL && e->locked_until_ms > now)
        return GUARD_ROOM;
    if (e != NULL && e->pending >= GUARD_MAX_PER_ADDR)
        return GUARD_FULL_ADDR;
    if (g->pending >= GUARD_MAX_PENDING)
        return GUARD_FULL_ALL;
    return GUARD_ROOM;
}

void guard_release(struct guard *g, const struct guard_addr *a)
{
    struct guard_entry *e = find(g, a);

    if (e != NULL && e->pending > 0)
        e->pending--;
    if (g->pending > 0)
        g->pending--;
}

void guard_auth_failed(struct guard *g, const struct guard_addr *a, uint64_t now)
{
    struct guard_entry *e = find(g, a);

    if (e == NULL)
        e = take(g, a, now);
    if (e == NULL)
        return;
    e->failures = live_failures(e, now) + 1;
    e->last_failure_ms = now;
    if (e->failures > GUARD_FREE_FAILURES) {
        unsigned shift = e->failures - GUARD_FREE_FAILURES - 1;
        uint64_t lock = shift >= 6 ? GUARD_MAX_LOCKOUT_MS : 1000u << shift;

        if (lock > GUARD_MAX_LOCKOUT_MS)
            lock = GUARD_MAX_LOCKOUT_MS;
        e->locked_until_ms = now + lock;
    }
}

void guard_auth_succeeded(struct guard *g, const struct guard_addr *a)
{
    struct guard_entry *e = find(g, a);

    if (e != NULL)
        e->failures = 0;
    guard_release(g, a);
}

int guard_locked(const struct guard *g, const struct guard_addr *a, uint64_t now,
                 uint64_t *retry_ms)
{
    const struct guard_entry *e = find(g, a);

    *retry_ms = 0;
    if (e == NULL || e->locked_until_ms <= now)
        return 0;
    *retry_ms = e->locked_until_ms - now;
    return 1;
}
