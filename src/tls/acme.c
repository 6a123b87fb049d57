/* The ACME client (RFC 8555): for each keystore of type acme, an account (its key kept in the
 * state directory), an order, the authorizations answered by HTTP-01 (the challenge table below,
 * read by plaintext listeners), finalize with a CSR, and the chain written to the state
 * directory. Everything that talks to the ACME server runs on the libuv thread pool
 * (tg_acme_run); the main loop then reloads, so the certificate reaches listeners in a new
 * snapshot.
 *
 * The plan (what to obtain, and each name's state) sits under one mutex that handshakes and
 * requests never take. Challenge answers are published as immutable sets behind an atomic
 * pointer; a replaced set is kept until exit (a few per issuance), so readers need no lock and
 * no reference count. */
#include "tls/internal.h"
#include "tls/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "core/log.h"

#define POLL_TRIES    60   /* authorization and order polls, about a second apart */
#define BAD_NONCE_MAX 10   /* retries of a POST refused with badNonce */
#define BACKOFF_MIN   5    /* seconds after the first failure; doubled each time */
#define BACKOFF_MAX   3600 /* at most this long between attempts */
#define RECHECK       3600 /* a valid certificate is looked at again after this long */

struct job {
    char *ks, **names, *crt, *keyp;
    size_t n_names;
    time_t next_try;
    int failures;
    bool busy;
    char last_error[1024];
    time_t not_after; /* of the certificate in the state directory, 0 if none */
};

struct plan {
    int refs; /* under lock */
    char *directory, *email, *state_dir;
    char *eab_kid, *eab_key; /* eab_key: a secret, wiped when freed */
    SSL_CTX *ctx;
    int rsa_bits, renew_days, challenges[2];
    struct job *jobs;
    size_t n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct plan *cur;
static atomic_ullong failures_total;
static atomic_bool stopping;

/* ---- the plan ---- */

static void plan_unref(struct plan *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    for (size_t i = 0; i < p->n; i++) {
        struct job *j = &p->jobs[i];
        free(j->ks);
        for (size_t k = 0; k < j->n_names; k++)
            free(j->names[k]);
        free(j->names);
        free(j->crt);
        free(j->keyp);
    }
    free(p->jobs);
    free(p->directory);
    free(p->email);
    free(p->state_dir);
    free(p->eab_kid);
    if (p->eab_key != NULL)
        OPENSSL_cleanse(p->eab_key, strlen(p->eab_key));
    free(p->eab_key);
    SSL_CTX_free(p->ctx);
    free(p);
}

static bool same_names(const struct job *j, const struct tg_keystore_conf *kc)
{
    if (j->n_names != kc->n_names)
        return false;
    for (size_t i = 0; i < j->n_names; i++)
        if (strcmp(j->names[i], kc->names[i]) != 0)
            return false;
    return true;
}

int tg_acme_configure(const struct tg_config *cfg, struct tg_err *err)
{
    struct plan *p = NULL;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_keystores; i++)
        if (cfg->keystores[i].type && strcmp(cfg->keystores[i].type, "acme") == 0)
            n++;
    if (n > 0 && cfg->acme.enabled) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        X509_STORE *store = X509_STORE_new();
        if (tg_tls__trust_load(cfg, cfg->acme.truststore_idx, store, NULL, NULL, err) != 0) {
            X509_STORE_free(store);
            SSL_CTX_free(ctx);
            return -EINVAL;
        }
        SSL_CTX_set_cert_store(ctx, store);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        p = tg_xcalloc(1, sizeof(*p));
        p->refs = 1;
        p->ctx = ctx;
        p->directory = tg_xstrdup(cfg->acme.directory);
        p->email = cfg->acme.email ? tg_xstrdup(cfg->acme.email) : NULL;
        p->state_dir = tg_xstrdup(cfg->state_dir);
        if (cfg->acme.eab_kid != NULL && cfg->acme.eab_hmac_key != NULL) {
            p->eab_kid = tg_xstrdup(cfg->acme.eab_kid);
            p->eab_key = tg_xstrdup(cfg->acme.eab_hmac_key);
        }
        p->rsa_bits = cfg->acme.rsa_bits;
        p->renew_days = cfg->acme.renew_before_days;
        memcpy(p->challenges, cfg->acme.challenges, sizeof(p->challenges));
        p->jobs = tg_xcalloc(n, sizeof(*p->jobs));
        for (size_t i = 0; i < cfg->n_keystores; i++) {
            const struct tg_keystore_conf *kc = &cfg->keystores[i];
            if (!kc->type || strcmp(kc->type, "acme") != 0)
                continue;
            struct job *j = &p->jobs[p->n++];
            j->ks = tg_xstrdup(kc->name);
            j->names = tg_xcalloc(kc->n_names + 1, sizeof(char *));
            for (size_t k = 0; k < kc->n_names; k++)
                j->names[k] = tg_xstrdup(kc->names[k]);
            j->n_names = kc->n_names;
            j->crt = tg_xstrdup(kc->cert_file);
            j->keyp = tg_xstrdup(kc->key_file);
        }
    }
    pthread_mutex_lock(&lock);
    /* A keystore kept with the same names keeps its backoff and last error. */
    /* Only while the settings that decide when and where to go stay the same: a reload that
     * changes renew_before_days or the directory looks at every certificate again. */
    bool same = p != NULL && cur != NULL && cur->renew_days == p->renew_days &&
                strcmp(cur->directory, p->directory) == 0;
    for (size_t i = 0; same && i < p->n; i++)
        for (size_t k = 0; k < cur->n; k++)
            if (strcmp(cur->jobs[k].ks, p->jobs[i].ks) == 0 &&
                same_names(&cur->jobs[k],
                           &(struct tg_keystore_conf){.names = p->jobs[i].names,
                                                      .n_names = p->jobs[i].n_names})) {
                p->jobs[i].failures = cur->jobs[k].failures;
                p->jobs[i].next_try = cur->jobs[k].next_try;
                memcpy(p->jobs[i].last_error, cur->jobs[k].last_error,
                       sizeof(p->jobs[i].last_error));
            }
    struct plan *old = cur;
    cur = p;
    plan_unref(old);
    pthread_mutex_unlock(&lock);
    return 0;
}

bool tg_acme_due(void)
{
    bool due = false;
    time_t now = time(NULL);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; cur != NULL && i < cur->n; i++)
        due = due || (!cur->jobs[i].busy && cur->jobs[i].next_try <= now);
    pthread_mutex_unlock(&lock);
    return due;
}

unsigned long long tg_acme_failures(void)
{
    return atomic_load(&failures_total);
}

/* ---- one session with the ACME server ---- */

struct sess {
    struct plan *p;
    EVP_PKEY *akey;
    char *kid, *thumb;
    char nonce[256];
    struct tg_acme__doc dir;
    char why[1024];
    int retry_after;
};

/* Sets s->why from a failed answer: its problem document, else its status. */
static void fail_from(struct sess *s, const char *what, const struct tg_acme__resp *r)
{
    struct tg_acme__doc d;
    char why[200];
    if (r->retry_after > 0)
        s->retry_after = r->retry_after;
    if (tg_acme__parse(TG_ACME_PROBLEM, r->body, r->body_len, &d, why, sizeof(why)) == 0) {
        snprintf(s->why, sizeof(s->why), "%s: HTTP %d: %s: %s", what, r->status, d.problem_type,
                 d.problem_detail ? d.problem_detail : "(no detail)");
        tg_acme__doc_free(&d);
    } else {
        snprintf(s->why, sizeof(s->why), "%s: HTTP %d without a problem document", what, r->status);
    }
}

static int fresh_nonce(struct sess *s)
{
    struct tg_acme__resp r;
    if (tg_acme__http(s->p->ctx, "HEAD", s->dir.new_nonce, NULL, &r, s->why, sizeof(s->why)) != 0)
        return -1;
    snprintf(s->nonce, sizeof(s->nonce), "%s", r.nonce);
    tg_acme__resp_free(&r);
    if (s->nonce[0] == '\0') {
        snprintf(s->why, sizeof(s->why), "newNonce: no Replay-Nonce in the answer");
        return -1;
    }
    return 0;
}

/* A signed POST (payload "" = POST-as-GET); retries a badNonce refusal with the nonce it
 * carried. 0 with r filled (a 2xx), or -1 with s->why. */
static int post(struct sess *s, const char *what, const char *url, const char *payload,
                struct tg_acme__resp *r)
{
    for (int attempt = 0;; attempt++) {
        if (s->nonce[0] == '\0' && fresh_nonce(s) != 0)
            return -1;
        char *jws = tg_acme__jws(s->akey, s->kid, s->nonce, url, payload);
        s->nonce[0] = '\0';
        if (jws == NULL) {
            snprintf(s->why, sizeof(s->why), "%s: signing the request failed", what);
            return -1;
        }
        int rc = tg_acme__http(s->p->ctx, "POST", url, jws, r, s->why, sizeof(s->why));
        free(jws);
        if (rc != 0)
            return -1;
        snprintf(s->nonce, sizeof(s->nonce), "%s", r->nonce);
        if (r->status >= 200 && r->status < 300)
            return 0;
        bool bad_nonce = r->status == 400 && strstr(r->body, "urn:ietf:params:acme:error:badNonce");
        if (!bad_nonce || attempt >= BAD_NONCE_MAX) {
            fail_from(s, what, r);
            tg_acme__resp_free(r);
            return -1;
        }
        tg_log_debug("acme: %s: badNonce, retrying with a fresh nonce", what);
        tg_acme__resp_free(r);
    }
}

static int parse(struct sess *s, enum tg_acme__kind kind, const char *what,
                 const struct tg_acme__resp *r, struct tg_acme__doc *d)
{
    char why[300];
    if (tg_acme__parse(kind, r->body, r->body_len, d, why, sizeof(why)) == 0)
        return 0;
    snprintf(s->why, sizeof(s->why), "%s: malformed answer: %s", what, why);
    return -1;
}

static EVP_PKEY *read_key(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ERR_clear_error();
    return k;
}

static int write_key(const char *path, EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    int rc = tg_write_file_atomic(path, data, (size_t)n, 0600);
    OPENSSL_cleanse(data, (size_t)n);
    BIO_free(b);
    return rc;
}

static int session_open(struct sess *s)
{
    char *dir = tg_xasprintf("%s/acme", s->p->state_dir);
    char *kp = tg_xasprintf("%s/account.key", dir);
    int rc = -1;
    struct tg_acme__resp r = {0};
    if (tg_mkdir_p(dir) != 0) {
        snprintf(s->why, sizeof(s->why), "cannot create %s", dir);
        goto out;
    }
    s->akey = read_key(kp);
    if (s->akey == NULL) {
        s->akey = EVP_EC_gen("P-256");
        if (s->akey == NULL || write_key(kp, s->akey) != 0) {
            snprintf(s->why, sizeof(s->why), "cannot make the account key %s", kp);
            goto out;
        }
        tg_log_info("acme: made a new account key (%s)", kp);
    }
    s->thumb = tg_acme__thumbprint(s->akey);
    if (tg_acme__http(s->p->ctx, "GET", s->p->directory, NULL, &r, s->why, sizeof(s->why)) != 0)
        goto out;
    if (r.status != 200) {
        fail_from(s, "directory", &r);
        goto out;
    }
    if (parse(s, TG_ACME_DIRECTORY, "directory", &r, &s->dir) != 0)
        goto out;
    tg_acme__resp_free(&r);
    json_t *acct = json_pack("{s:b}", "termsOfServiceAgreed", 1);
    if (s->p->email) {
        char *mailto = tg_xasprintf("mailto:%s", s->p->email);
        json_object_set_new(acct, "contact", json_pack("[s]", mailto));
        free(mailto);
    }
    if (s->p->eab_kid != NULL) {
        json_t *eab = tg_acme__eab(s->akey, s->p->eab_kid, s->p->eab_key, s->dir.new_account);
        if (eab == NULL) {
            json_decref(acct);
            snprintf(s->why, sizeof(s->why),
                     "acme.eab.hmac_key is not base64url (as the CA gives it)");
            goto out;
        }
        json_object_set_new(acct, "externalAccountBinding", eab);
    }
    char *payload = json_dumps(acct, JSON_COMPACT);
    json_decref(acct);
    rc = post(s, "newAccount", s->dir.new_account, payload, &r);
    free(payload);
    if (rc != 0)
        goto out;
    rc = -1;
    if (r.location[0] == '\0') {
        snprintf(s->why, sizeof(s->why), "newAccount: no Location (account URL) in the answer");
        goto out;
    }
    s->kid = tg_xstrdup(r.location);
    rc = 0;
out:
    tg_acme__resp_free(&r);
    free(dir);
    free(kp);
    return rc;
}

static void session_close(struct sess *s)
{
    EVP_PKEY_free(s->akey);
    free(s->kid);
    free(s->thumb);
    tg_acme__doc_free(&s->dir);
}

/* ---- one order ---- */

static char *make_csr(const struct job *j, EVP_PKEY *key)
{
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_version(req, 0);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)j->names[0], -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    for (size_t i = 0; i < j->n_names; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ASN1_STRING_set(s, j->names[i], -1);
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        sk_GENERAL_NAME_push(gens, g);
    }
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, gens));
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    char *out = NULL;
    if (X509_REQ_sign(req, key, EVP_sha256()) > 0) {
        unsigned char *der = NULL;
        int n = i2d_X509_REQ(req, &der);
        if (n > 0)
            out = tg_acme__b64u(der, (size_t)n);
        OPENSSL_free(der);
    }
    X509_REQ_free(req);
    return out;
}

void tg_acme_stop(void)
{
    atomic_store(&stopping, true);
}

static void pause_s(struct sess *s)
{
    int secs = s->retry_after > 0 && s->retry_after < 10 ? s->retry_after : 1;
    s->retry_after = 0;
    sleep((unsigned)secs);
}

/* Answers one authorization with HTTP-01 and waits for its verdict. */
static int authorize(struct sess *s, const char *url)
{
    struct tg_acme__resp r;
    struct tg_acme__doc d;
    if (post(s, "authorization", url, "", &r) != 0)
        return -1;
    int rc = parse(s, TG_ACME_AUTHZ, "authorization", &r, &d);
    tg_acme__resp_free(&r);
    if (rc != 0)
        return -1;
    if (strcmp(d.status, "valid") == 0) {
        tg_acme__doc_free(&d);
        return 0;
    }
    rc = -1;
    char *name = tg_xstrdup(d.identifier), *curl = NULL, *token = NULL;
    bool tls = false;
    for (size_t k = 0; k < 2 && curl == NULL && s->p->challenges[k] != 0; k++) {
        tls = s->p->challenges[k] == TG_ACME_TLS_ALPN;
        for (size_t i = 0; i < d.n_chals && curl == NULL; i++)
            if (strcmp(d.chals[i].type, tls ? "tls-alpn-01" : "http-01") == 0 &&
                d.chals[i].token != NULL && strchr(d.chals[i].token, '.') == NULL) {
                curl = tg_xstrdup(d.chals[i].url);
                token = tg_xstrdup(d.chals[i].token);
            }
    }
    tg_acme__doc_free(&d);
    if (curl == NULL) {
        snprintf(s->why, sizeof(s->why),
                 "%s: the server offers none of the challenges configured (acme.challenges)", name);
        goto out;
    }
    char *keyauth = tg_xasprintf("%s.%s", token, s->thumb);
    X509 *vcert = NULL;
    EVP_PKEY *vkey = NULL;
    if (tls && tg_acme__tlsalpn_cert(name, keyauth, &vcert, &vkey) != 0) {
        free(keyauth);
        snprintf(s->why, sizeof(s->why), "%s: cannot make the tls-alpn-01 certificate", name);
        free(token);
        token = NULL;
        goto out;
    }
    pthread_mutex_lock(&lock);
    tg_acme__answers_set(tls ? name : token, tls, keyauth, vcert, vkey);
    pthread_mutex_unlock(&lock);
    X509_free(vcert);
    EVP_PKEY_free(vkey);
    free(keyauth);
    if (tls)
        tg_log_info("acme: %s: answering tls-alpn-01 on the TLS listeners", name);
    else
        tg_log_info("acme: %s: answering http-01 at /.well-known/acme-challenge/%s", name, token);
    if (post(s, "challenge", curl, "{}", &r) != 0)
        goto out;
    tg_acme__resp_free(&r);
    for (int i = 0; i < POLL_TRIES; i++) {
        pause_s(s);
        if (atomic_load(&stopping)) {
            snprintf(s->why, sizeof(s->why), "stopped while waiting for the validation");
            goto out;
        }
        if (post(s, "authorization", url, "", &r) != 0)
            goto out;
        int prc = parse(s, TG_ACME_AUTHZ, "authorization", &r, &d);
        if (r.retry_after > 0)
            s->retry_after = r.retry_after;
        tg_acme__resp_free(&r);
        if (prc != 0)
            goto out;
        if (strcmp(d.status, "valid") == 0) {
            tg_acme__doc_free(&d);
            rc = 0;
            goto out;
        }
        if (strcmp(d.status, "pending") != 0 && strcmp(d.status, "processing") != 0) {
            snprintf(s->why, sizeof(s->why), "validation of %s failed (%s): %s: %s", name, d.status,
                     d.problem_type ? d.problem_type : "no problem type",
                     d.problem_detail ? d.problem_detail : "no detail");
            tg_acme__doc_free(&d);
            goto out;
        }
        tg_acme__doc_free(&d);
    }
    snprintf(s->why, sizeof(s->why), "validation of %s: still pending after %d polls", name,
             POLL_TRIES);
out:
    if (token != NULL) {
        pthread_mutex_lock(&lock);
        tg_acme__answers_set(tls ? name : token, tls, NULL, NULL, NULL);
        pthread_mutex_unlock(&lock);
    }
    free(name);
    free(curl);
    free(token);
    return rc;
}

/* Polls the order until it is no longer pending/ready/processing; 0 with d filled if valid. */
static int order_wait(struct sess *s, const char *url, struct tg_acme__doc *d)
{
    for (int i = 0; i < POLL_TRIES; i++) {
        struct tg_acme__resp r;
        if (post(s, "order", url, "", &r) != 0)
            return -1;
        int rc = parse(s, TG_ACME_ORDER, "order", &r, d);
        if (r.retry_after > 0)
            s->retry_after = r.retry_after;
        tg_acme__resp_free(&r);
        if (rc != 0)
            return -1;
        if (strcmp(d->status, "valid") == 0 && d->certificate != NULL)
            return 0;
        if (strcmp(d->status, "invalid") == 0) {
            snprintf(s->why, sizeof(s->why), "order invalid: %s: %s",
                     d->problem_type ? d->problem_type : "no problem type",
                     d->problem_detail ? d->problem_detail : "no detail");
            tg_acme__doc_free(d);
            return -1;
        }
        tg_acme__doc_free(d);
        pause_s(s);
    }
    snprintf(s->why, sizeof(s->why), "order not valid after %d polls", POLL_TRIES);
    return -1;
}

/* Checks the downloaded chain: PEM, a leaf for key, then writes key and chain. */
static int store(struct sess *s, const struct job *j, EVP_PKEY *key, const char *pem, size_t len,
                 time_t *not_after)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    ERR_clear_error();
    if (leaf == NULL || X509_check_private_key(leaf, key) != 1) {
        snprintf(s->why, sizeof(s->why), "certificate: %s",
                 leaf ? "does not match the key we sent" : "not a PEM certificate chain");
        X509_free(leaf);
        ERR_clear_error();
        return -1;
    }
    struct tm tm;
    *not_after = ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) ? timegm(&tm) : 0;
    X509_free(leaf);
    if (write_key(j->keyp, key) != 0 || tg_write_file_atomic(j->crt, pem, len, 0600) != 0) {
        snprintf(s->why, sizeof(s->why), "cannot write %s or %s", j->keyp, j->crt);
        return -1;
    }
    return 0;
}

static int issue(struct sess *s, const struct job *j, time_t *not_after)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < j->n_names; i++)
        json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", j->names[i]));
    json_t *o = json_pack("{s:o}", "identifiers", ids);
    char *payload = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct tg_acme__resp r;
    struct tg_acme__doc d;
    int rc = post(s, "newOrder", s->dir.new_order, payload, &r);
    free(payload);
    if (rc != 0)
        return -1;
    char *order_url = tg_xstrdup(r.location);
    rc = parse(s, TG_ACME_ORDER, "newOrder", &r, &d);
    tg_acme__resp_free(&r);
    EVP_PKEY *key = NULL;
    char *csr = NULL, *finalize = NULL;
    if (rc != 0)
        goto out;
    rc = -1;
    if (order_url[0] == '\0') {
        snprintf(s->why, sizeof(s->why), "newOrder: no Location (order URL) in the answer");
        tg_acme__doc_free(&d);
        goto out;
    }
    for (size_t i = 0; i < d.n_authzs; i++)
        if (authorize(s, d.authzs[i]) != 0) {
            tg_acme__doc_free(&d);
            goto out;
        }
    finalize = tg_xstrdup(d.finalize);
    tg_acme__doc_free(&d);
    key = s->p->rsa_bits ? EVP_RSA_gen((unsigned)s->p->rsa_bits) : EVP_EC_gen("P-256");
    csr = key ? make_csr(j, key) : NULL;
    if (csr == NULL) {
        snprintf(s->why, sizeof(s->why), "cannot make the key or CSR");
        goto out;
    }
    char *fin = tg_xasprintf("{\"csr\":\"%s\"}", csr);
    rc = post(s, "finalize", finalize, fin, &r);
    free(fin);
    if (rc != 0)
        goto out;
    tg_acme__resp_free(&r);
    rc = -1;
    if (order_wait(s, order_url, &d) != 0)
        goto out;
    rc = post(s, "certificate", d.certificate, "", &r);
    tg_acme__doc_free(&d);
    if (rc != 0)
        goto out;
    rc = store(s, j, key, r.body, r.body_len, not_after);
    tg_acme__resp_free(&r);
out:
    EVP_PKEY_free(key);
    free(csr);
    free(finalize);
    free(order_url);
    return rc;
}

/* ---- the run (thread pool) ---- */

/* notAfter of the certificate at path, and whether it is one we obtained; 0 if none. */
static time_t stored_until(const char *path, time_t *not_before)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ERR_clear_error();
    time_t na = 0;
    struct tm tm;
    if (x != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        na = timegm(&tm);
    if (x != NULL && ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm))
        *not_before = timegm(&tm);
    X509_free(x);
    return na;
}

/* When the certificate should be renewed: renew_before_days before notAfter, by default 30
 * days or a third of the lifetime when that is shorter. */
static time_t renew_at(const struct plan *p, time_t nb, time_t na)
{
    time_t before = p->renew_days > 0 ? (time_t)p->renew_days * 86400 : 30 * 86400;
    if (p->renew_days <= 0 && na - nb < 90 * 86400)
        before = (na - nb) / 3;
    return na - before;
}

/* <crt>.status: the last attempt's outcome, for `tlsgate check` (another process). */
static void write_status(const struct job *j)
{
    pthread_mutex_lock(&lock);
    json_t *o = json_pack("{s:s, s:i, s:I}", "last_error", j->last_error, "failures", j->failures,
                          "next_attempt", (json_int_t)j->next_try);
    pthread_mutex_unlock(&lock);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char *path = tg_xasprintf("%s.status", j->crt);
    if (text != NULL && tg_write_file_atomic(path, text, strlen(text), 0600) != 0)
        tg_log_warn("acme: cannot write %s", path);
    free(path);
    free(text);
}

void tg_acme_print(const struct tg_config *cfg, const struct tg_keystore_conf *kc, FILE *out)
{
    fprintf(out, "  keystore \"%s\" (acme, names", kc->name);
    for (size_t i = 0; i < kc->n_names; i++)
        fprintf(out, "%s %s", i ? "," : "", kc->names[i]);
    time_t nb = 0, na = stored_until(kc->cert_file, &nb);
    char when[64];
    struct tm tm;
    if (na == 0) {
        fprintf(out, "): no certificate yet (a self-signed placeholder is served)");
    } else {
        struct plan p = {.renew_days = cfg->acme.renew_before_days};
        time_t due = renew_at(&p, nb, na);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&na, &tm));
        fprintf(out, "): valid until %s (%lld days left)", when,
                (long long)(na - time(NULL)) / 86400);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&due, &tm));
        fprintf(out, ", renewal from %s", when);
    }
    char *path = tg_xasprintf("%s.status", kc->cert_file);
    json_t *st = json_load_file(path, 0, NULL);
    free(path);
    const char *err = json_string_value(json_object_get(st, "last_error"));
    if (err != NULL && err[0] != '\0') {
        time_t next = (time_t)json_integer_value(json_object_get(st, "next_attempt"));
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&next, &tm));
        fprintf(out, "; last attempt failed (%lld in a row): %s; next attempt %s",
                (long long)json_integer_value(json_object_get(st, "failures")), err, when);
    } else if (st != NULL) {
        fprintf(out, "; last attempt succeeded");
    }
    json_decref(st);
    fprintf(out, "\n");
}

bool tg_acme_run(void)
{
    pthread_mutex_lock(&lock);
    struct plan *p = cur;
    if (p != NULL)
        p->refs++;
    pthread_mutex_unlock(&lock);
    if (p == NULL)
        return false;
    bool changed = false, opened = false, open_failed = false;
    struct sess s = {.p = p};
    for (size_t i = 0; i < p->n; i++) {
        struct job *j = &p->jobs[i];
        time_t now = time(NULL), nb = 0;
        pthread_mutex_lock(&lock);
        bool skip = j->busy || j->next_try > now || atomic_load(&stopping);
        if (!skip)
            j->busy = true;
        pthread_mutex_unlock(&lock);
        if (skip)
            continue;
        time_t na = stored_until(j->crt, &nb);
        time_t due = na ? renew_at(p, nb, na) : 0;
        if (na && due <= nb)
            tg_log_warn("acme: keystore \"%s\": acme.renew_before_days (%d) is not less than "
                        "the certificate's lifetime (%lld days): it is renewed at every check "
                        "(every %d s)",
                        j->ks, p->renew_days, (long long)((na - nb) / 86400), RECHECK);
        int rc = 0;
        time_t got = 0;
        if (due > now) {
            pthread_mutex_lock(&lock);
            j->not_after = na;
            j->next_try = TG_MIN(now + RECHECK, due);
            j->busy = false;
            pthread_mutex_unlock(&lock);
            continue;
        }
        tg_log_info("acme: keystore \"%s\": %s for %s%s", j->ks,
                    na ? "renewing the certificate" : "obtaining a certificate", j->names[0],
                    j->n_names > 1 ? " and more" : "");
        if (!opened && !open_failed) {
            opened = session_open(&s) == 0;
            open_failed = !opened;
        }
        if (opened)
            rc = issue(&s, j, &got);
        else
            rc = -1;
        pthread_mutex_lock(&lock);
        j->busy = false;
        if (rc == 0) {
            j->failures = 0;
            j->last_error[0] = '\0';
            j->not_after = got;
            j->next_try = now + RECHECK;
            changed = true;
        } else {
            int back = BACKOFF_MIN << TG_MIN(j->failures, 12);
            back = TG_MIN(back, BACKOFF_MAX);
            if (s.retry_after > back)
                back = TG_MIN(s.retry_after, 86400);
            j->failures++;
            j->next_try = time(NULL) + back;
            snprintf(j->last_error, sizeof(j->last_error), "%s", s.why);
        }
        pthread_mutex_unlock(&lock);
        write_status(j);
        if (rc == 0) {
            tg_log_info("acme: keystore \"%s\": certificate obtained for %s%s (written to %s)",
                        j->ks, j->names[0], j->n_names > 1 ? " and more" : "", j->crt);
        } else {
            atomic_fetch_add(&failures_total, 1);
            tg_log_warn("acme: keystore \"%s\": reason=acme_failed: %s; next attempt in %llds",
                        j->ks, s.why, (long long)(j->next_try - time(NULL)));
        }
    }
    session_close(&s);
    pthread_mutex_lock(&lock);
    plan_unref(p);
    pthread_mutex_unlock(&lock);
    return changed;
}

void tg_acme_shutdown(void)
{
    pthread_mutex_lock(&lock);
    plan_unref(cur);
    cur = NULL;
    tg_acme__answers_free();
    pthread_mutex_unlock(&lock);
}
