/* Unit tests for http/head.c: heads as data and their HTTP/1.1 wire form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/buf.h"
#include "http/http.h"

static char *written(struct tg_buf *b)
{
    static char out[2048];
    size_t n = b->len - b->off < sizeof(out) - 1 ? b->len - b->off : sizeof(out) - 1;
    memcpy(out, b->data + b->off, n);
    out[n] = '\0';
    return out;
}

static void test_request(void **state)
{
    (void)state;
    struct tg_http_head h;
    tg_http_head_init(&h, 4);
    h.method = "POST";
    h.method_len = 4;
    h.target = "/a?b";
    h.target_len = 4;
    assert_true(tg_http_head_add(&h, "Host", 4, "x", 1));
    assert_true(tg_http_head_add(&h, "X-A", 3, "1", 1));
    h.body = TG_BODY_LENGTH;
    h.content_length = 12;
    struct tg_buf b = {0};
    tg_buf_ensure(&b, 512);
    assert_true(tg_h1_write_request(&b, &h));
    assert_string_equal(written(&b), "POST /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n"
                                     "Content-Length: 12\r\n\r\n");
    /* An absolute-form request whose path was empty still goes out in origin form. */
    b.off = b.len = 0;
    tg_http_head_clear(&h);
    h.method = "GET";
    h.method_len = 3;
    h.target = "?q";
    h.target_len = 2;
    h.upgrade = "websocket";
    assert_true(tg_h1_write_request(&b, &h));
    assert_string_equal(written(&b),
                        "GET /?q HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    tg_buf_free(&b);
    tg_http_head_free(&h);
}

static void test_response_and_limits(void **state)
{
    (void)state;
    struct tg_http_head h;
    tg_http_head_init(&h, 1);
    h.status = 200;
    h.reason = "OK";
    h.reason_len = 2;
    h.body = TG_BODY_CHUNKED;
    h.close = true;
    assert_true(tg_http_head_add(&h, "X", 1, "y", 1));
    assert_false(tg_http_head_add(&h, "Z", 1, "w", 1)); /* full */
    struct tg_buf b = {0};
    tg_buf_ensure(&b, 512);
    assert_true(tg_h1_write_response(&b, &h));
    assert_string_equal(written(&b), "HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\n"
                                     "Connection: close\r\n\r\n");
    /* Status and Content-Length in decimal, from 0 to the largest length. */
    static const struct {
        int status;
        uint64_t len;
        const char *want;
    } nums[] = {
        {404, 0, "HTTP/1.1 404 OK\r\nX: y\r\nContent-Length: 0\r\n\r\n"},
        {101, 9, "HTTP/1.1 101 OK\r\nX: y\r\nContent-Length: 9\r\n\r\n"},
        {999, 1048576, "HTTP/1.1 999 OK\r\nX: y\r\nContent-Length: 1048576\r\n\r\n"},
        {200, UINT64_MAX,
         "HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 18446744073709551615\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        b.off = b.len = 0;
        h.status = nums[i].status;
        h.body = TG_BODY_LENGTH;
        h.content_length = nums[i].len;
        h.close = false;
        assert_true(tg_h1_write_response(&b, &h));
        assert_string_equal(written(&b), nums[i].want);
    }
    tg_buf_free(&b);
    /* A head that does not fit is reported, never silently cut. */
    tg_buf_ensure(&b, 20);
    assert_false(tg_h1_write_response(&b, &h));
    tg_buf_free(&b);
    tg_http_head_free(&h);
}

static void test_trailer_ok(void **state)
{
    static const char *const ok[] = {"x-checksum", "grpc-status", "server-timing", "etag"};
    static const char *const no[] = {"content-length",
                                     "Content-Type",
                                     "host",
                                     "authorization",
                                     "cookie",
                                     "transfer-encoding",
                                     "te",
                                     "trailer",
                                     "X-Forwarded-For",
                                     "x-forwarded-client-cert",
                                     "client-cert",
                                     "x_under",
                                     ":path",
                                     "",
                                     "connection"};
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(tg_http_trailer_ok(ok[i], strlen(ok[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(tg_http_trailer_ok(no[i], strlen(no[i])));
    assert_false(tg_http_trailer_ok("hostname", 4)); /* "host" by its length */
    assert_true(tg_http_trailer_ok("hostname", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_response_and_limits),
        cmocka_unit_test(test_trailer_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
