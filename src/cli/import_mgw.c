/* `tlsgate import mgw`: WSO2 API Microgateway 3.x micro-gw.conf (TOML): [listenerConfig],
 * [mutualSSLConfig] with its per-API certificate lists, [httpClients] and its sslConfig. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/import.h"
#include "core/addr.h"
#include "core/core.h"
#include "tls/tls.h"

struct mctx {
    struct tg_imp *im;
    char *home; /* ${mgw-runtime.home}: the directory above conf/ */
};

static const char *type_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot != NULL && strcasecmp(dot, ".jks") == 0)
        return "jks";
    if (dot != NULL && strcasecmp(dot, ".jceks") == 0)
        return "jceks";
    return "pkcs12"; /* Ballerina's stores are PKCS#12 */
}

/* A value under two spellings: "keyStorePath" or dotted "keyStore.path". */
static json_t *get2(json_t *tbl, const char *flat, const char *obj, const char *field,
                    const char *sect, char *ptr, size_t n)
{
    json_t *v = json_object_get(tbl, flat);
    if (v != NULL) {
        snprintf(ptr, n, "/%s/%s", sect, flat);
        return v;
    }
    v = json_object_get(json_object_get(tbl, obj), field);
    snprintf(ptr, n, "/%s/%s/%s", sect, obj, field);
    return v;
}

/* "${mgw-runtime.home}/runtime/..." made absolute; NULL (with an error) for other ${...}. */
static char *store_path(struct mctx *m, int line, const char *key, const char *v)
{
    const char *var = "${mgw-runtime.home}";
    if (strncmp(v, var, strlen(var)) == 0) {
        const char *rest = v + strlen(var);
        size_t n = strlen(m->home) + strlen(rest) + 2;
        char *r = tg_xmalloc(n);
        snprintf(r, n, "%s%s", m->home, rest);
        return r;
    }
    if (strstr(v, "${") != NULL) {
        tg_imp_error(m->im, line, 0,
                     "%s: cannot resolve the variable in \"%s\" (only "
                     "${mgw-runtime.home} is known)",
                     key, v);
        return NULL;
    }
    return tg_imp_path(m->im, m->home, v);
}

/* A store (key or trust) from path and password keys of a section; returns the name or NULL. */
static const char *store(struct mctx *m, json_t *tbl, const char *sect, const char *what,
                         const char *name, bool trust, json_t *pw_tbl, const char *pw_sect)
{
    struct tg_imp *im = m->im;
    char pp[200], wp[200], key[200], obj[64], flat[64], pflat[64];
    snprintf(obj, sizeof(obj), "%s", what);
    snprintf(flat, sizeof(flat), "%sPath", what);
    snprintf(pflat, sizeof(pflat), "%sPassword", what);
    json_t *path = get2(tbl, flat, obj, "path", sect, pp, sizeof(pp));
    json_t *pw = get2(pw_tbl, pflat, obj, "password", pw_sect, wp, sizeof(wp));
    snprintf(key, sizeof(key), "%s.%s", sect, pp + strlen(sect) + 2);
    for (char *c = key; *c; c++)
        if (*c == '/')
            *c = '.';
    if (path == NULL)
        return NULL;
    int line = tg_imp_line(im, pp);
    if (!json_is_string(path)) {
        tg_imp_error(im, line, 0, "%s: expected a file name", key);
        return NULL;
    }
    char *file = store_path(m, line, key, json_string_value(path));
    if (file == NULL || !tg_imp_need_file(im, line, key, file)) {
        free(file);
        return NULL;
    }
    const char *type = type_of(file);
    json_t *obj_out = json_pack("{s:s, s:s}", "type", type, "file", file);
    if (json_is_string(pw)) {
        json_object_set_new(obj_out, "password", json_string(json_string_value(pw)));
        char pk[200];
        snprintf(pk, sizeof(pk), "%s", wp + 1);
        for (char *c = pk; *c; c++)
            if (*c == '/')
                *c = '.';
        tg_imp_map(im, tg_imp_line(im, wp), pk, "%s.%s.password (value not shown)",
                   trust ? "truststores" : "keystores", name);
    } else if (!trust) {
        tg_imp_error(im, line, 0, "%s: no %s password in [%s]", key, what, pw_sect);
        json_decref(obj_out);
        free(file);
        return NULL;
    }
    json_object_set_new(trust ? im->truststores : im->keystores, name, obj_out);
    tg_imp_map(im, line, key, "%s.%s (%s %s)", trust ? "truststores" : "keystores", name, type,
               file);
    free(file);
    return name;
}

/* "A, B ,A" -> ["A", "B"] with notes for padding and duplicates. */
static json_t *split_names(struct tg_imp *im, int line, const char *key, const char *s)
{
    json_t *out = json_array();
    bool padded = false;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        const char *a = s, *b = s + n;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++, padded = true;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--, padded = true;
        if (b > a)
            json_array_append_new(out, json_stringn(a, (size_t)(b - a)));
        s += n + (s[n] == ',');
    }
    if (padded)
        tg_imp_note(im, line, key,
                    "names padded with spaces (MGW passes them to Java as "
                    "written); trimmed");
    return out;
}

static void versions(struct tg_imp *im, json_t *list, const char *ptr, const char *key, json_t *tls,
                     const char *tk)
{
    int lo = 9, hi = -1, line = tg_imp_line(im, ptr);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        const char *tg = s ? tg_imp_version(s) : NULL;
        if (tg == NULL) {
            tg_imp_warn(im, line, key,
                        "\"%s\" is not a TLS version this OpenSSL serves (SSLv3 "
                        "is refused); left out",
                        s ? s : "?");
            continue;
        }
        int n = tg[5] - '0';
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    if (hi < 0) {
        tg_imp_warn(im, line, key, "no usable version; tlsgate's default (TLS1.3) is used");
        return;
    }
    char a[16], b[16];
    snprintf(a, sizeof(a), "TLS1.%d", lo);
    snprintf(b, sizeof(b), "TLS1.%d", hi);
    json_object_set_new(tls, "min_version", json_string(a));
    json_object_set_new(tls, "max_version", json_string(b));
    tg_imp_map(im, line, key, "%s.min_version = \"%s\", max_version = \"%s\"", tk, a, b);
    if (lo < 2)
        tg_imp_warn(im, line, key, "TLS 1.%d is on, as in the source (legacy: security level 0)",
                    lo);
}

/* [[mutualSSLConfig.api.certificates]]: each API's aliasList, resolved to the subjects of those
 * aliases' certificates in the listener's truststore, becomes the allowed_subjects of a route
 * for the API's base path (--api NAME:VERSION=/PREFIX; the path is not in micro-gw.conf). */
static void api_lists(struct mctx *m, json_t *ms, json_t *l, const char *trust, bool mutual_on)
{
    struct tg_imp *im = m->im;
    json_t *apis = json_object_get(json_object_get(ms, "api"), "certificates");
    json_t *routes = json_object_get(l, "routes");
    json_t *ts = trust ? json_object_get(im->truststores, trust) : NULL;
    size_t i;
    json_t *a;
    json_array_foreach(apis, i, a)
    {
        char ptr[100];
        snprintf(ptr, sizeof(ptr), "/mutualSSLConfig/api/certificates/%zu", i);
        int line = tg_imp_line(im, ptr);
        const char *key = "mutualSSLConfig.api.certificates";
        const char *api = json_string_value(json_object_get(a, "apiName"));
        const char *ver = json_string_value(json_object_get(a, "apiVersion"));
        json_t *aliases = json_object_get(a, "aliasList");
        const char *prefix = api ? tg_imp_api_path(im, api, ver) : NULL;
        if (api == NULL || !json_is_array(aliases)) {
            tg_imp_error(im, line, 0, "%s: expected apiName (a string) and aliasList (a list)",
                         key);
            continue;
        }
        if (!mutual_on || ts == NULL) {
            tg_imp_warn(im, line, key,
                        "API \"%s\": MGW checks its list only under mutual SSL with a "
                        "truststore, and sslVerifyClient or trustStorePath is not set; not mapped",
                        api);
            continue;
        }
        if (prefix == NULL) {
            tg_imp_warn(im, line, key,
                        "API \"%s\" %s admits only truststore aliases it lists; its base path "
                        "is in its OpenAPI file, not here: give --api %s%s%s=/BASEPATH to map "
                        "the list to a route's allowed_subjects; until then this API admits "
                        "every certificate the listener admits",
                        api, ver ? ver : "", api, ver ? ":" : "", ver ? ver : "");
            continue;
        }
        json_t *subjects = json_array();
        size_t k;
        json_t *al;
        json_array_foreach(aliases, k, al)
        {
            char why[512];
            char *subject = NULL;
            const char *alias = json_string_value(al);
            if (alias == NULL ||
                tg_tls_store_alias_subject(json_string_value(json_object_get(ts, "type")),
                                           json_string_value(json_object_get(ts, "file")),
                                           json_string_value(json_object_get(ts, "password")),
                                           alias, &subject, why, sizeof(why)) != 0) {
                tg_imp_error(im, line, 0, "%s: API \"%s\": alias %s: %s", key, api,
                             alias ? alias : "(not a string)",
                             alias ? why : "aliasList holds strings");
                continue;
            }
            tg_imp_map(im, line, key, "API \"%s\" alias \"%s\" -> allowed_subjects \"%s\"", api,
                       alias, subject);
            json_array_append_new(subjects, json_string(subject));
            free(subject);
        }
        const char *backend = json_string_value(
            json_object_get(json_array_get(routes, json_array_size(routes) - 1), "backend"));
        json_t *r = json_pack("{s:s, s:s, s:o}", "path_prefix", prefix, "backend",
                              backend ? backend : "status", "allowed_subjects", subjects);
        json_array_insert_new(routes, json_array_size(routes) - 1, r);
        tg_imp_map(im, line, key,
                   "API \"%s\" -> a route for %s with its own allowed_subjects (%zu "
                   "certificate subjects from the truststore; MGW matches the certificate under "
                   "the alias, tlsgate its subject from a trusted issuer)",
                   api, prefix, json_array_size(subjects));
    }
}

/* certificateHeader (or certificateHeaderName): the client certificate a TLS-terminating
 * balancer passes in a header -> tls.client_auth.from_header, believed only from the
 * --header-from blocks (MGW believes it from any peer). */
static void header(struct mctx *m, json_t *ms, json_t *tls, const char *trust)
{
    struct tg_imp *im = m->im;
    const char *names[] = {"certificateHeader", "certificateHeaderName"};
    for (size_t k = 0; k < 2; k++) {
        json_t *h = json_object_get(ms, names[k]);
        if (h == NULL)
            continue;
        char ptr[100], key[100];
        snprintf(ptr, sizeof(ptr), "/mutualSSLConfig/%s", names[k]);
        snprintf(key, sizeof(key), "mutualSSLConfig.%s", names[k]);
        int line = tg_imp_line(im, ptr);
        const char *name = json_string_value(h);
        if (name == NULL || name[0] == '\0') {
            tg_imp_error(im, line, 0, "%s: expected a header field name", key);
            continue;
        }
        if (im->opts->n_header_from == 0) {
            tg_imp_warn(im, line, key,
                        "MGW takes the client certificate from header %s whatever peer sends "
                        "it; tlsgate believes it only from the balancers you name: give "
                        "--header-from CIDR (the balancer's addresses) to map it to "
                        "tls.client_auth.from_header; not mapped",
                        name);
            continue;
        }
        if (trust == NULL) {
            tg_imp_warn(im, line, key,
                        "a header certificate is checked against [listenerConfig] "
                        "trustStorePath, which is not set; not mapped");
            continue;
        }
        json_t *ca = json_object_get(tls, "client_auth");
        if (ca == NULL) {
            ca = json_pack("{s:s, s:s}", "mode", "optional", "truststore", trust);
            json_object_set_new(tls, "client_auth", ca);
            tg_imp_map(im, line, key,
                       "listeners[0].tls.client_auth.mode = \"optional\" (truststore %s): the "
                       "balancer terminates the clients' TLS",
                       trust);
        }
        json_t *from = json_array();
        for (size_t i = 0; i < im->opts->n_header_from; i++) {
            struct tg_cidr cidr;
            const char *why = NULL;
            if (tg_cidr_parse(im->opts->header_from[i], &cidr, &why) != 0)
                tg_imp_error(im, 0, 0, "--header-from \"%s\": %s", im->opts->header_from[i], why);
            json_array_append_new(from, json_string(im->opts->header_from[i]));
        }
        json_object_set_new(ca, "from_header",
                            json_pack("{s:s, s:o}", "name", name, "trusted_from", from));
        tg_imp_map(im, line, key,
                   "listeners[0].tls.client_auth.from_header = {\"name\": \"%s\", "
                   "\"trusted_from\": %zu block(s) from --header-from} (URL-encoded PEM or "
                   "base64 DER, checked against the truststore as in a handshake)",
                   name, im->opts->n_header_from);
    }
}

static void mutual(struct mctx *m, json_t *ms, json_t *l, const char *trust)
{
    struct tg_imp *im = m->im;
    json_t *tls = json_object_get(l, "tls");
    const char *tk = "listeners[0].tls";
    json_t *pv = json_object_get(ms, "protocolVersions");
    if (pv != NULL)
        versions(im, pv, "/mutualSSLConfig/protocolVersions", "mutualSSLConfig.protocolVersions",
                 tls, tk);
    json_t *ciphers = json_object_get(ms, "ciphers");
    if (json_is_string(ciphers)) {
        int line = tg_imp_line(im, "/mutualSSLConfig/ciphers");
        json_t *names =
            split_names(im, line, "mutualSSLConfig.ciphers", json_string_value(ciphers));
        tg_imp_ciphers(im, line, "mutualSSLConfig.ciphers", names, tls, tk);
        json_decref(names);
    } else {
        tg_imp_java_suites(im, tg_imp_line(im, "/mutualSSLConfig"), "mutualSSLConfig.ciphers", tls,
                           tk);
    }
    json_t *vc = json_object_get(ms, "sslVerifyClient");
    const char *mode = json_string_value(vc);
    int vl = tg_imp_line(im, "/mutualSSLConfig/sslVerifyClient");
    if (mode != NULL && (strcasecmp(mode, "require") == 0 || strcasecmp(mode, "optional") == 0)) {
        const char *tm = strcasecmp(mode, "require") == 0 ? "require" : "optional";
        if (trust == NULL) {
            tg_imp_error(im, vl, 0,
                         "mutualSSLConfig.sslVerifyClient: \"%s\" needs "
                         "[listenerConfig] trustStorePath",
                         mode);
            return;
        }
        json_object_set_new(tls, "client_auth",
                            json_pack("{s:s, s:s}", "mode", tm, "truststore", trust));
        tg_imp_map(im, vl, "mutualSSLConfig.sslVerifyClient",
                   "%s.client_auth.mode = \"%s\" (truststore %s)", tk, tm, trust);
    } else if (mode == NULL || mode[0] == '\0' || strcasecmp(mode, "none") == 0) {
        if (vc != NULL)
            tg_imp_map(im, vl, "mutualSSLConfig.sslVerifyClient", "%s.client_auth.mode = \"none\"",
                       tk);
    } else {
        tg_imp_error(im, vl, 0,
                     "mutualSSLConfig.sslVerifyClient: expected require, optional "
                     "or none, found \"%s\"",
                     mode);
        return;
    }
    api_lists(m, ms, l, trust, mode != NULL && strcasecmp(mode, "none") != 0 && mode[0] != '\0');
    header(m, ms, tls, trust);
    static const char *const quiet[] = {"protocolName", "isClientCertificateValidationEnabled"};
    for (size_t q = 0; q < 2; q++) {
        char ptr[100];
        snprintf(ptr, sizeof(ptr), "/mutualSSLConfig/%s", quiet[q]);
        if (q == 1 && json_is_false(json_object_get(ms, quiet[q])))
            tg_imp_warn(im, tg_imp_line(im, ptr),
                        "mutualSSLConfig.isClientCertificateValidationEnabled",
                        "false: MGW would take a header certificate unchecked; tlsgate always "
                        "checks it against the truststore (stricter)");
        else if (json_object_get(ms, quiet[q]) != NULL)
            tg_imp_note(im, tg_imp_line(im, ptr), ptr + 1,
                        q == 0 ? "\"TLS\" is all tlsgate speaks"
                               : "tlsgate always validates client certificates it asks for");
    }
}

static void http_clients(struct mctx *m, json_t *hc, json_t *lc)
{
    struct tg_imp *im = m->im;
    json_t *btls = json_object();
    const char *tk = "backends.backend.tls";
    json_t *vh = json_object_get(hc, "verifyHostname");
    if (json_is_true(vh))
        tg_imp_map(im, tg_imp_line(im, "/httpClients/verifyHostname"), "httpClients.verifyHostname",
                   "backend names are checked (always, in tlsgate)");
    else if (json_is_false(vh))
        tg_imp_warn(im, tg_imp_line(im, "/httpClients/verifyHostname"),
                    "httpClients.verifyHostname",
                    "false in the source; tlsgate always checks a verified backend's name "
                    "(stricter)");
    json_t *ssl = json_object_get(hc, "sslConfig");
    char pp[200];
    json_t *tpath =
        get2(ssl, "trustStorePath", "trustStore", "path", "httpClients/sslConfig", pp, sizeof(pp));
    const char *ts = NULL;
    if (tpath != NULL) {
        /* MGW's clients take the truststore password from [listenerConfig], whatever
         * [httpClients.sslConfig] says */
        ts = store(m, ssl, "httpClients/sslConfig", "trustStore", "mgw-backend-trust", true, lc,
                   "listenerConfig");
        char wp[200];
        if (get2(ssl, "trustStorePassword", "trustStore", "password", "httpClients/sslConfig", wp,
                 sizeof(wp)) != NULL)
            tg_imp_warn(im, tg_imp_line(im, wp), "httpClients.sslConfig.trustStorePassword",
                        "MGW reads this truststore's password from [listenerConfig] "
                        "trustStorePassword, not from here; the output uses the one MGW uses");
    } else if (json_object_get(im->truststores, "mgw-trust") != NULL) {
        ts = "mgw-trust";
        tg_imp_note(im, tg_imp_line(im, "/httpClients"), "httpClients",
                    "backends are verified against [listenerConfig]'s truststore, as MGW does");
    }
    if (ts != NULL)
        json_object_set_new(btls, "truststore", json_string(ts));
    json_t *pv = json_object_get(ssl, "protocolVersions");
    if (pv != NULL)
        versions(im, pv, "/httpClients/sslConfig/protocolVersions",
                 "httpClients.sslConfig.protocolVersions", btls, tk);
    json_t *ciphers = json_object_get(ssl, "ciphers");
    if (json_is_string(ciphers)) {
        int line = tg_imp_line(im, "/httpClients/sslConfig/ciphers");
        json_t *names =
            split_names(im, line, "httpClients.sslConfig.ciphers", json_string_value(ciphers));
        tg_imp_ciphers(im, line, "httpClients.sslConfig.ciphers", names, btls, tk);
        json_decref(names);
    }
    json_t *b = json_object_get(im->backends, "backend");
    if (b != NULL && json_object_get(b, "tls") != NULL)
        json_object_set(b, "tls", btls);
    else if (json_object_size(btls) > 0)
        tg_imp_note(im, tg_imp_line(im, "/httpClients"), "httpClients",
                    "applies to https backends; none here (give --backend https://...)");
    json_decref(btls);
}

void tg_imp_mgw(struct tg_imp *im)
{
    struct tg_toml_error te;
    json_t *root = NULL;
    if (tg_config_toml_parse(im->text, im->len, &root, &im->lines, &te) != 0) {
        tg_imp_error(im, te.line, te.col, "%s", te.msg);
        return;
    }
    struct mctx m = {.im = im};
    m.home = tg_xstrdup(im->src_dir);
    char *slash = strrchr(m.home, '/');
    if (slash != NULL && slash != m.home)
        *slash = '\0'; /* micro-gw.conf lives in <runtime home>/conf */
    json_t *lc = json_object_get(root, "listenerConfig");
    if (!json_is_object(lc)) {
        tg_imp_error(im, 1, 1, "no [listenerConfig] table: not a micro-gw.conf");
        goto out;
    }
    const char *ks =
        store(&m, lc, "listenerConfig", "keyStore", "mgw", false, lc, "listenerConfig");
    const char *ts =
        store(&m, lc, "listenerConfig", "trustStore", "mgw-trust", true, lc, "listenerConfig");
    if (ks == NULL && im->errors == 0)
        tg_imp_error(im, tg_imp_line(im, "/listenerConfig"), 0,
                     "[listenerConfig] names no keyStorePath");
    if (im->errors > 0)
        goto out;
    const char *host = json_string_value(json_object_get(lc, "host"));
    json_t *hp = json_object_get(lc, "httpsPort");
    long port = json_is_integer(hp) ? (long)json_integer_value(hp) : 9095;
    if (port < 1 || port > 65535) {
        tg_imp_error(im, tg_imp_line(im, "/listenerConfig/httpsPort"), 0,
                     "listenerConfig.httpsPort: %ld is not a port", port);
        goto out;
    }
    const char *backend = tg_imp_fallback_backend(im, tg_imp_line(im, "/listenerConfig"), "(APIs)");
    json_t *l = tg_imp_listener(im, "mgw-https", host ? host : "0.0.0.0", port, backend);
    tg_imp_map(im, tg_imp_line(im, "/listenerConfig/httpsPort"), "listenerConfig.httpsPort",
               "listeners.mgw-https (%s:%ld)%s", host ? host : "*", port,
               hp == NULL ? " (MGW's default port)" : "");
    json_t *tls = json_object_get(l, "tls");
    json_object_set_new(tls, "certificates", json_pack("[s]", ks));
    /* MGW's listener defaults: TLS 1.1 and 1.2 */
    json_object_set_new(tls, "min_version", json_string("TLS1.1"));
    json_object_set_new(tls, "max_version", json_string("TLS1.2"));
    json_t *ms = json_object_get(root, "mutualSSLConfig");
    if (json_object_get(ms, "protocolVersions") == NULL)
        tg_imp_warn(im, tg_imp_line(im, "/mutualSSLConfig"), "mutualSSLConfig.protocolVersions",
                    "absent: MGW's default TLSv1.2 and TLSv1.1 are kept (TLS 1.1 is legacy: "
                    "security level 0)");
    mutual(&m, ms, l, ts);
    json_t *http = json_object_get(lc, "httpPort");
    if (json_is_integer(http)) {
        json_t *pl = tg_imp_listener(im, "mgw-http", host ? host : "0.0.0.0",
                                     (long)json_integer_value(http), backend);
        json_object_set_new(json_object_get(pl, "tls"), "disabled", json_true());
        tg_imp_map(im, tg_imp_line(im, "/listenerConfig/httpPort"), "listenerConfig.httpPort",
                   "listeners.mgw-http (plaintext, as in the source)");
    }
    json_t *hc = json_object_get(root, "httpClients");
    if (hc != NULL)
        http_clients(&m, hc, lc);
    static const char *const lk[] = {"host",           "httpsPort",          "httpPort",
                                     "keyStorePath",   "keyStorePassword",   "keyStore",
                                     "trustStorePath", "trustStorePassword", "trustStore"};
    tg_imp_other_keys(im, lc, "/listenerConfig", "listenerConfig", lk, sizeof(lk) / sizeof(lk[0]),
                      "not a TLS listener setting; not mapped");
    static const char *const mk[] = {"protocolName",
                                     "protocolVersions",
                                     "ciphers",
                                     "sslVerifyClient",
                                     "api",
                                     "certificateHeader",
                                     "certificateHeaderName",
                                     "isClientCertificateValidationEnabled"};
    tg_imp_other_keys(im, ms, "/mutualSSLConfig", "mutualSSLConfig", mk, sizeof(mk) / sizeof(mk[0]),
                      "not a key tlsgate knows; not mapped");
    static const char *const hk[] = {"verifyHostname", "sslConfig"};
    tg_imp_other_keys(im, hc, "/httpClients", "httpClients", hk, sizeof(hk) / sizeof(hk[0]),
                      "not a TLS setting; not mapped");
    static const char *const sk[] = {"trustStorePath", "trustStorePassword", "trustStore",
                                     "protocolVersions", "ciphers"};
    tg_imp_other_keys(im, json_object_get(hc, "sslConfig"), "/httpClients/sslConfig",
                      "httpClients.sslConfig", sk, sizeof(sk) / sizeof(sk[0]),
                      "not a key tlsgate knows; not mapped");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "listenerConfig") != 0 && strcmp(key, "mutualSSLConfig") != 0 &&
            strcmp(key, "httpClients") != 0) {
            char ptr[300];
            snprintf(ptr, sizeof(ptr), "/%s", key);
            tg_imp_note(im, tg_imp_line(im, ptr), key, "not a TLS setting; not mapped");
        }
    }
out:
    free(m.home);
    json_decref(root);
}
