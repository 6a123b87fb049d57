/* Worker threads: one libuv loop each with its own SO_REUSEPORT listener sockets, snapshot swaps,
 * drain. */
#include "net/net.h"

#include "net/conn.h"
#include "net/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"

#define ACCEPT_BATCH    64
#define ACCEPT_PAUSE_MS 100
#define STARVE_QUIET_MS 1000
#define ALOG_CAP        16384
#define ALOG_FLUSH_AT   12288
#define ALOG_FLUSH_MS   250

struct tg_net *tg_net_running;

/* Opens a non-blocking listening socket with SO_REUSEPORT; returns the fd or -errno. */
static int open_listener(const struct sockaddr_storage *addr, socklen_t len, bool do_listen)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (addr->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, len) != 0)
        goto fail;
    if (do_listen && listen(fd, 4096) != 0)
        goto fail;
    return fd;
fail:;
    int e = -errno;
    close(fd);
    return e;
}

bool tg_net_bound_since_start(const struct sockaddr_storage *addr)
{
    const struct tg_net *net = tg_net_running;
    if (net == NULL)
        return false;
    for (size_t i = 0; i < net->n_start_addrs; i++)
        if (tg_addr_equal(&net->start_addrs[i], addr))
            return true;
    return false;
}

/* An address the workers bound at start, and still serve, while the process now runs as another
 * user. */
static bool bound_by_other_user(const struct sockaddr_storage *addr)
{
    const struct tg_net *net = tg_net_running;
    return net != NULL && (uint32_t)geteuid() != net->start_euid && tg_net_bound_since_start(addr);
}

int tg_net_check_bind(const struct tg_config *cfg, struct tg_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        if (bound_by_other_user(&lc->addr))
            continue;
        int fd = open_listener(&lc->addr, lc->addr_len, false);
        if (fd < 0) {
            struct tg_loc loc = lc->loc;
            tg_err_error(err, &loc, lc->path, "cannot bind %s: %s", lc->address, strerror(-fd));
            rc = fd;
            continue;
        }
        close(fd);
    }
    return rc;
}

static void listener_closed(uv_handle_t *h)
{
    struct tg_net_listener *l = h->data;
    close(l->fd);
    free(l);
}

static void listener_close(struct tg_net_listener *l)
{
    if (l == NULL)
        return;
    uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, listener_closed);
}

static void on_acceptable(uv_poll_t *p, int status, int events);

/* Retries accepting after running out of descriptors: every listener is tried at once (so an
 * empty queue is seen too), then watched again. */
static void on_accept_timer(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    if (w->draining)
        return;
    for (size_t j = 0; j < w->n_listeners && !uv_is_active((uv_handle_t *)&w->accept_timer); j++)
        if (w->listeners[j] != NULL) {
            uv_poll_start(&w->listeners[j]->poll, UV_READABLE, on_acceptable);
            on_acceptable(&w->listeners[j]->poll, 0, UV_READABLE);
        }
}

static void pause_accepting(struct tg_worker *w)
{
    for (size_t j = 0; j < w->n_listeners; j++)
        if (w->listeners[j] != NULL)
            uv_poll_stop(&w->listeners[j]->poll);
    uv_timer_start(&w->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
}

/* accept() found no descriptor (or no kernel memory). The connection stays queued and the
 * listener readable, so accepting pauses (timer) instead of spinning. One line per episode: from
 * the first worker to run out until the last one accepts again. */
static void starved(struct tg_worker *w, struct tg_net_listener *l, int e)
{
    uint64_t now = uv_now(&w->loop);
    w->starved_last_ms = now;
    if (w->starved_since_ms == 0) {
        w->starved_since_ms = now > 0 ? now : 1;
        if (atomic_fetch_add(&w->net->accept_starved, 1) == 0)
            tg_log_error("listener %s: cannot accept connections: %s; accepting paused and "
                         "retried every %d ms until descriptors free up (open connections are "
                         "still served; raise the open-files limit (ulimit -n, LimitNOFILE=) or "
                         "set limits.max_connections)",
                         w->snap->cfg->listeners[l->idx].name, strerror(e), ACCEPT_PAUSE_MS);
    }
    pause_accepting(w);
}

/* accept() worked (accepted: a connection; else the queue was empty). The episode ends after
 * STARVE_QUIET_MS without a failed accept (the timer looks again then), so a backlog that runs
 * the descriptors out again as it drains stays one episode. */
static void fed(struct tg_worker *w, struct tg_net_listener *l)
{
    if (w->starved_since_ms == 0)
        return;
    uint64_t now = uv_now(&w->loop), quiet = now - w->starved_last_ms;
    if (quiet < STARVE_QUIET_MS) {
        if (!uv_is_active((uv_handle_t *)&w->accept_timer))
            uv_timer_start(&w->accept_timer, on_accept_timer, STARVE_QUIET_MS - quiet, 0);
        return;
    }
    uint64_t since = w->starved_since_ms;
    w->starved_since_ms = 0;
    if (atomic_fetch_sub(&w->net->accept_starved, 1) == 1)
        tg_log_info("listener %s: accepting connections again (descriptors were short from "
                    "%" PRIu64 " ms to %" PRIu64 " ms ago)",
                    w->snap->cfg->listeners[l->idx].name, now - since, quiet);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    struct tg_net_listener *l = p->data;
    struct tg_worker *w = l->w;
    struct tg_net *net = w->net;
    uint32_t maxc = w->snap->cfg->limits.max_connections;
    (void)events;
    if (status < 0 || w->draining)
        return;
    /* One connection per readable event: the listener is level-triggered, so the loop reports it
     * again while more are queued, and a lone connection costs one accept4 (accepting until
     * EAGAIN costs two). Woken again within the same millisecond of loop time, connections are
     * queuing faster than one per poll: then a batch, until EAGAIN. */
    uint64_t now = uv_now(&w->loop);
    int batch = now == l->woke_ms ? ACCEPT_BATCH : 1;
    l->woke_ms = now;
    for (int i = 0; i < batch; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                starved(w, l, errno);
            else if (errno == EAGAIN || errno == EWOULDBLOCK)
                fed(w, l);
            return;
        }
        fed(w, l);
        if (maxc != 0 && atomic_load_explicit(&net->active_conns, memory_order_relaxed) >= maxc) {
            tg_net__refuse_max_connections(w, l->idx, &peer);
            close(fd);
            continue;
        }
        bool pp = tg_net__ppwait_wanted(&w->snap->cfg->listeners[l->idx], &peer);
        uint64_t hold = 0;
        /* Behind a PROXY header the real client is known only once the header is read. */
        if (!pp && !tg_net__peer_admit(w, l->idx, &peer, &hold)) {
            close(fd);
            continue;
        }
        atomic_fetch_add_explicit(&net->active_conns, 1, memory_order_relaxed);
        tg_net__trim_opened(w);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        TG_STAT_INC(&w->stats, accepted);
        TG_STAT_INC(&w->stats, active);
        TG_STAT_INC(&w->stats, l_accepted[w->snap->lslot[l->idx]]);
        if (pp)
            tg_net__ppwait_start(w, l->idx, fd, &peer, plen);
        else
            net->h->on_accept(w, l->idx, fd, &peer, plen, hold, uv_now(&w->loop));
    }
}

/* Makes the worker's listener sockets match cfg: keeps sockets whose address is unchanged, opens
 * new ones, closes the rest. Returns 0 or the first bind error (others are logged). */
static int sync_listeners(struct tg_worker *w, const struct tg_config *cfg)
{
    struct tg_net_listener **next = tg_xcalloc(cfg->n_listeners + 1, sizeof(*next));
    int rc = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        for (size_t j = 0; j < w->n_listeners; j++) {
            struct tg_net_listener *old = w->listeners[j];
            if (old != NULL && tg_addr_equal(&old->addr, &lc->addr)) {
                next[i] = old;
                w->listeners[j] = NULL;
                break;
            }
        }
        if (next[i] == NULL) {
            int fd = open_listener(&lc->addr, lc->addr_len, true);
            if (fd < 0) {
                tg_log_error("listener %s: cannot listen on %s: %s", lc->name, lc->address,
                             strerror(-fd));
                if (rc == 0)
                    rc = fd;
                continue;
            }
            struct tg_net_listener *l = tg_xcalloc(1, sizeof(*l));
            l->w = w;
            l->fd = fd;
            l->addr = lc->addr;
            l->addr_len = lc->addr_len;
            uv_poll_init(&w->loop, &l->poll, fd);
            l->poll.data = l;
            uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
            next[i] = l;
        }
        next[i]->idx = i;
    }
    for (size_t j = 0; j < w->n_listeners; j++)
        listener_close(w->listeners[j]);
    free(w->listeners);
    w->listeners = next;
    w->n_listeners = cfg->n_listeners;
    return rc;
}

static void close_listeners(struct tg_worker *w)
{
    for (size_t j = 0; j < w->n_listeners; j++) {
        listener_close(w->listeners[j]);
        w->listeners[j] = NULL;
    }
}

/* A write failed (a full disk, say): the lines from off on are lost. The requests were served;
 * the first failure of an episode is logged (by whichever worker meets it), every lost line
 * counted, and the end of the episode logged when a write works again. */
static void alog_failed(struct tg_worker *w, size_t off, int err)
{
    uint64_t lines = 0;
    const char *p = w->alog + off, *end = w->alog + w->alog_len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    TG_STAT_ADD(&w->stats, alog_dropped, lines);
    if (off > 0 && w->alog[off - 1] != '\n')
        w->alog_cut = true;
    int was = 0;
    if (atomic_compare_exchange_strong(&w->net->access_log_failing, &was, 1))
        tg_log_error("access log: write failed: %s; %llu line(s) dropped (requests are still "
                     "served; lost lines are counted as access_log.dropped_lines, and this is "
                     "logged once until writes work again)",
                     strerror(err), (unsigned long long)lines);
}

static void alog_flush(struct tg_worker *w)
{
    int fd = w->net->access_log_fd;
    size_t off = 0;
    int err = 0;
    /* The line a failed write cut is ended first, so the next one starts on a line of its own. */
    if (fd >= 0 && w->alog_len > 0 && w->alog_cut) {
        if (write(fd, "\n", 1) == 1)
            w->alog_cut = false;
        else
            err = errno != 0 ? errno : EIO;
    }
    while (fd >= 0 && err == 0 && off < w->alog_len) {
        /* Write whole lines in pieces of at most PIPE_BUF so lines from different workers never
         * interleave, also on a pipe. */
        size_t n = w->alog_len - off;
        if (n > 4096) {
            n = 4096;
            while (n > 1 && w->alog[off + n - 1] != '\n')
                n--;
            if (n <= 1)
                n = TG_MIN(w->alog_len - off, 4096);
        }
        ssize_t r = write(fd, w->alog + off, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : EIO;
            break;
        }
        off += (size_t)r;
    }
    if (err != 0) {
        alog_failed(w, off, err);
    } else if (fd >= 0 && w->alog_len > 0 && atomic_load(&w->net->access_log_failing)) {
        int was = 1;
        if (atomic_compare_exchange_strong(&w->net->access_log_failing, &was, 0))
            tg_log_warn("access log: writes work again");
    }
    w->alog_len = 0;
}

void tg_worker_access_log(struct tg_worker *w, const char *line, size_t len)
{
    if (w->net->access_log_fd < 0)
        return;
    if (w->alog == NULL)
        w->alog = tg_xmalloc(ALOG_CAP);
    if (w->alog_len + len > ALOG_CAP)
        alog_flush(w);
    if (len > ALOG_CAP)
        len = ALOG_CAP;
    memcpy(w->alog + w->alog_len, line, len);
    w->alog_len += len;
    if (w->alog_len >= ALOG_FLUSH_AT)
        alog_flush(w);
}

static void on_log_timer(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    if (w->alog_len > 0)
        alog_flush(w);
}

void tg_worker_drained(struct tg_worker *w)
{
    if (!w->draining || w->released)
        return;
    w->released = true;
    alog_flush(w);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->log_timer, NULL);
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
    tg_net__trim_close(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    tg_log_warn("worker %u: shutdown timeout reached, closing the remaining connections", w->id);
    w->net->h->on_drain_timeout(w);
}

static void begin_drain(struct tg_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    close_listeners(w);
    tg_net__ppwait_close_all(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->snap->cfg->timeouts.shutdown_ms, 0);
    w->net->h->on_drain(w);
}

/* Makes a ring handed over by the main thread this thread's (see tg_tls_tickets_use). */
static void take_tickets(struct tg_worker *w)
{
    struct tg_tls_tickets *t = atomic_exchange(&w->pending_tickets, NULL);
    if (t == NULL)
        return;
    tg_tls_tickets_use(t);
    tg_tls_tickets_unref(t);
}

/* Likewise a set of OCSP staples (see tg_tls_staples_use). */
static void take_staples(struct tg_worker *w)
{
    struct tg_tls_staples *set = atomic_exchange(&w->pending_staples, NULL);
    if (set == NULL)
        return;
    tg_tls_staples_use(set);
    tg_tls_staples_unref(set);
}

static void on_wakeup(uv_async_t *a)
{
    struct tg_worker *w = a->data;
    take_tickets(w);
    struct tg_snapshot *s = atomic_exchange(&w->pending, NULL);
    if (s != NULL && !w->draining) {
        sync_listeners(w, s->cfg);
        struct tg_snapshot *old = w->snap;
        w->snap = s;
        tg_snapshot_unref(old);
        if (w->net->h->on_snapshot != NULL)
            w->net->h->on_snapshot(w);
    } else {
        tg_snapshot_unref(s);
    }
    /* After the snapshot: the staples of a reload are published before its snapshot, so a
     * worker that took the new snapshot sees their set now. */
    take_staples(w);
    if (atomic_load(&w->stop_requested))
        begin_drain(w);
}

static void worker_main(void *arg)
{
    struct tg_worker *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    take_tickets(w);
    take_staples(w);
    w->start_rc = sync_listeners(w, w->snap->cfg);
    uv_sem_post(&w->net->started);
    if (w->start_rc != 0) {
        w->draining = true;
        close_listeners(w);
        w->net->h->on_drain(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->net->h->worker_free(w);
    /* Only now: connections still closing after the handler let go (a lingering close) kept
     * their deadlines running until the loop ended. */
    tg_net__timers_close(w);
    tg_net__closes_flush_and_close(w);
    tg_conn_pollcache_free(w); /* handles kept by closes that ended after the handler's free */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        tg_log_warn("worker %u: event loop closed with handles still open", w->id);
    tg_snapshot_unref(atomic_exchange(&w->pending, NULL));
    tg_tls_tickets_unref(atomic_exchange(&w->pending_tickets, NULL));
    tg_tls_tickets_use(NULL);
    tg_tls_staples_unref(atomic_exchange(&w->pending_staples, NULL));
    tg_tls_staples_use(NULL);
    tg_snapshot_unref(w->snap);
    w->snap = NULL;
    free(w->listeners);
    free(w->alog);
    tg_net__timers_free(w);
}

int tg_net_start(struct tg_net *net, struct tg_snapshot *snap, unsigned n,
                 const struct tg_net_handler *h, int access_log_fd, struct tg_err *err)
{
    net->workers = tg_xcalloc(n, sizeof(*net->workers));
    net->n_workers = n;
    net->h = h;
    net->access_log_fd = access_log_fd;
    net->started_ms = tg_now_ms();
    atomic_init(&net->generation, snap->generation);
    atomic_init(&net->active_conns, 0);
    atomic_init(&net->accept_starved, 0);
    struct rlimit nofile;
    net->peers = tg_net__peers_new(getrlimit(RLIMIT_NOFILE, &nofile) == 0 ? nofile.rlim_cur : 0);
    uv_sem_init(&net->started, 0);
    for (unsigned i = 0; i < n; i++) {
        struct tg_worker *w = &net->workers[i];
        w->net = net;
        w->id = i;
        w->snap = tg_snapshot_ref(snap);
        atomic_init(&w->pending, NULL);
        atomic_init(&w->pending_tickets, tg_tls_tickets_ref(net->tickets));
        atomic_init(&w->pending_staples, tg_tls_staples_ref(net->staples));
        atomic_init(&w->stop_requested, 0);
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wakeup, on_wakeup);
        w->wakeup.data = w;
        uv_timer_init(&w->loop, &w->drain_timer);
        w->drain_timer.data = w;
        uv_timer_init(&w->loop, &w->log_timer);
        w->log_timer.data = w;
        uv_timer_init(&w->loop, &w->accept_timer);
        w->accept_timer.data = w;
        if (access_log_fd >= 0) {
            uv_timer_start(&w->log_timer, on_log_timer, ALOG_FLUSH_MS, ALOG_FLUSH_MS);
            uv_unref((uv_handle_t *)&w->log_timer);
        }
        h->worker_init(w);
    }
    net->start_euid = (uint32_t)geteuid();
    net->start_addrs = tg_xcalloc(snap->cfg->n_listeners + 1, sizeof(*net->start_addrs));
    for (size_t i = 0; i < snap->cfg->n_listeners; i++)
        net->start_addrs[net->n_start_addrs++] = snap->cfg->listeners[i].addr;
    tg_net_running = net; /* before the threads start: they read it (status page) */
    for (unsigned i = 0; i < n; i++)
        uv_thread_create(&net->workers[i].thread, worker_main, &net->workers[i]);
    for (unsigned i = 0; i < n; i++)
        uv_sem_wait(&net->started);
    int rc = 0;
    for (unsigned i = 0; i < n; i++)
        if (net->workers[i].start_rc != 0 && rc == 0)
            rc = net->workers[i].start_rc;
    if (rc != 0) {
        tg_err_error(err, NULL, NULL, "cannot listen on every configured address: %s",
                     strerror(-rc));
        tg_net_stop(net);
        tg_net_join(net);
        return rc;
    }
    return 0;
}

void tg_net_publish(struct tg_net *net, struct tg_snapshot *snap)
{
    /* A start address this config drops is closed by the workers: bound again later, it is a
     * new socket, made with the ids the process has then. */
    size_t kept = 0;
    for (size_t i = 0; i < net->n_start_addrs; i++) {
        bool listed = false;
        for (size_t j = 0; j < snap->cfg->n_listeners && !listed; j++)
            listed = tg_addr_equal(&snap->cfg->listeners[j].addr, &net->start_addrs[i]);
        if (listed)
            net->start_addrs[kept++] = net->start_addrs[i];
    }
    net->n_start_addrs = kept;
    atomic_store(&net->generation, snap->generation);
    for (unsigned i = 0; i < net->n_workers; i++) {
        struct tg_worker *w = &net->workers[i];
        tg_snapshot_unref(atomic_exchange(&w->pending, tg_snapshot_ref(snap)));
        uv_async_send(&w->wakeup);
    }
}

void tg_net_publish_tickets(struct tg_net *net, struct tg_tls_tickets *t)
{
    for (unsigned i = 0; i < net->n_workers; i++) {
        struct tg_worker *w = &net->workers[i];
        tg_tls_tickets_unref(atomic_exchange(&w->pending_tickets, tg_tls_tickets_ref(t)));
        uv_async_send(&w->wakeup);
    }
}

void tg_net_publish_staples(struct tg_net *net, struct tg_tls_staples *set)
{
    for (unsigned i = 0; i < net->n_workers; i++) {
        struct tg_worker *w = &net->workers[i];
        tg_tls_staples_unref(atomic_exchange(&w->pending_staples, tg_tls_staples_ref(set)));
        uv_async_send(&w->wakeup);
    }
}

void tg_net_stop(struct tg_net *net)
{
    for (unsigned i = 0; i < net->n_workers; i++) {
        if (net->workers[i].start_rc != 0)
            continue; /* that worker never ran its loop and has closed its handles */
        atomic_store(&net->workers[i].stop_requested, 1);
        uv_async_send(&net->workers[i].wakeup);
    }
}

void tg_net_join(struct tg_net *net)
{
    for (unsigned i = 0; i < net->n_workers; i++)
        uv_thread_join(&net->workers[i].thread);
    if (tg_net_running == net)
        tg_net_running = NULL;
    free(net->start_addrs);
    net->start_addrs = NULL;
    net->n_start_addrs = 0;
    free(net->workers);
    net->workers = NULL;
    tg_net__peers_free(net->peers);
    net->peers = NULL;
    uv_sem_destroy(&net->started);
}

void tg_worker_conn_done(struct tg_worker *w, uint64_t hold)
{
    tg_net__peer_release(w->net, hold);
    atomic_fetch_sub_explicit(&w->net->active_conns, 1, memory_order_relaxed);
    TG_STAT_DEC(&w->stats, active);
    TG_STAT_INC(&w->stats, closed);
    tg_net__trim_closed(w);
}
