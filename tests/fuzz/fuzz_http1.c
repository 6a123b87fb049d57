/* Fuzz harness for HTTP/1.x request parsing as the proxy's client side does it: the input is a
 * client byte stream kept in one contiguous buffer and handed to tg_h1_execute() in a few
 * data-derived pieces (same base, advancing off); after TG_H1_PAUSED comes tg_h1_next() and the
 * rest. Every complete head is examined like client.c does (method, URL, Host, hop-by-hop fields,
 * Expect, route). The same stream is parsed a second time in one piece: both runs must see the
 * same heads, bodies and outcome (span joining must not depend on how the bytes arrived). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "proxy/proxy.h"

#define MAX_FIELDS   16
#define MAX_MSGS     64
#define SCRATCH_SIZE 4096

struct run {
    struct tg_h1_msg m;
    const char *buf;
    size_t size;
    size_t limit; /* bytes handed to the parser so far: spans must stay below */
    size_t n_msgs;
    uint64_t head_hash[MAX_MSGS];
    uint64_t body_hash[MAX_MSGS];
    size_t body_total[MAX_MSGS];
    bool done[MAX_MSGS];
    char scratch[SCRATCH_SIZE]; /* body bytes, bounded like the proxy's backend buffer */
    size_t scratch_len;
    uint64_t sink;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static const char *span_ptr(struct run *r, struct tg_h1_span s)
{
    if ((size_t)s.off + s.len > r->limit)
        abort(); /* a span outside the bytes given so far */
    return r->m.base + s.off;
}

static uint64_t hash_span(struct run *r, uint64_t h, struct tg_h1_span s)
{
    h = fnv(h, &s.len, sizeof(s.len));
    return fnv(h, span_ptr(r, s), s.len);
}

static struct tg_route_conf fuzz_routes[] = {
    {.host = "api.example.com", .path_prefix = "/v1/", .backend = "a"},
    {.host = "*.example.com", .path_prefix = "/", .backend = "b", .backend_idx = 1},
    {.host = NULL, .path_prefix = "/static/", .backend = "c", .backend_idx = 2},
    {.host = NULL, .path_prefix = "/", .backend = "d", .backend_idx = 3},
};
static const struct tg_listener_conf fuzz_listener = {
    .name = "fuzz",
    .routes = fuzz_routes,
    .n_routes = sizeof(fuzz_routes) / sizeof(fuzz_routes[0]),
};

static int on_head(struct tg_h1_msg *m)
{
    struct run *r = m->user;
    if (!m->head_done || m->n_fields > MAX_FIELDS)
        abort();
    uint64_t h = 1469598103934665603ULL;
    const char *method = llhttp_method_name((llhttp_method_t)m->parser.method);
    h = fnv(h, method, strlen(method));
    h = fnv(h, &m->parser.http_major, 1);
    h = fnv(h, &m->parser.http_minor, 1);
    h = hash_span(r, h, m->url);
    for (size_t i = 0; i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        h = hash_span(r, h, f->name);
        h = hash_span(r, h, f->value);
        bool hop = tg_h1_is_hop_by_hop(m, f);
        h = fnv(h, &hop, sizeof(hop));
        /* A field is trivially named what it is named. */
        if (f->name.len > 0 && f->name.len < 64) {
            char lname[64];
            for (size_t k = 0; k < f->name.len; k++) {
                char c = m->base[f->name.off + k];
                lname[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
            lname[f->name.len] = '\0';
            if (memchr(lname, '\0', f->name.len) == NULL && tg_h1_find(m, lname) == NULL)
                abort();
        }
    }
    bool cont = tg_h1_has_token(m, "expect", "100-continue");
    bool close = tg_h1_has_token(m, "connection", "close");
    bool ka = llhttp_should_keep_alive(&m->parser) != 0;
    h = fnv(h, &cont, sizeof(cont));
    h = fnv(h, &close, sizeof(close));
    h = fnv(h, &ka, sizeof(ka));

    /* Route it as client.c does: Host minus port, then host + path. */
    const struct tg_h1_field *hf = tg_h1_find(m, "host");
    const char *host = NULL;
    size_t host_len = 0;
    if (hf != NULL) {
        host = span_ptr(r, hf->value);
        host_len = tg_host_strip_port(host, hf->value.len);
        if (host_len > hf->value.len)
            abort();
    }
    const struct tg_route_conf *rt =
        tg_route_match(&fuzz_listener, host, host_len, span_ptr(r, m->url), m->url.len);
    int idx = rt ? (int)(rt - fuzz_routes) : -1;
    h = fnv(h, &idx, sizeof(idx));

    if (r->n_msgs < MAX_MSGS) {
        r->head_hash[r->n_msgs] = h;
        r->body_hash[r->n_msgs] = 1469598103934665603ULL;
    }
    r->sink ^= h;
    return 0;
}

static int on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct run *r = m->user;
    if (!m->head_done || len == 0)
        abort();
    if (r->n_msgs < MAX_MSGS) {
        r->body_hash[r->n_msgs] = fnv(r->body_hash[r->n_msgs], at, len);
        r->body_total[r->n_msgs] += len;
    }
    size_t n = len < SCRATCH_SIZE - r->scratch_len ? len : SCRATCH_SIZE - r->scratch_len;
    memcpy(r->scratch + r->scratch_len, at, n);
    r->scratch_len += n;
    if (r->scratch_len == SCRATCH_SIZE)
        r->scratch_len = 0; /* "sent to the backend" */
    return 0;
}

static int on_done(struct tg_h1_msg *m)
{
    struct run *r = m->user;
    if (!m->head_done || !m->done)
        abort();
    if (r->n_msgs < MAX_MSGS)
        r->done[r->n_msgs] = true;
    r->n_msgs++;
    return 0;
}

static const struct tg_h1_callbacks fuzz_cb = {on_head, on_body, on_done};

/* Parses buf[0, size) delivered in pieces ending at cuts[] (ascending; size is the last). */
static void run_stream(struct run *r, const char *buf, size_t size, const size_t *cuts,
                       size_t n_cuts, int *outcome)
{
    memset(r, 0, sizeof(*r));
    r->buf = buf;
    r->size = size;
    tg_h1_init(&r->m, HTTP_REQUEST, MAX_FIELDS, &fuzz_cb, r);
    r->m.pause_on_done = true;
    size_t off = 0, c = 0, rounds = 0;
    *outcome = 0;
    while (off < size) {
        if (++rounds > 2 * size + 16)
            abort(); /* no progress */
        while (c < n_cuts && cuts[c] <= off)
            c++;
        size_t end = c < n_cuts ? cuts[c] : size;
        size_t consumed = 0, given = end - off;
        r->limit = end;
        enum tg_h1_result res = tg_h1_execute(&r->m, buf, off, given, &consumed);
        if (consumed > given)
            abort();
        off += consumed;
        if (res == TG_H1_ERROR) {
            if (r->m.error_status != 400 && r->m.error_status != 431 &&
                r->m.error_status != 505) /* 505: a well-formed version we do not speak */
                abort();
            if (r->m.error == NULL)
                abort();
            *outcome = r->m.error_status;
            break;
        }
        if (res == TG_H1_PAUSED) {
            if (!r->m.done)
                abort();
            tg_h1_next(&r->m);
            if (r->m.done || r->m.head_done)
                abort();
            continue;
        }
        if (consumed != given)
            abort(); /* TG_H1_OK means everything given was taken */
    }
    /* A parser that failed stays failed. */
    if (*outcome != 0) {
        size_t consumed = 1;
        if (tg_h1_execute(&r->m, buf, 0, size, &consumed) != TG_H1_ERROR || consumed != 0)
            abort();
    }
    tg_h1_free(&r->m);
}

static void compare(const struct run *a, int oa, const struct run *b, int ob)
{
    /* Both failing is agreement enough: which error wins can depend on where the bytes were cut
     * (a field flushed at a buffer end counts against max_fields before its bad byte is seen). */
    if ((oa != ob && (oa == 0 || ob == 0)) || a->n_msgs != b->n_msgs)
        abort();
    size_t n = a->n_msgs < MAX_MSGS ? a->n_msgs : MAX_MSGS;
    for (size_t i = 0; i < n; i++) {
        if (a->head_hash[i] != b->head_hash[i] || a->body_hash[i] != b->body_hash[i] ||
            a->body_total[i] != b->body_total[i] || a->done[i] != b->done[i])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    /* Exactly size bytes on the heap, so ASan sees any read past the stream. */
    char *buf = calloc(1, size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);

    static struct run split, whole;
    uint64_t h = fnv(1469598103934665603ULL, data, size);
    size_t cuts[8] = {0}, n_cuts = 0;
    if (size > 1) {
        size_t want = 1 + (size_t)(h % 7);
        for (size_t i = 0; i < want; i++) {
            h = h * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t p = 1 + (size_t)((h >> 33) % (size - 1));
            size_t k = n_cuts;
            while (k > 0 && cuts[k - 1] > p) {
                cuts[k] = cuts[k - 1];
                k--;
            }
            cuts[k] = p;
            n_cuts++;
        }
    }
    int o_split, o_whole;
    run_stream(&split, buf, size, cuts, n_cuts, &o_split);
    run_stream(&whole, buf, size, NULL, 0, &o_whole);
    compare(&split, o_split, &whole, o_whole);

    /* Small inputs also byte by byte, the worst case for span joining. */
    if (size > 0 && size <= 512) {
        static size_t every[512];
        for (size_t i = 0; i < size; i++)
            every[i] = i + 1;
        run_stream(&split, buf, size, every, size, &o_split);
        compare(&split, o_split, &whole, o_whole);
    }
    free(buf);
    return 0;
}
