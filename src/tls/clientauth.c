/* Client-certificate verification of a listener: trust, depth, key usage, the allow list,
 * revocation from CRL files, a cache of verified chains, and a record of why a certificate was
 * refused for the handshake-failure log. Loading the policy is cauth_load.c's. */
#include "tls/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core.h"

/* ---- per-connection record ---- */

struct cverify {
    enum tg_tls_fail fail;
    bool abandoned; /* the connection closed while verification waited for a fetch */
    bool wait_over; /* the handshake's time for waiting on fetches ran out */
    char detail[1024];
};

static int rec_idx = -1;
static pthread_once_t rec_once = PTHREAD_ONCE_INIT;

static void rec_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void rec_init(void)
{
    rec_idx = SSL_get_ex_new_index(0, "tlsgate client certificate", NULL, NULL, rec_free);
}

static struct cverify *rec_get(SSL *ssl, bool create)
{
    pthread_once(&rec_once, rec_init);
    if (rec_idx < 0 || ssl == NULL)
        return NULL;
    struct cverify *r = SSL_get_ex_data(ssl, rec_idx);
    if (r == NULL && create) {
        r = tg_xcalloc(1, sizeof(*r));
        if (SSL_set_ex_data(ssl, rec_idx, r) != 1) {
            free(r);
            r = NULL;
        }
    }
    return r;
}

enum tg_tls_fail tg_tls__cauth_failure(SSL *ssl, const char **detail)
{
    struct cverify *r = rec_get(ssl, false);
    if (detail != NULL)
        *detail = r ? r->detail : "";
    return r ? r->fail : TG_TLS_FAIL_NONE;
}

/* ---- the decision ---- */

static size_t put_subject(char *buf, size_t n, X509 *x)
{
    char *subj = x ? tg_dn_quoted(X509_get_subject_name(x)) : tg_xstrdup("?");
    char *iss = x ? tg_dn_quoted(X509_get_issuer_name(x)) : tg_xstrdup("?");
    int k = snprintf(buf, n, "subject=\"%s\" issuer=\"%s\"", subj, iss);
    free(subj);
    free(iss);
    return k < 0 ? 0 : TG_MIN((size_t)k, n ? n - 1 : 0);
}

static enum tg_tls_fail map_x509(int v, int depth, int n_sent)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
        return TG_TLS_FAIL_CERT_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
        return TG_TLS_FAIL_CERT_NOT_YET_VALID;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return TG_TLS_FAIL_CERT_UNKNOWN_CA;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        /* The chain stops at a certificate whose issuer is neither sent nor trusted. When the
         * client sent intermediates and the top one dangles, its whole chain is foreign; when
         * the leaf dangles alone, an intermediate is most likely missing. */
        return depth == 0 || depth < n_sent ? TG_TLS_FAIL_CERT_NO_ISSUER
                                            : TG_TLS_FAIL_CERT_UNKNOWN_CA;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
        return TG_TLS_FAIL_CERT_BAD_SIGNATURE;
    case X509_V_ERR_INVALID_PURPOSE:
    case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
        return TG_TLS_FAIL_CERT_USAGE;
    case X509_V_ERR_CERT_REVOKED:
        return TG_TLS_FAIL_CERT_REVOKED;
    default:
        return TG_TLS_FAIL_CERT_BAD;
    }
}

/* Revocation of x (issued by issuer, from its verified chain) from the CRL files: 1 revoked
 * (detail written), 0 good, -1 unknown (no current CRL of that issuer). */
static int crl_status(struct tg_tls__cauth *ca, X509 *x, X509 *issuer, char *detail, size_t n)
{
    int status = -1;
    pthread_mutex_lock(&ca->lock);
    for (size_t i = 0; i < ca->n_crls; i++) {
        struct crl_file *cf = &ca->crls[i];
        if (X509_NAME_cmp(X509_CRL_get_issuer(cf->crl), X509_get_issuer_name(x)) != 0)
            continue;
        if (cf->issuer == NULL && issuer != NULL &&
            X509_CRL_verify(cf->crl, X509_get0_pubkey(issuer)) == 1) {
            cf->issuer = issuer;
            X509_up_ref(issuer);
        }
        ERR_clear_error();
        /* Only a CRL signed by the key that issued x speaks for it. */
        if (cf->issuer == NULL || issuer == NULL || X509_cmp(cf->issuer, issuer) != 0)
            continue;
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(cf->crl);
        if (next != NULL && X509_cmp_current_time(next) < 0) {
            /* Past nextUpdate: read the file again; an operator may have replaced it. */
            int rc = 0;
            X509_CRL *fresh = tg_tls__cauth_read_crl(cf->file, &rc);
            if (fresh != NULL &&
                X509_NAME_cmp(X509_CRL_get_issuer(fresh), X509_get_subject_name(cf->issuer)) == 0 &&
                X509_CRL_verify(fresh, X509_get0_pubkey(cf->issuer)) == 1) {
                X509_CRL_free(cf->crl);
                cf->crl = fresh;
                fresh = NULL;
            }
            X509_CRL_free(fresh);
            ERR_clear_error();
            next = X509_CRL_get0_nextUpdate(cf->crl);
            if (next != NULL && X509_cmp_current_time(next) < 0)
                continue;
        }
        X509_REVOKED *rev = NULL;
        if (X509_CRL_get0_by_cert(cf->crl, &rev, x) == 1 && rev != NULL) {
            char when[48];
            tg_tls__time_str(X509_REVOKED_get0_revocationDate(rev), when, sizeof(when));
            snprintf(detail, n, "revoked on %s (source: CRL file %s)", when, cf->file);
            status = 1;
            break;
        }
        status = 0;
    }
    pthread_mutex_unlock(&ca->lock);
    return status;
}

/* Where a decision is made: in a handshake (ssl; may pause for a fetch when OpenSSL runs it as
 * an async job), or outside one (may_block: `check` fetches in place; live re-authorisation
 * uses only what is cached). */
struct where {
    SSL *ssl;
    bool may_block;
};

static bool abandoned(SSL *ssl)
{
    struct cverify *r = rec_get(ssl, false);
    return r != NULL && r->abandoned;
}

static bool wait_over(SSL *ssl)
{
    struct cverify *r = rec_get(ssl, false);
    return r != NULL && r->wait_over;
}

void tg_tls_server_stop_waiting(SSL *ssl)
{
    struct cverify *r = rec_get(ssl, false);
    if (r != NULL)
        r->wait_over = true;
}

/* Status of x from fetched CRLs / OCSP, waiting for a fetch when that is possible. A fetch not
 * waited for, or whose last try failed, is named in note. */
static int fetched_status(const struct where *wh, X509 *x, X509 *issuer, char *detail, size_t n,
                          char *note, size_t note_n)
{
    int st = -1;
    for (int round = 0;; round++) {
        struct tg_tls_fetch *need = NULL;
        note[0] = '\0';
        st = tg_tls__fetched_status(x, issuer, detail, n, &need, note, note_n);
        if (need == NULL)
            return st;
        if (round >= 3) {
            tg_tls_fetch_unref(need);
            return st;
        }
        if (wh->may_block) {
            tg_tls_fetch_run(need);
            tg_tls_fetch_unref(need);
            continue;
        }
        tg_tls_fetch_cb hook = tg_tls__fetch_hook();
        if (wh->ssl != NULL && wait_over(wh->ssl)) {
            /* The handshake's time for waiting is spent, whatever source this is. */
            size_t off = strlen(note);
            snprintf(note + off, note_n - off,
                     "%sthe %s from %s did not come in time (the handshake stopped waiting "
                     "before timeouts.handshake)",
                     off ? "; " : "", tg_tls_fetch_what(need), tg_tls_fetch_url(need));
            tg_tls_fetch_unref(need);
            return st;
        }
        if (wh->ssl == NULL || hook == NULL || ASYNC_get_current_job() == NULL ||
            abandoned(wh->ssl)) {
            tg_tls_fetch_unref(need);
            return st;
        }
        /* The record carries "abandoned" if the connection closes meanwhile. */
        if (rec_get(wh->ssl, true) == NULL) {
            tg_tls_fetch_unref(need);
            return st;
        }
        if (!hook(wh->ssl, need)) {
            if (!wait_over(wh->ssl))
                return st;
            continue; /* no time was left to wait: the next round names the fetch */
        }
        /* The handshake reports SSL_ERROR_WANT_ASYNC until the fetch is done. */
        ASYNC_pause_job();
        if (abandoned(wh->ssl))
            return -1;
    }
}

static enum tg_tls_fail check_revocation(struct tg_tls__cauth *ca, const struct where *wh,
                                         STACK_OF(X509) * verified, bool leaf_only, char *detail,
                                         size_t n)
{
    if (ca->rev_mode == TG_REV_OFF)
        return TG_TLS_FAIL_NONE;
    /* The trust anchor is not checked: nothing above it could revoke it. */
    int last = ca->scope_chain && !leaf_only ? sk_X509_num(verified) - 1 : 1;
    for (int i = 0; i < last && i < sk_X509_num(verified); i++) {
        X509 *x = sk_X509_value(verified, i);
        X509 *issuer = i + 1 < sk_X509_num(verified) ? sk_X509_value(verified, i + 1) : x;
        char note[400] = "";
        int st = crl_status(ca, x, issuer, detail, n);
        if (st < 0 && ca->fetch)
            st = fetched_status(wh, x, issuer, detail, n, note, sizeof(note));
        if (wh->ssl != NULL && abandoned(wh->ssl)) {
            snprintf(detail, n, "the connection closed");
            return TG_TLS_FAIL_HANGUP;
        }
        if (st == 1)
            return TG_TLS_FAIL_CERT_REVOKED;
        if (st < 0 && ca->rev_mode == TG_REV_HARD_FAIL) {
            char *iss = tg_dn_string(X509_get_issuer_name(x));
            snprintf(detail, n,
                     "no current CRL (file or distribution point) or OCSP answer for this "
                     "certificate of issuer %s%s%s",
                     iss, note[0] ? ": " : "", note);
            free(iss);
            return TG_TLS_FAIL_CERT_STATUS_UNKNOWN;
        }
    }
    return TG_TLS_FAIL_NONE;
}

/* The certificates a client presented, leaf first (references borrowed). */
static STACK_OF(X509) * presented_of(X509 *leaf, STACK_OF(X509) * sent)
{
    STACK_OF(X509) *p = sk_X509_new_reserve(NULL, sk_X509_num(sent) + 1);
    if (p == NULL || sk_X509_push(p, leaf) <= 0) {
        sk_X509_free(p);
        return NULL;
    }
    for (int i = 0; i < sk_X509_num(sent); i++) {
        X509 *x = sk_X509_value(sent, i);
        if (x != leaf && sk_X509_push(p, x) <= 0) {
            sk_X509_free(p);
            return NULL;
        }
    }
    return p;
}

/* A slot key from the certificates' SHA-1 fingerprints, which OpenSSL computed when it decoded
 * them (so this hashes nothing). A hit still compares every certificate's encoding. */
static uint64_t presented_key(STACK_OF(X509) * p)
{
    uint64_t k = 1469598103934665603ULL;
    for (int i = 0; i < sk_X509_num(p); i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (X509_digest(sk_X509_value(p, i), EVP_sha1(), md, &len) != 1)
            len = 0;
        for (unsigned j = 0; j < len; j++) {
            k ^= md[j];
            k *= 1099511628211ULL;
        }
    }
    return k;
}

static bool same_certs(STACK_OF(X509) * a, STACK_OF(X509) * b)
{
    if (a == NULL || sk_X509_num(a) != sk_X509_num(b))
        return false;
    for (int i = 0; i < sk_X509_num(a); i++)
        if (X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)) != 0)
            return false;
    return true;
}

static void chain_times(STACK_OF(X509) * verified, time_t *nb, time_t *na)
{
    *nb = 0;
    *na = (time_t)INT64_MAX;
    for (int i = 0; i < sk_X509_num(verified); i++) {
        X509 *x = sk_X509_value(verified, i);
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1 && timegm(&tm) > *nb)
            *nb = timegm(&tm);
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1 && timegm(&tm) < *na)
            *na = timegm(&tm);
    }
}

/* The verified chain cached for exactly these presented certificates (a new reference), or
 * NULL. */
static STACK_OF(X509) * cache_get(struct tg_tls__cauth *ca, uint64_t key, STACK_OF(X509) * p)
{
    STACK_OF(X509) *r = NULL;
    time_t now = time(NULL);
    pthread_mutex_lock(&ca->lock);
    struct chain_entry *e = &ca->cache[key & (CHAIN_CACHE_SLOTS - 1)];
    if (e->verified != NULL && e->key == key && now >= e->not_before && now <= e->not_after &&
        same_certs(e->presented, p))
        r = X509_chain_up_ref(e->verified);
    pthread_mutex_unlock(&ca->lock);
    return r;
}

static void cache_put(struct tg_tls__cauth *ca, uint64_t key, STACK_OF(X509) * p,
                      STACK_OF(X509) * verified)
{
    pthread_mutex_lock(&ca->lock);
    struct chain_entry *e = &ca->cache[key & (CHAIN_CACHE_SLOTS - 1)];
    sk_X509_pop_free(e->verified, X509_free);
    sk_X509_pop_free(e->presented, X509_free);
    e->key = key;
    e->presented = X509_chain_up_ref(p);
    e->verified = e->presented != NULL ? X509_chain_up_ref(verified) : NULL;
    chain_times(verified, &e->not_before, &e->not_after);
    pthread_mutex_unlock(&ca->lock);
}

/* Verifies leaf with the certificates the client sent: the cached chain for the same bytes, or
 * a full verification (chain, validity, depth, purpose sslclient). *verified gets the chain. */
static enum tg_tls_fail verify_chain(struct tg_tls__cauth *ca, X509 *leaf, STACK_OF(X509) * sent,
                                     STACK_OF(X509) * *verified, char *detail, size_t n)
{
    STACK_OF(X509) *presented = presented_of(leaf, sent);
    uint64_t key = presented ? presented_key(presented) : 0;
    *verified = presented ? cache_get(ca, key, presented) : NULL;
    if (*verified != NULL) {
        sk_X509_free(presented);
        return TG_TLS_FAIL_NONE;
    }
    X509_STORE_CTX *xs = X509_STORE_CTX_new();
    enum tg_tls_fail f = TG_TLS_FAIL_INTERNAL;
    if (xs == NULL || X509_STORE_CTX_init(xs, ca->store, leaf, sent) != 1) {
        snprintf(detail, n, "cannot set up verification");
        goto out;
    }
    X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_CLIENT);
    X509_STORE_CTX_set_depth(xs, ca->depth);
    if (X509_verify_cert(xs) == 1) {
        *verified = X509_STORE_CTX_get1_chain(xs);
        if (presented != NULL && *verified != NULL)
            cache_put(ca, key, presented, *verified);
        f = TG_TLS_FAIL_NONE;
        goto out;
    }
    int v = X509_STORE_CTX_get_error(xs);
    int depth = X509_STORE_CTX_get_error_depth(xs);
    X509 *bad = X509_STORE_CTX_get_current_cert(xs);
    int n_sent = 0;
    for (int i = 0; i < sk_X509_num(sent); i++)
        if (X509_cmp(sk_X509_value(sent, i), leaf) != 0)
            n_sent++;
    f = map_x509(v, depth, n_sent);
    if (bad == NULL)
        bad = leaf;
    char when[48];
    switch (f) {
    case TG_TLS_FAIL_CERT_EXPIRED:
        tg_tls__time_str(X509_get0_notAfter(bad), when, sizeof(when));
        snprintf(detail, n, "certificate at depth %d expired on %s", depth, when);
        break;
    case TG_TLS_FAIL_CERT_NOT_YET_VALID:
        tg_tls__time_str(X509_get0_notBefore(bad), when, sizeof(when));
        snprintf(detail, n, "certificate at depth %d is not valid before %s", depth, when);
        break;
    case TG_TLS_FAIL_CERT_NO_ISSUER: {
        char *iss = tg_dn_quoted(X509_get_issuer_name(bad));
        snprintf(detail, n,
                 "the chain ends at issuer \"%s\", which the client did not send and truststore "
                 "\"%s\" does not hold",
                 iss, ca->truststore);
        free(iss);
        break;
    }
    case TG_TLS_FAIL_CERT_UNKNOWN_CA: {
        char *iss = tg_dn_quoted(X509_get_issuer_name(bad));
        snprintf(detail, n, "%s: issuer \"%s\" is not in truststore \"%s\" (%zu CAs)",
                 X509_verify_cert_error_string(v), iss, ca->truststore, ca->n_cas);
        free(iss);
        break;
    }
    default:
        snprintf(detail, n, "%s (depth %d)", X509_verify_cert_error_string(v), depth);
        break;
    }
out:
    sk_X509_free(presented);
    X509_STORE_CTX_free(xs);
    ERR_clear_error();
    return f;
}

/* The whole decision for leaf and what the client sent. On admission *keep (when not NULL) gets
 * the verified chain (leaf first, trust anchor last). */
static enum tg_tls_fail decide(struct tg_tls__cauth *ca, const struct where *wh, X509 *leaf,
                               STACK_OF(X509) * sent, char *detail, size_t n,
                               STACK_OF(X509) * *keep)
{
    char why[800] = "";
    STACK_OF(X509) *verified = NULL;
    enum tg_tls_fail f = verify_chain(ca, leaf, sent, &verified, why, sizeof(why));
    if (f == TG_TLS_FAIL_NONE && tg_tls_allow_count(ca->allow) > 0 &&
        !tg_tls_allow_match(ca->allow, leaf, NULL, 0)) {
        f = TG_TLS_FAIL_CERT_NOT_ALLOWED;
        snprintf(why, sizeof(why),
                 "neither the subject, a SAN nor the key is in allowed_subjects (%zu entries)",
                 tg_tls_allow_count(ca->allow));
    }
    if (f == TG_TLS_FAIL_NONE)
        f = check_revocation(ca, wh, verified, false, why, sizeof(why));
    if (f == TG_TLS_FAIL_NONE && keep != NULL) {
        *keep = verified;
        verified = NULL;
    }
    sk_X509_pop_free(verified, X509_free);
    /* Names are rendered only when someone reads them: a refusal's log line, or `check`. */
    if (f == TG_TLS_FAIL_NONE && wh->ssl != NULL) {
        snprintf(detail, n, "admitted");
        return f;
    }
    size_t off = put_subject(detail, n, leaf);
    if (off < n)
        snprintf(detail + off, n - off, "; %s", f == TG_TLS_FAIL_NONE ? "admitted" : why);
    return f;
}

/* SSL_CTX_set_cert_verify_callback: the whole decision. A refusal fails the handshake with the
 * alert OpenSSL's table gives the X509 error set here; the record says why for the log. */
static int verify_cb(X509_STORE_CTX *xs, void *arg)
{
    struct tg_tls__cauth *ca = arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xs);
    char detail[1024];
    const struct where wh = {ssl, false};
    STACK_OF(X509) *verified = NULL;
    enum tg_tls_fail f = decide(ca, &wh, leaf, sent, detail, sizeof(detail), &verified);
    if (f == TG_TLS_FAIL_NONE) {
        /* What SSL_get0_verified_chain() returns: this callback replaces X509_verify_cert(), so
         * OpenSSL has no chain of its own, and the certificates the client sent are not one. */
        X509_STORE_CTX_set0_verified_chain(xs, verified);
        return 1; /* nothing recorded */
    }
    struct cverify *r = rec_get(ssl, true);
    if (r != NULL) {
        r->fail = f;
        snprintf(r->detail, sizeof(r->detail), "%s", detail);
    }
    int v;
    switch (f) {
    case TG_TLS_FAIL_CERT_EXPIRED:
        v = X509_V_ERR_CERT_HAS_EXPIRED;
        break;
    case TG_TLS_FAIL_CERT_REVOKED:
        v = X509_V_ERR_CERT_REVOKED;
        break;
    case TG_TLS_FAIL_CERT_UNKNOWN_CA:
    case TG_TLS_FAIL_CERT_NO_ISSUER:
        v = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
        break;
    case TG_TLS_FAIL_CERT_BAD_SIGNATURE:
        v = X509_V_ERR_CERT_SIGNATURE_FAILURE;
        break;
    case TG_TLS_FAIL_CERT_USAGE:
        v = X509_V_ERR_INVALID_PURPOSE;
        break;
    case TG_TLS_FAIL_CERT_STATUS_UNKNOWN:
        v = X509_V_ERR_UNABLE_TO_GET_CRL;
        break;
    case TG_TLS_FAIL_CERT_NOT_ALLOWED:
        /* OpenSSL 3.0 cannot send access_denied from server-side verification (its table has
         * no X509 error for it); certificate_unknown is the closest it sends. */
        v = X509_V_ERR_SUBJECT_ISSUER_MISMATCH;
        break;
    default:
        v = X509_V_ERR_CERT_REJECTED;
        break;
    }
    X509_STORE_CTX_set_error(xs, v);
    return 0;
}

void tg_tls__cauth_apply(struct tg_tls__cauth *ca, SSL_CTX *ctx)
{
    int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
    if (ca->mode == TG_CAUTH_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, verify_cb, ca);
    /* The callback enforces the depth; OpenSSL's own limit only has to let the chain through. */
    SSL_CTX_set_verify_depth(ctx, ca->depth + 2);
    if (ca->ca_names != NULL && sk_X509_NAME_num(ca->ca_names) > 0) {
        STACK_OF(X509_NAME) *dup =
            sk_X509_NAME_deep_copy(ca->ca_names, X509_NAME_dup, X509_NAME_free);
        if (dup != NULL)
            SSL_CTX_set0_CA_list(ctx, dup);
    } else {
        SSL_CTX_set0_CA_list(ctx, NULL);
    }
    /* OpenSSL 3.0 re-decodes a stateless ticket's session (i2d then d2i, in
     * tls_construct_stateless_ticket) and with it the client's certificate, whose public-key
     * decoding is the dearest step of an mTLS handshake: one ticket, not two. */
    if (SSL_CTX_get_num_tickets(ctx) > 1)
        SSL_CTX_set_num_tickets(ctx, 1);
    /* Fetching revocation data pauses the handshake inside verification: OpenSSL 3.0 supports
     * that on a server only for handshakes run as async jobs (SSL_set_retry_verify is for
     * clients). The proxy clears the mode once the handshake is done. */
    if (ca->rev_mode != TG_REV_OFF && ca->fetch)
        SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC);
}

void tg_tls_server_abandon(SSL *ssl)
{
    struct cverify *r = rec_get(ssl, false);
    if (r == NULL)
        return;
    r->abandoned = true;
    ERR_clear_error();
    (void)SSL_do_handshake(ssl); /* resumes the paused job, which now fails at once */
    ERR_clear_error();
}

/* The issuer of x known without its chain: a CRL file's verified signer, fetched data, or the
 * truststore; whose key signed x. A new reference, or NULL. */
static X509 *known_issuer(struct tg_tls__cauth *ca, X509 *x)
{
    X509 *found = NULL;
    pthread_mutex_lock(&ca->lock);
    for (size_t i = 0; i < ca->n_crls && found == NULL; i++) {
        X509 *cand = ca->crls[i].issuer;
        if (cand != NULL &&
            X509_NAME_cmp(X509_get_subject_name(cand), X509_get_issuer_name(x)) == 0 &&
            X509_verify(x, X509_get0_pubkey(cand)) == 1) {
            found = cand;
            X509_up_ref(found);
        }
    }
    pthread_mutex_unlock(&ca->lock);
    if (found == NULL && ca->fetch)
        found = tg_tls__fetched_issuer(x);
    if (found == NULL) {
        STACK_OF(X509) *certs = X509_STORE_get1_all_certs(ca->store);
        for (int i = 0; found == NULL && i < sk_X509_num(certs); i++) {
            X509 *cand = sk_X509_value(certs, i);
            if (X509_NAME_cmp(X509_get_subject_name(cand), X509_get_issuer_name(x)) == 0 &&
                X509_verify(x, X509_get0_pubkey(cand)) == 1) {
                found = cand;
                X509_up_ref(found);
            }
        }
        sk_X509_pop_free(certs, X509_free);
    }
    ERR_clear_error();
    return found;
}

enum tg_tls_fail tg_tls_server_client_recheck(const struct tg_tls_server *ts, X509 *leaf,
                                              char *detail, size_t n)
{
    struct tg_tls__cauth *ca = ts ? ts->cauth : NULL;
    if (ca == NULL || leaf == NULL || ca->rev_mode == TG_REV_OFF)
        return TG_TLS_FAIL_NONE;
    X509 *issuer = known_issuer(ca, leaf);
    if (issuer == NULL)
        return TG_TLS_FAIL_NONE; /* nothing known about it: as when the session was made */
    STACK_OF(X509) *chain = sk_X509_new_null();
    enum tg_tls_fail f = TG_TLS_FAIL_NONE;
    if (chain != NULL && sk_X509_push(chain, leaf) > 0 && sk_X509_push(chain, issuer) > 0) {
        size_t off = put_subject(detail, n, leaf);
        const struct where wh = {NULL, false};
        char *rest = off + 2 < n ? detail + off + 2 : detail + off;
        if (off + 2 < n)
            memcpy(detail + off, "; ", 3);
        /* only the leaf: the rest of the chain is not at hand */
        f = check_revocation(ca, &wh, chain, true, rest, n - (size_t)(rest - detail));
    }
    sk_X509_free(chain);
    X509_free(issuer);
    return f == TG_TLS_FAIL_CERT_STATUS_UNKNOWN ? TG_TLS_FAIL_NONE : f;
}

STACK_OF(X509) * tg_tls_server_verified_chain(const struct tg_tls_server *ts, SSL *ssl)
{
    STACK_OF(X509) *v = SSL_get0_verified_chain(ssl);
    if (v != NULL && sk_X509_num(v) > 0)
        return X509_chain_up_ref(v);
    struct tg_tls__cauth *ca = ts ? ts->cauth : NULL;
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (ca == NULL || leaf == NULL || !SSL_session_reused(ssl))
        return NULL;
    /* A resumed session skipped verification: verify again what it kept (the leaf; the rest of
     * the chain only where the session held it), most often from the chain cache. */
    char why[400];
    STACK_OF(X509) *verified = NULL;
    if (verify_chain(ca, leaf, SSL_get_peer_cert_chain(ssl), &verified, why, sizeof(why)) !=
        TG_TLS_FAIL_NONE) {
        sk_X509_pop_free(verified, X509_free);
        return NULL;
    }
    return verified;
}

bool tg_tls_server_client_auth(const struct tg_tls_server *ts)
{
    return ts != NULL && ts->cauth != NULL;
}

enum tg_tls_fail tg_tls_server_client_check(const struct tg_tls_server *ts, X509 *leaf,
                                            STACK_OF(X509) * chain, bool may_block, char *detail,
                                            size_t n)
{
    char buf[512];
    enum tg_tls_fail f;
    if (ts == NULL || ts->cauth == NULL) {
        snprintf(buf, sizeof(buf), "the listener does not ask for client certificates");
        f = TG_TLS_FAIL_NONE;
    } else if (leaf == NULL) {
        snprintf(buf, sizeof(buf), "no certificate");
        f = ts->cauth->mode == TG_CAUTH_REQUIRE ? TG_TLS_FAIL_CERT_MISSING : TG_TLS_FAIL_NONE;
    } else {
        const struct where wh = {NULL, may_block};
        f = decide(ts->cauth, &wh, leaf, chain, buf, sizeof(buf), NULL);
    }
    if (n > 0)
        snprintf(detail, n, "%s", buf);
    return f;
}
