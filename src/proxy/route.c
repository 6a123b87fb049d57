/* Route matching: first route whose host and path prefix match the request wins. */
#include "proxy/proxy.h"

#include <string.h>

#include "core/core.h"
#include "http/http.h"

size_t tg_host_strip_port(const char *host, size_t len)
{
    if (len > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', len);
        return close ? (size_t)(close - host) + 1 : len;
    }
    const char *colon = memchr(host, ':', len);
    return colon ? (size_t)(colon - host) : len;
}

static bool host_matches(const char *pattern, const char *host, size_t len)
{
    if (len > 0 && host[len - 1] == '.') /* "example.com." is "example.com" */
        len--;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t sl = strlen(pattern + 1); /* ".example.com" */
        return len > sl && tg_strncaseeq(host + len - sl, pattern + 1, sl);
    }
    return strlen(pattern) == len && tg_strncaseeq(pattern, host, len);
}

const struct tg_route_conf *tg_route_match(const struct tg_listener_conf *lc, const char *host,
                                           size_t host_len, const char *path, size_t path_len)
{
    for (size_t i = 0; i < lc->n_routes; i++) {
        const struct tg_route_conf *r = &lc->routes[i];
        if (r->host != NULL && (host == NULL || !host_matches(r->host, host, host_len)))
            continue;
        const char *prefix = r->path_prefix ? r->path_prefix : "/";
        if (!tg_http_prefix_match(prefix, strlen(prefix), path, path_len))
            continue;
        return r;
    }
    return NULL;
}
