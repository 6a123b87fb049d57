/* libFuzzer harness for tg_http_request_check, the request checks every protocol runs on a head
 * as data. Input: a flags byte (bit 0 host_optional, bit 1 reject_underscores), then
 * "METHOD TARGET\n" and "name:value\n" lines (each split at its first ':'). On acceptance the
 * target is "*" (OPTIONS only), empty or a normalised absolute path; the authority lies inside
 * the input and is there unless Host may be missing; no field name has '_' when they are
 * refused; and checking the result again accepts it unchanged. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 32

static bool inside(const char *p, size_t n, const char *buf, size_t size)
{
    return p >= buf && p + n <= buf + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool host_optional = data[0] & 1, reject_us = data[0] & 2;
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        abort();
    memcpy(buf, data + 1, n);
    struct tg_http_head h;
    tg_http_head_init(&h, MAX_FIELDS);
    /* request line */
    char *p = buf, *end = buf + n;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *line_end = nl ? nl : end;
    char *sp = memchr(p, ' ', (size_t)(line_end - p));
    h.method = p;
    h.method_len = (uint32_t)((sp ? sp : line_end) - p);
    h.target = sp ? sp + 1 : line_end;
    h.target_len = (uint32_t)(line_end - h.target);
    p = nl ? nl + 1 : end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        line_end = nl ? nl : end;
        char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon != NULL && !tg_http_head_add(&h, p, (size_t)(colon - p), colon + 1,
                                               (size_t)(line_end - colon - 1)))
            break;
        p = nl ? nl + 1 : end;
    }
    bool origin_form = h.target_len > 0 && h.target[0] == '/';
    struct tg_http_request_facts facts;
    enum tg_hfail f = tg_http_request_check(&h, host_optional, reject_us, &facts);
    if (f >= TG_HF__COUNT)
        abort();
    if (f == TG_HF_NONE) {
        const char *t = h.target;
        size_t tl = h.target_len;
        if (!inside(t, tl, buf, n) && tl != 0)
            abort();
        bool star = tl == 1 && t[0] == '*';
        if (star && !(h.method_len == 7 && memcmp(h.method, "OPTIONS", 7) == 0))
            abort();
        if (tl > 0 && !star && t[0] != '/' && t[0] != '?')
            abort();
        if (facts.host != NULL && !inside(facts.host, facts.host_len, buf, n))
            abort();
        if (facts.host == NULL && !host_optional)
            abort();
        for (uint32_t i = 0; reject_us && i < h.n_fields; i++)
            if (memchr(h.fields[i].name, '_', h.fields[i].name_len) != NULL)
                abort();
        /* Checked again, a normalised origin-form head passes unchanged. */
        if (origin_form) {
            char *again = malloc(tl);
            if (again == NULL)
                abort();
            memcpy(again, t, tl);
            struct tg_http_head h2 = h;
            h2.target = again;
            struct tg_http_request_facts f2;
            if (tg_http_request_check(&h2, host_optional, reject_us, &f2) != TG_HF_NONE ||
                h2.target_len != tl || memcmp(again, t, tl) != 0)
                abort();
            free(again);
        }
    }
    tg_http_head_free(&h);
    free(buf);
    return 0;
}
