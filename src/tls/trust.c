/* Truststore loading shared by backend verification (client.c) and client-certificate
 * verification (server.c, clientauth.c): PEM bundles, PEM directories,
 * pkcs12/jks/jceks files (stores.c) and the system paths. */
#include "tls/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/core.h"

struct trust_load {
    const struct tg_truststore_conf *ts;
    X509_STORE *store;
    STACK_OF(X509_NAME) * names; /* subjects of the certificates added, or NULL if not wanted */
    struct tg_err *err;
};

static int name_sk_cmp(const X509_NAME *const *a, const X509_NAME *const *b)
{
    return X509_NAME_cmp(*a, *b);
}

/* Notes x's subject once among the CA names sent in a CertificateRequest. */
static void add_ca_name(struct trust_load *tl, X509 *x)
{
    if (tl->names == NULL)
        return;
    X509_NAME *name = X509_get_subject_name(x);
    if (name == NULL || sk_X509_NAME_find(tl->names, name) >= 0)
        return;
    X509_NAME *dup = X509_NAME_dup(name);
    if (dup != NULL && sk_X509_NAME_push(tl->names, dup) <= 0)
        X509_NAME_free(dup);
}

/* Adds every certificate of one PEM file to the store; how many, or -1 (with an error) if the
 * file cannot be read or holds damaged PEM. */
static int load_pem_certs(struct trust_load *tl, const char *file)
{
    const struct tg_truststore_conf *ts = tl->ts;
    char *data = NULL;
    size_t len = 0;
    int rc = tg_read_file(file, &data, &len);
    if (rc != 0) {
        tg_err_error(tl->err, &ts->loc, ts->path, "truststore \"%s\": cannot read %s: %s", ts->name,
                     file, strerror(-rc));
        return -1;
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    ERR_clear_error();
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    int n = 0;
    if (infos == NULL) {
        tg_err_error(tl->err, &ts->loc, ts->path,
                     "truststore \"%s\": %s is damaged or not PEM (expected \"-----BEGIN "
                     "CERTIFICATE-----\" blocks)",
                     ts->name, file);
        n = -1;
    }
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509 != NULL && X509_STORE_add_cert(tl->store, xi->x509) == 1) {
            add_ca_name(tl, xi->x509);
            n++;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    free(data);
    ERR_clear_error();
    return n;
}

static bool has_cert_ext(const char *name)
{
    size_t l = strlen(name);
    return l > 4 && (tg_strcaseeq(name + l - 4, ".pem") || tg_strcaseeq(name + l - 4, ".crt"));
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.pem and *.crt of a directory, in name order so messages are stable. */
static int load_pem_dir(struct trust_load *tl)
{
    const struct tg_truststore_conf *ts = tl->ts;
    DIR *d = opendir(ts->file);
    if (d == NULL) {
        tg_err_error(tl->err, &ts->loc, ts->path, "truststore \"%s\": cannot read directory %s: %s",
                     ts->name, ts->file, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !has_cert_ext(de->d_name))
            continue;
        names = tg_xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = tg_xasprintf("%s/%s", ts->file, de->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), name_cmp);
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        int k = load_pem_certs(tl, names[i]);
        if (k < 0)
            total = -1;
        else if (total >= 0)
            total += k;
        free(names[i]);
    }
    free(names);
    return total;
}

static int load_pem(struct trust_load *tl)
{
    const struct tg_truststore_conf *ts = tl->ts;
    struct stat st;
    int n = ts->file != NULL && stat(ts->file, &st) == 0 && S_ISDIR(st.st_mode)
                ? load_pem_dir(tl)
                : load_pem_certs(tl, ts->file ? ts->file : "");
    if (n < 0)
        return -EINVAL;
    if (n == 0) {
        tg_err_error(tl->err, &ts->loc, ts->path, "truststore \"%s\": no certificate found in %s",
                     ts->name, ts->file ? ts->file : "");
        return -EINVAL;
    }
    return n;
}

/* The trusted entries of a pkcs12/jks/jceks file (tg_tls__store_trusted). */
static int load_store(struct trust_load *tl)
{
    STACK_OF(X509) *certs = NULL;
    int n = 0;
    if (tg_tls__store_trusted(tl->ts, &certs, tl->err) != 0)
        return -EINVAL;
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        if (X509_STORE_add_cert(tl->store, x) == 1) {
            add_ca_name(tl, x);
            n++;
        }
    }
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return n;
}

int tg_tls__trust_load(const struct tg_config *cfg, size_t truststore_idx, X509_STORE *store,
                       STACK_OF(X509_NAME) * *ca_names_out, size_t *n_certs, struct tg_err *err)
{
    const struct tg_truststore_conf *ts =
        truststore_idx < cfg->n_truststores ? &cfg->truststores[truststore_idx] : NULL;
    struct trust_load tl = {.ts = ts, .store = store, .err = err};
    int rc = -EINVAL;

    if (n_certs != NULL)
        *n_certs = 0;
    if (ca_names_out != NULL) {
        *ca_names_out = NULL;
        tl.names = sk_X509_NAME_new(name_sk_cmp);
    }
    if (ts == NULL || ts->type == NULL || strcmp(ts->type, "system") == 0) {
        if (X509_STORE_set_default_paths(store) != 1) {
            char why[256];
            tg_tls__openssl_reason(why, sizeof(why));
            tg_err_error(err, ts ? &ts->loc : NULL, ts ? ts->path : NULL,
                         "cannot use OpenSSL's default trust paths: %s", why);
            goto out;
        }
        /* The system roots are too many to name in a CertificateRequest. */
        rc = 0;
        goto out;
    }
    bool pem = strcmp(ts->type, "pem") == 0;
    if (!pem && strcmp(ts->type, "pkcs12") != 0 && strcmp(ts->type, "jks") != 0 &&
        strcmp(ts->type, "jceks") != 0) {
        tg_err_error(err, &ts->loc, ts->path, "truststore \"%s\": type \"%s\" cannot be loaded",
                     ts->name, ts->type);
        goto out;
    }
    int n = pem ? load_pem(&tl) : load_store(&tl);
    if (n < 0)
        goto out;
    if (n_certs != NULL)
        *n_certs = (size_t)n;
    /* An operator who puts an intermediate or a peer's own certificate in a truststore means to
     * trust it, as Java truststores do. */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    rc = 0;
out:
    if (rc == 0 && ca_names_out != NULL && tl.names != NULL) {
        *ca_names_out = tl.names;
        tl.names = NULL;
    }
    sk_X509_NAME_pop_free(tl.names, X509_NAME_free);
    ERR_clear_error();
    return rc;
}
