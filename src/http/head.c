/* Message heads as data, and their HTTP/1.1 wire form. */
#include "http/http.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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

static bool write_fields(struct tg_buf *b, const struct tg_http_head *h)
{
    bool ok = true;
    for (uint32_t i = 0; ok && i < h->n_fields; i++) {
        const struct tg_http_field *f = &h->fields[i];
        ok = tg_buf_append(b, f->name, f->name_len) && tg_buf_append(b, ": ", 2) &&
             tg_buf_append(b, f->value, f->value_len) && tg_buf_append(b, "\r\n", 2);
    }
    char line[64];
    int n;
    switch (h->body) {
    case TG_BODY_LENGTH:
        n = snprintf(line, sizeof(line), "Content-Length: %" PRIu64 "\r\n", h->content_length);
        ok = ok && tg_buf_append(b, line, (size_t)n);
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
    char line[32];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", h->status);
    bool ok = tg_buf_append(b, line, (size_t)n) && tg_buf_append(b, h->reason, h->reason_len) &&
              tg_buf_append(b, "\r\n", 2) && write_fields(b, h);
    return ok;
}
