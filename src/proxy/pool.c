/* The per-worker keep-alive pool of backend connections: a connection goes back to it after a
 * complete exchange, is dropped the moment its backend sends bytes, an end or a reset while it
 * waits (it stays readable-armed: the loop tells, no system call per reuse), and is handed to its
 * next request once every event of the loop's current poll has run. */
#include "proxy/internal.h"

#include <stdlib.h>

#include "core/log.h"

#define MAX_IDLE_PER_WORKER 512

static void idle_remove(struct tg_bconn *b)
{
    struct tg_proxy_worker *pw = tg_pw(b->conn.w);
    if (b->prev)
        b->prev->next = b->next;
    else
        pw->idle = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    pw->n_idle--;
    TG_STAT_DEC(&b->conn.w->stats, backend_pool_idle);
}

static void reserved_remove(struct tg_bconn *b)
{
    struct tg_proxy_worker *pw = tg_pw(b->conn.w);
    if (b->prev)
        b->prev->next = b->next;
    else
        pw->reserved = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        pw->reserved_tail = b->prev;
    b->prev = b->next = NULL;
    b->slot = NULL;
    b->state = TG_B_ACTIVE; /* no longer reserved: its user's now (or closing) */
}

void tg__backend_close(struct tg_bconn *b)
{
    if (b == NULL || tg_conn_closed(&b->conn))
        return;
    tg__pool_unlink(b);
    if (b->st != NULL && b->st->bc == b)
        b->st->bc = NULL;
    b->st = NULL;
    b->conn.out = &b->conn.own_out; /* a stream's buffer is not ours to keep writing from */
    tg_conn_close(&b->conn);
}

void tg__backend_arm(struct tg_bconn *b, int kind, uint64_t ms)
{
    b->timer_kind = (uint8_t)kind;
    tg_conn_timer(&b->conn, ms);
}

void tg__backend_release(struct tg_bconn *b, bool reusable)
{
    if (tg_conn_closed(&b->conn))
        return;
    struct tg_worker *w = b->conn.w;
    struct tg_proxy_worker *pw = tg_pw(w);
    if (b->state == TG_B_RESERVED) /* never handed over: as clean as when it was taken */
        reserved_remove(b);
    b->st = NULL;
    /* Bytes of the request still to write (a backend that answered before reading the whole
     * body): the next request would follow a cut body and be read as the rest of it. */
    bool unsent = tg_buf_used(b->conn.out) > 0 || tg_buf_used(&b->conn.own_out) > 0 ||
                  b->conn.wr_shut || b->conn.shut_pending;
    b->conn.out = &b->conn.own_out;
    if (!reusable || unsent || w->draining || pw->n_idle >= MAX_IDLE_PER_WORKER ||
        tg_buf_used(&b->conn.in) > 0 || b->snap != w->snap) {
        tg_log_debug("backend %s target %s: connection not kept (%s)", b->backend->name, b->target,
                     !reusable                  ? "not reusable"
                     : unsent                   ? "request not fully sent"
                     : w->draining              ? "draining"
                     : tg_buf_used(&b->conn.in) ? "bytes after the response"
                     : b->snap != w->snap       ? "config reloaded"
                                                : "pool full");
        tg__backend_close(b);
        return;
    }
    tg_conn_buf_put(w, &b->conn.in);
    b->state = TG_B_IDLE;
    b->next = pw->idle;
    b->prev = NULL;
    if (pw->idle)
        pw->idle->prev = b;
    pw->idle = b;
    pw->n_idle++;
    TG_STAT_INC(&w->stats, backend_pool_idle);
    tg__target_conn_done(b);
    tg__backend_arm(b, TG_BT_IDLE, b->snap->cfg->timeouts.idle_ms);
    tg_conn_update(&b->conn);
}

void tg__backend_close_idle(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->idle != NULL)
        tg__backend_close(pw->idle);
}

/* The worker took a new snapshot: idle connections opened under an older one are closed now.
 * Only clients of that snapshot could still take one (each once: it is not kept after), and
 * each holds its snapshot, with every TLS context and the config, until timeouts.idle. Reserved
 * and busy connections are left alone: a request is using them, and they are not kept after. */
void tg__pool_on_snapshot(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    size_t n = 0;
    for (struct tg_bconn *b = pw->idle, *next; b != NULL; b = next) {
        next = b->next;
        if (b->snap == w->snap)
            continue;
        tg__backend_close(b);
        n++;
    }
    if (n > 0)
        tg_log_debug("config reloaded: %zu idle backend connection(s) of an earlier config closed "
                     "(%zu kept)",
                     n, pw->n_idle);
}

/* A pooled connection that must not carry a request (the backend sent bytes, an end or a reset
 * after its last response): logged, counted and closed. */
void tg__pool_drop(struct tg_bconn *b, const char *what)
{
    TG_STAT_INC(&b->conn.w->stats, backend_pool_dropped);
    tg_log_debug("backend %s target %s: pooled connection %s, closed", b->backend->name, b->target,
                 what);
    tg__backend_close(b);
}

/* The idle phase after a poll: every event that poll reported has run, so a reserved connection
 * still open and quiet had nothing from its backend up to that poll (it is readable-armed; the
 * news would have closed it: see reserved_lost in backend.c). */
static void on_reuse_idle(uv_idle_t *h)
{
    struct tg_proxy_worker *pw = h->data;
    uv_idle_stop(h);
    while (pw->reserved != NULL) {
        struct tg_bconn *b = pw->reserved;
        struct tg_bconn **slot = b->slot;
        reserved_remove(b); /* state ACTIVE */
        TG_STAT_INC(&b->conn.w->stats, backend_reuses);
        if (slot != NULL)
            *slot = b;
        b->user->on_open(b, b->user_arg);
    }
}

/* Takes pooled connection b for user. Its socket was last seen empty and it is readable-armed
 * (tg_conn_has_input said no without a system call), but the poll whose events are running may
 * hold its news after the event running now (a client's request and the backend's stray bytes
 * in one poll): so the request waits for the loop's idle phase, when all of them have run (a
 * reserved connection that hears from its backend meanwhile is dropped and the user gets
 * another: reserved_lost in backend.c). What arrives after that poll and before the request is
 * written is indistinguishable from the response to it, as it was after the peek this replaces. */
static void reserve(struct tg_bconn *b, const struct tg_client_info *who,
                    const struct tg_bconn_user *user, void *arg, struct tg_bconn **slot)
{
    struct tg_worker *w = b->conn.w;
    struct tg_proxy_worker *pw = tg_pw(w);
    idle_remove(b);
    b->reused = true;
    b->state = TG_B_RESERVED;
    b->user = user;
    b->user_arg = arg;
    b->slot = slot;
    b->who = who;
    b->tries = 0;
    tg__backend_arm(b, TG_BT_NONE, 0);
    tg__target_conn_start(b);
    b->next = NULL;
    b->prev = pw->reserved_tail;
    if (pw->reserved_tail)
        pw->reserved_tail->next = b;
    else
        pw->reserved = b;
    pw->reserved_tail = b;
    *slot = b;
    if (pw->reuse_idle == NULL) {
        pw->reuse_idle = tg_xcalloc(1, sizeof(*pw->reuse_idle));
        uv_idle_init(&w->loop, pw->reuse_idle);
        pw->reuse_idle->data = pw;
        uv_unref((uv_handle_t *)pw->reuse_idle);
    }
    uv_idle_start(pw->reuse_idle, on_reuse_idle);
}

static void reuse_closed(uv_handle_t *h)
{
    free(h);
}

void tg__backend_reuse_close(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    while (pw->reserved != NULL)
        tg__backend_close(pw->reserved);
    if (pw->reuse_idle != NULL)
        uv_close((uv_handle_t *)pw->reuse_idle, reuse_closed);
    pw->reuse_idle = NULL;
}

bool tg__pool_take(struct tg_worker *w, struct tg_snapshot *snap, const struct tg_client_info *who,
                   size_t bi, size_t idx, const struct tg_bconn_user *user, void *arg,
                   struct tg_bconn **slot)
{
    for (struct tg_bconn *b = tg_pw(w)->idle, *next; b != NULL; b = next) {
        next = b->next;
        if (b->snap != snap || b->backend_idx != bi || b->target_idx != idx)
            continue;
        if (tg_conn_has_input(&b->conn)) {
            /* Bytes after its last response (or its close) that the loop has not seen yet: a
             * request sent now would get them for its response. */
            tg__pool_drop(b, "has unread input");
            continue;
        }
        reserve(b, who, user, arg, slot);
        return true;
    }
    return false;
}

void tg__pool_unlink(struct tg_bconn *b)
{
    if (b->state == TG_B_IDLE)
        idle_remove(b);
    else if (b->state == TG_B_RESERVED)
        reserved_remove(b);
}
