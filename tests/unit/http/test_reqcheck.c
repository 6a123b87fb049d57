/* Unit tests for http/reqcheck.c (the request checks every protocol shares) and the field helpers
 * of http/head.c over a head as data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/http.h"

/* Checks "METHOD target" with the given fields ("name", "value", ... NULL); target is copied into
 * a writable buffer, as the sessions hand it over. */
struct result {
    enum tg_hfail f;
    char target[128];
    char host[128];
};

static struct result check(const char *method, const char *target, bool host_optional,
                           bool reject_us, const char *const *fields)
{
    static char tbuf[256];
    struct result r = {0};
    struct tg_http_head h;
    tg_http_head_init(&h, 16);
    snprintf(tbuf, sizeof(tbuf), "%s", target);
    h.method = method;
    h.method_len = (uint32_t)strlen(method);
    h.target = tbuf;
    h.target_len = (uint32_t)strlen(tbuf);
    for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2)
        assert_true(tg_http_head_add(&h, fields[i], strlen(fields[i]), fields[i + 1],
                                     strlen(fields[i + 1])));
    struct tg_http_request_facts facts;
    r.f = tg_http_request_check(&h, host_optional, reject_us, &facts);
    if (r.f == TG_HF_NONE) {
        snprintf(r.target, sizeof(r.target), "%.*s", (int)h.target_len, h.target);
        if (facts.host != NULL)
            snprintf(r.host, sizeof(r.host), "%.*s", (int)facts.host_len, facts.host);
        else
            memcpy(r.host, "(none)", 7);
    }
    tg_http_head_free(&h);
    return r;
}

static void test_accepted(void **state)
{
    (void)state;
    const char *const host[] = {"Host", "Example.com:8443", NULL};
    struct result r = check("GET", "/a/./b/../c?x=%41", false, false, host);
    assert_int_equal(r.f, TG_HF_NONE);
    assert_string_equal(r.target, "/a/c?x=%41");
    assert_string_equal(r.host, "Example.com:8443");
    /* An absolute-form target's authority replaces Host; the target keeps its origin part. */
    const char *const other[] = {"Host", "ignored", NULL};
    r = check("GET", "http://api.example:80/%7Ex", false, false, other);
    assert_int_equal(r.f, TG_HF_NONE);
    assert_string_equal(r.target, "/~x");
    assert_string_equal(r.host, "api.example:80");
    r = check("OPTIONS", "*", false, false, host);
    assert_int_equal(r.f, TG_HF_NONE);
    assert_string_equal(r.target, "*");
    /* HTTP/1.0 may leave Host out. */
    r = check("GET", "/", true, false, NULL);
    assert_int_equal(r.f, TG_HF_NONE);
    assert_string_equal(r.host, "(none)");
    const char *const v6[] = {"host", "[::1]:8080", "X_Y", "1", NULL};
    r = check("GET", "/", false, false, v6);
    assert_int_equal(r.f, TG_HF_NONE);
    assert_string_equal(r.host, "[::1]:8080");
}

static void test_refused(void **state)
{
    (void)state;
    const char *const host[] = {"Host", "a", NULL};
    const char *const twice[] = {"Host", "a", "X", "1", "host", "b", NULL};
    const char *const bad[] = {"Host", "a b", NULL};
    const char *const us[] = {"Host", "a", "X_Y", "1", NULL};
    assert_int_equal(check("GET", "/", false, false, twice).f, TG_HF_HOST_REPEATED);
    assert_int_equal(check("GET", "ftp://a/", false, false, host).f, TG_HF_TARGET_FORM);
    assert_int_equal(check("GET", "a/b", false, false, host).f, TG_HF_TARGET_FORM);
    assert_int_equal(check("GET", "http://u:p@a/", false, false, host).f, TG_HF_USERINFO);
    assert_int_equal(check("GET", "/", false, false, NULL).f, TG_HF_HOST_MISSING);
    assert_int_equal(check("GET", "/", false, false, bad).f, TG_HF_HOST_INVALID);
    assert_int_equal(check("GET", "http://a:x/", false, false, NULL).f, TG_HF_HOST_INVALID);
    assert_int_equal(check("GET", "/%zz", false, false, host).f, TG_HF_TARGET_MALFORMED);
    assert_int_equal(check("GET", "/a#frag", false, false, host).f, TG_HF_TARGET_MALFORMED);
    assert_int_equal(check("GET", "*", false, false, host).f, TG_HF_STAR);
    assert_int_equal(check("GET", "/", false, true, us).f, TG_HF_UNDERSCORE);
    assert_int_equal(check("GET", "/", false, false, us).f, TG_HF_NONE);
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    struct tg_http_head h;
    tg_http_head_init(&h, 8);
    assert_true(tg_http_head_add(&h, "Connection", 10, "close, X-Secret ,host", 21));
    assert_true(tg_http_head_add(&h, "X-Secret", 8, "1", 1));
    assert_true(tg_http_head_add(&h, "Host", 4, "a", 1));
    assert_true(tg_http_head_add(&h, "TE", 2, "trailers", 8));
    assert_true(tg_http_head_add(&h, "Upgrade", 7, "websocket", 9));
    assert_true(tg_http_head_add(&h, "Accept", 6, "*/*", 3));
    h.has_connection = true;
    assert_true(tg_http_head_is_hop_by_hop(&h, &h.fields[0]));
    assert_true(tg_http_head_is_hop_by_hop(&h, &h.fields[1]));  /* named in Connection */
    assert_false(tg_http_head_is_hop_by_hop(&h, &h.fields[2])); /* Host is never stripped */
    assert_true(tg_http_head_is_hop_by_hop(&h, &h.fields[3]));
    assert_true(tg_http_head_is_hop_by_hop(&h, &h.fields[4]));
    assert_false(tg_http_head_is_hop_by_hop(&h, &h.fields[5]));
    assert_true(tg_http_head_has_token(&h, "connection", "X-SECRET"));
    assert_false(tg_http_head_has_token(&h, "connection", "secret"));
    assert_ptr_equal(tg_http_head_find(&h, "te"), &h.fields[3]);
    assert_null(tg_http_head_find(&h, "cookie"));
    tg_http_head_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_hop_by_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
