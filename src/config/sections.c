/* Config sections: the key tables and the parsers of every object except "tls". */
#include "config/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/addr.h"
#include "core/core.h"
#include "core/log.h"

#define LATER(n)                                                                                   \
    {                                                                                              \
        n, 0x7f, "", NULL, NULL, TG_K_LATER                                                        \
    }

/* ---- Key tables: each key's JSON type, default and allowed values, in one place ---- */

static const struct tg_config__key top_keys[] = {
    {"version", TG_J_INT, "an integer", NULL, "1", TG_K_REQUIRED},
    {"workers", TG_J_STR | TG_J_INT, "\"auto\" or an integer", "\"auto\"", "\"auto\" or 1..256", 0},
    {"state_dir", TG_J_STR, "a string", "$TLSGATE_STATE_DIR, else ./tlsgate-state", NULL, 0},
    {"log", TG_J_OBJ, "an object", "{}", NULL, 0},
    {"keystores", TG_J_OBJ, "an object (name to keystore)", "{}", NULL, 0},
    {"listeners", TG_J_ARR, "a list of listeners", NULL, "at least one", TG_K_REQUIRED},
    {"backends", TG_J_OBJ, "an object (name to backend)", "{}", NULL, 0},
    {"timeouts", TG_J_OBJ, "an object", "{}", NULL, 0},
    {"limits", TG_J_OBJ, "an object", "{}", NULL, 0},
    {"http", TG_J_OBJ, "an object", "{}", NULL, 0},
    {"http2", TG_J_OBJ, "an object", "{}", NULL, 0},
    {"truststores", TG_J_OBJ, "an object (name to truststore)", "{}", NULL, 0},
    {"admin", TG_J_OBJ, "an object", "none (no admin API)", NULL, 0},
    {"auto_reload", TG_J_BOOL, "true or false", "false", NULL, 0},
    {"acme", TG_J_OBJ, "an object", "none (no ACME keystores)", NULL, 0},
    {"session_tickets", TG_J_OBJ, "an object", "{}", NULL, 0},
    {"user", TG_J_STR, "a string (user name or number)", "none: keep the ids run started with",
     NULL, 0},
    {"group", TG_J_STR, "a string (group name or number)", "the user's primary group", NULL, 0},
    {"sandbox", TG_J_OBJ, "an object", "{\"enabled\": true}", NULL, 0},
    {"store", TG_J_OBJ, "an object", "{\"type\": \"file\"}", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key log_keys[] = {
    {"level", TG_J_STR, "a string", "\"info\"", "error, warn, info, debug", 0},
    {"format", TG_J_STR, "a string", "\"text\"", "text, json", 0},
    {"access_log", TG_J_STR | TG_J_NULL, "a string or null", "null (off)",
     "null, \"stdout\", \"stderr\" or a file path", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

#define PASSWORD_WORDS "a string, {\"file\": F}, {\"env\": NAME} or an \"enc:\" value"

static const struct tg_config__key keystore_keys[] = {
    {"type", TG_J_STR, "a string", "\"pem\"", "pem, pkcs12, jks, jceks", 0},
    {"cert", TG_J_STR, "a string (file path)", NULL, NULL, TG_K_REQUIRED},
    {"key", TG_J_STR, "a string (file path)", NULL, NULL, TG_K_REQUIRED},
    {"key_password", TG_J_STR | TG_J_OBJ, PASSWORD_WORDS, "none", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* pkcs12, jks and jceks keystores: one store file, read as keytool or openssl wrote it. */
static const struct tg_config__key store_keys[] = {
    {"type", TG_J_STR, "a string", NULL, "pem, pkcs12, jks, jceks", TG_K_REQUIRED},
    {"file", TG_J_STR, "a string (file path)", NULL, NULL, TG_K_REQUIRED},
    {"password", TG_J_STR | TG_J_OBJ, PASSWORD_WORDS, NULL, NULL, TG_K_REQUIRED},
    {"alias", TG_J_STR, "a string", "the only key entry", NULL, 0},
    {"key_password", TG_J_STR | TG_J_OBJ, PASSWORD_WORDS, "the store password", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key backend_keys[] = {
    {"targets", TG_J_ARR, "a list of \"host:port\" strings", NULL, "at least one", 0},
    {"builtin", TG_J_STR, "a string", NULL, "status", 0},
    {"balance", TG_J_STR, "a string", "\"round_robin\"", "round_robin, least_connections", 0},
    {"health", TG_J_OBJ, "an object", "none (no active checks)", NULL, 0},
    {"tls", TG_J_OBJ, "an object", "none (plaintext)", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

#define TIMEOUT_KEY(n, def)                                                                        \
    {                                                                                              \
        n, TG_J_NUM, "a number of seconds", def, "more than 0, at most 86400", 0                   \
    }
/* Same order as the slots in parse_timeouts. */
static const struct tg_config__key timeout_keys[] = {
    TIMEOUT_KEY("handshake", "10"),
    TIMEOUT_KEY("request_headers", "10"),
    {"request_body", TG_J_NUM, "a number of seconds", "0 (no limit)", "0 (no limit) to 86400", 0},
    TIMEOUT_KEY("idle", "60"),
    TIMEOUT_KEY("backend_connect", "5"),
    TIMEOUT_KEY("backend_response", "60"),
    TIMEOUT_KEY("shutdown", "30"),
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* The integer keys come first, in the order of the slots in parse_limits. */
static const struct tg_config__key limit_keys[] = {
    {"max_connections", TG_J_INT, "an integer", "0 (unlimited)", "0..4294967295", 0},
    {"max_header_bytes", TG_J_INT, "an integer", "32768", "1024..1048576", 0},
    {"max_headers", TG_J_INT, "an integer", "100", "1..10000", 0},
    {"min_body_rate", TG_J_INT, "an integer (bytes per second)", "500", "0..1073741824 (0 = off)",
     0},
    {"min_body_rate_grace", TG_J_NUM, "a number of seconds", "10", "0..86400", 0},
    {"max_connections_per_ip", TG_J_INT, "an integer", "0 (unlimited)", "0..1000000", 0},
    {"handshake_rate_per_ip", TG_J_NUM | TG_J_OBJ,
     "a number (per second) or {\"rate\": N, \"burst\": M}", "0 (unlimited)",
     TG_CONFIG__RATE_ALLOWED, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key http_keys[] = {
    {"underscores_in_headers", TG_J_STR, "a string", "\"drop\"", "drop, reject, pass", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* ---- Paths and files ---- */

/* Checks that a file named by the config can be opened for reading; reports at ptr. */
static void check_readable(struct tg_config__ctx *c, const char *ptr, const char *as_written,
                           const char *resolved)
{
    int fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;

    if (fd < 0) {
        tg_config__error(c, ptr, "cannot read \"%s\": %s", as_written, strerror(errno));
        return;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        tg_config__error(c, ptr, "cannot read \"%s\": %s", as_written, strerror(EISDIR));
    close(fd);
}

/* ---- Addresses ---- */

/* Splits "host:port" / "[v6]:port"; *host is newly allocated (without brackets). */
int tg_config__split_hostport(const char *s, char **host, uint16_t *port, const char **why)
{
    const char *colon, *h = s;
    size_t hl;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':') {
            *why = "expected [IPv6]:port";
            return -EINVAL;
        }
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            *why = "expected host:port";
            return -EINVAL;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            *why = "IPv6 addresses need brackets, as in [::1]:443";
            return -EINVAL;
        }
        hl = (size_t)(colon - s);
    }
    unsigned long v = 0;
    const char *p = colon + 1;
    if (*p == '\0') {
        *why = "missing port";
        return -EINVAL;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > 65535) {
            *why = "the port must be a number 1..65535";
            return -EINVAL;
        }
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v < 1 || v > 65535) {
        *why = "the port must be a number 1..65535";
        return -EINVAL;
    }
    *host = tg_xstrndup(h, hl);
    *port = (uint16_t)v;
    return 0;
}

int tg_config__resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                       socklen_t *len, const char **why)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];

    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (tg_config__numeric_only && strcmp(host, "localhost") != 0)
        hints.ai_flags |= AI_NUMERICHOST;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        *why = rc != 0 ? gai_strerror(rc) : "no address";
        return -EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, TG_MIN((size_t)res->ai_addrlen, sizeof(*ss)));
    *len = (socklen_t)TG_MIN((size_t)res->ai_addrlen, sizeof(*ss));
    freeaddrinfo(res);
    return 0;
}

/* ---- Sections ---- */

static void parse_log(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_log_conf *lc = &c->cfg->log;

    lc->level = TG_LOG_INFO;
    lc->format = TG_LOGFMT_TEXT;
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/log", log_keys);
    json_t *v = tg_config__get(obj, log_keys, "level");
    if (v != NULL) {
        enum tg_log_level lvl;
        if (tg_log_level_parse(json_string_value(v), &lvl) != 0)
            tg_config__error(c, "/log/level", "\"%s\" is not a log level (allowed: %s)",
                             json_string_value(v), log_keys[0].allowed);
        else
            lc->level = (int)lvl;
    }
    v = tg_config__get(obj, log_keys, "format");
    if (v != NULL) {
        if (strcmp(json_string_value(v), "json") == 0)
            lc->format = TG_LOGFMT_JSON;
        else if (strcmp(json_string_value(v), "text") != 0)
            tg_config__error(c, "/log/format", "\"%s\" is not a log format (allowed: %s)",
                             json_string_value(v), log_keys[1].allowed);
    }
    v = tg_config__get(obj, log_keys, "access_log");
    if (v != NULL && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (s[0] == '\0')
            tg_config__error(c, "/log/access_log",
                             "must not be empty (use null to turn the access log off)");
        else if (strcmp(s, "stdout") == 0 || strcmp(s, "stderr") == 0)
            lc->access_log = tg_xstrdup(s);
        else
            lc->access_log = tg_config__resolve_path(c->cfg->base_dir, s);
        tg_config__loc(c, "/log/access_log", &lc->access_log_loc);
    }
}

static void parse_store_keystore(struct tg_config__ctx *c, json_t *obj, struct tg_keystore_conf *ks)
{
    tg_config__check_keys(c, obj, ks->path, store_keys);
    json_t *v = tg_config__get(obj, store_keys, "file");
    if (v != NULL) {
        char *fptr = tg_config__ptr_join(ks->path, "file");
        const char *s = json_string_value(v);
        if (s[0] == '\0') {
            tg_config__error(c, fptr, "must not be empty");
        } else {
            ks->file = tg_config__resolve_path(c->cfg->base_dir, s);
            check_readable(c, fptr, s, ks->file);
        }
        free(fptr);
    }
    v = tg_config__get(obj, store_keys, "alias");
    if (v != NULL) {
        if (json_string_value(v)[0] == '\0') {
            char *aptr = tg_config__ptr_join(ks->path, "alias");
            tg_config__error(c, aptr, "must not be empty (leave it out to use the only key entry)");
            free(aptr);
        } else {
            ks->alias = tg_xstrdup(json_string_value(v));
        }
    }
    static const char *const pws[] = {"password", "key_password"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(pws); i++) {
        v = tg_config__get(obj, store_keys, pws[i]);
        if (v == NULL)
            continue;
        char *pptr = tg_config__ptr_join(ks->path, pws[i]);
        tg_config__parse_password(c, v, pptr, i == 0 ? &ks->password : &ks->key_password, ks->name);
        free(pptr);
    }
}

static void parse_keystore(struct tg_config__ctx *c, const char *name, json_t *obj,
                           struct tg_keystore_conf *ks)
{
    ks->name = tg_xstrdup(name);
    ks->path = tg_config__ptr_join("/keystores", name);
    tg_config__loc(c, ks->path, &ks->loc);
    ks->type = tg_xstrdup("pem");
    if (!json_is_object(obj)) {
        tg_config__error(c, ks->path, "a keystore must be an object (got %s)",
                         tg_config__json_type_words(obj));
        return;
    }
    json_t *type = json_object_get(obj, "type");
    if (type != NULL && json_is_string(type) && strcmp(json_string_value(type), "pem") != 0) {
        const char *t = json_string_value(type);
        if (strcmp(t, "acme") == 0) {
            free(ks->type);
            ks->type = tg_xstrdup(t);
            tg_config__parse_acme_keystore(c, obj, ks);
            return;
        }
        if (strcmp(t, "pkcs12") == 0 || strcmp(t, "jks") == 0 || strcmp(t, "jceks") == 0) {
            free(ks->type);
            ks->type = tg_xstrdup(t);
            parse_store_keystore(c, obj, ks);
            return;
        }
        char *tptr = tg_config__ptr_join(ks->path, "type");
        if (tg_strcaseeq(t, "pkcs12") || tg_strcaseeq(t, "p12") || tg_strcaseeq(t, "jks") ||
            tg_strcaseeq(t, "jceks"))
            tg_config__error(
                c, tptr,
                "\"%s\" is not a keystore type (allowed: pem, pkcs12, jks, jceks, acme; "
                "lower case)",
                t);
        else
            tg_config__error(
                c, tptr, "\"%s\" is not a keystore type (allowed: pem, pkcs12, jks, jceks, acme)",
                t);
        free(tptr);
        return; /* other keys belong to that type's schema */
    }
    tg_config__check_keys(c, obj, ks->path, keystore_keys);
    static const char *const files[] = {"cert", "key"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(files); i++) {
        json_t *v = tg_config__get(obj, keystore_keys, files[i]);
        if (v == NULL)
            continue;
        char *fptr = tg_config__ptr_join(ks->path, files[i]);
        const char *s = json_string_value(v);
        if (s[0] == '\0') {
            tg_config__error(c, fptr, "must not be empty");
        } else {
            char *r = tg_config__resolve_path(c->cfg->base_dir, s);
            check_readable(c, fptr, s, r);
            if (i == 0)
                ks->cert_file = r;
            else
                ks->key_file = r;
        }
        free(fptr);
    }
    json_t *pw = tg_config__get(obj, keystore_keys, "key_password");
    if (pw != NULL) {
        char *pptr = tg_config__ptr_join(ks->path, "key_password");
        tg_config__parse_password(c, pw, pptr, &ks->key_password, ks->name);
        free(pptr);
    }
}

static void parse_target(struct tg_config__ctx *c, json_t *v, const char *ptr,
                         struct tg_target_conf *t)
{
    const char *why = NULL;

    if (!json_is_string(v)) {
        tg_config__error(c, ptr, "must be a \"host:port\" string (got %s)",
                         tg_config__json_type_words(v));
        return;
    }
    t->address = tg_xstrdup(json_string_value(v));
    if (tg_config__split_hostport(t->address, &t->host, &t->port, &why) != 0 ||
        t->host[0] == '\0') {
        tg_config__error(c, ptr, "\"%s\" is not a target address: %s", t->address,
                         why ? why : "missing host");
        return;
    }
    if (tg_config__resolve(t->host, t->port, false, &t->addr, &t->addr_len, &why) != 0)
        tg_config__error(c, ptr, "cannot resolve \"%s\": %s", t->host, why);
}

static void parse_backend(struct tg_config__ctx *c, const char *name, json_t *obj,
                          struct tg_backend_conf *b)
{
    b->name = tg_xstrdup(name);
    b->path = tg_config__ptr_join("/backends", name);
    tg_config__loc(c, b->path, &b->loc);
    if (!json_is_object(obj)) {
        tg_config__error(c, b->path, "a backend must be an object (got %s)",
                         tg_config__json_type_words(obj));
        return;
    }
    tg_config__check_keys(c, obj, b->path, backend_keys);
    json_t *targets = tg_config__get(obj, backend_keys, "targets");
    json_t *builtin = tg_config__get(obj, backend_keys, "builtin");
    if (json_object_get(obj, "targets") != NULL && json_object_get(obj, "builtin") != NULL) {
        tg_config__error(c, b->path, "set either \"targets\" or \"builtin\", not both");
        return;
    }
    if (json_object_get(obj, "targets") == NULL && json_object_get(obj, "builtin") == NULL) {
        tg_config__error(c, b->path,
                         "a backend needs \"targets\" (a list of \"host:port\") or "
                         "\"builtin\": \"status\"");
        return;
    }
    if (builtin != NULL) {
        b->kind = TG_BACKEND_STATUS;
        if (strcmp(json_string_value(builtin), "status") != 0) {
            char *p = tg_config__ptr_join(b->path, "builtin");
            tg_config__error(c, p, "\"%s\" is not a built-in backend (allowed: status)",
                             json_string_value(builtin));
            free(p);
        }
        static const char *const target_only[] = {"balance", "health", "tls"};
        for (size_t i = 0; i < TG_ARRAY_SIZE(target_only); i++) {
            if (json_object_get(obj, target_only[i]) == NULL)
                continue;
            char *p = tg_config__ptr_join(b->path, target_only[i]);
            tg_config__error(c, p, "\"%s\" is for backends with targets, not a built-in one",
                             target_only[i]);
            free(p);
        }
        return;
    }
    if (targets == NULL)
        return;
    char *tptr = tg_config__ptr_join(b->path, "targets");
    size_t n = json_array_size(targets);
    if (n == 0)
        tg_config__error(c, tptr, "must list at least one \"host:port\" target");
    b->kind = TG_BACKEND_HTTP;
    b->targets = tg_xcalloc(n ? n : 1, sizeof(*b->targets));
    b->n_targets = n;
    for (size_t i = 0; i < n; i++) {
        char *p = tg_config__ptr_index(tptr, i);
        parse_target(c, json_array_get(targets, i), p, &b->targets[i]);
        free(p);
    }
    free(tptr);
    tg_config__parse_backend_extras(c, obj, b);
    json_t *tls = tg_config__get(obj, backend_keys, "tls");
    if (tls != NULL)
        tg_config__parse_backend_tls(c, tls, b);
}

uint64_t tg_config__seconds_to_ms(double s)
{
    uint64_t ms = (uint64_t)(s * 1000.0 + 0.5); /* round; no libm needed */
    return ms == 0 && s > 0 ? 1 : ms;
}

static void parse_timeouts(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_timeouts_conf *t = &c->cfg->timeouts;
    uint64_t *slots[] = {&t->handshake_ms, &t->request_headers_ms, &t->request_body_ms,
                         &t->idle_ms,      &t->backend_connect_ms, &t->backend_response_ms,
                         &t->shutdown_ms};
    static const uint64_t defaults_s[] = {10, 10, 0, 60, 5, 60, 30};

    for (size_t i = 0; i < TG_ARRAY_SIZE(slots); i++)
        *slots[i] = defaults_s[i] * 1000;
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/timeouts", timeout_keys);
    for (size_t i = 0; i < TG_ARRAY_SIZE(slots); i++) {
        json_t *v = tg_config__get(obj, timeout_keys, timeout_keys[i].name);
        if (v == NULL)
            continue;
        double s = json_number_value(v);
        /* Only request_body has "no limit" (0) as a meaningful value. */
        bool zero_ok = slots[i] == &t->request_body_ms;
        if (!((s > 0 || (zero_ok && s == 0)) && s <= 86400)) {
            char *p = tg_config__ptr_join("/timeouts", timeout_keys[i].name);
            tg_config__error(c, p, "%g is out of range (allowed: %s seconds)", s,
                             timeout_keys[i].allowed);
            free(p);
            continue;
        }
        *slots[i] = tg_config__seconds_to_ms(s);
    }
}

static void parse_limits(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_limits_conf *l = &c->cfg->limits;
    uint32_t *slots[] = {&l->max_connections, &l->max_header_bytes, &l->max_headers,
                         &l->min_body_rate};
    static const json_int_t lo[] = {0, 1024, 1, 0}, hi[] = {UINT32_MAX, 1048576, 10000, 1 << 30};

    l->max_connections = 0;
    l->max_header_bytes = 32768;
    l->max_headers = 100;
    /* Apache mod_reqtimeout's MinRate; the grace period is ours (mod_reqtimeout instead lets
     * the deadline grow with each byte). */
    l->min_body_rate = 500;
    l->min_body_rate_grace_ms = 10000;
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/limits", limit_keys);
    for (size_t i = 0; i < TG_ARRAY_SIZE(slots); i++) {
        json_t *v = tg_config__get(obj, limit_keys, limit_keys[i].name);
        if (v == NULL)
            continue;
        json_int_t n = json_integer_value(v);
        if (n < lo[i] || n > hi[i]) {
            char *p = tg_config__ptr_join("/limits", limit_keys[i].name);
            tg_config__error(c, p, "%lld is out of range (allowed: %s)", (long long)n,
                             limit_keys[i].allowed);
            free(p);
            continue;
        }
        *slots[i] = (uint32_t)n;
    }
    json_t *v = tg_config__get(obj, limit_keys, "min_body_rate_grace");
    if (v != NULL) {
        double s = json_number_value(v);
        if (!(s >= 0 && s <= 86400))
            tg_config__error(c, "/limits/min_body_rate_grace",
                             "%g is out of range (allowed: %s seconds)", s, limit_keys[4].allowed);
        else
            l->min_body_rate_grace_ms = tg_config__seconds_to_ms(s);
    }
    v = tg_config__get(obj, limit_keys, "max_connections_per_ip");
    if (v != NULL) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > 1000000)
            tg_config__error(c, "/limits/max_connections_per_ip",
                             "%lld is out of range (allowed: %s)", (long long)n,
                             limit_keys[5].allowed);
        else
            l->max_connections_per_ip = (uint32_t)n;
    }
    tg_config__parse_rate(c, tg_config__get(obj, limit_keys, "handshake_rate_per_ip"),
                          "/limits/handshake_rate_per_ip", &l->handshake_rate_per_ip,
                          &l->handshake_burst_per_ip);
}

static void parse_http(struct tg_config__ctx *c, json_t *obj)
{
    static const char *const names[] = {
        [TG_US_DROP] = "drop", [TG_US_REJECT] = "reject", [TG_US_PASS] = "pass"};
    struct tg_http_conf *h = &c->cfg->http;

    h->underscores = TG_US_DROP;
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/http", http_keys);
    json_t *v = tg_config__get(obj, http_keys, "underscores_in_headers");
    if (v == NULL)
        return;
    for (size_t i = 0; i < TG_ARRAY_SIZE(names); i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            h->underscores = (enum tg_underscores)i;
            return;
        }
    }
    tg_config__error(c, "/http/underscores_in_headers",
                     "\"%s\" is not an underscores_in_headers policy (allowed: %s)",
                     json_string_value(v), http_keys[0].allowed);
}

static void parse_workers(struct tg_config__ctx *c, json_t *v)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned autow = cpus < 1 ? 1 : (cpus > 256 ? 256 : (unsigned)cpus);

    c->cfg->workers = autow;
    if (v == NULL)
        return;
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "auto") != 0)
            tg_config__error(c, "/workers", "\"%s\" is not allowed (allowed: %s)",
                             json_string_value(v), top_keys[1].allowed);
        return;
    }
    json_int_t n = json_integer_value(v);
    if (n < 1 || n > 256)
        tg_config__error(c, "/workers", "%lld is out of range (allowed: %s)", (long long)n,
                         top_keys[1].allowed);
    else
        c->cfg->workers = (unsigned)n;
}

void tg_config__parse_root(struct tg_config__ctx *c, json_t *root)
{
    struct tg_config *cfg = c->cfg;
    const char *key;
    json_t *v;

    tg_config__check_keys(c, root, "", top_keys);

    v = tg_config__get(root, top_keys, "version");
    if (v != NULL) {
        cfg->version = (int)TG_MAX(TG_MIN(json_integer_value(v), INT_MAX), INT_MIN);
        if (json_integer_value(v) != TG_CONFIG_SCHEMA_VERSION)
            tg_config__error(c, "/version",
                             "schema version %lld is not supported (this tlsgate reads "
                             "version %d)",
                             (long long)json_integer_value(v), TG_CONFIG_SCHEMA_VERSION);
    }
    parse_workers(c, tg_config__get(root, top_keys, "workers"));

    v = tg_config__get(root, top_keys, "state_dir");
    tg_config__loc(c, "/state_dir", &cfg->state_dir_loc);
    if (v != NULL && json_string_value(v)[0] != '\0') {
        cfg->state_dir = tg_config__resolve_path(cfg->base_dir, json_string_value(v));
    } else {
        if (v != NULL)
            tg_config__error(c, "/state_dir", "must not be empty");
        const char *env = getenv("TLSGATE_STATE_DIR");
        char *cwd = tg_config__abs_dir(NULL);
        cfg->state_dir =
            tg_config__resolve_path(cwd, env != NULL && env[0] ? env : "./tlsgate-state");
        free(cwd);
    }

    parse_log(c, tg_config__get(root, top_keys, "log"));
    parse_timeouts(c, tg_config__get(root, top_keys, "timeouts"));
    parse_limits(c, tg_config__get(root, top_keys, "limits"));
    parse_http(c, tg_config__get(root, top_keys, "http"));
    tg_config__parse_http2(c, tg_config__get(root, top_keys, "http2"));
    tg_config__parse_tickets(c, tg_config__get(root, top_keys, "session_tickets"));
    tg_config__parse_store(c, tg_config__get(root, top_keys, "store"));

    /* Keystores, truststores and backends first: backends and listeners refer to them by
     * name. */
    json_t *kss = tg_config__get(root, top_keys, "keystores");
    if (kss != NULL) {
        cfg->keystores = tg_xcalloc(json_object_size(kss) + 1, sizeof(*cfg->keystores));
        json_object_foreach(kss, key, v)
        {
            parse_keystore(c, key, v, &cfg->keystores[cfg->n_keystores++]);
        }
    }
    json_t *tss = tg_config__get(root, top_keys, "truststores");
    if (tss != NULL) {
        cfg->truststores = tg_xcalloc(json_object_size(tss) + 1, sizeof(*cfg->truststores));
        json_object_foreach(tss, key, v)
        {
            tg_config__parse_truststore(c, key, v, &cfg->truststores[cfg->n_truststores++]);
        }
    }
    tg_config__parse_acme(c, tg_config__get(root, top_keys, "acme"));
    tg_config__check_acme(c);
    json_t *bes = tg_config__get(root, top_keys, "backends");
    if (bes != NULL) {
        cfg->backends = tg_xcalloc(json_object_size(bes) + 1, sizeof(*cfg->backends));
        json_object_foreach(bes, key, v)
        {
            parse_backend(c, key, v, &cfg->backends[cfg->n_backends++]);
        }
    }
    json_t *ls = tg_config__get(root, top_keys, "listeners");
    if (ls != NULL) {
        size_t n = json_array_size(ls);
        if (n == 0)
            tg_config__error(c, "/listeners", "must list at least one listener");
        cfg->listeners = tg_xcalloc(n + 1, sizeof(*cfg->listeners));
        for (size_t i = 0; i < n; i++) {
            tg_config__parse_listener(c, json_array_get(ls, i), i, false);
            cfg->n_listeners++;
        }
    }
    json_t *adm = tg_config__get(root, top_keys, "admin");
    if (adm != NULL)
        tg_config__parse_admin(c, adm);
    v = tg_config__get(root, top_keys, "auto_reload");
    cfg->auto_reload = v != NULL && json_is_true(v);
    tg_config__parse_sandbox(c, tg_config__get(root, top_keys, "user"),
                             tg_config__get(root, top_keys, "group"),
                             tg_config__get(root, top_keys, "sandbox"));
}

void tg_config__keystore_free(struct tg_keystore_conf *ks)
{
    free(ks->name);
    free(ks->path);
    free(ks->type);
    free(ks->cert_file);
    free(ks->key_file);
    free(ks->file);
    free(ks->alias);
    for (size_t i = 0; i < ks->n_names; i++)
        free(ks->names[i]);
    free(ks->names);
    if (ks->key_password != NULL)
        OPENSSL_cleanse(ks->key_password, strlen(ks->key_password));
    free(ks->key_password);
    if (ks->password != NULL)
        OPENSSL_cleanse(ks->password, strlen(ks->password));
    free(ks->password);
}

void tg_config__backend_free(struct tg_backend_conf *b)
{
    free(b->name);
    free(b->path);
    for (size_t j = 0; j < b->n_targets; j++) {
        free(b->targets[j].address);
        free(b->targets[j].host);
    }
    free(b->targets);
    free(b->health.path);
    tg_config__backend_tls_conf_free(&b->tls);
}
