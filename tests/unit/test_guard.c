/* guard: pre-authentication limits and lock-out. Pure bookkeeping, so every
 * test passes the clock explicitly; T0 stands for any uv_now() reading. (It
 * does not include helpers.h, whose guard-page struct shares the name.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <criterion/criterion.h>

#include "xfer/guard.h"

#define T0 UINT64_C(5000000)

static struct guard *guard_new(void)
{
    struct guard *g = calloc(1, sizeof(*g));

    cr_assert_not_null(g);
    return g;
}

/* The guard address of an IPv4 address given as text, with any port. */
static struct guard_addr v4(const char *text, uint16_t port)
{
    struct sockaddr_in sin;
    struct guard_addr a;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1, "%s", text);
    cr_assert_eq(guard_addr_from(&a, &sin), 0);
    return a;
}

static struct guard_addr v6(const char *text)
{
    struct sockaddr_in6 sin6;
    struct guard_addr a;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(40000);
    cr_assert_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1, "%s", text);
    cr_assert_eq(guard_addr_from(&a, &sin6), 0);
    return a;
}

/* The n-th of many distinct IPv4 addresses (10.x.y.z). */
static struct guard_addr nth(uint32_t n)
{
    struct sockaddr_in sin;
    struct guard_addr a;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x0a000000u + n);
    cr_assert_eq(guard_addr_from(&a, &sin), 0);
    return a;
}

/* guard_admit, with why and retry_ms going to the caller's variables. */
static int admit(struct guard *g, const struct guard_addr *a, uint64_t now, const char **why,
                 uint64_t *retry_ms)
{
    const char *w = NULL;
    uint64_t r = 0;
    int rc = guard_admit(g, a, now, &w, &r);

    if (why != NULL)
        *why = w;
    if (retry_ms != NULL)
        *retry_ms = r;
    if (rc == 0)
        cr_assert_null(w, "admitted with a reason \"%s\"", w);
    else
        cr_assert(w != NULL && w[0] != '\0', "refused without a reason");
    return rc;
}

/* Admits a connection from a and lets it go, as one that fails its proof. */
static void fail_once(struct guard *g, const struct guard_addr *a, uint64_t now)
{
    cr_assert_eq(admit(g, a, now, NULL, NULL), 0, "not admitted at %llu",
                 (unsigned long long)(now - T0));
    guard_auth_failed(g, a, now);
    guard_release(g, a);
}

static unsigned entries_used(const struct guard *g)
{
    unsigned n = 0;

    for (int i = 0; i < GUARD_TABLE; i++)
        n += g->entries[i].used ? 1u : 0u;
    return n;
}

/* ---- pending connections ---- */

Test(guard, admits_max_per_addr_from_one_address_and_refuses_the_next)
{
    /* Checks GUARD_MAX_PER_ADDR admissions from one address, then -1 with a reason, no retry. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.7", 50000);
    const char *why;
    uint64_t retry;

    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0, "connection %d", i + 1);
    cr_assert_eq(admit(g, &a, T0, &why, &retry), -1);
    cr_assert_eq(retry, 0, "a busy address is not a locked one");
    cr_assert_eq(g->pending, GUARD_MAX_PER_ADDR);
    free(g);
}

Test(guard, the_per_address_limit_leaves_other_addresses_alone)
{
    /* Checks that one address at its limit does not stop another from being admitted. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.7", 1);
    struct guard_addr b = v4("192.0.2.8", 1);

    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    cr_assert_eq(admit(g, &b, T0, NULL, NULL), 0);
    free(g);
}

Test(guard, admits_max_pending_in_all_and_refuses_the_next_from_anywhere)
{
    /* Checks GUARD_MAX_PENDING admissions from many addresses, then -1 even for a new address. */
    struct guard *g = guard_new();
    struct guard_addr fresh = v4("198.51.100.1", 1);
    const char *why;
    uint64_t retry;

    for (uint32_t i = 0; i < GUARD_MAX_PENDING; i++) {
        struct guard_addr a = nth(i);

        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0, "address %u", i);
    }
    cr_assert_eq(admit(g, &fresh, T0, &why, &retry), -1);
    cr_assert_eq(retry, 0);
    cr_assert_eq(g->pending, GUARD_MAX_PENDING);
    free(g);
}

Test(guard, full_names_the_cap_a_new_connection_would_hit)
{
    /* Checks guard_full(): room, then the per-address cap for that address only, then the
     * global cap for everyone; releasing one makes room again. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.7", 1);
    struct guard_addr other = v4("192.0.2.8", 1);

    cr_assert_eq(guard_full(g, &a, T0), GUARD_ROOM);
    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    cr_assert_eq(guard_full(g, &a, T0), GUARD_FULL_ADDR);
    cr_assert_eq(guard_full(g, &other, T0), GUARD_ROOM);
    for (uint32_t i = 0; g->pending < GUARD_MAX_PENDING; i++) {
        struct guard_addr n = nth(i);

        cr_assert_eq(admit(g, &n, T0, NULL, NULL), 0);
    }
    cr_assert_eq(guard_full(g, &other, T0), GUARD_FULL_ALL);
    cr_assert_eq(guard_full(g, &a, T0), GUARD_FULL_ADDR,
                 "its own cap first: evicting there makes room under both");
    guard_release(g, &a);
    cr_assert_eq(guard_full(g, &a, T0), GUARD_ROOM);
    free(g);
}

Test(guard, full_does_not_offer_room_to_a_locked_address)
{
    /* Checks that a locked-out address at its cap is not reported full (nothing should be
     * evicted for it: guard_admit() turns it away regardless). */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(guard_full(g, &a, T0), GUARD_ROOM);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    free(g);
}

Test(guard, the_three_refusals_give_three_different_reasons)
{
    /* Checks that per-address, global and lock-out refusals each say which limit was hit. */
    struct guard *g = guard_new();
    struct guard_addr busy = nth(0);
    struct guard_addr locked = v4("203.0.113.9", 1);
    const char *per_addr;
    const char *global;
    const char *lockout;

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &locked, T0);
    cr_assert_eq(admit(g, &locked, T0, &lockout, NULL), -1);
    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &busy, T0, NULL, NULL), 0);
    cr_assert_eq(admit(g, &busy, T0, &per_addr, NULL), -1);
    for (uint32_t i = 1; g->pending < GUARD_MAX_PENDING; i++) {
        struct guard_addr a = nth(i);

        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    }
    {
        struct guard_addr a = nth(1000);

        cr_assert_eq(admit(g, &a, T0, &global, NULL), -1);
    }
    cr_assert_str_neq(per_addr, global);
    cr_assert_str_neq(per_addr, lockout);
    cr_assert_str_neq(global, lockout);
    free(g);
}

Test(guard, release_frees_a_per_address_slot)
{
    /* Checks that after one release an address at its limit is admitted once more, not twice. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.7", 1);

    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    guard_release(g, &a);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    free(g);
}

Test(guard, release_frees_a_global_slot)
{
    /* Checks that with every global slot taken, one release lets a new address in. */
    struct guard *g = guard_new();
    struct guard_addr first = nth(0);
    struct guard_addr fresh = v4("198.51.100.1", 1);

    for (uint32_t i = 0; i < GUARD_MAX_PENDING; i++) {
        struct guard_addr a = nth(i);

        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    }
    cr_assert_eq(admit(g, &fresh, T0, NULL, NULL), -1);
    guard_release(g, &first);
    cr_assert_eq(g->pending, GUARD_MAX_PENDING - 1);
    cr_assert_eq(admit(g, &fresh, T0, NULL, NULL), 0);
    free(g);
}

/* ---- failed proofs and lock-out ---- */

Test(guard, the_free_failures_do_not_lock)
{
    /* Checks that GUARD_FREE_FAILURES failures in a row still leave the address admitted. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);

    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0 + (uint64_t)i);
    cr_assert_eq(admit(g, &a, T0 + GUARD_FREE_FAILURES, NULL, NULL), 0);
    free(g);
}

Test(guard, the_next_failure_locks_for_one_second)
{
    /* Checks failure GUARD_FREE_FAILURES + 1: refused at once with retry_ms 1000. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    uint64_t retry;

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &a, T0, NULL, &retry), -1);
    cr_assert_eq(retry, 1000);
    free(g);
}

Test(guard, a_lockout_expires_with_time)
{
    /* Checks a 1 s lock: still refused at +999 ms (retry 1 ms), admitted at +1000 ms. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    uint64_t retry;

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &a, T0 + 999, NULL, &retry), -1);
    cr_assert_eq(retry, 1);
    cr_assert_eq(admit(g, &a, T0 + 1000, NULL, &retry), 0);
    free(g);
}

Test(guard, lockouts_double_up_to_the_maximum)
{
    /* Checks each failure after a lock ends: 1, 2, 4, 8, 16, 32 s, then GUARD_MAX_LOCKOUT_MS. */
    static const uint64_t want[] = {1000,  2000,  4000,  8000,  16000,
                                    32000, 60000, 60000, 60000, 60000};
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    uint64_t now = T0;

    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, now);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        uint64_t retry = 0;

        fail_once(g, &a, now);
        cr_assert_eq(admit(g, &a, now, NULL, &retry), -1, "lock %zu", i + 1);
        cr_assert_eq(retry, want[i], "lock %zu: %llu ms", i + 1, (unsigned long long)retry);
        cr_assert_leq(retry, GUARD_MAX_LOCKOUT_MS);
        now += retry; /* the next attempt comes as soon as the lock ends */
    }
    free(g);
}

Test(guard, failures_spaced_within_the_window_add_up)
{
    /* Checks failures each GUARD_FAIL_WINDOW_MS - 1 apart: the third still locks. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    uint64_t now = T0;

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++) {
        fail_once(g, &a, now);
        now += GUARD_FAIL_WINDOW_MS - 1;
    }
    now -= GUARD_FAIL_WINDOW_MS - 1;
    cr_assert_eq(admit(g, &a, now, NULL, NULL), -1);
    free(g);
}

Test(guard, failures_older_than_the_window_are_forgiven)
{
    /* Checks GUARD_FREE_FAILURES failures, then a pause past the window: the next does not lock. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    uint64_t later = T0 + GUARD_FAIL_WINDOW_MS + 1;

    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    fail_once(g, &a, later);
    cr_assert_eq(admit(g, &a, later, NULL, NULL), 0, "old failures still counted");
    /* and counting starts over: GUARD_FREE_FAILURES more lock */
    for (int i = 1; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, later);
    cr_assert_eq(admit(g, &a, later, NULL, NULL), 0);
    fail_once(g, &a, later);
    cr_assert_eq(admit(g, &a, later, NULL, NULL), -1);
    free(g);
}

Test(guard, a_lockout_applies_only_to_its_own_address)
{
    /* Checks that a locked address does not stop a neighbour (next IPv4 address) coming in. */
    struct guard *g = guard_new();
    struct guard_addr bad = v4("203.0.113.9", 1);
    struct guard_addr good = v4("203.0.113.10", 1);

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &bad, T0);
    cr_assert_eq(admit(g, &bad, T0, NULL, NULL), -1);
    cr_assert_eq(admit(g, &good, T0, NULL, NULL), 0);
    free(g);
}

/* ---- success and queries ---- */

Test(guard, a_success_forgives_earlier_failures)
{
    /* Checks failures, a success, then GUARD_FREE_FAILURES more: still admitted (count reset). */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);

    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    guard_auth_succeeded(g, &a);
    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0 + 1);
    cr_assert_eq(admit(g, &a, T0 + 1, NULL, NULL), 0, "failures before the success still counted");
    free(g);
}

Test(guard, a_success_releases_the_connection)
{
    /* Checks that guard_auth_succeeded frees the pending slot, per address and in all. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.7", 1);

    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    guard_auth_succeeded(g, &a);
    cr_assert_eq(g->pending, GUARD_MAX_PER_ADDR - 1);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    free(g);
}

Test(guard, locked_reports_a_lock_and_the_time_left)
{
    /* Checks guard_locked: 0 for unknown and merely failing addresses, 1 and retry while locked. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    struct guard_addr other = v4("203.0.113.10", 1);
    uint64_t retry = 7;

    cr_assert_eq(guard_locked(g, &other, T0, &retry), 0);
    cr_assert_eq(retry, 0);
    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(guard_locked(g, &a, T0, &retry), 0);
    fail_once(g, &a, T0);
    cr_assert_eq(guard_locked(g, &a, T0 + 250, &retry), 1);
    cr_assert_eq(retry, 750);
    cr_assert_eq(guard_locked(g, &a, T0 + 1000, &retry), 0);
    cr_assert_eq(retry, 0);
    free(g);
}

/* ---- addresses ---- */

Test(guard, ipv4_and_ipv6_addresses_are_distinct)
{
    /* Checks that locking 192.0.2.1 leaves ::c000:201, 64:ff9b::c000:201 and 2001:db8:: admitted.
     */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.1", 1);
    static const char *const others[] = {"::c000:201", "64:ff9b::c000:201", "2001:db8::c000:201"};

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        struct guard_addr b = v6(others[i]);

        cr_assert_eq(admit(g, &b, T0, NULL, NULL), 0, "%s", others[i]);
    }
    free(g);
}

Test(guard, a_v4_mapped_ipv6_address_is_the_same_host)
{
    /* Checks that ::ffff:192.0.2.1 (a dual-stack socket's view) shares 192.0.2.1's lock. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.1", 1);
    struct guard_addr mapped = v6("::ffff:192.0.2.1");

    cr_assert_arr_eq(a.bytes, mapped.bytes, sizeof(a.bytes));
    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &mapped, T0, NULL, NULL), -1);
    free(g);
}

Test(guard, v4_mapped_addresses_are_not_grouped_by_their_64)
{
    /* Checks that locking ::ffff:192.0.2.1 leaves ::ffff:192.0.2.2 (same /64) admitted. */
    struct guard *g = guard_new();
    struct guard_addr a = v6("::ffff:192.0.2.1");
    struct guard_addr b = v6("::ffff:192.0.2.2");

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    cr_assert_eq(admit(g, &b, T0, NULL, NULL), 0);
    free(g);
}

Test(guard, ipv6_addresses_in_one_64_count_as_one_address)
{
    /* Checks that 2001:db8:1:2::1 and 2001:db8:1:2:ffff:... share a lock-out and a count. */
    struct guard *g = guard_new();
    struct guard_addr a = v6("2001:db8:1:2::1");
    struct guard_addr b = v6("2001:db8:1:2:ffff:ffff:ffff:ffff");
    struct guard_addr c = v6("2001:db8:1:2:1234:5678:9abc:def0");

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &b, T0, NULL, NULL), -1, "a neighbour in the /64 escaped the lock");
    cr_assert_eq(admit(g, &c, T0 + 1000, NULL, NULL), 0);
    for (int i = 1; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0 + 1000, NULL, NULL), 0);
    cr_assert_eq(admit(g, &b, T0 + 1000, NULL, NULL), -1, "the /64 got more than its share");
    free(g);
}

Test(guard, ipv6_addresses_in_different_64s_are_distinct)
{
    /* Checks that locking 2001:db8:1:2::1 leaves 2001:db8:1:3::1 admitted. */
    struct guard *g = guard_new();
    struct guard_addr a = v6("2001:db8:1:2::1");
    struct guard_addr b = v6("2001:db8:1:3::1");

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    cr_assert_eq(admit(g, &b, T0, NULL, NULL), 0);
    free(g);
}

Test(guard, the_port_does_not_make_another_address)
{
    /* Checks that connections from one IPv4 host on different ports share one per-address count. */
    struct guard *g = guard_new();

    for (int i = 0; i < GUARD_MAX_PER_ADDR; i++) {
        struct guard_addr a = v4("192.0.2.7", (uint16_t)(40000 + i));

        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    }
    {
        struct guard_addr a = v4("192.0.2.7", 50000);

        cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1);
    }
    free(g);
}

Test(guard, addr_from_refuses_other_families)
{
    /* Checks guard_addr_from on an AF_UNIX and an AF_UNSPEC address: -1. */
    struct sockaddr_un sun;
    struct sockaddr_storage none;
    struct guard_addr a;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memset(&none, 0, sizeof(none));
    none.ss_family = AF_UNSPEC;
    cr_assert_eq(guard_addr_from(&a, &sun), -1);
    cr_assert_eq(guard_addr_from(&a, &none), -1);
}

/* ---- a flood of addresses ---- */

#define FLOOD 10000

/* Admits and releases one connection from each of FLOOD new addresses, each
 * one admitted and, if failing, failing its proof once (a guesser with many
 * addresses). Checks the table never holds more than GUARD_TABLE. */
static void flood(struct guard *g, uint64_t now, int failing)
{
    for (uint32_t i = 0; i < FLOOD; i++) {
        struct guard_addr a = nth(0x100000u + i);

        cr_assert_eq(admit(g, &a, now, NULL, NULL), 0, "flood address %u refused", i);
        if (failing)
            guard_auth_failed(g, &a, now);
        guard_release(g, &a);
        cr_assert_leq(entries_used(g), GUARD_TABLE);
    }
}

Test(guard, a_flood_of_addresses_never_outgrows_the_table)
{
    /* Checks 10,000 addresses admitted and released: all admitted, never > GUARD_TABLE used. */
    struct guard *g = guard_new();

    flood(g, T0, 0);
    cr_assert_eq(entries_used(g), GUARD_TABLE);
    cr_assert_eq(g->pending, 0);
    free(g);
}

Test(guard, an_address_with_pending_connections_survives_a_flood)
{
    /* Checks that an address holding 1 connection keeps its count through 10,000 failing others. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("192.0.2.7", 1);

    cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    flood(g, T0, 1);
    /* were its entry evicted and remade, MAX_PER_ADDR more would get in */
    for (int i = 1; i < GUARD_MAX_PER_ADDR; i++)
        cr_assert_eq(admit(g, &a, T0, NULL, NULL), 0);
    cr_assert_eq(admit(g, &a, T0, NULL, NULL), -1, "the pending connection was forgotten");
    cr_assert_eq(g->pending, GUARD_MAX_PER_ADDR);
    free(g);
}

Test(guard, a_locked_address_stays_locked_through_a_flood)
{
    /* Checks that 10,000 addresses failing later cannot push a locked (and staler) one out. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);
    uint64_t retry;

    for (int i = 0; i <= GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    flood(g, T0 + 1, 1);
    cr_assert_eq(admit(g, &a, T0 + 2, NULL, &retry), -1, "the lock was washed out");
    cr_assert_eq(retry, 998);
    free(g);
}

Test(guard, recent_failures_survive_a_flood)
{
    /* Checks that an address one failure short of a lock is still one short after a flood. */
    struct guard *g = guard_new();
    struct guard_addr a = v4("203.0.113.9", 1);

    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &a, T0);
    flood(g, T0 + 1, 0);
    fail_once(g, &a, T0 + 2);
    cr_assert_eq(admit(g, &a, T0 + 2, NULL, NULL), -1, "the failures were washed out");
    free(g);
}

/* ---- a table full of lock-outs ---- */

/* Connections counted as pending for a's entry; 0 if it has none. */
static unsigned pending_of(const struct guard *g, const struct guard_addr *a)
{
    for (int i = 0; i < GUARD_TABLE; i++) {
        if (g->entries[i].used && memcmp(&g->entries[i].addr, a, sizeof(*a)) == 0)
            return g->entries[i].pending;
    }
    return 0;
}

/* The IPv6 address whose first 64 bits are prefix and last 64 are host. */
static struct guard_addr in_64(uint64_t prefix, uint64_t host)
{
    struct sockaddr_in6 sin6;
    struct guard_addr a;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    for (int i = 0; i < 8; i++) {
        sin6.sin6_addr.s6_addr[i] = (uint8_t)(prefix >> (56 - 8 * i));
        sin6.sin6_addr.s6_addr[8 + i] = (uint8_t)(host >> (56 - 8 * i));
    }
    cr_assert_eq(guard_addr_from(&a, &sin6), 0);
    return a;
}

/* Locks out each of n addresses nth(base + i), in order, one millisecond apart from start:
 * GUARD_FREE_FAILURES + 1 failures each (a guesser with many addresses). */
static void lock_many(struct guard *g, uint32_t base, uint32_t n, uint64_t start)
{
    for (uint32_t i = 0; i < n; i++) {
        struct guard_addr a = nth(base + i);

        for (int k = 0; k <= GUARD_FREE_FAILURES; k++)
            fail_once(g, &a, start + i);
        cr_assert_eq(guard_locked(g, &a, start + i, &(uint64_t){0}), 1, "address %u", i);
    }
}

Test(guard, a_table_full_of_lockouts_still_admits_a_fresh_address)
{
    /* Checks GUARD_TABLE addresses all locked out at once: a fresh address is admitted,
     * authenticates and is admitted again; the one lock-out it displaced is the stalest, and
     * every other still holds with its full time left. */
    struct guard *g = guard_new();
    struct guard_addr fresh = v4("198.51.100.1", 1);
    uint64_t now = T0 + GUARD_TABLE;
    const char *why = NULL;

    lock_many(g, 0, GUARD_TABLE, T0);
    cr_assert_eq(entries_used(g), GUARD_TABLE);
    cr_assert_eq(admit(g, &fresh, now, &why, NULL), 0, "a fresh address was turned away: %s", why);
    guard_auth_succeeded(g, &fresh);
    cr_assert_eq(g->pending, 0);
    cr_assert_eq(admit(g, &fresh, now, NULL, NULL), 0, "turned away once authenticated");
    guard_release(g, &fresh);
    for (uint32_t i = 1; i < GUARD_TABLE; i++) {
        struct guard_addr a = nth(i);
        uint64_t retry = 0;

        cr_assert_eq(admit(g, &a, now, NULL, &retry), -1, "the lock on address %u is gone", i);
        cr_assert_eq(retry, T0 + i + 1000 - now, "address %u", i);
    }
    {
        struct guard_addr first = nth(0);

        cr_assert_eq(guard_locked(g, &first, now, &(uint64_t){0}), 0,
                     "the stalest lock-out was not the one displaced");
    }
    free(g);
}

Test(guard, a_fresh_address_gets_in_when_every_entry_is_locked_or_pending)
{
    /* Checks a table of GUARD_MAX_PENDING - 1 addresses with a connection pending and the rest
     * locked out: a fresh address is admitted, and no pending count was lost to make room. */
    struct guard *g = guard_new();
    struct guard_addr fresh = v4("198.51.100.1", 1);
    uint64_t now = T0 + GUARD_TABLE;

    lock_many(g, 0, GUARD_TABLE - (GUARD_MAX_PENDING - 1), T0);
    for (uint32_t i = 0; i < GUARD_MAX_PENDING - 1; i++) {
        struct guard_addr a = nth(10000 + i);

        cr_assert_eq(admit(g, &a, now, NULL, NULL), 0);
    }
    cr_assert_eq(entries_used(g), GUARD_TABLE);
    cr_assert_eq(admit(g, &fresh, now, NULL, NULL), 0, "a fresh address was turned away");
    for (uint32_t i = 0; i < GUARD_MAX_PENDING - 1; i++) {
        struct guard_addr a = nth(10000 + i);

        cr_assert_eq(pending_of(g, &a), 1, "address %u lost its pending connection", i);
    }
    cr_assert_eq(pending_of(g, &fresh), 1);
    free(g);
}

Test(guard, a_flood_of_failing_addresses_keeps_a_full_table_of_lockouts)
{
    /* Checks GUARD_TABLE locked addresses, then 10,000 more that fail once each: every one of
     * the flood is admitted (the table's fullness turns no one away), and the flood displaces
     * only its own lighter entries and the one stalest lock-out the first of it took. */
    struct guard *g = guard_new();
    uint64_t now = T0 + GUARD_TABLE;

    lock_many(g, 0, GUARD_TABLE, T0);
    flood(g, now, 1);
    for (uint32_t i = 1; i < GUARD_TABLE; i++) {
        struct guard_addr a = nth(i);

        cr_assert_eq(guard_locked(g, &a, now, &(uint64_t){0}), 1, "the lock on %u was lost", i);
    }
    free(g);
}

Test(guard, more_lockouts_than_the_table_push_out_the_lightest_first)
{
    /* Checks an address locked out 4 times (8 s), then GUARD_TABLE + 100 addresses locked once
     * after it: the heavy lock-out, though the stalest, outlives the flood. */
    struct guard *g = guard_new();
    struct guard_addr heavy = v4("203.0.113.9", 1);
    uint64_t now = T0;
    uint64_t retry = 0;

    for (int i = 0; i < GUARD_FREE_FAILURES; i++)
        fail_once(g, &heavy, now);
    for (int i = 0; i < 4; i++) {
        fail_once(g, &heavy, now);
        cr_assert_eq(guard_locked(g, &heavy, now, &retry), 1);
        now += i < 3 ? retry : 0;
    }
    cr_assert_eq(retry, 8000);
    lock_many(g, 0, GUARD_TABLE + 100, now);
    cr_assert_eq(guard_locked(g, &heavy, now + GUARD_TABLE + 100, &retry), 1,
                 "the heavy lock-out was pushed out");
    free(g);
}

Test(guard, a_host_minting_addresses_in_its_64_takes_one_entry)
{
    /* Checks 1,000 addresses of one IPv6 /64, each connecting and failing once: one entry in the
     * table, locked out from the third failure, and a neighbouring /64 still admitted. */
    struct guard *g = guard_new();
    struct guard_addr other = v6("2001:db8:1:3::1");
    int admitted = 0;

    for (int i = 0; i < 1000; i++) {
        struct guard_addr a = in_64(0x20010db800010002ull, (uint64_t)i * 0x9e3779b97f4a7c15ull);

        if (admit(g, &a, T0, NULL, NULL) == 0) {
            admitted++;
            guard_auth_failed(g, &a, T0);
            guard_release(g, &a);
        }
    }
    cr_assert_eq(entries_used(g), 1, "the /64 took %u entries", entries_used(g));
    cr_assert_eq(admitted, GUARD_FREE_FAILURES + 1, "%d addresses of the /64 were admitted",
                 admitted);
    cr_assert_eq(admit(g, &other, T0, NULL, NULL), 0);
    free(g);
}
