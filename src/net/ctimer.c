/* Connection timers: one libuv timer per worker drives a binary min-heap of the worker's armed
 * connection deadlines, so a connection holds 16 bytes for its timer instead of a uv_timer_t
 * (152 bytes). Deadlines are loop times as uv_timer_start computes them (uv_now + ms), and
 * equal deadlines fire in the order they were armed, as libuv's own timers do. */
#include <stdlib.h>

#include "core/core.h"
#include "net/conn.h"
#include "net/internal.h"

/* Heap order: earlier deadline first, then earlier arming (a sequence number that wraps). */
static bool before(const struct tg_conn *a, const struct tg_conn *b)
{
    if (a->t_due != b->t_due)
        return a->t_due < b->t_due;
    return (int32_t)(a->t_seq - b->t_seq) < 0;
}

static void place(struct tg_worker *w, uint32_t i, struct tg_conn *c)
{
    w->theap[i] = c;
    c->t_idx = i + 1;
}

static void sift_up(struct tg_worker *w, uint32_t i)
{
    struct tg_conn *c = w->theap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(c, w->theap[p]))
            break;
        place(w, i, w->theap[p]);
        i = p;
    }
    place(w, i, c);
}

static void sift_down(struct tg_worker *w, uint32_t i)
{
    struct tg_conn *c = w->theap[i];
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= w->theap_len)
            break;
        uint32_t m = l + 1 < w->theap_len && before(w->theap[l + 1], w->theap[l]) ? l + 1 : l;
        if (!before(w->theap[m], c))
            break;
        place(w, i, w->theap[m]);
        i = m;
    }
    place(w, i, c);
}

static void heap_remove(struct tg_worker *w, struct tg_conn *c)
{
    uint32_t i = c->t_idx - 1;
    c->t_idx = 0;
    struct tg_conn *last = w->theap[--w->theap_len];
    if (last != c) {
        place(w, i, last);
        if (i > 0 && before(last, w->theap[(i - 1) / 2]))
            sift_up(w, i);
        else
            sift_down(w, i);
    }
    /* Give memory back after a burst of connections went away (a quarter used). */
    if (w->theap_cap > 1024 && w->theap_len < w->theap_cap / 4) {
        w->theap_cap /= 2;
        w->theap = tg_xrealloc(w->theap, w->theap_cap * sizeof(*w->theap));
    }
}

static void on_worker_timer(uv_timer_t *t);

/* Keeps the worker's libuv timer no later than the earliest deadline. It is moved only to an
 * earlier time: one that comes too early finds nothing due and is set again (most re-armings,
 * a connection's deadline moving later, then cost no libuv call), or stopped once no deadline
 * is left. */
static void rearm(struct tg_worker *w)
{
    if (w->theap_len == 0) { /* stopped: a started timer would keep the loop alive */
        if (w->theap_armed != 0) {
            uv_timer_stop(&w->ctimer);
            w->theap_armed = 0;
        }
        return;
    }
    uint64_t due = w->theap[0]->t_due;
    if (w->theap_armed != 0 && w->theap_armed <= due)
        return;
    uint64_t now = uv_now(&w->loop);
    if (!w->ctimer_ready) { /* set up on first use (workers assembled by hand in tests too) */
        uv_timer_init(&w->loop, &w->ctimer);
        w->ctimer.data = w;
        w->ctimer_ready = true;
    }
    w->theap_armed = due;
    uv_timer_start(&w->ctimer, on_worker_timer, due > now ? due - now : 0, 0);
}

static void on_worker_timer(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    w->theap_armed = 0;
    /* As libuv runs its timers: every deadline not after the loop time; one that a callback
     * arms again lies at least 1 ms ahead, so this ends. */
    while (w->theap_len > 0 && w->theap[0]->t_due <= now) {
        struct tg_conn *c = w->theap[0];
        heap_remove(w, c);
        tg_net__conn_timer_fired(c);
    }
    rearm(w);
}

void tg_net__timer_set(struct tg_conn *c, uint64_t ms)
{
    struct tg_worker *w = c->w;
    if (ms == 0) {
        if (c->t_idx != 0) {
            heap_remove(w, c);
            if (w->theap_len == 0 && !w->ctimer_closed)
                rearm(w);
        }
        return;
    }
    c->t_due = uv_now(&w->loop) + ms;
    c->t_seq = w->theap_seq++;
    if (c->t_idx != 0) { /* moved in place: usually later, down the heap */
        uint32_t i = c->t_idx - 1;
        if (i > 0 && before(c, w->theap[(i - 1) / 2]))
            sift_up(w, i);
        else
            sift_down(w, i);
    } else {
        if (w->theap_len == w->theap_cap) {
            w->theap_cap = w->theap_cap ? w->theap_cap * 2 : 64;
            w->theap = tg_xrealloc(w->theap, w->theap_cap * sizeof(*w->theap));
        }
        place(w, w->theap_len++, c);
        sift_up(w, w->theap_len - 1);
    }
    if (!w->ctimer_closed)
        rearm(w);
}

void tg_net__timers_close(struct tg_worker *w)
{
    w->ctimer_closed = true;
    if (w->ctimer_ready)
        uv_close((uv_handle_t *)&w->ctimer, NULL);
}

void tg_net__timers_free(struct tg_worker *w)
{
    free(w->theap);
    w->theap = NULL;
    w->theap_len = w->theap_cap = 0;
}
