/* Unit tests for the connection timers (net/ctimer.c): one heap of deadlines per worker, driven
 * by one libuv timer. Deadlines fire in time order, equal ones in arming order; re-arming moves
 * a deadline either way; 0 disarms (the last one stops the worker's timer); a handler may re-arm
 * from its callback; many connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "net/net.h"

#define MAXF 4096

static struct tg_worker worker;
static int fired[MAXF];
static uint64_t fired_at[MAXF];
static size_t n_fired;
static struct tg_conn *conns;
static uint64_t rearm_ms; /* on_timer re-arms by this much once */

static void on_timer(struct tg_conn *c)
{
    size_t id = (size_t)(c - conns);
    fired[n_fired] = (int)id;
    fired_at[n_fired++] = uv_now(&worker.loop);
    if (rearm_ms != 0) {
        uint64_t ms = rearm_ms;
        rearm_ms = 0;
        tg_conn_timer(c, ms);
    }
}

static const struct tg_conn_handler handler = {.on_timer = on_timer};

static void setup_conns(size_t n)
{
    memset(&worker, 0, sizeof(worker));
    assert_int_equal(uv_loop_init(&worker.loop), 0);
    conns = calloc(n, sizeof(*conns));
    for (size_t i = 0; i < n; i++) {
        conns[i].w = &worker;
        conns[i].h = &handler;
        conns[i].state = TG_CONN_OPEN;
    }
    n_fired = 0;
    rearm_ms = 0;
}

static void teardown_conns(void)
{
    if (worker.ctimer_ready)
        uv_close((uv_handle_t *)&worker.ctimer, NULL);
    uv_run(&worker.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&worker.loop), 0);
    free(worker.theap);
    free(conns);
}

static void run_until(size_t want)
{
    while (n_fired < want && uv_run(&worker.loop, UV_RUN_ONCE) != 0)
        ;
}

static void test_order_and_ties(void **state)
{
    (void)state;
    setup_conns(5);
    uint64_t t0 = uv_now(&worker.loop);
    tg_conn_timer(&conns[0], 30);
    tg_conn_timer(&conns[1], 10);
    tg_conn_timer(&conns[2], 20);
    tg_conn_timer(&conns[3], 10); /* the same deadline as 1, armed after it */
    tg_conn_timer(&conns[4], 20);
    run_until(5);
    int want[] = {1, 3, 2, 4, 0};
    assert_int_equal(n_fired, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(fired[i], want[i]);
    assert_true(fired_at[0] >= t0 + 10);
    assert_true(fired_at[4] >= t0 + 30);
    assert_int_equal(worker.theap_len, 0);
    teardown_conns();
}

static void test_rearm_and_disarm(void **state)
{
    (void)state;
    setup_conns(3);
    uint64_t t0 = uv_now(&worker.loop);
    tg_conn_timer(&conns[0], 10);
    tg_conn_timer(&conns[1], 20);
    tg_conn_timer(&conns[2], 30);
    tg_conn_timer(&conns[0], 60); /* later: moved down */
    tg_conn_timer(&conns[2], 5);  /* earlier: moved up */
    tg_conn_timer(&conns[1], 0);  /* disarmed */
    tg_conn_timer(&conns[1], 0);  /* twice is harmless */
    run_until(2);
    assert_int_equal(n_fired, 2);
    assert_int_equal(fired[0], 2);
    assert_int_equal(fired[1], 0);
    assert_true(fired_at[1] >= t0 + 60); /* not at its first deadline (10 ms) */
    assert_int_equal(worker.theap_len, 0);
    teardown_conns();
}

static void test_rearm_from_callback_and_closed(void **state)
{
    (void)state;
    setup_conns(2);
    rearm_ms = 15;
    tg_conn_timer(&conns[0], 5);
    tg_conn_timer(&conns[1], 10);
    run_until(3);
    assert_int_equal(n_fired, 3);
    assert_int_equal(fired[0], 0);
    assert_int_equal(fired[1], 1);
    assert_int_equal(fired[2], 0); /* re-armed from its own callback */
    /* With no deadline left, nothing keeps the loop alive (a worker's or the fuzz harness's). */
    tg_conn_timer(&conns[0], 50);
    tg_conn_timer(&conns[1], 40);
    tg_conn_timer(&conns[1], 0);
    tg_conn_timer(&conns[0], 0);
    assert_int_equal(uv_run(&worker.loop, UV_RUN_NOWAIT), 0);
    /* A closed connection's timer is not armed. */
    conns[1].state = TG_CONN_CLOSED;
    tg_conn_timer(&conns[1], 5);
    assert_int_equal(worker.theap_len, 0);
    teardown_conns();
}

static void test_many(void **state)
{
    (void)state;
    enum { N = 3000 };
    setup_conns(N);
    /* Deadlines 1..40 ms in a scrambled order, a third disarmed again. */
    for (size_t i = 0; i < N; i++)
        tg_conn_timer(&conns[i], 1 + (i * 7919) % 40);
    size_t armed = N;
    for (size_t i = 0; i < N; i += 3, armed--)
        tg_conn_timer(&conns[i], 0);
    assert_int_equal(worker.theap_len, armed);
    run_until(armed);
    assert_int_equal(n_fired, armed);
    for (size_t i = 1; i < n_fired; i++) {
        const struct tg_conn *a = &conns[fired[i - 1]], *b = &conns[fired[i]];
        assert_true(a->t_due < b->t_due || (a->t_due == b->t_due && fired[i - 1] < fired[i]));
        assert_true(fired[i] % 3 != 0);
    }
    teardown_conns();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_rearm_and_disarm),
        cmocka_unit_test(test_rearm_from_callback_and_closed),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
