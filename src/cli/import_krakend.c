/* `tlsgate import krakend`: krakend.json's listener, tls, client_tls, timeouts and endpoints'
 * hosts. KrakenD runs on Go's crypto/tls; its defaults and quirks are Go's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/import.h"
#include "core/core.h"

/* "/tls/min_version" -> "tls.min_version", "/endpoints/0/backend" -> "endpoints[0].backend" */
static const char *key_of(const char *ptr, char *buf, size_t n)
{
    size_t w = 0;
    for (const char *p = ptr; *p != '\0' && w + 4 < n; p++) {
        if (*p == '/') {
            const char *q = p + 1;
            size_t d = strspn(q, "0123456789");
            if (d > 0 && (q[d] == '/' || q[d] == '\0')) {
                w += (size_t)snprintf(buf + w, n - w, "[%.*s]", (int)d, q);
                p += d;
                continue;
            }
            if (w > 0)
                buf[w++] = '.';
            continue;
        }
        buf[w++] = *p;
    }
    buf[w] = '\0';
    return buf;
}

struct kctx {
    struct tg_imp *im;
    char kb[200];
};

#define LINE(ptr) tg_imp_line(k->im, ptr)
#define KEY(ptr)  key_of(ptr, k->kb, sizeof(k->kb))

/* Go's CurveID numbers (as KrakenD's curve_preferences takes them) or names. */
static const char *curve_name(json_t *v)
{
    static const struct {
        long id;
        const char *name;
    } c[] = {{23, "P-256"}, {24, "P-384"}, {25, "P-521"}, {29, "X25519"}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        if (json_is_integer(v) && json_integer_value(v) == c[i].id)
            return c[i].name;
        if (json_is_string(v) && strcasecmp(json_string_value(v), c[i].name) == 0)
            return c[i].name;
    }
    return NULL;
}

/* Go durations ("1m30s", "500ms", "2s") in seconds; -1 if malformed. */
static double go_duration(const char *s)
{
    double total = 0;
    if (*s == '\0')
        return -1;
    while (*s != '\0') {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
            return -1;
        s = end;
        double mul;
        if (strncmp(s, "ms", 2) == 0)
            mul = 0.001, s += 2;
        else if (strncmp(s, "us", 2) == 0 || strncmp(s, "\xc2\xb5s", 3) == 0)
            mul = 0.000001, s += s[0] == 'u' ? 2 : 3;
        else if (strncmp(s, "ns", 2) == 0)
            mul = 0.000000001, s += 2;
        else if (*s == 's')
            mul = 1, s++;
        else if (*s == 'm')
            mul = 60, s++;
        else if (*s == 'h')
            mul = 3600, s++;
        else
            return -1;
        total += v * mul;
    }
    return total;
}

/* min_version / max_version as KrakenD reads them: an unknown value silently means TLS 1.3. */
static void version(struct kctx *k, json_t *src, const char *ptr, const char *skey, json_t *tls,
                    const char *tkey, const char *tls_key, const char *dflt)
{
    json_t *v = json_object_get(src, skey);
    char p[200];
    snprintf(p, sizeof(p), "%s/%s", ptr, skey);
    if (v == NULL) {
        json_object_set_new(tls, tkey, json_string(dflt));
        return;
    }
    const char *s = json_string_value(v);
    if (s != NULL && strcasecmp(s, "SSL3.0") == 0) {
        json_object_set_new(tls, tkey, json_string("TLS1.0"));
        tg_imp_warn(k->im, LINE(p), KEY(p),
                    "SSL 3.0 cannot be served (broken, and absent from this OpenSSL): %s.%s = "
                    "\"TLS1.0\"",
                    tls_key, tkey);
        return;
    }
    /* KrakenD's own table: exactly these spellings */
    static const char *const kv[][2] = {
        {"TLS10", "TLS1.0"}, {"TLS11", "TLS1.1"}, {"TLS12", "TLS1.2"}, {"TLS13", "TLS1.3"}};
    const char *tg = NULL;
    for (size_t i = 0; s != NULL && i < sizeof(kv) / sizeof(kv[0]); i++)
        if (strcmp(s, kv[i][0]) == 0)
            tg = kv[i][1];
    if (tg == NULL) {
        json_object_set_new(tls, tkey, json_string("TLS1.3"));
        tg_imp_warn(k->im, LINE(p), KEY(p),
                    "KrakenD reads an unknown version as TLS 1.3 without saying so; kept: %s.%s "
                    "= \"TLS1.3\" (the values are SSL3.0, TLS10, TLS11, TLS12, TLS13)",
                    tls_key, tkey);
        return;
    }
    json_object_set_new(tls, tkey, json_string(tg));
    tg_imp_map(k->im, LINE(p), KEY(p), "%s.%s = \"%s\"", tls_key, tkey, tg);
}

static void curves(struct kctx *k, json_t *src, const char *ptr, json_t *tls, const char *tls_key)
{
    json_t *list = json_object_get(src, "curve_preferences");
    char p[200];
    snprintf(p, sizeof(p), "%s/curve_preferences", ptr);
    if (list == NULL)
        return;
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *n = curve_name(v);
        if (n == NULL)
            tg_imp_warn(k->im, LINE(p), KEY(p), "curve %lld is not one Go offers; left out",
                        (long long)json_integer_value(v));
        else
            json_array_append_new(out, json_string(n));
    }
    if (json_array_size(out) > 0) {
        tg_imp_map(k->im, LINE(p), KEY(p), "%s.curves", tls_key);
        json_object_set_new(tls, "curves", out);
    } else {
        json_decref(out);
    }
}

/* cipher_suites: Go applies them to TLS 1.2 and below; TLS 1.3 always has its three suites. */
static void suites(struct kctx *k, json_t *src, const char *ptr, json_t *tls, const char *tls_key)
{
    json_t *list = json_object_get(src, "cipher_suites");
    char p[200];
    snprintf(p, sizeof(p), "%s/cipher_suites", ptr);
    if (list == NULL)
        return;
    if (!json_is_array(list)) {
        tg_imp_error(k->im, LINE(p), 0, "%s: expected a list of suite numbers", KEY(p));
        return;
    }
    json_t *all = json_array();
    if (strcmp(json_string_value(json_object_get(tls, "max_version")), "TLS1.3") == 0) {
        json_array_append_new(all, json_string("TLS_AES_128_GCM_SHA256"));
        json_array_append_new(all, json_string("TLS_AES_256_GCM_SHA384"));
        json_array_append_new(all, json_string("TLS_CHACHA20_POLY1305_SHA256"));
    }
    json_array_extend(all, list);
    tg_imp_ciphers(k->im, LINE(p), KEY(p), all, tls, tls_key);
    json_decref(all);
}

/* A ca_certs list as one truststore; several files cannot be one store (the first is used). */
static const char *ca_certs(struct kctx *k, json_t *src, const char *ptr, const char *name)
{
    json_t *list = json_object_get(src, "ca_certs");
    char p[200];
    snprintf(p, sizeof(p), "%s/ca_certs", ptr);
    if (!json_is_array(list) || json_array_size(list) == 0)
        return NULL;
    const char *f = json_string_value(json_array_get(list, 0));
    if (f == NULL) {
        tg_imp_error(k->im, LINE(p), 0, "%s: expected a list of file names", KEY(p));
        return NULL;
    }
    char *path = tg_imp_path(k->im, NULL, f);
    if (tg_imp_need_file(k->im, LINE(p), KEY(p), path)) {
        json_object_set_new(k->im->truststores, name,
                            json_pack("{s:s, s:s}", "type", "pem", "file", path));
        tg_imp_map(k->im, LINE(p), KEY(p), "truststores.%s (%s)", name, path);
    }
    free(path);
    if (json_array_size(list) > 1)
        tg_imp_warn(k->im, LINE(p), KEY(p),
                    "only the first CA file is used (a tlsgate truststore is one file); put "
                    "the others into one bundle");
    return name;
}

/* KrakenD also puts the tls public_key file(s) into the client CA pool: with the server's
 * certificate only, just a holder of the server's key could use that; with its issuers in the
 * file, any client certificate they issued is admitted. tlsgate trusts neither. */
static void own_trap(struct kctx *k, const char *own, bool other_trust)
{
    if (own == NULL || !other_trust)
        return;
    char *text = NULL;
    size_t len = 0, n = 0;
    if (tg_read_file(own, &text, &len) == 0) {
        for (const char *p = text; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL; p++)
            n++;
    }
    free(text);
    if (n > 1)
        tg_imp_warn(k->im, LINE("/tls/enable_mtls"), "tls.enable_mtls",
                    "KrakenD also trusts the %zu certificates of public_key %s as client CAs "
                    "(any client certificate their issuers signed is admitted); tlsgate does "
                    "not (stricter)",
                    n, own);
    else
        tg_imp_note(k->im, LINE("/tls/enable_mtls"), "tls.enable_mtls",
                    "KrakenD also adds the server's own certificate to the client CA pool (only "
                    "a client holding the server's key could use it); tlsgate does not");
}

static void server_tls(struct kctx *k, json_t *tls_src, json_t *tls)
{
    struct tg_imp *im = k->im;
    const char *tk = "listeners[0].tls";
    json_t *pairs = json_array();
    if (json_object_get(tls_src, "public_key") != NULL)
        json_array_append_new(
            pairs, json_pack("{s:O?, s:O?, s:s}", "public_key",
                             json_object_get(tls_src, "public_key"), "private_key",
                             json_object_get(tls_src, "private_key"), "ptr", "/tls/public_key"));
    json_t *keys = json_object_get(tls_src, "keys");
    size_t i;
    json_t *v;
    json_array_foreach(keys, i, v)
    {
        char p[64];
        snprintf(p, sizeof(p), "/tls/keys/%zu", i);
        json_array_append_new(pairs, json_pack("{s:O?, s:O?, s:s}", "public_key",
                                               json_object_get(v, "public_key"), "private_key",
                                               json_object_get(v, "private_key"), "ptr", p));
    }
    json_t *certs = json_array();
    char *own = NULL; /* the first public_key file: KrakenD adds it to the client CA pool */
    json_array_foreach(pairs, i, v)
    {
        const char *ptr = json_string_value(json_object_get(v, "ptr"));
        const char *c = json_string_value(json_object_get(v, "public_key"));
        const char *key = json_string_value(json_object_get(v, "private_key"));
        if (c == NULL || key == NULL) {
            tg_imp_error(im, LINE(ptr), 0, "%s: public_key and private_key must both be file names",
                         KEY(ptr));
            continue;
        }
        char name[32], *cp = tg_imp_path(im, NULL, c), *kp = tg_imp_path(im, NULL, key);
        snprintf(name, sizeof(name), i == 0 ? "krakend" : "krakend-%zu", i);
        if (tg_imp_need_file(im, LINE(ptr), KEY(ptr), cp) &&
            tg_imp_need_file(im, LINE(ptr), KEY(ptr), kp)) {
            json_t *ks = tg_imp_keystore(im, name, "pem");
            json_object_set_new(ks, "cert", json_string(cp));
            json_object_set_new(ks, "key", json_string(kp));
            json_array_append_new(certs, json_string(name));
            tg_imp_map(im, LINE(ptr), KEY(ptr), "keystores.%s (pem %s)", name, cp);
            if (own == NULL)
                own = tg_xstrdup(cp);
        }
        free(cp);
        free(kp);
    }
    json_decref(pairs);
    if (json_array_size(certs) == 0 && im->errors == 0)
        tg_imp_error(im, LINE("/tls"), 0, "tls: no public_key/private_key pair");
    json_object_set_new(tls, "certificates", certs);
    version(k, tls_src, "/tls", "min_version", tls, "min_version", tk, "TLS1.3");
    version(k, tls_src, "/tls", "max_version", tls, "max_version", tk, "TLS1.3");
    suites(k, tls_src, "/tls", tls, tk);
    curves(k, tls_src, "/tls", tls, tk);
    if (json_object_get(tls_src, "prefer_server_cipher_suites") != NULL)
        tg_imp_note(im, LINE("/tls/prefer_server_cipher_suites"), "tls.prefer_server_cipher_suites",
                    "ignored by KrakenD itself (Go has ignored it since 1.18); tlsgate always "
                    "prefers its own order");
    json_t *mtls = json_object_get(tls_src, "enable_mtls");
    bool sys = !json_is_true(json_object_get(tls_src, "disable_system_ca_pool"));
    if (json_is_true(mtls)) {
        /* KrakenD's client CA pool (lura ParseTLSConfig): the system pool unless
         * disable_system_ca_pool, plus every ca_certs file, plus every tls public_key file. */
        const char *ts = ca_certs(k, tls_src, "/tls", "client-ca");
        json_t *ca = json_pack("{s:s}", "mode", "require");
        if (ts == NULL && !sys && own != NULL) {
            json_object_set_new(im->truststores, "krakend-own",
                                json_pack("{s:s, s:s}", "type", "pem", "file", own));
            json_object_set_new(ca, "truststore", json_string("krakend-own"));
            tg_imp_map(im, LINE("/tls/disable_system_ca_pool"), "tls.disable_system_ca_pool",
                       "with no ca_certs, KrakenD's client CA pool is only the tls public_key "
                       "file: truststores.krakend-own (pem %s)",
                       own);
            if (json_array_size(certs) > 1)
                tg_imp_warn(im, LINE("/tls/keys"), "tls.keys",
                            "KrakenD trusts every public_key file for client certificates; "
                            "tlsgate's truststore is the first one only");
        } else if (ts != NULL) {
            json_object_set_new(ca, "truststore", json_string(ts));
            if (sys)
                tg_imp_warn(im, LINE("/tls/enable_mtls"), "tls.enable_mtls",
                            "KrakenD also admits client certificates from every CA in the "
                            "system pool unless disable_system_ca_pool is true; tlsgate admits "
                            "only those chaining to ca_certs");
        } else {
            json_object_set_new(ca, "truststore", json_string("system"));
            json_object_set_new(im->truststores, "system", json_pack("{s:s}", "type", "system"));
            tg_imp_warn(im, LINE("/tls/enable_mtls"), "tls.enable_mtls",
                        "no ca_certs: client certificates from any CA of the system pool are "
                        "admitted (as KrakenD does)");
        }
        json_object_set_new(tls, "client_auth", ca);
        tg_imp_map(im, LINE("/tls/enable_mtls"), "tls.enable_mtls",
                   "%s.client_auth.mode = \"require\"", tk);
        own_trap(k, own, ts != NULL || sys);
    } else if (json_object_get(tls_src, "ca_certs") != NULL) {
        tg_imp_note(im, LINE("/tls/ca_certs"), "tls.ca_certs",
                    "not used by KrakenD without enable_mtls; not mapped");
    }
    free(own);
    json_t *dis = json_object_get(tls_src, "disable_system_ca_pool");
    if (json_is_false(dis))
        tg_imp_map(im, LINE("/tls/disable_system_ca_pool"), "tls.disable_system_ca_pool",
                   "false is KrakenD's default (see tls.enable_mtls)");
    else if (dis != NULL && !json_is_true(mtls))
        tg_imp_note(im, LINE("/tls/disable_system_ca_pool"), "tls.disable_system_ca_pool",
                    "not used by KrakenD without enable_mtls; not mapped");
    else if (dis != NULL && json_object_get(tls_src, "ca_certs") != NULL)
        tg_imp_map(im, LINE("/tls/disable_system_ca_pool"), "tls.disable_system_ca_pool",
                   "exact: tlsgate never adds the system pool to a named truststore");
    static const char *const known[] = {"public_key",
                                        "private_key",
                                        "keys",
                                        "disabled",
                                        "min_version",
                                        "max_version",
                                        "cipher_suites",
                                        "curve_preferences",
                                        "enable_mtls",
                                        "ca_certs",
                                        "disable_system_ca_pool",
                                        "prefer_server_cipher_suites"};
    tg_imp_other_keys(im, tls_src, "/tls", "tls", known, sizeof(known) / sizeof(known[0]),
                      "not a KrakenD tls key tlsgate knows; not mapped");
}

static void client_tls(struct kctx *k, json_t *src, json_t *tls)
{
    struct tg_imp *im = k->im;
    const char *tk = "backends.*.tls";
    if (json_is_true(json_object_get(src, "allow_insecure_connections"))) {
        json_object_set_new(tls, "verify", json_false());
        json_object_set_new(tls, "allow_insecure", json_true());
        tg_imp_warn(im, LINE("/client_tls/allow_insecure_connections"),
                    "client_tls.allow_insecure_connections",
                    "backends are not verified (%s.allow_insecure = true), as in the source", tk);
    }
    bool sys = !json_is_true(json_object_get(src, "disable_system_ca_pool"));
    const char *ts = ca_certs(k, src, "/client_tls", "backend-ca");
    if (ts != NULL) {
        json_object_set_new(tls, "truststore", json_string(ts));
        if (sys)
            tg_imp_warn(im, LINE("/client_tls/ca_certs"), "client_tls.ca_certs",
                        "KrakenD trusts these and the system pool; tlsgate trusts only these "
                        "for backends");
    }
    json_t *cc = json_object_get(src, "client_certs");
    if (json_array_size(cc) > 0) {
        json_t *c = json_array_get(cc, 0);
        const char *cert = json_string_value(json_object_get(c, "certificate"));
        const char *key = json_string_value(json_object_get(c, "private_key"));
        const char *p = "/client_tls/client_certs/0";
        if (cert == NULL || key == NULL) {
            tg_imp_error(im, LINE(p), 0, "%s: certificate and private_key must be file names",
                         KEY(p));
        } else {
            char *cp = tg_imp_path(im, NULL, cert), *kp = tg_imp_path(im, NULL, key);
            if (tg_imp_need_file(im, LINE(p), KEY(p), cp) &&
                tg_imp_need_file(im, LINE(p), KEY(p), kp)) {
                json_t *ks = tg_imp_keystore(im, "krakend-client", "pem");
                json_object_set_new(ks, "cert", json_string(cp));
                json_object_set_new(ks, "key", json_string(kp));
                json_object_set_new(tls, "client_certificate", json_string("krakend-client"));
                tg_imp_map(im, LINE(p), KEY(p), "%s.client_certificate = \"krakend-client\"", tk);
            }
            free(cp);
            free(kp);
        }
        if (json_array_size(cc) > 1)
            tg_imp_warn(im, LINE("/client_tls/client_certs"), "client_tls.client_certs",
                        "Go picks among several client certificates by the backend's request; "
                        "tlsgate presents the first");
    }
    version(k, src, "/client_tls", "min_version", tls, "min_version", tk, "TLS1.2");
    version(k, src, "/client_tls", "max_version", tls, "max_version", tk, "TLS1.3");
    suites(k, src, "/client_tls", tls, tk);
    curves(k, src, "/client_tls", tls, tk);
    if (json_object_get(src, "prefer_server_cipher_suites") != NULL)
        tg_imp_note(im, LINE("/client_tls/prefer_server_cipher_suites"),
                    "client_tls.prefer_server_cipher_suites",
                    "ignored by KrakenD itself (and meaningless for a client); not mapped");
    if (json_is_true(json_object_get(src, "disable_system_ca_pool")) && ts != NULL)
        tg_imp_map(im, LINE("/client_tls/disable_system_ca_pool"),
                   "client_tls.disable_system_ca_pool",
                   "exact: backends are verified against ca_certs only");
    else if (json_is_true(json_object_get(src, "disable_system_ca_pool")))
        tg_imp_warn(im, LINE("/client_tls/disable_system_ca_pool"),
                    "client_tls.disable_system_ca_pool",
                    "with no ca_certs KrakenD trusts no CA at all, so every verified https "
                    "backend fails; tlsgate verifies them against the system truststore");
    static const char *const known[] = {"allow_insecure_connections",
                                        "ca_certs",
                                        "disable_system_ca_pool",
                                        "client_certs",
                                        "min_version",
                                        "max_version",
                                        "cipher_suites",
                                        "curve_preferences",
                                        "prefer_server_cipher_suites"};
    tg_imp_other_keys(im, src, "/client_tls", "client_tls", known, sizeof(known) / sizeof(known[0]),
                      "not a KrakenD client_tls key tlsgate knows; not mapped");
}

static void timeout(struct kctx *k, json_t *root, const char *skey, const char *tkey)
{
    json_t *v = json_object_get(root, skey);
    char p[64];
    snprintf(p, sizeof(p), "/%s", skey);
    if (v == NULL)
        return;
    double s = json_is_string(v) ? go_duration(json_string_value(v)) : -1;
    if (s <= 0 || s > 86400) {
        tg_imp_warn(k->im, LINE(p), skey, "not a duration tlsgate takes (0 < d <= 24h); left out");
        return;
    }
    if (tkey == NULL) {
        tg_imp_warn(k->im, LINE(p), skey, "no tlsgate equivalent (%g s); not mapped", s);
        return;
    }
    json_object_set_new(k->im->timeouts, tkey, json_real(s));
    tg_imp_map(k->im, LINE(p), skey, "timeouts.%s = %g", tkey, s);
}

/* Every endpoint's backend hosts become a backend; a route per endpoint's literal prefix. */
static void endpoints(struct kctx *k, json_t *root, json_t *btls, json_t *routes)
{
    struct tg_imp *im = k->im;
    json_t *eps = json_object_get(root, "endpoints");
    json_t *global = json_object_get(root, "host");
    size_t i;
    json_t *ep;
    json_array_foreach(eps, i, ep)
    {
        char p[64], bname[32];
        snprintf(p, sizeof(p), "/endpoints/%zu", i);
        const char *path = json_string_value(json_object_get(ep, "endpoint"));
        json_t *be = json_array_get(json_object_get(ep, "backend"), 0);
        json_t *hosts = json_object_get(be, "host");
        if (hosts == NULL)
            hosts = global;
        if (path == NULL || path[0] != '/' || json_array_size(hosts) == 0) {
            tg_imp_warn(im, LINE(p), KEY(p), "no endpoint path or backend host; not mapped");
            continue;
        }
        char prefix[256];
        size_t n = strcspn(path, "{");
        if (n >= sizeof(prefix)) { /* cut short, the prefix would match more paths than meant */
            tg_imp_warn(im, LINE(p), KEY(p), "endpoint path over %zu bytes; not mapped",
                        sizeof(prefix) - 1);
            continue;
        }
        snprintf(bname, sizeof(bname), "endpoint-%zu", i);
        size_t j;
        json_t *h;
        json_t *b = NULL;
        json_array_foreach(hosts, j, h)
        {
            if (json_is_string(h))
                b = tg_imp_backend_url(im, LINE(p), KEY(p), bname, json_string_value(h));
        }
        if (b == NULL)
            continue;
        if (json_object_get(b, "tls") != NULL && btls != NULL)
            json_object_set(b, "tls", btls);
        memcpy(prefix, path, n);
        prefix[n] = '\0';
        if (n > 1 && prefix[n - 1] != '/' && path[n] == '{') /* "/users/{id}" -> "/users/" */
            prefix[n] = '\0';
        if (strlen(prefix) > 1 && prefix[strlen(prefix) - 1] == '/' && path[n] == '\0')
            prefix[strlen(prefix) - 1] = '\0';
        json_array_append_new(routes,
                              json_pack("{s:s, s:s}", "path_prefix", prefix, "backend", bname));
        tg_imp_map(im, LINE(p), KEY(p), "route path_prefix \"%s\" -> backends.%s", prefix, bname);
        const char *pat = json_string_value(json_object_get(be, "url_pattern"));
        if (pat != NULL && strcmp(pat, path) != 0)
            tg_imp_warn(im, LINE(p), KEY(p),
                        "url_pattern \"%s\" is not applied: tlsgate passes paths unchanged", pat);
        if (json_array_size(json_object_get(ep, "backend")) > 1)
            tg_imp_warn(im, LINE(p), KEY(p),
                        "KrakenD merges several backends' answers; tlsgate proxies to the first");
    }
    /* longer prefixes first: KrakenD matches whole paths, tlsgate the first prefix */
    size_t n = json_array_size(routes);
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0; b--) {
            json_t *x = json_array_get(routes, b - 1), *y = json_array_get(routes, b);
            if (strlen(json_string_value(json_object_get(x, "path_prefix"))) >=
                strlen(json_string_value(json_object_get(y, "path_prefix"))))
                break;
            json_incref(x);
            json_array_set(routes, b - 1, y);
            json_array_set_new(routes, b, x);
        }
}

void tg_imp_krakend(struct tg_imp *im)
{
    struct kctx kc = {.im = im}, *k = &kc;
    json_error_t je;
    json_t *root = json_loadb(im->text, im->len, JSON_REJECT_DUPLICATES, &je);
    tg_config_json_lines(im->text, im->len, &im->lines);
    if (root == NULL || !json_is_object(root)) {
        tg_imp_error(im, je.line > 0 ? je.line : 1, je.column > 0 ? je.column : 1, "%s",
                     root == NULL ? je.text : "expected a JSON object (krakend.json)");
        json_decref(root);
        return;
    }
    json_t *tls_src = json_object_get(root, "tls");
    json_t *port = json_object_get(root, "port");
    const char *ip = json_string_value(json_object_get(root, "listen_ip"));
    long p = json_is_integer(port) ? (long)json_integer_value(port) : 8080;
    if (p < 1 || p > 65535) {
        tg_imp_error(im, LINE("/port"), 0, "port: %ld is not a port", p);
        json_decref(root);
        return;
    }
    json_t *l = tg_imp_listener(im, "krakend", ip ? ip : "0.0.0.0", p, "status");
    tg_imp_map(im, LINE("/port"), "port", "listeners[0].address (%s:%ld)", ip ? ip : "*", p);
    json_t *tls = json_object_get(l, "tls");
    if (tls_src == NULL || json_is_true(json_object_get(tls_src, "disabled"))) {
        json_object_set_new(tls, "disabled", json_true());
        tg_imp_warn(im, LINE("/tls"), "tls", "KrakenD serves plaintext here; so does the output");
    } else {
        server_tls(k, tls_src, tls);
    }
    json_t *btls = NULL;
    json_t *ctls = json_object_get(root, "client_tls");
    if (ctls != NULL) {
        btls = json_object();
        client_tls(k, ctls, btls);
    }
    json_t *routes = json_array();
    endpoints(k, root, btls, routes);
    if (json_array_size(routes) > 0) {
        json_object_set(l, "routes", routes);
    } else {
        const char *b = tg_imp_fallback_backend(im, LINE("/endpoints"), "endpoints");
        json_object_set_new(l, "routes",
                            json_pack("[{s:s, s:s}]", "path_prefix", "/", "backend", b));
        if (btls != NULL && strcmp(b, "backend") == 0)
            json_object_set(json_object_get(im->backends, "backend"), "tls", btls);
    }
    json_decref(routes);
    json_decref(btls);
    timeout(k, root, "timeout", "backend_response");
    timeout(k, root, "read_header_timeout", "request_headers");
    timeout(k, root, "read_timeout", "request_body");
    timeout(k, root, "idle_timeout", "idle");
    timeout(k, root, "write_timeout", NULL);
    json_t *mhb = json_object_get(root, "max_header_bytes");
    if (json_is_integer(mhb)) {
        json_int_t v = json_integer_value(mhb);
        json_int_t c = v < 1024 ? 1024 : v > 1048576 ? 1048576 : v;
        json_object_set_new(im->limits, "max_header_bytes", json_integer(c));
        if (c != v)
            tg_imp_warn(im, LINE("/max_header_bytes"), "max_header_bytes",
                        "%lld is outside 1024..1048576: limits.max_header_bytes = %lld",
                        (long long)v, (long long)c);
        else
            tg_imp_map(im, LINE("/max_header_bytes"), "max_header_bytes",
                       "limits.max_header_bytes = %lld", (long long)v);
    }
    static const char *const known[] = {
        "$schema",
        "version",
        "name",
        "port",
        "listen_ip",
        "tls",
        "client_tls",
        "endpoints",
        "host",
        "timeout",
        "cache_ttl",
        "read_header_timeout",
        "read_timeout",
        "idle_timeout",
        "write_timeout",
        "max_header_bytes",
        "output_encoding",
        "extra_config",
        "disable_rest",
        "plugin",
        "debug_endpoint",
        "echo_endpoint",
        "async_agent",
        "use_h2c",
        "dns_cache_ttl",
    };
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        size_t i = 0;
        char ptr[300];
        snprintf(ptr, sizeof(ptr), "/%s", key);
        while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], key) != 0)
            i++;
        if (strcmp(key, "use_h2c") == 0 && json_is_true(v))
            tg_imp_warn(im, LINE(ptr), "use_h2c", "HTTP/2 is not supported by tlsgate yet");
        else if (i == sizeof(known) / sizeof(known[0]))
            tg_imp_note(im, LINE(ptr), key, "not a KrakenD setting tlsgate knows; not mapped");
        else if (i == 10 || i >= 16)
            tg_imp_note(im, LINE(ptr), key, "not a TLS or listener setting; not mapped");
    }
    json_decref(root);
}
