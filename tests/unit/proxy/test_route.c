/* Unit tests for proxy/route.c: first-match route selection by host and path prefix, and Host
 * header port stripping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/proxy.h"

#define R(h, p, i)                                                                                 \
    {                                                                                              \
        .host = (char *)(h), .path_prefix = (char *)(p), .backend = "b", .backend_idx = (i)        \
    }

static struct tg_route_conf routes[] = {
    R("api.example.com", "/v1/", 0), /* 0 */
    R("api.example.com", "/", 1),    /* 1: same host, shadowed by 0 for /v1/ */
    R("*.example.com", "/", 2),      /* 2 */
    R("www.example.org", "/", 3),    /* 3 */
    R(NULL, "/static/", 4),          /* 4 */
    R("*.example.net", "/admin", 5), /* 5 */
    R(NULL, NULL, 6),                /* 6: any host, default prefix "/" */
};

static const struct tg_listener_conf listener = {
    .name = "test",
    .routes = routes,
    .n_routes = sizeof(routes) / sizeof(routes[0]),
};

/* Index of the matched route, or -1. host may be NULL. */
static int match(const struct tg_listener_conf *lc, const char *host, const char *path)
{
    const struct tg_route_conf *r =
        tg_route_match(lc, host, host ? strlen(host) : 0, path, strlen(path));
    if (r == NULL)
        return -1;
    assert_true(r >= lc->routes && r < lc->routes + lc->n_routes);
    return (int)(r - lc->routes);
}

static void test_first_match_wins(void **state)
{
    (void)state;
    assert_int_equal(match(&listener, "api.example.com", "/v1/users"), 0);
    assert_int_equal(match(&listener, "api.example.com", "/v1/"), 0);
    /* Route 1 and the wildcard 2 also match, but come later. */
    assert_int_equal(match(&listener, "api.example.com", "/v2/users"), 1);
    assert_int_equal(match(&listener, "api.example.com", "/"), 1);
    /* Reordered: the catch-all first takes everything. */
    struct tg_route_conf rev[] = {R(NULL, "/", 0), R("api.example.com", "/", 1)};
    struct tg_listener_conf l2 = {.routes = rev, .n_routes = 2};
    assert_int_equal(match(&l2, "api.example.com", "/"), 0);
    assert_int_equal(match(&l2, NULL, "/"), 0);
    /* No routes at all. */
    struct tg_listener_conf empty = {.routes = NULL, .n_routes = 0};
    assert_int_equal(match(&empty, "a", "/"), -1);
}

static void test_host_exact_case_insensitive(void **state)
{
    (void)state;
    assert_int_equal(match(&listener, "API.EXAMPLE.COM", "/v1/x"), 0);
    assert_int_equal(match(&listener, "Api.Example.Com", "/x"), 1);
    assert_int_equal(match(&listener, "www.example.org", "/"), 3);
    assert_int_equal(match(&listener, "WWW.Example.ORG", "/"), 3);
    /* Near misses fall through to the catch-all. */
    assert_int_equal(match(&listener, "www.example.or", "/"), 6);
    assert_int_equal(match(&listener, "www.example.orgx", "/"), 6);
    assert_int_equal(match(&listener, "xwww.example.org", "/"), 6);
    assert_int_equal(match(&listener, "", "/"), 6);
    /* host_len is honoured: the bytes after it are not part of the name. */
    static const char hdr[] = "www.example.org:8443";
    const struct tg_route_conf *r = tg_route_match(&listener, hdr, 15, "/", 1);
    assert_ptr_equal(r, &routes[3]);
    r = tg_route_match(&listener, hdr, 14, "/", 1);
    assert_ptr_equal(r, &routes[6]);
}

static void test_trailing_dot(void **state)
{
    (void)state;
    assert_int_equal(match(&listener, "www.example.org.", "/"), 3);
    assert_int_equal(match(&listener, "API.example.com.", "/v1/"), 0);
    assert_int_equal(match(&listener, "a.example.com.", "/"), 2);
    /* Only one dot is removed. */
    assert_int_equal(match(&listener, "www.example.org..", "/"), 6);
    assert_int_equal(match(&listener, ".", "/"), 6);
}

static void test_wildcard(void **state)
{
    (void)state;
    assert_int_equal(match(&listener, "a.example.com", "/"), 2);
    assert_int_equal(match(&listener, "a.b.example.com", "/anything"), 2);
    assert_int_equal(match(&listener, "A.B.EXAMPLE.COM", "/"), 2);
    /* The bare domain is not covered by "*.example.com". */
    assert_int_equal(match(&listener, "example.com", "/"), 6);
    assert_int_equal(match(&listener, "example.com.", "/"), 6);
    /* Nor names that merely end in the same letters, or an empty label. */
    assert_int_equal(match(&listener, "badexample.com", "/"), 6);
    assert_int_equal(match(&listener, ".example.com", "/"), 6);
    assert_int_equal(match(&listener, "a.example.com.evil", "/"), 6);
    /* Wildcard with a path prefix. */
    assert_int_equal(match(&listener, "x.example.net", "/admin/users"), 5);
    assert_int_equal(match(&listener, "x.example.net", "/public"), 6);
    /* Without a catch-all, nothing matches the bare domain. */
    struct tg_route_conf only[] = {R("*.example.com", "/", 0)};
    struct tg_listener_conf l = {.routes = only, .n_routes = 1};
    assert_int_equal(match(&l, "example.com", "/"), -1);
    assert_int_equal(match(&l, "z.example.com", "/"), 0);
    assert_int_equal(match(&l, NULL, "/"), -1);
}

static void test_route_without_host(void **state)
{
    (void)state;
    /* Route 4 has no host: it applies with any Host, or none. */
    assert_int_equal(match(&listener, "unknown.test", "/static/app.css"), 4);
    assert_int_equal(match(&listener, NULL, "/static/app.css"), 4);
    assert_int_equal(match(&listener, "", "/static/"), 4);
    assert_int_equal(match(&listener, NULL, "/"), 6);
    assert_int_equal(match(&listener, NULL, "/v1/x"), 6);
    /* ...but an earlier host route still wins for its host. */
    assert_int_equal(match(&listener, "a.example.com", "/static/app.css"), 2);
}

static void test_path_prefix(void **state)
{
    (void)state;
    struct tg_route_conf r[] = {R(NULL, "/api/", 0), R(NULL, "/img", 1), R(NULL, "/", 2)};
    struct tg_listener_conf l = {.routes = r, .n_routes = 3};
    assert_int_equal(match(&l, "h", "/api/"), 0);
    assert_int_equal(match(&l, "h", "/api/v1?x=1"), 0);
    /* Shorter than the prefix, or differing in it, does not match. */
    assert_int_equal(match(&l, "h", "/api"), 2);
    assert_int_equal(match(&l, "h", "/API/v1"), 2); /* paths are case-sensitive */
    assert_int_equal(match(&l, "h", "/apx/"), 2);
    /* A prefix matches on a segment boundary: "/img" covers "/img/..." but not "/imgs". */
    assert_int_equal(match(&l, "h", "/img"), 1);
    assert_int_equal(match(&l, "h", "/img/a.png"), 1);
    assert_int_equal(match(&l, "h", "/img?x"), 1);
    assert_int_equal(match(&l, "h", "/imgs"), 2);
    /* Without a catch-all, an unmatched path finds nothing. */
    struct tg_listener_conf l2 = {.routes = r, .n_routes = 2};
    assert_int_equal(match(&l2, "h", "/other"), -1);
    assert_int_equal(match(&l2, "h", "/"), -1);
    /* path_len is honoured (the path need not be NUL-terminated). */
    const struct tg_route_conf *m = tg_route_match(&l2, "h", 1, "/api/xyz", 4);
    assert_null(m);
    m = tg_route_match(&l2, "h", 1, "/api/xyz", 5);
    assert_ptr_equal(m, &r[0]);
    /* An empty path matches no prefix (they all start with "/"). */
    assert_int_equal(match(&l, "h", ""), -1);
}

static void test_null_host_with_host_route(void **state)
{
    (void)state;
    struct tg_route_conf r[] = {R("api.example.com", "/", 0), R("*.example.com", "/", 1)};
    struct tg_listener_conf l = {.routes = r, .n_routes = 2};
    assert_int_equal(match(&l, NULL, "/"), -1);
    assert_null(tg_route_match(&l, NULL, 0, "/", 1));
    assert_int_equal(match(&l, "", "/"), -1);
    assert_int_equal(match(&l, "api.example.com", "/"), 0);
}

static size_t strip(const char *s)
{
    return tg_host_strip_port(s, strlen(s));
}

static void test_strip_port(void **state)
{
    (void)state;
    assert_int_equal(strip("example.com:8443"), strlen("example.com"));
    assert_int_equal(strip("[::1]:443"), strlen("[::1]"));
    assert_int_equal(strip("[::1]"), strlen("[::1]"));
    assert_int_equal(strip("host"), strlen("host"));
    assert_int_equal(strip("host:"), strlen("host"));
    assert_int_equal(strip("127.0.0.1:80"), strlen("127.0.0.1"));
    assert_int_equal(strip("[2001:db8::1]:8443"), strlen("[2001:db8::1]"));
    assert_int_equal(strip(""), 0);
    assert_int_equal(strip(":80"), 0);
    /* An unclosed bracket keeps the whole value. */
    assert_int_equal(strip("[::1"), strlen("[::1"));
    /* Only len bytes are looked at. */
    assert_int_equal(tg_host_strip_port("example.com:8443", 7), 7);
    assert_int_equal(tg_host_strip_port("[::1]:443", 4), 4);
    /* Stripped names route like bare ones. */
    static const char hdr[] = "WWW.example.org.:443";
    size_t n = tg_host_strip_port(hdr, strlen(hdr));
    assert_ptr_equal(tg_route_match(&listener, hdr, n, "/", 1), &routes[3]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_host_exact_case_insensitive),
        cmocka_unit_test(test_trailing_dot),
        cmocka_unit_test(test_wildcard),
        cmocka_unit_test(test_route_without_host),
        cmocka_unit_test(test_path_prefix),
        cmocka_unit_test(test_null_host_with_host_route),
        cmocka_unit_test(test_strip_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
