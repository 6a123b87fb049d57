/* Allow lists as resources (Corda's allowed-client-certificate-subjects):
 *   GET    /api/v1/listeners/{name}/allowed-client-certificate-subjects
 *   PUT    /api/v1/listeners/{name}/allowed-client-certificate-subjects/{subject}  201 new, 200
 * present DELETE /api/v1/listeners/{name}/allowed-client-certificate-subjects/{subject}  204, 404
 * absent Subjects compare by their canonical form (tg_tls_allow_parse), so another attribute order
 * or spacing is the same subject. A change is a config change like any other: applied in the thread
 * pool, stored, version advanced. A resource: called by the router (admin.c); calls state.c and
 * respond.c. */
#include "admin/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls.h"

#define PREFIX "/api/v1/listeners/"
#define SUFFIX "allowed-client-certificate-subjects"

int tg__admin_pct_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%') {
            int hi = tg_hexval(p[1]), lo = hi < 0 ? -1 : tg_hexval(p[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return 0;
}

/* The client_auth object of listener name in doc (NULL if none), and the listener (*found). */
static json_t *client_auth_of(json_t *doc, const char *name, bool *found)
{
    *found = false;
    json_t *tls = NULL;
    if (strcmp(name, "admin") == 0) {
        json_t *a = json_object_get(doc, "admin");
        *found = json_is_object(a);
        tls = json_object_get(a, "tls");
    } else {
        json_t *ls = json_object_get(doc, "listeners");
        for (size_t i = 0; i < json_array_size(ls); i++) {
            json_t *l = json_array_get(ls, i);
            const char *n = json_string_value(json_object_get(l, "name"));
            if (n != NULL && strcmp(n, name) == 0) {
                *found = true;
                tls = json_object_get(l, "tls");
            }
        }
    }
    json_t *ca = json_object_get(tls, "client_auth");
    const char *mode = json_string_value(json_object_get(ca, "mode"));
    if (!json_is_object(ca) || mode == NULL || strcmp(mode, "none") == 0)
        return NULL;
    return ca;
}

/* Index of the entry of list equal to key (canonical), or -1. */
static long find_entry(json_t *list, const char *key)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *e = json_string_value(json_array_get(list, i));
        char *k = NULL;
        char why[8];
        if (e == NULL || tg_tls_allow_parse(e, &k, why, sizeof(why)) != 0)
            continue;
        bool same = strcmp(k, key) == 0;
        free(k);
        if (same)
            return (long)i;
    }
    return -1;
}

struct allow_job {
    uv_work_t work;
    struct tg_svc_req *r;
    char *listener;
    char *subject; /* decoded, as given */
    char *key;     /* canonical */
    bool add;
    int status;
    char *message;
    uint64_t version;
};

static void allow_work(uv_work_t *w)
{
    struct allow_job *j = w->data;
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t cur = 0;
        json_t *doc = tg__admin_state_get(&cur);
        bool found;
        json_t *ca = client_auth_of(doc, j->listener, &found);
        if (ca == NULL) {
            j->status = found ? 400 : 404;
            j->message = found ? tg_xasprintf("listener \"%s\" has no tls.client_auth, so it has "
                                              "no allow list",
                                              j->listener)
                               : tg_xasprintf("no listener \"%s\"", j->listener);
            json_decref(doc);
            return;
        }
        json_t *list = json_object_get(ca, "allowed_subjects");
        if (!json_is_array(list)) {
            list = json_array();
            json_object_set_new(ca, "allowed_subjects", list);
        }
        long at = find_entry(list, j->key);
        if (j->add && at >= 0) {
            j->status = 200;
            j->version = cur;
            json_decref(doc);
            return;
        }
        if (!j->add && at < 0) {
            j->status = 404;
            j->message = tg_xstrdup("that subject is not on the list");
            json_decref(doc);
            return;
        }
        if (!j->add && json_array_size(list) == 1) {
            j->status = 409;
            j->message = tg_xstrdup("it is the last subject: an empty list admits every "
                                    "certificate that chains to the truststore; change the "
                                    "config with PUT /api/v1/config to do that deliberately");
            json_decref(doc);
            return;
        }
        if (j->add)
            json_array_append_new(list, json_string(j->subject));
        else
            json_array_remove(list, (size_t)at);
        struct tg_err err;
        tg_err_init(&err);
        int rc = tg__admin_state_put(doc, cur, &err, &j->version);
        json_decref(doc);
        if (rc == -ESTALE) { /* another write came first: apply to the newer document */
            tg_err_close(&err);
            if (tg_admin_state_clustered()) /* it reaches this instance through the watch */
                usleep(100 * 1000 * (unsigned)(attempt + 1));
            continue;
        }
        if (rc != 0) {
            j->status = rc == -EIO ? 500 : rc == -EAGAIN || rc == -ETIMEDOUT ? 503 : 400;
            j->message = err.n ? tg_xstrdup(err.v[0].msg) : tg_xstrdup("the change failed");
        } else {
            j->status = j->add ? 201 : 204;
        }
        tg_err_close(&err);
        return;
    }
    j->status = 503;
    j->message = tg_xstrdup("the config kept changing; try again");
}

static void allow_done(uv_work_t *w, int status)
{
    struct allow_job *j = w->data;
    (void)status;
    if (j->message != NULL) {
        tg__admin_error(j->r, j->status, j->message);
    } else {
        char etag[32];
        snprintf(etag, sizeof(etag), "\"%llu\"", (unsigned long long)j->version);
        const char *fields[] = {"ETag", etag, "Cache-Control", "no-store", NULL};
        json_t *o = json_object();
        json_object_set_new(o, "subject", json_string(j->subject));
        json_object_set_new(o, "version", json_integer((json_int_t)j->version));
        char *text = j->status == 204 ? tg_xstrdup("") : json_dumps(o, 0);
        json_decref(o);
        tg_svc_respond(j->r, j->status, j->status == 204 ? NULL : "application/json", fields, text,
                       strlen(text));
        free(text);
    }
    free(j->listener);
    free(j->subject);
    free(j->key);
    free(j->message);
    free(j);
}

static void list_subjects(struct tg_svc_req *r, const char *listener)
{
    uint64_t version = 0;
    json_t *doc = tg__admin_state_get(&version);
    bool found;
    json_t *ca = client_auth_of(doc, listener, &found);
    if (!found) {
        tg__admin_error(r, 404, "no such listener");
    } else {
        json_t *list = ca ? json_object_get(ca, "allowed_subjects") : NULL;
        json_t *o = json_object();
        json_object_set_new(o, "listener", json_string(listener));
        json_object_set_new(o, "client_auth", json_boolean(ca != NULL));
        json_object_set(o, "allowed_subjects", json_is_array(list) ? list : json_array());
        if (!json_is_array(list))
            json_decref(json_object_get(o, "allowed_subjects"));
        json_object_set_new(o, "version", json_integer((json_int_t)version));
        tg__admin_json_value(r, 200, o, JSON_INDENT(2));
    }
    json_decref(doc);
}

bool tg__admin_allow_path(const char *path, size_t plen, char **listener, char **subject)
{
    *listener = *subject = NULL;
    size_t np = strlen(PREFIX);
    if (plen <= np || strncmp(path, PREFIX, np) != 0)
        return false;
    const char *name = path + np;
    const char *slash = memchr(name, '/', plen - np);
    if (slash == NULL || slash == name)
        return false;
    const char *rest = slash + 1;
    size_t rlen = plen - (size_t)(rest - path), ns = strlen(SUFFIX);
    if (rlen < ns || strncmp(rest, SUFFIX, ns) != 0 || (rlen > ns && rest[ns] != '/'))
        return false;
    *listener = tg_xstrndup(name, (size_t)(slash - name));
    if (rlen > ns + 1)
        *subject = tg_xstrndup(rest + ns + 1, rlen - ns - 1);
    return true;
}

bool tg__admin_allow(struct tg_svc_req *r, const char *path, size_t plen)
{
    char *listener = NULL, *subject = NULL;
    if (!tg__admin_allow_path(path, plen, &listener, &subject))
        return false;
    const char *m = tg_svc_method(r);
    if (subject == NULL) { /* the list */
        if (tg__admin_pct_decode(listener) != 0)
            tg__admin_error(r, 400, "malformed percent-encoding in the path");
        else if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
            list_subjects(r, listener);
        else
            tg__admin_not_allowed(r, "GET, HEAD");
        free(listener);
        return true;
    }
    bool add = strcmp(m, "PUT") == 0;
    if (!add && strcmp(m, "DELETE") != 0) {
        tg__admin_not_allowed(r, "PUT, DELETE");
        free(listener);
        free(subject);
        return true;
    }
    char why[256] = "";
    char *key = NULL;
    if (tg__admin_pct_decode(subject) != 0 || tg__admin_pct_decode(listener) != 0) {
        tg__admin_error(r, 400, "malformed percent-encoding in the path");
    } else if (tg_tls_allow_parse(subject, &key, why, sizeof(why)) != 0) {
        char *msg = tg_xasprintf("not a subject: %s", why);
        tg__admin_error(r, 400, msg);
        free(msg);
    } else {
        struct allow_job *j = tg_xcalloc(1, sizeof(*j));
        j->work.data = j;
        j->r = r;
        j->listener = listener;
        j->subject = subject;
        j->key = key;
        j->add = add;
        uv_queue_work(&tg_svc_worker(r)->loop, &j->work, allow_work, allow_done);
        return true;
    }
    free(key);
    free(subject);
    free(listener);
    return true;
}
