/* Message heads as data, and their HTTP/1.1 wire form. */
#include "http/http.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/core.h"

void tg_http_head_init(struct tg_http_head *h, uint32_t max_fields)
{
    memset(h, 0, sizeof(*h));
    h->fields = tg_xcalloc(max_fields ? max_fields : 1, sizeof(*h->fields));
    h->max_fields = max_fields;
}

void tg_http_head_free(struct tg_http_head *h)
{
    free(h->fields);
    memset(h, 0, sizeof(*h));
}

void tg_http_head_clear(struct tg_http_head *h)
{
    struct tg_http_field *f = h->fields;
    uint32_t max = h->max_fields;
    memset(h, 0, sizeof(*h));
    h->fields = f;
    h->max_fields = max;
}

bool tg_http_head_add(struct tg_http_head *h, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    if (h->n_fields == h->max_fields)
        return false;
    h->fields[h->n_fields++] =
        (struct tg_http_field){name, value, (uint32_t)name_len, (uint32_t)value_len};
    return true;
}

/* v in decimal, ending at end; returns where its digits start. Two per kept-alive response (the
 * status, Content-Length): snprintf cost about 800 instructions each, this a few dozen. */
static char *dec(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

static bool write_fields(struct tg_buf *b, const struct tg_http_head *h)
{
    bool ok = true;
    for (uint32_t i = 0; ok && i < h->n_fields; i++) {
        const struct tg_http_field *f = &h->fields[i];
        ok = tg_buf_append(b, f->name, f->name_len) && tg_buf_append(b, ": ", 2) &&
             tg_buf_append(b, f->value, f->value_len) && tg_buf_append(b, "\r\n", 2);
    }
    static const char cl[] = "Content-Length: ";
    char line[sizeof(cl) - 1 + 20 + 2];
    char *num;
    switch (h->body) {
    case TG_BODY_LENGTH:
        line[sizeof(line) - 2] = '\r';
        line[sizeof(line) - 1] = '\n';
        num = dec(line + sizeof(line) - 2, h->content_length) - (sizeof(cl) - 1);
        memcpy(num, cl, sizeof(cl) - 1);
        ok = ok && tg_buf_append(b, num, (size_t)(line + sizeof(line) - num));
        break;
    case TG_BODY_CHUNKED:
        ok = ok && tg_buf_append_str(b, "Transfer-Encoding: chunked\r\n");
        break;
    default:
        break;
    }
    if (h->upgrade != NULL)
        ok = ok && tg_buf_append_str(b, "Connection: Upgrade\r\nUpgrade: ") &&
             tg_buf_append_str(b, h->upgrade) && tg_buf_append(b, "\r\n", 2);
    else if (h->close)
        ok = ok && tg_buf_append_str(b, "Connection: close\r\n");
    else if (h->keep_alive)
        ok = ok && tg_buf_append_str(b, "Connection: keep-alive\r\n");
    return ok && tg_buf_append(b, "\r\n", 2);
}

bool tg_h1_write_request(struct tg_buf *b, const struct tg_http_head *h)
{
    /* Origin form always starts with '/' (an absolute-form "http://h?q" leaves just "?q"). */
    bool slash = h->target_len == 0 || (h->target[0] != '/' && h->target[0] != '*');
    bool ok = tg_buf_append(b, h->method, h->method_len) && tg_buf_append(b, " ", 1) &&
              (!slash || tg_buf_append(b, "/", 1)) && tg_buf_append(b, h->target, h->target_len) &&
              tg_buf_append_str(b, " HTTP/1.1\r\n") && write_fields(b, h);
    return ok;
}

bool tg_h1_write_response(struct tg_buf *b, const struct tg_http_head *h)
{
    static const char v[] = "HTTP/1.1 ";
    char line[sizeof(v) - 1 + 20 + 1];
    line[sizeof(line) - 1] = ' ';
    /* the status is three digits from the parsers; a negative one would print as 0 */
    char *p =
        dec(line + sizeof(line) - 1, h->status > 0 ? (uint64_t)h->status : 0) - (sizeof(v) - 1);
    memcpy(p, v, sizeof(v) - 1);
    bool ok = tg_buf_append(b, p, (size_t)(line + sizeof(line) - p)) &&
              tg_buf_append(b, h->reason, h->reason_len) && tg_buf_append(b, "\r\n", 2) &&
              write_fields(b, h);
    return ok;
}

/* ---- fields of a head ---- */

static inline bool field_is(const struct tg_http_field *f, const char *lname, size_t n)
{
    return f->name_len == n && tg_strncaseeq(f->name, lname, n);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Any comma-separated token of the fields named lname equals tok (case-insensitive). */
static bool any_token(const struct tg_http_head *h, const char *lname, const char *tok, size_t tlen)
{
    size_t n = strlen(lname);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct tg_http_field *f = &h->fields[i];
        if (!field_is(f, lname, n))
            continue;
        const char *p = f->value, *end = p + f->value_len;
        while (p < end) {
            while (p < end && (is_ows(*p) || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',')
                p++;
            const char *e = p;
            while (e > s && is_ows(e[-1]))
                e--;
            if (e > s && (size_t)(e - s) == tlen && tg_strncaseeq(s, tok, tlen))
                return true;
        }
    }
    return false;
}

bool tg_http_head_has_token(const struct tg_http_head *h, const char *lname, const char *token)
{
    return any_token(h, lname, token, strlen(token));
}

struct lname {
    const char *s;
    size_t n;
};
#define LNAME(lit)                                                                                 \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

static bool name_in(const char *name, size_t len, const struct lname *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i].n == len && tg_strncaseeq(name, set[i].s, len))
            return true;
    return false;
}

bool tg_http_name_hop_by_hop(const char *name, size_t len)
{
    static const struct lname fixed[] = {
        LNAME("connection"), LNAME("keep-alive"),        LNAME("proxy-connection"), LNAME("te"),
        LNAME("trailer"),    LNAME("transfer-encoding"), LNAME("upgrade")};
    return name_in(name, len, fixed, TG_ARRAY_SIZE(fixed));
}

bool tg_http_name_connection_may_drop(const char *name, size_t len)
{
    /* Connection may not strip what routing, framing, credentials or the gateway's own fields
     * depend on ("Connection: Host" or "Connection: X-Forwarded-For" from a client must not make
     * the backend see a request without them). */
    static const struct lname keep[] = {LNAME("host"),
                                        LNAME("content-length"),
                                        LNAME("authorization"),
                                        LNAME("cookie"),
                                        LNAME("forwarded"),
                                        LNAME("x-forwarded-for"),
                                        LNAME("x-forwarded-proto"),
                                        LNAME("x-forwarded-host"),
                                        LNAME("x-forwarded-client-cert"),
                                        LNAME("client-cert"),
                                        LNAME("client-cert-chain")};
    return !name_in(name, len, keep, TG_ARRAY_SIZE(keep));
}

bool tg_http_head_is_hop_by_hop(const struct tg_http_head *h, const struct tg_http_field *f)
{
    if (tg_http_name_hop_by_hop(f->name, f->name_len))
        return true;
    if (!h->has_connection || !any_token(h, "connection", f->name, f->name_len))
        return false; /* most messages: no Connection header, or this field is not named */
    return tg_http_name_connection_may_drop(f->name, f->name_len);
}

bool tg_http_trailer_ok(const char *name, size_t len)
{
    static const char *const never[] = {"authorization",
                                        "cache-control",
                                        "connection",
                                        "content-encoding",
                                        "content-length",
                                        "content-range",
                                        "content-type",
                                        "cookie",
                                        "expect",
                                        "host",
                                        "keep-alive",
                                        "max-forwards",
                                        "pragma",
                                        "proxy-authenticate",
                                        "proxy-authorization",
                                        "proxy-connection",
                                        "range",
                                        "set-cookie",
                                        "te",
                                        "trailer",
                                        "transfer-encoding",
                                        "upgrade",
                                        "www-authenticate",
                                        "client-cert",
                                        "client-cert-chain",
                                        "forwarded"};
    if (len == 0 || memchr(name, '_', len) != NULL || memchr(name, ':', len) != NULL)
        return false;
    if (len >= 12 && strncasecmp(name, "x-forwarded-", 12) == 0)
        return false;
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (strlen(never[i]) == len && strncasecmp(name, never[i], len) == 0)
            return false;
    return true;
}
