/* Fuzz harness for HTTP/1.x response parsing as the proxy's backend side does it: the input is a
 * backend byte stream kept in one contiguous buffer and handed to tg_h1_execute() in a few
 * data-derived pieces. A 1xx response pauses and is followed by tg_h1_next(); a final response
 * ends the exchange and the parser is reset for the next one (a reused connection); EOF is
 * signalled with tg_h1_finish(). Whether each exchange answers a HEAD request comes from the
 * data. The stream is also parsed in one piece: both runs must agree. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define MAX_FIELDS   16
#define MAX_MSGS     64
#define SCRATCH_SIZE 4096

struct run {
    struct tg_h1_msg m;
    uint64_t head_flags; /* bit i: exchange i answers a HEAD request */
    size_t exchange;
    size_t limit; /* bytes handed to the parser so far: spans must stay below */
    size_t n_msgs;
    uint64_t head_hash[MAX_MSGS];
    uint64_t body_hash[MAX_MSGS];
    size_t body_total[MAX_MSGS];
    bool done[MAX_MSGS];
    char scratch[SCRATCH_SIZE];
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
        abort();
    return r->m.base + s.off;
}

static uint64_t hash_span(struct run *r, uint64_t h, struct tg_h1_span s)
{
    h = fnv(h, &s.len, sizeof(s.len));
    return fnv(h, span_ptr(r, s), s.len);
}

static bool head_request(const struct run *r)
{
    return (r->head_flags >> (r->exchange % 64)) & 1;
}

/* As backend.c's resp_on_head: refuse 101, let other 1xx through, re-frame the final one. */
static int on_head(struct tg_h1_msg *m)
{
    struct run *r = m->user;
    llhttp_t *p = &m->parser;
    if (!m->head_done || m->n_fields > MAX_FIELDS)
        abort();
    /* llhttp takes 0-3 digit codes (0, 20, 99...), which the proxy then treats as interim: see
     * test_response_bad_status_code in tests/unit/http/test_h1.c. Only the range is checked. */
    if (p->status_code > 999)
        abort();
    uint64_t h = 1469598103934665603ULL;
    h = fnv(h, &p->status_code, sizeof(p->status_code));
    h = hash_span(r, h, m->reason);
    bool no_body = head_request(r) || p->status_code == 204 || p->status_code == 304;
    bool has_cl = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    h = fnv(h, &has_cl, sizeof(has_cl));
    if (has_cl)
        h = fnv(h, &p->content_length, sizeof(p->content_length));
    for (size_t i = 0; i < m->n_fields; i++) {
        const struct tg_h1_field *f = &m->fields[i];
        h = hash_span(r, h, f->name);
        h = hash_span(r, h, f->value);
        bool hop = tg_h1_is_hop_by_hop(m, f);
        bool cl = tg_h1_name_is(m, f, "content-length");
        h = fnv(h, &hop, sizeof(hop));
        h = fnv(h, &cl, sizeof(cl));
    }
    bool ka = llhttp_should_keep_alive(p) != 0;
    bool close = tg_h1_has_token(m, "connection", "close");
    h = fnv(h, &ka, sizeof(ka));
    h = fnv(h, &close, sizeof(close));
    const struct tg_h1_field *ct = tg_h1_find(m, "content-type");
    if (ct != NULL)
        h = hash_span(r, h, ct->value);
    if (r->n_msgs < MAX_MSGS) {
        r->head_hash[r->n_msgs] = h;
        r->body_hash[r->n_msgs] = 1469598103934665603ULL;
    }
    r->sink ^= h;
    if (p->status_code < 200)
        return p->status_code == 101 ? -1 : 0;
    if ((r->sink & 0xff) == 0x5a) {
        m->error_status = 502; /* sometimes the re-framed head does not fit */
        m->error = "response head too large";
        return -1;
    }
    return no_body && head_request(r) ? 1 : 0;
}

static int on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct run *r = m->user;
    if (!m->head_done || len == 0)
        abort(); /* an empty chunk would end a re-chunked body early */
    if (head_request(r) && m->parser.status_code >= 200)
        abort(); /* on_head said "no body" (1xx with a body: test_response_no_body_statuses) */
    if (r->n_msgs < MAX_MSGS) {
        r->body_hash[r->n_msgs] = fnv(r->body_hash[r->n_msgs], at, len);
        r->body_total[r->n_msgs] += len;
    }
    size_t n = len < SCRATCH_SIZE - r->scratch_len ? len : SCRATCH_SIZE - r->scratch_len;
    memcpy(r->scratch + r->scratch_len, at, n);
    r->scratch_len += n;
    if (r->scratch_len == SCRATCH_SIZE)
        r->scratch_len = 0;
    return 0;
}

static int on_done(struct tg_h1_msg *m)
{
    struct run *r = m->user;
    if (!m->head_done || !m->done)
        abort();
    /* Kept trailer fields: only names a trailer may carry, within the section's limit. */
    bool over = false;
    const struct tg_http_head *t = tg_h1_trailers(m, &over);
    size_t tbytes = 0;
    for (uint32_t i = 0; t != NULL && i < t->n_fields; i++) {
        if (!tg_http_trailer_ok(t->fields[i].name, t->fields[i].name_len))
            abort();
        tbytes += t->fields[i].name_len + t->fields[i].value_len + 4;
    }
    if (tbytes > m->max_trailer_bytes || (over && t != NULL))
        abort();
    if (r->n_msgs < MAX_MSGS)
        r->done[r->n_msgs] = true;
    r->n_msgs++;
    return 0;
}

static const struct tg_h1_callbacks fuzz_cb = {on_head, on_body, on_done};

static void run_stream(struct run *r, const char *buf, size_t size, const size_t *cuts,
                       size_t n_cuts, uint64_t head_flags, int *outcome)
{
    memset(r, 0, sizeof(*r));
    r->head_flags = head_flags;
    tg_h1_init(&r->m, HTTP_RESPONSE, MAX_FIELDS, &fuzz_cb, r);
    r->m.pause_on_done = true;
    r->m.max_trailer_bytes = 256;
    size_t off = 0, c = 0, rounds = 0;
    *outcome = 0;
    while (off < size) {
        if (++rounds > 2 * size + 16)
            abort();
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
            /* m->error stays NULL when on_head fails without setting it (the 101 case). */
            if (r->m.error_status == 0)
                abort();
            *outcome = r->m.error_status;
            break;
        }
        if (res == TG_H1_PAUSED) {
            if (!r->m.done)
                abort();
            if (r->m.parser.status_code < 200) {
                tg_h1_next(&r->m); /* a 1xx response; the final one follows */
            } else {
                tg_h1_reset(&r->m); /* the exchange is over; the next one reuses the parser */
                r->exchange++;
            }
            if (r->m.done || r->m.head_done)
                abort();
            continue;
        }
        if (consumed != given)
            abort();
    }
    if (*outcome == 0) {
        /* EOF: ends a close-delimited body, fails a truncated one. */
        r->limit = size;
        enum tg_h1_result res = tg_h1_finish(&r->m);
        if (res == TG_H1_ERROR) {
            if (r->m.error_status == 0)
                abort();
            *outcome = 1000 + r->m.error_status;
        } else if (r->m.head_done && !r->m.done) {
            abort(); /* EOF accepted in the middle of a message */
        }
    }
    tg_h1_free(&r->m);
}

static void compare(const struct run *a, int oa, const struct run *b, int ob)
{
    /* Both failing is agreement enough: which error wins can depend on where the bytes were cut
     * (a field flushed at a buffer end counts against max_fields before its bad byte is seen). */
    if ((oa != ob && (oa == 0 || ob == 0)) || a->n_msgs != b->n_msgs || a->exchange != b->exchange)
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
    uint64_t h = fnv(1469598103934665603ULL, data, size);
    /* Which exchanges answer HEAD: all of them when the input ends in "#HEAD" (not part of the
     * stream), otherwise a data-derived few for one input in five. */
    uint64_t head_flags = 0;
    if (size >= 5 && memcmp(data + size - 5, "#HEAD", 5) == 0) {
        head_flags = ~0ULL;
        size -= 5;
    } else if (h % 5 == 0) {
        head_flags = h;
    }
    char *buf = calloc(1, size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);

    static struct run split, whole;
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
    run_stream(&split, buf, size, cuts, n_cuts, head_flags, &o_split);
    run_stream(&whole, buf, size, NULL, 0, head_flags, &o_whole);
    compare(&split, o_split, &whole, o_whole);
    if (size > 0 && size <= 512) {
        static size_t every[512];
        for (size_t i = 0; i < size; i++)
            every[i] = i + 1;
        run_stream(&split, buf, size, every, size, head_flags, &o_split);
        compare(&split, o_split, &whole, o_whole);
    }
    free(buf);
    return 0;
}
