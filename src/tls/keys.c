/* Keystore loading and checking (PEM chain, encrypted keys, key/cert match, validity) and the
 * small naming helpers the rest of the tls module shares. */
#include "tls/internal.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "core/log.h"

const char *tg_tls__version_name(int version)
{
    /* Config names every version it accepts; clients may also offer SSLv3. */
    return version == SSL3_VERSION ? "SSLv3" : tg_tls_version_name(version);
}

static const struct tg_tls__group groups[] = {
    {0x001d, NID_X25519, "X25519"},
    {0x0017, NID_X9_62_prime256v1, "P-256"},
    {0x001e, NID_X448, "X448"},
    {0x0019, NID_secp521r1, "P-521"},
    {0x0018, NID_secp384r1, "P-384"},
    {0x0100, NID_ffdhe2048, "ffdhe2048"},
    {0x0101, NID_ffdhe3072, "ffdhe3072"},
    {0x0102, NID_ffdhe4096, "ffdhe4096"},
    {0x0103, NID_ffdhe6144, "ffdhe6144"},
    {0x0104, NID_ffdhe8192, "ffdhe8192"},
    {0x001a, NID_brainpoolP256r1, "brainpoolP256r1"},
    {0x001b, NID_brainpoolP384r1, "brainpoolP384r1"},
    {0x001c, NID_brainpoolP512r1, "brainpoolP512r1"},
};

/* OpenSSL 3.0's built-in server group list (ssl/t1_lib.c supported_groups_default), in its order:
 * there is no public getter, and `check` must show what is really enabled when curves is unset. */
static const uint16_t default_groups[] = {0x001d, 0x0017, 0x001e, 0x0019, 0x0018,
                                          0x0100, 0x0101, 0x0102, 0x0103, 0x0104};

const struct tg_tls__group *tg_tls__group_by_id(uint16_t id)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(groups); i++)
        if (groups[i].id == id)
            return &groups[i];
    return NULL;
}

const struct tg_tls__group *tg_tls__group_by_name(const char *name)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(groups); i++)
        if (tg_strcaseeq(groups[i].name, name))
            return &groups[i];
    static const struct {
        const char *alias;
        uint16_t id;
    } aliases[] = {
        {"prime256v1", 0x17}, {"secp256r1", 0x17}, {"secp384r1", 0x18},
        {"secp521r1", 0x19},  {"x25519", 0x1d},    {"x448", 0x1e},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(aliases); i++)
        if (tg_strcaseeq(aliases[i].alias, name))
            return tg_tls__group_by_id(aliases[i].id);
    return NULL;
}

size_t tg_tls__groups_parse(const char *list, uint16_t *ids, size_t max)
{
    size_t n = 0;
    if (list == NULL) {
        for (size_t i = 0; i < TG_ARRAY_SIZE(default_groups) && n < max; i++)
            ids[n++] = default_groups[i];
        return n;
    }
    const char *p = list;
    while (*p != '\0' && n < max) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *name = tg_xstrndup(p, len);
        const struct tg_tls__group *g = tg_tls__group_by_name(name);
        free(name);
        if (g != NULL)
            ids[n++] = g->id;
        p += len;
        if (*p == ':')
            p++;
    }
    return n;
}

const char *tg_tls__key_type(const EVP_PKEY *key)
{
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
        return "RSA";
    case EVP_PKEY_RSA_PSS:
        return "RSA-PSS";
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_ED448:
        return "Ed448";
    default:
        return "unknown";
    }
}

void tg_tls__key_desc(const EVP_PKEY *key, char *buf, size_t len)
{
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        char curve[64] = "";
        size_t clen = 0;
        const char *nist = NULL;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                           &clen) == 1)
            nist = EC_curve_nid2nist(OBJ_sn2nid(curve));
        snprintf(buf, len, "ECDSA %s", nist ? nist : curve);
        return;
    }
    snprintf(buf, len, "%s %d", tg_tls__key_type(key), EVP_PKEY_get_bits(key));
}

void tg_tls__time_str(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int tg_tls__days_left(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
        return 0;
    return days;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **tg_tls__cert_names(X509 *cert, size_t *n)
{
    char **v = NULL;
    size_t cnt = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int ngens = gens ? sk_GENERAL_NAME_num(gens) : 0;
    v = tg_xcalloc((size_t)ngens + 1, sizeof(*v));
    for (int i = 0; i < ngens; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            char *name =
                tg_xstrndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
            v[cnt++] = name;
        } else if (g->type == GEN_IPADD) {
            char text[INET6_ADDRSTRLEN] = "";
            const ASN1_OCTET_STRING *ip = g->d.iPAddress;
            int af = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
            if ((ASN1_STRING_length(ip) == 4 || ASN1_STRING_length(ip) == 16) &&
                inet_ntop(af, ASN1_STRING_get0_data(ip), text, sizeof(text)) != NULL)
                v[cnt++] = tg_xstrdup(text);
        }
    }
    GENERAL_NAMES_free(gens);
    if (cnt == 0) {
        X509_NAME *subj = X509_get_subject_name(cert);
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        unsigned char *utf8 = NULL;
        int len = idx >= 0 ? ASN1_STRING_to_UTF8(
                                 &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)))
                           : -1;
        if (len >= 0) {
            char *name = tg_xstrndup((const char *)utf8, (size_t)len);
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
            v[cnt++] = name;
        }
        OPENSSL_free(utf8);
    }
    qsort(v, cnt, sizeof(*v), name_cmp);
    size_t out = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (out > 0 && strcmp(v[out - 1], v[i]) == 0) {
            free(v[i]);
            continue;
        }
        v[out++] = v[i];
    }
    *n = out;
    return v;
}

void tg_tls__names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

bool tg_tls__name_match(const char *pattern, const char *host, bool allow_wildcard)
{
    if (tg_strcaseeq(pattern, host))
        return true;
    if (!allow_wildcard || pattern[0] != '*' || pattern[1] != '.')
        return false;
    /* "*.example.com" stands for exactly one non-empty label before ".example.com". */
    const char *dot = strchr(host, '.');
    return dot != NULL && dot != host && tg_strcaseeq(pattern + 1, dot);
}

/* ---- keystore loading ---- */

struct pw_ctx {
    const char *password;
    bool asked;
};

/* Hands the configured key_password to OpenSSL; never copies it anywhere else. */
static int pw_cb(char *buf, int size, int rwflag, void *u)
{
    struct pw_ctx *pw = u;
    pw->asked = true;
    if (pw->password == NULL)
        return -1;
    size_t len = strlen(pw->password);
    if (len > (size_t)size)
        return -1;
    memcpy(buf, pw->password, len);
    return (int)len;
}

/* Reads a file into a memory BIO so a read failure can be reported with its errno. */
static BIO *open_pem(const struct tg_keystore_conf *kc, const char *what, const char *file,
                     char **data, size_t *data_len, struct tg_err *err)
{
    size_t len = 0;
    int rc = tg_read_file(file, data, &len);
    *data_len = len;
    if (rc != 0) {
        tg_err_error(err, &kc->loc, kc->path, "keystore \"%s\": cannot read %s file %s: %s",
                     kc->name, what, file, strerror(-rc));
        return NULL;
    }
    return BIO_new_mem_buf(*data, (int)len);
}

static int load_chain(const struct tg_keystore_conf *kc, struct tg_tls__keystore *ks,
                      struct tg_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = -EINVAL;
    BIO *bio = open_pem(kc, "certificate", kc->cert_file, &data, &len, err);
    if (bio == NULL)
        goto out;
    ERR_clear_error();
    ks->cert = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    if (ks->cert == NULL) {
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"%s\": no PEM certificate found in %s (expected \"-----BEGIN "
                     "CERTIFICATE-----\")",
                     kc->name, kc->cert_file);
        goto out;
    }
    ks->chain = sk_X509_new_null();
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (ca == NULL)
            break;
        sk_X509_push(ks->chain, ca);
    }
    /* The loop ends at end of data (no start line) or at a damaged certificate. */
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"%s\": certificate %d in %s is damaged or not a certificate",
                     kc->name, sk_X509_num(ks->chain) + 2, kc->cert_file);
        goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(bio);
    free(data);
    return rc;
}

static int load_key(const struct tg_keystore_conf *kc, struct tg_tls__keystore *ks,
                    struct tg_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = -EINVAL;
    struct pw_ctx pw = {.password = kc->key_password, .asked = false};
    BIO *bio = open_pem(kc, "key", kc->key_file, &data, &len, err);
    if (bio == NULL)
        goto out;
    ERR_clear_error();
    ks->key = PEM_read_bio_PrivateKey(bio, NULL, pw_cb, &pw);
    if (ks->key == NULL) {
        if (pw.asked && kc->key_password == NULL)
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": the key in %s is encrypted: set key_password", kc->name,
                         kc->key_file);
        else if (pw.asked)
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": cannot decrypt the key in %s: wrong password or the "
                         "key is encrypted: set key_password",
                         kc->name, kc->key_file);
        else
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": no PEM private key found in %s (expected \"-----BEGIN "
                         "PRIVATE KEY-----\" or similar)",
                         kc->name, kc->key_file);
        goto out;
    }
    if (kc->key_password != NULL && !pw.asked)
        tg_err_warning(err, &kc->loc, kc->path,
                       "keystore \"%s\": key_password is set but the key in %s is not encrypted",
                       kc->name, kc->key_file);
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(bio);
    if (data != NULL)
        OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

/* Where a keystore's certificate came from, for messages: "in web.crt" or "of entry \"a\" in
 * web.p12". */
static void cert_where(const struct tg_keystore_conf *kc, const struct tg_tls__keystore *ks,
                       char *buf, size_t len)
{
    if (kc->file == NULL)
        snprintf(buf, len, "in %s", kc->cert_file ? kc->cert_file : "?");
    else if (ks->alias != NULL)
        snprintf(buf, len, "of entry \"%s\" in %s", ks->alias, kc->file);
    else
        snprintf(buf, len, "in %s", kc->file);
}

static int check_validity(const struct tg_keystore_conf *kc, const struct tg_tls__keystore *ks,
                          struct tg_err *err)
{
    char when[64], where[1200];
    X509 *cert = ks->cert;
    const ASN1_TIME *nb = X509_get0_notBefore(cert), *na = X509_get0_notAfter(cert);
    cert_where(kc, ks, where, sizeof(where));
    if (X509_cmp_current_time(nb) > 0) {
        tg_tls__time_str(nb, when, sizeof(when));
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"%s\": certificate %s is not valid yet (not before %s)", kc->name,
                     where, when);
        return -EINVAL;
    }
    tg_tls__time_str(na, when, sizeof(when));
    if (X509_cmp_current_time(na) < 0) {
        tg_err_error(err, &kc->loc, kc->path, "keystore \"%s\": certificate %s expired on %s",
                     kc->name, where, when);
        return -EINVAL;
    }
    int days = tg_tls__days_left(na);
    if (days < 30)
        tg_err_warning(err, &kc->loc, kc->path,
                       "keystore \"%s\": certificate %s expires in %d day(s), on %s", kc->name,
                       where, days, when);
    return 0;
}

/* Keys TLS cannot use, and key usage that forbids the handshake's signature. */
static int check_tls_use(const struct tg_keystore_conf *kc, const struct tg_tls__keystore *ks,
                         struct tg_err *err)
{
    char where[1200];
    cert_where(kc, ks, where, sizeof(where));
    int type = EVP_PKEY_get_base_id(ks->key);
    if (type == EVP_PKEY_DSA) {
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"%s\": the key %s is a DSA key, which TLS 1.3 and current "
                     "clients do not accept; make an RSA or EC key (keytool -keyalg RSA or EC)",
                     kc->name, where);
        return -EINVAL;
    }
    uint32_t ku = X509_get_key_usage(ks->cert);
    if (ku == UINT32_MAX || (ku & KU_DIGITAL_SIGNATURE))
        return 0;
    if (type == EVP_PKEY_RSA && (ku & KU_KEY_ENCIPHERMENT)) {
        tg_err_warning(err, &kc->loc, kc->path,
                       "keystore \"%s\": the certificate %s has key usage keyEncipherment but "
                       "not digitalSignature: only TLS 1.2 RSA key exchange can use it (no TLS "
                       "1.3, no ECDHE)",
                       kc->name, where);
        return 0;
    }
    tg_err_error(err, &kc->loc, kc->path,
                 "keystore \"%s\": the certificate %s has a key usage without digitalSignature, "
                 "which forbids its use in a TLS handshake",
                 kc->name, where);
    return -EINVAL;
}

/* Files holding private keys should be for the gateway's eyes only. */
static void check_mode(const struct tg_keystore_conf *kc, const char *file, struct tg_err *err)
{
    struct stat st;
    if (file == NULL || stat(file, &st) != 0 || !(st.st_mode & (S_IRGRP | S_IROTH)))
        return;
    tg_err_warning(err, &kc->loc, kc->path,
                   "keystore \"%s\": %s holds a private key and is readable by %s (mode %04o); "
                   "chmod 600 it",
                   kc->name, file,
                   (st.st_mode & S_IRGRP) && (st.st_mode & S_IROTH) ? "group and others"
                   : (st.st_mode & S_IRGRP)                         ? "its group"
                                                                    : "others",
                   (unsigned)(st.st_mode & 07777));
}

static const struct tg_tls__store_entry *find_alias(const struct tg_tls__store *st,
                                                    const char *alias, size_t *idx)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i].alias != NULL && tg_strcaseeq(st->v[i].alias, alias)) {
            *idx = i;
            return &st->v[i];
        }
    return NULL;
}

/* One key entry of a pkcs12/jks/jceks file: by alias, or the only one. */
static int load_store(const struct tg_keystore_conf *kc, struct tg_tls__keystore *ks,
                      struct tg_err *err)
{
    struct tg_tls__store st = {0};
    char why[512], names[1024];
    size_t idx = 0;
    int rc = tg_tls__store_open(kc->type, kc->file, kc->password, &st, why, sizeof(why));
    if (rc != 0) {
        tg_err_error(err, &kc->loc, kc->path, "keystore \"%s\": %s: %s", kc->name, kc->file, why);
        goto out;
    }
    rc = -EINVAL;
    if (tg_tls__store_differs(kc->type, &st, why, sizeof(why)))
        tg_err_warning(err, &kc->loc, kc->path, "keystore \"%s\": %s: %s", kc->name, kc->file, why);
    tg_tls__store_aliases(&st, names, sizeof(names));
    if (kc->alias != NULL) {
        const struct tg_tls__store_entry *e = find_alias(&st, kc->alias, &idx);
        if (e == NULL) {
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": no entry \"%s\" in %s (entries: %s)", kc->name,
                         kc->alias, kc->file, names);
            goto out;
        }
        if (!e->is_key) {
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": entry \"%s\" in %s is a trusted certificate, not a "
                         "key entry (entries: %s)",
                         kc->name, kc->alias, kc->file, names);
            goto out;
        }
    } else {
        size_t n_keys = 0;
        for (size_t i = 0; i < st.n; i++)
            if (st.v[i].is_key && n_keys++ == 0)
                idx = i;
        if (n_keys == 0) {
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": %s holds no private-key entry (entries: %s)", kc->name,
                         kc->file, names);
            goto out;
        }
        if (n_keys > 1) {
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": %s holds %zu key entries (%s): set \"alias\" to "
                         "choose one",
                         kc->name, kc->file, n_keys, names);
            goto out;
        }
    }
    const char *pw = kc->key_password ? kc->key_password : kc->password;
    if (tg_tls__store_key(&st, idx, pw, &ks->key, why, sizeof(why)) != 0) {
        tg_err_error(err, &kc->loc, kc->path, "keystore \"%s\": %s: %s%s", kc->name, kc->file, why,
                     kc->key_password == NULL && strstr(why, "wrong key password") != NULL
                         ? " (the store password was tried; set key_password if the key has "
                           "its own)"
                         : "");
        goto out;
    }
    ks->cert = st.v[idx].cert;
    X509_up_ref(ks->cert);
    ks->chain = st.v[idx].chain ? X509_chain_up_ref(st.v[idx].chain) : sk_X509_new_null();
    ks->alias = st.v[idx].alias ? tg_xstrdup(st.v[idx].alias) : NULL;
    rc = 0;
out:
    tg_tls__store_close(&st);
    return rc;
}

/* An acme keystore: the certificate the ACME client stored, or (none yet, or unusable) a
 * self-signed placeholder for its names, made in memory and logged as such. */
static int load(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out, bool tls,
                struct tg_err *err);

static int load_acme(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out, bool tls,
                     struct tg_err *err)
{
    struct stat st;
    if (stat(kc->cert_file, &st) == 0) {
        struct tg_keystore_conf pem = *kc;
        pem.type = "pem";
        struct tg_err scratch;
        tg_err_init(&scratch);
        int rc = load(&pem, out, tls, &scratch);
        if (rc == 0) {
            tg_err_close(&scratch);
            return 0;
        }
        tg_log_warn("keystore \"%s\": the stored ACME certificate %s is not usable (%s): "
                    "serving a self-signed placeholder until a new one is obtained",
                    kc->name, kc->cert_file, scratch.n > 0 ? scratch.v[0].msg : "?");
        tg_err_close(&scratch);
    } else {
        tg_log_warn("keystore \"%s\": no ACME certificate obtained yet for %s%s: serving a "
                    "self-signed placeholder",
                    kc->name, kc->n_names ? kc->names[0] : "?", kc->n_names > 1 ? " and more" : "");
    }
    struct tg_cert_req req = {
        .kind = TG_CERT_SERVER,
        .subject = NULL,
        .names = (const char *const *)kc->names,
        .n_names = kc->n_names,
        .days = 7,
    };
    memset(out, 0, sizeof(*out));
    if (tg_cert_make(&req, &out->key, &out->cert, err) != 0)
        return -EINVAL;
    out->chain = sk_X509_new_null();
    return 0;
}

static int load(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out, bool tls,
                struct tg_err *err)
{
    if (kc->type != NULL && strcmp(kc->type, "acme") == 0)
        return load_acme(kc, out, tls, err);
    struct tg_tls__keystore ks = {0};
    int rc = -EINVAL;
    char where[1200];
    bool pem = kc->type == NULL || strcmp(kc->type, "pem") == 0;
    if (tls && kc->name != NULL && strcmp(kc->name, "internal") == 0) {
        tg_err_error(err, &kc->loc, kc->path,
                     "keystore \"internal\" encrypts secrets and is never used for TLS; give "
                     "the TLS key material another name");
        goto out;
    }
    if (pem) {
        if (kc->cert_file == NULL || kc->key_file == NULL) {
            tg_err_error(err, &kc->loc, kc->path, "keystore \"%s\": needs both cert and key",
                         kc->name);
            goto out;
        }
        /* Load both so one run reports problems with either file. */
        int rc_chain = load_chain(kc, &ks, err);
        int rc_key = load_key(kc, &ks, err);
        if (rc_chain != 0 || rc_key != 0)
            goto out;
        check_mode(kc, kc->key_file, err);
    } else {
        if (kc->file == NULL) {
            tg_err_error(err, &kc->loc, kc->path, "keystore \"%s\": needs a file", kc->name);
            goto out;
        }
        if (load_store(kc, &ks, err) != 0)
            goto out;
        check_mode(kc, kc->file, err);
    }
    if (X509_check_private_key(ks.cert, ks.key) != 1) {
        ERR_clear_error();
        cert_where(kc, &ks, where, sizeof(where));
        if (pem)
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": the key in %s does not match the certificate in %s",
                         kc->name, kc->key_file, kc->cert_file);
        else
            tg_err_error(err, &kc->loc, kc->path,
                         "keystore \"%s\": the key does not match the certificate %s", kc->name,
                         where);
        goto out;
    }
    if (tls && (check_tls_use(kc, &ks, err) != 0 || check_validity(kc, &ks, err) != 0))
        goto out;
    *out = ks;
    memset(&ks, 0, sizeof(ks));
    rc = 0;
out:
    tg_tls__keystore_close(&ks);
    return rc;
}

int tg_tls__keystore_load(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out,
                          struct tg_err *err)
{
    return load(kc, out, true, err);
}

int tg_tls__keystore_load_any(const struct tg_keystore_conf *kc, struct tg_tls__keystore *out,
                              struct tg_err *err)
{
    return load(kc, out, false, err);
}

void tg_tls__keystore_close(struct tg_tls__keystore *ks)
{
    X509_free(ks->cert);
    sk_X509_pop_free(ks->chain, X509_free);
    EVP_PKEY_free(ks->key);
    free(ks->alias);
    memset(ks, 0, sizeof(*ks));
}
