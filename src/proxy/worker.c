/* The proxy as the workers' net handler: per-worker state, accept (the protocol per listener
 * mode, the stream handler for http), drain and shutdown. The top of src/proxy: it names the
 * protocols and handlers, nothing below names it. */
#include "proxy/internal.h"

#include <stdlib.h>

static void proxy_on_accept(struct tg_worker *w, size_t lidx, int fd,
                            const struct sockaddr_storage *peer, socklen_t plen, uint64_t hold,
                            uint64_t accepted_ms)
{
    const struct tg_listener_conf *lc = &w->snap->cfg->listeners[lidx];
    (void)plen;
    if (lc->admin)
        tg__client_accept(w, lidx, fd, peer, hold, accepted_ms,
                          &tg__proto_http1); /* tg__service_handler */
    else if (lc->mode == TG_MODE_TCP)
        tg__client_accept(w, lidx, fd, peer, hold, accepted_ms, &tg__proto_tcp);
    else
        tg__client_accept(w, lidx, fd, peer, hold, accepted_ms,
                          &tg__proto_http1); /* tg__forward_handler */
}

static void proxy_worker_init(struct tg_worker *w)
{
    w->proto = tg_xcalloc(1, sizeof(struct tg_proxy_worker));
    tg__targets_init(w);
    tg__mtls_init();
}

static void proxy_on_drain(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    tg__targets_stop(w);
    tg__backend_close_idle(w);
    for (struct tg_client *c = pw->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->phase == TG_CP_HANDSHAKE)
            tg__client_close(c);
        else
            c->proto->on_drain(c);
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

/* A reload: client certificates are checked against the new policy, idle pooled backend
 * connections and the targets' states let go of the old snapshot, and HTTP/2 connections,
 * which would otherwise keep the old snapshot for their whole life, get a graceful GOAWAY (their
 * streams in flight finish; the client reconnects under the new config). */
static void proxy_on_snapshot(struct tg_worker *w)
{
    tg__mtls_on_snapshot(w);
    tg__pool_on_snapshot(w);
    tg__targets_on_snapshot(w);
    for (struct tg_client *c = tg_pw(w)->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->h2 != NULL && c->info.snap != w->snap && !tg_conn_closed(&c->conn))
            tg__h2_goaway_soon(c->h2);
    }
}

static void proxy_worker_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    tg__h1_cache_free(w);
    tg__h2_cache_free(w);
    tg__h2_check_close(w);
    tg__backend_reuse_close(w);
    tg_conn_bufcache_free(w);
    tg_conn_pollcache_free(w);
    free(pw->rr);
    tg__targets_free(w); /* frees pw once libuv is done with its timer */
    w->proto = NULL;
}

const struct tg_net_handler tg_proxy_handler = {
    .worker_init = proxy_worker_init,
    .on_accept = proxy_on_accept,
    .on_drain = proxy_on_drain,
    .on_drain_timeout = proxy_on_drain_timeout,
    .on_snapshot = proxy_on_snapshot,
    .worker_free = proxy_worker_free,
};
