/* Config loading: JSON text to a validated struct tg_config, with every problem located and
 * reported. */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "config/internal.h"
#include "core/core.h"
#include "core/log.h"

bool tg_config__numeric_only = false;

static const struct tg_config__key password_keys[] = {
    {"file", TG_J_STR, "a string (file path)", NULL, NULL, 0},
    {"env", TG_J_STR, "a string (variable name)", NULL, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* ---- Reporting ---- */

void tg_config__loc(struct tg_config__ctx *c, const char *ptr, struct tg_loc *loc)
{
    char *p = tg_xstrdup(ptr ? ptr : "");

    loc->file = c->name;
    loc->line = 0;
    loc->col = 0;
    for (;;) {
        if (tg_config__jsonloc_find(&c->jl, p, false, &loc->line, &loc->col) == 0)
            break;
        char *slash = strrchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
    }
    free(p);
}

void tg_config__report(struct tg_config__ctx *c, enum tg_severity sev, const char *ptr, bool at_key,
                       const char *fmt, ...)
{
    struct tg_loc loc;
    va_list ap;
    char *msg;

    if (!at_key || tg_config__jsonloc_find(&c->jl, ptr, true, &loc.line, &loc.col) != 0)
        tg_config__loc(c, ptr, &loc);
    loc.file = c->name;
    va_start(ap, fmt);
    msg = tg_xvasprintf(fmt, ap);
    va_end(ap);
    tg_err_add(c->err, sev, &loc, ptr != NULL && ptr[0] != '\0' ? ptr : NULL, "%s", msg);
    free(msg);
}

const char *tg_config__json_type_words(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static bool type_ok(const json_t *v, unsigned jt)
{
    return ((jt & TG_J_STR) && json_is_string(v)) || ((jt & TG_J_INT) && json_is_integer(v)) ||
           ((jt & TG_J_NUM) && json_is_number(v)) || ((jt & TG_J_BOOL) && json_is_boolean(v)) ||
           ((jt & TG_J_OBJ) && json_is_object(v)) || ((jt & TG_J_ARR) && json_is_array(v)) ||
           ((jt & TG_J_NULL) && json_is_null(v));
}

static const struct tg_config__key *find_key(const struct tg_config__key *tab, const char *name)
{
    for (; tab->name != NULL; tab++)
        if (strcmp(tab->name, name) == 0)
            return tab;
    return NULL;
}

int tg_config__check_keys(struct tg_config__ctx *c, json_t *obj, const char *ptr,
                          const struct tg_config__key *tab)
{
    const char *key;
    json_t *val;
    int n = 0;

    json_object_foreach(obj, key, val)
    {
        const struct tg_config__key *k = find_key(tab, key);
        char *kptr = tg_config__ptr_join(ptr, key);
        if (k == NULL) {
            const char *best = NULL;
            size_t best_d = 3;
            for (const struct tg_config__key *t = tab; t->name != NULL; t++) {
                size_t d = tg_edit_distance(key, t->name);
                if (d < best_d && d < strlen(t->name)) {
                    best_d = d;
                    best = t->name;
                }
            }
            if (best != NULL) {
                tg_config__report(c, TG_SEV_ERROR, kptr, true,
                                  "unknown key \"%s\" (did you mean \"%s\"?)", key, best);
            } else {
                char allowed[512] = "";
                size_t off = 0;
                for (const struct tg_config__key *t = tab; t->name != NULL; t++) {
                    if (t->flags & TG_K_LATER || off >= sizeof(allowed))
                        continue;
                    int w = snprintf(allowed + off, sizeof(allowed) - off, "%s%s", off ? ", " : "",
                                     t->name);
                    off += w > 0 ? (size_t)w : 0;
                }
                tg_config__report(c, TG_SEV_ERROR, kptr, true, "unknown key \"%s\" (allowed: %s)",
                                  key, allowed);
            }
            n++;
        } else if (k->flags & TG_K_LATER) {
            tg_config__report(c, TG_SEV_ERROR, kptr, true,
                              "\"%s\" is not supported yet in this version", key);
            n++;
        } else if (!type_ok(val, k->jtypes)) {
            tg_config__error(c, kptr, "must be %s (got %s)", k->type,
                             tg_config__json_type_words(val));
            n++;
        }
        free(kptr);
    }
    for (const struct tg_config__key *t = tab; t->name != NULL; t++) {
        if ((t->flags & TG_K_REQUIRED) && json_object_get(obj, t->name) == NULL) {
            tg_config__error(c, ptr, "missing required key \"%s\" (%s)", t->name, t->type);
            n++;
        }
    }
    return n;
}

json_t *tg_config__get(json_t *obj, const struct tg_config__key *tab, const char *key)
{
    const struct tg_config__key *k = find_key(tab, key);
    json_t *v = json_object_get(obj, key);

    if (k == NULL || v == NULL || (k->flags & TG_K_LATER) || !type_ok(v, k->jtypes))
        return NULL;
    return v;
}

/* ---- Paths and secrets ---- */

char *tg_config__abs_dir(const char *dir)
{
    char cwd[PATH_MAX];

    if (dir != NULL && dir[0] == '/')
        return tg_xstrdup(dir);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return tg_xstrdup(dir ? dir : ".");
    if (dir == NULL || strcmp(dir, ".") == 0 || dir[0] == '\0')
        return tg_xstrdup(cwd);
    return tg_xasprintf("%s/%s", cwd, dir);
}

char *tg_config__resolve_path(const char *base, const char *p)
{
    if (p[0] == '/')
        return tg_xstrdup(p);
    if (p[0] == '.' && p[1] == '/')
        p += 2;
    return tg_xasprintf("%s/%s", base, p);
}

/* Reads a small secret file into a fixed buffer, so no copy is left behind by reallocation. */
static int read_secret_file(const char *path, char **out)
{
    char buf[8192];
    size_t n = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    for (;;) {
        if (n == sizeof(buf)) {
            rc = -EFBIG;
            goto out;
        }
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    *out = tg_xstrndup(buf, n);
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    return rc;
}

static tg_config_secret_open_cb secret_opener;

void tg_config_set_secret_opener(tg_config_secret_open_cb cb)
{
    secret_opener = cb;
}

static char *password_value(struct tg_config__ctx *c, json_t *v, const char *ptr, char **slot,
                            const char *owner)
{
    char *secret = NULL;

    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        secret = tg_xstrdup(s);
        if (strncmp(s, "enc:", 4) == 0) {
            c->enc = tg_xrealloc(c->enc, (c->n_enc + 1) * sizeof(*c->enc));
            c->enc[c->n_enc++] = (struct tg_config__enc){slot, tg_xstrdup(ptr), owner};
        }
        /* jansson's copy would otherwise linger in freed memory. */
        OPENSSL_cleanse((char *)s, json_string_length(v));
        return secret;
    }
    if (tg_config__check_keys(c, v, ptr, password_keys) != 0)
        return NULL;
    json_t *file = tg_config__get(v, password_keys, "file");
    json_t *env = tg_config__get(v, password_keys, "env");
    if ((file != NULL) == (env != NULL)) {
        tg_config__error(c, ptr, "a password object needs exactly one of \"file\" or \"env\"");
        return NULL;
    }
    if (file != NULL) {
        char *fptr = tg_config__ptr_join(ptr, "file");
        char *path = tg_config__resolve_path(c->cfg->base_dir, json_string_value(file));
        int rc = read_secret_file(path, &secret);
        struct tg_config *cfg = c->cfg;
        cfg->secret_files =
            tg_xrealloc(cfg->secret_files, (cfg->n_secret_files + 1) * sizeof(*cfg->secret_files));
        cfg->secret_files[cfg->n_secret_files++] =
            (struct tg_config_file){tg_xstrdup(path), tg_xstrdup(fptr)};
        if (rc != 0)
            tg_config__error(c, fptr, "cannot read \"%s\": %s", json_string_value(file),
                             rc == -EFBIG ? "file too large for a password" : strerror(-rc));
        free(path);
        free(fptr);
        return secret;
    }
    const char *val = getenv(json_string_value(env));
    if (val == NULL) {
        char *eptr = tg_config__ptr_join(ptr, "env");
        tg_config__error(c, eptr, "environment variable \"%s\" is not set", json_string_value(env));
        free(eptr);
        return NULL;
    }
    return tg_xstrdup(val);
}

/* A password: "text", {"file": F}, {"env": NAME} or "enc:...". Messages never contain the
 * secret. */
void tg_config__parse_password(struct tg_config__ctx *c, json_t *v, const char *ptr, char **slot,
                               const char *owner)
{
    *slot = password_value(c, v, ptr, slot, owner);
}

void tg_config__open_secrets(struct tg_config__ctx *c)
{
    const struct tg_keystore_conf *internal = tg_config_keystore(c->cfg, "internal");

    for (size_t i = 0; i < c->n_enc; i++) {
        struct tg_config__enc *e = &c->enc[i];
        char why[256] = "";
        char *plain = NULL;
        if (*e->slot == NULL) /* already reported */
            continue;
        if (internal == NULL)
            tg_config__error(c, e->ptr,
                             "an \"enc:\" value needs the keystore named \"internal\" (the key "
                             "`tlsgate secret encrypt` used)");
        else if (e->owner != NULL && strcmp(e->owner, "internal") == 0)
            tg_config__error(c, e->ptr,
                             "the internal keystore decrypts \"enc:\" values, so its own "
                             "passwords cannot be one (use a string, {\"file\": F} or {\"env\": "
                             "NAME})");
        else if (secret_opener == NULL)
            tg_config__error(c, e->ptr, "\"enc:\" values cannot be decrypted here");
        else if (secret_opener(internal, *e->slot, &plain, why, sizeof(why)) != 0)
            tg_config__error(c, e->ptr, "cannot decrypt the \"enc:\" value: %s", why);
        OPENSSL_cleanse(*e->slot, strlen(*e->slot));
        free(*e->slot);
        *e->slot = plain; /* NULL after a failure: the load fails anyway */
    }
}

/* ---- Load and free ---- */

struct sort_item {
    struct tg_err_entry e;
    size_t idx;
};

static int sort_cmp(const void *a, const void *b)
{
    const struct sort_item *x = a, *y = b;
    if (x->e.line != y->e.line)
        return x->e.line < y->e.line ? -1 : 1;
    if (x->e.col != y->e.col)
        return x->e.col < y->e.col ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Puts the entries added since `from` in source order, which is how a person fixes them;
 * entries at the same place keep the order they were found in. */
void tg_config__sort_errors(struct tg_err *err, size_t from)
{
    size_t n = err->n - from;
    if (n < 2)
        return;
    struct sort_item *items = tg_xcalloc(n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].e = err->v[from + i];
        items[i].idx = i;
    }
    qsort(items, n, sizeof(*items), sort_cmp);
    for (size_t i = 0; i < n; i++)
        err->v[from + i] = items[i].e;
    free(items);
}

int tg_config_load_string(const char *text, size_t len, const char *name, const char *base_dir,
                          struct tg_config **out, struct tg_err *err)
{
    struct tg_config *cfg = tg_xcalloc(1, sizeof(*cfg));
    struct tg_config__ctx c = {.cfg = cfg, .err = err};
    size_t from = err->n, errors = err->n_errors;
    json_error_t je;
    json_t *root = NULL;
    int rc = -EINVAL;

    cfg->name = tg_xstrdup(name != NULL ? name : "<config>");
    cfg->base_dir = tg_config__abs_dir(base_dir);
    c.name = cfg->name;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        struct tg_loc loc = {cfg->name, je.line > 0 ? je.line : 0, je.column > 0 ? je.column : 0};
        tg_err_error(err, &loc, NULL, "JSON syntax error: %s", je.text);
        goto out;
    }
    (void)tg_config__jsonloc_build(&c.jl, text, len); /* positions are best effort */
    if (!json_is_object(root)) {
        tg_config__error(&c, "", "the config must be a JSON object (got %s)",
                         tg_config__json_type_words(root));
        goto out;
    }
    tg_config__parse_root(&c, root);
    if (err->n_errors == errors)
        tg_config__open_secrets(&c);
    tg_config__sort_errors(err, from);
    if (err->n_errors != errors)
        goto out;
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    json_decref(root);
    for (size_t i = 0; i < c.n_enc; i++)
        free(c.enc[i].ptr);
    free(c.enc);
    tg_config__jsonloc_free(&c.jl);
    tg_config_free(cfg);
    return rc;
}

int tg_config_load_file(const char *file, struct tg_config **out, struct tg_err *err)
{
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    const char *slash = strrchr(file, '/');
    int rc = tg_read_file(file, &text, &len);

    if (rc != 0) {
        struct tg_loc loc = {file, 0, 0};
        tg_err_error(err, &loc, NULL, "cannot read the config file: %s", strerror(-rc));
        goto out;
    }
    if (slash == NULL)
        dir = tg_xstrdup(".");
    else if (slash == file)
        dir = tg_xstrdup("/");
    else
        dir = tg_xstrndup(file, (size_t)(slash - file));
    rc = tg_config_load_string(text, len, file, dir, out, err);
    if (rc == 0)
        (*out)->source_file = tg_xstrdup(file);
out:
    if (text != NULL)
        OPENSSL_cleanse(text, len); /* it may hold passwords */
    free(text);
    free(dir);
    return rc;
}

void tg_config_free(struct tg_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_keystores; i++)
        tg_config__keystore_free(&cfg->keystores[i]);
    tg_config__acme_free(&cfg->acme);
    free(cfg->keystores);
    for (size_t i = 0; i < cfg->n_truststores; i++)
        tg_config__truststore_free(&cfg->truststores[i]);
    free(cfg->truststores);
    for (size_t i = 0; i < cfg->n_listeners; i++)
        tg_config__listener_free(&cfg->listeners[i]);
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->n_backends; i++)
        tg_config__backend_free(&cfg->backends[i]);
    free(cfg->backends);
    tg_config__admin_free(&cfg->admin);
    tg_config__store_free(&cfg->store);
    free(cfg->log.access_log);
    free(cfg->tickets.key_file);
    free(cfg->tickets.key_file_path);
    free(cfg->sandbox.user);
    free(cfg->sandbox.group);
    for (size_t i = 0; i < cfg->n_secret_files; i++) {
        free(cfg->secret_files[i].file);
        free(cfg->secret_files[i].ptr);
    }
    free(cfg->secret_files);
    free(cfg->state_dir);
    free(cfg->base_dir);
    free(cfg->name);
    free(cfg->source_file);
    free(cfg);
}

const struct tg_keystore_conf *tg_config_keystore(const struct tg_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_keystores; i++)
        if (strcmp(cfg->keystores[i].name, name) == 0)
            return &cfg->keystores[i];
    return NULL;
}

const struct tg_backend_conf *tg_config_backend(const struct tg_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_backends; i++)
        if (strcmp(cfg->backends[i].name, name) == 0)
            return &cfg->backends[i];
    return NULL;
}
