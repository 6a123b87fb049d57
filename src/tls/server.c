/* Per-listener server SSL_CTXs: keystores grouped by certificate names (SNI), RSA+ECDSA in one
 * context, the listener's version/suite/group/ALPN/resumption policy (client-hello records:
 * hello.c). */
#include "tls/tls.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "core/core.h"
#include "tls/internal.h"

static int ctx_idx = -1;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_init(void)
{
    ctx_idx = SSL_CTX_get_ex_new_index(0, "tlsgate server", NULL, NULL, NULL);
}

const struct tg_tls_server *tg_tls__server_of(const SSL_CTX *ctx)
{
    pthread_once(&ctx_once, ctx_init);
    return ctx == NULL || ctx_idx < 0 ? NULL : SSL_CTX_get_ex_data(ctx, ctx_idx);
}

/* ---- SNI and ALPN ---- */

static size_t find_ctx(const struct tg_tls_server *ts, const char *host)
{
    for (int wild = 0; wild < 2; wild++)
        for (size_t i = 0; i < ts->n_ctxs; i++)
            for (size_t j = 0; j < ts->ctxs[i].n_names; j++) {
                const char *name = ts->ctxs[i].names[j];
                if (wild ? tg_tls__name_match(name, host, true) : tg_strcaseeq(name, host))
                    return i;
            }
    return SIZE_MAX;
}

/* Switches the connection to the context whose certificate names match the requested name.
 * An unknown name keeps the default context rather than failing: clients then see a name
 * mismatch they can report, which is easier to diagnose than an alert. */
static int sni_cb(SSL *ssl, int *al, void *arg)
{
    const struct tg_tls_server *ts = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct tg_tls__hello *h = tg_tls__hello_get(ssl);
    if (host == NULL || ts->n_ctxs < 2 || (h != NULL && h->acme))
        return SSL_TLSEXT_ERR_OK;
    size_t i = find_ctx(ts, host);
    if (i != SIZE_MAX && ts->ctxs[i].ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, ts->ctxs[i].ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* Picks our most preferred protocol the client also offered; none in common is fatal
 * (no_application_protocol), as RFC 7301 asks. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct tg_tls_server *ts = arg;
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    const struct tg_tls__hello *h = tg_tls__hello_get(ssl);
    if (h != NULL && h->acme) {
        static const unsigned char acme[] = "\x0a" TG_TLS__ACME_ALPN;
        if (SSL_select_next_proto(&sel, &sellen, acme, sizeof(acme) - 1, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        *out = sel;
        *outlen = sellen;
        return SSL_TLSEXT_ERR_OK;
    }
    if (ts->alpn_wire == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&sel, &sellen, ts->alpn_wire, (unsigned)ts->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

/* ---- context setup ---- */

void tg_tls__openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown reason");
    ERR_clear_error();
}

/* OpenSSL silently drops names it does not know from a cipher list; for an explicit list of
 * suites, say which ones this libssl cannot offer (Debian's 3.0 is built without 3DES and RC4). */
static void warn_missing_suites(const struct tg_tls__policy *pol, SSL_CTX *ctx, struct tg_err *err)
{
    STACK_OF(SSL_CIPHER) *have = SSL_CTX_get_ciphers(ctx);
    const char *p = pol->cipher_list ? pol->cipher_list : "";
    char *path = tg_xasprintf("%s/cipher_suites", pol->path);
    while (*p != '\0') {
        size_t len = strcspn(p, ":");
        char *name = tg_xstrndup(p, len);
        bool found = strchr("@!-+", name[0]) != NULL;
        for (int i = 0; !found && i < sk_SSL_CIPHER_num(have); i++)
            found = strcmp(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(have, i)), name) == 0;
        if (!found && name[0] != '\0')
            tg_err_warning(err, pol->loc, path,
                           "cipher suite %s is not available in this OpenSSL build (%s) and "
                           "will not be offered",
                           name, OpenSSL_version(OPENSSL_VERSION));
        free(name);
        p += len;
        if (*p == ':')
            p++;
    }
    free(path);
}

int tg_tls__apply_policy(SSL_CTX *ctx, const struct tg_tls__policy *pol, bool report,
                         struct tg_err *err)
{
    char why[256];
    char *path = NULL;
    int rc = 0;

    SSL_CTX_set_min_proto_version(ctx, pol->min_version);
    SSL_CTX_set_max_proto_version(ctx, pol->max_version);
    if (pol->legacy)
        SSL_CTX_set_security_level(ctx, 0);
    if (SSL_CTX_set_ciphersuites(ctx, pol->ciphersuites ? pol->ciphersuites : "") != 1) {
        tg_tls__openssl_reason(why, sizeof(why));
        path = tg_xasprintf("%s/cipher_suites", pol->path);
        if (report)
            tg_err_error(err, pol->loc, path, "OpenSSL rejects the TLS 1.3 suites \"%s\": %s",
                         pol->ciphersuites, why);
        rc = -EINVAL;
    }
    const char *cl = pol->cipher_list ? pol->cipher_list : "";
    char *list = pol->legacy ? tg_xasprintf("%s:@SECLEVEL=0", cl) : tg_xstrdup(cl);
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        tg_tls__openssl_reason(why, sizeof(why));
        /* A TLS1.3-only policy needs no TLS 1.2 suites; OpenSSL's default list stays unused. */
        if (pol->min_version < TLS1_3_VERSION) {
            free(path);
            path = tg_xasprintf("%s/cipher_suites", pol->path);
            if (report)
                tg_err_error(err, pol->loc, path,
                             "no TLS 1.2-or-older cipher suite is usable from \"%s\" (%s), but "
                             "min_version allows %s",
                             cl, why, tg_tls__version_name(pol->min_version));
            rc = -EINVAL;
        }
    }
    free(list);
    if (report && !pol->cipher_string && pol->min_version < TLS1_3_VERSION)
        warn_missing_suites(pol, ctx, err);
    if (pol->curves != NULL && SSL_CTX_set1_groups_list(ctx, pol->curves) != 1) {
        tg_tls__openssl_reason(why, sizeof(why));
        free(path);
        path = tg_xasprintf("%s/curves", pol->path);
        if (report)
            tg_err_error(err, pol->loc, path, "OpenSSL rejects the groups \"%s\": %s", pol->curves,
                         why);
        rc = -EINVAL;
    }
    free(path);
    return rc;
}

/* Sessions kept per context for legacy policies' session-id resumption. */
#define LEGACY_CACHE_SESSIONS 20480

/* A new ticket of a mutual-TLS listener records the policy that verified its session. */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
    const struct tg_tls_server *ts = arg;
    SSL_SESSION *sess = SSL_get0_session(ssl);
    return sess != NULL &&
           SSL_SESSION_set1_ticket_appdata(sess, ts->cauth_fp, sizeof(ts->cauth_fp)) == 1;
}

/* A ticket resumes only under the policy that verified it (any snapshot or process with the
 * same policy); otherwise the client does a full handshake under the current one. */
static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                       size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    const struct tg_tls_server *ts = arg;
    void *data = NULL;
    size_t len = 0;
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        if (SSL_SESSION_get0_ticket_appdata(sess, &data, &len) == 1 &&
            len == sizeof(ts->cauth_fp) && CRYPTO_memcmp(data, ts->cauth_fp, len) == 0)
            return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
                                                : SSL_TICKET_RETURN_USE_RENEW;
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
        return SSL_TICKET_RETURN_ABORT;
    default: /* none sent, or not ours / not decryptable */
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

/* Staples the response of the certificate OpenSSL picked, when a current good one exists. */
static int status_cb(SSL *ssl, void *arg)
{
    const struct tg_tls_server *ts = arg;
    X509 *cert = SSL_get_certificate(ssl);
    for (size_t i = 0; i < ts->n_certs; i++) {
        if (ts->certs[i].cert != cert || ts->certs[i].staple == NULL)
            continue;
        unsigned char *der = NULL;
        size_t len = 0;
        if (!tg_tls__staple_copy(ts->certs[i].staple, &der, &len))
            break;
        if (SSL_set_tlsext_status_ocsp_resp(ssl, der, (long)len) != 1) {
            OPENSSL_free(der);
            break;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Attaches every certificate's staple (tls.ocsp_stapling); problems go to err. */
static void attach_staples(struct tg_tls_server *ts, const struct tg_tls_conf *tls,
                           struct tg_err *err)
{
    const struct tg_ocsp_conf *oc = &tls->ocsp;
    char *fpath = oc->mode == TG_OCSP_FILE ? tg_xasprintf("%s/file", oc->path)
                                           : tg_xstrdup(oc->path ? oc->path : tls->path);
    size_t usable = 0;
    char first_why[1200] = "";
    for (size_t i = 0; i < ts->n_certs; i++) {
        struct tg_tls__scert *sc = &ts->certs[i];
        sc->staple = tg_tls__staple_get(oc, sc->cert, sc->chain);
        char why[1024];
        if (tg_tls__staple_usable(sc->staple, why, sizeof(why))) {
            usable++;
            continue;
        }
        if (first_why[0] == '\0')
            snprintf(first_why, sizeof(first_why), "keystore \"%s\": %s", sc->keystore, why);
        if (oc->mode == TG_OCSP_FETCH)
            tg_err_error(err, &oc->loc, fpath, "keystore \"%s\": cannot fetch OCSP staples: %s",
                         sc->keystore, why);
    }
    if (oc->mode == TG_OCSP_FILE && usable == 0)
        tg_err_warning(err, &oc->loc, fpath, "no OCSP response is stapled now: %s", first_why);
    else if (oc->mode == TG_OCSP_FILE && usable < ts->n_certs)
        tg_err_warning(err, &oc->loc, fpath,
                       "the OCSP response is stapled for %zu of the listener's %zu certificates "
                       "(%s)",
                       usable, ts->n_certs, first_why);
    free(fpath);
}

static int configure_ctx(struct tg_tls_server *ts, const struct tg_tls_conf *tls, SSL_CTX *ctx,
                         bool report, struct tg_err *err)
{
    const struct tg_tls__policy pol = {
        .path = tls->path,
        .loc = &tls->loc,
        .min_version = tls->min_version,
        .max_version = tls->max_version,
        .ciphersuites = tls->ciphersuites,
        .cipher_list = tls->cipher_list,
        .curves = tls->curves,
        .cipher_string = tls->cipher_string,
        .legacy = tls->legacy,
    };
    int rc = tg_tls__apply_policy(ctx, &pol, report, err);

    /* DHE suites only work with parameters; let OpenSSL pick them by key size. */
    SSL_CTX_set_dh_auto(ctx, 1);

    uint64_t opts =
        SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
    opts |= SSL_OP_NO_CLIENT_RENEGOTIATION;
#endif
    SSL_CTX_set_options(ctx, opts);
    /* Idle connections then hold no read/write buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

    /* Stateless tickets (keys from tickets.c's ring: shared by reloads and by instances with
     * the same key file); a server-side cache only for legacy policies, whose old clients may
     * not do tickets. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tls->session_resumption) {
        /* The same for every snapshot and process serving this listener. With client
         * certificates, a ticket also carries the fingerprint of the policy that verified the
         * session, and one from another policy makes a full handshake (ticket_dec_cb); a
         * stateful session resumes under the same id context and policy only (sessions.c). */
        SSL_CTX_set_session_id_context(ctx, ts->sid, sizeof(ts->sid));
        tg_tls__tickets_apply(ctx);
        SSL_CTX_set_num_tickets(ctx, ts->tickets_per_handshake);
        SSL_CTX_set_timeout(ctx, ts->session_timeout);
        if (ts->cauth != NULL && !ts->stateful)
            SSL_CTX_set_session_ticket_cb(ctx, ticket_gen_cb, ticket_dec_cb, ts);
        if (tls->early_data)
            tg_tls__early_apply(ctx);
        if (ts->legacy) {
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
            SSL_CTX_sess_set_cache_size(ctx, LEGACY_CACHE_SESSIONS);
        }
        if (ts->cauth != NULL && ts->stateful)
            tg_tls__sessions_apply(ctx);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }

    pthread_once(&ctx_once, ctx_init);
    if (ctx_idx >= 0)
        SSL_CTX_set_ex_data(ctx, ctx_idx, ts);
    tg_tls__hello_attach(ctx, ts);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, ts);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, ts); /* also for acme-tls/1 */
    if (ts->cauth != NULL)
        tg_tls__cauth_apply(ts->cauth, ctx);
    if (tls->ocsp.mode != TG_OCSP_OFF) {
        SSL_CTX_set_tlsext_status_cb(ctx, status_cb);
        SSL_CTX_set_tlsext_status_arg(ctx, ts);
    }
    return rc;
}

unsigned char *tg_tls__alpn_wire(char *const *ids, size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += 1 + TG_MIN(strlen(ids[i]), 255);
    *len = total;
    if (total == 0)
        return NULL;
    unsigned char *wire = tg_xmalloc(total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = TG_MIN(strlen(ids[i]), 255);
        wire[off++] = (unsigned char)l;
        memcpy(wire + off, ids[i], l);
        off += l;
    }
    return wire;
}

static bool same_names(const struct tg_tls__sctx *c, char **names, size_t n)
{
    if (c->n_names != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(c->names[i], names[i]) != 0)
            return false;
    return true;
}

/* Adds one loaded keystore to the context for its names, making the context if needed. */
static int add_keystore(struct tg_tls_server *ts, const struct tg_tls_conf *tls,
                        const struct tg_keystore_conf *kc, const struct tg_loc *loc,
                        const char *path, struct tg_tls__keystore *ks, struct tg_err *err)
{
    size_t n_names = 0;
    char **names = tg_tls__cert_names(ks->cert, &n_names);
    int rc = -EINVAL;
    size_t ci = 0;
    while (ci < ts->n_ctxs && !same_names(&ts->ctxs[ci], names, n_names))
        ci++;
    int type = EVP_PKEY_get_base_id(ks->key);
    for (size_t i = 0; ci < ts->n_ctxs && i < ts->n_certs; i++) {
        if (ts->certs[i].ctx_idx != ci ||
            EVP_PKEY_get_base_id(X509_get0_pubkey(ts->certs[i].cert)) != type)
            continue;
        tg_err_error(err, loc, path,
                     "keystore \"%s\" has the same names and key type (%s) as keystore \"%s\"; "
                     "a listener serves one certificate per key type for a name set",
                     kc->name, tg_tls__key_type(ks->key), ts->certs[i].keystore);
        goto out;
    }
    if (ci == ts->n_ctxs) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL) {
            ERR_clear_error();
            tg_err_error(err, &tls->loc, tls->path, "cannot create an OpenSSL context");
            goto out;
        }
        /* Policy errors are reported once, for the first context. */
        configure_ctx(ts, tls, ctx, false, err);
        ts->ctxs = tg_xrealloc(ts->ctxs, (ts->n_ctxs + 1) * sizeof(*ts->ctxs));
        ts->ctxs[ts->n_ctxs++] = (struct tg_tls__sctx){ctx, names, n_names};
        names = NULL;
    }
    SSL_CTX *ctx = ts->ctxs[ci].ctx;
    if (SSL_CTX_use_certificate(ctx, ks->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, ks->key) != 1 ||
        SSL_CTX_set1_chain(ctx, ks->chain) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        char why[256];
        tg_tls__openssl_reason(why, sizeof(why));
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"%s\": OpenSSL refuses its key material: %s", kc->name, why);
        goto out;
    }
    ts->certs = tg_xrealloc(ts->certs, (ts->n_certs + 1) * sizeof(*ts->certs));
    ts->certs[ts->n_certs++] =
        (struct tg_tls__scert){tg_xstrdup(kc->name), ks->cert, ks->chain, ci, NULL};
    ks->cert = NULL;
    ks->chain = NULL;
    rc = 0;
out:
    if (names != NULL)
        tg_tls__names_free(names, n_names);
    return rc;
}

/* Each route's allowed_subjects, hashed like the listener's list; bad entries go to err. */
static void load_route_allow(struct tg_tls_server *ts, const struct tg_listener_conf *lc,
                             struct tg_err *err)
{
    ts->route_allow = tg_xcalloc(lc->n_routes ? lc->n_routes : 1, sizeof(*ts->route_allow));
    ts->n_route_allow = lc->n_routes;
    for (size_t r = 0; r < lc->n_routes; r++) {
        const struct tg_route_conf *rc = &lc->routes[r];
        if (rc->n_allowed == 0)
            continue;
        ts->route_allow[r] = tg_tls_allow_new();
        for (size_t i = 0; i < rc->n_allowed; i++) {
            char why[512];
            if (tg_tls_allow_add(ts->route_allow[r], rc->allowed[i], why, sizeof(why)) != 0) {
                char *path = tg_xasprintf("%s/routes/%zu/allowed_subjects/%zu", lc->path, r, i);
                tg_err_error(err, &rc->allowed_locs[i], path, "%s", why);
                free(path);
            }
        }
    }
}

int tg_tls_server_new(const struct tg_config *cfg, size_t listener_idx, struct tg_tls_server **out,
                      struct tg_err *err)
{
    struct tg_tls_server *ts = NULL;
    size_t errors_before = tg_err_count(err);
    int rc = -EINVAL;

    if (listener_idx >= cfg->n_listeners || cfg->listeners[listener_idx].tls.disabled)
        goto out;
    const struct tg_listener_conf *lc = &cfg->listeners[listener_idx];
    const struct tg_tls_conf *tls = &lc->tls;
    ts = tg_xcalloc(1, sizeof(*ts));
    ts->listener = tg_xstrdup(lc->name ? lc->name : "");
    ts->address = tg_xstrdup(lc->address ? lc->address : "");
    ts->mode = lc->mode;
    ts->min_version = tls->min_version;
    ts->max_version = tls->max_version;
    ts->legacy = tls->legacy;
    ts->resumption = tls->session_resumption;
    ts->curves = tls->curves ? tg_xstrdup(tls->curves) : NULL;
    ts->n_groups = tg_tls__groups_parse(tls->curves, ts->groups, TG_TLS__MAX_GROUPS);
    ts->alpn_wire = tg_tls__alpn_wire(tls->alpn, tls->n_alpn, &ts->alpn_len);

    if (tls->n_certificates == 0) {
        tg_err_error(err, &tls->loc, tls->path,
                     "tls.certificates is empty: name at least one keystore (or set \"disabled\": "
                     "true for plaintext)");
        goto out;
    }
    ts->tickets_per_handshake = cfg->tickets.per_handshake ? cfg->tickets.per_handshake : 1;
    ts->session_timeout = (long)cfg->tickets.rotate_seconds *
                          (long)(cfg->tickets.keep > 1 ? cfg->tickets.keep - 1 : 1);
    if (ts->session_timeout <= 0)
        ts->session_timeout = 7200;
    if (tls->client_auth.mode != TG_CAUTH_NONE && tg_tls__cauth_new(cfg, lc, &ts->cauth, err) == 0)
        tg_tls__cauth_fingerprint(ts->cauth, &tls->client_auth, ts->cauth_fp);
    ts->stateful = ts->cauth != NULL && tg_config_tickets_stateful(cfg);
    char *label =
        tg_xasprintf("tlsgate listener %s%s", ts->listener, ts->cauth != NULL ? " mtls" : "");
    EVP_Digest(label, strlen(label), ts->sid, NULL, EVP_sha256(), NULL);
    free(label);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, ts->sid, sizeof(ts->sid)) != 1 ||
        EVP_DigestUpdate(md, ts->cauth_fp, sizeof(ts->cauth_fp)) != 1 ||
        EVP_DigestFinal_ex(md, ts->sess_scope, NULL) != 1)
        memset(ts->sess_scope, 0xff, sizeof(ts->sess_scope)); /* resumes nothing it made */
    EVP_MD_CTX_free(md);
    load_route_allow(ts, lc, err);
    /* Check the policy once on a scratch context so its problems are reported even when no
     * keystore loads. */
    SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
    if (probe != NULL) {
        configure_ctx(ts, tls, probe, true, err);
        SSL_CTX_free(probe);
    }
    ERR_clear_error();
    for (size_t i = 0; i < tls->n_certificates; i++) {
        size_t ki = tls->certificate_idx[i];
        const struct tg_loc *loc = tls->certificate_locs ? &tls->certificate_locs[i] : &tls->loc;
        char *path = tg_xasprintf("%s/certificates/%zu", tls->path, i);
        struct tg_tls__keystore ks = {0};
        if (ki >= cfg->n_keystores) {
            tg_err_error(err, loc, path, "unknown keystore \"%s\"", tls->certificates[i]);
        } else if (tg_tls__keystore_load(&cfg->keystores[ki], &ks, err) == 0) {
            add_keystore(ts, tls, &cfg->keystores[ki], loc, path, &ks, err);
        }
        tg_tls__keystore_close(&ks);
        free(path);
    }
    if (tg_err_count(err) == errors_before && tls->ocsp.mode != TG_OCSP_OFF)
        attach_staples(ts, tls, err);
    if (tg_err_count(err) > errors_before || ts->n_ctxs == 0)
        goto out;
    *out = ts;
    ts = NULL;
    rc = 0;
out:
    tg_tls_server_free(ts);
    return rc;
}

const struct tg_tls_allow *tg_tls_server_route_allow(const struct tg_tls_server *ts,
                                                     size_t route_idx)
{
    return ts != NULL && route_idx < ts->n_route_allow ? ts->route_allow[route_idx] : NULL;
}

void tg_tls_server_free(struct tg_tls_server *ts)
{
    if (ts == NULL)
        return;
    for (size_t i = 0; i < ts->n_ctxs; i++) {
        SSL_CTX_free(ts->ctxs[i].ctx);
        tg_tls__names_free(ts->ctxs[i].names, ts->ctxs[i].n_names);
    }
    free(ts->ctxs);
    for (size_t i = 0; i < ts->n_certs; i++) {
        free(ts->certs[i].keystore);
        tg_tls__staple_unref(ts->certs[i].staple);
        X509_free(ts->certs[i].cert);
        sk_X509_pop_free(ts->certs[i].chain, X509_free);
    }
    free(ts->certs);
    tg_tls__cauth_free(ts->cauth);
    for (size_t i = 0; i < ts->n_route_allow; i++)
        tg_tls_allow_free(ts->route_allow[i]);
    free(ts->route_allow);
    free(ts->alpn_wire);
    free(ts->curves);
    free(ts->listener);
    free(ts->address);
    free(ts);
}

SSL_CTX *tg_tls_server_ctx(const struct tg_tls_server *ts)
{
    return ts->ctxs[0].ctx;
}
