/* Client SSL_CTXs towards TLS backends: truststores, verification with pins, client
 * certificates, the backend's version/suite/group/ALPN policy, session hand-off to the engine,
 * and per-connection SSLs. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "tls/internal.h"

/* ---- per-connection records (SSL ex_data) and the context's owner (SSL_CTX ex_data) ---- */

static int cconn_idx = -1, client_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void cconn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct tg_tls__cconn *cc = ptr;
    if (cc == NULL)
        return;
    free(cc->name);
    X509_free(cc->verify_cert);
    free(cc);
}

static void idx_init(void)
{
    cconn_idx = SSL_get_ex_new_index(0, "tlsgate backend connection", NULL, NULL, cconn_free);
    client_idx = SSL_CTX_get_ex_new_index(0, "tlsgate backend client", NULL, NULL, NULL);
}

struct tg_tls__cconn *tg_tls__cconn_get(const SSL *ssl)
{
    pthread_once(&idx_once, idx_init);
    return ssl == NULL || cconn_idx < 0 ? NULL : SSL_get_ex_data(ssl, cconn_idx);
}

bool tg_tls_client_cert_requested(const SSL *ssl)
{
    const struct tg_tls__cconn *cc = tg_tls__cconn_get(ssl);
    return cc != NULL && cc->cert_requested;
}

/* ---- pins ---- */

static int spki_sha256(X509 *cert, uint8_t out[32])
{
    unsigned char *der = NULL;
    unsigned int len = 0;
    /* The whole SubjectPublicKeyInfo, as HPKP pins it (X509_pubkey_digest hashes only the key
     * bits). */
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    int ok = n > 0 && EVP_Digest(der, (size_t)n, out, &len, EVP_sha256(), NULL) == 1 && len == 32;
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

void tg_tls__spki_pin(X509 *cert, char *buf, size_t len)
{
    uint8_t md[32];
    unsigned char b64[48];
    if (len == 0)
        return;
    if (cert == NULL || spki_sha256(cert, md) != 0) {
        snprintf(buf, len, "?");
        return;
    }
    EVP_EncodeBlock(b64, md, sizeof(md));
    snprintf(buf, len, "%s", (const char *)b64);
}

static bool pinned(const struct tg_tls_client *tc, X509 *cert)
{
    uint8_t md[32];
    if (cert == NULL || spki_sha256(cert, md) != 0)
        return false;
    for (size_t i = 0; i < tc->n_pins; i++)
        if (memcmp(tc->pins[i], md, sizeof(md)) == 0)
            return true;
    return false;
}

/* ---- verification ---- */

static void record_failure(struct tg_tls__cconn *cc, X509_STORE_CTX *xs)
{
    if (cc == NULL)
        return;
    cc->verify_error = X509_STORE_CTX_get_error(xs);
    cc->verify_depth = X509_STORE_CTX_get_error_depth(xs);
    X509 *cert = X509_STORE_CTX_get_current_cert(xs);
    if (cert == NULL)
        cert = X509_STORE_CTX_get0_cert(xs);
    X509_free(cc->verify_cert);
    cc->verify_cert = cert;
    if (cert != NULL)
        X509_up_ref(cert);
}

/* Replaces OpenSSL's chain check (SSL_CTX_set_cert_verify_callback): the standard verification
 * (chain, validity, and the name SSL_set1_host or the IP set on the SSL), then the pins against
 * the verified chain. With allow_insecure only the pins are checked, against the chain the
 * backend presented. A failure aborts the handshake; what failed is kept for the classifier. */
static int verify_chain(X509_STORE_CTX *xs, void *arg)
{
    const struct tg_tls_client *tc = arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tg_tls__cconn *cc = tg_tls__cconn_get(ssl);

    if (tc->verify) {
        int ok = X509_verify_cert(xs);
        if (ok <= 0) {
            record_failure(cc, xs);
            return ok;
        }
    }
    if (tc->n_pins == 0)
        return 1;
    STACK_OF(X509) *chain =
        tc->verify ? X509_STORE_CTX_get0_chain(xs) : X509_STORE_CTX_get0_untrusted(xs);
    bool match = pinned(tc, X509_STORE_CTX_get0_cert(xs));
    for (int i = 0; !match && i < sk_X509_num(chain); i++)
        match = pinned(tc, sk_X509_value(chain, i));
    if (match)
        return 1;
    X509_STORE_CTX_set_current_cert(xs, X509_STORE_CTX_get0_cert(xs));
    X509_STORE_CTX_set_error_depth(xs, 0);
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    record_failure(cc, xs);
    if (cc != NULL)
        cc->pin_mismatch = true;
    return 0;
}

/* OpenSSL calls a client's cert callback only when the server sent a CertificateRequest (checked
 * by the unit tests); it changes nothing, it only notes the request. */
static int cert_requested_cb(SSL *ssl, void *arg)
{
    struct tg_tls__cconn *cc = tg_tls__cconn_get(ssl);
    if (cc != NULL)
        cc->cert_requested = true;
    return 1;
}

/* Hands each new session to the engine, which then owns it (return 1); without a hook OpenSSL
 * drops it (return 0), as the context keeps no session store. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    pthread_once(&idx_once, idx_init);
    const struct tg_tls_client *tc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_idx);
    if (tc == NULL || tc->session_hook == NULL)
        return 0;
    tc->session_hook(ssl, sess);
    return 1;
}

void tg_tls_client_set_session_hook(struct tg_tls_client *tc, tg_tls_session_cb cb)
{
    tc->session_hook = cb;
}

/* ---- truststores ---- */

static int setup_trust(struct tg_tls_client *tc, const struct tg_config *cfg,
                       const struct tg_backend_tls_conf *bt, struct tg_err *err)
{
    bool system = bt->truststore == NULL || bt->truststore_idx >= cfg->n_truststores ||
                  strcmp(cfg->truststores[bt->truststore_idx].type, "system") == 0;
    if (system) {
        tc->truststore = bt->truststore ? tg_xstrdup(bt->truststore) : NULL;
    } else {
        const struct tg_truststore_conf *ts = &cfg->truststores[bt->truststore_idx];
        tc->truststore = tg_xstrdup(ts->name);
        tc->truststore_file = tg_xstrdup(ts->file ? ts->file : "");
    }
    return tg_tls__trust_load(cfg, system ? SIZE_MAX : bt->truststore_idx,
                              SSL_CTX_get_cert_store(tc->ctx), NULL, &tc->n_cas, err);
}

/* ---- client certificate ---- */

static int setup_client_cert(struct tg_tls_client *tc, const struct tg_config *cfg,
                             const struct tg_backend_tls_conf *bt, struct tg_err *err)
{
    if (bt->client_certificate == NULL)
        return 0;
    if (bt->client_certificate_idx >= cfg->n_keystores) {
        tg_err_error(err, &bt->loc, bt->path, "unknown keystore \"%s\"", bt->client_certificate);
        return -EINVAL;
    }
    const struct tg_keystore_conf *kc = &cfg->keystores[bt->client_certificate_idx];
    struct tg_tls__keystore ks = {0};
    int rc = -EINVAL;
    if (tg_tls__keystore_load(kc, &ks, err) != 0)
        goto out;
    if (SSL_CTX_use_certificate(tc->ctx, ks.cert) != 1 ||
        SSL_CTX_use_PrivateKey(tc->ctx, ks.key) != 1 ||
        SSL_CTX_set1_chain(tc->ctx, ks.chain) != 1 || SSL_CTX_check_private_key(tc->ctx) != 1) {
        char why[256];
        tg_tls__openssl_reason(why, sizeof(why));
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"%s\": OpenSSL refuses its key material: %s", kc->name, why);
        goto out;
    }
    uint32_t xku = X509_get_extended_key_usage(ks.cert);
    if (xku != UINT32_MAX && !(xku & XKU_SSL_CLIENT)) {
        char *path = tg_xasprintf("%s/client_certificate", bt->path);
        tg_err_warning(err, &bt->client_certificate_loc, path,
                       "keystore \"%s\": the certificate has no clientAuth extended key usage; "
                       "backends that check it will refuse it",
                       kc->name);
        free(path);
    }
    tc->client_keystore = tg_xstrdup(kc->name);
    tc->client_cert = ks.cert;
    ks.cert = NULL;
    rc = 0;
out:
    tg_tls__keystore_close(&ks);
    return rc;
}

/* ---- contexts ---- */

static void copy_conf(struct tg_tls_client *tc, const struct tg_backend_conf *bc)
{
    const struct tg_backend_tls_conf *bt = &bc->tls;
    tc->backend = tg_xstrdup(bc->name ? bc->name : "");
    tc->server_name = bt->server_name ? tg_xstrdup(bt->server_name) : NULL;
    tc->n_targets = bc->n_targets;
    tc->target_addrs = tg_xcalloc(bc->n_targets + 1, sizeof(*tc->target_addrs));
    tc->target_hosts = tg_xcalloc(bc->n_targets + 1, sizeof(*tc->target_hosts));
    for (size_t i = 0; i < bc->n_targets; i++) {
        const struct tg_target_conf *t = &bc->targets[i];
        tc->target_addrs[i] = tg_xstrdup(t->address ? t->address : "");
        tc->target_hosts[i] = tg_xstrdup(t->host ? t->host : "");
    }
    tc->verify = bt->verify && !bt->allow_insecure;
    if (bt->n_pins > 0) {
        tc->pins = tg_xcalloc(bt->n_pins, sizeof(*tc->pins));
        memcpy(tc->pins, bt->pins, bt->n_pins * sizeof(*tc->pins));
        tc->n_pins = bt->n_pins;
    }
    tc->min_version = bt->min_version;
    tc->max_version = bt->max_version;
    tc->legacy = bt->legacy;
    tc->curves = bt->curves ? tg_xstrdup(bt->curves) : NULL;
    tc->n_groups = tg_tls__groups_parse(bt->curves, tc->groups, TG_TLS__MAX_GROUPS);
    tc->alpn_wire = tg_tls__alpn_wire(bt->alpn, bt->n_alpn, &tc->alpn_len);
}

int tg_tls_client_new(const struct tg_config *cfg, const struct tg_backend_conf *bc,
                      struct tg_tls_client **out, struct tg_err *err)
{
    const struct tg_backend_tls_conf *bt = &bc->tls;
    struct tg_tls_client *tc = NULL;
    size_t errors_before = tg_err_count(err);
    int rc = -EINVAL;

    if (!bt->enabled || bc->kind != TG_BACKEND_HTTP)
        goto out;
    tc = tg_xcalloc(1, sizeof(*tc));
    copy_conf(tc, bc);
    tc->ctx = SSL_CTX_new(TLS_client_method());
    if (tc->ctx == NULL) {
        ERR_clear_error();
        tg_err_error(err, &bt->loc, bt->path, "cannot create an OpenSSL context");
        goto out;
    }
    const struct tg_tls__policy pol = {
        .path = bt->path,
        .loc = &bt->loc,
        .min_version = bt->min_version,
        .max_version = bt->max_version,
        .ciphersuites = bt->ciphersuites,
        .cipher_list = bt->cipher_list,
        .curves = bt->curves,
        .cipher_string = bt->cipher_string,
        .legacy = bt->legacy,
    };
    tg_tls__apply_policy(tc->ctx, &pol, true, err);
    /* Both are loaded whatever the other gives, so one run reports every problem. */
    setup_trust(tc, cfg, bt, err);
    setup_client_cert(tc, cfg, bt, err);
    if (tc->alpn_wire != NULL &&
        SSL_CTX_set_alpn_protos(tc->ctx, tc->alpn_wire, (unsigned)tc->alpn_len) != 0) {
        ERR_clear_error();
        tg_err_error(err, &bt->loc, bt->path, "OpenSSL refuses the ALPN list");
    }

    SSL_CTX_set_options(tc->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* The engine may retry a write with a moved buffer; pooled idle connections hold no
     * buffers. */
    SSL_CTX_set_mode(tc->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    /* Always VERIFY_PEER: the callback decides, and even with allow_insecure it checks pins. */
    SSL_CTX_set_verify(tc->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(tc->ctx, verify_chain, tc);
    SSL_CTX_set_cert_cb(tc->ctx, cert_requested_cb, NULL);
    /* Sessions live with the engine (per worker and target), never in a shared cache. */
    SSL_CTX_set_session_cache_mode(tc->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(tc->ctx, new_session_cb);
    pthread_once(&idx_once, idx_init);
    if (client_idx >= 0)
        SSL_CTX_set_ex_data(tc->ctx, client_idx, tc);
    ERR_clear_error();
    if (tg_err_count(err) > errors_before)
        goto out;
    *out = tc;
    tc = NULL;
    rc = 0;
out:
    tg_tls_client_free(tc);
    return rc;
}

void tg_tls_client_free(struct tg_tls_client *tc)
{
    if (tc == NULL)
        return;
    SSL_CTX_free(tc->ctx);
    free(tc->backend);
    free(tc->server_name);
    for (size_t i = 0; i < tc->n_targets; i++) {
        free(tc->target_addrs[i]);
        free(tc->target_hosts[i]);
    }
    free(tc->target_addrs);
    free(tc->target_hosts);
    free(tc->truststore);
    free(tc->truststore_file);
    free(tc->pins);
    free(tc->curves);
    free(tc->alpn_wire);
    free(tc->client_keystore);
    X509_free(tc->client_cert);
    free(tc);
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

SSL *tg_tls_client_ssl_new(struct tg_tls_client *tc, const struct tg_target_conf *t)
{
    const char *name = tc->server_name ? tc->server_name : t->host;
    SSL *ssl = SSL_new(tc->ctx);
    struct tg_tls__cconn *cc = tg_xcalloc(1, sizeof(*cc));
    bool ok = ssl != NULL && name != NULL;

    pthread_once(&idx_once, idx_init);
    cc->tc = tc;
    cc->name = tg_xstrdup(name ? name : "");
    cc->name_is_ip = is_ip(cc->name);
    if (ok && SSL_set_ex_data(ssl, cconn_idx, cc) == 1) {
        cc = NULL; /* freed with the SSL from here on */
    } else {
        ok = false;
    }
    if (ok) {
        SSL_set_connect_state(ssl);
        SSL_set_read_ahead(ssl, 1);
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        const struct tg_tls__cconn *rec = tg_tls__cconn_get(ssl);
        /* RFC 6066 forbids IP addresses in SNI. */
        if (!rec->name_is_ip)
            ok = SSL_set_tlsext_host_name(ssl, rec->name) == 1;
        if (ok && tc->verify) {
            if (rec->name_is_ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), rec->name) == 1;
            } else {
                SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(ssl, rec->name) == 1;
            }
        }
    }
    if (!ok) {
        ERR_clear_error();
        SSL_free(ssl);
        ssl = NULL;
    }
    if (cc != NULL) {
        free(cc->name);
        free(cc);
    }
    return ssl;
}
