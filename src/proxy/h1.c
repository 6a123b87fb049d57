/* The HTTP/1 session on client connections: requests parsed with llhttp into streams (one at a
 * time, in order; a pipelined request waits unread), the per-stage timers, and the stream ops
 * that write responses as HTTP/1.1 (framing, Connection, 100-continue, chunking) and flush them
 * at once. What serves a stream is reached only through its handler table. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FEED_SLACK  256
#define READ_SLACK  256
#define MAX_FREE_ST 256
#define OUT_MIN_CAP (64 * 1024)

static struct tg_h1_stream *h1s(struct tg_stream *st)
{
    return tg__h1s(st);
}

static struct tg_client *client_of(struct tg_stream *st)
{
    return st->sess;
}

static bool is_closed(const struct tg_client *c)
{
    return tg_conn_closed(&c->conn);
}

static bool req_active(const struct tg_client *c)
{
    return c->st != NULL && c->st->req_phase != TG_REQ_HEAD;
}

static void http1_update(struct tg_client *c);
static void client_flush(struct tg_client *c);
static void process(struct tg_client *c);

/* ---- reading ---- */

/* A request's bytes are read until it is complete; the next (pipelined) one waits in the socket
 * until the response is out, so responses keep request order. */
static bool reading_allowed(const struct tg_client *c)
{
    if (c->phase == TG_CP_IDLE)
        return true;
    return c->phase == TG_CP_REQUEST && c->st != NULL && c->st->req_phase != TG_REQ_DONE;
}

static bool want_read(const struct tg_conn *conn)
{
    const struct tg_client *c = TG_CONTAINER(conn, const struct tg_client, conn);
    return reading_allowed(c) && (conn->in.data == NULL || conn->in.len < conn->in.cap);
}

static size_t read_room(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    if (!reading_allowed(c))
        return 0;
    tg_conn_buf_get(conn->w, &conn->in, tg__client_in_cap(c));
    /* While a head is incomplete its spans point into the input: never move those bytes. */
    if (c->st == NULL || !tg_h1_head_pending(&h1s(c->st)->msg)) {
        if (conn->in.off == conn->in.len)
            conn->in.off = conn->in.len = 0;
        else if (conn->in.off > 0)
            tg_buf_compact(&conn->in);
    }
    return conn->in.cap - conn->in.len;
}

/* h2c with prior knowledge (http2.cleartext on a plaintext listener): a connection whose first
 * bytes are the HTTP/2 preface becomes an HTTP/2 session. True when the bytes were handed on or
 * more are needed to tell. */
static bool h2c_preface(struct tg_client *c)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    struct tg_conn *conn = &c->conn;
    size_t n = TG_MIN(tg_buf_used(&conn->in), sizeof(preface) - 1);
    if (memcmp(conn->in.data + conn->in.off, preface, n) != 0) {
        c->h2c_maybe = false; /* HTTP/1 */
        return false;
    }
    if (n < sizeof(preface) - 1 && !conn->rd_eof)
        return true; /* wait for the rest */
    c->h2c_maybe = false;
    if (n < sizeof(preface) - 1)
        return false;
    if (!tg__h2_start(c))
        tg__client_abort(c, "cannot start an HTTP/2 session");
    return true;
}

static void on_read(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    if (c->h2c_maybe && h2c_preface(c))
        return;
    if (conn->rd_eof) {
        if (req_active(c) && c->st->resp_phase != TG_RESP_DONE)
            tg__client_abort(c, "client closed the connection mid-request");
        else
            tg__client_close(c);
        return;
    }
    process(c);
    http1_update(c);
}

/* Between requests an idle connection gives its input block back to the worker's cache (the
 * read that found nothing allocated it). */
static void after_read(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    if (c->phase == TG_CP_IDLE && conn->in.data != NULL && conn->in.off == conn->in.len)
        tg_conn_buf_put(conn->w, &conn->in);
}

static void on_error(struct tg_conn *conn, int err, bool writing)
{
    struct tg_client *c = tg__client_of(conn);
    tg_log_debug("client %s listener=%s: %s failed: %s", TG__PEER(&c->info), c->info.lc->name,
                 writing ? "write to client" : "read from client", strerror(-err));
    tg__client_close(c);
}

/* ---- streams ---- */

static void stream_free(struct tg_h1_stream *hs)
{
    tg_h1_free(&hs->msg);
    tg_http_head_free(&hs->st.req_in);
    tg_http_head_free(&hs->st.req);
    tg_http_head_free(&hs->st.resp);
    free(hs);
}

static const struct tg_h1_callbacks req_cb;
static const struct tg_stream_out_ops h1_ops;

static void stream_acquire(struct tg_client *c)
{
    struct tg_proxy_worker *pw = tg_pw(c->conn.w);
    size_t max_fields = tg__cfg(c)->limits.max_headers;
    struct tg_h1_stream *hs = pw->free_streams;
    if (hs != NULL) {
        pw->free_streams = hs->next_free;
        pw->n_free_streams--;
        if (hs->msg.max_fields != max_fields) { /* made under another config */
            stream_free(hs);
            hs = NULL;
        }
    }
    if (hs == NULL) {
        hs = tg_xcalloc(1, sizeof(*hs));
        tg_h1_init(&hs->msg, HTTP_REQUEST, max_fields, &req_cb, c);
        tg_http_head_init(&hs->st.req_in, (uint32_t)max_fields);
        /* Room for the client's fields plus the ones we add. */
        tg_http_head_init(&hs->st.req, (uint32_t)max_fields + 8);
        tg_http_head_init(&hs->st.resp, (uint32_t)max_fields + 8);
    } else {
        struct tg_h1_msg msg = hs->msg;
        struct tg_http_head req_in = hs->st.req_in, req = hs->st.req, resp = hs->st.resp;
        memset(hs, 0, sizeof(*hs));
        hs->msg = msg;
        hs->st.req_in = req_in;
        hs->st.req = req;
        hs->st.resp = resp;
        tg_http_head_clear(&hs->st.req_in);
        tg_h1_reset(&hs->msg);
    }
    struct tg_stream *st = &hs->st;
    st->out = &h1_ops;
    st->sess = c;
    st->who = &c->info;
    hs->msg.user = c;
    hs->msg.pause_on_done = true;
    memcpy(st->method, "-", 2); /* what the access log says of a request that never parsed */
    memcpy(st->path, "-", 2);
    c->st = st;
}

static void stream_release(struct tg_client *c)
{
    struct tg_stream *st = c->st;
    if (st == NULL)
        return;
    c->st = NULL;
    tg__stream_finish(st, false);
    struct tg_worker *w = c->conn.w;
    tg_conn_buf_put(w, &st->to_backend);
    struct tg_proxy_worker *pw = w->proto;
    struct tg_h1_stream *hs = h1s(st);
    if (pw == NULL || pw->n_free_streams >= MAX_FREE_ST) {
        stream_free(hs);
        return;
    }
    hs->next_free = pw->free_streams;
    pw->free_streams = hs;
    pw->n_free_streams++;
}

void tg__h1_cache_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->free_streams != NULL) {
        struct tg_h1_stream *hs = pw->free_streams;
        pw->free_streams = hs->next_free;
        stream_free(hs);
    }
    pw->n_free_streams = 0;
}

/* ---- parsing requests ---- */

static bool te_token_ok(const char *tok, size_t len, void *arg)
{
    int *n = arg;
    (*n)++;
    return len == 7 && tg_strncaseeq(tok, "chunked", 7);
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

/* The parsed request as data: method, target and fields point into the connection's input
 * (the target stays writable: the checks normalise it in place). */
static void head_of(struct tg_h1_msg *m, struct tg_http_head *h)
{
    const llhttp_t *p = &m->parser;
    const char *method = llhttp_method_name((llhttp_method_t)p->method);
    h->method = method;
    h->method_len = (uint32_t)strlen(method);
    h->target = m->base + m->url.off;
    h->target_len = m->url.len;
    for (size_t i = 0; i < m->n_fields && h->n_fields < h->max_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        h->fields[h->n_fields++] = (struct tg_http_field){
            m->base + f->name.off, m->base + f->value.off, f->name.len, f->value.len};
    }
    h->has_connection = m->has_connection;
    if (p->flags & F_CHUNKED) {
        h->body = TG_BODY_CHUNKED;
    } else if (p->flags & F_CONTENT_LENGTH) {
        h->body = TG_BODY_LENGTH;
        h->content_length = (uint64_t)p->content_length;
    }
}

static int req_on_head(struct tg_h1_msg *m)
{
    struct tg_client *c = m->user;
    struct tg_stream *st = c->st;
    struct tg_h1_stream *hs = h1s(st);
    llhttp_t *p = &m->parser;
    st->req_phase = TG_REQ_BODY;
    st->start_ms = uv_now(&c->conn.w->loop);
    TG_STAT_INC(&c->conn.w->stats, requests);
    head_of(m, &st->req_in);
    st->head_only = p->method == HTTP_HEAD;
    st->http10 = p->http_major == 1 && p->http_minor == 0;
    hs->keepalive = llhttp_should_keep_alive(p);
    st->has_body =
        (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    enum tg_hfail f = TG_HF_NONE;
    if (p->http_major != 1 || p->http_minor > 1) {
        f = TG_HF_VERSION;
    } else if (tg_h1_find(m, "transfer-encoding") != NULL) {
        int n = 0;
        if (st->http10)
            f = TG_HF_TE_HTTP10;
        else if (!tg_h1_each_token(m, "transfer-encoding", te_token_ok, &n) || n != 1)
            f = TG_HF_CODING;
    }
    if (f == TG_HF_NONE && p->method == HTTP_CONNECT)
        f = TG_HF_CONNECT;
    if (f == TG_HF_NONE)
        f = tg__stream_check_request(st);
    else
        tg__stream_note_request(st);
    if (f != TG_HF_NONE) {
        tg__stream_refuse_logged(st, f);
        return 0;
    }
    st->upgrade = wants_websocket(m);
    if (st->upgrade)
        ws_expect_accept(st, m);
    st->h = tg__client_serve(c);
    st->h->on_head(st);
    return 0;
}

static int req_on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct tg_client *c = m->user;
    struct tg_stream *st = c->st;
    st->body_bytes += len; /* a dropped body is held to the same rate: it still ties us up */
    if (st->discard_body || st->kind == TG_SK_LOCAL || st->h == NULL)
        return 0;
    return st->h->on_body(st, at, len, false) ? 0 : -1;
}

static int req_on_done(struct tg_h1_msg *m)
{
    struct tg_client *c = m->user;
    struct tg_stream *st = c->st;
    st->req_phase = TG_REQ_DONE;
    if (st->kind != TG_SK_LOCAL && !st->discard_body && st->h != NULL)
        return st->h->on_body(st, NULL, 0, true) ? 0 : -1;
    return 0;
}

static const struct tg_h1_callbacks req_cb = {req_on_head, req_on_body, req_on_done};

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
    tg__stream_refuse(st, f);
}

/* The parser failed after the head of a request we already answered ourselves (llhttp refuses
 * a transfer coding we refused with 501 in req_on_head): that answer stands, alone. One request
 * gets one response; the connection closes after it. */
static void already_answered(struct tg_client *c)
{
    struct tg_stream *st = c->st;
    struct tg_h1_msg *msg = &h1s(st)->msg;
    tg_log_debug("client %s listener=%s: request already answered with %d; not reading the rest "
                 "(%s)",
                 TG__PEER(&c->info), c->info.lc->name, st->status,
                 msg->error ? msg->error : "malformed");
    c->close_after = true;
    st->req_phase = TG_REQ_DONE; /* tg__http1_process flushes the answer */
}

/* One pass of feeding the parser; stops at a message end, an incomplete head or a full
 * handler buffer. */
static void feed(struct tg_client *c)
{
    struct tg_conn *conn = &c->conn;
    struct tg_stream *st = c->st;
    struct tg_h1_msg *msg = &h1s(st)->msg;
    while (!is_closed(c) && tg_buf_used(&conn->in) > 0 && st->req_phase != TG_REQ_DONE) {
        size_t avail = tg_buf_used(&conn->in);
        if (msg->head_done && !st->discard_body && st->kind != TG_SK_LOCAL && st->h != NULL) {
            size_t room = st->h->body_room(st);
            if (room <= FEED_SLACK * 2)
                break; /* back-pressure: wait for the handler to take bytes */
            avail = TG_MIN(avail, (room - FEED_SLACK) / 2);
        }
        bool had_head = msg->head_done;
        if (c->phase == TG_CP_IDLE) {
            c->phase = TG_CP_REQUEST;
            c->timer_kind = TG_CT_NONE;
        }
        size_t consumed = 0;
        c->in_parser = true;
        enum tg_h1_result r = tg_h1_execute(msg, conn->in.data, conn->in.off, avail, &consumed);
        c->in_parser = false;
        if (is_closed(c))
            return;
        conn->in.off += consumed;
        st->bytes_in += consumed;
        if (r == TG_H1_ERROR && st->kind == TG_SK_LOCAL && st->req_phase != TG_REQ_HEAD) {
            already_answered(c);
            return;
        }
        if (r == TG_H1_ERROR) {
            int status = msg->error_status;
            enum tg_hfail f = status == 431   ? TG_HF_HEAD_TOO_LARGE
                              : status == 505 ? TG_HF_VERSION
                                              : TG_HF_MALFORMED;
            tg_log_info(
                "client %s listener=%s: request refused with %d: reason=%s: bad request: %s",
                TG__PEER(&c->info), c->info.lc->name, tg__hfail_info(f)->status,
                tg__hfail_info(f)->token, msg->error ? msg->error : "malformed");
            bad_request(c, f);
            return;
        }
        if (!msg->head_done) {
            if (conn->in.off > (size_t)tg__cfg(c)->limits.max_header_bytes) {
                tg_log_info("client %s listener=%s: request refused with 431: reason=%s: request "
                            "head over %u bytes (limits.max_header_bytes)",
                            TG__PEER(&c->info), c->info.lc->name,
                            tg__hfail_info(TG_HF_HEAD_TOO_LARGE)->token,
                            tg__cfg(c)->limits.max_header_bytes);
                bad_request(c, TG_HF_HEAD_TOO_LARGE);
                return;
            }
            break;
        }
        if (!had_head && st->kind != TG_SK_LOCAL && st->h != NULL && st->h->start != NULL) {
            tg__stream_start(st);
            if (is_closed(c))
                return;
        }
        if (conn->in.off == conn->in.len)
            conn->in.off = conn->in.len = 0;
        else if (msg->head_done)
            tg_buf_compact(&conn->in);
        if (r == TG_H1_PAUSED)
            break;
        if (consumed == 0)
            break;
    }
}

static void process(struct tg_client *c)
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
        if (st->h == NULL || st->h->push == NULL)
            break;
        /* If pushing made room while body bytes wait in the input, feed again now: no poll
         * event would bring us back (the backend socket took everything, the input is full). */
        bool more = st->h->push(st);
        if (is_closed(c) || c->st != st)
            return;
        if (!more || st->req_phase != TG_REQ_BODY || tg_buf_used(&c->conn.in) == 0)
            break;
    }
    if (c->st != NULL && c->st->resp_phase == TG_RESP_DONE)
        client_flush(c);
}

/* More request bytes may go on (the handler made room). */
static void request_space(struct tg_client *c)
{
    process(c);
    if (!is_closed(c)) {
        tg_conn_read(&c->conn);
        http1_update(c);
    }
}

/* ---- responses ---- */

static void response_finished(struct tg_client *c)
{
    struct tg_stream *st = c->st;
    struct tg_conn *conn = &c->conn;
    tg__stream_log_access(st);
    bool body_unread = st->req_phase != TG_REQ_DONE;
    bool keep = h1s(st)->keepalive && !body_unread && !c->close_after && !conn->w->draining;
    tg__stream_finish(st, true);
    if (!keep) {
        /* A client still sending its body (answered early: a 413, a backend that failed) would
         * get a reset for its unread bytes, and the reset can destroy the response before the
         * client reads it: end our side after the response, then drain it briefly (RFC 9112
         * 9.6, lingering close). */
        conn->linger = body_unread;
        tg__client_close(c);
        return;
    }
    bool pipelined = tg_buf_used(&conn->in) > 0;
    stream_release(c);
    c->phase = TG_CP_IDLE;
    tg_conn_buf_put_if_empty(conn->w, conn->out);
    tg_buf_compact(&conn->in);
    tg_conn_buf_put_if_empty(conn->w, &conn->in);
    c->timer_kind = TG_CT_NONE;
    if (pipelined)
        process(c); /* a pipelined request is already here */
    if (!tg_conn_closed(conn) && conn->tp->pending(conn))
        tg_conn_read(conn); /* the transport holds bytes of a pipelined request */
    if (!tg_conn_closed(conn))
        http1_update(c);
}

/* Output made progress (or is empty): finish the exchange, or let the handler send more. */
static void on_drain(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    struct tg_stream *st = c->st;
    if (st == NULL)
        return;
    if (tg_buf_used(conn->out) == 0 && st->resp_phase == TG_RESP_DONE &&
        (st->req_phase == TG_REQ_DONE || c->close_after)) {
        response_finished(c);
        return;
    }
    if (st->h != NULL && st->resp_phase != TG_RESP_DONE)
        st->h->on_room(st);
}

static void client_flush(struct tg_client *c)
{
    tg_conn_flush(&c->conn);
    if (!tg_conn_closed(&c->conn))
        http1_update(c);
}

static void http1_update(struct tg_client *c)
{
    if (tg_conn_closed(&c->conn))
        return;
    if (c->phase != TG_CP_HANDSHAKE && c->phase != TG_CP_TUNNEL)
        tg__h1_timer_update(c);
    tg_conn_update(&c->conn);
}

/* Free room in the client's output block (sized and compacted here). */
static size_t out_room(struct tg_client *c)
{
    struct tg_buf *o = &c->conn.own_out;
    tg_conn_buf_get(c->conn.w, o, TG_MAX((size_t)OUT_MIN_CAP, tg__client_in_cap(c) + 4096));
    if (o->off > 0 && o->cap - o->len < o->cap / 2)
        tg_buf_compact(o);
    return tg_buf_room(o);
}

/* ---- the stream ops: HTTP/1.1 on the wire ---- */

static bool h1_head(struct tg_stream *st, struct tg_http_head *h, bool end)
{
    struct tg_client *c = client_of(st);
    struct tg_h1_stream *hs = h1s(st);
    out_room(c);
    struct tg_buf *o = c->conn.out;
    size_t before = tg_buf_used(o);
    bool ok = true;
    if (h->status < 200 && h->status != 101) {
        if (h->status == 100 && !st->http10)
            ok = tg_buf_append_str(o, "HTTP/1.1 100 Continue\r\n\r\n");
        st->bytes_out += tg_buf_used(o) - before;
        return ok;
    }
    if (st->close_conn)
        c->close_after = true;
    if (st->kind == TG_SK_LOCAL && st->req_phase != TG_REQ_DONE && !c->in_parser) {
        /* We will not read the rest of this request: the connection cannot be reused. Inside
         * the parser the body is still read (and dropped), so keep-alive can survive. */
        c->close_after = true;
    }
    if (h->status != 101 && !end && h->body == TG_BODY_CHUNKED) {
        if (st->http10) {
            h->body = TG_BODY_NONE;
            c->close_after = true; /* HTTP/1.0 client: the body ends at close */
        } else {
            hs->resp_chunked = true;
        }
    }
    if (h->status != 101) {
        h->close = c->close_after || !hs->keepalive || c->conn.w->draining;
        h->keep_alive = !h->close && st->http10 && st->kind != TG_SK_LOCAL;
    }
    ok = tg_h1_write_response(o, h);
    st->bytes_out += tg_buf_used(o) - before;
    return ok;
}

static size_t h1_room(struct tg_stream *st)
{
    /* Half the room, less slack: a chunked body takes framing bytes around each piece. */
    size_t room = out_room(client_of(st));
    return room > READ_SLACK * 4 ? (room - READ_SLACK) / 2 : 0;
}

static bool h1_body(struct tg_stream *st, const char *at, size_t len)
{
    struct tg_buf *o = client_of(st)->conn.out;
    size_t before = tg_buf_used(o);
    bool ok;
    if (h1s(st)->resp_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        ok = tg_buf_append(o, hdr, (size_t)n) && tg_buf_append(o, at, len) &&
             tg_buf_append(o, "\r\n", 2);
    } else {
        ok = tg_buf_append(o, at, len);
    }
    st->bytes_out += tg_buf_used(o) - before;
    return ok;
}

/* The chunked trailer section carries the response's trailer fields (HTTP/1.0 clients and
 * length-delimited bodies have none: they are dropped); fields that do not fit are dropped. */
static bool h1_end(struct tg_stream *st, const struct tg_http_head *trailers)
{
    if (!h1s(st)->resp_chunked)
        return true;
    struct tg_buf *o = client_of(st)->conn.out;
    size_t before = tg_buf_used(o);
    bool ok = tg_buf_append(o, "0\r\n", 3);
    if (ok && trailers != NULL) {
        size_t need = 2;
        for (uint32_t i = 0; i < trailers->n_fields; i++)
            need += trailers->fields[i].name_len + trailers->fields[i].value_len + 4;
        if (tg_buf_room(o) < need)
            tg_buf_compact(o);
        for (uint32_t i = 0; o->cap - o->len >= need && i < trailers->n_fields; i++) {
            const struct tg_http_field *f = &trailers->fields[i];
            ok = ok && tg_buf_append(o, f->name, f->name_len) && tg_buf_append(o, ": ", 2) &&
                 tg_buf_append(o, f->value, f->value_len) && tg_buf_append(o, "\r\n", 2);
        }
    }
    ok = ok && tg_buf_append(o, "\r\n", 2);
    st->bytes_out += tg_buf_used(o) - before;
    return ok;
}

static void h1_flush(struct tg_stream *st)
{
    struct tg_client *c = client_of(st);
    if (!c->in_parser)
        client_flush(c);
}

static void h1_reset(struct tg_stream *st, const char *why)
{
    tg__client_abort(client_of(st), why);
}

static void h1_consumed(struct tg_stream *st, size_t n)
{
    struct tg_client *c = client_of(st);
    (void)n;
    if (tg_buf_used(&c->conn.in) > 0)
        request_space(c);
}

/* 101 Switching Protocols to a WebSocket request: the head is queued; the client connection and
 * b become a tunnel. */
static void h1_upgrade(struct tg_stream *st, struct tg_bconn *b)
{
    struct tg_client *c = client_of(st);
    tg__stream_log_access(st);
    stream_release(c);
    tg__tunnel_start(c, b);
}

static const struct tg_stream_out_ops h1_ops = {
    .proto = "HTTP/1.1",
    .head = h1_head,
    .room = h1_room,
    .body = h1_body,
    .end = h1_end,
    .flush = h1_flush,
    .reset = h1_reset,
    .consumed = h1_consumed,
    .upgrade = h1_upgrade,
};

/* ---- the connection ---- */

static void on_open(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    tg__client_opened(c);
    if (tg_conn_closed(conn))
        return;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    if (conn->ssl != NULL)
        SSL_get0_alpn_selected(conn->ssl, &alpn, &alpn_len);
    if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0) {
        if (!tg__h2_start(c))
            tg__client_abort(c, "cannot start an HTTP/2 session");
        return;
    }
    c->phase = TG_CP_IDLE;
    c->h2c_maybe = tg__cfg(c)->http2.cleartext && c->info.lc->tls.disabled;
    tg_conn_read(conn); /* the first request may already be buffered in OpenSSL */
    if (c->h2 == NULL)  /* else h2c took it over */
        http1_update(c);
}

/* The handshake of a connection opened on early data finished: a request that waited for it
 * starts. */
static void on_confirmed(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    tg__client_confirmed(c);
    if (c->st != NULL)
        tg__stream_confirmed(c->st);
    http1_update(c);
}

static void on_drain_worker(struct tg_client *c)
{
    if (c->phase == TG_CP_IDLE || c->phase == TG_CP_HANDSHAKE)
        tg__client_close(c); /* idle: nothing in flight */
    else
        c->close_after = true; /* finish this request, then close */
}

/* The connection is closing: the stream in flight ends incomplete (its backend is closed). */
static void on_close(struct tg_client *c)
{
    if (c->st != NULL)
        tg__stream_finish(c->st, false);
}

static void on_free(struct tg_client *c)
{
    stream_release(c);
}

static const struct tg_conn_handler http1_conn = {
    .on_open = on_open,
    .on_fail = tg__client_on_fail,
    .read_room = read_room,
    .want_read = want_read,
    .on_read = on_read,
    .on_error = on_error,
    .on_drain = on_drain,
    .after_read = after_read,
    .on_confirmed = on_confirmed,
    .on_timer = tg__h1_on_timer,
    .on_closed = tg__client_on_closed,
};

const struct tg_proto tg__proto_http1 = {
    .name = "http1",
    .conn = &http1_conn,
    .on_drain = on_drain_worker,
    .on_close = on_close,
    .on_free = on_free,
};
