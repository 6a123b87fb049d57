/* Unit tests for the "user", "group" and "sandbox" keys (config/sandbox.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

static char *cfg_with(const char *extra)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    fprintf(f,
            "{\n  \"version\": 1,\n%s\n"
            "  \"backends\": {\"app\": {\"builtin\": \"status\"}},\n"
            "  \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\",\n"
            "    \"routes\": [{\"backend\": \"app\"}], \"tls\": {\"disabled\": true}}]\n}\n",
            extra);
    fclose(f);
    return s;
}

static int load(const char *extra, struct tg_config **cfg, struct tg_err *err)
{
    char *json = cfg_with(extra);
    *cfg = NULL;
    tg_err_init(err);
    int rc = tg_config_load_string(json, strlen(json), "cfg.json", NULL, cfg, err);
    free(json);
    return rc;
}

static bool has(const struct tg_err *err, const char *needle)
{
    for (size_t i = 0; i < err->n; i++) {
        char *s = tg_err_format(err, i);
        bool found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return true;
    }
    fprintf(stderr, "missing \"%s\" among %zu problem(s)\n", needle, err->n);
    return false;
}

static void test_defaults(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    assert_int_equal(load("", &cfg, &err), 0);
    assert_true(cfg->sandbox.enabled);
    assert_false(cfg->sandbox.drop);
    assert_null(cfg->sandbox.user);
    tg_config_free(cfg);
    tg_err_close(&err);

    assert_int_equal(load("  \"sandbox\": {\"enabled\": false},", &cfg, &err), 0);
    assert_false(cfg->sandbox.enabled);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_user_and_group(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    /* nobody is in every Debian passwd; its primary group is nogroup (65534). */
    assert_int_equal(load("  \"user\": \"nobody\",", &cfg, &err), 0);
    assert_true(cfg->sandbox.drop);
    assert_int_equal(cfg->sandbox.uid, 65534);
    assert_int_equal(cfg->sandbox.gid, 65534);
    assert_string_equal(cfg->sandbox.user, "nobody");
    tg_config_free(cfg);
    tg_err_close(&err);

    /* Numbers need no entry; a group overrides the user's. */
    assert_int_equal(load("  \"user\": \"4242\", \"group\": \"4343\",", &cfg, &err), 0);
    assert_int_equal(cfg->sandbox.uid, 4242);
    assert_int_equal(cfg->sandbox.gid, 4343);
    tg_config_free(cfg);
    tg_err_close(&err);

    /* A group alone keeps the uid run has. */
    assert_int_equal(load("  \"group\": \"4343\",", &cfg, &err), 0);
    assert_true(cfg->sandbox.drop);
    assert_int_equal(cfg->sandbox.uid, (unsigned)getuid());
    assert_int_equal(cfg->sandbox.gid, 4343);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_errors(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    assert_int_not_equal(load("  \"user\": \"no-such-user-tg\", \"group\": \"no-such-group-tg\",\n"
                              "  \"sandbox\": {\"enabled\": 1, \"enable\": true},",
                              &cfg, &err),
                         0);
    assert_true(has(&err, "cfg.json:3:11: /user: no user \"no-such-user-tg\" on this system"));
    assert_true(has(&err, "/group: no group \"no-such-group-tg\""));
    assert_true(has(&err, "/sandbox/enabled"));
    assert_true(has(&err, "did you mean \"enabled\""));
    tg_config_free(cfg);
    tg_err_close(&err);

    assert_int_not_equal(load("  \"user\": \"\",", &cfg, &err), 0);
    assert_true(has(&err, "/user: must not be empty"));
    tg_config_free(cfg);
    tg_err_close(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_user_and_group),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
