/* Unit tests for the per-worker buffer-block cache (net/conncache.c): one class per block size,
 * each at most BUFCACHE_DEPTH (64) blocks deep, four classes. A size never takes a second class
 * (neither when its class is full nor by taking over another size's emptied class while its own
 * has blocks), so the other sizes keep theirs; what the cache holds is read back through
 * tg_conn_bufcache_shrink(w, 0), which frees it all and says how many bytes that was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "net/net.h"

enum { A = 4096, B = 16384, C = 32768, D = 65536, DEPTH = 64 };

static struct tg_worker worker;

static void put_new(size_t cap, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct tg_buf b;
        memset(&b, 0, sizeof(b));
        tg_buf_ensure(&b, cap);
        assert_int_equal(b.cap, cap);
        tg_conn_buf_put(&worker, &b);
        assert_null(b.data); /* cached or freed: the buffer is empty either way */
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&worker, 0, sizeof(worker));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_conn_bufcache_free(&worker);
    return 0;
}

static void test_one_size_per_class_and_bounded(void **state)
{
    (void)state;
    put_new(A, DEPTH);
    assert_int_equal(tg_conn_bufcache_shrink(&worker, DEPTH), 0);
    put_new(A, 3 * DEPTH); /* over the depth: freed, not given the other classes */
    put_new(B, DEPTH);
    put_new(C, DEPTH);
    put_new(D, DEPTH);
    assert_int_equal(tg_conn_bufcache_shrink(&worker, 0), (size_t)DEPTH * (A + B + C + D));
    assert_int_equal(tg_conn_bufcache_shrink(&worker, 0), 0);
}

static void test_an_emptied_class_is_not_taken_by_a_size_that_has_one(void **state)
{
    (void)state;
    put_new(A, 1);
    put_new(B, 1);
    put_new(C, 1);
    put_new(D, 1);
    /* A's class is emptied: B, which has a class with room, must not take it over */
    struct tg_buf b;
    memset(&b, 0, sizeof(b));
    tg_conn_buf_get(&worker, &b, A);
    assert_int_equal(b.cap, A);
    tg_buf_free(&b);
    put_new(B, 1);
    put_new(A, 1); /* so A still has a class to go back to */
    assert_int_equal(tg_conn_bufcache_shrink(&worker, 0), (size_t)A + 2 * B + C + D);
}

static void test_an_emptied_class_goes_to_a_new_size(void **state)
{
    (void)state;
    put_new(A, 2);
    put_new(B, 1);
    put_new(C, 1);
    put_new(D, 1);
    enum { E = 8192 };
    put_new(E, 1); /* every class taken: freed */
    assert_int_equal(tg_conn_bufcache_shrink(&worker, DEPTH), 0);
    struct tg_buf b1, b2;
    memset(&b1, 0, sizeof(b1));
    memset(&b2, 0, sizeof(b2));
    tg_conn_buf_get(&worker, &b1, A);
    tg_conn_buf_get(&worker, &b2, A);
    tg_buf_free(&b1);
    tg_buf_free(&b2);
    put_new(E, 1); /* A's class is empty: E takes it */
    assert_int_equal(tg_conn_bufcache_shrink(&worker, 0), (size_t)B + C + D + E);
}

static void test_get_takes_the_cached_block(void **state)
{
    (void)state;
    struct tg_buf b;
    memset(&b, 0, sizeof(b));
    tg_buf_ensure(&b, B);
    char *p = b.data;
    tg_conn_buf_put(&worker, &b);
    tg_conn_buf_get(&worker, &b, A); /* another size: a new block */
    assert_ptr_not_equal(b.data, p);
    tg_buf_free(&b);
    tg_conn_buf_get(&worker, &b, B);
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.cap, B);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    tg_buf_free(&b);
    assert_int_equal(tg_conn_bufcache_shrink(&worker, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_size_per_class_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_emptied_class_is_not_taken_by_a_size_that_has_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_emptied_class_goes_to_a_new_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_takes_the_cached_block, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
