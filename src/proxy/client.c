/* Client connections: sniff, TLS handshake, HTTP/1.1 request parsing, response streaming,
 * keep-alive. */
#include "proxy/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/log.h"

#define OUT_MIN_CAP (64 * 1024)

static void client_update(struct tg_client *c);
static void client_read(struct tg_client *c);

size_t tg__client_out_room(struct tg_client *c)
{
    tg__buf_ensure(c->w, &c->out, TG_MAX((size_t)OUT_MIN_CAP, tg__client_in_cap(c) + 4096));
    if (c->out.off > 0 && c->out.cap - c->out.len < c->out.cap / 2)
        tg_buf_compact(&c->out);
    return tg_buf_room(&c->out);
}

/* ---- I/O over plain sockets or TLS ---- */

/* Maps a plain recv/send result: bytes, or -EAGAIN (try later), or -errno. */
static ssize_t sys_result(ssize_t r)
{
    if (r >= 0)
        return r;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN : -errno;
}

static ssize_t io_read(struct tg_client *c, char *buf, size_t len)
{
    if (c->ssl == NULL)
        return sys_result(recv(c->fd, buf, len, 0));
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, (int)TG_MIN(len, (size_t)INT32_MAX));
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    c->want_write = (e == SSL_ERROR_WANT_WRITE);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return errno == 0 ? 0 : -errno;
    ERR_clear_error();
    return -EPROTO;
}

static ssize_t io_write(struct tg_client *c, const char *buf, size_t len)
{
    if (c->ssl == NULL)
        return sys_result(send(c->fd, buf, len, MSG_NOSIGNAL));
    ERR_clear_error();
    int r = SSL_write(c->ssl, buf, (int)TG_MIN(len, (size_t)INT32_MAX));
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    ERR_clear_error();
    return -EPIPE;
}

/* ---- lifecycle ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_client *c = h->data;
    if (--c->pending_closes > 0)
        return;
    struct tg_worker *w = c->w;
    close(c->fd);
    SSL_free(c->ssl);
    tg__buf_release(w, &c->in);
    tg__buf_release(w, &c->out);
    tg__buf_release(w, &c->to_backend);
    tg__client_req_release(c);
    tg_snapshot_unref(c->snap);
    free(c);
    tg_worker_conn_done(w);
    struct tg_proxy_worker *pw = tg_pw(w);
    if (w->draining && pw->n_clients == 0)
        tg_worker_drained(w);
}

void tg__client_close(struct tg_client *c)
{
    if (c->dead)
        return;
    c->dead = true;
    struct tg_proxy_worker *pw = tg_pw(c->w);
    if (c->prev)
        c->prev->next = c->next;
    else
        pw->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pw->n_clients--;
    if (c->bc != NULL) {
        struct tg_bconn *b = c->bc;
        c->bc = NULL;
        b->c = NULL;
        tg__backend_close(b);
    }
    if (c->ssl != NULL && c->state == TG_C_HTTP && SSL_is_init_finished(c->ssl)) {
        /* Best effort close_notify; the socket is non-blocking so this never waits. */
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    uv_poll_stop(&c->poll);
    uv_timer_stop(&c->timer);
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->poll, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void tg__client_abort(struct tg_client *c, const char *why)
{
    tg_log_debug("client %s listener=%s: closing: %s", c->peer, c->lc->name, why);
    tg__client_close(c);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t);

static void arm(struct tg_client *c, int kind, uint64_t ms)
{
    c->timer_kind = kind;
    c->deadline_ms = uv_now(&c->w->loop) + ms;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct tg_client *c = t->data;
    uint64_t now = uv_now(&c->w->loop);
    const struct tg_timeouts_conf *to = &tg__cfg(c)->timeouts;
    switch (c->timer_kind) {
    case TG_CT_HANDSHAKE: {
        const struct tg_tls_fail_info *fi = tg_tls_fail_info(TG_TLS_FAIL_TIMEOUT);
        TG_STAT_INC(&c->w->stats, hs_fail[TG_TLS_FAIL_TIMEOUT]);
        tg_log_info("TLS handshake failed: peer=%s listener=%s reason=%s: %s (no handshake "
                    "within %" PRIu64 " ms); to change this, see %s",
                    c->peer, c->lc->name, fi->token, fi->sentence, to->handshake_ms,
                    fi->config_key ? fi->config_key : "timeouts.handshake");
        tg__client_close(c);
        return;
    }
    case TG_CT_IDLE:
        tg__client_close(c);
        return;
    case TG_CT_HEADERS:
        tg_log_info("client %s listener=%s: request headers not received within %" PRIu64
                    " ms (timeouts.request_headers)",
                    c->peer, c->lc->name, to->request_headers_ms);
        c->close_after = true;
        tg__client_local_response(c, 408, "request headers not received in time\n");
        return;
    case TG_CT_PEER:
        if (now - c->last_io_ms < to->idle_ms) {
            arm(c, TG_CT_PEER, to->idle_ms - (now - c->last_io_ms));
            return;
        }
        tg_log_info("client %s listener=%s: no progress for %" PRIu64
                    " ms while %s (timeouts.idle)",
                    c->peer, c->lc->name, to->idle_ms,
                    tg_buf_used(&c->out) > 0 ? "sending the response" : "reading the request");
        tg__client_close(c);
        return;
    default:
        return;
    }
}

/* Chooses the timer for the current state: handshake, keep-alive idle, header deadline, or
 * "waiting on the client" (only while we need its bytes or it must take ours). */
static void client_timer_update(struct tg_client *c)
{
    const struct tg_timeouts_conf *to = &tg__cfg(c)->timeouts;
    if (c->state == TG_C_HANDSHAKE)
        return; /* armed once at accept */
    if (!c->req_active) {
        if (!c->head_started) {
            if (c->timer_kind != TG_CT_IDLE)
                arm(c, TG_CT_IDLE, to->idle_ms);
        } else if (c->timer_kind != TG_CT_HEADERS) {
            arm(c, TG_CT_HEADERS, to->request_headers_ms);
        }
        return;
    }
    bool waiting = tg_buf_used(&c->out) > 0 || (!c->req_done && !c->discard_body);
    if (waiting) {
        if (c->timer_kind != TG_CT_PEER)
            arm(c, TG_CT_PEER, to->idle_ms);
    } else if (c->timer_kind != TG_CT_NONE) {
        c->timer_kind = TG_CT_NONE;
        uv_timer_stop(&c->timer);
    }
}

/* ---- poll ---- */

static void on_poll(uv_poll_t *p, int status, int events);

/* A request's bytes are read until it is complete; the next (pipelined) one waits in the
 * socket until the response is out, so responses keep request order. */
static bool reading_allowed(struct tg_client *c)
{
    return !c->dead && c->state == TG_C_HTTP && !c->req_done;
}

static void client_update(struct tg_client *c)
{
    if (c->dead)
        return;
    int mask = 0;
    if (c->state == TG_C_HTTP) {
        mask |=
            tg__poll_readable(reading_allowed(c) && (c->in.data == NULL || c->in.len < c->in.cap),
                              &c->r_blocked, c->poll_mask);
        if (tg_buf_used(&c->out) > 0 || c->want_write)
            mask |= UV_WRITABLE;
        client_timer_update(c);
    }
    tg__poll_set(&c->poll, &c->poll_mask, mask, on_poll);
}

/* ---- handshake ---- */

static void hs_failed(struct tg_client *c, enum tg_tls_fail f)
{
    const struct tg_tls_fail_info *fi = tg_tls_fail_info(f);
    char detail[256] = "";
    if (c->ssl != NULL)
        tg_tls_fail_detail(c->ssl, f, detail, sizeof(detail));
    if (strcmp(detail, fi->sentence) == 0)
        detail[0] = '\0';
    TG_STAT_INC(&c->w->stats, hs_fail[f]);
    tg_log(fi->client_caused ? TG_LOG_INFO : TG_LOG_ERROR,
           "TLS handshake failed: peer=%s listener=%s reason=%s: %s%s%s%s%s%s", c->peer,
           c->lc->name, fi->token, fi->sentence, detail[0] ? " (" : "", detail,
           detail[0] ? ")" : "", fi->config_key ? "; to change this, see " : "",
           fi->config_key ? fi->config_key : "");
    tg__client_close(c);
}

static void answer_plain_http(struct tg_client *c)
{
    static const char body[] = "This port speaks TLS: use https:// to reach it.\n";
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    ssize_t r = send(c->fd, resp, (size_t)n, MSG_NOSIGNAL);
    (void)r;
}

static void tls_established(struct tg_client *c)
{
    c->state = TG_C_HTTP;
    TG_STAT_INC(&c->w->stats, handshakes);
    if (c->ssl != NULL && SSL_session_reused(c->ssl))
        TG_STAT_INC(&c->w->stats, resumed);
    if (c->ssl != NULL)
        tg_log_debug("client %s listener=%s: TLS established %s %s sni=%s", c->peer, c->lc->name,
                     SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
                     SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name)
                         ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name)
                         : "-");
    c->timer_kind = TG_CT_NONE;
    uv_timer_stop(&c->timer);
    c->poll_mask = -1;
    client_read(c); /* the client's first request may already be buffered in OpenSSL */
    if (!c->dead)
        client_update(c);
}

static void do_handshake(struct tg_client *c)
{
    if (!c->sniffed) {
        uint8_t peek[8];
        ssize_t n = recv(c->fd, peek, sizeof(peek), MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            hs_failed(c, TG_TLS_FAIL_HANGUP);
            return;
        }
        enum tg_tls_sniff s = tg_tls_sniff(peek, (size_t)n);
        if (s == TG_SNIFF_NEED_MORE) /* decide on the first byte: never spin on a short peek */
            s = peek[0] == 0x16                      ? TG_SNIFF_TLS
                : (peek[0] >= 'A' && peek[0] <= 'Z') ? TG_SNIFF_HTTP
                : (peek[0] & 0x80)                   ? TG_SNIFF_SSLV2
                                                     : TG_SNIFF_OTHER;
        if (s == TG_SNIFF_HTTP) {
            answer_plain_http(c);
            hs_failed(c, TG_TLS_FAIL_PLAIN_HTTP);
            return;
        }
        if (s == TG_SNIFF_SSLV2) {
            hs_failed(c, TG_TLS_FAIL_SSLV2);
            return;
        }
        if (s == TG_SNIFF_OTHER) {
            hs_failed(c, TG_TLS_FAIL_NOT_TLS);
            return;
        }
        c->sniffed = true;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        tls_established(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        tg__poll_set(&c->poll, &c->poll_mask, UV_READABLE, on_poll);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        tg__poll_set(&c->poll, &c->poll_mask, UV_WRITABLE, on_poll);
        return;
    }
    hs_failed(c, tg_tls_classify(c->ssl, e, errno));
}

static void response_finished(struct tg_client *c)
{
    tg__client_log_access(c);
    bool keep = c->req_keepalive && c->req_done && !c->close_after && !c->w->draining;
    if (c->bc != NULL) {
        struct tg_bconn *b = c->bc;
        c->bc = NULL;
        b->c = NULL;
        tg__backend_release(b, b->reusable && c->req_done);
    }
    if (!keep) {
        tg__client_close(c);
        return;
    }
    c->head_started = c->req_active = c->req_done = false;
    c->resp_started = c->resp_done = c->resp_chunked = c->local = c->discard_body = false;
    c->retried = false;
    c->backend = NULL;
    c->status = 0;
    c->bytes_out = 0;
    c->targets_tried = 0;
    c->to_backend.off = c->to_backend.len = 0;
    tg__buf_release_if_empty(c->w, &c->to_backend);
    tg__buf_release_if_empty(c->w, &c->out);
    if (tg_buf_used(&c->in) > 0)
        tg_h1_next(&c->rq->msg); /* a pipelined request follows: keep the parser going */
    else
        tg__client_req_release(c);
    tg_buf_compact(&c->in);
    tg__buf_release_if_empty(c->w, &c->in);
    c->timer_kind = TG_CT_NONE;
    if (c->in.data != NULL && tg_buf_used(&c->in) > 0)
        tg__client_process(c); /* a pipelined request is already here */
    if (!c->dead && c->ssl != NULL && SSL_has_pending(c->ssl))
        client_read(c); /* OpenSSL holds bytes of a pipelined request */
    if (!c->dead)
        client_update(c);
}

void tg__client_flush(struct tg_client *c)
{
    while (!c->dead && tg_buf_used(&c->out) > 0) {
        ssize_t n = io_write(c, c->out.data + c->out.off, tg_buf_used(&c->out));
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            tg__client_abort(c, "write to client failed");
            return;
        }
        c->out.off += (size_t)n;
        c->bytes_out += (uint64_t)n;
        c->last_io_ms = uv_now(&c->w->loop);
    }
    if (c->dead)
        return;
    if (tg_buf_used(&c->out) == 0) {
        c->out.off = c->out.len = 0;
        if (c->resp_done && (c->req_done || c->close_after)) {
            response_finished(c);
            if (c->dead)
                return;
        } else if (c->bc != NULL) {
            tg__backend_resume_read(c->bc);
            if (c->dead)
                return;
        }
    } else if (c->bc != NULL && !c->resp_done) {
        tg__backend_resume_read(c->bc);
        if (c->dead)
            return;
    }
    client_update(c);
}

void tg__client_response_progress(struct tg_client *c)
{
    tg__client_flush(c);
}

void tg__client_request_space(struct tg_client *c)
{
    tg__client_process(c);
    if (!c->dead) {
        client_read(c);
        if (!c->dead)
            client_update(c);
    }
}

static void client_read(struct tg_client *c)
{
    while (!c->dead && reading_allowed(c)) {
        tg__buf_ensure(c->w, &c->in, tg__client_in_cap(c));
        /* While a head is incomplete its spans point into c->in: never move those bytes. */
        if (!c->head_started || c->rq->msg.head_done) {
            if (c->in.off == c->in.len)
                c->in.off = c->in.len = 0;
            else if (c->in.off > 0)
                tg_buf_compact(&c->in);
        }
        size_t room = c->in.cap - c->in.len;
        if (room == 0)
            break;
        ssize_t n = io_read(c, c->in.data + c->in.len, room);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            if (c->req_active && !c->resp_done)
                tg__client_abort(c, "client closed the connection mid-request");
            else
                tg__client_close(c);
            return;
        }
        c->in.len += (size_t)n;
        c->last_io_ms = uv_now(&c->w->loop);
        tg__client_process(c);
        /* Level-triggered polling reports what is left in the socket; only bytes OpenSSL
         * already holds (or a read that filled our buffer) need another read now. */
        if ((size_t)n < room && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
            break;
    }
    if (!c->dead && c->in.data != NULL && c->in.len == 0 && !c->head_started)
        tg__buf_release_if_empty(c->w, &c->in);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct tg_client *c = p->data;
    if (c->dead)
        return;
    if (c->state == TG_C_HANDSHAKE) {
        do_handshake(c);
        return;
    }
    if (status < 0) {
        tg__client_abort(c, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        if (c->want_write) {
            c->want_write = false;
            client_read(c);
        }
        if (!c->dead)
            tg__client_flush(c);
    }
    if (!c->dead && (events & UV_READABLE)) {
        if (reading_allowed(c) && (c->in.data == NULL || c->in.len < c->in.cap))
            client_read(c);
        else
            c->r_blocked = true;
    }
    if (!c->dead)
        client_update(c);
}

/* ---- accept and drain (net handler) ---- */

static void proxy_on_accept(struct tg_worker *w, size_t lidx, int fd,
                            const struct sockaddr_storage *peer, socklen_t plen)
{
    struct tg_client *c = tg_xcalloc(1, sizeof(*c));
    struct tg_proxy_worker *pw = tg_pw(w);
    c->w = w;
    c->snap = tg_snapshot_ref(w->snap);
    c->lc = &c->snap->cfg->listeners[lidx];
    c->fd = fd;
    tg_addr_format(peer, c->peer, sizeof(c->peer));
    c->accepted_ms = c->last_io_ms = uv_now(&w->loop);
    uv_poll_init(&w->loop, &c->poll, fd);
    c->poll.data = c;
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->next = pw->clients;
    if (pw->clients)
        pw->clients->prev = c;
    pw->clients = c;
    pw->n_clients++;
    if (c->snap->tls[lidx] != NULL) {
        c->ssl = SSL_new(tg_tls_server_ctx(c->snap->tls[lidx]));
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
            ERR_clear_error();
            tg_log_error("client %s listener=%s: cannot create a TLS session", c->peer,
                         c->lc->name);
            tg__client_close(c);
            return;
        }
        SSL_set_accept_state(c->ssl);
        /* One read() fills OpenSSL's buffer with every record available instead of two reads
         * (header, body) per record; SSL_has_pending() tells us when to read again. */
        SSL_set_read_ahead(c->ssl, 1);
        /* c->out is appended to and compacted between write retries. */
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        c->state = TG_C_HANDSHAKE;
        arm(c, TG_CT_HANDSHAKE, c->snap->cfg->timeouts.handshake_ms);
        tg__poll_set(&c->poll, &c->poll_mask, UV_READABLE, on_poll);
    } else {
        c->state = TG_C_HTTP;
        c->poll_mask = -1;
        client_update(c);
    }
    (void)plen;
}

static void proxy_worker_init(struct tg_worker *w)
{
    w->proto = tg_xcalloc(1, sizeof(struct tg_proxy_worker));
}

static void proxy_on_drain(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    tg__backend_close_idle(w);
    for (struct tg_client *c = pw->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == TG_C_HANDSHAKE || !c->head_started)
            tg__client_close(c); /* idle: nothing in flight */
        else
            c->close_after = true; /* finish this request, then close */
    }
    if (pw->n_clients == 0)
        tg_worker_drained(w);
}

static void proxy_on_drain_timeout(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    for (struct tg_client *c = pw->clients, *next; c != NULL; c = next) {
        next = c->next;
        tg__client_close(c);
    }
    tg__backend_close_idle(w);
    if (pw->n_clients == 0)
        tg_worker_drained(w);
}

static void proxy_worker_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    tg__req_cache_free(w);
    for (size_t i = 0; i < TG_BUFCACHE_CLASSES; i++)
        for (size_t j = 0; j < pw->cache[i].n; j++)
            free(pw->cache[i].blocks[j]);
    free(pw->rr);
    free(pw);
    w->proto = NULL;
}

const struct tg_net_handler tg_proxy_handler = {
    .worker_init = proxy_worker_init,
    .on_accept = proxy_on_accept,
    .on_drain = proxy_on_drain,
    .on_drain_timeout = proxy_on_drain_timeout,
    .worker_free = proxy_worker_free,
};
