/* Unit tests for http/h1.c: tg_h1_* used the way the proxy uses them (pause_on_done parsers fed
 * from one contiguous buffer, callbacks recording the head, body and end of each message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

#define MAX_REC_FIELDS 16

/* What the callbacks saw. Heads are copied out in on_head, while the spans are still valid. */
struct rec {
    struct tg_h1_msg m;
    int head_rc; /* what on_head returns */
    int heads, dones, body_calls;
    char method[16];
    int status;
    char url[256];
    char reason[64];
    size_t n_fields;
    char names[MAX_REC_FIELDS][64];
    char values[MAX_REC_FIELDS][128];
    char body[4096];
    size_t body_len;
};

static void copy_span(char *dst, size_t cap, const struct tg_h1_msg *m, struct tg_h1_span s)
{
    assert_true(s.len < cap);
    memcpy(dst, m->base + s.off, s.len);
    dst[s.len] = '\0';
}

static int rec_on_head(struct tg_h1_msg *m)
{
    struct rec *r = m->user;
    assert_ptr_equal(m, &r->m);
    assert_true(m->head_done);
    r->heads++;
    if (m->parser.type == HTTP_REQUEST) {
        snprintf(r->method, sizeof(r->method), "%s",
                 llhttp_method_name((llhttp_method_t)m->parser.method));
        copy_span(r->url, sizeof(r->url), m, m->url);
    } else {
        r->status = m->parser.status_code;
        copy_span(r->reason, sizeof(r->reason), m, m->reason);
    }
    r->n_fields = m->n_fields;
    for (size_t i = 0; i < m->n_fields && i < MAX_REC_FIELDS; i++) {
        copy_span(r->names[i], sizeof(r->names[i]), m, m->fields[i].name);
        copy_span(r->values[i], sizeof(r->values[i]), m, m->fields[i].value);
    }
    return r->head_rc;
}

static int rec_on_body(struct tg_h1_msg *m, const char *at, size_t len)
{
    struct rec *r = m->user;
    r->body_calls++;
    assert_true(r->body_len + len <= sizeof(r->body));
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int rec_on_done(struct tg_h1_msg *m)
{
    struct rec *r = m->user;
    assert_true(m->done);
    r->dones++;
    return 0;
}

static const struct tg_h1_callbacks rec_cb = {rec_on_head, rec_on_body, rec_on_done};

static struct rec *rec_new(llhttp_type_t type, size_t max_fields)
{
    struct rec *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    tg_h1_init(&r->m, type, max_fields, &rec_cb, r);
    r->m.pause_on_done = true; /* as client.c and backend.c set it */
    return r;
}

static void rec_free(struct rec *r)
{
    tg_h1_free(&r->m);
    free(r);
}

/* Forget what the callbacks recorded (between pipelined messages). */
static void rec_clear(struct rec *r)
{
    r->heads = r->dones = r->body_calls = 0;
    r->method[0] = r->url[0] = r->reason[0] = '\0';
    r->status = 0;
    r->n_fields = 0;
    r->body_len = 0;
}

static enum tg_h1_result exec_str(struct rec *r, const char *s, size_t *consumed)
{
    return tg_h1_execute(&r->m, s, 0, strlen(s), consumed);
}

/* The value of the field named lname as a fresh string, or NULL. */
static char *field_value(const struct tg_h1_msg *m, const char *lname)
{
    const struct tg_h1_field *f = tg_h1_find(m, lname);
    if (f == NULL)
        return NULL;
    char *v = malloc(f->value.len + 1);
    assert_non_null(v);
    memcpy(v, m->base + f->value.off, f->value.len);
    v[f->value.len] = '\0';
    return v;
}

static void assert_field(const struct tg_h1_msg *m, const char *lname, const char *value)
{
    char *v = field_value(m, lname);
    assert_non_null(v);
    assert_string_equal(v, value);
    free(v);
}

/* ---- requests ---- */

static void test_simple_get(void **state)
{
    (void)state;
    static const char req[] = "GET /index.html?q=1 HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "User-Agent: unit/1.0\r\n"
                              "Accept: */*\r\n"
                              "\r\n";
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    size_t consumed = 99;
    /* A GET has no body: the message ends with the head, so the parser pauses there. */
    assert_int_equal(exec_str(r, req, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, strlen(req));
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->dones, 1);
    assert_int_equal(r->body_len, 0);
    assert_true(r->m.done);
    assert_string_equal(r->method, "GET");
    assert_int_equal(r->m.parser.method, HTTP_GET);
    assert_string_equal(r->url, "/index.html?q=1");
    assert_int_equal(r->m.url.off, 4);
    assert_int_equal(r->m.url.len, strlen("/index.html?q=1"));
    assert_int_equal(r->m.n_fields, 3);
    assert_int_equal(r->n_fields, 3);
    assert_string_equal(r->names[0], "Host");
    assert_string_equal(r->values[0], "example.com");
    assert_string_equal(r->names[1], "User-Agent");
    assert_string_equal(r->values[1], "unit/1.0");
    assert_string_equal(r->names[2], "Accept");
    assert_string_equal(r->values[2], "*/*");
    /* The buffer is still in place: the spans remain readable after execute. */
    assert_ptr_equal(tg_h1_find(&r->m, "host"), &r->m.fields[0]);
    assert_field(&r->m, "host", "example.com");
    assert_field(&r->m, "user-agent", "unit/1.0");
    assert_null(tg_h1_find(&r->m, "content-length"));
    assert_null(tg_h1_find(&r->m, "hos"));
    assert_true(tg_h1_name_is(&r->m, &r->m.fields[1], "user-agent"));
    assert_false(tg_h1_name_is(&r->m, &r->m.fields[1], "user-agen"));
    assert_int_equal(r->m.parser.http_major, 1);
    assert_int_equal(r->m.parser.http_minor, 1);
    assert_true(llhttp_should_keep_alive(&r->m.parser));
    assert_int_equal(r->m.error_status, 0);
    rec_free(r);
}

/* The proxy keeps the head in one buffer and hands new bytes as (base, off, len) with the same
 * base: spans that llhttp reports in pieces must come out joined. */
static void test_byte_by_byte(void **state)
{
    (void)state;
    static const char req[] = "POST /a/long/path/name?with=query&and=more HTTP/1.1\r\n"
                              "Host: www.example.com:8443\r\n"
                              "X-Long-Header-Name: some value with  inner spaces\r\n"
                              "X-Empty:\r\n"
                              "Content-Length: 4\r\n"
                              "X-Tab:\tv\t\r\n"
                              "\r\n"
                              "abcd";
    size_t n = strlen(req);
    char *buf = malloc(n); /* exact size: ASan sees any read past the bytes given */
    assert_non_null(buf);
    memcpy(buf, req, n);
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    for (size_t i = 0; i < n; i++) {
        size_t consumed = 0;
        enum tg_h1_result res = tg_h1_execute(&r->m, buf, i, 1, &consumed);
        assert_int_equal(consumed, 1);
        if (i + 1 < n) {
            assert_int_equal(res, TG_H1_OK);
            assert_int_equal(r->dones, 0);
        } else {
            assert_int_equal(res, TG_H1_PAUSED);
        }
    }
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->dones, 1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "/a/long/path/name?with=query&and=more");
    assert_int_equal(r->n_fields, 5);
    assert_string_equal(r->names[0], "Host");
    assert_string_equal(r->values[0], "www.example.com:8443");
    assert_string_equal(r->names[1], "X-Long-Header-Name");
    assert_string_equal(r->values[1], "some value with  inner spaces");
    assert_string_equal(r->names[2], "X-Empty");
    assert_string_equal(r->values[2], "");
    assert_string_equal(r->names[3], "Content-Length");
    assert_string_equal(r->values[3], "4");
    assert_string_equal(r->names[4], "X-Tab");
    assert_int_equal(r->body_len, 4);
    assert_memory_equal(r->body, "abcd", 4);
    assert_field(&r->m, "x-long-header-name", "some value with  inner spaces");

    /* The same bytes in one call give the same spans. */
    struct rec *w = rec_new(HTTP_REQUEST, 100);
    size_t consumed = 0;
    assert_int_equal(tg_h1_execute(&w->m, buf, 0, n, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n);
    assert_int_equal(w->m.n_fields, r->m.n_fields);
    assert_memory_equal(&w->m.url, &r->m.url, sizeof(w->m.url));
    for (size_t i = 0; i < w->m.n_fields; i++) {
        assert_memory_equal(&w->m.fields[i].name, &r->m.fields[i].name, sizeof(struct tg_h1_span));
        assert_memory_equal(&w->m.fields[i].value, &r->m.fields[i].value,
                            sizeof(struct tg_h1_span));
    }
    assert_string_equal(w->values[4], r->values[4]);
    rec_free(w);
    rec_free(r);
    free(buf);
}

/* Uneven chunks, some of them ending inside a name, a value or the URL. */
static void test_split_chunks(void **state)
{
    (void)state;
    static const char req[] = "GET /split/url HTTP/1.1\r\nHost: split.example\r\nX-A: 1\r\n\r\n";
    size_t n = strlen(req);
    static const size_t cuts[][3] = {{7, 30, 50}, {1, 2, 3}, {20, 21, 40}, {5, 33, 34}};
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        struct rec *r = rec_new(HTTP_REQUEST, 100);
        size_t off = 0, consumed = 0;
        for (size_t k = 0; k < 3; k++) {
            assert_int_equal(tg_h1_execute(&r->m, req, off, cuts[c][k] - off, &consumed), TG_H1_OK);
            assert_int_equal(consumed, cuts[c][k] - off);
            off = cuts[c][k];
        }
        assert_int_equal(tg_h1_execute(&r->m, req, off, n - off, &consumed), TG_H1_PAUSED);
        assert_int_equal(consumed, n - off);
        assert_string_equal(r->url, "/split/url");
        assert_int_equal(r->n_fields, 2);
        assert_string_equal(r->names[0], "Host");
        assert_string_equal(r->values[0], "split.example");
        assert_string_equal(r->names[1], "X-A");
        assert_string_equal(r->values[1], "1");
        rec_free(r);
    }
}

static void test_empty_header_value(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "X-Empty:\r\n"
                              "X-Blank:   \r\n"
                              "X-After: v\r\n"
                              "\r\n";
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    size_t consumed;
    assert_int_equal(exec_str(r, req, &consumed), TG_H1_PAUSED);
    assert_int_equal(r->n_fields, 4);
    assert_string_equal(r->names[1], "X-Empty");
    assert_int_equal(r->m.fields[1].value.len, 0);
    assert_string_equal(r->names[2], "X-Blank");
    assert_string_equal(r->values[2], "");
    assert_string_equal(r->names[3], "X-After");
    assert_string_equal(r->values[3], "v");
    assert_field(&r->m, "x-after", "v");
    assert_field(&r->m, "x-empty", "");
    rec_free(r);
}

static void test_too_many_fields(void **state)
{
    (void)state;
    static const char ok[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char bad[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    size_t consumed;
    /* Exactly max_fields is fine. */
    struct rec *r = rec_new(HTTP_REQUEST, 3);
    assert_int_equal(exec_str(r, ok, &consumed), TG_H1_PAUSED);
    assert_int_equal(r->m.n_fields, 3);
    rec_free(r);

    r = rec_new(HTTP_REQUEST, 3);
    assert_int_equal(exec_str(r, bad, &consumed), TG_H1_ERROR);
    assert_int_equal(r->m.error_status, 431);
    assert_non_null(r->m.error);
    assert_int_equal(r->heads, 0);
    assert_int_equal(r->dones, 0);
    assert_true(r->m.n_fields <= 3);
    /* Once failed, the parser stays failed. */
    assert_int_equal(exec_str(r, ok, &consumed), TG_H1_ERROR);
    assert_int_equal(consumed, 0);
    assert_int_equal(r->m.error_status, 431);
    rec_free(r);

    /* The same when the fourth field arrives in its own call. */
    r = rec_new(HTTP_REQUEST, 3);
    size_t cut = strlen(bad) - strlen("C: 3\r\n\r\n");
    assert_int_equal(tg_h1_execute(&r->m, bad, 0, cut, &consumed), TG_H1_OK);
    assert_int_equal(tg_h1_execute(&r->m, bad, cut, strlen(bad) - cut, &consumed), TG_H1_ERROR);
    assert_int_equal(r->m.error_status, 431);
    rec_free(r);
}

static void assert_bad_request(const char *req)
{
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    size_t consumed;
    enum tg_h1_result res = exec_str(r, req, &consumed);
    if (res != TG_H1_ERROR)
        fail_msg("accepted: %s", req);
    assert_int_equal(r->m.error_status, 400);
    assert_non_null(r->m.error);
    assert_int_equal(r->dones, 0);
    rec_free(r);
}

static void test_malformed_request_line(void **state)
{
    (void)state;
    assert_bad_request("GE T / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n");
    assert_bad_request("GET / FTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_bad_request("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
}

/* A well-formed request line with a version we do not speak is 505, not 400 (RFC 9110 15.6.6). */
static void test_unsupported_version(void **state)
{
    (void)state;
    static const char *const reqs[] = {"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
                                       "GET / HTTP/3.0\r\nHost: a\r\n\r\n"};
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct rec *r = rec_new(HTTP_REQUEST, 100);
        size_t consumed;
        assert_int_equal(exec_str(r, reqs[i], &consumed), TG_H1_ERROR);
        assert_int_equal(r->m.error_status, 505);
        rec_free(r);
    }
}

/* Connection may nominate ordinary fields, never Host, framing, credentials or ours. */
static void test_connection_protected_fields(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Host, Cookie, X-A, "
                              "Content-Length, Authorization, X-Forwarded-For\r\nCookie: c\r\n"
                              "X-A: 1\r\nAuthorization: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    size_t consumed;
    assert_int_not_equal(exec_str(r, req, &consumed), TG_H1_ERROR);
    assert_true(r->m.head_done);
    const char *keep[] = {"host", "cookie", "authorization", "x-forwarded-for"};
    for (size_t i = 0; i < 4; i++)
        assert_false(tg_h1_is_hop_by_hop(&r->m, tg_h1_find(&r->m, keep[i])));
    assert_true(tg_h1_is_hop_by_hop(&r->m, tg_h1_find(&r->m, "x-a")));
    assert_true(tg_h1_is_hop_by_hop(&r->m, tg_h1_find(&r->m, "connection")));
    rec_free(r);
}

/* Path normalisation: what routes match and backends receive. */
static void check_norm(const char *in, const char *want)
{
    char buf[256];
    size_t n = strlen(in), out = 0;
    memcpy(buf, in, n);
    int rc = tg_http_path_normalize(buf, n, &out);
    if (want == NULL) {
        if (rc != -1)
            fail_msg("accepted %s as %.*s", in, (int)out, buf);
        return;
    }
    if (rc != 0 || out != strlen(want) || memcmp(buf, want, out) != 0)
        fail_msg("%s -> %.*s (rc %d), want %s", in, (int)out, buf, rc, want);
}

static void test_path_normalize(void **state)
{
    (void)state;
    check_norm("/", "/");
    check_norm("/a/b", "/a/b");
    check_norm("/a/./b", "/a/b");
    check_norm("/a/../b", "/b");
    check_norm("/a/b/..", "/a/");
    check_norm("/a/b/.", "/a/b/");
    check_norm("/..", "/");
    check_norm("/../..", "/");
    check_norm("/../../x", "/x");
    check_norm("/a//../b", "/a/b");
    check_norm("//x", "//x");
    check_norm("/a/...", "/a/...");
    check_norm("/a/..b/.c", "/a/..b/.c");
    check_norm("/%2e%2e/_status", "/_status");
    check_norm("/%2E/x", "/x");
    check_norm("/%7Euser/%41", "/~user/A");
    check_norm("/a%2fb", "/a%2Fb");
    check_norm("/a%2F..%2Fb", "/a%2F..%2Fb");
    check_norm("/x?y=/../%2e", "/x?y=/../%2e");
    check_norm("/a/b/../?q", "/a/?q");
    check_norm("/caf%c3%a9", "/caf%C3%A9");
    check_norm("/a%00b", "/a%00b");
    check_norm("", NULL);
    check_norm("a/b", NULL);
    check_norm("/%zz", NULL);
    check_norm("/%a", NULL);
    check_norm("/%", NULL);
    check_norm("/a#frag", NULL);
    check_norm("/a%?x", NULL);
}

static void test_prefix_match(void **state)
{
    (void)state;
    assert_true(tg_http_prefix_match("/api", 4, "/api", 4));
    assert_true(tg_http_prefix_match("/api", 4, "/api/x", 6));
    assert_true(tg_http_prefix_match("/api", 4, "/api?x", 6));
    assert_false(tg_http_prefix_match("/api", 4, "/apix", 5));
    assert_false(tg_http_prefix_match("/api", 4, "/ap", 3));
    assert_true(tg_http_prefix_match("/api/", 5, "/api/x", 6));
    assert_false(tg_http_prefix_match("/api/", 5, "/api", 4));
    assert_true(tg_http_prefix_match("/", 1, "/anything", 9));
}

static void test_content_length_body(void **state)
{
    (void)state;
    static const char req[] = "POST /upload HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "Content-Length: 11\r\n"
                              "\r\n"
                              "hello world";
    size_t n = strlen(req), head = n - 11, consumed;
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    /* Head and the first bytes of the body, then the rest. */
    assert_int_equal(tg_h1_execute(&r->m, req, 0, head + 3, &consumed), TG_H1_OK);
    assert_int_equal(consumed, head + 3);
    assert_int_equal(r->heads, 1);
    assert_true(r->m.head_done);
    assert_false(r->m.done);
    assert_int_equal(r->m.parser.content_length, 8);
    assert_true(r->m.parser.flags & F_CONTENT_LENGTH);
    assert_int_equal(r->body_len, 3);
    /* After the head the body may come from another buffer (the proxy compacts it). */
    char *tail = strdup(req + head + 3);
    assert_non_null(tail);
    assert_int_equal(tg_h1_execute(&r->m, tail, 0, 8, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, 8);
    assert_int_equal(r->dones, 1);
    assert_int_equal(r->body_len, 11);
    assert_memory_equal(r->body, "hello world", 11);
    free(tail);
    rec_free(r);
}

static void test_chunked_body(void **state)
{
    (void)state;
    static const char req[] = "POST /c HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n"
                              "5\r\nhello\r\n"
                              "6;ext=1\r\n world\r\n"
                              "A\r\n0123456789\r\n"
                              "0\r\n\r\n";
    size_t consumed;
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(exec_str(r, req, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, strlen(req));
    assert_true(r->m.parser.flags & F_CHUNKED);
    assert_int_equal(r->dones, 1);
    assert_int_equal(r->body_len, 21);
    assert_memory_equal(r->body, "hello world0123456789", 21);
    rec_free(r);

    /* Byte by byte too. */
    r = rec_new(HTTP_REQUEST, 100);
    size_t n = strlen(req);
    for (size_t i = 0; i < n; i++) {
        enum tg_h1_result res = tg_h1_execute(&r->m, req, i, 1, &consumed);
        assert_int_equal(res, i + 1 < n ? TG_H1_OK : TG_H1_PAUSED);
    }
    assert_int_equal(r->body_len, 21);
    assert_memory_equal(r->body, "hello world0123456789", 21);
    rec_free(r);

    /* A bad chunk size fails the request. */
    r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(exec_str(r,
                              "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "zz\r\nhello\r\n0\r\n\r\n",
                              &consumed),
                     TG_H1_ERROR);
    assert_int_equal(r->m.error_status, 400);
    rec_free(r);
}

static void test_pipelined(void **state)
{
    (void)state;
    static const char first[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char second[] = "POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nxyz";
    static const char third[] = "GET /three HTTP/1.1\r\nHost: c\r\n\r\n";
    char buf[512];
    size_t n1 = strlen(first), n2 = strlen(second), n3 = strlen(third);
    memcpy(buf, first, n1);
    memcpy(buf + n1, second, n2);
    memcpy(buf + n1 + n2, third, n3);
    size_t total = n1 + n2 + n3, off = 0, consumed;
    struct rec *r = rec_new(HTTP_REQUEST, 100);

    assert_int_equal(tg_h1_execute(&r->m, buf, off, total - off, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n1);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->dones, 1);
    assert_string_equal(r->url, "/one");
    assert_string_equal(r->values[0], "a");
    off += consumed;

    /* Paused: nothing more is parsed until tg_h1_next. */
    rec_clear(r);
    tg_h1_next(&r->m);
    assert_false(r->m.done);
    assert_false(r->m.head_done);
    assert_int_equal(tg_h1_execute(&r->m, buf, off, total - off, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n2);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "/two");
    assert_int_equal(r->n_fields, 2);
    assert_string_equal(r->values[0], "b");
    assert_int_equal(r->body_len, 3);
    assert_memory_equal(r->body, "xyz", 3);
    off += consumed;

    rec_clear(r);
    tg_h1_next(&r->m);
    assert_int_equal(tg_h1_execute(&r->m, buf, off, total - off, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n3);
    assert_string_equal(r->url, "/three");
    assert_int_equal(r->m.n_fields, 1);
    assert_field(&r->m, "host", "c");
    off += consumed;
    assert_int_equal(off, total);
    rec_free(r);
}

/* A message's end arrives in the same read as the first bytes of the next one. */
static void test_pipelined_split(void **state)
{
    (void)state;
    static const char buf[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHo"
                              "st: b\r\n\r\n";
    size_t n1 = strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t cut = n1 + 21, consumed;
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(tg_h1_execute(&r->m, buf, 0, cut, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n1);
    tg_h1_next(&r->m);
    rec_clear(r);
    assert_int_equal(tg_h1_execute(&r->m, buf, n1, cut - n1, &consumed), TG_H1_OK);
    assert_int_equal(consumed, cut - n1);
    assert_int_equal(r->heads, 0);
    assert_int_equal(tg_h1_execute(&r->m, buf, cut, strlen(buf) - cut, &consumed), TG_H1_PAUSED);
    assert_string_equal(r->url, "/two");
    assert_string_equal(r->names[0], "Host");
    assert_string_equal(r->values[0], "b");
    rec_free(r);
}

static void test_smuggling_guards(void **state)
{
    (void)state;
    /* Content-Length together with Transfer-Encoding. */
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 5\r\n\r\n0\r\n\r\n");
    /* Two different lengths. */
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                       "Content-Length: 6\r\n\r\nhello!");
    /* A request whose framing is not chunked-last. */
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                       "0\r\n\r\n");
    /* Garbage in the length. */
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello");
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n");
    /* Header name with whitespace before the colon. */
    assert_bad_request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"
                       "0\r\n\r\n");
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "Host: a\r\n"                             /* 0 */
                              "Connection: close, X-Foo\r\n"            /* 1 */
                              "Keep-Alive: timeout=5\r\n"               /* 2 */
                              "TE: trailers\r\n"                        /* 3 */
                              "Transfer-Encoding: chunked\r\n"          /* 4 */
                              "Upgrade: websocket\r\n"                  /* 5 */
                              "Proxy-Connection: keep-alive\r\n"        /* 6 */
                              "X-Foo: 1\r\n"                            /* 7 */
                              "X-Bar: 2\r\n"                            /* 8 */
                              "x-foo: 3\r\n"                            /* 9 */
                              "Trailer: X-Checksum\r\n"                 /* 10 */
                              "X-Foo-Bar: 4\r\n"                        /* 11 */
                              "X-Fo: 5\r\n"                             /* 12 */
                              "Connection: keep-alive ,  X-Second \r\n" /* 13 */
                              "X-SECOND: 6\r\n"                         /* 14 */
                              "\r\n"
                              "0\r\n\r\n";
    static const bool expect[] = {false, true, true, true,  true,  true, true, true,
                                  false, true, true, false, false, true, true};
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    size_t consumed;
    assert_int_equal(exec_str(r, req, &consumed), TG_H1_PAUSED);
    assert_int_equal(r->m.n_fields, sizeof(expect) / sizeof(expect[0]));
    for (size_t i = 0; i < r->m.n_fields; i++) {
        if (tg_h1_is_hop_by_hop(&r->m, &r->m.fields[i]) != expect[i])
            fail_msg("field %zu (%s) hop-by-hop: expected %d", i, r->names[i], expect[i]);
    }
    assert_true(tg_h1_has_token(&r->m, "connection", "close"));
    assert_true(tg_h1_has_token(&r->m, "connection", "x-foo"));
    assert_true(tg_h1_has_token(&r->m, "connection", "X-SECOND"));
    assert_false(tg_h1_has_token(&r->m, "connection", "x-bar"));
    rec_free(r);

    /* Names of 31, 32 and more characters named by Connection (the length mask's edges). */
    r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(
        exec_str(
            r,
            "GET / HTTP/1.1\r\nHost: a\r\n"
            "Connection: x-name-of-31-aaaaaaaaaaaaaaaaaa, X-NAME-OF-32-BBBBBBBBBBBBBBBBBBB,\r\n"
            "Connection: X-Name-Of-40-ccccccccccccccccccccccccccc\r\n"
            "X-Name-Of-31-aaaaaaaaaaaaaaaaaa: 1\r\n"
            "X-Name-Of-32-bbbbbbbbbbbbbbbbbbb: 2\r\n"
            "X-Name-Of-40-ccccccccccccccccccccccccccc: 3\r\n"
            "X-Name-Of-40-ccccccccccccccccccccccccccd: 4\r\n"
            "X-Name-Of-31-aaaaaaaaaaaaaaaaae: 5\r\n\r\n",
            &consumed),
        TG_H1_PAUSED);
    assert_int_equal(r->m.fields[3].name.len, 31);
    assert_int_equal(r->m.fields[4].name.len, 32);
    assert_int_equal(r->m.fields[5].name.len, 40);
    assert_true(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[3]));
    assert_true(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[4]));
    assert_true(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[5]));
    assert_false(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[6])); /* 40 long, not named */
    assert_false(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[7])); /* 31 long, not named */
    rec_free(r);

    /* Without a Connection header only the fixed set is hop-by-hop. */
    r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(
        exec_str(r, "GET / HTTP/1.1\r\nHost: a\r\nX-Foo: 1\r\nte: x\r\n\r\n", &consumed),
        TG_H1_PAUSED);
    assert_false(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[0]));
    assert_false(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[1]));
    assert_true(tg_h1_is_hop_by_hop(&r->m, &r->m.fields[2]));
    rec_free(r);
}

static void test_has_token(void **state)
{
    (void)state;
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    size_t consumed;
    assert_int_equal(exec_str(r,
                              "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                              "Content-Length: 0\r\n\r\n",
                              &consumed),
                     TG_H1_PAUSED);
    assert_true(tg_h1_has_token(&r->m, "expect", "100-continue"));
    assert_true(tg_h1_has_token(&r->m, "expect", "100-CONTINUE"));
    assert_false(tg_h1_has_token(&r->m, "expect", "100"));
    assert_false(tg_h1_has_token(&r->m, "expect", "100-continues"));
    assert_false(tg_h1_has_token(&r->m, "expect", ""));
    assert_false(tg_h1_has_token(&r->m, "x-none", "100-continue"));
    assert_false(tg_h1_has_token(&r->m, "host", "100-continue"));
    rec_free(r);

    r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(exec_str(r,
                              "POST / HTTP/1.1\r\nHost: a\r\nEXPECT: foo ,\t100-CONTINUE\t,bar\r\n"
                              "Content-Length: 0\r\n\r\n",
                              &consumed),
                     TG_H1_PAUSED);
    assert_true(tg_h1_has_token(&r->m, "expect", "100-continue"));
    assert_true(tg_h1_has_token(&r->m, "expect", "foo"));
    assert_true(tg_h1_has_token(&r->m, "expect", "bar"));
    assert_false(tg_h1_has_token(&r->m, "expect", "foo ,"));
    rec_free(r);

    /* Absent header. */
    r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(exec_str(r, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed), TG_H1_PAUSED);
    assert_false(tg_h1_has_token(&r->m, "expect", "100-continue"));
    rec_free(r);
}

/* on_head may fail the message with its own status. */
/* RFC 9112 5.2: obs-fold in a request must be rejected (400) or replaced by SP before the value
 * is interpreted or forwarded. Known bug: h1.c keeps only the continuation line (" second"). */
static void test_obs_fold(void **state)
{
    (void)state;
    static const char *const types[] = {"request", "response"};
    static const char *const msgs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: first\r\n second\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Folded: first\r\n second\r\nContent-Length: 0\r\n\r\n",
    };
    bool buggy = false;
    for (size_t i = 0; i < 2; i++) {
        struct rec *r = rec_new(i == 0 ? HTTP_REQUEST : HTTP_RESPONSE, 100);
        size_t consumed;
        enum tg_h1_result res = exec_str(r, msgs[i], &consumed);
        if (res == TG_H1_ERROR) {
            assert_int_not_equal(r->m.error_status, 0);
        } else {
            char *v = field_value(&r->m, "x-folded");
            assert_non_null(v);
            /* Either rejected or the whole value kept ("first" ... "second"). */
            if (strncmp(v, "first", 5) != 0 || strstr(v, "second") == NULL) {
                print_message("regression (%s): folded X-Folded value came out as \"%s\"\n",
                              types[i], v);
                buggy = true;
            }
            free(v);
        }
        rec_free(r);
    }
    if (buggy)
        fail();
}

/* A field name is a token (RFC 9110 5.1): an empty name or one with a space must be refused,
 * not forwarded to the backend. Known bug: llhttp 8 (non-strict) reports both as fields and h1.c
 * accepts them; the rest of the bad names below are refused. */
static void test_invalid_field_names(void **state)
{
    (void)state;
    assert_bad_request("GET / HTTP/1.1\r\nBad\"Name: x\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nBad(Name: x\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nBad\x01Name: x\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n");
    static const char *const lenient[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n: evil\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer Encoding: chunked\r\n\r\n",
    };
    bool buggy = false;
    for (size_t i = 0; i < sizeof(lenient) / sizeof(lenient[0]); i++) {
        struct rec *r = rec_new(HTTP_REQUEST, 100);
        size_t consumed;
        if (exec_str(r, lenient[i], &consumed) != TG_H1_ERROR) {
            print_message("regression: accepted field \"%s\" in %s", r->names[1], lenient[i]);
            buggy = true;
        } else {
            assert_int_equal(r->m.error_status, 400);
        }
        rec_free(r);
    }
    if (buggy)
        fail();
}

/* Chunked trailer fields are not head fields: they should not count against max_fields (the
 * head already went to the backend) nor show up in m->fields. Known bug: they do. */
static void test_trailers(void **state)
{
    (void)state;
    static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "1\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n";
    size_t consumed;
    /* With room for the trailer the message parses; the body is decoded. */
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    assert_int_equal(exec_str(r, req, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, strlen(req));
    assert_int_equal(r->n_fields, 2);
    assert_int_equal(r->body_len, 1);
    assert_int_equal(r->dones, 1);
    bool trailer_in_fields = r->m.n_fields != 2;
    rec_free(r);

    /* A head with exactly max_fields fields plus one trailer. */
    r = rec_new(HTTP_REQUEST, 2);
    enum tg_h1_result res = exec_str(r, req, &consumed);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->body_len, 1);
    bool trailer_431 = res == TG_H1_ERROR && r->m.error_status == 431;
    if (!trailer_431) {
        assert_int_equal(res, TG_H1_PAUSED);
        assert_int_equal(r->dones, 1);
    }
    rec_free(r);
    if (trailer_in_fields || trailer_431) {
        print_message("regression: trailer fields %s%s\n",
                      trailer_in_fields ? "are appended to m->fields; " : "",
                      trailer_431 ? "count against max_fields (431 after the head was sent)" : "");
        fail();
    }
}

static void test_on_head_fails(void **state)
{
    (void)state;
    size_t consumed;
    struct rec *r = rec_new(HTTP_REQUEST, 100);
    r->head_rc = -1;
    assert_int_equal(exec_str(r, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed), TG_H1_ERROR);
    assert_int_equal(r->m.error_status, 400);
    assert_int_equal(r->dones, 0);
    rec_free(r);
}

/* ---- responses ---- */

static void test_response_head_no_body(void **state)
{
    (void)state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n"
                               "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";
    size_t n1 = strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n");
    size_t consumed;
    struct rec *r = rec_new(HTTP_RESPONSE, 100);
    r->head_rc = 1; /* the request was HEAD: the 200 has no body despite Content-Length */
    assert_int_equal(exec_str(r, resp, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n1);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->reason, "OK");
    assert_int_equal(r->dones, 1);
    assert_int_equal(r->body_len, 0);
    assert_int_equal(r->n_fields, 2);
    assert_string_equal(r->values[0], "5");

    /* The next response on the connection has its body (the proxy resets per exchange). */
    rec_clear(r);
    r->head_rc = 0;
    tg_h1_reset(&r->m);
    assert_int_equal(tg_h1_execute(&r->m, resp, n1, strlen(resp) - n1, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, strlen(resp) - n1);
    assert_int_equal(r->status, 404);
    assert_string_equal(r->reason, "Not Found");
    assert_int_equal(r->body_len, 3);
    assert_memory_equal(r->body, "nop", 3);
    rec_free(r);
}

/* RFC 9112 6.3: 1xx, 204 and 304 responses end with their head whatever Content-Length or
 * Transfer-Encoding say (a 304 may carry the Content-Length of the 200 it stands for). The proxy's
 * on_head returns 1 only for HEAD requests. Known bug: llhttp then reads a body for them. */
static void test_response_no_body_statuses(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 1234\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n",
    };
    static const char next[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    bool buggy = false;
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        char buf[256];
        size_t hl = strlen(heads[i]);
        assert_true(hl + sizeof(next) <= sizeof(buf));
        memcpy(buf, heads[i], hl);
        memcpy(buf + hl, next, sizeof(next));
        struct rec *r = rec_new(HTTP_RESPONSE, 100);
        size_t consumed;
        enum tg_h1_result res = exec_str(r, buf, &consumed);
        assert_int_equal(r->heads, 1);
        if (res != TG_H1_PAUSED || consumed != hl || r->body_len != 0) {
            print_message("regression: \"%.*s\" read a body: result %d, consumed %zu of a %zu "
                          "byte head, %zu body bytes\n",
                          (int)strcspn(heads[i], "\r"), heads[i], res, consumed, hl, r->body_len);
            buggy = true;
        }
        rec_free(r);
    }
    /* Returning 1 from on_head (what the proxy does for HEAD) does give the right framing. */
    struct rec *r = rec_new(HTTP_RESPONSE, 100);
    r->head_rc = 1;
    size_t consumed;
    assert_int_equal(exec_str(r, heads[0], &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, strlen(heads[0]));
    assert_int_equal(r->dones, 1);
    rec_free(r);
    if (buggy)
        fail();
}

/* RFC 9112 4: status-code = 3DIGIT; RFC 9110 15: values outside 100..599 are invalid. Known bug:
 * llhttp 8 takes 0 to 3 digits, and the proxy treats any code below 200 as interim, so the body of
 * "HTTP/1.1 000" goes to the client with no status line before it. */
static void test_response_bad_status_code(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/1.1 \r\n\r\nbody",
        "HTTP/1.1  close\r\n\r\nbody",
        "HTTP/1.1 0\r\n\r\nbody",
        "HTTP/1.1 20 OK\r\n\r\nbody",
        "HTTP/1.1 099 x\r\n\r\nbody",
        "HTTP/1.1 000\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n",
    };
    bool buggy = false;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rec *r = rec_new(HTTP_RESPONSE, 100);
        size_t consumed;
        if (exec_str(r, bad[i], &consumed) != TG_H1_ERROR) {
            print_message("regression: accepted status line \"%.*s\" as status %d (%d body "
                          "bytes)\n",
                          (int)strcspn(bad[i], "\r"), bad[i], r->status, (int)r->body_len);
            buggy = true;
        }
        rec_free(r);
    }
    /* Four digits are refused. */
    struct rec *r = rec_new(HTTP_RESPONSE, 100);
    size_t consumed;
    assert_int_equal(exec_str(r, "HTTP/1.1 2000 OK\r\n\r\n", &consumed), TG_H1_ERROR);
    rec_free(r);
    if (buggy)
        fail();
}

static void test_response_1xx_then_final(void **state)
{
    (void)state;
    static const char resp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    size_t n1 = strlen("HTTP/1.1 100 Continue\r\n\r\n");
    size_t n2 = strlen("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
    size_t total = strlen(resp), off = 0, consumed;
    struct rec *r = rec_new(HTTP_RESPONSE, 100);

    assert_int_equal(tg_h1_execute(&r->m, resp, off, total - off, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n1);
    assert_int_equal(r->status, 100);
    assert_string_equal(r->reason, "Continue");
    assert_int_equal(r->dones, 1);
    assert_int_equal(r->m.parser.status_code, 100);
    off += consumed;

    rec_clear(r);
    tg_h1_next(&r->m);
    assert_int_equal(tg_h1_execute(&r->m, resp, off, total - off, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, n2);
    assert_int_equal(r->status, 103);
    assert_string_equal(r->reason, "Early Hints");
    assert_int_equal(r->n_fields, 1);
    assert_string_equal(r->values[0], "</s.css>; rel=preload");
    off += consumed;

    rec_clear(r);
    tg_h1_next(&r->m);
    assert_int_equal(tg_h1_execute(&r->m, resp, off, total - off, &consumed), TG_H1_PAUSED);
    assert_int_equal(consumed, total - off);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->n_fields, 1);
    assert_int_equal(r->body_len, 2);
    assert_memory_equal(r->body, "hi", 2);
    assert_true(r->m.done);
    rec_free(r);
}

static void test_response_close_delimited(void **state)
{
    (void)state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body";
    size_t consumed;
    struct rec *r = rec_new(HTTP_RESPONSE, 100);
    assert_int_equal(exec_str(r, resp, &consumed), TG_H1_OK);
    assert_int_equal(consumed, strlen(resp));
    assert_int_equal(r->heads, 1);
    assert_false(r->m.done);
    assert_false(llhttp_should_keep_alive(&r->m.parser));
    /* More body: the body goes on until EOF. */
    assert_int_equal(tg_h1_execute(&r->m, " and more", 0, 9, &consumed), TG_H1_OK);
    assert_int_equal(r->dones, 0);
    enum tg_h1_result res = tg_h1_finish(&r->m);
    assert_int_not_equal(res, TG_H1_ERROR);
    assert_int_equal(r->dones, 1);
    assert_true(r->m.done);
    assert_int_equal(r->body_len, 18);
    assert_memory_equal(r->body, "some body and more", 18);
    rec_free(r);

    /* HTTP/1.0 without length: the same. */
    r = rec_new(HTTP_RESPONSE, 100);
    assert_int_equal(exec_str(r, "HTTP/1.0 200 OK\r\n\r\nold", &consumed), TG_H1_OK);
    assert_int_not_equal(tg_h1_finish(&r->m), TG_H1_ERROR);
    assert_int_equal(r->dones, 1);
    assert_memory_equal(r->body, "old", 3);
    rec_free(r);

    /* EOF before Content-Length bytes arrived is an error, not a complete message. */
    r = rec_new(HTTP_RESPONSE, 100);
    assert_int_equal(exec_str(r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &consumed),
                     TG_H1_OK);
    assert_int_equal(tg_h1_finish(&r->m), TG_H1_ERROR);
    assert_int_equal(r->dones, 0);
    assert_int_not_equal(r->m.error_status, 0);
    rec_free(r);

    /* EOF in the middle of a head too. */
    r = rec_new(HTTP_RESPONSE, 100);
    assert_int_equal(exec_str(r, "HTTP/1.1 200 OK\r\nContent-Le", &consumed), TG_H1_OK);
    assert_int_equal(tg_h1_finish(&r->m), TG_H1_ERROR);
    assert_int_equal(r->heads, 0);
    rec_free(r);
}

static void test_response_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rec *r = rec_new(HTTP_RESPONSE, 100);
        size_t consumed;
        if (exec_str(r, bad[i], &consumed) != TG_H1_ERROR)
            fail_msg("accepted: %s", bad[i]);
        assert_int_not_equal(r->m.error_status, 0);
        rec_free(r);
    }
}

/* ---- reuse ---- */

static void test_reset_reuse(void **state)
{
    (void)state;
    size_t consumed;
    struct rec *r = rec_new(HTTP_REQUEST, 2);
    struct tg_h1_field *fields = r->m.fields;

    /* A failed parser... */
    assert_int_equal(exec_str(r, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &consumed),
                     TG_H1_ERROR);
    assert_int_equal(r->m.error_status, 431);
    /* ...works again after a reset, keeping callbacks, user, limits and field storage. */
    tg_h1_reset(&r->m);
    assert_int_equal(r->m.error_status, 0);
    assert_null(r->m.error);
    assert_int_equal(r->m.n_fields, 0);
    assert_false(r->m.head_done);
    assert_ptr_equal(r->m.fields, fields);
    assert_ptr_equal(r->m.user, r);
    assert_true(r->m.pause_on_done);
    rec_clear(r);
    assert_int_equal(exec_str(r, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n", &consumed),
                     TG_H1_PAUSED);
    assert_string_equal(r->url, "/again");
    assert_int_equal(r->dones, 1);

    /* A reset in the middle of a head forgets it. */
    tg_h1_reset(&r->m);
    rec_clear(r);
    assert_int_equal(exec_str(r, "POST /half HTTP/1.1\r\nHo", &consumed), TG_H1_OK);
    tg_h1_reset(&r->m);
    assert_int_equal(
        exec_str(r, "PUT /whole HTTP/1.1\r\nHost: y\r\nContent-Length: 1\r\n\r\nz", &consumed),
        TG_H1_PAUSED);
    assert_int_equal(r->heads, 1);
    assert_string_equal(r->method, "PUT");
    assert_string_equal(r->url, "/whole");
    assert_string_equal(r->names[0], "Host");
    assert_memory_equal(r->body, "z", 1);

    /* A reset after a completed (paused) message keeps the parser type. */
    tg_h1_reset(&r->m);
    assert_int_equal(r->m.parser.type, HTTP_REQUEST);
    rec_clear(r);
    assert_int_equal(exec_str(r, "DELETE /d HTTP/1.1\r\nHost: y\r\n\r\n", &consumed), TG_H1_PAUSED);
    assert_string_equal(r->method, "DELETE");
    rec_free(r);

    /* Responses too. */
    r = rec_new(HTTP_RESPONSE, 10);
    assert_int_equal(exec_str(r, "HTTP/1.1 204 No Content\r\n\r\n", &consumed), TG_H1_PAUSED);
    tg_h1_reset(&r->m);
    assert_int_equal(r->m.parser.type, HTTP_RESPONSE);
    rec_clear(r);
    assert_int_equal(
        exec_str(r, "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", &consumed),
        TG_H1_PAUSED);
    assert_int_equal(r->status, 302);
    assert_string_equal(r->values[0], "/x");
    rec_free(r);
}

static void test_empty_execute(void **state)
{
    (void)state;
    size_t consumed = 7;
    struct rec *r = rec_new(HTTP_REQUEST, 10);
    assert_int_equal(tg_h1_execute(&r->m, "", 0, 0, &consumed), TG_H1_OK);
    assert_int_equal(consumed, 0);
    /* Leading empty lines before a request are tolerated (RFC 9112 2.2). */
    assert_int_equal(exec_str(r, "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed), TG_H1_PAUSED);
    assert_string_equal(r->url, "/");
    rec_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_split_chunks),
        cmocka_unit_test(test_empty_header_value),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_malformed_request_line),
        cmocka_unit_test(test_unsupported_version),
        cmocka_unit_test(test_connection_protected_fields),
        cmocka_unit_test(test_path_normalize),
        cmocka_unit_test(test_prefix_match),
        cmocka_unit_test(test_content_length_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_pipelined_split),
        cmocka_unit_test(test_smuggling_guards),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_invalid_field_names),
        cmocka_unit_test(test_on_head_fails),
        cmocka_unit_test(test_response_head_no_body),
        cmocka_unit_test(test_response_no_body_statuses),
        cmocka_unit_test(test_response_bad_status_code),
        cmocka_unit_test(test_response_1xx_then_final),
        cmocka_unit_test(test_response_close_delimited),
        cmocka_unit_test(test_response_malformed),
        cmocka_unit_test(test_reset_reuse),
        cmocka_unit_test(test_empty_execute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
