/* The "store" section (where the config state is kept: the state directory, or etcd shared by
 * several instances) and the instance file: the -c file of an instance whose store is etcd,
 * holding only what is per instance (store, state_dir, workers, admin.address and listener
 * addresses by name) and laid over the shared config taken from etcd. */
#include "config/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/core.h"

static const struct tg_config__key store_keys[] = {
    {"type", TG_J_STR, "a string", "\"file\"", "file, etcd", 0},
    {"endpoints", TG_J_ARR, "a list of URLs", NULL,
     "http://host:port or https://host:port, 1 to 16", 0},
    {"prefix", TG_J_STR, "a string", "\"/tlsgate/default/\"", "starts and ends with '/'", 0},
    {"tls", TG_J_OBJ, "an object", "none (plain HTTP unless an endpoint is https://)", NULL, 0},
    {"username", TG_J_STR, "a string", "none (no etcd authentication)", NULL, 0},
    {"password", TG_J_STR | TG_J_OBJ, "a password", NULL, NULL, 0},
    {"timeout_ms", TG_J_INT, "an integer (milliseconds)", "2000", "100..60000", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key store_tls_keys[] = {
    {"truststore", TG_J_STR, "a string (PEM file of CA certificates)", "the system's roots", NULL,
     0},
    {"client_certificate", TG_J_OBJ, "an object {\"cert\": F, \"key\": F}", "none", NULL, 0},
    {"server_name", TG_J_STR, "a string", "the endpoint's host", NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key client_cert_keys[] = {
    {"cert", TG_J_STR, "a string (PEM file)", NULL, NULL, TG_K_REQUIRED},
    {"key", TG_J_STR, "a string (PEM file)", NULL, NULL, TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static char *opt_path(struct tg_config__ctx *c, json_t *obj, const struct tg_config__key *tab,
                      const char *key)
{
    json_t *v = tg_config__get(obj, tab, key);
    return v ? tg_config__resolve_path(c->cfg->base_dir, json_string_value(v)) : NULL;
}

static bool endpoint_ok(const char *u)
{
    const char *hp = strncmp(u, "http://", 7) == 0    ? u + 7
                     : strncmp(u, "https://", 8) == 0 ? u + 8
                                                      : NULL;
    if (hp == NULL || *hp == '\0' || strchr(hp, '/') != NULL)
        return false;
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp || colon[1] == '\0')
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long port = strtol(colon + 1, NULL, 10);
    return port > 0 && port < 65536;
}

void tg_config__parse_store(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_store_conf *s = &c->cfg->store;
    s->type = TG_STORE_FILE;
    s->timeout_ms = 2000;
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/store", store_keys);
    json_t *v = tg_config__get(obj, store_keys, "type");
    const char *type = v ? json_string_value(v) : "file";
    if (strcmp(type, "etcd") == 0) {
        s->type = TG_STORE_ETCD;
    } else if (strcmp(type, "file") != 0) {
        tg_config__error(c, "/store/type", "\"%s\" is not a store type (allowed: %s)", type,
                         store_keys[0].allowed);
        return;
    }
    v = tg_config__get(obj, store_keys, "timeout_ms");
    if (v != NULL) {
        json_int_t n = json_integer_value(v);
        if (n < 100 || n > 60000)
            tg_config__error(c, "/store/timeout_ms", "%lld is out of range (allowed: 100..60000)",
                             (long long)n);
        else
            s->timeout_ms = (uint32_t)n;
    }
    if (s->type == TG_STORE_FILE) {
        static const char *const etcd_only[] = {"endpoints", "prefix", "tls", "username",
                                                "password"};
        for (size_t i = 0; i < TG_ARRAY_SIZE(etcd_only); i++)
            if (json_object_get(obj, etcd_only[i]) != NULL) {
                char *p = tg_config__ptr_join("/store", etcd_only[i]);
                tg_config__error(c, p, "only a store of type \"etcd\" takes \"%s\"", etcd_only[i]);
                free(p);
            }
        return;
    }
    json_t *eps = tg_config__get(obj, store_keys, "endpoints");
    size_t n = json_array_size(eps);
    if (eps == NULL || n == 0 || n > 16) {
        tg_config__error(c, eps ? "/store/endpoints" : "/store",
                         "a store of type \"etcd\" needs \"endpoints\": 1 to 16 URLs such as "
                         "\"http://127.0.0.1:2379\"");
    } else {
        s->endpoints = tg_xcalloc(n, sizeof(*s->endpoints));
        for (size_t i = 0; i < n; i++) {
            const char *u = json_string_value(json_array_get(eps, i));
            char *p = tg_config__ptr_index("/store/endpoints", i);
            if (u == NULL || !endpoint_ok(u))
                tg_config__error(c, p, "%s%s%s is not an etcd endpoint (allowed: %s)",
                                 u ? "\"" : "",
                                 u ? u : tg_config__json_type_words(json_array_get(eps, i)),
                                 u ? "\"" : "", store_keys[1].allowed);
            else
                s->endpoints[s->n_endpoints++] = tg_xstrdup(u);
            free(p);
        }
    }
    v = tg_config__get(obj, store_keys, "prefix");
    const char *prefix = v ? json_string_value(v) : "/tlsgate/default/";
    size_t pl = strlen(prefix);
    if (pl < 2 || prefix[0] != '/' || prefix[pl - 1] != '/')
        tg_config__error(c, "/store/prefix", "\"%s\" is not a key prefix (allowed: %s)", prefix,
                         store_keys[2].allowed);
    s->prefix = tg_xstrdup(prefix);
    json_t *tls = tg_config__get(obj, store_keys, "tls");
    if (tls != NULL) {
        s->tls = true;
        tg_config__check_keys(c, tls, "/store/tls", store_tls_keys);
        s->truststore = opt_path(c, tls, store_tls_keys, "truststore");
        v = tg_config__get(tls, store_tls_keys, "server_name");
        s->server_name = v ? tg_xstrdup(json_string_value(v)) : NULL;
        json_t *cc = tg_config__get(tls, store_tls_keys, "client_certificate");
        if (cc != NULL &&
            tg_config__check_keys(c, cc, "/store/tls/client_certificate", client_cert_keys) == 0) {
            s->cert_file = opt_path(c, cc, client_cert_keys, "cert");
            s->key_file = opt_path(c, cc, client_cert_keys, "key");
        }
    }
    for (size_t i = 0; i < s->n_endpoints; i++)
        if (strncmp(s->endpoints[i], "https://", 8) == 0)
            s->tls = true;
        else if (tls != NULL) {
            char *p = tg_config__ptr_index("/store/endpoints", i);
            tg_config__error(c, p,
                             "\"%s\" is plain HTTP, but the store has a \"tls\" section "
                             "(use https://)",
                             s->endpoints[i]);
            free(p);
        }
    v = tg_config__get(obj, store_keys, "username");
    if (v != NULL) {
        s->username = tg_xstrdup(json_string_value(v));
        json_t *pw = tg_config__get(obj, store_keys, "password");
        if (pw == NULL)
            tg_config__error(c, "/store", "\"username\" needs \"password\"");
        else
            tg_config__parse_password(c, pw, "/store/password", &s->password, NULL);
    } else if (json_object_get(obj, "password") != NULL) {
        tg_config__error(c, "/store/password", "\"password\" needs \"username\"");
    }
}

void tg_config__store_free(struct tg_store_conf *s)
{
    for (size_t i = 0; i < s->n_endpoints; i++)
        free(s->endpoints[i]);
    free(s->endpoints);
    free(s->prefix);
    free(s->truststore);
    free(s->cert_file);
    free(s->key_file);
    free(s->server_name);
    free(s->username);
    if (s->password != NULL)
        OPENSSL_cleanse(s->password, strlen(s->password));
    free(s->password);
    memset(s, 0, sizeof(*s));
}

/* ---- The instance file ---- */

static const struct tg_config__key instance_keys[] = {
    {"store", TG_J_OBJ, "an object", NULL, NULL, TG_K_REQUIRED},
    {"state_dir", TG_J_STR, "a string", "$TLSGATE_STATE_DIR, else ./tlsgate-state", NULL, 0},
    {"workers", TG_J_STR | TG_J_INT, "\"auto\" or an integer", "the shared config's",
     "\"auto\" or 1..256", 0},
    {"admin", TG_J_OBJ, "an object {\"address\": A}", "the shared config's", NULL, 0},
    {"listeners", TG_J_ARR, "a list of {\"name\": N, \"address\": A}", "the shared config's", NULL,
     0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key instance_admin_keys[] = {
    {"address", TG_J_STR, "a string (host:port)", NULL, NULL, TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const struct tg_config__key instance_listener_keys[] = {
    {"name", TG_J_STR, "a string", NULL, NULL, TG_K_REQUIRED},
    {"address", TG_J_STR, "a string (host:port)", NULL, NULL, TG_K_REQUIRED},
    {NULL, 0, NULL, NULL, NULL, 0},
};

bool tg_config_is_instance_file(const char *file)
{
    char *text = NULL;
    size_t len = 0;
    if (file == NULL || tg_read_file(file, &text, &len) != 0)
        return false;
    json_t *root = json_loadb(text, len, 0, NULL);
    OPENSSL_cleanse(text, len);
    free(text);
    const char *type = json_string_value(json_object_get(json_object_get(root, "store"), "type"));
    /* a whole config (it has "version") with an etcd store is what `store push` seeds */
    bool yes =
        type != NULL && strcmp(type, "etcd") == 0 && json_object_get(root, "version") == NULL;
    json_decref(root);
    return yes;
}

/* The keys of the instance file that are not per instance: each is an error naming where it
 * belongs. */
static void report_shared_keys(struct tg_config__ctx *c, json_t *root)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        bool known = false;
        for (const struct tg_config__key *k = instance_keys; k->name; k++)
            known = known || strcmp(k->name, key) == 0;
        if (!known) {
            char *p = tg_config__ptr_join("", key);
            tg_config__report(c, TG_SEV_ERROR, p, true,
                              "\"%s\" is shared by every instance, so it lives in the store: "
                              "change it with PUT /api/v1/config or `tlsgate store push` "
                              "(an instance file holds only store, state_dir, workers, "
                              "admin.address and listener addresses)",
                              key);
            free(p);
            json_object_del(root, key);
        }
    }
}

int tg_config_instance_load(const char *file, struct tg_config_instance **out, struct tg_err *err)
{
    struct tg_config_instance *in = tg_xcalloc(1, sizeof(*in));
    struct tg_config *cfg = tg_xcalloc(1, sizeof(*cfg));
    struct tg_config__ctx c = {.cfg = cfg, .err = err};
    size_t errors = err->n_errors, from = err->n;
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    int rc = tg_read_file(file, &text, &len);
    in->cfg = cfg;
    in->file = tg_xstrdup(file);
    cfg->name = tg_xstrdup(file);
    c.name = cfg->name;
    const char *slash = strrchr(file, '/');
    char *dir = slash == NULL ? tg_xstrdup(".") : tg_xstrndup(file, (size_t)(slash - file) + 1);
    cfg->base_dir = tg_config__abs_dir(dir);
    free(dir);
    if (rc != 0) {
        struct tg_loc loc = {file, 0, 0};
        tg_err_error(err, &loc, NULL, "cannot read the instance file: %s", strerror(-rc));
        goto out;
    }
    json_error_t je;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL || !json_is_object(root)) {
        struct tg_loc loc = {file, root ? 1 : je.line, root ? 1 : je.column};
        tg_err_error(
            err, &loc, NULL, "%s%s",
            root ? "the file must be a JSON object" : "JSON syntax error: ", root ? "" : je.text);
        rc = -EINVAL;
        goto out;
    }
    (void)tg_config__jsonloc_build(&c.jl, text, len);
    report_shared_keys(&c, root);
    tg_config__check_keys(&c, root, "", instance_keys);
    tg_config__parse_store(&c, tg_config__get(root, instance_keys, "store"));
    in->over = json_object();
    json_t *v = tg_config__get(root, instance_keys, "state_dir");
    if (v != NULL && json_string_value(v)[0] != '\0') {
        cfg->state_dir = tg_config__resolve_path(cfg->base_dir, json_string_value(v));
    } else {
        const char *env = getenv("TLSGATE_STATE_DIR");
        char *cwd = tg_config__abs_dir(NULL);
        cfg->state_dir =
            tg_config__resolve_path(cwd, env != NULL && env[0] ? env : "./tlsgate-state");
        free(cwd);
    }
    json_object_set_new(in->over, "state_dir", json_string(cfg->state_dir));
    v = tg_config__get(root, instance_keys, "workers");
    if (v != NULL)
        json_object_set(in->over, "workers", v);
    json_t *adm = tg_config__get(root, instance_keys, "admin");
    if (adm != NULL && tg_config__check_keys(&c, adm, "/admin", instance_admin_keys) == 0)
        json_object_set(in->over, "admin_address", json_object_get(adm, "address"));
    json_t *ls = tg_config__get(root, instance_keys, "listeners");
    json_t *laddr = json_object();
    for (size_t i = 0; i < json_array_size(ls); i++) {
        json_t *l = json_array_get(ls, i);
        char *p = tg_config__ptr_index("/listeners", i);
        if (!json_is_object(l))
            tg_config__error(&c, p, "must be an object {\"name\": N, \"address\": A} (got %s)",
                             tg_config__json_type_words(l));
        else if (tg_config__check_keys(&c, l, p, instance_listener_keys) == 0) {
            const char *name = json_string_value(json_object_get(l, "name"));
            if (json_object_get(laddr, name) != NULL)
                tg_config__error(&c, p, "listener \"%s\" is named twice", name);
            json_object_set(laddr, name, json_object_get(l, "address"));
        }
        free(p);
    }
    json_object_set_new(in->over, "listener_addresses", laddr);
    rc = err->n_errors == errors ? 0 : -EINVAL;
    if (rc == 0 && cfg->store.type != TG_STORE_ETCD) {
        tg_config__error(&c, "/store/type", "an instance file is for a store of type \"etcd\"");
        rc = -EINVAL;
    }
out:
    tg_config__sort_errors(err, from);
    json_decref(root);
    if (text != NULL)
        OPENSSL_cleanse(text, len);
    free(text);
    tg_config__jsonloc_free(&c.jl);
    if (rc != 0) {
        tg_config_instance_free(in);
        return rc;
    }
    *out = in;
    return 0;
}

void tg_config_instance_free(struct tg_config_instance *in)
{
    if (in == NULL)
        return;
    tg_config_free(in->cfg);
    json_decref(in->over);
    free(in->file);
    free(in);
}

json_t *tg_config_instance_apply(const struct tg_config_instance *in, json_t *shared,
                                 char **from_out)
{
    json_t *doc = json_deep_copy(shared);
    char *from = tg_xasprintf("from %s: store, state_dir", in->file);
    json_object_del(doc, "store"); /* the instance's own store is the one that counts */
    json_object_set(doc, "state_dir", json_object_get(in->over, "state_dir"));
    json_t *w = json_object_get(in->over, "workers");
    if (w != NULL) {
        json_object_set(doc, "workers", w);
        char *f = tg_xasprintf("%s, workers", from);
        free(from);
        from = f;
    }
    json_t *aa = json_object_get(in->over, "admin_address");
    json_t *adm = json_object_get(doc, "admin");
    if (aa != NULL && json_is_object(adm)) {
        json_object_set(adm, "address", aa);
        char *f = tg_xasprintf("%s, admin.address", from);
        free(from);
        from = f;
    }
    json_t *laddr = json_object_get(in->over, "listener_addresses");
    json_t *ls = json_object_get(doc, "listeners");
    for (size_t i = 0; i < json_array_size(ls); i++) {
        json_t *l = json_array_get(ls, i);
        const char *name = json_string_value(json_object_get(l, "name"));
        json_t *a = name ? json_object_get(laddr, name) : NULL;
        if (a != NULL && json_is_object(l)) {
            json_object_set(l, "address", a);
            char *f = tg_xasprintf("%s, listeners[%s].address", from, name);
            free(from);
            from = f;
        }
    }
    if (from_out != NULL)
        *from_out = from;
    else
        free(from);
    return doc;
}
