/* TLS names for the config: cipher suites (from the linked OpenSSL's own table), groups, versions.
 */
#include "config/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#include "core/core.h"

#define TLS13_ALL                                                                                  \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"                  \
    "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256"
#define MAX_SUITES 512

/* Suites that distributions often compile out of libssl (Debian's OpenSSL 3 has no 3DES or RC4
 * suites) but that operators still write: knowing them lets a config name them precisely
 * ("not available in this OpenSSL", "insecure") instead of "unknown". Used only for ids the
 * linked OpenSSL does not provide itself. */
static const struct {
    const char *openssl_name, *iana_name;
    uint16_t id;
    const char *insecure_reason; /* NULL: merely legacy (3DES) */
} absent_suites[] = {
    {"DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000A, NULL},
    {"DHE-DSS-DES-CBC3-SHA", "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA", 0x0013, NULL},
    {"DHE-RSA-DES-CBC3-SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", 0x0016, NULL},
    {"ECDHE-ECDSA-DES-CBC3-SHA", "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", 0xC008, NULL},
    {"ECDHE-RSA-DES-CBC3-SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", 0xC012, NULL},
    {"ADH-DES-CBC3-SHA", "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", 0x001B, "without authentication"},
    {"AECDH-DES-CBC3-SHA", "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", 0xC017, "without authentication"},
    {"RC4-MD5", "TLS_RSA_WITH_RC4_128_MD5", 0x0004, "with the broken RC4 cipher"},
    {"RC4-SHA", "TLS_RSA_WITH_RC4_128_SHA", 0x0005, "with the broken RC4 cipher"},
    {"ECDHE-ECDSA-RC4-SHA", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", 0xC007,
     "with the broken RC4 cipher"},
    {"ECDHE-RSA-RC4-SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xC011, "with the broken RC4 cipher"},
    {"ADH-RC4-MD5", "TLS_DH_anon_WITH_RC4_128_MD5", 0x0018, "without authentication"},
    {"DES-CBC-SHA", "TLS_RSA_WITH_DES_CBC_SHA", 0x0009, "with the broken single-DES cipher"},
    {"EXP-RC4-MD5", "TLS_RSA_EXPORT_WITH_RC4_40_MD5", 0x0003, "of export grade (40-bit)"},
    {"EXP-DES-CBC-SHA", "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", 0x0008, "of export grade (40-bit)"},
    {"NULL-MD5", "TLS_RSA_WITH_NULL_MD5", 0x0001, "without encryption"},
    {"NULL-SHA", "TLS_RSA_WITH_NULL_SHA", 0x0002, "without encryption"},
};

static struct tg_cipher_info catalogue[MAX_SUITES];
static size_t n_catalogue;
static pthread_once_t catalogue_once = PTHREAD_ONCE_INIT;

static int version_of(const SSL_CIPHER *c)
{
    const char *v = SSL_CIPHER_get_version(c);
    if (strcmp(v, "TLSv1.3") == 0)
        return TLS1_3_VERSION;
    if (strcmp(v, "TLSv1.2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(v, "TLSv1.1") == 0)
        return TLS1_1_VERSION;
    return TLS1_VERSION; /* "TLSv1.0" and "SSLv3" suites: we never go below TLS 1.0 */
}

/* The suites an SSL would actually offer at a security level (PSK/SRP suites never appear:
 * they need callbacks we do not set). */
static STACK_OF(SSL_CIPHER) * supported_at(SSL_CTX *ctx, int level)
{
    STACK_OF(SSL_CIPHER) *sk = NULL;
    SSL *s = SSL_new(ctx);
    if (s == NULL)
        return NULL;
    SSL_set_security_level(s, level);
    SSL_set_min_proto_version(s, TLS1_VERSION);
    SSL_set_max_proto_version(s, TLS1_3_VERSION);
    sk = SSL_get1_supported_ciphers(s);
    SSL_free(s);
    return sk;
}

static const char *insecure_reason_of(const SSL_CIPHER *c)
{
    if (SSL_CIPHER_get_cipher_nid(c) == NID_undef)
        return "without encryption";
    if (SSL_CIPHER_get_auth_nid(c) == NID_auth_null)
        return "without authentication";
    if (SSL_CIPHER_get_cipher_nid(c) == NID_rc4)
        return "with the broken RC4 cipher";
    return NULL;
}

/* Builds the table once per process from what the linked libssl implements, so names and
 * numbers always agree with the library that will use them. */
static void catalogue_build(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    STACK_OF(SSL_CIPHER) *lvl0 = NULL, *lvl1 = NULL;

    if (ctx == NULL)
        goto out;
    SSL_CTX_set_security_level(ctx, 0);
    if (SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL:@SECLEVEL=0") != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS13_ALL) != 1)
        goto out;
    lvl0 = supported_at(ctx, 0);
    lvl1 = supported_at(ctx, 1);
    STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; all != NULL && i < sk_SSL_CIPHER_num(all) && n_catalogue < MAX_SUITES; i++) {
        const SSL_CIPHER *sc = sk_SSL_CIPHER_value(all, i);
        struct tg_cipher_info *ci = &catalogue[n_catalogue];
        const char *std = SSL_CIPHER_standard_name(sc);
        int alg_bits = 0;

        ci->openssl_name = SSL_CIPHER_get_name(sc);
        ci->iana_name = (std != NULL && strcmp(std, "(NONE)") != 0) ? std : ci->openssl_name;
        ci->id = SSL_CIPHER_get_protocol_id(sc);
        ci->min_version = version_of(sc);
        ci->tls13 = ci->min_version == TLS1_3_VERSION;
        ci->insecure_reason = insecure_reason_of(sc);
        ci->insecure = ci->insecure_reason != NULL;
        ci->available = true;
        /* Legacy = needs security level 0. OpenSSL's own security callback is the judge: a
         * suite offered at level 0 but not at level 1 (OpenSSL's compiled-in default) is legacy.
         * Strength below 128 bits (3DES is rated 112) also counts: level 1 still admits 3DES,
         * but distributions default to level 2 and the Sweet32 attack makes 64-bit-block
         * ciphers a downgrade risk, so policies using it are flagged the same way. */
        bool in0 = lvl0 != NULL && sk_SSL_CIPHER_find(lvl0, sc) >= 0;
        bool in1 = lvl1 != NULL && sk_SSL_CIPHER_find(lvl1, sc) >= 0;
        ci->legacy = (in0 && !in1) || SSL_CIPHER_get_bits(sc, &alg_bits) < 128;
        n_catalogue++;
    }
    for (size_t k = 0; k < TG_ARRAY_SIZE(absent_suites) && n_catalogue < MAX_SUITES; k++) {
        bool have = false;
        for (size_t j = 0; j < n_catalogue && !have; j++)
            have = catalogue[j].id == absent_suites[k].id;
        if (have)
            continue;
        struct tg_cipher_info *ci = &catalogue[n_catalogue++];
        ci->openssl_name = absent_suites[k].openssl_name;
        ci->iana_name = absent_suites[k].iana_name;
        ci->id = absent_suites[k].id;
        ci->min_version = TLS1_VERSION;
        ci->legacy = true;
        ci->insecure_reason = absent_suites[k].insecure_reason;
        ci->insecure = ci->insecure_reason != NULL;
        ci->available = false;
    }
out:
    sk_SSL_CIPHER_free(lvl0);
    sk_SSL_CIPHER_free(lvl1);
    SSL_CTX_free(ctx);
    ERR_clear_error();
}

static void catalogue_init(void)
{
    pthread_once(&catalogue_once, catalogue_build);
}

/* Parses "49199" or "0xC02F" (whole string) into an id. */
static int parse_id(const char *s, uint16_t *out)
{
    unsigned long v = 0;
    int base = 10;
    const char *p = s;

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (*p == '\0')
        return -1;
    for (; *p; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            return -1;
        v = v * (unsigned long)base + (unsigned long)d;
        if (v > 0xFFFF)
            return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

/* True when a equals b case-insensitively, where a's prefix pa may stand for b's prefix pb
 * (Java's "SSL_" for IANA's "TLS_", OpenSSL's old "EDH-" for "DHE-"). */
static bool eq_with_prefix(const char *a, const char *b, const char *pa, const char *pb)
{
    size_t la = strlen(pa), lb = strlen(pb);
    if (!tg_strncaseeq(a, pa, la) || !tg_strncaseeq(b, pb, lb))
        return false;
    return tg_strcaseeq(a + la, b + lb);
}

int tg_cipher_lookup(const char *name, struct tg_cipher_info *out)
{
    uint16_t id;
    bool by_id;

    catalogue_init();
    by_id = parse_id(name, &id) == 0;
    for (size_t i = 0; i < n_catalogue; i++) {
        const struct tg_cipher_info *ci = &catalogue[i];
        bool hit = by_id ? ci->id == id
                         : tg_strcaseeq(name, ci->openssl_name) ||
                               tg_strcaseeq(name, ci->iana_name) ||
                               eq_with_prefix(name, ci->iana_name, "SSL_", "TLS_") ||
                               eq_with_prefix(name, ci->openssl_name, "EDH-", "DHE-");
        if (hit) {
            *out = *ci;
            return 0;
        }
    }
    return -1;
}

static bool far(size_t a, size_t b, size_t limit)
{
    return (a > b ? a - b : b - a) > limit;
}

const char *tg_cipher_suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t len = strlen(name);
    /* Suite names are long and share most of their letters, so allow a few edits more for
     * longer names, but never so many that an unrelated suite is offered. */
    size_t limit = len / 8 < 2 ? 2 : len / 8;

    catalogue_init();
    for (size_t i = 0; i < n_catalogue; i++) {
        const struct tg_cipher_info *ci = &catalogue[i];
        if (ci->insecure)
            continue;
        /* The distance is at least the difference in length: a name more than limit longer or
         * shorter can never be offered, so its table is not computed (the fuzzer spent 40% of
         * its time here, on every unknown name against the whole catalogue). */
        size_t d1 = far(len, strlen(ci->openssl_name), limit)
                        ? (size_t)-1
                        : tg_edit_distance(name, ci->openssl_name);
        size_t d2 = far(len, strlen(ci->iana_name), limit) ? (size_t)-1
                                                           : tg_edit_distance(name, ci->iana_name);
        size_t d = TG_MIN(d1, d2);
        if (d < best_d) {
            best_d = d;
            best = d1 <= d2 ? ci->openssl_name : ci->iana_name;
        }
    }
    return best_d <= limit ? best : NULL;
}

size_t tg_config__cipher_count(void)
{
    catalogue_init();
    return n_catalogue;
}

const struct tg_cipher_info *tg_config__cipher_at(size_t i)
{
    catalogue_init();
    return i < n_catalogue ? &catalogue[i] : NULL;
}

int tg_config__cipher_string_check(const char *s, bool *legacy, const char **insecure_example)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    int n = 0;

    *legacy = false;
    *insecure_example = NULL;
    if (ctx == NULL)
        goto out;
    SSL_CTX_set_security_level(ctx, 0);
    if (SSL_CTX_set_cipher_list(ctx, s) != 1)
        goto out;
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; sk != NULL && i < sk_SSL_CIPHER_num(sk); i++) {
        struct tg_cipher_info ci;
        const SSL_CIPHER *sc = sk_SSL_CIPHER_value(sk, i);
        if (tg_cipher_lookup(SSL_CIPHER_get_name(sc), &ci) != 0 || ci.tls13)
            continue;
        n++;
        /* PSK/SRP suites can never be negotiated here, so they say nothing about the policy. */
        int auth = SSL_CIPHER_get_auth_nid(sc);
        if (auth == NID_auth_psk || auth == NID_auth_srp)
            continue;
        if (ci.insecure && *insecure_example == NULL)
            *insecure_example = ci.openssl_name;
        if (ci.legacy && !ci.insecure)
            *legacy = true;
    }
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return n;
}

static const struct {
    const char *name;  /* as operators write it */
    const char *group; /* OpenSSL group-list spelling */
} curves[] = {
    {"X25519", "X25519"},       {"X448", "X448"},           {"P-256", "P-256"},
    {"prime256v1", "P-256"},    {"secp256r1", "P-256"},     {"P-384", "P-384"},
    {"secp384r1", "P-384"},     {"P-521", "P-521"},         {"secp521r1", "P-521"},
    {"ffdhe2048", "ffdhe2048"}, {"ffdhe3072", "ffdhe3072"}, {"ffdhe4096", "ffdhe4096"},
    {"ffdhe6144", "ffdhe6144"}, {"ffdhe8192", "ffdhe8192"},
};

const char *tg_curve_lookup(const char *name)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(curves); i++)
        if (tg_strcaseeq(name, curves[i].name))
            return curves[i].group;
    return NULL;
}

const char *tg_config__curve_names =
    "X25519, X448, P-256 (prime256v1, secp256r1), P-384 (secp384r1), P-521 (secp521r1), "
    "ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192";

const char *tg_tls_version_name(int version)
{
    switch (version) {
    case TLS1_VERSION:
        return "TLS1.0";
    case TLS1_1_VERSION:
        return "TLS1.1";
    case TLS1_2_VERSION:
        return "TLS1.2";
    case TLS1_3_VERSION:
        return "TLS1.3";
    default:
        return "?";
    }
}

int tg_tls_version_parse(const char *s)
{
    static const struct {
        const char *num;
        int version;
    } v[] = {{"1.0", TLS1_VERSION},
             {"1", TLS1_VERSION},
             {"1.1", TLS1_1_VERSION},
             {"1.2", TLS1_2_VERSION},
             {"1.3", TLS1_3_VERSION}};
    const char *p = s;

    if (tg_strncaseeq(p, "TLSv", 4))
        p += 4;
    else if (tg_strncaseeq(p, "TLS", 3))
        p += 3;
    for (size_t i = 0; i < TG_ARRAY_SIZE(v); i++)
        if (strcmp(p, v[i].num) == 0)
            return v[i].version;
    /* "TLS_1_2", as Java and some tools spell it */
    if (p != s && p[0] == '_' && p[1] == '1' && p[2] == '_' && p[3] >= '0' && p[3] <= '3' &&
        p[4] == '\0')
        return TLS1_VERSION + (p[3] - '0');
    return -1;
}
