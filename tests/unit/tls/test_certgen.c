/* Unit tests for tls/certgen.c: CA/server/client certificates, PEM files and the default cert. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static void test_ensure_default(void **state)
{
    char dir[128], crt[160];
    snprintf(dir, sizeof(dir), "%s/state/sub", tmpdir);
    snprintf(crt, sizeof(crt), "%s/default.crt", dir);
    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_cert_ensure_default(dir, &err), 0);
    struct stat st1, st2;
    assert_int_equal(stat(crt, &st1), 0);
    FILE *f = fopen(crt, "r");
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    X509_free(cert);
    /* A second call keeps the existing files. */
    assert_int_equal(tg_cert_ensure_default(dir, &err), 0);
    assert_int_equal(stat(crt, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(tg_err_count(&err), 0);
    tg_err_close(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_and_server_chain),
        cmocka_unit_test(test_rsa_and_files),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_ensure_default),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
