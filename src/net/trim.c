/* Giving memory back after a burst of closes. glibc keeps the memory of freed connections in its
 * arenas (a worker thread's arena trims only its top, and the freed chunks lie below live ones):
 * 5,000 idle TLS connections closed left the gateway's RSS at 3.6 times its live heap, and opening
 * them again reused it rather than growing much. After a worker's open connections fell by
 * TRIM_DROP from their peak, malloc_trim(0) (a second later, once the burst is over) returns the
 * free pages of every arena to the kernel (madvise), after the worker's cache of buffer blocks
 * (net/conn.c) let go of all but a few per size; malloc_trim runs on the libuv thread pool, never
 * on the worker's loop, and at most once per such fall, so steady traffic (no fall from a peak)
 * never pays for it. */
#include <malloc.h>

#include "core/log.h"
#include "net/conn.h"
#include "net/internal.h"

#define TRIM_DROP        1024u /* connections closed since the worker's peak */
#define TRIM_DELAY_MS    1000
#define TRIM_KEEP_BLOCKS 8 /* buffer blocks kept per size in the worker's cache */

static void trim_work(uv_work_t *req)
{
    (void)req;
    malloc_trim(0);
}

static void trim_done(uv_work_t *req, int status)
{
    struct tg_worker *w = req->data;
    (void)status;
    w->trim_busy = false;
    tg_log_info("worker %u: freed memory given back to the system after %u connections closed "
                "(%zu bytes of cached buffers among it)",
                w->id, w->trim_fell, w->trim_cached);
}

void tg_net__trim_opened(struct tg_worker *w)
{
    if (++w->open_now > w->open_peak)
        w->open_peak = w->open_now;
}

/* A second after the fall began, so that the rest of the burst is closed by then. */
static void on_trim_timer(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    if (w->released)
        return;
    /* The buffer blocks the burst left in the worker's cache go first (up to 64 per size, 16
     * MiB a worker at most), but a few, so the next requests still find theirs. */
    w->trim_cached = tg_conn_bufcache_shrink(w, TRIM_KEEP_BLOCKS);
    w->trim_fell = w->open_peak - w->open_now;
    w->open_peak = w->open_now;
    w->trim_busy = true;
    w->trim_req.data = w;
    if (uv_queue_work(&w->loop, &w->trim_req, trim_work, trim_done) != 0)
        w->trim_busy = false;
}

void tg_net__trim_closed(struct tg_worker *w)
{
    if (w->open_now > 0)
        w->open_now--;
    if (w->open_peak - w->open_now < TRIM_DROP || w->trim_busy || w->released ||
        (w->trim_timer_ready && uv_is_active((uv_handle_t *)&w->trim_timer)))
        return;
    if (!w->trim_timer_ready) {
        uv_timer_init(&w->loop, &w->trim_timer);
        w->trim_timer.data = w;
        uv_unref((uv_handle_t *)&w->trim_timer);
        w->trim_timer_ready = true;
    }
    uv_timer_start(&w->trim_timer, on_trim_timer, TRIM_DELAY_MS, 0);
}

void tg_net__trim_close(struct tg_worker *w)
{
    if (w->trim_timer_ready)
        uv_close((uv_handle_t *)&w->trim_timer, NULL);
}
