/* Tunnels: a client and a backend connection moving bytes both ways, used by tcp listeners and
 * by WebSocket after a 101. Each side's input buffer is the other side's output (no copy), so
 * the fixed buffers are the back-pressure; half-close is passed on; timeouts.idle ends a silent
 * tunnel. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define TUNNEL_BUF (64 * 1024)

static const struct tg_conn_handler tunnel_conn;

static struct tg_tunnel *tun_of(struct tg_conn *conn)
{
    return conn->owner;
}

/* The other side of conn. */
static struct tg_conn *peer_of(struct tg_tunnel *t, struct tg_conn *conn)
{
    return conn == t->cconn ? &t->b->conn : &t->c->conn;
}

static void tunnel_log(struct tg_tunnel *t, const char *why)
{
    tg_log_debug("client %s listener=%s: tunnel to backend %s target %s closed: %s (%" PRIu64
                 " bytes in, %" PRIu64 " out)",
                 TG__PEER(&t->c->info), t->c->info.lc->name, t->b->backend->name, t->b->target, why,
                 t->c->conn.bytes_read, t->c->conn.bytes_written);
}

static void tunnel_end(struct tg_tunnel *t, const char *why)
{
    tunnel_log(t, why);
    tg_conn_close(&t->b->conn);
    tg__client_close(t->c);
}

/* Both directions ended and everything was written: done. */
static void maybe_done(struct tg_tunnel *t)
{
    struct tg_conn *a = &t->c->conn, *b = &t->b->conn;
    if (a->rd_eof && b->rd_eof && a->wr_shut && b->wr_shut)
        tunnel_end(t, "both sides finished");
}

static bool want_read(const struct tg_conn *conn)
{
    /* Our input is the other side's output: read while it has room. */
    return conn->in.data == NULL || conn->in.len < conn->in.cap || conn->in.off == conn->in.len;
}

static size_t read_room(struct tg_conn *conn)
{
    tg_conn_buf_get(conn->w, &conn->in, TUNNEL_BUF);
    if (conn->in.off == conn->in.len)
        conn->in.off = conn->in.len = 0;
    else if (conn->in.off > conn->in.cap / 2)
        tg_buf_compact(&conn->in);
    return conn->in.cap - conn->in.len;
}

static void on_read(struct tg_conn *conn)
{
    struct tg_tunnel *t = tun_of(conn);
    struct tg_conn *other = peer_of(t, conn);
    if (conn->rd_eof) {
        tg_conn_shutdown(other); /* after what is still queued */
        tg_conn_update(conn);
        maybe_done(t);
        return;
    }
    tg_conn_flush(other);
}

static void on_drain(struct tg_conn *conn)
{
    /* conn wrote from the other side's input: that side may read again. */
    struct tg_tunnel *t = tun_of(conn);
    struct tg_conn *other = peer_of(t, conn);
    if (!tg_conn_closed(other))
        tg_conn_update(other);
    maybe_done(t);
}

/* One side failed (a reset, a TLS error): the other side's stream is cut, and is told so (no
 * close_notify, a reset when plain), never ended as if it were whole. */
static void on_error(struct tg_conn *conn, int err, bool writing)
{
    struct tg_tunnel *t = tun_of(conn);
    (void)writing;
    if (conn == t->cconn) {
        tunnel_log(t, "the client's side failed");
        tg_conn_abort(&t->b->conn);
        tg__client_close(t->c);
        return;
    }
    char d[128];
    snprintf(d, sizeof(d), "%s while tunnelling: the client's connection is cut", strerror(-err));
    tg__backend_log_failure(conn->w, &t->c->info, t->b->backend, t->b->target, TG_PF_RESET, d);
    tunnel_log(t, "the backend's side failed");
    tg__client_abort(t->c, "the backend's side of the tunnel failed"); /* closes b too */
}

static void on_timer(struct tg_conn *conn)
{
    struct tg_tunnel *t = tun_of(conn);
    uint64_t now = uv_now(&conn->w->loop);
    uint64_t last = TG_MAX(t->c->conn.last_io_ms, t->b->conn.last_io_ms);
    if (now - last < t->idle_ms) {
        tg_conn_timer(conn, t->idle_ms - (now - last));
        return;
    }
    tg_log_info("client %s listener=%s: tunnel idle for %" PRIu64 " ms (timeouts.idle)",
                TG__PEER(&t->c->info), t->c->info.lc->name, t->idle_ms);
    tunnel_end(t, "idle");
}

static void on_closed(struct tg_conn *conn)
{
    struct tg_tunnel *t = tun_of(conn);
    bool client = conn == t->cconn; /* compared, never followed: one side may be freed */
    /* Hand the struct back to its owner's teardown. */
    if (client)
        tg__client_on_closed(conn);
    else
        tg__backend_on_closed(conn);
    if (++t->closed == 2)
        free(t);
}

static void unused_open(struct tg_conn *conn)
{
    (void)conn;
}

static void unused_fail(struct tg_conn *conn, enum tg_conn_fail why, int err)
{
    (void)conn;
    (void)why;
    (void)err;
}

static const struct tg_conn_handler tunnel_conn = {
    .on_open = unused_open,
    .on_fail = unused_fail,
    .read_room = read_room,
    .want_read = want_read,
    .on_read = on_read,
    .on_error = on_error,
    .on_drain = on_drain,
    .on_timer = on_timer,
    .on_closed = on_closed,
};

void tg__tunnel_start(struct tg_client *c, struct tg_bconn *b)
{
    struct tg_tunnel *t = tg_xcalloc(1, sizeof(*t));
    t->c = c;
    t->b = b;
    t->cconn = &c->conn;
    t->idle_ms = c->info.snap->cfg->timeouts.idle_ms;
    c->tun = t;
    c->phase = TG_CP_TUNNEL;
    c->timer_kind = TG_CT_NONE;
    b->state = TG_B_ACTIVE;
    tg_conn_timer(&b->conn, 0);
    /* Anything still queued for the client (a 101 head) goes first: the backend's bytes are
     * appended after it by pointing the client's output at the backend's input only once the
     * client's own output is empty. */
    tg_conn_set_handler(&c->conn, &tunnel_conn, t);
    tg_conn_set_handler(&b->conn, &tunnel_conn, t);
    b->conn.out = &c->conn.in;
    if (tg_buf_used(c->conn.out) > 0 && c->conn.out == &c->conn.own_out) {
        /* Move the unsent head in front of the backend's first bytes. */
        struct tg_buf *o = &c->conn.own_out, *bin = &b->conn.in;
        size_t pending = tg_buf_used(o), have = bin->data ? tg_buf_used(bin) : 0;
        tg_conn_buf_get(b->conn.w, bin, TUNNEL_BUF);
        tg_buf_compact(bin);
        if (bin->cap - bin->len < pending) {
            tunnel_end(t, "no room for the upgrade response");
            return;
        }
        memmove(bin->data + pending, bin->data, have);
        memcpy(bin->data, o->data + o->off, pending);
        bin->len = pending + have;
        o->off = o->len = 0;
    }
    tg_conn_buf_put_if_empty(c->conn.w, &c->conn.own_out);
    c->conn.out = &b->conn.in;
    tg_conn_timer(&c->conn, t->idle_ms);
    /* Bytes that arrived with the upgrade (either side) go on at once. */
    tg_conn_flush(&b->conn);
    if (!tg_conn_closed(&c->conn))
        tg_conn_flush(&c->conn);
    if (!tg_conn_closed(&c->conn)) {
        tg_conn_read(&c->conn);
        tg_conn_update(&c->conn);
    }
    if (!tg_conn_closed(&b->conn)) {
        tg_conn_read(&b->conn);
        tg_conn_update(&b->conn);
    }
}
