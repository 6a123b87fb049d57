/* Keystores as `tlsgate check` reports them: loading the ones no listener or backend names, and
 * one line per keystore saying what was loaded. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "core/core.h"
#include "tls/internal.h"

static bool referenced(const struct tg_config *cfg, size_t ki)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_tls_conf *tls = &cfg->listeners[i].tls;
        if (tls->disabled)
            continue;
        for (size_t k = 0; k < tls->n_certificates; k++)
            if (tls->certificate_idx != NULL && tls->certificate_idx[k] == ki)
                return true;
    }
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tg_backend_tls_conf *bt = &cfg->backends[i].tls;
        if (bt->enabled && bt->client_certificate != NULL && bt->client_certificate_idx == ki)
            return true;
    }
    return false;
}

static bool is_internal(const struct tg_keystore_conf *kc)
{
    return kc->name != NULL && strcmp(kc->name, "internal") == 0;
}

static int load(const struct tg_keystore_conf *kc, struct tg_tls__keystore *ks, struct tg_err *err)
{
    if (!is_internal(kc))
        return tg_tls__keystore_load(kc, ks, err);
    int rc = tg_tls__keystore_load_any(kc, ks, err);
    if (rc != 0)
        return rc;
    int t = EVP_PKEY_get_base_id(ks->key);
    if (t != EVP_PKEY_RSA && t != EVP_PKEY_EC && t != EVP_PKEY_X25519 && t != EVP_PKEY_X448) {
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"internal\" holds a %s key, which cannot receive secrets (use an "
                     "RSA or EC key)",
                     tg_tls__key_type(ks->key));
        tg_tls__keystore_close(ks);
        return -1;
    }
    return 0;
}

void tg_tls_keystores_check(const struct tg_config *cfg, struct tg_err *err)
{
    for (size_t i = 0; i < cfg->n_keystores; i++) {
        struct tg_tls__keystore ks = {0};
        if (referenced(cfg, i))
            continue; /* loaded, and reported, with its listener or backend */
        load(&cfg->keystores[i], &ks, err);
        tg_tls__keystore_close(&ks);
    }
}

void tg_tls_keystores_print(const struct tg_config *cfg, FILE *out)
{
    if (cfg->n_keystores > 0)
        fprintf(out, "\nkeystores:\n");
    for (size_t i = 0; i < cfg->n_keystores; i++) {
        const struct tg_keystore_conf *kc = &cfg->keystores[i];
        if (kc->type != NULL && strcmp(kc->type, "acme") == 0) {
            tg_acme_print(cfg, kc, out);
            continue;
        }
        struct tg_tls__keystore ks = {0};
        struct tg_err scratch; /* already reported by the load that counted */
        tg_err_init(&scratch);
        fprintf(out, "  keystore \"%s\" (%s, %s", kc->name, kc->type ? kc->type : "pem",
                kc->file        ? kc->file
                : kc->cert_file ? kc->cert_file
                                : "?");
        if (load(kc, &ks, &scratch) != 0) {
            fprintf(out, "): not loaded\n");
            tg_tls__keystore_close(&ks);
            tg_err_close(&scratch);
            continue;
        }
        if (kc->file != NULL)
            fprintf(out, ", alias %s%s%s", ks.alias ? "\"" : "", ks.alias ? ks.alias : "(none)",
                    ks.alias ? "\"" : "");
        char desc[64], when[64];
        tg_tls__key_desc(ks.key, desc, sizeof(desc));
        char *subj = tg_dn_string(X509_get_subject_name(ks.cert));
        const ASN1_TIME *na = X509_get0_notAfter(ks.cert);
        tg_tls__time_str(na, when, sizeof(when));
        fprintf(out, "): %s, subject %s, names", desc, subj);
        size_t n = 0;
        char **names = tg_tls__cert_names(ks.cert, &n);
        for (size_t k = 0; k < n; k++)
            fprintf(out, "%s %s", k ? "," : "", names[k]);
        if (n == 0)
            fprintf(out, " (none)");
        tg_tls__names_free(names, n);
        fprintf(out, ", not after %s (%d days left), chain: %d intermediate%s%s\n", when,
                tg_tls__days_left(na), sk_X509_num(ks.chain), sk_X509_num(ks.chain) == 1 ? "" : "s",
                is_internal(kc) ? "; encrypts secrets, never used for TLS" : "");
        free(subj);
        tg_tls__keystore_close(&ks);
        tg_err_close(&scratch);
    }
}
