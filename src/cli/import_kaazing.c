/* `tlsgate import kaazing`: Kaazing Gateway's gateway-config.xml: <security> keystore and
 * truststore with their password files, and each service's accept/connect URIs with
 * accept-options/connect-options (ssl.* and tls.* spellings, *.bind). Read with libxml2, with
 * no network access, no DTD and no entity expansion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "cli/import.h"
#include "core/core.h"

struct kz {
    struct tg_imp *im;
    xmlDocPtr doc;
    xmlNodePtr props; /* <properties> */
    const char *ts;   /* the truststore name in the output, or NULL */
    json_t *ks_obj;   /* the keystore template (aliases are per accept host) */
    int n_listeners;
};

static bool is(xmlNodePtr n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c != NULL; c = c->next)
        if (is(c, name))
            return c;
    return NULL;
}

static int line(xmlNodePtr n)
{
    long l = n ? xmlGetLineNo(n) : 0;
    return l > 0 && l < 1000000000 ? (int)l : 0;
}

/* An element's text with ${property} replaced from <properties>, trimmed; newly allocated, or
 * NULL (with an error) for an unknown property. */
static char *text(struct kz *k, xmlNodePtr n)
{
    xmlChar *raw = xmlNodeGetContent(n);
    const char *s = raw ? (const char *)raw : "";
    size_t cap = strlen(s) + 256, w = 0;
    char *out = tg_xmalloc(cap);
    for (const char *p = s; *p != '\0';) {
        if (p[0] == '$' && p[1] == '{' && strchr(p, '}') != NULL) {
            const char *end = strchr(p, '}');
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(end - p - 2), p + 2);
            const char *val = NULL;
            for (xmlNodePtr pr = k->props ? k->props->children : NULL; pr && !val; pr = pr->next) {
                xmlNodePtr nm = child(pr, "name"), vl = child(pr, "value");
                xmlChar *nt = nm ? xmlNodeGetContent(nm) : NULL;
                if (nt != NULL && strcmp((const char *)nt, name) == 0 && vl != NULL) {
                    xmlChar *vt = xmlNodeGetContent(vl);
                    size_t vn = vt ? strlen((const char *)vt) : 0;
                    if (w + vn + 1 > cap)
                        out = tg_xrealloc(out, cap = w + vn + 256);
                    memcpy(out + w, vt ? (const char *)vt : "", vn);
                    w += vn;
                    xmlFree(vt);
                    val = "";
                }
                xmlFree(nt);
            }
            if (val == NULL) {
                tg_imp_error(k->im, line(n), 0,
                             "<%s>: property ${%s} is not defined in "
                             "<properties>",
                             (const char *)n->name, name);
                xmlFree(raw);
                free(out);
                return NULL;
            }
            p = end + 1;
            continue;
        }
        if (w + 2 > cap)
            out = tg_xrealloc(out, cap *= 2);
        out[w++] = *p++;
    }
    out[w] = '\0';
    xmlFree(raw);
    size_t a = strspn(out, " \t\r\n");
    memmove(out, out + a, w - a + 1);
    w -= a;
    while (w > 0 && strchr(" \t\r\n", out[w - 1]) != NULL)
        out[--w] = '\0';
    return out;
}

/* ssl.X or its alias tls.X among options' children. */
static xmlNodePtr opt(xmlNodePtr options, const char *what, char *key, size_t n)
{
    char a[64], b[64];
    snprintf(a, sizeof(a), "ssl.%s", what);
    snprintf(b, sizeof(b), "tls.%s", what);
    xmlNodePtr v = child(options, a);
    snprintf(key, n, "%s", a);
    if (v == NULL) {
        v = child(options, b);
        snprintf(key, n, "%s", b);
    }
    return v;
}

static void store_password(struct kz *k, xmlNodePtr store, json_t *obj, const char *what)
{
    xmlNodePtr pf = child(store, "password-file");
    if (pf == NULL)
        return;
    char *f = text(k, pf);
    if (f == NULL)
        return;
    char *path = tg_imp_path(k->im, NULL, f);
    char key[64];
    snprintf(key, sizeof(key), "security.%s.password-file", what);
    if (tg_imp_need_file(k->im, line(pf), key, path)) {
        json_object_set_new(obj, "password", json_pack("{s:s}", "file", path));
        tg_imp_map(k->im, line(pf), key, "password {\"file\": \"%s\"}", path);
    }
    free(path);
    free(f);
}

static void security(struct kz *k, xmlNodePtr sec)
{
    struct tg_imp *im = k->im;
    xmlNodePtr ks = child(sec, "keystore"), ts = child(sec, "truststore");
    if (ks != NULL) {
        xmlNodePtr file = child(ks, "file"), type = child(ks, "type");
        char *f = file ? text(k, file) : NULL, *t = type ? text(k, type) : NULL;
        if (f != NULL) {
            char *path = tg_imp_path(im, NULL, f);
            const char *tt = t == NULL || strcasecmp(t, "JCEKS") == 0 ? "jceks"
                             : strcasecmp(t, "JKS") == 0              ? "jks"
                             : strcasecmp(t, "PKCS12") == 0           ? "pkcs12"
                                                                      : NULL;
            if (tt == NULL)
                tg_imp_error(im, line(type), 0,
                             "security.keystore.type: \"%s\" is not JCEKS, "
                             "JKS or PKCS12",
                             t);
            else if (tg_imp_need_file(im, line(file), "security.keystore.file", path)) {
                k->ks_obj = json_pack("{s:s, s:s}", "type", tt, "file", path);
                tg_imp_map(im, line(file), "security.keystore.file",
                           "keystores.* (%s %s; one per accept host, by alias)", tt, path);
                store_password(k, ks, k->ks_obj, "keystore");
                if (json_object_get(k->ks_obj, "password") == NULL)
                    json_object_set_new(k->ks_obj, "password", json_string(""));
            }
            free(path);
        } else if (file == NULL) {
            tg_imp_error(im, line(ks), 0, "security.keystore: no <file>");
        }
        free(f);
        free(t);
    }
    if (ts != NULL) {
        xmlNodePtr file = child(ts, "file");
        char *f = file ? text(k, file) : NULL;
        if (f != NULL) {
            char *path = tg_imp_path(im, NULL, f);
            if (tg_imp_need_file(im, line(file), "security.truststore.file", path)) {
                json_t *o = json_pack("{s:s, s:s}", "type", "jks", "file", path);
                json_object_set_new(im->truststores, "kaazing-trust", o);
                store_password(k, ts, o, "truststore");
                tg_imp_map(im, line(file), "security.truststore.file",
                           "truststores.kaazing-trust (%s)", path);
                k->ts = "kaazing-trust";
            }
            free(path);
        }
        free(f);
    }
}

/* Versions and suites of accept-options or connect-options into tls. */
static void tls_options(struct kz *k, xmlNodePtr options, json_t *tls, const char *tk)
{
    struct tg_imp *im = k->im;
    char key[64];
    xmlNodePtr p = opt(options, "protocols", key, sizeof(key));
    if (p != NULL) {
        char *s = text(k, p), tok[64];
        const char *c = s ? s : "";
        int lo = 9, hi = -1;
        while (tg_imp_token(&c, ", ", tok, sizeof(tok))) {
            const char *v = tg_imp_version(tok);
            if (v == NULL) {
                tg_imp_warn(im, line(p), key, "\"%s\" is not served by this OpenSSL; left out",
                            tok);
                continue;
            }
            lo = v[5] - '0' < lo ? v[5] - '0' : lo;
            hi = v[5] - '0' > hi ? v[5] - '0' : hi;
        }
        if (hi >= 0) {
            char a[16], b[16];
            snprintf(a, sizeof(a), "TLS1.%d", lo);
            snprintf(b, sizeof(b), "TLS1.%d", hi);
            json_object_set_new(tls, "min_version", json_string(a));
            json_object_set_new(tls, "max_version", json_string(b));
            tg_imp_map(im, line(p), key, "%s.min_version = \"%s\", max_version = \"%s\"", tk, a, b);
            if (lo < 2)
                tg_imp_warn(im, line(p), key, "TLS 1.%d is on, as in the source (legacy)", lo);
        }
        free(s);
    } else if (json_object_get(tls, "min_version") == NULL) {
        /* Kaazing leaves versions to the JDK: TLS 1.2 and 1.3 */
        json_object_set_new(tls, "min_version", json_string("TLS1.2"));
        json_object_set_new(tls, "max_version", json_string("TLS1.3"));
    }
    xmlNodePtr c = opt(options, "ciphers", key, sizeof(key));
    if (c != NULL) {
        char *s = text(k, c);
        if (s != NULL && strchr(s, '_') != NULL) { /* Java/IANA names */
            json_t *names = json_array();
            char tok[128];
            const char *q = s;
            while (tg_imp_token(&q, ", \t\r\n", tok, sizeof(tok)))
                json_array_append_new(names, json_string(tok));
            tg_imp_ciphers(im, line(c), key, names, tls, tk);
            json_decref(names);
        } else if (s != NULL) { /* OpenSSL syntax, comma-separated: "HIGH, MEDIUM, !ADH" */
            char os[1024], tok[128];
            size_t w = 0;
            const char *q = s;
            os[0] = '\0';
            while (tg_imp_token(&q, ", :\t\r\n", tok, sizeof(tok)) &&
                   w + strlen(tok) + 2 < sizeof(os))
                w += (size_t)snprintf(os + w, sizeof(os) - w, "%s%s", w ? ":" : "", tok);
            json_object_set_new(tls, "cipher_suites", json_string(os));
            tg_imp_map(im, line(c), key,
                       "%s.cipher_suites = \"%s\" (an OpenSSL cipher string; "
                       "TLS 1.3 keeps its suites)",
                       tk, os);
        }
        free(s);
    }
}

static void listener_tls(struct kz *k, xmlNodePtr svc, xmlNodePtr ao, const char *host, json_t *l,
                         bool tls_scheme)
{
    struct tg_imp *im = k->im;
    json_t *tls = json_object_get(l, "tls");
    char key[64], tk[64];
    snprintf(tk, sizeof(tk), "listeners[%d].tls", k->n_listeners - 1);
    xmlNodePtr enc = opt(ao, "encryption", key, sizeof(key));
    char *e = enc ? text(k, enc) : NULL;
    if (!tls_scheme || (e != NULL && strcasecmp(e, "disabled") == 0)) {
        json_object_set_new(tls, "disabled", json_true());
        if (enc != NULL)
            tg_imp_map(im, line(enc), key, "%s.disabled = true (plaintext)", tk);
        free(e);
        return;
    }
    free(e);
    if (k->ks_obj == NULL) {
        tg_imp_error(im, line(svc), 0, "service accepts TLS but <security> has no <keystore>");
        return;
    }
    /* Kaazing picks the key entry whose alias is the accept URI's host */
    char name[80];
    snprintf(name, sizeof(name), "kaazing-%s", host);
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.'))
            *c = '-';
    if (json_object_get(im->keystores, name) == NULL) {
        json_t *ks = json_deep_copy(k->ks_obj);
        json_object_set_new(ks, "alias", json_string(host));
        json_object_set_new(im->keystores, name, ks);
        tg_imp_map(im, line(svc), "accept", "keystores.%s (alias \"%s\", as Kaazing chooses)", name,
                   host);
    }
    json_object_set_new(tls, "certificates", json_pack("[s]", name));
    tls_options(k, ao, tls, tk);
    xmlNodePtr vc = opt(ao, "verify-client", key, sizeof(key));
    char *v = vc ? text(k, vc) : NULL;
    if (v != NULL && (strcasecmp(v, "required") == 0 || strcasecmp(v, "optional") == 0)) {
        const char *mode = strcasecmp(v, "required") == 0 ? "require" : "optional";
        if (k->ts == NULL) {
            tg_imp_error(im, line(vc), 0, "%s: \"%s\" needs <security><truststore>", key, v);
        } else {
            json_object_set_new(tls, "client_auth",
                                json_pack("{s:s, s:s}", "mode", mode, "truststore", k->ts));
            tg_imp_map(im, line(vc), key, "%s.client_auth.mode = \"%s\"", tk, mode);
            if (strcmp(mode, "optional") == 0)
                tg_imp_note(im, line(vc), key,
                            "Kaazing's optional admits clients without a certificate but still "
                            "refuses a bad one; so does tlsgate's");
        }
    } else if (v != NULL && strcasecmp(v, "none") != 0) {
        tg_imp_error(im, line(vc), 0, "%s: expected required, optional or none, found \"%s\"", key,
                     v);
    }
    free(v);
}

/* "https://host:port/path" -> scheme, host, port, path. */
static bool split_uri(const char *u, char *scheme, char *host, long *port, char *path)
{
    const char *p = strstr(u, "://");
    if (p == NULL || p - u > 15)
        return false;
    snprintf(scheme, 16, "%.*s", (int)(p - u), u);
    p += 3;
    size_t n = strcspn(p, ":/");
    if (n == 0 || n > 200)
        return false;
    snprintf(host, 201, "%.*s", (int)n, p);
    p += n;
    *port = -1;
    if (*p == ':') {
        char *end;
        *port = strtol(p + 1, &end, 10);
        p = end;
    }
    if (strlen(p) > 255) /* cut short, the path would match more than meant */
        return false;
    snprintf(path, 256, "%s", *p == '/' ? p : "/");
    return true;
}

static long default_port(const char *scheme)
{
    if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0)
        return 443;
    if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0)
        return 80;
    return -1;
}

static void service(struct kz *k, xmlNodePtr svc)
{
    struct tg_imp *im = k->im;
    xmlNodePtr nm = child(svc, "name"), ty = child(svc, "type"), ac = child(svc, "accept");
    xmlNodePtr ao = child(svc, "accept-options"), co = child(svc, "connect-options");
    char *name = nm ? text(k, nm) : tg_xstrdup("service");
    char *type = ty ? text(k, ty) : NULL;
    char *acc = ac ? text(k, ac) : NULL;
    char scheme[16], host[201], path[256];
    long port;
    if (name == NULL || acc == NULL || !split_uri(acc, scheme, host, &port, path)) {
        if (acc != NULL || ac == NULL)
            tg_imp_error(im, line(ac ? ac : svc), 0, "service: <accept> is not a URI");
        goto out;
    }
    if (port < 0)
        port = default_port(scheme);
    bool tls_scheme =
        strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0 || strcmp(scheme, "ssl") == 0;
    if (port < 1 || port > 65535) {
        tg_imp_error(im, line(ac), 0, "accept: no port in \"%s\"", acc);
        goto out;
    }
    /* *.bind moves the socket; the URI still names the host for certificates and routes */
    char bindhost[201];
    snprintf(bindhost, sizeof(bindhost), "%s", host);
    static const char *const binds[] = {"https.bind", "http.bind", "wss.bind", "ws.bind",
                                        "ssl.bind",   "tls.bind",  "tcp.bind"};
    for (size_t i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
        xmlNodePtr b = child(ao, binds[i]);
        char *bv = b ? text(k, b) : NULL;
        if (bv != NULL) {
            char *colon = strrchr(bv, ':');
            if (colon != NULL) {
                *colon = '\0';
                port = strtol(colon + 1, NULL, 10);
                snprintf(bindhost, sizeof(bindhost), "%s", bv[0] ? bv : "0.0.0.0");
            } else {
                port = strtol(bv, NULL, 10);
                snprintf(bindhost, sizeof(bindhost), "0.0.0.0");
            }
            tg_imp_map(im, line(b), binds[i], "listener address %s:%ld", bindhost, port);
        }
        free(bv);
    }
    const char *backend = NULL;
    char bname[96];
    snprintf(bname, sizeof(bname), "kaazing-%s", name);
    for (char *c = bname; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == '_'))
            *c = '-';
    xmlNodePtr cn = child(svc, "connect");
    char *con = cn ? text(k, cn) : NULL;
    if (type != NULL && strcmp(type, "http.proxy") == 0 && con != NULL) {
        if (tg_imp_backend_url(im, line(cn), "connect", bname, con) != NULL) {
            backend = bname;
            json_t *b = json_object_get(im->backends, bname);
            json_t *bt = json_object_get(b, "tls");
            if (bt != NULL) {
                if (k->ts != NULL)
                    json_object_set_new(bt, "truststore", json_string(k->ts));
                char tk[128];
                snprintf(tk, sizeof(tk), "backends.%s.tls", bname);
                if (co != NULL)
                    tls_options(k, co, bt, tk);
            }
            tg_imp_map(im, line(cn), "connect", "backends.%s (%s)", bname, con);
        }
    } else {
        tg_imp_warn(im, line(ty ? ty : svc), "type",
                    "service \"%s\" of type \"%s\" has no tlsgate equivalent (only http.proxy "
                    "is relayed)",
                    name, type ? type : "?");
    }
    if (backend == NULL)
        backend = tg_imp_fallback_backend(im, line(svc), "service");
    /* services on the same address share a listener, told apart by host and path */
    char addr[300];
    snprintf(addr, sizeof(addr), "%s:%ld", bindhost, port);
    json_t *l = NULL;
    size_t i;
    json_t *el;
    json_array_foreach(im->listeners, i, el)
    {
        /* one socket per port: "localhost:9443" and "127.0.0.1:9443" are the same one */
        const char *a = json_string_value(json_object_get(el, "address"));
        const char *colon = a ? strrchr(a, ':') : NULL;
        if (colon != NULL && strtol(colon + 1, NULL, 10) == port)
            l = el;
    }
    json_t *route = json_pack("{s:s, s:s}", "path_prefix", path, "backend", backend);
    if (strchr(host, ':') == NULL && strspn(host, "0123456789.") != strlen(host))
        json_object_set_new(route, "host", json_string(host));
    if (l == NULL) {
        char lname[96];
        snprintf(lname, sizeof(lname), "%s", bname);
        l = tg_imp_listener(im, lname, bindhost, port, backend);
        k->n_listeners++;
        json_object_set_new(l, "routes", json_array());
        listener_tls(k, svc, ao, host, l, tls_scheme);
        tg_imp_map(im, line(ac), "accept", "listeners.%s (%s)", lname, addr);
    } else {
        tg_imp_note(im, line(ac), "accept",
                    "shares the listener on %s (by host and path); its "
                    "accept-options are that listener's",
                    addr);
    }
    json_array_append_new(json_object_get(l, "routes"), route);
    free(con);
out:
    free(name);
    free(type);
    free(acc);
}

void tg_imp_kaazing(struct tg_imp *im)
{
    struct kz k = {.im = im};
    /* refused before libxml2 sees it: no entity declaration is ever parsed */
    const char *dt = strstr(im->text, "<!DOCTYPE");
    if (dt != NULL) {
        int ln = 1;
        for (const char *c = im->text; c < dt; c++)
            ln += *c == '\n';
        tg_imp_error(im, ln, 0,
                     "a DOCTYPE is not accepted (gateway-config.xml has none; "
                     "entities are never expanded)");
        return;
    }
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        tg_imp_error(im, 0, 0, "out of memory");
        return;
    }
    /* no network, no DTD loading, no entity substitution; errors are ours to report */
    k.doc = xmlCtxtReadMemory(ctxt, im->text, (int)im->len, im->src, NULL,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (k.doc == NULL) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[300];
        snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "not XML");
        size_t n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        tg_imp_error(im, e ? e->line : 1, e ? e->int2 : 0, "%s", msg);
        xmlFreeParserCtxt(ctxt);
        return;
    }
    xmlNodePtr root = xmlDocGetRootElement(k.doc);
    if (k.doc->intSubset != NULL) {
        tg_imp_error(im, line((xmlNodePtr)k.doc->intSubset), 0,
                     "a DOCTYPE is not accepted (gateway-config.xml has none; entities are "
                     "never expanded)");
    } else if (!is(root, "gateway-config")) {
        tg_imp_error(im, line(root), 0, "expected <gateway-config> as the root element");
    } else {
        k.props = child(root, "properties");
        xmlNodePtr sec = child(root, "security");
        if (sec != NULL)
            security(&k, sec);
        for (xmlNodePtr c = root->children; c != NULL && im->errors == 0; c = c->next) {
            if (is(c, "service"))
                service(&k, c);
            else if (c->type == XML_ELEMENT_NODE && !is(c, "properties") && !is(c, "security"))
                tg_imp_note(im, line(c), (const char *)c->name, "not a TLS setting; not mapped");
        }
    }
    json_decref(k.ks_obj);
    xmlFreeDoc(k.doc);
    xmlFreeParserCtxt(ctxt);
}
