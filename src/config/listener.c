/* Listeners and their routes: the "listeners" array of the config (sections.c parses the rest). */
#include "config/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/core.h"

static const struct tg_config__key listener_keys[] = {
    {"name", TG_J_STR, "a string", NULL, "letters, digits, '_', '.', '-'", TG_K_REQUIRED},
    {"address", TG_J_STR, "a string", NULL, "host:port or [v6]:port", TG_K_REQUIRED},
    {"mode", TG_J_STR, "a string", "\"http\"", "http, tcp", 0},
    {"proxy_protocol", TG_J_BOOL, "true or false", "false", NULL, 0},
    {"proxy_protocol_from", TG_J_ARR, "a list of address blocks", "every peer",
     "IPv4/IPv6 addresses or CIDR blocks (10.0.0.0/8, 2001:db8::/32)", 0},
    {"routes", TG_J_ARR, "a list of routes", NULL, "at least one (http only)", 0},
    {"tls", TG_J_OBJ, "an object", NULL, NULL, 0},
    {"backend", TG_J_STR, "a string (backend name)", NULL, "tcp only: a name in backends", 0},
    {"proxy_protocol_out", TG_J_BOOL, "true or false", "false", "tcp only", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key route_keys[] = {
    {"host", TG_J_STR, "a string", "any host", "a name, or *.suffix", 0},
    {"path_prefix", TG_J_STR, "a string", "\"/\"", "starts with /", 0},
    {"backend", TG_J_STR, "a string", NULL, "a name in backends", TG_K_REQUIRED},
    {"client_auth", TG_J_STR, "a string", "the listener's tls.client_auth.mode", "require", 0},
    {"allowed_subjects", TG_J_ARR, "a list of strings", "[] (the listener's list only)",
     "entries as tls.client_auth.allowed_subjects", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static void parse_route(struct tg_config__ctx *c, json_t *obj, const char *ptr,
                        struct tg_route_conf *r)
{
    r->path_prefix = tg_xstrdup("/");
    if (!json_is_object(obj)) {
        tg_config__error(c, ptr, "a route must be an object (got %s)",
                         tg_config__json_type_words(obj));
        return;
    }
    tg_config__check_keys(c, obj, ptr, route_keys);
    json_t *v = tg_config__get(obj, route_keys, "host");
    if (v != NULL) {
        char *p = tg_config__ptr_join(ptr, "host");
        const char *h = json_string_value(v);
        bool ok = h[0] != '\0' && (h[0] != '*' || (h[1] == '.' && h[2] != '\0'));
        for (const char *q = h[0] == '*' ? h + 2 : h; ok && *q; q++)
            ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                 *q == '-' || *q == '.' || *q == '_';
        if (!ok)
            tg_config__error(c, p,
                             "\"%s\" is not a host name (use a name such as "
                             "\"api.example.com\" or \"*.example.com\")",
                             h);
        r->host = tg_xstrdup(h);
        for (char *q = r->host; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        free(p);
    }
    v = tg_config__get(obj, route_keys, "path_prefix");
    if (v != NULL) {
        free(r->path_prefix);
        r->path_prefix = tg_xstrdup(json_string_value(v));
        if (r->path_prefix[0] != '/') {
            char *p = tg_config__ptr_join(ptr, "path_prefix");
            tg_config__error(c, p, "\"%s\" must start with \"/\"", r->path_prefix);
            free(p);
        }
    }
    v = tg_config__get(obj, route_keys, "backend");
    if (v != NULL) {
        r->backend = tg_xstrdup(json_string_value(v));
        tg_config__lookup_backend(c, r->backend, ptr, &r->backend_idx);
    }
    v = tg_config__get(obj, route_keys, "client_auth");
    if (v != NULL)
        r->client_auth_require = tg_config__parse_route_client_auth(c, v, ptr);
    v = tg_config__get(obj, route_keys, "allowed_subjects");
    if (v != NULL)
        tg_config__parse_route_allowed(c, v, ptr, r);
}

static bool valid_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

struct tg_cidr *tg_config__parse_cidrs(struct tg_config__ctx *c, json_t *arr, const char *ptr,
                                       const char *allowed, size_t *n_out)
{
    size_t n = json_array_size(arr);
    struct tg_cidr *out = tg_xcalloc(n ? n : 1, sizeof(*out));
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        char *p = tg_config__ptr_index(ptr, i);
        const char *why = NULL;
        if (!json_is_string(e))
            tg_config__error(c, p, "must be a string (an address or CIDR block), not %s",
                             tg_config__json_type_words(e));
        else if (tg_cidr_parse(json_string_value(e), &out[*n_out], &why) != 0)
            tg_config__error(c, p, "\"%s\" is not an address block: %s%s%s%s", json_string_value(e),
                             why, allowed ? " (allowed: " : "", allowed ? allowed : "",
                             allowed ? ")" : "");
        else
            (*n_out)++;
        free(p);
    }
    return out;
}

/* "proxy_protocol" and "proxy_protocol_from" of a listener. */
static void parse_proxy_protocol(struct tg_config__ctx *c, json_t *obj, struct tg_listener_conf *l)
{
    json_t *v = tg_config__get(obj, listener_keys, "proxy_protocol");
    l->proxy_protocol = v != NULL && json_is_true(v);
    json_t *from = tg_config__get(obj, listener_keys, "proxy_protocol_from");
    const struct tg_limits_conf *lim = &c->cfg->limits;
    if (l->proxy_protocol && from == NULL &&
        (lim->max_connections_per_ip != 0 || lim->handshake_rate_per_ip > 0)) {
        char *pp = tg_config__ptr_join(l->path, "proxy_protocol");
        tg_config__warning(c, pp,
                           "PROXY headers are taken from every peer, so the per-address limits "
                           "(limits.max_connections_per_ip, limits.handshake_rate_per_ip) count "
                           "whatever address a client writes in its header: list the balancers "
                           "in proxy_protocol_from");
        free(pp);
    }
    if (from == NULL)
        return;
    char *fp = tg_config__ptr_join(l->path, "proxy_protocol_from");
    if (!l->proxy_protocol)
        tg_config__error(c, fp, "proxy_protocol_from is only used with \"proxy_protocol\": true");
    size_t n = json_array_size(from);
    if (n == 0)
        tg_config__error(c, fp,
                         "must list at least one address block (leave the key out to accept "
                         "PROXY headers from every peer)");
    l->proxy_protocol_from =
        tg_config__parse_cidrs(c, from, fp, listener_keys[4].allowed, &l->n_proxy_protocol_from);
    free(fp);
}

/* A listener at cfg->listeners[idx]; the admin listener (admin: the "admin" object, always the
 * last listener) takes its own keys, is named "admin" and has no routes. */
void tg_config__parse_listener(struct tg_config__ctx *c, json_t *obj, size_t idx, bool admin)
{
    struct tg_config *cfg = c->cfg;
    struct tg_listener_conf *l = &cfg->listeners[idx];
    const char *why = NULL;
    const struct tg_config__key *keys = admin ? tg_config__admin_keys : listener_keys;

    l->path = admin ? tg_xstrdup("/admin") : tg_config__ptr_index("/listeners", idx);
    l->admin = admin;
    tg_config__loc(c, l->path, &l->loc);
    if (!json_is_object(obj)) {
        tg_config__error(c, l->path, "a listener must be an object (got %s)",
                         tg_config__json_type_words(obj));
        tg_config__parse_tls(c, json_null(), l->path, &l->tls); /* defaults only */
        return;
    }
    tg_config__check_keys(c, obj, l->path, keys);
    json_t *v = admin ? NULL : tg_config__get(obj, listener_keys, "name");
    if (admin)
        l->name = tg_xstrdup("admin");
    if (v != NULL) {
        char *p = tg_config__ptr_join(l->path, "name");
        l->name = tg_xstrdup(json_string_value(v));
        if (!valid_name(l->name))
            tg_config__error(c, p, "\"%s\" is not a listener name (allowed: %s)", l->name,
                             listener_keys[0].allowed);
        else if (strcmp(l->name, "admin") == 0)
            tg_config__error(c, p,
                             "the name \"admin\" is kept for the admin listener (the "
                             "\"admin\" section)");
        for (size_t i = 0; i < idx; i++)
            if (cfg->listeners[i].name != NULL && strcmp(cfg->listeners[i].name, l->name) == 0)
                tg_config__error(c, p, "listener name \"%s\" is already used by %s", l->name,
                                 cfg->listeners[i].path);
        free(p);
    }
    v = tg_config__get(obj, keys, "address");
    if (v != NULL) {
        char *p = tg_config__ptr_join(l->path, "address");
        char *host = NULL;
        uint16_t port;
        l->address = tg_xstrdup(json_string_value(v));
        if (tg_config__split_hostport(l->address, &host, &port, &why) != 0) {
            tg_config__error(c, p, "\"%s\" is not a listen address: %s", l->address, why);
        } else {
            /* An empty host or "*" means every IPv4 address, as in nginx's "listen *:443". */
            const char *h = (host[0] == '\0' || strcmp(host, "*") == 0) ? "0.0.0.0" : host;
            if (tg_config__resolve(h, port, true, &l->addr, &l->addr_len, &why) != 0) {
                tg_config__error(c, p, "cannot resolve \"%s\": %s", host, why);
            } else {
                for (size_t i = 0; i < idx; i++)
                    if (cfg->listeners[i].addr_len != 0 &&
                        tg_addr_equal(&cfg->listeners[i].addr, &l->addr)) {
                        tg_config__error(
                            c, p, "address \"%s\" is already used by listener \"%s\" (%s)",
                            l->address, cfg->listeners[i].name ? cfg->listeners[i].name : "?",
                            cfg->listeners[i].path);
                        break;
                    }
            }
        }
        free(host);
        free(p);
    }
    v = admin ? NULL : tg_config__get(obj, listener_keys, "mode");
    if (v != NULL) {
        char *p = tg_config__ptr_join(l->path, "mode");
        const char *m = json_string_value(v);
        if (strcmp(m, "tcp") == 0)
            l->mode = TG_MODE_TCP;
        else if (strcmp(m, "http") != 0)
            tg_config__error(c, p, "\"%s\" is not a listener mode (allowed: %s)", m,
                             listener_keys[2].allowed);
        free(p);
    }
    if (!admin)
        parse_proxy_protocol(c, obj, l);
    json_t *routes = admin ? NULL : json_object_get(obj, "routes");
    if (admin) {
        /* the admin API serves every path itself */
    } else if (l->mode == TG_MODE_TCP) {
        tg_config__parse_tcp_listener(c, obj, l);
        routes = NULL; /* a tcp listener's routes were reported as such */
    } else {
        static const char *const tcp_only[] = {"backend", "proxy_protocol_out"};
        for (size_t i = 0; i < TG_ARRAY_SIZE(tcp_only); i++) {
            if (json_object_get(obj, tcp_only[i]) == NULL)
                continue;
            char *p = tg_config__ptr_join(l->path, tcp_only[i]);
            tg_config__error(c, p,
                             "\"%s\" is for tcp listeners; an http listener picks backends in "
                             "its routes (or set \"mode\": \"tcp\")",
                             tcp_only[i]);
            free(p);
        }
        if (routes == NULL)
            tg_config__error(c, l->path,
                             "missing required key \"routes\" (an http listener needs "
                             "at least one route)");
    }
    if (json_is_array(routes)) {
        char *rptr = tg_config__ptr_join(l->path, "routes");
        size_t n = json_array_size(routes);
        if (n == 0)
            tg_config__error(c, rptr, "must list at least one route");
        l->routes = tg_xcalloc(n ? n : 1, sizeof(*l->routes));
        l->n_routes = n;
        for (size_t i = 0; i < n; i++) {
            char *p = tg_config__ptr_index(rptr, i);
            parse_route(c, json_array_get(routes, i), p, &l->routes[i]);
            free(p);
        }
        free(rptr);
    }
    json_t *tls = json_object_get(obj, "tls");
    tg_config__parse_tls(c, tls, l->path, &l->tls);
    tg_config__check_route_client_auth(c, l);
    if (l->tls.early_data && (admin || l->mode == TG_MODE_TCP)) {
        char *p = tg_config__ptr_join(l->tls.path, "early_data");
        tg_config__error(c, p,
                         admin ? "early data (0-RTT) is not offered on the admin listener: its "
                                 "requests change state"
                               : "early data (0-RTT) is for http listeners: a tcp listener cannot "
                                 "tell a safe request from another");
        l->tls.early_data = false;
        free(p);
    }
    /* http/1.1 is the default only for http: a tcp listener does not know what it carries. */
    if (l->mode == TG_MODE_TCP && json_object_get(tls, "alpn") == NULL) {
        for (size_t i = 0; i < l->tls.n_alpn; i++)
            free(l->tls.alpn[i]);
        l->tls.n_alpn = 0;
    }
}

void tg_config__listener_free(struct tg_listener_conf *l)
{
    free(l->name);
    free(l->path);
    free(l->address);
    for (size_t j = 0; j < l->n_routes; j++) {
        free(l->routes[j].host);
        free(l->routes[j].path_prefix);
        free(l->routes[j].backend);
        for (size_t k = 0; k < l->routes[j].n_allowed; k++)
            free(l->routes[j].allowed[k]);
        free(l->routes[j].allowed);
        free(l->routes[j].allowed_locs);
    }
    free(l->routes);
    tg_config__tls_conf_free(&l->tls);
    free(l->backend);
    free(l->proxy_protocol_from);
}
