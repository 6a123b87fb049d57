/* Backend connections: connect with timeout and failover, per-worker keep-alive pool, response
 * streaming. */
#include "proxy/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

#define MAX_IDLE_PER_WORKER 512
#define READ_SLACK          256

enum { BT_NONE, BT_CONNECT, BT_RESPONSE, BT_IDLE };

static void backend_update(struct tg_bconn *b);
static void backend_read(struct tg_bconn *b);
static int connect_target(struct tg_client *c, size_t idx);

static int resp_on_head(struct tg_h1_msg *m);
static int resp_on_body(struct tg_h1_msg *m, const char *at, size_t len);
static int resp_on_done(struct tg_h1_msg *m);
static const struct tg_h1_callbacks resp_cb = {resp_on_head, resp_on_body, resp_on_done};

struct bconn_ext {
    struct tg_bconn b;
    int timer_kind;
};

static struct bconn_ext *ext(struct tg_bconn *b)
{
    return (struct bconn_ext *)b;
}

/* ---- lifecycle ---- */

static void idle_remove(struct tg_bconn *b)
{
    struct tg_proxy_worker *pw = tg_pw(b->w);
    if (b->prev)
        b->prev->next = b->next;
    else
        pw->idle = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    pw->n_idle--;
}

static void on_closed(uv_handle_t *h)
{
    struct tg_bconn *b = h->data;
    if (--b->pending_closes > 0)
        return;
    close(b->fd);
    tg__buf_release(b->w, &b->in);
    if (b->resp_ready)
        tg_h1_free(&b->resp);
    free(ext(b));
}

void tg__backend_close(struct tg_bconn *b)
{
    if (b == NULL || b->dead)
        return;
    b->dead = true;
    if (b->state == TG_B_IDLE)
        idle_remove(b);
    if (b->c != NULL && b->c->bc == b)
        b->c->bc = NULL;
    b->c = NULL;
    uv_poll_stop(&b->poll);
    uv_timer_stop(&b->timer);
    b->pending_closes = 2;
    uv_close((uv_handle_t *)&b->poll, on_closed);
    uv_close((uv_handle_t *)&b->timer, on_closed);
}

void tg__backend_close_idle(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->idle != NULL)
        tg__backend_close(pw->idle);
}

static void on_timer(uv_timer_t *t);

static void arm(struct tg_bconn *b, int kind, uint64_t ms)
{
    ext(b)->timer_kind = kind;
    uv_timer_start(&b->timer, on_timer, ms, 0);
}

void tg__backend_release(struct tg_bconn *b, bool reusable)
{
    if (b->dead)
        return;
    struct tg_proxy_worker *pw = tg_pw(b->w);
    b->c = NULL;
    if (!reusable || b->w->draining || pw->n_idle >= MAX_IDLE_PER_WORKER ||
        tg_buf_used(&b->in) > 0) {
        tg__backend_close(b);
        return;
    }
    tg__buf_release(b->w, &b->in);
    b->state = TG_B_IDLE;
    b->next = pw->idle;
    b->prev = NULL;
    if (pw->idle)
        pw->idle->prev = b;
    pw->idle = b;
    pw->n_idle++;
    arm(b, BT_IDLE, b->w->snap->cfg->timeouts.idle_ms);
    backend_update(b);
}

/* ---- failures ---- */

static void log_failure(struct tg_client *c, struct tg_bconn *b, const char *reason,
                        const char *stage)
{
    tg_log_warn("backend error: peer=%s listener=%s backend=%s target=%s reason=%s %s", c->peer,
                c->lc->name, c->backend->name, b->target, reason, stage);
}

/* Connecting failed: try the backend's next untried target, else answer 502/504. */
static void connect_failed(struct tg_bconn *b, int err, bool timeout)
{
    struct tg_client *c = b->c;
    char reason[96];
    if (timeout)
        snprintf(reason, sizeof(reason), "connect timed out after %" PRIu64 " ms",
                 c->snap->cfg->timeouts.backend_connect_ms);
    else
        snprintf(reason, sizeof(reason), "%s",
                 err == ECONNREFUSED ? "connection refused" : strerror(err));
    log_failure(c, b, reason, "while connecting");
    tg__backend_close(b);
    c->bc = NULL;
    c->targets_tried++;
    size_t n = c->backend->n_targets;
    while (c->targets_tried < n) {
        size_t next = (c->target_idx + 1) % n;
        if (connect_target(c, next) == 0)
            return;
        c->targets_tried++;
    }
    char why[160];
    snprintf(why, sizeof(why), "backend \"%s\": %s", c->backend->name, reason);
    tg__client_backend_failed(c, timeout ? 504 : 502, why);
}

/* The connection failed after connecting. Retries once on a fresh connection when a pooled one
 * turned out closed before answering a request that has no body; otherwise 502 or cut. */
static void io_failed(struct tg_bconn *b, const char *reason, const char *stage)
{
    struct tg_client *c = b->c;
    if (b->reused && !b->got_bytes && !c->retried && !c->req_has_body &&
        c->to_backend.len == c->req_head_len) {
        c->retried = true;
        tg_log_debug("backend %s target %s: pooled connection closed (%s), retrying",
                     c->backend->name, b->target, reason);
        tg__backend_close(b);
        c->bc = NULL;
        c->to_backend.off = 0;
        c->targets_tried = 0;
        if (connect_target(c, c->target_idx) != 0)
            tg__client_backend_failed(c, 502, "cannot connect to the backend");
        return;
    }
    log_failure(c, b, reason, stage);
    tg__backend_close(b);
    c->bc = NULL;
    if (!c->resp_started) {
        char why[160];
        snprintf(why, sizeof(why), "backend \"%s\": %s %s", c->backend->name, reason, stage);
        tg__client_backend_failed(c, 502, why);
    } else {
        TG_STAT_INC(&c->w->stats, backend_errors);
        tg__client_abort(c, "backend failed mid-response");
    }
}

static void on_timer(uv_timer_t *t)
{
    struct tg_bconn *b = t->data;
    struct tg_client *c = b->c;
    switch (ext(b)->timer_kind) {
    case BT_CONNECT:
        connect_failed(b, ETIMEDOUT, true);
        return;
    case BT_IDLE:
        tg__backend_close(b);
        return;
    case BT_RESPONSE: {
        /* The limit is the configured one: re-arming for the remainder must not shrink it. */
        uint64_t now = uv_now(&b->w->loop), lim = c->snap->cfg->timeouts.backend_response_ms;
        if (now - b->last_io_ms < lim) {
            arm(b, BT_RESPONSE, lim - (now - b->last_io_ms));
            return;
        }
        char reason[96];
        snprintf(reason, sizeof(reason), "no response within %" PRIu64 " ms", lim);
        log_failure(c, b, reason, "(timeouts.backend_response)");
        tg__backend_close(b);
        c->bc = NULL;
        if (!c->resp_started) {
            char why[160];
            snprintf(why, sizeof(why), "backend \"%s\": %s", c->backend->name, reason);
            tg__client_backend_failed(c, 504, why);
        } else {
            TG_STAT_INC(&c->w->stats, backend_timeouts);
            tg__client_abort(c, "backend stalled mid-response");
        }
        return;
    }
    default:
        return;
    }
}

/* ---- attach / connect ---- */

static void attach(struct tg_client *c, struct tg_bconn *b)
{
    c->bc = b;
    b->c = c;
    b->got_bytes = false;
    b->reusable = false;
    b->state = TG_B_ACTIVE;
    if (!b->resp_ready) {
        tg_h1_init(&b->resp, HTTP_RESPONSE, c->snap->cfg->limits.max_headers, &resp_cb, b);
        b->resp.pause_on_done = true;
        b->resp_ready = true;
    } else {
        tg_h1_reset(&b->resp);
    }
    b->last_io_ms = uv_now(&b->w->loop);
    arm(b, BT_RESPONSE, c->snap->cfg->timeouts.backend_response_ms);
}

static void on_poll(uv_poll_t *p, int status, int events);

static int connect_target(struct tg_client *c, size_t idx)
{
    const struct tg_target_conf *t = &c->backend->targets[idx];
    c->target_idx = idx;
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tg_log_error("backend %s target %s: cannot create a socket: %s", c->backend->name,
                     t->address, strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, (const struct sockaddr *)&t->addr, t->addr_len);
    int err = rc == 0 ? 0 : errno;
    struct bconn_ext *e = tg_xcalloc(1, sizeof(*e));
    struct tg_bconn *b = &e->b;
    b->w = c->w;
    b->fd = fd;
    b->addr = t->addr;
    b->addr_len = t->addr_len;
    snprintf(b->target, sizeof(b->target), "%s", t->address);
    uv_poll_init(&c->w->loop, &b->poll, fd);
    b->poll.data = b;
    uv_timer_init(&c->w->loop, &b->timer);
    b->timer.data = b;
    b->poll_mask = 0;
    TG_STAT_INC(&c->w->stats, backend_connects);
    if (rc != 0 && err != EINPROGRESS) {
        b->c = c;
        c->bc = b;
        b->state = TG_B_CONNECTING;
        connect_failed(b, err, false);
        return 0; /* connect_failed handled failover or answered */
    }
    b->c = c;
    c->bc = b;
    b->state = TG_B_CONNECTING;
    arm(b, BT_CONNECT, c->snap->cfg->timeouts.backend_connect_ms);
    backend_update(b);
    return 0;
}

void tg__backend_start(struct tg_client *c)
{
    struct tg_proxy_worker *pw = tg_pw(c->w);
    const struct tg_config *cfg = c->snap->cfg;
    size_t bi = (size_t)(c->backend - cfg->backends);
    if (pw->n_rr < cfg->n_backends) {
        pw->rr = tg_xrealloc(pw->rr, cfg->n_backends * sizeof(*pw->rr));
        memset(pw->rr + pw->n_rr, 0, (cfg->n_backends - pw->n_rr) * sizeof(*pw->rr));
        pw->n_rr = cfg->n_backends;
    }
    size_t idx = pw->rr[bi]++ % c->backend->n_targets;
    c->target_idx = idx;
    c->targets_tried = 0;
    const struct tg_target_conf *t = &c->backend->targets[idx];
    for (struct tg_bconn *b = pw->idle; b != NULL; b = b->next) {
        if (!tg_addr_equal(&b->addr, &t->addr))
            continue;
        idle_remove(b);
        b->reused = true;
        TG_STAT_INC(&c->w->stats, backend_reuses);
        attach(c, b); /* poll interest is updated by the flush that follows */
        return;
    }
    connect_target(c, idx);
}

/* ---- I/O ---- */

/* Writes to_backend; returns 0, or -1 after handling a failure (b may be gone). */
static int backend_write(struct tg_bconn *b)
{
    struct tg_client *c = b->c;
    while (tg_buf_used(&c->to_backend) > 0) {
        ssize_t n = send(b->fd, c->to_backend.data + c->to_backend.off, tg_buf_used(&c->to_backend),
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            io_failed(b, strerror(errno), "while sending the request");
            return -1;
        }
        c->to_backend.off += (size_t)n;
        b->last_io_ms = uv_now(&b->w->loop);
    }
    return 0;
}

void tg__backend_flush(struct tg_bconn *b)
{
    if (b->dead || b->state != TG_B_ACTIVE || b->c == NULL)
        return;
    if (backend_write(b) == 0)
        backend_update(b);
}

void tg__backend_resume_read(struct tg_bconn *b)
{
    if (b->dead || b->state != TG_B_ACTIVE || b->c == NULL)
        return;
    backend_read(b);
    if (!b->dead && b->c != NULL)
        backend_update(b);
}

static bool want_read(struct tg_bconn *b)
{
    struct tg_client *c = b->c;
    if (b->state == TG_B_IDLE)
        return true;
    if (b->state != TG_B_ACTIVE || c == NULL || c->resp_done)
        return false;
    return tg__client_out_room(c) > READ_SLACK * 4;
}

static void backend_update(struct tg_bconn *b)
{
    if (b->dead)
        return;
    int mask = 0;
    if (b->state == TG_B_CONNECTING)
        mask = UV_WRITABLE;
    else if (b->state == TG_B_IDLE)
        mask = UV_READABLE;
    else if (b->c != NULL) {
        if (tg_buf_used(&b->c->to_backend) > 0)
            mask |= UV_WRITABLE;
        mask |= tg__poll_readable(want_read(b), &b->r_blocked, b->poll_mask);
    }
    tg__poll_set(&b->poll, &b->poll_mask, mask, on_poll);
}

static void backend_eof(struct tg_bconn *b, int err)
{
    struct tg_client *c = b->c;
    if (err == 0 && b->resp.head_done && !c->resp_done &&
        llhttp_message_needs_eof(&b->resp.parser)) {
        tg_h1_finish(&b->resp); /* close-delimited body: EOF ends it */
        b->reusable = false;
        if (c->resp_done) {
            c->bc = NULL;
            b->c = NULL;
            tg__backend_close(b);
            tg__client_response_progress(c);
            return;
        }
    }
    io_failed(b, err ? strerror(err) : "connection closed by the backend",
              b->resp.head_done ? "while sending the response" : "before responding");
}

static void backend_read(struct tg_bconn *b)
{
    size_t cap = TG_MAX((size_t)16384, (size_t)b->c->snap->cfg->limits.max_header_bytes + 1024);
    while (!b->dead && b->c != NULL && want_read(b)) {
        struct tg_client *c = b->c;
        tg__buf_ensure(b->w, &b->in, cap);
        if (b->in.off == b->in.len)
            b->in.off = b->in.len = 0;
        else if (b->in.off > 0 && b->resp.head_done)
            tg_buf_compact(&b->in);
        size_t room = b->in.cap - b->in.len;
        size_t out_room = tg__client_out_room(c);
        if (b->resp.head_done)
            room = TG_MIN(room, (out_room - READ_SLACK) / 2);
        if (room == 0) {
            if (!b->resp.head_done) {
                io_failed(b, "response head too large", "(limits.max_header_bytes)");
                return;
            }
            break;
        }
        ssize_t n = recv(b->fd, b->in.data + b->in.len, room, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            backend_eof(b, errno);
            return;
        }
        if (n == 0) {
            backend_eof(b, 0);
            return;
        }
        b->in.len += (size_t)n;
        b->got_bytes = true;
        b->last_io_ms = uv_now(&b->w->loop);
        while (!b->dead && b->c != NULL && tg_buf_used(&b->in) > 0 && !c->resp_done) {
            size_t consumed = 0;
            enum tg_h1_result r =
                tg_h1_execute(&b->resp, b->in.data, b->in.off, tg_buf_used(&b->in), &consumed);
            if (b->dead)
                return;
            b->in.off += consumed;
            if (r == TG_H1_ERROR) {
                io_failed(b, b->resp.error ? b->resp.error : "malformed response",
                          "while parsing the response");
                return;
            }
            if (r == TG_H1_PAUSED && !c->resp_done) {
                tg_h1_next(&b->resp); /* a 1xx response; the final one follows */
                continue;
            }
            break;
        }
        if (c->resp_done) {
            if (tg_buf_used(&b->in) > 0)
                b->reusable = false; /* bytes after the response: do not trust it */
            uv_timer_stop(&b->timer);
        }
        tg__client_response_progress(c);
        if (b->dead || b->c != c)
            return;
        if ((size_t)n < room)
            break; /* level-triggered: poll tells us when more arrives */
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct tg_bconn *b = p->data;
    if (b->dead)
        return;
    if (b->state == TG_B_IDLE) {
        tg__backend_close(b); /* closed by the backend, or unsolicited bytes */
        return;
    }
    if (b->c == NULL) {
        tg__backend_close(b);
        return;
    }
    if (b->state == TG_B_CONNECTING) {
        /* libuv reports EPOLLERR as UV_EBADF: the real reason is in SO_ERROR. */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == 0 && status < 0)
            err = ECONNREFUSED;
        if (err != 0) {
            connect_failed(b, err, false);
            return;
        }
        struct tg_client *c = b->c;
        attach(c, b);
        b->reused = false;
        if (backend_write(b) == 0)
            backend_update(b);
        return;
    }
    struct tg_client *c = b->c;
    if (status < 0) {
        /* EPOLLERR (e.g. a reset): libuv has stopped the handle; the reason is in SO_ERROR. */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0)
            err = ECONNRESET;
        b->poll_mask = 0;
        backend_eof(b, err);
        return;
    }
    if (events & UV_WRITABLE) {
        if (backend_write(b) != 0)
            return;
        if (!c->req_done) { /* room was made: take more of the request body */
            tg__client_request_space(c);
            if (b->dead || b->c != c)
                return;
        }
    }
    if (events & UV_READABLE) {
        if (!want_read(b)) {
            b->r_blocked = true;
        } else {
            backend_read(b);
            if (b->dead || b->c != c)
                return;
        }
    }
    backend_update(b);
}

/* ---- response callbacks: re-frame the backend's response for the client ---- */

static int resp_on_head(struct tg_h1_msg *m)
{
    struct tg_bconn *b = m->user;
    struct tg_client *c = b->c;
    llhttp_t *p = &m->parser;
    int status = p->status_code;
    if (status < 200) {
        if (status == 101)
            return -1; /* we never asked for an upgrade */
        if (status == 100 && !c->req_http10)
            tg_buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        return 0;
    }
    bool no_body = c->req_head_only || status == 204 || status == 304;
    bool has_cl = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    c->status = status;
    c->resp_started = true;
    struct tg_buf *o = &c->out;
    char line[128];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    bool ok = tg_buf_append(o, line, (size_t)n) &&
              tg_buf_append(o, m->base + m->reason.off, m->reason.len) &&
              tg_buf_append(o, "\r\n", 2);
    for (size_t i = 0; ok && i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        if (tg_h1_is_hop_by_hop(m, f))
            continue;
        if (!no_body && tg_h1_name_is(m, f, "content-length"))
            continue;
        ok = tg_buf_append(o, m->base + f->name.off, f->name.len) && tg_buf_append(o, ": ", 2) &&
             tg_buf_append(o, m->base + f->value.off, f->value.len) && tg_buf_append(o, "\r\n", 2);
    }
    if (!no_body) {
        if (has_cl) {
            n = snprintf(line, sizeof(line), "Content-Length: %" PRIu64 "\r\n",
                         (uint64_t)p->content_length);
            ok = ok && tg_buf_append(o, line, (size_t)n);
        } else if (c->req_http10) {
            c->close_after = true; /* HTTP/1.0 client: the body ends at close */
        } else {
            c->resp_chunked = true;
            ok = ok && tg_buf_append_str(o, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (c->close_after || !c->req_keepalive || c->w->draining)
        ok = ok && tg_buf_append_str(o, "Connection: close\r\n");
    else if (c->req_http10)
        ok = ok && tg_buf_append_str(o, "Connection: keep-alive\r\n");
    ok = ok && tg_buf_append(o, "\r\n", 2);
    if (!ok) {
        m->error_status = 502;
        m->error = "response head too large";
        return -1;
    }
    return c->req_head_only ? 1 : 0;
}

static int resp_on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct tg_bconn *b = m->user;
    struct tg_client *c = b->c;
    if (c->resp_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        return tg_buf_append(&c->out, hdr, (size_t)n) && tg_buf_append(&c->out, at, len) &&
                       tg_buf_append(&c->out, "\r\n", 2)
                   ? 0
                   : -1;
    }
    return tg_buf_append(&c->out, at, len) ? 0 : -1;
}

static int resp_on_done(struct tg_h1_msg *m)
{
    struct tg_bconn *b = m->user;
    struct tg_client *c = b->c;
    if (m->parser.status_code < 200)
        return 0;
    c->resp_done = true;
    b->reusable = llhttp_should_keep_alive(&m->parser) != 0;
    if (c->resp_chunked)
        return tg_buf_append(&c->out, "0\r\n\r\n", 5) ? 0 : -1;
    return 0;
}
