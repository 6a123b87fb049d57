/* The admin API's front: the service the proxy calls for each request on the admin listener,
 * authentication first, then the route table (404 for unknown paths, 405 with Allow for a
 * wrong method). */
#include "admin/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/esc.h"
#include "core/log.h"
#include "tls/tls.h"

static const char *const json_fields[] = {"Cache-Control", "no-store", "X-Content-Type-Options",
                                          "nosniff", NULL};

void tg__admin_json(struct tg_svc_req *r, int status, const char *body)
{
    tg_svc_respond(r, status, "application/json", json_fields, body, strlen(body));
}

void tg__admin_error(struct tg_svc_req *r, int status, const char *message)
{
    size_t n = strlen(message);
    char *esc = tg_xmalloc(n * 6 + 1);
    size_t m = tg_esc_json(esc, n * 6 + 1, message, n);
    char *body = tg_xasprintf("{\"error\": \"%.*s\"}\n", (int)m, esc);
    tg__admin_json(r, status, body);
    free(body);
    free(esc);
}

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
        const char *fields[] = {"Allow", rt->allow, "Cache-Control", "no-store", NULL};
        char *body =
            tg_xasprintf("{\"error\": \"method not allowed here (allowed: %s)\"}\n", rt->allow);
        tg_svc_respond(r, 405, "application/json", fields, body, strlen(body));
        free(body);
        return;
    }
    if (tg__admin_allow(r, target, plen))
        return;
    tg__admin_error(r, 404, "no such resource");
}

static void authenticated(struct tg_svc_req *r, enum tg_admin_auth res, const char *user)
{
    if (res == TG_AUTH_OK) {
        dispatch(r, user);
        return;
    }
    if (res == TG_AUTH_LIMITED) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", tg__admin_retry_after(tg_svc_peer_ip(r)));
        const char *fields[] = {"Retry-After", ra, "Cache-Control", "no-store", NULL};
        static const char body[] =
            "{\"error\": \"too many failed logins from this address; try again later\"}\n";
        tg_svc_respond(r, 429, "application/json", fields, body, sizeof(body) - 1);
        return;
    }
    static const char *const fields[] = {"WWW-Authenticate",
                                         "Basic realm=\"tlsgate admin\", charset=\"UTF-8\"",
                                         "Cache-Control", "no-store", NULL};
    static const char missing[] = "{\"error\": \"authentication required\"}\n";
    static const char bad[] = "{\"error\": \"wrong user name or password\"}\n";
    const char *body = res == TG_AUTH_MISSING ? missing : bad;
    tg_svc_respond(r, 401, "application/json", fields, body, strlen(body));
}

static void on_request(struct tg_svc_req *r)
{
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
