/* Unit tests for config/jsonloc.c: JSON pointer to line:column for values and keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/internal.h"

static void at(const struct tg_config__jsonloc *jl, const char *ptr, bool key, int line, int col)
{
    int l = -1, c = -1;
    if (tg_config__jsonloc_find(jl, ptr, key, &l, &c) != 0)
        fail_msg("%s (%s) not found", ptr, key ? "key" : "value");
    if (l != line || c != col)
        fail_msg("%s (%s): got %d:%d, want %d:%d", ptr, key ? "key" : "value", l, c, line, col);
}

static void test_positions(void **state)
{
    const char *t = "{\n"
                    "  \"a\": 1,\n"
                    "  \"list\": [true, {\"x\": null}, \"s\\\"q\"],\n"
                    "\t\"o\": {\"k\": -1.5e3}\r\n"
                    "}";
    struct tg_config__jsonloc jl;
    assert_int_equal(tg_config__jsonloc_build(&jl, t, strlen(t)), 0);
    at(&jl, "", false, 1, 1);
    at(&jl, "/a", true, 2, 3);
    at(&jl, "/a", false, 2, 8);
    at(&jl, "/list", true, 3, 3);
    at(&jl, "/list", false, 3, 11);
    at(&jl, "/list/0", false, 3, 12);
    at(&jl, "/list/1", false, 3, 18);
    at(&jl, "/list/1/x", true, 3, 19);
    at(&jl, "/list/1/x", false, 3, 24);
    at(&jl, "/list/2", false, 3, 31);
    at(&jl, "/o", true, 4, 2);
    at(&jl, "/o/k", false, 4, 13);
    int l, c;
    assert_int_equal(tg_config__jsonloc_find(&jl, "/list/3", false, &l, &c), -ENOENT);
    assert_int_equal(tg_config__jsonloc_find(&jl, "/a", true, &l, &c), 0);
    tg_config__jsonloc_free(&jl);
}

static void test_escaping(void **state)
{
    /* RFC 6901: "~" is "~0" and "/" is "~1"; keys are decoded from JSON escapes first. */
    const char *t = "{\"a/b\": 1, \"m~n\": 2, \"\\u00e9\\/\": 3, \"\\ud83d\\ude00\": 4, \"\": 5}";
    struct tg_config__jsonloc jl;
    assert_int_equal(tg_config__jsonloc_build(&jl, t, strlen(t)), 0);
    at(&jl, "/a~1b", false, 1, 9);
    at(&jl, "/m~0n", true, 1, 12);
    at(&jl, "/\xc3\xa9~1", false, 1, 34);
    at(&jl, "/\xf0\x9f\x98\x80", true, 1, 37);
    at(&jl, "/", false, 1, 60);
    tg_config__jsonloc_free(&jl);

    char *p = tg_config__ptr_join("/keystores", "a/b~c");
    assert_string_equal(p, "/keystores/a~1b~0c");
    free(p);
    p = tg_config__ptr_index("/listeners", 12);
    assert_string_equal(p, "/listeners/12");
    free(p);
}

static void test_invalid_inputs(void **state)
{
    static const char *const bad[] = {
        "",     "{",        "{\"a\"",     "{\"a\":}",    "[1,]",     "[01]", "\"\\x\"",
        "nul",  "[1 2]",    "{\"a\" 1}",  "\"\\ud800\"", "-",        "1.",   "1e",
        "{} x", "\"a\nb\"", "{\"a\":1,}", "[\"\\u12\"]", "\x80\xff", "[-]",  "{1:2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tg_config__jsonloc jl;
        if (tg_config__jsonloc_build(&jl, bad[i], strlen(bad[i])) != -EINVAL)
            fail_msg("accepted bad input #%zu", i);
        tg_config__jsonloc_free(&jl);
    }
    /* Positions before the error are kept. */
    struct tg_config__jsonloc jl;
    assert_int_equal(tg_config__jsonloc_build(&jl, "{\"a\": 1, \"b\": ?}", 16), -EINVAL);
    at(&jl, "/a", false, 1, 7);
    at(&jl, "/b", true, 1, 10);
    tg_config__jsonloc_free(&jl);
    /* Text is taken by length, not up to a NUL. */
    assert_int_equal(tg_config__jsonloc_build(&jl, "[1]xyz", 3), 0);
    tg_config__jsonloc_free(&jl);
}

static void test_depth_and_prefixes(void **state)
{
    size_t n = 5000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    struct tg_config__jsonloc jl;
    assert_int_equal(tg_config__jsonloc_build(&jl, deep, 2 * n), -EINVAL);
    tg_config__jsonloc_free(&jl);
    assert_int_equal(tg_config__jsonloc_build(&jl, deep + n - 100, 200), 0);
    tg_config__jsonloc_free(&jl);
    free(deep);

    /* Every prefix of a valid document is handled without reading past its end. */
    const char *t = "{\"a\": [1, {\"b\\u0041\": \"x\\n\"}], \"c\": -0.5e+2, \"d\": false}";
    size_t len = strlen(t);
    for (size_t i = 0; i <= len; i++) {
        char *copy = malloc(i ? i : 1);
        memcpy(copy, t, i);
        int rc = tg_config__jsonloc_build(&jl, copy, i);
        assert_int_equal(rc, i == len ? 0 : -EINVAL);
        tg_config__jsonloc_free(&jl);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_inputs),
        cmocka_unit_test(test_depth_and_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
