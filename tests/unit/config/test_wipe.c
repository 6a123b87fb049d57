/* Secrets are wiped before their memory is released (docs/config.md): every block our code and
 * jansson free is searched for the passwords of the config just loaded. free is wrapped at link
 * time (-Wl,--wrap=free, CMakeLists.txt) and jansson gets allocation functions that do the same,
 * so a block freed with a password still in it is seen, whatever path freed it. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"

#define DATA TG_TEST_DATA "/config"

static const char *const secrets[] = {"wipe-keypw-5b1e90c4", "wipe-trustpw-77d2a0f1",
                                      "wipe-envpw-0c3e6b2d", "file-secret-123"};
static size_t n_checked, n_leaked;
static char leaked[128];

void __real_free(void *p);

static void inspect(void *p, size_t size)
{
    n_checked++;
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (memmem(p, size, secrets[i], strlen(secrets[i])) != NULL) {
            if (n_leaked++ == 0)
                snprintf(leaked, sizeof(leaked), "%s (in a block of %zu bytes)", secrets[i], size);
        }
}

void __wrap_free(void *p);
void __wrap_free(void *p)
{
    if (p != NULL)
        inspect(p, malloc_usable_size(p));
    __real_free(p);
}

static void *json_alloc(size_t n)
{
    return malloc(n);
}

static void json_release(void *p)
{
    __wrap_free(p);
}

static void reset(void)
{
    n_checked = n_leaked = 0;
    leaked[0] = '\0';
}

/* The wrapper sees what it must: a block freed with a secret in it is reported. */
static void test_detector_sees_an_unwiped_block(void **state)
{
    (void)state;
    reset();
    char *p = malloc(64);
    snprintf(p, 64, "x=%s;", secrets[0]);
    free(p);
    assert_int_equal(n_leaked, 1);
    reset();
    p = malloc(64);
    snprintf(p, 64, "x=%s;", secrets[0]);
    explicit_bzero(p, 64); /* a plain memset before free may be optimised away */
    free(p);
    assert_int_equal(n_leaked, 0);
    assert_int_equal(n_checked, 1);
}

#define CFG(ks_pw, extra)                                                                          \
    "{\"version\": 1, \"backends\": {\"app\": {\"builtin\": \"status\"}},\n"                       \
    " \"keystores\": {\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\", "                     \
    "\"key_password\": " ks_pw "}},\n" extra                                                       \
    " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"routes\": "             \
    "[{\"backend\": \"app\"}], \"tls\": {\"certificates\": [\"web\"]}}]}\n"

static void load_and_free(const char *json, bool want_ok)
{
    struct tg_config *cfg = NULL;
    struct tg_err err;
    tg_err_init(&err);
    int rc = tg_config_load_string(json, strlen(json), "cfg.json", DATA, &cfg, &err);
    if ((rc == 0) != want_ok)
        tg_err_print(&err, stderr);
    assert_int_equal(rc == 0, want_ok);
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_config_passwords_wiped(void **state)
{
    (void)state;
    setenv("TG_TEST_WIPE_PW", secrets[2], 1);
    static const struct {
        const char *json;
        bool ok;
    } cases[] = {
        {CFG("\"wipe-keypw-5b1e90c4\"", ""), true},
        {CFG("{\"env\": \"TG_TEST_WIPE_PW\"}", ""), true},
        {CFG("{\"file\": \"password.txt\"}", ""), true},
        /* a config that fails after its passwords were read */
        {CFG("\"wipe-keypw-5b1e90c4\"",
             " \"truststores\": {\"t\": {\"type\": \"pkcs12\", \"file\": \"nope.p12\", "
             "\"password\": \"wipe-trustpw-77d2a0f1\"}},\n"),
         false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset();
        load_and_free(cases[i].json, cases[i].ok);
        if (n_leaked != 0)
            fprintf(stderr, "case %zu: %zu freed block(s) still held a password, first %s\n", i,
                    n_leaked, leaked);
        assert_int_equal(n_leaked, 0);
        assert_true(n_checked > 10); /* the config's own frees went through the wrapper */
    }
}

int main(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detector_sees_an_unwiped_block),
        cmocka_unit_test(test_config_passwords_wiped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
