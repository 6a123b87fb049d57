/* ACME challenge answers, read by the listeners: HTTP-01 key authorizations by token, TLS-ALPN-01
 * validation certificates by name. Published as immutable sets behind an atomic pointer; a
 * replaced set is kept until exit (a few per issuance), so readers on the handshake and request
 * paths need no lock and no reference count. Writers (the ACME client) serialise themselves. */
#include "tls/internal.h"
#include "tls/tls.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/core.h"

struct chal {
    char *id;      /* HTTP-01: the token; TLS-ALPN-01: the name */
    char *keyauth; /* HTTP-01 */
    X509 *cert;    /* TLS-ALPN-01 */
    EVP_PKEY *key;
};
struct chal_set {
    struct chal_set *retired; /* older sets, kept until exit */
    size_t n;
    struct chal e[];
};
static _Atomic(struct chal_set *) answers;

static void chal_copy(struct chal *dst, const struct chal *src)
{
    dst->id = tg_xstrdup(src->id);
    dst->keyauth = src->keyauth ? tg_xstrdup(src->keyauth) : NULL;
    dst->cert = src->cert;
    dst->key = src->key;
    if (dst->cert != NULL)
        X509_up_ref(dst->cert);
    if (dst->key != NULL)
        EVP_PKEY_up_ref(dst->key);
}

void tg_acme__answers_set(const char *id, bool tls, const char *keyauth, X509 *cert, EVP_PKEY *key)
{
    const struct chal addc = {
        .id = (char *)id, .keyauth = (char *)keyauth, .cert = cert, .key = key};
    const struct chal *add = keyauth != NULL ? &addc : NULL;
    struct chal_set *old = atomic_load(&answers);
    size_t n = old ? old->n : 0;
    struct chal_set *s = tg_xcalloc(1, sizeof(*s) + (n + 1) * sizeof(s->e[0]));
    for (size_t i = 0; i < n; i++)
        if (strcmp(old->e[i].id, id) != 0 || (old->e[i].cert != NULL) != tls)
            chal_copy(&s->e[s->n++], &old->e[i]);
    if (add != NULL)
        chal_copy(&s->e[s->n++], add);
    s->retired = old;
    atomic_store(&answers, s);
}

static const struct chal *answer_find(const char *id, size_t len, bool tls)
{
    struct chal_set *s = atomic_load(&answers);
    for (size_t i = 0; s != NULL && i < s->n; i++)
        if ((s->e[i].cert != NULL) == tls && strlen(s->e[i].id) == len &&
            (tls ? tg_strncaseeq(s->e[i].id, id, len) : memcmp(s->e[i].id, id, len) == 0))
            return &s->e[i];
    return NULL;
}

const char *tg_acme_http01(const char *token, size_t len)
{
    const struct chal *c = answer_find(token, len, false);
    return c ? c->keyauth : NULL;
}

bool tg_acme__tlsalpn_find(const char *name, size_t len, X509 **cert, EVP_PKEY **key)
{
    const struct chal *c = answer_find(name, len, true);
    if (c == NULL)
        return false;
    *cert = c->cert;
    *key = c->key;
    return true;
}

/* The RFC 8737 validation certificate for name: self-signed, the name as its only SAN, and the
 * critical acmeIdentifier extension holding SHA-256 of the key authorization. */
int tg_acme__tlsalpn_cert(const char *name, const char *keyauth, X509 **cert_out,
                          EVP_PKEY **key_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int ok = key != NULL && x != NULL;
    unsigned char der[34] = {0x04, 0x20};
    unsigned int mdlen = 0;
    ok = ok && EVP_Digest(keyauth, strlen(keyauth), der + 2, &mdlen, EVP_sha256(), NULL) == 1;
    ok = ok && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400) && X509_set_pubkey(x, key) &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)name, -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(x));
    if (ok) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
        ASN1_STRING_set(ia5, name, -1);
        GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
        sk_GENERAL_NAME_push(gens, g);
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
        GENERAL_NAMES_free(gens);
        ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(os, der, sizeof(der));
        X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, os);
        ok = ok && ext != NULL && X509_add_ext(x, ext, -1) == 1;
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(obj);
    }
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    ERR_clear_error();
    if (!ok) {
        X509_free(x);
        EVP_PKEY_free(key);
        return -1;
    }
    *cert_out = x;
    *key_out = key;
    return 0;
}

void tg_acme__answers_free(void)
{
    struct chal_set *s = atomic_exchange(&answers, NULL);
    while (s != NULL) {
        struct chal_set *next = s->retired;
        for (size_t i = 0; i < s->n; i++) {
            free(s->e[i].id);
            free(s->e[i].keyauth);
            X509_free(s->e[i].cert);
            EVP_PKEY_free(s->e[i].key);
        }
        free(s);
        s = next;
    }
}
