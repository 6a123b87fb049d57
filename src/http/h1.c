/* HTTP/1.x parsing on llhttp: collects the head as spans of the caller's buffer, streams the body.
 */
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"

enum { CB_NONE, CB_URL, CB_STATUS, CB_FIELD, CB_VALUE };

static struct tg_h1_msg *msg_of(llhttp_t *p)
{
    return p->data;
}

static uint32_t off_of(struct tg_h1_msg *m, const char *at)
{
    return (uint32_t)(at - m->base);
}

/* Records a data span, joining it to the previous one when llhttp split it across calls (the
 * bytes are contiguous in the caller's buffer). */
static void span_add(struct tg_h1_msg *m, struct tg_h1_span *s, int kind, const char *at,
                     size_t len)
{
    if (m->last_cb == kind && s->off + s->len == off_of(m, at)) {
        s->len += (uint32_t)len;
    } else {
        s->off = off_of(m, at);
        s->len = (uint32_t)len;
    }
    m->last_cb = (uint8_t)kind;
}

static int on_message_begin(llhttp_t *p)
{
    struct tg_h1_msg *m = msg_of(p);
    m->n_fields = 0;
    m->url.off = m->url.len = 0;
    m->reason.off = m->reason.len = 0;
    m->last_cb = CB_NONE;
    m->head_done = false;
    m->head_begun = true;
    m->done = false;
    m->field_open = false;
    m->n_tfields = 0;
    m->trailer_bytes = 0;
    m->trailer_over = false;
    m->tbuf.off = m->tbuf.len = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct tg_h1_msg *m = msg_of(p);
    span_add(m, &m->url, CB_URL, at, len);
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct tg_h1_msg *m = msg_of(p);
    span_add(m, &m->reason, CB_STATUS, at, len);
    return 0;
}

/* ---- chunked trailer fields (kept only when max_trailer_bytes > 0) ---- */

static bool trailer_kept(const struct tg_h1_msg *m)
{
    return m->max_trailer_bytes > 0 && !m->trailer_over;
}

static void trailer_drop_all(struct tg_h1_msg *m)
{
    m->trailer_over = true;
    m->n_tfields = 0;
    m->tbuf.len = 0;
}

/* Appends bytes of the open trailer field's name or value, within the section's limit. */
static void trailer_bytes(struct tg_h1_msg *m, struct tg_h1_span *s, const char *at, size_t len)
{
    if (m->trailer_bytes + len > m->max_trailer_bytes || !tg_buf_append(&m->tbuf, at, len)) {
        trailer_drop_all(m);
        return;
    }
    m->trailer_bytes += len;
    s->len += (uint32_t)len;
}

static void trailer_field(struct tg_h1_msg *m, const char *at, size_t len)
{
    if (!trailer_kept(m))
        return;
    if (m->last_cb != CB_FIELD) {
        if (m->tfields == NULL)
            m->tfields = tg_xcalloc(m->max_fields ? m->max_fields : 1, sizeof(*m->tfields));
        tg_buf_ensure(&m->tbuf, m->max_trailer_bytes);
        if (m->n_tfields == m->max_fields || m->trailer_bytes + 4 > m->max_trailer_bytes) {
            trailer_drop_all(m);
            return;
        }
        m->trailer_bytes += 4; /* ": " and CRLF, as the head limit counts them */
        struct tg_h1_field *f = &m->tfields[m->n_tfields++];
        f->name.off = (uint32_t)m->tbuf.len;
        f->name.len = 0;
        f->value.off = f->value.len = 0;
    }
    trailer_bytes(m, &m->tfields[m->n_tfields - 1].name, at, len);
}

static void trailer_value(struct tg_h1_msg *m, const char *at, size_t len)
{
    if (!trailer_kept(m) || m->n_tfields == 0)
        return;
    struct tg_h1_field *f = &m->tfields[m->n_tfields - 1];
    if (f->value.len == 0)
        f->value.off = (uint32_t)m->tbuf.len;
    trailer_bytes(m, &f->value, at, len);
}

/* A complete trailer field: kept only if a trailer may carry it. */
static void trailer_field_done(struct tg_h1_msg *m)
{
    if (!trailer_kept(m) || m->n_tfields == 0)
        return;
    struct tg_h1_field *f = &m->tfields[m->n_tfields - 1];
    const char *name = m->tbuf.data + f->name.off;
    if (!tg_http_trailer_ok(name, f->name.len) || memchr(name, ' ', f->name.len) != NULL ||
        memchr(name, '\t', f->name.len) != NULL) {
        m->tbuf.len = f->name.off;
        m->n_tfields--;
    }
}

const struct tg_http_head *tg_h1_trailers(struct tg_h1_msg *m, bool *over)
{
    *over = m->trailer_over;
    if (m->n_tfields == 0)
        return NULL;
    if (m->trailers == NULL) {
        m->trailers = tg_xcalloc(1, sizeof(*m->trailers));
        tg_http_head_init(m->trailers, (uint32_t)m->max_fields);
    }
    tg_http_head_clear(m->trailers);
    for (size_t i = 0; i < m->n_tfields; i++) {
        const struct tg_h1_field *f = &m->tfields[i];
        tg_http_head_add(m->trailers, m->tbuf.data + f->name.off, f->name.len,
                         m->tbuf.data + f->value.off, f->value.len);
    }
    return m->trailers;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct tg_h1_msg *m = msg_of(p);
    if (m->head_done) { /* a chunked trailer field */
        trailer_field(m, at, len);
        m->last_cb = CB_FIELD;
        return 0;
    }
    if (m->last_cb != CB_FIELD) {
        if (m->n_fields == m->max_fields) {
            m->error_status = 431;
            m->error = "too many header fields (limits.max_headers)";
            return -1;
        }
        struct tg_h1_field *f = &m->fields[m->n_fields++];
        f->name.off = off_of(m, at);
        f->name.len = 0;
        f->value.off = f->value.len = 0;
    }
    struct tg_h1_field *f = &m->fields[m->n_fields - 1];
    span_add(m, &f->name, CB_FIELD, at, len);
    m->field_open = true;
    return 0;
}

/* tg_h1_each_token callback: records the token's length in the uint32_t mask at arg. */
static bool note_token_len(const char *tok, size_t len, void *arg)
{
    (void)tok;
    *(uint32_t *)arg |= len < 32 ? 1u << len : 1u;
    return true;
}

static int fail(struct tg_h1_msg *m, int status, const char *why)
{
    m->error_status = status;
    m->error = why;
    return -1;
}

static int bad_status(const struct tg_h1_msg *m)
{
    return m->parser.type == HTTP_RESPONSE ? 502 : 400;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct tg_h1_msg *m = msg_of(p);
    if (m->head_done) {
        trailer_value(m, at, len);
        m->last_cb = CB_VALUE;
        return 0;
    }
    if (m->n_fields == 0 || !m->field_open)
        return fail(m, bad_status(m), "header value without a field name");
    struct tg_h1_field *f = &m->fields[m->n_fields - 1];
    /* Pieces of one value are contiguous in our buffer; a gap means obsolete line folding
     * (RFC 9112 5.2), which we reject rather than forward a mangled value. */
    if (m->last_cb == CB_VALUE && f->value.off + f->value.len != off_of(m, at))
        return fail(m, bad_status(m), "obsolete header line folding is not accepted");
    span_add(m, &f->value, CB_VALUE, at, len);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct tg_h1_msg *m = msg_of(p);
    if (m->head_done) {
        trailer_field_done(m);
        m->last_cb = CB_NONE;
        return 0;
    }
    /* llhttp (lenient build) lets empty names and names with blanks through: refuse them so
     * they are never forwarded. */
    if (!m->field_open || m->n_fields == 0)
        return fail(m, bad_status(m), "header value without a field name");
    const struct tg_h1_field *f = &m->fields[m->n_fields - 1];
    if (f->name.len == 0 || memchr(m->base + f->name.off, ' ', f->name.len) != NULL ||
        memchr(m->base + f->name.off, '\t', f->name.len) != NULL)
        return fail(m, bad_status(m), "invalid header field name");
    m->field_open = false;
    /* An empty value gets no on_header_value call; make sure the next field starts afresh. */
    m->last_cb = CB_NONE;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct tg_h1_msg *m = msg_of(p);
    m->last_cb = CB_NONE;
    if (m->field_open)
        return fail(m, bad_status(m), "header field without a value");
    bool resp = p->type == HTTP_RESPONSE;
    if (resp && (p->status_code < 100 || p->status_code > 599))
        return fail(m, 502, "invalid response status code");
    m->head_done = true;
    m->has_connection = tg_h1_find(m, "connection") != NULL;
    m->conn_lens = 0;
    if (m->has_connection)
        tg_h1_each_token(m, "connection", note_token_len, &m->conn_lens);
    /* We never tunnel: Upgrade is dropped when forwarding, so the rest stays HTTP/1.1. */
    p->upgrade = 0;
    int rc = m->cb->on_head(m);
    if (rc < 0) {
        if (m->error_status == 0)
            m->error_status = 400;
        if (m->error == NULL)
            m->error = "message rejected";
        return -1;
    }
    /* RFC 9112 6.3: 1xx, 204 and 304 responses never have a body, whatever they announce. */
    if (resp && (p->status_code < 200 || p->status_code == 204 || p->status_code == 304))
        rc = 1;
    return rc;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct tg_h1_msg *m = msg_of(p);
    return m->cb->on_body(m, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(llhttp_t *p)
{
    struct tg_h1_msg *m = msg_of(p);
    m->done = true;
    if (m->cb->on_done(m) != 0)
        return -1;
    return m->pause_on_done ? HPE_PAUSED : 0;
}

static const llhttp_settings_t *settings(void)
{
    static llhttp_settings_t s = {
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_status = on_status,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_header_value_complete = on_header_value_complete,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    return &s;
}

void tg_h1_init(struct tg_h1_msg *m, llhttp_type_t type, size_t max_fields,
                const struct tg_h1_callbacks *cb, void *user)
{
    memset(m, 0, sizeof(*m));
    llhttp_init(&m->parser, type, settings());
    m->parser.data = m;
    m->cb = cb;
    m->user = user;
    m->max_fields = max_fields;
    m->fields = tg_xcalloc(max_fields ? max_fields : 1, sizeof(*m->fields));
}

void tg_h1_free(struct tg_h1_msg *m)
{
    free(m->fields);
    m->fields = NULL;
    free(m->tfields);
    m->tfields = NULL;
    tg_buf_free(&m->tbuf);
    if (m->trailers != NULL) {
        tg_http_head_free(m->trailers);
        free(m->trailers);
        m->trailers = NULL;
    }
}

void tg_h1_next(struct tg_h1_msg *m)
{
    if (llhttp_get_errno(&m->parser) == HPE_PAUSED)
        llhttp_resume(&m->parser);
    m->head_done = false;
    m->head_begun = false;
    m->done = false;
}

static enum tg_h1_result map_error(struct tg_h1_msg *m, llhttp_errno_t e)
{
    const char *why = llhttp_get_error_reason(&m->parser);
    if (m->error_status == 0 && e == HPE_INVALID_VERSION && m->parser.type == HTTP_REQUEST &&
        why != NULL && strcmp(why, "Invalid HTTP version") == 0) {
        m->error_status = 505; /* RFC 9110 15.6.6: a version we do not speak, not a bad request */
        m->error = "unsupported HTTP version";
    }
    if (m->error_status == 0) {
        m->error_status = 400;
        m->error = llhttp_get_error_reason(&m->parser);
        if (m->error == NULL)
            m->error = llhttp_errno_name(e);
    }
    return TG_H1_ERROR;
}

enum tg_h1_result tg_h1_execute(struct tg_h1_msg *m, const char *base, size_t off, size_t len,
                                size_t *consumed)
{
    m->base = base;
    *consumed = 0;
    if (m->error_status != 0)
        return TG_H1_ERROR;
    if (len == 0)
        return TG_H1_OK;
    const char *data = base + off;
    llhttp_errno_t e = llhttp_execute(&m->parser, data, len);
    if (e == HPE_OK) {
        *consumed = len;
        return TG_H1_OK;
    }
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&m->parser);
        *consumed = pos != NULL ? (size_t)(pos - data) : len;
        return TG_H1_PAUSED;
    }
    return map_error(m, e);
}

enum tg_h1_result tg_h1_finish(struct tg_h1_msg *m)
{
    if (m->error_status != 0)
        return TG_H1_ERROR;
    llhttp_errno_t e = llhttp_finish(&m->parser);
    if (e == HPE_OK)
        return TG_H1_OK;
    if (e == HPE_PAUSED)
        return TG_H1_PAUSED;
    return map_error(m, e);
}

/* Field name equals lname (n bytes, lower-case) ignoring case; the length test comes first. */
static bool name_eq(const struct tg_h1_msg *m, const struct tg_h1_field *f, const char *lname,
                    size_t n)
{
    return f->name.len == n && tg_strncaseeq(m->base + f->name.off, lname, n);
}

const struct tg_h1_field *tg_h1_find(const struct tg_h1_msg *m, const char *lname)
{
    size_t n = strlen(lname);
    for (size_t i = 0; i < m->n_fields; i++)
        if (name_eq(m, &m->fields[i], lname, n))
            return &m->fields[i];
    return NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool tg_h1_each_token(const struct tg_h1_msg *m, const char *lname,
                      bool (*fn)(const char *tok, size_t len, void *arg), void *arg)
{
    size_t n = strlen(lname);
    for (size_t i = 0; i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        if (!name_eq(m, f, lname, n))
            continue;
        const char *p = m->base + f->value.off, *end = p + f->value.len;
        while (p < end) {
            while (p < end && (is_ows(*p) || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',')
                p++;
            const char *e = p;
            while (e > s && is_ows(e[-1]))
                e--;
            if (e > s && !fn(s, (size_t)(e - s), arg))
                return false;
        }
    }
    return true;
}

struct tok_want {
    const char *tok;
    size_t len;
};

static bool tok_differs(const char *tok, size_t len, void *arg)
{
    const struct tok_want *w = arg;
    return !(len == w->len && tg_strncaseeq(tok, w->tok, len));
}

static bool any_token(const struct tg_h1_msg *m, const char *lname, const char *tok, size_t tlen)
{
    struct tok_want w = {tok, tlen};
    return !tg_h1_each_token(m, lname, tok_differs, &w);
}

bool tg_h1_has_token(const struct tg_h1_msg *m, const char *lname, const char *token)
{
    return any_token(m, lname, token, strlen(token));
}

static bool count_chunked(const char *tok, size_t len, void *arg)
{
    int *n = arg;
    (*n)++;
    return len == 7 && tg_strncaseeq(tok, "chunked", 7);
}

bool tg_h1_chunked_once(const struct tg_h1_msg *m)
{
    const struct tg_h1_field *f = tg_h1_find(m, "transfer-encoding");
    if (f == NULL)
        return false;
    for (const struct tg_h1_field *g = f + 1; g < m->fields + m->n_fields; g++)
        if (name_eq(m, g, "transfer-encoding", 17))
            return false;
    int n = 0;
    return tg_h1_each_token(m, "transfer-encoding", count_chunked, &n) && n == 1;
}

bool tg_h1_is_hop_by_hop(const struct tg_h1_msg *m, const struct tg_h1_field *f)
{
    const char *name = m->base + f->name.off;
    if (tg_http_name_hop_by_hop(name, f->name.len))
        return true;
    uint32_t len_bit = f->name.len < 32 ? 1u << f->name.len : 1u;
    if (!m->has_connection || !(m->conn_lens & len_bit) ||
        !any_token(m, "connection", name, f->name.len))
        return false; /* most messages: no Connection header, or this field is not named */
    return tg_http_name_connection_may_drop(name, f->name.len);
}

void tg_h1_reset(struct tg_h1_msg *m)
{
    llhttp_type_t type = (llhttp_type_t)m->parser.type;
    llhttp_init(&m->parser, type, settings());
    m->parser.data = m;
    m->n_fields = 0;
    m->url.off = m->url.len = m->reason.off = m->reason.len = 0;
    m->last_cb = 0;
    m->head_done = m->head_begun = m->done = m->field_open = false;
    m->n_tfields = 0;
    m->tbuf.off = m->tbuf.len = 0;
    m->error_status = 0;
    m->error = NULL;
}
