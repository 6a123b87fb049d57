/* Client requests: parse with llhttp, route, rewrite the head for the backend, stream the body. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FEED_SLACK 256

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

static bool append_field(struct tg_buf *b, const char *base, const struct tg_h1_field *f)
{
    return tg_buf_append(b, base + f->name.off, f->name.len) && tg_buf_append(b, ": ", 2) &&
           tg_buf_append(b, base + f->value.off, f->value.len) && tg_buf_append(b, "\r\n", 2);
}

/* Writes the request head for the backend into to_backend. */
static bool build_backend_head(struct tg_client *c, const char *url, size_t url_len)
{
    struct tg_h1_msg *m = &c->rq->msg;
    struct tg_buf *b = &c->to_backend;
    tg__buf_ensure(c->w, b, tg__client_in_cap(c) + 4096);
    b->off = b->len = 0;
    bool ok = tg_buf_append_str(b, c->rq->method) && tg_buf_append(b, " ", 1) &&
              tg_buf_append(b, url, url_len) && tg_buf_append_str(b, " HTTP/1.1\r\n");
    for (size_t i = 0; ok && i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        if (tg_h1_is_hop_by_hop(m, f) || tg_h1_name_is(m, f, "content-length") ||
            tg_h1_name_is(m, f, "x-forwarded-for") || tg_h1_name_is(m, f, "x-forwarded-proto") ||
            tg_h1_name_is(m, f, "x-forwarded-client-cert"))
            continue;
        ok = append_field(b, m->base, f);
    }
    char extra[256];
    const char *ip = c->peer;
    size_t iplen = strlen(c->peer);
    /* "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1" */
    const char *colon = strrchr(c->peer, ':');
    if (c->peer[0] == '[') {
        ip = c->peer + 1;
        iplen = (size_t)(strchr(c->peer, ']') - ip);
    } else if (colon != NULL) {
        iplen = (size_t)(colon - c->peer);
    }
    int n = snprintf(extra, sizeof(extra), "X-Forwarded-For: %.*s\r\nX-Forwarded-Proto: %s\r\n",
                     (int)iplen, ip, c->ssl ? "https" : "http");
    ok = ok && tg_buf_append(b, extra, (size_t)n);
    if (c->req_chunked) {
        ok = ok && tg_buf_append_str(b, "Transfer-Encoding: chunked\r\n");
    } else if (m->parser.flags & F_CONTENT_LENGTH) {
        n = snprintf(extra, sizeof(extra), "Content-Length: %" PRIu64 "\r\n",
                     (uint64_t)m->parser.content_length);
        ok = ok && tg_buf_append(b, extra, (size_t)n);
    }
    ok = ok && tg_buf_append(b, "\r\n", 2);
    c->req_head_len = b->len;
    return ok;
}

static int req_on_head(struct tg_h1_msg *m)
{
    struct tg_client *c = m->user;
    llhttp_t *p = &m->parser;
    c->req_active = true;
    c->req_start_ms = uv_now(&c->w->loop);
    TG_STAT_INC(&c->w->stats, requests);
    copy_span(c->rq->method, sizeof(c->rq->method), llhttp_method_name((llhttp_method_t)p->method),
              strlen(llhttp_method_name((llhttp_method_t)p->method)));
    const char *url = m->base + m->url.off;
    size_t url_len = m->url.len;
    c->req_head_only = p->method == HTTP_HEAD;
    c->req_http10 = p->http_major == 1 && p->http_minor == 0;
    c->req_keepalive = llhttp_should_keep_alive(p);
    c->req_chunked = (p->flags & F_CHUNKED) != 0;
    c->req_has_body = c->req_chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);

    /* Absolute-form targets ("http://host/path") carry the host themselves. */
    const char *host = NULL;
    size_t host_len = 0;
    if (url_len > 8 && (tg_strncaseeq(url, "http://", 7) || tg_strncaseeq(url, "https://", 8))) {
        const char *h = memchr(url, '/', url_len);
        h += 2;
        const char *end = memchr(h, '/', url_len - (size_t)(h - url));
        host = h;
        host_len = end ? (size_t)(end - h) : url_len - (size_t)(h - url);
        url_len -= (size_t)((end ? end : url + url_len) - url);
        url = end ? end : "/";
        if (url_len == 0) {
            url = "/";
            url_len = 1;
        }
    } else {
        const struct tg_h1_field *hf = tg_h1_find(m, "host");
        if (hf != NULL) {
            host = m->base + hf->value.off;
            host_len = hf->value.len;
        }
    }
    if (host != NULL) {
        host_len = tg_host_strip_port(host, host_len);
        copy_span(c->rq->host, sizeof(c->rq->host), host, host_len);
    } else {
        c->rq->host[0] = '\0';
    }
    copy_span(c->rq->path, sizeof(c->rq->path), url, url_len);

    if (p->method == HTTP_CONNECT) {
        c->discard_body = true;
        c->close_after = true;
        tg__client_local_response(c, 405, "CONNECT is not supported\n");
        return 0;
    }
    if (c->req_http10 == false && host == NULL) {
        c->discard_body = true;
        c->close_after = true;
        tg__client_local_response(c, 400, "HTTP/1.1 request without Host header\n");
        return 0;
    }
    const struct tg_route_conf *r = tg_route_match(c->lc, host, host_len, url, url_len);
    if (r == NULL) {
        c->discard_body = true;
        tg__client_local_response(c, 404, "no route matches this host and path\n");
        return 0;
    }
    c->backend = &tg__cfg(c)->backends[r->backend_idx];
    if (c->backend->kind == TG_BACKEND_STATUS) {
        c->discard_body = true;
        tg__status_respond(c);
        return 0;
    }
    if (!build_backend_head(c, url, url_len)) {
        c->discard_body = true;
        c->close_after = true;
        tg__client_local_response(c, 431, "request head too large\n");
        return 0;
    }
    return 0;
}

static int req_on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct tg_client *c = m->user;
    if (c->discard_body || c->local)
        return 0;
    struct tg_buf *b = &c->to_backend;
    if (c->req_chunked) {
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
    c->req_done = true;
    if (c->req_chunked && !c->local && !c->discard_body)
        return tg_buf_append(&c->to_backend, "0\r\n\r\n", 5) ? 0 : -1;
    return 0;
}

/* Feeds buffered client bytes to the parser, as far as the backend buffer has room. */
/* One pass of feeding the parser; stops at a message end, an incomplete head or a full
 * backend buffer. */
static void feed(struct tg_client *c)
{
    while (!c->dead && tg_buf_used(&c->in) > 0 && !c->req_done) {
        size_t avail = tg_buf_used(&c->in);
        if (c->rq->msg.head_done && !c->discard_body && !c->local) {
            size_t room = tg_buf_room(&c->to_backend);
            if (room < FEED_SLACK * 2) {
                tg_buf_compact(&c->to_backend);
                room = tg_buf_room(&c->to_backend);
            }
            if (room <= FEED_SLACK * 2)
                break; /* backpressure: wait for the backend to take bytes */
            avail = TG_MIN(avail, (room - FEED_SLACK) / 2);
        }
        bool had_head = c->rq->msg.head_done;
        if (!c->head_started) {
            c->head_started = true;
            c->timer_kind = TG_CT_NONE;
        }
        size_t consumed = 0;
        c->in_parser = true;
        enum tg_h1_result r = tg_h1_execute(&c->rq->msg, c->in.data, c->in.off, avail, &consumed);
        c->in_parser = false;
        if (c->dead)
            return;
        c->in.off += consumed;
        if (r == TG_H1_ERROR) {
            tg_log_info("client %s listener=%s: bad request: %s", c->peer, c->lc->name,
                        c->rq->msg.error ? c->rq->msg.error : "malformed");
            c->close_after = true;
            c->req_done = true;
            if (!c->req_active) {
                c->req_start_ms = uv_now(&c->w->loop);
                snprintf(c->rq->method, sizeof(c->rq->method), "-");
                snprintf(c->rq->path, sizeof(c->rq->path), "-");
            }
            tg__client_local_response(c, c->rq->msg.error_status ? c->rq->msg.error_status : 400,
                                      c->rq->msg.error_status == 431
                                          ? "request header fields too large\n"
                                          : "malformed request\n");
            return;
        }
        if (!c->rq->msg.head_done) {
            if (c->in.off > (size_t)tg__cfg(c)->limits.max_header_bytes) {
                c->close_after = true;
                c->req_done = true;
                c->req_start_ms = uv_now(&c->w->loop);
                snprintf(c->rq->method, sizeof(c->rq->method), "-");
                snprintf(c->rq->path, sizeof(c->rq->path), "-");
                tg_log_info("client %s listener=%s: request head over %u bytes "
                            "(limits.max_header_bytes)",
                            c->peer, c->lc->name, tg__cfg(c)->limits.max_header_bytes);
                tg__client_local_response(c, 431, "request header fields too large\n");
                return;
            }
            break;
        }
        if (!had_head && !c->local && !c->dead) {
            tg__backend_start(c);
            if (c->dead)
                return;
        }
        if (c->in.off == c->in.len)
            c->in.off = c->in.len = 0;
        else if (c->rq->msg.head_done)
            tg_buf_compact(&c->in);
        if (r == TG_H1_PAUSED)
            break;
        if (consumed == 0)
            break;
    }
}

#define MAX_FREE_REQ 256

static void req_acquire(struct tg_client *c)
{
    struct tg_proxy_worker *pw = tg_pw(c->w);
    size_t max_fields = tg__cfg(c)->limits.max_headers;
    struct tg_creq *r = pw->free_req;
    if (r != NULL) {
        pw->free_req = r->next_free;
        pw->n_free_req--;
        if (r->msg.max_fields != max_fields) { /* made under another config */
            tg_h1_free(&r->msg);
            free(r);
            r = NULL;
        }
    }
    if (r == NULL) {
        r = tg_xcalloc(1, sizeof(*r));
        tg_h1_init(&r->msg, HTTP_REQUEST, max_fields, &req_cb, c);
    } else {
        tg_h1_reset(&r->msg);
    }
    r->msg.user = c;
    r->msg.pause_on_done = true;
    snprintf(r->method, sizeof(r->method), "-");
    snprintf(r->path, sizeof(r->path), "-");
    r->host[0] = '\0';
    c->rq = r;
}

void tg__client_req_release(struct tg_client *c)
{
    struct tg_creq *r = c->rq;
    if (r == NULL)
        return;
    c->rq = NULL;
    struct tg_proxy_worker *pw = c->w->proto;
    if (pw == NULL || pw->n_free_req >= MAX_FREE_REQ) {
        tg_h1_free(&r->msg);
        free(r);
        return;
    }
    r->next_free = pw->free_req;
    pw->free_req = r;
    pw->n_free_req++;
}

void tg__req_cache_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->free_req != NULL) {
        struct tg_creq *r = pw->free_req;
        pw->free_req = r->next_free;
        tg_h1_free(&r->msg);
        free(r);
    }
    pw->n_free_req = 0;
}

void tg__client_process(struct tg_client *c)
{
    if (c->dead || c->in.data == NULL)
        return;
    if (c->rq == NULL)
        req_acquire(c);
    for (;;) {
        feed(c);
        if (c->dead)
            return;
        size_t pending = tg_buf_used(&c->to_backend);
        if (c->bc == NULL || pending == 0)
            break;
        tg__backend_flush(c->bc);
        if (c->dead)
            return;
        /* If the flush made room while body bytes wait in c->in, feed again now: no poll
         * event would bring us back (the backend socket took everything, c->in is full). */
        if (c->req_done || !c->rq->msg.head_done || tg_buf_used(&c->in) == 0 || c->bc == NULL ||
            tg_buf_used(&c->to_backend) >= pending)
            break;
    }
    if (c->resp_done)
        tg__client_flush(c);
}
