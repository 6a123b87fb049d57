/* The "tls" objects of listeners and backends: versions, suites, groups, ALPN, and for backends
 * trust, names and pins, checked and resolved for OpenSSL. */
#include "config/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "core/core.h"

#define DEFAULT_CIPHERSUITES                                                                       \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEFAULT_CIPHER_LIST                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define VERSIONS_ALLOWED "TLS1.0 to TLS1.3"
#define SUITES_TYPE      "a list of suite names or numbers, or one OpenSSL cipher string"
#define SUITES_DEFAULT                                                                             \
    "TLS 1.3: AES-128-GCM, AES-256-GCM, CHACHA20; TLS 1.2: ECDHE with AES-GCM or CHACHA20"

const struct tg_config__key tg_config__tls_keys[] = {
    {"disabled", TG_J_BOOL, "true or false", "false", NULL, 0},
    {"certificates", TG_J_ARR, "a list of keystore names", NULL,
     "names in keystores; required unless disabled", 0},
    {"min_version", TG_J_STR, "a string", "\"TLS1.3\"", VERSIONS_ALLOWED, 0},
    {"max_version", TG_J_STR, "a string", "\"TLS1.3\"", VERSIONS_ALLOWED, 0},
    {"cipher_suites", TG_J_ARR | TG_J_STR, SUITES_TYPE, SUITES_DEFAULT, NULL, 0},
    {"curves", TG_J_ARR, "a list of group names", "OpenSSL's default", NULL, 0},
    {"alpn", TG_J_ARR, "a list of protocol ids", "[\"h2\", \"http/1.1\"] (http), none (tcp)",
     "h2, http/1.1", 0},
    {"session_resumption", TG_J_BOOL, "true or false", "true", NULL, 0},
    {"client_auth", TG_J_OBJ, "an object", "{\"mode\": \"none\"}", "see client_auth", 0},
    {"ocsp_stapling", TG_J_OBJ, "an object", "off", "{\"file\": F} or {\"fetch\": true}", 0},
    {"early_data", TG_J_BOOL, "true or false", "false",
     "true only with TLS 1.3, session_resumption and no client_auth (0-RTT: safe methods only)", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

const struct tg_config__key tg_config__backend_tls_keys[] = {
    {"truststore", TG_J_STR, "a string (truststore name)", "system (OpenSSL's default paths)",
     "a name in truststores, or \"system\"", 0},
    {"verify", TG_J_BOOL, "true or false", "true", "false only with allow_insecure", 0},
    {"server_name", TG_J_STR, "a string", "each target's host", "a DNS name or an IP address", 0},
    {"client_certificate", TG_J_STR, "a string (keystore name)", "none", "a name in keystores", 0},
    {"min_version", TG_J_STR, "a string", "\"TLS1.2\"", VERSIONS_ALLOWED, 0},
    {"max_version", TG_J_STR, "a string", "\"TLS1.3\"", VERSIONS_ALLOWED, 0},
    {"cipher_suites", TG_J_ARR | TG_J_STR, SUITES_TYPE, SUITES_DEFAULT, NULL, 0},
    {"curves", TG_J_ARR, "a list of group names", "OpenSSL's default", NULL, 0},
    {"pin", TG_J_ARR, "a list of SPKI SHA-256 pins", "none",
     "base64 of a 32-byte digest, optionally prefixed \"sha256/\"", 0},
    {"alpn", TG_J_ARR, "a list of protocol ids", "none", "1 to 255 bytes each", 0},
    {"allow_insecure", TG_J_BOOL, "true or false", "false", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* The version, suite and group part of a "tls" object, which listeners and backends share. */
struct policy {
    int min_version, max_version;
    char *ciphersuites, *cipher_list; /* owned */
    bool cipher_string, legacy;
    char *curves; /* owned; NULL = OpenSSL's default */
};

/* A growing ':'-joined list. */
struct joined {
    char *s;
    size_t n, cap;
    size_t count;
};

static void join_add(struct joined *j, const char *item)
{
    size_t il = strlen(item);
    if (j->n + il + 2 > j->cap) {
        j->cap = (j->n + il + 2) * 2;
        j->s = tg_xrealloc(j->s, j->cap);
    }
    if (j->count++ > 0)
        j->s[j->n++] = ':';
    memcpy(j->s + j->n, item, il);
    j->n += il;
    j->s[j->n] = '\0';
}

/* The joined string (never NULL; "" when empty), handing ownership to the caller. */
static char *join_take(struct joined *j)
{
    char *s = j->s != NULL ? j->s : tg_xstrdup("");
    memset(j, 0, sizeof(*j));
    return s;
}

static int parse_version(struct tg_config__ctx *c, json_t *v, const char *tls_ptr, const char *key,
                         int def)
{
    if (v == NULL)
        return def;
    const char *s = json_string_value(v);
    char *p = tg_config__ptr_join(tls_ptr, key);
    int ver = tg_tls_version_parse(s);
    if (ver < 0) {
        if (tg_strncaseeq(s, "SSL", 3))
            tg_config__error(c, p,
                             "\"%s\": SSLv3 and SSLv2 are not supported, they are broken "
                             "(allowed: " VERSIONS_ALLOWED ")",
                             s);
        else
            tg_config__error(c, p, "\"%s\" is not a TLS version (allowed: " VERSIONS_ALLOWED ")",
                             s);
    }
    free(p);
    return ver;
}

struct suites_state {
    struct joined v13, v12;
    struct joined unused13, unused12, legacy;
    bool bad;
};

static void suite_entry(struct tg_config__ctx *c, json_t *e, const char *ptr,
                        const struct policy *tc, struct suites_state *st)
{
    char num[24];
    const char *name;
    struct tg_cipher_info ci;

    if (json_is_integer(e)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(e));
        name = num;
    } else if (json_is_string(e)) {
        name = json_string_value(e);
    } else {
        tg_config__error(c, ptr, "must be a suite name or number (got %s)",
                         tg_config__json_type_words(e));
        st->bad = true;
        return;
    }
    if (tg_cipher_lookup(name, &ci) != 0) {
        const char *best = tg_cipher_suggest(name);
        if (best != NULL)
            tg_config__error(c, ptr, "unknown cipher suite \"%s\" (did you mean \"%s\"?)", name,
                             best);
        else
            tg_config__error(c, ptr,
                             "unknown cipher suite \"%s\" (use OpenSSL, IANA or Java names, or "
                             "IANA numbers such as 49199)",
                             name);
        st->bad = true;
        return;
    }
    if (ci.insecure) {
        tg_config__error(c, ptr, "\"%s\" is an insecure suite %s; not allowed", name,
                         ci.insecure_reason);
        st->bad = true;
        return;
    }
    if (!ci.available) {
        tg_config__warning(c, ptr,
                           "\"%s\" (%s) is not available in the linked %s; it will never be "
                           "offered",
                           name, ci.openssl_name, OpenSSL_version(OPENSSL_VERSION));
        return;
    }
    if (ci.tls13) {
        join_add(&st->v13, ci.openssl_name);
        if (tc->max_version < TLS1_3_VERSION)
            join_add(&st->unused13, ci.openssl_name);
        return;
    }
    join_add(&st->v12, ci.openssl_name);
    if (tc->min_version >= TLS1_3_VERSION || ci.min_version > tc->max_version)
        join_add(&st->unused12, ci.openssl_name);
    if (ci.legacy)
        join_add(&st->legacy, ci.openssl_name);
}

/* cipher_suites: a list (resolved one by one) or one OpenSSL cipher string. Adds to *why_legacy
 * the suites that need security level 0. */
static void parse_suites(struct tg_config__ctx *c, json_t *v, const char *tls_ptr,
                         struct policy *tc, struct joined *why_legacy)
{
    char *ptr = tg_config__ptr_join(tls_ptr, "cipher_suites");
    struct suites_state st = {0};

    if (json_is_string(v)) {
        bool legacy = false;
        const char *insecure = NULL;
        const char *s = json_string_value(v);
        if (tg_config__cipher_string_check(s, &legacy, &insecure) == 0) {
            tg_config__error(c, ptr, "cipher string \"%s\" selects no TLS 1.2 suite", s);
        } else {
            tc->cipher_string = true;
            free(tc->cipher_list);
            tc->cipher_list = tg_xstrdup(s);
            if (legacy)
                join_add(why_legacy, "legacy suites of the cipher string");
            /* At security level 0 OpenSSL would really offer them, so say so. */
            if (insecure != NULL && (legacy || tc->min_version < TLS1_2_VERSION))
                tg_config__warning(c, ptr,
                                   "cipher string selects insecure suites such as %s; add "
                                   "\":!aNULL:!eNULL\"",
                                   insecure);
        }
        goto out;
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        tg_config__error(c, ptr, "must name at least one suite");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char *ep = tg_config__ptr_index(ptr, i);
        suite_entry(c, json_array_get(v, i), ep, tc, &st);
        free(ep);
    }
    if (!st.bad && st.v12.count == 0 && tc->min_version <= TLS1_2_VERSION)
        tg_config__error(c, ptr,
                         "cipher_suites names no TLS 1.2 suite but min_version allows %s: add "
                         "one or set min_version to TLS1.3",
                         tg_tls_version_name(tc->min_version));
    if (!st.bad && st.v13.count == 0 && tc->max_version == TLS1_3_VERSION)
        tg_config__error(c, ptr,
                         "cipher_suites names no TLS 1.3 suite but max_version allows TLS1.3: "
                         "add one or set max_version to TLS1.2");
    if (st.unused13.count > 0)
        tg_config__warning(c, ptr, "TLS 1.3 suites %s will never be used: max_version is %s",
                           st.unused13.s, tg_tls_version_name(tc->max_version));
    if (st.unused12.count > 0)
        tg_config__warning(c, ptr,
                           "suites %s will never be used with min_version %s and "
                           "max_version %s",
                           st.unused12.s, tg_tls_version_name(tc->min_version),
                           tg_tls_version_name(tc->max_version));
    if (st.legacy.count > 0)
        join_add(why_legacy, st.legacy.s);
    free(tc->ciphersuites);
    tc->ciphersuites = join_take(&st.v13);
    free(tc->cipher_list);
    tc->cipher_list = join_take(&st.v12);
out:
    free(st.v13.s);
    free(st.v12.s);
    free(st.unused13.s);
    free(st.unused12.s);
    free(st.legacy.s);
    free(ptr);
}

static void parse_certificates(struct tg_config__ctx *c, json_t *tls, const char *tls_ptr,
                               struct tg_tls_conf *tc)
{
    const struct tg_config *cfg = c->cfg;
    json_t *v = tg_config__get(tls, tg_config__tls_keys, "certificates");

    if (json_object_get(tls, "certificates") == NULL) {
        tg_config__error(c, tls_ptr,
                         "missing required key \"certificates\" (a list of keystore names; or "
                         "set \"disabled\": true to serve plaintext)");
        return;
    }
    if (v == NULL)
        return;
    char *ptr = tg_config__ptr_join(tls_ptr, "certificates");
    size_t n = json_array_size(v);
    if (n == 0)
        tg_config__error(c, ptr, "must name at least one keystore");
    tc->certificates = tg_xcalloc(n + 1, sizeof(*tc->certificates));
    tc->certificate_idx = tg_xcalloc(n + 1, sizeof(*tc->certificate_idx));
    tc->certificate_locs = tg_xcalloc(n + 1, sizeof(*tc->certificate_locs));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char *ep = tg_config__ptr_index(ptr, i);
        if (!json_is_string(e)) {
            tg_config__error(c, ep, "must be a keystore name (got %s)",
                             tg_config__json_type_words(e));
            free(ep);
            continue;
        }
        const char *name = json_string_value(e);
        size_t k = tc->n_certificates++;
        tc->certificates[k] = tg_xstrdup(name);
        tg_config__loc(c, ep, &tc->certificate_locs[k]);
        bool found = false;
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t j = 0; j < cfg->n_keystores && !found; j++) {
            const char *kn = cfg->keystores[j].name;
            size_t d = tg_edit_distance(name, kn);
            found = strcmp(kn, name) == 0;
            tc->certificate_idx[k] = j;
            if (d < best_d && d < strlen(kn)) {
                best_d = d;
                best = kn;
            }
        }
        if (!found && best != NULL)
            tg_config__error(c, ep, "keystore \"%s\" is not defined (did you mean \"%s\"?)", name,
                             best);
        else if (!found)
            tg_config__error(c, ep, "keystore \"%s\" is not defined in \"keystores\"", name);
        free(ep);
    }
    free(ptr);
}

static void parse_curves(struct tg_config__ctx *c, json_t *v, const char *tls_ptr,
                         struct policy *tc)
{
    char *ptr = tg_config__ptr_join(tls_ptr, "curves");
    struct joined j = {0};
    size_t n = json_array_size(v);
    bool bad = false;

    if (n == 0)
        tg_config__error(c, ptr, "must name at least one group (or leave \"curves\" out)");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char *ep = tg_config__ptr_index(ptr, i);
        const char *g = json_is_string(e) ? tg_curve_lookup(json_string_value(e)) : NULL;
        if (!json_is_string(e))
            tg_config__error(c, ep, "must be a group name (got %s)", tg_config__json_type_words(e));
        else if (g == NULL)
            tg_config__error(c, ep, "\"%s\" is not a known group (allowed: %s)",
                             json_string_value(e), tg_config__curve_names);
        if (g == NULL)
            bad = true;
        else
            join_add(&j, g);
        free(ep);
    }
    if (!bad && n > 0)
        tc->curves = join_take(&j);
    free(j.s);
    free(ptr);
}

static void parse_alpn(struct tg_config__ctx *c, json_t *v, const char *tls_ptr,
                       struct tg_tls_conf *tc)
{
    char *ptr = tg_config__ptr_join(tls_ptr, "alpn");
    size_t n = json_array_size(v);

    if (n == 0) {
        tg_config__error(c, ptr, "must name at least one protocol (allowed: h2, http/1.1)");
        goto out;
    }
    for (size_t i = 0; i < tc->n_alpn; i++)
        free(tc->alpn[i]);
    tc->n_alpn = 0;
    tc->alpn = tg_xrealloc(tc->alpn, n * sizeof(*tc->alpn));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char *ep = tg_config__ptr_index(ptr, i);
        if (!json_is_string(e))
            tg_config__error(c, ep, "must be a protocol id (got %s)",
                             tg_config__json_type_words(e));
        else if (strcmp(json_string_value(e), "h2") != 0 &&
                 strcmp(json_string_value(e), "http/1.1") != 0)
            tg_config__error(c, ep,
                             "\"%s\" is not a supported ALPN protocol (allowed: h2, http/1.1)",
                             json_string_value(e));
        else
            tc->alpn[tc->n_alpn++] = tg_xstrdup(json_string_value(e));
        free(ep);
    }
out:
    free(ptr);
}

/* Versions, suites and groups of a "tls" object into p, which holds the defaults on entry.
 * peers names the other side in warnings ("clients", "backends"). */
static void parse_policy(struct tg_config__ctx *c, json_t *tls, const struct tg_config__key *tab,
                         const char *tls_ptr, const char *peers, struct policy *p)
{
    struct joined why_legacy = {0};
    int min = parse_version(c, tg_config__get(tls, tab, "min_version"), tls_ptr, "min_version",
                            p->min_version);
    int max = parse_version(c, tg_config__get(tls, tab, "max_version"), tls_ptr, "max_version",
                            p->max_version);
    if (min > 0 && max > 0 && min > max) {
        char *ptr = tg_config__ptr_join(tls_ptr, "min_version");
        tg_config__error(c, ptr, "min_version %s is above max_version %s", tg_tls_version_name(min),
                         tg_tls_version_name(max));
        free(ptr);
    }
    /* With a bad version, check the suites against the default rather than not at all. */
    if (min > 0)
        p->min_version = min;
    if (max > 0)
        p->max_version = max;
    if (p->min_version > p->max_version)
        p->min_version = p->max_version;
    if (p->min_version < TLS1_2_VERSION)
        join_add(&why_legacy, tg_tls_version_name(p->min_version));
    json_t *v = tg_config__get(tls, tab, "cipher_suites");
    if (v != NULL)
        parse_suites(c, v, tls_ptr, p, &why_legacy);
    else if (p->min_version < TLS1_2_VERSION)
        tg_config__warning(c, tls_ptr,
                           "the default suites all need TLS1.2, so %s %s will find none in "
                           "common: list cipher_suites such as ECDHE-RSA-AES128-SHA",
                           tg_tls_version_name(p->min_version), peers);
    v = tg_config__get(tls, tab, "curves");
    if (v != NULL)
        parse_curves(c, v, tls_ptr, p);
    if (why_legacy.count > 0) {
        p->legacy = true;
        for (char *q = why_legacy.s; *q; q++)
            if (*q == ':')
                *q = ',';
        tg_config__warning(c, tls_ptr,
                           "legacy policy: %s needs OpenSSL security level 0; %s can be "
                           "downgraded to weak cryptography",
                           why_legacy.s, peers);
    }
    free(why_legacy.s);
}

/* TLS 1.3 0-RTT (early_data: true): a request in early data may be a replay, so only what a
 * resumed TLS 1.3 session carries may be sent early, and never under client certificates (the
 * request would be served before the client's Finished, on an identity only the ticket claims). */
static void parse_early_data(struct tg_config__ctx *c, struct tg_tls_conf *tc)
{
    char *p = tg_config__ptr_join(tc->path, "early_data");
    if (tc->max_version > 0 && tc->max_version < TLS1_3_VERSION)
        tg_config__error(c, p, "early data (0-RTT) is TLS 1.3 only: max_version must be TLS1.3");
    else if (!tc->session_resumption)
        tg_config__error(c, p,
                         "early data (0-RTT) needs session_resumption: it is sent on a "
                         "resumed session only");
    else if (tc->client_auth.mode != TG_CAUTH_NONE)
        tg_config__error(c, p,
                         "early data (0-RTT) is refused with client_auth: a request would be "
                         "served before the client's certificate is confirmed by its Finished");
    else
        tc->early_data = true;
    free(p);
}

void tg_config__parse_tls(struct tg_config__ctx *c, json_t *tls, const char *listener_ptr,
                          struct tg_tls_conf *tc)
{
    json_t *v;

    tc->min_version = TLS1_3_VERSION;
    tc->max_version = TLS1_3_VERSION;
    tc->ciphersuites = tg_xstrdup(DEFAULT_CIPHERSUITES);
    tc->cipher_list = tg_xstrdup(DEFAULT_CIPHER_LIST);
    tc->session_resumption = true;
    tc->alpn = tg_xcalloc(2, sizeof(*tc->alpn));
    tc->alpn[0] = tg_xstrdup("h2");
    tc->alpn[1] = tg_xstrdup("http/1.1");
    tc->n_alpn = 2;
    if (tls == NULL) {
        tc->path = tg_xstrdup(listener_ptr);
        tg_config__loc(c, tc->path, &tc->loc);
        tg_config__error(c, listener_ptr,
                         "tls is required (set \"disabled\": true to serve plaintext)");
        return;
    }
    tc->path = tg_config__ptr_join(listener_ptr, "tls");
    tg_config__loc(c, tc->path, &tc->loc);
    if (!json_is_object(tls))
        return;
    tg_config__check_keys(c, tls, tc->path, tg_config__tls_keys);
    v = tg_config__get(tls, tg_config__tls_keys, "disabled");
    if (v != NULL && json_is_true(v)) {
        tc->disabled = true;
        if (json_object_size(tls) > 1)
            tg_config__warning(c, tc->path,
                               "the other tls settings are ignored: \"disabled\" is true");
        return;
    }
    parse_certificates(c, tls, tc->path, tc);
    struct policy p = {
        tc->min_version, tc->max_version, tc->ciphersuites, tc->cipher_list, false, false, NULL};
    parse_policy(c, tls, tg_config__tls_keys, tc->path, "clients", &p);
    tc->min_version = p.min_version;
    tc->max_version = p.max_version;
    tc->ciphersuites = p.ciphersuites;
    tc->cipher_list = p.cipher_list;
    tc->cipher_string = p.cipher_string;
    tc->legacy = p.legacy;
    tc->curves = p.curves;
    v = tg_config__get(tls, tg_config__tls_keys, "alpn");
    if (v != NULL)
        parse_alpn(c, v, tc->path, tc);
    v = tg_config__get(tls, tg_config__tls_keys, "session_resumption");
    if (v != NULL)
        tc->session_resumption = json_is_true(v);
    tg_config__parse_client_auth(c, tg_config__get(tls, tg_config__tls_keys, "client_auth"),
                                 tc->path, &tc->client_auth);
    tg_config__parse_ocsp(c, tg_config__get(tls, tg_config__tls_keys, "ocsp_stapling"), tc->path,
                          &tc->ocsp);
    v = tg_config__get(tls, tg_config__tls_keys, "early_data");
    if (v != NULL && json_is_true(v))
        parse_early_data(c, tc);
}

void tg_config__tls_conf_free(struct tg_tls_conf *tc)
{
    free(tc->path);
    for (size_t i = 0; i < tc->n_certificates; i++)
        free(tc->certificates[i]);
    free(tc->certificates);
    free(tc->certificate_idx);
    free(tc->certificate_locs);
    free(tc->ciphersuites);
    free(tc->cipher_list);
    free(tc->curves);
    for (size_t i = 0; i < tc->n_alpn; i++)
        free(tc->alpn[i]);
    free(tc->alpn);
    tg_config__client_auth_free(&tc->client_auth);
    free(tc->ocsp.file);
    free(tc->ocsp.path);
}

/* ---- backend TLS ---- */

/* Finds name among n names (what says "keystore" or "truststore"); reports an unknown one at ptr
 * with a did-you-mean. Returns its index, or -1. */
static long lookup_name(struct tg_config__ctx *c, const char *what, const char *name,
                        const char *const *names, size_t n, const char *ptr)
{
    for (size_t i = 0; i < n; i++) {
        if (names[i] != NULL && strcmp(names[i], name) == 0)
            return (long)i;
    }
    const char *best = tg_config__closest(name, names, n);
    if (best != NULL)
        tg_config__error(c, ptr, "%s \"%s\" is not defined (did you mean \"%s\"?)", what, name,
                         best);
    else
        tg_config__error(c, ptr, "%s \"%s\" is not defined in \"%ss\"", what, name, what);
    return -1;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A DNS name: dot-separated labels of letters, digits, '-' and '_' (no wildcard). */
static bool is_dns_name(const char *s)
{
    size_t label = 0;
    if (*s == '\0' || strlen(s) > 253)
        return false;
    for (; *s; s++) {
        if (*s == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_') ||
            ++label > 63)
            return false;
    }
    return label > 0;
}

static bool is_hex_fingerprint(const char *s)
{
    size_t hex = 0;
    for (; *s; s++) {
        if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))
            hex++;
        else if (*s != ':')
            return false;
    }
    return hex == 64;
}

/* "sha256/<base64>" or "<base64>" of a 32-byte digest, as HPKP (RFC 7469) and curl write pins. */
static int pin_decode(const char *s, uint8_t out[32])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char buf[33];

    if (tg_strncaseeq(s, "sha256/", 7))
        s += 7;
    /* 32 bytes are 43 base64 characters and one '='. */
    if (strlen(s) != 44 || s[43] != '=')
        return -1;
    for (size_t i = 0; i < 43; i++)
        if (s[i] == '\0' || strchr(b64, s[i]) == NULL)
            return -1;
    if (EVP_DecodeBlock(buf, (const unsigned char *)s, 44) != 33)
        return -1;
    memcpy(out, buf, 32);
    return 0;
}

static void parse_pins(struct tg_config__ctx *c, json_t *v, struct tg_backend_tls_conf *bt)
{
    char *ptr = tg_config__ptr_join(bt->path, "pin");
    size_t n = json_array_size(v);

    if (n == 0)
        tg_config__error(c, ptr, "must list at least one pin (or leave \"pin\" out)");
    bt->pins = tg_xcalloc(n ? n : 1, sizeof(*bt->pins));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char *ep = tg_config__ptr_index(ptr, i);
        if (!json_is_string(e))
            tg_config__error(c, ep, "must be a pin string (got %s)", tg_config__json_type_words(e));
        else if (pin_decode(json_string_value(e), bt->pins[bt->n_pins]) == 0)
            bt->n_pins++;
        else if (is_hex_fingerprint(json_string_value(e)))
            tg_config__error(c, ep,
                             "\"%s\" looks like a hex fingerprint; a pin is the base64 SHA-256 of "
                             "the certificate's public key (SPKI), as in \"sha256/47DEQpj8HBSa+/"
                             "TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"",
                             json_string_value(e));
        else
            tg_config__error(c, ep,
                             "\"%s\" is not an SPKI SHA-256 pin: expected base64 of a 32-byte "
                             "digest (44 characters ending in \"=\"), optionally prefixed "
                             "\"sha256/\"; make one with: openssl x509 -in CERT -pubkey -noout | "
                             "openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | "
                             "base64",
                             json_string_value(e));
        free(ep);
    }
    free(ptr);
}

static void parse_backend_alpn(struct tg_config__ctx *c, json_t *v, struct tg_backend_tls_conf *bt)
{
    char *ptr = tg_config__ptr_join(bt->path, "alpn");
    size_t n = json_array_size(v);

    if (n == 0)
        tg_config__error(c, ptr, "must name at least one protocol (or leave \"alpn\" out)");
    bt->alpn = tg_xcalloc(n ? n : 1, sizeof(*bt->alpn));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char *ep = tg_config__ptr_index(ptr, i);
        size_t len = json_is_string(e) ? json_string_length(e) : 0;
        bool dup = false;
        for (size_t j = 0; j < bt->n_alpn && json_is_string(e); j++)
            dup = dup || strcmp(bt->alpn[j], json_string_value(e)) == 0;
        if (!json_is_string(e))
            tg_config__error(c, ep, "must be a protocol id (got %s)",
                             tg_config__json_type_words(e));
        else if (len == 0 || len > 255 || strlen(json_string_value(e)) != len)
            tg_config__error(c, ep, "a protocol id is 1 to 255 bytes (without NUL)");
        else if (dup)
            tg_config__error(c, ep, "\"%s\" is listed twice", json_string_value(e));
        else
            bt->alpn[bt->n_alpn++] = tg_xstrdup(json_string_value(e));
        free(ep);
    }
    free(ptr);
}

/* truststore and client_certificate: names of other sections. */
static void parse_backend_refs(struct tg_config__ctx *c, json_t *tls,
                               struct tg_backend_tls_conf *bt)
{
    const struct tg_config *cfg = c->cfg;
    json_t *v = tg_config__get(tls, tg_config__backend_tls_keys, "truststore");

    if (v != NULL) {
        const char *name = json_string_value(v);
        const char **names = tg_xcalloc(cfg->n_truststores + 1, sizeof(*names));
        for (size_t i = 0; i < cfg->n_truststores; i++)
            names[i] = cfg->truststores[i].name;
        char *ptr = tg_config__ptr_join(bt->path, "truststore");
        /* "system" names OpenSSL's default paths unless a truststore has that name. */
        long i = strcmp(name, "system") == 0 && tg_config_truststore(cfg, name) == NULL
                     ? -2
                     : lookup_name(c, "truststore", name, names, cfg->n_truststores, ptr);
        if (i >= 0) {
            bt->truststore = tg_xstrdup(name);
            bt->truststore_idx = (size_t)i;
        }
        free(ptr);
        free(names);
    }
    v = tg_config__get(tls, tg_config__backend_tls_keys, "client_certificate");
    if (v != NULL) {
        const char *name = json_string_value(v);
        const char **names = tg_xcalloc(cfg->n_keystores + 1, sizeof(*names));
        for (size_t i = 0; i < cfg->n_keystores; i++)
            names[i] = cfg->keystores[i].name;
        char *ptr = tg_config__ptr_join(bt->path, "client_certificate");
        long i = lookup_name(c, "keystore", name, names, cfg->n_keystores, ptr);
        if (i >= 0) {
            bt->client_certificate = tg_xstrdup(name);
            bt->client_certificate_idx = (size_t)i;
            tg_config__loc(c, ptr, &bt->client_certificate_loc);
        }
        free(ptr);
        free(names);
    }
}

void tg_config__parse_backend_tls(struct tg_config__ctx *c, json_t *tls, struct tg_backend_conf *b)
{
    struct tg_backend_tls_conf *bt = &b->tls;
    const struct tg_config__key *tab = tg_config__backend_tls_keys;

    bt->enabled = true;
    bt->verify = true;
    bt->path = tg_config__ptr_join(b->path, "tls");
    tg_config__loc(c, bt->path, &bt->loc);
    struct policy p = {TLS1_2_VERSION,
                       TLS1_3_VERSION,
                       tg_xstrdup(DEFAULT_CIPHERSUITES),
                       tg_xstrdup(DEFAULT_CIPHER_LIST),
                       false,
                       false,
                       NULL};
    if (json_is_object(tls)) {
        tg_config__check_keys(c, tls, bt->path, tab);
        parse_policy(c, tls, tab, bt->path, "backends", &p);
    }
    bt->min_version = p.min_version;
    bt->max_version = p.max_version;
    bt->ciphersuites = p.ciphersuites;
    bt->cipher_list = p.cipher_list;
    bt->cipher_string = p.cipher_string;
    bt->legacy = p.legacy;
    bt->curves = p.curves;
    if (!json_is_object(tls))
        return;
    parse_backend_refs(c, tls, bt);

    json_t *v = tg_config__get(tls, tab, "server_name");
    if (v != NULL) {
        const char *name = json_string_value(v);
        if (!is_ip(name) && !is_dns_name(name)) {
            char *ptr = tg_config__ptr_join(bt->path, "server_name");
            tg_config__error(c, ptr,
                             "\"%s\" is not a server name (use a DNS name such as "
                             "\"api.internal\" or an IP address)",
                             name);
            free(ptr);
        } else {
            bt->server_name = tg_xstrdup(name);
            for (char *q = bt->server_name; *q; q++)
                if (*q >= 'A' && *q <= 'Z')
                    *q = (char)(*q - 'A' + 'a');
        }
    }
    v = tg_config__get(tls, tab, "pin");
    if (v != NULL)
        parse_pins(c, v, bt);
    v = tg_config__get(tls, tab, "alpn");
    if (v != NULL)
        parse_backend_alpn(c, v, bt);

    v = tg_config__get(tls, tab, "allow_insecure");
    bt->allow_insecure = v != NULL && json_is_true(v);
    v = tg_config__get(tls, tab, "verify");
    if (v != NULL && !json_is_true(v) && !bt->allow_insecure) {
        char *ptr = tg_config__ptr_join(bt->path, "verify");
        tg_config__error(c, ptr,
                         "verification of backend \"%s\" cannot be turned off on its own: set "
                         "allow_insecure: true to skip verification (better: name a truststore "
                         "holding its CA, or pin its key)",
                         b->name);
        free(ptr);
    }
    if (bt->allow_insecure) {
        char *ptr = tg_config__ptr_join(bt->path, "allow_insecure");
        bt->verify = false;
        /* A warning at every load: `run` logs it at each start and reload, `check` prints it. */
        tg_config__warning(c, ptr,
                           "backend \"%s\": allow_insecure skips certificate chain and name "
                           "verification, so anyone on the path to its targets can impersonate "
                           "them%s",
                           b->name, bt->n_pins > 0 ? " (only the pins are checked)" : "");
        free(ptr);
    }
}

void tg_config__backend_tls_conf_free(struct tg_backend_tls_conf *bt)
{
    free(bt->path);
    free(bt->truststore);
    free(bt->server_name);
    free(bt->client_certificate);
    free(bt->ciphersuites);
    free(bt->cipher_list);
    free(bt->curves);
    free(bt->pins);
    for (size_t i = 0; i < bt->n_alpn; i++)
        free(bt->alpn[i]);
    free(bt->alpn);
}
