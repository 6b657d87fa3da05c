/* report: the budget for lines strangers can cause. Pure bookkeeping, so
 * every test passes the clock; T0 stands for any uv_now() reading. */
#include <stdint.h>

#include <criterion/criterion.h>

#include "xfer/report.h"

#define T0 UINT64_C(7000000)

Test(report, a_budget_lets_a_burst_through_then_holds_lines_back)
{
    /* Checks REPORT_BUDGET_BURST lines at once go out, none with lines held before them, and the
     * next ones at the same moment are held back. */
    struct report_budget b = {0};
    uint64_t held = 7;

    for (int i = 0; i < REPORT_BUDGET_BURST; i++) {
        cr_assert_eq(report_budget_take(&b, T0, &held), 1, "line %d", i + 1);
        cr_assert_eq(held, 0);
    }
    for (int i = 0; i < 100; i++)
        cr_assert_eq(report_budget_take(&b, T0, &held), 0, "held line %d went out", i + 1);
}

Test(report, a_spent_budget_lets_one_line_a_second_through_with_the_count_held)
{
    /* Checks a spent budget: held until REPORT_BUDGET_MS after the burst, then one line, which
     * carries the count of those held back; the next comes a second later. */
    struct report_budget b = {0};
    uint64_t held = 0;

    for (int i = 0; i < REPORT_BUDGET_BURST; i++)
        cr_assert_eq(report_budget_take(&b, T0, &held), 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(report_budget_take(&b, T0 + REPORT_BUDGET_MS - 1, &held), 0);
    cr_assert_eq(report_budget_take(&b, T0 + REPORT_BUDGET_MS, &held), 1);
    cr_assert_eq(held, 3, "%llu lines held, want 3", (unsigned long long)held);
    cr_assert_eq(report_budget_take(&b, T0 + REPORT_BUDGET_MS, &held), 0);
    cr_assert_eq(report_budget_take(&b, T0 + 2 * REPORT_BUDGET_MS - 1, &held), 0);
    cr_assert_eq(report_budget_take(&b, T0 + 2 * REPORT_BUDGET_MS, &held), 1);
    cr_assert_eq(held, 2);
}

Test(report, a_flood_gets_at_most_one_line_a_second_past_the_burst)
{
    /* Checks a line asked for every millisecond for 60 s: at most the burst plus one a second go
     * out, and every line held back is counted by a later one. */
    struct report_budget b = {0};
    uint64_t counted = 0;
    uint64_t out = 0;
    uint64_t held;

    for (uint64_t t = 0; t < 60000; t++) {
        if (report_budget_take(&b, T0 + t, &held) == 1) {
            out++;
            counted += held;
        }
    }
    cr_assert_leq(out, REPORT_BUDGET_BURST + 60);
    cr_assert_geq(out, 60);
    cr_assert_eq(report_budget_take(&b, T0 + 120000, &held), 1);
    cr_assert_eq(counted + held + out, 60000, "lines lost without being counted");
}

Test(report, a_budget_left_alone_fills_up_again)
{
    /* Checks that after a burst and REPORT_BUDGET_BURST quiet seconds, a whole burst goes out. */
    struct report_budget b = {0};
    uint64_t later = T0 + REPORT_BUDGET_BURST * REPORT_BUDGET_MS;
    uint64_t held;

    for (int i = 0; i < REPORT_BUDGET_BURST; i++)
        cr_assert_eq(report_budget_take(&b, T0, &held), 1);
    for (int i = 0; i < REPORT_BUDGET_BURST; i++)
        cr_assert_eq(report_budget_take(&b, later, &held), 1, "line %d", i + 1);
    cr_assert_eq(report_budget_take(&b, later, &held), 0);
}
