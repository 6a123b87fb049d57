/* Config sections around backends: truststores (trust roots for backend TLS), load balancing,
 * health checks, and how routes and tcp listeners name their backend. */
#include "config/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/core.h"

static const struct tg_config__key truststore_keys[] = {
    {"type", TG_J_STR, "a string", "\"pem\"", "pem, system, pkcs12, jks, jceks", 0},
    {"file", TG_J_STR, "a string (file or directory path)", NULL,
     "a PEM bundle, or a directory of *.pem and *.crt files; required for pem", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* pkcs12, jks and jceks truststores: the trusted-certificate entries of one store file. */
static const struct tg_config__key store_truststore_keys[] = {
    {"type", TG_J_STR, "a string", NULL, "pem, system, pkcs12, jks, jceks", 0},
    {"file", TG_J_STR, "a string (file path)", NULL, NULL, TG_K_REQUIRED},
    {"password", TG_J_STR | TG_J_OBJ,
     "a string, {\"file\": F}, {\"env\": NAME} or an \"enc:\" value",
     "none (a JKS digest is then not checked)", NULL, 0},
    {"aliases", TG_J_ARR, "a list of strings", "every trusted-certificate entry", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key health_keys[] = {
    {"path", TG_J_STR, "a string", "none (TCP connect check)", "starts with /", 0},
    {"interval", TG_J_NUM, "a number of seconds", "5", "more than 0, at most 86400", 0},
    {"timeout", TG_J_NUM, "a number of seconds", "2 (at most interval)",
     "more than 0, at most interval", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

#define BALANCE_ALLOWED "round_robin, least_connections"

/* ---- names ---- */

const char *tg_config__closest(const char *name, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL)
            continue;
        size_t d = tg_edit_distance(name, names[i]);
        if (d < best_d && d < strlen(names[i])) {
            best_d = d;
            best = names[i];
        }
    }
    return best;
}

bool tg_config__lookup_backend(struct tg_config__ctx *c, const char *name, const char *ptr,
                               size_t *idx)
{
    struct tg_config *cfg = c->cfg;
    const char **names = tg_xcalloc(cfg->n_backends + 1, sizeof(*names));
    bool found = false;

    for (size_t i = 0; i < cfg->n_backends; i++) {
        names[i] = cfg->backends[i].name;
        if (strcmp(cfg->backends[i].name, name) == 0) {
            *idx = i;
            found = true;
        }
    }
    if (!found) {
        char *p = tg_config__ptr_join(ptr, "backend");
        const char *best = tg_config__closest(name, names, cfg->n_backends);
        if (best != NULL)
            tg_config__error(c, p, "backend \"%s\" is not defined (did you mean \"%s\"?)", name,
                             best);
        else
            tg_config__error(c, p, "backend \"%s\" is not defined in \"backends\"", name);
        free(p);
    }
    free(names);
    return found;
}

/* ---- tcp listeners ---- */

void tg_config__parse_tcp_listener(struct tg_config__ctx *c, json_t *obj,
                                   struct tg_listener_conf *l)
{
    if (json_object_get(obj, "routes") != NULL) {
        char *p = tg_config__ptr_join(l->path, "routes");
        tg_config__error(c, p,
                         "a tcp listener forwards every connection to its \"backend\"; routes "
                         "are for http listeners");
        free(p);
    }
    /* Both keys were type-checked against the listener table. */
    l->proxy_protocol_out = json_is_true(json_object_get(obj, "proxy_protocol_out"));
    json_t *v = json_object_get(obj, "backend");
    if (v == NULL) {
        tg_config__error(c, l->path,
                         "missing required key \"backend\" (a tcp listener needs the name of "
                         "the backend it forwards connections to)");
        return;
    }
    if (!json_is_string(v))
        return;
    l->backend = tg_xstrdup(json_string_value(v));
    if (tg_config__lookup_backend(c, l->backend, l->path, &l->backend_idx) &&
        c->cfg->backends[l->backend_idx].kind == TG_BACKEND_STATUS) {
        char *p = tg_config__ptr_join(l->path, "backend");
        tg_config__error(c, p,
                         "backend \"%s\" is the built-in status page, which answers HTTP; a tcp "
                         "listener needs a backend with targets",
                         l->backend);
        free(p);
    }
}

/* ---- truststores ---- */

static void parse_store_truststore(struct tg_config__ctx *c, json_t *obj,
                                   struct tg_truststore_conf *ts)
{
    tg_config__check_keys(c, obj, ts->path, store_truststore_keys);
    json_t *v = tg_config__get(obj, store_truststore_keys, "file");
    if (v != NULL) {
        char *fptr = tg_config__ptr_join(ts->path, "file");
        const char *s = json_string_value(v);
        if (s[0] == '\0') {
            tg_config__error(c, fptr, "must not be empty");
        } else {
            ts->file = tg_config__resolve_path(c->cfg->base_dir, s);
            int fd = open(ts->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
            struct stat st;
            if (fd < 0)
                tg_config__error(c, fptr, "cannot read \"%s\": %s", s, strerror(errno));
            else if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
                tg_config__error(c, fptr, "\"%s\" is not a file", s);
            if (fd >= 0)
                close(fd);
        }
        free(fptr);
    }
    v = tg_config__get(obj, store_truststore_keys, "password");
    if (v != NULL) {
        char *pptr = tg_config__ptr_join(ts->path, "password");
        tg_config__parse_password(c, v, pptr, &ts->password, NULL);
        free(pptr);
    }
    v = tg_config__get(obj, store_truststore_keys, "aliases");
    if (v != NULL) {
        char *aptr = tg_config__ptr_join(ts->path, "aliases");
        size_t n = json_array_size(v);
        if (n == 0)
            tg_config__error(c, aptr, "must name at least one alias (leave it out for all)");
        ts->aliases = tg_xcalloc(n + 1, sizeof(*ts->aliases));
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(v, i);
            if (!json_is_string(a) || json_string_value(a)[0] == '\0') {
                char *iptr = tg_config__ptr_index(aptr, i);
                tg_config__error(c, iptr, "must be a non-empty string (an alias)");
                free(iptr);
                continue;
            }
            ts->aliases[ts->n_aliases++] = tg_xstrdup(json_string_value(a));
        }
        free(aptr);
    }
}

void tg_config__parse_truststore(struct tg_config__ctx *c, const char *name, json_t *obj,
                                 struct tg_truststore_conf *ts)
{
    ts->name = tg_xstrdup(name);
    ts->path = tg_config__ptr_join("/truststores", name);
    tg_config__loc(c, ts->path, &ts->loc);
    ts->type = tg_xstrdup("pem");
    if (!json_is_object(obj)) {
        tg_config__error(c, ts->path, "a truststore must be an object (got %s)",
                         tg_config__json_type_words(obj));
        return;
    }
    json_t *type = json_object_get(obj, "type");
    if (type != NULL && json_is_string(type)) {
        const char *t = json_string_value(type);
        char *tptr = tg_config__ptr_join(ts->path, "type");
        bool known = strcmp(t, "pem") == 0 || strcmp(t, "system") == 0;
        bool store = strcmp(t, "pkcs12") == 0 || strcmp(t, "jks") == 0 || strcmp(t, "jceks") == 0;
        if (!known && !store)
            tg_config__error(c, tptr,
                             "\"%s\" is not a truststore type (allowed: pem, system, pkcs12, jks, "
                             "jceks)",
                             t);
        free(tptr);
        if (!known && !store)
            return; /* other keys belong to that type's schema */
        free(ts->type);
        ts->type = tg_xstrdup(t);
        if (store) {
            parse_store_truststore(c, obj, ts);
            return;
        }
    }
    tg_config__check_keys(c, obj, ts->path, truststore_keys);
    json_t *file = tg_config__get(obj, truststore_keys, "file");
    if (strcmp(ts->type, "system") == 0) {
        if (json_object_get(obj, "file") != NULL) {
            char *fptr = tg_config__ptr_join(ts->path, "file");
            tg_config__error(c, fptr,
                             "a \"system\" truststore uses OpenSSL's default paths and takes no "
                             "file (use type \"pem\" for a file)");
            free(fptr);
        }
        return;
    }
    if (json_object_get(obj, "file") == NULL) {
        tg_config__error(c, ts->path,
                         "missing required key \"file\" (a PEM bundle or a directory of PEM "
                         "files)");
        return;
    }
    if (file == NULL)
        return;
    char *fptr = tg_config__ptr_join(ts->path, "file");
    const char *s = json_string_value(file);
    if (s[0] == '\0') {
        tg_config__error(c, fptr, "must not be empty");
    } else {
        ts->file = tg_config__resolve_path(c->cfg->base_dir, s);
        /* Parsing the certificates is left to the TLS module; here only that they can be read. */
        int fd = open(ts->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0)
            tg_config__error(c, fptr, "cannot read \"%s\": %s", s, strerror(errno));
        else if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            tg_config__error(c, fptr, "\"%s\" is neither a file nor a directory", s);
        if (fd >= 0)
            close(fd);
    }
    free(fptr);
}

void tg_config__truststore_free(struct tg_truststore_conf *ts)
{
    free(ts->name);
    free(ts->path);
    free(ts->type);
    free(ts->file);
    if (ts->password != NULL)
        OPENSSL_cleanse(ts->password, strlen(ts->password));
    free(ts->password);
    for (size_t i = 0; i < ts->n_aliases; i++)
        free(ts->aliases[i]);
    free(ts->aliases);
}

const struct tg_truststore_conf *tg_config_truststore(const struct tg_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_truststores; i++)
        if (strcmp(cfg->truststores[i].name, name) == 0)
            return &cfg->truststores[i];
    return NULL;
}

/* ---- balance and health ---- */

/* A number of seconds in (0, max]; 0 with an error at ptr/key otherwise. */
static uint64_t seconds(struct tg_config__ctx *c, json_t *v, const char *ptr, const char *key,
                        double max, const char *allowed)
{
    double s = json_number_value(v);
    if (s > 0 && s <= max)
        return tg_config__seconds_to_ms(s);
    char *p = tg_config__ptr_join(ptr, key);
    tg_config__error(c, p, "%g is out of range (allowed: %s seconds)", s, allowed);
    free(p);
    return 0;
}

static void parse_health(struct tg_config__ctx *c, json_t *obj, struct tg_backend_conf *b)
{
    struct tg_health_conf *h = &b->health;
    char *ptr = tg_config__ptr_join(b->path, "health");

    h->enabled = true;
    tg_config__check_keys(c, obj, ptr, health_keys);
    json_t *v = tg_config__get(obj, health_keys, "path");
    if (v != NULL) {
        const char *p = json_string_value(v);
        bool ok = p[0] == '/';
        /* It goes into a request line: no spaces or control bytes. */
        for (const char *q = p; ok && *q; q++)
            ok = *q > 0x20 && *q < 0x7f;
        char *pp = tg_config__ptr_join(ptr, "path");
        if (!ok)
            tg_config__error(c, pp,
                             "\"%s\" is not a request path (it must start with \"/\" and contain "
                             "no spaces or control characters)",
                             p);
        else
            h->path = tg_xstrdup(p);
        free(pp);
    }
    v = tg_config__get(obj, health_keys, "interval");
    if (v != NULL) {
        uint64_t ms = seconds(c, v, ptr, "interval", 86400, health_keys[1].allowed);
        if (ms != 0)
            h->interval_ms = ms;
    }
    v = tg_config__get(obj, health_keys, "timeout");
    if (v == NULL) {
        /* The default must not outlast a shorter interval. */
        h->timeout_ms = TG_MIN(h->timeout_ms, h->interval_ms);
    } else {
        uint64_t ms = seconds(c, v, ptr, "timeout", 86400, "more than 0, at most 86400");
        if (ms > h->interval_ms) {
            char *tp = tg_config__ptr_join(ptr, "timeout");
            tg_config__error(c, tp,
                             "a check may not outlast the interval: timeout %g s is above "
                             "interval %g s",
                             (double)ms / 1000, (double)h->interval_ms / 1000);
            free(tp);
        } else if (ms != 0) {
            h->timeout_ms = ms;
        }
    }
    free(ptr);
}

void tg_config__parse_backend_extras(struct tg_config__ctx *c, json_t *obj,
                                     struct tg_backend_conf *b)
{
    b->balance = TG_BALANCE_ROUND_ROBIN;
    b->health.interval_ms = 5000;
    b->health.timeout_ms = 2000;
    json_t *v = json_object_get(obj, "balance");
    if (v != NULL && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "least_connections") == 0) {
            b->balance = TG_BALANCE_LEAST_CONNECTIONS;
        } else if (strcmp(s, "round_robin") != 0) {
            char *p = tg_config__ptr_join(b->path, "balance");
            tg_config__error(c, p, "\"%s\" is not a balance method (allowed: " BALANCE_ALLOWED ")",
                             s);
            free(p);
        }
    }
    v = json_object_get(obj, "health");
    if (v != NULL && json_is_object(v))
        parse_health(c, v, b);
}
