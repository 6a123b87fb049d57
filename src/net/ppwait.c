/* Client connections on proxy_protocol listeners wait here for their PROXY header (read
 * without taking a byte past it) before the protocol handler sees them, with the address the
 * header names as their peer. */
#include "net/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

struct tg_ppwait {
    struct tg_worker *w;
    struct tg_snapshot *snap; /* the one the connection was accepted under */
    size_t lidx;
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    size_t have;          /* header bytes taken off the socket so far */
    uint64_t accepted_ms; /* the loop time of the accept: the handshake's deadline counts from it */
    uint8_t buf[TG_PPIN_MAX];
    struct tg_ppwait *prev, *next;
};

static void handle_closed(uv_handle_t *h)
{
    struct tg_ppwait *p = h->data;
    if (--p->open_handles == 0) {
        tg_snapshot_unref(p->snap);
        free(p);
    }
}

/* Unlinks p and closes its handles (never the socket: the caller closes or hands it on). */
static void release(struct tg_ppwait *p)
{
    struct tg_worker *w = p->w;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        w->ppwaits = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    uv_close((uv_handle_t *)&p->poll, handle_closed);
    uv_close((uv_handle_t *)&p->timer, handle_closed);
}

static void fail(struct tg_ppwait *p, enum tg_ppin_fail f)
{
    char peer[64];
    tg_addr_format(&p->peer, peer, sizeof(peer));
    TG_STAT_INC(&p->w->stats, ppin_fail[f]);
    tg_log_info("connection refused: peer=%s listener=%s reason=%s: %s (while reading the PROXY "
                "protocol header)",
                peer, p->snap->cfg->listeners[p->lidx].name, tg_ppin_fail_token(f),
                tg_ppin_fail_sentence(f));
    release(p);
    close(p->fd);
    tg_worker_conn_done(p->w, 0);
}

/* The listener of the worker's current snapshot with the same address (a reload may have moved
 * or removed it), or SIZE_MAX. */
static size_t current_listener(const struct tg_ppwait *p)
{
    const struct tg_config *now = p->w->snap->cfg;
    if (p->w->snap == p->snap)
        return p->lidx;
    const struct tg_listener_conf *was = &p->snap->cfg->listeners[p->lidx];
    for (size_t i = 0; i < now->n_listeners; i++)
        if (tg_addr_equal(&now->listeners[i].addr, &was->addr))
            return i;
    return SIZE_MAX;
}

static void done(struct tg_ppwait *p, const struct tg_ppin *hdr)
{
    struct tg_worker *w = p->w;
    int fd = p->fd;
    struct sockaddr_storage peer = hdr->local ? p->peer : hdr->src;
    socklen_t plen = hdr->local ? p->peer_len : hdr->src_len;
    size_t lidx = current_listener(p);
    /* Closing the poll handle now (uv_close stops it at once) lets the handler watch fd. */
    release(p);
    uint64_t hold = 0;
    if (lidx == SIZE_MAX || !tg_net__peer_admit(w, lidx, &peer, &hold)) {
        close(fd);
        tg_worker_conn_done(w, 0);
        return;
    }
    w->net->h->on_accept(w, lidx, fd, &peer, plen, hold, p->accepted_ms);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct tg_ppwait *p = h->data;
    (void)events;
    if (status < 0) {
        fail(p, TG_PPIN_FAIL_HANGUP);
        return;
    }
    /* Peek, so bytes after the header stay on the socket for the TLS handshake. */
    ssize_t n = recv(p->fd, p->buf + p->have, sizeof(p->buf) - p->have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        fail(p, TG_PPIN_FAIL_HANGUP);
        return;
    }
    struct tg_ppin hdr;
    long r = tg_ppin_parse(p->buf, p->have + (size_t)n, &hdr);
    if (r < 0) {
        fail(p, (enum tg_ppin_fail) - r);
        return;
    }
    /* Take what belongs to the header off the socket: all of it when incomplete. */
    size_t take = r == 0 ? (size_t)n : (size_t)r - p->have;
    ssize_t got;
    do
        got = recv(p->fd, p->buf + p->have, take, 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)take) {
        fail(p, TG_PPIN_FAIL_HANGUP);
        return;
    }
    p->have += take;
    if (r > 0)
        done(p, &hdr);
}

static void on_timeout(uv_timer_t *t)
{
    fail(t->data, TG_PPIN_FAIL_TIMEOUT);
}

void tg_net__ppwait_start(struct tg_worker *w, size_t lidx, int fd,
                          const struct sockaddr_storage *peer, socklen_t plen)
{
    struct tg_ppwait *p = tg_xcalloc(1, sizeof(*p));
    p->w = w;
    p->snap = tg_snapshot_ref(w->snap);
    p->lidx = lidx;
    p->fd = fd;
    p->peer = *peer;
    p->peer_len = plen;
    p->accepted_ms = uv_now(&w->loop);
    p->next = w->ppwaits;
    if (w->ppwaits != NULL)
        w->ppwaits->prev = p;
    w->ppwaits = p;
    uv_poll_init(&w->loop, &p->poll, fd);
    p->poll.data = p;
    uv_timer_init(&w->loop, &p->timer);
    p->timer.data = p;
    p->open_handles = 2;
    uv_poll_start(&p->poll, UV_READABLE, on_readable);
    uv_timer_start(&p->timer, on_timeout, p->snap->cfg->timeouts.handshake_ms, 0);
}

bool tg_net__ppwait_wanted(const struct tg_listener_conf *lc, const struct sockaddr_storage *peer)
{
    if (!lc->proxy_protocol)
        return false;
    if (lc->n_proxy_protocol_from == 0)
        return true;
    for (size_t i = 0; i < lc->n_proxy_protocol_from; i++)
        if (tg_cidr_match(&lc->proxy_protocol_from[i], peer))
            return true;
    return false;
}

void tg_net__ppwait_close_all(struct tg_worker *w)
{
    while (w->ppwaits != NULL) {
        struct tg_ppwait *p = w->ppwaits;
        release(p);
        close(p->fd);
        tg_worker_conn_done(w, 0);
    }
}
