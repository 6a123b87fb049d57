/* Backend connections on the engine: target choice (round robin or least connections, skipping
 * targets out of rotation), connect and TLS with failover, the per-worker keep-alive pool, TLS
 * session resumption per target, and the backend's HTTP/1 response parsed into a head as data and
 * handed to the stream (stream.c), whatever protocol the client speaks. */
#include "proxy/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/log.h"

#define READ_SLACK 256

static const struct tg_conn_handler bconn_handler;
static int resp_on_head(struct tg_h1_msg *m);
static int resp_on_body(struct tg_h1_msg *m, const char *at, size_t len);
static int resp_on_done(struct tg_h1_msg *m);
static const struct tg_h1_callbacks resp_cb = {resp_on_head, resp_on_body, resp_on_done};

static bool is_closed(const struct tg_bconn *b)
{
    return tg_conn_closed(&b->conn);
}

static struct tg_stream *stream_of(struct tg_bconn *b)
{
    return b->st;
}

/* ---- lifecycle ---- */

void tg__backend_on_closed(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    if (b->resp_ready)
        tg_h1_free(&b->resp);
    tg__target_conn_done(b);
    tg_snapshot_unref(b->snap);
    free(b);
}

/* ---- failures ---- */

void tg__backend_log_failure(struct tg_worker *w, const struct tg_client_info *c,
                             const struct tg_backend_conf *be, const char *target, enum tg_pfail f,
                             const char *detail)
{
    const struct tg_pfail_info *fi = tg__pfail_info(f);
    char tok[48];
    const char *rest;
    const char *token = tg__pfail_token(f, detail, tok, sizeof(tok), &rest);
    if (c != NULL)
        TG_STAT_INC(&w->stats, backend_fail[f]);
    tg_log(fi->backend_caused ? TG_LOG_WARN : TG_LOG_ERROR,
           "backend error: peer=%s listener=%s backend=%s target=%s reason=%s: %s%s%s",
           c ? TG__PEER(c) : "-", c ? c->lc->name : "-", be->name, target, token,
           rest && rest[0] ? rest : fi->sentence, fi->config_key ? "; to change this, see " : "",
           fi->config_key ? fi->config_key : "");
}

/* ---- target choice ---- */

/* The index of the target to try first for backend be, or SIZE_MAX if every target is out of
 * rotation. */
static size_t pick_target(struct tg_worker *w, struct tg_snapshot *snap,
                          const struct tg_backend_conf *be, size_t bi)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    const struct tg_config *cfg = snap->cfg;
    if (pw->n_rr < cfg->n_backends) {
        pw->rr = tg_xrealloc(pw->rr, cfg->n_backends * sizeof(*pw->rr));
        memset(pw->rr + pw->n_rr, 0, (cfg->n_backends - pw->n_rr) * sizeof(*pw->rr));
        pw->n_rr = cfg->n_backends;
    }
    size_t n = be->n_targets, best = SIZE_MAX;
    uint64_t best_load = UINT64_MAX;
    size_t start = pw->rr[bi]++ % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!tg__target_usable(w, snap, bi, i))
            continue;
        if (be->balance != TG_BALANCE_LEAST_CONNECTIONS)
            return i;
        uint64_t load = tg__target_load(snap, w, bi, i);
        if (load < best_load) {
            best_load = load;
            best = i;
        }
    }
    /* Every target is out of rotation. Without health checks nothing else would ever bring one
     * back, so real traffic tries again; with them, the checks decide. */
    if (best == SIZE_MAX && !be->health.enabled)
        best = start;
    return best;
}

/* ---- connect ---- */

/* Where an attempt runs and for whom (logs). */
struct opener {
    struct tg_worker *w;
    struct tg_snapshot *snap;
    const struct tg_client_info *who;
};

/* b now works for user (on behalf of who); *slot follows it while it opens. */
static void assign(struct tg_bconn *b, const struct tg_client_info *who,
                   const struct tg_bconn_user *user, void *arg, struct tg_bconn **slot,
                   unsigned tries)
{
    b->state = TG_B_OPENING;
    b->user = user;
    b->user_arg = arg;
    b->slot = slot;
    b->who = who;
    b->tries = tries;
}

static int connect_target(const struct opener *c, const struct tg_backend_conf *be, size_t idx,
                          const struct tg_bconn_user *user, void *arg, struct tg_bconn **slot,
                          unsigned tries, struct tg_bconn **out)
{
    const struct tg_config *cfg = c->snap->cfg;
    size_t bi = (size_t)(be - cfg->backends);
    const struct tg_target_conf *t = &be->targets[idx];
    struct tg_tls_client *tc = c->snap->backend_tls ? c->snap->backend_tls[bi] : NULL;
    SSL *ssl = NULL;
    if (tc != NULL) {
        ssl = tg_tls_client_ssl_new(tc, t);
        if (ssl == NULL) {
            ERR_clear_error();
            return -ENOMEM;
        }
        SSL_SESSION *sess = tg__target_session(c->w, c->snap, bi, idx);
        if (sess != NULL)
            SSL_set_session(ssl, sess);
    }
    struct tg_bconn *b = tg_xcalloc(1, sizeof(*b));
    b->snap = tg_snapshot_ref(c->snap);
    b->backend = be;
    b->backend_idx = bi;
    b->target_idx = idx;
    assign(b, c->who, user, arg, slot, tries);
    snprintf(b->target, sizeof(b->target), "%s", t->address);
    if (ssl != NULL)
        SSL_set_app_data(ssl, &b->conn); /* the session hook finds the connection */
    int rc =
        tg_conn_connect(&b->conn, c->w, (const struct sockaddr *)&t->addr, t->addr_len, ssl,
                        ssl ? &tg_transport_tls_client : &tg_transport_plain, &bconn_handler, b);
    if (rc != 0) {
        SSL_free(ssl);
        tg_snapshot_unref(b->snap);
        free(b);
        return rc;
    }
    TG_STAT_INC(&c->w->stats, backend_connects);
    tg__target_conn_start(b);
    tg__backend_arm(b, TG_BT_CONNECT, cfg->timeouts.backend_connect_ms);
    *out = b;
    return 0;
}

/* Tries targets from idx on (wrapping) until a connect starts; on none, the user hears why. */
static void open_from(const struct opener *c, const struct tg_backend_conf *be, size_t idx,
                      const struct tg_bconn_user *user, void *arg, struct tg_bconn **slot,
                      unsigned tries, enum tg_pfail last, const char *detail)
{
    size_t n = be->n_targets, bi = (size_t)(be - c->snap->cfg->backends);
    char why[256];
    snprintf(why, sizeof(why), "%s", detail ? detail : "");
    for (; tries < n; tries++, idx = (idx + 1) % n) {
        if (tries > 0 && !tg__target_usable(c->w, c->snap, bi, idx))
            continue;
        struct tg_bconn *b = NULL;
        int rc = connect_target(c, be, idx, user, arg, slot, tries, &b);
        if (rc == 0) {
            *slot = b;
            return;
        }
        last = TG_PF_CONNECT_ERROR;
        snprintf(why, sizeof(why), "%s", strerror(-rc));
        tg__backend_log_failure(c->w, c->who, be, be->targets[idx].address, last, why);
        tg__target_failed(c->w, c->snap, bi, idx);
    }
    *slot = NULL;
    user->on_fail(arg, last, why);
}

struct tg_bconn *tg__backend_open(struct tg_worker *w, struct tg_snapshot *snap,
                                  const struct tg_client_info *who,
                                  const struct tg_backend_conf *be, bool pooled,
                                  const struct tg_bconn_user *user, void *arg,
                                  struct tg_bconn **slot)
{
    struct opener op = {w, snap, who}, *c = &op;
    size_t bi = (size_t)(be - snap->cfg->backends);
    size_t idx = pick_target(w, snap, be, bi);
    if (idx == SIZE_MAX) {
        *slot = NULL;
        tg__backend_log_failure(w, who, be, "-", TG_PF_NO_TARGET, NULL);
        user->on_fail(arg, TG_PF_NO_TARGET, NULL);
        return NULL;
    }
    if (pooled && tg__pool_take(w, snap, who, bi, idx, user, arg, slot))
        return *slot;
    open_from(c, be, idx, user, arg, slot, 0, TG_PF_CONNECT_ERROR, NULL);
    return *slot;
}

/* Connecting or the TLS handshake failed: log, take the target out of rotation, go on with the
 * next untried one. */
static void bconn_on_fail(struct tg_conn *conn, enum tg_conn_fail why, int err)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    struct opener op = {conn->w, b->snap, b->who}, *c = &op;
    char detail[256] = "";
    enum tg_pfail f;
    if (why == TG_CONN_FAIL_CONNECT) {
        f = err == ECONNREFUSED ? TG_PF_CONNECT_REFUSED : TG_PF_CONNECT_ERROR;
        snprintf(detail, sizeof(detail), "%s while connecting", strerror(err));
    } else {
        char d[200] = "";
        enum tg_tls_bfail tf =
            tg_tls_client_classify(conn->ssl, conn->ssl_error, err, d, sizeof(d));
        const struct tg_tls_fail_info *fi = tg_tls_bfail_info(tf);
        TG_STAT_INC(&conn->w->stats, backend_hs_fail[tf]);
        f = TG_PF_TLS;
        snprintf(detail, sizeof(detail), "%s: %s%s%s%s%s", fi->token, d[0] ? d : fi->sentence,
                 fi->config_key ? "; to change this, see backends." : "",
                 fi->config_key ? b->backend->name : "", fi->config_key ? "." : "",
                 fi->config_key ? fi->config_key : "");
        TG_STAT_INC(&conn->w->stats, backend_tls_failures);
    }
    tg__backend_log_failure(conn->w, b->who, b->backend, b->target, f, detail);
    tg__target_failed(conn->w, b->snap, b->backend_idx, b->target_idx);
    struct tg_bconn **slot = b->slot;
    b->slot = NULL;
    if (slot != NULL && *slot == b)
        open_from(c, b->backend, (b->target_idx + 1) % b->backend->n_targets, b->user, b->user_arg,
                  slot, b->tries + 1, f, detail);
}

static void note_client_cert(struct tg_bconn *b)
{
    if (b->conn.ssl == NULL || b->backend->tls.client_certificate == NULL ||
        tg_tls_client_cert_requested(b->conn.ssl))
        return;
    if (tg__target_note_unrequested(b->conn.w, b->snap, b->backend_idx, b->target_idx))
        tg_log_warn("backend %s target %s never asked for our client certificate (%s): the "
                    "backend does not authenticate this gateway by it",
                    b->backend->name, b->target, b->backend->tls.client_certificate);
}

static void bconn_on_open(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    tg_conn_timer(conn, 0);
    b->timer_kind = TG_BT_NONE;
    tg__target_ok(conn->w, b->snap, b->backend_idx, b->target_idx);
    note_client_cert(b);
    struct tg_bconn **slot = b->slot;
    b->slot = NULL;
    b->state = TG_B_ACTIVE;
    if (slot != NULL)
        *slot = b;
    b->user->on_open(b, b->user_arg);
}

/* ---- serving a stream ---- */

static size_t response_cap(const struct tg_bconn *b)
{
    return TG_MAX((size_t)16384, (size_t)b->snap->cfg->limits.max_header_bytes + 1024);
}

void tg__backend_serve(struct tg_bconn *b, struct tg_stream *st)
{
    b->st = st;
    st->bc = b;
    b->got_bytes = false;
    b->reusable = false;
    b->conn.out = &st->to_backend;
    b->drained = b->conn.bytes_written;
    if (!b->resp_ready) {
        tg_h1_init(&b->resp, HTTP_RESPONSE, b->snap->cfg->limits.max_headers, &resp_cb, b);
        b->resp.pause_on_done = true;
        b->resp.max_trailer_bytes = b->snap->cfg->limits.max_header_bytes;
        b->resp_ready = true;
    } else {
        tg_h1_reset(&b->resp);
    }
    b->conn.last_io_ms = uv_now(&b->conn.w->loop);
    tg__backend_arm(b, TG_BT_RESPONSE, b->snap->cfg->timeouts.backend_response_ms);
    tg__backend_flush(b);
}

void tg__backend_flush(struct tg_bconn *b)
{
    if (is_closed(b) || b->state != TG_B_ACTIVE || b->st == NULL)
        return;
    tg_conn_flush(&b->conn);
}

void tg__backend_resume_read(struct tg_bconn *b)
{
    if (is_closed(b) || b->state != TG_B_ACTIVE || b->st == NULL)
        return;
    tg_conn_read(&b->conn);
    if (!is_closed(b))
        tg_conn_update(&b->conn);
}

static bool idempotent(const struct tg_stream *st)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(safe); i++)
        if (strcmp(st->method, safe[i]) == 0)
            return true;
    return false;
}

/* The request goes again on a fresh connection (or the next target), with the same user. */
static void resend(struct tg_bconn *b, struct tg_stream *st)
{
    const struct tg_bconn_user *user = b->user;
    void *arg = b->user_arg;
    struct tg_worker *w = b->conn.w;
    struct tg_snapshot *snap = b->snap;
    const struct tg_client_info *who = b->who;
    tg__backend_close(b);
    st->to_backend.off = 0;
    st->bc = NULL;
    tg__backend_open(w, snap, who, st->backend, !st->upgrade, user, arg, &st->bc);
}

/* The connection failed after it opened. A pooled connection that turns out closed before
 * answering an idempotent request without a body is retried once on a fresh connection (RFC 9110
 * 9.2.2: a proxy MUST NOT retry a non-idempotent one: the backend may have acted on it before
 * closing); otherwise 502, or the client is cut when its response has started. */
static void io_failed(struct tg_bconn *b, enum tg_pfail f, const char *detail)
{
    struct tg_stream *st = stream_of(b);
    if (st == NULL) {
        tg__backend_close(b);
        return;
    }
    bool resendable =
        !b->got_bytes && !st->retried && !st->has_body && st->to_backend.len == st->req_head_len;
    if (resendable && b->reused && idempotent(st)) {
        st->retried = true;
        tg_log_debug("backend %s target %s: pooled connection closed (%s), retrying",
                     b->backend->name, b->target, detail ? detail : tg__pfail_info(f)->token);
        resend(b, st);
        return;
    }
    tg__backend_log_failure(b->conn.w, b->who, b->backend, b->target, f, detail);
    if (resendable && idempotent(st) && b->backend->n_targets > 1 && f != TG_PF_TLS) {
        /* Nothing of the response arrived and the request may be sent twice (RFC 9110 9.2.2):
         * the next target gets it, this one leaves the rotation. */
        st->retried = true;
        tg__target_failed(b->conn.w, b->snap, b->backend_idx, b->target_idx);
        resend(b, st);
        return;
    }
    struct tg_worker *w = b->conn.w;
    tg__backend_close(b);
    if (st->resp_phase == TG_RESP_WAIT || tg__stream_retract(st)) { /* nothing sent: 502 */
        tg__stream_backend_failed(st, f, detail);
    } else {
        TG_STAT_INC(&w->stats, backend_errors);
        tg__stream_reset(st, "backend failed mid-response");
    }
}

/* The response head outgrew limits.max_header_bytes (or the buffer): say so, not "malformed". */
static void head_too_large(struct tg_bconn *b)
{
    char reason[96];
    snprintf(reason, sizeof(reason), "response head larger than %u bytes",
             b->snap->cfg->limits.max_header_bytes);
    io_failed(b, TG_PF_HEAD_TOO_LARGE, reason);
}

static void bconn_on_timer(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    switch (b->timer_kind) {
    case TG_BT_CONNECT: {
        /* Connected but the TLS handshake did not finish: the TLS table's handshake_timeout row
         * (504), counted there, not as a connect timeout. */
        bool hs = conn->state == TG_CONN_HANDSHAKE;
        enum tg_pfail f = hs ? TG_PF_TLS_TIMEOUT : TG_PF_CONNECT_TIMEOUT;
        char d[96];
        snprintf(d, sizeof(d), "%s timed out after %" PRIu64 " ms",
                 hs ? "TLS handshake" : "connect", b->snap->cfg->timeouts.backend_connect_ms);
        if (hs) {
            TG_STAT_INC(&conn->w->stats, backend_hs_fail[TG_TLS_BFAIL_TIMEOUT]);
            TG_STAT_INC(&conn->w->stats, backend_tls_failures);
        }
        struct opener op = {conn->w, b->snap, b->who}, *c = &op;
        tg__backend_log_failure(conn->w, b->who, b->backend, b->target, f, d);
        tg__target_failed(conn->w, b->snap, b->backend_idx, b->target_idx);
        struct tg_bconn **slot = b->slot;
        const struct tg_bconn_user *user = b->user;
        void *arg = b->user_arg;
        unsigned tries = b->tries;
        size_t next = (b->target_idx + 1) % b->backend->n_targets;
        const struct tg_backend_conf *be = b->backend;
        b->slot = NULL;
        tg__backend_close(b);
        if (slot != NULL)
            open_from(c, be, next, user, arg, slot, tries + 1, f, d);
        return;
    }
    case TG_BT_IDLE:
        tg__backend_close(b);
        return;
    case TG_BT_RESPONSE: {
        /* The limit is the configured one: re-arming for the remainder must not shrink it. */
        uint64_t now = uv_now(&conn->w->loop), lim = b->snap->cfg->timeouts.backend_response_ms;
        if (now - conn->last_io_ms < lim) {
            tg__backend_arm(b, TG_BT_RESPONSE, lim - (now - conn->last_io_ms));
            return;
        }
        struct tg_stream *st = stream_of(b);
        if (st == NULL) {
            tg__backend_close(b);
            return;
        }
        char reason[96];
        snprintf(reason, sizeof(reason), "no response within %" PRIu64 " ms", lim);
        tg__backend_log_failure(conn->w, b->who, b->backend, b->target, TG_PF_RESPONSE_TIMEOUT,
                                reason);
        struct tg_worker *w = conn->w;
        tg__backend_close(b);
        if (st->resp_phase == TG_RESP_WAIT) {
            tg__stream_backend_failed(st, TG_PF_RESPONSE_TIMEOUT, reason);
        } else {
            TG_STAT_INC(&w->stats, backend_timeouts);
            tg__stream_reset(st, "backend stalled mid-response");
        }
        return;
    }
    default:
        return;
    }
}

/* A reserved pooled connection heard from its backend before its request went out: dropped,
 * and its user gets another connection (from the pool or a new one). */
static void reserved_lost(struct tg_bconn *b, const char *what)
{
    struct tg_worker *w = b->conn.w;
    struct tg_snapshot *snap = tg_snapshot_ref(b->snap);
    const struct tg_client_info *who = b->who;
    const struct tg_backend_conf *be = b->backend;
    const struct tg_bconn_user *user = b->user;
    void *arg = b->user_arg;
    struct tg_bconn **slot = b->slot;
    tg__pool_drop(b, what);
    if (slot != NULL && *slot == b)
        tg__backend_open(w, snap, who, be, true, user, arg, slot);
    tg_snapshot_unref(snap);
}

/* ---- reading the response ---- */

static bool bconn_want_read(const struct tg_conn *conn)
{
    const struct tg_bconn *b = TG_CONTAINER(conn, const struct tg_bconn, conn);
    if (b->state == TG_B_IDLE || b->state == TG_B_RESERVED)
        return true; /* a close or stray bytes: noticed and the connection dropped */
    if (b->state != TG_B_ACTIVE || b->st == NULL || b->st->resp_phase == TG_RESP_DONE)
        return false;
    return tg__stream_room(b->st) > 0;
}

static size_t bconn_read_room(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    tg_conn_buf_get(conn->w, &conn->in, response_cap(b));
    if (b->state == TG_B_IDLE || b->state == TG_B_RESERVED) /* on_read drops it */
        return conn->in.cap - conn->in.len;
    if (!bconn_want_read(conn))
        return 0;
    /* While a head is partly parsed its spans point into the input: those bytes stay put until
     * the head is complete, however many reads it takes. */
    if (!tg_h1_head_pending(&b->resp)) {
        if (conn->in.off == conn->in.len)
            conn->in.off = conn->in.len = 0;
        else if (conn->in.off > 0)
            tg_buf_compact(&conn->in);
    }
    size_t room = conn->in.cap - conn->in.len;
    if (b->resp.head_done)
        room = TG_MIN(room, tg__stream_room(b->st));
    if (room == 0 && !b->resp.head_done)
        head_too_large(b);
    return room;
}

static void backend_eof(struct tg_bconn *b, int err)
{
    struct tg_stream *st = b->st;
    if (err == 0 && b->resp.head_done && st->resp_phase != TG_RESP_DONE &&
        llhttp_message_needs_eof(&b->resp.parser)) {
        tg_h1_finish(&b->resp); /* close-delimited body: EOF ends it */
        b->reusable = false;
        if (st->resp_phase == TG_RESP_DONE) {
            st->bc = NULL;
            b->st = NULL;
            tg__backend_close(b);
            tg__stream_flush(st);
            return;
        }
    }
    if (err == 0)
        io_failed(b, TG_PF_CLOSED_EARLY,
                  b->resp.head_done ? "connection closed by the backend while sending the response"
                                    : "connection closed by the backend before responding");
    else
        io_failed(b, TG_PF_RESET, strerror(err));
}

/* 101 Switching Protocols to a WebSocket request: the response head went to the client's
 * session, which now turns the client connection and b into a tunnel. */
static void upgrade(struct tg_bconn *b)
{
    struct tg_stream *st = b->st;
    TG_STAT_INC(&b->conn.w->stats, websocket_upgrades);
    st->bc = NULL;
    b->st = NULL;
    b->conn.out = &b->conn.own_out;
    tg_conn_timer(&b->conn, 0);
    st->out->upgrade(st, b);
}

static void bconn_on_read(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    struct tg_stream *st = b->st;
    if (b->state == TG_B_RESERVED) {
        reserved_lost(b, conn->rd_eof ? "was closed by its backend" : "received stray bytes");
        return;
    }
    if (b->state != TG_B_ACTIVE || st == NULL) {
        if (b->state == TG_B_IDLE)
            tg__pool_drop(b, conn->rd_eof ? "was closed by its backend" : "received stray bytes");
        else
            tg__backend_close(b);
        return;
    }
    if (conn->rd_eof) {
        backend_eof(b, 0);
        return;
    }
    b->got_bytes = true;
    while (!is_closed(b) && b->st == st && tg_buf_used(&conn->in) > 0 &&
           st->resp_phase != TG_RESP_DONE) {
        size_t consumed = 0;
        enum tg_h1_result r =
            tg_h1_execute(&b->resp, conn->in.data, conn->in.off, tg_buf_used(&conn->in), &consumed);
        if (is_closed(b))
            return;
        conn->in.off += consumed;
        if (r == TG_H1_OK && tg_h1_head_pending(&b->resp) &&
            conn->in.len > (size_t)b->snap->cfg->limits.max_header_bytes) {
            head_too_large(b);
            return;
        }
        if (r == TG_H1_ERROR) {
            io_failed(b,
                      b->resp.error_status == 502 && b->resp.error &&
                              strstr(b->resp.error, "too large")
                          ? TG_PF_HEAD_TOO_LARGE
                          : TG_PF_BAD_RESPONSE,
                      b->resp.error ? b->resp.error : "malformed response");
            return;
        }
        if (r == TG_H1_PAUSED && st->resp_phase != TG_RESP_DONE) {
            tg_h1_next(&b->resp); /* a 1xx response; the final one follows */
            continue;
        }
        break;
    }
    if (is_closed(b) || b->st != st)
        return;
    if (st->resp_phase == TG_RESP_DONE) {
        if (b->upgraded) {
            upgrade(b); /* the 101 head still queued for the client goes first */
            return;
        }
        if (tg_buf_used(&conn->in) > 0)
            b->reusable = false; /* bytes after the response: do not trust it */
        tg_conn_timer(conn, 0);
        b->timer_kind = TG_BT_NONE;
    }
    tg__stream_flush(st);
}

/* An idle pooled connection keeps no input block (the read that found nothing took one). */
static void bconn_after_read(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    if ((b->state == TG_B_IDLE || b->state == TG_B_RESERVED) && conn->in.off == conn->in.len)
        tg_conn_buf_put(conn->w, &conn->in);
}

static void bconn_on_error(struct tg_conn *conn, int err, bool writing)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    if (b->state == TG_B_RESERVED) {
        reserved_lost(b, "was reset by its backend");
        return;
    }
    if (b->st == NULL) {
        if (b->state == TG_B_IDLE)
            tg__pool_drop(b, "was reset by its backend");
        else
            tg__backend_close(b);
        return;
    }
    if (b->st->resp_phase == TG_RESP_DONE && !b->upgraded) {
        /* The response is whole (a reset right after it, as a server closing with unread input
         * sends): it stands; only the connection ends. */
        struct tg_stream *st = b->st;
        b->reusable = false;
        st->bc = NULL;
        b->st = NULL;
        tg__backend_close(b);
        tg__stream_flush(st);
        return;
    }
    char d[256];
    if (conn->ssl != NULL && !b->got_bytes) {
        /* TLS 1.3: a backend demanding or refusing our certificate says so only after our side
         * of the handshake is done, on the first read or write. */
        char td[200] = "";
        enum tg_tls_bfail tf = tg_tls_client_classify(conn->ssl, conn->ssl_error,
                                                      err == -EPROTO ? 0 : -err, td, sizeof(td));
        if (tf != TG_TLS_BFAIL_NONE && tf != TG_TLS_BFAIL_HANGUP && tf != TG_TLS_BFAIL_INTERNAL &&
            (tf != TG_TLS_BFAIL_PROTOCOL || err == -EPROTO)) {
            snprintf(d, sizeof(d), "%s: %s", tg_tls_bfail_info(tf)->token,
                     td[0] ? td : tg_tls_bfail_info(tf)->sentence);
            TG_STAT_INC(&conn->w->stats, backend_hs_fail[tf]);
            io_failed(b, TG_PF_TLS, d);
            return;
        }
        if (b->backend->tls.client_certificate == NULL && tg_tls_client_cert_requested(conn->ssl)) {
            /* The alert saying so can be lost when the backend's close resets the connection
             * before we read it: it asked for a certificate we do not have, then hung up. */
            const struct tg_tls_fail_info *fi = tg_tls_bfail_info(TG_TLS_BFAIL_CERT_REQUIRED);
            TG_STAT_INC(&conn->w->stats, backend_hs_fail[TG_TLS_BFAIL_CERT_REQUIRED]);
            snprintf(d, sizeof(d), "%s: %s (it asked for one, then closed: %s)", fi->token,
                     fi->sentence, strerror(-err));
            io_failed(b, TG_PF_TLS, d);
            return;
        }
    }
    snprintf(d, sizeof(d), "%s while %s", strerror(-err),
             writing ? "sending the request" : "reading the response");
    io_failed(b, TG_PF_RESET, d);
}

/* Room was made in to_backend: the stream's session may deliver more of the request body. */
static void bconn_on_drain(struct tg_conn *conn)
{
    struct tg_bconn *b = tg__bconn_of(conn);
    struct tg_stream *st = b->st;
    uint64_t n = conn->bytes_written - b->drained;
    b->drained = conn->bytes_written;
    if (st != NULL && st->req_phase != TG_REQ_DONE)
        st->out->consumed(st, (size_t)n);
}

static const struct tg_conn_handler bconn_handler = {
    .on_open = bconn_on_open,
    .on_fail = bconn_on_fail,
    .read_room = bconn_read_room,
    .want_read = bconn_want_read,
    .on_read = bconn_on_read,
    .on_error = bconn_on_error,
    .on_drain = bconn_on_drain,
    .after_read = bconn_after_read,
    .on_timer = bconn_on_timer,
    .on_closed = tg__backend_on_closed,
};

/* ---- response callbacks: the backend's response as a head and body for the stream ---- */

/* A 101 switches only with exactly one Sec-WebSocket-Accept matching the client's key (RFC 6455
 * 4.1): anything else is not the WebSocket server the client asked for, and browsers fail it. */
static bool ws_accepted(const struct tg_h1_msg *m, const struct tg_stream *st)
{
    const struct tg_h1_field *f = tg_h1_find(m, "sec-websocket-accept");
    if (f == NULL)
        return false;
    for (const struct tg_h1_field *g = f + 1; g < m->fields + m->n_fields; g++)
        if (tg_h1_name_is(m, g, "sec-websocket-accept"))
            return false;
    return tg_ws_accept_ok(st->ws_accept, m->base + f->value.off, f->value.len);
}

static int resp_on_head(struct tg_h1_msg *m)
{
    struct tg_bconn *b = m->user;
    struct tg_stream *st = b->st;
    llhttp_t *p = &m->parser;
    int status = p->status_code;
    struct tg_http_head *h = &st->resp;
    if (status < 200 && status != 101) {
        if (status == 100) { /* the only interim response relayed */
            struct tg_http_head h100 = {.status = 100, .reason = "Continue", .reason_len = 8};
            if (!tg__stream_head(st, &h100, false)) {
                m->error_status = 502;
                m->error = "response head too large";
                return -1;
            }
        }
        return 0;
    }
    if (status == 101 && !st->upgrade)
        return -1; /* nobody asked for an upgrade */
    if (status == 101 && !ws_accepted(m, st)) {
        m->error_status = 502;
        m->error = "101 without the Sec-WebSocket-Accept for the client's key";
        return -1;
    }
    bool no_body = st->head_only || status == 204 || status == 304 || status == 101;
    bool has_cl = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    /* Strict framing (RFC 9112 6.1, 6.3): one Transfer-Encoding line, exactly "chunked". */
    if (!no_body && tg_h1_find(m, "transfer-encoding") != NULL && !tg_h1_chunked_once(m)) {
        m->error_status = 502;
        m->error = "Transfer-Encoding other than one chunked";
        return -1;
    }
    st->status = status;
    tg_http_head_clear(h);
    h->status = status;
    h->reason = m->base + m->reason.off;
    h->reason_len = m->reason.len;
    bool ok = true;
    for (size_t i = 0; ok && i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        if (tg_h1_is_hop_by_hop(m, f))
            continue;
        if (!no_body && tg_h1_name_is(m, f, "content-length"))
            continue;
        ok = tg_http_head_add(h, m->base + f->name.off, f->name.len, m->base + f->value.off,
                              f->value.len);
    }
    if (status == 101) {
        h->upgrade = "websocket";
        b->upgraded = true;
    } else if (!no_body) {
        if (has_cl) {
            h->body = TG_BODY_LENGTH;
            h->content_length = (uint64_t)p->content_length;
        } else {
            h->body = TG_BODY_CHUNKED; /* length unknown: the session frames it */
        }
    }
    ok = ok && tg__stream_head(st, h, no_body);
    if (!ok) {
        m->error_status = 502;
        m->error = "response head too large";
        return -1;
    }
    return st->head_only ? 1 : 0;
}

static int resp_on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct tg_bconn *b = m->user;
    return tg__stream_body(b->st, at, len) ? 0 : -1;
}

static int resp_on_done(struct tg_h1_msg *m)
{
    struct tg_bconn *b = m->user;
    struct tg_stream *st = b->st;
    if (m->parser.status_code < 200 && !b->upgraded)
        return 0;
    b->reusable = !b->upgraded && llhttp_should_keep_alive(&m->parser) != 0;
    bool over = false;
    const struct tg_http_head *trailers = tg_h1_trailers(m, &over);
    if (over)
        tg_log_debug("backend %s target %s: response trailer section over "
                     "limits.max_header_bytes or limits.max_headers: dropped",
                     b->backend->name, b->target);
    return tg__stream_end_trailers(st, trailers) ? 0 : -1;
}
