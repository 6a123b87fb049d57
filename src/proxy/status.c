/* The built-in status backend: JSON with version, uptime and counters summed over all workers. */
#include "proxy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/esc.h"
#include "core/log.h"

char *tg_status_json(void)
{
    struct tg_net *net = tg_net_running;
    struct tg_stats sum;
    memset(&sum, 0, sizeof(sum));
    unsigned nw = 0;
    uint64_t up = 0, gen = 0;
    if (net != NULL) {
        nw = net->n_workers;
        up = (tg_now_ms() - net->started_ms) / 1000;
        gen = atomic_load(&net->generation);
        for (unsigned i = 0; i < nw; i++) {
            struct tg_stats *s = &net->workers[i].stats;
#define SUM(f) TG_STAT_ADD(&sum, f, TG_STAT_GET(s, f))
            SUM(accepted);
            SUM(active);
            for (int k = 0; k < TG_NET_REFUSE__COUNT; k++)
                SUM(refused[k]);
            SUM(closed);
            SUM(handshakes);
            SUM(resumed);
            SUM(requests);
            SUM(backend_connects);
            SUM(backend_reuses);
            SUM(backend_pool_dropped);
            SUM(backend_pool_idle);
            SUM(backend_errors);
            SUM(backend_timeouts);
            SUM(body_timeouts);
            SUM(backend_tls_failures);
            for (int k = 0; k < TG_TLS_BFAIL__COUNT; k++)
                SUM(backend_hs_fail[k]);
            for (int k = 0; k < TG_NET_BACKEND_FAIL_MAX; k++)
                SUM(backend_fail[k]);
            for (int k = 0; k < TG_NET_HTTP_FAIL_MAX; k++)
                SUM(http_fail[k]);
            SUM(websocket_upgrades);
            SUM(reauth_closed);
            for (int k = 0; k < TG_TLS_EARLY__COUNT; k++)
                SUM(early_data[k]);
            SUM(early_served);
            SUM(early_held);
            SUM(early_too_early);
            SUM(alog_dropped);
            for (int k = 0; k < TG_NET_H2_CALM_MAX; k++)
                SUM(h2_calm[k]);
            for (int k = 0; k < TG_PPIN_FAIL__COUNT; k++)
                SUM(ppin_fail[k]);
            for (int k = 0; k < TG_TLS_FAIL__COUNT; k++)
                SUM(hs_fail[k]);
            for (int k = 0; k < 6; k++)
                SUM(responses[k]);
#undef SUM
        }
    }
    /* Through the one JSON writer, like the logs: failure tokens and the version are ours
     * today, but nothing here should depend on that. */
    char buf[8192]; /* every counter at 20 digits still fits */
    struct tg_jobj o;
    tg_jobj_init(&o, buf, sizeof(buf));
    tg_jobj_str(&o, "status", "ok");
    tg_jobj_str(&o, "version", TG_VERSION);
    tg_jobj_uint(&o, "config_generation", gen);
    /* the current config's snapshot plus older ones open connections still hold */
    tg_jobj_uint(&o, "config_snapshots_live", tg_snapshots_live());
    tg_jobj_uint(&o, "workers", nw);
    tg_jobj_uint(&o, "uptime_seconds", up);
    tg_jobj_begin(&o, "connections");
    tg_jobj_uint(&o, "active", TG_STAT_GET(&sum, active));
    tg_jobj_uint(&o, "accepted", TG_STAT_GET(&sum, accepted));
    tg_jobj_uint(&o, "closed", TG_STAT_GET(&sum, closed));
    tg_jobj_uint(&o, "rejected_max_connections",
                 TG_STAT_GET(&sum, refused[TG_NET_REFUSE_MAX_CONNECTIONS]));
    tg_jobj_end(&o);
    /* Connections closed at accept, by reason (per-address limits, max_connections). */
    tg_jobj_begin(&o, "connection_refusals");
    for (int k = 1; k < TG_NET_REFUSE__COUNT; k++)
        tg_jobj_uint(&o, tg_net_refuse_info((enum tg_net_refuse)k)->token,
                     TG_STAT_GET(&sum, refused[k]));
    tg_jobj_end(&o);
    tg_jobj_begin(&o, "handshakes");
    tg_jobj_uint(&o, "completed", TG_STAT_GET(&sum, handshakes));
    tg_jobj_uint(&o, "resumed", TG_STAT_GET(&sum, resumed));
    /* Open connections closed on reload because the new policy refuses their certificate. */
    tg_jobj_uint(&o, "client_cert_reauth_closed", TG_STAT_GET(&sum, reauth_closed));
    tg_jobj_end(&o);
    /* TLS 1.3 early data: handshakes by what became of it, and requests that came in it. */
    tg_jobj_begin(&o, "early_data");
    for (int k = 1; k < TG_TLS_EARLY__COUNT; k++)
        tg_jobj_uint(&o, tg_tls_early_token((enum tg_tls_early)k),
                     TG_STAT_GET(&sum, early_data[k]));
    tg_jobj_uint(&o, "requests_served", TG_STAT_GET(&sum, early_served));
    tg_jobj_uint(&o, "requests_held", TG_STAT_GET(&sum, early_held));
    tg_jobj_uint(&o, "backend_too_early", TG_STAT_GET(&sum, early_too_early));
    tg_jobj_end(&o);
    tg_jobj_begin(&o, "handshake_failures");
    for (int k = 1; k < TG_TLS_FAIL__COUNT; k++)
        tg_jobj_uint(&o, tg_tls_fail_info((enum tg_tls_fail)k)->token,
                     TG_STAT_GET(&sum, hs_fail[k]));
    tg_jobj_end(&o);
    tg_jobj_begin(&o, "requests");
    tg_jobj_uint(&o, "total", TG_STAT_GET(&sum, requests));
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int k = 1; k <= 5; k++)
        tg_jobj_uint(&o, classes[k - 1], TG_STAT_GET(&sum, responses[k]));
    tg_jobj_uint(&o, "body_timeouts", TG_STAT_GET(&sum, body_timeouts));
    tg_jobj_end(&o);
    tg_jobj_begin(&o, "backends");
    tg_jobj_uint(&o, "connects", TG_STAT_GET(&sum, backend_connects));
    tg_jobj_uint(&o, "reuses", TG_STAT_GET(&sum, backend_reuses));
    tg_jobj_uint(&o, "pool_dropped", TG_STAT_GET(&sum, backend_pool_dropped));
    tg_jobj_uint(&o, "pool_idle", TG_STAT_GET(&sum, backend_pool_idle));
    tg_jobj_uint(&o, "errors", TG_STAT_GET(&sum, backend_errors));
    tg_jobj_uint(&o, "timeouts", TG_STAT_GET(&sum, backend_timeouts));
    tg_jobj_uint(&o, "tls_failures", TG_STAT_GET(&sum, backend_tls_failures));
    tg_jobj_end(&o);
    /* Requests we refused ourselves, one counter per row of the refusal table. */
    tg_jobj_begin(&o, "request_failures");
    for (int k = 1; k < TG_HF__COUNT; k++)
        tg_jobj_uint(&o, tg__hfail_info((enum tg_hfail)k)->token, TG_STAT_GET(&sum, http_fail[k]));
    tg_jobj_end(&o);
    /* One counter per row of the backend-failure tables (tokens as in the log lines). */
    tg_jobj_begin(&o, "backend_failures");
    for (int k = 1; k < TG_PF__COUNT; k++)
        if (!tg__pfail_is_tls(k))
            tg_jobj_uint(&o, tg__pfail_info((enum tg_pfail)k)->token,
                         TG_STAT_GET(&sum, backend_fail[k]));
    for (int k = 1; k < TG_TLS_BFAIL__COUNT; k++)
        tg_jobj_uint(&o, tg_tls_bfail_info((enum tg_tls_bfail)k)->token,
                     TG_STAT_GET(&sum, backend_hs_fail[k]));
    tg_jobj_end(&o);
    /* PROXY protocol headers refused on proxy_protocol listeners, by reason. */
    tg_jobj_begin(&o, "proxy_protocol_failures");
    for (int k = 1; k < TG_PPIN_FAIL__COUNT; k++)
        tg_jobj_uint(&o, tg_ppin_fail_token((enum tg_ppin_fail)k), TG_STAT_GET(&sum, ppin_fail[k]));
    tg_jobj_end(&o);
    /* HTTP/2 connections ended with ENHANCE_YOUR_CALM, by defence (h2calm.c). */
    tg_jobj_begin(&o, "http2_calm");
    for (int k = 1; k < TG_H2C__COUNT; k++)
        tg_jobj_uint(&o, tg__h2_calm_info((enum tg_h2_calm)k)->token,
                     TG_STAT_GET(&sum, h2_calm[k]));
    tg_jobj_end(&o);
    /* ACME attempts that failed (each logged with reason=acme_failed). */
    tg_jobj_begin(&o, "acme");
    tg_jobj_uint(&o, "failures", tg_acme_failures());
    tg_jobj_end(&o);
    tg_jobj_begin(&o, "websocket");
    tg_jobj_uint(&o, "upgrades", TG_STAT_GET(&sum, websocket_upgrades));
    tg_jobj_end(&o);
    /* Access-log lines lost to failed writes (a full disk): the requests were served. */
    tg_jobj_begin(&o, "access_log");
    tg_jobj_uint(&o, "dropped_lines", TG_STAT_GET(&sum, alog_dropped));
    tg_jobj_end(&o);
    tg_jobj_begin(&o, "error_log");
    tg_jobj_uint(&o, "lost_lines", tg_log_lost());
    tg_jobj_end(&o);
    /* The heap as the allocator counts it, read now (core/heap.c): tells the program's memory
     * from the allocator's and, under ASan, from the sanitizer's own (quarantine, shadow). */
    struct tg_heap heap;
    tg_heap_stats(&heap);
    tg_jobj_begin(&o, "memory");
    tg_jobj_str(&o, "allocator", heap.allocator);
    tg_jobj_uint(&o, "heap_allocated_bytes", heap.allocated);
    tg_jobj_uint(&o, "heap_mapped_bytes", heap.mapped);
    tg_jobj_uint(&o, "heap_free_bytes", heap.free);
    /* part of the live heap that grows with new mTLS clients for a ticket lifetime (2 h by
     * default) and then stays: a soak tells it from a leak by this */
    tg_jobj_uint(&o, "client_auth_sessions", tg_tls_sessions_count());
    tg_jobj_uint(&o, "client_auth_sessions_bytes", tg_tls_sessions_bytes());
    tg_jobj_end(&o);
    tg_jobj_finish(&o, true);
    return tg_xstrdup(buf);
}

/* The status page as a stream handler: it answers from on_head and takes no body. */
static void status_on_head(struct tg_stream *st)
{
    st->discard_body = true;
    if (strcmp(st->method, "GET") != 0 && strcmp(st->method, "HEAD") != 0) {
        static const char body[] = "the status backend answers GET and HEAD only\n";
        tg__stream_respond(st, 405, "text/plain", "Cache-Control", "no-store", body,
                           sizeof(body) - 1);
        return;
    }
    char *body = tg_status_json();
    tg__stream_respond(st, 200, "application/json", "Cache-Control", "no-store", body,
                       strlen(body));
    free(body);
}

static size_t status_body_room(struct tg_stream *st)
{
    (void)st;
    return 0;
}

static bool status_on_body(struct tg_stream *st, const char *p, size_t len, bool end)
{
    (void)st;
    (void)p;
    (void)len;
    (void)end;
    return true;
}

static void status_on_room(struct tg_stream *st)
{
    (void)st;
}

static void status_on_done(struct tg_stream *st, bool complete)
{
    (void)st;
    (void)complete;
}

const struct tg_stream_handler tg__status_handler = {
    .name = "status",
    .on_head = status_on_head,
    .body_room = status_body_room,
    .on_body = status_on_body,
    .on_room = status_on_room,
    .on_done = status_on_done,
};
