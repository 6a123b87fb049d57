/* Unit tests for tls/server.c, tls/hello.c and failure classification: real in-memory handshakes
 * against contexts built from hand-made configs and certificates made at test time. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/internal.h"
#include "tls/tls.h"

static char tmpdir[64];

#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* ---- fixtures ---- */

static char *tmp_path(const char *name, const char *ext)
{
    return tg_xasprintf("%s/%s.%s", tmpdir, name, ext);
}

/* Makes a self-signed server certificate <tmpdir>/<name>.crt/.key for the given names. */
static void gen(const char *name, const char *const *names, size_t n, int rsa_bits)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct tg_err err;
    tg_err_init(&err);
    struct tg_cert_req req = {
        .kind = TG_CERT_SERVER, .names = names, .n_names = n, .rsa_bits = rsa_bits};
    assert_int_equal(tg_cert_make(&req, &key, &cert, &err), 0);
    char *crt = tmp_path(name, "crt"), *keyp = tmp_path(name, "key");
    assert_int_equal(tg_cert_write_pem(crt, cert, NULL, keyp, key, &err), 0);
    free(crt);
    free(keyp);
    EVP_PKEY_free(key);
    X509_free(cert);
    tg_err_close(&err);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tg_server_XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    static const char *const www[] = {"www.example.com", "example.com"};
    static const char *const other[] = {"other.test", "*.wild.test"};
    gen("ec", www, 2, 0);
    gen("ec2", www, 2, 0);
    gen("rsa", www, 2, 2048);
    gen("other", other, 2, 0);
    return 0;
}

static int teardown(void **state)
{
    char *cmd = tg_xasprintf("rm -rf %s", tmpdir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

/* A config with one listener using the named keystores (each <tmpdir>/<name>.crt/.key). */
struct fixture {
    struct tg_config cfg;
    struct tg_keystore_conf ks[4];
    struct tg_listener_conf lc;
    char *names[4];
    size_t idx[4];
    char *alpn[2];
};

static void fixture_init(struct fixture *f, const char *const *keystores, size_t n)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        struct tg_keystore_conf *k = &f->ks[i];
        k->name = (char *)keystores[i];
        k->path = tg_xasprintf("/keystores/%s", keystores[i]);
        k->loc = (struct tg_loc){"test.json", 10 + (int)i, 5};
        k->type = (char *)"pem";
        k->cert_file = tmp_path(keystores[i], "crt");
        k->key_file = tmp_path(keystores[i], "key");
        f->names[i] = (char *)keystores[i];
        f->idx[i] = i;
    }
    f->cfg.keystores = f->ks;
    f->cfg.n_keystores = n;
    f->cfg.listeners = &f->lc;
    f->cfg.n_listeners = 1;
    f->lc.name = (char *)"public";
    f->lc.address = (char *)"127.0.0.1:8443";
    f->lc.path = (char *)"/listeners/0";
    struct tg_tls_conf *t = &f->lc.tls;
    t->path = (char *)"/listeners/0/tls";
    t->loc = (struct tg_loc){"test.json", 30, 7};
    t->certificates = f->names;
    t->certificate_idx = f->idx;
    t->n_certificates = n;
    t->min_version = TLS1_2_VERSION;
    t->max_version = TLS1_3_VERSION;
    t->ciphersuites = (char *)TLS13_SUITES;
    t->cipher_list = (char *)"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
    f->alpn[0] = (char *)"http/1.1";
    t->alpn = f->alpn;
    t->n_alpn = 1;
    t->session_resumption = true;
}

static void fixture_close(struct fixture *f)
{
    for (size_t i = 0; i < f->cfg.n_keystores; i++) {
        free(f->ks[i].path);
        free(f->ks[i].cert_file);
        free(f->ks[i].key_file);
    }
}

static struct tg_tls_server *build_ok(struct fixture *f)
{
    struct tg_err err;
    tg_err_init(&err);
    struct tg_tls_server *ts = NULL;
    int rc = tg_tls_server_new(&f->cfg, 0, &ts, &err);
    if (rc != 0)
        tg_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(tg_err_count(&err), 0);
    tg_err_close(&err);
    return ts;
}

/* Builds and expects failure; returns the joined messages (newly allocated). */
static char *build_fail(struct fixture *f)
{
    struct tg_err err;
    tg_err_init(&err);
    struct tg_tls_server *ts = NULL;
    assert_int_equal(tg_tls_server_new(&f->cfg, 0, &ts, &err), -EINVAL);
    assert_null(ts);
    assert_true(tg_err_count(&err) > 0);
    char *all = tg_xstrdup("");
    for (size_t i = 0; i < err.n; i++) {
        char *line = tg_err_format(&err, i);
        char *next = tg_xasprintf("%s%s\n", all, line);
        free(all);
        free(line);
        all = next;
    }
    tg_err_close(&err);
    return all;
}

/* ---- handshakes ---- */

struct hs {
    SSL *client, *server;
    int server_error; /* SSL_get_error of the server's failure, or 0 */
    bool ok;
};

static void handshake(struct hs *h, struct tg_tls_server *ts, SSL_CTX *cctx, const char *sni,
                      const char *sigalgs)
{
    memset(h, 0, sizeof(*h));
    h->client = SSL_new(cctx);
    h->server = SSL_new(tg_tls_server_ctx(ts));
    BIO *cb = NULL, *sb = NULL;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(h->client, cb, cb);
    SSL_set_bio(h->server, sb, sb);
    SSL_set_connect_state(h->client);
    SSL_set_accept_state(h->server);
    if (sni != NULL)
        SSL_set_tlsext_host_name(h->client, sni);
    if (sigalgs != NULL)
        assert_int_equal(SSL_set1_sigalgs_list(h->client, sigalgs), 1);
    ERR_clear_error();
    bool c_done = false, s_done = false;
    for (int i = 0; i < 50 && !(c_done && s_done); i++) {
        if (!c_done) {
            int r = SSL_do_handshake(h->client);
            int e = SSL_get_error(h->client, r);
            if (r == 1)
                c_done = true;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                if (getenv("TG_TEST_VERBOSE"))
                    ERR_print_errors_fp(stderr);
                return; /* client gave up; server error not recorded */
            }
        }
        if (!s_done) {
            int r = SSL_do_handshake(h->server);
            int e = SSL_get_error(h->server, r);
            if (r == 1) {
                s_done = true;
            } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                h->server_error = e;
                return; /* the server's reasons are on top of the error queue */
            }
        }
    }
    h->ok = c_done && s_done;
}

static void hs_close(struct hs *h)
{
    /* A connection freed without close_notify makes its session non-resumable. */
    if (h->ok) {
        SSL_shutdown(h->client);
        SSL_shutdown(h->server);
    }
    SSL_free(h->client);
    SSL_free(h->server);
    ERR_clear_error();
}

static SSL_CTX *client_ctx(int min, int max)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c, min);
    SSL_CTX_set_max_proto_version(c, max);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    return c;
}

static void assert_served(struct hs *h, const char *cn, int key_type)
{
    assert_true(h->ok);
    X509 *peer = SSL_get0_peer_certificate(h->client);
    assert_non_null(peer);
    char buf[128] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, cn);
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(peer)), key_type);
}

/* ---- tests ---- */

static void test_sni_and_key_types(void **state)
{
    static const char *const ks[] = {"ec", "rsa", "other"};
    struct fixture f;
    fixture_init(&f, ks, 3);
    struct tg_tls_server *ts = build_ok(&f);
    assert_int_equal(ts->n_ctxs, 2); /* ec+rsa share one context */
    assert_int_equal(ts->n_certs, 3);
    SSL_CTX *c13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    struct hs h;

    handshake(&h, ts, c13, "www.example.com", "ECDSA+SHA256");
    assert_served(&h, "www.example.com", EVP_PKEY_EC);
    hs_close(&h);
    handshake(&h, ts, c13, "www.example.com", "RSA-PSS+SHA256:RSA+SHA256");
    assert_served(&h, "www.example.com", EVP_PKEY_RSA);
    hs_close(&h);
    handshake(&h, ts, c13, "OTHER.test", NULL);
    assert_served(&h, "other.test", EVP_PKEY_EC);
    hs_close(&h);
    handshake(&h, ts, c13, "x.wild.test", NULL);
    assert_served(&h, "other.test", EVP_PKEY_EC);
    hs_close(&h);
    /* A wildcard stands for one label only; unknown names get the default. */
    handshake(&h, ts, c13, "a.b.wild.test", NULL);
    assert_served(&h, "www.example.com", EVP_PKEY_EC);
    hs_close(&h);
    handshake(&h, ts, c13, NULL, NULL);
    assert_served(&h, "www.example.com", EVP_PKEY_EC);
    hs_close(&h);

    /* TLS 1.2: the suite picks the key type. */
    SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(c12, "ECDHE-RSA-AES128-GCM-SHA256");
    handshake(&h, ts, c12, "example.com", NULL);
    assert_served(&h, "www.example.com", EVP_PKEY_RSA);
    hs_close(&h);
    SSL_CTX_free(c12);

    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    tg_tls_server_print_policy(ts, out);
    fclose(out);
    assert_non_null(strstr(buf, "listener \"public\" 127.0.0.1:8443 (http)"));
    assert_non_null(strstr(buf, "versions: TLS1.2 to TLS1.3"));
    assert_non_null(strstr(buf, "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384"));
    assert_non_null(strstr(buf, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 "
                                "(ECDHE-ECDSA-AES128-GCM-SHA256), "
                                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
    assert_non_null(strstr(buf, "certificate \"ec\" (ECDSA P-256): subject CN=www.example.com"));
    assert_non_null(strstr(buf, "certificate \"rsa\" (RSA 2048)"));
    assert_non_null(strstr(buf, "DNS:www.example.com, DNS:example.com"));
    assert_non_null(strstr(buf, "groups: X25519, P-256"));
    assert_non_null(strstr(buf, "(OpenSSL default)"));
    assert_non_null(strstr(buf,
                           "alpn: http/1.1; session resumption: tickets (1 per TLS 1.3 handshake, "
                           "valid 7200 s); security level: 2"));
    free(buf);

    SSL_CTX_free(c13);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

static void test_alpn(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    struct tg_tls_server *ts = build_ok(&f);
    SSL_CTX *c = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    static const unsigned char h11[] = "\x02h2\x08http/1.1", h2[] = "\x02h2";
    struct hs h;
    SSL_CTX_set_alpn_protos(c, h11, sizeof(h11) - 1);
    handshake(&h, ts, c, NULL, NULL);
    assert_true(h.ok);
    const unsigned char *sel = NULL;
    unsigned sl = 0;
    SSL_get0_alpn_selected(h.server, &sel, &sl);
    assert_int_equal(sl, 8);
    assert_memory_equal(sel, "http/1.1", 8);
    hs_close(&h);

    SSL_CTX_set_alpn_protos(c, h2, sizeof(h2) - 1);
    handshake(&h, ts, c, NULL, NULL);
    assert_false(h.ok);
    assert_int_equal(tg_tls_classify(h.server, h.server_error, 0), TG_TLS_FAIL_ALPN);
    hs_close(&h);
    SSL_CTX_free(c);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

/* Whether a second TLS 1.2 connection resumes the first one's session (from its ticket). */
static bool resumes(struct tg_tls_server *ts)
{
    SSL_CTX *c = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    struct hs h;
    handshake(&h, ts, c, NULL, NULL);
    assert_true(h.ok);
    SSL_SESSION *sess = SSL_get1_session(h.client);
    hs_close(&h);
    memset(&h, 0, sizeof(h));
    h.client = SSL_new(c);
    h.server = SSL_new(tg_tls_server_ctx(ts));
    SSL_set_session(h.client, sess);
    BIO *cb = NULL, *sb = NULL;
    BIO_new_bio_pair(&cb, 0, &sb, 0);
    SSL_set_bio(h.client, cb, cb);
    SSL_set_bio(h.server, sb, sb);
    SSL_set_connect_state(h.client);
    SSL_set_accept_state(h.server);
    int done = 0;
    for (int i = 0; i < 50 && done != 3; i++) {
        if (!(done & 1) && SSL_do_handshake(h.client) == 1)
            done |= 1;
        if (!(done & 2) && SSL_do_handshake(h.server) == 1)
            done |= 2;
    }
    assert_int_equal(done, 3);
    bool reused = SSL_session_reused(h.server) == 1;
    h.ok = true;
    hs_close(&h);
    SSL_SESSION_free(sess);
    SSL_CTX_free(c);
    return reused;
}

static void test_session_resumption(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    struct tg_tls_server *ts = build_ok(&f);
    /* Tickets come from the thread's key ring: none yet, none issued. */
    assert_false(resumes(ts));
    struct tg_tls_tickets *ring = tg_tls_tickets_rotate(NULL, 3);
    tg_tls_tickets_use(ring);
    assert_true(resumes(ts));
    tg_tls_server_free(ts);
    f.lc.tls.session_resumption = false;
    ts = build_ok(&f);
    assert_false(resumes(ts));
    tg_tls_server_free(ts);
    tg_tls_tickets_use(NULL);
    tg_tls_tickets_unref(ring);
    fixture_close(&f);
}

static void test_same_key_type_twice(void **state)
{
    static const char *const ks[] = {"ec", "ec2"};
    struct fixture f;
    fixture_init(&f, ks, 2);
    char *msg = build_fail(&f);
    assert_non_null(strstr(msg, "keystore \"ec2\" has the same names and key type (ECDSA) as "
                                "keystore \"ec\""));
    assert_non_null(strstr(msg, "/listeners/0/tls/certificates/1"));
    free(msg);
    fixture_close(&f);
}

static void test_key_mismatch_and_garbage(void **state)
{
    static const char *const ks[] = {"ec", "other"};
    struct fixture f;
    fixture_init(&f, ks, 2);
    free(f.ks[0].key_file);
    f.ks[0].key_file = tmp_path("ec2", "key"); /* ec2's key, ec's certificate */
    free(f.ks[1].cert_file);
    f.ks[1].cert_file = tmp_path("garbage", "crt");
    FILE *g = fopen(f.ks[1].cert_file, "w");
    fputs("this is not PEM\n", g);
    fclose(g);
    char *msg = build_fail(&f);
    assert_non_null(strstr(msg, "test.json:10:5: /keystores/ec: keystore \"ec\": the key in"));
    assert_non_null(strstr(msg, "does not match the certificate"));
    assert_non_null(strstr(msg, "test.json:11:5: /keystores/other: keystore \"other\": no PEM "
                                "certificate found in"));
    free(msg);

    free(f.ks[1].cert_file);
    f.ks[1].cert_file = tmp_path("missing", "crt");
    msg = build_fail(&f);
    assert_non_null(strstr(msg, "cannot read certificate file"));
    assert_non_null(strstr(msg, "No such file or directory"));
    free(msg);
    fixture_close(&f);
}

static void write_encrypted_key(const char *from, const char *to, const char *password)
{
    char *src = tmp_path(from, "key"), *dst = tmp_path(to, "key");
    FILE *in = fopen(src, "r");
    EVP_PKEY *key = PEM_read_PrivateKey(in, NULL, NULL, NULL);
    fclose(in);
    FILE *out = fopen(dst, "w");
    assert_int_equal(
        PEM_write_PKCS8PrivateKey(out, key, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)password), 1);
    fclose(out);
    EVP_PKEY_free(key);
    free(src);
    free(dst);
}

static void test_encrypted_key(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    write_encrypted_key("ec", "ec-enc", "s3cret-pw");
    free(f.ks[0].key_file);
    f.ks[0].key_file = tmp_path("ec-enc", "key");
    char *msg = build_fail(&f);
    assert_non_null(strstr(msg, "is encrypted: set key_password"));
    free(msg);
    f.ks[0].key_password = (char *)"wrong";
    msg = build_fail(&f);
    assert_non_null(strstr(msg, "wrong password or the key is encrypted: set key_password"));
    assert_null(strstr(msg, "wrong\n"));
    free(msg);
    f.ks[0].key_password = (char *)"s3cret-pw";
    struct tg_tls_server *ts = build_ok(&f);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

static void test_expiry(void **state)
{
    /* Re-sign ec's certificate with a past not-after, and one expiring in 10 days. */
    char *crt = tmp_path("ec", "crt"), *keyp = tmp_path("ec", "key");
    FILE *fc = fopen(crt, "r"), *fk = fopen(keyp, "r");
    X509 *cert = PEM_read_X509(fc, NULL, NULL, NULL);
    EVP_PKEY *key = PEM_read_PrivateKey(fk, NULL, NULL, NULL);
    fclose(fc);
    fclose(fk);
    struct tg_err err;
    tg_err_init(&err);
    static const char *const names[] = {"old", "soon"};
    static const long adj[] = {-60, 10L * 86400 + 3600};
    for (int i = 0; i < 2; i++) {
        X509_gmtime_adj(X509_getm_notAfter(cert), adj[i]);
        X509_sign(cert, key, EVP_sha256());
        char *c = tmp_path(names[i], "crt"), *k = tmp_path(names[i], "key");
        assert_int_equal(tg_cert_write_pem(c, cert, NULL, k, key, &err), 0);
        free(c);
        free(k);
    }
    static const char *const ks[] = {"old"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    char *msg = build_fail(&f);
    assert_non_null(strstr(msg, "expired on"));
    free(msg);
    fixture_close(&f);

    static const char *const ks2[] = {"soon"};
    fixture_init(&f, ks2, 1);
    struct tg_tls_server *ts = NULL;
    assert_int_equal(tg_tls_server_new(&f.cfg, 0, &ts, &err), 0);
    assert_int_equal(tg_err_count(&err), 0);
    assert_int_equal(err.n, 1);
    assert_non_null(strstr(err.v[0].msg, "expires in 10 day(s)"));
    tg_tls_server_free(ts);
    fixture_close(&f);
    tg_err_close(&err);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(crt);
    free(keyp);
}

static void test_legacy_tls10(void **state)
{
    static const char *const ks[] = {"rsa"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    f.lc.tls.min_version = TLS1_VERSION;
    f.lc.tls.max_version = TLS1_2_VERSION;
    f.lc.tls.ciphersuites = (char *)"";
    /* Debian's libssl 3.0 is built without 3DES suites (OPENSSL_NO_WEAK_SSL_CIPHERS), so the
     * legacy test uses TLS 1.0 with the plain-RSA key exchange suite instead. */
    f.lc.tls.cipher_list = (char *)"AES128-SHA:ECDHE-RSA-AES128-SHA";
    f.lc.tls.legacy = true;
    struct tg_tls_server *ts = build_ok(&f);
    tg_tls_server_free(ts);
    /* A suite this libssl lacks is named in a warning instead of vanishing silently. */
    f.lc.tls.cipher_list = (char *)"AES128-SHA:NO-SUCH-SUITE:ECDHE-RSA-AES128-SHA";
    struct tg_err err;
    tg_err_init(&err);
    assert_int_equal(tg_tls_server_new(&f.cfg, 0, &ts, &err), 0);
    assert_int_equal(err.n, 1);
    assert_non_null(strstr(err.v[0].msg, "cipher suite NO-SUCH-SUITE is not available"));
    tg_err_close(&err);
    SSL_CTX *c = client_ctx(TLS1_VERSION, TLS1_VERSION);
    assert_int_equal(SSL_CTX_set_cipher_list(c, "AES128-SHA:@SECLEVEL=0"), 1);
    struct hs h;
    handshake(&h, ts, c, NULL, NULL);
    assert_true(h.ok);
    assert_string_equal(SSL_get_version(h.server), "TLSv1");
    assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(h.server)), "AES128-SHA");
    hs_close(&h);

    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    tg_tls_server_print_policy(ts, out);
    fclose(out);
    assert_non_null(strstr(buf, "security level: 0"));
    assert_non_null(strstr(buf, "WARNING: legacy"));
    assert_non_null(strstr(buf, "TLS_RSA_WITH_AES_128_CBC_SHA (AES128-SHA)"));
    assert_null(strstr(buf, "TLS 1.3 suites"));
    free(buf);
    SSL_CTX_free(c);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

static void test_no_shared_cipher(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    f.lc.tls.max_version = TLS1_2_VERSION;
    f.lc.tls.cipher_list = (char *)"ECDHE-ECDSA-AES128-GCM-SHA256";
    struct tg_tls_server *ts = build_ok(&f);
    SSL_CTX *c = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305");
    struct hs h;
    handshake(&h, ts, c, NULL, NULL);
    assert_false(h.ok);
    assert_int_equal(tg_tls_classify(h.server, h.server_error, 0), TG_TLS_FAIL_CIPHER);
    char detail[256];
    tg_tls_fail_detail(h.server, TG_TLS_FAIL_CIPHER, detail, sizeof(detail));
    assert_string_equal(detail, "none of the client's 2 cipher suites is enabled here");
    hs_close(&h);
    SSL_CTX_free(c);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

static void test_version_mismatch(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    f.lc.tls.min_version = TLS1_3_VERSION;
    struct tg_tls_server *ts = build_ok(&f);
    SSL_CTX *c = client_ctx(TLS1_VERSION, TLS1_1_VERSION);
    SSL_CTX_set_cipher_list(c, "DEFAULT@SECLEVEL=0");
    struct hs h;
    handshake(&h, ts, c, NULL, NULL);
    assert_false(h.ok);
    assert_int_equal(tg_tls_classify(h.server, h.server_error, 0), TG_TLS_FAIL_VERSION);
    char detail[256];
    tg_tls_fail_detail(h.server, TG_TLS_FAIL_VERSION, detail, sizeof(detail));
    assert_string_equal(detail, "client offered up to TLS1.1; this listener allows only TLS1.3");
    hs_close(&h);
    SSL_CTX_free(c);

    /* A TLS 1.3-capable client states its whole range in supported_versions. */
    f.lc.tls.min_version = TLS1_3_VERSION;
    c = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    tg_tls_server_free(ts);
    f.lc.tls.min_version = TLS1_VERSION;
    f.lc.tls.max_version = TLS1_1_VERSION;
    f.lc.tls.legacy = true;
    f.lc.tls.cipher_list = (char *)"ECDHE-ECDSA-AES128-SHA";
    ts = build_ok(&f);
    handshake(&h, ts, c, NULL, NULL);
    assert_false(h.ok);
    assert_int_equal(tg_tls_classify(h.server, h.server_error, 0), TG_TLS_FAIL_VERSION);
    tg_tls_fail_detail(h.server, TG_TLS_FAIL_VERSION, detail, sizeof(detail));
    assert_string_equal(detail, "client offered TLS1.2 to TLS1.3; this listener allows TLS1.0 to "
                                "TLS1.1");
    hs_close(&h);
    SSL_CTX_free(c);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

static void test_no_shared_group(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    f.lc.tls.min_version = TLS1_3_VERSION;
    f.lc.tls.curves = (char *)"X25519";
    struct tg_tls_server *ts = build_ok(&f);
    SSL_CTX *c = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    SSL_CTX_set1_groups_list(c, "P-384:P-521");
    struct hs h;
    handshake(&h, ts, c, NULL, NULL);
    assert_false(h.ok);
    assert_int_equal(tg_tls_classify(h.server, h.server_error, 0), TG_TLS_FAIL_GROUP);
    char detail[256];
    tg_tls_fail_detail(h.server, TG_TLS_FAIL_GROUP, detail, sizeof(detail));
    assert_string_equal(detail, "client supports groups P-384, P-521; listener allows X25519");
    hs_close(&h);
    SSL_CTX_free(c);
    tg_tls_server_free(ts);
    fixture_close(&f);
}

static void test_bad_policy_and_disabled(void **state)
{
    static const char *const ks[] = {"ec"};
    struct fixture f;
    fixture_init(&f, ks, 1);
    f.lc.tls.cipher_list = (char *)"NO-SUCH-CIPHER";
    f.lc.tls.curves = (char *)"nosuchcurve";
    char *msg = build_fail(&f);
    assert_non_null(strstr(msg, "/listeners/0/tls/cipher_suites: no TLS 1.2-or-older"));
    assert_non_null(strstr(msg, "/listeners/0/tls/curves: OpenSSL rejects the groups"));
    free(msg);
    f.lc.tls.disabled = true;
    struct tg_err err;
    tg_err_init(&err);
    struct tg_tls_server *ts = NULL;
    assert_int_equal(tg_tls_server_new(&f.cfg, 0, &ts, &err), -EINVAL);
    assert_int_equal(tg_tls_server_new(&f.cfg, 5, &ts, &err), -EINVAL);
    tg_err_close(&err);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_and_key_types),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_same_key_type_twice),
        cmocka_unit_test(test_key_mismatch_and_garbage),
        cmocka_unit_test(test_encrypted_key),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_legacy_tls10),
        cmocka_unit_test(test_no_shared_cipher),
        cmocka_unit_test(test_version_mismatch),
        cmocka_unit_test(test_no_shared_group),
        cmocka_unit_test(test_bad_policy_and_disabled),
        cmocka_unit_test(test_session_resumption),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
