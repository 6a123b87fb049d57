/* A small blocking etcd v3 client: JSON over HTTP/1.1 to etcd's gRPC gateway (/v3/kv/range,
 * /v3/kv/txn, /v3/watch, /v3/lease/grant, /v3/auth/authenticate), plain or over OpenSSL with
 * etcd's certificate verified against the store's truststore. One connection per call (a watch
 * keeps its own); responses are parsed with llhttp (reader.c). It blocks, so it runs only on the
 * store's control thread and on libuv's thread pool, never on a worker loop. */
#include "store/internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "core/core.h"

#define MAX_BODY (8u << 20) /* an answer over this is refused */

struct tg_etcd {
    char **hosts; /* "host:port" of each endpoint */
    char **names; /* the host alone, for SNI and verification */
    size_t n;
    SSL_CTX *ctx; /* NULL for plain HTTP */
    char *server_name;
    char *username, *password;
    uint32_t timeout_ms;
    uv_mutex_t mu; /* guards cur and token */
    size_t cur;    /* the endpoint that answered last */
    char *token;
};

struct conn {
    int fd;
    SSL *ssl;
};

struct tg_etcd_watch {
    struct conn c;
    struct tg_store__reader r;
};

static void conn_close(struct conn *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

static int wait_fd(int fd, short events, int ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
    }
}

static int conn_open(struct tg_etcd *e, size_t i, struct conn *c, char *why, size_t why_len)
{
    c->fd = -1;
    c->ssl = NULL;
    char *hp = tg_xstrdup(e->hosts[i]);
    char *colon = strrchr(hp, ':');
    *colon = '\0';
    char *host = hp;
    if (host[0] == '[') {
        host++;
        host[strlen(host) - 1] = '\0';
    }
    /* An address needs no resolver files (a sandbox may allow none); a name does. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
                    *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, colon + 1, &hints, &ai);
    }
    free(hp);
    if (rc != 0) {
        snprintf(why, why_len, "%s: %s", e->hosts[i], gai_strerror(rc));
        return -ECONNREFUSED;
    }
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    rc = c->fd < 0 ? -errno : 0;
    if (rc == 0 && connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = errno == EINPROGRESS ? wait_fd(c->fd, POLLOUT, (int)e->timeout_ms) : -errno;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
            rc = -soerr;
    }
    freeaddrinfo(ai);
    if (rc != 0) {
        snprintf(why, why_len, "%s: cannot connect: %s", e->hosts[i], strerror(-rc));
        conn_close(c);
        return -ECONNREFUSED;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (e->ctx == NULL)
        return 0;
    c->ssl = SSL_new(e->ctx);
    const char *name = e->server_name ? e->server_name : e->names[i];
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, name);
    SSL_set1_host(c->ssl, name);
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int se = SSL_get_error(c->ssl, r);
        if ((se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) &&
            wait_fd(c->fd, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, (int)e->timeout_ms) == 0)
            continue;
        long vr = SSL_get_verify_result(c->ssl);
        unsigned long ec = ERR_get_error();
        snprintf(why, why_len, "%s: TLS handshake failed: %s", e->hosts[i],
                 vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                 : ec != 0       ? ERR_reason_error_string(ec)
                                 : "timed out or closed");
        ERR_clear_error();
        conn_close(c);
        return -ECONNREFUSED;
    }
}

static int conn_write(struct conn *c, const char *p, size_t len, int ms)
{
    while (len > 0) {
        ssize_t n;
        if (c->ssl != NULL) {
            int r = SSL_write(c->ssl, p, (int)len);
            if (r <= 0) {
                int se = SSL_get_error(c->ssl, r);
                if ((se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) &&
                    wait_fd(c->fd, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, ms) == 0)
                    continue;
                ERR_clear_error();
                return -EIO;
            }
            n = r;
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (wait_fd(c->fd, POLLOUT, ms) != 0)
                    return -ETIMEDOUT;
                continue;
            }
            if (n < 0)
                return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Up to cap bytes within ms: n > 0, 0 at the end of the stream, -ETIMEDOUT, or -EIO. */
static ssize_t conn_read(struct conn *c, char *buf, size_t cap, int ms)
{
    for (;;) {
        if (c->ssl != NULL) {
            int r = SSL_read(c->ssl, buf, (int)cap);
            if (r > 0)
                return r;
            int se = SSL_get_error(c->ssl, r);
            if (se == SSL_ERROR_ZERO_RETURN)
                return 0;
            if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
                int w = wait_fd(c->fd, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, ms);
                if (w != 0)
                    return w;
                continue;
            }
            ERR_clear_error();
            return se == SSL_ERROR_SYSCALL ? 0 : -EIO;
        }
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -EIO;
        int w = wait_fd(c->fd, POLLIN, ms);
        if (w != 0)
            return w;
    }
}

int tg_etcd_new(const struct tg_store_conf *sc, struct tg_etcd **out, struct tg_err *err)
{
    struct tg_etcd *e = tg_xcalloc(1, sizeof(*e));
    uv_mutex_init(&e->mu);
    e->n = sc->n_endpoints;
    e->hosts = tg_xcalloc(e->n, sizeof(char *));
    e->names = tg_xcalloc(e->n, sizeof(char *));
    for (size_t i = 0; i < e->n; i++) {
        const char *u = sc->endpoints[i];
        const char *hp = u + (strncmp(u, "https://", 8) == 0 ? 8 : 7);
        e->hosts[i] = tg_xstrdup(hp);
        const char *colon = strrchr(hp, ':');
        const char *h = hp, *he = colon;
        if (*h == '[') {
            h++;
            he--;
        }
        e->names[i] = tg_xstrndup(h, (size_t)(he - h));
    }
    e->timeout_ms = sc->timeout_ms ? sc->timeout_ms : 2000;
    e->server_name = sc->server_name ? tg_xstrdup(sc->server_name) : NULL;
    e->username = sc->username ? tg_xstrdup(sc->username) : NULL;
    e->password = sc->password ? tg_xstrdup(sc->password) : NULL;
    if (!sc->tls) {
        *out = e;
        return 0;
    }
    e->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(e->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(e->ctx, SSL_VERIFY_PEER, NULL);
    const char *what = NULL;
    if (sc->truststore ? SSL_CTX_load_verify_locations(e->ctx, sc->truststore, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(e->ctx) != 1)
        what = "store.tls.truststore: cannot read the CA certificates";
    else if (sc->cert_file != NULL &&
             (SSL_CTX_use_certificate_chain_file(e->ctx, sc->cert_file) != 1 ||
              SSL_CTX_use_PrivateKey_file(e->ctx, sc->key_file, SSL_FILETYPE_PEM) != 1 ||
              SSL_CTX_check_private_key(e->ctx) != 1))
        what = "store.tls.client_certificate: cannot load the certificate and its key";
    if (what != NULL) {
        unsigned long ec = ERR_get_error();
        ERR_clear_error();
        tg_err_error(err, NULL, "/store/tls", "%s (%s)", what,
                     ec ? ERR_reason_error_string(ec) : "unreadable");
        tg_etcd_free(e);
        return -EINVAL;
    }
    *out = e;
    return 0;
}

void tg_etcd_free(struct tg_etcd *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->hosts[i]);
        free(e->names[i]);
    }
    free(e->hosts);
    free(e->names);
    SSL_CTX_free(e->ctx);
    free(e->server_name);
    free(e->username);
    if (e->password != NULL)
        OPENSSL_cleanse(e->password, strlen(e->password));
    free(e->password);
    if (e->token != NULL)
        OPENSSL_cleanse(e->token, strlen(e->token));
    free(e->token);
    uv_mutex_destroy(&e->mu);
    free(e);
}

size_t tg_etcd_endpoints(const struct tg_etcd *e)
{
    return e->n;
}

const char *tg_etcd_endpoint(const struct tg_etcd *e, size_t i)
{
    return i < e->n ? e->hosts[i] : NULL;
}

/* Sends one request on c (the token, if any, as Authorization). */
static int send_request(struct tg_etcd *e, struct conn *c, size_t i, const char *path,
                        const char *body, const char *token)
{
    size_t blen = strlen(body);
    char *head = tg_xasprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n%s%s%s\r\n",
                              path, e->hosts[i], blen, token ? "Authorization: " : "",
                              token ? token : "", token ? "\r\n" : "");
    int rc = conn_write(c, head, strlen(head), (int)e->timeout_ms);
    if (rc == 0)
        rc = conn_write(c, body, blen, (int)e->timeout_ms);
    OPENSSL_cleanse(head, strlen(head));
    free(head);
    return rc;
}

/* Reads until the answer is complete (or, for a watch, its head and first message). */
static int read_answer(struct tg_etcd *e, struct conn *c, struct tg_store__reader *r, bool stream)
{
    char buf[16384];
    uint64_t deadline = tg_now_ms() + e->timeout_ms;
    while (!r->done && !(stream && r->head_done && r->status == 200 && r->len > 0 &&
                         memchr(r->body, '\n', r->len) != NULL)) {
        uint64_t now = tg_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        ssize_t n = conn_read(c, buf, sizeof(buf), (int)(deadline - now));
        if (n == -ETIMEDOUT)
            return -ETIMEDOUT;
        if (n < 0)
            return -EIO;
        if (n == 0)
            return tg_store__reader_finish(r) == 0 && r->done ? 0 : -EIO;
        if (tg_store__reader_feed(r, buf, (size_t)n) != 0)
            return -EPROTO;
    }
    return 0;
}

/* One exchange on endpoint i: 0 with r filled, -ECONNREFUSED (not sent), or another error
 * after sending. */
static int exchange(struct tg_etcd *e, size_t i, const char *path, const char *body,
                    const char *token, struct tg_store__reader *r, struct conn *keep, char *why,
                    size_t why_len)
{
    struct conn c;
    int rc = conn_open(e, i, &c, why, why_len);
    if (rc != 0)
        return rc;
    tg_store__reader_init(r, MAX_BODY);
    rc = send_request(e, &c, i, path, body, token);
    if (rc != 0) {
        snprintf(why, why_len, "%s: the request could not be sent", e->hosts[i]);
        conn_close(&c);
        return -ECONNREFUSED;
    }
    rc = read_answer(e, &c, r, keep != NULL);
    if (rc != 0)
        snprintf(why, why_len, "%s: %s", e->hosts[i],
                 rc == -ETIMEDOUT ? "no answer in time"
                 : rc == -EPROTO  ? "an answer that is not HTTP"
                                  : "the connection closed before the answer");
    if (rc == 0 && keep != NULL)
        *keep = c;
    else
        conn_close(&c);
    return rc;
}

/* The error etcd's gateway answered (an HTTP status other than 200) as -errno and why. */
static int answer_error(struct tg_etcd *e, size_t i, struct tg_store__reader *r, char *why,
                        size_t why_len)
{
    json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(j, "error"));
    snprintf(why, why_len, "%s: HTTP %d: %.300s", e->hosts[i], r->status, msg ? msg : "no message");
    int rc = -EIO;
    if (msg != NULL && (strstr(msg, "auth") != NULL || strstr(msg, "permission") != NULL))
        rc = -EACCES;
    else if (msg != NULL && strstr(msg, "no leader") != NULL)
        rc = -ECONNREFUSED; /* refused before any proposal: nothing written, try another */
    json_decref(j);
    return rc;
}

static int authenticate(struct tg_etcd *e, size_t i, char **token, char *why, size_t why_len)
{
    json_t *req = json_pack("{s:s,s:s}", "name", e->username, "password", e->password);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct tg_store__reader r;
    int rc = exchange(e, i, "/v3/auth/authenticate", body, NULL, &r, NULL, why, why_len);
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    if (rc == 0 && r.status != 200)
        rc = answer_error(e, i, &r, why, why_len);
    if (rc == 0) {
        json_t *j = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "token"));
        if (t == NULL) {
            snprintf(why, why_len, "%s: authentication answered no token", e->hosts[i]);
            rc = -EPROTO;
        } else {
            *token = tg_xstrdup(t);
        }
        json_decref(j);
    }
    tg_store__reader_free(&r);
    return rc;
}

/* Calls path on endpoint i, authenticating first when a username is set. */
static int call_one(struct tg_etcd *e, size_t i, const char *path, const char *body,
                    struct tg_store__reader *r, struct conn *keep, char *why, size_t why_len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        char *token = NULL;
        if (e->username != NULL) {
            uv_mutex_lock(&e->mu);
            token = e->token ? tg_xstrdup(e->token) : NULL;
            uv_mutex_unlock(&e->mu);
            if (token == NULL) {
                int rc = authenticate(e, i, &token, why, why_len);
                if (rc != 0)
                    return rc;
                uv_mutex_lock(&e->mu);
                free(e->token);
                e->token = tg_xstrdup(token);
                uv_mutex_unlock(&e->mu);
            }
        }
        int rc = exchange(e, i, path, body, token, r, keep, why, why_len);
        free(token);
        if (rc != 0 || r->status == 200)
            return rc;
        rc = answer_error(e, i, r, why, why_len);
        if (rc == -EACCES && e->username != NULL && attempt == 0 && strstr(why, "token")) {
            uv_mutex_lock(&e->mu); /* the token expired: once more with a new one */
            free(e->token);
            e->token = NULL;
            uv_mutex_unlock(&e->mu);
            tg_store__reader_free(r);
            continue;
        }
        tg_store__reader_free(r);
        return rc;
    }
    return -EACCES;
}

/* Tries the endpoints from the one that answered last. retry_after_send: a request that may be
 * repeated (a read) goes to the next endpoint also after a timeout. */
static int call_any(struct tg_etcd *e, const char *path, json_t *req, bool retry_after_send,
                    struct tg_store__reader *r, struct conn *keep, char *why, size_t why_len)
{
    char *body = json_dumps(req, JSON_COMPACT);
    uv_mutex_lock(&e->mu);
    size_t start = e->cur;
    uv_mutex_unlock(&e->mu);
    int rc = -ECONNREFUSED;
    bool sent = false;
    for (size_t k = 0; k < e->n; k++) {
        size_t i = (start + k) % e->n;
        rc = call_one(e, i, path, body, r, keep, why, why_len);
        if (rc == 0) {
            uv_mutex_lock(&e->mu);
            e->cur = i;
            uv_mutex_unlock(&e->mu);
            break;
        }
        if (rc != -ECONNREFUSED)
            sent = true;
        if (rc == -EACCES || (rc != -ECONNREFUSED && !retry_after_send))
            break;
    }
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    if (rc != 0 && sent && rc != -EACCES)
        rc = -ETIMEDOUT; /* sent to a member that did not confirm it */
    return rc;
}

int tg_etcd_call(struct tg_etcd *e, const char *path, json_t *req, json_t **resp, char *why,
                 size_t why_len)
{
    struct tg_store__reader r;
    bool is_read = strcmp(path, "/v3/kv/range") == 0 || strncmp(path, "/v3/maintenance", 15) == 0 ||
                   strncmp(path, "/v3/cluster", 11) == 0;
    *resp = NULL;
    int rc = call_any(e, path, req, is_read, &r, NULL, why, why_len);
    if (rc != 0)
        return rc;
    json_error_t je;
    *resp = json_loadb(r.body ? r.body : "", r.len, 0, &je);
    if (!json_is_object(*resp)) {
        snprintf(why, why_len, "the answer to %s is not a JSON object", path);
        json_decref(*resp);
        *resp = NULL;
        rc = -EPROTO;
    }
    tg_store__reader_free(&r);
    return rc;
}

int tg_etcd_call_at(struct tg_etcd *e, size_t i, const char *path, json_t *req, json_t **resp,
                    char *why, size_t why_len)
{
    struct tg_store__reader r;
    char *body = json_dumps(req, JSON_COMPACT);
    *resp = NULL;
    int rc = call_one(e, i, path, body, &r, NULL, why, why_len);
    free(body);
    if (rc != 0)
        return rc;
    *resp = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
    tg_store__reader_free(&r);
    if (!json_is_object(*resp)) {
        json_decref(*resp);
        *resp = NULL;
        snprintf(why, why_len, "the answer to %s is not a JSON object", path);
        return -EPROTO;
    }
    return 0;
}

int tg_etcd_watch_open(struct tg_etcd *e, json_t *req, struct tg_etcd_watch **out, char *why,
                       size_t why_len)
{
    struct tg_etcd_watch *w = tg_xcalloc(1, sizeof(*w));
    w->c.fd = -1;
    int rc = call_any(e, "/v3/watch", req, true, &w->r, &w->c, why, why_len);
    if (rc != 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int tg_etcd_watch_next(struct tg_etcd_watch *w, int ms, json_t **msg)
{
    *msg = tg_store__reader_next_line(&w->r);
    if (*msg != NULL)
        return 0;
    if (w->r.done || w->r.failed)
        return -EIO;
    char buf[16384];
    ssize_t n = conn_read(&w->c, buf, sizeof(buf), ms);
    if (n == -ETIMEDOUT)
        return -EAGAIN;
    if (n <= 0)
        return -EIO;
    if (tg_store__reader_feed(&w->r, buf, (size_t)n) != 0)
        return -EPROTO;
    *msg = tg_store__reader_next_line(&w->r);
    return *msg ? 0 : -EAGAIN;
}

void tg_etcd_watch_close(struct tg_etcd_watch *w)
{
    if (w == NULL)
        return;
    conn_close(&w->c);
    tg_store__reader_free(&w->r);
    free(w);
}
