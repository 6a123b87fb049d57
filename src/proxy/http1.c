/* The http1 protocol handler on client connections: reading requests (one stream at a time, in
 * order), the per-stage timers, flushing responses, keep-alive and pipelining. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static void http1_update(struct tg_client *c);

/* ---- timers ---- */

static void arm(struct tg_client *c, int kind, uint64_t ms)
{
    c->timer_kind = (uint8_t)kind;
    c->deadline_ms = uv_now(&c->conn.w->loop) + ms;
    tg_conn_timer(&c->conn, ms);
}

static bool req_active(const struct tg_client *c)
{
    return c->st != NULL && c->st->req_phase != TG_REQ_HEAD;
}

static bool head_started(const struct tg_client *c)
{
    return c->phase == TG_CP_REQUEST;
}

/* A request body is still being read and still matters: once the response is complete and the
 * connection closes after it, the rest of the body is never needed. */
static bool body_limited(const struct tg_client *c)
{
    const struct tg_stream *st = c->st;
    return st != NULL && st->req_phase == TG_REQ_BODY &&
           !(st->resp_phase == TG_RESP_DONE && c->close_after);
}

/* Stops the body clock while the input holds body bytes that could not go on (to_backend is
 * full, or the backend is still connecting): the client delivered them, the backend is the slow
 * one. Restarts it once they have gone on. Returns true when the clock changed state. */
static bool body_clock_update(struct tg_client *c, uint64_t now)
{
    struct tg_stream *st = c->st;
    bool hold = tg_buf_used(&c->conn.in) > 0;
    if (hold == st->body_holding)
        return false;
    if (hold)
        st->body_hold_since_ms = now;
    else
        st->body_held_ms += now - st->body_hold_since_ms;
    st->body_holding = hold;
    return true;
}

/* The part of the time since the body started that the client is answerable for. */
static uint64_t body_elapsed(const struct tg_stream *st, uint64_t now)
{
    uint64_t held = st->body_held_ms + (st->body_holding ? now - st->body_hold_since_ms : 0);
    uint64_t all = now - st->body_start_ms;
    return all > held ? all - held : 0;
}

/* Body bytes limits.min_body_rate asks for after e ms (e / 1000 * rate would overflow sooner). */
static uint64_t body_bytes_due(uint64_t rate, uint64_t e)
{
    return e / 1000 * rate + e % 1000 * rate / 1000;
}

enum body_verdict { BODY_OK, BODY_TOO_LONG, BODY_TOO_SLOW };

static enum body_verdict body_check(const struct tg_client *c, uint64_t e)
{
    const struct tg_config *cfg = tg__cfg(c);
    if (cfg->timeouts.request_body_ms != 0 && e >= cfg->timeouts.request_body_ms)
        return BODY_TOO_LONG;
    if (cfg->limits.min_body_rate != 0 && e >= cfg->limits.min_body_rate_grace_ms &&
        c->st->body_bytes < body_bytes_due(cfg->limits.min_body_rate, e))
        return BODY_TOO_SLOW;
    return BODY_OK;
}

/* Milliseconds until the body could first break a limit (body_check) or timeouts.idle; the
 * timer is not moved as bytes arrive, it re-checks when it fires. At least 1. */
static uint64_t body_next_check(const struct tg_client *c, uint64_t now)
{
    const struct tg_config *cfg = tg__cfg(c);
    const struct tg_stream *st = c->st;
    uint64_t quiet = now - c->conn.last_io_ms, idle = cfg->timeouts.idle_ms;
    uint64_t left = quiet < idle ? idle - quiet : 0;
    if (!st->body_holding) { /* while the clock is stopped, only idle runs */
        uint64_t e = body_elapsed(st, now), lim = cfg->timeouts.request_body_ms;
        uint64_t rate = cfg->limits.min_body_rate;
        if (lim != 0)
            left = TG_MIN(left, lim > e ? lim - e : 0);
        if (rate != 0) {
            /* the first e at which body_bytes_due(rate, e) > body_bytes */
            uint64_t n = st->body_bytes + 1;
            uint64_t due = n / rate * 1000 + (n % rate * 1000 + rate - 1) / rate;
            due = TG_MAX(due, cfg->limits.min_body_rate_grace_ms);
            left = TG_MIN(left, due > e ? due - e : 0);
        }
    }
    return TG_MAX(left, (uint64_t)1);
}

/* A body limit was broken: 408 (and close) if no response has started, else just close. Either
 * way the backend connection is closed, never pooled: it saw an incomplete request. */
static void body_timed_out(struct tg_client *c, enum body_verdict v, uint64_t e)
{
    const struct tg_config *cfg = tg__cfg(c);
    struct tg_stream *st = c->st;
    char of[32] = "";
    if (!st->req_chunked) /* llhttp counts a Content-Length body down */
        snprintf(of, sizeof(of), " of %" PRIu64,
                 st->body_bytes + (uint64_t)st->msg.parser.content_length);
    TG_STAT_INC(&c->conn.w->stats, body_timeouts);
    if (v == BODY_TOO_LONG)
        tg_log_info("client %s listener=%s: reason=%s: request body not complete within %" PRIu64
                    " ms while reading the request body: %" PRIu64
                    "%s bytes received (timeouts.request_body)",
                    c->peer, c->lc->name, tg__hfail_info(TG_HF_BODY_TIMEOUT)->token,
                    cfg->timeouts.request_body_ms, st->body_bytes, of);
    else
        tg_log_info("client %s listener=%s: reason=%s: request body slower than %" PRIu32
                    " bytes/s while reading the request body: %" PRIu64
                    "%s bytes received in %" PRIu64 " ms (limits.min_body_rate)",
                    c->peer, c->lc->name, tg__hfail_info(TG_HF_BODY_TIMEOUT)->token,
                    cfg->limits.min_body_rate, st->body_bytes, of, e);
    if (st->bc != NULL) {
        struct tg_bconn *b = st->bc;
        st->bc = NULL;
        b->st = NULL;
        tg__backend_close(b);
    }
    c->close_after = true;
    tg__client_refuse(c, TG_HF_BODY_TIMEOUT);
}

static void timer_update(struct tg_client *c);

static void on_timer(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    uint64_t now = uv_now(&conn->w->loop);
    const struct tg_timeouts_conf *to = &tg__cfg(c)->timeouts;
    switch (c->timer_kind) {
    case TG_CT_HANDSHAKE:
        tg__client_handshake_timeout(c);
        return;
    case TG_CT_IDLE:
        tg__client_close(c);
        return;
    case TG_CT_HEADERS:
        tg_log_info("client %s listener=%s: reason=%s: request headers not received within %" PRIu64
                    " ms (timeouts.request_headers)",
                    c->peer, c->lc->name, tg__hfail_info(TG_HF_HEADERS_TIMEOUT)->token,
                    to->request_headers_ms);
        c->close_after = true;
        tg__client_refuse(c, TG_HF_HEADERS_TIMEOUT);
        return;
    case TG_CT_BODY: {
        if (!body_limited(c)) { /* the body ended without a timer update: choose again */
            c->timer_kind = TG_CT_NONE;
            timer_update(c);
            return;
        }
        body_clock_update(c, now);
        uint64_t e = body_elapsed(c->st, now);
        enum body_verdict v = body_check(c, e);
        if (v != BODY_OK) {
            body_timed_out(c, v, e);
            return;
        }
        if (now - conn->last_io_ms < to->idle_ms) {
            arm(c, TG_CT_BODY, body_next_check(c, now));
            return;
        }
        tg_log_info("client %s listener=%s: no progress for %" PRIu64
                    " ms while reading the request body (timeouts.idle)",
                    c->peer, c->lc->name, to->idle_ms);
        tg__client_close(c);
        return;
    }
    case TG_CT_PEER:
        if (now - conn->last_io_ms < to->idle_ms) {
            arm(c, TG_CT_PEER, to->idle_ms - (now - conn->last_io_ms));
            return;
        }
        tg_log_info("client %s listener=%s: no progress for %" PRIu64
                    " ms while %s (timeouts.idle)",
                    c->peer, c->lc->name, to->idle_ms,
                    tg_buf_used(conn->out) > 0 ? "sending the response" : "reading the request");
        tg__client_close(c);
        return;
    default:
        return;
    }
}

/* Chooses the timer for the current state: keep-alive idle, header deadline, body limits, or
 * "waiting on the client" (only while we need its bytes or it must take ours). */
static void timer_update(struct tg_client *c)
{
    const struct tg_timeouts_conf *to = &tg__cfg(c)->timeouts;
    if (c->phase == TG_CP_HANDSHAKE)
        return; /* armed once at accept */
    if (!req_active(c)) {
        if (!head_started(c)) {
            if (c->timer_kind != TG_CT_IDLE)
                arm(c, TG_CT_IDLE, to->idle_ms);
        } else if (c->timer_kind != TG_CT_HEADERS) {
            arm(c, TG_CT_HEADERS, to->request_headers_ms);
        }
        return;
    }
    struct tg_stream *st = c->st;
    if (body_limited(c)) {
        uint64_t now = uv_now(&c->conn.w->loop);
        bool changed = !st->body_clock;
        if (!st->body_clock) { /* first time since the head ended */
            st->body_clock = true;
            st->body_start_ms = now;
            st->body_held_ms = 0;
        }
        changed |= body_clock_update(c, now);
        if (c->timer_kind != TG_CT_BODY || changed)
            arm(c, TG_CT_BODY, body_next_check(c, now));
        return;
    }
    bool waiting =
        tg_buf_used(c->conn.out) > 0 || (st->req_phase != TG_REQ_DONE && !st->discard_body);
    if (waiting) {
        if (c->timer_kind != TG_CT_PEER)
            arm(c, TG_CT_PEER, to->idle_ms);
    } else if (c->timer_kind != TG_CT_NONE) {
        c->timer_kind = TG_CT_NONE;
        tg_conn_timer(&c->conn, 0);
    }
}

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
    if (c->st == NULL || !tg_h1_head_pending(&c->st->msg)) {
        if (conn->in.off == conn->in.len)
            conn->in.off = conn->in.len = 0;
        else if (conn->in.off > 0)
            tg_buf_compact(&conn->in);
    }
    return conn->in.cap - conn->in.len;
}

static void on_read(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    if (conn->rd_eof) {
        if (req_active(c) && c->st->resp_phase != TG_RESP_DONE)
            tg__client_abort(c, "client closed the connection mid-request");
        else
            tg__client_close(c);
        return;
    }
    tg__http1_process(c);
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
    tg_log_debug("client %s listener=%s: %s failed: %s", c->peer, c->lc->name,
                 writing ? "write to client" : "read from client", strerror(-err));
    tg__client_close(c);
}

/* ---- responses ---- */

static void response_finished(struct tg_client *c)
{
    struct tg_stream *st = c->st;
    struct tg_conn *conn = &c->conn;
    tg__client_log_access(c);
    bool keep =
        st->keepalive && st->req_phase == TG_REQ_DONE && !c->close_after && !conn->w->draining;
    if (st->bc != NULL) {
        struct tg_bconn *b = st->bc;
        st->bc = NULL;
        b->st = NULL;
        tg__backend_release(b, b->reusable && st->req_phase == TG_REQ_DONE);
    }
    if (!keep) {
        tg__client_close(c);
        return;
    }
    bool pipelined = tg_buf_used(&conn->in) > 0;
    tg__stream_release(c);
    c->phase = TG_CP_IDLE;
    tg_conn_buf_put_if_empty(conn->w, conn->out);
    tg_buf_compact(&conn->in);
    tg_conn_buf_put_if_empty(conn->w, &conn->in);
    c->timer_kind = TG_CT_NONE;
    if (pipelined)
        tg__http1_process(c); /* a pipelined request is already here */
    if (!tg_conn_closed(conn) && conn->tp->pending(conn))
        tg_conn_read(conn); /* the transport holds bytes of a pipelined request */
    if (!tg_conn_closed(conn))
        http1_update(c);
}

/* Output made progress (or is empty): finish the exchange, or let the backend send more. */
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
    if (st->bc != NULL && st->resp_phase != TG_RESP_DONE)
        tg__backend_resume_read(st->bc);
}

void tg__client_flush(struct tg_client *c)
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
        timer_update(c);
    tg_conn_update(&c->conn);
}

void tg__client_update(struct tg_client *c)
{
    http1_update(c);
}

void tg__http1_request_space(struct tg_client *c)
{
    tg__http1_process(c);
    if (!tg_conn_closed(&c->conn)) {
        tg_conn_read(&c->conn);
        http1_update(c);
    }
}

static void on_open(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    tg__client_opened(c);
    c->phase = TG_CP_IDLE;
    tg_conn_read(conn); /* the first request may already be buffered in OpenSSL */
    http1_update(c);
}

static void on_drain_worker(struct tg_client *c)
{
    if (c->phase == TG_CP_IDLE || c->phase == TG_CP_HANDSHAKE)
        tg__client_close(c); /* idle: nothing in flight */
    else
        c->close_after = true; /* finish this request, then close */
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
    .on_timer = on_timer,
    .on_closed = tg__client_on_closed,
};

const struct tg_proto tg__proto_http1 = {
    .name = "http1",
    .conn = &http1_conn,
    .on_drain = on_drain_worker,
};
