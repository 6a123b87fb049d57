/* Unit tests for tls/client.c and the backend failure table: real in-memory handshakes of the
 * backend client contexts (built from config text) against in-process OpenSSL servers, with
 * certificates made at test time. */
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
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/internal.h"
#include "tls/tls.h"

static char tmpdir[64];

/* ---- certificates ---- */

static char *tmp_path(const char *name, const char *ext)
{
    return tg_xasprintf("%s/%s.%s", tmpdir, name, ext);
}

struct issuer {
    EVP_PKEY *key;
    X509 *cert;
};
static struct issuer ca, ca2;

/* Makes <name>.crt/.key; not_before/not_after, when non-zero, move the validity (days from now)
 * and the certificate is signed again. */
static void gen(const char *name, enum tg_cert_kind kind, const char *subject,
                const char *const *names, size_t n, const struct issuer *iss, int not_before,
                int not_after, struct issuer *keep)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct tg_err err;
    tg_err_init(&err);
    struct tg_cert_req req = {.kind = kind,
                              .subject = subject,
                              .names = names,
                              .n_names = n,
                              .issuer_key = iss ? iss->key : NULL,
                              .issuer_cert = iss ? iss->cert : NULL};
    assert_int_equal(tg_cert_make(&req, &key, &cert, &err), 0);
    if (not_before != 0 || not_after != 0) {
        X509_gmtime_adj(X509_getm_notBefore(cert), (long)not_before * 86400);
        X509_gmtime_adj(X509_getm_notAfter(cert), (long)not_after * 86400);
        assert_true(X509_sign(cert, iss ? iss->key : key, EVP_sha256()) > 0);
    }
    char *crt = tmp_path(name, "crt"), *keyp = tmp_path(name, "key");
    assert_int_equal(tg_cert_write_pem(crt, cert, NULL, keyp, key, &err), 0);
    free(crt);
    free(keyp);
    tg_err_close(&err);
    if (keep != NULL) {
        keep->key = key;
        keep->cert = cert;
    } else {
        EVP_PKEY_free(key);
        X509_free(cert);
    }
}

static void write_file(const char *name, const char *text)
{
    char *p = tg_xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static void make_dir(const char *name)
{
    char *p = tg_xasprintf("%s/%s", tmpdir, name);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tg_client_XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    static const char *const local[] = {"localhost", "127.0.0.1"};
    gen("ca", TG_CERT_CA, "CN=test CA", NULL, 0, NULL, 0, 0, &ca);
    gen("ca2", TG_CERT_CA, "CN=other CA", NULL, 0, NULL, 0, 0, &ca2);
    gen("srv", TG_CERT_SERVER, "CN=localhost", local, 2, &ca, 0, 0, NULL);
    gen("expired", TG_CERT_SERVER, "CN=localhost", local, 2, &ca, -30, -1, NULL);
    gen("future", TG_CERT_SERVER, "CN=localhost", local, 2, &ca, 2, 30, NULL);
    gen("self", TG_CERT_SERVER, "CN=localhost", local, 2, NULL, 0, 0, NULL);
    gen("cli", TG_CERT_CLIENT, "CN=gateway,O=tests", NULL, 0, &ca, 0, 0, NULL);
    gen("cli2", TG_CERT_CLIENT, "CN=stranger", NULL, 0, &ca2, 0, 0, NULL);
    make_dir("cadir");
    char *a = tmp_path("ca", "crt"), *b = tg_xasprintf("%s/cadir/ca.pem", tmpdir);
    assert_int_equal(link(a, b), 0);
    free(a);
    free(b);
    write_file("cadir/notes.txt", "not a certificate, and not loaded\n");
    write_file("damaged.pem", "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n");
    make_dir("emptydir");
    return 0;
}

static int teardown(void **state)
{
    EVP_PKEY_free(ca.key);
    X509_free(ca.cert);
    EVP_PKEY_free(ca2.key);
    X509_free(ca2.cert);
    char *cmd = tg_xasprintf("rm -rf %s", tmpdir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

/* ---- backend client contexts from config text ---- */

struct backend {
    struct tg_config *cfg;
    struct tg_tls_client *tc;
};

static char *config_text(const char *target, const char *tls)
{
    return tg_xasprintf(
        "{\"version\": 1,\n"
        " \"keystores\": {\"cli\": {\"cert\": \"cli.crt\", \"key\": \"cli.key\"},\n"
        "               \"cli2\": {\"cert\": \"cli2.crt\", \"key\": \"cli2.key\"},\n"
        "               \"srv\": {\"cert\": \"srv.crt\", \"key\": \"srv.key\"}},\n"
        " \"truststores\": {\"ca\": {\"file\": \"ca.crt\"}, \"ca2\": {\"file\": \"ca2.crt\"},\n"
        "                 \"dir\": {\"file\": \"cadir\"}, \"empty\": {\"file\": \"emptydir\"},\n"
        "                 \"keyonly\": {\"file\": \"cli.key\"},\n"
        "                 \"damaged\": {\"file\": \"damaged.pem\"}},\n"
        " \"listeners\": [{\"name\": \"l\", \"address\": \"127.0.0.1:1\", \"tls\": {\"disabled\": "
        "true}, \"routes\": [{\"backend\": \"b\"}]}],\n"
        " \"backends\": {\"b\": {\"targets\": [\"%s\"], \"tls\": %s}}}\n",
        target, tls);
}

static struct tg_config *load_cfg(const char *target, const char *tls)
{
    struct tg_config *cfg = NULL;
    struct tg_err err;
    tg_err_init(&err);
    char *text = config_text(target, tls);
    int rc = tg_config_load_string(text, strlen(text), "b.json", tmpdir, &cfg, &err);
    if (rc != 0)
        tg_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    free(text);
    tg_err_close(&err);
    return cfg;
}

static struct backend backend_new(const char *target, const char *tls)
{
    struct backend b = {load_cfg(target, tls), NULL};
    struct tg_err err;
    tg_err_init(&err);
    int rc = tg_tls_client_new(b.cfg, &b.cfg->backends[0], &b.tc, &err);
    if (rc != 0)
        tg_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(tg_err_count(&err), 0);
    tg_err_close(&err);
    return b;
}

static void backend_free(struct backend *b)
{
    tg_tls_client_free(b->tc);
    tg_config_free(b->cfg);
}

/* Expects tg_tls_client_new to fail; returns every message joined (newly allocated). */
static char *backend_fail(const char *tls)
{
    struct tg_config *cfg = load_cfg("127.0.0.1:1", tls);
    struct tg_tls_client *tc = NULL;
    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_tls_client_new(cfg, &cfg->backends[0], &tc, &err), -EINVAL);
    assert_null(tc);
    char *all = tg_xstrdup("");
    for (size_t i = 0; i < err.n; i++) {
        char *line = tg_err_format(&err, i);
        char *next = tg_xasprintf("%s%s\n", all, line);
        free(all);
        free(line);
        all = next;
    }
    tg_err_close(&err);
    tg_config_free(cfg);
    return all;
}

/* ---- servers ---- */

static char sni_seen[256];

static int record_sni(SSL *ssl, int *al, void *arg)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(sni_seen, sizeof(sni_seen), "%s", name ? name : "(none)");
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ctx(const char *name, int min, int max)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    char *crt = tmp_path(name, "crt"), *key = tmp_path(name, "key");
    assert_int_equal(SSL_CTX_use_certificate_chain_file(s, crt), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_min_proto_version(s, min);
    SSL_CTX_set_max_proto_version(s, max);
    SSL_CTX_set_tlsext_servername_callback(s, record_sni);
    free(crt);
    free(key);
    return s;
}

/* The server demands a client certificate issued by the named CA. */
static void server_require_client_cert(SSL_CTX *s, const char *ca_name)
{
    char *crt = tmp_path(ca_name, "crt");
    assert_int_equal(SSL_CTX_load_verify_locations(s, crt, NULL), 1);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    free(crt);
}

/* ---- handshakes ---- */

struct hs {
    SSL *client, *server;
    bool client_done, client_failed, server_failed, got_data;
    enum tg_tls_bfail f; /* the classifier's answer when the client failed */
    char detail[512];
};

static void step_failed(struct hs *h, int r)
{
    int e = SSL_get_error(h->client, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    h->client_failed = true;
    /* The client's errors are alone on the queue: the server's were cleared. */
    h->f = tg_tls_client_classify(h->client, e, e == SSL_ERROR_SYSCALL ? errno : 0, h->detail,
                                  sizeof(h->detail));
    if (getenv("TG_TEST_VERBOSE"))
        fprintf(stderr, "client failed: %s: %s\n", tg_tls_bfail_info(h->f)->token, h->detail);
}

/* Runs the handshake, then has the server send 2 bytes that the client reads (which also brings
 * in TLS 1.3 tickets and any alert sent after our side finished). */
static void handshake(struct hs *h, struct backend *b, size_t target, SSL_CTX *sctx,
                      SSL_SESSION *resume)
{
    memset(h, 0, sizeof(*h));
    sni_seen[0] = '\0';
    h->client = tg_tls_client_ssl_new(b->tc, &b->cfg->backends[0].targets[target]);
    assert_non_null(h->client);
    if (resume != NULL)
        assert_int_equal(SSL_set_session(h->client, resume), 1);
    h->server = SSL_new(sctx);
    BIO *cb = NULL, *sb = NULL;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(h->client, cb, cb);
    SSL_set_bio(h->server, sb, sb);
    SSL_set_accept_state(h->server);
    ERR_clear_error();
    bool server_done = false, sent = false;
    for (int i = 0; i < 60 && !h->client_failed && !h->got_data; i++) {
        if (!h->client_done) {
            int r = SSL_do_handshake(h->client);
            if (r == 1)
                h->client_done = true;
            else
                step_failed(h, r);
        } else {
            char buf[8];
            int r = SSL_read(h->client, buf, sizeof(buf));
            if (r > 0)
                h->got_data = true;
            else
                step_failed(h, r);
        }
        if (h->client_failed)
            break;
        if (!server_done && !h->server_failed) {
            int r = SSL_do_handshake(h->server);
            int e = SSL_get_error(h->server, r);
            if (r == 1)
                server_done = true;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                h->server_failed = true;
            ERR_clear_error();
        } else if (server_done && !sent) {
            assert_int_equal(SSL_write(h->server, "ok", 2), 2);
            sent = true;
        }
    }
}

static void hs_close(struct hs *h)
{
    if (h->got_data) {
        SSL_shutdown(h->client);
        SSL_shutdown(h->server);
    }
    SSL_free(h->client);
    SSL_free(h->server);
    ERR_clear_error();
}

/* Handshakes and expects the client to fail with f; returns with h open. */
static void expect_fail(struct hs *h, struct backend *b, size_t target, SSL_CTX *sctx,
                        enum tg_tls_bfail f)
{
    handshake(h, b, target, sctx, NULL);
    if (!h->client_failed || h->f != f)
        fprintf(stderr, "want %s, got %s (%s)\n", tg_tls_bfail_info(f)->token,
                h->client_failed ? tg_tls_bfail_info(h->f)->token : "success", h->detail);
    assert_true(h->client_failed);
    assert_int_equal(h->f, f);
}

static void expect_detail(const struct hs *h, const char *needle)
{
    if (strstr(h->detail, needle) == NULL)
        fprintf(stderr, "detail \"%s\" lacks \"%s\"\n", h->detail, needle);
    assert_non_null(strstr(h->detail, needle));
}

static char *policy_text(const struct tg_tls_client *tc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    tg_tls_client_print_policy(tc, out);
    fclose(out);
    return buf;
}

/* The pin of a certificate file, "sha256/..." (newly allocated). */
static char *pin_of(const char *name)
{
    char *p = tmp_path(name, "crt");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    free(p);
    assert_non_null(x);
    char pin[64];
    tg_tls__spki_pin(x, pin, sizeof(pin));
    X509_free(x);
    return tg_xasprintf("sha256/%s", pin);
}

/* ---- successful handshakes ---- */

static SSL_SESSION *saved_session;
static int sessions_seen;

static void keep_session(SSL *ssl, SSL_SESSION *sess)
{
    assert_non_null(tg_tls__cconn_get(ssl));
    SSL_SESSION_free(saved_session);
    saved_session = sess;
    sessions_seen++;
}

static void test_verified_sni_and_ip(void **state)
{
    struct backend b = backend_new("localhost:1\", \"127.0.0.1:2", "{\"truststore\": \"ca\"}");
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;

    handshake(&h, &b, 0, s, NULL);
    assert_true(h.got_data);
    assert_string_equal(sni_seen, "localhost");
    assert_int_equal(SSL_get_verify_result(h.client), X509_V_OK);
    assert_int_equal(SSL_version(h.client), TLS1_3_VERSION);
    assert_false(tg_tls_client_cert_requested(h.client));
    hs_close(&h);

    /* An IP target sends no SNI and is verified against the IP SANs. */
    handshake(&h, &b, 1, s, NULL);
    assert_true(h.got_data);
    assert_string_equal(sni_seen, "(none)");
    hs_close(&h);

    /* A truststore given as a directory of PEM files trusts the same CA. */
    backend_free(&b);
    b = backend_new("localhost:1", "{\"truststore\": \"dir\", \"server_name\": \"LOCALHOST\"}");
    handshake(&h, &b, 0, s, NULL);
    assert_true(h.got_data);
    assert_string_equal(sni_seen, "localhost");
    hs_close(&h);

    char *text = policy_text(b.tc);
    assert_non_null(strstr(text, "versions: TLS1.2 to TLS1.3"));
    assert_non_null(strstr(text, "TLS 1.3 suites (offered order): TLS_AES_128_GCM_SHA256"));
    assert_non_null(strstr(text, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 "
                                 "(ECDHE-ECDSA-AES128-GCM-SHA256)"));
    assert_non_null(strstr(text, "server name (every target): SNI \"localhost\", name verified"));
    assert_non_null(strstr(text, "trust: truststore \"dir\" (1 CA from "));
    assert_non_null(strstr(text, "client certificate: none"));
    assert_non_null(strstr(text, "pins: none"));
    assert_null(strstr(text, "WARNING"));
    free(text);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_session_hook_resumes(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    SSL_CTX *s = server_ctx("srv", TLS1_3_VERSION, TLS1_3_VERSION);
    struct hs h;

    /* Without a hook sessions are dropped. */
    sessions_seen = 0;
    handshake(&h, &b, 0, s, NULL);
    assert_true(h.got_data);
    hs_close(&h);
    assert_int_equal(sessions_seen, 0);

    tg_tls_client_set_session_hook(b.tc, keep_session);
    handshake(&h, &b, 0, s, NULL);
    assert_true(h.got_data);
    assert_false(SSL_session_reused(h.client));
    hs_close(&h);
    assert_true(sessions_seen >= 1);
    assert_non_null(saved_session);

    SSL_SESSION *sess = saved_session;
    saved_session = NULL;
    handshake(&h, &b, 0, s, sess);
    assert_true(h.got_data);
    assert_true(SSL_session_reused(h.client));
    hs_close(&h);
    SSL_SESSION_free(sess);
    SSL_SESSION_free(saved_session);
    saved_session = NULL;
    SSL_CTX_free(s);
    backend_free(&b);
}

/* OpenSSL calls a client's cert callback only when the server sent a CertificateRequest: the
 * premise of tg_tls_client_cert_requested, checked for both versions. */
static void test_cert_requested(void **state)
{
    struct backend b =
        backend_new("localhost:1", "{\"truststore\": \"ca\", \"client_certificate\": \"cli\"}");
    struct hs h;
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *s = server_ctx("srv", v, v);
        handshake(&h, &b, 0, s, NULL);
        assert_true(h.got_data);
        assert_false(tg_tls_client_cert_requested(h.client));
        assert_null(SSL_get0_peer_certificate(h.server));
        hs_close(&h);

        server_require_client_cert(s, "ca");
        handshake(&h, &b, 0, s, NULL);
        assert_true(h.got_data);
        assert_true(tg_tls_client_cert_requested(h.client));
        X509 *peer = SSL_get0_peer_certificate(h.server);
        assert_non_null(peer);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
        assert_string_equal(cn, "gateway");
        hs_close(&h);
        SSL_CTX_free(s);
    }
    char *text = policy_text(b.tc);
    assert_non_null(strstr(text, "client certificate: keystore \"cli\": subject "));
    assert_non_null(strstr(text, "CN=gateway"));
    assert_non_null(strstr(text, "ECDSA P-256, not after "));
    assert_non_null(strstr(text, "days left)"));
    free(text);
    backend_free(&b);
}

static void test_pins_match_chain(void **state)
{
    char *leaf = pin_of("srv"), *root = pin_of("ca"), *other = pin_of("ca2");
    char *tls = tg_xasprintf("{\"truststore\": \"ca\", \"pin\": [\"%s\", \"%s\"]}", other, root);
    struct backend b = backend_new("localhost:1", tls);
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    /* The CA's pin matches: pins cover the whole verified chain. */
    handshake(&h, &b, 0, s, NULL);
    assert_true(h.got_data);
    hs_close(&h);
    char *text = policy_text(b.tc);
    assert_non_null(strstr(text, other));
    assert_non_null(strstr(text, root));
    free(text);
    backend_free(&b);
    free(tls);

    /* With allow_insecure a self-signed backend is accepted on its pin alone. */
    char *self = pin_of("self");
    tls = tg_xasprintf("{\"allow_insecure\": true, \"pin\": [\"%s\"]}", self);
    b = backend_new("localhost:1", tls);
    SSL_CTX *ss = server_ctx("self", TLS1_2_VERSION, TLS1_3_VERSION);
    handshake(&h, &b, 0, ss, NULL);
    assert_true(h.got_data);
    hs_close(&h);
    text = policy_text(b.tc);
    assert_non_null(strstr(text, "trust: none (verification is off)"));
    assert_non_null(strstr(text, "WARNING: allow_insecure: the backend's certificate chain and "
                                 "name are not verified (only the pins are checked)"));
    free(text);
    SSL_CTX_free(ss);
    SSL_CTX_free(s);
    backend_free(&b);
    free(tls);
    free(self);
    free(leaf);
    free(root);
    free(other);
}

/* ---- one test per failure row ---- */

static void test_fail_unknown_ca(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca2\"}");
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_UNKNOWN_CA);
    expect_detail(&h, "unable to get local issuer certificate");
    expect_detail(&h, "CN=localhost (issuer CN=test CA)");
    expect_detail(&h, "we trust truststore \"ca2\" (1 CA)");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);

    /* The system trust does not know a private CA either. */
    b = backend_new("localhost:1", "{}");
    s = server_ctx("self", TLS1_2_VERSION, TLS1_3_VERSION);
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_UNKNOWN_CA);
    expect_detail(&h, "self-signed certificate");
    expect_detail(&h, "we trust the system trust store");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
    assert_string_equal(tg_tls_bfail_info(TG_TLS_BFAIL_UNKNOWN_CA)->config_key, "tls.truststore");
}

static void test_fail_name_mismatch(void **state)
{
    struct backend b = backend_new("localhost:1\", \"10.0.0.1:443",
                                   "{\"truststore\": \"ca\", \"server_name\": \"api.test\"}");
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_NAME_MISMATCH);
    assert_string_equal(sni_seen, "api.test");
    expect_detail(&h, "we verify \"api.test\" but the certificate is for 127.0.0.1, localhost");
    hs_close(&h);
    backend_free(&b);

    /* An IP target is checked against the IP SANs. */
    b = backend_new("10.0.0.1:443", "{\"truststore\": \"ca\"}");
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_NAME_MISMATCH);
    expect_detail(&h, "we verify IP \"10.0.0.1\" but the certificate is for 127.0.0.1, localhost");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_fail_expired(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    SSL_CTX *s = server_ctx("expired", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_EXPIRED);
    expect_detail(&h, "certificate CN=localhost (issuer CN=test CA) expired on 20");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_fail_not_yet_valid(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    SSL_CTX *s = server_ctx("future", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_NOT_YET_VALID);
    expect_detail(&h, "is not valid before 20");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_fail_bad_cert(void **state)
{
    /* A client certificate served by a backend: its purpose is wrong. */
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    SSL_CTX *s = server_ctx("cli", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_BAD_CERT);
    expect_detail(&h, "unsuitable certificate purpose: certificate CN=gateway");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_fail_pin_mismatch(void **state)
{
    char *other = pin_of("ca2"), *leaf = pin_of("srv");
    char *tls = tg_xasprintf("{\"truststore\": \"ca\", \"pin\": [\"%s\"]}", other);
    struct backend b = backend_new("localhost:1", tls);
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_PIN_MISMATCH);
    expect_detail(&h, "no certificate of the chain matches tls.pin; certificate CN=localhost");
    /* The backend's actual pin, so the operator can compare. */
    expect_detail(&h, leaf);
    hs_close(&h);
    backend_free(&b);
    free(tls);

    /* allow_insecure still checks pins. */
    tls = tg_xasprintf("{\"allow_insecure\": true, \"pin\": [\"%s\"]}", other);
    b = backend_new("localhost:1", tls);
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_PIN_MISMATCH);
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
    free(tls);
    free(other);
    free(leaf);
}

static void test_fail_version(void **state)
{
    struct backend b =
        backend_new("localhost:1", "{\"truststore\": \"ca\", \"max_version\": \"TLS1.2\"}");
    SSL_CTX *s = server_ctx("srv", TLS1_3_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_VERSION);
    expect_detail(&h, "we offer TLS1.2 to TLS1.2; the backend sent alert \"protocol version\"");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_fail_cipher(void **state)
{
    /* RSA-authenticated suites only, against an ECDSA certificate. */
    struct backend b = backend_new(
        "localhost:1", "{\"truststore\": \"ca\", \"max_version\": \"TLS1.2\", \"cipher_suites\": "
                       "[\"ECDHE-RSA-AES128-GCM-SHA256\"]}");
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_CIPHER);
    expect_detail(&h, "we offer 0 TLS 1.3 and 1 TLS 1.2 suites, groups X25519, P-256");
    expect_detail(&h, "the backend sent alert \"handshake failure\"");
    hs_close(&h);
    backend_free(&b);

    /* No key-exchange group in common (TLS 1.3). */
    b = backend_new("localhost:1", "{\"truststore\": \"ca\", \"curves\": [\"P-384\"]}");
    assert_int_equal(SSL_CTX_set1_groups_list(s, "X25519"), 1);
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_CIPHER);
    expect_detail(&h, "TLS 1.2 suites, groups P-384;");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static int refuse_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void test_fail_alpn(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\", \"alpn\": [\"h2\", "
                                                  "\"x-custom\"]}");
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    SSL_CTX_set_alpn_select_cb(s, refuse_alpn, NULL);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_ALPN);
    expect_detail(&h, "we offer h2, x-custom; the backend sent alert \"no application protocol\"");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_fail_cert_required(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    struct hs h;
    /* TLS 1.3 says certificate_required after our side finished; TLS 1.2 says
     * handshake_failure after its CertificateRequest. */
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *s = server_ctx("srv", v, v);
        server_require_client_cert(s, "ca");
        expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_CERT_REQUIRED);
        assert_true(tg_tls_client_cert_requested(h.client));
        expect_detail(&h, "we have none (set tls.client_certificate)");
        expect_detail(&h, v == TLS1_3_VERSION ? "alert \"certificate required\""
                                              : "alert \"handshake failure\"");
        hs_close(&h);
        SSL_CTX_free(s);
    }
    backend_free(&b);
}

static void test_fail_cert_refused(void **state)
{
    struct backend b =
        backend_new("localhost:1", "{\"truststore\": \"ca\", \"client_certificate\": \"cli2\"}");
    struct hs h;
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *s = server_ctx("srv", v, v);
        server_require_client_cert(s, "ca"); /* cli2 is issued by ca2 */
        expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_CERT_REFUSED);
        expect_detail(&h, "our certificate CN=stranger (issuer CN=other CA) was refused; the "
                          "backend sent alert \"unknown CA\"");
        hs_close(&h);
        SSL_CTX_free(s);
    }
    backend_free(&b);
}

/* Starts a handshake whose server end is driven by hand: the ClientHello is read and dropped. */
static void raw_start(struct hs *h, struct backend *b, BIO **server_end)
{
    memset(h, 0, sizeof(*h));
    h->client = tg_tls_client_ssl_new(b->tc, &b->cfg->backends[0].targets[0]);
    BIO *cb = NULL;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, server_end, 0), 1);
    SSL_set_bio(h->client, cb, cb);
    assert_int_equal(SSL_do_handshake(h->client), -1);
    char hello[4096];
    assert_true(BIO_read(*server_end, hello, sizeof(hello)) > 0);
}

static void test_fail_not_tls(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    struct hs h;
    BIO *sb = NULL;
    raw_start(&h, &b, &sb);
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(BIO_write(sb, answer, sizeof(answer) - 1), (int)sizeof(answer) - 1);
    ERR_clear_error();
    step_failed(&h, SSL_do_handshake(h.client));
    assert_true(h.client_failed);
    assert_int_equal(h.f, TG_TLS_BFAIL_NOT_TLS);
    expect_detail(&h, "the backend's first bytes are not a TLS record; OpenSSL: ");
    SSL_free(h.client);
    BIO_free(sb);
    backend_free(&b);
}

static void test_fail_hangup(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    struct hs h;
    BIO *sb = NULL;
    raw_start(&h, &b, &sb);
    BIO_shutdown_wr(sb);
    ERR_clear_error();
    step_failed(&h, SSL_do_handshake(h.client));
    assert_true(h.client_failed);
    assert_int_equal(h.f, TG_TLS_BFAIL_HANGUP);
    SSL_free(h.client);
    BIO_free(sb);

    /* A reset reported by the socket. */
    SSL *ssl = tg_tls_client_ssl_new(b.tc, &b.cfg->backends[0].targets[0]);
    char detail[128];
    ERR_clear_error();
    assert_int_equal(
        tg_tls_client_classify(ssl, SSL_ERROR_SYSCALL, ECONNRESET, detail, sizeof(detail)),
        TG_TLS_BFAIL_HANGUP);
    assert_string_equal(detail, strerror(ECONNRESET));
    /* Other socket errors are ours. */
    assert_int_equal(tg_tls_client_classify(ssl, SSL_ERROR_SYSCALL, ENOMEM, detail, sizeof(detail)),
                     TG_TLS_BFAIL_INTERNAL);
    SSL_free(ssl);
    backend_free(&b);
}

static int refuse_name(SSL *ssl, int *al, void *arg)
{
    *al = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void test_fail_protocol(void **state)
{
    struct backend b = backend_new("localhost:1", "{\"truststore\": \"ca\"}");
    SSL_CTX *s = server_ctx("srv", TLS1_2_VERSION, TLS1_3_VERSION);
    SSL_CTX_set_tlsext_servername_callback(s, refuse_name);
    struct hs h;
    expect_fail(&h, &b, 0, s, TG_TLS_BFAIL_PROTOCOL);
    expect_detail(&h, "the backend sent alert \"unrecognized name\"");
    hs_close(&h);
    SSL_CTX_free(s);
    backend_free(&b);
}

static void test_table_complete(void **state)
{
    for (int f = 0; f < TG_TLS_BFAIL__COUNT; f++) {
        const struct tg_tls_fail_info *fi = tg_tls_bfail_info((enum tg_tls_bfail)f);
        assert_non_null(fi->token);
        assert_true(strlen(fi->token) > 0 && strlen(fi->sentence) > 10);
        assert_false(fi->client_caused);
        for (int g = 0; g < f; g++)
            assert_string_not_equal(fi->token, tg_tls_bfail_info((enum tg_tls_bfail)g)->token);
    }
    assert_string_equal(tg_tls_bfail_info(TG_TLS_BFAIL_PIN_MISMATCH)->config_key, "tls.pin");
    assert_string_equal(tg_tls_bfail_info(TG_TLS_BFAIL_TIMEOUT)->config_key,
                        "timeouts.backend_connect");
    assert_non_null(tg_tls_bfail_info(TG_TLS_BFAIL__COUNT)->token);
}

/* ---- building contexts ---- */

static void test_build_errors(void **state)
{
    char *msg = backend_fail("{\"truststore\": \"empty\"}");
    assert_non_null(strstr(msg, "/truststores/empty: truststore \"empty\": no certificate found"));
    free(msg);
    msg = backend_fail("{\"truststore\": \"keyonly\"}");
    assert_non_null(strstr(msg, "truststore \"keyonly\": no certificate found in "));
    free(msg);
    msg = backend_fail("{\"truststore\": \"damaged\"}");
    assert_non_null(strstr(msg, "b.json:8:"));
    assert_non_null(strstr(msg, "/truststores/damaged: truststore \"damaged\": "));
    assert_non_null(strstr(msg, "damaged.pem is damaged or not PEM"));
    free(msg);

    /* A server certificate as client certificate: usable, but backends may refuse it. */
    struct tg_config *cfg = load_cfg("127.0.0.1:1", "{\"client_certificate\": \"srv\"}");
    struct tg_tls_client *tc = NULL;
    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_tls_client_new(cfg, &cfg->backends[0], &tc, &err), 0);
    assert_int_equal(tg_err_count(&err), 0);
    assert_int_equal(err.n, 1);
    char *line = tg_err_format(&err, 0);
    assert_non_null(strstr(line, "warning: /backends/b/tls/client_certificate: keystore \"srv\": "
                                 "the certificate has no clientAuth extended key usage"));
    free(line);
    tg_err_close(&err);
    tg_tls_client_free(tc);
    tg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified_sni_and_ip), cmocka_unit_test(test_session_hook_resumes),
        cmocka_unit_test(test_cert_requested),      cmocka_unit_test(test_pins_match_chain),
        cmocka_unit_test(test_fail_unknown_ca),     cmocka_unit_test(test_fail_name_mismatch),
        cmocka_unit_test(test_fail_expired),        cmocka_unit_test(test_fail_not_yet_valid),
        cmocka_unit_test(test_fail_bad_cert),       cmocka_unit_test(test_fail_pin_mismatch),
        cmocka_unit_test(test_fail_version),        cmocka_unit_test(test_fail_cipher),
        cmocka_unit_test(test_fail_alpn),           cmocka_unit_test(test_fail_cert_required),
        cmocka_unit_test(test_fail_cert_refused),   cmocka_unit_test(test_fail_not_tls),
        cmocka_unit_test(test_fail_hangup),         cmocka_unit_test(test_fail_protocol),
        cmocka_unit_test(test_table_complete),      cmocka_unit_test(test_build_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
