/* Keystore files as other tools write them: PKCS#12 (keytool, openssl, modern and legacy) and
 * Java's JKS/JCEKS, opened into one list of entries (alias, key or trusted certificate). */
#include "tls/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "core/core.h"

/* ---- chains ---- */

/* The issuers of leaf among certs, nearest first, stopping before a self-signed root (which a
 * server need not send). */
static STACK_OF(X509) * build_chain(X509 *leaf, STACK_OF(X509) * certs)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *cur = leaf;
    for (int depth = 0; chain != NULL && depth < 10; depth++) {
        if (X509_check_issued(cur, cur) == X509_V_OK)
            break;
        X509 *next = NULL;
        for (int i = 0; i < sk_X509_num(certs) && next == NULL; i++) {
            X509 *c = sk_X509_value(certs, i);
            if (c != cur && c != leaf && X509_check_issued(c, cur) == X509_V_OK)
                next = c;
        }
        if (next == NULL || X509_check_issued(next, next) == X509_V_OK)
            break;
        X509_up_ref(next);
        sk_X509_push(chain, next);
        cur = next;
    }
    ERR_clear_error();
    return chain;
}

static void add_entry(struct tg_tls__store *st, const char *alias, bool is_key, X509 *cert,
                      const void *priv)
{
    st->v = tg_xrealloc(st->v, (st->n + 1) * sizeof(*st->v));
    st->v[st->n++] = (struct tg_tls__store_entry){
        .alias = alias ? tg_xstrdup(alias) : NULL,
        .is_key = is_key,
        .cert = cert,
        .priv = priv,
    };
}

/* ---- PKCS#12 ---- */

static bool legacy_loaded;
static OSSL_PROVIDER *legacy_prov, *default_prov;

/* Drops our provider references before OpenSSL's own exit cleanup (atexit runs handlers in
 * reverse order, and OpenSSL registered its handler when it started). */
static void unload_legacy(void)
{
    OSSL_PROVIDER_unload(legacy_prov);
    OSSL_PROVIDER_unload(default_prov);
    legacy_prov = default_prov = NULL;
}

/* PBE algorithms that OpenSSL 3 keeps in its legacy provider. */
static bool needs_legacy(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *oid = NULL;
    if (alg == NULL)
        return false;
    X509_ALGOR_get0(&oid, NULL, NULL, alg);
    switch (OBJ_obj2nid(oid)) {
    case NID_pbe_WithSHA1And40BitRC2_CBC:
    case NID_pbe_WithSHA1And128BitRC2_CBC:
    case NID_pbe_WithSHA1And128BitRC4:
    case NID_pbe_WithSHA1And40BitRC4:
    case NID_pbeWithMD5AndDES_CBC:
    case NID_pbeWithSHA1AndDES_CBC:
    case NID_pbeWithMD5AndRC2_CBC:
    case NID_pbeWithSHA1AndRC2_CBC:
        return true;
    default:
        return false;
    }
}

/* Loads the legacy provider (and keeps the default one) the first time a file needs it. Runs
 * on the thread that loads configs, never on workers. */
static int load_legacy(char *why, size_t why_len)
{
    if (legacy_loaded)
        return 0;
    default_prov = OSSL_PROVIDER_load(NULL, "default");
    legacy_prov = default_prov ? OSSL_PROVIDER_load(NULL, "legacy") : NULL;
    if (legacy_prov == NULL) {
        unload_legacy();
        ERR_clear_error();
        snprintf(why, why_len,
                 "the file uses a legacy algorithm (RC2, RC4 or DES, as `openssl "
                 "pkcs12 -legacy` writes) and OpenSSL's legacy provider cannot be "
                 "loaded; convert it with a current openssl or keytool");
        return -ENOTSUP;
    }
    legacy_loaded = true;
    atexit(unload_legacy);
    return 0;
}

long tg_tls__pbe_max_iter = TG_TLS__PBE_MAX_ITER;

/* The key-derivation iteration count alg (PBES1, or PBES2 with PBKDF2) asks for: 1 when it names
 * none (OpenSSL then uses 1), negative when it is negative or too large to read. */
static long pbe_iter(const X509_ALGOR *alg)
{
    long iter = 1;
    if (alg == NULL)
        return iter;
    if (OBJ_obj2nid(alg->algorithm) == NID_pbes2) {
        PBE2PARAM *p2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
        if (p2 != NULL && p2->keyfunc != NULL &&
            OBJ_obj2nid(p2->keyfunc->algorithm) == NID_id_pbkdf2) {
            PBKDF2PARAM *kdf =
                ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p2->keyfunc->parameter);
            if (kdf != NULL && kdf->iter != NULL)
                iter = ASN1_INTEGER_get(kdf->iter);
            PBKDF2PARAM_free(kdf);
        }
        PBE2PARAM_free(p2);
    } else {
        PBEPARAM *p1 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter);
        if (p1 != NULL && p1->iter != NULL)
            iter = ASN1_INTEGER_get(p1->iter);
        PBEPARAM_free(p1);
    }
    ERR_clear_error();
    return iter;
}

/* OpenSSL runs whatever iteration count a PKCS#12 file names: a MAC asking for 2^31 - 1 held
 * `openssl pkcs12` for 8.5 minutes on the 2-core test VM, and would hold a config load or reload
 * as long. Counts above tg_tls__pbe_max_iter are refused first, as Java's
 * PKCS12KeyStore does above the same 5,000,000 (keytool writes 10,000, openssl 2,048). */
static bool iter_refused(long iter, const char *what, char *why, size_t why_len)
{
    if (iter >= 0 && iter <= tg_tls__pbe_max_iter)
        return false;
    if (iter < 0)
        snprintf(why, why_len,
                 "the PKCS#12 %s names a negative or unreadable key-derivation iteration "
                 "count (damaged file)",
                 what);
    else
        snprintf(why, why_len,
                 "the PKCS#12 %s asks for %ld key-derivation iterations; more than %ld are "
                 "refused (a damaged or hostile file: keytool writes 10,000, openssl 2,048)",
                 what, iter, tg_tls__pbe_max_iter);
    return true;
}

static char *friendly_name(const PKCS12_SAFEBAG *bag)
{
    char *n = PKCS12_get_friendlyname((PKCS12_SAFEBAG *)bag);
    char *r = n ? tg_xstrdup(n) : NULL;
    OPENSSL_free(n);
    return r;
}

static const ASN1_OCTET_STRING *local_key_id(const PKCS12_SAFEBAG *bag)
{
    const ASN1_TYPE *t = PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID);
    return t != NULL && t->type == V_ASN1_OCTET_STRING ? t->value.octet_string : NULL;
}

static int p12_open(struct tg_tls__store *st, const char *password, char *why, size_t why_len)
{
    const unsigned char *p = (const unsigned char *)st->data;
    PKCS12 *p12 = st->len <= LONG_MAX ? d2i_PKCS12(NULL, &p, (long)st->len) : NULL;
    STACK_OF(PKCS7) *asafes = NULL;
    STACK_OF(PKCS12_SAFEBAG) *all = sk_PKCS12_SAFEBAG_new_null();
    STACK_OF(X509) *certs = sk_X509_new_null();
    int rc = -EINVAL;

    st->bags = all;
    if (p12 == NULL) {
        snprintf(why, why_len,
                 "not a PKCS#12, JKS or JCEKS keystore: it starts as PKCS#12 does (30) but does "
                 "not parse as one (truncated or damaged)");
        goto out;
    }
    if (PKCS12_mac_present(p12)) {
        const ASN1_INTEGER *mac_iter = NULL;
        PKCS12_get0_mac(NULL, NULL, NULL, &mac_iter, p12);
        if (iter_refused(mac_iter != NULL ? ASN1_INTEGER_get(mac_iter) : 1, "MAC", why, why_len))
            goto out;
        if (PKCS12_verify_mac(p12, password, -1) != 1 &&
            !(password[0] == '\0' && PKCS12_verify_mac(p12, NULL, 0) == 1)) {
            snprintf(why, why_len,
                     "wrong store password (the PKCS#12 MAC does not verify), or the file was "
                     "altered");
            rc = -EACCES;
            goto out;
        }
    }
    asafes = PKCS12_unpack_authsafes(p12);
    if (asafes == NULL) {
        snprintf(why, why_len, "the PKCS#12 contents are damaged");
        goto out;
    }
    for (int i = 0; i < sk_PKCS7_num(asafes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(asafes, i);
        STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
        int nid = OBJ_obj2nid(p7->type);
        if (nid == NID_pkcs7_data) {
            bags = PKCS12_unpack_p7data(p7);
        } else if (nid == NID_pkcs7_encrypted) {
            if (p7->d.encrypted != NULL && p7->d.encrypted->enc_data != NULL &&
                iter_refused(pbe_iter(p7->d.encrypted->enc_data->algorithm),
                             "certificate encryption", why, why_len))
                goto out;
            if (p7->d.encrypted != NULL && p7->d.encrypted->enc_data != NULL &&
                needs_legacy(p7->d.encrypted->enc_data->algorithm) &&
                (rc = load_legacy(why, why_len)) != 0)
                goto out;
            bags = PKCS12_unpack_p7encdata(p7, password, -1);
            if (bags == NULL) {
                snprintf(why, why_len,
                         "cannot decrypt the PKCS#12 certificates: wrong store "
                         "password, or an algorithm this OpenSSL lacks");
                rc = -EACCES;
                goto out;
            }
        } else {
            continue; /* enveloped data: public-key protected, not used by keytool or openssl */
        }
        if (bags == NULL) {
            snprintf(why, why_len, "the PKCS#12 contents are damaged");
            rc = -EINVAL;
            goto out;
        }
        while (sk_PKCS12_SAFEBAG_num(bags) > 0)
            sk_PKCS12_SAFEBAG_push(all, sk_PKCS12_SAFEBAG_shift(bags));
        sk_PKCS12_SAFEBAG_free(bags);
    }
    /* Certificates first, so key entries can find theirs by localKeyID. */
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(all); i++) {
        const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(all, i);
        if (PKCS12_SAFEBAG_get_nid(bag) != NID_certBag ||
            PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate)
            continue;
        X509 *x = PKCS12_SAFEBAG_get1_cert(bag);
        if (x == NULL) {
            snprintf(why, why_len, "a certificate in the PKCS#12 file is damaged");
            rc = -EINVAL;
            goto out;
        }
        sk_X509_push(certs, x);
    }
    int ci = 0;
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(all); i++) {
        const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(all, i);
        int bn = PKCS12_SAFEBAG_get_nid(bag);
        if (bn != NID_certBag)
            continue;
        if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate)
            continue;
        X509 *x = sk_X509_value(certs, ci++);
        if (local_key_id(bag) != NULL)
            continue; /* a key entry's certificate: listed with its key */
        char *alias = friendly_name(bag);
        X509_up_ref(x);
        add_entry(st, alias, false, x, bag);
        free(alias);
    }
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(all); i++) {
        const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(all, i);
        int bn = PKCS12_SAFEBAG_get_nid(bag);
        if (bn != NID_keyBag && bn != NID_pkcs8ShroudedKeyBag)
            continue;
        const ASN1_OCTET_STRING *id = local_key_id(bag);
        char *alias = friendly_name(bag);
        X509 *leaf = NULL;
        int cj = 0;
        for (int k = 0; k < sk_PKCS12_SAFEBAG_num(all) && leaf == NULL; k++) {
            const PKCS12_SAFEBAG *cb = sk_PKCS12_SAFEBAG_value(all, k);
            if (PKCS12_SAFEBAG_get_nid(cb) != NID_certBag ||
                PKCS12_SAFEBAG_get_bag_nid(cb) != NID_x509Certificate)
                continue;
            const ASN1_OCTET_STRING *cid = local_key_id(cb);
            if (id != NULL && cid != NULL && ASN1_OCTET_STRING_cmp(id, cid) == 0)
                leaf = sk_X509_value(certs, cj);
            cj++;
        }
        if (leaf == NULL && sk_X509_num(certs) > 0 && id == NULL) {
            /* No localKeyID: openssl and keytool always write one, so take the first
             * certificate, as PKCS12_parse would; the key/certificate check follows. */
            leaf = sk_X509_value(certs, 0);
        }
        if (leaf == NULL) {
            snprintf(why, why_len, "the key entry%s%s%s has no certificate", alias ? " \"" : "",
                     alias ? alias : "", alias ? "\"" : "");
            free(alias);
            rc = -EINVAL;
            goto out;
        }
        X509_up_ref(leaf);
        add_entry(st, alias, true, leaf, bag);
        st->v[st->n - 1].chain = build_chain(leaf, certs);
        free(alias);
    }
    rc = 0;
out:
    sk_X509_pop_free(certs, X509_free);
    sk_PKCS7_pop_free(asafes, PKCS7_free);
    PKCS12_free(p12);
    ERR_clear_error();
    return rc;
}

static int p12_key(const PKCS12_SAFEBAG *bag, const char *password, EVP_PKEY **out,
                   const char *alias, char *why, size_t why_len)
{
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    int rc = -EACCES;
    if (PKCS12_SAFEBAG_get_nid(bag) == NID_keyBag) {
        *out = EVP_PKCS82PKEY(PKCS12_SAFEBAG_get0_p8inf(bag));
    } else {
        const X509_SIG *sig = PKCS12_SAFEBAG_get0_pkcs8(bag);
        const X509_ALGOR *alg = NULL;
        X509_SIG_get0(sig, &alg, NULL);
        if (iter_refused(pbe_iter(alg), "key encryption", why, why_len))
            return -EINVAL;
        if (needs_legacy(alg) && (rc = load_legacy(why, why_len)) != 0)
            return rc;
        p8 = PKCS8_decrypt(sig, password, -1);
        if (p8 == NULL && password[0] == '\0')
            p8 = PKCS8_decrypt(sig, NULL, 0);
        *out = p8 ? EVP_PKCS82PKEY(p8) : NULL;
    }
    PKCS8_PRIV_KEY_INFO_free(p8);
    ERR_clear_error();
    if (*out == NULL) {
        snprintf(why, why_len, "cannot decrypt the key of entry%s%s%s: wrong key password",
                 alias ? " \"" : "", alias ? alias : "", alias ? "\"" : "");
        return -EACCES;
    }
    return 0;
}

/* ---- JKS and JCEKS ---- */

static int jks_open(struct tg_tls__store *st, const char *password, char *why, size_t why_len)
{
    int rc =
        tg_tls__jks_parse((const uint8_t *)st->data, st->len, password, &st->jks, why, why_len);
    if (rc == -EBADMSG)
        return -EACCES;
    if (rc != 0)
        return rc;
    st->kind = st->jks.kind;
    for (size_t i = 0; i < st->jks.n; i++) {
        const struct tg_tls__jks_entry *e = &st->jks.entries[i];
        STACK_OF(X509) *certs = sk_X509_new_null();
        for (size_t k = 0; k < e->n_certs; k++) {
            const unsigned char *p = e->certs[k].der;
            X509 *x =
                e->certs[k].len <= LONG_MAX ? d2i_X509(NULL, &p, (long)e->certs[k].len) : NULL;
            if (x == NULL) {
                snprintf(why, why_len, "certificate %zu of entry \"%s\" is damaged", k + 1,
                         e->alias);
                sk_X509_pop_free(certs, X509_free);
                ERR_clear_error();
                return -EINVAL;
            }
            sk_X509_push(certs, x);
        }
        X509 *leaf = sk_X509_shift(certs);
        add_entry(st, e->alias, e->tag == TG_TLS__JKS_KEY, leaf, e);
        if (e->tag == TG_TLS__JKS_KEY)
            st->v[st->n - 1].chain = build_chain(leaf, certs);
        sk_X509_pop_free(certs, X509_free);
    }
    return 0;
}

/* ---- common ---- */

static int entry_cmp(const void *a, const void *b)
{
    const struct tg_tls__store_entry *x = a, *y = b;
    if (x->alias == NULL || y->alias == NULL)
        return (x->alias != NULL) - (y->alias != NULL);
    return strcasecmp(x->alias, y->alias);
}

/* The format a file is really in, as Java's keystore.type.compat tells it: the JKS or JCEKS magic,
 * or a DER SEQUENCE for PKCS#12; -1 for none of these. */
static int sniff(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    if (len >= 4 && p[0] == 0xfe && p[1] == 0xed && p[2] == 0xfe && p[3] == 0xed)
        return TG_TLS__JKS;
    if (len >= 4 && p[0] == 0xce && p[1] == 0xce && p[2] == 0xce && p[3] == 0xce)
        return TG_TLS__JCEKS;
    if (len >= 1 && p[0] == 0x30)
        return 0;
    return -1;
}

const char *tg_tls__store_format(int kind)
{
    return kind == TG_TLS__JKS ? "JKS" : kind == TG_TLS__JCEKS ? "JCEKS" : "PKCS#12";
}

bool tg_tls__store_differs(const char *type, const struct tg_tls__store *st, char *buf, size_t len)
{
    int want = strcmp(type, "jks") == 0     ? TG_TLS__JKS
               : strcmp(type, "jceks") == 0 ? TG_TLS__JCEKS
                                            : 0;
    if (want == st->kind)
        return false;
    snprintf(buf, len, "type %s, file is %s: loaded as %s", type, tg_tls__store_format(st->kind),
             tg_tls__store_format(st->kind));
    return true;
}

int tg_tls__store_open(const char *type, const char *file, const char *password,
                       struct tg_tls__store *out, char *why, size_t why_len)
{
    char *data = NULL;
    size_t len = 0;
    int rc = tg_read_file(file, &data, &len);
    if (rc != 0) {
        snprintf(why, why_len, "cannot read %s: %s", file, strerror(-rc));
        return rc;
    }
    rc = tg_tls__store_parse(type, data, len, password, out, why, why_len);
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

int tg_tls__store_parse(const char *type, const void *buf, size_t len, const char *password,
                        struct tg_tls__store *out, char *why, size_t why_len)
{
    struct tg_tls__store st = {0};
    int rc = 0;
    st.data = tg_xmalloc(len ? len : 1);
    memcpy(st.data, buf, len);
    st.len = len;
    /* As Java does, "jks", "jceks" and "pkcs12" each read any of the three formats: keytool
     * writes PKCS#12 whatever the file is called, and configs carry the older type names. */
    int kind = sniff(st.data, st.len);
    if (kind < 0) {
        const unsigned char *p = (const unsigned char *)st.data;
        char start[32] = "nothing: the file is empty";
        for (size_t i = 0, off = 0; i < st.len && i < 4; i++)
            off += (size_t)snprintf(start + off, sizeof(start) - off, "%s%02x", i ? " " : "", p[i]);
        if (st.len >= 5 && memcmp(st.data, "-----", 5) == 0)
            snprintf(why, why_len,
                     "a PEM file, not a PKCS#12, JKS or JCEKS keystore (use type \"pem\" with "
                     "\"cert\" and \"key\")");
        else
            snprintf(why, why_len,
                     "not a PKCS#12, JKS or JCEKS keystore (it starts with %s; PKCS#12 starts "
                     "with 30, JKS with fe ed fe ed, JCEKS with ce ce ce ce)",
                     start);
        rc = -EINVAL;
        goto out;
    }
    if (kind == 0) {
        rc = p12_open(&st, password ? password : "", why, why_len);
    } else {
        rc = jks_open(&st, password, why, why_len);
    }
    if (rc != 0)
        goto out;
    /* Alias order, so messages listing them are stable. */
    if (st.n > 1)
        qsort(st.v, st.n, sizeof(*st.v), entry_cmp);
    *out = st;
    memset(&st, 0, sizeof(st));
out:
    tg_tls__store_close(&st);
    return rc;
}

int tg_tls__store_key(const struct tg_tls__store *st, size_t i, const char *password,
                      EVP_PKEY **out, char *why, size_t why_len)
{
    const struct tg_tls__store_entry *e = &st->v[i];
    *out = NULL;
    if (!e->is_key) {
        snprintf(why, why_len, "entry \"%s\" is a trusted certificate, not a key entry",
                 e->alias ? e->alias : "");
        return -EINVAL;
    }
    if (st->kind == 0)
        return p12_key(e->priv, password ? password : "", out, e->alias, why, why_len);
    return tg_tls__jks_key(e->priv, password ? password : "", out, why, why_len);
}

void tg_tls__store_close(struct tg_tls__store *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->v[i].alias);
        X509_free(st->v[i].cert);
        sk_X509_pop_free(st->v[i].chain, X509_free);
    }
    free(st->v);
    tg_tls__jks_free(&st->jks);
    sk_PKCS12_SAFEBAG_pop_free(st->bags, PKCS12_SAFEBAG_free);
    if (st->data != NULL)
        OPENSSL_cleanse(st->data, st->len);
    free(st->data);
    memset(st, 0, sizeof(*st));
}

void tg_tls__store_aliases(const struct tg_tls__store *st, char *buf, size_t len)
{
    size_t off = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < st->n && off < len; i++) {
        int w =
            snprintf(buf + off, len - off, "%s%s%s%s (%s)", i ? ", " : "",
                     st->v[i].alias ? "\"" : "", st->v[i].alias ? st->v[i].alias : "no alias",
                     st->v[i].alias ? "\"" : "", st->v[i].is_key ? "key" : "trusted certificate");
        off += w > 0 ? (size_t)w : 0;
    }
    if (st->n == 0)
        snprintf(buf, len, "none");
}

/* ---- truststores ---- */

int tg_tls__store_trusted(const struct tg_truststore_conf *ts, STACK_OF(X509) * *out,
                          struct tg_err *err)
{
    struct tg_tls__store st = {0};
    char why[512], names[1024];
    STACK_OF(X509) *certs = sk_X509_new_null();
    int rc = tg_tls__store_open(ts->type, ts->file, ts->password, &st, why, sizeof(why));
    if (rc != 0) {
        tg_err_error(err, &ts->loc, ts->path, "truststore \"%s\": %s: %s", ts->name, ts->file, why);
        goto out;
    }
    rc = -EINVAL;
    if (tg_tls__store_differs(ts->type, &st, why, sizeof(why)))
        tg_err_warning(err, &ts->loc, ts->path, "truststore \"%s\": %s: %s", ts->name, ts->file,
                       why);
    if (ts->password == NULL && st.kind != 0)
        tg_err_warning(err, &ts->loc, ts->path,
                       "truststore \"%s\": no password, so the integrity digest of %s is not "
                       "checked",
                       ts->name, ts->file);
    tg_tls__store_aliases(&st, names, sizeof(names));
    for (size_t i = 0; i < ts->n_aliases; i++) {
        size_t k = 0;
        while (k < st.n && !(st.v[k].alias && tg_strcaseeq(st.v[k].alias, ts->aliases[i])))
            k++;
        if (k == st.n) {
            tg_err_error(err, &ts->loc, ts->path,
                         "truststore \"%s\": no entry \"%s\" in %s (entries: %s)", ts->name,
                         ts->aliases[i], ts->file, names);
            goto out;
        }
        /* A key entry named here trusts its certificate, as Java's trust managers do. */
        X509_up_ref(st.v[k].cert);
        sk_X509_push(certs, st.v[k].cert);
    }
    for (size_t k = 0; ts->n_aliases == 0 && k < st.n; k++) {
        if (st.v[k].is_key)
            continue;
        X509_up_ref(st.v[k].cert);
        sk_X509_push(certs, st.v[k].cert);
    }
    if (sk_X509_num(certs) == 0) {
        tg_err_error(err, &ts->loc, ts->path,
                     "truststore \"%s\": %s holds no trusted-certificate entry (entries: %s); "
                     "name key entries in \"aliases\" to trust their certificates",
                     ts->name, ts->file, names);
        goto out;
    }
    *out = certs;
    certs = NULL;
    rc = 0;
out:
    sk_X509_pop_free(certs, X509_free);
    tg_tls__store_close(&st);
    return rc;
}

int tg_tls_store_alias_subject(const char *type, const char *file, const char *password,
                               const char *alias, char **subject, char *why, size_t why_len)
{
    struct tg_tls__store st = {0};
    *subject = NULL;
    int rc = tg_tls__store_open(type, file, password, &st, why, why_len);
    if (rc != 0)
        return rc;
    rc = -ENOENT;
    /* Java compares aliases case-insensitively (JKS stores them lower-cased). */
    for (size_t i = 0; i < st.n && rc != 0; i++) {
        if (st.v[i].alias != NULL && st.v[i].cert != NULL && tg_strcaseeq(st.v[i].alias, alias)) {
            *subject = tg_dn_string(X509_get_subject_name(st.v[i].cert));
            rc = 0;
        }
    }
    if (rc != 0)
        snprintf(why, why_len, "%s holds no entry with alias \"%s\"", file, alias);
    tg_tls__store_close(&st);
    return rc;
}
