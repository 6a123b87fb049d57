/* Unit tests for http/ws.c: the Sec-WebSocket-Accept expected for a client's key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "http/http.h"

static void test_rfc6455_example(void **state)
{
    (void)state;
    char acc[TG_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(tg_ws_accept_for_key(key, strlen(key), acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_true(tg_ws_accept_ok(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", TG_WS_ACCEPT_LEN));
    assert_false(tg_ws_accept_ok(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo", TG_WS_ACCEPT_LEN - 1));
    assert_false(tg_ws_accept_ok(acc, "S3pPLMBiTxaQ9kYGzzhZRbK+xOo=", TG_WS_ACCEPT_LEN));
    assert_true(tg_ws_accept_ok(acc, " s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\t", TG_WS_ACCEPT_LEN + 2));
    assert_false(tg_ws_accept_ok(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=x", TG_WS_ACCEPT_LEN + 1));
    assert_false(tg_ws_accept_ok(acc, "", 0));
}

static void test_bad_keys(void **state)
{
    (void)state;
    char acc[TG_WS_ACCEPT_LEN + 1];
    const char *bad[] = {"",
                         "dGhlIHNhbXBsZSBub25jZQ",
                         "dGhlIHNhbXBsZSBub25jZQ=!",
                         "dGhlIHNhbXBsZSBub25jZQ==x",
                         "dGhlIHNhbXBsZSBub25j*Q==",
                         "dGhlIHNhbXBsZSBub25jZQZZ"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tg_ws_accept_for_key(bad[i], strlen(bad[i]), acc), -EINVAL);
        assert_string_equal(acc, "");
        /* with no expected value nothing is accepted */
        assert_false(tg_ws_accept_ok(acc, "", 0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6455_example),
        cmocka_unit_test(test_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
