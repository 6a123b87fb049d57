/* The admin listener's streams as a stream handler: the request (head fields copied, body read up
 * to admin.max_body) goes to the service a layer above registered, which answers now or later on
 * the worker's thread. The response body is streamed as the session makes room. */
#include "proxy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct tg_svc *the_service;

void tg_proxy_set_service(const struct tg_svc *svc)
{
    the_service = svc;
}

struct tg_svc_req {
    struct tg_stream *st; /* NULL once the stream ended */
    struct tg_worker *w;
    struct tg_snapshot *snap; /* a reference */
    bool answered;            /* tg_svc_respond ran */
    bool asked;               /* on_request ran */
    bool has_cert;
    char *method, *target;
    char **names, **values; /* head fields, names lower-cased */
    size_t n_fields;
    char *body;
    size_t body_len, body_cap;
    uint32_t max_body;
    char peer[TG_ADDR_STRLEN], peer_ip[TG_ADDR_STRLEN];
    /* the response body still to send */
    char *out;
    size_t out_len, out_off;
};

static void req_free(struct tg_svc_req *r)
{
    free(r->method);
    free(r->target);
    for (size_t i = 0; i < r->n_fields; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->body);
    free(r->out);
    tg_snapshot_unref(r->snap);
    free(r);
}

static char *dup_lower(const char *p, size_t n)
{
    char *s = tg_xstrndup(p, n);
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
    return s;
}

static void svc_on_head(struct tg_stream *st)
{
    const struct tg_client_info *who = st->who;
    if (the_service == NULL) {
        static const char body[] = "the admin API is not available in this process\n";
        tg__stream_respond(st, 503, "text/plain", "Cache-Control", "no-store", body,
                           sizeof(body) - 1);
        return;
    }
    uint32_t max = who->snap->cfg->admin.max_body;
    if (st->req_in.body == TG_BODY_LENGTH && st->req_in.content_length > max) {
        char body[128];
        int n = snprintf(body, sizeof(body),
                         "{\"error\": \"the request body is over the limit of %u bytes\"}\n",
                         (unsigned)max);
        st->close_conn = true;
        tg__stream_respond(st, 413, "application/json", "Cache-Control", "no-store", body,
                           (size_t)n);
        return;
    }
    struct tg_svc_req *r = tg_xcalloc(1, sizeof(*r));
    r->st = st;
    r->w = who->conn->w;
    r->snap = tg_snapshot_ref(who->snap);
    r->has_cert = who->has_cert;
    r->max_body = max;
    r->method = tg_xstrdup(st->method);
    /* The checked target is st->path (normalised, query kept) when it fits; else the raw one. */
    const struct tg_http_head *h = &st->req_in;
    r->target = tg_xstrndup(h->target, h->target_len);
    if (strlen(st->path) < sizeof(st->path) - 1)
        snprintf(r->target, h->target_len + 1, "%s", st->path);
    r->names = tg_xcalloc(h->n_fields + 1, sizeof(char *));
    r->values = tg_xcalloc(h->n_fields + 1, sizeof(char *));
    for (uint32_t i = 0; i < h->n_fields; i++) {
        r->names[i] = dup_lower(h->fields[i].name, h->fields[i].name_len);
        r->values[i] = tg_xstrndup(h->fields[i].value, h->fields[i].value_len);
        r->n_fields++;
    }
    tg_addr_packed_str(&who->peer, r->peer);
    tg_addr_packed_ip(&who->peer, r->peer_ip);
    st->hdata = r;
}

static size_t svc_body_room(struct tg_stream *st)
{
    struct tg_svc_req *r = st->hdata;
    if (r == NULL)
        return 0;
    /* One byte over the limit is taken, so that a chunked body over it is seen as such. */
    return r->body_len <= r->max_body ? r->max_body + 1 - r->body_len : 0;
}

static bool svc_on_body(struct tg_stream *st, const char *p, size_t len, bool end)
{
    struct tg_svc_req *r = st->hdata;
    if (r == NULL)
        return true;
    if (len > 0) {
        if (r->body_len + len > (size_t)r->max_body + 1)
            len = (size_t)r->max_body + 1 - r->body_len;
        if (r->body_len + len + 1 > r->body_cap) {
            r->body_cap = TG_MAX(r->body_cap * 2, r->body_len + len + 1);
            r->body = tg_xrealloc(r->body, r->body_cap);
        }
        memcpy(r->body + r->body_len, p, len);
        r->body_len += len;
        r->body[r->body_len] = '\0';
    }
    if (r->body_len > r->max_body) {
        char body[128];
        int n = snprintf(body, sizeof(body),
                         "{\"error\": \"the request body is over the limit of %u bytes\"}\n",
                         (unsigned)r->max_body);
        st->close_conn = true;
        tg__stream_respond(st, 413, "application/json", "Cache-Control", "no-store", body,
                           (size_t)n);
        return true;
    }
    if (end && !r->asked) {
        r->asked = true;
        if (r->body == NULL)
            r->body = tg_xcalloc(1, 1);
        the_service->on_request(r);
    }
    return true;
}

/* Sends as much of the response body as the session takes; ends it when all went. */
static void pump(struct tg_svc_req *r)
{
    struct tg_stream *st = r->st;
    while (r->out_off < r->out_len) {
        size_t room = tg__stream_room(st);
        if (room == 0)
            break;
        size_t n = TG_MIN(room, r->out_len - r->out_off);
        if (!tg__stream_body(st, r->out + r->out_off, n)) {
            tg__stream_reset(st, "admin response does not fit");
            return;
        }
        r->out_off += n;
    }
    if (r->out_off == r->out_len && st->resp_phase != TG_RESP_DONE) {
        if (!tg__stream_end(st)) {
            tg__stream_reset(st, "admin response does not fit");
            return;
        }
    }
    tg__stream_flush(st);
}

static void svc_on_room(struct tg_stream *st)
{
    struct tg_svc_req *r = st->hdata;
    if (r != NULL && r->answered && st->resp_phase == TG_RESP_BODY)
        pump(r);
}

static void svc_on_done(struct tg_stream *st, bool complete)
{
    (void)complete;
    struct tg_svc_req *r = st->hdata;
    st->hdata = NULL;
    if (r == NULL)
        return;
    r->st = NULL;
    /* Not yet asked (refused, 413, the client went): nobody else will free it. Asked but not
     * answered: tg_svc_respond frees it. */
    if (!r->asked || r->answered)
        req_free(r);
}

void tg_svc_respond(struct tg_svc_req *r, int status, const char *ctype, const char *const *fields,
                    const char *body, size_t len)
{
    struct tg_stream *st = r->st;
    r->answered = true;
    if (st == NULL) {
        req_free(r);
        return;
    }
    struct tg_http_head *h = &st->resp;
    st->kind = TG_SK_LOCAL;
    st->status = status;
    tg_http_head_clear(h);
    h->status = status;
    h->reason = tg__reason_phrase(status);
    h->reason_len = (uint32_t)strlen(h->reason);
    h->body = TG_BODY_LENGTH;
    h->content_length = len;
    bool ok = ctype == NULL || tg_http_head_add(h, "Content-Type", 12, ctype, strlen(ctype));
    for (size_t i = 0; ok && fields != NULL && fields[i] != NULL && fields[i + 1] != NULL; i += 2)
        ok =
            tg_http_head_add(h, fields[i], strlen(fields[i]), fields[i + 1], strlen(fields[i + 1]));
    bool end = st->head_only || len == 0;
    if (!ok || !tg__stream_head(st, h, end)) {
        tg__stream_reset(st, "admin response head does not fit");
        return;
    }
    if (end) {
        if (!tg__stream_end(st))
            tg__stream_reset(st, "admin response does not fit");
        else
            tg__stream_flush(st);
        return;
    }
    r->out = tg_xmalloc(len);
    memcpy(r->out, body, len);
    r->out_len = len;
    pump(r);
}

const char *tg_svc_method(const struct tg_svc_req *r)
{
    return r->method;
}

const char *tg_svc_target(const struct tg_svc_req *r)
{
    return r->target;
}

const char *tg_svc_header(const struct tg_svc_req *r, const char *lname)
{
    for (size_t i = 0; i < r->n_fields; i++)
        if (strcmp(r->names[i], lname) == 0)
            return r->values[i];
    return NULL;
}

const char *tg_svc_body(const struct tg_svc_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

const char *tg_svc_peer(const struct tg_svc_req *r)
{
    return r->peer;
}

const char *tg_svc_peer_ip(const struct tg_svc_req *r)
{
    return r->peer_ip;
}

bool tg_svc_client_cert(const struct tg_svc_req *r)
{
    return r->has_cert;
}

struct tg_worker *tg_svc_worker(const struct tg_svc_req *r)
{
    return r->w;
}

struct tg_snapshot *tg_svc_snapshot(const struct tg_svc_req *r)
{
    return r->snap;
}

const struct tg_stream_handler tg__service_handler = {
    .name = "admin",
    .on_head = svc_on_head,
    .body_room = svc_body_room,
    .on_body = svc_on_body,
    .on_room = svc_on_room,
    .on_done = svc_on_done,
};
