/* Client-certificate allow lists: entries (X.500 names, dns:/uri:/email:/ip: SANs, spki: pins)
 * reduced to canonical keys in a hash set, so a lookup costs the same for 10 or 100,000 entries. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "core/err.h"
#include "tls/internal.h"

struct tg_tls_allow {
    char **slots; /* open addressing; NULL = empty */
    size_t cap;   /* power of two */
    size_t n;
};

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Keys are a kind letter and a canonical value: "D<dn>", "N<dns>", "U<uri>", "E<email>",
 * "I<ip hex>", "S<spki base64>"; the kinds never collide. */
static bool set_has(const struct tg_tls_allow *a, const char *key)
{
    if (a->cap == 0)
        return false;
    size_t mask = a->cap - 1;
    for (size_t i = hash(key, strlen(key)) & mask; a->slots[i] != NULL; i = (i + 1) & mask)
        if (strcmp(a->slots[i], key) == 0)
            return true;
    return false;
}

static void set_put(struct tg_tls_allow *a, char *key)
{
    if (set_has(a, key)) {
        free(key);
        return;
    }
    if ((a->n + 1) * 2 > a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        char **ns = tg_xcalloc(ncap, sizeof(*ns));
        for (size_t i = 0; i < a->cap; i++) {
            if (a->slots[i] == NULL)
                continue;
            size_t j = hash(a->slots[i], strlen(a->slots[i])) & (ncap - 1);
            while (ns[j] != NULL)
                j = (j + 1) & (ncap - 1);
            ns[j] = a->slots[i];
        }
        free(a->slots);
        a->slots = ns;
        a->cap = ncap;
    }
    size_t j = hash(key, strlen(key)) & (a->cap - 1);
    while (a->slots[j] != NULL)
        j = (j + 1) & (a->cap - 1);
    a->slots[j] = key;
    a->n++;
}

struct tg_tls_allow *tg_tls_allow_new(void)
{
    return tg_xcalloc(1, sizeof(struct tg_tls_allow));
}

void tg_tls_allow_free(struct tg_tls_allow *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->cap; i++)
        free(a->slots[i]);
    free(a->slots);
    free(a);
}

size_t tg_tls_allow_count(const struct tg_tls_allow *a)
{
    return a ? a->n : 0;
}

static char *lower_key(char kind, const char *v, size_t len)
{
    char *k = tg_xmalloc(len + 2);
    k[0] = kind;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        k[i + 1] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    k[len + 1] = '\0';
    return k;
}

static char *exact_key(char kind, const char *v, size_t len)
{
    char *k = tg_xmalloc(len + 2);
    k[0] = kind;
    memcpy(k + 1, v, len);
    k[len + 1] = '\0';
    return k;
}

static char *ip_key(const unsigned char *ip, size_t len)
{
    char *k = tg_xmalloc(2 * len + 2);
    k[0] = 'I';
    for (size_t i = 0; i < len; i++)
        snprintf(k + 1 + 2 * i, 3, "%02x", ip[i]);
    return k;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

int tg_tls_allow_parse(const char *entry, char **key_out, char *why, size_t n)
{
    *key_out = NULL;
    if (tg_strncaseeq(entry, "dns:", 4)) {
        const char *v = entry + 4;
        if (*v == '\0' || !printable(v) || strlen(v) > 253) {
            snprintf(why, n, "\"%s\": dns: needs a host name", entry);
            return -EINVAL;
        }
        *key_out = lower_key('N', v, strlen(v));
        return 0;
    }
    if (tg_strncaseeq(entry, "uri:", 4)) {
        const char *v = entry + 4;
        if (*v == '\0' || !printable(v) || strchr(v, ':') == NULL) {
            snprintf(why, n, "\"%s\": uri: needs an absolute URI such as spiffe://org/app", entry);
            return -EINVAL;
        }
        *key_out = exact_key('U', v, strlen(v));
        return 0;
    }
    if (tg_strncaseeq(entry, "email:", 6)) {
        const char *v = entry + 6;
        const char *at = strchr(v, '@');
        if (at == NULL || at == v || at[1] == '\0' || !printable(v)) {
            snprintf(why, n, "\"%s\": email: needs an address such as ops@example.com", entry);
            return -EINVAL;
        }
        *key_out = lower_key('E', v, strlen(v));
        return 0;
    }
    if (tg_strncaseeq(entry, "ip:", 3)) {
        unsigned char buf[16];
        const char *v = entry + 3;
        if (inet_pton(AF_INET, v, buf) == 1) {
            *key_out = ip_key(buf, 4);
            return 0;
        }
        if (inet_pton(AF_INET6, v, buf) == 1) {
            *key_out = ip_key(buf, 16);
            return 0;
        }
        snprintf(why, n, "\"%s\": ip: needs an IPv4 or IPv6 address", entry);
        return -EINVAL;
    }
    if (tg_strncaseeq(entry, "spki:", 5)) {
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *v = entry + 5;
        unsigned char raw[33];
        if (tg_strncaseeq(v, "sha256/", 7))
            v += 7;
        bool ok = strlen(v) == 44 && v[43] == '=';
        for (size_t i = 0; ok && i < 43; i++)
            ok = strchr(b64, v[i]) != NULL;
        if (!ok || EVP_DecodeBlock(raw, (const unsigned char *)v, 44) != 33) {
            snprintf(why, n,
                     "\"%s\": spki: needs the base64 SHA-256 of a SubjectPublicKeyInfo (44 "
                     "characters ending in '=')",
                     entry);
            return -EINVAL;
        }
        *key_out = exact_key('S', v, 44);
        return 0;
    }
    struct tg_err err;
    tg_err_init(&err);
    X509_NAME *name = tg_dn_parse(entry, &err, NULL);
    if (name == NULL) {
        snprintf(why, n, "%s", err.n > 0 ? err.v[0].msg : "not a distinguished name");
        tg_err_close(&err);
        return -EINVAL;
    }
    tg_err_close(&err);
    char *canon = tg_dn_canonical(name);
    X509_NAME_free(name);
    *key_out = exact_key('D', canon, strlen(canon));
    free(canon);
    return 0;
}

int tg_tls_allow_add(struct tg_tls_allow *a, const char *entry, char *why, size_t n)
{
    char *key = NULL;
    int rc = tg_tls_allow_parse(entry, &key, why, n);
    if (rc == 0)
        set_put(a, key);
    return rc;
}

static bool match_key(const struct tg_tls_allow *a, char *key, const char *what, char *matched,
                      size_t n)
{
    bool hit = set_has(a, key);
    free(key);
    if (hit && matched != NULL)
        snprintf(matched, n, "%s", what);
    return hit;
}

bool tg_tls_allow_match(const struct tg_tls_allow *a, X509 *cert, char *matched, size_t n)
{
    if (a == NULL || cert == NULL)
        return false;
    char *canon = tg_dn_canonical(X509_get_subject_name(cert));
    bool hit = match_key(a, exact_key('D', canon, strlen(canon)), "subject", matched, n);
    free(canon);
    if (hit)
        return true;
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; !hit && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const ASN1_STRING *s = NULL;
        /* A name with a NUL inside could pass for a shorter one: never matches. */
        if ((g->type == GEN_DNS || g->type == GEN_URI || g->type == GEN_EMAIL) &&
            memchr(ASN1_STRING_get0_data(g->d.ia5), '\0', (size_t)ASN1_STRING_length(g->d.ia5)))
            continue;
        switch (g->type) {
        case GEN_DNS:
            s = g->d.dNSName;
            hit = match_key(a,
                            lower_key('N', (const char *)ASN1_STRING_get0_data(s),
                                      (size_t)ASN1_STRING_length(s)),
                            "dns", matched, n);
            break;
        case GEN_URI:
            s = g->d.uniformResourceIdentifier;
            hit = match_key(a,
                            exact_key('U', (const char *)ASN1_STRING_get0_data(s),
                                      (size_t)ASN1_STRING_length(s)),
                            "uri", matched, n);
            break;
        case GEN_EMAIL:
            s = g->d.rfc822Name;
            hit = match_key(a,
                            lower_key('E', (const char *)ASN1_STRING_get0_data(s),
                                      (size_t)ASN1_STRING_length(s)),
                            "email", matched, n);
            break;
        case GEN_IPADD:
            s = g->d.iPAddress;
            if (ASN1_STRING_length(s) == 4 || ASN1_STRING_length(s) == 16)
                hit = match_key(a, ip_key(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s)),
                                "ip", matched, n);
            break;
        default:
            break;
        }
    }
    GENERAL_NAMES_free(sans);
    if (hit)
        return true;
    char pin[64];
    tg_tls__spki_pin(cert, pin, sizeof(pin));
    return match_key(a, exact_key('S', pin, strlen(pin)), "spki", matched, n);
}
