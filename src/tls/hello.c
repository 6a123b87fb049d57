/* Client-hello records: what a client offered (versions, suites, groups, the ACME challenge
 * protocol), kept in the connection's link (else SSL ex_data) for the handshake-failure log, and
 * the client-hello callback that records it. */
#include "tls/tls.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core.h"
#include "tls/internal.h"

static int hello_idx = -1;
static pthread_once_t hello_once = PTHREAD_ONCE_INIT;

static void hello_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void hello_init(void)
{
    hello_idx = SSL_get_ex_new_index(0, "tlsgate client hello", NULL, NULL, hello_free);
}

bool tg_tls_link_set(SSL *ssl, struct tg_tls_link *l)
{
    BIO *b = SSL_get_wbio(ssl);
    if (b == NULL)
        return false;
    BIO_set_callback_arg(b, (char *)l);
    return true;
}

struct tg_tls_link *tg_tls_link_of(SSL *ssl)
{
    BIO *b = ssl != NULL ? SSL_get_wbio(ssl) : NULL;
    return b != NULL ? (struct tg_tls_link *)BIO_get_callback_arg(b) : NULL;
}

void tg_tls_link_clear(struct tg_tls_link *l)
{
    free(l->hello);
    l->hello = NULL;
}

const struct tg_tls__hello *tg_tls__hello_get(SSL *ssl)
{
    struct tg_tls_link *l = tg_tls_link_of(ssl);
    if (l != NULL)
        return l->hello;
    pthread_once(&hello_once, hello_init);
    return hello_idx < 0 ? NULL : SSL_get_ex_data(ssl, hello_idx);
}

struct tg_tls__hello *tg_tls__hello_get_or_new(SSL *ssl)
{
    struct tg_tls_link *l = tg_tls_link_of(ssl);
    if (l != NULL) {
        if (l->hello == NULL)
            l->hello = tg_xcalloc(1, sizeof(*l->hello));
        return l->hello;
    }
    pthread_once(&hello_once, hello_init);
    if (hello_idx < 0)
        return NULL;
    struct tg_tls__hello *h = SSL_get_ex_data(ssl, hello_idx);
    if (h != NULL)
        return h;
    h = tg_xcalloc(1, sizeof(*h));
    if (SSL_set_ex_data(ssl, hello_idx, h) != 1) {
        free(h);
        return NULL;
    }
    return h;
}

void tg_tls_hello_release(SSL *ssl)
{
    struct tg_tls_link *l = tg_tls_link_of(ssl);
    if (l != NULL) {
        tg_tls_link_clear(l);
        return;
    }
    pthread_once(&hello_once, hello_init);
    if (hello_idx < 0)
        return;
    void *h = SSL_get_ex_data(ssl, hello_idx);
    if (h != NULL && SSL_set_ex_data(ssl, hello_idx, NULL) == 1)
        free(h);
}

static bool is_grease(unsigned v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static void record_versions(struct tg_tls__hello *h, const struct tg_tls__hello_fields *in)
{
    const uint8_t *p = in->versions;
    size_t len = in->versions_len;
    if (in->has_versions && len >= 1) {
        size_t n = TG_MIN((size_t)p[0], len - 1);
        for (size_t i = 0; i + 1 < n; i += 2) {
            unsigned v = (unsigned)p[1 + i] << 8 | p[2 + i];
            if (is_grease(v) || v < SSL3_VERSION || v > TLS1_3_VERSION)
                continue;
            if (h->min_version == 0 || v < h->min_version)
                h->min_version = (uint16_t)v;
            if (v > h->max_version)
                h->max_version = (uint16_t)v;
        }
        if (h->max_version != 0)
            return;
    }
    /* Without supported_versions the client states only its highest version. */
    h->max_version = (uint16_t)in->legacy_version;
    h->min_version = 0;
}

static bool suite_usable(const struct tg_tls__hello_ours *ours, unsigned id)
{
    if ((id >> 8) == 0x13)
        return ours->max_version >= TLS1_3_VERSION;
    return ours->min_version <= TLS1_2_VERSION;
}

static void record_suites(struct tg_tls__hello *h, const struct tg_tls__hello_fields *in,
                          const struct tg_tls__hello_ours *ours)
{
    const uint8_t *p = in->suites;
    size_t len = in->suites_len;
    /* An SSLv2-format hello carries 3-byte cipher specs. */
    size_t step = in->isv2 ? 3 : 2;
    for (size_t i = 0; i + step <= len; i += step) {
        if (step == 3 && p[i] != 0)
            continue;
        unsigned id = (unsigned)p[i + step - 2] << 8 | p[i + step - 1];
        if (is_grease(id) || id == 0x00ff || id == 0x5600)
            continue;
        if (h->n_suites < UINT16_MAX)
            h->n_suites++;
        if (h->suite_match || !suite_usable(ours, id))
            continue;
        if (ours->suite_enabled(ours->arg, id))
            h->suite_match = true;
    }
}

static void record_groups(struct tg_tls__hello *h, const struct tg_tls__hello_fields *in,
                          const struct tg_tls__hello_ours *ours)
{
    const uint8_t *p = in->groups;
    size_t len = in->groups_len;
    if (!in->has_groups || len < 2)
        return;
    h->groups_sent = true;
    size_t n = TG_MIN((size_t)(p[0] << 8 | p[1]), len - 2);
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned id = (unsigned)p[2 + i] << 8 | p[3 + i];
        if (is_grease(id))
            continue;
        if (h->n_groups < TG_TLS__HELLO_GROUPS)
            h->groups[h->n_groups] = (uint16_t)id;
        if (h->n_groups < UINT8_MAX)
            h->n_groups++;
        for (size_t j = 0; j < ours->n_groups; j++)
            if (ours->groups[j] == id)
                h->group_match = true;
    }
}

void tg_tls__hello_record(struct tg_tls__hello *h, const struct tg_tls__hello_fields *in,
                          const struct tg_tls__hello_ours *ours)
{
    memset(h, 0, sizeof(*h));
    record_versions(h, in);
    record_suites(h, in, ours);
    record_groups(h, in, ours);
    h->alpn_sent = in->has_alpn;
}

/* Whether the connection's cipher list (SSL_get_ciphers) holds the suite with IANA id. */
static bool ssl_suite_enabled(void *arg, unsigned id)
{
    STACK_OF(SSL_CIPHER) *ours = SSL_get_ciphers(arg);
    for (int j = 0; j < sk_SSL_CIPHER_num(ours); j++)
        if (SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(ours, j)) == id)
            return true;
    return false;
}

/* Whether an ALPN extension body lists acme-tls/1 (RFC 8737). */
static bool acme_offered(const unsigned char *p, size_t len)
{
    if (len < 2)
        return false;
    size_t n = TG_MIN((size_t)(p[0] << 8 | p[1]), len - 2);
    for (size_t i = 2; i < n + 2;) {
        size_t l = p[i];
        if (i + 1 + l > n + 2)
            return false;
        if (l == sizeof(TG_TLS__ACME_ALPN) - 1 && memcmp(p + i + 1, TG_TLS__ACME_ALPN, l) == 0)
            return true;
        i += 1 + l;
    }
    return false;
}

/* TLS-ALPN-01: a client offering acme-tls/1 for a name the ACME client is validating gets that
 * name's validation certificate, and nothing else (the connection is closed after the
 * handshake). Anyone else offering acme-tls/1 is treated like any client. */
static void acme_validation(SSL *ssl, struct tg_tls__hello *h)
{
    const unsigned char *p = NULL;
    size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5 ||
        p[2] != TLSEXT_NAMETYPE_host_name)
        return;
    size_t n = (size_t)(p[3] << 8 | p[4]);
    if (n == 0 || n > len - 5)
        return;
    X509 *cert;
    EVP_PKEY *key;
    if (!tg_acme__tlsalpn_find((const char *)p + 5, n, &cert, &key))
        return;
    SSL_certs_clear(ssl);
    if (SSL_use_certificate(ssl, cert) == 1 && SSL_use_PrivateKey(ssl, key) == 1)
        h->acme = true;
    ERR_clear_error();
}

/* Runs first on every ClientHello (twice after a HelloRetryRequest); records what the client
 * offered so a failure can be explained. Never rejects: OpenSSL decides. */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
    const struct tg_tls_server *ts = arg;
    struct tg_tls__hello *h = tg_tls__hello_get_or_new(ssl);
    if (h == NULL)
        return SSL_CLIENT_HELLO_SUCCESS;
    struct tg_tls__hello_fields in = {
        .legacy_version = SSL_client_hello_get0_legacy_version(ssl),
        .isv2 = SSL_client_hello_isv2(ssl),
    };
    const unsigned char *p = NULL;
    size_t len = 0;
    in.has_versions = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &in.versions,
                                                &in.versions_len) == 1;
    in.suites_len = SSL_client_hello_get0_ciphers(ssl, &in.suites);
    in.has_groups = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_groups, &in.groups,
                                              &in.groups_len) == 1;
    in.has_alpn = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
                                            &p, &len) == 1;
    struct tg_tls__hello_ours ours = {
        .min_version = ts->min_version,
        .max_version = ts->max_version,
        .suite_enabled = ssl_suite_enabled,
        .arg = ssl,
        .groups = ts->groups,
        .n_groups = ts->n_groups,
    };
    tg_tls__hello_record(h, &in, &ours);
    if (in.has_alpn && acme_offered(p, len))
        acme_validation(ssl, h);
    return SSL_CLIENT_HELLO_SUCCESS;
}

void tg_tls__hello_attach(SSL_CTX *ctx, struct tg_tls_server *ts)
{
    pthread_once(&hello_once, hello_init);
    SSL_CTX_set_client_hello_cb(ctx, hello_cb, ts);
}
