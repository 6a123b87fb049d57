/* Request streams: parse the client's HTTP/1 request with llhttp, route it, build the head the
 * backend gets (as data, then serialised), and stream the body with back-pressure. */
#include "proxy/internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FEED_SLACK  256
#define MAX_FREE_ST 256

static int req_on_head(struct tg_h1_msg *m);
static int req_on_body(struct tg_h1_msg *m, const char *at, size_t len);
static int req_on_done(struct tg_h1_msg *m);
static const struct tg_h1_callbacks req_cb = {req_on_head, req_on_body, req_on_done};

static void copy_span(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = TG_MIN(len, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool is_closed(const struct tg_client *c)
{
    return tg_conn_closed(&c->conn);
}

/* Answers a request we refuse before it reaches a backend; the rest of its body is not read,
 * so the connection closes after the answer. */
static int refuse(struct tg_client *c, enum tg_hfail f)
{
    const struct tg_hfail_info *fi = tg__hfail_info(f);
    tg_log_info("client %s listener=%s: request refused with %d: reason=%s: %s%s%s", c->peer,
                c->lc->name, fi->status, fi->token, fi->sentence,
                fi->config_key ? "; to change this, see " : "",
                fi->config_key ? fi->config_key : "");
    c->st->discard_body = true;
    c->close_after = true;
    tg__client_refuse(c, f);
    return 0;
}

static bool tchar_reg_name(unsigned char ch)
{
    /* RFC 3986 reg-name: unreserved / pct-encoded / sub-delims */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("-._~%!$&'()*+,;=", ch) != NULL;
}

/* RFC 9110 7.2 Host = uri-host [ ":" port ]: a reg-name or an IP literal, then digits. */
static bool host_valid(const char *h, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return false;
    if (h[0] == '[') {
        for (i = 1; i < len && h[i] != ']'; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        while (i < len && h[i] != ':' && tchar_reg_name((unsigned char)h[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i < len && h[i] == ':')
        for (i++; i < len && isdigit((unsigned char)h[i]); i++)
            ;
    return i == len;
}

static bool te_token_ok(const char *tok, size_t len, void *arg)
{
    int *n = arg;
    (*n)++;
    return len == 7 && tg_strncaseeq(tok, "chunked", 7);
}

static bool is_ours(const struct tg_h1_msg *m, const struct tg_h1_field *f)
{
    /* Fields we set ourselves: whatever the client sent under these names is dropped. */
    return tg_h1_name_is(m, f, "host") || tg_h1_name_is(m, f, "content-length") ||
           tg_h1_name_is(m, f, "x-forwarded-for") || tg_h1_name_is(m, f, "x-forwarded-proto") ||
           tg_h1_name_is(m, f, "x-forwarded-client-cert") || tg_h1_name_is(m, f, "client-cert") ||
           tg_h1_name_is(m, f, "client-cert-chain");
}

/* Builds the request head for the backend as data (our Host first: the one routing used; the
 * client's fields minus hop-by-hop, framing, underscore names unless passed and the ones we set;
 * X-Forwarded-For/-Proto; re-stated framing) and serialises it into to_backend. */
static bool build_backend_head(struct tg_client *c, const char *url, size_t url_len,
                               const char *host, size_t host_len)
{
    struct tg_stream *st = c->st;
    struct tg_h1_msg *m = &st->msg;
    struct tg_http_head *h = &st->req;
    bool pass_us = tg__cfg(c)->http.underscores == TG_US_PASS;
    tg_http_head_clear(h);
    h->method = st->method;
    h->method_len = (uint32_t)strlen(st->method);
    h->target = url;
    h->target_len = (uint32_t)url_len;
    bool ok = true;
    if (host != NULL)
        ok = tg_http_head_add(h, "Host", 4, host, host_len);
    for (size_t i = 0; ok && i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        if (tg_h1_is_hop_by_hop(m, f) || is_ours(m, f))
            continue;
        if (!pass_us && memchr(m->base + f->name.off, '_', f->name.len) != NULL) {
            tg_log_debug("client %s listener=%s: dropped header field \"%.*s\": its name has an "
                         "underscore (http.underscores_in_headers)",
                         c->peer, c->lc->name, (int)TG_MIN(f->name.len, 64u),
                         m->base + f->name.off);
            continue;
        }
        ok = tg_http_head_add(h, m->base + f->name.off, f->name.len, m->base + f->value.off,
                              f->value.len);
    }
    /* "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1" */
    const char *ip = c->peer;
    size_t iplen = strlen(c->peer);
    const char *colon = strrchr(c->peer, ':');
    if (c->peer[0] == '[') {
        ip = c->peer + 1;
        iplen = (size_t)(strchr(c->peer, ']') - ip);
    } else if (colon != NULL) {
        iplen = (size_t)(colon - c->peer);
    }
    copy_span(st->xff, sizeof(st->xff), ip, iplen);
    ok = ok && tg_http_head_add(h, "X-Forwarded-For", 15, st->xff, strlen(st->xff)) &&
         tg_http_head_add(h, "X-Forwarded-Proto", 17, c->conn.ssl ? "https" : "http",
                          c->conn.ssl ? 5 : 4);
    if (ok && c->xfcc != NULL)
        ok = tg_http_head_add(h, "X-Forwarded-Client-Cert", 23, c->xfcc, strlen(c->xfcc));
    if (ok && c->client_cert != NULL)
        ok = tg_http_head_add(h, "Client-Cert", 11, c->client_cert, strlen(c->client_cert));
    if (ok && c->client_cert_chain != NULL)
        ok = tg_http_head_add(h, "Client-Cert-Chain", 17, c->client_cert_chain,
                              strlen(c->client_cert_chain));
    if (st->req_chunked) {
        h->body = TG_BODY_CHUNKED;
    } else if (m->parser.flags & F_CONTENT_LENGTH) {
        h->body = TG_BODY_LENGTH;
        h->content_length = (uint64_t)m->parser.content_length;
    }
    if (st->upgrade)
        h->upgrade = "websocket";
    struct tg_buf *b = &st->to_backend;
    tg_conn_buf_get(c->conn.w, b, tg__client_in_cap(c) + 4096);
    b->off = b->len = 0;
    ok = ok && tg_h1_write_request(b, h);
    st->req_head_len = b->len;
    return ok;
}

/* The forwarded head did not fit: the client's certificate chain may be what is too large, and
 * RFC 9440 lets Client-Cert-Chain be left out. It is, for the rest of the connection (logged
 * once); false when there was none to leave out. */
static bool drop_cert_chain(struct tg_client *c)
{
    if (c->client_cert_chain == NULL)
        return false;
    tg_log_info("client %s listener=%s: Client-Cert-Chain left out of requests forwarded on this "
                "connection: its %zu bytes do not fit the forwarded head (limits.max_header_bytes)",
                c->peer, c->lc->name, strlen(c->client_cert_chain));
    free(c->client_cert_chain);
    c->client_cert_chain = NULL;
    return true;
}

/* A WebSocket opening handshake (RFC 6455 4.1): GET, HTTP/1.1, Upgrade: websocket and
 * Connection: upgrade. Any other Upgrade is dropped as hop-by-hop and the request stays HTTP. */
static bool wants_websocket(const struct tg_h1_msg *m)
{
    const llhttp_t *p = &m->parser;
    return p->method == HTTP_GET && p->http_major == 1 && p->http_minor == 1 &&
           tg_h1_has_token(m, "upgrade", "websocket") &&
           tg_h1_has_token(m, "connection", "upgrade");
}

/* Keeps the Sec-WebSocket-Accept the backend's 101 must carry for the client's key (the head's
 * spans do not outlive it). Without one valid key no 101 is accepted. */
static void ws_expect_accept(struct tg_stream *st, const struct tg_h1_msg *m)
{
    const struct tg_h1_field *f = tg_h1_find(m, "sec-websocket-key");
    if (f == NULL || tg_ws_accept_for_key(m->base + f->value.off, f->value.len, st->ws_accept) != 0)
        st->ws_accept[0] = '\0';
}

static int req_on_head(struct tg_h1_msg *m)
{
    struct tg_client *c = m->user;
    struct tg_stream *st = c->st;
    llhttp_t *p = &m->parser;
    st->req_phase = TG_REQ_BODY;
    st->start_ms = uv_now(&c->conn.w->loop);
    TG_STAT_INC(&c->conn.w->stats, requests);
    copy_span(st->method, sizeof(st->method), llhttp_method_name((llhttp_method_t)p->method),
              strlen(llhttp_method_name((llhttp_method_t)p->method)));
    char *url = (char *)m->base + m->url.off; /* our own buffer: normalised in place below */
    size_t url_len = m->url.len;
    copy_span(st->path, sizeof(st->path), url, url_len);
    st->head_only = p->method == HTTP_HEAD;
    st->http10 = p->http_major == 1 && p->http_minor == 0;
    st->keepalive = llhttp_should_keep_alive(p);
    st->req_chunked = (p->flags & F_CHUNKED) != 0;
    st->has_body = st->req_chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    if (p->http_major != 1 || p->http_minor > 1)
        return refuse(c, TG_HF_VERSION);
    if (tg_h1_find(m, "transfer-encoding") != NULL) {
        if (st->http10)
            return refuse(c, TG_HF_TE_HTTP10);
        int n = 0;
        if (!tg_h1_each_token(m, "transfer-encoding", te_token_ok, &n) || n != 1)
            return refuse(c, TG_HF_CODING);
    }
    if (p->method == HTTP_CONNECT)
        return refuse(c, TG_HF_CONNECT);

    /* The Host routing sees is the Host the backend gets (RFC 9112 3.2.2): an absolute-form
     * target's authority replaces any Host field; otherwise exactly one valid Host. */
    const char *host = NULL;
    size_t host_len = 0;
    const struct tg_h1_field *hf = tg_h1_find(m, "host");
    if (hf != NULL && hf + 1 < m->fields + m->n_fields) {
        for (const struct tg_h1_field *f = hf + 1; f < m->fields + m->n_fields; f++)
            if (tg_h1_name_is(m, f, "host"))
                return refuse(c, TG_HF_HOST_REPEATED);
    }
    if (url_len > 0 && url[0] != '/' && !(url_len == 1 && url[0] == '*')) {
        size_t sl = url_len > 7 && tg_strncaseeq(url, "http://", 7)    ? 7
                    : url_len > 8 && tg_strncaseeq(url, "https://", 8) ? 8
                                                                       : 0;
        if (sl == 0)
            return refuse(c, TG_HF_TARGET_FORM);
        host = url + sl;
        size_t i = sl;
        while (i < url_len && url[i] != '/' && url[i] != '?')
            i++;
        host_len = (size_t)(url + i - host);
        if (memchr(host, '@', host_len) != NULL)
            return refuse(c, TG_HF_USERINFO);
        url += i;
        url_len -= i;
    } else if (hf != NULL) {
        host = m->base + hf->value.off;
        host_len = hf->value.len;
    } else if (!st->http10) {
        return refuse(c, TG_HF_HOST_MISSING);
    }
    if (host != NULL && !host_valid(host, host_len))
        return refuse(c, TG_HF_HOST_INVALID);
    if (url_len > 0 && url[0] == '/' && tg_http_path_normalize(url, url_len, &url_len) != 0)
        return refuse(c, TG_HF_TARGET_MALFORMED);
    if (url_len == 1 && url[0] == '*' && p->method != HTTP_OPTIONS)
        return refuse(c, TG_HF_STAR);
    copy_span(st->path, sizeof(st->path), url, url_len);

    if (tg__cfg(c)->http.underscores == TG_US_REJECT) {
        for (size_t i = 0; i < m->n_fields; i++)
            if (memchr(m->base + m->fields[i].name.off, '_', m->fields[i].name.len) != NULL)
                return refuse(c, TG_HF_UNDERSCORE);
    }

    size_t route_host_len = host ? tg_host_strip_port(host, host_len) : 0;
    if (host != NULL)
        copy_span(st->host, sizeof(st->host), host, route_host_len);
    else
        st->host[0] = '\0';
    const char *q = memchr(url, '?', url_len);
    size_t path_len = q ? (size_t)(q - url) : url_len;
    const struct tg_route_conf *r = url[0] == '/'
                                        ? tg_route_match(c->lc, host, route_host_len, url, path_len)
                                        : tg_route_match(c->lc, host, route_host_len, "/", 1);
    if (r == NULL) {
        tg_log_info(
            "client %s listener=%s: request refused with 404: reason=%s: no route for %s %s",
            c->peer, c->lc->name, tg__hfail_info(TG_HF_NO_ROUTE)->token, st->method, st->path);
        st->discard_body = true;
        tg__client_refuse(c, TG_HF_NO_ROUTE);
        return 0;
    }
    if (r->client_auth_require && !c->has_cert) {
        tg_log_info("client %s listener=%s: request refused with 403: reason=%s: %s %s needs a "
                    "client certificate (routes client_auth \"require\")",
                    c->peer, c->lc->name, tg__hfail_info(TG_HF_CERT_REQUIRED)->token, st->method,
                    st->path);
        st->discard_body = true;
        c->close_after = true;
        tg__client_refuse(c, TG_HF_CERT_REQUIRED);
        return 0;
    }
    st->backend = &tg__cfg(c)->backends[r->backend_idx];
    if (st->backend->kind == TG_BACKEND_STATUS) {
        st->discard_body = true;
        tg__status_respond(c);
        return 0;
    }
    st->upgrade = wants_websocket(m);
    if (st->upgrade)
        ws_expect_accept(st, m);
    const char *fwd_url = url_len ? url : "/";
    size_t fwd_len = url_len ? url_len : 1;
    if (!build_backend_head(c, fwd_url, fwd_len, host, host_len) &&
        !(drop_cert_chain(c) && build_backend_head(c, fwd_url, fwd_len, host, host_len))) {
        tg_log_info("client %s listener=%s: request refused with 431: reason=%s: %s %s: the head "
                    "with the fields we add does not fit the backend's buffer "
                    "(limits.max_header_bytes)",
                    c->peer, c->lc->name, tg__hfail_info(TG_HF_FORWARD_TOO_LARGE)->token,
                    st->method, st->path);
        st->discard_body = true;
        c->close_after = true;
        tg__client_refuse(c, TG_HF_FORWARD_TOO_LARGE);
        return 0;
    }
    return 0;
}

static int req_on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct tg_client *c = m->user;
    struct tg_stream *st = c->st;
    st->body_bytes += len; /* a dropped body is held to the same rate: it still ties us up */
    if (st->discard_body || st->kind == TG_SK_LOCAL)
        return 0;
    struct tg_buf *b = &st->to_backend;
    if (st->req_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        if (!tg_buf_append(b, hdr, (size_t)n) || !tg_buf_append(b, at, len) ||
            !tg_buf_append(b, "\r\n", 2))
            return -1;
        return 0;
    }
    return tg_buf_append(b, at, len) ? 0 : -1;
}

static int req_on_done(struct tg_h1_msg *m)
{
    struct tg_client *c = m->user;
    struct tg_stream *st = c->st;
    st->req_phase = TG_REQ_DONE;
    if (st->req_chunked && st->kind != TG_SK_LOCAL && !st->discard_body)
        return tg_buf_append(&st->to_backend, "0\r\n\r\n", 5) ? 0 : -1;
    return 0;
}

/* A request that failed before or while its head was parsed: answer (the caller logs). */
static void bad_request(struct tg_client *c, enum tg_hfail f)
{
    struct tg_stream *st = c->st;
    c->close_after = true;
    if (st->req_phase == TG_REQ_HEAD) {
        st->start_ms = uv_now(&c->conn.w->loop);
        memcpy(st->method, "-", 2);
        memcpy(st->path, "-", 2);
    }
    st->req_phase = TG_REQ_DONE;
    tg__client_refuse(c, f);
}

/* The parser failed after the head of a request we already answered ourselves (llhttp refuses
 * a transfer coding we refused with 501 in req_on_head): that answer stands, alone. One request
 * gets one response; the connection closes after it. */
static void already_answered(struct tg_client *c)
{
    struct tg_stream *st = c->st;
    tg_log_debug("client %s listener=%s: request already answered with %d; not reading the rest "
                 "(%s)",
                 c->peer, c->lc->name, st->status, st->msg.error ? st->msg.error : "malformed");
    c->close_after = true;
    st->req_phase = TG_REQ_DONE; /* tg__http1_process flushes the answer */
}

/* One pass of feeding the parser; stops at a message end, an incomplete head or a full
 * backend buffer. */
static void feed(struct tg_client *c)
{
    struct tg_conn *conn = &c->conn;
    struct tg_stream *st = c->st;
    while (!is_closed(c) && tg_buf_used(&conn->in) > 0 && st->req_phase != TG_REQ_DONE) {
        size_t avail = tg_buf_used(&conn->in);
        if (st->msg.head_done && !st->discard_body && st->kind != TG_SK_LOCAL) {
            size_t room = tg_buf_room(&st->to_backend);
            if (room < FEED_SLACK * 2) {
                tg_buf_compact(&st->to_backend);
                room = tg_buf_room(&st->to_backend);
            }
            if (room <= FEED_SLACK * 2)
                break; /* back-pressure: wait for the backend to take bytes */
            avail = TG_MIN(avail, (room - FEED_SLACK) / 2);
        }
        bool had_head = st->msg.head_done;
        if (c->phase == TG_CP_IDLE) {
            c->phase = TG_CP_REQUEST;
            c->timer_kind = TG_CT_NONE;
        }
        size_t consumed = 0;
        c->in_parser = true;
        enum tg_h1_result r =
            tg_h1_execute(&st->msg, conn->in.data, conn->in.off, avail, &consumed);
        c->in_parser = false;
        if (is_closed(c))
            return;
        conn->in.off += consumed;
        if (r == TG_H1_ERROR && st->kind == TG_SK_LOCAL && st->req_phase != TG_REQ_HEAD) {
            already_answered(c);
            return;
        }
        if (r == TG_H1_ERROR) {
            int status = st->msg.error_status;
            enum tg_hfail f = status == 431   ? TG_HF_HEAD_TOO_LARGE
                              : status == 505 ? TG_HF_VERSION
                                              : TG_HF_MALFORMED;
            tg_log_info(
                "client %s listener=%s: request refused with %d: reason=%s: bad request: %s",
                c->peer, c->lc->name, tg__hfail_info(f)->status, tg__hfail_info(f)->token,
                st->msg.error ? st->msg.error : "malformed");
            bad_request(c, f);
            return;
        }
        if (!st->msg.head_done) {
            if (conn->in.off > (size_t)tg__cfg(c)->limits.max_header_bytes) {
                tg_log_info("client %s listener=%s: request refused with 431: reason=%s: request "
                            "head over %u bytes (limits.max_header_bytes)",
                            c->peer, c->lc->name, tg__hfail_info(TG_HF_HEAD_TOO_LARGE)->token,
                            tg__cfg(c)->limits.max_header_bytes);
                bad_request(c, TG_HF_HEAD_TOO_LARGE);
                return;
            }
            break;
        }
        if (!had_head && st->kind != TG_SK_LOCAL && !is_closed(c)) {
            tg__stream_start(st);
            if (is_closed(c))
                return;
        }
        if (conn->in.off == conn->in.len)
            conn->in.off = conn->in.len = 0;
        else if (st->msg.head_done)
            tg_buf_compact(&conn->in);
        if (r == TG_H1_PAUSED)
            break;
        if (consumed == 0)
            break;
    }
}

static void stream_acquire(struct tg_client *c)
{
    struct tg_proxy_worker *pw = tg_pw(c->conn.w);
    size_t max_fields = tg__cfg(c)->limits.max_headers;
    struct tg_stream *st = pw->free_streams;
    if (st != NULL) {
        pw->free_streams = st->next_free;
        pw->n_free_streams--;
        if (st->msg.max_fields != max_fields) { /* made under another config */
            tg_h1_free(&st->msg);
            tg_http_head_free(&st->req);
            tg_http_head_free(&st->resp);
            free(st);
            st = NULL;
        }
    }
    if (st == NULL) {
        st = tg_xcalloc(1, sizeof(*st));
        tg_h1_init(&st->msg, HTTP_REQUEST, max_fields, &req_cb, c);
        /* Room for the client's fields plus the ones we add. */
        tg_http_head_init(&st->req, (uint32_t)max_fields + 8);
        tg_http_head_init(&st->resp, (uint32_t)max_fields + 8);
    } else {
        struct tg_h1_msg msg = st->msg;
        struct tg_http_head req = st->req, resp = st->resp;
        memset(st, 0, sizeof(*st));
        st->msg = msg;
        st->req = req;
        st->resp = resp;
        tg_h1_reset(&st->msg);
    }
    st->c = c;
    st->bytes_out = c->conn.bytes_written; /* baseline: the access log counts what follows */
    st->msg.user = c;
    st->msg.pause_on_done = true;
    memcpy(st->method, "-", 2); /* what the access log says of a request that never parsed */
    memcpy(st->path, "-", 2);
    c->st = st;
}

void tg__stream_release(struct tg_client *c)
{
    struct tg_stream *st = c->st;
    if (st == NULL)
        return;
    c->st = NULL;
    struct tg_worker *w = c->conn.w;
    tg_conn_buf_put(w, &st->to_backend);
    struct tg_proxy_worker *pw = w->proto;
    if (pw == NULL || pw->n_free_streams >= MAX_FREE_ST) {
        tg_h1_free(&st->msg);
        tg_http_head_free(&st->req);
        tg_http_head_free(&st->resp);
        free(st);
        return;
    }
    st->next_free = pw->free_streams;
    pw->free_streams = st;
    pw->n_free_streams++;
}

void tg__stream_cache_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->free_streams != NULL) {
        struct tg_stream *st = pw->free_streams;
        pw->free_streams = st->next_free;
        tg_h1_free(&st->msg);
        tg_http_head_free(&st->req);
        tg_http_head_free(&st->resp);
        free(st);
    }
    pw->n_free_streams = 0;
}

void tg__http1_process(struct tg_client *c)
{
    if (is_closed(c) || c->conn.in.data == NULL)
        return;
    if (c->st == NULL)
        stream_acquire(c);
    for (;;) {
        struct tg_stream *st = c->st;
        feed(c);
        if (is_closed(c) || c->st != st)
            return;
        size_t pending = tg_buf_used(&st->to_backend);
        if (st->bc == NULL || pending == 0)
            break;
        tg__backend_flush(st->bc);
        if (is_closed(c) || c->st != st)
            return;
        /* If the flush made room while body bytes wait in the input, feed again now: no poll
         * event would bring us back (the backend socket took everything, the input is full). */
        if (st->req_phase != TG_REQ_BODY || tg_buf_used(&c->conn.in) == 0 || st->bc == NULL ||
            tg_buf_used(&st->to_backend) >= pending)
            break;
    }
    if (c->st != NULL && c->st->resp_phase == TG_RESP_DONE)
        tg__client_flush(c);
}
