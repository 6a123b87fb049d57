/* `tlsgate import corda`: a Corda 5 `corda.p2p.gateway` config section (JSON, as sent to the
 * REST `PUT /config`, whole request or the section alone). Corda pushes its TLS keys and trust
 * roots at run time, so the output names the files the operator supplies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/import.h"
#include "core/core.h"

#define KEY_CERT  "corda-p2p-tls.crt"
#define KEY_KEY   "corda-p2p-tls.key"
#define TRUST_PEM "corda-p2p-trust.pem"
/* An allow list entry no key can match (SHA-256 of nothing in use): Corda's empty list under
 * MUTUAL admits nobody, while tlsgate's empty list admits any chained certificate. */
#define NOBODY "spki:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* HOCON that JSON refuses: a line starting with an unquoted key (`sslConfig {`, `tlsType =
 * MUTUAL`, `a.b: 1`), or a '#' comment. */
static bool looks_like_hocon(const char *t)
{
    for (const char *line = t; line != NULL && *line != '\0';) {
        const char *p = line + strspn(line, " \t");
        if (*p == '#')
            return true;
        size_t key = 0;
        while ((p[key] >= 'a' && p[key] <= 'z') || (p[key] >= 'A' && p[key] <= 'Z') ||
               (p[key] >= '0' && p[key] <= '9') || p[key] == '_' || p[key] == '.' || p[key] == '-')
            key++;
        if (key > 0) {
            const char *q = p + key + strspn(p + key, " \t");
            if (*q == '=' || *q == '{' || *q == ':')
                return true;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return false;
}

struct cctx {
    struct tg_imp *im;
    const char *base; /* JSON pointer prefix of the section ("" or "/config" when nested) */
    int line0;        /* line of the nested section's string, 0 when the section is the file */
};

static int line_of(struct cctx *c, const char *rel)
{
    if (c->line0 > 0)
        return c->line0;
    return tg_imp_line(c->im, rel);
}

static double num(json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static void connection(struct cctx *c, json_t *cc)
{
    struct tg_imp *im = c->im;
    const char *key;
    json_t *v;
    json_object_foreach(cc, key, v)
    {
        char ptr[200], k[200];
        snprintf(ptr, sizeof(ptr), "/connectionConfig/%s", key);
        snprintf(k, sizeof(k), "connectionConfig.%s", key);
        int line = line_of(c, ptr);
        if (!json_is_number(v)) {
            tg_imp_error(im, line, 0, "%s: expected a number", k);
            continue;
        }
        double n = num(v);
        if (strcmp(key, "connectionIdleTimeout") == 0 && n > 0 && n <= 86400) {
            json_object_set_new(im->timeouts, "idle", json_real(n));
            tg_imp_map(im, line, k, "timeouts.idle = %g (seconds)", n);
        } else if (strcmp(key, "responseTimeout") == 0 && n > 0 && n <= 86400000) {
            tg_imp_note(im, line, k,
                        "the time Corda waits for a peer gateway's answer (%g ms), outbound; "
                        "tlsgate relays inbound only; not mapped",
                        n);
        } else {
            tg_imp_note(im, line, k,
                        "outbound connection pool setting (to peer gateways); tlsgate relays "
                        "inbound only; not mapped");
        }
    }
}

static void ssl_config(struct cctx *c, json_t *ssl, json_t *tls)
{
    struct tg_imp *im = c->im;
    json_t *type = json_object_get(ssl, "tlsType");
    const char *t = json_string_value(type);
    int tl = line_of(c, "/sslConfig/tlsType");
    if (type == NULL) {
        t = "ONE_WAY";
        tg_imp_note(im, line_of(c, "/sslConfig"), "sslConfig.tlsType",
                    "absent: Corda's default ONE_WAY");
    }
    if (t == NULL || (strcmp(t, "ONE_WAY") != 0 && strcmp(t, "MUTUAL") != 0)) {
        int col = 0;
        struct tg_doc_pos *pos = NULL;
        for (size_t i = 0; i < im->lines.n && c->line0 == 0; i++)
            if (strcmp(im->lines.v[i].ptr, "/sslConfig/tlsType") == 0)
                pos = &im->lines.v[i];
        if (pos != NULL)
            col = pos->col;
        tg_imp_error(im, tl, col, "sslConfig.tlsType: expected \"ONE_WAY\" or \"MUTUAL\", found %s",
                     t != NULL ? t : "a non-string");
        return;
    }
    json_t *rev = json_object_get(json_object_get(ssl, "revocationCheck"), "mode");
    const char *rm = json_string_value(rev);
    int rl = line_of(c, "/sslConfig/revocationCheck/mode");
    const char *mode = NULL;
    if (rev != NULL) {
        if (rm != NULL && strcmp(rm, "OFF") == 0)
            mode = "off";
        else if (rm != NULL && strcmp(rm, "SOFT_FAIL") == 0)
            mode = "soft_fail";
        else if (rm != NULL && strcmp(rm, "HARD_FAIL") == 0)
            mode = "hard_fail";
        else {
            tg_imp_error(im, rl, 0,
                         "sslConfig.revocationCheck.mode: expected OFF, SOFT_FAIL or HARD_FAIL");
            return;
        }
    }
    if (strcmp(t, "MUTUAL") == 0) {
        char *trust = tg_imp_path(im, NULL, TRUST_PEM);
        json_object_set_new(im->truststores, "corda-trust",
                            json_pack("{s:s, s:s}", "type", "pem", "file", trust));
        json_t *ca = json_pack("{s:s, s:s, s:[s]}", "mode", "require", "truststore", "corda-trust",
                               "allowed_subjects", NOBODY);
        if (mode != NULL) {
            json_object_set_new(ca, "revocation", json_pack("{s:s}", "mode", mode));
            tg_imp_map(im, rl, "sslConfig.revocationCheck.mode",
                       "listeners[*].tls.client_auth.revocation.mode = \"%s\"", mode);
        }
        json_object_set_new(tls, "client_auth", ca);
        tg_imp_map(im, tl, "sslConfig.tlsType",
                   "listeners[*].tls.client_auth.mode = \"require\" (truststore corda-trust)");
        if (access(trust, R_OK) != 0)
            tg_imp_warn(im, tl, "sslConfig.tlsType",
                        "supply %s: the group's TLS trust roots (Corda distributes them in the "
                        "group policy)",
                        trust);
        tg_imp_warn(im, tl, "sslConfig.tlsType",
                    "under MUTUAL Corda admits only the client subjects on the MGM's allowed "
                    "list, and nobody while it is empty; kept: allowed_subjects holds one entry "
                    "no certificate matches. Replace it with the subjects the MGM allows");
        free(trust);
    } else {
        tg_imp_map(im, tl, "sslConfig.tlsType", "listeners[*].tls.client_auth.mode = \"none\"");
        if (mode != NULL && strcmp(mode, "off") != 0)
            tg_imp_note(im, rl, "sslConfig.revocationCheck.mode",
                        "under ONE_WAY it applies to peer gateways' server certificates "
                        "(outbound), which tlsgate does not make here; not mapped");
    }
}

static void section(struct cctx *c, json_t *cfg)
{
    struct tg_imp *im = c->im;
    char *cert = tg_imp_path(im, NULL, KEY_CERT), *key = tg_imp_path(im, NULL, KEY_KEY);
    json_t *ks = tg_imp_keystore(im, "corda-p2p", "pem");
    json_object_set_new(ks, "cert", json_string(cert));
    json_object_set_new(ks, "key", json_string(key));
    if (access(cert, R_OK) == 0 && access(key, R_OK) == 0)
        tg_imp_note(im, 0, "(keys)",
                    "Corda pushes the gateway's TLS key at run time; using the "
                    "supplied %s and %s",
                    cert, key);
    else
        tg_imp_warn(im, 0, "(keys)",
                    "Corda pushes the gateway's TLS key and certificate at run time; supply "
                    "them as %s and %s (PEM)",
                    cert, key);
    free(cert);
    free(key);
    json_t *tls = json_pack("{s:[s], s:s, s:s, s:[s,s]}", "certificates", "corda-p2p",
                            "min_version", "TLS1.3", "max_version", "TLS1.3", "cipher_suites",
                            "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384");
    tg_imp_note(im, 0, "(fixed)",
                "Corda's gateway speaks TLS 1.3 only with the AES-GCM suites and gives a "
                "handshake 10 s: tls min/max_version TLS1.3, cipher_suites, timeouts.handshake = "
                "10");
    json_object_set_new(im->timeouts, "handshake", json_integer(10));
    json_t *ssl = json_object_get(cfg, "sslConfig");
    ssl_config(c, ssl, tls);
    static const char *const sk[] = {"tlsType", "revocationCheck"};
    tg_imp_other_keys(im, ssl, "/sslConfig", "sslConfig", sk, 2,
                      "not a corda.p2p.gateway sslConfig key tlsgate knows; not mapped");
    if (im->errors > 0) {
        json_decref(tls);
        return;
    }
    json_t *servers = json_object_get(cfg, "serversConfiguration");
    json_t *legacy = NULL;
    if (servers == NULL && json_object_get(cfg, "hostPort") != NULL) {
        legacy = json_pack("[{s:O, s:O?, s:O?}]", "hostPort", json_object_get(cfg, "hostPort"),
                           "hostAddress", json_object_get(cfg, "hostAddress"), "urlPath",
                           json_object_get(cfg, "urlPath"));
        servers = legacy;
    }
    if (!json_is_array(servers) || json_array_size(servers) == 0) {
        tg_imp_error(im, line_of(c, ""), 0,
                     "serversConfiguration: expected a list of servers "
                     "(hostAddress, hostPort, urlPath)");
        json_decref(tls);
        return;
    }
    const char *backend = tg_imp_fallback_backend(im, 0, "(link manager)");
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s)
    {
        char ptr[64], k[64], name[32];
        snprintf(ptr, sizeof(ptr), "/serversConfiguration/%zu", i);
        snprintf(k, sizeof(k), "serversConfiguration[%zu]", i);
        int line = line_of(c, ptr);
        json_t *port = json_object_get(s, "hostPort");
        const char *host = json_string_value(json_object_get(s, "hostAddress"));
        const char *path = json_string_value(json_object_get(s, "urlPath"));
        if (!json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535) {
            tg_imp_error(im, line, 0, "%s.hostPort: expected a port (1..65535)", k);
            continue;
        }
        snprintf(name, sizeof(name), "corda-p2p-%zu", i);
        json_t *l = tg_imp_listener(im, name, host ? host : "0.0.0.0",
                                    (long)json_integer_value(port), backend);
        json_object_set(l, "tls", tls);
        if (path != NULL && strcmp(path, "/") != 0) {
            json_object_set_new(json_array_get(json_object_get(l, "routes"), 0), "path_prefix",
                                json_string(path));
            tg_imp_map(im, line, k, "listeners.%s (%s:%lld, route %s)", name, host ? host : "*",
                       (long long)json_integer_value(port), path);
        } else {
            tg_imp_map(im, line, k, "listeners.%s (%s:%lld)", name, host ? host : "*",
                       (long long)json_integer_value(port));
        }
    }
    json_decref(legacy);
    json_decref(tls);
    json_t *mrs = json_object_get(cfg, "maxRequestSize");
    if (mrs != NULL)
        tg_imp_warn(im, line_of(c, "/maxRequestSize"), "maxRequestSize",
                    "tlsgate has no request body size limit yet; not mapped");
    json_t *cc = json_object_get(cfg, "connectionConfig");
    if (cc != NULL)
        connection(c, cc);
    const char *key2;
    json_t *v;
    json_object_foreach(cfg, key2, v)
    {
        static const char *const known[] = {
            "serversConfiguration", "maxRequestSize", "connectionConfig", "sslConfig",
            "hostAddress",          "hostPort",       "urlPath"};
        size_t n = 0;
        while (n < sizeof(known) / sizeof(known[0]) && strcmp(known[n], key2) != 0)
            n++;
        if (n == sizeof(known) / sizeof(known[0])) {
            char ptr[300];
            snprintf(ptr, sizeof(ptr), "/%s", key2);
            tg_imp_note(im, line_of(c, ptr), key2,
                        "not a corda.p2p.gateway key tlsgate knows; not mapped");
        }
    }
}

void tg_imp_corda(struct tg_imp *im)
{
    struct cctx c = {.im = im, .base = ""};
    json_error_t je;
    json_t *root = json_loadb(im->text, im->len, JSON_REJECT_DUPLICATES, &je);
    tg_config_json_lines(im->text, im->len, &im->lines);
    if (root == NULL) {
        tg_imp_error(im, je.line > 0 ? je.line : 1, je.column > 0 ? je.column : 1, "%s%s", je.text,
                     looks_like_hocon(im->text)
                         ? " (this looks like HOCON; give the section as JSON, e.g. as "
                           "`corda-cli` or the REST API's GET /config prints it)"
                         : "");
        return;
    }
    json_t *cfg = root;
    json_t *inner = NULL;
    /* the whole PUT /config request: {"section": ..., "config": "<JSON text>", ...} */
    if (json_is_string(json_object_get(root, "config"))) {
        const char *sec = json_string_value(json_object_get(root, "section"));
        c.line0 = tg_imp_line(im, "/config");
        if (sec != NULL && strcmp(sec, "corda.p2p.gateway") != 0) {
            tg_imp_error(im, tg_imp_line(im, "/section"), 0,
                         "section \"%s\" is not corda.p2p.gateway", sec);
            json_decref(root);
            return;
        }
        const char *text = json_string_value(json_object_get(root, "config"));
        inner = json_loads(text, JSON_REJECT_DUPLICATES, &je);
        if (inner == NULL) {
            tg_imp_error(im, c.line0, 0, "config: %s at line %d column %d of the string%s", je.text,
                         je.line, je.column,
                         looks_like_hocon(text) ? " (this looks like HOCON; give it as JSON)" : "");
            json_decref(root);
            return;
        }
        tg_imp_map(im, c.line0, "config",
                   "the corda.p2p.gateway section (lines below are "
                   "this string's line)");
        cfg = inner;
    }
    if (!json_is_object(cfg))
        tg_imp_error(im, 1, 1, "expected a JSON object (the corda.p2p.gateway section)");
    else
        section(&c, cfg);
    json_decref(inner);
    json_decref(root);
}
