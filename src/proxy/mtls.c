/* Client certificates on the proxy side: revocation fetches run in libuv's thread pool while the
 * handshakes that need them wait (one fetch per URL and worker, whatever the number of waiting
 * handshakes), and live re-authorisation of open connections when a new snapshot arrives. */
#include "proxy/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/log.h"

static void fetch_work(uv_work_t *req)
{
    struct tg__fetch *p = req->data;
    tg_tls_fetch_run(p->f);
}

static void fetch_done(uv_work_t *req, int status)
{
    struct tg__fetch *p = req->data;
    struct tg_proxy_worker *pw = tg_pw(p->w);
    (void)status;
    /* p stays listed while its waiters resume, so that one closing meanwhile still finds its
     * place (client.c); none joins it any more. */
    p->done = true;
    for (size_t i = 0; i < p->n_waiters; i++) {
        struct tg_client *c = p->waiters[i].c;
        if (c == NULL)
            continue;
        p->waiters[i].c = NULL;
        c->fetch_waiting = false;
        uint64_t now = uv_now(&c->conn.w->loop);
        uint64_t end = tg__client_accepted_ms(c, now) + tg__cfg(c)->timeouts.handshake_ms;
        tg_conn_timer(&c->conn, end > now ? end - now : 1); /* back to the handshake's deadline */
        tg_conn_handshake_resume(&c->conn);
    }
    for (struct tg__fetch **pp = &pw->fetches; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    tg_tls_fetch_unref(p->f);
    free(p->waiters);
    free(p);
}

/* When a handshake stops waiting for revocation data: timeouts.handshake after accept, less a
 * tenth of it (100 ms to 1 s) to finish, so that "status unknown" comes in time to admit under
 * soft_fail, and to refuse naming the fetch under hard_fail, rather than a handshake timeout. */
static uint64_t wait_deadline(const struct tg_client *c)
{
    uint64_t hs = tg__cfg(c)->timeouts.handshake_ms;
    uint64_t margin = TG_MIN(TG_MAX(hs / 10, (uint64_t)100), (uint64_t)1000);
    return tg__client_accepted_ms(c, uv_now(&c->conn.w->loop)) + (hs > margin ? hs - margin : 0);
}

/* tg_tls_fetch_cb: runs inside the paused handshake of a client connection. */
static bool fetch_hook(SSL *ssl, struct tg_tls_fetch *f)
{
    struct tg_conn *conn = tg_conn_of_ssl(ssl); /* tied by tg_conn_init */
    if (conn == NULL || conn->w == NULL || conn->w->proto == NULL) {
        tg_tls_fetch_unref(f);
        return false;
    }
    struct tg_client *c = tg__client_of(conn);
    struct tg_proxy_worker *pw = tg_pw(conn->w);
    uint64_t now = uv_now(&conn->w->loop), until = wait_deadline(c);
    if (now >= until) { /* no time left to wait: verification goes on without it */
        tg_tls_server_stop_waiting(ssl);
        tg_tls_fetch_unref(f);
        return false;
    }
    struct tg__fetch *p = pw->fetches;
    while (p != NULL && (p->f != f || p->done))
        p = p->next;
    if (p != NULL) {
        tg_tls_fetch_unref(f); /* p holds one */
    } else {
        p = tg_xcalloc(1, sizeof(*p));
        p->w = conn->w;
        p->f = f;
        p->work.data = p;
        if (uv_queue_work(&conn->w->loop, &p->work, fetch_work, fetch_done) != 0) {
            tg_tls_fetch_unref(f);
            free(p);
            return false;
        }
        p->next = pw->fetches;
        pw->fetches = p;
        tg_log_debug("client %s listener=%s: handshake waits for revocation data from %s",
                     TG__PEER(&c->info), c->info.lc->name, tg_tls_fetch_url(f));
    }
    p->waiters = tg_xrealloc(p->waiters, (p->n_waiters + 1) * sizeof(*p->waiters));
    p->waiters[p->n_waiters++] = (struct tg__waiter){.c = c, .since_ms = now};
    c->fetch_waiting = true;
    /* The handshake timer fires at the end of the waiting time (client.c: fetch_wait_expired). */
    tg_conn_timer(&c->conn, until - now);
    return true;
}

static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

static void hook_init(void)
{
    tg_tls_set_fetch_hook(fetch_hook);
}

void tg__mtls_init(void)
{
    pthread_once(&hook_once, hook_init);
}

/* ---- live re-authorisation ---- */

static const struct tg_tls_server *listener_tls(const struct tg_snapshot *s, const char *name,
                                                const struct tg_listener_conf **lc)
{
    for (size_t i = 0; i < s->cfg->n_listeners; i++)
        if (s->cfg->listeners[i].name != NULL && strcmp(s->cfg->listeners[i].name, name) == 0) {
            *lc = &s->cfg->listeners[i];
            return s->tls[i];
        }
    *lc = NULL;
    return NULL;
}

/* The new policy's decision for c's certificate; TG_TLS_FAIL_NONE keeps the connection. */
static enum tg_tls_fail reauthorize(struct tg_client *c, const struct tg_snapshot *snap,
                                    char *detail, size_t n)
{
    const struct tg_listener_conf *nlc = NULL;
    const struct tg_tls_server *ts = listener_tls(snap, c->info.lc->name, &nlc);
    if (nlc == NULL || ts == NULL || !tg_tls_server_client_auth(ts) ||
        !nlc->tls.client_auth.reauthorize_live)
        return TG_TLS_FAIL_NONE;
    X509 *leaf = c->has_cert ? SSL_get0_peer_certificate(c->conn.ssl) : NULL;
    enum tg_tls_fail f = tg_tls_server_client_check(
        ts, leaf, leaf ? SSL_get_peer_cert_chain(c->conn.ssl) : NULL, false, detail, n);
    /* Only what is known counts: data not fetched yet never closes a live connection. */
    return f == TG_TLS_FAIL_CERT_STATUS_UNKNOWN ? TG_TLS_FAIL_NONE : f;
}

void tg__mtls_on_snapshot(struct tg_worker *w)
{
    struct tg_proxy_worker *pw = tg_pw(w);
    for (struct tg_client *c = pw->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->info.snap == w->snap || c->conn.ssl == NULL || c->phase == TG_CP_HANDSHAKE ||
            c->info.lc->tls.client_auth.mode == TG_CAUTH_NONE)
            continue;
        char detail[512];
        enum tg_tls_fail f = reauthorize(c, w->snap, detail, sizeof(detail));
        if (f == TG_TLS_FAIL_NONE)
            continue;
        const struct tg_tls_fail_info *fi = tg_tls_fail_info(f);
        bool in_flight = c->info.lc->mode == TG_MODE_HTTP && c->phase == TG_CP_REQUEST;
        TG_STAT_INC(&w->stats, reauth_closed);
        tg_log_info("client %s listener=%s: closed after reload: reason=%s: %s (%s)%s",
                    TG__PEER(&c->info), c->info.lc->name, fi->token, fi->sentence, detail,
                    in_flight ? "; after the response in flight" : "");
        if (in_flight)
            c->close_after = true;
        else
            tg__client_close(c);
    }
}
