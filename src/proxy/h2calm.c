/* HTTP/2 abuse defences: frame floods, rapid resets, HPACK bombs, CONTINUATION floods and
 * zero-window stalls each end the connection with GOAWAY(ENHANCE_YOUR_CALM), logged once with a
 * reason token from this file's table and counted (status page: http2_calm). The limits are token
 * buckets per connection: a burst, refilled at a rate, so ordinary clients never meet them. */
#include "proxy/internal.h"

#include <inttypes.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"

static const struct tg_h2_calm_info rows[] = {
    [TG_H2C_NONE] = {"none", "", NULL},
    [TG_H2C_RAPID_RESET] = {"rapid_reset", "streams reset faster than they are served",
                            "http2.max_concurrent_streams"},
    [TG_H2C_CONTINUATION] = {"continuation_flood", "a header block in too many CONTINUATION frames",
                             NULL},
    [TG_H2C_HPACK_BOMB] = {"hpack_bomb", "a header block decoding to over twice the limit",
                           "http2.max_header_list_size"},
    [TG_H2C_SETTINGS] = {"settings_flood", "too many SETTINGS frames", NULL},
    [TG_H2C_PING] = {"ping_flood", "too many PING frames", NULL},
    [TG_H2C_EMPTY] = {"empty_frame_flood", "too many empty DATA, HEADERS or CONTINUATION frames",
                      NULL},
    [TG_H2C_ACK_QUEUE] = {"ack_flood",
                          "too many acknowledgements waiting for a client that does "
                          "not read",
                          NULL},
    [TG_H2C_ZERO_WINDOW] = {"zero_window", "no response DATA could be sent to the client",
                            "timeouts.idle"},
    [TG_H2C_PRIORITY] = {"priority_flood",
                         "too many PRIORITY or PRIORITY_UPDATE frames (priorities have no effect "
                         "here)",
                         NULL},
    [TG_H2C_WINDOW_UPDATE] = {"window_update_flood",
                              "too many WINDOW_UPDATE frames for the DATA sent to the client",
                              NULL},
};

/* WINDOW_UPDATE: a client may answer each DATA frame with two (stream and connection); beyond
 * that, a burst and a trickle. */
#define WINUPD_BURST    128
#define WINUPD_PER_S    32
#define WINUPD_PER_DATA 2
#define WINUPD_CREDIT   4096 /* tokens DATA frames may have granted and not yet used */
#define PRIORITY_UPDATE 0x10 /* RFC 9218 */

_Static_assert(TG_H2C__COUNT <= TG_NET_H2_CALM_MAX, "a counter per row");

const struct tg_h2_calm_info *tg__h2_calm_info(enum tg_h2_calm r)
{
    return &rows[(unsigned)r < TG_H2C__COUNT ? r : TG_H2C_NONE];
}

/* Takes one token; false when the bucket is empty. */
static bool take(struct tg_h2_bucket *b, uint64_t now, uint32_t burst, uint32_t per_s)
{
    if (b->at_ms == 0) {
        b->tokens = burst;
        b->at_ms = now;
    } else if (now > b->at_ms) {
        uint64_t add = (now - b->at_ms) * per_s / 1000;
        if (add > 0) { /* a bucket credited above its burst keeps its credit */
            if (b->tokens < burst)
                b->tokens = (uint32_t)TG_MIN((uint64_t)burst, b->tokens + add);
            b->at_ms = now;
        }
    }
    if (b->tokens == 0)
        return false;
    b->tokens--;
    return true;
}

bool tg__h2_calm_frame(struct tg_h2_session *s, uint8_t type, uint8_t flags, size_t length)
{
    uint64_t now = uv_now(&s->c->conn.w->loop);
    enum tg_h2_calm r = TG_H2C_NONE;
    uint32_t streams = tg__cfg(s->c)->http2.max_concurrent_streams;
    switch (type) {
    case NGHTTP2_SETTINGS:
        if (!(flags & NGHTTP2_FLAG_ACK) && !take(&s->b_settings, now, 32, 4))
            r = TG_H2C_SETTINGS;
        break;
    case NGHTTP2_PING:
        if (!(flags & NGHTTP2_FLAG_ACK) && !take(&s->b_ping, now, 32, 4))
            r = TG_H2C_PING;
        break;
    case NGHTTP2_RST_STREAM:
        /* A stream counts until we released it, so resets never make room by themselves; this
         * bounds the work (a backend request started and cancelled) a client can make us do. */
        if (!take(&s->b_reset, now, 2 * streams, TG_MAX(streams / 4, 8)))
            r = TG_H2C_RAPID_RESET;
        break;
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS:
    case NGHTTP2_CONTINUATION:
        if (length == 0 && !(flags & NGHTTP2_FLAG_END_STREAM) && !take(&s->b_empty, now, 32, 4))
            r = TG_H2C_EMPTY;
        break;
    case NGHTTP2_PRIORITY:
    case PRIORITY_UPDATE:
        /* We announce SETTINGS_NO_RFC7540_PRIORITIES and schedule streams ourselves: these
         * change nothing. A browser sends a few per stream at most. */
        if (!take(&s->b_priority, now, TG_MAX(2 * streams, 64), TG_MAX(streams / 4, 16)))
            r = TG_H2C_PRIORITY;
        break;
    case NGHTTP2_WINDOW_UPDATE:
        if (!take(&s->b_winupd, now, WINUPD_BURST, WINUPD_PER_S))
            r = TG_H2C_WINDOW_UPDATE;
        break;
    default: /* nghttp2 skips unknown types without telling us (no on_begin_frame) */
        break;
    }
    if (r != TG_H2C_NONE)
        tg__h2_calm(s, r);
    return r == TG_H2C_NONE;
}

void tg__h2_calm_data_sent(struct tg_h2_session *s)
{
    struct tg_h2_bucket *b = &s->b_winupd;
    if (b->at_ms == 0) { /* first use: start full, as take() would */
        b->tokens = WINUPD_BURST;
        b->at_ms = uv_now(&s->c->conn.w->loop);
    }
    b->tokens = TG_MIN(b->tokens + WINUPD_PER_DATA, (uint32_t)WINUPD_CREDIT);
}

void tg__h2_calm(struct tg_h2_session *s, enum tg_h2_calm r)
{
    if (s->calm != TG_H2C_NONE)
        return;
    s->calm = r;
    struct tg_client *c = s->c;
    const struct tg_h2_calm_info *i = tg__h2_calm_info(r);
    TG_STAT_INC(&c->conn.w->stats, h2_calm[r]);
    tg_log_info(
        "client %s listener=%s: HTTP/2 connection closed with ENHANCE_YOUR_CALM: reason=%s: "
        "%s%s%s%s (%zu streams open)",
        TG__PEER(&c->info), c->info.lc->name, i->token, i->text, i->key ? " (" : "",
        i->key ? i->key : "", i->key ? ")" : "", s->n_live);
    nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

uint64_t tg__h2_calm_stalls_next(const struct tg_h2_session *s, uint64_t now)
{
    uint64_t limit = tg__cfg(s->c)->timeouts.idle_ms, next = UINT64_MAX;
    for (const struct tg_h2_stream *hs = s->live; hs != NULL; hs = hs->next)
        if (!hs->closed && tg_buf_used(&hs->resp) > 0)
            next = TG_MIN(next, hs->wait_ms + limit > now ? hs->wait_ms + limit - now : 0);
    return next;
}

uint64_t tg__h2_calm_stalls(struct tg_h2_session *s, uint64_t now)
{
    uint64_t limit = tg__cfg(s->c)->timeouts.idle_ms, next = UINT64_MAX;
    for (struct tg_h2_stream *hs = s->live; hs != NULL; hs = hs->next) {
        if (hs->closed || tg_buf_used(&hs->resp) == 0)
            continue;
        if (now - hs->wait_ms >= limit) {
            tg__h2_calm(s, TG_H2C_ZERO_WINDOW);
            return 0;
        }
        next = TG_MIN(next, hs->wait_ms + limit - now);
    }
    return next;
}
