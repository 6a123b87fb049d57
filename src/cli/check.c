/* The 'check' verb: validates a config, builds every listener's and TLS backend's contexts
 * without serving, and prints each one's effective TLS policy. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "cli/sandbox.h"
#include "config/config.h"
#include "core/core.h"
#include "tls/tls.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsgate check [-c FILE]\n"
               "       tlsgate check -c FILE --client-cert CERT [--chain FILE] [--listener NAME]\n"
               "\n"
               "Validates the config (every error with file:line:column and JSON path), loads\n"
               "every keystore and truststore in use, and prints the effective TLS policy of\n"
               "each listener and backend.\n"
               "Without -c, checks the embedded default config (state directory from\n"
               "$TLSGATE_STATE_DIR or ./tlsgate-state; the default certificate is made there if\n"
               "missing). Exit status: 0 valid, 2 invalid.\n"
               "\n"
               "With --client-cert, dry-runs the decision the listener (the first one asking\n"
               "for client certificates, or --listener NAME) makes now for that certificate\n"
               "(PEM; intermediates may follow it or come from --chain): chain, depth, usage,\n"
               "allow list and revocation (CRL files, and CRLs/OCSP fetched over http).\n"
               "Exit status: 0 admitted, 1 refused, 2 invalid config or usage.\n");
}

/* Every certificate of a PEM file, in order; NULL (with a message) if none can be read. */
static STACK_OF(X509) * read_certs(const char *file)
{
    BIO *bio = BIO_new_file(file, "r");
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (bio != NULL && sk != NULL && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (sk_X509_push(sk, x) <= 0)
            X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
    if (sk == NULL || sk_X509_num(sk) == 0) {
        fprintf(stderr, "tlsgate check: %s: no PEM certificate found\n", file);
        sk_X509_pop_free(sk, X509_free);
        return NULL;
    }
    return sk;
}

/* The client-certificate dry run: 0 admitted, 1 refused, 2 usage. */
static int client_decision(const struct tg_config *cfg, struct tg_tls_server **servers,
                           const char *listener, const char *cert_file, const char *chain_file)
{
    size_t li = SIZE_MAX;
    for (size_t i = 0; i < cfg->n_listeners && li == SIZE_MAX; i++) {
        if (listener != NULL ? strcmp(cfg->listeners[i].name, listener) == 0
                             : tg_tls_server_client_auth(servers[i]))
            li = i;
    }
    if (li == SIZE_MAX) {
        if (listener != NULL)
            fprintf(stderr, "tlsgate check: no listener named \"%s\"\n", listener);
        else
            fprintf(stderr, "tlsgate check: no listener asks for client certificates "
                            "(tls.client_auth)\n");
        return TG_EXIT_USAGE;
    }
    STACK_OF(X509) *certs = read_certs(cert_file);
    STACK_OF(X509) *more = chain_file ? read_certs(chain_file) : NULL;
    if (certs == NULL || (chain_file != NULL && more == NULL)) {
        sk_X509_pop_free(certs, X509_free);
        sk_X509_pop_free(more, X509_free);
        return TG_EXIT_USAGE;
    }
    for (int i = 0; i < sk_X509_num(more); i++) {
        X509 *x = sk_X509_value(more, i);
        X509_up_ref(x);
        if (sk_X509_push(certs, x) <= 0)
            X509_free(x);
    }
    char detail[600];
    X509 *leaf = sk_X509_value(certs, 0);
    enum tg_tls_fail f =
        tg_tls_server_client_check(servers[li], leaf, certs, true, detail, sizeof(detail));
    const char *name = cfg->listeners[li].name;
    if (!tg_tls_server_client_auth(servers[li]))
        printf("admitted: listener \"%s\" does not ask for client certificates\n", name);
    else if (f == TG_TLS_FAIL_NONE)
        printf("admitted: listener \"%s\": %s\n", name, detail);
    else
        printf("refused: listener \"%s\": reason=%s: %s (%s)\n", name, tg_tls_fail_info(f)->token,
               tg_tls_fail_info(f)->sentence, detail);
    sk_X509_pop_free(certs, X509_free);
    sk_X509_pop_free(more, X509_free);
    return f == TG_TLS_FAIL_NONE ? TG_EXIT_OK : 1;
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

static void print_proxy_protocol(const struct tg_listener_conf *lc)
{
    printf("  proxy_protocol: a PROXY v1/v2 header first, from ");
    if (lc->n_proxy_protocol_from == 0)
        printf("every peer");
    for (size_t k = 0; k < lc->n_proxy_protocol_from; k++) {
        const struct tg_cidr *c = &lc->proxy_protocol_from[k];
        char a[INET6_ADDRSTRLEN] = "?";
        inet_ntop(c->family, c->addr, a, sizeof(a));
        printf("%s%s/%u", k ? ", " : "", a, c->bits);
    }
    printf("%s\n", lc->n_proxy_protocol_from ? " (others are direct clients)" : "");
}

static void print_tickets(const struct tg_config *cfg)
{
    const struct tg_tickets_conf *tc = &cfg->tickets;
    printf("\nclient-certificate sessions (session_tickets.client_auth): ");
    if (tg_config_tickets_stateful(cfg))
        printf("stateful: kept in this process (at most %u; resumed on this instance only)\n",
               tc->client_auth_sessions);
    else
        printf("stateless: tickets any instance sharing the ticket keys resumes%s\n",
               tc->client_auth == TG_TICKETS_CAUTH_DEFAULT ? " (the default with shared keys)"
                                                           : "");
    printf("session tickets: ");
    if (tc->key_file != NULL) {
        struct tg_tls_tickets *t = NULL;
        char why[512];
        if (tg_tls_tickets_load(tc->key_file, &t, why, sizeof(why)) == 0)
            printf("key file %s: %zu key(s), the first encrypts; re-read when it changes\n",
                   tc->key_file, tg_tls_tickets_count(t));
        else
            printf("key file: %s\n", why);
        tg_tls_tickets_unref(t);
        return;
    }
    printf("keys made in memory, rotated every %u s, %u kept for decrypting (sessions resume "
           "across reloads, not across instances: set key_file for that)\n",
           tc->rotate_seconds, tc->keep);
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
        {"config", required_argument, NULL, 'c'}, {"client-cert", required_argument, NULL, 'C'},
        {"chain", required_argument, NULL, 'H'},  {"listener", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    const char *client_cert = NULL, *chain = NULL, *listener = NULL;
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
        case 'C':
            client_cert = optarg;
            break;
        case 'H':
            chain = optarg;
            break;
        case 'L':
            listener = optarg;
            break;
        case 'h':
            usage(stdout);
            rc = TG_EXIT_OK;
            goto out;
        case ':':
            fprintf(stderr, "tlsgate check: %s needs a value\n\n", argv[optind - 1]);
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

    char which[2048] = "";
    int lrc;
    if (file != NULL && tg_config_is_instance_file(file)) /* store etcd: the config is in etcd */
        lrc = tg_admin_state_check(file, &cfg, which, sizeof(which), &err);
    else
        lrc = tg_cli_load_config(file, &cfg, &err);
    if (lrc == 0 && cfg != NULL && which[0] == '\0')
        lrc = tg_admin_state_check(file, &cfg, which, sizeof(which), &err);
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
    if (lrc == 0 && cfg != NULL)
        tg_tls_keystores_check(cfg, &err); /* those no listener or backend loaded */
    tg_err_print(&err, stderr);
    if (lrc != 0 || tg_err_count(&err) > 0) {
        size_t n = tg_err_count(&err);
        fprintf(stderr, "%zu error%s\n", n ? n : 1, n == 1 || n == 0 ? "" : "s");
        rc = TG_EXIT_USAGE;
        goto out;
    }
    if (client_cert != NULL) {
        rc = client_decision(cfg, servers, listener, client_cert, chain);
        goto out;
    }
    if (chain != NULL || listener != NULL) {
        fprintf(stderr, "tlsgate check: --chain and --listener go with --client-cert\n");
        goto out;
    }
    tg_tls_staples_refresh(true); /* OCSP staples to fetch: ask the responders once */
    printf("config OK: %s\n", file ? file : "<embedded default>");
    printf("config used by run: %s\n", which);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct tg_listener_conf *lc = &cfg->listeners[i];
        printf("\n");
        if (lc->tls.disabled)
            printf("listener \"%s\" %s (%s)\n  TLS disabled (plaintext)\n", lc->name, lc->address,
                   lc->mode == TG_MODE_TCP ? "tcp" : "http");
        else if (servers[i] != NULL)
            tg_tls_server_print_policy(servers[i], stdout);
        if (lc->proxy_protocol)
            print_proxy_protocol(lc);
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
    print_tickets(cfg);
    for (size_t i = 0; i < cfg->n_backends; i++)
        print_backend(cfg, i, clients[i]);
    tg_tls_keystores_print(cfg, stdout);
    struct tg_sandbox *sb = tg_cli_sandbox_new(cfg, file);
    tg_cli_sandbox_print(sb, stdout);
    tg_cli_sandbox_free(sb);
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
