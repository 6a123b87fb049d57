/* The 'import' verb: another gateway's TLS setup to a tlsgate config, with one report line per
 * source key on stderr; and the helpers the per-gateway importers share. */
#include "cli/import.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"

#define MAX_SOURCE (16u << 20)

/* ---- report ---- */

static void push(struct tg_imp *im, int line, const char *text)
{
    if (im->n_report == im->cap_report) {
        im->cap_report = im->cap_report ? im->cap_report * 2 : 32;
        im->report = tg_xrealloc(im->report, im->cap_report * sizeof(*im->report));
        im->report_line = tg_xrealloc(im->report_line, im->cap_report * sizeof(int));
    }
    im->report_line[im->n_report] = line;
    im->report[im->n_report++] = tg_xstrdup(text);
}

struct ordered {
    int line;
    size_t seq;
    char *text;
};

static int by_line(const void *a, const void *b)
{
    const struct ordered *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The report in the source's order (lines without a position first), each line's own order
 * kept. */
static void sort_report(struct tg_imp *im)
{
    struct ordered *o = tg_xcalloc(im->n_report ? im->n_report : 1, sizeof(*o));
    for (size_t i = 0; i < im->n_report; i++)
        o[i] = (struct ordered){im->report_line[i], i, im->report[i]};
    qsort(o, im->n_report, sizeof(*o), by_line);
    for (size_t i = 0; i < im->n_report; i++)
        im->report[i] = o[i].text;
    free(o);
}

__attribute__((format(printf, 5, 0))) static void add_line(struct tg_imp *im, int line,
                                                           const char *key, const char *level,
                                                           const char *fmt, va_list ap)
{
    char msg[1024], full[1400];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    const char *sep = strcmp(level, "-> ") == 0 ? " " : ": ";
    if (line > 0)
        snprintf(full, sizeof(full), "%s:%d: %s%s%s%s", im->src, line, key, sep, level, msg);
    else
        snprintf(full, sizeof(full), "%s: %s%s%s%s", im->src, key, sep, level, msg);
    push(im, line, full);
}

void tg_imp_map(struct tg_imp *im, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_line(im, line, key, "-> ", fmt, ap);
    va_end(ap);
}

void tg_imp_note(struct tg_imp *im, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_line(im, line, key, "note: ", fmt, ap);
    va_end(ap);
}

void tg_imp_warn(struct tg_imp *im, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_line(im, line, key, "warning: ", fmt, ap);
    va_end(ap);
    im->warnings++;
}

void tg_imp_error(struct tg_imp *im, int line, int col, const char *fmt, ...)
{
    char msg[1024], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0 && col > 0)
        snprintf(full, sizeof(full), "%s:%d:%d: error: %s", im->src, line, col, msg);
    else if (line > 0)
        snprintf(full, sizeof(full), "%s:%d: error: %s", im->src, line, msg);
    else
        snprintf(full, sizeof(full), "%s: error: %s", im->src, msg);
    push(im, line, full);
    im->errors++;
}

int tg_imp_line(const struct tg_imp *im, const char *ptr)
{
    int line = 0, col = 0;
    if (tg_config_doc_find(&im->lines, ptr, &line, &col) != 0)
        return 0;
    return line;
}

void tg_imp_other_keys(struct tg_imp *im, json_t *obj, const char *ptr, const char *prefix,
                       const char *const *known, size_t n, const char *why)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(known[i], key) != 0)
            i++;
        if (i < n)
            continue;
        char p[512], k[512];
        snprintf(p, sizeof(p), "%s/%s", ptr, key);
        snprintf(k, sizeof(k), "%s%s%.200s", prefix, prefix[0] ? "." : "", key);
        tg_imp_note(im, tg_imp_line(im, p), k, "%s", why);
    }
}

/* ---- paths, versions, suites ---- */

bool tg_imp_token(const char **s, const char *seps, char *out, size_t n)
{
    *s += strspn(*s, seps);
    if (**s == '\0')
        return false;
    size_t len = strcspn(*s, seps);
    snprintf(out, n, "%.*s", (int)len, *s);
    *s += len;
    return true;
}

char *tg_imp_path(const struct tg_imp *im, const char *base, const char *file)
{
    if (file[0] == '/')
        return tg_xstrdup(file);
    const char *b = base != NULL ? base : im->src_dir;
    size_t n = strlen(b) + 1 + strlen(file) + 1;
    char *r = tg_xmalloc(n);
    snprintf(r, n, "%s/%s", b, file);
    return r;
}

bool tg_imp_need_file(struct tg_imp *im, int line, const char *key, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        tg_imp_error(im, line, 0, "%s: cannot read \"%s\": %s", key, path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode) || access(path, R_OK) != 0) {
        tg_imp_error(im, line, 0, "%s: \"%s\" is not a readable file", key, path);
        return false;
    }
    return true;
}

const char *tg_imp_version(const char *s)
{
    static const struct {
        const char *name, *tg;
    } v[] = {
        {"TLSv1", "TLS1.0"},   {"TLSv1.0", "TLS1.0"}, {"TLS10", "TLS1.0"},   {"TLS1.0", "TLS1.0"},
        {"TLSv1.1", "TLS1.1"}, {"TLS11", "TLS1.1"},   {"TLS1.1", "TLS1.1"},  {"TLSv1.2", "TLS1.2"},
        {"TLS12", "TLS1.2"},   {"TLS1.2", "TLS1.2"},  {"TLSv1.3", "TLS1.3"}, {"TLS13", "TLS1.3"},
        {"TLS1.3", "TLS1.3"},  {"1.0", "TLS1.0"},     {"1.1", "TLS1.1"},     {"1.2", "TLS1.2"},
        {"1.3", "TLS1.3"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (strcasecmp(s, v[i].name) == 0)
            return v[i].tg;
    return NULL;
}

static int vnum(const char *tg)
{
    return tg == NULL ? -1 : tg[5] - '0';
}

void tg_imp_ciphers(struct tg_imp *im, int line, const char *key, json_t *names, json_t *tls,
                    const char *tls_key)
{
    json_t *out = json_array();
    bool has13 = false, has12 = false;
    const char *mn = json_string_value(json_object_get(tls, "min_version"));
    const char *mx = json_string_value(json_object_get(tls, "max_version"));
    int lo = mn ? vnum(mn) : 3, hi = mx ? vnum(mx) : 3;
    size_t unusable = 0;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        char num[24];
        const char *name = json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            name = num;
        }
        if (name == NULL || name[0] == '\0')
            continue;
        struct tg_cipher_info ci;
        if (tg_cipher_lookup(name, &ci) != 0) {
            const char *s = tg_cipher_suggest(name);
            tg_imp_warn(im, line, key, "suite %s is unknown and was left out%s%s%s", name,
                        s ? " (did you mean " : "", s ? s : "", s ? "?)" : "");
            continue;
        }
        if (ci.insecure) {
            tg_imp_warn(im, line, key, "suite %s is refused (%s) and was left out", name,
                        ci.insecure_reason ? ci.insecure_reason : "insecure");
            continue;
        }
        if (!ci.available) {
            tg_imp_warn(im, line, key,
                        "suite %s is not implemented by this OpenSSL (3DES) and was left out",
                        name);
            continue;
        }
        if ((ci.tls13 && hi < 3) || (!ci.tls13 && lo == 3)) {
            unusable++;
            continue;
        }
        bool dup = false;
        size_t j;
        json_t *w;
        json_array_foreach(out, j, w) dup = dup || strcmp(json_string_value(w), ci.iana_name) == 0;
        if (dup) {
            tg_imp_note(im, line, key, "suite %s is listed twice; kept once", name);
            continue;
        }
        has13 = has13 || ci.tls13;
        has12 = has12 || !ci.tls13;
        json_array_append_new(out, json_string(ci.iana_name));
    }
    if (json_array_size(out) == 0) {
        tg_imp_warn(im, line, key, "no usable suite is left; tlsgate's defaults are used");
        json_decref(out);
        return;
    }
    if (unusable > 0)
        tg_imp_note(im, line, key, "%zu suites are for TLS versions not enabled; left out",
                    unusable);
    /* a version whose suites are all missing is one the source's stack cannot negotiate */
    if (!has13 && hi == 3) {
        if (lo == 3) {
            tg_imp_warn(im, line, key,
                        "only TLS 1.2 and older suites with TLS 1.3 only: the "
                        "list is left out");
            json_decref(out);
            return;
        }
        json_object_set_new(tls, "max_version", json_string("TLS1.2"));
        tg_imp_note(im, line, key,
                    "no TLS 1.3 suite is listed, so TLS 1.3 cannot be negotiated: %s.max_version "
                    "= \"TLS1.2\"",
                    tls_key);
    }
    if (!has12 && lo < 3) {
        json_object_set_new(tls, "min_version", json_string("TLS1.3"));
        tg_imp_note(im, line, key,
                    "no TLS 1.2 or older suite is listed: %s.min_version = \"TLS1.3\"", tls_key);
    }
    json_object_set_new(tls, "cipher_suites", out);
    tg_imp_map(im, line, key, "%s.cipher_suites (%zu suites)", tls_key, json_array_size(out));
}

void tg_imp_java_suites(struct tg_imp *im, int line, const char *key, json_t *tls,
                        const char *tls_key)
{
    json_t *names = json_pack(
        "[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]", "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
    tg_imp_note(im, line, key,
                "absent: the JDK's default ECDHE suites are listed (CBC ones "
                "included, which TLS 1.0 and 1.1 need)");
    int w = im->warnings;
    tg_imp_ciphers(im, line, key, names, tls, tls_key);
    im->warnings = w; /* what the JDK offers by default is no finding of the source */
    json_decref(names);
}

/* ---- config pieces ---- */

json_t *tg_imp_listener(struct tg_imp *im, const char *name, const char *host, long port,
                        const char *backend)
{
    char addr[300];
    if (strchr(host, ':') != NULL)
        snprintf(addr, sizeof(addr), "[%s]:%ld", host, port);
    else
        snprintf(addr, sizeof(addr), "%s:%ld", strcmp(host, "0.0.0.0") == 0 ? "" : host, port);
    json_t *l = json_pack("{s:s, s:s, s:{}, s:[{s:s, s:s}]}", "name", name, "address", addr, "tls",
                          "routes", "path_prefix", "/", "backend", backend);
    json_array_append_new(im->listeners, l);
    return l;
}

json_t *tg_imp_backend_url(struct tg_imp *im, int line, const char *key, const char *name,
                           const char *url)
{
    bool tls;
    const char *rest;
    if (strncasecmp(url, "https://", 8) == 0)
        tls = true, rest = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        tls = false, rest = url + 7;
    else {
        tg_imp_error(im, line, 0, "%s: \"%s\" is not an http:// or https:// URL", key, url);
        return NULL;
    }
    size_t n = strcspn(rest, "/?#");
    char hostport[300];
    if (n == 0 || n >= sizeof(hostport) - 8) {
        tg_imp_error(im, line, 0, "%s: \"%s\" has no host", key, url);
        return NULL;
    }
    memcpy(hostport, rest, n);
    hostport[n] = '\0';
    const char *close = strrchr(hostport, ']');
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (close != NULL && colon < close))
        snprintf(hostport + n, sizeof(hostport) - n, ":%d", tls ? 443 : 80);
    if (rest[n] == '/' && rest[n + 1] != '\0')
        tg_imp_warn(im, line, key,
                    "the path of \"%s\" is not kept: tlsgate passes request "
                    "paths to backends unchanged",
                    url);
    json_t *b = json_object_get(im->backends, name);
    if (b == NULL) {
        b = json_pack("{s:[]}", "targets");
        json_object_set_new(im->backends, name, b);
    }
    json_array_append_new(json_object_get(b, "targets"), json_string(hostport));
    if (tls && json_object_get(b, "tls") == NULL)
        json_object_set_new(b, "tls", json_object());
    return b;
}

const char *tg_imp_fallback_backend(struct tg_imp *im, int line, const char *key)
{
    if (im->backend != NULL) {
        if (json_object_get(im->backends, "backend") == NULL &&
            tg_imp_backend_url(im, 0, "--backend", "backend", im->backend) == NULL)
            return "backend";
        tg_imp_map(im, line, key, "routes to backend \"backend\" (%s, from --backend)",
                   im->backend);
        return "backend";
    }
    if (json_object_get(im->backends, "status") == NULL)
        json_object_set_new(im->backends, "status", json_pack("{s:s}", "builtin", "status"));
    tg_imp_warn(im, line, key,
                "the source names no backend here; routed to the built-in status page (give "
                "--backend URL)");
    return "status";
}

json_t *tg_imp_keystore(struct tg_imp *im, const char *name, const char *type)
{
    json_t *k = json_pack("{s:s}", "type", type);
    json_object_set_new(im->keystores, name, k);
    return k;
}

/* ---- the run ---- */

int tg_imp_run(const char *kind, const char *src, const char *src_dir, const char *text, size_t len,
               const struct tg_imp_opts *opts, json_t **out, char ***report, size_t *n_report)
{
    static const struct tg_imp_opts none = {0};
    if (opts == NULL)
        opts = &none;
    static const struct {
        const char *kind;
        void (*fn)(struct tg_imp *);
    } kinds[] = {{"krakend", tg_imp_krakend},
                 {"corda", tg_imp_corda},
                 {"mgw", tg_imp_mgw},
                 {"apim", tg_imp_apim},
                 {"kaazing", tg_imp_kaazing}};
    struct tg_imp im = {.src = src, .backend = opts->backend, .opts = opts};
    im.src_dir = tg_xstrdup(src_dir);
    im.text = tg_xmalloc(len + 1);
    memcpy(im.text, text, len);
    im.text[len] = '\0';
    im.len = len;
    im.out = json_pack("{s:i, s:{}, s:{}, s:[], s:{}}", "version", 1, "keystores", "truststores",
                       "listeners", "backends");
    im.keystores = json_object_get(im.out, "keystores");
    im.truststores = json_object_get(im.out, "truststores");
    im.listeners = json_object_get(im.out, "listeners");
    im.backends = json_object_get(im.out, "backends");
    im.timeouts = json_object();
    im.limits = json_object();
    size_t k = 0;
    while (k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(kinds[k].kind, kind) != 0)
        k++;
    if (k == sizeof(kinds) / sizeof(kinds[0]))
        tg_imp_error(&im, 0, 0, "unknown source kind \"%s\" (krakend, mgw, kaazing, corda, apim)",
                     kind);
    else if (memchr(text, '\0', len) != NULL)
        tg_imp_error(&im, 0, 0, "the file holds a NUL byte; it is not a text config");
    else
        kinds[k].fn(&im);
    if (im.errors == 0 && json_array_size(im.listeners) == 0)
        tg_imp_error(&im, 0, 0, "the source defines no listener that tlsgate could serve");
    if (json_object_size(im.timeouts) > 0)
        json_object_set(im.out, "timeouts", im.timeouts);
    if (json_object_size(im.limits) > 0)
        json_object_set(im.out, "limits", im.limits);
    if (json_object_size(im.truststores) == 0)
        json_object_del(im.out, "truststores");
    if (json_object_size(im.backends) == 0)
        json_object_del(im.out, "backends");
    json_decref(im.timeouts);
    json_decref(im.limits);
    int rc = im.errors > 0 ? 2 : im.warnings > 0 ? 1 : 0;
    sort_report(&im);
    free(im.report_line);
    if (out != NULL && rc != 2)
        *out = json_incref(im.out);
    else if (out != NULL)
        *out = NULL;
    json_decref(im.out);
    *report = im.report;
    *n_report = im.n_report;
    tg_config_doc_lines_free(&im.lines);
    free(im.src_dir);
    free(im.text);
    return rc;
}

const char *tg_imp_api_path(const struct tg_imp *im, const char *name, const char *version)
{
    size_t nl = strlen(name), vl = version ? strlen(version) : 0;
    for (size_t i = 0; i < im->opts->n_apis; i++) {
        const char *a = im->opts->apis[i];
        const char *eq = strchr(a, '=');
        if (eq == NULL || strncmp(a, name, nl) != 0)
            continue;
        if (a + nl == eq)
            return eq + 1; /* any version */
        if (version != NULL && a[nl] == ':' && a + nl + 1 + vl == eq &&
            strncmp(a + nl + 1, version, vl) == 0)
            return eq + 1;
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlsgate import krakend|mgw|kaazing|corda|apim FILE [-o OUT] [--backend URL]\n"
            "                      [--api NAME[:VERSION]=/PREFIX]... [--header-from CIDR]...\n"
            "\n"
            "Turns another gateway's TLS setup into a tlsgate config (stdout, or OUT) that\n"
            "references the source's keystores where they are. FILE is krakend.json,\n"
            "micro-gw.conf, gateway-config.xml, a Corda corda.p2p.gateway section (JSON) or\n"
            "deployment.toml. One report line per source key goes to stderr: what it became,\n"
            "or why not. --backend URL is where requests go for sources that name no backend\n"
            "(http:// or https://host:port). --api gives the base path of an API that the\n"
            "source names only by name (MGW's per-API client certificates), so its list can\n"
            "become a route's allowed_subjects. --header-from names the balancers (addresses\n"
            "or CIDR blocks) a client certificate passed in a header is believed from\n"
            "(MGW's certificateHeader -> tls.client_auth.from_header).\n"
            "Exit status: 0 mapped fully, 1 mapped with warnings, 2 unreadable or invalid\n"
            "source (nothing is written).\n");
}

static int read_all(const char *file, char **buf, size_t *len)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 4096, n = 0;
    char *b = tg_xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_SOURCE) {
                fclose(f);
                free(b);
                return -EFBIG;
            }
            cap *= 2;
            b = tg_xrealloc(b, cap);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (err != 0) {
        free(b);
        return err;
    }
    *buf = b;
    *len = n;
    return 0;
}

static int write_fd(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    return 0;
}

/* Writes text to out through a temporary file renamed over it: never a partial file. Something
 * that is not a regular file (/dev/stdout, a pipe) is written directly, never replaced. */
static int write_atomic(const char *out, const char *text)
{
    struct stat st;
    if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
        int fd = open(out, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        int rc = write_fd(fd, text);
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        return rc;
    }
    size_t n = strlen(out) + 16;
    char *tmp = tg_xmalloc(n);
    snprintf(tmp, n, "%s.tmp%ld", out, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : write_fd(fd, text);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, out) != 0)
        rc = -errno;
    if (rc != 0 && fd >= 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int tg_cli_import(int argc, char **argv)
{
    const char *kind = NULL, *file = NULL, *out = NULL;
    const char *apis[64], *hfrom[64];
    struct tg_imp_opts opts = {.apis = apis, .header_from = hfrom};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return TG_EXIT_OK;
        } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            opts.backend = argv[++i];
        } else if (strcmp(argv[i], "--api") == 0 && i + 1 < argc) {
            const char *a = argv[++i], *eq = strchr(a, '=');
            if (eq == NULL || eq == a || eq[1] != '/' || opts.n_apis == 64) {
                fprintf(stderr,
                        "tlsgate import: --api '%s': expected NAME[:VERSION]=/PREFIX (at most "
                        "64)\n",
                        a);
                return TG_EXIT_USAGE;
            }
            apis[opts.n_apis++] = a;
        } else if (strcmp(argv[i], "--header-from") == 0 && i + 1 < argc) {
            if (opts.n_header_from == 64) {
                fprintf(stderr, "tlsgate import: at most 64 --header-from blocks\n");
                return TG_EXIT_USAGE;
            }
            hfrom[opts.n_header_from++] = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "tlsgate import: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return TG_EXIT_USAGE;
        } else if (kind == NULL) {
            kind = argv[i];
        } else if (file == NULL) {
            file = argv[i];
        } else {
            usage(stderr);
            return TG_EXIT_USAGE;
        }
    }
    if (kind == NULL || file == NULL) {
        usage(stderr);
        return TG_EXIT_USAGE;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = read_all(file, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "%s: error: cannot read: %s\n", file,
                rc == -EFBIG ? "larger than 16 MiB" : strerror(-rc));
        return TG_EXIT_USAGE;
    }
    char dirbuf[PATH_MAX], *real = realpath(file, NULL);
    snprintf(dirbuf, sizeof(dirbuf), "%s", real != NULL ? real : file);
    free(real);
    char *slash = strrchr(dirbuf, '/');
    if (slash == NULL)
        snprintf(dirbuf, sizeof(dirbuf), ".");
    else if (slash == dirbuf)
        slash[1] = '\0';
    else
        *slash = '\0';
    json_t *cfg = NULL;
    char **report = NULL;
    size_t n_report = 0;
    rc = tg_imp_run(kind, file, dirbuf, text, len, &opts, &cfg, &report, &n_report);
    free(text);
    for (size_t i = 0; i < n_report; i++) {
        fprintf(stderr, "%s\n", report[i]);
        free(report[i]);
    }
    free(report);
    if (rc == 2) {
        fprintf(stderr, "tlsgate import: %s not imported; nothing written\n", file);
        return rc;
    }
    char *json = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    if (json == NULL) {
        fprintf(stderr, "tlsgate import: out of memory\n");
        return TG_EXIT_USAGE;
    }
    size_t jl = strlen(json);
    char *withnl = tg_xmalloc(jl + 2);
    memcpy(withnl, json, jl);
    memcpy(withnl + jl, "\n", 2);
    free(json);
    int wrc = 0;
    if (out == NULL)
        wrc = fputs(withnl, stdout) < 0 || fflush(stdout) != 0 ? -EIO : 0;
    else
        wrc = write_atomic(out, withnl);
    free(withnl);
    if (wrc != 0) {
        fprintf(stderr, "tlsgate import: cannot write %s: %s\n", out ? out : "stdout",
                strerror(-wrc));
        return TG_EXIT_USAGE;
    }
    fprintf(stderr, "tlsgate import: %s%s%s (%s)\n", out ? "wrote " : "printed the config",
            out ? out : "", rc == 1 ? "; mapped with warnings" : "; mapped fully",
            rc == 1 ? "exit 1" : "exit 0");
    return rc;
}
