/* HTTP/1.1 reverse proxy: client connection state machine, backend pools, routes, status page. */
#ifndef TG_PROXY_PROXY_H
#define TG_PROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "net/net.h"

/* The protocol handler workers run for every accepted connection. */
extern const struct tg_net_handler tg_proxy_handler;

/* Prepares a new snapshot for the proxy before workers see it (TLS session hooks of backend
 * contexts). Call right after tg_snapshot_new. */
void tg_proxy_snapshot_init(struct tg_snapshot *snap);

/* First route of lc matching host (port already removed; may be NULL) and path (normalised, no
 * query); NULL if none. Hosts compare case-insensitively; "*.example.com" matches any name ending
 * in ".example.com"; path prefixes match on segment boundaries (tg_http_prefix_match). */
const struct tg_route_conf *tg_route_match(const struct tg_listener_conf *lc, const char *host,
                                           size_t host_len, const char *path, size_t path_len);

/* Splits a Host header value into its host part (IPv6 brackets kept, port dropped). */
size_t tg_host_strip_port(const char *host, size_t len);

/* The workers (bit i: worker i, modulo 64) on which the target at address of the backend named
 * backend is out of rotation now; 0 when it is in rotation everywhere. Any thread. */
uint64_t tg_proxy_target_out(const char *backend, const char *address);

/* Writes the workers' counters (summed) as Prometheus text families to f. */
void tg_proxy_metrics_write(FILE *f);

/* Writes the status page JSON (counters summed over every worker) into a new string. */
char *tg_status_json(void);

/* ---- Services: the admin listener's streams, answered by a layer above (admin) ----
 * The HTTP session, limits, timeouts and access log are the data listeners' own; the service
 * sees a whole request (the body read up to admin.max_body, 413 beyond) and answers it on the
 * worker's thread, at once or later (after work in libuv's thread pool, for example). */
struct tg_svc_req;

struct tg_svc {
    /* A whole request arrived (worker thread). Answer with tg_svc_respond, exactly once. */
    void (*on_request)(struct tg_svc_req *r);
};

/* Registers the service (once, before workers start). Without one, admin requests get 503. */
void tg_proxy_set_service(const struct tg_svc *svc);

const char *tg_svc_method(const struct tg_svc_req *r);
/* The request target as normalised by the request checks (path and query). */
const char *tg_svc_target(const struct tg_svc_req *r);
/* The first field named lname (lower case) as a NUL-terminated copy, or NULL. */
const char *tg_svc_header(const struct tg_svc_req *r, const char *lname);
const char *tg_svc_body(const struct tg_svc_req *r, size_t *len);
const char *tg_svc_peer(const struct tg_svc_req *r); /* "ip:port" */
/* The peer's address without the port (for per-client accounting). */
const char *tg_svc_peer_ip(const struct tg_svc_req *r);
/* The client presented a certificate the listener's client_auth verified and admitted. */
bool tg_svc_client_cert(const struct tg_svc_req *r);
struct tg_worker *tg_svc_worker(const struct tg_svc_req *r);
struct tg_snapshot *tg_svc_snapshot(const struct tg_svc_req *r);
/* Answers r (body copied; fields: name, value pairs ending with NULL, or NULL) and lets go of
 * it. If the client went away meanwhile, only lets go. */
void tg_svc_respond(struct tg_svc_req *r, int status, const char *ctype, const char *const *fields,
                    const char *body, size_t len);

#endif
