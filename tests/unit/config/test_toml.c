/* Unit tests for config/toml.c: the TOML 1.0 parts gateway configs use, positions, and the
 * refusals (with line and column) of everything else. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/toml.h"

static json_t *parse_ok(const char *t, struct tg_doc_lines *lines)
{
    struct tg_toml_error err;
    json_t *root = NULL;
    int rc = tg_config_toml_parse(t, strlen(t), &root, lines, &err);
    if (rc != 0)
        fail_msg("refused at %d:%d: %s", err.line, err.col, err.msg);
    return root;
}

/* Expects a refusal at line:col whose message contains want. */
static void parse_bad(const char *t, int line, int col, const char *want)
{
    struct tg_toml_error err;
    struct tg_doc_lines lines = {0};
    json_t *root = NULL;
    assert_int_equal(tg_config_toml_parse(t, strlen(t), &root, &lines, &err), -EINVAL);
    assert_null(root);
    if (strstr(err.msg, want) == NULL || err.line != line || (col > 0 && err.col != col))
        fail_msg("for %s: got %d:%d: %s; want %d:%d: ...%s...", t, err.line, err.col, err.msg, line,
                 col, want);
    tg_config_doc_lines_free(&lines);
}

static void expect_json(json_t *root, const char *want)
{
    char *got = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    free(got);
}

static void test_tables_and_values(void **state)
{
    struct tg_doc_lines lines = {0};
    json_t *root = parse_ok("# top\n"
                            "title = \"x\" # trailing\n"
                            "[listenerConfig]\n"
                            "httpsPort = 9095\n"
                            "keyStore.path = 'C:\\ks.p12'\n"
                            "keyStore.password = \"p\\\"w\"\n"
                            "[mutualSSLConfig]\n"
                            "protocolVersions = [\"TLSv1.2\",\n  \"TLSv1.1\", # old\n]\n"
                            "[[mutualSSLConfig.api.certificates]]\n"
                            "aliasList = [\"a\"]\n"
                            "[[mutualSSLConfig.api.certificates]]\n"
                            "aliasList = []\n"
                            "[a.b.c]\n"
                            "[a]\n"
                            "t = true\n"
                            "f = false\n"
                            "inl = { x = 1, y.z = \"q\" }\n",
                            &lines);
    expect_json(root, "{\"a\":{\"b\":{\"c\":{}},\"f\":false,\"inl\":{\"x\":1,\"y\":{\"z\":\"q\"}},"
                      "\"t\":true},\"listenerConfig\":{\"httpsPort\":9095,\"keyStore\":{"
                      "\"password\":\"p\\\"w\",\"path\":\"C:\\\\ks.p12\"}},\"mutualSSLConfig\":{"
                      "\"api\":{\"certificates\":[{\"aliasList\":[\"a\"]},{\"aliasList\":[]}]},"
                      "\"protocolVersions\":[\"TLSv1.2\",\"TLSv1.1\"]},\"title\":\"x\"}");
    int l, c;
    assert_int_equal(tg_config_doc_find(&lines, "/listenerConfig/keyStore/password", &l, &c), 0);
    assert_int_equal(l, 6);
    assert_int_equal(c, 1);
    assert_int_equal(tg_config_doc_find(&lines, "/mutualSSLConfig/protocolVersions/1", &l, &c), 0);
    assert_int_equal(l, 9);
    assert_int_equal(c, 3);
    assert_int_equal(
        tg_config_doc_find(&lines, "/mutualSSLConfig/api/certificates/1/aliasList", &l, &c), 0);
    assert_int_equal(l, 14);
    assert_int_equal(tg_config_doc_find(&lines, "/a/inl/y/z", &l, &c), 0);
    assert_int_equal(l, 19);
    assert_int_equal(tg_config_doc_find(&lines, "/nope", &l, &c), -ENOENT);
    json_decref(root);
    tg_config_doc_lines_free(&lines);
}

static void test_strings(void **state)
{
    json_t *root = parse_ok("a = \"tab\\there \\u00e9 \\U0001F600 \\\\ \\b\\f\\r\\n\"\n"
                            "b = \"\"\"\nRoses \\\n   are red\"\"\"\n"
                            "c = '''\nraw \\n \"q\" '''\n"
                            "d = \"\"\"two \"\"quotes\"\"\"\"\"\n"
                            "e = ''\n"
                            "\"quoted key\" = 1\n"
                            "'lit.key' = 2\n",
                            NULL);
    expect_json(root, "{\"a\":\"tab\\there \\u00E9 \\uD83D\\uDE00 \\\\ \\b\\f\\r\\n\","
                      "\"b\":\"Roses are red\",\"c\":\"raw \\\\n \\\"q\\\" \",\"d\":\"two "
                      "\\\"\\\"quotes\\\"\\\"\",\"e\":\"\",\"lit.key\":2,\"quoted key\":1}");
    json_decref(root);
}

static void test_numbers(void **state)
{
    json_t *root = parse_ok("i = [0, -17, +3, 1_000, 0x1f, 0xdead_beef, 0o17, 0b101]\n"
                            "big = 9223372036854775807\n"
                            "small = -9223372036854775808\n"
                            "f = [1.5, -2e3, 6.02E+23]\n",
                            NULL);
    expect_json(root, "{\"big\":9223372036854775807,\"f\":[1.5,-2000.0,6.02e23],\"i\":[0,-17,3,"
                      "1000,31,3735928559,15,5],\"small\":-9223372036854775808}");
    json_decref(root);
}

static void test_refusals(void **state)
{
    parse_bad("a = 1\na = 2\n", 2, 1, "duplicate key \"a\"");
    parse_bad("[x]\nk = 1\n[x]\n", 3, 1, "table [x] is defined twice");
    parse_bad("[fruit]\napple.color = \"red\"\n[fruit.apple]\n", 3, 0, "defined twice");
    parse_bad("a = {x = 1}\na.y = 2\n", 2, 0, "already defined");
    parse_bad("a = [1]\n[[a]]\n", 2, 0, "already a value");
    parse_bad("d = 1979-05-27T07:32:00Z\n", 1, 5, "dates and times");
    parse_bad("s = \"open\n", 1, 10, "newline inside a single-line string");
    parse_bad("s = \"\\q\"\n", 1, 7, "unknown escape");
    parse_bad("s = \"\\ud800\"\n", 1, 0, "not a Unicode scalar value");
    parse_bad("k = \"\xff\"\n", 1, 6, "invalid UTF-8");
    parse_bad("k = 01\n", 1, 0, "leading zeros");
    parse_bad("k = 1__0\n", 1, 0, "malformed number");
    parse_bad("k = 9223372036854775808\n", 1, 0, "out of range");
    parse_bad("k = inf\n", 1, 0, "inf and nan");
    parse_bad("k = bare\n", 1, 5, "must be quoted");
    parse_bad("k = 1 2\n", 1, 7, "expected the end of the line");
    parse_bad("k =\n", 1, 4, "expected a value");
    parse_bad("= 1\n", 1, 1, "expected a key");
    parse_bad("k = { a = 1,\n b = 2 }\n", 1, 0, "expected a key");
    parse_bad("k = [1, 2\n", 2, 1, "expected ',' or ']'");
    parse_bad("[a\n", 1, 3, "expected ']'");
    parse_bad("[[a]\n", 1, 0, "expected ']]'");
    parse_bad("k = 1\r\r\n", 1, 0, "carriage return");
    parse_bad("# bell \x07\n", 1, 0, "control character");
    parse_bad("k = \"\"\"never closed\n", 2, 1, "ends inside a string");
}

static void test_deep_nesting(void **state)
{
    char t[300];
    size_t n = 0;
    n += (size_t)snprintf(t, sizeof(t), "x = ");
    for (int i = 0; i < 100; i++)
        t[n++] = '[';
    t[n] = '\0';
    parse_bad(t, 1, 0, "nested deeper");
}

static void test_json_lines(void **state)
{
    const char *t = "{\n  \"tls\": {\n    \"min_version\": \"TLS12\"\n  }\n}\n";
    struct tg_doc_lines lines = {0};
    assert_int_equal(tg_config_json_lines(t, strlen(t), &lines), 0);
    int l, c;
    assert_int_equal(tg_config_doc_find(&lines, "/tls/min_version", &l, &c), 0);
    assert_int_equal(l, 3);
    tg_config_doc_lines_free(&lines);
    assert_int_equal(tg_config_json_lines("{\"a\": ", 6, &lines), -EINVAL);
    tg_config_doc_lines_free(&lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_and_values), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),           cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_deep_nesting),      cmocka_unit_test(test_json_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
