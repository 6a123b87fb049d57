/* What each worker knows about backend targets: in or out of rotation (passive failures, active
 * health checks), connections in use (least_connections), the TLS session to resume, and
 * warnings already given. Per worker and per snapshot: nothing here is shared or locked. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/log.h"

/* Without health checks a failed target gets real traffic again after this long. */
#define PASSIVE_RETRY_MS 5000
#define HEALTH_TICK_MS   100

struct tg_target_state {
    uint64_t down_until_ms;
    uint32_t active;
    bool down;
    bool cert_warned;
    bool probing;
    SSL_SESSION *sess;
};

/* Which workers have a target out of rotation, for the admin API: one slot per (backend name,
 * target address), found by a 64-bit hash, a bit per worker. Lock-free; written only on a change
 * of rotation, never on the way of a request that finds its target usable. */
#define ROT_SLOTS 1024
struct rot_slot {
    _Atomic uint64_t key;
    _Atomic uint64_t workers;
};
static struct rot_slot rot[ROT_SLOTS];

static uint64_t rot_key(const char *backend, const char *address)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = backend; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = address; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ? h : 1;
}

static struct rot_slot *rot_find(uint64_t key, bool claim)
{
    for (size_t n = 0, i = key % ROT_SLOTS; n < ROT_SLOTS; n++, i = (i + 1) % ROT_SLOTS) {
        uint64_t k = atomic_load(&rot[i].key);
        if (k == key)
            return &rot[i];
        if (k != 0)
            continue;
        if (!claim)
            return NULL;
        uint64_t zero = 0;
        if (atomic_compare_exchange_strong(&rot[i].key, &zero, key) || zero == key)
            return &rot[i];
    }
    return NULL;
}

static void rot_note(struct tg_worker *w, const struct tg_backend_conf *be, size_t ti, bool down)
{
    struct rot_slot *s = rot_find(rot_key(be->name, be->targets[ti].address), down);
    uint64_t bit = 1ull << (w->id % 64);
    if (s == NULL)
        return;
    if (down)
        atomic_fetch_or(&s->workers, bit);
    else
        atomic_fetch_and(&s->workers, ~bit);
}

uint64_t tg_proxy_target_out(const char *backend, const char *address)
{
    struct rot_slot *s = rot_find(rot_key(backend, address), false);
    return s ? atomic_load(&s->workers) : 0;
}

struct tg_probe {
    struct tg_conn conn;
    struct tg_probe *prev, *next; /* the worker's probes in flight */
    struct tg_snapshot *snap;
    size_t bi, ti;
    bool done;
};

static void states_free(struct tg_proxy_worker *pw)
{
    for (size_t i = 0; i < pw->n_tstates; i++)
        SSL_SESSION_free(pw->tstates[i].sess);
    free(pw->tstates);
    free(pw->toffset);
    free(pw->next_check_ms);
    pw->tstates = NULL;
    pw->toffset = NULL;
    pw->next_check_ms = NULL;
    pw->n_tstates = 0;
    tg_snapshot_unref(pw->tsnap);
    pw->tsnap = NULL;
}

/* The index of backend `name`'s target `address` in cfg, or SIZE_MAX. */
static size_t find_target(const struct tg_proxy_worker *pw, const struct tg_config *cfg,
                          const char *name, const char *address)
{
    for (size_t bi = 0; bi < cfg->n_backends; bi++) {
        const struct tg_backend_conf *be = &cfg->backends[bi];
        if (strcmp(be->name, name) != 0)
            continue;
        for (size_t ti = 0; ti < be->n_targets; ti++)
            if (strcmp(be->targets[ti].address, address) == 0)
                return pw->toffset[bi] + ti;
        return SIZE_MAX;
    }
    return SIZE_MAX;
}

/* Builds the states for the worker's current snapshot. A target that is still there (same
 * backend name and address) keeps what was known of it: out of rotation, connections in use,
 * a probe in flight. TLS sessions are not kept: the new policy may verify differently. */
static void states_build(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    struct tg_snapshot *snap = w->snap;
    const struct tg_config *cfg = snap->cfg;
    size_t *off = tg_xcalloc(cfg->n_backends + 1, sizeof(*off));
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        off[i] = n;
        n += cfg->backends[i].n_targets;
    }
    struct tg_target_state *st = tg_xcalloc(n ? n : 1, sizeof(*st));
    if (pw->tsnap != NULL) {
        const struct tg_config *old = pw->tsnap->cfg;
        for (size_t bi = 0; bi < cfg->n_backends; bi++)
            for (size_t ti = 0; ti < cfg->backends[bi].n_targets; ti++) {
                size_t k = find_target(pw, old, cfg->backends[bi].name,
                                       cfg->backends[bi].targets[ti].address);
                if (k == SIZE_MAX)
                    continue;
                struct tg_target_state *d = &st[off[bi] + ti];
                *d = pw->tstates[k];
                d->sess = NULL;
            }
    }
    states_free(pw);
    pw->toffset = off;
    pw->next_check_ms = tg_xcalloc(cfg->n_backends + 1, sizeof(*pw->next_check_ms));
    pw->tstates = st;
    pw->n_tstates = n;
    pw->tsnap = tg_snapshot_ref(snap);
}

void tg__targets_on_snapshot(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    if (pw != NULL && pw->tsnap != NULL && pw->tsnap != w->snap)
        states_build(w);
}

/* The state of (bi, ti) of snap. Connections accepted under an older snapshot share the state of
 * the same backend name and target address in the current one (or get none: NULL), so a reload
 * forgets nothing about a target that is down. */
static struct tg_target_state *state(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi,
                                     size_t ti)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    if (pw == NULL || w->snap == NULL)
        return NULL;
    if (pw->tsnap != w->snap)
        states_build(w);
    if (snap == pw->tsnap)
        return &pw->tstates[pw->toffset[bi] + ti];
    const struct tg_backend_conf *be = &snap->cfg->backends[bi];
    size_t k = find_target(pw, pw->tsnap->cfg, be->name, be->targets[ti].address);
    return k == SIZE_MAX ? NULL : &pw->tstates[k];
}

bool tg__target_usable(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi, size_t ti)
{
    struct tg_target_state *s = state(w, snap, bi, ti);
    if (s == NULL || !s->down)
        return true;
    return uv_now(&w->loop) >= s->down_until_ms;
}

uint64_t tg__target_load(const struct tg_snapshot *snap, struct tg_worker *w, size_t bi, size_t ti)
{
    struct tg_target_state *s = state(w, snap, bi, ti);
    return s ? s->active : 0;
}

void tg__target_failed(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi, size_t ti)
{
    struct tg_target_state *s = state(w, snap, bi, ti);
    if (s == NULL)
        return;
    const struct tg_backend_conf *be = &snap->cfg->backends[bi];
    if (!s->down && be->n_targets > 1)
        tg_log_warn("backend %s target %s: out of rotation (%s)", be->name, be->targets[ti].address,
                    be->health.enabled ? "until a health check passes"
                                       : "retried with traffic in 5 s");
    if (!s->down)
        rot_note(w, be, ti, true);
    s->down = true;
    s->down_until_ms = be->health.enabled ? UINT64_MAX : uv_now(&w->loop) + PASSIVE_RETRY_MS;
}

void tg__target_ok(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi, size_t ti)
{
    struct tg_target_state *s = state(w, snap, bi, ti);
    if (s == NULL || !s->down)
        return;
    const struct tg_backend_conf *be = &snap->cfg->backends[bi];
    tg_log_info("backend %s target %s: back in rotation", be->name, be->targets[ti].address);
    rot_note(w, be, ti, false);
    s->down = false;
}

void tg__target_conn_start(struct tg_bconn *b)
{
    struct tg_target_state *s = state(b->conn.w, b->snap, b->backend_idx, b->target_idx);
    if (s != NULL && !b->counted) {
        s->active++;
        b->counted = true;
    }
}

void tg__target_conn_done(struct tg_bconn *b)
{
    if (!b->counted)
        return;
    b->counted = false;
    struct tg_target_state *s = state(b->conn.w, b->snap, b->backend_idx, b->target_idx);
    if (s != NULL && s->active > 0)
        s->active--;
}

bool tg__target_note_unrequested(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi,
                                 size_t ti)
{
    struct tg_target_state *s = state(w, snap, bi, ti);
    if (s == NULL || s->cert_warned)
        return false;
    s->cert_warned = true;
    return true;
}

SSL_SESSION *tg__target_session(struct tg_worker *w, const struct tg_snapshot *snap, size_t bi,
                                size_t ti)
{
    struct tg_target_state *s = state(w, snap, bi, ti);
    return s ? s->sess : NULL;
}

/* OpenSSL hands over a resumable session of a backend connection (worker thread). */
static void session_hook(SSL *ssl, SSL_SESSION *sess)
{
    struct tg_conn *conn = SSL_get_app_data(ssl);
    struct tg_target_state *s = NULL;
    if (conn != NULL) {
        if (conn->h == &tg__probe_handler) {
            struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
            s = state(conn->w, p->snap, p->bi, p->ti);
        } else {
            struct tg_bconn *b = tg__bconn_of(conn);
            s = state(conn->w, b->snap, b->backend_idx, b->target_idx);
        }
    }
    if (s == NULL) {
        SSL_SESSION_free(sess);
        return;
    }
    SSL_SESSION_free(s->sess);
    s->sess = sess;
}

void tg_proxy_snapshot_init(struct tg_snapshot *snap)
{
    for (size_t i = 0; snap->backend_tls != NULL && i < snap->cfg->n_backends; i++)
        if (snap->backend_tls[i] != NULL)
            tg_tls_client_set_session_hook(snap->backend_tls[i], session_hook);
}

/* ---- active health checks ---- */

static void probe_result(struct tg_probe *p, bool ok, const char *why)
{
    if (p->done)
        return;
    p->done = true;
    struct tg_worker *w = p->conn.w;
    const struct tg_backend_conf *be = &p->snap->cfg->backends[p->bi];
    if (ok) {
        tg__target_ok(w, p->snap, p->bi, p->ti);
    } else {
        struct tg_target_state *s = state(w, p->snap, p->bi, p->ti);
        if (s != NULL && !s->down)
            tg_log_warn("backend %s target %s: health check failed: %s", be->name,
                        be->targets[p->ti].address, why);
        tg__target_failed(w, p->snap, p->bi, p->ti);
    }
    tg_conn_close(&p->conn);
}

static void probe_on_open(struct tg_conn *conn)
{
    struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
    const struct tg_backend_conf *be = &p->snap->cfg->backends[p->bi];
    if (be->health.path == NULL) {
        probe_result(p, true, NULL);
        return;
    }
    const struct tg_target_conf *t = &be->targets[p->ti];
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsgate-health\r\n"
                     "Connection: close\r\n\r\n",
                     be->health.path, be->tls.server_name ? be->tls.server_name : t->address);
    tg_conn_buf_get(conn->w, &conn->own_out, 1024);
    if (n < 0 || (size_t)n >= sizeof(req) || !tg_buf_append(&conn->own_out, req, (size_t)n)) {
        probe_result(p, false, "health check path too long");
        return;
    }
    tg_conn_flush(conn);
}

static void probe_on_fail(struct tg_conn *conn, enum tg_conn_fail why, int err)
{
    struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
    char d[128];
    snprintf(d, sizeof(d), "%s",
             why == TG_CONN_FAIL_CONNECT ? strerror(err) : "TLS handshake failed");
    ERR_clear_error();
    p->done = true;
    struct tg_target_state *s = state(conn->w, p->snap, p->bi, p->ti);
    const struct tg_backend_conf *be = &p->snap->cfg->backends[p->bi];
    if (s != NULL && !s->down)
        tg_log_warn("backend %s target %s: health check failed: %s", be->name,
                    be->targets[p->ti].address, d);
    tg__target_failed(conn->w, p->snap, p->bi, p->ti);
}

static bool probe_want_read(const struct tg_conn *conn)
{
    (void)conn;
    return true;
}

static size_t probe_read_room(struct tg_conn *conn)
{
    tg_conn_buf_get(conn->w, &conn->in, 1024);
    return conn->in.cap - conn->in.len;
}

static void probe_on_read(struct tg_conn *conn)
{
    struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
    const char *d = conn->in.data;
    size_t n = conn->in.len;
    const char *eol = n ? memchr(d, '\n', n) : NULL;
    if (eol == NULL && !conn->rd_eof && n < conn->in.cap)
        return;
    int status = 0;
    if (n >= 12 && memcmp(d, "HTTP/1.", 7) == 0 && d[8] == ' ')
        status = (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0');
    char why[64];
    snprintf(why, sizeof(why), status ? "status %d" : "no HTTP response", status);
    probe_result(p, status >= 200 && status < 400, why);
}

static void probe_on_error(struct tg_conn *conn, int err, bool writing)
{
    struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
    (void)writing;
    probe_result(p, false, strerror(-err));
}

static void probe_on_timer(struct tg_conn *conn)
{
    struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
    if (conn->state != TG_CONN_OPEN) {
        p->done = true;
        tg__target_failed(conn->w, p->snap, p->bi, p->ti);
        tg_conn_close(conn);
        return;
    }
    probe_result(p, false, "timed out");
}

static void probe_on_closed(struct tg_conn *conn)
{
    struct tg_probe *p = TG_CONTAINER(conn, struct tg_probe, conn);
    struct tg_target_state *s = state(conn->w, p->snap, p->bi, p->ti);
    if (s != NULL)
        s->probing = false;
    struct tg_proxy_worker *pw = tg_pw(conn->w);
    if (pw != NULL) {
        if (p->prev)
            p->prev->next = p->next;
        else
            pw->probes = p->next;
        if (p->next)
            p->next->prev = p->prev;
    }
    tg_snapshot_unref(p->snap);
    free(p);
}

const struct tg_conn_handler tg__probe_handler = {
    .on_open = probe_on_open,
    .on_fail = probe_on_fail,
    .read_room = probe_read_room,
    .want_read = probe_want_read,
    .on_read = probe_on_read,
    .on_error = probe_on_error,
    .on_timer = probe_on_timer,
    .on_closed = probe_on_closed,
};

static void probe_start(struct tg_worker *w, size_t bi, size_t ti)
{
    struct tg_snapshot *snap = w->snap;
    const struct tg_backend_conf *be = &snap->cfg->backends[bi];
    const struct tg_target_conf *t = &be->targets[ti];
    struct tg_target_state *s = state(w, snap, bi, ti);
    if (s == NULL || s->probing)
        return;
    SSL *ssl = NULL;
    struct tg_tls_client *tc = snap->backend_tls ? snap->backend_tls[bi] : NULL;
    if (tc != NULL && (ssl = tg_tls_client_ssl_new(tc, t)) == NULL) {
        ERR_clear_error();
        return;
    }
    if (ssl != NULL && s->sess != NULL)
        SSL_set_session(ssl, s->sess);
    struct tg_probe *p = tg_xcalloc(1, sizeof(*p));
    p->snap = tg_snapshot_ref(snap);
    p->bi = bi;
    p->ti = ti;
    if (ssl != NULL)
        SSL_set_app_data(ssl, &p->conn);
    if (tg_conn_connect(&p->conn, w, (const struct sockaddr *)&t->addr, t->addr_len, ssl,
                        ssl ? &tg_transport_tls_client : &tg_transport_plain, &tg__probe_handler,
                        p) != 0) {
        SSL_free(ssl);
        tg_snapshot_unref(p->snap);
        free(p);
        tg__target_failed(w, snap, bi, ti);
        return;
    }
    s->probing = true;
    struct tg_proxy_worker *pw = tg_pw(w);
    p->next = pw->probes;
    if (pw->probes)
        pw->probes->prev = p;
    pw->probes = p;
    tg_conn_timer(&p->conn, be->health.timeout_ms);
}

static void health_tick(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    struct tg_proxy_worker *pw = tg_pw(w);
    if (w->draining || w->snap == NULL)
        return;
    const struct tg_config *cfg = w->snap->cfg;
    uint64_t now = uv_now(&w->loop);
    for (size_t bi = 0; bi < cfg->n_backends; bi++) {
        const struct tg_backend_conf *be = &cfg->backends[bi];
        if (!be->health.enabled || be->kind != TG_BACKEND_HTTP)
            continue;
        if (state(w, w->snap, bi, 0) == NULL || now < pw->next_check_ms[bi])
            continue;
        pw->next_check_ms[bi] = now + be->health.interval_ms;
        for (size_t ti = 0; ti < be->n_targets; ti++)
            probe_start(w, bi, ti);
    }
}

void tg__targets_init(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    uv_timer_init(&w->loop, &pw->health_timer);
    pw->health_timer.data = w;
    uv_timer_start(&pw->health_timer, health_tick, HEALTH_TICK_MS, HEALTH_TICK_MS);
    uv_unref((uv_handle_t *)&pw->health_timer); /* never keeps a draining worker alive */
}

void tg__targets_stop(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    uv_timer_stop(&pw->health_timer);
    for (struct tg_probe *p = pw->probes; p != NULL; p = p->next)
        tg_conn_close(&p->conn); /* unlinked in on_closed, later */
}

/* libuv keeps a closing handle on its list until the loop's next turn: the struct holding the
 * timer is freed only then. */
static void pw_free_on_close(uv_handle_t *h)
{
    free((char *)h - offsetof(struct tg_proxy_worker, health_timer));
}

void tg__targets_free(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    states_free(pw);
    uv_close((uv_handle_t *)&pw->health_timer, pw_free_on_close);
}
