/* HTTP/1.1 reverse proxy: client connection state machine, backend pools, routes, status page. */
#ifndef TG_PROXY_PROXY_H
#define TG_PROXY_PROXY_H

#include <stddef.h>

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

/* Writes the status page JSON (counters summed over every worker) into a new string. */
char *tg_status_json(void);

#endif
