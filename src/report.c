#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "xfer/name.h"
#include "xfer/proto.h"
#include "xfer/report.h"

static int quiet;

void report_set_quiet(int q)
{
    quiet = q;
}

int report_is_quiet(void)
{
    return quiet;
}

void report_info(const char *fmt, ...)
{
    va_list ap;
    char line[1024];

    if (quiet)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "xfer: %s\n", line);
}

void report_error(const char *fmt, ...)
{
    va_list ap;
    char line[1024];

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "xfer: error: %s\n", line);
}

void report_size(uint64_t bytes, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;

    if (bytes < 1024) {
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
        return;
    }
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s", v, units[u]);
}

const char *report_escape(const char *s, char *out, size_t cap)
{
    name_escape(s, strlen(s), out, cap);
    return out;
}

const char *report_escaped(const char *s)
{
    /* Room for the longest peer text with every byte escaped. */
    static char buf[4][PROTO_MAX_TEXT * 4 + 8];
    static int i;

    i = (i + 1) % 4;
    return report_escape(s, buf[i], sizeof(buf[i]));
}

int report_budget_take(struct report_budget *b, uint64_t now, uint64_t *held)
{
    *held = 0;
    while (b->spent > 0 && now >= b->refill_ms) {
        b->spent--;
        b->refill_ms += REPORT_BUDGET_MS;
    }
    if (b->spent >= REPORT_BUDGET_BURST) {
        b->held++;
        return 0;
    }
    if (b->spent == 0)
        b->refill_ms = now + REPORT_BUDGET_MS;
    b->spent++;
    *held = b->held;
    b->held = 0;
    return 1;
}

const char *report_budget_note(uint64_t held, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    out[0] = '\0';
    if (held > 0)
        snprintf(out, cap, " (and %llu more like it, not shown)", (unsigned long long)held);
    return out;
}
