/* A listener's "tls" object: versions, suites, groups and ALPN checked and resolved for OpenSSL. */
#include "config/internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "core/core.h"

#define DEFAULT_CIPHERSUITES                                                                       \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEFAULT_CIPHER_LIST                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define VERSIONS_ALLOWED "TLS1.0 to TLS1.3"

const struct tg_config__key tg_config__tls_keys[] = {
    {"disabled", TG_J_BOOL, "true or false", "false", NULL, 0},
    {"certificates", TG_J_ARR, "a list of keystore names", NULL,
     "names in keystores; required unless disabled", 0},
    {"min_version", TG_J_STR, "a string", "\"TLS1.3\"", VERSIONS_ALLOWED, 0},
    {"max_version", TG_J_STR, "a string", "\"TLS1.3\"", VERSIONS_ALLOWED, 0},
    {"cipher_suites", TG_J_ARR | TG_J_STR,
     "a list of suite names or numbers, or one OpenSSL cipher string",
     "TLS 1.3: AES-128-GCM, AES-256-GCM, CHACHA20; TLS 1.2: ECDHE with AES-GCM or CHACHA20", NULL,
     0},
    {"curves", TG_J_ARR, "a list of group names", "OpenSSL's default", NULL, 0},
    {"alpn", TG_J_ARR, "a list of protocol ids", "[\"http/1.1\"]", "http/1.1 (h2 later)", 0},
    {"session_resumption", TG_J_BOOL, "true or false", "true", NULL, 0},
    {"client_auth", 0x7f, "", NULL, NULL, TG_K_LATER},
    {"ocsp_stapling", 0x7f, "", NULL, NULL, TG_K_LATER},
    {NULL, 0, NULL, NULL, NULL, 0},
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
                        struct tg_tls_conf *tc, struct suites_state *st)
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
                         struct tg_tls_conf *tc, struct joined *why_legacy)
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
                         struct tg_tls_conf *tc)
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
        tg_config__error(c, ptr, "must name at least one protocol (allowed: http/1.1)");
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
        else if (strcmp(json_string_value(e), "h2") == 0)
            tg_config__error(c, ep, "HTTP/2 (\"h2\") is not supported yet in this version");
        else if (strcmp(json_string_value(e), "http/1.1") != 0)
            tg_config__error(c, ep, "\"%s\" is not a supported ALPN protocol (allowed: http/1.1)",
                             json_string_value(e));
        else
            tc->alpn[tc->n_alpn++] = tg_xstrdup("http/1.1");
        free(ep);
    }
out:
    free(ptr);
}

void tg_config__parse_tls(struct tg_config__ctx *c, json_t *tls, const char *listener_ptr,
                          struct tg_tls_conf *tc)
{
    struct joined why_legacy = {0};
    json_t *v;

    tc->min_version = TLS1_3_VERSION;
    tc->max_version = TLS1_3_VERSION;
    tc->ciphersuites = tg_xstrdup(DEFAULT_CIPHERSUITES);
    tc->cipher_list = tg_xstrdup(DEFAULT_CIPHER_LIST);
    tc->session_resumption = true;
    tc->alpn = tg_xcalloc(1, sizeof(*tc->alpn));
    tc->alpn[0] = tg_xstrdup("http/1.1");
    tc->n_alpn = 1;
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
    int min = parse_version(c, tg_config__get(tls, tg_config__tls_keys, "min_version"), tc->path,
                            "min_version", TLS1_3_VERSION);
    int max = parse_version(c, tg_config__get(tls, tg_config__tls_keys, "max_version"), tc->path,
                            "max_version", TLS1_3_VERSION);
    if (min > 0 && max > 0 && min > max) {
        char *p = tg_config__ptr_join(tc->path, "min_version");
        tg_config__error(c, p, "min_version %s is above max_version %s", tg_tls_version_name(min),
                         tg_tls_version_name(max));
        free(p);
    }
    /* With a bad version, check the suites against the default rather than not at all. */
    if (min > 0)
        tc->min_version = min;
    if (max > 0)
        tc->max_version = max;
    if (tc->min_version > tc->max_version)
        tc->min_version = tc->max_version;
    if (tc->min_version < TLS1_2_VERSION)
        join_add(&why_legacy, tg_tls_version_name(tc->min_version));
    v = tg_config__get(tls, tg_config__tls_keys, "cipher_suites");
    if (v != NULL)
        parse_suites(c, v, tc->path, tc, &why_legacy);
    else if (tc->min_version < TLS1_2_VERSION)
        tg_config__warning(c, tc->path,
                           "the default suites all need TLS1.2, so %s clients will find none in "
                           "common: list cipher_suites such as ECDHE-RSA-AES128-SHA",
                           tg_tls_version_name(tc->min_version));
    v = tg_config__get(tls, tg_config__tls_keys, "curves");
    if (v != NULL)
        parse_curves(c, v, tc->path, tc);
    v = tg_config__get(tls, tg_config__tls_keys, "alpn");
    if (v != NULL)
        parse_alpn(c, v, tc->path, tc);
    v = tg_config__get(tls, tg_config__tls_keys, "session_resumption");
    if (v != NULL)
        tc->session_resumption = json_is_true(v);
    if (why_legacy.count > 0) {
        tc->legacy = true;
        for (char *p = why_legacy.s; *p; p++)
            if (*p == ':')
                *p = ',';
        tg_config__warning(c, tc->path,
                           "legacy policy: %s needs OpenSSL security level 0; clients can be "
                           "downgraded to weak cryptography",
                           why_legacy.s);
    }
    free(why_legacy.s);
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
}
