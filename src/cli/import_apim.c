/* `tlsgate import apim`: WSO2 API Manager's repository/conf/deployment.toml: keystores with
 * their $ref/$secret/$env/$sys values, the truststore, the servlet HTTPS transport (9443) and
 * the gateway's pass-through HTTPS transport (8243), each shifted by [server] offset. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/import.h"
#include "core/core.h"

struct actx {
    struct tg_imp *im;
    json_t *root;
    char *security; /* <carbon home>/repository/resources/security */
};

static json_t *at(json_t *root, const char *dotted)
{
    char tok[256];
    json_t *v = root;
    while (v != NULL && tg_imp_token(&dotted, ".", tok, sizeof(tok)))
        v = json_object_get(v, tok);
    return v;
}

static int line_at(struct actx *a, const char *dotted)
{
    char ptr[260];
    size_t w = 0;
    ptr[w++] = '/';
    for (const char *p = dotted; *p && w + 1 < sizeof(ptr); p++)
        ptr[w++] = *p == '.' ? '/' : *p;
    ptr[w] = '\0';
    return tg_imp_line(a->im, ptr);
}

/* A password value as tlsgate writes it: "text", {"env": N}; NULL (with an error) if it cannot
 * be resolved. depth bounds $ref chains. */
static json_t *secret(struct actx *a, const char *key, json_t *v, int depth)
{
    struct tg_imp *im = a->im;
    int line = line_at(a, key);
    const char *s = json_string_value(v);
    if (s == NULL) {
        tg_imp_error(im, line, 0, "%s: expected a string", key);
        return NULL;
    }
    size_t n = strlen(s);
    char inner[200];
    if (n > 6 && n - 6 < sizeof(inner) && strncmp(s, "$ref{", 5) == 0 && s[n - 1] == '}') {
        snprintf(inner, sizeof(inner), "%.*s", (int)(n - 6), s + 5);
        json_t *t = at(a->root, inner);
        if (t == NULL || depth > 8) {
            tg_imp_error(im, line, 0, "%s: $ref{%s} names no key of the file%s", key, inner,
                         depth > 8 ? " (or the references loop)" : "");
            return NULL;
        }
        return secret(a, inner, t, depth + 1);
    }
    if (n > 9 && n - 9 < sizeof(inner) && strncmp(s, "$secret{", 8) == 0 && s[n - 1] == '}') {
        snprintf(inner, sizeof(inner), "%.*s", (int)(n - 9), s + 8);
        char k2[220];
        snprintf(k2, sizeof(k2), "secrets.%s", inner);
        const char *val =
            json_string_value(json_object_get(json_object_get(a->root, "secrets"), inner));
        if (val == NULL) {
            tg_imp_error(im, line, 0, "%s: $secret{%s} has no entry in [secrets]", key, inner);
            return NULL;
        }
        size_t vn = strlen(val);
        if (vn >= 2 && val[0] == '[' && val[vn - 1] == ']') {
            tg_imp_note(im, line_at(a, k2), k2,
                        "a plain-text secret (not yet encrypted by the cipher tool); used as "
                        "the password, value not shown");
            return json_stringn(val + 1, vn - 2);
        }
        char env[240];
        size_t w = (size_t)snprintf(env, sizeof(env), "APIM_SECRET_");
        for (const char *p = inner; *p && w + 1 < sizeof(env); p++)
            env[w++] = (char)((*p >= 'a' && *p <= 'z')                                 ? *p - 32
                              : ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p
                                                                                       : '_');
        env[w] = '\0';
        tg_imp_warn(im, line_at(a, k2), k2,
                    "encrypted by WSO2's cipher tool (with the primary keystore); tlsgate reads "
                    "it from the environment variable %s: set it to the plain value, or seal it "
                    "with `tlsgate secret encrypt`",
                    env);
        return json_pack("{s:s}", "env", env);
    }
    if (n > 6 && n - 6 < sizeof(inner) && strncmp(s, "$env{", 5) == 0 && s[n - 1] == '}')
        return json_pack("{s:s%}", "env", s + 5, n - 6);
    if (n > 6 && n - 6 < sizeof(inner) && strncmp(s, "$sys{", 5) == 0 && s[n - 1] == '}') {
        char env[200];
        size_t w = 0;
        for (size_t i = 5; i + 1 < n && w + 1 < sizeof(env); i++)
            env[w++] =
                (char)((s[i] >= 'a' && s[i] <= 'z')                                     ? s[i] - 32
                       : ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')) ? s[i]
                                                                                        : '_');
        env[w] = '\0';
        tg_imp_warn(im, line, key,
                    "a Java system property has no tlsgate equivalent; read from the "
                    "environment variable %s instead",
                    env);
        return json_pack("{s:s}", "env", env);
    }
    return json_string(s);
}

static const char *store_type(struct actx *a, const char *key, const char *t)
{
    if (t == NULL || strcasecmp(t, "JKS") == 0)
        return "jks";
    if (strcasecmp(t, "PKCS12") == 0)
        return "pkcs12";
    if (strcasecmp(t, "JCEKS") == 0)
        return "jceks";
    tg_imp_error(a->im, line_at(a, key), 0, "%s: store type \"%s\" is not JKS, JCEKS or PKCS12",
                 key, t);
    return NULL;
}

/* [keystore.<which>] (falling back to [keystore.primary], then Carbon's defaults) as the
 * keystore named name. */
static bool keystore(struct actx *a, const char *which, const char *name)
{
    struct tg_imp *im = a->im;
    char sect[64], k[128];
    snprintf(sect, sizeof(sect), "keystore.%s", which);
    json_t *own = at(a->root, sect), *primary = at(a->root, "keystore.primary");
    static const char *const fields[] = {"file_name", "type", "password", "alias", "key_password"};
    static const char *const dflt[] = {"wso2carbon.jks", "JKS", "wso2carbon", "wso2carbon",
                                       "wso2carbon"};
    json_t *val[5];
    char from[5][128];
    for (int i = 0; i < 5; i++) {
        val[i] = json_object_get(own, fields[i]);
        snprintf(from[i], sizeof(from[i]), "%s.%s", sect, fields[i]);
        if (val[i] == NULL && strcmp(which, "primary") != 0) {
            val[i] = json_object_get(primary, fields[i]);
            snprintf(from[i], sizeof(from[i]), "keystore.primary.%s", fields[i]);
        }
        if (val[i] == NULL)
            snprintf(from[i], sizeof(from[i]), "(Carbon default %s)", fields[i]);
    }
    const char *file = val[0] ? json_string_value(val[0]) : dflt[0];
    const char *type = store_type(a, from[1], val[1] ? json_string_value(val[1]) : dflt[1]);
    if (file == NULL || type == NULL)
        return false;
    char *path = tg_imp_path(im, a->security, file);
    bool ok = tg_imp_need_file(im, line_at(a, from[0]), from[0], path);
    json_t *pw = val[2] ? secret(a, from[2], val[2], 0) : json_string(dflt[2]);
    json_t *kpw = val[4] ? secret(a, from[4], val[4], 0) : json_string(dflt[4]);
    if (ok && pw != NULL && kpw != NULL) {
        json_t *ks = tg_imp_keystore(im, name, type);
        json_object_set_new(ks, "file", json_string(path));
        json_object_set(ks, "password", pw);
        json_object_set_new(ks, "alias", json_string(val[3] ? json_string_value(val[3]) : dflt[3]));
        snprintf(k, sizeof(k), "keystore.%s", which);
        tg_imp_map(im, line_at(a, own != NULL ? sect : "keystore.primary"), k,
                   "keystores.%s (%s %s, alias %s; password from %s)", name, type, path,
                   val[3] ? json_string_value(val[3]) : dflt[3], from[2]);
        if (!json_equal(pw, kpw) && strcmp(name, "internal") != 0)
            tg_imp_warn(im, line_at(a, from[4]), from[4],
                        "APIM's HTTPS transports open the key with the store password, so a "
                        "different key_password is never used by them; the output does the "
                        "same (no key_password)");
        else if (strcmp(name, "internal") == 0 && !json_equal(pw, kpw))
            json_object_set(ks, "key_password", kpw);
    }
    json_decref(pw);
    json_decref(kpw);
    free(path);
    return ok && im->errors == 0;
}

static const char *truststore(struct actx *a)
{
    struct tg_imp *im = a->im;
    json_t *t = json_object_get(a->root, "truststore");
    const char *file = json_string_value(json_object_get(t, "file_name"));
    const char *type =
        store_type(a, "truststore.type", json_string_value(json_object_get(t, "type")));
    if (type == NULL)
        return NULL;
    char *path = tg_imp_path(im, a->security, file ? file : "client-truststore.jks");
    json_t *pwv = json_object_get(t, "password");
    json_t *pw = pwv ? secret(a, "truststore.password", pwv, 0) : json_string("wso2carbon");
    if (tg_imp_need_file(im, line_at(a, "truststore.file_name"), "truststore.file_name", path) &&
        pw != NULL) {
        json_object_set_new(
            im->truststores, "apim-trust",
            json_pack("{s:s, s:s, s:O}", "type", type, "file", path, "password", pw));
        tg_imp_map(im, line_at(a, "truststore"), "truststore", "truststores.apim-trust (%s %s)",
                   type, path);
    }
    json_decref(pw);
    free(path);
    return im->errors == 0 ? "apim-trust" : NULL;
}

/* "TLSv1.2,TLSv1.3" or Tomcat's "+TLSv1.2 +TLSv1.3" into min/max_version. */
static void protocols(struct actx *a, const char *key, const char *s, json_t *tls, const char *tk)
{
    struct tg_imp *im = a->im;
    int line = line_at(a, key), lo = 9, hi = -1;
    char tok[64];
    while (tg_imp_token(&s, ", +", tok, sizeof(tok))) {
        const char *v = tg_imp_version(tok);
        if (v == NULL) {
            tg_imp_warn(im, line, key,
                        "\"%s\" is not a TLS version this OpenSSL serves "
                        "(SSLv3 and SSLv2Hello are refused); left out",
                        tok);
            continue;
        }
        lo = v[5] - '0' < lo ? v[5] - '0' : lo;
        hi = v[5] - '0' > hi ? v[5] - '0' : hi;
    }
    if (hi < 0)
        return;
    char m1[16], m2[16];
    snprintf(m1, sizeof(m1), "TLS1.%d", lo);
    snprintf(m2, sizeof(m2), "TLS1.%d", hi);
    json_object_set_new(tls, "min_version", json_string(m1));
    json_object_set_new(tls, "max_version", json_string(m2));
    tg_imp_map(im, line, key, "%s.min_version = \"%s\", max_version = \"%s\"", tk, m1, m2);
    if (lo < 2)
        tg_imp_warn(im, line, key, "TLS 1.%d is on, as in the source (legacy)", lo);
}

static void suites(struct actx *a, const char *key, json_t *v, json_t *tls, const char *tk)
{
    const char *s = json_string_value(v);
    if (s == NULL) {
        tg_imp_java_suites(a->im, 0, key, tls, tk);
        return;
    }
    json_t *names = json_array();
    char tok[128];
    while (tg_imp_token(&s, ", \t\n", tok, sizeof(tok)))
        json_array_append_new(names, json_string(tok));
    tg_imp_ciphers(a->im, line_at(a, key), key, names, tls, tk);
    json_decref(names);
}

static void verify_client(struct actx *a, const char *key, const char *v, json_t *tls,
                          const char *tk, const char *trust)
{
    struct tg_imp *im = a->im;
    const char *mode = NULL;
    if (v == NULL || strcasecmp(v, "none") == 0 || strcasecmp(v, "false") == 0)
        return;
    if (strcasecmp(v, "require") == 0 || strcasecmp(v, "required") == 0 ||
        strcasecmp(v, "true") == 0)
        mode = "require";
    else if (strcasecmp(v, "optional") == 0 || strcasecmp(v, "want") == 0)
        mode = "optional";
    else {
        tg_imp_error(im, line_at(a, key), 0, "%s: \"%s\" is not require, optional or none", key, v);
        return;
    }
    json_object_set_new(tls, "client_auth",
                        json_pack("{s:s, s:s}", "mode", mode, "truststore", trust));
    tg_imp_map(im, line_at(a, key), key, "%s.client_auth.mode = \"%s\" (truststore apim-trust)", tk,
               mode);
}

static long port_of(struct actx *a, const char *key, long dflt, long offset)
{
    json_t *v = at(a->root, key);
    long p = (json_is_integer(v) ? (long)json_integer_value(v) : dflt) + offset;
    if (p < 1 || p > 65535) {
        tg_imp_error(a->im, line_at(a, key), 0, "%s: %ld (with [server] offset) is not a port", key,
                     p);
        return -1;
    }
    return p;
}

void tg_imp_apim(struct tg_imp *im)
{
    struct tg_toml_error te;
    json_t *root = NULL;
    if (tg_config_toml_parse(im->text, im->len, &root, &im->lines, &te) != 0) {
        tg_imp_error(im, te.line, te.col, "%s", te.msg);
        return;
    }
    struct actx a = {.im = im, .root = root};
    /* deployment.toml lives in <carbon home>/repository/conf */
    size_t n = strlen(im->src_dir) + 32;
    a.security = tg_xmalloc(n);
    snprintf(a.security, n, "%s/../resources/security", im->src_dir);
    char *real = realpath(a.security, NULL);
    if (real != NULL) {
        free(a.security);
        a.security = real;
    }
    const char *trust = NULL;
    if (!keystore(&a, "tls", "tls"))
        goto out;
    if (at(root, "keystore.internal") != NULL && !keystore(&a, "internal", "internal"))
        goto out;
    trust = truststore(&a);
    if (trust == NULL)
        goto out;
    json_t *offv = at(root, "server.offset");
    long offset = json_is_integer(offv) ? (long)json_integer_value(offv) : 0;
    if (offv != NULL)
        tg_imp_map(im, line_at(&a, "server.offset"), "server.offset", "added to every port (%ld)",
                   offset);
    const char *host = json_string_value(at(root, "server.hostname"));
    if (host != NULL)
        tg_imp_note(im, line_at(&a, "server.hostname"), "server.hostname",
                    "the name APIM puts in URLs; tlsgate listens on every address");
    const char *backend = tg_imp_fallback_backend(im, 0, "(APIs)");
    /* the servlet transport (Tomcat): publisher, developer portal, management APIs */
    long p1 = port_of(&a, "transport.https.properties.port", 9443, offset);
    json_t *pt = at(root, "transport.passthru_https.listener");
    long p2 = port_of(&a, "transport.passthru_https.listener.port", 8243, offset);
    if (p1 < 0 || p2 < 0)
        goto out;
    json_t *l1 = tg_imp_listener(im, "apim-https", "0.0.0.0", p1, backend);
    tg_imp_map(im, line_at(&a, "transport.https.properties.port"), "transport.https",
               "listeners.apim-https (*:%ld)", p1);
    json_t *tls1 = json_object_get(l1, "tls");
    json_object_set_new(tls1, "certificates", json_pack("[s]", "tls"));
    const char *sh = "transport.https.sslHostConfig.properties";
    json_t *shp = at(root, sh);
    const char *pr = json_string_value(json_object_get(shp, "protocols"));
    char key[200];
    snprintf(key, sizeof(key), "%s.protocols", sh);
    protocols(&a, key, pr ? pr : "TLSv1.2,TLSv1.3", tls1, "listeners[0].tls");
    snprintf(key, sizeof(key), "%s.ciphers", sh);
    suites(&a, key, json_object_get(shp, "ciphers"), tls1, "listeners[0].tls");
    snprintf(key, sizeof(key), "%s.certificateVerification", sh);
    verify_client(&a, key, json_string_value(json_object_get(shp, "certificateVerification")), tls1,
                  "listeners[0].tls", trust);
    /* the gateway's pass-through transport (Synapse) */
    if (json_is_false(json_object_get(pt, "enable"))) {
        tg_imp_map(im, line_at(&a, "transport.passthru_https.listener.enable"),
                   "transport.passthru_https.listener.enable", "disabled: no listener");
    } else {
        json_t *l2 = tg_imp_listener(im, "apim-gateway", "0.0.0.0", p2, backend);
        tg_imp_map(im, line_at(&a, "transport.passthru_https.listener"),
                   "transport.passthru_https.listener", "listeners.apim-gateway (*:%ld)", p2);
        json_t *tls2 = json_object_get(l2, "tls");
        json_object_set_new(tls2, "certificates", json_pack("[s]", "tls"));
        const char *lp = "transport.passthru_https.listener.parameters";
        json_t *lpp = at(root, lp);
        const char *hp = json_string_value(json_object_get(lpp, "HttpsProtocols"));
        snprintf(key, sizeof(key), "%s.HttpsProtocols", lp);
        protocols(&a, key, hp ? hp : "TLSv1.2,TLSv1.3", tls2, "listeners[1].tls");
        snprintf(key, sizeof(key), "%s.PreferredCiphers", lp);
        suites(&a, key, json_object_get(lpp, "PreferredCiphers"), tls2, "listeners[1].tls");
        snprintf(key, sizeof(key), "%s.SSLVerifyClient", lp);
        verify_client(&a, key, json_string_value(json_object_get(lpp, "SSLVerifyClient")), tls2,
                      "listeners[1].tls", trust);
        json_t *crv = json_object_get(pt, "cert_revocation_validation");
        if (json_is_false(json_object_get(crv, "enable")))
            tg_imp_map(im,
                       line_at(&a, "transport.passthru_https.listener.cert_revocation_validation"),
                       "transport.passthru_https.listener.cert_revocation_validation.enable",
                       "revocation off (tlsgate's default)");
        if (json_is_true(json_object_get(crv, "enable"))) {
            json_t *ca = json_object_get(tls2, "client_auth");
            const char *k2 = "transport.passthru_https.listener.cert_revocation_validation";
            if (ca != NULL) {
                json_object_set_new(ca, "revocation", json_pack("{s:s}", "mode", "hard_fail"));
                tg_imp_map(im, line_at(&a, k2), k2,
                           "listeners[1].tls.client_auth.revocation.mode = \"hard_fail\" (OCSP, "
                           "then CRL; refused when neither answers, as Synapse does)");
            } else {
                tg_imp_note(im, line_at(&a, k2), k2,
                            "no client certificates are asked for; "
                            "nothing to check");
            }
        }
    }
    /* the sender: TLS to backends */
    const char *sp = "transport.passthru_https.sender.parameters";
    json_t *spp = at(root, sp);
    const char *hv = json_string_value(json_object_get(spp, "HostnameVerifier"));
    json_t *b = json_object_get(im->backends, "backend");
    json_t *btls = b ? json_object_get(b, "tls") : NULL;
    if (btls != NULL) {
        json_object_set_new(btls, "truststore", json_string(trust));
        tg_imp_map(im, line_at(&a, "truststore"), "truststore",
                   "backends.backend.tls.truststore (the pass-through sender's trust)");
    }
    snprintf(key, sizeof(key), "%s.HostnameVerifier", sp);
    if (hv != NULL && strcasecmp(hv, "AllowAll") == 0)
        tg_imp_warn(im, line_at(&a, key), key,
                    "AllowAll skips the backend name check; tlsgate always checks the name of a "
                    "verified backend (stricter)");
    else if (hv != NULL)
        tg_imp_map(im, line_at(&a, key), key, "names are checked (%s)", hv);
    static const char *const top[] = {"server", "keystore", "truststore", "transport", "secrets"};
    tg_imp_other_keys(im, root, "", "", top, sizeof(top) / sizeof(top[0]),
                      "not a TLS setting; not mapped");
    json_t *mh = at(root, "transport.https.properties.maxHttpHeaderSize");
    if (json_is_integer(mh)) {
        json_int_t v = json_integer_value(mh);
        json_int_t c = v < 1024 ? 1024 : v > 1048576 ? 1048576 : v;
        json_object_set_new(im->limits, "max_header_bytes", json_integer(c));
        tg_imp_map(im, line_at(&a, "transport.https.properties.maxHttpHeaderSize"),
                   "transport.https.properties.maxHttpHeaderSize",
                   "limits.max_header_bytes = %lld (for every listener)", (long long)c);
        if (c != v)
            tg_imp_warn(im, line_at(&a, "transport.https.properties.maxHttpHeaderSize"),
                        "transport.https.properties.maxHttpHeaderSize",
                        "%lld is outside 1024..1048576", (long long)v);
    }
    static const char *const hpk[] = {"port", "maxHttpHeaderSize"};
    tg_imp_other_keys(im, at(root, "transport.https.properties"), "/transport/https/properties",
                      "transport.https.properties", hpk, 2, "not a TLS setting; not mapped");
    static const char *const srv[] = {"hostname", "offset"};
    tg_imp_other_keys(im, json_object_get(root, "server"), "/server", "server", srv, 2,
                      "not a TLS setting; not mapped");
    static const char *const kss[] = {"primary", "tls", "internal"};
    tg_imp_other_keys(im, json_object_get(root, "keystore"), "/keystore", "keystore", kss, 3,
                      "not a keystore tlsgate serves with; not mapped");
    static const char *const tr[] = {"https", "passthru_https"};
    tg_imp_other_keys(im, json_object_get(root, "transport"), "/transport", "transport", tr, 2,
                      "not an HTTPS transport; not mapped");
    static const char *const lpk[] = {"HttpsProtocols", "PreferredCiphers", "SSLVerifyClient"};
    tg_imp_other_keys(im, at(root, "transport.passthru_https.listener.parameters"),
                      "/transport/passthru_https/listener/parameters",
                      "transport.passthru_https.listener.parameters", lpk, 3,
                      "not a key tlsgate knows; not mapped");
    static const char *const shk[] = {"protocols", "ciphers", "certificateVerification"};
    tg_imp_other_keys(im, at(root, "transport.https.sslHostConfig.properties"),
                      "/transport/https/sslHostConfig/properties",
                      "transport.https.sslHostConfig.properties", shk, 3,
                      "not a key tlsgate knows; not mapped");
    static const char *const spk[] = {"HostnameVerifier"};
    tg_imp_other_keys(im, at(root, "transport.passthru_https.sender.parameters"),
                      "/transport/passthru_https/sender/parameters",
                      "transport.passthru_https.sender.parameters", spk, 1,
                      "not a key tlsgate knows; not mapped");
    if (json_is_true(at(root, "transport.passthru_https.sender.cert_revocation_validation.enable")))
        tg_imp_warn(im, 0, "transport.passthru_https.sender.cert_revocation_validation",
                    "tlsgate does not check backends' certificates for revocation yet");
out:
    free(a.security);
    json_decref(root);
}
