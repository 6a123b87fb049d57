/* The workers' counters in Prometheus text format (summed over every worker; failure reasons are
 * the failure tables' tokens). */
#include "proxy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define SUM(field)                                                                                 \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (unsigned i_ = 0; i_ < nw; i_++)                                                       \
            s_ += TG_STAT_GET(&net->workers[i_].stats, field);                                     \
        s_;                                                                                        \
    })

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tg_proxy_metrics_write(FILE *f)
{
    struct tg_net *net = tg_net_running;
    if (net == NULL)
        return;
    unsigned nw = net->n_workers;
    family(f, "tlsgate_connections_open", "gauge", "Client connections open now.");
    fprintf(f, "tlsgate_connections_open %llu\n", (unsigned long long)SUM(active));
    family(f, "tlsgate_connections_accepted_total", "counter", "Client connections accepted.");
    fprintf(f, "tlsgate_connections_accepted_total %llu\n", (unsigned long long)SUM(accepted));
    family(f, "tlsgate_connections_closed_total", "counter",
           "Client connections accepted and since closed (accepted = closed + open).");
    fprintf(f, "tlsgate_connections_closed_total %llu\n", (unsigned long long)SUM(closed));
    family(f, "tlsgate_connections_rejected_total", "counter",
           "Client connections refused at accept, by reason.");
    for (int k = 1; k < TG_NET_REFUSE__COUNT; k++)
        fprintf(f, "tlsgate_connections_rejected_total{reason=\"%s\"} %llu\n",
                tg_net_refuse_info((enum tg_net_refuse)k)->token,
                (unsigned long long)SUM(refused[k]));
    family(f, "tlsgate_listener_connections_open", "gauge",
           "Client connections open now, by listener.");
    for (size_t i = 0; i < TG_NET_LISTENER_SLOTS && tg_net_listener_slot_name(i) != NULL; i++)
        fprintf(f, "tlsgate_listener_connections_open{listener=\"%s\"} %llu\n",
                tg_net_listener_slot_name(i), (unsigned long long)SUM(l_open[i]));
    family(f, "tlsgate_listener_connections_accepted_total", "counter",
           "Client connections accepted, by listener.");
    for (size_t i = 0; i < TG_NET_LISTENER_SLOTS && tg_net_listener_slot_name(i) != NULL; i++)
        fprintf(f, "tlsgate_listener_connections_accepted_total{listener=\"%s\"} %llu\n",
                tg_net_listener_slot_name(i), (unsigned long long)SUM(l_accepted[i]));
    family(f, "tlsgate_listener_requests_total", "counter",
           "HTTP requests answered, by listener and status class.");
    static const char *const lclasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t i = 0; i < TG_NET_LISTENER_SLOTS && tg_net_listener_slot_name(i) != NULL; i++)
        for (int k = 1; k <= 5; k++)
            fprintf(f, "tlsgate_listener_requests_total{listener=\"%s\",code=\"%s\"} %llu\n",
                    tg_net_listener_slot_name(i), lclasses[k - 1],
                    (unsigned long long)SUM(l_responses[i][k]));
    family(f, "tlsgate_handshakes_total", "counter", "TLS handshakes with clients, by result.");
    fprintf(f, "tlsgate_handshakes_total{result=\"ok\"} %llu\n",
            (unsigned long long)SUM(handshakes));
    uint64_t failed = 0;
    for (int k = 1; k < TG_TLS_FAIL__COUNT; k++)
        failed += SUM(hs_fail[k]);
    fprintf(f, "tlsgate_handshakes_total{result=\"failed\"} %llu\n", (unsigned long long)failed);
    family(f, "tlsgate_handshake_failures_total", "counter",
           "Failed TLS handshakes with clients, by reason (the handshake-failure table's token).");
    for (int k = 1; k < TG_TLS_FAIL__COUNT; k++)
        fprintf(f, "tlsgate_handshake_failures_total{reason=\"%s\"} %llu\n",
                tg_tls_fail_info((enum tg_tls_fail)k)->token, (unsigned long long)SUM(hs_fail[k]));
    family(f, "tlsgate_resumptions_total", "counter", "TLS handshakes that resumed a session.");
    fprintf(f, "tlsgate_resumptions_total %llu\n", (unsigned long long)SUM(resumed));
    family(f, "tlsgate_client_auth_sessions_cached", "gauge",
           "Client-certificate sessions held for stateful resumption now "
           "(session_tickets.client_auth).");
    fprintf(f, "tlsgate_client_auth_sessions_cached %zu\n", tg_tls_sessions_count());
    family(f, "tlsgate_client_auth_sessions_bytes", "gauge",
           "Heap bytes those sessions take: each is kept encoded until its ticket lifetime ends "
           "or session_tickets.client_auth_sessions is reached.");
    fprintf(f, "tlsgate_client_auth_sessions_bytes %zu\n", tg_tls_sessions_bytes());
    family(f, "tlsgate_early_data_total", "counter",
           "TLS 1.3 handshakes that offered early data (0-RTT), by what became of it.");
    for (int k = 1; k < TG_TLS_EARLY__COUNT; k++)
        fprintf(f, "tlsgate_early_data_total{result=\"%s\"} %llu\n",
                tg_tls_early_token((enum tg_tls_early)k), (unsigned long long)SUM(early_data[k]));
    family(f, "tlsgate_early_data_requests_total", "counter",
           "Requests that came in TLS early data: served from it (with Early-Data: 1), held until "
           "the handshake finished (not safe to replay), answered 425 by the backend.");
    fprintf(f, "tlsgate_early_data_requests_total{how=\"served\"} %llu\n",
            (unsigned long long)SUM(early_served));
    fprintf(f, "tlsgate_early_data_requests_total{how=\"held\"} %llu\n",
            (unsigned long long)SUM(early_held));
    fprintf(f, "tlsgate_early_data_requests_total{how=\"too_early\"} %llu\n",
            (unsigned long long)SUM(early_too_early));
    family(f, "tlsgate_tls_versions_total", "counter",
           "TLS handshakes with clients, by negotiated version.");
    static const char *const versions[] = {"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
    for (int k = 0; k < 4; k++)
        fprintf(f, "tlsgate_tls_versions_total{version=\"%s\"} %llu\n", versions[k],
                (unsigned long long)SUM(tls_versions[k]));
    family(f, "tlsgate_tls_suites_total", "counter",
           "TLS handshakes with clients, by negotiated cipher suite (OpenSSL names).");
    const char *names[TG_NET_TLS_SUITES * 4];
    size_t n_names = 0;
    for (unsigned w = 0; w < nw; w++)
        for (int i = 0; i < TG_NET_TLS_SUITES; i++) {
            const char *nm =
                atomic_load_explicit(&net->workers[w].stats.suite_name[i], memory_order_acquire);
            if (nm == NULL)
                break;
            bool seen = false;
            for (size_t j = 0; j < n_names && !seen; j++)
                seen = strcmp(names[j], nm) == 0;
            if (!seen && n_names < TG_ARRAY_SIZE(names))
                names[n_names++] = nm;
        }
    for (size_t j = 0; j < n_names; j++) {
        uint64_t total = 0;
        for (unsigned w = 0; w < nw; w++)
            for (int i = 0; i < TG_NET_TLS_SUITES; i++) {
                const char *nm = atomic_load_explicit(&net->workers[w].stats.suite_name[i],
                                                      memory_order_acquire);
                if (nm != NULL && strcmp(nm, names[j]) == 0)
                    total += TG_STAT_GET(&net->workers[w].stats, suite_count[i]);
            }
        fprintf(f, "tlsgate_tls_suites_total{suite=\"%s\"} %llu\n", names[j],
                (unsigned long long)total);
    }
    family(f, "tlsgate_requests_total", "counter", "HTTP requests answered, by status class.");
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int k = 1; k <= 5; k++)
        fprintf(f, "tlsgate_requests_total{code=\"%s\"} %llu\n", classes[k - 1],
                (unsigned long long)SUM(responses[k]));
    family(f, "tlsgate_request_refusals_total", "counter",
           "Requests the gateway refused itself, by reason (the refusal table's token).");
    for (int k = 1; k < TG_HF__COUNT; k++)
        fprintf(f, "tlsgate_request_refusals_total{reason=\"%s\"} %llu\n",
                tg__hfail_info((enum tg_hfail)k)->token, (unsigned long long)SUM(http_fail[k]));
    family(f, "tlsgate_backend_failures_total", "counter",
           "Failures toward backends, by reason (the backend-failure tables' tokens).");
    for (int k = 1; k < TG_PF__COUNT; k++)
        if (!tg__pfail_is_tls(k))
            fprintf(f, "tlsgate_backend_failures_total{reason=\"%s\"} %llu\n",
                    tg__pfail_info((enum tg_pfail)k)->token,
                    (unsigned long long)SUM(backend_fail[k]));
    for (int k = 1; k < TG_TLS_BFAIL__COUNT; k++)
        fprintf(f, "tlsgate_backend_failures_total{reason=\"%s\"} %llu\n",
                tg_tls_bfail_info((enum tg_tls_bfail)k)->token,
                (unsigned long long)SUM(backend_hs_fail[k]));
    family(f, "tlsgate_backend_connections_total", "counter",
           "Backend connections, by how they were had.");
    fprintf(f, "tlsgate_backend_connections_total{how=\"connect\"} %llu\n",
            (unsigned long long)SUM(backend_connects));
    fprintf(f, "tlsgate_backend_connections_total{how=\"reuse\"} %llu\n",
            (unsigned long long)SUM(backend_reuses));
    family(f, "tlsgate_backend_pool_dropped_total", "counter",
           "Pooled backend connections closed because the backend sent bytes, an end or a reset "
           "after their last response.");
    fprintf(f, "tlsgate_backend_pool_dropped_total %llu\n",
            (unsigned long long)SUM(backend_pool_dropped));
    family(f, "tlsgate_backend_pool_idle", "gauge",
           "Idle backend connections kept for reuse (all workers).");
    fprintf(f, "tlsgate_backend_pool_idle %llu\n", (unsigned long long)SUM(backend_pool_idle));
    family(f, "tlsgate_config_snapshots_live", "gauge",
           "Config snapshots in memory: the current one plus older ones open connections hold.");
    fprintf(f, "tlsgate_config_snapshots_live %llu\n", (unsigned long long)tg_snapshots_live());
    family(f, "tlsgate_websocket_upgrades_total", "counter", "WebSocket upgrades relayed.");
    fprintf(f, "tlsgate_websocket_upgrades_total %llu\n",
            (unsigned long long)SUM(websocket_upgrades));
    family(f, "tlsgate_client_cert_reauth_closed_total", "counter",
           "Open connections closed on reload because the new policy refuses their certificate.");
    fprintf(f, "tlsgate_client_cert_reauth_closed_total %llu\n",
            (unsigned long long)SUM(reauth_closed));
    family(f, "tlsgate_access_log_dropped_lines_total", "counter",
           "Access-log lines lost because writing them failed (a full disk).");
    fprintf(f, "tlsgate_access_log_dropped_lines_total %llu\n",
            (unsigned long long)SUM(alog_dropped));
    family(f, "tlsgate_error_log_lost_lines_total", "counter",
           "Error-log lines lost because writing them failed (a full disk).");
    fprintf(f, "tlsgate_error_log_lost_lines_total %llu\n", (unsigned long long)tg_log_lost());
    struct tg_heap heap;
    tg_heap_stats(&heap);
    family(f, "tlsgate_heap_allocated_bytes", "gauge",
           "Bytes in live heap allocations, as the allocator counts them (glibc malloc, or the "
           "sanitizer's allocator in an ASan build), read when this page is asked.");
    fprintf(f, "tlsgate_heap_allocated_bytes{allocator=\"%s\"} %llu\n", heap.allocator,
            (unsigned long long)heap.allocated);
    family(f, "tlsgate_heap_mapped_bytes", "gauge",
           "Bytes the heap allocator holds from the system: live allocations, free blocks kept "
           "for reuse and the allocator's overhead.");
    fprintf(f, "tlsgate_heap_mapped_bytes{allocator=\"%s\"} %llu\n", heap.allocator,
            (unsigned long long)heap.mapped);
    family(f, "tlsgate_workers", "gauge", "Worker threads.");
    fprintf(f, "tlsgate_workers %u\n", nw);
    family(f, "tlsgate_uptime_seconds", "gauge", "Seconds since start.");
    fprintf(f, "tlsgate_uptime_seconds %llu\n",
            (unsigned long long)((tg_now_ms() - net->started_ms) / 1000));
}
