/* The HTTP/2 session on client connections (chosen by ALPN "h2"), on nghttp2: many streams per
 * connection, each served through the same handler table as HTTP/1 (forward.c, status.c). This
 * file: nghttp2's callbacks turned into request heads and bodies, and the connection (reading,
 * draining, the idle timer, GOAWAY); streams and their ops are in h2stream.c. */
#include "proxy/internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"

#define H2_CONN_WINDOW (1 << 20)
#define H2_OUT_HIGH    (32 * 1024) /* stop reading while this much waits for the client */
#define OUT_MIN_CAP    (64 * 1024)

static bool closed(const struct tg_h2_session *s)
{
    return tg_conn_closed(&s->c->conn);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct tg_h2_session *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (s->goaway || s->n_live + s->n_dead >= tg__cfg(s->c)->http2.max_concurrent_streams) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    struct tg_h2_stream *hs = tg__h2_stream_new(s, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, hs);
    return 0;
}

/* Copies a string into the stream's scratch block; NULL when it is full. */
static char *keep(struct tg_h2_stream *hs, const uint8_t *p, size_t n)
{
    struct tg_buf *b = &hs->scratch;
    if (b->cap - b->len < n + 1)
        return NULL;
    char *d = b->data + b->len;
    memcpy(d, p, n);
    d[n] = '\0';
    b->len += n + 1;
    return d;
}

/* Request trailers reach the backend only at the end of a chunked body (HTTP/1.1 has nowhere
 * else to put them), and only fields a trailer may carry; the rest are dropped. They count
 * against the same header list limit as the head. */
static void trailer(struct tg_h2_session *s, struct tg_h2_stream *hs, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen)
{
    if (hs == NULL || hs->st.req_in.body != TG_BODY_CHUNKED)
        return;
    const struct tg_config *cfg = tg__cfg(s->c);
    hs->hdr_bytes += namelen + valuelen + 32;
    if (hs->hdr_bytes > cfg->http2.max_header_list_size ||
        !tg_http_trailer_ok((const char *)name, namelen))
        return;
    if (hs->trailers.max_fields == 0)
        tg_http_head_init(&hs->trailers, cfg->limits.max_headers);
    if (hs->trailers.n_fields == hs->trailers.max_fields)
        return;
    char *n = keep(hs, name, namelen), *v = keep(hs, value, valuelen);
    if (n != NULL && v != NULL) {
        tg_http_head_add(&hs->trailers, n, namelen, v, valuelen);
        hs->trailer_bytes += namelen + valuelen + 4;
        hs->st.req_trailers = &hs->trailers;
    }
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct tg_h2_session *s = user;
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct tg_h2_stream *hs = tg__h2_stream_of(s, frame->hd.stream_id);
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        trailer(s, hs, name, namelen, value, valuelen);
        return 0;
    }
    if (hs == NULL)
        return 0;
    const struct tg_config *cfg = tg__cfg(s->c);
    struct tg_http_head *h = &hs->st.req_in;
    /* Counted even once over the limit: a block that decodes to far more than was sent (an
     * HPACK bomb) ends the connection. */
    hs->hdr_bytes += namelen + valuelen + 32;
    if (hs->hdr_bytes > 2 * (size_t)cfg->http2.max_header_list_size) {
        tg__h2_calm(s, TG_H2C_HPACK_BOMB);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (hs->too_large)
        return 0;
    if (hs->hdr_bytes > cfg->http2.max_header_list_size) {
        hs->too_large = true;
        return 0;
    }
    char *n = keep(hs, name, namelen), *v = keep(hs, value, valuelen);
    if (n == NULL || v == NULL) {
        hs->too_large = true;
        return 0;
    }
    if (namelen > 0 && name[0] == ':') {
        if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
            h->method = v;
            h->method_len = (uint32_t)valuelen;
        } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
            h->target = v;
            h->target_len = (uint32_t)valuelen;
        } else if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
            hs->authority = v;
            hs->authority_len = valuelen;
        }
        return 0;
    }
    if (h->n_fields + 1 >= h->max_fields) { /* one kept for Host */
        hs->too_large = true;
        return 0;
    }
    tg_http_head_add(h, n, namelen, v, valuelen);
    (void)ng;
    return 0;
}

/* The head is complete: Host from :authority (RFC 9113 8.3.1), cookie crumbs joined for an
 * HTTP/1.1 backend (8.2.3), framing from content-length or END_STREAM. */
static void head_finish(struct tg_h2_stream *hs, bool end_stream)
{
    struct tg_http_head *h = &hs->st.req_in;
    uint32_t k = 0, cookies = 0;
    size_t cookie_len = 0;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        struct tg_http_field *f = &h->fields[i];
        if (hs->authority != NULL && tg_http_name_is(f, "host"))
            continue;
        if (tg_http_name_is(f, "cookie")) {
            cookies++;
            cookie_len += f->value_len + 2;
        }
        h->fields[k++] = *f;
    }
    h->n_fields = k;
    if (hs->authority != NULL)
        tg_http_head_add(h, "host", 4, hs->authority, hs->authority_len);
    if (cookies > 1) {
        struct tg_buf *b = &hs->scratch;
        char *joined = b->cap - b->len >= cookie_len ? b->data + b->len : NULL;
        size_t n = 0;
        k = 0;
        for (uint32_t i = 0; i < h->n_fields; i++) {
            struct tg_http_field *f = &h->fields[i];
            if (joined != NULL && tg_http_name_is(f, "cookie")) {
                if (n > 0) {
                    memcpy(joined + n, "; ", 2);
                    n += 2;
                }
                memcpy(joined + n, f->value, f->value_len);
                n += f->value_len;
                continue;
            }
            h->fields[k++] = *f;
        }
        if (joined != NULL) {
            b->len += n;
            h->n_fields = k;
            tg_http_head_add(h, "cookie", 6, joined, n);
        } else {
            hs->too_large = true;
        }
    }
    const struct tg_http_field *cl = tg_http_head_find(h, "content-length");
    if (cl != NULL) {
        uint64_t v = 0;
        for (uint32_t i = 0; i < cl->value_len; i++)
            v = v * 10 + (uint64_t)(cl->value[i] - '0'); /* nghttp2 checked it is digits */
        h->body = TG_BODY_LENGTH;
        h->content_length = v;
    } else if (!end_stream) {
        h->body = TG_BODY_CHUNKED;
    }
    hs->st.has_body = !end_stream;
}

static void request_head(struct tg_h2_session *s, struct tg_h2_stream *hs, bool end_stream)
{
    struct tg_client *c = s->c;
    struct tg_stream *st = &hs->st;
    st->req_phase = TG_REQ_BODY;
    st->start_ms = uv_now(&c->conn.w->loop);
    TG_STAT_INC(&c->conn.w->stats, requests);
    head_finish(hs, end_stream);
    hs->end_in = end_stream;
    if (end_stream) {
        st->req_phase = TG_REQ_DONE;
    } else { /* the body clock of limits.min_body_rate and timeouts.request_body */
        st->body_clock = true;
        st->body_start_ms = st->start_ms;
        st->body_held_ms = 0;
    }
    struct tg_http_head *h = &st->req_in;
    st->head_only = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    enum tg_hfail f = TG_HF_NONE;
    if (hs->too_large)
        f = TG_HF_HEAD_TOO_LARGE;
    else if (h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0)
        f = TG_HF_CONNECT;
    if (f == TG_HF_NONE)
        f = tg__stream_check_request(st);
    else if (h->method != NULL && h->target != NULL)
        tg__stream_note_request(st);
    if (f != TG_HF_NONE) {
        tg__stream_refuse_logged(st, f);
        return;
    }
    st->h = tg__client_serve(c);
    st->h->on_head(st);
    if (st->h != NULL && st->kind != TG_SK_LOCAL) {
        hs->to_start = true;
        if (end_stream)
            hs->end_given = true; /* on_body(end) below */
    }
    if (end_stream && st->h != NULL && st->kind != TG_SK_LOCAL && !st->discard_body &&
        !st->h->on_body(st, NULL, 0, true))
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, hs->id, NGHTTP2_INTERNAL_ERROR);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct tg_h2_session *s = user;
    struct tg_h2_stream *hs = tg__h2_stream_of(s, frame->hd.stream_id);
    (void)ng;
    if (hs == NULL)
        return 0;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        request_head(s, hs, end);
        return 0;
    }
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) && end)
        hs->end_in = true; /* handed on by feed() once the buffer is empty */
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    struct tg_h2_session *s = user;
    struct tg_h2_stream *hs = tg__h2_stream_of(s, id);
    (void)flags;
    if (hs == NULL || hs->st.discard_body || hs->st.kind == TG_SK_LOCAL || hs->st.h == NULL) {
        nghttp2_session_consume(ng, id, len);
        if (hs != NULL)
            hs->st.body_bytes += len;
        return 0;
    }
    hs->st.body_bytes += len;
    hs->st.bytes_in += len;
    tg_conn_buf_get(s->c->conn.w, &hs->reqbuf, OUT_MIN_CAP);
    tg_buf_room(&hs->reqbuf);
    tg_buf_compact(&hs->reqbuf);
    if (!tg_buf_append(&hs->reqbuf, data, len)) /* more than the window we gave */
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_FLOW_CONTROL_ERROR);
    return 0;
}

/* A frame of a stream went out: the access log counts its bytes as framed (HPACK-encoded heads,
 * DATA with its frame headers). */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct tg_h2_session *s = user;
    if (frame->hd.stream_id == 0)
        return 0;
    if (frame->hd.type == NGHTTP2_DATA)
        tg__h2_calm_data_sent(s);
    struct tg_h2_stream *hs = tg__h2_stream_of(s, frame->hd.stream_id);
    if (hs == NULL)
        return 0;
    hs->st.bytes_out += 9 + frame->hd.length;
    /* Our 408 after a body limit went out whole: the rest of the body is not wanted. */
    if (hs->timed_out && !hs->end_in && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS))
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, hs->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user)
{
    struct tg_h2_session *s = user;
    struct tg_h2_stream *hs = tg__h2_stream_of(s, id);
    (void)ng;
    if (hs == NULL)
        return 0;
    struct tg_stream *st = &hs->st;
    bool complete = error_code == NGHTTP2_NO_ERROR && st->resp_phase == TG_RESP_DONE;
    if (st->resp_phase == TG_RESP_DONE)
        tg__stream_log_access(st);
    tg__h2_stream_close(hs, complete && st->req_phase == TG_REQ_DONE);
    return 0;
}

/* Every frame header, before its payload: the flood limits (h2calm.c). */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    (void)ng;
    return tg__h2_calm_frame(user, hd->type, hd->flags, hd->length) ? 0
                                                                    : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static struct tg_h2_session *sess_of(struct tg_conn *conn)
{
    return tg__client_of(conn)->h2;
}

static void update(struct tg_h2_session *s)
{
    if (!closed(s))
        tg_conn_update(&s->c->conn);
}

static bool want_read(const struct tg_conn *conn)
{
    const struct tg_client *c = TG_CONTAINER(conn, const struct tg_client, conn);
    const struct tg_h2_session *s = c->h2;
    return s != NULL && nghttp2_session_want_read(s->ng) && tg_buf_used(conn->out) < H2_OUT_HIGH &&
           (conn->in.data == NULL || conn->in.len < conn->in.cap);
}

static size_t read_room(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    if (!want_read(conn))
        return 0;
    tg_conn_buf_get(conn->w, &conn->in, tg__client_in_cap(c));
    if (conn->in.off == conn->in.len)
        conn->in.off = conn->in.len = 0;
    return conn->in.cap - conn->in.len;
}

static void on_read(struct tg_conn *conn)
{
    struct tg_h2_session *s = sess_of(conn);
    struct tg_client *c = s->c;
    tg__h2_free_dead(s);
    if (conn->rd_eof) {
        tg__client_close(c);
        return;
    }
    s->in_recv = true;
    ssize_t n = nghttp2_session_mem_recv(s->ng, (const uint8_t *)conn->in.data + conn->in.off,
                                         tg_buf_used(&conn->in));
    s->in_recv = false;
    if (closed(s))
        return;
    if (n < 0) {
        if (n == NGHTTP2_ERR_FLOODED)
            tg__h2_calm(s, TG_H2C_ACK_QUEUE);
        else if (n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
            tg__h2_calm(s, TG_H2C_CONTINUATION);
        if (s->calm == TG_H2C_NONE) {
            tg_log_info("client %s listener=%s: HTTP/2 session failed: %s", TG__PEER(&c->info),
                        c->info.lc->name, nghttp2_strerror((int)n));
            if (n != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
        }
        tg__h2_send(s);
        tg__client_close(c);
        return;
    }
    conn->in.off = conn->in.len = 0;
    tg__h2_streams_run(s);
    tg__h2_send(s);
    tg__h2_timer_update(s);
    update(s);
}

static void after_read(struct tg_conn *conn)
{
    if (conn->in.data != NULL && conn->in.off == conn->in.len)
        tg_conn_buf_put(conn->w, &conn->in);
}

/* Output made progress: more frames, and streams whose response buffer nghttp2 emptied may
 * take more from their backends. */
static void on_drain(struct tg_conn *conn)
{
    struct tg_h2_session *s = sess_of(conn);
    if (!s->sending)
        tg__h2_send(s);
    if (closed(s))
        return;
    for (struct tg_h2_stream *hs = s->live, *next; hs != NULL && !closed(s); hs = next) {
        next = hs->next;
        /* Only handlers that found no room: the others are not waiting (a backend read now
         * would find nothing: a wasted recv per stream and client write). */
        if (hs->room_wanted && hs->st.h != NULL && hs->st.resp_phase != TG_RESP_DONE) {
            hs->room_wanted = false;
            hs->st.h->on_room(&hs->st);
        }
    }
    if (!closed(s) && tg_buf_used(conn->out) == 0)
        tg_conn_buf_put(conn->w, conn->out);
    update(s);
}

static void on_error(struct tg_conn *conn, int err, bool writing)
{
    struct tg_client *c = tg__client_of(conn);
    tg_log_debug("client %s listener=%s: %s failed: %s", TG__PEER(&c->info), c->info.lc->name,
                 writing ? "write to client" : "read from client", strerror(-err));
    tg__client_close(c);
}

/* The handshake of a connection opened on early data finished: streams that waited start. */
static void on_confirmed(struct tg_conn *conn)
{
    struct tg_h2_session *s = sess_of(conn);
    tg__client_confirmed(s->c);
    for (struct tg_h2_stream *hs = s->live, *next; hs != NULL && !closed(s); hs = next) {
        next = hs->next;
        if (!hs->closed)
            tg__stream_confirmed(&hs->st);
    }
    if (closed(s))
        return;
    tg__h2_streams_run(s);
    tg__h2_send(s);
    tg__h2_timer_update(s);
    update(s);
}

static void on_open(struct tg_conn *conn)
{
    (void)conn; /* the session starts from tg__h2_start, after the HTTP/1 handler's on_open */
}

static const struct tg_conn_handler h2_conn = {
    .on_open = on_open,
    .on_fail = tg__client_on_fail,
    .read_room = read_room,
    .want_read = want_read,
    .on_read = on_read,
    .on_error = on_error,
    .on_drain = on_drain,
    .after_read = after_read,
    .on_confirmed = on_confirmed,
    .on_timer = tg__h2_on_timer,
    .on_closed = tg__client_on_closed,
};

/* Draining (SIGTERM): the same two-step GOAWAY as a reload's, even without streams in flight, as
 * the client may have sent a request that has not arrived yet; the connection closes once the
 * final GOAWAY is out and the streams it names are done. */
static void on_drain_worker(struct tg_client *c)
{
    if (c->h2 == NULL) {
        tg__client_close(c);
        return;
    }
    tg__h2_goaway_soon(c->h2);
}

void tg__h2_goaway(struct tg_h2_session *s)
{
    if (s->goaway || closed(s))
        return;
    s->goaway = true;
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    tg__h2_send(s);
}

/* RFC 9113 6.8: GOAWAY with the last stream id 2^31-1 tells the client to open no more streams
 * here; the final GOAWAY, naming the last stream served, follows H2_GOAWAY_GRACE_MS later, when
 * what the client sent before it read the notice has arrived. A single GOAWAY would refuse
 * those streams, and clients (curl) report them as failed requests. */
#define H2_GOAWAY_GRACE_MS 1000

void tg__h2_goaway_soon(struct tg_h2_session *s)
{
    if (s->goaway || s->goaway_at_ms != 0 || closed(s))
        return;
    if (nghttp2_submit_shutdown_notice(s->ng) != 0) {
        tg__h2_goaway(s);
        return;
    }
    s->goaway_at_ms = uv_now(&s->c->conn.w->loop) + H2_GOAWAY_GRACE_MS;
    tg__h2_send(s);
    tg__h2_timer_update(s);
}

/* The connection is closing: every stream ends incomplete (their backends are closed). */
static void on_close(struct tg_client *c)
{
    struct tg_h2_session *s = c->h2;
    if (s == NULL)
        return;
    while (s->live != NULL)
        tg__h2_stream_close(s->live, false);
}

static void on_free(struct tg_client *c)
{
    struct tg_h2_session *s = c->h2;
    if (s == NULL)
        return;
    tg__h2_send_cancel(s);
    while (s->live != NULL)
        tg__h2_stream_close(s->live, false);
    tg__h2_free_dead(s);
    nghttp2_session_del(s->ng);
    free(s);
    c->h2 = NULL;
}

const struct tg_proto tg__proto_h2 = {
    .name = "h2",
    .conn = &h2_conn,
    .on_drain = on_drain_worker,
    .on_close = on_close,
    .on_free = on_free,
};

bool tg__h2_start(struct tg_client *c)
{
    struct tg_h2_session *s = tg_xcalloc(1, sizeof(*s));
    s->c = c;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        free(s);
        return false;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    int rv = nghttp2_session_server_new2(&s->ng, cb, s, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
        free(s);
        return false;
    }
    const struct tg_config *cfg = tg__cfg(c);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->http2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->http2.initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, cfg->http2.max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->http2.max_header_list_size},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, TG_ARRAY_SIZE(iv));
    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    c->h2 = s;
    c->proto = &tg__proto_h2;
    c->phase = TG_CP_REQUEST;
    tg_conn_set_handler(&c->conn, &h2_conn, c);
    s->idle_since_ms = uv_now(&c->conn.w->loop);
    tg__h2_timer_update(s);
    if (c->conn.in.data != NULL && tg_buf_used(&c->conn.in) > 0)
        on_read(&c->conn); /* h2c: inside the engine's read, which goes on with this handler */
    else
        tg_conn_read(&c->conn); /* the preface may already be buffered in OpenSSL */
    if (!tg_conn_closed(&c->conn))
        tg__h2_send(s);
    update(s);
    return true;
}
