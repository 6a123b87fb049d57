/* Unit tests for the keystore and truststore schema of pkcs12/jks/jceks files and for "enc:"
 * passwords in config loading (with a stand-in decryptor: the real one is tested in tls). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/core.h"

#define DATA TG_TEST_DATA "/config"

#define CFG(keystores, truststores)                                                                \
    "{\"version\": 1, \"backends\": {\"s\": {\"builtin\": \"status\"}},\n"                         \
    " \"keystores\": {" keystores "},\n"                                                           \
    " \"truststores\": {" truststores "},\n"                                                       \
    " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"routes\": "             \
    "[{\"backend\": \"s\"}], \"tls\": {\"certificates\": [\"web\"]}}]}\n"

#define WEB "\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\"}"

static char *all_text(const struct tg_err *err)
{
    char *all = tg_xstrdup("");
    for (size_t i = 0; i < err->n; i++) {
        char *s = tg_err_format(err, i), *n = tg_xasprintf("%s%s\n", all, s);
        free(all);
        free(s);
        all = n;
    }
    return all;
}

static bool has(const struct tg_err *err, const char *needle)
{
    char *all = all_text(err);
    bool found = strstr(all, needle) != NULL;
    if (!found)
        fprintf(stderr, "missing \"%s\" in:\n%s", needle, all);
    free(all);
    return found;
}

static int load(const char *json, struct tg_config **cfg, struct tg_err *err)
{
    *cfg = NULL;
    tg_err_init(err);
    return tg_config_load_string(json, strlen(json), "cfg.json", DATA, cfg, err);
}

static void test_store_keystore(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    assert_int_equal(load(CFG(WEB ", \"j\": {\"type\": \"jks\", \"file\": \"web.crt\", "
                                  "\"password\": \"sp\", \"alias\": \"Web\", \"key_password\": "
                                  "{\"file\": \"password.txt\"}}",
                              "\"t\": {\"type\": \"jceks\", \"file\": \"web.crt\", \"aliases\": "
                              "[\"a\", \"b\"]}"),
                          &cfg, &err),
                     0);
    const struct tg_keystore_conf *j = tg_config_keystore(cfg, "j");
    assert_string_equal(j->type, "jks");
    assert_string_equal(j->file, DATA "/web.crt");
    assert_string_equal(j->password, "sp");
    assert_string_equal(j->alias, "Web");
    assert_string_equal(j->key_password, "file-secret-123");
    assert_null(j->cert_file);
    const struct tg_truststore_conf *t = tg_config_truststore(cfg, "t");
    assert_string_equal(t->type, "jceks");
    assert_null(t->password);
    assert_int_equal(t->n_aliases, 2);
    assert_string_equal(t->aliases[1], "b");
    tg_config_free(cfg);
    tg_err_close(&err);
}

static void test_store_keystore_errors(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    assert_int_not_equal(
        load(CFG(WEB ", \"p\": {\"type\": \"pkcs12\", \"file\": \"web.crt\", \"cert\": \"x\", "
                     "\"alias\": \"\"},"
                     " \"q\": {\"type\": \"PKCS12\"}, \"r\": {\"type\": \"jceks\", \"file\": "
                     "\"nope.jks\", \"password\": \"pw\"}",
                 "\"t\": {\"type\": \"jks\", \"file\": \"web.crt\", \"aliases\": []}, "
                 "\"u\": {\"type\": \"pkcs12\", \"file\": \"web.crt\", \"aliases\": [\"\"]}"),
             &cfg, &err),
        0);
    assert_true(has(&err, "/keystores/p/cert: unknown key \"cert\""));
    assert_true(has(&err, "/keystores/p: missing required key \"password\""));
    assert_true(has(&err, "/keystores/p/alias: must not be empty"));
    assert_true(has(&err, "/keystores/q/type: \"PKCS12\" is not a keystore type (allowed: pem, "
                          "pkcs12, jks, jceks, acme; lower case)"));
    assert_true(has(&err, "/keystores/r/file: cannot read \"nope.jks\": No such file"));
    assert_true(has(&err, "/truststores/t/aliases: must name at least one alias"));
    assert_true(has(&err, "/truststores/u/aliases/0: must be a non-empty string"));
    char *all = all_text(&err);
    assert_null(strstr(all, "\"pw\""));
    free(all);
    tg_err_close(&err);
}

/* A stand-in decryptor: "enc:ok-X" opens to "X", anything else fails. */
static int fake_open(const struct tg_keystore_conf *internal, const char *value, char **plain,
                     char *why, size_t why_len)
{
    assert_string_equal(internal->name, "internal");
    if (strncmp(value, "enc:ok-", 7) != 0) {
        snprintf(why, why_len, "the value does not authenticate");
        return -1;
    }
    *plain = tg_xstrdup(value + 7);
    return 0;
}

static void test_enc_passwords(void **state)
{
    struct tg_config *cfg;
    struct tg_err err;
    tg_config_set_secret_opener(fake_open);
    assert_int_equal(load(CFG("\"internal\": {\"cert\": \"web.crt\", \"key\": \"web.key\"}, "
                              "\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\", "
                              "\"key_password\": \"enc:ok-secret\"}",
                              "\"t\": {\"type\": \"jks\", \"file\": \"web.crt\", \"password\": "
                              "\"enc:ok-trust\"}"),
                          &cfg, &err),
                     0);
    assert_string_equal(tg_config_keystore(cfg, "web")->key_password, "secret");
    assert_string_equal(tg_config_truststore(cfg, "t")->password, "trust");
    tg_config_free(cfg);
    tg_err_close(&err);

    assert_int_not_equal(
        load(CFG("\"internal\": {\"cert\": \"web.crt\", \"key\": \"web.key\", \"key_password\": "
                 "\"enc:ok-x\"}, \"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\", "
                 "\"key_password\": \"enc:bad\"}",
                 ""),
             &cfg, &err),
        0);
    assert_true(has(&err, "/keystores/internal/key_password: the internal keystore decrypts"));
    assert_true(has(&err, "/keystores/web/key_password: cannot decrypt the \"enc:\" value: the "
                          "value does not authenticate"));
    tg_err_close(&err);

    tg_config_set_secret_opener(NULL);
    assert_int_not_equal(
        load(CFG("\"internal\": {\"cert\": \"web.crt\", \"key\": \"web.key\"}, "
                 "\"web\": {\"cert\": \"web.crt\", \"key\": \"web.key\", \"key_password\": "
                 "\"enc:ok-secret\"}",
                 ""),
             &cfg, &err),
        0);
    assert_true(has(&err, "\"enc:\" values cannot be decrypted here"));
    tg_err_close(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_keystore),
        cmocka_unit_test(test_store_keystore_errors),
        cmocka_unit_test(test_enc_passwords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
