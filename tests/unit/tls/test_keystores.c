/* Unit tests for tls/jks.c, tls/stores.c and tls/secret.c: keytool files from the fuzz corpus,
 * PKCS#12 files made here, "enc:" values sealed and opened, password hashes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>

#include "config/config.h"
#include "core/core.h"
#include "tls/internal.h"
#include "tls/tls.h"

#define CORPUS TG_TEST_DATA "/../../fuzz/corpus/jks"

static char tmpdir[64];

static uint8_t *slurp(const char *name, size_t *len)
{
    char *path = tg_xasprintf("%s/%s", CORPUS, name), *data = NULL;
    assert_int_equal(tg_read_file(path, &data, len), 0);
    free(path);
    return (uint8_t *)data;
}

/* ---- JKS / JCEKS ---- */

static void test_jks_entries_and_keys(void **state)
{
    size_t len = 0;
    uint8_t *buf = slurp("two_keys_and_ca.jks", &len);
    struct tg_tls__jks ks;
    char why[256];
    assert_int_equal(tg_tls__jks_parse(buf, len, "changeit", &ks, why, sizeof(why)), 0);
    assert_int_equal(ks.kind, TG_TLS__JKS);
    assert_int_equal(ks.version, 2);
    assert_int_equal(ks.n, 3);
    int keys = 0, trusted = 0;
    for (size_t i = 0; i < ks.n; i++) {
        const struct tg_tls__jks_entry *e = &ks.entries[i];
        assert_true(e->n_certs >= 1);
        if (e->tag == TG_TLS__JKS_TRUSTED) {
            trusted++;
            assert_string_equal(e->alias, "ca");
            continue;
        }
        keys++;
        EVP_PKEY *key = NULL;
        assert_int_equal(tg_tls__jks_key(e, "keypass1", &key, why, sizeof(why)), 0);
        assert_int_equal(EVP_PKEY_get_base_id(key),
                         strcmp(e->alias, "rsa") == 0 ? EVP_PKEY_RSA : EVP_PKEY_EC);
        EVP_PKEY_free(key);
        key = NULL;
        assert_int_equal(tg_tls__jks_key(e, "changeit", &key, why, sizeof(why)), -EACCES);
        assert_null(key);
        assert_non_null(strstr(why, "wrong key password"));
    }
    assert_int_equal(keys, 2);
    assert_int_equal(trusted, 1);
    tg_tls__jks_free(&ks);

    /* The digest is over the store password. */
    assert_int_equal(tg_tls__jks_parse(buf, len, "changeiT", &ks, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "integrity digest does not match"));
    /* Every truncation is an error that says so, never a crash. */
    for (size_t n = 0; n < len; n++) {
        why[0] = '\0';
        assert_int_not_equal(tg_tls__jks_parse(buf, n, NULL, &ks, why, sizeof(why)), 0);
        assert_true(why[0] != '\0');
    }
    free(buf);
}

static void test_jceks_key(void **state)
{
    size_t len = 0;
    uint8_t *buf = slurp("key.jceks", &len);
    struct tg_tls__jks ks;
    char why[256];
    assert_int_equal(tg_tls__jks_parse(buf, len, "changeit", &ks, why, sizeof(why)), 0);
    assert_int_equal(ks.kind, TG_TLS__JCEKS);
    assert_int_equal(ks.n, 1);
    EVP_PKEY *key = NULL;
    assert_int_equal(tg_tls__jks_key(&ks.entries[0], "keypass1", &key, why, sizeof(why)), 0);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    EVP_PKEY_free(key);
    key = NULL;
    assert_int_equal(tg_tls__jks_key(&ks.entries[0], "keypass2", &key, why, sizeof(why)), -EACCES);
    assert_null(key);
    tg_tls__jks_free(&ks);
    free(buf);
}

static void test_jks_damage(void **state)
{
    size_t len = 0;
    uint8_t *buf = slurp("tampered.jks", &len);
    struct tg_tls__jks ks;
    char why[256];
    assert_int_equal(tg_tls__jks_parse(buf, len, "changeit", &ks, why, sizeof(why)), -EBADMSG);
    free(buf);
    buf = slurp("truncated.jks", &len);
    assert_int_equal(tg_tls__jks_parse(buf, len, "changeit", &ks, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "truncated"));
    free(buf);
    buf = slurp("bad_magic", &len);
    assert_int_equal(tg_tls__jks_parse(buf, len, "changeit", &ks, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "not a JKS or JCEKS keystore"));
    free(buf);
    static const uint8_t huge[] = {0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(tg_tls__jks_parse(huge, sizeof(huge), NULL, &ks, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "implausible"));
}

/* ---- PKCS#12 through the common store interface ---- */

static char *make_p12(const char *name, const char *pass, EVP_PKEY **key_out)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct tg_err err;
    tg_err_init(&err);
    static const char *const names[] = {"p12.test"};
    struct tg_cert_req req = {.kind = TG_CERT_SERVER, .names = names, .n_names = 1};
    assert_int_equal(tg_cert_make(&req, &key, &cert, &err), 0);
    PKCS12 *p12 = PKCS12_create(pass, name, key, cert, NULL, 0, 0, 0, 0, 0);
    assert_non_null(p12);
    char *path = tg_xasprintf("%s/%s.p12", tmpdir, name ? name : "noname");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(i2d_PKCS12_fp(f, p12), 1);
    fclose(f);
    PKCS12_free(p12);
    X509_free(cert);
    tg_err_close(&err);
    *key_out = key;
    return path;
}

static void test_pkcs12_store(void **state)
{
    EVP_PKEY *key = NULL, *got = NULL;
    char *path = make_p12("web", "p12-pass", &key);
    struct tg_tls__store st;
    char why[256], names[256];
    assert_int_equal(tg_tls__store_open("pkcs12", path, "p12-pass", &st, why, sizeof(why)), 0);
    assert_int_equal(st.n, 1);
    assert_true(st.v[0].is_key);
    assert_string_equal(st.v[0].alias, "web");
    tg_tls__store_aliases(&st, names, sizeof(names));
    assert_string_equal(names, "\"web\" (key)");
    assert_int_equal(tg_tls__store_key(&st, 0, "p12-pass", &got, why, sizeof(why)), 0);
    assert_int_equal(EVP_PKEY_eq(got, key), 1);
    EVP_PKEY_free(got);
    got = NULL;
    assert_int_equal(tg_tls__store_key(&st, 0, "other", &got, why, sizeof(why)), -EACCES);
    tg_tls__store_close(&st);
    assert_int_equal(tg_tls__store_open("pkcs12", path, "wrong", &st, why, sizeof(why)), -EACCES);
    assert_non_null(strstr(why, "wrong store password"));
    assert_null(strstr(why, "wrong\""));
    EVP_PKEY_free(key);
    free(path);
}

/* Each type reads the other formats, as Java's keystore.type.compat does, and says so. */
static void test_store_type_compat(void **state)
{
    EVP_PKEY *key = NULL;
    char *p12 = make_p12("compat", "changeit", &key);
    char *jks = tg_xasprintf("%s/two_keys_and_ca.jks", CORPUS);
    char *junk = tg_xasprintf("%s/bad_magic", CORPUS);
    struct tg_tls__store st;
    char why[256], note[128];

    assert_int_equal(tg_tls__store_open("jks", p12, "changeit", &st, why, sizeof(why)), 0);
    assert_int_equal(st.kind, 0);
    assert_true(tg_tls__store_differs("jks", &st, note, sizeof(note)));
    assert_string_equal(note, "type jks, file is PKCS#12: loaded as PKCS#12");
    assert_false(tg_tls__store_differs("pkcs12", &st, note, sizeof(note)));
    tg_tls__store_close(&st);

    assert_int_equal(tg_tls__store_open("pkcs12", jks, "changeit", &st, why, sizeof(why)), 0);
    assert_int_equal(st.kind, TG_TLS__JKS);
    assert_int_equal(st.n, 3);
    assert_true(tg_tls__store_differs("pkcs12", &st, note, sizeof(note)));
    assert_string_equal(note, "type pkcs12, file is JKS: loaded as JKS");
    assert_true(tg_tls__store_differs("jceks", &st, note, sizeof(note)));
    assert_false(tg_tls__store_differs("jks", &st, note, sizeof(note)));
    tg_tls__store_close(&st);

    /* Still strict: the right password of each format, and nothing else. */
    assert_int_equal(tg_tls__store_open("jks", p12, "wrong", &st, why, sizeof(why)), -EACCES);
    assert_non_null(strstr(why, "PKCS#12 MAC does not verify"));
    assert_int_equal(tg_tls__store_open("pkcs12", jks, "wrong", &st, why, sizeof(why)), -EACCES);
    assert_non_null(strstr(why, "integrity digest does not match"));
    assert_int_equal(tg_tls__store_open("jceks", junk, "changeit", &st, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "starts as PKCS#12 does (30) but does not parse as one"));
    char *text = tg_xasprintf("%s/text.jks", tmpdir);
    FILE *f = fopen(text, "w");
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
    assert_int_equal(tg_tls__store_open("pkcs12", text, "changeit", &st, why, sizeof(why)),
                     -EINVAL);
    assert_non_null(
        strstr(why, "not a PKCS#12, JKS or JCEKS keystore (it starts with 68 65 6c 6c;"));
    free(text);
    EVP_PKEY_free(key);
    free(p12);
    free(jks);
    free(junk);
}

/* ---- secrets ---- */

static struct tg_keystore_conf internal_conf(const char *name, int rsa_bits)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct tg_err err;
    tg_err_init(&err);
    static const char *const names[] = {"internal"};
    struct tg_cert_req req = {
        .kind = TG_CERT_SERVER, .names = names, .n_names = 1, .rsa_bits = rsa_bits};
    assert_int_equal(tg_cert_make(&req, &key, &cert, &err), 0);
    struct tg_keystore_conf kc = {
        .name = (char *)"internal",
        .path = (char *)"/keystores/internal",
        .type = (char *)"pem",
        .cert_file = tg_xasprintf("%s/%s.crt", tmpdir, name),
        .key_file = tg_xasprintf("%s/%s.key", tmpdir, name),
    };
    assert_int_equal(tg_cert_write_pem(kc.cert_file, cert, NULL, kc.key_file, key, &err), 0);
    EVP_PKEY_free(key);
    X509_free(cert);
    tg_err_close(&err);
    return kc;
}

static void roundtrip(const struct tg_keystore_conf *kc, const struct tg_keystore_conf *other)
{
    static const char secret[] = "correct horse battery staple";
    char *enc = NULL, *plain = NULL, why[256];
    size_t len = 0;
    assert_int_equal(
        tg_tls_secret_encrypt(kc, (const uint8_t *)secret, strlen(secret), &enc, why, sizeof(why)),
        0);
    assert_memory_equal(enc, "enc:", 4);
    assert_null(strstr(enc, "horse"));
    assert_int_equal(tg_tls_secret_decrypt(kc, enc, &plain, &len, why, sizeof(why)), 0);
    assert_int_equal(len, strlen(secret));
    assert_string_equal(plain, secret);
    free(plain);
    plain = NULL;
    /* Another key: named as such, not as damage. */
    assert_int_equal(tg_tls_secret_decrypt(other, enc, &plain, &len, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "another internal key"));
    /* Every changed base64 character is refused (never a wrong secret, never a crash). */
    size_t n = strlen(enc);
    for (size_t i = 4; i < n; i += 3) {
        char *bad = tg_xstrdup(enc);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        if (bad[i] == enc[i] || enc[i] == '=') {
            free(bad);
            continue;
        }
        int rc = tg_tls_secret_decrypt(kc, bad, &plain, &len, why, sizeof(why));
        if (rc == 0) { /* only when the change lands in base64 padding bits */
            assert_string_equal(plain, secret);
            free(plain);
        }
        plain = NULL;
        free(bad);
    }
    enc[n / 2] = '\0';
    assert_int_equal(tg_tls_secret_decrypt(kc, enc, &plain, &len, why, sizeof(why)), -EINVAL);
    free(enc);
}

static void free_conf(struct tg_keystore_conf *kc)
{
    free(kc->cert_file);
    free(kc->key_file);
}

static void test_secret_rsa_and_ec(void **state)
{
    struct tg_keystore_conf rsa = internal_conf("rsa", 2048), ec = internal_conf("ec", 0);
    roundtrip(&rsa, &ec);
    roundtrip(&ec, &rsa);
    free_conf(&rsa);
    free_conf(&ec);
}

static void test_config_decrypts_enc(void **state)
{
    struct tg_keystore_conf ec = internal_conf("ec2", 0);
    char *enc = NULL, why[256];
    assert_int_equal(
        tg_tls_secret_encrypt(&ec, (const uint8_t *)"k3y-pass", 8, &enc, why, sizeof(why)), 0);
    char *json = tg_xasprintf(
        "{\"version\": 1, \"backends\": {\"s\": {\"builtin\": \"status\"}},\n"
        " \"keystores\": {\"internal\": {\"cert\": \"%s\", \"key\": \"%s\"},\n"
        "   \"web\": {\"cert\": \"%s\", \"key\": \"%s\", \"key_password\": \"%s\"}},\n"
        " \"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1:8443\", \"routes\": "
        "[{\"backend\": \"s\"}], \"tls\": {\"certificates\": [\"web\"]}}]}\n",
        ec.cert_file, ec.key_file, ec.cert_file, ec.key_file, enc);
    struct tg_config *cfg = NULL;
    struct tg_err err;
    tg_err_init(&err);
    tg_tls_secrets_init();
    assert_int_equal(tg_config_load_string(json, strlen(json), "cfg.json", tmpdir, &cfg, &err), 0);
    assert_string_equal(tg_config_keystore(cfg, "web")->key_password, "k3y-pass");
    tg_config_free(cfg);
    tg_err_close(&err);
    free(json);
    free(enc);
    free_conf(&ec);
}

static void test_password_hash(void **state)
{
    char *h = NULL;
    assert_int_equal(tg_tls_password_hash("s3cret", 6, &h), 0);
    assert_memory_equal(h, "$scrypt$ln=15,r=8,p=1$", 22);
    assert_int_equal(tg_tls_password_verify(h, "s3cret", 6), 0);
    assert_int_equal(tg_tls_password_verify(h, "s3creT", 6), -EACCES);
    free(h);
    /* PBKDF2-SHA256, as made by another tool: salt "saltsaltsaltsalt", 1000 iterations. */
    uint8_t dk[32];
    char s64[32], d64[64], *stored;
    assert_int_equal(PKCS5_PBKDF2_HMAC("pw", 2, (const unsigned char *)"saltsaltsaltsalt", 16, 1000,
                                       EVP_sha256(), 32, dk),
                     1);
    EVP_EncodeBlock((unsigned char *)s64, (const unsigned char *)"saltsaltsaltsalt", 16);
    EVP_EncodeBlock((unsigned char *)d64, dk, 32);
    *strchr(s64, '=') = '\0';
    *strchr(d64, '=') = '\0';
    stored = tg_xasprintf("$pbkdf2-sha256$i=1000$%s$%s", s64, d64);
    assert_int_equal(tg_tls_password_verify(stored, "pw", 2), 0);
    assert_int_equal(tg_tls_password_verify(stored, "pW", 2), -EACCES);
    free(stored);
    assert_int_equal(tg_tls_password_verify("$scrypt$ln=99,r=8,p=1$AA$AA", "pw", 2), -EINVAL);
    assert_int_equal(tg_tls_password_verify("plain", "pw", 2), -EINVAL);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tg_keystores_XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char *cmd = tg_xasprintf("rm -rf %s", tmpdir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jks_entries_and_keys), cmocka_unit_test(test_jceks_key),
        cmocka_unit_test(test_jks_damage),           cmocka_unit_test(test_pkcs12_store),
        cmocka_unit_test(test_store_type_compat),    cmocka_unit_test(test_secret_rsa_and_ec),
        cmocka_unit_test(test_config_decrypts_enc),  cmocka_unit_test(test_password_hash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
