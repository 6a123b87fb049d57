/* The anti-replay register of TLS 1.3 early data (tls/early.c): a ticket carries early data once
 * within the window, again after it; a full neighbourhood refuses rather than forgets; racing
 * threads with the same ticket never both get it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tls/internal.h"
#include "tls/tls.h"

static void test_once_per_window(void **state)
{
    (void)state;
    uint64_t fp = 0x1234567890abcdefULL, now = 1000;
    assert_int_equal(tg_tls__early_register(fp, now), TG_TLS_EARLY_ACCEPTED);
    assert_int_equal(tg_tls__early_register(fp, now), TG_TLS_EARLY_REPLAY);
    assert_int_equal(tg_tls__early_register(fp, now + TG_TLS_EARLY_WINDOW_S), TG_TLS_EARLY_REPLAY);
    /* Another ticket landing on the same slot is not a replay of this one. */
    assert_int_equal(tg_tls__early_register(fp ^ (1ULL << 40), now), TG_TLS_EARLY_ACCEPTED);
    /* Past the window the entry is gone (OpenSSL's freshness check refuses such a replay). */
    assert_int_equal(tg_tls__early_register(fp, now + TG_TLS_EARLY_WINDOW_S + 1),
                     TG_TLS_EARLY_ACCEPTED);
}

static void test_full_refuses(void **state)
{
    (void)state;
    uint64_t now = 5000, slot = 0x77;
    int accepted = 0, full = 0;
    /* 40 tickets that hash to one slot: the probe window holds 32, the rest are refused. */
    for (uint64_t i = 1; i <= 40; i++) {
        enum tg_tls_early r = tg_tls__early_register((i << 32) | slot, now);
        accepted += r == TG_TLS_EARLY_ACCEPTED;
        full += r == TG_TLS_EARLY_FULL;
    }
    assert_int_equal(accepted, 32);
    assert_int_equal(full, 8);
    /* Once they are old, the slots are free again. */
    assert_int_equal(tg_tls__early_register((99ULL << 32) | slot, now + 100),
                     TG_TLS_EARLY_ACCEPTED);
}

#define THREADS 4
#define TICKETS 2000

static atomic_int wins[TICKETS];
static atomic_int go;

static void *racer(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        ;
    for (uint64_t i = 0; i < TICKETS; i++)
        if (tg_tls__early_register(0xabc0000000000000ULL + i * 0x9e3779b97f4a7c15ULL, 9000) ==
            TG_TLS_EARLY_ACCEPTED)
            atomic_fetch_add(&wins[i], 1);
    return NULL;
}

static void test_race_never_twice(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, racer, NULL);
    atomic_store(&go, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < TICKETS; i++)
        assert_true(atomic_load(&wins[i]) <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_per_window),
        cmocka_unit_test(test_full_refuses),
        cmocka_unit_test(test_race_never_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
