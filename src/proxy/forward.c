/* The proxy's stream handler: routing and route client-auth over the request head as data, the
 * head the backend gets (X-Forwarded-*, client-certificate fields; built as data, then
 * serialised), the body re-framed into to_backend, and the backend connection held, pooled or
 * closed when the stream ends. Whatever protocol carried the request. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FEED_SLACK 256

/* Who the request is from: the connection, or the certificate a trusted balancer passed. */
static const struct tg_client_info *who_of(const struct tg_stream *st)
{
    return st->hdr_set ? &st->hdr_who : st->who;
}

static bool is_ours(const struct tg_http_field *f)
{
    /* Fields we set ourselves: whatever the client sent under these names is dropped. */
    return tg_http_name_is(f, "host") || tg_http_name_is(f, "content-length") ||
           tg_http_name_is(f, "x-forwarded-for") || tg_http_name_is(f, "x-forwarded-proto") ||
           tg_http_name_is(f, "x-forwarded-client-cert") || tg_http_name_is(f, "client-cert") ||
           tg_http_name_is(f, "client-cert-chain");
}

/* Builds the request head for the backend as data (our Host first: the one routing used; the
 * client's fields minus hop-by-hop, framing, underscore names unless passed and the ones we set;
 * X-Forwarded-For/-Proto; re-stated framing) and serialises it into to_backend. */
static bool build_backend_head(struct tg_stream *st, const char *url, size_t url_len,
                               const char *host, size_t host_len, bool with_chain)
{
    const struct tg_client_info *c = who_of(st);
    const char *from_header = c->lc->tls.client_auth.from_header;
    const struct tg_http_head *in = &st->req_in;
    struct tg_http_head *h = &st->req;
    bool pass_us = c->snap->cfg->http.underscores == TG_US_PASS;
    tg_http_head_clear(h);
    h->method = st->method;
    h->method_len = (uint32_t)strlen(st->method);
    h->target = url;
    h->target_len = (uint32_t)url_len;
    bool ok = true;
    if (host != NULL)
        ok = tg_http_head_add(h, "Host", 4, host, host_len);
    for (uint32_t i = 0; ok && i < in->n_fields; i++) {
        const struct tg_http_field *f = &in->fields[i];
        if (tg_http_head_is_hop_by_hop(in, f) || is_ours(f) ||
            (from_header != NULL && tg_http_name_is(f, from_header)))
            continue;
        if (!pass_us && memchr(f->name, '_', f->name_len) != NULL) {
            tg_log_debug("client %s listener=%s: dropped header field \"%.*s\": its name has an "
                         "underscore (http.underscores_in_headers)",
                         TG__PEER(c), c->lc->name, (int)TG_MIN(f->name_len, 64u), f->name);
            continue;
        }
        ok = tg_http_head_add(h, f->name, f->name_len, f->value, f->value_len);
    }
    /* "1.2.3.4", "::1" (st->xff has room for TG_ADDR_STRLEN) */
    size_t iplen = tg_addr_packed_ip(&c->peer, st->xff);
    ok = ok && tg_http_head_add(h, "X-Forwarded-For", 15, st->xff, iplen) &&
         tg_http_head_add(h, "X-Forwarded-Proto", 17, c->tls ? "https" : "http", c->tls ? 5 : 4);
    /* RFC 8470: a request served from TLS early data says so (a client's own field, from an
     * intermediary in front, is passed on as it is). */
    if (ok && st->early && tg__stream_early_safe(st) && tg_http_head_find(in, "early-data") == NULL)
        ok = tg_http_head_add(h, "Early-Data", 10, "1", 1);
    const struct tg_cert_fields *cf = c->fwd;
    if (ok && cf != NULL && cf->xfcc != NULL)
        ok = tg_http_head_add(h, "X-Forwarded-Client-Cert", 23, cf->xfcc, strlen(cf->xfcc));
    if (ok && cf != NULL && cf->cert != NULL)
        ok = tg_http_head_add(h, "Client-Cert", 11, cf->cert, strlen(cf->cert));
    if (ok && with_chain && cf != NULL && cf->chain != NULL)
        ok = tg_http_head_add(h, "Client-Cert-Chain", 17, cf->chain, strlen(cf->chain));
    if (st->req_chunked) {
        h->body = TG_BODY_CHUNKED;
    } else if (in->body == TG_BODY_LENGTH) {
        h->body = TG_BODY_LENGTH;
        h->content_length = in->content_length;
    }
    if (st->upgrade)
        h->upgrade = "websocket";
    struct tg_buf *b = &st->to_backend;
    tg_conn_buf_get(c->conn->w, b, tg__in_cap(c->snap) + 4096);
    b->off = b->len = 0;
    ok = ok && tg_h1_write_request(b, h);
    st->req_head_len = b->len;
    return ok;
}

/* ---- streams meet backends ---- */

static void stream_on_open(struct tg_bconn *b, void *arg)
{
    struct tg_stream *st = arg;
    st->target_idx = b->target_idx;
    tg__backend_serve(b, st);
}

static void stream_on_fail(void *arg, enum tg_pfail f, const char *detail)
{
    struct tg_stream *st = arg;
    tg__stream_backend_failed(st, f, detail);
}

static const struct tg_bconn_user stream_user = {stream_on_open, stream_on_fail};

static void stream_start(struct tg_stream *st)
{
    st->bc = NULL;
    tg__backend_open(st->who->conn->w, st->who->snap, st->who, st->backend, !st->upgrade,
                     &stream_user, st, &st->bc);
}

/* ---- the handler ---- */

/* The verified certificate the request is from (c = who_of(st)): a trusted balancer's header's,
 * else the connection's (its SSL's peer certificate), or NULL. */
static X509 *who_leaf(const struct tg_stream *st, const struct tg_client_info *c)
{
    if (!c->has_cert)
        return NULL;
    if (st->hdr_set)
        return st->hdr_leaf;
    return c->conn->ssl != NULL ? SSL_get0_peer_certificate(c->conn->ssl) : NULL;
}

/* A route's own allowed_subjects: whether the verified client certificate is on it; refuses
 * the stream (403, logged, counted) when not. */
static bool route_admits(struct tg_stream *st, const struct tg_route_conf *r)
{
    const struct tg_client_info *c = who_of(st);
    const struct tg_tls_allow *a = tg_tls_server_route_allow(
        c->snap->tls[c->lc - c->snap->cfg->listeners], (size_t)(r - c->lc->routes));
    char matched[16];
    X509 *leaf = who_leaf(st, c);
    if (leaf != NULL && a != NULL && tg_tls_allow_match(a, leaf, matched, sizeof(matched)))
        return true;
    char subject[256] = "no certificate";
    if (leaf != NULL)
        X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof(subject));
    tg_log_info("client %s listener=%s: request refused with 403: reason=%s: %s %s: %s is not in "
                "%s/routes/%zu/allowed_subjects",
                TG__PEER(c), c->lc->name, tg__hfail_info(TG_HF_CERT_NOT_ALLOWED)->token, st->method,
                st->path, subject, c->lc->path, (size_t)(r - c->lc->routes));
    st->discard_body = true;
    st->close_conn = true;
    tg__stream_refuse(st, TG_HF_CERT_NOT_ALLOWED);
    return false;
}

static bool header_refuse(struct tg_stream *st, const char *what, const char *detail)
{
    const struct tg_client_info *c = st->who;
    tg_log_info("client %s listener=%s: request refused with 403: reason=%s: %s %s: %s: %s "
                "(%s/from_header)",
                TG__PEER(c), c->lc->name, tg__hfail_info(TG_HF_CERT_HEADER)->token, st->method,
                st->path, what, detail, c->lc->tls.client_auth.path);
    st->discard_body = true;
    st->close_conn = true;
    tg__stream_refuse(st, TG_HF_CERT_HEADER);
    return false;
}

/* tls.client_auth.from_header: from a trusted balancer, the request's client certificate is
 * the one in the header field (decoded, then checked as the handshake would check it: chain to
 * the truststore, depth, usage, allow list, revocation from CRL files and data already fetched,
 * never fetching here), or none without the field; the connection's own certificate is the
 * balancer's, never the client's. From any other peer the field is ignored (and never
 * forwarded). false when the request was refused. */
static bool header_identity(struct tg_stream *st)
{
    const struct tg_client_info *c = st->who;
    const struct tg_client_auth_conf *ca = &c->lc->tls.client_auth;
    const struct tg_http_field *f = NULL;
    unsigned n = 0;
    for (uint32_t i = 0; i < st->req_in.n_fields; i++)
        if (tg_http_name_is(&st->req_in.fields[i], ca->from_header)) {
            f = &st->req_in.fields[i];
            n++;
        }
    if (!c->header_trusted) {
        if (n > 0)
            tg_log_info("client %s listener=%s: %s %s: ignored and removed header field %s: the "
                        "peer is not in %s/from_header/trusted_from",
                        TG__PEER(c), c->lc->name, st->method, st->path, ca->from_header, ca->path);
        return true;
    }
    st->hdr_who = *c;
    st->hdr_who.has_cert = false;
    st->hdr_who.fwd = NULL;
    st->hdr_set = true;
    if (n > 1)
        return header_refuse(st, ca->from_header, "the field is repeated");
    const struct tg_tls_server *ts = c->snap->tls[c->lc - c->snap->cfg->listeners];
    if (n == 0) {
        if (ca->mode == TG_CAUTH_REQUIRE)
            return header_refuse(st, ca->from_header,
                                 "no certificate from the balancer, and client_auth.mode is "
                                 "\"require\"");
        return true;
    }
    char why[512];
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = tg_tls_cert_from_header(f->value, f->value_len, &chain, why, sizeof(why));
    if (leaf == NULL)
        return header_refuse(st, ca->from_header, why);
    char detail[1024];
    enum tg_tls_fail tf =
        tg_tls_server_client_check(ts, leaf, chain, false, detail, sizeof(detail));
    sk_X509_pop_free(chain, X509_free);
    if (tf != TG_TLS_FAIL_NONE) {
        char what[128];
        snprintf(what, sizeof(what), "%s: %s", ca->from_header, tg_tls_fail_info(tf)->token);
        X509_free(leaf);
        return header_refuse(st, what, detail);
    }
    st->hdr_leaf = leaf;
    st->hdr_who.has_cert = true;
    if (ca->forward == TG_FWD_XFCC || ca->forward == TG_FWD_BOTH)
        st->hdr_fields.xfcc = tg_tls_xfcc(leaf);
    if (ca->forward == TG_FWD_RFC9440 || ca->forward == TG_FWD_BOTH)
        st->hdr_fields.cert = tg_tls_rfc9440_cert(leaf);
    st->hdr_who.fwd = &st->hdr_fields;
    return true;
}

/* Routing, the route's client-auth, the status page, then the head for the backend and a
 * backend connection. The request already passed tg_http_request_check: st->req_in.target is
 * in origin form and normalised, st->host is the authority without its port. */
static void fwd_on_head(struct tg_stream *st)
{
    if (tg__acme_claim(st))
        return;
    if (st->who->lc->tls.client_auth.from_header != NULL && !header_identity(st))
        return;
    const struct tg_client_info *c = who_of(st);
    const char *url = st->req_in.target;
    size_t url_len = st->req_in.target_len;
    const char *host = st->authority;
    size_t host_len = st->authority_len;
    size_t route_host_len = host ? tg_host_strip_port(host, host_len) : 0;
    const char *q = memchr(url, '?', url_len);
    size_t path_len = q ? (size_t)(q - url) : url_len;
    const struct tg_route_conf *r = url_len > 0 && url[0] == '/'
                                        ? tg_route_match(c->lc, host, route_host_len, url, path_len)
                                        : tg_route_match(c->lc, host, route_host_len, "/", 1);
    if (r == NULL) {
        tg_log_info(
            "client %s listener=%s: request refused with 404: reason=%s: no route for %s %s",
            TG__PEER(c), c->lc->name, tg__hfail_info(TG_HF_NO_ROUTE)->token, st->method, st->path);
        st->discard_body = true;
        tg__stream_refuse(st, TG_HF_NO_ROUTE);
        return;
    }
    if (r->client_auth_require && !c->has_cert) {
        tg_log_info("client %s listener=%s: request refused with 403: reason=%s: %s %s needs a "
                    "client certificate (routes client_auth \"require\")",
                    TG__PEER(c), c->lc->name, tg__hfail_info(TG_HF_CERT_REQUIRED)->token,
                    st->method, st->path);
        st->discard_body = true;
        st->close_conn = true;
        tg__stream_refuse(st, TG_HF_CERT_REQUIRED);
        return;
    }
    if (r->n_allowed > 0 && !route_admits(st, r))
        return;
    st->backend = &c->snap->cfg->backends[r->backend_idx];
    if (st->backend->kind == TG_BACKEND_STATUS) {
        st->h = &tg__status_handler;
        st->h->on_head(st);
        return;
    }
    st->req_chunked = st->req_in.body == TG_BODY_CHUNKED;
    const char *fwd_url = url_len ? url : "/";
    size_t fwd_len = url_len ? url_len : 1;
    bool with_chain = c->fwd != NULL && c->fwd->chain != NULL;
    bool ok = build_backend_head(st, fwd_url, fwd_len, host, host_len, with_chain);
    if (!ok && with_chain) {
        /* RFC 9440 lets Client-Cert-Chain be left out: it is, for the rest of the connection. */
        tg__client_leave_out_cert_chain(c);
        ok = build_backend_head(st, fwd_url, fwd_len, host, host_len, false);
    }
    if (!ok) {
        tg_log_info("client %s listener=%s: request refused with 431: reason=%s: %s %s: the head "
                    "with the fields we add does not fit the backend's buffer "
                    "(limits.max_header_bytes)",
                    TG__PEER(c), c->lc->name, tg__hfail_info(TG_HF_FORWARD_TOO_LARGE)->token,
                    st->method, st->path);
        st->discard_body = true;
        st->close_conn = true;
        tg__stream_refuse(st, TG_HF_FORWARD_TOO_LARGE);
        return;
    }
}

/* The session left its parser: open (or take from the pool) the backend connection. */
static void fwd_start(struct tg_stream *st)
{
    stream_start(st);
}

static size_t fwd_body_room(struct tg_stream *st)
{
    struct tg_buf *b = &st->to_backend;
    if (tg_buf_room(b) < FEED_SLACK * 2)
        tg_buf_compact(b);
    return tg_buf_room(b);
}

static bool fwd_on_body(struct tg_stream *st, const char *at, size_t len, bool end)
{
    struct tg_buf *b = &st->to_backend;
    if (len > 0 && st->req_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        if (!tg_buf_append(b, hdr, (size_t)n) || !tg_buf_append(b, at, len) ||
            !tg_buf_append(b, "\r\n", 2))
            return false;
    } else if (len > 0 && !tg_buf_append(b, at, len)) {
        return false;
    }
    if (end && st->req_chunked) {
        bool ok = tg_buf_append(b, "0\r\n", 3);
        const struct tg_http_head *t = st->req_trailers;
        for (uint32_t i = 0; t != NULL && ok && i < t->n_fields; i++) /* HTTP/2 trailers */
            ok = tg_buf_append(b, t->fields[i].name, t->fields[i].name_len) &&
                 tg_buf_append(b, ": ", 2) &&
                 tg_buf_append(b, t->fields[i].value, t->fields[i].value_len) &&
                 tg_buf_append(b, "\r\n", 2);
        return ok && tg_buf_append(b, "\r\n", 2);
    }
    return true;
}

static bool fwd_push(struct tg_stream *st)
{
    size_t pending = tg_buf_used(&st->to_backend);
    if (st->bc == NULL || pending == 0)
        return false;
    tg__backend_flush(st->bc);
    return st->bc != NULL && tg_buf_used(&st->to_backend) < pending;
}

static void fwd_on_room(struct tg_stream *st)
{
    if (st->bc != NULL && st->resp_phase != TG_RESP_DONE)
        tg__backend_resume_read(st->bc);
}

/* The backend connection goes back to the pool only after a complete exchange on a connection
 * that may be reused; a request it did not see whole (the client's body not all read, or bytes
 * of it still to write: tg__backend_release checks), or a reset, closes it. */
static void fwd_on_done(struct tg_stream *st, bool complete)
{
    struct tg_bconn *b = st->bc;
    if (b == NULL)
        return;
    st->bc = NULL;
    b->st = NULL;
    if (complete)
        tg__backend_release(b, b->reusable && st->req_phase == TG_REQ_DONE);
    else
        tg__backend_close(b);
}

const struct tg_stream_handler tg__forward_handler = {
    .name = "proxy",
    .on_head = fwd_on_head,
    .body_room = fwd_body_room,
    .on_body = fwd_on_body,
    .push = fwd_push,
    .start = fwd_start,
    .on_room = fwd_on_room,
    .on_done = fwd_on_done,
};
