/* The connection engine: transports, the dispatcher driven by uv_poll, and teardown. */
#include "net/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/core.h"
#include "net/internal.h"
#include "net/net.h"

/* ---- transports ---- */

/* Empties the thread's OpenSSL error queue before a TLS call (SSL_get_error needs it empty).
 * ERR_clear_error walks all 16 slots of the queue (callgrind: 837 instructions, two per kept-alive
 * request); the queue is almost always empty already, which ERR_peek_error sees for far less. */
static inline void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Maps a plain recv/send result: bytes, or -EAGAIN (try later), or -errno. */
static ssize_t sys_result(ssize_t r)
{
    if (r >= 0)
        return r;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN : -errno;
}

static int plain_handshake(struct tg_conn *c)
{
    (void)c;
    return 0;
}

static ssize_t plain_read(struct tg_conn *c, char *buf, size_t len)
{
    return sys_result(recv(c->fd, buf, len, 0));
}

static ssize_t plain_write(struct tg_conn *c, const char *buf, size_t len)
{
    return sys_result(send(c->fd, buf, len, MSG_NOSIGNAL));
}

static void plain_shutdown(struct tg_conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

static bool plain_pending(const struct tg_conn *c)
{
    (void)c;
    return false;
}

const struct tg_transport tg_transport_plain = {
    .name = "plain",
    .handshake = plain_handshake,
    .read = plain_read,
    .write = plain_write,
    .shutdown = plain_shutdown,
    .pending = plain_pending,
};

static int tls_step(struct tg_conn *c)
{
    clear_errors();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 0;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        c->hs_want = UV_READABLE;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->hs_want = UV_WRITABLE;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_WANT_RETRY_VERIFY || e == SSL_ERROR_WANT_ASYNC) {
        /* Verification paused (SSL_set_retry_verify, or an async job paused inside
         * verification) for an off-loop check: no socket interest until its owner calls
         * tg_conn_handshake_resume. */
        c->hs_want = 0;
        return -EAGAIN;
    }
    c->ssl_error = e;
    return errno ? -errno : -EPROTO;
}

/* A test build's injected fault (core/fault.c): the step fails as OpenSSL fails an internal
 * error (SSLfatal with ERR_R_INTERNAL_ERROR), and the caller classifies it as it would that. */
static int tls_fault(struct tg_conn *c, const char *site)
{
    if (!tg_fault(site))
        return 0;
    clear_errors();
    ERR_raise(ERR_LIB_SSL, ERR_R_INTERNAL_ERROR);
    errno = 0;
    c->ssl_error = SSL_ERROR_SSL;
    return -EPROTO;
}

/* Keeps the prefix filter of the first read in step with OpenSSL after a TLS call (rc is that
 * call's result): out of the chain once taken, else copied out of the caller's buffer. */
static int prefix_settle(struct tg_conn *c, int rc)
{
    int held = tg_net__prefix_settle(c->ssl);
    if (held < 0)
        return rc == 0 || rc == -EAGAIN ? -ENOMEM : rc;
    c->prefix_held = held > 0;
    return rc;
}

/* The first bytes decide before OpenSSL sees them: plain HTTP, an SSLv2 hello or other bytes get
 * a precise refusal instead of OpenSSL's generic "wrong version number". They are read once, by
 * us, and handed to OpenSSL in front of the socket (no MSG_PEEK and second read). */
static int tls_server_handshake(struct tg_conn *c)
{
    char first[17 * 1024]; /* the first read: a whole TLS record and its header */
    if (!c->sniffed) {
        ssize_t n = recv(c->fd, first, sizeof(first), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            c->hs_want = UV_READABLE;
            return -EAGAIN;
        }
        if (n <= 0) { /* gone before sending a byte: TG_SNIFF_NEED_MORE says "hang-up" */
            c->sniff = TG_SNIFF_NEED_MORE;
            return -ENOTSUP;
        }
        const uint8_t *peek = (const uint8_t *)first;
        enum tg_tls_sniff s = tg_tls_sniff(peek, (size_t)TG_MIN(n, 8));
        if (s == TG_SNIFF_NEED_MORE) /* decide on the first byte: never wait for more */
            s = peek[0] == 0x16                      ? TG_SNIFF_TLS
                : (peek[0] >= 'A' && peek[0] <= 'Z') ? TG_SNIFF_HTTP
                : (peek[0] & 0x80)                   ? TG_SNIFF_SSLV2
                                                     : TG_SNIFF_OTHER;
        if (s != TG_SNIFF_TLS) {
            c->sniff = (uint8_t)s;
            /* after the 2-byte length and the message type: the refusal's alert carries it */
            c->v2_minor = n >= 5 && peek[3] == 0x03 ? peek[4] : 0xff;
            return -ENOTSUP;
        }
        c->sniffed = true;
        if (!tg_net__prefix_push(c->ssl, first, (size_t)n))
            return -ENOMEM;
        c->prefix_held = true; /* settled after the first TLS call below */
    }
    int f = tls_fault(c, "tls_accept");
    int rc;
    if (f)
        rc = f;
    else if (!c->early_ok || c->early_fin || (rc = tg_net__early_step(c)) == 1)
        rc = tls_step(c);
    return c->prefix_held ? prefix_settle(c, rc) : rc;
}

static int tls_client_handshake(struct tg_conn *c)
{
    int f = tls_fault(c, "tls_connect");
    return f ? f : tls_step(c);
}

static ssize_t tls_read(struct tg_conn *c, char *buf, size_t len)
{
    clear_errors();
    int r = SSL_read(c->ssl, buf, (int)TG_MIN(len, (size_t)INT32_MAX));
    if (c->prefix_held && prefix_settle(c, 0) != 0)
        return -ENOMEM;
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    c->want_write = (e == SSL_ERROR_WANT_WRITE);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    c->ssl_error = e;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return errno == 0 ? 0 : -errno;
    /* The error queue stays for the owner to classify (a TLS 1.3 backend refusing our
     * certificate says so here); the next TLS call clears it. */
    c->ssl_error = e;
    return -EPROTO;
}

static ssize_t tls_write(struct tg_conn *c, const char *buf, size_t len)
{
    clear_errors();
    if (c->early)
        return tg_net__early_send(c, buf, len);
    int r = SSL_write(c->ssl, buf, (int)TG_MIN(len, (size_t)INT32_MAX));
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    c->ssl_error = e;
    return e == SSL_ERROR_SSL ? -EPROTO : -EPIPE;
}

static void tls_shutdown(struct tg_conn *c)
{
    /* close_notify is TLS's half-close; then the TCP write side follows it. */
    clear_errors();
    SSL_shutdown(c->ssl);
    clear_errors();
    shutdown(c->fd, SHUT_WR);
}

static bool tls_pending(const struct tg_conn *c)
{
    return SSL_has_pending(c->ssl) || c->prefix_held ||
           (c->early_in != NULL && tg_buf_used(c->early_in) > 0);
}

const struct tg_transport tg_transport_tls_server = {
    .name = "tls",
    .handshake = tls_server_handshake,
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .pending = tls_pending,
};

const struct tg_transport tg_transport_tls_client = {
    .name = "tls-client",
    .handshake = tls_client_handshake,
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .pending = tls_pending,
};

/* ---- the dispatcher ---- */

bool tg_conn_has_input(const struct tg_conn *c)
{
    if (c->rd_eof || tg_buf_used(&c->in) > 0 || c->tp->pending(c))
        return true;
    if (c->rd_quiet)
        return false;
    char byte;
    ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void on_poll(uv_poll_t *p, int status, int events);

static void poll_set(struct tg_conn *c, int mask)
{
    if (mask == c->poll_mask)
        return;
    if (!(mask & UV_READABLE))
        c->rd_quiet = false; /* bytes may come unreported */
    c->poll_mask = mask;
    if (mask)
        uv_poll_start(c->poll, mask, on_poll);
    else
        uv_poll_stop(c->poll);
}

void tg_conn_update(struct tg_conn *c)
{
    if (c->state == TG_CONN_CLOSED)
        return;
    int mask = 0;
    switch (c->state) {
    case TG_CONN_CONNECTING:
        mask = UV_WRITABLE;
        break;
    case TG_CONN_HANDSHAKE:
        mask = c->hs_want ? c->hs_want : UV_READABLE;
        break;
    case TG_CONN_OPEN:
        /* Readable interest is dropped lazily, only after an event we could not take, so a
         * request/response cycle costs no epoll_ctl. */
        if (!c->rd_eof && c->h->want_read(c))
            c->r_blocked = false, mask |= UV_READABLE;
        else if (!c->r_blocked && c->poll_mask > 0 && (c->poll_mask & UV_READABLE) && !c->rd_eof)
            mask |= UV_READABLE;
        if (((c->out != NULL && tg_buf_used(c->out) > 0) && !(c->early && c->early_fin)) ||
            c->want_write || tg_net__early_wpending(c))
            mask |= UV_WRITABLE;
        if (c->early) /* the client's Finished must be read whatever the owner wants */
            mask |= UV_READABLE;
        break;
    default:
        return;
    }
    poll_set(c, mask);
}

static void release_handles(struct tg_conn *c);

void tg_net__conn_timer_fired(struct tg_conn *c)
{
    if (c->state == TG_CONN_CLOSED) {
        if (c->linger)
            release_handles(c); /* the drain after a refusal ran out of time */
        return;
    }
    if (c->h->on_timer != NULL)
        c->h->on_timer(c);
}

void tg_conn_timer(struct tg_conn *c, uint64_t ms)
{
    if (c->state == TG_CONN_CLOSED)
        return;
    tg_net__timer_set(c, ms);
}

void tg_conn_init(struct tg_conn *c, struct tg_worker *w, int fd, SSL *ssl,
                  const struct tg_transport *tp, const struct tg_conn_handler *h, void *owner,
                  bool connecting)
{
    c->w = w;
    c->fd = fd;
    c->ssl = ssl;
    c->tp = tp;
    c->h = h;
    c->owner = owner;
    c->out = &c->own_out;
    c->poll_mask = 0;
    c->rd_quiet = false;
    c->last_io_ms = uv_now(&w->loop);
    c->state = connecting ? TG_CONN_CONNECTING : ssl != NULL ? TG_CONN_HANDSHAKE : TG_CONN_OPEN;
    c->tls.hello = NULL;
    if (ssl != NULL && SSL_set_fd(ssl, fd) == 1)
        tg_tls_link_set(ssl, &c->tls);
    c->poll = tg_net__poll_get(w, fd);
    c->poll_kept = false;
    c->poll->data = c;
    c->t_idx = 0;
}

struct tg_conn *tg_conn_of_ssl(SSL *ssl)
{
    struct tg_tls_link *l = tg_tls_link_of(ssl);
    return l != NULL ? (struct tg_conn *)(void *)((char *)l - offsetof(struct tg_conn, tls)) : NULL;
}

void tg_conn_start(struct tg_conn *c)
{
    if (c->state == TG_CONN_OPEN)
        c->poll_mask = -1; /* "no interest decided yet": the first update sets it */
    tg_conn_update(c);
}

int tg_conn_connect(struct tg_conn *c, struct tg_worker *w, const struct sockaddr *addr,
                    socklen_t addr_len, SSL *ssl, const struct tg_transport *tp,
                    const struct tg_conn_handler *h, void *owner)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, addr, addr_len) != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        return -err;
    }
    tg_conn_init(c, w, fd, ssl, tp, h, owner, true);
    tg_conn_start(c);
    return 0;
}

static void fail(struct tg_conn *c, enum tg_conn_fail why, int err)
{
    /* A server handshake that OpenSSL ended with a fatal alert: the client may still be sending
     * (the rest of a large Certificate message, early data). Closing with its bytes unread would
     * reset the connection, and the reset can destroy the alert before the client reads it. */
    c->linger = why == TG_CONN_FAIL_HANDSHAKE && c->ssl != NULL && SSL_is_server(c->ssl) &&
                c->ssl_error == SSL_ERROR_SSL;
    c->h->on_fail(c, why, err);
    tg_conn_close(c);
}

static void opened(struct tg_conn *c)
{
    c->state = TG_CONN_OPEN;
    /* The handshake's interest says nothing about the owner's, but a readable interest the
     * socket already has is kept as the lazy rule of tg_conn_update keeps it: dropping it now
     * would cost an epoll_ctl per connection (and uv_close another) for nothing. */
    if (c->poll_mask != UV_READABLE)
        c->poll_mask = -1;
    c->last_io_ms = uv_now(&c->w->loop);
    c->h->on_open(c);
    if (c->state == TG_CONN_OPEN)
        tg_conn_update(c);
}

static void handshake(struct tg_conn *c)
{
    int rc = c->tp->handshake(c);
    if (rc == -EAGAIN) {
        poll_set(c, c->hs_want);
        return;
    }
    if (rc != 0) {
        fail(c, rc == -ENOTSUP ? TG_CONN_FAIL_SNIFF : TG_CONN_FAIL_HANDSHAKE, -rc);
        return;
    }
    opened(c);
}

void tg_conn_handshake_resume(struct tg_conn *c)
{
    if (c->state == TG_CONN_HANDSHAKE)
        handshake(c);
}

/* Early data the handshake step kept, then early data, then the transport. */
static ssize_t conn_recv(struct tg_conn *c, char *buf, size_t len)
{
    struct tg_buf *e = c->early_in;
    size_t have = e != NULL ? tg_buf_used(e) : 0;
    if (have > 0) {
        size_t n = TG_MIN(have, len);
        memcpy(buf, e->data + e->off, n);
        e->off += n;
        if (e->off == e->len)
            tg_net__early_in_free(c);
        return (ssize_t)n;
    }
    return c->early ? tg_net__early_recv(c, buf, len) : c->tp->read(c, buf, len);
}

/* Readable interest is set: a poll reports what arrives from now on. */
static bool readable_armed(const struct tg_conn *c)
{
    return c->poll_mask > 0 && (c->poll_mask & UV_READABLE);
}

void tg_conn_read(struct tg_conn *c)
{
    while (c->state == TG_CONN_OPEN && !c->rd_eof) {
        size_t room = c->h->read_room(c);
        if (room == 0 || c->state != TG_CONN_OPEN)
            break;
        ssize_t n = conn_recv(c, c->in.data + c->in.len, room);
        if (n == -EAGAIN && c->confirmed) {
            tg_net__early_confirm(c);
            continue; /* bytes after the Finished may be in OpenSSL already */
        }
        if (n == -EAGAIN) {
            c->rd_quiet = readable_armed(c) && !c->want_write && !c->early;
            break;
        }
        c->rd_quiet = false;
        if (n < 0) {
            c->h->on_error(c, (int)n, false);
            tg_conn_close(c);
            return;
        }
        if (n == 0) {
            c->rd_eof = true;
            c->h->on_read(c);
            return;
        }
        c->in.len += (size_t)n;
        c->bytes_read += (uint64_t)n;
        c->last_io_ms = uv_now(&c->w->loop);
        c->h->on_read(c);
        /* Level-triggered polling reports what is left in the socket; only bytes the transport
         * already holds (or a read that filled the room) need another read now. */
        if ((size_t)n < room && !c->tp->pending(c)) {
            /* a plain recv short of the room emptied the socket; OpenSSL's may not have */
            c->rd_quiet = readable_armed(c) && c->tp == &tg_transport_plain;
            break;
        }
    }
    if (c->state == TG_CONN_OPEN && c->h->after_read != NULL)
        c->h->after_read(c);
}

void tg_conn_flush(struct tg_conn *c)
{
    struct tg_buf *o = c->out;
    bool wrote = false;
    if (tg_net__early_wpending(c))
        BIO_flush(SSL_get_wbio(c->ssl));
    while (c->state == TG_CONN_OPEN && o != NULL && tg_buf_used(o) > 0) {
        ssize_t n = c->tp->write(c, o->data + o->off, tg_buf_used(o));
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            c->h->on_error(c, n < 0 ? (int)n : -EPIPE, true);
            tg_conn_close(c);
            return;
        }
        o->off += (size_t)n;
        wrote = true;
        c->bytes_written += (uint64_t)n;
        c->last_io_ms = uv_now(&c->w->loop);
    }
    if (c->state != TG_CONN_OPEN)
        return;
    bool empty = o == NULL || tg_buf_used(o) == 0;
    /* An empty output keeps its bytes (off == len): a request head may be sent again on a new
     * connection; the next append starts over at the front (tg_buf_room). */
    if (empty && o != NULL) {
        if (c->shut_pending && !c->wr_shut) {
            c->wr_shut = true;
            c->tp->shutdown(c);
        }
    }
    if ((wrote || empty) && c->h->on_drain != NULL) {
        c->h->on_drain(c);
        if (c->state != TG_CONN_OPEN)
            return;
    }
    tg_conn_update(c);
}

void tg_conn_shutdown(struct tg_conn *c)
{
    if (c->state != TG_CONN_OPEN || c->wr_shut)
        return;
    c->shut_pending = true;
    if (c->out == NULL || tg_buf_used(c->out) == 0) {
        c->wr_shut = true;
        c->tp->shutdown(c);
    }
}

static int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    return err;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct tg_conn *c = p->data;
    switch (c->state) {
    case TG_CONN_CONNECTING: {
        /* libuv reports EPOLLERR as an error status: the real reason is in SO_ERROR. */
        int err = sock_error(c->fd);
        if (err == 0 && status < 0)
            err = ECONNREFUSED;
        if (err != 0) {
            fail(c, TG_CONN_FAIL_CONNECT, err);
            return;
        }
        if (c->ssl != NULL) {
            c->state = TG_CONN_HANDSHAKE;
            handshake(c);
        } else {
            opened(c);
        }
        return;
    }
    case TG_CONN_HANDSHAKE:
        handshake(c);
        return;
    case TG_CONN_OPEN:
        break;
    default:
        return;
    }
    if (status < 0 || (events & UV_READABLE))
        c->rd_quiet = false; /* news in the socket: a read below may see it empty again */
    if (status < 0) {
        /* EPOLLERR (e.g. a reset): libuv has stopped the handle; the reason is in SO_ERROR. What
         * the peer sent before it reset is still in the socket and is read first (a whole
         * response, then a reset, is a whole response): the read ends with the error itself. */
        c->poll_mask = 0;
        if (!c->rd_eof && c->h->want_read(c)) {
            tg_conn_read(c);
            if (c->state != TG_CONN_OPEN)
                return;
        }
        int err = sock_error(c->fd);
        c->h->on_error(c, -(err ? err : ECONNRESET), false);
        tg_conn_close(c);
        return;
    }
    if (events & UV_WRITABLE) {
        if (c->want_write) {
            c->want_write = false;
            tg_conn_read(c);
            if (c->state == TG_CONN_OPEN && c->early && !c->h->want_read(c))
                tg_net__early_advance(c);
        }
        if (c->state == TG_CONN_OPEN)
            tg_conn_flush(c);
    }
    if (c->state == TG_CONN_OPEN && (events & UV_READABLE)) {
        if (!c->rd_eof && c->h->want_read(c))
            tg_conn_read(c);
        else if (c->early)
            tg_net__early_advance(c);
        else
            c->r_blocked = true;
    }
    if (c->state == TG_CONN_OPEN)
        tg_conn_update(c);
}

/* ---- teardown ---- */

/* The connection's handle is closed or stopped: the socket goes, the owner is told. */
void tg_net__conn_finish_close(struct tg_conn *c)
{
    close(c->fd);
    if (c->poll_kept)
        tg_net__poll_put(c->w, c->poll, c->fd);
    else
        free(c->poll);
    c->poll = NULL;
    tg_tls_link_clear(&c->tls);
    SSL_free(c->ssl);
    c->ssl = NULL;
    tg_conn_buf_put(c->w, &c->in);
    tg_conn_buf_put(c->w, &c->own_out);
    tg_net__early_in_free(c);
    c->h->on_closed(c);
}

#define LINGER_MS    500        /* as openssl s_server: time for an extreme round trip */
#define LINGER_BYTES (1u << 20) /* never read more than this for a client we refused */

static void on_handle_closed(uv_handle_t *hd)
{
    struct tg_conn *c = hd->data;
    if (--c->pending_closes > 0)
        return;
    tg_net__conn_finish_close(c);
}

static void release_handles(struct tg_conn *c)
{
    if (c->t_idx != 0)
        tg_net__timer_set(c, 0);
    /* The poll handle is stopped (one epoll_ctl DEL, as uv_close would) and kept for the next
     * socket that gets this descriptor number, once the socket is closed (the worker's deferred
     * closes, net/conncache.c, end it on the loop's next turn as uv_close's callback would);
     * closed when the cache is full. */
    c->poll_kept = tg_net__poll_keepable(c->w, c->fd);
    if (c->poll_kept) {
        uv_poll_stop(c->poll);
        tg_net__close_later(c);
    } else {
        c->pending_closes = 1;
        uv_close((uv_handle_t *)c->poll, on_handle_closed);
    }
}

/* Reads and drops what the client still sends, until it ends (or resets) or the limits pass. */
static void on_linger_poll(uv_poll_t *p, int status, int events)
{
    struct tg_conn *c = p->data;
    char sink[16384];
    (void)events;
    for (;;) {
        ssize_t n = status < 0 ? -1 : recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            c->lingered += (uint32_t)n;
            if (c->lingered < LINGER_BYTES)
                continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        release_handles(c);
        return;
    }
}

void tg_conn_close(struct tg_conn *c)
{
    if (c->state == TG_CONN_CLOSED)
        return;
    if (c->linger) {
        /* Our side is done (the alert is in the socket): FIN after it, then drain briefly. */
        c->state = TG_CONN_CLOSED;
        shutdown(c->fd, SHUT_WR);
        uv_poll_start(c->poll, UV_READABLE, on_linger_poll);
        tg_net__timer_set(c, LINGER_MS);
        return;
    }
    if (c->ssl != NULL && c->state == TG_CONN_OPEN && !c->wr_shut) {
        /* Best-effort close_notify; the socket is non-blocking so this never waits. */
        clear_errors();
        SSL_shutdown(c->ssl);
        clear_errors();
    }
    c->state = TG_CONN_CLOSED;
    release_handles(c);
}

void tg_conn_abort(struct tg_conn *c)
{
    if (c->state == TG_CONN_OPEN && !c->linger) {
        /* What is queued goes first (best effort, no callbacks), then the end that says cut. */
        struct tg_buf *o = c->out;
        while (!c->wr_shut && o != NULL && tg_buf_used(o) > 0) {
            ssize_t n = c->tp->write(c, o->data + o->off, tg_buf_used(o));
            if (n <= 0)
                break;
            o->off += (size_t)n;
            c->bytes_written += (uint64_t)n;
        }
        c->wr_shut = true; /* nothing more goes out: no close_notify */
        if (c->ssl == NULL) {
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
    }
    tg_conn_close(c);
}
