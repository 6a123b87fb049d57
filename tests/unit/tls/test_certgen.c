/* Unit tests for tls/certgen.c: CA/server/client certificates, PEM files and the default cert. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tg_certgen_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void make(const struct tg_cert_req *req, EVP_PKEY **key, X509 **cert)
{
    struct tg_err err;
    tg_err_init(&err);
    int rc = tg_cert_make(req, key, cert, &err);
    if (rc != 0)
        tg_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    tg_err_close(&err);
}

static void test_ca_and_server_chain(void **state)
{
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509 *ca = NULL, *cert = NULL;
    struct tg_cert_req ca_req = {.kind = TG_CERT_CA, .subject = "CN=Test CA,O=tlsgate"};
    make(&ca_req, &ca_key, &ca);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);

    const char *names[] = {"localhost", "127.0.0.1", "::1", "*.example.com"};
    struct tg_cert_req req = {.kind = TG_CERT_SERVER,
                              .names = names,
                              .n_names = 4,
                              .issuer_key = ca_key,
                              .issuer_cert = ca};
    make(&req, &key, &cert);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    assert_int_equal(X509_check_ca(cert), 0);
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(cert, "a.example.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    assert_non_null(X509_get0_subject_key_id(cert));
    assert_non_null(X509_get0_authority_key_id(cert));
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert), X509_get0_subject_key_id(ca)), 0);
    char *subj = tg_dn_string(X509_get_subject_name(cert));
    assert_string_equal(subj, "CN=localhost");
    free(subj);

    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(vctx, store, cert, NULL);
    X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(vctx);
    if (ok != 1)
        fprintf(stderr, "verify: %s\n",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
    assert_int_equal(ok, 1);
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);

    /* A client certificate from the same CA. */
    EVP_PKEY *ckey = NULL;
    X509 *ccert = NULL;
    struct tg_cert_req creq = {.kind = TG_CERT_CLIENT,
                               .subject = "CN=CordaOperator,O=Org,C=GB",
                               .issuer_key = ca_key,
                               .issuer_cert = ca};
    make(&creq, &ckey, &ccert);
    assert_true(X509_get_extended_key_usage(ccert) & XKU_SSL_CLIENT);
    assert_false(X509_get_extended_key_usage(ccert) & XKU_SSL_SERVER);
    EVP_PKEY_free(ckey);
    X509_free(ccert);

    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    X509_free(ca);
    X509_free(cert);
}

static void test_rsa_and_files(void **state)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    const char *names[] = {"rsa.example"};
    struct tg_cert_req req = {
        .kind = TG_CERT_SERVER, .names = names, .n_names = 1, .rsa_bits = 2048, .days = 10};
    make(&req, &key, &cert);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(key), 2048);
    assert_true(X509_get_key_usage(cert) & KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);

    char crt[128], keyp[128];
    snprintf(crt, sizeof(crt), "%s/rsa.crt", tmpdir);
    snprintf(keyp, sizeof(keyp), "%s/rsa.key", tmpdir);
    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_cert_write_pem(crt, cert, NULL, keyp, key, &err), 0);
    struct stat st;
    assert_int_equal(stat(keyp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(keyp, "r");
    assert_non_null(f);
    char line[64] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n"); /* PKCS#8, unencrypted */
    fclose(f);
    f = fopen(crt, "r");
    X509 *back = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_int_equal(X509_cmp(back, cert), 0);
    X509_free(back);

    /* Writing into a missing directory fails with a message naming the path. */
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing/x.key", tmpdir);
    assert_true(tg_cert_write_pem(crt, cert, NULL, bad, key, &err) < 0);
    assert_int_equal(tg_err_count(&err), 1);
    assert_non_null(strstr(err.v[0].msg, bad));
    tg_err_close(&err);
    EVP_PKEY_free(key);
    X509_free(cert);
}

static void test_bad_requests(void **state)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct tg_err err;
    tg_err_init(&err);
    struct tg_cert_req client = {.kind = TG_CERT_CLIENT};
    assert_int_equal(tg_cert_make(&client, &key, &cert, &err), -EINVAL);
    struct tg_cert_req server = {.kind = TG_CERT_SERVER};
    assert_int_equal(tg_cert_make(&server, &key, &cert, &err), -EINVAL);
    const char *names[] = {"bad name!"};
    struct tg_cert_req badname = {.kind = TG_CERT_SERVER, .names = names, .n_names = 1};
    assert_int_equal(tg_cert_make(&badname, &key, &cert, &err), -EINVAL);
    struct tg_cert_req rsa = {.kind = TG_CERT_CA, .rsa_bits = 1024};
    assert_int_equal(tg_cert_make(&rsa, &key, &cert, &err), -EINVAL);
    struct tg_cert_req dn = {.kind = TG_CERT_CA, .subject = "XX=y"};
    assert_int_equal(tg_cert_make(&dn, &key, &cert, &err), -EINVAL);
    assert_int_equal(tg_err_count(&err), 5);
    assert_null(key);
    assert_null(cert);
    tg_err_close(&err);
}

static long validity_seconds(const X509 *cert)
{
    int days = 0, secs = 0;
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
    return (long)days * 86400 + secs;
}

static void test_default_validity(void **state)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    const char *names[] = {"leaf.example"};
    /* Leaves: 397 days exactly (no extra hour from the back-dated notBefore), CAs 10 years. */
    struct tg_cert_req server = {.kind = TG_CERT_SERVER, .names = names, .n_names = 1};
    make(&server, &key, &cert);
    assert_int_equal(validity_seconds(cert), 397L * 86400);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(cert)) < 0);
    EVP_PKEY_free(key);
    X509_free(cert);
    struct tg_cert_req client = {.kind = TG_CERT_CLIENT, .subject = "CN=c"};
    make(&client, &key, &cert);
    assert_int_equal(validity_seconds(cert), 397L * 86400);
    EVP_PKEY_free(key);
    X509_free(cert);
    struct tg_cert_req ca = {.kind = TG_CERT_CA};
    make(&ca, &key, &cert);
    assert_int_equal(validity_seconds(cert), 3650L * 86400);
    EVP_PKEY_free(key);
    X509_free(cert);
    struct tg_cert_req asked = {.kind = TG_CERT_SERVER, .names = names, .n_names = 1, .days = 10};
    make(&asked, &key, &cert);
    assert_int_equal(validity_seconds(cert), 10L * 86400);
    EVP_PKEY_free(key);
    X509_free(cert);
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    return cert;
}

static void ensure(const char *dir, struct tg_cert_default_info *info)
{
    struct tg_err err;
    tg_err_init(&err);
    int rc = tg_cert_ensure_default(dir, info, &err);
    if (rc != 0)
        tg_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(tg_err_count(&err), 0);
    tg_err_close(&err);
}

static void test_ensure_default(void **state)
{
    char dir[128], crt[160];
    snprintf(dir, sizeof(dir), "%s/state/sub", tmpdir);
    snprintf(crt, sizeof(crt), "%s/default.crt", dir);
    struct tg_cert_default_info info;
    ensure(dir, &info);
    assert_int_equal(info.found, TG_CERT_DEFAULT_MISSING);
    struct stat st1, st2;
    assert_int_equal(stat(crt, &st1), 0);
    X509 *cert = read_cert(crt);
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    assert_int_equal(validity_seconds(cert), 397L * 86400);
    X509_free(cert);
    /* A second call keeps the existing files. */
    ensure(dir, &info);
    assert_int_equal(info.found, TG_CERT_DEFAULT_OK);
    assert_int_equal(info.days_left, 396); /* 397 days from an hour ago */
    assert_int_equal(stat(crt, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    ensure(dir, NULL); /* info is optional */
}

/* Puts a certificate valid for `days` (re-signed to end `shift` days from its natural end) and
 * its key, or another key if mismatched, into dir as the default. */
static void seed_default(const char *dir, int days, int shift, bool mismatched)
{
    char crt[160], keyp[160];
    snprintf(crt, sizeof(crt), "%s/default.crt", dir);
    snprintf(keyp, sizeof(keyp), "%s/default.key", dir);
    const char *names[] = {"localhost"};
    struct tg_cert_req req = {.kind = TG_CERT_SERVER, .names = names, .n_names = 1, .days = days};
    EVP_PKEY *key = NULL, *other = NULL;
    X509 *cert = NULL, *other_cert = NULL;
    make(&req, &key, &cert);
    if (shift != 0) {
        assert_non_null(X509_time_adj_ex(X509_getm_notAfter(cert), days + shift, 0, NULL));
        assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
    }
    if (mismatched)
        make(&req, &other, &other_cert);
    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_cert_write_pem(crt, cert, NULL, keyp, mismatched ? other : key, &err), 0);
    tg_err_close(&err);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    X509_free(cert);
    X509_free(other_cert);
}

static void expect_renewed(const char *dir, enum tg_cert_default_found found)
{
    char crt[160], keyp[160];
    snprintf(crt, sizeof(crt), "%s/default.crt", dir);
    snprintf(keyp, sizeof(keyp), "%s/default.key", dir);
    X509 *old = NULL;
    FILE *f = fopen(crt, "r");
    if (f != NULL) {
        old = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    struct tg_cert_default_info info;
    ensure(dir, &info);
    assert_int_equal(info.found, found);
    X509 *cert = read_cert(crt);
    assert_int_equal(validity_seconds(cert), 397L * 86400);
    if (old != NULL) { /* a new key, hence a new public key in the certificate */
        assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(old), X509_get0_pubkey(cert)), 1);
    }
    f = fopen(keyp, "r");
    assert_non_null(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_int_equal(X509_check_private_key(cert, key), 1);
    char want[64];
    const ASN1_TIME *na = X509_get0_notAfter(cert);
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(na, &tm), 1);
    snprintf(want, sizeof(want), "%04d-%02d-%02d %02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    assert_string_equal(info.not_after, want);
    EVP_PKEY_free(key);
    X509_free(cert);
    X509_free(old);
}

static void test_default_renewal(void **state)
{
    char dir[128], crt[160];
    snprintf(dir, sizeof(dir), "%s/renew", tmpdir);
    snprintf(crt, sizeof(crt), "%s/default.crt", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    struct tg_cert_default_info info;

    seed_default(dir, 10, 0, false);
    struct stat st1, st2;
    assert_int_equal(stat(crt, &st1), 0);
    expect_renewed(dir, TG_CERT_DEFAULT_EXPIRING);
    assert_int_equal(stat(crt, &st2), 0);
    assert_int_not_equal(st1.st_ino, st2.st_ino);

    seed_default(dir, 31, 0, false); /* 30 days and 23 hours left: kept */
    assert_int_equal(stat(crt, &st1), 0);
    ensure(dir, &info);
    assert_int_equal(info.found, TG_CERT_DEFAULT_OK);
    assert_int_equal(info.days_left, 30);
    assert_int_equal(stat(crt, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);

    seed_default(dir, 30, 0, false); /* 29 days and 23 hours left */
    expect_renewed(dir, TG_CERT_DEFAULT_EXPIRING);

    seed_default(dir, 10, -11, false); /* ended a day ago */
    expect_renewed(dir, TG_CERT_DEFAULT_EXPIRED);

    seed_default(dir, 100, 0, true); /* the key is not the certificate's */
    expect_renewed(dir, TG_CERT_DEFAULT_UNUSABLE);

    FILE *f = fopen(crt, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    expect_renewed(dir, TG_CERT_DEFAULT_UNUSABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_and_server_chain), cmocka_unit_test(test_rsa_and_files),
        cmocka_unit_test(test_bad_requests),        cmocka_unit_test(test_default_validity),
        cmocka_unit_test(test_ensure_default),      cmocka_unit_test(test_default_renewal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
