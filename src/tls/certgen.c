/* Development certificates: CA, server and client certificates with proper extensions, PEM
 * output, and the self-signed default certificate of the embedded config. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "tls/internal.h"

/* Default validity of leaf certificates: scanners (testssl.sh) flag more than 398 days, and so
 * do Apple clients for certificates from public CAs; 397 keeps clear of both. */
#define LEAF_DAYS 397
#define CA_DAYS   3650
/* The default certificate is replaced when loaded with fewer days than this left: the threshold
 * of the expiry warning for configured keystores (tls/keys.c), so the default never gets one. */
#define DEFAULT_RENEW_DAYS 30

static EVP_PKEY *make_key(int rsa_bits)
{
    if (rsa_bits == 0)
        return EVP_EC_gen("P-256");
    return EVP_RSA_gen((unsigned)rsa_bits);
}

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

static int add_sans(X509 *cert, const char *const *names, size_t n)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ip[16];
        int len = 0;
        if (inet_pton(AF_INET, names[i], ip) == 1)
            len = 4;
        else if (inet_pton(AF_INET6, names[i], ip) == 1)
            len = 16;
        GENERAL_NAME *g = GENERAL_NAME_new();
        if (len > 0) {
            ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
            ASN1_OCTET_STRING_set(os, ip, len);
            GENERAL_NAME_set0_value(g, GEN_IPADD, os);
        } else {
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            ASN1_STRING_set(s, names[i], (int)strlen(names[i]));
            GENERAL_NAME_set0_value(g, GEN_DNS, s);
        }
        sk_GENERAL_NAME_push(gens, g);
    }
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1)
        rc = 0;
    GENERAL_NAMES_free(gens);
    return rc;
}

static bool valid_name(const char *s)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, s, ip) == 1 || inet_pton(AF_INET6, s, ip) == 1)
        return true;
    if (*s == '\0' || strlen(s) > 253)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == '*' || *c == '_'))
            return false;
    return true;
}

int tg_cert_make(const struct tg_cert_req *req, EVP_PKEY **key_out, X509 **cert_out,
                 struct tg_err *err)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    X509_NAME *subj = NULL;
    BIGNUM *serial = NULL;
    int rc = -EINVAL;
    const char *what = NULL;

    if (req->rsa_bits != 0 && (req->rsa_bits < 2048 || req->rsa_bits > 8192)) {
        tg_err_error(err, NULL, NULL, "RSA key size %d is out of range (2048 to 8192)",
                     req->rsa_bits);
        goto out;
    }
    if (req->days < 0 || req->days > 36500) {
        tg_err_error(err, NULL, NULL, "validity of %d days is out of range (1 to 36500)",
                     req->days);
        goto out;
    }
    if ((req->issuer_key == NULL) != (req->issuer_cert == NULL)) {
        tg_err_error(err, NULL, NULL, "an issuer needs both its certificate and its key");
        goto out;
    }
    if (req->kind == TG_CERT_SERVER && req->n_names == 0) {
        tg_err_error(err, NULL, NULL, "a server certificate needs at least one name");
        goto out;
    }
    for (size_t i = 0; i < req->n_names; i++)
        if (!valid_name(req->names[i])) {
            tg_err_error(err, NULL, NULL, "\"%s\" is neither a DNS name nor an IP address",
                         req->names[i]);
            goto out;
        }
    const char *subject = req->subject;
    char *fallback = NULL;
    if (subject == NULL && req->kind == TG_CERT_CA)
        subject = "CN=tlsgate dev CA";
    if (subject == NULL && req->kind == TG_CERT_SERVER) {
        fallback = tg_xasprintf("CN=%s", req->names[0]);
        subject = fallback;
    }
    if (subject == NULL) {
        tg_err_error(err, NULL, NULL, "a client certificate needs a subject (\"CN=...,O=...\")");
        goto out;
    }
    subj = tg_dn_parse(subject, err, NULL);
    free(fallback);
    if (subj == NULL)
        goto out;

    what = "generating the key";
    key = make_key(req->rsa_bits);
    if (key == NULL)
        goto fail;
    what = "building the certificate";
    cert = X509_new();
    serial = BN_new();
    /* 127 random bits keep the serial positive and unique in practice (RFC 5280 4.1.2.2). */
    if (cert == NULL || serial == NULL ||
        BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        X509_set_version(cert, X509_VERSION_3) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL)
        goto fail;
    int days = req->days ? req->days : (req->kind == TG_CERT_CA ? CA_DAYS : LEAF_DAYS);
    /* Back-dated an hour so clocks a little behind still accept it; notAfter moves back with it
     * and both come from one reading of the clock, so the validity is exactly `days` (Apple's
     * and CA/B's limits count from notBefore). */
    time_t now = time(NULL);
    if (X509_time_adj_ex(X509_getm_notBefore(cert), 0, -3600, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), days, -3600, &now) == NULL ||
        X509_set_subject_name(cert, subj) != 1 ||
        X509_set_issuer_name(cert, req->issuer_cert ? X509_get_subject_name(req->issuer_cert)
                                                    : subj) != 1 ||
        X509_set_pubkey(cert, key) != 1)
        goto fail;

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, req->issuer_cert ? req->issuer_cert : cert, cert, NULL, NULL, 0);
    bool rsa = req->rsa_bits != 0;
    what = "adding extensions";
    switch (req->kind) {
    case TG_CERT_CA:
        if (add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
            add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") != 0)
            goto fail;
        break;
    case TG_CERT_SERVER:
        if (add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            add_ext(cert, &ctx, NID_key_usage,
                    rsa ? "critical,digitalSignature,keyEncipherment"
                        : "critical,digitalSignature") != 0 ||
            add_ext(cert, &ctx, NID_ext_key_usage, "serverAuth") != 0 ||
            add_sans(cert, req->names, req->n_names) != 0)
            goto fail;
        break;
    case TG_CERT_CLIENT:
        if (add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature") != 0 ||
            add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth") != 0 ||
            (req->n_names > 0 && add_sans(cert, req->names, req->n_names) != 0))
            goto fail;
        break;
    }
    if (add_ext(cert, &ctx, NID_subject_key_identifier, "hash") != 0)
        goto fail;
    /* AKI needs the issuer's SKI, so it is computed after SKI (self-signed: our own). */
    X509V3_set_ctx(&ctx, req->issuer_cert ? req->issuer_cert : cert, cert, NULL, NULL, 0);
    if (add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    what = "signing the certificate";
    if (X509_sign(cert, req->issuer_key ? req->issuer_key : key, EVP_sha256()) <= 0)
        goto fail;
    *key_out = key;
    *cert_out = cert;
    key = NULL;
    cert = NULL;
    rc = 0;
    goto out;
fail : {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    tg_err_error(err, NULL, NULL, "OpenSSL failed while %s: %s", what ? what : "starting",
                 r ? r : "unknown reason");
}
out:
    ERR_clear_error();
    BN_free(serial);
    X509_NAME_free(subj);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

static int write_bio(const char *path, BIO *bio, unsigned mode, const char *what,
                     struct tg_err *err)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    int rc = tg_write_file_atomic(path, data, len > 0 ? (size_t)len : 0, mode);
    if (rc != 0)
        tg_err_error(err, NULL, NULL, "cannot write %s %s: %s", what, path, strerror(-rc));
    return rc;
}

int tg_cert_write_pem(const char *cert_path, X509 *cert, X509 *issuer, const char *key_path,
                      EVP_PKEY *key, struct tg_err *err)
{
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    int rc = -ENOMEM;
    if (cb == NULL || kb == NULL || PEM_write_bio_X509(cb, cert) != 1 ||
        (issuer != NULL && PEM_write_bio_X509(cb, issuer) != 1) ||
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1) {
        tg_err_error(err, NULL, NULL, "cannot encode the certificate or key as PEM");
        goto out;
    }
    rc = write_bio(key_path, kb, 0600, "key file", err);
    if (rc == 0)
        rc = write_bio(cert_path, cb, 0644, "certificate file", err);
out:
    ERR_clear_error();
    if (kb != NULL) {
        /* The key's PEM text should not linger in freed memory. */
        char *data = NULL;
        long len = BIO_get_mem_data(kb, &data);
        if (data != NULL && len > 0)
            OPENSSL_cleanse(data, (size_t)len);
    }
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

/* The default key is never encrypted; without this callback OpenSSL would prompt on the terminal
 * for a passphrase if someone put an encrypted one there. */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static FILE *open_existing(const char *path, int *rc, struct tg_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *rc = -errno;
        tg_err_error(err, NULL, NULL, "cannot read %s: %s", path, strerror(errno));
    }
    return f;
}

/* Decides whether the default certificate and key in place can be kept, in info->found. A file
 * that exists but cannot be opened (permissions) is an error, not a reason to overwrite it. */
static int inspect_default(const char *crt, const char *keyp, struct tg_cert_default_info *info,
                           struct tg_err *err)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    FILE *f = NULL;
    int rc = 0;

    info->found = TG_CERT_DEFAULT_MISSING;
    if (access(crt, F_OK) != 0 || access(keyp, F_OK) != 0)
        goto out;
    if ((f = open_existing(crt, &rc, err)) == NULL)
        goto out;
    cert = PEM_read_X509(f, NULL, no_passphrase_cb, NULL);
    fclose(f);
    if ((f = open_existing(keyp, &rc, err)) == NULL)
        goto out;
    key = PEM_read_PrivateKey(f, NULL, no_passphrase_cb, NULL);
    fclose(f);

    info->found = TG_CERT_DEFAULT_UNUSABLE;
    if (cert == NULL || key == NULL || X509_check_private_key(cert, key) != 1)
        goto out;
    const ASN1_TIME *na = X509_get0_notAfter(cert);
    int after = X509_cmp_current_time(na),
        before = X509_cmp_current_time(X509_get0_notBefore(cert));
    if (after == 0 || before == 0) /* malformed times */
        goto out;
    info->days_left = tg_tls__days_left(na);
    if (before > 0)
        info->found = TG_CERT_DEFAULT_NOT_YET_VALID;
    else if (after < 0)
        info->found = TG_CERT_DEFAULT_EXPIRED;
    else if (info->days_left < DEFAULT_RENEW_DAYS)
        info->found = TG_CERT_DEFAULT_EXPIRING;
    else
        info->found = TG_CERT_DEFAULT_OK;
    tg_tls__time_str(na, info->not_after, sizeof(info->not_after));
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}

int tg_cert_ensure_default(const char *state_dir, struct tg_cert_default_info *info,
                           struct tg_err *err)
{
    return tg_cert_ensure_named(state_dir, "default", info, err);
}

int tg_cert_ensure_named(const char *state_dir, const char *base, struct tg_cert_default_info *info,
                         struct tg_err *err)
{
    char *crt = tg_xasprintf("%s/%s.crt", state_dir, base);
    char *keyp = tg_xasprintf("%s/%s.key", state_dir, base);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct tg_cert_default_info scratch;
    if (info == NULL)
        info = &scratch;
    memset(info, 0, sizeof(*info));
    int rc = tg_mkdir_p(state_dir);
    if (rc != 0) {
        tg_err_error(err, NULL, NULL, "cannot create state directory %s: %s", state_dir,
                     strerror(-rc));
        goto out;
    }
    rc = inspect_default(crt, keyp, info, err);
    if (rc != 0 || info->found == TG_CERT_DEFAULT_OK)
        goto out;
    /* A fresh key as well as a fresh certificate: nothing is gained by keeping the old key, and
     * a default.key that did not parse or match could not be kept anyway. */
    static const char *const names[] = {"localhost", "127.0.0.1", "::1"};
    struct tg_cert_req req = {
        .kind = TG_CERT_SERVER,
        .subject = "CN=localhost",
        .names = names,
        .n_names = TG_ARRAY_SIZE(names),
        .days = LEAF_DAYS,
    };
    rc = tg_cert_make(&req, &key, &cert, err);
    if (rc == 0)
        rc = tg_cert_write_pem(crt, cert, NULL, keyp, key, err);
    if (rc == 0)
        tg_tls__time_str(X509_get0_notAfter(cert), info->not_after, sizeof(info->not_after));
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    free(crt);
    free(keyp);
    return rc;
}
