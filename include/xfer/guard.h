/* guard: limits for connections that have not yet proved they hold the
 * secret. At most GUARD_MAX_PENDING of them in all and GUARD_MAX_PER_ADDR
 * from one address; an address whose proofs keep failing is turned away for
 * a while, twice as long each time. A connection counts as pending from
 * guard_admit() until guard_release(). Pure bookkeeping: no I/O; time comes
 * from the caller. The table is fixed-size: it never grows with a flood.
 * When it is full, a new address takes the place of the entry that holds no
 * pending connection and the fewest failures still counted (the stalest of
 * those): the table's fullness never turns an address away, and more than
 * GUARD_TABLE failing addresses can only push out the lightest lock-outs.
 * At a cap the caller may make room by dropping an older pending connection
 * (guard_full() says which cap) rather than turn the new one away. */
#ifndef XFER_GUARD_H
#define XFER_GUARD_H

#include <stdint.h>

#define GUARD_MAX_PENDING 64
#define GUARD_MAX_PER_ADDR 8
#define GUARD_TABLE 256
/* Failures forgiven after this long without another: well past the
 * longest lock-out, so waiting one out does not reset the count. */
#define GUARD_FAIL_WINDOW_MS (10 * 60000)
/* The third failure in a row locks the address out for 1 s, then 2, 4... */
#define GUARD_FREE_FAILURES 2
#define GUARD_MAX_LOCKOUT_MS 60000

struct guard_addr {
    uint8_t bytes[16]; /* IPv6, or IPv4 mapped into it */
};

struct guard_entry {
    struct guard_addr addr;
    int used;
    unsigned pending;
    unsigned failures;
    uint64_t last_failure_ms;
    uint64_t locked_until_ms;
};

struct guard {
    unsigned pending;
    struct guard_entry entries[GUARD_TABLE];
};

/* Admits a new connection from a, or returns -1 with *why set (a static
 * reason) and *retry_ms how long the caller may tell the peer to wait. */
int guard_admit(struct guard *g, const struct guard_addr *a, uint64_t now, const char **why,
                uint64_t *retry_ms);

enum guard_full {
    GUARD_ROOM = 0,  /* guard_admit() will not hit a cap */
    GUARD_FULL_ADDR, /* a holds GUARD_MAX_PER_ADDR pending connections */
    GUARD_FULL_ALL   /* GUARD_MAX_PENDING are pending in all */
};

/* Which cap a new connection from a would hit; a locked-out address is not
 * a full one (guard_admit() turns it away whatever is pending). */
enum guard_full guard_full(const struct guard *g, const struct guard_addr *a, uint64_t now);

/* The connection from a authenticated or went away. */
void guard_release(struct guard *g, const struct guard_addr *a);

/* A proof from a did not match. */
void guard_auth_failed(struct guard *g, const struct guard_addr *a, uint64_t now);

/* A proof from a matched: its failures are forgiven and the connection
 * stops counting as pending. */
void guard_auth_succeeded(struct guard *g, const struct guard_addr *a);

/* 1 while a is locked out, with *retry_ms left. */
int guard_locked(const struct guard *g, const struct guard_addr *a, uint64_t now,
                 uint64_t *retry_ms);

/* Fills a from a sockaddr (AF_INET or AF_INET6); 0, or -1 for others. An
 * IPv6 address counts by its /64: one host usually owns a whole one. */
int guard_addr_from(struct guard_addr *a, const void *sockaddr);

#endif
