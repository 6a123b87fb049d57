/* A listener's tls.client_auth object and a route's client_auth: modes, truststore, depth, CA
 * names, the allow list (kept as written; the tls module parses it), revocation and forwarding. */
#include "config/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const struct tg_config__key client_auth_keys[] = {
    {"mode", TG_J_STR, "a string", "\"none\"", "none, optional, require", 0},
    {"truststore", TG_J_STR, "a string (truststore name)", NULL,
     "a name in truststores; required unless mode is none", 0},
    {"verify_depth", TG_J_INT, "an integer", "3 (a root and 2 intermediates)", "1 to 16", 0},
    {"send_ca_names", TG_J_BOOL, "true or false", "true", NULL, 0},
    {"allowed_subjects", TG_J_ARR, "a list of strings", "[] (any certificate that chains)",
     "DNs, or dns:, uri:, email:, ip:, spki: entries", 0},
    {"revocation", TG_J_OBJ, "an object", "{\"mode\": \"off\"}", NULL, 0},
    {"reauthorize_live", TG_J_BOOL, "true or false", "true", NULL, 0},
    {"forward", TG_J_STR, "a string", "\"xfcc\"", "xfcc, rfc9440, both, none", 0},
    {"forward_trust_anchor", TG_J_BOOL, "true or false", "false",
     "rfc9440: Client-Cert-Chain ends with the trust anchor too", 0},
    {"from_header", TG_J_OBJ, "an object", "none (certificates from the handshake only)",
     "{\"name\": FIELD, \"trusted_from\": [CIDR, ...]}", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key from_header_keys[] = {
    {"name", TG_J_STR, "a string", NULL, "a header field name", TG_K_REQUIRED},
    {"trusted_from", TG_J_ARR, "a list of strings", NULL,
     "addresses or CIDR blocks (\"10.0.0.0/8\", \"2001:db8::/32\"), at least one", TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key revocation_keys[] = {
    {"mode", TG_J_STR, "a string", "\"off\"", "off, soft_fail, hard_fail", 0},
    {"crl", TG_J_ARR, "a list of file paths", "[]", "PEM or DER CRL files", 0},
    {"fetch", TG_J_BOOL, "true or false", "true", "CRLs from CDP and OCSP from AIA, over http", 0},
    {"scope", TG_J_STR, "a string", "\"leaf\"", "leaf, chain", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* Index of s in words (NULL-terminated), or -1 with an error at ptr listing them. */
static int pick(struct tg_config__ctx *c, const char *s, const char *const *words, const char *ptr)
{
    for (int i = 0; words[i] != NULL; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    char allowed[128] = "";
    size_t off = 0;
    for (int i = 0; words[i] != NULL && off < sizeof(allowed); i++)
        off +=
            (size_t)snprintf(allowed + off, sizeof(allowed) - off, "%s%s", i ? ", " : "", words[i]);
    tg_config__error(c, ptr, "\"%s\" is not allowed here (allowed: %s)", s, allowed);
    return -1;
}

static void parse_strings(struct tg_config__ctx *c, json_t *arr, const char *ptr, bool paths,
                          char ***out, struct tg_loc **locs, size_t *n_out)
{
    size_t n = json_array_size(arr);
    *out = tg_xcalloc(n + 1, sizeof(**out));
    *locs = tg_xcalloc(n + 1, sizeof(**locs));
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        char *p = tg_config__ptr_index(ptr, i);
        if (!json_is_string(e) || json_string_length(e) == 0) {
            tg_config__error(c, p, "must be a non-empty string (got %s)",
                             tg_config__json_type_words(e));
        } else {
            const char *s = json_string_value(e);
            (*out)[*n_out] = paths ? tg_config__resolve_path(c->cfg->base_dir, s) : tg_xstrdup(s);
            tg_config__loc(c, p, &(*locs)[*n_out]);
            (*n_out)++;
        }
        free(p);
    }
}

static void parse_revocation(struct tg_config__ctx *c, json_t *obj, const char *ptr,
                             struct tg_client_auth_conf *ca)
{
    static const char *const modes[] = {"off", "soft_fail", "hard_fail", NULL};
    static const char *const scopes[] = {"leaf", "chain", NULL};
    tg_config__check_keys(c, obj, ptr, revocation_keys);
    json_t *v = tg_config__get(obj, revocation_keys, "mode");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ptr, "mode");
        int m = pick(c, json_string_value(v), modes, p);
        if (m >= 0)
            ca->rev_mode = (enum tg_rev_mode)m;
        free(p);
    }
    v = tg_config__get(obj, revocation_keys, "crl");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ptr, "crl");
        parse_strings(c, v, p, true, &ca->crl_files, &ca->crl_locs, &ca->n_crl_files);
        free(p);
    }
    v = tg_config__get(obj, revocation_keys, "fetch");
    if (v != NULL)
        ca->rev_fetch = json_is_true(v);
    v = tg_config__get(obj, revocation_keys, "scope");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ptr, "scope");
        int s = pick(c, json_string_value(v), scopes, p);
        if (s >= 0)
            ca->rev_scope_chain = s == 1;
        free(p);
    }
}

static bool token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* from_header: {"name": FIELD, "trusted_from": [CIDR...]}. */
static void parse_from_header(struct tg_config__ctx *c, json_t *obj, const char *ptr,
                              struct tg_client_auth_conf *ca)
{
    if (tg_config__check_keys(c, obj, ptr, from_header_keys) != 0)
        return;
    const char *name = json_string_value(tg_config__get(obj, from_header_keys, "name"));
    json_t *from = tg_config__get(obj, from_header_keys, "trusted_from");
    if (name == NULL || from == NULL)
        return;
    bool ok = name[0] != '\0';
    for (const char *q = name; *q; q++)
        ok = ok && token_char(*q);
    char *p = tg_config__ptr_join(ptr, "name");
    if (!ok)
        tg_config__error(c, p, "\"%s\" is not a header field name (letters, digits, '-')", name);
    free(p);
    ca->from_header = tg_xstrdup(name);
    size_t n = json_array_size(from);
    char *fp = tg_config__ptr_join(ptr, "trusted_from");
    if (n == 0)
        tg_config__error(c, fp,
                         "must list at least one address block: the balancers whose header is "
                         "believed");
    ca->header_from = tg_config__parse_cidrs(c, from, fp, NULL, &ca->n_header_from);
    free(fp);
}

void tg_config__parse_client_auth(struct tg_config__ctx *c, json_t *obj, const char *tls_ptr,
                                  struct tg_client_auth_conf *ca)
{
    static const char *const modes[] = {"none", "optional", "require", NULL};
    static const char *const fwds[] = {"xfcc", "rfc9440", "both", "none", NULL};
    ca->verify_depth = 3;
    ca->send_ca_names = true;
    ca->rev_fetch = true;
    ca->reauthorize_live = true;
    ca->truststore_idx = SIZE_MAX;
    if (obj == NULL || !json_is_object(obj))
        return;
    ca->path = tg_config__ptr_join(tls_ptr, "client_auth");
    tg_config__loc(c, ca->path, &ca->loc);
    tg_config__check_keys(c, obj, ca->path, client_auth_keys);
    json_t *v = tg_config__get(obj, client_auth_keys, "mode");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ca->path, "mode");
        int m = pick(c, json_string_value(v), modes, p);
        if (m >= 0)
            ca->mode = (enum tg_cauth_mode)m;
        free(p);
    }
    v = tg_config__get(obj, client_auth_keys, "truststore");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ca->path, "truststore");
        ca->truststore = tg_xstrdup(json_string_value(v));
        const struct tg_config *cfg = c->cfg;
        const char **names = tg_xcalloc(cfg->n_truststores + 1, sizeof(*names));
        for (size_t i = 0; i < cfg->n_truststores; i++) {
            names[i] = cfg->truststores[i].name;
            if (names[i] != NULL && strcmp(names[i], ca->truststore) == 0)
                ca->truststore_idx = i;
        }
        if (ca->truststore_idx == SIZE_MAX) {
            const char *best = tg_config__closest(ca->truststore, names, cfg->n_truststores);
            if (best != NULL)
                tg_config__error(c, p, "truststore \"%s\" is not defined (did you mean \"%s\"?)",
                                 ca->truststore, best);
            else
                tg_config__error(c, p, "truststore \"%s\" is not defined in \"truststores\"",
                                 ca->truststore);
        }
        free(names);
        free(p);
    } else if (ca->mode != TG_CAUTH_NONE) {
        tg_config__error(c, ca->path,
                         "client_auth needs \"truststore\": the CAs whose client certificates "
                         "are accepted");
    }
    v = tg_config__get(obj, client_auth_keys, "verify_depth");
    if (v != NULL) {
        json_int_t d = json_integer_value(v);
        if (d < 1 || d > 16) {
            char *p = tg_config__ptr_join(ca->path, "verify_depth");
            tg_config__error(c, p, "%lld is out of range (allowed: 1 to 16)", (long long)d);
            free(p);
        } else {
            ca->verify_depth = (int)d;
        }
    }
    v = tg_config__get(obj, client_auth_keys, "send_ca_names");
    if (v != NULL)
        ca->send_ca_names = json_is_true(v);
    v = tg_config__get(obj, client_auth_keys, "allowed_subjects");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ca->path, "allowed_subjects");
        parse_strings(c, v, p, false, &ca->allowed, &ca->allowed_locs, &ca->n_allowed);
        free(p);
    }
    v = tg_config__get(obj, client_auth_keys, "revocation");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ca->path, "revocation");
        parse_revocation(c, v, p, ca);
        free(p);
    }
    v = tg_config__get(obj, client_auth_keys, "reauthorize_live");
    if (v != NULL)
        ca->reauthorize_live = json_is_true(v);
    v = tg_config__get(obj, client_auth_keys, "forward_trust_anchor");
    if (v != NULL)
        ca->forward_anchor = json_is_true(v);
    v = tg_config__get(obj, client_auth_keys, "from_header");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ca->path, "from_header");
        parse_from_header(c, v, p, ca);
        if (ca->mode == TG_CAUTH_NONE)
            tg_config__error(c, p,
                             "a certificate from a header is checked like one from the "
                             "handshake: set mode to \"optional\" or \"require\" and a "
                             "truststore");
        free(p);
    }
    v = tg_config__get(obj, client_auth_keys, "forward");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ca->path, "forward");
        int f = pick(c, json_string_value(v), fwds, p);
        if (f >= 0)
            ca->forward = (enum tg_cauth_forward)f;
        free(p);
    }
}

void tg_config__client_auth_free(struct tg_client_auth_conf *ca)
{
    free(ca->path);
    free(ca->truststore);
    for (size_t i = 0; i < ca->n_allowed; i++)
        free(ca->allowed[i]);
    free(ca->allowed);
    free(ca->allowed_locs);
    for (size_t i = 0; i < ca->n_crl_files; i++)
        free(ca->crl_files[i]);
    free(ca->crl_files);
    free(ca->crl_locs);
    free(ca->from_header);
    free(ca->header_from);
}

bool tg_config__parse_route_client_auth(struct tg_config__ctx *c, json_t *v, const char *ptr)
{
    static const char *const words[] = {"require", NULL};
    char *p = tg_config__ptr_join(ptr, "client_auth");
    bool req = pick(c, json_string_value(v), words, p) == 0;
    free(p);
    return req;
}

void tg_config__parse_route_allowed(struct tg_config__ctx *c, json_t *v, const char *ptr,
                                    struct tg_route_conf *r)
{
    char *p = tg_config__ptr_join(ptr, "allowed_subjects");
    parse_strings(c, v, p, false, &r->allowed, &r->allowed_locs, &r->n_allowed);
    free(p);
}

void tg_config__check_route_client_auth(struct tg_config__ctx *c, const struct tg_listener_conf *l)
{
    if (l->mode == TG_MODE_TCP && l->tls.client_auth.from_header != NULL) {
        char *p = tg_config__ptr_join(l->tls.client_auth.path, "from_header");
        tg_config__error(c, p,
                         "a tcp listener reads no request header: from_header is for http "
                         "listeners");
        free(p);
    }
    for (size_t i = 0; l->tls.disabled && i < l->n_routes; i++) {
        if (l->routes[i].n_allowed == 0)
            continue;
        char *p = tg_xasprintf("%s/routes/%zu/allowed_subjects", l->path, i);
        tg_config__error(c, p,
                         "a plaintext listener never sees a client certificate: remove "
                         "this list or serve the listener over TLS");
        free(p);
    }
    if (l->tls.disabled || l->tls.client_auth.mode != TG_CAUTH_NONE)
        return;
    for (size_t i = 0; i < l->n_routes; i++) {
        if (!l->routes[i].client_auth_require && l->routes[i].n_allowed == 0)
            continue;
        char *p =
            tg_xasprintf("%s/routes/%zu/%s", l->path, i,
                         l->routes[i].client_auth_require ? "client_auth" : "allowed_subjects");
        tg_config__error(c, p,
                         "this route requires a client certificate but the listener never asks "
                         "for one: set tls.client_auth.mode to \"optional\"");
        free(p);
    }
}
