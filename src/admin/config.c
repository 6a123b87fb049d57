/* The config resource: GET /api/v1/config (secrets as "***", ETag), PUT (whole document) and
 * PATCH (RFC 7396 merge patch), both versioned by {"version": N} or If-Match. A write is parsed on
 * the worker (bounded by admin.max_body) and applied in libuv's thread pool (validation, snapshot,
 * durable store); the worker answers when it is done. A resource: called by the router
 * (admin.c); calls state.c and respond.c. */
#include "admin/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/esc.h"

#define MASK "***"

static bool secret_key(const char *k)
{
    static const char *const keys[] = {"password", "key_password", "password_hash", "hmac_key"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(keys); i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/* A value that holds a secret itself (not a reference to one such as {"file": F}). */
static bool secret_value(const char *key, json_t *v)
{
    if (!json_is_string(v))
        return false;
    return (key != NULL && secret_key(key)) || strncmp(json_string_value(v), "enc:", 4) == 0;
}

static void redact(json_t *v, const char *key)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            if (secret_value(k, c))
                json_object_set_new(v, k, json_string(MASK));
            else
                redact(c, k);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *c = json_array_get(v, i);
            if (secret_value(key, c))
                json_array_set_new(v, i, json_string(MASK));
            else
                redact(c, NULL);
        }
    }
}

void tg__admin_redact(json_t *doc)
{
    redact(doc, NULL);
}

void tg_admin_redact(json_t *doc)
{
    redact(doc, NULL);
}

/* One member c of the new document at path p, with o at the same place in the stored one: true
 * when c is "***" and o the stored secret it stands for (the caller puts o in c's place); a
 * "***" with nothing stored is an error at p; anything else is restored inside. */
static bool restore_child(json_t *c, json_t *o, const char *p, struct tg_err *err)
{
    if (json_is_string(c) && strcmp(json_string_value(c), MASK) == 0) {
        if (json_is_string(o) && strcmp(json_string_value(o), MASK) != 0)
            return true;
        tg_err_error(err, NULL, p, "\"***\" stands for a stored secret, and none is stored here");
    } else {
        tg__admin_restore(c, o, p, err);
    }
    return false;
}

/* Puts back the stored secret wherever the new document says "***" at the same place; a "***"
 * with nothing stored there is an error at its path. */
void tg__admin_restore(json_t *v, json_t *old, const char *ptr, struct tg_err *err)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, c)
        {
            json_t *o = json_is_object(old) ? json_object_get(old, k) : NULL;
            char *p = tg_xasprintf("%s/%s", ptr, k); /* keys with '/' or '~': rare, readable */
            if (restore_child(c, o, p, err))
                json_object_set(v, k, o);
            free(p);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *c = json_array_get(v, i);
            json_t *o = json_is_array(old) ? json_array_get(old, i) : NULL;
            char *p = tg_xasprintf("%s/%zu", ptr, i);
            if (restore_child(c, o, p, err))
                json_array_set(v, i, o);
            free(p);
        }
    }
}

/* RFC 7396: returns the patched value (a new reference); target is consumed. */
json_t *tg__admin_merge_patch(json_t *target, json_t *patch)
{
    if (!json_is_object(patch)) {
        json_decref(target);
        return json_incref(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v)
    {
        if (json_is_null(v)) {
            json_object_del(target, k);
        } else {
            json_t *cur = json_object_get(target, k);
            json_object_set_new(target, k, tg__admin_merge_patch(cur ? json_incref(cur) : NULL, v));
        }
    }
    return target;
}

static void etag_of(uint64_t version, char *buf, size_t n)
{
    snprintf(buf, n, "\"%llu\"", (unsigned long long)version);
}

static void get_config(struct tg_svc_req *r)
{
    uint64_t version = 0;
    json_t *doc = tg__admin_state_get(&version);
    tg__admin_redact(doc);
    json_t *root = json_object();
    json_object_set_new(root, "version", json_integer((json_int_t)version));
    json_object_set_new(root, "config", doc);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    char etag[32];
    etag_of(version, etag, sizeof(etag));
    const char *fields[] = {"ETag", etag, "Cache-Control", "no-store", NULL};
    const char *inm = tg_svc_header(r, "if-none-match");
    if (inm != NULL && strcmp(inm, etag) == 0)
        tg_svc_respond(r, 304, NULL, fields, NULL, 0);
    else
        tg_svc_respond(r, 200, "application/json", fields, text, strlen(text));
    free(text);
}

/* ---- writes ---- */

struct write_job {
    uv_work_t work;
    struct tg_svc_req *r;
    json_t *body; /* the config (PUT) or the merge patch (PATCH) */
    bool patch;
    uint64_t expect; /* version the client saw; 0 = none given */
    int rc;
    uint64_t version;
    struct tg_err err;
};

static void write_work(uv_work_t *w)
{
    struct write_job *j = w->data;
    uint64_t cur = 0;
    json_t *old = tg__admin_state_get(&cur);
    if (j->expect != cur) {
        atomic_fetch_add(&tg__admin_store[TG_STORE_CONFLICT], 1); /* shown with an etcd store */
        j->rc = -ESTALE;
        j->version = cur;
        json_decref(old);
        return;
    }
    json_t *doc =
        j->patch ? tg__admin_merge_patch(json_deep_copy(old), j->body) : json_incref(j->body);
    tg__admin_restore(doc, old, "", &j->err);
    json_decref(old);
    if (tg_err_count(&j->err) != 0) {
        j->rc = -EINVAL;
        j->version = cur;
    } else if (!json_is_object(doc)) {
        tg_err_error(&j->err, NULL, "", "the config must be a JSON object");
        j->rc = -EINVAL;
        j->version = cur;
    } else if (!json_is_object(json_object_get(doc, "admin"))) {
        tg_err_error(&j->err, NULL, "/admin",
                     "the admin section cannot be removed through the admin API (it would end "
                     "the API itself); edit the config file instead");
        j->rc = -EINVAL;
        j->version = cur;
    } else {
        /* Applied only if nobody else wrote meanwhile: the version is checked under the lock. */
        j->rc = tg__admin_state_put(doc, j->expect, &j->err, &j->version);
    }
    json_decref(doc);
}

static void errors_body(struct tg_svc_req *r, int status, const struct tg_err *err)
{
    json_t *root = json_object();
    json_t *list = json_array();
    for (size_t i = 0; i < err->n; i++) {
        if (err->v[i].sev != TG_SEV_ERROR)
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "path", json_string(err->v[i].path ? err->v[i].path : ""));
        json_object_set_new(e, "message", json_string(err->v[i].msg));
        json_array_append_new(list, e);
    }
    json_object_set_new(root, "errors", list);
    tg__admin_json_value(r, status, root, JSON_INDENT(2));
}

static void write_done(uv_work_t *w, int status)
{
    struct write_job *j = w->data;
    (void)status;
    char etag[32];
    etag_of(j->version, etag, sizeof(etag));
    const char *fields[] = {"ETag", etag, "Cache-Control", "no-store", NULL};
    if (j->rc == 0) {
        char *body = tg_xasprintf("{\"version\": %llu}\n", (unsigned long long)j->version);
        tg_svc_respond(j->r, 200, "application/json", fields, body, strlen(body));
        free(body);
    } else if (j->rc == -ESTALE) {
        char *body = tg_xasprintf("{\"error\": \"version %llu is not the current one (%llu): "
                                  "read the config again and apply your change to it\", "
                                  "\"version\": %llu}\n",
                                  (unsigned long long)j->expect, (unsigned long long)j->version,
                                  (unsigned long long)j->version);
        tg_svc_respond(j->r, 409, "application/json", fields, body, strlen(body));
        free(body);
    } else {
        /* 503: the shared store (etcd) could not take the write */
        errors_body(j->r,
                    j->rc == -EIO                             ? 500
                    : j->rc == -EAGAIN || j->rc == -ETIMEDOUT ? 503
                                                              : 400,
                    &j->err);
    }
    json_decref(j->body);
    tg_err_close(&j->err);
    free(j);
}

/* Parses the request body as JSON; on failure answers 400 with line and column. */
json_t *tg__admin_parse_body(struct tg_svc_req *r)
{
    size_t len = 0;
    const char *body = tg_svc_body(r, &len);
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL) {
        json_t *root = json_object();
        json_object_set_new(
            root, "error",
            json_sprintf("malformed JSON at line %d, column %d: %s", je.line, je.column, je.text));
        json_object_set_new(root, "line", json_integer(je.line));
        json_object_set_new(root, "column", json_integer(je.column));
        tg__admin_json_value(r, 400, root, 0);
    }
    return v;
}

int64_t tg__admin_if_match(const char *h)
{
    if (h == NULL)
        return 0;
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    if (*h == '"')
        h++;
    if (*h < '0' || *h > '9') /* strtoull would take "-7" and " 7" */
        return -1;
    char *end = NULL;
    unsigned long long v = strtoull(h, &end, 10);
    if (end == h || v == 0 || v > INT64_MAX || (*end != '"' && *end != '\0'))
        return -1;
    return (int64_t)v;
}

static void write_config(struct tg_svc_req *r, bool patch)
{
    int64_t im = tg__admin_if_match(tg_svc_header(r, "if-match"));
    if (im < 0) {
        tg__admin_error(r, 400, "If-Match must be the ETag of GET /api/v1/config, e.g. \"7\"");
        return;
    }
    json_t *body = tg__admin_parse_body(r);
    if (body == NULL)
        return;
    json_t *cfg = body;
    uint64_t expect = (uint64_t)im;
    /* {"version": N, "config": {...}} (for PATCH: "config" holds the patch), or the bare config
     * or patch with If-Match. */
    json_t *inner = json_is_object(body) ? json_object_get(body, "config") : NULL;
    if (inner != NULL) {
        json_t *v = json_object_get(body, "version");
        if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1)) {
            tg__admin_error(r, 400, "\"version\" must be the version of GET /api/v1/config");
            json_decref(body);
            return;
        }
        if (v != NULL) {
            uint64_t bv = (uint64_t)json_integer_value(v);
            if (expect != 0 && expect != bv) {
                tg__admin_error(r, 400, "\"version\" and If-Match disagree");
                json_decref(body);
                return;
            }
            expect = bv;
        }
        cfg = inner;
    } else if (!patch) {
        tg__admin_error(r, 400, "the body must be {\"version\": N, \"config\": {...}}");
        json_decref(body);
        return;
    }
    if (expect == 0) {
        tg__admin_error(r, 428,
                        "say which version you changed: {\"version\": N, ...} or If-Match "
                        "(from GET /api/v1/config)");
        json_decref(body);
        return;
    }
    struct write_job *j = tg_xcalloc(1, sizeof(*j));
    j->work.data = j;
    j->r = r;
    j->body = json_incref(cfg);
    j->patch = patch;
    j->expect = expect;
    tg_err_init(&j->err);
    json_decref(body);
    uv_queue_work(&tg_svc_worker(r)->loop, &j->work, write_work, write_done);
}

void tg__admin_config(struct tg_svc_req *r)
{
    const char *m = tg_svc_method(r);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        get_config(r);
    else if (strcmp(m, "PUT") == 0)
        write_config(r, false);
    else
        write_config(r, true); /* PATCH: the router allows nothing else */
}
