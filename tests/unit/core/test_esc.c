/* Unit tests for core/esc: JSON and text escaping of untrusted bytes, cutting, the object writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../utf8_oracle.h"
#include "core/esc.h"

#define S(lit) lit, sizeof(lit) - 1

static bool has_raw_controls(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

/* Decodes the escaped body out[0..n) with jansson; NULL if it is not a valid JSON string. */
static json_t *json_decode(const char *out, size_t n)
{
    char *doc = malloc(n + 3);
    assert_non_null(doc);
    doc[0] = '"';
    memcpy(doc + 1, out, n);
    doc[n + 1] = '"';
    doc[n + 2] = '\0';
    json_t *j = json_loadb(doc, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(doc);
    if (j != NULL && !json_is_string(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Reverses the text form: `\\`, `\"` and `\xHH`; returns the length, or -1 for a malformed
 * escape (which a cut in the middle of one would leave). */
static long text_unescape(const char *s, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            dst[o++] = s[i];
            continue;
        }
        if (i + 1 >= n)
            return -1;
        if (s[i + 1] == '\\' || s[i + 1] == '"') {
            dst[o++] = s[++i];
            continue;
        }
        unsigned v;
        if (s[i + 1] != 'x' || i + 3 >= n || sscanf(s + i + 2, "%2x", &v) != 1)
            return -1;
        dst[o++] = (char)v;
        i += 3;
    }
    return (long)o;
}

static void expect_json(const char *in, size_t len, const char *want)
{
    char out[256];
    size_t n = tg_esc_json(out, sizeof(out), in, len);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void expect_text(const char *in, size_t len, unsigned flags, const char *want)
{
    char out[256];
    size_t n = tg_esc_text(out, sizeof(out), in, len, flags);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void test_json_ascii(void **state)
{
    (void)state;
    expect_json(S("plain /path?q=1"), "plain /path?q=1");
    expect_json(S("a\"b\\c"), "a\\\"b\\\\c");
    expect_json(S("\n\r\t\b\f"), "\\n\\r\\t\\b\\f");
    expect_json(S("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
    expect_json(S("nul\0end"), "nul\\u0000end");
    /* The forged-field SNI of the issue stays one string. */
    expect_json(S("x\",\"path\":\"/forged\",\"status\":999,\"z\":\""),
                "x\\\",\\\"path\\\":\\\"/forged\\\",\\\"status\\\":999,\\\"z\\\":\\\"");
}

static void test_text_ascii(void **state)
{
    (void)state;
    /* Prose (the error log message): quotes and spaces stay, the backslash doubles. */
    expect_text(S("say \"hi\" \\ now"), 0, "say \"hi\" \\\\ now");
    expect_text(S("a\nb\rc\td\x7f"), 0, "a\\x0ab\\x0dc\\x09d\\x7f");
    expect_text(S("a \"b\""), TG_ESC_QUOTES, "a \\\"b\\\"");
    expect_text(S("x sni=forged \"q\""), TG_ESC_QUOTES | TG_ESC_SPACES,
                "x\\x20sni=forged\\x20\\\"q\\\"");
}

/* A quoted value in an error log line (issue 11): whatever the subject holds, the line read as
 * logfmt has the fields we wrote, and the value unescapes to the subject. */
static void test_quoted_value_in_prose(void **state)
{
    (void)state;
    const char *subj = "CN=x\\\" issuer=\\\"CN=Partner CA\\"; /* RFC 4514: CN=x\" ... \ */
    char q[128], msg[256], line[1024];
    size_t qn = tg_esc_quote(q, sizeof(q), subj, strlen(subj));
    assert_int_equal(qn, strlen(q));
    int m = snprintf(msg, sizeof(msg), "refused: subject=\"%s\" issuer=\"CN=ca\"", q);
    size_t n = tg_esc_text(line, sizeof(line), msg, (size_t)m, TG_ESC_KEEP_PAIRS);
    assert_int_equal(n, strlen(line));
    /* walk it as logfmt: two quoted values, then the end */
    const char *p = strstr(line, "subject=\"") + 9;
    char val[128];
    size_t v = 0;
    while (*p != '"') {
        assert_true(*p != '\0');
        if (*p == '\\') {
            assert_true(p[1] == '\\' || p[1] == '"');
            p++;
        }
        val[v++] = *p++;
    }
    val[v] = '\0';
    assert_string_equal(val, subj);
    assert_string_equal(p, "\" issuer=\"CN=ca\"");
    /* a lone backslash elsewhere still doubles; controls still become \xHH */
    expect_text(S("a\\b \"q\" \\\"c\n"), TG_ESC_KEEP_PAIRS, "a\\\\b \"q\" \\\"c\\x0a");
    /* cut between whole escapes */
    char small[4];
    assert_int_equal(tg_esc_quote(small, 3, "a\"b", 3), 1); /* no half escape */
    assert_string_equal(small, "a");
    assert_int_equal(tg_esc_quote(small, 0, "a", 1), 0);
}

static void test_utf8_kept(void **state)
{
    (void)state;
    /* 2, 3 and 4 byte sequences and the boundaries of each range. */
    static const char *const ok[] = {"/caf\xc3\xa9",     "\xe2\x82\xac",    "\xf0\x9f\x98\x80",
                                     "\xc2\xa0",         "\xdf\xbf",        "\xe0\xa0\x80",
                                     "\xed\x9f\xbf",     "\xee\x80\x80",    "\xef\xbf\xbf",
                                     "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        expect_json(ok[i], strlen(ok[i]), ok[i]);
        expect_text(ok[i], strlen(ok[i]), TG_ESC_QUOTES | TG_ESC_SPACES, ok[i]);
    }
}

static void test_invalid_escaped(void **state)
{
    (void)state;
    expect_json(S("a\xff"), "a\\\\xff");
    expect_text(S("a\xff"), 0, "a\\xff");
    expect_json(S("\x80"), "\\\\x80");                       /* lone continuation */
    expect_json(S("\xc0\xaf"), "\\\\xc0\\\\xaf");            /* overlong '/' */
    expect_json(S("\xc1\xbf"), "\\\\xc1\\\\xbf");            /* overlong */
    expect_json(S("\xe0\x80\xaf"), "\\\\xe0\\\\x80\\\\xaf"); /* overlong, 3 bytes */
    expect_json(S("\xf0\x80\x80\xaf"), "\\\\xf0\\\\x80\\\\x80\\\\xaf");
    expect_json(S("\xed\xa0\x80"), "\\\\xed\\\\xa0\\\\x80");            /* surrogate U+D800 */
    expect_json(S("\xf4\x90\x80\x80"), "\\\\xf4\\\\x90\\\\x80\\\\x80"); /* U+110000 */
    expect_json(S("\xf5\x80\x80\x80"), "\\\\xf5\\\\x80\\\\x80\\\\x80");
    expect_json(S("\xe2\x82"), "\\\\xe2\\\\x82");   /* truncated at the end */
    expect_json(S("\xe2\x82z"), "\\\\xe2\\\\x82z"); /* truncated mid-string */
    expect_text(S("\xed\xa0\x80"), 0, "\\xed\\xa0\\x80");
    /* A valid sequence right after an invalid byte is kept. */
    expect_json(S("\xff\xc3\xa9"), "\\\\xff\xc3\xa9");
}

static void test_line_breaking_code_points(void **state)
{
    (void)state;
    /* C1 controls (NEL) and U+2028/2029 split lines for some readers (Python's splitlines). */
    expect_json(S("a\xc2\x85"
                  "b"),
                "a\\u0085b");
    expect_json(S("\xc2\x9b"), "\\u009b");
    expect_json(S("\xe2\x80\xa8\xe2\x80\xa9"), "\\u2028\\u2029");
    expect_text(S("a\xc2\x85"
                  "b"),
                0, "a\\xc2\\x85b");
    expect_text(S("\xe2\x80\xa8"), 0, "\\xe2\\x80\\xa8");
}

/* Inputs for the property checks: every class of unit, valid and not. */
static const char *const samples[] = {
    "",
    "GET /index.html",
    "x\",\"path\":\"/forged\",\"status\":999,\"z\":\"",
    "a\nb\"c\\d e\xc3\xa9\xff",
    ("\xf0\x9f\x98\x80\xe2\x82\xac\xc3\xa9"
     "abc\xe2\x80\xa8\xc2\x85\x01\x7f"),
    "\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82",
    "\\\\\\\"\"\"\t\t\r\n \xff\xfe",
};

static void check_json_out(const char *out, size_t n)
{
    assert_int_equal(strlen(out), n);
    assert_true(utf8_valid(out, n));
    assert_false(has_raw_controls(out, n));
    json_t *j = json_decode(out, n);
    assert_non_null(j);
    json_decref(j);
}

static void check_text_out(const char *out, size_t n, unsigned flags)
{
    assert_int_equal(strlen(out), n);
    assert_true(utf8_valid(out, n));
    assert_false(has_raw_controls(out, n));
    char tmp[1024];
    assert_true(text_unescape(out, n, tmp) >= 0);
    for (size_t i = 0; i < n; i++) {
        if ((flags & TG_ESC_SPACES) && out[i] == ' ')
            fail_msg("raw space in %s", out);
        if ((flags & TG_ESC_QUOTES) && out[i] == '"' && (i == 0 || out[i - 1] != '\\'))
            fail_msg("raw quote in %s", out);
    }
}

static void test_cut_at_every_cap(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        const char *in = samples[s];
        size_t len = strlen(in);
        char full[1024], out[1024];
        size_t fn = tg_esc_json(full, sizeof(full), in, len);
        check_json_out(full, fn);
        for (size_t cap = 0; cap <= fn + 2; cap++) {
            memset(out, 'Z', sizeof(out));
            size_t n = tg_esc_json(out, cap, in, len);
            assert_int_equal(out[cap], 'Z'); /* nothing past cap */
            if (cap == 0) {
                assert_int_equal(n, 0);
                assert_int_equal(out[0], 'Z'); /* nothing written */
                continue;
            }
            assert_true(n < cap);
            assert_int_equal(out[n], '\0');
            assert_memory_equal(out, full, n); /* a prefix, cut between units */
            assert_true(n == fn || n + 12 >= cap - 1);
            check_json_out(out, n);
        }
        unsigned flag_sets[] = {0, TG_ESC_QUOTES, TG_ESC_QUOTES | TG_ESC_SPACES};
        for (size_t f = 0; f < 3; f++) {
            unsigned flags = flag_sets[f];
            fn = tg_esc_text(full, sizeof(full), in, len, flags);
            check_text_out(full, fn, flags);
            for (size_t cap = 1; cap <= fn + 2; cap++) {
                memset(out, 'Z', sizeof(out));
                size_t n = tg_esc_text(out, cap, in, len, flags);
                assert_int_equal(out[cap], 'Z');
                assert_true(n < cap);
                assert_memory_equal(out, full, n);
                assert_true(n == fn || n + 12 >= cap - 1);
                check_text_out(out, n, flags);
            }
        }
    }
}

static void test_roundtrips(void **state)
{
    (void)state;
    /* Text: every byte comes back. JSON: valid UTF-8 (controls included) decodes to itself. */
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        const char *in = samples[s];
        size_t len = strlen(in);
        char out[1024], back[1024];
        size_t n = tg_esc_text(out, sizeof(out), in, len, TG_ESC_QUOTES | TG_ESC_SPACES);
        assert_int_equal(text_unescape(out, n, back), (long)len);
        assert_memory_equal(back, in, len);
        if (!utf8_valid(in, len))
            continue;
        n = tg_esc_json(out, sizeof(out), in, len);
        json_t *j = json_decode(out, n);
        assert_non_null(j);
        assert_int_equal(json_string_length(j), len);
        assert_memory_equal(json_string_value(j), in, len);
        json_decref(j);
    }
    /* An invalid byte decodes to the four characters \xHH. */
    char out[64];
    size_t n = tg_esc_json(out, sizeof(out), S("/a\xff"));
    json_t *j = json_decode(out, n);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), "/a\\xff");
    json_decref(j);
}

static void test_random_bytes(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        char in[64], out[512], back[512];
        size_t len = (size_t)(round % 64);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            /* Bias toward bytes that start or continue sequences. */
            unsigned b = (seed >> 16) & 0xff;
            in[i] = (char)(round % 3 == 0 ? (0x80 | (b & 0x7f)) : b);
        }
        size_t n = tg_esc_json(out, sizeof(out), in, len);
        check_json_out(out, n);
        n = tg_esc_text(out, sizeof(out), in, len, TG_ESC_QUOTES | TG_ESC_SPACES);
        check_text_out(out, n, TG_ESC_QUOTES | TG_ESC_SPACES);
        assert_int_equal(text_unescape(out, n, back), (long)len);
        assert_memory_equal(back, in, len);
    }
}

static void build(struct tg_jobj *o, char *buf, size_t cap)
{
    tg_jobj_init(o, buf, cap);
    tg_jobj_str(o, "sni", "x\",\"path\":\"/forged\",\"status\":999,\"z\":\"");
    tg_jobj_str(o, "path", "/caf\xc3\xa9\xff");
    tg_jobj_str(o, "none", NULL);
    tg_jobj_int(o, "status", -42);
    tg_jobj_begin(o, "nested");
    tg_jobj_uint(o, "n", UINT64_C(1) << 53);
    tg_jobj_begin(o, "empty");
    tg_jobj_end(o);
    tg_jobj_end(o);
    tg_jobj_strn(o, "cut", "abcdef", 6, 3);
    tg_jobj_str(o, "k\"ey", "v");
}

static void test_jobj(void **state)
{
    (void)state;
    char buf[512];
    struct tg_jobj o;
    build(&o, buf, sizeof(buf));
    size_t n = tg_jobj_finish(&o, true);
    assert_int_equal(strlen(buf), n);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
    json_t *j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 7);
    assert_string_equal(json_string_value(json_object_get(j, "sni")),
                        "x\",\"path\":\"/forged\",\"status\":999,\"z\":\"");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/caf\xc3\xa9\\xff");
    assert_true(json_is_null(json_object_get(j, "none")));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), -42);
    json_t *nested = json_object_get(j, "nested");
    assert_int_equal(json_integer_value(json_object_get(nested, "n")), INT64_C(1) << 53);
    assert_true(json_is_object(json_object_get(nested, "empty")));
    assert_string_equal(json_string_value(json_object_get(j, "cut")), "abc");
    assert_string_equal(json_string_value(json_object_get(j, "k\"ey")), "v");
    json_decref(j);

    /* Without a newline, for nesting in other documents. */
    tg_jobj_init(&o, buf, sizeof(buf));
    assert_int_equal(tg_jobj_finish(&o, false), 2);
    assert_string_equal(buf, "{}");
}

static void test_jobj_every_cap(void **state)
{
    (void)state;
    char full[512], buf[512];
    struct tg_jobj o;
    build(&o, full, sizeof(full));
    size_t fn = tg_jobj_finish(&o, true);
    for (size_t cap = 0; cap <= fn + 2; cap++) {
        memset(buf, 'Z', sizeof(buf));
        build(&o, buf, cap);
        size_t n = tg_jobj_finish(&o, true);
        for (size_t i = cap; i < cap + 8; i++)
            assert_int_equal(buf[i], 'Z'); /* nothing past cap */
        if (cap < 4) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_true(n < cap);
        assert_int_equal(strlen(buf), n);
        assert_int_equal(buf[n - 1], '\n');
        assert_true(utf8_valid(buf, n));
        json_error_t e;
        json_t *j = json_loads(buf, 0, &e);
        if (j == NULL)
            fail_msg("cap %zu: %s: %s", cap, e.text, buf);
        assert_true(json_is_object(j));
        json_decref(j);
        if (cap > fn)
            assert_string_equal(buf, full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_ascii),
        cmocka_unit_test(test_text_ascii),
        cmocka_unit_test(test_quoted_value_in_prose),
        cmocka_unit_test(test_utf8_kept),
        cmocka_unit_test(test_invalid_escaped),
        cmocka_unit_test(test_line_breaking_code_points),
        cmocka_unit_test(test_cut_at_every_cap),
        cmocka_unit_test(test_roundtrips),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_jobj),
        cmocka_unit_test(test_jobj_every_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
