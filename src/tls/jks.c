/* Java keystores (JKS and JCEKS) as keytool writes them, read-only: the entry list, the store's
 * integrity digest and the two key-protection schemes, all from OpenSSL primitives. */
#include "tls/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "core/core.h"

#define JKS_MAGIC   0xFEEDFEEDu
#define JCEKS_MAGIC 0xCECECECEu
#define SHA1_LEN    20
/* Far more than any real store holds; bounds what a damaged count can make us allocate. */
#define MAX_ENTRIES 65536
#define MAX_CHAIN   64
/* Java refuses more PBE iterations than this (jdk.jceks.iterationCount's ceiling). */
#define MAX_ITERATIONS 5000000

/* "Sun JKS key protection" and "PBEWithMD5AndTripleDES" (JCEKS). */
#define OID_JKS_KEY_PROTECTOR   "1.3.6.1.4.1.42.2.17.1.1"
#define OID_JCEKS_KEY_PROTECTOR "1.3.6.1.4.1.42.2.19.1"

struct reader {
    const uint8_t *p;
    size_t len, off;
    char *why;
    size_t why_len;
    bool failed;
};

static void fail(struct reader *r, const char *fmt, ...) TG_PRINTF(2, 3);
static void fail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    if (r->failed)
        return;
    r->failed = true;
    va_start(ap, fmt);
    vsnprintf(r->why, r->why_len, fmt, ap);
    va_end(ap);
}

static bool need(struct reader *r, size_t n, const char *what)
{
    if (r->failed)
        return false;
    if (r->len - r->off < n) {
        fail(r, "the file is truncated: %s at byte %zu needs %zu byte(s), %zu left", what, r->off,
             n, r->len - r->off);
        return false;
    }
    return true;
}

static uint32_t u32(struct reader *r, const char *what)
{
    if (!need(r, 4, what))
        return 0;
    const uint8_t *p = r->p + r->off;
    r->off += 4;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t u64(struct reader *r, const char *what)
{
    uint64_t hi = u32(r, what);
    return hi << 32 | u32(r, what);
}

/* A Java "modified UTF-8" string (u16 length, then bytes); newly allocated, or NULL. */
static char *utf(struct reader *r, const char *what)
{
    if (!need(r, 2, what))
        return NULL;
    size_t n = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
    r->off += 2;
    if (!need(r, n, what))
        return NULL;
    const char *s = (const char *)r->p + r->off;
    if (memchr(s, '\0', n) != NULL) {
        fail(r, "%s at byte %zu holds a NUL byte", what, r->off);
        return NULL;
    }
    r->off += n;
    return tg_xstrndup(s, n);
}

/* A u32 length and that many bytes, borrowed from the buffer. */
static const uint8_t *blob(struct reader *r, size_t *len, const char *what)
{
    uint32_t n = u32(r, what);
    if (!need(r, n, what))
        return NULL;
    const uint8_t *p = r->p + r->off;
    r->off += n;
    *len = n;
    return p;
}

/* One certificate: the type name (version 2 only), then its DER. */
static bool read_cert(struct reader *r, uint32_t version, struct tg_tls__jks_cert *c,
                      const char *what)
{
    if (version == 2) {
        char *type = utf(r, what);
        if (type == NULL)
            return false;
        bool x509 = strcmp(type, "X.509") == 0;
        free(type);
        if (!x509) {
            fail(r, "%s is not an X.509 certificate", what);
            return false;
        }
    }
    c->der = blob(r, &c->len, what);
    return c->der != NULL;
}

/* Java char[] passwords as the UTF-16BE bytes the digest and the JKS key protector hash.
 * Bytes that are not valid UTF-8 are taken as Latin-1. The caller cleanses and frees *out. */
static uint8_t *utf16be(const char *pw, size_t *out_len)
{
    size_t n = strlen(pw), o = 0;
    uint8_t *out = tg_xcalloc(n * 4 + 1, 1);
    const unsigned char *s = (const unsigned char *)pw;
    for (size_t i = 0; i < n;) {
        uint32_t cp = s[i];
        size_t k = 1;
        if (cp >= 0xC2 && cp <= 0xDF && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            cp = (cp & 0x1F) << 6 | (s[i + 1] & 0x3F);
            k = 2;
        } else if (cp >= 0xE0 && cp <= 0xEF && i + 2 < n && (s[i + 1] & 0xC0) == 0x80 &&
                   (s[i + 2] & 0xC0) == 0x80) {
            cp = (cp & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
            k = 3;
        } else if (cp >= 0xF0 && cp <= 0xF4 && i + 3 < n && (s[i + 1] & 0xC0) == 0x80 &&
                   (s[i + 2] & 0xC0) == 0x80 && (s[i + 3] & 0xC0) == 0x80) {
            cp = (cp & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
                 (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
            k = 4;
        }
        i += k;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            uint32_t hi = 0xD800 | (cp >> 10), lo = 0xDC00 | (cp & 0x3FF);
            out[o++] = (uint8_t)(hi >> 8);
            out[o++] = (uint8_t)hi;
            out[o++] = (uint8_t)(lo >> 8);
            out[o++] = (uint8_t)lo;
        } else {
            out[o++] = (uint8_t)(cp >> 8);
            out[o++] = (uint8_t)cp;
        }
    }
    *out_len = o;
    return out;
}

static void free_bytes(uint8_t *p, size_t len)
{
    if (p != NULL)
        OPENSSL_cleanse(p, len);
    free(p);
}

/* SHA-1(UTF-16BE(password) || "Mighty Aphrodite" || the store up to the digest): the JKS and
 * JCEKS integrity check (sun.security.provider.JavaKeyStore.getPreKeyedHash). */
static int check_digest(const uint8_t *buf, size_t body_len, const char *password)
{
    static const char whitener[] = "Mighty Aphrodite";
    size_t pwl = 0;
    uint8_t *pw = utf16be(password, &pwl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, pw, pwl) == 1 &&
             EVP_DigestUpdate(ctx, whitener, sizeof(whitener) - 1) == 1 &&
             EVP_DigestUpdate(ctx, buf, body_len) == 1 && EVP_DigestFinal_ex(ctx, md, &mdl) == 1 &&
             mdl == SHA1_LEN;
    EVP_MD_CTX_free(ctx);
    free_bytes(pw, pwl);
    ERR_clear_error();
    if (!ok)
        return -ENOMEM;
    return CRYPTO_memcmp(md, buf + body_len, SHA1_LEN) == 0 ? 0 : -EBADMSG;
}

int tg_tls__jks_parse(const uint8_t *buf, size_t len, const char *password, struct tg_tls__jks *out,
                      char *why, size_t why_len)
{
    struct reader r = {.p = buf, .len = len, .why = why, .why_len = why_len};
    struct tg_tls__jks ks = {0};
    int rc = -EINVAL;

    if (why_len > 0)
        why[0] = '\0';
    uint32_t magic = u32(&r, "the magic number");
    if (r.failed)
        goto out;
    if (magic != JKS_MAGIC && magic != JCEKS_MAGIC) {
        fail(&r,
             "not a JKS or JCEKS keystore (it starts with %02x %02x %02x %02x, not fe ed fe "
             "ed or ce ce ce ce)",
             buf[0], buf[1], buf[2], buf[3]);
        goto out;
    }
    ks.kind = magic == JKS_MAGIC ? TG_TLS__JKS : TG_TLS__JCEKS;
    ks.version = u32(&r, "the version");
    if (!r.failed && ks.version != 1 && ks.version != 2) {
        fail(&r, "unknown keystore version %u (1 and 2 are known)", ks.version);
        goto out;
    }
    uint32_t count = u32(&r, "the entry count");
    if (r.failed)
        goto out;
    if (count > MAX_ENTRIES) {
        fail(&r, "the entry count %u is implausible (damaged file)", count);
        goto out;
    }
    ks.entries = tg_xcalloc((size_t)count + 1, sizeof(*ks.entries));
    for (uint32_t i = 0; i < count && !r.failed; i++) {
        struct tg_tls__jks_entry *e = &ks.entries[ks.n];
        char what[96];
        size_t start = r.off;
        e->tag = (int)u32(&r, "an entry tag");
        snprintf(what, sizeof(what), "the alias of entry %u", i + 1);
        e->alias = utf(&r, what);
        if (r.failed)
            break;
        ks.n++;
        e->date_ms = u64(&r, "an entry date");
        if (e->tag == TG_TLS__JKS_KEY) {
            snprintf(what, sizeof(what), "the key of entry \"%s\"", e->alias);
            e->key = blob(&r, &e->key_len, what);
            snprintf(what, sizeof(what), "the chain length of entry \"%s\"", e->alias);
            uint32_t n = u32(&r, what);
            if (r.failed)
                break;
            if (n == 0 || n > MAX_CHAIN) {
                fail(&r, "entry \"%s\" has a chain of %u certificates (damaged file)", e->alias, n);
                break;
            }
            e->certs = tg_xcalloc(n, sizeof(*e->certs));
            for (uint32_t k = 0; k < n && !r.failed; k++) {
                snprintf(what, sizeof(what), "certificate %u of entry \"%s\"", k + 1, e->alias);
                if (read_cert(&r, ks.version, &e->certs[k], what))
                    e->n_certs++;
            }
        } else if (e->tag == TG_TLS__JKS_TRUSTED) {
            snprintf(what, sizeof(what), "the certificate of entry \"%s\"", e->alias);
            e->certs = tg_xcalloc(1, sizeof(*e->certs));
            if (read_cert(&r, ks.version, &e->certs[0], what))
                e->n_certs = 1;
        } else if (e->tag == TG_TLS__JKS_SECRET && ks.kind == TG_TLS__JCEKS) {
            /* A serialized Java object whose length is not written down anywhere. */
            fail(&r,
                 "entry \"%s\" is a secret-key entry (a serialized Java object, at byte %zu), "
                 "which tlsgate cannot read; keep secret keys in another store",
                 e->alias, start);
        } else {
            fail(&r, "entry %u at byte %zu has the unknown tag %d", i + 1, start, e->tag);
        }
    }
    if (r.failed)
        goto out;
    if (!need(&r, SHA1_LEN, "the integrity digest"))
        goto out;
    if (r.len - r.off != SHA1_LEN) {
        fail(&r, "%zu unexpected byte(s) after the integrity digest", r.len - r.off - SHA1_LEN);
        goto out;
    }
    if (password != NULL) {
        int d = check_digest(buf, r.off, password);
        if (d == -EBADMSG) {
            fail(&r, "the integrity digest does not match: wrong store password, or the file was "
                     "altered");
            rc = -EBADMSG;
            goto out;
        }
        if (d != 0) {
            fail(&r, "cannot compute the integrity digest (SHA-1 unavailable)");
            goto out;
        }
    }
    *out = ks;
    memset(&ks, 0, sizeof(ks));
    rc = 0;
out:
    tg_tls__jks_free(&ks);
    return rc;
}

void tg_tls__jks_free(struct tg_tls__jks *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->entries[i].alias);
        free(ks->entries[i].certs);
    }
    free(ks->entries);
    memset(ks, 0, sizeof(*ks));
}

/* ---- key protection ---- */

/* sun.security.provider.KeyProtector: salt(20) || key XOR keystream || SHA-1 check, where the
 * keystream is SHA-1(pw || salt), SHA-1(pw || previous), ... and the check is SHA-1(pw || key). */
static int jks_recover(const uint8_t *enc, size_t len, const char *password, uint8_t **plain,
                       size_t *plain_len)
{
    if (len < 2 * SHA1_LEN + 1)
        return -EINVAL;
    size_t pwl = 0, klen = len - 2 * SHA1_LEN;
    uint8_t *pw = utf16be(password, &pwl);
    uint8_t *key = tg_xcalloc(klen, 1);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    int rc = -ENOMEM;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    memcpy(d, enc, SHA1_LEN);
    for (size_t off = 0; off < klen; off += SHA1_LEN) {
        if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
            EVP_DigestUpdate(ctx, pw, pwl) != 1 || EVP_DigestUpdate(ctx, d, SHA1_LEN) != 1 ||
            EVP_DigestFinal_ex(ctx, d, &dl) != 1)
            goto out;
        for (size_t i = 0; i < SHA1_LEN && off + i < klen; i++)
            key[off + i] = enc[SHA1_LEN + off + i] ^ d[i];
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 || EVP_DigestUpdate(ctx, pw, pwl) != 1 ||
        EVP_DigestUpdate(ctx, key, klen) != 1 || EVP_DigestFinal_ex(ctx, d, &dl) != 1)
        goto out;
    if (CRYPTO_memcmp(d, enc + len - SHA1_LEN, SHA1_LEN) != 0) {
        rc = -EACCES;
        goto out;
    }
    *plain = key;
    *plain_len = klen;
    key = NULL;
    rc = 0;
out:
    OPENSSL_cleanse(d, sizeof(d));
    EVP_MD_CTX_free(ctx);
    free_bytes(pw, pwl);
    free_bytes(key, klen);
    return rc;
}

/* PBEWithMD5AndTripleDES (com.sun.crypto.provider.PBES1Core): each salt half is hashed with the
 * password `iter` times with MD5 (a salt with equal halves gets its first half reversed); the 32
 * bytes give the 3DES key and the CBC IV. The password is taken as ASCII, as Java does. */
static int jceks_recover(const uint8_t *enc, size_t len, const PBEPARAM *pbe, const char *password,
                         uint8_t **plain, size_t *plain_len)
{
    uint8_t salt[8], derived[32];
    long iter = ASN1_INTEGER_get(pbe->iter);
    size_t pwl = strlen(password);
    int rc = -EINVAL, outl = 0, finl = 0;
    uint8_t *out = NULL;
    EVP_MD_CTX *md = NULL;
    EVP_MD *md5 = NULL;
    EVP_CIPHER_CTX *cc = NULL;

    if (ASN1_STRING_length(pbe->salt) != 8 || iter < 1 || iter > MAX_ITERATIONS || len == 0 ||
        len % 8 != 0 || len > INT32_MAX)
        return -EINVAL;
    memcpy(salt, ASN1_STRING_get0_data(pbe->salt), 8);
    if (memcmp(salt, salt + 4, 4) == 0)
        for (int i = 0; i < 2; i++) {
            uint8_t t = salt[i];
            salt[i] = salt[3 - i];
            salt[3 - i] = t;
        }
    rc = -ENOMEM;
    md = EVP_MD_CTX_new();
    cc = EVP_CIPHER_CTX_new();
    /* Fetched once: EVP_md5() would make every one of the 2 x iter initialisations look the
     * digest up in the provider store again (2.5 times slower for keytool's 200,000). */
    md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    if (md == NULL || cc == NULL || md5 == NULL)
        goto out;
    for (int half = 0; half < 2; half++) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 4;
        memcpy(d, salt + 4 * half, 4);
        for (long i = 0; i < iter; i++) {
            unsigned int in = dl;
            if (EVP_DigestInit_ex(md, md5, NULL) != 1 || EVP_DigestUpdate(md, d, in) != 1 ||
                EVP_DigestUpdate(md, password, pwl) != 1 || EVP_DigestFinal_ex(md, d, &dl) != 1)
                goto out;
        }
        memcpy(derived + 16 * half, d, 16);
        OPENSSL_cleanse(d, sizeof(d));
    }
    out = tg_xcalloc(len + 8, 1);
    if (EVP_DecryptInit_ex(cc, EVP_des_ede3_cbc(), NULL, derived, derived + 24) != 1 ||
        EVP_DecryptUpdate(cc, out, &outl, enc, (int)len) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(cc, out + outl, &finl) != 1) {
        rc = -EACCES; /* bad padding: almost always the wrong password */
        goto out;
    }
    *plain = out;
    *plain_len = (size_t)(outl + finl);
    out = NULL;
    rc = 0;
out:
    OPENSSL_cleanse(derived, sizeof(derived));
    EVP_MD_CTX_free(md);
    EVP_MD_free(md5);
    EVP_CIPHER_CTX_free(cc);
    free_bytes(out, len + 8);
    ERR_clear_error();
    return rc;
}

int tg_tls__jks_key(const struct tg_tls__jks_entry *e, const char *password, EVP_PKEY **out,
                    char *why, size_t why_len)
{
    const unsigned char *p = e->key;
    X509_SIG *sig = NULL;
    const X509_ALGOR *alg = NULL;
    const ASN1_OCTET_STRING *data = NULL;
    const ASN1_OBJECT *oid = NULL;
    const void *pval = NULL;
    int ptype = 0, rc = -EINVAL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    PBEPARAM *pbe = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    char oidtxt[80] = "";

    if (e->tag != TG_TLS__JKS_KEY || e->key == NULL || e->key_len > LONG_MAX ||
        (sig = d2i_X509_SIG(NULL, &p, (long)e->key_len)) == NULL) {
        snprintf(why, why_len,
                 "the key of entry \"%s\" is damaged (not an EncryptedPrivateKeyInfo)", e->alias);
        goto out;
    }
    X509_SIG_get0(sig, &alg, &data);
    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    OBJ_obj2txt(oidtxt, sizeof(oidtxt), oid, 1);
    if (strcmp(oidtxt, OID_JKS_KEY_PROTECTOR) == 0) {
        rc = jks_recover(ASN1_STRING_get0_data(data), (size_t)ASN1_STRING_length(data), password,
                         &plain, &plain_len);
    } else if (strcmp(oidtxt, OID_JCEKS_KEY_PROTECTOR) == 0 && ptype == V_ASN1_SEQUENCE) {
        const ASN1_STRING *seq = pval;
        const unsigned char *q = ASN1_STRING_get0_data(seq);
        pbe = d2i_PBEPARAM(NULL, &q, ASN1_STRING_length(seq));
        rc = pbe == NULL
                 ? -EINVAL
                 : jceks_recover(ASN1_STRING_get0_data(data), (size_t)ASN1_STRING_length(data), pbe,
                                 password, &plain, &plain_len);
    } else {
        snprintf(why, why_len,
                 "the key of entry \"%s\" is protected with algorithm %s, which "
                 "tlsgate does not know",
                 e->alias, oidtxt);
        rc = -EINVAL;
        goto out;
    }
    if (rc == -EACCES) {
        snprintf(why, why_len, "cannot decrypt the key of entry \"%s\": wrong key password",
                 e->alias);
        goto out;
    }
    if (rc != 0) {
        snprintf(why, why_len, "the key of entry \"%s\" is damaged", e->alias);
        goto out;
    }
    p = plain;
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)plain_len);
    *out = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
    if (*out == NULL) {
        /* JCEKS has no check value: a wrong password can pass the padding check. */
        snprintf(why, why_len,
                 "cannot decrypt the key of entry \"%s\": wrong key password, or "
                 "the key is damaged",
                 e->alias);
        rc = -EACCES;
        goto out;
    }
    rc = 0;
out:
    PKCS8_PRIV_KEY_INFO_free(p8);
    PBEPARAM_free(pbe);
    X509_SIG_free(sig);
    free_bytes(plain, plain_len);
    ERR_clear_error();
    return rc;
}
