/* Secrets sealed to the internal keystore ("enc:" values) and admin password hashes. The
 * scheme is described in docs/secrets.md; every primitive is OpenSSL's. */
#include "tls/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/core.h"
#include "tls/internal.h"

#define ENC_PREFIX  "enc:"
#define ENC_VERSION 1
#define ALG_RSA     1 /* data key wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256) */
#define ALG_ECDH    2 /* data key = HKDF-SHA-256(ECDH(ephemeral, internal key)) */
#define KEYID_LEN   8
#define HEAD_LEN    (2 + KEYID_LEN + 2) /* version, alg, key id, length of the key block */
#define NONCE_LEN   12
#define TAG_LEN     16
#define DK_LEN      32
#define MAX_SECRET  65536
#define HKDF_INFO   "tlsgate enc v1"

/* ---- the internal key ---- */

/* First 8 bytes of SHA-256 over the key's SubjectPublicKeyInfo: names the key a value was made
 * for, so a value for another key is told apart from a damaged one. */
static int key_id(EVP_PKEY *key, uint8_t id[KEYID_LEN])
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    int n = i2d_PUBKEY(key, &der);
    int ok = n > 0 && EVP_Digest(der, (size_t)n, md, &mdl, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    if (ok)
        memcpy(id, md, KEYID_LEN);
    return ok ? 0 : -1;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Loads the internal keystore's key; the first problem's message goes to why. */
static EVP_PKEY *internal_key(const struct tg_keystore_conf *internal, char *why, size_t why_len)
{
    struct tg_tls__keystore ks = {0};
    struct tg_err err;
    EVP_PKEY *key = NULL;
    tg_err_init(&err);
    if (tg_tls__keystore_load_any(internal, &ks, &err) == 0) {
        key = ks.key;
        ks.key = NULL;
    } else {
        for (size_t i = 0; i < err.n; i++)
            if (err.v[i].sev == TG_SEV_ERROR) {
                snprintf(why, why_len, "%s", err.v[i].msg);
                break;
            }
    }
    tg_tls__keystore_close(&ks);
    tg_err_close(&err);
    if (key != NULL) {
        int t = EVP_PKEY_get_base_id(key);
        if (t != EVP_PKEY_RSA && t != EVP_PKEY_EC && t != EVP_PKEY_X25519 && t != EVP_PKEY_X448) {
            snprintf(why, why_len,
                     "the internal keystore holds a %s key, which cannot receive secrets (use an "
                     "RSA or EC key)",
                     tg_tls__key_type(key));
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    return key;
}

/* ---- pieces ---- */

static int hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len,
                uint8_t out[DK_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = kctx != NULL && EVP_KDF_derive(kctx, out, DK_LEN, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

/* ECDH between priv and peer, then HKDF-SHA-256 with info "tlsgate enc v1" || header. */
static int ecdh_key(EVP_PKEY *priv, EVP_PKEY *peer, const uint8_t *head, size_t head_len,
                    uint8_t dk[DK_LEN])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    uint8_t *shared = NULL, *info = NULL;
    size_t slen = 0, ilen = sizeof(HKDF_INFO) - 1 + head_len;
    int rc = -1;
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
        EVP_PKEY_derive(ctx, NULL, &slen) != 1)
        goto out;
    shared = tg_xcalloc(slen ? slen : 1, 1);
    if (EVP_PKEY_derive(ctx, shared, &slen) != 1)
        goto out;
    info = tg_xcalloc(ilen, 1);
    memcpy(info, HKDF_INFO, sizeof(HKDF_INFO) - 1);
    memcpy(info + sizeof(HKDF_INFO) - 1, head, head_len);
    rc = hkdf(shared, slen, info, ilen, dk);
out:
    if (shared != NULL)
        OPENSSL_cleanse(shared, slen);
    free(shared);
    free(info);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static int gcm(bool enc, const uint8_t dk[DK_LEN], const uint8_t nonce[NONCE_LEN],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               uint8_t tag[TAG_LEN])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c != NULL && len <= MAX_SECRET &&
                    EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, dk, nonce, enc ? 1 : 0) == 1 &&
                    EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
                    EVP_CipherUpdate(c, out, &n, in, (int)len) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + n, &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

static int rsa_oaep(bool wrap, EVP_PKEY *key, const uint8_t *in, size_t len, uint8_t *out,
                    size_t *out_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = ctx != NULL && (wrap ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
             (wrap ? EVP_PKEY_encrypt(ctx, out, out_len, in, len)
                   : EVP_PKEY_decrypt(ctx, out, out_len, in, len)) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* ---- seal and open ---- */

int tg_tls_secret_encrypt(const struct tg_keystore_conf *internal, const uint8_t *plain, size_t len,
                          char **out, char *why, size_t why_len)
{
    EVP_PKEY *key = internal_key(internal, why, why_len);
    EVP_PKEY *eph = NULL;
    EVP_PKEY_CTX *kctx = NULL;
    uint8_t dk[DK_LEN], *blob = NULL, *block = NULL;
    size_t block_len = 0, blob_len = 0;
    unsigned char *spki = NULL;
    int rc = -EINVAL;

    if (key == NULL)
        goto out;
    if (len > MAX_SECRET) {
        snprintf(why, why_len, "the secret is longer than %d bytes", MAX_SECRET);
        goto out;
    }
    uint8_t head[HEAD_LEN];
    head[0] = ENC_VERSION;
    head[1] = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA ? ALG_RSA : ALG_ECDH;
    if (key_id(key, head + 2) != 0 || RAND_bytes(dk, sizeof(dk)) != 1)
        goto crypto;
    if (head[1] == ALG_RSA) {
        block_len = (size_t)EVP_PKEY_get_size(key);
        block = tg_xcalloc(block_len, 1);
        if (rsa_oaep(true, key, dk, sizeof(dk), block, &block_len) != 0)
            goto crypto;
    } else {
        kctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (kctx == NULL || EVP_PKEY_keygen_init(kctx) != 1 || EVP_PKEY_keygen(kctx, &eph) != 1)
            goto crypto;
        int n = i2d_PUBKEY(eph, &spki);
        if (n <= 0)
            goto crypto;
        block_len = (size_t)n;
        block = tg_xcalloc(block_len, 1);
        memcpy(block, spki, block_len);
    }
    head[HEAD_LEN - 2] = (uint8_t)(block_len >> 8);
    head[HEAD_LEN - 1] = (uint8_t)block_len;
    blob_len = HEAD_LEN + block_len + NONCE_LEN + len + TAG_LEN;
    blob = tg_xcalloc(blob_len, 1);
    memcpy(blob, head, HEAD_LEN);
    memcpy(blob + HEAD_LEN, block, block_len);
    size_t aad_len = HEAD_LEN + block_len;
    uint8_t *nonce = blob + aad_len, *ct = nonce + NONCE_LEN, *tag = ct + len;
    if (head[1] == ALG_ECDH && ecdh_key(eph, key, blob, aad_len, dk) != 0)
        goto crypto;
    if (RAND_bytes(nonce, NONCE_LEN) != 1 ||
        gcm(true, dk, nonce, blob, aad_len, plain, len, ct, tag) != 0)
        goto crypto;
    size_t b64_len = 4 * ((blob_len + 2) / 3);
    *out = tg_xcalloc(sizeof(ENC_PREFIX) + b64_len + 1, 1);
    memcpy(*out, ENC_PREFIX, sizeof(ENC_PREFIX) - 1);
    EVP_EncodeBlock((unsigned char *)*out + sizeof(ENC_PREFIX) - 1, blob, (int)blob_len);
    rc = 0;
    goto out;
crypto:
    tg_tls__openssl_reason(why, why_len);
out:
    OPENSSL_cleanse(dk, sizeof(dk));
    free(blob);
    free(block);
    OPENSSL_free(spki);
    EVP_PKEY_CTX_free(kctx);
    EVP_PKEY_free(eph);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

/* base64 without whitespace into a new buffer; -1 if malformed. */
static int unbase64(const char *s, uint8_t **out, size_t *out_len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0 || n > 4 * (MAX_SECRET + 4096))
        return -1;
    uint8_t *buf = tg_xcalloc(n, 1);
    int len = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    if (len < 0) {
        free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts padding as zero bytes. */
    size_t pad = (s[n - 1] == '=') + (s[n - 2] == '=');
    *out = buf;
    *out_len = (size_t)len - pad;
    return 0;
}

/* The blob of an "enc:" value, its header checked; a new buffer, or -EINVAL with why. */
static int value_blob(const char *value, uint8_t **blob, size_t *blob_len, char *why,
                      size_t why_len)
{
    if (strncmp(value, ENC_PREFIX, sizeof(ENC_PREFIX) - 1) != 0 ||
        unbase64(value + sizeof(ENC_PREFIX) - 1, blob, blob_len) != 0 ||
        *blob_len < HEAD_LEN + NONCE_LEN + TAG_LEN) {
        snprintf(why, why_len,
                 "not an \"enc:\" value made by `tlsgate secret encrypt` (damaged "
                 "or cut short)");
        goto bad;
    }
    const uint8_t *b = *blob;
    if (b[0] != ENC_VERSION || (b[1] != ALG_RSA && b[1] != ALG_ECDH)) {
        snprintf(why, why_len, "unknown \"enc:\" format %u.%u (made by a newer tlsgate?)", b[0],
                 b[1]);
        goto bad;
    }
    size_t block_len = (size_t)b[HEAD_LEN - 2] << 8 | b[HEAD_LEN - 1];
    if (*blob_len < HEAD_LEN + block_len + NONCE_LEN + TAG_LEN) {
        snprintf(why, why_len, "the \"enc:\" value is damaged or cut short");
        goto bad;
    }
    return 0;
bad:
    free(*blob);
    *blob = NULL;
    return -EINVAL;
}

/* Opens a checked blob with the internal key. */
static int open_blob(EVP_PKEY *key, const uint8_t *blob, size_t blob_len, char **plain,
                     size_t *plain_len, char *why, size_t why_len)
{
    uint8_t *pt = NULL, dk[DK_LEN], id[KEYID_LEN];
    EVP_PKEY *peer = NULL;
    int rc = -EINVAL;
    size_t block_len = (size_t)blob[HEAD_LEN - 2] << 8 | blob[HEAD_LEN - 1];
    size_t ct_len = 0;

    if (key_id(key, id) != 0) {
        tg_tls__openssl_reason(why, why_len);
        goto out;
    }
    if (CRYPTO_memcmp(id, blob + 2, KEYID_LEN) != 0) {
        char want[2 * KEYID_LEN + 1], have[2 * KEYID_LEN + 1];
        hex(blob + 2, KEYID_LEN, want);
        hex(id, KEYID_LEN, have);
        snprintf(why, why_len,
                 "it was encrypted for another internal key (key id %s; the internal keystore "
                 "holds key id %s)",
                 want, have);
        goto out;
    }
    const uint8_t *block = blob + HEAD_LEN;
    size_t aad_len = HEAD_LEN + block_len;
    const uint8_t *nonce = blob + aad_len, *ct = nonce + NONCE_LEN;
    ct_len = blob_len - aad_len - NONCE_LEN - TAG_LEN;
    uint8_t tag[TAG_LEN];
    memcpy(tag, ct + ct_len, TAG_LEN);
    bool is_rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    if (is_rsa != (blob[1] == ALG_RSA))
        goto altered;
    if (is_rsa) {
        uint8_t tmp[1024];
        size_t tl = sizeof(tmp);
        if ((size_t)EVP_PKEY_get_size(key) > sizeof(tmp) ||
            rsa_oaep(false, key, block, block_len, tmp, &tl) != 0 || tl != DK_LEN) {
            OPENSSL_cleanse(tmp, sizeof(tmp));
            goto altered;
        }
        memcpy(dk, tmp, DK_LEN);
        OPENSSL_cleanse(tmp, sizeof(tmp));
    } else {
        const unsigned char *p = block;
        peer = d2i_PUBKEY(NULL, &p, (long)block_len);
        if (peer == NULL || ecdh_key(key, peer, blob, aad_len, dk) != 0)
            goto altered;
    }
    pt = tg_xcalloc(ct_len + 1, 1);
    if (gcm(false, dk, nonce, blob, aad_len, ct, ct_len, pt, tag) != 0)
        goto altered;
    *plain = (char *)pt;
    *plain_len = ct_len;
    pt = NULL;
    rc = 0;
    goto out;
altered:
    snprintf(why, why_len,
             "the value does not authenticate: it was altered, or made for "
             "another key");
out:
    OPENSSL_cleanse(dk, sizeof(dk));
    if (pt != NULL)
        OPENSSL_cleanse(pt, ct_len + 1);
    free(pt);
    EVP_PKEY_free(peer);
    ERR_clear_error();
    return rc;
}

int tg_tls__secret_open(EVP_PKEY *key, const char *value, char **plain, size_t *plain_len,
                        char *why, size_t why_len)
{
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (value_blob(value, &blob, &blob_len, why, why_len) != 0)
        return -EINVAL;
    int rc = open_blob(key, blob, blob_len, plain, plain_len, why, why_len);
    free(blob);
    return rc;
}

int tg_tls_secret_decrypt(const struct tg_keystore_conf *internal, const char *value, char **plain,
                          size_t *plain_len, char *why, size_t why_len)
{
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    EVP_PKEY *key = NULL;
    int rc = -EINVAL;
    /* The value's own damage first, then the keystore's. */
    if (value_blob(value, &blob, &blob_len, why, why_len) != 0)
        goto out;
    if ((key = internal_key(internal, why, why_len)) == NULL)
        goto out;
    rc = open_blob(key, blob, blob_len, plain, plain_len, why, why_len);
out:
    free(blob);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

static int open_cb(const struct tg_keystore_conf *internal, const char *value, char **plain,
                   char *why, size_t why_len)
{
    size_t len = 0;
    char *p = NULL;
    if (tg_tls_secret_decrypt(internal, value, &p, &len, why, why_len) != 0)
        return -1;
    if (memchr(p, '\0', len) != NULL) {
        OPENSSL_cleanse(p, len);
        free(p);
        snprintf(why, why_len, "the decrypted value holds a NUL byte and cannot be a password");
        return -1;
    }
    *plain = p;
    return 0;
}

void tg_tls_secrets_init(void)
{
    tg_config_set_secret_opener(open_cb);
}

/* ---- admin password hashes ---- */

#define SCRYPT_LN   15
#define SCRYPT_R    8
#define SCRYPT_P    1
#define SALT_LEN    16
#define HASH_LEN    32
#define PBKDF2_ITER 600000

static int scrypt(const char *pw, size_t len, const uint8_t *salt, size_t salt_len, unsigned ln,
                  unsigned r, unsigned p, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    uint64_t n = (uint64_t)1 << ln;
    uint32_t rr = r, pp = p;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp),
        OSSL_PARAM_construct_end(),
    };
    int ok = kctx != NULL && EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    ERR_clear_error();
    return ok ? 0 : -1;
}

/* Unpadded standard base64 (as PHC strings use). */
static void b64_nopad(const uint8_t *p, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
}

static int b64_nopad_decode(const char *s, size_t n, uint8_t *out, size_t max, size_t *out_len)
{
    char buf[128];
    if (n == 0 || n + 3 >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    size_t pad = (4 - n % 4) % 4;
    if (pad == 3)
        return -1;
    memset(buf + n, '=', pad);
    buf[n + pad] = '\0';
    uint8_t tmp[128];
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)buf, (int)(n + pad));
    if (len < 0 || (size_t)len - pad > max)
        return -1;
    *out_len = (size_t)len - pad;
    memcpy(out, tmp, *out_len);
    return 0;
}

int tg_tls_password_hash(const char *pw, size_t len, char **out)
{
    uint8_t salt[SALT_LEN], hash[HASH_LEN];
    char s64[SALT_LEN * 2], h64[HASH_LEN * 2];
    if (RAND_bytes(salt, sizeof(salt)) != 1 ||
        scrypt(pw, len, salt, sizeof(salt), SCRYPT_LN, SCRYPT_R, SCRYPT_P, hash, sizeof(hash)) !=
            0) {
        ERR_clear_error();
        return -EINVAL;
    }
    b64_nopad(salt, sizeof(salt), s64);
    b64_nopad(hash, sizeof(hash), h64);
    *out = tg_xasprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", SCRYPT_LN, SCRYPT_R, SCRYPT_P, s64, h64);
    OPENSSL_cleanse(hash, sizeof(hash));
    return 0;
}

static bool parse_uint(const char **p, const char *key, unsigned long max, unsigned long *v)
{
    size_t kl = strlen(key);
    if (strncmp(*p, key, kl) != 0)
        return false;
    const char *s = *p + kl;
    unsigned long n = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        n = n * 10 + (unsigned long)(*s - '0');
        if (n > max)
            return false;
        s++;
    }
    *v = n;
    *p = s;
    return true;
}

int tg_tls_password_verify(const char *stored, const char *pw, size_t len)
{
    uint8_t salt[64], want[64], got[64];
    size_t salt_len = 0, want_len = 0;
    unsigned long ln = 0, r = 0, p = 0, iter = 0;
    const char *s = stored;
    bool is_scrypt = strncmp(s, "$scrypt$", 8) == 0;
    bool is_pbkdf2 = strncmp(s, "$pbkdf2-sha256$", 15) == 0;
    if (is_scrypt) {
        s += 8;
        if (!parse_uint(&s, "ln=", 20, &ln) || *s++ != ',' || !parse_uint(&s, "r=", 32, &r) ||
            *s++ != ',' || !parse_uint(&s, "p=", 16, &p) || ln < 1 || r < 1 || p < 1)
            return -EINVAL;
    } else if (is_pbkdf2) {
        s += 15;
        if (!parse_uint(&s, "i=", 100000000, &iter) || iter < 1)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (*s++ != '$')
        return -EINVAL;
    const char *dollar = strchr(s, '$');
    if (dollar == NULL ||
        b64_nopad_decode(s, (size_t)(dollar - s), salt, sizeof(salt), &salt_len) != 0 ||
        b64_nopad_decode(dollar + 1, strlen(dollar + 1), want, sizeof(want), &want_len) != 0 ||
        want_len < 16)
        return -EINVAL;
    int ok;
    if (is_scrypt)
        ok = scrypt(pw, len, salt, salt_len, (unsigned)ln, (unsigned)r, (unsigned)p, got,
                    want_len) == 0;
    else
        ok = PKCS5_PBKDF2_HMAC(pw, (int)len, salt, (int)salt_len, (int)iter, EVP_sha256(),
                               (int)want_len, got) == 1;
    ERR_clear_error();
    int rc = ok ? (CRYPTO_memcmp(got, want, want_len) == 0 ? 0 : -EACCES) : -EINVAL;
    OPENSSL_cleanse(got, sizeof(got));
    return rc;
}
