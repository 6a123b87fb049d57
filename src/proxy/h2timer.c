/* The HTTP/2 session's one timer, armed at the earliest of: the connection's idle deadline
 * (timeouts.idle with no stream open: GOAWAY; with streams, no byte either way), each stream's
 * request-head deadline (timeouts.request_headers from its HEADERS to END_HEADERS), its body
 * limits (timeouts.request_body, limits.min_body_rate, on the same body clock as HTTP/1) and the
 * zero-window stall deadline (h2calm.c). Backend response deadlines are the backend
 * connection's own timer. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"

/* A head still arriving (a HEADERS frame without END_HEADERS blocks the whole connection). */
static void headers_timed_out(struct tg_h2_session *s)
{
    struct tg_client *c = s->c;
    TG_STAT_INC(&c->conn.w->stats, http_fail[TG_HF_HEADERS_TIMEOUT]);
    tg_log_info("client %s listener=%s: reason=%s: request headers not received within %" PRIu64
                " ms (timeouts.request_headers)",
                TG__PEER(&c->info), c->info.lc->name, tg__hfail_info(TG_HF_HEADERS_TIMEOUT)->token,
                tg__cfg(c)->timeouts.request_headers_ms);
    nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
}

/* A body limit was broken: 408 on the stream if no response started (then RST_STREAM(NO_ERROR)
 * once it is sent), else the stream is reset; the backend connection is closed either way. */
static void body_timed_out(struct tg_h2_stream *hs, enum tg_body_verdict v, uint64_t e)
{
    struct tg_h2_session *s = hs->s;
    struct tg_client *c = s->c;
    struct tg_stream *st = &hs->st;
    const struct tg_config *cfg = tg__cfg(c);
    char of[32] = "";
    if (st->req_in.body == TG_BODY_LENGTH)
        snprintf(of, sizeof(of), " of %" PRIu64, st->req_in.content_length);
    hs->timed_out = true;
    TG_STAT_INC(&c->conn.w->stats, body_timeouts);
    if (v == TG_BODY_TOO_LONG)
        tg_log_info("client %s listener=%s: reason=%s: request body not complete within %" PRIu64
                    " ms while reading the request body of HTTP/2 stream %" PRId32 ": %" PRIu64
                    "%s bytes received (timeouts.request_body)",
                    TG__PEER(&c->info), c->info.lc->name, tg__hfail_info(TG_HF_BODY_TIMEOUT)->token,
                    cfg->timeouts.request_body_ms, hs->id, st->body_bytes, of);
    else
        tg_log_info("client %s listener=%s: reason=%s: request body slower than %" PRIu32
                    " bytes/s while reading the request body of HTTP/2 stream %" PRId32 ": %" PRIu64
                    "%s bytes received in %" PRIu64 " ms (limits.min_body_rate)",
                    TG__PEER(&c->info), c->info.lc->name, tg__hfail_info(TG_HF_BODY_TIMEOUT)->token,
                    cfg->limits.min_body_rate, hs->id, st->body_bytes, of, e);
    bool started = st->resp_phase != TG_RESP_WAIT;
    tg__stream_finish(st, false);
    if (started)
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, hs->id, NGHTTP2_CANCEL);
    else
        tg__stream_refuse(st, TG_HF_BODY_TIMEOUT);
}

/* The ms until the earliest deadline; with act, a deadline that passed is acted on (then 0 is
 * returned: the caller looks again, the stream lists may have changed). */
static uint64_t scan(struct tg_h2_session *s, uint64_t now, bool act, bool *ended)
{
    struct tg_client *c = s->c;
    const struct tg_config *cfg = tg__cfg(c);
    uint64_t idle = cfg->timeouts.idle_ms, next, due = UINT64_MAX;
    *ended = false;
    if (s->goaway_at_ms != 0 && !s->goaway) { /* a reload's notice went out: the final GOAWAY */
        if (now >= s->goaway_at_ms) {
            if (act) {
                s->goaway = true;
                nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                                      nghttp2_session_get_last_proc_stream_id(s->ng),
                                      NGHTTP2_NO_ERROR, NULL, 0);
            }
            return 0;
        }
        due = s->goaway_at_ms - now;
    }
    if (s->n_live == 0) {
        if (now - s->idle_since_ms >= idle) {
            if (act) {
                tg_log_debug("client %s listener=%s: HTTP/2 connection idle for %" PRIu64
                             " ms without streams (timeouts.idle)",
                             TG__PEER(&c->info), c->info.lc->name, idle);
                nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
                *ended = true;
            }
            return 0;
        }
        next = s->idle_since_ms + idle - now;
    } else {
        uint64_t quiet = now - c->conn.last_io_ms;
        if (quiet >= idle) {
            if (act) {
                tg_log_info("client %s listener=%s: no progress for %" PRIu64
                            " ms with %zu HTTP/2 streams open (timeouts.idle)",
                            TG__PEER(&c->info), c->info.lc->name, idle, s->n_live);
                nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
                *ended = true;
            }
            return 0;
        }
        next = idle - quiet;
    }
    for (struct tg_h2_stream *hs = s->live; hs != NULL; hs = hs->next) {
        struct tg_stream *st = &hs->st;
        if (hs->closed)
            continue;
        if (st->req_phase == TG_REQ_HEAD) {
            uint64_t dl = hs->opened_ms + cfg->timeouts.request_headers_ms;
            if (now >= dl) {
                if (act) {
                    headers_timed_out(s);
                    *ended = true;
                }
                return 0;
            }
            next = TG_MIN(next, dl - now);
            continue;
        }
        if (!st->body_clock || hs->end_in || hs->timed_out)
            continue;
        tg__stream_body_hold(st, tg_buf_used(&hs->reqbuf) > 0, now);
        uint64_t e = tg__stream_body_elapsed(st, now);
        enum tg_body_verdict v = tg__stream_body_check(st, e);
        if (v != TG_BODY_OK) {
            if (!act)
                return 1;
            body_timed_out(hs, v, e);
            return 0;
        }
        next = TG_MIN(next, tg__stream_body_next_check(st, now, next));
    }
    return TG_MIN(next, due);
}

void tg__h2_timer_update(struct tg_h2_session *s)
{
    struct tg_conn *conn = &s->c->conn;
    if (tg_conn_closed(conn))
        return;
    if (s->c->info.early)
        return; /* the handshake timer stays until the handshake ends after early data */
    bool ended;
    uint64_t now = uv_now(&conn->w->loop);
    uint64_t next = TG_MIN(scan(s, now, false, &ended), tg__h2_calm_stalls_next(s, now));
    s->c->timer_kind = TG_CT_IDLE;
    tg_conn_timer(conn, TG_MAX(next, (uint64_t)1));
}

void tg__h2_on_timer(struct tg_conn *conn)
{
    struct tg_client *c = tg__client_of(conn);
    struct tg_h2_session *s = c->h2;
    if (c->timer_kind == TG_CT_HANDSHAKE || c->info.early) {
        tg__client_handshake_timeout(c);
        return;
    }
    tg__h2_free_dead(s);
    uint64_t now = uv_now(&conn->w->loop);
    uint64_t stall = tg__h2_calm_stalls(s, now);
    bool ended = s->calm != TG_H2C_NONE;
    uint64_t next = 0;
    for (int i = 0; !ended && next == 0 && i < 1000; i++) {
        next = scan(s, now, true, &ended);
        tg__h2_send(s);
        if (tg_conn_closed(conn))
            return;
    }
    if (ended) {
        tg__h2_send(s);
        tg__client_close(c);
        return;
    }
    c->timer_kind = TG_CT_IDLE;
    tg_conn_timer(conn, TG_MAX(TG_MIN(next, stall), (uint64_t)1));
}
