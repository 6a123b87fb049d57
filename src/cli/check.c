/* The 'check' verb: validates a config, builds every listener's and TLS backend's contexts
 * without serving, and prints each one's effective TLS policy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"
#include "tls/tls.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsgate check [-c FILE]\n"
               "\n"
               "Validates the config (every error with file:line:column and JSON path), loads\n"
               "every keystore and truststore in use, and prints the effective TLS policy of\n"
               "each listener and backend.\n"
               "Without -c, checks the embedded default config (state directory from\n"
               "$TLSGATE_STATE_DIR or ./tlsgate-state; the default certificate is made there if\n"
               "missing). Exit status: 0 valid, 2 invalid.\n");
}

/* How a backend's targets are reached, from who uses it: "HTTP/1.1", "TCP" or both. */
static const char *backend_protocol(const struct tg_config *cfg, size_t idx)
{
    bool http = false, tcp = false;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        if (lc->mode == TG_MODE_TCP && lc->backend_idx == idx && lc->backend != NULL)
            tcp = true;
        for (size_t r = 0; r < lc->n_routes; r++)
            http = http || lc->routes[r].backend_idx == idx;
    }
    return tcp ? (http ? "HTTP/1.1 and TCP" : "TCP") : "HTTP/1.1";
}

static void print_backend(const struct tg_config *cfg, size_t idx, const struct tg_tls_client *tc)
{
    const struct tg_backend_conf *bc = &cfg->backends[idx];
    printf("\nbackend \"%s\"", bc->name);
    if (bc->kind == TG_BACKEND_STATUS) {
        printf(": built-in status page\n");
        return;
    }
    printf(": %s %s%s, targets %s with failover:", bc->tls.enabled ? "TLS" : "plaintext",
           backend_protocol(cfg, idx), bc->tls.enabled ? "" : " (no TLS)",
           bc->balance == TG_BALANCE_LEAST_CONNECTIONS ? "by least connections" : "round-robin");
    for (size_t t = 0; t < bc->n_targets; t++)
        printf(" %s", bc->targets[t].address);
    printf("\n");
    if (tc != NULL)
        tg_tls_client_print_policy(tc, stdout);
    printf("  balance: %s; health: ",
           bc->balance == TG_BALANCE_LEAST_CONNECTIONS ? "least_connections" : "round_robin");
    if (!bc->health.enabled)
        printf("off (targets are only skipped after failed connects)\n");
    else if (bc->health.path != NULL)
        printf("HTTP GET %s expecting 2xx/3xx every %g s, timeout %g s\n", bc->health.path,
               (double)bc->health.interval_ms / 1000, (double)bc->health.timeout_ms / 1000);
    else
        printf("TCP connect every %g s, timeout %g s\n", (double)bc->health.interval_ms / 1000,
               (double)bc->health.timeout_ms / 1000);
}

/* Loads the embedded default, making its self-signed certificate first as `run` would. */
int tg_cli_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    struct tg_config *cfg = NULL;
    struct tg_tls_server **servers = NULL;
    struct tg_tls_client **clients = NULL;
    struct tg_err err;
    int rc = TG_EXIT_USAGE;
    int c;

    tg_err_init(&err);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'h':
            usage(stdout);
            rc = TG_EXIT_OK;
            goto out;
        case ':':
            fprintf(stderr, "tlsgate check: %s needs a file name\n\n", argv[optind - 1]);
            usage(stderr);
            goto out;
        default:
            fprintf(stderr, "tlsgate check: unknown option %s\n\n", argv[optind - 1]);
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tlsgate check: unexpected argument %s (use -c FILE)\n\n", argv[optind]);
        usage(stderr);
        goto out;
    }

    int lrc = tg_cli_load_config(file, &cfg, &err);
    if (lrc == 0 && cfg != NULL) {
        servers = tg_xcalloc(cfg->n_listeners + 1, sizeof(*servers));
        /* Every listener and TLS backend is built, so one run reports all their problems. */
        for (size_t i = 0; i < cfg->n_listeners; i++)
            if (!cfg->listeners[i].tls.disabled)
                tg_tls_server_new(cfg, i, &servers[i], &err);
        clients = tg_xcalloc(cfg->n_backends + 1, sizeof(*clients));
        for (size_t i = 0; i < cfg->n_backends; i++)
            if (cfg->backends[i].kind == TG_BACKEND_HTTP && cfg->backends[i].tls.enabled)
                tg_tls_client_new(cfg, &cfg->backends[i], &clients[i], &err);
    }
    tg_err_print(&err, stderr);
    if (lrc != 0 || tg_err_count(&err) > 0) {
        size_t n = tg_err_count(&err);
        fprintf(stderr, "%zu error%s\n", n ? n : 1, n == 1 || n == 0 ? "" : "s");
        rc = TG_EXIT_USAGE;
        goto out;
    }
    printf("config OK: %s\n", file ? file : "<embedded default>");
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        printf("\n");
        if (lc->tls.disabled)
            printf("listener \"%s\" %s (%s)\n  TLS disabled (plaintext)\n", lc->name, lc->address,
                   lc->mode == TG_MODE_TCP ? "tcp" : "http");
        else if (servers[i] != NULL)
            tg_tls_server_print_policy(servers[i], stdout);
        if (lc->mode == TG_MODE_TCP)
            printf("  forwards to backend \"%s\"; proxy_protocol_out: %s\n", lc->backend,
                   lc->proxy_protocol_out ? "on (PROXY v2 with TLS details)" : "off");
        for (size_t r = 0; r < lc->n_routes; r++) {
            const struct tg_route_conf *rt = &lc->routes[r];
            printf("  route %zu: host %s, path prefix %s -> backend \"%s\"\n", r,
                   rt->host ? rt->host : "any", rt->path_prefix ? rt->path_prefix : "/",
                   rt->backend);
        }
    }
    for (size_t i = 0; i < cfg->n_backends; i++)
        print_backend(cfg, i, clients[i]);
    rc = TG_EXIT_OK;
out:
    if (servers != NULL)
        for (size_t i = 0; i < cfg->n_listeners; i++)
            tg_tls_server_free(servers[i]);
    free(servers);
    if (clients != NULL)
        for (size_t i = 0; i < cfg->n_backends; i++)
            tg_tls_client_free(clients[i]);
    free(clients);
    tg_config_free(cfg);
    tg_err_close(&err);
    return rc;
}
