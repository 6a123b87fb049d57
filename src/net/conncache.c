/* The connection engine's per-worker caches: buffer blocks, and poll handles kept by descriptor
 * number. */
#include "net/conn.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/internal.h"
#include "net/net.h"

/* ---- buffer blocks cached per worker ---- */

#define BUFCACHE_CLASSES 4
#define BUFCACHE_DEPTH   64

struct tg_conn_bufcache {
    size_t cap;
    size_t n;
    char *blocks[BUFCACHE_DEPTH];
};

static struct tg_conn_bufcache *cache_of(struct tg_worker *w)
{
    if (w->bufs == NULL)
        w->bufs = tg_xcalloc(BUFCACHE_CLASSES, sizeof(struct tg_conn_bufcache));
    return w->bufs;
}

void tg_conn_buf_get(struct tg_worker *w, struct tg_buf *b, size_t cap)
{
    if (b->data != NULL)
        return;
    struct tg_conn_bufcache *bc = cache_of(w);
    for (size_t i = 0; i < BUFCACHE_CLASSES; i++) {
        if (bc[i].cap == cap && bc[i].n > 0) {
            b->data = bc[i].blocks[--bc[i].n];
            b->cap = cap;
            b->off = b->len = 0;
            return;
        }
    }
    tg_buf_ensure(b, cap);
}

void tg_conn_buf_put(struct tg_worker *w, struct tg_buf *b)
{
    if (b->data == NULL)
        return;
    struct tg_conn_bufcache *bc = cache_of(w);
    /* One class per block size: its own class if it has one (full: the block is freed, the
     * other sizes keep their classes), else an unused or emptied class of another size. */
    struct tg_conn_bufcache *c = NULL;
    for (size_t i = 0; i < BUFCACHE_CLASSES && (c == NULL || c->cap != b->cap); i++)
        if (bc[i].cap == b->cap || (c == NULL && (bc[i].cap == 0 || bc[i].n == 0)))
            c = &bc[i];
    if (c == NULL || c->n >= BUFCACHE_DEPTH) {
        tg_buf_free(b);
        return;
    }
    c->cap = b->cap;
    c->blocks[c->n++] = b->data;
    b->data = NULL;
    b->cap = b->off = b->len = 0;
}

void tg_conn_buf_put_if_empty(struct tg_worker *w, struct tg_buf *b)
{
    if (b->data != NULL && b->off == b->len)
        tg_conn_buf_put(w, b);
}

void tg_conn_bufcache_free(struct tg_worker *w)
{
    struct tg_conn_bufcache *bc = w->bufs;
    if (bc == NULL)
        return;
    for (size_t i = 0; i < BUFCACHE_CLASSES; i++)
        for (size_t j = 0; j < bc[i].n; j++)
            free(bc[i].blocks[j]);
    free(bc);
    w->bufs = NULL;
}

size_t tg_conn_bufcache_shrink(struct tg_worker *w, size_t keep)
{
    struct tg_conn_bufcache *bc = w->bufs;
    size_t freed = 0;
    for (size_t i = 0; bc != NULL && i < BUFCACHE_CLASSES; i++)
        while (bc[i].n > keep) {
            free(bc[i].blocks[--bc[i].n]);
            freed += bc[i].cap;
        }
    return freed;
}

/* ---- poll handles cached per worker by descriptor number ---- */

/* uv_poll_init checks the descriptor with an epoll_ctl ADD and DEL and sets O_NONBLOCK with an
 * ioctl: three system calls per connection. A handle stopped (uv_poll_stop: no longer in epoll
 * nor in the loop's table) when its connection closed is kept under its descriptor number, and a
 * later connection on a socket that got the same number (accept and socket take the lowest free
 * one, so numbers come back) takes it as is: our sockets are non-blocking from accept4/socket
 * (SOCK_NONBLOCK) and pollable. */
#define POLLCACHE_MAX    256   /* handles kept per worker */
#define POLLCACHE_MAX_FD 65536 /* descriptors above are not cached */

struct tg_conn_pollcache {
    uv_poll_t **by_fd;
    int cap;
    int n;
};

static void free_handle(uv_handle_t *h)
{
    free(h);
}

uv_poll_t *tg_net__poll_get(struct tg_worker *w, int fd)
{
    struct tg_conn_pollcache *pc = w->polls;
    if (pc != NULL && fd < pc->cap && pc->by_fd[fd] != NULL) {
        uv_poll_t *p = pc->by_fd[fd];
        pc->by_fd[fd] = NULL;
        pc->n--;
        return p;
    }
    uv_poll_t *p = tg_xmalloc(sizeof(*p));
    uv_poll_init(&w->loop, p, fd);
    return p;
}

/* Whether a stopped handle for fd can be kept. */
bool tg_net__poll_keepable(struct tg_worker *w, int fd)
{
    const struct tg_conn_pollcache *pc = w->polls;
    return fd >= 0 && fd < POLLCACHE_MAX_FD && (pc == NULL || pc->n < POLLCACHE_MAX);
}

/* Keeps stopped handle p for descriptor number fd (closed by now). */
void tg_net__poll_put(struct tg_worker *w, uv_poll_t *p, int fd)
{
    if (w->polls == NULL)
        w->polls = tg_xcalloc(1, sizeof(*w->polls));
    struct tg_conn_pollcache *pc = w->polls;
    if (fd >= pc->cap) {
        int cap = pc->cap ? pc->cap : 64;
        while (cap <= fd)
            cap *= 2;
        pc->by_fd = tg_xrealloc(pc->by_fd, (size_t)cap * sizeof(*pc->by_fd));
        memset(pc->by_fd + pc->cap, 0, (size_t)(cap - pc->cap) * sizeof(*pc->by_fd));
        pc->cap = cap;
    }
    if (pc->by_fd[fd] != NULL) { /* cannot be (the number was ours), but never leak a handle */
        uv_close((uv_handle_t *)p, free_handle);
        return;
    }
    p->data = NULL;
    pc->by_fd[fd] = p;
    pc->n++;
}

void tg_conn_pollcache_free(struct tg_worker *w)
{
    struct tg_conn_pollcache *pc = w->polls;
    if (pc == NULL)
        return;
    for (int fd = 0; fd < pc->cap; fd++)
        if (pc->by_fd[fd] != NULL)
            uv_close((uv_handle_t *)pc->by_fd[fd], free_handle);
    free(pc->by_fd);
    free(pc);
    w->polls = NULL;
}

/* ---- closes whose poll handle was kept ---- */

/* An idle handle, not a check: it runs before the loop polls and keeps the poll from blocking
 * while it is active, so a close queued in any phase ends on the next turn, never after a wait. */
static void on_closes_idle(uv_idle_t *h)
{
    struct tg_worker *w = h->data;
    /* Taken as a batch: an owner's on_closed may queue more (its backend's close). */
    while (w->n_closing > 0) {
        size_t n = w->n_closing;
        struct tg_conn **batch = w->closing;
        w->closing = w->closing_spare;
        w->closing_spare = batch;
        size_t cap = w->cap_closing;
        w->cap_closing = w->cap_closing_spare;
        w->cap_closing_spare = cap;
        w->n_closing = 0;
        for (size_t i = 0; i < n; i++)
            tg_net__conn_finish_close(batch[i]);
    }
    uv_idle_stop(h);
}

void tg_net__close_later(struct tg_conn *c)
{
    struct tg_worker *w = c->w;
    if (w->n_closing == w->cap_closing) {
        w->cap_closing = w->cap_closing ? 2 * w->cap_closing : 64;
        w->closing = tg_xrealloc(w->closing, w->cap_closing * sizeof(*w->closing));
    }
    w->closing[w->n_closing++] = c;
    if (!w->closes_idle_ready) {
        uv_idle_init(&w->loop, &w->closes_idle);
        w->closes_idle.data = w;
        w->closes_idle_ready = true;
    }
    uv_idle_start(&w->closes_idle, on_closes_idle);
}

void tg_net__closes_flush_and_close(struct tg_worker *w)
{
    if (w->closes_idle_ready) {
        on_closes_idle(&w->closes_idle);
        uv_close((uv_handle_t *)&w->closes_idle, NULL);
        w->closes_idle_ready = false;
    }
    free(w->closing);
    free(w->closing_spare);
    w->closing = w->closing_spare = NULL;
    w->n_closing = w->cap_closing = w->cap_closing_spare = 0;
}
