/* The built-in status backend: JSON with version, uptime and counters summed over all workers. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            SUM(rejected_max_conn);
            SUM(handshakes);
            SUM(resumed);
            SUM(requests);
            SUM(backend_connects);
            SUM(backend_reuses);
            SUM(backend_errors);
            SUM(backend_timeouts);
            for (int k = 0; k < TG_TLS_FAIL__COUNT; k++)
                SUM(hs_fail[k]);
            for (int k = 0; k < 6; k++)
                SUM(responses[k]);
#undef SUM
        }
    }
    char fails[2048];
    size_t fl = 0;
    for (int k = 1; k < TG_TLS_FAIL__COUNT; k++) {
        int n =
            snprintf(fails + fl, sizeof(fails) - fl, "%s\"%s\":%" PRIuFAST64, k > 1 ? "," : "",
                     tg_tls_fail_info((enum tg_tls_fail)k)->token, TG_STAT_GET(&sum, hs_fail[k]));
        if (n < 0 || (size_t)n >= sizeof(fails) - fl)
            break;
        fl += (size_t)n;
    }
    fails[fl] = '\0';
    return tg_xasprintf(
        "{\"status\":\"ok\",\"version\":\"%s\",\"config_generation\":%" PRIu64
        ",\"workers\":%u,\"uptime_seconds\":%" PRIu64 ",\"connections\":{\"active\":%" PRIuFAST64
        ",\"accepted\":%" PRIuFAST64 ",\"rejected_max_connections\":%" PRIuFAST64
        "},\"handshakes\":{\"completed\":%" PRIuFAST64 ",\"resumed\":%" PRIuFAST64
        "},\"handshake_failures\":{%s},\"requests\":{\"total\":%" PRIuFAST64 ",\"1xx\":%" PRIuFAST64
        ",\"2xx\":%" PRIuFAST64 ",\"3xx\":%" PRIuFAST64 ",\"4xx\":%" PRIuFAST64
        ",\"5xx\":%" PRIuFAST64 "},\"backends\":{\"connects\":%" PRIuFAST64
        ",\"reuses\":%" PRIuFAST64 ",\"errors\":%" PRIuFAST64 ",\"timeouts\":%" PRIuFAST64 "}}\n",
        TG_VERSION, gen, nw, up, TG_STAT_GET(&sum, active), TG_STAT_GET(&sum, accepted),
        TG_STAT_GET(&sum, rejected_max_conn), TG_STAT_GET(&sum, handshakes),
        TG_STAT_GET(&sum, resumed), fails, TG_STAT_GET(&sum, requests),
        TG_STAT_GET(&sum, responses[1]), TG_STAT_GET(&sum, responses[2]),
        TG_STAT_GET(&sum, responses[3]), TG_STAT_GET(&sum, responses[4]),
        TG_STAT_GET(&sum, responses[5]), TG_STAT_GET(&sum, backend_connects),
        TG_STAT_GET(&sum, backend_reuses), TG_STAT_GET(&sum, backend_errors),
        TG_STAT_GET(&sum, backend_timeouts));
}

void tg__status_respond(struct tg_client *c)
{
    if (strcmp(c->rq->method, "GET") != 0 && strcmp(c->rq->method, "HEAD") != 0) {
        char *body = tg_xstrdup("the status backend answers GET and HEAD only\n");
        tg__status_respond_done(c, 405, "text/plain", body, strlen(body));
        return;
    }
    char *body = tg_status_json();
    tg__status_respond_done(c, 200, "application/json", body, strlen(body));
}
