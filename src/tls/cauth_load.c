/* Client-certificate verification of a listener, its loading half: the truststore, the allow
 * list and the CRL files read into a struct tg_tls__cauth, its fingerprint (what a cached
 * verification is valid for), its description for `check`, and freeing it. The decision at
 * handshake time is clientauth.c's. */
#include "tls/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core.h"

X509_CRL *tg_tls__cauth_read_crl(const char *file, int *rc)
{
    char *data = NULL;
    size_t len = 0;
    *rc = tg_read_file(file, &data, &len);
    if (*rc != 0)
        return NULL;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    X509_CRL *crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    if (crl == NULL) {
        const unsigned char *p = (const unsigned char *)data;
        crl = d2i_X509_CRL(NULL, &p, (long)len);
    }
    BIO_free(bio);
    free(data);
    ERR_clear_error();
    return crl;
}

/* The CA of the store whose subject is the CRL's issuer and whose key signed it (a new
 * reference), or NULL; *named tells whether some CA of the store bears the issuer's name. */
static X509 *crl_signer(X509_STORE *store, X509_CRL *crl, bool *named)
{
    X509 *found = NULL;
    STACK_OF(X509) *certs = X509_STORE_get1_all_certs(store);
    *named = false;
    for (int i = 0; found == NULL && i < sk_X509_num(certs); i++) {
        X509 *ca = sk_X509_value(certs, i);
        if (X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) != 0)
            continue;
        *named = true;
        if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1) {
            found = ca;
            X509_up_ref(found);
        }
    }
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return found;
}

static int load_crls(struct tg_tls__cauth *ca, const struct tg_client_auth_conf *cc,
                     struct tg_err *err)
{
    int rc = 0;
    ca->crls = tg_xcalloc(cc->n_crl_files + 1, sizeof(*ca->crls));
    for (size_t i = 0; i < cc->n_crl_files; i++) {
        char *path = tg_xasprintf("%s/revocation/crl/%zu", cc->path, i);
        int rrc = 0;
        X509_CRL *crl = tg_tls__cauth_read_crl(cc->crl_files[i], &rrc);
        bool named = false;
        X509 *issuer = crl ? crl_signer(ca->store, crl, &named) : NULL;
        if (rrc != 0) {
            tg_err_error(err, &cc->crl_locs[i], path, "cannot read CRL %s: %s", cc->crl_files[i],
                         strerror(-rrc));
            rc = -EINVAL;
        } else if (crl == NULL) {
            tg_err_error(err, &cc->crl_locs[i], path,
                         "%s is not a CRL (expected PEM \"-----BEGIN X509 CRL-----\" or DER)",
                         cc->crl_files[i]);
            rc = -EINVAL;
        } else if (issuer == NULL && named) {
            char *iss = tg_dn_string(X509_CRL_get_issuer(crl));
            tg_err_error(err, &cc->crl_locs[i], path,
                         "CRL %s names issuer %s but is not signed by that CA of truststore "
                         "\"%s\"",
                         cc->crl_files[i], iss, cc->truststore ? cc->truststore : "?");
            free(iss);
            rc = -EINVAL;
        } else {
            if (issuer == NULL) {
                /* Issued by an intermediate (clients send those): its signature is checked
                 * against the verified chain's issuer before the CRL is used. */
                char *iss = tg_dn_string(X509_CRL_get_issuer(crl));
                tg_err_warning(err, &cc->crl_locs[i], path,
                               "CRL %s: issuer %s is not in truststore \"%s\"; it is used for "
                               "certificates whose verified chain has that issuer and its key "
                               "signed the CRL",
                               cc->crl_files[i], iss, cc->truststore ? cc->truststore : "?");
                free(iss);
            }
            ca->crls[ca->n_crls++] = (struct crl_file){tg_xstrdup(cc->crl_files[i]), crl, issuer};
            crl = NULL;
            issuer = NULL;
        }
        X509_CRL_free(crl);
        X509_free(issuer);
        free(path);
    }
    return rc;
}

int tg_tls__cauth_new(const struct tg_config *cfg, const struct tg_listener_conf *lc,
                      struct tg_tls__cauth **out, struct tg_err *err)
{
    const struct tg_client_auth_conf *cc = &lc->tls.client_auth;
    struct tg_tls__cauth *ca = tg_xcalloc(1, sizeof(*ca));
    size_t errors_before = tg_err_count(err);
    int rc = -EINVAL;

    pthread_mutex_init(&ca->lock, NULL);
    ca->mode = cc->mode;
    ca->rev_mode = cc->rev_mode;
    ca->scope_chain = cc->rev_scope_chain;
    ca->fetch = cc->rev_fetch;
    ca->send_ca_names = cc->send_ca_names;
    ca->depth = cc->verify_depth > 0 ? cc->verify_depth - 1 : 2;
    ca->truststore = tg_xstrdup(cc->truststore ? cc->truststore : "system");
    ca->store = X509_STORE_new();
    ca->allow = tg_tls_allow_new();
    ca->cache = tg_xcalloc(CHAIN_CACHE_SLOTS, sizeof(*ca->cache));
    if (ca->store == NULL)
        goto out;
    if (cc->truststore_idx < cfg->n_truststores &&
        tg_tls__trust_load(cfg, cc->truststore_idx, ca->store,
                           ca->send_ca_names ? &ca->ca_names : NULL, &ca->n_cas, err) != 0)
        goto out;
    for (size_t i = 0; i < cc->n_allowed; i++) {
        char why[512];
        if (tg_tls_allow_add(ca->allow, cc->allowed[i], why, sizeof(why)) != 0) {
            char *path = tg_xasprintf("%s/allowed_subjects/%zu", cc->path, i);
            tg_err_error(err, &cc->allowed_locs[i], path, "%s", why);
            free(path);
        }
    }
    load_crls(ca, cc, err);
    if (tg_err_count(err) > errors_before)
        goto out;
    *out = ca;
    ca = NULL;
    rc = 0;
out:
    tg_tls__cauth_free(ca);
    return rc;
}

void tg_tls__cauth_fingerprint(const struct tg_tls__cauth *ca, const struct tg_client_auth_conf *cc,
                               unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    char *head = tg_xasprintf("tlsgate client_auth v1 mode=%d depth=%d rev=%d scope=%d fetch=%d "
                              "trust=%s\n",
                              (int)ca->mode, ca->depth, (int)ca->rev_mode, (int)ca->scope_chain,
                              (int)ca->fetch, ca->truststore);
    memset(out, 0, 32);
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    EVP_DigestUpdate(md, head, strlen(head));
    /* The trust anchors themselves (a file edited under the same name changes the policy). */
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(ca->store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        if (x != NULL && X509_digest(x, EVP_sha256(), d, &dl) == 1)
            EVP_DigestUpdate(md, d, dl);
    }
    for (size_t i = 0; i < cc->n_allowed; i++) {
        EVP_DigestUpdate(md, cc->allowed[i], strlen(cc->allowed[i]));
        EVP_DigestUpdate(md, "\n", 1);
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    if (EVP_DigestFinal_ex(md, d, &n) == 1 && n >= 32)
        memcpy(out, d, 32);
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    free(head);
}

void tg_tls__cauth_free(struct tg_tls__cauth *ca)
{
    if (ca == NULL)
        return;
    for (size_t i = 0; i < CHAIN_CACHE_SLOTS && ca->cache != NULL; i++) {
        sk_X509_pop_free(ca->cache[i].verified, X509_free);
        sk_X509_pop_free(ca->cache[i].presented, X509_free);
    }
    free(ca->cache);
    for (size_t i = 0; i < ca->n_crls; i++) {
        free(ca->crls[i].file);
        X509_CRL_free(ca->crls[i].crl);
        X509_free(ca->crls[i].issuer);
    }
    free(ca->crls);
    tg_tls_allow_free(ca->allow);
    sk_X509_NAME_pop_free(ca->ca_names, X509_NAME_free);
    X509_STORE_free(ca->store);
    free(ca->truststore);
    pthread_mutex_destroy(&ca->lock);
    free(ca);
}

void tg_tls__cauth_print(const struct tg_tls__cauth *ca, FILE *out)
{
    static const char *const modes[] = {"none", "optional", "require"};
    static const char *const revs[] = {"off", "soft_fail", "hard_fail"};
    if (ca == NULL) {
        fprintf(out, "  client certificates: not requested\n");
        return;
    }
    fprintf(out,
            "  client certificates: %s; truststore \"%s\" (%zu CA%s); verify depth %d; CA names "
            "%s\n",
            modes[ca->mode], ca->truststore, ca->n_cas, ca->n_cas == 1 ? "" : "s", ca->depth + 1,
            ca->ca_names != NULL && sk_X509_NAME_num(ca->ca_names) > 0 ? "sent" : "not sent");
    fprintf(out, "  allowed subjects: %zu entr%s%s; revocation: %s", tg_tls_allow_count(ca->allow),
            tg_tls_allow_count(ca->allow) == 1 ? "y" : "ies",
            tg_tls_allow_count(ca->allow) == 0 ? " (any certificate that chains)" : "",
            revs[ca->rev_mode]);
    if (ca->rev_mode != TG_REV_OFF)
        fprintf(out, ", scope %s, %zu CRL file%s, fetch %s", ca->scope_chain ? "chain" : "leaf",
                ca->n_crls, ca->n_crls == 1 ? "" : "s", ca->fetch ? "CDP and OCSP" : "off");
    fprintf(out, "\n");
}

void tg_tls__cauth_each_crl(const struct tg_tls__cauth *ca,
                            void (*fn)(const char *file, X509_CRL *crl, void *arg), void *arg)
{
    for (size_t i = 0; ca != NULL && i < ca->n_crls; i++)
        fn(ca->crls[i].file, ca->crls[i].crl, arg);
}
