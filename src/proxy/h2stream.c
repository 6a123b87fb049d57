/* HTTP/2 streams (the session is h2.c): stream objects, the request body moved from each stream's
 * buffer into its handler as it makes room (the client's window follows), and the stream ops:
 * heads as HEADERS, bodies through a per-stream buffer nghttp2 pulls from, and sending what
 * nghttp2 queued. */
#include "proxy/internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"

#define FEED_SLACK    256
#define OUT_MIN_CAP   (64 * 1024)
#define H2_FRAME_ROOM (16384 + 64) /* a DATA frame as mem_send hands it over */

static struct tg_h2_stream *h2s(struct tg_stream *st)
{
    return TG_CONTAINER(st, struct tg_h2_stream, st);
}

static bool closed(const struct tg_h2_session *s)
{
    return tg_conn_closed(&s->c->conn);
}

/* ---- streams ---- */

/* Streams are recycled per worker with their heads' field arrays (about 8 KiB with the default
 * limits.max_headers: allocating and zeroing them was a fifth of an HTTP/2 request's
 * instructions). */
#define MAX_FREE_STREAMS 128

static void heads_free(struct tg_h2_stream *hs)
{
    tg_http_head_free(&hs->st.req_in);
    tg_http_head_free(&hs->st.req);
    tg_http_head_free(&hs->st.resp);
    free(hs);
}

void tg__h2_cache_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->free_h2 != NULL) {
        struct tg_h2_stream *hs = pw->free_h2;
        pw->free_h2 = hs->next;
        heads_free(hs);
    }
    pw->n_free_h2 = 0;
}

struct tg_h2_stream *tg__h2_stream_new(struct tg_h2_session *s, int32_t id)
{
    struct tg_client *c = s->c;
    struct tg_proxy_worker *pw = tg_pw(c->conn.w);
    uint32_t max_fields = (uint32_t)tg__cfg(c)->limits.max_headers;
    struct tg_h2_stream *hs = pw->free_h2;
    if (hs != NULL) {
        pw->free_h2 = hs->next;
        pw->n_free_h2--;
        if (hs->st.req_in.max_fields != max_fields + 1) { /* made under another config */
            heads_free(hs);
            hs = NULL;
        }
    }
    if (hs == NULL) {
        hs = tg_xcalloc(1, sizeof(*hs));
        tg_http_head_init(&hs->st.req_in, max_fields + 1);
        tg_http_head_init(&hs->st.req, max_fields + 8);
        tg_http_head_init(&hs->st.resp, max_fields + 8);
    } else {
        struct tg_http_head req_in = hs->st.req_in, req = hs->st.req, resp = hs->st.resp;
        memset(hs, 0, sizeof(*hs));
        hs->st.req_in = req_in;
        hs->st.req = req;
        hs->st.resp = resp;
        tg_http_head_clear(&hs->st.req_in);
        tg_http_head_clear(&hs->st.req);
        tg_http_head_clear(&hs->st.resp);
    }
    hs->s = s;
    hs->id = id;
    hs->st.out = &tg__h2_ops;
    hs->st.sess = s;
    hs->st.who = &c->info;
    hs->opened_ms = uv_now(&c->conn.w->loop);
    memcpy(hs->st.method, "-", 2);
    memcpy(hs->st.path, "-", 2);
    tg_conn_buf_get(c->conn.w, &hs->scratch, tg__client_in_cap(c));
    hs->next = s->live;
    s->live = hs;
    s->n_live++;
    return hs;
}

static void stream_free(struct tg_h2_stream *hs)
{
    struct tg_worker *w = hs->s->c->conn.w;
    tg_conn_buf_put(w, &hs->scratch);
    tg_conn_buf_put(w, &hs->reqbuf);
    tg_conn_buf_put(w, &hs->resp);
    tg_conn_buf_put(w, &hs->st.to_backend);
    if (hs->trailers.max_fields > 0)
        tg_http_head_free(&hs->trailers);
    free(hs->resp_trailers);
    struct tg_proxy_worker *pw = w->proto;
    if (pw == NULL || pw->n_free_h2 >= MAX_FREE_STREAMS) {
        heads_free(hs);
        return;
    }
    hs->next = pw->free_h2;
    pw->free_h2 = hs;
    pw->n_free_h2++;
}

/* nghttp2 forgot the stream (or the connection goes): the handler lets go, the object waits on
 * the dead list until no caller up the stack can hold it. */
void tg__h2_stream_close(struct tg_h2_stream *hs, bool complete)
{
    struct tg_h2_session *s = hs->s;
    if (hs->closed)
        return;
    hs->closed = true;
    for (struct tg_h2_stream **pp = &s->live; *pp != NULL; pp = &(*pp)->next)
        if (*pp == hs) {
            *pp = hs->next;
            break;
        }
    if (--s->n_live == 0)
        s->idle_since_ms = uv_now(&s->c->conn.w->loop);
    s->n_dead++;
    hs->next = s->dead;
    s->dead = hs;
    if (s->ng != NULL)
        nghttp2_session_set_stream_user_data(s->ng, hs->id, NULL);
    tg__stream_finish(&hs->st, complete);
}

void tg__h2_free_dead(struct tg_h2_session *s)
{
    while (s->dead != NULL) {
        struct tg_h2_stream *hs = s->dead;
        s->dead = hs->next;
        s->n_dead--;
        stream_free(hs);
    }
}

struct tg_h2_stream *tg__h2_stream_of(struct tg_h2_session *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s->ng, id);
}

/* Moves request body bytes from the stream's buffer into the handler as its room allows, and
 * gives the client that much window back. */
static void feed(struct tg_h2_stream *hs)
{
    struct tg_stream *st = &hs->st;
    struct tg_h2_session *s = hs->s;
    if (hs->feeding || hs->closed)
        return;
    hs->feeding = true;
    while (tg_buf_used(&hs->reqbuf) > 0 && st->h != NULL && !hs->to_start) {
        size_t room = st->h->body_room(st);
        if (room <= FEED_SLACK * 2)
            break;
        size_t n = TG_MIN(tg_buf_used(&hs->reqbuf), (room - FEED_SLACK) / 2);
        if (!st->h->on_body(st, hs->reqbuf.data + hs->reqbuf.off, n, false)) {
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, hs->id, NGHTTP2_INTERNAL_ERROR);
            break;
        }
        hs->reqbuf.off += n;
        nghttp2_session_consume(s->ng, hs->id, n);
    }
    if (tg_buf_used(&hs->reqbuf) == 0) {
        tg_conn_buf_put(s->c->conn.w, &hs->reqbuf);
        /* The terminal chunk carries the trailers: wait until the handler has room for them. */
        size_t need = hs->trailer_bytes > 0 ? hs->trailer_bytes + FEED_SLACK : 0;
        if (hs->end_in && !hs->end_given && st->h != NULL && !hs->to_start &&
            (need == 0 || st->h->body_room(st) >= need)) {
            hs->end_given = true;
            st->req_phase = TG_REQ_DONE;
            if (!st->h->on_body(st, NULL, 0, true))
                nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, hs->id, NGHTTP2_INTERNAL_ERROR);
        }
    }
    hs->feeding = false;
}

/* After a read pass (outside nghttp2's callbacks): start what on_head prepared, then move body
 * bytes on. */
void tg__h2_streams_run(struct tg_h2_session *s)
{
    for (struct tg_h2_stream *hs = s->live, *next; hs != NULL && !closed(s); hs = next) {
        next = hs->next;
        struct tg_stream *st = &hs->st;
        if (hs->to_start) {
            hs->to_start = false;
            tg__stream_start(st);
        }
        if (hs->closed || closed(s))
            continue;
        for (int i = 0; i < 64 && !hs->closed; i++) {
            feed(hs);
            if (hs->closed || st->h == NULL || st->h->push == NULL)
                break;
            if (!st->h->push(st) || tg_buf_used(&hs->reqbuf) == 0)
                break;
        }
    }
}

/* Response trailer fields in one block: the name/value array, then lower-cased names and values. */
struct tg_h2_trailers {
    size_t n;
    nghttp2_nv nv[];
};

static struct tg_h2_trailers *trailers_copy(const struct tg_http_head *t)
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < t->n_fields; i++)
        bytes += t->fields[i].name_len + t->fields[i].value_len;
    struct tg_h2_trailers *r = tg_xmalloc(sizeof(*r) + t->n_fields * sizeof(nghttp2_nv) + bytes);
    char *p = (char *)&r->nv[t->n_fields];
    r->n = t->n_fields;
    for (uint32_t i = 0; i < t->n_fields; i++) {
        const struct tg_http_field *f = &t->fields[i];
        uint8_t *name = (uint8_t *)p;
        for (uint32_t j = 0; j < f->name_len; j++)
            *p++ = (char)tolower((unsigned char)f->name[j]);
        uint8_t *value = (uint8_t *)p;
        memcpy(p, f->value, f->value_len);
        p += f->value_len;
        r->nv[i] = (nghttp2_nv){name, value, f->name_len, f->value_len, NGHTTP2_NV_FLAG_NONE};
    }
    return r;
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct tg_h2_stream *hs = src->ptr;
    (void)user;
    size_t n = TG_MIN(length, tg_buf_used(&hs->resp));
    if (n == 0 && !hs->end_out) {
        hs->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > 0) {
        memcpy(buf, hs->resp.data + hs->resp.off, n);
        hs->resp.off += n;
        hs->wait_ms = uv_now(&hs->s->c->conn.w->loop); /* DATA went out: the stall clock restarts */
    }
    if (hs->end_out && tg_buf_used(&hs->resp) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        struct tg_h2_trailers *t = hs->resp_trailers;
        if (t != NULL) {
            hs->resp_trailers = NULL;
            if (nghttp2_submit_trailer(ng, id, t->nv, t->n) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            free(t);
        }
    }
    return (ssize_t)n;
}

/* ---- the stream ops ---- */

/* Decimal digits of v into buf (at least 21 bytes); their count. Per response, where snprintf
 * cost more than the rest of the head. */
static size_t fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

#define HEAD_STACK_FIELDS 32
#define HEAD_STACK_NAMES  1024

static bool submit_head(struct tg_h2_stream *hs, struct tg_http_head *h, bool end)
{
    struct tg_stream *st = &hs->st;
    struct tg_h2_session *s = hs->s;
    size_t n = h->n_fields + 2, names = 0;
    for (uint32_t i = 0; i < h->n_fields; i++)
        names += h->fields[i].name_len;
    /* Most heads fit on the stack (nghttp2 copies what it keeps). */
    nghttp2_nv nva_stack[HEAD_STACK_FIELDS + 2];
    char lower_stack[HEAD_STACK_NAMES];
    bool heap = n > TG_ARRAY_SIZE(nva_stack) || names + 1 > sizeof(lower_stack);
    nghttp2_nv *nva = heap ? tg_xcalloc(n, sizeof(*nva)) : nva_stack;
    char *lower = heap ? tg_xmalloc(names + 1) : lower_stack;
    char status[4] = {(char)('0' + h->status / 100 % 10), (char)('0' + h->status / 10 % 10),
                      (char)('0' + h->status % 10), '\0'};
    char clen[24];
    size_t k = 0, off = 0;
    nva[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct tg_http_field *f = &h->fields[i];
        for (uint32_t j = 0; j < f->name_len; j++)
            lower[off + j] = (char)tolower((unsigned char)f->name[j]);
        nva[k++] = (nghttp2_nv){(uint8_t *)lower + off, (uint8_t *)f->value, f->name_len,
                                f->value_len, NGHTTP2_NV_FLAG_NONE};
        off += f->name_len;
    }
    if (h->body == TG_BODY_LENGTH && h->status >= 200) {
        size_t m = fmt_u64(clen, h->content_length);
        nva[k++] =
            (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)clen, 14, m, NGHTTP2_NV_FLAG_NONE};
    }
    int rv;
    if (h->status < 200) {
        rv = nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, hs->id, NULL, nva, k, NULL);
    } else if (end || st->head_only) {
        hs->no_data = true;
        rv = nghttp2_submit_response(s->ng, hs->id, nva, k, NULL);
    } else {
        nghttp2_data_provider prd = {.source.ptr = hs, .read_callback = data_read};
        rv = nghttp2_submit_response(s->ng, hs->id, nva, k, &prd);
    }
    if (heap) {
        free(nva);
        free(lower);
    }
    return rv == 0;
}

/* A backend's final head waits for h2_flush, which ends the backend read that parsed it (its
 * strings point into that read's input until then): an error later in the same read (a bad
 * chunk) can then still answer 502 instead of resetting a stream whose head never went out. */
static bool h2_head(struct tg_stream *st, struct tg_http_head *h, bool end)
{
    struct tg_h2_stream *hs = h2s(st);
    if (hs->closed)
        return true;
    if (st->kind != TG_SK_LOCAL && h->status >= 200) {
        hs->head_pending = h;
        hs->head_end = end;
        return true;
    }
    return submit_head(hs, h, end);
}

static bool h2_retract(struct tg_stream *st)
{
    struct tg_h2_stream *hs = h2s(st);
    if (hs->head_pending == NULL)
        return false;
    hs->head_pending = NULL;
    hs->resp.off = hs->resp.len = 0;
    hs->end_out = false;
    free(hs->resp_trailers);
    hs->resp_trailers = NULL;
    return true;
}

static size_t h2_room(struct tg_stream *st)
{
    struct tg_h2_stream *hs = h2s(st);
    if (hs->closed)
        return 0;
    struct tg_buf *b = &hs->resp;
    tg_conn_buf_get(hs->s->c->conn.w, b, TG_MAX((size_t)OUT_MIN_CAP, tg__client_in_cap(hs->s->c)));
    if (b->off > 0 && b->cap - b->len < b->cap / 2)
        tg_buf_compact(b);
    size_t room = tg_buf_room(b);
    if (room > 1024)
        return room - 256;
    hs->room_wanted = true; /* the handler waits: on_room once nghttp2 took some */
    return 0;
}

static bool h2_body(struct tg_stream *st, const char *p, size_t len)
{
    struct tg_h2_stream *hs = h2s(st);
    if (hs->closed || hs->no_data)
        return true; /* the client reset it: what the backend still sends is dropped */
    h2_room(st);
    if (tg_buf_used(&hs->resp) == 0)
        hs->wait_ms = uv_now(&hs->s->c->conn.w->loop);
    if (!tg_buf_append(&hs->resp, p, len))
        return false;
    if (hs->deferred) {
        hs->deferred = false;
        nghttp2_session_resume_data(hs->s->ng, hs->id);
    }
    return true;
}

/* Trailer fields go out as a HEADERS frame with END_STREAM once the DATA is sent
 * (nghttp2_submit_trailer from data_read at EOF). */
static bool h2_end(struct tg_stream *st, const struct tg_http_head *trailers)
{
    struct tg_h2_stream *hs = h2s(st);
    hs->end_out = true;
    if (trailers != NULL && trailers->n_fields > 0 && !hs->closed && !hs->no_data)
        hs->resp_trailers = trailers_copy(trailers);
    if (!hs->closed && hs->deferred) {
        hs->deferred = false;
        nghttp2_session_resume_data(hs->s->ng, hs->id);
    }
    return true;
}

static void h2_reset(struct tg_stream *st, const char *why);

static void h2_flush(struct tg_stream *st)
{
    struct tg_h2_stream *hs = h2s(st);
    struct tg_http_head *h = hs->head_pending;
    hs->head_pending = NULL;
    if (h != NULL && !hs->closed && !submit_head(hs, h, hs->head_end)) {
        h2_reset(st, "the response head was not accepted");
        return;
    }
    tg__h2_send_soon(hs->s);
}

static void h2_reset(struct tg_stream *st, const char *why)
{
    struct tg_h2_stream *hs = h2s(st);
    struct tg_h2_session *s = hs->s;
    tg_log_debug("client %s listener=%s: stream %" PRId32 " reset: %s", TG__PEER(&s->c->info),
                 s->c->info.lc->name, hs->id, why);
    hs->head_pending = NULL;
    if (!hs->closed)
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, hs->id, NGHTTP2_INTERNAL_ERROR);
    tg__h2_send(s);
}

static void h2_consumed(struct tg_stream *st, size_t n)
{
    struct tg_h2_stream *hs = h2s(st);
    (void)n;
    if (hs->closed || (tg_buf_used(&hs->reqbuf) == 0 && !(hs->end_in && !hs->end_given)))
        return;
    feed(hs);
    tg__h2_send(hs->s);
}

const struct tg_stream_out_ops tg__h2_ops = {
    .proto = "HTTP/2",
    .head = h2_head,
    .room = h2_room,
    .body = h2_body,
    .end = h2_end,
    .flush = h2_flush,
    .reset = h2_reset,
    .consumed = h2_consumed,
    .upgrade = NULL,
    .retract = h2_retract,
};

/* ---- the connection ---- */

static void on_check(uv_check_t *h)
{
    struct tg_proxy_worker *pw = h->data;
    while (pw->h2_pending != NULL) {
        struct tg_h2_session *s = pw->h2_pending;
        pw->h2_pending = s->pending_next;
        s->pending_next = NULL;
        s->queued = false;
        tg__h2_send(s);
    }
    uv_check_stop(h);
}

void tg__h2_send_soon(struct tg_h2_session *s)
{
    if (s->queued || closed(s))
        return;
    struct tg_proxy_worker *pw = tg_pw(s->c->conn.w);
    if (pw->h2_check == NULL) {
        pw->h2_check = tg_xcalloc(1, sizeof(*pw->h2_check));
        uv_check_init(&s->c->conn.w->loop, pw->h2_check);
        pw->h2_check->data = pw;
        uv_unref((uv_handle_t *)pw->h2_check);
    }
    s->queued = true;
    s->pending_next = pw->h2_pending;
    pw->h2_pending = s;
    uv_check_start(pw->h2_check, on_check);
}

void tg__h2_send_cancel(struct tg_h2_session *s)
{
    if (!s->queued)
        return;
    struct tg_proxy_worker *pw = tg_pw(s->c->conn.w);
    for (struct tg_h2_session **pp = &pw->h2_pending; *pp != NULL; pp = &(*pp)->pending_next)
        if (*pp == s) {
            *pp = s->pending_next;
            break;
        }
    s->queued = false;
}

static void check_closed(uv_handle_t *h)
{
    free(h);
}

void tg__h2_check_close(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    pw->h2_pending = NULL;
    if (pw->h2_check != NULL)
        uv_close((uv_handle_t *)pw->h2_check, check_closed);
    pw->h2_check = NULL;
}

/* Serialises what nghttp2 has queued into the client's output and writes it. */
void tg__h2_send(struct tg_h2_session *s)
{
    struct tg_client *c = s->c;
    if (closed(s))
        return;
    if (s->in_recv || s->sending) {
        s->want_send = true;
        return;
    }
    if (c->close_after && !s->goaway) { /* e.g. its certificate failed a reload's policy */
        s->goaway = true;
        nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    s->sending = true;
    struct tg_buf *o = &c->conn.own_out;
    bool failed = false;
    for (;;) {
        s->want_send = false;
        for (;;) { /* frames into the output while a whole one fits */
            tg_conn_buf_get(c->conn.w, o, OUT_MIN_CAP);
            if (tg_buf_room(o) < H2_FRAME_ROOM)
                tg_buf_compact(o);
            if (o->cap - o->len < H2_FRAME_ROOM)
                break;
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(s->ng, &data);
            if (n < 0 || (n > 0 && !tg_buf_append(o, data, (size_t)n))) {
                failed = true;
                break;
            }
            if (n == 0)
                break;
        }
        size_t pending = tg_buf_used(o);
        if (failed || pending == 0)
            break;
        tg_conn_flush(&c->conn);
        if (closed(s))
            break;
        /* The socket took nothing more: its writable event (on_drain) comes back for the rest.
         * Otherwise go on while nghttp2 has frames (a full output stopped the loop above). */
        if (tg_buf_used(o) == pending || (!s->want_send && !nghttp2_session_want_write(s->ng)))
            break;
    }
    s->sending = false;
    if (failed) {
        tg__client_abort(c, "HTTP/2 output failed");
        return;
    }
    if (!closed(s) && !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
        tg__client_close(c); /* GOAWAY sent and every stream done */
}
