/* The HTTP/1 session's timers: one per connection, armed at the connection's deadline (idle
 * between requests, the handshake) or at the deadline of the stream in flight (its head, its
 * body clock and limits, the client taking our bytes). */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>

#include "core/log.h"

/* A connection deadline (idle between requests). */
static void arm(struct tg_client *c, int kind, uint64_t ms)
{
    c->timer_kind = (uint8_t)kind;
    tg_conn_timer(&c->conn, ms);
}

/* A deadline of the stream in flight; the connection's timer follows the earliest of its
 * streams' (HTTP/1 carries one at a time). */
static void arm_stream(struct tg_client *c, int kind, uint64_t ms)
{
    struct tg_stream *st = c->st;
    st->deadline_kind = (uint8_t)kind;
    st->deadline_ms = uv_now(&c->conn.w->loop) + ms;
    c->timer_kind = TG_CT_STREAM;
    tg_conn_timer(&c->conn, ms);
}

static bool stream_armed(const struct tg_client *c, int kind)
{
    return c->timer_kind == TG_CT_STREAM && c->st != NULL && c->st->deadline_kind == kind;
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

/* The body clock stops while the input holds body bytes that could not go on (the handler has no
 * room, or the backend is still connecting): the client delivered them, the backend is the slow
 * one. */
static bool body_clock_update(struct tg_client *c, uint64_t now)
{
    return tg__stream_body_hold(c->st, tg_buf_used(&c->conn.in) > 0, now);
}

static uint64_t body_next_check(const struct tg_client *c, uint64_t now)
{
    uint64_t quiet = now - c->conn.last_io_ms, idle = tg__cfg(c)->timeouts.idle_ms;
    return tg__stream_body_next_check(c->st, now, quiet < idle ? idle - quiet : 0);
}

/* A body limit was broken: 408 (and close) if no response has started, else just close. Either
 * way the backend connection is closed, never pooled: it saw an incomplete request. */
static void body_timed_out(struct tg_client *c, enum tg_body_verdict v, uint64_t e)
{
    const struct tg_config *cfg = tg__cfg(c);
    struct tg_stream *st = c->st;
    char of[32] = "";
    if (st->req_in.body != TG_BODY_CHUNKED) /* llhttp counts a Content-Length body down */
        snprintf(of, sizeof(of), " of %" PRIu64,
                 st->body_bytes + (uint64_t)tg__h1s(st)->msg.parser.content_length);
    TG_STAT_INC(&c->conn.w->stats, body_timeouts);
    if (v == TG_BODY_TOO_LONG)
        tg_log_info("client %s listener=%s: reason=%s: request body not complete within %" PRIu64
                    " ms while reading the request body: %" PRIu64
                    "%s bytes received (timeouts.request_body)",
                    TG__PEER(&c->info), c->info.lc->name, tg__hfail_info(TG_HF_BODY_TIMEOUT)->token,
                    cfg->timeouts.request_body_ms, st->body_bytes, of);
    else
        tg_log_info("client %s listener=%s: reason=%s: request body slower than %" PRIu32
                    " bytes/s while reading the request body: %" PRIu64
                    "%s bytes received in %" PRIu64 " ms (limits.min_body_rate)",
                    TG__PEER(&c->info), c->info.lc->name, tg__hfail_info(TG_HF_BODY_TIMEOUT)->token,
                    cfg->limits.min_body_rate, st->body_bytes, of, e);
    tg__stream_finish(st, false);
    c->close_after = true;
    tg__stream_refuse(st, TG_HF_BODY_TIMEOUT);
}

static void stream_timer(struct tg_client *c, uint64_t now)
{
    struct tg_conn *conn = &c->conn;
    const struct tg_timeouts_conf *to = &tg__cfg(c)->timeouts;
    switch (c->st->deadline_kind) {
    case TG_CT_HEADERS:
        tg_log_info("client %s listener=%s: reason=%s: request headers not received within %" PRIu64
                    " ms (timeouts.request_headers)",
                    TG__PEER(&c->info), c->info.lc->name,
                    tg__hfail_info(TG_HF_HEADERS_TIMEOUT)->token, to->request_headers_ms);
        c->close_after = true;
        tg__stream_refuse(c->st, TG_HF_HEADERS_TIMEOUT);
        return;
    case TG_CT_BODY: {
        if (!body_limited(c)) { /* the body ended without a timer update: choose again */
            c->timer_kind = TG_CT_NONE;
            tg__h1_timer_update(c);
            return;
        }
        body_clock_update(c, now);
        uint64_t e = tg__stream_body_elapsed(c->st, now);
        enum tg_body_verdict v = tg__stream_body_check(c->st, e);
        if (v != TG_BODY_OK) {
            body_timed_out(c, v, e);
            return;
        }
        if (now - conn->last_io_ms < to->idle_ms) {
            arm_stream(c, TG_CT_BODY, body_next_check(c, now));
            return;
        }
        tg_log_info("client %s listener=%s: no progress for %" PRIu64
                    " ms while reading the request body (timeouts.idle)",
                    TG__PEER(&c->info), c->info.lc->name, to->idle_ms);
        tg__client_close(c);
        return;
    }
    case TG_CT_PEER:
        if (now - conn->last_io_ms < to->idle_ms) {
            arm_stream(c, TG_CT_PEER, to->idle_ms - (now - conn->last_io_ms));
            return;
        }
        tg_log_info("client %s listener=%s: no progress for %" PRIu64
                    " ms while %s (timeouts.idle)",
                    TG__PEER(&c->info), c->info.lc->name, to->idle_ms,
                    tg_buf_used(conn->out) > 0 ? "sending the response" : "reading the request");
        tg__client_close(c);
        return;
    default:
        return;
    }
}

void tg__h1_on_timer(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    uint64_t now = uv_now(&conn->w->loop);
    if (c->info.early) { /* opened on early data: only the handshake deadline is armed */
        tg__client_handshake_timeout(c);
        return;
    }
    switch (c->timer_kind) {
    case TG_CT_HANDSHAKE:
        tg__client_handshake_timeout(c);
        return;
    case TG_CT_IDLE:
        tg__client_close(c);
        return;
    case TG_CT_STREAM:
        if (c->st != NULL)
            stream_timer(c, now);
        return;
    default:
        return;
    }
}

void tg__h1_timer_update(struct tg_client *c)
{
    const struct tg_timeouts_conf *to = &tg__cfg(c)->timeouts;
    if (c->phase == TG_CP_HANDSHAKE || c->info.early)
        return; /* armed once at accept (kept while the handshake ends after early data) */
    if (!req_active(c)) {
        if (!head_started(c)) {
            if (c->timer_kind != TG_CT_IDLE)
                arm(c, TG_CT_IDLE, to->idle_ms);
        } else if (!stream_armed(c, TG_CT_HEADERS)) {
            arm_stream(c, TG_CT_HEADERS, to->request_headers_ms);
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
        if (!stream_armed(c, TG_CT_BODY) || changed)
            arm_stream(c, TG_CT_BODY, body_next_check(c, now));
        return;
    }
    bool waiting =
        tg_buf_used(c->conn.out) > 0 || (st->req_phase != TG_REQ_DONE && !st->discard_body);
    if (waiting) {
        if (!stream_armed(c, TG_CT_PEER))
            arm_stream(c, TG_CT_PEER, to->idle_ms);
    } else if (c->timer_kind != TG_CT_NONE) {
        c->timer_kind = TG_CT_NONE;
        tg_conn_timer(&c->conn, 0);
    }
}
