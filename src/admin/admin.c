/* The admin API's front: the service the proxy calls for each request on the admin listener,
 * authentication first, then the route table (404 for unknown paths, 405 with Allow for a
 * wrong method). The top of the module: it calls the resources (config.c, certs.c, allow.c),
 * auth.c and session.c, which never call back up; all share the answers of respond.c. */
#include "admin/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "tls/tls.h"

/* ---- resources ---- */

static void get_healthz(struct tg_svc_req *r)
{
    char *body =
        tg_xasprintf("{\"status\": \"ok\", \"version\": \"%s\", \"config_version\": %llu}\n",
                     TG_VERSION, (unsigned long long)tg_svc_snapshot(r)->generation);
    tg__admin_json(r, 200, body);
    free(body);
}

extern atomic_uint_fast64_t tg__admin_auth_fail[4];

static void get_metrics(struct tg_svc_req *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        tg__admin_error(r, 500, "out of memory");
        return;
    }
    tg_proxy_metrics_write(f);
    struct tg_net *net = tg_net_running;
    fprintf(f,
            "# HELP tlsgate_config_version Version of the config in use.\n"
            "# TYPE tlsgate_config_version gauge\ntlsgate_config_version %llu\n",
            (unsigned long long)(net ? atomic_load(&net->generation) : 0));
    fprintf(f, "# HELP tlsgate_admin_auth_failures_total Admin requests refused for their "
               "credentials, by reason.\n# TYPE tlsgate_admin_auth_failures_total counter\n");
    static const char *const reasons[] = {NULL, "missing", "bad_credentials", "rate_limited"};
    for (int k = 1; k < 4; k++)
        fprintf(f, "tlsgate_admin_auth_failures_total{reason=\"%s\"} %llu\n", reasons[k],
                (unsigned long long)atomic_load(&tg__admin_auth_fail[k]));
    fprintf(f,
            "# HELP tlsgate_reloads_total Reloads (SIGHUP, POST /api/v1/reload, auto_reload), by "
            "result.\n# TYPE tlsgate_reloads_total counter\n"
            "tlsgate_reloads_total{result=\"ok\"} %llu\n"
            "tlsgate_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)atomic_load(&tg__admin_reloads[0]),
            (unsigned long long)atomic_load(&tg__admin_reloads[1]));
    tg__admin_store_metrics(f);
    tg__admin_inventory_metrics(f);
    fclose(f);
    static const char *const fields[] = {"Cache-Control", "no-store", NULL};
    tg_svc_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", fields, buf, len);
    free(buf);
}

/* ---- routing ---- */

struct route {
    const char *path;
    const char *allow; /* the methods it takes, as the Allow field of a 405 says them */
    void (*handle)(struct tg_svc_req *r);
};

static const struct route routes[] = {
    {"/api/v1/healthz", "GET, HEAD", get_healthz},
    {"/metrics", "GET, HEAD", get_metrics},
    {"/api/v1/config", "GET, HEAD, PUT, PATCH", tg__admin_config},
    {"/api/v1/certificates", "GET, HEAD", tg__admin_certificates},
    {"/api/v1/reload", "POST", tg__admin_reload},
    {"/api/v1/backends", "GET, HEAD", tg__admin_backends},
};

static bool allowed(const char *allow, const char *m)
{
    size_t n = strlen(m);
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static void dispatch(struct tg_svc_req *r, const char *user)
{
    (void)user;
    const char *target = tg_svc_target(r);
    size_t plen = strcspn(target, "?");
    const char *m = tg_svc_method(r);
    for (size_t i = 0; i < TG_ARRAY_SIZE(routes); i++) {
        const struct route *rt = &routes[i];
        if (strlen(rt->path) != plen || strncmp(rt->path, target, plen) != 0)
            continue;
        if (allowed(rt->allow, m)) {
            rt->handle(r);
            return;
        }
        tg__admin_not_allowed(r, rt->allow);
        return;
    }
    if (tg__admin_allow(r, target, plen))
        return;
    tg__admin_error(r, 404, "no such resource");
}

static bool safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/* A write with Basic credentials from a page of another origin (a browser that cached them):
 * refused. Writes through the console carry a CSRF token instead. */
static bool cross_origin(struct tg_svc_req *r)
{
    const char *origin = tg_svc_header(r, "origin");
    const char *host = tg_svc_header(r, "host");
    if (origin == NULL)
        return false;
    const char *p = strstr(origin, "://");
    return host == NULL || p == NULL || strcmp(p + 3, host) != 0;
}

static void forbid(struct tg_svc_req *r, const char *why)
{
    tg_log_info("admin request refused: peer=%s listener=admin reason=%s", tg_svc_peer(r), why);
    tg__admin_error(r, 403,
                    strcmp(why, "csrf") == 0 ? "a write from the console needs its X-CSRF-Token"
                                             : "a write from a page of another origin is refused");
}

static void refuse_auth(struct tg_svc_req *r, enum tg_admin_auth res)
{
    if (res == TG_AUTH_LIMITED) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", tg__admin_retry_after(tg_svc_peer_ip(r)));
        const char *fields[] = {"Retry-After", ra, "Cache-Control", "no-store", NULL};
        static const char body[] =
            "{\"error\": \"too many failed logins from this address; try again later\"}\n";
        tg_svc_respond(r, 429, "application/json", fields, body, sizeof(body) - 1);
        return;
    }
    /* No WWW-Authenticate for the console's own calls: the browser would prompt. */
    bool console = tg_svc_header(r, "x-requested-with") != NULL;
    const char *fields[] = {console ? "Cache-Control" : "WWW-Authenticate",
                            console ? "no-store"
                                    : "Basic realm=\"tlsgate admin\", charset=\"UTF-8\"",
                            "Cache-Control", "no-store", NULL};
    static const char missing[] = "{\"error\": \"authentication required\"}\n";
    static const char bad[] = "{\"error\": \"wrong user name or password\"}\n";
    const char *body = res == TG_AUTH_MISSING ? missing : bad;
    tg_svc_respond(r, 401, "application/json", fields + (console ? 2 : 0), body, strlen(body));
}

static void authenticated(struct tg_svc_req *r, enum tg_admin_auth res, const char *user)
{
    if (res != TG_AUTH_OK) {
        refuse_auth(r, res);
        return;
    }
    if (!safe_method(tg_svc_method(r)) && cross_origin(r)) {
        forbid(r, "cross_origin");
        return;
    }
    dispatch(r, user);
}

static void session_answer(struct tg_svc_req *r, int status, const char *user, const char *csrf,
                           const char *cookie)
{
    json_t *o = json_object();
    json_object_set_new(o, "user", json_string(user));
    json_object_set_new(o, "csrf", json_string(csrf));
    char *text = json_dumps(o, 0);
    json_decref(o);
    const char *fields[] = {"Set-Cookie", cookie, "Cache-Control", "no-store", NULL};
    tg_svc_respond(r, status, "application/json", cookie ? fields : fields + 2, text, strlen(text));
    free(text);
}

/* POST /api/v1/session with Basic credentials: a console session. */
static void logged_in(struct tg_svc_req *r, enum tg_admin_auth res, const char *user)
{
    if (res != TG_AUTH_OK) {
        refuse_auth(r, res);
        return;
    }
    if (cross_origin(r)) {
        forbid(r, "cross_origin");
        return;
    }
    char token[TG_ADMIN_TOKEN_LEN + 1], csrf[TG_ADMIN_TOKEN_LEN + 1];
    tg__admin_session_new(user, token, csrf);
    char *cookie = tg_xasprintf("tg_session=%s; Path=/; Secure; HttpOnly; SameSite=Strict; "
                                "Max-Age=28800",
                                token);
    tg_log_info("admin console session started: peer=%s user=%s", tg_svc_peer(r),
                strcmp(user, "client-certificate") == 0 ? user : "(basic)");
    session_answer(r, 201, user, csrf, cookie);
    OPENSSL_cleanse(token, sizeof(token));
    free(cookie);
}

static const struct tg_admin_asset *asset_for(const char *path, size_t plen)
{
    const char *name = plen == 1 && path[0] == '/' ? "index.html" : path + 1;
    size_t nlen = plen == 1 ? strlen(name) : plen - 1;
    for (const struct tg_admin_asset *a = tg__admin_assets; a->name != NULL; a++)
        if (strlen(a->name) == nlen && strncmp(a->name, name, nlen) == 0 &&
            (plen == 1 || strcmp(a->name, "index.html") != 0))
            return a;
    return NULL;
}

static void serve_asset(struct tg_svc_req *r, const struct tg_admin_asset *a)
{
    const char *dot = strrchr(a->name, '.');
    const char *ctype = "application/octet-stream";
    if (dot != NULL && strcmp(dot, ".html") == 0)
        ctype = "text/html; charset=utf-8";
    else if (dot != NULL && strcmp(dot, ".js") == 0)
        ctype = "text/javascript; charset=utf-8";
    else if (dot != NULL && strcmp(dot, ".css") == 0)
        ctype = "text/css; charset=utf-8";
    static const char *const fields[] = {
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "X-Content-Type-Options",
        "nosniff",
        "X-Frame-Options",
        "DENY",
        "Referrer-Policy",
        "no-referrer",
        "Cache-Control",
        "no-cache",
        NULL};
    tg_svc_respond(r, 200, ctype, fields, (const char *)a->data, a->len);
}

static void on_request(struct tg_svc_req *r)
{
    const char *target = tg_svc_target(r);
    size_t plen = strcspn(target, "?");
    const char *m = tg_svc_method(r);
    bool session_path =
        plen == strlen("/api/v1/session") && strncmp(target, "/api/v1/session", plen) == 0;
    const struct tg_admin_asset *a = safe_method(m) ? asset_for(target, plen) : NULL;
    if (a != NULL) { /* the console's files: public, nothing secret in them */
        serve_asset(r, a);
        return;
    }
    char token[TG_ADMIN_TOKEN_LEN + 1], csrf[TG_ADMIN_TOKEN_LEN + 1], user[64];
    const char *cookie = tg_svc_header(r, "cookie");
    if (cookie != NULL && tg__admin_cookie(cookie, token) &&
        tg__admin_session_find(token, user, sizeof(user), csrf)) {
        if (!safe_method(m)) {
            const char *sent = tg_svc_header(r, "x-csrf-token");
            if (sent == NULL || strlen(sent) != TG_ADMIN_TOKEN_LEN ||
                CRYPTO_memcmp(sent, csrf, TG_ADMIN_TOKEN_LEN) != 0) {
                forbid(r, "csrf");
                return;
            }
        }
        if (session_path && strcmp(m, "DELETE") == 0) {
            tg__admin_session_end(token);
            const char *fields[] = {"Set-Cookie",
                                    "tg_session=; Path=/; Secure; HttpOnly; SameSite=Strict; "
                                    "Max-Age=0",
                                    "Cache-Control", "no-store", NULL};
            tg_svc_respond(r, 204, NULL, fields, "", 0);
        } else if (session_path && safe_method(m)) {
            session_answer(r, 200, user, csrf, NULL);
        } else if (session_path) {
            logged_in(r, TG_AUTH_OK, user);
        } else {
            dispatch(r, user);
        }
        return;
    }
    if (session_path && strcmp(m, "POST") == 0) {
        tg__admin_authenticate(r, logged_in);
        return;
    }
    if (session_path && !safe_method(m) && strcmp(m, "DELETE") != 0) {
        const char *fields[] = {"Allow", "GET, HEAD, POST, DELETE", NULL};
        tg_svc_respond(r, 405, "application/json", fields, "{}\n", 3);
        return;
    }
    if (session_path) {
        refuse_auth(r, TG_AUTH_MISSING);
        return;
    }
    tg__admin_authenticate(r, authenticated);
}

static const struct tg_svc admin_service = {.on_request = on_request};

void tg_admin_init(void)
{
    tg_proxy_set_service(&admin_service);
}

void tg_admin_cleanup(void)
{
    tg__admin_auth_cleanup();
}

/* ---- the embedded default's first password ---- */

int tg_admin_ensure_password(const char *state_dir, FILE *out, struct tg_err *err)
{
    char *path = tg_xasprintf("%s/admin.hash", state_dir);
    int rc = 0;
    if (access(path, F_OK) == 0)
        goto done;
    unsigned char raw[18];
    char pw[32];
    char *hash = NULL;
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        tg_err_error(err, NULL, NULL, "cannot make an admin password: no randomness");
        rc = -EIO;
        goto done;
    }
    EVP_EncodeBlock((unsigned char *)pw, raw, sizeof(raw)); /* 24 characters, no padding */
    for (char *p = pw; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    rc = tg_tls_password_hash(pw, strlen(pw), &hash);
    if (rc == 0) {
        char *line = tg_xasprintf("%s\n", hash);
        rc = tg_write_file_atomic(path, line, strlen(line), 0600);
        free(line);
    }
    if (rc != 0) {
        tg_err_error(err, NULL, NULL, "cannot store the admin password hash in %s: %s", path,
                     strerror(-rc));
    } else {
        fprintf(out,
                "tlsgate: admin API user \"admin\", password %s\n"
                "tlsgate: this password is shown once; only its hash is kept (admin.hash in the "
                "state directory)\n",
                pw);
        fflush(out);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(raw, sizeof(raw));
    free(hash);
done:
    free(path);
    return rc;
}
